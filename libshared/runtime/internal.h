/*
 * The runtime's private state, shared by worker_main.c (options, config,
 * loop, health), source.c (queue and producers) and sink.c (batches).
 */
#ifndef DC_RUNTIME_INTERNAL_H
#define DC_RUNTIME_INTERNAL_H

#include <ev.h>

#include "backoff.h"
#include "exit_codes.h"
#include "ipc/ipc.h"
#include "runtime/metrics.h"
#include "runtime/connector.h"

enum rt_on_error { RT_ON_ERROR_FAIL, RT_ON_ERROR_SKIP, RT_ON_ERROR_DLQ };

/* One producer per distinct Danube topic, created on first use. */
struct rt_producer {
	struct rt_producer *next;
	struct dc_rt *rt;
	char *topic;
	struct dn_producer *p;
	bool ready;
};

/* Appends node to a singly linked FIFO (head, tail, len; node->next is NULL). */
#define RT_FIFO_PUSH(head, tail, len, node)    \
	do {                                   \
		if (tail)                      \
			(tail)->next = (node); \
		else                           \
			(head) = (node);       \
		(tail) = (node);               \
		(len)++;                       \
	} while (0)

struct rt_src_rec;  /* source.c */
struct rt_sink_msg; /* sink.c */

struct dc_rt {
	struct ev_loop *loop;
	char *name;
	struct dc_config *cfg;
	struct dc_ipc *ipc;
	struct dn_client *client;
	ev_signal sigterm_w, sigint_w;
	ev_timer stop_timer;
	bool stopping;
	int exit_code;

	/* health */
	bool danube_up, external_up, ever_ready;
	char *external_reason;
	/* The client lost its broker connection (danube_up: created once, still). */
	bool danube_lost;
	char *danube_reason;
	/* A sink's topic does not exist yet (the consumer waits for it). */
	char *danube_waiting;

	/* [runtime] */
	enum rt_on_error on_error;
	const char *dlq_topic;
	int64_t max_retries, retry_backoff_ms, retry_backoff_max_ms;
	int64_t batch_size, batch_timeout_ms, batch_linger_ms, queue_size, stop_timeout_ms;
	int64_t max_unacked; /* [danube], sinks */

	struct rt_producer *producers;

	const struct dc_source_ops *sops;
	const struct dc_sink_ops *kops;
	void *state;

	/* source */
	struct rt_src_rec *q_head, *q_tail;
	size_t q_len;
	bool paused;
	/* Inside the source's stop(): what it still holds is taken beyond queue_size. */
	bool in_stop;
	/* stop() has returned: no more records. */
	bool intake_closed;
	size_t dlq_pending;
	/* [runtime] spool_dir: the write-ahead spool (source.c), NULL when off. */
	struct dc_spool *spool;
	bool spool_failing;

	/* sink */
	struct dn_consumer *consumer;
	struct rt_sink_msg *pend_head, *pend_tail;
	size_t pend_len;
	struct dc_batch batch;
	struct rt_sink_msg **batch_msgs;
	bool batch_busy;   /* the sink's write is running */
	bool batch_retry;  /* waiting for retry_timer */
	bool batch_parked; /* waiting for the external system to be up */
	/* A pending message filled its partition's broker window: write now. */
	bool window_full;
	struct dc_backoff backoff;
	ev_timer batch_timer, retry_timer;
	ev_idle kick;
	size_t acks_pending;
};

/* What became of a record that failed for good (dlq.c). */
enum rt_fate {
	RT_FATE_SKIPPED, /* on_error = skip */
	RT_FATE_DLQ,     /* its copy is on the DLQ topic */
	RT_FATE_LOST,    /* neither (on_error = fail, the DLQ failed, closing): the loop ends */
};

/* A record that failed for good; what msg points to stays valid until done. */
struct rt_dead {
	/* Its payload, attributes, routing key and topic (the one it was for or came from). */
	struct dn_message msg;
	bool has_offset;  /* msg.offset is the broker's (sinks) */
	const char *what; /* "record 12", "offset 5": for logs, read during the call only */
	const char *error_type;
	unsigned attempts;
	void (*done)(void *arg, enum rt_fate fate);
	void *arg;
};

/* dlq.c: applies on_error to d, then calls d->done (maybe later: a DLQ copy in flight). */
void rt_dead_letter(struct dc_rt *rt, const struct rt_dead *d, const char *why);

/* worker_main.c */
void rt_health_update(struct dc_rt *rt);
void rt_danube_up(struct dc_rt *rt);
/* The consumer waits for its topic to exist: degraded with reason until rt_danube_up. */
void rt_danube_waiting(struct dc_rt *rt, const char *reason);
/* Leave the loop now with exit code code (the first caller wins). */
void rt_fail(struct dc_rt *rt, int code);
/* A permanent producer/consumer failure: 69 when refused for good, else 1. */
void rt_dependency_failed(struct dc_rt *rt, int code, const char *error);
/* The drain finished: leave the loop with exit code 0. */
void rt_drained(struct dc_rt *rt);
/* producers.c: the producer of topic, created on demand; NULL on failure (logged). */
struct rt_producer *rt_producer_get(struct dc_rt *rt, const char *topic);
void rt_producers_close(struct dc_rt *rt);

/* source.c */
int rt_source_start(struct dc_rt *rt);
void rt_source_stop(struct dc_rt *rt);
void rt_source_free(struct dc_rt *rt);
/* Records taken and not acknowledged yet (the drain's leftovers). */
size_t rt_source_unfinished(const struct dc_rt *rt);

/* sink.c */
int rt_sink_start(struct dc_rt *rt);
void rt_sink_stop(struct dc_rt *rt);
/* dc_rt_external_up: a batch held while the external system was down is written. */
void rt_sink_external_up(struct dc_rt *rt);
void rt_sink_free(struct dc_rt *rt);
/* Messages in a batch or with an acknowledgement or DLQ copy in flight. */
size_t rt_sink_unfinished(const struct dc_rt *rt);

#endif
