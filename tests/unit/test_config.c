/* The configuration loader: layers, environment names, ${NAME}, routes, every message. */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "config_keys.h"

static const char *const qos_choices[] = {"0", "1", "2", NULL};

/* A connector's own keys, as a worker would declare them. */
/* clang-format off */
static const struct dc_cfg_key own_keys[] = {
	{.section = "mqtt", .key = "host", .type = DC_CFG_STRING, .def = "localhost"},
	{.section = "mqtt", .key = "port", .type = DC_CFG_INT, .def = "1883", .min = 1, .max = 65535},
	{.section = "mqtt", .key = "password", .type = DC_CFG_STRING, .flags = DC_CFG_SECRET},
	{.section = "mqtt", .key = "pin", .type = DC_CFG_INT, .flags = DC_CFG_SECRET, .min = 1, .max = 9999},
	{.section = "mqtt", .key = "keepalive_s", .type = DC_CFG_INT, .def = "60", .min = 1, .max = 3600},
	{.section = "mqtt", .key = "clean_session", .type = DC_CFG_BOOL, .def = "true"},
	{.section = "route", .key = "mqtt_topic", .type = DC_CFG_STRING, .flags = DC_CFG_REQUIRED},
	{.section = "route", .key = "qos", .type = DC_CFG_ENUM, .def = "1", .choices = qos_choices},
	{.section = "route", .key = "max_qos", .type = DC_CFG_INT},
	{.section = "route", .key = "danube_topic", .type = DC_CFG_STRING, .flags = DC_CFG_REQUIRED},
};
/* clang-format on */

static struct dc_cfg_key *keys;
static size_t nkeys;
static const char *dir;
static char *const no_env[] = {NULL};

static void setup(void)
{
	ck_assert_int_eq(dc_cfg_keys_concat(&keys, &nkeys, DC_CFG_KEYS_DANUBE,
					    DC_CFG_KEYS_CONNECTOR, DC_CFG_KEYS_RUNTIME, own_keys,
					    sizeof(own_keys) / sizeof(own_keys[0]), NULL),
			 0);
	dir = th_tmpdir();
}

static void teardown(void)
{
	free(keys);
}

/* printf into one of a pool of buffers, enough for one test's expectations. */
__attribute__((format(printf, 1, 2))) static const char *fmt(const char *f, ...)
{
	static char pool[64][1024];
	static unsigned next;
	char *b = pool[next++ % 64];
	va_list ap;

	va_start(ap, f);
	vsnprintf(b, sizeof(pool[0]), f, ap);
	va_end(ap);
	return b;
}

static const char *ini(const char *name, const char *text)
{
	const char *path = fmt("%s/%s", dir, name);

	ck_assert_int_eq(th_write_file(path, "%s", text), 0);
	return path;
}

static struct dc_config *load_with(const struct dc_cfg_key *k, size_t n, const char *global,
				   const char *file, char *const *env, bool short_env,
				   struct dc_diag *d)
{
	struct dc_config_src src = {
		.global_file = global, .file = file, .envp = env, .short_env = short_env};
	struct dc_config *cfg = (struct dc_config *)&src; /* must be reset on failure */
	int rc = dc_config_load(&cfg, k, n, &src, d);

	ck_assert_int_eq(rc == 0, cfg != NULL);
	ck_assert_int_eq(rc == 0, d->n == 0);
	return cfg;
}

static struct dc_config *load(const char *global, const char *file, char *const *env,
			      bool short_env, struct dc_diag *d)
{
	return load_with(keys, nkeys, global, file, env, short_env, d);
}

static struct dc_config *load_ok(const char *global, const char *file, char *const *env,
				 bool short_env)
{
	struct dc_diag d;
	struct dc_config *cfg;

	dc_diag_init(&d);
	cfg = load(global, file, env, short_env, &d);
	ck_assert_msg(cfg != NULL, "load failed: %s", d.n ? d.lines[0] : "(no message)");
	dc_diag_free(&d);
	return cfg;
}

/* The collected problems are exactly these lines, in this order. */
static void expect_lines(const struct dc_diag *d, const char *const *want, size_t n)
{
	for (size_t i = 0; i < d->n || i < n; i++) {
		const char *got = i < d->n ? d->lines[i] : "(nothing)";
		const char *exp = i < n ? want[i] : "(nothing)";

		ck_assert_msg(strcmp(got, exp) == 0, "problem %zu:\n  got  %s\n  want %s", i, got,
			      exp);
	}
}
#define EXPECT_LINES(d, ...)                                                \
	do {                                                                \
		const char *const want_[] = {__VA_ARGS__};                  \
		expect_lines((d), want_, sizeof(want_) / sizeof(want_[0])); \
	} while (0)

/* Loading must fail with exactly these problems. */
#define EXPECT_FAIL(global, file, env, ...)                                    \
	do {                                                                   \
		struct dc_diag d_;                                             \
		dc_diag_init(&d_);                                             \
		ck_assert_ptr_null(load((global), (file), (env), false, &d_)); \
		EXPECT_LINES(&d_, __VA_ARGS__);                                \
		dc_diag_free(&d_);                                             \
	} while (0)

static char *const type_env[] = {"DANUBE_CONNECT_CONNECTOR_TYPE=source-mqtt", NULL};

START_TEST(defaults_apply_when_nothing_is_set)
{
	struct dc_config *cfg = load_ok(NULL, NULL, type_env, false);

	ck_assert_str_eq(dc_config_str(cfg, "danube", "service_url"), "http://127.0.0.1:6650");
	ck_assert_str_eq(dc_config_str(cfg, "danube", "dispatch"), "reliable");
	ck_assert_str_eq(dc_config_str(cfg, "danube", "subscription_type"), "shared");
	ck_assert_int_eq(dc_config_int(cfg, "danube", "partitions"), 0);
	ck_assert_ptr_null(dc_config_str(cfg, "danube", "topic"));
	ck_assert(!dc_config_isset(cfg, "danube", "topic"));
	ck_assert(dc_config_isset(cfg, "danube", "service_url"));
	ck_assert(dc_config_bool(cfg, "connector", "enabled"));
	ck_assert_str_eq(dc_config_str(cfg, "connector", "log_level"), "info");
	ck_assert_int_eq(dc_config_int(cfg, "runtime", "batch_size"), 1000);
	ck_assert_int_eq(dc_config_int(cfg, "runtime", "batch_timeout_ms"), 1000);
	ck_assert_int_eq(dc_config_int(cfg, "runtime", "max_retries"), 3);
	ck_assert_int_eq(dc_config_int(cfg, "runtime", "retry_backoff_ms"), 1000);
	ck_assert_int_eq(dc_config_int(cfg, "runtime", "retry_backoff_max_ms"), 30000);
	ck_assert_str_eq(dc_config_str(cfg, "runtime", "on_error"), "fail");
	ck_assert_int_eq(dc_config_int(cfg, "runtime", "poll_interval_ms"), 100);
	ck_assert_int_eq(dc_config_int(cfg, "runtime", "queue_size"), 10000);
	ck_assert_int_eq(dc_config_int(cfg, "runtime", "stop_timeout_ms"), 10000);
	ck_assert_int_eq(dc_config_int(cfg, "mqtt", "port"), 1883);
	ck_assert_int_eq(dc_config_int(cfg, "mqtt", "pin"), 0);
	ck_assert_str_eq(dc_config_where(cfg, "runtime", "batch_size"), "default");
	ck_assert_str_eq(dc_config_where(cfg, "danube", "topic"), "unset");
	ck_assert_ptr_null(dc_config_file(cfg));
	dc_config_free(cfg);
}
END_TEST

START_TEST(precedence_is_default_global_file_environment)
{
	const char *g = ini("g.ini", "[danube]\n"
				     "service_url = http://global:6650\n"
				     "[runtime]\n"
				     "batch_size = 200\n"
				     "max_retries = 7\n");
	const char *f = ini("c.ini", "[connector]\n"
				     "type = source-mqtt\n"
				     "[runtime]\n"
				     "batch_size = 300\n");
	char *const env[] = {"DANUBE_CONNECT_RUNTIME_BATCH_SIZE=400", NULL};
	struct dc_config *cfg;

	/* default only */
	cfg = load_ok(NULL, f, no_env, false);
	ck_assert_str_eq(dc_config_str(cfg, "danube", "service_url"), "http://127.0.0.1:6650");
	ck_assert_str_eq(dc_config_where(cfg, "danube", "service_url"), "default");
	ck_assert_int_eq(dc_config_int(cfg, "runtime", "max_retries"), 3);
	dc_config_free(cfg);

	/* global over default, file over global, environment over file */
	cfg = load_ok(g, f, no_env, false);
	ck_assert_str_eq(dc_config_str(cfg, "danube", "service_url"), "http://global:6650");
	ck_assert_str_eq(dc_config_where(cfg, "danube", "service_url"), fmt("%s:2", g));
	ck_assert_int_eq(dc_config_int(cfg, "runtime", "max_retries"), 7);
	ck_assert_int_eq(dc_config_int(cfg, "runtime", "batch_size"), 300);
	ck_assert_str_eq(dc_config_where(cfg, "runtime", "batch_size"), fmt("%s:4", f));
	ck_assert_str_eq(dc_config_file(cfg), f);
	dc_config_free(cfg);

	cfg = load_ok(g, f, env, false);
	ck_assert_int_eq(dc_config_int(cfg, "runtime", "batch_size"), 400);
	ck_assert_str_eq(dc_config_where(cfg, "runtime", "batch_size"),
			 "environment DANUBE_CONNECT_RUNTIME_BATCH_SIZE");
	ck_assert_int_eq(dc_config_int(cfg, "runtime", "max_retries"), 7);
	dc_config_free(cfg);
}
END_TEST

START_TEST(environment_overrides_any_key)
{
	char *const env[] = {"DANUBE_CONNECT_CONNECTOR_TYPE=sink-postgres",
			     "DANUBE_CONNECT_MQTT_KEEPALIVE_S=15",
			     "DANUBE_CONNECT_MQTT_CLEAN_SESSION=off",
			     "DANUBE_CONNECT_DANUBE_TOKEN=abc",
			     "DANUBE_CONNECT_SUPERVISOR_LOG_LEVEL=nonsense",
			     "DANUBE_CONNECT_MQTT_NO_SUCH_KEY=1",
			     NULL};
	struct dc_config *cfg = load_ok(NULL, NULL, env, false);

	ck_assert_str_eq(dc_config_str(cfg, "connector", "type"), "sink-postgres");
	ck_assert_int_eq(dc_config_int(cfg, "mqtt", "keepalive_s"), 15);
	ck_assert(!dc_config_bool(cfg, "mqtt", "clean_session"));
	ck_assert_str_eq(dc_config_str(cfg, "danube", "token"), "abc");
	dc_config_free(cfg);
}
END_TEST

static const struct {
	const char *var, *section, *key, *value;
	int64_t num; /* for numbers; -1 to compare the text */
} short_names[] = {
	{"DANUBE_SERVICE_URL", "danube", "service_url", "https://broker:6650", -1},
	{"DANUBE_TOPIC", "danube", "topic", "/default/t", -1},
	{"CONNECTOR_NAME", "connector", "name", "by-hand", -1},
	{"SUBSCRIPTION_NAME", "danube", "subscription", "sub1", -1},
	{"SUBSCRIPTION_TYPE", "danube", "subscription_type", "failover", -1},
	{"DISPATCH_STRATEGY", "danube", "dispatch", "non_reliable", -1},
	{"MAX_RETRIES", "runtime", "max_retries", "9", 9},
	{"RETRY_BACKOFF_MS", "runtime", "retry_backoff_ms", "250", 250},
	{"BATCH_SIZE", "runtime", "batch_size", "77", 77},
	{"BATCH_TIMEOUT_MS", "runtime", "batch_timeout_ms", "2s", 2000},
	{"POLL_INTERVAL_MS", "runtime", "poll_interval_ms", "50", 50},
	{"LOG_LEVEL", "connector", "log_level", "debug", -1},
};

START_TEST(each_short_name_feeds_its_key)
{
	const char *var = short_names[_i].var;
	char *setting = strdup(fmt("%s=%s", var, short_names[_i].value));
	char *const env[] = {"DANUBE_CONNECT_CONNECTOR_TYPE=x", setting, NULL};
	struct dc_config *cfg;

	ck_assert_ptr_nonnull(setting);
	cfg = load_ok(NULL, NULL, env, true);
	if (short_names[_i].num >= 0)
		ck_assert_int_eq(dc_config_int(cfg, short_names[_i].section, short_names[_i].key),
				 short_names[_i].num);
	else
		ck_assert_str_eq(dc_config_str(cfg, short_names[_i].section, short_names[_i].key),
				 short_names[_i].value);
	ck_assert_str_eq(dc_config_where(cfg, short_names[_i].section, short_names[_i].key),
			 fmt("environment %s", var));
	dc_config_free(cfg);

	/* A worker under the supervisor does not honour them. */
	cfg = load_ok(NULL, NULL, env, false);
	ck_assert_str_ne(dc_config_where(cfg, short_names[_i].section, short_names[_i].key),
			 fmt("environment %s", var));
	dc_config_free(cfg);
	free(setting);
}
END_TEST

START_TEST(long_environment_name_wins_over_short)
{
	char *const env[] = {"BATCH_SIZE=5", "DANUBE_CONNECT_RUNTIME_BATCH_SIZE=6",
			     "DANUBE_CONNECT_CONNECTOR_TYPE=x", "DANUBE_TOPIC=/default/short",
			     NULL};
	const char *f = ini("c.ini", "[danube]\ntopic = /default/file\n");
	struct dc_config *cfg = load_ok(NULL, f, env, true);

	ck_assert_int_eq(dc_config_int(cfg, "runtime", "batch_size"), 6);
	/* the short name is still environment: above the file */
	ck_assert_str_eq(dc_config_str(cfg, "danube", "topic"), "/default/short");
	dc_config_free(cfg);
}
END_TEST

START_TEST(dollar_names_expand_from_the_environment)
{
	const char *f = ini("c.ini", "[connector]\n"
				     "type = ${TYPE}\n"
				     "name = ${A}-${B}_x\n"
				     "[mqtt]\n"
				     "password = ${PW}\n"
				     "host = $$literal$x and $ alone\n"
				     "port = ${PORT}\n");
	char *const env[] = {"TYPE=source-mqtt", "A=left",    "B=right",
			     "PW=pa$$w;rd",      "PORT=8883", NULL};
	struct dc_config *cfg = load_ok(NULL, f, env, false);

	ck_assert_str_eq(dc_config_str(cfg, "connector", "type"), "source-mqtt");
	ck_assert_str_eq(dc_config_str(cfg, "connector", "name"), "left-right_x");
	/* the variable's value is taken as it is: no second expansion */
	ck_assert_str_eq(dc_config_str(cfg, "mqtt", "password"), "pa$$w;rd");
	ck_assert_str_eq(dc_config_str(cfg, "mqtt", "host"), "$literal$x and $ alone");
	ck_assert_int_eq(dc_config_int(cfg, "mqtt", "port"), 8883);
	ck_assert_str_eq(dc_config_where(cfg, "mqtt", "port"), fmt("%s:7", f));
	dc_config_free(cfg);
}
END_TEST

START_TEST(dollar_name_problems_are_reported)
{
	const char *f = ini("c.ini", "[connector]\n"
				     "type = ${NOPE}\n"
				     "name = ${UNTERMINATED\n"
				     "log_level = ${}\n"
				     "[mqtt]\n"
				     "host = ${9bad}\n"
				     "password = x${ALSO_UNSET}y\n");

	EXPECT_FAIL(NULL, f, no_env,
		    fmt("%s:2: connector.type: environment variable NOPE is not set", f),
		    fmt("%s:3: connector.name: unterminated ${ (write $$ for a literal $)", f),
		    fmt("%s:4: connector.log_level: empty ${} (write $$ for a literal $)", f),
		    fmt("%s:6: mqtt.host: bad variable name in ${9bad}", f),
		    fmt("%s:7: mqtt.password: environment variable ALSO_UNSET is not set", f),
		    fmt("%s:1: [connector] type is required", f));
}
END_TEST

START_TEST(route_sections_are_listed_in_file_order)
{
	const char *f = ini("c.ini", "[connector]\n"
				     "type = source-mqtt\n"
				     "[route zeta]\n"
				     "mqtt_topic = sensors/+/t\n"
				     "danube_topic = /default/t\n"
				     "[route   b-2]\n"
				     "mqtt_topic = b/#\n"
				     "danube_topic = /default/b\n"
				     "qos = 2\n");
	char *const env[] = {"DANUBE_CONNECT_ROUTE_B_2_QOS=0", NULL};
	struct dc_config *cfg = load_ok(NULL, f, env, false);
	const char **names;

	ck_assert_uint_eq(dc_config_sections(cfg, "route", &names), 2);
	ck_assert_str_eq(names[0], "route zeta");
	ck_assert_str_eq(names[1], "route b-2");
	ck_assert_str_eq(dc_config_str(cfg, "route zeta", "mqtt_topic"), "sensors/+/t");
	ck_assert_str_eq(dc_config_str(cfg, "route zeta", "qos"), "1"); /* default per route */
	ck_assert_str_eq(dc_config_where(cfg, "route zeta", "qos"), "default");
	ck_assert_str_eq(dc_config_str(cfg, "route b-2", "qos"), "0");
	ck_assert_str_eq(dc_config_where(cfg, "route b-2", "qos"),
			 "environment DANUBE_CONNECT_ROUTE_B_2_QOS");
	ck_assert_str_eq(dc_config_section_where(cfg, "route b-2"), fmt("%s:6", f));
	ck_assert_ptr_null(dc_config_str(cfg, "route nosuch", "qos"));
	ck_assert(!dc_config_isset(cfg, "route nosuch", "qos"));
	ck_assert_uint_eq(dc_config_sections(cfg, "mqtt", &names), 0);
	dc_config_free(cfg);
}
END_TEST

START_TEST(routes_can_come_from_the_environment_alone)
{
	char *const env[] = {
		"DANUBE_CONNECT_CONNECTOR_TYPE=x", "DANUBE_CONNECT_ROUTE_ENV1_MQTT_TOPIC=a/b",
		"DANUBE_CONNECT_ROUTE_ENV1_DANUBE_TOPIC=/default/ab",
		/* NAME A, key max_qos (not NAME A_MAX, key qos): the longest key wins */
		"DANUBE_CONNECT_ROUTE_A_MAX_QOS=2", "DANUBE_CONNECT_ROUTE_A_MQTT_TOPIC=x",
		"DANUBE_CONNECT_ROUTE_A_DANUBE_TOPIC=/default/x",
		"DANUBE_CONNECT_ROUTE_A_UNKNOWN=1", NULL};
	struct dc_config *cfg = load_ok(NULL, NULL, env, false);
	const char **names;

	ck_assert_uint_eq(dc_config_sections(cfg, "route", &names), 2);
	ck_assert_str_eq(names[0], "route env1");
	ck_assert_str_eq(names[1], "route a");
	ck_assert_str_eq(dc_config_str(cfg, "route env1", "danube_topic"), "/default/ab");
	ck_assert_int_eq(dc_config_int(cfg, "route a", "max_qos"), 2);
	ck_assert_str_eq(dc_config_str(cfg, "route a", "qos"), "1");
	dc_config_free(cfg);
}
END_TEST

/* "DANUBE_CONNECT_ROUTE_" + n letters + suffix, malloc'd. */
static char *long_route_var(size_t n, const char *suffix)
{
	char *v = malloc(strlen("DANUBE_CONNECT_ROUTE_") + n + strlen(suffix) + 1);

	ck_assert_ptr_nonnull(v);
	strcpy(v, "DANUBE_CONNECT_ROUTE_");
	memset(v + strlen(v), 'A', n);
	strcpy(v + strlen("DANUBE_CONNECT_ROUTE_") + n, suffix);
	return v;
}

START_TEST(routes_from_the_environment_may_have_long_names)
{
	char *topic = long_route_var(5000, "_MQTT_TOPIC=a/b");
	char *dest = long_route_var(5000, "_DANUBE_TOPIC=/default/ab");
	char *qos = long_route_var(5000, "_QOS=7");
	char *const env[] = {"DANUBE_CONNECT_CONNECTOR_TYPE=x", topic, dest, NULL};
	char *const bad_env[] = {"DANUBE_CONNECT_CONNECTOR_TYPE=x", topic, dest, qos, NULL};
	struct dc_config *cfg = load_ok(NULL, NULL, env, false);
	const char **names;
	char shown[200];

	ck_assert_uint_eq(dc_config_sections(cfg, "route", &names), 1);
	ck_assert_uint_eq(strlen(names[0]), strlen("route ") + 5000);
	ck_assert(strncmp(names[0], "route aaaa", 10) == 0);
	ck_assert_str_eq(dc_config_str(cfg, names[0], "mqtt_topic"), "a/b");
	ck_assert_str_eq(dc_config_str(cfg, names[0], "danube_topic"), "/default/ab");
	/* where it came from names the variable, shortened */
	snprintf(shown, sizeof(shown), "environment %.100s...", topic);
	ck_assert_str_eq(dc_config_where(cfg, names[0], "mqtt_topic"), shown);
	dc_config_free(cfg);

	/* and a bad value there is reported, not dropped */
	snprintf(shown, sizeof(shown), "environment %.100s...: must be one of: 0, 1, 2 (got \"7\")",
		 qos);
	EXPECT_FAIL(NULL, NULL, bad_env, shown);
	free(topic);
	free(dest);
	free(qos);
}
END_TEST

START_TEST(required_keys_apply_to_every_route)
{
	const char *f = ini("c.ini", "[connector]\n"
				     "type = source-mqtt\n"
				     "[route a]\n"
				     "mqtt_topic = a\n"
				     "danube_topic = /default/a\n"
				     "[route b]\n"
				     "mqtt_topic = b\n");

	EXPECT_FAIL(NULL, f, no_env, fmt("%s:6: [route b] danube_topic is required", f));
}
END_TEST

START_TEST(missing_required_key_names_the_file_or_the_section)
{
	const char *f = ini("c.ini", "[runtime]\nbatch_size = 5\n");
	const char *f2 = ini("d.ini", "[runtime]\nbatch_size = 5\n[connector]\nenabled = no\n");

	EXPECT_FAIL(NULL, f, no_env, fmt("%s: [connector] type is required", f));
	EXPECT_FAIL(NULL, f2, no_env, fmt("%s:3: [connector] type is required", f2));
	EXPECT_FAIL(NULL, NULL, no_env, "environment: [connector] type is required");
}
END_TEST

START_TEST(every_problem_is_reported_at_once)
{
	const char *f = ini("c.ini", "stray = 1\n"                  /* 1 */
				     "[connector]\n"                /* 2 */
				     "type = source-mqtt\n"         /* 3 */
				     "enabeld = true\n"             /* 4 */
				     "topic = /default/x\n"         /* 5 */
				     "[runtime]\n"                  /* 6 */
				     "batch_size = lots\n"          /* 7 */
				     "batch_timeout_ms = soon\n"    /* 8 */
				     "max_retries = 3\n"            /* 9 */
				     "max_retries = 4\n"            /* 10 */
				     "on_error = abort\n"           /* 11 */
				     "queue_size = 0\n"             /* 12 */
				     "retry_backoff_ms = 2d\n"      /* 13 */
				     "[danube]\n"                   /* 14 */
				     "service_url = ftp://x:1\n"    /* 15 */
				     "partitions = -1\n"            /* 16 */
				     "[mqtt]\n"                     /* 17 */
				     "clean_session = maybe\n"      /* 18 */
				     "port = 70000\n"               /* 19 */
				     "this line has no equals\n"    /* 20 */
				     "[danub]\n"                    /* 21 */
				     "host = ignored\n"             /* 22 */
				     "[weird stuff]\n"              /* 23 */
				     "[route a\n"                   /* 24 */
				     "qos = 1\n"                    /* 25 */
				     "[runtime]\n"                  /* 26 */
				     "[route r1]\n"                 /* 27 */
				     "mqtt_topic = a/#\n"           /* 28 */
				     "qos = 3\n"                    /* 29 */
				     "[route r2]\n"                 /* 30 */
				     "[rout r3]\n"                  /* 31 */
				     "[route]\n"                    /* 32 */
				     "[mqtt]\n"                     /* 33 */
				     "hots = x\n"                   /* 34 */
				     "batchsize = 5\n"              /* 35 */
				     "service_url = http://h:1/x\n" /* 36 */
				     "[danube]\n"                   /* 37 */
				     "partitions = 5\n"             /* 38 */
				     "= nothing\n");                /* 39 */

	EXPECT_FAIL(
		NULL, f, no_env, fmt("%s:1: key stray before any [section]", f),
		fmt("%s:4: unknown key enabeld in [connector]; did you mean enabled?", f),
		fmt("%s:5: unknown key topic in [connector]; it belongs in [danube]", f),
		fmt("%s:7: runtime.batch_size: expected an integer (got \"lots\")", f),
		fmt("%s:8: runtime.batch_timeout_ms: expected a duration such as 500ms, 5s, 2m "
		    "(got \"soon\")",
		    f),
		fmt("%s:10: duplicate key runtime.max_retries (first at line 9)", f),
		fmt("%s:11: runtime.on_error: must be one of: fail, skip, dlq (got \"abort\")", f),
		fmt("%s:12: runtime.queue_size: must be between 1 and 10000000 (got \"0\")", f),
		fmt("%s:13: runtime.retry_backoff_ms: expected a duration such as 500ms, 5s, 2m "
		    "(got \"2d\")",
		    f),
		fmt("%s:15: danube.service_url: URL scheme must be one of: http, https "
		    "(got \"ftp://x:1\")",
		    f),
		fmt("%s:16: danube.partitions: must be between 0 and 10000 (got \"-1\")", f),
		fmt("%s:18: mqtt.clean_session: expected true or false (got \"maybe\")", f),
		fmt("%s:19: mqtt.port: must be between 1 and 65535 (got \"70000\")", f),
		fmt("%s:20: syntax error: expected key = value", f),
		fmt("%s:21: unknown section [danub]; did you mean [danube]?", f),
		fmt("%s:23: unknown section [weird stuff]", f),
		fmt("%s:24: syntax error: missing ]", f),
		fmt("%s:26: duplicate section [runtime] (first at line 6)", f),
		fmt("%s:29: route r1.qos: must be one of: 0, 1, 2 (got \"3\")", f),
		fmt("%s:31: unknown section [rout r3]; did you mean [route r3]?", f),
		fmt("%s:32: section [route] needs a name, as in [route NAME]", f),
		fmt("%s:33: duplicate section [mqtt] (first at line 17)", f),
		fmt("%s:34: unknown key hots in [mqtt]; did you mean host?", f),
		fmt("%s:35: unknown key batchsize in [mqtt]; did you mean batch_size in [runtime]?",
		    f),
		fmt("%s:36: unknown key service_url in [mqtt]; it belongs in [danube]", f),
		fmt("%s:37: duplicate section [danube] (first at line 14)", f),
		fmt("%s:38: duplicate key danube.partitions (first at line 16)", f),
		fmt("%s:39: syntax error: missing key before =", f),
		fmt("%s:27: [route r1] danube_topic is required", f),
		fmt("%s:30: [route r2] mqtt_topic is required", f),
		fmt("%s:30: [route r2] danube_topic is required", f));
}
END_TEST

START_TEST(names_in_messages_are_cleaned_and_bounded)
{
	char long_key[121];
	const char *f;
	char *const env[] = {"DANUBE_CONNECT_ROUTE_\x1b[1M_QOS=9",
			     "DANUBE_CONNECT_MQTT_PORT=\x1b[1m", NULL};

	memset(long_key, 'k', sizeof(long_key) - 1);
	long_key[sizeof(long_key) - 1] = '\0';
	f = ini("c.ini", fmt("[connector]\n"
			     "type = x\n"
			     "\x1b]0;PWNED\x07\x1b[31mevil = 1\n"
			     "[\x1b[31mweird]\n"
			     "[route \x1b[2Jr]\n"
			     "mqtt_topic = a\n"
			     "%s = 1\n",
			     long_key));
	long_key[100] = '\0';
	EXPECT_FAIL(
		NULL, f, env, fmt("%s:3: unknown key ?]0;PWNED??[31mevil in [connector]", f),
		fmt("%s:4: unknown section [?[31mweird]", f),
		fmt("%s:7: unknown key %s... in [route ?[2Jr]", f, long_key),
		"environment DANUBE_CONNECT_MQTT_PORT: expected an integer (got \"?[1m\")",
		"environment DANUBE_CONNECT_ROUTE_?[1M_QOS: must be one of: 0, 1, 2 (got \"9\")",
		fmt("%s:5: [route ?[2Jr] danube_topic is required", f),
		fmt("%s: [route ?[1m] mqtt_topic is required", f),
		fmt("%s: [route ?[1m] danube_topic is required", f));
}
END_TEST

START_TEST(section_names_must_match_the_table)
{
	const char *f = ini("c.ini", "[connector]\n"
				     "type = x\n"
				     "[danube extra]\n"
				     "topic = t\n"
				     "[Route a]\n"
				     "[ ]\n"
				     "[route\ta]\n"
				     "mqtt_topic = m\n"
				     "danube_topic = d\n");
	struct dc_diag d;
	struct dc_config *cfg;

	EXPECT_FAIL(NULL, f, no_env, fmt("%s:3: unknown section [danube extra]", f),
		    fmt("%s:5: unknown section [Route a]; did you mean [route a]?", f),
		    fmt("%s:6: syntax error: empty section name", f));
	/* A tab between kind and name is a blank like any other. */
	f = ini("c.ini", "[connector]\ntype = x\n[route\ta]\nmqtt_topic = m\ndanube_topic = d\n");
	dc_diag_init(&d);
	cfg = load(NULL, f, no_env, false, &d);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(dc_config_str(cfg, "route a", "mqtt_topic"), "m");
	dc_config_free(cfg);
	dc_diag_free(&d);
}
END_TEST

START_TEST(unreadable_file_is_reported)
{
	const char *missing = fmt("%s/nope.ini", dir);

	EXPECT_FAIL(NULL, missing, type_env,
		    fmt("%s: cannot open: No such file or directory", missing));
	EXPECT_FAIL(missing, NULL, type_env,
		    fmt("%s: cannot open: No such file or directory", missing));
	EXPECT_FAIL(NULL, dir, type_env, fmt("%s: cannot read: Is a directory", dir));
}
END_TEST

START_TEST(global_file_applies_only_known_sections)
{
	const char *g = ini("g.ini", "[supervisor]\n"
				     "log_level = debug\n"
				     "[danube]\n"
				     "service_url = http://global:6650\n"
				     "[other-program]\n"
				     "[route]\n"
				     "anything = goes\n"
				     "[danube]\n"
				     "servce_url = http://typo\n");
	const char *g2 = ini("g2.ini", "[supervisor]\n"
				       "log_level = debug\n"
				       "[danube]\n"
				       "service_url = http://global:6650\n");
	struct dc_config *cfg;

	/* unknown keys in a known section are errors even there */
	EXPECT_FAIL(g, NULL, type_env,
		    fmt("%s:6: section [route] needs a name, as in [route NAME]", g),
		    fmt("%s:8: duplicate section [danube] (first at line 3)", g),
		    fmt("%s:9: unknown key servce_url in [danube]; did you mean service_url?", g));
	cfg = load_ok(g2, NULL, type_env, false);
	ck_assert_str_eq(dc_config_str(cfg, "danube", "service_url"), "http://global:6650");
	ck_assert_str_eq(dc_config_file(cfg), g2);
	ck_assert_str_eq(dc_config_section_where(cfg, "danube"), fmt("%s:3", g2));
	ck_assert_ptr_null(dc_config_section_where(cfg, "runtime"));
	dc_config_free(cfg);
}
END_TEST

START_TEST(supervisor_table_has_the_documented_defaults)
{
	struct dc_cfg_key *k;
	size_t n;
	struct dc_diag d;
	struct dc_config *cfg;
	const char *g = ini("g.ini", "[supervisor]\n"
				     "restart_intensity = 9\n"
				     "[danube]\n"
				     "service_url = https://b:6650/\n");

	ck_assert_int_eq(
		dc_cfg_keys_concat(&k, &n, DC_CFG_KEYS_SUPERVISOR, DC_CFG_KEYS_DANUBE, NULL), 0);
	ck_assert_uint_eq(n, dc_cfg_nkeys_supervisor + dc_cfg_nkeys_danube);
	dc_diag_init(&d);
	cfg = load_with(k, n, NULL, g, no_env, false, &d);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_str_eq(dc_config_str(cfg, "supervisor", "connectors_dir"),
			 DC_SYSCONFDIR "/danube-connect/connectors.d");
	ck_assert_str_eq(dc_config_str(cfg, "supervisor", "run_dir"), "/run/danube-connect");
	ck_assert_str_eq(dc_config_str(cfg, "supervisor", "worker_dir"),
			 DC_LIBEXECDIR "/danube-connect");
	ck_assert_str_eq(dc_config_str(cfg, "supervisor", "metrics_listen"), "127.0.0.1:9090");
	ck_assert_str_eq(dc_config_str(cfg, "supervisor", "log_level"), "info");
	ck_assert_str_eq(dc_config_str(cfg, "supervisor", "syslog_facility"), "daemon");
	ck_assert_int_eq(dc_config_int(cfg, "supervisor", "restart_backoff_initial_ms"), 200);
	ck_assert_int_eq(dc_config_int(cfg, "supervisor", "restart_backoff_max_ms"), 30000);
	ck_assert_int_eq(dc_config_int(cfg, "supervisor", "restart_intensity"), 9);
	ck_assert_int_eq(dc_config_int(cfg, "supervisor", "restart_period_s"), 60);
	ck_assert_int_eq(dc_config_int(cfg, "supervisor", "health_interval_ms"), 1000);
	ck_assert_int_eq(dc_config_int(cfg, "supervisor", "health_timeout_ms"), 5000);
	ck_assert_int_eq(dc_config_int(cfg, "supervisor", "stop_timeout_ms"), 10000);
	ck_assert_str_eq(dc_config_str(cfg, "danube", "service_url"), "https://b:6650/");
	dc_config_free(cfg);
	dc_diag_free(&d);
	free(k);
}
END_TEST

/* The line "key = ..." is on in a file, or 0. */
static unsigned line_of(const char *path, const char *key)
{
	char *text = th_read_file(path);
	unsigned line = 1, found = 0;
	size_t klen = strlen(key);

	ck_assert_ptr_nonnull(text);
	for (const char *p = text; *p && !found; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : "") {
		if (strncmp(p, key, klen) == 0 && p[klen] == ' ')
			found = line;
		line++;
	}
	free(text);
	return found;
}

START_TEST(example_global_file_is_valid_and_shows_the_defaults)
{
	struct dc_cfg_key *k;
	size_t n;
	struct dc_diag d;
	struct dc_config *cfg, *defaults;
	const char *g = th_src_path("etc/danube-connect.ini");

	ck_assert_int_eq(
		dc_cfg_keys_concat(&k, &n, DC_CFG_KEYS_SUPERVISOR, DC_CFG_KEYS_DANUBE, NULL), 0);
	dc_diag_init(&d);
	cfg = load_with(k, n, NULL, g, no_env, false, &d);
	ck_assert_msg(cfg != NULL, "%s", d.n ? d.lines[0] : "");
	defaults = load_with(k, n, NULL, NULL, no_env, false, &d);
	ck_assert_ptr_nonnull(defaults);
	for (size_t i = 0; i < n; i++) {
		const char *sect = k[i].section, *key = k[i].key;
		const char *a = dc_config_str(cfg, sect, key),
			   *b = dc_config_str(defaults, sect, key);

		ck_assert_msg((a == NULL) == (b == NULL), "%s.%s", sect, key);
		if (k[i].type == DC_CFG_INT || k[i].type == DC_CFG_DURATION)
			ck_assert_int_eq(dc_config_int(cfg, sect, key),
					 dc_config_int(defaults, sect, key));
		else if (a != NULL)
			ck_assert_str_eq(a, b);
		/* every [supervisor] key is in the example; the install paths commented out */
		if (strcmp(sect, "supervisor") == 0 && strcmp(key, "connectors_dir") != 0 &&
		    strcmp(key, "worker_dir") != 0)
			ck_assert_str_eq(dc_config_where(cfg, sect, key),
					 fmt("%s:%u", g, line_of(g, key)));
	}
	dc_config_free(defaults);
	dc_config_free(cfg);
	dc_diag_free(&d);
	free(k);
}
END_TEST

START_TEST(environment_problems_name_the_variable)
{
	char *const env[] = {"DANUBE_CONNECT_CONNECTOR_TYPE=x",
			     "DANUBE_CONNECT_RUNTIME_BATCH_SIZE=abc",
			     "DANUBE_CONNECT_RUNTIME_ON_ERROR=retry",
			     "DANUBE_CONNECT_MQTT_PIN=123456",
			     "DANUBE_CONNECT_ROUTE_X_QOS=7",
			     "DANUBE_CONNECT_ROUTE_X_MQTT_TOPIC=a",
			     "DANUBE_CONNECT_ROUTE_X_DANUBE_TOPIC=/default/a",
			     "BATCH_TIMEOUT_MS=1 s",
			     NULL};
	struct dc_diag d;

	dc_diag_init(&d);
	ck_assert_ptr_null(load(NULL, NULL, env, true, &d));
	EXPECT_LINES(
		&d,
		"environment DANUBE_CONNECT_RUNTIME_BATCH_SIZE: expected an integer (got "
		"\"abc\")",
		"environment BATCH_TIMEOUT_MS: expected a duration such as 500ms, 5s, 2m (got "
		"\"1 s\")",
		"environment DANUBE_CONNECT_RUNTIME_ON_ERROR: must be one of: fail, skip, dlq "
		"(got \"retry\")",
		"environment DANUBE_CONNECT_MQTT_PIN: value rejected: must be between 1 and 9999",
		"environment DANUBE_CONNECT_ROUTE_X_QOS: must be one of: 0, 1, 2 (got \"7\")");
	dc_diag_free(&d);
}
END_TEST

START_TEST(secrets_are_never_printed)
{
	const char *bad = ini("bad.ini", "[connector]\n"
					 "type = x\n"
					 "[mqtt]\n"
					 "pin = 123456789\n"
					 "pin = 987654321\n");
	const char *good = ini("good.ini", "[connector]\n"
					   "type = x\n"
					   "[danube]\n"
					   "token = eyJhbGciOi.secret\n"
					   "[mqtt]\n"
					   "password = ${PW}\n"
					   "pin = 4321\n");
	char *const env[] = {"PW=hunter2", NULL};
	const char *out = fmt("%s/dump.txt", dir);
	struct dc_config *cfg;
	char *text;
	int fd;

	EXPECT_FAIL(NULL, bad, no_env,
		    fmt("%s:4: mqtt.pin: value rejected: must be between 1 and 9999", bad),
		    fmt("%s:5: duplicate key mqtt.pin (first at line 4)", bad));

	cfg = load_ok(NULL, good, env, false);
	ck_assert_str_eq(dc_config_str(cfg, "mqtt", "password"), "hunter2");
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	dc_config_dump(cfg, fd);
	close(fd);
	text = th_read_file(out);
	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text, "danube.token = ****\n"));
	ck_assert_ptr_nonnull(strstr(text, "mqtt.password = ****\n"));
	ck_assert_ptr_nonnull(strstr(text, "mqtt.pin = ****\n"));
	ck_assert_ptr_null(strstr(text, "secret"));
	ck_assert_ptr_null(strstr(text, "hunter2"));
	ck_assert_ptr_null(strstr(text, "4321"));
	free(text);
	dc_config_free(cfg);
}
END_TEST

START_TEST(dump_lists_every_set_key)
{
	const char *f = ini("c.ini", "[connector]\n"
				     "type = source-mqtt\n"
				     "[route r]\n"
				     "mqtt_topic = t/#\n"
				     "danube_topic = /default/t\n");
	const char *out = fmt("%s/dump.txt", dir);
	struct dc_config *cfg = load_ok(NULL, f, no_env, false);
	char *text;
	int fd;

	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	dc_config_dump(cfg, fd);
	close(fd);
	text = th_read_file(out);
	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text, "danube.service_url = http://127.0.0.1:6650\n"
			       "danube.dispatch = reliable\n"
			       "danube.subscription_type = shared\n"
			       "danube.partitions = 0\n"
			       "danube.max_unacked = 10\n"
			       "connector.type = source-mqtt\n"
			       "connector.enabled = true\n"
			       "connector.log_level = info\n"
			       "runtime.batch_size = 1000\n"
			       "runtime.batch_timeout_ms = 1000\n"
			       "runtime.batch_linger_ms = 5\n"
			       "runtime.max_retries = 3\n"
			       "runtime.retry_backoff_ms = 1000\n"
			       "runtime.retry_backoff_max_ms = 30000\n"
			       "runtime.on_error = fail\n"
			       "runtime.poll_interval_ms = 100\n"
			       "runtime.queue_size = 10000\n"
			       "runtime.stop_timeout_ms = 10000\n"
			       "mqtt.host = localhost\n"
			       "mqtt.port = 1883\n"
			       "mqtt.keepalive_s = 60\n"
			       "mqtt.clean_session = true\n"
			       "route r.mqtt_topic = t/#\n"
			       "route r.qos = 1\n"
			       "route r.danube_topic = /default/t\n");
	free(text);
	dc_config_free(cfg);
}
END_TEST

START_TEST(durations_take_units)
{
	static const struct {
		const char *text;
		int64_t ms;
	} ok[] = {{"250", 250},   {"250ms", 250},  {"5s", 5000},
		  {"2m", 120000}, {"1h", 3600000}, {" 7s ", 7000}};
	static const char *const bad[] = {"1.5s", "5 s", "-1s", "s", "10d", "99999999999999999999"};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		char *setting =
			strdup(fmt("DANUBE_CONNECT_RUNTIME_BATCH_TIMEOUT_MS=%s", ok[i].text));
		char *const env[] = {"DANUBE_CONNECT_CONNECTOR_TYPE=x", setting, NULL};
		struct dc_config *cfg = load_ok(NULL, NULL, env, false);

		ck_assert_int_eq(dc_config_int(cfg, "runtime", "batch_timeout_ms"), ok[i].ms);
		dc_config_free(cfg);
		free(setting);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		const char *f = ini("c.ini", fmt("[connector]\ntype = x\n[runtime]\n"
						 "retry_backoff_ms = %s\n",
						 bad[i]));

		EXPECT_FAIL(NULL, f, no_env,
			    fmt("%s:4: runtime.retry_backoff_ms: expected a duration such as "
				"500ms, 5s, 2m (got \"%s\")",
				f, bad[i]));
	}
	{
		const char *f = ini("c.ini", "[connector]\ntype = x\n[runtime]\n"
					     "batch_timeout_ms = 2h\n"
					     "stop_timeout_ms = 5ms\n");

		EXPECT_FAIL(NULL, f, no_env,
			    fmt("%s:4: runtime.batch_timeout_ms: must be between 1ms and 1h (got "
				"\"2h\")",
				f),
			    fmt("%s:5: runtime.stop_timeout_ms: must be between 10ms and 1h (got "
				"\"5ms\")",
				f));
	}
}
END_TEST

START_TEST(bools_enums_and_ints_parse_leniently_but_strictly)
{
	static const char *const yes[] = {"true", "TRUE", "yes", "on", "1"};
	static const char *const no[] = {"false", "No", "off", "0"};

	for (size_t i = 0; i < 9; i++) {
		const char *v = i < 5 ? yes[i] : no[i - 5];
		const char *f =
			ini("c.ini", fmt("[connector]\ntype = x\nenabled = %s\n"
					 "log_level = DEBUG\n[runtime]\nmax_retries = +12\n",
					 v));
		struct dc_config *cfg = load_ok(NULL, f, no_env, false);

		ck_assert_int_eq(dc_config_bool(cfg, "connector", "enabled"), i < 5);
		/* enums are matched case-blind and kept in the table's spelling */
		ck_assert_str_eq(dc_config_str(cfg, "connector", "log_level"), "debug");
		ck_assert_int_eq(dc_config_int(cfg, "runtime", "max_retries"), 12);
		dc_config_free(cfg);
	}
	{
		const char *f = ini("c.ini", "[connector]\ntype = x\nenabled =\n[runtime]\n"
					     "max_retries = 0x10\nbatch_size = 1e3\n");

		EXPECT_FAIL(NULL, f, no_env,
			    fmt("%s:3: connector.enabled: expected true or false (got \"\")", f),
			    fmt("%s:5: runtime.max_retries: expected an integer (got \"0x10\")", f),
			    fmt("%s:6: runtime.batch_size: expected an integer (got \"1e3\")", f));
	}
}
END_TEST

START_TEST(comments_indentation_and_empty_values)
{
	const char *f = ini("c.ini", "\xEF\xBB\xBF; a comment\n"
				     "# another\n"
				     "  [connector]   \n"
				     "\ttype = source-mqtt   ; inline comment\n"
				     "    name = n;not-a-comment\n"
				     "[danube]\n"
				     "token =\n"
				     "topic: /default/colon\n"
				     "\r\n"
				     "[mqtt]\r\n"
				     "host = h\r\n");
	struct dc_config *cfg = load_ok(NULL, f, no_env, false);

	ck_assert_str_eq(dc_config_str(cfg, "connector", "type"), "source-mqtt");
	/* an indented line is a key of its own, not a continuation of the one before */
	ck_assert_str_eq(dc_config_str(cfg, "connector", "name"), "n;not-a-comment");
	ck_assert_str_eq(dc_config_where(cfg, "connector", "name"), fmt("%s:5", f));
	ck_assert_str_eq(dc_config_str(cfg, "danube", "token"), "");
	ck_assert(dc_config_isset(cfg, "danube", "token"));
	ck_assert_str_eq(dc_config_str(cfg, "danube", "topic"), "/default/colon");
	ck_assert_str_eq(dc_config_str(cfg, "mqtt", "host"), "h");
	ck_assert_str_eq(dc_config_where(cfg, "mqtt", "host"), fmt("%s:11", f));
	dc_config_free(cfg);
}
END_TEST

START_TEST(long_lines_are_rejected_with_their_line)
{
	char big[400];
	const char *f;
	struct dc_config *cfg;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	f = ini("c.ini", fmt("[connector]\ntype = x\nname = %s\n", big));
	EXPECT_FAIL(NULL, f, no_env, fmt("%s:3: line too long (more than 198 characters)", f));

	big[198 - strlen("name = ")] = '\0';
	f = ini("c.ini", fmt("[connector]\ntype = x\nname = %s\n", big));
	cfg = load_ok(NULL, f, no_env, false);
	ck_assert_str_eq(dc_config_str(cfg, "connector", "name"), big);
	dc_config_free(cfg);
}
END_TEST

START_TEST(urls_are_checked)
{
	static const char *const good[] = {"http://127.0.0.1:6650", "https://broker",
					   "http://[::1]:6650/", "HTTP://user@host:1/x?y"};
	static const char *const badv[] = {"127.0.0.1:6650", "http://",    "http://h:0",
					   "http://h:99999", "http://h x", "http://h:12a"};

	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		char *setting = strdup(fmt("DANUBE_SERVICE_URL=%s", good[i]));
		char *const env[] = {"DANUBE_CONNECT_CONNECTOR_TYPE=x", setting, NULL};
		struct dc_config *cfg = load_ok(NULL, NULL, env, true);

		ck_assert_str_eq(dc_config_str(cfg, "danube", "service_url"), good[i]);
		dc_config_free(cfg);
		free(setting);
	}
	for (size_t i = 0; i < sizeof(badv) / sizeof(badv[0]); i++) {
		const char *f = ini("c.ini", fmt("[connector]\ntype = x\n[danube]\n"
						 "service_url = %s\n",
						 badv[i]));

		EXPECT_FAIL(NULL, f, no_env,
			    fmt("%s:4: danube.service_url: expected a URL such as http://host:port "
				"(got \"%s\")",
				f, badv[i]));
	}
}
END_TEST

START_TEST(null_diag_and_real_environ_work)
{
	struct dc_config_src src = {.file = NULL};
	struct dc_config *cfg = NULL;

	ck_assert_int_eq(setenv("DANUBE_CONNECT_CONNECTOR_TYPE", "from-environ", 1), 0);
	ck_assert_int_eq(dc_config_load(&cfg, keys, nkeys, &src, NULL), 0);
	ck_assert_str_eq(dc_config_str(cfg, "connector", "type"), "from-environ");
	dc_config_free(cfg);
	ck_assert_int_eq(unsetenv("DANUBE_CONNECT_CONNECTOR_TYPE"), 0);
	ck_assert_int_eq(dc_config_load(&cfg, keys, nkeys, &src, NULL), -EINVAL);
	ck_assert_ptr_null(cfg);
}
END_TEST

START_TEST(key_tables_are_checked)
{
	static const struct dc_cfg_key bad[] = {
		{.section = "runtime", .key = "batch_size", .type = DC_CFG_INT, .def = "5"},
		{.section = "x", .key = "n", .type = DC_CFG_INT, .def = "ten"},
	};
	struct dc_cfg_key *k;
	size_t n;
	struct dc_diag d;

	ck_assert_int_eq(dc_cfg_keys_concat(&k, &n, DC_CFG_KEYS_RUNTIME, bad, (size_t)2, NULL), 0);
	dc_diag_init(&d);
	ck_assert_ptr_null(load_with(k, n, NULL, NULL, no_env, false, &d));
	EXPECT_LINES(&d, "key table: [runtime] batch_size is declared twice",
		     "default: x.n: expected an integer (got \"ten\")");
	dc_diag_free(&d);
	free(k);
}
END_TEST

START_TEST(getter_for_a_key_not_in_the_table_aborts)
{
	struct dc_config *cfg = load_ok(NULL, NULL, type_env, false);

	(void)dc_config_str(cfg, "runtime", "no_such_key");
}
END_TEST

START_TEST(getter_with_the_wrong_type_aborts)
{
	struct dc_config *cfg = load_ok(NULL, NULL, type_env, false);

	(void)dc_config_int(cfg, "danube", "topic");
}
END_TEST

START_TEST(diag_write_prints_every_line)
{
	const char *out = fmt("%s/diag.txt", dir);
	struct dc_diag d;
	char *text;
	int fd;

	dc_diag_init(&d);
	for (int i = 0; i < 20; i++)
		dc_diag_add(&d, "f.ini:%d: problem", i);
	ck_assert_uint_eq(d.n, 20);
	fd = open(out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ck_assert_int_ge(fd, 0);
	dc_diag_write(&d, fd);
	close(fd);
	text = th_read_file(out);
	ck_assert_ptr_nonnull(text);
	ck_assert(strncmp(text, "f.ini:0: problem\nf.ini:1: problem\n", 34) == 0);
	ck_assert_ptr_nonnull(strstr(text, "f.ini:19: problem\n"));
	free(text);
	dc_diag_free(&d);
	ck_assert_uint_eq(d.n, 0);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config");
	TCase *tc = tcase_create("load");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, defaults_apply_when_nothing_is_set);
	tcase_add_test(tc, precedence_is_default_global_file_environment);
	tcase_add_test(tc, environment_overrides_any_key);
	tcase_add_loop_test(tc, each_short_name_feeds_its_key, 0,
			    sizeof(short_names) / sizeof(short_names[0]));
	tcase_add_test(tc, long_environment_name_wins_over_short);
	tcase_add_test(tc, dollar_names_expand_from_the_environment);
	tcase_add_test(tc, dollar_name_problems_are_reported);
	tcase_add_test(tc, route_sections_are_listed_in_file_order);
	tcase_add_test(tc, routes_can_come_from_the_environment_alone);
	tcase_add_test(tc, routes_from_the_environment_may_have_long_names);
	tcase_add_test(tc, required_keys_apply_to_every_route);
	tcase_add_test(tc, missing_required_key_names_the_file_or_the_section);
	tcase_add_test(tc, every_problem_is_reported_at_once);
	tcase_add_test(tc, section_names_must_match_the_table);
	tcase_add_test(tc, names_in_messages_are_cleaned_and_bounded);
	tcase_add_test(tc, unreadable_file_is_reported);
	tcase_add_test(tc, global_file_applies_only_known_sections);
	tcase_add_test(tc, supervisor_table_has_the_documented_defaults);
	tcase_add_test(tc, example_global_file_is_valid_and_shows_the_defaults);
	tcase_add_test(tc, environment_problems_name_the_variable);
	tcase_add_test(tc, secrets_are_never_printed);
	tcase_add_test(tc, dump_lists_every_set_key);
	tcase_add_test(tc, durations_take_units);
	tcase_add_test(tc, bools_enums_and_ints_parse_leniently_but_strictly);
	tcase_add_test(tc, comments_indentation_and_empty_values);
	tcase_add_test(tc, long_lines_are_rejected_with_their_line);
	tcase_add_test(tc, urls_are_checked);
	tcase_add_test(tc, null_diag_and_real_environ_work);
	tcase_add_test(tc, key_tables_are_checked);
	tcase_add_test_raise_signal(tc, getter_for_a_key_not_in_the_table_aborts, SIGABRT);
	tcase_add_test_raise_signal(tc, getter_with_the_wrong_type_aborts, SIGABRT);
	tcase_add_test(tc, diag_write_prints_every_line);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(config_suite)
