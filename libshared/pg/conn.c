/*
 * libpq on libev: PQconnectStartParams / PQconnectPoll under a timeout,
 * non-blocking sends flushed as the socket allows, results read as they
 * arrive under a timeout, raw readiness for a worker's own protocol, and
 * reconnects with backoff. Nothing here ever blocks the loop.
 */
#include <errno.h>
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "log.h"
#include "pg/conn.h"

enum conn_state {
	CONN_WAIT,       /* no connection: a reconnect is scheduled, or none (closed) */
	CONN_CONNECTING, /* PQconnectPoll under the connect timeout */
	CONN_IDLE,       /* connected, no query in flight */
	CONN_BUSY,       /* a query in flight, under the query timeout */
};

struct dc_pg_conn {
	struct ev_loop *loop;
	const struct dc_pg_opts *o;
	struct dc_pg_conn_cbs cbs;
	void *arg;
	PGconn *pg;
	enum conn_state state;
	bool replication;  /* the connection in use is a walsender */
	bool raw;          /* the worker drives libpq; we only report readiness */
	bool reading;      /* raw: watch for input */
	bool flushing;     /* libpq holds output the socket did not take yet */
	bool no_reconnect; /* a loss closes for good */
	ev_io io;
	ev_timer timer; /* reconnect delay, connect timeout or query timeout */
	struct dc_backoff backoff;
	dc_pg_result_fn cb;
	void *cb_arg;
	PGresult *res; /* the query's first error, else its last result */
};

static void notice(void *arg, const char *msg)
{
	size_t n = strlen(msg);

	(void)arg;
	dc_log_debug("postgres: %.*s", (int)(n && msg[n - 1] == '\n' ? n - 1 : n), msg);
}

/* Watch the connection's socket (it may change while connecting) for events; 0 stops. */
static void watch(struct dc_pg_conn *c, int events, bool force)
{
	int fd = c->pg ? PQsocket(c->pg) : -1;

	if (!force && ev_is_active(&c->io) && c->io.fd == fd &&
	    (c->io.events & (EV_READ | EV_WRITE)) == events)
		return;
	ev_io_stop(c->loop, &c->io);
	if (fd < 0 || !events)
		return;
	ev_io_set(&c->io, fd, events);
	ev_io_start(c->loop, &c->io);
}

/* What a connected socket is watched for: input (unless raw and not reading), pending output. */
static void sync_io(struct dc_pg_conn *c)
{
	int events = 0;

	if (c->state == CONN_IDLE || c->state == CONN_BUSY) {
		if (!c->raw || c->reading)
			events |= EV_READ;
		if (c->flushing)
			events |= EV_WRITE;
	}
	watch(c, events, false);
}

static void arm_timer(struct dc_pg_conn *c, uint64_t ms)
{
	ev_timer_stop(c->loop, &c->timer);
	ev_timer_set(&c->timer, (double)ms / 1000.0, 0.0);
	ev_timer_start(c->loop, &c->timer);
}

/* The message of libpq on one line: its line breaks and the tabs after them as one space. */
static void pq_message(const char *msg, char *out, size_t len)
{
	size_t n = 0;

	for (const char *r = msg; *r && n + 1 < len; r++) {
		if (*r != '\n') {
			out[n++] = *r;
			continue;
		}
		while (r[1] == '\t' || r[1] == '\n')
			r++;
		if (r[1])
			out[n++] = ' ';
	}
	while (n && out[n - 1] == ' ')
		n--;
	out[n] = '\0';
}

/* Closes the connection and stops every watcher; no callback. */
static void drop(struct dc_pg_conn *c)
{
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->timer);
	PQclear(c->res);
	c->res = NULL;
	c->cb = NULL;
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	c->state = CONN_WAIT;
	c->replication = c->raw = c->reading = c->flushing = false;
}

/* Tears the connection down, finishes a query in flight as lost, schedules a reconnect. */
static void lost(struct dc_pg_conn *c, const char *reason)
{
	dc_pg_result_fn cb = c->cb;
	void *cb_arg = c->cb_arg;
	char why[600];
	uint64_t delay;

	/* reason may point into the PGconn about to be freed. */
	snprintf(why, sizeof(why), "%s", reason);
	drop(c);
	if (c->no_reconnect) {
		dc_log_warn("postgres: %s", why);
	} else {
		delay = dc_backoff_next(&c->backoff);
		dc_log_warn("postgres: %s; reconnecting in %llu ms", why,
			    (unsigned long long)delay);
		arm_timer(c, delay);
	}
	if (cb)
		cb(cb_arg, NULL, why);
	if (c->cbs.on_down)
		c->cbs.on_down(c->arg, why);
}

static void lost_pq(struct dc_pg_conn *c, const char *what)
{
	char msg[512], why[600];

	pq_message(c->pg ? PQerrorMessage(c->pg) : "no connection", msg, sizeof(msg));
	snprintf(why, sizeof(why), "%s: %s", what, msg[0] ? msg : "connection lost");
	lost(c, why);
}

static void connected(struct dc_pg_conn *c)
{
	ev_timer_stop(c->loop, &c->timer);
	if (PQsetnonblocking(c->pg, 1) != 0) {
		lost_pq(c, "cannot make the connection non-blocking");
		return;
	}
	PQsetNoticeProcessor(c->pg, notice, NULL);
	c->state = CONN_IDLE;
	sync_io(c);
	dc_log_info("postgres: connected to %s (server %d%s)", c->o->masked, PQserverVersion(c->pg),
		    c->replication ? ", replication" : "");
	if (c->cbs.on_up)
		c->cbs.on_up(c->arg);
}

static void connect_step(struct dc_pg_conn *c)
{
	switch (PQconnectPoll(c->pg)) {
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

static void connect_now(struct dc_pg_conn *c, bool replication)
{
	const char *keys[] = {"dbname", replication ? "replication" : NULL, NULL};
	const char *vals[] = {c->o->conninfo, replication ? "database" : NULL, NULL};

	/* expand_dbname: conninfo is a full connection string or URI; later keys override it. */
	c->pg = PQconnectStartParams(keys, vals, 1);
	if (!c->pg) {
		lost(c, "cannot connect: out of memory");
		return;
	}
	if (PQstatus(c->pg) == CONNECTION_BAD) {
		lost_pq(c, "cannot connect");
		return;
	}
	c->state = CONN_CONNECTING;
	c->replication = replication;
	if (c->o->connect_timeout_ms)
		arm_timer(c, c->o->connect_timeout_ms);
	/* libpq starts by waiting for the socket to become writable. */
	watch(c, EV_WRITE, true);
}

static bool copy_result(const PGresult *r)
{
	ExecStatusType st = PQresultStatus(r);

	return st == PGRES_COPY_IN || st == PGRES_COPY_OUT || st == PGRES_COPY_BOTH;
}

/* The query in flight is over: its callback gets the result kept. */
static void complete(struct dc_pg_conn *c)
{
	dc_pg_result_fn cb = c->cb;
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
	sync_io(c);
	cb(c->cb_arg, res, NULL);
	PQclear(res);
}

/* Reads what arrived; completes the query once libpq has returned its last result. */
static void read_results(struct dc_pg_conn *c)
{
	PGresult *r;

	if (!PQconsumeInput(c->pg)) {
		lost_pq(c, "connection lost");
		return;
	}
	while (c->state == CONN_BUSY && !PQisBusy(c->pg)) {
		r = PQgetResult(c->pg);
		if (r && copy_result(r)) {
			/* libpq hands out COPY results forever: the worker takes over. */
			c->raw = true;
			c->reading = false;
		}
		if (c->res && PQresultStatus(c->res) == PGRES_FATAL_ERROR) {
			PQclear(r);
		} else if (r) {
			PQclear(c->res);
			c->res = r;
		}
		if (!r || c->raw) {
			complete(c);
			return;
		}
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

static int flush(struct dc_pg_conn *c)
{
	int rc = PQflush(c->pg);

	if (rc < 0) {
		lost_pq(c, "cannot send");
		return -EIO;
	}
	c->flushing = rc == 1;
	sync_io(c);
	return 0;
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dc_pg_conn *c = w->data;

	(void)loop;
	if (c->state == CONN_CONNECTING) {
		connect_step(c);
		return;
	}
	if ((revents & EV_WRITE) && c->flushing && flush(c) != 0)
		return;
	if (!(revents & EV_READ) || (c->state != CONN_IDLE && c->state != CONN_BUSY))
		return;
	if (!c->raw) {
		read_results(c);
		return;
	}
	if (!c->reading)
		return;
	if (!PQconsumeInput(c->pg)) {
		lost_pq(c, "connection lost");
		return;
	}
	if (c->cbs.on_readable)
		c->cbs.on_readable(c->arg); /* may reset c: nothing after this */
}

static void on_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc_pg_conn *c = w->data;
	char why[128];

	(void)loop;
	(void)revents;
	switch (c->state) {
	case CONN_WAIT:
		connect_now(c, false);
		break;
	case CONN_CONNECTING:
		snprintf(why, sizeof(why), "cannot connect: no answer in %llu ms",
			 (unsigned long long)c->o->connect_timeout_ms);
		lost(c, why);
		break;
	case CONN_BUSY:
		snprintf(why, sizeof(why), "no answer to a query in %llu ms",
			 (unsigned long long)c->o->query_timeout_ms);
		lost(c, why);
		break;
	case CONN_IDLE:
		break;
	}
}

int dc_pg_conn_new(struct ev_loop *loop, const struct dc_pg_opts *opts,
		   const struct dc_pg_conn_cbs *cbs, void *arg, struct dc_pg_conn **out)
{
	struct dc_pg_conn *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	c->loop = loop;
	c->o = opts;
	c->cbs = *cbs;
	c->arg = arg;
	c->state = CONN_WAIT;
	dc_backoff_init(&c->backoff, opts->backoff_ms, opts->backoff_max_ms, 0);
	ev_io_init(&c->io, on_io, -1, EV_READ);
	c->io.data = c;
	ev_timer_init(&c->timer, on_timer, 0.0, 0.0);
	c->timer.data = c;
	*out = c;
	return 0;
}

void dc_pg_conn_start(struct dc_pg_conn *c)
{
	c->no_reconnect = false;
	drop(c);
	connect_now(c, false);
}

void dc_pg_conn_connect(struct dc_pg_conn *c, bool replication)
{
	drop(c);
	connect_now(c, replication);
}

bool dc_pg_conn_idle(const struct dc_pg_conn *c)
{
	return c->state == CONN_IDLE && !c->raw;
}

PGconn *dc_pg_conn_pg(const struct dc_pg_conn *c)
{
	return c->state == CONN_IDLE || c->state == CONN_BUSY ? c->pg : NULL;
}

static int sent(struct dc_pg_conn *c, int ok, dc_pg_result_fn cb, void *arg)
{
	if (!ok) {
		lost_pq(c, "cannot send");
		return -EIO;
	}
	c->state = CONN_BUSY;
	c->cb = cb;
	c->cb_arg = arg;
	if (c->o->query_timeout_ms)
		arm_timer(c, c->o->query_timeout_ms);
	/* A failed flush reports the query lost through cb: it was sent as far as we know. */
	flush(c);
	return 0;
}

int dc_pg_conn_query(struct dc_pg_conn *c, const char *sql, bool prepared, int nparams,
		     const char *const *params, dc_pg_result_fn cb, void *arg)
{
	int ok;

	if (!dc_pg_conn_idle(c))
		return -EBUSY;
	if (prepared)
		ok = PQsendQueryPrepared(c->pg, sql, nparams, params, NULL, NULL, 0);
	else
		ok = PQsendQueryParams(c->pg, sql, nparams, NULL, params, NULL, NULL, 0);
	return sent(c, ok, cb, arg);
}

int dc_pg_conn_prepare(struct dc_pg_conn *c, const char *name, const char *sql, dc_pg_result_fn cb,
		       void *arg)
{
	if (!dc_pg_conn_idle(c))
		return -EBUSY;
	return sent(c, PQsendPrepare(c->pg, name, sql, 0, NULL), cb, arg);
}

void dc_pg_conn_reading(struct dc_pg_conn *c, bool on)
{
	if (c->state != CONN_IDLE)
		return;
	c->raw = true;
	c->reading = on;
	sync_io(c);
}

int dc_pg_conn_flush(struct dc_pg_conn *c)
{
	if (c->state != CONN_IDLE && c->state != CONN_BUSY)
		return -ENOTCONN;
	return flush(c);
}

void dc_pg_conn_usable(struct dc_pg_conn *c)
{
	dc_backoff_reset(&c->backoff);
}

void dc_pg_conn_reset(struct dc_pg_conn *c, const char *why)
{
	if (c->state != CONN_WAIT)
		lost(c, why);
}

void dc_pg_conn_reset_pq(struct dc_pg_conn *c, const char *what)
{
	if (c->state != CONN_WAIT)
		lost_pq(c, what);
}

void dc_pg_conn_no_reconnect(struct dc_pg_conn *c)
{
	c->no_reconnect = true;
	if (c->state == CONN_WAIT)
		ev_timer_stop(c->loop, &c->timer);
}

void dc_pg_conn_close(struct dc_pg_conn *c)
{
	drop(c);
}

void dc_pg_conn_free(struct dc_pg_conn *c)
{
	if (!c)
		return;
	drop(c);
	free(c);
}
