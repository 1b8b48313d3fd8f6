/*
 * One libpq connection driven by the worker's libev loop: PQconnectStart /
 * PQconnectPoll, non-blocking sends flushed as the socket allows, results
 * read as they arrive, timeouts, and reconnects with backoff. Nothing here
 * ever blocks the loop.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "log.h"
#include "skpg.h"

enum conn_state { CONN_WAIT, CONN_CONNECTING, CONN_IDLE, CONN_BUSY };

struct skpg_conn {
	struct ev_loop *loop;
	const struct skpg_config *cfg;
	struct skpg_conn_cbs cbs;
	void *arg;
	PGconn *pg;
	enum conn_state state;
	PostgresPollingStatusType poll;
	ev_io io;
	ev_timer timer; /* reconnect delay, connect timeout or query timeout */
	struct dc_backoff backoff;
	skpg_result_fn cb;
	void *cb_arg;
	PGresult *res; /* the query's first error, else its last result */
};

static void connect_now(struct skpg_conn *c);

static void notice(void *arg, const char *msg)
{
	size_t n = strlen(msg);

	(void)arg;
	dc_log_debug("postgres: %.*s", (int)(n && msg[n - 1] == '\n' ? n - 1 : n), msg);
}

/* Watch the connection's socket (it may change while connecting) for what libpq wants. */
static void watch(struct skpg_conn *c, int events, bool force)
{
	int fd = PQsocket(c->pg);

	if (!force && ev_is_active(&c->io) && c->io.fd == fd &&
	    (c->io.events & (EV_READ | EV_WRITE)) == events)
		return;
	ev_io_stop(c->loop, &c->io);
	if (fd < 0)
		return;
	ev_io_set(&c->io, fd, events);
	ev_io_start(c->loop, &c->io);
}

static void arm_timer(struct skpg_conn *c, uint64_t ms)
{
	ev_timer_stop(c->loop, &c->timer);
	ev_timer_set(&c->timer, (double)ms / 1000.0, 0.0);
	ev_timer_start(c->loop, &c->timer);
}

/* The last line of libpq's message, without its newline. */
static void pq_message(const char *msg, char *out, size_t len)
{
	size_t n = strlen(msg);

	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	snprintf(out, len, "%.*s", (int)n, msg);
	for (char *p = out; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

/* Tears the connection down, finishes a query in flight as lost, schedules a reconnect. */
static void lost(struct skpg_conn *c, const char *why)
{
	skpg_result_fn cb = c->cb;
	uint64_t delay;

	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->timer);
	PQclear(c->res);
	c->res = NULL;
	c->cb = NULL;
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	c->state = CONN_WAIT;
	delay = dc_backoff_next(&c->backoff);
	dc_log_warn("postgres: %s; reconnecting in %llu ms", why, (unsigned long long)delay);
	arm_timer(c, delay);
	if (cb)
		cb(c->cb_arg, NULL, why);
	if (c->cbs.on_down)
		c->cbs.on_down(c->arg, why);
}

static void lost_pq(struct skpg_conn *c, const char *what)
{
	char msg[512], why[600];

	pq_message(c->pg ? PQerrorMessage(c->pg) : "no connection", msg, sizeof(msg));
	snprintf(why, sizeof(why), "%s: %s", what, msg);
	lost(c, why);
}

static void connected(struct skpg_conn *c)
{
	ev_timer_stop(c->loop, &c->timer);
	if (PQsetnonblocking(c->pg, 1) != 0) {
		lost_pq(c, "cannot make the connection non-blocking");
		return;
	}
	PQsetNoticeProcessor(c->pg, notice, NULL);
	c->state = CONN_IDLE;
	watch(c, EV_READ, false);
	dc_log_info("postgres: connected to %s (server %d)", c->cfg->conninfo_masked,
		    PQserverVersion(c->pg));
	if (c->cbs.on_up)
		c->cbs.on_up(c->arg);
}

static void connect_step(struct skpg_conn *c)
{
	c->poll = PQconnectPoll(c->pg);
	switch (c->poll) {
	/* libpq may have closed the socket and opened another with the same number. */
	case PGRES_POLLING_READING:
		watch(c, EV_READ, true);
		break;
	case PGRES_POLLING_WRITING:
		watch(c, EV_WRITE, true);
		break;
	case PGRES_POLLING_OK:
		connected(c);
		break;
	default:
		lost_pq(c, "cannot connect");
		break;
	}
}

static void connect_now(struct skpg_conn *c)
{
	c->pg = PQconnectStart(c->cfg->conninfo);
	if (!c->pg) {
		lost(c, "cannot connect: out of memory");
		return;
	}
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		lost_pq(c, "cannot connect");
		return;
	}
	c->state = CONN_CONNECTING;
	arm_timer(c, c->cfg->connect_timeout_ms);
	/* libpq starts by waiting for the socket to become writable. */
	c->poll = PGRES_POLLING_WRITING;
	watch(c, EV_WRITE, true);
}

/* Reads what arrived; completes the query once libpq has returned its last result. */
static void read_results(struct skpg_conn *c)
{
	PGresult *r;

	if (!PQconsumeInput(c->pg)) {
		lost_pq(c, "connection lost");
		return;
	}
	while (c->state == CONN_BUSY && !PQisBusy(c->pg)) {
		r = PQgetResult(c->pg);
		if (!r) {
			skpg_result_fn cb = c->cb;
			PGresult *res = c->res;

			ev_timer_stop(c->loop, &c->timer);
			c->cb = NULL;
			c->res = NULL;
			c->state = CONN_IDLE;
			/* A query that died with its connection has no reliable outcome. */
			if (PQstatus(c->pg) == CONNECTION_BAD) {
				c->cb = cb;
				PQclear(res);
				lost_pq(c, "connection lost");
				return;
			}
			watch(c, EV_READ, false);
			cb(c->cb_arg, res, NULL);
			PQclear(res);
			return;
		}
		if (c->res && PQresultStatus(c->res) == PGRES_FATAL_ERROR) {
			PQclear(r);
			continue;
		}
		PQclear(c->res);
		c->res = r;
	}
	if (c->state == CONN_IDLE) {
		/* Nothing asked: a notice, or the server closing (seen on the next read). */
		PGnotify *n;

		while ((n = PQnotifies(c->pg)))
			PQfreemem(n);
		if (PQstatus(c->pg) == CONNECTION_BAD)
			lost_pq(c, "connection lost");
	}
}

static void flush(struct skpg_conn *c)
{
	int rc = PQflush(c->pg);

	if (rc < 0)
		lost_pq(c, "cannot send");
	else
		watch(c, rc ? EV_READ | EV_WRITE : EV_READ, false);
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct skpg_conn *c = w->data;

	(void)loop;
	if (c->state == CONN_CONNECTING) {
		connect_step(c);
		return;
	}
	if ((revents & EV_WRITE) && c->state == CONN_BUSY) {
		flush(c);
		if (c->state != CONN_BUSY)
			return;
	}
	if (revents & EV_READ)
		read_results(c);
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct skpg_conn *c = w->data;
	char why[128];

	(void)loop;
	(void)revents;
	switch (c->state) {
	case CONN_WAIT:
		connect_now(c);
		break;
	case CONN_CONNECTING:
		snprintf(why, sizeof(why), "cannot connect: no answer in %llu ms",
			 (unsigned long long)c->cfg->connect_timeout_ms);
		lost(c, why);
		break;
	case CONN_BUSY:
		snprintf(why, sizeof(why), "no answer to a query in %llu ms",
			 (unsigned long long)c->cfg->write_timeout_ms);
		lost(c, why);
		break;
	case CONN_IDLE:
		break;
	}
}

int skpg_conn_new(struct ev_loop *loop, const struct skpg_config *cfg,
		  const struct skpg_conn_cbs *cbs, void *arg, struct skpg_conn **out)
{
	struct skpg_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return -1;
	c->loop = loop;
	c->cfg = cfg;
	c->cbs = *cbs;
	c->arg = arg;
	c->state = CONN_WAIT;
	dc_backoff_init(&c->backoff, cfg->backoff_ms, cfg->backoff_max_ms, 0);
	ev_io_init(&c->io, on_io, -1, EV_READ);
	c->io.data = c;
	ev_timer_init(&c->timer, on_timer, 0.0, 0.0);
	c->timer.data = c;
	*out = c;
	return 0;
}

void skpg_conn_start(struct skpg_conn *c)
{
	connect_now(c);
}

bool skpg_conn_idle(const struct skpg_conn *c)
{
	return c->state == CONN_IDLE;
}

static int sent(struct skpg_conn *c, int ok, skpg_result_fn cb, void *arg)
{
	if (!ok) {
		lost_pq(c, "cannot send");
		return -1;
	}
	c->state = CONN_BUSY;
	c->cb = cb;
	c->cb_arg = arg;
	arm_timer(c, c->cfg->write_timeout_ms);
	flush(c);
	return 0;
}

int skpg_conn_query(struct skpg_conn *c, const char *sql, bool prepared, int nparams,
		    const char *const *params, skpg_result_fn cb, void *arg)
{
	int ok;

	if (c->state != CONN_IDLE)
		return -1;
	if (prepared)
		ok = PQsendQueryPrepared(c->pg, sql, nparams, params, NULL, NULL, 0);
	else
		ok = PQsendQueryParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0);
	return sent(c, ok, cb, arg);
}

int skpg_conn_prepare(struct skpg_conn *c, const char *name, const char *sql, skpg_result_fn cb,
		      void *arg)
{
	if (c->state != CONN_IDLE)
		return -1;
	return sent(c, PQsendPrepare(c->pg, name, sql, 0, NULL), cb, arg);
}

void skpg_conn_usable(struct skpg_conn *c)
{
	dc_backoff_reset(&c->backoff);
}

void skpg_conn_reset(struct skpg_conn *c, const char *why)
{
	if (c->state == CONN_WAIT)
		return;
	lost(c, why);
}

void skpg_conn_free(struct skpg_conn *c)
{
	if (!c)
		return;
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->timer);
	PQclear(c->res);
	if (c->pg)
		PQfinish(c->pg);
	free(c);
}
