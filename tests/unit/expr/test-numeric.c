/*
 * Unit tests: exact NUMERIC arithmetic (core/numeric.h).  Every expected
 * value was produced by PostgreSQL 15 running the same expression.
 */
#include "core/error.h"
#include "core/numeric.h"
#include "tm_test.h"

static tm_arena_t arena;

static tm_datum_t num(const char *s)
{
    tm_datum_t d;
    char err[128];
    memset(&d, 0, sizeof(d));
    if (tm_num_parse(s, strlen(s), &arena, &d, err, sizeof(err)) != 0) {
        fprintf(stderr, "parse %s: %s\n", s, err);
        TM_CHECK(0);
    }
    return d;
}

static const char *fmt(const tm_datum_t *d)
{
    static char buf[8][256];
    static int k;
    k = (k + 1) % 8;
    tm_num_format(d, buf[k], sizeof(buf[k]));
    return buf[k];
}

typedef int (*binop_fn)(const tm_datum_t *, const tm_datum_t *, tm_arena_t *, tm_datum_t *,
                        char *, size_t);

static void check_bin(binop_fn fn, const char *a, const char *b, const char *want)
{
    tm_datum_t x = num(a), y = num(b), r;
    char err[128] = "";
    int rc = fn(&x, &y, &arena, &r, err, sizeof(err));
    if (want[0] == '!') {
        TM_CHECK_INT(rc, TM_EINVAL);
        TM_CHECK_STR(err, want + 1);
        return;
    }
    TM_CHECK_INT(rc, 0);
    if (rc == 0)
        TM_CHECK_STR(fmt(&r), want);
}

static void test_add_sub_mul(void)
{
    check_bin(tm_num_add, "99999999999999999999999999999999999999", "1",
              "100000000000000000000000000000000000000");
    check_bin(tm_num_add, "0.1", "0.2", "0.3");
    check_bin(tm_num_sub, "1.50", "1.5", "0.00");
    check_bin(tm_num_mul, "-1.25", "4.1", "-5.125");
    check_bin(tm_num_mul, "1e30", "1e20", "100000000000000000000000000000000000000000000000000");
    check_bin(tm_num_sub, "Infinity", "Infinity", "NaN");
    check_bin(tm_num_add, "NaN", "1", "NaN");
    /* Wide inputs and outputs round-trip through the slow path. */
    check_bin(tm_num_sub, "100000000000000000000000000000000000000000000000000.5",
              "100000000000000000000000000000000000000000000000000", "0.5");
    check_bin(tm_num_mul, "12345678901234567890.123", "-98765432109876543210.5",
              "-1219326311370217952255784788711395625659.8915");
}

static void test_div_mod(void)
{
    check_bin(tm_num_div, "1", "3", "0.33333333333333333333");
    check_bin(tm_num_div, "10", "4", "2.5000000000000000");
    check_bin(tm_num_div, "2", "3", "0.66666666666666666667");
    check_bin(tm_num_div, "1", "1e20", "0.0000000000000000000100000000000000000000");
    check_bin(tm_num_div, "1e20", "3", "33333333333333333333");
    check_bin(tm_num_div, "12345.678", "0.001", "12345678.000000000000");
    check_bin(tm_num_div, "123456789012345678901.5", "7", "17636684144620811271.6");
    check_bin(tm_num_div, "1.0", "3.00000", "0.33333333333333333333");
    check_bin(tm_num_div, "1e-10", "3", "0.0000000000333333333333333333");
    check_bin(tm_num_div, "1e50", "7", "14285714285714285714285714285714285714285714285714");
    check_bin(tm_num_div, "1", "Infinity", "0");
    check_bin(tm_num_div, "1", "0", "!division by zero");
    check_bin(tm_num_div, "1", "0.000", "!division by zero");
    check_bin(tm_num_mod, "7.5", "2", "1.5");
    check_bin(tm_num_mod, "-5.5", "3", "-2.5");
    check_bin(tm_num_mod, "5", "0", "!division by zero");
    TM_CHECK_INT(tm_num_select_div_scale(&(tm_datum_t){.u.dec = 1}, &(tm_datum_t){.u.dec = 3}), 20);
}

/*
 * The 128-bit division (div_fast) against the exact slow path: a / b equals
 * (a * 10^40) / (b * 10^40), whose wide operands always take the slow path,
 * and both select the same scale (the weights shift by ten groups alike).
 * Random operands, and rounding ties at fixed scales.
 */
static void test_div_fast_matches_slow(void)
{
    char err[128];
    tm_datum_t big = num("1e40");
    uint64_t rng = 88172645463325252u;
    int mismatches = 0;
    for (int i = 0; i < 20000; i++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int64_t x = (int64_t)(rng >> (rng % 50));
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int64_t y = (int64_t)(rng >> (rng % 60)) - (int64_t)(rng & 1 ? 0 : 1000);
        if (y == 0)
            continue;
        tm_datum_t a, b, wa, wb, q, wq;
        tm_num_from_dec(i % 3 ? x : -x, (int)(rng % 9), &a);
        tm_num_from_dec(y, (int)((rng >> 8) % 7), &b);
        TM_REQUIRE(tm_num_mul(&a, &big, &arena, &wa, err, sizeof(err)) == 0);
        TM_REQUIRE(tm_num_mul(&b, &big, &arena, &wb, err, sizeof(err)) == 0);
        int fixed = i % 4 == 0 ? (int)(rng % 4) : -1;
        int rc = fixed < 0 ? tm_num_div(&a, &b, &arena, &q, err, sizeof(err))
                           : tm_num_div_scale(&a, &b, fixed, &arena, &q, err, sizeof(err));
        int wrc = fixed < 0 ? tm_num_div(&wa, &wb, &arena, &wq, err, sizeof(err))
                            : tm_num_div_scale(&wa, &wb, fixed, &arena, &wq, err, sizeof(err));
        TM_REQUIRE(rc == 0 && wrc == 0);
        if (strcmp(fmt(&q), fmt(&wq)) != 0 && mismatches++ < 5)
            fprintf(stderr, "%s / %s: %s, slow path %s\n", fmt(&a), fmt(&b), fmt(&q), fmt(&wq));
    }
    TM_CHECK_INT(mismatches, 0);
    static const char *ties[][4] = {
        {"1", "8", "2", "0.13"},     {"-1", "8", "2", "-0.13"},  {"5", "2", "0", "3"},
        {"-5", "2", "0", "-3"},      {"1", "-8", "2", "-0.13"},  {"0.125", "1", "2", "0.13"},
        {"7", "2", "0", "4"},        {"3", "8", "2", "0.38"},
    };
    for (size_t i = 0; i < sizeof(ties) / sizeof(ties[0]); i++) {
        tm_datum_t a = num(ties[i][0]), b = num(ties[i][1]), q;
        TM_REQUIRE(tm_num_div_scale(&a, &b, atoi(ties[i][2]), &arena, &q, err, sizeof(err)) == 0);
        TM_CHECK_STR(fmt(&q), ties[i][3]);
    }
}

static void check_round(const char *a, int n, const char *want)
{
    tm_datum_t x = num(a), r;
    char err[64];
    TM_REQUIRE(tm_num_round(&x, n, &arena, &r, err, sizeof(err)) == 0);
    TM_CHECK_STR(fmt(&r), want);
}

static void test_round_typmod(void)
{
    check_round("2.5", 0, "3");
    check_round("-2.5", 0, "-3");
    check_round("-0.5", 0, "-1");
    check_round("1234.5678", 2, "1234.57");
    check_round("1234.5678", -2, "1200");
    check_round("9.995", 2, "10.00");
    check_round("1.5", 3, "1.500");
    tm_datum_t x = num("1.99"), r;
    char err[128];
    TM_REQUIRE(tm_num_trunc(&x, 1, &arena, &r, err, sizeof(err)) == 0);
    TM_CHECK_STR(fmt(&r), "1.9");
    x = num("-0.5");
    TM_REQUIRE(tm_num_floor(&x, &arena, &r, err, sizeof(err)) == 0);
    TM_CHECK_STR(fmt(&r), "-1");
    TM_REQUIRE(tm_num_ceil(&x, &arena, &r, err, sizeof(err)) == 0);
    TM_CHECK_STR(fmt(&r), "0");
    x = num("0.2");
    TM_REQUIRE(tm_num_ceil(&x, &arena, &r, err, sizeof(err)) == 0);
    TM_CHECK_STR(fmt(&r), "1");
    x = num("10.5");
    TM_REQUIRE(tm_num_apply_typmod(&x, 5, 0, &arena, &r, err, sizeof(err)) == 0);
    TM_CHECK_STR(fmt(&r), "11");
    x = num("99.994");
    TM_REQUIRE(tm_num_apply_typmod(&x, 4, 2, &arena, &r, err, sizeof(err)) == 0);
    TM_CHECK_STR(fmt(&r), "99.99");
    x = num("99.995");
    TM_CHECK_INT(tm_num_apply_typmod(&x, 4, 2, &arena, &r, err, sizeof(err)), TM_EINVAL);
    TM_CHECK_STR(err, "numeric field overflow");
}

static void test_convert_compare_hash(void)
{
    tm_datum_t r, a, b;
    char err[128];
    TM_REQUIRE(tm_num_from_double(123.456, 15, &arena, &r, err, sizeof(err)) == 0);
    TM_CHECK_STR(fmt(&r), "123.456");
    TM_REQUIRE(tm_num_from_double(0.1, 15, &arena, &r, err, sizeof(err)) == 0);
    TM_CHECK_STR(fmt(&r), "0.1");
    TM_CHECK(tm_num_to_double(&r) == 0.1);
    int64_t v;
    a = num("2.5");
    TM_REQUIRE(tm_num_to_int(&a, INT32_MIN, INT32_MAX, "integer", &v, err, sizeof(err)) == 0);
    TM_CHECK_INT(v, 3);
    a = num("3000000000");
    TM_CHECK_INT(tm_num_to_int(&a, INT32_MIN, INT32_MAX, "integer", &v, err, sizeof(err)),
                 TM_EINVAL);
    TM_CHECK_STR(err, "integer out of range");
    a = num("NaN");
    TM_CHECK_INT(tm_num_to_int(&a, INT32_MIN, INT32_MAX, "integer", &v, err, sizeof(err)),
                 TM_EINVAL);
    TM_CHECK_STR(err, "cannot convert NaN to integer");
    TM_CHECK_INT(tm_num_parse("abc", 3, &arena, &a, err, sizeof(err)), TM_EINVAL);
    TM_CHECK_STR(err, "invalid input syntax for type numeric: \"abc\"");
    TM_CHECK_INT(tm_num_parse("-NaN", 4, &arena, &a, err, sizeof(err)), TM_EINVAL);

    a = num("1.50");
    b = num("1.5");
    TM_CHECK_INT(tm_num_cmp(&a, &b), 0);
    TM_CHECK(tm_num_hash(&a, 7) == tm_num_hash(&b, 7));
    /* A wide text that is a small value once its zero fraction goes. */
    const char *w = "1.0000000000000000000000000000000000000000000000";
    b.flags = TM_DATUM_WIDE;
    b.u.var.ptr = w;
    b.u.var.len = (uint32_t)strlen(w);
    a = num("1");
    TM_CHECK_INT(tm_num_cmp(&a, &b), 0);
    TM_CHECK(tm_num_hash(&a, 7) == tm_num_hash(&b, 7));
    a = num("NaN");
    b = num("Infinity");
    TM_CHECK(tm_num_cmp(&a, &b) > 0);
    b = num("-Infinity");
    a = num("-1e60");
    TM_CHECK(tm_num_cmp(&a, &b) > 0);
    b = num("-2e60");
    TM_CHECK(tm_num_cmp(&a, &b) > 0);
    TM_CHECK(tm_num_cmp(&b, &a) < 0);
    TM_CHECK_INT(tm_num_sign(&b), -1);
}

int main(void)
{
    tm_arena_init(&arena, 4096);
    TM_RUN(test_add_sub_mul);
    TM_RUN(test_div_mod);
    TM_RUN(test_div_fast_matches_slow);
    TM_RUN(test_round_typmod);
    TM_RUN(test_convert_compare_hash);
    tm_arena_release(&arena);
    return tm_test_done();
}
