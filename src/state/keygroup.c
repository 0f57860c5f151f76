/*
 * keygroup.c — key-group assignment (see keygroup.h).
 */
#include "state/keygroup.h"
#include "core/error.h"
#include "core/hash.h"

static int maxp_ok(int maxp)
{
    return maxp >= 1 && maxp <= TM_MAX_PARALLELISM_LIMIT;
}

int tm_keygroup_check(int max_parallelism, int nworkers, char *errstr, size_t errstr_size)
{
    if (!maxp_ok(max_parallelism))
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "max_parallelism = %d is out of range: it must be between 1 and %d",
                         max_parallelism, TM_MAX_PARALLELISM_LIMIT);
    if (nworkers != 0 && (nworkers < 1 || nworkers > max_parallelism))
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%d workers cannot share %d key groups: the number of workers must be "
                         "between 1 and max_parallelism (%d)",
                         nworkers, max_parallelism, max_parallelism);
    return 0;
}

int tm_keygroup_of(const void *key, size_t len, int max_parallelism)
{
    if (!maxp_ok(max_parallelism))
        return TM_EINVAL;
    return (int)(tm_xxh64(key, len, 0) % (uint64_t)max_parallelism);
}

int tm_keygroup_range(int worker, int nworkers, int max_parallelism, int *first, int *last)
{
    if (!maxp_ok(max_parallelism) || nworkers < 1 || nworkers > max_parallelism || worker < 0 ||
        worker >= nworkers)
        return TM_EINVAL;
    /* 64-bit products: 32768 * 32768 does not fit an int. */
    int64_t w = worker, n = nworkers, m = max_parallelism;
    *first = (int)((w * m + n - 1) / n);
    *last = (int)(((w + 1) * m - 1) / n);
    return 0;
}

int tm_keygroup_worker(int kg, int nworkers, int max_parallelism)
{
    if (!maxp_ok(max_parallelism) || nworkers < 1 || nworkers > max_parallelism || kg < 0 ||
        kg >= max_parallelism)
        return TM_EINVAL;
    return (int)((int64_t)kg * nworkers / max_parallelism);
}
