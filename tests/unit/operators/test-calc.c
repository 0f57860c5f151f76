/*
 * Unit tests: the calc operator (operators/calc.h) — the changelog table
 * of calc.h row by row, control records, row errors through the on_error
 * hook, and the by-name column map for records of another schema shape.
 */
#include "core/datum.h"
#include "core/error.h"
#include "expr/expr.h"
#include "operators/calc.h"
#include "tm_test.h"

/* The runtime implements this on its own branch; the test records the calls. */
static int row_errors;
static char last_reason[256];
static tm_error_policy_t policy = TM_ON_ERROR_SKIP;

int tm_operator_row_error(const tm_operator_ctx_t *ctx, const tm_record_t *rec, const char *reason,
                          char *errstr, size_t errstr_size)
{
    (void)ctx;
    (void)rec;
    row_errors++;
    snprintf(last_reason, sizeof(last_reason), "%s", reason);
    if (policy == TM_ON_ERROR_FAIL)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "%s", reason);
    return 0;
}

static tm_batch_t *emitted[16];
static int nemitted;

static int collect(tm_collector_t *c, tm_batch_t *b)
{
    (void)c;
    if (nemitted < 16)
        emitted[nemitted++] = b;
    else
        tm_batch_unref(b);
    return 0;
}

static void clear_emitted(void)
{
    for (int i = 0; i < nemitted; i++)
        tm_batch_unref(emitted[i]);
    nemitted = 0;
}

/* Columns: id int4, name text, amount int4, note text, div int4. */
static tm_schema_t *make_schema(const char *const *names, const tm_type_t *types, int n)
{
    tm_schema_t *s = tm_schema_new(n);
    for (int i = 0; i < n; i++) {
        tm_schema_set_str(&s->cols[i].name, names[i]);
        s->cols[i].type = types[i];
        s->cols[i].nullable = true;
    }
    s->cols[0].key_index = 0;
    tm_schema_finish(s);
    return s;
}

static const char *const in_names[] = {"id", "name", "amount", "note", "div"};
static const tm_type_t in_types[] = {TM_T_INT32, TM_T_TEXT, TM_T_INT32, TM_T_TEXT, TM_T_INT32};

/* A row of schema s from (id, name, amount, note, div) given by name. */
static tm_row_t *mkrow(tm_batch_t *b, tm_schema_t *s, int id, const char *name, int amount,
                       const char *note, int div)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    for (int c = 0; c < s->ncols; c++) {
        const char *cn = s->cols[c].name;
        tm_row_set_null(r, c, false);
        if (!strcmp(cn, "id"))
            r->vals[c].u.i64 = id;
        else if (!strcmp(cn, "name"))
            tm_batch_set_var(b, &r->vals[c], name, strlen(name));
        else if (!strcmp(cn, "amount"))
            r->vals[c].u.i64 = amount;
        else if (!strcmp(cn, "note"))
            tm_batch_set_var(b, &r->vals[c], note, strlen(note));
        else if (!strcmp(cn, "div"))
            r->vals[c].u.i64 = div;
        else
            tm_row_set_null(r, c, true);
    }
    return r;
}

static void add(tm_batch_t *b, tm_schema_t *s, tm_op_t op, tm_row_t *before, tm_row_t *after)
{
    tm_record_t *r = tm_batch_add(b, s, op);
    r->before = before;
    r->after = after;
}

typedef struct {
    tm_expr_pool_t *pool;
    tm_schema_t *in, *out;
    tm_expr_t *exprs[3];
    tm_calc_spec_t spec;
} plan_t;

/* SELECT id, upper(name), amount * 10 / div FROM in WHERE amount > 10 */
static void make_plan(plan_t *p, bool pass_control)
{
    char err[256];
    tm_expr_type_t t[5];
    p->pool = tm_expr_pool_new();
    p->in = make_schema(in_names, in_types, 5);
    tm_expr_t *col[5];
    for (int i = 0; i < 5; i++) {
        tm_expr_type_from_column(&p->in->cols[i], &t[i]);
        col[i] = tm_expr_column(p->pool, i, &t[i], in_names[i]);
    }
    tm_expr_t *f, *up, *mul, *div;
    TM_REQUIRE(tm_expr_operator(p->pool, ">", col[2], tm_expr_int(p->pool, 10), &f, err,
                                sizeof(err)) == 0);
    TM_REQUIRE(tm_expr_call(p->pool, "upper", &col[1], 1, &up, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_expr_operator(p->pool, "*", col[2], tm_expr_int(p->pool, 10), &mul, err,
                                sizeof(err)) == 0);
    TM_REQUIRE(tm_expr_operator(p->pool, "/", mul, col[4], &div, err, sizeof(err)) == 0);
    p->exprs[0] = col[0];
    p->exprs[1] = up;
    p->exprs[2] = div;
    static const char *const out_names[] = {"id", "uname", "x"};
    p->out = tm_schema_new(3);
    for (int i = 0; i < 3; i++) {
        tm_schema_set_str(&p->out->cols[i].name, out_names[i]);
        tm_expr_type_to_column(tm_expr_type(p->exprs[i]), &p->out->cols[i]);
        p->out->cols[i].key_index = -1;
    }
    p->spec = (tm_calc_spec_t){p->in, f, (const tm_expr_t *const *)p->exprs, 3, p->out,
                               pass_control};
}

static void free_plan(plan_t *p)
{
    tm_schema_unref(p->in);
    tm_schema_unref(p->out);
    tm_expr_pool_free(p->pool);
}

static tm_operator_metrics_t metrics;

static int run(plan_t *p, tm_batch_t *in, char *err, size_t errlen)
{
    tm_operator_ctx_t ctx = {0};
    ctx.uid = "calc-1";
    ctx.on_error = policy;
    ctx.metrics = &metrics;
    const tm_operator_ops_t *ops;
    tm_operator_t *op;
    TM_REQUIRE(tm_calc_new(&p->spec, &ctx, &ops, &op, err, errlen) == 0);
    TM_CHECK_STR(ops->name, "calc");
    tm_collector_t c = {collect, NULL};
    int rc = ops->process(op, 0, in, &c, err, errlen);
    ops->free(op);
    return rc;
}

static bool row_is(const tm_row_t *r, int id, const char *uname, int x)
{
    return r && r->vals[0].u.i64 == id && r->vals[1].u.var.len == strlen(uname) &&
           memcmp(r->vals[1].u.var.ptr, uname, strlen(uname)) == 0 && r->vals[2].u.i64 == x;
}

static void test_changelog_table(void)
{
    plan_t p;
    make_plan(&p, false);
    tm_batch_t *b = tm_batch_new();
    tm_schema_t *s = p.in;
    add(b, s, TM_OP_CREATE, NULL, mkrow(b, s, 1, "a", 20, "n", 1));        /* insert passes */
    add(b, s, TM_OP_CREATE, NULL, mkrow(b, s, 2, "b", 5, "n", 1));         /* insert fails */
    add(b, s, TM_OP_READ, NULL, mkrow(b, s, 3, "c", 30, "n", 1));          /* r stays r */
    add(b, s, TM_OP_DELETE, mkrow(b, s, 4, "d", 40, "n", 1), NULL);        /* delete passes */
    add(b, s, TM_OP_DELETE, mkrow(b, s, 5, "e", 1, "n", 1), NULL);         /* delete fails */
    add(b, s, TM_OP_UPDATE, mkrow(b, s, 6, "f", 11, "n", 1), mkrow(b, s, 6, "f", 12, "n", 1));
    add(b, s, TM_OP_UPDATE, mkrow(b, s, 7, "g", 11, "n", 1), mkrow(b, s, 7, "g", 1, "n", 1));
    add(b, s, TM_OP_UPDATE, mkrow(b, s, 8, "h", 1, "n", 1), mkrow(b, s, 8, "h", 50, "n", 1));
    add(b, s, TM_OP_UPDATE, mkrow(b, s, 9, "i", 1, "n", 1), mkrow(b, s, 9, "i", 2, "n", 1));
    /* Only an unprojected column changes: dropped. */
    add(b, s, TM_OP_UPDATE, mkrow(b, s, 10, "j", 99, "old", 1), mkrow(b, s, 10, "j", 99, "new", 1));
    add(b, s, TM_OP_UPDATE, NULL, mkrow(b, s, 11, "k", 77, "n", 1));       /* upsert update */
    add(b, s, TM_OP_TRUNCATE, NULL, NULL);                                 /* dropped */
    add(b, s, TM_OP_CREATE, NULL, mkrow(b, s, 12, "l", 20, "n", 0));       /* row error: / 0 */
    char err[256];
    row_errors = 0;
    TM_REQUIRE(run(&p, b, err, sizeof(err)) == 0);
    TM_REQUIRE(nemitted == 1);
    tm_batch_t *o = emitted[0];
    TM_REQUIRE(o->count == 7);
    const tm_record_t *r = o->recs;
    TM_CHECK(r[0].op == TM_OP_CREATE && !r[0].before && row_is(r[0].after, 1, "A", 200));
    TM_CHECK(r[1].op == TM_OP_READ && row_is(r[1].after, 3, "C", 300));
    TM_CHECK(r[2].op == TM_OP_DELETE && row_is(r[2].before, 4, "D", 400) && !r[2].after);
    TM_CHECK(r[3].op == TM_OP_UPDATE && row_is(r[3].before, 6, "F", 110) &&
             row_is(r[3].after, 6, "F", 120));
    TM_CHECK(r[4].op == TM_OP_DELETE && row_is(r[4].before, 7, "G", 110) && !r[4].after);
    TM_CHECK(r[5].op == TM_OP_CREATE && !r[5].before && row_is(r[5].after, 8, "H", 500));
    TM_CHECK(r[6].op == TM_OP_UPDATE && !r[6].before && row_is(r[6].after, 11, "K", 770));
    for (uint32_t i = 0; i < o->count; i++)
        TM_CHECK(o->recs[i].schema == p.out);
    TM_CHECK_INT(row_errors, 1);
    TM_CHECK_STR(last_reason, "division by zero");
    /* Output strings live in the output batch: the input batch can go first. */
    tm_batch_unref(b);
    TM_CHECK(row_is(o->recs[0].after, 1, "A", 200));
    clear_emitted();

    /* on_error = 'fail' makes process fail with the row's message. */
    policy = TM_ON_ERROR_FAIL;
    b = tm_batch_new();
    add(b, s, TM_OP_CREATE, NULL, mkrow(b, s, 12, "l", 20, "n", 0));
    TM_CHECK(run(&p, b, err, sizeof(err)) == TM_EINVAL);
    TM_CHECK_STR(err, "division by zero");
    policy = TM_ON_ERROR_SKIP;
    tm_batch_unref(b);
    clear_emitted();
    free_plan(&p);
}

static void test_control_records(void)
{
    plan_t p;
    make_plan(&p, true);
    tm_batch_t *b = tm_batch_new();
    add(b, p.in, TM_OP_TRUNCATE, NULL, NULL);
    tm_record_t *m = tm_batch_add(b, p.in, TM_OP_MESSAGE);
    m->msg_prefix = "pfx";
    m->msg_content = (const uint8_t *)"xyz";
    m->msg_len = 3;
    char err[256];
    TM_REQUIRE(run(&p, b, err, sizeof(err)) == 0);
    TM_REQUIRE(nemitted == 1 && emitted[0]->count == 2);
    TM_CHECK(emitted[0]->recs[0].op == TM_OP_TRUNCATE);
    TM_CHECK(emitted[0]->recs[1].op == TM_OP_MESSAGE && emitted[0]->recs[1].msg_len == 3);
    TM_CHECK_STR(emitted[0]->recs[1].msg_prefix, "pfx");
    tm_batch_unref(b);
    clear_emitted();
    free_plan(&p);
}

static void test_by_name_map(void)
{
    plan_t p;
    make_plan(&p, false);
    /* The source table gained a column and lists its columns in another order. */
    static const char *const names2[] = {"extra", "div", "amount", "id", "note", "name"};
    static const tm_type_t types2[] = {TM_T_TEXT,  TM_T_INT32, TM_T_INT32,
                                       TM_T_INT32, TM_T_TEXT,  TM_T_TEXT};
    tm_schema_t *s2 = make_schema(names2, types2, 6);
    /* And another lost a column the query needs. */
    static const char *const names3[] = {"id", "name", "amount", "note"};
    tm_schema_t *s3 = make_schema(names3, types2 + 2, 4);
    s3->cols[1].type = TM_T_TEXT;
    s3->cols[3].type = TM_T_TEXT;
    tm_batch_t *b = tm_batch_new();
    add(b, s2, TM_OP_CREATE, NULL, mkrow(b, s2, 21, "m", 40, "n", 4));
    add(b, s3, TM_OP_CREATE, NULL, mkrow(b, s3, 22, "o", 40, "n", 0));
    add(b, p.in, TM_OP_CREATE, NULL, mkrow(b, p.in, 23, "q", 40, "n", 2));
    char err[256];
    row_errors = 0;
    TM_REQUIRE(run(&p, b, err, sizeof(err)) == 0);
    TM_REQUIRE(nemitted == 1 && emitted[0]->count == 2);
    TM_CHECK(row_is(emitted[0]->recs[0].after, 21, "M", 100));
    TM_CHECK(row_is(emitted[0]->recs[1].after, 23, "Q", 200));
    TM_CHECK_INT(row_errors, 1);
    TM_CHECK(strstr(last_reason, "column \"div\" is missing") != NULL);
    tm_batch_unref(b);
    tm_schema_unref(s2);
    tm_schema_unref(s3);
    clear_emitted();
    free_plan(&p);
}

static void test_many_records_split_batches(void)
{
    plan_t p;
    make_plan(&p, false);
    tm_batch_t *b = tm_batch_new();
    for (int i = 0; i < TM_BATCH_MAX; i++)
        add(b, p.in, TM_OP_CREATE, NULL, mkrow(b, p.in, i, "x", 11, "n", 1));
    char err[256];
    TM_REQUIRE(run(&p, b, err, sizeof(err)) == 0);
    TM_CHECK_INT(nemitted, 1);
    TM_CHECK_INT(emitted[0]->count, TM_BATCH_MAX);
    tm_batch_unref(b);
    clear_emitted();
    free_plan(&p);
}

int main(void)
{
    TM_RUN(test_changelog_table);
    TM_RUN(test_control_records);
    TM_RUN(test_by_name_map);
    TM_RUN(test_many_records_split_batches);
    return tm_test_done();
}
