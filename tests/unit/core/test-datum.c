/* Unit tests: datum equality, ordering and hashing (core/datum.h). */
#include "core/datum.h"
#include "tm_test.h"

#include <math.h>

static tm_datum_t dec(__int128 v, int scale)
{
    tm_datum_t d;
    memset(&d, 0, sizeof(d));
    d.u.dec = v;
    d.scale = (int16_t)scale;
    return d;
}

static tm_datum_t var(const char *s)
{
    tm_datum_t d;
    memset(&d, 0, sizeof(d));
    d.u.var.ptr = s;
    d.u.var.len = (uint32_t)strlen(s);
    return d;
}

static tm_datum_t f(double v)
{
    tm_datum_t d;
    memset(&d, 0, sizeof(d));
    d.u.f64 = v;
    return d;
}

static void test_numeric_and_float(void)
{
    tm_datum_t a = dec(150, 2), b = dec(15, 1), c = dec(151, 2);
    TM_CHECK(tm_datum_equal(TM_T_NUMERIC, &a, &b));
    TM_CHECK(tm_datum_hash(TM_T_NUMERIC, &a, 1) == tm_datum_hash(TM_T_NUMERIC, &b, 1));
    TM_CHECK(tm_datum_compare(TM_T_NUMERIC, &a, &c) < 0);
    tm_datum_t nan = var("NaN");
    nan.flags = TM_DATUM_NAN;
    TM_CHECK(tm_datum_compare(TM_T_NUMERIC, &nan, &c) > 0);

    tm_datum_t z = f(0.0), nz = f(-0.0), n1 = f(NAN), n2 = f(-NAN), one = f(1e308);
    TM_CHECK(tm_datum_equal(TM_T_FLOAT64, &z, &nz));
    TM_CHECK(tm_datum_hash(TM_T_FLOAT64, &z, 3) == tm_datum_hash(TM_T_FLOAT64, &nz, 3));
    TM_CHECK(tm_datum_equal(TM_T_FLOAT64, &n1, &n2));
    TM_CHECK(tm_datum_hash(TM_T_FLOAT64, &n1, 3) == tm_datum_hash(TM_T_FLOAT64, &n2, 3));
    TM_CHECK(tm_datum_compare(TM_T_FLOAT64, &n1, &one) > 0);
    TM_CHECK(tm_datum_compare(TM_T_FLOAT64, &one, &n1) < 0);
}

static void test_text_and_unavailable(void)
{
    tm_datum_t a = var("abc"), b = var("abd"), c = var("ab"), B = var("B");
    TM_CHECK(tm_datum_compare(TM_T_TEXT, &a, &b) < 0);
    TM_CHECK(tm_datum_compare(TM_T_TEXT, &c, &a) < 0);
    /* The C collation: uppercase sorts before lowercase. */
    TM_CHECK(tm_datum_compare(TM_T_TEXT, &B, &a) < 0);
    TM_CHECK(!tm_datum_equal(TM_T_TEXT, &a, &b));
    tm_datum_t u1 = var(""), u2 = var("");
    u1.flags = u2.flags = TM_DATUM_UNAVAILABLE;
    TM_CHECK(tm_datum_equal(TM_T_TEXT, &u1, &u2));
    TM_CHECK(!tm_datum_equal(TM_T_TEXT, &u1, &c));
    TM_CHECK(tm_datum_compare(TM_T_TEXT, &u1, &a) > 0);
}

static void test_rows(void)
{
    tm_schema_t *s = tm_schema_new(2);
    s->cols[0].type = TM_T_INT64;
    s->cols[1].type = TM_T_TEXT;
    uint64_t n1 = 0, n2 = 0;
    tm_datum_t v1[2], v2[2];
    memset(v1, 0, sizeof(v1));
    memset(v2, 0, sizeof(v2));
    v1[0].u.i64 = v2[0].u.i64 = 5;
    tm_row_t r1 = {&n1, v1}, r2 = {&n2, v2};
    tm_row_set_null(&r1, 1, true);
    TM_CHECK(!tm_row_equal(s, &r1, &r2));
    tm_row_set_null(&r2, 1, true);
    TM_CHECK(tm_row_equal(s, &r1, &r2));
    v2[0].u.i64 = 6;
    TM_CHECK(!tm_row_col_equal(s, &r1, &r2, 0));
    tm_schema_unref(s);
}

int main(void)
{
    TM_RUN(test_numeric_and_float);
    TM_RUN(test_text_and_unavailable);
    TM_RUN(test_rows);
    return tm_test_done();
}
