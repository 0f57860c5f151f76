/*
 * row.c — batches, rows and the exact numeric (see row.h).
 *
 * Invariants:
 *   1. batch->schemas holds each distinct schema of batch->recs exactly once,
 *      with one reference each.
 *   2. A NUMERIC datum either has TM_DATUM_WIDE/TM_DATUM_NAN set and its text
 *      in u.var, or its value is u.dec * 10^-scale with 0 <= scale.
 */
#include "core/row.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define TM_BATCH_ARENA_CHUNK (128 * 1024)

tm_batch_t *tm_batch_new(void)
{
    tm_batch_t *b = malloc(sizeof(*b));
    if (b == NULL)
        return NULL;
    atomic_init(&b->refcount, 1);
    tm_arena_init(&b->arena, TM_BATCH_ARENA_CHUNK);
    b->count = 0;
    b->schemas = NULL;
    b->nschemas = 0;
    b->schemas_cap = 0;
    b->ack_token = 0;
    b->ack_source = -1;
    b->parent = NULL;
    return b;
}

tm_batch_t *tm_batch_new_child(tm_batch_t *parent)
{
    tm_batch_t *b = tm_batch_new();
    if (b != NULL && parent != NULL) {
        b->parent = tm_batch_ref(parent);
        b->ack_source = parent->ack_source;
    }
    return b;
}

tm_batch_t *tm_batch_ref(tm_batch_t *b)
{
    if (b != NULL)
        atomic_fetch_add_explicit(&b->refcount, 1, memory_order_relaxed);
    return b;
}

tm_batch_t *tm_batch_unref(tm_batch_t *b)
{
    if (b == NULL)
        return NULL;
    if (atomic_fetch_sub_explicit(&b->refcount, 1, memory_order_acq_rel) != 1)
        return NULL;
    for (uint32_t i = 0; i < b->nschemas; i++)
        tm_schema_unref(b->schemas[i]);
    free(b->schemas);
    tm_arena_release(&b->arena);
    tm_batch_t *parent = b->parent;
    free(b);
    tm_batch_unref(parent);
    return NULL;
}

static int batch_hold_schema(tm_batch_t *b, tm_schema_t *s)
{
    /* Batches hold few distinct schemas; the last one is the common hit. */
    for (uint32_t i = b->nschemas; i-- > 0;)
        if (b->schemas[i] == s)
            return 0;
    if (b->nschemas == b->schemas_cap) {
        uint32_t ncap = b->schemas_cap ? b->schemas_cap * 2 : 4;
        tm_schema_t **p = realloc(b->schemas, sizeof(*p) * ncap);
        if (p == NULL)
            return TM_ENOMEM;
        b->schemas = p;
        b->schemas_cap = ncap;
    }
    b->schemas[b->nschemas++] = tm_schema_ref(s);
    return 0;
}

tm_record_t *tm_batch_add(tm_batch_t *b, tm_schema_t *schema, tm_op_t op)
{
    if (b->count >= TM_BATCH_MAX)
        return NULL;
    if (schema != NULL && batch_hold_schema(b, schema) != 0)
        return NULL;
    tm_record_t *r = &b->recs[b->count++];
    memset(r, 0, sizeof(*r));
    r->op = op;
    r->schema = schema;
    return r;
}

tm_row_t *tm_batch_new_row(tm_batch_t *b, const tm_schema_t *schema)
{
    int ncols = schema->ncols;
    size_t words = ((size_t)ncols + 63) / 64;
    if (words == 0)
        words = 1;
    tm_row_t *row = tm_arena_alloc(&b->arena, sizeof(tm_row_t));
    if (row == NULL)
        return NULL;
    row->nulls = tm_arena_alloc(&b->arena, words * sizeof(uint64_t));
    row->vals = tm_arena_zalloc(&b->arena, sizeof(tm_datum_t) * (size_t)(ncols ? ncols : 1));
    if (row->nulls == NULL || row->vals == NULL)
        return NULL;
    memset(row->nulls, 0xff, words * sizeof(uint64_t));
    return row;
}

int tm_batch_set_var(tm_batch_t *b, tm_datum_t *d, const void *p, size_t len)
{
    char *copy = tm_arena_memdup(&b->arena, p, len);
    if (copy == NULL)
        return TM_ENOMEM;
    d->u.var.ptr = copy;
    d->u.var.len = (uint32_t)len;
    return 0;
}

int tm_record_kinds(const tm_record_t *rec, tm_rowkind_t kinds[2])
{
    switch (rec->op) {
    case TM_OP_READ:
    case TM_OP_CREATE:
        kinds[0] = TM_KIND_INSERT;
        return 1;
    case TM_OP_UPDATE:
        if (rec->before != NULL) {
            kinds[0] = TM_KIND_UPDATE_BEFORE;
            kinds[1] = TM_KIND_UPDATE_AFTER;
            return 2;
        }
        kinds[0] = TM_KIND_UPDATE_AFTER;
        return 1;
    case TM_OP_DELETE:
        kinds[0] = TM_KIND_DELETE;
        return 1;
    default:
        return 0;
    }
}

static int numeric_keep_text(tm_batch_t *b, tm_datum_t *d, const char *s, size_t len, uint8_t flag)
{
    d->flags |= flag;
    d->scale = 0;
    return tm_batch_set_var(b, d, s, len);
}

int tm_numeric_parse(tm_batch_t *b, tm_datum_t *d, const char *s, size_t len)
{
    static const __int128 max = (__int128)(((unsigned __int128)1 << 127) - 1);
    size_t i = 0;
    bool neg = false, any = false, overflow = false;
    __int128 v = 0;
    int scale = 0;
    long exp = 0;

    d->flags &= (uint8_t)~(TM_DATUM_WIDE | TM_DATUM_NAN);
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        neg = s[i++] == '-';
    if (len - i >= 3 && (strncasecmp(s + i, "nan", 3) == 0 || strncasecmp(s + i, "inf", 3) == 0))
        return numeric_keep_text(b, d, s, len, TM_DATUM_NAN);
    long intd = 0; /* integer digits from the first non-zero one */
    for (; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
        any = true;
        int dg = s[i] - '0';
        if (intd > 0 || dg != 0)
            intd++;
        if (v > (max - dg) / 10)
            overflow = true;
        else
            v = v * 10 + dg;
    }
    if (i < len && s[i] == '.') {
        for (i++; i < len && s[i] >= '0' && s[i] <= '9'; i++) {
            any = true;
            int dg = s[i] - '0';
            if (v > (max - dg) / 10)
                overflow = true;
            else
                v = v * 10 + dg;
            scale++;
        }
    }
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        bool eneg = false;
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+'))
            eneg = s[i++] == '-';
        if (i >= len || s[i] < '0' || s[i] > '9')
            return TM_EINVAL;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            if (exp < 100000)
                exp = exp * 10 + (s[i] - '0');
        if (eneg)
            exp = -exp;
    }
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (!any || i != len)
        return TM_EINVAL;
    long sc = (long)scale - exp;
    /*
     * PostgreSQL's limits (131072 digits before the point, 16383 after):
     * beyond them it says "value overflows numeric format", and a 16-byte
     * text with an exponent must not become 190,000 digits downstream.
     */
    if (intd + exp > 131072 || sc > 16383)
        return TM_EINVAL;
    while (!overflow && sc < 0) {
        if (v > max / 10)
            overflow = true;
        else
            v *= 10;
        sc++;
    }
    if (overflow || sc > 1000)
        return numeric_keep_text(b, d, s, len, TM_DATUM_WIDE);
    d->u.dec = neg ? -v : v;
    d->scale = (int16_t)sc;
    return 0;
}

size_t tm_numeric_format(const tm_datum_t *d, char *buf, size_t buflen)
{
    if (buflen == 0)
        return 0;
    if (d->flags & (TM_DATUM_WIDE | TM_DATUM_NAN)) {
        size_t n = d->u.var.len < buflen - 1 ? d->u.var.len : buflen - 1;
        memcpy(buf, d->u.var.ptr, n);
        buf[n] = '\0';
        return n;
    }
    char digits[64];
    int nd = 0;
    __int128 v = d->u.dec;
    bool neg = v < 0;
    unsigned __int128 u = neg ? (unsigned __int128)0 - (unsigned __int128)v : (unsigned __int128)v;
    do {
        digits[nd++] = (char)('0' + (int)(u % 10));
        u /= 10;
    } while (u && nd < (int)sizeof(digits));
    int scale = d->scale > 0 ? d->scale : 0;
    char tmp[1100];
    size_t n = 0;
    if (neg)
        tmp[n++] = '-';
    int intdigits = nd - scale;
    if (intdigits <= 0) {
        tmp[n++] = '0';
    } else {
        for (int k = 0; k < intdigits; k++)
            tmp[n++] = digits[nd - 1 - k];
    }
    if (scale > 0) {
        tmp[n++] = '.';
        for (int k = scale - 1; k >= 0 && n < sizeof(tmp) - 1; k--)
            tmp[n++] = k < nd ? digits[k] : '0';
    }
    if (n > buflen - 1)
        n = buflen - 1;
    memcpy(buf, tmp, n);
    buf[n] = '\0';
    return n;
}
