/*
 * roundtrip.c — decode(encode(x)) == x (format-roundtrip).
 *
 * Role: DESIGN §3's contract.  Records of every op over a table with every
 * column type — nulls, unchanged-TOAST placeholders, negative/zero/huge and
 * variable-scale numerics, timestamps before 1970 and past 9999, NaN floats —
 * are encoded and decoded back with the same declared schema, datum by datum,
 * in every decimal/time mode, with schemas on and off.  With schemas on the
 * decoder must also get there from the schema part alone.  The decoder's
 * contract for tombstones, errors and its schema cache is checked here too.
 *
 * The losses a mode implies are part of the contract: NaN NUMERIC becomes
 * null in precise mode (as in Debezium), a fixed-scale NUMERIC comes back at
 * the column's scale.  fmt_datum_eq() knows them.
 *
 * Thread: single-threaded.
 */
#include "core/error.h"
#include "fmt_util.h"
#include "tm_test.h"

static const tm_op_t ops[] = {TM_OP_READ,   TM_OP_CREATE,   TM_OP_UPDATE,
                              TM_OP_DELETE, TM_OP_TRUNCATE, TM_OP_MESSAGE};

static int reported;

static bool str_eq(const char *a, const char *b)
{
    return (a == NULL || b == NULL) ? a == b : strcmp(a, b) == 0;
}

static void check_rows(const tm_schema_t *s, const tm_dbz_opts_t *o, const tm_row_t *a,
                       const tm_row_t *b, const char *image, const char *label)
{
    TM_CHECK((a == NULL) == (b == NULL));
    if (a == NULL || b == NULL)
        return;
    for (int i = 0; i < s->ncols; i++) {
        char why[600];
        bool ok = fmt_datum_eq(&s->cols[i], o, a, b, i, why, sizeof(why));
        if (!ok && reported++ < 10)
            fprintf(stderr, "%s: %s.%s (%s): %s\n", label, image, s->cols[i].name,
                    tm_type_name(s->cols[i].type), why);
        TM_CHECK(ok);
    }
}

static void check_record(const tm_record_t *a, const tm_record_t *b, const tm_dbz_opts_t *o,
                         const char *label)
{
    TM_CHECK_INT(b->op, a->op);
    /* Debezium's MessageValue has ts_ms only: messages keep milliseconds. */
    if (a->op == TM_OP_MESSAGE)
        TM_CHECK_INT(b->proc_us, tm__dbz_floordiv(a->proc_us, 1000) * 1000);
    else
        TM_CHECK_INT(b->proc_us, a->proc_us);
    TM_CHECK_INT(b->src.ts_us, a->src.ts_us);
    TM_CHECK_INT(b->src.pos, a->src.pos);
    TM_CHECK_INT(b->src.u.pg.commit_lsn, a->src.u.pg.commit_lsn);
    TM_CHECK_INT(b->src.u.pg.xid, a->src.u.pg.xid);
    TM_CHECK_INT(b->src.snapshot, a->src.snapshot);
    TM_CHECK(str_eq(b->schema->source_name, a->schema->source_name));
    TM_CHECK(str_eq(b->schema->db, a->schema->db));
    TM_CHECK(str_eq(b->schema->table, a->schema->table) || a->op == TM_OP_MESSAGE);
    TM_CHECK(str_eq(b->schema->namespace, a->schema->namespace) || a->op == TM_OP_MESSAGE);
    if (a->op == TM_OP_MESSAGE) {
        TM_CHECK(str_eq(b->msg_prefix, a->msg_prefix));
        TM_CHECK_INT(b->msg_len, a->msg_len);
        TM_CHECK(a->msg_len == 0 || memcmp(a->msg_content, b->msg_content, a->msg_len) == 0);
        return;
    }
    check_rows(a->schema, o, a->before, b->before, "before", label);
    check_rows(a->schema, o, a->after, b->after, "after", label);
}

static void fill_record(fmt_gen_t *g, tm_batch_t *b, tm_record_t *r, const tm_schema_t *s,
                        const tm_dbz_opts_t *o)
{
    if (r->op == TM_OP_CREATE || r->op == TM_OP_READ || r->op == TM_OP_UPDATE)
        r->after = fmt_gen_row(g, b, s, o, 15, 5);
    if (r->op == TM_OP_DELETE || (r->op == TM_OP_UPDATE && fmt_chance(g, 70)))
        r->before = fmt_gen_row(g, b, s, o, 15, 5);
    if (r->op == TM_OP_MESSAGE) {
        static const char *const prefixes[] = {"heartbeat", "", NULL};
        uint8_t *content = tm_arena_alloc(&b->arena, 48);
        for (int i = 0; i < 48; i++)
            content[i] = (uint8_t)fmt_next(g);
        r->msg_prefix = prefixes[fmt_next(g) % 3];
        r->msg_content = content;
        r->msg_len = (uint32_t)fmt_range(g, 0, 48);
    }
    r->proc_us = fmt_range(g, INT64_C(-9000000000000000), INT64_C(9000000000000000));
    r->src.ts_us = fmt_range(g, INT64_C(-9000000000000000), INT64_C(9000000000000000));
    r->src.kind = TM_SOURCE_POSTGRES;
    r->src.pos = fmt_chance(g, 20) ? 0 : fmt_next(g) >> 2;
    r->src.u.pg.commit_lsn = fmt_chance(g, 30) ? 0 : fmt_next(g) >> 2;
    r->src.u.pg.xid = fmt_chance(g, 20) ? 0 : (uint32_t)fmt_next(g);
    r->src.snapshot = (uint8_t)fmt_range(g, 0, 3);
}

/*
 * Encodes n random records with `o` and decodes them with a decoder built
 * with `declared` (NULL: the schema part or inference decides).
 */
static void run(const tm_dbz_opts_t *o, bool declared, uint64_t seed, int n, const char *label)
{
    tm_schema_t *s = fmt_schema(true, o->connector);
    tm_dbz_encoder_t *enc = tm_dbz_encoder_new(o);
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(o, declared ? s : NULL);
    tm_batch_t *src = tm_batch_new(), *dst = tm_batch_new();
    tm_buf_t out;
    tm_buf_init(&out);
    fmt_gen_t g = {seed};
    const tm_schema_t *first = NULL;
    for (int k = 0; k < n; k++) {
        if (tm_batch_full(src) || tm_batch_full(dst)) {
            tm_batch_unref(src);
            tm_batch_unref(dst);
            src = tm_batch_new();
            dst = tm_batch_new();
        }
        tm_record_t *r = tm_batch_add(src, s, ops[k % 6]);
        fill_record(&g, src, r, s, o);
        tm_buf_clear(&out);
        TM_REQUIRE(tm_dbz_encode_value(enc, r, &out) == 0);
        tm_record_t *back = NULL;
        char err[256] = "";
        int rc = tm_dbz_decode(dec, out.data, out.len, dst, &back, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "%s: decode failed (%d: %s) on %s\n", label, rc, err, out.data);
        TM_REQUIRE(rc == 0 && back != NULL);
        check_record(r, back, o, label);
        /* One table, one derived schema object (the decoder's cache). */
        if (r->op != TM_OP_MESSAGE) {
            if (first == NULL)
                first = back->schema;
            TM_CHECK(back->schema == first);
        }
        if (!declared && r->op != TM_OP_MESSAGE) {
            /* From the schema part alone the column types come back too. */
            for (int i = 0; i < s->ncols; i++) {
                tm_type_t want = s->cols[i].type == TM_T_OTHER ? TM_T_TEXT : s->cols[i].type;
                TM_CHECK_INT(back->schema->cols[i].type, want);
                TM_CHECK_INT(back->schema->cols[i].nullable, s->cols[i].nullable);
            }
            TM_CHECK_INT(back->schema->cols[25].elem_type, TM_T_INT32);
            TM_CHECK_STR(back->schema->cols[28].enum_values, "small,medium,large");
            TM_CHECK_STR(back->schema->cols[12].semantic, "io.debezium.data.Xml");
        }
    }
    tm_buf_release(&out);
    tm_batch_unref(src);
    tm_batch_unref(dst);
    tm_dbz_decoder_free(dec);
    tm_dbz_encoder_free(enc);
    tm_schema_unref(s);
}

static void test_roundtrip_declared(void)
{
    static const tm_decimal_mode_t dms[] = {TM_DECIMAL_PRECISE, TM_DECIMAL_STRING,
                                            TM_DECIMAL_DOUBLE};
    static const tm_time_mode_t tms[] = {TM_TIME_ADAPTIVE, TM_TIME_CONNECT};
    static const char *const dnames[] = {"precise", "string", "double"};
    static const char *const tnames[] = {"adaptive", "connect"};
    uint64_t seed = 1;
    for (int d = 0; d < 3; d++)
        for (int t = 0; t < 2; t++)
            for (int sc = 0; sc < 2; sc++) {
                char label[96];
                tm_dbz_opts_t o = {.schemas = sc,
                                   .decimal_mode = dms[d],
                                   .time_mode = tms[t],
                                   .connector = "postgresql",
                                   .version = "2.7.0.Final"};
                snprintf(label, sizeof(label), "%s/%s/schemas=%d", dnames[d], tnames[t], sc);
                run(&o, true, seed++, 240, label);
            }
}

static void test_roundtrip_schema_part(void)
{
    /* No declared schema: the types come from the event's own schema part. */
    static const tm_time_mode_t tms[] = {TM_TIME_ADAPTIVE, TM_TIME_CONNECT};
    for (int t = 0; t < 2; t++) {
        tm_dbz_opts_t o = {.schemas = true, .time_mode = tms[t], .connector = "postgresql"};
        run(&o, false, 100 + (uint64_t)t, 240, t ? "schema-part/connect" : "schema-part/adaptive");
    }
}

static void test_roundtrip_mysql(void)
{
    tm_dbz_opts_t o = {.schemas = false, .connector = "mysql", .version = "2.7.0.Final"};
    tm_schema_t *s = fmt_schema(true, "mysql");
    tm_dbz_encoder_t *enc = tm_dbz_encoder_new(&o);
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(&o, s);
    tm_batch_t *src = tm_batch_new(), *dst = tm_batch_new();
    fmt_gen_t g = {77};
    tm_buf_t out;
    tm_buf_init(&out);
    for (int k = 0; k < 30; k++) {
        tm_record_t *r = tm_batch_add(src, s, ops[k % 4]);
        fill_record(&g, src, r, s, &o);
        /* MySQL's source block has no LSNs or xid yet. */
        r->src.pos = r->src.u.pg.commit_lsn = 0;
        r->src.u.pg.xid = 0;
        tm_buf_clear(&out);
        TM_REQUIRE(tm_dbz_encode_value(enc, r, &out) == 0);
        tm_record_t *back = NULL;
        TM_REQUIRE(tm_dbz_decode(dec, out.data, out.len, dst, &back, NULL, 0) == 0);
        check_record(r, back, &o, "mysql");
        TM_CHECK(back->schema->namespace == NULL);
    }
    tm_buf_release(&out);
    tm_batch_unref(src);
    tm_batch_unref(dst);
    tm_dbz_decoder_free(dec);
    tm_dbz_encoder_free(enc);
    tm_schema_unref(s);
}

static int decode_str(tm_dbz_decoder_t *dec, tm_batch_t *b, const char *json, tm_record_t **rec,
                      char *err, size_t errlen)
{
    err[0] = '\0';
    return tm_dbz_decode(dec, json, strlen(json), b, rec, err, errlen);
}

static void test_tombstones(void)
{
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(NULL, NULL);
    tm_batch_t *b = tm_batch_new();
    tm_record_t *rec = (tm_record_t *)1;
    char err[256];
    TM_CHECK_INT(tm_dbz_decode(dec, NULL, 0, b, &rec, err, sizeof(err)), TM_ENOTFOUND);
    TM_CHECK(rec == NULL);
    TM_CHECK_INT(decode_str(dec, b, "", &rec, err, sizeof(err)), TM_ENOTFOUND);
    TM_CHECK_INT(decode_str(dec, b, "  \n", &rec, err, sizeof(err)), TM_ENOTFOUND);
    TM_CHECK_INT(decode_str(dec, b, "null", &rec, err, sizeof(err)), TM_ENOTFOUND);
    TM_CHECK_INT(decode_str(dec, b, "{\"schema\":null,\"payload\":null}", &rec, err,
                            sizeof(err)),
                 TM_ENOTFOUND);
    TM_CHECK_INT(b->count, 0);
    tm_batch_unref(b);
    tm_dbz_decoder_free(dec);
}

static void test_errors(void)
{
    tm_schema_t *s = fmt_schema(true, NULL);
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(NULL, s);
    tm_batch_t *b = tm_batch_new();
    tm_record_t *rec;
    char err[256];
    TM_CHECK_INT(decode_str(dec, b, "{\"op\":\"c\",\"after\":{\"i32\":\"x\"}}", &rec, err,
                            sizeof(err)),
                 TM_ECORRUPT);
    TM_CHECK(strstr(err, "after.i32") != NULL);
    TM_CHECK_INT(decode_str(dec, b, "{\"op\":\"c\",\"after\":{\"i16\":70000}}", &rec, err,
                            sizeof(err)),
                 TM_ECORRUPT);
    TM_CHECK(strstr(err, "after.i16") != NULL && strstr(err, "range") != NULL);
    TM_CHECK_INT(decode_str(dec, b, "{\"op\":\"d\",\"before\":{\"tstz\":\"yesterday\"}}", &rec,
                            err, sizeof(err)),
                 TM_ECORRUPT);
    TM_CHECK(strstr(err, "before.tstz") != NULL);
    TM_CHECK_INT(decode_str(dec, b, "{\"op\":\"x\"}", &rec, err, sizeof(err)), TM_ECORRUPT);
    TM_CHECK(strstr(err, "'op'") != NULL);
    TM_CHECK_INT(decode_str(dec, b, "{\"after\":{}}", &rec, err, sizeof(err)), TM_ECORRUPT);
    TM_CHECK_INT(decode_str(dec, b, "{\"op\":\"c\",\"after\":[1]}", &rec, err, sizeof(err)),
                 TM_ECORRUPT);
    TM_CHECK_INT(decode_str(dec, b, "{\"op\":\"c\"", &rec, err, sizeof(err)), TM_ECORRUPT);
    TM_CHECK(strstr(err, "invalid JSON") != NULL);
    TM_CHECK_INT(decode_str(dec, b, "{\"op\":\"c\"} x", &rec, err, sizeof(err)), TM_ECORRUPT);
    TM_CHECK_INT(decode_str(dec, b, "[1,2]", &rec, err, sizeof(err)), TM_ECORRUPT);
    TM_CHECK_INT(decode_str(dec, b, "{\"op\":\"c\",\"after\":{\"t\":\"\\ud800\"}}", &rec, err,
                            sizeof(err)),
                 0);
    TM_CHECK_INT(decode_str(dec, b, "{\"op\":\"c\",\"after\":{\"t\":\"a\x01\"}}", &rec, err,
                            sizeof(err)),
                 TM_ECORRUPT);
    /* Deep nesting is refused, not recursed into. */
    char deep[4000];
    memset(deep, '[', sizeof(deep) - 1);
    deep[sizeof(deep) - 1] = '\0';
    TM_CHECK_INT(decode_str(dec, b, deep, &rec, err, sizeof(err)), TM_ECORRUPT);
    /* Nothing was appended by the failures; the surrogate one did append. */
    TM_CHECK_INT(b->count, 1);
    tm_batch_unref(b);
    tm_dbz_decoder_free(dec);
    tm_schema_unref(s);
}

static void test_declared_matching(void)
{
    /* Fields by name: missing → null, undeclared → ignored, any order. */
    tm_schema_t *s = fmt_schema(true, NULL);
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(NULL, s);
    tm_batch_t *b = tm_batch_new();
    tm_record_t *rec;
    char err[256];
    TM_REQUIRE(decode_str(dec, b,
                          "{\"op\":\"r\",\"after\":{\"zzz\":1,\"t\":\"hi\",\"id\":5,"
                          "\"n\":123.4567,\"nv\":\"3.5\",\"b\":1},"
                          "\"source\":{\"name\":\"kafka\",\"db\":\"x\",\"schema\":\"y\","
                          "\"table\":\"z\",\"snapshot\":true,\"ts_ms\":5}}",
                          &rec, err, sizeof(err)) == 0);
    TM_CHECK_INT(rec->after->vals[0].u.i64, 5);
    TM_CHECK(!tm_row_is_null(rec->after, 11));
    TM_CHECK(tm_row_is_null(rec->after, 2));
    TM_CHECK(rec->after->vals[1].u.b);
    char canon[64];
    fmt_numeric_canon(&rec->after->vals[7], canon, sizeof(canon));
    TM_CHECK_STR(canon, "123.4567");
    fmt_numeric_canon(&rec->after->vals[9], canon, sizeof(canon));
    TM_CHECK_STR(canon, "3.5");
    TM_CHECK_STR(rec->schema->source_name, "kafka");
    TM_CHECK_STR(rec->schema->table, "z");
    TM_CHECK_INT(rec->schema->nkeys, 1);
    TM_CHECK_INT(rec->src.snapshot, TM_SNAPSHOT_TRUE);
    TM_CHECK_INT(rec->src.ts_us, 5000);
    tm_record_t *rec2;
    /* ISO strings are accepted for dates and zone-less timestamps too. */
    TM_REQUIRE(decode_str(dec, b,
                          "{\"op\":\"c\",\"after\":{\"id\":7,\"d\":\"2020-07-17\","
                          "\"ts6\":\"2020-07-17T18:00:22.5Z\",\"ts3\":\"1969-12-31T23:59:59Z\"}}",
                          &rec2, err, sizeof(err)) == 0);
    TM_CHECK_INT(rec2->after->vals[16].u.i64, 18460);
    TM_CHECK_INT(rec2->after->vals[22].u.i64, INT64_C(1595008822500000));
    TM_CHECK_INT(rec2->after->vals[21].u.i64, -1000000);
    TM_CHECK_INT(decode_str(dec, b, "{\"op\":\"c\",\"after\":{\"d\":\"2020-7-17\"}}", &rec2, err,
                            sizeof(err)),
                 TM_ECORRUPT);
    /* A second table through the same decoder gets its own schema object. */
    TM_REQUIRE(decode_str(dec, b,
                          "{\"op\":\"c\",\"after\":{\"id\":6},\"source\":{\"name\":\"kafka\","
                          "\"db\":\"x\",\"schema\":\"y\",\"table\":\"other\"}}",
                          &rec2, err, sizeof(err)) == 0);
    TM_CHECK(rec2->schema != rec->schema);
    TM_CHECK_STR(rec2->schema->table, "other");
    tm_batch_unref(b);
    tm_dbz_decoder_free(dec);
    tm_schema_unref(s);
}

static void test_inference(void)
{
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(NULL, NULL);
    tm_batch_t *b = tm_batch_new();
    tm_record_t *r1, *r2, *r3;
    char err[256];
    const char *e1 = "{\"op\":\"c\",\"after\":{\"a\":1,\"b\":1.5,\"c\":\"x\",\"d\":true,"
                     "\"e\":{\"k\":[1]},\"f\":null,\"g\":18446744073709551615}}";
    const char *e2 = "{\"op\":\"c\",\"after\":{\"a\":2,\"b\":2.5,\"c\":null,\"d\":false,"
                     "\"e\":[],\"f\":\"now\",\"g\":1}}";
    TM_REQUIRE(decode_str(dec, b, e1, &r1, err, sizeof(err)) == 0);
    TM_REQUIRE(decode_str(dec, b, e1, &r2, err, sizeof(err)) == 0);
    TM_CHECK(r1->schema == r2->schema);
    const tm_schema_t *s = r1->schema;
    TM_REQUIRE(s->ncols == 7);
    TM_CHECK_INT(s->cols[0].type, TM_T_INT64);
    TM_CHECK_INT(s->cols[1].type, TM_T_FLOAT64);
    TM_CHECK_INT(s->cols[2].type, TM_T_TEXT);
    TM_CHECK_INT(s->cols[3].type, TM_T_BOOL);
    TM_CHECK_INT(s->cols[4].type, TM_T_JSON);
    TM_CHECK_INT(s->cols[5].type, TM_T_TEXT);
    TM_CHECK_INT(s->cols[6].type, TM_T_NUMERIC);
    TM_CHECK(strncmp(r1->after->vals[4].u.var.ptr, "{\"k\":[1]}", 9) == 0);
    char canon[64];
    fmt_numeric_canon(&r1->after->vals[6], canon, sizeof(canon));
    TM_CHECK_STR(canon, "18446744073709551615");
    /* Different value types make a different schema (g is an int now). */
    TM_REQUIRE(decode_str(dec, b, e2, &r3, err, sizeof(err)) == 0);
    TM_CHECK(r3->schema != r1->schema);
    TM_CHECK_INT(r3->schema->cols[6].type, TM_T_INT64);
    TM_CHECK(r3->schema->version > r1->schema->version);
    tm_batch_unref(b);
    tm_dbz_decoder_free(dec);
}

static void test_batch_full(void)
{
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(NULL, NULL);
    tm_batch_t *b = tm_batch_new();
    char err[256];
    tm_record_t *rec;
    int rc = 0;
    for (int i = 0; i <= TM_BATCH_MAX && rc == 0; i++)
        rc = decode_str(dec, b, "{\"op\":\"c\",\"after\":{\"a\":1}}", &rec, err, sizeof(err));
    TM_CHECK_INT(rc, TM_EAGAIN);
    TM_CHECK_INT(b->count, TM_BATCH_MAX);
    tm_batch_unref(b);
    tm_dbz_decoder_free(dec);
}

/*
 * A repeated "schema" part is not parsed again (debezium_dec.c invariant 4):
 * the events still get the schema their own schema part describes, when the
 * same text comes with another table (a cache miss: decoded again in full),
 * and when more distinct texts rotate than the decoder keeps.
 */
static void schema_event(char *buf, size_t len, int variant, const char *table, int a)
{
    static const char *const types[] = {"int32", "int64", "int16", "string", "boolean", "double"};
    const char *bt = types[variant % 6];
    char bval[32];
    if (strcmp(bt, "string") == 0)
        snprintf(bval, sizeof(bval), "\"s%d\"", a);
    else if (strcmp(bt, "boolean") == 0)
        snprintf(bval, sizeof(bval), "%s", a % 2 ? "true" : "false");
    else
        snprintf(bval, sizeof(bval), "%d", a);
    snprintf(buf, len,
             "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"struct\",\"fields\":["
             "{\"type\":\"int32\",\"optional\":false,\"field\":\"a\"},"
             "{\"type\":\"%s\",\"optional\":true,\"field\":\"b\"}],\"optional\":true,"
             "\"name\":\"v%d.Value\",\"field\":\"after\"}],\"optional\":false,"
             "\"name\":\"v%d.Envelope\"},"
             "\"payload\":{\"op\":\"c\",\"after\":{\"a\":%d,\"b\":%s},"
             "\"source\":{\"db\":\"d\",\"schema\":\"public\",\"table\":\"%s\"}}}",
             bt, variant, variant, a, bval, table);
}

static void test_repeated_schema_parts(void)
{
    static const tm_type_t btypes[] = {TM_T_INT32, TM_T_INT64,  TM_T_INT16,
                                       TM_T_TEXT,  TM_T_BOOL, TM_T_FLOAT64};
    tm_dbz_opts_t o = {.schemas = true, .connector = "postgresql"};
    tm_dbz_decoder_t *dec = tm_dbz_decoder_new(&o, NULL);
    tm_batch_t *b = tm_batch_new();
    char ev[2048], err[256];
    tm_record_t *r1, *r2, *r3;
    schema_event(ev, sizeof(ev), 3, "t1", 1);
    TM_REQUIRE(decode_str(dec, b, ev, &r1, err, sizeof(err)) == 0);
    schema_event(ev, sizeof(ev), 3, "t1", 2);
    TM_REQUIRE(decode_str(dec, b, ev, &r2, err, sizeof(err)) == 0);
    TM_CHECK(r2->schema == r1->schema);
    TM_CHECK_INT(r2->after->vals[0].u.i64, 2);
    TM_CHECK(memcmp(r2->after->vals[1].u.var.ptr, "s2", 2) == 0);
    /* The same schema text for another table: a schema of its own, from the schema part. */
    schema_event(ev, sizeof(ev), 3, "t2", 3);
    TM_REQUIRE(decode_str(dec, b, ev, &r3, err, sizeof(err)) == 0);
    TM_CHECK(r3->schema != r1->schema);
    TM_CHECK_STR(r3->schema->table, "t2");
    TM_CHECK_INT(r3->schema->cols[0].type, TM_T_INT32);
    TM_CHECK_INT(r3->schema->cols[1].type, TM_T_TEXT);
    /* More distinct texts than the decoder keeps, in rotation, twice. */
    for (int round = 0; round < 2; round++)
        for (int v = 0; v < 6; v++) {
            tm_record_t *r;
            schema_event(ev, sizeof(ev), v, "t1", 10 + v);
            if (tm_batch_full(b)) {
                tm_batch_unref(b);
                b = tm_batch_new();
            }
            TM_REQUIRE(decode_str(dec, b, ev, &r, err, sizeof(err)) == 0);
            TM_CHECK_STR(r->schema->table, "t1");
            TM_CHECK_INT(r->schema->cols[0].type, TM_T_INT32);
            TM_CHECK_INT(r->schema->cols[1].type, btypes[v]);
            TM_CHECK_INT(r->after->vals[0].u.i64, 10 + v);
        }
    tm_batch_unref(b);
    tm_dbz_decoder_free(dec);
}

int main(void)
{
    TM_RUN(test_roundtrip_declared);
    TM_RUN(test_roundtrip_schema_part);
    TM_RUN(test_roundtrip_mysql);
    TM_RUN(test_tombstones);
    TM_RUN(test_errors);
    TM_RUN(test_declared_matching);
    TM_RUN(test_inference);
    TM_RUN(test_batch_full);
    TM_RUN(test_repeated_schema_parts);
    return tm_test_done();
}
