/*
 * Row changes to JSON events: values of numeric and boolean types become JSON
 * numbers and booleans, everything else a string, SQL NULL null.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
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

void spg_buf_reset(struct spg_buf *b)
{
	b->len = 0;
	b->oom = false;
	if (b->s)
		b->s[0] = '\0';
}

void spg_buf_free(struct spg_buf *b)
{
	free(b->s);
	memset(b, 0, sizeof(*b));
}

static bool grow(struct spg_buf *b, size_t extra)
{
	size_t cap;
	char *n;

	if (b->oom)
		return false;
	if (b->len + extra + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 256;
	while (cap < b->len + extra + 1)
		cap *= 2;
	n = realloc(b->s, cap);
	if (!n) {
		b->oom = true;
		return false;
	}
	b->s = n;
	b->cap = cap;
	return true;
}

void spg_buf_add(struct spg_buf *b, const char *s, size_t n)
{
	if (!grow(b, n))
		return;
	memcpy(b->s + b->len, s, n);
	b->len += n;
	b->s[b->len] = '\0';
}

void spg_buf_adds(struct spg_buf *b, const char *s)
{
	spg_buf_add(b, s, strlen(s));
}

/* Length of the valid UTF-8 sequence at s (at most n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	unsigned min;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		len = 2, cp = s[0] & 0x1f, min = 0x80;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		len = 3, cp = s[0] & 0x0f, min = 0x800;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		len = 4, cp = s[0] & 0x07, min = 0x10000;
	} else {
		return 0;
	}
	if (len > n)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

void spg_buf_json_str(struct spg_buf *b, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = 0, run = 0;

	if (!grow(b, n + 2))
		return;
	spg_buf_add(b, "\"", 1);
	while (i < n) {
		unsigned char c = p[i];
		char esc[8];
		size_t l;

		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			i++, run++;
			continue;
		}
		if (c >= 0x80 && (l = utf8_len(p + i, n - i)) > 0) {
			i += l, run += l;
			continue;
		}
		spg_buf_add(b, (const char *)p + i - run, run);
		run = 0;
		if (c == '"' || c == '\\') {
			esc[0] = '\\', esc[1] = (char)c;
			spg_buf_add(b, esc, 2);
		} else if (c == '\n') {
			spg_buf_add(b, "\\n", 2);
		} else if (c == '\t') {
			spg_buf_add(b, "\\t", 2);
		} else if (c == '\r') {
			spg_buf_add(b, "\\r", 2);
		} else if (c < 0x20) {
			snprintf(esc, sizeof(esc), "\\u%04x", c);
			spg_buf_add(b, esc, 6);
		} else {
			spg_buf_add(b, "\\ufffd", 6);
		}
		i++;
	}
	spg_buf_add(b, (const char *)p + i - run, run);
	spg_buf_add(b, "\"", 1);
}

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

static void json_value(struct spg_buf *b, uint32_t type, const struct spg_value *v)
{
	if (v->kind == 'n') {
		spg_buf_adds(b, "null");
		return;
	}
	switch (type) {
	case OID_BOOL:
		if (v->kind == 't' && v->len == 1 && (v->data[0] == 't' || v->data[0] == 'f')) {
			spg_buf_adds(b, v->data[0] == 't' ? "true" : "false");
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
			spg_buf_add(b, v->data, v->len);
			return;
		}
		break;
	default:
		break;
	}
	spg_buf_json_str(b, v->data ? v->data : "", v->len);
}

/* {"col":value,...}; keys_only keeps the replica identity's columns. Unchanged TOAST is left out.
 */
static void json_row(struct spg_buf *b, const struct spg_relation *rel, const struct spg_tuple *t,
		     bool keys_only)
{
	bool first = true;

	spg_buf_add(b, "{", 1);
	for (uint16_t i = 0; i < t->ncols; i++) {
		const struct spg_column *c = &rel->cols[i];

		if (t->vals[i].kind == 'u' || (keys_only && !c->key))
			continue;
		if (!first)
			spg_buf_add(b, ",", 1);
		first = false;
		spg_buf_json_str(b, c->name, strlen(c->name));
		spg_buf_add(b, ":", 1);
		json_value(b, c->type, &t->vals[i]);
	}
	spg_buf_add(b, "}", 1);
}

/* The key columns' values: the text itself for one column, a JSON array for several. */
static void routing_key(struct spg_buf *k, const struct spg_relation *rel,
			const struct spg_tuple *t)
{
	unsigned nkeys = 0;

	for (uint16_t i = 0; i < rel->ncols; i++)
		nkeys += rel->cols[i].key;
	if (nkeys == 0 || !t)
		return;
	if (nkeys > 1)
		spg_buf_add(k, "[", 1);
	for (uint16_t i = 0, n = 0; i < t->ncols; i++) {
		const struct spg_value *v = &t->vals[i];

		if (!rel->cols[i].key)
			continue;
		if (nkeys == 1) {
			spg_buf_add(k, v->data ? v->data : "", v->len);
			return;
		}
		if (n++)
			spg_buf_add(k, ",", 1);
		if (v->kind == 'n' || v->kind == 'u')
			spg_buf_adds(k, "null");
		else
			spg_buf_json_str(k, v->data, v->len);
	}
	spg_buf_add(k, "]", 1);
}

int spg_event_build(const struct spg_relation *rel, const char *op, const struct spg_msg *m,
		    const struct spg_txn *txn, struct spg_buf *json, struct spg_buf *key)
{
	char text[64];
	const struct spg_tuple *keyrow = NULL;
	bool truncate = strcmp(op, "truncate") == 0;

	spg_buf_reset(json);
	spg_buf_reset(key);
	spg_buf_adds(json, "{\"op\":\"");
	spg_buf_adds(json, op);
	spg_buf_adds(json, "\",\"schema\":");
	spg_buf_json_str(json, rel->schema, strlen(rel->schema));
	spg_buf_adds(json, ",\"table\":");
	spg_buf_json_str(json, rel->name, strlen(rel->name));
	if (!truncate && m->type != SPG_DELETE) {
		spg_buf_adds(json, ",\"new\":");
		json_row(json, rel, &m->new_tuple, false);
		keyrow = &m->new_tuple;
	}
	if (!truncate && m->old_kind) {
		spg_buf_adds(json, ",\"old\":");
		json_row(json, rel, &m->old_tuple, m->old_kind == 'K');
		if (!keyrow)
			keyrow = &m->old_tuple;
	}
	spg_lsn_format(txn->commit_lsn, text, sizeof(text));
	spg_buf_adds(json, ",\"lsn\":\"");
	spg_buf_adds(json, text);
	spg_time_format(txn->commit_time, text, sizeof(text));
	spg_buf_adds(json, "\",\"commit_time\":\"");
	spg_buf_adds(json, text);
	snprintf(text, sizeof(text), "\",\"xid\":%u}", txn->xid);
	spg_buf_adds(json, text);
	if (keyrow)
		routing_key(key, rel, keyrow);
	else
		spg_buf_add(key, "", 0);
	return json->oom || key->oom ? -ENOMEM : 0;
}

static bool topic_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-';
}

static void add_sanitized(struct spg_buf *out, const char *s)
{
	for (; *s; s++) {
		char c = topic_char_ok(*s) ? *s : '_';

		spg_buf_add(out, &c, 1);
	}
}

int spg_topic_for(const char *tmpl, const struct spg_relation *rel, struct spg_buf *out)
{
	const char *p = tmpl;

	spg_buf_reset(out);
	while (*p) {
		if (strncmp(p, "{schema}", 8) == 0) {
			add_sanitized(out, rel->schema);
			p += 8;
		} else if (strncmp(p, "{table}", 7) == 0) {
			add_sanitized(out, rel->name);
			p += 7;
		} else {
			spg_buf_add(out, p++, 1);
		}
	}
	spg_buf_add(out, "", 0);
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
