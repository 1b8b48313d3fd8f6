/*
 * The environment layer of the configuration: DANUBE_CONNECT_<SECTION>_<KEY>
 * for every key, the familiar short names for a worker run by hand.
 */
#include "config_internal.h"
#include "log.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* DANUBE_CONNECT_<SECTION>_<KEY>, then the short name when asked for. */
static void env_single(struct load *ld, size_t si, bool short_env)
{
	struct dc_config *cfg = ld->cfg;
	char name[512], where[600];

	for (size_t i = 0; i < cfg->nkeys; i++) {
		const struct dc_cfg_key *k = &cfg->keys[i];
		const char *v;
		char *kp;

		if (strcmp(k->section, cfg->sects[si].kind) != 0)
			continue;
		kp = dc_cfg_env_part(k->key);
		if (kp == NULL) {
			ld->oom = true;
			return;
		}
		snprintf(name, sizeof(name), ENV_PREFIX "%s_%s", cfg->sects[si].env, kp);
		free(kp);
		v = dc_cfg_env_get(ld->envp, name, strlen(name));
		if (v == NULL && short_env && k->short_env) {
			snprintf(name, sizeof(name), "%s", k->short_env);
			v = dc_cfg_env_get(ld->envp, name, strlen(name));
		}
		if (v == NULL)
			continue;
		snprintf(where, sizeof(where), "environment %s", name);
		dc_cfg_set_value(ld, si, i, v, where, false);
	}
}

/* The section of kind whose variables spell NAME as infix ("ROUTE_A_1"); made when new. */
static size_t env_sect(struct load *ld, const char *kind, const char *infix, size_t plen)
{
	struct dc_config *cfg = ld->cfg;
	size_t si;
	char *name;

	for (size_t j = 0; j < cfg->nsects; j++)
		if (strcmp(cfg->sects[j].kind, kind) == 0 && strcmp(cfg->sects[j].env, infix) == 0)
			return j;
	/* The variable's spelling of NAME is all there is: take it lower-cased. */
	if (asprintf(&name, "%s %s", kind, infix + plen - strlen(ENV_PREFIX)) < 0) {
		ld->oom = true;
		return CUR_NONE;
	}
	for (char *q = name + strlen(kind) + 1; *q; q++)
		*q = (char)tolower((unsigned char)*q);
	si = dc_cfg_add_sect(ld, kind, name);
	free(name);
	return si;
}

/*
 * DANUBE_CONNECT_<KIND>_<NAME>_<KEY> for every key of a kind. NAME may hold
 * '_', so the longest key that ends the variable wins; a NAME no file
 * declared makes a new section (a worker configured by environment alone).
 * NAME may be as long as the environment allows.
 */
static void env_kind(struct load *ld, const char *kind)
{
	struct dc_config *cfg = ld->cfg;
	char *kp = dc_cfg_env_part(kind);
	size_t plen;

	if (kp == NULL) {
		ld->oom = true;
		return;
	}
	plen = strlen(ENV_PREFIX) + strlen(kp) + 1;
	for (char *const *e = ld->envp; *e && !ld->oom; e++) {
		const char *var = *e, *eq = strchr(var, '=');
		size_t vlen, best_len = 0, si;
		long best = -1;
		char *infix, *vname, where[DC_SHOWN_NAME + 16], sv[DC_SHOWN_NAME];

		if (eq == NULL || strncmp(var, ENV_PREFIX, strlen(ENV_PREFIX)) != 0 ||
		    strncmp(var + strlen(ENV_PREFIX), kp, strlen(kp)) != 0 || var[plen - 1] != '_')
			continue;
		vlen = (size_t)(eq - var);
		for (size_t i = 0; i < cfg->nkeys; i++) {
			char *key;
			size_t klen;

			if (strcmp(cfg->keys[i].section, kind) != 0)
				continue;
			key = dc_cfg_env_part(cfg->keys[i].key);
			if (key == NULL) {
				ld->oom = true;
				break;
			}
			klen = strlen(key);
			if (vlen > plen + klen + 1 && klen > best_len &&
			    var[vlen - klen - 1] == '_' &&
			    strncmp(var + vlen - klen, key, klen) == 0) {
				best = (long)i;
				best_len = klen;
			}
			free(key);
		}
		if (best < 0)
			continue;
		infix = strndup(var + strlen(ENV_PREFIX), vlen - best_len - 1 - strlen(ENV_PREFIX));
		vname = strndup(var, vlen);
		si = infix != NULL && vname != NULL ? env_sect(ld, kind, infix, plen) : CUR_NONE;
		if (si != CUR_NONE) {
			snprintf(where, sizeof(where), "environment %s",
				 dc_log_shown(vname, sv, sizeof(sv)));
			dc_cfg_set_value(ld, si, (size_t)best, eq + 1, where, false);
		} else {
			ld->oom = true;
		}
		free(infix);
		free(vname);
	}
	free(kp);
}

static bool first_of_kind(const struct dc_config *cfg, size_t i)
{
	for (size_t j = 0; j < i; j++)
		if (strcmp(cfg->keys[j].section, cfg->keys[i].section) == 0)
			return false;
	return true;
}

void dc_cfg_apply_env(struct load *ld, bool short_env)
{
	struct dc_config *cfg = ld->cfg;

	for (size_t si = 0; si < cfg->nsects && !ld->oom; si++)
		if (!dc_cfg_multi_kind(cfg, cfg->sects[si].kind))
			env_single(ld, si, short_env);
	for (size_t i = 0; i < cfg->nkeys && !ld->oom; i++)
		if (dc_cfg_multi_kind(cfg, cfg->keys[i].section) && first_of_kind(cfg, i))
			env_kind(ld, cfg->keys[i].section);
}
