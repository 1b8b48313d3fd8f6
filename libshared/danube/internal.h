/*
 * What the Danube client's modules share and users do not see: the client
 * object, unary RPCs with nanopb, error classification.
 */
#ifndef DN_INTERNAL_H
#define DN_INTERNAL_H

#include "danube/client.h"
#include "backoff.h"

#include <ev.h>
#include <pb.h>
#include <pb_decode.h>
#include <pb_encode.h>
#include <stdarg.h>

struct dc_grpc_conn;
struct dc_grpc_call;
struct dc_grpc_listener;
struct dn_rpc;

/* RPC paths of the Danube API. */
#define DN_PATH_CREATE_PRODUCER "/danube.ProducerService/CreateProducer"
#define DN_PATH_SEND_MESSAGE    "/danube.ProducerService/SendMessage"
#define DN_PATH_SUBSCRIBE       "/danube.ConsumerService/Subscribe"
#define DN_PATH_RECEIVE         "/danube.ConsumerService/ReceiveMessages"
#define DN_PATH_ACK             "/danube.ConsumerService/Ack"
#define DN_PATH_NACK            "/danube.ConsumerService/Nack"
#define DN_PATH_LOOKUP          "/danube.Discovery/TopicLookup"
#define DN_PATH_PARTITIONS      "/danube.Discovery/TopicPartitions"
#define DN_PATH_HEALTH          "/danube.HealthCheck/HealthCheck"
#define DN_PATH_SCHEMA_REGISTER "/danube_schema.SchemaRegistry/RegisterSchema"
#define DN_PATH_SCHEMA_GET      "/danube_schema.SchemaRegistry/GetSchema"
#define DN_PATH_SCHEMA_LATEST   "/danube_schema.SchemaRegistry/GetLatestSchema"

/* Deadlines: control calls answer fast; a send may wait on a busy broker. */
#define DN_CONTROL_DEADLINE_MS 10000u
#define DN_SEND_DEADLINE_MS    30000u
#define DN_HEALTH_INTERVAL_S   5.0
#define DN_BACKOFF_INITIAL_MS  100u
#define DN_BACKOFF_MAX_MS      5000u
#define DN_ERRLEN              512

/* A connection the client handed out, and what its state listener last heard. */
struct dn_conn_ref {
	struct dn_conn_ref *next;
	const struct dc_grpc_conn *conn; /* compared, never dereferenced: it may be gone */
	enum { DN_CONN_UNKNOWN, DN_CONN_UP, DN_CONN_DOWN } state;
	uint64_t used_ms; /* monotonic time of the last call started on it */
};

struct dn_client {
	struct ev_loop *loop;
	char *service_url;
	char *token;
	char *tls_ca;
	uint32_t max_msg_size;
	uint64_t request_id;
	struct dn_op *ops; /* lookups etc. nobody holds a handle to: cancelled at free */
	uint8_t *scratch;  /* encode buffer reused by every call */
	size_t scratch_cap;
	/* connection state (dn_client_set_state_cb); conns only while state_fn is set */
	dn_state_fn state_fn;
	void *state_arg;
	struct dc_grpc_listener *listener;
	struct dn_conn_ref *conns;
	bool told_up; /* up was the last thing state_fn heard */
};

/* The shared connection for url (token implies TLS). */
int dn_client_conn(struct dn_client *c, const char *url, struct dc_grpc_conn **out);

/* state.c: remember conn as one the client uses (0 or -ENOMEM); a call starts on it. */
int dn_state_track(struct dn_client *c, const struct dc_grpc_conn *conn);
void dn_state_touch(struct dn_client *c, const struct dc_grpc_conn *conn);
/* Stop listening and forget every connection. */
void dn_state_free(struct dn_client *c);

/*
 * A unary call: req encoded with req_fields; the answer decoded into a
 * zeroed struct of resp_size bytes (resp_fields NULL: not decoded) handed to
 * cb, released after it. cb runs once, never from inside dn_rpc_start.
 * code/message are the call's status; resp is NULL unless code is DN_OK.
 */
typedef void (*dn_rpc_fn)(void *arg, int code, const char *message, void *resp);
/*
 * proxy: the x-danube-broker-url value to send (dn_proxy_value), or NULL
 * for none -- always NULL on lookup, partitions and schema calls (§2.1).
 */
int dn_rpc_start(struct dn_client *c, struct dc_grpc_conn *conn, const char *path,
		 const char *proxy, const pb_msgdesc_t *req_fields, const void *req,
		 const pb_msgdesc_t *resp_fields, size_t resp_size, uint32_t deadline_ms,
		 dn_rpc_fn cb, void *arg, struct dn_rpc **out);
/* cb will not run. */
void dn_rpc_cancel(struct dn_rpc *r);

/*
 * The x-danube-broker-url value for a partition served at connect_url
 * whose identity is broker_url: NULL (with *ok untouched) when they are
 * equal -- no proxy in between -- else a malloc'd copy, or NULL and *ok
 * false without memory.
 */
char *dn_proxy_value(const char *connect_url, const char *broker_url, bool *ok);
/* The metadata list for dc_grpc_call_start_hdr: kv filled and returned, or NULL if proxy is. */
const char *const *dn_proxy_headers(const char *kv[3], const char *proxy);

/* Encode msg into the client's scratch buffer; returns the length or -errno. */
int dn_encode(struct dn_client *c, const pb_msgdesc_t *fields, const void *msg, uint8_t **buf,
	      size_t *len);

/*
 * A lookup, partitions or schema call with a typed callback. The caller
 * either keeps the handle (to cancel it when it goes away first) or, with
 * out NULL, leaves it to the client.
 */
struct dn_op {
	struct dn_client *c;
	struct dn_rpc *rpc;
	union {
		dn_lookup_fn lookup;
		dn_partitions_fn partitions;
		dn_schema_fn schema;
	} cb;
	void *arg;
	char *name; /* topic or subject, for error texts */
	bool tracked;
	struct dn_op *prev, *next;
};
struct dn_op *dn_op_new(struct dn_client *c, const char *name, struct dn_op **out);
void dn_op_free(struct dn_op *op);
/* Unlist from the client before running the callback, so it may free the client. */
void dn_op_detach(struct dn_op *op);
/* The callback will not run. */
void dn_op_cancel(struct dn_op *op);

int dn_lookup_op(struct dn_client *c, const char *topic, dn_lookup_fn cb, void *arg,
		 struct dn_op **out);
int dn_partitions_op(struct dn_client *c, const char *topic, dn_partitions_fn cb, void *arg,
		     struct dn_op **out);
int dn_schema_latest_op(struct dn_client *c, const char *subject, dn_schema_fn cb, void *arg,
			struct dn_op **out);

/* HealthCheck for a producer or consumer id; dn_health_is_close reads the answer. */
int dn_health_start(struct dn_client *c, struct dc_grpc_conn *conn, const char *proxy,
		    bool consumer, uint64_t id, dn_rpc_fn cb, void *arg, struct dn_rpc **out);
bool dn_health_is_close(const void *resp);

/*
 * Payload bytes travel through nanopb callbacks: Debian's nanopb has a
 * 16-bit pb_size_t, so FT_POINTER bytes would cap messages at 64 KiB.
 */
struct dn_bytes {
	uint8_t *data; /* encode: borrowed; decode: malloc'd, owned by the caller */
	size_t len;
};
bool dn_pb_encode_bytes(pb_ostream_t *stream, const pb_field_iter_t *field, void *const *arg);
bool dn_pb_decode_bytes(pb_istream_t *stream, const pb_field_iter_t *field, void **arg);

/* strdup that reports failure through *ok (keeps call sites short). */
char *dn_strdup(const char *s, bool *ok);

/*
 * "CONTEXT: DETAIL (CODE_NAME)" into buf; DETAIL falls back to
 * dn_code_words(code) when empty.
 */
void dn_error_format(char *buf, size_t cap, int code, const char *detail, const char *ctx_fmt, ...)
	__attribute__((format(printf, 5, 6)));

/* What a failed call means for a producer or consumer. */
enum dn_recovery {
	DN_RECOVER_NONE,      /* success */
	DN_RECOVER_RECONNECT, /* back off, look up again, re-create, resend */
	DN_RECOVER_FAIL,      /* report to the caller: retrying cannot help */
};
enum dn_recovery dn_error_recovery(int code, const char *detail);
/* The message was refused for its size (never retried). */
bool dn_error_is_oversize(int code, const char *detail);

/*
 * partition_life.c: what a producer's and a consumer's partitions share.
 *
 * Close while busy: a loop callback brackets its work with dn_guard_enter
 * and dn_guard_leave, so a user callback may close the owner; the owner is
 * destroyed when the outermost callback ends.
 */
struct dn_guard {
	int depth; /* > 0 while a loop callback runs */
	bool closing;
	void (*destroy)(void *owner);
	void *owner;
};
void dn_guard_enter(struct dn_guard *g);
/* Destroys the owner when it was closed meanwhile and this is the outermost callback. */
void dn_guard_leave(struct dn_guard *g);
/* Destroy the owner now, or at the end of the callback that runs. */
void dn_guard_close(struct dn_guard *g);

enum dn_part_state {
	DN_PART_START,     /* nothing asked yet */
	DN_PART_LOOKUP,    /* TopicLookup in flight */
	DN_PART_ATTACHING, /* CreateProducer or Subscribe in flight */
	DN_PART_LIVE,      /* sending or receiving: health checks run */
	DN_PART_BACKOFF,   /* waiting to start over */
	DN_PART_FAILED,    /* refused for good */
};

/* What the owner of a partition does at each step (arg: dn_part_init's). */
struct dn_part_ops {
	/* The lookup answered (or could not be asked): create or subscribe on conn_url. */
	void (*attach)(void *arg);
	/* The broker closed this partition (health CLOSE): the owner reconnects. */
	void (*lost)(void *arg, int code, const char *error);
	/* The backoff ended, before starting over (NULL: nothing to do). */
	void (*before_retry)(void *arg);
};

/*
 * One partition's link to its broker: where it is served (lookup, proxy),
 * the connection, health checks, retry with backoff.
 */
struct dn_part {
	struct dn_client *c;
	struct dn_guard *guard; /* the owner's */
	const struct dn_part_ops *ops;
	void *arg;
	bool consumer;     /* a consumer's partition, else a producer's */
	const char *name;  /* the owner's name (borrowed), for messages */
	const char *again; /* what a lost live partition does: "reconnecting" ... */
	char *topic;
	char *connect_url;
	char *broker_url;
	char *proxy; /* x-danube-broker-url value, NULL when not behind a proxy */
	struct dc_grpc_conn *conn;
	uint64_t id; /* producer or consumer id, once attached */
	uint64_t request_id;
	enum dn_part_state state;
	struct dn_op *lookup;
	struct dn_rpc *health;
	ev_timer retry_timer;
	ev_timer health_timer;
	struct dc_backoff backoff;
};

/* Set up pt for topic (copied), served at the service URL until a lookup says otherwise. */
int dn_part_init(struct dn_part *pt, struct dn_client *c, struct dn_guard *g, const char *topic,
		 bool consumer, const char *name, const char *again, const struct dn_part_ops *ops,
		 void *arg);
/* Stop everything and free what pt holds (not pt itself). */
void dn_part_free(struct dn_part *pt);
/* Look the topic up, then ops->attach. */
void dn_part_start(struct dn_part *pt);
/* The partition's connection for attaching: 0, or -errno. */
int dn_part_connect(struct dn_part *pt);
/* Attaching failed before a call went out (rc from dn_part_connect or dn_rpc_start). */
void dn_part_unreachable(struct dn_part *pt, int rc);
/* Attached: health checks begin (the owner decides when the backoff resets). */
void dn_part_live(struct dn_part *pt);
/* Stop its lookup, health check and timers (the owner cancels its own calls). */
void dn_part_stop(struct dn_part *pt);
/* Log error, stop, and start over after the next backoff delay. */
void dn_part_backoff(struct dn_part *pt, const char *error);
/* Refused for good: stopped, and stays so. */
void dn_part_fail(struct dn_part *pt);

#endif
