/*
 * The source side of the runtime: a bounded FIFO of submitted records, each
 * sent to its topic's producer at once; committed() reports the contiguous
 * acknowledged prefix, and a full FIFO pauses the source (backpressure).
 * With [runtime] spool_dir every record is also written ahead to a spool.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "clock.h"
#include "log.h"
#include "runtime/internal.h"
#include "runtime/spool.h"

struct rt_src_rec {
	struct rt_src_rec *next;
	struct dc_rt *rt;
	struct dc_metrics_topic *metrics;
	char *topic;
	void *payload;
	size_t len;
	struct dn_attr *attrs;
	size_t nattrs;
	char *routing_key;
	uint64_t token;
	uint64_t seq; /* in the spool */
	uint64_t received_us;
	unsigned attempts;
	bool done;
	/* From the spool of a previous run: its token is not this source's. */
	bool replayed;
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

static void spool_commit(struct dc_rt *rt, uint64_t seq)
{
	int rc = dc_spool_commit(rt->spool, seq);

	/* A lost watermark only replays duplicates after a crash. */
	if (rc != 0)
		dc_log_warn("spool: cannot record the commit watermark: %s", strerror(-rc));
}

/*
 * Pops the acknowledged prefix and tells the source the last token of it.
 * Replayed records all precede live ones, so the live tokens still reach
 * committed() in submission order.
 */
static void commit_prefix(struct dc_rt *rt)
{
	struct rt_src_rec *r;
	uint64_t token = 0, seq = 0;
	bool any = false, popped = false;

	while ((r = rt->q_head) && r->done) {
		rt->q_head = r->next;
		if (!rt->q_head)
			rt->q_tail = NULL;
		rt->q_len--;
		if (!r->replayed) {
			token = r->token;
			any = true;
		}
		seq = r->seq;
		popped = true;
		rec_free(r);
	}
	if (popped && rt->spool)
		spool_commit(rt, seq);
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

static void on_fate(void *arg, enum rt_fate fate)
{
	struct rt_src_rec *r = arg;

	/* Lost: the loop is ending; the record stays queued and is freed with the queue. */
	if (fate == RT_FATE_LOST)
		return;
	if (fate == RT_FATE_DLQ)
		r->metrics->dlq++;
	rec_finished(r->rt, r);
}

/* A record the broker will not take: on_error decides. */
static void rec_failed(struct dc_rt *rt, struct rt_src_rec *r, const char *why)
{
	char what[48];
	struct rt_dead d = {
		.msg = {.payload = r->payload,
			.payload_len = r->len,
			.attrs = r->attrs,
			.nattrs = r->nattrs,
			.routing_key = r->routing_key,
			.topic = r->topic},
		.what = what,
		.error_type = "broker",
		.attempts = r->attempts,
		.done = on_fate,
		.arg = r,
	};

	snprintf(what, sizeof(what), "record %llu", (unsigned long long)r->token);
	dc_rt_report_error(rt, r->topic, "broker", "%s not delivered: %s", what, why);
	rt_dead_letter(rt, &d, why);
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
	dc_metrics_observe(&r->metrics->duration, (double)(dc_now_us() - r->received_us) / 1e6);
	rec_finished(rt, r);
}

/*
 * Writes r ahead to the spool. A failing disk does not stop the stream: the
 * record is kept in memory only (what it was without a spool), said once.
 */
static void spool_write(struct dc_rt *rt, struct rt_src_rec *r)
{
	struct dc_spool_rec s = {
		.topic = r->topic,
		.routing_key = r->routing_key,
		.attrs = r->attrs,
		.nattrs = r->nattrs,
		.payload = r->payload,
		.len = r->len,
	};
	int rc = dc_spool_append(rt->spool, &s);

	r->seq = s.seq;
	if (rc != 0 && !rt->spool_failing) {
		rt->spool_failing = true;
		dc_rt_report_error(rt, r->topic, "spool",
				   "cannot write to the spool (%s): records are kept in memory "
				   "only until it works again",
				   strerror(-rc));
	} else if (rc == 0 && rt->spool_failing) {
		rt->spool_failing = false;
		dc_log_info("spool: writing again");
	}
}

/* Queues a copy of rec and sends it; replay_seq: its place in the spool of a previous run. */
static int enqueue(struct dc_rt *rt, const struct dc_record *rec, const char *topic,
		   const uint64_t *replay_seq)
{
	struct rt_producer *p = rt_producer_get(rt, topic);
	struct rt_src_rec *r = p ? rec_copy(rt, rec, topic) : NULL;
	int rc;

	if (!r || !(r->metrics = dc_metrics_topic(topic))) {
		if (r)
			rec_free(r);
		return -ENOMEM;
	}
	if (replay_seq) {
		r->seq = *replay_seq;
		r->replayed = true;
	} else if (rt->spool) {
		spool_write(rt, r);
	}
	r->attempts = 1;
	r->metrics->received++;
	r->metrics->inflight++;
	RT_FIFO_PUSH(rt->q_head, rt->q_tail, rt->q_len, r);
	rc = dn_producer_send(p->p, r->payload, r->len, r->attrs, r->nattrs, r->routing_key,
			      on_sent, r);
	if (rc != 0)
		rec_failed(rt, r, strerror(-rc));
	return 0;
}

int dc_rt_submit(struct dc_rt *rt, const struct dc_record *rec)
{
	const char *topic = rec->topic ? rec->topic : dc_config_str(rt->cfg, "danube", "topic");

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
	/* queue_size is a soft limit: the record is taken, reading stops. */
	if (rt->q_len >= (size_t)rt->queue_size && !rt->paused && !rt->in_stop) {
		rt->paused = true;
		dc_log_debug("queue full (%zu): pausing the source", rt->q_len);
		rt->sops->pause(rt->state);
	}
	return enqueue(rt, rec, topic, NULL);
}

static int replay_one(void *arg, const struct dc_spool_rec *s)
{
	struct dc_rt *rt = arg;
	struct dc_record rec = {
		.payload = s->payload,
		.len = s->len,
		.attrs = s->attrs,
		.nattrs = s->nattrs,
		.routing_key = s->routing_key,
		.topic = s->topic,
	};

	return enqueue(rt, &rec, s->topic, &s->seq);
}

/*
 * Opens [runtime] spool_dir/NAME.spool and queues what a previous run left
 * unacknowledged, before the source starts, so it goes first. 0 or -1.
 */
static int spool_start(struct dc_rt *rt)
{
	const char *dir = dc_config_str(rt->cfg, "runtime", "spool_dir");
	struct dc_spool_opts o = {.fsync = dc_config_bool(rt->cfg, "runtime", "spool_fsync")};
	char path[4096];
	int rc;

	if (!dir || !*dir)
		return 0;
	if (snprintf(path, sizeof(path), "%s/%s.spool", dir, rt->name) >= (int)sizeof(path)) {
		dc_log_error("spool: path %s/%s.spool is too long", dir, rt->name);
		return -1;
	}
	if (mkdir(dir, 0700) != 0 && errno != EEXIST) {
		dc_log_error("spool: cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	rc = dc_spool_open(path, &o, &rt->spool);
	if (rc != 0) {
		dc_log_error("spool: cannot open %s: %s", path,
			     rc == -EBUSY ? "in use by another process" : strerror(-rc));
		return -1;
	}
	if (dc_spool_pending(rt->spool))
		dc_log_info("spool %s: replaying %zu records Danube had not acknowledged", path,
			    dc_spool_pending(rt->spool));
	rc = dc_spool_replay(rt->spool, replay_one, rt);
	if (rc != 0) {
		dc_log_error("spool: cannot replay %s: %s", path, strerror(-rc));
		return -1;
	}
	/* A replayed record failed for good (on_error = fail): the loop must not start. */
	if (rt->exit_code >= 0)
		return -1;
	dc_log_debug("spool %s: %s, %llu bytes", path, o.fsync ? "fsync" : "no fsync",
		     (unsigned long long)dc_spool_bytes(rt->spool));
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
	return spool_start(rt);
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
	dc_spool_close(rt->spool);
	rt->spool = NULL;
}

size_t rt_source_unfinished(const struct dc_rt *rt)
{
	return rt->q_len;
}
