/*
 * clock.h — the two clocks tidemark reads.
 *
 * Monotonic time for intervals, deadlines and rates (never jumps); wall time
 * for values that leave the process (event timestamps, log lines, metadata).
 * Thread: any.
 */
#ifndef TM_CORE_CLOCK_H
#define TM_CORE_CLOCK_H

#include <stdint.h>
#include <time.h>

static inline int64_t tm_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t tm_mono_ms(void)
{
    return tm_mono_us() / 1000;
}

static inline int64_t tm_wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

#endif
