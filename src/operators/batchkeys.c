/*
 * batchkeys.c — the distinct keys of one input batch (see batchkeys.h).
 *
 * Thread: the operator's.
 */
#include "operators/batchkeys.h"
#include "core/error.h"
#include "core/hash.h"

#include <string.h>

int tm_batch_keys_init(tm_batch_keys_t *t, tm_arena_t *arena, size_t entry_size, int max_keys,
                       int maxp)
{
    /* At most a quarter full: probes stay short. */
    uint32_t cap = 16;
    while (cap < 4 * (uint32_t)max_keys + 16)
        cap <<= 1;
    t->arena = arena;
    t->size = entry_size;
    t->n = 0;
    t->max_keys = max_keys;
    t->maxp = maxp;
    t->mask = cap - 1;
    t->map = tm_arena_zalloc(arena, sizeof(int32_t) * cap);
    t->entries = tm_arena_alloc(arena, entry_size * ((size_t)max_keys + 1));
    return t->map == NULL || t->entries == NULL ? TM_ENOMEM : 0;
}

int tm_batch_keys_find(tm_batch_keys_t *t, const void *key, size_t klen, void **entry,
                       bool *added)
{
    if (klen == 0)
        key = ""; /* a global key: an empty buffer has no data */
    /* The key group's hash (keygroup.h) doubles as the map's. */
    uint64_t h = tm_xxh64(key, klen, 0);
    /* The high half: the low bits are the key group's, shared by all of a subtask's keys. */
    for (uint32_t i = (uint32_t)(h >> 32) & t->mask;; i = (i + 1) & t->mask) {
        int32_t ei = t->map[i];
        if (ei == 0) {
            if (t->n >= t->max_keys)
                return TM_EINVAL;
            tm_batch_key_t *k = tm_batch_keys_at(t, t->n);
            memset(k, 0, t->size);
            if ((k->key = (const uint8_t *)tm_arena_memdup(t->arena, key, klen)) == NULL)
                return TM_ENOMEM;
            k->klen = klen;
            k->hash = h;
            k->kg = (int)(h % (uint64_t)t->maxp); /* tm_keygroup_of() */
            t->map[i] = ++t->n;
            *entry = k;
            *added = true;
            return 0;
        }
        tm_batch_key_t *k = tm_batch_keys_at(t, ei - 1);
        if (k->hash == h && k->klen == klen && memcmp(k->key, key, klen) == 0) {
            *entry = k;
            *added = false;
            return 0;
        }
    }
}

int tm_bytes_cmp(const void *a, size_t alen, const void *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

int tm_batch_key_cmp(const tm_batch_key_t *x, const tm_batch_key_t *y)
{
    if (x->kg != y->kg)
        return x->kg < y->kg ? -1 : 1;
    return tm_bytes_cmp(x->key, x->klen, y->key, y->klen);
}
