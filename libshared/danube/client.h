/*
 * The Danube client: lookups, producers, consumers and schema-registry calls,
 * all asynchronous on the caller's libev loop (callbacks, no threads).
 */
#ifndef DN_CLIENT_H
#define DN_CLIENT_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct ev_loop;

/* Status codes reported to callbacks: the gRPC codes (0 = success). */
enum dn_code {
	DN_OK = 0,
	DN_CANCELLED = 1,
	DN_UNKNOWN = 2,
	DN_INVALID_ARGUMENT = 3,
	DN_DEADLINE_EXCEEDED = 4,
	DN_NOT_FOUND = 5,
	DN_ALREADY_EXISTS = 6,
	DN_PERMISSION_DENIED = 7,
	DN_RESOURCE_EXHAUSTED = 8,
	DN_FAILED_PRECONDITION = 9,
	DN_ABORTED = 10,
	DN_OUT_OF_RANGE = 11,
	DN_UNIMPLEMENTED = 12,
	DN_INTERNAL = 13,
	DN_UNAVAILABLE = 14,
	DN_DATA_LOSS = 15,
	DN_UNAUTHENTICATED = 16,
};

/* "NOT_FOUND" etc.; never a bare number. */
const char *dn_code_name(int code);
/* A short phrase for a code, used when the broker gave no message. */
const char *dn_code_words(int code);

/*
 * Completion of an asynchronous operation: code DN_OK, or a failure with
 * error a full sentence ("topic /default/x: broker refused producer:
 * ... (FAILED_PRECONDITION)"); error is "" on success and valid during the
 * call only.
 */
typedef void (*dn_done_fn)(void *arg, int code, const char *error);

/* ------------------------------------------------------------------ client */

struct dn_client_opts {
	const char *service_url; /* "http://host:6650" or "https://host:6650" */
	const char *token;       /* JWT sent as bearer on every call, or NULL; implies TLS */
	const char *tls_ca;      /* CA file for https; NULL = system store */
	uint32_t max_msg_size;   /* 0 = 4 MiB */
};

struct dn_client;

/* Returns 0 and *out, or -EINVAL (no service URL) / -ENOMEM. Strings are copied. */
int dn_client_new(struct ev_loop *loop, const struct dn_client_opts *opts, struct dn_client **out);
/*
 * Cancels the client's own pending lookups and schema calls (their callbacks
 * do not run). Close every producer and consumer first.
 */
void dn_client_free(struct dn_client *c);
/*
 * Close every broker connection of the process (at exit, after the last
 * dn_client_free): the loop then has nothing left to wait for. Not from
 * inside a client callback.
 */
void dn_shutdown(void);

/*
 * The client's connection state, for health. up = false with a reason
 * ("connection to 127.0.0.1:6650 lost: ...", "connect to ...: Connection
 * refused") when a broker connection the client used in the last
 * DN_STATE_STALE_MS is lost or a connect attempt to it fails (once per
 * failed attempt, each with its reason); up = true when, after that or at
 * first, the connections it uses are established again. Producers and
 * consumers recover by themselves meanwhile. Runs from the loop, never
 * from inside another client call or callback; fn must not free the
 * client. Set it before creating producers and consumers; fn NULL stops
 * it. Returns 0 or -ENOMEM.
 */
#define DN_STATE_STALE_MS 15000u
typedef void (*dn_state_fn)(void *arg, bool up, const char *reason);
int dn_client_set_state_cb(struct dn_client *c, dn_state_fn fn, void *arg);

/* Where a topic is served: connect to connect_url; broker_url is its identity. */
struct dn_lookup_result {
	const char *connect_url;
	const char *broker_url;
	bool proxy;
};
typedef void (*dn_lookup_fn)(void *arg, int code, const char *error,
			     const struct dn_lookup_result *res);
/* TopicLookup on the service URL (Connect and Redirect alike). res is NULL on failure. */
int dn_lookup(struct dn_client *c, const char *topic, dn_lookup_fn cb, void *arg);

/* names: the partitions of topic ([topic] when not partitioned; empty when unknown). */
typedef void (*dn_partitions_fn)(void *arg, int code, const char *error, char *const *names,
				 size_t n);
int dn_topic_partitions(struct dn_client *c, const char *topic, dn_partitions_fn cb, void *arg);

/* ------------------------------------------------------------------ schema */

struct dn_schema {
	uint64_t id; /* identifies the subject; a version is (id, version) */
	uint32_t version;
	bool is_new_version; /* register only */
	const char *subject;
	const char *type; /* "json_schema", "avro", ... */
	const uint8_t *definition;
	size_t definition_len;
	const char *fingerprint;
	const char *compatibility_mode;
};
/* s is NULL on failure and valid during the call only. */
typedef void (*dn_schema_fn)(void *arg, int code, const char *error, const struct dn_schema *s);

int dn_schema_register(struct dn_client *c, const char *subject, const char *type,
		       const void *definition, size_t len, dn_schema_fn cb, void *arg);
int dn_schema_get_latest(struct dn_client *c, const char *subject, dn_schema_fn cb, void *arg);
/* version 0 = the latest version of that schema id. */
int dn_schema_get(struct dn_client *c, uint64_t id, uint32_t version, dn_schema_fn cb, void *arg);

/* ---------------------------------------------------------------- producer */

enum dn_dispatch {
	DN_DISPATCH_NON_RELIABLE = 0,
	DN_DISPATCH_RELIABLE = 1,
};

struct dn_producer_opts {
	const char *topic; /* "/namespace/topic" */
	const char *name;  /* producer name; the broker is idempotent on it */
	enum dn_dispatch dispatch;
	uint32_t partitions;        /* 0 = not partitioned; else N sub-producers "/ns/t-part-i" */
	uint32_t max_inflight;      /* per partition; 0 = 1. 1 keeps strict order */
	uint32_t retry_limit_ms;    /* fail a message unacknowledged this long; 0 = retry forever */
	const char *schema_subject; /* NULL = no schema */
};

struct dn_attr {
	const char *key;
	const char *value;
};

struct dn_producer;

/* Every partition's producer exists on its broker (once, the first time). */
typedef void (*dn_ready_fn)(void *arg);
/*
 * A permanent failure of the producer or consumer itself (refused by the
 * broker, bad topic, bad token): it will not recover by itself.
 */
typedef void (*dn_error_fn)(void *arg, int code, const char *error);

/* Starts creating at once; sends are accepted (queued) before it is ready. */
int dn_producer_new(struct dn_client *c, const struct dn_producer_opts *opts, dn_ready_fn on_ready,
		    dn_error_fn on_error, void *arg, struct dn_producer **out);

/*
 * Queue a message (payload and attributes are copied). on_done runs once,
 * when the broker acknowledged it (DN_OK) or it failed for good; a lost
 * connection, a moved topic or a restarted broker are handled inside, in
 * order. routing_key chooses the partition (FNV-1a) and is sent along;
 * NULL = round-robin. Returns 0, -EINVAL, -EMSGSIZE (bigger than the
 * message-size limit), -EPIPE (producer failed or closing), -ENOMEM.
 */
int dn_producer_send(struct dn_producer *p, const void *payload, size_t len,
		     const struct dn_attr *attrs, size_t nattrs, const char *routing_key,
		     dn_done_fn on_done, void *arg);

/* Messages queued or in flight, not yet acknowledged or failed. */
size_t dn_producer_pending(const struct dn_producer *p);

/* cb runs (asynchronously) once nothing is pending; a later flush replaces it. */
void dn_producer_flush(struct dn_producer *p, dn_done_fn cb, void *arg);

/*
 * Free the producer. Messages still pending get on_done(DN_CANCELLED)
 * from inside this call; flush first to keep them.
 */
void dn_producer_close(struct dn_producer *p);

/* ---------------------------------------------------------------- consumer */

enum dn_sub_type {
	DN_SUB_EXCLUSIVE = 0,
	DN_SUB_SHARED = 1,
	DN_SUB_FAILOVER = 2,
	DN_SUB_KEY_SHARED = 3,
};

/*
 * What a consumer tells besides messages and failures; each may be NULL.
 * Both run from the loop, never from inside a client call.
 */
struct dn_consumer_events {
	/*
	 * wait_for_topic: the topic does not exist (yet); reason says so in
	 * words ("topic /default/x does not exist yet"). Told once each time the
	 * consumer starts waiting; it retries with backoff and on_ready follows
	 * when the topic appears.
	 */
	void (*waiting)(void *arg, const char *reason);
	/*
	 * Offsets on partition topic jumped: expected was due, got arrived, so
	 * the broker skipped got - expected messages without telling (the real
	 * broker does when a subscription falls far behind). Checked on
	 * exclusive and failover subscriptions, where one consumer sees every
	 * offset; non-reliable topics carry no offsets and never report.
	 */
	void (*gap)(void *arg, const char *topic, uint64_t expected, uint64_t got);
};

struct dn_consumer_opts {
	const char *topic;        /* partitions are found with TopicPartitions */
	const char *name;         /* consumer name (same name = takeover) */
	const char *subscription; /* subscription name */
	enum dn_sub_type type;
	const char *const *key_filters; /* key_shared globs; may be NULL */
	size_t nkey_filters;
	/* A missing topic is waited for (events.waiting) instead of failing with NOT_FOUND. */
	bool wait_for_topic;
	struct dn_consumer_events events; /* copied */
};

/* A received message; everything is owned by it. Free with dn_message_free. */
struct dn_message {
	const uint8_t *payload;
	size_t payload_len;
	const struct dn_attr *attrs;
	size_t nattrs;
	const char *routing_key; /* NULL when none */
	const char *topic;       /* the partition it came from */
	uint64_t offset;         /* broker-stamped (reliable topics) */
	uint64_t publish_time;   /* ms since the epoch */
	const char *producer_name;
	bool has_schema;
	uint64_t schema_id;
	uint32_t schema_version;
};

struct dn_consumer;

/* The message belongs to the callee: ack or nack it, then dn_message_free it. */
typedef void (*dn_message_fn)(void *arg, struct dn_message *msg);

int dn_consumer_new(struct dn_client *c, const struct dn_consumer_opts *opts, dn_ready_fn on_ready,
		    dn_message_fn on_message, dn_error_fn on_error, void *arg,
		    struct dn_consumer **out);

/*
 * Acknowledge / negatively acknowledge (redeliver after delay_ms; reason may
 * be NULL). msg may be freed as soon as this returns; cb may be NULL.
 * Returns 0 or -ENOMEM / -EINVAL.
 */
int dn_consumer_ack(struct dn_consumer *cons, const struct dn_message *msg, dn_done_fn cb,
		    void *arg);
int dn_consumer_nack(struct dn_consumer *cons, const struct dn_message *msg, uint64_t delay_ms,
		     const char *reason, dn_done_fn cb, void *arg);

void dn_message_free(struct dn_message *msg);

/* Stop receiving and free; pending ack callbacks do not run. Unacked messages
 * are redelivered by the broker. */
void dn_consumer_close(struct dn_consumer *cons);

/*
 * Offset bookkeeping of one partition, for gap detection (dn_offsets_see):
 * the highest offset seen, valid once have is true.
 */
struct dn_offsets {
	bool have;
	uint64_t last;
};
/*
 * Note offset as received: returns the number of offsets skipped before it
 * (offset - last - 1 when it jumped past last + 1), else 0. A lower or
 * repeated offset is a redelivery, never a gap.
 */
uint64_t dn_offsets_see(struct dn_offsets *o, uint64_t offset);

/* --------------------------------------------------------------- partitions */

/* FNV-1a 64 (the Rust client's key hash). */
uint64_t dn_fnv1a64(const void *data, size_t len);
/* FNV-1a of the key % partitions (0 when partitions is 0). */
uint32_t dn_partition_for_key(const char *key, size_t key_len, uint32_t partitions);
/* "TOPIC-part-INDEX"; -ENAMETOOLONG when it does not fit. */
int dn_partition_name(char *buf, size_t cap, const char *topic, uint32_t index);

#endif
