/*
 * options.c — Debezium connector options in the encoder (format-options).
 *
 * Role: pins what each option of docs/compat.md's "Debezium options tidemark
 * honours" changes, value and schema, as Debezium 3.6.1's PostgreSQL
 * connector writes it (checked against the real one in
 * tests/compat/test_options.py): message.key.columns, column.include.list /
 * column.exclude.list, include.unknown.datatypes, hstore.handling.mode,
 * interval.handling.mode and binary.handling.mode.  Every event is also built
 * by the Jansson reference encoder, which must agree.  Each check fails on
 * the encoder before these options existed (it wrote bytes, MicroDuration,
 * plain hstore text, every column, and the primary key).
 *
 * Thread: single-threaded.
 */
#include "core/error.h"
#include "format/debezium.h"
#include "format/debezium_int.h"
#include "tm_test.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

/* id int PK, b bytea, iv interval, h hstore, bx tid, name text, code text. */
static tm_schema_t *table(void)
{
    static const struct {
        const char *name, *db_type;
        tm_type_t type;
        uint32_t oid;
    } c[] = {{"id", "int4", TM_T_INT32, 23},        {"b", "bytea", TM_T_BYTES, 17},
             {"iv", "interval", TM_T_INTERVAL, 1186}, {"h", "hstore", TM_T_OTHER, 16500},
             {"bx", "tid", TM_T_OTHER, 27},            {"name", "text", TM_T_TEXT, 25},
             {"code", "text", TM_T_TEXT, 25}};
    int n = (int)(sizeof(c) / sizeof(c[0]));
    tm_schema_t *s = tm_schema_new(n);
    tm_schema_set_str(&s->source_name, "shop");
    tm_schema_set_str(&s->db, "d");
    tm_schema_set_str(&s->namespace, "public");
    tm_schema_set_str(&s->table, "items");
    for (int i = 0; i < n; i++) {
        tm_schema_set_str(&s->cols[i].name, c[i].name);
        tm_schema_set_str(&s->cols[i].db_type, c[i].db_type);
        s->cols[i].type = c[i].type;
        s->cols[i].type_oid = c[i].oid;
        s->cols[i].precision = -1;
        s->cols[i].scale = TM_SCALE_VARIABLE;
        s->cols[i].length = -1;
        s->cols[i].nullable = i != 0;
        s->cols[i].key_index = i == 0 ? 0 : -1;
    }
    tm_schema_finish(s);
    return s;
}

static void set_var(tm_row_t *r, int i, const char *v, size_t n)
{
    tm_row_set_null(r, i, false);
    r->vals[i].u.var.ptr = v;
    r->vals[i].u.var.len = (uint32_t)n;
}

static tm_row_t *row(tm_batch_t *b, tm_schema_t *s, int id, const char *code)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    tm_row_set_null(r, 0, false);
    r->vals[0].u.i64 = id;
    set_var(r, 1, "\xde\xad\xbe\xef\xfb\xff", 6);
    tm_row_set_null(r, 2, false);
    /* 1 year 2 mons 3 days 04:05:06.5 as the PostgreSQL source holds it. */
    r->vals[2].u.iv.months = 14;
    r->vals[2].u.iv.us = INT64_C(14) * INT64_C(2629800000000) + INT64_C(3) * INT64_C(86400000000) +
                         ((INT64_C(4) * 3600 + 5 * 60 + 6) * 1000000 + 500000);
    static const char hs[] = "\"a\"=>\"1\", \"b\"=>NULL, \"c\\\"q\"=>\"x\"";
    set_var(r, 3, hs, sizeof(hs) - 1);
    set_var(r, 4, "(0,1)", 5);
    set_var(r, 5, "widget", 6);
    set_var(r, 6, code, strlen(code));
    return r;
}

typedef struct encoded {
    json_t *value; /* the fast encoder's value event, parsed */
    json_t *key;   /* its key, or NULL when there is none */
    bool agree;    /* the reference encoder wrote the same value and key */
} encoded_t;

static encoded_t enc(const tm_dbz_opts_t *o, int op)
{
    encoded_t e = {NULL, NULL, false};
    tm_dbz_encoder_t *en = NULL;
    char err[256] = "";
    int rc = tm_dbz_encoder_open(o, &en, err, sizeof(err));
    TM_REQUIRE(rc == 0);
    tm_schema_t *s = table();
    tm_batch_t *b = tm_batch_new();
    tm_record_t *r = tm_batch_add(b, s, op);
    if (op != TM_OP_CREATE)
        r->before = row(b, s, 1, "A-1");
    if (op != TM_OP_DELETE)
        r->after = row(b, s, 1, "A-2");
    tm_buf_t out, kout;
    tm_buf_init(&out);
    tm_buf_init(&kout);
    TM_REQUIRE(tm_dbz_encode_value(en, r, &out) == 0);
    e.value = json_loadb(out.data, out.len, 0, NULL);
    TM_REQUIRE(e.value != NULL);
    rc = tm_dbz_encode_key(en, r, &kout);
    TM_REQUIRE(rc == 0 || rc == TM_ENOTFOUND);
    if (rc == 0)
        e.key = json_loadb(kout.data, kout.len, 0, NULL);
    json_t *rv = tm_dbz_encode_value_json(en, r), *rk = tm_dbz_encode_key_json(en, r);
    e.agree = json_equal(rv, e.value) && ((rk == NULL && e.key == NULL) || json_equal(rk, e.key));
    json_decref(rv);
    json_decref(rk);
    tm_buf_release(&out);
    tm_buf_release(&kout);
    tm_batch_unref(b);
    tm_schema_unref(s);
    tm_dbz_encoder_free(en);
    return e;
}

static void enc_done(encoded_t *e)
{
    json_decref(e->value);
    json_decref(e->key);
}

static const tm_dbz_opts_t base = {.schemas = true, .connector = "postgresql", .version = "x"};

/* Compact text of payload.after.<col> (or of its schema field), static. */
static const char *after(const encoded_t *e, const char *col, bool schema)
{
    static char buf[1024];
    json_t *v = NULL;
    if (!schema) {
        v = json_object_get(json_object_get(json_object_get(e->value, "payload"), "after"), col);
    } else {
        json_t *f = json_object_get(json_object_get(e->value, "schema"), "fields");
        json_t *fa = json_object_get(json_array_get(f, 1), "fields");
        for (size_t i = 0; i < json_array_size(fa); i++)
            if (strcmp(json_string_value(json_object_get(json_array_get(fa, i), "field")), col) ==
                0)
                v = json_array_get(fa, i);
    }
    char *t = v ? json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY) : NULL;
    snprintf(buf, sizeof(buf), "%s", t ? t : "(absent)");
    free(t);
    return buf;
}

static void test_binary_handling_mode(void)
{
    static const struct {
        tm_binary_mode_t mode;
        const char *value, *schema;
    } cases[] = {
        {TM_BINARY_BYTES, "\"3q2+7/v/\"", "{\"type\":\"bytes\",\"optional\":true,\"field\":\"b\"}"},
        {TM_BINARY_BASE64, "\"3q2+7/v/\"", "{\"type\":\"string\",\"optional\":true,\"field\":\"b\"}"},
        {TM_BINARY_BASE64_URL, "\"3q2-7_v_\"",
         "{\"type\":\"string\",\"optional\":true,\"field\":\"b\"}"},
        {TM_BINARY_HEX, "\"deadbeeffbff\"", "{\"type\":\"string\",\"optional\":true,\"field\":\"b\"}"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        tm_dbz_opts_t o = base;
        o.binary_mode = cases[i].mode;
        encoded_t e = enc(&o, TM_OP_CREATE);
        TM_CHECK_STR(after(&e, "b", false), cases[i].value);
        TM_CHECK_STR(after(&e, "b", true), cases[i].schema);
        TM_CHECK(e.agree);
        enc_done(&e);
    }
}

static void test_interval_handling_mode(void)
{
    tm_dbz_opts_t o = base;
    encoded_t e = enc(&o, TM_OP_CREATE);
    TM_CHECK_STR(after(&e, "iv", true), "{\"type\":\"int64\",\"optional\":true,\"name\":"
                                        "\"io.debezium.time.MicroDuration\",\"version\":1,"
                                        "\"field\":\"iv\"}");
    enc_done(&e);
    o.interval_mode = TM_INTERVAL_STRING;
    e = enc(&o, TM_OP_CREATE);
    TM_CHECK_STR(after(&e, "iv", false), "\"P1Y2M3DT4H5M6.5S\"");
    TM_CHECK_STR(after(&e, "iv", true), "{\"type\":\"string\",\"optional\":true,\"name\":"
                                        "\"io.debezium.time.Interval\",\"version\":1,"
                                        "\"field\":\"iv\"}");
    TM_CHECK(e.agree);
    enc_done(&e);

    /* The seconds as Debezium computes them: BigDecimal.valueOf(a double), at most 9 digits. */
    tm_buf_t b;
    tm_buf_init(&b);
    TM_CHECK(tm__dbz_interval_iso(-1, -1, &b) == 0 && tm_buf_putc(&b, '\0') == 0);
    TM_CHECK_STR(b.data, "\"P0Y-1M30DT10H29M59.999999S\"");
    tm_buf_clear(&b);
    TM_CHECK(tm__dbz_interval_iso(INT64_C(-1), 0, &b) == 0 && tm_buf_putc(&b, '\0') == 0);
    TM_CHECK_STR(b.data, "\"P0Y0M0DT0H0M-0.000001S\"");
    tm_buf_clear(&b);
    TM_CHECK(tm__dbz_interval_iso(0, 0, &b) == 0 && tm_buf_putc(&b, '\0') == 0);
    TM_CHECK_STR(b.data, "\"P0Y0M0DT0H0M0S\"");
    tm_buf_release(&b);
}

static void test_hstore_handling_mode(void)
{
    tm_dbz_opts_t o = base;
    encoded_t e = enc(&o, TM_OP_CREATE);
    /* java.util.HashMap order of "a", "b", "c\"q": buckets 1, 2, then c"q's. */
    TM_CHECK_STR(after(&e, "h", false), "\"{\\\"a\\\":\\\"1\\\",\\\"b\\\":null,\\\"c\\\\\\\"q\\\":\\\"x\\\"}\"");
    TM_CHECK_STR(after(&e, "h", true), "{\"type\":\"string\",\"optional\":true,\"name\":"
                                       "\"io.debezium.data.Json\",\"version\":1,\"field\":\"h\"}");
    TM_CHECK(e.agree);
    enc_done(&e);
    o.hstore_mode = TM_HSTORE_MAP;
    e = enc(&o, TM_OP_CREATE);
    TM_CHECK_STR(after(&e, "h", false), "{\"a\":\"1\",\"b\":null,\"c\\\"q\":\"x\"}");
    TM_CHECK_STR(after(&e, "h", true),
                 "{\"type\":\"map\",\"keys\":{\"type\":\"string\",\"optional\":false},\"values\":"
                 "{\"type\":\"string\",\"optional\":true},\"optional\":true,\"field\":\"h\"}");
    TM_CHECK(e.agree);
    enc_done(&e);

    /* HashMap order, not text order: buckets aa 0, q 1, b 2 (hash & 15). */
    tm_buf_t b;
    tm_buf_init(&b);
    static const char t[] = "\"b\"=>\"2\", \"aa\"=>\"1\", \"q\"=>\"3\"";
    TM_CHECK(tm__dbz_hstore_json(t, sizeof(t) - 1, &b) == 0 && tm_buf_putc(&b, '\0') == 0);
    TM_CHECK_STR(b.data, "{\"aa\":\"1\",\"q\":\"3\",\"b\":\"2\"}");
    tm_buf_clear(&b);
    TM_CHECK(tm__dbz_hstore_json("\"a\"=>", 5, &b) == TM_EINVAL);
    tm_buf_release(&b);
}

static void test_include_unknown_datatypes(void)
{
    tm_dbz_opts_t o = base;
    encoded_t e = enc(&o, TM_OP_CREATE);
    /* Debezium's default: a column of a type without a converter is left out. */
    TM_CHECK_STR(after(&e, "bx", false), "(absent)");
    TM_CHECK_STR(after(&e, "bx", true), "(absent)");
    TM_CHECK(e.agree);
    enc_done(&e);
    o.include_unknown = true;
    e = enc(&o, TM_OP_CREATE);
    TM_CHECK_STR(after(&e, "bx", false), "\"KDAsMSk=\"");
    TM_CHECK_STR(after(&e, "bx", true), "{\"type\":\"bytes\",\"optional\":true,\"field\":\"bx\"}");
    TM_CHECK(e.agree);
    enc_done(&e);
    o.binary_mode = TM_BINARY_HEX;
    e = enc(&o, TM_OP_CREATE);
    TM_CHECK_STR(after(&e, "bx", false), "\"28302c3129\"");
    TM_CHECK_STR(after(&e, "bx", true), "{\"type\":\"string\",\"optional\":true,\"field\":\"bx\"}");
    enc_done(&e);
}

static void test_column_lists(void)
{
    tm_dbz_opts_t o = base;
    o.column_exclude = "public\\.items\\.(name|B), other.x.y";
    encoded_t e = enc(&o, TM_OP_UPDATE);
    TM_CHECK_STR(after(&e, "name", false), "(absent)");
    TM_CHECK_STR(after(&e, "b", false), "(absent)"); /* case ignored */
    TM_CHECK_STR(after(&e, "b", true), "(absent)");
    TM_CHECK_STR(after(&e, "code", false), "\"A-2\"");
    TM_CHECK(json_object_get(json_object_get(json_object_get(e.value, "payload"), "before"),
                             "name") == NULL);
    TM_CHECK(e.agree);
    enc_done(&e);

    o = base;
    /* Matched whole: "public.items.i" does not match "id". */
    o.column_include = "public.items.i, .*\\.code";
    e = enc(&o, TM_OP_CREATE);
    char *t = json_dumps(json_object_get(json_object_get(e.value, "payload"), "after"),
                         JSON_COMPACT | JSON_PRESERVE_ORDER);
    TM_CHECK_STR(t, "{\"code\":\"A-2\"}");
    free(t);
    /* The key is not filtered. */
    t = json_dumps(json_object_get(e.key, "payload"), JSON_COMPACT);
    TM_CHECK_STR(t, "{\"id\":1}");
    free(t);
    /* …but its schema says optional for a column the value leaves out, as Debezium's. */
    t = json_dumps(json_object_get(json_object_get(e.key, "schema"), "fields"), JSON_COMPACT);
    TM_CHECK_STR(t, "[{\"type\":\"int32\",\"optional\":true,\"field\":\"id\"}]");
    free(t);
    TM_CHECK(e.agree);
    enc_done(&e);

    /* Both lists, or a bad regex: a configuration error naming the option. */
    char err[256] = "";
    tm_dbz_encoder_t *en = NULL;
    o.column_exclude = "x";
    TM_CHECK_INT(tm_dbz_encoder_open(&o, &en, err, sizeof(err)), TM_ECONFIG);
    TM_CHECK(strstr(err, "column_include_list") != NULL && en == NULL);
    o = base;
    o.column_exclude = "a(b";
    TM_CHECK_INT(tm_dbz_encoder_open(&o, &en, err, sizeof(err)), TM_ECONFIG);
    TM_CHECK(strstr(err, "column_exclude_list") != NULL && strstr(err, "a(b") != NULL);
    TM_CHECK(tm_dbz_encoder_new(&o) == NULL);
}

static void test_message_key_columns(void)
{
    tm_dbz_opts_t o = base;
    /* Table order (code after name), whatever the option's order; other tables untouched. */
    o.key_columns = "other.t:x; public\\.it.*:code,NAME";
    encoded_t e = enc(&o, TM_OP_CREATE);
    char *t = json_dumps(e.key, JSON_COMPACT | JSON_PRESERVE_ORDER);
    TM_CHECK_STR(t, "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":"
                    "true,\"field\":\"name\"},{\"type\":\"string\",\"optional\":true,\"field\":"
                    "\"code\"}],\"optional\":false,\"name\":\"shop.public.items.Key\"},"
                    "\"payload\":{\"name\":\"widget\",\"code\":\"A-2\"}}");
    free(t);
    TM_CHECK(e.agree);
    enc_done(&e);

    /* A key change is decided on the custom key: code A-1 → A-2 is one. */
    tm_dbz_encoder_t *en = NULL;
    char err[256];
    TM_REQUIRE(tm_dbz_encoder_open(&o, &en, err, sizeof(err)) == 0);
    tm_schema_t *s = table();
    tm_batch_t *b = tm_batch_new();
    tm_record_t *r = tm_batch_add(b, s, TM_OP_UPDATE);
    r->before = row(b, s, 1, "A-1");
    r->after = row(b, s, 1, "A-2");
    TM_CHECK(!tm_dbz_key_changed(r));
    TM_CHECK(tm_dbz_encoder_key_changed(en, r));
    r->before = row(b, s, 2, "A-2");
    TM_CHECK(tm_dbz_key_changed(r));
    TM_CHECK(!tm_dbz_encoder_key_changed(en, r));
    tm_batch_unref(b);
    tm_schema_unref(s);
    tm_dbz_encoder_free(en);

    /* A regex that matches no column of the table: the primary key. */
    o.key_columns = "public.items:nothing";
    e = enc(&o, TM_OP_DELETE);
    t = json_dumps(json_object_get(e.key, "payload"), JSON_COMPACT);
    TM_CHECK_STR(t, "{\"id\":1}");
    free(t);
    enc_done(&e);
    o.key_columns = "public.items";
    TM_CHECK_INT(tm_dbz_encoder_open(&o, &en, err, sizeof(err)), TM_ECONFIG);
    TM_CHECK(strstr(err, "message_key_columns") != NULL);
}

int main(void)
{
    TM_RUN(test_binary_handling_mode);
    TM_RUN(test_interval_handling_mode);
    TM_RUN(test_hstore_handling_mode);
    TM_RUN(test_include_unknown_datatypes);
    TM_RUN(test_column_lists);
    TM_RUN(test_message_key_columns);
    return tm_test_done();
}
