/* The [postgres] connection keys of sink-postgres and source-postgres. */
#include <stdlib.h>
#include <string.h>

#include "pg/conninfo.h"
#include "pg/options.h"

#define P "postgres"

int dc_pg_opts_load(struct dc_pg_opts *o, const struct dc_config *cfg, struct dc_diag *diag)
{
	char why[256];
	int bad = 0;

	memset(o, 0, sizeof(*o));
	o->conninfo = dc_config_str(cfg, P, "conninfo");
	/* Unset: required, the loader reported it. */
	if (!o->conninfo) {
		bad = 1;
	} else if (dc_pg_conninfo_mask(o->conninfo, &o->masked, why, sizeof(why)) != 0) {
		dc_diag_add(diag, "%s: conninfo: %s", dc_config_where(cfg, P, "conninfo"),
			    why[0] ? why : "out of memory");
		bad = 1;
	}
	o->connect_timeout_ms = DC_PG_CONNECT_TIMEOUT_MS;
	o->backoff_ms = (uint64_t)dc_config_int(cfg, P, "reconnect_backoff_ms");
	o->backoff_max_ms = (uint64_t)dc_config_int(cfg, P, "reconnect_backoff_max_ms");
	if (o->backoff_max_ms < o->backoff_ms) {
		dc_diag_add(diag, "%s: reconnect_backoff_max_ms is below reconnect_backoff_ms",
			    dc_config_where(cfg, P, "reconnect_backoff_max_ms"));
		bad = 1;
	}
	if (bad) {
		dc_pg_opts_free(o);
		return -1;
	}
	return 0;
}

void dc_pg_opts_free(struct dc_pg_opts *o)
{
	free(o->masked);
	o->masked = NULL;
}
