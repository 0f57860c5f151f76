/*
 * operator.h — the one interface every operator implements (DESIGN §13).
 *
 * Flink's StreamOperator / TwoInputStreamOperator in C.  An operator is a
 * descriptor of hooks (tm_operator_ops_t) plus a private instance.  The
 * runtime creates one instance per subtask of the stage that runs it, feeds
 * it batches from one or two inputs, and hands it a collector to write to.
 * Operators never see a queue, a thread or another subtask.
 *
 *     new ──► restore ──► { process | on_watermark | on_barrier }* ──► on_end ──► free
 *
 * Hooks (all on the subtask's thread, never concurrently):
 *
 *   process(op, input, batch, out)  consume one batch of input `input` (0, or
 *       0/1 for two-input operators).  The batch is borrowed: anything kept
 *       after the call is copied (into state, or into an output batch's
 *       arena).  Output goes to `out`; an operator may buffer (mini-batch)
 *       and emit later, but must emit everything it buffered in on_barrier
 *       and on_end.
 *   on_watermark(op, ts_us, out)    the input watermark (minimum over the
 *       inputs, computed by the runtime's valve) advanced to ts_us.  Fire
 *       timers, then return; the runtime forwards the watermark downstream
 *       after this returns (an operator may hold it back by returning a lower
 *       value in *forward_us; NULL hook = forward as is).
 *   on_barrier(op, id, out)         barrier `id` is aligned on every input:
 *       flush buffered work to `out`, and leave every state write committed
 *       to the store.  The runtime snapshots the subtask's store afterwards,
 *       then forwards the barrier.  NULL = nothing buffered.
 *   on_end(op, out)                 every input ended: flush.  NULL = nothing.
 *   restore(op)                     after new, once the store holds the
 *       restored state (checkpoint or savepoint): rebuild in-memory caches.
 *       NULL = nothing to rebuild (state is read from the store on demand).
 *   free(op)                        accepts NULL.
 *
 * Errors: hooks return 0 or a negative TM_E* and fill errstr; the subtask
 * then fails the job.  A *row* error (division by zero, a bad cast) is not a
 * hook error: the operator reports it with tm_operator_row_error(), which
 * applies the job's on_error policy and returns non-zero only when the
 * policy is 'fail'.
 *
 * Collector: tm_collector_emit() takes ownership of the batch (one reference)
 * and may block while downstream queues are full (back-pressure).  Batches
 * emitted carry records whose schema is the operator's output schema; the
 * batch holds the schema references (tm_batch_add).  An output batch may be
 * emitted with count 0 only to carry an ack_token forward.
 *
 * Invariants:
 *   1. One instance is used by one thread (its subtask's) for its whole life.
 *   2. State lives in ctx->store under column family `uid`, keyed by key
 *      group (state/store.h); a subtask only reads and writes key groups in
 *      [ctx->kg_first, ctx->kg_last].
 *   3. After on_barrier returns, everything the operator consumed before the
 *      barrier is reflected in the store or in batches given to the
 *      collector (a checkpoint taken then is consistent).
 *   4. ack_token: the runtime, not the operator, carries input ack tokens to
 *      the output (it sets the token of the last batch emitted per input
 *      batch, or emits an empty one).
 */
#ifndef TM_RUNTIME_OPERATOR_H
#define TM_RUNTIME_OPERATOR_H

#include "core/row.h"
#include "core/schema.h"
#include "state/store.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_collector tm_collector_t;

struct tm_collector {
    /* Takes ownership of `batch`.  0, or TM_ESTOPPED when the job is stopping. */
    int (*emit)(tm_collector_t *c, tm_batch_t *batch);
    void *arg;
};

static inline int tm_collector_emit(tm_collector_t *c, tm_batch_t *batch)
{
    return c->emit(c, batch);
}

/*
 * An operator's output batch *cur (NULL before the first record):
 * tm_collector_room() emits it when it is full and makes sure one with room
 * exists; tm_collector_flush() emits it if it holds anything.  `who` names the
 * operator in the message when the collector refuses the batch (the job is
 * stopping).  0, TM_ENOMEM, or the collector's code with errstr filled.
 * Thread: the operator's.
 */
int tm_collector_room(tm_collector_t *c, tm_batch_t **cur, const char *who, char *errstr,
                      size_t errstr_size);
int tm_collector_flush(tm_collector_t *c, tm_batch_t **cur, const char *who, char *errstr,
                       size_t errstr_size);

/* What to do with a row whose expression fails (SET on_error). */
typedef enum tm_error_policy {
    TM_ON_ERROR_FAIL = 0,
    TM_ON_ERROR_SKIP,
    TM_ON_ERROR_DEAD_LETTER,
} tm_error_policy_t;

/*
 * Per-instance counters, read by the metrics endpoint from any thread.
 * records_in/records_out are counted by the runtime (around process() and
 * at the collector), never by operators; row errors by
 * tm_operator_row_error(); state_reads and state_rows by the operator.
 */
typedef struct tm_operator_metrics {
    _Atomic uint64_t records_in;
    _Atomic uint64_t records_out;
    _Atomic uint64_t row_errors;   /* rows that failed an expression */
    _Atomic uint64_t rows_skipped; /* of which dropped by on_error = 'skip' / 'dead-letter' */
    _Atomic uint64_t state_reads;  /* state accesses (one per key per batch when mini-batched) */
    _Atomic uint64_t dead_letters; /* of rows_skipped, handed to the dead-letter output */
    /*
     * Rows held in state per input (a join: [0] left, [1] right, copies
     * counted), a gauge set by the operator; state_inputs is how many of the
     * two it keeps, 0 for an operator that does not count.
     */
    _Atomic int64_t state_rows[2];
    _Atomic int state_inputs;
    /* Lookup joins (operators/lookup_join.h), per distinct key of a batch. */
    _Atomic uint64_t lookup_cache_hits;
    _Atomic uint64_t lookup_cache_misses;
    _Atomic uint64_t lookup_queries; /* lookup_fetch calls (one round trip each) */
    /*
     * Window aggregation (operators/window_agg.h): rows (and retractions)
     * that arrived behind the watermark for every window they belong to.
     */
    _Atomic uint64_t late_rows;
} tm_operator_metrics_t;

/* Where an operator instance runs; filled by the runtime. */
typedef struct tm_operator_ctx {
    const char *uid;      /* stable operator uid (column family name) */
    const char *job;      /* the job's name */
    int subtask;          /* 0 .. parallelism-1 */
    int parallelism;      /* subtasks of this stage */
    int max_parallelism;  /* key groups */
    int kg_first, kg_last; /* the key groups this subtask owns */
    tm_store_t *store;    /* this subtask's store; NULL for a stateless stage */
    tm_error_policy_t on_error;
    tm_operator_metrics_t *metrics; /* owned by the runtime; never NULL */
    /*
     * Dead-letter side output (on_error = 'dead-letter'; runtime/deadletter.h
     * when the pipeline has a dead-letter directory); NULL: log only.  It
     * cannot fail the row: a writer keeps its I/O error, and the runtime
     * fails the job with it after the batch.
     */
    void (*dead_letter)(void *arg, const char *uid, const tm_record_t *rec, const char *reason);
    void *dead_letter_arg;
    /*
     * The operator's side output (graph.h, tm_pipeline_link_side): a second
     * collector whose batches go to the edges linked from this operator's
     * side, e.g. the late rows of a window aggregation to the job's
     * late_data_sink.  NULL when no edge takes it: the operator then writes
     * nothing there, so the main path costs the same as without one.  Same
     * thread and ownership rules as the main collector.
     */
    tm_collector_t *side_out;
} tm_operator_ctx_t;

typedef struct tm_operator tm_operator_t; /* operator-private */

typedef struct tm_operator_ops {
    const char *name; /* "calc", "upsert", "group_agg", … (explain, logs) */
    int ninputs;      /* 1 or 2 */
    int (*process)(tm_operator_t *op, int input, const tm_batch_t *batch, tm_collector_t *out,
                   char *errstr, size_t errstr_size);
    int (*on_watermark)(tm_operator_t *op, int64_t ts_us, int64_t *forward_us,
                        tm_collector_t *out, char *errstr, size_t errstr_size);
    int (*on_barrier)(tm_operator_t *op, uint64_t id, tm_collector_t *out, char *errstr,
                      size_t errstr_size);
    int (*on_end)(tm_operator_t *op, tm_collector_t *out, char *errstr, size_t errstr_size);
    int (*restore)(tm_operator_t *op, char *errstr, size_t errstr_size);
    void (*free)(tm_operator_t *op);
} tm_operator_ops_t;

/*
 * How the runtime makes an instance: the planner hands the graph a factory
 * per operator of a stage; the runtime calls it once per subtask, on the
 * main thread before the threads start.  `spec` is the plan's description
 * (borrowed; it outlives the job).  On success *out is the instance and
 * *ops its hooks.
 */
typedef int (*tm_operator_new_fn)(const void *spec, const tm_operator_ctx_t *ctx,
                                  const tm_operator_ops_t **ops, tm_operator_t **out,
                                  char *errstr, size_t errstr_size);

typedef struct tm_operator_factory {
    tm_operator_new_fn make;
    const void *spec;
    const char *uid;   /* stable uid; stateful operators own column family `uid` */
    bool stateful;     /* needs ctx->store */
} tm_operator_factory_t;

/*
 * Applies the job's on_error policy to a row that failed in operator `ctx`
 * with message `reason`: 'fail' fills errstr and returns TM_EINVAL (the
 * caller returns it); 'skip' counts and logs (rate-limited) and returns 0;
 * 'dead-letter' also hands the record to ctx->dead_letter.  Thread: the
 * operator's.
 */
int tm_operator_row_error(const tm_operator_ctx_t *ctx, const tm_record_t *rec,
                          const char *reason, char *errstr, size_t errstr_size);

/*
 * The rows a record of a retract stream takes away and adds, for an operator
 * that keeps state by row (join, aggregates, Top-N): img[0] the row it
 * retracts (a delete's, an update's old row), img[1] the row it adds (an
 * insert's, a snapshot read's, an update's new row); both NULL for a record
 * without rows (a logical decoding message).  An update or a delete without
 * its before image cannot be retracted (TM_EINVAL), nor can a TRUNCATE, which
 * names no rows (TM_EUNSUPPORTED); errstr names operator ctx->uid.
 */
int tm_operator_images(const tm_operator_ctx_t *ctx, const tm_record_t *rec,
                       const tm_row_t *img[2], char *errstr, size_t errstr_size);

#endif
