/*
 * danube-connectd end to end: the real daemon supervising the test worker
 * (tests/workers/testworker) in a temp dir, observed through its control
 * socket, its log on stderr (-f) and its HTTP endpoint.
 */
#include "harness.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <nng/nng.h>
#include <nng/protocol/reqrep0/req.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "control.pb.h"

struct sv_opts {
	int backoff_initial_ms, backoff_max_ms;
	int intensity, period_s;
	int health_interval_ms, health_timeout_ms, stop_timeout_ms;
};

struct env {
	const char *dir;
	char run[512], conn[512], global[512], workers[512];
	int port;
	struct th_proc *d;
};

static void env_init(struct env *e, const struct sv_opts *o)
{
	struct sv_opts d = {50, 400, 100, 60, 100, 1000, 1000};
	char path[600];

	if (o != NULL)
		d = *o;
	e->dir = th_tmpdir();
	snprintf(e->run, sizeof(e->run), "%s/run", e->dir);
	snprintf(e->conn, sizeof(e->conn), "%s/conn.d", e->dir);
	snprintf(e->global, sizeof(e->global), "%s/danube-connect.ini", e->dir);
	snprintf(e->workers, sizeof(e->workers), "%s/workers", e->dir);
	ck_assert_int_eq(mkdir(e->conn, 0755), 0);
	/* A worker dir of our own, so a test can add a script as a worker program. */
	ck_assert_int_eq(mkdir(e->workers, 0755), 0);
	snprintf(path, sizeof(path), "%s/testworker", e->workers);
	ck_assert_int_eq(symlink(th_build_path("tests/workers/testworker"), path), 0);
	e->port = th_free_port();
	ck_assert_int_eq(th_write_file(e->global,
				       "[supervisor]\n"
				       "connectors_dir = %s\n"
				       "run_dir = %s\n"
				       "worker_dir = %s\n"
				       "metrics_listen = 127.0.0.1:%d\n"
				       "log_level = debug\n"
				       "restart_backoff_initial_ms = %d\n"
				       "restart_backoff_max_ms = %d\n"
				       "restart_intensity = %d\n"
				       "restart_period_s = %d\n"
				       "health_interval_ms = %d\n"
				       "health_timeout_ms = %d\n"
				       "stop_timeout_ms = %d\n"
				       "\n[danube]\nservice_url = http://127.0.0.1:6650\n"
				       /* the workers' drain limit: the kill comes 1 s after it */
				       "\n[runtime]\nstop_timeout_ms = 100\n",
				       e->conn, e->run, e->workers, e->port, d.backoff_initial_ms,
				       d.backoff_max_ms, d.intensity, d.period_s,
				       d.health_interval_ms, d.health_timeout_ms,
				       d.stop_timeout_ms),
			 0);
}

/* A connector of the test worker with [runtime] and [test] sections' lines. */
static void add_conn_rt(struct env *e, const char *name, const char *runtime, const char *test)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/%s.ini", e->conn, name);
	ck_assert_int_eq(th_write_file(path,
				       "[connector]\ntype = testworker\n\n"
				       "[danube]\ntopic = /default/%s\n\n%s%s%s[test]\n%s",
				       name, runtime[0] ? "[runtime]\n" : "", runtime,
				       runtime[0] ? "\n" : "", test),
			 0);
}

/* A connector of the test worker; test holds its [test] section's lines. */
static void add_conn(struct env *e, const char *name, const char *test)
{
	add_conn_rt(e, name, "", test);
}

static void rm_conn(struct env *e, const char *name)
{
	char path[600];

	snprintf(path, sizeof(path), "%s/%s.ini", e->conn, name);
	ck_assert_int_eq(unlink(path), 0);
}

static void start_daemon_env(struct env *e, char *const env[])
{
	char *argv[] = {(char *)th_build_path("danube-connectd"), "-f", "-c", e->global, NULL};

	e->d = th_spawn(e->dir, argv, env);
}

static void start_daemon(struct env *e)
{
	start_daemon_env(e, NULL);
}

/* ---------------------------------------------------------------- control client */

static int ctl_v(struct env *e, uint32_t version, dcctl_Op op, const char *name,
		 dcctl_Response *resp)
{
	dcctl_Request req = {.version = version, .op = op, .name = (char *)name};
	uint8_t buf[512];
	pb_ostream_t os = pb_ostream_from_buffer(buf, sizeof(buf));
	char url[600];
	nng_socket s;
	char *in = NULL;
	size_t inlen = 0;
	pb_istream_t is;
	int rv;

	memset(resp, 0, sizeof(*resp));
	ck_assert(pb_encode(&os, dcctl_Request_fields, &req));
	snprintf(url, sizeof(url), "ipc://%s/control.sock", e->run);
	ck_assert_int_eq(nng_req0_open(&s), 0);
	nng_socket_set_ms(s, NNG_OPT_RECVTIMEO, 5000);
	nng_socket_set_ms(s, NNG_OPT_SENDTIMEO, 5000);
	rv = nng_dial(s, url, NULL, 0);
	if (rv == 0)
		rv = nng_send(s, buf, os.bytes_written, 0);
	if (rv == 0)
		rv = nng_recv(s, &in, &inlen, NNG_FLAG_ALLOC);
	nng_close(s);
	if (rv != 0)
		return -1;
	is = pb_istream_from_buffer((const uint8_t *)in, inlen);
	ck_assert(pb_decode(&is, dcctl_Response_fields, resp));
	nng_free(in, inlen);
	return 0;
}

static int ctl(struct env *e, dcctl_Op op, const char *name, dcctl_Response *resp)
{
	return ctl_v(e, dcctl_Version_VERSION_CURRENT, op, name, resp);
}

static void ctl_ok(struct env *e, dcctl_Op op, const char *name)
{
	dcctl_Response r;

	ck_assert_int_eq(ctl(e, op, name, &r), 0);
	ck_assert_msg(r.code == dcctl_Code_CODE_OK, "op %d %s: %s", op, name,
		      r.error ? r.error : "");
	pb_release(dcctl_Response_fields, &r);
}

/* The worker's state as status reports it ("" when unknown), and its pid. */
static const char *state_of(struct env *e, const char *name, long *pid)
{
	static char state[32];
	dcctl_Response r;

	state[0] = '\0';
	if (pid != NULL)
		*pid = 0;
	if (ctl(e, dcctl_Op_OP_STATUS, name, &r) < 0)
		return state;
	if (r.code == dcctl_Code_CODE_OK && r.workers_count == 1) {
		snprintf(state, sizeof(state), "%s", r.workers[0].state);
		if (pid != NULL)
			*pid = (long)r.workers[0].pid;
	}
	pb_release(dcctl_Response_fields, &r);
	return state;
}

static bool is_state(struct env *e, const char *name, const char *want)
{
	return strcmp(state_of(e, name, NULL), want) == 0;
}

static long pid_of(struct env *e, const char *name)
{
	long pid;

	state_of(e, name, &pid);
	return pid;
}

/* Starts of a worker, counted in the daemon's log. */
static int starts(struct env *e, const char *name)
{
	char needle[128];

	snprintf(needle, sizeof(needle), ": %s: started ", name);
	return th_proc_output_count(e->d, needle);
}

static void stop_daemon(struct env *e)
{
	int st = th_proc_stop(e->d, SIGTERM, 10000);

	ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "daemon status %d", st);
}

/* Open fds of a process. */
static int fd_count(pid_t pid)
{
	char path[64];
	DIR *d;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
	d = opendir(path);
	ck_assert_ptr_nonnull(d);
	while (readdir(d) != NULL)
		n++;
	closedir(d);
	return n;
}

/* ---------------------------------------------------------------- http client */

/* GET path on the daemon; returns the status code, body in *body (malloc'd). */
static int http_get(struct env *e, const char *path, char **body)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->port)};
	char req[256], *buf = NULL, *sep;
	size_t len = 0, cap = 0;
	int fd, code = -1;

	*body = NULL;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ge(fd, 0);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
	ck_assert_int_eq(write(fd, req, strlen(req)), (ssize_t)strlen(req));
	for (;;) {
		ssize_t n;

		if (cap - len < 4096) {
			cap = cap ? cap * 2 : 8192;
			buf = realloc(buf, cap + 1);
			ck_assert_ptr_nonnull(buf);
		}
		n = read(fd, buf + len, cap - len);
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	close(fd);
	if (buf == NULL)
		return -1;
	buf[len] = '\0';
	if (sscanf(buf, "HTTP/1.%*c %d", &code) != 1)
		code = -1;
	sep = strstr(buf, "\r\n\r\n");
	*body = strdup(sep != NULL ? sep + 4 : "");
	free(buf);
	return code;
}

static bool http_ready(struct env *e)
{
	char *b;
	int code = http_get(e, "/readyz", &b);

	free(b);
	return code == 200;
}

/* The value of the metrics line that starts with series (name plus labels), or -1. */
static double metric(const char *text, const char *series)
{
	size_t n = strlen(series);

	for (const char *p = text; p != NULL && *p; p = strchr(p, '\n'), p = p ? p + 1 : p) {
		if (strncmp(p, series, n) == 0 && p[n] == ' ')
			return strtod(p + n + 1, NULL);
	}
	return -1;
}

static double scrape(struct env *e, const char *series)
{
	char *b;
	double v = -1;

	if (http_get(e, "/metrics", &b) == 200)
		v = metric(b, series);
	free(b);
	return v;
}

/* ---------------------------------------------------------------- log parsing */

/* Millisecond of the day of a log line "YYYY-MM-DDTHH:MM:SS.mmm ...". */
static long line_ms(const char *line)
{
	int h, m, s, ms;

	if (sscanf(line, "%*4d-%*2d-%*2dT%2d:%2d:%2d.%3d", &h, &m, &s, &ms) != 4)
		return -1;
	return ((h * 60L + m) * 60L + s) * 1000L + ms;
}

/* Times of the daemon's log lines containing needle, in order. */
static size_t line_times(const char *log, const char *needle, long *out, size_t max)
{
	size_t n = 0;

	for (const char *p = log; *p && n < max;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) : strlen(p);
		char *line = strndup(p, len);

		if (strstr(line, needle) != NULL && line_ms(line) >= 0)
			out[n++] = line_ms(line);
		free(line);
		p += len + (eol ? 1 : 0);
	}
	return n;
}

/* The delays announced by "NAME: restarting in N ms". */
static size_t backoff_delays(const char *log, const char *name, long *out, size_t max)
{
	char needle[128];
	size_t n = 0, nl = strlen(name);

	snprintf(needle, sizeof(needle), "%s: restarting in ", name);
	for (const char *p = strstr(log, needle); p != NULL && n < max; p = strstr(p + 1, needle)) {
		out[n++] = strtol(p + nl + strlen(": restarting in "), NULL, 10);
	}
	return n;
}

/* ---------------------------------------------------------------- tests */

START_TEST(restarts_crashed_worker_with_backoff)
{
	struct env e;
	long t[16], d[16];
	size_t nt, nd;
	char *log;

	env_init(&e, NULL);
	add_conn(&e, "crashy", "crash_after_ms = 20\ncrash_exit = 3\n");
	add_conn(&e, "steady", "");
	start_daemon(&e);
	ck_assert(TH_WAIT(starts(&e, "crashy") >= 7, 10000));
	ck_assert(TH_WAIT(is_state(&e, "steady", "running"), 5000));
	log = th_proc_output(e.d);
	nt = line_times(log, ": crashy: started ", t, 16);
	nd = backoff_delays(log, "crashy", d, 16);
	ck_assert_uint_ge(nt, 7);
	ck_assert_uint_ge(nd, nt - 1);
	for (size_t i = 0; i + 1 < nt; i++) {
		/* full jitter under a doubling ceiling: [50, min(400, 50 * 2^i)] */
		long ceiling = 50L << (i < 4 ? i : 4);

		if (ceiling > 400)
			ceiling = 400;
		ck_assert_int_ge(d[i], 50);
		ck_assert_int_le(d[i], ceiling);
		/* The gap between starts is the worker's 20 ms of life plus the delay. */
		ck_assert_int_ge(t[i + 1] - t[i], 20 + d[i] - 2);
		ck_assert_int_le(t[i + 1] - t[i], 20 + d[i] + 400);
	}
	free(log);
	ck_assert_str_eq(state_of(&e, "steady", NULL), "running");
	ck_assert_double_ge(scrape(&e, "danube_connector_restarts_total{connector=\"crashy\"}"), 6);
	stop_daemon(&e);
}
END_TEST

START_TEST(backoff_resets_after_a_stable_run)
{
	struct sv_opts o = {50, 400, 100, 1, 100, 1000, 1000};
	struct env e;
	long d[8];
	size_t nd;
	char *log;

	env_init(&e, &o);
	/* ready at once, then crashes after more than restart_period_s of good service */
	add_conn(&e, "stable", "crash_after_ms = 1400\ncrash_exit = 2\n");
	start_daemon(&e);
	ck_assert(TH_WAIT(starts(&e, "stable") >= 4, 15000));
	log = th_proc_output(e.d);
	nd = backoff_delays(log, "stable", d, 8);
	ck_assert_uint_ge(nd, 3);
	/* a fresh backoff's first ceiling is restart_backoff_initial_ms itself */
	for (size_t i = 0; i < nd; i++)
		ck_assert_int_eq(d[i], 50);
	free(log);
	stop_daemon(&e);
}
END_TEST

START_TEST(crash_loop_ends_in_failed_until_start)
{
	struct sv_opts o = {20, 40, 3, 60, 100, 1000, 1000};
	struct env e;

	env_init(&e, &o);
	add_conn(&e, "loop", "crash_after_ms = 0\ncrash_exit = 1\n");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "loop", "failed"), 5000));
	/* one start and restart_intensity restarts */
	ck_assert_int_eq(starts(&e, "loop"), 4);
	ck_assert(th_proc_output_contains(e.d, "too many restarts"));
	ck_assert(!TH_WAIT(starts(&e, "loop") > 4, 500));
	ctl_ok(&e, dcctl_Op_OP_START, "loop");
	ck_assert(TH_WAIT(starts(&e, "loop") >= 5, 3000));
	ck_assert(TH_WAIT(is_state(&e, "loop", "failed"), 5000));
	ck_assert_int_eq(starts(&e, "loop"), 8);
	stop_daemon(&e);
}
END_TEST

START_TEST(exit_78_is_not_restarted)
{
	struct env e;

	env_init(&e, NULL);
	add_conn(&e, "badconf", "exit_code = 78\n");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "badconf", "failed"), 5000));
	ck_assert(!TH_WAIT(starts(&e, "badconf") > 1, 600));
	ck_assert_int_eq(starts(&e, "badconf"), 1);
	ck_assert(th_proc_output_contains(e.d, "configuration error (exit 78)"));
	stop_daemon(&e);
}
END_TEST

START_TEST(hung_worker_is_killed_and_restarted)
{
	struct sv_opts o = {50, 400, 100, 60, 100, 500, 1000};
	struct env e;
	long pid;

	env_init(&e, &o);
	add_conn(&e, "hang", "hang_after_ms = 300\n");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "hang", "running"), 5000));
	pid = pid_of(&e, "hang");
	ck_assert(TH_WAIT(th_proc_output_contains(e.d, "hang: no health answer for"), 5000));
	ck_assert(TH_WAIT(starts(&e, "hang") >= 2, 5000));
	ck_assert(TH_WAIT(kill((pid_t)pid, 0) < 0 && errno == ESRCH, 3000));
	ck_assert(th_proc_output_contains(e.d, "killed by signal 9"));
	stop_daemon(&e);
}
END_TEST

START_TEST(worker_never_ready_stays_starting)
{
	struct env e;
	long pid;

	env_init(&e, NULL);
	add_conn(&e, "slow", "never_ready = true\n");
	add_conn(&e, "ok", "");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "ok", "running"), 5000));
	ck_assert_str_eq(state_of(&e, "slow", &pid), "starting");
	ck_assert_int_gt(pid, 0);
	/* It answers health, so it is not hung: well past health_timeout it is the same process. */
	ck_assert(!TH_WAIT(!is_state(&e, "slow", "starting"), 1500));
	ck_assert_int_eq(pid_of(&e, "slow"), pid);
	ck_assert_int_eq(starts(&e, "slow"), 1);
	stop_daemon(&e);
}
END_TEST

START_TEST(sigterm_stops_all_and_kills_the_stubborn_one)
{
	struct sv_opts o = {50, 400, 100, 60, 100, 1000, 700};
	struct env e;
	long p1, p2;
	int st;

	env_init(&e, &o);
	add_conn(&e, "polite", "");
	add_conn(&e, "stubborn", "ignore_sigterm = true\n");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "polite", "running"), 5000));
	ck_assert(TH_WAIT(is_state(&e, "stubborn", "running"), 5000));
	p1 = pid_of(&e, "polite");
	p2 = pid_of(&e, "stubborn");
	ck_assert_int_eq(th_proc_kill(e.d, SIGTERM), 0);
	ck_assert(th_proc_wait(e.d, 5000, &st));
	ck_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	ck_assert(kill((pid_t)p1, 0) < 0 && errno == ESRCH);
	ck_assert(kill((pid_t)p2, 0) < 0 && errno == ESRCH);
	ck_assert(th_proc_output_contains(e.d, "polite: pid"));
	ck_assert(th_proc_output_contains(e.d, "exited with status 0"));
	ck_assert(th_proc_output_contains(e.d, "stubborn: pid"));
	ck_assert(th_proc_output_contains(e.d, "killed by signal 9"));
}
END_TEST

START_TEST(sighup_applies_only_the_difference)
{
	struct env e;
	long pa, pb, pc;

	env_init(&e, NULL);
	add_conn(&e, "a", "");
	add_conn(&e, "b", "");
	add_conn(&e, "c", "");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "a", "running") && is_state(&e, "b", "running") &&
				  is_state(&e, "c", "running"),
			  5000));
	pa = pid_of(&e, "a");
	pb = pid_of(&e, "b");
	pc = pid_of(&e, "c");
	rm_conn(&e, "a");
	add_conn(&e, "b", "stdout_lines = 1\n");
	add_conn(&e, "d", "");
	ck_assert_int_eq(th_proc_kill(e.d, SIGHUP), 0);
	ck_assert(TH_WAIT(is_state(&e, "d", "running"), 5000));
	ck_assert(TH_WAIT(state_of(&e, "a", NULL)[0] == '\0', 5000));
	ck_assert(TH_WAIT(kill((pid_t)pa, 0) < 0 && errno == ESRCH, 3000));
	ck_assert(TH_WAIT(is_state(&e, "b", "running") && pid_of(&e, "b") != pb, 5000));
	ck_assert_int_eq(pid_of(&e, "c"), pc);
	ck_assert_int_eq(starts(&e, "c"), 1);

	/* A connector file with problems leaves its worker as it is. */
	{
		char path[600];

		snprintf(path, sizeof(path), "%s/c.ini", e.conn);
		ck_assert_int_eq(
			th_write_file(path, "[connector]\ntype = testworker\nenabeld = no\n"), 0);
	}
	ck_assert_int_eq(th_proc_kill(e.d, SIGHUP), 0);
	ck_assert(TH_WAIT(th_proc_output_contains(e.d, "c.ini:3: unknown key enabeld"), 5000));
	ck_assert(TH_WAIT(th_proc_output_contains(e.d, "the worker is left as it is"), 5000));
	ck_assert_int_eq(pid_of(&e, "c"), pc);

	/* A broken global file is rejected and nothing changes. */
	ck_assert_int_eq(th_write_file(e.global, "[supervisor]\nrestart_intensity = lots\n"), 0);
	ck_assert_int_eq(th_proc_kill(e.d, SIGHUP), 0);
	ck_assert(TH_WAIT(th_proc_output_contains(e.d, "reload rejected"), 5000));
	ck_assert(th_proc_output_contains(e.d, "danube-connect.ini:2:"));
	ck_assert_int_eq(pid_of(&e, "c"), pc);
	ck_assert_str_eq(state_of(&e, "d", NULL), "running");
	stop_daemon(&e);
}
END_TEST

START_TEST(reload_errors_are_logged_once)
{
	const char *line =
		"danube-connect.ini:2: supervisor.restart_intensity: expected an integer";
	struct env e;
	dcctl_Response r;

	env_init(&e, NULL);
	add_conn(&e, "a", "");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "a", "running"), 5000));
	ck_assert_int_eq(th_write_file(e.global, "[supervisor]\nrestart_intensity = lots\n"), 0);
	ck_assert_int_eq(th_proc_kill(e.d, SIGHUP), 0);
	ck_assert(TH_WAIT(th_proc_output_contains(e.d, "reload rejected"), 5000));
	/* the control socket answers after the loop has handled the signal */
	ck_assert_str_eq(state_of(&e, "a", NULL), "running");
	ck_assert_int_eq(th_proc_output_count(e.d, line), 1);

	/* the same over the control socket: the client gets the reason, the log each line once */
	ck_assert_int_eq(ctl(&e, dcctl_Op_OP_RELOAD, "", &r), 0);
	ck_assert_int_eq(r.code, dcctl_Code_CODE_FAILED);
	ck_assert_ptr_nonnull(strstr(r.error, line));
	pb_release(dcctl_Response_fields, &r);
	ck_assert_int_eq(th_proc_output_count(e.d, line), 2);
	ck_assert_int_eq(th_proc_output_count(e.d, "reload rejected"), 2);
	stop_daemon(&e);
}
END_TEST

START_TEST(metrics_and_probes_are_served)
{
	struct env e;
	char *b;

	env_init(&e, NULL);
	add_conn(&e, "src", "topic = /default/src 42 40 2\n");
	add_conn(&e, "lazy", "never_ready = true\n");
	start_daemon(&e);
	ck_assert(th_wait_port(e.port, 5000));
	ck_assert_int_eq(http_get(&e, "/healthz", &b), 200);
	free(b);
	ck_assert(TH_WAIT(is_state(&e, "src", "running"), 5000));
	ck_assert(TH_WAIT(scrape(&e, "danube_connector_messages_received_total{connector="
				     "\"src\",topic=\"/default/src\"}") == 42,
			  5000));
	ck_assert_int_eq(http_get(&e, "/readyz", &b), 503);
	ck_assert_ptr_nonnull(strstr(b, "lazy"));
	ck_assert_ptr_null(strstr(b, "src"));
	free(b);
	ck_assert_int_eq(http_get(&e, "/metrics", &b), 200);
	ck_assert_double_eq(metric(b, "danube_connector_up{connector=\"src\"}"), 1);
	ck_assert_double_eq(metric(b, "danube_connector_up{connector=\"lazy\"}"), 0);
	ck_assert_double_eq(metric(b, "danube_connector_health{connector=\"src\"}"), 1);
	ck_assert_double_eq(metric(b, "danube_connector_health{connector=\"lazy\"}"), 0);
	ck_assert_double_eq(metric(b, "danube_connector_restarts_total{connector=\"src\"}"), 0);
	ck_assert_double_eq(metric(b, "danube_connector_messages_processed_total{connector="
				      "\"src\",topic=\"/default/src\"}"),
			    40);
	ck_assert_double_eq(metric(b, "danube_connector_messages_failed_total{connector=\"src\","
				      "topic=\"/default/src\",error_type=\"external\"}"),
			    2);
	/* the worker's 40 messages took 2 ms each: all in the first bucket, cumulative after */
	ck_assert_double_eq(metric(b, "danube_connector_processing_duration_seconds_bucket{"
				      "connector=\"src\",topic=\"/default/src\",le=\"0.005\"}"),
			    40);
	ck_assert_double_eq(metric(b, "danube_connector_processing_duration_seconds_bucket{"
				      "connector=\"src\",topic=\"/default/src\",le=\"10\"}"),
			    40);
	ck_assert_double_eq(metric(b, "danube_connector_processing_duration_seconds_bucket{"
				      "connector=\"src\",topic=\"/default/src\",le=\"+Inf\"}"),
			    40);
	ck_assert_double_eq(metric(b, "danube_connector_processing_duration_seconds_count{"
				      "connector=\"src\",topic=\"/default/src\"}"),
			    40);
	ck_assert_double_eq_tol(metric(b, "danube_connector_processing_duration_seconds_sum{"
					  "connector=\"src\",topic=\"/default/src\"}"),
				0.08, 1e-9);
	ck_assert_double_eq(metric(b, "danube_connector_batch_size_count{connector=\"src\","
				      "topic=\"/default/src\"}"),
			    1);
	ck_assert_ptr_nonnull(
		strstr(b, "# TYPE danube_connector_messages_received_total counter\n"));
	ck_assert_ptr_nonnull(strstr(b, "# TYPE danube_connector_up gauge\n"));
	ck_assert_ptr_nonnull(
		strstr(b, "# TYPE danube_connector_processing_duration_seconds histogram\n"));
	ck_assert_ptr_nonnull(strstr(b, "# HELP danube_connector_health "));
	/* every sample line is NAME{LABELS} VALUE */
	for (char *p = b; *p;) {
		char *eol = strchr(p, '\n');

		ck_assert_ptr_nonnull(eol);
		if (*p != '#') {
			char *sp = memchr(p, ' ', (size_t)(eol - p));

			ck_assert_ptr_nonnull(sp);
			ck_assert(strncmp(p, "danube_connector_", 17) == 0);
			ck_assert(sp[-1] == '}');
		}
		p = eol + 1;
	}
	free(b);

	/* the same text through the control socket */
	{
		dcctl_Response r;

		ck_assert_int_eq(ctl(&e, dcctl_Op_OP_METRICS, "", &r), 0);
		ck_assert_int_eq(r.code, dcctl_Code_CODE_OK);
		ck_assert_ptr_nonnull(strstr(r.text, "danube_connector_up{connector=\"src\"} 1"));
		pb_release(dcctl_Response_fields, &r);
	}
	ctl_ok(&e, dcctl_Op_OP_STOP, "lazy");
	ck_assert(TH_WAIT(is_state(&e, "lazy", "stopped"), 5000));
	ck_assert(!http_ready(&e));
	stop_daemon(&e);
}
END_TEST

START_TEST(readyz_is_200_when_all_running)
{
	struct env e;

	env_init(&e, NULL);
	add_conn(&e, "one", "");
	add_conn(&e, "two", "");
	start_daemon(&e);
	ck_assert(TH_WAIT(http_ready(&e), 5000));
	ck_assert_str_eq(state_of(&e, "one", NULL), "running");
	ck_assert_str_eq(state_of(&e, "two", NULL), "running");
	stop_daemon(&e);
}
END_TEST

START_TEST(worker_output_is_forwarded_line_by_line)
{
	struct env e;
	char *log, *p, path[600];
	size_t run = 0;

	env_init(&e, NULL);
	add_conn(&e, "talk",
		 "stdout_lines = 3\nstderr_lines = 2\nlong_line = 10240\n"
		 "partial_line = partial:\n");
	/* A worker whose last words have no newline. */
	snprintf(path, sizeof(path), "%s/mumble", e.workers);
	ck_assert_int_eq(th_write_file(path, "#!/bin/sh\necho first\nprintf 'no newline at exit'\n"
					     "exit 0\n"),
			 0);
	ck_assert_int_eq(chmod(path, 0755), 0);
	snprintf(path, sizeof(path), "%s/mumble.ini", e.conn);
	ck_assert_int_eq(th_write_file(path, "[connector]\ntype = mumble\n"), 0);
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "talk", "running"), 5000));
	ck_assert(TH_WAIT(is_state(&e, "mumble", "stopped"), 5000));
	log = th_proc_output(e.d);
	ck_assert_ptr_nonnull(strstr(log, "\ntalk: testworker talk started pid "));
	ck_assert_ptr_nonnull(strstr(log, "\ntalk: testworker talk stdout line 1\n"));
	ck_assert_ptr_nonnull(strstr(log, "\ntalk: testworker talk stdout line 3\n"));
	ck_assert_ptr_nonnull(strstr(log, "\ntalk: testworker talk stderr line 2\n"));
	/* a partial line waits for the rest of its line */
	ck_assert_ptr_nonnull(strstr(log, "\ntalk: partial:testworker talk ready\n"));
	/* and one is flushed when the worker exits */
	ck_assert_ptr_nonnull(strstr(log, "\nmumble: first\n"));
	ck_assert_ptr_nonnull(strstr(log, "\nmumble: no newline at exit\n"));
	/* 10 KiB of 'x' become 4096 + 4096 + 2048 */
	p = strstr(log, "\ntalk: xxxx");
	for (int piece = 0; piece < 3; piece++) {
		size_t n = 0;

		ck_assert_ptr_nonnull(p);
		ck_assert(strncmp(p, "\ntalk: ", 7) == 0);
		p += 7;
		while (p[n] == 'x')
			n++;
		ck_assert(p[n] == '\n');
		ck_assert_uint_eq(n, piece < 2 ? 4096 : 2048);
		run += n;
		p += n;
	}
	ck_assert_uint_eq(run, 10240);
	free(log);
	stop_daemon(&e);
}
END_TEST

START_TEST(crash_right_after_ipc_200_times_others_stay_healthy)
{
	struct sv_opts o = {1, 4, 100000, 1, 100, 1000, 1000};
	struct env e;
	long p1, p2;
	int fds;
	char *b;

	env_init(&e, &o);
	add_conn(&e, "good1", "");
	add_conn(&e, "good2", "");
	add_conn(&e, "flaky", "crash_after_ipc = true\n");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "good1", "running") && is_state(&e, "good2", "running"),
			  5000));
	p1 = pid_of(&e, "good1");
	p2 = pid_of(&e, "good2");
	fds = fd_count(th_proc_pid(e.d));
	ck_assert(TH_WAIT(starts(&e, "flaky") >= 200, 60000));
	/* every life's pipes and socket were released */
	ck_assert_int_le(fd_count(th_proc_pid(e.d)), fds + 8);
	/* the others were supervised all along: same processes, fresh health answers */
	ck_assert_int_eq(pid_of(&e, "good1"), p1);
	ck_assert_int_eq(pid_of(&e, "good2"), p2);
	ck_assert_str_eq(state_of(&e, "good1", NULL), "running");
	ck_assert_int_eq(http_get(&e, "/metrics", &b), 200);
	ck_assert_double_eq(metric(b, "danube_connector_health{connector=\"good1\"}"), 1);
	ck_assert_double_eq(metric(b, "danube_connector_health{connector=\"good2\"}"), 1);
	free(b);
	ck_assert(!th_proc_output_contains(e.d, "good1: no health answer"));
	ck_assert(!th_proc_output_contains(e.d, "good2: no health answer"));
	/* a worker killed now is still noticed and restarted */
	ck_assert_int_eq(kill((pid_t)p1, SIGKILL), 0);
	ck_assert(TH_WAIT(is_state(&e, "good1", "running") && pid_of(&e, "good1") != p1, 5000));
	stop_daemon(&e);
}
END_TEST

START_TEST(control_socket_commands_and_errors)
{
	struct env e;
	dcctl_Response r;
	long pid;

	env_init(&e, NULL);
	add_conn(&e, "w", "");
	add_conn(&e, "off", "");
	{
		char path[600];

		snprintf(path, sizeof(path), "%s/off.ini", e.conn);
		ck_assert_int_eq(th_write_file(path, "[connector]\ntype = testworker\n"
						     "enabled = false\n"),
				 0);
	}
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "w", "running"), 5000));
	ck_assert_str_eq(state_of(&e, "off", NULL), "stopped");

	ck_assert_int_eq(ctl(&e, dcctl_Op_OP_STATUS, "", &r), 0);
	ck_assert_int_eq(r.code, dcctl_Code_CODE_OK);
	ck_assert_uint_eq(r.workers_count, 2);
	ck_assert_str_eq(r.workers[0].name, "off");
	ck_assert_str_eq(r.workers[1].name, "w");
	ck_assert_str_eq(r.workers[1].type, "testworker");
	ck_assert_str_eq(r.workers[1].health, "ready");
	pb_release(dcctl_Response_fields, &r);

	ck_assert_int_eq(ctl(&e, dcctl_Op_OP_STOP, "nope", &r), 0);
	ck_assert_int_eq(r.code, dcctl_Code_CODE_UNKNOWN_CONNECTOR);
	ck_assert_str_eq(r.error, "no connector named nope");
	pb_release(dcctl_Response_fields, &r);

	ck_assert_int_eq(ctl_v(&e, 7, dcctl_Op_OP_STATUS, "", &r), 0);
	ck_assert_int_eq(r.code, dcctl_Code_CODE_VERSION_MISMATCH);
	ck_assert_str_eq(r.error,
			 "danube-connectd speaks control protocol version 1, this client speaks 7");
	pb_release(dcctl_Response_fields, &r);

	pid = pid_of(&e, "w");
	ctl_ok(&e, dcctl_Op_OP_RESTART, "w");
	ck_assert(TH_WAIT(is_state(&e, "w", "running") && pid_of(&e, "w") != pid, 5000));
	ctl_ok(&e, dcctl_Op_OP_STOP, "w");
	ck_assert(TH_WAIT(is_state(&e, "w", "stopped"), 5000));
	ck_assert_int_eq(pid_of(&e, "w"), 0);
	ctl_ok(&e, dcctl_Op_OP_START, "off");
	ck_assert(TH_WAIT(is_state(&e, "off", "running"), 5000));
	/* a reload leaves what an operator stopped stopped, and stops what is disabled */
	ctl_ok(&e, dcctl_Op_OP_RELOAD, "");
	ck_assert_str_eq(state_of(&e, "w", NULL), "stopped");
	ck_assert(TH_WAIT(is_state(&e, "off", "stopped"), 5000));
	{
		struct stat st;
		char path[600];

		snprintf(path, sizeof(path), "%s/control.sock", e.run);
		ck_assert_int_eq(stat(path, &st), 0);
		ck_assert_int_eq(st.st_mode & 0777, 0600);
		ck_assert_int_eq(stat(e.run, &st), 0);
		ck_assert_int_eq(st.st_mode & 0777, 0700);
	}
	stop_daemon(&e);
}
END_TEST

/* danube-connectctl -s SOCKET ARGS... (up to 4); its exit status, output in *out. */
static int ctl_args(struct env *e, char **out, const char *a1, const char *a2, const char *a3,
		    const char *a4)
{
	char sock[600];
	char *argv[] = {(char *)th_build_path("danube-connectctl"),
			"-s",
			sock,
			(char *)a1,
			(char *)a2,
			(char *)a3,
			(char *)a4,
			NULL};

	snprintf(sock, sizeof(sock), "ipc://%s/control.sock", e->run);
	return th_run(argv, out, 30000);
}

/* Run danube-connectctl against the test's daemon; its exit status, output in *out. */
static int ctlcmd(struct env *e, char **out, const char *a1, const char *a2)
{
	return ctl_args(e, out, a1, a2, NULL, NULL);
}

START_TEST(cli_commands_against_the_daemon)
{
	struct env e;
	char *out;
	long pid;

	env_init(&e, NULL);
	add_conn(&e, "alpha", "topic = /default/alpha 7 5 1\nlast_error = broker went away\n");
	add_conn(&e, "beta", "never_ready = true\n");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "alpha", "running"), 5000));
	ck_assert(TH_WAIT(scrape(&e, "danube_connector_messages_received_total{connector="
				     "\"alpha\",topic=\"/default/alpha\"}") == 7,
			  5000));

	ck_assert_int_eq(ctlcmd(&e, &out, "status", NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "NAME"));
	ck_assert_ptr_nonnull(strstr(out, "alpha"));
	ck_assert_ptr_nonnull(strstr(out, "running"));
	ck_assert_ptr_nonnull(strstr(out, "beta"));
	ck_assert_ptr_nonnull(strstr(out, "starting"));
	ck_assert_ptr_nonnull(strstr(out, "broker went away"));
	free(out);

	ck_assert_int_eq(ctlcmd(&e, &out, "status", "--json"), 0);
	ck_assert_ptr_nonnull(strstr(out, "\"alpha\""));
	ck_assert_ptr_nonnull(strstr(out, "\"running\""));
	free(out);

	ck_assert_int_eq(ctlcmd(&e, &out, "metrics", NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "danube_connector_up{connector=\"alpha\"} 1\n"));
	free(out);

	ck_assert_int_ne(ctlcmd(&e, &out, "stop", "nope"), 0);
	ck_assert_ptr_nonnull(strstr(out, "no connector named nope"));
	free(out);

	pid = pid_of(&e, "alpha");
	ck_assert_int_eq(ctlcmd(&e, &out, "restart", "alpha"), 0);
	free(out);
	ck_assert(TH_WAIT(is_state(&e, "alpha", "running") && pid_of(&e, "alpha") != pid, 5000));
	ck_assert_int_eq(ctlcmd(&e, &out, "stop", "alpha"), 0);
	free(out);
	ck_assert(TH_WAIT(is_state(&e, "alpha", "stopped"), 5000));
	ck_assert_int_eq(ctlcmd(&e, &out, "start", "alpha"), 0);
	free(out);
	ck_assert(TH_WAIT(is_state(&e, "alpha", "running"), 5000));
	add_conn(&e, "gamma", "");
	ck_assert_int_eq(ctlcmd(&e, &out, "reload", NULL), 0);
	free(out);
	ck_assert(TH_WAIT(is_state(&e, "gamma", "running"), 5000));
	stop_daemon(&e);

	/* no daemon any more */
	ck_assert_int_eq(ctlcmd(&e, &out, "status", NULL), 69);
	free(out);
}
END_TEST

START_TEST(check_reports_problems_and_exit_code)
{
	struct env e;
	char *out = NULL;
	char *argv[] = {(char *)th_build_path("danube-connectd"), "--check", "-c", NULL, NULL};
	char path[600];

	env_init(&e, NULL);
	argv[3] = e.global;
	add_conn(&e, "fine", "");
	ck_assert_int_eq(th_run(argv, &out, 10000), 0);
	ck_assert_ptr_nonnull(strstr(out, "configuration OK, 1 connector"));
	free(out);

	snprintf(path, sizeof(path), "%s/broken.ini", e.conn);
	ck_assert_int_eq(th_write_file(path, "[connector]\ntyp = testworker\n"), 0);
	snprintf(path, sizeof(path), "%s/ghost.ini", e.conn);
	ck_assert_int_eq(th_write_file(path, "[connector]\ntype = no-such-worker\n"), 0);
	add_conn(&e, "typo", "crash_afterms = 5\n");
	ck_assert_int_eq(th_run(argv, &out, 10000), 1);
	ck_assert_ptr_nonnull(strstr(out, "broken.ini:2: "));
	/* the worker's own check of its sections, passed through */
	ck_assert_ptr_nonnull(strstr(out, "typo.ini:8: unknown key 'crash_afterms' in [test]"));
	ck_assert_ptr_nonnull(strstr(out, "ghost.ini:2: connector.type: no worker program "));
	ck_assert_ptr_null(strstr(out, "configuration OK"));
	free(out);
	ck_assert_int_eq(access(e.run, F_OK), -1); /* started nothing, made nothing */
}
END_TEST

/* ---------------------------------------------------------------- hostile input */

/* danube-connectd with args and extra environment, run to its end: exit code, output in *out. */
static int run_daemon(struct env *e, char **out, char *const env[], const char *a1, const char *a2)
{
	char *argv[] = {(char *)th_build_path("danube-connectd"),
			"-c",
			e->global,
			(char *)a1,
			(char *)a2,
			NULL};
	struct th_proc *p = th_spawn(e->dir, argv, env);
	int st;

	ck_assert_msg(th_proc_wait(p, 30000, &st), "danube-connectd %s did not end", a1);
	*out = th_proc_output(p);
	ck_assert_msg(th_proc_clean(p), "%s", *out);
	return th_exit_code(st);
}

/* A field of /proc/PID/status in kB ("VmRSS", "VmSize"). */
static long proc_kb(pid_t pid, const char *field)
{
	char path[64], line[256];
	size_t n = strlen(field);
	long kb = -1;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
	f = fopen(path, "r");
	ck_assert_ptr_nonnull(f);
	while (kb < 0 && fgets(line, sizeof(line), f) != NULL)
		if (strncmp(line, field, n) == 0 && line[n] == ':')
			kb = strtol(line + n + 1, NULL, 10);
	fclose(f);
	ck_assert_int_ge(kb, 0);
	return kb;
}

/*
 * A raw connection to the control socket that has done nng's handshake as a
 * REQ peer: what comes next is up to the test. Its fd, reads time out after 10 s.
 */
static int sp_connect(struct env *e)
{
	static const unsigned char req_hello[8] = {0, 'S', 'P', 0, 0x00, 0x30, 0, 0};
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	struct timeval tv = {.tv_sec = 10};
	unsigned char hello[8];
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_lt(snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/control.sock", e->run),
			 (int)sizeof(sa.sun_path));
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(send(fd, req_hello, 8, MSG_NOSIGNAL), 8);
	ck_assert_int_eq(recv(fd, hello, 8, MSG_WAITALL), 8);
	ck_assert_int_eq(hello[5], 0x31); /* a REP socket answered */
	return fd;
}

/* The peer closed the connection: EOF or reset, now (nothing else arrives unasked). */
static bool peer_closed(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	char c;

	if (poll(&p, 1, 0) != 1)
		return false;
	return recv(fd, &c, 1, MSG_DONTWAIT) <= 0;
}

START_TEST(oversized_control_request_is_dropped_unread)
{
	enum { CONNS = 4, SENT_MB = 32 };
	struct env e;
	int fds[CONNS];
	long rss, vsz;
	char *chunk = calloc(1, 1 << 20), *out;
	pid_t pid;

	ck_assert_ptr_nonnull(chunk);
	env_init(&e, NULL);
	add_conn(&e, "w", "");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "w", "running"), 5000));
	pid = th_proc_pid(e.d);
	rss = proc_kb(pid, "VmRSS");
	vsz = proc_kb(pid, "VmSize");
	for (int i = 0; i < CONNS; i++) {
		/* message type 1, then the length, 64 bits big-endian: 1 GiB */
		static const unsigned char head[9] = {1, 0, 0, 0, 0, 0x40, 0, 0, 0};
		size_t sent = 0;
		ssize_t n;

		fds[i] = sp_connect(&e);
		ck_assert_int_eq(send(fds[i], head, sizeof(head), MSG_NOSIGNAL),
				 (ssize_t)sizeof(head));
		while (sent < (size_t)SENT_MB << 20 &&
		       (n = send(fds[i], chunk, 1 << 20, MSG_NOSIGNAL)) > 0)
			sent += (size_t)n;
		/* the daemon hung up long before: a socket buffer or two went out */
		ck_assert_msg(sent < 4u << 20 && n < 0 && (errno == EPIPE || errno == ECONNRESET),
			      "connection %d: %zu bytes taken, last send %zd (%s)", i, sent, n,
			      n < 0 ? strerror(errno) : "ok");
	}
	/* the daemon answers, and with the connections still open, holds none of it */
	ck_assert_int_eq(ctlcmd(&e, &out, "status", NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "running"));
	free(out);
	ck_assert_int_lt(proc_kb(pid, "VmRSS") - rss, 16 * 1024);
	ck_assert_int_lt(proc_kb(pid, "VmSize") - vsz, 1024 * 1024);
	for (int i = 0; i < CONNS; i++)
		close(fds[i]);
	ck_assert_str_eq(state_of(&e, "w", NULL), "running");
	free(chunk);
	stop_daemon(&e);
}
END_TEST

START_TEST(control_connections_are_capped)
{
	enum { CAP = 64, EXTRA = 16 };
	struct env e;
	int fds[CAP + EXTRA], nfd, closed = 0, st;
	char *out, sock[600];
	char *argv[] = {(char *)th_build_path("danube-connectctl"), "-s", sock, "status", NULL};
	struct th_proc *cli;

	env_init(&e, NULL);
	add_conn(&e, "w", "");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "w", "running"), 5000));
	nfd = fd_count(th_proc_pid(e.d));
	for (int i = 0; i < CAP + EXTRA; i++)
		fds[i] = sp_connect(&e);
	/* the ones past the cap are closed by the daemon, the others stay */
	ck_assert(TH_WAIT(({
				  closed = 0;
				  for (int i = 0; i < CAP + EXTRA; i++)
					  closed += peer_closed(fds[i]);
				  closed >= EXTRA;
			  }),
			  10000));
	ck_assert_int_eq(closed, EXTRA);
	ck_assert_int_le(fd_count(th_proc_pid(e.d)), nfd + CAP + 8);
	/* a CLI call meanwhile is refused too, tries again and gets through once they are gone */
	snprintf(sock, sizeof(sock), "ipc://%s/control.sock", e.run);
	cli = th_spawn(e.dir, argv, NULL);
	for (int i = 0; i < CAP + EXTRA; i++)
		close(fds[i]);
	ck_assert(th_proc_wait(cli, 20000, &st));
	ck_assert_int_eq(th_exit_code(st), 0);
	ck_assert(th_proc_output_contains(cli, "running"));
	ck_assert_int_eq(ctlcmd(&e, &out, "status", "w"), 0);
	free(out);
	stop_daemon(&e);
}
END_TEST

static long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* A TCP connection to the daemon's HTTP port; reads time out after 15 s. */
static int tcp_connect(struct env *e)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)e->port)};
	struct timeval tv = {.tv_sec = 15};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

/* Everything the peer sends until it closes (or resets), malloc'd; its length in *len. */
static char *read_all(int fd, size_t *len)
{
	size_t cap = 4096;
	char *buf = malloc(cap + 1);
	ssize_t n;

	ck_assert_ptr_nonnull(buf);
	*len = 0;
	while ((n = recv(fd, buf + *len, cap - *len, 0)) > 0) {
		*len += (size_t)n;
		if (*len == cap) {
			cap *= 2;
			buf = realloc(buf, cap + 1);
			ck_assert_ptr_nonnull(buf);
		}
	}
	/* the peer hung up, or reset after its answer; a read timeout is a hang */
	ck_assert_msg(n == 0 || errno == ECONNRESET, "no end of the answer: %s", strerror(errno));
	buf[*len] = '\0';
	return buf;
}

/*
 * Sends len bytes as a request, stopping early when the daemon answers
 * before it has them all; returns the status of the answer (-1 without a
 * status line) and the whole answer in *resp.
 */
static int http_raw(struct env *e, const char *data, size_t len, char **resp)
{
	int fd = tcp_connect(e), code = -1;
	size_t off = 0, rlen;

	while (off < len) {
		struct pollfd p = {.fd = fd, .events = POLLIN};
		size_t n = len - off < 4096 ? len - off : 4096;
		ssize_t w = send(fd, data + off, n, MSG_NOSIGNAL);

		if (w < 0)
			break;
		off += (size_t)w;
		if (poll(&p, 1, 0) == 1)
			break;
	}
	if (off == len)
		shutdown(fd, SHUT_WR);
	*resp = read_all(fd, &rlen);
	close(fd);
	if (sscanf(*resp, "HTTP/1.1 %d ", &code) != 1)
		code = -1;
	return code;
}

START_TEST(http_answers_what_it_cannot_serve_with_a_status)
{
	static const struct {
		const char *req;
		int status;
		const char *says;
	} cases[] = {
		{"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "\r\n\r\nok\n"},
		{"GET /healthz?x=1 HTTP/1.0\n\n", 200, "\r\n\r\nok\n"},
		{"GET http://x/healthz HTTP/1.1\r\nHost: x\r\n\r\n", 200, "ok\n"},
		{"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\n", 200, "Content-Length: "},
		{"GET /nope HTTP/1.0\r\n\r\n", 404, "Not Found"},
		{"POST /metrics HTTP/1.0\r\n\r\n", 405, "Allow: GET, HEAD\r\n"},
		{"GET /healthz HTTP/1.1\r\n\r\n", 400, "Bad Request"}, /* no Host */
		{"GET /healthz HTTP/1.0\r\nno colon here\r\n\r\n", 400, "Bad Request"},
		{"GET /healthz HTTP/1.0\r\nX: 1\r\n folded\r\n\r\n", 400, "Bad Request"},
		{"GET /healthz HTTP/2.0\r\n\r\n", 505, "HTTP Version Not Supported"},
		{"GET /healthz\r\n\r\n", 400, "Bad Request"},
		{"\x16\x03\x01\x02\x05\x01\r\n\r\n", 400, "Bad Request"},
	};
	static const char nul[] = "GET /\0 HTTP/1.0\r\n\r\n",
			  head[] = "HEAD /healthz HTTP/1.0\r\n\r\n";
	struct env e;
	char *resp, *big;
	size_t n;

	env_init(&e, NULL);
	start_daemon(&e);
	ck_assert(th_wait_port(e.port, 5000));
	/* oversized: a status line, not a silent close */
	big = malloc(10u << 20);
	ck_assert_ptr_nonnull(big);
	n = (size_t)sprintf(big, "GET /");
	memset(big + n, 'a', 3000);
	n += 3000;
	n += (size_t)sprintf(big + n, " HTTP/1.0\r\n\r\n");
	ck_assert_int_eq(http_raw(&e, big, n, &resp), 414);
	free(resp);
	n = (size_t)sprintf(big, "GET /healthz HTTP/1.0\r\n");
	while (n < 9000)
		n += (size_t)sprintf(big + n, "X-Pad: %0100d\r\n", 0);
	n += (size_t)sprintf(big + n, "\r\n");
	ck_assert_int_eq(http_raw(&e, big, n, &resp), 431);
	free(resp);
	/* 10 MB without a newline: answered after the first 2 KiB, the rest never read */
	memset(big, 'x', 10u << 20);
	ck_assert_int_eq(http_raw(&e, big, 10u << 20, &resp), 414);
	free(resp);
	free(big);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int code = http_raw(&e, cases[i].req, strlen(cases[i].req), &resp);

		ck_assert_msg(code == cases[i].status, "%s: got %d: %s", cases[i].req, code, resp);
		ck_assert_msg(strstr(resp, cases[i].says) != NULL, "%s: %s", cases[i].req, resp);
		ck_assert_ptr_nonnull(strstr(resp, "\r\nConnection: close\r\n"));
		free(resp);
	}
	ck_assert_int_eq(http_raw(&e, nul, sizeof(nul) - 1, &resp), 400);
	free(resp);
	/* HEAD: the headers of GET, no body */
	ck_assert_int_eq(http_raw(&e, head, strlen(head), &resp), 200);
	ck_assert_ptr_nonnull(strstr(resp, "Content-Length: 3\r\n"));
	ck_assert_str_eq(strstr(resp, "\r\n\r\n"), "\r\n\r\n");
	free(resp);

	ck_assert_int_eq(http_get(&e, "/healthz", &resp), 200);
	free(resp);
	stop_daemon(&e);
}
END_TEST

START_TEST(http_closes_slow_requests_and_serves_others)
{
	enum { SLOW = 6 };
	static const char req[] = "GET /metrics HTTP/1.1\r\nHost: x\r\nX-Slow: ";
	struct env e;
	int fds[SLOW], open_n = SLOW, served = 0;
	long opened[SLOW], closed_at[SLOW], next_send, deadline;
	size_t sent[SLOW];
	char *answer[SLOW] = {NULL};

	env_init(&e, NULL);
	add_conn(&e, "w", "");
	start_daemon(&e);
	ck_assert(th_wait_port(e.port, 5000));
	ck_assert(TH_WAIT(is_state(&e, "w", "running"), 5000));
	for (int i = 0; i < SLOW; i++) {
		fds[i] = tcp_connect(&e);
		opened[i] = now_ms();
		closed_at[i] = -1;
		sent[i] = 0;
	}
	/* Half a second off the server's whole seconds, so a byte does not cross its close. */
	next_send = now_ms() + 500;
	deadline = now_ms() + 60000;
	while (open_n > 0 && now_ms() < deadline) {
		struct pollfd p[SLOW];
		long wait = next_send - now_ms();

		if (wait <= 0) {
			/* a byte a second on each, but the first, which stays idle */
			for (int i = 1; i < SLOW; i++)
				if (closed_at[i] < 0 &&
				    send(fds[i], req + sent[i] % strlen(req), 1, MSG_NOSIGNAL) == 1)
					sent[i]++;
			next_send += 1000;
			/* meanwhile, a well-behaved client is answered at once */
			if (sent[1] >= 2 && served < 3) {
				char *b;

				ck_assert_int_eq(http_get(&e, "/metrics", &b), 200);
				ck_assert_ptr_nonnull(
					strstr(b, "danube_connector_up{connector=\"w\"}"));
				free(b);
				served++;
			}
			continue;
		}
		for (int i = 0; i < SLOW; i++)
			p[i] = (struct pollfd){.fd = closed_at[i] < 0 ? fds[i] : -1,
					       .events = POLLIN};
		if (poll(p, SLOW, (int)wait) <= 0)
			continue;
		for (int i = 0; i < SLOW; i++) {
			size_t len;

			if (p[i].revents == 0)
				continue;
			/* what the server says before it hangs up */
			answer[i] = read_all(fds[i], &len);
			closed_at[i] = now_ms();
			close(fds[i]);
			open_n--;
		}
	}
	ck_assert_int_eq(open_n, 0);
	ck_assert_int_ge(served, 3);
	for (int i = 0; i < SLOW; i++) {
		/* not before the request timeout: a byte a second is progress of a kind */
		ck_assert_int_ge(closed_at[i] - opened[i], 5000 - 100);
		ck_assert(i == 0 || sent[i] >= 4);
	}
	/* an idle connection is told why */
	ck_assert_msg(strncmp(answer[0], "HTTP/1.1 408 Request Timeout\r\n", 30) == 0, "%s",
		      answer[0]);
	for (int i = 0; i < SLOW; i++)
		free(answer[i]);
	stop_daemon(&e);
}
END_TEST

START_TEST(http_caps_its_connections)
{
	enum { CAP = 32, EXTRA = 16 };
	struct env e;
	int fds[CAP + EXTRA], base;
	pid_t pid;
	char *b;

	env_init(&e, NULL);
	start_daemon(&e);
	ck_assert(th_wait_port(e.port, 5000));
	pid = th_proc_pid(e.d);
	/* give or take the probe's connection, which may not have closed yet */
	base = fd_count(pid);
	for (int i = 0; i < CAP + EXTRA; i++)
		fds[i] = tcp_connect(&e);
	/* the daemon holds as many as its cap, the rest wait in the listen backlog */
	ck_assert_msg(TH_WAIT(fd_count(pid) >= base + CAP - 1, 10000), "%d fds, %d before",
		      fd_count(pid), base);
	ck_assert_int_le(fd_count(pid), base + CAP + 1);
	/* a well-behaved client behind them all is served once the idle ones time out */
	ck_assert_int_eq(http_get(&e, "/healthz", &b), 200);
	free(b);
	for (int i = 0; i < CAP + EXTRA; i++)
		close(fds[i]);
	stop_daemon(&e);
}
END_TEST

START_TEST(check_refuses_what_the_start_refuses)
{
	struct env e;
	char file[600], missing[600], nonlocal[64], longdir[200], got[128], *out;
	const struct {
		const char *var, *value, *says;
	} cases[] = {
		{"METRICS_LISTEN", "not a host", "expected HOST:PORT"},
		{"METRICS_LISTEN", "127.0.0.1", "expected HOST:PORT"},
		{"METRICS_LISTEN", "::1:9090", "expected HOST:PORT"},
		{"METRICS_LISTEN", "127.0.0.1:0", "port must be between 1 and 65535"},
		{"METRICS_LISTEN", "127.0.0.1:65536", "port must be between 1 and 65535"},
		/* TEST-NET-1: no machine of ours has it */
		{"METRICS_LISTEN", nonlocal,
		 "cannot listen there: Cannot assign requested address"},
		{"RUN_DIR", missing, "cannot be made: its parent is not a directory"},
		{"RUN_DIR", file, "not a directory"},
		{"RUN_DIR", longdir, "too long for the sockets in it: at most 94 characters"},
		{"RUN_DIR", "", "must not be empty"},
	};

	env_init(&e, NULL);
	add_conn(&e, "fine", "");
	snprintf(file, sizeof(file), "%s/a-file", e.dir);
	ck_assert_int_eq(th_write_file(file, "x\n"), 0);
	snprintf(missing, sizeof(missing), "%s/no/such/run", e.dir);
	snprintf(nonlocal, sizeof(nonlocal), "192.0.2.1:%d", e.port);
	memset(longdir, 'd', 99);
	longdir[0] = '/';
	longdir[99] = '\0';
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char var[1024], want[1024];
		char *env[] = {var, NULL};
		int code;

		snprintf(var, sizeof(var), "DANUBE_CONNECT_SUPERVISOR_%s=%s", cases[i].var,
			 cases[i].value);
		snprintf(want, sizeof(want),
			 "environment DANUBE_CONNECT_SUPERVISOR_%s: supervisor.%s: %s",
			 cases[i].var,
			 strcmp(cases[i].var, "RUN_DIR") == 0 ? "run_dir" : "metrics_listen",
			 cases[i].says);
		snprintf(got, sizeof(got), " (got \"%.60s%s\")\n", cases[i].value,
			 strlen(cases[i].value) > 60 ? "..." : "");
		code = run_daemon(&e, &out, env, "--check", NULL);
		ck_assert_msg(code == 1 && strstr(out, want) != NULL && strstr(out, got) != NULL,
			      "--check with %s: %d: %s", var, code, out);
		ck_assert_ptr_null(strstr(out, "configuration OK"));
		free(out);
		/* the start refuses it with the same words, before it makes anything */
		code = run_daemon(&e, &out, env, "-f", NULL);
		ck_assert_msg(code == 78 && strstr(out, want) != NULL && strstr(out, got) != NULL,
			      "start with %s: %d: %s", var, code, out);
		free(out);
		ck_assert_int_eq(access(e.run, F_OK), -1);
	}

	/* in the file: named by its line */
	ck_assert_int_eq(th_write_file(e.global,
				       "[supervisor]\nconnectors_dir = %s\nrun_dir = %s\n"
				       "metrics_listen = not a host\n",
				       e.conn, e.run),
			 0);
	ck_assert_int_eq(run_daemon(&e, &out, NULL, "--check", NULL), 1);
	ck_assert_ptr_nonnull(strstr(out, "danube-connect.ini:4: supervisor.metrics_listen: "
					  "expected HOST:PORT"));
	free(out);
	/* and what will do passes: a name, every address */
	ck_assert_int_eq(th_write_file(e.global,
				       "[supervisor]\nconnectors_dir = %s\nrun_dir = %s\n"
				       "worker_dir = %s\nmetrics_listen = localhost:%d\n",
				       e.conn, e.run, e.workers, e.port),
			 0);
	ck_assert_int_eq(run_daemon(&e, &out, NULL, "--check", NULL), 0);
	ck_assert_ptr_nonnull(strstr(out, "configuration OK"));
	free(out);
	{
		char *env[] = {"DANUBE_CONNECT_SUPERVISOR_METRICS_LISTEN=:1", NULL};

		/* port 1: the check binds the address, not the port */
		ck_assert_int_eq(run_daemon(&e, &out, env, "--check", NULL), 0);
		free(out);
	}
}
END_TEST

START_TEST(names_from_files_are_cleaned_and_long_values_not_echoed)
{
	struct env e;
	char path[600], *out, *env[2];
	size_t big = 120 * 1024;
	char *long_dir = malloc(big + 64);

	env_init(&e, NULL);
	add_conn(&e, "fine", "");
	snprintf(path, sizeof(path), "%s/esc.ini", e.conn);
	ck_assert_int_eq(th_write_file(path, "[connector]\ntype = testworker\n"
					     "\x1b]0;PWNED\x07\x1b[31mevil = 1\n"),
			 0);
	ck_assert_int_eq(run_daemon(&e, &out, NULL, "--check", NULL), 1);
	ck_assert_ptr_nonnull(
		strstr(out, "esc.ini:3: unknown key ?]0;PWNED??[31mevil in [connector]"));
	ck_assert_ptr_null(strchr(out, '\x1b'));
	ck_assert_ptr_null(strchr(out, '\x07'));
	free(out);
	/* the daemon logs the same line, just as clean */
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "fine", "running"), 5000));
	ck_assert(th_proc_output_contains(e.d, "unknown key ?]0;PWNED??[31mevil in [connector]"));
	stop_daemon(&e);
	out = th_proc_output(e.d);
	ck_assert_ptr_null(strchr(out, '\x1b'));
	free(out);

	/* a 120 KB run_dir from the environment is named, not echoed */
	ck_assert_ptr_nonnull(long_dir);
	strcpy(long_dir, "DANUBE_CONNECT_SUPERVISOR_RUN_DIR=/");
	memset(long_dir + strlen(long_dir), 'r', big);
	long_dir[strlen("DANUBE_CONNECT_SUPERVISOR_RUN_DIR=/") + big] = '\0';
	env[0] = long_dir;
	env[1] = NULL;
	ck_assert_int_eq(run_daemon(&e, &out, env, "--check", NULL), 1);
	ck_assert_ptr_nonnull(strstr(out, "rrrr..."));
	ck_assert_uint_lt(strlen(out), 8192);
	free(out);
	ck_assert_int_eq(run_daemon(&e, &out, env, "-f", NULL), 78);
	ck_assert_ptr_nonnull(strstr(out, "rrrr..."));
	ck_assert_uint_lt(strlen(out), 8192);
	free(out);
	free(long_dir);
}
END_TEST

/* ---------------------------------------------------------------- operations */

/* Appends text to the global file. */
static void global_append(struct env *e, const char *text)
{
	char *old = th_read_file(e->global);

	ck_assert_ptr_nonnull(old);
	ck_assert_int_eq(th_write_file(e->global, "%s%s", old, text), 0);
	free(old);
}

START_TEST(reload_restarts_connectors_that_inherit_a_changed_default)
{
	struct env e;
	long pi, po;

	env_init(&e, NULL);
	add_conn(&e, "inherits", "");
	add_conn_rt(&e, "overrides", "batch_size = 5\n", "");
	start_daemon(&e);
	ck_assert(TH_WAIT(
		is_state(&e, "inherits", "running") && is_state(&e, "overrides", "running"), 5000));
	pi = pid_of(&e, "inherits");
	po = pid_of(&e, "overrides");
	/* Neither connector file changed: only the default one of them inherits. */
	global_append(&e, "batch_size = 7\n"); /* [runtime] is the file's last section */
	ctl_ok(&e, dcctl_Op_OP_RELOAD, "");
	ck_assert(
		TH_WAIT(is_state(&e, "inherits", "running") && pid_of(&e, "inherits") != pi, 5000));
	ck_assert_int_eq(pid_of(&e, "overrides"), po);
	ck_assert_int_eq(starts(&e, "overrides"), 1);

	/* The same reload again changes nothing. */
	pi = pid_of(&e, "inherits");
	ctl_ok(&e, dcctl_Op_OP_RELOAD, "");
	ck_assert_int_eq(pid_of(&e, "inherits"), pi);
	ck_assert_int_eq(starts(&e, "inherits"), 2);
	stop_daemon(&e);
}
END_TEST

START_TEST(stopped_connector_stays_stopped_across_reload)
{
	struct env e;

	env_init(&e, NULL);
	add_conn(&e, "held", "");
	add_conn(&e, "other", "");
	start_daemon(&e);
	ck_assert(
		TH_WAIT(is_state(&e, "held", "running") && is_state(&e, "other", "running"), 5000));
	ctl_ok(&e, dcctl_Op_OP_STOP, "held");
	ck_assert(TH_WAIT(is_state(&e, "held", "stopped"), 5000));
	/* The reload is applied before its answer: a start would show at once. */
	ctl_ok(&e, dcctl_Op_OP_RELOAD, "");
	ck_assert_str_eq(state_of(&e, "held", NULL), "stopped");
	add_conn(&e, "held", "stdout_lines = 1\n");
	ck_assert_int_eq(th_proc_kill(e.d, SIGHUP), 0);
	ck_assert(TH_WAIT(th_proc_output_contains(e.d, "held.ini changed: stays stopped"), 5000));
	ck_assert_str_eq(state_of(&e, "held", NULL), "stopped");
	ck_assert_int_eq(starts(&e, "held"), 1);
	ctl_ok(&e, dcctl_Op_OP_START, "held");
	ck_assert(TH_WAIT(is_state(&e, "held", "running"), 5000));
	ck_assert_int_eq(starts(&e, "other"), 1);
	stop_daemon(&e);
}
END_TEST

START_TEST(environment_disables_a_connector)
{
	char *env[] = {"DANUBE_CONNECT_CONNECTOR_ENABLED=false", NULL};
	struct env e;

	env_init(&e, NULL);
	add_conn(&e, "off", "");
	start_daemon_env(&e, env);
	ck_assert(TH_WAIT(th_proc_output_contains(e.d, "off: disabled"), 5000));
	ck_assert_str_eq(state_of(&e, "off", NULL), "stopped");
	ck_assert_int_eq(starts(&e, "off"), 0);
	stop_daemon(&e);
}
END_TEST

static bool readyz_is(struct env *e, int code, const char *body)
{
	char *b;
	bool same = http_get(e, "/readyz", &b) == code && strcmp(b, body) == 0;

	free(b);
	return same;
}

START_TEST(readyz_counts_a_broken_connector_file)
{
	struct env e;
	char path[600];

	env_init(&e, NULL);
	add_conn(&e, "good", "");
	snprintf(path, sizeof(path), "%s/bad.ini", e.conn);
	ck_assert_int_eq(th_write_file(path, "[connector]\ntype = testworker\nenabeld = no\n"), 0);
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "good", "running"), 5000));
	/* Published with the health round after good is running. */
	ck_assert(TH_WAIT(readyz_is(&e, 503, "not ready: bad\n"), 5000));
	add_conn(&e, "bad", "");
	ctl_ok(&e, dcctl_Op_OP_RELOAD, "");
	ck_assert(TH_WAIT(http_ready(&e), 5000));

	/* Broken by a reload: the old worker runs on, but the file is not ready. */
	ck_assert_int_eq(th_write_file(path, "[connector]\ntype = testworker\nenabeld = no\n"), 0);
	ctl_ok(&e, dcctl_Op_OP_RELOAD, "");
	ck_assert(TH_WAIT(!http_ready(&e), 5000));
	ck_assert_str_eq(state_of(&e, "bad", NULL), "running");
	stop_daemon(&e);
}
END_TEST

START_TEST(stop_waits_for_the_workers_own_drain_limit)
{
	struct sv_opts o = {50, 400, 100, 60, 100, 1000, 100};
	struct env e;

	env_init(&e, &o);
	/* The supervisor's 100 ms would cut the 600 ms drain short; the worker's 2 s do not. */
	add_conn_rt(&e, "slow", "stop_timeout_ms = 2000\n", "stop_delay_ms = 600\n");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "slow", "running"), 5000));
	ctl_ok(&e, dcctl_Op_OP_STOP, "slow");
	ck_assert(TH_WAIT(is_state(&e, "slow", "stopped"), 10000));
	ck_assert(th_proc_output_contains(e.d, "testworker slow drained"));
	ck_assert(th_proc_output_contains(e.d, "slow: pid"));
	ck_assert(th_proc_output_contains(e.d, "exited with status 0"));
	ck_assert(!th_proc_output_contains(e.d, "killed by signal"));
	stop_daemon(&e);
}
END_TEST

START_TEST(drain_cut_short_is_stopped_with_a_warning)
{
	struct env e;
	long pid;

	env_init(&e, NULL);
	add_conn(&e, "cut", "stop_exit = 75\n");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "cut", "running"), 5000));
	ctl_ok(&e, dcctl_Op_OP_STOP, "cut");
	ck_assert(TH_WAIT(is_state(&e, "cut", "stopped"), 5000));
	ck_assert(th_proc_output_contains(e.d, "cut: pid"));
	ck_assert(th_proc_output_contains(e.d, "warn: cut: pid"));
	ck_assert(
		th_proc_output_contains(e.d, "stopped with its drain cut short (exit status 75)"));
	ck_assert_int_eq(starts(&e, "cut"), 1);
	/* A restart starts it again at once, without the crash backoff. */
	ctl_ok(&e, dcctl_Op_OP_START, "cut");
	ck_assert(TH_WAIT(is_state(&e, "cut", "running"), 5000));
	pid = pid_of(&e, "cut");
	ctl_ok(&e, dcctl_Op_OP_RESTART, "cut");
	ck_assert(TH_WAIT(is_state(&e, "cut", "running") && pid_of(&e, "cut") != pid, 5000));
	ck_assert(!th_proc_output_contains(e.d, "restarting in"));
	stop_daemon(&e);
}
END_TEST

START_TEST(ctl_wait_returns_once_the_state_is_reached)
{
	struct env e;
	char *out;
	long pid;

	env_init(&e, NULL);
	add_conn(&e, "slow", "ready_after_ms = 300\nstop_delay_ms = 300\n");
	add_conn(&e, "bad", "exit_code = 78\n");
	add_conn(&e, "lazy", "never_ready = true\n");
	start_daemon(&e);
	ck_assert(TH_WAIT(is_state(&e, "slow", "running") && is_state(&e, "bad", "failed"), 5000));

	/* Each answer comes after the state: checked at once, not waited for. */
	ck_assert_int_eq(ctl_args(&e, &out, "stop", "slow", "--wait", NULL), 0);
	free(out);
	ck_assert_str_eq(state_of(&e, "slow", NULL), "stopped");
	ck_assert_int_eq(ctl_args(&e, &out, "start", "--wait", "20", "slow"), 0);
	free(out);
	ck_assert_str_eq(state_of(&e, "slow", &pid), "running");
	ck_assert_int_eq(ctl_args(&e, &out, "restart", "slow", "--wait=20", NULL), 0);
	free(out);
	ck_assert_str_eq(state_of(&e, "slow", NULL), "running");
	ck_assert_int_ne(pid_of(&e, "slow"), pid);

	/* A state it does not leave by itself fails at once, with the reason. */
	ck_assert_int_eq(ctl_args(&e, &out, "start", "bad", "--wait", NULL), 1);
	ck_assert_msg(strstr(out, "bad is failed, not running: exited with status 78") != NULL,
		      "%s", out);
	free(out);
	ck_assert_int_eq(ctl_args(&e, &out, "start", "lazy", "--wait", "1"), 1);
	ck_assert_msg(strstr(out, "lazy is starting after 1 s, not running") != NULL, "%s", out);
	free(out);
	ck_assert_int_eq(ctl_args(&e, &out, "start", "lazy", "--wait=0", NULL), 64);
	free(out);
	stop_daemon(&e);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("supervisor");
	TCase *tc = tcase_create("daemon");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, restarts_crashed_worker_with_backoff);
	tcase_add_test(tc, backoff_resets_after_a_stable_run);
	tcase_add_test(tc, crash_loop_ends_in_failed_until_start);
	tcase_add_test(tc, exit_78_is_not_restarted);
	tcase_add_test(tc, hung_worker_is_killed_and_restarted);
	tcase_add_test(tc, worker_never_ready_stays_starting);
	tcase_add_test(tc, sigterm_stops_all_and_kills_the_stubborn_one);
	tcase_add_test(tc, sighup_applies_only_the_difference);
	tcase_add_test(tc, reload_errors_are_logged_once);
	tcase_add_test(tc, metrics_and_probes_are_served);
	tcase_add_test(tc, readyz_is_200_when_all_running);
	tcase_add_test(tc, worker_output_is_forwarded_line_by_line);
	tcase_add_test(tc, crash_right_after_ipc_200_times_others_stay_healthy);
	tcase_add_test(tc, control_socket_commands_and_errors);
	tcase_add_test(tc, cli_commands_against_the_daemon);
	tcase_add_test(tc, check_reports_problems_and_exit_code);
	suite_add_tcase(s, tc);

	tc = tcase_create("ops");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, reload_restarts_connectors_that_inherit_a_changed_default);
	tcase_add_test(tc, stopped_connector_stays_stopped_across_reload);
	tcase_add_test(tc, environment_disables_a_connector);
	tcase_add_test(tc, readyz_counts_a_broken_connector_file);
	tcase_add_test(tc, stop_waits_for_the_workers_own_drain_limit);
	tcase_add_test(tc, drain_cut_short_is_stopped_with_a_warning);
	tcase_add_test(tc, ctl_wait_returns_once_the_state_is_reached);
	suite_add_tcase(s, tc);

	tc = tcase_create("hostile");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, names_from_files_are_cleaned_and_long_values_not_echoed);
	tcase_add_test(tc, oversized_control_request_is_dropped_unread);
	tcase_add_test(tc, control_connections_are_capped);
	tcase_add_test(tc, http_answers_what_it_cannot_serve_with_a_status);
	tcase_add_test(tc, http_closes_slow_requests_and_serves_others);
	tcase_add_test(tc, http_caps_its_connections);
	tcase_add_test(tc, check_refuses_what_the_start_refuses);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
