/*
 * The supervisor's configuration: the [supervisor] section of the global
 * file and the list of connector files, each checked for its [connector]
 * section.
 */
#ifndef DC_SUPD_CONF_H
#define DC_SUPD_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct dc_conn_spec {
	char *name; /* the file's stem */
	char *path;
	char *type;       /* worker program under worker_dir */
	char *type_where; /* "FILE:LINE" of the type key, for --check messages */
	bool enabled;
	bool valid; /* false: the file has problems (logged); type may be NULL */
	/* Of the file's bytes and the [connector], [danube], [runtime] values in effect
	 * (global file defaults, environment): a change means restart. */
	uint64_t digest;
	uint64_t stop_timeout_ms; /* [runtime] stop_timeout_ms in effect: the worker's drain */
};

struct dc_supd_conf {
	char *global_file;
	char *connectors_dir;
	char *run_dir;
	char *worker_dir;
	char *metrics_listen;
	int log_level; /* enum dc_log_level */
	int facility;
	uint64_t backoff_initial_ms;
	uint64_t backoff_max_ms;
	unsigned restart_intensity;
	uint64_t restart_period_ms;
	uint64_t health_interval_ms;
	uint64_t health_timeout_ms;
	uint64_t stop_timeout_ms;

	struct dc_conn_spec *conns; /* sorted by name */
	size_t nconns;
};

/*
 * Load the global file and every *.ini of its connectors_dir. Every problem
 * goes to diag ("FILE:LINE: message"). Returns -1 when the global file (or
 * the directory) is unusable; a connector file with problems is kept in the
 * list with valid = false, so one bad file does not take the others down.
 * run_dir and metrics_listen are checked as the start uses them; with probe
 * (the start and --check, not a reload: it may wait for name resolution)
 * also against this machine: run_dir is or can be made a directory,
 * metrics_listen resolves to an address of this machine.
 */
int dc_supd_conf_load(struct dc_supd_conf *out, const char *global_file, bool probe,
		      struct dc_diag *diag);
void dc_supd_conf_free(struct dc_supd_conf *c);

const struct dc_conn_spec *dc_supd_conf_find(const struct dc_supd_conf *c, const char *name);

#endif
