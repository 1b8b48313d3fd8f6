/*
 * The INI configuration loader: layers default < global file < connector
 * file < environment over the program's key table, then hands out typed
 * values. Files are read by config_file.c, the environment by config_env.c.
 */
#include "config.h"
#include "config_internal.h"
#include "config_value.h"
#include "log.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

extern char **environ;

/* ------------------------------------------------------------ small helpers */

void dc_cfg_problem(struct load *ld, const char *fmt, ...)
{
	va_list ap;

	ld->nerr++;
	va_start(ap, fmt);
	if (dc_diag_vadd(ld->diag, fmt, ap) < 0)
		ld->oom = true;
	va_end(ap);
}

char *dc_cfg_env_part(const char *s)
{
	char *out = strdup(s);

	if (out == NULL)
		return NULL;
	for (char *p = out; *p; p++)
		*p = isalnum((unsigned char)*p) ? (char)toupper((unsigned char)*p) : '_';
	return out;
}

const char *dc_cfg_env_get(char *const *envp, const char *name, size_t n)
{
	for (; *envp; envp++)
		if (strncmp(*envp, name, n) == 0 && (*envp)[n] == '=')
			return *envp + n + 1;
	return NULL;
}

bool dc_cfg_multi_kind(const struct dc_config *cfg, const char *kind)
{
	if (strcmp(kind, "route") == 0)
		return true;
	for (size_t i = 0; i < cfg->nkeys; i++)
		if (strcmp(cfg->keys[i].section, kind) == 0 && (cfg->keys[i].flags & DC_CFG_MULTI))
			return true;
	return false;
}

bool dc_cfg_kind_known(const struct dc_config *cfg, const char *kind)
{
	for (size_t i = 0; i < cfg->nkeys; i++)
		if (strcmp(cfg->keys[i].section, kind) == 0)
			return true;
	return false;
}

long dc_cfg_find_key(const struct dc_config *cfg, const char *kind, const char *key)
{
	for (size_t i = 0; i < cfg->nkeys; i++)
		if (strcmp(cfg->keys[i].section, kind) == 0 && strcmp(cfg->keys[i].key, key) == 0)
			return (long)i;
	return -1;
}

size_t dc_cfg_find_sect(const struct dc_config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->nsects; i++)
		if (strcmp(cfg->sects[i].name, name) == 0)
			return i;
	return CUR_NONE;
}

/* ------------------------------------------------------------ the model */

static void val_clear(struct val *v)
{
	free(v->text);
	free(v->where);
	v->text = NULL;
	v->where = NULL;
}

void dc_cfg_set_value(struct load *ld, size_t si, size_t ki, const char *text, const char *where,
		      bool label)
{
	struct sect *s = &ld->cfg->sects[si];
	const struct dc_cfg_key *k = &ld->cfg->keys[ki];
	char msg[384], show[DC_SHOWN_VALUE], sn[DC_SHOWN_NAME];
	const char *canon;
	int64_t num;
	char *t, *w;

	if (!dc_cfg_check_value(k, text, &num, &canon, msg, sizeof(msg))) {
		char lab[DC_SHOWN_NAME + 64] = "";

		if (label)
			snprintf(lab, sizeof(lab), "%s.%s: ", dc_log_shown(s->name, sn, sizeof(sn)),
				 k->key);
		if (k->flags & DC_CFG_SECRET)
			dc_cfg_problem(ld, "%s: %svalue rejected: %s", where, lab, msg);
		else
			dc_cfg_problem(ld, "%s: %s%s (got \"%s\")", where, lab, msg,
				       dc_log_shown(text, show, sizeof(show)));
		return;
	}
	t = strdup(canon ? canon : text);
	w = strdup(where);
	if (t == NULL || w == NULL) {
		free(t);
		free(w);
		ld->oom = true;
		return;
	}
	val_clear(&s->vals[ki]);
	s->vals[ki].text = t;
	s->vals[ki].where = w;
	s->vals[ki].num = num;
}

size_t dc_cfg_add_sect(struct load *ld, const char *kind, const char *name)
{
	struct dc_config *cfg = ld->cfg;
	struct sect *s;
	size_t si;

	if (cfg->nsects == cfg->cap) {
		size_t cap = cfg->cap ? cfg->cap * 2 : 8;
		struct sect *p = realloc(cfg->sects, cap * sizeof(*p));

		if (p == NULL)
			goto oom;
		cfg->sects = p;
		cfg->cap = cap;
	}
	s = &cfg->sects[cfg->nsects];
	memset(s, 0, sizeof(*s));
	s->name = strdup(name);
	s->env = dc_cfg_env_part(name);
	s->vals = calloc(cfg->nkeys ? cfg->nkeys : 1, sizeof(*s->vals));
	if (s->name == NULL || s->env == NULL || s->vals == NULL) {
		free(s->name);
		free(s->env);
		free(s->vals);
		goto oom;
	}
	si = cfg->nsects++;
	for (size_t i = 0; i < cfg->nkeys; i++) {
		if (strcmp(cfg->keys[i].section, kind) != 0)
			continue;
		/* Points into the table, which lives as long as cfg. */
		s->kind = cfg->keys[i].section;
		if (cfg->keys[i].def)
			dc_cfg_set_value(ld, si, i, cfg->keys[i].def, "default", true);
	}
	return si;
oom:
	ld->oom = true;
	return CUR_NONE;
}

/* ------------------------------------------------------------ after loading */

static void check_required(struct load *ld, const struct dc_config_src *src)
{
	struct dc_config *cfg = ld->cfg;
	const char *own = src->file ? src->file : src->global_file;

	for (size_t si = 0; si < cfg->nsects; si++) {
		struct sect *s = &cfg->sects[si];
		char sn[DC_SHOWN_NAME];

		dc_log_shown(s->name, sn, sizeof(sn));
		for (size_t i = 0; i < cfg->nkeys; i++) {
			const struct dc_cfg_key *k = &cfg->keys[i];

			if (!(k->flags & DC_CFG_REQUIRED) || strcmp(k->section, s->kind) != 0 ||
			    s->vals[i].text != NULL)
				continue;
			if (src->file && s->hdr[LAYER_FILE])
				dc_cfg_problem(ld, "%s:%u: [%s] %s is required", src->file,
					       s->hdr[LAYER_FILE], sn, k->key);
			else if (!src->file && src->global_file && s->hdr[LAYER_GLOBAL])
				dc_cfg_problem(ld, "%s:%u: [%s] %s is required", src->global_file,
					       s->hdr[LAYER_GLOBAL], sn, k->key);
			else
				dc_cfg_problem(ld, "%s: [%s] %s is required",
					       own ? own : "environment", sn, k->key);
		}
	}
}

/* "FILE:LINE" in a buffer of its own, NULL when out of memory. */
static char *file_line(const char *path, unsigned line)
{
	int n = snprintf(NULL, 0, "%s:%u", path, line);
	char *out = n < 0 ? NULL : malloc((size_t)n + 1);

	if (out != NULL)
		snprintf(out, (size_t)n + 1, "%s:%u", path, line);
	return out;
}

static int finish(struct dc_config *cfg, const struct dc_config_src *src)
{
	for (size_t si = 0; si < cfg->nsects; si++) {
		struct sect *s = &cfg->sects[si];

		if (src->file && s->hdr[LAYER_FILE])
			s->hdr_where = file_line(src->file, s->hdr[LAYER_FILE]);
		else if (src->global_file && s->hdr[LAYER_GLOBAL])
			s->hdr_where = file_line(src->global_file, s->hdr[LAYER_GLOBAL]);
		else
			continue;
		if (s->hdr_where == NULL)
			return -ENOMEM;
	}
	for (size_t i = 0; i < cfg->nkeys; i++) {
		const char *kind = cfg->keys[i].section;
		struct kindlist *kl, *p;
		bool seen = false;

		for (size_t j = 0; j < cfg->nkinds; j++)
			seen = seen || strcmp(cfg->kinds[j].kind, kind) == 0;
		if (seen || !dc_cfg_multi_kind(cfg, kind))
			continue;
		p = realloc(cfg->kinds, (cfg->nkinds + 1) * sizeof(*p));
		if (p == NULL)
			return -ENOMEM;
		cfg->kinds = p;
		kl = &cfg->kinds[cfg->nkinds++];
		kl->kind = kind;
		kl->n = 0;
		kl->names = calloc(cfg->nsects + 1, sizeof(*kl->names));
		if (kl->names == NULL)
			return -ENOMEM;
		for (size_t si = 0; si < cfg->nsects; si++)
			if (strcmp(cfg->sects[si].kind, kind) == 0)
				kl->names[kl->n++] = cfg->sects[si].name;
	}
	return 0;
}

int dc_config_load(struct dc_config **out, const struct dc_cfg_key *keys, size_t nkeys,
		   const struct dc_config_src *src, struct dc_diag *diag)
{
	struct dc_diag own_diag;
	struct load ld = {.diag = diag, .envp = src->envp ? src->envp : environ};
	struct dc_config *cfg;

	*out = NULL;
	if (diag == NULL) {
		dc_diag_init(&own_diag);
		ld.diag = &own_diag;
	}
	cfg = calloc(1, sizeof(*cfg));
	if (cfg == NULL)
		goto oom;
	ld.cfg = cfg;
	cfg->keys = malloc((nkeys ? nkeys : 1) * sizeof(*keys));
	if (cfg->keys == NULL)
		goto oom;
	if (nkeys)
		memcpy(cfg->keys, keys, nkeys * sizeof(*keys));
	cfg->nkeys = nkeys;
	if ((src->global_file && (cfg->path[LAYER_GLOBAL] = strdup(src->global_file)) == NULL) ||
	    (src->file && (cfg->path[LAYER_FILE] = strdup(src->file)) == NULL))
		goto oom;

	/* A key declared twice (tables joined carelessly) would shadow one of them. */
	for (size_t i = 0; i < nkeys; i++)
		if (dc_cfg_find_key(cfg, keys[i].section, keys[i].key) != (long)i)
			dc_cfg_problem(&ld, "key table: [%s] %s is declared twice", keys[i].section,
				       keys[i].key);
	/* Every single section exists from the start, holding its defaults. */
	for (size_t i = 0; i < nkeys && !ld.oom; i++)
		if (!dc_cfg_multi_kind(cfg, keys[i].section) &&
		    dc_cfg_find_sect(cfg, keys[i].section) == CUR_NONE)
			(void)dc_cfg_add_sect(&ld, keys[i].section, keys[i].section);
	if (src->global_file && !ld.oom)
		dc_cfg_parse_file(&ld, src->global_file, LAYER_GLOBAL);
	if (src->file && !ld.oom)
		dc_cfg_parse_file(&ld, src->file, LAYER_FILE);
	if (!ld.oom)
		dc_cfg_apply_env(&ld, src->short_env);
	if (!ld.oom)
		check_required(&ld, src);
	if (!ld.oom && ld.nerr == 0 && finish(cfg, src) < 0)
		ld.oom = true;
	if (ld.oom)
		goto oom;
	if (ld.nerr > 0)
		goto fail;
	if (diag == NULL)
		dc_diag_free(&own_diag);
	*out = cfg;
	return 0;
oom:
	dc_diag_add(ld.diag, "%s: out of memory",
		    src->file          ? src->file
		    : src->global_file ? src->global_file
				       : "configuration");
fail:
	dc_config_free(cfg);
	if (diag == NULL)
		dc_diag_free(&own_diag);
	return ld.oom ? -ENOMEM : -EINVAL;
}

void dc_config_free(struct dc_config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t si = 0; si < cfg->nsects; si++) {
		struct sect *s = &cfg->sects[si];

		for (size_t i = 0; i < cfg->nkeys; i++)
			val_clear(&s->vals[i]);
		free(s->vals);
		free(s->name);
		free(s->env);
		free(s->hdr_where);
	}
	for (size_t i = 0; i < cfg->nkinds; i++)
		free(cfg->kinds[i].names);
	free(cfg->kinds);
	free(cfg->sects);
	for (int l = 0; l < LAYER_N; l++)
		free(cfg->path[l]);
	free(cfg->keys);
	free(cfg);
}

/* ------------------------------------------------------------ getters */

__attribute__((noreturn)) static void misuse(const char *what, const char *section, const char *key)
{
	fprintf(stderr, "dc_config: %s: [%s] %s\n", what, section, key);
	abort();
}

/* The value of section.key, NULL when its section does not exist; aborts on misuse. */
static const struct val *lookup(const struct dc_config *cfg, const char *section, const char *key,
				const struct dc_cfg_key **kout)
{
	char kind[256];
	size_t kn = strcspn(section, " "), si;
	long ki;

	if (kn >= sizeof(kind))
		misuse("no such section in the key table", section, key);
	memcpy(kind, section, kn);
	kind[kn] = '\0';
	ki = dc_cfg_find_key(cfg, kind, key);
	if (ki < 0 || (section[kn] != '\0') != dc_cfg_multi_kind(cfg, kind))
		misuse("no such key in the key table", section, key);
	*kout = &cfg->keys[ki];
	si = dc_cfg_find_sect(cfg, section);
	return si == CUR_NONE ? NULL : &cfg->sects[si].vals[ki];
}

const char *dc_config_str(const struct dc_config *cfg, const char *section, const char *key)
{
	const struct dc_cfg_key *k;
	const struct val *v = lookup(cfg, section, key, &k);

	return v ? v->text : NULL;
}

int64_t dc_config_int(const struct dc_config *cfg, const char *section, const char *key)
{
	const struct dc_cfg_key *k;
	const struct val *v = lookup(cfg, section, key, &k);

	if (k->type != DC_CFG_INT && k->type != DC_CFG_DURATION)
		misuse("not an integer or duration key", section, key);
	return v && v->text ? v->num : 0;
}

bool dc_config_bool(const struct dc_config *cfg, const char *section, const char *key)
{
	const struct dc_cfg_key *k;
	const struct val *v = lookup(cfg, section, key, &k);

	if (k->type != DC_CFG_BOOL)
		misuse("not a bool key", section, key);
	return v && v->text && v->num != 0;
}

bool dc_config_isset(const struct dc_config *cfg, const char *section, const char *key)
{
	const struct dc_cfg_key *k;
	const struct val *v = lookup(cfg, section, key, &k);

	return v && v->text;
}

const char *dc_config_where(const struct dc_config *cfg, const char *section, const char *key)
{
	const struct dc_cfg_key *k;
	const struct val *v = lookup(cfg, section, key, &k);

	return v && v->where ? v->where : "unset";
}

size_t dc_config_sections(const struct dc_config *cfg, const char *kind, const char ***names)
{
	for (size_t i = 0; i < cfg->nkinds; i++) {
		if (strcmp(cfg->kinds[i].kind, kind) == 0) {
			*names = cfg->kinds[i].names;
			return cfg->kinds[i].n;
		}
	}
	*names = NULL;
	return 0;
}

const char *dc_config_file(const struct dc_config *cfg)
{
	return cfg->path[LAYER_FILE] ? cfg->path[LAYER_FILE] : cfg->path[LAYER_GLOBAL];
}

const char *dc_config_section_where(const struct dc_config *cfg, const char *section)
{
	size_t si = dc_cfg_find_sect(cfg, section);

	return si == CUR_NONE ? NULL : cfg->sects[si].hdr_where;
}

void dc_config_dump(const struct dc_config *cfg, int fd)
{
	for (size_t si = 0; si < cfg->nsects; si++) {
		const struct sect *s = &cfg->sects[si];

		for (size_t i = 0; i < cfg->nkeys; i++) {
			const struct dc_cfg_key *k = &cfg->keys[i];

			if (strcmp(k->section, s->kind) != 0 || s->vals[i].text == NULL)
				continue;
			if (dc_cfg_write_all(fd, s->name) < 0 || dc_cfg_write_all(fd, ".") < 0 ||
			    dc_cfg_write_all(fd, k->key) < 0 || dc_cfg_write_all(fd, " = ") < 0 ||
			    dc_cfg_write_all(fd, (k->flags & DC_CFG_SECRET)
							 ? "****"
							 : s->vals[i].text) < 0 ||
			    dc_cfg_write_all(fd, "\n") < 0)
				return;
		}
	}
}
