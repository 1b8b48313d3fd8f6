/*
 * Row changes to JSON events: values of numeric and boolean types become JSON
 * numbers and booleans, everything else a string, SQL NULL null.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "event.h"

/* pg_type oids (catalog/pg_type.dat): stable across PostgreSQL versions. */
#define OID_BOOL    16
#define OID_INT8    20
#define OID_INT2    21
#define OID_INT4    23
#define OID_OID     26
#define OID_FLOAT4  700
#define OID_FLOAT8  701
#define OID_NUMERIC 1700

/* Seconds from the Unix epoch to PostgreSQL's (2000-01-01). */
#define PG_EPOCH_UNIX 946684800LL

void spg_lsn_format(uint64_t lsn, char *out, size_t len)
{
	snprintf(out, len, "%X/%X", (unsigned)(lsn >> 32), (unsigned)(lsn & 0xffffffffu));
}

void spg_time_format(int64_t pg_us, char *out, size_t len)
{
	int64_t secs = pg_us / 1000000, us = pg_us % 1000000;
	time_t t;
	struct tm tm;

	if (us < 0) {
		us += 1000000;
		secs--;
	}
	t = (time_t)(secs + PG_EPOCH_UNIX);
	if (!gmtime_r(&t, &tm)) {
		snprintf(out, len, "1970-01-01T00:00:00.000000Z");
		return;
	}
	snprintf(out, len, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900, tm.tm_mon + 1,
		 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (int)us);
}

/* The JSON number grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)? */
static bool json_number(const char *s, size_t n)
{
	size_t i = 0, d;

	if (i < n && s[i] == '-')
		i++;
	if (i < n && s[i] == '0') {
		i++;
	} else {
		for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return false;
	}
	if (i < n && s[i] == '.') {
		for (d = ++i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return false;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		for (d = i; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			;
		if (i == d)
			return false;
	}
	return i == n;
}

static void json_value(struct dc_buf *b, uint32_t type, const struct spg_value *v)
{
	if (v->kind == 'n') {
		dc_buf_str(b, "null");
		return;
	}
	switch (type) {
	case OID_BOOL:
		if (v->kind == 't' && v->len == 1 && (v->data[0] == 't' || v->data[0] == 'f')) {
			dc_buf_str(b, v->data[0] == 't' ? "true" : "false");
			return;
		}
		break;
	case OID_INT2:
	case OID_INT4:
	case OID_INT8:
	case OID_OID:
	case OID_FLOAT4:
	case OID_FLOAT8:
	case OID_NUMERIC:
		/* NaN and Infinity are not JSON numbers: they stay strings. */
		if (v->kind == 't' && json_number(v->data, v->len)) {
			dc_buf_add(b, v->data, v->len);
			return;
		}
		break;
	default:
		break;
	}
	dc_buf_json_str(b, v->data ? v->data : "", v->len);
}

/* {"col":value,...}; keys_only keeps the replica identity's columns. Unchanged TOAST is left out.
 */
static void json_row(struct dc_buf *b, const struct spg_relation *rel, const struct spg_tuple *t,
		     bool keys_only)
{
	bool first = true;

	dc_buf_add(b, "{", 1);
	for (uint16_t i = 0; i < t->ncols; i++) {
		const struct spg_column *c = &rel->cols[i];

		if (t->vals[i].kind == 'u' || (keys_only && !c->key))
			continue;
		if (!first)
			dc_buf_add(b, ",", 1);
		first = false;
		dc_buf_json_str(b, c->name, strlen(c->name));
		dc_buf_add(b, ":", 1);
		json_value(b, c->type, &t->vals[i]);
	}
	dc_buf_add(b, "}", 1);
}

/* The key columns' values: the text itself for one column, a JSON array for several. */
static void routing_key(struct dc_buf *k, const struct spg_relation *rel, const struct spg_tuple *t)
{
	unsigned nkeys = 0;

	for (uint16_t i = 0; i < rel->ncols; i++)
		nkeys += rel->cols[i].key;
	if (nkeys == 0 || !t)
		return;
	if (nkeys > 1)
		dc_buf_add(k, "[", 1);
	for (uint16_t i = 0, n = 0; i < t->ncols; i++) {
		const struct spg_value *v = &t->vals[i];

		if (!rel->cols[i].key)
			continue;
		if (nkeys == 1) {
			dc_buf_add(k, v->data ? v->data : "", v->len);
			return;
		}
		if (n++)
			dc_buf_add(k, ",", 1);
		if (v->kind == 'n' || v->kind == 'u')
			dc_buf_str(k, "null");
		else
			dc_buf_json_str(k, v->data, v->len);
	}
	dc_buf_add(k, "]", 1);
}

int spg_event_build(const struct spg_relation *rel, const char *op, const struct spg_msg *m,
		    const struct spg_txn *txn, struct dc_buf *json, struct dc_buf *key)
{
	char text[64];
	const struct spg_tuple *keyrow = NULL;
	bool truncate = strcmp(op, "truncate") == 0;

	dc_buf_reset(json);
	dc_buf_reset(key);
	dc_buf_str(json, "{\"op\":\"");
	dc_buf_str(json, op);
	dc_buf_str(json, "\",\"schema\":");
	dc_buf_json_str(json, rel->schema, strlen(rel->schema));
	dc_buf_str(json, ",\"table\":");
	dc_buf_json_str(json, rel->name, strlen(rel->name));
	if (!truncate && m->type != SPG_DELETE) {
		dc_buf_str(json, ",\"new\":");
		json_row(json, rel, &m->new_tuple, false);
		keyrow = &m->new_tuple;
	}
	if (!truncate && m->old_kind) {
		dc_buf_str(json, ",\"old\":");
		json_row(json, rel, &m->old_tuple, m->old_kind == 'K');
		if (!keyrow)
			keyrow = &m->old_tuple;
	}
	spg_lsn_format(txn->commit_lsn, text, sizeof(text));
	dc_buf_str(json, ",\"lsn\":\"");
	dc_buf_str(json, text);
	spg_time_format(txn->commit_time, text, sizeof(text));
	dc_buf_str(json, "\",\"commit_time\":\"");
	dc_buf_str(json, text);
	snprintf(text, sizeof(text), "\",\"xid\":%u}", txn->xid);
	dc_buf_str(json, text);
	if (keyrow)
		routing_key(key, rel, keyrow);
	else
		dc_buf_add(key, "", 0);
	return json->oom || key->oom ? -ENOMEM : 0;
}

static bool topic_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static void add_sanitized(struct dc_buf *out, const char *s)
{
	for (; *s; s++) {
		char c = topic_char_ok(*s) ? *s : '_';

		dc_buf_add(out, &c, 1);
	}
}

int spg_topic_for(const char *tmpl, const struct spg_relation *rel, struct dc_buf *out)
{
	const char *p = tmpl;

	dc_buf_reset(out);
	while (*p) {
		if (strncmp(p, "{schema}", 8) == 0) {
			add_sanitized(out, rel->schema);
			p += 8;
		} else if (strncmp(p, "{table}", 7) == 0) {
			add_sanitized(out, rel->name);
			p += 7;
		} else {
			dc_buf_add(out, p++, 1);
		}
	}
	dc_buf_add(out, "", 0);
	return out->oom ? -ENOMEM : 0;
}

bool spg_topic_template_ok(const char *tmpl)
{
	const char *p = tmpl;
	int slashes = 0;
	size_t seglen = 0;

	if (!p || *p != '/')
		return false;
	while (*p) {
		if (*p == '/') {
			if (slashes++ > 0 && seglen == 0)
				return false;
			seglen = 0;
			p++;
		} else if (strncmp(p, "{schema}", 8) == 0) {
			p += 8, seglen++;
		} else if (strncmp(p, "{table}", 7) == 0) {
			p += 7, seglen++;
		} else if (topic_char_ok(*p)) {
			p++, seglen++;
		} else {
			return false;
		}
	}
	return slashes == 2 && seglen > 0;
}
