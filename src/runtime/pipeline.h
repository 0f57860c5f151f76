/*
 * pipeline.h — the data plane: source threads, sink threads, the queues
 * between them, and the acknowledgement seam.
 *
 *     source thread ──emit──► queue ──► sink thread ──write/flush──► target
 *          ▲                                   │
 *          └────── acked token (atomic) ◄──────┘  (after sink_flush)
 *
 * Acknowledgement policy.  Under TM_ACK_SINK_DURABLE (the only policy until
 * checkpoints exist) a source's acked token is the minimum, over the sinks it
 * feeds, of the highest ack_token each has made durable with sink_flush().
 * The checkpoint coordinator will replace this with TM_ACK_CHECKPOINT, where
 * the acked token only moves when a checkpoint completes; sources do not
 * change, they only read tm_source_acked().
 *
 * Invariants:
 *   1. A token is published as acked only after sink_flush() returned 0 for
 *      every sink that received the batches carrying it.
 *   2. A failing sink keeps draining its queue (without writing) so sources
 *      never block forever on a dead consumer; the job stops with its error.
 *   3. The first error wins; the process exit code is derived from it.
 *
 * Thread: tm_pipeline_* are called from the main (control) thread.
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

/* Adds an opened source/sink; the pipeline takes ownership.  Returns its index. */
int tm_pipeline_add_source(tm_pipeline_t *p, const tm_connector_t *conn, tm_source_t *src,
                           const char *name);
int tm_pipeline_add_sink(tm_pipeline_t *p, const tm_connector_t *conn, tm_sink_t *sink,
                         const char *name);
/* Routes every batch of source `src_idx` to sink `sink_idx`. */
int tm_pipeline_connect(tm_pipeline_t *p, int src_idx, int sink_idx);
/*
 * Stateful operators (DESIGN §5), before start.  tm_pipeline_set_workers
 * creates `n` worker threads; worker w uses stores[w] (borrowed: the caller
 * closes the stores after tm_pipeline_join, and they must share one
 * max_parallelism) and owns key-group range w of n (keygroup.h).
 * tm_pipeline_connect_upsert routes source → upsert operator `uid` (one
 * instance per worker) → sink.  With checkpoints, each worker snapshots its
 * store at barrier N into <chk_root>/chk-N/state/worker-W before passing
 * the barrier on.
 */
int tm_pipeline_set_workers(tm_pipeline_t *p, tm_store_t *const *stores, int n);
int tm_pipeline_connect_upsert(tm_pipeline_t *p, int src_idx, int sink_idx, const char *uid,
                               char *errstr, size_t errstr_size);
void tm_pipeline_set_state_checkpoint_dir(tm_pipeline_t *p, const char *chk_root);
int tm_pipeline_nworkers(const tm_pipeline_t *p);
int tm_pipeline_nupserts(const tm_pipeline_t *p);
int tm_pipeline_max_parallelism(const tm_pipeline_t *p);
const char *tm_pipeline_upsert_uid(const tm_pipeline_t *p, int i);
/* Worker w's key groups and (after all sinks pre-committed N) its snapshot of N. */
void tm_pipeline_worker_info(const tm_pipeline_t *p, int w, int *kg_first, int *kg_last,
                             tm_store_checkpoint_info_t *chk);
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
/* Makes sink `sink_idx` the job's decision log (DESIGN §6).  Before start. */
void tm_pipeline_set_decision_log(tm_pipeline_t *p, int sink_idx);
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
tm_store_t *tm_pipeline_worker_store(const tm_pipeline_t *p, int w);
/* The first error so far (0 if none); safe from any thread. */
int tm_pipeline_error(tm_pipeline_t *p);

int tm_pipeline_start(tm_pipeline_t *p, char *errstr, size_t errstr_size);
/* Asks sources to stop; sinks drain and flush.  Safe from any thread. */
void tm_pipeline_request_stop(tm_pipeline_t *p);
/* True once every thread has finished. */
bool tm_pipeline_done(tm_pipeline_t *p);
/* Joins all threads; returns the first error (0 if none) and its message. */
int tm_pipeline_join(tm_pipeline_t *p, char *errstr, size_t errstr_size);

#endif
