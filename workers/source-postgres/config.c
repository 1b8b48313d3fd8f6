/* source-postgres's keys: the connection, publication, slot, tables and topic template. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "event.h"
#include "pg/options.h"
#include "spg.h"

#define P "postgres"
/* clang-format off */
static const struct dc_cfg_key keys[] = {
	DC_PG_KEY_CONNINFO,
	{.section = P, .key = "publication", .type = DC_CFG_STRING},
	{.section = P, .key = "slot", .type = DC_CFG_STRING},
	{.section = P, .key = "tables", .type = DC_CFG_STRING, .def = ""},
	{.section = P, .key = "topic_template", .type = DC_CFG_STRING, .def = "/default/{schema}-{table}"},
	{.section = P, .key = "create_publication", .type = DC_CFG_BOOL, .def = "true"},
	{.section = P, .key = "create_slot", .type = DC_CFG_BOOL, .def = "true"},
	{.section = P, .key = "status_interval_ms", .type = DC_CFG_DURATION, .def = "1000", .min = 10, .max = 600000},
	DC_PG_KEYS_RECONNECT("10000"),
};
/* clang-format on */
const struct dc_cfg_table spg_keys = DC_CFG_TABLE(keys);

/* Slot and publication names: what PostgreSQL accepts for a slot, so both need no quoting. */
static bool simple_name(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
			return false;
	return true;
}

/* "dc_" + the connector name in lower case, other characters as '_'. */
static void default_name(char *out, size_t len, const char *name)
{
	size_t n = (size_t)snprintf(out, len, "dc_%s", name ? name : "source_postgres");

	for (size_t i = 3; i < n && i < len; i++) {
		char c = out[i];

		if (c >= 'A' && c <= 'Z')
			out[i] = (char)(c - 'A' + 'a');
		else if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
			out[i] = '_';
	}
}

static int load_name(char *out, size_t len, const struct dc_config *cfg, const char *key,
		     const char *name, struct dc_diag *diag)
{
	const char *v = dc_config_str(cfg, P, key);

	if (!v) {
		default_name(out, len, name);
		return 0;
	}
	if (!simple_name(v)) {
		dc_diag_add(diag,
			    "%s: %s must be 1 to 63 characters of a-z, 0-9 and '_', not starting "
			    "with a digit",
			    dc_config_where(cfg, P, key), key);
		return -1;
	}
	snprintf(out, len, "%s", v);
	return 0;
}

static bool ident_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       (!first && ((c >= '0' && c <= '9') || c == '$'));
}

/* One "name" or "schema.name" of unquoted identifiers; its length, 0 when invalid. */
static size_t table_name(const char *s, size_t n)
{
	size_t i = 0;
	int parts = 0;

	for (;;) {
		size_t start = i;

		while (i < n && ident_char(s[i], i == start))
			i++;
		if (i == start || i - start > 63)
			return 0;
		parts++;
		if (i < n && s[i] == '.' && parts == 1) {
			i++;
			continue;
		}
		return i == n ? n : 0;
	}
}

static int load_tables(struct spg_config *c, const struct dc_config *cfg, struct dc_diag *diag)
{
	const char *v = dc_config_str(cfg, P, "tables");
	size_t cap = v ? strlen(v) + 1 : 1, len = 0;
	const char *p = v;

	if (!v || strspn(v, " \t,") == strlen(v))
		return 0;
	c->tables_sql = malloc(cap + 1);
	if (!c->tables_sql) {
		dc_diag_add(diag, "out of memory");
		return -1;
	}
	while (*p) {
		const char *end = strchr(p, ',');
		size_t n;

		if (!end)
			end = p + strlen(p);
		while (p < end && (*p == ' ' || *p == '\t'))
			p++;
		n = (size_t)(end - p);
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		if (n > 0) {
			if (table_name(p, n) != n) {
				dc_diag_add(diag,
					    "%s: tables: \"%.*s\" is not a table name (NAME or "
					    "SCHEMA.NAME, unquoted identifiers)",
					    dc_config_where(cfg, P, "tables"), (int)n, p);
				free(c->tables_sql);
				c->tables_sql = NULL;
				return -1;
			}
			if (len)
				c->tables_sql[len++] = ',';
			memcpy(c->tables_sql + len, p, n);
			len += n;
		}
		p = *end ? end + 1 : end;
	}
	c->tables_sql[len] = '\0';
	return 0;
}

int spg_config_load(struct spg_config *c, const struct dc_config *cfg, const char *name,
		    struct dc_diag *diag)
{
	int bad = 0;

	memset(c, 0, sizeof(*c));
	if (dc_pg_opts_load(&c->pg, cfg, diag) != 0)
		bad = 1;
	if (load_name(c->publication, sizeof(c->publication), cfg, "publication", name, diag))
		bad = 1;
	if (load_name(c->slot, sizeof(c->slot), cfg, "slot", name, diag))
		bad = 1;
	if (load_tables(c, cfg, diag) != 0)
		bad = 1;
	c->topic_template = dc_config_str(cfg, P, "topic_template");
	if (!spg_topic_template_ok(c->topic_template)) {
		dc_diag_add(diag,
			    "%s: topic_template must look like /NAMESPACE/NAME, made of letters, "
			    "digits, '_', '-', {schema} and {table}",
			    dc_config_where(cfg, P, "topic_template"));
		bad = 1;
	}
	c->create_publication = dc_config_bool(cfg, P, "create_publication");
	c->create_slot = dc_config_bool(cfg, P, "create_slot");
	c->status_interval_ms = (uint64_t)dc_config_int(cfg, P, "status_interval_ms");
	if (bad) {
		spg_config_free(c);
		return -1;
	}
	return 0;
}

void spg_config_free(struct spg_config *c)
{
	free(c->tables_sql);
	c->tables_sql = NULL;
	dc_pg_opts_free(&c->pg);
}
