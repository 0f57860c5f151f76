/*
 * mysql_source.c — Debezium's MySQL/MariaDB source block (format-mysql-source).
 *
 * Role: the contract of records from the MySQL source (tm_source_info_t's
 * MySQL block, row.h) as the Debezium encoder writes them.
 *   1. Real Debezium MySQL events (tests/data/debezium/risingwave, streamed
 *      rows with server_id, file, pos, row and thread): a record carrying the
 *      same binlog coordinates encodes to a source block with the same keys in
 *      the same order (Debezium 3 adds ts_us and ts_ns after sequence), the
 *      same values, and the same source schema fields.
 *   2. MariaDB records get Debezium's MariaDB connector shape ("mariadb",
 *      io.debezium.connector.mariadb.Source) and its GTID text; MySQL GTIDs
 *      are uuid:seq.
 *   3. The fast encoder and the reference encoder agree on these records.
 *   4. A record copied into another batch keeps its block after the first
 *      batch is freed (the names are interned, tm_intern).
 *   6. Debezium MySQL events read back (the Kafka source's decoder) keep
 *      their binlog fields: decoded and encoded again, the block is the same.
 *   5. Spatial columns (MySQL's SRID + WKB bytes) become Debezium's Geometry
 *      and Point structs, as in the flink-cdc vector of Debezium's output.
 *
 * Thread: single-threaded.
 */
#include "core/error.h"
#include "core/row.h"
#include "format/debezium.h"
#include "tm_test.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static tm_schema_t *customers(const char *source_name, const char *db, const char *table)
{
    tm_schema_t *s = tm_schema_new(1);
    tm_schema_set_str(&s->source_name, source_name);
    tm_schema_set_str(&s->db, db);
    tm_schema_set_str(&s->namespace, db);
    tm_schema_set_str(&s->table, table);
    tm_schema_set_str(&s->cols[0].name, "id");
    s->cols[0].type = TM_T_INT32;
    s->cols[0].key_index = 0;
    s->cols[0].length = -1;
    s->cols[0].precision = -1;
    tm_schema_finish(s);
    return s;
}

static tm_record_t *mk_record(tm_batch_t *b, tm_schema_t *s, int64_t id)
{
    tm_record_t *r = tm_batch_add(b, s, TM_OP_CREATE);
    r->after = tm_batch_new_row(b, s);
    tm_row_set_null(r->after, 0, false);
    r->after->vals[0].u.i64 = id;
    r->proc_us = INT64_C(1661328391500000);
    return r;
}

static json_t *encode_json(tm_dbz_encoder_t *enc, const tm_record_t *r)
{
    tm_buf_t out;
    tm_buf_init(&out);
    int rc = tm_dbz_encode_value(enc, r, &out);
    TM_CHECK_INT(rc, 0);
    json_error_t e;
    json_t *j = rc == 0 ? json_loads(out.data, 0, &e) : NULL;
    tm_buf_release(&out);
    TM_CHECK(j != NULL);
    return j;
}

/* ---- 1. against real Debezium MySQL events ---- */

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf != NULL && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    if (buf != NULL)
        buf[n] = '\0';
    fclose(f);
    return buf;
}

/* The keys of an object, in order, with ts_us and ts_ns after sequence when `add_ts`. */
static void keys_of(json_t *o, bool add_ts, char *out, size_t n)
{
    out[0] = '\0';
    const char *k;
    json_t *v;
    size_t len = 0;
    json_object_foreach(o, k, v) {
        len += (size_t)snprintf(out + len, n - len, "%s,", k);
        if (add_ts && strcmp(k, "sequence") == 0)
            len += (size_t)snprintf(out + len, n - len, "ts_us,ts_ns,");
    }
}

/* json_equal, with two absent values equal (jansson's says they differ). */
static bool same(json_t *a, json_t *b)
{
    return (a == NULL && b == NULL) || json_equal(a, b);
}

static json_t *field_named(json_t *fields, const char *name)
{
    size_t i;
    json_t *f;
    json_array_foreach(fields, i, f) {
        if (strcmp(json_string_value(json_object_get(f, "field")), name) == 0)
            return f;
    }
    return NULL;
}

static void check_event(const char *line)
{
    json_error_t e;
    json_t *ev = json_loads(line, JSON_DECODE_ANY, &e);
    TM_REQUIRE(ev != NULL);
    json_t *want = json_object_get(json_object_get(ev, "payload"), "source");
    json_t *want_schema = NULL;
    size_t i;
    json_t *f;
    json_array_foreach(json_object_get(json_object_get(ev, "schema"), "fields"), i, f) {
        if (strcmp(json_string_value(json_object_get(f, "field")), "source") == 0)
            want_schema = f;
    }
    TM_REQUIRE(want != NULL && want_schema != NULL);

    /* A record with the event's binlog coordinates, as my_stream.c fills it. */
    tm_schema_t *s = customers(json_string_value(json_object_get(want, "name")),
                               json_string_value(json_object_get(want, "db")),
                               json_string_value(json_object_get(want, "table")));
    tm_batch_t *b = tm_batch_new();
    tm_record_t *r = mk_record(b, s, 1);
    r->src.ts_us = json_integer_value(json_object_get(want, "ts_ms")) * 1000;
    r->src.kind = TM_SOURCE_MYSQL;
    tm_my_source_t *my = &r->src.u.my;
    const char *file = json_string_value(json_object_get(want, "file"));
    my->file = tm_intern(file, strlen(file));
    my->server_id = (uint32_t)json_integer_value(json_object_get(want, "server_id"));
    my->event_pos = (uint32_t)json_integer_value(json_object_get(want, "pos"));
    my->row = (uint32_t)json_integer_value(json_object_get(want, "row"));
    my->thread = (uint32_t)json_integer_value(json_object_get(want, "thread"));
    TM_CHECK(json_is_null(json_object_get(want, "gtid")));

    /* The file sink's encoder: configured for PostgreSQL, the record decides the shape. */
    tm_dbz_opts_t o = {.schemas = true,
                       .connector = "postgresql",
                       .version = json_string_value(json_object_get(want, "version"))};
    tm_dbz_encoder_t *enc = tm_dbz_encoder_new(&o);
    json_t *got_ev = encode_json(enc, r);
    json_t *got = json_object_get(json_object_get(got_ev, "payload"), "source");
    TM_REQUIRE(got != NULL);

    char wk[1024], gk[1024];
    keys_of(want, true, wk, sizeof(wk));
    keys_of(got, false, gk, sizeof(gk));
    TM_CHECK_STR(gk, wk);
    const char *k;
    json_t *v;
    json_object_foreach(want, k, v) {
        if (!json_equal(json_object_get(got, k), v)) {
            char *a = json_dumps(json_object_get(got, k), JSON_ENCODE_ANY);
            char *c = json_dumps(v, JSON_ENCODE_ANY);
            fprintf(stderr, "source.%s: got %s, Debezium wrote %s\n", k, a, c);
            free(a);
            free(c);
            TM_CHECK(false);
        }
    }
    TM_CHECK_INT(json_integer_value(json_object_get(got, "ts_us")),
                 json_integer_value(json_object_get(want, "ts_ms")) * 1000);

    /* The schema: the same fields, types and optionality; the same struct name. */
    json_t *got_schema = NULL;
    json_array_foreach(json_object_get(json_object_get(got_ev, "schema"), "fields"), i, f) {
        if (strcmp(json_string_value(json_object_get(f, "field")), "source") == 0)
            got_schema = f;
    }
    TM_REQUIRE(got_schema != NULL);
    TM_CHECK_STR(json_string_value(json_object_get(got_schema, "name")),
                 json_string_value(json_object_get(want_schema, "name")));
    TM_CHECK(json_equal(json_object_get(got_schema, "optional"),
                        json_object_get(want_schema, "optional")));
    json_t *wf = json_object_get(want_schema, "fields");
    json_t *gf = json_object_get(got_schema, "fields");
    TM_CHECK_INT((long long)json_array_size(gf), (long long)json_array_size(wf) + 2);
    json_array_foreach(wf, i, f) {
        const char *name = json_string_value(json_object_get(f, "field"));
        json_t *g = field_named(gf, name);
        TM_REQUIRE(g != NULL);
        TM_CHECK(same(json_object_get(g, "type"), json_object_get(f, "type")));
        TM_CHECK(same(json_object_get(g, "optional"), json_object_get(f, "optional")));
        TM_CHECK(same(json_object_get(g, "name"), json_object_get(f, "name")));
    }
    for (size_t j = 0; j < json_array_size(gf); j++) {
        const char *name = json_string_value(json_object_get(json_array_get(gf, j), "field"));
        bool extra = strcmp(name, "ts_us") == 0 || strcmp(name, "ts_ns") == 0;
        TM_CHECK(extra || field_named(wf, name) != NULL);
    }

    /* The reference encoder writes the same event. */
    json_t *ref = tm_dbz_encode_value_json(enc, r);
    TM_CHECK(ref != NULL && json_equal(ref, got_ev));
    json_decref(ref);

    /* 6. The event decoded (as the Kafka source does) has the same block, and writes it again. */
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(NULL, NULL);
    tm_record_t *back = NULL;
    char err[256] = "";
    int rc = tm_dbz_decode(dec, line, strlen(line), b, &back, err, sizeof(err));
    TM_CHECK_INT(rc, 0);
    if (rc == 0) {
        TM_CHECK_INT(back->src.kind, TM_SOURCE_MYSQL);
        TM_CHECK(back->src.u.my.file == my->file); /* interned: the same pointer */
        TM_CHECK_INT(back->src.u.my.event_pos, my->event_pos);
        TM_CHECK_INT(back->src.u.my.row, my->row);
        TM_CHECK_INT(back->src.u.my.server_id, my->server_id);
        TM_CHECK_INT(back->src.u.my.thread, my->thread);
        TM_CHECK_INT(back->src.u.my.gtid_kind, TM_MY_GTID_NONE);
        TM_CHECK(!back->src.u.my.mariadb);
        json_t *again = encode_json(enc, back);
        json_t *src2 = json_object_get(json_object_get(again, "payload"), "source");
        json_object_foreach(want, k, v) {
            TM_CHECK(same(json_object_get(src2, k), v));
        }
        json_decref(again);
    } else {
        fprintf(stderr, "decode: %s\n", err);
    }
    tm_dbz_decoder_free(dec);
    json_decref(got_ev);
    json_decref(ev);
    tm_dbz_encoder_free(enc);
    tm_batch_unref(b);
    tm_schema_unref(s);
}

static void test_debezium_mysql_events(void)
{
    const char *root = getenv("TM_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof(path), "%s/debezium/risingwave/debezium_log.1",
             root ? root : "tests/data");
    char *text = read_file(path);
    TM_REQUIRE(text != NULL);
    int streamed = 0;
    for (char *line = strtok(text, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        /* Streamed events carry real binlog coordinates (snapshot reads have server_id 0). */
        if (strstr(line, "\"snapshot\":\"false\"") == NULL)
            continue;
        check_event(line);
        streamed++;
    }
    TM_CHECK_INT(streamed, 6);
    free(text);
}

/* ---- 2, 3, 4. MariaDB, GTIDs, copies ---- */

static void test_mariadb_and_gtids(void)
{
    tm_schema_t *s = customers("inv", "inventory", "customers");
    tm_batch_t *b = tm_batch_new();
    tm_dbz_opts_t o = {.schemas = false, .connector = "postgresql", .version = "3.0.0"};
    tm_dbz_encoder_t *enc = tm_dbz_encoder_new(&o);

    tm_record_t *r = mk_record(b, s, 7);
    r->src.ts_us = INT64_C(1700000000000000);
    r->src.kind = TM_SOURCE_MYSQL;
    r->src.u.my = (tm_my_source_t){.file = tm_intern("mariadb-bin.000002", 18),
                                   .server_id = 1,
                                   .event_pos = 1234,
                                   .row = 2,
                                   .gtid_kind = TM_MY_GTID_MARIADB,
                                   .gtid_domain = 0,
                                   .gtid_server = 1,
                                   .gtid_seq = 42,
                                   .mariadb = true};
    tm_buf_t out;
    tm_buf_init(&out);
    TM_CHECK_INT(tm_dbz_encode_value(enc, r, &out), 0);
    TM_CHECK(strstr(out.data,
                    "\"source\":{\"version\":\"3.0.0\",\"connector\":\"mariadb\",\"name\":\"inv\","
                    "\"ts_ms\":1700000000000,\"snapshot\":\"false\",\"db\":\"inventory\","
                    "\"sequence\":null,\"ts_us\":1700000000000000,\"ts_ns\":1700000000000000000,"
                    "\"table\":\"customers\",\"server_id\":1,\"gtid\":\"0-1-42\","
                    "\"file\":\"mariadb-bin.000002\",\"pos\":1234,\"row\":2,\"thread\":null,"
                    "\"query\":null}") != NULL);
    json_t *ref = tm_dbz_encode_value_json(enc, r);
    json_t *fast = json_loads(out.data, 0, NULL);
    TM_CHECK(ref != NULL && fast != NULL && json_equal(ref, fast));
    json_decref(ref);
    json_decref(fast);

    /* With schemas: Debezium 3's MariaDB connector names its source struct so. */
    tm_dbz_opts_t os = o;
    os.schemas = true;
    tm_dbz_encoder_t *enc2 = tm_dbz_encoder_new(&os);
    out.len = 0;
    TM_CHECK_INT(tm_dbz_encode_value(enc2, r, &out), 0);
    TM_CHECK(strstr(out.data, "\"name\":\"io.debezium.connector.mariadb.Source\"") != NULL);
    TM_CHECK(strstr(out.data, "\"name\":\"inv.inventory.customers.Envelope\"") != NULL);

    /* MySQL: uuid:seq, a thread, connector "mysql"; the same encoder caches both shapes. */
    tm_record_t *m = mk_record(b, s, 8);
    m->src.kind = TM_SOURCE_MYSQL;
    const char *uuid = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    m->src.u.my = (tm_my_source_t){.file = tm_intern("binlog.000009", 13),
                                   .server_id = 5,
                                   .event_pos = 99,
                                   .thread = 12,
                                   .gtid_kind = TM_MY_GTID_MYSQL,
                                   .gtid_uuid = tm_intern(uuid, strlen(uuid)),
                                   .gtid_seq = 23};
    out.len = 0;
    TM_CHECK_INT(tm_dbz_encode_value(enc2, m, &out), 0);
    TM_CHECK(strstr(out.data, "\"connector\":\"mysql\"") != NULL);
    TM_CHECK(strstr(out.data, "\"name\":\"io.debezium.connector.mysql.Source\"") != NULL);
    TM_CHECK(strstr(out.data, "\"server_id\":5,"
                              "\"gtid\":\"3e11fa47-71ca-11e1-9e33-c80aa9429562:23\","
                              "\"file\":\"binlog.000009\",\"pos\":99,\"row\":0,"
                              "\"thread\":12,") != NULL);
    ref = tm_dbz_encode_value_json(enc2, m);
    fast = json_loads(out.data, 0, NULL);
    TM_CHECK(ref != NULL && fast != NULL && json_equal(ref, fast));
    json_decref(ref);
    json_decref(fast);

    /* The GTID texts read back into the block (the decoder's path). */
    tm_my_source_t g;
    memset(&g, 0, sizeof(g));
    tm_my_source_set_gtid(&g, "0-1-42", 6);
    TM_CHECK(g.gtid_kind == TM_MY_GTID_MARIADB && g.gtid_domain == 0 && g.gtid_server == 1 &&
             g.gtid_seq == 42);
    tm_my_source_set_gtid(&g, "3e11fa47-71ca-11e1-9e33-c80aa9429562:23", 39);
    TM_CHECK(g.gtid_kind == TM_MY_GTID_MYSQL && g.gtid_seq == 23 &&
             g.gtid_uuid == tm_intern(uuid, strlen(uuid)));
    static const char *const bad[] = {"", "0-1", "0-1-", "a-1-2", "0-1-2-3", "0-4294967296-1",
                                      ":5", "u:", "u:5:6", "u:x", "0-1-5,1-2-9",
                                      "0-1-99999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        tm_my_source_set_gtid(&g, bad[i], strlen(bad[i]));
        TM_CHECK_INT(g.gtid_kind, TM_MY_GTID_NONE);
    }

    /* Transaction metadata is PostgreSQL's: a MySQL record is outside any xid. */
    TM_CHECK_INT(tm_source_pg(&m->src)->xid, 0);

    /* 4. A copy in another batch outlives the first batch. */
    tm_batch_t *b2 = tm_batch_new();
    tm_record_t *c = mk_record(b2, s, 8);
    c->src = m->src;
    tm_batch_unref(b);
    tm_buf_t out2;
    tm_buf_init(&out2);
    TM_CHECK_INT(tm_dbz_encode_value(enc2, c, &out2), 0);
    TM_CHECK_STR(out2.data, out.data);
    tm_buf_release(&out2);

    tm_buf_release(&out);
    tm_dbz_encoder_free(enc);
    tm_dbz_encoder_free(enc2);
    tm_batch_unref(b2);
    tm_schema_unref(s);
}

/* ---- 5. Geometry and Point ---- */

static size_t unbase64(const char *in, uint8_t *out)
{
    static const char *abc = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;
    for (; *in && *in != '='; in++) {
        const char *p = strchr(abc, *in);
        acc = acc << 6 | (uint32_t)(p - abc);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[n++] = (uint8_t)(acc >> bits);
        }
    }
    return n;
}

static void test_geometry(void)
{
    const char *root = getenv("TM_TEST_DATA");
    char path[1024];
    snprintf(path, sizeof(path), "%s/debezium/flink-cdc/debezium-data-schema-exclude.json",
             root ? root : "tests/data");
    json_error_t e;
    json_t *doc = json_load_file(path, 0, &e);
    TM_REQUIRE(doc != NULL);
    json_t *want = json_object_get(json_object_get(doc, "expected_binlog"), "after");
    static const char *const cols[] = {"point_c", "geometry_c", "linestring_c", "polygon_c",
                                       "multipoint_c", "multiline_c", "multipolygon_c",
                                       "geometrycollection_c"};
    int ncols = (int)(sizeof(cols) / sizeof(cols[0])) + 1;
    tm_schema_t *s = tm_schema_new(ncols);
    tm_schema_set_str(&s->source_name, "inv");
    tm_schema_set_str(&s->db, "db");
    tm_schema_set_str(&s->namespace, "db");
    tm_schema_set_str(&s->table, "full_types");
    for (int i = 0; i < ncols; i++) {
        tm_column_t *c = &s->cols[i];
        tm_schema_set_str(&c->name, i < ncols - 1 ? cols[i] : "srid_c");
        c->type = TM_T_BYTES;
        c->nullable = true;
        c->key_index = -1;
        c->length = c->precision = -1;
        tm_schema_set_str(&c->semantic, i == 0 ? "io.debezium.data.geometry.Point"
                                               : "io.debezium.data.geometry.Geometry");
    }
    tm_schema_finish(s);
    tm_batch_t *b = tm_batch_new();
    tm_record_t *r = tm_batch_add(b, s, TM_OP_CREATE);
    r->after = tm_batch_new_row(b, s);
    for (int i = 0; i < ncols - 1; i++) {
        /* MySQL's value: SRID 0, then the WKB Debezium wrote. */
        uint8_t buf[512] = {0};
        json_t *v = json_object_get(want, cols[i]);
        TM_REQUIRE(v != NULL);
        size_t n = unbase64(json_string_value(json_object_get(v, "wkb")), buf + 4);
        tm_row_set_null(r->after, i, false);
        tm_batch_set_var(b, &r->after->vals[i], buf, n + 4);
    }
    /* An SRID Debezium writes as a number. */
    static const uint8_t srid4326[] = {0xE6, 0x10, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xF0,
                                       0x3F, 0, 0, 0, 0, 0, 0, 0, 0x40};
    tm_row_set_null(r->after, ncols - 1, false);
    tm_batch_set_var(b, &r->after->vals[ncols - 1], srid4326, sizeof(srid4326));

    tm_dbz_opts_t o = {.schemas = true, .connector = "mysql", .version = "3.0.0",
                       .binary_mode = TM_BINARY_HEX};
    tm_dbz_encoder_t *enc = tm_dbz_encoder_new(&o);
    json_t *got = encode_json(enc, r);
    json_t *after = json_object_get(json_object_get(got, "payload"), "after");
    for (int i = 0; i < ncols - 1; i++) {
        json_t *g = json_object_get(after, cols[i]), *w = json_object_get(want, cols[i]);
        if (!json_equal(g, w)) {
            char *a = json_dumps(g, 0), *c = json_dumps(w, 0);
            fprintf(stderr, "%s: got %s, Debezium wrote %s\n", cols[i], a, c);
            free(a);
            free(c);
            TM_CHECK(false);
        }
    }
    json_t *sr = json_object_get(after, "srid_c");
    TM_CHECK_INT(json_integer_value(json_object_get(sr, "srid")), 4326);
    TM_CHECK_STR(json_string_value(json_object_get(sr, "wkb")), "AQEAAAAAAAAAAADwPwAAAAAAAABA");
    /* The schema: Debezium's structs (binary.handling.mode does not touch their wkb). */
    tm_buf_t out;
    tm_buf_init(&out);
    TM_CHECK_INT(tm_dbz_encode_value(enc, r, &out), 0);
    static const char point_schema[] =
        "{\"type\":\"struct\",\"fields\":["
        "{\"type\":\"double\",\"optional\":false,\"field\":\"x\"},"
        "{\"type\":\"double\",\"optional\":false,\"field\":\"y\"},"
        "{\"type\":\"bytes\",\"optional\":true,\"field\":\"wkb\"},"
        "{\"type\":\"int32\",\"optional\":true,\"field\":\"srid\"}],\"optional\":true,"
        "\"name\":\"io.debezium.data.geometry.Point\",\"version\":1,"
        "\"doc\":\"Geometry (POINT)\",\"field\":\"point_c\"}";
    static const char geometry_schema[] =
        "{\"type\":\"struct\",\"fields\":["
        "{\"type\":\"bytes\",\"optional\":false,\"field\":\"wkb\"},"
        "{\"type\":\"int32\",\"optional\":true,\"field\":\"srid\"}],\"optional\":true,"
        "\"name\":\"io.debezium.data.geometry.Geometry\",\"version\":1,"
        "\"doc\":\"Geometry\",\"field\":\"geometry_c\"}";
    TM_CHECK(strstr(out.data, point_schema) != NULL);
    TM_CHECK(strstr(out.data, geometry_schema) != NULL);
    json_t *ref = tm_dbz_encode_value_json(enc, r);
    TM_CHECK(ref != NULL && json_equal(ref, got));
    json_decref(ref);
    tm_buf_release(&out);
    json_decref(got);
    json_decref(doc);
    tm_dbz_encoder_free(enc);
    tm_batch_unref(b);
    tm_schema_unref(s);
}

static void test_intern(void)
{
    char a[] = "binlog.000001", bb[] = "binlog.000001";
    const char *x = tm_intern(a, strlen(a));
    const char *y = tm_intern(bb, strlen(bb));
    const char *z = tm_intern("binlog.000002", 13);
    TM_CHECK(x != NULL && x == y && x != a);
    TM_CHECK(z != NULL && z != x);
    TM_CHECK_STR(x, "binlog.000001");
    /* The length decides, not a NUL: a prefix is another text. */
    TM_CHECK(tm_intern(a, 6) != x);
    TM_CHECK_STR(tm_intern(a, 6), "binlog");
}

int main(void)
{
    TM_RUN(test_debezium_mysql_events);
    TM_RUN(test_mariadb_and_gtids);
    TM_RUN(test_geometry);
    TM_RUN(test_intern);
    return tm_test_done();
}
