/*
 * batchkeys.h — the distinct keys of one input batch, for the mini-batched
 * keyed operators (group_agg's groups, join's join keys).
 *
 * Role: a mini-batched operator first sorts a batch's images by key, then
 * visits each key once against its state (DESIGN §13).  This is the table
 * that does the first part: an open-addressing map from key bytes to an
 * entry of the caller's array, and the order in which the store sorts the
 * entries' state keys.  Everything lives in the caller's arena and is gone
 * when the arena is reset, at the next batch.
 *
 * An entry is a caller-defined struct whose first member is a
 * tm_batch_key_t; tm_batch_keys_find() zeroes a new entry and fills that
 * member.
 *
 * Invariants:
 *   1. Entries are distinct by key bytes, and at most `max_keys` exist.
 *   2. An entry's kg is tm_keygroup_of() of its key, and its hash is the
 *      hash that function takes, so a key is hashed once per image.
 *
 * Thread: the operator's.
 */
#ifndef TM_OPERATORS_BATCHKEYS_H
#define TM_OPERATORS_BATCHKEYS_H

#include "core/arena.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_batch_key {
    const uint8_t *key; /* in the arena; never NULL, even when empty */
    size_t klen;
    uint64_t hash;
    int kg;
} tm_batch_key_t;

typedef struct tm_batch_keys {
    tm_arena_t *arena;
    char *entries; /* [max_keys] of `size` bytes */
    size_t size;
    int n, max_keys;
    int32_t *map; /* entry index + 1; 0 = empty */
    uint32_t mask;
    int maxp;
} tm_batch_keys_t;

/*
 * Makes `t` an empty table of at most `max_keys` entries of `entry_size`
 * bytes (a struct beginning with tm_batch_key_t), in `arena`, for a store of
 * `maxp` key groups.  Returns 0 or TM_ENOMEM.
 */
int tm_batch_keys_init(tm_batch_keys_t *t, tm_arena_t *arena, size_t entry_size, int max_keys,
                       int maxp);

/*
 * The entry of `key`, added (zeroed, its tm_batch_key_t filled, *added set)
 * when the batch has not had it.  Returns 0, TM_ENOMEM, or TM_EINVAL when the
 * table is full (the caller sized it too small).
 */
int tm_batch_keys_find(tm_batch_keys_t *t, const void *key, size_t klen, void **entry,
                       bool *added);

static inline void *tm_batch_keys_at(const tm_batch_keys_t *t, int i)
{
    return t->entries + (size_t)i * t->size;
}

/* Byte strings in memcmp order, a shorter prefix first. */
int tm_bytes_cmp(const void *a, size_t alen, const void *b, size_t blen);

/* The order of the keys' state keys in the store: key group, then the key bytes. */
int tm_batch_key_cmp(const tm_batch_key_t *x, const tm_batch_key_t *y);

#endif
