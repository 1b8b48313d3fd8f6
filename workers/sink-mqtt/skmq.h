/* sink-mqtt's configuration and the MQTT topic each message goes to. */
#ifndef SINK_MQTT_SKMQ_H
#define SINK_MQTT_SKMQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "config_keys.h"
#include "danube/client.h"
#include "mqtt/client.h"

struct skmq_config {
	struct dc_mqtt_opts mqtt;
	char client_id[256];
	const char *topic; /* fixed or {attr.NAME} template; NULL: the mqtt.topic attribute */
	int qos;
	bool retain;
	uint64_t ack_timeout_ms;
};

extern const struct dc_cfg_table skmq_keys; /* its own sections */

int skmq_config_load(struct skmq_config *c, const struct dc_config *cfg, const char *name,
		     struct dc_diag *diag);
char *skmq_topic_for(const struct skmq_config *c, const struct dn_message *msg, char *err,
		     size_t errlen);

#endif
