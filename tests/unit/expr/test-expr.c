/*
 * Unit tests: the expression layer against PostgreSQL 15.
 *
 * cases.inc holds SQL expressions with the type and text value (or error
 * message) PostgreSQL 15 gave for them over one row (gen_cases.py wrote it
 * from cases.txt against a real server with TimeZone=UTC and the C locale).
 * Each expression is parsed here with libpg_query and bound by a small
 * binder below onto the tm_expr builders, evaluated over the same row, cast
 * to text, and compared.
 */
#include "core/error.h"
#include "expr/expr.h"
#include "tm_test.h"

#include <jansson.h>
#include <pg_query.h>

typedef struct {
    const char *expr, *type, *value;
} pg_case_t;

static const pg_case_t cases[] = {
#include "cases.inc"
};

/* Where tidemark knowingly differs from PostgreSQL (docs/sql.md lists them). */
static const struct {
    const char *expr, *type, *value;
} known_differences[] = {
    /* Aggregates are bound by expr/agg.h, not as scalar functions. */
    {"sum(i)", "!", "aggregate function sum is not allowed here"},
    /* Intervals are microseconds: 36 hours print with a day part. */
    {"'36 hours'::interval", "interval", "1 day 12:00:00"},
};

static const struct {
    const char *name, *type, *value;
} columns[] = {
    {"i", "int4", "7"},
    {"n", "numeric", "2.50"},
    {"t", "text", "Hello"},
    {"z", "int4", NULL},
    {"f", "float8", "1.5"},
    {"d", "date", "2024-01-31"},
    {"ts", "timestamp", "2024-01-02 03:04:05.5"},
    {"tz", "timestamptz", "2024-01-02 03:04:05+00"},
    {"b", "bool", "true"},
    {"bn", "bool", NULL},
    {"j", "json", "{\"a\": {\"b\": [1, \"x\", null]}, \"c\": \"d\"}"},
    {"big", "int8", "9223372036854775807"},
    {"s", "int2", "32767"},
    {"tn", "text", NULL},
    {"iv", "interval", "1 day 02:00:00"},
    {"u", "text", "h\xc3\xa9llo w\xc3\xb6rld"},
    {"r", "float4", "1.5"},
};
#define NCOLS ((int)(sizeof(columns) / sizeof(columns[0])))

static tm_expr_pool_t *pool;
static tm_expr_type_t coltypes[NCOLS];
static tm_row_t row;
static uint64_t rownulls[1];
static tm_datum_t rowvals[NCOLS];
static tm_arena_t arena;

/* ---- a small binder over libpg_query's JSON parse tree ---- */

static int bind(json_t *n, tm_expr_t **out, char *err, size_t errlen);

static const char *sval(json_t *str)
{
    return json_string_value(json_object_get(json_object_get(str, "String"), "sval"));
}

static const char *last_name(json_t *names)
{
    return sval(json_array_get(names, json_array_size(names) - 1));
}

static int bind_list(json_t *arr, tm_expr_t **v, int *n, char *err, size_t errlen)
{
    *n = (int)json_array_size(arr);
    for (int i = 0; i < *n; i++) {
        int rc = bind(json_array_get(arr, (size_t)i), &v[i], err, errlen);
        if (rc)
            return rc;
    }
    return 0;
}

static int bind_const(json_t *c, tm_expr_t **out, char *err, size_t errlen)
{
    json_t *x;
    if (json_is_true(json_object_get(c, "isnull"))) {
        *out = tm_expr_null(pool);
    } else if ((x = json_object_get(c, "ival"))) {
        *out = tm_expr_int(pool, json_integer_value(json_object_get(x, "ival")));
    } else if ((x = json_object_get(c, "fval"))) {
        return tm_expr_numeric_literal(pool, json_string_value(json_object_get(x, "fval")), out,
                                       err, errlen);
    } else if ((x = json_object_get(c, "sval"))) {
        const char *s = json_string_value(json_object_get(x, "sval"));
        *out = tm_expr_string(pool, s ? s : "");
    } else if ((x = json_object_get(c, "boolval"))) {
        *out = tm_expr_bool(pool, json_is_true(json_object_get(x, "boolval")));
    } else {
        return tm_seterr(err, errlen, TM_ESQL, "unsupported constant");
    }
    return 0;
}

static int bind(json_t *n, tm_expr_t **out, char *err, size_t errlen)
{
    const char *kind = "";
    json_t *v = NULL;
    tm_expr_t *a[32], *b[32];
    int na = 0, rc;
    void *it = json_object_iter(n);
    if (it) {
        kind = json_object_iter_key(it);
        v = json_object_iter_value(it);
    }
    if (!strcmp(kind, "A_Const"))
        return bind_const(v, out, err, errlen);
    if (!strcmp(kind, "ColumnRef")) {
        const char *name = sval(json_array_get(json_object_get(v, "fields"), 0));
        for (int i = 0; i < NCOLS; i++)
            if (!strcmp(columns[i].name, name)) {
                *out = tm_expr_column(pool, i, &coltypes[i], name);
                return 0;
            }
        return tm_seterr(err, errlen, TM_ESQL, "column %s does not exist", name);
    }
    if (!strcmp(kind, "TypeCast")) {
        json_t *tn = json_object_get(v, "typeName");
        int32_t mods[4];
        int nmods = 0;
        json_t *m;
        size_t k;
        json_array_foreach(json_object_get(tn, "typmods"), k, m)
        {
            if (nmods < 4)
                mods[nmods++] = (int32_t)json_integer_value(
                    json_object_get(json_object_get(json_object_get(m, "A_Const"), "ival"), "ival"));
        }
        tm_expr_type_t t;
        if ((rc = tm_expr_type_parse(last_name(json_object_get(tn, "names")), mods, nmods,
                                     json_object_get(tn, "arrayBounds") != NULL, &t, err, errlen)))
            return rc;
        if ((rc = bind(json_object_get(v, "arg"), &a[0], err, errlen)))
            return rc;
        return tm_expr_cast(pool, a[0], &t, out, err, errlen);
    }
    if (!strcmp(kind, "A_Expr")) {
        const char *k2 = json_string_value(json_object_get(v, "kind"));
        const char *op = last_name(json_object_get(v, "name"));
        json_t *l = json_object_get(v, "lexpr"), *r = json_object_get(v, "rexpr");
        tm_expr_t *le = NULL, *re = NULL;
        if (l && (rc = bind(l, &le, err, errlen)))
            return rc;
        if (!strcmp(k2, "AEXPR_IN") || !strcmp(k2, "AEXPR_BETWEEN") ||
            !strcmp(k2, "AEXPR_NOT_BETWEEN")) {
            if ((rc = bind_list(json_object_get(json_object_get(r, "List"), "items"), a, &na, err,
                                errlen)))
                return rc;
            if (!strcmp(k2, "AEXPR_IN"))
                return tm_expr_in(pool, !strcmp(op, "<>"), le, a, na, out, err, errlen);
            return tm_expr_between(pool, !strcmp(k2, "AEXPR_NOT_BETWEEN"), le, a[0], a[1], out,
                                   err, errlen);
        }
        if ((rc = bind(r, &re, err, errlen)))
            return rc;
        if (!strcmp(k2, "AEXPR_DISTINCT") || !strcmp(k2, "AEXPR_NOT_DISTINCT"))
            return tm_expr_distinct(pool, !strcmp(k2, "AEXPR_NOT_DISTINCT"), le, re, out, err,
                                    errlen);
        if (!strcmp(k2, "AEXPR_NULLIF")) {
            a[0] = le;
            a[1] = re;
            return tm_expr_call(pool, "nullif", a, 2, out, err, errlen);
        }
        return tm_expr_operator(pool, op, le, re, out, err, errlen);
    }
    if (!strcmp(kind, "FuncCall")) {
        if ((rc = bind_list(json_object_get(v, "args"), a, &na, err, errlen)))
            return rc;
        return tm_expr_call(pool, last_name(json_object_get(v, "funcname")), a, na, out, err,
                            errlen);
    }
    if (!strcmp(kind, "CoalesceExpr") || !strcmp(kind, "MinMaxExpr")) {
        if ((rc = bind_list(json_object_get(v, "args"), a, &na, err, errlen)))
            return rc;
        const char *name = !strcmp(kind, "CoalesceExpr") ? "coalesce"
                           : !strcmp(json_string_value(json_object_get(v, "op")), "IS_GREATEST")
                               ? "greatest"
                               : "least";
        return tm_expr_call(pool, name, a, na, out, err, errlen);
    }
    if (!strcmp(kind, "BoolExpr")) {
        const char *op = json_string_value(json_object_get(v, "boolop"));
        if ((rc = bind_list(json_object_get(v, "args"), a, &na, err, errlen)))
            return rc;
        if (!strcmp(op, "NOT_EXPR"))
            return tm_expr_not(pool, a[0], out, err, errlen);
        return !strcmp(op, "AND_EXPR") ? tm_expr_and(pool, a, na, out, err, errlen)
                                       : tm_expr_or(pool, a, na, out, err, errlen);
    }
    if (!strcmp(kind, "NullTest") || !strcmp(kind, "BooleanTest")) {
        if ((rc = bind(json_object_get(v, "arg"), &a[0], err, errlen)))
            return rc;
        const char *t = json_string_value(
            json_object_get(v, !strcmp(kind, "NullTest") ? "nulltesttype" : "booltesttype"));
        static const char *const names[] = {"IS_NULL",     "IS_NOT_NULL", "IS_TRUE",
                                            "IS_NOT_TRUE", "IS_FALSE",    "IS_NOT_FALSE"};
        for (int i = 0; i < 6; i++)
            if (!strcmp(t, names[i]))
                return tm_expr_test(pool, (tm_expr_test_t)i, a[0], out, err, errlen);
        return tm_seterr(err, errlen, TM_ESQL, "unsupported test %s", t);
    }
    if (!strcmp(kind, "CaseExpr")) {
        tm_expr_t *operand = NULL, *els = NULL;
        json_t *w;
        size_t k;
        if (json_object_get(v, "arg") &&
            (rc = bind(json_object_get(v, "arg"), &operand, err, errlen)))
            return rc;
        json_array_foreach(json_object_get(v, "args"), k, w)
        {
            json_t *cw = json_object_get(w, "CaseWhen");
            if ((rc = bind(json_object_get(cw, "expr"), &a[na], err, errlen)) ||
                (rc = bind(json_object_get(cw, "result"), &b[na], err, errlen)))
                return rc;
            na++;
        }
        if (json_object_get(v, "defresult") &&
            (rc = bind(json_object_get(v, "defresult"), &els, err, errlen)))
            return rc;
        return tm_expr_case(pool, operand, a, b, na, els, out, err, errlen);
    }
    return tm_seterr(err, errlen, TM_ESQL, "unsupported node %s", kind);
}

static int build(const char *sql, tm_expr_t **out, char *err, size_t errlen)
{
    char q[1024];
    snprintf(q, sizeof(q), "select %s", sql);
    PgQueryParseResult pr = pg_query_parse(q);
    if (pr.error) {
        int rc = tm_seterr(err, errlen, TM_ESQL, "%s", pr.error->message);
        pg_query_free_parse_result(pr);
        return rc;
    }
    json_t *tree = json_loads(pr.parse_tree, 0, NULL);
    pg_query_free_parse_result(pr);
    json_t *val = json_object_get(
        json_object_get(
            json_array_get(json_object_get(json_object_get(json_object_get(
                                               json_array_get(json_object_get(tree, "stmts"), 0),
                                               "stmt"),
                                           "SelectStmt"),
                           "targetList"),
                           0),
            "ResTarget"),
        "val");
    int rc = bind(val, out, err, errlen);
    json_decref(tree);
    return rc;
}

static void setup_row(void)
{
    char err[256];
    row.nulls = rownulls;
    row.vals = rowvals;
    tm_eval_env_t env = {&arena, 0};
    for (int i = 0; i < NCOLS; i++) {
        TM_REQUIRE(tm_expr_type_parse(columns[i].type, NULL, 0, false, &coltypes[i], err,
                                      sizeof(err)) == 0);
        tm_row_set_null(&row, i, columns[i].value == NULL);
        if (!columns[i].value)
            continue;
        tm_expr_t *e;
        TM_REQUIRE(tm_expr_cast(pool, tm_expr_string(pool, columns[i].value), &coltypes[i], &e,
                                err, sizeof(err)) == 0);
        bool isnull;
        TM_REQUIRE(tm_expr_eval(e, NULL, &env, &rowvals[i], &isnull, err, sizeof(err)) == 0);
    }
}

static const char *strip_typmod(const tm_expr_type_t *t, char *buf, size_t buflen)
{
    tm_expr_type_t x = *t;
    if (x.type == TM_T_NUMERIC) {
        x.precision = -1;
        x.scale = TM_SCALE_VARIABLE;
    }
    if (x.type == TM_T_TEXT && x.precision > 0)
        return "character varying";
    return tm_expr_type_name(&x, buf, buflen);
}

static void test_pg_cases(void)
{
    int failures = 0;
    for (size_t c = 0; c < sizeof(cases) / sizeof(cases[0]); c++) {
        const pg_case_t *pc = &cases[c];
        const char *want_type = pc->type, *want_value = pc->value;
        for (size_t k = 0; k < sizeof(known_differences) / sizeof(known_differences[0]); k++) {
            if (!strcmp(known_differences[k].expr, pc->expr)) {
                want_type = known_differences[k].type;
                want_value = known_differences[k].value;
            }
        }
        char err[512] = "", got_type[64] = "!", tb[64];
        const char *got = NULL;
        tm_expr_t *e, *txt;
        int rc = build(pc->expr, &e, err, sizeof(err));
        if (rc == 0) {
            snprintf(got_type, sizeof(got_type), "%s",
                     strip_typmod(tm_expr_type(e), tb, sizeof(tb)));
            tm_expr_type_t tt = {TM_T_TEXT, 0, -1, TM_SCALE_VARIABLE};
            rc = tm_expr_cast(pool, e, &tt, &txt, err, sizeof(err));
            if (rc == 0) {
                tm_eval_env_t env = {&arena, 1704164645000000};
                tm_datum_t out;
                bool isnull;
                rc = tm_expr_eval(txt, &row, &env, &out, &isnull, err, sizeof(err));
                if (rc == 0 && !isnull)
                    got = out.u.var.ptr;
            }
        }
        bool ok;
        if (want_type[0] == '!')
            ok = rc != 0 && strncmp(err, want_value, strlen(want_value)) == 0;
        else
            ok = rc == 0 && !strcmp(got_type, want_type) &&
                 ((got == NULL && want_value == NULL) ||
                  (got && want_value && !strcmp(got, want_value)));
        tm__test_checks++;
        if (!ok) {
            failures++;
            tm__test_failures++;
            fprintf(stderr, "MISMATCH %s\n   want %s %s\n   got  %s %s\n", pc->expr, want_type,
                    want_value ? want_value : "NULL", rc ? "!" : got_type,
                    rc ? err : (got ? got : "NULL"));
        }
    }
    fprintf(stderr, "%d of %zu PostgreSQL cases differ\n", failures,
            sizeof(cases) / sizeof(cases[0]));
}

static void test_format_and_inspection(void)
{
    char err[256], buf[256];
    tm_expr_t *e;
    TM_REQUIRE(build("i + 1 > 3 AND t LIKE 'a%'", &e, err, sizeof(err)) == 0);
    const char *names[NCOLS];
    for (int i = 0; i < NCOLS; i++)
        names[i] = columns[i].name;
    tm_expr_format(e, names, buf, sizeof(buf));
    TM_CHECK_STR(buf, "(((i + 1) > 3) AND (t ~~ 'a%'))");
    TM_CHECK(!tm_expr_is_constant(e));
    TM_CHECK(!tm_expr_uses_now(e));
    TM_REQUIRE(build("now()", &e, err, sizeof(err)) == 0);
    TM_CHECK(tm_expr_uses_now(e));
    TM_CHECK(!tm_expr_is_constant(e));
    TM_REQUIRE(build("1 + 2", &e, err, sizeof(err)) == 0);
    TM_CHECK(tm_expr_is_constant(e));
    TM_REQUIRE(build("t", &e, err, sizeof(err)) == 0);
    TM_CHECK_INT(tm_expr_column_index(e), 2);
    TM_CHECK(build("lenght(t)", &e, err, sizeof(err)) == TM_ESQL);
    TM_CHECK_STR(err, "function lenght(text) does not exist; did you mean length?");
    TM_CHECK(build("CASE WHEN b THEN 1 ELSE t END", &e, err, sizeof(err)) == TM_ESQL);
    TM_CHECK_STR(err, "CASE types integer and text cannot be matched");
    tm_expr_type_t t;
    int32_t mods[2] = {10, 2};
    TM_REQUIRE(tm_expr_type_parse("numeric", mods, 2, false, &t, err, sizeof(err)) == 0);
    TM_CHECK_STR(tm_expr_type_name(&t, buf, sizeof(buf)), "numeric(10,2)");
    TM_CHECK(tm_expr_type_parse("nosuch", NULL, 0, false, &t, err, sizeof(err)) == TM_ESQL);
    /* WHERE semantics: NULL drops the row. */
    bool keep = true;
    tm_eval_env_t env = {&arena, 0};
    TM_REQUIRE(build("z > 1", &e, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_expr_eval_pred(e, &row, &env, &keep, err, sizeof(err)) == 0);
    TM_CHECK(!keep);
    TM_REQUIRE(build("now() = '2024-01-02 03:04:05+00'", &e, err, sizeof(err)) == 0);
    env.now_us = 1704164645000000;
    TM_REQUIRE(tm_expr_eval_pred(e, &row, &env, &keep, err, sizeof(err)) == 0);
    TM_CHECK(keep);
}

/* A function's result carries no flag its implementation did not set (a stale
 * TM_DATUM_UNAVAILABLE from the caller's datum made max(length(note)) fail), and a result computed
 * from a value the source did not send is marked as not sent either. */
static void test_result_flags(void)
{
    char err[256];
    tm_expr_t *e;
    tm_eval_env_t env = {&arena, 0};
    TM_REQUIRE(build("length(t)", &e, err, sizeof(err)) == 0);
    tm_datum_t out;
    memset(&out, 0xff, sizeof(out));
    bool isnull = true;
    TM_REQUIRE(tm_expr_eval(e, &row, &env, &out, &isnull, err, sizeof(err)) == 0);
    TM_CHECK(!isnull);
    TM_CHECK_INT(out.u.i64, 5);
    TM_CHECK_INT(out.flags, 0);
    tm_datum_t saved = rowvals[2];
    rowvals[2].flags |= TM_DATUM_UNAVAILABLE;
    TM_REQUIRE(tm_expr_eval(e, &row, &env, &out, &isnull, err, sizeof(err)) == 0);
    TM_CHECK(!isnull && (out.flags & TM_DATUM_UNAVAILABLE));
    rowvals[2] = saved;
}

/* Malformed JSON text arriving in a column (not a literal) yields NULL, never a hang or a crash. */
static void test_json_garbage(void)
{
    static const char *const bad[] = {"[1}", "[1,", "{\"a\" 1}", "{\"a\":", "\"", "[[[[", "}"};
    char err[256];
    tm_expr_type_t jt = {TM_T_JSON, 0, -1, TM_SCALE_VARIABLE};
    tm_expr_t *col = tm_expr_column(pool, 0, &jt, "j"), *e1, *e2, *e3;
    TM_REQUIRE(tm_expr_operator(pool, "->", col, tm_expr_int(pool, 1), &e1, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_expr_operator(pool, "->>", col, tm_expr_string(pool, "a"), &e2, err,
                                sizeof(err)) == 0);
    TM_REQUIRE(tm_expr_operator(pool, "#>>", col, tm_expr_string(pool, "{a,0}"), &e3, err,
                                sizeof(err)) == 0);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        uint64_t nulls = 0;
        tm_datum_t v;
        memset(&v, 0, sizeof(v));
        v.u.var.ptr = bad[i];
        v.u.var.len = (uint32_t)strlen(bad[i]);
        tm_row_t r = {&nulls, &v};
        tm_eval_env_t env = {&arena, 0};
        tm_datum_t out;
        bool isnull;
        TM_CHECK(tm_expr_eval(e1, &r, &env, &out, &isnull, err, sizeof(err)) == 0 && isnull);
        TM_CHECK(tm_expr_eval(e2, &r, &env, &out, &isnull, err, sizeof(err)) == 0 && isnull);
        TM_CHECK(tm_expr_eval(e3, &r, &env, &out, &isnull, err, sizeof(err)) == 0 && isnull);
    }
}

int main(void)
{
    pool = tm_expr_pool_new();
    tm_arena_init(&arena, 1 << 16);
    setup_row();
    TM_RUN(test_pg_cases);
    TM_RUN(test_format_and_inspection);
    TM_RUN(test_json_garbage);
    TM_RUN(test_result_flags);
    tm_arena_release(&arena);
    pool = tm_expr_pool_free(pool);
    return tm_test_done();
}
