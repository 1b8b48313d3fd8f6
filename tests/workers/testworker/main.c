/*
 * testworker: a worker for the supervisor's tests, built on libev and the IPC
 * library, whose misbehaviour the test chooses.
 *
 * Usage: testworker [-c FILE] [--check] [-h] [-V]
 *
 * Behaviour comes from the [test] section of the connector file and, over
 * that, from environment variables DC_TEST_<KEY> (key upper-cased, e.g.
 * DC_TEST_CRASH_AFTER_MS=300). Other sections ([connector], [danube],
 * [runtime], [route NAME], ...) are ignored; an unknown key in [test] is a
 * "FILE:LINE: message" error (exit 78, or 1 with --check). Keys:
 *
 *   exit_code = N         print the start line, then exit N at once (78: config error)
 *   crash_after_ms = N    crash N ms after start ...
 *   crash_exit = N        ... with this exit status (default 1) ...
 *   crash_signal = N      ... or by this signal (e.g. 9, 11) when set
 *   crash_after_ipc = B   crash right after the IPC socket listens (the nng handshake case)
 *   hang_after_ms = N     stop serving N ms after start: the loop blocks in pause()
 *   ignore_sigterm = B    SIGTERM/SIGINT are logged and ignored
 *   stop_delay_ms = N     on SIGTERM/SIGINT, take N ms to drain before exiting ...
 *   stop_exit = N         ... then exit N (default 0; 75: drain cut short)
 *   ready_after_ms = N    report ready N ms after start (default 0: at once)
 *   never_ready = B       stay "starting" for good
 *   degraded_after_ms = N report degraded ("test degraded") N ms after start
 *   last_error = TEXT     the last error reported in health
 *   stdout_lines = N      write N lines "testworker NAME stdout line I" to stdout
 *   stderr_lines = N      the same to stderr ("... stderr line I")
 *   long_line = N         one stdout line of N 'x' characters (e.g. 10240)
 *   partial_line = TEXT   TEXT on stdout without a newline, written last
 *   topic = NAME RECEIVED PROCESSED [FAILED [RETRIED [DLQ [INFLIGHT]]]]
 *                         counters reported for a topic (repeat the key for more;
 *                         in DC_TEST_TOPIC separate topics with ';'); FAILED counts
 *                         as error_type "external", each processed message took 2 ms,
 *                         all in one batch
 *
 * B is true|false|yes|no|1|0. At start it prints "testworker NAME started pid
 * N" (NAME: $DANUBE_CONNECT_NAME, else the file's stem), and it exits 0 on
 * SIGTERM/SIGINT after printing "testworker NAME stopping".
 */
#include <errno.h>
#include <getopt.h>
#include <ini.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "ipc/ipc.h"
#include "runtime/metrics.h"
#include "log.h"

struct topic_spec {
	char *name;
	uint64_t v[6]; /* received processed failed retried dlq inflight */
};

struct opts {
	long exit_code;
	long crash_after_ms;
	long crash_exit;
	long crash_signal;
	bool crash_after_ipc;
	long hang_after_ms;
	bool ignore_sigterm;
	long stop_delay_ms;
	long stop_exit;
	long ready_after_ms;
	bool never_ready;
	long degraded_after_ms;
	char *last_error;
	long stdout_lines;
	long stderr_lines;
	long long_line;
	char *partial_line;
	struct topic_spec *topics;
	size_t ntopics;
};

/* Where a value came from, for messages: the file and line, or the variable. */
struct parse_ctx {
	struct opts *o;
	const char *where;
	int line;
	FILE *f;
	int errors;
};

static const char *name = "testworker";
static struct opts O = {
	.exit_code = -1,
	.crash_after_ms = -1,
	.crash_exit = 1,
	.hang_after_ms = -1,
	.degraded_after_ms = -1,
	.stop_delay_ms = -1,
};

static void problem(struct parse_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void problem(struct parse_ctx *c, const char *fmt, ...)
{
	va_list ap;

	if (c->line > 0)
		fprintf(stderr, "%s:%d: ", c->where, c->line);
	else
		fprintf(stderr, "%s: ", c->where);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	c->errors++;
}

static bool parse_long(const char *s, long *out)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end)
		return false;
	*out = v;
	return true;
}

static bool parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on", "1"};
	static const char *const no[] = {"false", "no", "off", "0"};

	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
			*out = strcasecmp(s, yes[i]) == 0;
			return true;
		}
	}
	return false;
}

static bool add_topic(struct parse_ctx *c, const char *spec)
{
	struct topic_spec t = {0};
	char *copy = strdup(spec), *save = NULL, *tok;
	struct topic_spec *v;
	int n = 0;

	if (!copy)
		return false;
	tok = strtok_r(copy, " \t", &save);
	if (!tok) {
		free(copy);
		problem(c, "topic needs NAME RECEIVED PROCESSED ...");
		return true;
	}
	t.name = strdup(tok);
	while ((tok = strtok_r(NULL, " \t", &save))) {
		long x;

		if (n == 6 || !parse_long(tok, &x) || x < 0) {
			problem(c, "topic %s: bad counter '%s'", t.name ? t.name : "", tok);
			free(t.name);
			free(copy);
			return true;
		}
		t.v[n++] = (uint64_t)x;
	}
	free(copy);
	if (!t.name)
		return false;
	v = realloc(c->o->topics, (c->o->ntopics + 1) * sizeof(*v));
	if (!v) {
		free(t.name);
		return false;
	}
	c->o->topics = v;
	c->o->topics[c->o->ntopics++] = t;
	return true;
}

static bool set_text(char **slot, const char *v)
{
	free(*slot);
	*slot = strdup(v);
	return *slot != NULL;
}

/* Apply one key; false only when out of memory. */
static bool apply(struct parse_ctx *c, const char *key, const char *v)
{
	static const struct {
		const char *key;
		size_t off;
	} longs[] = {
		{"exit_code", offsetof(struct opts, exit_code)},
		{"crash_after_ms", offsetof(struct opts, crash_after_ms)},
		{"crash_exit", offsetof(struct opts, crash_exit)},
		{"crash_signal", offsetof(struct opts, crash_signal)},
		{"hang_after_ms", offsetof(struct opts, hang_after_ms)},
		{"ready_after_ms", offsetof(struct opts, ready_after_ms)},
		{"degraded_after_ms", offsetof(struct opts, degraded_after_ms)},
		{"stdout_lines", offsetof(struct opts, stdout_lines)},
		{"stderr_lines", offsetof(struct opts, stderr_lines)},
		{"long_line", offsetof(struct opts, long_line)},
		{"stop_delay_ms", offsetof(struct opts, stop_delay_ms)},
		{"stop_exit", offsetof(struct opts, stop_exit)},
	};
	static const struct {
		const char *key;
		size_t off;
	} bools[] = {
		{"crash_after_ipc", offsetof(struct opts, crash_after_ipc)},
		{"ignore_sigterm", offsetof(struct opts, ignore_sigterm)},
		{"never_ready", offsetof(struct opts, never_ready)},
	};

	for (size_t i = 0; i < sizeof(longs) / sizeof(longs[0]); i++) {
		if (strcmp(key, longs[i].key) == 0) {
			if (!parse_long(v, (long *)((char *)c->o + longs[i].off)))
				problem(c, "%s: not an integer: '%s'", key, v);
			return true;
		}
	}
	for (size_t i = 0; i < sizeof(bools) / sizeof(bools[0]); i++) {
		if (strcmp(key, bools[i].key) == 0) {
			if (!parse_bool(v, (bool *)((char *)c->o + bools[i].off)))
				problem(c, "%s: not a boolean: '%s'", key, v);
			return true;
		}
	}
	if (strcmp(key, "last_error") == 0)
		return set_text(&c->o->last_error, v);
	if (strcmp(key, "partial_line") == 0)
		return set_text(&c->o->partial_line, v);
	if (strcmp(key, "topic") == 0)
		return add_topic(c, v);
	problem(c, "unknown key '%s' in [test]", key);
	return true;
}

static int on_ini(void *user, const char *section, const char *key, const char *value)
{
	struct parse_ctx *c = user;

	if (strcmp(section, "test") != 0)
		return 1;
	return apply(c, key, value) ? 1 : 0;
}

/* fgets that counts lines, so every problem gets its own line number. */
static char *read_line(char *str, int num, void *stream)
{
	struct parse_ctx *c = stream;
	char *s = fgets(str, num, c->f);

	if (s)
		c->line++;
	return s;
}

static int load_file(struct parse_ctx *c, const char *path)
{
	int rv;

	c->where = path;
	c->line = 0;
	c->f = fopen(path, "r");
	if (!c->f) {
		fprintf(stderr, "%s: %s\n", path, strerror(errno));
		return -1;
	}
	rv = ini_parse_stream(read_line, c, on_ini, c);
	fclose(c->f);
	c->f = NULL;
	if (rv > 0 && c->errors == 0) {
		fprintf(stderr, "%s:%d: syntax error\n", path, rv);
		return -1;
	}
	if (rv < 0) {
		fprintf(stderr, "%s: out of memory\n", path);
		return -1;
	}
	return c->errors ? -1 : 0;
}

static int load_env(struct parse_ctx *c)
{
	static const char *const keys[] = {
		"exit_code",     "crash_after_ms", "crash_exit",        "crash_signal",
		"hang_after_ms", "ready_after_ms", "degraded_after_ms", "stdout_lines",
		"stderr_lines",  "long_line",      "crash_after_ipc",   "ignore_sigterm",
		"never_ready",   "last_error",     "partial_line",      "stop_delay_ms",
		"stop_exit",
	};
	char var[64];

	c->line = 0;
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		const char *v;
		size_t n = (size_t)snprintf(var, sizeof(var), "DC_TEST_%s", keys[i]);

		for (size_t j = 8; j < n; j++)
			var[j] = (char)(var[j] >= 'a' && var[j] <= 'z' ? var[j] - 32 : var[j]);
		v = getenv(var);
		c->where = var;
		if (v && !apply(c, keys[i], v))
			return -1;
	}
	if (getenv("DC_TEST_TOPIC")) {
		char *all = strdup(getenv("DC_TEST_TOPIC")), *save = NULL;

		if (!all)
			return -1;
		c->where = "DC_TEST_TOPIC";
		for (char *t = strtok_r(all, ";", &save); t; t = strtok_r(NULL, ";", &save)) {
			if (!add_topic(c, t)) {
				free(all);
				return -1;
			}
		}
		free(all);
	}
	return c->errors ? -1 : 0;
}

static void free_opts(struct opts *o)
{
	for (size_t i = 0; i < o->ntopics; i++)
		free(o->topics[i].name);
	free(o->topics);
	free(o->last_error);
	free(o->partial_line);
}

static void say(FILE *f, const char *what)
{
	fprintf(f, "testworker %s %s\n", name, what);
	fflush(f);
}

static void print_lines(void)
{
	for (long i = 1; i <= O.stdout_lines; i++)
		printf("testworker %s stdout line %ld\n", name, i);
	fflush(stdout);
	for (long i = 1; i <= O.stderr_lines; i++)
		fprintf(stderr, "testworker %s stderr line %ld\n", name, i);
	if (O.long_line > 0) {
		for (long i = 0; i < O.long_line; i++)
			putchar('x');
		putchar('\n');
	}
	if (O.partial_line)
		fputs(O.partial_line, stdout);
	fflush(stdout);
}

static void crash(void)
{
	sigset_t all;

	say(stdout, "crashing");
	if (O.crash_signal > 0) {
		signal((int)O.crash_signal, SIG_DFL);
		sigfillset(&all);
		sigprocmask(SIG_UNBLOCK, &all, NULL);
		raise((int)O.crash_signal);
	}
	_exit((int)O.crash_exit);
}

static int register_topics(void)
{
	for (size_t i = 0; i < O.ntopics; i++) {
		const struct topic_spec *s = &O.topics[i];
		struct dc_metrics_topic *t = dc_metrics_topic(s->name);

		if (!t || (s->v[2] && dc_metrics_count_failed(t, "external", s->v[2]) < 0))
			return -1;
		t->received = s->v[0];
		t->processed = s->v[1];
		t->retried = s->v[3];
		t->dlq = s->v[4];
		t->inflight = (int64_t)s->v[5];
		t->duration.buckets[0] = s->v[1]; /* 2 ms each: le=0.005 */
		t->duration.count = s->v[1];
		t->duration.sum = 0.002 * (double)s->v[1];
		if (s->v[1])
			dc_metrics_observe(&t->batch_size, (double)s->v[1]);
	}
	return 0;
}

static void on_crash(struct ev_loop *loop, ev_timer *w, int revents)
{
	crash();
}

static void on_hang(struct ev_loop *loop, ev_timer *w, int revents)
{
	say(stdout, "hanging");
	/* Signal handlers still run (libev's only take note), so nothing else does. */
	for (;;)
		pause();
}

static void on_ready(struct ev_loop *loop, ev_timer *w, int revents)
{
	dc_health_set_state(DC_HEALTH_READY, NULL);
	say(stdout, "ready");
}

static void on_degraded(struct ev_loop *loop, ev_timer *w, int revents)
{
	dc_health_set_state(DC_HEALTH_DEGRADED, "test degraded");
	say(stdout, "degraded");
}

static void start_timer(struct ev_loop *loop, ev_timer *t,
			void (*cb)(struct ev_loop *, ev_timer *, int), long ms);

static void on_drained(struct ev_loop *loop, ev_timer *w, int revents)
{
	say(stdout, "drained");
	ev_break(loop, EVBREAK_ALL);
}

static void on_stop(struct ev_loop *loop, ev_signal *w, int revents)
{
	static ev_timer drain_t;

	if (O.ignore_sigterm) {
		fprintf(stdout, "testworker %s ignoring signal %d\n", name, w->signum);
		fflush(stdout);
		return;
	}
	dc_health_set_state(DC_HEALTH_STOPPING, "signal");
	say(stdout, "stopping");
	if (O.stop_delay_ms > 0) {
		if (!ev_is_active(&drain_t))
			start_timer(loop, &drain_t, on_drained, O.stop_delay_ms);
		return;
	}
	ev_break(loop, EVBREAK_ALL);
}

static void start_timer(struct ev_loop *loop, ev_timer *t,
			void (*cb)(struct ev_loop *, ev_timer *, int), long ms)
{
	if (ms < 0)
		return;
	ev_timer_init(t, cb, (double)ms / 1000.0, 0);
	ev_timer_start(loop, t);
}

static int run(void)
{
	struct ev_loop *loop = ev_default_loop(EVFLAG_AUTO);
	struct dc_ipc *ipc = NULL;
	ev_timer crash_t, hang_t, ready_t, degraded_t;
	ev_signal term_w, int_w;
	sigset_t set;

	if (!loop) {
		fprintf(stderr, "testworker %s: cannot create the event loop\n", name);
		return 1;
	}
	/* nng's threads must not take the signals the loop handles. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigprocmask(SIG_BLOCK, &set, NULL);
	if (dc_ipc_open(&ipc, loop, NULL, dc_health_fill) < 0)
		return 1;
	if (O.crash_after_ipc)
		crash();
	if (register_topics() < 0) {
		fprintf(stderr, "testworker %s: out of memory\n", name);
		dc_ipc_close(ipc);
		dc_metrics_reset();
		return 1;
	}
	if (O.last_error)
		dc_health_set_error(O.last_error);
	dc_health_set_state(DC_HEALTH_STARTING,
			    O.never_ready ? "never_ready is set" : "test start");
	if (!O.never_ready)
		start_timer(loop, &ready_t, on_ready, O.ready_after_ms);
	start_timer(loop, &crash_t, on_crash, O.crash_after_ms);
	start_timer(loop, &hang_t, on_hang, O.hang_after_ms);
	start_timer(loop, &degraded_t, on_degraded, O.degraded_after_ms);
	ev_signal_init(&term_w, on_stop, SIGTERM);
	ev_signal_start(loop, &term_w);
	ev_signal_init(&int_w, on_stop, SIGINT);
	ev_signal_start(loop, &int_w);
	/* libev does not unblock them itself; nng's threads keep them blocked. */
	sigprocmask(SIG_UNBLOCK, &set, NULL);
	ev_run(loop, 0);
	dc_ipc_close(ipc);
	dc_metrics_reset();
	ev_loop_destroy(loop);
	return (int)O.stop_exit;
}

static void usage(FILE *f)
{
	fprintf(f, "Usage: testworker [-c FILE] [--check] [-h] [-V]\n"
		   "A worker for danube-connectd's tests; behaviour from [test] in FILE\n"
		   "and DC_TEST_* variables (see tests/workers/testworker/main.c).\n");
}

static const char *stem(const char *path)
{
	static char buf[256];
	const char *base = strrchr(path, '/');
	char *dot;

	snprintf(buf, sizeof(buf), "%s", base ? base + 1 : path);
	dot = strrchr(buf, '.');
	if (dot && dot != buf)
		*dot = '\0';
	return buf;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{"config", required_argument, NULL, 'c'},
		{"check", no_argument, NULL, 'C'},
		{"help", no_argument, NULL, 'h'},
		{"version", no_argument, NULL, 'V'},
		{NULL, 0, NULL, 0},
	};
	struct parse_ctx ctx = {.o = &O};
	const char *file = NULL;
	bool check = false;
	int opt, rc;

	while ((opt = getopt_long(argc, argv, "c:hV", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c':
			file = optarg;
			break;
		case 'C':
			check = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("testworker %s\n", DC_VERSION);
			return 0;
		default:
			usage(stderr);
			return 64;
		}
	}
	if (optind < argc) {
		usage(stderr);
		return 64;
	}
	if (getenv("DANUBE_CONNECT_NAME") && *getenv("DANUBE_CONNECT_NAME"))
		name = getenv("DANUBE_CONNECT_NAME");
	else if (file)
		name = stem(file);
	if ((file && load_file(&ctx, file) < 0) || load_env(&ctx) < 0) {
		free_opts(&O);
		return check ? 1 : 78;
	}
	if (check) {
		free_opts(&O);
		return 0;
	}
	dc_log_open(name, 0, false, true);
	printf("testworker %s started pid %d\n", name, (int)getpid());
	fflush(stdout);
	if (O.exit_code >= 0) {
		free_opts(&O);
		return (int)O.exit_code;
	}
	print_lines();
	rc = run();
	free_opts(&O);
	return rc;
}
