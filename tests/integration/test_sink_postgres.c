/*
 * sink-postgres against a throwaway PostgreSQL cluster and the Danube test
 * broker, both started by each test: row contents, upsert, exactly-once
 * across SIGKILL, PostgreSQL restarts, poison records, --check.
 */
#include "broker.h"
#include "harness.h"
#include "pg.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char *ctl(void)
{
	return th_build_path("danube-connectctl");
}

/*
 * The broker lets a subscription have a whole batch in flight (its default is
 * 10); the sinks' [danube] max_unacked says the same (conf).
 */
static struct th_broker *danube(const char *topic)
{
	static const char *const extra[] = {"--max-unacked", "2000", NULL};
	struct th_broker *b = th_broker_start(th_tmpdir(), extra);

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(th_broker_admin(b, "create-topic", topic, "--reliable", NULL), 0);
	return b;
}

/*
 * Writes dir/pgsink.ini for a sink on /default/in: runtime goes into
 * [runtime], postgres into [postgres] after the conninfo.
 */
static const char *conf(const char *dir, struct th_broker *b, struct th_pg *pg, const char *runtime,
			const char *postgres)
{
	static char path[512];

	snprintf(path, sizeof(path), "%s/pgsink.ini", dir);
	ck_assert_int_eq(
		th_write_file(path,
			      "[connector]\ntype = sink-postgres\nlog_level = debug\n\n"
			      "[danube]\nservice_url = %s\ntopic = /default/in\n"
			      "subscription = pg\nsubscription_type = exclusive\n"
			      "max_unacked = 2000\n\n"
			      "[runtime]\n%sretry_backoff_ms = 200\n"
			      "retry_backoff_max_ms = 1000\n%s\n[postgres]\n"
			      "conninfo = %s password=not-in-logs\n"
			      "reconnect_backoff_ms = 100\nreconnect_backoff_max_ms = 500\n%s",
			      th_broker_url(b),
			      strstr(runtime, "batch_timeout_ms") ? "" : "batch_timeout_ms = 100\n",
			      runtime, th_pg_conninfo(pg), postgres),
		0);
	return path;
}

/* Starts the worker and waits until it is subscribed and connected to PostgreSQL. */
static struct th_proc *worker(const char *dir, const char *file)
{
	char *argv[] = {(char *)th_build_path("workers/sink-postgres"), "-c", (char *)file, NULL};
	struct th_proc *w = th_spawn(dir, argv, NULL);

	ck_assert_msg(TH_WAIT(th_proc_output_contains(w, "connected to Danube") &&
				      th_proc_output_contains(w, "postgres: ready"),
			      20000),
		      "worker not up");
	return w;
}

/* Lines "{"id":N,"name":"n-N","v":N.5}" for N in from..to, into dir/NAME; returns the path. */
static const char *json_lines(const char *dir, const char *name, int from, int to)
{
	static char path[512];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	for (int i = from; i <= to; i++)
		fprintf(f, "{\"id\":%d,\"name\":\"n-%d\",\"v\":%d.5}\n", i, i, i);
	ck_assert_int_eq(fclose(f), 0);
	return path;
}

/* danube-connectctl produce of every line of file to /default/in, in the background. */
static struct th_proc *producer(const char *dir, struct th_broker *b, const char *file)
{
	char cmd[1200];
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};

	snprintf(cmd, sizeof(cmd),
		 "exec '%s' produce -u %s -t /default/in --reliable -a dev=d7 < '%s'", ctl(),
		 th_broker_url(b), file);
	return th_spawn(dir, argv, NULL);
}

static void produced(struct th_proc *p)
{
	int status;

	ck_assert(th_proc_wait(p, (int)th_scale(90000, 900000), &status));
	ck_assert_int_eq(th_exit_code(status), 0);
}

static void produce_text(struct th_broker *b, const char *lines)
{
	char *out = NULL;
	char *argv[] = {(char *)ctl(), "produce",     "-u",         (char *)th_broker_url(b),
			"-t",          "/default/in", "--reliable", NULL};
	int rc = th_run_input(argv, lines, &out, 60000);

	ck_assert_msg(rc == 0, "produce exited %d: %s", rc, out);
	free(out);
}

static long long rows(struct th_pg *pg, const char *table)
{
	return th_pg_long(pg, "SELECT count(*) FROM %s", table);
}

static long long rows_of_t(void *pg)
{
	return rows(pg, "t");
}

/* Until table t has n rows; fails only when no row came for 30 s (a busy machine is slow). */
static void wait_rows(struct th_pg *pg, long long n)
{
	ck_assert_msg(th_wait_progress(rows_of_t, pg, n, 30000), "stuck at %lld of %lld rows",
		      rows(pg, "t"), n);
}

/* Every row is what its message said: id, name, v and the Danube topic and offset. */
static void check_rows(struct th_pg *pg, long long n)
{
	ck_assert_int_eq(th_pg_long(pg, "SELECT count(DISTINCT id) FROM t"), n);
	ck_assert_int_eq(th_pg_long(pg, "SELECT sum(id) FROM t"), n * (n + 1) / 2);
	ck_assert_int_eq(th_pg_long(pg,
				    "SELECT count(*) FROM t WHERE name <> 'n-' || id "
				    "OR v <> id + 0.5 OR topic <> '/default/in' OR dev <> 'd7'"),
			 0);
	/* Produced in order by one producer: offset N-1 carries id N. */
	ck_assert_int_eq(th_pg_long(pg, "SELECT count(*) FROM t WHERE off <> id - 1"), 0);
}

static const char table_t[] = "CREATE TABLE t (id int NOT NULL, name text NOT NULL, "
			      "v double precision, topic text, off bigint, dev text, "
			      "written timestamptz DEFAULT now())";
static const char map_t[] = "table = t\ntopic_column = topic\noffset_column = off\n"
			    "attribute_columns = dev=dev\n";

/* 5,000 prove order and counts (make soak: 100,000). */
START_TEST(writes_every_message_as_a_correct_row)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct th_broker *b = danube("/default/in");
	const char *dir = th_tmpdir();
	const long long n = (long long)th_scale(5000, 100000);

	th_pg_exec(pg, "%s", table_t);
	struct th_proc *w = worker(dir, conf(dir, b, pg, "", map_t));
	produced(producer(dir, b, json_lines(dir, "in", 1, (int)n)));
	wait_rows(pg, n);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert_int_eq(rows(pg, "t"), n);
	check_rows(pg, n);
	/* The default-filled column took its default, the password never reached a log line. */
	ck_assert_int_eq(th_pg_long(pg, "SELECT count(*) FROM t WHERE written IS NULL"), 0);
	ck_assert(!th_proc_output_contains(w, "not-in-logs"));
	ck_assert(th_proc_output_contains(w, "password=****"));
	ck_assert(th_proc_clean(w));
}
END_TEST

START_TEST(payload_column_keeps_whole_payload_with_attributes)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct th_broker *b = danube("/default/in");
	const char *dir = th_tmpdir();

	th_pg_exec(pg, "CREATE TABLE raw (id bigserial PRIMARY KEY, doc jsonb NOT NULL, "
		       "src text, pos bigint, dev text, n int)");
	struct th_proc *w = worker(dir, conf(dir, b, pg, "",
					     "table = raw\npayload_column = doc\n"
					     "topic_column = src\noffset_column = pos\n"
					     "attribute_columns = dev = dev, n = seq\n"));
	produced(producer(dir, b, json_lines(dir, "in", 1, 500)));
	ck_assert(TH_WAIT(rows(pg, "raw") == 500, 30000));
	ck_assert_int_eq(th_pg_long(pg, "SELECT count(*) FROM raw WHERE doc->>'name' = "
					"'n-' || (doc->>'id') AND src = '/default/in' AND "
					"dev = 'd7' AND n IS NULL AND pos = (doc->>'id')::int - 1"),
			 500);
	ck_assert_int_eq(th_pg_long(pg, "SELECT sum((doc->>'id')::int) FROM raw"), 500 * 501 / 2);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

START_TEST(upsert_updates_rows_in_place)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct th_broker *b = danube("/default/in");
	const char *dir = th_tmpdir();
	char *v;

	th_pg_exec(pg, "CREATE TABLE kv (k text PRIMARY KEY, val int, note text DEFAULT 'kept')");
	struct th_proc *w = worker(dir, conf(dir, b, pg, "",
					     "table = kv\nmode = upsert\nkey_columns = k\n"
					     "columns = k, val\n"));
	/* Keys repeat inside one batch too: the last one wins, as one at a time. */
	produce_text(b,
		     "{\"k\":\"a\",\"val\":1}\n{\"k\":\"b\",\"val\":2}\n{\"k\":\"a\",\"val\":3}\n"
		     "{\"k\":\"c\",\"val\":4}\n");
	ck_assert(TH_WAIT(th_pg_long(pg, "SELECT sum(val) FROM kv") == 9, 20000));
	th_pg_exec(pg, "UPDATE kv SET note = 'mine' WHERE k = 'b'");
	produce_text(
		b, "{\"k\":\"b\",\"val\":20}\n{\"k\":\"d\",\"val\":5}\n{\"k\":\"b\",\"val\":21}\n");
	ck_assert(TH_WAIT(th_pg_long(pg, "SELECT sum(val) FROM kv") == 33, 20000));
	ck_assert_int_eq(rows(pg, "kv"), 4);
	ck_assert_int_eq(th_pg_long(pg, "SELECT val FROM kv WHERE k = 'a'"), 3);
	ck_assert_int_eq(th_pg_long(pg, "SELECT val FROM kv WHERE k = 'b'"), 21);
	/* Updated in place: a column the sink does not write keeps its value. */
	v = th_pg_value(pg, "SELECT note FROM kv WHERE k = 'b'");
	ck_assert_str_eq(v, "mine");
	free(v);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* SIGKILLed three times mid-stream: exactly one row per message (make soak: 100,000). */
START_TEST(exactly_once_survives_sigkill_with_exactly_one_row_each)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct th_broker *b = danube("/default/in");
	const char *dir = th_tmpdir(), *file;
	const long long n = (long long)th_scale(6000, 100000);
	long long at[] = {n * 15 / 100, n * 45 / 100, n * 75 / 100};

	/* No unique key: a duplicate would show as an extra row. */
	th_pg_exec(pg, "%s", table_t);
	file = conf(dir, b, pg, "batch_size = 500\n",
		    "exactly_once = true\ntable = t\n"
		    "topic_column = topic\noffset_column = off\nattribute_columns = dev=dev\n");
	struct th_proc *w = worker(dir, file);
	struct th_proc *p = producer(dir, b, json_lines(dir, "in", 1, (int)n));
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		wait_rows(pg, at[i]);
		th_proc_kill(w, SIGKILL);
		ck_assert(th_proc_wait(w, 5000, NULL));
		w = worker(dir, file);
	}
	produced(p);
	wait_rows(pg, n);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert_int_eq(rows(pg, "t"), n);
	check_rows(pg, n);
	ck_assert_int_eq(th_pg_long(pg, "SELECT \"offset\" FROM danube_connect_offsets "
					"WHERE topic = '/default/in' AND subscription = 'pg'"),
			 n - 1);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* Offsets already stored (a commit whose acknowledgement never reached Danube) are skipped. */
START_TEST(exactly_once_skips_offsets_already_stored)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct th_broker *b = danube("/default/in");
	const char *dir = th_tmpdir();

	th_pg_exec(pg, "%s", table_t);
	struct th_proc *w =
		worker(dir, conf(dir, b, pg, "",
				 "exactly_once = true\noffsets_table = public.offs\n"
				 "table = t\ntopic_column = topic\noffset_column = off\n"
				 "attribute_columns = dev=dev\n"));
	th_pg_exec(pg, "INSERT INTO public.offs (topic, subscription, \"offset\") VALUES "
		       "('/default/in', 'pg', 49), ('/default/in', 'other', 99)");
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	w = worker(dir, conf(dir, b, pg, "",
			     "exactly_once = true\noffsets_table = public.offs\n"
			     "table = t\ntopic_column = topic\noffset_column = off\n"
			     "attribute_columns = dev=dev\n"));
	produced(producer(dir, b, json_lines(dir, "in", 1, 100)));
	ck_assert(TH_WAIT(th_pg_long(pg, "SELECT \"offset\" FROM public.offs WHERE "
					 "subscription = 'pg'") == 99,
			  20000));
	/* Offsets 0..49 were "written" before: ids 51..100 only, each once. */
	ck_assert_int_eq(rows(pg, "t"), 50);
	ck_assert_int_eq(th_pg_long(pg, "SELECT min(id) FROM t"), 51);
	ck_assert_int_eq(th_pg_long(pg, "SELECT count(DISTINCT id) FROM t"), 50);
	ck_assert(th_proc_output_contains(w, "records already written"));
	ck_assert_int_eq(th_pg_long(pg, "SELECT \"offset\" FROM public.offs WHERE "
					"subscription = 'other'"),
			 99);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/*
 * The broker skips what a subscription far behind did not read, and says
 * nothing. After a restart, exactly_once compares the first offset with the
 * stored one: here the stored offset is set back by hand, as if offsets 1
 * and 2 had never arrived, and the worker says so and counts them.
 */
START_TEST(exactly_once_reports_offsets_skipped_while_away)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct th_broker *b = danube("/default/in");
	const char *dir = th_tmpdir();
	const char *pgconf = "exactly_once = true\noffsets_table = public.offs\n"
			     "table = t\ntopic_column = topic\noffset_column = off\n"
			     "attribute_columns = dev=dev\n";

	th_pg_exec(pg, "%s", table_t);
	struct th_proc *w = worker(dir, conf(dir, b, pg, "", pgconf));
	produced(producer(dir, b, json_lines(dir, "a", 1, 3)));
	ck_assert(TH_WAIT(rows(pg, "t") == 3, 20000));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	th_pg_exec(pg, "UPDATE public.offs SET \"offset\" = 0");
	w = worker(dir, conf(dir, b, pg, "", pgconf));
	produced(producer(dir, b, json_lines(dir, "b", 4, 5)));
	ck_assert(TH_WAIT(rows(pg, "t") == 5, 20000));
	check_rows(pg, 5);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "/default/in: the broker skipped 2 messages "
						     "(offsets 1 to 2)"),
			  10000));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

START_TEST(postgres_restart_and_crash_lose_nothing)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct th_broker *b = danube("/default/in");
	const char *dir = th_tmpdir();
	const int n = 20000;

	th_pg_exec(pg, "%s", table_t);
	struct th_proc *w = worker(dir, conf(dir, b, pg, "", map_t));
	struct th_proc *p = producer(dir, b, json_lines(dir, "in", 1, n));
	ck_assert(TH_WAIT(rows(pg, "t") >= 3000, 60000));
	th_pg_restart(pg);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "reconnecting"), 10000));
	ck_assert(TH_WAIT(rows(pg, "t") >= 10000, 60000));
	th_pg_kill(pg);
	th_pg_restart(pg);
	produced(p);
	ck_assert_msg(TH_WAIT(th_pg_long(pg, "SELECT count(DISTINCT id) FROM t") >= n, 60000),
		      "%lld ids", th_pg_long(pg, "SELECT count(DISTINCT id) FROM t"));
	/* At least once without exactly_once: a commit whose answer was lost may repeat. */
	th_pg_exec(pg, "DELETE FROM t a USING t b WHERE a.ctid > b.ctid AND a.id = b.id");
	check_rows(pg, n);
	ck_assert(th_proc_running(w));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* The attribute value of key in a consumer line "k=v\tk=v\tpayload". */
static const char *attr_of(const char *line, const char *key, char *buf, size_t len)
{
	char want[64];
	const char *a, *end;

	snprintf(want, sizeof(want), "%s=", key);
	for (a = line; (a = strstr(a, want)); a++)
		if (a == line || a[-1] == '\t')
			break;
	if (!a)
		return NULL;
	a += strlen(want);
	end = strchr(a, '\t');
	snprintf(buf, len, "%.*s", end ? (int)(end - a) : (int)strlen(a), a);
	return buf;
}

/* The consumer's line whose payload is payload, or NULL. */
static char *line_with(const char *out, const char *payload)
{
	char *copy = strdup(out), *save = NULL, *found = NULL;

	ck_assert_ptr_nonnull(copy);
	for (char *l = strtok_r(copy, "\n", &save); l && !found; l = strtok_r(NULL, "\n", &save)) {
		const char *tab = strrchr(l, '\t');

		if (strcmp(tab ? tab + 1 : l, payload) == 0)
			found = strdup(l);
	}
	free(copy);
	return found;
}

START_TEST(poison_records_go_to_the_dlq_and_the_rest_commit)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct th_broker *b = danube("/default/in");
	const char *dir = th_tmpdir();
	char *lines = malloc(1000 * 64), *out, *l, buf[512];
	size_t len = 0;

	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/dlq", "--reliable", NULL), 0);
	char *cargv[] = {(char *)ctl(),  "consume",
			 "-u",           (char *)th_broker_url(b),
			 "-t",           "/default/dlq",
			 "-s",           "check",
			 "--type",       "exclusive",
			 "-n",           "3",
			 "--attributes", NULL};
	struct th_proc *c = th_spawn(dir, cargv, NULL);
	ck_assert(TH_WAIT(th_proc_output_contains(c, "consuming /default/dlq"), 10000));
	th_pg_exec(pg,
		   "CREATE TABLE t (id int PRIMARY KEY, name text NOT NULL, v double precision)");
	struct th_proc *w =
		worker(dir, conf(dir, b, pg,
				 "on_error = dlq\ndlq_topic = /default/dlq\nbatch_size = 1000\n"
				 "batch_timeout_ms = 2000\nbatch_linger_ms = 1h\n",
				 "table = t\n"));
	ck_assert_ptr_nonnull(lines);
	/*
	 * One batch: 997 good records, a bad JSON text, a missing NOT NULL field
	 * and a payload that is not UTF-8 amid them.
	 */
	for (int i = 1; i <= 1000; i++) {
		if (i == 500)
			len += (size_t)sprintf(lines + len, "{\"id\":500,\"name\":\"\xff\"}\n");
		else if (i == 300)
			len += (size_t)sprintf(lines + len, "{\"id\": 300, oops\n");
		else if (i == 700)
			len += (size_t)sprintf(lines + len, "{\"id\":700}\n");
		else
			len += (size_t)sprintf(
				lines + len, "{\"id\":%d,\"name\":\"n-%d\",\"v\":%d.5}\n", i, i, i);
	}
	produce_text(b, lines);
	ck_assert_msg(TH_WAIT(rows(pg, "t") == 997, 30000), "%lld rows", rows(pg, "t"));
	ck_assert_int_eq(th_pg_long(pg, "SELECT sum(id) FROM t"), 500500 - 300 - 500 - 700);
	ck_assert(th_proc_wait(c, 20000, NULL));
	out = th_proc_output(c);
	l = line_with(out, "{\"id\": 300, oops");
	ck_assert_msg(l != NULL, "no bad JSON in the DLQ: %s", out);
	ck_assert_str_eq(attr_of(l, "dlq.error_type", buf, sizeof(buf)), "invalid_data");
	ck_assert_ptr_nonnull(strstr(attr_of(l, "dlq.error", buf, sizeof(buf)), "22P02"));
	ck_assert_str_eq(attr_of(l, "dlq.offset", buf, sizeof(buf)), "299");
	free(l);
	l = line_with(out, "{\"id\":700}");
	ck_assert_msg(l != NULL, "no NOT NULL violation in the DLQ: %s", out);
	ck_assert_str_eq(attr_of(l, "dlq.error_type", buf, sizeof(buf)), "invalid_data");
	ck_assert_ptr_nonnull(strstr(attr_of(l, "dlq.error", buf, sizeof(buf)), "23502"));
	ck_assert_str_eq(attr_of(l, "dlq.source_topic", buf, sizeof(buf)), "/default/in");
	free(l);
	/* Refused as it is, never altered into something that parses. */
	l = line_with(out, "{\"id\":500,\"name\":\"\xff\"}");
	ck_assert_msg(l != NULL, "no invalid UTF-8 in the DLQ: %s", out);
	ck_assert_str_eq(attr_of(l, "dlq.error_type", buf, sizeof(buf)), "invalid_data");
	ck_assert_ptr_nonnull(strstr(attr_of(l, "dlq.error", buf, sizeof(buf)), "not valid UTF-8"));
	free(l);
	ck_assert_int_eq(th_pg_long(pg, "SELECT count(*) FROM t WHERE id = 500"), 0);
	free(out);
	/* Found by halving one batch (less the record that is not UTF-8), not one at a time. */
	ck_assert(th_proc_output_contains(w, "bisecting 999 records"));
	ck_assert_int_lt(th_proc_output_count(w, "bisecting"), 40);
	free(lines);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* The shipped example (make demo) with its table: sensor readings become rows. */
START_TEST(example_config_writes_sensor_readings)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	static const char *const extra[] = {"--max-unacked", "2000", NULL};
	struct th_broker *b = th_broker_start(th_tmpdir(), extra);
	const char *dir = th_tmpdir();
	char *sql = th_read_file(th_src_path("etc/sensor_readings.sql")), url[300], ci[300];
	char *out = NULL, *v;
	char *env[] = {url, ci, NULL};
	char *argv[] = {(char *)th_build_path("workers/sink-postgres"), "-c",
			(char *)th_src_path("etc/connectors.d/sensors-postgres.ini"), NULL};
	char *pargv[] = {(char *)ctl(),
			 "produce",
			 "-u",
			 (char *)th_broker_url(b),
			 "-t",
			 "/default/sensors",
			 "--reliable",
			 "-a",
			 "mqtt.topic=sensors/s1/temperature",
			 NULL};

	ck_assert_ptr_nonnull(sql);
	th_pg_exec(pg, "%s", sql);
	free(sql);
	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/sensors", "--reliable", NULL),
			 0);
	snprintf(url, sizeof(url), "DANUBE_CONNECT_DANUBE_SERVICE_URL=%s", th_broker_url(b));
	snprintf(ci, sizeof(ci), "DANUBE_CONNECT_POSTGRES_CONNINFO=%s", th_pg_conninfo(pg));
	struct th_proc *w = th_spawn(dir, argv, env);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube") &&
				  th_proc_output_contains(w, "postgres: ready"),
			  20000));
	ck_assert_int_eq(
		th_run_input(
			pargv,
			"{\"sensor\":\"s1\",\"value\":21.5,\"ts\":\"2026-11-27T10:00:00Z\"}\n"
			"{\"sensor\":\"s1\",\"value\":22,\"ts\":\"2026-11-27T10:01:00Z\"}\n"
			"{\"sensor\":\"s1\",\"value\":\"warm\",\"ts\":\"2026-11-27T10:02:00Z\"}\n",
			&out, 30000),
		0);
	free(out);
	/* The third is refused (not a number) and skipped, as the example's on_error says. */
	ck_assert(TH_WAIT(th_proc_output_contains(w, "22P02") && rows(pg, "sensor_readings") == 2,
			  20000));
	v = th_pg_value(
		pg, "SELECT string_agg(sensor || ' ' || value || ' ' || "
		    "to_char(ts AT TIME ZONE 'UTC', 'HH24:MI') || ' ' || mqtt_topic || ' ' || "
		    "danube_topic || ' ' || danube_offset, ',' ORDER BY id) FROM sensor_readings");
	ck_assert_str_eq(v, "s1 21.5 10:00 sensors/s1/temperature /default/sensors 0,"
			    "s1 22 10:01 sensors/s1/temperature /default/sensors 1");
	free(v);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* --check on a sink-postgres file with extra [postgres] lines: exit 78 and want printed. */
static void check_fails_at(const char *extra, const char *want)
{
	const char *dir = th_tmpdir();
	char path[512], *out = NULL;
	char *argv[] = {(char *)th_build_path("workers/sink-postgres"), "--check", "-c", path,
			NULL};

	snprintf(path, sizeof(path), "%s/bad.ini", dir);
	ck_assert_int_eq(th_write_file(path,
				       "[connector]\ntype = sink-postgres\n\n[danube]\n"
				       "topic = /default/in\n\n[postgres]\n%s",
				       extra),
			 0);
	ck_assert_int_eq(th_run(argv, &out, 10000), 78);
	ck_assert_msg(strstr(out, want) != NULL, "want '%s' in: %s", want, out);
	ck_assert_msg(strstr(out, "s3cret") == NULL, "a secret in: %s", out);
	free(out);
}

START_TEST(check_reports_bad_postgres_keys_with_file_line)
{
	check_fails_at("conninfo = host=x password=s3cret\ntable = t\nmode = upsert\n",
		       "bad.ini:10: mode = upsert needs key_columns");
	check_fails_at("conninfo = host=x nosuchkey=1 password=s3cret\ntable = t\n",
		       "bad.ini:8: conninfo: invalid connection option \"nosuchkey\"");
	check_fails_at("conninfo = host=x\ntable = a.b.c\n", "bad.ini:9: table: must be");
	/* A malformed conninfo's words are not echoed: one of them may be the password. */
	check_fails_at("conninfo = host=x s3cret\ntable = t\n", "bad.ini:8: conninfo: missing");
	check_fails_at("conninfo = host=x\ntable = t\nmode = merge\n", "bad.ini:10:");
	check_fails_at("conninfo = host=x\ntable = t\nexactly_once = maybe\n", "bad.ini:10:");
	check_fails_at("conninfo = host=x\ntable = t\npayload_column = doc\ncolumns = a\n",
		       "bad.ini:11: columns maps");
	check_fails_at("conninfo = host=x\ntable = t\nattribute_columns = a=b, c\n",
		       "bad.ini:10: attribute_columns: 'c' is not COLUMN=ATTRIBUTE");
	check_fails_at("conninfo = host=x\ntable = t\nmode = upsert\nkey_columns = k\n"
		       "columns = a, b\n",
		       "bad.ini:11: key column 'k' is not among the columns written");
	check_fails_at("conninfo = host=x\ntable = t\nexactly_once = true\n",
		       "bad.ini:10: exactly_once needs an exclusive or failover subscription, "
		       "not subscription_type = shared (default)");
	check_fails_at("table = t\n", "conninfo");
	check_fails_at("conninfo = host=x\ntable = t\ncolour = blue\n", "bad.ini:10:");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("sink_postgres");
	TCase *tc = tcase_create("sink");

	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, check_reports_bad_postgres_keys_with_file_line);
	tcase_add_test(tc, upsert_updates_rows_in_place);
	tcase_add_test(tc, example_config_writes_sensor_readings);
	tcase_add_test(tc, payload_column_keeps_whole_payload_with_attributes);
	tcase_add_test(tc, poison_records_go_to_the_dlq_and_the_rest_commit);
	tcase_add_test(tc, exactly_once_skips_offsets_already_stored);
	tcase_add_test(tc, exactly_once_reports_offsets_skipped_while_away);
	tcase_add_test(tc, postgres_restart_and_crash_lose_nothing);
	tcase_add_test(tc, writes_every_message_as_a_correct_row);
	tcase_add_test(tc, exactly_once_survives_sigkill_with_exactly_one_row_each);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
