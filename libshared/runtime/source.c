/*
 * The source side of the runtime: a bounded FIFO of submitted records, each
 * sent to its topic's producer at once; committed() reports the contiguous
 * acknowledged prefix, and a full FIFO pauses the source (backpressure).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "runtime/internal.h"

struct rt_src_rec {
	struct rt_src_rec *next;
	struct dc_rt *rt;
	struct dc_ipc_topic *metrics;
	char *topic;
	void *payload;
	size_t len;
	struct dn_attr *attrs;
	size_t nattrs;
	char *routing_key;
	uint64_t token;
	uint64_t received_us;
	unsigned attempts;
	bool done;
};

static void rec_free(struct rt_src_rec *r)
{
	size_t i;

	for (i = 0; i < r->nattrs; i++) {
		free((char *)r->attrs[i].key);
		free((char *)r->attrs[i].value);
	}
	free(r->attrs);
	free(r->payload);
	free(r->routing_key);
	free(r->topic);
	free(r);
}

static struct rt_src_rec *rec_copy(struct dc_rt *rt, const struct dc_record *in, const char *topic)
{
	struct rt_src_rec *r = calloc(1, sizeof(*r));
	size_t i;

	if (!r)
		return NULL;
	r->rt = rt;
	r->token = in->token;
	r->received_us = in->received_us ? in->received_us : dc_now_us();
	r->len = in->len;
	r->topic = strdup(topic);
	r->payload = malloc(in->len ? in->len : 1);
	r->attrs = calloc(in->nattrs ? in->nattrs : 1, sizeof(*r->attrs));
	if (!r->topic || !r->payload || !r->attrs)
		goto fail;
	if (in->len)
		memcpy(r->payload, in->payload, in->len);
	for (i = 0; i < in->nattrs; i++) {
		r->attrs[i].key = strdup(in->attrs[i].key);
		r->attrs[i].value = strdup(in->attrs[i].value ? in->attrs[i].value : "");
		r->nattrs = i + 1;
		if (!r->attrs[i].key || !r->attrs[i].value)
			goto fail;
	}
	if (in->routing_key && !(r->routing_key = strdup(in->routing_key)))
		goto fail;
	return r;
fail:
	rec_free(r);
	return NULL;
}

static void maybe_resume(struct dc_rt *rt)
{
	size_t low = (size_t)rt->queue_size / 2;

	if (rt->paused && !rt->stopping && rt->q_len <= low) {
		rt->paused = false;
		dc_log_debug("queue drained to %zu: resuming the source", rt->q_len);
		rt->sops->resume(rt->state);
	}
}

static void maybe_drained(struct dc_rt *rt)
{
	if (rt->stopping && rt->q_len == 0 && rt->dlq_pending == 0)
		rt_drained(rt);
}

/* Pops the acknowledged prefix and tells the source the last token of it. */
static void commit_prefix(struct dc_rt *rt)
{
	struct rt_src_rec *r;
	uint64_t token = 0;
	bool any = false;

	while ((r = rt->q_head) && r->done) {
		rt->q_head = r->next;
		if (!rt->q_head)
			rt->q_tail = NULL;
		rt->q_len--;
		token = r->token;
		any = true;
		rec_free(r);
	}
	if (any)
		rt->sops->committed(rt->state, token);
	maybe_resume(rt);
	maybe_drained(rt);
}

static void rec_finished(struct dc_rt *rt, struct rt_src_rec *r)
{
	r->done = true;
	r->metrics->inflight--;
	commit_prefix(rt);
}

static void on_dlq_done(void *arg, int code, const char *error)
{
	struct rt_src_rec *r = arg;
	struct dc_rt *rt = r->rt;

	rt->dlq_pending--;
	if (code == DN_CANCELLED && rt->exit_code >= 0)
		return;
	if (code != DN_OK) {
		dc_rt_report_error(rt, r->topic, "dlq", "cannot write to the DLQ %s: %s",
				   rt->dlq_topic, error);
		rt_fail(rt, 1);
		return;
	}
	r->metrics->dlq++;
	rec_finished(rt, r);
}

/* Sends r to the DLQ with attributes saying why; 0 or -1. */
static int send_to_dlq(struct dc_rt *rt, struct rt_src_rec *r, const char *why)
{
	struct rt_producer *p = rt_producer_get(rt, rt->dlq_topic);
	struct dn_attr *a;
	char attempts[24];
	size_t n = 0, i;
	int rc;

	a = calloc(r->nattrs + 4, sizeof(*a));
	if (!p || !a) {
		free(a);
		return -1;
	}
	for (i = 0; i < r->nattrs; i++)
		a[n++] = r->attrs[i];
	snprintf(attempts, sizeof(attempts), "%u", r->attempts);
	a[n++] = (struct dn_attr){"dlq.error", why};
	a[n++] = (struct dn_attr){"dlq.error_type", "broker"};
	a[n++] = (struct dn_attr){"dlq.source_topic", r->topic};
	a[n++] = (struct dn_attr){"dlq.attempts", attempts};
	rc = dn_producer_send(p->p, r->payload, r->len, a, n, r->routing_key, on_dlq_done, r);
	free(a);
	if (rc != 0)
		return -1;
	rt->dlq_pending++;
	return 0;
}

/* A record the broker will not take: on_error decides. */
static void rec_failed(struct dc_rt *rt, struct rt_src_rec *r, const char *why)
{
	dc_rt_report_error(rt, r->topic, "broker", "record %llu not delivered: %s",
			   (unsigned long long)r->token, why);
	switch (rt->on_error) {
	case RT_ON_ERROR_SKIP:
		rec_finished(rt, r);
		return;
	case RT_ON_ERROR_DLQ:
		if (send_to_dlq(rt, r, why) == 0)
			return;
		dc_log_error("%s: cannot send record %llu to the DLQ", r->topic,
			     (unsigned long long)r->token);
		break;
	case RT_ON_ERROR_FAIL:
		break;
	}
	rt_fail(rt, 1);
}

static void on_sent(void *arg, int code, const char *error)
{
	struct rt_src_rec *r = arg;
	struct dc_rt *rt = r->rt;

	if (code == DN_CANCELLED && rt->exit_code >= 0)
		return; /* closing: the broker never saw it, the source resends it */
	if (code != DN_OK) {
		rec_failed(rt, r, error);
		return;
	}
	r->metrics->processed++;
	dc_ipc_hist_observe(&r->metrics->duration, (double)(dc_now_us() - r->received_us) / 1e6);
	rec_finished(rt, r);
}

int dc_rt_submit(struct dc_rt *rt, const struct dc_record *rec)
{
	const char *topic = rec->topic ? rec->topic : dc_config_str(rt->cfg, "danube", "topic");
	struct rt_producer *p;
	struct rt_src_rec *r;
	int rc;

	/*
	 * A stopping source may still hand over what it holds (MQTT messages
	 * already acknowledged to their broker) until its stop() returns.
	 */
	if (rt->intake_closed || rt->exit_code >= 0)
		return -EPIPE;
	if (!topic) {
		dc_log_error("a record without a topic and no [danube] topic");
		return -EINVAL;
	}
	if (rt->q_len >= (size_t)rt->queue_size && !rt->in_stop) {
		if (!rt->paused) {
			rt->paused = true;
			dc_log_debug("queue full (%zu): pausing the source", rt->q_len);
			rt->sops->pause(rt->state);
		}
		return -EAGAIN;
	}
	p = rt_producer_get(rt, topic);
	r = p ? rec_copy(rt, rec, topic) : NULL;
	if (!r || !(r->metrics = dc_ipc_topic(topic))) {
		if (r)
			rec_free(r);
		return -ENOMEM;
	}
	r->attempts = 1;
	r->metrics->received++;
	r->metrics->inflight++;
	if (rt->q_tail)
		rt->q_tail->next = r;
	else
		rt->q_head = r;
	rt->q_tail = r;
	rt->q_len++;
	rc = dn_producer_send(p->p, r->payload, r->len, r->attrs, r->nattrs, r->routing_key,
			      on_sent, r);
	if (rc != 0)
		rec_failed(rt, r, strerror(-rc));
	return 0;
}

int rt_source_start(struct dc_rt *rt)
{
	const char *topic = dc_config_str(rt->cfg, "danube", "topic");

	/* The default topic's producer tells health that Danube is up. */
	if (topic && !rt_producer_get(rt, topic))
		return -1;
	if (!topic)
		rt_danube_up(rt);
	return 0;
}

void rt_source_stop(struct dc_rt *rt)
{
	rt->in_stop = true;
	if (rt->sops->stop)
		rt->sops->stop(rt->state);
	else if (!rt->paused)
		rt->sops->pause(rt->state);
	rt->in_stop = false;
	rt->intake_closed = true;
	rt->paused = true;
	maybe_drained(rt);
}

void rt_source_free(struct dc_rt *rt)
{
	struct rt_src_rec *r, *next;

	/* Producers close after this: their pending on_done must not see freed records. */
	rt_producers_close(rt);
	for (r = rt->q_head; r; r = next) {
		next = r->next;
		rec_free(r);
	}
	rt->q_head = rt->q_tail = NULL;
	rt->q_len = 0;
}
