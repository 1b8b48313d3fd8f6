/* The shared [mqtt] connection keys of source-mqtt and sink-mqtt. */
#include <stdio.h>
#include <string.h>

#include "mqtt/options.h"

static const char *const protocols[] = {"3.1.1", "5", NULL};

#define M "mqtt"
const struct dc_cfg_key dc_mqtt_conn_keys[] = {
	{M, "host", DC_CFG_STRING, "127.0.0.1", 0, 0, 0, NULL, NULL},
	{M, "port", DC_CFG_INT, "1883", 0, 1, 65535, NULL, NULL},
	{M, "client_id", DC_CFG_STRING, NULL, 0, 0, 0, NULL, NULL},
	{M, "username", DC_CFG_STRING, NULL, 0, 0, 0, NULL, NULL},
	{M, "password", DC_CFG_STRING, NULL, DC_CFG_SECRET, 0, 0, NULL, NULL},
	{M, "tls_ca", DC_CFG_STRING, NULL, 0, 0, 0, NULL, NULL},
	{M, "tls_cert", DC_CFG_STRING, NULL, 0, 0, 0, NULL, NULL},
	{M, "tls_key", DC_CFG_STRING, NULL, 0, 0, 0, NULL, NULL},
	{M, "keepalive_s", DC_CFG_INT, "60", 0, 5, 65535, NULL, NULL},
	{M, "clean_session", DC_CFG_BOOL, "false", 0, 0, 0, NULL, NULL},
	{M, "protocol", DC_CFG_ENUM, "3.1.1", 0, 0, 0, protocols, NULL},
	{M, "reconnect_backoff_ms", DC_CFG_DURATION, "500", 0, 1, 3600000, NULL, NULL},
	{M, "reconnect_backoff_max_ms", DC_CFG_DURATION, "30000", 0, 1, 3600000, NULL, NULL},
};
const size_t dc_mqtt_nconn_keys = sizeof(dc_mqtt_conn_keys) / sizeof(dc_mqtt_conn_keys[0]);
const struct dc_cfg_table dc_mqtt_conn_table = DC_CFG_TABLE(dc_mqtt_conn_keys);

int dc_mqtt_opts_load(struct dc_mqtt_opts *o, const struct dc_config *cfg, const char *name,
		      char *id_buf, size_t id_len, struct dc_diag *diag)
{
	const char *id = dc_config_str(cfg, M, "client_id");
	int bad = 0;

	memset(o, 0, sizeof(*o));
	o->host = dc_config_str(cfg, M, "host");
	o->port = (int)dc_config_int(cfg, M, "port");
	if (!id) {
		snprintf(id_buf, id_len, "danube-connect-%s", name);
		id = id_buf;
	}
	/* MQTT 3.1.1 brokers may refuse longer ids; mosquitto takes up to 65535 bytes. */
	if (strlen(id) == 0 || strlen(id) > 65535) {
		dc_diag_add(diag, "%s: client_id must be 1 to 65535 bytes",
			    dc_config_where(cfg, M, "client_id"));
		bad = 1;
	}
	o->client_id = id;
	o->username = dc_config_str(cfg, M, "username");
	o->password = dc_config_str(cfg, M, "password");
	o->tls_ca = dc_config_str(cfg, M, "tls_ca");
	o->tls_cert = dc_config_str(cfg, M, "tls_cert");
	o->tls_key = dc_config_str(cfg, M, "tls_key");
	if ((o->tls_cert || o->tls_key) && !o->tls_ca) {
		dc_diag_add(diag, "%s: tls_cert and tls_key need tls_ca",
			    dc_config_where(cfg, M, o->tls_cert ? "tls_cert" : "tls_key"));
		bad = 1;
	}
	if (!o->tls_cert != !o->tls_key) {
		dc_diag_add(diag, "%s: tls_cert and tls_key go together",
			    dc_config_where(cfg, M, o->tls_cert ? "tls_cert" : "tls_key"));
		bad = 1;
	}
	if (o->password && !o->username) {
		dc_diag_add(diag, "%s: password needs username",
			    dc_config_where(cfg, M, "password"));
		bad = 1;
	}
	o->keepalive_s = (int)dc_config_int(cfg, M, "keepalive_s");
	o->clean_session = dc_config_bool(cfg, M, "clean_session");
	o->protocol = strcmp(dc_config_str(cfg, M, "protocol"), "5") == 0 ? 5 : 4;
	o->backoff_initial_ms = (uint64_t)dc_config_int(cfg, M, "reconnect_backoff_ms");
	o->backoff_max_ms = (uint64_t)dc_config_int(cfg, M, "reconnect_backoff_max_ms");
	if (o->backoff_max_ms < o->backoff_initial_ms)
		o->backoff_max_ms = o->backoff_initial_ms;
	return bad ? -1 : 0;
}
