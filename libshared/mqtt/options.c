/* The shared [mqtt] connection keys of source-mqtt and sink-mqtt. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "mqtt/options.h"

static const char *const protocols[] = {"3.1.1", "5", NULL};

#define M "mqtt"
/* clang-format off */
const struct dc_cfg_key dc_mqtt_conn_keys[] = {
	{.section = M, .key = "host", .type = DC_CFG_STRING, .def = "127.0.0.1"},
	{.section = M, .key = "port", .type = DC_CFG_INT, .def = "1883", .min = 1, .max = 65535},
	{.section = M, .key = "client_id", .type = DC_CFG_STRING},
	{.section = M, .key = "username", .type = DC_CFG_STRING},
	{.section = M, .key = "password", .type = DC_CFG_STRING, .flags = DC_CFG_SECRET},
	{.section = M, .key = "tls_ca", .type = DC_CFG_STRING},
	{.section = M, .key = "tls_cert", .type = DC_CFG_STRING},
	{.section = M, .key = "tls_key", .type = DC_CFG_STRING},
	{.section = M, .key = "keepalive_s", .type = DC_CFG_INT, .def = "60", .min = 5, .max = 65535},
	{.section = M, .key = "clean_session", .type = DC_CFG_BOOL, .def = "false"},
	{.section = M, .key = "protocol", .type = DC_CFG_ENUM, .def = "3.1.1", .choices = protocols},
	{.section = M, .key = "reconnect_backoff_ms", .type = DC_CFG_DURATION, .def = "500", .min = 1, .max = 3600000},
	{.section = M, .key = "reconnect_backoff_max_ms", .type = DC_CFG_DURATION, .def = "30000", .min = 1, .max = 3600000},
};
/* clang-format on */
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
	return bad ? -EINVAL : 0;
}

int dc_mqtt_new_for(const struct dc_config *cfg, struct ev_loop *loop,
		    const struct dc_mqtt_opts *opts, const struct dc_mqtt_cbs *cbs, void *arg,
		    struct dc_mqtt **out, struct dc_diag *diag)
{
	const char *where = dc_config_section_where(cfg, M);
	char err[256];
	int rc = dc_mqtt_new(loop, opts, cbs, arg, out, err, sizeof(err));

	if (rc != 0)
		dc_diag_add(diag, "%s: %s", where ? where : "[" M "]", err);
	return rc;
}
