/* danube-connectctl: the control-socket client shared by its supervisor commands. */
#ifndef DC_CTL_CONTROL_H
#define DC_CTL_CONTROL_H

#include <pb_decode.h>
#include <stdbool.h>

#include "control.pb.h"
#include "ctl.h"
#include "exit_codes.h"

#define CTL_DEFAULT_SOCKET "ipc:///run/danube-connect/control.sock"

/*
 * One request to the daemon at url (blocking, with a timeout). Returns 0 with
 * *resp filled (release with pb_release(dcctl_Response_fields, resp), also on
 * failure), or an exit status with the one-line reason already on stderr:
 * 69 when the daemon cannot be reached, 1 for a refusal (ctl_check).
 */
int ctl_call(const char *url, dcctl_Op op, const char *name, dcctl_Response *resp);

/* 0 when resp->code is OK, else the reason on stderr and 1. */
int ctl_check(const dcctl_Response *resp, const char *name);

/* "danube-connectctl: MESSAGE" and the --help hint on stderr; returns 64. */
int ctl_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
