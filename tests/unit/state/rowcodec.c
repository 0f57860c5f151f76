/* Unit tests: the row encoding of operator state (state/rowcodec.h). */
#include "core/error.h"
#include "state/rowcodec.h"
#include "state_test.h"

#include <math.h>

/* One column of every type, plus an extra NUMERIC for each numeric form. */
static tm_schema_t *all_types_schema(void)
{
    static const tm_type_t types[] = {
        TM_T_BOOL,  TM_T_INT16,    TM_T_INT32,   TM_T_INT64,    TM_T_FLOAT32,
        TM_T_FLOAT64, TM_T_NUMERIC, TM_T_TEXT,   TM_T_BYTES,    TM_T_JSON,
        TM_T_UUID,  TM_T_DATE,     TM_T_TIME,    TM_T_TIMETZ,   TM_T_TIMESTAMP,
        TM_T_TIMESTAMPTZ, TM_T_INTERVAL, TM_T_ARRAY, TM_T_ENUM, TM_T_OTHER,
        TM_T_NUMERIC, TM_T_NUMERIC, TM_T_NUMERIC, TM_T_TEXT, TM_T_INT64,
    };
    int n = (int)(sizeof(types) / sizeof(types[0]));
    tm_schema_t *s = tm_schema_new(n);
    for (int i = 0; i < n; i++) {
        char name[16];
        snprintf(name, sizeof(name), "c%d", i);
        tst_col(s, i, name, types[i], i == 3 ? 0 : -1);
    }
    s->cols[17].elem_type = TM_T_INT32;
    tm_schema_finish(s);
    return s;
}

static void set_text(tm_batch_t *b, tm_row_t *r, int i, const char *v, size_t len)
{
    tm_row_set_null(r, i, false);
    tm_batch_set_var(b, &r->vals[i], v, len);
}

static tm_row_t *all_types_row(tm_batch_t *b, const tm_schema_t *s)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    for (int i = 0; i < s->ncols; i++)
        tm_row_set_null(r, i, false);
    r->vals[0].u.b = true;
    r->vals[1].u.i64 = -32768;
    r->vals[2].u.i64 = 2147483647;
    r->vals[3].u.i64 = INT64_MIN;
    r->vals[4].u.f64 = 1.5f;
    r->vals[5].u.f64 = -0.0;
    r->vals[6].u.dec = -((__int128)1 << 100) - 12345;
    r->vals[6].scale = 7;
    set_text(b, r, 7, "héllo, wörld", strlen("héllo, wörld"));
    set_text(b, r, 8, "\0\1\2\377", 4);
    set_text(b, r, 9, "{\"a\":[1,2]}", 11);
    set_text(b, r, 10, "123e4567-e89b-12d3-a456-426614174000", 36);
    r->vals[11].u.i64 = -719528;
    r->vals[12].u.i64 = 86399999999LL;
    r->vals[13].u.i64 = 3600000000LL;
    r->vals[14].u.i64 = 1700000000123456LL;
    r->vals[15].u.i64 = -1;
    r->vals[16].u.i64 = INT64_MAX;
    set_text(b, r, 17, "[1,2,3]", 7);
    set_text(b, r, 18, "happy", 5);
    set_text(b, r, 19, "(1,2)", 5);
    /* Wide numeric, NaN numeric, unchanged TOAST, empty text, NULL. */
    r->vals[20].flags = TM_DATUM_WIDE;
    set_text(b, r, 20, "123456789012345678901234567890123456789012345.5", 47);
    r->vals[21].flags = TM_DATUM_NAN;
    set_text(b, r, 21, "NaN", 3);
    r->vals[22].flags = TM_DATUM_UNAVAILABLE;
    set_text(b, r, 23, "", 0);
    tm_row_set_null(r, 24, true);
    return r;
}

static bool datum_equal(const tm_column_t *c, const tm_datum_t *a, const tm_datum_t *b)
{
    if (a->flags != b->flags)
        return false;
    if (a->flags & TM_DATUM_UNAVAILABLE)
        return true;
    switch (c->type) {
    case TM_T_BOOL:
        return a->u.b == b->u.b;
    case TM_T_FLOAT32:
    case TM_T_FLOAT64:
        return memcmp(&a->u.f64, &b->u.f64, sizeof(double)) == 0;
    case TM_T_NUMERIC:
        if (!(a->flags & (TM_DATUM_WIDE | TM_DATUM_NAN)))
            return a->u.dec == b->u.dec && a->scale == b->scale;
        break;
    case TM_T_TEXT:
    case TM_T_BYTES:
    case TM_T_JSON:
    case TM_T_UUID:
    case TM_T_ARRAY:
    case TM_T_ENUM:
    case TM_T_OTHER:
        break;
    default:
        return a->u.i64 == b->u.i64;
    }
    return a->u.var.len == b->u.var.len && memcmp(a->u.var.ptr, b->u.var.ptr, a->u.var.len) == 0 &&
           b->u.var.ptr[b->u.var.len] == '\0';
}

static bool rows_equal(const tm_schema_t *s, const tm_row_t *a, const tm_row_t *b)
{
    for (int i = 0; i < s->ncols; i++) {
        if (tm_row_is_null(a, i) != tm_row_is_null(b, i))
            return false;
        if (!tm_row_is_null(a, i) && !datum_equal(&s->cols[i], &a->vals[i], &b->vals[i]))
            return false;
    }
    return true;
}

static void test_roundtrip_every_type(void)
{
    tm_schema_t *s = all_types_schema();
    tm_batch_t *b = tm_batch_new();
    tm_row_t *r = all_types_row(b, s);
    tm_buf_t buf;
    tm_buf_init(&buf);
    TM_REQUIRE(tm_row_serialize(s, r, &buf) == 0);
    tm_batch_t *b2 = tm_batch_new();
    tm_row_t *back = NULL;
    TM_REQUIRE(tm_row_deserialize(s, buf.data, buf.len, b2, &back) == 0);
    TM_CHECK(rows_equal(s, r, back));
    /* Re-encoding gives the same bytes: equality of rows is equality of bytes. */
    tm_buf_t again;
    tm_buf_init(&again);
    TM_REQUIRE(tm_row_serialize(s, back, &again) == 0);
    TM_CHECK(again.len == buf.len && memcmp(again.data, buf.data, buf.len) == 0);
    /* The copy survives the source batch. */
    tm_row_t *copy = tm_row_copy(b2, s, r);
    TM_REQUIRE(copy != NULL);
    tm_batch_unref(b);
    TM_CHECK(rows_equal(s, copy, back));
    uint32_t shape;
    TM_CHECK(tm_row_serialized_shape(buf.data, buf.len, &shape) == 0 &&
             shape == tm_row_shape_id(s));
    tm_buf_release(&again);
    tm_buf_release(&buf);
    tm_batch_unref(b2);
    tm_schema_unref(s);
}

static void test_numeric_edges(void)
{
    tm_schema_t *s = tm_schema_new(1);
    tst_col(s, 0, "n", TM_T_NUMERIC, -1);
    tm_batch_t *b = tm_batch_new();
    const __int128 max = (__int128)(((unsigned __int128)1 << 127) - 1);
    const __int128 vals[] = {0, 1, -1, 127, 128, -128, -129, 255, 256, max, -max - 1,
                             (__int128)1 << 64, -((__int128)1 << 64)};
    for (size_t i = 0; i < sizeof(vals) / sizeof(vals[0]); i++) {
        tm_row_t *r = tm_batch_new_row(b, s);
        tm_row_set_null(r, 0, false);
        r->vals[0].u.dec = vals[i];
        r->vals[0].scale = (int16_t)(i % 3);
        tm_buf_t buf;
        tm_buf_init(&buf);
        tm_row_t *back;
        TM_REQUIRE(tm_row_serialize(s, r, &buf) == 0);
        TM_REQUIRE(tm_row_deserialize(s, buf.data, buf.len, b, &back) == 0);
        TM_CHECK(back->vals[0].u.dec == vals[i]);
        TM_CHECK_INT(back->vals[0].scale, (int)(i % 3));
        tm_buf_release(&buf);
    }
    tm_batch_unref(b);
    tm_schema_unref(s);
}

/* An interval keeps its calendar months (row.h u.iv) through state; none costs no bytes. */
static void test_interval_months(void)
{
    tm_schema_t *s = tm_schema_new(1);
    tst_col(s, 0, "iv", TM_T_INTERVAL, -1);
    tm_batch_t *b = tm_batch_new();
    const int32_t months[] = {0, 1, -14, INT32_MAX, INT32_MIN};
    size_t plain_len = 0;
    for (size_t i = 0; i < sizeof(months) / sizeof(months[0]); i++) {
        tm_row_t *r = tm_batch_new_row(b, s);
        tm_row_set_null(r, 0, false);
        /* The months are also counted in us, saturated as the PostgreSQL source does. */
        __int128 us = (__int128)INT64_C(2629800000000) * months[i] + 7;
        r->vals[0].u.iv.us = us > INT64_MAX ? INT64_MAX : us < INT64_MIN ? INT64_MIN : (int64_t)us;
        r->vals[0].u.iv.months = months[i];
        tm_buf_t buf;
        tm_buf_init(&buf);
        tm_row_t *back;
        TM_REQUIRE(tm_row_serialize(s, r, &buf) == 0);
        if (months[i] == 0)
            plain_len = buf.len;
        else
            TM_CHECK(buf.len > plain_len);
        TM_REQUIRE(tm_row_deserialize(s, buf.data, buf.len, b, &back) == 0);
        TM_CHECK(back->vals[0].u.iv.us == r->vals[0].u.iv.us);
        TM_CHECK_INT(back->vals[0].u.iv.months, months[i]);
        TM_CHECK_INT(back->vals[0].flags, 0);
        tm_buf_release(&buf);
    }
    tm_batch_unref(b);
    tm_schema_unref(s);
}

static void test_many_columns_nulls(void)
{
    /* 130 columns: the null bitmap spans three words in memory, 17 bytes encoded. */
    tm_schema_t *s = tm_schema_new(130);
    for (int i = 0; i < 130; i++) {
        char name[16];
        snprintf(name, sizeof(name), "c%d", i);
        tst_col(s, i, name, TM_T_INT32, -1);
    }
    tm_batch_t *b = tm_batch_new();
    tm_row_t *r = tm_batch_new_row(b, s);
    for (int i = 0; i < 130; i++) {
        if (i % 3 == 0 || i == 129) {
            tm_row_set_null(r, i, false);
            r->vals[i].u.i64 = i * 1000 - 7;
        }
    }
    tm_buf_t buf;
    tm_buf_init(&buf);
    tm_row_t *back;
    TM_REQUIRE(tm_row_serialize(s, r, &buf) == 0);
    TM_REQUIRE(tm_row_deserialize(s, buf.data, buf.len, b, &back) == 0);
    TM_CHECK(rows_equal(s, r, back));
    tm_buf_release(&buf);
    tm_batch_unref(b);
    tm_schema_unref(s);
}

static void test_malformed_and_shape(void)
{
    tm_schema_t *s = all_types_schema();
    tm_batch_t *b = tm_batch_new();
    tm_row_t *r = all_types_row(b, s);
    tm_buf_t buf;
    tm_buf_init(&buf);
    TM_REQUIRE(tm_row_serialize(s, r, &buf) == 0);
    tm_row_t *back;
    /* Every truncation is rejected, never read past. */
    for (size_t n = 0; n < buf.len; n++) {
        int rc = tm_row_deserialize(s, buf.data, n, b, &back);
        TM_CHECK(rc == TM_ECORRUPT || rc == TM_EINVAL);
    }
    /* A trailing byte is rejected too. */
    tm_buf_putc(&buf, 0);
    TM_CHECK(tm_row_deserialize(s, buf.data, buf.len, b, &back) == TM_ECORRUPT);
    buf.len--;
    /* Flipping bytes never crashes (and mostly fails). */
    for (size_t i = 0; i < buf.len; i++) {
        buf.data[i] ^= 0x5a;
        (void)tm_row_deserialize(s, buf.data, buf.len, b, &back);
        buf.data[i] ^= 0x5a;
    }
    /* The same bytes under a schema with a renamed column: a shape change. */
    tm_schema_t *s2 = tm_schema_clone(s);
    tm_schema_set_str(&s2->cols[1].name, "renamed");
    TM_CHECK(tm_row_shape_id(s2) != tm_row_shape_id(s));
    TM_CHECK(tm_row_deserialize(s2, buf.data, buf.len, b, &back) == TM_EINVAL);
    tm_buf_release(&buf);
    tm_batch_unref(b);
    tm_schema_unref(s2);
    tm_schema_unref(s);
}

static void test_key_encoding(void)
{
    tm_schema_t *s = tm_schema_new(3);
    tst_col(s, 0, "a", TM_T_NUMERIC, 1);
    tst_col(s, 1, "b", TM_T_FLOAT64, 0);
    tst_col(s, 2, "c", TM_T_TEXT, -1);
    tm_schema_finish(s);
    tm_batch_t *b = tm_batch_new();
    tm_row_t *x = tm_batch_new_row(b, s), *y = tm_batch_new_row(b, s);
    tm_row_set_null(x, 0, false);
    tm_row_set_null(x, 1, false);
    tm_row_set_null(y, 0, false);
    tm_row_set_null(y, 1, false);
    x->vals[0].u.dec = 150; /* 1.50 */
    x->vals[0].scale = 2;
    y->vals[0].u.dec = 15; /* 1.5 */
    y->vals[0].scale = 1;
    x->vals[1].u.f64 = 0.0;
    y->vals[1].u.f64 = -0.0;
    set_text(b, x, 2, "differs", 7); /* not a key column */
    tm_buf_t kx, ky;
    tm_buf_init(&kx);
    tm_buf_init(&ky);
    TM_REQUIRE(tm_row_key_encode(s, x, &kx) == 0);
    TM_REQUIRE(tm_row_key_encode(s, y, &ky) == 0);
    TM_CHECK(kx.len == ky.len && memcmp(kx.data, ky.data, kx.len) == 0);
    y->vals[0].u.dec = 16;
    tm_buf_clear(&ky);
    TM_REQUIRE(tm_row_key_encode(s, y, &ky) == 0);
    TM_CHECK(!(kx.len == ky.len && memcmp(kx.data, ky.data, kx.len) == 0));
    /* A NULL or unavailable key column, or no key at all, is not a key. */
    tm_row_set_null(y, 1, true);
    TM_CHECK(tm_row_key_encode(s, y, &ky) == TM_EINVAL);
    tm_row_set_null(y, 1, false);
    y->vals[1].flags = TM_DATUM_UNAVAILABLE;
    TM_CHECK(tm_row_key_encode(s, y, &ky) == TM_EINVAL);
    tm_schema_t *nokey = tm_schema_new(1);
    tst_col(nokey, 0, "a", TM_T_INT64, -1);
    tm_schema_finish(nokey);
    TM_CHECK(tm_row_key_encode(nokey, x, &ky) == TM_EINVAL);
    tm_buf_release(&kx);
    tm_buf_release(&ky);
    tm_batch_unref(b);
    tm_schema_unref(nokey);
    tm_schema_unref(s);
}

/* tm_row_cols_key_skip measures every column's key encoding exactly, and refuses a short key. */
static void test_cols_key_skip(void)
{
    tm_schema_t *s = all_types_schema();
    tm_batch_t *b = tm_batch_new();
    tm_row_t *r = all_types_row(b, s);
    /* Every column but the unavailable one (22), which has no key encoding; 24 is NULL. */
    int cols[32], n = 0;
    for (int i = 0; i < s->ncols; i++)
        if (i != 22)
            cols[n++] = i;
    tm_buf_t k;
    tm_buf_init(&k);
    TM_REQUIRE(tm_row_cols_key_encode(s, r, cols, n, &k) == 0);
    size_t keylen = k.len;
    TM_REQUIRE(tm_buf_append(&k, "\1tail", 5) == 0);
    size_t used = 0;
    TM_CHECK(tm_row_cols_key_skip(s, cols, n, k.data, k.len, &used) == 0);
    TM_CHECK_INT((int64_t)used, (int64_t)keylen);
    /* One column at a time, each followed by the next one's bytes. */
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        size_t one = 0;
        TM_CHECK(tm_row_cols_key_skip(s, &cols[i], 1, k.data + at, keylen - at, &one) == 0);
        at += one;
    }
    TM_CHECK_INT((int64_t)at, (int64_t)keylen);
    /* Every cut short of the whole key is refused. */
    for (size_t cut = 0; cut < keylen; cut++)
        TM_CHECK(tm_row_cols_key_skip(s, cols, n, k.data, cut, &used) == TM_ECORRUPT);
    tm_buf_release(&k);
    tm_batch_unref(b);
    tm_schema_unref(s);
}

int main(void)
{
    TM_RUN(test_roundtrip_every_type);
    TM_RUN(test_numeric_edges);
    TM_RUN(test_interval_months);
    TM_RUN(test_many_columns_nulls);
    TM_RUN(test_malformed_and_shape);
    TM_RUN(test_key_encoding);
    TM_RUN(test_cols_key_skip);
    return tm_test_done();
}
