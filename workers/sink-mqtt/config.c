/* sink-mqtt's keys: the shared [mqtt] connection keys plus topic, qos, retain. */
#include <mosquitto.h>
#include <stdlib.h>
#include <string.h>

#include "mqtt/options.h"
#include "skmq.h"

#define M "mqtt"
/* clang-format off */
static const struct dc_cfg_key keys[] = {
	{.section = M, .key = "topic", .type = DC_CFG_STRING},
	{.section = M, .key = "qos", .type = DC_CFG_INT, .def = "1", .max = 2},
	{.section = M, .key = "retain", .type = DC_CFG_BOOL, .def = "false"},
	{.section = M, .key = "ack_timeout_ms", .type = DC_CFG_DURATION, .def = "30000", .min = 100, .max = 3600000},
};
/* clang-format on */
const struct dc_cfg_table skmq_keys = DC_CFG_TABLE(keys);

/* Every "{" opens "{attr.NAME}" with a non-empty NAME. */
static int template_ok(const char *t)
{
	const char *p = t;

	while ((p = strchr(p, '{'))) {
		const char *end = strchr(p, '}');

		if (strncmp(p, "{attr.", 6) != 0 || !end || end == p + 6)
			return 0;
		p = end + 1;
	}
	return 1;
}

int skmq_config_load(struct skmq_config *c, const struct dc_config *cfg, const char *name,
		     struct dc_diag *diag)
{
	int bad = 0;

	memset(c, 0, sizeof(*c));
	if (dc_mqtt_opts_load(&c->mqtt, cfg, name, c->client_id, sizeof(c->client_id), diag))
		bad = 1;
	c->topic = dc_config_str(cfg, M, "topic");
	c->qos = (int)dc_config_int(cfg, M, "qos");
	c->retain = dc_config_bool(cfg, M, "retain");
	c->ack_timeout_ms = (uint64_t)dc_config_int(cfg, M, "ack_timeout_ms");
	if (c->topic) {
		if (!template_ok(c->topic)) {
			dc_diag_add(diag, "%s: topic: a '{' must open {attr.NAME}",
				    dc_config_where(cfg, M, "topic"));
			bad = 1;
		} else if (!strchr(c->topic, '{') &&
			   mosquitto_pub_topic_check(c->topic) != MOSQ_ERR_SUCCESS) {
			dc_diag_add(diag, "%s: topic is not a valid MQTT topic to publish to",
				    dc_config_where(cfg, M, "topic"));
			bad = 1;
		}
	}
	return bad ? -1 : 0;
}

/*
 * Expands the template (or takes mqtt.topic) into a malloc'd topic. Returns
 * NULL with why in err when an attribute is missing or memory runs out.
 */
char *skmq_topic_for(const struct skmq_config *c, const struct dn_message *msg, char *err,
		     size_t errlen)
{
	const char *t = c->topic;
	size_t cap = 64, len = 0;
	char *out;

	if (!t) {
		for (size_t i = 0; i < msg->nattrs; i++)
			if (strcmp(msg->attrs[i].key, "mqtt.topic") == 0)
				return strdup(msg->attrs[i].value);
		snprintf(err, errlen, "the message has no mqtt.topic attribute");
		return NULL;
	}
	out = malloc(cap);
	if (!out)
		goto nomem;
	while (*t) {
		const char *src = NULL, *end;
		size_t n;

		if (*t == '{') {
			end = strchr(t, '}');
			n = (size_t)(end - (t + 6));
			for (size_t i = 0; i < msg->nattrs && !src; i++)
				if (strlen(msg->attrs[i].key) == n &&
				    memcmp(msg->attrs[i].key, t + 6, n) == 0)
					src = msg->attrs[i].value;
			if (!src) {
				snprintf(err, errlen, "the message has no attribute %.*s", (int)n,
					 t + 6);
				free(out);
				return NULL;
			}
			n = strlen(src);
			t = end + 1;
		} else {
			end = strchr(t, '{');
			src = t;
			n = end ? (size_t)(end - t) : strlen(t);
			t += n;
		}
		if (len + n + 1 > cap) {
			char *bigger;

			while (len + n + 1 > cap)
				cap *= 2;
			bigger = realloc(out, cap);
			if (!bigger) {
				free(out);
				goto nomem;
			}
			out = bigger;
		}
		memcpy(out + len, src, n);
		len += n;
	}
	out[len] = '\0';
	return out;
nomem:
	snprintf(err, errlen, "out of memory");
	return NULL;
}
