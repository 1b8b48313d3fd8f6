/*
 * pgoutput protocol version 1 ("Logical Replication Message Formats" in the
 * PostgreSQL manual): every read is checked against the buffer's end.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pgoutput.h"

struct rd {
	const uint8_t *p, *end;
	bool bad;
};

static bool need(struct rd *r, size_t n)
{
	if (r->bad || (size_t)(r->end - r->p) < n) {
		r->bad = true;
		return false;
	}
	return true;
}

static uint8_t u8(struct rd *r)
{
	if (!need(r, 1))
		return 0;
	return *r->p++;
}

static uint16_t u16(struct rd *r)
{
	uint16_t v;

	if (!need(r, 2))
		return 0;
	v = (uint16_t)((uint16_t)r->p[0] << 8 | r->p[1]);
	r->p += 2;
	return v;
}

static uint32_t u32(struct rd *r)
{
	uint32_t v;

	if (!need(r, 4))
		return 0;
	v = (uint32_t)r->p[0] << 24 | (uint32_t)r->p[1] << 16 | (uint32_t)r->p[2] << 8 | r->p[3];
	r->p += 4;
	return v;
}

static uint64_t u64(struct rd *r)
{
	uint64_t hi = u32(r);

	return hi << 32 | u32(r);
}

/* A NUL-terminated string inside the buffer; NULL (and bad) when it is not terminated. */
static const char *str(struct rd *r)
{
	const uint8_t *nul;
	const char *s;

	if (r->bad)
		return NULL;
	nul = memchr(r->p, 0, (size_t)(r->end - r->p));
	if (!nul) {
		r->bad = true;
		return NULL;
	}
	s = (const char *)r->p;
	r->p = nul + 1;
	return s;
}

static int fail(struct spg_decoder *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int fail(struct spg_decoder *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(d->error, sizeof(d->error), fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

void spg_decoder_init(struct spg_decoder *d)
{
	memset(d, 0, sizeof(*d));
}

static void rel_free(struct spg_relation *rel)
{
	if (!rel)
		return;
	for (uint16_t i = 0; i < rel->ncols; i++)
		free(rel->cols[i].name);
	free(rel->cols);
	free(rel->schema);
	free(rel->name);
	free(rel);
}

void spg_decoder_free(struct spg_decoder *d)
{
	for (size_t i = 0; i < d->nrels; i++)
		rel_free(d->rels[i]);
	free(d->rels);
	free(d->vals[0]);
	free(d->vals[1]);
	free(d->truncs);
	memset(d, 0, sizeof(*d));
}

static size_t rel_index(struct spg_decoder *d, uint32_t id)
{
	if (d->last < d->nrels && d->rels[d->last]->id == id)
		return d->last;
	for (size_t i = 0; i < d->nrels; i++)
		if (d->rels[i]->id == id) {
			d->last = i;
			return i;
		}
	return d->nrels;
}

const struct spg_relation *spg_relation_find(struct spg_decoder *d, uint32_t id)
{
	size_t i = rel_index(d, id);

	return i < d->nrels ? d->rels[i] : NULL;
}

/* Replaces the cached relation of the same id (a schema change sends a new one). */
static int rel_store(struct spg_decoder *d, struct spg_relation *rel)
{
	size_t i = rel_index(d, rel->id);

	if (i < d->nrels) {
		rel_free(d->rels[i]);
		d->rels[i] = rel;
		return 0;
	}
	if (d->nrels == d->caprels) {
		size_t cap = d->caprels ? d->caprels * 2 : 16;
		struct spg_relation **n = realloc(d->rels, cap * sizeof(*n));

		if (!n)
			return -ENOMEM;
		d->rels = n;
		d->caprels = cap;
	}
	d->rels[d->nrels++] = rel;
	return 0;
}

static int decode_relation(struct spg_decoder *d, struct rd *r, struct spg_msg *m)
{
	struct spg_relation *rel = calloc(1, sizeof(*rel));
	const char *schema, *name;
	int rc;

	if (!rel)
		return -ENOMEM;
	rel->id = u32(r);
	schema = str(r);
	name = str(r);
	rel->replident = (char)u8(r);
	rel->ncols = u16(r);
	if (r->bad) {
		free(rel);
		return fail(d, "truncated Relation message");
	}
	rel->schema = strdup(*schema ? schema : "pg_catalog");
	rel->name = strdup(name);
	rel->cols = calloc(rel->ncols ? rel->ncols : 1, sizeof(*rel->cols));
	if (!rel->schema || !rel->name || !rel->cols) {
		rel->ncols = 0;
		rel_free(rel);
		return -ENOMEM;
	}
	for (uint16_t i = 0; i < rel->ncols; i++) {
		struct spg_column *c = &rel->cols[i];
		uint8_t flags = u8(r);
		const char *cname = str(r);

		c->type = u32(r);
		c->typmod = (int32_t)u32(r);
		c->key = (flags & 1) != 0;
		if (r->bad || !(c->name = strdup(cname))) {
			bool oom = !r->bad;

			rel_free(rel);
			return oom ? -ENOMEM : fail(d, "truncated Relation message");
		}
	}
	rc = rel_store(d, rel);
	if (rc != 0) {
		rel_free(rel);
		return rc;
	}
	m->rel = rel;
	return 0;
}

static int decode_tuple(struct spg_decoder *d, struct rd *r, int slot, struct spg_tuple *t)
{
	uint16_t n = u16(r);

	if (r->bad)
		return fail(d, "truncated tuple");
	if (n > d->capvals[slot]) {
		struct spg_value *v = realloc(d->vals[slot], n * sizeof(*v));

		if (!v)
			return -ENOMEM;
		d->vals[slot] = v;
		d->capvals[slot] = n;
	}
	t->ncols = n;
	t->vals = d->vals[slot];
	for (uint16_t i = 0; i < n; i++) {
		struct spg_value *v = &t->vals[i];

		v->kind = (char)u8(r);
		v->data = NULL;
		v->len = 0;
		switch (v->kind) {
		case 'n':
		case 'u':
			break;
		case 't':
		case 'b':
			v->len = u32(r);
			if (!need(r, v->len))
				return fail(d, "truncated column value");
			v->data = (const char *)r->p;
			r->p += v->len;
			break;
		default:
			return fail(d, "unknown column kind 0x%02x", (unsigned)(uint8_t)v->kind);
		}
	}
	if (r->bad)
		return fail(d, "truncated tuple");
	return 0;
}

static int with_relation(struct spg_decoder *d, struct rd *r, struct spg_msg *m)
{
	uint32_t id = u32(r);

	if (r->bad)
		return fail(d, "truncated message");
	m->rel = spg_relation_find(d, id);
	if (!m->rel)
		return fail(d, "change for relation %u before its Relation message", id);
	return 0;
}

static int check_width(struct spg_decoder *d, const struct spg_msg *m, const struct spg_tuple *t)
{
	if (t->ncols > m->rel->ncols)
		return fail(d, "tuple of %u columns for relation %s.%s of %u", t->ncols,
			    m->rel->schema, m->rel->name, m->rel->ncols);
	return 0;
}

static int decode_change(struct spg_decoder *d, struct rd *r, struct spg_msg *m)
{
	uint8_t kind;
	int rc;

	if ((rc = with_relation(d, r, m)) != 0)
		return rc;
	kind = u8(r);
	if (m->type != SPG_INSERT && (kind == 'K' || kind == 'O')) {
		m->old_kind = (char)kind;
		if ((rc = decode_tuple(d, r, 0, &m->old_tuple)) != 0 ||
		    (rc = check_width(d, m, &m->old_tuple)) != 0)
			return rc;
		if (m->type == SPG_DELETE)
			return 0;
		kind = u8(r);
	}
	if (m->type == SPG_DELETE)
		return fail(d, "Delete without an old tuple");
	if (kind != 'N')
		return fail(d, "expected a new tuple, got 0x%02x", (unsigned)kind);
	if ((rc = decode_tuple(d, r, 1, &m->new_tuple)) != 0)
		return rc;
	return check_width(d, m, &m->new_tuple);
}

static int decode_truncate(struct spg_decoder *d, struct rd *r, struct spg_msg *m)
{
	uint32_t n = u32(r);

	m->truncate_options = u8(r);
	if (r->bad || !need(r, (size_t)n * 4))
		return fail(d, "truncated Truncate message");
	if (n > d->captruncs) {
		const struct spg_relation **t = realloc(d->truncs, n * sizeof(*t));

		if (!t)
			return -ENOMEM;
		d->truncs = t;
		d->captruncs = n;
	}
	for (uint32_t i = 0; i < n; i++) {
		uint32_t id = u32(r);

		d->truncs[i] = spg_relation_find(d, id);
		if (!d->truncs[i])
			return fail(d, "truncate of relation %u before its Relation message", id);
	}
	m->truncated = d->truncs;
	m->ntruncated = n;
	return 0;
}

int spg_decode(struct spg_decoder *d, const uint8_t *buf, size_t len, struct spg_msg *m)
{
	struct rd r = {buf, buf + len, false};
	int rc = 0;

	memset(m, 0, sizeof(*m));
	d->error[0] = '\0';
	if (len == 0)
		return fail(d, "empty message");
	m->type = (enum spg_msg_type)u8(&r);
	switch (m->type) {
	case SPG_BEGIN:
		m->lsn = u64(&r);
		m->timestamp = (int64_t)u64(&r);
		m->xid = u32(&r);
		break;
	case SPG_COMMIT:
		(void)u8(&r); /* flags, unused */
		m->lsn = u64(&r);
		m->end_lsn = u64(&r);
		m->timestamp = (int64_t)u64(&r);
		break;
	case SPG_ORIGIN:
		m->lsn = u64(&r);
		(void)str(&r);
		break;
	case SPG_RELATION:
		rc = decode_relation(d, &r, m);
		break;
	case SPG_TYPE:
		(void)u32(&r);
		(void)str(&r);
		(void)str(&r);
		break;
	case SPG_INSERT:
	case SPG_UPDATE:
	case SPG_DELETE:
		rc = decode_change(d, &r, m);
		break;
	case SPG_TRUNCATE:
		rc = decode_truncate(d, &r, m);
		break;
	case SPG_MESSAGE: {
		/* Logical decoding messages (pg_logical_emit_message): skipped, but checked. */
		uint32_t n;

		(void)u8(&r);
		m->lsn = u64(&r);
		(void)str(&r);
		n = u32(&r);
		if (need(&r, n))
			r.p += n;
		break;
	}
	default:
		return fail(d, "unknown message type 0x%02x", (unsigned)buf[0]);
	}
	if (rc != 0)
		return rc;
	if (r.bad)
		return fail(d, "truncated message of type %c", (char)m->type);
	return 0;
}
