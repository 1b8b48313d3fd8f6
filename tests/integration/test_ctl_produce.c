/*
 * danube-connectctl produce / consume against the test broker: a stdin round
 * trip with attributes, exit statuses and one-line reasons.
 */
#include "broker.h"
#include "harness.h"

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

START_TEST(stdin_lines_round_trip_with_attributes)
{
	struct th_broker *b = broker();
	char url[128], *out = NULL;
	struct th_proc *cons;
	int status = -1;

	snprintf(url, sizeof(url), "%s", th_broker_url(b));
	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/cli", "--reliable", NULL), 0);
	char *cargv[] = {(char *)ctl(), "consume", "-u",        url,  "-t", "/default/cli", "-s",
			 "cli-sub",     "--type",  "exclusive", "-n", "3",  "--attributes", NULL};
	cons = th_spawn(th_tmpdir(), cargv, NULL);
	ck_assert(TH_WAIT(th_proc_output_contains(cons, "consuming /default/cli"), 10000));

	char *pargv[] = {(char *)ctl(), "produce", "-u",  url,  "-t",  "/default/cli",
			 "--reliable",  "-a",      "a=1", "-a", "b=2", NULL};
	int rc = th_run_input(pargv, "line one\nline two\nline three\n", &out, 20000);
	ck_assert_msg(rc == 0, "produce exited %d: %s", rc, out);
	ck_assert_msg(strstr(out, "produced 3 messages to /default/cli") != NULL, "%s", out);
	free(out);

	ck_assert(th_proc_wait(cons, 15000, &status));
	ck_assert(WIFEXITED(status));
	ck_assert_int_eq(WEXITSTATUS(status), 0);
	char *log = th_proc_output(cons);
	const char *lines[] = {"line one", "line two", "line three"};
	const char *prev = log;

	for (int i = 0; i < 3; i++) {
		char ab[64], ba[64];
		const char *at;

		snprintf(ab, sizeof(ab), "a=1\tb=2\t%s\n", lines[i]);
		snprintf(ba, sizeof(ba), "b=2\ta=1\t%s\n", lines[i]);
		at = strstr(prev, ab);
		if (at == NULL)
			at = strstr(prev, ba);
		ck_assert_msg(at != NULL, "missing '%s' in order in:\n%s", lines[i], log);
		prev = at + 1;
	}
	free(log);
}
END_TEST

START_TEST(single_message_with_key_to_partitions)
{
	struct th_broker *b = broker();
	char url[128], *out = NULL;

	snprintf(url, sizeof(url), "%s", th_broker_url(b));
	char *argv[] = {(char *)ctl(), "produce",       "-u",           url,
			"-t",          "/default/clip", "--partitions", "2",
			"-k",          "device-7",      "-m",           "hello",
			NULL};
	int rc = th_run(argv, &out, 20000);

	ck_assert_msg(rc == 0, "produce exited %d: %s", rc, out);
	ck_assert_msg(strstr(out, "produced 1 messages to /default/clip") != NULL, "%s", out);
	free(out);
}
END_TEST

START_TEST(usage_errors_exit_64)
{
	char *out = NULL;
	char *no_topic[] = {(char *)ctl(), "produce", "-m", "x", NULL};
	char *bad_parts[] = {(char *)ctl(),  "produce", "-t", "/default/t",
			     "--partitions", "many",    NULL};
	char *bad_type[] = {(char *)ctl(), "consume", "-t", "/default/t", "--type", "fanout", NULL};
	char *bad_attr[] = {(char *)ctl(), "produce", "-t", "/default/t", "-a", "novalue", NULL};

	ck_assert_int_eq(th_run(no_topic, &out, 10000), 64);
	ck_assert_msg(strstr(out, "-t TOPIC") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(th_run(bad_parts, NULL, 10000), 64);
	ck_assert_int_eq(th_run(bad_type, NULL, 10000), 64);
	ck_assert_int_eq(th_run(bad_attr, NULL, 10000), 64);
}
END_TEST

START_TEST(refused_producer_exits_1_with_the_reason)
{
	struct th_broker *b = broker();
	char url[128], *out = NULL;

	snprintf(url, sizeof(url), "%s", th_broker_url(b));
	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/rel", "--reliable", NULL), 0);
	char *argv[] = {(char *)ctl(), "produce", "-u", url, "-t", "/default/rel", "-m", "x", NULL};
	int rc = th_run(argv, &out, 20000);

	ck_assert_int_eq(rc, 1);
	ck_assert_msg(strstr(out, "dispatch strategy does not match") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "(FAILED_PRECONDITION)") != NULL, "%s", out);
	free(out);
}
END_TEST

START_TEST(unreachable_broker_exits_69)
{
	char url[64], *out = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", th_free_port());
	char *argv[] = {(char *)ctl(), "produce", "-u", url, "-t", "/default/t", "-m", "x", NULL};
	int rc = th_run(argv, &out, 40000);

	ck_assert_msg(rc == 69, "exit %d: %s", rc, out);
	ck_assert_msg(strstr(out, "UNAVAILABLE") != NULL, "%s", out);
	free(out);
}
END_TEST

START_TEST(service_url_comes_from_the_global_file)
{
	struct th_broker *b = broker();
	char conf[512], *out = NULL;

	snprintf(conf, sizeof(conf), "%s/danube-connect.ini", th_tmpdir());
	ck_assert_int_eq(th_write_file(conf,
				       "[supervisor]\nlog_level = info\n\n[danube]\n"
				       "service_url = %s\n",
				       th_broker_url(b)),
			 0);
	char *argv[] = {(char *)ctl(),   "produce", "-c", conf, "-t",
			"/default/conf", "-m",      "x",  NULL};
	int rc = th_run(argv, &out, 20000);

	ck_assert_msg(rc == 0, "produce exited %d: %s", rc, out);
	free(out);
}
END_TEST

/* Runs produce -m TEXT on topic (reliable); the broker must acknowledge it. */
static void produce_one(struct th_broker *b, const char *topic, const char *text)
{
	char *out = NULL;
	char *argv[] = {(char *)ctl(), "produce",     "-u",         (char *)th_broker_url(b),
			"-t",          (char *)topic, "--reliable", "-m",
			(char *)text,  NULL};
	int rc = th_run(argv, &out, 20000);

	ck_assert_msg(rc == 0, "produce exited %d: %s", rc, out);
	free(out);
}

START_TEST(consume_of_a_missing_topic_says_to_wait)
{
	struct th_broker *b = broker();
	char *out = NULL;
	char *argv[] = {(char *)ctl(), "consume",         "-u", (char *)th_broker_url(b),
			"-t",          "/default/absent", "-n", "1",
			NULL};
	int rc = th_run(argv, &out, 20000);

	ck_assert_msg(rc == 1, "exit %d: %s", rc, out);
	ck_assert_msg(strstr(out, "/default/absent") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "NOT_FOUND") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "--wait waits for the topic") != NULL, "%s", out);
	free(out);
}
END_TEST

START_TEST(consume_wait_waits_for_the_topic_then_prints)
{
	struct th_broker *b = broker();
	struct th_proc *cons;
	int status = -1;
	char *log;
	char *cargv[] = {(char *)ctl(), "consume",      "-u", (char *)th_broker_url(b),
			 "-t",          "/default/tbd", "-s", "w",
			 "--wait",      "-n",           "2",  NULL};

	cons = th_spawn(th_tmpdir(), cargv, NULL);
	ck_assert(TH_WAIT(th_proc_output_contains(
				  cons, "topic /default/tbd does not exist yet; waiting for it"),
			  10000));
	/* Creates the topic; a new subscription starts after this one. */
	produce_one(b, "/default/tbd", "before");
	ck_assert(TH_WAIT(th_proc_output_contains(cons, "consuming /default/tbd"), 20000));
	produce_one(b, "/default/tbd", "after-1");
	produce_one(b, "/default/tbd", "after-2");
	ck_assert(th_proc_wait(cons, 15000, &status));
	ck_assert_int_eq(th_exit_code(status), 0);
	log = th_proc_output(cons);
	ck_assert_msg(strstr(log, "after-1\nafter-2\n") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "before") == NULL, "%s", log);
	free(log);
}
END_TEST

/*
 * The broker ties an exclusive subscription to one consumer name for good.
 * consume's default name is stable per subscription, so a second consume
 * resumes it where the first stopped; another name is refused in words.
 */
START_TEST(consume_resumes_an_exclusive_subscription_by_default)
{
	struct th_broker *b = broker();
	struct th_proc *cons;
	int status = -1;
	char *out = NULL, *log;
	char *argv[] = {(char *)ctl(), "consume",     "-u", (char *)th_broker_url(b),
			"-t",          "/default/ex", "-s", "ex",
			"--type",      "exclusive",   "-n", "1",
			NULL};

	produce_one(b, "/default/ex", "creates-the-topic");
	cons = th_spawn(th_tmpdir(), argv, NULL);
	ck_assert(TH_WAIT(th_proc_output_contains(cons, "consuming /default/ex"), 15000));
	produce_one(b, "/default/ex", "one");
	ck_assert(th_proc_wait(cons, 15000, &status));
	ck_assert_int_eq(th_exit_code(status), 0);
	log = th_proc_output(cons);
	ck_assert_msg(strstr(log, "one\n") != NULL, "%s", log);
	free(log);
	/* Nobody consumes now; the subscription keeps it. */
	produce_one(b, "/default/ex", "two");
	cons = th_spawn(th_tmpdir(), argv, NULL);
	ck_assert(th_proc_wait(cons, 15000, &status));
	log = th_proc_output(cons);
	ck_assert_msg(th_exit_code(status) == 0, "exit %d: %s", th_exit_code(status), log);
	ck_assert_msg(strstr(log, "two\n") != NULL, "%s", log);
	ck_assert_msg(strstr(log, "one\n") == NULL, "%s", log);
	free(log);
	/* Another consumer name: the broker refuses it, and consume says why. */
	char *other[] = {(char *)ctl(), "consume",     "-u",     (char *)th_broker_url(b),
			 "-t",          "/default/ex", "-s",     "ex",
			 "--type",      "exclusive",   "--name", "someone-else",
			 "-n",          "1",           NULL};
	ck_assert_int_eq(th_run(other, &out, 20000), 1);
	ck_assert_msg(strstr(out, "can't be shared") != NULL, "%s", out);
	ck_assert_msg(strstr(out, "PERMISSION_DENIED") != NULL, "%s", out);
	free(out);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ctl_produce");
	TCase *tc = tcase_create("cli");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, stdin_lines_round_trip_with_attributes);
	tcase_add_test(tc, single_message_with_key_to_partitions);
	tcase_add_test(tc, usage_errors_exit_64);
	tcase_add_test(tc, refused_producer_exits_1_with_the_reason);
	tcase_add_test(tc, unreachable_broker_exits_69);
	tcase_add_test(tc, service_url_comes_from_the_global_file);
	tcase_add_test(tc, consume_of_a_missing_topic_says_to_wait);
	tcase_add_test(tc, consume_wait_waits_for_the_topic_then_prints);
	tcase_add_test(tc, consume_resumes_an_exclusive_subscription_by_default);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
