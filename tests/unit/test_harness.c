/* The test harness itself: spawn, wait, output, stop, run, and cleanup of orphans. */
#include "harness.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

START_TEST(harness_spawn_collects_output_and_stops)
{
	const char *dir = th_tmpdir();
	char *argv[] = {"/bin/sh", "-c", "echo hello; echo oops >&2; exec sleep 60", NULL};
	struct th_proc *p = th_spawn(dir, argv, NULL);
	int st;

	ck_assert(TH_WAIT(th_proc_output_contains(p, "oops"), 5000));
	ck_assert(th_proc_output_contains(p, "hello"));
	ck_assert(th_proc_running(p));
	st = th_proc_stop(p, SIGTERM, 2000);
	ck_assert(WIFSIGNALED(st));
	ck_assert_int_eq(WTERMSIG(st), SIGTERM);
	ck_assert(!th_proc_running(p));
}
END_TEST

START_TEST(harness_stop_kills_a_process_ignoring_sigterm)
{
	char *argv[] = {"/bin/sh", "-c", "trap '' TERM; echo ready; while :; do sleep 1; done",
			NULL};
	struct th_proc *p = th_spawn(th_tmpdir(), argv, NULL);
	int st;

	ck_assert(TH_WAIT(th_proc_output_contains(p, "ready"), 5000));
	st = th_proc_stop(p, SIGTERM, 300);
	ck_assert(WIFSIGNALED(st));
	ck_assert_int_eq(WTERMSIG(st), SIGKILL);
}
END_TEST

/*
 * A SIGCONT reaching a process during LeakSanitizer's exit-time check
 * discards the SIGSTOP the check waits for, and the process never exits.
 * The shell lingers after SIGTERM so that a SIGCONT sent after it shows.
 */
START_TEST(harness_stop_sends_no_sigcont_to_a_running_group)
{
	char *argv[] = {"/bin/sh", "-c",
			"trap 'echo got-cont' CONT; trap 'echo got-term; t=1' TERM; echo ready; "
			"while [ -z \"$t\" ]; do sleep 0.05; done; sleep 0.3; exit 0",
			NULL};
	struct th_proc *p = th_spawn(th_tmpdir(), argv, NULL);
	int st;

	ck_assert(TH_WAIT(th_proc_output_contains(p, "ready"), 5000));
	st = th_proc_stop(p, SIGTERM, 5000);
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 0);
	ck_assert(th_proc_output_contains(p, "got-term"));
	ck_assert(!th_proc_output_contains(p, "got-cont"));
}
END_TEST

START_TEST(harness_stop_resumes_a_stopped_process)
{
	char *argv[] = {"/bin/sh", "-c", "echo ready; exec sleep 60", NULL};
	struct th_proc *p;
	int st;

	for (int i = 0; i < 20; i++) {
		p = th_spawn(th_tmpdir(), argv, NULL);
		ck_assert(TH_WAIT(th_proc_output_contains(p, "ready"), 5000));
		/* Stopped or still about to stop: both must be resumed. */
		ck_assert_int_eq(th_proc_kill(p, SIGSTOP), 0);
		st = th_proc_stop(p, SIGTERM, 5000);
		ck_assert(WIFSIGNALED(st));
		ck_assert_int_eq(WTERMSIG(st), SIGTERM);
	}
}
END_TEST

START_TEST(harness_env_and_exit_status)
{
	char *argv[] = {"/bin/sh", "-c", "echo \"v=$DC_HARNESS_X\"; exit 7", NULL};
	char *env[] = {"DC_HARNESS_X=42", NULL};
	struct th_proc *p = th_spawn(th_tmpdir(), argv, env);
	int st = 0;

	ck_assert(th_proc_wait(p, 5000, &st));
	ck_assert(WIFEXITED(st));
	ck_assert_int_eq(WEXITSTATUS(st), 7);
	ck_assert(th_proc_output_contains(p, "v=42"));
	ck_assert_int_eq(th_proc_output_count(p, "v="), 1);
}
END_TEST

START_TEST(harness_run_captures_and_times_out)
{
	char *ok[] = {"/bin/sh", "-c", "cat; echo done; exit 3", NULL};
	char *slow[] = {"/bin/sleep", "30", NULL};
	char *out = NULL;

	ck_assert_int_eq(th_run_input(ok, "line\n", &out, 5000), 3);
	ck_assert_str_eq(out, "line\ndone\n");
	free(out);
	ck_assert_int_eq(th_run(slow, NULL, 200), -1);
}
END_TEST

START_TEST(harness_cleanup_kills_orphans)
{
	const char *dir = th_tmpdir();
	char pidfile[512];
	char *argv[] = {"/bin/sh", "-c", "sleep 60 & echo $! > orphan.pid; exit 0", NULL};
	struct th_proc *p;
	char *s;
	pid_t orphan;

	snprintf(pidfile, sizeof(pidfile), "%s/orphan.pid", dir);
	p = th_spawn(dir, argv, NULL);
	ck_assert(th_proc_wait(p, 5000, NULL));
	ck_assert(th_wait_file_contains(pidfile, "\n", 5000));
	s = th_read_file(pidfile);
	orphan = (pid_t)atoi(s);
	free(s);
	ck_assert_int_gt(orphan, 0);
	ck_assert_int_eq(kill(orphan, 0), 0);
	th_cleanup_all();
	ck_assert_int_ne(kill(orphan, 0), 0);
	ck_assert_int_ne(access(dir, F_OK), 0);
}
END_TEST

START_TEST(harness_free_port_is_bindable_and_wait_port_sees_a_listener)
{
	int port = th_free_port();
	char code[256];
	char *argv[] = {(char *)th_python(), "-c", code, NULL};
	struct th_proc *p;

	ck_assert_int_gt(port, 1023);
	snprintf(code, sizeof(code),
		 "import socket,time\ns=socket.socket()\ns.bind(('127.0.0.1',%d))\ns.listen()\n"
		 "time.sleep(60)\n",
		 port);
	p = th_spawn(th_tmpdir(), argv, NULL);
	ck_assert(th_wait_port(port, 10000));
	th_proc_stop(p, SIGTERM, 2000);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("harness");
	TCase *tc = tcase_create("core");

	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, harness_spawn_collects_output_and_stops);
	tcase_add_test(tc, harness_stop_kills_a_process_ignoring_sigterm);
	tcase_add_test(tc, harness_stop_sends_no_sigcont_to_a_running_group);
	tcase_add_test(tc, harness_stop_resumes_a_stopped_process);
	tcase_add_test(tc, harness_env_and_exit_status);
	tcase_add_test(tc, harness_run_captures_and_times_out);
	tcase_add_test(tc, harness_cleanup_kills_orphans);
	tcase_add_test(tc, harness_free_port_is_bindable_and_wait_port_sees_a_listener);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
