/*
 * The SQL sink-postgres sends: one INSERT ... SELECT over a batch passed as a
 * single JSON parameter, PostgreSQL mapping each record onto the table's row
 * type (jsonb_populate_record), so no JSON is parsed in C.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "skpg.h"

void skpg_buf_reset(struct skpg_buf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->p)
		b->p[0] = '\0';
}

void skpg_buf_free(struct skpg_buf *b)
{
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static bool reserve(struct skpg_buf *b, size_t n)
{
	size_t cap = b->cap ? b->cap : 256;
	char *p;

	if (b->oom)
		return false;
	if (b->len + n + 1 <= b->cap)
		return true;
	while (cap < b->len + n + 1)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void skpg_buf_add(struct skpg_buf *b, const char *s, size_t n)
{
	if (!reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void skpg_buf_str(struct skpg_buf *b, const char *s)
{
	skpg_buf_add(b, s, strlen(s));
}

void skpg_buf_printf(struct skpg_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0 || !reserve(b, (size_t)n)) {
		b->oom = true;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
}

void skpg_buf_json_str(struct skpg_buf *b, const char *s, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t run = 0;

	/* Worst case 6 bytes per input byte; reserving once keeps the loop branch-light. */
	if (!reserve(b, n * 6 + 2))
		return;
	b->p[b->len++] = '"';
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x20 && ch != '"' && ch != '\\') {
			run++;
			continue;
		}
		memcpy(b->p + b->len, s + i - run, run);
		b->len += run;
		run = 0;
		b->p[b->len++] = '\\';
		switch (ch) {
		case '"':
		case '\\':
			b->p[b->len++] = (char)ch;
			break;
		case '\n':
			b->p[b->len++] = 'n';
			break;
		case '\t':
			b->p[b->len++] = 't';
			break;
		case '\r':
			b->p[b->len++] = 'r';
			break;
		default:
			memcpy(b->p + b->len, "u00", 3);
			b->p[b->len + 3] = hex[ch >> 4];
			b->p[b->len + 4] = hex[ch & 15];
			b->len += 5;
		}
	}
	if (run) /* an empty payload may come without a buffer */
		memcpy(b->p + b->len, s + n - run, run);
	b->len += run;
	b->p[b->len++] = '"';
	b->p[b->len] = '\0';
}

void skpg_buf_ident(struct skpg_buf *b, const char *name)
{
	skpg_buf_str(b, "\"");
	for (const char *q; (q = strchr(name, '"')); name = q + 1) {
		skpg_buf_add(b, name, (size_t)(q - name) + 1);
		skpg_buf_str(b, "\"");
	}
	skpg_buf_str(b, name);
	skpg_buf_str(b, "\"");
}

char *skpg_quote_ident(const char *name)
{
	struct skpg_buf b = {0};

	skpg_buf_ident(&b, name);
	if (b.oom) {
		skpg_buf_free(&b);
		return NULL;
	}
	return b.p;
}

/* ", col" for every column the record's metadata ("m") fills. */
static void meta_columns(struct skpg_buf *b, const struct skpg_config *c, const char *prefix)
{
	if (c->topic_column) {
		skpg_buf_printf(b, ", %s", prefix);
		skpg_buf_ident(b, c->topic_column);
	}
	if (c->offset_column) {
		skpg_buf_printf(b, ", %s", prefix);
		skpg_buf_ident(b, c->offset_column);
	}
	for (size_t i = 0; i < c->nattr_cols; i++)
		skpg_buf_printf(b, ", %s%s", prefix, c->attr_cols[i].column);
}

static bool has_meta(const struct skpg_config *c)
{
	return c->topic_column || c->offset_column || c->nattr_cols > 0;
}

/* "first, rest..." of the columns written, each with prefix. */
static void column_list(struct skpg_buf *b, const struct skpg_config *c, char *const *columns,
			size_t ncolumns, const char *prefix)
{
	if (c->payload_column) {
		skpg_buf_str(b, prefix);
		skpg_buf_ident(b, c->payload_column);
	} else {
		for (size_t i = 0; i < ncolumns; i++)
			skpg_buf_printf(b, "%s%s%s", i ? ", " : "", prefix, columns[i]);
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
static void set_one(struct skpg_buf *b, const struct skpg_config *c, const char *col, size_t *set)
{
	if (!col) {
		b->oom = true;
		return;
	}
	if (is_key(c, col))
		return;
	skpg_buf_printf(b, "%s%s = EXCLUDED.%s", (*set)++ ? ", " : "", col, col);
}

static void set_plain(struct skpg_buf *b, const struct skpg_config *c, const char *name,
		      size_t *set)
{
	char *q = skpg_quote_ident(name);

	set_one(b, c, q, set);
	free(q);
}

/* ON CONFLICT (keys) DO UPDATE SET every other written column (or DO NOTHING). */
static void on_conflict(struct skpg_buf *b, const struct skpg_config *c, char *const *columns,
			size_t ncolumns)
{
	struct skpg_buf set_list = {0};
	size_t set = 0;

	skpg_buf_str(b, " ON CONFLICT (");
	for (size_t i = 0; i < c->nkeys; i++) {
		skpg_buf_str(b, i ? ", " : "");
		skpg_buf_ident(b, c->keys[i]);
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
		skpg_buf_str(b, ") DO NOTHING"); /* every column is a key: nothing to update */
	else
		skpg_buf_printf(b, ") DO UPDATE SET %s", set_list.p);
	skpg_buf_free(&set_list);
}

char *skpg_sql_insert(const struct skpg_config *c, char *const *columns, size_t ncolumns)
{
	struct skpg_buf b = {0};

	if (c->exactly_once)
		skpg_buf_str(&b, "WITH ins AS (");
	skpg_buf_printf(&b, "INSERT INTO %s (", c->table);
	column_list(&b, c, columns, ncolumns, "");
	skpg_buf_str(&b, ") SELECT ");
	if (c->upsert) {
		/* One row per key: the batch's last record wins, as it would one at a time. */
		skpg_buf_str(&b, "DISTINCT ON (");
		for (size_t i = 0; i < c->nkeys; i++) {
			skpg_buf_str(&b, i ? ", r." : "r.");
			skpg_buf_ident(&b, c->keys[i]);
		}
		skpg_buf_str(&b, ") ");
	}
	column_list(&b, c, columns, ncolumns, "r.");
	skpg_buf_printf(&b,
			" FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS e(v, n)"
			" CROSS JOIN LATERAL jsonb_populate_record(NULL::%s, ",
			c->table);
	if (c->payload_column) {
		/* Names carry no quote or backslash (checked at load): a plain literal is safe. */
		skpg_buf_printf(&b, "jsonb_build_object('%s', (e.v->>'p')::jsonb)",
				c->payload_column);
	} else {
		skpg_buf_str(&b, "(e.v->>'p')::jsonb");
	}
	if (has_meta(c))
		skpg_buf_str(&b, " || (e.v->'m')");
	skpg_buf_str(&b, ") AS r");
	if (c->upsert) {
		skpg_buf_str(&b, " ORDER BY ");
		for (size_t i = 0; i < c->nkeys; i++) {
			skpg_buf_str(&b, i ? ", r." : "r.");
			skpg_buf_ident(&b, c->keys[i]);
		}
		skpg_buf_str(&b, ", e.n DESC");
		on_conflict(&b, c, columns, ncolumns);
	}
	if (c->exactly_once)
		skpg_buf_printf(&b,
				") INSERT INTO %s AS o (topic, subscription, \"offset\")"
				" SELECT key, $3, value::bigint FROM jsonb_each_text($2::jsonb)"
				" ON CONFLICT (topic, subscription) DO UPDATE SET"
				" \"offset\" = GREATEST(o.\"offset\", EXCLUDED.\"offset\"),"
				" updated_at = now()",
				c->offsets_table);
	if (b.oom) {
		skpg_buf_free(&b);
		return NULL;
	}
	return b.p;
}

char *skpg_sql_create_offsets(const struct skpg_config *c)
{
	struct skpg_buf b = {0};

	skpg_buf_printf(&b,
			"CREATE TABLE IF NOT EXISTS %s (topic text NOT NULL,"
			" subscription text NOT NULL, \"offset\" bigint NOT NULL,"
			" updated_at timestamptz NOT NULL DEFAULT now(),"
			" PRIMARY KEY (topic, subscription))",
			c->offsets_table);
	if (b.oom) {
		skpg_buf_free(&b);
		return NULL;
	}
	return b.p;
}

char *skpg_sql_load_offsets(const struct skpg_config *c)
{
	struct skpg_buf b = {0};

	skpg_buf_printf(&b, "SELECT topic, \"offset\" FROM %s WHERE subscription = $1",
			c->offsets_table);
	if (b.oom) {
		skpg_buf_free(&b);
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

void skpg_sql_batch(struct skpg_buf *b, const struct skpg_config *c,
		    const struct dn_message *const *msgs, const size_t *idx, size_t n)
{
	skpg_buf_str(b, "[");
	for (size_t i = 0; i < n; i++) {
		const struct dn_message *m = msgs[idx[i]];
		const char *sep = "";

		skpg_buf_str(b, i ? ",{\"p\":" : "{\"p\":");
		/* As a string: PostgreSQL parses it, and rejects it alone when it is not JSON. */
		skpg_buf_json_str(b, (const char *)m->payload, m->payload_len);
		if (has_meta(c)) {
			skpg_buf_str(b, ",\"m\":{");
			if (c->topic_column) {
				skpg_buf_json_str(b, c->topic_column, strlen(c->topic_column));
				skpg_buf_str(b, ":");
				skpg_buf_json_str(b, m->topic, strlen(m->topic));
				sep = ",";
			}
			if (c->offset_column) {
				skpg_buf_str(b, sep);
				skpg_buf_json_str(b, c->offset_column, strlen(c->offset_column));
				skpg_buf_printf(b, ":%llu", (unsigned long long)m->offset);
				sep = ",";
			}
			for (size_t j = 0; j < c->nattr_cols; j++) {
				const char *v = attr_value(m, c->attr_cols[j].attr);

				skpg_buf_str(b, sep);
				skpg_buf_json_str(b, c->attr_cols[j].name,
						  strlen(c->attr_cols[j].name));
				skpg_buf_str(b, ":");
				if (v)
					skpg_buf_json_str(b, v, strlen(v));
				else
					skpg_buf_str(b, "null");
				sep = ",";
			}
			skpg_buf_str(b, "}");
		}
		skpg_buf_str(b, "}");
	}
	skpg_buf_str(b, "]");
}

void skpg_sql_offsets(struct skpg_buf *b, const struct dn_message *const *msgs, const size_t *idx,
		      size_t n)
{
	const char *sep = "";

	skpg_buf_str(b, "{");
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
		skpg_buf_str(b, sep);
		skpg_buf_json_str(b, m->topic, strlen(m->topic));
		skpg_buf_printf(b, ":%llu", (unsigned long long)max);
		sep = ",";
	}
	skpg_buf_str(b, "}");
}
