/*
 * source-postgres against a throwaway PostgreSQL cluster and the Danube test
 * broker: events, ordering, crash recovery, confirmed positions, reconnects.
 */
#include "broker.h"
#include "harness.h"
#include "pg.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static void reliable_topic(struct th_broker *b, const char *topic)
{
	ck_assert_int_eq(th_broker_admin(b, "create-topic", topic, "--reliable", NULL), 0);
}

/*
 * Writes dir/cdc.ini for the cluster and the broker: ci_extra goes to the end
 * of the conninfo, extra ([postgres] keys) to the end of the file.
 */
static const char *conf(const char *dir, struct th_pg *pg, struct th_broker *b,
			const char *ci_extra, const char *extra)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/cdc.ini", dir);
	ck_assert_int_eq(th_write_file(path,
				       "[connector]\ntype = source-postgres\nlog_level = debug\n\n"
				       "[danube]\nservice_url = %s\ndispatch = reliable\n\n"
				       "[postgres]\nconninfo = %s %s\nreconnect_backoff_ms = 100\n"
				       "reconnect_backoff_max_ms = 1000\n%s",
				       th_broker_url(b), th_pg_conninfo(pg), ci_extra, extra),
			 0);
	return path;
}

static struct th_proc *worker(const char *dir, const char *file)
{
	char *argv[] = {(char *)th_build_path("workers/source-postgres"), "-c", (char *)file, NULL};

	return th_spawn(dir, argv, NULL);
}

/* Waits until the worker streams for the n-th time (its slot exists from then on). */
static void wait_streaming(struct th_proc *w, int n)
{
	ck_assert_msg(TH_WAIT(th_proc_output_count(w, "streaming slot") >= n, 20000),
		      "the worker does not stream");
}

/* A Danube consumer printing attributes; waits until it is subscribed. */
static struct th_proc *consumer(const char *dir, struct th_broker *b, const char *topic,
				const char *sub)
{
	char want[256];
	char *argv[] = {(char *)th_build_path("danube-connectctl"),
			"consume",
			"-u",
			(char *)th_broker_url(b),
			"-t",
			(char *)topic,
			"-s",
			(char *)sub,
			"--type",
			"exclusive",
			"--attributes",
			NULL};
	struct th_proc *c = th_spawn(dir, argv, NULL);

	snprintf(want, sizeof(want), "consuming %s", topic);
	ck_assert(TH_WAIT(th_proc_output_contains(c, want), 10000));
	return c;
}

static int events(const struct th_proc *c)
{
	return th_proc_output_count(c, "pg.op=");
}

/* The payload: what follows the last tab of a consumer line. */
static const char *payload_of(const char *line)
{
	const char *tab = strrchr(line, '\t');

	return tab ? tab + 1 : line;
}

/* The number after "KEY": in the payload, or -1. */
static long json_int(const char *payload, const char *key)
{
	char want[64];
	const char *at;

	snprintf(want, sizeof(want), "\"%s\":", key);
	at = strstr(payload, want);
	return at ? strtol(at + strlen(want), NULL, 10) : -1;
}

/* How many distinct ids 1..max (the "new" row's id) the consumer printed. */
static int distinct_ids(const struct th_proc *c, int max)
{
	char *out = th_proc_output(c), *save = NULL;
	char *seen = calloc((size_t)max + 1, 1);
	int n = 0;

	ck_assert_ptr_nonnull(seen);
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *p = strstr(payload_of(line), "\"new\":{");
		long id = p ? json_int(p, "id") : -1;

		if (id >= 1 && id <= max && !seen[id]) {
			seen[id] = 1;
			n++;
		}
	}
	free(seen);
	free(out);
	return n;
}

/*
 * The ops the consumer saw for each id (1..20), in arrival order, as a
 * string per id ("iu" = insert then update); the table's topic only.
 */
static void ops_per_id(const struct th_proc *c, char ops[21][8])
{
	char *out = th_proc_output(c), *save = NULL;

	memset(ops, 0, 21 * 8);
	for (char *line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		const char *p = payload_of(line);
		long id = json_int(p, "id");
		char op;

		if (!strstr(line, "pg.op="))
			continue;
		op = strstr(line, "pg.op=insert")   ? 'i'
		     : strstr(line, "pg.op=update") ? 'u'
		     : strstr(line, "pg.op=delete") ? 'd'
						    : '?';

		ck_assert_msg(id >= 1 && id <= 20, "unexpected event %s", line);
		ck_assert_uint_lt(strlen(ops[id]), 7);
		ops[id][strlen(ops[id])] = op;
	}
	free(out);
}

/* "N/M" of the highest pg.lsn= attribute the consumer printed (lexically by value). */
static void max_lsn(const struct th_proc *c, char *out, size_t len)
{
	char *all = th_proc_output(c), *save = NULL;
	unsigned long long best = 0;

	for (char *line = strtok_r(all, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		unsigned hi, lo;
		const char *at = strstr(line, "pg.lsn=");

		if (at && sscanf(at, "pg.lsn=%X/%X", &hi, &lo) == 2 &&
		    ((unsigned long long)hi << 32 | lo) > best)
			best = (unsigned long long)hi << 32 | lo;
	}
	free(all);
	snprintf(out, len, "%X/%X", (unsigned)(best >> 32), (unsigned)best);
}

static bool slot_confirmed_past(struct th_pg *pg, const char *slot, const char *lsn)
{
	return th_pg_long(pg,
			  "SELECT (confirmed_flush_lsn > '%s'::pg_lsn)::int FROM "
			  "pg_replication_slots WHERE slot_name = '%s'",
			  lsn, slot) == 1;
}

START_TEST(streams_inserts_updates_deletes_of_two_tables_in_commit_order)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct th_broker *b = th_broker_start(NULL, NULL);
	const char *dir = th_tmpdir();
	char ops[21][8], lsn[32];

	th_pg_exec(pg, "CREATE TABLE orders (id int PRIMARY KEY, note text, qty int, paid bool);"
		       "CREATE TABLE items (a text, b bigint, v float8, PRIMARY KEY (a, b));"
		       "CREATE TABLE other (id int PRIMARY KEY)");
	reliable_topic(b, "/default/public-orders");
	reliable_topic(b, "/default/public-items");
	struct th_proc *co = consumer(dir, b, "/default/public-orders", "t");
	struct th_proc *ci = consumer(dir, b, "/default/public-items", "t");
	struct th_proc *w = worker(
		dir, conf(dir, pg, b, "password=s3cret-pw", "tables = orders, public.items\n"));
	wait_streaming(w, 1);

	th_pg_exec(pg,
		   "INSERT INTO orders SELECT g, 'n' || g, g, false FROM generate_series(1, 20) g");
	th_pg_exec(pg,
		   "BEGIN; UPDATE orders SET qty = qty + 100, note = E'a\"b\\\\c\\n' "
		   "WHERE id <= 10; DELETE FROM orders WHERE id > 15; "
		   "INSERT INTO items VALUES ('x', 1, 1.5), ('x', 2, NULL), ('y', 1, 3); COMMIT");
	th_pg_exec(pg, "INSERT INTO other VALUES (1)");
	th_pg_exec(pg, "UPDATE items SET v = 2.25 WHERE a = 'x'; DELETE FROM items WHERE a = 'y'");
	th_pg_exec(pg, "TRUNCATE items");

	/* orders: 20 inserts, 10 updates, 5 deletes; items: 3, 2, 1 and the truncate. */
	ck_assert_msg(TH_WAIT(events(co) >= 35 && events(ci) >= 7, 30000), "got %d and %d",
		      events(co), events(ci));
	ck_assert_int_eq(events(co), 35);
	ck_assert_int_eq(events(ci), 7);
	ops_per_id(co, ops);
	for (int id = 1; id <= 20; id++)
		ck_assert_str_eq(ops[id], id <= 10 ? "iu" : id > 15 ? "id" : "i");

	ck_assert(th_proc_output_contains(
		co, "pg.table=public.orders\tpg.op=insert\tsource=postgres\t"
		    "{\"op\":\"insert\",\"schema\":\"public\",\"table\":\"orders\","
		    "\"new\":{\"id\":3,\"note\":\"n3\",\"qty\":3,\"paid\":false},\"lsn\":\""));
	ck_assert(th_proc_output_contains(
		co, "{\"op\":\"update\",\"schema\":\"public\",\"table\":\"orders\","
		    "\"new\":{\"id\":7,\"note\":\"a\\\"b\\\\c\\n\",\"qty\":107,\"paid\":false},"
		    "\"lsn\":\""));
	ck_assert(th_proc_output_contains(
		co, "{\"op\":\"delete\",\"schema\":\"public\",\"table\":\"orders\","
		    "\"old\":{\"id\":18},\"lsn\":\""));
	ck_assert(th_proc_output_contains(
		ci, "{\"op\":\"insert\",\"schema\":\"public\",\"table\":\"items\","
		    "\"new\":{\"a\":\"x\",\"b\":2,\"v\":null},\"lsn\":\""));
	ck_assert(th_proc_output_contains(
		ci, "{\"op\":\"update\",\"schema\":\"public\",\"table\":\"items\","
		    "\"new\":{\"a\":\"x\",\"b\":1,\"v\":2.25},\"lsn\":\""));
	ck_assert(th_proc_output_contains(
		ci, "{\"op\":\"delete\",\"schema\":\"public\",\"table\":\"items\","
		    "\"old\":{\"a\":\"y\",\"b\":1},\"lsn\":\""));
	ck_assert(th_proc_output_contains(ci, "\"commit_time\":\"20"));
	ck_assert(th_proc_output_contains(ci, "pg.op=truncate\tsource=postgres\t"
					      "{\"op\":\"truncate\",\"schema\":\"public\","
					      "\"table\":\"items\",\"lsn\":\""));
	/* The table outside the publication made no event anywhere. */
	ck_assert(!th_proc_output_contains(co, "\"table\":\"other\""));
	/* The password (trust authentication ignores it) never shows in the log. */
	ck_assert(!th_proc_output_contains(w, "s3cret-pw"));
	/* A graceful stop confirms everything Danube holds before the worker exits. */
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 10000)), 0);
	ck_assert(th_proc_clean(w));
	max_lsn(ci, lsn, sizeof(lsn));
	ck_assert(slot_confirmed_past(pg, "dc_cdc", lsn));
}
END_TEST

/* A psql session committing ntx transactions of 5 rows each, 10 ms apart. */
static struct th_proc *writer(const char *dir, struct th_pg *pg, int first_id, int ntx)
{
	char path[512], *argv[] = {"/usr/bin/psql",
				   "-q",
				   "-v",
				   "ON_ERROR_STOP=1",
				   "-d",
				   NULL,
				   "-f",
				   path,
				   NULL};
	size_t cap = (size_t)ntx * 160 + 1, len = 0;
	char *sql = malloc(cap);
	FILE *f;

	ck_assert_ptr_nonnull(sql);
	for (int t = 0; t < ntx; t++) {
		int a = first_id + t * 5;

		len += (size_t)snprintf(sql + len, cap - len,
					"INSERT INTO k SELECT g, 'v' || g FROM generate_series(%d, "
					"%d) g;\nSELECT pg_sleep(0.01);\n",
					a, a + 4);
	}
	snprintf(path, sizeof(path), "%s/writer-%d.sql", dir, first_id);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(sql, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	free(sql);
	argv[5] = (char *)th_pg_conninfo(pg);
	return th_spawn(dir, argv, NULL);
}

START_TEST(worker_killed_mid_stream_and_restarted_loses_no_event)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct th_broker *b = th_broker_start(NULL, NULL);
	const char *dir = th_tmpdir(), *file;
	char lsn[32];
	int status;

	th_pg_exec(pg, "CREATE TABLE k (id int PRIMARY KEY, v text)");
	reliable_topic(b, "/default/public-k");
	struct th_proc *c = consumer(dir, b, "/default/public-k", "t");
	file = conf(dir, pg, b, "", "slot = kill_test\n");
	struct th_proc *w = worker(dir, file);
	wait_streaming(w, 1);
	struct th_proc *wr = writer(dir, pg, 1, 400);
	ck_assert_msg(TH_WAIT(distinct_ids(c, 2000) >= 300, 30000), "got %d",
		      distinct_ids(c, 2000));
	th_proc_kill(w, SIGKILL);
	ck_assert(th_proc_wait(w, 5000, NULL));
	ck_assert(th_proc_running(wr));
	w = worker(dir, file);
	ck_assert(th_proc_wait(wr, 60000, &status));
	ck_assert_int_eq(th_exit_code(status), 0);
	ck_assert_msg(TH_WAIT(distinct_ids(c, 2000) == 2000, 60000), "got %d of 2000",
		      distinct_ids(c, 2000));
	/* Duplicates are the unconfirmed tail at the kill, never the whole stream again. */
	ck_assert_int_lt(events(c), 4000);
	/* Everything is in Danube: the slot lets PostgreSQL forget it. */
	max_lsn(c, lsn, sizeof(lsn));
	ck_assert_msg(TH_WAIT(slot_confirmed_past(pg, "kill_test", lsn), 10000),
		      "confirmed_flush_lsn stays below %s", lsn);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 10000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

static long long reply_us(struct th_pg *pg)
{
	return th_pg_long(pg, "SELECT (extract(epoch FROM reply_time) * 1e6)::bigint FROM "
			      "pg_stat_replication WHERE application_name = 'cdc_status'");
}

START_TEST(slot_confirms_only_what_danube_acknowledged)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct th_broker *b = th_broker_start(NULL, NULL);
	const char *dir = th_tmpdir();
	char lsn[32], *before;
	long long r0;

	th_pg_exec(pg, "CREATE TABLE k (id int PRIMARY KEY, v text)");
	reliable_topic(b, "/default/public-k");
	struct th_proc *c = consumer(dir, b, "/default/public-k", "keep");
	struct th_proc *w = worker(dir, conf(dir, pg, b, "application_name=cdc_status",
					     "slot = ack_test\nstatus_interval_ms = 50\n"));
	wait_streaming(w, 1);
	th_pg_exec(pg, "INSERT INTO k VALUES (1, 'one')");
	ck_assert(TH_WAIT(events(c) == 1, 20000));
	max_lsn(c, lsn, sizeof(lsn));
	ck_assert(TH_WAIT(slot_confirmed_past(pg, "ack_test", lsn), 10000));

	/* Danube goes away: the next transaction reaches the worker but is not acknowledged. */
	th_proc_stop(c, SIGTERM, 5000);
	th_broker_stop(b);
	before = th_pg_value(pg, "SELECT pg_current_wal_lsn()::text");
	th_pg_exec(pg, "INSERT INTO k VALUES (2, 'two')");
	ck_assert(TH_WAIT(
		th_pg_long(pg, "SELECT (sent_lsn >= pg_current_wal_lsn())::int FROM "
			       "pg_stat_replication WHERE application_name = 'cdc_status'") == 1,
		10000));
	/* Two status updates after the data was sent: the worker has had its say. */
	for (int i = 0; i < 2; i++) {
		r0 = reply_us(pg);
		ck_assert(TH_WAIT(reply_us(pg) > r0, 10000));
	}
	ck_assert_int_eq(th_pg_long(pg,
				    "SELECT (confirmed_flush_lsn <= '%s'::pg_lsn)::int FROM "
				    "pg_replication_slots WHERE slot_name = 'ack_test'",
				    before),
			 1);
	free(before);

	th_broker_restart(b);
	c = consumer(dir, b, "/default/public-k", "keep");
	ck_assert(TH_WAIT(th_proc_output_contains(c, "\"id\":2,"), 30000));
	max_lsn(c, lsn, sizeof(lsn));
	ck_assert(TH_WAIT(slot_confirmed_past(pg, "ack_test", lsn), 10000));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 10000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

START_TEST(reconnects_after_postgres_restart)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct th_broker *b = th_broker_start(NULL, NULL);
	const char *dir = th_tmpdir();

	th_pg_exec(pg, "CREATE TABLE k (id int PRIMARY KEY, v text)");
	reliable_topic(b, "/default/public-k");
	struct th_proc *c = consumer(dir, b, "/default/public-k", "t");
	struct th_proc *w = worker(dir, conf(dir, pg, b, "", ""));
	wait_streaming(w, 1);
	th_pg_exec(pg, "INSERT INTO k SELECT g, 'a' FROM generate_series(1, 10) g");
	ck_assert(TH_WAIT(distinct_ids(c, 20) == 10, 20000));
	th_pg_restart(pg);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connection to PostgreSQL lost"), 10000));
	wait_streaming(w, 2);
	th_pg_exec(pg, "INSERT INTO k SELECT g, 'b' FROM generate_series(11, 20) g");
	ck_assert_msg(TH_WAIT(distinct_ids(c, 20) == 20, 20000), "got %d", distinct_ids(c, 20));
	ck_assert(th_proc_running(w));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 10000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* A full runtime queue stops the reading; PostgreSQL keeps the rest in the slot. */
START_TEST(pauses_when_the_queue_is_full_and_loses_nothing)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct th_broker *b = th_broker_start(NULL, NULL);
	const char *dir = th_tmpdir();
	char lsn[32];

	th_pg_exec(pg, "CREATE TABLE k (id int PRIMARY KEY, v text)");
	reliable_topic(b, "/default/public-k");
	struct th_proc *c = consumer(dir, b, "/default/public-k", "t");
	struct th_proc *w = worker(
		dir, conf(dir, pg, b, "", "slot = pause_test\n[runtime]\nqueue_size = 20\n"));
	wait_streaming(w, 1);
	th_pg_exec(pg, "INSERT INTO k SELECT g, repeat('x', 100) FROM generate_series(1, 600) g");
	th_pg_exec(pg, "INSERT INTO k SELECT g, 'y' FROM generate_series(601, 1000) g");
	ck_assert_msg(TH_WAIT(distinct_ids(c, 1000) == 1000, 60000), "got %d",
		      distinct_ids(c, 1000));
	ck_assert(th_proc_output_contains(w, "pausing the source"));
	/* Nothing twice: no reconnect happened. */
	ck_assert_int_eq(events(c), 1000);
	max_lsn(c, lsn, sizeof(lsn));
	ck_assert(TH_WAIT(slot_confirmed_past(pg, "pause_test", lsn), 10000));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 10000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

START_TEST(check_reports_bad_keys_with_file_and_line)
{
	const char *dir = th_tmpdir();
	char path[512], want[600], *out = NULL;
	char *argv[] = {(char *)th_build_path("workers/source-postgres"), "-c", path, "--check",
			NULL};

	snprintf(path, sizeof(path), "%s/bad.ini", dir);
	ck_assert_int_eq(th_write_file(path, "[connector]\ntype = source-postgres\n"
					     "[danube]\nservice_url = http://127.0.0.1:1\n"
					     "[postgres]\n"
					     "conninfo = host=127.0.0.1 password=hunter2\n"
					     "slot = Bad-Slot\n"
					     "tables = orders, 1x\n"
					     "topic_template = default/{schema}\n"),
			 0);
	ck_assert_int_eq(th_run(argv, &out, 10000), 78);
	snprintf(want, sizeof(want), "%s:7: slot must be", path);
	ck_assert_msg(strstr(out, want), "%s", out);
	snprintf(want, sizeof(want), "%s:8: tables: \"1x\"", path);
	ck_assert_msg(strstr(out, want), "%s", out);
	snprintf(want, sizeof(want), "%s:9: topic_template", path);
	ck_assert_msg(strstr(out, want), "%s", out);
	ck_assert(!strstr(out, "hunter2"));
	free(out);

	/* The shipped example is valid. */
	argv[2] = (char *)th_src_path("etc/connectors.d/orders-cdc.ini");
	ck_assert_int_eq(th_run(argv, &out, 10000), 0);
	free(out);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("source_postgres");
	TCase *tc = tcase_create("cdc");

	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, streams_inserts_updates_deletes_of_two_tables_in_commit_order);
	tcase_add_test(tc, worker_killed_mid_stream_and_restarted_loses_no_event);
	tcase_add_test(tc, slot_confirms_only_what_danube_acknowledged);
	tcase_add_test(tc, reconnects_after_postgres_restart);
	tcase_add_test(tc, pauses_when_the_queue_is_full_and_loses_nothing);
	tcase_add_test(tc, check_reports_bad_keys_with_file_and_line);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
