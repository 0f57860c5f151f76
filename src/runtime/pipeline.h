/*
 * pipeline.h — the data plane: source threads, stage subtask threads, sink
 * threads, the queues between them, and the acknowledgement seam.  The graph
 * itself (stages, edges, exchanges) is described through graph.h; this
 * header is the part the coordinator, the admin API and the CLI use.
 *
 *     source ──exchange──► queue ─► stage subtask [op ─► op] ──exchange──► queue ─► sink
 *        ▲                                                                           │
 *        └──────────── acked token (atomic, per source) ◄──────── sink_flush ◄───────┘
 *
 * Acknowledgement policy.  Under TM_ACK_SINK_DURABLE a source's acked token
 * is the minimum, over every sink input slot that carries its tokens, of the
 * highest token of that source the sink has made durable with sink_flush()
 * (or that sink_acked() reported).  Under TM_ACK_CHECKPOINT the acked token
 * only moves when a checkpoint completes: it becomes the token the source
 * recorded with that checkpoint's barrier.
 *
 * Invariants:
 *   1. A token is published as acked only after sink_flush() returned 0 for
 *      every sink slot that received the batches carrying it.
 *   2. A failing sink or stage keeps draining its queue (without writing)
 *      so producers never block forever on a dead consumer; the job stops
 *      with its error.
 *   3. The first error wins; the process exit code is derived from it.
 *
 * Thread: tm_pipeline_* are called from the main (control) thread unless a
 * function says otherwise.
 */
#ifndef TM_RUNTIME_PIPELINE_H
#define TM_RUNTIME_PIPELINE_H

#include "runtime/connector.h"
#include "state/store.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct tm_pipeline tm_pipeline_t;

typedef enum {
    TM_ACK_SINK_DURABLE = 0,
    TM_ACK_CHECKPOINT,
} tm_ack_policy_t;

tm_pipeline_t *tm_pipeline_new(void);
tm_pipeline_t *tm_pipeline_free(tm_pipeline_t *p);

/*
 * Adds an opened source/sink; the pipeline takes ownership.  Returns its
 * node id (graph.h: sources, sinks and stages share one number space) or a
 * negative TM_E*.  Sources and sinks are also numbered among themselves in
 * the order added (0, 1, …): that index is the `i` of the accessors below.
 */
int tm_pipeline_add_source(tm_pipeline_t *p, const tm_connector_t *conn, tm_source_t *src,
                           const char *name);
int tm_pipeline_add_sink(tm_pipeline_t *p, const tm_connector_t *conn, tm_sink_t *sink,
                         const char *name);
/*
 * Key groups of stateless stages' hash exchanges (stateful stages take their
 * stores').  Default 128.
 */
void tm_pipeline_set_max_parallelism(tm_pipeline_t *p, int max_parallelism);
/*
 * With checkpoints, each stateful stage subtask snapshots its store at
 * barrier N into <chk_root>/chk-N/<store dir> before passing the barrier on.
 */
void tm_pipeline_set_state_checkpoint_dir(tm_pipeline_t *p, const char *chk_root);
int tm_pipeline_max_parallelism(const tm_pipeline_t *p);

/* One store of a stateful stage subtask, for _metadata and metrics. */
typedef struct tm_pipeline_store_info {
    const char *stage;     /* the stage's name */
    int stage_idx;         /* index among stages (graph.h: tm_pipeline_nstages) */
    int subtask, parallelism;
    int kg_first, kg_last;
    const char *uids[16];  /* its stateful operators */
    int nuids;
    char dir[256];         /* relative to chk-N: "state/<stage>-<subtask>" */
    tm_store_t *store;
    tm_store_checkpoint_info_t chk; /* of the last snapshot (after all sinks pre-committed N) */
} tm_pipeline_store_info_t;
/* Every store, stage by stage, subtask by subtask.  Thread: main, or any for metrics. */
int tm_pipeline_nstores(const tm_pipeline_t *p);
void tm_pipeline_store_info(const tm_pipeline_t *p, int i, tm_pipeline_store_info_t *out);
/*
 * Store i alone (thread: any).  Metrics use this: store_info's `chk` is
 * written by the subtask at barriers and is only safe to read from the
 * coordinator once every sink pre-committed.
 */
tm_store_t *tm_pipeline_store(const tm_pipeline_t *p, int i);

/* How often a sink makes its writes durable (and so acknowledgeable). */
void tm_pipeline_set_flush_interval(tm_pipeline_t *p, int ms);

/*
 * Checkpointing (thread: main).  With the policy TM_ACK_CHECKPOINT, sinks are
 * flushed and pre-committed at barriers instead of on a timer, and a source's
 * acked token only moves when tm_pipeline_complete() is called.
 */
void tm_pipeline_set_ack_policy(tm_pipeline_t *p, tm_ack_policy_t policy);
/* Asks every source to inject barrier `id` at its next consistent point. */
void tm_pipeline_request_barrier(tm_pipeline_t *p, uint64_t id);
/*
 * True once after a source ended its input and waits for a final checkpoint
 * (connector.h, tm_source_finished): the coordinator then triggers the next
 * checkpoint now instead of after checkpoint_interval.  Thread: main.
 */
bool tm_pipeline_take_checkpoint_wanted(tm_pipeline_t *p);
/*
 * The same, at source position `at` (connector.h, tm_source_barrier_at; 0:
 * anywhere).  tm_pipeline_barrier_missed() says whether a source could not
 * place barrier `id` there and put it where it was instead.
 */
void tm_pipeline_request_barrier_at(tm_pipeline_t *p, uint64_t id, uint64_t at);
bool tm_pipeline_barrier_missed(const tm_pipeline_t *p, uint64_t id);
/* Lets barrier `id` go anywhere after all, and counts it as missed. */
void tm_pipeline_barrier_at_cancel(tm_pipeline_t *p, uint64_t id);
/*
 * Asks the sources to hold their input at their next consistent point until
 * `until_ms` (tm_mono_ms; 0 resumes at once), and how many of them are
 * holding (tm_source_pause_wanted).  Thread: any.
 */
void tm_pipeline_pause_sources(tm_pipeline_t *p, int64_t until_ms);
int tm_pipeline_sources_paused(const tm_pipeline_t *p);
/* True once every sink has pre-committed checkpoint `id`. */
bool tm_pipeline_precommitted(tm_pipeline_t *p, uint64_t id);
/*
 * After all sinks pre-committed `id`: per source its recorded token and
 * position, and per sink its pre-commit handle.  The strings stay valid until
 * the next checkpoint starts.
 */
int tm_pipeline_nsources(const tm_pipeline_t *p);
int tm_pipeline_nsinks(const tm_pipeline_t *p);
const char *tm_pipeline_source_name(const tm_pipeline_t *p, int i);
const char *tm_pipeline_sink_name(const tm_pipeline_t *p, int i);
uint64_t tm_pipeline_source_token(const tm_pipeline_t *p, int i);
const char *tm_pipeline_source_position(const tm_pipeline_t *p, int i);
const char *tm_pipeline_sink_handle(const tm_pipeline_t *p, int i);
/*
 * Checkpoint `id` is durable in _metadata: sinks commit it and sources may
 * acknowledge its tokens.  With a decision-log sink, that sink commits first
 * (passing `progress`, the checkpoint's progress record) and only its
 * successful commit lets the others commit and the sources acknowledge.
 */
void tm_pipeline_complete(tm_pipeline_t *p, uint64_t id, const char *progress);
/* Makes sink node `sink_node` (as returned by add_sink) the job's decision log (DESIGN §6). */
void tm_pipeline_set_decision_log(tm_pipeline_t *p, int sink_node);
/* True once every sink has committed `id`. */
bool tm_pipeline_committed(tm_pipeline_t *p, uint64_t id);
/* Metrics and readiness (thread: any). */
bool tm_pipeline_sources_ready(const tm_pipeline_t *p);
void tm_pipeline_source_counts(const tm_pipeline_t *p, int i, uint64_t *events, uint64_t *bytes,
                               bool *ready);
/*
 * The last watermark source `i` emitted (µs since epoch) in *ts_us; false
 * (and INT64_MIN) before its first.
 */
bool tm_pipeline_source_watermark(const tm_pipeline_t *p, int i, int64_t *ts_us);
/* True while source `i` has told everything downstream that it is idle (evtime.h). */
bool tm_pipeline_source_idle(const tm_pipeline_t *p, int i);
/*
 * The watermark operator `op` of stage `stage` last received (µs since the
 * epoch), the minimum over its subtasks that received one; false before any.
 * Thread: any.
 */
bool tm_pipeline_op_watermark(const tm_pipeline_t *p, int stage, int op, int64_t *ts_us);
/*
 * Generates source node `node`'s watermarks in the runtime (evtime.h) from
 * the event-time column `column` (a table's `watermark` option; NULL: the
 * records' commit time), minus delay_us, per partition, with partitions
 * idle after idle_timeout_ms without input (0: never).  Main thread, before
 * tm_pipeline_start.  0 or TM_EINVAL / TM_ENOMEM.
 */
int tm_pipeline_set_source_event_time(tm_pipeline_t *p, int node, const char *column,
                                      int64_t delay_us, int64_t idle_timeout_ms);
/*
 * Source i's lag: *lag_us, the emit time minus the newest source timestamp
 * (commit time) of its last batch of streamed changes (false before the
 * first), and *lag_bytes as the source set it (-1 unknown).
 */
bool tm_pipeline_source_lag(const tm_pipeline_t *p, int i, int64_t *lag_us, int64_t *lag_bytes);
/* Source i's snapshot progress (tm_source_snapshot_progress); false if it never snapshotted. */
typedef struct tm_snapshot_progress {
    char table[256];
    uint64_t rows;       /* of the current (or last) table */
    double estimate;     /* its estimated rows; < 0 unknown */
    uint64_t tables_done;
    uint64_t rows_done;  /* rows of the tables already finished */
    bool done;           /* the current table is finished */
} tm_snapshot_progress_t;
bool tm_pipeline_source_snapshot(const tm_pipeline_t *p, int i, tm_snapshot_progress_t *out);
/* Sink i's counters and commit-latency histogram (thread: any). */
#define TM_SINK_COMMIT_BUCKETS 12
extern const double tm_sink_commit_bounds[TM_SINK_COMMIT_BUCKETS]; /* seconds, ascending */
typedef struct tm_sink_stats {
    uint64_t records;   /* records written */
    uint64_t commits;   /* commits (2PC) or flushes (at-least-once) timed */
    double commit_seconds; /* their total duration */
    uint64_t buckets[TM_SINK_COMMIT_BUCKETS]; /* cumulative: commits within each bound */
} tm_sink_stats_t;
void tm_pipeline_sink_stats(const tm_pipeline_t *p, int i, tm_sink_stats_t *out);
/* The first error so far (0 if none); safe from any thread. */
int tm_pipeline_error(tm_pipeline_t *p);

/*
 * Checks the graph, creates the operator instances (on this thread), and
 * starts every thread.
 */
int tm_pipeline_start(tm_pipeline_t *p, char *errstr, size_t errstr_size);
/* Asks sources to stop; stages and sinks drain and flush.  Safe from any thread. */
void tm_pipeline_request_stop(tm_pipeline_t *p);
/* True once every thread has finished. */
bool tm_pipeline_done(tm_pipeline_t *p);
/* Joins all threads; returns the first error (0 if none) and its message. */
int tm_pipeline_join(tm_pipeline_t *p, char *errstr, size_t errstr_size);

#endif
