/* libpq on libev: the connect state machine and the readiness watcher. */
#include <stdio.h>
#include <string.h>

#include "pgconn.h"

const char *spg_conn_take_error(struct spg_conn *c)
{
	const char *msg = c->pg ? PQerrorMessage(c->pg) : "out of memory";
	size_t n = strlen(msg);

	/* libpq's messages end in a newline and may span lines: keep the first. */
	if (strchr(msg, '\n'))
		n = (size_t)(strchr(msg, '\n') - msg);
	if (n == 0)
		msg = "connection lost", n = strlen(msg);
	snprintf(c->error, sizeof(c->error), "%.*s", (int)n, msg);
	return c->error;
}

static void arm(struct spg_conn *c, int fd, int events)
{
	if (fd == c->fd && events == c->events)
		return;
	if (c->fd >= 0)
		ev_io_stop(c->loop, &c->io);
	c->fd = fd;
	c->events = events;
	if (fd >= 0 && events) {
		ev_io_set(&c->io, fd, events);
		ev_io_start(c->loop, &c->io);
	} else {
		c->fd = -1;
		c->events = 0;
	}
}

static void rearm(struct spg_conn *c)
{
	arm(c, PQsocket(c->pg), (c->reading ? EV_READ : 0) | (c->flushing ? EV_WRITE : 0));
}

static void failed(struct spg_conn *c)
{
	spg_conn_take_error(c);
	arm(c, -1, 0);
	c->cb(c, SPG_CONN_FAILED);
}

static void connect_step(struct spg_conn *c)
{
	switch (PQconnectPoll(c->pg)) {
	case PGRES_POLLING_READING:
		arm(c, PQsocket(c->pg), EV_READ);
		return;
	case PGRES_POLLING_WRITING:
		arm(c, PQsocket(c->pg), EV_WRITE);
		return;
	case PGRES_POLLING_OK:
		c->connecting = false;
		if (PQsetnonblocking(c->pg, 1) != 0) {
			failed(c);
			return;
		}
		arm(c, -1, 0);
		c->cb(c, SPG_CONN_UP);
		return;
	default:
		failed(c);
		return;
	}
}

static void on_io(struct ev_loop *loop, ev_io *w, int revents)
{
	struct spg_conn *c = w->data;

	if (c->connecting) {
		connect_step(c);
		return;
	}
	if ((revents & EV_WRITE) && c->flushing) {
		int rc = PQflush(c->pg);

		if (rc < 0) {
			failed(c);
			return;
		}
		c->flushing = rc == 1;
		rearm(c);
	}
	if ((revents & EV_READ) && c->reading)
		c->cb(c, SPG_CONN_READABLE); /* may close c: nothing after this */
}

int spg_conn_start(struct spg_conn *c, struct ev_loop *loop, const char *conninfo, bool replication,
		   spg_conn_cb cb, void *arg)
{
	const char *keys[] = {"dbname", replication ? "replication" : NULL, NULL};
	const char *vals[] = {conninfo, replication ? "database" : NULL, NULL};

	memset(c, 0, sizeof(*c));
	c->loop = loop;
	c->cb = cb;
	c->arg = arg;
	c->fd = -1;
	ev_io_init(&c->io, on_io, -1, 0);
	c->io.data = c;
	/* expand_dbname: conninfo is a full connection string or URI; later keys override it. */
	c->pg = PQconnectStartParams(keys, vals, 1);
	if (!c->pg || PQstatus(c->pg) == CONNECTION_BAD) {
		spg_conn_take_error(c);
		return -1;
	}
	c->connecting = true;
	/* libpq: behave as if PQconnectPoll had asked for writability. */
	arm(c, PQsocket(c->pg), EV_WRITE);
	return 0;
}

void spg_conn_close(struct spg_conn *c)
{
	if (!c->loop)
		return;
	arm(c, -1, 0);
	if (c->pg)
		PQfinish(c->pg);
	c->pg = NULL;
	c->connecting = c->reading = c->flushing = false;
}

void spg_conn_reading(struct spg_conn *c, bool on)
{
	if (!c->pg || c->connecting)
		return;
	c->reading = on;
	rearm(c);
}

int spg_conn_flush(struct spg_conn *c)
{
	int rc = PQflush(c->pg);

	if (rc < 0) {
		spg_conn_take_error(c);
		return -1;
	}
	c->flushing = rc == 1;
	rearm(c);
	return 0;
}
