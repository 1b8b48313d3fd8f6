/* source-mqtt's configuration: the [mqtt] connection and the [route NAME] sections. */
#ifndef SRC_MQTT_SMQ_H
#define SRC_MQTT_SMQ_H

#include <stddef.h>

#include "config.h"
#include "config_keys.h"
#include "mqtt/client.h"

struct smq_route {
	const char *name; /* "route NAME" */
	const char *filter;
	int qos;
	const char *danube_topic; /* NULL: [danube] topic */
};

struct smq_config {
	struct dc_mqtt_opts mqtt;
	char client_id[256];
	struct smq_route *routes;
	size_t nroutes;
};

extern const struct dc_cfg_table smq_keys; /* its own sections */

/* Reads and checks everything; problems go to diag. Returns 0 or -1. */
int smq_config_load(struct smq_config *c, const struct dc_config *cfg, const char *name,
		    struct dc_diag *diag);
void smq_config_free(struct smq_config *c);

#endif
