/* Exponential backoff with full jitter, deterministic under a seed. */
#ifndef DC_BACKOFF_H
#define DC_BACKOFF_H

#include <stdint.h>

struct dc_backoff {
	uint64_t initial_ms; /* the first ceiling, and the floor of every delay */
	uint64_t max_ms;     /* no delay exceeds this */
	unsigned attempt;    /* delays handed out since the last reset */
	uint64_t rng;        /* xorshift64* state, never 0 */
};

/* seed 0 picks a seed from the clock and the pid; tests pass their own. */
void dc_backoff_init(struct dc_backoff *b, uint64_t initial_ms, uint64_t max_ms, uint64_t seed);

/*
 * The next delay: uniform in [initial, min(max, initial * 2^attempt)].
 * The floor keeps a crash loop from spinning at 0 ms; the jitter spreads
 * reconnecting peers apart.
 */
uint64_t dc_backoff_next(struct dc_backoff *b);

/* The ceiling the next call will draw under (for logs and tests). */
uint64_t dc_backoff_ceiling(const struct dc_backoff *b);

void dc_backoff_reset(struct dc_backoff *b);

/* A small seeded PRNG shared by the library (xorshift64*). */
uint64_t dc_rand_next(uint64_t *state);

#endif
