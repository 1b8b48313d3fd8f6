/* The Danube nanopb bindings: a StreamMessage survives encode/decode intact, with
 * large payloads (through callbacks: Debian's nanopb has a 16-bit pb_size_t), maps and
 * proto3 optional fields, and every allocation is released. */
#include "harness.h"

#include <pb_decode.h>
#include <pb_encode.h>
#include <stdlib.h>
#include <string.h>

#include "danube/DanubeApi.pb.h"
#include "danube/SchemaRegistry.pb.h"

#define BIG_PAYLOAD (5u * 1024u * 1024u)

struct blob {
	uint8_t *data;
	size_t len;
};

static struct blob make_payload(size_t n)
{
	struct blob b = {malloc(n), n};

	ck_assert_ptr_nonnull(b.data);
	for (size_t i = 0; i < n; i++)
		b.data[i] = (uint8_t)(i * 31u + 7u);
	return b;
}

static bool encode_blob(pb_ostream_t *os, const pb_field_iter_t *field, void *const *arg)
{
	const struct blob *b = *arg;

	return pb_encode_tag_for_field(os, field) && pb_encode_string(os, b->data, b->len);
}

static bool decode_blob(pb_istream_t *is, const pb_field_iter_t *field, void **arg)
{
	struct blob *b = *arg;

	free(b->data);
	b->len = is->bytes_left;
	b->data = malloc(b->len ? b->len : 1);
	return b->data != NULL && pb_read(is, b->data, b->len);
}

/* Encodes msg into a malloc'd buffer; *len gets its size. */
static uint8_t *encode(const pb_msgdesc_t *fields, const void *msg, size_t *len)
{
	uint8_t *buf;
	pb_ostream_t os;

	ck_assert(pb_get_encoded_size(len, fields, msg));
	buf = malloc(*len ? *len : 1);
	ck_assert_ptr_nonnull(buf);
	os = pb_ostream_from_buffer(buf, *len);
	ck_assert_msg(pb_encode(&os, fields, msg), "encode: %s", PB_GET_ERROR(&os));
	ck_assert_uint_eq(os.bytes_written, *len);
	return buf;
}

static void decode(const pb_msgdesc_t *fields, void *msg, const uint8_t *buf, size_t len)
{
	pb_istream_t is = pb_istream_from_buffer(buf, len);

	ck_assert_msg(pb_decode(&is, fields, msg), "decode: %s", PB_GET_ERROR(&is));
}

START_TEST(stream_message_roundtrips_with_big_payload_and_attributes)
{
	danube_StreamMessage_AttributesEntry attrs[3] = {
		{"content-type", "application/json"},
		{"empty", ""},
		{"k\xc3\xa9y", "v\xc3\xa9lue"},
	};
	danube_StreamMessage in = danube_StreamMessage_init_zero;
	danube_StreamMessage out = danube_StreamMessage_init_zero;
	struct blob payload = make_payload(BIG_PAYLOAD), got = {NULL, 0};
	uint8_t *buf;
	size_t len;

	in.request_id = UINT64_MAX;
	in.has_msg_id = true;
	in.msg_id.producer_id = 0x8000000000000001ull;
	in.msg_id.topic_name = "/default/t-part-2";
	in.msg_id.broker_addr = "http://127.0.0.1:6650";
	in.msg_id.topic_offset = 123456789012ull;
	in.payload.funcs.encode = encode_blob;
	in.payload.arg = &payload;
	in.publish_time = 1764201600123ull;
	in.producer_name = "prod-1";
	in.subscription_name = "";
	in.attributes_count = 3;
	in.attributes = attrs;
	in.has_schema_id = true;
	in.schema_id = 0; /* explicit presence: a set zero must survive */
	in.has_schema_version = true;
	in.schema_version = 7;
	in.routing_key = "user-42";

	buf = encode(danube_StreamMessage_fields, &in, &len);
	ck_assert_uint_gt(len, BIG_PAYLOAD);
	out.payload.funcs.decode = decode_blob;
	out.payload.arg = &got;
	decode(danube_StreamMessage_fields, &out, buf, len);

	ck_assert_uint_eq(out.request_id, in.request_id);
	ck_assert(out.has_msg_id);
	ck_assert_uint_eq(out.msg_id.producer_id, in.msg_id.producer_id);
	ck_assert_str_eq(out.msg_id.topic_name, in.msg_id.topic_name);
	ck_assert_str_eq(out.msg_id.broker_addr, in.msg_id.broker_addr);
	ck_assert_uint_eq(out.msg_id.topic_offset, in.msg_id.topic_offset);
	ck_assert_ptr_nonnull(got.data);
	ck_assert_uint_eq(got.len, BIG_PAYLOAD);
	ck_assert_int_eq(memcmp(got.data, payload.data, BIG_PAYLOAD), 0);
	ck_assert_uint_eq(out.publish_time, in.publish_time);
	ck_assert_str_eq(out.producer_name, "prod-1");
	/* nanopb sends a non-NULL pointer even when empty; either reads as "" in proto3. */
	ck_assert(out.subscription_name == NULL || out.subscription_name[0] == '\0');
	ck_assert_uint_eq(out.attributes_count, 3);
	for (int i = 0; i < 3; i++) {
		ck_assert_str_eq(out.attributes[i].key, attrs[i].key);
		if (attrs[i].value[0] == '\0')
			ck_assert(out.attributes[i].value == NULL ||
				  out.attributes[i].value[0] == '\0');
		else
			ck_assert_str_eq(out.attributes[i].value, attrs[i].value);
	}
	ck_assert(out.has_schema_id);
	ck_assert_uint_eq(out.schema_id, 0);
	ck_assert(out.has_schema_version);
	ck_assert_uint_eq(out.schema_version, 7);
	ck_assert_str_eq(out.routing_key, "user-42");

	pb_release(danube_StreamMessage_fields, &out);
	ck_assert_ptr_null(out.attributes);
	ck_assert_ptr_null(out.producer_name);
	free(payload.data);
	free(got.data);
	free(buf);
}
END_TEST

START_TEST(stream_message_unset_optionals_stay_unset)
{
	danube_StreamMessage in = danube_StreamMessage_init_zero;
	danube_StreamMessage out = danube_StreamMessage_init_zero;
	struct blob got = {NULL, 0};
	uint8_t *buf;
	size_t len;

	in.has_msg_id = true; /* always sent: the broker requires it */
	in.msg_id.topic_name = "/default/t";
	buf = encode(danube_StreamMessage_fields, &in, &len);
	out.payload.funcs.decode = decode_blob;
	out.payload.arg = &got;
	decode(danube_StreamMessage_fields, &out, buf, len);

	ck_assert(out.has_msg_id);
	ck_assert_str_eq(out.msg_id.topic_name, "/default/t");
	ck_assert_ptr_null(out.msg_id.broker_addr);
	ck_assert(!out.has_schema_id);
	ck_assert(!out.has_schema_version);
	ck_assert_ptr_null(out.routing_key);
	ck_assert_ptr_null(got.data); /* an empty payload is not on the wire */
	ck_assert_uint_eq(out.attributes_count, 0);
	pb_release(danube_StreamMessage_fields, &out);
	free(buf);
}
END_TEST

/* Bytes from Python's protobuf for a known message, so our tags match the reference. */
START_TEST(lookup_response_uses_reference_tags)
{
	/* request_id=3:1, response_type=4:Connect(1), connect_url=5:"u", broker_url=6:"b",
	 * proxy=7:true */
	static const uint8_t wire[] = {0x18, 0x01, 0x20, 0x01, 0x2a, 0x01,
				       'u',  0x32, 0x01, 'b',  0x38, 0x01};
	danube_TopicLookupResponse r = danube_TopicLookupResponse_init_zero;

	decode(danube_TopicLookupResponse_fields, &r, wire, sizeof wire);
	ck_assert_uint_eq(r.request_id, 1);
	ck_assert_int_eq(r.response_type, danube_TopicLookupResponse_LookupType_Connect);
	ck_assert_str_eq(r.connect_url, "u");
	ck_assert_str_eq(r.broker_url, "b");
	ck_assert(r.proxy);
	pb_release(danube_TopicLookupResponse_fields, &r);
}
END_TEST

START_TEST(msgid_topic_offset_is_tag_5)
{
	danube_MsgID m = danube_MsgID_init_zero;
	uint8_t *buf;
	size_t len;

	m.topic_offset = 1;
	buf = encode(danube_MsgID_fields, &m, &len);
	ck_assert_uint_eq(len, 2);
	ck_assert_uint_eq(buf[0], (5u << 3) | 0u);
	free(buf);
}
END_TEST

START_TEST(nack_and_schema_optionals_roundtrip)
{
	danube_NackRequest n = danube_NackRequest_init_zero, nout = danube_NackRequest_init_zero;
	danube_schema_GetSchemaRequest g = danube_schema_GetSchemaRequest_init_zero;
	danube_schema_GetSchemaRequest gout = danube_schema_GetSchemaRequest_init_zero;
	char *filters[] = {"user-*", "eu-west-?"};
	danube_ConsumerRequest c = danube_ConsumerRequest_init_zero;
	danube_ConsumerRequest cout = danube_ConsumerRequest_init_zero;
	uint8_t *buf;
	size_t len;

	n.has_msg_id = true;
	n.has_delay_ms = true;
	n.delay_ms = 250;
	n.reason = "bad record";
	buf = encode(danube_NackRequest_fields, &n, &len);
	decode(danube_NackRequest_fields, &nout, buf, len);
	ck_assert(nout.has_delay_ms);
	ck_assert_uint_eq(nout.delay_ms, 250);
	ck_assert_str_eq(nout.reason, "bad record");
	pb_release(danube_NackRequest_fields, &nout);
	free(buf);

	g.schema_id = 9;
	buf = encode(danube_schema_GetSchemaRequest_fields, &g, &len);
	decode(danube_schema_GetSchemaRequest_fields, &gout, buf, len);
	ck_assert_uint_eq(gout.schema_id, 9);
	ck_assert(!gout.has_version);
	free(buf);

	c.subscription_type = danube_ConsumerRequest_SubscriptionType_KeyShared;
	c.key_filters_count = 2;
	c.key_filters = filters;
	buf = encode(danube_ConsumerRequest_fields, &c, &len);
	decode(danube_ConsumerRequest_fields, &cout, buf, len);
	ck_assert_int_eq(cout.subscription_type, danube_ConsumerRequest_SubscriptionType_KeyShared);
	ck_assert_uint_eq(cout.key_filters_count, 2);
	ck_assert_str_eq(cout.key_filters[0], "user-*");
	ck_assert_str_eq(cout.key_filters[1], "eu-west-?");
	pb_release(danube_ConsumerRequest_fields, &cout);
	free(buf);
}
END_TEST

static Suite *proto_suite(void)
{
	Suite *s = suite_create("proto");
	TCase *tc = tcase_create("danube");

	tcase_add_test(tc, stream_message_roundtrips_with_big_payload_and_attributes);
	tcase_add_test(tc, stream_message_unset_optionals_stay_unset);
	tcase_add_test(tc, lookup_response_uses_reference_tags);
	tcase_add_test(tc, msgid_topic_offset_is_tag_5);
	tcase_add_test(tc, nack_and_schema_optionals_roundtrip);
	suite_add_tcase(s, tc);
	return s;
}

TH_MAIN(proto_suite)
