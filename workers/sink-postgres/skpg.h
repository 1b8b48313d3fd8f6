/* sink-postgres: its configuration and the SQL it sends (libpq on the loop: pg/conn.h). */
#ifndef SINK_POSTGRES_SKPG_H
#define SINK_POSTGRES_SKPG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "config_keys.h"
#include "danube/client.h"
#include "pg/conn.h"
#include "strbuf.h"

/* ------------------------------------------------------------ configuration */

struct skpg_attr_col {
	char *column; /* quoted */
	char *name;   /* the column's name as configured (the JSON key PostgreSQL maps) */
	char *attr;   /* the Danube attribute */
};

struct skpg_config {
	struct dc_pg_opts pg; /* conninfo, timeouts (write_timeout_ms: the query's), backoff */
	char *table;          /* quoted: "schema"."name" or "name" */
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

#endif
