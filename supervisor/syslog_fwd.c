/*
 * Worker lines to syslog with the ident danube-connect/NAME: one AF_UNIX
 * datagram per line in the RFC 3164 format syslogd expects on /dev/log.
 * A line the socket cannot take now waits in a bounded queue, sent in order
 * once the socket is writable again.
 */
#include "syslog_fwd.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

/* Room for the header in front of a 4 KiB line. */
#define DGRAM_MAX 4608
/* How long closing waits for the queue to drain. */
#define CLOSE_DRAIN_MS 1000

struct dgram {
	struct dgram *next;
	size_t len;
	char data[];
};

struct dc_syslog_fwd {
	int fd;
	int facility;
	struct sockaddr_un addr;
	struct ev_loop *loop;
	ev_io writable;
	struct dgram *head, *tail; /* waiting for the socket, oldest first */
	size_t queued, limit;      /* bytes waiting, and at most */
	uint64_t dropped;          /* lines lost to the limit since the last notice */
};

static int fwd_connect(struct dc_syslog_fwd *f)
{
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&f->addr, sizeof(f->addr)) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	f->fd = fd;
	return 0;
}

static void fwd_disconnect(struct dc_syslog_fwd *f)
{
	if (f->loop != NULL)
		ev_io_stop(f->loop, &f->writable);
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static void drop_queue(struct dc_syslog_fwd *f)
{
	while (f->head != NULL) {
		struct dgram *d = f->head;

		f->head = d->next;
		free(d);
	}
	f->tail = NULL;
	f->queued = 0;
}

/* "<PRI>Mmm dd hh:mm:ss IDENT[PID]: " into buf; its length, or -1. */
static int format_header(char *buf, size_t size, int pri, const char *ident, pid_t pid)
{
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	struct tm tm;
	time_t now = time(NULL);
	int n;

	localtime_r(&now, &tm);
	n = snprintf(buf, size, "<%d>%s %2d %02d:%02d:%02d %s[%d]: ", pri, mon[tm.tm_mon],
		     tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ident, (int)pid);
	return n < 0 || (size_t)n >= size ? -1 : n;
}

/* 0 sent, 1 the socket is full (try later), -1 the socket is gone. */
static int send_one(struct dc_syslog_fwd *f, const char *buf, size_t len)
{
	if (f->fd < 0 && fwd_connect(f) < 0)
		return -1;
	if (send(f->fd, buf, len, MSG_NOSIGNAL) >= 0)
		return 0;
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS)
		return 1;
	/* syslogd restarted: reconnect on the next line. */
	fwd_disconnect(f);
	return -1;
}

/* Queue a datagram at the tail; false when over the limit (unless forced) or out of memory. */
static bool enqueue(struct dc_syslog_fwd *f, const char *buf, size_t len, bool force)
{
	struct dgram *d;

	if (!force && f->queued + len > f->limit)
		return false;
	d = malloc(sizeof(*d) + len);
	if (d == NULL)
		return false;
	d->next = NULL;
	d->len = len;
	memcpy(d->data, buf, len);
	if (f->tail != NULL)
		f->tail->next = d;
	else
		f->head = d;
	f->tail = d;
	f->queued += len;
	if (f->loop != NULL && f->fd >= 0 && !ev_is_active(&f->writable)) {
		ev_io_set(&f->writable, f->fd, EV_WRITE);
		ev_io_start(f->loop, &f->writable);
	}
	return true;
}

/* The notice of what the limit cost, sent in order after what was queued before it. */
static void report_dropped(struct dc_syslog_fwd *f)
{
	char buf[256];
	int n = format_header(buf, sizeof(buf), f->facility | LOG_WARNING, "danube-connectd",
			      getpid());
	int m;

	if (n < 0)
		return;
	m = snprintf(buf + n, sizeof(buf) - (size_t)n,
		     "%llu worker log lines dropped: the syslog socket was full",
		     (unsigned long long)f->dropped);
	if (m < 0 || (size_t)m >= sizeof(buf) - (size_t)n)
		return;
	f->dropped = 0;
	/* The queue is empty here: the notice goes in whatever the limit. */
	if (send_one(f, buf, (size_t)(n + m)) == 1)
		(void)enqueue(f, buf, (size_t)(n + m), true);
}

/* Send what waits until the socket is full again; 0, or -1 when the socket is gone. */
static int flush(struct dc_syslog_fwd *f)
{
	while (f->head != NULL) {
		struct dgram *d = f->head;
		int rv = send_one(f, d->data, d->len);

		if (rv == 1)
			return 0;
		if (rv < 0) {
			/* What waited was meant for the old socket's reader: count it lost. */
			for (struct dgram *x = f->head; x != NULL; x = x->next)
				f->dropped++;
			drop_queue(f);
			return -1;
		}
		f->head = d->next;
		if (f->head == NULL)
			f->tail = NULL;
		f->queued -= d->len;
		free(d);
	}
	if (f->loop != NULL)
		ev_io_stop(f->loop, &f->writable);
	if (f->dropped > 0)
		report_dropped(f);
	return 0;
}

static void on_writable(struct ev_loop *loop, ev_io *w, int revents)
{
	struct dc_syslog_fwd *f =
		(struct dc_syslog_fwd *)((char *)w - offsetof(struct dc_syslog_fwd, writable));

	(void)flush(f);
}

int dc_syslog_fwd_open(struct dc_syslog_fwd **out, struct ev_loop *loop, const char *path,
		       int facility, size_t queue_limit)
{
	struct dc_syslog_fwd *f;

	if (strlen(path) >= sizeof(f->addr.sun_path))
		return -ENAMETOOLONG;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	f->fd = -1;
	f->facility = facility;
	f->loop = loop;
	f->limit = queue_limit;
	f->addr.sun_family = AF_UNIX;
	memcpy(f->addr.sun_path, path, strlen(path) + 1);
	ev_init(&f->writable, on_writable);
	/* No syslogd yet is not an error: connecting is retried per line. */
	(void)fwd_connect(f);
	*out = f;
	return 0;
}

void dc_syslog_fwd_close(struct dc_syslog_fwd *f)
{
	int left = CLOSE_DRAIN_MS;

	if (f == NULL)
		return;
	/* The last lines of a shutdown matter most: give the reader a moment. */
	while (f->head != NULL && f->fd >= 0 && left > 0) {
		struct pollfd p = {.fd = f->fd, .events = POLLOUT};
		struct timespec t0, t1;

		clock_gettime(CLOCK_MONOTONIC, &t0);
		if (poll(&p, 1, left) <= 0 || flush(f) < 0)
			break;
		clock_gettime(CLOCK_MONOTONIC, &t1);
		left -= (int)((t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000);
	}
	fwd_disconnect(f);
	drop_queue(f);
	free(f);
}

void dc_syslog_fwd_set_facility(struct dc_syslog_fwd *f, int facility)
{
	f->facility = facility;
}

void dc_syslog_fwd_send(struct dc_syslog_fwd *f, int severity, const char *ident, pid_t pid,
			const char *msg, size_t len)
{
	char buf[DGRAM_MAX];
	int n = format_header(buf, sizeof(buf), f->facility | severity, ident, pid);
	int rv = 1;

	if (n < 0)
		return;
	if (len > sizeof(buf) - (size_t)n)
		len = sizeof(buf) - (size_t)n;
	memcpy(buf + n, msg, len);
	/* Behind queued lines a line waits its turn: the order is the workers'. */
	if (f->head == NULL)
		rv = send_one(f, buf, (size_t)n + len);
	if (rv == 1 && !enqueue(f, buf, (size_t)n + len, false))
		f->dropped++;
	else if (rv == 0 && f->dropped > 0)
		report_dropped(f); /* lines lost with a socket that went away */
}
