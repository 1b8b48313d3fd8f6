/*
 * danube-connectctl against a fake control socket served by a thread of the
 * test: exit codes, error lines, and the status table and JSON.
 */
#include <nng/nng.h>
#include <nng/protocol/reqrep0/rep.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "control.pb.h"
#include "harness.h"

struct fake {
	nng_socket sock;
	pthread_t thread;
	atomic_bool stop;
	char url[300];
	dcctl_Response reply; /* sent to every request; owned by the test */
	/* The last request seen. */
	atomic_int requests;
	uint32_t version;
	dcctl_Op op;
	char name[64];
};

static void *serve(void *arg)
{
	struct fake *f = arg;

	while (!atomic_load(&f->stop)) {
		nng_msg *msg;
		dcctl_Request req = dcctl_Request_init_default;
		pb_istream_t is;
		size_t size;
		pb_ostream_t os;

		/* Short timeouts, never a receive blocked across nng_close (nng 1.5.2). */
		if (nng_recvmsg(f->sock, &msg, 0) != 0)
			continue;
		is = pb_istream_from_buffer(nng_msg_body(msg), nng_msg_len(msg));
		if (pb_decode(&is, dcctl_Request_fields, &req)) {
			f->version = req.version;
			f->op = req.op;
			snprintf(f->name, sizeof(f->name), "%s", req.name ? req.name : "");
		}
		pb_release(dcctl_Request_fields, &req);
		nng_msg_free(msg);
		if (!pb_get_encoded_size(&size, dcctl_Response_fields, &f->reply) ||
		    nng_msg_alloc(&msg, size) != 0)
			continue;
		os = pb_ostream_from_buffer(nng_msg_body(msg), size);
		if (!pb_encode(&os, dcctl_Response_fields, &f->reply) ||
		    nng_sendmsg(f->sock, msg, 0) != 0)
			nng_msg_free(msg);
		atomic_fetch_add(&f->requests, 1);
	}
	return NULL;
}

static void fake_start(struct fake *f)
{
	memset(f, 0, sizeof(*f));
	f->reply.version = dcctl_Version_VERSION_CURRENT;
	snprintf(f->url, sizeof(f->url), "ipc://%.200s/control.sock", th_tmpdir());
	ck_assert_int_eq(nng_rep0_open(&f->sock), 0);
	ck_assert_int_eq(nng_socket_set_ms(f->sock, NNG_OPT_RECVTIMEO, 50), 0);
	ck_assert_int_eq(nng_listen(f->sock, f->url, NULL, 0), 0);
	ck_assert_int_eq(pthread_create(&f->thread, NULL, serve, f), 0);
}

static void fake_stop(struct fake *f)
{
	atomic_store(&f->stop, true);
	pthread_join(f->thread, NULL);
	nng_close(f->sock);
}

static const char *ctl(void)
{
	return th_build_path("danube-connectctl");
}

/* Run danube-connectctl -s URL ARGS...; output (stdout+stderr) in *out. */
static int run_ctl(const char *url, char **out, const char *a1, const char *a2, const char *a3)
{
	char *argv[] = {(char *)ctl(), "-s", (char *)url, (char *)a1, (char *)a2, (char *)a3, NULL};

	return th_run(argv, out, 10000);
}

START_TEST(daemon_not_running_exits_69_with_one_clear_line)
{
	char url[300];
	char *out = NULL;

	snprintf(url, sizeof(url), "ipc://%.200s/control.sock", th_tmpdir());
	ck_assert_int_eq(run_ctl(url, &out, "status", NULL, NULL), 69);
	ck_assert_msg(strstr(out, "danube-connectctl: cannot reach danube-connectd at ") &&
			      strstr(out, url) && strstr(out, "(is it running?)"),
		      "got: %s", out);
	ck_assert_ptr_eq(strchr(out, '\n'), out + strlen(out) - 1);
	free(out);
	/* Any command: the same line. */
	ck_assert_int_eq(run_ctl(url, &out, "restart", "x", NULL), 69);
	ck_assert_ptr_nonnull(strstr(out, "Connection refused"));
	free(out);
}
END_TEST

START_TEST(usage_errors_exit_64)
{
	static const char *const cases[][3] = {
		{NULL, NULL, NULL},          {"frobnicate", NULL, NULL}, {"start", NULL, NULL},
		{"stop", "a", "b"},          {"reload", "extra", NULL},  {"status", "a", "b"},
		{"status", "--bogus", NULL}, {"--bogus", NULL, NULL},
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL;
		int rc = run_ctl("ipc:///nonexistent/control.sock", &out, cases[i][0], cases[i][1],
				 cases[i][2]);

		ck_assert_msg(rc == 64, "case %zu: exit %d: %s", i, rc, out);
		ck_assert_msg(strstr(out, "danube-connectctl") && strstr(out, "--help"),
			      "case %zu: %s", i, out);
		free(out);
	}
}
END_TEST

START_TEST(help_and_version_exit_0)
{
	char *out = NULL;
	char *help[] = {(char *)ctl(), "-h", NULL};
	char *version[] = {(char *)ctl(), "--version", NULL};

	ck_assert_int_eq(th_run(help, &out, 10000), 0);
	ck_assert_ptr_nonnull(strstr(out, "Usage: danube-connectctl"));
	ck_assert_ptr_nonnull(strstr(out, "status [--json] [NAME]"));
	ck_assert_ptr_nonnull(strstr(out, "produce"));
	free(out);
	ck_assert_int_eq(th_run(version, &out, 10000), 0);
	ck_assert_ptr_nonnull(strstr(out, "danube-connectctl 0."));
	free(out);
}
END_TEST

START_TEST(version_mismatch_is_one_clear_line)
{
	struct fake f;
	char *out = NULL;

	fake_start(&f);
	f.reply.version = 7;
	f.reply.code = dcctl_Code_CODE_VERSION_MISMATCH;
	f.reply.error = "danube-connectd speaks control protocol version 7, this client speaks 1";
	ck_assert_int_eq(run_ctl(f.url, &out, "status", NULL, NULL), 1);
	ck_assert_str_eq(out, "danube-connectctl: version mismatch: danube-connectd speaks control "
			      "protocol version 7, this client speaks 1\n");
	free(out);
	/* Without the daemon's words, the client says it itself. */
	f.reply.error = NULL;
	ck_assert_int_eq(run_ctl(f.url, &out, "reload", NULL, NULL), 1);
	ck_assert_ptr_nonnull(strstr(out, "protocol version 7, this client speaks 1\n"));
	free(out);
	ck_assert_uint_eq(f.version, dcctl_Version_VERSION_CURRENT);
	fake_stop(&f);
}
END_TEST

START_TEST(commands_send_their_op_and_name)
{
	static const struct {
		const char *cmd;
		const char *name;
		dcctl_Op op;
	} cases[] = {
		{"start", "alpha", dcctl_Op_OP_START},     {"stop", "beta", dcctl_Op_OP_STOP},
		{"restart", "gamma", dcctl_Op_OP_RESTART}, {"reload", NULL, dcctl_Op_OP_RELOAD},
		{"status", "delta", dcctl_Op_OP_STATUS},
	};
	struct fake f;

	fake_start(&f);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *out = NULL;

		ck_assert_int_eq(run_ctl(f.url, &out, cases[i].cmd, cases[i].name, NULL), 0);
		ck_assert_int_eq(f.op, cases[i].op);
		ck_assert_str_eq(f.name, cases[i].name ? cases[i].name : "");
		ck_assert_uint_eq(f.version, dcctl_Version_VERSION_CURRENT);
		free(out);
	}
	ck_assert_int_eq(atomic_load(&f.requests), 5);
	fake_stop(&f);
}
END_TEST

START_TEST(unknown_connector_exits_1_with_daemon_words)
{
	struct fake f;
	char *out = NULL;

	fake_start(&f);
	f.reply.code = dcctl_Code_CODE_UNKNOWN_CONNECTOR;
	f.reply.error = "no connector named nope";
	ck_assert_int_eq(run_ctl(f.url, &out, "stop", "nope", NULL), 1);
	ck_assert_str_eq(out, "danube-connectctl: no connector named nope\n");
	free(out);
	fake_stop(&f);
}
END_TEST

START_TEST(metrics_prints_the_text_and_socket_comes_from_env)
{
	struct fake f;
	char *out = NULL;
	char env[400];
	char *argv[] = {(char *)ctl(), "metrics", NULL};

	fake_start(&f);
	f.reply.text = "# TYPE danube_connector_up gauge\ndanube_connector_up{connector=\"a\"} 1\n";
	snprintf(env, sizeof(env), "%s", f.url);
	setenv("DANUBE_CONNECT_SOCKET", env, 1);
	ck_assert_int_eq(th_run(argv, &out, 10000), 0);
	unsetenv("DANUBE_CONNECT_SOCKET");
	ck_assert_str_eq(out, f.reply.text);
	ck_assert_int_eq(f.op, dcctl_Op_OP_METRICS);
	free(out);
	fake_stop(&f);
}
END_TEST

static dcctl_WorkerStatus workers[2];

static void two_workers(struct fake *f, const char *last_error)
{
	memset(workers, 0, sizeof(workers));
	workers[0] = (dcctl_WorkerStatus){.name = "sensors",
					  .type = "source-mqtt",
					  .state = "running",
					  .pid = 4242,
					  .uptime_s = 3 * 3600 + 12 * 60 + 5,
					  .restarts = 2,
					  .received = 123456,
					  .processed = 123400,
					  .failed = 56,
					  .last_error = (char *)last_error,
					  .health = "ready"};
	workers[1] = (dcctl_WorkerStatus){.name = "archive-long-name",
					  .type = "sink-postgres",
					  .state = "failed",
					  .restarts = 6,
					  .last_error = "exited with status 78"};
	f->reply.workers = workers;
	f->reply.workers_count = 2;
}

static int starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix));
}

START_TEST(status_prints_an_aligned_table)
{
	struct fake f;
	char *out = NULL;
	char *l1, *l2, *l3;

	fake_start(&f);
	two_workers(&f, "broker: connection\nrefused");
	ck_assert_int_eq(run_ctl(f.url, &out, "status", NULL, NULL), 0);
	l1 = out;
	l2 = strchr(l1, '\n') + 1;
	l3 = strchr(l2, '\n') + 1;
	ck_assert_ptr_eq(strchr(l3, '\n'), out + strlen(out) - 1);
	ck_assert_msg(starts(l1, "NAME               TYPE           STATE    PID   UPTIME  "
				 "RESTARTS  IN      OUT     ERRORS  LAST-ERROR\n") == 0,
		      "header: %s", out);
	ck_assert_msg(starts(l2,
			     "sensors            source-mqtt    running  4242  3h12m   2         "
			     "123456  123400  56      broker: connection refused\n") == 0,
		      "row 1: %s", out);
	ck_assert_msg(starts(l3,
			     "archive-long-name  sink-postgres  failed   -     -       6         "
			     "0       0       0       exited with status 78\n") == 0,
		      "row 2: %s", out);
	free(out);
	fake_stop(&f);
}
END_TEST

START_TEST(status_json_is_valid_and_escaped)
{
	struct fake f;
	char *out = NULL, *check = NULL;
	/* Quote, backslash, newline, a control byte, valid UTF-8 and a stray byte. */
	static const char nasty[] = "say \"hi\"\\ \n\x01 \xc3\xa9 \xff end";
	char *py[] = {(char *)th_python(), "-c",
		      "import json,sys\n"
		      "d=json.load(sys.stdin)\n"
		      "assert len(d)==2, d\n"
		      "assert d[0]['last_error']=='say \"hi\"\\\\ \\n\\x01 \\u00e9 \\ufffd end', "
		      "d[0]['last_error']\n"
		      "assert d[0]['pid']==4242 and d[0]['uptime_s']==11525, d[0]\n"
		      "assert d[0]['received']==123456 and d[0]['failed']==56, d[0]\n"
		      "assert d[1]['state']=='failed' and d[1]['pid']==0, d[1]\n"
		      "print('ok')\n",
		      NULL};

	fake_start(&f);
	two_workers(&f, nasty);
	ck_assert_int_eq(run_ctl(f.url, &out, "status", "--json", NULL), 0);
	ck_assert_msg(th_run_input(py, out, &check, 10000) == 0, "%s\n%s", out, check);
	ck_assert_str_eq(check, "ok\n");
	free(check);
	free(out);
	/* No workers: still an array. */
	f.reply.workers_count = 0;
	ck_assert_int_eq(run_ctl(f.url, &out, "status", "--json", NULL), 0);
	ck_assert_str_eq(out, "[]\n");
	free(out);
	fake_stop(&f);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ctl");
	TCase *tc = tcase_create("ctl");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, daemon_not_running_exits_69_with_one_clear_line);
	tcase_add_test(tc, usage_errors_exit_64);
	tcase_add_test(tc, help_and_version_exit_0);
	tcase_add_test(tc, version_mismatch_is_one_clear_line);
	tcase_add_test(tc, commands_send_their_op_and_name);
	tcase_add_test(tc, unknown_connector_exits_1_with_daemon_words);
	tcase_add_test(tc, metrics_prints_the_text_and_socket_comes_from_env);
	tcase_add_test(tc, status_prints_an_aligned_table);
	tcase_add_test(tc, status_json_is_valid_and_escaped);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
