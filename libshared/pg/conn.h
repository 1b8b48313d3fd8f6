/*
 * One libpq connection driven by a libev loop, shared by sink-postgres and
 * source-postgres: connect with a timeout, asynchronous queries with a
 * timeout, a raw mode for a worker that drives libpq itself (the
 * replication COPY stream), and reconnects with backoff. Nothing blocks.
 */
#ifndef DC_PG_CONN_H
#define DC_PG_CONN_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

struct ev_loop;
struct dc_pg_conn;

struct dc_pg_opts {
	const char *conninfo;        /* a secret: it may carry the password */
	char *masked;                /* the conninfo for logs, password as "****" */
	uint64_t connect_timeout_ms; /* 0: no limit */
	uint64_t query_timeout_ms;   /* 0: no limit */
	uint64_t backoff_ms, backoff_max_ms;
};

struct dc_pg_conn_cbs {
	/* Connected, non-blocking; nothing sent yet. */
	void (*on_up)(void *arg);
	/* Lost, refused or reset: a reconnect is scheduled (unless no_reconnect). */
	void (*on_down)(void *arg, const char *why);
	/* Raw mode with reading on: input arrived and libpq consumed it. */
	void (*on_readable)(void *arg);
};

/*
 * The outcome of one query: res is its first error result, else its last
 * result (a COPY result ends the query too, the connection is then in raw
 * mode); it belongs to the connection and is cleared after the call. res is
 * NULL when the connection was lost, why says how.
 */
typedef void (*dc_pg_result_fn)(void *arg, const PGresult *res, const char *why);

/* No I/O yet; opts must outlive the connection. Returns 0 or -ENOMEM. */
int dc_pg_conn_new(struct ev_loop *loop, const struct dc_pg_opts *opts,
		   const struct dc_pg_conn_cbs *cbs, void *arg, struct dc_pg_conn **out);
/* Starts connecting now (a normal connection); reconnects follow losses by themselves. */
void dc_pg_conn_start(struct dc_pg_conn *c);
/*
 * Closes the connection in use, without on_down, and connects now;
 * replication adds replication=database (a walsender). A reconnect after a
 * later loss is a normal connection again.
 */
void dc_pg_conn_connect(struct dc_pg_conn *c, bool replication);
/* Connected and no query in flight. */
bool dc_pg_conn_idle(const struct dc_pg_conn *c);
/* The libpq connection while connected, else NULL: for raw mode. */
PGconn *dc_pg_conn_pg(const struct dc_pg_conn *c);

/*
 * Sends a query (prepared: sql is the statement's name) with text
 * parameters; cb runs once it completed, or failed with the connection.
 * Returns 0; -EBUSY when not idle; -EIO when sending failed (the
 * connection is then reset: on_down has run, cb has not).
 */
int dc_pg_conn_query(struct dc_pg_conn *c, const char *sql, bool prepared, int nparams,
		     const char *const *params, dc_pg_result_fn cb, void *arg);
/* PQsendPrepare of sql as name; returns as dc_pg_conn_query. */
int dc_pg_conn_prepare(struct dc_pg_conn *c, const char *name, const char *sql, dc_pg_result_fn cb,
		       void *arg);

/*
 * Raw mode (until the next connect): the worker sends and reads through
 * dc_pg_conn_pg itself; on_readable runs while reading is on (off: the
 * socket is not read, backpressure). No effect when not connected.
 */
void dc_pg_conn_reading(struct dc_pg_conn *c, bool on);
/*
 * Sends what libpq buffered, waiting for writability while the socket is
 * full. Returns 0, or -EIO after resetting the connection (on_down ran).
 */
int dc_pg_conn_flush(struct dc_pg_conn *c);

/* The connection proved usable: the next reconnect starts from the shortest delay. */
void dc_pg_conn_usable(struct dc_pg_conn *c);
/* Drops the connection (a query in flight completes as lost) and reconnects with backoff. */
void dc_pg_conn_reset(struct dc_pg_conn *c, const char *why);
/* As dc_pg_conn_reset, why being "what: libpq's last error". */
void dc_pg_conn_reset_pq(struct dc_pg_conn *c, const char *what);
/* Keeps the connection in use, but no reconnect follows its loss (shutting down). */
void dc_pg_conn_no_reconnect(struct dc_pg_conn *c);
/* Closes the connection and cancels reconnects, no callback runs. */
void dc_pg_conn_close(struct dc_pg_conn *c);
void dc_pg_conn_free(struct dc_pg_conn *c);

#endif
