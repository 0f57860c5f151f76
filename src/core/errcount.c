/*
 * errcount.c — process-wide error counters by kind (see errcount.h).
 *
 * Thread: any.
 */
#include "core/errcount.h"

#include <stdatomic.h>

static _Atomic uint64_t counts[TM_ERRKIND_COUNT];

static const char *const names[TM_ERRKIND_COUNT] = {
    [TM_ERRKIND_SOURCE_CONNECTION] = "source_connection",
    [TM_ERRKIND_SINK_CONNECTION] = "sink_connection",
    [TM_ERRKIND_ROW_EXPRESSION] = "row_expression",
    [TM_ERRKIND_DECODE] = "decode",
    [TM_ERRKIND_CHECKPOINT_FAILED] = "checkpoint_failed",
    [TM_ERRKIND_DEAD_LETTER] = "dead_letter",
};

void tm_errors_count(tm_errkind_t kind)
{
    if ((unsigned)kind < TM_ERRKIND_COUNT)
        atomic_fetch_add_explicit(&counts[kind], 1, memory_order_relaxed);
}

uint64_t tm_errors_total(tm_errkind_t kind)
{
    if ((unsigned)kind >= TM_ERRKIND_COUNT)
        return 0;
    return atomic_load_explicit(&counts[kind], memory_order_relaxed);
}

const char *tm_errkind_name(tm_errkind_t kind)
{
    return (unsigned)kind < TM_ERRKIND_COUNT ? names[kind] : "unknown";
}
