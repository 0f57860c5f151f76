/*
 * keygroup.h — key groups: the unit in which keyed state is partitioned,
 * checkpointed and rescaled (DESIGN §5).
 *
 * A key's key group is hash(key) mod max_parallelism, where hash is XXH64
 * with seed 0 over the operator's key bytes (core/hash.h).  Key groups are
 * spread over the workers in contiguous ranges with Flink's formula
 * (KeyGroupRangeAssignment), so worker w of n owns
 *
 *     first = ceil(w * maxp / n)      last = floor(((w + 1) * maxp - 1) / n)
 *
 * and key group g belongs to worker floor(g * n / maxp).  Both are exact
 * integer arithmetic, so a router and a restore agree on every platform.
 *
 * Invariants:
 *   1. 1 <= max_parallelism <= TM_MAX_PARALLELISM_LIMIT, so a key group fits
 *      the u16 that prefixes every state key.
 *   2. 1 <= nworkers <= max_parallelism: every worker owns at least one key
 *      group and the ranges of workers 0..n-1 tile [0, maxp) in order.
 *   3. max_parallelism never changes for the life of a job's state,
 *      savepoints included; the number of workers may.
 *
 * Thread: any; pure functions.
 */
#ifndef TM_STATE_KEYGROUP_H
#define TM_STATE_KEYGROUP_H

#include <stddef.h>
#include <stdint.h>

#define TM_MAX_PARALLELISM_DEFAULT 128
/* Flink's upper bound too: 2^15 key groups. */
#define TM_MAX_PARALLELISM_LIMIT 32768

/* Bytes of the big-endian key-group prefix of every state key. */
#define TM_KEYGROUP_PREFIX 2

/*
 * Checks a max_parallelism / worker count pair (nworkers 0 = do not check
 * it).  Returns 0 or TM_ECONFIG with a message naming the value.
 */
int tm_keygroup_check(int max_parallelism, int nworkers, char *errstr, size_t errstr_size);

/* The key group of a key, in [0, max_parallelism); TM_EINVAL if max_parallelism is invalid. */
int tm_keygroup_of(const void *key, size_t len, int max_parallelism);

/*
 * The contiguous key-group range [*first, *last] of `worker` (0-based) out of
 * `nworkers`.  Returns 0 or TM_EINVAL when the arguments break invariants 1-2.
 */
int tm_keygroup_range(int worker, int nworkers, int max_parallelism, int *first, int *last);

/* The worker that owns key group `kg`; TM_EINVAL on invalid arguments. */
int tm_keygroup_worker(int kg, int nworkers, int max_parallelism);

static inline void tm_keygroup_put(uint8_t out[TM_KEYGROUP_PREFIX], int kg)
{
    out[0] = (uint8_t)((unsigned)kg >> 8);
    out[1] = (uint8_t)kg;
}

static inline int tm_keygroup_get(const uint8_t in[TM_KEYGROUP_PREFIX])
{
    return (int)in[0] << 8 | in[1];
}

#endif
