/* Collected configuration problems: one full line each, "FILE:LINE: message". */
#include "config.h"
#include "config_internal.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DIAG_LINE_MAX 4096 /* as a log line */

void dc_diag_init(struct dc_diag *d)
{
	d->lines = NULL;
	d->n = 0;
	d->cap = 0;
}

static int diag_push(struct dc_diag *d, char *line)
{
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 8;
		char **p = realloc(d->lines, cap * sizeof(*p));

		if (p == NULL)
			return -ENOMEM;
		d->lines = p;
		d->cap = cap;
	}
	d->lines[d->n++] = line;
	return 0;
}

int dc_diag_vadd(struct dc_diag *d, const char *fmt, va_list ap)
{
	char *line;

	if (vasprintf(&line, fmt, ap) < 0)
		return -ENOMEM;
	/* Lines quote files and the environment: printable, and never a whole input. */
	if (strlen(line) > DIAG_LINE_MAX)
		memcpy(line + DIAG_LINE_MAX - 3, "...", 4);
	dc_log_clean(line);
	if (diag_push(d, line) < 0) {
		free(line);
		return -ENOMEM;
	}
	return 0;
}

void dc_diag_add(struct dc_diag *d, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	(void)dc_diag_vadd(d, fmt, ap);
	va_end(ap);
}

void dc_diag_free(struct dc_diag *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->lines[i]);
	free(d->lines);
	dc_diag_init(d);
}

void dc_diag_write(const struct dc_diag *d, int fd)
{
	for (size_t i = 0; i < d->n; i++)
		if (dc_cfg_write_all(fd, d->lines[i]) < 0 || dc_cfg_write_all(fd, "\n") < 0)
			return;
}

int dc_cfg_write_all(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n > 0) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		s += w;
		n -= (size_t)w;
	}
	return 0;
}
