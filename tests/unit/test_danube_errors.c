/* Error sentences and the retry/reconnect/fail decision of the Danube client. */
#include "danube/internal.h"
#include "harness.h"

START_TEST(codes_have_names_never_numbers)
{
	ck_assert_str_eq(dn_code_name(DN_OK), "OK");
	ck_assert_str_eq(dn_code_name(DN_FAILED_PRECONDITION), "FAILED_PRECONDITION");
	ck_assert_str_eq(dn_code_name(DN_UNAUTHENTICATED), "UNAUTHENTICATED");
	ck_assert_str_eq(dn_code_name(17), "UNKNOWN_CODE");
	ck_assert_str_eq(dn_code_name(-1), "UNKNOWN_CODE");
}
END_TEST

START_TEST(error_has_context_broker_text_and_code_name)
{
	char buf[256];

	dn_error_format(buf, sizeof(buf), DN_FAILED_PRECONDITION,
			"dispatch strategy does not match topic",
			"topic %s: broker refused producer", "/default/x");
	ck_assert_str_eq(buf, "topic /default/x: broker refused producer: dispatch strategy does "
			      "not match topic (FAILED_PRECONDITION)");
}
END_TEST

START_TEST(error_without_broker_text_uses_words)
{
	char buf[256];

	dn_error_format(buf, sizeof(buf), DN_UNAUTHENTICATED, "", "topic %s: lookup failed",
			"/default/x");
	ck_assert_str_eq(buf, "topic /default/x: lookup failed: authentication failed: check the "
			      "token (UNAUTHENTICATED)");
	dn_error_format(buf, sizeof(buf), DN_UNAVAILABLE, NULL, NULL);
	ck_assert_str_eq(buf, "the broker is unavailable (UNAVAILABLE)");
}
END_TEST

START_TEST(error_is_truncated_not_overflowed)
{
	char buf[16];

	dn_error_format(buf, sizeof(buf), DN_INTERNAL, "a long broker message",
			"topic %s: ack failed", "/default/a-long-topic-name");
	ck_assert_uint_eq(strlen(buf), sizeof(buf) - 1);
}
END_TEST

START_TEST(transient_failures_reconnect)
{
	ck_assert_int_eq(dn_error_recovery(DN_UNAVAILABLE, "connection refused"),
			 DN_RECOVER_RECONNECT);
	ck_assert_int_eq(dn_error_recovery(DN_DEADLINE_EXCEEDED, ""), DN_RECOVER_RECONNECT);
	ck_assert_int_eq(dn_error_recovery(DN_NOT_FOUND, "The producer with id 7 does not exist"),
			 DN_RECOVER_RECONNECT);
	ck_assert_int_eq(dn_error_recovery(DN_RESOURCE_EXHAUSTED, "max producers per topic"),
			 DN_RECOVER_RECONNECT);
	ck_assert_int_eq(dn_error_recovery(DN_PERMISSION_DENIED,
					   "Unable to publish the message: Topic /default/x is "
					   "draining or closed; retry lookup/moved"),
			 DN_RECOVER_RECONNECT);
}
END_TEST

START_TEST(refusals_fail)
{
	ck_assert_int_eq(dn_error_recovery(DN_OK, ""), DN_RECOVER_NONE);
	ck_assert_int_eq(dn_error_recovery(DN_FAILED_PRECONDITION, "strategy"), DN_RECOVER_FAIL);
	ck_assert_int_eq(dn_error_recovery(DN_INVALID_ARGUMENT, "bad topic"), DN_RECOVER_FAIL);
	ck_assert_int_eq(dn_error_recovery(DN_UNAUTHENTICATED, "Invalid token"), DN_RECOVER_FAIL);
	ck_assert_int_eq(dn_error_recovery(DN_PERMISSION_DENIED, "no binding grants Produce"),
			 DN_RECOVER_FAIL);
	ck_assert_int_eq(
		dn_error_recovery(DN_RESOURCE_EXHAUSTED,
				  "Received message larger than max (5000000 vs. 4194304)"),
		DN_RECOVER_FAIL);
	ck_assert(dn_error_is_oversize(DN_RESOURCE_EXHAUSTED,
				       "Received message larger than max (5000000 vs. 4194304)"));
	/* What the real broker (tonic) answers for a SendMessage over 4 MiB. */
	ck_assert(dn_error_is_oversize(DN_OUT_OF_RANGE,
				       "Error, decoded message length too large: found 5242960 "
				       "bytes, the limit is: 4194304 bytes"));
	ck_assert_int_eq(dn_error_recovery(DN_OUT_OF_RANGE, "Error, decoded message length too "
							    "large: found 5242960 bytes"),
			 DN_RECOVER_FAIL);
	ck_assert(!dn_error_is_oversize(DN_UNAVAILABLE, "larger than max"));
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("danube_errors");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, codes_have_names_never_numbers);
	tcase_add_test(tc, error_has_context_broker_text_and_code_name);
	tcase_add_test(tc, error_without_broker_text_uses_words);
	tcase_add_test(tc, error_is_truncated_not_overflowed);
	tcase_add_test(tc, transient_failures_reconnect);
	tcase_add_test(tc, refusals_fail);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
