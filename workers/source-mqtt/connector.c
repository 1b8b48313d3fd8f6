/*
 * source-mqtt: MQTT subscriptions to Danube topics. Each message becomes one
 * record routed by the MQTT topic (so one MQTT topic stays in order).
 */
#include <errno.h>
#include <ev.h>
#include <mosquitto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "config_keys.h"
#include "log.h"
#include "mqtt/client.h"
#include "mqtt/options.h"
#include "runtime/connector.h"
#include "smq.h"

/* A message libmosquitto already acknowledged that the runtime could not take yet. */
struct held {
	struct held *next;
	struct mosquitto_message msg;
	uint64_t received_us;
};

struct smq {
	struct dc_rt *rt;
	struct smq_config cfg;
	struct dc_mqtt *mqtt;
	struct held *head, *tail;
	uint64_t next_token;
	bool paused, stopped;
};

static const struct smq_route *route_for(const struct smq *s, const char *topic)
{
	bool match;

	for (size_t i = 0; i < s->cfg.nroutes; i++)
		if (mosquitto_topic_matches_sub(s->cfg.routes[i].filter, topic, &match) ==
			    MOSQ_ERR_SUCCESS &&
		    match)
			return &s->cfg.routes[i];
	return NULL;
}

/* Returns 0 when taken (or dropped for good), -EAGAIN when the runtime is full. */
static int submit(struct smq *s, const struct mosquitto_message *m, uint64_t received_us)
{
	const struct smq_route *r = route_for(s, m->topic);
	char qos[4];
	struct dn_attr attrs[5] = {
		{"mqtt.topic", m->topic},
		{"mqtt.qos", qos},
		{"mqtt.retain", m->retain ? "true" : "false"},
		{"mqtt.dup", "false"},
		{"source", "mqtt"},
	};
	struct dc_record rec = {0};
	int rc;

	if (!r) {
		/* A persistent session can still hold subscriptions from an older configuration. */
		dc_rt_report_error(s->rt, "", "invalid_data",
				   "MQTT topic %s matches no route: message dropped", m->topic);
		return 0;
	}
	snprintf(qos, sizeof(qos), "%d", m->qos);
	rec.payload = m->payload ? m->payload : "";
	rec.len = (size_t)m->payloadlen;
	rec.attrs = attrs;
	rec.nattrs = 5;
	rec.routing_key = m->topic;
	rec.topic = r->danube_topic;
	rec.token = ++s->next_token;
	rec.received_us = received_us;
	rc = dc_rt_submit(s->rt, &rec);
	if (rc == -EAGAIN) {
		s->next_token--;
		return rc;
	}
	if (rc != 0) {
		s->next_token--;
		dc_rt_report_error(s->rt, r->danube_topic ? r->danube_topic : "", "broker",
				   "cannot hand a message of %s to the runtime: %s", m->topic,
				   strerror(-rc));
		return rc;
	}
	return 0;
}

static int hold(struct smq *s, const struct mosquitto_message *m, uint64_t received_us)
{
	struct held *h = calloc(1, sizeof(*h));

	if (!h)
		return -ENOMEM;
	if (mosquitto_message_copy(&h->msg, m) != MOSQ_ERR_SUCCESS) {
		free(h);
		return -ENOMEM;
	}
	h->received_us = received_us;
	if (s->tail)
		s->tail->next = h;
	else
		s->head = h;
	s->tail = h;
	return 0;
}

static void drop_head(struct smq *s)
{
	struct held *h = s->head;

	s->head = h->next;
	if (!s->head)
		s->tail = NULL;
	mosquitto_message_free_contents(&h->msg);
	free(h);
}

/* Offer held messages in arrival order until the runtime is full again. */
static void flush_held(struct smq *s)
{
	while (s->head && !s->paused) {
		int rc = submit(s, &s->head->msg, s->head->received_us);

		if (rc == -EAGAIN)
			return;
		if (rc != 0 && rc != -EPIPE)
			return; /* out of memory: try again on the next resume */
		if (rc == -EPIPE)
			dc_log_error("source-mqtt: a message of %s was lost at shutdown",
				     s->head->msg.topic);
		drop_head(s);
	}
}

static void on_message(void *arg, const struct mosquitto_message *m)
{
	struct smq *s = arg;
	uint64_t now = dc_now_us();
	int rc;

	/* Ordering: while anything is held, newer messages queue behind it. */
	if (!s->head && !s->paused) {
		rc = submit(s, m, now);
		if (rc != -EAGAIN && rc != -ENOMEM)
			return;
	}
	if (hold(s, m, now) != 0)
		dc_log_error("source-mqtt: out of memory: a message of %s was lost", m->topic);
}

static void on_connect(void *arg)
{
	struct smq *s = arg;
	int rc;

	/* A persistent session keeps subscriptions, but a new or cleaned one does not. */
	for (size_t i = 0; i < s->cfg.nroutes; i++) {
		rc = dc_mqtt_subscribe(s->mqtt, s->cfg.routes[i].filter, s->cfg.routes[i].qos);
		if (rc != 0)
			dc_rt_report_error(s->rt, "", "external", "cannot subscribe to %s: %s",
					   s->cfg.routes[i].filter, dc_mqtt_last_error(s->mqtt));
	}
	dc_rt_external_up(s->rt);
}

static void on_disconnect(void *arg, const char *reason)
{
	struct smq *s = arg;
	char why[256];

	snprintf(why, sizeof(why), "MQTT broker: %s", reason);
	dc_rt_external_down(s->rt, why);
}

static int smq_open(struct dc_rt *rt, const struct dc_config *cfg, void **state,
		    struct dc_diag *diag)
{
	struct smq *s = calloc(1, sizeof(*s));
	static const struct dc_mqtt_cbs cbs = {
		.on_connect = on_connect,
		.on_disconnect = on_disconnect,
		.on_message = on_message,
	};
	char err[256];

	if (!s) {
		dc_diag_add(diag, "out of memory");
		return -1;
	}
	s->rt = rt;
	if (smq_config_load(&s->cfg, cfg, dc_rt_name(rt), diag) != 0) {
		free(s);
		return -1;
	}
	if (dc_mqtt_new(dc_rt_loop(rt), &s->cfg.mqtt, &cbs, s, &s->mqtt, err, sizeof(err)) != 0) {
		dc_diag_add(diag, "%s: %s",
			    dc_config_section_where(cfg, "mqtt")
				    ? dc_config_section_where(cfg, "mqtt")
				    : "[mqtt]",
			    err);
		smq_config_free(&s->cfg);
		free(s);
		return -1;
	}
	*state = s;
	return 0;
}

static int smq_start(void *state)
{
	struct smq *s = state;

	dc_log_info("source-mqtt: libmosquitto %s, %zu route(s), client id %s",
		    dc_mqtt_lib_version(), s->cfg.nroutes, s->cfg.mqtt.client_id);
	dc_mqtt_start(s->mqtt);
	return 0;
}

static void smq_pause(void *state)
{
	struct smq *s = state;

	s->paused = true;
	dc_mqtt_pause(s->mqtt);
}

static void smq_resume(void *state)
{
	struct smq *s = state;

	if (s->stopped)
		return;
	s->paused = false;
	flush_held(s);
	if (!s->paused)
		dc_mqtt_resume(s->mqtt);
}

static void smq_committed(void *state, uint64_t token)
{
	/*
	 * libmosquitto acknowledged each message to the MQTT broker already (see
	 * the man page): there is no MQTT position left to commit.
	 */
	(void)state;
	(void)token;
}

static void smq_stop(void *state)
{
	struct smq *s = state;

	/* Held messages are acknowledged to the MQTT broker: hand them over while we may. */
	s->paused = false;
	flush_held(s);
	s->stopped = true;
	s->paused = true;
	dc_mqtt_pause(s->mqtt);
}

static void smq_close(void *state)
{
	struct smq *s = state;

	if (s->head)
		dc_log_error("source-mqtt: messages held at exit were not delivered");
	while (s->head)
		drop_head(s);
	dc_mqtt_free(s->mqtt);
	smq_config_free(&s->cfg);
	free(s);
}

int main(int argc, char **argv)
{
	struct dc_source_ops ops = {
		.type = "source-mqtt",
		.open = smq_open,
		.start = smq_start,
		.pause = smq_pause,
		.resume = smq_resume,
		.committed = smq_committed,
		.stop = smq_stop,
		.close = smq_close,
	};
	struct dc_cfg_key *keys;
	size_t n;
	int rc;

	if (dc_cfg_keys_concat(&keys, &n, dc_mqtt_conn_keys, dc_mqtt_nconn_keys, smq_keys,
			       smq_nkeys, NULL) != 0) {
		fprintf(stderr, "source-mqtt: out of memory\n");
		return 1;
	}
	ops.keys = keys;
	ops.nkeys = n;
	rc = dc_source_main(argc, argv, &ops);
	free(keys);
	return rc;
}
