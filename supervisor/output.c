/*
 * Worker output to lines: partial lines wait for their newline (or for the
 * end of the stream), lines longer than DC_OUTPUT_LINE_MAX are split, so
 * every piece fits one syslog datagram.
 */
#include "output.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct dc_outstream {
	ev_io io;
	struct ev_loop *loop;
	int fd;
	int tag;
	pid_t pid;
	dc_line_fn fn;
	void *arg;
	size_t len;
	char buf[DC_OUTPUT_LINE_MAX];
};

static void emit_lines(struct dc_outstream *s)
{
	size_t start = 0;

	for (;;) {
		char *nl = memchr(s->buf + start, '\n', s->len - start);

		if (nl == NULL)
			break;
		s->fn(s->arg, s->tag, s->pid, s->buf + start, (size_t)(nl - (s->buf + start)));
		start = (size_t)(nl - s->buf) + 1;
	}
	if (start == 0 && s->len == sizeof(s->buf)) {
		s->fn(s->arg, s->tag, s->pid, s->buf, s->len);
		start = s->len;
	}
	memmove(s->buf, s->buf + start, s->len - start);
	s->len -= start;
}

static void stream_end(struct dc_outstream *s)
{
	if (s->len > 0)
		s->fn(s->arg, s->tag, s->pid, s->buf, s->len);
	s->len = 0;
	if (s->fd >= 0) {
		ev_io_stop(s->loop, &s->io);
		close(s->fd);
		s->fd = -1;
	}
}

/* Returns false once the stream ended (EOF or a read error). */
static bool stream_drain(struct dc_outstream *s)
{
	while (s->fd >= 0) {
		ssize_t n = read(s->fd, s->buf + s->len, sizeof(s->buf) - s->len);

		if (n > 0) {
			s->len += (size_t)n;
			emit_lines(s);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return true;
		stream_end(s);
		return false;
	}
	return false;
}

static void on_readable(struct ev_loop *loop, ev_io *w, int revents)
{
	(void)stream_drain((struct dc_outstream *)w);
}

int dc_outstream_open(struct dc_outstream **out, struct ev_loop *loop, int fd, int tag, pid_t pid,
		      dc_line_fn fn, void *arg)
{
	struct dc_outstream *s = malloc(sizeof(*s));

	if (s == NULL)
		return -ENOMEM;
	s->loop = loop;
	s->fd = fd;
	s->tag = tag;
	s->pid = pid;
	s->fn = fn;
	s->arg = arg;
	s->len = 0;
	ev_io_init(&s->io, on_readable, fd, EV_READ);
	ev_io_start(loop, &s->io);
	*out = s;
	return 0;
}

void dc_outstream_close(struct dc_outstream *s)
{
	if (s == NULL)
		return;
	(void)stream_drain(s);
	stream_end(s);
	free(s);
}
