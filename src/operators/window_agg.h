/*
 * window_agg.h — window aggregation over the window table-valued functions
 * TUMBLE, HOP, CUMULATE and SESSION (DESIGN §4, §8; Flink's
 * WindowAggOperator / WindowOperator with an event-time trigger).
 *
 * Input: a retract stream (every update and delete carries the row it
 * retracts) laid out as spec->in_schema: the planner puts a calc before it
 * that computes the event-time column, the non-window group keys and the
 * aggregate arguments.  The operator assigns each row to its windows itself
 * (the TVF adds no physical columns), so a HOP row is not copied once per
 * window on its way here.  Input is hash-partitioned by the non-window group
 * key (tm_window_agg_key); a query grouped by the window alone runs on one
 * subtask.
 *
 * Windows (µs, aligned to the Unix epoch as Flink's are with offset 0; a
 * window is [start, end), its window_time is end - 1µs):
 *   TUMBLE(size)          start = floor(ts / size) * size
 *   HOP(slide, size)      the size / slide windows [s, s + size) with
 *                         s = floor(ts / slide) * slide - k * slide, s > ts - size
 *   CUMULATE(step, size)  [floor(ts / size) * size, that + k * step) for every
 *                         k * step in (ts - start, size]
 *   SESSION(gap)          per group key: [ts, ts + gap), merged with every
 *                         window of the key it intersects (touching counts)
 *
 * Firing: a window fires once the input watermark reaches its window_time
 * (on_watermark), or at the end of a bounded input (on_end), and emits one
 * insert per (group key, window) with rows: the output is insert-only.  With
 * allowed_lateness L > 0 a fired window's state is kept until the watermark
 * reaches window_time + L; a change for it in that time emits a correction
 * (an update from the old result to the new one, a delete when the window
 * became empty) and the output is a retract stream.
 *
 * Late rows: a row image whose every window has window_time + L at or
 * behind the watermark (or a retraction of a row no window holds) is late:
 * it is counted in metrics->late_rows and logged (rate-limited), never
 * applied.  When the spec has a late_schema and the runtime gave the
 * operator a side output (ctx->side_out: the job's late_data_sink), each
 * late image is also written there, as an insert of late_schema
 * (tm_window_agg_late_schema), in the same call: one side row per counted
 * late image, so the count and the side output agree.
 *
 * Stop vs end: on_end fires every window (the end of a bounded input, as
 * Flink's MAX_WATERMARK), except when the process is stopping
 * (tm_shutdown_stopping(), core/shutdown.h): a stopped job keeps its windows
 * in the final checkpoint and fires them after a restart.
 *
 * State: column family `uid`, keyed by key group (window_agg.c gives the
 * layout).  Windows and their timers (a key range ordered by time) both
 * live in the store, so they survive checkpoints, savepoints and rescaling.
 *
 * Thread: its subtask's.
 */
#ifndef TM_OPERATORS_WINDOW_AGG_H
#define TM_OPERATORS_WINDOW_AGG_H

#include "expr/agg.h"
#include "runtime/operator.h"

#include <stdint.h>

typedef enum tm_window_kind {
    TM_WINDOW_TUMBLE = 1,
    TM_WINDOW_HOP,
    TM_WINDOW_SESSION,
    TM_WINDOW_CUMULATE,
} tm_window_kind_t;

/* out_cols values naming a window column instead of an input column. */
#define TM_WINDOW_COL_START (-1)
#define TM_WINDOW_COL_END (-2)
#define TM_WINDOW_COL_TIME (-3)

/* The most windows one row may belong to (HOP size / slide, CUMULATE size / step). */
#define TM_WINDOW_MAX_PER_ROW 1000

typedef struct tm_window_agg_spec {
    const tm_schema_t *in_schema;
    tm_window_kind_t kind;
    int time_col;      /* input column of the event time (timestamp or timestamptz) */
    int64_t size_us;   /* TUMBLE, HOP, CUMULATE: the window size; SESSION: the gap */
    int64_t slide_us;  /* HOP: the slide; CUMULATE: the step; otherwise size_us */
    const int *key_cols; /* input columns of the non-window group key */
    int nkey;
    /* Per output group column: an input column, or a TM_WINDOW_COL_* value. */
    const int *out_cols;
    int ngroup;
    const tm_agg_call_t *aggs; /* arg = input column, -1 for count(*) */
    int naggs;
    int64_t allowed_lateness_us; /* 0: a window's state goes when it fires */
    tm_schema_t *out_schema;     /* ngroup + naggs columns */
    /*
     * The rows late images are written as to the side output
     * (tm_window_agg_late_schema, with the late sink's identity), or NULL:
     * late rows are only counted and logged.
     */
    tm_schema_t *late_schema;
} tm_window_agg_spec_t;

/* Columns a late row adds after the input's (operator … reason, see below). */
#define TM_WINDOW_LATE_EXTRA 5

/*
 * The layout of the late rows of a window aggregation: every column of
 * spec->in_schema, then `operator` (text: the uid), `window_start` and
 * `window_end` (the last window the row was late for; NULL when it has
 * none), `watermark` (the operator's watermark then; these three of the time
 * column's type) and `reason` (text: 'late' for an insert or the new image
 * of an update, 'late retraction' for a delete or an old image).  An added
 * name that an input column already has gets the prefix `late_`.  NULL when
 * memory ran out.  Thread: any.
 */
tm_schema_t *tm_window_agg_late_schema(const tm_window_agg_spec_t *spec);

int tm_window_agg_new(const void *spec, const tm_operator_ctx_t *ctx,
                      const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                      size_t errstr_size);

/* The exchange key of the input (tm_exchange_key_t.encode; arg = the spec). */
int tm_window_agg_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                      tm_buf_t *out);

/*
 * The windows of TUMBLE, HOP or CUMULATE that contain `ts` (SESSION: the
 * proto-window [ts, ts + gap)), at most `max`: starts[i], ends[i].  Returns
 * how many.  Pure; thread: any.
 */
int tm_window_assign(const tm_window_agg_spec_t *spec, int64_t ts, int64_t *starts,
                     int64_t *ends, int max);

#endif
