/* The throwaway PostgreSQL cluster the connector tests stand on. */
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "pg.h"

START_TEST(cluster_starts_keeps_data_across_restart_and_kill)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	char *v, *err = NULL;

	th_pg_exec(pg, "CREATE TABLE t (id int PRIMARY KEY, v text); "
		       "INSERT INTO t SELECT g, 'x' || g FROM generate_series(1, 100) g");
	ck_assert_int_eq(th_pg_long(pg, "SELECT count(*) FROM t"), 100);
	v = th_pg_value(pg, "SHOW wal_level");
	ck_assert_str_eq(v, "logical");
	free(v);
	ck_assert_int_eq(th_pg_try(pg, &err, "INSERT INTO t VALUES (1, 'dup')"), -1);
	ck_assert_ptr_nonnull(strstr(err, "duplicate key"));
	free(err);
	th_pg_restart(pg);
	ck_assert_int_eq(th_pg_long(pg, "SELECT count(*) FROM t"), 100);
	th_pg_exec(pg, "INSERT INTO t VALUES (101, 'y')");
	th_pg_kill(pg);
	ck_assert(!th_pg_running(pg));
	th_pg_restart(pg);
	/* Committed before the crash: recovered from the WAL. */
	ck_assert_int_eq(th_pg_long(pg, "SELECT count(*) FROM t"), 101);
	ck_assert_int_eq(th_pg_long(pg, "SELECT NULL::int"), -1);
	th_pg_stop(pg);
	ck_assert(!th_pg_running(pg));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pg");
	TCase *tc = tcase_create("cluster");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, cluster_starts_keeps_data_across_restart_and_kill);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
