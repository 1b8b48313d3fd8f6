/* Logging to syslog and, in the foreground, to stderr: one line per call. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "strbuf.h"

#define LINE_MAX_LEN 4096

static struct {
	char ident[128];
	int facility;
	bool to_syslog;
	bool to_stderr;
	enum dc_log_level level;
	dc_log_sink_fn sink;
	void *sink_arg;
} g = {
	.ident = "danube-connect",
	.facility = LOG_DAEMON,
	.to_syslog = false,
	.to_stderr = true,
	.level = DC_LOG_INFO,
};

static const char *const level_names[] = {"error", "warn", "info", "debug"};
static const int level_prio[] = {LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG};

void dc_log_open(const char *ident, int facility, bool to_syslog, bool to_stderr)
{
	if (g.to_syslog)
		closelog();
	snprintf(g.ident, sizeof(g.ident), "%s", ident ? ident : "danube-connect");
	g.facility = facility;
	g.to_syslog = to_syslog;
	g.to_stderr = to_stderr;
	if (to_syslog)
		openlog(g.ident, LOG_PID | LOG_NDELAY, facility);
}

void dc_log_close(void)
{
	if (g.to_syslog)
		closelog();
	g.to_syslog = false;
}

void dc_log_set_level(enum dc_log_level level)
{
	g.level = level;
}

enum dc_log_level dc_log_get_level(void)
{
	return g.level;
}

const char *dc_log_level_name(enum dc_log_level level)
{
	if ((unsigned)level > DC_LOG_DEBUG)
		return "unknown";
	return level_names[level];
}

int dc_log_level_parse(const char *s, enum dc_log_level *out)
{
	for (unsigned i = 0; i < sizeof(level_names) / sizeof(level_names[0]); i++) {
		if (strcasecmp(s, level_names[i]) == 0) {
			*out = (enum dc_log_level)i;
			return 0;
		}
	}
	if (strcasecmp(s, "warning") == 0) {
		*out = DC_LOG_WARN;
		return 0;
	}
	return -1;
}

int dc_log_facility_parse(const char *s, int *out)
{
	static const struct {
		const char *name;
		int value;
	} tab[] = {
		{"daemon", LOG_DAEMON}, {"user", LOG_USER},     {"local0", LOG_LOCAL0},
		{"local1", LOG_LOCAL1}, {"local2", LOG_LOCAL2}, {"local3", LOG_LOCAL3},
		{"local4", LOG_LOCAL4}, {"local5", LOG_LOCAL5}, {"local6", LOG_LOCAL6},
		{"local7", LOG_LOCAL7},
	};

	for (unsigned i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		if (strcasecmp(s, tab[i].name) == 0) {
			*out = tab[i].value;
			return 0;
		}
	}
	return -1;
}

/* Bytes of the character at p to copy as they are, or 0 when it must become '?'. */
static size_t printable_len(const unsigned char *p, size_t n)
{
	size_t l;

	if (p[0] < 0x20 || p[0] == 0x7f)
		return 0;
	if (p[0] < 0x80)
		return 1;
	l = dc_utf8_len(p, n);
	/* U+0080..U+009F: C1 controls, which some terminals act on (CSI is U+009B). */
	if (l == 2 && p[0] == 0xc2 && p[1] < 0xa0)
		return 0;
	return l;
}

char *dc_log_clean(char *s)
{
	unsigned char *r = (unsigned char *)s, *w = r;
	size_t n = strlen(s);

	while (*r != '\0') {
		size_t l = printable_len(r, n - (size_t)(r - (unsigned char *)s));

		if (l == 0) {
			/* A C1 control is two bytes; anything else unprintable is one. */
			r += r[0] == 0xc2 && r[1] >= 0x80 && r[1] < 0xa0 ? 2 : 1;
			*w++ = '?';
			continue;
		}
		memmove(w, r, l);
		w += l;
		r += l;
	}
	*w = '\0';
	return s;
}

const char *dc_log_shown(const char *s, char *out, size_t sz)
{
	const unsigned char *r = (const unsigned char *)s;
	size_t n = strlen(s), o = 0;

	while (*r != '\0') {
		size_t l = printable_len(r, n - (size_t)(r - (const unsigned char *)s));

		/* Room for this character and, after it, "..." and the NUL. */
		if (o + (l ? l : 1) + 4 > sz)
			break;
		if (l == 0) {
			r += r[0] == 0xc2 && r[1] >= 0x80 && r[1] < 0xa0 ? 2 : 1;
			out[o++] = '?';
			continue;
		}
		memcpy(out + o, r, l);
		o += l;
		r += l;
	}
	if (*r != '\0')
		memcpy(out + o, "...", 4);
	else
		out[o] = '\0';
	return out;
}

void dc_log_set_sink(dc_log_sink_fn fn, void *arg)
{
	g.sink = fn;
	g.sink_arg = arg;
}

void dc_vlog(enum dc_log_level level, const char *fmt, va_list ap)
{
	char line[LINE_MAX_LEN];
	int n;

	if (level > g.level)
		return;
	n = vsnprintf(line, sizeof(line), fmt, ap);
	if (n < 0)
		return;
	/*
	 * One call is one line: fold embedded newlines so nothing forges a log
	 * line, and clean the rest so nothing in it drives a terminal.
	 */
	for (char *p = line; *p; p++) {
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	}
	dc_log_clean(line);
	if (g.sink)
		g.sink(g.sink_arg, level, line);
	if (g.to_syslog)
		syslog(g.facility | level_prio[level], "%s", line);
	if (g.to_stderr) {
		char buf[LINE_MAX_LEN + 192];
		struct timespec ts;
		struct tm tm;
		int len;

		clock_gettime(CLOCK_REALTIME, &ts);
		localtime_r(&ts.tv_sec, &tm);
		len = snprintf(buf, sizeof(buf),
			       "%04d-%02d-%02dT%02d:%02d:%02d.%03ld %s[%d] %s: %s\n",
			       tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			       tm.tm_sec, ts.tv_nsec / 1000000L, g.ident, (int)getpid(),
			       level_names[level], line);
		if (len > (int)sizeof(buf) - 1) {
			len = (int)sizeof(buf) - 1;
			buf[len - 1] = '\n';
		}
		/* A single write(2) keeps lines from interleaving between processes. */
		if (write(STDERR_FILENO, buf, (size_t)len) < 0) {
			/* nowhere left to report it */
		}
	}
}

void dc_log(enum dc_log_level level, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	dc_vlog(level, fmt, ap);
	va_end(ap);
}
