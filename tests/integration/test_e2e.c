/*
 * End to end under the supervisor: MQTT -> source-mqtt -> Danube ->
 * sink-postgres -> a table, with real mosquitto, the Danube test broker and a
 * throwaway PostgreSQL; and the quick start (scripts/demo) as shipped.
 */
#include "broker.h"
#include "harness.h"
#include "mosquitto.h"
#include "pg.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#define TABLE_SQL                                                                      \
	"CREATE TABLE sensor_readings (sensor text NOT NULL, value double precision, " \
	"ts timestamptz)"

/* Output of danube-connectctl -s ipc://RUN/control.sock ARGS (caller frees; NULL on failure). */
static char *ctl(const char *run, const char *cmd, const char *arg)
{
	char sock[600], *out = NULL;
	char *argv[] = {(char *)th_build_path("danube-connectctl"),
			"-s",
			sock,
			(char *)cmd,
			(char *)arg,
			NULL};

	snprintf(sock, sizeof(sock), "ipc://%s/control.sock", run);
	if (th_run(argv, &out, 10000) != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* The status line of connector name has state (as a whole word). */
static bool state_is(const char *run, const char *name, const char *state)
{
	char *out = ctl(run, "status", name), *line, *save = NULL;
	bool ok = false;

	if (!out)
		return false;
	for (line = strtok_r(out, "\n", &save); line && !ok; line = strtok_r(NULL, "\n", &save)) {
		char n[128], t[128], s[128];

		if (sscanf(line, "%127s %127s %127s", n, t, s) == 3)
			ok = strcmp(n, name) == 0 && strcmp(s, state) == 0;
	}
	free(out);
	return ok;
}

/* The pid status shows for name, or -1. */
static long pid_of(const char *run, const char *name)
{
	char *out = ctl(run, "status", name), *line, *save = NULL;
	long pid = -1;

	if (!out)
		return -1;
	for (line = strtok_r(out, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char n[128], t[128], s[128];
		long p;

		if (sscanf(line, "%127s %127s %127s %ld", n, t, s, &p) == 4 && strcmp(n, name) == 0)
			pid = p;
	}
	free(out);
	return pid;
}

static bool metrics_show(const char *run, const char *needle)
{
	char *out = ctl(run, "metrics", NULL);
	bool ok = out && strstr(out, needle);

	free(out);
	return ok;
}

/* The sink's danube_connector_skipped_messages_total, 0 when not shown. */
static long long skipped(const char *run)
{
	static const char key[] = "danube_connector_skipped_messages_total{connector=\"archive\","
				  "topic=\"/default/sensors\"} ";
	char *out = ctl(run, "metrics", NULL);
	const char *at = out ? strstr(out, key) : NULL;
	long long n = at ? atoll(at + strlen(key)) : 0;

	free(out);
	return n;
}

/* Publishes readings FROM..TO as JSON lines at QoS 1: sensor s(i%3), value i+0.5. */
static void publish_readings(const char *dir, int port, const char *topic, int from, int to)
{
	char cmd[768];
	char *argv[] = {"/bin/sh", "-c", cmd, NULL};
	int status;

	snprintf(cmd, sizeof(cmd),
		 "seq %d %d | awk '{printf \"{\\\"sensor\\\":\\\"s%%d\\\",\\\"value\\\":%%d.5,"
		 "\\\"ts\\\":\\\"2026-11-27T10:00:00Z\\\"}\\n\", $1 %% 3, $1}' | "
		 "mosquitto_pub -h 127.0.0.1 -p %d -q 1 -l -t '%s'",
		 from, to, port, topic);
	struct th_proc *p = th_spawn(dir, argv, NULL);

	ck_assert(th_proc_wait(p, 60000, &status));
	ck_assert_int_eq(th_exit_code(status), 0);
}

static long long rows(struct th_pg *pg)
{
	return th_pg_long(pg, "SELECT count(*) FROM sensor_readings");
}

/*
 * 2000 readings from two MQTT topics land as 2000 correct rows; the sink is
 * SIGKILLed halfway, the supervisor restarts it and exactly-once keeps the
 * count exact; status shows both running and the metrics count.
 */
START_TEST(mqtt_to_postgres_under_the_supervisor)
{
	struct th_broker *b = th_broker_start(th_tmpdir(), NULL);
	struct th_mosq *m = th_mosq_start(NULL);
	struct th_pg *pg = th_pg_start(NULL, NULL);
	const char *dir = th_tmpdir();
	char run[512], conn[512], path[600], global[600];
	long pid;

	th_pg_exec(pg, TABLE_SQL);
	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/sensors", "--reliable", NULL),
			 0);
	snprintf(run, sizeof(run), "%s/run", dir);
	snprintf(conn, sizeof(conn), "%s/conn.d", dir);
	ck_assert_int_eq(mkdir(conn, 0755), 0);
	snprintf(global, sizeof(global), "%s/danube-connect.ini", dir);
	ck_assert_int_eq(th_write_file(global,
				       "[supervisor]\nconnectors_dir = %s\nrun_dir = %s\n"
				       "worker_dir = %s\nmetrics_listen =\nlog_level = debug\n"
				       "restart_backoff_initial_ms = 100\n"
				       "[danube]\nservice_url = %s\n",
				       conn, run, th_build_path("workers"), th_broker_url(b)),
			 0);
	snprintf(path, sizeof(path), "%s/sensors.ini", conn);
	ck_assert_int_eq(
		th_write_file(path,
			      "[connector]\ntype = source-mqtt\n[danube]\ndispatch = reliable\n"
			      "[mqtt]\nport = %d\n"
			      "[route t]\nmqtt_topic = sensors/+/temperature\n"
			      "danube_topic = /default/sensors\n"
			      "[route h]\nmqtt_topic = sensors/+/humidity\n"
			      "danube_topic = /default/sensors\n",
			      th_mosq_port(m)),
		0);
	snprintf(path, sizeof(path), "%s/archive.ini", conn);
	ck_assert_int_eq(th_write_file(path,
				       "[connector]\ntype = sink-postgres\n[danube]\n"
				       "topic = /default/sensors\nsubscription = archive\n"
				       "subscription_type = exclusive\n"
				       "[runtime]\nbatch_size = 100\nbatch_timeout_ms = 50\n"
				       "[postgres]\nconninfo = %s\ntable = sensor_readings\n"
				       "exactly_once = true\n",
				       th_pg_conninfo(pg)),
			 0);
	char *dargv[] = {(char *)th_build_path("danube-connectd"), "-f", "-c", global, NULL};
	struct th_proc *d = th_spawn(dir, dargv, NULL);

	ck_assert_msg(
		TH_WAIT(state_is(run, "sensors", "running") && state_is(run, "archive", "running"),
			30000),
		"not both running:\n%s", th_proc_output(d));
	ck_assert(TH_WAIT(th_proc_output_contains(d, "granted qos"), 10000));

	publish_readings(dir, th_mosq_port(m), "sensors/a/temperature", 1, 1000);
	ck_assert_msg(TH_WAIT(rows(pg) >= 500, 60000), "%lld rows", rows(pg));
	pid = pid_of(run, "archive");
	ck_assert_int_gt(pid, 0);
	ck_assert_int_eq(kill((pid_t)pid, SIGKILL), 0);
	publish_readings(dir, th_mosq_port(m), "sensors/b/humidity", 1001, 2000);
	if (th_broker_is_real()) {
		/*
		 * The real broker drops what a subscription more than 256 behind
		 * did not read (its sink was down): every reading is a row or a
		 * skip the sink counted, none is gone without a word.
		 */
		ck_assert_msg(TH_WAIT(rows(pg) + skipped(run) == 2000, 60000),
			      "%lld rows, %lld skipped", rows(pg), skipped(run));
		ck_assert_int_eq(th_exit_code(th_proc_stop(d, SIGTERM, 20000)), 0);
		return;
	}
	ck_assert_msg(TH_WAIT(rows(pg) == 2000, 60000), "%lld rows", rows(pg));
	ck_assert_int_eq(skipped(run), 0);
	ck_assert(TH_WAIT(pid_of(run, "archive") != pid && state_is(run, "archive", "running"),
			  30000));

	/* Every reading once, with its values: sum of i + 0.5 over 1..2000, three sensors. */
	ck_assert_int_eq(th_pg_long(pg, "SELECT count(DISTINCT value) FROM sensor_readings"), 2000);
	ck_assert_int_eq(th_pg_long(pg, "SELECT sum(value * 2)::bigint FROM sensor_readings"),
			 2000LL * 2001 + 2000);
	ck_assert_int_eq(th_pg_long(pg, "SELECT count(DISTINCT sensor) FROM sensor_readings"), 3);
	ck_assert_int_eq(th_pg_long(pg, "SELECT count(*) FROM sensor_readings WHERE ts <> "
					"'2026-11-27T10:00:00Z'"),
			 0);
	/* The source counted all of them; the restarted sink counts what it wrote itself. */
	ck_assert(TH_WAIT(metrics_show(run, "danube_connector_messages_received_total{connector="
					    "\"sensors\",topic=\"/default/sensors\"} 2000"),
			  10000));
	ck_assert(metrics_show(run, "danube_connector_restarts_total{connector=\"archive\"} 1"));
	ck_assert_int_eq(th_exit_code(th_proc_stop(d, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(d));
	ck_assert_int_eq(rows(pg), 2000);
}
END_TEST

/* `make demo` as shipped, in its batch mode: the example files carry readings into the table. */
START_TEST(demo_carries_readings_into_the_table)
{
	char script[600], real[1100], *out = NULL;
	char *argv[] = {
		"/usr/bin/env", "DEMO_NO_BUILD=1", real, (char *)script, "--rows", "30", NULL};
	int rc;

	snprintf(script, sizeof(script), "%s/scripts/demo", th_src_path(""));
	/* make check-danube: the quick start on the real broker too. */
	snprintf(real, sizeof(real), "DANUBE_BROKER=%s",
		 th_broker_is_real() ? getenv("DC_DANUBE_BROKER") : "");
	rc = th_run(argv, &out, 150000);
	ck_assert_msg(rc == 0, "demo exited %d:\n%s", rc, out ? out : "");
	ck_assert_msg(strstr(out, "30 rows in sensor_readings"), "%s", out);
	ck_assert_msg(strstr(out, "sensors-mqtt") && strstr(out, "sensors-postgres"), "%s", out);
	ck_assert_ptr_null(strstr(out, "Sanitizer"));
	free(out);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("e2e");
	TCase *tc = tcase_create("e2e");

	tcase_set_timeout(tc, 180);
	tcase_add_test(tc, mqtt_to_postgres_under_the_supervisor);
	tcase_add_test(tc, demo_carries_readings_into_the_table);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
