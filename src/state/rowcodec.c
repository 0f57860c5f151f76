/*
 * rowcodec.c — the row encoding of operator state (see rowcodec.h).
 *
 * Invariants:
 *   1. The decoder reads only inside [data, data + len): every length is
 *      checked against what is left before it is used, so malformed or
 *      hostile bytes give TM_ECORRUPT, never an overrun.
 *   2. Encoding is a function of the values alone: equal rows give equal
 *      bytes (the operators' "unchanged" test depends on it).
 *   3. A decoded row owns nothing outside the target batch's arena.
 */
#include "state/rowcodec.h"
#include "core/datum.h"
#include "core/error.h"
#include "core/hash.h"

#include <math.h>
#include <string.h>

/* ---- primitive writers ---- */

static int put_u8(tm_buf_t *out, uint8_t v)
{
    return tm_buf_append(out, &v, 1);
}

static int put_f64(tm_buf_t *out, double f)
{
    uint64_t bits;
    uint8_t tmp[8];
    memcpy(&bits, &f, sizeof(bits));
    for (int i = 0; i < 8; i++)
        tmp[i] = (uint8_t)(bits >> (8 * i));
    return tm_buf_append(out, tmp, 8);
}

static int put_bytes(tm_buf_t *out, const void *p, size_t len)
{
    int rc = tm_buf_put_varint(out, len);
    return rc != 0 || len == 0 ? rc : tm_buf_append(out, p, len);
}

/* Minimal little-endian two's complement of a 128-bit value: 1..16 bytes. */
static int put_i128(tm_buf_t *out, __int128 v)
{
    uint8_t tmp[17];
    unsigned __int128 u = (unsigned __int128)v;
    int n = 16;
    for (int i = 0; i < 16; i++)
        tmp[1 + i] = (uint8_t)(u >> (8 * i));
    /* Drop a top byte while it is pure sign extension of the byte below it. */
    while (n > 1) {
        uint8_t top = tmp[n], below = tmp[n - 1];
        if ((top == 0x00 && !(below & 0x80)) || (top == 0xff && (below & 0x80)))
            n--;
        else
            break;
    }
    tmp[0] = (uint8_t)n;
    return tm_buf_append(out, tmp, (size_t)n + 1);
}

/* ---- primitive readers ---- */

typedef struct rd {
    const uint8_t *p, *end;
} rd_t;

static int get_u8(rd_t *r, uint8_t *v)
{
    if (r->p >= r->end)
        return TM_ECORRUPT;
    *v = *r->p++;
    return 0;
}

static int get_varint(rd_t *r, uint64_t *v)
{
    return tm_buf_get_varint(&r->p, r->end, v);
}

static int get_f64(rd_t *r, double *f)
{
    if (r->end - r->p < 8)
        return TM_ECORRUPT;
    uint64_t bits = 0;
    for (int i = 0; i < 8; i++)
        bits |= (uint64_t)r->p[i] << (8 * i);
    r->p += 8;
    memcpy(f, &bits, sizeof(*f));
    return 0;
}

static int get_i128(rd_t *r, __int128 *v)
{
    uint8_t n;
    if (get_u8(r, &n) != 0 || n < 1 || n > 16 || r->end - r->p < n)
        return TM_ECORRUPT;
    unsigned __int128 u = 0;
    for (int i = 0; i < n; i++)
        u |= (unsigned __int128)r->p[i] << (8 * i);
    if (n < 16 && (r->p[n - 1] & 0x80))
        u |= ~(unsigned __int128)0 << (8 * n);
    r->p += n;
    *v = (__int128)u;
    return 0;
}

static int get_bytes(rd_t *r, const uint8_t **p, size_t *len)
{
    uint64_t n;
    if (get_varint(r, &n) != 0 || n > (uint64_t)(r->end - r->p) || n > UINT32_MAX)
        return TM_ECORRUPT;
    *p = r->p;
    *len = (size_t)n;
    r->p += n;
    return 0;
}

/* ---- type classes ---- */


/* True when the datum's value lives in u.var (and so in an arena). */
static bool datum_is_var(tm_type_t t, const tm_datum_t *d)
{
    if (d->flags & TM_DATUM_UNAVAILABLE)
        return false;
    int k = tm_type_storage(t);
    return k == TM_STORAGE_VAR || (k == TM_STORAGE_NUMERIC && (d->flags & (TM_DATUM_WIDE | TM_DATUM_NAN)));
}

#define FLAGS_KNOWN (TM_DATUM_UNAVAILABLE | TM_DATUM_WIDE | TM_DATUM_NAN)
/* In the stored flag byte only: an interval's calendar months (row.h u.iv.months) follow its
 * microseconds.  Rows written before months were kept read back with months 0. */
#define CODEC_IV_MONTHS 0x80

uint32_t tm_row_shape_id(const tm_schema_t *schema)
{
    /*
     * Chain one hash per name (with its NUL) and per type pair, so that no
     * two different column lists hash the same byte stream.
     */
    const uint8_t version = TM_ROWCODEC_VERSION;
    uint64_t h = tm_xxh64(&version, 1, (uint64_t)schema->ncols);
    for (int i = 0; i < schema->ncols; i++) {
        const tm_column_t *c = &schema->cols[i];
        const char *name = c->name ? c->name : "";
        uint8_t types[2] = {(uint8_t)c->type, (uint8_t)c->elem_type};
        h = tm_xxh64(name, strlen(name) + 1, h);
        h = tm_xxh64(types, sizeof(types), h);
    }
    return (uint32_t)(h ^ (h >> 32));
}

static int put_value(tm_buf_t *out, const tm_column_t *col, const tm_datum_t *d)
{
    switch (tm_type_storage(col->type)) {
    case TM_STORAGE_BOOL:
        return put_u8(out, d->u.b ? 1 : 0);
    case TM_STORAGE_I64:
        return tm_buf_put_zigzag(out, d->u.i64);
    case TM_STORAGE_F64:
        return put_f64(out, d->u.f64);
    case TM_STORAGE_NUMERIC:
        if (d->flags & (TM_DATUM_WIDE | TM_DATUM_NAN))
            return put_bytes(out, d->u.var.ptr, d->u.var.len);
        {
            int rc = tm_buf_put_zigzag(out, d->scale);
            return rc != 0 ? rc : put_i128(out, d->u.dec);
        }
    case TM_STORAGE_VAR:
        return put_bytes(out, d->u.var.ptr, d->u.var.len);
    case TM_STORAGE_UNKNOWN:
        break;
    }
    return TM_EINVAL;
}

int tm_row_serialize(const tm_schema_t *schema, const tm_row_t *row, tm_buf_t *out)
{
    int ncols = schema->ncols;
    size_t start = out->len;
    uint32_t shape = tm_row_shape_id(schema);
    uint8_t hdr[5] = {TM_ROWCODEC_VERSION, (uint8_t)shape, (uint8_t)(shape >> 8),
                      (uint8_t)(shape >> 16), (uint8_t)(shape >> 24)};
    int rc = tm_buf_append(out, hdr, sizeof(hdr));
    if (rc == 0)
        rc = tm_buf_put_varint(out, (uint64_t)ncols);
    size_t nbytes = ((size_t)ncols + 7) / 8;
    if (rc == 0)
        rc = tm_buf_reserve(out, nbytes);
    if (rc != 0)
        goto fail;
    for (size_t b = 0; b < nbytes; b++) {
        uint8_t byte = 0;
        for (int k = 0; k < 8 && (int)(b * 8) + k < ncols; k++)
            if (tm_row_is_null(row, (int)(b * 8) + k))
                byte |= (uint8_t)(1u << k);
        out->data[out->len++] = (char)byte;
    }
    for (int i = 0; i < ncols; i++) {
        if (tm_row_is_null(row, i))
            continue;
        const tm_datum_t *d = &row->vals[i];
        bool months = schema->cols[i].type == TM_T_INTERVAL &&
                      !(d->flags & TM_DATUM_UNAVAILABLE) && d->u.iv.months != 0;
        if ((rc = put_u8(out, (uint8_t)((d->flags & FLAGS_KNOWN) |
                                        (months ? CODEC_IV_MONTHS : 0)))) != 0)
            goto fail;
        if (d->flags & TM_DATUM_UNAVAILABLE)
            continue;
        if ((rc = put_value(out, &schema->cols[i], d)) != 0)
            goto fail;
        if (months && (rc = tm_buf_put_zigzag(out, d->u.iv.months)) != 0)
            goto fail;
    }
    return 0;
fail:
    out->len = start;
    return rc;
}

int tm_row_serialized_shape(const void *data, size_t len, uint32_t *shape)
{
    const uint8_t *p = data;
    if (len < 5 || p[0] != TM_ROWCODEC_VERSION)
        return TM_ECORRUPT;
    *shape = (uint32_t)p[1] | (uint32_t)p[2] << 8 | (uint32_t)p[3] << 16 | (uint32_t)p[4] << 24;
    return 0;
}

static int get_value(rd_t *r, tm_batch_t *batch, const tm_column_t *col, tm_datum_t *d)
{
    const uint8_t *bp;
    size_t blen;
    uint64_t v;
    uint8_t b;
    switch (tm_type_storage(col->type)) {
    case TM_STORAGE_BOOL:
        if (get_u8(r, &b) != 0 || b > 1)
            return TM_ECORRUPT;
        d->u.b = b != 0;
        return 0;
    case TM_STORAGE_I64:
        if (get_varint(r, &v) != 0)
            return TM_ECORRUPT;
        d->u.i64 = tm_unzigzag(v);
        return 0;
    case TM_STORAGE_F64:
        return get_f64(r, &d->u.f64);
    case TM_STORAGE_NUMERIC:
        if (!(d->flags & (TM_DATUM_WIDE | TM_DATUM_NAN))) {
            if (get_varint(r, &v) != 0)
                return TM_ECORRUPT;
            int64_t scale = tm_unzigzag(v);
            if (scale < INT16_MIN || scale > INT16_MAX)
                return TM_ECORRUPT;
            d->scale = (int16_t)scale;
            return get_i128(r, &d->u.dec);
        }
        /* A wide or NaN numeric keeps its text, like a variable-length type. */
        if (get_bytes(r, &bp, &blen) != 0)
            return TM_ECORRUPT;
        return tm_batch_set_var(batch, d, bp, blen);
    case TM_STORAGE_VAR:
        if (get_bytes(r, &bp, &blen) != 0)
            return TM_ECORRUPT;
        return tm_batch_set_var(batch, d, bp, blen);
    case TM_STORAGE_UNKNOWN:
        break;
    }
    return TM_EINVAL;
}

int tm_row_deserialize(const tm_schema_t *schema, const void *data, size_t len,
                       tm_batch_t *batch, tm_row_t **out)
{
    rd_t r = {data, (const uint8_t *)data + len};
    uint32_t shape;
    uint64_t ncols;
    if (tm_row_serialized_shape(data, len, &shape) != 0)
        return TM_ECORRUPT;
    if (shape != tm_row_shape_id(schema))
        return TM_EINVAL;
    r.p += 5;
    if (get_varint(&r, &ncols) != 0)
        return TM_ECORRUPT;
    if (ncols != (uint64_t)schema->ncols)
        return TM_EINVAL;
    size_t nbytes = ((size_t)ncols + 7) / 8;
    if ((size_t)(r.end - r.p) < nbytes)
        return TM_ECORRUPT;
    const uint8_t *bitmap = r.p;
    r.p += nbytes;
    /* Bits past the last column must be zero, or two encodings would mean one row. */
    if ((ncols & 7) != 0 && (bitmap[nbytes - 1] >> (ncols & 7)) != 0)
        return TM_ECORRUPT;

    tm_row_t *row = tm_batch_new_row(batch, schema);
    if (row == NULL)
        return TM_ENOMEM;
    for (int i = 0; i < schema->ncols; i++) {
        if ((bitmap[i >> 3] >> (i & 7)) & 1)
            continue;
        tm_datum_t *d = &row->vals[i];
        uint8_t flags;
        bool iv = schema->cols[i].type == TM_T_INTERVAL;
        if (get_u8(&r, &flags) != 0 ||
            (flags & ~(FLAGS_KNOWN | (iv ? CODEC_IV_MONTHS : 0))) != 0)
            return TM_ECORRUPT;
        tm_row_set_null(row, i, false);
        d->flags = flags & FLAGS_KNOWN;
        if (flags & TM_DATUM_UNAVAILABLE)
            continue;
        int rc = get_value(&r, batch, &schema->cols[i], d);
        if (rc != 0)
            return rc;
        if (iv)
            d->u.iv.months = 0;
        if (flags & CODEC_IV_MONTHS) {
            uint64_t m;
            if (get_varint(&r, &m) != 0 || tm_unzigzag(m) < INT32_MIN || tm_unzigzag(m) > INT32_MAX)
                return TM_ECORRUPT;
            d->u.iv.months = (int32_t)tm_unzigzag(m);
        }
    }
    if (r.p != r.end)
        return TM_ECORRUPT;
    *out = row;
    return 0;
}

/* ---- primary keys ---- */

static int put_key_value(tm_buf_t *out, const tm_column_t *col, const tm_datum_t *d)
{
    switch (tm_type_storage(col->type)) {
    case TM_STORAGE_F64: {
        double f = d->u.f64;
        /* One key for -0.0 and 0.0, and one for every NaN payload. */
        if (f == 0.0)
            f = 0.0;
        else if (isnan(f))
            f = NAN;
        return put_f64(out, f);
    }
    case TM_STORAGE_NUMERIC: {
        if (d->flags & (TM_DATUM_WIDE | TM_DATUM_NAN)) {
            int rc = put_u8(out, 1);
            return rc != 0 ? rc : put_bytes(out, d->u.var.ptr, d->u.var.len);
        }
        __int128 v = d->u.dec;
        int64_t scale = d->scale;
        while (scale > 0 && v % 10 == 0) {
            v /= 10;
            scale--;
        }
        if (v == 0)
            scale = 0;
        int rc = put_u8(out, 0);
        if (rc == 0)
            rc = tm_buf_put_zigzag(out, scale);
        return rc != 0 ? rc : put_i128(out, v);
    }
    default:
        return put_value(out, col, d);
    }
}

int tm_row_key_encode(const tm_schema_t *schema, const tm_row_t *row, tm_buf_t *out)
{
    if (schema->nkeys <= 0)
        return TM_EINVAL;
    size_t start = out->len;
    for (int k = 0; k < schema->nkeys; k++) {
        int i = schema->key_cols[k];
        if (tm_row_is_null(row, i) || (row->vals[i].flags & TM_DATUM_UNAVAILABLE)) {
            out->len = start;
            return TM_EINVAL;
        }
        int rc = put_key_value(out, &schema->cols[i], &row->vals[i]);
        if (rc != 0) {
            out->len = start;
            return rc;
        }
    }
    return 0;
}

tm_row_t *tm_row_copy(tm_batch_t *batch, const tm_schema_t *schema, const tm_row_t *row)
{
    tm_row_t *copy = tm_batch_new_row(batch, schema);
    if (copy == NULL)
        return NULL;
    size_t words = ((size_t)schema->ncols + 63) / 64;
    memcpy(copy->nulls, row->nulls, (words ? words : 1) * sizeof(uint64_t));
    for (int i = 0; i < schema->ncols; i++) {
        const tm_datum_t *d = &row->vals[i];
        copy->vals[i] = *d;
        if (tm_row_is_null(row, i) || !datum_is_var(schema->cols[i].type, d))
            continue;
        /* An empty value may come without a pointer; the copy always has one. */
        const char *src = d->u.var.len > 0 ? d->u.var.ptr : "";
        if (tm_batch_set_var(batch, &copy->vals[i], src, d->u.var.len) != 0)
            return NULL;
    }
    return copy;
}

int tm_row_cols_key_encode(const tm_schema_t *schema, const tm_row_t *row, const int *cols,
                           int ncols, tm_buf_t *out)
{
    size_t start = out->len;
    for (int k = 0; k < ncols; k++) {
        int i = cols[k];
        if (i < 0 || i >= schema->ncols) {
            out->len = start;
            return TM_EINVAL;
        }
        /* A NULL is its own value (GROUP BY puts every NULL in one group). */
        bool isnull = tm_row_is_null(row, i);
        if (!isnull && (row->vals[i].flags & TM_DATUM_UNAVAILABLE)) {
            out->len = start;
            return TM_EINVAL;
        }
        int rc = put_u8(out, isnull ? 0 : 1);
        if (rc == 0 && !isnull)
            rc = put_key_value(out, &schema->cols[i], &row->vals[i]);
        if (rc != 0) {
            out->len = start;
            return rc;
        }
    }
    return 0;
}

int tm_row_cols_key_skip(const tm_schema_t *schema, const int *cols, int ncols, const void *data,
                         size_t len, size_t *consumed)
{
    rd_t r = {data, (const uint8_t *)data + len};
    for (int k = 0; k < ncols; k++) {
        uint8_t present, tag;
        uint64_t v;
        const uint8_t *bp;
        size_t blen;
        __int128 dec;
        if (cols[k] < 0 || cols[k] >= schema->ncols || get_u8(&r, &present) != 0 || present > 1)
            return TM_ECORRUPT;
        if (present == 0)
            continue;
        int rc;
        /* The cases mirror put_key_value() and put_value(). */
        switch (tm_type_storage(schema->cols[cols[k]].type)) {
        case TM_STORAGE_BOOL:
            rc = get_u8(&r, &tag);
            break;
        case TM_STORAGE_I64:
            rc = get_varint(&r, &v);
            break;
        case TM_STORAGE_F64:
            rc = r.end - r.p < 8 ? TM_ECORRUPT : 0;
            r.p += rc == 0 ? 8 : 0;
            break;
        case TM_STORAGE_NUMERIC:
            rc = get_u8(&r, &tag);
            if (rc == 0 && tag == 1)
                rc = get_bytes(&r, &bp, &blen);
            else if (rc == 0 && tag == 0)
                rc = get_varint(&r, &v) != 0 ? TM_ECORRUPT : get_i128(&r, &dec);
            else
                rc = TM_ECORRUPT;
            break;
        case TM_STORAGE_VAR:
            rc = get_bytes(&r, &bp, &blen);
            break;
        default:
            rc = TM_ECORRUPT;
        }
        if (rc != 0)
            return TM_ECORRUPT;
    }
    *consumed = (size_t)(r.p - (const uint8_t *)data);
    return 0;
}
