/* Broker defaults for `produce` and `consume`, from the global configuration file. */
#include "danube_cli.h"
#include "exit_codes.h"

#include "config.h"
#include "danube/client.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEFAULT_GLOBAL_FILE DC_SYSCONFDIR "/danube-connect/danube-connect.ini"

static const char *const url_schemes[] = {"http", "https", NULL};

static const struct dc_cfg_key keys[] = {
	{.section = "danube",
	 .key = "service_url",
	 .type = DC_CFG_URL,
	 .def = "http://127.0.0.1:6650",
	 .choices = url_schemes},
	{.section = "danube", .key = "token", .type = DC_CFG_STRING, .flags = DC_CFG_SECRET},
	{.section = "danube", .key = "tls_ca", .type = DC_CFG_STRING},
	/* Connector defaults that may sit in the global [danube]: known, unused here. */
	{.section = "danube", .key = "topic", .type = DC_CFG_STRING},
	{.section = "danube", .key = "dispatch", .type = DC_CFG_STRING},
	{.section = "danube", .key = "subscription", .type = DC_CFG_STRING},
	{.section = "danube", .key = "subscription_type", .type = DC_CFG_STRING},
};

static struct dc_config *cfg;

static const char *nonempty(const char *s)
{
	return s != NULL && s[0] != '\0' ? s : NULL;
}

int ctl_danube_defaults(struct dn_client_opts *o, const char *conf_path)
{
	struct dc_config_src src = {0};
	struct dc_diag diag;

	if (conf_path == NULL && access(DEFAULT_GLOBAL_FILE, F_OK) == 0)
		conf_path = DEFAULT_GLOBAL_FILE;
	if (conf_path != NULL && access(conf_path, R_OK) != 0) {
		fprintf(stderr, "danube-connectctl: cannot read %s: %m\n", conf_path);
		return DC_EXIT_FAILURE;
	}
	src.global_file = conf_path;
	dc_diag_init(&diag);
	if (dc_config_load(&cfg, keys, sizeof(keys) / sizeof(keys[0]), &src, &diag) != 0) {
		for (size_t i = 0; i < diag.n; i++)
			fprintf(stderr, "%s\n", diag.lines[i]);
		if (diag.n == 0)
			fprintf(stderr, "danube-connectctl: cannot load the configuration\n");
		dc_diag_free(&diag);
		return DC_EXIT_FAILURE;
	}
	dc_diag_free(&diag);
	if (o->service_url == NULL)
		o->service_url = dc_config_str(cfg, "danube", "service_url");
	if (o->service_url == NULL)
		o->service_url = "http://127.0.0.1:6650";
	if (o->token == NULL)
		o->token = nonempty(dc_config_str(cfg, "danube", "token"));
	if (o->tls_ca == NULL)
		o->tls_ca = nonempty(dc_config_str(cfg, "danube", "tls_ca"));
	return 0;
}

void ctl_danube_defaults_free(void)
{
	dc_config_free(cfg);
	cfg = NULL;
}

int ctl_danube_exit_code(int code)
{
	return code == DN_UNAVAILABLE || code == DN_DEADLINE_EXCEEDED ? DC_EXIT_UNAVAILABLE
								      : DC_EXIT_FAILURE;
}
