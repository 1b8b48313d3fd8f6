/*
 * The sink side of the runtime: one consumer, messages grouped into batches,
 * one batch written at a time, RETRY records retried with backoff, then
 * on_error (fail, skip, dlq). A message is acknowledged only after the sink
 * said OK or the DLQ took it.
 *
 * When a batch is written: the broker sends at most max_unacked messages
 * per subscription before it waits for acks, so a batch goes out as soon as
 * a partition's window is full, the stream pauses for batch_linger_ms, the
 * batch holds batch_size, or its oldest message waited batch_timeout_ms.
 * Waiting longer could only slow the stream down (and a subscription that
 * falls far behind loses messages on the real broker).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "runtime/internal.h"

struct rt_sink_msg {
	struct rt_sink_msg *next;
	struct dc_rt *rt;
	struct dn_message *msg;
	struct dc_metrics_topic *metrics;
	uint64_t received_us;
	unsigned attempts;
};

static void maybe_flush(struct dc_rt *rt);

static void msg_free(struct rt_sink_msg *m)
{
	dn_message_free(m->msg);
	free(m);
}

/* Not acknowledged: the broker redelivers it. */
static void hand_back(struct rt_sink_msg *m)
{
	m->metrics->inflight--;
	msg_free(m);
}

static void maybe_drained(struct dc_rt *rt)
{
	if (rt->stopping && !rt->batch_busy && rt->acks_pending == 0 && rt->dlq_pending == 0)
		rt_drained(rt);
}

static void on_acked(void *arg, int code, const char *error)
{
	struct dc_rt *rt = arg;

	rt->acks_pending--;
	/* A lost ack only means the broker delivers the message again. */
	if (code != DN_OK)
		dc_log_warn("acknowledgement failed: %s", error);
	maybe_drained(rt);
}

/* Acknowledges m and frees it. */
static void ack(struct dc_rt *rt, struct rt_sink_msg *m)
{
	m->metrics->inflight--;
	if (dn_consumer_ack(rt->consumer, m->msg, on_acked, rt) == 0)
		rt->acks_pending++;
	else
		dc_log_warn("%s: cannot acknowledge offset %llu", m->msg->topic,
			    (unsigned long long)m->msg->offset);
	msg_free(m);
}

static void on_fate(void *arg, enum rt_fate fate)
{
	struct rt_sink_msg *m = arg;
	struct dc_rt *rt = m->rt;

	/* Not acknowledged: the broker redelivers it to the restarted worker. */
	if (fate == RT_FATE_LOST) {
		hand_back(m);
		return;
	}
	if (fate == RT_FATE_DLQ)
		m->metrics->dlq++;
	ack(rt, m);
	if (fate == RT_FATE_DLQ)
		maybe_drained(rt);
}

/* A record that will not succeed: on_error decides. Takes m. */
static void record_failed(struct dc_rt *rt, struct rt_sink_msg *m, const char *why,
			  const char *error_type)
{
	const struct dn_message *msg = m->msg;
	char what[48];
	struct rt_dead d = {
		.msg = *msg,
		.has_offset = true,
		.what = what,
		.error_type = error_type,
		.attempts = m->attempts,
		.done = on_fate,
		.arg = m,
	};

	snprintf(what, sizeof(what), "offset %llu", (unsigned long long)msg->offset);
	dc_rt_report_error(rt, msg->topic, error_type, "%s failed after %u attempts: %s", what,
			   m->attempts, why);
	rt_dead_letter(rt, &d, why);
}

/* Handed back: the broker redelivers what was not acknowledged. */
static void hand_back_batch(struct dc_rt *rt)
{
	size_t i;

	for (i = 0; i < rt->batch.n; i++)
		hand_back(rt->batch_msgs[i]);
	rt->batch.n = 0;
	rt->batch_parked = false;
	maybe_drained(rt);
}

/* Writes the batch in hand, or parks it while the external system is down. */
static void write_batch(struct dc_rt *rt)
{
	if (!rt->external_up) {
		if (!rt->batch_parked)
			dc_log_info("holding a batch of %zu until the external system is back",
				    rt->batch.n);
		rt->batch_parked = true;
		return;
	}
	rt->batch_parked = false;
	rt->batch_busy = true;
	rt->kops->write(rt->state, &rt->batch);
}

static void on_retry_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc_rt *rt = w->data;

	rt->batch_retry = false;
	if (rt->stopping)
		hand_back_batch(rt);
	else
		write_batch(rt);
}

void dc_rt_set_result(struct dc_sink_record *r, enum dc_write_result res, const char *error_type,
		      const char *fmt, ...)
{
	va_list ap;

	r->result = res;
	r->error_type = res == DC_WRITE_OK ? NULL : error_type;
	va_start(ap, fmt);
	vsnprintf(r->error, sizeof(r->error), fmt, ap);
	va_end(ap);
}

void dc_rt_retry_all(struct dc_rt *rt, struct dc_batch *batch, const char *why)
{
	for (size_t i = 0; i < batch->n; i++)
		dc_rt_set_result(&batch->records[i], DC_WRITE_RETRY, "external", "%s", why);
	dc_rt_write_done(rt, batch);
}

void dc_rt_write_done(struct dc_rt *rt, struct dc_batch *batch)
{
	size_t i, keep = 0;
	struct dc_sink_record *r;
	struct rt_sink_msg *m;
	uint64_t now = dc_now_us();
	uint64_t delay;

	rt->batch_busy = false;
	dc_log_debug("batch of %zu written", batch->n);
	for (i = 0; i < batch->n; i++) {
		r = &batch->records[i];
		m = rt->batch_msgs[i];
		m->attempts++;
		switch (r->result) {
		case DC_WRITE_OK:
			m->metrics->processed++;
			dc_metrics_observe(&m->metrics->duration,
					   (double)(now - m->received_us) / 1e6);
			ack(rt, m);
			break;
		case DC_WRITE_RETRY:
			if (m->attempts <= (unsigned)rt->max_retries && !rt->stopping &&
			    rt->exit_code < 0) {
				m->metrics->retried++;
				rt->batch_msgs[keep] = m;
				batch->records[keep] = *r;
				keep++;
			} else if (rt->stopping) {
				hand_back(m);
			} else {
				record_failed(rt, m, r->error[0] ? r->error : "retries exhausted",
					      r->error_type ? r->error_type : "external");
			}
			break;
		default:
			record_failed(rt, m, r->error[0] ? r->error : "the sink refused it",
				      r->error_type ? r->error_type : "invalid_data");
			break;
		}
	}
	batch->n = keep;
	if (keep > 0 && rt->exit_code < 0) {
		batch->attempt++;
		for (i = 0; i < keep; i++) {
			batch->records[i].result = DC_WRITE_OK;
			batch->records[i].error[0] = '\0';
			batch->records[i].error_type = NULL;
			batch->records[i].msg = rt->batch_msgs[i]->msg;
		}
		delay = dc_backoff_next(&rt->backoff);
		dc_log_info("retrying %zu records in %llu ms (attempt %u)", keep,
			    (unsigned long long)delay, batch->attempt);
		rt->batch_retry = true;
		ev_timer_set(&rt->retry_timer, (double)delay / 1000.0, 0.);
		ev_timer_start(rt->loop, &rt->retry_timer);
		return;
	}
	for (i = 0; i < keep; i++)
		hand_back(rt->batch_msgs[i]);
	batch->n = 0;
	dc_backoff_reset(&rt->backoff);
	maybe_drained(rt);
	/* Not from inside write(): the sink may still be on the stack. */
	if (rt->exit_code < 0 && !rt->stopping && rt->pend_len > 0)
		ev_idle_start(rt->loop, &rt->kick);
}

static bool batch_idle(const struct dc_rt *rt)
{
	return !rt->batch_busy && !rt->batch_retry && !rt->batch_parked && rt->batch.n == 0;
}

static void start_batch(struct dc_rt *rt)
{
	struct rt_sink_msg *m;
	size_t n = 0;

	ev_timer_stop(rt->loop, &rt->batch_timer);
	while (n < (size_t)rt->batch_size && (m = rt->pend_head)) {
		rt->pend_head = m->next;
		if (!rt->pend_head)
			rt->pend_tail = NULL;
		rt->pend_len--;
		memset(&rt->batch.records[n], 0, sizeof(rt->batch.records[n]));
		rt->batch.records[n].msg = m->msg;
		rt->batch_msgs[n++] = m;
	}
	if (rt->pend_len == 0)
		rt->window_full = false;
	rt->batch.n = n;
	rt->batch.attempt = 0;
	dc_metrics_observe(&rt->batch_msgs[0]->metrics->batch_size, (double)n);
	dc_log_debug("writing a batch of %zu (%zu more waiting)", n, rt->pend_len);
	rt->batch_busy = true;
	rt->kops->write(rt->state, &rt->batch);
}

/* The external system is back: a parked batch goes first (from the loop, not the sink's stack). */
void rt_sink_external_up(struct dc_rt *rt)
{
	if (rt->batch.records && rt->exit_code < 0 && !rt->stopping)
		ev_idle_start(rt->loop, &rt->kick);
}

/* Write what is pending now, or arm the timer for when it is due. */
static void maybe_flush(struct dc_rt *rt)
{
	uint64_t now, linger_at, timeout_at, due;

	if (!batch_idle(rt) || rt->stopping || rt->pend_len == 0 || rt->exit_code >= 0 ||
	    !rt->external_up)
		return;
	if (rt->pend_len >= (size_t)rt->batch_size || rt->window_full) {
		start_batch(rt);
		return;
	}
	now = dc_now_us();
	linger_at = rt->pend_tail->received_us + (uint64_t)rt->batch_linger_ms * 1000u;
	timeout_at = rt->pend_head->received_us + (uint64_t)rt->batch_timeout_ms * 1000u;
	due = linger_at < timeout_at ? linger_at : timeout_at;
	if (due <= now) {
		start_batch(rt);
		return;
	}
	ev_timer_stop(rt->loop, &rt->batch_timer);
	ev_timer_set(&rt->batch_timer, (double)(due - now) / 1e6, 0.);
	ev_timer_start(rt->loop, &rt->batch_timer);
}

static void on_kick(struct ev_loop *loop, ev_idle *w, int revents)
{
	struct dc_rt *rt = w->data;

	ev_idle_stop(loop, w);
	if (rt->batch_parked && rt->external_up && !rt->stopping && rt->exit_code < 0)
		write_batch(rt);
	else
		maybe_flush(rt);
}

static void on_batch_timer(struct ev_loop *loop, ev_timer *w, int revents)
{
	maybe_flush(w->data);
}

static void on_message(void *arg, struct dn_message *msg)
{
	struct dc_rt *rt = arg;
	struct rt_sink_msg *m = calloc(1, sizeof(*m));

	if (!m || !(m->metrics = dc_metrics_topic(msg->topic))) {
		/* Not acknowledged: the broker redelivers it. */
		dc_log_error("out of memory receiving a message");
		free(m);
		dn_message_free(msg);
		return;
	}
	if (rt->stopping || rt->exit_code >= 0) {
		free(m);
		dn_message_free(msg);
		return;
	}
	m->rt = rt;
	m->msg = msg;
	m->received_us = dc_now_us();
	m->metrics->received++;
	m->metrics->inflight++;
	RT_FIFO_PUSH(rt->pend_head, rt->pend_tail, rt->pend_len, m);
	/* The broker sends no more on this partition until we ack. */
	if (m->metrics->inflight >= rt->max_unacked)
		rt->window_full = true;
	maybe_flush(rt);
}

static void on_consumer_ready(void *arg)
{
	rt_danube_up(arg);
}

static void on_consumer_error(void *arg, int code, const char *error)
{
	rt_dependency_failed(arg, code, error);
}

static void on_consumer_waiting(void *arg, const char *reason)
{
	rt_danube_waiting(arg, reason);
}

/* The broker skipped offsets: say so loudly, count them; nothing else can be done here. */
void dc_rt_skipped(struct dc_rt *rt, const char *topic, uint64_t expected, uint64_t got)
{
	struct dc_metrics_topic *t = dc_metrics_topic(topic);

	if (t)
		t->skipped += got - expected;
	dc_rt_report_error(rt, topic, NULL,
			   "the broker skipped %llu messages (offsets %llu to %llu): the "
			   "subscription fell too far behind the producers",
			   (unsigned long long)(got - expected), (unsigned long long)expected,
			   (unsigned long long)(got - 1));
}

static void on_consumer_gap(void *arg, const char *topic, uint64_t expected, uint64_t got)
{
	dc_rt_skipped(arg, topic, expected, got);
}

static enum dn_sub_type sub_type(const char *s)
{
	if (s && strcmp(s, "exclusive") == 0)
		return DN_SUB_EXCLUSIVE;
	if (s && strcmp(s, "failover") == 0)
		return DN_SUB_FAILOVER;
	if (s && strcmp(s, "key_shared") == 0)
		return DN_SUB_KEY_SHARED;
	return DN_SUB_SHARED;
}

int rt_sink_start(struct dc_rt *rt)
{
	struct dn_consumer_opts o = {0};
	int rc;

	rt->batch.records = calloc((size_t)rt->batch_size, sizeof(*rt->batch.records));
	rt->batch_msgs = calloc((size_t)rt->batch_size, sizeof(*rt->batch_msgs));
	if (!rt->batch.records || !rt->batch_msgs) {
		dc_log_error("out of memory allocating a batch of %lld", (long long)rt->batch_size);
		return -1;
	}
	dc_backoff_init(&rt->backoff, (uint64_t)rt->retry_backoff_ms,
			(uint64_t)rt->retry_backoff_max_ms, 0);
	ev_timer_init(&rt->batch_timer, on_batch_timer, 0., 0.);
	rt->batch_timer.data = rt;
	ev_timer_init(&rt->retry_timer, on_retry_timer, 0., 0.);
	rt->retry_timer.data = rt;
	ev_idle_init(&rt->kick, on_kick);
	rt->kick.data = rt;

	o.topic = dc_config_str(rt->cfg, "danube", "topic");
	o.subscription = dc_config_str(rt->cfg, "danube", "subscription");
	if (!o.subscription)
		o.subscription = rt->name;
	o.name = rt->name;
	o.type = sub_type(dc_config_str(rt->cfg, "danube", "subscription_type"));
	o.wait_for_topic = true;
	o.events.waiting = on_consumer_waiting;
	o.events.gap = on_consumer_gap;
	if (!o.topic) {
		dc_log_error("a sink needs [danube] topic");
		return -1;
	}
	rc = dn_consumer_new(rt->client, &o, on_consumer_ready, on_message, on_consumer_error, rt,
			     &rt->consumer);
	if (rc != 0) {
		dc_log_error("%s: cannot create the consumer: %s", o.topic, strerror(-rc));
		return -1;
	}
	return 0;
}

void rt_sink_stop(struct dc_rt *rt)
{
	struct rt_sink_msg *m, *next;

	ev_timer_stop(rt->loop, &rt->batch_timer);
	ev_idle_stop(rt->loop, &rt->kick);
	/* Not in a batch yet: handed back, the broker redelivers them. */
	for (m = rt->pend_head; m; m = next) {
		next = m->next;
		hand_back(m);
	}
	rt->pend_head = rt->pend_tail = NULL;
	rt->pend_len = 0;
	if (rt->batch_retry || rt->batch_parked) {
		ev_timer_stop(rt->loop, &rt->retry_timer);
		rt->batch_retry = false;
		hand_back_batch(rt);
	}
	maybe_drained(rt);
}

void rt_sink_free(struct dc_rt *rt)
{
	struct rt_sink_msg *m, *next;
	size_t i;

	if (rt->batch.records) {
		ev_timer_stop(rt->loop, &rt->batch_timer);
		ev_timer_stop(rt->loop, &rt->retry_timer);
		ev_idle_stop(rt->loop, &rt->kick);
	}
	/* DLQ sends still pending get DN_CANCELLED (and free their message) here. */
	rt_producers_close(rt);
	if (rt->consumer)
		dn_consumer_close(rt->consumer);
	rt->consumer = NULL;
	for (m = rt->pend_head; m; m = next) {
		next = m->next;
		msg_free(m);
	}
	rt->pend_head = rt->pend_tail = NULL;
	/* The sink was closed first: a batch it still held is released here. */
	for (i = 0; i < rt->batch.n; i++)
		msg_free(rt->batch_msgs[i]);
	rt->batch.n = 0;
	free(rt->batch.records);
	free(rt->batch_msgs);
	rt->batch.records = NULL;
	rt->batch_msgs = NULL;
}

size_t rt_sink_unfinished(const struct dc_rt *rt)
{
	return rt->batch.n + rt->acks_pending + rt->dlq_pending;
}
