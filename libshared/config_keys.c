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
const struct dc_cfg_key dc_cfg_keys_supervisor[] = {
	{S, "connectors_dir", DC_CFG_STRING, DC_SYSCONFDIR "/danube-connect/connectors.d", 0, 0, 0,
	 NULL, NULL},
	{S, "run_dir", DC_CFG_STRING, "/run/danube-connect", 0, 0, 0, NULL, NULL},
	{S, "worker_dir", DC_CFG_STRING, DC_LIBEXECDIR "/danube-connect", 0, 0, 0, NULL, NULL},
	{S, "metrics_listen", DC_CFG_STRING, "127.0.0.1:9090", 0, 0, 0, NULL, NULL},
	{S, "log_level", DC_CFG_ENUM, "info", 0, 0, 0, dc_cfg_log_levels, NULL},
	{S, "syslog_facility", DC_CFG_ENUM, "daemon", 0, 0, 0, dc_cfg_syslog_facilities, NULL},
	{S, "restart_backoff_initial_ms", DC_CFG_DURATION, "200", 0, 1, MS_HOUR, NULL, NULL},
	{S, "restart_backoff_max_ms", DC_CFG_DURATION, "30000", 0, 1, MS_DAY, NULL, NULL},
	{S, "restart_intensity", DC_CFG_INT, "5", 0, 0, 100000, NULL, NULL},
	{S, "restart_period_s", DC_CFG_INT, "60", 0, 1, 86400, NULL, NULL},
	{S, "health_interval_ms", DC_CFG_DURATION, "1000", 0, 10, MS_HOUR, NULL, NULL},
	{S, "health_timeout_ms", DC_CFG_DURATION, "5000", 0, 10, MS_HOUR, NULL, NULL},
	{S, "stop_timeout_ms", DC_CFG_DURATION, "10000", 0, 10, MS_HOUR, NULL, NULL},
};
#undef S
const size_t dc_cfg_nkeys_supervisor = sizeof(dc_cfg_keys_supervisor) / sizeof(struct dc_cfg_key);

#define S "danube"
const struct dc_cfg_key dc_cfg_keys_danube[] = {
	{S, "service_url", DC_CFG_URL, "http://127.0.0.1:6650", 0, 0, 0, http_schemes,
	 "DANUBE_SERVICE_URL"},
	{S, "topic", DC_CFG_STRING, NULL, 0, 0, 0, NULL, "DANUBE_TOPIC"},
	{S, "dispatch", DC_CFG_ENUM, "reliable", 0, 0, 0, dispatch_choices, "DISPATCH_STRATEGY"},
	{S, "subscription", DC_CFG_STRING, NULL, 0, 0, 0, NULL, "SUBSCRIPTION_NAME"},
	{S, "subscription_type", DC_CFG_ENUM, "shared", 0, 0, 0, subscription_types,
	 "SUBSCRIPTION_TYPE"},
	{S, "token", DC_CFG_STRING, NULL, DC_CFG_SECRET, 0, 0, NULL, NULL},
	{S, "tls_ca", DC_CFG_STRING, NULL, 0, 0, 0, NULL, NULL},
	{S, "producer_name", DC_CFG_STRING, NULL, 0, 0, 0, NULL, NULL},
	{S, "partitions", DC_CFG_INT, "0", 0, 0, 10000, NULL, NULL},
	/* sinks: the broker's window of unacknowledged messages per subscription */
	{S, "max_unacked", DC_CFG_INT, "10", 0, 1, 10000, NULL, NULL},
};
#undef S
const size_t dc_cfg_nkeys_danube = sizeof(dc_cfg_keys_danube) / sizeof(struct dc_cfg_key);

#define S "connector"
const struct dc_cfg_key dc_cfg_keys_connector[] = {
	{S, "type", DC_CFG_STRING, NULL, DC_CFG_REQUIRED, 0, 0, NULL, NULL},
	{S, "enabled", DC_CFG_BOOL, "true", 0, 0, 0, NULL, NULL},
	{S, "name", DC_CFG_STRING, NULL, 0, 0, 0, NULL, "CONNECTOR_NAME"},
	{S, "log_level", DC_CFG_ENUM, "info", 0, 0, 0, dc_cfg_log_levels, "LOG_LEVEL"},
};
#undef S
const size_t dc_cfg_nkeys_connector = sizeof(dc_cfg_keys_connector) / sizeof(struct dc_cfg_key);

#define S "runtime"
const struct dc_cfg_key dc_cfg_keys_runtime[] = {
	{S, "batch_size", DC_CFG_INT, "1000", 0, 1, 100000, NULL, "BATCH_SIZE"},
	{S, "batch_timeout_ms", DC_CFG_DURATION, "1000", 0, 1, MS_HOUR, NULL, "BATCH_TIMEOUT_MS"},
	{S, "batch_linger_ms", DC_CFG_DURATION, "5", 0, 0, MS_HOUR, NULL, NULL},
	{S, "max_retries", DC_CFG_INT, "3", 0, 0, 1000000, NULL, "MAX_RETRIES"},
	{S, "retry_backoff_ms", DC_CFG_DURATION, "1000", 0, 1, MS_HOUR, NULL, "RETRY_BACKOFF_MS"},
	{S, "retry_backoff_max_ms", DC_CFG_DURATION, "30000", 0, 1, MS_DAY, NULL, NULL},
	{S, "on_error", DC_CFG_ENUM, "fail", 0, 0, 0, on_error_choices, NULL},
	{S, "dlq_topic", DC_CFG_STRING, NULL, 0, 0, 0, NULL, NULL},
	{S, "poll_interval_ms", DC_CFG_DURATION, "100", 0, 1, MS_HOUR, NULL, "POLL_INTERVAL_MS"},
	{S, "queue_size", DC_CFG_INT, "10000", 0, 1, 10000000, NULL, NULL},
	{S, "stop_timeout_ms", DC_CFG_DURATION, "10000", 0, 10, MS_HOUR, NULL, NULL},
	{S, "spool_dir", DC_CFG_STRING, NULL, 0, 0, 0, NULL, NULL},
	{S, "spool_fsync", DC_CFG_BOOL, NULL, 0, 0, 0, NULL, NULL}, /* unset: false */
};
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
