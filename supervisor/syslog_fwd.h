/*
 * Forwarding worker output to syslog under a per-worker ident. openlog() has
 * one ident per process, so the RFC 3164 datagram is formatted here.
 */
#ifndef DC_SYSLOG_FWD_H
#define DC_SYSLOG_FWD_H

#include <ev.h>
#include <stddef.h>
#include <sys/types.h>

/* What may wait for a full syslog socket, in bytes of datagrams. */
#define DC_SYSLOG_FWD_QUEUE_MAX (1024u * 1024u)

struct dc_syslog_fwd;

/*
 * path: the syslog socket, normally "/dev/log"; facility: LOG_DAEMON etc.;
 * loop: where lines waiting for the socket are sent from; queue_limit: bytes
 * that may wait. Returns 0, -ENAMETOOLONG or -ENOMEM.
 */
int dc_syslog_fwd_open(struct dc_syslog_fwd **out, struct ev_loop *loop, const char *path,
		       int facility, size_t queue_limit);
/* Waits up to a second for what is queued, then frees. */
void dc_syslog_fwd_close(struct dc_syslog_fwd *f);
void dc_syslog_fwd_set_facility(struct dc_syslog_fwd *f, int facility);

/*
 * Send one line as "<PRI>Mmm dd hh:mm:ss IDENT[PID]: MSG". A full syslog
 * socket (EAGAIN) queues the line, in order, up to queue_limit; beyond it
 * lines are dropped and counted, and once the queue drains a warning from
 * danube-connectd says how many. A missing socket drops the line (and
 * retries connecting on the next one) rather than stall the supervisor.
 */
void dc_syslog_fwd_send(struct dc_syslog_fwd *f, int severity, const char *ident, pid_t pid,
			const char *msg, size_t len);

#endif
