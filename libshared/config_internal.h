/*
 * The configuration loader's model, shared by its parts: config.c (layers,
 * getters), config_file.c (INI files, ${NAME}) and config_env.c (environment).
 */
#ifndef DC_CONFIG_INTERNAL_H
#define DC_CONFIG_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

enum layer { LAYER_DEFAULT, LAYER_GLOBAL, LAYER_FILE, LAYER_ENV, LAYER_N };

#define ENV_PREFIX "DANUBE_CONNECT_"

struct val {
	char *text;             /* NULL = unset */
	int64_t num;            /* INT and DURATION (ms); BOOL as 0 or 1 */
	char *where;            /* "FILE:LINE", "environment NAME", "default" */
	unsigned seen[LAYER_N]; /* line of its first assignment per file layer: duplicates */
};

struct sect {
	char *name;            /* "danube", "route a" */
	const char *kind;      /* the table's section name: "danube", "route" */
	char *env;             /* the infix of its variables: "DANUBE", "ROUTE_A" */
	unsigned hdr[LAYER_N]; /* header line per file layer, 0 = not declared there */
	char *hdr_where;       /* "FILE:LINE" of the header, own file first */
	struct val *vals;      /* one per table key; only those of this kind are used */
};

struct kindlist {
	const char *kind;
	const char **names;
	size_t n;
};

struct dc_config {
	struct dc_cfg_key *keys;
	size_t nkeys;
	struct sect *sects;
	size_t nsects, cap;
	char *path[LAYER_N]; /* copies of the global file's and the own file's path */
	struct kindlist *kinds;
	size_t nkinds;
};

/* One load: where problems go and how many there were. */
struct load {
	struct dc_config *cfg;
	struct dc_diag *diag;
	char *const *envp;
	size_t nerr;
	bool oom;
};

#define CUR_NONE ((size_t)-1) /* no header seen yet */

__attribute__((format(printf, 2, 3))) void dc_cfg_problem(struct load *ld, const char *fmt, ...);

bool dc_cfg_multi_kind(const struct dc_config *cfg, const char *kind);
bool dc_cfg_kind_known(const struct dc_config *cfg, const char *kind);
/* Index of kind.key in the table, or -1. */
long dc_cfg_find_key(const struct dc_config *cfg, const char *kind, const char *key);
/* Index of the section, or CUR_NONE. */
size_t dc_cfg_find_sect(const struct dc_config *cfg, const char *name);

/* "danube" -> "DANUBE", "route a-1" -> "ROUTE_A_1" (malloc'd): variable name parts. */
char *dc_cfg_env_part(const char *s);
/* The value of the variable named by the n bytes at name, or NULL. */
const char *dc_cfg_env_get(char *const *envp, const char *name, size_t n);

/*
 * Sets a value after checking it. where is "FILE:LINE", "environment X" or
 * "default"; a rejected value is reported there, with section.key when label.
 */
void dc_cfg_set_value(struct load *ld, size_t si, size_t ki, const char *text, const char *where,
		      bool label);
/* Adds a section ("danube" or "route a") with its defaults; CUR_NONE when out of memory. */
size_t dc_cfg_add_sect(struct load *ld, const char *kind, const char *name);

/* Writes all of s (no allocation, no stdio); 0 or -errno. */
int dc_cfg_write_all(int fd, const char *s);

/* Reads one file into the model as layer LAYER_GLOBAL or LAYER_FILE. */
void dc_cfg_parse_file(struct load *ld, const char *path, enum layer layer);

/* The environment layer: DANUBE_CONNECT_* and, when short_env, the short names. */
void dc_cfg_apply_env(struct load *ld, bool short_env);

#endif
