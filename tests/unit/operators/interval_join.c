/*
 * Unit tests: the interval join operator (operators/interval_join.h), driven
 * directly with a real store and watermarks through on_watermark.
 *
 * The main test plays a seeded random stream of insert batches on both
 * sides (out-of-order within the watermark's bound, NULL keys and times,
 * duplicate rows) with advancing watermarks, for INNER, LEFT, RIGHT and
 * FULL, and compares the output with a brute-force join of everything that
 * arrived; it checks that the watermark empties the state, and restores a
 * store checkpoint midway into a new instance and replays from there.
 */
#include "../state/state_test.h"
#include "operators/interval_join.h"

/* left(id, k, t, a) and right(id, k, t, b): t is a timestamp in µs. */
enum { C_ID, C_K, C_T, C_V, NCOLS };

static char err[1024];

static tm_schema_t *side_schema(const char *table, const char *v)
{
    tm_schema_t *s = tm_schema_new(NCOLS);
    tm_schema_set_str(&s->table, table);
    tst_col(s, C_ID, "id", TM_T_INT64, -1);
    tst_col(s, C_K, "k", TM_T_INT64, -1);
    tst_col(s, C_T, "t", TM_T_TIMESTAMP, -1);
    tst_col(s, C_V, v, TM_T_INT64, -1);
    for (int i = 0; i < NCOLS; i++)
        s->cols[i].nullable = true;
    tm_schema_finish(s);
    return s;
}

static tm_schema_t *pair_schema(void)
{
    tm_schema_t *s = tm_schema_new(2 * NCOLS);
    const char *names[] = {"id", "k", "t", "a", "id2", "k2", "t2", "b"};
    tm_type_t types[] = {TM_T_INT64, TM_T_INT64, TM_T_TIMESTAMP, TM_T_INT64};
    for (int i = 0; i < 2 * NCOLS; i++) {
        tst_col(s, i, names[i], types[i % NCOLS], -1);
        s->cols[i].nullable = true;
    }
    tm_schema_finish(s);
    return s;
}

#define NUL INT64_MIN

static tm_row_t *mk_row(tm_batch_t *b, const tm_schema_t *s, int64_t id, int64_t k, int64_t t,
                        int64_t v)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    int64_t vals[NCOLS] = {id, k, t, v};
    for (int c = 0; c < NCOLS; c++)
        if (vals[c] != NUL) {
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

static void row_text(tm_buf_t *o, const tm_row_t *r, int from, int n)
{
    for (int c = from; c < from + n; c++) {
        if (c > from)
            tm_buf_putc(o, ',');
        if (tm_row_is_null(r, c))
            tm_buf_puts(o, "-");
        else
            tm_buf_appendf(o, "%lld", (long long)r->vals[c].u.i64);
    }
}

/* ---- collecting the output ---- */

typedef struct collector {
    tm_collector_t c;
    tm_buf_t text; /* one line per output row */
    int records, non_inserts;
} collector_t;

static int collect(tm_collector_t *c, tm_batch_t *b)
{
    collector_t *col = c->arg;
    for (uint32_t i = 0; i < b->count; i++) {
        const tm_record_t *r = &b->recs[i];
        if (r->op != TM_OP_CREATE || r->before != NULL || r->after == NULL) {
            col->non_inserts++;
            continue;
        }
        row_text(&col->text, r->after, 0, 2 * NCOLS);
        tm_buf_putc(&col->text, '\n');
        col->records++;
    }
    tm_batch_unref(b);
    return 0;
}

static void collector_init(collector_t *c)
{
    memset(c, 0, sizeof(*c));
    tm_buf_init(&c->text);
    c->c.emit = collect;
    c->c.arg = c;
}

static char *collected(collector_t *c)
{
    tm_buf_putc(&c->text, '\0');
    c->text.len--;
    return tst_sort_lines(c->text.data);
}

/* ---- the brute-force join ---- */

#define MAXROWS 4096

typedef struct model {
    const tm_row_t *rows[2][MAXROWS];
    int n[2];
} model_t;

static bool pair_matches(const tm_interval_join_spec_t *spec, const tm_row_t *l,
                         const tm_row_t *r, bool residual)
{
    if (tm_row_is_null(l, C_K) || tm_row_is_null(r, C_K) || tm_row_is_null(l, C_T) ||
        tm_row_is_null(r, C_T))
        return false;
    if (l->vals[C_K].u.i64 != r->vals[C_K].u.i64)
        return false;
    int64_t lt = l->vals[C_T].u.i64, rt = r->vals[C_T].u.i64;
    if (lt < rt + spec->lower_us || lt > rt + spec->upper_us)
        return false;
    /* The residual a < b: NULL is not true. */
    return !residual || (!tm_row_is_null(l, C_V) && !tm_row_is_null(r, C_V) &&
                         l->vals[C_V].u.i64 < r->vals[C_V].u.i64);
}

static char *expected(const tm_interval_join_spec_t *spec, const model_t *m, bool residual)
{
    tm_buf_t o;
    tm_buf_init(&o);
    bool louter = spec->type == TM_JOIN_LEFT || spec->type == TM_JOIN_FULL;
    bool router = spec->type == TM_JOIN_RIGHT || spec->type == TM_JOIN_FULL;
    bool rmatched[MAXROWS] = {false};
    for (int i = 0; i < m->n[0]; i++) {
        bool lm = false;
        for (int j = 0; j < m->n[1]; j++)
            if (pair_matches(spec, m->rows[0][i], m->rows[1][j], residual)) {
                lm = rmatched[j] = true;
                row_text(&o, m->rows[0][i], 0, NCOLS);
                tm_buf_putc(&o, ',');
                row_text(&o, m->rows[1][j], 0, NCOLS);
                tm_buf_putc(&o, '\n');
            }
        if (!lm && louter) {
            row_text(&o, m->rows[0][i], 0, NCOLS);
            tm_buf_puts(&o, ",-,-,-,-\n");
        }
    }
    for (int j = 0; router && j < m->n[1]; j++)
        if (!rmatched[j]) {
            tm_buf_puts(&o, "-,-,-,-,");
            row_text(&o, m->rows[1][j], 0, NCOLS);
            tm_buf_putc(&o, '\n');
        }
    tm_buf_putc(&o, '\0');
    char *s = tst_sort_lines(o.data);
    tm_buf_release(&o);
    return s;
}

/* ---- the random stream ---- */

static uint64_t rng = 7;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

typedef struct action {
    int side;         /* 0 / 1: a batch of that side; -1: a watermark */
    tm_batch_t *batch;
    int64_t wm;
} action_t;

typedef struct fixture {
    tm_schema_t *sch[2], *out;
    int lk[1], rk[1];
    tm_expr_pool_t *pool;
    tm_interval_join_spec_t spec;
} fixture_t;

static void fixture_init(fixture_t *f, tm_join_type_t type, int64_t lower, int64_t upper,
                         bool residual)
{
    memset(f, 0, sizeof(*f));
    f->sch[0] = side_schema("l", "a");
    f->sch[1] = side_schema("r", "b");
    f->out = pair_schema();
    f->lk[0] = f->rk[0] = C_K;
    f->pool = tm_expr_pool_new();
    tm_expr_t *res = NULL;
    if (residual) {
        tm_expr_type_t big = {TM_T_INT64, 0, -1, 0};
        tm_expr_t *a = tm_expr_column(f->pool, C_V, &big, "a");
        tm_expr_t *b = tm_expr_column(f->pool, NCOLS + C_V, &big, "b");
        TM_REQUIRE(tm_expr_operator(f->pool, "<", a, b, &res, err, sizeof(err)) == 0);
    }
    f->spec = (tm_interval_join_spec_t){.type = type, .left_schema = f->sch[0],
                                        .right_schema = f->sch[1], .left_keys = f->lk,
                                        .right_keys = f->rk, .nkeys = 1, .left_time = C_T,
                                        .right_time = C_T, .lower_us = lower,
                                        .upper_us = upper, .residual = res,
                                        .out_schema = f->out};
}

static void fixture_free(fixture_t *f)
{
    tm_schema_unref(f->sch[0]);
    tm_schema_unref(f->sch[1]);
    tm_schema_unref(f->out);
    tm_expr_pool_free(f->pool);
}

typedef struct run {
    char *dir;
    tm_store_t *store;
    tm_operator_metrics_t metrics;
    tm_operator_ctx_t ctx;
    const tm_operator_ops_t *ops;
    tm_operator_t *op;
} run_t;

static void run_open(run_t *r, const tm_interval_join_spec_t *spec)
{
    memset(&r->metrics, 0, sizeof(r->metrics));
    r->ctx = (tm_operator_ctx_t){.uid = "ij-1", .job = "t", .parallelism = 1,
                                 .max_parallelism = 128, .kg_first = 0, .kg_last = 127,
                                 .store = r->store, .metrics = &r->metrics};
    int rc = tm_interval_join_new(spec, &r->ctx, &r->ops, &r->op, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "tm_interval_join_new: %s\n", err);
    TM_REQUIRE(rc == 0);
}

static void run_close(run_t *r)
{
    r->ops->free(r->op);
    r->op = NULL;
}

static int count_entries(tm_store_t *store)
{
    tm_buf_t d;
    tm_buf_init(&d);
    tst_dump_cf(store, "ij-1", &d);
    int n = 0;
    for (size_t i = 0; i < d.len; i++)
        n += d.data[i] == '\n';
    tm_buf_release(&d);
    return n;
}

static void do_action(run_t *r, const fixture_t *f, const action_t *a, collector_t *c)
{
    int rc;
    if (a->side >= 0) {
        rc = r->ops->process(r->op, a->side, a->batch, &c->c, err, sizeof(err));
    } else {
        int64_t fwd = 0;
        rc = r->ops->on_watermark(r->op, a->wm, &fwd, &c->c, err, sizeof(err));
        int64_t hold = f->spec.upper_us > -f->spec.lower_us ? f->spec.upper_us
                                                            : -f->spec.lower_us;
        TM_CHECK(fwd == a->wm - hold);
    }
    if (rc != 0)
        fprintf(stderr, "action: %s\n", err);
    TM_REQUIRE(rc == 0);
}

/*
 * Rows arrive with times at or after the watermark (at most 30 µs ahead);
 * the interval is [lower, upper] µs.  At the end a far watermark must empty
 * the state (padding every unmatched outer row), and the output must equal
 * the brute-force join.
 */
static void random_stream(tm_join_type_t type, int64_t lower, int64_t upper, bool residual)
{
    fixture_t f;
    fixture_init(&f, type, lower, upper, residual);
    run_t r = {0};
    char p[512], chk[512];
    r.dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), r.dir, "work"), &o, &r.store, err,
                             sizeof(err)) == 0);
    run_open(&r, &f.spec);
    enum { NACT = 400, CHK_AT = 200, CRASH_AT = 300 };
    static action_t acts[NACT + 1];
    static model_t m;
    memset(&m, 0, sizeof(m));
    int64_t wm = 0, id = 1;
    rng = 99 + (uint64_t)type * 31 + (uint64_t)upper;
    for (int i = 0; i < NACT; i++) {
        if (rnd(4) == 0) {
            wm += rnd(12);
            acts[i] = (action_t){-1, NULL, wm};
            continue;
        }
        int s = (int)rnd(2);
        tm_batch_t *b = tm_batch_new();
        int n = 1 + (int)rnd(6);
        for (int j = 0; j < n && m.n[s] < MAXROWS; j++) {
            int64_t k = rnd(12) == 0 ? NUL : (int64_t)rnd(4);
            int64_t t = rnd(15) == 0 ? NUL : wm + (int64_t)rnd(30);
            int64_t v = rnd(8) == 0 ? NUL : (int64_t)rnd(10);
            tm_row_t *row = mk_row(b, f.sch[s], rnd(10) == 0 ? 0 : id++, k, t, v);
            add_insert(b, f.sch[s], row);
            m.rows[s][m.n[s]++] = row;
            if (rnd(10) == 0 && m.n[s] < MAXROWS) { /* the same row twice */
                add_insert(b, f.sch[s], row);
                m.rows[s][m.n[s]++] = row;
            }
        }
        acts[i] = (action_t){s, b, 0};
    }
    collector_t c, saved;
    collector_init(&c);
    collector_init(&saved);
    bool restarted = false;
    int entries_mid = 0;
    for (int i = 0; i < NACT; i++) {
        do_action(&r, &f, &acts[i], &c);
        if (i == CHK_AT) {
            TM_REQUIRE(r.ops->on_barrier(r.op, 1, &c.c, err, sizeof(err)) == 0);
            TM_REQUIRE(tm_store_checkpoint(r.store, tst_path(chk, sizeof(chk), r.dir, "chk-1"),
                                           NULL, err, sizeof(err)) == 0);
            tm_buf_clear(&saved.text);
            tm_buf_append(&saved.text, c.text.data, c.text.len);
            saved.records = c.records;
            entries_mid = count_entries(r.store);
        }
        if (i == CRASH_AT && !restarted) {
            /* Crash: everything after the checkpoint is lost; restore and replay. */
            restarted = true;
            run_close(&r);
            r.store = tm_store_close(r.store);
            TM_REQUIRE(tm_store_open_from_checkpoint(chk, tst_path(p, sizeof(p), r.dir, "work2"),
                                                     &o, &r.store, err, sizeof(err)) == 0);
            run_open(&r, &f.spec);
            tm_buf_clear(&c.text);
            tm_buf_append(&c.text, saved.text.data, saved.text.len);
            c.records = saved.records;
            i = CHK_AT;
        }
    }
    TM_CHECK(restarted);
    /* The watermark bounds the state: far fewer entries than rows seen. */
    TM_CHECK(entries_mid > 0);
    TM_CHECK(entries_mid < 2 * (m.n[0] + m.n[1]) / 3);
    action_t far = {-1, NULL, wm + 1000};
    do_action(&r, &f, &far, &c);
    TM_CHECK_INT(count_entries(r.store), 0);
    int before_end = c.records;
    TM_REQUIRE(r.ops->on_end(r.op, &c.c, err, sizeof(err)) == 0);
    TM_CHECK_INT(c.records, before_end); /* nothing was left to pad */
    TM_CHECK_INT(c.non_inserts, 0);
    char *got = collected(&c), *want = expected(&f.spec, &m, residual);
    TM_CHECK_STR(got, want);
    TM_CHECK(c.records > 50);
    free(got);
    free(want);
    run_close(&r);
    tm_store_close(r.store);
    for (int i = 0; i < NACT; i++)
        tm_batch_unref(acts[i].batch);
    tm_buf_release(&c.text);
    tm_buf_release(&saved.text);
    tst_rmdir(r.dir);
    fixture_free(&f);
}

static void test_inner(void)
{
    random_stream(TM_JOIN_INNER, 0, 10, false);
}

static void test_inner_residual_negative_lower(void)
{
    random_stream(TM_JOIN_INNER, -8, 3, true);
}

static void test_left(void)
{
    random_stream(TM_JOIN_LEFT, -5, 5, false);
}

static void test_right_positive_bounds(void)
{
    random_stream(TM_JOIN_RIGHT, 2, 9, false);
}

static void test_full_residual(void)
{
    random_stream(TM_JOIN_FULL, -10, 0, true);
}

/* End of input pads every unmatched outer row; a late row joins what is left, then goes. */
static void test_end_and_late_rows(void)
{
    fixture_t f;
    fixture_init(&f, TM_JOIN_FULL, 0, 10, false);
    run_t r = {0};
    char p[512];
    r.dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), r.dir, "work"), &o, &r.store, err,
                             sizeof(err)) == 0);
    run_open(&r, &f.spec);
    collector_t c;
    collector_init(&c);
    /* Right rows at 100 (k 1) and 500 (k 2); a left row at 105 (k 1) matches the first. */
    tm_batch_t *b1 = tm_batch_new();
    add_insert(b1, f.sch[1], mk_row(b1, f.sch[1], 1, 1, 100, 7));
    add_insert(b1, f.sch[1], mk_row(b1, f.sch[1], 2, 2, 500, 8));
    TM_REQUIRE(r.ops->process(r.op, 1, b1, &c.c, err, sizeof(err)) == 0);
    tm_batch_t *b2 = tm_batch_new();
    add_insert(b2, f.sch[0], mk_row(b2, f.sch[0], 3, 1, 105, 9));
    add_insert(b2, f.sch[0], mk_row(b2, f.sch[0], 4, NUL, 105, 9)); /* padded at once */
    TM_REQUIRE(r.ops->process(r.op, 0, b2, &c.c, err, sizeof(err)) == 0);
    TM_CHECK_INT(c.records, 2);
    /* Watermark 200: the right row at 100 (matched) goes silently, the one at 500 stays. */
    int64_t fwd;
    TM_REQUIRE(r.ops->on_watermark(r.op, 200, &fwd, &c.c, err, sizeof(err)) == 0);
    TM_CHECK(fwd == 190);
    TM_CHECK_INT(c.records, 2);
    /* A late left row (k 2, time 150: behind the watermark) cannot match 500: padded now. */
    tm_batch_t *b3 = tm_batch_new();
    add_insert(b3, f.sch[0], mk_row(b3, f.sch[0], 5, 2, 150, 1));
    TM_REQUIRE(r.ops->process(r.op, 0, b3, &c.c, err, sizeof(err)) == 0);
    TM_CHECK_INT(c.records, 3);
    /* A left row at 300 (k 3) can match right rows up to time 300: the watermark 305 pads it. */
    tm_batch_t *b5 = tm_batch_new();
    add_insert(b5, f.sch[0], mk_row(b5, f.sch[0], 7, 3, 300, 1));
    TM_REQUIRE(r.ops->process(r.op, 0, b5, &c.c, err, sizeof(err)) == 0);
    TM_REQUIRE(r.ops->on_watermark(r.op, 300, &fwd, &c.c, err, sizeof(err)) == 0);
    TM_CHECK_INT(c.records, 3); /* 300 is not before 300: it may still match */
    TM_REQUIRE(r.ops->on_watermark(r.op, 305, &fwd, &c.c, err, sizeof(err)) == 0);
    TM_CHECK_INT(c.records, 4);
    tm_batch_unref(b5);
    /* The end pads the unmatched right row at 500. */
    TM_REQUIRE(r.ops->on_end(r.op, &c.c, err, sizeof(err)) == 0);
    TM_CHECK_INT(c.records, 5);
    TM_CHECK_INT(count_entries(r.store), 0);
    char *got = collected(&c);
    TM_CHECK_STR(got, "-,-,-,-,2,2,500,8\n3,1,105,9,1,1,100,7\n4,-,105,9,-,-,-,-\n"
                      "5,2,150,1,-,-,-,-\n7,3,300,1,-,-,-,-\n");
    free(got);
    /* An update is refused: the inputs must be append-only. */
    tm_batch_t *b4 = tm_batch_new();
    tm_record_t *u = tm_batch_add(b4, f.sch[0], TM_OP_UPDATE);
    u->before = mk_row(b4, f.sch[0], 6, 1, 300, 1);
    u->after = mk_row(b4, f.sch[0], 6, 1, 301, 1);
    TM_CHECK(r.ops->process(r.op, 0, b4, &c.c, err, sizeof(err)) == TM_EUNSUPPORTED);
    TM_CHECK(strstr(err, "append-only") != NULL);
    tm_batch_unref(b1);
    tm_batch_unref(b2);
    tm_batch_unref(b3);
    tm_batch_unref(b4);
    tm_buf_release(&c.text);
    run_close(&r);
    tm_store_close(r.store);
    tst_rmdir(r.dir);
    fixture_free(&f);
}

static void test_bad_spec(void)
{
    fixture_t f;
    fixture_init(&f, TM_JOIN_INNER, 5, 1, false);
    run_t r = {0};
    char p[512];
    r.dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), r.dir, "work"), &o, &r.store, err,
                             sizeof(err)) == 0);
    tm_operator_metrics_t m = {0};
    tm_operator_ctx_t ctx = {.uid = "ij-1", .max_parallelism = 128, .kg_last = 127,
                             .store = r.store, .metrics = &m};
    const tm_operator_ops_t *ops;
    tm_operator_t *op = NULL;
    TM_CHECK(tm_interval_join_new(&f.spec, &ctx, &ops, &op, err, sizeof(err)) == TM_EINVAL);
    TM_CHECK(strstr(err, "lower bound") != NULL);
    f.spec.lower_us = 0;
    f.spec.left_time = C_V; /* bigint, not a time */
    TM_CHECK(tm_interval_join_new(&f.spec, &ctx, &ops, &op, err, sizeof(err)) == TM_EINVAL);
    f.spec.left_time = C_T;
    f.spec.type = TM_JOIN_SEMI;
    TM_CHECK(tm_interval_join_new(&f.spec, &ctx, &ops, &op, err, sizeof(err)) == TM_EINVAL);
    TM_CHECK(op == NULL);
    tm_store_close(r.store);
    tst_rmdir(r.dir);
    fixture_free(&f);
}

int main(void)
{
    TM_RUN(test_bad_spec);
    TM_RUN(test_end_and_late_rows);
    TM_RUN(test_inner);
    TM_RUN(test_inner_residual_negative_lower);
    TM_RUN(test_left);
    TM_RUN(test_right_positive_bounds);
    TM_RUN(test_full_residual);
    return tm_test_done();
}
