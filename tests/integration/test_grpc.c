/*
 * The gRPC client against a real grpcio server (grpc_test_server.py):
 * calls, streams, status, deadlines, TLS, tokens, limits, reconnects.
 */
#include "harness.h"
#include "clock.h"
#include "h2/grpc.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <ev.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <nghttp2/nghttp2.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

struct res {
	bool done;
	int code;
	char msg[512];
	size_t nmsg;
	size_t bytes;
	bool in_order; /* for streams: message i is "<i>" */
	uint8_t last[256];
	size_t last_len;
};

struct srv {
	struct th_proc *proc;
	int port;
	char url[64];
	char port_s[16];
};

static void on_msg(void *arg, const uint8_t *buf, size_t len)
{
	struct res *r = arg;
	char want[32];
	int wl = snprintf(want, sizeof(want), "%zu", r->nmsg);

	if (len < (size_t)wl || memcmp(buf, want, (size_t)wl) != 0)
		r->in_order = false;
	r->nmsg++;
	r->bytes += len;
	r->last_len = len < sizeof(r->last) ? len : sizeof(r->last);
	memcpy(r->last, buf, r->last_len);
}

static void on_done(void *arg, int code, const char *msg)
{
	struct res *r = arg;

	ck_assert_msg(!r->done, "on_done called twice");
	r->done = true;
	r->code = code;
	snprintf(r->msg, sizeof(r->msg), "%s", msg);
}

static void res_init(struct res *r)
{
	memset(r, 0, sizeof(*r));
	r->in_order = true;
}

static void on_wait_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	*(bool *)w->data = true;
}

/* Runs the loop until *flag or timeout_ms; returns *flag. */
static bool run_until(struct ev_loop *loop, const bool *flag, int timeout_ms)
{
	bool expired = false;
	ev_timer t;

	ev_timer_init(&t, on_wait_timeout, timeout_ms / 1000.0, 0.);
	t.data = &expired;
	ev_timer_start(loop, &t);
	while (!*flag && !expired)
		ev_run(loop, EVRUN_ONCE);
	ev_timer_stop(loop, &t);
	return *flag;
}

static void server_start_on(struct srv *s, int port, const char *const *extra)
{
	char *argv[16];
	int n = 0;

	s->port = port;
	snprintf(s->port_s, sizeof(s->port_s), "%d", port);
	argv[n++] = (char *)th_python();
	argv[n++] = (char *)th_src_path("tests/integration/grpc_test_server.py");
	argv[n++] = "--port";
	argv[n++] = s->port_s;
	for (; extra != NULL && *extra != NULL && n < 15; extra++)
		argv[n++] = (char *)*extra;
	argv[n] = NULL;
	s->proc = th_spawn(th_tmpdir(), argv, NULL);
	ck_assert_msg(TH_WAIT(th_proc_output_contains(s->proc, "listening"), 20000),
		      "test server did not start");
}

static void server_start(struct srv *s, const char *const *extra, bool tls)
{
	server_start_on(s, th_free_port(), extra);
	snprintf(s->url, sizeof(s->url), "%s://127.0.0.1:%d", tls ? "https" : "http", s->port);
}

static struct dc_grpc_conn *conn_for(struct ev_loop *loop, const char *url, const char *token,
				     const char *ca, uint32_t max_msg, uint32_t keepalive_ms)
{
	struct dc_grpc_opts o = {.url = url,
				 .token = token,
				 .tls_ca = ca,
				 .max_msg_size = max_msg,
				 .keepalive_ms = keepalive_ms};
	struct dc_grpc_conn *c = NULL;

	ck_assert_int_eq(dc_grpc_conn_get(loop, &o, &c), 0);
	ck_assert_ptr_nonnull(c);
	return c;
}

static void call(struct ev_loop *loop, struct dc_grpc_conn *conn, const char *path, const char *req,
		 uint32_t deadline_ms, struct res *r)
{
	res_init(r);
	ck_assert_int_eq(dc_grpc_call_start(conn, path, (const uint8_t *)req, strlen(req),
					    deadline_ms, on_msg, on_done, r, NULL),
			 0);
	ck_assert_msg(!r->done, "on_done ran inside dc_grpc_call_start");
	ck_assert_msg(run_until(loop, &r->done, 30000), "call %s did not end", path);
}

static void finish(struct ev_loop *loop)
{
	dc_grpc_shutdown_all();
	ev_loop_destroy(loop);
}

static int count_sockets(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL) {
		char path[300], target[64];
		ssize_t l;

		snprintf(path, sizeof(path), "/proc/self/fd/%s", e->d_name);
		l = readlink(path, target, sizeof(target) - 1);
		if (l > 0) {
			target[l] = '\0';
			if (strncmp(target, "socket:", 7) == 0)
				n++;
		}
	}
	closedir(d);
	return n;
}

/* A CA, and a server certificate with subjectAltName san signed by it, in dir. */
static void make_certs(const char *dir, const char *prefix, const char *san)
{
	char script[2048], *out = NULL;
	char *argv[] = {"/bin/sh", "-c", script, NULL};
	int rc;

	snprintf(script, sizeof(script),
		 "set -e; cd '%s'; "
		 "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout %s-ca.key -out %s-ca.pem -days 2 -subj /CN=%s-ca 2>&1; "
		 "openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes "
		 "-keyout %s-srv.key -out %s-srv.csr -subj /CN=test-server 2>&1; "
		 "printf 'subjectAltName=%s\\n' > %s-ext.cnf; "
		 "openssl x509 -req -in %s-srv.csr -CA %s-ca.pem -CAkey %s-ca.key "
		 "-CAcreateserial -out %s-srv.pem -days 2 -extfile %s-ext.cnf 2>&1",
		 dir, prefix, prefix, prefix, prefix, prefix, san, prefix, prefix, prefix, prefix,
		 prefix, prefix);
	rc = th_run(argv, &out, 30000);
	ck_assert_msg(rc == 0, "openssl failed: %s", out ? out : "");
	free(out);
}

START_TEST(unary_echo_roundtrip)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct res r;
	struct dc_grpc_conn *conn;

	server_start(&s, NULL, false);
	conn = conn_for(loop, s.url, NULL, NULL, 0, 0);
	call(loop, conn, "/t.T/Echo", "hello grpc", 5000, &r);
	ck_assert_msg(r.code == DC_GRPC_OK, "code %d: %s", r.code, r.msg);
	ck_assert_uint_eq(r.nmsg, 1);
	ck_assert_uint_eq(r.last_len, 10);
	ck_assert_int_eq(memcmp(r.last, "hello grpc", 10), 0);
	ck_assert_int_eq(dc_grpc_conn_is_up(conn), 1);

	/* An empty message is a message too. */
	call(loop, conn, "/t.T/Echo", "", 0, &r);
	ck_assert_int_eq(r.code, DC_GRPC_OK);
	ck_assert_uint_eq(r.nmsg, 1);
	ck_assert_uint_eq(r.bytes, 0);
	finish(loop);
}
END_TEST

START_TEST(server_stream_delivers_10k_messages_in_order)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct res r;
	struct dc_grpc_conn *conn;

	server_start(&s, NULL, false);
	conn = conn_for(loop, s.url, NULL, NULL, 0, 0);
	call(loop, conn, "/t.T/Stream", "10000 100", 0, &r);
	ck_assert_msg(r.code == DC_GRPC_OK, "code %d: %s", r.code, r.msg);
	ck_assert_uint_eq(r.nmsg, 10000);
	ck_assert_uint_eq(r.bytes, 10000 * 100);
	ck_assert(r.in_order);
	finish(loop);
}
END_TEST

static void run_concurrent(struct ev_loop *loop, struct dc_grpc_conn *conn, int n, const char *path,
			   const char *req_fmt)
{
	struct res *rs = calloc((size_t)n, sizeof(*rs));
	char req[64];
	int ended = 0;
	bool all = false;

	ck_assert_ptr_nonnull(rs);
	for (int i = 0; i < n; i++) {
		res_init(&rs[i]);
		snprintf(req, sizeof(req), req_fmt, i);
		ck_assert_int_eq(dc_grpc_call_start(conn, path, (const uint8_t *)req, strlen(req),
						    20000, on_msg, on_done, &rs[i], NULL),
				 0);
	}
	for (th_deadline_t d = th_deadline(30000); !all && !th_expired(&d);) {
		ev_run(loop, EVRUN_ONCE);
		ended = 0;
		for (int i = 0; i < n; i++)
			ended += rs[i].done;
		all = ended == n;
	}
	ck_assert_msg(all, "%d of %d calls ended", ended, n);
	for (int i = 0; i < n; i++) {
		ck_assert_msg(rs[i].code == DC_GRPC_OK, "call %d: code %d: %s", i, rs[i].code,
			      rs[i].msg);
		ck_assert_uint_eq(rs[i].nmsg, 1);
		if (strcmp(path, "/t.T/Echo") == 0) {
			snprintf(req, sizeof(req), req_fmt, i);
			ck_assert_uint_eq(rs[i].last_len, strlen(req));
			ck_assert_int_eq(memcmp(rs[i].last, req, strlen(req)), 0);
		}
	}
	free(rs);
}

START_TEST(concurrent_calls_share_one_connection)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct dc_grpc_conn *conn, *again;
	int before;

	server_start(&s, NULL, false);
	before = count_sockets();
	conn = conn_for(loop, s.url, NULL, NULL, 0, 0);
	again = conn_for(loop, s.url, NULL, NULL, 0, 0);
	ck_assert_ptr_eq(conn, again);
	run_concurrent(loop, conn, 200, "/t.T/Echo", "payload-%d");
	ck_assert_int_eq(count_sockets() - before, 1);
	finish(loop);
}
END_TEST

START_TEST(calls_beyond_max_concurrent_streams_are_queued)
{
	static const char *const extra[] = {"--max-streams", "10", NULL};
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct res r;
	struct dc_grpc_conn *conn;

	server_start(&s, extra, false);
	conn = conn_for(loop, s.url, NULL, NULL, 0, 0);
	/* Let the server's SETTINGS arrive, so the limit is known. */
	call(loop, conn, "/t.T/Echo", "x", 5000, &r);
	run_concurrent(loop, conn, 60, "/t.T/Sleep", "0.05");
	finish(loop);
}
END_TEST

START_TEST(status_and_message_from_trailers)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct res r;
	struct dc_grpc_conn *conn;
	const char *text = "topic /default/x: 100% gone, \xc3\xbcnicode \xe2\x9c\x93";
	char req[256];

	server_start(&s, NULL, false);
	conn = conn_for(loop, s.url, NULL, NULL, 0, 0);
	snprintf(req, sizeof(req), "NOT_FOUND %s", text);
	call(loop, conn, "/t.T/Fail", req, 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_NOT_FOUND);
	ck_assert_str_eq(r.msg, text);
	ck_assert_uint_eq(r.nmsg, 0);
	finish(loop);
}
END_TEST

START_TEST(status_and_message_from_trailers_only)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct res r;
	struct dc_grpc_conn *conn;

	server_start(&s, NULL, false);
	conn = conn_for(loop, s.url, NULL, NULL, 0, 0);
	call(loop, conn, "/t.T/FailNow", "FAILED_PRECONDITION dispatch strategy: 50% off", 5000,
	     &r);
	ck_assert_int_eq(r.code, DC_GRPC_FAILED_PRECONDITION);
	ck_assert_str_eq(r.msg, "dispatch strategy: 50% off");
	call(loop, conn, "/t.T/NoSuchMethod", "", 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_UNIMPLEMENTED);
	finish(loop);
}
END_TEST

START_TEST(deadline_exceeded_then_connection_still_usable)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct res r;
	struct dc_grpc_conn *conn;
	uint64_t t0;

	server_start(&s, NULL, false);
	conn = conn_for(loop, s.url, NULL, NULL, 0, 0);
	t0 = dc_now_ms();
	call(loop, conn, "/t.T/Sleep", "5", 300, &r);
	ck_assert_int_eq(r.code, DC_GRPC_DEADLINE_EXCEEDED);
	ck_assert_str_eq(r.msg, "deadline of 300 ms exceeded");
	ck_assert_uint_lt(dc_now_ms() - t0, 3000);
	call(loop, conn, "/t.T/Echo", "after", 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_OK);
	finish(loop);
}
END_TEST

START_TEST(cancelled_call_never_completes)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct res r, rc;
	struct dc_grpc_conn *conn;
	struct dc_grpc_call *h = NULL;

	server_start(&s, NULL, false);
	conn = conn_for(loop, s.url, NULL, NULL, 0, 0);
	res_init(&rc);
	ck_assert_int_eq(dc_grpc_call_start(conn, "/t.T/Sleep", (const uint8_t *)"0.3", 3, 0,
					    on_msg, on_done, &rc, &h),
			 0);
	ck_assert_ptr_nonnull(h);
	call(loop, conn, "/t.T/Echo", "x", 5000, &r); /* the Sleep call is on the wire now */
	dc_grpc_call_cancel(h);
	call(loop, conn, "/t.T/Sleep", "0.5", 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_OK);
	ck_assert(!rc.done);
	finish(loop);
}
END_TEST

START_TEST(oversize_request_fails_at_once)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct res r;
	struct dc_grpc_conn *conn;
	size_t n = 4u * 1024 * 1024 + 1;
	uint8_t *big = calloc(1, n);

	ck_assert_ptr_nonnull(big);
	server_start(&s, NULL, false);
	conn = conn_for(loop, s.url, NULL, NULL, 0, 0);
	res_init(&r);
	ck_assert_int_eq(
		dc_grpc_call_start(conn, "/t.T/Echo", big, n, 0, on_msg, on_done, &r, NULL), 0);
	ck_assert(!r.done);
	ck_assert(run_until(loop, &r.done, 1000));
	ck_assert_int_eq(r.code, DC_GRPC_RESOURCE_EXHAUSTED);
	ck_assert_str_eq(r.msg, "message of 4194305 bytes exceeds the 4194304-byte limit");
	/* Exactly the limit is fine. */
	res_init(&r);
	ck_assert_int_eq(
		dc_grpc_call_start(conn, "/t.T/Echo", big, n - 1, 0, on_msg, on_done, &r, NULL), 0);
	ck_assert(run_until(loop, &r.done, 20000));
	ck_assert_msg(r.code == DC_GRPC_OK, "code %d: %s", r.code, r.msg);
	ck_assert_uint_eq(r.bytes, n - 1);
	free(big);
	finish(loop);
}
END_TEST

START_TEST(oversize_response_ends_call)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct res r;
	struct dc_grpc_conn *conn;

	server_start(&s, NULL, false);
	conn = conn_for(loop, s.url, NULL, NULL, 1024 * 1024, 0);
	call(loop, conn, "/t.T/Big", "2000000", 10000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_RESOURCE_EXHAUSTED);
	ck_assert_str_eq(r.msg, "response message of 2000000 bytes exceeds the 1048576-byte limit");
	ck_assert_uint_eq(r.nmsg, 0);
	call(loop, conn, "/t.T/Big", "1000000", 10000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_OK);
	ck_assert_uint_eq(r.bytes, 1000000);
	finish(loop);
}
END_TEST

START_TEST(connection_refused_is_reported_in_words)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct res r;
	struct dc_grpc_conn *conn;
	char url[64], want[128];
	int port = th_free_port();

	snprintf(url, sizeof(url), "http://127.0.0.1:%d", port);
	snprintf(want, sizeof(want), "connect to 127.0.0.1:%d: Connection refused", port);
	conn = conn_for(loop, url, NULL, NULL, 0, 0);
	call(loop, conn, "/t.T/Echo", "x", 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_UNAVAILABLE);
	ck_assert_str_eq(r.msg, want);
	ck_assert_int_eq(dc_grpc_conn_is_up(conn), 0);
	ck_assert_str_eq(dc_grpc_conn_last_error(conn), want);
	finish(loop);
}
END_TEST

static bool call_ok_eventually(struct ev_loop *loop, struct dc_grpc_conn *conn, int timeout_ms)
{
	struct res r;

	for (th_deadline_t d = th_deadline(timeout_ms); !th_expired(&d); th_pause(&d)) {
		call(loop, conn, "/t.T/Echo", "again", 2000, &r);
		if (r.code == DC_GRPC_OK)
			return true;
		ck_assert_int_eq(r.code, DC_GRPC_UNAVAILABLE);
	}
	return false;
}

START_TEST(server_killed_calls_fail_then_reconnect)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct res r, inflight;
	struct dc_grpc_conn *conn;

	server_start(&s, NULL, false);
	conn = conn_for(loop, s.url, NULL, NULL, 0, 0);
	call(loop, conn, "/t.T/Echo", "x", 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_OK);
	res_init(&inflight);
	ck_assert_int_eq(dc_grpc_call_start(conn, "/t.T/Sleep", (const uint8_t *)"30", 2, 0, on_msg,
					    on_done, &inflight, NULL),
			 0);
	/* Make sure the call reached the server before killing it. */
	call(loop, conn, "/t.T/Echo", "y", 5000, &r);
	th_proc_stop(s.proc, SIGKILL, 5000);
	ck_assert(run_until(loop, &inflight.done, 5000));
	ck_assert_int_eq(inflight.code, DC_GRPC_UNAVAILABLE);
	ck_assert_msg(strstr(inflight.msg, "lost") != NULL, "message: %s", inflight.msg);

	call(loop, conn, "/t.T/Echo", "z", 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_UNAVAILABLE);
	ck_assert_msg(strstr(r.msg, "Connection refused") != NULL, "message: %s", r.msg);

	server_start_on(&s, s.port, NULL);
	ck_assert(call_ok_eventually(loop, conn, 20000));
	ck_assert_int_eq(dc_grpc_conn_is_up(conn), 1);
	finish(loop);
}
END_TEST

START_TEST(stopped_server_is_noticed_by_ping)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct res r, inflight;
	struct dc_grpc_conn *conn;
	uint64_t t0;

	server_start(&s, NULL, false);
	conn = conn_for(loop, s.url, NULL, NULL, 0, 1000);
	call(loop, conn, "/t.T/Echo", "x", 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_OK);
	res_init(&inflight);
	ck_assert_int_eq(dc_grpc_call_start(conn, "/t.T/Sleep", (const uint8_t *)"60", 2, 0, on_msg,
					    on_done, &inflight, NULL),
			 0);
	call(loop, conn, "/t.T/Echo", "y", 5000, &r);
	ck_assert_int_eq(th_proc_kill(s.proc, SIGSTOP), 0);
	t0 = dc_now_ms();
	ck_assert(run_until(loop, &inflight.done, 10000));
	ck_assert_int_eq(inflight.code, DC_GRPC_UNAVAILABLE);
	ck_assert_msg(strstr(inflight.msg, "no PING answer in 1000 ms") != NULL, "message: %s",
		      inflight.msg);
	ck_assert_uint_lt(dc_now_ms() - t0, 4000);
	th_proc_kill(s.proc, SIGCONT);
	finish(loop);
}
END_TEST

static double tv_us(const struct timeval *a, const struct timeval *b)
{
	return (double)(a->tv_sec - b->tv_sec) * 1e6 + (double)(a->tv_usec - b->tv_usec);
}

START_TEST(tls_verifies_the_host_name)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *dir = th_tmpdir();
	char cert[512], key[512], ca[512], url[128];
	const char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
	struct srv s;
	struct res r;
	struct dc_grpc_conn *conn;

	make_certs(dir, "named", "DNS:localhost");
	snprintf(cert, sizeof(cert), "%s/named-srv.pem", dir);
	snprintf(key, sizeof(key), "%s/named-srv.key", dir);
	snprintf(ca, sizeof(ca), "%s/named-ca.pem", dir);
	server_start(&s, extra, true);

	/* A name: resolved without blocking, sent as SNI, matched against the SAN. */
	snprintf(url, sizeof(url), "https://localhost:%d", s.port);
	conn = conn_for(loop, url, NULL, ca, 0, 0);
	call(loop, conn, "/t.T/Echo", "x", 5000, &r);
	ck_assert_msg(r.code == DC_GRPC_OK, "code %d: %s", r.code, r.msg);

	/* The same server by IP address: the certificate does not name it. */
	conn = conn_for(loop, s.url, NULL, ca, 0, 0);
	call(loop, conn, "/t.T/Echo", "x", 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_UNAVAILABLE);
	ck_assert_msg(strstr(r.msg, "certificate verify failed") != NULL &&
			      strstr(r.msg, "mismatch") != NULL,
		      "message: %s", r.msg);

	/* A name that does not resolve says so. */
	conn = conn_for(loop, "https://no-such-host.invalid:1", NULL, ca, 0, 0);
	call(loop, conn, "/t.T/Echo", "x", 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_UNAVAILABLE);
	ck_assert_msg(strstr(r.msg, "cannot resolve no-such-host.invalid") != NULL, "message: %s",
		      r.msg);
	finish(loop);
}
END_TEST

START_TEST(tls_server_without_alpn_h2_is_refused_clearly)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *dir = th_tmpdir();
	char cert[512], key[512], ca[512], url[128], port[16];
	char *argv[] = {"/usr/bin/openssl",
			"s_server",
			"-quiet",
			"-accept",
			port,
			"-cert",
			cert,
			"-key",
			key,
			NULL};
	struct res r;
	struct dc_grpc_conn *conn;
	int p = th_free_port();

	make_certs(dir, "plain", "IP:127.0.0.1");
	snprintf(cert, sizeof(cert), "%s/plain-srv.pem", dir);
	snprintf(key, sizeof(key), "%s/plain-srv.key", dir);
	snprintf(ca, sizeof(ca), "%s/plain-ca.pem", dir);
	snprintf(port, sizeof(port), "%d", p);
	th_spawn(dir, argv, NULL);
	ck_assert(th_wait_port(p, 10000));

	snprintf(url, sizeof(url), "https://127.0.0.1:%d", p);
	conn = conn_for(loop, url, NULL, ca, 0, 0);
	call(loop, conn, "/t.T/Echo", "x", 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_UNAVAILABLE);
	ck_assert_msg(strstr(r.msg, "does not speak HTTP/2 (ALPN h2 not selected)") != NULL,
		      "message: %s", r.msg);
	finish(loop);
}
END_TEST

struct bench {
	struct dc_grpc_conn *conn;
	long started, ended, failed, total, msgs;
	uint8_t req[32];
	char last_error[256];
};

static void bench_start_one(struct bench *b);

static void bench_done(void *arg, int code, const char *msg)
{
	struct bench *b = arg;

	b->ended++;
	if (code != DC_GRPC_OK) {
		b->failed++;
		snprintf(b->last_error, sizeof(b->last_error), "%s: %s", dc_grpc_code_name(code),
			 msg);
	}
	if (b->started < b->total)
		bench_start_one(b);
}

static void bench_msg(void *arg, const uint8_t *buf, size_t len)
{
	struct bench *b = arg;

	if (len == sizeof(b->req) && memcmp(buf, b->req, len) == 0)
		b->msgs++;
}

static void bench_start_one(struct bench *b)
{
	b->started++;
	/* No ck_assert here: each one costs Check a write() to its pipe. */
	if (dc_grpc_call_start(b->conn, "/t.T/Echo", b->req, sizeof(b->req), 0, bench_msg,
			       bench_done, b, NULL) != 0) {
		b->ended++;
		b->failed++;
	}
}

START_TEST(goaway_moves_new_calls_to_a_new_connection)
{
	static const char *const extra[] = {"--max-age-ms", "300", NULL};
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct bench b = {.total = 1L << 40};
	uint64_t t0;

	server_start(&s, extra, false);
	b.conn = conn_for(loop, s.url, NULL, NULL, 0, 0);
	/* The server ends each connection after 300 ms with GOAWAY: no call may fail. */
	for (int i = 0; i < 16; i++)
		bench_start_one(&b);
	t0 = dc_now_ms();
	while (dc_now_ms() - t0 < 2000)
		ev_run(loop, EVRUN_ONCE);
	b.total = b.started;
	for (th_deadline_t d = th_deadline(20000); b.ended < b.total && !th_expired(&d);)
		ev_run(loop, EVRUN_ONCE);
	ck_assert_int_eq(b.ended, b.total);
	ck_assert_msg(b.failed == 0, "%ld of %ld calls failed: %s", b.failed, b.total,
		      b.last_error);
	ck_assert_int_gt(b.total, 100);
	finish(loop);
}
END_TEST

START_TEST(tls_with_ca_and_token)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *dir = th_tmpdir();
	char cert[512], key[512], ca[512];
	const char *extra[] = {"--tls-cert", cert, "--tls-key", key, "--token", "s3cret", NULL};
	struct srv s;
	struct res r;
	struct dc_grpc_conn *conn, *noauth;

	make_certs(dir, "good", "IP:127.0.0.1");
	snprintf(cert, sizeof(cert), "%s/good-srv.pem", dir);
	snprintf(key, sizeof(key), "%s/good-srv.key", dir);
	snprintf(ca, sizeof(ca), "%s/good-ca.pem", dir);
	server_start(&s, extra, true);

	conn = conn_for(loop, s.url, "s3cret", ca, 0, 0);
	call(loop, conn, "/t.T/Headers", "", 5000, &r);
	ck_assert_msg(r.code == DC_GRPC_OK, "code %d: %s", r.code, r.msg);
	r.last[r.last_len < sizeof(r.last) ? r.last_len : sizeof(r.last) - 1] = '\0';
	ck_assert_msg(strstr((char *)r.last, "authorization: Bearer s3cret") != NULL, "%s", r.last);
	ck_assert_msg(strstr((char *)r.last, "user-agent: danube-connect/") != NULL, "%s", r.last);
	/* grpc-timeout: the server sees a deadline of at most 5 s. */
	{
		const char *t = strstr((char *)r.last, "time-remaining: ");
		double left;

		ck_assert_ptr_nonnull(t);
		left = atof(t + 16);
		ck_assert_msg(left > 0.5 && left <= 5.0, "time remaining %f", left);
	}
	ck_assert_int_eq(dc_grpc_conn_is_up(conn), 1);

	noauth = conn_for(loop, s.url, NULL, ca, 0, 0);
	ck_assert_ptr_ne(noauth, conn);
	call(loop, noauth, "/t.T/Echo", "x", 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_UNAUTHENTICATED);
	ck_assert_str_eq(r.msg, "invalid token");
	finish(loop);
}
END_TEST

START_TEST(tls_with_wrong_ca_is_refused_clearly)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	const char *dir = th_tmpdir();
	char cert[512], key[512], ca[512];
	const char *extra[] = {"--tls-cert", cert, "--tls-key", key, NULL};
	struct srv s;
	struct res r;
	struct dc_grpc_conn *conn;

	make_certs(dir, "good", "IP:127.0.0.1");
	make_certs(dir, "other", "IP:127.0.0.1");
	snprintf(cert, sizeof(cert), "%s/good-srv.pem", dir);
	snprintf(key, sizeof(key), "%s/good-srv.key", dir);
	snprintf(ca, sizeof(ca), "%s/other-ca.pem", dir);
	server_start(&s, extra, true);

	conn = conn_for(loop, s.url, NULL, ca, 0, 0);
	call(loop, conn, "/t.T/Echo", "x", 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_UNAVAILABLE);
	ck_assert_msg(strstr(r.msg, "TLS handshake with 127.0.0.1:") != NULL &&
			      strstr(r.msg, "certificate verify failed") != NULL,
		      "message: %s", r.msg);

	/* Plain HTTP/2 to a TLS port is no good either, and says so. */
	snprintf(ca, sizeof(ca), "http://127.0.0.1:%d", s.port);
	conn = conn_for(loop, ca, NULL, NULL, 0, 0);
	call(loop, conn, "/t.T/Echo", "x", 5000, &r);
	ck_assert_int_ne(r.code, DC_GRPC_OK);
	finish(loop);
}
END_TEST

START_TEST(bench_unary_cpu_per_call)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct srv s;
	struct res r;
	struct bench b = {.total = 100000};
	const char *env = getenv("DC_GRPC_BENCH_CALLS");
	uint64_t cpu0, t0, cpu, wall;
	struct rusage ru0, ru1;

	if (env != NULL)
		b.total = atol(env);
	server_start(&s, NULL, false);
	b.conn = conn_for(loop, s.url, NULL, NULL, 0, 0);
	call(loop, b.conn, "/t.T/Echo", "warm", 5000, &r);
	ck_assert_int_eq(r.code, DC_GRPC_OK);
	getrusage(RUSAGE_SELF, &ru0);
	cpu0 = dc_cpu_us();
	t0 = dc_now_us();
	for (int i = 0; i < 64 && b.started < b.total; i++)
		bench_start_one(&b);
	for (th_deadline_t d = th_deadline(110000); b.ended < b.total && !th_expired(&d);)
		ev_run(loop, EVRUN_ONCE);
	cpu = dc_cpu_us() - cpu0;
	wall = dc_now_us() - t0;
	getrusage(RUSAGE_SELF, &ru1);
	ck_assert_int_eq(b.ended, b.total);
	ck_assert_int_eq(b.failed, 0);
	ck_assert_int_eq(b.msgs, b.total);
	printf("grpc bench: %ld unary calls, window 64: %.2f us CPU per call (client; "
	       "user %.2f, system %.2f), %.0f calls/s\n",
	       b.total, (double)cpu / (double)b.total,
	       tv_us(&ru1.ru_utime, &ru0.ru_utime) / b.total,
	       tv_us(&ru1.ru_stime, &ru0.ru_stime) / b.total, (double)b.total * 1e6 / (double)wall);
	fflush(stdout);
	finish(loop);
}
END_TEST

/*
 * A fast gRPC echo peer on nghttp2, run in a forked child: grpcio answers
 * one call per wake-up, so against it the client's figure is mostly the
 * kernel's per-packet cost. This peer answers whatever arrived in one write,
 * as a C++ gRPC server does under load.
 */
struct peer_stream {
	uint8_t buf[256];
	size_t len, off;
};

static ssize_t peer_body(nghttp2_session *ng, int32_t id, uint8_t *buf, size_t length,
			 uint32_t *flags, nghttp2_data_source *src, void *ud)
{
	static nghttp2_nv trailer[] = {
		{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE}};
	struct peer_stream *ps = src->ptr;
	size_t n = ps->len - ps->off;

	if (n > length)
		n = length;
	memcpy(buf, ps->buf + ps->off, n);
	ps->off += n;
	if (ps->off == ps->len) {
		*flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
		if (nghttp2_submit_trailer(ng, id, trailer, 1) != 0)
			return NGHTTP2_ERR_CALLBACK_FAILURE;
	}
	return (ssize_t)n;
}

static int peer_begin_headers(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	struct peer_stream *ps;

	if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
		return 0;
	ps = calloc(1, sizeof(*ps));
	if (ps == NULL)
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	return nghttp2_session_set_stream_user_data(ng, f->hd.stream_id, ps);
}

static int peer_data(nghttp2_session *ng, uint8_t flags, int32_t id, const uint8_t *data,
		     size_t len, void *ud)
{
	struct peer_stream *ps = nghttp2_session_get_stream_user_data(ng, id);

	if (ps == NULL || ps->len + len > sizeof(ps->buf))
		return NGHTTP2_ERR_CALLBACK_FAILURE;
	memcpy(ps->buf + ps->len, data, len);
	ps->len += len;
	return 0;
}

static int peer_frame(nghttp2_session *ng, const nghttp2_frame *f, void *ud)
{
	static nghttp2_nv hdrs[] = {
		{(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
		{(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
		 NGHTTP2_NV_FLAG_NONE},
	};
	struct peer_stream *ps;
	nghttp2_data_provider prd;

	if ((f->hd.type != NGHTTP2_DATA && f->hd.type != NGHTTP2_HEADERS) ||
	    !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
		return 0;
	ps = nghttp2_session_get_stream_user_data(ng, f->hd.stream_id);
	if (ps == NULL)
		return 0;
	prd.source.ptr = ps;
	prd.read_callback = peer_body;
	return nghttp2_submit_response(ng, f->hd.stream_id, hdrs, 2, &prd) == 0
		       ? 0
		       : NGHTTP2_ERR_CALLBACK_FAILURE;
}

static int peer_close(nghttp2_session *ng, int32_t id, uint32_t code, void *ud)
{
	free(nghttp2_session_get_stream_user_data(ng, id));
	return 0;
}

static void prctl_pdeathsig(void)
{
	/* The peer must not outlive a failed test. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

static void peer_serve(int lfd)
{
	static uint8_t in[65536], out[1 << 20];
	nghttp2_session_callbacks *cbs;
	nghttp2_session *ng;
	nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000},
				       {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
	int fd = accept(lfd, NULL, NULL), one = 1;

	if (fd < 0 || nghttp2_session_callbacks_new(&cbs) != 0)
		_exit(1);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	nghttp2_session_callbacks_set_on_begin_headers_callback(cbs, peer_begin_headers);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, peer_data);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, peer_frame);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, peer_close);
	if (nghttp2_session_server_new(&ng, cbs, NULL) != 0 ||
	    nghttp2_submit_settings(ng, NGHTTP2_FLAG_NONE, iv, 2) != 0 ||
	    nghttp2_session_set_local_window_size(ng, NGHTTP2_FLAG_NONE, 0, 1 << 26) != 0)
		_exit(1);
	for (;;) {
		size_t olen = 0;
		const uint8_t *p;
		ssize_t n;

		while (olen < sizeof(out) - 65536 && (n = nghttp2_session_mem_send(ng, &p)) > 0) {
			memcpy(out + olen, p, (size_t)n);
			olen += (size_t)n;
		}
		for (size_t o = 0; o < olen; o += (size_t)n) {
			n = send(fd, out + o, olen - o, MSG_NOSIGNAL);
			if (n <= 0)
				_exit(0);
		}
		if (olen > 0 && nghttp2_session_want_write(ng))
			continue;
		n = recv(fd, in, sizeof(in), 0);
		if (n <= 0 || nghttp2_session_mem_recv(ng, in, (size_t)n) < 0)
			_exit(0);
	}
}

START_TEST(bench_unary_cpu_per_call_fast_peer)
{
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	struct bench b = {.total = 100000};
	const char *env = getenv("DC_GRPC_BENCH_CALLS");
	struct rusage ru0, ru1;
	uint64_t cpu0, t0, cpu, wall;
	char url[64];
	int lfd, status;
	long total;
	pid_t pid;

	if (env != NULL)
		b.total = atol(env);
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 4), 0);
	ck_assert_int_eq(getsockname(lfd, (struct sockaddr *)&sa, &sl), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		prctl_pdeathsig();
		peer_serve(lfd);
	}
	close(lfd);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
	b.conn = conn_for(loop, url, NULL, NULL, 0, 0);
	total = b.total;
	b.total = 64;
	for (int i = 0; i < 64; i++)
		bench_start_one(&b);
	while (b.ended < 64 && b.failed == 0)
		ev_run(loop, EVRUN_ONCE);
	ck_assert_msg(b.failed == 0, "warm-up failed: %s", b.last_error);
	b.started = b.ended = 0;
	b.total = total;

	getrusage(RUSAGE_SELF, &ru0);
	cpu0 = dc_cpu_us();
	t0 = dc_now_us();
	for (int i = 0; i < 64 && b.started < b.total; i++)
		bench_start_one(&b);
	for (th_deadline_t d = th_deadline(110000); b.ended < b.total && !th_expired(&d);)
		ev_run(loop, EVRUN_ONCE);
	cpu = dc_cpu_us() - cpu0;
	wall = dc_now_us() - t0;
	getrusage(RUSAGE_SELF, &ru1);
	ck_assert_int_eq(b.ended, b.total);
	ck_assert_msg(b.failed == 0, "%ld calls failed: %s", b.failed, b.last_error);
	ck_assert_int_eq(b.msgs, b.total + 64);
	printf("grpc bench (fast C peer): %ld unary calls, window 64: %.2f us CPU per call "
	       "(client; user %.2f, system %.2f), %.0f calls/s\n",
	       b.total, (double)cpu / (double)b.total,
	       tv_us(&ru1.ru_utime, &ru0.ru_utime) / b.total,
	       tv_us(&ru1.ru_stime, &ru0.ru_stime) / b.total, (double)b.total * 1e6 / (double)wall);
	fflush(stdout);
	finish(loop);
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("grpc");
	TCase *tc = tcase_create("grpc");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, unary_echo_roundtrip);
	tcase_add_test(tc, server_stream_delivers_10k_messages_in_order);
	tcase_add_test(tc, concurrent_calls_share_one_connection);
	tcase_add_test(tc, calls_beyond_max_concurrent_streams_are_queued);
	tcase_add_test(tc, status_and_message_from_trailers);
	tcase_add_test(tc, status_and_message_from_trailers_only);
	tcase_add_test(tc, deadline_exceeded_then_connection_still_usable);
	tcase_add_test(tc, cancelled_call_never_completes);
	tcase_add_test(tc, oversize_request_fails_at_once);
	tcase_add_test(tc, oversize_response_ends_call);
	tcase_add_test(tc, connection_refused_is_reported_in_words);
	tcase_add_test(tc, server_killed_calls_fail_then_reconnect);
	tcase_add_test(tc, stopped_server_is_noticed_by_ping);
	tcase_add_test(tc, tls_with_ca_and_token);
	tcase_add_test(tc, tls_with_wrong_ca_is_refused_clearly);
	tcase_add_test(tc, tls_verifies_the_host_name);
	tcase_add_test(tc, tls_server_without_alpn_h2_is_refused_clearly);
	tcase_add_test(tc, goaway_moves_new_calls_to_a_new_connection);
	suite_add_tcase(s, tc);
	/* Its own case, so CK_RUN_CASE=bench runs it alone. */
	tc = tcase_create("bench");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, bench_unary_cpu_per_call);
	tcase_add_test(tc, bench_unary_cpu_per_call_fast_peer);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
