/*
 * The worker's main() shared by every connector: options, configuration
 * layers, logging, the libev loop, signals, the IPC server and health.
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "config_keys.h"
#include "exit_codes.h"
#include "log.h"
#include "runtime/internal.h"

struct ev_loop *dc_rt_loop(struct dc_rt *rt)
{
	return rt->loop;
}

const char *dc_rt_name(const struct dc_rt *rt)
{
	return rt->name;
}

const struct dc_config *dc_rt_config(const struct dc_rt *rt)
{
	return rt->cfg;
}

void rt_health_update(struct dc_rt *rt)
{
	bool danube_ok = rt->danube_up && !rt->danube_lost;
	const char *ext =
		rt->external_reason ? rt->external_reason : "connecting to the external system";
	const char *dn = rt->danube_reason ? rt->danube_reason : "broker unreachable";
	char reason[1024];

	if (rt->stopping) {
		dc_health_set_state(DC_HEALTH_STOPPING, "stopping on request");
		return;
	}
	if (danube_ok && rt->external_up) {
		rt->ever_ready = true;
		dc_health_set_state(DC_HEALTH_READY, NULL);
		return;
	}
	/* Nothing to fix on our side but waiting: degraded, not starting, and why. */
	if (!rt->danube_up && !rt->danube_lost && rt->danube_waiting) {
		snprintf(reason, sizeof(reason), "%s%s%s", rt->danube_waiting,
			 rt->external_up ? "" : "; ", rt->external_up ? "" : ext);
		dc_health_set_state(DC_HEALTH_DEGRADED, reason);
		return;
	}
	/* Both sides when both are down: the operator fixes both. */
	if (danube_ok)
		snprintf(reason, sizeof(reason), "%s", ext);
	else if (!rt->danube_up && !rt->danube_lost)
		snprintf(reason, sizeof(reason), "connecting to Danube%s%s",
			 rt->external_up ? "" : "; ", rt->external_up ? "" : ext);
	else
		snprintf(reason, sizeof(reason), "%s: %s%s%s",
			 rt->danube_up ? "danube" : "connecting to Danube", dn,
			 rt->external_up ? "" : "; ", rt->external_up ? "" : ext);
	dc_health_set_state(rt->ever_ready ? DC_HEALTH_DEGRADED : DC_HEALTH_STARTING, reason);
}

void rt_danube_up(struct dc_rt *rt)
{
	if (!rt->danube_up)
		dc_log_info("connected to Danube");
	rt->danube_up = true;
	free(rt->danube_waiting);
	rt->danube_waiting = NULL;
	rt_health_update(rt);
}

void rt_danube_waiting(struct dc_rt *rt, const char *reason)
{
	char *copy = strdup(reason);

	dc_log_warn("%s; waiting for it (a producer creates it)", reason);
	/* Without memory the previous reason, or "connecting", still tells. */
	if (copy) {
		free(rt->danube_waiting);
		rt->danube_waiting = copy;
	}
	rt_health_update(rt);
}

/* The Danube client's connection state (dn_client_set_state_cb). */
static void on_danube_state(void *arg, bool up, const char *reason)
{
	struct dc_rt *rt = arg;
	char *copy;

	if (up) {
		if (rt->danube_lost)
			dc_log_info("Danube reachable again");
		rt->danube_lost = false;
		free(rt->danube_reason);
		rt->danube_reason = NULL;
	} else {
		/* Each failed attempt brings news; say it once, then at debug. */
		if (rt->danube_lost)
			dc_log_debug("Danube still unreachable: %s", reason);
		else if (rt->danube_up)
			dc_log_warn("Danube unreachable: %s", reason);
		else
			dc_log_info("Danube unreachable: %s", reason);
		/* Without memory the previous or generic reason still says what is wrong. */
		copy = strdup(reason);
		if (copy) {
			free(rt->danube_reason);
			rt->danube_reason = copy;
		}
		rt->danube_lost = true;
	}
	rt_health_update(rt);
}

void dc_rt_external_up(struct dc_rt *rt)
{
	free(rt->external_reason);
	rt->external_reason = NULL;
	rt->external_up = true;
	rt_health_update(rt);
	if (rt->kops)
		rt_sink_external_up(rt);
}

void dc_rt_external_down(struct dc_rt *rt, const char *fmt, ...)
{
	va_list ap;
	char *copy;

	va_start(ap, fmt);
	if (vasprintf(&copy, fmt, ap) < 0)
		copy = NULL;
	va_end(ap);
	/* Without memory the generic reason still says what is wrong. */
	free(rt->external_reason);
	rt->external_reason = copy;
	rt->external_up = false;
	rt_health_update(rt);
}

void dc_rt_report_error(struct dc_rt *rt, const char *topic, const char *error_type,
			const char *fmt, ...)
{
	char text[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	dc_log_error("%s%s%s", topic ? topic : "", topic ? ": " : "", text);
	dc_health_set_error(text);
	if (topic && error_type) {
		struct dc_metrics_topic *t = dc_metrics_topic(topic);

		if (t && dc_metrics_count_failed(t, error_type, 1) != 0)
			dc_log_warn("out of memory counting an error");
	}
}

void rt_fail(struct dc_rt *rt, int code)
{
	if (rt->exit_code < 0)
		rt->exit_code = code;
	ev_break(rt->loop, EVBREAK_ALL);
}

void rt_dependency_failed(struct dc_rt *rt, int code, const char *error)
{
	bool refused = code == DN_UNAUTHENTICATED || code == DN_PERMISSION_DENIED;

	dc_log_error("Danube refused us for good: %s", error);
	dc_health_set_error(error);
	rt_fail(rt, refused ? DC_EXIT_UNAVAILABLE : DC_EXIT_FAILURE);
}

void rt_drained(struct dc_rt *rt)
{
	dc_log_info("drained, exiting");
	rt_fail(rt, DC_EXIT_OK);
}

static void on_stop_timeout(struct ev_loop *loop, ev_timer *w, int revents)
{
	struct dc_rt *rt = w->data;

	/* Whatever is still unacknowledged is redelivered (sinks) or resent (sources). */
	dc_log_error("stop timeout: the drain was cut short with %zu records unacknowledged",
		     rt->sops ? rt_source_unfinished(rt) : rt_sink_unfinished(rt));
	rt_fail(rt, DC_EXIT_TEMPFAIL);
}

static void on_signal(struct ev_loop *loop, ev_signal *w, int revents)
{
	struct dc_rt *rt = w->data;

	if (rt->stopping)
		return;
	dc_log_info("signal %d: stopping", w->signum);
	rt->stopping = true;
	rt_health_update(rt);
	ev_timer_init(&rt->stop_timer, on_stop_timeout, (double)rt->stop_timeout_ms / 1000.0, 0.);
	rt->stop_timer.data = rt;
	ev_timer_start(loop, &rt->stop_timer);
	if (rt->sops)
		rt_source_stop(rt);
	else
		rt_sink_stop(rt);
}

static void usage(FILE *f, const char *type, bool source)
{
	fprintf(f,
		"Usage: %s [-c FILE] [--check] [-h] [-V]\n"
		"A danube-connect %s worker.\n"
		"  -c, --config FILE  the connector's configuration file\n"
		"      --check        load the configuration, report every problem, exit\n"
		"  -h, --help         this help\n"
		"  -V, --version      print the version\n",
		type, source ? "source" : "sink");
}

static char *connector_name(const struct dc_config *cfg, const char *file)
{
	const char *env = getenv("DANUBE_CONNECT_NAME");
	const char *base;
	char *name, *dot;

	if (env && *env)
		return strdup(env);
	if (dc_config_str(cfg, "connector", "name"))
		return strdup(dc_config_str(cfg, "connector", "name"));
	if (!file)
		return strdup("connector");
	base = strrchr(file, '/');
	name = strdup(base ? base + 1 : file);
	if (name && (dot = strrchr(name, '.')) && dot != name)
		*dot = '\0';
	return name;
}

static int parse_on_error(struct dc_rt *rt, struct dc_diag *diag)
{
	const char *s = dc_config_str(rt->cfg, "runtime", "on_error");
	const char *spool;

	rt->dlq_topic = dc_config_str(rt->cfg, "runtime", "dlq_topic");
	if (s && strcmp(s, "skip") == 0)
		rt->on_error = RT_ON_ERROR_SKIP;
	else if (s && strcmp(s, "dlq") == 0)
		rt->on_error = RT_ON_ERROR_DLQ;
	else
		rt->on_error = RT_ON_ERROR_FAIL;
	if (rt->on_error == RT_ON_ERROR_DLQ && (!rt->dlq_topic || !*rt->dlq_topic)) {
		dc_diag_add(diag, "%s: on_error = dlq needs [runtime] dlq_topic",
			    dc_config_where(rt->cfg, "runtime", "on_error"));
		return -1;
	}
	spool = dc_config_str(rt->cfg, "runtime", "spool_dir");
	if (spool && *spool && *spool != '/') {
		dc_diag_add(diag, "%s: spool_dir must be an absolute path",
			    dc_config_where(rt->cfg, "runtime", "spool_dir"));
		return -1;
	}
	rt->max_retries = dc_config_int(rt->cfg, "runtime", "max_retries");
	rt->retry_backoff_ms = dc_config_int(rt->cfg, "runtime", "retry_backoff_ms");
	rt->retry_backoff_max_ms = dc_config_int(rt->cfg, "runtime", "retry_backoff_max_ms");
	if (rt->retry_backoff_max_ms < rt->retry_backoff_ms)
		rt->retry_backoff_max_ms = rt->retry_backoff_ms;
	rt->batch_size = dc_config_int(rt->cfg, "runtime", "batch_size");
	rt->batch_timeout_ms = dc_config_int(rt->cfg, "runtime", "batch_timeout_ms");
	rt->batch_linger_ms = dc_config_int(rt->cfg, "runtime", "batch_linger_ms");
	rt->max_unacked = dc_config_int(rt->cfg, "danube", "max_unacked");
	rt->queue_size = dc_config_int(rt->cfg, "runtime", "queue_size");
	rt->stop_timeout_ms = dc_config_int(rt->cfg, "runtime", "stop_timeout_ms");
	return 0;
}

/* An empty table where a connector lists fewer than DC_RT_MAX_KEY_TABLES. */
#define OWN(i) own[i] ? own[i]->keys : dc_cfg_keys_runtime, own[i] ? own[i]->n : (size_t)0

static int load_config(struct dc_rt *rt, const char *file,
		       const struct dc_cfg_table *const own[DC_RT_MAX_KEY_TABLES],
		       struct dc_diag *diag)
{
	struct dc_config_src src = {0};
	struct dc_cfg_key *keys;
	size_t n;
	const char *g = getenv("DANUBE_CONNECT_GLOBAL_CONFIG");
	int rc;

	_Static_assert(DC_RT_MAX_KEY_TABLES == 4, "OWN(0) .. OWN(3) below");
	if (dc_cfg_keys_concat(&keys, &n, DC_CFG_KEYS_CONNECTOR, DC_CFG_KEYS_DANUBE,
			       DC_CFG_KEYS_RUNTIME, OWN(0), OWN(1), OWN(2), OWN(3), NULL) != 0) {
		dc_diag_add(diag, "out of memory");
		return -1;
	}
	src.global_file = g && *g ? g : NULL;
	src.file = file;
	src.short_env = getenv("DANUBE_CONNECT_SUPERVISED") == NULL;
	rc = dc_config_load(&rt->cfg, keys, n, &src, diag);
	free(keys);
	if (rc != 0)
		return -1;
	return parse_on_error(rt, diag);
}

static void setup_logging(struct dc_rt *rt)
{
	char ident[300];
	enum dc_log_level lvl;

	snprintf(ident, sizeof(ident), "danube-connect/%s", rt->name);
	/* The supervisor forwards stderr to syslog; a second copy would duplicate it. */
	dc_log_open(ident, LOG_DAEMON, false, true);
	if (dc_log_level_parse(dc_config_str(rt->cfg, "connector", "log_level"), &lvl) == 0)
		dc_log_set_level(lvl);
}

static int open_connector(struct dc_rt *rt, struct dc_diag *diag)
{
	void *state = calloc(1, rt->sops ? rt->sops->state_size : rt->kops->state_size);
	int rc;

	if (!state) {
		dc_diag_add(diag, "out of memory");
		return -1;
	}
	if (rt->sops)
		rc = rt->sops->open(rt, rt->cfg, state, diag);
	else
		rc = rt->kops->open(rt, rt->cfg, state, diag);
	if (rc != 0) {
		free(state);
		return -1;
	}
	rt->state = state;
	return 0;
}

static void close_connector(struct dc_rt *rt)
{
	if (!rt->state)
		return;
	if (rt->sops)
		rt->sops->close(rt->state);
	else
		rt->kops->close(rt->state);
	free(rt->state);
	rt->state = NULL;
}

static int make_client(struct dc_rt *rt)
{
	struct dn_client_opts o = {0};
	int rc;

	o.service_url = dc_config_str(rt->cfg, "danube", "service_url");
	o.token = dc_config_str(rt->cfg, "danube", "token");
	o.tls_ca = dc_config_str(rt->cfg, "danube", "tls_ca");
	rc = dn_client_new(rt->loop, &o, &rt->client);
	if (rc == 0)
		rc = dn_client_set_state_cb(rt->client, on_danube_state, rt);
	if (rc != 0) {
		dc_log_error("cannot create the Danube client: %s", strerror(-rc));
		return -1;
	}
	return 0;
}

/* Runs the loop; returns the exit code. */
static int run(struct dc_rt *rt)
{
	sigset_t set;
	int rc;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	/* nng's threads, started by dc_ipc_open, must never take these. */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = dc_ipc_open(&rt->ipc, rt->loop, NULL, dc_health_fill);
	if (rc != 0) {
		pthread_sigmask(SIG_UNBLOCK, &set, NULL);
		return DC_EXIT_FAILURE;
	}
	rt_health_update(rt);
	ev_signal_init(&rt->sigterm_w, on_signal, SIGTERM);
	rt->sigterm_w.data = rt;
	ev_signal_start(rt->loop, &rt->sigterm_w);
	ev_signal_init(&rt->sigint_w, on_signal, SIGINT);
	rt->sigint_w.data = rt;
	ev_signal_start(rt->loop, &rt->sigint_w);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);

	if (make_client(rt) != 0) {
		rt->exit_code = DC_EXIT_FAILURE;
	} else {
		rc = rt->sops ? rt_source_start(rt) : rt_sink_start(rt);
		if (rc == 0)
			rc = rt->sops ? rt->sops->start(rt->state) : rt->kops->start(rt->state);
		if (rc != 0)
			rt_fail(rt, DC_EXIT_FAILURE);
		else
			ev_run(rt->loop, 0);
	}
	ev_signal_stop(rt->loop, &rt->sigterm_w);
	ev_signal_stop(rt->loop, &rt->sigint_w);
	ev_timer_stop(rt->loop, &rt->stop_timer);
	/*
	 * The connector first: after close it holds no batch and submits
	 * nothing; the producers' DN_CANCELLED callbacks that follow only
	 * release the runtime's own records.
	 */
	close_connector(rt);
	if (rt->sops)
		rt_source_free(rt);
	else
		rt_sink_free(rt);
	rt_producers_close(rt);
	if (rt->client)
		dn_client_free(rt->client);
	dc_ipc_close(rt->ipc);
	dc_metrics_reset();
	return rt->exit_code < 0 ? DC_EXIT_FAILURE : rt->exit_code;
}

static int worker_main(int argc, char **argv, const struct dc_source_ops *sops,
		       const struct dc_sink_ops *kops)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	const char *type = sops ? sops->type : kops->type;
	const char *file = NULL;
	struct dc_rt rt = {0};
	struct dc_diag diag;
	bool check = false;
	int c, code;

	while ((c = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
		switch (c) {
		case 'c':
			file = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 'h':
			usage(stdout, type, sops != NULL);
			return DC_EXIT_OK;
		case 'V':
			printf("%s %s\n", type, DC_VERSION);
			return DC_EXIT_OK;
		default:
			usage(stderr, type, sops != NULL);
			return DC_EXIT_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "%s: unexpected argument '%s'\n", type, argv[optind]);
		usage(stderr, type, sops != NULL);
		return DC_EXIT_USAGE;
	}
	rt.sops = sops;
	rt.kops = kops;
	rt.exit_code = -1;
	dc_diag_init(&diag);
	if (load_config(&rt, file, sops ? sops->keys : kops->keys, &diag) != 0) {
		dc_diag_write(&diag, STDERR_FILENO);
		dc_diag_free(&diag);
		dc_config_free(rt.cfg);
		return DC_EXIT_CONFIG;
	}
	rt.name = connector_name(rt.cfg, file);
	if (!rt.name) {
		fprintf(stderr, "%s: out of memory\n", type);
		dc_diag_free(&diag);
		dc_config_free(rt.cfg);
		return DC_EXIT_FAILURE;
	}
	setup_logging(&rt);
	rt.loop = ev_default_loop(0);
	if (!rt.loop) {
		dc_log_error("cannot create the event loop");
		code = DC_EXIT_FAILURE;
	} else if (open_connector(&rt, &diag) != 0) {
		dc_diag_write(&diag, STDERR_FILENO);
		close_connector(&rt);
		code = DC_EXIT_CONFIG;
	} else if (check) {
		dc_diag_write(&diag, STDERR_FILENO);
		close_connector(&rt);
		code = diag.n ? DC_EXIT_CONFIG : DC_EXIT_OK;
		if (code == DC_EXIT_OK)
			printf("%s: configuration OK\n", file ? file : rt.name);
	} else {
		code = run(&rt);
	}
	dc_diag_free(&diag);
	free(rt.external_reason);
	free(rt.danube_waiting);
	free(rt.danube_reason);
	dc_config_free(rt.cfg);
	dc_log_info("exit %d", code);
	free(rt.name);
	dc_log_close();
	return code;
}

int dc_source_main(int argc, char **argv, const struct dc_source_ops *ops)
{
	return worker_main(argc, argv, ops, NULL);
}

int dc_sink_main(int argc, char **argv, const struct dc_sink_ops *ops)
{
	return worker_main(argc, argv, NULL, ops);
}
