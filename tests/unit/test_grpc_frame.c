/*
 * gRPC wire details without a connection: the 5-byte framing, the
 * de-framer across arbitrary splits, limits, percent-decoding, code names.
 */
#include "harness.h"
#include "danube/client.h"
#include "h2/grpc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct got {
	int n;
	size_t len[16];
	uint8_t data[16][512];
};

static void collect(void *arg, const uint8_t *buf, size_t len)
{
	struct got *g = arg;

	if (buf == NULL || g->n >= 16 || len > sizeof(g->data[0]))
		ck_abort_msg("bad emit: buf %p, message %d, %zu bytes", (void *)buf, g->n, len);
	g->len[g->n] = len;
	memcpy(g->data[g->n], buf, len);
	g->n++;
}

/* Three framed messages: empty, "abc", and 300 bytes of a pattern. */
static size_t build(uint8_t *out)
{
	size_t o = 0;

	dc_grpc_frame_header(out + o, 0);
	o += 5;
	dc_grpc_frame_header(out + o, 3);
	o += 5;
	memcpy(out + o, "abc", 3);
	o += 3;
	dc_grpc_frame_header(out + o, 300);
	o += 5;
	for (int i = 0; i < 300; i++)
		out[o++] = (uint8_t)(i * 7);
	return o;
}

/* One ck_assert per check: in fork mode each one is a write to Check's pipe. */
static bool is_three(const struct got *g)
{
	if (g->n != 3 || g->len[0] != 0 || g->len[1] != 3 || memcmp(g->data[1], "abc", 3) != 0 ||
	    g->len[2] != 300)
		return false;
	for (int i = 0; i < 300; i++)
		if (g->data[2][i] != (uint8_t)(i * 7))
			return false;
	return true;
}

static void check_three(const struct got *g)
{
	ck_assert_msg(is_three(g), "wrong messages (%d)", g->n);
}

START_TEST(frame_header_is_uncompressed_big_endian_length)
{
	uint8_t h[5];

	dc_grpc_frame_header(h, 0x01020304);
	ck_assert_uint_eq(h[0], 0);
	ck_assert_uint_eq(h[1], 1);
	ck_assert_uint_eq(h[2], 2);
	ck_assert_uint_eq(h[3], 3);
	ck_assert_uint_eq(h[4], 4);
}
END_TEST

START_TEST(deframer_emits_several_messages_from_one_chunk)
{
	uint8_t buf[1024];
	size_t n = build(buf);
	struct dc_grpc_deframer d;
	struct got g = {0};

	dc_grpc_deframer_init(&d, 0);
	ck_assert_int_eq(dc_grpc_deframer_feed(&d, buf, n, collect, &g), 0);
	check_three(&g);
	/* The whole-message fast path needs no buffer. */
	ck_assert_ptr_null(d.buf);
	dc_grpc_deframer_free(&d);
}
END_TEST

START_TEST(deframer_handles_byte_by_byte_input)
{
	uint8_t buf[1024];
	size_t n = build(buf);
	struct dc_grpc_deframer d;
	struct got g = {0};

	dc_grpc_deframer_init(&d, 0);
	for (size_t i = 0; i < n; i++)
		if (dc_grpc_deframer_feed(&d, buf + i, 1, collect, &g) != 0)
			ck_abort_msg("feed failed at byte %zu", i);
	check_three(&g);
	dc_grpc_deframer_free(&d);
}
END_TEST

START_TEST(deframer_handles_every_two_and_three_way_split)
{
	uint8_t buf[1024];
	size_t n = build(buf);

	for (size_t a = 0; a <= n; a++) {
		for (size_t b = a; b <= n; b += 7) {
			struct dc_grpc_deframer d;
			struct got g = {0};

			int rv;

			dc_grpc_deframer_init(&d, 0);
			rv = dc_grpc_deframer_feed(&d, buf, a, collect, &g);
			rv |= dc_grpc_deframer_feed(&d, buf + a, b - a, collect, &g);
			rv |= dc_grpc_deframer_feed(&d, buf + b, n - b, collect, &g);
			if (rv != 0 || !is_three(&g))
				ck_abort_msg("split at %zu and %zu: rv %d, %d messages", a, b, rv,
					     g.n);
			dc_grpc_deframer_free(&d);
		}
	}
}
END_TEST

START_TEST(deframer_refuses_a_message_over_the_limit)
{
	uint8_t buf[64];
	struct dc_grpc_deframer d;
	struct got g = {0};

	dc_grpc_deframer_init(&d, 10);
	dc_grpc_frame_header(buf, 10);
	memset(buf + 5, 'x', 10);
	ck_assert_int_eq(dc_grpc_deframer_feed(&d, buf, 15, collect, &g), 0);
	ck_assert_int_eq(g.n, 1);
	dc_grpc_frame_header(buf, 11);
	/* Refused on the header alone, before any body arrives. */
	ck_assert_int_eq(dc_grpc_deframer_feed(&d, buf, 5, collect, &g), -EMSGSIZE);
	ck_assert_int_eq(g.n, 1);
	dc_grpc_deframer_free(&d);

	dc_grpc_deframer_init(&d, 0);
	ck_assert_uint_eq(d.max, 4u * 1024 * 1024);
	dc_grpc_frame_header(buf, 4u * 1024 * 1024 + 1);
	ck_assert_int_eq(dc_grpc_deframer_feed(&d, buf, 5, collect, &g), -EMSGSIZE);
	dc_grpc_deframer_free(&d);
}
END_TEST

START_TEST(deframer_refuses_compressed_messages)
{
	uint8_t buf[8];
	struct dc_grpc_deframer d;
	struct got g = {0};

	dc_grpc_deframer_init(&d, 0);
	dc_grpc_frame_header(buf, 3);
	buf[0] = 1;
	memcpy(buf + 5, "abc", 3);
	ck_assert_int_eq(dc_grpc_deframer_feed(&d, buf, 8, collect, &g), -EPROTO);
	ck_assert_int_eq(g.n, 0);
	dc_grpc_deframer_free(&d);
}
END_TEST

static const char *decode(const char *in, size_t cap)
{
	static char out[256];

	memset(out, 'Z', sizeof(out));
	dc_grpc_percent_decode(in, strlen(in), out, cap);
	return out;
}

START_TEST(percent_decoding_of_grpc_message)
{
	ck_assert_str_eq(decode("plain text", 256), "plain text");
	ck_assert_str_eq(decode("a%20b%25c", 256), "a b%c");
	ck_assert_str_eq(decode("%C3%BCber %e2%9c%93", 256), "\xc3\xbc"
							     "ber \xe2\x9c\x93");
	/* Invalid or cut-off escapes are kept as they are. */
	ck_assert_str_eq(decode("100%", 256), "100%");
	ck_assert_str_eq(decode("50%zz", 256), "50%zz");
	ck_assert_str_eq(decode("x%4", 256), "x%4");
	/* Truncated to the buffer, always terminated. */
	ck_assert_str_eq(decode("abcdef", 4), "abc");
	ck_assert_str_eq(decode("abcdef", 1), "");
	ck_assert_str_eq(decode("%41%42%43", 3), "AB");
}
END_TEST

START_TEST(every_code_has_its_canonical_name)
{
	static const char *const names[] = {
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

	ck_assert_uint_eq(sizeof(names) / sizeof(names[0]), DC_GRPC_UNAUTHENTICATED + 1);
	for (int code = 0; code <= DC_GRPC_UNAUTHENTICATED; code++) {
		ck_assert_str_eq(dc_grpc_code_name(code), names[code]);
		/* The Danube client's names are the same table. */
		ck_assert_ptr_eq(dn_code_name(code), dc_grpc_code_name(code));
	}
	ck_assert_str_eq(dn_code_name(17), dc_grpc_code_name(17));
}
END_TEST

START_TEST(code_names_and_status_mappings)
{
	ck_assert_str_eq(dc_grpc_code_name(DC_GRPC_OK), "OK");
	ck_assert_str_eq(dc_grpc_code_name(DC_GRPC_NOT_FOUND), "NOT_FOUND");
	ck_assert_str_eq(dc_grpc_code_name(DC_GRPC_FAILED_PRECONDITION), "FAILED_PRECONDITION");
	ck_assert_str_eq(dc_grpc_code_name(DC_GRPC_UNAUTHENTICATED), "UNAUTHENTICATED");
	ck_assert_str_eq(dc_grpc_code_name(17), "UNKNOWN_CODE");
	ck_assert_str_eq(dc_grpc_code_name(-1), "UNKNOWN_CODE");

	ck_assert_int_eq(dc_grpc_code_from_http(400), DC_GRPC_INTERNAL);
	ck_assert_int_eq(dc_grpc_code_from_http(401), DC_GRPC_UNAUTHENTICATED);
	ck_assert_int_eq(dc_grpc_code_from_http(403), DC_GRPC_PERMISSION_DENIED);
	ck_assert_int_eq(dc_grpc_code_from_http(404), DC_GRPC_UNIMPLEMENTED);
	ck_assert_int_eq(dc_grpc_code_from_http(429), DC_GRPC_UNAVAILABLE);
	ck_assert_int_eq(dc_grpc_code_from_http(502), DC_GRPC_UNAVAILABLE);
	ck_assert_int_eq(dc_grpc_code_from_http(503), DC_GRPC_UNAVAILABLE);
	ck_assert_int_eq(dc_grpc_code_from_http(504), DC_GRPC_UNAVAILABLE);
	ck_assert_int_eq(dc_grpc_code_from_http(500), DC_GRPC_UNKNOWN);

	ck_assert_int_eq(dc_grpc_code_from_h2_error(0x7), DC_GRPC_UNAVAILABLE);
	ck_assert_int_eq(dc_grpc_code_from_h2_error(0x8), DC_GRPC_CANCELLED);
	ck_assert_int_eq(dc_grpc_code_from_h2_error(0xb), DC_GRPC_RESOURCE_EXHAUSTED);
	ck_assert_int_eq(dc_grpc_code_from_h2_error(0xc), DC_GRPC_PERMISSION_DENIED);
	ck_assert_int_eq(dc_grpc_code_from_h2_error(0x1), DC_GRPC_INTERNAL);
	ck_assert_int_eq(dc_grpc_code_from_h2_error(0x2), DC_GRPC_INTERNAL);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("grpc_frame");
	TCase *tc = tcase_create("frame");

	tcase_add_test(tc, frame_header_is_uncompressed_big_endian_length);
	tcase_add_test(tc, every_code_has_its_canonical_name);
	tcase_add_test(tc, deframer_emits_several_messages_from_one_chunk);
	tcase_add_test(tc, deframer_handles_byte_by_byte_input);
	tcase_add_test(tc, deframer_handles_every_two_and_three_way_split);
	tcase_add_test(tc, deframer_refuses_a_message_over_the_limit);
	tcase_add_test(tc, deframer_refuses_compressed_messages);
	tcase_add_test(tc, percent_decoding_of_grpc_message);
	tcase_add_test(tc, code_names_and_status_mappings);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(suite)
