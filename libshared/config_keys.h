/*
 * The key tables every program shares ([supervisor], [danube], [connector],
 * [runtime]) and a helper that joins them with a program's own keys.
 */
#ifndef DC_CONFIG_KEYS_H
#define DC_CONFIG_KEYS_H

#include <stddef.h>

#include "config.h"

extern const struct dc_cfg_key dc_cfg_keys_supervisor[];
extern const size_t dc_cfg_nkeys_supervisor;
extern const struct dc_cfg_key dc_cfg_keys_danube[];
extern const size_t dc_cfg_nkeys_danube;
extern const struct dc_cfg_key dc_cfg_keys_connector[];
extern const size_t dc_cfg_nkeys_connector;
extern const struct dc_cfg_key dc_cfg_keys_runtime[];
extern const size_t dc_cfg_nkeys_runtime;

/* Each expands to "table, count", the argument pair dc_cfg_keys_concat takes. */
#define DC_CFG_KEYS_SUPERVISOR dc_cfg_keys_supervisor, dc_cfg_nkeys_supervisor
#define DC_CFG_KEYS_DANUBE     dc_cfg_keys_danube, dc_cfg_nkeys_danube
#define DC_CFG_KEYS_CONNECTOR  dc_cfg_keys_connector, dc_cfg_nkeys_connector
#define DC_CFG_KEYS_RUNTIME    dc_cfg_keys_runtime, dc_cfg_nkeys_runtime

/* A key table and its length, as a connector's ops list them. */
struct dc_cfg_table {
	const struct dc_cfg_key *keys;
	size_t n;
};
/* The dc_cfg_table of an array of keys defined in the same file. */
#define DC_CFG_TABLE(array)                                 \
	{                                                   \
		(array), sizeof(array) / sizeof((array)[0]) \
	}

/* Choices shared with code that parses the same words elsewhere. */
extern const char *const dc_cfg_log_levels[];        /* error warn info debug */
extern const char *const dc_cfg_syslog_facilities[]; /* daemon user local0..local7 */

/*
 * Joins tables given as (const struct dc_cfg_key *, size_t) pairs ended by
 * NULL, e.g. dc_cfg_keys_concat(&keys, &n, DC_CFG_KEYS_DANUBE,
 * DC_CFG_KEYS_RUNTIME, mqtt_keys, nmqtt, NULL). *out is malloc'd (free() it).
 * Returns 0, or -1 with errno ENOMEM.
 */
int dc_cfg_keys_concat(struct dc_cfg_key **out, size_t *n, ...);

#endif
