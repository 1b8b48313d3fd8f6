/*
 * One libpq connection driven by the worker's libev loop: non-blocking
 * connect (PQconnectPoll), then readiness callbacks, with the ev_io
 * re-armed whenever libpq's socket or wishes change.
 */
#ifndef SPG_PGCONN_H
#define SPG_PGCONN_H

#include <ev.h>
#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>

enum spg_conn_event {
	SPG_CONN_UP,       /* connected, non-blocking mode on */
	SPG_CONN_FAILED,   /* connect or flush failed: c->error says why; close it */
	SPG_CONN_READABLE, /* input waits (only while reading is on) */
};

struct spg_conn;
typedef void (*spg_conn_cb)(struct spg_conn *c, enum spg_conn_event ev);

struct spg_conn {
	struct ev_loop *loop;
	PGconn *pg;
	ev_io io;
	int fd, events;
	bool connecting, reading, flushing;
	spg_conn_cb cb;
	void *arg;
	char error[256];
};

/*
 * Starts connecting; replication adds replication=database to conninfo.
 * Returns 0 (cb reports UP or FAILED later) or -1 with c->error set (call
 * spg_conn_close).
 */
int spg_conn_start(struct spg_conn *c, struct ev_loop *loop, const char *conninfo, bool replication,
		   spg_conn_cb cb, void *arg);
/* Stops watching and closes the connection (safe on a closed one). */
void spg_conn_close(struct spg_conn *c);
/* Turns READABLE callbacks on or off (backpressure). */
void spg_conn_reading(struct spg_conn *c, bool on);
/* Sends what libpq buffered; waits for writability when the socket is full. 0 or -1. */
int spg_conn_flush(struct spg_conn *c);
/* Copies libpq's last error (one line) into c->error and returns it. */
const char *spg_conn_take_error(struct spg_conn *c);

#endif
