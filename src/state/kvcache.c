/*
 * kvcache.c — a write-behind cache of one column family (see kvcache.h).
 *
 * Entries live in a vector; an open-addressing table (linear probing) maps
 * (key group, key) to a vector index.  Nothing is ever removed from the
 * table one at a time: eviction compacts the vector and rebuilds the table,
 * which costs O(entries) but happens only when the budget is reached, after
 * at least a quarter of it was freed the time before.
 *
 * Eviction is CLOCK in one sweep: an entry read or written since the
 * previous sweep survives it (and loses its mark), other clean entries are
 * dropped, oldest first, until the cache is down to three quarters of its
 * budget.  When that is not enough the dirty entries are flushed and the
 * oldest clean entries go, marked or not.
 *
 * Thread: the store's.
 */
#include "state/kvcache.h"
#include "core/error.h"
#include "core/hash.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct entry {
    uint64_t hash;
    int32_t kg;
    uint32_t klen;
    uint32_t vlen, vcap;
    bool dirty;  /* written since the last flush */
    bool absent; /* the key has no value (deleted, or never written) */
    bool ref;    /* read or written since the last sweep */
    uint8_t *val;
    uint8_t key[]; /* klen bytes */
} entry_t;

/* Bookkeeping charged per entry beyond its key and value bytes. */
#define ENTRY_OVERHEAD (sizeof(entry_t) + 2 * sizeof(void *) + 2 * sizeof(uint32_t) + 16)

struct tm_kvcache {
    tm_store_t *store;
    tm_store_cf_t *cf;
    tm_store_batch_t *wb;
    size_t budget, bytes;
    bool ttl;
    entry_t **ents;
    size_t n, cap;
    uint32_t *table; /* vector index + 1; 0 = empty */
    uint32_t mask;
    size_t ndirty;
    tm_buf_t buf;
    tm_kvcache_stats_t st;
};

int tm_kvcache_new(tm_store_t *store, tm_store_cf_t *cf, size_t budget, tm_kvcache_t **out)
{
    *out = NULL;
    tm_kvcache_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return TM_ENOMEM;
    c->store = store;
    c->cf = cf;
    c->budget = budget < 65536 ? 65536 : budget;
    c->ttl = tm_store_ttl_us(store) > 0;
    c->mask = 1023;
    c->table = calloc(c->mask + 1, sizeof(uint32_t));
    tm_buf_init(&c->buf);
    int rc = c->table == NULL ? TM_ENOMEM : tm_store_batch_new_unindexed(store, &c->wb);
    if (rc != 0) {
        tm_kvcache_free(c);
        return rc;
    }
    *out = c;
    return 0;
}

static void entry_free(entry_t *e)
{
    if (e != NULL) {
        free(e->val);
        free(e);
    }
}

tm_kvcache_t *tm_kvcache_free(tm_kvcache_t *c)
{
    if (c == NULL)
        return NULL;
    for (size_t i = 0; i < c->n; i++)
        entry_free(c->ents[i]);
    free(c->ents);
    free(c->table);
    tm_store_batch_free(c->wb);
    tm_buf_release(&c->buf);
    free(c);
    return NULL;
}

static size_t entry_bytes(const entry_t *e)
{
    return ENTRY_OVERHEAD + e->klen + e->vcap;
}

static uint64_t key_hash(int kg, const void *key, size_t klen)
{
    return tm_xxh64(key, klen, 0x6b76u + (uint64_t)kg);
}

/* The table slot of (kg, key): its entry's, or the empty slot where it would go. */
static uint32_t slot_of(const tm_kvcache_t *c, uint64_t h, int kg, const void *key, size_t klen)
{
    for (uint32_t i = (uint32_t)h & c->mask;; i = (i + 1) & c->mask) {
        uint32_t x = c->table[i];
        if (x == 0)
            return i;
        const entry_t *e = c->ents[x - 1];
        if (e->hash == h && e->kg == kg && e->klen == klen && memcmp(e->key, key, klen) == 0)
            return i;
    }
}

/* Rebuilds the table for the vector as it is (after compaction or growth). */
static int rebuild(tm_kvcache_t *c, size_t want)
{
    uint32_t size = 1024;
    while (size < 2 * want)
        size <<= 1;
    if (size - 1 != c->mask) {
        uint32_t *t = calloc(size, sizeof(uint32_t));
        if (t == NULL)
            return TM_ENOMEM;
        free(c->table);
        c->table = t;
        c->mask = size - 1;
    } else {
        memset(c->table, 0, sizeof(uint32_t) * size);
    }
    for (size_t i = 0; i < c->n; i++) {
        const entry_t *e = c->ents[i];
        uint32_t s = (uint32_t)e->hash & c->mask;
        while (c->table[s] != 0)
            s = (s + 1) & c->mask;
        c->table[s] = (uint32_t)i + 1;
    }
    return 0;
}

static int entry_cmp(const void *a, const void *b)
{
    const entry_t *x = *(entry_t *const *)a, *y = *(entry_t *const *)b;
    if (x->kg != y->kg)
        return x->kg < y->kg ? -1 : 1;
    size_t n = x->klen < y->klen ? x->klen : y->klen;
    int r = memcmp(x->key, y->key, n);
    return r != 0 ? r : (x->klen > y->klen) - (x->klen < y->klen);
}

/*
 * Drops clean entries not referenced since the last sweep, oldest first,
 * until the cache holds at most `limit` bytes (`force`: referenced ones too);
 * clears the mark of every entry it passes.
 */
static int sweep(tm_kvcache_t *c, size_t limit, bool force)
{
    size_t w = 0;
    for (size_t i = 0; i < c->n; i++) {
        entry_t *e = c->ents[i];
        if (!e->dirty && (force || !e->ref) && c->bytes > limit) {
            c->bytes -= entry_bytes(e);
            entry_free(e);
            c->st.evictions++;
            continue;
        }
        e->ref = false;
        c->ents[w++] = e;
    }
    c->n = w;
    return rebuild(c, c->n);
}

int tm_kvcache_flush(tm_kvcache_t *c, char *errstr, size_t errstr_size)
{
    if (c->ndirty == 0)
        return c->ttl ? sweep(c, 0, true) : 0;
    entry_t **d = malloc(sizeof(entry_t *) * c->ndirty);
    if (d == NULL)
        return TM_ENOMEM;
    size_t nd = 0;
    for (size_t i = 0; i < c->n && nd < c->ndirty; i++)
        if (c->ents[i]->dirty)
            d[nd++] = c->ents[i];
    /* Ascending keys: the memtable inserts each from where the previous one ended. */
    qsort(d, nd, sizeof(*d), entry_cmp);
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < nd; i++) {
        const entry_t *e = d[i];
        rc = e->absent ? tm_store_batch_delete(c->wb, c->cf, e->kg, e->key, e->klen)
                       : tm_store_batch_put(c->wb, c->cf, e->kg, e->key, e->klen,
                                            e->vlen ? e->val : (const uint8_t *)"", e->vlen);
    }
    if (rc == 0)
        rc = tm_store_batch_commit(c->wb, errstr, errstr_size);
    if (rc == 0) {
        for (size_t i = 0; i < nd; i++)
            d[i]->dirty = false;
        c->ndirty = 0;
        c->st.flushes++;
    }
    free(d);
    if (rc != 0)
        return rc;
    return c->ttl ? sweep(c, 0, true) : 0;
}

/* Keeps the cache within its budget before it grows (invariant 3). */
static int make_room(tm_kvcache_t *c, size_t more, char *errstr, size_t errstr_size)
{
    if (c->bytes + more <= c->budget)
        return 0;
    size_t target = c->budget / 4 * 3;
    int rc = sweep(c, target, false);
    if (rc == 0 && c->bytes + more > target) {
        /* Mostly dirty: write them out, then drop the oldest clean entries, marked or not. */
        rc = tm_kvcache_flush(c, errstr, errstr_size);
        rc = rc ? rc : sweep(c, target, true);
    }
    return rc;
}

/*
 * The entry of (kg, key), created (absent, clean) when missing.  `fresh` says
 * whether it was created.  The pointer is valid until the next call.
 */
static int find_or_add(tm_kvcache_t *c, int kg, const void *key, size_t klen, entry_t **out,
                       bool *fresh, char *errstr, size_t errstr_size)
{
    uint64_t h = key_hash(kg, key, klen);
    uint32_t s = slot_of(c, h, kg, key, klen);
    *fresh = false;
    if (c->table[s] != 0) {
        *out = c->ents[c->table[s] - 1];
        (*out)->ref = true;
        return 0;
    }
    int rc = make_room(c, ENTRY_OVERHEAD + klen, errstr, errstr_size);
    if (rc != 0)
        return rc;
    if (c->n == c->cap) {
        size_t ncap = c->cap ? 2 * c->cap : 1024;
        entry_t **v = realloc(c->ents, sizeof(entry_t *) * ncap);
        if (v == NULL)
            return TM_ENOMEM;
        c->ents = v;
        c->cap = ncap;
    }
    if (c->n + 1 > (size_t)(c->mask + 1) / 2 && (rc = rebuild(c, c->n + 1)) != 0)
        return rc;
    entry_t *e = calloc(1, sizeof(*e) + klen);
    if (e == NULL)
        return TM_ENOMEM;
    e->hash = h;
    e->kg = kg;
    e->klen = (uint32_t)klen;
    e->absent = true;
    e->ref = true;
    memcpy(e->key, key, klen);
    /* The sweep or rebuild above may have moved every slot. */
    s = slot_of(c, h, kg, key, klen);
    c->ents[c->n] = e;
    c->table[s] = (uint32_t)++c->n;
    c->bytes += entry_bytes(e);
    *out = e;
    *fresh = true;
    return 0;
}

static int set_value(tm_kvcache_t *c, entry_t *e, const void *val, size_t vlen)
{
    if (vlen > e->vcap || (e->vcap > 256 && vlen < e->vcap / 4)) {
        size_t ncap = vlen < 16 ? 16 : vlen;
        uint8_t *v = malloc(ncap);
        if (v == NULL)
            return TM_ENOMEM;
        free(e->val);
        c->bytes += ncap;
        c->bytes -= e->vcap;
        e->val = v;
        e->vcap = (uint32_t)ncap;
    }
    if (vlen > 0)
        memcpy(e->val, val, vlen);
    e->vlen = (uint32_t)vlen;
    return 0;
}

int tm_kvcache_get(tm_kvcache_t *c, int kg, const void *key, size_t klen, const uint8_t **val,
                   size_t *vlen, char *errstr, size_t errstr_size)
{
    entry_t *e;
    bool fresh;
    *val = NULL;
    *vlen = 0;
    int rc = find_or_add(c, kg, key, klen, &e, &fresh, errstr, errstr_size);
    if (rc != 0)
        return rc;
    if (fresh) {
        c->st.misses++;
        rc = tm_store_get(c->store, c->cf, kg, key, klen, &c->buf, errstr, errstr_size);
        if (rc == 0)
            rc = set_value(c, e, c->buf.data, c->buf.len);
        if (rc == 0) {
            e->absent = false;
        } else if (rc != TM_ENOTFOUND) {
            /*
             * Unknown, not absent: take the entry out again.  It is the last
             * one inserted, so no other key's probe sequence runs through
             * its slot and the slot can simply be emptied.
             */
            c->table[slot_of(c, e->hash, kg, key, klen)] = 0;
            c->n--;
            c->bytes -= entry_bytes(e);
            entry_free(e);
            return rc;
        }
    } else {
        c->st.hits++;
    }
    if (e->absent)
        return TM_ENOTFOUND;
    *val = e->vlen ? e->val : (const uint8_t *)"";
    *vlen = e->vlen;
    return 0;
}

static int write(tm_kvcache_t *c, int kg, const void *key, size_t klen, const void *val,
                 size_t vlen, bool del, char *errstr, size_t errstr_size)
{
    if (klen > UINT32_MAX || vlen > UINT32_MAX)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "a state value of %zu bytes is too large",
                         vlen);
    int rc = make_room(c, vlen, errstr, errstr_size);
    entry_t *e;
    bool fresh;
    rc = rc ? rc : find_or_add(c, kg, key, klen, &e, &fresh, errstr, errstr_size);
    if (rc != 0)
        return rc;
    if (del) {
        e->vlen = 0;
        e->absent = true;
    } else {
        if ((rc = set_value(c, e, val, vlen)) != 0)
            return rc;
        e->absent = false;
    }
    if (!e->dirty) {
        e->dirty = true;
        c->ndirty++;
    }
    return 0;
}

int tm_kvcache_put(tm_kvcache_t *c, int kg, const void *key, size_t klen, const void *val,
                   size_t vlen, char *errstr, size_t errstr_size)
{
    return write(c, kg, key, klen, val, vlen, false, errstr, errstr_size);
}

int tm_kvcache_delete(tm_kvcache_t *c, int kg, const void *key, size_t klen, char *errstr,
                      size_t errstr_size)
{
    return write(c, kg, key, klen, NULL, 0, true, errstr, errstr_size);
}

void tm_kvcache_stats(const tm_kvcache_t *c, tm_kvcache_stats_t *out)
{
    *out = c->st;
    out->entries = c->n;
    out->bytes = c->bytes;
}
