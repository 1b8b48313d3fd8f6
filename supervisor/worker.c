/*
 * One worker's life: carries out what dc_fsm_step() decides (spawn, signal,
 * timers), turns exits, timers and health answers into events, and forwards
 * the worker's output line by line.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include <nng/nng.h>
#include <pb_decode.h>

#include "clock.h"
#include "exit_codes.h"
#include "health.h"
#include "log.h"
#include "output.h"
#include "spawn.h"
#include "supd.h"
#include "syslog_fwd.h"

enum { TAG_STDOUT = 1, TAG_STDERR = 2 };

static char *xstrdup_or_null(const char *s)
{
	return s != NULL ? strdup(s) : NULL;
}

int dc_conn_spec_copy(struct dc_conn_spec *dst, const struct dc_conn_spec *src)
{
	memset(dst, 0, sizeof(*dst));
	dst->name = strdup(src->name);
	dst->path = strdup(src->path);
	dst->type = xstrdup_or_null(src->type);
	dst->type_where = xstrdup_or_null(src->type_where);
	dst->enabled = src->enabled;
	dst->valid = src->valid;
	dst->digest = src->digest;
	dst->stop_timeout_ms = src->stop_timeout_ms;
	if (dst->name == NULL || dst->path == NULL || (src->type != NULL && dst->type == NULL) ||
	    (src->type_where != NULL && dst->type_where == NULL)) {
		dc_conn_spec_clear(dst);
		return -ENOMEM;
	}
	return 0;
}

void dc_conn_spec_clear(struct dc_conn_spec *s)
{
	free(s->name);
	free(s->path);
	free(s->type);
	free(s->type_where);
	memset(s, 0, sizeof(*s));
}

static void set_last_error(struct dc_worker *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void set_last_error(struct dc_worker *w, const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	free(w->last_error);
	w->last_error = s;
}

/* Restarts within the last restart_period: the ring holds the newest ones. */
static unsigned restarts_in_window(const struct dc_worker *w, uint64_t now)
{
	const struct dc_supd_conf *c = &w->sup->conf;
	unsigned n = 0;

	for (size_t i = 0; i < w->nrestart_ms; i++) {
		if (now - w->restart_ms[i] < c->restart_period_ms)
			n++;
	}
	return n;
}

static void record_restart(struct dc_worker *w, uint64_t now)
{
	size_t cap = (size_t)w->sup->conf.restart_intensity + 1;

	if (cap > w->restart_cap) {
		/* restart_intensity grew on a reload; on failure keep the smaller ring. */
		uint64_t *r = realloc(w->restart_ms, cap * sizeof(*r));

		if (r != NULL) {
			w->restart_ms = r;
			w->restart_cap = cap;
		}
	}
	cap = w->restart_cap;
	while (w->nrestart_ms >= cap) {
		memmove(w->restart_ms, w->restart_ms + 1,
			(w->nrestart_ms - 1) * sizeof(*w->restart_ms));
		w->nrestart_ms--;
	}
	w->restart_ms[w->nrestart_ms++] = now;
	w->restarts_total++;
}

/* Severity of a forwarded line: our own workers log "... ident[pid] LEVEL: msg". */
static int line_severity(const char *line, size_t len, int tag)
{
	static const struct {
		const char *needle;
		int severity;
	} levels[] = {
		{"] error: ", LOG_ERR},
		{"] warn: ", LOG_WARNING},
		{"] debug: ", LOG_DEBUG},
		{"] info: ", LOG_INFO},
	};
	size_t scan = len < 128 ? len : 128;

	for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
		if (memmem(line, scan, levels[i].needle, strlen(levels[i].needle)) != NULL)
			return levels[i].severity;
	}
	return tag == TAG_STDERR ? LOG_NOTICE : LOG_INFO;
}

static void on_line(void *arg, int tag, pid_t pid, const char *line, size_t len)
{
	struct dc_worker *w = arg;

	dc_syslog_fwd_send(w->sup->fwd, line_severity(line, len, tag), w->ident, pid, line, len);
	if (w->sup->foreground) {
		struct iovec iov[4] = {
			{.iov_base = w->spec.name, .iov_len = strlen(w->spec.name)},
			{.iov_base = ": ", .iov_len = 2},
			{.iov_base = (void *)line, .iov_len = len},
			{.iov_base = "\n", .iov_len = 1},
		};

		/* One writev: lines of different workers do not interleave. */
		if (writev(STDERR_FILENO, iov, 4) < 0) {
			/* stderr gone: syslog still has the line */
		}
	}
}

static void close_process_io(struct dc_worker *w)
{
	dc_outstream_close(w->out);
	dc_outstream_close(w->err);
	w->out = w->err = NULL;
	dc_health_chan_close(w->hc);
	w->hc = NULL;
}

static void on_child(struct ev_loop *loop, ev_child *c, int revents);

/* A dead worker's socket file would only be refused connections: keep run_dir tidy. */
static void remove_ipc_socket(const struct dc_worker *w)
{
	char *path;

	if (asprintf(&path, "%s/%s.sock", w->sup->conf.run_dir, w->spec.name) < 0)
		return;
	if (unlink(path) < 0 && errno != ENOENT)
		dc_log_debug("%s: unlink %s: %s", w->spec.name, path, strerror(errno));
	free(path);
}

static int spawn_worker(struct dc_worker *w)
{
	const struct dc_supd_conf *c = &w->sup->conf;
	static const char *const drop[] = {"DANUBE_CONNECT_NAME", "DANUBE_CONNECT_IPC",
					   "DANUBE_CONNECT_GLOBAL_CONFIG",
					   "DANUBE_CONNECT_SUPERVISED", NULL};
	char *path = NULL, *url = NULL, *add[5] = {NULL}, shown[DC_SHOWN_PATH];
	char **env = NULL;
	struct dc_spawned sp;
	int rv = -ENOMEM;

	if (asprintf(&path, "%s/%s", c->worker_dir, w->spec.type) < 0) {
		path = NULL;
		goto out;
	}
	if (asprintf(&url, "ipc://%s/%s.sock", c->run_dir, w->spec.name) < 0) {
		url = NULL;
		goto out;
	}
	add[0] = dc_env_pair("DANUBE_CONNECT_NAME", w->spec.name);
	add[1] = dc_env_pair("DANUBE_CONNECT_IPC", url);
	add[2] = dc_env_pair("DANUBE_CONNECT_GLOBAL_CONFIG", c->global_file);
	add[3] = dc_env_pair("DANUBE_CONNECT_SUPERVISED", "1");
	if (!add[0] || !add[1] || !add[2] || !add[3])
		goto out;
	env = dc_env_build(drop, add);
	if (env == NULL)
		goto out;
	{
		char *argv[] = {path, "-c", w->spec.path, NULL};

		rv = dc_spawn(path, argv, env, true, &sp);
	}
	if (rv < 0)
		goto out;
	w->pid = sp.pid;
	w->started_ms = dc_now_ms();
	w->last_answer_ms = w->started_ms;
	w->kill_sent = false;
	w->ready_since_ms = 0;
	ev_child_set(&w->child, sp.pid, 0);
	ev_child_start(w->sup->loop, &w->child);
	if (dc_outstream_open(&w->out, w->sup->loop, sp.out_fd, TAG_STDOUT, sp.pid, on_line, w) < 0)
		close(sp.out_fd);
	if (dc_outstream_open(&w->err, w->sup->loop, sp.err_fd, TAG_STDERR, sp.pid, on_line, w) < 0)
		close(sp.err_fd);
	rv = dc_health_chan_open(&w->hc, url, w->sup->loop, &w->sup->health_wake,
				 (int)c->health_timeout_ms);
	if (rv < 0) {
		/* Without a channel the worker is never seen ready, and is killed as hung. */
		dc_log_error("%s: cannot open the health channel: %s", w->spec.name,
			     nng_strerror(-rv));
		w->hc = NULL;
	} else {
		(void)dc_health_chan_ask(w->hc);
	}
	dc_log_info("%s: started %s (pid %d)", w->spec.name,
		    dc_log_shown(path, shown, sizeof(shown)), (int)sp.pid);
	rv = 0;
out:
	if (rv < 0)
		set_last_error(w, "cannot start %s: %s",
			       dc_log_shown(path ? path : w->spec.type, shown, sizeof(shown)),
			       strerror(-rv));
	dc_env_free(env);
	for (int i = 0; i < 4; i++)
		free(add[i]);
	free(url);
	free(path);
	return rv;
}

uint64_t dc_worker_kill_after_ms(const struct dc_worker *w)
{
	uint64_t drain = w->spec.stop_timeout_ms + DC_STOP_MARGIN_MS;

	/* The worker gives up its drain first and says so by its exit status. */
	return drain > w->sup->conf.stop_timeout_ms ? drain : w->sup->conf.stop_timeout_ms;
}

static void signal_group(struct dc_worker *w, int sig)
{
	if (w->pid > 0 && kill(-w->pid, sig) < 0 && errno != ESRCH)
		dc_log_warn("%s: kill(-%d, %d): %s", w->spec.name, (int)w->pid, sig,
			    strerror(errno));
}

void dc_worker_event(struct dc_worker *w, enum dc_wevent ev)
{
	const struct dc_supd_conf *c = &w->sup->conf;
	uint64_t now = dc_now_ms();
	struct dc_fsm_ctx ctx = {.restarts_in_window = restarts_in_window(w, now),
				 .intensity = c->restart_intensity};
	enum dc_wstate old = w->fsm.state;
	unsigned acts = dc_fsm_step(&w->fsm, ev, &ctx);

	if (old != w->fsm.state)
		dc_log_info("%s: %s -> %s (%s)", w->spec.name, dc_wstate_name(old),
			    dc_wstate_name(w->fsm.state), dc_wevent_name(ev));
	if (w->fsm.state == DC_W_FAILED && old != DC_W_FAILED)
		dc_log_error("%s: failed: %s; not restarting until `start %s` or a reload",
			     w->spec.name,
			     ev == DC_EV_EXIT_CONFIG ? "configuration error (exit 78)"
						     : "too many restarts",
			     w->spec.name);
	if (acts & DC_ACT_CANCEL_TIMER)
		ev_timer_stop(w->sup->loop, &w->timer);
	if (acts & DC_ACT_RESET_RESTARTS) {
		w->nrestart_ms = 0;
		dc_backoff_reset(&w->backoff);
	}
	if (acts & DC_ACT_TERM) {
		/*
		 * SIGCONT first: sent after SIGTERM it could reach a worker
		 * already exiting and discard the SIGSTOP of LeakSanitizer's
		 * exit-time check (PTRACE_ATTACH), which then waits forever.
		 */
		signal_group(w, SIGCONT);
		signal_group(w, SIGTERM);
		ev_timer_stop(w->sup->loop, &w->timer);
		ev_timer_set(&w->timer, (double)dc_worker_kill_after_ms(w) / 1000.0, 0.0);
		ev_timer_start(w->sup->loop, &w->timer);
	}
	if (acts & DC_ACT_KILL) {
		w->kill_sent = true;
		signal_group(w, SIGKILL);
	}
	if (acts & DC_ACT_BACKOFF) {
		uint64_t delay = dc_backoff_next(&w->backoff);

		record_restart(w, now);
		dc_log_info("%s: restarting in %llu ms (restart %u of at most %u in %llu s)",
			    w->spec.name, (unsigned long long)delay, ctx.restarts_in_window + 1,
			    c->restart_intensity,
			    (unsigned long long)(c->restart_period_ms / 1000));
		ev_timer_stop(w->sup->loop, &w->timer);
		ev_timer_set(&w->timer, (double)delay / 1000.0, 0.0);
		ev_timer_start(w->sup->loop, &w->timer);
	}
	if ((acts & DC_ACT_SPAWN) && spawn_worker(w) < 0) {
		dc_log_error("%s: %s", w->spec.name, w->last_error);
		/* Same path as a crash: backoff, then failed if it persists. */
		dc_worker_event(w, DC_EV_EXIT_CRASH);
		return;
	}
	if (w->pid == 0)
		dc_supd_request_sweep(w->sup);
}

static void on_child(struct ev_loop *loop, ev_child *c, int revents)
{
	struct dc_worker *w = (struct dc_worker *)((char *)c - offsetof(struct dc_worker, child));
	const struct dc_supd_conf *conf = &w->sup->conf;
	int status = c->rstatus;
	pid_t pid = w->pid;
	uint64_t now = dc_now_ms();
	enum dc_wevent ev;

	ev_child_stop(loop, c);
	/* Whatever the worker left in its group goes with it. */
	signal_group(w, SIGKILL);
	w->pid = 0;
	close_process_io(w);
	remove_ipc_socket(w);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		ev = DC_EV_EXIT_OK;
		dc_log_info("%s: pid %d exited with status 0", w->spec.name, (int)pid);
	} else if (WIFEXITED(status) && WEXITSTATUS(status) == DC_EXIT_TEMPFAIL &&
		   w->fsm.state == DC_W_STOPPING) {
		/* Stopped as asked, but what it had in hand was not all written. */
		ev = DC_EV_EXIT_OK;
		set_last_error(w, "stopped with its drain cut short (exit status %d)",
			       DC_EXIT_TEMPFAIL);
		dc_log_warn("%s: pid %d stopped with its drain cut short (exit status %d): "
			    "unacknowledged messages will be delivered again",
			    w->spec.name, (int)pid, DC_EXIT_TEMPFAIL);
	} else if (WIFEXITED(status)) {
		ev = dc_wevent_for_status(status);
		set_last_error(w, "exited with status %d", WEXITSTATUS(status));
		dc_log_warn("%s: pid %d exited with status %d", w->spec.name, (int)pid,
			    WEXITSTATUS(status));
	} else {
		ev = DC_EV_EXIT_CRASH;
		set_last_error(w, "killed by signal %d (%s)", WTERMSIG(status),
			       strsignal(WTERMSIG(status)));
		dc_log_warn("%s: pid %d killed by signal %d", w->spec.name, (int)pid,
			    WTERMSIG(status));
	}
	/* A worker that stayed ready long enough earns a fresh backoff. */
	if (w->ready_since_ms != 0 && now - w->ready_since_ms >= conf->restart_period_ms)
		dc_backoff_reset(&w->backoff);
	w->ready_since_ms = 0;
	dc_worker_event(w, ev);
}

static void on_timer(struct ev_loop *loop, ev_timer *t, int revents)
{
	struct dc_worker *w = (struct dc_worker *)((char *)t - offsetof(struct dc_worker, timer));

	dc_worker_event(w, DC_EV_TIMER);
}

void dc_worker_health_tick(struct dc_worker *w, uint64_t now_ms)
{
	const struct dc_supd_conf *c = &w->sup->conf;

	if (w->pid == 0 || w->fsm.state == DC_W_STOPPING)
		return;
	if (!w->kill_sent && now_ms - w->last_answer_ms >= c->health_timeout_ms) {
		dc_log_warn("%s: no health answer for %llu ms: killing pid %d", w->spec.name,
			    (unsigned long long)(now_ms - w->last_answer_ms), (int)w->pid);
		set_last_error(w, "hung: no health answer for %llu ms",
			       (unsigned long long)(now_ms - w->last_answer_ms));
		dc_worker_event(w, DC_EV_HUNG);
		return;
	}
	if (w->hc != NULL && !w->kill_sent)
		(void)dc_health_chan_ask(w->hc);
}

void dc_worker_health_poll(struct dc_worker *w)
{
	dcctl_Response resp;
	char err[256];
	int rv;

	if (w->hc == NULL)
		return;
	rv = dc_health_chan_take(w->hc, &resp, err, sizeof(err));
	if (rv == 0)
		return;
	if (rv < 0) {
		dc_log_debug("%s: health request: %s", w->spec.name, err);
		return;
	}
	w->last_answer_ms = dc_now_ms();
	pb_release(dcctl_Response_fields, &w->last);
	w->last = resp;
	if (resp.health.state == dcctl_HealthState_HEALTH_READY) {
		if (w->ready_since_ms == 0)
			w->ready_since_ms = w->last_answer_ms;
		dc_worker_event(w, DC_EV_READY);
	}
}

bool dc_worker_ready(const struct dc_worker *w)
{
	return w->fsm.state == DC_W_RUNNING;
}

struct dc_worker *dc_worker_new(struct dc_supd *sup, const struct dc_conn_spec *spec)
{
	const struct dc_supd_conf *c = &sup->conf;
	struct dc_worker *w = calloc(1, sizeof(*w));

	if (w == NULL)
		return NULL;
	w->sup = sup;
	w->fsm.state = DC_W_STOPPED;
	if (dc_conn_spec_copy(&w->spec, spec) < 0)
		goto fail;
	if (asprintf(&w->ident, "danube-connect/%s", spec->name) < 0) {
		w->ident = NULL;
		goto fail;
	}
	w->restart_ms = calloc((size_t)c->restart_intensity + 1, sizeof(*w->restart_ms));
	if (w->restart_ms == NULL)
		goto fail;
	w->restart_cap = (size_t)c->restart_intensity + 1;
	dc_backoff_init(&w->backoff, c->backoff_initial_ms, c->backoff_max_ms, 0);
	ev_init(&w->child, on_child);
	ev_init(&w->timer, on_timer);
	return w;

fail:
	dc_conn_spec_clear(&w->spec);
	free(w->ident);
	free(w);
	return NULL;
}

int dc_worker_set_spec(struct dc_worker *w, const struct dc_conn_spec *spec)
{
	struct dc_conn_spec copy;

	if (dc_conn_spec_copy(&copy, spec) < 0)
		return -ENOMEM;
	dc_conn_spec_clear(&w->spec);
	w->spec = copy;
	return 0;
}

void dc_worker_free(struct dc_worker *w)
{
	if (w == NULL)
		return;
	ev_timer_stop(w->sup->loop, &w->timer);
	ev_child_stop(w->sup->loop, &w->child);
	close_process_io(w);
	pb_release(dcctl_Response_fields, &w->last);
	dc_conn_spec_clear(&w->spec);
	free(w->restart_ms);
	free(w->last_error);
	free(w->ident);
	free(w);
}
