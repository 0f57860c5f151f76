/*
 * evstate.h — event-time state shared by the operators that keep timers:
 * window aggregation (window_agg.c), window Top-N (window_rank.c) and the
 * interval join (interval_join.c).
 *
 * Role: their state keys hold times in one order-preserving encoding, so
 * that a key range scans timers in time order, and each of them records its
 * watermark at every barrier in every key group it owns, so that a job
 * restored with other key-group ranges (rescale) starts from a watermark
 * every one of its key groups had passed.  One copy of both, here.
 *
 * Invariants:
 *   1. tm_evstate_put_time() writes 8 bytes whose unsigned byte order is
 *      the signed order of the times (big-endian, sign bit flipped).
 *   2. A timer's key starts with "t" and its due time (tm_evstate_earliest_timers).
 *   3. The watermark record of a key group is the key "m" of the operator's
 *      column family, 8 bytes in that encoding.
 *
 * Thread: the operator's subtask.
 */
#ifndef TM_OPERATORS_EVSTATE_H
#define TM_OPERATORS_EVSTATE_H

#include "core/buf.h"
#include "state/store.h"

#include <stdbool.h>
#include <stdint.h>

void tm_evstate_put_time(uint8_t *p, int64_t t);
int64_t tm_evstate_get_time(const uint8_t *p);
/* a + b, saturated: times near the ends of int64 never wrap. */
int64_t tm_evstate_sat_add(int64_t a, int64_t b);

/*
 * Timers are keys "t" + due time (8 bytes, the encoding above) + …, a range
 * ordered by time in each key group.  Sets kg_due[kg - kg_first] to each
 * owned key group's earliest timer and *next to the earliest of all
 * (INT64_MAX: none), seeking `it` (an iterator over the "t" range).
 */
int tm_evstate_earliest_timers(tm_store_iter_t *it, int kg_first, int kg_last, int64_t *kg_due,
                               int64_t *next, char *errstr, size_t errstr_size);

/* Puts the watermark record of every key group in [kg_first, kg_last] into the write batch. */
int tm_evstate_save_watermark(tm_store_batch_t *wb, tm_store_cf_t *cf, int kg_first, int kg_last,
                              int64_t wm);
/*
 * Reads the watermark records of [kg_first, kg_last] and sets *wm to the
 * lowest (the one every key group passed) and *found to whether any had one.
 * `val` is scratch; `what` names the operator in an error (a malformed record
 * is TM_ECORRUPT).
 */
int tm_evstate_restore_watermark(tm_store_t *store, tm_store_cf_t *cf, int kg_first, int kg_last,
                                 tm_buf_t *val, const char *what, int64_t *wm, bool *found,
                                 char *errstr, size_t errstr_size);

#endif
