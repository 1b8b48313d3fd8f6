/* Logging to syslog and, in the foreground, to stderr: one line per call. */
#ifndef DC_LOG_H
#define DC_LOG_H

#include <stdarg.h>
#include <stdbool.h>

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
typedef void (*dc_log_sink_fn)(void *arg, enum dc_log_level level, const char *line);
void dc_log_set_sink(dc_log_sink_fn fn, void *arg);

void dc_log(enum dc_log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void dc_vlog(enum dc_log_level level, const char *fmt, va_list ap);

#define dc_log_error(...) dc_log(DC_LOG_ERROR, __VA_ARGS__)
#define dc_log_warn(...)  dc_log(DC_LOG_WARN, __VA_ARGS__)
#define dc_log_info(...)  dc_log(DC_LOG_INFO, __VA_ARGS__)
#define dc_log_debug(...) dc_log(DC_LOG_DEBUG, __VA_ARGS__)

#endif
