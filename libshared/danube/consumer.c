/*
 * The consumer: TopicPartitions, then per partition lookup + Subscribe +
 * a ReceiveMessages stream, re-subscribing after the stream ends, a health
 * CLOSE or a lost connection. Ack/Nack echo the received MsgID verbatim.
 */
#include "danube/internal.h"
#include "backoff.h"
#include "h2/grpc.h"
#include "log.h"

#include "danube/DanubeApi.pb.h"

#include <ctype.h>
#include <ev.h>
#include <pb_decode.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

struct csub {
	struct dn_part part; /* topic, broker, health, retry */
	struct dn_consumer *c;
	uint32_t index;
	bool subscribed_once;
	struct dn_rpc *subscribe;
	struct dc_grpc_call *stream;
	struct dn_offsets offsets; /* gap detection */
};

/* An Ack or Nack in flight, listed so that close can cancel it. */
struct ackop {
	struct dn_consumer *c;
	struct dn_rpc *rpc;
	dn_done_fn cb;
	void *arg;
	bool nack;
	struct ackop *prev, *next;
	char topic[];
};

struct dn_consumer {
	struct dn_client *cl;
	char *topic;
	char *name;
	char *subscription;
	enum dn_sub_type type;
	char **key_filters;
	size_t nkey_filters;
	dn_ready_fn on_ready;
	dn_message_fn on_message;
	dn_error_fn on_error;
	struct dn_consumer_events ev;
	void *arg;
	bool wait_for_topic;
	bool waiting; /* told ev.waiting; cleared by a successful Subscribe */
	struct dn_op *parts_op;
	ev_timer parts_timer;
	struct dc_backoff parts_backoff;
	struct csub *subs;
	uint32_t nsubs;
	uint32_t ready_subs;
	bool ready_sent;
	bool failed;
	struct ackop *acks;
	struct dn_guard guard;
};

struct msg_impl {
	struct dn_message pub;
	danube_StreamMessage sm;
	struct dn_consumer *c;
	uint8_t *payload; /* decoded through a callback: ours to free */
	uint32_t sub_index;
	struct dn_attr attrs[];
};

static void consumer_destroy(void *arg);

/* Cancel the calls that are the consumer's own (the part stops the rest). */
static void csub_cancel(struct csub *s)
{
	dn_rpc_cancel(s->subscribe);
	s->subscribe = NULL;
	if (s->stream != NULL)
		dc_grpc_call_cancel(s->stream);
	s->stream = NULL;
}

static void consumer_fail(struct dn_consumer *c, int code, const char *error)
{
	if (c->failed)
		return;
	c->failed = true;
	dc_log_debug("%s", error);
	dn_op_cancel(c->parts_op);
	c->parts_op = NULL;
	ev_timer_stop(c->cl->loop, &c->parts_timer);
	for (uint32_t i = 0; i < c->nsubs; i++) {
		csub_cancel(&c->subs[i]);
		dn_part_fail(&c->subs[i].part);
	}
	if (c->on_error != NULL)
		c->on_error(c->arg, code, error);
}

/* wait_for_topic: the topic is missing; say so once per episode. */
static void consumer_waiting(struct dn_consumer *c)
{
	char reason[DN_ERRLEN];

	if (c->waiting)
		return;
	c->waiting = true;
	snprintf(reason, sizeof(reason), "topic %s does not exist yet", c->topic);
	dc_log_debug("%s; waiting for it", reason);
	if (c->ev.waiting != NULL)
		c->ev.waiting(c->arg, reason);
}

static void csub_reconnect(void *arg, int code, const char *error)
{
	struct csub *s = arg;

	if (s->part.state == DN_PART_FAILED || s->c->failed)
		return;
	csub_cancel(s);
	dn_part_backoff(&s->part, error);
}

/* ------------------------------------------------------------------ receive */

static struct msg_impl *msg_decode(struct csub *s, const uint8_t *buf, size_t len)
{
	danube_StreamMessage sm = danube_StreamMessage_init_zero;
	pb_istream_t is = pb_istream_from_buffer(buf, len);
	struct dn_bytes payload = {NULL, 0};
	struct msg_impl *m;

	sm.payload.funcs.decode = dn_pb_decode_bytes;
	sm.payload.arg = &payload;
	if (!pb_decode(&is, danube_StreamMessage_fields, &sm)) {
		pb_release(danube_StreamMessage_fields, &sm);
		free(payload.data);
		return NULL;
	}
	m = calloc(1, sizeof(*m) + sm.attributes_count * sizeof(struct dn_attr));
	if (m == NULL) {
		pb_release(danube_StreamMessage_fields, &sm);
		free(payload.data);
		return NULL;
	}
	m->sm = sm;
	m->sm.payload.arg = NULL;
	m->payload = payload.data;
	m->c = s->c;
	m->sub_index = s->index;
	m->pub.payload = payload.data ? payload.data : (const uint8_t *)"";
	m->pub.payload_len = payload.len;
	for (pb_size_t i = 0; i < sm.attributes_count; i++) {
		m->attrs[i].key = sm.attributes[i].key ? sm.attributes[i].key : "";
		m->attrs[i].value = sm.attributes[i].value ? sm.attributes[i].value : "";
	}
	m->pub.attrs = m->attrs;
	m->pub.nattrs = sm.attributes_count;
	m->pub.routing_key = sm.routing_key;
	m->pub.topic = sm.msg_id.topic_name && sm.msg_id.topic_name[0] ? sm.msg_id.topic_name
								       : s->part.topic;
	m->pub.offset = sm.msg_id.topic_offset;
	m->pub.publish_time = sm.publish_time;
	m->pub.producer_name = sm.producer_name ? sm.producer_name : "";
	m->pub.has_schema = sm.has_schema_id;
	m->pub.schema_id = sm.schema_id;
	m->pub.schema_version = sm.schema_version;
	return m;
}

static void stream_msg(void *arg, const uint8_t *buf, size_t len)
{
	struct csub *s = arg;
	struct dn_consumer *c = s->c;
	struct msg_impl *m;

	if (c->guard.closing || c->failed)
		return;
	m = msg_decode(s, buf, len);
	if (m == NULL) {
		/* Not ackable without its MsgID: the broker redelivers it after its timeout. */
		dc_log_error("topic %s: dropped a message that could not be decoded (%zu bytes)",
			     s->part.topic, len);
		return;
	}
	dc_backoff_reset(&s->part.backoff);
	dn_guard_enter(&c->guard);
	if (c->type == DN_SUB_EXCLUSIVE || c->type == DN_SUB_FAILOVER) {
		uint64_t expected = s->offsets.last + 1;
		uint64_t skipped = dn_offsets_see(&s->offsets, m->pub.offset);

		if (skipped > 0) {
			if (c->ev.gap != NULL)
				c->ev.gap(c->arg, m->pub.topic, expected, m->pub.offset);
			else
				dc_log_error("topic %s: subscription %s skipped %llu messages "
					     "(offsets %llu to %llu)",
					     m->pub.topic, c->subscription,
					     (unsigned long long)skipped,
					     (unsigned long long)expected,
					     (unsigned long long)m->pub.offset - 1);
		}
	}
	c->on_message(c->arg, &m->pub);
	dn_guard_leave(&c->guard);
}

static void stream_done(void *arg, int code, const char *message)
{
	struct csub *s = arg;
	struct dn_consumer *c = s->c;
	char err[DN_ERRLEN];

	s->stream = NULL;
	dn_guard_enter(&c->guard);
	if (code == DN_OK)
		snprintf(err, sizeof(err), "topic %s: the broker ended the message stream",
			 s->part.topic);
	else
		dn_error_format(err, sizeof(err), code, message,
				"topic %s: the message stream failed", s->part.topic);
	if (code == DN_OK || dn_error_recovery(code, message) != DN_RECOVER_FAIL)
		csub_reconnect(s, code, err);
	else
		consumer_fail(c, code, err);
	dn_guard_leave(&c->guard);
}

static void csub_receive(struct csub *s)
{
	danube_ReceiveRequest req = danube_ReceiveRequest_init_zero;
	struct dn_consumer *c = s->c;
	char err[DN_ERRLEN];
	uint8_t *buf;
	size_t len;
	const char *kv[3];
	int rc;

	req.request_id = ++s->part.request_id;
	req.consumer_id = s->part.id;
	rc = dn_encode(c->cl, danube_ReceiveRequest_fields, &req, &buf, &len);
	if (rc == 0)
		rc = dc_grpc_call_start_hdr(s->part.conn, DN_PATH_RECEIVE,
					    dn_proxy_headers(kv, s->part.proxy), buf, len, 0,
					    stream_msg, stream_done, s, &s->stream);
	if (rc != 0) {
		s->stream = NULL;
		snprintf(err, sizeof(err), "topic %s: cannot open the message stream: %s",
			 s->part.topic, strerror(-rc));
		csub_reconnect(s, DN_UNAVAILABLE, err);
	}
}

/* ---------------------------------------------------------------- subscribe */

static void subscribe_done(void *arg, int code, const char *message, void *resp)
{
	struct csub *s = arg;
	struct dn_consumer *c = s->c;
	const danube_ConsumerResponse *cr = resp;
	char err[DN_ERRLEN];

	s->subscribe = NULL;
	dn_guard_enter(&c->guard);
	if (code == DN_OK) {
		c->waiting = false;
		s->part.id = cr->consumer_id;
		dn_part_live(&s->part);
		csub_receive(s);
		if (s->part.state == DN_PART_LIVE && !s->subscribed_once) {
			s->subscribed_once = true;
			if (++c->ready_subs == c->nsubs && !c->ready_sent) {
				c->ready_sent = true;
				if (c->on_ready != NULL)
					c->on_ready(c->arg);
			}
		}
	} else {
		dn_error_format(err, sizeof(err), code, message,
				"topic %s: broker refused subscription %s", s->part.topic,
				c->subscription);
		/* NOT_FOUND before the first success: the topic does not exist. */
		if (code == DN_NOT_FOUND && !s->subscribed_once && c->wait_for_topic) {
			consumer_waiting(c);
			csub_reconnect(s, code, err);
		} else if (dn_error_recovery(code, message) == DN_RECOVER_FAIL ||
			   (code == DN_NOT_FOUND && !s->subscribed_once)) {
			consumer_fail(c, code, err);
		} else {
			csub_reconnect(s, code, err);
		}
	}
	dn_guard_leave(&c->guard);
}

static void csub_subscribe(void *arg)
{
	danube_ConsumerRequest req = danube_ConsumerRequest_init_zero;
	struct csub *s = arg;
	struct dn_consumer *c = s->c;
	int rc;

	rc = dn_part_connect(&s->part);
	if (rc == 0) {
		req.request_id = ++s->part.request_id;
		req.topic_name = s->part.topic;
		req.consumer_name = c->name;
		req.subscription = c->subscription;
		req.subscription_type = (danube_ConsumerRequest_SubscriptionType)c->type;
		req.key_filters_count = (pb_size_t)c->nkey_filters;
		req.key_filters = c->key_filters;
		rc = dn_rpc_start(c->cl, s->part.conn, DN_PATH_SUBSCRIBE, s->part.proxy,
				  danube_ConsumerRequest_fields, &req,
				  danube_ConsumerResponse_fields, sizeof(danube_ConsumerResponse),
				  DN_CONTROL_DEADLINE_MS, subscribe_done, s, &s->subscribe);
	}
	if (rc != 0) {
		s->subscribe = NULL;
		dn_part_unreachable(&s->part, rc);
	}
}

/* --------------------------------------------------------------- partitions */

/* TopicPartitions matches by prefix: keep the topic itself and its "-part-N". */
static bool is_our_partition(const char *topic, const char *name)
{
	size_t tl = strlen(topic);

	if (strcmp(name, topic) == 0)
		return true;
	if (strncmp(name, topic, tl) != 0 || strncmp(name + tl, "-part-", 6) != 0)
		return false;
	name += tl + 6;
	if (*name == '\0')
		return false;
	for (; *name; name++)
		if (!isdigit((unsigned char)*name))
			return false;
	return true;
}

static const struct dn_part_ops csub_ops = {
	.attach = csub_subscribe,
	.lost = csub_reconnect,
};

static int csub_init(struct dn_consumer *c, struct csub *s, uint32_t i, const char *topic)
{
	s->c = c;
	s->index = i;
	return dn_part_init(&s->part, c->cl, &c->guard, topic, true, c->name, "subscribing again",
			    &csub_ops, s);
}

static void parts_retry(struct dn_consumer *c, int code, const char *error)
{
	if (c->waiting)
		dc_log_debug("%s; retrying", error);
	else
		dc_log_warn("%s; retrying", error);
	ev_timer_set(&c->parts_timer, (double)dc_backoff_next(&c->parts_backoff) / 1000.0, 0.0);
	ev_timer_start(c->cl->loop, &c->parts_timer);
}

static void parts_done(void *arg, int code, const char *error, char *const *names, size_t n)
{
	struct dn_consumer *c = arg;
	char err[DN_ERRLEN];
	uint32_t k = 0;

	c->parts_op = NULL;
	dn_guard_enter(&c->guard);
	if (code == DN_NOT_FOUND && c->wait_for_topic) {
		consumer_waiting(c);
		parts_retry(c, code, error);
		goto out;
	}
	if (code != DN_OK) {
		if (dn_error_recovery(code, error) == DN_RECOVER_FAIL)
			consumer_fail(c, code, error);
		else
			parts_retry(c, code, error);
		goto out;
	}
	c->subs = calloc(n ? n : 1, sizeof(*c->subs));
	if (c->subs == NULL) {
		consumer_fail(c, DN_INTERNAL, "out of memory");
		goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if (names[i] == NULL || !is_our_partition(c->topic, names[i]))
			continue;
		if (csub_init(c, &c->subs[k], k, names[i]) != 0) {
			c->nsubs = k + 1;
			consumer_fail(c, DN_INTERNAL, "out of memory");
			goto out;
		}
		k++;
	}
	c->nsubs = k;
	if (k == 0) {
		dn_error_format(err, sizeof(err), DN_NOT_FOUND,
				"no such topic (create it, or start a producer first)", "topic %s",
				c->topic);
		if (c->wait_for_topic) {
			free(c->subs);
			c->subs = NULL;
			consumer_waiting(c);
			parts_retry(c, DN_NOT_FOUND, err);
		} else {
			consumer_fail(c, DN_NOT_FOUND, err);
		}
		goto out;
	}
	for (uint32_t i = 0; i < c->nsubs && !c->failed; i++)
		dn_part_start(&c->subs[i].part);
out:
	dn_guard_leave(&c->guard);
}

static void parts_start(struct dn_consumer *c)
{
	char err[DN_ERRLEN];
	int rc = dn_partitions_op(c->cl, c->topic, parts_done, c, &c->parts_op);

	if (rc != 0) {
		c->parts_op = NULL;
		snprintf(err, sizeof(err), "topic %s: cannot ask for partitions: %s", c->topic,
			 strerror(-rc));
		parts_retry(c, DN_UNAVAILABLE, err);
	}
}

static void parts_timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dn_consumer *c = w->data;

	dn_guard_enter(&c->guard);
	if (!c->guard.closing && !c->failed)
		parts_start(c);
	dn_guard_leave(&c->guard);
}

/* ------------------------------------------------------------------- public */

int dn_consumer_new(struct dn_client *cl, const struct dn_consumer_opts *o, dn_ready_fn on_ready,
		    dn_message_fn on_message, dn_error_fn on_error, void *arg,
		    struct dn_consumer **out)
{
	struct dn_consumer *c;
	bool ok = true;

	*out = NULL;
	if (cl == NULL || o == NULL || o->topic == NULL || o->topic[0] == '\0' || o->name == NULL ||
	    o->name[0] == '\0' || o->subscription == NULL || o->subscription[0] == '\0' ||
	    on_message == NULL || (unsigned)o->type > 3 ||
	    (o->key_filters == NULL && o->nkey_filters > 0))
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->cl = cl;
	c->topic = dn_strdup(o->topic, &ok);
	c->name = dn_strdup(o->name, &ok);
	c->subscription = dn_strdup(o->subscription, &ok);
	c->type = o->type;
	c->on_ready = on_ready;
	c->on_message = on_message;
	c->on_error = on_error;
	c->ev = o->events;
	c->wait_for_topic = o->wait_for_topic;
	c->arg = arg;
	if (o->nkey_filters > 0) {
		c->key_filters = calloc(o->nkey_filters, sizeof(char *));
		ok = ok && c->key_filters != NULL;
		for (size_t i = 0; ok && i < o->nkey_filters; i++) {
			c->key_filters[i] = dn_strdup(o->key_filters[i], &ok);
			c->nkey_filters = i + 1;
		}
	}
	dc_backoff_init(&c->parts_backoff, DN_BACKOFF_INITIAL_MS, DN_BACKOFF_MAX_MS, 0);
	ev_timer_init(&c->parts_timer, parts_timer_cb, 0.0, 0.0);
	c->parts_timer.data = c;
	c->guard.destroy = consumer_destroy;
	c->guard.owner = c;
	if (!ok) {
		consumer_destroy(c);
		return -ENOMEM;
	}
	parts_start(c);
	*out = c;
	return 0;
}

static void ack_done(void *arg, int code, const char *message, void *resp)
{
	struct ackop *a = arg;
	struct dn_consumer *c = a->c;
	char err[DN_ERRLEN];

	if (a->prev != NULL)
		a->prev->next = a->next;
	else
		c->acks = a->next;
	if (a->next != NULL)
		a->next->prev = a->prev;
	dn_guard_enter(&c->guard);
	if (code != DN_OK) {
		dn_error_format(err, sizeof(err), code, message, "topic %s: %s failed", a->topic,
				a->nack ? "nack" : "ack");
		dc_log_warn("%s", err);
	}
	if (a->cb != NULL)
		a->cb(a->arg, code, code == DN_OK ? "" : err);
	free(a);
	dn_guard_leave(&c->guard);
}

static int ack_start(struct dn_consumer *c, const struct dn_message *msg, bool nack,
		     uint64_t delay_ms, const char *reason, dn_done_fn cb, void *arg)
{
	const struct msg_impl *m;
	struct csub *s;
	struct ackop *a;
	int rc;

	if (c == NULL || msg == NULL)
		return -EINVAL;
	m = (const struct msg_impl *)((const char *)msg - offsetof(struct msg_impl, pub));
	if (m->c != c || m->sub_index >= c->nsubs)
		return -EINVAL;
	s = &c->subs[m->sub_index];
	if (c->guard.closing || c->failed || s->part.conn == NULL)
		return -EPIPE;
	a = calloc(1, sizeof(*a) + strlen(msg->topic) + 1);
	if (a == NULL)
		return -ENOMEM;
	a->c = c;
	a->cb = cb;
	a->arg = arg;
	a->nack = nack;
	strcpy(a->topic, msg->topic);
	if (nack) {
		danube_NackRequest req = danube_NackRequest_init_zero;

		req.request_id = m->sm.request_id;
		req.has_msg_id = true;
		req.msg_id = m->sm.msg_id;
		req.subscription_name = c->subscription;
		req.has_delay_ms = true;
		req.delay_ms = delay_ms;
		req.reason = (char *)reason;
		rc = dn_rpc_start(c->cl, s->part.conn, DN_PATH_NACK, s->part.proxy,
				  danube_NackRequest_fields, &req, NULL, 0, DN_CONTROL_DEADLINE_MS,
				  ack_done, a, &a->rpc);
	} else {
		danube_AckRequest req = danube_AckRequest_init_zero;

		req.request_id = m->sm.request_id;
		req.has_msg_id = true;
		req.msg_id = m->sm.msg_id;
		req.subscription_name = c->subscription;
		rc = dn_rpc_start(c->cl, s->part.conn, DN_PATH_ACK, s->part.proxy,
				  danube_AckRequest_fields, &req, NULL, 0, DN_CONTROL_DEADLINE_MS,
				  ack_done, a, &a->rpc);
	}
	if (rc != 0) {
		free(a);
		return rc;
	}
	a->next = c->acks;
	if (c->acks != NULL)
		c->acks->prev = a;
	c->acks = a;
	return 0;
}

int dn_consumer_ack(struct dn_consumer *c, const struct dn_message *msg, dn_done_fn cb, void *arg)
{
	return ack_start(c, msg, false, 0, NULL, cb, arg);
}

int dn_consumer_nack(struct dn_consumer *c, const struct dn_message *msg, uint64_t delay_ms,
		     const char *reason, dn_done_fn cb, void *arg)
{
	return ack_start(c, msg, true, delay_ms, reason, cb, arg);
}

void dn_message_free(struct dn_message *msg)
{
	struct msg_impl *m;

	if (msg == NULL)
		return;
	m = (struct msg_impl *)((char *)msg - offsetof(struct msg_impl, pub));
	pb_release(danube_StreamMessage_fields, &m->sm);
	free(m->payload);
	free(m);
}

static void consumer_destroy(void *arg)
{
	struct dn_consumer *c = arg;

	c->guard.closing = true;
	dn_op_cancel(c->parts_op);
	ev_timer_stop(c->cl->loop, &c->parts_timer);
	for (uint32_t i = 0; i < c->nsubs; i++) {
		csub_cancel(&c->subs[i]);
		dn_part_free(&c->subs[i].part);
	}
	while (c->acks != NULL) {
		struct ackop *a = c->acks;

		c->acks = a->next;
		dn_rpc_cancel(a->rpc);
		free(a);
	}
	for (size_t i = 0; i < c->nkey_filters; i++)
		free(c->key_filters[i]);
	free(c->key_filters);
	free(c->subs);
	free(c->topic);
	free(c->name);
	free(c->subscription);
	free(c);
}

void dn_consumer_close(struct dn_consumer *c)
{
	if (c != NULL)
		dn_guard_close(&c->guard);
}

uint64_t dn_offsets_see(struct dn_offsets *o, uint64_t offset)
{
	uint64_t skipped = 0;

	if (!o->have) {
		o->have = true;
		o->last = offset;
		return 0;
	}
	if (offset <= o->last)
		return 0;
	skipped = offset - o->last - 1;
	o->last = offset;
	return skipped;
}
