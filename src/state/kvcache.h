/*
 * kvcache.h — a write-behind cache of one column family of a store, for
 * operators whose hot keys are read and rewritten by nearly every batch.
 *
 * An aggregate over 10,000 groups reads and writes the same few thousand
 * values over and over; through RocksDB each of those costs a memtable
 * search and a skiplist insert.  The cache keeps the values in a hash table
 * instead (as Flink's heap state backend does) and writes the changed ones
 * to the store, in key order and in one write batch, only when it is
 * flushed: at every barrier, at the end of input, and when it outgrows its
 * budget.  What is in the store between two barriers is never read by
 * anything but this cache, because a checkpoint is taken only after the
 * operator's on_barrier, which flushes (operator.h, invariant 3).
 *
 * Invariants:
 *   1. For every key, the cache's entry (when it has one) is the truth and
 *      the store's value is what was flushed last; a key without an entry
 *      reads from the store.
 *   2. After tm_kvcache_flush() returns 0 the store holds every write made
 *      through the cache, and no entry is dirty.
 *   3. Evicting never loses a write: dirty entries are flushed before any
 *      of them is dropped.
 *   4. With a state TTL, clean entries are dropped at every flush, so a value
 *      that expires in the store is not served from memory past the next
 *      barrier; values written since the last flush are stamped when flushed.
 *
 * Memory: each entry costs its key and value bytes plus about 80 bytes of
 * bookkeeping; the table counts all of it against `budget`.
 *
 * Thread: the store's (its worker's).
 */
#ifndef TM_STATE_KVCACHE_H
#define TM_STATE_KVCACHE_H

#include "state/store.h"

#include <stddef.h>
#include <stdint.h>

typedef struct tm_kvcache tm_kvcache_t;

typedef struct tm_kvcache_stats {
    uint64_t hits;    /* reads answered from memory (an absent key included) */
    uint64_t misses;  /* reads that went to the store */
    uint64_t flushes; /* flushes that wrote something */
    uint64_t evictions;
    size_t entries;
    size_t bytes;
} tm_kvcache_stats_t;

/* The cache of `cf` in `store`, holding at most about `budget` bytes (>= 64 KiB is sensible). */
int tm_kvcache_new(tm_store_t *store, tm_store_cf_t *cf, size_t budget, tm_kvcache_t **out);
/* Frees the cache, dropping writes not flushed.  Accepts NULL; returns NULL. */
tm_kvcache_t *tm_kvcache_free(tm_kvcache_t *c);

/*
 * Reads (kg, key): 0 with *val / *vlen set (valid until the next call on the
 * cache), TM_ENOTFOUND, or the store's error.
 */
int tm_kvcache_get(tm_kvcache_t *c, int kg, const void *key, size_t klen, const uint8_t **val,
                   size_t *vlen, char *errstr, size_t errstr_size);
/*
 * Writes or deletes (kg, key) in memory.  May flush and evict to stay
 * within the budget, so it can fail as tm_kvcache_flush() does.
 */
int tm_kvcache_put(tm_kvcache_t *c, int kg, const void *key, size_t klen, const void *val,
                   size_t vlen, char *errstr, size_t errstr_size);
int tm_kvcache_delete(tm_kvcache_t *c, int kg, const void *key, size_t klen, char *errstr,
                      size_t errstr_size);

/* Writes every dirty entry to the store (key order, one batch) and commits.  0 or TM_EIO. */
int tm_kvcache_flush(tm_kvcache_t *c, char *errstr, size_t errstr_size);

void tm_kvcache_stats(const tm_kvcache_t *c, tm_kvcache_stats_t *out);

#endif
