/* Logging to syslog and, in the foreground, to stderr: one line per call. */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

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
	/* One call is one line: fold embedded newlines so nothing forges a log line. */
	for (char *p = line; *p; p++) {
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	}
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
