/*
 * The supervisor's decision table for one worker. Every transition is here,
 * in one function, so the policy can be read (and tested) without processes.
 */
#include "worker_fsm.h"
#include "exit_codes.h"

#include <stddef.h>
#include <sys/wait.h>

static unsigned on_exit_while_up(struct dc_fsm *f, enum dc_wevent ev, const struct dc_fsm_ctx *ctx)
{
	switch (ev) {
	case DC_EV_EXIT_OK:
		/* A worker exits 0 only when asked to stop: honour it, no restart. */
		f->state = DC_W_STOPPED;
		f->want_up = false;
		return 0;
	case DC_EV_EXIT_CONFIG:
		/* A configuration error does not heal by restarting. */
		f->state = DC_W_FAILED;
		return 0;
	default:
		if (ctx->restarts_in_window >= ctx->intensity) {
			f->state = DC_W_FAILED;
			return 0;
		}
		f->state = DC_W_BACKOFF;
		return DC_ACT_BACKOFF;
	}
}

unsigned dc_fsm_step(struct dc_fsm *f, enum dc_wevent ev, const struct dc_fsm_ctx *ctx)
{
	switch (f->state) {
	case DC_W_STOPPED:
	case DC_W_FAILED:
		switch (ev) {
		case DC_EV_START:
		case DC_EV_RESTART:
			f->state = DC_W_STARTING;
			f->want_up = true;
			return DC_ACT_RESET_RESTARTS | DC_ACT_SPAWN;
		case DC_EV_STOP:
			f->state = DC_W_STOPPED;
			f->want_up = false;
			return 0;
		default:
			return 0;
		}

	case DC_W_STARTING:
	case DC_W_RUNNING:
		switch (ev) {
		case DC_EV_READY:
			f->state = DC_W_RUNNING;
			return 0;
		case DC_EV_HUNG:
			/* The exit that follows is a crash and takes the backoff path. */
			return DC_ACT_KILL;
		case DC_EV_STOP:
		case DC_EV_RESTART:
			f->state = DC_W_STOPPING;
			f->want_up = ev == DC_EV_RESTART;
			return DC_ACT_TERM;
		case DC_EV_EXIT_OK:
		case DC_EV_EXIT_CONFIG:
		case DC_EV_EXIT_CRASH:
			return on_exit_while_up(f, ev, ctx);
		default:
			return 0;
		}

	case DC_W_BACKOFF:
		switch (ev) {
		case DC_EV_TIMER:
			f->state = DC_W_STARTING;
			return DC_ACT_SPAWN;
		case DC_EV_START:
		case DC_EV_RESTART:
			/* The operator asked for it now: skip the rest of the wait. */
			f->state = DC_W_STARTING;
			f->want_up = true;
			return DC_ACT_CANCEL_TIMER | DC_ACT_RESET_RESTARTS | DC_ACT_SPAWN;
		case DC_EV_STOP:
			f->state = DC_W_STOPPED;
			f->want_up = false;
			return DC_ACT_CANCEL_TIMER;
		default:
			return 0;
		}

	case DC_W_STOPPING:
		switch (ev) {
		case DC_EV_TIMER:
			return DC_ACT_KILL;
		case DC_EV_START:
		case DC_EV_RESTART:
			f->want_up = true;
			return 0;
		case DC_EV_STOP:
			f->want_up = false;
			return 0;
		case DC_EV_EXIT_OK:
		case DC_EV_EXIT_CONFIG:
		case DC_EV_EXIT_CRASH:
			/* We caused this exit: how it ended says nothing about the worker. */
			if (f->want_up) {
				f->state = DC_W_STARTING;
				return DC_ACT_CANCEL_TIMER | DC_ACT_RESET_RESTARTS | DC_ACT_SPAWN;
			}
			f->state = DC_W_STOPPED;
			return DC_ACT_CANCEL_TIMER;
		default:
			return 0;
		}
	}
	return 0;
}

const char *dc_wstate_name(enum dc_wstate s)
{
	static const char *const names[] = {
		[DC_W_STOPPED] = "stopped",   [DC_W_STARTING] = "starting",
		[DC_W_RUNNING] = "running",   [DC_W_BACKOFF] = "backoff",
		[DC_W_STOPPING] = "stopping", [DC_W_FAILED] = "failed",
	};

	if ((unsigned)s >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[s];
}

const char *dc_wevent_name(enum dc_wevent e)
{
	static const char *const names[] = {
		[DC_EV_START] = "start",         [DC_EV_STOP] = "stop",
		[DC_EV_RESTART] = "restart",     [DC_EV_READY] = "ready",
		[DC_EV_HUNG] = "hung",           [DC_EV_EXIT_OK] = "exit 0",
		[DC_EV_EXIT_CONFIG] = "exit 78", [DC_EV_EXIT_CRASH] = "crash",
		[DC_EV_TIMER] = "timer",
	};

	if ((unsigned)e >= sizeof(names) / sizeof(names[0]))
		return "unknown";
	return names[e];
}

bool dc_wstate_has_process(enum dc_wstate s)
{
	return s == DC_W_STARTING || s == DC_W_RUNNING || s == DC_W_STOPPING;
}

enum dc_wevent dc_wevent_for_status(int wstatus)
{
	if (!WIFEXITED(wstatus))
		return DC_EV_EXIT_CRASH;
	switch (WEXITSTATUS(wstatus)) {
	case DC_EXIT_OK:
		return DC_EV_EXIT_OK;
	case DC_EXIT_CONFIG:
		return DC_EV_EXIT_CONFIG;
	default:
		return DC_EV_EXIT_CRASH;
	}
}
