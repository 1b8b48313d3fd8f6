/* Exponential backoff with full jitter, deterministic under a seed. */
#include "backoff.h"

#include <time.h>
#include <unistd.h>

uint64_t dc_rand_next(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1DULL;
}

void dc_backoff_init(struct dc_backoff *b, uint64_t initial_ms, uint64_t max_ms, uint64_t seed)
{
	if (seed == 0) {
		struct timespec ts;

		clock_gettime(CLOCK_MONOTONIC, &ts);
		seed = ((uint64_t)ts.tv_nsec << 20) ^ (uint64_t)ts.tv_sec ^
		       ((uint64_t)getpid() << 40);
		if (seed == 0)
			seed = 0x9E3779B97F4A7C15ULL;
	}
	if (initial_ms == 0)
		initial_ms = 1;
	if (max_ms < initial_ms)
		max_ms = initial_ms;
	b->initial_ms = initial_ms;
	b->max_ms = max_ms;
	b->attempt = 0;
	b->rng = seed;
}

uint64_t dc_backoff_ceiling(const struct dc_backoff *b)
{
	uint64_t cap = b->initial_ms;

	for (unsigned i = 0; i < b->attempt && cap < b->max_ms; i++)
		cap = cap > b->max_ms / 2 ? b->max_ms : cap * 2;
	return cap < b->max_ms ? cap : b->max_ms;
}

uint64_t dc_backoff_next(struct dc_backoff *b)
{
	uint64_t cap = dc_backoff_ceiling(b);
	uint64_t span = cap - b->initial_ms;
	uint64_t d = b->initial_ms;

	if (span > 0)
		d += dc_rand_next(&b->rng) % (span + 1);
	if (b->attempt < 64)
		b->attempt++;
	return d;
}

void dc_backoff_reset(struct dc_backoff *b)
{
	b->attempt = 0;
}
