/*
 * The producer: one sub-producer per partition, each with a FIFO of
 * unacknowledged messages, an in-flight window, and a recovery path (look
 * up, re-create under the same name, resend in order) for moved topics,
 * restarted brokers and lost connections.
 */
#include "danube/internal.h"
#include "backoff.h"
#include "clock.h"
#include "h2/grpc.h"
#include "log.h"

#include "danube/DanubeApi.pb.h"

#include <ev.h>
#include <stdlib.h>
#include <string.h>

struct entry {
	struct entry *prev, *next;
	struct sub *s;
	struct dn_rpc *rpc; /* non-NULL while in flight */
	dn_done_fn on_done;
	void *arg;
	uint64_t queued_ms; /* monotonic, for retry_limit_ms */
	uint64_t publish_time;
	struct dn_bytes payload;
	danube_StreamMessage_AttributesEntry *attrs;
	pb_size_t nattrs;
	char *key;
};

struct sub {
	struct dn_part part; /* topic, broker, health, retry */
	struct dn_producer *p;
	uint32_t index;
	char *name;
	bool created_once;
	struct dn_rpc *create;
	struct entry *head, *tail, *next_send;
	uint32_t inflight;
	int last_code;
	char last_error[DN_ERRLEN];
};

struct dn_producer {
	struct dn_client *c;
	char *topic;
	char *name;
	char *schema_subject;
	enum dn_dispatch dispatch;
	uint32_t max_inflight;
	uint32_t retry_limit_ms;
	uint32_t nsubs;
	struct sub *subs;
	uint32_t partitions;
	uint64_t rr;
	size_t pending;
	uint32_t ready_subs;
	bool ready_sent;
	bool failed;
	struct dn_op *schema_op;
	bool schema_ready;
	uint64_t schema_id;
	uint32_t schema_version;
	dn_ready_fn on_ready;
	dn_error_fn on_error;
	void *arg;
	dn_done_fn flush_cb;
	void *flush_arg;
	ev_timer flush_timer;
	struct dn_guard guard;
};

static void sub_pump(struct sub *s);
static void producer_destroy(void *arg);

static void entry_unlink(struct entry *e)
{
	struct sub *s = e->s;

	if (s->next_send == e)
		s->next_send = e->next;
	if (e->prev != NULL)
		e->prev->next = e->next;
	else
		s->head = e->next;
	if (e->next != NULL)
		e->next->prev = e->prev;
	else
		s->tail = e->prev;
	s->p->pending--;
}

static void check_flush(struct dn_producer *p)
{
	if (p->pending == 0 && p->flush_cb != NULL && !ev_is_active(&p->flush_timer))
		ev_timer_start(p->c->loop, &p->flush_timer);
}

/* Unlink, report and free one message. */
static void entry_finish(struct entry *e, int code, const char *error)
{
	struct dn_producer *p = e->s->p;

	entry_unlink(e);
	if (e->rpc != NULL) {
		dn_rpc_cancel(e->rpc);
		e->s->inflight--;
	}
	if (e->on_done != NULL)
		e->on_done(e->arg, code, error);
	free(e);
	check_flush(p);
}

static void flush_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dn_producer *p = w->data;
	dn_done_fn cb = p->flush_cb;

	if (p->pending != 0 || cb == NULL)
		return;
	dn_guard_enter(&p->guard);
	p->flush_cb = NULL;
	cb(p->flush_arg, DN_OK, "");
	dn_guard_leave(&p->guard);
}

/* A refusal that retrying cannot fix: the producer is done. */
static void producer_fail(struct dn_producer *p, int code, const char *error)
{
	if (p->failed)
		return;
	p->failed = true;
	dc_log_debug("%s", error);
	for (uint32_t i = 0; i < p->nsubs; i++) {
		struct sub *s = &p->subs[i];

		dn_rpc_cancel(s->create);
		s->create = NULL;
		dn_part_fail(&s->part);
		while (s->head != NULL)
			entry_finish(s->head, code, error);
	}
	if (p->on_error != NULL)
		p->on_error(p->arg, code, error);
}

/* Give up on messages that waited longer than the caller allows. */
static void expire_old(struct sub *s)
{
	struct dn_producer *p = s->p;
	uint64_t now = dc_now_ms();
	char err[2 * DN_ERRLEN];

	if (p->retry_limit_ms == 0)
		return;
	while (s->head != NULL && s->head->rpc == NULL &&
	       now - s->head->queued_ms >= p->retry_limit_ms) {
		if (s->last_error[0])
			snprintf(err, sizeof(err), "%s; gave up after %u ms", s->last_error,
				 p->retry_limit_ms);
		else
			snprintf(err, sizeof(err), "topic %s: no answer from the broker in %u ms",
				 s->part.topic, p->retry_limit_ms);
		entry_finish(s->head, s->last_code ? s->last_code : DN_DEADLINE_EXCEEDED, err);
	}
}

/* Stop sending, forget what is in flight (it is resent), retry after a backoff. */
static void sub_reconnect(void *arg, int code, const char *error)
{
	struct sub *s = arg;

	if (s->part.state == DN_PART_FAILED || s->p->failed)
		return;
	s->last_code = code;
	snprintf(s->last_error, sizeof(s->last_error), "%s", error);
	/* What was in flight is resent from the head, in order, after re-creating. */
	for (struct entry *e = s->head; e != NULL; e = e->next) {
		if (e->rpc != NULL) {
			dn_rpc_cancel(e->rpc);
			e->rpc = NULL;
		}
	}
	s->inflight = 0;
	s->next_send = s->head;
	dn_rpc_cancel(s->create);
	s->create = NULL;
	dn_part_backoff(&s->part, error);
	expire_old(s);
}

/* Before a retry: give up on what waited too long meanwhile. */
static void before_retry(void *arg)
{
	expire_old(arg);
}

static bool sub_ready_to_send(const struct sub *s)
{
	return s->part.state == DN_PART_LIVE && s->p->schema_ready && !s->p->guard.closing;
}

static void schema_done(void *arg, int code, const char *error, const struct dn_schema *sc)
{
	struct dn_producer *p = arg;

	p->schema_op = NULL;
	dn_guard_enter(&p->guard);
	if (code != DN_OK) {
		producer_fail(p, code, error);
	} else {
		p->schema_id = sc->id;
		p->schema_version = sc->version;
		p->schema_ready = true;
		for (uint32_t i = 0; i < p->nsubs; i++)
			sub_pump(&p->subs[i]);
	}
	dn_guard_leave(&p->guard);
}

static void sub_became_ready(struct sub *s)
{
	struct dn_producer *p = s->p;
	int err;

	dn_part_live(&s->part);
	s->last_code = 0;
	s->last_error[0] = '\0';
	dc_backoff_reset(&s->part.backoff);
	if (!s->created_once) {
		s->created_once = true;
		p->ready_subs++;
	}
	if (!p->schema_ready && p->schema_op == NULL) {
		err = dn_schema_latest_op(p->c, p->schema_subject, schema_done, p, &p->schema_op);
		if (err != 0) {
			char msg[DN_ERRLEN];

			snprintf(msg, sizeof(msg), "schema %s: cannot ask the registry: %s",
				 p->schema_subject, strerror(-err));
			producer_fail(p, DN_INTERNAL, msg);
			return;
		}
	}
	if (p->ready_subs == p->nsubs && !p->ready_sent) {
		p->ready_sent = true;
		if (p->on_ready != NULL)
			p->on_ready(p->arg);
	}
	sub_pump(s);
}

static void create_done(void *arg, int code, const char *message, void *resp)
{
	struct sub *s = arg;
	struct dn_producer *p = s->p;
	const danube_ProducerResponse *pr = resp;
	char err[DN_ERRLEN];

	s->create = NULL;
	dn_guard_enter(&p->guard);
	if (code == DN_OK) {
		s->part.id = pr->producer_id;
		sub_became_ready(s);
	} else {
		/* Creating auto-creates the topic, so NOT_FOUND here is final. */
		bool final =
			code == DN_NOT_FOUND || dn_error_recovery(code, message) == DN_RECOVER_FAIL;

		dn_error_format(err, sizeof(err), code, message,
				final ? "topic %s: broker refused producer %s"
				      : "topic %s: cannot create producer %s",
				s->part.topic, s->name);
		if (final)
			producer_fail(p, code, err);
		else
			sub_reconnect(s, code, err);
	}
	dn_guard_leave(&p->guard);
}

static void sub_create(void *arg)
{
	struct sub *s = arg;
	struct dn_producer *p = s->p;
	danube_ProducerRequest req = danube_ProducerRequest_init_zero;
	int rc;

	rc = dn_part_connect(&s->part);
	if (rc == 0) {
		req.request_id = ++s->part.request_id;
		req.producer_name = s->name;
		req.topic_name = s->part.topic;
		req.producer_access_mode = danube_ProducerAccessMode_Shared;
		req.dispatch_strategy = p->dispatch == DN_DISPATCH_RELIABLE
						? danube_DispatchStrategy_Reliable
						: danube_DispatchStrategy_NonReliable;
		if (p->schema_subject != NULL) {
			req.has_schema_ref = true;
			req.schema_ref.subject = p->schema_subject;
			req.schema_ref.which_version_ref = danube_SchemaReference_use_latest_tag;
			req.schema_ref.version_ref.use_latest = true;
		}
		rc = dn_rpc_start(p->c, s->part.conn, DN_PATH_CREATE_PRODUCER, s->part.proxy,
				  danube_ProducerRequest_fields, &req,
				  danube_ProducerResponse_fields, sizeof(danube_ProducerResponse),
				  DN_CONTROL_DEADLINE_MS, create_done, s, &s->create);
	}
	if (rc != 0)
		dn_part_unreachable(&s->part, rc);
}

static void send_done(void *arg, int code, const char *message, void *resp)
{
	struct entry *e = arg;
	struct sub *s = e->s;
	struct dn_producer *p = s->p;
	char err[DN_ERRLEN];

	e->rpc = NULL;
	s->inflight--;
	dn_guard_enter(&p->guard);
	if (code == DN_OK) {
		entry_finish(e, DN_OK, "");
		sub_pump(s);
	} else if (dn_error_recovery(code, message) == DN_RECOVER_FAIL) {
		dn_error_format(err, sizeof(err), code, message, "topic %s: broker refused message",
				s->part.topic);
		entry_finish(e, code, err);
		sub_pump(s);
	} else {
		dn_error_format(err, sizeof(err), code, message, "topic %s: sending failed",
				s->part.topic);
		sub_reconnect(s, code, err);
	}
	dn_guard_leave(&p->guard);
}

static int entry_send(struct sub *s, struct entry *e)
{
	struct dn_producer *p = s->p;
	danube_StreamMessage m = danube_StreamMessage_init_zero;

	m.request_id = ++s->part.request_id;
	m.has_msg_id = true;
	m.msg_id.producer_id = s->part.id;
	m.msg_id.topic_name = s->part.topic;
	m.msg_id.broker_addr = s->part.broker_url;
	m.msg_id.topic_offset = 0;
	m.payload.funcs.encode = dn_pb_encode_bytes;
	m.payload.arg = &e->payload;
	m.publish_time = e->publish_time;
	m.producer_name = s->name;
	m.attributes_count = e->nattrs;
	m.attributes = e->attrs;
	m.routing_key = e->key;
	if (p->schema_subject != NULL) {
		m.has_schema_id = true;
		m.schema_id = p->schema_id;
		m.has_schema_version = true;
		m.schema_version = p->schema_version;
	}
	return dn_rpc_start(p->c, s->part.conn, DN_PATH_SEND_MESSAGE, s->part.proxy,
			    danube_StreamMessage_fields, &m, NULL, 0, DN_SEND_DEADLINE_MS,
			    send_done, e, &e->rpc);
}

static void sub_pump(struct sub *s)
{
	struct dn_producer *p = s->p;
	char err[DN_ERRLEN];

	while (sub_ready_to_send(s) && s->next_send != NULL && s->inflight < p->max_inflight) {
		struct entry *e = s->next_send;
		int rc = entry_send(s, e);

		if (rc == -EMSGSIZE || rc == -EINVAL) {
			snprintf(err, sizeof(err),
				 "topic %s: message of %zu bytes refused: %s (%s)", s->part.topic,
				 e->payload.len,
				 rc == -EMSGSIZE ? "larger than the message size limit"
						 : "cannot be encoded",
				 dn_code_name(rc == -EMSGSIZE ? DN_RESOURCE_EXHAUSTED
							      : DN_INVALID_ARGUMENT));
			entry_finish(e,
				     rc == -EMSGSIZE ? DN_RESOURCE_EXHAUSTED : DN_INVALID_ARGUMENT,
				     err);
			continue;
		}
		if (rc != 0) {
			snprintf(err, sizeof(err), "topic %s: cannot send to %s: %s", s->part.topic,
				 s->part.connect_url, strerror(-rc));
			sub_reconnect(s, DN_UNAVAILABLE, err);
			return;
		}
		s->next_send = e->next;
		s->inflight++;
	}
}

/* ------------------------------------------------------------------- public */

static const struct dn_part_ops sub_ops = {
	.attach = sub_create,
	.lost = sub_reconnect,
	.before_retry = before_retry,
};

static int sub_init(struct dn_producer *p, uint32_t i)
{
	struct sub *s = &p->subs[i];
	char topic[512], name[512];
	bool ok = true;

	s->p = p;
	s->index = i;
	if (p->partitions > 0) {
		if (dn_partition_name(topic, sizeof(topic), p->topic, i) != 0)
			return -ENAMETOOLONG;
		snprintf(name, sizeof(name), "%s-%u", p->name, i);
	} else {
		snprintf(topic, sizeof(topic), "%s", p->topic);
		snprintf(name, sizeof(name), "%s", p->name);
	}
	s->name = dn_strdup(name, &ok);
	if (!ok)
		return -ENOMEM;
	return dn_part_init(&s->part, p->c, &p->guard, topic, false, s->name, "reconnecting",
			    &sub_ops, s);
}

int dn_producer_new(struct dn_client *c, const struct dn_producer_opts *o, dn_ready_fn on_ready,
		    dn_error_fn on_error, void *arg, struct dn_producer **out)
{
	struct dn_producer *p;
	bool ok = true;
	int err = 0;

	*out = NULL;
	if (c == NULL || o == NULL || o->topic == NULL || o->topic[0] == '\0' || o->name == NULL ||
	    o->name[0] == '\0' || o->partitions > 100000)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->c = c;
	p->topic = dn_strdup(o->topic, &ok);
	p->name = dn_strdup(o->name, &ok);
	if (o->schema_subject != NULL && o->schema_subject[0] != '\0')
		p->schema_subject = dn_strdup(o->schema_subject, &ok);
	p->schema_ready = p->schema_subject == NULL;
	p->dispatch = o->dispatch;
	p->max_inflight = o->max_inflight ? o->max_inflight : 1;
	p->retry_limit_ms = o->retry_limit_ms;
	p->partitions = o->partitions;
	p->nsubs = o->partitions ? o->partitions : 1;
	p->on_ready = on_ready;
	p->on_error = on_error;
	p->arg = arg;
	ev_timer_init(&p->flush_timer, flush_cb, 0.0, 0.0);
	p->flush_timer.data = p;
	p->guard.destroy = producer_destroy;
	p->guard.owner = p;
	p->subs = calloc(p->nsubs, sizeof(*p->subs));
	if (!ok || p->subs == NULL)
		err = -ENOMEM;
	for (uint32_t i = 0; err == 0 && i < p->nsubs; i++)
		err = sub_init(p, i);
	if (err != 0) {
		producer_destroy(p);
		return err;
	}
	for (uint32_t i = 0; i < p->nsubs; i++)
		dn_part_start(&p->subs[i].part);
	*out = p;
	return 0;
}

/* One allocation per message: the entry, its attribute array, payload and strings. */
static struct entry *entry_new(const void *payload, size_t len, const struct dn_attr *attrs,
			       size_t nattrs, const char *key)
{
	size_t off_attrs = sizeof(struct entry);
	size_t off_payload = off_attrs + nattrs * sizeof(danube_StreamMessage_AttributesEntry);
	size_t off_str, total;
	struct entry *e;
	char *str;

	off_str = off_payload + len;
	total = off_str + (key ? strlen(key) + 1 : 0);
	for (size_t i = 0; i < nattrs; i++)
		total += strlen(attrs[i].key) + strlen(attrs[i].value) + 2;
	e = malloc(total);
	if (e == NULL)
		return NULL;
	memset(e, 0, sizeof(*e));
	e->attrs = (danube_StreamMessage_AttributesEntry *)((char *)e + off_attrs);
	e->nattrs = (pb_size_t)nattrs;
	e->payload.data = (uint8_t *)e + off_payload;
	e->payload.len = len;
	if (len > 0)
		memcpy(e->payload.data, payload, len);
	str = (char *)e + off_str;
	for (size_t i = 0; i < nattrs; i++) {
		size_t kl = strlen(attrs[i].key) + 1, vl = strlen(attrs[i].value) + 1;

		e->attrs[i].key = memcpy(str, attrs[i].key, kl);
		str += kl;
		e->attrs[i].value = memcpy(str, attrs[i].value, vl);
		str += vl;
	}
	if (key != NULL)
		e->key = memcpy(str, key, strlen(key) + 1);
	return e;
}

int dn_producer_send(struct dn_producer *p, const void *payload, size_t len,
		     const struct dn_attr *attrs, size_t nattrs, const char *routing_key,
		     dn_done_fn on_done, void *arg)
{
	size_t approx = len + 128 + strlen(p->topic) + strlen(p->name);
	struct entry *e;
	struct sub *s;
	uint32_t idx;

	if ((payload == NULL && len > 0) || (attrs == NULL && nattrs > 0) || nattrs > 65535 ||
	    len > UINT32_MAX)
		return -EINVAL;
	if (p->failed || p->guard.closing)
		return -EPIPE;
	for (size_t i = 0; i < nattrs; i++) {
		if (attrs[i].key == NULL || attrs[i].value == NULL)
			return -EINVAL;
		approx += strlen(attrs[i].key) + strlen(attrs[i].value) + 8;
	}
	if (routing_key != NULL)
		approx += strlen(routing_key) + 4;
	if (approx > p->c->max_msg_size)
		return -EMSGSIZE;
	e = entry_new(payload, len, attrs, nattrs, routing_key);
	if (e == NULL)
		return -ENOMEM;
	if (routing_key != NULL)
		idx = dn_partition_for_key(routing_key, strlen(routing_key), p->nsubs);
	else
		idx = (uint32_t)(p->rr++ % p->nsubs);
	s = &p->subs[idx];
	e->s = s;
	e->on_done = on_done;
	e->arg = arg;
	e->queued_ms = dc_now_ms();
	e->publish_time = dc_wall_ms();
	e->prev = s->tail;
	if (s->tail != NULL)
		s->tail->next = e;
	else
		s->head = e;
	s->tail = e;
	if (s->next_send == NULL)
		s->next_send = e;
	p->pending++;
	dn_guard_enter(&p->guard);
	sub_pump(s);
	dn_guard_leave(&p->guard);
	return 0;
}

size_t dn_producer_pending(const struct dn_producer *p)
{
	return p->pending;
}

void dn_producer_flush(struct dn_producer *p, dn_done_fn cb, void *arg)
{
	p->flush_cb = cb;
	p->flush_arg = arg;
	check_flush(p);
}

static void producer_destroy(void *arg)
{
	struct dn_producer *p = arg;
	struct ev_loop *loop = p->c->loop;

	p->guard.closing = true;
	p->flush_cb = NULL;
	ev_timer_stop(loop, &p->flush_timer);
	dn_op_cancel(p->schema_op);
	p->schema_op = NULL;
	for (uint32_t i = 0; p->subs != NULL && i < p->nsubs; i++) {
		struct sub *s = &p->subs[i];

		dn_rpc_cancel(s->create);
		dn_part_stop(&s->part);
		while (s->head != NULL)
			entry_finish(s->head, DN_CANCELLED, "the producer was closed");
		dn_part_free(&s->part);
		free(s->name);
	}
	free(p->subs);
	free(p->topic);
	free(p->name);
	free(p->schema_subject);
	free(p);
}

void dn_producer_close(struct dn_producer *p)
{
	if (p != NULL)
		dn_guard_close(&p->guard);
}
