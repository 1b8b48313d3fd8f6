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

struct smq {
	struct dc_rt *rt;
	struct smq_config cfg;
	struct dc_mqtt *mqtt;
	uint64_t next_token;
	bool stopped;
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

/* Hands a message to the runtime, which takes it even when full (and pauses us). */
static void on_message(void *arg, const struct mosquitto_message *m)
{
	struct smq *s = arg;
	const struct smq_route *r = route_for(s, m->topic);
	char qos[4];
	struct dn_attr attrs[5] = {
		{"mqtt.topic", m->topic},
		{"mqtt.qos", qos},
		{"mqtt.retain", m->retain ? "true" : "false"},
		{"mqtt.dup", "false"},
		{"source", "mqtt"},
	};
	struct dc_record rec = {
		.payload = m->payload ? m->payload : "",
		.len = (size_t)m->payloadlen,
		.attrs = attrs,
		.nattrs = 5,
		.routing_key = m->topic,
		.token = s->next_token + 1,
	};
	int rc;

	if (!r) {
		/* A persistent session can still hold subscriptions from an older configuration. */
		dc_rt_report_error(s->rt, "", "invalid_data",
				   "MQTT topic %s matches no route: message dropped", m->topic);
		return;
	}
	snprintf(qos, sizeof(qos), "%d", m->qos);
	rec.topic = r->danube_topic;
	rc = dc_rt_submit(s->rt, &rec);
	if (rc == 0) {
		s->next_token++;
		return;
	}
	/* libmosquitto acknowledged it to the MQTT broker already: it is lost. */
	dc_rt_report_error(s->rt, r->danube_topic ? r->danube_topic : "", "broker",
			   "a message of %s was lost: %s", m->topic, strerror(-rc));
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
	dc_rt_external_down(((struct smq *)arg)->rt, "MQTT broker: %s", reason);
}

static int smq_open(struct dc_rt *rt, const struct dc_config *cfg, void *state,
		    struct dc_diag *diag)
{
	struct smq *s = state;
	static const struct dc_mqtt_cbs cbs = {
		.on_connect = on_connect,
		.on_disconnect = on_disconnect,
		.on_message = on_message,
	};
	s->rt = rt;
	if (smq_config_load(&s->cfg, cfg, dc_rt_name(rt), diag) != 0)
		return -1;
	if (dc_mqtt_new_for(cfg, dc_rt_loop(rt), &s->cfg.mqtt, &cbs, s, &s->mqtt, diag) != 0) {
		smq_config_free(&s->cfg);
		return -1;
	}
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

	dc_mqtt_pause(s->mqtt);
}

static void smq_resume(void *state)
{
	struct smq *s = state;

	if (!s->stopped)
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

	s->stopped = true;
	dc_mqtt_pause(s->mqtt);
}

static void smq_close(void *state)
{
	struct smq *s = state;

	dc_mqtt_free(s->mqtt);
	smq_config_free(&s->cfg);
}

DC_SOURCE_WORKER("source-mqtt", smq, &dc_mqtt_conn_table, &smq_keys)
