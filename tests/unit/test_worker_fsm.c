/* Unit tests of the supervisor's decision table (supervisor/worker_fsm.c), no processes. */
#include "harness.h"

#include "../../supervisor/worker_fsm.h"
#include "exit_codes.h"

#include <signal.h>
#include <sys/wait.h>

static const struct dc_fsm_ctx calm = {.restarts_in_window = 0, .intensity = 5};

static struct dc_fsm at(enum dc_wstate s, bool want_up)
{
	return (struct dc_fsm){.state = s, .want_up = want_up};
}

START_TEST(start_from_stopped_spawns)
{
	struct dc_fsm f = at(DC_W_STOPPED, false);
	unsigned a = dc_fsm_step(&f, DC_EV_START, &calm);

	ck_assert_int_eq(f.state, DC_W_STARTING);
	ck_assert(f.want_up);
	ck_assert_uint_eq(a, DC_ACT_RESET_RESTARTS | DC_ACT_SPAWN);
}
END_TEST

START_TEST(ready_makes_running_only_from_starting)
{
	struct dc_fsm f = at(DC_W_STARTING, true);

	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_READY, &calm), 0);
	ck_assert_int_eq(f.state, DC_W_RUNNING);
	f = at(DC_W_BACKOFF, true);
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_READY, &calm), 0);
	ck_assert_int_eq(f.state, DC_W_BACKOFF);
	f = at(DC_W_STOPPED, false);
	dc_fsm_step(&f, DC_EV_READY, &calm);
	ck_assert_int_eq(f.state, DC_W_STOPPED);
}
END_TEST

START_TEST(crash_goes_to_backoff_then_starting)
{
	struct dc_fsm f = at(DC_W_RUNNING, true);

	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_EXIT_CRASH, &calm), DC_ACT_BACKOFF);
	ck_assert_int_eq(f.state, DC_W_BACKOFF);
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_TIMER, &calm), DC_ACT_SPAWN);
	ck_assert_int_eq(f.state, DC_W_STARTING);
	/* A crash before ready is a crash too. */
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_EXIT_CRASH, &calm), DC_ACT_BACKOFF);
	ck_assert_int_eq(f.state, DC_W_BACKOFF);
}
END_TEST

START_TEST(crash_beyond_intensity_fails)
{
	struct dc_fsm_ctx busy = {.restarts_in_window = 5, .intensity = 5};
	struct dc_fsm_ctx almost = {.restarts_in_window = 4, .intensity = 5};
	struct dc_fsm f = at(DC_W_STARTING, true);

	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_EXIT_CRASH, &almost), DC_ACT_BACKOFF);
	ck_assert_int_eq(f.state, DC_W_BACKOFF);
	f = at(DC_W_RUNNING, true);
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_EXIT_CRASH, &busy), 0);
	ck_assert_int_eq(f.state, DC_W_FAILED);
	/* Failed stays failed: no timer, no health event revives it. */
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_TIMER, &calm), 0);
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_READY, &calm), 0);
	ck_assert_int_eq(f.state, DC_W_FAILED);
}
END_TEST

START_TEST(exit_78_fails_without_restart)
{
	struct dc_fsm f = at(DC_W_STARTING, true);

	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_EXIT_CONFIG, &calm), 0);
	ck_assert_int_eq(f.state, DC_W_FAILED);
}
END_TEST

START_TEST(exit_0_is_stopped_without_restart)
{
	struct dc_fsm f = at(DC_W_RUNNING, true);

	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_EXIT_OK, &calm), 0);
	ck_assert_int_eq(f.state, DC_W_STOPPED);
	ck_assert(!f.want_up);
}
END_TEST

START_TEST(start_revives_failed)
{
	struct dc_fsm f = at(DC_W_FAILED, true);

	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_START, &calm),
			  DC_ACT_RESET_RESTARTS | DC_ACT_SPAWN);
	ck_assert_int_eq(f.state, DC_W_STARTING);
}
END_TEST

START_TEST(hung_kills_and_crash_follows)
{
	struct dc_fsm f = at(DC_W_RUNNING, true);

	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_HUNG, &calm), DC_ACT_KILL);
	ck_assert_int_eq(f.state, DC_W_RUNNING);
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_EXIT_CRASH, &calm), DC_ACT_BACKOFF);
	ck_assert_int_eq(f.state, DC_W_BACKOFF);
}
END_TEST

START_TEST(stop_terms_then_kills_on_timeout)
{
	struct dc_fsm f = at(DC_W_RUNNING, true);

	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_STOP, &calm), DC_ACT_TERM);
	ck_assert_int_eq(f.state, DC_W_STOPPING);
	ck_assert(!f.want_up);
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_READY, &calm), 0);
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_HUNG, &calm), 0);
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_TIMER, &calm), DC_ACT_KILL);
	ck_assert_int_eq(f.state, DC_W_STOPPING);
	/* The exit we caused is not a crash: no backoff, whatever the status. */
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_EXIT_CRASH, &calm), DC_ACT_CANCEL_TIMER);
	ck_assert_int_eq(f.state, DC_W_STOPPED);
}
END_TEST

START_TEST(restart_stops_then_spawns)
{
	struct dc_fsm_ctx busy = {.restarts_in_window = 9, .intensity = 1};
	struct dc_fsm f = at(DC_W_RUNNING, true);

	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_RESTART, &calm), DC_ACT_TERM);
	ck_assert_int_eq(f.state, DC_W_STOPPING);
	ck_assert(f.want_up);
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_EXIT_OK, &busy),
			  DC_ACT_CANCEL_TIMER | DC_ACT_RESET_RESTARTS | DC_ACT_SPAWN);
	ck_assert_int_eq(f.state, DC_W_STARTING);
}
END_TEST

START_TEST(stop_during_stopping_after_restart_wins)
{
	struct dc_fsm f = at(DC_W_STOPPING, true);

	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_STOP, &calm), 0);
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_EXIT_OK, &calm), DC_ACT_CANCEL_TIMER);
	ck_assert_int_eq(f.state, DC_W_STOPPED);
}
END_TEST

START_TEST(backoff_can_be_stopped_or_started_early)
{
	struct dc_fsm f = at(DC_W_BACKOFF, true);

	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_STOP, &calm), DC_ACT_CANCEL_TIMER);
	ck_assert_int_eq(f.state, DC_W_STOPPED);
	f = at(DC_W_BACKOFF, true);
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_START, &calm),
			  DC_ACT_CANCEL_TIMER | DC_ACT_RESET_RESTARTS | DC_ACT_SPAWN);
	ck_assert_int_eq(f.state, DC_W_STARTING);
}
END_TEST

START_TEST(stop_on_stopped_and_failed_is_quiet)
{
	struct dc_fsm f = at(DC_W_STOPPED, false);

	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_STOP, &calm), 0);
	ck_assert_int_eq(f.state, DC_W_STOPPED);
	f = at(DC_W_FAILED, true);
	ck_assert_uint_eq(dc_fsm_step(&f, DC_EV_STOP, &calm), 0);
	ck_assert_int_eq(f.state, DC_W_STOPPED);
}
END_TEST

START_TEST(every_state_and_event_has_a_name_and_no_state_leaks)
{
	for (int s = DC_W_STOPPED; s <= DC_W_FAILED; s++) {
		ck_assert_str_ne(dc_wstate_name((enum dc_wstate)s), "unknown");
		for (int e = DC_EV_START; e <= DC_EV_TIMER; e++) {
			struct dc_fsm f = at((enum dc_wstate)s, true);

			ck_assert_str_ne(dc_wevent_name((enum dc_wevent)e), "unknown");
			dc_fsm_step(&f, (enum dc_wevent)e, &calm);
			ck_assert_int_ge(f.state, DC_W_STOPPED);
			ck_assert_int_le(f.state, DC_W_FAILED);
		}
	}
	ck_assert(dc_wstate_has_process(DC_W_STOPPING));
	ck_assert(!dc_wstate_has_process(DC_W_BACKOFF));
}
END_TEST

/* Wait statuses as waitpid() reports them (the encoding Linux uses). */
static int exited(int code)
{
	return (code & 0xff) << 8;
}

START_TEST(exit_status_decides_the_event)
{
	ck_assert(WIFEXITED(exited(DC_EXIT_CONFIG)));
	ck_assert_int_eq(WEXITSTATUS(exited(DC_EXIT_CONFIG)), DC_EXIT_CONFIG);
	ck_assert_int_eq(dc_wevent_for_status(exited(DC_EXIT_OK)), DC_EV_EXIT_OK);
	ck_assert_int_eq(dc_wevent_for_status(exited(DC_EXIT_CONFIG)), DC_EV_EXIT_CONFIG);
	ck_assert_int_eq(dc_wevent_for_status(exited(DC_EXIT_FAILURE)), DC_EV_EXIT_CRASH);
	ck_assert_int_eq(dc_wevent_for_status(exited(DC_EXIT_USAGE)), DC_EV_EXIT_CRASH);
	ck_assert_int_eq(dc_wevent_for_status(exited(DC_EXIT_EXEC)), DC_EV_EXIT_CRASH);
	ck_assert_int_eq(dc_wevent_for_status(SIGKILL), DC_EV_EXIT_CRASH);
	ck_assert_int_eq(dc_wevent_for_status(SIGTERM), DC_EV_EXIT_CRASH);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("worker_fsm");
	TCase *tc = tcase_create("transitions");

	tcase_add_test(tc, start_from_stopped_spawns);
	tcase_add_test(tc, ready_makes_running_only_from_starting);
	tcase_add_test(tc, crash_goes_to_backoff_then_starting);
	tcase_add_test(tc, crash_beyond_intensity_fails);
	tcase_add_test(tc, exit_78_fails_without_restart);
	tcase_add_test(tc, exit_0_is_stopped_without_restart);
	tcase_add_test(tc, exit_status_decides_the_event);
	tcase_add_test(tc, start_revives_failed);
	tcase_add_test(tc, hung_kills_and_crash_follows);
	tcase_add_test(tc, stop_terms_then_kills_on_timeout);
	tcase_add_test(tc, restart_stops_then_spawns);
	tcase_add_test(tc, stop_during_stopping_after_restart_wins);
	tcase_add_test(tc, backoff_can_be_stopped_or_started_early);
	tcase_add_test(tc, stop_on_stopped_and_failed_is_quiet);
	tcase_add_test(tc, every_state_and_event_has_a_name_and_no_state_leaks);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
