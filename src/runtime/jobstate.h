/*
 * jobstate.h — a job's keyed state on disk: opening the stores of every
 * stateful stage (empty, from a checkpoint, from a savepoint, or rescaled)
 * and writing a savepoint from a completed checkpoint.
 *
 * One RocksDB store per (stateful stage, subtask): two stages cannot share
 * a store, because each snapshots it when its own barrier aligns.  Layout
 * under the state directory:
 *
 *     work/stageK-W/                      stage K's subtask W's live RocksDB
 *                                         (scratch: a crash leaves it behind,
 *                                         and it is always rebuilt from a
 *                                         checkpoint)
 *     checkpoints/chk-N/state/NAME-W/     RocksDB checkpoint (hard links) of
 *                                         stage NAME's subtask W; _metadata's
 *                                         state.stores lists them
 *
 * and a savepoint directory holds `_metadata` (the checkpoint's, with its
 * source positions) and `state.tmsp` (state/savepoint.h's portable format).
 *
 * A stage whose checkpoint stores have the same operator uids and the same
 * parallelism is restored by hard-linking its files into fresh working
 * directories.  Any other stage whose operators have state in the
 * checkpoint (rescaled, or operators moved between stages) is restored
 * through a temporary portable savepoint of the whole checkpoint, so whole
 * key groups move to their new owners.
 *
 * Invariants:
 *   1. A plan that lost a stateful operator is refused (TM_ECONFIG naming
 *      the uid) unless allow_non_restored is set.
 *   2. A savepoint directory appears complete or not at all: it is written
 *      as NAME.inprogress and renamed.
 *
 * Thread: main.
 */
#ifndef TM_RUNTIME_JOBSTATE_H
#define TM_RUNTIME_JOBSTATE_H

#include "runtime/checkpoint.h"
#include "state/store.h"

#include <stdbool.h>
#include <stddef.h>

/* The stores of one stateful stage: stores[w] is subtask w's. */
typedef struct tm_jobstate_stores {
    int n;
    tm_store_t **stores;
} tm_jobstate_stores_t;

typedef struct tm_jobstate {
    int nstages;
    tm_jobstate_stores_t *stages; /* parallel to opts->stages */
    tm_store_mem_t *mem;
    /* What the stores were restored from, for the log and explain. */
    char restored[64];
    uint64_t restored_records;
} tm_jobstate_t;

/* A stateful stage of the plan. */
typedef struct tm_jobstate_stage {
    const char *name;
    int parallelism;
    const char *const *uids; /* its stateful operators */
    int nuids;
} tm_jobstate_stage_t;

typedef struct tm_jobstate_opts {
    const char *state_dir;
    int max_parallelism;
    size_t state_memory;
    int64_t state_ttl_us;
    const tm_jobstate_stage_t *stages;
    int nstages;
    bool allow_non_restored;
} tm_jobstate_opts_t;

/*
 * Opens the stores of every stage in opts->stages: from checkpoint `chk`
 * (may be NULL or without state), else from savepoint directory `savepoint`
 * (may be NULL), else empty.  With no stages it only checks invariant 1.
 * Returns 0 or TM_E* with a message that says what to do.
 */
int tm_jobstate_open(tm_jobstate_t *js, const tm_jobstate_opts_t *opts,
                     const tm_checkpoint_info_t *chk, const char *savepoint, char *errstr,
                     size_t errstr_size);
void tm_jobstate_close(tm_jobstate_t *js);

/*
 * Writes a savepoint of completed checkpoint `chk` into a new directory
 * under `parent` (created if missing): <parent>/savepoint-<job>-<N>-<ms>.
 * *path_out (caller frees) names it.  Returns 0 or TM_E*.
 */
int tm_jobstate_savepoint(const tm_checkpoint_info_t *chk, const char *parent, const char *job,
                          char **path_out, char *errstr, size_t errstr_size);

#endif
