/* A throwaway PostgreSQL cluster per test: initdb, start, SQL helpers, stop, kill, restart. */
#include <dirent.h>
#include <errno.h>
#include <libpq-fe.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "harness.h"
#include "pg.h"

#define PG_BINDIR_DEFAULT "/usr/lib/postgresql/15/bin"
#define MAX_EXTRA         16

struct th_pg {
	char dir[512];  /* the cluster's parent dir (logs) */
	char data[600]; /* dir/pg */
	char conninfo[160];
	char bindir[256];
	char uid[32], gid[32]; /* setpriv ids when run as root, else empty */
	const char *extra[MAX_EXTRA];
	int port;
	struct th_proc *proc;
};

static struct th_pg slots[4];
static size_t nslots;

/* The newest installed server, unless DC_PG_BINDIR says where. */
static void find_bindir(struct th_pg *pg)
{
	const char *env = getenv("DC_PG_BINDIR");
	char path[300];

	if (env && *env) {
		snprintf(pg->bindir, sizeof(pg->bindir), "%s", env);
		return;
	}
	for (int v = 20; v >= 11; v--) {
		snprintf(path, sizeof(path), "/usr/lib/postgresql/%d/bin/postgres", v);
		if (access(path, X_OK) == 0) {
			snprintf(pg->bindir, sizeof(pg->bindir), "/usr/lib/postgresql/%d/bin", v);
			return;
		}
	}
	snprintf(pg->bindir, sizeof(pg->bindir), "%s", PG_BINDIR_DEFAULT);
}

/*
 * argv for a server program: PostgreSQL refuses to run as root, so under
 * root it runs through setpriv as nobody (setpriv execs, the pid stays ours
 * to signal and reap).
 */
static size_t prefix(const struct th_pg *pg, char **argv)
{
	size_t n = 0;

	if (pg->uid[0]) {
		argv[n++] = "/usr/bin/setpriv";
		argv[n++] = (char *)pg->uid;
		argv[n++] = (char *)pg->gid;
		argv[n++] = "--clear-groups";
		argv[n++] = "--";
	}
	return n;
}

static void launch(struct th_pg *pg)
{
	char *argv[32 + 2 * MAX_EXTRA], prog[300], port[16];
	size_t n = prefix(pg, argv);

	snprintf(prog, sizeof(prog), "%s/postgres", pg->bindir);
	snprintf(port, sizeof(port), "%d", pg->port);
	argv[n++] = prog;
	argv[n++] = "-D";
	argv[n++] = pg->data;
	argv[n++] = "-p";
	argv[n++] = port;
	/* No unix socket: temp paths can exceed sun_path, and tests use TCP. */
	argv[n++] = "-c";
	argv[n++] = "unix_socket_directories=";
	argv[n++] = "-c";
	argv[n++] = "listen_addresses=127.0.0.1";
	argv[n++] = "-c";
	argv[n++] = "wal_level=logical";
	argv[n++] = "-c";
	argv[n++] = "max_wal_senders=10";
	argv[n++] = "-c";
	argv[n++] = "max_replication_slots=10";
	argv[n++] = "-c";
	argv[n++] = "fsync=off";
	argv[n++] = "-c";
	argv[n++] = "full_page_writes=off";
	for (size_t i = 0; i < MAX_EXTRA && pg->extra[i]; i++) {
		argv[n++] = "-c";
		argv[n++] = (char *)pg->extra[i];
	}
	argv[n] = NULL;
	/*
	 * After a crash the kernel may still count the old backends' attachments
	 * to the shared memory segment for a moment (they are reaped by the
	 * runner, not by us): PostgreSQL then refuses to start. Try again.
	 */
	for (th_deadline_t d = th_deadline(15000);; th_pause(&d)) {
		pg->proc = th_spawn(pg->dir, argv, NULL);
		ck_assert_msg(
			TH_WAIT(PQping(pg->conninfo) == PQPING_OK || !th_proc_running(pg->proc),
				30000),
			"postgres did not accept connections on %d", pg->port);
		if (th_proc_running(pg->proc) ||
		    !th_proc_output_contains(pg->proc, "pre-existing shared memory block") ||
		    th_expired(&d))
			break;
	}
	ck_assert_msg(th_proc_running(pg->proc), "postgres exited:\n%s", th_proc_output(pg->proc));
}

static void initdb(struct th_pg *pg)
{
	char *argv[32], prog[300], *out = NULL;
	size_t n = prefix(pg, argv);
	int rc;

	snprintf(prog, sizeof(prog), "%s/initdb", pg->bindir);
	argv[n++] = prog;
	argv[n++] = "-D";
	argv[n++] = pg->data;
	argv[n++] = "-U";
	argv[n++] = "postgres";
	argv[n++] = "--auth=trust";
	argv[n++] = "--encoding=UTF8";
	argv[n++] = "--locale=C";
	argv[n++] = "--no-sync";
	argv[n] = NULL;
	rc = th_run(argv, &out, 60000);
	ck_assert_msg(rc == 0, "initdb exited %d:\n%s", rc, out ? out : "");
	free(out);
}

struct th_pg *th_pg_start(const char *dir, const char *const *extra)
{
	const struct passwd *pw;
	struct th_pg *pg;

	ck_assert_msg(nslots < sizeof(slots) / sizeof(slots[0]), "too many PostgreSQL clusters");
	pg = &slots[nslots++];
	memset(pg, 0, sizeof(*pg));
	dir = dir ? dir : th_tmpdir();
	ck_assert(strlen(dir) + 4 < sizeof(pg->dir));
	snprintf(pg->dir, sizeof(pg->dir), "%s", dir);
	snprintf(pg->data, sizeof(pg->data), "%s/pg", dir);
	for (size_t i = 0; extra && extra[i]; i++) {
		ck_assert_msg(i < MAX_EXTRA - 1, "too many server settings");
		pg->extra[i] = extra[i];
	}
	find_bindir(pg);
	ck_assert_msg(mkdir(pg->data, 0700) == 0, "mkdir %s: %s", pg->data, strerror(errno));
	if (geteuid() == 0) {
		pw = getpwnam("nobody");
		ck_assert_msg(pw != NULL, "no user nobody to run PostgreSQL as");
		ck_assert_msg(chown(pg->data, pw->pw_uid, pw->pw_gid) == 0, "chown %s: %s",
			      pg->data, strerror(errno));
		snprintf(pg->uid, sizeof(pg->uid), "--reuid=%u", (unsigned)pw->pw_uid);
		snprintf(pg->gid, sizeof(pg->gid), "--regid=%u", (unsigned)pw->pw_gid);
	}
	initdb(pg);
	pg->port = th_free_port();
	snprintf(pg->conninfo, sizeof(pg->conninfo),
		 "host=127.0.0.1 port=%d dbname=postgres user=postgres connect_timeout=20",
		 pg->port);
	launch(pg);
	return pg;
}

int th_pg_port(const struct th_pg *pg)
{
	return pg->port;
}

const char *th_pg_conninfo(const struct th_pg *pg)
{
	return pg->conninfo;
}

char *th_pg_log(const struct th_pg *pg)
{
	return pg->proc ? th_proc_output(pg->proc) : strdup("");
}

/* Runs sql; returns the last result (caller clears) or NULL with *err set. */
static PGresult *run(struct th_pg *pg, const char *sql, char **err)
{
	PGconn *c = PQconnectdb(pg->conninfo);
	PGresult *res = NULL, *r;
	bool failed = false;

	if (PQstatus(c) != CONNECTION_OK) {
		*err = strdup(PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	if (!PQsendQuery(c, sql)) {
		*err = strdup(PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	/* Several statements: keep the last result, fail on any error. */
	while ((r = PQgetResult(c)) != NULL) {
		ExecStatusType st = PQresultStatus(r);

		if (!failed && st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK &&
		    st != PGRES_EMPTY_QUERY) {
			failed = true;
			*err = strdup(PQresultErrorMessage(r));
		}
		PQclear(res);
		res = r;
	}
	PQfinish(c);
	if (failed) {
		PQclear(res);
		return NULL;
	}
	if (!res)
		res = PQmakeEmptyPGresult(NULL, PGRES_EMPTY_QUERY);
	return res;
}

static char *format(const char *fmt, va_list ap)
{
	char *sql = NULL;

	ck_assert(vasprintf(&sql, fmt, ap) >= 0);
	return sql;
}

static PGresult *run_or_fail(struct th_pg *pg, const char *fmt, va_list ap)
{
	char *sql = format(fmt, ap), *err = NULL;
	PGresult *res = run(pg, sql, &err);

	ck_assert_msg(res != NULL, "SQL failed: %s\n%s", sql, err ? err : "");
	free(sql);
	return res;
}

void th_pg_exec(struct th_pg *pg, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	PQclear(run_or_fail(pg, fmt, ap));
	va_end(ap);
}

int th_pg_try(struct th_pg *pg, char **err, const char *fmt, ...)
{
	char *sql, *e = NULL;
	PGresult *res;
	va_list ap;

	va_start(ap, fmt);
	sql = format(fmt, ap);
	va_end(ap);
	res = run(pg, sql, &e);
	free(sql);
	if (err)
		*err = e;
	else
		free(e);
	if (!res)
		return -1;
	PQclear(res);
	return 0;
}

static char *first_value(PGresult *res)
{
	char *v = NULL;

	if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) > 0 && PQnfields(res) > 0 &&
	    !PQgetisnull(res, 0, 0)) {
		v = strdup(PQgetvalue(res, 0, 0));
		ck_assert(v != NULL);
	}
	PQclear(res);
	return v;
}

char *th_pg_value(struct th_pg *pg, const char *fmt, ...)
{
	PGresult *res;
	va_list ap;

	va_start(ap, fmt);
	res = run_or_fail(pg, fmt, ap);
	va_end(ap);
	return first_value(res);
}

long long th_pg_long(struct th_pg *pg, const char *fmt, ...)
{
	long long n = -1;
	PGresult *res;
	va_list ap;
	char *v;

	va_start(ap, fmt);
	res = run_or_fail(pg, fmt, ap);
	va_end(ap);
	v = first_value(res);
	if (v)
		n = strtoll(v, NULL, 10);
	free(v);
	return n;
}

bool th_pg_running(struct th_pg *pg)
{
	return pg->proc && th_proc_running(pg->proc);
}

void th_pg_stop(struct th_pg *pg)
{
	int status;

	if (!th_pg_running(pg))
		return;
	/* SIGINT is PostgreSQL's fast shutdown: sessions are cut, data is checkpointed. */
	th_proc_kill(pg->proc, SIGINT);
	if (!th_proc_wait(pg->proc, 30000, &status))
		th_proc_stop(pg->proc, SIGKILL, 5000);
}

/* A process of group pgid that has not exited yet (zombies have released everything). */
static bool group_alive(pid_t pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	bool alive = false;

	if (!d)
		return false;
	while (!alive && (e = readdir(d)) != NULL) {
		char path[300], buf[512], state;
		const char *end;
		long pgrp;
		FILE *f;
		size_t n;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		if (!(f = fopen(path, "r")))
			continue;
		n = fread(buf, 1, sizeof(buf) - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* "pid (comm) state ppid pgrp ...": read from the last ')' on. */
		end = strrchr(buf, ')');
		if (end && sscanf(end + 1, " %c %*d %ld", &state, &pgrp) == 2 && pgrp == pgid &&
		    state != 'Z' && state != 'X')
			alive = true;
	}
	closedir(d);
	return alive;
}

void th_pg_kill(struct th_pg *pg)
{
	pid_t pgid;

	if (!th_pg_running(pg))
		return;
	pgid = th_proc_pid(pg->proc);
	/* The whole group: backends too, or they would hold the port and shared memory. */
	th_proc_stop(pg->proc, SIGKILL, 5000);
	/* Backends still dying hold the shared memory: a restart now would fail. */
	ck_assert_msg(TH_WAIT(!group_alive(pgid), 10000), "PostgreSQL backends outlived SIGKILL");
}

void th_pg_restart(struct th_pg *pg)
{
	th_pg_stop(pg);
	launch(pg);
}
