/*
 * INI configuration: a program declares its keys in a table, the loader
 * layers default < global file < connector file < environment and hands out
 * typed values. Every problem is reported as "FILE:LINE: message", all of
 * them, not just the first.
 */
#ifndef DC_CONFIG_H
#define DC_CONFIG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum dc_cfg_type {
	DC_CFG_STRING,
	DC_CFG_INT,      /* decimal int64, checked against [min, max] when min < max */
	DC_CFG_BOOL,     /* true|false|yes|no|on|off|1|0 */
	DC_CFG_DURATION, /* ms; "250", "250ms", "5s", "2m", "1h"; range-checked like INT */
	DC_CFG_ENUM,     /* one of choices[] */
	DC_CFG_URL,      /* scheme://host[:port][/path]; schemes from choices[] when given */
};

#define DC_CFG_REQUIRED 0x01u /* missing after all layers: error */
#define DC_CFG_SECRET   0x02u /* never printed: dumps and messages show "****" */
#define DC_CFG_MULTI    0x04u /* section is a kind: [KIND NAME] (implied for "route") */

struct dc_cfg_key {
	const char *section; /* "danube", "mqtt"; "route" describes every [route NAME] */
	const char *key;
	enum dc_cfg_type type;
	const char *def; /* default as text; NULL = unset */
	unsigned flags;
	int64_t min, max;           /* INT/DURATION range, used when min < max */
	const char *const *choices; /* ENUM values / URL schemes, NULL-terminated */
	const char *short_env;      /* familiar short variable (DANUBE_SERVICE_URL) or NULL */
};

/*
 * Collected problems: each one a full line, "FILE:LINE: message", cleaned
 * with dc_log_clean() and cut at 4096 bytes.
 */
struct dc_diag {
	char **lines;
	size_t n, cap;
};

void dc_diag_init(struct dc_diag *d);
void dc_diag_add(struct dc_diag *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* As dc_diag_add; -ENOMEM when out of memory (the line is lost). */
int dc_diag_vadd(struct dc_diag *d, const char *fmt, va_list ap);
void dc_diag_free(struct dc_diag *d);
/* Every line followed by a newline. */
void dc_diag_write(const struct dc_diag *d, int fd);

struct dc_config;

struct dc_config_src {
	const char *global_file; /* may be NULL: only its sections that the table knows apply */
	const char *file;        /* may be NULL: the program's own file, every section checked */
	char *const *envp;       /* may be NULL: environ is used; DANUBE_CONNECT_<SECTION>_<KEY> */
	bool short_env;          /* honour the short names (a worker run by hand) */
};

/*
 * Load and validate. Returns 0 and *out on success; on any problem returns
 * -EINVAL (-ENOMEM when memory ran out), *out = NULL, and every problem
 * appended to diag (which may be NULL).
 * The key array is copied; its strings must outlive cfg (literals do).
 */
int dc_config_load(struct dc_config **out, const struct dc_cfg_key *keys, size_t nkeys,
		   const struct dc_config_src *src, struct dc_diag *diag);
void dc_config_free(struct dc_config *cfg);

/*
 * Typed getters. section is "danube" or, for routes, "route NAME". The key
 * must be in the table with that type (a programming error aborts);
 * dc_config_str gives the text of any type (enums in the table's spelling,
 * bools as "true"/"false"). Unset strings give NULL; unset numbers 0; unset
 * bools false; so does a route section that does not exist.
 */
const char *dc_config_str(const struct dc_config *cfg, const char *section, const char *key);
int64_t dc_config_int(const struct dc_config *cfg, const char *section, const char *key);
bool dc_config_bool(const struct dc_config *cfg, const char *section, const char *key);
bool dc_config_isset(const struct dc_config *cfg, const char *section, const char *key);

/*
 * Names of the [KIND NAME] sections (e.g. kind "route"), in file order. The
 * names are full section names ("route a"), ready for the getters; NAME is
 * what follows the first space. The array belongs to cfg.
 */
size_t dc_config_sections(const struct dc_config *cfg, const char *kind, const char ***names);

/*
 * Where a value came from, for errors found after loading:
 * "FILE:LINE", "environment DANUBE_CONNECT_X_Y" (or the short name),
 * "default", or "unset" when nothing set it.
 */
const char *dc_config_where(const struct dc_config *cfg, const char *section, const char *key);

/* The program's own file (src->file, else src->global_file), or NULL. */
const char *dc_config_file(const struct dc_config *cfg);

/* "FILE:LINE" of a section's header (own file first), NULL when no file has it. */
const char *dc_config_section_where(const struct dc_config *cfg, const char *section);

/* Write "section.key = value" for every set key, secrets masked. */
void dc_config_dump(const struct dc_config *cfg, int fd);

#endif
