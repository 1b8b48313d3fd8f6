/* source-mqtt's keys: the shared [mqtt] connection keys plus [route NAME] sections. */
#include <mosquitto.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "mqtt/options.h"
#include "smq.h"

#define R "route"
/* clang-format off */
static const struct dc_cfg_key keys[] = {
	{.section = R, .key = "mqtt_topic", .type = DC_CFG_STRING, .flags = DC_CFG_REQUIRED | DC_CFG_MULTI},
	{.section = R, .key = "qos", .type = DC_CFG_INT, .def = "1", .flags = DC_CFG_MULTI, .max = 2},
	{.section = R, .key = "danube_topic", .type = DC_CFG_STRING, .flags = DC_CFG_MULTI},
};
/* clang-format on */
const struct dc_cfg_table smq_keys = DC_CFG_TABLE(keys);

int smq_config_load(struct smq_config *c, const struct dc_config *cfg, const char *name,
		    struct dc_diag *diag)
{
	const char **names;
	size_t n = dc_config_sections(cfg, R, &names);
	int bad = 0;

	memset(c, 0, sizeof(*c));
	if (dc_mqtt_opts_load(&c->mqtt, cfg, name, c->client_id, sizeof(c->client_id), diag))
		bad = 1;
	if (n == 0) {
		const char *file = dc_config_file(cfg);

		dc_diag_add(diag, "%s: source-mqtt needs at least one [route NAME] section",
			    file ? file : "configuration");
		return -1;
	}
	c->routes = calloc(n, sizeof(*c->routes));
	if (!c->routes) {
		dc_diag_add(diag, "out of memory");
		return -1;
	}
	c->nroutes = n;
	for (size_t i = 0; i < n; i++) {
		struct smq_route *r = &c->routes[i];

		r->name = names[i];
		r->filter = dc_config_str(cfg, names[i], "mqtt_topic");
		r->qos = (int)dc_config_int(cfg, names[i], "qos");
		r->danube_topic = dc_config_str(cfg, names[i], "danube_topic");
		if (!r->filter || mosquitto_sub_topic_check(r->filter) != MOSQ_ERR_SUCCESS) {
			dc_diag_add(diag, "%s: mqtt_topic is not a valid MQTT topic filter",
				    dc_config_where(cfg, names[i], "mqtt_topic"));
			bad = 1;
		}
		if (!r->danube_topic && !dc_config_str(cfg, "danube", "topic")) {
			char sn[DC_SHOWN_NAME];

			dc_diag_add(diag, "%s: [%s] needs danube_topic (or set [danube] topic)",
				    dc_config_section_where(cfg, names[i])
					    ? dc_config_section_where(cfg, names[i])
					    : "configuration",
				    dc_log_shown(names[i], sn, sizeof(sn)));
			bad = 1;
		}
	}
	if (bad) {
		smq_config_free(c);
		return -1;
	}
	return 0;
}

void smq_config_free(struct smq_config *c)
{
	free(c->routes);
	c->routes = NULL;
	c->nroutes = 0;
}
