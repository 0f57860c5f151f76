/*
 * binlog_json.c — unit tests of MySQL 8 binary JSON to text (no MySQL 8 in
 * Debian, so the vectors are written here byte by byte from the format in
 * sql-common/json_binary.h, each with the text MySQL prints for it): small
 * and large objects and arrays, inlined and offset scalars, every scalar
 * type, opaque DECIMAL and DATETIME/DATE/TIME, escapes, and malformed input
 * (truncation at every length, offsets outside, nesting deeper than 100).
 */
#include "tm_test.h"

#include "core/buf.h"
#include "core/error.h"
#include "mysql/binlog_rows.h"

static const char *text_of(const uint8_t *doc, size_t n, int *rc)
{
    static tm_buf_t out;
    tm_buf_release(&out);
    tm_buf_init(&out);
    *rc = tm_my_json_to_text(doc, n, &out);
    tm_buf_putc(&out, '\0');
    return out.data;
}

static void check(const uint8_t *doc, size_t n, const char *want)
{
    int rc;
    const char *got = text_of(doc, n, &rc);
    TM_CHECK(rc == 0);
    TM_CHECK_STR(got, want);
}

/* {"a": 1, "b": [true, null]}: a small object with an inlined int16 and a nested array. */
static const uint8_t obj[] = {
    0x00, 0x02, 0x00, 0x1e, 0x00,             /* small object, 2 members, 30 bytes */
    0x12, 0x00, 0x01, 0x00, 0x13, 0x00, 0x01, 0x00, /* keys at 18 and 19, 1 byte each */
    0x05, 0x01, 0x00,                         /* int16 1, inlined */
    0x02, 0x14, 0x00,                         /* small array at 20 */
    'a', 'b',
    0x02, 0x00, 0x0a, 0x00, 0x04, 0x01, 0x00, 0x04, 0x00, 0x00, /* [true, null] */
};

static void test_object_and_array(void)
{
    check(obj, sizeof(obj), "{\"a\": 1, \"b\": [true, null]}");
    /* A large array with an inlined int32 and a uint32. */
    static const uint8_t big[] = {0x03, 0x02, 0, 0, 0, 0x12, 0, 0, 0, 0x07, 0xff, 0xff, 0xff,
                                  0xff, 0x08, 0x00, 0x00, 0x00, 0x80};
    check(big, sizeof(big), "[-1, 2147483648]");
    static const uint8_t empty_obj[] = {0x00, 0x00, 0x00, 0x04, 0x00};
    check(empty_obj, sizeof(empty_obj), "{}");
}

static void test_scalars(void)
{
    static const uint8_t s[] = {0x0c, 0x05, 'h', 'e', 'l', 'l', 'o'};
    check(s, sizeof(s), "\"hello\"");
    static const uint8_t esc[] = {0x0c, 0x04, 'a', '"', '\\', '\n'};
    check(esc, sizeof(esc), "\"a\\\"\\\\\\n\"");
    static const uint8_t f[] = {0x04, 0x02};
    check(f, sizeof(f), "false");
    static const uint8_t i64[] = {0x09, 0xfb, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    check(i64, sizeof(i64), "-5");
    static const uint8_t u64[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    check(u64, sizeof(u64), "18446744073709551615");
    static const uint8_t i16[] = {0x05, 0x00, 0x80};
    check(i16, sizeof(i16), "-32768");
    uint8_t d[9] = {0x0b};
    double v = 3.5;
    memcpy(d + 1, &v, 8);
    check(d, sizeof(d), "3.5");
    v = 1.0;
    memcpy(d + 1, &v, 8);
    check(d, sizeof(d), "1.0");
    v = 0.1;
    memcpy(d + 1, &v, 8);
    check(d, sizeof(d), "0.1");
    /* An empty value is SQL's JSON null. */
    check(NULL, 0, "null");
    /* A string longer than 127 bytes has a two-byte length. */
    uint8_t lng[3 + 200] = {0x0c, 0xc8, 0x01};
    memset(lng + 3, 'x', 200);
    int rc;
    const char *t = text_of(lng, sizeof(lng), &rc);
    TM_CHECK(rc == 0 && strlen(t) == 202);
}

static void test_opaque(void)
{
    /* DECIMAL(5,2) 123.45: precision, scale, packed decimal 80 7b 2d. */
    static const uint8_t dec[] = {0x0f, 0xf6, 0x05, 0x05, 0x02, 0x80, 0x7b, 0x2d};
    check(dec, sizeof(dec), "123.45");
    static const uint8_t neg[] = {0x0f, 0xf6, 0x05, 0x05, 0x02, 0x7f, 0x84, 0xd2};
    check(neg, sizeof(neg), "-123.45");
    /* DATETIME 2015-01-15 23:24:25.5: MySQL's packed longlong. */
    uint64_t ymd = ((uint64_t)(2015 * 13 + 1) << 5) | 15;
    uint64_t hms = (23u << 12) | (24u << 6) | 25u;
    uint64_t packed = (((ymd << 17) | hms) << 24) + 500000;
    uint8_t dt[11] = {0x0f, TM_MY_T_DATETIME, 0x08};
    for (int i = 0; i < 8; i++)
        dt[3 + i] = (uint8_t)(packed >> (8 * i));
    check(dt, sizeof(dt), "\"2015-01-15 23:24:25.500000\"");
    dt[1] = TM_MY_T_DATE;
    packed = (ymd << 17) << 24;
    for (int i = 0; i < 8; i++)
        dt[3 + i] = (uint8_t)(packed >> (8 * i));
    check(dt, sizeof(dt), "\"2015-01-15\"");
    /* TIME -01:02:03.000004. */
    int64_t tp = -(int64_t)((((1u << 12) | (2u << 6) | 3u) * (1ULL << 24)) + 4);
    dt[1] = TM_MY_T_TIME;
    for (int i = 0; i < 8; i++)
        dt[3 + i] = (uint8_t)((uint64_t)tp >> (8 * i));
    check(dt, sizeof(dt), "\"-01:02:03.000004\"");
    /* Another opaque type prints as MySQL's base64 form. */
    static const uint8_t other[] = {0x0f, 0xfc, 0x02, 'h', 'i'};
    check(other, sizeof(other), "\"base64:type252:aGk=\"");
}

static void test_malformed(void)
{
    int rc;
    /* Every truncation of the object fails cleanly. */
    for (size_t n = 1; n < sizeof(obj); n++) {
        text_of(obj, n, &rc);
        TM_CHECK(rc == TM_ECORRUPT);
    }
    /* A value offset outside the object. */
    uint8_t bad[sizeof(obj)];
    memcpy(bad, obj, sizeof(obj));
    bad[17] = 0x7f;
    text_of(bad, sizeof(bad), &rc);
    TM_CHECK(rc == TM_ECORRUPT);
    /* A key length past the end. */
    memcpy(bad, obj, sizeof(obj));
    bad[7] = 0x40;
    text_of(bad, sizeof(bad), &rc);
    TM_CHECK(rc == TM_ECORRUPT);
    /* An unknown type and a bad literal. */
    static const uint8_t unk[] = {0x0d, 0x00};
    text_of(unk, sizeof(unk), &rc);
    TM_CHECK(rc == TM_ECORRUPT);
    static const uint8_t lit[] = {0x04, 0x07};
    text_of(lit, sizeof(lit), &rc);
    TM_CHECK(rc == TM_ECORRUPT);
    /* 200 nested one-element arrays: deeper than MySQL allows. */
    enum { DEPTH = 200 };
    static uint8_t deep[1 + DEPTH * 7 + 2];
    size_t total = DEPTH * 7 + 2, off = 0;
    deep[0] = 0x02;
    for (int i = 0; i < DEPTH; i++) {
        uint8_t *a = deep + 1 + off;
        size_t size = total - off;
        a[0] = 1, a[1] = 0;
        a[2] = (uint8_t)(size & 0xff), a[3] = (uint8_t)(size >> 8);
        a[4] = i == DEPTH - 1 ? 0x04 : 0x02;
        a[5] = i == DEPTH - 1 ? 0x01 : 7, a[6] = 0;
        off += 7;
    }
    text_of(deep, 1 + off, &rc);
    TM_CHECK(rc == TM_ECORRUPT);
}

int main(void)
{
    TM_RUN(test_object_and_array);
    TM_RUN(test_scalars);
    TM_RUN(test_opaque);
    TM_RUN(test_malformed);
    int rc;
    text_of(NULL, 0, &rc); /* leaves the static buffer holding little */
    return tm_test_done();
}
