/*
 * gRPC calls on an HTTP/2 session: request headers and body, response
 * messages, the final status (trailers, Trailers-Only, HTTP status or
 * RST_STREAM), deadlines and cancellation.
 */
#include "h2/internal.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef DC_VERSION
#define DC_VERSION "0"
#endif

#define MAX_TRANSPARENT_RETRIES 3

#define NV(n, v, vlen)                                                               \
	{                                                                            \
		(uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, (vlen),               \
			NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE \
	}

static const char user_agent[] = "danube-connect/" DC_VERSION;

static void dispatch(struct dc_grpc_call *c);

void dc_h2_call_free(struct dc_grpc_call *c)
{
	ev_timer_stop(c->conn->loop, &c->deadline);
	dc_grpc_deframer_free(&c->df);
	free(c->grpc_message);
	free(c->dfr_msg);
	free(c);
}

void dc_h2_call_finish(struct dc_grpc_call *c, int code, const char *msg)
{
	if (c->done)
		return;
	c->done = true;
	ev_timer_stop(c->conn->loop, &c->deadline);
	c->on_done(c->arg, code, msg ? msg : "");
}

void dc_h2_call_defer(struct dc_grpc_call *c, int code, const char *msg)
{
	ev_timer_stop(c->conn->loop, &c->deadline);
	c->where = DC_H2_CALL_DEFERRED;
	c->sess = NULL;
	c->dfr_code = code;
	free(c->dfr_msg);
	/* Without memory for the text the code alone still reaches the caller. */
	c->dfr_msg = strdup(msg ? msg : "");
	dc_h2_list_add_tail(&c->conn->deferred, &c->link);
	dc_h2_conn_kick(c->conn);
}

void dc_h2_call_deliver_deferred(struct dc_grpc_call *c)
{
	dc_h2_list_del(&c->link);
	dc_h2_call_finish(c, c->dfr_code, c->dfr_msg ? c->dfr_msg : "out of memory");
	dc_h2_call_free(c);
}

static ssize_t read_body(nghttp2_session *ng, int32_t stream_id, uint8_t *buf, size_t length,
			 uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
	struct dc_grpc_call *c = source->ptr;
	size_t n = c->body_len - c->body_off;

	if (n > length)
		n = length;
	memcpy(buf, c->body + c->body_off, n);
	c->body_off += n;
	if (c->body_off == c->body_len)
		*data_flags |= NGHTTP2_DATA_FLAG_EOF;
	return (ssize_t)n;
}

/* Onto the connection's session if it is up, else wait for it; fails (deferred) in backoff. */
static void dispatch(struct dc_grpc_call *c)
{
	struct dc_grpc_conn *conn = c->conn;

	/* A GOAWAY just read: this session takes no new streams. */
	if (conn->sess != NULL && conn->sess->goaway)
		conn->sess = NULL;
	if (!dc_h2_conn_activate(conn)) {
		dc_h2_call_defer(c, DC_GRPC_UNAVAILABLE, conn->last_error);
		return;
	}
	if (conn->sess->phase == DC_H2_UP) {
		dc_h2_call_submit(conn->sess, c);
	} else {
		c->where = DC_H2_CALL_WAITING;
		dc_h2_list_add_tail(&conn->waiting, &c->link);
	}
}

void dc_h2_call_submit(struct dc_h2_sess *s, struct dc_grpc_call *c)
{
	struct dc_grpc_conn *conn = s->conn;
	nghttp2_nv nva[9 + DC_GRPC_MAX_HEADERS] = {
		NV(":method", "POST", 4),
		NV(":scheme", conn->scheme, strlen(conn->scheme)),
		NV(":path", c->path, strlen(c->path)),
		NV(":authority", conn->authority, strlen(conn->authority)),
		NV("content-type", "application/grpc", 16),
		NV("te", "trailers", 8),
		NV("user-agent", user_agent, sizeof(user_agent) - 1),
	};
	size_t n = 7;
	nghttp2_data_provider prd = {.source.ptr = c, .read_callback = read_body};
	int32_t id;

	if (c->timeout_hdr[0]) {
		nghttp2_nv t = NV("grpc-timeout", c->timeout_hdr, strlen(c->timeout_hdr));
		nva[n++] = t;
	}
	if (conn->auth_value) {
		nghttp2_nv a = NV("authorization", conn->auth_value, strlen(conn->auth_value));
		nva[n++] = a;
	}
	for (size_t i = 0; i < c->nhdr; i++) {
		nghttp2_nv h = {(uint8_t *)c->hdr[2 * i], (uint8_t *)c->hdr[2 * i + 1],
				strlen(c->hdr[2 * i]), strlen(c->hdr[2 * i + 1]),
				NGHTTP2_NV_FLAG_NO_COPY_NAME | NGHTTP2_NV_FLAG_NO_COPY_VALUE};
		nva[n++] = h;
	}
	id = nghttp2_submit_request(s->ng, NULL, nva, n, &prd, c);
	if (id == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE && conn->sess == s) {
		/* 2^30 calls on one connection: retire it, the call goes to a new one. */
		conn->sess = NULL;
		dispatch(c);
		return;
	}
	if (id < 0) {
		char msg[160];

		snprintf(msg, sizeof(msg), "cannot start a stream to %s: %s", conn->authority,
			 nghttp2_strerror(id));
		dc_h2_call_defer(c, DC_GRPC_UNAVAILABLE, msg);
		return;
	}
	c->where = DC_H2_CALL_ACTIVE;
	c->sess = s;
	c->stream_id = id;
	dc_h2_list_add_tail(&s->calls, &c->link);
	s->ncalls++;
}

static void on_deadline(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc_grpc_call *c = w->data;
	char msg[64];

	snprintf(msg, sizeof(msg), "deadline of %u ms exceeded", c->deadline_ms);
	switch (c->where) {
	case DC_H2_CALL_WAITING:
		dc_h2_list_del(&c->link);
		dc_h2_call_finish(c, DC_GRPC_DEADLINE_EXCEEDED, msg);
		dc_h2_call_free(c);
		break;
	case DC_H2_CALL_ACTIVE:
		dc_h2_call_finish(c, DC_GRPC_DEADLINE_EXCEEDED, msg);
		/* The struct lives on until nghttp2 reports the stream closed. */
		if (c->sess->ng != NULL)
			nghttp2_submit_rst_stream(c->sess->ng, NGHTTP2_FLAG_NONE, c->stream_id,
						  NGHTTP2_CANCEL);
		break;
	case DC_H2_CALL_DEFERRED:
		break;
	}
}

/*
 * HTTP/2 forbids uppercase names (RFC 9113 8.2.1); pseudo-headers and the
 * ones we set are ours, grpc-* is reserved by gRPC, and connection-specific
 * names are a protocol error in HTTP/2.
 */
static bool header_name_ok(const char *name)
{
	static const char extra[] = "!#$%&'*+-.^_`|~";
	static const char *const taken[] = {
		"te",         "content-type", "user-agent",       "authorization",     "host",
		"connection", "keep-alive",   "proxy-connection", "transfer-encoding", "upgrade",
	};

	if (name[0] == '\0' || strncmp(name, "grpc-", 5) == 0)
		return false;
	for (size_t i = 0; i < sizeof(taken) / sizeof(taken[0]); i++) {
		if (strcmp(name, taken[i]) == 0)
			return false;
	}
	for (const char *p = name; *p != '\0'; p++) {
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		      strchr(extra, *p) != NULL))
			return false;
	}
	return true;
}

/* Printable ASCII only: no CR/LF smuggling, no bytes gRPC would need -bin for. */
static bool header_value_ok(const char *value)
{
	for (const char *p = value; *p != '\0'; p++) {
		if (*p < 0x20 || *p > 0x7e)
			return false;
	}
	return true;
}

/* Checks headers; *bytes gets the room their copies need. Returns the pair count or -EINVAL. */
static int headers_check(const char *const *headers, size_t *bytes)
{
	size_t n = 0;

	*bytes = 0;
	if (headers == NULL)
		return 0;
	for (; headers[2 * n] != NULL; n++) {
		const char *name = headers[2 * n], *value = headers[2 * n + 1];

		if (n == DC_GRPC_MAX_HEADERS || value == NULL || !header_name_ok(name) ||
		    !header_value_ok(value))
			return -EINVAL;
		*bytes += strlen(name) + 1 + strlen(value) + 1;
	}
	return (int)n;
}

int dc_grpc_call_start(struct dc_grpc_conn *conn, const char *path, const uint8_t *req,
		       size_t req_len, uint32_t deadline_ms, dc_grpc_msg_fn on_msg,
		       dc_grpc_done_fn on_done, void *arg, struct dc_grpc_call **out)
{
	return dc_grpc_call_start_hdr(conn, path, NULL, req, req_len, deadline_ms, on_msg, on_done,
				      arg, out);
}

int dc_grpc_call_start_hdr(struct dc_grpc_conn *conn, const char *path, const char *const *headers,
			   const uint8_t *req, size_t req_len, uint32_t deadline_ms,
			   dc_grpc_msg_fn on_msg, dc_grpc_done_fn on_done, void *arg,
			   struct dc_grpc_call **out)
{
	struct dc_grpc_call *c;
	size_t plen, body_len, hbytes;
	int nhdr;
	char *hp;
	bool too_big;

	if (out != NULL)
		*out = NULL;
	if (conn == NULL || path == NULL || on_done == NULL || (req == NULL && req_len > 0))
		return -EINVAL;
	nhdr = headers_check(headers, &hbytes);
	if (nhdr < 0)
		return nhdr;
	if (dc_h2_shutting_down())
		return -ESHUTDOWN;
	plen = strlen(path);
	too_big = req_len > conn->max_msg;
	body_len = too_big ? 0 : 5 + req_len;
	/* One allocation per call: the struct, the path, the framed request and the headers. */
	c = malloc(sizeof(*c) + plen + 1 + body_len + hbytes);
	if (c == NULL)
		return -ENOMEM;
	memset(c, 0, sizeof(*c));
	c->conn = conn;
	c->on_msg = on_msg;
	c->on_done = on_done;
	c->arg = arg;
	c->grpc_status = -1;
	c->path = (char *)(c + 1);
	memcpy(c->path, path, plen + 1);
	c->body = (uint8_t *)c->path + plen + 1;
	c->body_len = body_len;
	if (!too_big) {
		dc_grpc_frame_header(c->body, (uint32_t)req_len);
		if (req_len > 0)
			memcpy(c->body + 5, req, req_len);
	}
	hp = (char *)c->body + body_len;
	c->nhdr = (size_t)nhdr;
	for (size_t i = 0; i < 2 * c->nhdr; i++) {
		size_t l = strlen(headers[i]) + 1;

		memcpy(hp, headers[i], l);
		c->hdr[i] = hp;
		hp += l;
	}
	dc_h2_list_init(&c->link);
	dc_grpc_deframer_init(&c->df, conn->max_msg);
	ev_timer_init(&c->deadline, on_deadline, deadline_ms / 1000.0, 0.);
	c->deadline.data = c;
	c->deadline_ms = deadline_ms;
	if (deadline_ms > 0) {
		/* grpc-timeout allows at most 8 digits. */
		if (deadline_ms <= 99999999u)
			snprintf(c->timeout_hdr, sizeof(c->timeout_hdr), "%um", deadline_ms);
		else
			snprintf(c->timeout_hdr, sizeof(c->timeout_hdr), "%uS",
				 (deadline_ms + 999) / 1000);
		ev_timer_start(conn->loop, &c->deadline);
	}
	if (out != NULL)
		*out = c;

	if (too_big) {
		char msg[128];

		snprintf(msg, sizeof(msg), "message of %zu bytes exceeds the %u-byte limit",
			 req_len, conn->max_msg);
		dc_h2_call_defer(c, DC_GRPC_RESOURCE_EXHAUSTED, msg);
		return 0;
	}
	dispatch(c);
	return 0;
}

void dc_grpc_call_cancel(struct dc_grpc_call *c)
{
	if (c == NULL || c->done)
		return;
	switch (c->where) {
	case DC_H2_CALL_WAITING:
	case DC_H2_CALL_DEFERRED:
		dc_h2_list_del(&c->link);
		dc_h2_call_free(c);
		break;
	case DC_H2_CALL_ACTIVE:
		c->done = true;
		ev_timer_stop(c->conn->loop, &c->deadline);
		if (c->sess->ng != NULL)
			nghttp2_submit_rst_stream(c->sess->ng, NGHTTP2_FLAG_NONE, c->stream_id,
						  NGHTTP2_CANCEL);
		break;
	}
}

/* ---------------------------------------------------------------- nghttp2 callbacks */

static bool name_is(const uint8_t *name, size_t len, const char *lit, size_t litlen)
{
	return len == litlen && memcmp(name, lit, len) == 0;
}

static int parse_small_int(const uint8_t *v, size_t len)
{
	int n = 0;

	if (len == 0 || len > 9)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (v[i] < '0' || v[i] > '9')
			return -1;
		n = n * 10 + (v[i] - '0');
	}
	return n;
}

static int on_header(nghttp2_session *ng, const nghttp2_frame *frame, const uint8_t *name,
		     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
		     void *user_data)
{
	struct dc_grpc_call *c;

	if (frame->hd.type != NGHTTP2_HEADERS)
		return 0;
	c = nghttp2_session_get_stream_user_data(ng, frame->hd.stream_id);
	if (c == NULL)
		return 0;
	if (name_is(name, namelen, ":status", 7)) {
		c->http_status = parse_small_int(value, valuelen);
	} else if (name_is(name, namelen, "grpc-status", 11)) {
		int st = parse_small_int(value, valuelen);

		c->grpc_status = st < 0 ? DC_GRPC_UNKNOWN : st;
	} else if (name_is(name, namelen, "grpc-message", 12)) {
		char *m = malloc(valuelen + 1);

		/* Without memory the status code still gets through. */
		if (m != NULL) {
			dc_grpc_percent_decode((const char *)value, valuelen, m, valuelen + 1);
			free(c->grpc_message);
			c->grpc_message = m;
		}
	}
	return 0;
}

static void emit_msg(void *arg, const uint8_t *buf, size_t len)
{
	struct dc_grpc_call *c = arg;

	/* The caller may have cancelled from an earlier message of this chunk. */
	if (!c->done && c->on_msg != NULL)
		c->on_msg(c->arg, buf, len);
}

static int on_data_chunk(nghttp2_session *ng, uint8_t flags, int32_t stream_id, const uint8_t *data,
			 size_t len, void *user_data)
{
	struct dc_grpc_call *c = nghttp2_session_get_stream_user_data(ng, stream_id);
	char msg[128];
	int rv;

	if (c == NULL || c->done)
		return 0;
	rv = dc_grpc_deframer_feed(&c->df, data, len, emit_msg, c);
	if (rv == 0)
		return 0;
	if (rv == -EMSGSIZE) {
		uint32_t n = (uint32_t)c->df.hdr[1] << 24 | (uint32_t)c->df.hdr[2] << 16 |
			     (uint32_t)c->df.hdr[3] << 8 | c->df.hdr[4];

		snprintf(msg, sizeof(msg), "response message of %u bytes exceeds the %u-byte limit",
			 n, c->df.max);
		dc_h2_call_finish(c, DC_GRPC_RESOURCE_EXHAUSTED, msg);
	} else if (rv == -EPROTO) {
		dc_h2_call_finish(c, DC_GRPC_INTERNAL,
				  "server sent a compressed message, but no compression was "
				  "negotiated");
	} else {
		dc_h2_call_finish(c, DC_GRPC_RESOURCE_EXHAUSTED,
				  "out of memory for a response message");
	}
	nghttp2_submit_rst_stream(ng, NGHTTP2_FLAG_NONE, stream_id, NGHTTP2_CANCEL);
	return 0;
}

static int on_frame_recv(nghttp2_session *ng, const nghttp2_frame *frame, void *user_data)
{
	struct dc_h2_sess *s = user_data;

	switch (frame->hd.type) {
	case NGHTTP2_PING:
		if (frame->hd.flags & NGHTTP2_FLAG_ACK) {
			s->ping_outstanding = false;
			ev_timer_stop(s->conn->loop, &s->ping_timer);
		}
		break;
	case NGHTTP2_GOAWAY:
		if (!s->goaway)
			dc_log_info("gRPC: %s sent GOAWAY (%s); new calls use a new connection",
				    s->conn->authority,
				    nghttp2_http2_strerror(frame->goaway.error_code));
		s->goaway = true;
		break;
	default:
		break;
	}
	return 0;
}

/* The final status of a stream that ended without the caller's involvement. */
static void final_status(struct dc_grpc_call *c, uint32_t error_code)
{
	char msg[192];

	if (c->grpc_status >= 0) {
		if (c->grpc_status == DC_GRPC_OK && c->df.hdr_have > 0) {
			dc_h2_call_finish(c, DC_GRPC_INTERNAL,
					  "server ended the stream in the middle of a message");
			return;
		}
		dc_h2_call_finish(c, c->grpc_status, c->grpc_message ? c->grpc_message : "");
		return;
	}
	if (c->http_status > 0 && c->http_status != 200) {
		snprintf(msg, sizeof(msg), "server answered with HTTP status %d", c->http_status);
		dc_h2_call_finish(c, dc_grpc_code_from_http(c->http_status), msg);
		return;
	}
	if (error_code != NGHTTP2_NO_ERROR) {
		snprintf(msg, sizeof(msg), "stream to %s reset: %s", c->conn->authority,
			 nghttp2_http2_strerror(error_code));
		dc_h2_call_finish(c, dc_grpc_code_from_h2_error(error_code), msg);
		return;
	}
	dc_h2_call_finish(c, DC_GRPC_UNKNOWN, "server ended the stream without a grpc-status");
}

static int on_stream_close(nghttp2_session *ng, int32_t stream_id, uint32_t error_code,
			   void *user_data)
{
	struct dc_h2_sess *s = user_data;
	struct dc_grpc_call *c = nghttp2_session_get_stream_user_data(ng, stream_id);

	if (c == NULL)
		return 0;
	dc_h2_list_del(&c->link);
	s->ncalls--;
	if (error_code == NGHTTP2_REFUSED_STREAM && !c->done && c->http_status == 0 &&
	    c->retries < MAX_TRANSPARENT_RETRIES) {
		/* The server never saw this call (GOAWAY race, stream limit): send it again. */
		c->retries++;
		c->body_off = 0;
		c->sess = NULL;
		dispatch(c);
		return 0;
	}
	final_status(c, error_code);
	dc_h2_call_free(c);
	return 0;
}

void dc_h2_callbacks_setup(nghttp2_session_callbacks *cbs)
{
	nghttp2_session_callbacks_set_on_header_callback(cbs, on_header);
	nghttp2_session_callbacks_set_on_data_chunk_recv_callback(cbs, on_data_chunk);
	nghttp2_session_callbacks_set_on_frame_recv_callback(cbs, on_frame_recv);
	nghttp2_session_callbacks_set_on_stream_close_callback(cbs, on_stream_close);
}
