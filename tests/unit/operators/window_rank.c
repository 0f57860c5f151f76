/*
 * Unit tests: the window Top-N operator (operators/window_rank.h), driven
 * directly with a real store.
 *
 * Input t(id bigint, ws timestamp, we timestamp, v bigint, k bigint), ranked
 * PARTITION BY ws, we ORDER BY v DESC, id; the rank is output column 5.  The
 * tests check that nothing is emitted before the watermark reaches a
 * window's window_time, that each window's top N is then emitted once as
 * inserts with ranks, that state keeps at most N rows per window and is gone
 * after firing, that rows of a fired window are counted as late, that a
 * checkpoint restores the windows and the watermark, and a seeded random
 * workload against a brute-force ranking.
 */
#include "../state/state_test.h"
#include "operators/window_rank.h"
#include "state/rowcodec.h"

enum { C_ID, C_WS, C_WE, C_V, C_K, NCOLS };
#define RN_COL NCOLS

static char err[1024];

static tm_schema_t *in_schema(void)
{
    tm_schema_t *s = tm_schema_new(NCOLS);
    tm_schema_set_str(&s->table, "t");
    tst_col(s, C_ID, "id", TM_T_INT64, -1);
    tst_col(s, C_WS, "ws", TM_T_TIMESTAMP, -1);
    tst_col(s, C_WE, "we", TM_T_TIMESTAMP, -1);
    tst_col(s, C_V, "v", TM_T_INT64, -1);
    tst_col(s, C_K, "k", TM_T_INT64, -1);
    s->cols[C_V].nullable = true;
    tm_schema_finish(s);
    return s;
}

static tm_schema_t *out_schema(const tm_schema_t *in)
{
    tm_schema_t *s = tm_schema_new(in->ncols + 1);
    for (int c = 0; c < in->ncols; c++) {
        tst_col(s, c, in->cols[c].name, in->cols[c].type, -1);
        s->cols[c].nullable = in->cols[c].nullable;
    }
    tst_col(s, RN_COL, "rn", TM_T_INT64, -1);
    tm_schema_finish(s);
    return s;
}

/* A row of window [ws, ws + 10) (seconds); v = INT64_MIN for NULL. */
static tm_row_t *mk_row(tm_batch_t *b, const tm_schema_t *s, int64_t id, int64_t ws, int64_t v,
                        int64_t k)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    int64_t vals[NCOLS] = {id, ws * 1000000, (ws + 10) * 1000000, v, k};
    for (int c = 0; c < NCOLS; c++) {
        if (c == C_V && v == INT64_MIN)
            continue;
        r->vals[c].u.i64 = vals[c];
        tm_row_set_null(r, c, false);
    }
    return r;
}

static void add_insert(tm_batch_t *b, tm_schema_t *s, tm_row_t *row)
{
    tm_record_t *r = tm_batch_add(b, s, TM_OP_CREATE);
    r->after = row;
}

/* The output, as sorted lines "ws|rn|id|v" (seconds), and the count of non-inserts. */
typedef struct collector {
    tm_collector_t c;
    tm_buf_t lines;
    int records, not_inserts;
} collector_t;

static int collect(tm_collector_t *c, tm_batch_t *b)
{
    collector_t *col = c->arg;
    for (uint32_t i = 0; i < b->count; i++) {
        const tm_record_t *r = &b->recs[i];
        col->records++;
        if (r->op != TM_OP_CREATE || r->before != NULL || r->after == NULL) {
            col->not_inserts++;
            continue;
        }
        const tm_row_t *a = r->after;
        char v[32] = "null";
        if (!tm_row_is_null(a, C_V))
            snprintf(v, sizeof(v), "%lld", (long long)a->vals[C_V].u.i64);
        tm_buf_appendf(&col->lines, "%lld|%lld|%lld|%s\n",
                       (long long)(a->vals[C_WS].u.i64 / 1000000),
                       (long long)a->vals[RN_COL].u.i64, (long long)a->vals[C_ID].u.i64, v);
    }
    tm_batch_unref(b);
    return 0;
}

static void collector_init(collector_t *c)
{
    memset(c, 0, sizeof(*c));
    c->c.emit = collect;
    c->c.arg = c;
    tm_buf_init(&c->lines);
}

/* The lines collected so far, sorted, and cleared. */
static char *take(collector_t *c)
{
    tm_buf_putc(&c->lines, '\0');
    char *s = tst_sort_lines(c->lines.data);
    tm_buf_clear(&c->lines);
    return s;
}

typedef struct fixture {
    tm_schema_t *in, *out;
    int part[2], order[2];
    bool desc[2], nf[2];
    tm_window_rank_spec_t spec;
    char *dir;
    tm_store_t *store;
    tm_operator_metrics_t metrics;
    tm_operator_ctx_t ctx;
    const tm_operator_ops_t *ops;
    tm_operator_t *op;
} fixture_t;

static void fixture_open_op(fixture_t *f)
{
    f->ctx = (tm_operator_ctx_t){.uid = "wrank-1", .job = "t", .parallelism = 1,
                                 .max_parallelism = 128, .kg_first = 0, .kg_last = 127,
                                 .store = f->store, .metrics = &f->metrics};
    int rc = tm_window_rank_new(&f->spec, &f->ctx, &f->ops, &f->op, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "tm_window_rank_new: %s\n", err);
    TM_REQUIRE(rc == 0);
}

/* PARTITION BY ws, we ORDER BY v DESC (NULLS FIRST), id; top `limit`. */
static void fixture_init(fixture_t *f, int64_t limit)
{
    memset(f, 0, sizeof(*f));
    f->in = in_schema();
    f->out = out_schema(f->in);
    f->part[0] = C_WS;
    f->part[1] = C_WE;
    f->order[0] = C_V;
    f->order[1] = C_ID;
    f->desc[0] = true;
    f->nf[0] = true;
    f->spec.topn = (tm_topn_spec_t){.in_schema = f->in, .part_cols = f->part, .npart = 2,
                                    .order_cols = f->order, .order_desc = f->desc,
                                    .nulls_first = f->nf, .norder = 2, .limit = limit,
                                    .rn_col = RN_COL, .rank_number = true,
                                    .out_schema = f->out};
    f->spec.end_col = C_WE;
    char p[512];
    f->dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), f->dir, "work"), &o, &f->store, err,
                             sizeof(err)) == 0);
}

static void fixture_free(fixture_t *f)
{
    if (f->op != NULL)
        f->ops->free(f->op);
    tm_store_close(f->store);
    tst_rmdir(f->dir);
    tm_schema_unref(f->in);
    tm_schema_unref(f->out);
}

static int count_entries(tm_store_t *store, const char *uid)
{
    tm_buf_t d;
    tm_buf_init(&d);
    tst_dump_cf(store, uid, &d);
    int n = 0;
    for (size_t i = 0; i < d.len; i++)
        n += d.data[i] == '\n';
    tm_buf_release(&d);
    return n;
}

static void process(fixture_t *f, tm_batch_t *b, collector_t *c)
{
    int rc = f->ops->process(f->op, 0, b, &c->c, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "process: %s\n", err);
    TM_REQUIRE(rc == 0);
    tm_batch_unref(b);
}

static void watermark(fixture_t *f, int64_t sec, collector_t *c)
{
    int rc = f->ops->on_watermark(f->op, sec * 1000000, NULL, &c->c, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "on_watermark: %s\n", err);
    TM_REQUIRE(rc == 0);
}

/* Each window fires once, when the watermark reaches its window_time; late rows are counted. */
static void test_fires_on_watermark(void)
{
    fixture_t f;
    fixture_init(&f, 2);
    fixture_open_op(&f);
    collector_t c;
    collector_init(&c);
    for (int round = 0; round < 3; round++) {
        tm_batch_t *b = tm_batch_new();
        for (int i = 0; i < 5; i++) {
            int64_t id = round * 10 + i;
            add_insert(b, f.in, mk_row(b, f.in, id, 0, (id * 7) % 11, 1));
            add_insert(b, f.in, mk_row(b, f.in, 100 + id, 10, id, 1));
        }
        process(&f, b, &c);
    }
    TM_CHECK_INT(c.records, 0);
    /* Two rows per window and one timer each survive the pruning. */
    TM_CHECK_INT(count_entries(f.store, "wrank-1"), 2 * 2 + 2);
    watermark(&f, 5, &c);
    watermark(&f, 9, &c); /* window_time of [0, 10) is 10s - 1µs: not reached yet */
    TM_CHECK_INT(c.records, 0);
    int rc = f.ops->on_watermark(f.op, 10 * 1000000 - 1, NULL, &c.c, err, sizeof(err));
    TM_REQUIRE(rc == 0);
    char *got = take(&c);
    /* v = id * 7 % 11 over ids 0..4, 10..14, 20..24: 10 at ids 3 and 14 (ties by id). */
    TM_CHECK_STR(got, "0|1|3|10\n0|2|14|10\n");
    free(got);
    TM_CHECK_INT(count_entries(f.store, "wrank-1"), 2 + 1);
    /* A row of the fired window is late: counted, not applied, nothing emitted. */
    tm_batch_t *b = tm_batch_new();
    add_insert(b, f.in, mk_row(b, f.in, 999, 0, 1000, 1));
    process(&f, b, &c);
    TM_CHECK_INT((int)atomic_load(&f.metrics.late_rows), 1);
    TM_CHECK_INT(count_entries(f.store, "wrank-1"), 2 + 1);
    /* The end of a bounded input closes the rest. */
    TM_REQUIRE(f.ops->on_end(f.op, &c.c, err, sizeof(err)) == 0);
    got = take(&c);
    TM_CHECK_STR(got, "10|1|124|24\n10|2|123|23\n");
    free(got);
    TM_CHECK_INT(c.records, 4);
    TM_CHECK_INT(c.not_inserts, 0);
    TM_CHECK_INT(count_entries(f.store, "wrank-1"), 0);
    tm_buf_release(&c.lines);
    fixture_free(&f);
}

/* A checkpoint keeps the open windows, their timers and the watermark. */
static void test_checkpoint_restore(void)
{
    fixture_t f;
    fixture_init(&f, 3);
    fixture_open_op(&f);
    collector_t c;
    collector_init(&c);
    tm_batch_t *b = tm_batch_new();
    for (int i = 0; i < 8; i++) {
        add_insert(b, f.in, mk_row(b, f.in, i, 0, i, 1));
        add_insert(b, f.in, mk_row(b, f.in, 50 + i, 20, i % 3 == 0 ? INT64_MIN : i, 1));
    }
    process(&f, b, &c);
    watermark(&f, 3, &c);
    TM_REQUIRE(f.ops->on_barrier(f.op, 1, &c.c, err, sizeof(err)) == 0);
    char p[512], chk[512];
    TM_REQUIRE(tm_store_checkpoint(f.store, tst_path(chk, sizeof(chk), f.dir, "chk-1"), NULL, err,
                                   sizeof(err)) == 0);
    /* Fire after the checkpoint, then crash: the restored instance fires again. */
    watermark(&f, 12, &c);
    char *got = take(&c);
    TM_CHECK_STR(got, "0|1|7|7\n0|2|6|6\n0|3|5|5\n");
    free(got);
    f.ops->free(f.op);
    f.op = NULL;
    f.store = tm_store_close(f.store);
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open_from_checkpoint(chk, tst_path(p, sizeof(p), f.dir, "work2"), &o,
                                             &f.store, err, sizeof(err)) == 0);
    fixture_open_op(&f);
    TM_REQUIRE(f.ops->restore(f.op, err, sizeof(err)) == 0);
    /* The restored watermark (3s) makes a row of a window that closed before it late. */
    b = tm_batch_new();
    add_insert(b, f.in, mk_row(b, f.in, 77, -10, 1, 1));
    process(&f, b, &c);
    TM_CHECK_INT((int)atomic_load(&f.metrics.late_rows), 1);
    watermark(&f, 12, &c);
    got = take(&c);
    TM_CHECK_STR(got, "0|1|7|7\n0|2|6|6\n0|3|5|5\n");
    free(got);
    /* NULLs first in a DESC order (PostgreSQL's default). */
    TM_REQUIRE(f.ops->on_end(f.op, &c.c, err, sizeof(err)) == 0);
    got = take(&c);
    TM_CHECK_STR(got, "20|1|50|null\n20|2|53|null\n20|3|56|null\n");
    free(got);
    /* Only the watermark the barrier recorded in each of the 128 key groups is left. */
    TM_CHECK_INT(count_entries(f.store, "wrank-1"), 128);
    tm_buf_release(&c.lines);
    fixture_free(&f);
}

/* The input must be insert-only; a bad spec is refused. */
static void test_refusals(void)
{
    fixture_t f;
    fixture_init(&f, 2);
    fixture_open_op(&f);
    collector_t c;
    collector_init(&c);
    tm_batch_t *b = tm_batch_new();
    tm_record_t *r = tm_batch_add(b, f.in, TM_OP_UPDATE);
    r->before = mk_row(b, f.in, 1, 0, 1, 1);
    r->after = mk_row(b, f.in, 1, 0, 2, 1);
    TM_CHECK(f.ops->process(f.op, 0, b, &c.c, err, sizeof(err)) == TM_EINVAL);
    TM_CHECK(strstr(err, "insert-only") != NULL);
    tm_batch_unref(b);
    f.ops->free(f.op);
    f.op = NULL;
    const tm_operator_ops_t *ops;
    tm_operator_t *op = NULL;
    f.ctx.store = f.store;
    f.spec.end_col = C_K; /* not a timestamp, nor a partition column */
    TM_CHECK(tm_window_rank_new(&f.spec, &f.ctx, &ops, &op, err, sizeof(err)) == TM_EINVAL);
    f.spec.end_col = C_WE;
    f.part[1] = C_K; /* window_end not in the partition */
    TM_CHECK(tm_window_rank_new(&f.spec, &f.ctx, &ops, &op, err, sizeof(err)) == TM_EINVAL);
    TM_CHECK(strstr(err, "window_end") != NULL);
    f.part[1] = C_WE;
    f.ctx.store = NULL;
    TM_CHECK(tm_window_rank_new(&f.spec, &f.ctx, &ops, &op, err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(op == NULL);
    tm_buf_release(&c.lines);
    fixture_free(&f);
}

/* ---- random workload against a brute-force ranking ---- */

static uint64_t rng = 7;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

typedef struct mrow {
    int64_t id, ws, v; /* v INT64_MIN: NULL */
} mrow_t;

static int mrow_cmp(const void *a, const void *b)
{
    const mrow_t *x = a, *y = b;
    if (x->ws != y->ws)
        return x->ws < y->ws ? -1 : 1;
    if ((x->v == INT64_MIN) != (y->v == INT64_MIN))
        return x->v == INT64_MIN ? -1 : 1;
    if (x->v != y->v)
        return x->v > y->v ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void test_random(void)
{
    enum { NROWS = 3000, LIMIT = 4 };
    fixture_t f;
    fixture_init(&f, LIMIT);
    fixture_open_op(&f);
    collector_t c;
    collector_init(&c);
    static mrow_t rows[NROWS];
    int n = 0;
    tm_buf_t want;
    tm_buf_init(&want);
    int64_t wm = -1000; /* seconds */
    while (n < NROWS) {
        tm_batch_t *b = tm_batch_new();
        int k = 1 + (int)rnd(60);
        for (int i = 0; i < k && n < NROWS; i++) {
            /* Times up to 25 s ahead of the watermark, whose windows are still open. */
            int64_t t = wm + 1 + (int64_t)rnd(25);
            int64_t ws = (t >= 0 ? t / 10 : -((-t + 9) / 10)) * 10;
            if (ws + 10 - 1 <= wm)
                continue;
            mrow_t m = {n, ws, rnd(8) == 0 ? INT64_MIN : (int64_t)rnd(30)};
            rows[n++] = m;
            add_insert(b, f.in, mk_row(b, f.in, m.id, m.ws, m.v, 1));
        }
        process(&f, b, &c);
        wm += (int64_t)rnd(6);
        watermark(&f, wm, &c);
    }
    TM_REQUIRE(f.ops->on_end(f.op, &c.c, err, sizeof(err)) == 0);
    qsort(rows, (size_t)n, sizeof(rows[0]), mrow_cmp);
    for (int i = 0, rank = 0; i < n; i++) {
        rank = i > 0 && rows[i - 1].ws == rows[i].ws ? rank + 1 : 1;
        if (rank > LIMIT)
            continue;
        char v[32] = "null";
        if (rows[i].v != INT64_MIN)
            snprintf(v, sizeof(v), "%lld", (long long)rows[i].v);
        tm_buf_appendf(&want, "%lld|%d|%lld|%s\n", (long long)rows[i].ws, rank,
                       (long long)rows[i].id, v);
    }
    tm_buf_putc(&want, '\0');
    char *w = tst_sort_lines(want.data), *got = take(&c);
    TM_CHECK_STR(got, w);
    TM_CHECK_INT(c.not_inserts, 0);
    TM_CHECK_INT((int)atomic_load(&f.metrics.late_rows), 0);
    free(w);
    free(got);
    tm_buf_release(&want);
    tm_buf_release(&c.lines);
    fixture_free(&f);
}

/*
 * Rescaling: a checkpoint of one subtask restored into two that own half the
 * key groups each; together they emit exactly what the one would have.
 */
static void test_rescale(void)
{
    fixture_t f;
    fixture_init(&f, 2);
    fixture_open_op(&f);
    collector_t c;
    collector_init(&c);
    tm_batch_t *b = tm_batch_new();
    for (int w = 0; w < 40; w++)
        for (int i = 0; i < 5; i++)
            add_insert(b, f.in, mk_row(b, f.in, w * 10 + i, w * 10, (w * 7 + i * 3) % 5, 1));
    process(&f, b, &c);
    watermark(&f, -100, &c);
    TM_REQUIRE(f.ops->on_barrier(f.op, 1, &c.c, err, sizeof(err)) == 0);
    char chk[512], p[512];
    TM_REQUIRE(tm_store_checkpoint(f.store, tst_path(chk, sizeof(chk), f.dir, "chk-1"), NULL, err,
                                   sizeof(err)) == 0);
    TM_REQUIRE(f.ops->on_end(f.op, &c.c, err, sizeof(err)) == 0);
    char *want = take(&c);
    TM_CHECK_INT(c.records, 80);
    collector_t halves;
    collector_init(&halves);
    for (int h = 0; h < 2; h++) {
        char name[16];
        snprintf(name, sizeof(name), "half-%d", h);
        tm_store_t *st = NULL;
        tm_store_opts_t o = tst_opts(0);
        TM_REQUIRE(tm_store_open_from_checkpoint(chk, tst_path(p, sizeof(p), f.dir, name), &o,
                                                 &st, err, sizeof(err)) == 0);
        tm_operator_metrics_t m = {0};
        tm_operator_ctx_t ctx = f.ctx;
        ctx.store = st;
        ctx.metrics = &m;
        ctx.subtask = h;
        ctx.parallelism = 2;
        ctx.kg_first = h == 0 ? 0 : 64;
        ctx.kg_last = h == 0 ? 63 : 127;
        const tm_operator_ops_t *ops;
        tm_operator_t *op;
        TM_REQUIRE(tm_window_rank_new(&f.spec, &ctx, &ops, &op, err, sizeof(err)) == 0);
        TM_REQUIRE(ops->restore(op, err, sizeof(err)) == 0);
        int before = halves.records;
        TM_REQUIRE(ops->on_end(op, &halves.c, err, sizeof(err)) == 0);
        TM_CHECK(halves.records > before); /* the windows are spread over both halves */
        ops->free(op);
        tm_store_close(st);
    }
    char *got = take(&halves);
    TM_CHECK_STR(got, want);
    free(got);
    free(want);
    tm_buf_release(&c.lines);
    tm_buf_release(&halves.lines);
    fixture_free(&f);
}

/* ---- the window TVF operator ---- */

typedef struct tvf_sink {
    tm_collector_t c;
    tm_buf_t lines; /* "id|start|end|time|s" in seconds (time in µs) */
    int records;
} tvf_sink_t;

static int tvf_collect(tm_collector_t *c, tm_batch_t *b)
{
    tvf_sink_t *k = c->arg;
    for (uint32_t i = 0; i < b->count; i++) {
        const tm_record_t *r = &b->recs[i];
        const tm_row_t *a = r->after;
        k->records++;
        TM_CHECK(r->op == TM_OP_CREATE && r->before == NULL && a != NULL);
        tm_buf_appendf(&k->lines, "%lld|%lld|%lld|%lld|%.*s\n", (long long)a->vals[0].u.i64,
                       (long long)(a->vals[3].u.i64 / 1000000),
                       (long long)(a->vals[4].u.i64 / 1000000), (long long)a->vals[5].u.i64,
                       (int)a->vals[2].u.var.len, a->vals[2].u.var.ptr);
    }
    tm_batch_unref(b);
    return 0;
}

/* HOP(5 s, 15 s): each row once per window, window columns appended, text copied. */
static void test_window_tvf(void)
{
    tm_schema_t *in = tm_schema_new(3), *os = tm_schema_new(6);
    static const char *const names[] = {"id", "ts", "s", "window_start", "window_end",
                                        "window_time"};
    static const tm_type_t types[] = {TM_T_INT64, TM_T_TIMESTAMP, TM_T_TEXT, TM_T_TIMESTAMP,
                                      TM_T_TIMESTAMP, TM_T_TIMESTAMP};
    for (int c = 0; c < 6; c++) {
        if (c < 3) {
            tst_col(in, c, names[c], types[c], -1);
            in->cols[c].nullable = true;
        }
        tst_col(os, c, names[c], types[c], -1);
        os->cols[c].nullable = c < 3;
    }
    tm_schema_finish(in);
    tm_schema_finish(os);
    tm_window_tvf_spec_t spec = {.win = {.in_schema = in, .kind = TM_WINDOW_HOP, .time_col = 1,
                                         .size_us = 15 * 1000000, .slide_us = 5 * 1000000},
                                 .out_schema = os};
    tm_operator_metrics_t m = {0};
    tm_operator_ctx_t ctx = {.uid = "wtvf-1", .parallelism = 1, .max_parallelism = 128,
                             .kg_last = 127, .metrics = &m};
    const tm_operator_ops_t *ops;
    tm_operator_t *op = NULL;
    TM_REQUIRE(tm_window_tvf_new(&spec, &ctx, &ops, &op, err, sizeof(err)) == 0);
    tvf_sink_t k = {.c = {.emit = tvf_collect}};
    k.c.arg = &k;
    tm_buf_init(&k.lines);
    tm_batch_t *b = tm_batch_new();
    int64_t ts[] = {12, -3, INT64_MIN};
    for (int i = 0; i < 3; i++) {
        tm_row_t *r = tm_batch_new_row(b, in);
        r->vals[0].u.i64 = i + 1;
        tm_row_set_null(r, 0, false);
        if (ts[i] != INT64_MIN) {
            r->vals[1].u.i64 = ts[i] * 1000000;
            tm_row_set_null(r, 1, false);
        }
        char txt[16];
        snprintf(txt, sizeof(txt), "text-%d", i + 1);
        tm_batch_set_var(b, &r->vals[2], txt, strlen(txt));
        tm_row_set_null(r, 2, false);
        add_insert(b, in, r);
    }
    TM_REQUIRE(ops->process(op, 0, b, &k.c, err, sizeof(err)) == 0);
    tm_batch_unref(b); /* the output holds its own copies */
    tm_buf_putc(&k.lines, '\0');
    char *got = tst_sort_lines(k.lines.data);
    TM_CHECK_STR(got, "1|0|15|14999999|text-1\n1|10|25|24999999|text-1\n"
                      "1|5|20|19999999|text-1\n2|-10|5|4999999|text-2\n"
                      "2|-15|0|-1|text-2\n2|-5|10|9999999|text-2\n");
    free(got);
    TM_CHECK_INT(k.records, 6); /* the row without a time is in no window */
    /* An update is refused: the input must be insert-only. */
    b = tm_batch_new();
    tm_record_t *r = tm_batch_add(b, in, TM_OP_UPDATE);
    r->before = tm_batch_new_row(b, in);
    r->after = tm_batch_new_row(b, in);
    TM_CHECK(ops->process(op, 0, b, &k.c, err, sizeof(err)) == TM_EINVAL);
    TM_CHECK(strstr(err, "insert-only") != NULL);
    tm_batch_unref(b);
    ops->free(op);
    /* SESSION cannot be assigned per row. */
    spec.win.kind = TM_WINDOW_SESSION;
    TM_CHECK(tm_window_tvf_new(&spec, &ctx, &ops, &op, err, sizeof(err)) == TM_EINVAL);
    tm_buf_release(&k.lines);
    tm_schema_unref(in);
    tm_schema_unref(os);
}

int main(void)
{
    TM_RUN(test_refusals);
    TM_RUN(test_fires_on_watermark);
    TM_RUN(test_checkpoint_restore);
    TM_RUN(test_random);
    TM_RUN(test_rescale);
    TM_RUN(test_window_tvf);
    return tm_test_done();
}
