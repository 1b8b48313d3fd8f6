/*
 * The shared key tables: the defaults and ranges of the global file's
 * [supervisor] and of the sections every connector file has.
 */
#include "config_keys.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define MS_HOUR 3600000
#define MS_DAY  86400000

const char *const dc_cfg_log_levels[] = {"error", "warn", "info", "debug", NULL};
const char *const dc_cfg_syslog_facilities[] = {
	"daemon", "user",   "local0", "local1", "local2", "local3",
	"local4", "local5", "local6", "local7", NULL,
};
static const char *const http_schemes[] = {"http", "https", NULL};
static const char *const dispatch_choices[] = {"reliable", "non_reliable", NULL};
static const char *const subscription_types[] = {"exclusive", "shared", "failover", "key_shared",
						 NULL};
static const char *const on_error_choices[] = {"fail", "skip", "dlq", NULL};

#define S "supervisor"
/* clang-format off */
const struct dc_cfg_key dc_cfg_keys_supervisor[] = {
	{.section = S, .key = "connectors_dir", .type = DC_CFG_STRING, .def = DC_SYSCONFDIR "/danube-connect/connectors.d"},
	{.section = S, .key = "run_dir", .type = DC_CFG_STRING, .def = "/run/danube-connect"},
	{.section = S, .key = "worker_dir", .type = DC_CFG_STRING, .def = DC_LIBEXECDIR "/danube-connect"},
	{.section = S, .key = "metrics_listen", .type = DC_CFG_STRING, .def = "127.0.0.1:9090"},
	{.section = S, .key = "log_level", .type = DC_CFG_ENUM, .def = "info", .choices = dc_cfg_log_levels},
	{.section = S, .key = "syslog_facility", .type = DC_CFG_ENUM, .def = "daemon", .choices = dc_cfg_syslog_facilities},
	{.section = S, .key = "restart_backoff_initial_ms", .type = DC_CFG_DURATION, .def = "200", .min = 1, .max = MS_HOUR},
	{.section = S, .key = "restart_backoff_max_ms", .type = DC_CFG_DURATION, .def = "30000", .min = 1, .max = MS_DAY},
	{.section = S, .key = "restart_intensity", .type = DC_CFG_INT, .def = "5", .max = 100000},
	{.section = S, .key = "restart_period_s", .type = DC_CFG_INT, .def = "60", .min = 1, .max = 86400},
	{.section = S, .key = "health_interval_ms", .type = DC_CFG_DURATION, .def = "1000", .min = 10, .max = MS_HOUR},
	{.section = S, .key = "health_timeout_ms", .type = DC_CFG_DURATION, .def = "5000", .min = 10, .max = MS_HOUR},
	{.section = S, .key = "stop_timeout_ms", .type = DC_CFG_DURATION, .def = "10000", .min = 10, .max = MS_HOUR},
};
/* clang-format on */
#undef S
const size_t dc_cfg_nkeys_supervisor = sizeof(dc_cfg_keys_supervisor) / sizeof(struct dc_cfg_key);

#define S "danube"
/* clang-format off */
const struct dc_cfg_key dc_cfg_keys_danube[] = {
	{.section = S, .key = "service_url", .type = DC_CFG_URL, .def = "http://127.0.0.1:6650", .choices = http_schemes, .short_env = "DANUBE_SERVICE_URL"},
	{.section = S, .key = "topic", .type = DC_CFG_STRING, .short_env = "DANUBE_TOPIC"},
	{.section = S, .key = "dispatch", .type = DC_CFG_ENUM, .def = "reliable", .choices = dispatch_choices, .short_env = "DISPATCH_STRATEGY"},
	{.section = S, .key = "subscription", .type = DC_CFG_STRING, .short_env = "SUBSCRIPTION_NAME"},
	{.section = S, .key = "subscription_type", .type = DC_CFG_ENUM, .def = "shared", .choices = subscription_types, .short_env = "SUBSCRIPTION_TYPE"},
	{.section = S, .key = "token", .type = DC_CFG_STRING, .flags = DC_CFG_SECRET},
	{.section = S, .key = "tls_ca", .type = DC_CFG_STRING},
	{.section = S, .key = "producer_name", .type = DC_CFG_STRING},
	{.section = S, .key = "partitions", .type = DC_CFG_INT, .def = "0", .max = 10000},
	/* sinks: the broker's window of unacknowledged messages per subscription */
	{.section = S, .key = "max_unacked", .type = DC_CFG_INT, .def = "10", .min = 1, .max = 10000},
};
/* clang-format on */
#undef S
const size_t dc_cfg_nkeys_danube = sizeof(dc_cfg_keys_danube) / sizeof(struct dc_cfg_key);

#define S "connector"
/* clang-format off */
const struct dc_cfg_key dc_cfg_keys_connector[] = {
	{.section = S, .key = "type", .type = DC_CFG_STRING, .flags = DC_CFG_REQUIRED},
	{.section = S, .key = "enabled", .type = DC_CFG_BOOL, .def = "true"},
	{.section = S, .key = "name", .type = DC_CFG_STRING, .short_env = "CONNECTOR_NAME"},
	{.section = S, .key = "log_level", .type = DC_CFG_ENUM, .def = "info", .choices = dc_cfg_log_levels, .short_env = "LOG_LEVEL"},
};
/* clang-format on */
#undef S
const size_t dc_cfg_nkeys_connector = sizeof(dc_cfg_keys_connector) / sizeof(struct dc_cfg_key);

#define S "runtime"
/* clang-format off */
const struct dc_cfg_key dc_cfg_keys_runtime[] = {
	{.section = S, .key = "batch_size", .type = DC_CFG_INT, .def = "1000", .min = 1, .max = 100000, .short_env = "BATCH_SIZE"},
	{.section = S, .key = "batch_timeout_ms", .type = DC_CFG_DURATION, .def = "1000", .min = 1, .max = MS_HOUR, .short_env = "BATCH_TIMEOUT_MS"},
	{.section = S, .key = "batch_linger_ms", .type = DC_CFG_DURATION, .def = "5", .max = MS_HOUR},
	{.section = S, .key = "max_retries", .type = DC_CFG_INT, .def = "3", .max = 1000000, .short_env = "MAX_RETRIES"},
	{.section = S, .key = "retry_backoff_ms", .type = DC_CFG_DURATION, .def = "1000", .min = 1, .max = MS_HOUR, .short_env = "RETRY_BACKOFF_MS"},
	{.section = S, .key = "retry_backoff_max_ms", .type = DC_CFG_DURATION, .def = "30000", .min = 1, .max = MS_DAY},
	{.section = S, .key = "on_error", .type = DC_CFG_ENUM, .def = "fail", .choices = on_error_choices},
	{.section = S, .key = "dlq_topic", .type = DC_CFG_STRING},
	{.section = S, .key = "poll_interval_ms", .type = DC_CFG_DURATION, .def = "100", .min = 1, .max = MS_HOUR, .short_env = "POLL_INTERVAL_MS"},
	{.section = S, .key = "queue_size", .type = DC_CFG_INT, .def = "10000", .min = 1, .max = 10000000},
	{.section = S, .key = "stop_timeout_ms", .type = DC_CFG_DURATION, .def = "10000", .min = 10, .max = MS_HOUR},
	{.section = S, .key = "spool_dir", .type = DC_CFG_STRING},
	{.section = S, .key = "spool_fsync", .type = DC_CFG_BOOL}, /* unset: false */
};
/* clang-format on */
#undef S
const size_t dc_cfg_nkeys_runtime = sizeof(dc_cfg_keys_runtime) / sizeof(struct dc_cfg_key);

int dc_cfg_keys_concat(struct dc_cfg_key **out, size_t *n, ...)
{
	const struct dc_cfg_key *t;
	struct dc_cfg_key *all;
	size_t total = 0, at = 0;
	va_list ap;

	va_start(ap, n);
	while ((t = va_arg(ap, const struct dc_cfg_key *)) != NULL)
		total += va_arg(ap, size_t);
	va_end(ap);
	all = malloc((total ? total : 1) * sizeof(*all));
	if (all == NULL) {
		errno = ENOMEM;
		return -1;
	}
	va_start(ap, n);
	while ((t = va_arg(ap, const struct dc_cfg_key *)) != NULL) {
		size_t k = va_arg(ap, size_t);

		memcpy(all + at, t, k * sizeof(*t));
		at += k;
	}
	va_end(ap);
	*out = all;
	*n = total;
	return 0;
}
