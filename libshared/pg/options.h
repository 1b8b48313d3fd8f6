/*
 * The [postgres] keys both PostgreSQL connectors share, declared once, and
 * turning a loaded configuration into struct dc_pg_opts.
 */
#ifndef DC_PG_OPTIONS_H
#define DC_PG_OPTIONS_H

#include "config.h"
#include "pg/conn.h"

/* The connection string: required, a secret (it may carry the password). */
#define DC_PG_KEY_CONNINFO                                                       \
	{                                                                        \
		.section = "postgres", .key = "conninfo", .type = DC_CFG_STRING, \
		.flags = DC_CFG_REQUIRED | DC_CFG_SECRET                         \
	}

/* The reconnect delay, growing from the first key to the second (each worker its own cap). */
#define DC_PG_KEYS_RECONNECT(max_default)                                                          \
	{.section = "postgres",                                                                    \
	 .key = "reconnect_backoff_ms",                                                            \
	 .type = DC_CFG_DURATION,                                                                  \
	 .def = "200",                                                                             \
	 .min = 1,                                                                                 \
	 .max = 3600000},                                                                          \
	{                                                                                          \
		.section = "postgres", .key = "reconnect_backoff_max_ms", .type = DC_CFG_DURATION, \
		.def = max_default, .min = 1, .max = 3600000                                       \
	}

/* A connection attempt that gets no answer for this long is given up and retried. */
#define DC_PG_CONNECT_TIMEOUT_MS 10000

/*
 * Fills o from [postgres] conninfo and the reconnect keys (the timeouts are
 * the caller's: connect_timeout_ms is DC_PG_CONNECT_TIMEOUT_MS, no query
 * timeout). Checks the conninfo without connecting and keeps its masked
 * copy (o->masked, free with dc_pg_opts_free). Problems go to diag with
 * their place. Returns 0 or -1.
 */
int dc_pg_opts_load(struct dc_pg_opts *o, const struct dc_config *cfg, struct dc_diag *diag);
void dc_pg_opts_free(struct dc_pg_opts *o);

#endif
