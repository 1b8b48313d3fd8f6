/* dc_pg_opts_load: the [postgres] connection keys both PostgreSQL connectors declare once. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include "pg/options.h"

static const struct dc_cfg_key keys[] = {
	DC_PG_KEY_CONNINFO,
	DC_PG_KEYS_RECONNECT("10000"),
};

/* A configuration of these keys from env alone; problems into diag. */
static struct dc_config *load(char *const *env, struct dc_diag *diag)
{
	struct dc_config_src src = {.envp = env};
	struct dc_config *cfg = NULL;

	ck_assert_int_eq(dc_config_load(&cfg, keys, sizeof(keys) / sizeof(keys[0]), &src, diag), 0);
	return cfg;
}

START_TEST(loads_conninfo_masked_and_the_default_delays)
{
	char *env[] = {"DANUBE_CONNECT_POSTGRES_CONNINFO=host=db password=s3cret", NULL};
	struct dc_diag diag;
	struct dc_config *cfg;
	struct dc_pg_opts o;

	dc_diag_init(&diag);
	cfg = load(env, &diag);
	ck_assert_int_eq(dc_pg_opts_load(&o, cfg, &diag), 0);
	ck_assert_uint_eq(diag.n, 0);
	ck_assert_str_eq(o.conninfo, "host=db password=s3cret");
	ck_assert_ptr_nonnull(strstr(o.masked, "password=****"));
	ck_assert_ptr_nonnull(strstr(o.masked, "host=db"));
	ck_assert_uint_eq(o.backoff_ms, 200);
	ck_assert_uint_eq(o.backoff_max_ms, 10000);
	ck_assert_uint_eq(o.connect_timeout_ms, DC_PG_CONNECT_TIMEOUT_MS);
	ck_assert_uint_eq(o.query_timeout_ms, 0);
	dc_pg_opts_free(&o);
	ck_assert_ptr_null(o.masked);
	dc_config_free(cfg);
	dc_diag_free(&diag);
}
END_TEST

START_TEST(reports_a_bad_conninfo_and_a_cap_below_the_first_delay)
{
	char *env[] = {"DANUBE_CONNECT_POSTGRES_CONNINFO=host=db password=s3cret nosuchkey=1",
		       "DANUBE_CONNECT_POSTGRES_RECONNECT_BACKOFF_MS=5s",
		       "DANUBE_CONNECT_POSTGRES_RECONNECT_BACKOFF_MAX_MS=1s", NULL};
	struct dc_diag diag;
	struct dc_config *cfg;
	struct dc_pg_opts o;

	dc_diag_init(&diag);
	cfg = load(env, &diag);
	ck_assert_int_eq(dc_pg_opts_load(&o, cfg, &diag), -1);
	ck_assert_ptr_null(o.masked);
	ck_assert_uint_eq(diag.n, 2);
	ck_assert_ptr_nonnull(strstr(diag.lines[0], "DANUBE_CONNECT_POSTGRES_CONNINFO: conninfo: "
						    "invalid connection option \"nosuchkey\""));
	ck_assert_ptr_null(strstr(diag.lines[0], "s3cret"));
	ck_assert_ptr_nonnull(strstr(diag.lines[1],
				     "DANUBE_CONNECT_POSTGRES_RECONNECT_BACKOFF_MAX_MS: "
				     "reconnect_backoff_max_ms is below "
				     "reconnect_backoff_ms"));
	dc_config_free(cfg);
	dc_diag_free(&diag);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pg_options");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, loads_conninfo_masked_and_the_default_delays);
	tcase_add_test(tc, reports_a_bad_conninfo_and_a_cap_below_the_first_delay);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
