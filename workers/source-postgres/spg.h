/* source-postgres's configuration: the [postgres] section. */
#ifndef SPG_SPG_H
#define SPG_SPG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "config_keys.h"
#include "pg/conn.h"

struct spg_config {
	struct dc_pg_opts pg; /* conninfo, its masked copy, backoff */
	char publication[64];
	char slot[64];
	char *tables_sql; /* "a, s.b" for CREATE PUBLICATION ... FOR TABLE; NULL: all tables */
	const char *topic_template;
	bool create_publication, create_slot;
	uint64_t status_interval_ms;
};

extern const struct dc_cfg_table spg_keys; /* its own sections */

/* Reads and checks [postgres]; problems go to diag as FILE:LINE. Returns 0 or -1. */
int spg_config_load(struct spg_config *c, const struct dc_config *cfg, const char *name,
		    struct dc_diag *diag);
void spg_config_free(struct spg_config *c);

#endif
