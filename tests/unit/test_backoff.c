/* Backoff: bounds, growth, cap, reset and determinism under a seed. */
#include "harness.h"

#include "backoff.h"

START_TEST(backoff_stays_within_initial_and_doubling_ceiling)
{
	struct dc_backoff b;

	dc_backoff_init(&b, 200, 30000, 42);
	for (unsigned attempt = 0; attempt < 20; attempt++) {
		uint64_t ceiling = dc_backoff_ceiling(&b);
		uint64_t expect = 200;
		uint64_t d;

		for (unsigned i = 0; i < attempt && expect < 30000; i++)
			expect = expect * 2 > 30000 ? 30000 : expect * 2;
		ck_assert_uint_eq(ceiling, expect);
		d = dc_backoff_next(&b);
		ck_assert_uint_ge(d, 200);
		ck_assert_uint_le(d, ceiling);
	}
	ck_assert_uint_eq(dc_backoff_ceiling(&b), 30000);
}
END_TEST

START_TEST(backoff_uses_the_whole_jitter_range)
{
	struct dc_backoff b;
	uint64_t lo = UINT64_MAX, hi = 0;

	dc_backoff_init(&b, 100, 1600, 7);
	for (int i = 0; i < 2000; i++) {
		uint64_t d;

		b.attempt = 4; /* ceiling 1600 */
		d = dc_backoff_next(&b);
		lo = d < lo ? d : lo;
		hi = d > hi ? d : hi;
	}
	ck_assert_uint_lt(lo, 200);
	ck_assert_uint_gt(hi, 1500);
}
END_TEST

START_TEST(backoff_reset_returns_to_initial)
{
	struct dc_backoff b;

	dc_backoff_init(&b, 50, 5000, 3);
	for (int i = 0; i < 10; i++)
		dc_backoff_next(&b);
	ck_assert_uint_eq(dc_backoff_ceiling(&b), 5000);
	dc_backoff_reset(&b);
	ck_assert_uint_eq(dc_backoff_ceiling(&b), 50);
	ck_assert_uint_eq(dc_backoff_next(&b), 50);
}
END_TEST

START_TEST(backoff_same_seed_same_sequence)
{
	struct dc_backoff a, b;

	dc_backoff_init(&a, 10, 10000, 1234);
	dc_backoff_init(&b, 10, 10000, 1234);
	for (int i = 0; i < 30; i++)
		ck_assert_uint_eq(dc_backoff_next(&a), dc_backoff_next(&b));
}
END_TEST

START_TEST(backoff_clamps_bad_bounds)
{
	struct dc_backoff b;

	dc_backoff_init(&b, 0, 0, 9);
	ck_assert_uint_eq(dc_backoff_next(&b), 1);
	dc_backoff_init(&b, 500, 100, 9);
	for (int i = 0; i < 5; i++)
		ck_assert_uint_eq(dc_backoff_next(&b), 500);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("backoff");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, backoff_stays_within_initial_and_doubling_ceiling);
	tcase_add_test(tc, backoff_uses_the_whole_jitter_range);
	tcase_add_test(tc, backoff_reset_returns_to_initial);
	tcase_add_test(tc, backoff_same_seed_same_sequence);
	tcase_add_test(tc, backoff_clamps_bad_bounds);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
