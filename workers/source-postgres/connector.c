/*
 * source-postgres: change data capture over a logical replication slot with
 * the pgoutput plugin. Each row change becomes one JSON record; the slot's
 * flush LSN advances only to the end of transactions Danube acknowledged.
 */
#include <errno.h>
#include <ev.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "event.h"
#include "log.h"
#include "pg/conn.h"
#include "pgoutput.h"
#include "position.h"
#include "runtime/connector.h"
#include "spg.h"

/* Microseconds from the Unix epoch to PostgreSQL's (2000-01-01). */
#define PG_EPOCH_US (946684800ULL * 1000000ULL)

enum phase {
	PH_IDLE,
	PH_SETUP,     /* the normal connection: publication and slot */
	PH_START,     /* the replication connection: START_REPLICATION sent */
	PH_STREAMING, /* CopyBoth */
	PH_BACKOFF,
	PH_STOPPED,
};

enum step { ST_PUB_CHECK, ST_PUB_CREATE, ST_SLOT_CHECK, ST_SLOT_CREATE };

struct spg {
	struct dc_rt *rt;
	struct ev_loop *loop;
	struct spg_config cfg;
	struct dc_pg_conn *conn;
	enum phase phase;
	enum step step;
	ev_timer status_timer;
	ev_idle kick;
	struct spg_decoder dec;
	struct spg_position pos;
	uint64_t reported; /* flush LSN last sent to PostgreSQL */
	struct spg_txn txn;
	bool in_txn, paused, stopped;
	struct dc_buf json, key, topic, table;
	uint64_t events; /* row events submitted since start, for logs */
};

/* ------------------------------------------------------------------ helpers */

static int parse_lsn(const char *text, uint64_t *lsn)
{
	unsigned hi, lo;
	char tail;

	if (!text || sscanf(text, "%X/%X%c", &hi, &lo, &tail) != 2)
		return -1;
	*lsn = (uint64_t)hi << 32 | lo;
	return 0;
}

static void put64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

/* ------------------------------------------------------------ connection loss */

/* Drops the connection and tries again after a backoff; PostgreSQL resends from the slot. */
static void lost(struct spg *s, const char *why)
{
	dc_pg_conn_reset(s->conn, why);
}

/* The connection went (the adapter reconnects unless stopped): forget the stream's state. */
static void on_down(void *arg, const char *why)
{
	struct spg *s = arg;
	char reason[640];

	snprintf(reason, sizeof(reason), "PostgreSQL: %s", why);
	if (s->phase == PH_STREAMING || s->phase == PH_START)
		dc_log_warn("source-postgres: connection to PostgreSQL lost: %s", why);
	dc_rt_report_error(s->rt, NULL, "external", "%s", reason);
	dc_rt_external_down(s->rt, "%s", reason);
	ev_idle_stop(s->loop, &s->kick);
	s->in_txn = false;
	/* A new walsender announces every relation again. */
	spg_decoder_free(&s->dec);
	spg_decoder_init(&s->dec);
	s->phase = s->stopped ? PH_STOPPED : PH_BACKOFF;
}

/* -------------------------------------------------------- standby status */

/* 'r': write, flush and apply LSN all say what Danube holds. */
static int send_status(struct spg *s, bool reply)
{
	uint8_t msg[34];
	uint64_t lsn = s->pos.confirmed;
	PGconn *pg = dc_pg_conn_pg(s->conn);
	int rc;

	if (s->phase != PH_STREAMING || lsn == 0 || !pg)
		return 0;
	msg[0] = 'r';
	put64(msg + 1, lsn);
	put64(msg + 9, lsn);
	put64(msg + 17, lsn);
	put64(msg + 25, dc_wall_ms() * 1000 - PG_EPOCH_US);
	msg[33] = reply ? 1 : 0;
	rc = PQputCopyData(pg, (const char *)msg, sizeof(msg));
	if (rc < 0)
		dc_pg_conn_reset_pq(s->conn, "cannot send");
	if (rc < 0 || (rc == 1 && dc_pg_conn_flush(s->conn) != 0))
		return -1;
	/* rc 0: libpq's buffer is full; the next tick tries again. */
	if (rc == 1 && lsn != s->reported) {
		dc_log_debug("source-postgres: confirmed flush LSN %X/%X", (unsigned)(lsn >> 32),
			     (unsigned)lsn);
		s->reported = lsn;
	}
	return 0;
}

static void on_status_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct spg *s = w->data;

	send_status(s, false);
}

/* ------------------------------------------------------------- records */

/*
 * Hands one event to the runtime (which takes it even when full, pausing
 * us): 0 or an error. -EPIPE (shutting down) is one too: its transaction
 * must not be confirmed, so PostgreSQL sends it again next time.
 */
static int submit(struct spg *s, const char *json, size_t len, const char *topic, const char *key,
		  const char *table, const char *op, const char *lsn)
{
	struct dn_attr attrs[4] = {
		{"pg.lsn", lsn},
		{"pg.table", table},
		{"pg.op", op},
		{"source", "postgres"},
	};
	struct dc_record rec = {0};
	int rc;

	rec.payload = json;
	rec.len = len;
	rec.attrs = attrs;
	rec.nattrs = 4;
	rec.routing_key = key && *key ? key : NULL;
	rec.topic = topic;
	rec.token = spg_position_next_token(&s->pos);
	rc = dc_rt_submit(s->rt, &rec);
	if (rc == 0) {
		spg_position_submitted(&s->pos, rec.token);
		s->events++;
	}
	return rc;
}

/* One row event of relation rel: built, then submitted. 0 or an error. */
static int emit(struct spg *s, const struct spg_relation *rel, const char *op,
		const struct spg_msg *m)
{
	char lsn[24];

	if (!s->in_txn)
		return -EPROTO;
	spg_lsn_format(s->txn.commit_lsn, lsn, sizeof(lsn));
	dc_buf_reset(&s->table);
	dc_buf_str(&s->table, rel->schema);
	dc_buf_add(&s->table, ".", 1);
	dc_buf_str(&s->table, rel->name);
	if (spg_event_build(rel, op, m, &s->txn, &s->json, &s->key) != 0 ||
	    spg_topic_for(s->cfg.topic_template, rel, &s->topic) != 0 || s->table.oom)
		return -ENOMEM;
	return submit(s, s->json.p, s->json.len, s->topic.p, s->key.p, s->table.p, op, lsn);
}

static int on_message(struct spg *s, const struct spg_msg *m)
{
	static const char *const ops[] = {
		[SPG_INSERT] = "insert", [SPG_UPDATE] = "update", [SPG_DELETE] = "delete"};
	int rc = 0;

	switch (m->type) {
	case SPG_BEGIN:
		s->in_txn = true;
		s->txn.commit_lsn = m->lsn;
		s->txn.commit_time = m->timestamp;
		s->txn.xid = m->xid;
		return 0;
	case SPG_COMMIT:
		s->in_txn = false;
		return spg_position_mark(&s->pos, m->end_lsn);
	case SPG_INSERT:
	case SPG_UPDATE:
	case SPG_DELETE:
		return emit(s, m->rel, ops[m->type], m);
	case SPG_TRUNCATE:
		for (uint32_t i = 0; i < m->ntruncated && rc == 0; i++)
			rc = emit(s, m->truncated[i], "truncate", m);
		return rc;
	default:
		return 0; /* Relation (cached by the decoder), Type, Origin, Message */
	}
}

/* One CopyData message of the replication stream. 0, or an error (reconnect). */
static int on_copy(struct spg *s, const uint8_t *buf, size_t len, char *why, size_t whylen)
{
	struct spg_msg m;
	int rc;

	if (len >= 25 && buf[0] == 'w') {
		/* XLogData: start, end, send time, then one pgoutput message. */
		rc = spg_decode(&s->dec, buf + 25, len - 25, &m);
		if (rc == -EBADMSG) {
			snprintf(why, whylen, "cannot decode a pgoutput message: %s", s->dec.error);
			return rc;
		}
		if (rc == 0)
			rc = on_message(s, &m);
		if (rc != 0)
			snprintf(why, whylen, "cannot handle a pgoutput message: %s",
				 rc == -EPROTO ? "a change outside a transaction" : strerror(-rc));
		return rc;
	}
	if (len >= 18 && buf[0] == 'k') {
		/*
		 * Keepalive: between transactions, the WAL up to its end holds
		 * nothing more for us (changes to other tables, empty
		 * transactions): confirmable once what came before is acked.
		 */
		if (!s->in_txn && spg_position_mark(&s->pos, get64(buf + 1)) != 0) {
			snprintf(why, whylen, "out of memory");
			return -ENOMEM;
		}
		return buf[17] ? send_status(s, false) : 0;
	}
	snprintf(why, whylen, "unexpected replication message 0x%02x of %zu bytes", buf[0], len);
	return -EBADMSG;
}

/* Reads what libpq holds until it runs dry, the runtime is full, or the stream ends. */
static void drain(struct spg *s)
{
	char why[256];
	char *buf;
	int n;

	while (s->phase == PH_STREAMING && !s->paused) {
		n = PQgetCopyData(dc_pg_conn_pg(s->conn), &buf, 1);
		if (n == 0)
			return;
		if (n == -1) {
			PGresult *r = PQgetResult(dc_pg_conn_pg(s->conn));

			snprintf(why, sizeof(why), "replication stream ended: %s",
				 r && PQresultErrorMessage(r)[0] ? PQresultErrorMessage(r)
								 : "by the server");
			PQclear(r);
			why[strcspn(why, "\n")] = '\0';
			lost(s, why);
			return;
		}
		if (n < -1) {
			dc_pg_conn_reset_pq(s->conn, "connection lost");
			return;
		}
		if (on_copy(s, (const uint8_t *)buf, (size_t)n, why, sizeof(why)) != 0) {
			PQfreemem(buf);
			if (s->phase == PH_STREAMING)
				lost(s, why);
			return;
		}
		PQfreemem(buf);
	}
	if (s->phase == PH_STREAMING && s->paused)
		dc_pg_conn_reading(s->conn, false);
}

static void on_kick(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct spg *s = w->data;

	ev_idle_stop(loop, w);
	if (s->phase != PH_STREAMING || s->paused)
		return;
	dc_pg_conn_reading(s->conn, true);
	/* libpq may hold whole messages already: the socket will not say so. */
	drain(s);
}

/* ---------------------------------------------------------- replication */

static void start_replication(struct spg *s)
{
	char sql[256], lsn[24];

	spg_lsn_format(s->pos.confirmed, lsn, sizeof(lsn));
	snprintf(sql, sizeof(sql),
		 "START_REPLICATION SLOT %s LOGICAL %s (proto_version '1', "
		 "publication_names '%s')",
		 s->cfg.slot, lsn, s->cfg.publication);
	if (!PQsendQuery(dc_pg_conn_pg(s->conn), sql)) {
		dc_pg_conn_reset_pq(s->conn, "cannot send");
		return;
	}
	if (dc_pg_conn_flush(s->conn) != 0)
		return;
	s->phase = PH_START;
	dc_pg_conn_reading(s->conn, true);
}

static void on_start_result(struct spg *s)
{
	PGconn *pg = dc_pg_conn_pg(s->conn);
	PGresult *r = PQgetResult(pg);
	char why[256];
	char lsn[24];

	if (r && PQresultStatus(r) == PGRES_COPY_BOTH) {
		PQclear(r);
		s->phase = PH_STREAMING;
		dc_pg_conn_usable(s->conn);
		spg_lsn_format(s->pos.confirmed, lsn, sizeof(lsn));
		dc_log_info("source-postgres: streaming slot %s, publication %s, from %s",
			    s->cfg.slot, s->cfg.publication, lsn);
		dc_rt_external_up(s->rt);
		dc_pg_conn_reading(s->conn, !s->paused);
		drain(s);
		return;
	}
	snprintf(why, sizeof(why), "START_REPLICATION failed: %s",
		 r ? PQresultErrorMessage(r) : PQerrorMessage(pg));
	why[strcspn(why, "\n")] = '\0';
	PQclear(r);
	lost(s, why);
}

static void connect_replication(struct spg *s)
{
	s->phase = PH_START;
	dc_pg_conn_connect(s->conn, true);
}

/* ---------------------------------------------------------------- setup */

static void on_setup_result(void *arg, const PGresult *r, const char *lost_why);

static void send_setup(struct spg *s, enum step step)
{
	char sql[4096];
	const char *params[1] = {NULL};
	int n = 0, rc;

	s->step = step;
	switch (step) {
	case ST_PUB_CHECK:
		snprintf(sql, sizeof(sql), "SELECT 1 FROM pg_publication WHERE pubname = $1");
		params[0] = s->cfg.publication;
		n = 1;
		break;
	case ST_PUB_CREATE:
		if (s->cfg.tables_sql && strlen(s->cfg.tables_sql) > sizeof(sql) - 64) {
			lost(s, "tables: the list is too long");
			return;
		}
		snprintf(sql, sizeof(sql), "CREATE PUBLICATION %s FOR %s%s", s->cfg.publication,
			 s->cfg.tables_sql ? "TABLE " : "ALL TABLES",
			 s->cfg.tables_sql ? s->cfg.tables_sql : "");
		break;
	case ST_SLOT_CHECK:
		snprintf(
			sql, sizeof(sql),
			"SELECT plugin, slot_type, database = current_database(), "
			"confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1");
		params[0] = s->cfg.slot;
		n = 1;
		break;
	case ST_SLOT_CREATE:
		snprintf(
			sql, sizeof(sql),
			"SELECT lsn::text FROM pg_create_logical_replication_slot($1, 'pgoutput')");
		params[0] = s->cfg.slot;
		n = 1;
		break;
	}
	/* -EIO: the connection is reset already. */
	rc = dc_pg_conn_query(s->conn, sql, false, n, params, on_setup_result, s);
	if (rc != 0 && rc != -EIO)
		lost(s, strerror(-rc));
}

/* The starting point: never below what we confirmed before a reconnect. */
static void slot_position(struct spg *s, const char *text)
{
	uint64_t lsn;

	if (parse_lsn(text, &lsn) == 0 && lsn > s->pos.confirmed) {
		s->pos.confirmed = lsn;
		s->reported = lsn;
	}
}

static bool duplicate(const PGresult *r)
{
	const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);

	return state && strcmp(state, "42710") == 0;
}

/* One setup query's result: the next step, or a failure (retried with backoff). */
static void on_setup_result(void *arg, const PGresult *r, const char *lost_why)
{
	struct spg *s = arg;
	ExecStatusType st;
	char why[512];

	(void)lost_why;
	if (!r)
		return; /* the connection went: on_down ran, setup starts over on_up */
	st = PQresultStatus(r);
	if (st != PGRES_TUPLES_OK && st != PGRES_COMMAND_OK && !duplicate(r)) {
		snprintf(why, sizeof(why), "%s", PQresultErrorMessage(r));
		why[strcspn(why, "\n")] = '\0';
		lost(s, why);
		return;
	}
	switch (s->step) {
	case ST_PUB_CHECK:
		if (PQntuples(r) > 0) {
			send_setup(s, ST_SLOT_CHECK);
		} else if (s->cfg.create_publication) {
			send_setup(s, ST_PUB_CREATE);
		} else {
			snprintf(why, sizeof(why),
				 "publication %s does not exist (create_publication = false)",
				 s->cfg.publication);
			lost(s, why);
		}
		return;
	case ST_PUB_CREATE:
		dc_log_info("source-postgres: created publication %s for %s", s->cfg.publication,
			    s->cfg.tables_sql ? s->cfg.tables_sql : "all tables");
		send_setup(s, ST_SLOT_CHECK);
		return;
	case ST_SLOT_CHECK:
		if (PQntuples(r) == 0) {
			if (s->cfg.create_slot) {
				send_setup(s, ST_SLOT_CREATE);
				return;
			}
			snprintf(why, sizeof(why), "slot %s does not exist (create_slot = false)",
				 s->cfg.slot);
			lost(s, why);
			return;
		}
		if (strcmp(PQgetvalue(r, 0, 1), "logical") != 0 ||
		    strcmp(PQgetvalue(r, 0, 0), "pgoutput") != 0 ||
		    strcmp(PQgetvalue(r, 0, 2), "t") != 0) {
			snprintf(why, sizeof(why),
				 "slot %s is not a pgoutput logical slot of this database",
				 s->cfg.slot);
			lost(s, why);
			return;
		}
		slot_position(s, PQgetvalue(r, 0, 3));
		connect_replication(s);
		return;
	case ST_SLOT_CREATE:
		if (duplicate(r)) {
			send_setup(s, ST_SLOT_CHECK); /* another process was quicker */
			return;
		}
		dc_log_info("source-postgres: created replication slot %s at %s", s->cfg.slot,
			    PQgetvalue(r, 0, 0));
		slot_position(s, PQgetvalue(r, 0, 0));
		connect_replication(s);
		return;
	}
}

static void connect_setup(struct spg *s)
{
	s->phase = PH_SETUP;
	dc_log_info("source-postgres: connecting to %s", s->cfg.pg.masked);
	dc_pg_conn_start(s->conn);
}

static void on_up(void *arg)
{
	struct spg *s = arg;

	if (s->phase == PH_START) {
		start_replication(s);
		return;
	}
	/* A reconnect after a loss: setup first, the replication connection follows. */
	s->phase = PH_SETUP;
	send_setup(s, ST_PUB_CHECK);
}

static void on_readable(void *arg)
{
	struct spg *s = arg;

	if (s->phase == PH_START && !PQisBusy(dc_pg_conn_pg(s->conn)))
		on_start_result(s);
	else if (s->phase == PH_STREAMING)
		drain(s);
}

/* ------------------------------------------------------------- the vtable */

static int spg_open(struct dc_rt *rt, const struct dc_config *cfg, void *state,
		    struct dc_diag *diag)
{
	static const struct dc_pg_conn_cbs cbs = {
		.on_up = on_up, .on_down = on_down, .on_readable = on_readable};
	struct spg *s = state;

	if (spg_config_load(&s->cfg, cfg, dc_rt_name(rt), diag) != 0)
		return -1;
	if (dc_pg_conn_new(dc_rt_loop(rt), &s->cfg.pg, &cbs, s, &s->conn) != 0) {
		dc_diag_add(diag, "out of memory");
		spg_config_free(&s->cfg);
		return -1;
	}
	s->rt = rt;
	s->loop = dc_rt_loop(rt);
	s->phase = PH_IDLE;
	spg_decoder_init(&s->dec);
	spg_position_init(&s->pos, 0);
	ev_timer_init(&s->status_timer, on_status_tick, (double)s->cfg.status_interval_ms / 1000.0,
		      (double)s->cfg.status_interval_ms / 1000.0);
	s->status_timer.data = s;
	ev_idle_init(&s->kick, on_kick);
	s->kick.data = s;
	return 0;
}

static int spg_start(void *state)
{
	struct spg *s = state;

	dc_log_info("source-postgres: libpq %d, slot %s, publication %s (%s), topics %s",
		    PQlibVersion(), s->cfg.slot, s->cfg.publication,
		    s->cfg.tables_sql ? s->cfg.tables_sql : "all tables", s->cfg.topic_template);
	ev_timer_start(s->loop, &s->status_timer);
	connect_setup(s);
	return 0;
}

static void spg_pause(void *state)
{
	struct spg *s = state;

	/* PostgreSQL keeps what we do not read in the slot. */
	s->paused = true;
	ev_idle_stop(s->loop, &s->kick);
	if (s->phase == PH_STREAMING)
		dc_pg_conn_reading(s->conn, false);
}

static void spg_resume(void *state)
{
	struct spg *s = state;

	if (s->stopped)
		return;
	s->paused = false;
	/* From the loop, not from inside the runtime's acknowledgement path. */
	ev_idle_start(s->loop, &s->kick);
}

static void spg_committed(void *state, uint64_t token)
{
	struct spg *s = state;

	spg_position_acked(&s->pos, token);
}

static void spg_stop(void *state)
{
	struct spg *s = state;

	s->stopped = true;
	s->paused = true;
	ev_idle_stop(s->loop, &s->kick);
	dc_pg_conn_no_reconnect(s->conn);
	if (s->phase == PH_STREAMING)
		dc_pg_conn_reading(s->conn, false);
	else if (s->phase != PH_STOPPED) {
		dc_pg_conn_close(s->conn);
		s->phase = PH_STOPPED;
	}
}

static void spg_close(void *state)
{
	struct spg *s = state;
	PGconn *pg = dc_pg_conn_pg(s->conn);

	/* Everything drained is acknowledged: tell PostgreSQL before leaving. */
	if (s->phase == PH_STREAMING && pg && s->pos.confirmed != s->reported &&
	    PQsetnonblocking(pg, 0) == 0)
		send_status(s, false);
	dc_pg_conn_free(s->conn);
	ev_timer_stop(s->loop, &s->status_timer);
	ev_idle_stop(s->loop, &s->kick);
	spg_decoder_free(&s->dec);
	spg_position_free(&s->pos);
	dc_buf_free(&s->json);
	dc_buf_free(&s->key);
	dc_buf_free(&s->topic);
	dc_buf_free(&s->table);
	spg_config_free(&s->cfg);
}

DC_SOURCE_WORKER("source-postgres", spg, &spg_keys)
