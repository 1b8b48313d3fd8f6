/*
 * A worker's health and metrics registry: its state, last error and per-topic
 * counters and histograms, which the IPC server (ipc/ipc.h) reports to the
 * supervisor through dc_health_fill.
 *
 * One registry per process, used from the worker's loop thread only: updates
 * are plain integer increments with no locks. A topic's fields may be updated
 * directly (t->received += n); the pointers this module hands out stay valid
 * until dc_metrics_reset().
 */
#ifndef DC_RUNTIME_METRICS_H
#define DC_RUNTIME_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "control.pb.h"

enum dc_health_state {
	DC_HEALTH_STARTING = dcctl_HealthState_HEALTH_STARTING,
	DC_HEALTH_READY = dcctl_HealthState_HEALTH_READY,
	DC_HEALTH_DEGRADED = dcctl_HealthState_HEALTH_DEGRADED,
	DC_HEALTH_STOPPING = dcctl_HealthState_HEALTH_STOPPING,
};

#define DC_METRICS_HIST_MAX_BOUNDS 16

/* Prometheus-style histogram: bucket i counts values <= bounds[i]; the last is +Inf. */
struct dc_metrics_hist {
	const double *bounds; /* ascending; static storage */
	unsigned nbounds;
	uint64_t buckets[DC_METRICS_HIST_MAX_BOUNDS + 1]; /* not cumulative */
	uint64_t count;
	double sum;
};

/* Prometheus' default buckets, in seconds (processing duration). */
extern const double dc_metrics_duration_bounds[];
extern const unsigned dc_metrics_duration_nbounds;
/* Batch sizes, in messages. */
extern const double dc_metrics_batch_bounds[];
extern const unsigned dc_metrics_batch_nbounds;

static inline void dc_metrics_observe(struct dc_metrics_hist *h, double v)
{
	unsigned i = 0;

	if (v != v) /* NaN would poison the sum for good */
		return;
	while (i < h->nbounds && v > h->bounds[i])
		i++;
	h->buckets[i]++;
	h->count++;
	h->sum += v;
}

struct dc_metrics_error_count;

/* Counters of one Danube topic. The public fields are the runtime's to update. */
struct dc_metrics_topic {
	uint64_t received;
	uint64_t processed;
	uint64_t retried;
	uint64_t dlq;
	uint64_t skipped;                  /* offsets a reliable subscription jumped over */
	int64_t inflight;                  /* gauge: kept current by the runtime */
	struct dc_metrics_hist duration;   /* processing duration, seconds */
	struct dc_metrics_hist batch_size; /* messages per batch */

	/* private */
	char *name;
	struct dc_metrics_error_count *errors; /* failed, by error_type, in creation order */
};

/*
 * The topic named name, created on first use (counters at 0). NULL only when
 * out of memory. Look it up once and keep the pointer: the lookup is linear.
 */
struct dc_metrics_topic *dc_metrics_topic(const char *name);

/*
 * The failed-messages counter of t for error_type (a short class such as
 * "broker", "external", "invalid_data"; never an error's text, the label must
 * stay bounded), created on first use. NULL only when out of memory.
 */
uint64_t *dc_metrics_failed_counter(struct dc_metrics_topic *t, const char *error_type);

/* Shorthand for *dc_metrics_failed_counter(t, error_type) += n; 0 or -1 (ENOMEM). */
int dc_metrics_count_failed(struct dc_metrics_topic *t, const char *error_type, uint64_t n);

/* reason: why starting/degraded, in words; NULL for none. Copied. */
void dc_health_set_state(enum dc_health_state state, const char *reason);
enum dc_health_state dc_health_get_state(void);

/* The last error, in words (NULL clears it). Copied. */
void dc_health_set_error(const char *text);

/*
 * Fill *out (zeroed first) with a deep copy of the registry, pid included.
 * Everything in it is malloc'd: release with pb_release(dcctl_Health_fields, out),
 * also after a failure. Returns 0, or -1 when out of memory.
 */
int dc_health_fill(dcctl_Health *out);

/* Forget every topic, error and state (back to STARTING) and free their memory. */
void dc_metrics_reset(void);

#endif
