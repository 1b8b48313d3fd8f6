/* The close-while-busy guard that producers and consumers share (danube/partition_life.c). */
#include "danube/internal.h"
#include "harness.h"

struct owner {
	struct dn_guard guard;
	int destroyed;
};

static void destroy(void *arg)
{
	struct owner *o = arg;

	o->destroyed++;
	/*
	 * A destroy finishes what is pending: those callbacks may enter and
	 * leave, and even close again; none of it destroys a second time.
	 */
	dn_guard_enter(&o->guard);
	dn_guard_close(&o->guard);
	dn_guard_leave(&o->guard);
}

static void owner_init(struct owner *o)
{
	*o = (struct owner){.guard = {.destroy = destroy}};
	o->guard.owner = o;
}

START_TEST(close_outside_a_callback_destroys_at_once)
{
	struct owner o;

	owner_init(&o);
	dn_guard_close(&o.guard);
	ck_assert_int_eq(o.destroyed, 1);
}
END_TEST

START_TEST(close_inside_a_callback_waits_for_its_end)
{
	struct owner o;

	owner_init(&o);
	dn_guard_enter(&o.guard);
	dn_guard_enter(&o.guard); /* a user callback inside a loop callback */
	dn_guard_close(&o.guard);
	ck_assert_int_eq(o.destroyed, 0);
	ck_assert(o.guard.closing);
	dn_guard_leave(&o.guard);
	ck_assert_int_eq(o.destroyed, 0);
	dn_guard_leave(&o.guard);
	ck_assert_int_eq(o.destroyed, 1);
}
END_TEST

START_TEST(callbacks_without_a_close_destroy_nothing)
{
	struct owner o;

	owner_init(&o);
	for (int i = 0; i < 3; i++) {
		dn_guard_enter(&o.guard);
		dn_guard_leave(&o.guard);
	}
	ck_assert_int_eq(o.destroyed, 0);
	ck_assert(!o.guard.closing);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("partition_life");
	TCase *tc = tcase_create("guard");

	tcase_add_test(tc, close_outside_a_callback_destroys_at_once);
	tcase_add_test(tc, close_inside_a_callback_waits_for_its_end);
	tcase_add_test(tc, callbacks_without_a_close_destroy_nothing);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
