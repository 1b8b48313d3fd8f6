/* dc_buf: growth, printf, sticky out-of-memory, and JSON string escaping incl. invalid UTF-8. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "harness.h"

#include "strbuf.h"

/* The JSON literal dc_buf_json_str makes of n bytes at s, compared with want. */
static void json_is(const char *s, size_t n, const char *want)
{
	struct dc_buf b = {0};

	dc_buf_json_str(&b, s, n);
	ck_assert(!b.oom);
	ck_assert_uint_eq(b.len, strlen(want));
	ck_assert_str_eq(b.p, want);
	dc_buf_free(&b);
}

#define JSON_IS(lit, want) json_is(lit, sizeof(lit) - 1, want)

START_TEST(json_str_escapes_quotes_and_backslash)
{
	JSON_IS("", "\"\"");
	JSON_IS("plain text", "\"plain text\"");
	JSON_IS("say \"hi\"", "\"say \\\"hi\\\"\"");
	JSON_IS("a\\b\\", "\"a\\\\b\\\\\"");
	JSON_IS("/slash stays/", "\"/slash stays/\"");
}
END_TEST

START_TEST(json_str_escapes_every_control_character)
{
	JSON_IS("\n\t\r", "\"\\n\\t\\r\"");
	JSON_IS("\x01\x08\x0c\x1f", "\"\\u0001\\u0008\\u000c\\u001f\"");
	JSON_IS("a\0b", "\"a\\u0000b\"");
	/* DEL is not a control character to JSON. */
	JSON_IS("\x7f", "\"\x7f\"");
	for (int c = 0; c < 0x20; c++) {
		char in = (char)c;
		struct dc_buf b = {0};

		dc_buf_json_str(&b, &in, 1);
		ck_assert_msg(b.p[1] == '\\', "byte %d not escaped", c);
		for (size_t i = 0; i < b.len; i++)
			ck_assert((unsigned char)b.p[i] >= 0x20);
		dc_buf_free(&b);
	}
}
END_TEST

START_TEST(json_str_passes_valid_utf8)
{
	JSON_IS("caf\xc3\xa9", "\"caf\xc3\xa9\"");
	JSON_IS("\xe2\x82\xac 5", "\"\xe2\x82\xac 5\"");
	JSON_IS("\xf0\x9f\x98\x80", "\"\xf0\x9f\x98\x80\"");
	JSON_IS("\xf4\x8f\xbf\xbf", "\"\xf4\x8f\xbf\xbf\""); /* U+10FFFF, the last code point */
	JSON_IS("\xed\x9f\xbf", "\"\xed\x9f\xbf\"");         /* U+D7FF, just below the surrogates */
}
END_TEST

START_TEST(json_str_replaces_each_invalid_byte)
{
	JSON_IS("\xff", "\"\\ufffd\"");
	JSON_IS("a\x80z", "\"a\\ufffdz\"");                              /* stray continuation */
	JSON_IS("\xc0\xaf", "\"\\ufffd\\ufffd\"");                       /* overlong '/' */
	JSON_IS("\xe0\x80\xaf", "\"\\ufffd\\ufffd\\ufffd\"");            /* overlong, 3 bytes */
	JSON_IS("\xed\xa0\x80", "\"\\ufffd\\ufffd\\ufffd\"");            /* a UTF-16 surrogate */
	JSON_IS("\xf4\x90\x80\x80", "\"\\ufffd\\ufffd\\ufffd\\ufffd\""); /* above U+10FFFF */
	JSON_IS("\xe2\x82", "\"\\ufffd\\ufffd\"");                       /* truncated at the end */
	JSON_IS("\xe2\x82x\xc3\xa9", "\"\\ufffd\\ufffdx\xc3\xa9\"");     /* truncated, then valid */
	JSON_IS("\xc3\"", "\"\\ufffd\\\"\""); /* a quote is no continuation */
}
END_TEST

START_TEST(utf8_valid_finds_the_first_bad_byte)
{
	size_t bad = 99;

	ck_assert(dc_utf8_valid("", 0, &bad));
	ck_assert(dc_utf8_valid("plain \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 15, &bad));
	ck_assert_uint_eq(bad, 99); /* untouched when valid */
	ck_assert(!dc_utf8_valid("ab\xff", 3, &bad));
	ck_assert_uint_eq(bad, 2);
	ck_assert(!dc_utf8_valid("x\xc0\xaf", 3, &bad)); /* overlong */
	ck_assert_uint_eq(bad, 1);
	ck_assert(!dc_utf8_valid("\xed\xa0\x80", 3, &bad)); /* surrogate */
	ck_assert_uint_eq(bad, 0);
	ck_assert(!dc_utf8_valid("ok\xe2\x82", 4, NULL));  /* truncated at the end */
	ck_assert(dc_utf8_valid("nul\0inside", 11, NULL)); /* NUL is valid UTF-8 */
}
END_TEST

START_TEST(json_str_of_nothing_takes_null)
{
	struct dc_buf b = {0};

	dc_buf_json_str(&b, NULL, 0);
	ck_assert_str_eq(b.p, "\"\"");
	dc_buf_free(&b);
}
END_TEST

START_TEST(json_str_appends_after_existing_text)
{
	struct dc_buf b = {0};

	dc_buf_str(&b, "{");
	dc_buf_json_str(&b, "k", 1);
	dc_buf_str(&b, ":");
	dc_buf_json_str(&b, "v\n", 2);
	dc_buf_str(&b, "}");
	ck_assert_str_eq(b.p, "{\"k\":\"v\\n\"}");
	ck_assert_uint_eq(b.len, strlen(b.p));
	dc_buf_free(&b);
}
END_TEST

START_TEST(buf_grows_and_keeps_every_byte)
{
	struct dc_buf b = {0};
	char piece[48];

	for (int i = 0; i < 5000; i++) {
		snprintf(piece, sizeof(piece), "%08d-abcdefghijklmnopqrstuvwxyz", i);
		dc_buf_add(&b, piece, 35);
	}
	ck_assert(!b.oom);
	ck_assert_uint_eq(b.len, 5000u * 35);
	ck_assert_uint_ge(b.cap, b.len + 1);
	ck_assert_uint_eq(strlen(b.p), b.len);
	for (int i = 0; i < 5000; i += 499) {
		snprintf(piece, sizeof(piece), "%08d-abcdefghijklmnopqrstuvwxyz", i);
		ck_assert(memcmp(b.p + (size_t)i * 35, piece, 35) == 0);
	}
	dc_buf_free(&b);
	ck_assert_ptr_null(b.p);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_uint_eq(b.cap, 0);
}
END_TEST

START_TEST(add_of_nothing_still_makes_a_string)
{
	struct dc_buf b = {0};

	dc_buf_add(&b, NULL, 0);
	ck_assert_ptr_nonnull(b.p);
	ck_assert_str_eq(b.p, "");
	dc_buf_str(&b, "x");
	dc_buf_add(&b, "yz", 1);
	ck_assert_str_eq(b.p, "xy");
	dc_buf_free(&b);
}
END_TEST

START_TEST(printf_formats_short_and_long_text)
{
	struct dc_buf b = {0};
	char big[1000];

	dc_buf_printf(&b, "%s=%d", "n", -42);
	ck_assert_str_eq(b.p, "n=-42");
	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	dc_buf_printf(&b, "[%s]%llu", big, 18446744073709551615ULL);
	ck_assert_uint_eq(b.len, 5 + 1 + 999 + 1 + 20);
	ck_assert_uint_eq(strlen(b.p), b.len);
	ck_assert(strcmp(b.p + b.len - 21, "]18446744073709551615") == 0);
	dc_buf_free(&b);
}
END_TEST

START_TEST(reset_empties_and_keeps_memory)
{
	struct dc_buf b = {0};
	char *mem;

	dc_buf_str(&b, "hello");
	mem = b.p;
	dc_buf_reset(&b);
	ck_assert_uint_eq(b.len, 0);
	ck_assert_str_eq(b.p, "");
	ck_assert_ptr_eq(b.p, mem);
	dc_buf_str(&b, "again");
	ck_assert_str_eq(b.p, "again");
	dc_buf_free(&b);
	dc_buf_reset(&b); /* a freed (or never used) buffer resets too */
	ck_assert_ptr_null(b.p);
}
END_TEST

START_TEST(oom_is_sticky_until_reset)
{
	struct dc_buf b = {0};

	dc_buf_str(&b, "kept");
	/* A length that cannot fit in memory fails without reading the source. */
	dc_buf_add(&b, "x", SIZE_MAX);
	ck_assert(b.oom);
	ck_assert_uint_eq(b.len, 4);
	dc_buf_str(&b, "more");
	dc_buf_printf(&b, "%d", 1);
	dc_buf_json_str(&b, "j", 1);
	ck_assert(b.oom);
	ck_assert_uint_eq(b.len, 4);
	ck_assert_str_eq(b.p, "kept");
	dc_buf_reset(&b);
	ck_assert(!b.oom);
	dc_buf_str(&b, "ok");
	ck_assert_str_eq(b.p, "ok");
	dc_buf_free(&b);
	ck_assert(!b.oom);
}
END_TEST

START_TEST(json_str_too_long_to_escape_is_oom)
{
	struct dc_buf b = {0};

	dc_buf_json_str(&b, "x", SIZE_MAX / 2);
	ck_assert(b.oom);
	ck_assert_uint_eq(b.len, 0);
	dc_buf_free(&b);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("strbuf");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, json_str_escapes_quotes_and_backslash);
	tcase_add_test(tc, json_str_escapes_every_control_character);
	tcase_add_test(tc, json_str_passes_valid_utf8);
	tcase_add_test(tc, json_str_replaces_each_invalid_byte);
	tcase_add_test(tc, json_str_of_nothing_takes_null);
	tcase_add_test(tc, json_str_appends_after_existing_text);
	tcase_add_test(tc, buf_grows_and_keeps_every_byte);
	tcase_add_test(tc, add_of_nothing_still_makes_a_string);
	tcase_add_test(tc, printf_formats_short_and_long_text);
	tcase_add_test(tc, reset_empties_and_keeps_memory);
	tcase_add_test(tc, oom_is_sticky_until_reset);
	tcase_add_test(tc, json_str_too_long_to_escape_is_oom);
	tcase_add_test(tc, utf8_valid_finds_the_first_bad_byte);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
