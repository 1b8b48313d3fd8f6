/*
 * The connector runtime: a connector is a vtable of a few callbacks; the
 * runtime owns main(), configuration, the libev loop, the Danube producer or
 * consumer, batching, retries, the dead-letter topic, health, metrics and
 * graceful drain.
 *
 * A connector keeps no queue, held batch, retry loop or dead-letter logic:
 * it reports what happened and the runtime decides (worker_main.c,
 * source.c, sink.c, dlq.c, producers.c).
 * - dc_rt_submit always takes the record: queue_size is a soft limit past
 *   which the runtime calls pause(), and resume() once the queue drained to
 *   half. Inside stop() it still takes what the source holds (it is drained
 *   before exit); once stop() returned it fails with -EPIPE.
 * - A sink's write() is never called while its external system is reported
 *   down: the runtime keeps the batch and writes it after dc_rt_external_up.
 * - At exit the connector's close() runs before the runtime releases its own
 *   state: a sink holding a batch in close() must drop it without touching it
 *   (the runtime frees those messages; they are not acknowledged).
 * - A connector calls dc_rt_external_up() once its external system is
 *   connected, else health stays "starting" and a sink is never written.
 * - The drain (SIGTERM) ends with exit 0 once everything taken is
 *   acknowledged; when [runtime] stop_timeout_ms cuts it short, the worker
 *   logs how many records were left and exits 75 (DC_EXIT_TEMPFAIL): a
 *   sink's are redelivered, a source's are read again when its system
 *   keeps them (a slot) or its spool does.
 * - Metric topic names: the Danube topic of each record (sources), the
 *   partition a message came from (sinks).
 */
#ifndef DC_RUNTIME_CONNECTOR_H
#define DC_RUNTIME_CONNECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "config_keys.h"
#include "danube/client.h"

struct ev_loop;
struct dc_rt;

#define DC_RT_MAX_KEY_TABLES 4

/* The worker's loop, its connector name (file stem or CONNECTOR_NAME), its config. */
struct ev_loop *dc_rt_loop(struct dc_rt *rt);
const char *dc_rt_name(const struct dc_rt *rt);
const struct dc_config *dc_rt_config(const struct dc_rt *rt);

/*
 * The external system's connection state: the worker is ready only when
 * Danube and the external system are both up; while either is down it is
 * degraded (or starting, before the first time both were up) with the
 * reason (printf-style). A sink is not written to while it is down: the
 * runtime keeps the batch and writes it after dc_rt_external_up.
 */
void dc_rt_external_up(struct dc_rt *rt);
void dc_rt_external_down(struct dc_rt *rt, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Report an error in words (last error in status); error_type is a short class. */
void dc_rt_report_error(struct dc_rt *rt, const char *topic, const char *error_type,
			const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* ------------------------------------------------------------------ sources */

/* One record from the external system to Danube. */
struct dc_record {
	const void *payload;
	size_t len;
	const struct dn_attr *attrs;
	size_t nattrs;
	const char *routing_key; /* NULL: round-robin over partitions */
	const char *topic;       /* Danube topic; NULL: [danube] topic */
	uint64_t token;          /* the connector's position, handed back by committed() */
	uint64_t received_us;    /* when it was received (dc_now_us); 0 = now */
};

/*
 * Hand a record to the runtime (everything is copied). Returns 0: the record
 * is taken even past queue_size (the runtime then calls pause(), and
 * resume() once the queue drained: a source stops reading in between, but
 * hands over what it already has). -EPIPE once stop() returned or the worker
 * is failing, -EINVAL without a topic, -ENOMEM.
 */
int dc_rt_submit(struct dc_rt *rt, const struct dc_record *rec);

struct dc_source_ops {
	const char *type; /* "source-mqtt": the binary and syslog names */
	/* The connector's own sections' keys: up to DC_RT_MAX_KEY_TABLES tables. */
	const struct dc_cfg_table *keys[DC_RT_MAX_KEY_TABLES];
	/* The size of the connector's state: the runtime allocates it zeroed and frees it. */
	size_t state_size;
	/*
	 * Check the configuration beyond types (report FILE:LINE problems into
	 * diag via dc_config_where) and fill state. No I/O yet: --check calls
	 * open and close only. Returns 0, or -1 having released what it took
	 * (close is not called then).
	 */
	int (*open)(struct dc_rt *rt, const struct dc_config *cfg, void *state,
		    struct dc_diag *diag);
	/* Connect and start reading (asynchronously, on dc_rt_loop). Returns 0 or -1. */
	int (*start)(void *state);
	void (*pause)(void *state);
	void (*resume)(void *state);
	/*
	 * Every record submitted up to and including the one carrying token is
	 * acknowledged by the broker (called in submission order, the highest
	 * contiguous token): the source may commit its position up to it.
	 */
	void (*committed)(void *state, uint64_t token);
	/* Stop reading (drain is starting); NULL: pause() is called instead. */
	void (*stop)(void *state);
	/* Release everything but the state itself. */
	void (*close)(void *state);
};

/* ------------------------------------------------------------------- sinks */

enum dc_write_result {
	DC_WRITE_OK = 0,
	DC_WRITE_RETRY = 1, /* transient: the runtime retries it with backoff */
	DC_WRITE_FATAL = 2, /* this record can never succeed: on_error applies */
};

struct dc_sink_record {
	const struct dn_message *msg; /* payload, attributes, topic, offset ... */
	enum dc_write_result result;  /* set by the sink's write */
	char error[256];              /* set by the sink when not OK: why, in words */
	const char *error_type;       /* short class when not OK ("external", "invalid_data") */
};

struct dc_batch {
	struct dc_sink_record *records;
	size_t n;
	unsigned attempt; /* 0 on the first write, then 1.. for retries */
};

/*
 * A sink found that the broker skipped offsets expected .. got-1 of topic
 * (the runtime's consumer reports those it sees itself): logged as an
 * error, counted in danube_connector_skipped_messages_total, shown as the
 * last error.
 */
void dc_rt_skipped(struct dc_rt *rt, const char *topic, uint64_t expected, uint64_t got);

/*
 * Sets a record's result, its error class (ignored for OK) and why, in words
 * (printf-style; "" for OK).
 */
void dc_rt_set_result(struct dc_sink_record *r, enum dc_write_result res, const char *error_type,
		      const char *fmt, ...) __attribute__((format(printf, 4, 5)));

/* The sink finished a batch: every record's result is set. */
void dc_rt_write_done(struct dc_rt *rt, struct dc_batch *batch);

/* Every record of batch RETRY ("external", why), then dc_rt_write_done. */
void dc_rt_retry_all(struct dc_rt *rt, struct dc_batch *batch, const char *why);

struct dc_sink_ops {
	const char *type;
	const struct dc_cfg_table *keys[DC_RT_MAX_KEY_TABLES];
	size_t state_size; /* as for sources */
	int (*open)(struct dc_rt *rt, const struct dc_config *cfg, void *state,
		    struct dc_diag *diag);
	int (*start)(void *state);
	/*
	 * Write a batch, asynchronously: set each record's result, then call
	 * dc_rt_write_done (possibly from inside write). One batch at a time.
	 */
	void (*write)(void *state, struct dc_batch *batch);
	void (*close)(void *state);
};

/*
 * A worker's main(): options -c/--config FILE, --check, -h, -V; loads
 * configuration (common sections + ops->keys), runs the loop until
 * SIGTERM/SIGINT, drains, exits 0 (75 when stop_timeout_ms cut the drain
 * short, 78 on a configuration error, 69 when a dependency refuses us for
 * good, 64 on a bad command line, 1 otherwise: exit_codes.h).
 */
int dc_source_main(int argc, char **argv, const struct dc_source_ops *ops);
int dc_sink_main(int argc, char **argv, const struct dc_sink_ops *ops);

/*
 * A connector's ops and its whole main(), at the end of its file:
 * DC_SOURCE_WORKER("source-x", sx, &sx_keys) names sx_open, sx_start,
 * sx_pause, sx_resume, sx_committed, sx_stop and sx_close;
 * DC_SINK_WORKER("sink-x", kx, &kx_keys) names kx_open, kx_start, kx_write
 * and kx_close. The state is a struct named like the prefix (struct sx).
 * The key tables (struct dc_cfg_table *) follow the prefix.
 */
#define DC_SOURCE_WORKER(type_, prefix, ...)                      \
	static const struct dc_source_ops prefix##_ops = {        \
		.type = (type_),                                  \
		.keys = {__VA_ARGS__},                            \
		.state_size = sizeof(struct prefix),              \
		.open = prefix##_open,                            \
		.start = prefix##_start,                          \
		.pause = prefix##_pause,                          \
		.resume = prefix##_resume,                        \
		.committed = prefix##_committed,                  \
		.stop = prefix##_stop,                            \
		.close = prefix##_close,                          \
	};                                                        \
	int main(int argc, char **argv)                           \
	{                                                         \
		return dc_source_main(argc, argv, &prefix##_ops); \
	}
#define DC_SINK_WORKER(type_, prefix, ...)                      \
	static const struct dc_sink_ops prefix##_ops = {        \
		.type = (type_),                                \
		.keys = {__VA_ARGS__},                          \
		.state_size = sizeof(struct prefix),            \
		.open = prefix##_open,                          \
		.start = prefix##_start,                        \
		.write = prefix##_write,                        \
		.close = prefix##_close,                        \
	};                                                      \
	int main(int argc, char **argv)                         \
	{                                                       \
		return dc_sink_main(argc, argv, &prefix##_ops); \
	}

#endif
