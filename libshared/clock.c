/* Monotonic and wall-clock time helpers. */
#include "clock.h"

#include <time.h>

static uint64_t ts_us(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

uint64_t dc_now_us(void)
{
	return ts_us(CLOCK_MONOTONIC);
}

uint64_t dc_now_ms(void)
{
	return ts_us(CLOCK_MONOTONIC) / 1000u;
}

uint64_t dc_wall_ms(void)
{
	return ts_us(CLOCK_REALTIME) / 1000u;
}

uint64_t dc_cpu_us(void)
{
	return ts_us(CLOCK_PROCESS_CPUTIME_ID);
}
