/* Monotonic and wall-clock time helpers. */
#ifndef DC_CLOCK_H
#define DC_CLOCK_H

#include <stdint.h>

/* Milliseconds / microseconds on CLOCK_MONOTONIC: for deadlines and durations. */
uint64_t dc_now_ms(void);
uint64_t dc_now_us(void);

/* Milliseconds since the Unix epoch (CLOCK_REALTIME): for timestamps on the wire. */
uint64_t dc_wall_ms(void);

/* Process CPU time (user + system) in microseconds, for benchmarks. */
uint64_t dc_cpu_us(void);

#endif
