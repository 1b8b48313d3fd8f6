/* sink-postgres's [postgres] keys and their checks (the connection's through pg/options.h). */
#include <stdlib.h>
#include <string.h>

#include "pg/options.h"
#include "skpg.h"

#define P "postgres"
static const char *const modes[] = {"insert", "upsert", NULL};

/* clang-format off */
static const struct dc_cfg_key keys[] = {
	DC_PG_KEY_CONNINFO,
	{.section = P, .key = "table", .type = DC_CFG_STRING, .flags = DC_CFG_REQUIRED},
	{.section = P, .key = "mode", .type = DC_CFG_ENUM, .def = "insert", .choices = modes},
	{.section = P, .key = "key_columns", .type = DC_CFG_STRING},
	{.section = P, .key = "payload_column", .type = DC_CFG_STRING},
	{.section = P, .key = "columns", .type = DC_CFG_STRING},
	{.section = P, .key = "topic_column", .type = DC_CFG_STRING},
	{.section = P, .key = "offset_column", .type = DC_CFG_STRING},
	{.section = P, .key = "attribute_columns", .type = DC_CFG_STRING},
	{.section = P, .key = "exactly_once", .type = DC_CFG_BOOL, .def = "false"},
	{.section = P, .key = "offsets_table", .type = DC_CFG_STRING, .def = "danube_connect_offsets"},
	{.section = P, .key = "connect_timeout_ms", .type = DC_CFG_DURATION, .def = "10000", .min = 100, .max = 3600000},
	{.section = P, .key = "write_timeout_ms", .type = DC_CFG_DURATION, .def = "60000", .min = 100, .max = 3600000},
	DC_PG_KEYS_RECONNECT("30000"),
};
/* clang-format on */
const struct dc_cfg_table skpg_keys = DC_CFG_TABLE(keys);

static void free_list(char **l, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(l[i]);
	free(l);
}

/*
 * Splits "a, b,c" into trimmed malloc'd names. Returns 0, -1 on an empty
 * element (why in err), -2 when out of memory.
 */
static int split_list(const char *s, char ***out, size_t *n, const char **err)
{
	char **l = NULL;
	size_t cnt = 0;

	*out = NULL;
	*n = 0;
	while (1) {
		const char *end = strchr(s, ','), *a = s, *z;
		char **bigger;

		if (!end)
			end = s + strlen(s);
		z = end;
		while (a < z && (*a == ' ' || *a == '\t'))
			a++;
		while (z > a && (z[-1] == ' ' || z[-1] == '\t'))
			z--;
		if (a == z) {
			free_list(l, cnt);
			*err = "an empty name in the list";
			return -1;
		}
		bigger = realloc(l, (cnt + 1) * sizeof(*l));
		if (!bigger || !(bigger[cnt] = strndup(a, (size_t)(z - a)))) {
			free_list(bigger ? bigger : l, cnt);
			return -2;
		}
		l = bigger;
		cnt++;
		if (!*end)
			break;
		s = end + 1;
	}
	*out = l;
	*n = cnt;
	return 0;
}

static bool in_list(char *const *l, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(l[i], name) == 0)
			return true;
	return false;
}

/* "name" or "schema.name", each part quoted; NULL with why when malformed. */
static char *quote_table(const char *t, const char **why)
{
	const char *dot = strchr(t, '.');
	struct dc_buf b = {0};
	char *part;

	*why = NULL;
	if (!*t || (dot && (dot == t || !dot[1] || strchr(dot + 1, '.')))) {
		*why = "must be NAME or SCHEMA.NAME";
		return NULL;
	}
	if (dot) {
		part = strndup(t, (size_t)(dot - t));
		if (!part)
			return NULL;
		skpg_add_ident(&b, part);
		free(part);
		dc_buf_str(&b, ".");
		t = dot + 1;
	}
	skpg_add_ident(&b, t);
	if (b.oom) {
		dc_buf_free(&b);
		return NULL;
	}
	return b.p;
}

static int load_attr_cols(struct skpg_config *c, const char *spec, const char *where,
			  struct dc_diag *diag)
{
	char **items;
	size_t n;
	const char *err;
	int rc = split_list(spec, &items, &n, &err);

	if (rc == -1) {
		dc_diag_add(diag, "%s: attribute_columns: %s", where, err);
		return -1;
	}
	if (rc == -2 || !(c->attr_cols = calloc(n, sizeof(*c->attr_cols)))) {
		free_list(items, rc == 0 ? n : 0);
		dc_diag_add(diag, "out of memory");
		return -1;
	}
	for (size_t i = 0; i < n; i++) {
		char *eq = strchr(items[i], '='), *col = items[i], *attr;
		struct skpg_attr_col *a = &c->attr_cols[c->nattr_cols];

		if (!eq || eq == col || !eq[1]) {
			dc_diag_add(diag, "%s: attribute_columns: '%s' is not COLUMN=ATTRIBUTE",
				    where, items[i]);
			rc = -1;
			continue;
		}
		*eq = '\0';
		attr = eq + 1;
		while (eq > col && (eq[-1] == ' ' || eq[-1] == '\t'))
			*--eq = '\0';
		while (*attr == ' ' || *attr == '\t')
			attr++;
		a->name = strdup(col);
		a->attr = strdup(attr);
		a->column = skpg_quote_ident(col);
		c->nattr_cols++;
		if (!a->name || !a->attr || !a->column) {
			dc_diag_add(diag, "out of memory");
			rc = -1;
		}
	}
	free_list(items, n);
	return rc;
}

/* A column name ends up in a SQL string literal too: keep it free of what would need escaping. */
static int check_name(const char *name, const char *key, const char *where, struct dc_diag *diag)
{
	if (strpbrk(name, "'\\\"")) {
		dc_diag_add(diag, "%s: %s: '%s': quotes and backslashes are not supported in names",
			    where, key, name);
		return -1;
	}
	return 0;
}

static int load_list(const struct dc_config *cfg, const char *key, char ***out, size_t *n,
		     struct dc_diag *diag)
{
	const char *v = dc_config_str(cfg, P, key), *err;
	int rc;

	*out = NULL;
	*n = 0;
	if (!v || !*v)
		return 0;
	rc = split_list(v, out, n, &err);
	if (rc == -1)
		dc_diag_add(diag, "%s: %s: %s", dc_config_where(cfg, P, key), key, err);
	else if (rc == -2)
		dc_diag_add(diag, "out of memory");
	for (size_t i = 0; rc == 0 && i < *n; i++)
		if (check_name((*out)[i], key, dc_config_where(cfg, P, key), diag))
			rc = -1;
	return rc ? -1 : 0;
}

static const char *nonempty(const char *s)
{
	return s && *s ? s : NULL;
}

int skpg_config_load(struct skpg_config *c, const struct dc_config *cfg, const char *name,
		     struct dc_diag *diag)
{
	const char *type;
	const char *why, *v;
	int bad = 0;

	memset(c, 0, sizeof(*c));
	if (dc_pg_opts_load(&c->pg, cfg, diag) != 0)
		bad = 1;
	v = dc_config_str(cfg, P, "table");
	if (v && !(c->table = quote_table(v, &why))) {
		dc_diag_add(diag, "%s: table: %s", dc_config_where(cfg, P, "table"),
			    why ? why : "out of memory");
		bad = 1;
	}
	c->upsert = strcmp(dc_config_str(cfg, P, "mode"), "upsert") == 0;
	c->payload_column = nonempty(dc_config_str(cfg, P, "payload_column"));
	c->topic_column = nonempty(dc_config_str(cfg, P, "topic_column"));
	c->offset_column = nonempty(dc_config_str(cfg, P, "offset_column"));
	if (load_list(cfg, "key_columns", &c->keys, &c->nkeys, diag) ||
	    load_list(cfg, "columns", &c->columns, &c->ncolumns, diag))
		bad = 1;
	if (c->payload_column && check_name(c->payload_column, "payload_column",
					    dc_config_where(cfg, P, "payload_column"), diag))
		bad = 1;
	if (c->topic_column && check_name(c->topic_column, "topic_column",
					  dc_config_where(cfg, P, "topic_column"), diag))
		bad = 1;
	if (c->offset_column && check_name(c->offset_column, "offset_column",
					   dc_config_where(cfg, P, "offset_column"), diag))
		bad = 1;
	v = nonempty(dc_config_str(cfg, P, "attribute_columns"));
	if (v && load_attr_cols(c, v, dc_config_where(cfg, P, "attribute_columns"), diag))
		bad = 1;
	for (size_t i = 0; i < c->nattr_cols; i++)
		if (c->attr_cols[i].name &&
		    check_name(c->attr_cols[i].name, "attribute_columns",
			       dc_config_where(cfg, P, "attribute_columns"), diag))
			bad = 1;
	if (c->upsert && c->nkeys == 0) {
		dc_diag_add(diag, "%s: mode = upsert needs key_columns",
			    dc_config_where(cfg, P, "mode"));
		bad = 1;
	}
	if (!c->upsert && c->nkeys > 0) {
		dc_diag_add(diag, "%s: key_columns is only used with mode = upsert",
			    dc_config_where(cfg, P, "key_columns"));
		bad = 1;
	}
	if (c->payload_column && c->ncolumns > 0) {
		dc_diag_add(diag,
			    "%s: columns maps a JSON object's fields: not with payload_column",
			    dc_config_where(cfg, P, "columns"));
		bad = 1;
	}
	/* The keys must be among the columns written, or ON CONFLICT cannot use them. */
	for (size_t i = 0; i < c->nkeys && (c->payload_column || c->ncolumns > 0); i++) {
		const char *k = c->keys[i];
		bool found = in_list(c->columns, c->ncolumns, k) ||
			     (c->payload_column && strcmp(k, c->payload_column) == 0) ||
			     (c->topic_column && strcmp(k, c->topic_column) == 0) ||
			     (c->offset_column && strcmp(k, c->offset_column) == 0);

		for (size_t j = 0; j < c->nattr_cols && !found; j++)
			found = c->attr_cols[j].name && strcmp(k, c->attr_cols[j].name) == 0;
		if (!found) {
			dc_diag_add(diag, "%s: key column '%s' is not among the columns written",
				    dc_config_where(cfg, P, "key_columns"), k);
			bad = 1;
		}
	}
	c->exactly_once = dc_config_bool(cfg, P, "exactly_once");
	v = dc_config_str(cfg, P, "offsets_table");
	if (!(c->offsets_table = quote_table(v, &why))) {
		dc_diag_add(diag, "%s: offsets_table: %s", dc_config_where(cfg, P, "offsets_table"),
			    why ? why : "out of memory");
		bad = 1;
	}
	type = dc_config_str(cfg, "danube", "subscription_type");
	c->single_consumer =
		type && (strcmp(type, "exclusive") == 0 || strcmp(type, "failover") == 0);
	/* The stored offset is per partition: a second consumer of it would rewrite its rows. */
	if (c->exactly_once && !c->single_consumer) {
		dc_diag_add(diag,
			    "%s: exactly_once needs an exclusive or failover subscription, "
			    "not subscription_type = %s (%s): rows would be written twice",
			    dc_config_where(cfg, P, "exactly_once"), type ? type : "unset",
			    dc_config_where(cfg, "danube", "subscription_type"));
		bad = 1;
	}
	c->subscription = dc_config_str(cfg, "danube", "subscription");
	if (!c->subscription)
		c->subscription = name;
	c->pg.connect_timeout_ms = (uint64_t)dc_config_int(cfg, P, "connect_timeout_ms");
	c->pg.query_timeout_ms = (uint64_t)dc_config_int(cfg, P, "write_timeout_ms");
	if (bad) {
		skpg_config_free(c);
		return -1;
	}
	return 0;
}

void skpg_config_free(struct skpg_config *c)
{
	dc_pg_opts_free(&c->pg);
	free(c->table);
	free_list(c->keys, c->nkeys);
	free_list(c->columns, c->ncolumns);
	for (size_t i = 0; i < c->nattr_cols; i++) {
		free(c->attr_cols[i].column);
		free(c->attr_cols[i].name);
		free(c->attr_cols[i].attr);
	}
	free(c->attr_cols);
	free(c->offsets_table);
	memset(c, 0, sizeof(*c));
}
