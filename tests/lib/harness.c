/*
 * The integration-test harness: processes in temp dirs, deadlines, output
 * capture, and cleanup that also runs when a test fails.
 */
#include "harness.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_PROCS 256
#define MAX_DIRS  64

struct th_proc {
	pid_t pid;
	bool reaped;
	int status;
	char log[4096];
};

static struct {
	bool inited;
	pid_t owner; /* cleanup only in the process that registered */
	struct th_proc *procs[MAX_PROCS];
	size_t nprocs;
	char *dirs[MAX_DIRS];
	size_t ndirs;
	unsigned spawn_seq;
} H;

static unsigned long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned long long)ts.tv_sec * 1000ull +
	       (unsigned long long)ts.tv_nsec / 1000000ull;
}

static void harness_init(void)
{
	if (H.inited && H.owner == getpid())
		return;
	/* A forked test process starts with a copy of the parent's tables: forget them. */
	memset(&H, 0, sizeof(H));
	H.inited = true;
	H.owner = getpid();
	/* Orphaned grandchildren (a killed supervisor's workers) come back to us. */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	atexit(th_cleanup_all);
}

static const char *env_or(const char *name, const char *def)
{
	const char *v = getenv(name);

	return v && *v ? v : def;
}

const char *th_build_dir(void)
{
	return env_or("DC_BUILD_DIR", "build");
}

const char *th_src_dir(void)
{
	return env_or("DC_SRC_DIR", ".");
}

const char *th_python(void)
{
	return env_or("DC_PYTHON", "/usr/bin/python3");
}

static const char *join_rotating(const char *a, const char *b)
{
	static char bufs[8][4096];
	static unsigned next;
	char *out = bufs[next++ % 8];

	snprintf(out, sizeof(bufs[0]), "%s/%s", a, b);
	return out;
}

const char *th_build_path(const char *rel)
{
	return join_rotating(th_build_dir(), rel);
}

const char *th_src_path(const char *rel)
{
	return join_rotating(th_src_dir(), rel);
}

const char *th_tmpdir(void)
{
	char tmpl[4096];
	char *d;

	harness_init();
	snprintf(tmpl, sizeof(tmpl), "%s/dc-test-XXXXXX", env_or("TMPDIR", "/tmp"));
	d = mkdtemp(tmpl);
	ck_assert_msg(d != NULL, "mkdtemp %s: %s", tmpl, strerror(errno));
	/* Servers started by tests may drop privileges (PostgreSQL): let them in. */
	chmod(d, 0777);
	ck_assert_msg(H.ndirs < MAX_DIRS, "too many temp dirs");
	H.dirs[H.ndirs] = strdup(d);
	ck_assert(H.dirs[H.ndirs] != NULL);
	return H.dirs[H.ndirs++];
}

int th_free_port(void)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int port;

	ck_assert_msg(fd >= 0, "socket: %s", strerror(errno));
	ck_assert_msg(bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "bind: %s",
		      strerror(errno));
	ck_assert(getsockname(fd, (struct sockaddr *)&sa, &len) == 0);
	port = ntohs(sa.sin_port);
	close(fd);
	return port;
}

/*
 * DC_VALGRIND=1 runs our own programs (those under the build dir) under
 * valgrind's leak checker; a leak or memory error makes them exit 99.
 */
static bool under_valgrind(const char *path)
{
	const char *v = getenv("DC_VALGRIND");
	const char *b = getenv("DC_BUILD_DIR");

	return v && *v == '1' && b && strncmp(path, b, strlen(b)) == 0;
}

static void child_exec(const char *cwd, const char *log, char *const argv[], char *const env[],
		       int in_fd)
{
	sigset_t none;
	int fd;

	setpgid(0, 0);
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	for (int s = 1; s < NSIG; s++)
		signal(s, SIG_DFL);
	if (cwd && chdir(cwd) != 0)
		_exit(126);
	if (in_fd < 0)
		in_fd = open("/dev/null", O_RDONLY);
	if (in_fd >= 0 && in_fd != STDIN_FILENO) {
		dup2(in_fd, STDIN_FILENO);
		close(in_fd);
	}
	fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0)
		_exit(126);
	dup2(fd, STDOUT_FILENO);
	dup2(fd, STDERR_FILENO);
	if (fd > STDERR_FILENO)
		close(fd);
	for (size_t i = 0; env && env[i]; i++)
		putenv(env[i]);
	if (under_valgrind(argv[0])) {
		char *vargv[64], supp[4200];
		size_t n = 0;

		/* Leaks inside libraries we cannot fix, each with its evidence. */
		snprintf(supp, sizeof(supp), "--suppressions=%s",
			 th_src_path("tests/valgrind.supp"));

		vargv[n++] = "/usr/bin/valgrind";
		vargv[n++] = "--quiet";
		vargv[n++] = "--leak-check=full";
		vargv[n++] = "--show-leak-kinds=definite,indirect";
		vargv[n++] = "--errors-for-leak-kinds=definite,indirect";
		vargv[n++] = "--error-exitcode=99";
		vargv[n++] = supp;
		vargv[n++] = "--trace-children=no";
		for (size_t i = 0; argv[i] && n < 63; i++)
			vargv[n++] = argv[i];
		vargv[n] = NULL;
		execv(vargv[0], vargv);
	}
	execv(argv[0], argv);
	dprintf(STDERR_FILENO, "exec %s: %s\n", argv[0], strerror(errno));
	_exit(127);
}

struct th_proc *th_spawn(const char *cwd, char *const argv[], char *const env[])
{
	struct th_proc *p;
	const char *base;
	pid_t pid;

	harness_init();
	ck_assert_msg(H.nprocs < MAX_PROCS, "too many processes");
	p = calloc(1, sizeof(*p));
	ck_assert(p != NULL);
	base = strrchr(argv[0], '/');
	base = base ? base + 1 : argv[0];
	snprintf(p->log, sizeof(p->log), "%s/%s.%u.log", cwd ? cwd : th_tmpdir(), base,
		 H.spawn_seq++);
	pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0)
		child_exec(cwd, p->log, argv, env, -1);
	setpgid(pid, pid); /* also from here, so the group exists when we return */
	p->pid = pid;
	H.procs[H.nprocs++] = p;
	return p;
}

pid_t th_proc_pid(const struct th_proc *p)
{
	return p->pid;
}

const char *th_proc_log_path(const struct th_proc *p)
{
	return p->log;
}

char *th_read_file(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t len = 0, cap = 0, n;

	if (!f)
		return NULL;
	for (;;) {
		if (cap - len < 65536) {
			char *nb;

			cap = cap ? cap * 2 : 65536;
			nb = realloc(buf, cap + 1);
			if (!nb) {
				free(buf);
				fclose(f);
				return NULL;
			}
			buf = nb;
		}
		n = fread(buf + len, 1, cap - len, f);
		len += n;
		if (n == 0)
			break;
	}
	fclose(f);
	buf[len] = '\0';
	return buf;
}

char *th_proc_output(const struct th_proc *p)
{
	char *s = th_read_file(p->log);

	return s ? s : strdup("");
}

bool th_proc_output_contains(const struct th_proc *p, const char *needle)
{
	char *s = th_proc_output(p);
	bool found = s && strstr(s, needle) != NULL;

	free(s);
	return found;
}

int th_proc_output_count(const struct th_proc *p, const char *needle)
{
	char *s = th_proc_output(p);
	int n = 0;
	size_t nl = strlen(needle);

	for (const char *q = s; nl && q && (q = strstr(q, needle)) != NULL; q += nl)
		n++;
	free(s);
	return n;
}

static bool try_reap(struct th_proc *p, bool block)
{
	int st;
	pid_t r;

	if (p->reaped)
		return true;
	do {
		r = waitpid(p->pid, &st, block ? 0 : WNOHANG);
	} while (r < 0 && errno == EINTR);
	if (r == p->pid) {
		p->reaped = true;
		p->status = st;
		return true;
	}
	if (r < 0 && errno == ECHILD) {
		p->reaped = true;
		p->status = 0;
		return true;
	}
	return false;
}

bool th_proc_running(struct th_proc *p)
{
	return !try_reap(p, false);
}

int th_proc_kill(struct th_proc *p, int sig)
{
	if (p->reaped)
		return -1;
	return kill(p->pid, sig);
}

bool th_proc_wait(struct th_proc *p, int timeout_ms, int *status)
{
	bool done = TH_WAIT(try_reap(p, false), timeout_ms);

	if (done && status)
		*status = p->status;
	return done;
}

/* A process's state letter and process group, from /proc/PID/stat. */
static bool proc_stat(const char *pid, char *state, int *pgrp)
{
	char path[300], buf[512];
	FILE *f;
	char *rp;
	int ppid;

	snprintf(path, sizeof(path), "/proc/%s/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return false;
	}
	fclose(f);
	rp = strrchr(buf, ')');
	return rp && sscanf(rp + 2, "%c %d %d", state, &ppid, pgrp) == 3;
}

/* A job-control stop signal (SIGSTOP, SIGTSTP, SIGTTIN, SIGTTOU) sent and not yet taken. */
static bool stop_pending(const char *pid)
{
	const unsigned long long stops = (1ull << (SIGSTOP - 1)) | (1ull << (SIGTSTP - 1)) |
					 (1ull << (SIGTTIN - 1)) | (1ull << (SIGTTOU - 1));
	char path[300], line[256];
	unsigned long long pend = 0;
	bool found = false;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%s/status", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	while (!found && fgets(line, sizeof(line), f))
		found = sscanf(line, "ShdPnd: %llx", &pend) == 1;
	fclose(f);
	return (pend & stops) != 0;
}

/* Whether a member of process group pgid is stopped or about to stop. */
static bool group_stopped(pid_t pgid)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	bool stopped = false;

	if (!d)
		return true; /* cannot tell: resume it to be safe */
	while (!stopped && (e = readdir(d)) != NULL) {
		char state;
		int pgrp;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		if (!proc_stat(e->d_name, &state, &pgrp) || pgrp != pgid)
			continue;
		/* A stop signal leaves the pending set as the process stops: look again after. */
		stopped = state == 'T' || stop_pending(e->d_name) ||
			  (proc_stat(e->d_name, &state, &pgrp) && state == 'T');
	}
	closedir(d);
	return stopped;
}

int th_proc_stop(struct th_proc *p, int sig, int timeout_ms)
{
	if (!p->reaped) {
		/*
		 * SIGCONT discards every pending SIGSTOP, also the one
		 * LeakSanitizer's exit-time check sends to each thread it
		 * attaches (PTRACE_ATTACH): its tracer then waits for that stop
		 * forever. So only a stopped group gets one, and before sig, so
		 * it cannot reach a process that sig made exit.
		 */
		if (group_stopped(p->pid))
			kill(-p->pid, SIGCONT);
		kill(-p->pid, sig);
		if (!th_proc_wait(p, timeout_ms, NULL)) {
			kill(-p->pid, SIGKILL);
			try_reap(p, true);
		}
	}
	return p->status;
}

static int run_common(char *const argv[], const char *input, char **out, int timeout_ms)
{
	char path[] = "/tmp/dc-run-XXXXXX";
	int in_pipe[2] = {-1, -1};
	int outfd = mkstemp(path);
	int st = 0, rc;
	pid_t pid;
	bool done;

	harness_init();
	ck_assert_msg(outfd >= 0, "mkstemp: %s", strerror(errno));
	close(outfd);
	if (input)
		ck_assert(pipe(in_pipe) == 0);
	pid = fork();
	ck_assert_msg(pid >= 0, "fork: %s", strerror(errno));
	if (pid == 0) {
		if (in_pipe[1] >= 0)
			close(in_pipe[1]);
		child_exec(NULL, path, argv, NULL, in_pipe[0]);
	}
	setpgid(pid, pid);
	if (input) {
		size_t len = strlen(input), off = 0;

		close(in_pipe[0]);
		signal(SIGPIPE, SIG_IGN);
		while (off < len) {
			ssize_t n = write(in_pipe[1], input + off, len - off);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0)
				break;
			off += (size_t)n;
		}
		close(in_pipe[1]);
	}
	done = TH_WAIT(waitpid(pid, &st, WNOHANG) == pid, timeout_ms);
	if (!done) {
		kill(-pid, SIGKILL);
		waitpid(pid, &st, 0);
		rc = -1;
	} else if (WIFEXITED(st)) {
		rc = WEXITSTATUS(st);
	} else {
		rc = 128 + WTERMSIG(st);
	}
	if (out) {
		*out = th_read_file(path);
		if (!*out)
			*out = strdup("");
	}
	unlink(path);
	return rc;
}

int th_run(char *const argv[], char **out, int timeout_ms)
{
	return run_common(argv, NULL, out, timeout_ms);
}

int th_run_input(char *const argv[], const char *input, char **out, int timeout_ms)
{
	return run_common(argv, input ? input : "", out, timeout_ms);
}

/*
 * CK_TIMEOUT_MULTIPLIER, Check's own knob for a slow machine (make soak sets
 * it), stretches the tests' deadlines as it stretches Check's timeouts.
 */
static unsigned long long deadline_scale(void)
{
	static unsigned long long scale;
	const char *s;

	if (!scale) {
		s = getenv("CK_TIMEOUT_MULTIPLIER");
		scale = s && atoi(s) > 1 ? (unsigned long long)atoi(s) : 1;
	}
	return scale;
}

th_deadline_t th_deadline(int timeout_ms)
{
	unsigned long long ms = (unsigned long long)(timeout_ms > 0 ? timeout_ms : 0);
	th_deadline_t d = {.end_ms = now_ms() + ms * deadline_scale(), .sleep_ms = 10};

	return d;
}

bool th_expired(const th_deadline_t *d)
{
	return now_ms() >= d->end_ms;
}

void th_pause(th_deadline_t *d)
{
	unsigned long long now = now_ms();
	unsigned ms = d->sleep_ms;

	if (now >= d->end_ms)
		return;
	if (now + ms > d->end_ms)
		ms = (unsigned)(d->end_ms - now);
	poll(NULL, 0, (int)ms);
	if (d->sleep_ms < 100)
		d->sleep_ms += 10;
}

bool th_wait_for(th_cond_fn fn, void *arg, int timeout_ms)
{
	return TH_WAIT(fn(arg), timeout_ms);
}

bool th_wait_progress(th_count_fn count, void *arg, long long want, int stall_ms)
{
	long long last = count(arg), now;

	while (last < want) {
		th_deadline_t d = th_deadline(stall_ms);

		for (;; th_pause(&d)) {
			now = count(arg);
			if (now != last)
				break;
			if (th_expired(&d))
				return false;
		}
		last = now;
	}
	return true;
}

unsigned long th_scale(unsigned long n, unsigned long soak)
{
	const char *v = getenv("DC_SOAK");

	return v && strcmp(v, "1") == 0 ? soak : n;
}

static bool port_open(int port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET,
				 .sin_port = htons((uint16_t)port),
				 .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool ok;

	if (fd < 0)
		return false;
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
	close(fd);
	return ok;
}

bool th_wait_port(int port, int timeout_ms)
{
	return TH_WAIT(port_open(port), timeout_ms);
}

static bool file_contains(const char *path, const char *needle)
{
	char *s = th_read_file(path);
	bool found = s && strstr(s, needle) != NULL;

	free(s);
	return found;
}

bool th_wait_file_contains(const char *path, const char *needle, int timeout_ms)
{
	return TH_WAIT(file_contains(path, needle), timeout_ms);
}

int th_write_file(const char *path, const char *fmt, ...)
{
	FILE *f = fopen(path, "w");
	va_list ap;
	int rc;

	if (!f)
		return -1;
	va_start(ap, fmt);
	rc = vfprintf(f, fmt, ap) < 0 ? -1 : 0;
	va_end(ap);
	if (fclose(f) != 0)
		rc = -1;
	return rc;
}

/* Every direct child of ours, registered or adopted as an orphan. */
static size_t list_children(pid_t *out, size_t max)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t self = getpid();
	size_t n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL && n < max) {
		char path[300], buf[512];
		FILE *f;
		char *rp;
		int ppid;

		if (e->d_name[0] < '0' || e->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", e->d_name);
		f = fopen(path, "r");
		if (!f)
			continue;
		if (!fgets(buf, sizeof(buf), f)) {
			fclose(f);
			continue;
		}
		fclose(f);
		rp = strrchr(buf, ')');
		if (rp && sscanf(rp + 2, "%*c %d", &ppid) == 1 && ppid == self)
			out[n++] = (pid_t)atoi(e->d_name);
	}
	closedir(d);
	return n;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	(void)sb;
	(void)flag;
	(void)ftw;
	remove(path);
	return 0;
}

void th_cleanup_all(void)
{
	pid_t kids[1024];
	size_t n;

	if (!H.inited || H.owner != getpid())
		return;
	for (size_t i = 0; i < H.nprocs; i++) {
		struct th_proc *p = H.procs[i];

		if (!p->reaped) {
			kill(-p->pid, SIGKILL);
			kill(p->pid, SIGKILL);
		}
	}
	/* Orphans reparented to us, and anything else still our child: kill and reap. */
	for (int round = 0; round < 50; round++) {
		n = list_children(kids, sizeof(kids) / sizeof(kids[0]));
		if (n == 0)
			break;
		for (size_t i = 0; i < n; i++) {
			kill(-kids[i], SIGKILL);
			kill(kids[i], SIGKILL);
		}
		for (size_t i = 0; i < n; i++)
			waitpid(kids[i], NULL, 0);
	}
	for (size_t i = 0; i < H.nprocs; i++) {
		try_reap(H.procs[i], false);
		free(H.procs[i]);
	}
	H.nprocs = 0;
	if (!getenv("DC_KEEP_TMP")) {
		for (size_t i = 0; i < H.ndirs; i++)
			nftw(H.dirs[i], rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
	for (size_t i = 0; i < H.ndirs; i++)
		free(H.dirs[i]);
	H.ndirs = 0;
}

int th_main(Suite *(*fn)(void))
{
	char base[] = "/tmp/dc-tests-XXXXXX";
	SRunner *sr;
	int failed;

	/*
	 * A failed ck_assert ends the forked test with _exit(): no atexit
	 * cleanup there. Its children die with it (PDEATHSIG); whatever they
	 * left behind is reparented to this runner (a subreaper), and every
	 * temp dir lives under one base removed here.
	 */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	if (mkdtemp(base) != NULL) {
		chmod(base, 0777);
		setenv("TMPDIR", base, 1);
	}
	/* Integration tests set their own; Check's default of 4 s suits neither. */
	setenv("CK_DEFAULT_TIMEOUT",
	       getenv("CK_DEFAULT_TIMEOUT") ? getenv("CK_DEFAULT_TIMEOUT") : "120", 1);
	sr = srunner_create(fn());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	H.inited = true;
	H.owner = getpid();
	th_cleanup_all();
	if (base[0] && !getenv("DC_KEEP_TMP"))
		nftw(base, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	return failed == 0 ? 0 : 1;
}

int th_exit_code(int status)
{
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

bool th_proc_clean(const struct th_proc *p)
{
	return !th_proc_output_contains(p, "Sanitizer") &&
	       !th_proc_output_contains(p, "runtime error:");
}
