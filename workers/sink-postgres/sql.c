/*
 * The SQL sink-postgres sends: one INSERT ... SELECT over a batch passed as a
 * single JSON parameter, PostgreSQL mapping each record onto the table's row
 * type (jsonb_populate_record), so no JSON is parsed in C.
 */
#include <stdlib.h>
#include <string.h>

#include "skpg.h"

void skpg_add_ident(struct dc_buf *b, const char *name)
{
	dc_buf_str(b, "\"");
	for (const char *q; (q = strchr(name, '"')); name = q + 1) {
		dc_buf_add(b, name, (size_t)(q - name) + 1);
		dc_buf_str(b, "\"");
	}
	dc_buf_str(b, name);
	dc_buf_str(b, "\"");
}

char *skpg_quote_ident(const char *name)
{
	struct dc_buf b = {0};

	skpg_add_ident(&b, name);
	if (b.oom) {
		dc_buf_free(&b);
		return NULL;
	}
	return b.p;
}

/* ", col" for every column the record's metadata ("m") fills. */
static void meta_columns(struct dc_buf *b, const struct skpg_config *c, const char *prefix)
{
	if (c->topic_column) {
		dc_buf_printf(b, ", %s", prefix);
		skpg_add_ident(b, c->topic_column);
	}
	if (c->offset_column) {
		dc_buf_printf(b, ", %s", prefix);
		skpg_add_ident(b, c->offset_column);
	}
	for (size_t i = 0; i < c->nattr_cols; i++)
		dc_buf_printf(b, ", %s%s", prefix, c->attr_cols[i].column);
}

static bool has_meta(const struct skpg_config *c)
{
	return c->topic_column || c->offset_column || c->nattr_cols > 0;
}

/* "first, rest..." of the columns written, each with prefix. */
static void column_list(struct dc_buf *b, const struct skpg_config *c, char *const *columns,
			size_t ncolumns, const char *prefix)
{
	if (c->payload_column) {
		dc_buf_str(b, prefix);
		skpg_add_ident(b, c->payload_column);
	} else {
		for (size_t i = 0; i < ncolumns; i++)
			dc_buf_printf(b, "%s%s%s", i ? ", " : "", prefix, columns[i]);
	}
	meta_columns(b, c, prefix);
}

static bool is_key(const struct skpg_config *c, const char *quoted)
{
	bool found = false;

	for (size_t i = 0; i < c->nkeys && !found; i++) {
		char *q = skpg_quote_ident(c->keys[i]);

		found = q && strcmp(q, quoted) == 0;
		free(q);
	}
	return found;
}

/* ", col = EXCLUDED.col" unless col (quoted) is a key. */
static void set_one(struct dc_buf *b, const struct skpg_config *c, const char *col, size_t *set)
{
	if (!col) {
		b->oom = true;
		return;
	}
	if (is_key(c, col))
		return;
	dc_buf_printf(b, "%s%s = EXCLUDED.%s", (*set)++ ? ", " : "", col, col);
}

static void set_plain(struct dc_buf *b, const struct skpg_config *c, const char *name, size_t *set)
{
	char *q = skpg_quote_ident(name);

	set_one(b, c, q, set);
	free(q);
}

/* ON CONFLICT (keys) DO UPDATE SET every other written column (or DO NOTHING). */
static void on_conflict(struct dc_buf *b, const struct skpg_config *c, char *const *columns,
			size_t ncolumns)
{
	struct dc_buf set_list = {0};
	size_t set = 0;

	dc_buf_str(b, " ON CONFLICT (");
	for (size_t i = 0; i < c->nkeys; i++) {
		dc_buf_str(b, i ? ", " : "");
		skpg_add_ident(b, c->keys[i]);
	}
	if (c->payload_column)
		set_plain(&set_list, c, c->payload_column, &set);
	else
		for (size_t i = 0; i < ncolumns; i++)
			set_one(&set_list, c, columns[i], &set);
	if (c->topic_column)
		set_plain(&set_list, c, c->topic_column, &set);
	if (c->offset_column)
		set_plain(&set_list, c, c->offset_column, &set);
	for (size_t i = 0; i < c->nattr_cols; i++)
		set_one(&set_list, c, c->attr_cols[i].column, &set);
	if (set_list.oom)
		b->oom = true;
	else if (set == 0)
		dc_buf_str(b, ") DO NOTHING"); /* every column is a key: nothing to update */
	else
		dc_buf_printf(b, ") DO UPDATE SET %s", set_list.p);
	dc_buf_free(&set_list);
}

char *skpg_sql_insert(const struct skpg_config *c, char *const *columns, size_t ncolumns)
{
	struct dc_buf b = {0};

	if (c->exactly_once)
		dc_buf_str(&b, "WITH ins AS (");
	dc_buf_printf(&b, "INSERT INTO %s (", c->table);
	column_list(&b, c, columns, ncolumns, "");
	dc_buf_str(&b, ") SELECT ");
	if (c->upsert) {
		/* One row per key: the batch's last record wins, as it would one at a time. */
		dc_buf_str(&b, "DISTINCT ON (");
		for (size_t i = 0; i < c->nkeys; i++) {
			dc_buf_str(&b, i ? ", r." : "r.");
			skpg_add_ident(&b, c->keys[i]);
		}
		dc_buf_str(&b, ") ");
	}
	column_list(&b, c, columns, ncolumns, "r.");
	dc_buf_printf(&b,
		      " FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(v, n)"
		      " CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, ",
		      c->table);
	if (c->payload_column) {
		/* Names carry no quote or backslash (checked at load): a plain literal is safe. */
		dc_buf_printf(&b, "jsonb_build_object('%s', (e.v->>'p')::jsonb)",
			      c->payload_column);
	} else {
		dc_buf_str(&b, "(e.v->>'p')::jsonb");
	}
	if (has_meta(c))
		dc_buf_str(&b, " || (e.v->'m')");
	dc_buf_str(&b, ") AS r");
	if (c->upsert) {
		dc_buf_str(&b, " ORDER BY ");
		for (size_t i = 0; i < c->nkeys; i++) {
			dc_buf_str(&b, i ? ", r." : "r.");
			skpg_add_ident(&b, c->keys[i]);
		}
		dc_buf_str(&b, ", e.n DESC");
		on_conflict(&b, c, columns, ncolumns);
	}
	if (c->exactly_once)
		dc_buf_printf(&b,
			      ") INSERT INTO %s AS o (topic, subscription, \"offset\")"
			      " SELECT key, $3, value::bigint FROM jsonb_each_text($2::jsonb)"
			      " ON CONFLICT (topic, subscription) DO UPDATE SET"
			      " \"offset\" = GREATEST(o.\"offset\", EXCLUDED.\"offset\"),"
			      " updated_at = now()",
			      c->offsets_table);
	if (b.oom) {
		dc_buf_free(&b);
		return NULL;
	}
	return b.p;
}

char *skpg_sql_create_offsets(const struct skpg_config *c)
{
	struct dc_buf b = {0};

	dc_buf_printf(&b,
		      "CREATE TABLE IF NOT EXISTS %s (topic text NOT NULL,"
		      " subscription text NOT NULL, \"offset\" bigint NOT NULL,"
		      " updated_at timestamptz NOT NULL DEFAULT now(),"
		      " PRIMARY KEY (topic, subscription))",
		      c->offsets_table);
	if (b.oom) {
		dc_buf_free(&b);
		return NULL;
	}
	return b.p;
}

char *skpg_sql_load_offsets(const struct skpg_config *c)
{
	struct dc_buf b = {0};

	dc_buf_printf(&b, "SELECT topic, \"offset\" FROM %s WHERE subscription = $1",
		      c->offsets_table);
	if (b.oom) {
		dc_buf_free(&b);
		return NULL;
	}
	return b.p;
}

const char skpg_sql_default_columns[] =
	"SELECT a.attname FROM pg_catalog.pg_attribute a WHERE a.attrelid = $1::regclass"
	" AND a.attnum > 0 AND NOT a.attisdropped AND NOT a.atthasdef"
	" AND a.attidentity = '' AND a.attgenerated = '' ORDER BY a.attnum";

static const char *attr_value(const struct dn_message *m, const char *key)
{
	for (size_t i = 0; i < m->nattrs; i++)
		if (strcmp(m->attrs[i].key, key) == 0)
			return m->attrs[i].value;
	return NULL;
}

void skpg_sql_batch(struct dc_buf *b, const struct skpg_config *c,
		    const struct dn_message *const *msgs, const size_t *idx, size_t n)
{
	dc_buf_str(b, "[");
	for (size_t i = 0; i < n; i++) {
		const struct dn_message *m = msgs[idx[i]];
		const char *sep = "";

		dc_buf_str(b, i ? ",{\"p\":" : "{\"p\":");
		/* As a string: PostgreSQL parses it, and rejects it alone when it is not JSON. */
		dc_buf_json_str(b, (const char *)m->payload, m->payload_len);
		if (has_meta(c)) {
			dc_buf_str(b, ",\"m\":{");
			if (c->topic_column) {
				dc_buf_json_str(b, c->topic_column, strlen(c->topic_column));
				dc_buf_str(b, ":");
				dc_buf_json_str(b, m->topic, strlen(m->topic));
				sep = ",";
			}
			if (c->offset_column) {
				dc_buf_str(b, sep);
				dc_buf_json_str(b, c->offset_column, strlen(c->offset_column));
				dc_buf_printf(b, ":%llu", (unsigned long long)m->offset);
				sep = ",";
			}
			for (size_t j = 0; j < c->nattr_cols; j++) {
				const char *v = attr_value(m, c->attr_cols[j].attr);

				dc_buf_str(b, sep);
				dc_buf_json_str(b, c->attr_cols[j].name,
						strlen(c->attr_cols[j].name));
				dc_buf_str(b, ":");
				if (v)
					dc_buf_json_str(b, v, strlen(v));
				else
					dc_buf_str(b, "null");
				sep = ",";
			}
			dc_buf_str(b, "}");
		}
		dc_buf_str(b, "}");
	}
	dc_buf_str(b, "]");
}

void skpg_sql_offsets(struct dc_buf *b, const struct dn_message *const *msgs, const size_t *idx,
		      size_t n)
{
	const char *sep = "";

	dc_buf_str(b, "{");
	for (size_t i = 0; i < n; i++) {
		const struct dn_message *m = msgs[idx[i]];
		uint64_t max = m->offset;
		bool first = true;

		/* Once per topic: its first record in the list emits the topic's highest offset. */
		for (size_t j = 0; j < i && first; j++)
			first = strcmp(msgs[idx[j]]->topic, m->topic) != 0;
		if (!first)
			continue;
		for (size_t j = i + 1; j < n; j++)
			if (strcmp(msgs[idx[j]]->topic, m->topic) == 0 &&
			    msgs[idx[j]]->offset > max)
				max = msgs[idx[j]]->offset;
		dc_buf_str(b, sep);
		dc_buf_json_str(b, m->topic, strlen(m->topic));
		dc_buf_printf(b, ":%llu", (unsigned long long)max);
		sep = ",";
	}
	dc_buf_str(b, "}");
}
