/*
 * libFuzzer target for the protobuf decoding path of received messages: the
 * bytes are de-framed as a gRPC stream, and each message decoded as a
 * danube.StreamMessage exactly as the consumer does (payload by callback,
 * strings and maps allocated), then released.
 */
#include "danube/internal.h"
#include "h2/grpc.h"

#include <stdint.h>
#include <stdlib.h>

#include "danube/DanubeApi.pb.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void decode_one(void *arg, const uint8_t *buf, size_t len)
{
	danube_StreamMessage sm = danube_StreamMessage_init_zero;
	struct dn_bytes payload = {0};
	pb_istream_t is = pb_istream_from_buffer(buf, len);
	size_t *decoded = arg;

	sm.payload.funcs.decode = dn_pb_decode_bytes;
	sm.payload.arg = &payload;
	if (pb_decode(&is, danube_StreamMessage_fields, &sm)) {
		/* Touch what the consumer reads, so a dangling pointer shows. */
		for (pb_size_t i = 0; i < sm.attributes_count; i++) {
			if (sm.attributes[i].key)
				*decoded += sm.attributes[i].key[0] != 0;
			if (sm.attributes[i].value)
				*decoded += sm.attributes[i].value[0] != 0;
		}
		if (payload.len > 0)
			*decoded += payload.data[payload.len - 1];
		(*decoded)++;
	}
	pb_release(danube_StreamMessage_fields, &sm);
	free(payload.data);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct dc_grpc_deframer d;
	size_t decoded = 0;

	/* The raw bytes as one message, then as a framed stream. */
	decode_one(&decoded, data, size);
	dc_grpc_deframer_init(&d, 1u << 20);
	dc_grpc_deframer_feed(&d, data, size, decode_one, &decoded);
	dc_grpc_deframer_free(&d);
	return 0;
}
