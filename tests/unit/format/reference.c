/*
 * reference.c — the fast encoder against the Jansson reference (format-reference).
 *
 * Role: for thousands of generated records — every column type, nulls,
 * placeholders on every type, NaN and wide numerics, extreme times, every op,
 * schemas on and off, every decimal and time mode, both source shapes, keyed
 * and keyless tables — the fast writer's text must parse as JSON and be
 * json_equal() to what the reference encoder builds independently.  This is
 * what lets the fast path cache text and format in place without drifting.
 *
 * Thread: single-threaded.
 */
#include "core/error.h"
#include "fmt_util.h"
#include "tm_test.h"

#include <jansson.h>

static const tm_op_t ops[] = {TM_OP_READ,   TM_OP_CREATE,   TM_OP_UPDATE,
                              TM_OP_DELETE, TM_OP_TRUNCATE, TM_OP_MESSAGE};

static int shown;

static void show(const char *what, const char *fast, json_t *ref)
{
    if (shown++ >= 3)
        return;
    char *r = ref ? json_dumps(ref, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    fprintf(stderr, "%s differs\n  fast: %s\n  ref:  %s\n", what, fast, r ? r : "(null)");
    free(r);
}

/* Marks random non-null datums of any type unchanged-TOAST, keeping their values. */
static void sprinkle_unavailable(fmt_gen_t *g, const tm_schema_t *s, tm_row_t *row)
{
    for (int i = 0; i < s->ncols; i++)
        if (!tm_row_is_null(row, i) && fmt_chance(g, 5))
            row->vals[i].flags |= TM_DATUM_UNAVAILABLE;
}

static void fill_record(fmt_gen_t *g, tm_batch_t *b, tm_record_t *r, const tm_schema_t *s,
                        const tm_dbz_opts_t *o)
{
    if (r->op == TM_OP_CREATE || r->op == TM_OP_READ || r->op == TM_OP_UPDATE)
        r->after = fmt_gen_row(g, b, s, o, 20, 5);
    if (r->op == TM_OP_DELETE || (r->op == TM_OP_UPDATE && fmt_chance(g, 70)))
        r->before = fmt_gen_row(g, b, s, o, 20, 5);
    if (r->after)
        sprinkle_unavailable(g, s, r->after);
    if (r->before)
        sprinkle_unavailable(g, s, r->before);
    if (r->op == TM_OP_MESSAGE) {
        static const char *const prefixes[] = {"heartbeat", "", "with \"quote\"", NULL};
        static char content[64];
        for (size_t i = 0; i < sizeof(content); i++)
            content[i] = (char)fmt_next(g);
        r->msg_prefix = prefixes[fmt_next(g) % 4];
        r->msg_content = (const uint8_t *)content;
        r->msg_len = (uint32_t)fmt_range(g, 0, sizeof(content));
    }
    /* Times around now, far past and far future (ts_ns overflows to null). */
    static const int64_t times[] = {INT64_C(1704164645123456), 0, -1, INT64_C(-62135596800000000),
                                    INT64_C(9223372036854775), INT64_C(9200000000000000000)};
    r->proc_us = times[fmt_next(g) % 6];
    r->src.ts_us = times[fmt_next(g) % 6];
    r->src.kind = TM_SOURCE_POSTGRES;
    r->src.pos = fmt_chance(g, 20) ? 0 : fmt_next(g) >> 2;
    r->src.u.pg.commit_lsn = fmt_chance(g, 30) ? 0 : fmt_next(g) >> 2;
    r->src.u.pg.xid = fmt_chance(g, 20) ? 0 : (uint32_t)fmt_next(g);
    r->src.snapshot = (uint8_t)fmt_range(g, 0, 4);
}

static void compare(tm_dbz_encoder_t *enc, const tm_record_t *r, bool key, int *checked)
{
    tm_buf_t out;
    tm_buf_init(&out);
    int rc = key ? tm_dbz_encode_key(enc, r, &out) : tm_dbz_encode_value(enc, r, &out);
    json_t *ref = key ? tm_dbz_encode_key_json(enc, r) : tm_dbz_encode_value_json(enc, r);
    if (key && (r->op == TM_OP_TRUNCATE ||
                (r->op != TM_OP_MESSAGE && r->schema != NULL && r->schema->nkeys == 0))) {
        TM_CHECK_INT(rc, TM_ENOTFOUND);
        TM_CHECK(ref == NULL);
    } else {
        TM_CHECK_INT(rc, 0);
        TM_REQUIRE(ref != NULL);
        json_error_t err;
        json_t *fast = json_loadb(out.data, out.len, 0, &err);
        if (fast == NULL)
            fprintf(stderr, "fast output is not JSON (%s at %d): %s\n", err.text, err.position,
                    out.data);
        TM_CHECK(fast != NULL);
        bool eq = fast != NULL && json_equal(fast, ref);
        if (!eq)
            show(key ? "key" : "value", out.data, ref);
        TM_CHECK(eq);
        json_decref(fast);
        (*checked)++;
    }
    json_decref(ref);
    tm_buf_release(&out);
}

static void run_mode(tm_decimal_mode_t dm, tm_time_mode_t tmode, bool schemas,
                     const char *connector, bool keyed, uint64_t seed, int *checked)
{
    tm_dbz_opts_t o = {.schemas = schemas,
                       .decimal_mode = dm,
                       .time_mode = tmode,
                       .connector = connector,
                       .version = "2.7.0.Final"};
    tm_schema_t *s = fmt_schema(keyed, connector);
    tm_dbz_encoder_t *enc = tm_dbz_encoder_new(&o);
    fmt_gen_t g = {seed};
    for (int round = 0; round < 2; round++) {
        tm_batch_t *b = tm_batch_new();
        for (int n = 0; n < 40; n++) {
            tm_record_t *r = tm_batch_add(b, s, ops[fmt_next(&g) % 6]);
            fill_record(&g, b, r, s, &o);
            compare(enc, r, false, checked);
            compare(enc, r, true, checked);
        }
        tm_batch_unref(b);
    }
    tm_dbz_encoder_free(enc);
    tm_schema_unref(s);
}

static void test_all_modes(void)
{
    static const tm_decimal_mode_t dms[] = {TM_DECIMAL_PRECISE, TM_DECIMAL_STRING,
                                            TM_DECIMAL_DOUBLE};
    static const tm_time_mode_t tms[] = {TM_TIME_ADAPTIVE, TM_TIME_CONNECT};
    static const char *const connectors[] = {"postgresql", "mysql"};
    int checked = 0;
    uint64_t seed = 0x9e3779b97f4a7c15ull;
    for (int d = 0; d < 3; d++)
        for (int t = 0; t < 2; t++)
            for (int sc = 0; sc < 2; sc++)
                for (int c = 0; c < 2; c++)
                    for (int k = 0; k < 2; k++)
                        run_mode(dms[d], tms[t], sc, connectors[c], k, seed++, &checked);
    fprintf(stderr, "compared %d encodings\n", checked);
    TM_CHECK(checked > 5000);
}

static void test_anonymous_schema(void)
{
    /* A derived stream with no names at all still encodes, and both encoders agree. */
    int checked = 0;
    tm_schema_t *s = fmt_schema(true, NULL);
    tm_schema_set_str(&s->source_name, NULL);
    tm_schema_set_str(&s->db, NULL);
    tm_schema_set_str(&s->namespace, NULL);
    tm_schema_set_str(&s->table, NULL);
    tm_dbz_opts_t o = {.schemas = true};
    tm_dbz_encoder_t *enc = tm_dbz_encoder_new(&o);
    tm_batch_t *b = tm_batch_new();
    fmt_gen_t g = {42};
    for (int n = 0; n < 50; n++) {
        tm_record_t *r = tm_batch_add(b, s, ops[n % 6]);
        fill_record(&g, b, r, s, &o);
        compare(enc, r, false, &checked);
        compare(enc, r, true, &checked);
    }
    tm_batch_unref(b);
    tm_dbz_encoder_free(enc);
    tm_schema_unref(s);
}

static void test_many_tables(void)
{
    /* More tables than the cache holds: entries are evicted and rebuilt correctly. */
    int checked = 0;
    tm_dbz_opts_t o = {.schemas = true, .connector = "postgresql"};
    tm_dbz_encoder_t *enc = tm_dbz_encoder_new(&o);
    fmt_gen_t g = {7};
    for (int t = 0; t < 1100; t++) {
        tm_schema_t *s = fmt_schema(t % 2 == 0, NULL);
        char name[32];
        snprintf(name, sizeof(name), "t%d", t);
        tm_schema_set_str(&s->table, name);
        tm_batch_t *b = tm_batch_new();
        tm_record_t *r = tm_batch_add(b, s, TM_OP_CREATE);
        fill_record(&g, b, r, s, &o);
        if (t % 50 == 0) {
            compare(enc, r, false, &checked);
        } else {
            tm_buf_t out;
            tm_buf_init(&out);
            TM_CHECK(tm_dbz_encode_value(enc, r, &out) == 0);
            tm_buf_release(&out);
        }
        tm_batch_unref(b);
        tm_schema_unref(s);
    }
    tm_dbz_encoder_free(enc);
}

int main(void)
{
    TM_RUN(test_all_modes);
    TM_RUN(test_anonymous_schema);
    TM_RUN(test_many_tables);
    return tm_test_done();
}
