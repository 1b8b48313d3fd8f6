/*
 * The supervisor's decision table for one worker: a pure function from a state
 * and an event to the next state and the actions the caller must carry out.
 */
#ifndef DC_WORKER_FSM_H
#define DC_WORKER_FSM_H

#include <stdbool.h>

enum dc_wstate {
	DC_W_STOPPED,
	DC_W_STARTING,
	DC_W_RUNNING,
	DC_W_BACKOFF,
	DC_W_STOPPING,
	DC_W_FAILED,
};

enum dc_wevent {
	DC_EV_START,       /* operator start, daemon start-up, reload */
	DC_EV_STOP,        /* operator stop, shutdown, connector removed */
	DC_EV_RESTART,     /* operator restart, connector file changed */
	DC_EV_READY,       /* the worker's health answer says ready */
	DC_EV_HUNG,        /* no health answer for health_timeout_ms */
	DC_EV_EXIT_OK,     /* exit status 0 */
	DC_EV_EXIT_CONFIG, /* exit status 78 (DC_EXIT_CONFIG) */
	DC_EV_EXIT_CRASH,  /* any other status, or killed by a signal */
	DC_EV_TIMER,       /* the state's timer: end of backoff, or stop timeout */
};

/* Actions, a bit set; the caller performs them in this order. */
#define DC_ACT_CANCEL_TIMER   0x01u /* stop the state timer */
#define DC_ACT_RESET_RESTARTS 0x02u /* forget restart history and backoff (start, reload) */
#define DC_ACT_SPAWN          0x04u /* fork/exec the worker */
#define DC_ACT_TERM           0x08u /* SIGTERM+SIGCONT to the group, arm the stop timer */
#define DC_ACT_KILL           0x10u /* SIGKILL to the group */
#define DC_ACT_BACKOFF        0x20u /* record a restart, arm the timer with the next delay */

struct dc_fsm {
	enum dc_wstate state;
	bool want_up; /* what the operator asked for: decides what follows a stop */
};

/* What the decision needs to know besides the state. */
struct dc_fsm_ctx {
	unsigned restarts_in_window; /* restarts within the last restart_period_s */
	unsigned intensity;          /* restart_intensity */
};

/* Apply ev to f; returns the DC_ACT_* bits to perform. */
unsigned dc_fsm_step(struct dc_fsm *f, enum dc_wevent ev, const struct dc_fsm_ctx *ctx);

const char *dc_wstate_name(enum dc_wstate s);
const char *dc_wevent_name(enum dc_wevent e);

/*
 * The event a wait status from waitpid() is: DC_EV_EXIT_OK for exit 0,
 * DC_EV_EXIT_CONFIG for DC_EXIT_CONFIG, DC_EV_EXIT_CRASH for any other
 * status or a signal.
 */
enum dc_wevent dc_wevent_for_status(int wstatus);

/* A process exists in this state (the caller waits for its exit). */
bool dc_wstate_has_process(enum dc_wstate s);

#endif
