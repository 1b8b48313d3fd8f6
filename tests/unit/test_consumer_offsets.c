/* Gap detection of the Danube consumer: which offsets count as skipped. */
#include "danube/client.h"
#include "harness.h"

START_TEST(consecutive_offsets_skip_nothing)
{
	struct dn_offsets o = {0};

	for (uint64_t off = 5; off < 20; off++)
		ck_assert_uint_eq(dn_offsets_see(&o, off), 0);
	ck_assert(o.have);
	ck_assert_uint_eq(o.last, 19);
}
END_TEST

START_TEST(the_first_offset_is_where_the_subscription_starts)
{
	struct dn_offsets o = {0};

	/* A new subscription starts at the latest offset, a resumed one at its cursor. */
	ck_assert_uint_eq(dn_offsets_see(&o, 4711), 0);
	ck_assert_uint_eq(dn_offsets_see(&o, 4712), 0);
}
END_TEST

START_TEST(a_jump_counts_the_offsets_in_between)
{
	struct dn_offsets o = {0};

	ck_assert_uint_eq(dn_offsets_see(&o, 0), 0);
	ck_assert_uint_eq(dn_offsets_see(&o, 9), 8);
	ck_assert_uint_eq(dn_offsets_see(&o, 10), 0);
	ck_assert_uint_eq(dn_offsets_see(&o, 300), 289);
	ck_assert_uint_eq(o.last, 300);
}
END_TEST

START_TEST(redeliveries_and_repeats_are_no_gap)
{
	struct dn_offsets o = {0};

	ck_assert_uint_eq(dn_offsets_see(&o, 10), 0);
	ck_assert_uint_eq(dn_offsets_see(&o, 11), 0);
	/* An ack timeout or a takeover brings lower offsets again. */
	ck_assert_uint_eq(dn_offsets_see(&o, 3), 0);
	ck_assert_uint_eq(dn_offsets_see(&o, 11), 0);
	ck_assert_uint_eq(o.last, 11);
	ck_assert_uint_eq(dn_offsets_see(&o, 12), 0);
}
END_TEST

START_TEST(non_reliable_offsets_stay_zero_and_never_jump)
{
	struct dn_offsets o = {0};

	for (int i = 0; i < 100; i++)
		ck_assert_uint_eq(dn_offsets_see(&o, 0), 0);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("consumer_offsets");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, consecutive_offsets_skip_nothing);
	tcase_add_test(tc, the_first_offset_is_where_the_subscription_starts);
	tcase_add_test(tc, a_jump_counts_the_offsets_in_between);
	tcase_add_test(tc, redeliveries_and_repeats_are_no_gap);
	tcase_add_test(tc, non_reliable_offsets_stay_zero_and_never_jump);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
