/*
 * fmt_util.h — helpers shared by the Debezium format unit tests.
 *
 * Role: a table with a column of every tm type (and the variants that change
 * the wire form: fixed/variable/wide NUMERIC, TIME/TIMESTAMP precisions,
 * arrays of three element types), a seeded generator of datums that are
 * representable in a given mode, and a datum comparison that knows which
 * losses a mode implies (NaN NUMERIC is null in precise mode).
 *
 * Invariant: generation is deterministic for a seed, so a failure names a
 * reproducible case.
 *
 * Thread: single-threaded tests.
 */
#ifndef TM_TEST_FMT_UTIL_H
#define TM_TEST_FMT_UTIL_H

#include "core/buf.h"
#include "core/row.h"
#include "core/schema.h"
#include "format/debezium.h"
#include "format/debezium_int.h"
#include "tm_test.h"

#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct fmt_col_def {
    const char *name;
    tm_type_t type;
    int32_t precision, scale;
    tm_type_t elem;
    const char *semantic;
    bool nullable;
} fmt_col_def_t;

static const fmt_col_def_t fmt_cols[] = {
    {"id", TM_T_INT64, -1, 0, 0, NULL, false},
    {"b", TM_T_BOOL, -1, 0, 0, NULL, true},
    {"i16", TM_T_INT16, -1, 0, 0, NULL, true},
    {"i32", TM_T_INT32, -1, 0, 0, NULL, true},
    {"i64", TM_T_INT64, -1, 0, 0, NULL, true},
    {"f32", TM_T_FLOAT32, -1, 0, 0, NULL, true},
    {"f64", TM_T_FLOAT64, -1, 0, 0, NULL, true},
    {"n", TM_T_NUMERIC, 12, 2, 0, NULL, true},
    {"n0", TM_T_NUMERIC, 20, 0, 0, NULL, true},
    {"nv", TM_T_NUMERIC, -1, TM_SCALE_VARIABLE, 0, NULL, true},
    {"nw", TM_T_NUMERIC, 70, 10, 0, NULL, true},
    {"t", TM_T_TEXT, -1, 0, 0, NULL, true},
    {"x", TM_T_TEXT, -1, 0, 0, "io.debezium.data.Xml", true},
    {"by", TM_T_BYTES, -1, 0, 0, NULL, true},
    {"j", TM_T_JSON, -1, 0, 0, NULL, true},
    {"u", TM_T_UUID, -1, 0, 0, NULL, true},
    {"d", TM_T_DATE, -1, 0, 0, NULL, true},
    {"tm3", TM_T_TIME, 3, 0, 0, NULL, true},
    {"tm6", TM_T_TIME, 6, 0, 0, NULL, true},
    {"tmd", TM_T_TIME, -1, 0, 0, NULL, true},
    {"ttz", TM_T_TIMETZ, -1, 0, 0, NULL, true},
    {"ts3", TM_T_TIMESTAMP, 3, 0, 0, NULL, true},
    {"ts6", TM_T_TIMESTAMP, 6, 0, 0, NULL, true},
    {"tstz", TM_T_TIMESTAMPTZ, -1, 0, 0, NULL, true},
    {"iv", TM_T_INTERVAL, -1, 0, 0, NULL, true},
    {"ai", TM_T_ARRAY, -1, 0, TM_T_INT32, NULL, true},
    {"at", TM_T_ARRAY, -1, 0, TM_T_TEXT, NULL, true},
    {"af", TM_T_ARRAY, -1, 0, TM_T_FLOAT64, NULL, true},
    {"e", TM_T_ENUM, -1, 0, 0, NULL, true},
    {"o", TM_T_OTHER, -1, 0, 0, NULL, true},
    {"we\"ird \xc3\xa9", TM_T_TEXT, -1, 0, 0, NULL, true},
};

#define FMT_NCOLS ((int)(sizeof(fmt_cols) / sizeof(fmt_cols[0])))

/* A schema with every column above; `keyed` makes `id` the primary key. */
static inline tm_schema_t *fmt_schema(bool keyed, const char *connector)
{
    tm_schema_t *s = tm_schema_new(FMT_NCOLS);
    tm_schema_set_str(&s->source_name, "shop");
    tm_schema_set_str(&s->db, "postgres");
    if (connector == NULL || strcmp(connector, "mysql") != 0)
        tm_schema_set_str(&s->namespace, "public");
    tm_schema_set_str(&s->table, "everything");
    s->version = 1;
    for (int i = 0; i < FMT_NCOLS; i++) {
        tm_column_t *c = &s->cols[i];
        tm_schema_set_str(&c->name, fmt_cols[i].name);
        c->type = fmt_cols[i].type;
        c->precision = fmt_cols[i].precision;
        c->scale = fmt_cols[i].scale;
        c->elem_type = fmt_cols[i].elem;
        c->nullable = fmt_cols[i].nullable;
        if (fmt_cols[i].semantic)
            tm_schema_set_str(&c->semantic, fmt_cols[i].semantic);
        if (c->type == TM_T_ENUM)
            tm_schema_set_str(&c->enum_values, "small,medium,large");
    }
    if (keyed)
        s->cols[0].key_index = 0;
    tm_schema_finish(s);
    return s;
}

/* ---- deterministic generator (xorshift64*) ---- */

typedef struct fmt_gen {
    uint64_t s;
} fmt_gen_t;

static inline uint64_t fmt_next(fmt_gen_t *g)
{
    g->s ^= g->s >> 12;
    g->s ^= g->s << 25;
    g->s ^= g->s >> 27;
    return g->s * 0x2545F4914F6CDD1Dull;
}

static inline int64_t fmt_range(fmt_gen_t *g, int64_t lo, int64_t hi)
{
    return lo + (int64_t)(fmt_next(g) % (uint64_t)(hi - lo + 1));
}

static inline bool fmt_chance(fmt_gen_t *g, int percent)
{
    return (int)(fmt_next(g) % 100) < percent;
}

/* Which losses and representable ranges a mode implies. */
typedef struct fmt_mode {
    tm_dbz_opts_t opts;
    const char *label;
} fmt_mode_t;

static inline bool fmt_time_ms(const tm_column_t *c, const tm_dbz_opts_t *o)
{
    tm_dbz_coldesc_t desc;
    tm__dbz_col_desc(c, o, &desc);
    return desc.wire == TM_DBZ_W_MS;
}

static const char *const fmt_texts[] = {
    "", "plain", "with \"quotes\" and \\backslash\\", "tab\there\nnewline\r",
    "\x01\x1f control", "caf\xc3\xa9 \xe6\xbc\xa2\xe5\xad\x97 \xf0\x9f\x98\x80",
    "__not_the_placeholder", "</xml>",
};

static const char *const fmt_numerics[] = {
    "0", "1", "-1", "12.34", "-12.34", "0.01", "-0.01", "99999999.99", "-99999999.99",
    "12.3", "7", "170141183460469231731687303715884105727",
    "-170141183460469231731687303715884105727",
    "123456789012345678901234567890123456789012345.5", "-0.000000000000000000000000000000000000001",
    "1e3", "NaN", "Infinity", "-Infinity", "0.0000", "-3.14159265358979",
};

/* Parses a numeric literal into d; the text is copied into the batch. */
static inline void fmt_numeric(tm_batch_t *b, tm_datum_t *d, const char *s)
{
    memset(d, 0, sizeof(*d));
    tm_numeric_parse(b, d, s, strlen(s));
}

/*
 * A random value of column c that the mode can carry exactly: ms precision
 * where the wire is ms, floats that are floats, numerics that fit the
 * column's scale and, in double mode, 15 significant digits.
 */
static inline void fmt_gen_value(fmt_gen_t *g, tm_batch_t *b, const tm_column_t *c,
                                 const tm_dbz_opts_t *o, tm_datum_t *d)
{
    char buf[256];
    memset(d, 0, sizeof(*d));
    switch (c->type) {
    case TM_T_BOOL:
        d->u.b = fmt_chance(g, 50);
        break;
    case TM_T_INT16:
        d->u.i64 = fmt_range(g, INT16_MIN, INT16_MAX);
        break;
    case TM_T_INT32:
        d->u.i64 = fmt_range(g, INT32_MIN, INT32_MAX);
        break;
    case TM_T_INT64:
        d->u.i64 = fmt_chance(g, 10) ? (fmt_chance(g, 50) ? INT64_MIN : INT64_MAX)
                                     : (int64_t)fmt_next(g);
        break;
    case TM_T_FLOAT32:
    case TM_T_FLOAT64: {
        int k = (int)fmt_range(g, 0, 9);
        double v;
        if (k == 0)
            v = NAN;
        else if (k == 1)
            v = fmt_chance(g, 50) ? INFINITY : -INFINITY;
        else if (k == 2)
            v = fmt_chance(g, 50) ? 0.0 : -0.0;
        else if (k <= 5)
            v = (double)fmt_range(g, -1000000, 1000000) / 100.0;
        else {
            uint64_t bits = fmt_next(g);
            memcpy(&v, &bits, sizeof(v));
            if (!isfinite(v))
                v = 1.5e300;
        }
        d->u.f64 = c->type == TM_T_FLOAT32 ? (double)(float)v : v;
        break;
    }
    case TM_T_NUMERIC: {
        bool dbl = o->decimal_mode == TM_DECIMAL_DOUBLE;
        int k = (int)fmt_range(g, 0, 3);
        if (k == 0) {
            size_t nlit = sizeof(fmt_numerics) / sizeof(*fmt_numerics);
            const char *s = fmt_numerics[fmt_next(g) % nlit];
            /* Keep to what the column holds: its scale, and doubles' 15 digits. */
            bool special = s[0] == 'N' || s[0] == 'I' || s[1] == 'I';
            bool wide = strlen(s) > 20 && !special;
            bool fits_scale = c->scale == TM_SCALE_VARIABLE || strchr(s, '.') == NULL ||
                              (int)strlen(strchr(s, '.') + 1) <= c->scale;
            if ((dbl && wide) || !fits_scale || (wide && c->precision > 0 && c->precision < 60))
                s = "42";
            fmt_numeric(b, d, s);
        } else if (k == 1 && !dbl && c->precision != 12) {
            /* A wide value: 45 digits. */
            int n = 0;
            if (fmt_chance(g, 50))
                buf[n++] = '-';
            buf[n++] = (char)('1' + fmt_next(g) % 9);
            for (int i = 0; i < 44; i++)
                buf[n++] = (char)('0' + fmt_next(g) % 10);
            int sc = c->scale == TM_SCALE_VARIABLE ? (int)fmt_range(g, 0, 20) : c->scale;
            if (sc > 0) {
                memmove(buf + n - sc + 1, buf + n - sc, (size_t)sc);
                buf[n - sc] = '.';
                n++;
            }
            buf[n] = '\0';
            fmt_numeric(b, d, buf);
        } else {
            int sc = c->scale == TM_SCALE_VARIABLE ? (int)fmt_range(g, 0, 6) : c->scale;
            int64_t lim = dbl ? 99999999999LL : 999999999999999999LL;
            if (c->precision == 12)
                lim = 9999999999LL;
            snprintf(buf, sizeof(buf), "%lld", (long long)fmt_range(g, -lim, lim));
            fmt_numeric(b, d, buf);
            d->scale = (int16_t)sc;
        }
        break;
    }
    case TM_T_TEXT:
    case TM_T_OTHER: {
        const char *s = fmt_texts[fmt_next(g) % (sizeof(fmt_texts) / sizeof(*fmt_texts))];
        tm_batch_set_var(b, d, s, strlen(s));
        break;
    }
    case TM_T_ENUM: {
        static const char *const labels[] = {"small", "medium", "large"};
        const char *s = labels[fmt_next(g) % 3];
        tm_batch_set_var(b, d, s, strlen(s));
        break;
    }
    case TM_T_BYTES: {
        size_t n = (size_t)fmt_range(g, 0, 40);
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)fmt_next(g);
        tm_batch_set_var(b, d, buf, n);
        break;
    }
    case TM_T_JSON: {
        static const char *const js[] = {"{}", "{\"k\": [1, 2.5, \"x\"]}", "[true,null]", "3",
                                         "\"str\""};
        const char *s = js[fmt_next(g) % 5];
        tm_batch_set_var(b, d, s, strlen(s));
        break;
    }
    case TM_T_UUID:
        snprintf(buf, sizeof(buf), "%08x-%04x-4%03x-8%03x-%012llx", (unsigned)fmt_next(g),
                 (unsigned)(fmt_next(g) & 0xffff), (unsigned)(fmt_next(g) & 0xfff),
                 (unsigned)(fmt_next(g) & 0xfff),
                 (unsigned long long)(fmt_next(g) & 0xffffffffffffULL));
        tm_batch_set_var(b, d, buf, strlen(buf));
        break;
    case TM_T_DATE:
        d->u.i64 = fmt_range(g, -1000000, 3000000);
        break;
    case TM_T_TIME:
        d->u.i64 = fmt_range(g, 0, INT64_C(86399999999));
        if (fmt_time_ms(c, o))
            d->u.i64 -= d->u.i64 % 1000;
        break;
    case TM_T_TIMETZ:
        d->u.i64 = fmt_range(g, 0, INT64_C(86399999999));
        if (fmt_chance(g, 30))
            d->u.i64 -= d->u.i64 % 1000000;
        break;
    case TM_T_TIMESTAMP:
    case TM_T_TIMESTAMPTZ:
        /* From about 4700 BC to year 11000, around the epoch more often. */
        d->u.i64 = fmt_chance(g, 50) ? fmt_range(g, INT64_C(-210000000000000000),
                                                  INT64_C(285000000000000000))
                                     : fmt_range(g, INT64_C(-2000000000000000),
                                                 INT64_C(2000000000000000));
        if (c->type == TM_T_TIMESTAMP && fmt_time_ms(c, o))
            d->u.i64 -= d->u.i64 % 1000;
        if (fmt_chance(g, 20))
            d->u.i64 -= d->u.i64 % 1000000;
        break;
    case TM_T_INTERVAL:
        d->u.i64 = fmt_range(g, INT64_C(-1000000000000000), INT64_C(1000000000000000));
        break;
    case TM_T_ARRAY: {
        const char *s;
        if (c->elem_type == TM_T_INT32)
            s = fmt_chance(g, 50) ? "[1,-2,null,2147483647]" : "[]";
        else if (c->elem_type == TM_T_TEXT)
            s = fmt_chance(g, 50) ? "[\"a\",\"b \\\"q\\\"\",null]" : "[\"x\"]";
        else
            s = fmt_chance(g, 50) ? "[1.5,-2.25,1e+20]" : "[0.1]";
        tm_batch_set_var(b, d, s, strlen(s));
        break;
    }
    default:
        break;
    }
}

/* Types whose unchanged-TOAST placeholder survives every mode. */
static inline bool fmt_unavailable_ok(const tm_column_t *c)
{
    switch (c->type) {
    case TM_T_TEXT:
    case TM_T_OTHER:
    case TM_T_BYTES:
    case TM_T_JSON:
    case TM_T_UUID:
    case TM_T_ENUM:
    case TM_T_ARRAY:
    case TM_T_TIMETZ:
    case TM_T_TIMESTAMPTZ:
        return true;
    default:
        return false;
    }
}

/* Fills a row: nulls, placeholders and values in the proportions given. */
static inline tm_row_t *fmt_gen_row(fmt_gen_t *g, tm_batch_t *b, const tm_schema_t *s,
                                    const tm_dbz_opts_t *o, int null_pct, int unavail_pct)
{
    tm_row_t *row = tm_batch_new_row(b, s);
    for (int i = 0; i < s->ncols; i++) {
        const tm_column_t *c = &s->cols[i];
        if (c->nullable && fmt_chance(g, null_pct))
            continue;
        tm_row_set_null(row, i, false);
        if (fmt_unavailable_ok(c) && fmt_chance(g, unavail_pct)) {
            memset(&row->vals[i], 0, sizeof(row->vals[i]));
            row->vals[i].flags = TM_DATUM_UNAVAILABLE;
            continue;
        }
        fmt_gen_value(g, b, c, o, &row->vals[i]);
    }
    return row;
}

/* A numeric as canonical text: no trailing fractional zeros, no "-0". */
static inline void fmt_numeric_canon(const tm_datum_t *d, char *out, size_t cap)
{
    tm_buf_t t;
    tm_buf_init(&t);
    tm__dbz_numeric_text(d, TM_SCALE_VARIABLE, &t);
    tm_buf_putc(&t, '\0');
    snprintf(out, cap, "%s", t.data ? t.data : "");
    tm_buf_release(&t);
    if (d->flags & TM_DATUM_NAN)
        return;
    char *dot = strchr(out, '.');
    if (dot != NULL) {
        char *e = out + strlen(out);
        while (e > dot + 1 && e[-1] == '0')
            *--e = '\0';
        if (e == dot + 1)
            *dot = '\0';
    }
    if (strcmp(out, "-0") == 0)
        strcpy(out, "0");
}

static inline bool fmt_var_eq(const tm_datum_t *a, const tm_datum_t *b)
{
    return a->u.var.len == b->u.var.len &&
           (a->u.var.len == 0 || memcmp(a->u.var.ptr, b->u.var.ptr, a->u.var.len) == 0);
}

/*
 * Compares the original datum of column i with the decoded one.  Writes a
 * description of the difference into `why` and returns false on mismatch.
 */
static inline bool fmt_datum_eq(const tm_column_t *c, const tm_dbz_opts_t *o,
                                const tm_row_t *ra, const tm_row_t *rb, int i, char *why,
                                size_t whylen)
{
    bool na = tm_row_is_null(ra, i), nb = tm_row_is_null(rb, i);
    const tm_datum_t *a = &ra->vals[i], *b = &rb->vals[i];
    /* Precise mode has no NaN: Debezium writes null. */
    if (!na && c->type == TM_T_NUMERIC && (a->flags & TM_DATUM_NAN) &&
        o->decimal_mode == TM_DECIMAL_PRECISE)
        na = true;
    if (na || nb) {
        snprintf(why, whylen, "null %d vs %d", na, nb);
        return na == nb;
    }
    if ((a->flags & TM_DATUM_UNAVAILABLE) || (b->flags & TM_DATUM_UNAVAILABLE)) {
        snprintf(why, whylen, "unavailable %d vs %d", a->flags & TM_DATUM_UNAVAILABLE,
                 b->flags & TM_DATUM_UNAVAILABLE);
        return (a->flags & TM_DATUM_UNAVAILABLE) && (b->flags & TM_DATUM_UNAVAILABLE);
    }
    switch (c->type) {
    case TM_T_BOOL:
        snprintf(why, whylen, "%d vs %d", a->u.b, b->u.b);
        return a->u.b == b->u.b;
    case TM_T_FLOAT32:
    case TM_T_FLOAT64:
        snprintf(why, whylen, "%.17g vs %.17g", a->u.f64, b->u.f64);
        if (isnan(a->u.f64))
            return isnan(b->u.f64);
        return a->u.f64 == b->u.f64 && signbit(a->u.f64) == signbit(b->u.f64);
    case TM_T_NUMERIC: {
        char x[256], y[256];
        fmt_numeric_canon(a, x, sizeof(x));
        fmt_numeric_canon(b, y, sizeof(y));
        /* A fixed-scale column rounds to its scale on the way out. */
        snprintf(why, whylen, "%s vs %s", x, y);
        return strcmp(x, y) == 0;
    }
    case TM_T_TEXT:
    case TM_T_OTHER:
    case TM_T_BYTES:
    case TM_T_JSON:
    case TM_T_UUID:
    case TM_T_ENUM:
    case TM_T_ARRAY:
        snprintf(why, whylen, "'%.*s' vs '%.*s'", (int)a->u.var.len, a->u.var.ptr,
                 (int)b->u.var.len, b->u.var.ptr);
        return fmt_var_eq(a, b);
    default:
        snprintf(why, whylen, "%lld vs %lld", (long long)a->u.i64, (long long)b->u.i64);
        return a->u.i64 == b->u.i64;
    }
}

/* Reads a whole file into a NUL-terminated malloc'ed buffer (tm_test.h). */
static inline char *fmt_read_file(const char *path, size_t *len)
{
    return tm_test_read_file(path, len);
}

#endif
