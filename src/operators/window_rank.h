/*
 * window_rank.h — window Top-N (Flink's WindowRankOperator): the top N rows
 * of every window, emitted once when the window closes.
 *
 *   SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY window_start,
 *                  window_end [, k] ORDER BY v DESC) AS rn
 *                  FROM <window aggregation>) t WHERE rn <= N
 *
 * Input: an insert-only stream (a window aggregation's output, through
 * calcs) laid out as spec->topn.in_schema, hash-partitioned by the
 * partition columns (tm_topn_key with arg &spec->topn).  The partition
 * includes window_end (spec->end_col), so a partition is one window of one
 * key.  A row arriving for a window whose window_time (window_end - 1µs) the
 * watermark already reached is late: it is counted in metrics->late_rows
 * and dropped (the window's rows were already emitted).
 *
 * Output: insert-only.  When the watermark reaches a partition's
 * window_time (on_watermark), or at the end of a bounded input (on_end), its
 * top N rows are emitted as inserts, rank r = 1..N in spec->topn.rn_col,
 * in the layout of tm_topn_spec_t (topn.h), and its state is dropped.  Ties
 * and NULL order as in topn.h.  A stopping process (core/shutdown.h) keeps
 * unfired windows in the final checkpoint instead, as window_agg does.
 *
 * State: column family `uid`, keyed by key group (window_rank.c gives the
 * layout): at most N rows per partition (an insert-only input never brings
 * back a row below rank N) and one timer per partition, both in the store,
 * so they survive checkpoints, savepoints and rescaling.
 *
 * A window Top-N (or deduplication, rn = 1) read straight from a window
 * TVF, FROM TUMBLE/HOP/CUMULATE(t, …) without GROUP BY, gets its window
 * columns from the window TVF operator (tm_window_tvf_new, Flink's
 * WindowTableFunctionOperator): stateless, it emits every insert once per
 * window it belongs to (tm_window_assign), with window_start, window_end
 * and window_time appended; rows without an event time are in no window.
 *
 * Thread: its subtask's.
 */
#ifndef TM_OPERATORS_WINDOW_RANK_H
#define TM_OPERATORS_WINDOW_RANK_H

#include "operators/topn.h"
#include "operators/window_agg.h"
#include "runtime/operator.h"

typedef struct tm_window_rank_spec {
    /* Partition, order, N and layout; rank_number and append_only are ignored. */
    tm_topn_spec_t topn;
    int end_col; /* input column of window_end (timestamp or timestamptz, a partition column) */
} tm_window_rank_spec_t;

int tm_window_rank_new(const void *spec, const tm_operator_ctx_t *ctx,
                       const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                       size_t errstr_size);

typedef struct tm_window_tvf_spec {
    /* in_schema, kind (TUMBLE, HOP or CUMULATE), time_col, size_us, slide_us; the rest unused. */
    tm_window_agg_spec_t win;
    tm_schema_t *out_schema; /* in_schema's columns, then window_start, window_end, window_time */
} tm_window_tvf_spec_t;

/* The window TVF operator (above); its input must be insert-only. */
int tm_window_tvf_new(const void *spec, const tm_operator_ctx_t *ctx,
                      const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                      size_t errstr_size);

#endif
