/*
 * Private structures of the gRPC client, shared by registry.c (connection
 * objects), conn.c (sessions), tls.c, resolve.c and call.c (streams,
 * headers, status).
 */
#ifndef DC_H2_INTERNAL_H
#define DC_H2_INTERNAL_H

#include "h2/grpc.h"
#include "backoff.h"

#include <ev.h>
#include <netdb.h>
#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stdbool.h>
#include <sys/types.h>

/* An intrusive circular list; a head is a link pointing at itself when empty. */
struct dc_h2_link {
	struct dc_h2_link *prev, *next;
};

#define DC_H2_CONTAINER(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

static inline void dc_h2_list_init(struct dc_h2_link *h)
{
	h->prev = h->next = h;
}

static inline bool dc_h2_list_empty(const struct dc_h2_link *h)
{
	return h->next == h;
}

static inline void dc_h2_list_add_tail(struct dc_h2_link *h, struct dc_h2_link *l)
{
	l->prev = h->prev;
	l->next = h;
	h->prev->next = l;
	h->prev = l;
}

static inline void dc_h2_list_del(struct dc_h2_link *l)
{
	l->prev->next = l->next;
	l->next->prev = l->prev;
	l->prev = l->next = l;
}

enum dc_h2_phase {
	DC_H2_RESOLVING,
	DC_H2_TCP_CONNECTING,
	DC_H2_TLS_HANDSHAKE,
	DC_H2_UP,
};

/* One transport connection (TCP or TLS) and its nghttp2 session. */
struct dc_h2_sess {
	struct dc_grpc_conn *conn;
	struct dc_h2_link link; /* in conn->sessions */
	enum dc_h2_phase phase;
	int fd;
	SSL_CTX *ssl_ctx;
	SSL *ssl;
	nghttp2_session *ng;
	bool goaway; /* the server sent GOAWAY: no new streams here */
	bool ping_outstanding;
	uint32_t ping_timeout_ms;
	ev_io rio, wio;
	ev_timer connect_timer, ka_timer, ping_timer, res_timer;
	struct dc_h2_resolve *res; /* name resolution under way */
	struct addrinfo *ai_list, *ai_cur;
	struct dc_h2_link calls; /* submitted calls (struct dc_grpc_call.link) */
	size_t ncalls;
	uint8_t *out; /* bytes nghttp2 produced that the socket has not taken yet */
	size_t out_off, out_len, out_cap;
};

struct dc_grpc_conn {
	struct dc_h2_link link; /* in the registry */
	struct ev_loop *loop;
	char *url, *token, *tls_ca;
	char *host, *port, *authority, *auth_value;
	const char *scheme;
	bool tls, host_is_ip;
	uint32_t max_msg, keepalive_ms, connect_timeout_ms;
	struct dc_h2_sess *sess;    /* the one new calls go to (connecting or up), or NULL */
	struct dc_h2_link sessions; /* sess plus sessions draining after GOAWAY */
	struct dc_h2_link waiting;  /* calls waiting for sess to come up */
	struct dc_h2_link deferred; /* calls whose on_done the loop delivers */
	struct dc_backoff backoff;
	bool in_backoff; /* a connect failed; calls fail fast until the timer */
	ev_timer backoff_timer;
	ev_prepare prep; /* flushes every session once per loop iteration */
	ev_idle kick;    /* keeps the loop from blocking while work remains */
	char last_error[512];
	/*
	 * State changes for the listeners (dc_grpc_state_listen), told from
	 * the loop: losses and failed connects counted here, delivered later.
	 */
	unsigned downs, downs_told;
	bool up_told;
	char down_reason[512];
};

enum dc_h2_call_where {
	DC_H2_CALL_WAITING,
	DC_H2_CALL_ACTIVE,
	DC_H2_CALL_DEFERRED,
};

struct dc_grpc_call {
	struct dc_h2_link link;
	struct dc_grpc_conn *conn;
	struct dc_h2_sess *sess; /* when ACTIVE */
	enum dc_h2_call_where where;
	int32_t stream_id;
	bool done;       /* on_done delivered, or the caller cancelled */
	uint8_t retries; /* transparent retries after REFUSED_STREAM */
	ev_timer deadline;
	uint32_t deadline_ms;
	dc_grpc_msg_fn on_msg;
	dc_grpc_done_fn on_done;
	void *arg;
	struct dc_grpc_deframer df;
	int http_status;
	int grpc_status; /* -1 until received */
	char *grpc_message;
	int dfr_code; /* DEFERRED: what on_done will say */
	char *dfr_msg;
	size_t body_len, body_off;
	char timeout_hdr[16];
	size_t nhdr;                        /* custom metadata pairs */
	char *hdr[2 * DC_GRPC_MAX_HEADERS]; /* name, value; same allocation */
	char *path;                         /* in the same allocation, after the struct */
	uint8_t *body;                      /* 5-byte prefix + request, same allocation */
};

/* call.c */
void dc_h2_callbacks_setup(nghttp2_session_callbacks *cbs);
/* Submit a waiting call on s (which is up); on failure the call is deferred with an error. */
void dc_h2_call_submit(struct dc_h2_sess *s, struct dc_grpc_call *c);
/* Deliver on_done now (from a loop callback, never from inside dc_grpc_call_start). */
void dc_h2_call_finish(struct dc_grpc_call *c, int code, const char *msg);
/* Queue the call's on_done for the loop (code, msg copied). */
void dc_h2_call_defer(struct dc_grpc_call *c, int code, const char *msg);
void dc_h2_call_free(struct dc_grpc_call *c);
/* Remove a DEFERRED call from its list, deliver its on_done and free it. */
void dc_h2_call_deliver_deferred(struct dc_grpc_call *c);

/* conn.c */
/* Make sure the conn is connecting or up; returns false when it is in backoff. */
bool dc_h2_conn_activate(struct dc_grpc_conn *conn);
/* The ev_prepare flush must run again this iteration (work added from within it). */
void dc_h2_conn_kick(struct dc_grpc_conn *conn);
/* Arm a new conn's loop watchers: reconnect backoff, the per-iteration flush. */
void dc_h2_conn_attach(struct dc_grpc_conn *conn);
/* Stop them; every session and call ends now with CANCELLED and msg. */
void dc_h2_conn_detach(struct dc_grpc_conn *conn, const char *msg);

/* registry.c */
bool dc_h2_shutting_down(void);
/* Tell the state listeners what changed since they last heard (from the loop). */
void dc_h2_conn_tell_state(struct dc_grpc_conn *conn);

/* tls.c: OpenSSL on a session's connected socket. */
enum dc_h2_tls_step {
	DC_H2_TLS_DONE,       /* handshake complete, h2 agreed by ALPN */
	DC_H2_TLS_WANT_READ,  /* call again when the socket is readable */
	DC_H2_TLS_WANT_WRITE, /* call again when the socket is writable */
	DC_H2_TLS_FAILED,     /* err says why */
};
/*
 * Context and SSL for s->fd (CA, host check, ALPN h2): 0, or with err
 * filled -EINVAL (the CA file is unusable) or -EPROTO (OpenSSL refused).
 */
int dc_h2_tls_start(struct dc_h2_sess *s, char *err, size_t errlen);
enum dc_h2_tls_step dc_h2_tls_handshake(struct dc_h2_sess *s, char *err, size_t errlen);
/* > 0 bytes, 0 end of stream, -EAGAIN, or -EIO with err filled. */
ssize_t dc_h2_tls_read(struct dc_h2_sess *s, uint8_t *buf, size_t len, char *err, size_t errlen);
/* > 0 bytes, -EAGAIN, -EINPROGRESS (retry after the next read), or -EIO with err filled. */
ssize_t dc_h2_tls_write(struct dc_h2_sess *s, const uint8_t *buf, size_t len, char *err,
			size_t errlen);
/* Free the SSL and its context (the socket is the session's). */
void dc_h2_tls_close(struct dc_h2_sess *s);

/* resolve.c: getaddrinfo_a, polled from the loop. */
struct dc_h2_resolve;
/* Start resolving host:port (copied): 0 and *out, or an EAI_* code. */
int dc_h2_resolve_start(const char *host, const char *port, struct dc_h2_resolve **out);
/*
 * EAI_INPROGRESS while under way; else r is freed and the result is 0 with
 * *ai (the caller's to free) or an EAI_* code with *ai NULL.
 */
int dc_h2_resolve_poll(struct dc_h2_resolve *r, struct addrinfo **ai);
/* Give up on r: freed, or left to a resolver thread that is stuck. */
void dc_h2_resolve_abandon(struct dc_h2_resolve *r);

#endif
