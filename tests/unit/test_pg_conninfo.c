/* dc_pg_conninfo_mask: the loggable conninfo hides secrets, and libpq's errors do not echo them. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

#include "pg/conninfo.h"

START_TEST(masks_password_and_keeps_other_options)
{
	char why[128], *m = NULL;

	ck_assert_int_eq(dc_pg_conninfo_mask("host=db port=5433 user=app password=s3cret dbname=x "
					     "sslmode=require",
					     &m, why, sizeof(why)),
			 0);
	ck_assert_ptr_nonnull(m);
	ck_assert_ptr_null(strstr(m, "s3cret"));
	ck_assert_ptr_nonnull(strstr(m, "password=****"));
	ck_assert_ptr_nonnull(strstr(m, "host=db"));
	ck_assert_ptr_nonnull(strstr(m, "port=5433"));
	ck_assert_ptr_nonnull(strstr(m, "user=app"));
	ck_assert_ptr_nonnull(strstr(m, "dbname=x"));
	ck_assert_ptr_nonnull(strstr(m, "sslmode=require"));
	free(m);
}
END_TEST

START_TEST(masks_ssl_key_passphrase_too)
{
	char why[128], *m = NULL;

	ck_assert_int_eq(
		dc_pg_conninfo_mask("host=db sslpassword='pass phrase'", &m, why, sizeof(why)), 0);
	ck_assert_ptr_null(strstr(m, "phrase"));
	ck_assert_ptr_nonnull(strstr(m, "sslpassword=****"));
	free(m);
}
END_TEST

START_TEST(masks_a_uri_password)
{
	char why[128], *m = NULL;

	ck_assert_int_eq(dc_pg_conninfo_mask("postgresql://app:hunter2@db:5432/orders", &m, why,
					     sizeof(why)),
			 0);
	ck_assert_ptr_null(strstr(m, "hunter2"));
	ck_assert_ptr_nonnull(strstr(m, "password=****"));
	ck_assert_ptr_nonnull(strstr(m, "dbname=orders"));
	free(m);
}
END_TEST

START_TEST(shows_only_what_was_set)
{
	char why[128], *m = NULL;

	ck_assert_int_eq(dc_pg_conninfo_mask("host=/run/pg", &m, why, sizeof(why)), 0);
	ck_assert_str_eq(m, "host=/run/pg");
	free(m);
	ck_assert_int_eq(dc_pg_conninfo_mask("", &m, why, sizeof(why)), 0);
	ck_assert_str_eq(m, "");
	free(m);
}
END_TEST

START_TEST(names_an_unknown_option)
{
	char why[128], *m = (char *)"unchanged";

	ck_assert_int_eq(
		dc_pg_conninfo_mask("host=x nosuchkey=1 password=s3cret", &m, why, sizeof(why)),
		-EINVAL);
	ck_assert_ptr_null(m);
	ck_assert_str_eq(why, "invalid connection option \"nosuchkey\"");
}
END_TEST

START_TEST(does_not_echo_the_words_it_could_not_parse)
{
	char why[128], *m = NULL;

	/* A password typed without "password=" is the word libpq complains about. */
	ck_assert_int_eq(dc_pg_conninfo_mask("host=x s3cret", &m, why, sizeof(why)), -EINVAL);
	ck_assert_ptr_null(m);
	ck_assert_ptr_null(strstr(why, "s3cret"));
	ck_assert_ptr_nonnull(strstr(why, "missing"));
	ck_assert_ptr_null(strchr(why, '\n'));
	ck_assert_int_eq(dc_pg_conninfo_mask("host=x password='s3cret", &m, why, sizeof(why)),
			 -EINVAL);
	ck_assert_ptr_null(strstr(why, "s3cret"));
	ck_assert_int_gt(strlen(why), 0);
}
END_TEST

START_TEST(a_short_reason_buffer_is_cut_not_overrun)
{
	char why[12], *m = NULL;

	memset(why, 'Z', sizeof(why));
	ck_assert_int_eq(dc_pg_conninfo_mask("host=x nosuchkey=1", &m, why, 8), -EINVAL);
	ck_assert_uint_lt(strlen(why), 8);
	ck_assert_int_eq(why[8], 'Z');
	ck_assert_int_eq(dc_pg_conninfo_mask("host=x nosuchkey=1", &m, NULL, 0), -EINVAL);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("pg_conninfo");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, masks_password_and_keeps_other_options);
	tcase_add_test(tc, masks_ssl_key_passphrase_too);
	tcase_add_test(tc, masks_a_uri_password);
	tcase_add_test(tc, shows_only_what_was_set);
	tcase_add_test(tc, names_an_unknown_option);
	tcase_add_test(tc, does_not_echo_the_words_it_could_not_parse);
	tcase_add_test(tc, a_short_reason_buffer_is_cut_not_overrun);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
