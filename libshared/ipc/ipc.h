/*
 * The worker side of the supervisor IPC, transport only: an nng REP socket
 * the worker listens on, served on the worker's libev loop, answering
 * OP_HEALTH with what its fill function gives (the runtime's registry,
 * runtime/metrics.h).
 */
#ifndef DC_IPC_IPC_H
#define DC_IPC_IPC_H

#include <ev.h>

#include "control.pb.h"

/* Where the supervisor tells a worker to listen (ipc://RUN_DIR/NAME.sock). */
#define DC_IPC_ENV "DANUBE_CONNECT_IPC"

struct dc_ipc;

/* Fills *out (zeroed) with the worker's health; 0, or -1 (then released with pb_release). */
typedef int (*dc_ipc_health_fn)(dcctl_Health *out);

/*
 * Listen on url (NULL: $DANUBE_CONNECT_IPC) and serve requests on loop,
 * OP_HEALTH answered from fill (dc_health_fill). A
 * stale ipc:// socket file is removed first and the new one is made 0600.
 * When url is NULL and the variable is unset or empty, the worker is not
 * supervised: returns 0 with *out = NULL.
 *
 * The nng socket starts threads: block the signals the loop handles before
 * this call and unblock them afterwards in the loop thread only (libev's
 * ev_signal_start does not), so nng's threads never take them.
 * Returns 0, or -errno with the reason logged (dc_log_error): -ENOMEM,
 * -ENOTSUP (not a URL nng serves), -ENOENT, -EADDRINUSE, ...
 */
int dc_ipc_open(struct dc_ipc **out, struct ev_loop *loop, const char *url, dc_ipc_health_fn fill);

/* The URL listened on. */
const char *dc_ipc_url(const struct dc_ipc *ipc);

/*
 * nng 1.5.2 wedges a listener whose peer hangs up during the handshake
 * (issue 1518). With no peer attached and no request for this long, the
 * socket is closed and listened afresh. 0 disables; default DC_IPC_REARM_MS.
 */
#define DC_IPC_REARM_MS 2000
void dc_ipc_set_rearm_ms(struct dc_ipc *ipc, unsigned ms);
/* Times the socket was listened afresh. */
unsigned long dc_ipc_rearms(const struct dc_ipc *ipc);

/*
 * Requests answered so far (any code), for tests and debug logs.
 */
unsigned long dc_ipc_answered(const struct dc_ipc *ipc);

/*
 * Stop serving, close the socket and remove its file. ipc may be NULL (an
 * unsupervised worker).
 */
void dc_ipc_close(struct dc_ipc *ipc);

#endif
