/* Logging: level filter, one line per call, parsing of levels and facilities. */
#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"

static char captured[16][512];
static enum dc_log_level captured_level[16];
static int ncaptured;

static void sink(void *arg, enum dc_log_level level, const char *line)
{
	(void)arg;
	if (ncaptured < 16) {
		snprintf(captured[ncaptured], sizeof(captured[0]), "%s", line);
		captured_level[ncaptured++] = level;
	}
}

static void setup(void)
{
	ncaptured = 0;
	dc_log_open("test", LOG_USER, false, false);
	dc_log_set_sink(sink, NULL);
}

START_TEST(log_filters_below_level)
{
	dc_log_set_level(DC_LOG_WARN);
	dc_log_error("e %d", 1);
	dc_log_warn("w %s", "two");
	dc_log_info("i");
	dc_log_debug("d");
	ck_assert_int_eq(ncaptured, 2);
	ck_assert_str_eq(captured[0], "e 1");
	ck_assert_int_eq(captured_level[0], DC_LOG_ERROR);
	ck_assert_str_eq(captured[1], "w two");
	dc_log_set_level(DC_LOG_DEBUG);
	dc_log_debug("now %s", "seen");
	ck_assert_int_eq(ncaptured, 3);
	ck_assert_str_eq(captured[2], "now seen");
}
END_TEST

START_TEST(log_folds_newlines_into_one_line)
{
	dc_log_set_level(DC_LOG_INFO);
	dc_log_info("a\nforged line\r\nb");
	ck_assert_int_eq(ncaptured, 1);
	ck_assert_str_eq(captured[0], "a forged line  b");
}
END_TEST

START_TEST(log_cleans_what_a_terminal_would_act_on)
{
	/* OSC (set the title), BEL, CSI (colour), DEL, C1 CSI as UTF-8, a stray byte, a tab */
	dc_log_set_level(DC_LOG_INFO);
	dc_log_info("unknown key %s", "\x1b]0;PWNED\x07\x1b[31mevil\x7f \xc2\x9b"
				      "2J \xff\tend");
	ck_assert_int_eq(ncaptured, 1);
	ck_assert_str_eq(captured[0], "unknown key ?]0;PWNED??[31mevil? ?2J ??end");
	/* UTF-8 text is text: kept */
	dc_log_info("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
	ck_assert_str_eq(captured[1], "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80");
}
END_TEST

START_TEST(shown_text_is_clean_and_bounded)
{
	char big[2000], out[DC_SHOWN_VALUE], name[DC_SHOWN_NAME];
	char s[] = "a\x1b[2Jb\nc";

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	ck_assert_str_eq(dc_log_shown("short", out, sizeof(out)), "short");
	ck_assert_str_eq(dc_log_shown("t\x1b[0m\r\n", out, sizeof(out)), "t?[0m??");
	/* 60 characters and "...", never the whole input */
	dc_log_shown(big, out, sizeof(out));
	ck_assert_uint_eq(strlen(out), 63);
	ck_assert_str_eq(out + 60, "...");
	dc_log_shown(big, name, sizeof(name));
	ck_assert_uint_eq(strlen(name), 103);
	/* exactly 60 fit without "..." */
	big[60] = '\0';
	ck_assert_str_eq(dc_log_shown(big, out, sizeof(out)), big);
	/* a character is never cut in half */
	memset(big, 'x', 59);
	memcpy(big + 59, "\xe2\x82\xac", 4);
	ck_assert_str_eq(dc_log_shown(big, out, sizeof(out)) + 59, "...");
	/* in place */
	ck_assert_str_eq(dc_log_clean(s), "a?[2Jb?c");
}
END_TEST

START_TEST(log_writes_one_stderr_line_per_call)
{
	char path[] = "/tmp/dc-log-XXXXXX";
	int fd = mkstemp(path);
	int saved = dup(STDERR_FILENO);
	char *out;

	ck_assert_int_ge(fd, 0);
	dup2(fd, STDERR_FILENO);
	dc_log_open("danube-connect/test", LOG_DAEMON, false, true);
	dc_log_set_level(DC_LOG_INFO);
	dc_log_info("hello %d", 42);
	dc_log_debug("hidden");
	dc_log_error("bad thing");
	dup2(saved, STDERR_FILENO);
	close(saved);
	close(fd);
	out = th_read_file(path);
	unlink(path);
	ck_assert_ptr_nonnull(out);
	ck_assert_ptr_nonnull(strstr(out, "danube-connect/test["));
	ck_assert_ptr_nonnull(strstr(out, "info: hello 42\n"));
	ck_assert_ptr_nonnull(strstr(out, "error: bad thing\n"));
	ck_assert_ptr_null(strstr(out, "hidden"));
	ck_assert_int_eq((int)(strchr(strchr(out, '\n') + 1, '\n') - out + 1), (int)strlen(out));
	free(out);
}
END_TEST

START_TEST(log_parses_levels_and_facilities)
{
	enum dc_log_level l;
	int f;

	ck_assert_int_eq(dc_log_level_parse("error", &l), 0);
	ck_assert_int_eq(l, DC_LOG_ERROR);
	ck_assert_int_eq(dc_log_level_parse("WARN", &l), 0);
	ck_assert_int_eq(l, DC_LOG_WARN);
	ck_assert_int_eq(dc_log_level_parse("info", &l), 0);
	ck_assert_int_eq(l, DC_LOG_INFO);
	ck_assert_int_eq(dc_log_level_parse("debug", &l), 0);
	ck_assert_int_eq(l, DC_LOG_DEBUG);
	ck_assert_int_eq(dc_log_level_parse("verbose", &l), -1);
	ck_assert_str_eq(dc_log_level_name(DC_LOG_WARN), "warn");
	ck_assert_int_eq(dc_log_facility_parse("daemon", &f), 0);
	ck_assert_int_eq(f, LOG_DAEMON);
	ck_assert_int_eq(dc_log_facility_parse("local3", &f), 0);
	ck_assert_int_eq(f, LOG_LOCAL3);
	ck_assert_int_eq(dc_log_facility_parse("kernel", &f), -1);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("log");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, log_filters_below_level);
	tcase_add_test(tc, log_folds_newlines_into_one_line);
	tcase_add_test(tc, log_cleans_what_a_terminal_would_act_on);
	tcase_add_test(tc, shown_text_is_clean_and_bounded);
	tcase_add_test(tc, log_writes_one_stderr_line_per_call);
	tcase_add_test(tc, log_parses_levels_and_facilities);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
