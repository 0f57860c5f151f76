/*
 * pg_types.c — unit tests of PostgreSQL type metadata and text parsing:
 * numeric, money, floats with NaN/Infinity, dates and timestamps (BC,
 * infinity), timetz normalisation, intervals in both output styles, bytea,
 * arrays with quotes, NULLs, nesting and bounds, and column defaults read
 * as Debezium reads them.
 */
#include "tm_test.h"

#include "core/datum.h"
#include "core/error.h"
#include "core/row.h"
#include "postgres/pg_types.h"

#include <inttypes.h>
#include <math.h>

static tm_batch_t *batch;

static int parse(uint8_t kind, const char *text, tm_datum_t *d)
{
    tm_pg_coltype_t ct = {kind, 0, ','};
    char err[256];
    return tm_pg_value_parse(batch, &ct, text, strlen(text), d, err, sizeof(err));
}

static const char *numeric_text(const char *in)
{
    static char buf[128];
    tm_datum_t d;
    if (parse(TM_PG_K_NUMERIC, in, &d) != 0)
        return "(error)";
    if (d.flags & (TM_DATUM_WIDE | TM_DATUM_NAN))
        snprintf(buf, sizeof(buf), "%.*s", (int)d.u.var.len, d.u.var.ptr);
    else
        tm_numeric_format(&d, buf, sizeof(buf));
    return buf;
}

static const char *money_text(const char *in)
{
    static char buf[128];
    tm_datum_t d;
    if (parse(TM_PG_K_MONEY, in, &d) != 0)
        return "(error)";
    tm_numeric_format(&d, buf, sizeof(buf));
    return buf;
}

/* Parses an array of `elem` kind and returns its JSON text, or "(error)". */
static const char *array_json(uint8_t elem, char delim, const char *in)
{
    static char buf[1024];
    tm_pg_coltype_t ct = {TM_PG_K_ARRAY, elem, delim};
    tm_datum_t d;
    char err[256];
    if (tm_pg_value_parse(batch, &ct, in, strlen(in), &d, err, sizeof(err)) != 0)
        return "(error)";
    snprintf(buf, sizeof(buf), "%.*s", (int)d.u.var.len, d.u.var.ptr);
    return buf;
}

static void test_numbers(void)
{
    tm_datum_t d;
    TM_CHECK_STR(numeric_text("1.50"), "1.50");
    TM_CHECK_STR(numeric_text("-0.001"), "-0.001");
    TM_CHECK_STR(numeric_text("12345678901234567890.123456789"),
                 "12345678901234567890.123456789");
    TM_REQUIRE(parse(TM_PG_K_NUMERIC, "NaN", &d) == 0);
    TM_CHECK(d.flags & TM_DATUM_NAN);
    TM_REQUIRE(parse(TM_PG_K_NUMERIC, "-Infinity", &d) == 0);
    TM_CHECK(d.flags & TM_DATUM_NAN);
    TM_CHECK(parse(TM_PG_K_NUMERIC, "12a", &d) == TM_EPROTO);
    /* Wider than 128 bits: kept as text. */
    TM_REQUIRE(parse(TM_PG_K_NUMERIC, "123456789012345678901234567890123456789012345.5", &d) == 0);
    TM_CHECK(d.flags & TM_DATUM_WIDE);

    TM_CHECK_STR(money_text("$1,234.56"), "1234.56");
    TM_CHECK_STR(money_text("-$1,234.56"), "-1234.56");
    TM_CHECK_STR(money_text("$0.00"), "0.00");
    TM_CHECK_STR(money_text("($5.00)"), "-5.00");
    TM_CHECK_STR(money_text("-$92,233,720,368,547,758.08"), "-92233720368547758.08");
    TM_CHECK_STR(money_text("€1"), "(error)");

    TM_REQUIRE(parse(TM_PG_K_FLOAT, "NaN", &d) == 0);
    TM_CHECK(isnan(d.u.f64));
    TM_REQUIRE(parse(TM_PG_K_FLOAT, "-Infinity", &d) == 0);
    TM_CHECK(isinf(d.u.f64) && d.u.f64 < 0);
    TM_REQUIRE(parse(TM_PG_K_FLOAT, "1.5e+20", &d) == 0);
    TM_CHECK(d.u.f64 == 1.5e20);
    TM_REQUIRE(parse(TM_PG_K_FLOAT, "0.30000000000000004", &d) == 0);
    TM_CHECK(d.u.f64 == 0.1 + 0.2);
    TM_CHECK(parse(TM_PG_K_FLOAT, "0x10", &d) == TM_EPROTO);
    TM_CHECK(parse(TM_PG_K_FLOAT, "", &d) == TM_EPROTO);

    TM_REQUIRE(parse(TM_PG_K_INT, "-9223372036854775808", &d) == 0);
    TM_CHECK(d.u.i64 == INT64_MIN);
    TM_REQUIRE(parse(TM_PG_K_INT, "9223372036854775807", &d) == 0);
    TM_CHECK(d.u.i64 == INT64_MAX);
    TM_CHECK(parse(TM_PG_K_INT, "9223372036854775808", &d) == TM_EPROTO);
    TM_CHECK(parse(TM_PG_K_INT, "-", &d) == TM_EPROTO);
    TM_CHECK(parse(TM_PG_K_INT, "12 ", &d) == TM_EPROTO);

    TM_REQUIRE(parse(TM_PG_K_BOOL, "t", &d) == 0);
    TM_CHECK(d.u.b);
    TM_REQUIRE(parse(TM_PG_K_BOOL, "f", &d) == 0);
    TM_CHECK(!d.u.b);
    TM_CHECK(parse(TM_PG_K_BOOL, "maybe", &d) == TM_EPROTO);
}

static void test_dates(void)
{
    int64_t v;
    TM_CHECK(tm_pg_parse_date("1970-01-01", 10, &v) == 0 && v == 0);
    TM_CHECK(tm_pg_parse_date("2024-02-29", 10, &v) == 0 && v == 19782);
    TM_CHECK(tm_pg_parse_date("1969-12-31", 10, &v) == 0 && v == -1);
    /* 1 BC is astronomical year 0, a leap year. */
    TM_CHECK(tm_pg_parse_date("0001-01-01 BC", 13, &v) == 0 &&
             v == tm_pg_days_from_civil(0, 1, 1));
    TM_CHECK(tm_pg_parse_date("0044-03-15 BC", 13, &v) == 0 &&
             v == tm_pg_days_from_civil(-43, 3, 15));
    TM_CHECK(tm_pg_parse_date("infinity", 8, &v) == 0 && v == TM_PG_DATE_POS_INF);
    TM_CHECK(tm_pg_parse_date("-infinity", 9, &v) == 0 && v == TM_PG_DATE_NEG_INF);
    TM_CHECK(tm_pg_parse_date("12345-01-01", 11, &v) == 0 &&
             v == tm_pg_days_from_civil(12345, 1, 1));
    TM_CHECK(tm_pg_parse_date("2024-13-01", 10, &v) == TM_EPROTO);
    TM_CHECK(tm_pg_parse_date("2024-02-2", 9, &v) == TM_EPROTO);
    TM_CHECK(tm_pg_parse_date("", 0, &v) == TM_EPROTO);

    TM_CHECK(tm_pg_parse_time("13:14:15.678", 12, &v) == 0 && v == 47655678000);
    TM_CHECK(tm_pg_parse_time("00:00:00", 8, &v) == 0 && v == 0);
    TM_CHECK(tm_pg_parse_time("24:00:00", 8, &v) == 0 && v == INT64_C(86400000000));
    TM_CHECK(tm_pg_parse_time("23:59:59.999999", 15, &v) == 0 && v == INT64_C(86399999999));
    TM_CHECK(tm_pg_parse_time("25:00:00", 8, &v) == TM_EPROTO);
    TM_CHECK(tm_pg_parse_time("12:00:00+01", 11, &v) == TM_EPROTO);

    /* timetz is normalised to UTC and wrapped into one day. */
    TM_CHECK(tm_pg_parse_timetz("10:00:00+05:30", 14, &v) == 0 && v == INT64_C(16200000000));
    TM_CHECK(tm_pg_parse_timetz("01:00:00+05", 11, &v) == 0 && v == INT64_C(72000000000));
    TM_CHECK(tm_pg_parse_timetz("23:00:00-02", 11, &v) == 0 && v == INT64_C(3600000000));
    TM_CHECK(tm_pg_parse_timetz("12:00:00.5+00", 13, &v) == 0 && v == INT64_C(43200500000));
    TM_CHECK(tm_pg_parse_timetz("12:00:00+05:30:15", 17, &v) == 0 &&
             v == INT64_C(43200000000) - INT64_C(19815000000));
    TM_CHECK(tm_pg_parse_timetz("12:00:00", 8, &v) == TM_EPROTO);

    const char *ts = "2024-02-29 13:14:15.123456";
    TM_CHECK(tm_pg_parse_timestamp(ts, strlen(ts), false, &v) == 0 &&
             v == INT64_C(1709212455123456));
    ts = "2024-02-29 13:14:15.123456+01";
    TM_CHECK(tm_pg_parse_timestamp(ts, strlen(ts), true, &v) == 0 &&
             v == INT64_C(1709208855123456));
    ts = "2024-02-29 13:14:15+05:30";
    TM_CHECK(tm_pg_parse_timestamp(ts, strlen(ts), true, &v) == 0 &&
             v == INT64_C(1709192655000000));
    ts = "1969-12-31 23:59:59.5";
    TM_CHECK(tm_pg_parse_timestamp(ts, strlen(ts), false, &v) == 0 && v == -500000);
    ts = "0001-01-01 00:00:00+00 BC";
    TM_CHECK(tm_pg_parse_timestamp(ts, strlen(ts), true, &v) == 0 &&
             v == tm_pg_days_from_civil(0, 1, 1) * INT64_C(86400000000));
    TM_CHECK(tm_pg_parse_timestamp("infinity", 8, true, &v) == 0 && v == TM_PG_TS_POS_INF);
    TM_CHECK(tm_pg_parse_timestamp("-infinity", 9, false, &v) == 0 && v == TM_PG_TS_NEG_INF);
    ts = "2024-02-29 13:14:15+01";
    TM_CHECK(tm_pg_parse_timestamp(ts, strlen(ts), false, &v) == TM_EPROTO);
    ts = "2024-02-29 13:14";
    TM_CHECK(tm_pg_parse_timestamp(ts, strlen(ts), false, &v) == 0 &&
             v == INT64_C(1709212440000000));
    /* Years far beyond what a timestamp holds are refused, not wrapped. */
    ts = "9999999-01-01 00:00:00";
    TM_CHECK(tm_pg_parse_timestamp(ts, strlen(ts), false, &v) == TM_EPROTO);
}

static void test_intervals(void)
{
    int64_t v;
    const int64_t month = INT64_C(2629800000000), day = INT64_C(86400000000);
    const int64_t hms = ((4 * 60 + 5) * 60 + 6) * INT64_C(1000000) + 500000;
#define IV(s) tm_pg_parse_interval((s), strlen(s), &v, NULL)
    TM_CHECK(IV("P1Y2M3DT4H5M6.5S") == 0 && v == 14 * month + 3 * day + hms);
    TM_CHECK(IV("PT0S") == 0 && v == 0);
    TM_CHECK(IV("P-1Y-2M3DT-4H-5M-6.5S") == 0 && v == -14 * month + 3 * day - hms);
    TM_CHECK(IV("PT-0.000001S") == 0 && v == -1);
    TM_CHECK(IV("P1W") == 0 && v == 7 * day);
    /* Debezium's MicroDuration: one month is 30.4375 days. */
    TM_CHECK(IV("P1M") == 0 && v == (int64_t)(30.4375 * 86400) * INT64_C(1000000));
    TM_CHECK(IV("1 year 2 mons 3 days 04:05:06.5") == 0 && v == 14 * month + 3 * day + hms);
    TM_CHECK(IV("-1 days +02:00:00") == 0 && v == -day + 2 * INT64_C(3600000000));
    TM_CHECK(IV("00:00:00") == 0 && v == 0);
    TM_CHECK(IV("-00:00:01.5") == 0 && v == -1500000);
    TM_CHECK(IV("100:00:00") == 0 && v == 100 * INT64_C(3600000000));
    TM_CHECK(IV("P") == TM_EPROTO);
    TM_CHECK(IV("P1X") == TM_EPROTO);
    TM_CHECK(IV("1 fortnight") == TM_EPROTO);
    TM_CHECK(IV("") == TM_EPROTO);
    /* Saturates rather than overflowing. */
    TM_CHECK(IV("P178000000Y") == 0 && v == INT64_MAX);
#undef IV
    /* The calendar months among them, for timestamp ± interval (row.h u.iv). */
    int32_t m = -1;
    TM_CHECK(tm_pg_parse_interval("1 year 2 mons 3 days 04:05:06.5", 31, &v, &m) == 0 && m == 14);
    TM_CHECK(tm_pg_parse_interval("-1 mons", 7, &v, &m) == 0 && m == -1);
    TM_CHECK(tm_pg_parse_interval("-P1Y2M3D", 8, &v, &m) == 0 && m == -14);
    TM_CHECK(tm_pg_parse_interval("3 days", 6, &v, &m) == 0 && m == 0);
}

static void test_bytes_and_text(void)
{
    tm_datum_t d;
    TM_REQUIRE(parse(TM_PG_K_BYTEA, "\\x00ff10", &d) == 0);
    TM_CHECK(d.u.var.len == 3 && memcmp(d.u.var.ptr, "\x00\xff\x10", 3) == 0);
    TM_REQUIRE(parse(TM_PG_K_BYTEA, "\\x", &d) == 0);
    TM_CHECK(d.u.var.len == 0);
    TM_CHECK(parse(TM_PG_K_BYTEA, "\\x0", &d) == TM_EPROTO);
    TM_CHECK(parse(TM_PG_K_BYTEA, "\\xzz", &d) == TM_EPROTO);
    TM_REQUIRE(parse(TM_PG_K_BYTEA, "a\\\\b\\001", &d) == 0); /* escape format */
    TM_CHECK(d.u.var.len == 4 && memcmp(d.u.var.ptr, "a\\b\001", 4) == 0);
    TM_CHECK(parse(TM_PG_K_BYTEA, "a\\9", &d) == TM_EPROTO);
    TM_REQUIRE(parse(TM_PG_K_TEXT, "héllo", &d) == 0);
    TM_CHECK_STR(d.u.var.ptr, "héllo");
    TM_REQUIRE(parse(TM_PG_K_OTHER, "10.0.0.1/8", &d) == 0);
    TM_CHECK_STR(d.u.var.ptr, "10.0.0.1/8");
}

static void test_arrays(void)
{
    TM_CHECK_STR(array_json(TM_PG_K_INT, ',', "{1,NULL,3}"), "[1,null,3]");
    TM_CHECK_STR(array_json(TM_PG_K_TEXT, ',', "{\"a b\",\"c,d\",NULL,\"e\\\"f\",\"NULL\"}"),
                 "[\"a b\",\"c,d\",null,\"e\\\"f\",\"NULL\"]");
    TM_CHECK_STR(array_json(TM_PG_K_INT, ',', "{{1,2},{3,4}}"), "[[1,2],[3,4]]");
    TM_CHECK_STR(array_json(TM_PG_K_INT, ',', "[0:1]={5,6}"), "[5,6]");
    TM_CHECK_STR(array_json(TM_PG_K_INT, ',', "{}"), "[]");
    TM_CHECK_STR(array_json(TM_PG_K_BOOL, ',', "{t,f}"), "[true,false]");
    TM_CHECK_STR(array_json(TM_PG_K_FLOAT, ',', "{1.5,NaN,-Infinity}"),
                 "[1.5,\"NaN\",\"-Infinity\"]");
    TM_CHECK_STR(array_json(TM_PG_K_NUMERIC, ',', "{1.50,-2,NaN}"), "[1.50,-2,\"NaN\"]");
    TM_CHECK_STR(array_json(TM_PG_K_TEXT, ',', "{ a , b c }"), "[\"a\",\"b c\"]");
    TM_CHECK_STR(array_json(TM_PG_K_TEXT, ',', "{\"\"}"), "[\"\"]");
    TM_CHECK_STR(array_json(TM_PG_K_TEXT, ',', "{a\\,b}"), "[\"a,b\"]");
    TM_CHECK_STR(array_json(TM_PG_K_OTHER, ';', "{(1,1),(0,0);(2,2),(1,1)}"),
                 "[\"(1,1),(0,0)\",\"(2,2),(1,1)\"]");
    TM_CHECK_STR(array_json(TM_PG_K_DATE, ',', "{1970-01-02,infinity}"), "[1,2147483647]");
    TM_CHECK_STR(array_json(TM_PG_K_TIMESTAMPTZ, ',', "{\"2024-02-29 13:14:15.5+01\"}"),
                 "[\"2024-02-29T12:14:15.500000Z\"]");
    TM_CHECK_STR(array_json(TM_PG_K_TIMESTAMP, ',', "{\"1970-01-01 00:00:01\"}"), "[1000000]");
    TM_CHECK_STR(array_json(TM_PG_K_TIMETZ, ',', "{10:00:00+05:30}"), "[\"04:30:00Z\"]");
    TM_CHECK_STR(array_json(TM_PG_K_BYTEA, ',', "{\"\\\\x00ff\"}"), "[\"AP8=\"]");
    TM_CHECK_STR(array_json(TM_PG_K_INTERVAL, ',', "{PT1S}"), "[1000000]");
    TM_CHECK_STR(array_json(TM_PG_K_MONEY, ',', "{\"$1.00\",\"-$2.50\"}"), "[1.00,-2.50]");
    TM_CHECK_STR(array_json(TM_PG_K_UUID, ',', "{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}"),
                 "[\"a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11\"]");
    TM_CHECK_STR(array_json(TM_PG_K_JSON, ',', "{\"{\\\"a\\\": 1}\"}"), "[\"{\\\"a\\\": 1}\"]");
    /* Malformed literals are errors, never crashes. */
    TM_CHECK_STR(array_json(TM_PG_K_INT, ',', "{1,2"), "(error)");
    TM_CHECK_STR(array_json(TM_PG_K_INT, ',', "{1,,2}"), "(error)");
    TM_CHECK_STR(array_json(TM_PG_K_INT, ',', "{1,x}"), "(error)");
    TM_CHECK_STR(array_json(TM_PG_K_TEXT, ',', "{\"abc}"), "(error)");
    TM_CHECK_STR(array_json(TM_PG_K_TEXT, ',', "{a}x"), "(error)");
    TM_CHECK_STR(array_json(TM_PG_K_TEXT, ',', "[1:2]{a}"), "(error)");
    TM_CHECK_STR(array_json(TM_PG_K_TEXT, ',', ""), "(error)");
    TM_CHECK_STR(array_json(TM_PG_K_TEXT, ',', "{a\\"), "(error)");
    TM_CHECK_STR(array_json(TM_PG_K_INT, ',', "{{{{{{{{{{{{{{{{{{1}}}}}}}}}}}}}}}}}}"), "(error)");
}

static void test_describe(void)
{
    tm_schema_t *s = tm_schema_new(1);
    tm_column_t *c = &s->cols[0];
    tm_pg_coltype_t ct;

    TM_REQUIRE(tm_pg_column_describe(NULL, 1700, ((10 << 16) | 2) + 4, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_NUMERIC && c->precision == 10 && c->scale == 2);
    TM_CHECK(ct.kind == TM_PG_K_NUMERIC);
    TM_CHECK_STR(c->db_type, "numeric");
    TM_REQUIRE(tm_pg_column_describe(NULL, 1700, -1, c, &ct) == 0);
    TM_CHECK(c->precision == -1 && c->scale == TM_SCALE_VARIABLE);
    /* PostgreSQL 15 allows a negative scale: numeric(5,-2). */
    TM_REQUIRE(tm_pg_column_describe(NULL, 1700, ((5 << 16) | (-2 & 0x7ff)) + 4, c, &ct) == 0);
    TM_CHECK(c->precision == 5 && c->scale == -2);
    TM_REQUIRE(tm_pg_column_describe(NULL, 790, -1, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_NUMERIC && c->scale == 2 && ct.kind == TM_PG_K_MONEY);
    TM_REQUIRE(tm_pg_column_describe(NULL, 1043, 5 + 4, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_TEXT && c->length == 5);
    TM_REQUIRE(tm_pg_column_describe(NULL, 1560, 3, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_TEXT && c->length == 3);
    TM_REQUIRE(tm_pg_column_describe(NULL, 1114, 3, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_TIMESTAMP && c->precision == 3);
    TM_REQUIRE(tm_pg_column_describe(NULL, 1184, -1, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_TIMESTAMPTZ && c->precision == -1);
    TM_REQUIRE(tm_pg_column_describe(NULL, 142, -1, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_TEXT);
    TM_CHECK_STR(c->semantic, "io.debezium.data.Xml");
    TM_REQUIRE(tm_pg_column_describe(NULL, 3802, -1, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_JSON);
    TM_REQUIRE(tm_pg_column_describe(NULL, 2950, -1, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_UUID);
    TM_REQUIRE(tm_pg_column_describe(NULL, 869, -1, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_OTHER);
    TM_CHECK_STR(c->db_type, "inet");
    TM_REQUIRE(tm_pg_column_describe(NULL, 1007, -1, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_ARRAY && c->elem_type == TM_T_INT32 && ct.elem_kind == TM_PG_K_INT);
    TM_CHECK_STR(c->db_type, "_int4");
    TM_CHECK(c->semantic == NULL);
    TM_REQUIRE(tm_pg_column_describe(NULL, 1020, -1, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_ARRAY && ct.delim == ';');
    TM_REQUIRE(tm_pg_column_describe(NULL, 1231, ((8 << 16) | 3) + 4, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_ARRAY && c->elem_type == TM_T_NUMERIC && c->scale == 3);
    /* Unknown oids keep their text form and never fail. */
    TM_REQUIRE(tm_pg_column_describe(NULL, 99999, -1, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_OTHER && ct.kind == TM_PG_K_OTHER);
    TM_CHECK_STR(c->db_type, "oid:99999");

    /* Catalog-learnt types: an enum, a domain over numeric(5,1), arrays of both. */
    tm_pg_typecache_t *tc = tm_pg_typecache_new();
    TM_CHECK(tm_pg_type_missing(tc, 16400) == 16400);
    TM_CHECK(tm_pg_type_missing(tc, 23) == 0);
    tm_pg_typeinfo_t e = {16400, "mood", "public", 'e', 0, 0, -1, ',', "sad,ok,happy"};
    tm_pg_typeinfo_t ea = {16399, "_mood", "public", 'b', 16400, 0, -1, ',', NULL};
    tm_pg_typeinfo_t dm = {16410, "price", "public", 'd', 0, 1700, ((5 << 16) | 1) + 4, ',',
                           NULL};
    tm_pg_typeinfo_t da = {16409, "_price", "public", 'b', 16410, 0, -1, ',', NULL};
    TM_CHECK(tm_pg_typecache_put(tc, &e) == 0 && tm_pg_typecache_put(tc, &ea) == 0);
    TM_CHECK(tm_pg_typecache_put(tc, &dm) == 0 && tm_pg_typecache_put(tc, &da) == 0);
    TM_CHECK(tm_pg_type_missing(tc, 16399) == 0);
    TM_CHECK(tm_pg_type_missing(tc, 16409) == 0);
    TM_REQUIRE(tm_pg_column_describe(tc, 16400, -1, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_ENUM && ct.kind == TM_PG_K_ENUM);
    TM_CHECK_STR(c->enum_values, "sad,ok,happy");
    TM_CHECK_STR(c->semantic, "io.debezium.data.Enum");
    TM_CHECK_STR(c->db_type, "mood");
    TM_REQUIRE(tm_pg_column_describe(tc, 16399, -1, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_ARRAY && c->elem_type == TM_T_ENUM);
    TM_CHECK_STR(c->db_type, "_mood");
    TM_REQUIRE(tm_pg_column_describe(tc, 16410, -1, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_NUMERIC && c->precision == 5 && c->scale == 1);
    TM_CHECK_STR(c->db_type, "price");
    TM_REQUIRE(tm_pg_column_describe(tc, 16409, -1, c, &ct) == 0);
    TM_CHECK(c->type == TM_T_ARRAY && c->elem_type == TM_T_NUMERIC && c->scale == 1);
    /* A Type message alone (no catalog row yet) still needs a lookup. */
    TM_CHECK(tm_pg_typecache_note_name(tc, 16500, "public", "later") == 0);
    TM_CHECK(tm_pg_type_missing(tc, 16500) == 16500);
    /* A Type message names a domain's base type; the catalog's name wins. */
    TM_CHECK(tm_pg_typecache_note_name(tc, 16410, "pg_catalog", "numeric") == 0);
    TM_REQUIRE(tm_pg_column_describe(tc, 16410, -1, c, &ct) == 0);
    TM_CHECK_STR(c->db_type, "price");
    tm_pg_typecache_free(tc);
    tm_schema_unref(s);
}

/*
 * The default of a column of type `oid` (typmod -1 unless given) from the
 * catalog's expression text: "none", or the value as text ("i:…", "b:…",
 * "s:…", "n:…").
 */
static const char *dflt(tm_pg_typecache_t *tc, uint32_t oid, int32_t typmod, const char *expr)
{
    static char buf[128];
    tm_schema_t *s = tm_schema_new(1);
    tm_pg_coltype_t ct;
    tm_datum_t d;
    bool has = true;
    snprintf(buf, sizeof(buf), "(error)");
    if (tm_pg_column_describe(tc, oid, typmod, &s->cols[0], &ct) == 0 &&
        tm_pg_default_parse(batch, &s->cols[0], &ct, expr, &d, &has) == 0) {
        tm_storage_t st = tm_type_storage(s->cols[0].type);
        if (!has)
            snprintf(buf, sizeof(buf), "none");
        else if (st == TM_STORAGE_BOOL)
            snprintf(buf, sizeof(buf), "b:%d", d.u.b);
        else if (st == TM_STORAGE_I64)
            snprintf(buf, sizeof(buf), "i:%" PRId64, d.u.i64);
        else if (st == TM_STORAGE_F64)
            snprintf(buf, sizeof(buf), "f:%g", d.u.f64);
        else if (st == TM_STORAGE_NUMERIC) {
            char t[64];
            tm_numeric_format(&d, t, sizeof(t));
            snprintf(buf, sizeof(buf), "n:%s", t);
        } else
            snprintf(buf, sizeof(buf), "s:%.*s", (int)d.u.var.len, d.u.var.ptr);
    }
    tm_schema_unref(s);
    return buf;
}

static void test_defaults(void)
{
    /* Literals, raw and cast, as pg_get_expr prints them. */
    TM_CHECK_STR(dflt(NULL, 23, -1, "42"), "i:42");
    TM_CHECK_STR(dflt(NULL, 21, -1, "'-3'::integer"), "i:-3");
    TM_CHECK_STR(dflt(NULL, 20, -1, "'9223372036854775807'::bigint"), "i:9223372036854775807");
    TM_CHECK_STR(dflt(NULL, 1700, ((5 << 16) | 2) + 4, "1.50"), "n:1.50");
    TM_CHECK_STR(dflt(NULL, 1700, ((8 << 16) | 3) + 4, "2.5"), "n:2.5");
    /* More decimals than the column has: Debezium's Decimal refuses it. */
    TM_CHECK_STR(dflt(NULL, 1700, ((5 << 16) | 1) + 4, "1.55"), "none");
    TM_CHECK_STR(dflt(NULL, 1700, -1, "'NaN'::numeric"), "none");
    TM_CHECK_STR(dflt(NULL, 701, -1, "2.25"), "f:2.25");
    TM_CHECK_STR(dflt(NULL, 16, -1, "true"), "b:1");
    TM_CHECK_STR(dflt(NULL, 16, -1, "false"), "b:0");
    TM_CHECK_STR(dflt(NULL, 25, -1, "''::text"), "s:");
    /* The first quoted part only, as Debezium's non-greedy pattern takes it. */
    TM_CHECK_STR(dflt(NULL, 25, -1, "'it''s'::text"), "s:it");
    TM_CHECK_STR(dflt(NULL, 1043, 14, "'v'::character varying"), "s:v");
    TM_CHECK_STR(dflt(NULL, 1082, -1, "'2020-01-02'::date"), "i:18263");
    TM_CHECK_STR(dflt(NULL, 1083, -1, "'01:02:03'::time without time zone"), "i:3723000000");
    TM_CHECK_STR(dflt(NULL, 1184, -1, "'2020-01-02 03:04:05+00'::timestamp with time zone"),
                 "i:1577934245000000");
    TM_CHECK_STR(dflt(NULL, 1186, -1, "'01:00:00'::interval"), "i:3600000000");
    TM_CHECK_STR(dflt(NULL, 2950, -1, "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid"),
                 "s:a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11");
    TM_CHECK_STR(dflt(NULL, 1560, 4, "B'1010'::\"bit\""), "s:1010");
    /* Calls and the clock keywords stand for the type's placeholder. */
    TM_CHECK_STR(dflt(NULL, 23, -1, "nextval('t_id_seq'::regclass)"), "i:0");
    TM_CHECK_STR(dflt(NULL, 1114, -1, "now()"), "i:0");
    TM_CHECK_STR(dflt(NULL, 1114, -1, "CURRENT_TIMESTAMP"), "i:0");
    TM_CHECK_STR(dflt(NULL, 1082, -1, "CURRENT_DATE"), "i:0");
    TM_CHECK_STR(dflt(NULL, 25, -1, "md5('x'::text)"), "s:");
    TM_CHECK_STR(dflt(NULL, 25, -1, "(pg_catalog.md5('x'::text))"), "s:");
    TM_CHECK_STR(dflt(NULL, 2950, -1, "gen_random_uuid()"),
                 "s:00000000-0000-0000-0000-000000000000");
    TM_CHECK_STR(dflt(NULL, 3802, -1, "jsonb_build_object()"), "s:{}");
    /* NULL:: is no default, for every type. */
    TM_CHECK_STR(dflt(NULL, 23, -1, "NULL::integer"), "none");
    TM_CHECK_STR(dflt(NULL, 25, -1, "NULL::text"), "none");
    /* Expressions that are neither literal nor call, and types without a reader. */
    TM_CHECK_STR(dflt(NULL, 23, -1, "(1 + 2)"), "none");
    TM_CHECK_STR(dflt(NULL, 17, -1, "'\\x00'::bytea"), "none");
    TM_CHECK_STR(dflt(NULL, 869, -1, "'10.0.0.1'::inet"), "none");
    TM_CHECK_STR(dflt(NULL, 790, -1, "1.5"), "none");
    TM_CHECK_STR(dflt(NULL, 1007, -1, "'{1,2}'::integer[]"), "none");
    /* Enums: only a label cast to the column's own type. */
    tm_pg_typecache_t *tc = tm_pg_typecache_new();
    tm_pg_typeinfo_t e = {16400, "mood", "public", 'e', 0, 0, -1, ',', "sad,ok,happy"};
    TM_REQUIRE(tm_pg_typecache_put(tc, &e) == 0);
    TM_CHECK_STR(dflt(tc, 16400, -1, "'ok'::mood"), "s:ok");
    TM_CHECK_STR(dflt(tc, 16400, -1, "'ok'::public.mood"), "s:ok");
    TM_CHECK_STR(dflt(tc, 16400, -1, "'ok'::other"), "none");
    TM_CHECK_STR(dflt(tc, 16400, -1, "pick_mood()"), "none");
    tm_pg_typecache_free(tc);
}

int main(void)
{
    batch = tm_batch_new();
    TM_RUN(test_numbers);
    TM_RUN(test_dates);
    TM_RUN(test_intervals);
    TM_RUN(test_bytes_and_text);
    TM_RUN(test_arrays);
    TM_RUN(test_describe);
    TM_RUN(test_defaults);
    tm_batch_unref(batch);
    return tm_test_done();
}
