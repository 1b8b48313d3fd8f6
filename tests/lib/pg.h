/*
 * A throwaway PostgreSQL cluster for integration tests and benchmarks: initdb
 * in a temp dir, the postmaster on a free 127.0.0.1 port with logical
 * replication enabled, trust authentication, superuser "postgres". Run as
 * root (CI), the cluster belongs to the unprivileged user "nobody".
 */
#ifndef DC_TEST_PG_H
#define DC_TEST_PG_H

#include <stdbool.h>

struct th_pg;

/*
 * Creates and starts a cluster in dir/pg (dir: th_tmpdir() when NULL) and
 * waits until it accepts connections; aborts the test on failure. extra is
 * NULL or NULL-terminated "name=value" server settings (e.g. "fsync=on").
 * Tests run with fsync=off unless extra says otherwise.
 */
struct th_pg *th_pg_start(const char *dir, const char *const *extra);

int th_pg_port(const struct th_pg *pg);
/* "host=127.0.0.1 port=N dbname=postgres user=postgres" */
const char *th_pg_conninfo(const struct th_pg *pg);
/* Everything the postmaster logged so far (caller frees). */
char *th_pg_log(const struct th_pg *pg);

/*
 * Runs SQL (one or more statements) on a fresh connection. th_pg_exec
 * aborts the test when it fails; th_pg_try returns 0, or -1 with the
 * server's message in *err (caller frees; err may be NULL).
 */
void th_pg_exec(struct th_pg *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int th_pg_try(struct th_pg *pg, char **err, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
/*
 * The first column of the first row the query returned, as a string
 * (caller frees; NULL for SQL NULL or no row); aborts the test on error.
 */
char *th_pg_value(struct th_pg *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The same, as a number (-1 for NULL or no row). */
long long th_pg_long(struct th_pg *pg, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

bool th_pg_running(struct th_pg *pg);
/* Fast shutdown (SIGINT), waits for the postmaster to exit. */
void th_pg_stop(struct th_pg *pg);
/* SIGKILL the postmaster and its backends: crash recovery on the next start. */
void th_pg_kill(struct th_pg *pg);
/* Stops it if running, then starts it again on the same port and data. */
void th_pg_restart(struct th_pg *pg);

#endif
