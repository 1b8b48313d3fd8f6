/* The test broker and its C helper: start on free ports, admin commands, restart on the
 * same ports with its data, and the broker's own Python self-test (test_broker.py). */
#include "broker.h"
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

START_TEST(broker_starts_on_free_ports_and_prints_them)
{
	struct th_broker *b = th_broker_start(NULL, NULL);
	char want[64];

	ck_assert_int_gt(th_broker_port(b), 0);
	snprintf(want, sizeof(want), "http://127.0.0.1:%d", th_broker_port(b));
	ck_assert_str_eq(th_broker_url(b), want);
	ck_assert(th_wait_port(th_broker_port(b), 5000));
	ck_assert_str_ne(th_broker_admin_addr(b), th_broker_addr(b));
	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/t", "--reliable", NULL), 0);
	ck_assert_int_eq(th_broker_admin(b, "create-partitioned", "/default/p", "3", NULL), 0);
	/* Refusals come back as exit 1: existing topic, missing namespace, unknown topic. */
	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/t", NULL), 1);
	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/missing/t", NULL), 1);
	ck_assert_int_eq(th_broker_admin(b, "unload", "/default/nope", NULL), 1);
	ck_assert_int_eq(th_broker_admin(b, "unload", "/default/p-part-1", NULL), 0);
	ck_assert_int_eq(th_broker_stop(b), 0); /* SIGTERM: a clean exit */
	th_broker_free(b);
}
END_TEST

START_TEST(broker_restart_keeps_ports_and_topics)
{
	struct th_broker *b = th_broker_start(th_tmpdir(), NULL);
	int port = th_broker_port(b);
	char *log;
	int st;

	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/kept", "--reliable", NULL),
			 0);
	st = th_broker_kill(b);
	ck_assert(WIFSIGNALED(st) && WTERMSIG(st) == SIGKILL);
	ck_assert(!th_broker_running(b));
	th_broker_restart(b);
	ck_assert(th_broker_running(b));
	ck_assert_int_eq(th_broker_port(b), port);
	/* The topic came back from --data-dir: creating it again is refused. */
	ck_assert_int_eq(th_broker_admin(b, "create-topic", "/default/kept", NULL), 1);
	ck_assert_int_eq(th_broker_admin(b, "describe", "/default/kept", NULL), 0);
	log = th_broker_log(b);
	ck_assert_ptr_nonnull(strstr(log, "loaded topic /default/kept"));
	free(log);
	th_broker_restart(b); /* from a running broker too */
	ck_assert_int_eq(th_broker_port(b), port);
	th_broker_free(b);
}
END_TEST

START_TEST(broker_self_test_passes)
{
	char path[1024];
	char *argv[] = {(char *)th_python(), path, NULL};
	char *out = NULL;
	int rc;

	snprintf(path, sizeof(path), "%s/tests/danube-broker/test_broker.py", th_src_dir());
	rc = th_run(argv, &out, 110000);
	ck_assert_msg(rc == 0, "test_broker.py exit %d:\n%s", rc, out);
	ck_assert_ptr_nonnull(strstr(out, "\nOK"));
	free(out);
}
END_TEST

static Suite *broker_suite(void)
{
	Suite *s = suite_create("broker");
	TCase *tc = tcase_create("danube-broker");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, broker_starts_on_free_ports_and_prints_them);
	tcase_add_test(tc, broker_restart_keeps_ports_and_topics);
	tcase_add_test(tc, broker_self_test_passes);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(broker_suite)
