/*
 * Unit tests: the Top-N operator (operators/topn.h), driven directly with a
 * real store.
 *
 * The main test folds the operator's changelog into a table and compares
 * it, after every batch, with a brute-force Top-N over the rows that survive
 * in the input (a seeded random workload of inserts, updates that move rows
 * between partitions and ranks, and deletes of rows in and out of the top
 * N), with and without the rank number; midway the store is checkpointed,
 * later restored into a new instance and the batches since replayed.
 */
#include "../state/state_test.h"
#include "operators/topn.h"
#include "state/rowcodec.h"

/* ---- input: t(id int64, g int64, v int64, s text) ---- */

enum { C_ID, C_G, C_V, C_S, NCOLS };

static char err[1024];

static tm_schema_t *in_schema(void)
{
    tm_schema_t *s = tm_schema_new(NCOLS);
    tm_schema_set_str(&s->table, "t");
    tst_col(s, C_ID, "id", TM_T_INT64, 0);
    tst_col(s, C_G, "g", TM_T_INT64, -1);
    tst_col(s, C_V, "v", TM_T_INT64, -1);
    tst_col(s, C_S, "s", TM_T_TEXT, -1);
    for (int i = 1; i < NCOLS; i++)
        s->cols[i].nullable = true;
    tm_schema_finish(s);
    return s;
}

/* The input columns with a bigint `rn` inserted at `at`. */
static tm_schema_t *out_schema(const tm_schema_t *in, int at)
{
    tm_schema_t *s = tm_schema_new(in->ncols + (at >= 0));
    for (int c = 0, src = 0; c < s->ncols; c++) {
        if (c == at) {
            tst_col(s, c, "rn", TM_T_INT64, -1);
            s->cols[c].nullable = true;
            continue;
        }
        tst_col(s, c, in->cols[src].name, in->cols[src].type, -1);
        s->cols[c].nullable = true;
        src++;
    }
    tm_schema_finish(s);
    return s;
}

static tm_row_t *mk_row(tm_batch_t *b, const tm_schema_t *s, int64_t id, int64_t g, int64_t v,
                        const char *str)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    r->vals[C_ID].u.i64 = id;
    tm_row_set_null(r, C_ID, false);
    if (g != INT64_MIN) {
        r->vals[C_G].u.i64 = g;
        tm_row_set_null(r, C_G, false);
    }
    if (v != INT64_MIN) {
        r->vals[C_V].u.i64 = v;
        tm_row_set_null(r, C_V, false);
    }
    if (str != NULL) {
        tm_batch_set_var(b, &r->vals[C_S], str, strlen(str));
        tm_row_set_null(r, C_S, false);
    }
    return r;
}

static void add_rec(tm_batch_t *b, tm_schema_t *s, tm_op_t op, tm_row_t *before, tm_row_t *after)
{
    tm_record_t *r = tm_batch_add(b, s, op);
    r->before = before;
    r->after = after;
}

/* "id,g,v,s" of the input columns of a row (of `s`, skipping column `skip`). */
static char *row_str(const tm_schema_t *s, const tm_row_t *r, int skip, int64_t *rn)
{
    tm_buf_t o;
    tm_buf_init(&o);
    for (int c = 0; c < s->ncols; c++) {
        if (c == skip) {
            if (rn != NULL)
                *rn = tm_row_is_null(r, c) ? -1 : r->vals[c].u.i64;
            continue;
        }
        if (o.len > 0)
            tm_buf_putc(&o, ',');
        if (tm_row_is_null(r, c))
            tm_buf_puts(&o, "null");
        else if (s->cols[c].type == TM_T_TEXT)
            tm_buf_append(&o, r->vals[c].u.var.ptr, r->vals[c].u.var.len);
        else
            tm_buf_appendf(&o, "%lld", (long long)r->vals[c].u.i64);
    }
    tm_buf_putc(&o, '\0');
    return o.data;
}

/* ---- the folded output: a multiset of (key, row) lines ---- */

#define MAXOUT 8192

typedef struct table {
    int n;
    char *line[MAXOUT]; /* "rn|row" (rank mode) or "row" */
    int errors;
} table_t;

static int table_find(const table_t *t, const char *line)
{
    for (int i = 0; i < t->n; i++)
        if (strcmp(t->line[i], line) == 0)
            return i;
    return -1;
}

static void table_del(table_t *t, const char *line)
{
    int i = table_find(t, line);
    if (i < 0) {
        fprintf(stderr, "retracted a row never emitted: %s\n", line);
        t->errors++;
        return;
    }
    free(t->line[i]);
    t->line[i] = t->line[--t->n];
}

static void table_add(table_t *t, char *line)
{
    if (t->n == MAXOUT) {
        t->errors++;
        free(line);
        return;
    }
    t->line[t->n++] = line;
}

static void table_clear(table_t *t)
{
    for (int i = 0; i < t->n; i++)
        free(t->line[i]);
    t->n = 0;
    t->errors = 0;
}

static void table_copy(table_t *d, const table_t *s)
{
    table_clear(d);
    for (int i = 0; i < s->n; i++)
        d->line[i] = strdup(s->line[i]);
    d->n = s->n;
    d->errors = s->errors;
}

/* Sorted, newline-joined lines (for comparing and printing). */
static char *table_text(const table_t *t)
{
    tm_buf_t o;
    tm_buf_init(&o);
    for (int i = 0; i < t->n; i++) {
        tm_buf_puts(&o, t->line[i]);
        tm_buf_putc(&o, '\n');
    }
    tm_buf_putc(&o, '\0');
    char *s = tst_sort_lines(o.data);
    tm_buf_release(&o);
    return s;
}

typedef struct collector {
    tm_collector_t c;
    table_t *table;
    int rn_col;
    bool ranked;
    int records, updates;
} collector_t;

static char *out_line(const collector_t *col, const tm_schema_t *s, const tm_row_t *r)
{
    int64_t rn = -1;
    char *row = row_str(s, r, col->rn_col, &rn);
    if (!col->ranked)
        return row;
    char *line = NULL;
    if (asprintf(&line, "%lld|%s", (long long)rn, row) < 0)
        line = NULL;
    free(row);
    return line;
}

static int collect(tm_collector_t *c, tm_batch_t *b)
{
    collector_t *col = c->arg;
    for (uint32_t i = 0; i < b->count; i++) {
        const tm_record_t *r = &b->recs[i];
        if (r->before != NULL) {
            char *l = out_line(col, r->schema, r->before);
            table_del(col->table, l);
            free(l);
        }
        if (r->after != NULL)
            table_add(col->table, out_line(col, r->schema, r->after));
        col->updates += r->op == TM_OP_UPDATE;
    }
    col->records += (int)b->count;
    tm_batch_unref(b);
    return 0;
}

static void collector_init(collector_t *c, table_t *t, int rn_col, bool ranked)
{
    memset(c, 0, sizeof(*c));
    c->c.emit = collect;
    c->c.arg = c;
    c->table = t;
    c->rn_col = rn_col;
    c->ranked = ranked;
}

/* ---- the brute-force model ---- */

#define MAXLIVE 2048

typedef struct model {
    int n;
    const tm_row_t *rows[MAXLIVE];
} model_t;

static void model_apply(model_t *m, const tm_record_t *r)
{
    if (r->before != NULL)
        for (int i = 0; i < m->n; i++)
            if (m->rows[i]->vals[C_ID].u.i64 == r->before->vals[C_ID].u.i64) {
                m->rows[i] = m->rows[--m->n];
                break;
            }
    if (r->after != NULL && m->n < MAXLIVE)
        m->rows[m->n++] = r->after;
}

/* ORDER BY v DESC (NULLS FIRST, PostgreSQL's default), id ASC. */
static int model_cmp(const void *a, const void *b)
{
    const tm_row_t *x = *(const tm_row_t *const *)a, *y = *(const tm_row_t *const *)b;
    bool xn = tm_row_is_null(x, C_V), yn = tm_row_is_null(y, C_V);
    if (xn != yn)
        return xn ? -1 : 1;
    if (!xn && x->vals[C_V].u.i64 != y->vals[C_V].u.i64)
        return x->vals[C_V].u.i64 > y->vals[C_V].u.i64 ? -1 : 1;
    int64_t xi = x->vals[C_ID].u.i64, yi = y->vals[C_ID].u.i64;
    return xi < yi ? -1 : xi > yi;
}

static bool same_group(const tm_row_t *x, const tm_row_t *y)
{
    bool xn = tm_row_is_null(x, C_G), yn = tm_row_is_null(y, C_G);
    return xn == yn && (xn || x->vals[C_G].u.i64 == y->vals[C_G].u.i64);
}

static void expect(const model_t *m, const tm_schema_t *in, int64_t limit, bool ranked,
                   table_t *want)
{
    table_clear(want);
    const tm_row_t **v = malloc(sizeof(*v) * (size_t)(m->n + 1));
    memcpy(v, m->rows, sizeof(*v) * (size_t)m->n);
    qsort(v, (size_t)m->n, sizeof(*v), model_cmp);
    bool *done = calloc((size_t)m->n + 1, 1);
    for (int i = 0; i < m->n; i++) {
        if (done[i])
            continue;
        int64_t rank = 0;
        for (int j = i; j < m->n; j++) {
            if (done[j] || !same_group(v[i], v[j]))
                continue;
            done[j] = true;
            if (++rank > limit)
                continue;
            char *row = row_str(in, v[j], -1, NULL), *line = NULL;
            if (ranked) {
                if (asprintf(&line, "%lld|%s", (long long)rank, row) < 0)
                    line = NULL;
                free(row);
            } else {
                line = row;
            }
            table_add(want, line);
        }
    }
    free(done);
    free(v);
}

static bool tables_equal(const table_t *got, const table_t *want)
{
    char *a = table_text(got), *b = table_text(want);
    bool eq = strcmp(a, b) == 0 && got->errors == 0;
    if (!eq)
        fprintf(stderr, "got (%d errors):\n%swant:\n%s", got->errors, a, b);
    free(a);
    free(b);
    return eq;
}

/* ---- the random workload ---- */

static uint64_t rng = 42;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static tm_row_t *random_row(tm_batch_t *b, const tm_schema_t *s, int64_t id, int ngroups)
{
    int64_t g = rnd(10) == 0 ? INT64_MIN : (int64_t)rnd((uint32_t)ngroups);
    int64_t v = rnd(12) == 0 ? INT64_MIN : (int64_t)rnd(40) - 10;
    char str[16];
    snprintf(str, sizeof(str), "s%u", rnd(5));
    return mk_row(b, s, id, g, v, str);
}

static tm_batch_t *random_batch(tm_schema_t *s, model_t *live, int64_t *next_id, int ngroups,
                                bool inserts_only)
{
    tm_batch_t *b = tm_batch_new();
    int n = 1 + (int)rnd(40);
    for (int i = 0; i < n; i++) {
        uint32_t what = inserts_only ? 0 : rnd(10);
        if (what < 5 || live->n == 0) {
            tm_row_t *r = random_row(b, s, (*next_id)++, ngroups);
            add_rec(b, s, TM_OP_CREATE, NULL, r);
            model_apply(live, &b->recs[b->count - 1]);
        } else if (what < 8) {
            /* An update, often of one of the current leaders (v high or NULL). */
            const tm_row_t *old = live->rows[rnd((uint32_t)live->n)];
            tm_row_t *before = tm_row_copy(b, s, old);
            tm_row_t *after = random_row(b, s, old->vals[C_ID].u.i64, ngroups);
            if (rnd(3) == 0)
                after->vals[C_G] = before->vals[C_G], tm_row_set_null(after, C_G,
                                                                      tm_row_is_null(before, C_G));
            add_rec(b, s, TM_OP_UPDATE, before, after);
            model_apply(live, &b->recs[b->count - 1]);
        } else {
            const tm_row_t *old = live->rows[rnd((uint32_t)live->n)];
            add_rec(b, s, TM_OP_DELETE, tm_row_copy(b, s, old), NULL);
            model_apply(live, &b->recs[b->count - 1]);
        }
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

static void run_open(run_t *r, const tm_topn_spec_t *spec)
{
    memset(&r->metrics, 0, sizeof(r->metrics));
    r->ctx = (tm_operator_ctx_t){.uid = "topn-1", .job = "t", .parallelism = 1,
                                 .max_parallelism = 128, .kg_first = 0, .kg_last = 127,
                                 .store = r->store, .metrics = &r->metrics};
    int rc = tm_topn_new(spec, &r->ctx, &r->ops, &r->op, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "tm_topn_new: %s\n", err);
    TM_REQUIRE(rc == 0);
}

static void run_close(run_t *r)
{
    r->ops->free(r->op);
    r->op = NULL;
}

typedef struct fixture {
    tm_schema_t *in, *out;
    int part[1], order[2];
    bool desc[2], nf[2];
    tm_topn_spec_t spec;
} fixture_t;

/* PARTITION BY g ORDER BY v DESC, id: rn at `rn_col` (-1: none). */
static void fixture_init(fixture_t *f, int64_t limit, int rn_col, bool ranked, bool append_only)
{
    memset(f, 0, sizeof(*f));
    f->in = in_schema();
    f->out = out_schema(f->in, rn_col);
    f->part[0] = C_G;
    f->order[0] = C_V;
    f->order[1] = C_ID;
    f->desc[0] = true;
    f->nf[0] = true; /* DESC: NULLS FIRST */
    f->spec = (tm_topn_spec_t){.in_schema = f->in, .part_cols = f->part, .npart = 1,
                               .order_cols = f->order, .order_desc = f->desc,
                               .nulls_first = f->nf, .norder = 2, .limit = limit,
                               .rn_col = rn_col, .rank_number = ranked,
                               .append_only = append_only, .out_schema = f->out};
}

static void fixture_free(fixture_t *f)
{
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

/*
 * The workload, with rn at `rn_col` (emitted by rank or as a multiset):
 * after every batch the folded output equals the brute-force Top-N; a
 * checkpoint at batch 120 is restored at batch 170 into a new instance, the
 * batches since are replayed, and the results agree again.
 */
static void random_workload(int64_t limit, int rn_col, bool ranked, bool append_only)
{
    fixture_t f;
    fixture_init(&f, limit, rn_col, ranked, append_only);
    run_t r = {0};
    char p[512], chk[512];
    r.dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), r.dir, "work"), &o, &r.store, err,
                             sizeof(err)) == 0);
    run_open(&r, &f.spec);
    static table_t got, want, saved;
    collector_t c;
    collector_init(&c, &got, rn_col, ranked);
    enum { NBATCH = 220, CHK_AT = 120, CRASH_AT = 170 };
    static tm_batch_t *batches[NBATCH];
    static model_t gen, model, saved_model;
    memset(&gen, 0, sizeof(gen));
    memset(&model, 0, sizeof(model));
    int64_t next_id = 1;
    rng = 12345 + (uint64_t)limit;
    for (int i = 0; i < NBATCH; i++)
        batches[i] = random_batch(f.in, &gen, &next_id, i < NBATCH / 2 ? 5 : 2, append_only);
    bool restarted = false;
    int saved_records = 0;
    for (int i = 0; i < NBATCH; i++) {
        int rc = r.ops->process(r.op, 0, batches[i], &c.c, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "process: %s\n", err);
        TM_REQUIRE(rc == 0);
        for (uint32_t k = 0; k < batches[i]->count; k++)
            model_apply(&model, &batches[i]->recs[k]);
        expect(&model, f.in, limit, ranked, &want);
        if (!tables_equal(&got, &want)) {
            fprintf(stderr, "after batch %d (%u records, %d live rows)\n", i,
                    batches[i]->count, model.n);
            TM_REQUIRE(false);
        }
        if (i == CHK_AT) {
            TM_REQUIRE(r.ops->on_barrier(r.op, 1, &c.c, err, sizeof(err)) == 0);
            TM_REQUIRE(tm_store_checkpoint(r.store, tst_path(chk, sizeof(chk), r.dir, "chk-1"),
                                           NULL, err, sizeof(err)) == 0);
            table_copy(&saved, &got);
            saved_model = model;
            saved_records = c.records;
        }
        if (i == CRASH_AT && !restarted) {
            /* Crash: everything after the checkpoint is lost; restore and replay. */
            restarted = true;
            run_close(&r);
            r.store = tm_store_close(r.store);
            TM_REQUIRE(tm_store_open_from_checkpoint(chk, tst_path(p, sizeof(p), r.dir, "work2"),
                                                     &o, &r.store, err, sizeof(err)) == 0);
            run_open(&r, &f.spec);
            table_copy(&got, &saved);
            model = saved_model;
            c.records = saved_records;
            i = CHK_AT;
        }
    }
    TM_CHECK(restarted);
    TM_CHECK(c.records > 10);
    if (ranked)
        TM_CHECK(c.updates > 10); /* ranks shifted by updates */
    if (append_only) {
        /* At most `limit` rows per partition (5 groups and NULL) stay in state. */
        int n = count_entries(r.store, "topn-1");
        TM_CHECK(n <= 6 * limit);
        TM_CHECK(model.n > 6 * limit);
    }
    run_close(&r);
    tm_store_close(r.store);
    for (int i = 0; i < NBATCH; i++)
        tm_batch_unref(batches[i]);
    table_clear(&got);
    table_clear(&want);
    table_clear(&saved);
    tst_rmdir(r.dir);
    fixture_free(&f);
}

static void test_ranked(void)
{
    random_workload(3, 4, true, false);
}

static void test_ranked_rn_first(void)
{
    random_workload(1, 0, true, false);
}

static void test_no_rank_number(void)
{
    random_workload(4, -1, false, false);
}

static void test_no_rank_number_with_column(void)
{
    random_workload(2, 2, false, false);
}

static void test_append_only(void)
{
    random_workload(2, 4, true, true);
}

static void test_dedup_keep_first(void)
{
    random_workload(1, -1, false, true);
}

/*
 * The order encoding: text bytewise with prefixes first, NULLS FIRST/LAST,
 * ASC and DESC, duplicate rows counted as copies, and a retraction of a row
 * never inserted leaving nothing behind.
 */
static void order_case(bool desc, bool nulls_first, const char *want)
{
    tm_schema_t *in = in_schema(), *out = out_schema(in, 4);
    int order[1] = {C_S};
    bool d[1] = {desc}, nf[1] = {nulls_first};
    tm_topn_spec_t spec = {.in_schema = in, .npart = 0, .order_cols = order, .order_desc = d,
                           .nulls_first = nf, .norder = 1, .limit = 10, .rn_col = 4,
                           .rank_number = true, .out_schema = out};
    run_t r = {0};
    char p[512];
    r.dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), r.dir, "work"), &o, &r.store, err,
                             sizeof(err)) == 0);
    run_open(&r, &spec);
    static table_t got;
    collector_t c;
    collector_init(&c, &got, 4, true);
    tm_batch_t *b = tm_batch_new();
    const char *vals[] = {"b", "a", "ab", "", NULL, "a\xff", "ab"};
    for (int i = 0; i < 7; i++)
        add_rec(b, in, TM_OP_CREATE, NULL, mk_row(b, in, i == 6 ? 2 : i, 0, 0, vals[i]));
    /* A retraction of a row never seen: ignored. */
    add_rec(b, in, TM_OP_DELETE, mk_row(b, in, 99, 0, 0, "zz"), NULL);
    TM_REQUIRE(r.ops->process(r.op, 0, b, &c.c, err, sizeof(err)) == 0);
    char *text = table_text(&got);
    TM_CHECK_STR(text, want);
    free(text);
    tm_batch_unref(b);
    /* Deleting one copy of the duplicate shifts the ranks below it up by one. */
    b = tm_batch_new();
    add_rec(b, in, TM_OP_DELETE, mk_row(b, in, 2, 0, 0, "ab"), NULL);
    TM_REQUIRE(r.ops->process(r.op, 0, b, &c.c, err, sizeof(err)) == 0);
    TM_CHECK_INT(got.n, 6);
    TM_CHECK_INT(got.errors, 0);
    tm_batch_unref(b);
    table_clear(&got);
    run_close(&r);
    tm_store_close(r.store);
    tst_rmdir(r.dir);
    tm_schema_unref(in);
    tm_schema_unref(out);
}

static void test_order_encoding(void)
{
    order_case(false, false,
               "1|3,0,0,\n2|1,0,0,a\n3|2,0,0,ab\n4|2,0,0,ab\n5|5,0,0,a\xff\n6|0,0,0,b\n"
               "7|4,0,0,null\n");
    order_case(true, true,
               "1|4,0,0,null\n2|0,0,0,b\n3|5,0,0,a\xff\n4|2,0,0,ab\n5|2,0,0,ab\n6|1,0,0,a\n"
               "7|3,0,0,\n");
    order_case(false, true,
               "1|4,0,0,null\n2|3,0,0,\n3|1,0,0,a\n4|2,0,0,ab\n5|2,0,0,ab\n6|5,0,0,a\xff\n"
               "7|0,0,0,b\n");
}

/* Mini-batching: a batch of many changes to one partition costs a few state reads. */
static void test_mini_batch(void)
{
    fixture_t f;
    fixture_init(&f, 3, 4, true, false);
    run_t r = {0};
    char p[512];
    r.dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), r.dir, "work"), &o, &r.store, err,
                             sizeof(err)) == 0);
    run_open(&r, &f.spec);
    static table_t got;
    collector_t c;
    collector_init(&c, &got, 4, true);
    tm_batch_t *b = tm_batch_new();
    for (int i = 0; i < 100; i++)
        add_rec(b, f.in, TM_OP_CREATE, NULL, mk_row(b, f.in, i, 7, i, "x"));
    TM_REQUIRE(r.ops->process(r.op, 0, b, &c.c, err, sizeof(err)) == 0);
    /* Three inserts (ranks 1..3), never a row that was only briefly in the top 3. */
    TM_CHECK_INT(c.records, 3);
    TM_CHECK_INT(c.updates, 0);
    /* Two top-list reads and one count read per distinct row. */
    TM_CHECK_INT((int)atomic_load(&r.metrics.state_reads), 102);
    char *text = table_text(&got);
    TM_CHECK_STR(text, "1|99,7,99,x\n2|98,7,98,x\n3|97,7,97,x\n");
    free(text);
    tm_batch_unref(b);
    /* A key group this subtask does not own is refused. */
    run_close(&r);
    r.ctx.kg_first = r.ctx.kg_last = 0;
    const tm_operator_ops_t *ops;
    tm_operator_t *op;
    tm_operator_ctx_t ctx = r.ctx;
    ctx.metrics = &r.metrics;
    int kg = -1;
    b = tm_batch_new();
    for (int64_t g = 0; kg != 1; g++) {
        b->count = 0;
        tm_row_t *row = mk_row(b, f.in, 1, g, 1, "x");
        tm_buf_t k;
        tm_buf_init(&k);
        tm_topn_key(&f.spec, f.in, row, &k);
        kg = tm_keygroup_of(k.data, k.len, 128);
        tm_buf_release(&k);
        add_rec(b, f.in, TM_OP_CREATE, NULL, row);
    }
    TM_REQUIRE(tm_topn_new(&f.spec, &ctx, &ops, &op, err, sizeof(err)) == 0);
    TM_CHECK(ops->process(op, 0, b, &c.c, err, sizeof(err)) == TM_EINVAL);
    TM_CHECK(strstr(err, "not hash-partitioned") != NULL);
    ops->free(op);
    tm_batch_unref(b);
    table_clear(&got);
    tm_store_close(r.store);
    tst_rmdir(r.dir);
    fixture_free(&f);
}

/* Bad specs are refused with a message, never run. */
static void test_bad_spec(void)
{
    fixture_t f;
    fixture_init(&f, 0, 4, true, false);
    run_t r = {0};
    char p[512];
    r.dir = tst_tmpdir();
    tm_store_opts_t o = tst_opts(0);
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), r.dir, "work"), &o, &r.store, err,
                             sizeof(err)) == 0);
    tm_operator_metrics_t m = {0};
    tm_operator_ctx_t ctx = {.uid = "topn-1", .max_parallelism = 128, .kg_last = 127,
                             .store = r.store, .metrics = &m};
    const tm_operator_ops_t *ops;
    tm_operator_t *op = NULL;
    TM_CHECK(tm_topn_new(&f.spec, &ctx, &ops, &op, err, sizeof(err)) == TM_EINVAL);
    f.spec.limit = 3;
    f.spec.rn_col = 9;
    TM_CHECK(tm_topn_new(&f.spec, &ctx, &ops, &op, err, sizeof(err)) == TM_EINVAL);
    f.spec.rn_col = 4;
    ctx.store = NULL;
    TM_CHECK(tm_topn_new(&f.spec, &ctx, &ops, &op, err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(op == NULL);
    tm_store_close(r.store);
    tst_rmdir(r.dir);
    fixture_free(&f);
}

int main(void)
{
    TM_RUN(test_bad_spec);
    TM_RUN(test_order_encoding);
    TM_RUN(test_mini_batch);
    TM_RUN(test_ranked);
    TM_RUN(test_ranked_rn_first);
    TM_RUN(test_no_rank_number);
    TM_RUN(test_no_rank_number_with_column);
    TM_RUN(test_append_only);
    TM_RUN(test_dedup_keep_first);
    return tm_test_done();
}
