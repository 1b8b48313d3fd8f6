/*
 * The connector runtime against the test broker, through two test
 * connectors: echo-source (generated records) and collect-sink (records to
 * a file, OK/RETRY/FATAL by rule).
 */
#include "broker.h"
#include "control.pb.h"
#include "harness.h"

#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pb_decode.h>
#include <pb_encode.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

static const char *ctl(void)
{
	return th_build_path("danube-connectctl");
}

static struct th_broker *broker(void)
{
	struct th_broker *b = th_broker_start(th_tmpdir(), NULL);

	ck_assert_ptr_nonnull(b);
	return b;
}

/* Writes dir/NAME.conf with the [connector]/[danube] head and extra text. */
static const char *conf(const char *dir, const char *name, const char *type, struct th_broker *b,
			const char *extra)
{
	static char path[8][512];
	static int slot;
	char *p = path[slot++ % 8];

	snprintf(p, 512, "%s/%s.conf", dir, name);
	ck_assert_int_eq(th_write_file(p,
				       "[connector]\ntype = %s\nlog_level = debug\n\n"
				       "[danube]\nservice_url = %s\n%s",
				       type, th_broker_url(b), extra),
			 0);
	return p;
}

static struct th_proc *worker(const char *dir, const char *prog, const char *file)
{
	char *argv[] = {(char *)th_build_path(prog), "-c", (char *)file, NULL};

	return th_spawn(dir, argv, NULL);
}

static void produce(struct th_broker *b, const char *topic, const char *lines)
{
	char *out = NULL;
	char *argv[] = {(char *)ctl(), "produce",     "-u",         (char *)th_broker_url(b),
			"-t",          (char *)topic, "--reliable", "-a",
			"orig=yes",    NULL};
	int rc = th_run_input(argv, lines, &out, 20000);

	ck_assert_msg(rc == 0, "produce exited %d: %s", rc, out);
	free(out);
}

static size_t count_lines(const char *path)
{
	char *s = th_read_file(path);
	size_t n = 0;

	for (char *p = s; p && *p; p++)
		n += *p == '\n';
	free(s);
	return n;
}

/* A consumer of n messages of topic (created), with their attributes, ready. */
static struct th_proc *consume_n(const char *dir, struct th_broker *b, const char *topic,
				 const char *n)
{
	char *argv[] = {(char *)ctl(),  "consume",     "-u", (char *)th_broker_url(b),
			"-t",           (char *)topic, "-s", "t",
			"--type",       "exclusive",   "-n", (char *)n,
			"--attributes", NULL};
	struct th_proc *c;
	char want[300];

	ck_assert_int_eq(th_broker_admin(b, "create-topic", topic, "--reliable", NULL), 0);
	c = th_spawn(dir, argv, NULL);
	snprintf(want, sizeof(want), "consuming %s", topic);
	ck_assert(TH_WAIT(th_proc_output_contains(c, want), 10000));
	return c;
}

/* Waits for cons to exit 0 having printed rec-1 .. rec-n in order; returns its output. */
static char *consumed_in_order(struct th_proc *cons, int n)
{
	char *log, want[64];
	const char *at;
	int status;

	ck_assert(th_proc_wait(cons, 20000, &status));
	ck_assert_int_eq(th_exit_code(status), 0);
	log = th_proc_output(cons);
	at = log;
	for (int i = 1; i <= n; i++) {
		snprintf(want, sizeof(want), "rec-%d\n", i);
		at = strstr(at, want);
		ck_assert_msg(at != NULL, "missing %s in order in:\n%s", want, log);
	}
	return log;
}

START_TEST(source_records_arrive_in_order_with_attributes)
{
	struct th_broker *b = broker();
	const char *dir = th_tmpdir();
	char *log, want[64];
	struct th_proc *cons = consume_n(dir, b, "/default/echo", "50");
	struct th_proc *w = worker(dir, "tests/workers/echo-source",
				   conf(dir, "echo", "echo-source", b,
					"topic = /default/echo\ndispatch = reliable\n"
					"[echo]\ncount = 50\n"));

	log = consumed_in_order(cons, 50);
	for (int i = 1; i <= 50; i++) {
		const char *a, *b2;

		snprintf(want, sizeof(want), "rec-%d\n", i);
		a = strstr(log, want);
		/* The attributes precede the payload on its line. */
		b2 = a;
		while (b2 > log && b2[-1] != '\n')
			b2--;
		snprintf(want, sizeof(want), "seq=%d\t", i);
		ck_assert_msg(strstr(b2, want) == b2 ||
				      memmem(b2, (size_t)(a - b2), want, strlen(want)),
			      "no %s on line of rec-%d", want, i);
		ck_assert(memmem(b2, (size_t)(a - b2), "src=echo\t", 9) != NULL);
	}
	free(log);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "echo committed 50"), 10000));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
	ck_assert(th_proc_output_contains(w, "drained, exiting"));
}
END_TEST

/* Commits come only from broker acks; a small queue pauses the source, nothing is lost. */
START_TEST(backpressure_pauses_until_broker_acks_then_delivers_all)
{
	if (th_broker_needs_test_broker("restarts the broker"))
		return;
	struct th_broker *b = broker();
	const char *dir = th_tmpdir();
	char *log;

	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/bp", "--reliable", NULL), 0);
	th_broker_stop(b);
	struct th_proc *w = worker(dir, "tests/workers/echo-source",
				   conf(dir, "bp", "echo-source", b,
					"topic = /default/bp\n[runtime]\nqueue_size = 8\n"
					"[echo]\ncount = 200\n"));
	ck_assert(TH_WAIT(th_proc_output_contains(w, "echo paused at 9"), 10000));
	ck_assert(!th_proc_output_contains(w, "echo committed"));
	th_broker_restart(b);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "echo committed 200"), 30000));
	ck_assert(th_proc_output_contains(w, "echo resumed"));
	/* Commits are in submission order. */
	log = th_proc_output(w);
	unsigned long last = 0, v;
	for (const char *p = log; (p = strstr(p, "echo committed ")); p++) {
		v = strtoul(p + 15, NULL, 10);
		ck_assert_msg(v > last, "commit %lu after %lu", v, last);
		last = v;
	}
	free(log);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/*
 * queue_size is a soft limit: a source that keeps submitting past it (data
 * already in hand) loses nothing; it is paused, then resumed, and every
 * record arrives in order.
 */
START_TEST(source_submitting_past_queue_size_keeps_all_in_order)
{
	struct th_broker *b = broker();
	const char *dir = th_tmpdir();
	struct th_proc *cons = consume_n(dir, b, "/default/soft", "60");
	/* One loop pass submits up to 100 records: all 60 before the first ack. */
	struct th_proc *w = worker(dir, "tests/workers/echo-source",
				   conf(dir, "soft", "echo-source", b,
					"topic = /default/soft\n[runtime]\nqueue_size = 8\n"
					"[echo]\ncount = 60\nignore_pause = true\n"));

	free(consumed_in_order(cons, 60));
	ck_assert(TH_WAIT(th_proc_output_contains(w, "echo committed 60"), 10000));
	ck_assert(th_proc_output_contains(w, "echo paused at 9"));
	ck_assert(th_proc_output_contains(w, "echo resumed"));
	ck_assert(!th_proc_output_contains(w, "submit failed"));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

START_TEST(source_undeliverable_record_skip_or_fail)
{
	struct th_broker *b = broker();
	const char *dir = th_tmpdir();
	char *log;
	int status;

	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/big", "--reliable", NULL), 0);
	char *cargv[] = {(char *)ctl(), "consume",      "-u", (char *)th_broker_url(b),
			 "-t",          "/default/big", "-s", "t",
			 "--type",      "exclusive",    "-n", "2",
			 NULL};
	struct th_proc *cons = th_spawn(dir, cargv, NULL);

	ck_assert(TH_WAIT(th_proc_output_contains(cons, "consuming /default/big"), 10000));
	/* skip: record 2 is counted and passed over, 3 still commits. */
	struct th_proc *w = worker(dir, "tests/workers/echo-source",
				   conf(dir, "big", "echo-source", b,
					"topic = /default/big\n[runtime]\non_error = skip\n"
					"[echo]\ncount = 3\nbig_seq = 2\n"));
	ck_assert(TH_WAIT(th_proc_output_contains(w, "echo committed 3"), 10000));
	ck_assert(th_proc_output_contains(w, "record 2 not delivered"));
	ck_assert(th_proc_wait(cons, 15000, &status));
	log = th_proc_output(cons);
	ck_assert_msg(strstr(log, "rec-1\nrec-3\n") != NULL, "%s", log);
	free(log);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));

	/* fail: the worker exits 1 and never commits past record 1. */
	w = worker(dir, "tests/workers/echo-source",
		   conf(dir, "big2", "echo-source", b,
			"topic = /default/big\n[runtime]\non_error = fail\n"
			"[echo]\ncount = 3\nbig_seq = 2\n"));
	ck_assert(th_proc_wait(w, 15000, &status));
	ck_assert_int_eq(th_exit_code(status), 1);
	ck_assert(!th_proc_output_contains(w, "echo committed 2"));
	ck_assert(!th_proc_output_contains(w, "echo committed 3"));
	ck_assert(th_proc_clean(w));
}
END_TEST

/*
 * on_error = dlq: a record the broker refuses for good (larger than a
 * message may be) goes to the DLQ with attributes saying why, without the
 * payload that was refused; the records around it arrive and commit.
 */
START_TEST(source_undeliverable_record_goes_to_dlq_with_reasons)
{
	struct th_broker *b = broker();
	const char *dir = th_tmpdir();
	char *log;
	int status;

	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/sbig", "--reliable", NULL),
			 0);
	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/sdlq", "--reliable", NULL),
			 0);
	char *cargv[] = {(char *)ctl(), "consume",       "-u", (char *)th_broker_url(b),
			 "-t",          "/default/sbig", "-s", "t",
			 "--type",      "exclusive",     "-n", "2",
			 NULL};
	char *dargv[] = {(char *)ctl(),  "consume",
			 "-u",           (char *)th_broker_url(b),
			 "-t",           "/default/sdlq",
			 "-s",           "d",
			 "--type",       "exclusive",
			 "-n",           "1",
			 "--attributes", NULL};
	struct th_proc *cons = th_spawn(dir, cargv, NULL);
	struct th_proc *dlq = th_spawn(dir, dargv, NULL);

	ck_assert(TH_WAIT(th_proc_output_contains(cons, "consuming /default/sbig"), 10000));
	ck_assert(TH_WAIT(th_proc_output_contains(dlq, "consuming /default/sdlq"), 10000));
	struct th_proc *w =
		worker(dir, "tests/workers/echo-source",
		       conf(dir, "sdlq", "echo-source", b,
			    "topic = /default/sbig\n[runtime]\non_error = dlq\n"
			    "dlq_topic = /default/sdlq\n[echo]\ncount = 3\nbig_seq = 2\n"));
	ck_assert(TH_WAIT(th_proc_output_contains(w, "echo committed 3"), 15000));
	ck_assert(th_proc_output_contains(w, "record 2 not delivered"));
	ck_assert(th_proc_wait(cons, 15000, &status));
	ck_assert_int_eq(th_exit_code(status), 0);
	log = th_proc_output(cons);
	ck_assert_msg(strstr(log, "rec-1\nrec-3\n") != NULL, "%s", log);
	free(log);
	ck_assert(th_proc_wait(dlq, 15000, &status));
	ck_assert_int_eq(th_exit_code(status), 0);
	log = th_proc_output(dlq);
	/* The record's own attributes, then why; the payload (last field) is empty. */
	ck_assert_msg(strstr(log, "seq=2\t") && strstr(log, "src=echo\t"), "%s", log);
	ck_assert_msg(strstr(log, "dlq.error_type=broker\t"), "%s", log);
	ck_assert_msg(strstr(log, "dlq.source_topic=/default/sbig\t"), "%s", log);
	ck_assert_msg(strstr(log, "dlq.attempts=1\t"), "%s", log);
	ck_assert_msg(strstr(log, "dlq.payload_omitted=5242880\t"), "%s", log);
	ck_assert_msg(strstr(log, "dlq.error=") && strstr(log, "\t\n"), "%s", log);
	free(log);
	ck_assert(th_proc_running(w));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
	ck_assert(th_proc_output_contains(w, "drained, exiting"));
}
END_TEST

/* The file at path holds the bytes of needle (a binary file: not a C string). */
static bool file_has(const char *path, const char *needle)
{
	char buf[1 << 16];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	return memmem(buf, n, needle, strlen(needle)) != NULL;
}

/*
 * [runtime] spool_dir: records a SIGKILLed source had not got acknowledged
 * are replayed, in order and with their attributes, before the next run's
 * own records; committed() sees only the new run's tokens.
 */
START_TEST(source_spool_replays_unacknowledged_records_after_sigkill)
{
	if (th_broker_needs_test_broker("restarts the broker"))
		return;
	struct th_broker *b = broker();
	const char *dir = th_tmpdir();
	char spool[600], extra[1024], want[64], *log, *rel = NULL;
	const char *at;
	int status;

	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/sp", "--reliable", NULL), 0);
	char *cargv[] = {(char *)ctl(),  "consume",     "-u", (char *)th_broker_url(b),
			 "-t",           "/default/sp", "-s", "t",
			 "--type",       "exclusive",   "-n", "25",
			 "--attributes", NULL};
	/* The subscription exists before the broker goes away, so it keeps what comes. */
	struct th_proc *cons = th_spawn(dir, cargv, NULL);
	ck_assert(TH_WAIT(th_proc_output_contains(cons, "consuming /default/sp"), 10000));
	th_proc_stop(cons, SIGTERM, 5000);
	th_broker_stop(b);

	snprintf(spool, sizeof(spool), "%s/spool/sp.spool", dir);
	snprintf(extra, sizeof(extra),
		 "topic = /default/sp\n[runtime]\nspool_dir = %s/spool\n[echo]\ncount = 20\n", dir);
	struct th_proc *w =
		worker(dir, "tests/workers/echo-source", conf(dir, "sp", "echo-source", b, extra));
	ck_assert(TH_WAIT(file_has(spool, "rec-20"), 10000));
	th_proc_kill(w, SIGKILL);
	ck_assert(th_proc_wait(w, 5000, NULL));
	ck_assert(!th_proc_output_contains(w, "echo committed"));

	th_broker_restart(b);
	cons = th_spawn(dir, cargv, NULL);
	snprintf(extra, sizeof(extra),
		 "topic = /default/sp\n[runtime]\nspool_dir = %s/spool\n[echo]\ncount = 5\n"
		 "prefix = new\n",
		 dir);
	w = worker(dir, "tests/workers/echo-source", conf(dir, "sp", "echo-source", b, extra));
	ck_assert(TH_WAIT(th_proc_output_contains(w, "replaying 20 records"), 10000));
	ck_assert(th_proc_wait(cons, 20000, &status));
	ck_assert_int_eq(th_exit_code(status), 0);
	log = th_proc_output(cons);
	at = log;
	for (int i = 1; i <= 25; i++) {
		const char *line;

		snprintf(want, sizeof(want), "\t%s-%d\n", i <= 20 ? "rec" : "new",
			 i <= 20 ? i : i - 20);
		at = strstr(at, want);
		ck_assert_msg(at != NULL, "missing %s in order in:\n%s", want + 1, log);
		for (line = at; line > log && line[-1] != '\n'; line--)
			;
		snprintf(want, sizeof(want), "seq=%d\t", i <= 20 ? i : i - 20);
		ck_assert_msg(memmem(line, (size_t)(at - line) + 1, want, strlen(want)) != NULL,
			      "no %s on the line of record %d", want, i);
		at++;
	}
	free(log);
	/* Tokens 1..20 were the previous run's: committed() sees 1..5 of this one only. */
	ck_assert(TH_WAIT(th_proc_output_contains(w, "echo committed 5\n"), 10000));
	log = th_proc_output(w);
	for (const char *p = log; (p = strstr(p, "echo committed ")); p++)
		ck_assert_msg(strtoul(p + 15, NULL, 10) <= 5, "committed a replayed token");
	free(log);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
	/* All acknowledged: nothing is left to replay. */
	w = worker(dir, "tests/workers/echo-source", conf(dir, "sp", "echo-source", b, extra));
	ck_assert(TH_WAIT(th_proc_output_contains(w, "echo committed 5\n"), 10000));
	ck_assert(!th_proc_output_contains(w, "replaying"));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));

	/* A relative spool_dir is a configuration error. */
	char *check[] = {
		(char *)th_build_path("tests/workers/echo-source"), "--check", "-c",
		(char *)conf(dir, "rel", "echo-source", b, "[runtime]\nspool_dir = spool\n"), NULL};
	ck_assert_int_eq(th_run(check, &rel, 10000), 78);
	ck_assert_msg(strstr(rel, "rel.conf:8: spool_dir must be an absolute path"), "%s", rel);
	free(rel);
}
END_TEST

static struct th_proc *sink(struct th_broker *b, const char *dir, const char *name, const char *out,
			    const char *runtime, const char *collect)
{
	char extra[1024];

	snprintf(extra, sizeof(extra),
		 "topic = /default/in\nsubscription = s\nsubscription_type = exclusive\n"
		 "[runtime]\nbatch_size = 10\nbatch_timeout_ms = 50\nretry_backoff_ms = 10\n"
		 "retry_backoff_max_ms = 50\n%s\n[collect]\nout_file = %s\n%s\n",
		 runtime, out, collect);
	return worker(dir, "tests/workers/collect-sink", conf(dir, name, "collect-sink", b, extra));
}

/*
 * A collect-sink on /default/in whose whole [runtime] section is runtime,
 * with danube added to [danube] and collect to [collect].
 */
static struct th_proc *sink_rt(struct th_broker *b, const char *dir, const char *name,
			       const char *out, const char *danube, const char *runtime,
			       const char *collect)
{
	char extra[1024];

	snprintf(extra, sizeof(extra),
		 "topic = /default/in\nsubscription = s\nsubscription_type = exclusive\n%s\n"
		 "[runtime]\n%s\n[collect]\nout_file = %s\n%s\n",
		 danube, runtime, out, collect);
	return worker(dir, "tests/workers/collect-sink", conf(dir, name, "collect-sink", b, extra));
}

static struct th_broker *sink_broker(void)
{
	struct th_broker *b = broker();

	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/in", "--reliable", NULL), 0);
	return b;
}

START_TEST(sink_writes_in_order_and_retries_then_ok)
{
	struct th_broker *b = sink_broker();
	const char *dir = th_tmpdir();
	char out[512], *s;

	snprintf(out, sizeof(out), "%s/out.txt", dir);
	struct th_proc *w = sink(b, dir, "col", out, "max_retries = 3", "retry_first = 2");
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube"), 10000));
	produce(b, "/default/in", "m1\nm2\nm3\nm4\nm5\n");
	ck_assert(TH_WAIT(count_lines(out) == 5, 15000));
	s = th_read_file(out);
	ck_assert_str_eq(s, "m1\nm2\nm3\nm4\nm5\n");
	free(s);
	ck_assert(th_proc_output_contains(w, "attempt 2"));
	ck_assert(!th_proc_output_contains(w, "failed after"));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

START_TEST(sink_acks_only_after_ok_unacked_come_back)
{
	struct th_broker *b = sink_broker();
	const char *dir = th_tmpdir();
	char out[512], *s;

	snprintf(out, sizeof(out), "%s/out.txt", dir);
	/* The first worker holds its batch for a minute: killed mid-batch. */
	struct th_proc *w = sink(b, dir, "col", out, "", "delay_ms = 60000");
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube"), 10000));
	produce(b, "/default/in", "k1\nk2\nk3\n");
	ck_assert(TH_WAIT(th_proc_output_contains(w, "collect batch"), 10000));
	th_proc_stop(w, SIGKILL, 5000);
	ck_assert_int_eq((int)count_lines(out), 0);
	w = sink(b, dir, "col", out, "", "");
	ck_assert(TH_WAIT(count_lines(out) == 3, 15000));
	s = th_read_file(out);
	ck_assert_str_eq(s, "k1\nk2\nk3\n");
	free(s);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

START_TEST(sink_on_error_skip_acks_and_goes_on)
{
	struct th_broker *b = sink_broker();
	const char *dir = th_tmpdir();
	char out[512], *s;

	snprintf(out, sizeof(out), "%s/out.txt", dir);
	struct th_proc *w = sink(b, dir, "col", out, "on_error = skip\nmax_retries = 2", "");
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube"), 10000));
	produce(b, "/default/in", "a\npoison\nretry-forever\nb\n");
	ck_assert(TH_WAIT(count_lines(out) == 2, 15000));
	ck_assert(TH_WAIT(th_proc_output_count(w, "failed after") == 2, 10000));
	s = th_read_file(out);
	ck_assert_str_eq(s, "a\nb\n");
	free(s);
	ck_assert(th_proc_output_contains(w, "failed after 3 attempts"));
	ck_assert(th_proc_running(w));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

START_TEST(sink_on_error_dlq_produces_record_with_reasons)
{
	struct th_broker *b = sink_broker();
	const char *dir = th_tmpdir();
	char out[512], *s;
	int status;

	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/dlq", "--reliable", NULL), 0);
	char *cargv[] = {(char *)ctl(),  "consume",
			 "-u",           (char *)th_broker_url(b),
			 "-t",           "/default/dlq",
			 "-s",           "d",
			 "--type",       "exclusive",
			 "-n",           "1",
			 "--attributes", NULL};
	struct th_proc *cons = th_spawn(dir, cargv, NULL);
	ck_assert(TH_WAIT(th_proc_output_contains(cons, "consuming /default/dlq"), 10000));
	snprintf(out, sizeof(out), "%s/out.txt", dir);
	struct th_proc *w =
		sink(b, dir, "col", out, "on_error = dlq\ndlq_topic = /default/dlq", "");
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube"), 10000));
	produce(b, "/default/in", "x\npoison-pill\ny\n");
	ck_assert(TH_WAIT(count_lines(out) == 2, 15000));
	ck_assert(th_proc_wait(cons, 15000, &status));
	ck_assert_int_eq(th_exit_code(status), 0);
	s = th_proc_output(cons);
	ck_assert_msg(strstr(s, "\tpoison-pill\n") != NULL, "%s", s);
	ck_assert_msg(strstr(s, "orig=yes\t") != NULL, "%s", s);
	ck_assert_msg(strstr(s, "dlq.error_type=invalid_data\t") != NULL, "%s", s);
	ck_assert_msg(strstr(s, "dlq.error=payload contains \"poison\"\t") != NULL, "%s", s);
	ck_assert_msg(strstr(s, "dlq.source_topic=/default/in") != NULL, "%s", s);
	ck_assert_msg(strstr(s, "dlq.attempts=1\t") != NULL, "%s", s);
	ck_assert_msg(strstr(s, "dlq.offset=") != NULL, "%s", s);
	free(s);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

START_TEST(sink_on_error_fail_exits_without_ack)
{
	struct th_broker *b = sink_broker();
	const char *dir = th_tmpdir();
	char out[512], *s;
	int status;

	snprintf(out, sizeof(out), "%s/out.txt", dir);
	struct th_proc *w = sink(b, dir, "col", out, "on_error = fail\nmax_retries = 1",
				 "retry_contains = boom");
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube"), 10000));
	produce(b, "/default/in", "boom\n");
	ck_assert(th_proc_wait(w, 15000, &status));
	ck_assert_int_eq(th_exit_code(status), 1);
	ck_assert(th_proc_clean(w));
	/* Not acknowledged: a worker that accepts it gets it again. */
	w = sink(b, dir, "col", out, "", "retry_contains = nothing-matches");
	ck_assert(TH_WAIT(count_lines(out) == 1, 15000));
	s = th_read_file(out);
	ck_assert_str_eq(s, "boom\n");
	free(s);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

START_TEST(check_reports_file_line_and_exits_78)
{
	const char *dir = th_tmpdir();
	char path[512], *out = NULL;

	snprintf(path, sizeof(path), "%s/bad.conf", dir);
	th_write_file(path, "[connector]\ntype = collect-sink\n[runtime]\nbatch_size = zero\n"
			    "on_error = dlq\n[collect]\nout_file = relative\n");
	char *argv[] = {(char *)th_build_path("tests/workers/collect-sink"), "-c", path, "--check",
			NULL};
	int rc = th_run(argv, &out, 10000);
	ck_assert_int_eq(rc, 78);
	ck_assert_msg(strstr(out, "bad.conf:4:") != NULL, "%s", out);
	free(out);

	th_write_file(path, "[connector]\ntype = collect-sink\n[runtime]\non_error = dlq\n"
			    "[collect]\nout_file = relative\n");
	rc = th_run(argv, &out, 10000);
	ck_assert_int_eq(rc, 78);
	ck_assert_msg(strstr(out, "bad.conf:4: on_error = dlq needs") != NULL, "%s", out);
	free(out);

	th_write_file(path, "[connector]\ntype = collect-sink\n[collect]\nout_file = relative\n");
	rc = th_run(argv, &out, 10000);
	ck_assert_int_eq(rc, 78);
	ck_assert_msg(strstr(out, "bad.conf:4: out_file must be an absolute path") != NULL, "%s",
		      out);
	free(out);

	th_write_file(path, "[connector]\ntype = collect-sink\n[collect]\nout_file = /tmp/x\n");
	rc = th_run(argv, &out, 10000);
	ck_assert_msg(rc == 0, "%s", out);
	free(out);
}
END_TEST

/* One OP_HEALTH round trip to a worker's IPC socket; false when it did not answer. */
static bool health(const char *url, dcctl_Response *resp)
{
	dcctl_Request req = dcctl_Request_init_default;
	uint8_t buf[64];
	pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof(buf));
	nng_msg *msg = NULL;
	nng_socket s;
	pb_istream_t is;
	bool ok = false;

	memset(resp, 0, sizeof(*resp));
	req.version = dcctl_Version_VERSION_CURRENT;
	req.op = dcctl_Op_OP_HEALTH;
	if (!pb_encode(&os, dcctl_Request_fields, &req) || nng_req0_open(&s) != 0)
		return false;
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 2000);
	if (nng_dial(s, url, NULL, 0) == 0 && nng_send(s, buf, os.bytes_written, 0) == 0 &&
	    nng_recvmsg(s, &msg, 0) == 0) {
		is = pb_istream_from_buffer(nng_msg_body(msg), nng_msg_len(msg));
		ok = pb_decode(&is, dcctl_Response_fields, resp) && resp->has_health;
		if (!ok)
			pb_release(dcctl_Response_fields, resp);
		nng_msg_free(msg);
	}
	nng_close(s);
	return ok;
}

struct want_health {
	const char *url;
	dcctl_HealthState state;
	const char *reason; /* substring, or NULL */
	uint64_t processed, failed;
};

static bool health_is(void *arg)
{
	struct want_health *w = arg;
	dcctl_Response r;
	bool ok;

	if (!health(w->url, &r))
		return false;
	ok = r.health.state == w->state &&
	     (!w->reason || (r.health.reason && strstr(r.health.reason, w->reason)));
	if (ok && (w->processed || w->failed)) {
		ok = r.health.topics_count == 1 && r.health.topics[0].processed == w->processed &&
		     r.health.topics[0].received == w->processed + w->failed &&
		     r.health.topics[0].failed_count == 1 &&
		     r.health.topics[0].failed[0].count == w->failed &&
		     r.health.topics[0].inflight == 0;
	}
	pb_release(dcctl_Response_fields, &r);
	return ok;
}

START_TEST(health_starting_until_danube_then_ready_with_metrics)
{
	if (th_broker_needs_test_broker("restarts the broker"))
		return;
	struct th_broker *b = sink_broker();
	const char *dir = th_tmpdir();
	char out[512], url[600], env[620];

	snprintf(out, sizeof(out), "%s/out.txt", dir);
	snprintf(url, sizeof(url), "ipc://%s/w.sock", dir);
	snprintf(env, sizeof(env), "DANUBE_CONNECT_IPC=%s", url);
	th_broker_stop(b);
	char extra[1024];
	snprintf(extra, sizeof(extra),
		 "topic = /default/in\nsubscription = s\nsubscription_type = exclusive\n"
		 "[runtime]\nbatch_timeout_ms = 20\non_error = skip\nmax_retries = 5\n"
		 "retry_backoff_ms = 300\nretry_backoff_max_ms = 300\n"
		 "[collect]\nout_file = %s\n",
		 out);
	char *argv[] = {(char *)th_build_path("tests/workers/collect-sink"), "-c",
			(char *)conf(dir, "h", "collect-sink", b, extra), NULL};
	char *envv[] = {env, NULL};
	struct th_proc *w = th_spawn(dir, argv, envv);
	struct want_health want = {url, dcctl_HealthState_HEALTH_STARTING, "connecting to Danube",
				   0, 0};

	ck_assert(th_wait_for(health_is, &want, 10000));
	th_broker_restart(b);
	want.state = dcctl_HealthState_HEALTH_READY;
	want.reason = NULL;
	ck_assert(th_wait_for(health_is, &want, 20000));
	produce(b, "/default/in", "h1\npoison\nh2\n");
	want.processed = 2;
	want.failed = 1;
	ck_assert(th_wait_for(health_is, &want, 15000));
	/* The target reports itself down while its record is retried, then up. */
	produce(b, "/default/in", "target-down\n");
	want = (struct want_health){url, dcctl_HealthState_HEALTH_DEGRADED, "collect: target down",
				    0, 0};
	ck_assert(th_wait_for(health_is, &want, 15000));
	want = (struct want_health){url, dcctl_HealthState_HEALTH_READY, NULL, 3, 1};
	ck_assert(th_wait_for(health_is, &want, 15000));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* What a test waits for in a worker's health answer. */
struct want_state {
	const char *url;
	dcctl_HealthState state;
	const char *reason[2]; /* substrings of the reason; NULL = any */
	int64_t processed;     /* -1 = any; else the one topic's count, nothing in flight */
};

static bool state_is(void *arg)
{
	struct want_state *w = arg;
	dcctl_Response r;
	bool ok;

	if (!health(w->url, &r))
		return false;
	ok = r.health.state == w->state;
	for (int i = 0; ok && i < 2; i++)
		ok = !w->reason[i] || (r.health.reason && strstr(r.health.reason, w->reason[i]));
	if (ok && w->processed >= 0)
		ok = r.health.topics_count == 1 &&
		     r.health.topics[0].processed == (uint64_t)w->processed &&
		     r.health.topics[0].inflight == 0;
	pb_release(dcctl_Response_fields, &r);
	return ok;
}

/* Distinct "PREFIX-I" lines (1 <= I <= n) a consumer printed; duplicates are at-least-once. */
static int distinct(const struct th_proc *p, const char *prefix, int n)
{
	char *log = th_proc_output(p), *line, *save = NULL;
	bool *seen = calloc((size_t)n + 1, 1);
	size_t pl = strlen(prefix);
	int count = 0;

	ck_assert_ptr_nonnull(seen);
	for (line = strtok_r(log, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		long i;
		char *end;

		if (strncmp(line, prefix, pl) != 0 || line[pl] != '-')
			continue;
		i = strtol(line + pl + 1, &end, 10);
		if (*end == '\0' && i >= 1 && i <= n && !seen[i]) {
			seen[i] = true;
			count++;
		}
	}
	free(seen);
	free(log);
	return count;
}

static struct th_proc *consume(const char *dir, struct th_broker *b, const char *topic,
			       const char *sub)
{
	char *argv[] = {(char *)ctl(), "consume",     "-u", (char *)th_broker_url(b),
			"-t",          (char *)topic, "-s", (char *)sub,
			"--type",      "exclusive",   NULL};
	struct th_proc *c = th_spawn(dir, argv, NULL);
	char want[300];

	snprintf(want, sizeof(want), "consuming %s", topic);
	ck_assert(TH_WAIT(th_proc_output_contains(c, want), 10000));
	return c;
}

/*
 * A source keeps its broker connection's state in health: the broker
 * SIGKILLed mid-stream -> degraded with why; back -> ready, and every
 * record, those held while it was down included, arrives.
 */
START_TEST(source_health_degraded_while_danube_down_then_ready_delivers_all)
{
	if (th_broker_needs_test_broker("restarts the broker"))
		return;
	enum { N = 5000 };
	struct th_broker *b = broker();
	const char *dir = th_tmpdir();
	char url[600], env[620], extra[256], last[64];
	struct th_proc *c;

	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/dd", "--reliable", NULL), 0);
	/* The subscription exists before the broker goes away, so it keeps what comes. */
	c = consume(dir, b, "/default/dd", "keep");
	th_proc_stop(c, SIGTERM, 5000);
	snprintf(url, sizeof(url), "ipc://%s/w.sock", dir);
	snprintf(env, sizeof(env), "DANUBE_CONNECT_IPC=%s", url);
	snprintf(extra, sizeof(extra),
		 "topic = /default/dd\ndispatch = reliable\n[runtime]\nqueue_size = 64\n"
		 "[echo]\ncount = %d\n",
		 N);
	char *argv[] = {(char *)th_build_path("tests/workers/echo-source"), "-c",
			(char *)conf(dir, "dd", "echo-source", b, extra), NULL};
	char *envv[] = {env, NULL};
	struct th_proc *w = th_spawn(dir, argv, envv);
	struct want_state ready = {url, dcctl_HealthState_HEALTH_READY, {NULL, NULL}, -1};
	struct want_state down = {
		url, dcctl_HealthState_HEALTH_DEGRADED, {"danube: ", th_broker_addr(b)}, -1};

	ck_assert(th_wait_for(state_is, &ready, 10000));
	ck_assert(TH_WAIT(th_proc_output_contains(w, "echo committed 100\n"), 10000));
	th_broker_kill(b);
	snprintf(last, sizeof(last), "echo committed %d\n", N);
	ck_assert_msg(!th_proc_output_contains(w, last), "all %d committed before the kill", N);
	ck_assert(th_wait_for(state_is, &down, 10000));
	ck_assert(th_proc_output_contains(w, "Danube unreachable: "));
	/* Still down, with the latest reason, while reconnect attempts fail. */
	down.reason[0] = "danube: connect to ";
	down.reason[1] = "Connection refused";
	ck_assert(th_wait_for(state_is, &down, 15000));
	ck_assert(!th_proc_output_contains(w, last));
	th_broker_restart(b);
	ck_assert(th_wait_for(state_is, &ready, 20000));
	ck_assert(th_proc_output_contains(w, "Danube reachable again"));
	ck_assert(TH_WAIT(th_proc_output_contains(w, last), 60000));
	c = consume(dir, b, "/default/dd", "keep");
	ck_assert_msg(TH_WAIT(distinct(c, "rec", N) == N, 60000), "got %d of %d",
		      distinct(c, "rec", N), N);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* Nothing in flight: the idle connection's loss alone tells health. */
START_TEST(idle_source_health_follows_danube_connection)
{
	if (th_broker_needs_test_broker("restarts the broker"))
		return;
	struct th_broker *b = broker();
	const char *dir = th_tmpdir();
	char url[600], env[620];

	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/idle", "--reliable", NULL),
			 0);
	snprintf(url, sizeof(url), "ipc://%s/w.sock", dir);
	snprintf(env, sizeof(env), "DANUBE_CONNECT_IPC=%s", url);
	char *argv[] = {(char *)th_build_path("tests/workers/echo-source"), "-c",
			(char *)conf(dir, "idle", "echo-source", b,
				     "topic = /default/idle\n[echo]\ncount = 5\n"),
			NULL};
	char *envv[] = {env, NULL};
	struct th_proc *w = th_spawn(dir, argv, envv);
	struct want_state want = {url, dcctl_HealthState_HEALTH_READY, {NULL, NULL}, 5};

	ck_assert(th_wait_for(state_is, &want, 10000));
	th_broker_kill(b);
	want = (struct want_state){
		url, dcctl_HealthState_HEALTH_DEGRADED, {"danube: ", th_broker_addr(b)}, -1};
	ck_assert(th_wait_for(state_is, &want, 10000));
	th_broker_restart(b);
	want = (struct want_state){url, dcctl_HealthState_HEALTH_READY, {NULL, NULL}, 5};
	ck_assert(th_wait_for(state_is, &want, 20000));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* The file at path ends with tail. */
static bool file_ends_with(const char *path, const char *tail)
{
	char *s = th_read_file(path);
	size_t n = s ? strlen(s) : 0, tn = strlen(tail);
	bool ok = s && n >= tn && strcmp(s + n - tn, tail) == 0;

	free(s);
	return ok;
}

/*
 * A collect-sink NAME on topic (exclusive subscription s) writing to
 * out = dir/out.txt, its health at url = ipc://dir/w.sock; runtime goes into
 * its [runtime] section. out and url hold 512 and 600 bytes.
 */
static struct th_proc *ipc_sink(struct th_broker *b, const char *dir, const char *name,
				const char *topic, const char *runtime, char *out, char *url)
{
	char env[620], extra[1400];

	snprintf(out, 512, "%s/out.txt", dir);
	snprintf(url, 600, "ipc://%s/w.sock", dir);
	snprintf(env, sizeof(env), "DANUBE_CONNECT_IPC=%s", url);
	snprintf(extra, sizeof(extra),
		 "topic = %s\nsubscription = s\nsubscription_type = exclusive\n"
		 "[runtime]\n%s\n[collect]\nout_file = %s\n",
		 topic, runtime, out);
	char *argv[] = {(char *)th_build_path("tests/workers/collect-sink"), "-c",
			(char *)conf(dir, name, "collect-sink", b, extra), NULL};
	char *envv[] = {env, NULL};

	return th_spawn(dir, argv, envv);
}

/*
 * The same for a sink: its consumer's connection lost -> degraded with why,
 * back -> ready; what comes next arrives, and nothing is lost.
 */
START_TEST(sink_health_degraded_while_danube_down_then_ready_delivers_all)
{
	if (th_broker_needs_test_broker("restarts the broker"))
		return;
	struct th_broker *b = sink_broker();
	const char *dir = th_tmpdir();
	char out[512], url[600], *s;
	struct th_proc *w =
		ipc_sink(b, dir, "sd", "/default/in", "batch_timeout_ms = 20", out, url);
	struct want_state want = {url, dcctl_HealthState_HEALTH_READY, {NULL, NULL}, -1};

	ck_assert(th_wait_for(state_is, &want, 10000));
	produce(b, "/default/in", "d1\nd2\nd3\n");
	want.processed = 3;
	ck_assert(th_wait_for(state_is, &want, 15000));
	th_broker_kill(b);
	want = (struct want_state){
		url, dcctl_HealthState_HEALTH_DEGRADED, {"danube: ", th_broker_addr(b)}, -1};
	ck_assert(th_wait_for(state_is, &want, 10000));
	th_broker_restart(b);
	want = (struct want_state){url, dcctl_HealthState_HEALTH_READY, {NULL, NULL}, -1};
	ck_assert(th_wait_for(state_is, &want, 20000));
	produce(b, "/default/in", "d4\nd5\nd6\n");
	ck_assert(TH_WAIT(file_ends_with(out, "d4\nd5\nd6\n"), 20000));
	/* An ack the kill cut off brings its message again (at least once), before d4. */
	s = th_read_file(out);
	ck_assert_msg(strncmp(s, "d1\nd2\nd3\n", 9) == 0, "%s", s);
	ck_assert_msg(strstr(s, "d4\n") == s + strlen(s) - 9, "%s", s);
	free(s);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/*
 * A collect-sink writing out = dir/out.txt with one batch of the n lines
 * in hand, written delay_ms long; stop_ms: its [runtime] stop_timeout_ms.
 */
static struct th_proc *sink_busy(struct th_broker *b, const char *dir, char *out, int n,
				 const char *lines, const char *stop_ms, const char *delay_ms)
{
	char window[32], runtime[128], collect[64];
	struct th_proc *w;

	snprintf(out, 512, "%s/out.txt", dir);
	/* Only a full window ends a batch: the lines are one batch, whatever the machine's pace. */
	snprintf(window, sizeof(window), "max_unacked = %d", n);
	snprintf(runtime, sizeof(runtime),
		 "batch_timeout_ms = 1h\nbatch_linger_ms = 1h\nstop_timeout_ms = %s", stop_ms);
	snprintf(collect, sizeof(collect), "delay_ms = %s", delay_ms);
	w = sink_rt(b, dir, "col", out, window, runtime, collect);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube"), 10000));
	produce(b, "/default/in", lines);
	ck_assert(TH_WAIT(th_proc_output_contains(w, "collect batch"), 10000));
	return w;
}

/* A batch in the sink's hands at SIGTERM is finished and acknowledged before exit 0. */
START_TEST(sigterm_finishes_batch_in_flight_and_exits_0)
{
	struct th_broker *b = sink_broker();
	const char *dir = th_tmpdir();
	char out[512];
	struct th_proc *w = sink_busy(b, dir, out, 2, "t1\nt2\n", "20000", "1000");

	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 15000)), 0);
	ck_assert(th_proc_clean(w));
	ck_assert_int_eq((int)count_lines(out), 2);
	ck_assert(th_proc_output_contains(w, "drained, exiting"));
	/*
	 * Acknowledged: a new worker on the subscription gets only what comes
	 * next. (The real broker may hand the new session t3 more than once
	 * after the takeover of the exclusive subscription: at least once.)
	 */
	w = sink(b, dir, "col", out, "", "");
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube"), 10000));
	produce(b, "/default/in", "t3\n");
	ck_assert(TH_WAIT(count_lines(out) >= 3, 15000));
	char *s = th_read_file(out);
	ck_assert_msg(strncmp(s, "t1\nt2\nt3\n", 9) == 0, "%s", s);
	for (const char *p = s + 9; *p; p += 3)
		ck_assert_msg(strncmp(p, "t3\n", 3) == 0, "%s", s);
	if (!th_broker_is_real())
		ck_assert_str_eq(s, "t1\nt2\nt3\n");
	free(s);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/*
 * A sink whose target is down is not written to: the runtime holds the
 * batch and writes it once the sink reports the target up again, however
 * short the retry backoff.
 */
START_TEST(sink_not_written_while_target_down_then_gets_the_batch)
{
	struct th_broker *b = sink_broker();
	const char *dir = th_tmpdir();
	char out[512], *log;
	const char *held, *up, *again;

	snprintf(out, sizeof(out), "%s/out.txt", dir);
	struct th_proc *w = sink(b, dir, "col", out, "max_retries = 3", "down_ms = 1500");
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube"), 10000));
	produce(b, "/default/in", "target-down\n");
	ck_assert(TH_WAIT(count_lines(out) == 1, 15000));
	log = th_proc_output(w);
	held = strstr(log, "holding a batch of 1 until the external system is back");
	up = strstr(log, "collect: target up");
	again = strstr(log, "collect batch 1 attempt 1");
	ck_assert_msg(held && up && again && held < up && up < again, "%s", log);
	ck_assert_msg(!strstr(log, "written while down"), "%s", log);
	ck_assert_msg(!strstr(log, "attempt 2"), "%s", log);
	free(log);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/*
 * A drain the stop timeout cuts short exits 75 and says how many records
 * were left (a finished drain exits 0: sigterm_finishes_batch_in_flight...).
 */
START_TEST(sigterm_drain_cut_short_by_stop_timeout_exits_75)
{
	struct th_broker *b = sink_broker();
	char out[512];
	struct th_proc *w = sink_busy(b, th_tmpdir(), out, 1, "t1\n", "200", "1h");

	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 15000)), 75);
	ck_assert(th_proc_output_contains(w, "drain was cut short with 1 records unacknowledged"));
	ck_assert(!th_proc_output_contains(w, "drained, exiting"));
	ck_assert(th_proc_clean(w));
}
END_TEST

/* A sink whose topic does not exist yet waits for it, degraded and saying why, never crashing. */
START_TEST(sink_waits_degraded_for_a_missing_topic_then_delivers)
{
	struct th_broker *b = broker();
	const char *dir = th_tmpdir();
	char out[512], url[600], *s;
	struct th_proc *w = ipc_sink(b, dir, "late", "/default/late", "", out, url);
	struct want_state want = {url,
				  dcctl_HealthState_HEALTH_DEGRADED,
				  {"topic /default/late does not exist yet", NULL},
				  -1};

	ck_assert(th_wait_for(state_is, &want, 10000));
	ck_assert(th_proc_output_contains(w, "does not exist yet; waiting for it"));
	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/late", "--reliable", NULL),
			 0);
	want = (struct want_state){url, dcctl_HealthState_HEALTH_READY, {NULL, NULL}, -1};
	ck_assert(th_wait_for(state_is, &want, 20000));
	produce(b, "/default/late", "l1\nl2\nl3\n");
	ck_assert(TH_WAIT(count_lines(out) == 3, 15000));
	s = th_read_file(out);
	ck_assert_str_eq(s, "l1\nl2\nl3\n");
	free(s);
	ck_assert(th_proc_running(w));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/*
 * Neither timeout nor linger can end these batches (an hour each): only the
 * broker's window of 10 unacknowledged messages does, so 30 messages come
 * as three batches of 10.
 */
START_TEST(sink_writes_a_batch_when_the_broker_window_is_full)
{
	struct th_broker *b = sink_broker();
	const char *dir = th_tmpdir();
	char out[512], lines[512] = "";

	snprintf(out, sizeof(out), "%s/out.txt", dir);
	for (int i = 1; i <= 30; i++)
		snprintf(lines + strlen(lines), sizeof(lines) - strlen(lines), "w%d\n", i);
	struct th_proc *w =
		sink_rt(b, dir, "win", out, "",
			"batch_size = 1000\nbatch_timeout_ms = 1h\nbatch_linger_ms = 1h", "");
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube"), 10000));
	produce(b, "/default/in", lines);
	ck_assert(TH_WAIT(count_lines(out) == 30, 20000));
	ck_assert_int_eq(th_proc_output_count(w, "collect batch 10 attempt 0"), 3);
	ck_assert_int_eq(th_proc_output_count(w, "collect batch"), 3);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

/* With an hour's batch_timeout_ms, a pause in the stream (batch_linger_ms) writes the batch. */
START_TEST(sink_writes_a_batch_when_the_stream_pauses)
{
	struct th_broker *b = sink_broker();
	const char *dir = th_tmpdir();
	char out[512], *s;

	snprintf(out, sizeof(out), "%s/out.txt", dir);
	struct th_proc *w =
		sink_rt(b, dir, "lin", out, "", "batch_size = 1000\nbatch_timeout_ms = 1h", "");
	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube"), 10000));
	produce(b, "/default/in", "p1\np2\np3\n");
	ck_assert(TH_WAIT(count_lines(out) == 3, 20000));
	s = th_read_file(out);
	ck_assert_str_eq(s, "p1\np2\np3\n");
	free(s);
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

struct want_skipped {
	const char *url;
	uint64_t skipped, processed; /* processed: at least */
	const char *last_error;      /* substring */
};

static bool skipped_is(void *arg)
{
	struct want_skipped *w = arg;
	dcctl_Response r;
	bool ok;

	if (!health(w->url, &r))
		return false;
	/* The real broker once delivered a reported offset later after all: >= there. */
	ok = r.health.topics_count == 1 && r.health.topics[0].skipped > 0 &&
	     (th_broker_is_real()
		      ? r.health.topics[0].processed + r.health.topics[0].skipped >= w->processed
		      : r.health.topics[0].processed + r.health.topics[0].skipped ==
				w->processed) &&
	     r.health.last_error && strstr(r.health.last_error, w->last_error);
	if (ok)
		w->skipped = r.health.topics[0].skipped;
	pb_release(dcctl_Response_fields, &r);
	return ok;
}

/*
 * The real broker skips what a subscription more than 256 messages behind
 * has not read, and says nothing (the test broker's --live-feed-capacity
 * does the same with 8). The sink is frozen with its window full while the
 * rest is produced; once it runs again the jump in offsets is an error in
 * the log, a count in the metrics and the last error, and what arrived plus
 * what was skipped is everything.
 */
START_TEST(sink_reports_and_counts_messages_the_broker_skipped)
{
	const char *args[] = {"--live-feed-capacity", "8", NULL};
	bool real = th_broker_is_real();
	int n = real ? 320 : 60; /* the real broker's feed holds 256 */
	struct th_broker *b = th_broker_start(th_tmpdir(), real ? NULL : args);
	const char *dir = th_tmpdir();
	char out[512], url[600], lines[4096] = "";
	struct want_skipped want;

	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/in", "--reliable", NULL), 0);
	struct th_proc *w = ipc_sink(b, dir, "gap", "/default/in", "", out, url);

	ck_assert(TH_WAIT(th_proc_output_contains(w, "connected to Danube"), 10000));
	ck_assert_int_eq(th_proc_kill(w, SIGSTOP), 0);
	for (int i = 1; i <= n; i++)
		snprintf(lines + strlen(lines), sizeof(lines) - strlen(lines), "g%d\n", i);
	produce(b, "/default/in", lines);
	ck_assert_int_eq(th_proc_kill(w, SIGCONT), 0);
	want = (struct want_skipped){url, 0, (uint64_t)n, "the broker skipped"};
	ck_assert(th_wait_for(skipped_is, &want, 20000));
	if (th_broker_is_real())
		ck_assert_uint_ge(count_lines(out) + want.skipped, (uint64_t)n);
	else
		ck_assert_uint_eq(count_lines(out) + want.skipped, (uint64_t)n);
	ck_assert(th_proc_output_contains(w, "the subscription fell too far behind"));
	ck_assert_int_eq(th_exit_code(th_proc_stop(w, SIGTERM, 20000)), 0);
	ck_assert(th_proc_clean(w));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("runtime");
	TCase *tc = tcase_create("runtime");

	tcase_set_timeout(tc, 90);
	tcase_add_test(tc, check_reports_file_line_and_exits_78);
	tcase_add_test(tc, source_records_arrive_in_order_with_attributes);
	tcase_add_test(tc, backpressure_pauses_until_broker_acks_then_delivers_all);
	tcase_add_test(tc, source_submitting_past_queue_size_keeps_all_in_order);
	tcase_add_test(tc, source_undeliverable_record_skip_or_fail);
	tcase_add_test(tc, source_undeliverable_record_goes_to_dlq_with_reasons);
	tcase_add_test(tc, source_spool_replays_unacknowledged_records_after_sigkill);
	tcase_add_test(tc, sink_writes_in_order_and_retries_then_ok);
	tcase_add_test(tc, sink_acks_only_after_ok_unacked_come_back);
	tcase_add_test(tc, sink_on_error_skip_acks_and_goes_on);
	tcase_add_test(tc, sink_on_error_dlq_produces_record_with_reasons);
	tcase_add_test(tc, sink_on_error_fail_exits_without_ack);
	tcase_add_test(tc, health_starting_until_danube_then_ready_with_metrics);
	tcase_add_test(tc, source_health_degraded_while_danube_down_then_ready_delivers_all);
	tcase_add_test(tc, sink_health_degraded_while_danube_down_then_ready_delivers_all);
	tcase_add_test(tc, idle_source_health_follows_danube_connection);
	tcase_add_test(tc, sigterm_finishes_batch_in_flight_and_exits_0);
	tcase_add_test(tc, sigterm_drain_cut_short_by_stop_timeout_exits_75);
	tcase_add_test(tc, sink_not_written_while_target_down_then_gets_the_batch);
	tcase_add_test(tc, sink_waits_degraded_for_a_missing_topic_then_delivers);
	tcase_add_test(tc, sink_writes_a_batch_when_the_broker_window_is_full);
	tcase_add_test(tc, sink_writes_a_batch_when_the_stream_pauses);
	tcase_add_test(tc, sink_reports_and_counts_messages_the_broker_skipped);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
