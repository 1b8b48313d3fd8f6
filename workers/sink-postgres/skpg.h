/* sink-postgres: its configuration, the SQL it sends, and its asynchronous libpq connection. */
#ifndef SINK_POSTGRES_SKPG_H
#define SINK_POSTGRES_SKPG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "config_keys.h"
#include "danube/client.h"
#include "strbuf.h"

struct ev_loop;

/* ------------------------------------------------------------ configuration */

struct skpg_attr_col {
	char *column; /* quoted */
	char *name;   /* the column's name as configured (the JSON key PostgreSQL maps) */
	char *attr;   /* the Danube attribute */
};

struct skpg_config {
	const char *conninfo;
	char *conninfo_masked; /* for logs: the password replaced by **** */
	char *table;           /* quoted: "schema"."name" or "name" */
	bool upsert;
	char **keys; /* key_columns, as configured */
	size_t nkeys;
	const char *payload_column; /* NULL: a JSON object's fields map onto columns */
	char **columns;             /* columns (field mode); none: from the catalogue */
	size_t ncolumns;
	const char *topic_column, *offset_column;
	struct skpg_attr_col *attr_cols;
	size_t nattr_cols;
	bool exactly_once;
	char *offsets_table; /* quoted */
	const char *subscription;
	bool single_consumer; /* exclusive or failover: this worker sees every offset */
	uint64_t connect_timeout_ms, write_timeout_ms, backoff_ms, backoff_max_ms;
};

extern const struct dc_cfg_table skpg_keys; /* its own sections */

/* Reads and checks [postgres] (no I/O); problems go to diag as FILE:LINE lines. 0 or -1. */
int skpg_config_load(struct skpg_config *c, const struct dc_config *cfg, const char *name,
		     struct dc_diag *diag);
void skpg_config_free(struct skpg_config *c);

/* ------------------------------------------------------------------ SQL text */

/* name as a double-quoted SQL identifier. */
void skpg_add_ident(struct dc_buf *b, const char *name);
/* A malloc'd quoted identifier, NULL when out of memory. */
char *skpg_quote_ident(const char *name);

/*
 * The statement that writes one batch: $1 is the batch (skpg_sql_batch);
 * with exactly_once also $2 (skpg_sql_offsets) and $3 (the subscription),
 * and the offsets upsert is part of the same statement, hence of the same
 * transaction. columns: the data columns in field mode (quoted), ignored in
 * payload mode. NULL when out of memory.
 */
char *skpg_sql_insert(const struct skpg_config *c, char *const *columns, size_t ncolumns);
char *skpg_sql_create_offsets(const struct skpg_config *c);
char *skpg_sql_load_offsets(const struct skpg_config *c);
/* $1: the quoted table name; the columns a row takes from a JSON object by default. */
extern const char skpg_sql_default_columns[];

/* The JSON array of the records msgs[idx[0..n-1]]: [{"p":"payload","m":{...}},...]. */
void skpg_sql_batch(struct dc_buf *b, const struct skpg_config *c,
		    const struct dn_message *const *msgs, const size_t *idx, size_t n);
/* {"topic": highest offset, ...} over the same records. */
void skpg_sql_offsets(struct dc_buf *b, const struct dn_message *const *msgs, const size_t *idx,
		      size_t n);

/* ------------------------------------------------------- libpq on the loop */

struct skpg_conn;

struct skpg_conn_cbs {
	void (*on_up)(void *arg);                    /* connected; nothing sent yet */
	void (*on_down)(void *arg, const char *why); /* lost or refused; a reconnect is scheduled */
};

/*
 * The outcome of one query: res is its first error result, else its last
 * result (it belongs to the connection and is cleared after the call); res
 * is NULL when the connection was lost, why says how.
 */
typedef void (*skpg_result_fn)(void *arg, const PGresult *res, const char *why);

int skpg_conn_new(struct ev_loop *loop, const struct skpg_config *cfg,
		  const struct skpg_conn_cbs *cbs, void *arg, struct skpg_conn **out);
void skpg_conn_start(struct skpg_conn *c);
/* Connected and no query in flight. */
bool skpg_conn_idle(const struct skpg_conn *c);
/*
 * Sends a query (prepared: sql is the statement's name) with text
 * parameters; cb runs once it completed. -1 when not idle or when sending
 * failed (the connection is then dropped and re-established: on_down runs).
 */
int skpg_conn_query(struct skpg_conn *c, const char *sql, bool prepared, int nparams,
		    const char *const *params, skpg_result_fn cb, void *arg);
int skpg_conn_prepare(struct skpg_conn *c, const char *name, const char *sql, skpg_result_fn cb,
		      void *arg);
/* The connection proved usable (set up): the next reconnect starts from the shortest delay. */
void skpg_conn_usable(struct skpg_conn *c);
/* Drops the connection (a query in flight completes as lost) and reconnects with backoff. */
void skpg_conn_reset(struct skpg_conn *c, const char *why);
void skpg_conn_free(struct skpg_conn *c);

#endif
