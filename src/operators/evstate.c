/*
 * evstate.c — the time encoding and watermark records of the operators that
 * keep timers (evstate.h).
 *
 * Thread: the operator's subtask.
 */
#include "operators/evstate.h"

#include "core/error.h"

void tm_evstate_put_time(uint8_t *p, int64_t t)
{
    uint64_t u = (uint64_t)t ^ ((uint64_t)1 << 63);
    for (int i = 7; i >= 0; i--, u >>= 8)
        p[i] = (uint8_t)u;
}

int64_t tm_evstate_get_time(const uint8_t *p)
{
    uint64_t u = 0;
    for (int i = 0; i < 8; i++)
        u = u << 8 | p[i];
    return (int64_t)(u ^ ((uint64_t)1 << 63));
}

int64_t tm_evstate_sat_add(int64_t a, int64_t b)
{
    if (b > 0 && a > INT64_MAX - b)
        return INT64_MAX;
    if (b < 0 && a < INT64_MIN - b)
        return INT64_MIN;
    return a + b;
}

int tm_evstate_save_watermark(tm_store_batch_t *wb, tm_store_cf_t *cf, int kg_first, int kg_last,
                              int64_t wm)
{
    uint8_t t[8];
    tm_evstate_put_time(t, wm);
    int rc = 0;
    for (int kg = kg_first; rc == 0 && kg <= kg_last; kg++)
        rc = tm_store_batch_put(wb, cf, kg, "m", 1, t, 8);
    return rc;
}

int tm_evstate_restore_watermark(tm_store_t *store, tm_store_cf_t *cf, int kg_first, int kg_last,
                                 tm_buf_t *val, const char *what, int64_t *wm, bool *found,
                                 char *errstr, size_t errstr_size)
{
    *wm = INT64_MAX;
    *found = false;
    for (int kg = kg_first; kg <= kg_last; kg++) {
        int rc = tm_store_get(store, cf, kg, "m", 1, val, errstr, errstr_size);
        if (rc == TM_ENOTFOUND)
            continue;
        if (rc != 0)
            return rc;
        if (val->len != 8)
            return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                             "%s: the stored watermark of key group %d is malformed", what, kg);
        int64_t w = tm_evstate_get_time((const uint8_t *)val->data);
        *wm = w < *wm ? w : *wm;
        *found = true;
    }
    return 0;
}

int tm_evstate_earliest_timers(tm_store_iter_t *it, int kg_first, int kg_last, int64_t *kg_due,
                               int64_t *next, char *errstr, size_t errstr_size)
{
    *next = INT64_MAX;
    for (int kg = kg_first; kg <= kg_last; kg++) {
        int64_t *due = &kg_due[kg - kg_first];
        *due = INT64_MAX;
        int rc = tm_store_iter_seek(it, kg, "t", 1, false);
        tm_store_entry_t e;
        if (rc == 0)
            rc = tm_store_iter_next(it, &e, errstr, errstr_size);
        if (rc < 0)
            return rc;
        if (rc == 1 && e.klen >= 9)
            *due = tm_evstate_get_time(e.key + 1);
        if (*due < *next)
            *next = *due;
    }
    return 0;
}
