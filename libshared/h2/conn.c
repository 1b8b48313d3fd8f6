/*
 * gRPC sessions on the caller's libev loop: connect (resolve.c, then TCP,
 * then tls.c), the nghttp2 session's I/O, keepalive, reconnect with backoff.
 */
#include "h2/internal.h"
#include "log.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define STREAM_WINDOW       (16 * 1024 * 1024)
#define CONN_WINDOW         (32 * 1024 * 1024)
#define OUT_HIGH_WATER      (256 * 1024)
#define READ_CHUNK          (64 * 1024)
#define BACKOFF_INITIAL_MS  100
#define BACKOFF_MAX_MS      10000
#define PING_TIMEOUT_MAX_MS 5000
#define PREPARE_ROUNDS      8

static bool sess_flush(struct dc_h2_sess *s, bool *progress);
static void sess_lost(struct dc_h2_sess *s, const char *reason);
static void sess_connect_failed(struct dc_h2_sess *s, const char *msg);
static int sess_try_connect(struct dc_h2_sess *s, char *err, size_t errlen);
static void on_rio(struct ev_loop *loop, ev_io *w, int revents);
static void on_wio(struct ev_loop *loop, ev_io *w, int revents);
static void on_connect_timeout(struct ev_loop *loop, ev_timer *w, int revents);
static void on_keepalive(struct ev_loop *loop, ev_timer *w, int revents);
static void on_ping_timeout(struct ev_loop *loop, ev_timer *w, int revents);

/* A loss or failed connect, for the listeners at the end of the loop iteration. */
static void conn_note_down(struct dc_grpc_conn *conn, const char *msg)
{
	conn->downs++;
	snprintf(conn->down_reason, sizeof(conn->down_reason), "%s", msg);
}

/* ---------------------------------------------------------------- teardown */

static void sess_stop_watchers(struct dc_h2_sess *s)
{
	struct ev_loop *loop = s->conn->loop;

	ev_io_stop(loop, &s->rio);
	ev_io_stop(loop, &s->wio);
	ev_timer_stop(loop, &s->connect_timer);
	ev_timer_stop(loop, &s->ka_timer);
	ev_timer_stop(loop, &s->ping_timer);
	ev_timer_stop(loop, &s->res_timer);
}

static void sess_close_transport(struct dc_h2_sess *s)
{
	sess_stop_watchers(s);
	dc_h2_tls_close(s);
	if (s->fd >= 0) {
		close(s->fd);
		s->fd = -1;
	}
}

/*
 * Frees the session and ends each of its calls with code/msg. The caller's
 * callbacks may start new calls meanwhile: they go to a new session.
 */
static void sess_teardown(struct dc_h2_sess *s, int code, const char *msg)
{
	struct dc_grpc_conn *conn = s->conn;

	if (conn->sess == s)
		conn->sess = NULL;
	dc_h2_list_del(&s->link);
	sess_close_transport(s);
	if (s->ng != NULL) {
		nghttp2_session_del(s->ng);
		s->ng = NULL;
	}
	while (!dc_h2_list_empty(&s->calls)) {
		struct dc_grpc_call *c = DC_H2_CONTAINER(s->calls.next, struct dc_grpc_call, link);

		dc_h2_list_del(&c->link);
		s->ncalls--;
		dc_h2_call_finish(c, code, msg);
		dc_h2_call_free(c);
	}
	if (s->res != NULL)
		dc_h2_resolve_abandon(s->res);
	if (s->ai_list != NULL)
		freeaddrinfo(s->ai_list);
	free(s->out);
	free(s);
}

static void sess_lost(struct dc_h2_sess *s, const char *reason)
{
	struct dc_grpc_conn *conn = s->conn;
	char msg[sizeof(conn->last_error)];

	snprintf(msg, sizeof(msg), "connection to %s lost: %s", conn->authority, reason);
	if (conn->sess == s) {
		snprintf(conn->last_error, sizeof(conn->last_error), "%s", msg);
		conn_note_down(conn, msg);
		/* It was up: the next call reconnects at once. */
		dc_backoff_reset(&conn->backoff);
	}
	/* Losing an idle connection costs nothing: the next call reconnects. */
	if (s->ncalls > 0)
		dc_log_warn("gRPC: %s", msg);
	else if (conn->sess == s)
		dc_log_info("gRPC: %s", msg);
	sess_teardown(s, DC_GRPC_UNAVAILABLE, msg);
}

static void fail_waiting(struct dc_grpc_conn *conn, int code, const char *msg, bool defer)
{
	while (!dc_h2_list_empty(&conn->waiting)) {
		struct dc_grpc_call *c =
			DC_H2_CONTAINER(conn->waiting.next, struct dc_grpc_call, link);

		dc_h2_list_del(&c->link);
		if (defer) {
			dc_h2_call_defer(c, code, msg);
		} else {
			dc_h2_call_finish(c, code, msg);
			dc_h2_call_free(c);
		}
	}
}

/*
 * A connect attempt failed for good (every address tried). Waiting calls
 * are failed through the loop: this may run inside dc_grpc_call_start.
 */
static void sess_connect_failed(struct dc_h2_sess *s, const char *msg)
{
	struct dc_grpc_conn *conn = s->conn;
	uint64_t delay;

	snprintf(conn->last_error, sizeof(conn->last_error), "%s", msg);
	conn_note_down(conn, msg);
	sess_teardown(s, DC_GRPC_UNAVAILABLE, msg);
	delay = dc_backoff_next(&conn->backoff);
	dc_log_warn("gRPC: %s (retrying in %llu ms)", msg, (unsigned long long)delay);
	conn->in_backoff = true;
	ev_timer_set(&conn->backoff_timer, (double)delay / 1000.0, 0.);
	ev_timer_start(conn->loop, &conn->backoff_timer);
	fail_waiting(conn, DC_GRPC_UNAVAILABLE, msg, true);
}

/* ---------------------------------------------------------------- socket I/O
 */

/* A plain socket's recv() or send() result: n, -EAGAIN, or -EIO with err filled. */
static ssize_t plain_result(ssize_t n, char *err, size_t errlen)
{
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
		return -EAGAIN;
	snprintf(err, errlen, "%s", strerror(errno));
	return -EIO;
}

/* > 0 bytes, 0 end of stream, -EAGAIN, or -EIO with err filled. */
static ssize_t sock_read(struct dc_h2_sess *s, uint8_t *buf, size_t len, char *err, size_t errlen)
{
	if (s->ssl != NULL)
		return dc_h2_tls_read(s, buf, len, err, errlen);
	return plain_result(recv(s->fd, buf, len, 0), err, errlen);
}

static ssize_t sock_write(struct dc_h2_sess *s, const uint8_t *buf, size_t len, char *err,
			  size_t errlen)
{
	if (s->ssl != NULL)
		return dc_h2_tls_write(s, buf, len, err, errlen);
	return plain_result(send(s->fd, buf, len, MSG_NOSIGNAL), err, errlen);
}

static int out_append(struct dc_h2_sess *s, const uint8_t *p, size_t n)
{
	if (s->out_off > 0 && s->out_len + n > s->out_cap) {
		memmove(s->out, s->out + s->out_off, s->out_len - s->out_off);
		s->out_len -= s->out_off;
		s->out_off = 0;
	}
	if (s->out_len + n > s->out_cap) {
		size_t cap = s->out_cap ? s->out_cap : 16384;
		uint8_t *nb;

		while (cap < s->out_len + n)
			cap *= 2;
		nb = realloc(s->out, cap);
		if (nb == NULL)
			return -ENOMEM;
		s->out = nb;
		s->out_cap = cap;
	}
	memcpy(s->out + s->out_len, p, n);
	s->out_len += n;
	return 0;
}

/*
 * After I/O: a session that got GOAWAY takes no new calls (they go to a
 * new connection), and one nghttp2 is done with is closed. Returns false
 * when the session was freed.
 */
static bool sess_check_done(struct dc_h2_sess *s)
{
	struct dc_grpc_conn *conn = s->conn;

	if (s->goaway && conn->sess == s)
		conn->sess = NULL;
	/* A retired session (GOAWAY, stream ids used up) goes once its calls have
	 * ended. */
	if (conn->sess != s && s->ncalls == 0 && s->out_off == s->out_len) {
		sess_teardown(s, DC_GRPC_UNAVAILABLE, "connection retired");
		return false;
	}
	if (!nghttp2_session_want_read(s->ng) && !nghttp2_session_want_write(s->ng) &&
	    s->out_off == s->out_len) {
		sess_lost(s, s->goaway ? "the server closed the connection (GOAWAY)"
				       : "the session ended");
		return false;
	}
	return true;
}

/* Hands nghttp2's pending frames to the socket, coalesced into few writes. */
static bool sess_flush(struct dc_h2_sess *s, bool *progress)
{
	char err[512];

	if (s->phase != DC_H2_UP || ev_is_active(&s->wio))
		return true;
	for (;;) {
		while (s->out_len - s->out_off < OUT_HIGH_WATER) {
			const uint8_t *p;
			ssize_t n = nghttp2_session_mem_send(s->ng, &p);

			if (n < 0) {
				sess_lost(s, nghttp2_strerror((int)n));
				return false;
			}
			if (n == 0)
				break;
			if (out_append(s, p, (size_t)n) != 0) {
				sess_lost(s, "out of memory");
				return false;
			}
		}
		if (s->out_off == s->out_len)
			break;
		ssize_t w = sock_write(s, s->out + s->out_off, s->out_len - s->out_off, err,
				       sizeof(err));

		if (w == -EAGAIN) {
			ev_io_start(s->conn->loop, &s->wio);
			break;
		}
		if (w == -EINPROGRESS)
			break;
		if (w < 0) {
			sess_lost(s, err);
			return false;
		}
		*progress = true;
		s->out_off += (size_t)w;
		if (s->out_off == s->out_len)
			s->out_off = s->out_len = 0;
	}
	return sess_check_done(s);
}

static void sess_read(struct dc_h2_sess *s)
{
	uint8_t buf[READ_CHUNK];
	char err[512];

	for (int i = 0;; i++) {
		ssize_t n = sock_read(s, buf, sizeof(buf), err, sizeof(err));

		if (n == -EAGAIN)
			break;
		if (n == 0) {
			sess_lost(s, "the server closed the connection");
			return;
		}
		if (n < 0) {
			sess_lost(s, err);
			return;
		}
		ssize_t rv = nghttp2_session_mem_recv(s->ng, buf, (size_t)n);

		if (rv < 0) {
			sess_lost(s, nghttp2_strerror((int)rv));
			return;
		}
		/*
		 * TLS may hold decrypted bytes the socket no longer signals:
		 * drain it. A plain socket is level-triggered: a few reads
		 * per wake-up keep things fair.
		 */
		if (s->ssl == NULL && ((size_t)n < sizeof(buf) || i >= 4))
			break;
	}
	sess_check_done(s);
}

/* ---------------------------------------------------------------- session
 * setup */

static void sess_up(struct dc_h2_sess *s)
{
	struct dc_grpc_conn *conn = s->conn;
	nghttp2_session_callbacks *cbs;
	nghttp2_settings_entry iv[] = {
		{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
		{NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, STREAM_WINDOW},
		{NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, 1024 * 1024},
	};
	int rv;

	ev_timer_stop(conn->loop, &s->connect_timer);
	ev_io_stop(conn->loop, &s->wio);
	rv = nghttp2_session_callbacks_new(&cbs);
	if (rv != 0) {
		sess_connect_failed(s, "out of memory");
		return;
	}
	dc_h2_callbacks_setup(cbs);
	rv = nghttp2_session_client_new(&s->ng, cbs, s);
	nghttp2_session_callbacks_del(cbs);
	if (rv == 0)
		rv = nghttp2_submit_settings(s->ng, NGHTTP2_FLAG_NONE, iv,
					     sizeof(iv) / sizeof(iv[0]));
	/* The connection window, so many streams of small messages do not stall. */
	if (rv == 0)
		rv = nghttp2_session_set_local_window_size(s->ng, NGHTTP2_FLAG_NONE, 0,
							   CONN_WINDOW);
	if (rv != 0) {
		char msg[200];

		snprintf(msg, sizeof(msg), "HTTP/2 session with %s: %s", conn->authority,
			 nghttp2_strerror(rv));
		sess_connect_failed(s, msg);
		return;
	}
	s->phase = DC_H2_UP;
	ev_io_start(conn->loop, &s->rio);
	ev_timer_start(conn->loop, &s->ka_timer);
	dc_backoff_reset(&conn->backoff);
	conn->last_error[0] = '\0';
	dc_log_debug("gRPC: connected to %s%s", conn->authority, s->ssl ? " (TLS)" : "");
	while (!dc_h2_list_empty(&conn->waiting)) {
		struct dc_grpc_call *c =
			DC_H2_CONTAINER(conn->waiting.next, struct dc_grpc_call, link);

		dc_h2_list_del(&c->link);
		dc_h2_call_submit(s, c);
	}
}

static void tls_step(struct dc_h2_sess *s)
{
	struct ev_loop *loop = s->conn->loop;
	char err[512];

	switch (dc_h2_tls_handshake(s, err, sizeof(err))) {
	case DC_H2_TLS_DONE:
		ev_io_stop(loop, &s->rio);
		sess_up(s);
		return;
	case DC_H2_TLS_WANT_READ:
		ev_io_stop(loop, &s->wio);
		ev_io_start(loop, &s->rio);
		return;
	case DC_H2_TLS_WANT_WRITE:
		ev_io_stop(loop, &s->rio);
		ev_io_start(loop, &s->wio);
		return;
	default:
		sess_connect_failed(s, err);
	}
}

/* The TCP connection is established: TLS or straight to HTTP/2. */
static void tcp_connected(struct dc_h2_sess *s)
{
	char err[512];

	if (!s->conn->tls) {
		sess_up(s);
		return;
	}
	if (dc_h2_tls_start(s, err, sizeof(err)) != 0) {
		sess_connect_failed(s, err);
		return;
	}
	tls_step(s);
}

static void on_rio(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dc_h2_sess *s = w->data;

	if (s->phase == DC_H2_TLS_HANDSHAKE)
		tls_step(s);
	else if (s->phase == DC_H2_UP)
		sess_read(s);
}

static void on_wio(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dc_h2_sess *s = w->data;
	char err[512];
	int soerr = 0;
	socklen_t sl = sizeof(soerr);

	switch (s->phase) {
	case DC_H2_TCP_CONNECTING:
		ev_io_stop(loop, w);
		if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
			soerr = errno;
		if (soerr == 0) {
			tcp_connected(s);
			return;
		}
		snprintf(err, sizeof(err), "connect to %s: %s", s->conn->authority,
			 strerror(soerr));
		close(s->fd);
		s->fd = -1;
		s->ai_cur = s->ai_cur->ai_next;
		if (s->ai_cur == NULL || sess_try_connect(s, err, sizeof(err)) != 0)
			sess_connect_failed(s, err);
		return;
	case DC_H2_RESOLVING:
		return;
	case DC_H2_TLS_HANDSHAKE:
		tls_step(s);
		return;
	case DC_H2_UP: {
		bool progress = false;

		ev_io_stop(loop, w);
		sess_flush(s, &progress);
		return;
	}
	}
}

static void on_connect_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc_h2_sess *s = w->data;
	char msg[512];

	snprintf(msg, sizeof(msg), "connect to %s: %s timed out after %u ms", s->conn->authority,
		 s->phase == DC_H2_RESOLVING       ? "name resolution"
		 : s->phase == DC_H2_TLS_HANDSHAKE ? "TLS handshake"
						   : "TCP connect",
		 s->conn->connect_timeout_ms);
	sess_connect_failed(s, msg);
}

static void on_keepalive(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc_h2_sess *s = w->data;
	uint32_t timeout_ms = s->conn->keepalive_ms;

	/*
	 * Only while calls are in flight: an idle connection has nothing to
	 * lose, and gRPC servers punish pings without calls (too_many_pings).
	 */
	if (s->ncalls == 0 || s->ping_outstanding || s->ng == NULL)
		return;
	if (nghttp2_submit_ping(s->ng, NGHTTP2_FLAG_NONE, NULL) != 0)
		return;
	if (timeout_ms > PING_TIMEOUT_MAX_MS)
		timeout_ms = PING_TIMEOUT_MAX_MS;
	s->ping_outstanding = true;
	s->ping_timeout_ms = timeout_ms;
	ev_timer_set(&s->ping_timer, timeout_ms / 1000.0, 0.);
	ev_timer_start(loop, &s->ping_timer);
}

static void on_ping_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc_h2_sess *s = w->data;
	char reason[64];

	snprintf(reason, sizeof(reason), "no PING answer in %u ms", s->ping_timeout_ms);
	sess_lost(s, reason);
}

/*
 * Tries ai_cur and the addresses after it: 0 when a connect is under way,
 * else -errno of the last one tried, with err filled.
 */
static int sess_try_connect(struct dc_h2_sess *s, char *err, size_t errlen)
{
	struct dc_grpc_conn *conn = s->conn;
	int rv = -EHOSTUNREACH;

	for (; s->ai_cur != NULL; s->ai_cur = s->ai_cur->ai_next) {
		struct addrinfo *ai = s->ai_cur;
		int one = 1;

		s->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			       ai->ai_protocol);
		if (s->fd < 0) {
			rv = -errno;
			snprintf(err, errlen, "connect to %s: socket: %s", conn->authority,
				 strerror(-rv));
			continue;
		}
		/* Small frames are latency; nghttp2 output is coalesced by us already. */
		setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		ev_io_set(&s->rio, s->fd, EV_READ);
		ev_io_set(&s->wio, s->fd, EV_WRITE);
		if (connect(s->fd, ai->ai_addr, ai->ai_addrlen) == 0 || errno == EINPROGRESS) {
			s->phase = DC_H2_TCP_CONNECTING;
			ev_io_start(conn->loop, &s->wio);
			return 0;
		}
		rv = -errno;
		snprintf(err, errlen, "connect to %s: %s", conn->authority, strerror(-rv));
		close(s->fd);
		s->fd = -1;
	}
	return rv;
}

static void sess_addresses_ready(struct dc_h2_sess *s)
{
	char err[512];

	s->ai_cur = s->ai_list;
	if (sess_try_connect(s, err, sizeof(err)) != 0)
		sess_connect_failed(s, err);
}

static void resolve_failed(struct dc_h2_sess *s, int rv)
{
	char err[512];

	snprintf(err, sizeof(err), "connect to %s: cannot resolve %s: %s", s->conn->authority,
		 s->conn->host, rv == EAI_SYSTEM ? strerror(errno) : gai_strerror(rv));
	sess_connect_failed(s, err);
}

static void on_resolve_poll(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc_h2_sess *s = w->data;
	int rv = dc_h2_resolve_poll(s->res, &s->ai_list);

	if (rv == EAI_INPROGRESS)
		return;
	ev_timer_stop(loop, w);
	s->res = NULL;
	if (rv != 0) {
		resolve_failed(s, rv);
		return;
	}
	sess_addresses_ready(s);
}

static int resolve_start(struct dc_h2_sess *s)
{
	int rv = dc_h2_resolve_start(s->conn->host, s->conn->port, &s->res);

	if (rv != 0)
		return rv;
	s->phase = DC_H2_RESOLVING;
	ev_timer_start(s->conn->loop, &s->res_timer);
	return 0;
}

static void sess_start(struct dc_grpc_conn *conn)
{
	struct dc_h2_sess *s = calloc(1, sizeof(*s));
	int rv;

	if (s == NULL) {
		snprintf(conn->last_error, sizeof(conn->last_error), "connect to %s: out of memory",
			 conn->authority);
		return;
	}
	s->conn = conn;
	s->fd = -1;
	dc_h2_list_init(&s->calls);
	ev_io_init(&s->rio, on_rio, -1, EV_READ);
	ev_io_init(&s->wio, on_wio, -1, EV_WRITE);
	ev_timer_init(&s->connect_timer, on_connect_timeout, conn->connect_timeout_ms / 1000.0, 0.);
	ev_timer_init(&s->ka_timer, on_keepalive, conn->keepalive_ms / 1000.0,
		      conn->keepalive_ms / 1000.0);
	ev_timer_init(&s->ping_timer, on_ping_timeout, 1., 0.);
	ev_timer_init(&s->res_timer, on_resolve_poll, 0.001, 0.002);
	s->rio.data = s->wio.data = s->connect_timer.data = s->ka_timer.data = s->ping_timer.data =
		s->res_timer.data = s;
	dc_h2_list_add_tail(&conn->sessions, &s->link);
	conn->sess = s;
	ev_timer_start(conn->loop, &s->connect_timer);

	if (conn->host_is_ip) {
		/* A numeric address resolves without I/O. */
		struct addrinfo hints = {.ai_family = AF_UNSPEC,
					 .ai_socktype = SOCK_STREAM,
					 .ai_flags = AI_NUMERICSERV | AI_NUMERICHOST};

		rv = getaddrinfo(conn->host, conn->port, &hints, &s->ai_list);
		if (rv != 0) {
			s->ai_list = NULL;
			resolve_failed(s, rv);
			return;
		}
		sess_addresses_ready(s);
		return;
	}
	rv = resolve_start(s);
	if (rv != 0)
		resolve_failed(s, rv);
}

bool dc_h2_conn_activate(struct dc_grpc_conn *conn)
{
	if (conn->sess != NULL)
		return true;
	if (conn->in_backoff)
		return false;
	sess_start(conn);
	return conn->sess != NULL;
}

/* ---------------------------------------------------------------- loop
 * watchers */

void dc_h2_conn_kick(struct dc_grpc_conn *conn)
{
	ev_idle_start(conn->loop, &conn->kick);
}

static void on_kick(struct ev_loop *loop, ev_idle *w, int revents)
{
	ev_idle_stop(loop, w);
}

/*
 * Once per loop iteration, before it blocks: deliver deferred completions
 * and write what every session has queued, so the calls made during one
 * iteration leave in one write; then tell the listeners about state changes.
 */
static void on_prepare(struct ev_loop *loop, ev_prepare *w, int revents)
{
	struct dc_grpc_conn *conn = w->data;
	bool busy = true;

	for (int round = 0; busy && round < PREPARE_ROUNDS; round++) {
		bool progress = false;

		while (!dc_h2_list_empty(&conn->deferred)) {
			dc_h2_call_deliver_deferred(
				DC_H2_CONTAINER(conn->deferred.next, struct dc_grpc_call, link));
			progress = true;
		}
		for (struct dc_h2_link *l = conn->sessions.next, *next; l != &conn->sessions;
		     l = next) {
			next = l->next;
			sess_flush(DC_H2_CONTAINER(l, struct dc_h2_sess, link), &progress);
		}
		busy = progress;
	}
	/* Callbacks keep adding work: come back without blocking. */
	if (busy)
		dc_h2_conn_kick(conn);
	dc_h2_conn_tell_state(conn);
}

static void on_backoff(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc_grpc_conn *conn = w->data;

	conn->in_backoff = false;
	/* Reconnect in the background, so the next call finds the connection up. */
	dc_h2_conn_activate(conn);
}

void dc_h2_conn_attach(struct dc_grpc_conn *conn)
{
	struct ev_loop *loop = conn->loop;

	dc_backoff_init(&conn->backoff, BACKOFF_INITIAL_MS, BACKOFF_MAX_MS, 0);
	ev_timer_init(&conn->backoff_timer, on_backoff, 0., 0.);
	conn->backoff_timer.data = conn;
	ev_idle_init(&conn->kick, on_kick);
	conn->kick.data = conn;
	ev_prepare_init(&conn->prep, on_prepare);
	conn->prep.data = conn;
	ev_prepare_start(loop, &conn->prep);
	/* The flusher alone must not keep the caller's loop running. */
	ev_unref(loop);
}

void dc_h2_conn_detach(struct dc_grpc_conn *conn, const char *msg)
{
	ev_timer_stop(conn->loop, &conn->backoff_timer);
	ev_idle_stop(conn->loop, &conn->kick);
	if (ev_is_active(&conn->prep)) {
		ev_ref(conn->loop);
		ev_prepare_stop(conn->loop, &conn->prep);
	}
	while (!dc_h2_list_empty(&conn->sessions))
		sess_teardown(DC_H2_CONTAINER(conn->sessions.next, struct dc_h2_sess, link),
			      DC_GRPC_CANCELLED, msg);
	fail_waiting(conn, DC_GRPC_CANCELLED, msg, false);
	while (!dc_h2_list_empty(&conn->deferred)) {
		struct dc_grpc_call *c =
			DC_H2_CONTAINER(conn->deferred.next, struct dc_grpc_call, link);

		dc_h2_list_del(&c->link);
		dc_h2_call_finish(c, DC_GRPC_CANCELLED, msg);
		dc_h2_call_free(c);
	}
}
