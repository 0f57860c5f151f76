/*
 * savepoint.h — the portable savepoint format (DESIGN §6).
 *
 * Role: a savepoint is the keyed state of a job written to one file that
 * does not depend on RocksDB, its version or its file layout.  State is
 * written per operator uid and per key group, so it can be restored into a
 * different number of workers: each key group goes to the worker that owns
 * it in the new layout (keygroup.h), whatever worker held it before.
 *
 * File layout, format version 1 (integers little-endian; docs/state.md has
 * the same table):
 *
 *     header    "TMSP" u16 version u16 flags u64 created_at_us
 *               u16 max_parallelism u16 job_len job[job_len] u32 crc
 *     section   "TMKG" u32 operator u16 key_group
 *   (repeated)  records: u32 klen u32 vlen u64 ts_us key[klen] value[vlen] ...
 *               u64 records u64 payload_bytes u32 crc
 *     index     "TMIX" u32 noperators { u16 uid_len uid[uid_len] }
 *               u32 nsections { u32 operator u16 key_group u64 offset
 *               u64 records u64 payload_bytes } u32 crc
 *     footer    u64 index_offset u64 index_len u32 crc "TMSE"
 *
 * Every CRC is CRC32C (core/hash.h) over the bytes of its part before the
 * CRC field.  A section exists only for a key group that has records; the
 * index lists every operator written, with or without state.
 *
 * Invariants:
 *   1. Readers check every checksum before they apply a single record:
 *      restore and describe first verify the whole file, so a corrupt or
 *      truncated savepoint changes no store.  Errors are TM_ECORRUPT and
 *      name the part (header, footer, index, or the section's operator and
 *      key group).
 *   2. Sections appear in index order and tile the bytes between the header
 *      and the index exactly.
 *   3. max_parallelism never changes across a savepoint; restoring into
 *      stores with another max_parallelism is refused.
 *   4. Writing goes to PATH.tmp, which is fsynced and renamed over PATH, so
 *      PATH is either absent, the old file or the complete new one.
 *
 * Thread: the stores must not be written meanwhile (the workers are paused
 * at the savepoint's barrier, or stopped).  Any single thread may then call
 * these functions; they only read stores (write) or only write their own
 * column families (restore).
 */
#ifndef TM_STATE_SAVEPOINT_H
#define TM_STATE_SAVEPOINT_H

#include "state/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TM_SAVEPOINT_VERSION 1
/* Most operators one savepoint holds (a bound for readers of damaged files). */
#define TM_SAVEPOINT_MAX_OPERATORS 4096

typedef struct tm_savepoint_stats {
    uint64_t bytes;       /* file size */
    uint64_t records;     /* records written or restored */
    uint32_t operators;   /* operators written or restored */
    uint32_t sections;    /* key-group sections */
    uint32_t skipped;     /* restore: operators dropped under allow_non_restored */
} tm_savepoint_stats_t;

/*
 * Writes the state of operators `uids` from every store in `stores` (the
 * workers; all with the same max_parallelism) to `path`.  Expired values are
 * left out.  `stats` may be NULL.  Returns 0, TM_EINVAL, TM_EIO with the
 * reason.
 */
int tm_savepoint_write(tm_store_t *const *stores, int nstores, const char *const *uids, int nuids,
                       const char *job, const char *path, tm_savepoint_stats_t *stats,
                       char *errstr, size_t errstr_size);

typedef struct tm_savepoint_target {
    tm_store_t *const *stores; /* stores[w] is worker w's store */
    int nstores;
    /* The stateful operators of the new plan. */
    const char *const *uids;
    int nuids;
    /*
     * Drop the state of savepoint operators that are not in `uids` instead
     * of refusing (--allow-non-restored-state).
     */
    bool allow_non_restored;
    /*
     * Optional, parallel to `uids`: the stores of the stage that now holds
     * uid i (uid_stores[i][w] is its subtask w's) and how many.  NULL: every
     * uid goes to `stores`, which may then be NULL/0 when this is set.
     */
    tm_store_t *const *const *uid_stores;
    const int *uid_nstores;
} tm_savepoint_target_t;

/*
 * Restores `path` into the target stores, each operator's key group into the
 * store of the subtask that owns it among that operator's stores.  Records keep their timestamps.  Returns 0;
 * TM_ECORRUPT naming the damaged part; TM_EUNSUPPORTED for a newer format;
 * TM_ECONFIG when max_parallelism differs or a savepoint operator has no
 * place in the new plan (the message names its uid); TM_EIO.
 */
int tm_savepoint_restore(const char *path, const tm_savepoint_target_t *target,
                         tm_savepoint_stats_t *stats, char *errstr, size_t errstr_size);

typedef enum tm_savepoint_part {
    TM_SAVEPOINT_HEADER,   /* once, first */
    TM_SAVEPOINT_OPERATOR, /* once per operator, before its key groups */
    TM_SAVEPOINT_KEYGROUP, /* once per section */
} tm_savepoint_part_t;

typedef struct tm_savepoint_desc {
    tm_savepoint_part_t part;
    /* HEADER */
    const char *job;
    int64_t created_us;
    int version;
    int max_parallelism;
    uint32_t noperators;
    /* OPERATOR and KEYGROUP */
    const char *uid;
    int kg;              /* KEYGROUP */
    uint32_t keygroups;  /* OPERATOR (and HEADER: all sections) */
    uint64_t records;    /* of the part (HEADER: all) */
    uint64_t bytes;      /* payload bytes of the part (HEADER: file size) */
} tm_savepoint_desc_t;

typedef void (*tm_savepoint_describe_fn)(void *arg, const tm_savepoint_desc_t *desc);

/*
 * Verifies `path` completely, then reports its contents through `fn` (for
 * `tidemark inspect`).  Returns as tm_savepoint_restore().
 */
int tm_savepoint_describe(const char *path, tm_savepoint_describe_fn fn, void *arg, char *errstr,
                          size_t errstr_size);

#endif
