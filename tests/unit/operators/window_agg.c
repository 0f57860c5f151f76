/*
 * Unit tests: the window_agg operator (operators/window_agg.h), driven
 * directly with a real store: window assignment, firing on watermarks,
 * out-of-order rows, retractions, late rows and their count,
 * allowed_lateness corrections, session merging, timers and the watermark
 * across a store checkpoint and restore, and on_end during a stop.
 */
#include "../state/state_test.h"
#include "core/shutdown.h"
#include "expr/agg.h"
#include "operators/window_agg.h"

static char err[1024];

/* The runtime implements this; here the policy is always 'fail'. */
int tm_operator_row_error(const tm_operator_ctx_t *ctx, const tm_record_t *rec,
                          const char *reason, char *errstr, size_t errstr_size)
{
    (void)rec;
    return tm_seterr(errstr, errstr_size, TM_EINVAL, "operator %s: %s", ctx->uid, reason);
}

#define S 1000000LL /* one second in µs */

/* ---- input: (ts timestamp, g int64, x int32, s text) ---- */

enum { C_TS, C_G, C_X, C_S, NCOLS };

typedef struct fixture {
    tm_schema_t *in, *out;
    tm_agg_call_t aggs[6];
    int key_cols[1];
    int out_cols[3];
    tm_window_agg_spec_t spec;
} fixture_t;

static void type_of(const tm_column_t *c, tm_expr_type_t *t)
{
    memset(t, 0, sizeof(*t));
    t->type = c->type;
    t->precision = -1;
}

/*
 * Output: g, window_start, window_end, count(*), sum(x), min(x), max(s),
 * count(DISTINCT x), string_agg(s, ',').
 */
static void fixture_init(fixture_t *f, tm_window_kind_t kind, int64_t size, int64_t slide,
                         int64_t lateness)
{
    memset(f, 0, sizeof(*f));
    tm_schema_t *s = tm_schema_new(NCOLS);
    tm_schema_set_str(&s->table, "t");
    tst_col(s, C_TS, "ts", TM_T_TIMESTAMP, -1);
    tst_col(s, C_G, "g", TM_T_INT64, -1);
    tst_col(s, C_X, "x", TM_T_INT32, -1);
    tst_col(s, C_S, "s", TM_T_TEXT, -1);
    tm_schema_finish(s);
    f->in = s;
    static const struct {
        const char *name;
        bool star, distinct;
        int col;
        const char *sep;
    } defs[] = {{"count", true, false, -1, NULL},  {"sum", false, false, C_X, NULL},
                {"min", false, false, C_X, NULL},  {"max", false, false, C_S, NULL},
                {"count", false, true, C_X, NULL}, {"string_agg", false, false, C_S, ","}};
    tm_schema_t *o = tm_schema_new(3 + 6);
    tm_schema_set_str(&o->table, "out");
    tst_col(o, 0, "g", TM_T_INT64, -1);
    tst_col(o, 1, "window_start", TM_T_TIMESTAMP, -1);
    tst_col(o, 2, "window_end", TM_T_TIMESTAMP, -1);
    for (int i = 0; i < 6; i++) {
        tm_expr_type_t types[2];
        memset(types, 0, sizeof(types));
        int nargs = 0;
        if (!defs[i].star)
            type_of(&s->cols[defs[i].col], &types[nargs++]);
        if (defs[i].sep) {
            types[1].type = TM_T_TEXT;
            nargs = 2;
        }
        TM_REQUIRE(tm_agg_resolve(defs[i].name, defs[i].star, defs[i].distinct, types, nargs,
                                  &f->aggs[i], err, sizeof(err)) == 0);
        f->aggs[i].arg = defs[i].col;
        f->aggs[i].separator = (char *)defs[i].sep;
        char nm[16];
        snprintf(nm, sizeof(nm), "a%d", i);
        tm_schema_set_str(&o->cols[3 + i].name, nm);
        o->cols[3 + i].type = f->aggs[i].result_type.type;
        o->cols[3 + i].precision = f->aggs[i].result_type.precision;
        o->cols[3 + i].scale = f->aggs[i].result_type.scale;
        o->cols[3 + i].key_index = -1;
    }
    tm_schema_finish(o);
    f->out = o;
    f->key_cols[0] = C_G;
    f->out_cols[0] = C_G;
    f->out_cols[1] = TM_WINDOW_COL_START;
    f->out_cols[2] = TM_WINDOW_COL_END;
    f->spec = (tm_window_agg_spec_t){.in_schema = f->in,
                                     .kind = kind,
                                     .time_col = C_TS,
                                     .size_us = size,
                                     .slide_us = slide ? slide : size,
                                     .key_cols = f->key_cols,
                                     .nkey = 1,
                                     .out_cols = f->out_cols,
                                     .ngroup = 3,
                                     .aggs = f->aggs,
                                     .naggs = 6,
                                     .allowed_lateness_us = lateness,
                                     .out_schema = f->out};
}

static void fixture_free(fixture_t *f)
{
    tm_schema_unref(f->in);
    tm_schema_unref(f->out);
}

/* ---- the output, as text: "+I g|start|end|count|sum|min|max|distinct|agg" ---- */

typedef struct out {
    tm_collector_t c;
    tm_buf_t text;
    int records;
} out_t;

static void row_text(tm_buf_t *o, const tm_schema_t *s, const tm_row_t *r)
{
    for (int i = 0; i < s->ncols; i++) {
        if (i > 0)
            tm_buf_putc(o, '|');
        if (tm_row_is_null(r, i)) {
            tm_buf_puts(o, "null");
            continue;
        }
        const tm_datum_t *d = &r->vals[i];
        switch (s->cols[i].type) {
        case TM_T_TEXT:
            tm_buf_append(o, d->u.var.ptr, d->u.var.len);
            break;
        case TM_T_NUMERIC: {
            char tmp[64];
            tm_numeric_format(d, tmp, sizeof(tmp));
            tm_buf_puts(o, tmp);
            break;
        }
        case TM_T_TIMESTAMP:
            tm_buf_append_i64(o, d->u.i64 / S);
            break;
        default:
            tm_buf_append_i64(o, d->u.i64);
        }
    }
}

static int collect(tm_collector_t *c, tm_batch_t *b)
{
    out_t *o = c->arg;
    for (uint32_t i = 0; i < b->count; i++) {
        const tm_record_t *r = &b->recs[i];
        tm_buf_puts(&o->text, r->op == TM_OP_CREATE   ? "+I "
                              : r->op == TM_OP_UPDATE ? "+U "
                                                      : "-D ");
        if (r->before != NULL) {
            row_text(&o->text, r->schema, r->before);
            if (r->after != NULL)
                tm_buf_puts(&o->text, " -> ");
        }
        if (r->after != NULL)
            row_text(&o->text, r->schema, r->after);
        tm_buf_putc(&o->text, '\n');
        o->records++;
    }
    tm_batch_unref(b);
    return 0;
}

static void out_init(out_t *o)
{
    memset(o, 0, sizeof(*o));
    o->c.emit = collect;
    o->c.arg = o;
    tm_buf_init(&o->text);
}

/* The output so far, lines sorted, and cleared. */
static char *out_take(out_t *o)
{
    tm_buf_putc(&o->text, '\0');
    char *sorted = tst_sort_lines(o->text.data);
    tm_buf_clear(&o->text);
    return sorted;
}

/* ---- input ---- */

typedef struct in_row {
    char op; /* 'c', 'd' */
    int64_t ts_s;
    int64_t g;
    int x;
    const char *s;
} in_row_t;

static tm_batch_t *batch_of(const fixture_t *f, const in_row_t *rows, int n)
{
    tm_batch_t *b = tm_batch_new();
    for (int i = 0; i < n; i++) {
        tm_record_t *rec =
            tm_batch_add(b, f->in, rows[i].op == 'd' ? TM_OP_DELETE : TM_OP_CREATE);
        tm_row_t *r = tm_batch_new_row(b, f->in);
        r->vals[C_TS].u.i64 = rows[i].ts_s * S;
        tm_row_set_null(r, C_TS, false);
        r->vals[C_G].u.i64 = rows[i].g;
        tm_row_set_null(r, C_G, false);
        r->vals[C_X].u.i64 = rows[i].x;
        tm_row_set_null(r, C_X, false);
        if (rows[i].s != NULL) {
            tm_batch_set_var(b, &r->vals[C_S], rows[i].s, strlen(rows[i].s));
            tm_row_set_null(r, C_S, false);
        }
        if (rows[i].op == 'd')
            rec->before = r;
        else
            rec->after = r;
    }
    return b;
}

typedef struct run {
    char *dir;
    tm_store_t *store;
    tm_operator_metrics_t metrics;
    tm_operator_ctx_t ctx;
    const tm_operator_ops_t *ops;
    tm_operator_t *op;
} run_t;

static void run_open_op(run_t *r, const fixture_t *f)
{
    memset(&r->ctx, 0, sizeof(r->ctx));
    r->ctx.uid = "window/test";
    r->ctx.job = "test";
    r->ctx.parallelism = 1;
    r->ctx.max_parallelism = 128;
    r->ctx.kg_first = 0;
    r->ctx.kg_last = 127;
    r->ctx.store = r->store;
    r->ctx.metrics = &r->metrics;
    TM_REQUIRE(tm_window_agg_new(&f->spec, &r->ctx, &r->ops, &r->op, err, sizeof(err)) == 0);
}

static void run_open(run_t *r, const fixture_t *f)
{
    memset(r, 0, sizeof(*r));
    r->dir = tst_tmpdir();
    char p[1024];
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), r->dir, "work"), &o, &r->store, err,
                             sizeof(err)) == 0);
    run_open_op(r, f);
}

static void run_close(run_t *r)
{
    r->ops->free(r->op);
    tm_store_close(r->store);
    tst_rmdir(r->dir);
}

static void feed(run_t *r, const fixture_t *f, out_t *o, const in_row_t *rows, int n)
{
    tm_batch_t *b = batch_of(f, rows, n);
    int rc = r->ops->process(r->op, 0, b, &o->c, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "process: %s\n", err);
    TM_CHECK(rc == 0);
    tm_batch_unref(b);
}

static void watermark(run_t *r, out_t *o, int64_t ts_s)
{
    int64_t fwd = ts_s * S;
    TM_CHECK(r->ops->on_watermark(r->op, ts_s * S, &fwd, &o->c, err, sizeof(err)) == 0);
}

static void expect(out_t *o, const char *want)
{
    char *got = out_take(o);
    char *w = tst_sort_lines(want);
    if (strcmp(got, w) != 0)
        fprintf(stderr, "--- want\n%s--- got\n%s", w, got);
    TM_CHECK_STR(got, w);
    free(got);
    free(w);
}

/* ---- tests ---- */

static void test_assign(void)
{
    fixture_t f;
    int64_t st[16], en[16];
    fixture_init(&f, TM_WINDOW_TUMBLE, 10 * S, 0, 0);
    TM_CHECK_INT(tm_window_assign(&f.spec, 15 * S, st, en, 16), 1);
    TM_CHECK(st[0] == 10 * S && en[0] == 20 * S);
    /* Before the epoch: floor, not truncation. */
    TM_CHECK_INT(tm_window_assign(&f.spec, -1, st, en, 16), 1);
    TM_CHECK(st[0] == -10 * S && en[0] == 0);
    TM_CHECK_INT(tm_window_assign(&f.spec, 10 * S, st, en, 16), 1);
    TM_CHECK(st[0] == 10 * S);
    f.spec.kind = TM_WINDOW_HOP;
    f.spec.slide_us = 5 * S;
    f.spec.size_us = 15 * S;
    TM_CHECK_INT(tm_window_assign(&f.spec, 12 * S, st, en, 16), 3);
    TM_CHECK(st[0] == 10 * S && en[0] == 25 * S);
    TM_CHECK(st[1] == 5 * S && en[1] == 20 * S);
    TM_CHECK(st[2] == 0 && en[2] == 15 * S);
    f.spec.kind = TM_WINDOW_CUMULATE;
    f.spec.slide_us = 10 * S;
    f.spec.size_us = 30 * S;
    /* 42 s: the day [30, 60) has cumulative ends 40, 50, 60; 42 is in [30,50) and [30,60). */
    TM_CHECK_INT(tm_window_assign(&f.spec, 42 * S, st, en, 16), 2);
    TM_CHECK(st[0] == 30 * S && en[0] == 50 * S);
    TM_CHECK(st[1] == 30 * S && en[1] == 60 * S);
    TM_CHECK_INT(tm_window_assign(&f.spec, 30 * S, st, en, 16), 3);
    TM_CHECK(en[0] == 40 * S && en[2] == 60 * S);
    fixture_free(&f);
}

/* Out-of-order rows, a retraction before firing, late rows and their count, on_end. */
static void test_tumble_watermark_and_late(void)
{
    fixture_t f;
    fixture_init(&f, TM_WINDOW_TUMBLE, 10 * S, 0, 0);
    run_t r;
    run_open(&r, &f);
    out_t o;
    out_init(&o);
    in_row_t b1[] = {{'c', 12, 1, 5, "b"}, {'c', 3, 1, 7, "a"}, {'c', 9, 1, 2, "c"},
                     {'c', 4, 2, 1, "z"}, {'c', 25, 1, 1, "q"}};
    feed(&r, &f, &o, b1, 5);
    expect(&o, "");
    /* A retraction of a row whose window has not fired. */
    in_row_t b2[] = {{'d', 9, 1, 2, "c"}, {'c', 8, 1, 7, "d"}};
    feed(&r, &f, &o, b2, 2);
    watermark(&r, &o, 9);
    expect(&o, ""); /* window_time of [0,10) is 9.999999 s */
    watermark(&r, &o, 10);
    expect(&o, "+I 1|0|10|2|14|7|d|1|a,d\n"
               "+I 2|0|10|1|1|1|z|1|z\n");
    TM_CHECK(atomic_load(&r.metrics.late_rows) == 0);
    /* Late: an insert and a retraction for the fired window; counted, not applied. */
    in_row_t b3[] = {{'c', 5, 1, 100, "late"}, {'d', 3, 1, 7, "a"}, {'c', 19, 2, 3, "y"}};
    feed(&r, &f, &o, b3, 3);
    expect(&o, "");
    TM_CHECK(atomic_load(&r.metrics.late_rows) == 2);
    /* A watermark that goes back is ignored; the end of input fires everything. */
    watermark(&r, &o, 4);
    expect(&o, "");
    TM_CHECK(r.ops->on_end(r.op, &o.c, err, sizeof(err)) == 0);
    expect(&o, "+I 1|10|20|1|5|5|b|1|b\n"
               "+I 2|10|20|1|3|3|y|1|y\n"
               "+I 1|20|30|1|1|1|q|1|q\n");
    /* Everything fired: nothing is left in state. */
    tm_store_cf_t *cf = tm_store_cf_find(r.store, "window/test");
    tm_store_iter_t *it = NULL;
    TM_REQUIRE(tm_store_iter_new(r.store, cf, 0, 127, NULL, 0, &it) == 0);
    tm_store_entry_t e;
    int left = 0;
    while (tm_store_iter_next(it, &e, err, sizeof(err)) == 1)
        left += e.klen > 0 && e.key[0] != 'm';
    tm_store_iter_free(it);
    TM_CHECK_INT(left, 0);
    run_close(&r);
    tm_buf_release(&o.text);
    fixture_free(&f);
}

/* min, max and DISTINCT under retraction of the extreme, emptied windows emit nothing. */
static void test_retractions_in_window(void)
{
    fixture_t f;
    fixture_init(&f, TM_WINDOW_TUMBLE, 10 * S, 0, 0);
    run_t r;
    run_open(&r, &f);
    out_t o;
    out_init(&o);
    in_row_t b1[] = {{'c', 1, 1, 3, "m"}, {'c', 2, 1, 3, "z"}, {'c', 3, 1, 9, "a"},
                     {'c', 4, 2, 1, "k"}};
    feed(&r, &f, &o, b1, 4);
    in_row_t b2[] = {{'d', 2, 1, 3, "z"}, {'d', 3, 1, 9, "a"}, {'d', 4, 2, 1, "k"}};
    feed(&r, &f, &o, b2, 3);
    watermark(&r, &o, 100);
    expect(&o, "+I 1|0|10|1|3|3|m|1|m\n");
    run_close(&r);
    tm_buf_release(&o.text);
    fixture_free(&f);
}

/* HOP and CUMULATE: a row in several windows, each fired at its own end. */
static void test_hop_and_cumulate(void)
{
    fixture_t f;
    fixture_init(&f, TM_WINDOW_HOP, 10 * S, 5 * S, 0);
    run_t r;
    run_open(&r, &f);
    out_t o;
    out_init(&o);
    in_row_t b1[] = {{'c', 7, 1, 1, "a"}, {'c', 12, 1, 2, "b"}};
    feed(&r, &f, &o, b1, 2);
    watermark(&r, &o, 10);
    expect(&o, "+I 1|0|10|1|1|1|a|1|a\n");
    watermark(&r, &o, 15);
    expect(&o, "+I 1|5|15|2|3|1|b|2|a,b\n");
    TM_CHECK(r.ops->on_end(r.op, &o.c, err, sizeof(err)) == 0);
    expect(&o, "+I 1|10|20|1|2|2|b|1|b\n");
    run_close(&r);
    fixture_free(&f);

    fixture_init(&f, TM_WINDOW_CUMULATE, 30 * S, 10 * S, 0);
    run_open(&r, &f);
    in_row_t b2[] = {{'c', 31, 1, 1, "a"}, {'c', 45, 1, 2, "b"}, {'c', 5, 1, 4, "c"}};
    feed(&r, &f, &o, b2, 3);
    watermark(&r, &o, 50);
    expect(&o, "+I 1|0|10|1|4|4|c|1|c\n+I 1|0|20|1|4|4|c|1|c\n+I 1|0|30|1|4|4|c|1|c\n"
               "+I 1|30|40|1|1|1|a|1|a\n+I 1|30|50|2|3|1|b|2|a,b\n");
    TM_CHECK(r.ops->on_end(r.op, &o.c, err, sizeof(err)) == 0);
    expect(&o, "+I 1|30|60|2|3|1|b|2|a,b\n");
    run_close(&r);
    tm_buf_release(&o.text);
    fixture_free(&f);
}

/* allowed_lateness: corrections while the window's state is kept, late after. */
static void test_allowed_lateness(void)
{
    fixture_t f;
    fixture_init(&f, TM_WINDOW_TUMBLE, 10 * S, 0, 5 * S);
    run_t r;
    run_open(&r, &f);
    out_t o;
    out_init(&o);
    in_row_t b1[] = {{'c', 3, 1, 1, "a"}};
    feed(&r, &f, &o, b1, 1);
    watermark(&r, &o, 10);
    expect(&o, "+I 1|0|10|1|1|1|a|1|a\n");
    /* Within the lateness: an update of the emitted result. */
    in_row_t b2[] = {{'c', 4, 1, 2, "b"}};
    feed(&r, &f, &o, b2, 1);
    expect(&o, "+U 1|0|10|1|1|1|a|1|a -> 1|0|10|2|3|1|b|2|a,b\n");
    /* A retraction of a row of the fired window, and a new window behind the watermark. */
    in_row_t b3[] = {{'d', 3, 1, 1, "a"}, {'c', 8, 2, 6, "w"}};
    feed(&r, &f, &o, b3, 2);
    expect(&o, "+U 1|0|10|2|3|1|b|2|a,b -> 1|0|10|1|2|2|b|1|b\n"
               "+I 2|0|10|1|6|6|w|1|w\n");
    /* The window emptied: its row is deleted. */
    in_row_t b4[] = {{'d', 8, 2, 6, "w"}};
    feed(&r, &f, &o, b4, 1);
    expect(&o, "-D 2|0|10|1|6|6|w|1|w\n");
    TM_CHECK(atomic_load(&r.metrics.late_rows) == 0);
    /* Past window_time + lateness (14.999999 s) the state is gone: late. */
    watermark(&r, &o, 15);
    expect(&o, "");
    in_row_t b5[] = {{'c', 2, 1, 9, "x"}};
    feed(&r, &f, &o, b5, 1);
    expect(&o, "");
    TM_CHECK(atomic_load(&r.metrics.late_rows) == 1);
    run_close(&r);
    tm_buf_release(&o.text);
    fixture_free(&f);
}

/* SESSION: per key, merging (touching windows merge), out of order. */
static void test_session_merging(void)
{
    fixture_t f;
    fixture_init(&f, TM_WINDOW_SESSION, 5 * S, 0, 0);
    run_t r;
    run_open(&r, &f);
    out_t o;
    out_init(&o);
    in_row_t b1[] = {{'c', 8, 1, 3, "c"}, {'c', 0, 1, 1, "a"}, {'c', 20, 1, 9, "z"},
                     {'c', 10, 2, 4, "k"}};
    feed(&r, &f, &o, b1, 4);
    /* Two sessions of key 1 so far: [0,5) and [8,13); 3 bridges them ([3,8) touches both). */
    in_row_t b2[] = {{'c', 3, 1, 2, "b"}};
    feed(&r, &f, &o, b2, 1);
    watermark(&r, &o, 15);
    expect(&o, "+I 1|0|13|3|6|1|c|3|a,b,c\n+I 2|10|15|1|4|4|k|1|k\n");
    /* A retraction inside a live session; the session keeps its bounds. */
    in_row_t b3[] = {{'c', 22, 1, 1, "y"}, {'d', 20, 1, 9, "z"}};
    feed(&r, &f, &o, b3, 2);
    TM_CHECK(r.ops->on_end(r.op, &o.c, err, sizeof(err)) == 0);
    expect(&o, "+I 1|20|27|1|1|1|y|1|y\n");
    run_close(&r);
    tm_buf_release(&o.text);
    fixture_free(&f);
}

/* Windows, timers and the watermark survive a checkpoint and a restore. */
static void test_restore(void)
{
    fixture_t f;
    fixture_init(&f, TM_WINDOW_TUMBLE, 10 * S, 0, 0);
    run_t r;
    run_open(&r, &f);
    out_t o;
    out_init(&o);
    in_row_t b1[] = {{'c', 3, 1, 1, "a"}, {'c', 13, 1, 2, "b"}, {'c', 24, 3, 5, "e"}};
    feed(&r, &f, &o, b1, 3);
    watermark(&r, &o, 10);
    expect(&o, "+I 1|0|10|1|1|1|a|1|a\n");
    TM_REQUIRE(r.ops->on_barrier(r.op, 1, &o.c, err, sizeof(err)) == 0);
    char chk[1024], p[1024];
    TM_REQUIRE(tm_store_checkpoint(r.store, tst_path(chk, sizeof(chk), r.dir, "chk-1"), NULL, err,
                                   sizeof(err)) == 0);
    /* Work after the checkpoint is lost in the crash. */
    in_row_t b2[] = {{'c', 15, 1, 7, "q"}};
    feed(&r, &f, &o, b2, 1);
    r.ops->free(r.op);
    r.store = tm_store_close(r.store);
    tm_store_opts_t so = tst_opts(0);
    TM_REQUIRE(tm_store_open_from_checkpoint(chk, tst_path(p, sizeof(p), r.dir, "work2"), &so,
                                             &r.store, err, sizeof(err)) == 0);
    run_open_op(&r, &f);
    TM_REQUIRE(r.ops->restore(r.op, err, sizeof(err)) == 0);
    /* The restored watermark (10 s) makes a row for [0,10) late. */
    in_row_t b3[] = {{'c', 5, 1, 1, "late"}};
    feed(&r, &f, &o, b3, 1);
    TM_CHECK(atomic_load(&r.metrics.late_rows) == 1);
    /* The restored timers fire. */
    watermark(&r, &o, 20);
    expect(&o, "+I 1|10|20|1|2|2|b|1|b\n");
    TM_CHECK(r.ops->on_end(r.op, &o.c, err, sizeof(err)) == 0);
    expect(&o, "+I 3|20|30|1|5|5|e|1|e\n");
    run_close(&r);
    tm_buf_release(&o.text);
    fixture_free(&f);
}

/*
 * Rescaling: the checkpoint of one subtask (every key group) restored into
 * two, each owning half of the key groups, fires exactly the windows the
 * one would have, each on the subtask that owns its key.
 */
static void test_rescale(void)
{
    fixture_t f;
    fixture_init(&f, TM_WINDOW_SESSION, 5 * S, 0, 0);
    run_t r;
    run_open(&r, &f);
    out_t o;
    out_init(&o);
    in_row_t rows[40];
    for (int i = 0; i < 40; i++)
        rows[i] = (in_row_t){'c', (i * 7) % 23, 1 + i % 13, i, i % 2 ? "odd" : "even"};
    feed(&r, &f, &o, rows, 40);
    watermark(&r, &o, 3);
    char *early = out_take(&o);
    TM_REQUIRE(r.ops->on_barrier(r.op, 1, &o.c, err, sizeof(err)) == 0);
    char chk[1024], p[1024];
    TM_REQUIRE(tm_store_checkpoint(r.store, tst_path(chk, sizeof(chk), r.dir, "chk-1"), NULL, err,
                                   sizeof(err)) == 0);
    TM_REQUIRE(r.ops->on_end(r.op, &o.c, err, sizeof(err)) == 0);
    char *want = out_take(&o);
    TM_CHECK(strlen(want) > 0);
    tm_buf_t got;
    tm_buf_init(&got);
    for (int half = 0; half < 2; half++) {
        run_t h;
        memset(&h, 0, sizeof(h));
        tm_store_opts_t so = tst_opts(0);
        char name[32];
        snprintf(name, sizeof(name), "half-%d", half);
        TM_REQUIRE(tm_store_open_from_checkpoint(chk, tst_path(p, sizeof(p), r.dir, name), &so,
                                                 &h.store, err, sizeof(err)) == 0);
        run_open_op(&h, &f);
        /* run_open_op gives every key group; this subtask owns half of them. */
        h.ops->free(h.op);
        h.ctx.subtask = half;
        h.ctx.parallelism = 2;
        h.ctx.kg_first = half ? 64 : 0;
        h.ctx.kg_last = half ? 127 : 63;
        TM_REQUIRE(tm_window_agg_new(&f.spec, &h.ctx, &h.ops, &h.op, err, sizeof(err)) == 0);
        TM_REQUIRE(h.ops->restore(h.op, err, sizeof(err)) == 0);
        TM_REQUIRE(h.ops->on_end(h.op, &o.c, err, sizeof(err)) == 0);
        char *part = out_take(&o);
        TM_CHECK(strlen(part) > 0); /* keys 1..13 fall into both halves */
        tm_buf_puts(&got, part);
        free(part);
        h.ops->free(h.op);
        tm_store_close(h.store);
    }
    tm_buf_putc(&got, '\0');
    char *both = tst_sort_lines(got.data);
    TM_CHECK_STR(both, want);
    free(both);
    free(want);
    free(early);
    tm_buf_release(&got);
    run_close(&r);
    tm_buf_release(&o.text);
    fixture_free(&f);
}

/* A stop is not the end of the input: on_end fires nothing, state stays. */
static void test_stop_does_not_fire(void)
{
    fixture_t f;
    fixture_init(&f, TM_WINDOW_TUMBLE, 10 * S, 0, 0);
    run_t r;
    run_open(&r, &f);
    out_t o;
    out_init(&o);
    in_row_t b1[] = {{'c', 3, 1, 1, "a"}};
    feed(&r, &f, &o, b1, 1);
    tm_shutdown_stopping();
    TM_CHECK(r.ops->on_end(r.op, &o.c, err, sizeof(err)) == 0);
    expect(&o, "");
    /* The window is still there for the next run. */
    watermark(&r, &o, 10);
    expect(&o, "+I 1|0|10|1|1|1|a|1|a\n");
    run_close(&r);
    tm_buf_release(&o.text);
    fixture_free(&f);
}

int main(void)
{
    TM_RUN(test_assign);
    TM_RUN(test_tumble_watermark_and_late);
    TM_RUN(test_retractions_in_window);
    TM_RUN(test_hop_and_cumulate);
    TM_RUN(test_allowed_lateness);
    TM_RUN(test_session_merging);
    TM_RUN(test_restore);
    TM_RUN(test_rescale);
    TM_RUN(test_stop_does_not_fire); /* last: it raises the process-wide stop flag */
    return tm_test_done();
}
