/*
 * evtime.h — watermark generation for one source (DESIGN §2, §4): the one
 * place that turns the event times of a source's records into the source's
 * watermark and idle status.  pipeline.c runs it in the source-output path
 * (tm_source_emit*, tm_source_tick); connectors only say which partition a
 * record came from.
 *
 * Bounded out-of-orderness, per partition:
 *
 *     partition p:  max_us[p] = newest event time of its records (NULLs skipped)
 *     watermark  =  min over live partitions of (max_us[p] - delay)
 *     live       =  not idle: a record (or partition activity) within idle_timeout
 *
 * The event time of a record is the value of the `watermark` column of its
 * row (the after image, else the before image; looked up by name in the
 * record's schema), or, in commit-time mode (no column), the record's
 * source commit time (src.ts_us, else proc_us).
 *
 *     partition:  new ──first record──► has max ──no input for idle_timeout──► idle
 *                  │                       ▲                                      │
 *                  └──no input for ────────┼───────── record / activity ◄─────────┘
 *                     idle_timeout ──► idle
 *
 * Invariants:
 *   1. A live partition without any event time yet holds the watermark back
 *      entirely (tm_evtime_current reports none).
 *   2. Records with a NULL event time (or whose schema lacks the column) do
 *      not move their partition's maximum, but do make it live.
 *   3. The watermark this reports is not monotonic by itself (a partition
 *      that comes back from idle may pull the minimum down); the runtime
 *      only ever emits values above the last one emitted.
 *   4. Per record the cost is a schema pointer compare, a NULL bit and an
 *      integer compare; the column index is resolved once per schema, and a
 *      few schemas (the tables of a database stream) stay resolved.  The
 *      cache holds a reference to each schema, so an address is never
 *      reused for another schema while it is cached.
 *
 * Thread: the source's own (or the main thread before the source starts).
 */
#ifndef TM_RUNTIME_EVTIME_H
#define TM_RUNTIME_EVTIME_H

#include "core/row.h"
#include "core/schema.h"

#include <stdbool.h>
#include <stdint.h>

typedef struct tm_evtime_part {
    int64_t max_us;    /* newest event time, INT64_MIN before the first */
    int64_t active_ms; /* monotonic time of the last input, or of the partition's start */
} tm_evtime_part_t;

#define TM_EVTIME_SCHEMAS 8

typedef struct tm_evtime_col {
    tm_schema_t *schema; /* one reference */
    int index;           /* -1: the schema has no such timestamp column */
} tm_evtime_col_t;

typedef struct tm_evtime {
    char *column;            /* event-time column; NULL: commit time */
    int64_t delay_us;        /* bounded out-of-orderness, >= 0 */
    int64_t idle_timeout_ms; /* 0: partitions never become idle */
    tm_evtime_part_t *parts;
    int nparts, capparts;
    tm_evtime_col_t cols[TM_EVTIME_SCHEMAS]; /* the column's index per schema */
    int ncols, next_col;
    bool warned; /* a schema without the column was logged */
} tm_evtime_t;

/*
 * Sets up a generator with one partition (number 0), live from now_ms.
 * `column` is copied (NULL for commit time).  0, TM_EINVAL for a negative
 * delay or idle timeout, TM_ENOMEM.
 */
int tm_evtime_init(tm_evtime_t *g, const char *column, int64_t delay_us,
                   int64_t idle_timeout_ms, int64_t now_ms);
/* Releases it.  Accepts a zeroed struct. */
void tm_evtime_destroy(tm_evtime_t *g);
/*
 * The source reads at least n partitions (numbers 0 .. n-1); new ones are
 * live from now_ms (and hold the watermark back until their first record or
 * their idle timeout).  Never shrinks.  0 or TM_ENOMEM.
 */
int tm_evtime_partitions(tm_evtime_t *g, int n, int64_t now_ms);
/* Partition `part` had input that is not a record (a tombstone, a reassignment). */
void tm_evtime_touch(tm_evtime_t *g, int part, int64_t now_ms);
/*
 * Observes the records of an emitted batch: record i came from partition
 * parts[i], or from `part` when parts is NULL.  A partition number beyond
 * the known ones adds partitions.  0 or TM_ENOMEM (nothing is lost but the
 * observation).
 */
int tm_evtime_observe(tm_evtime_t *g, const tm_batch_t *batch, int part, const int32_t *parts,
                      int64_t now_ms);
/*
 * The watermark now: true with *wm_us set when every live partition has an
 * event time (invariant 1) and at least one is live.  *all_idle is set
 * when there are partitions and every one of them is idle.
 */
bool tm_evtime_current(const tm_evtime_t *g, int64_t now_ms, int64_t *wm_us, bool *all_idle);

#endif
