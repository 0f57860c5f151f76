/*
 * datum.c — equality, ordering and hashing of single values (see datum.h).
 *
 * Invariants:
 *   1. tm_datum_equal(t, a, b) == (tm_datum_compare(t, a, b) == 0).
 *   2. Equal datums hash equal: floats hash -0.0 as 0.0 and every NaN as
 *      one NaN; numerics hash through tm_num_hash (scale-independent).
 *   3. An unavailable (unchanged TOASTed) datum equals only another one and
 *      sorts after every value.
 *
 * Thread: any; pure functions.
 */
#include "core/datum.h"

#include "core/numeric.h"
#include "core/hash.h"

#include <math.h>
#include <string.h>

static int cmp_i64(int64_t a, int64_t b)
{
    return a < b ? -1 : a > b;
}

static int cmp_f64(double a, double b)
{
    bool na = isnan(a), nb = isnan(b);
    if (na || nb)
        return na - nb;
    return a < b ? -1 : a > b; /* -0.0 == 0.0 here */
}

static int cmp_var(const tm_datum_t *a, const tm_datum_t *b)
{
    uint32_t n = a->u.var.len < b->u.var.len ? a->u.var.len : b->u.var.len;
    int c = n ? memcmp(a->u.var.ptr, b->u.var.ptr, n) : 0;
    if (c)
        return c < 0 ? -1 : 1;
    return cmp_i64(a->u.var.len, b->u.var.len);
}

int tm_datum_compare(tm_type_t type, const tm_datum_t *a, const tm_datum_t *b)
{
    bool ua = a->flags & TM_DATUM_UNAVAILABLE, ub = b->flags & TM_DATUM_UNAVAILABLE;
    if (ua || ub)
        return ua - ub;
    switch (tm_type_storage(type)) {
    case TM_STORAGE_BOOL:
        return (int)a->u.b - (int)b->u.b;
    case TM_STORAGE_I64:
        return cmp_i64(a->u.i64, b->u.i64);
    case TM_STORAGE_F64:
        return cmp_f64(a->u.f64, b->u.f64);
    case TM_STORAGE_NUMERIC:
        return tm_num_cmp(a, b);
    case TM_STORAGE_VAR:
        return cmp_var(a, b);
    case TM_STORAGE_UNKNOWN:
        break;
    }
    return 0;
}

tm_storage_t tm_type_storage(tm_type_t type)
{
    switch (type) {
    case TM_T_BOOL:
        return TM_STORAGE_BOOL;
    case TM_T_INT16:
    case TM_T_INT32:
    case TM_T_INT64:
    case TM_T_DATE:
    case TM_T_TIME:
    case TM_T_TIMETZ:
    case TM_T_TIMESTAMP:
    case TM_T_TIMESTAMPTZ:
    case TM_T_INTERVAL:
        return TM_STORAGE_I64;
    case TM_T_FLOAT32:
    case TM_T_FLOAT64:
        return TM_STORAGE_F64;
    case TM_T_NUMERIC:
        return TM_STORAGE_NUMERIC;
    case TM_T_TEXT:
    case TM_T_BYTES:
    case TM_T_JSON:
    case TM_T_UUID:
    case TM_T_ARRAY:
    case TM_T_ENUM:
    case TM_T_OTHER:
        return TM_STORAGE_VAR;
    }
    return TM_STORAGE_UNKNOWN;
}

bool tm_datum_equal(tm_type_t type, const tm_datum_t *a, const tm_datum_t *b)
{
    /* The common case for keys: skip the ordering work. */
    if (tm_type_storage(type) == TM_STORAGE_VAR && !((a->flags | b->flags) & TM_DATUM_UNAVAILABLE))
        return a->u.var.len == b->u.var.len &&
               (a->u.var.len == 0 || memcmp(a->u.var.ptr, b->u.var.ptr, a->u.var.len) == 0);
    return tm_datum_compare(type, a, b) == 0;
}

static uint64_t hash_u64(uint64_t v, uint64_t seed)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return tm_xxh64(b, sizeof(b), seed);
}

uint64_t tm_datum_hash(tm_type_t type, const tm_datum_t *d, uint64_t seed)
{
    if (d->flags & TM_DATUM_UNAVAILABLE) {
        static const uint8_t tag = 0xFE;
        return tm_xxh64(&tag, 1, seed);
    }
    switch (tm_type_storage(type)) {
    case TM_STORAGE_BOOL:
        return hash_u64(d->u.b ? 1 : 0, seed);
    case TM_STORAGE_I64:
        return hash_u64((uint64_t)d->u.i64, seed);
    case TM_STORAGE_F64: {
        double v = d->u.f64;
        uint64_t bits;
        if (isnan(v))
            v = NAN;
        else if (v == 0)
            v = 0.0;
        memcpy(&bits, &v, sizeof(bits));
        return hash_u64(bits, seed);
    }
    case TM_STORAGE_NUMERIC:
        return tm_num_hash(d, seed);
    case TM_STORAGE_VAR:
        return tm_xxh64(d->u.var.ptr ? d->u.var.ptr : "", d->u.var.len, seed);
    case TM_STORAGE_UNKNOWN:
        break;
    }
    return seed;
}

bool tm_row_col_equal(const tm_schema_t *schema, const tm_row_t *a, const tm_row_t *b, int i)
{
    bool na = tm_row_is_null(a, i), nb = tm_row_is_null(b, i);
    if (na || nb)
        return na == nb;
    return tm_datum_equal(schema->cols[i].type, &a->vals[i], &b->vals[i]);
}

bool tm_row_equal(const tm_schema_t *schema, const tm_row_t *a, const tm_row_t *b)
{
    for (int i = 0; i < schema->ncols; i++)
        if (!tm_row_col_equal(schema, a, b, i))
            return false;
    return true;
}
