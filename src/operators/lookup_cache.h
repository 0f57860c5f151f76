/*
 * lookup_cache.h — the lookup join's bounded cache of dimension rows
 * (Flink's partial lookup cache: LRU with a time to live, negative entries
 * too).
 *
 * Keys and values are opaque bytes: the join stores the encoded lookup key
 * (tm_row_cols_key_encode) and the serialised dimension row
 * (tm_row_serialize), or no value for a key the table does not have (a
 * negative entry).  The clock is the caller's (`now_us` on every call), so
 * tests inject time.
 *
 * Invariants:
 *   1. At most `max_rows` entries; inserting one more evicts the least
 *      recently used (a get that hits counts as a use).
 *   2. An entry older than `ttl_us` (0 = never expires) is never returned:
 *      a get finds it expired, removes it and reports a miss.
 *   3. max_rows 0 is a cache that holds nothing (every get misses).
 *
 * Ownership: the cache owns copies of every key and value.  Thread: one
 * (the join's subtask).
 */
#ifndef TM_OPERATORS_LOOKUP_CACHE_H
#define TM_OPERATORS_LOOKUP_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_lookup_cache tm_lookup_cache_t;

/* NULL when memory runs out. */
tm_lookup_cache_t *tm_lookup_cache_new(size_t max_rows, int64_t ttl_us);
/* Accepts NULL; returns NULL. */
tm_lookup_cache_t *tm_lookup_cache_free(tm_lookup_cache_t *c);

/*
 * Looks `key` up at time now_us.  true on a hit: *val and *vlen are the stored
 * value (NULL/0 for a negative entry), valid until the next put or free.
 * false on a miss (absent, or expired and now removed).
 */
bool tm_lookup_cache_get(tm_lookup_cache_t *c, const void *key, size_t klen, int64_t now_us,
                         const void **val, size_t *vlen);
/*
 * Stores key → val (val NULL: a negative entry) as of now_us, replacing an
 * entry of the same key and evicting the least recently used beyond
 * max_rows.  0 or TM_ENOMEM (the cache is then unchanged).
 */
int tm_lookup_cache_put(tm_lookup_cache_t *c, const void *key, size_t klen, const void *val,
                        size_t vlen, int64_t now_us);

size_t tm_lookup_cache_count(const tm_lookup_cache_t *c);
/* Entries evicted because the cache was full (not expired ones). */
uint64_t tm_lookup_cache_evictions(const tm_lookup_cache_t *c);

#endif
