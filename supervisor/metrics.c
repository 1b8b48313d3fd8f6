/*
 * /metrics: the Prometheus text of every worker, from the supervisor's own
 * view (up, restarts, health) and each worker's last health answer (per topic).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "supd.h"

/* Label values: backslash, quote and newline escaped, per the text format. */
static void put_label(FILE *f, const char *v)
{
	for (const char *p = v != NULL ? v : ""; *p; p++) {
		if (*p == '\\')
			fputs("\\\\", f);
		else if (*p == '"')
			fputs("\\\"", f);
		else if (*p == '\n')
			fputs("\\n", f);
		else
			fputc(*p, f);
	}
}

static void put_head(FILE *f, const char *name, const char *type, const char *help)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void put_labels(FILE *f, const struct dc_worker *w, const char *topic)
{
	fputs("{connector=\"", f);
	put_label(f, w->spec.name);
	if (topic != NULL) {
		fputs("\",topic=\"", f);
		put_label(f, topic);
	}
	fputc('"', f);
}

static const dcctl_Health *health_of(const struct dc_worker *w)
{
	return w->last.has_health ? &w->last.health : NULL;
}

typedef uint64_t (*topic_u64_fn)(const dcctl_TopicStats *t);

static uint64_t t_received(const dcctl_TopicStats *t)
{
	return t->received;
}
static uint64_t t_processed(const dcctl_TopicStats *t)
{
	return t->processed;
}
static uint64_t t_retried(const dcctl_TopicStats *t)
{
	return t->retried;
}
static uint64_t t_dlq(const dcctl_TopicStats *t)
{
	return t->dlq;
}
static uint64_t t_skipped(const dcctl_TopicStats *t)
{
	return t->skipped;
}

static void put_topic_counter(FILE *f, const struct dc_supd *sup, const char *name,
			      const char *help, topic_u64_fn get)
{
	put_head(f, name, "counter", help);
	for (size_t i = 0; i < sup->nworkers; i++) {
		const struct dc_worker *w = sup->workers[i];
		const dcctl_Health *h = health_of(w);

		for (size_t j = 0; h != NULL && j < h->topics_count; j++) {
			fputs(name, f);
			put_labels(f, w, h->topics[j].topic);
			fprintf(f, "} %llu\n", (unsigned long long)get(&h->topics[j]));
		}
	}
}

static void put_failed(FILE *f, const struct dc_supd *sup)
{
	const char *name = "danube_connector_messages_failed_total";

	put_head(f, name, "counter", "Messages that failed, by error class.");
	for (size_t i = 0; i < sup->nworkers; i++) {
		const struct dc_worker *w = sup->workers[i];
		const dcctl_Health *h = health_of(w);

		for (size_t j = 0; h != NULL && j < h->topics_count; j++) {
			const dcctl_TopicStats *t = &h->topics[j];

			for (size_t k = 0; k < t->failed_count; k++) {
				fputs(name, f);
				put_labels(f, w, t->topic);
				fputs(",error_type=\"", f);
				put_label(f, t->failed[k].error_type);
				fprintf(f, "\"} %llu\n", (unsigned long long)t->failed[k].count);
			}
		}
	}
}

static void put_inflight(FILE *f, const struct dc_supd *sup)
{
	const char *name = "danube_connector_inflight_messages";

	put_head(f, name, "gauge", "Messages being processed right now.");
	for (size_t i = 0; i < sup->nworkers; i++) {
		const struct dc_worker *w = sup->workers[i];
		const dcctl_Health *h = health_of(w);

		for (size_t j = 0; h != NULL && j < h->topics_count; j++) {
			fputs(name, f);
			put_labels(f, w, h->topics[j].topic);
			fprintf(f, "} %lld\n", (long long)h->topics[j].inflight);
		}
	}
}

static void put_hist_one(FILE *f, const char *name, const struct dc_worker *w, const char *topic,
			 const dcctl_Histogram *hg)
{
	uint64_t cum = 0;

	for (size_t b = 0; b < hg->bounds_count; b++) {
		cum += b < hg->buckets_count ? hg->buckets[b] : 0;
		fprintf(f, "%s_bucket", name);
		put_labels(f, w, topic);
		fprintf(f, ",le=\"%g\"} %llu\n", hg->bounds[b], (unsigned long long)cum);
	}
	fprintf(f, "%s_bucket", name);
	put_labels(f, w, topic);
	fprintf(f, ",le=\"+Inf\"} %llu\n", (unsigned long long)hg->count);
	fprintf(f, "%s_sum", name);
	put_labels(f, w, topic);
	fprintf(f, "} %.17g\n", hg->sum);
	fprintf(f, "%s_count", name);
	put_labels(f, w, topic);
	fprintf(f, "} %llu\n", (unsigned long long)hg->count);
}

static void put_histograms(FILE *f, const struct dc_supd *sup, bool duration)
{
	const char *name = duration ? "danube_connector_processing_duration_seconds"
				    : "danube_connector_batch_size";

	put_head(f, name, "histogram",
		 duration ? "Time to process a message, in seconds." : "Messages per batch.");
	for (size_t i = 0; i < sup->nworkers; i++) {
		const struct dc_worker *w = sup->workers[i];
		const dcctl_Health *h = health_of(w);

		for (size_t j = 0; h != NULL && j < h->topics_count; j++) {
			const dcctl_TopicStats *t = &h->topics[j];

			if (duration && t->has_processing_duration)
				put_hist_one(f, name, w, t->topic, &t->processing_duration);
			else if (!duration && t->has_batch_size)
				put_hist_one(f, name, w, t->topic, &t->batch_size);
		}
	}
}

/* 1 ready, 0.5 degraded, 0 down: only a live process's answer counts. */
static const char *health_value(const struct dc_worker *w)
{
	const dcctl_Health *h = health_of(w);

	if (w->pid == 0 || h == NULL)
		return "0";
	if (h->state == dcctl_HealthState_HEALTH_READY)
		return "1";
	if (h->state == dcctl_HealthState_HEALTH_DEGRADED)
		return "0.5";
	return "0";
}

char *dc_metrics_render(const struct dc_supd *sup, size_t *len)
{
	char *buf = NULL;
	size_t size = 0;
	FILE *f = open_memstream(&buf, &size);

	if (f == NULL)
		return NULL;
	put_head(f, "danube_connector_up", "gauge", "1 while the connector's worker is running.");
	for (size_t i = 0; i < sup->nworkers; i++) {
		fputs("danube_connector_up", f);
		put_labels(f, sup->workers[i], NULL);
		fprintf(f, "} %d\n", sup->workers[i]->fsm.state == DC_W_RUNNING ? 1 : 0);
	}
	put_head(f, "danube_connector_restarts_total", "counter",
		 "Restarts of the connector's worker after a crash or hang.");
	for (size_t i = 0; i < sup->nworkers; i++) {
		fputs("danube_connector_restarts_total", f);
		put_labels(f, sup->workers[i], NULL);
		fprintf(f, "} %llu\n", (unsigned long long)sup->workers[i]->restarts_total);
	}
	put_head(f, "danube_connector_health", "gauge", "1 ready, 0.5 degraded, 0 down.");
	for (size_t i = 0; i < sup->nworkers; i++) {
		fputs("danube_connector_health", f);
		put_labels(f, sup->workers[i], NULL);
		fprintf(f, "} %s\n", health_value(sup->workers[i]));
	}
	put_topic_counter(f, sup, "danube_connector_messages_received_total",
			  "Messages received from the source side.", t_received);
	put_topic_counter(f, sup, "danube_connector_messages_processed_total",
			  "Messages delivered to the sink side.", t_processed);
	put_failed(f, sup);
	put_topic_counter(f, sup, "danube_connector_messages_retried_total",
			  "Delivery attempts that were retried.", t_retried);
	put_topic_counter(f, sup, "danube_connector_dlq_total",
			  "Messages sent to the dead-letter topic.", t_dlq);
	put_topic_counter(
		f, sup, "danube_connector_skipped_messages_total",
		"Offsets a reliable subscription jumped over: messages the broker skipped.",
		t_skipped);
	put_inflight(f, sup);
	put_histograms(f, sup, true);
	put_histograms(f, sup, false);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	*len = size;
	return buf;
}
