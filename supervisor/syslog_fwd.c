/*
 * Worker lines to syslog with the ident danube-connect/NAME: one AF_UNIX
 * datagram per line in the RFC 3164 format syslogd expects on /dev/log.
 */
#include "syslog_fwd.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Room for the header in front of a 4 KiB line. */
#define DGRAM_MAX 4608

struct dc_syslog_fwd {
	int fd;
	int facility;
	struct sockaddr_un addr;
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

int dc_syslog_fwd_open(struct dc_syslog_fwd **out, const char *path, int facility)
{
	struct dc_syslog_fwd *f;

	if (strlen(path) >= sizeof(f->addr.sun_path))
		return -ENAMETOOLONG;
	f = calloc(1, sizeof(*f));
	if (f == NULL)
		return -ENOMEM;
	f->fd = -1;
	f->facility = facility;
	f->addr.sun_family = AF_UNIX;
	memcpy(f->addr.sun_path, path, strlen(path) + 1);
	/* No syslogd yet is not an error: connecting is retried per line. */
	(void)fwd_connect(f);
	*out = f;
	return 0;
}

void dc_syslog_fwd_close(struct dc_syslog_fwd *f)
{
	if (f == NULL)
		return;
	if (f->fd >= 0)
		close(f->fd);
	free(f);
}

void dc_syslog_fwd_set_facility(struct dc_syslog_fwd *f, int facility)
{
	f->facility = facility;
}

void dc_syslog_fwd_send(struct dc_syslog_fwd *f, int severity, const char *ident, pid_t pid,
			const char *msg, size_t len)
{
	static const char *const mon[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					  "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	char buf[DGRAM_MAX];
	struct tm tm;
	time_t now = time(NULL);
	int n;

	if (f->fd < 0 && fwd_connect(f) < 0)
		return;
	localtime_r(&now, &tm);
	n = snprintf(buf, sizeof(buf), "<%d>%s %2d %02d:%02d:%02d %s[%d]: ", f->facility | severity,
		     mon[tm.tm_mon], tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ident, (int)pid);
	if (n < 0 || (size_t)n >= sizeof(buf))
		return;
	if (len > sizeof(buf) - (size_t)n)
		len = sizeof(buf) - (size_t)n;
	memcpy(buf + n, msg, len);
	if (send(f->fd, buf, (size_t)n + len, MSG_NOSIGNAL) < 0 && errno != EAGAIN) {
		/* syslogd restarted: reconnect on the next line. */
		close(f->fd);
		f->fd = -1;
	}
}
