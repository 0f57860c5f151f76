/*
 * Unit tests: the regular join operator (operators/join.h), driven directly
 * with real stores.
 *
 * The model test runs random changelogs of both inputs (inserts, duplicate
 * rows, updates that keep or change the join key, NULL keys and values,
 * deletes) through the operator of every join type and state view, at
 * parallelism 1 and 2 (two instances and two stores, the inputs routed by
 * the runtime's own hash exchange on tm_join_left_key / tm_join_right_key),
 * folds the output retract stream into a multiset after every batch, and
 * compares it with a nested-loop evaluation of the join over the current
 * contents of both inputs.  Midway the stores are checkpointed at a barrier;
 * later the instances are dropped, the stores reopened from the checkpoint
 * and the batches since replayed, as after a crash.
 */
#include "../state/state_test.h"
#include "operators/join.h"
#include "runtime/exchange.h"
#include "state/keygroup.h"
#include "state/rowcodec.h"

static char err[1024];

/* ---- inputs: l(id, k, v) and r(id, k, w), all int64; output l ++ r or l ---- */

enum { C_ID, C_K, C_V, NC };

static tm_schema_t *side_schema(const char *table, const char *vname)
{
    tm_schema_t *s = tm_schema_new(NC);
    tm_schema_set_str(&s->table, table);
    tst_col(s, C_ID, "id", TM_T_INT64, 0);
    tst_col(s, C_K, "k", TM_T_INT64, -1);
    tst_col(s, C_V, vname, TM_T_INT64, -1);
    tm_schema_finish(s);
    return s;
}

static tm_schema_t *pair_schema(bool pairs)
{
    static const char *const names[] = {"id", "k", "v", "rid", "rk", "w"};
    int n = pairs ? 2 * NC : NC;
    tm_schema_t *s = tm_schema_new(n);
    for (int i = 0; i < n; i++)
        tst_col(s, i, names[i], TM_T_INT64, -1);
    tm_schema_finish(s);
    return s;
}

typedef struct fixture {
    tm_schema_t *l, *r, *pairs, *lonly;
    tm_expr_pool_t *pool;
    tm_expr_t *residual; /* l.v + r.w <> 3 */
    int lkeys[1], rkeys[1], uk[1];
} fixture_t;

static void fixture_init(fixture_t *f)
{
    memset(f, 0, sizeof(*f));
    f->l = side_schema("l", "v");
    f->r = side_schema("r", "w");
    f->pairs = pair_schema(true);
    f->lonly = pair_schema(false);
    f->pool = tm_expr_pool_new();
    tm_expr_type_t t = {.type = TM_T_INT64};
    tm_expr_t *sum, *ne;
    TM_REQUIRE(tm_expr_operator(f->pool, "+", tm_expr_column(f->pool, C_V, &t, "v"),
                                tm_expr_column(f->pool, NC + C_V, &t, "w"), &sum, err,
                                sizeof(err)) == 0);
    TM_REQUIRE(tm_expr_operator(f->pool, "<>", sum, tm_expr_int(f->pool, 3), &ne, err,
                                sizeof(err)) == 0);
    f->residual = ne;
    f->lkeys[0] = f->rkeys[0] = C_K;
    f->uk[0] = C_ID;
}

static void fixture_free(fixture_t *f)
{
    tm_schema_unref(f->l);
    tm_schema_unref(f->r);
    tm_schema_unref(f->pairs);
    tm_schema_unref(f->lonly);
    tm_expr_pool_free(f->pool);
}

/* view: 0 both multisets, 1 both unique keys, 2 left unique key only. */
static tm_join_spec_t make_spec(const fixture_t *f, tm_join_type_t type, int view, bool residual,
                                bool null_aware)
{
    tm_join_spec_t s = {0};
    s.type = type;
    s.left_schema = f->l;
    s.right_schema = f->r;
    s.left_keys = f->lkeys;
    s.right_keys = f->rkeys;
    s.nkeys = 1;
    if (view >= 1) {
        s.left_uk = f->uk;
        s.nleft_uk = 1;
    }
    if (view == 1) {
        s.right_uk = f->uk;
        s.nright_uk = 1;
    }
    s.residual = residual ? f->residual : NULL;
    s.null_aware = null_aware;
    s.out_schema = type == TM_JOIN_SEMI || type == TM_JOIN_ANTI ? f->lonly : f->pairs;
    return s;
}

/* ---- the folded output: a multiset of row strings ---- */

/* Rows are never removed: a row whose count drops to 0 stays with count 0. */
#define MAXOUT 65536
#define HSIZE (2 * MAXOUT)

typedef struct mset {
    int n;
    char **row;
    int *cnt;
    int32_t *h; /* open addressing: index + 1, 0 = empty */
    int errors;
} mset_t;

static void mset_clear(mset_t *m)
{
    for (int i = 0; i < m->n; i++)
        free(m->row[i]);
    free(m->row);
    free(m->cnt);
    free(m->h);
    memset(m, 0, sizeof(*m));
}

static uint32_t str_hash(const char *s)
{
    uint32_t h = 2166136261u;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 16777619u;
    return h;
}

/* The index of `row`, added with count 0 when absent and `add`; -1 otherwise. */
static int mset_find(mset_t *m, const char *row, bool add)
{
    if (m->h == NULL) {
        if (!add)
            return -1;
        m->row = calloc(MAXOUT, sizeof(char *));
        m->cnt = calloc(MAXOUT, sizeof(int));
        m->h = calloc(HSIZE, sizeof(int32_t));
    }
    for (uint32_t i = str_hash(row) % HSIZE;; i = (i + 1) % HSIZE) {
        if (m->h[i] == 0) {
            if (!add)
                return -1;
            TM_REQUIRE(m->n < MAXOUT);
            m->row[m->n] = strdup(row);
            m->cnt[m->n] = 0;
            m->h[i] = ++m->n;
            return m->n - 1;
        }
        if (strcmp(m->row[m->h[i] - 1], row) == 0)
            return m->h[i] - 1;
    }
}

static void mset_copy(mset_t *dst, const mset_t *src)
{
    mset_clear(dst);
    for (int i = 0; i < src->n; i++)
        if (src->cnt[i] != 0) {
            int j = mset_find(dst, src->row[i], true);
            dst->cnt[j] = src->cnt[i];
        }
}

static void mset_add(mset_t *m, const char *row, int d)
{
    int i = mset_find(m, row, true);
    if (m->cnt[i] + d < 0) {
        fprintf(stderr, "retraction of a row not held: %s\n", row);
        m->errors++;
        return;
    }
    m->cnt[i] += d;
}

static bool mset_sub(const mset_t *a, const mset_t *b, const char *what)
{
    for (int i = 0; i < a->n; i++) {
        if (a->cnt[i] == 0)
            continue;
        int j = mset_find((mset_t *)b, a->row[i], false);
        int c = j < 0 ? 0 : b->cnt[j];
        if (c != a->cnt[i]) {
            fprintf(stderr, "row %s: %s %d, other %d\n", a->row[i], what, a->cnt[i], c);
            return false;
        }
    }
    return true;
}

static int mset_rows(const mset_t *m)
{
    int n = 0;
    for (int i = 0; i < m->n; i++)
        n += m->cnt[i] != 0;
    return n;
}

static bool mset_equal(const mset_t *got, const mset_t *want)
{
    return mset_sub(want, got, "want") && mset_sub(got, want, "got");
}

static void row_str(tm_buf_t *o, const tm_row_t *r, int ncols)
{
    for (int i = 0; i < ncols; i++) {
        if (i > 0)
            tm_buf_putc(o, '|');
        if (r == NULL || tm_row_is_null(r, i))
            tm_buf_puts(o, "null");
        else
            tm_buf_append_i64(o, r->vals[i].u.i64);
    }
}

typedef struct collector {
    tm_collector_t c;
    mset_t *m;
    tm_buf_t log; /* "+row\n" / "-row\n" of every output record, for focused tests */
    int records;
} collector_t;

static int collect(tm_collector_t *c, tm_batch_t *b)
{
    collector_t *col = c->arg;
    for (uint32_t i = 0; i < b->count; i++) {
        const tm_record_t *r = &b->recs[i];
        tm_buf_t s;
        tm_buf_init(&s);
        if (r->op == TM_OP_CREATE && r->after != NULL && r->before == NULL) {
            row_str(&s, r->after, r->schema->ncols);
            mset_add(col->m, s.data, 1);
            tm_buf_appendf(&col->log, "+%s\n", s.data);
        } else if (r->op == TM_OP_DELETE && r->before != NULL && r->after == NULL) {
            row_str(&s, r->before, r->schema->ncols);
            mset_add(col->m, s.data, -1);
            tm_buf_appendf(&col->log, "-%s\n", s.data);
        } else {
            col->m->errors++;
        }
        tm_buf_release(&s);
    }
    col->records += (int)b->count;
    tm_batch_unref(b);
    return 0;
}

static void collector_init(collector_t *c, mset_t *m)
{
    memset(c, 0, sizeof(*c));
    c->c.emit = collect;
    c->c.arg = c;
    c->m = m;
    tm_buf_init(&c->log);
}

/* ---- the model: current contents of both inputs, and the nested-loop join ---- */

#define MAXLIVE 512

typedef struct model {
    int n[2];
    const tm_row_t *rows[2][MAXLIVE];
} model_t;

static bool same_row(const tm_row_t *a, const tm_row_t *b)
{
    for (int i = 0; i < NC; i++) {
        bool na = tm_row_is_null(a, i), nb = tm_row_is_null(b, i);
        if (na != nb || (!na && a->vals[i].u.i64 != b->vals[i].u.i64))
            return false;
    }
    return true;
}

static void model_apply(model_t *m, int side, const tm_record_t *r)
{
    if (r->before != NULL && r->op != TM_OP_CREATE)
        for (int i = 0; i < m->n[side]; i++)
            if (same_row(m->rows[side][i], r->before)) {
                m->rows[side][i] = m->rows[side][--m->n[side]];
                break;
            }
    if (r->after != NULL && r->op != TM_OP_DELETE) {
        TM_REQUIRE(m->n[side] < MAXLIVE);
        m->rows[side][m->n[side]++] = r->after;
    }
}

/* 1 true, 0 false, -1 NULL (SQL three-valued). */
static int residual3(const tm_row_t *l, const tm_row_t *r)
{
    if (tm_row_is_null(l, C_V) || tm_row_is_null(r, C_V))
        return -1;
    return l->vals[C_V].u.i64 + r->vals[C_V].u.i64 != 3;
}

static bool oracle_match(const tm_join_spec_t *s, const tm_row_t *l, const tm_row_t *r)
{
    bool lnull = tm_row_is_null(l, C_K), rnull = tm_row_is_null(r, C_K);
    bool res = s->residual == NULL || residual3(l, r) == 1;
    if (s->null_aware)
        /* NOT IN: blocks unless the keys are unequal and neither is NULL. */
        return res && (lnull || rnull || l->vals[C_K].u.i64 == r->vals[C_K].u.i64);
    return res && !lnull && !rnull && l->vals[C_K].u.i64 == r->vals[C_K].u.i64;
}

static void expect(const tm_join_spec_t *s, const model_t *m, mset_t *want)
{
    mset_clear(want);
    bool pairs = s->type != TM_JOIN_SEMI && s->type != TM_JOIN_ANTI;
    int rmatched[MAXLIVE] = {0};
    tm_buf_t o;
    tm_buf_init(&o);
    for (int i = 0; i < m->n[0]; i++) {
        const tm_row_t *l = m->rows[0][i];
        int lm = 0;
        for (int j = 0; j < m->n[1]; j++) {
            const tm_row_t *r = m->rows[1][j];
            if (!oracle_match(s, l, r))
                continue;
            lm++;
            rmatched[j]++;
            if (pairs) {
                tm_buf_clear(&o);
                row_str(&o, l, NC);
                tm_buf_putc(&o, '|');
                row_str(&o, r, NC);
                mset_add(want, o.data, 1);
            }
        }
        bool out = false, padded = false;
        if (pairs)
            padded = lm == 0 && (s->type == TM_JOIN_LEFT || s->type == TM_JOIN_FULL);
        else
            out = s->type == TM_JOIN_SEMI ? lm > 0 : lm == 0;
        if (padded || out) {
            tm_buf_clear(&o);
            row_str(&o, l, NC);
            if (padded) {
                tm_buf_putc(&o, '|');
                row_str(&o, NULL, NC);
            }
            mset_add(want, o.data, 1);
        }
    }
    if (s->type == TM_JOIN_RIGHT || s->type == TM_JOIN_FULL)
        for (int j = 0; j < m->n[1]; j++)
            if (rmatched[j] == 0) {
                tm_buf_clear(&o);
                row_str(&o, NULL, NC);
                tm_buf_putc(&o, '|');
                row_str(&o, m->rows[1][j], NC);
                mset_add(want, o.data, 1);
            }
    tm_buf_release(&o);
}

/* ---- the workload ---- */

static uint64_t rng = 42;

static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

static tm_row_t *new_row(tm_batch_t *b, const tm_schema_t *s, int64_t id, int64_t k, int64_t v)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    tm_row_set_null(r, C_ID, false);
    r->vals[C_ID].u.i64 = id;
    if (k >= 0) {
        tm_row_set_null(r, C_K, false);
        r->vals[C_K].u.i64 = k;
    }
    if (v >= 0) {
        tm_row_set_null(r, C_V, false);
        r->vals[C_V].u.i64 = v;
    }
    return r;
}

static int64_t rnd_key(void)
{
    return rnd(7) == 0 ? -1 : (int64_t)rnd(5);
}

static int64_t rnd_val(void)
{
    return rnd(9) == 0 ? -1 : (int64_t)rnd(4);
}

static int64_t get(const tm_row_t *r, int c)
{
    return tm_row_is_null(r, c) ? -1 : r->vals[c].u.i64;
}

static tm_record_t *add_rec(tm_batch_t *b, tm_schema_t *s, tm_op_t op, tm_row_t *before,
                            tm_row_t *after)
{
    tm_record_t *r = tm_batch_add(b, s, op);
    r->before = before;
    r->after = after;
    return r;
}

/*
 * A batch of changes to one side (`gen` is the generator's own view of the
 * live rows); `dups` allows exact duplicate rows (multiset views only).
 */
static tm_batch_t *random_batch(tm_schema_t *s, int side, model_t *gen, int64_t *next_id,
                                bool dups)
{
    tm_batch_t *b = tm_batch_new();
    int n = 1 + (int)rnd(12);
    for (int i = 0; i < n; i++) {
        int live = gen->n[side];
        uint32_t what = rnd(10);
        tm_record_t *rec;
        if (live == 0 || what < 4 || (live < 6 && what < 6)) {
            rec = add_rec(b, s, TM_OP_CREATE, NULL,
                          new_row(b, s, (*next_id)++, rnd_key(), rnd_val()));
        } else if (what == 4 && dups) {
            const tm_row_t *o = gen->rows[side][rnd((uint32_t)live)];
            rec = add_rec(b, s, TM_OP_CREATE, NULL,
                          new_row(b, s, get(o, C_ID), get(o, C_K), get(o, C_V)));
        } else if (what < 8) {
            const tm_row_t *o = gen->rows[side][rnd((uint32_t)live)];
            tm_row_t *before = new_row(b, s, get(o, C_ID), get(o, C_K), get(o, C_V));
            int64_t k = get(o, C_K), v = get(o, C_V);
            if (rnd(2))
                k = rnd_key(); /* the join key changes (or becomes / stops being NULL) */
            else
                v = rnd_val();
            rec = add_rec(b, s, TM_OP_UPDATE, before, new_row(b, s, get(o, C_ID), k, v));
        } else {
            const tm_row_t *o = gen->rows[side][rnd((uint32_t)live)];
            rec = add_rec(b, s, TM_OP_DELETE,
                          new_row(b, s, get(o, C_ID), get(o, C_K), get(o, C_V)), NULL);
        }
        model_apply(gen, side, rec);
    }
    return b;
}

/* ---- the harness: P instances with a store each ---- */

typedef struct run {
    char *dir;
    int par;
    const tm_join_spec_t *spec;
    tm_store_t *store[2];
    tm_operator_metrics_t metrics[2];
    tm_operator_ctx_t ctx[2];
    const tm_operator_ops_t *ops;
    tm_operator_t *op[2];
    tm_exchange_t x[2]; /* per input */
    collector_t *col;
    int side; /* the input being delivered */
    int gen;  /* store generation (work dir names) */
    int64_t ttl;
} run_t;

static void run_open_ops(run_t *r)
{
    for (int t = 0; t < r->par; t++) {
        memset(&r->metrics[t], 0, sizeof(r->metrics[t]));
        tm_operator_ctx_t *c = &r->ctx[t];
        *c = (tm_operator_ctx_t){.uid = "join-1", .job = "t", .subtask = t,
                                 .parallelism = r->par, .max_parallelism = 128,
                                 .store = r->store[t], .metrics = &r->metrics[t]};
        TM_REQUIRE(tm_keygroup_range(t, r->par, 128, &c->kg_first, &c->kg_last) == 0);
        int rc = tm_join_new(r->spec, c, &r->ops, &r->op[t], err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "tm_join_new: %s\n", err);
        TM_REQUIRE(rc == 0);
        TM_CHECK(r->ops->ninputs == 2);
        if (r->ops->restore != NULL)
            TM_REQUIRE(r->ops->restore(r->op[t], err, sizeof(err)) == 0);
    }
}

static void run_open(run_t *r, const tm_join_spec_t *spec, int par, int64_t ttl)
{
    char p[512];
    memset(r, 0, sizeof(*r));
    r->dir = tst_tmpdir();
    r->par = par;
    r->spec = spec;
    r->ttl = ttl;
    tm_store_opts_t o = tst_opts(ttl);
    for (int t = 0; t < par; t++) {
        char name[32];
        snprintf(name, sizeof(name), "work-%d", t);
        TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), r->dir, name), &o, &r->store[t], err,
                                 sizeof(err)) == 0);
    }
    tm_exchange_key_t lk = {tm_join_left_key, spec}, rk = {tm_join_right_key, spec};
    TM_REQUIRE(tm_exchange_init(&r->x[0], TM_EXCHANGE_HASH, &lk, par, 128, 0, false) == 0);
    TM_REQUIRE(tm_exchange_init(&r->x[1], TM_EXCHANGE_HASH, &rk, par, 128, 0, false) == 0);
    run_open_ops(r);
}

static void run_close_ops(run_t *r)
{
    for (int t = 0; t < r->par; t++)
        r->ops->free(r->op[t]);
}

static void run_close(run_t *r)
{
    run_close_ops(r);
    for (int t = 0; t < r->par; t++)
        tm_store_close(r->store[t]);
    tm_exchange_destroy(&r->x[0]);
    tm_exchange_destroy(&r->x[1]);
    tst_rmdir(r->dir);
}

static int deliver(void *arg, int target, tm_batch_t *b)
{
    run_t *r = arg;
    int rc = r->ops->process(r->op[target], r->side, b, &r->col->c, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "process (subtask %d, input %d): %s (%s)\n", target, r->side, err,
                tm_strerror(rc));
    tm_batch_unref(b);
    return rc;
}

/* Feeds one batch of input `side`: through the hash exchange, or straight to a global join. */
static int run_feed(run_t *r, int side, tm_batch_t *b, collector_t *col)
{
    r->side = side;
    r->col = col;
    if (r->spec->null_aware || r->spec->nkeys == 0)
        return deliver(r, 0, tm_batch_ref(b));
    return tm_exchange_route(&r->x[side], b, deliver, r);
}

static void run_checkpoint(run_t *r, collector_t *col)
{
    char p[512];
    for (int t = 0; t < r->par; t++) {
        char name[32];
        TM_REQUIRE(r->ops->on_barrier(r->op[t], 1, &col->c, err, sizeof(err)) == 0);
        snprintf(name, sizeof(name), "chk-%d", t);
        TM_REQUIRE(tm_store_checkpoint(r->store[t], tst_path(p, sizeof(p), r->dir, name), NULL,
                                       err, sizeof(err)) == 0);
    }
}

/* A crash: drop the instances and stores, restore the stores from the checkpoint. */
static void run_restore(run_t *r)
{
    char p[512], c[512];
    run_close_ops(r);
    tm_store_opts_t o = tst_opts(r->ttl);
    r->gen++;
    for (int t = 0; t < r->par; t++) {
        char name[32], cname[32];
        r->store[t] = tm_store_close(r->store[t]);
        snprintf(name, sizeof(name), "work-%d-%d", t, r->gen);
        snprintf(cname, sizeof(cname), "chk-%d", t);
        TM_REQUIRE(tm_store_open_from_checkpoint(tst_path(c, sizeof(c), r->dir, cname),
                                                 tst_path(p, sizeof(p), r->dir, name), &o,
                                                 &r->store[t], err, sizeof(err)) == 0);
    }
    run_open_ops(r);
}

static const char *type_name(tm_join_type_t t)
{
    static const char *const n[] = {"?", "INNER", "LEFT", "RIGHT", "FULL", "SEMI", "ANTI"};
    return n[t];
}

/*
 * One model run: random batches on both inputs; after each, the folded
 * output equals the nested-loop join of the current inputs.  A checkpoint
 * at batch CHK_AT, a crash at CRASH_AT, replay from the checkpoint.
 */
static void model_run(const fixture_t *f, tm_join_type_t type, int view, bool null_aware,
                      int par, uint64_t seed)
{
    tm_join_spec_t spec = make_spec(f, type, view, true, null_aware);
    run_t r;
    run_open(&r, &spec, par, 0);
    enum { NBATCH = 160, CHK_AT = 80, CRASH_AT = 120 };
    static tm_batch_t *batches[NBATCH];
    int sides[NBATCH];
    static model_t gen, model, saved_model;
    memset(&gen, 0, sizeof(gen));
    memset(&model, 0, sizeof(model));
    int64_t next_id = 1;
    rng = seed;
    for (int i = 0; i < NBATCH; i++) {
        sides[i] = (int)rnd(2);
        batches[i] = random_batch(sides[i] == 0 ? f->l : f->r, sides[i], &gen, &next_id,
                                  view == 0 || (view == 2 && sides[i] == 1));
    }
    static mset_t got, want, saved;
    collector_t col;
    collector_init(&col, &got);
    bool restarted = false;
    int maxwant = 0;
    for (int i = 0; i < NBATCH; i++) {
        TM_REQUIRE(run_feed(&r, sides[i], batches[i], &col) == 0);
        for (uint32_t k = 0; k < batches[i]->count; k++)
            model_apply(&model, sides[i], &batches[i]->recs[k]);
        expect(&spec, &model, &want);
        if (mset_rows(&want) > maxwant)
            maxwant = mset_rows(&want);
        bool ok = mset_equal(&got, &want) && got.errors == 0;
        if (!ok && getenv("JOIN_DEBUG") != NULL)
            for (int j = 0; j <= i; j++)
                for (uint32_t k = 0; k < batches[j]->count; k++) {
                    const tm_record_t *rc = &batches[j]->recs[k];
                    tm_buf_t o;
                    tm_buf_init(&o);
                    tm_buf_appendf(&o, "batch %d input %d %c ", j, sides[j], rc->op);
                    if (rc->before)
                        row_str(&o, rc->before, NC);
                    tm_buf_puts(&o, " -> ");
                    if (rc->after)
                        row_str(&o, rc->after, NC);
                    fprintf(stderr, "%s\n", o.data);
                    tm_buf_release(&o);
                }
        if (!ok)
            fprintf(stderr, "%s join, view %d%s, parallelism %d: after batch %d (input %d)\n",
                    type_name(type), view, null_aware ? ", null-aware" : "", par, i, sides[i]);
        TM_REQUIRE(ok);
        /* The state_rows gauge: every stored row of each side (a NULL key is not stored). */
        for (int side = 0; side < 2; side++) {
            int64_t stored = 0, gauge = 0;
            for (int k = 0; k < model.n[side]; k++)
                stored += null_aware || !tm_row_is_null(model.rows[side][k], C_K);
            for (int t = 0; t < par; t++) {
                gauge += atomic_load(&r.metrics[t].state_rows[side]);
                TM_CHECK_INT(atomic_load(&r.metrics[t].state_inputs), 2);
            }
            if (gauge != stored)
                fprintf(stderr, "%s join, view %d: after batch %d, side %d\n", type_name(type),
                        view, i, side);
            TM_CHECK_INT(gauge, stored);
        }
        if (i == CHK_AT) {
            run_checkpoint(&r, &col);
            mset_copy(&saved, &got);
            saved_model = model;
        }
        if (i == CRASH_AT && !restarted) {
            restarted = true;
            run_restore(&r);
            mset_copy(&got, &saved);
            model = saved_model;
            i = CHK_AT;
        }
    }
    TM_CHECK(restarted);
    TM_CHECK(maxwant > 5); /* the workload produced real output */
    for (int i = 0; i < NBATCH; i++)
        tm_batch_unref(batches[i]);
    run_close(&r);
    mset_clear(&got);
    mset_clear(&want);
    mset_clear(&saved);
    tm_buf_release(&col.log);
}

static void test_model(void)
{
    fixture_t f;
    fixture_init(&f);
    uint64_t seed = 1000;
    for (int type = TM_JOIN_INNER; type <= TM_JOIN_ANTI; type++)
        for (int view = 0; view < 3; view++)
            for (int par = 1; par <= 2; par++)
                model_run(&f, (tm_join_type_t)type, view, false, par, seed++);
    for (int view = 0; view < 3; view++)
        model_run(&f, TM_JOIN_ANTI, view, true, 1, seed++);
    fixture_free(&f);
}

/* ---- focused tests ---- */

/* Feeds one record and returns the output lines (caller frees). */
static char *step(run_t *r, collector_t *col, int side, tm_op_t op, tm_row_t *before,
                  tm_row_t *after, tm_batch_t *b)
{
    tm_batch_t *in = tm_batch_new();
    tm_schema_t *s = (tm_schema_t *)(side == 0 ? r->spec->left_schema : r->spec->right_schema);
    add_rec(in, s, op, before ? tm_row_copy(in, s, before) : NULL,
            after ? tm_row_copy(in, s, after) : NULL);
    (void)b;
    tm_buf_clear(&col->log);
    TM_REQUIRE(run_feed(r, side, in, col) == 0);
    tm_batch_unref(in);
    char *text = strndup(col->log.data ? col->log.data : "", col->log.len);
    char *sorted = tst_sort_lines(text);
    free(text);
    return sorted;
}

#define STEP_IS(expr, want)                                                                        \
    do {                                                                                           \
        char *got_ = (expr);                                                                       \
        TM_CHECK_STR(got_, want);                                                                  \
        free(got_);                                                                                \
    } while (0)

/* LEFT join: the padded row comes, goes with the first match, and comes back with the last. */
static void test_left_padding(void)
{
    fixture_t f;
    fixture_init(&f);
    for (int view = 0; view < 2; view++) {
        tm_join_spec_t spec = make_spec(&f, TM_JOIN_LEFT, view, false, false);
        run_t r;
        run_open(&r, &spec, 1, 0);
        mset_t m = {0};
        collector_t col;
        collector_init(&col, &m);
        tm_batch_t *b = tm_batch_new();
        tm_row_t *l1 = new_row(b, f.l, 1, 7, 0), *l1b = new_row(b, f.l, 1, 8, 0);
        tm_row_t *r1 = new_row(b, f.r, 10, 7, 1), *r2 = new_row(b, f.r, 11, 7, 2);
        STEP_IS(step(&r, &col, 0, TM_OP_CREATE, NULL, l1, b), "+1|7|0|null|null|null\n");
        STEP_IS(step(&r, &col, 1, TM_OP_CREATE, NULL, r1, b),
                "+1|7|0|10|7|1\n-1|7|0|null|null|null\n");
        STEP_IS(step(&r, &col, 1, TM_OP_CREATE, NULL, r2, b), "+1|7|0|11|7|2\n");
        STEP_IS(step(&r, &col, 1, TM_OP_DELETE, r1, NULL, b), "-1|7|0|10|7|1\n");
        STEP_IS(step(&r, &col, 1, TM_OP_DELETE, r2, NULL, b),
                "+1|7|0|null|null|null\n-1|7|0|11|7|2\n");
        /* A right row arrives first; the left row's key changes onto it and away again. */
        STEP_IS(step(&r, &col, 1, TM_OP_CREATE, NULL, new_row(b, f.r, 12, 8, 3), b), "");
        STEP_IS(step(&r, &col, 0, TM_OP_UPDATE, l1, l1b, b),
                "+1|8|0|12|8|3\n-1|7|0|null|null|null\n");
        STEP_IS(step(&r, &col, 0, TM_OP_DELETE, l1b, NULL, b), "-1|8|0|12|8|3\n");
        TM_CHECK_INT(mset_rows(&m), 0);
        TM_CHECK_INT(m.errors, 0);
        tm_batch_unref(b);
        tm_buf_release(&col.log);
        mset_clear(&m);
        run_close(&r);
    }
    fixture_free(&f);
}

/* The key group of join key value k (max_parallelism 128, as run_open). */
static int kg_of(const fixture_t *f, const tm_join_spec_t *spec, int64_t k)
{
    tm_batch_t *b = tm_batch_new();
    tm_buf_t key;
    tm_buf_init(&key);
    TM_REQUIRE(tm_join_left_key(spec, f->l, new_row(b, f->l, 1, k, 0), &key) == 0);
    int kg = tm_keygroup_of(key.data, key.len, 128);
    tm_buf_release(&key);
    tm_batch_unref(b);
    return kg;
}

/*
 * Output order is input order (join.c invariant 5): a left row whose join
 * key moves from a to b gives its retraction under a before its insert
 * under b, even when b's state comes first in the store, as a downstream
 * unique-key view or upsert sink needs; so does a delete and re-insert of
 * one unique key in one batch.  (Visiting keys in store order used to emit
 * the insert first, and a downstream join keyed by the row's id then lost
 * it: the four-way join case of tests/sql.)
 */
static void test_output_in_input_order(void)
{
    fixture_t f;
    fixture_init(&f);
    tm_join_spec_t spec = make_spec(&f, TM_JOIN_INNER, 1, false, false);
    /* Two keys whose key groups are in the order that used to invert the output. */
    int64_t a = 1, b = 2;
    while (kg_of(&f, &spec, b) >= kg_of(&f, &spec, a))
        b++;
    run_t r;
    run_open(&r, &spec, 1, 0);
    mset_t m = {0};
    collector_t col;
    collector_init(&col, &m);
    tm_batch_t *rows = tm_batch_new();
    tm_row_t *ra = new_row(rows, f.r, 10, a, 1), *rb = new_row(rows, f.r, 11, b, 2);
    tm_row_t *l1a = new_row(rows, f.l, 1, a, 0), *l1b = new_row(rows, f.l, 1, b, 0);
    STEP_IS(step(&r, &col, 1, TM_OP_CREATE, NULL, ra, rows), "");
    STEP_IS(step(&r, &col, 1, TM_OP_CREATE, NULL, rb, rows), "");
    char want[256];
    snprintf(want, sizeof(want), "+1|%lld|0|10|%lld|1\n", (long long)a, (long long)a);
    STEP_IS(step(&r, &col, 0, TM_OP_CREATE, NULL, l1a, rows), want);
    /* One update record, and then a delete and an insert in one batch. */
    for (int round = 0; round < 2; round++) {
        tm_row_t *from = round == 0 ? l1a : l1b, *to = round == 0 ? l1b : l1a;
        tm_row_t *rfrom = round == 0 ? ra : rb, *rto = round == 0 ? rb : ra;
        tm_batch_t *in = tm_batch_new();
        if (round == 0) {
            add_rec(in, f.l, TM_OP_UPDATE, tm_row_copy(in, f.l, from), tm_row_copy(in, f.l, to));
        } else {
            add_rec(in, f.l, TM_OP_DELETE, tm_row_copy(in, f.l, from), NULL);
            add_rec(in, f.l, TM_OP_CREATE, NULL, tm_row_copy(in, f.l, to));
        }
        tm_buf_clear(&col.log);
        TM_REQUIRE(run_feed(&r, 0, in, &col) == 0);
        tm_batch_unref(in);
        snprintf(want, sizeof(want), "-1|%lld|0|%lld|%lld|%lld\n+1|%lld|0|%lld|%lld|%lld\n",
                 (long long)get(from, C_K), (long long)get(rfrom, C_ID),
                 (long long)get(rfrom, C_K), (long long)get(rfrom, C_V),
                 (long long)get(to, C_K), (long long)get(rto, C_ID), (long long)get(rto, C_K),
                 (long long)get(rto, C_V));
        TM_CHECK_STR(col.log.data ? col.log.data : "", want);
    }
    TM_CHECK_INT(m.errors, 0);
    tm_batch_unref(rows);
    tm_buf_release(&col.log);
    mset_clear(&m);
    run_close(&r);
    fixture_free(&f);
}

/* NOT IN: a NULL on the right blocks every left row; a NULL on the left passes only vs empty. */
static void test_not_in_nulls(void)
{
    fixture_t f;
    fixture_init(&f);
    tm_join_spec_t spec = make_spec(&f, TM_JOIN_ANTI, 0, false, true);
    run_t r;
    run_open(&r, &spec, 1, 0);
    mset_t m = {0};
    collector_t col;
    collector_init(&col, &m);
    tm_batch_t *b = tm_batch_new();
    tm_row_t *l1 = new_row(b, f.l, 1, 1, 0), *l2 = new_row(b, f.l, 2, -1, 0);
    tm_row_t *r2 = new_row(b, f.r, 10, 2, 0), *rn = new_row(b, f.r, 11, -1, 0);
    STEP_IS(step(&r, &col, 0, TM_OP_CREATE, NULL, l1, b), "+1|1|0\n");
    STEP_IS(step(&r, &col, 0, TM_OP_CREATE, NULL, l2, b), "+2|null|0\n");
    STEP_IS(step(&r, &col, 1, TM_OP_CREATE, NULL, r2, b), "-2|null|0\n");
    STEP_IS(step(&r, &col, 1, TM_OP_CREATE, NULL, rn, b), "-1|1|0\n");
    STEP_IS(step(&r, &col, 1, TM_OP_DELETE, rn, NULL, b), "+1|1|0\n");
    STEP_IS(step(&r, &col, 1, TM_OP_DELETE, r2, NULL, b), "+2|null|0\n");
    /* A plain ANTI join (NOT EXISTS) lets the NULL-keyed left row through regardless. */
    tm_batch_unref(b);
    tm_buf_release(&col.log);
    mset_clear(&m);
    run_close(&r);

    spec = make_spec(&f, TM_JOIN_ANTI, 0, false, false);
    run_open(&r, &spec, 2, 0);
    collector_init(&col, &m);
    b = tm_batch_new();
    l2 = new_row(b, f.l, 2, -1, 0);
    rn = new_row(b, f.r, 11, -1, 0);
    STEP_IS(step(&r, &col, 1, TM_OP_CREATE, NULL, rn, b), "");
    /* Broadcast to both subtasks, answered once. */
    STEP_IS(step(&r, &col, 0, TM_OP_CREATE, NULL, l2, b), "+2|null|0\n");
    tm_batch_unref(b);
    tm_buf_release(&col.log);
    mset_clear(&m);
    run_close(&r);
    fixture_free(&f);
}

/* state_ttl: a row older than the TTL no longer matches. */
static void test_ttl(void)
{
    fixture_t f;
    fixture_init(&f);
    tm_join_spec_t spec = make_spec(&f, TM_JOIN_INNER, 1, false, false);
    run_t r;
    run_open(&r, &spec, 1, 60 * 1000000LL);
    mset_t m = {0};
    collector_t col;
    collector_init(&col, &m);
    tm_batch_t *b = tm_batch_new();
    STEP_IS(step(&r, &col, 1, TM_OP_CREATE, NULL, new_row(b, f.r, 10, 5, 0), b), "");
    STEP_IS(step(&r, &col, 0, TM_OP_CREATE, NULL, new_row(b, f.l, 1, 5, 0), b), "+1|5|0|10|5|0\n");
    atomic_fetch_add(&tst_clock_now, 61 * 1000000LL);
    /* Both rows expired: a new left row finds nothing. */
    STEP_IS(step(&r, &col, 0, TM_OP_CREATE, NULL, new_row(b, f.l, 2, 5, 0), b), "");
    STEP_IS(step(&r, &col, 1, TM_OP_CREATE, NULL, new_row(b, f.r, 11, 5, 1), b), "+2|5|0|11|5|1\n");
    tm_batch_unref(b);
    tm_buf_release(&col.log);
    mset_clear(&m);
    run_close(&r);
    fixture_free(&f);
}

/* One iterator seek per key per batch, plus one read per distinct row of the input side. */
static void test_state_reads(void)
{
    fixture_t f;
    fixture_init(&f);
    tm_join_spec_t spec = make_spec(&f, TM_JOIN_INNER, 1, false, false);
    run_t r;
    run_open(&r, &spec, 1, 0);
    mset_t m = {0};
    collector_t col;
    collector_init(&col, &m);
    tm_batch_t *rb = tm_batch_new();
    for (int i = 0; i < 50; i++)
        add_rec(rb, f.r, TM_OP_CREATE, NULL, new_row(rb, f.r, 1000 + i, i % 5, 0));
    TM_REQUIRE(run_feed(&r, 1, rb, &col) == 0);
    TM_CHECK_INT(atomic_load(&r.metrics[0].state_reads), 5 + 50);
    tm_batch_t *lb = tm_batch_new();
    for (int i = 0; i < 100; i++)
        add_rec(lb, f.l, TM_OP_CREATE, NULL, new_row(lb, f.l, i % 20, i % 5, 0));
    TM_REQUIRE(run_feed(&r, 0, lb, &col) == 0);
    /* 5 keys, 20 distinct left rows (each id repeats: later inserts replace earlier ones). */
    TM_CHECK_INT(atomic_load(&r.metrics[0].state_reads), 55 + 5 + 20);
    TM_CHECK_INT(mset_rows(&m), 20 * 10);
    TM_CHECK_INT(m.errors, 0);
    tm_batch_unref(rb);
    tm_batch_unref(lb);
    tm_buf_release(&col.log);
    mset_clear(&m);
    run_close(&r);
    fixture_free(&f);
}

/* A keyed row sent to the wrong subtask fails the call; a bad spec is refused. */
static void test_errors(void)
{
    fixture_t f;
    fixture_init(&f);
    tm_join_spec_t spec = make_spec(&f, TM_JOIN_INNER, 0, false, false);
    run_t r;
    run_open(&r, &spec, 2, 0);
    mset_t m = {0};
    collector_t col;
    collector_init(&col, &m);
    tm_batch_t *b = tm_batch_new();
    add_rec(b, f.l, TM_OP_CREATE, NULL, new_row(b, f.l, 1, 3, 0));
    add_rec(b, f.l, TM_OP_CREATE, NULL, new_row(b, f.l, 2, 4, 0));
    add_rec(b, f.l, TM_OP_CREATE, NULL, new_row(b, f.l, 3, 9, 0));
    int rc0 = r.ops->process(r.op[0], 0, b, &col.c, err, sizeof(err));
    int rc1 = r.ops->process(r.op[1], 0, b, &col.c, err, sizeof(err));
    TM_CHECK(rc0 == TM_EINVAL || rc1 == TM_EINVAL);
    TM_CHECK(r.ops->process(r.op[0], 2, b, &col.c, err, sizeof(err)) == TM_EINVAL);
    tm_batch_unref(b);
    tm_buf_release(&col.log);
    mset_clear(&m);
    run_close(&r);

    tm_join_spec_t bad = make_spec(&f, TM_JOIN_SEMI, 0, false, false);
    bad.out_schema = f.pairs;
    tm_operator_metrics_t mt = {0};
    char *dir = tst_tmpdir();
    char p[512];
    tm_store_opts_t o = tst_opts(0);
    tm_store_t *st;
    TM_REQUIRE(tm_store_open(tst_path(p, sizeof(p), dir, "w"), &o, &st, err, sizeof(err)) == 0);
    tm_operator_ctx_t ctx = {.uid = "j", .parallelism = 1, .max_parallelism = 128, .kg_first = 0,
                             .kg_last = 127, .store = st, .metrics = &mt};
    const tm_operator_ops_t *ops;
    tm_operator_t *op;
    TM_CHECK(tm_join_new(&bad, &ctx, &ops, &op, err, sizeof(err)) == TM_EINVAL);
    TM_CHECK(strstr(err, "output schema") != NULL);
    bad = make_spec(&f, TM_JOIN_INNER, 0, false, true);
    TM_CHECK(tm_join_new(&bad, &ctx, &ops, &op, err, sizeof(err)) == TM_EINVAL);
    tm_store_close(st);
    tst_rmdir(dir);
    fixture_free(&f);
}

int main(void)
{
    TM_RUN(test_left_padding);
    TM_RUN(test_output_in_input_order);
    TM_RUN(test_not_in_nulls);
    TM_RUN(test_ttl);
    TM_RUN(test_state_reads);
    TM_RUN(test_errors);
    TM_RUN(test_model);
    return tm_test_done();
}
