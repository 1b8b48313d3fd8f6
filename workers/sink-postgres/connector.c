/*
 * sink-postgres: Danube messages written to a PostgreSQL table, one
 * statement (hence one transaction) per batch; a record is OK only once that
 * transaction committed. A data error bisects the batch down to the records
 * that cause it; with exactly_once the highest offset per topic is stored in
 * the same transaction and redelivered messages at or below it are skipped.
 */
#include <ev.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "runtime/connector.h"
#include "skpg.h"

#define STMT "skpg_insert"

#define MAX_HOLES 16

struct offset {
	char *topic;
	uint64_t stored; /* committed in PostgreSQL, valid when has_stored */
	uint64_t seen;   /* highest in the current batch, valid when has_seen */
	bool has_stored, has_seen;
	/*
	 * Offsets below a written one that were not written (yet): the real
	 * broker hands a taken-over subscription what its channel kept before
	 * the window from the cursor, so a higher offset can come first. These
	 * are new when they come, though below the stored offset. Oldest first;
	 * kept across reconnects, lost with the process (a restart then may
	 * skip them: see the man page).
	 */
	uint64_t hole_lo[MAX_HOLES], hole_hi[MAX_HOLES];
	size_t nholes;
};

struct range {
	size_t lo, hi; /* into todo */
};

enum setup_step {
	SETUP_OFFSETS_TABLE,
	SETUP_COLUMNS,
	SETUP_PREPARE,
	SETUP_LOAD_OFFSETS,
	SETUP_DONE
};

struct skpg {
	struct dc_rt *rt;
	struct skpg_config cfg;
	struct dc_pg_conn *conn;
	bool ready; /* connected, statement prepared, offsets loaded */
	enum setup_step step;
	char **columns; /* quoted; the data columns in field mode */
	size_t ncolumns;
	struct offset *offs;
	size_t noffs;

	struct dc_batch *batch; /* being written */
	const struct dn_message **msgs;
	size_t *todo; /* records to write (exactly_once skips some) */
	size_t ntodo;
	struct range *stack; /* ranges still to write, the next on top */
	size_t nstack;
	struct range cur;
	bool in_flight;
	bool resume_checked; /* the first batch was compared with the stored offsets */
	size_t cap;
	struct dc_buf json, offsets_json;
};

static void next_range(struct skpg *s);
static void setup_next(struct skpg *s);

static void finish(struct skpg *s)
{
	struct dc_batch *b = s->batch;

	s->batch = NULL;
	s->in_flight = false;
	s->nstack = 0;
	dc_rt_write_done(s->rt, b);
}

/* The current range and every range not yet written: RETRY, and the batch is done. */
static void retry_rest(struct skpg *s, const char *why)
{
	struct range all[1] = {s->cur};

	for (size_t k = 0; k <= s->nstack; k++) {
		const struct range *r = k < s->nstack ? &s->stack[k] : &all[0];

		for (size_t i = r->lo; i < r->hi; i++)
			dc_rt_set_result(&s->batch->records[s->todo[i]], DC_WRITE_RETRY, "external",
					 "%s", why);
	}
	finish(s);
}

static struct offset *offset_for(struct skpg *s, const char *topic)
{
	struct offset *bigger;

	for (size_t i = 0; i < s->noffs; i++)
		if (strcmp(s->offs[i].topic, topic) == 0)
			return &s->offs[i];
	bigger = realloc(s->offs, (s->noffs + 1) * sizeof(*bigger));
	if (!bigger)
		return NULL;
	s->offs = bigger;
	memset(&s->offs[s->noffs], 0, sizeof(s->offs[0]));
	if (!(s->offs[s->noffs].topic = strdup(topic)))
		return NULL;
	return &s->offs[s->noffs++];
}

static void free_offsets(struct skpg *s)
{
	for (size_t i = 0; i < s->noffs; i++)
		free(s->offs[i].topic);
	free(s->offs);
	s->offs = NULL;
	s->noffs = 0;
}

/* "SQLSTATE: message (detail)" of an error result. */
static void pg_error(const PGresult *res, char *out, size_t len)
{
	const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
	const char *detail = PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL);

	if (!msg)
		msg = PQresultErrorMessage(res);
	snprintf(out, len, "PostgreSQL %s: %s%s%s%s", state ? state : "error", msg,
		 detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
	for (char *p = out; *p; p++)
		if (*p == '\n')
			*p = ' ';
}

/*
 * Errors one record can cause: data exceptions (22: bad JSON, wrong type,
 * out of range), integrity constraints (23), a datatype mismatch, a row too
 * large for an index. Bisecting finds the record; the others are not
 * retried apart.
 */
static bool data_error(const char *state)
{
	return state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
			 strcmp(state, "42804") == 0 || strcmp(state, "54000") == 0);
}

/* Errors after which the session is not worth keeping (or the server is going away). */
static bool session_error(const char *state)
{
	return !state || strncmp(state, "08", 2) == 0 || strncmp(state, "57", 2) == 0 ||
	       strncmp(state, "53", 2) == 0 || strncmp(state, "42", 2) == 0 ||
	       strncmp(state, "0A", 2) == 0 || strncmp(state, "XX", 2) == 0;
}

static void committed(struct skpg *s)
{
	for (size_t i = s->cur.lo; i < s->cur.hi && s->cfg.exactly_once; i++) {
		const struct dn_message *m = s->msgs[s->todo[i]];
		struct offset *o = offset_for(s, m->topic);

		/* Without memory to remember it, a redelivery is caught by the next reload. */
		if (o && (!o->has_stored || m->offset > o->stored)) {
			o->stored = m->offset;
			o->has_stored = true;
		}
	}
}

static void on_written(void *arg, const PGresult *res, const char *why)
{
	struct skpg *s = arg;
	const char *state;
	char err[256];

	s->in_flight = false;
	if (!res) {
		snprintf(err, sizeof(err), "PostgreSQL: %s", why);
		retry_rest(s, err);
		return;
	}
	if (PQresultStatus(res) == PGRES_COMMAND_OK || PQresultStatus(res) == PGRES_TUPLES_OK) {
		committed(s);
		next_range(s);
		return;
	}
	state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
	pg_error(res, err, sizeof(err));
	if (data_error(state)) {
		size_t lo = s->cur.lo, hi = s->cur.hi, mid = lo + (hi - lo) / 2;

		if (hi - lo == 1) {
			dc_rt_set_result(&s->batch->records[s->todo[lo]], DC_WRITE_FATAL,
					 "invalid_data", "%s", err);
		} else {
			/* Halves in their own transactions, the earlier one first (on top). */
			dc_log_debug("bisecting %zu records: %s", hi - lo, err);
			s->stack[s->nstack++] = (struct range){mid, hi};
			s->stack[s->nstack++] = (struct range){lo, mid};
		}
		next_range(s);
		return;
	}
	dc_log_warn("writing %zu records: %s", s->cur.hi - s->cur.lo, err);
	if (session_error(state)) {
		/* Reconnecting reads the table again and prepares the statement anew. */
		retry_rest(s, err);
		dc_pg_conn_reset(s->conn, err);
		return;
	}
	retry_rest(s, err);
}

static void next_range(struct skpg *s)
{
	const char *params[3];
	const struct dn_message *const *msgs = s->msgs;
	size_t n;

	if (s->nstack == 0) {
		finish(s);
		return;
	}
	s->cur = s->stack[--s->nstack];
	n = s->cur.hi - s->cur.lo;
	dc_buf_reset(&s->json);
	skpg_sql_batch(&s->json, &s->cfg, msgs, s->todo + s->cur.lo, n);
	params[0] = s->json.p;
	params[2] = s->cfg.subscription;
	if (s->cfg.exactly_once) {
		dc_buf_reset(&s->offsets_json);
		skpg_sql_offsets(&s->offsets_json, msgs, s->todo + s->cur.lo, n);
		params[1] = s->offsets_json.p;
	}
	if (s->json.oom || s->offsets_json.oom) {
		retry_rest(s, "out of memory");
		return;
	}
	s->in_flight = true;
	if (dc_pg_conn_query(s->conn, STMT, true, s->cfg.exactly_once ? 3 : 1, params, on_written,
			     s) != 0) {
		s->in_flight = false;
		retry_rest(s, "PostgreSQL: connection lost");
	}
}

static bool grow(struct skpg *s, size_t n)
{
	const struct dn_message **msgs;
	size_t *todo;
	struct range *stack;

	if (n <= s->cap)
		return true;
	msgs = realloc(s->msgs, n * sizeof(*msgs));
	if (msgs)
		s->msgs = msgs;
	todo = msgs ? realloc(s->todo, n * sizeof(*todo)) : NULL;
	if (todo)
		s->todo = todo;
	/* Bisecting keeps at most one pending range per halving, plus one. */
	stack = todo ? realloc(s->stack, (n + 2) * sizeof(*stack)) : NULL;
	if (!stack)
		return false;
	s->stack = stack;
	s->cap = n;
	return true;
}

static void hole_add(struct offset *o, uint64_t lo, uint64_t hi)
{
	for (size_t i = 0; i < o->nholes; i++)
		if (o->hole_lo[i] == lo && o->hole_hi[i] == hi)
			return;
	if (o->nholes == MAX_HOLES) {
		/* The oldest is most likely a gap the broker made: it never fills. */
		memmove(o->hole_lo, o->hole_lo + 1, (MAX_HOLES - 1) * sizeof(o->hole_lo[0]));
		memmove(o->hole_hi, o->hole_hi + 1, (MAX_HOLES - 1) * sizeof(o->hole_hi[0]));
		o->nholes--;
	}
	o->hole_lo[o->nholes] = lo;
	o->hole_hi[o->nholes++] = hi;
}

/* Whether off is in a hole; it is taken out of it (to be written now). */
static bool hole_take(struct offset *o, uint64_t off)
{
	for (size_t i = 0; i < o->nholes; i++) {
		if (off < o->hole_lo[i] || off > o->hole_hi[i])
			continue;
		if (o->hole_lo[i] == o->hole_hi[i]) {
			o->nholes--;
			memmove(o->hole_lo + i, o->hole_lo + i + 1,
				(o->nholes - i) * sizeof(o->hole_lo[0]));
			memmove(o->hole_hi + i, o->hole_hi + i + 1,
				(o->nholes - i) * sizeof(o->hole_hi[0]));
		} else if (off == o->hole_lo[i]) {
			o->hole_lo[i]++;
		} else if (off == o->hole_hi[i]) {
			o->hole_hi[i]--;
		} else {
			uint64_t hi = o->hole_hi[i];

			o->hole_hi[i] = off - 1;
			hole_add(o, off + 1, hi);
		}
		return true;
	}
	return false;
}

/* Whether the batch being begun already holds topic's offset off. */
static bool in_todo(const struct skpg *s, const char *topic, uint64_t off)
{
	for (size_t k = 0; k < s->ntodo; k++) {
		const struct dn_message *p = s->msgs[s->todo[k]];

		if (p->offset == off && strcmp(p->topic, topic) == 0)
			return true;
	}
	return false;
}

/*
 * With exactly_once: in PostgreSQL already (at or below the stored offset
 * and in no hole), or once more within this batch. Only an exact repeat is
 * one: a lower offset after a higher one is new (see struct offset).
 */
static bool already_written(struct skpg *s, const struct dn_message *m)
{
	struct offset *o = offset_for(s, m->topic);
	uint64_t top;

	if (!o)
		return false;
	if (o->has_seen && m->offset <= o->seen) {
		if (in_todo(s, m->topic, m->offset))
			return true;
		if (hole_take(o, m->offset))
			return false;
		return o->has_stored && m->offset <= o->stored;
	}
	if (o->has_stored && m->offset <= o->stored)
		return !hole_take(o, m->offset);
	/* Above everything written: what it jumps over may still come. */
	top = o->has_seen ? o->seen : o->has_stored ? o->stored : m->offset - 1;
	if (m->offset > top + 1 && (o->has_seen || o->has_stored))
		hole_add(o, top + 1, m->offset - 1);
	o->seen = m->offset;
	o->has_seen = true;
	return false;
}

/*
 * exactly_once, first batch after start: the first offset of each topic
 * should follow the stored one; a jump means the broker skipped messages
 * while the worker was away (or the last ones before the stop went to
 * on_error). Within a run the consumer itself reports gaps.
 */
static void check_resume(struct skpg *s, const struct dn_message *m)
{
	struct offset *o = offset_for(s, m->topic);

	if (o && o->has_stored && !o->has_seen && m->offset > o->stored + 1)
		dc_rt_skipped(s->rt, m->topic, o->stored + 1, m->offset);
}

/*
 * Starts writing the batch in hand. Which records exactly_once skips is
 * decided here, with the offsets as loaded by the latest (re)connect: a
 * batch whose commit went unanswered is retried after the reload.
 */
static void begin(struct skpg *s)
{
	struct dc_batch *b = s->batch;
	size_t skipped = 0;

	s->ntodo = 0;
	for (size_t i = 0; i < s->noffs; i++)
		s->offs[i].has_seen = false;
	for (size_t i = 0; i < b->n; i++) {
		const struct dn_message *m = s->msgs[i];
		size_t bad;

		if (s->cfg.exactly_once && !s->resume_checked && s->cfg.single_consumer)
			check_resume(s, m);
		if (s->cfg.exactly_once && already_written(s, m)) {
			skipped++;
			continue;
		}
		/* Not UTF-8 is not JSON: refused here, never altered into something that parses. */
		if (!dc_utf8_valid(m->payload, m->payload_len, &bad)) {
			dc_rt_set_result(&b->records[i], DC_WRITE_FATAL, "invalid_data",
					 "payload is not valid UTF-8 (byte %zu), so not JSON", bad);
			continue;
		}
		s->todo[s->ntodo++] = i;
	}
	s->resume_checked = true;
	if (skipped)
		dc_log_debug("skipping %zu records already written", skipped);
	s->nstack = 0;
	s->cur = (struct range){0, 0};
	if (s->ntodo == 0) {
		finish(s);
		return;
	}
	s->stack[s->nstack++] = (struct range){0, s->ntodo};
	next_range(s);
}

static void skpg_write(void *state, struct dc_batch *b)
{
	struct skpg *s = state;

	if (!grow(s, b->n)) {
		dc_rt_retry_all(s->rt, b, "out of memory");
		return;
	}
	/* The runtime writes only while PostgreSQL is ready (dc_rt_external_up). */
	s->batch = b;
	for (size_t i = 0; i < b->n; i++)
		s->msgs[i] = b->records[i].msg;
	begin(s);
}

/* ------------------------------------------------------------------ setup */

static void setup_failed(struct skpg *s, const char *what, const PGresult *res)
{
	char err[256];

	pg_error(res, err, sizeof(err));
	dc_rt_report_error(s->rt, NULL, "external", "%s: %s", what, err);
	dc_pg_conn_reset(s->conn, err);
}

static void free_columns(struct skpg *s)
{
	for (size_t i = 0; i < s->ncolumns; i++)
		free(s->columns[i]);
	free(s->columns);
	s->columns = NULL;
	s->ncolumns = 0;
}

static bool is_meta(const struct skpg_config *c, const char *name)
{
	if ((c->topic_column && strcmp(name, c->topic_column) == 0) ||
	    (c->offset_column && strcmp(name, c->offset_column) == 0))
		return true;
	for (size_t i = 0; i < c->nattr_cols; i++)
		if (strcmp(name, c->attr_cols[i].name) == 0)
			return true;
	return false;
}

static int add_column(struct skpg *s, const char *name)
{
	char **bigger = realloc(s->columns, (s->ncolumns + 1) * sizeof(*bigger));

	if (!bigger)
		return -1;
	s->columns = bigger;
	if (!(s->columns[s->ncolumns] = skpg_quote_ident(name)))
		return -1;
	s->ncolumns++;
	return 0;
}

static void on_setup(void *arg, const PGresult *res, const char *why)
{
	struct skpg *s = arg;
	static const char *const what[] = {"creating the offsets table",
					   "reading the table's columns", "preparing the insert",
					   "loading the offsets"};

	if (!res)
		return; /* the connection went: on_down follows, setup restarts on_up */
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK) {
		setup_failed(s, what[s->step], res);
		return;
	}
	if (s->step == SETUP_COLUMNS) {
		free_columns(s);
		for (int i = 0; i < PQntuples(res); i++)
			if (!is_meta(&s->cfg, PQgetvalue(res, i, 0)) &&
			    add_column(s, PQgetvalue(res, i, 0)) != 0) {
				dc_pg_conn_reset(s->conn, "out of memory");
				return;
			}
		if (s->ncolumns == 0 && !s->cfg.payload_column) {
			dc_rt_report_error(s->rt, NULL, "external",
					   "table %s has no column without a default to fill: "
					   "set columns",
					   s->cfg.table);
			dc_pg_conn_reset(s->conn, "no columns to write");
			return;
		}
	} else if (s->step == SETUP_LOAD_OFFSETS) {
		/* What PostgreSQL says replaces what we knew; the holes stay. */
		for (size_t i = 0; i < s->noffs; i++)
			s->offs[i].has_stored = false;
		for (int i = 0; i < PQntuples(res); i++) {
			struct offset *o = offset_for(s, PQgetvalue(res, i, 0));

			if (!o) {
				dc_pg_conn_reset(s->conn, "out of memory");
				return;
			}
			o->stored = strtoull(PQgetvalue(res, i, 1), NULL, 10);
			o->has_stored = true;
		}
		dc_log_info("postgres: %d stored offsets for subscription %s", PQntuples(res),
			    s->cfg.subscription);
	}
	s->step++;
	setup_next(s);
}

static void setup_next(struct skpg *s)
{
	const char *param;
	char *sql = NULL;
	int rc = 0;

	while (s->step == SETUP_OFFSETS_TABLE && !s->cfg.exactly_once)
		s->step++;
	if (s->step == SETUP_COLUMNS && (s->cfg.payload_column || s->cfg.ncolumns > 0)) {
		free_columns(s);
		for (size_t i = 0; i < s->cfg.ncolumns; i++)
			if (add_column(s, s->cfg.columns[i]) != 0) {
				dc_pg_conn_reset(s->conn, "out of memory");
				return;
			}
		s->step++;
	}
	if (s->step == SETUP_LOAD_OFFSETS && !s->cfg.exactly_once)
		s->step++;
	switch (s->step) {
	case SETUP_OFFSETS_TABLE:
		sql = skpg_sql_create_offsets(&s->cfg);
		rc = sql ? dc_pg_conn_query(s->conn, sql, false, 0, NULL, on_setup, s) : -1;
		break;
	case SETUP_COLUMNS:
		param = s->cfg.table;
		rc = dc_pg_conn_query(s->conn, skpg_sql_default_columns, false, 1, &param, on_setup,
				      s);
		break;
	case SETUP_PREPARE:
		sql = skpg_sql_insert(&s->cfg, s->columns, s->ncolumns);
		if (sql)
			dc_log_debug("postgres: %s", sql);
		rc = sql ? dc_pg_conn_prepare(s->conn, STMT, sql, on_setup, s) : -1;
		break;
	case SETUP_LOAD_OFFSETS:
		sql = skpg_sql_load_offsets(&s->cfg);
		param = s->cfg.subscription;
		rc = sql ? dc_pg_conn_query(s->conn, sql, false, 1, &param, on_setup, s) : -1;
		break;
	case SETUP_DONE:
		s->ready = true;
		dc_log_info("postgres: ready to write into %s", s->cfg.table);
		dc_pg_conn_usable(s->conn);
		dc_rt_external_up(s->rt);
		return;
	}
	if (!sql && s->step != SETUP_COLUMNS)
		dc_pg_conn_reset(s->conn, "out of memory");
	free(sql);
	(void)rc; /* a failed send already dropped the connection: on_up starts over */
}

static void on_up(void *arg)
{
	struct skpg *s = arg;

	s->step = SETUP_OFFSETS_TABLE;
	setup_next(s);
}

static void on_down(void *arg, const char *why)
{
	struct skpg *s = arg;

	s->ready = false;
	dc_rt_external_down(s->rt, "PostgreSQL: %s", why);
}

/* --------------------------------------------------------------- vtable */

static void skpg_close(void *state)
{
	struct skpg *s = state;

	/* A batch still here is the runtime's to free, unacknowledged. */
	dc_pg_conn_free(s->conn);
	skpg_config_free(&s->cfg);
	free_columns(s);
	free_offsets(s);
	free(s->msgs);
	free(s->todo);
	free(s->stack);
	dc_buf_free(&s->json);
	dc_buf_free(&s->offsets_json);
}

static int skpg_open(struct dc_rt *rt, const struct dc_config *cfg, void *state,
		     struct dc_diag *diag)
{
	static const struct dc_pg_conn_cbs cbs = {.on_up = on_up, .on_down = on_down};
	struct skpg *s = state;

	s->rt = rt;
	if (skpg_config_load(&s->cfg, cfg, dc_rt_name(rt), diag) != 0)
		return -1;
	if (dc_pg_conn_new(dc_rt_loop(rt), &s->cfg.pg, &cbs, s, &s->conn) != 0) {
		dc_diag_add(diag, "out of memory");
		skpg_close(s);
		return -1;
	}
	return 0;
}

static int skpg_start(void *state)
{
	struct skpg *s = state;

	dc_log_info("sink-postgres: libpq %d, %s into %s, %s%s", PQlibVersion(),
		    s->cfg.upsert ? "upsert" : "insert", s->cfg.table,
		    s->cfg.payload_column ? "payload into a jsonb column"
					  : "JSON fields to columns",
		    s->cfg.exactly_once ? ", exactly once" : "");
	dc_pg_conn_start(s->conn);
	return 0;
}

DC_SINK_WORKER("sink-postgres", skpg, &skpg_keys)
