/*
 * Forwarding worker output to syslog under a per-worker ident. openlog() has
 * one ident per process, so the RFC 3164 datagram is formatted here.
 */
#ifndef DC_SYSLOG_FWD_H
#define DC_SYSLOG_FWD_H

#include <sys/types.h>

struct dc_syslog_fwd;

/* path: the syslog socket, normally "/dev/log"; facility: LOG_DAEMON etc. */
int dc_syslog_fwd_open(struct dc_syslog_fwd **out, const char *path, int facility);
void dc_syslog_fwd_close(struct dc_syslog_fwd *f);
void dc_syslog_fwd_set_facility(struct dc_syslog_fwd *f, int facility);

/*
 * Send one line as "<PRI>Mmm dd hh:mm:ss IDENT[PID]: MSG". Best effort: a
 * missing or full syslog socket drops the line (and retries connecting on
 * the next one) rather than stall the supervisor.
 */
void dc_syslog_fwd_send(struct dc_syslog_fwd *f, int severity, const char *ident, pid_t pid,
			const char *msg, size_t len);

#endif
