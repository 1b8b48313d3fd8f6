/* danube-connectd's shared state: the loop, the configuration, the worker table. */
#ifndef DC_SUPD_H
#define DC_SUPD_H

#include <ev.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backoff.h"
#include "conf.h"
#include "control.pb.h"
#include "worker_fsm.h"

struct dc_outstream;
struct dc_health_chan;
struct dc_syslog_fwd;
struct dc_control;
struct dc_http;
struct dc_supd;

struct dc_worker {
	struct dc_supd *sup;
	struct dc_conn_spec spec; /* owned copy */
	char *ident;              /* "danube-connect/NAME" */
	struct dc_fsm fsm;

	pid_t pid; /* 0 when no process */
	uint64_t started_ms;
	ev_child child;
	ev_timer timer; /* backoff delay or stop timeout, by state */
	struct dc_outstream *out, *err;

	struct dc_health_chan *hc;
	uint64_t last_answer_ms; /* the last health answer, or the spawn */
	bool kill_sent;          /* hung: SIGKILL already sent to this process */
	dcctl_Response last;     /* the last health answer (last.has_health) */
	uint64_t ready_since_ms; /* 0 when not ready */

	struct dc_backoff backoff;
	uint64_t *restart_ms; /* ring of recent restart times, restart_intensity + 1 */
	size_t nrestart_ms, restart_cap;
	uint64_t restarts_total;
	char *last_error; /* the supervisor's view: exit status, spawn failure */

	bool removed;     /* gone from the configuration: free once stopped */
	bool held;        /* stopped by the operator: a reload leaves it stopped */
	bool file_broken; /* its file had errors at the last (re)load: not ready */
};

struct dc_supd {
	struct ev_loop *loop;
	struct dc_supd_conf conf;
	bool foreground;
	struct dc_syslog_fwd *fwd;

	struct dc_worker **workers; /* sorted by name */
	size_t nworkers;

	ev_signal sig_term, sig_int, sig_hup;
	ev_timer health_timer;
	ev_async health_wake;
	ev_idle sweep; /* runs dc_supd_sweep() once the loop has nothing else to do */

	struct dc_control *control;
	struct dc_http *http;

	bool shutting_down;
};

/* worker.c: one worker's life, driven by dc_fsm_step(). */
struct dc_worker *dc_worker_new(struct dc_supd *sup, const struct dc_conn_spec *spec);
/* Only for a worker without a process (stopped, failed, backoff). */
void dc_worker_free(struct dc_worker *w);
void dc_worker_event(struct dc_worker *w, enum dc_wevent ev);
/* Health round: check for hang, ask again. */
void dc_worker_health_tick(struct dc_worker *w, uint64_t now_ms);
/* An answer (or failure) may be waiting on the health channel. */
void dc_worker_health_poll(struct dc_worker *w);
/* Replace the spec (same name); the caller decides about a restart. */
int dc_worker_set_spec(struct dc_worker *w, const struct dc_conn_spec *spec);
bool dc_worker_ready(const struct dc_worker *w);

/* Beyond the worker's own [runtime] stop_timeout_ms, before SIGKILL. */
#define DC_STOP_MARGIN_MS 1000u
/* When a stopping worker gets SIGKILL: the supervisor's stop_timeout_ms, or the
 * worker's own drain limit plus DC_STOP_MARGIN_MS when that is longer. */
uint64_t dc_worker_kill_after_ms(const struct dc_worker *w);

int dc_conn_spec_copy(struct dc_conn_spec *dst, const struct dc_conn_spec *src);
void dc_conn_spec_clear(struct dc_conn_spec *s);

/* supd.c: the table. */
/* Create a worker per configured connector and start the enabled ones. */
int dc_supd_start_all(struct dc_supd *sup);
/* Free what a reload removed, end a finished shutdown: soon, from the loop. */
void dc_supd_request_sweep(struct dc_supd *sup);
void dc_supd_sweep(struct dc_supd *sup);
struct dc_worker *dc_supd_find(struct dc_supd *sup, const char *name);
/* SIGHUP and OP_RELOAD: 0 applied, -1 rejected (reason in err, every problem logged). */
int dc_supd_reload(struct dc_supd *sup, char *err, size_t errlen);
void dc_supd_shutdown(struct dc_supd *sup);
/* Rebuild what the HTTP server serves. */
void dc_supd_publish(struct dc_supd *sup);

/* metrics.c: Prometheus text of every worker (malloc'd). */
char *dc_metrics_render(const struct dc_supd *sup, size_t *len);

#endif
