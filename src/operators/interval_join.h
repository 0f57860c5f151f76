/*
 * interval_join.h — the interval join of two append-only streams, with
 * state cleaned by the watermark (Flink's TimeIntervalJoin, event time).
 *
 *   SELECT … FROM bids b JOIN auctions a ON b.auction = a.id
 *     AND b.ts BETWEEN a.ts AND a.ts + INTERVAL '10 minutes'
 *
 * Inputs: input 0 is the left side laid out as left_schema, input 1 the
 * right as right_schema; both insert-only (an update or delete is an error:
 * the planner plans this operator only over insert-only inputs).  Each side
 * is hash-partitioned by its join-key columns (tm_interval_join_key), as
 * for the regular join.
 *
 * A pair (l, r) matches when every key pair is equal and not NULL, both time
 * columns are not NULL and
 *
 *     r.time + lower_us <= l.time <= r.time + upper_us
 *
 * (the planner turns BETWEEN, <, <=, >, >= and ± INTERVAL into these two
 * inclusive bounds, a strict bound being one microsecond tighter), and
 * `residual` (over left ++ right) is true.
 *
 * Output: an insert-only stream laid out as out_schema (left ++ right):
 * each matching pair once per copy, as soon as its second row arrives;
 * for LEFT, RIGHT and FULL also each outer row that never matched, padded
 * with NULLs, once the watermark passes the last time a row of the other
 * side could still match it (or at the end of input), or at once when its
 * key or time is NULL.
 *
 * Time: with watermark W, a later right row has time >= W, so a left row l
 * can still match only while l.time - lower_us >= W; a right row r while
 * r.time + upper_us >= W.  on_watermark drops the rows past that point (and
 * pads the unmatched outer ones), and forwards W - max(|lower|, |upper|),
 * below which no output row's time can fall.  A row that arrives already
 * past that point (late) is still joined with what the state holds, then
 * dropped (padded at once when it is an unmatched outer row).
 *
 * State (column family `uid`, under the key group of the join key): each
 * side's rows by (join key, time), with a copy count and whether the row
 * ever matched, and a time index per side that on_watermark walks in time
 * order (interval_join.c).  Nothing is cached in memory; the watermark
 * starts unknown after a restore, so cleanup resumes with the next one.
 *
 * Thread: its subtask's.
 */
#ifndef TM_OPERATORS_INTERVAL_JOIN_H
#define TM_OPERATORS_INTERVAL_JOIN_H

#include "expr/expr.h"
#include "operators/join.h"
#include "runtime/operator.h"

typedef struct tm_interval_join_spec {
    tm_join_type_t type;             /* INNER, LEFT, RIGHT or FULL */
    const tm_schema_t *left_schema;  /* input 0 */
    const tm_schema_t *right_schema; /* input 1 */
    const int *left_keys, *right_keys; /* pairwise, same types; nkeys >= 1 */
    int nkeys;
    int left_time, right_time; /* timestamp or timestamptz columns */
    int64_t lower_us, upper_us; /* r.time + lower <= l.time <= r.time + upper; lower <= upper */
    const tm_expr_t *residual;  /* over left ++ right, or NULL */
    tm_schema_t *out_schema;    /* left ++ right */
} tm_interval_join_spec_t;

int tm_interval_join_new(const void *spec, const tm_operator_ctx_t *ctx,
                         const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                         size_t errstr_size);

/* The exchange keys of the two inputs (tm_exchange_key_t.encode; arg = the spec). */
int tm_interval_join_left_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                              tm_buf_t *out);
int tm_interval_join_right_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                               tm_buf_t *out);

#endif
