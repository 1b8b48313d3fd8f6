/*
 * Unit tests of the supervisor's syslog forwarder (supervisor/syslog_fwd.c)
 * against a syslog socket the test binds and reads itself.
 */
#include "harness.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "../../supervisor/syslog_fwd.h"

/* A bound datagram socket standing in for /dev/log; its path in path. */
static int syslog_socket(char *path, size_t size)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	snprintf(path, size, "%s/log", th_tmpdir());
	ck_assert_uint_lt(strlen(path), sizeof(sa.sun_path));
	memcpy(sa.sun_path, path, strlen(path) + 1);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

struct reader {
	int fd;
	char **got;
	size_t n, cap;
};

/* Reads what the socket holds now; false when nothing was there. */
static bool read_some(struct reader *r)
{
	char buf[8192];
	bool any = false;
	ssize_t n;

	while ((n = recv(r->fd, buf, sizeof(buf), 0)) > 0) {
		if (r->n == r->cap) {
			r->cap = r->cap ? r->cap * 2 : 64;
			r->got = realloc(r->got, r->cap * sizeof(*r->got));
			ck_assert_ptr_nonnull(r->got);
		}
		r->got[r->n] = strndup(buf, (size_t)n);
		ck_assert_ptr_nonnull(r->got[r->n]);
		r->n++;
		any = true;
	}
	ck_assert(n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK));
	return any;
}

static void reader_free(struct reader *r)
{
	for (size_t i = 0; i < r->n; i++)
		free(r->got[i]);
	free(r->got);
	close(r->fd);
}

/* Reads and runs the loop until want datagrams arrived; false if they stop coming. */
static bool drain(struct reader *r, struct ev_loop *loop, size_t want)
{
	th_deadline_t d = th_deadline(5000);

	while (r->n < want) {
		ev_run(loop, EVRUN_NOWAIT);
		if (read_some(r))
			d = th_deadline(5000);
		else if (th_expired(&d))
			return false;
		else
			th_pause(&d);
	}
	ev_run(loop, EVRUN_NOWAIT);
	(void)read_some(r);
	return true;
}

/* Sends n lines "line I" for I from 0 without reading. */
static void send_lines(struct dc_syslog_fwd *f, int n)
{
	char line[64];

	for (int i = 0; i < n; i++) {
		int len = snprintf(line, sizeof(line), "line %d", i);

		dc_syslog_fwd_send(f, 6, "danube-connect/t", 42, line, (size_t)len);
	}
}

/* The number I of a datagram "... danube-connect/t[42]: line I", or -1. */
static int line_no(const char *dgram)
{
	const char *p = strstr(dgram, "danube-connect/t[42]: line ");
	int i;

	return p != NULL && sscanf(p + strlen("danube-connect/t[42]: line "), "%d", &i) == 1 ? i
											     : -1;
}

START_TEST(a_full_socket_loses_no_line_and_keeps_the_order)
{
	char path[600];
	struct reader r = {.fd = syslog_socket(path, sizeof(path))};
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct dc_syslog_fwd *f;
	const int n = 300; /* far beyond the few datagrams a socket queues */

	ck_assert_int_eq(dc_syslog_fwd_open(&f, loop, path, 3 << 3, 1024 * 1024), 0);
	send_lines(f, n);
	ck_assert(drain(&r, loop, (size_t)n));
	ck_assert_uint_eq(r.n, (size_t)n);
	for (int i = 0; i < n; i++)
		ck_assert_int_eq(line_no(r.got[i]), i);
	ck_assert_ptr_nonnull(strstr(r.got[0], "<30>"));
	dc_syslog_fwd_close(f);
	ev_loop_destroy(loop);
	reader_free(&r);
}
END_TEST

START_TEST(beyond_the_bound_lines_are_counted_and_reported_after_the_drain)
{
	char path[600];
	struct reader r = {.fd = syslog_socket(path, sizeof(path))};
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct dc_syslog_fwd *f;
	const int n = 300;
	unsigned long long dropped = 0;
	const char *notice;
	size_t lines;

	/* Room for a few dozen lines only. */
	ck_assert_int_eq(dc_syslog_fwd_open(&f, loop, path, 3 << 3, 2048), 0);
	send_lines(f, n);
	ck_assert(!drain(&r, loop, (size_t)n + 1));
	ck_assert_uint_gt(r.n, 1);
	lines = r.n - 1;
	for (size_t i = 0; i < lines; i++)
		ck_assert_int_eq(line_no(r.got[i]), (int)i);
	notice = strstr(r.got[lines], "danube-connectd[");
	ck_assert_ptr_nonnull(notice);
	ck_assert_ptr_nonnull(strstr(r.got[lines], "<28>")); /* daemon.warning */
	ck_assert_int_eq(
		sscanf(strstr(notice, ": ") + 2, "%llu worker log lines dropped", &dropped), 1);
	ck_assert_uint_eq(lines + dropped, (size_t)n);
	ck_assert_uint_gt(dropped, 0);

	/* Reported once: later lines go through as before. */
	send_lines(f, 1);
	ck_assert(drain(&r, loop, lines + 2));
	ck_assert_int_eq(line_no(r.got[lines + 1]), 0);
	dc_syslog_fwd_close(f);
	ev_loop_destroy(loop);
	reader_free(&r);
}
END_TEST

/* Closing waits for the reader: the reader runs beside it. */
static void *read_20(void *arg)
{
	struct reader *r = arg;
	th_deadline_t d = th_deadline(5000);

	while (r->n < 20 && !th_expired(&d)) {
		if (!read_some(r))
			th_pause(&d);
	}
	return NULL;
}

START_TEST(close_sends_what_waits)
{
	char path[600];
	struct reader r = {.fd = syslog_socket(path, sizeof(path))};
	struct ev_loop *loop = ev_loop_new(EVFLAG_AUTO);
	struct dc_syslog_fwd *f;
	pthread_t t;

	ck_assert_int_eq(dc_syslog_fwd_open(&f, loop, path, 3 << 3, 1024 * 1024), 0);
	send_lines(f, 20);
	ck_assert_int_eq(pthread_create(&t, NULL, read_20, &r), 0);
	dc_syslog_fwd_close(f);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_uint_eq(r.n, 20);
	ck_assert_int_eq(line_no(r.got[19]), 19);
	ev_loop_destroy(loop);
	reader_free(&r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("syslog_fwd");
	TCase *tc = tcase_create("queue");

	tcase_add_test(tc, a_full_socket_loses_no_line_and_keeps_the_order);
	tcase_add_test(tc, beyond_the_bound_lines_are_counted_and_reported_after_the_drain);
	tcase_add_test(tc, close_sends_what_waits);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
