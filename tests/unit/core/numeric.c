/* Unit tests: the exact NUMERIC representation and the batch arena. */
#include "core/row.h"
#include "core/error.h"
#include "tm_test.h"

static void roundtrip(tm_batch_t *b, const char *in, const char *want, int scale)
{
    tm_datum_t d = {0};
    char out[256];
    TM_REQUIRE(tm_numeric_parse(b, &d, in, strlen(in)) == 0);
    tm_numeric_format(&d, out, sizeof(out));
    TM_CHECK_STR(out, want);
    if (scale >= 0)
        TM_CHECK_INT(d.scale, scale);
}

static void test_numeric_parse_format(void)
{
    tm_batch_t *b = tm_batch_new();
    roundtrip(b, "12.34", "12.34", 2);
    roundtrip(b, "-12.340", "-12.340", 3);
    roundtrip(b, "0", "0", 0);
    roundtrip(b, "-0.001", "-0.001", 3);
    roundtrip(b, ".5", "0.5", 1);
    roundtrip(b, "1e3", "1000", 0);
    roundtrip(b, "1.5E-3", "0.0015", 4);
    roundtrip(b, "170141183460469231731687303715884105727",
              "170141183460469231731687303715884105727", 0);
    /* PostgreSQL's limits: 131072 digits before the point, 16383 after (a fuzzer's input first). */
    tm_datum_t d;
    TM_CHECK_INT(tm_numeric_parse(b, &d, "4567452e189837", 14), TM_EINVAL);
    TM_CHECK_INT(tm_numeric_parse(b, &d, "1e131072", 8), TM_EINVAL);
    TM_CHECK_INT(tm_numeric_parse(b, &d, "1e131071", 8), 0);
    TM_CHECK(d.flags & TM_DATUM_WIDE);
    TM_CHECK_INT(tm_numeric_parse(b, &d, "0.000000001e-16375", 18), TM_EINVAL);
    TM_CHECK_INT(tm_numeric_parse(b, &d, "1e-16383", 8), 0);
    tm_batch_unref(b);
}

static void test_numeric_wide_and_nan(void)
{
    tm_batch_t *b = tm_batch_new();
    tm_datum_t d = {0};
    const char *wide = "123456789012345678901234567890123456789012345.5";
    char out[256];
    TM_REQUIRE(tm_numeric_parse(b, &d, wide, strlen(wide)) == 0);
    TM_CHECK(d.flags & TM_DATUM_WIDE);
    tm_numeric_format(&d, out, sizeof(out));
    TM_CHECK_STR(out, wide);
    memset(&d, 0, sizeof(d));
    TM_REQUIRE(tm_numeric_parse(b, &d, "NaN", 3) == 0);
    TM_CHECK(d.flags & TM_DATUM_NAN);
    TM_CHECK(tm_numeric_parse(b, &d, "12a", 3) != 0);
    TM_CHECK(tm_numeric_parse(b, &d, "", 0) != 0);
    TM_CHECK(tm_numeric_parse(b, &d, "-", 1) != 0);
    TM_CHECK(tm_numeric_parse(b, &d, "1e", 2) != 0);
    tm_batch_unref(b);
}

static void test_batch_schema_refs(void)
{
    tm_schema_t *s = tm_schema_new(2);
    tm_batch_t *b = tm_batch_new();
    for (int i = 0; i < TM_BATCH_MAX; i++) {
        tm_record_t *r = tm_batch_add(b, s, TM_OP_CREATE);
        TM_REQUIRE(r != NULL);
        r->after = tm_batch_new_row(b, s);
        TM_REQUIRE(r->after != NULL);
        TM_CHECK(tm_row_is_null(r->after, 0) && tm_row_is_null(r->after, 1));
        tm_row_set_null(r->after, 1, false);
        TM_CHECK(!tm_row_is_null(r->after, 1));
    }
    TM_CHECK(tm_batch_full(b));
    TM_CHECK(tm_batch_add(b, s, TM_OP_CREATE) == NULL);
    TM_CHECK_INT(b->nschemas, 1);
    TM_CHECK_INT(atomic_load(&s->refcount), 2);
    tm_batch_unref(b);
    TM_CHECK_INT(atomic_load(&s->refcount), 1);
    tm_schema_unref(s);
}

static void test_arena_big_values(void)
{
    tm_arena_t a;
    tm_arena_init(&a, 1024);
    char *small = tm_arena_strdup(&a, "abc");
    char big[5000];
    memset(big, 'x', sizeof(big));
    char *bp = tm_arena_memdup(&a, big, sizeof(big));
    char *small2 = tm_arena_strdup(&a, "def");
    TM_CHECK_STR(small, "abc");
    TM_CHECK_STR(small2, "def");
    TM_CHECK(bp[4999] == 'x' && bp[5000] == '\0');
    TM_CHECK(((uintptr_t)small2 & 15) == 0);
    tm_arena_release(&a);
}

static void test_record_kinds(void)
{
    tm_record_t r = {0};
    tm_rowkind_t k[2];
    tm_row_t row;
    r.op = TM_OP_UPDATE;
    TM_CHECK_INT(tm_record_kinds(&r, k), 1);
    TM_CHECK(k[0] == TM_KIND_UPDATE_AFTER);
    r.before = &row;
    TM_CHECK_INT(tm_record_kinds(&r, k), 2);
    TM_CHECK(k[0] == TM_KIND_UPDATE_BEFORE && k[1] == TM_KIND_UPDATE_AFTER);
    r.op = TM_OP_DELETE;
    TM_CHECK_INT(tm_record_kinds(&r, k), 1);
    TM_CHECK(k[0] == TM_KIND_DELETE);
    r.op = TM_OP_TRUNCATE;
    TM_CHECK_INT(tm_record_kinds(&r, k), 0);
}

int main(void)
{
    TM_RUN(test_numeric_parse_format);
    TM_RUN(test_numeric_wide_and_nan);
    TM_RUN(test_batch_schema_refs);
    TM_RUN(test_arena_big_values);
    TM_RUN(test_record_kinds);
    return tm_test_done();
}
