/*
 * The throwaway PostgreSQL cluster the connector tests stand on, and the
 * libpq adapter both PostgreSQL workers share (libshared/pg/conn.c).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <ev.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "pg.h"
#include "pg/conn.h"

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

/* ------------------------------------------------------------- the adapter */

/* What the adapter reported, for the tests to wait on. */
struct probe {
	struct dc_pg_opts o; /* the adapter's copy */
	struct dc_pg_conn *c;
	int ups, downs, results, readable;
	double down_at[64]; /* ev_now of each on_down */
	char why[600];      /* the last on_down's reason */
	bool res_lost;      /* the last result: the connection was lost */
	ExecStatusType status;
	char value[128]; /* the last result's first value, or its error / why */
};

static void on_up(void *arg)
{
	((struct probe *)arg)->ups++;
}

static void on_down(void *arg, const char *why)
{
	struct probe *p = arg;

	if (p->downs < 64)
		p->down_at[p->downs] = ev_now(EV_DEFAULT);
	p->downs++;
	snprintf(p->why, sizeof(p->why), "%s", why);
}

static void on_readable(void *arg)
{
	((struct probe *)arg)->readable++;
}

static void on_result(void *arg, const PGresult *res, const char *why)
{
	struct probe *p = arg;

	p->results++;
	p->res_lost = !res;
	p->status = res ? PQresultStatus(res) : PGRES_FATAL_ERROR;
	if (!res)
		snprintf(p->value, sizeof(p->value), "%s", why);
	else if (p->status == PGRES_TUPLES_OK && PQntuples(res) > 0)
		snprintf(p->value, sizeof(p->value), "%s", PQgetvalue(res, 0, 0));
	else
		snprintf(p->value, sizeof(p->value), "%s", PQresultErrorMessage(res));
}

static void on_tick(struct ev_loop *loop, ev_timer *w, int revents)
{
	(void)loop;
	(void)w;
	(void)revents;
}

/* Runs the loop until expr holds (true) or timeout_ms passed (false). */
#define RUN_UNTIL(loop, expr, timeout_ms)                                             \
	({                                                                            \
		bool ok_ = false;                                                     \
		ev_timer tick_;                                                       \
		ev_timer_init(&tick_, on_tick, 0.01, 0.01);                           \
		ev_timer_start(loop, &tick_);                                         \
		for (th_deadline_t d_ = th_deadline(timeout_ms); !th_expired(&d_);) { \
			if ((expr)) {                                                 \
				ok_ = true;                                           \
				break;                                                \
			}                                                             \
			ev_run(loop, EVRUN_ONCE);                                     \
		}                                                                     \
		ev_timer_stop(loop, &tick_);                                          \
		ok_ || (expr);                                                        \
	})

static struct dc_pg_conn *adapter(struct probe *p, const struct dc_pg_opts *o)
{
	static const struct dc_pg_conn_cbs cbs = {
		.on_up = on_up, .on_down = on_down, .on_readable = on_readable};

	memset(p, 0, sizeof(*p));
	p->o = *o;
	ck_assert_int_eq(dc_pg_conn_new(EV_DEFAULT, &p->o, &cbs, p, &p->c), 0);
	return p->c;
}

/* A cluster, and an adapter connected to it: backoff from backoff_ms to 4 times that. */
static struct th_pg *connected(struct probe *p, uint64_t backoff_ms, uint64_t query_timeout_ms)
{
	struct th_pg *pg = th_pg_start(NULL, NULL);
	struct dc_pg_opts o = {.conninfo = th_pg_conninfo(pg),
			       .masked = "the test cluster",
			       .connect_timeout_ms = 10000,
			       .query_timeout_ms = query_timeout_ms,
			       .backoff_ms = backoff_ms,
			       .backoff_max_ms = 4 * backoff_ms};

	adapter(p, &o);
	dc_pg_conn_start(p->c);
	ck_assert(RUN_UNTIL(EV_DEFAULT, p->ups == 1, 30000));
	return pg;
}

/* Sends a query and runs the loop until its result; 0 or the query's error. */
static int query(struct probe *p, const char *sql, bool prepared, int n, const char *const *params)
{
	int before = p->results,
	    rc = dc_pg_conn_query(p->c, sql, prepared, n, params, on_result, p);

	if (rc != 0)
		return rc;
	ck_assert_msg(RUN_UNTIL(EV_DEFAULT, p->results > before, 30000), "no result for %s", sql);
	return 0;
}

START_TEST(adapter_connects_queries_and_times_out_a_query)
{
	const char *params[] = {"41"};
	struct probe p;
	struct th_pg *pg = connected(&p, 50, 2000);
	struct dc_pg_conn *c = p.c;

	ck_assert(dc_pg_conn_idle(c));
	ck_assert_ptr_nonnull(dc_pg_conn_pg(c));

	ck_assert_int_eq(query(&p, "SELECT $1::int + 1", false, 1, params), 0);
	ck_assert_int_eq(p.status, PGRES_TUPLES_OK);
	ck_assert_str_eq(p.value, "42");

	/* One at a time. */
	ck_assert_int_eq(dc_pg_conn_query(c, "SELECT 1", false, 0, NULL, on_result, &p), 0);
	ck_assert_int_eq(dc_pg_conn_query(c, "SELECT 2", false, 0, NULL, on_result, &p), -EBUSY);
	ck_assert(RUN_UNTIL(EV_DEFAULT, p.results == 2, 30000));
	ck_assert_str_eq(p.value, "1");

	/* An error is the query's outcome; the connection stays. */
	ck_assert_int_eq(query(&p, "SELECT 1/0", false, 0, NULL), 0);
	ck_assert_int_eq(p.status, PGRES_FATAL_ERROR);
	ck_assert_ptr_nonnull(strstr(p.value, "division by zero"));
	ck_assert(dc_pg_conn_idle(c));

	ck_assert_int_eq(dc_pg_conn_prepare(c, "st", "SELECT $1::text || 'x'", on_result, &p), 0);
	ck_assert(RUN_UNTIL(EV_DEFAULT, p.results == 4, 30000));
	ck_assert_int_eq(p.status, PGRES_COMMAND_OK);
	params[0] = "a";
	ck_assert_int_eq(query(&p, "st", true, 1, params), 0);
	ck_assert_str_eq(p.value, "ax");
	ck_assert_int_eq(p.downs, 0);

	/* No answer within query_timeout_ms: lost, the connection reset, then back. */
	ck_assert_int_eq(query(&p, "SELECT pg_sleep(60)", false, 0, NULL), 0);
	ck_assert(p.res_lost);
	ck_assert_str_eq(p.value, "no answer to a query in 2000 ms");
	ck_assert_int_eq(p.downs, 1);
	ck_assert_str_eq(p.why, "no answer to a query in 2000 ms");
	ck_assert(RUN_UNTIL(EV_DEFAULT, p.ups == 2, 30000));
	ck_assert_int_eq(query(&p, "SELECT 'again'", false, 0, NULL), 0);
	ck_assert_str_eq(p.value, "again");

	dc_pg_conn_free(c);
	th_pg_stop(pg);
}
END_TEST

START_TEST(adapter_reconnects_with_backoff_after_a_server_restart)
{
	struct probe p;
	struct th_pg *pg = connected(&p, 100, 0);
	struct dc_pg_conn *c = p.c;

	th_pg_stop(pg);
	/* The loss, then refused attempts, each after at least the first delay. */
	ck_assert(RUN_UNTIL(EV_DEFAULT, p.downs >= 4, 30000));
	ck_assert_msg(strncmp(p.why, "cannot connect: ", 16) == 0, "%s", p.why);
	for (int i = 1; i < 4; i++)
		ck_assert_msg(p.down_at[i] - p.down_at[i - 1] >= 0.09, "attempt %d after %.3f s", i,
			      p.down_at[i] - p.down_at[i - 1]);
	ck_assert_ptr_null(dc_pg_conn_pg(c));
	ck_assert_int_eq(dc_pg_conn_query(c, "SELECT 1", false, 0, NULL, on_result, &p), -EBUSY);

	th_pg_restart(pg);
	ck_assert(RUN_UNTIL(EV_DEFAULT, p.ups == 2, 30000));
	ck_assert_int_eq(query(&p, "SELECT 'back'", false, 0, NULL), 0);
	ck_assert_str_eq(p.value, "back");

	/* Closed: no reconnect, no callback. */
	p.downs = 0;
	dc_pg_conn_close(c);
	ck_assert_ptr_null(dc_pg_conn_pg(c));
	dc_pg_conn_free(c);
	ck_assert_int_eq(p.downs, 0);
	th_pg_stop(pg);
}
END_TEST

START_TEST(adapter_gives_up_a_connect_that_gets_no_answer)
{
	/* A listener that never accepts: the kernel completes the handshake, nobody answers. */
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	char conninfo[128];
	struct dc_pg_opts o = {.conninfo = conninfo,
			       .masked = "a silent port",
			       .connect_timeout_ms = 300,
			       .backoff_ms = 60000,
			       .backoff_max_ms = 60000};
	struct probe p;
	struct dc_pg_conn *c;
	ev_tstamp start;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(conninfo, sizeof(conninfo), "host=127.0.0.1 port=%d dbname=x user=x",
		 ntohs(sa.sin_port));
	c = adapter(&p, &o);
	ev_now_update(EV_DEFAULT);
	start = ev_now(EV_DEFAULT);
	dc_pg_conn_start(c);
	ck_assert(RUN_UNTIL(EV_DEFAULT, p.downs == 1, 30000));
	ck_assert_str_eq(p.why, "cannot connect: no answer in 300 ms");
	ck_assert_msg(p.down_at[0] - start >= 0.29, "gave up after %.3f s", p.down_at[0] - start);
	ck_assert_int_eq(p.ups, 0);
	dc_pg_conn_free(c);
	close(fd);
}
END_TEST

START_TEST(adapter_raw_mode_on_a_replication_connection)
{
	struct probe p;
	struct th_pg *pg = connected(&p, 50, 0);
	struct dc_pg_conn *c = p.c;
	PGresult *r;
	PGconn *conn;

	/* Another connection in place of this one: no on_down. */
	dc_pg_conn_connect(c, true);
	ck_assert(RUN_UNTIL(EV_DEFAULT, p.ups == 2, 30000));
	ck_assert_int_eq(p.downs, 0);
	conn = dc_pg_conn_pg(c);
	ck_assert_int_eq(PQsendQuery(conn, "IDENTIFY_SYSTEM"), 1);
	ck_assert_int_eq(dc_pg_conn_flush(c), 0);
	dc_pg_conn_reading(c, true);
	ck_assert(!dc_pg_conn_idle(c));
	ck_assert(RUN_UNTIL(EV_DEFAULT, p.readable > 0 && !PQisBusy(conn), 30000));
	r = PQgetResult(conn);
	ck_assert_int_eq(PQresultStatus(r), PGRES_TUPLES_OK);
	/* systemid, timeline, xlogpos, dbname: a walsender of this database. */
	ck_assert_int_eq(PQnfields(r), 4);
	ck_assert_str_eq(PQgetvalue(r, 0, 3), "postgres");
	PQclear(r);
	ck_assert_ptr_null(PQgetResult(conn));

	/* A loss in raw mode is reported and repaired like any other. */
	th_pg_restart(pg);
	ck_assert(RUN_UNTIL(EV_DEFAULT, p.downs >= 1 && p.ups >= 3, 30000));
	ck_assert(dc_pg_conn_idle(c));
	dc_pg_conn_free(c);
	th_pg_stop(pg);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pg");
	TCase *tc = tcase_create("cluster");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, cluster_starts_keeps_data_across_restart_and_kill);
	suite_add_tcase(s, tc);
	tc = tcase_create("adapter");
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, adapter_connects_queries_and_times_out_a_query);
	tcase_add_test(tc, adapter_reconnects_with_backoff_after_a_server_restart);
	tcase_add_test(tc, adapter_gives_up_a_connect_that_gets_no_answer);
	tcase_add_test(tc, adapter_raw_mode_on_a_replication_connection);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
