/*
 * libFuzzer target for the gRPC frame path: the de-framer fed the same bytes
 * whole and in fuzzer-chosen pieces must agree, and percent-decoding must
 * stay inside its buffer.
 */
#include "h2/grpc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct digest {
	size_t count, bytes;
	uint64_t hash;
};

static void absorb(void *arg, const uint8_t *buf, size_t len)
{
	struct digest *d = arg;

	d->count++;
	d->bytes += len;
	/* FNV-1a over lengths and bytes: touches every byte ASan can check. */
	d->hash = (d->hash ^ len) * 1099511628211ULL;
	for (size_t i = 0; i < len; i++)
		d->hash = (d->hash ^ buf[i]) * 1099511628211ULL;
}

static int run(const uint8_t *p, size_t n, uint32_t max, uint8_t seed, struct digest *out)
{
	struct dc_grpc_deframer d;
	uint64_t rng = seed * 2654435761u + 1;
	int rv = 0;

	dc_grpc_deframer_init(&d, max);
	memset(out, 0, sizeof(*out));
	out->hash = 1469598103934665603ULL;
	while (n > 0) {
		size_t chunk = n;

		if (seed != 0) {
			rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
			chunk = 1 + (size_t)(rng >> 33) % 17;
			if (chunk > n)
				chunk = n;
		}
		rv = dc_grpc_deframer_feed(&d, p, chunk, absorb, out);
		if (rv != 0)
			break;
		p += chunk;
		n -= chunk;
	}
	dc_grpc_deframer_free(&d);
	return rv;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct digest whole, pieces;
	char small[8], big[512];
	uint32_t max;
	int rv1, rv2;

	if (size < 2)
		return 0;
	/* Small limits, so the size check is reached as often as the rest. */
	max = (uint32_t)data[0] * 3 + 1;
	rv1 = run(data + 2, size - 2, max, 0, &whole);
	rv2 = run(data + 2, size - 2, max, data[1] | 1, &pieces);
	if (rv1 != rv2 || whole.count != pieces.count || whole.bytes != pieces.bytes ||
	    whole.hash != pieces.hash)
		abort();

	dc_grpc_percent_decode((const char *)data, size, small, sizeof(small));
	if (strlen(small) >= sizeof(small))
		abort();
	dc_grpc_percent_decode((const char *)data, size, big, sizeof(big));
	if (strlen(big) >= sizeof(big))
		abort();
	(void)dc_grpc_code_name((int)data[0] - 8);
	return 0;
}
