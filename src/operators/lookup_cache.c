/*
 * lookup_cache.c — LRU + TTL cache of the lookup join (see lookup_cache.h).
 *
 * A chained hash table (power-of-two buckets, doubled when the load passes
 * 1) of entries that also sit on one doubly linked LRU list, most recently
 * used at the head.  Each entry is one allocation: header, key bytes, value
 * bytes.
 *
 * Invariants:
 *   1. Every entry is in exactly one bucket chain and on the LRU list.
 *   2. count == the number of entries <= max_rows.
 *
 * Thread: one.
 */
#include "operators/lookup_cache.h"
#include "core/error.h"
#include "core/hash.h"

#include <stdlib.h>
#include <string.h>

typedef struct entry {
    struct entry *next;             /* bucket chain */
    struct entry *lru_prev, *lru_next;
    uint64_t hash;
    int64_t stored_us;
    size_t klen, vlen;
    bool negative;
    unsigned char data[]; /* key, then value */
} entry_t;

struct tm_lookup_cache {
    entry_t **buckets;
    size_t nbuckets; /* power of two */
    size_t count, max_rows;
    int64_t ttl_us;
    entry_t *head, *tail; /* LRU: head = most recent */
    uint64_t evictions;
};

tm_lookup_cache_t *tm_lookup_cache_new(size_t max_rows, int64_t ttl_us)
{
    tm_lookup_cache_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->nbuckets = 64;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    if (c->buckets == NULL) {
        free(c);
        return NULL;
    }
    c->max_rows = max_rows;
    c->ttl_us = ttl_us > 0 ? ttl_us : 0;
    return c;
}

tm_lookup_cache_t *tm_lookup_cache_free(tm_lookup_cache_t *c)
{
    if (c == NULL)
        return NULL;
    for (entry_t *e = c->head, *n; e != NULL; e = n) {
        n = e->lru_next;
        free(e);
    }
    free(c->buckets);
    free(c);
    return NULL;
}

static void lru_unlink(tm_lookup_cache_t *c, entry_t *e)
{
    if (e->lru_prev)
        e->lru_prev->lru_next = e->lru_next;
    else
        c->head = e->lru_next;
    if (e->lru_next)
        e->lru_next->lru_prev = e->lru_prev;
    else
        c->tail = e->lru_prev;
    e->lru_prev = e->lru_next = NULL;
}

static void lru_push(tm_lookup_cache_t *c, entry_t *e)
{
    e->lru_prev = NULL;
    e->lru_next = c->head;
    if (c->head)
        c->head->lru_prev = e;
    c->head = e;
    if (c->tail == NULL)
        c->tail = e;
}

static entry_t **slot_of(tm_lookup_cache_t *c, uint64_t h, const void *key, size_t klen)
{
    entry_t **p = &c->buckets[h & (c->nbuckets - 1)];
    while (*p != NULL && !((*p)->hash == h && (*p)->klen == klen &&
                           memcmp((*p)->data, key, klen) == 0))
        p = &(*p)->next;
    return p;
}

/* Removes the entry at *slot from the table and the list, and frees it. */
static void remove_at(tm_lookup_cache_t *c, entry_t **slot)
{
    entry_t *e = *slot;
    *slot = e->next;
    lru_unlink(c, e);
    c->count--;
    free(e);
}

static void remove_entry(tm_lookup_cache_t *c, entry_t *e)
{
    remove_at(c, slot_of(c, e->hash, e->data, e->klen));
}

bool tm_lookup_cache_get(tm_lookup_cache_t *c, const void *key, size_t klen, int64_t now_us,
                         const void **val, size_t *vlen)
{
    *val = NULL;
    *vlen = 0;
    if (c->count == 0)
        return false;
    uint64_t h = tm_xxh64(key, klen, 0);
    entry_t **slot = slot_of(c, h, key, klen);
    entry_t *e = *slot;
    if (e == NULL)
        return false;
    if (c->ttl_us > 0 && now_us - e->stored_us >= c->ttl_us) {
        remove_at(c, slot);
        return false;
    }
    lru_unlink(c, e);
    lru_push(c, e);
    if (!e->negative) {
        *val = e->data + e->klen;
        *vlen = e->vlen;
    }
    return true;
}

static int grow(tm_lookup_cache_t *c)
{
    size_t n = c->nbuckets * 2;
    entry_t **b = calloc(n, sizeof(*b));
    if (b == NULL)
        return TM_ENOMEM;
    for (size_t i = 0; i < c->nbuckets; i++)
        for (entry_t *e = c->buckets[i], *next; e != NULL; e = next) {
            next = e->next;
            e->next = b[e->hash & (n - 1)];
            b[e->hash & (n - 1)] = e;
        }
    free(c->buckets);
    c->buckets = b;
    c->nbuckets = n;
    return 0;
}

int tm_lookup_cache_put(tm_lookup_cache_t *c, const void *key, size_t klen, const void *val,
                        size_t vlen, int64_t now_us)
{
    if (c->max_rows == 0)
        return 0;
    if (val == NULL)
        vlen = 0;
    entry_t *e = malloc(sizeof(*e) + klen + vlen);
    if (e == NULL)
        return TM_ENOMEM;
    memset(e, 0, sizeof(*e));
    e->hash = tm_xxh64(key, klen, 0);
    e->stored_us = now_us;
    e->klen = klen;
    e->vlen = vlen;
    e->negative = val == NULL;
    memcpy(e->data, key, klen);
    if (vlen > 0)
        memcpy(e->data + klen, val, vlen);
    entry_t **slot = slot_of(c, e->hash, key, klen);
    if (*slot != NULL)
        remove_at(c, slot);
    while (c->count >= c->max_rows && c->tail != NULL) {
        remove_entry(c, c->tail);
        c->evictions++;
    }
    if (c->count + 1 > c->nbuckets && grow(c) != 0) {
        /* Still correct with long chains; only slower. */
    }
    slot = &c->buckets[e->hash & (c->nbuckets - 1)];
    e->next = *slot;
    *slot = e;
    lru_push(c, e);
    c->count++;
    return 0;
}

size_t tm_lookup_cache_count(const tm_lookup_cache_t *c)
{
    return c->count;
}

uint64_t tm_lookup_cache_evictions(const tm_lookup_cache_t *c)
{
    return c->evictions;
}
