/* The worker's health and metrics registry reported over IPC (see health.h). */
#include "runtime/metrics.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dc_metrics_error_count {
	uint64_t count; /* first: dc_metrics_failed_counter hands out its address */
	char *type;
	struct dc_metrics_error_count *next;
};

const double dc_metrics_duration_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25,
					     0.5,   1,    2.5,   5,    10};
const unsigned dc_metrics_duration_nbounds =
	sizeof(dc_metrics_duration_bounds) / sizeof(dc_metrics_duration_bounds[0]);
const double dc_metrics_batch_bounds[] = {1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000};
const unsigned dc_metrics_batch_nbounds =
	sizeof(dc_metrics_batch_bounds) / sizeof(dc_metrics_batch_bounds[0]);

static struct {
	enum dc_health_state state;
	char *reason;
	char *last_error;
	/* Pointers, not structs: a topic's address must survive growing the array. */
	struct dc_metrics_topic **topics;
	size_t ntopics, cap;
} R;

struct dc_metrics_topic *dc_metrics_topic(const char *name)
{
	struct dc_metrics_topic *t;

	for (size_t i = 0; i < R.ntopics; i++) {
		if (strcmp(R.topics[i]->name, name) == 0)
			return R.topics[i];
	}
	if (R.ntopics == R.cap) {
		size_t cap = R.cap ? R.cap * 2 : 4;
		struct dc_metrics_topic **v = realloc(R.topics, cap * sizeof(*v));

		if (!v)
			return NULL;
		R.topics = v;
		R.cap = cap;
	}
	t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->name = strdup(name);
	if (!t->name) {
		free(t);
		return NULL;
	}
	t->duration.bounds = dc_metrics_duration_bounds;
	t->duration.nbounds = dc_metrics_duration_nbounds;
	t->batch_size.bounds = dc_metrics_batch_bounds;
	t->batch_size.nbounds = dc_metrics_batch_nbounds;
	R.topics[R.ntopics++] = t;
	return t;
}

uint64_t *dc_metrics_failed_counter(struct dc_metrics_topic *t, const char *error_type)
{
	struct dc_metrics_error_count **pp = &t->errors;

	for (; *pp; pp = &(*pp)->next) {
		if (strcmp((*pp)->type, error_type) == 0)
			return &(*pp)->count;
	}
	*pp = calloc(1, sizeof(**pp));
	if (!*pp)
		return NULL;
	(*pp)->type = strdup(error_type);
	if (!(*pp)->type) {
		free(*pp);
		*pp = NULL;
		return NULL;
	}
	return &(*pp)->count;
}

int dc_metrics_count_failed(struct dc_metrics_topic *t, const char *error_type, uint64_t n)
{
	uint64_t *c = dc_metrics_failed_counter(t, error_type);

	if (!c)
		return -1;
	*c += n;
	return 0;
}

/* Replace *slot by a copy of s; on ENOMEM the old text goes rather than stay stale. */
static void set_text(char **slot, const char *s)
{
	free(*slot);
	*slot = s ? strdup(s) : NULL;
}

void dc_health_set_state(enum dc_health_state state, const char *reason)
{
	R.state = state;
	set_text(&R.reason, reason);
}

enum dc_health_state dc_health_get_state(void)
{
	return R.state;
}

void dc_health_set_error(const char *text)
{
	set_text(&R.last_error, text);
}

static int copy_text(char **dst, const char *src)
{
	if (!src)
		return 0;
	*dst = strdup(src);
	return *dst ? 0 : -1;
}

static int hist_fill(dcctl_Histogram *out, const struct dc_metrics_hist *h)
{
	out->bounds = malloc(h->nbounds * sizeof(*out->bounds));
	if (!out->bounds)
		return -1;
	memcpy(out->bounds, h->bounds, h->nbounds * sizeof(*out->bounds));
	out->bounds_count = (pb_size_t)h->nbounds;
	out->buckets = malloc((h->nbounds + 1) * sizeof(*out->buckets));
	if (!out->buckets)
		return -1;
	memcpy(out->buckets, h->buckets, (h->nbounds + 1) * sizeof(*out->buckets));
	out->buckets_count = (pb_size_t)(h->nbounds + 1);
	out->count = h->count;
	out->sum = h->sum;
	return 0;
}

static int topic_fill(dcctl_TopicStats *out, const struct dc_metrics_topic *t)
{
	size_t n = 0;

	if (copy_text(&out->topic, t->name) < 0)
		return -1;
	out->received = t->received;
	out->processed = t->processed;
	out->retried = t->retried;
	out->dlq = t->dlq;
	out->skipped = t->skipped;
	out->inflight = t->inflight;
	for (const struct dc_metrics_error_count *e = t->errors; e; e = e->next)
		n++;
	if (n) {
		out->failed = calloc(n, sizeof(*out->failed));
		if (!out->failed)
			return -1;
		for (const struct dc_metrics_error_count *e = t->errors; e; e = e->next) {
			dcctl_ErrorCount *c = &out->failed[out->failed_count++];

			c->count = e->count;
			if (copy_text(&c->error_type, e->type) < 0)
				return -1;
		}
	}
	out->has_processing_duration = true;
	if (hist_fill(&out->processing_duration, &t->duration) < 0)
		return -1;
	out->has_batch_size = true;
	return hist_fill(&out->batch_size, &t->batch_size);
}

int dc_health_fill(dcctl_Health *out)
{
	memset(out, 0, sizeof(*out));
	out->state = (dcctl_HealthState)R.state;
	out->pid = (uint64_t)getpid();
	if (copy_text(&out->reason, R.reason) < 0 || copy_text(&out->last_error, R.last_error) < 0)
		return -1;
	if (!R.ntopics)
		return 0;
	out->topics = calloc(R.ntopics, sizeof(*out->topics));
	if (!out->topics)
		return -1;
	/* Count each entry as soon as it exists so pb_release frees a partial copy too. */
	for (size_t i = 0; i < R.ntopics; i++) {
		out->topics_count++;
		if (topic_fill(&out->topics[i], R.topics[i]) < 0)
			return -1;
	}
	return 0;
}

void dc_metrics_reset(void)
{
	for (size_t i = 0; i < R.ntopics; i++) {
		struct dc_metrics_topic *t = R.topics[i];
		struct dc_metrics_error_count *e = t->errors;

		while (e) {
			struct dc_metrics_error_count *next = e->next;

			free(e->type);
			free(e);
			e = next;
		}
		free(t->name);
		free(t);
	}
	free(R.topics);
	free(R.reason);
	free(R.last_error);
	memset(&R, 0, sizeof(R));
	R.state = DC_HEALTH_STARTING;
}
