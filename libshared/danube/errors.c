/*
 * Turning gRPC statuses into sentences a user can act on, and deciding
 * which failures the client retries, reconnects on, or reports.
 */
#include "danube/internal.h"
#include "h2/grpc.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* Used when the broker sent no grpc-message, so the sentence is never empty. */
static const char *const code_words[] = {
	"success",
	"the operation was cancelled",
	"unknown error",
	"the broker rejected the request as invalid",
	"no answer from the broker in time",
	"not found",
	"already exists",
	"permission denied",
	"a broker limit was reached",
	"the broker refused in its current state",
	"the operation was aborted",
	"value out of range",
	"the broker does not implement this call (is it a Danube broker?)",
	"internal broker error",
	"the broker is unavailable",
	"data loss",
	"authentication failed: check the token",
};

/* enum dn_code is gRPC's codes: one table of names (h2/frame.c) serves both. */
const char *dn_code_name(int code)
{
	return dc_grpc_code_name(code);
}

const char *dn_code_words(int code)
{
	if (code < 0 || (size_t)code >= sizeof(code_words) / sizeof(code_words[0]))
		return "unexpected status from the broker";
	return code_words[code];
}

void dn_error_format(char *buf, size_t cap, int code, const char *detail, const char *ctx_fmt, ...)
{
	size_t n = 0;
	va_list ap;

	if (cap == 0)
		return;
	buf[0] = '\0';
	if (ctx_fmt != NULL && ctx_fmt[0] != '\0') {
		va_start(ap, ctx_fmt);
		int r = vsnprintf(buf, cap, ctx_fmt, ap);
		va_end(ap);
		if (r > 0)
			n = (size_t)r < cap ? (size_t)r : cap - 1;
	}
	if (detail == NULL || detail[0] == '\0')
		detail = dn_code_words(code);
	snprintf(buf + n, cap - n, "%s%s (%s)", n > 0 ? ": " : "", detail, dn_code_name(code));
}

static bool contains_ci(const char *hay, const char *needle)
{
	return hay != NULL && strcasestr(hay, needle) != NULL;
}

bool dn_error_is_oversize(int code, const char *detail)
{
	/* tonic (the real broker) says OUT_OF_RANGE, grpc-core RESOURCE_EXHAUSTED. */
	if (code != DN_RESOURCE_EXHAUSTED && code != DN_INVALID_ARGUMENT && code != DN_OUT_OF_RANGE)
		return false;
	return contains_ci(detail, "larger than max") || contains_ci(detail, "message size") ||
	       contains_ci(detail, "too large") || contains_ci(detail, "exceeds");
}

enum dn_recovery dn_error_recovery(int code, const char *detail)
{
	switch (code) {
	case DN_OK:
		return DN_RECOVER_NONE;
	case DN_UNAVAILABLE:
	case DN_DEADLINE_EXCEEDED:
	case DN_CANCELLED:
	case DN_NOT_FOUND:
		/*
		 * The topic moved, the broker restarted or the connection
		 * dropped: look the topic up again and re-create.
		 */
		return DN_RECOVER_RECONNECT;
	case DN_RESOURCE_EXHAUSTED:
		return dn_error_is_oversize(code, detail) ? DN_RECOVER_FAIL : DN_RECOVER_RECONNECT;
	case DN_PERMISSION_DENIED:
		/* A draining or closed topic is being moved: not the caller's fault. */
		if (contains_ci(detail, "draining") || contains_ci(detail, "closed"))
			return DN_RECOVER_RECONNECT;
		return DN_RECOVER_FAIL;
	default:
		return DN_RECOVER_FAIL;
	}
}
