/*
 * gRPC connections: the process-wide registry, TCP and TLS on the caller's
 * libev loop, the nghttp2 session's I/O, keepalive, reconnect with backoff.
 */
#include "h2/internal.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define DEFAULT_MAX_MSG     (4u * 1024u * 1024u)
#define STREAM_WINDOW       (16 * 1024 * 1024)
#define CONN_WINDOW         (32 * 1024 * 1024)
#define OUT_HIGH_WATER      (256 * 1024)
#define READ_CHUNK          (64 * 1024)
#define BACKOFF_INITIAL_MS  100
#define BACKOFF_MAX_MS      10000
#define PING_TIMEOUT_MAX_MS 5000
#define PREPARE_ROUNDS      8

static struct dc_h2_link registry = {&registry, &registry};
static bool shutting_down;

struct dc_grpc_listener {
	struct dc_grpc_listener *prev, *next;
	struct ev_loop *loop;
	dc_grpc_state_fn fn;
	void *arg;
};
static struct dc_grpc_listener *listeners;

static bool sess_flush(struct dc_h2_sess *s, bool *progress);
static void sess_lost(struct dc_h2_sess *s, const char *reason);
static void sess_connect_failed(struct dc_h2_sess *s, const char *msg);
static int sess_try_connect(struct dc_h2_sess *s, char *err, size_t errlen);
static void on_rio(struct ev_loop *loop, ev_io *w, int revents);
static void on_wio(struct ev_loop *loop, ev_io *w, int revents);
static void on_connect_timeout(struct ev_loop *loop, ev_timer *w, int revents);
static void on_keepalive(struct ev_loop *loop, ev_timer *w, int revents);
static void on_ping_timeout(struct ev_loop *loop, ev_timer *w, int revents);
static void resolve_abandon(struct dc_h2_resolve *r);

bool dc_h2_shutting_down(void)
{
	return shutting_down;
}

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
	if (s->ssl != NULL) {
		SSL_free(s->ssl);
		s->ssl = NULL;
	}
	if (s->ssl_ctx != NULL) {
		SSL_CTX_free(s->ssl_ctx);
		s->ssl_ctx = NULL;
	}
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
		resolve_abandon(s->res);
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

static void ssl_reason(char *out, size_t len, int ssl_err)
{
	unsigned long e = ERR_get_error();

	if (e != 0) {
		ERR_error_string_n(e, out, len);
		ERR_clear_error();
	} else if (ssl_err == SSL_ERROR_SYSCALL && errno != 0) {
		snprintf(out, len, "%s", strerror(errno));
	} else {
		snprintf(out, len, "the server closed the connection");
	}
}

/* > 0 bytes, 0 end of stream, -EAGAIN, or -EIO with err filled. */
static ssize_t sock_read(struct dc_h2_sess *s, uint8_t *buf, size_t len, char *err, size_t errlen)
{
	ssize_t n;

	if (s->ssl == NULL) {
		n = recv(s->fd, buf, len, 0);
		if (n >= 0)
			return n;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return -EAGAIN;
		snprintf(err, errlen, "%s", strerror(errno));
		return -EIO;
	}
	ERR_clear_error();
	errno = 0;
	int r = SSL_read(s->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));

	if (r > 0)
		return r;
	switch (SSL_get_error(s->ssl, r)) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		return -EAGAIN;
	case SSL_ERROR_ZERO_RETURN:
		return 0;
	case SSL_ERROR_SYSCALL:
		if (errno == 0 && ERR_peek_error() == 0)
			return 0;
		/* fall through */
	default:
		ssl_reason(err, errlen, SSL_ERROR_SYSCALL);
		return -EIO;
	}
}

static ssize_t sock_write(struct dc_h2_sess *s, const uint8_t *buf, size_t len, char *err,
			  size_t errlen)
{
	ssize_t n;

	if (s->ssl == NULL) {
		n = send(s->fd, buf, len, MSG_NOSIGNAL);
		if (n >= 0)
			return n;
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return -EAGAIN;
		snprintf(err, errlen, "%s", strerror(errno));
		return -EIO;
	}
	ERR_clear_error();
	errno = 0;
	int r = SSL_write(s->ssl, buf, (int)(len > INT32_MAX ? INT32_MAX : len));
	int e;

	if (r > 0)
		return r;
	e = SSL_get_error(s->ssl, r);
	if (e == SSL_ERROR_WANT_WRITE)
		return -EAGAIN;
	/* Retried after the next read, which the read watcher brings. */
	if (e == SSL_ERROR_WANT_READ)
		return -EINPROGRESS;
	ssl_reason(err, errlen, e);
	return -EIO;
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

static void tls_fail(struct dc_h2_sess *s, int ssl_err)
{
	struct dc_grpc_conn *conn = s->conn;
	char reason[160], msg[sizeof(conn->last_error)];
	long vr = SSL_get_verify_result(s->ssl);

	if (vr != X509_V_OK)
		snprintf(reason, sizeof(reason), "certificate verify failed: %s",
			 X509_verify_cert_error_string(vr));
	else
		ssl_reason(reason, sizeof(reason), ssl_err);
	snprintf(msg, sizeof(msg), "TLS handshake with %s failed: %s", conn->authority, reason);
	sess_connect_failed(s, msg);
}

static void tls_step(struct dc_h2_sess *s)
{
	struct ev_loop *loop = s->conn->loop;
	const unsigned char *alpn = NULL;
	unsigned alpn_len = 0;
	int r, e;

	ERR_clear_error();
	errno = 0;
	r = SSL_connect(s->ssl);
	if (r == 1) {
		SSL_get0_alpn_selected(s->ssl, &alpn, &alpn_len);
		if (alpn_len != 2 || memcmp(alpn, "h2", 2) != 0) {
			char msg[512];

			snprintf(msg, sizeof(msg),
				 "TLS connection to %s: the server does not speak HTTP/2 "
				 "(ALPN h2 not selected)",
				 s->conn->authority);
			sess_connect_failed(s, msg);
			return;
		}
		ev_io_stop(loop, &s->rio);
		sess_up(s);
		return;
	}
	e = SSL_get_error(s->ssl, r);
	if (e == SSL_ERROR_WANT_READ) {
		ev_io_stop(loop, &s->wio);
		ev_io_start(loop, &s->rio);
	} else if (e == SSL_ERROR_WANT_WRITE) {
		ev_io_stop(loop, &s->rio);
		ev_io_start(loop, &s->wio);
	} else {
		tls_fail(s, e);
	}
}

static int tls_start(struct dc_h2_sess *s, char *err, size_t errlen)
{
	struct dc_grpc_conn *conn = s->conn;
	static const unsigned char alpn[] = {2, 'h', '2'};
	char reason[160];
	int ok;

	ERR_clear_error();
	s->ssl_ctx = SSL_CTX_new(TLS_client_method());
	if (s->ssl_ctx == NULL)
		goto ssl_error;
	SSL_CTX_set_min_proto_version(s->ssl_ctx, TLS1_2_VERSION);
	SSL_CTX_set_verify(s->ssl_ctx, SSL_VERIFY_PEER, NULL);
	if (conn->tls_ca != NULL && conn->tls_ca[0]) {
		if (SSL_CTX_load_verify_locations(s->ssl_ctx, conn->tls_ca, NULL) != 1) {
			ssl_reason(reason, sizeof(reason), SSL_ERROR_SSL);
			snprintf(err, errlen, "TLS to %s: cannot load CA file %s: %s",
				 conn->authority, conn->tls_ca, reason);
			return -1;
		}
	} else if (SSL_CTX_set_default_verify_paths(s->ssl_ctx) != 1) {
		goto ssl_error;
	}
	/* SSL_CTX_set_alpn_protos returns 0 on success. */
	if (SSL_CTX_set_alpn_protos(s->ssl_ctx, alpn, sizeof(alpn)) != 0)
		goto ssl_error;
	s->ssl = SSL_new(s->ssl_ctx);
	if (s->ssl == NULL || SSL_set_fd(s->ssl, s->fd) != 1)
		goto ssl_error;
	SSL_set_mode(s->ssl, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	if (conn->host_is_ip) {
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(s->ssl), conn->host);
	} else {
		ok = SSL_set_tlsext_host_name(s->ssl, conn->host) == 1 &&
		     SSL_set1_host(s->ssl, conn->host) == 1;
	}
	if (!ok)
		goto ssl_error;
	s->phase = DC_H2_TLS_HANDSHAKE;
	return 0;

ssl_error:
	ssl_reason(reason, sizeof(reason), SSL_ERROR_SSL);
	snprintf(err, errlen, "TLS to %s: %s", conn->authority, reason);
	return -1;
}

/* The TCP connection is established: TLS or straight to HTTP/2. */
static void tcp_connected(struct dc_h2_sess *s)
{
	char err[512];

	if (!s->conn->tls) {
		sess_up(s);
		return;
	}
	if (tls_start(s, err, sizeof(err)) != 0) {
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

/* Tries ai_cur and the addresses after it; 0 when a connect is under way. */
static int sess_try_connect(struct dc_h2_sess *s, char *err, size_t errlen)
{
	struct dc_grpc_conn *conn = s->conn;

	for (; s->ai_cur != NULL; s->ai_cur = s->ai_cur->ai_next) {
		struct addrinfo *ai = s->ai_cur;
		int one = 1;

		s->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
			       ai->ai_protocol);
		if (s->fd < 0) {
			snprintf(err, errlen, "connect to %s: socket: %s", conn->authority,
				 strerror(errno));
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
		snprintf(err, errlen, "connect to %s: %s", conn->authority, strerror(errno));
		close(s->fd);
		s->fd = -1;
	}
	return -1;
}

/*
 * Name resolution without blocking the loop: glibc's getaddrinfo_a, polled
 * from a timer so no other thread ever touches a session.
 */
struct dc_h2_resolve {
	struct gaicb cb;
	struct addrinfo hints;
	char names[]; /* host, NUL, port, NUL */
};

static void resolve_abandon(struct dc_h2_resolve *r)
{
	const struct gaicb *list[1] = {&r->cb};
	struct timespec wait = {2, 0};

	if (gai_cancel(&r->cb) != EAI_CANCELED && gai_error(&r->cb) == EAI_INPROGRESS) {
		/* The resolver thread still writes to r: wait for it a little ... */
		gai_suspend(list, 1, &wait);
		/* ... and leave it to it if it is stuck (a few bytes, at exit). */
		if (gai_error(&r->cb) == EAI_INPROGRESS)
			return;
	}
	if (r->cb.ar_result != NULL)
		freeaddrinfo(r->cb.ar_result);
	free(r);
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
	struct dc_h2_resolve *r = s->res;
	int rv = gai_error(&r->cb);

	if (rv == EAI_INPROGRESS)
		return;
	ev_timer_stop(loop, w);
	s->res = NULL;
	s->ai_list = r->cb.ar_result;
	free(r);
	if (rv != 0) {
		if (s->ai_list != NULL)
			freeaddrinfo(s->ai_list);
		s->ai_list = NULL;
		resolve_failed(s, rv);
		return;
	}
	sess_addresses_ready(s);
}

static int resolve_start(struct dc_h2_sess *s)
{
	struct dc_grpc_conn *conn = s->conn;
	size_t hl = strlen(conn->host), pl = strlen(conn->port);
	struct dc_h2_resolve *r = calloc(1, sizeof(*r) + hl + pl + 2);
	struct gaicb *list[1];
	int rv;

	if (r == NULL)
		return EAI_MEMORY;
	memcpy(r->names, conn->host, hl + 1);
	memcpy(r->names + hl + 1, conn->port, pl + 1);
	r->hints.ai_family = AF_UNSPEC;
	r->hints.ai_socktype = SOCK_STREAM;
	r->hints.ai_flags = AI_NUMERICSERV;
	r->cb.ar_name = r->names;
	r->cb.ar_service = r->names + hl + 1;
	r->cb.ar_request = &r->hints;
	list[0] = &r->cb;
	rv = getaddrinfo_a(GAI_NOWAIT, list, 1, NULL);
	if (rv != 0) {
		free(r);
		return rv;
	}
	s->res = r;
	s->phase = DC_H2_RESOLVING;
	ev_timer_start(conn->loop, &s->res_timer);
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

static void tell_listeners(struct dc_grpc_conn *conn, bool up, const char *reason)
{
	for (struct dc_grpc_listener *l = listeners, *next; l != NULL; l = next) {
		next = l->next;
		if (l->loop == conn->loop)
			l->fn(l->arg, conn, up, reason);
	}
}

/*
 * What changed since the listeners last heard: each loss or failed connect
 * (a short blip within one iteration is told as down, then up), and up.
 * A graceful retirement only forgets that up was told, so the next session
 * is told again.
 */
static void conn_tell_state(struct dc_grpc_conn *conn)
{
	bool up = dc_grpc_conn_is_up(conn);
	bool lost = conn->downs != conn->downs_told;

	if (!lost && up == conn->up_told)
		return;
	conn->downs_told = conn->downs;
	if (lost)
		tell_listeners(conn, false, conn->down_reason);
	if (up && (lost || !conn->up_told))
		tell_listeners(conn, true, "");
	conn->up_told = up;
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
	conn_tell_state(conn);
}

static void on_backoff(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc_grpc_conn *conn = w->data;

	conn->in_backoff = false;
	/* Reconnect in the background, so the next call finds the connection up. */
	dc_h2_conn_activate(conn);
}

/* ---------------------------------------------------------------- registry */

static int parse_url(struct dc_grpc_conn *conn, const char *url)
{
	const char *p, *end, *hs, *he, *colon = NULL;
	struct in6_addr a6;
	struct in_addr a4;

	if (strncmp(url, "http://", 7) == 0) {
		conn->tls = false;
		conn->scheme = "http";
		p = url + 7;
	} else if (strncmp(url, "https://", 8) == 0) {
		conn->tls = true;
		conn->scheme = "https";
		p = url + 8;
	} else {
		return -EINVAL;
	}
	end = p + strcspn(p, "/?#");
	if (end == p)
		return -EINVAL;
	if (*p == '[') {
		hs = p + 1;
		he = memchr(hs, ']', (size_t)(end - hs));
		if (he == NULL)
			return -EINVAL;
		if (he + 1 < end) {
			if (he[1] != ':')
				return -EINVAL;
			colon = he + 1;
		}
	} else {
		hs = p;
		colon = memchr(p, ':', (size_t)(end - p));
		he = colon ? colon : end;
	}
	if (he == hs)
		return -EINVAL;
	conn->host = strndup(hs, (size_t)(he - hs));
	conn->authority = strndup(p, (size_t)(end - p));
	if (colon != NULL) {
		char *e;
		long port = strtol(colon + 1, &e, 10);

		if (e != end || port <= 0 || port > 65535)
			return -EINVAL;
		conn->port = strndup(colon + 1, (size_t)(end - colon - 1));
	} else {
		conn->port = strdup(conn->tls ? "443" : "80");
	}
	if (conn->host == NULL || conn->authority == NULL || conn->port == NULL)
		return -ENOMEM;
	conn->host_is_ip = inet_pton(AF_INET, conn->host, &a4) == 1 ||
			   inet_pton(AF_INET6, conn->host, &a6) == 1;
	return 0;
}

static bool same(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static void conn_free(struct dc_grpc_conn *conn)
{
	static const char msg[] = "the gRPC client is shutting down";

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
	free(conn->url);
	free(conn->token);
	free(conn->tls_ca);
	free(conn->host);
	free(conn->port);
	free(conn->authority);
	free(conn->auth_value);
	free(conn);
}

static int conn_new(struct ev_loop *loop, const struct dc_grpc_opts *opts,
		    struct dc_grpc_conn **out)
{
	struct dc_grpc_conn *conn = calloc(1, sizeof(*conn));
	int rv;

	if (conn == NULL)
		return -ENOMEM;
	conn->loop = loop;
	dc_h2_list_init(&conn->sessions);
	dc_h2_list_init(&conn->waiting);
	dc_h2_list_init(&conn->deferred);
	conn->url = strdup(opts->url);
	conn->token = opts->token ? strdup(opts->token) : NULL;
	conn->tls_ca = opts->tls_ca ? strdup(opts->tls_ca) : NULL;
	if (conn->url == NULL || (opts->token && !conn->token) || (opts->tls_ca && !conn->tls_ca)) {
		rv = -ENOMEM;
		goto fail;
	}
	rv = parse_url(conn, opts->url);
	if (rv != 0)
		goto fail;
	if (opts->token != NULL && opts->token[0]) {
		if (asprintf(&conn->auth_value, "Bearer %s", opts->token) < 0) {
			conn->auth_value = NULL;
			rv = -ENOMEM;
			goto fail;
		}
	}
	conn->max_msg = opts->max_msg_size ? opts->max_msg_size : DEFAULT_MAX_MSG;
	conn->keepalive_ms = opts->keepalive_ms ? opts->keepalive_ms : 10000;
	conn->connect_timeout_ms = opts->connect_timeout_ms ? opts->connect_timeout_ms : 10000;
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
	*out = conn;
	return 0;

fail:
	conn_free(conn);
	return rv;
}

int dc_grpc_conn_get(struct ev_loop *loop, const struct dc_grpc_opts *opts,
		     struct dc_grpc_conn **out)
{
	struct dc_grpc_conn *conn;
	struct sigaction sa;
	int rv;

	if (loop == NULL || opts == NULL || opts->url == NULL || out == NULL)
		return -EINVAL;
	if (shutting_down)
		return -ESHUTDOWN;
	for (struct dc_h2_link *l = registry.next; l != &registry; l = l->next) {
		conn = DC_H2_CONTAINER(l, struct dc_grpc_conn, link);
		if (conn->loop == loop && same(conn->url, opts->url) &&
		    same(conn->token, opts->token) && same(conn->tls_ca, opts->tls_ca)) {
			*out = conn;
			return 0;
		}
	}
	/*
	 * OpenSSL writes to the socket with write(): a peer that went away
	 * would kill the process with SIGPIPE unless someone ignores it.
	 */
	if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL)
		signal(SIGPIPE, SIG_IGN);
	rv = conn_new(loop, opts, &conn);
	if (rv != 0)
		return rv;
	dc_h2_list_add_tail(&registry, &conn->link);
	*out = conn;
	return 0;
}

void dc_grpc_shutdown_all(void)
{
	shutting_down = true;
	while (!dc_h2_list_empty(&registry)) {
		struct dc_grpc_conn *conn =
			DC_H2_CONTAINER(registry.next, struct dc_grpc_conn, link);

		dc_h2_list_del(&conn->link);
		conn_free(conn);
	}
	shutting_down = false;
}

int dc_grpc_conn_is_up(const struct dc_grpc_conn *conn)
{
	return conn != NULL && conn->sess != NULL && conn->sess->phase == DC_H2_UP;
}

const char *dc_grpc_conn_last_error(const struct dc_grpc_conn *conn)
{
	return conn != NULL ? conn->last_error : "";
}

int dc_grpc_state_listen(struct ev_loop *loop, dc_grpc_state_fn fn, void *arg,
			 struct dc_grpc_listener **out)
{
	struct dc_grpc_listener *l;

	if (out != NULL)
		*out = NULL;
	if (loop == NULL || fn == NULL || out == NULL)
		return -EINVAL;
	l = calloc(1, sizeof(*l));
	if (l == NULL)
		return -ENOMEM;
	l->loop = loop;
	l->fn = fn;
	l->arg = arg;
	l->next = listeners;
	if (listeners != NULL)
		listeners->prev = l;
	listeners = l;
	*out = l;
	return 0;
}

void dc_grpc_state_unlisten(struct dc_grpc_listener *l)
{
	if (l == NULL)
		return;
	if (l->prev != NULL)
		l->prev->next = l->next;
	else
		listeners = l->next;
	if (l->next != NULL)
		l->next->prev = l->prev;
	free(l);
}
