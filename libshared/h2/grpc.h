/*
 * A non-blocking gRPC client on nghttp2, driven by the caller's libev loop.
 * One connection per broker address (h2c prior knowledge or TLS + ALPN h2),
 * shared by every call of the process; unary and server-streaming calls.
 */
#ifndef DC_H2_GRPC_H
#define DC_H2_GRPC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct ev_loop;

/* gRPC status codes (grpc/status.h). */
enum dc_grpc_code {
	DC_GRPC_OK = 0,
	DC_GRPC_CANCELLED = 1,
	DC_GRPC_UNKNOWN = 2,
	DC_GRPC_INVALID_ARGUMENT = 3,
	DC_GRPC_DEADLINE_EXCEEDED = 4,
	DC_GRPC_NOT_FOUND = 5,
	DC_GRPC_ALREADY_EXISTS = 6,
	DC_GRPC_PERMISSION_DENIED = 7,
	DC_GRPC_RESOURCE_EXHAUSTED = 8,
	DC_GRPC_FAILED_PRECONDITION = 9,
	DC_GRPC_ABORTED = 10,
	DC_GRPC_OUT_OF_RANGE = 11,
	DC_GRPC_UNIMPLEMENTED = 12,
	DC_GRPC_INTERNAL = 13,
	DC_GRPC_UNAVAILABLE = 14,
	DC_GRPC_DATA_LOSS = 15,
	DC_GRPC_UNAUTHENTICATED = 16,
};

/*
 * The canonical name of a gRPC code, "NOT_FOUND" etc., "UNKNOWN_CODE" for
 * one outside 0..16: the one table the whole project prints codes with.
 */
const char *dc_grpc_code_name(int code);

struct dc_grpc_opts {
	const char *url;             /* "http://host:port" (h2c) or "https://host:port" (TLS) */
	const char *token;           /* bearer token sent on every call, or NULL */
	const char *tls_ca;          /* CA file; NULL = system store (https only) */
	uint32_t max_msg_size;       /* 0 = 4 MiB; larger messages are refused, both ways */
	uint32_t keepalive_ms;       /* HTTP/2 PING interval; 0 = 10000 */
	uint32_t connect_timeout_ms; /* 0 = 10000 */
};

struct dc_grpc_conn;
struct dc_grpc_call;

/*
 * The process-wide connection for opts->url (created on first use; the
 * same pointer for the same URL, token and CA). It connects lazily and
 * reconnects with backoff; calls made while down fail with UNAVAILABLE.
 * Host names are resolved without blocking (getaddrinfo_a). While connected
 * its watchers keep the loop running. The first call ignores SIGPIPE if it
 * is at its default (OpenSSL writes with write()).
 */
int dc_grpc_conn_get(struct ev_loop *loop, const struct dc_grpc_opts *opts,
		     struct dc_grpc_conn **out);

/*
 * Close every connection (at exit); pending calls complete with CANCELLED.
 * Not from inside a gRPC callback (on_msg, on_done).
 */
void dc_grpc_shutdown_all(void);

/* One response message (the 5-byte prefix removed); buf is valid during the call only. */
typedef void (*dc_grpc_msg_fn)(void *arg, const uint8_t *buf, size_t len);

/*
 * The call has ended: code and a decoded, human-readable message ("" when
 * none). Transport failures are reported as UNAVAILABLE with the reason
 * ("connection to 127.0.0.1:6650 lost: ..."); a missed deadline as
 * DEADLINE_EXCEEDED. The call handle is invalid after this returns.
 */
typedef void (*dc_grpc_done_fn)(void *arg, int code, const char *message);

/*
 * Start a call on path "/pkg.Service/Method" with one request message
 * (copied). deadline_ms 0 = none. on_msg runs for each response message
 * (once for unary, many times for a server stream), then on_done exactly
 * once -- never from inside dc_grpc_call_start itself. A request over the
 * size limit ends with RESOURCE_EXHAUSTED; a stream the server refused
 * unprocessed (REFUSED_STREAM, GOAWAY) is sent again, up to 3 times.
 * Returns 0 and *out (may be NULL if not wanted) or a negative errno
 * (-EINVAL, -ENOMEM, -ESHUTDOWN during dc_grpc_shutdown_all).
 */
int dc_grpc_call_start(struct dc_grpc_conn *conn, const char *path, const uint8_t *req,
		       size_t req_len, uint32_t deadline_ms, dc_grpc_msg_fn on_msg,
		       dc_grpc_done_fn on_done, void *arg, struct dc_grpc_call **out);

/* At most this many custom metadata entries per call. */
#define DC_GRPC_MAX_HEADERS 8

/*
 * dc_grpc_call_start with custom metadata: headers is NULL or a
 * NULL-terminated list of name, value pairs ({"x-a", "1", NULL}), copied.
 * Names must be non-empty lowercase HTTP/2 tokens, not pseudo-headers,
 * grpc-*, the headers the client sets itself (te, content-type,
 * user-agent, authorization) or connection-specific ones; values
 * printable ASCII. More than DC_GRPC_MAX_HEADERS pairs or a bad name or
 * value is -EINVAL.
 */
int dc_grpc_call_start_hdr(struct dc_grpc_conn *conn, const char *path, const char *const *headers,
			   const uint8_t *req, size_t req_len, uint32_t deadline_ms,
			   dc_grpc_msg_fn on_msg, dc_grpc_done_fn on_done, void *arg,
			   struct dc_grpc_call **out);

/* Cancel (RST_STREAM CANCEL); on_done is not called after this. */
void dc_grpc_call_cancel(struct dc_grpc_call *call);

/* Connection state, for health: 1 connected, 0 connecting/down. */
int dc_grpc_conn_is_up(const struct dc_grpc_conn *conn);
const char *dc_grpc_conn_last_error(const struct dc_grpc_conn *conn);

/*
 * Connection state changes, for health: up = true when a connection's
 * HTTP/2 session is established; up = false with the reason ("connection
 * to HOST:PORT lost: ...", "connect to HOST:PORT: Connection refused")
 * when an established session is lost or a connect attempt fails -- once
 * per failed attempt. A session the server retires gracefully (GOAWAY) is
 * no loss. Told from the loop (never from inside a gRPC call or callback)
 * for every connection on that loop; conn identifies it only. fn must not
 * call dc_grpc_shutdown_all or dc_grpc_state_unlisten.
 */
typedef void (*dc_grpc_state_fn)(void *arg, const struct dc_grpc_conn *conn, bool up,
				 const char *reason);
struct dc_grpc_listener;
/* Returns 0 and *out, or -EINVAL / -ENOMEM. */
int dc_grpc_state_listen(struct ev_loop *loop, dc_grpc_state_fn fn, void *arg,
			 struct dc_grpc_listener **out);
void dc_grpc_state_unlisten(struct dc_grpc_listener *l);

/* The 5-byte gRPC frame: exposed for tests and the fuzzer. */
void dc_grpc_frame_header(uint8_t hdr[5], uint32_t len);

/*
 * Incremental de-framer for a stream's DATA bytes: feed() calls emit for
 * each complete message. Returns 0, or -EMSGSIZE when a message exceeds
 * max, -EPROTO on a compressed flag (we never negotiate compression).
 */
struct dc_grpc_deframer {
	uint8_t hdr[5];
	size_t hdr_have;
	uint8_t *buf;
	size_t need, have, cap;
	uint32_t max;
};
void dc_grpc_deframer_init(struct dc_grpc_deframer *d, uint32_t max);
int dc_grpc_deframer_feed(struct dc_grpc_deframer *d, const uint8_t *data, size_t len,
			  dc_grpc_msg_fn emit, void *arg);
void dc_grpc_deframer_free(struct dc_grpc_deframer *d);

/* Percent-decode a grpc-message value into out (NUL-terminated, truncated to cap). */
void dc_grpc_percent_decode(const char *in, size_t len, char *out, size_t cap);

/* A response's HTTP status (when it carries no grpc-status) as a gRPC code, per the gRPC spec. */
int dc_grpc_code_from_http(int http_status);

/* An HTTP/2 RST_STREAM error code as a gRPC code (REFUSED_STREAM -> UNAVAILABLE, ...). */
int dc_grpc_code_from_h2_error(uint32_t h2_error);

#endif
