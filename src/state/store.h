/*
 * store.h — keyed operator state in RocksDB (DESIGN §5).
 *
 * Role: one store is one RocksDB database, owned by one worker thread.  Each
 * stateful operator gets its own column family, named by the operator's
 * stable uid and created on first use.  Keys and values are bytes; the store
 * prefixes every key with its key group and every value with a timestamp:
 *
 *     RocksDB key    = key group (u16 big-endian) ‖ operator key bytes
 *     RocksDB value  = last write, µs since epoch (u64 little-endian) ‖ value bytes
 *
 * so that a key group is one contiguous key range (savepoints and rescaling
 * move whole key groups; see keygroup.h) and TTL needs no second lookup.
 *
 * Memory: a tm_store_mem_t is the `state_memory` budget shared by the stores
 * of a process: one LRU block cache (data, index and filter blocks, and the
 * blocks pinned by iterators are all charged to it) plus a memtable budget
 * split evenly between the stores.  RocksDB 7.8's C API has no write-buffer
 * manager constructor, so memtables are bounded per store with
 * db_write_buffer_size (which makes RocksDB build a write-buffer manager of
 * that size internally) instead of being charged to the cache; docs/state.md
 * gives the arithmetic and the worst case.
 *
 * TTL: with state_ttl > 0 a value whose timestamp is older than the TTL reads
 * as absent, and a compaction filter drops it from disk.  Timestamps are set
 * on every write (Flink's OnCreateAndWrite); reads do not refresh them.
 *
 * Durability: writes skip RocksDB's WAL (as Flink's RocksDB backend does).
 * The only durable state is a checkpoint: tm_store_checkpoint() flushes the
 * memtables and hard-links the live files into a checkpoint directory, and
 * recovery always starts from one with tm_store_open_from_checkpoint().  A
 * working directory left behind by a crash is scratch and must be removed.
 *
 * Invariants:
 *   1. Every key stored has a key group in [0, max_parallelism).
 *   2. Every value stored is at least 8 bytes (its timestamp).
 *   3. A column family handle lives as long as its store.
 *   4. A checkpoint directory is complete once tm_store_checkpoint() returns
 *      0; files in it are never modified afterwards (RocksDB never rewrites
 *      an SST, and restoring copies everything that is not an SST).
 *
 * Thread: a store and everything obtained from it (column families, batches,
 * iterators) belong to the worker thread that opened it.  Exceptions:
 * tm_store_memory_usage() and tm_store_mem_usage() may be called from any
 * thread (metrics), and the clock function is also called from RocksDB's
 * background compaction threads, so it must be thread-safe.
 */
#ifndef TM_STATE_STORE_H
#define TM_STATE_STORE_H

#include "core/buf.h"
#include "state/keygroup.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_store tm_store_t;
typedef struct tm_store_cf tm_store_cf_t;
typedef struct tm_store_batch tm_store_batch_t;
typedef struct tm_store_iter tm_store_iter_t;
typedef struct tm_store_mem tm_store_mem_t;

/* Default `state_memory`: 256 MiB for the whole process. */
#define TM_STATE_MEMORY_DEFAULT ((size_t)256 << 20)
/* The smallest share of state_memory one store may get. */
#define TM_STATE_MEMORY_MIN_PER_STORE ((size_t)8 << 20)
/* Longest operator uid (a column family name). */
#define TM_STORE_UID_MAX 200

/* Wall-clock time in µs since the epoch.  Must be thread-safe. */
typedef int64_t (*tm_store_clock_fn)(void *arg);

typedef struct tm_store_opts {
    /*
     * Shared memory budget (borrowed; the store takes its own reference).
     * NULL gives the store a private budget of `state_memory` bytes.
     */
    tm_store_mem_t *mem;
    size_t state_memory; /* only when mem is NULL; 0 = TM_STATE_MEMORY_DEFAULT */
    int64_t state_ttl_us; /* 0 = state never expires */
    int max_parallelism;  /* 0 = TM_MAX_PARALLELISM_DEFAULT */
    tm_store_clock_fn clock; /* NULL = CLOCK_REALTIME; tests inject their own */
    void *clock_arg;
} tm_store_opts_t;

/* ---- the memory budget ---- */

/*
 * Creates the budget for `nstores` stores sharing `state_memory` bytes
 * (0 = default).  Returns 0, TM_ECONFIG (a message names state_memory and
 * the minimum) or TM_ENOMEM.
 */
int tm_store_mem_new(size_t state_memory, int nstores, tm_store_mem_t **out, char *errstr,
                     size_t errstr_size);
/* Drops the caller's reference; stores keep theirs.  Accepts NULL; returns NULL. */
tm_store_mem_t *tm_store_mem_free(tm_store_mem_t *mem);

typedef struct tm_store_memory {
    uint64_t limit;          /* state_memory of the budget */
    uint64_t cache_capacity; /* block cache share of it */
    uint64_t cache_usage;    /* bytes in the shared block cache now */
    uint64_t cache_pinned;   /* of which pinned (iterators, L0 index/filter) */
    uint64_t memtables;      /* bytes in this store's memtables (0 for tm_store_mem_usage) */
} tm_store_memory_t;

/* Cache figures of a budget.  Thread: any. */
void tm_store_mem_usage(tm_store_mem_t *mem, tm_store_memory_t *out);

/* ---- opening, closing ---- */

/*
 * Opens (creating if missing) the store in `dir`, with every column family
 * it already has.  Returns 0; TM_ECONFIG for bad options; TM_EIO with the
 * RocksDB reason (for example a directory another process holds).
 */
int tm_store_open(const char *dir, const tm_store_opts_t *opts, tm_store_t **out, char *errstr,
                  size_t errstr_size);

/*
 * Restores a checkpoint into the fresh working directory `work_dir` (which
 * must not exist, or be empty) and opens it.  SST files are hard-linked from
 * the checkpoint, so restoring costs little time and no space; everything
 * else is copied, so the checkpoint is never modified.  Returns as
 * tm_store_open(), or TM_ENOTFOUND when chk_dir holds no checkpoint.
 */
int tm_store_open_from_checkpoint(const char *chk_dir, const char *work_dir,
                                  const tm_store_opts_t *opts, tm_store_t **out, char *errstr,
                                  size_t errstr_size);

/* Closes the store (flushing memtables).  Accepts NULL; returns NULL. */
tm_store_t *tm_store_close(tm_store_t *store);

int tm_store_max_parallelism(const tm_store_t *store);
const char *tm_store_dir(const tm_store_t *store);
/* The store's clock, for callers that stamp their own records. */
int64_t tm_store_now(const tm_store_t *store);
/* The state TTL the store was opened with (0 = values never expire). */
int64_t tm_store_ttl_us(const tm_store_t *store);
/*
 * The bytes of the memory budget set aside for the in-memory caches of this
 * store's operators (state/kvcache.h): a quarter of state_memory, split
 * evenly between the stores, as the memtables are.
 */
size_t tm_store_operator_cache_bytes(const tm_store_t *store);

/*
 * The column family of operator `uid`, created if missing.  The handle is
 * owned by the store.  Returns 0; TM_EINVAL for an empty, over-long or
 * reserved ("default") uid; TM_EIO.
 */
int tm_store_cf(tm_store_t *store, const char *uid, tm_store_cf_t **cf, char *errstr,
                size_t errstr_size);
/* Finds an existing column family without creating it; NULL if absent. */
tm_store_cf_t *tm_store_cf_find(tm_store_t *store, const char *uid);
/* The uids of the store's column families, in creation order: count, then each. */
int tm_store_cf_count(const tm_store_t *store);
const char *tm_store_cf_uid(const tm_store_t *store, int i);

/* ---- single reads and writes ---- */

/*
 * Reads the value of (kg, key) into `val` (replacing its content).  Returns
 * 0, TM_ENOTFOUND when absent or expired, TM_ECORRUPT for a value without a
 * timestamp, TM_EIO.
 */
int tm_store_get(tm_store_t *store, tm_store_cf_t *cf, int kg, const void *key, size_t klen,
                 tm_buf_t *val, char *errstr, size_t errstr_size);
int tm_store_put(tm_store_t *store, tm_store_cf_t *cf, int kg, const void *key, size_t klen,
                 const void *val, size_t vlen, char *errstr, size_t errstr_size);
int tm_store_delete(tm_store_t *store, tm_store_cf_t *cf, int kg, const void *key, size_t klen,
                    char *errstr, size_t errstr_size);
/*
 * Deletes every key that starts with `prefix`, in every key group, with
 * range tombstones (one per key group).  Callers with a pending batch commit
 * it first, or its writes land after the deletion.
 */
int tm_store_delete_prefix(tm_store_t *store, tm_store_cf_t *cf, const void *prefix, size_t plen,
                           char *errstr, size_t errstr_size);

/* ---- write batches: the per-batch updates of an operator ---- */

/*
 * A batch collects puts and deletes (for any column family of its store)
 * and applies them atomically on commit.  Reads through the batch see its
 * own pending writes first, then the database.
 */
int tm_store_batch_new(tm_store_t *store, tm_store_batch_t **out);
/*
 * A batch without the index: writes cost less (no sorted index of the
 * pending keys), but it cannot be read through — tm_store_batch_get()
 * fails with TM_EINVAL while writes are pending.  For callers that never
 * read a key they wrote before committing (group_agg's invariant 5).
 */
int tm_store_batch_new_unindexed(tm_store_t *store, tm_store_batch_t **out);
tm_store_batch_t *tm_store_batch_free(tm_store_batch_t *batch);
/*
 * Puts and deletes return 0, or TM_EINVAL for a key group outside
 * [0, max_parallelism) — a caller bug, also asserted in debug builds.
 * tm_store_batch_put stamps the value with the store's clock;
 * tm_store_batch_put_ts keeps a given timestamp (a restored savepoint keeps
 * the original one).
 */
int tm_store_batch_put(tm_store_batch_t *batch, tm_store_cf_t *cf, int kg, const void *key,
                       size_t klen, const void *val, size_t vlen);
int tm_store_batch_put_ts(tm_store_batch_t *batch, tm_store_cf_t *cf, int kg, const void *key,
                          size_t klen, const void *val, size_t vlen, int64_t ts_us);
int tm_store_batch_delete(tm_store_batch_t *batch, tm_store_cf_t *cf, int kg, const void *key,
                          size_t klen);
/* As tm_store_get(), but pending writes of the batch win. */
int tm_store_batch_get(tm_store_batch_t *batch, tm_store_cf_t *cf, int kg, const void *key,
                       size_t klen, tm_buf_t *val, char *errstr, size_t errstr_size);
uint32_t tm_store_batch_count(tm_store_batch_t *batch);
/* Applies the pending writes and empties the batch.  0 or TM_EIO. */
int tm_store_batch_commit(tm_store_batch_t *batch, char *errstr, size_t errstr_size);

/* ---- iteration by key group ---- */

typedef struct tm_store_entry {
    int kg;
    const uint8_t *key; /* operator key bytes, without the key-group prefix */
    size_t klen;
    const uint8_t *val; /* value bytes, without the timestamp */
    size_t vlen;
    int64_t ts_us; /* last write */
} tm_store_entry_t;

/*
 * Iterates the live (not expired) entries of key groups [kg_first, kg_last]
 * whose operator key starts with `prefix` (NULL/0 = all), in key order.  The
 * iterator sees the database as of its creation (a RocksDB snapshot).
 */
int tm_store_iter_new(tm_store_t *store, tm_store_cf_t *cf, int kg_first, int kg_last,
                      const void *prefix, size_t plen, tm_store_iter_t **out);
/*
 * As tm_store_iter_new(), but the entries come in descending key order,
 * key group kg_last first: the first entry returned is the last key under
 * the prefix (the maximum of an order-preserving key encoding).
 */
int tm_store_iter_new_reverse(tm_store_t *store, tm_store_cf_t *cf, int kg_first, int kg_last,
                              const void *prefix, size_t plen, tm_store_iter_t **out);
/*
 * Re-targets an iterator to key group `kg` (only) and the operator-key
 * prefix `prefix`, in ascending or (reverse) descending key order, as if it
 * were new: the next tm_store_iter_next() seeks.  Re-seeking one iterator is
 * much cheaper than creating one per lookup, but it keeps the view of its
 * creation: writes committed since are not seen.  Returns 0, TM_EINVAL for a
 * key group outside the store's range, or TM_ENOMEM.
 */
int tm_store_iter_seek(tm_store_iter_t *it, int kg, const void *prefix, size_t plen,
                       bool reverse);
/*
 * Advances: 1 with *e filled (pointers valid until the next call), 0 at the
 * end, TM_ECORRUPT or TM_EIO.
 */
int tm_store_iter_next(tm_store_iter_t *it, tm_store_entry_t *e, char *errstr,
                       size_t errstr_size);
tm_store_iter_t *tm_store_iter_free(tm_store_iter_t *it);

/* ---- checkpoints and maintenance ---- */

typedef struct tm_store_checkpoint_info {
    uint64_t bytes;     /* size of every file in the checkpoint */
    uint64_t bytes_new; /* of which not shared with the previous checkpoint */
    uint32_t files;
    uint32_t files_new;
} tm_store_checkpoint_info_t;

/*
 * Flushes every memtable and creates a RocksDB checkpoint in `dir` (which
 * must not exist; its parent is created).  SST files are hard links, so a
 * checkpoint only costs the files written since the previous one; `info`
 * (may be NULL) says how much that was, compared with this store's previous
 * checkpoint or the checkpoint it was restored from.  Returns 0 or
 * TM_ECHECKPOINT with the reason.
 */
int tm_store_checkpoint(tm_store_t *store, const char *dir, tm_store_checkpoint_info_t *info,
                        char *errstr, size_t errstr_size);

/* Compacts every column family fully, which also drops expired values. */
int tm_store_compact(tm_store_t *store, char *errstr, size_t errstr_size);

/* Memory figures of the store's budget and its memtables.  Thread: any. */
void tm_store_memory_usage(tm_store_t *store, tm_store_memory_t *out);

/*
 * The size of column family `uid` in this store: its SST files on disk plus
 * its memtables, in bytes (RocksDB's "rocksdb.total-sst-files-size" and
 * "rocksdb.cur-size-all-mem-tables"); 0 when the store has no such family.
 * Thread: any.
 */
uint64_t tm_store_cf_bytes(tm_store_t *store, const char *uid);

/*
 * Removes a store's working directory or a checkpoint, recursively.  Refuses
 * (TM_EINVAL) a directory without a RocksDB CURRENT file, so a wrong path
 * cannot delete anything else.  A missing directory is not an error.
 */
int tm_store_remove_dir(const char *dir, char *errstr, size_t errstr_size);

#endif
