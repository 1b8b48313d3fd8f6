/*
 * The [mqtt] connection keys both MQTT connectors share, and turning a
 * loaded configuration into struct dc_mqtt_opts.
 */
#ifndef DC_MQTT_OPTIONS_H
#define DC_MQTT_OPTIONS_H

#include <stddef.h>

#include "config.h"
#include "config_keys.h"
#include "mqtt/client.h"

extern const struct dc_cfg_key dc_mqtt_conn_keys[];
extern const size_t dc_mqtt_nconn_keys;
extern const struct dc_cfg_table dc_mqtt_conn_table; /* the same, for a connector's ops */

/*
 * Fills o from cfg ([mqtt]); the default client_id is "danube-connect-NAME",
 * kept in id_buf. Problems go to diag with their place. Returns 0 or -EINVAL.
 */
int dc_mqtt_opts_load(struct dc_mqtt_opts *o, const struct dc_config *cfg, const char *name,
		      char *id_buf, size_t id_len, struct dc_diag *diag);

/*
 * dc_mqtt_new for a connector's open(): why it failed goes to diag at the
 * place of the [mqtt] section. Returns 0 or dc_mqtt_new's -errno.
 */
int dc_mqtt_new_for(const struct dc_config *cfg, struct ev_loop *loop,
		    const struct dc_mqtt_opts *opts, const struct dc_mqtt_cbs *cbs, void *arg,
		    struct dc_mqtt **out, struct dc_diag *diag);

#endif
