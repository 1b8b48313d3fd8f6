/*
 * gRPC's wire details that need no connection: the 5-byte message framing,
 * the incremental de-framer, grpc-message percent-decoding and code names.
 */
#include "h2/grpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_MAX_MSG (4u * 1024u * 1024u)

static const char *const code_names[] = {
	"OK",
	"CANCELLED",
	"UNKNOWN",
	"INVALID_ARGUMENT",
	"DEADLINE_EXCEEDED",
	"NOT_FOUND",
	"ALREADY_EXISTS",
	"PERMISSION_DENIED",
	"RESOURCE_EXHAUSTED",
	"FAILED_PRECONDITION",
	"ABORTED",
	"OUT_OF_RANGE",
	"UNIMPLEMENTED",
	"INTERNAL",
	"UNAVAILABLE",
	"DATA_LOSS",
	"UNAUTHENTICATED",
};

const char *dc_grpc_code_name(int code)
{
	if (code < 0 || (size_t)code >= sizeof(code_names) / sizeof(code_names[0]))
		return "UNKNOWN_CODE";
	return code_names[code];
}

void dc_grpc_frame_header(uint8_t hdr[5], uint32_t len)
{
	hdr[0] = 0; /* never compressed */
	hdr[1] = (uint8_t)(len >> 24);
	hdr[2] = (uint8_t)(len >> 16);
	hdr[3] = (uint8_t)(len >> 8);
	hdr[4] = (uint8_t)len;
}

void dc_grpc_deframer_init(struct dc_grpc_deframer *d, uint32_t max)
{
	memset(d, 0, sizeof(*d));
	d->max = max ? max : DEFAULT_MAX_MSG;
}

void dc_grpc_deframer_free(struct dc_grpc_deframer *d)
{
	free(d->buf);
	d->buf = NULL;
	d->cap = d->need = d->have = d->hdr_have = 0;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Validates a complete header; sets need. */
static int header_done(struct dc_grpc_deframer *d)
{
	uint32_t len = be32(d->hdr + 1);

	if (d->hdr[0] != 0)
		return -EPROTO;
	if (len > d->max)
		return -EMSGSIZE;
	d->need = len;
	d->have = 0;
	return 0;
}

static int reserve(struct dc_grpc_deframer *d, size_t n)
{
	uint8_t *nb;

	if (d->cap >= n)
		return 0;
	nb = realloc(d->buf, n);
	if (nb == NULL)
		return -ENOMEM;
	d->buf = nb;
	d->cap = n;
	return 0;
}

int dc_grpc_deframer_feed(struct dc_grpc_deframer *d, const uint8_t *data, size_t len,
			  dc_grpc_msg_fn emit, void *arg)
{
	static const uint8_t empty[1];
	int rv;

	while (len > 0) {
		if (d->hdr_have < 5) {
			size_t n = 5 - d->hdr_have;

			if (n > len)
				n = len;
			memcpy(d->hdr + d->hdr_have, data, n);
			d->hdr_have += n;
			data += n;
			len -= n;
			if (d->hdr_have < 5)
				return 0;
			rv = header_done(d);
			if (rv != 0)
				return rv;
			/* The common case: the whole message is in this chunk, no copy. */
			if (d->need <= len) {
				emit(arg, d->need ? data : empty, d->need);
				data += d->need;
				len -= d->need;
				d->hdr_have = 0;
				continue;
			}
			rv = reserve(d, d->need);
			if (rv != 0)
				return rv;
		}
		size_t n = d->need - d->have;

		if (n > len)
			n = len;
		memcpy(d->buf + d->have, data, n);
		d->have += n;
		data += n;
		len -= n;
		if (d->have == d->need) {
			d->hdr_have = 0;
			emit(arg, d->buf, d->need);
		}
	}
	return 0;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void dc_grpc_percent_decode(const char *in, size_t len, char *out, size_t cap)
{
	size_t o = 0;

	if (cap == 0)
		return;
	for (size_t i = 0; i < len && o + 1 < cap; i++) {
		int hi, lo;

		/* An invalid escape is kept as it is, as the gRPC spec asks. */
		if (in[i] == '%' && i + 2 < len && (hi = hexval(in[i + 1])) >= 0 &&
		    (lo = hexval(in[i + 2])) >= 0) {
			out[o++] = (char)(hi << 4 | lo);
			i += 2;
		} else {
			out[o++] = in[i];
		}
	}
	out[o] = '\0';
}

int dc_grpc_code_from_http(int http_status)
{
	switch (http_status) {
	case 200:
		return DC_GRPC_UNKNOWN; /* 200 without grpc-status: the server broke the protocol */
	case 400:
		return DC_GRPC_INTERNAL;
	case 401:
		return DC_GRPC_UNAUTHENTICATED;
	case 403:
		return DC_GRPC_PERMISSION_DENIED;
	case 404:
		return DC_GRPC_UNIMPLEMENTED;
	case 429:
	case 502:
	case 503:
	case 504:
		return DC_GRPC_UNAVAILABLE;
	default:
		return DC_GRPC_UNKNOWN;
	}
}

int dc_grpc_code_from_h2_error(uint32_t h2_error)
{
	switch (h2_error) {
	case 0x7: /* REFUSED_STREAM: never processed, safe to retry */
		return DC_GRPC_UNAVAILABLE;
	case 0x8: /* CANCEL */
		return DC_GRPC_CANCELLED;
	case 0xb: /* ENHANCE_YOUR_CALM */
		return DC_GRPC_RESOURCE_EXHAUSTED;
	case 0xc: /* INADEQUATE_SECURITY */
		return DC_GRPC_PERMISSION_DENIED;
	default: /* NO_ERROR without status, PROTOCOL_ERROR, INTERNAL_ERROR, ... */
		return DC_GRPC_INTERNAL;
	}
}
