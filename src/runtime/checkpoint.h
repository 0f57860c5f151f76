/*
 * checkpoint.h — the checkpoint coordinator and its on-disk metadata
 * (DESIGN §6).
 *
 * Every `checkpoint_interval` the coordinator asks the sources for barrier N.
 * Sources inject it between transactions, sinks align and pre-commit, and
 * once every sink has pre-committed N the coordinator writes
 * <state_dir>/checkpoints/chk-N/_metadata atomically (temporary file, fsync,
 * rename, fsync of the directory).  That rename is the commit point.  Then
 * sinks commit N and sources may acknowledge N's positions upstream.
 *
 *     idle ──timer──► triggered(N) ──all sinks pre-committed──► metadata written
 *       ▲                                                          │
 *       └───────────── all sinks committed N ◄── complete(N) ◄─────┘
 *
 * Invariants:
 *   1. At most one checkpoint is in flight; N+1 starts only after every sink
 *      committed N, so a sink never has two epochs pending.
 *   2. A checkpoint that has not written its _metadata never counts: recovery
 *      uses the newest chk-N whose _metadata parses.
 *   3. Only the last `checkpoints_retained` completed checkpoints are kept.
 *
 * Thread: main (the control loop).
 */
#ifndef TM_RUNTIME_CHECKPOINT_H
#define TM_RUNTIME_CHECKPOINT_H

#include "runtime/pipeline.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One store of a stateful stage subtask as a checkpoint recorded it.  A
 * checkpoint written before stores were per stage ("workers") reads back as
 * one stage "workers" holding every operator, with dirs state/worker-W.
 */
typedef struct tm_checkpoint_store {
    char *stage;  /* the stage's name */
    char *dir;    /* relative to the checkpoint directory */
    int subtask, parallelism;
    int kg_first, kg_last;
    int nuids;
    char *uids[16];
    uint64_t bytes, bytes_new;
} tm_checkpoint_store_t;

/* What the last completed checkpoint recorded, read back at start. */
typedef struct tm_checkpoint_info {
    uint64_t id; /* 0: there is none */
    char *dir;   /* the chk-N (or savepoint) directory */
    char *job;
    char *decision_log;  /* the decision-log sink's name, or NULL */
    char *restored_from; /* the savepoint this job's lineage started from, or NULL */
    int parallelism;     /* subtasks of its first stateful stage (0: no state); for display */
    int max_parallelism;
    int noperators;
    char *operators[64]; /* stateful operator uids, of every stage */
    int nstores;
    tm_checkpoint_store_t *stores;
    int nsources, nsinks;
    struct {
        char *name;
        uint64_t token;
        char *position;
    } sources[64];
    struct {
        char *name;
        char *handle;
    } sinks[64];
} tm_checkpoint_info_t;

/* Reads the newest completed checkpoint under state_dir; info->id == 0 if none. */
int tm_checkpoint_load_latest(const char *state_dir, tm_checkpoint_info_t *info, char *errstr,
                              size_t errstr_size);
/*
 * Reads checkpoint `id` under state_dir (TM_ENOTFOUND if it has no
 * _metadata), or the checkpoint/savepoint directory `dir` (id 0).
 */
int tm_checkpoint_load(const char *state_dir, uint64_t id, tm_checkpoint_info_t *info,
                       char *errstr, size_t errstr_size);
int tm_checkpoint_load_dir(const char *dir, tm_checkpoint_info_t *info, char *errstr,
                           size_t errstr_size);
/* Deletes every chk-N under state_dir with N > id (pending ones the decision log refused). */
void tm_checkpoint_discard_after(const char *state_dir, uint64_t id);
void tm_checkpoint_info_release(tm_checkpoint_info_t *info);
uint64_t tm_checkpoint_source_token(const tm_checkpoint_info_t *info, const char *name);
const char *tm_checkpoint_sink_handle(const tm_checkpoint_info_t *info, const char *name);

typedef struct tm_coordinator tm_coordinator_t;

tm_coordinator_t *tm_coordinator_new(tm_pipeline_t *p, const char *state_dir, const char *job,
                                     int64_t interval_ms, int64_t timeout_ms, int retained,
                                     uint64_t last_completed);
tm_coordinator_t *tm_coordinator_free(tm_coordinator_t *c);
/* The savepoint this job was started from, recorded in every _metadata. */
void tm_coordinator_set_lineage(tm_coordinator_t *c, const char *restored_from);
/* The decision-log sink (written to _metadata), or NULL. */
void tm_coordinator_set_decision_log(tm_coordinator_t *c, const char *sink);

typedef struct tm_checkpoint_stats {
    uint64_t completed, failed; /* failed: timed out or failed to persist */
    uint64_t last_id;
    int64_t last_duration_ms;
    uint64_t last_state_bytes, last_state_bytes_new;
    int64_t last_completed_wall_ms;
} tm_checkpoint_stats_t;
void tm_coordinator_stats(const tm_coordinator_t *c, tm_checkpoint_stats_t *out);
/* The checkpoints directory (<state_dir>/checkpoints). */
const char *tm_coordinator_dir(const tm_coordinator_t *c);
/*
 * Advances the state machine; call on every tick.  Returns 0, or an error
 * if writing _metadata failed (the job should stop: TM_ECHECKPOINT).
 */
int tm_coordinator_tick(tm_coordinator_t *c, char *errstr, size_t errstr_size);
/* Starts a checkpoint now (for the final one at a graceful stop). */
void tm_coordinator_trigger_now(tm_coordinator_t *c);
/*
 * A checkpoint whose barriers the sources place at position `pos`
 * (tm_source_barrier_at; for PostgreSQL sources an LSN): it starts as soon as
 * none is in flight, and no checkpoint starts for `hold_ms` after it
 * completes (tm_coordinator_release ends that early), so that its state stays
 * the sinks' committed state that long.  *id is the checkpoint it will be.
 * 0, TM_EAGAIN (one is pending already) or TM_EINVAL (pos 0).
 */
int tm_coordinator_request_at(tm_coordinator_t *c, uint64_t pos, int64_t hold_ms, uint64_t *id);
void tm_coordinator_release(tm_coordinator_t *c);
/*
 * Asks the sources to hold still for up to `max_ms` so that a point can be
 * chosen that none has passed (tm_pipeline_pause_sources); the next
 * tm_coordinator_request_at's checkpoint ends the pause once its barrier is
 * requested.  *paused and *sources: how many hold, of how many.
 */
void tm_coordinator_pause_sources(tm_coordinator_t *c, int64_t max_ms);
void tm_coordinator_paused(const tm_coordinator_t *c, int *paused, int *sources);
/*
 * Where checkpoint `id` of tm_coordinator_request_at is: -1 not such a
 * request, 0 pending or in flight, 1 completed (the sinks commit it), 2
 * committed by every sink.  *missed: a source placed its barrier elsewhere.
 */
int tm_coordinator_at_status(const tm_coordinator_t *c, uint64_t id, bool *missed);
/* True when no checkpoint is in flight and the last one was committed. */
bool tm_coordinator_idle(const tm_coordinator_t *c);
uint64_t tm_coordinator_last_completed(const tm_coordinator_t *c);

#endif
