/*
 * jobstate.h — a job's keyed state on disk: opening the workers' stores
 * (empty, from a checkpoint, from a savepoint, or rescaled) and writing a
 * savepoint from a completed checkpoint.
 *
 * Layout under the state directory:
 *
 *     work/worker-W/                 worker W's live RocksDB (scratch: a
 *                                    crash leaves it behind, and it is
 *                                    always rebuilt from a checkpoint)
 *     checkpoints/chk-N/state/worker-W/   RocksDB checkpoint (hard links)
 *
 * and a savepoint directory holds `_metadata` (the checkpoint's, with its
 * source positions) and `state.tmsp` (state/savepoint.h's portable format).
 *
 * Restoring a checkpoint with the parallelism it was taken with hard-links
 * its files into fresh working directories.  With another parallelism the
 * checkpoint is first written to a temporary portable savepoint and that is
 * restored, so both paths move whole key groups to their new owners.
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

typedef struct tm_jobstate {
    int n;
    tm_store_t **stores;
    tm_store_mem_t *mem;
    /* What the stores were restored from, for the log and explain. */
    char restored[64];
    uint64_t restored_records;
} tm_jobstate_t;

typedef struct tm_jobstate_opts {
    const char *state_dir;
    int parallelism;
    int max_parallelism;
    size_t state_memory;
    int64_t state_ttl_us;
    const char *const *uids; /* the plan's stateful operators */
    int nuids;
    bool allow_non_restored;
} tm_jobstate_opts_t;

/*
 * Opens opts->parallelism stores: from checkpoint `chk` (may be NULL or
 * without state), else from savepoint directory `savepoint` (may be NULL),
 * else empty.  Returns 0 or TM_E* with a message that says what to do.
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
