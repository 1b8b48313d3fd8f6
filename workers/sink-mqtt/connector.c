/*
 * sink-mqtt: Danube messages published to MQTT. A record is OK only once the
 * broker confirmed it (PUBACK for QoS 1, PUBCOMP for QoS 2), so the runtime
 * acknowledges the Danube message only then.
 */
#include <errno.h>
#include <ev.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_keys.h"
#include "log.h"
#include "mqtt/client.h"
#include "mqtt/options.h"
#include "runtime/connector.h"
#include "skmq.h"

struct skmq {
	struct dc_rt *rt;
	struct skmq_config cfg;
	struct dc_mqtt *mqtt;
	struct dc_batch *batch; /* in flight */
	int *mids;              /* per record; valid while pending[i] */
	bool *pending;
	size_t npending, cap;
	bool publishing; /* inside publish_batch: on_publish must not finish the batch */
	ev_timer ack_w;
};

static void finish(struct skmq *s)
{
	struct dc_batch *b = s->batch;

	ev_timer_stop(dc_rt_loop(s->rt), &s->ack_w);
	s->batch = NULL;
	s->npending = 0;
	dc_rt_write_done(s->rt, b);
}

static void publish_batch(struct skmq *s)
{
	struct dc_batch *b = s->batch;
	char err[256];

	s->publishing = true;
	for (size_t i = 0; i < b->n; i++) {
		struct dc_sink_record *r = &b->records[i];
		char *topic = skmq_topic_for(&s->cfg, r->msg, err, sizeof(err));
		int rc;

		if (!topic) {
			if (strcmp(err, "out of memory") == 0)
				dc_rt_set_result(r, DC_WRITE_RETRY, "external", "%s", err);
			else
				dc_rt_set_result(r, DC_WRITE_FATAL, "invalid_data", "%s", err);
			continue;
		}
		/* A QoS 0 publish can complete inside mosquitto_publish: pending first. */
		s->pending[i] = true;
		s->npending++;
		rc = dc_mqtt_publish(s->mqtt, topic, r->msg->payload, r->msg->payload_len,
				     s->cfg.qos, s->cfg.retain, &s->mids[i]);
		free(topic);
		/* Without a connection libmosquitto keeps QoS 1/2 messages and sends them later. */
		if (rc == 0 || (rc == -ENOTCONN && s->cfg.qos > 0))
			continue;
		if (s->pending[i]) {
			s->pending[i] = false;
			s->npending--;
		}
		if (rc == -ENOTCONN || rc == -ENOMEM)
			dc_rt_set_result(r, DC_WRITE_RETRY, "external", "MQTT publish: %s",
					 dc_mqtt_last_error(s->mqtt));
		else
			dc_rt_set_result(r, DC_WRITE_FATAL, "invalid_data", "MQTT publish: %s",
					 dc_mqtt_last_error(s->mqtt));
	}
	s->publishing = false;
	if (s->npending == 0) {
		finish(s);
		return;
	}
	ev_timer_set(&s->ack_w, (double)s->cfg.ack_timeout_ms / 1000.0, 0.0);
	ev_timer_start(dc_rt_loop(s->rt), &s->ack_w);
}

static void on_publish(void *arg, int mid)
{
	struct skmq *s = arg;

	if (!s->batch)
		return; /* a late confirmation of a record already handed back as RETRY */
	for (size_t i = 0; i < s->batch->n; i++) {
		if (s->pending[i] && s->mids[i] == mid) {
			s->pending[i] = false;
			s->npending--;
			s->batch->records[i].result = DC_WRITE_OK;
			break;
		}
	}
	if (s->npending == 0 && !s->publishing)
		finish(s);
}

static void ack_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct skmq *s = w->data;

	(void)loop;
	(void)revents;
	for (size_t i = 0; i < s->batch->n; i++)
		if (s->pending[i]) {
			s->pending[i] = false;
			dc_rt_set_result(&s->batch->records[i], DC_WRITE_RETRY, "external",
					 "no confirmation from the MQTT broker in time");
		}
	finish(s);
}

static void on_connect(void *arg)
{
	struct skmq *s = arg;

	dc_rt_external_up(s->rt);
}

static void on_disconnect(void *arg, const char *reason)
{
	dc_rt_external_down(((struct skmq *)arg)->rt, "MQTT broker: %s", reason);
}

static void skmq_write(void *state, struct dc_batch *b)
{
	struct skmq *s = state;

	if (b->n > s->cap) {
		int *mids = realloc(s->mids, b->n * sizeof(*mids));
		bool *pending;

		if (mids)
			s->mids = mids;
		pending = mids ? realloc(s->pending, b->n * sizeof(*pending)) : NULL;
		if (!pending) {
			dc_rt_retry_all(s->rt, b, "out of memory");
			return;
		}
		s->pending = pending;
		s->cap = b->n;
	}
	memset(s->pending, 0, b->n * sizeof(*s->pending));
	for (size_t i = 0; i < b->n; i++)
		dc_rt_set_result(&b->records[i], DC_WRITE_RETRY, "external", "not confirmed");
	s->batch = b;
	s->npending = 0;
	/* The runtime writes only while the broker is connected (dc_rt_external_up). */
	publish_batch(s);
}

static int skmq_open(struct dc_rt *rt, const struct dc_config *cfg, void *state,
		     struct dc_diag *diag)
{
	static const struct dc_mqtt_cbs cbs = {
		.on_connect = on_connect,
		.on_disconnect = on_disconnect,
		.on_publish = on_publish,
	};
	struct skmq *s = state;

	s->rt = rt;
	ev_timer_init(&s->ack_w, ack_timeout, 0.0, 0.0);
	s->ack_w.data = s;
	if (skmq_config_load(&s->cfg, cfg, dc_rt_name(rt), diag) != 0)
		return -1;
	return dc_mqtt_new_for(cfg, dc_rt_loop(rt), &s->cfg.mqtt, &cbs, s, &s->mqtt, diag);
}

static int skmq_start(void *state)
{
	struct skmq *s = state;

	dc_log_info("sink-mqtt: libmosquitto %s, client id %s, qos %d", dc_mqtt_lib_version(),
		    s->cfg.mqtt.client_id, s->cfg.qos);
	dc_mqtt_start(s->mqtt);
	return 0;
}

static void skmq_close(void *state)
{
	struct skmq *s = state;

	/* A batch still here is the runtime's to free, unacknowledged. */
	if (ev_is_active(&s->ack_w))
		ev_timer_stop(dc_rt_loop(s->rt), &s->ack_w);
	dc_mqtt_free(s->mqtt);
	free(s->mids);
	free(s->pending);
}

DC_SINK_WORKER("sink-mqtt", skmq, &dc_mqtt_conn_table, &skmq_keys)
