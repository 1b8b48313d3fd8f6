/* Logging to syslog and, in the foreground, to stderr: one line per call. */
#ifndef DC_LOG_H
#define DC_LOG_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

enum dc_log_level {
	DC_LOG_ERROR = 0,
	DC_LOG_WARN = 1,
	DC_LOG_INFO = 2,
	DC_LOG_DEBUG = 3,
};

/*
 * ident: syslog ident ("danube-connectd", "danube-connect/NAME"); copied.
 * facility: LOG_DAEMON etc.; to_syslog false keeps syslog closed (tests,
 * workers under the supervisor, whose stderr is forwarded already).
 */
void dc_log_open(const char *ident, int facility, bool to_syslog, bool to_stderr);
void dc_log_close(void);

void dc_log_set_level(enum dc_log_level level);
enum dc_log_level dc_log_get_level(void);

/* "error|warn|info|debug" -> level; 0 or -1 when unknown. */
int dc_log_level_parse(const char *s, enum dc_log_level *out);
const char *dc_log_level_name(enum dc_log_level level);

/* "daemon", "user", "local0".."local7" -> LOG_*; 0 or -1 when unknown. */
int dc_log_facility_parse(const char *s, int *out);

/*
 * A sink sees every line that passes the level filter (tests capture with
 * it). NULL removes it.
 */
/*
 * Text from outside (a file, the environment, a request) made safe to print
 * on one line: control characters (C0, DEL, and C1 written as UTF-8) and
 * bytes that are not UTF-8 become '?', so nothing reaches a terminal that it
 * would act on. In place; returns s. Every log line and every configuration
 * problem goes through it.
 */
char *dc_log_clean(char *s);

/*
 * s as a message quotes it: cleaned as above and cut to fit in sz bytes
 * (then ending in "..."), so that no input is echoed back whole. Writes out
 * (sz >= 8) and returns it.
 */
const char *dc_log_shown(const char *s, char *out, size_t sz);

/* Buffer sizes for dc_log_shown: a value shows 60 characters, a name 100, a path 256. */
#define DC_SHOWN_VALUE 64
#define DC_SHOWN_NAME  104
#define DC_SHOWN_PATH  260

typedef void (*dc_log_sink_fn)(void *arg, enum dc_log_level level, const char *line);
void dc_log_set_sink(dc_log_sink_fn fn, void *arg);

void dc_log(enum dc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dc_vlog(enum dc_log_level level, const char *fmt, va_list ap);

#define dc_log_error(...) dc_log(DC_LOG_ERROR, __VA_ARGS__)
#define dc_log_warn(...)  dc_log(DC_LOG_WARN, __VA_ARGS__)
#define dc_log_info(...)  dc_log(DC_LOG_INFO, __VA_ARGS__)
#define dc_log_debug(...) dc_log(DC_LOG_DEBUG, __VA_ARGS__)

#endif
