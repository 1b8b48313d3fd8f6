/* The manual pages render without warnings and README.md links each of them. */
#include "harness.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static size_t list_pages(char pages[][256], size_t max)
{
	DIR *d = opendir(th_src_path("man"));
	struct dirent *e;
	size_t n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)) != NULL && n < max) {
		size_t len = strlen(e->d_name);

		if (len > 2 && e->d_name[len - 2] == '.' && e->d_name[len - 1] >= '1' &&
		    e->d_name[len - 1] <= '8')
			snprintf(pages[n++], 256, "%s", e->d_name);
	}
	closedir(d);
	return n;
}

START_TEST(man_pages_render_without_warnings)
{
	char pages[64][256];
	size_t n = list_pages(pages, 64);

	ck_assert_uint_ge(n, 1);
	for (size_t i = 0; i < n; i++) {
		char path[512], cmd[1024];
		char *argv[] = {"/bin/sh", "-c", cmd, NULL};
		char *out = NULL;
		int rc;

		snprintf(path, sizeof(path), "%s/man/%s", th_src_dir(), pages[i]);
		/* Warnings go to stderr; the rendered page is thrown away. */
		snprintf(cmd, sizeof(cmd),
			 "MANWIDTH=80 LC_ALL=C.UTF-8 man --warnings -l '%s' 2>&1 >/dev/null", path);
		rc = th_run(argv, &out, 30000);
		ck_assert_msg(rc == 0, "man -l %s exited %d: %s", pages[i], rc, out);
		ck_assert_msg(out[0] == '\0', "man --warnings %s: %s", pages[i], out);
		free(out);
	}
}
END_TEST

START_TEST(readme_links_every_man_page)
{
	char pages[64][256];
	size_t n = list_pages(pages, 64);
	char *readme = th_read_file(th_src_path("README.md"));

	ck_assert_ptr_nonnull(readme);
	for (size_t i = 0; i < n; i++) {
		char link[300];

		snprintf(link, sizeof(link), "(man/%s)", pages[i]);
		ck_assert_msg(strstr(readme, link) != NULL, "README.md does not link %s", pages[i]);
	}
	free(readme);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("docs");
	TCase *tc = tcase_create("man");

	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, man_pages_render_without_warnings);
	tcase_add_test(tc, readme_links_every_man_page);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
