/*
 * expr.c — the expression pool, node builders (PostgreSQL's operator and
 * function typing), inspection and SQL formatting (see expr.h).
 *
 * Builders resolve types once, here, so the evaluator never decides a type:
 *   - unknown literals take the type their context needs and are parsed at
 *     build time ('abc'::int fails when the plan is built, as in
 *     PostgreSQL);
 *   - arithmetic follows PostgreSQL's operator catalogue: int2/int4/int8
 *     combine to the wider integer, any float (but float4 with float4) to
 *     double precision, integer with numeric to numeric, and % exists only
 *     for integers and numeric;
 *   - comparisons run in one common type (cmp_type), with casts inserted
 *     where the stored values differ (an integer compared with a numeric is
 *     cast to numeric);
 *   - CASE, COALESCE, GREATEST, LEAST, IN unify their arguments as
 *     select_common_type does.
 *
 * Invariants:
 *   1. Every node lives in its pool's arena; nothing is freed before the pool.
 *   2. Builders never modify their argument nodes (they wrap them).
 *
 * Thread: building on one thread; the finished tree is read-only.
 */
#include "expr/expr_int.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

tm_expr_pool_t *tm_expr_pool_new(void)
{
    tm_expr_pool_t *p = calloc(1, sizeof(*p));
    if (p)
        tm_arena_init(&p->arena, 16384);
    return p;
}

tm_expr_pool_t *tm_expr_pool_free(tm_expr_pool_t *pool)
{
    if (pool) {
        tm_arena_release(&pool->arena);
        free(pool);
    }
    return NULL;
}

static tm_expr_t *node(tm_expr_pool_t *pool, tm__ekind_t kind, tm_type_t type)
{
    tm_expr_t *e = tm_arena_zalloc(&pool->arena, sizeof(*e));
    if (e) {
        e->kind = kind;
        e->type = tm__etype(type);
        e->column = -1;
    }
    return e;
}

static tm_expr_t **args_new(tm_expr_pool_t *pool, int n)
{
    return tm_arena_zalloc(&pool->arena, sizeof(tm_expr_t *) * (size_t)(n > 0 ? n : 1));
}

static int nomem(char *errstr, size_t errstr_size)
{
    return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
}

static const char *tname(const tm_expr_t *e, char *buf, size_t buflen)
{
    if (e->unknown)
        return "unknown";
    return tm_expr_type_name(&e->type, buf, buflen);
}

/* ---------------------------------------------------------- leaves */

tm_expr_t *tm_expr_column(tm_expr_pool_t *pool, int index, const tm_expr_type_t *type,
                          const char *name)
{
    tm_expr_t *e = node(pool, EK_COLUMN, type->type);
    if (!e)
        return NULL;
    e->type = *type;
    e->column = index;
    e->name = name ? tm_arena_strdup(&pool->arena, name) : NULL;
    return e;
}

tm_expr_t *tm_expr_null(tm_expr_pool_t *pool)
{
    tm_expr_t *e = node(pool, EK_CONST, TM_T_TEXT);
    if (e) {
        e->isnull = true;
        e->unknown = true;
    }
    return e;
}

tm_expr_t *tm_expr_bool(tm_expr_pool_t *pool, bool v)
{
    tm_expr_t *e = node(pool, EK_CONST, TM_T_BOOL);
    if (e) {
        e->value.u.b = v;
        e->notnull = true;
    }
    return e;
}

tm_expr_t *tm_expr_int(tm_expr_pool_t *pool, int64_t v)
{
    tm_expr_t *e = node(pool, EK_CONST, v >= INT32_MIN && v <= INT32_MAX ? TM_T_INT32 : TM_T_INT64);
    if (e) {
        e->value.u.i64 = v;
        e->notnull = true;
    }
    return e;
}

int tm_expr_numeric_literal(tm_expr_pool_t *pool, const char *text, tm_expr_t **out, char *errstr,
                            size_t errstr_size)
{
    tm_expr_t *e = node(pool, EK_CONST, TM_T_NUMERIC);
    if (!e)
        return nomem(errstr, errstr_size);
    tm_expr_type_t t = tm__etype(TM_T_NUMERIC);
    int rc = tm__datum_from_text(text, strlen(text), &t, &pool->arena, &e->value, errstr,
                                 errstr_size);
    if (rc)
        return rc == TM_ENOMEM ? rc : TM_ESQL;
    e->notnull = true;
    e->text = tm_arena_strdup(&pool->arena, text);
    *out = e;
    return 0;
}

tm_expr_t *tm_expr_string(tm_expr_pool_t *pool, const char *text)
{
    tm_expr_t *e = node(pool, EK_CONST, TM_T_TEXT);
    if (!e)
        return NULL;
    size_t len = strlen(text);
    char *p = tm_arena_memdup(&pool->arena, text, len);
    if (!p)
        return NULL;
    e->unknown = true;
    e->notnull = true;
    e->text = p;
    e->value.u.var.ptr = p;
    e->value.u.var.len = (uint32_t)len;
    return e;
}

/* ---------------------------------------------------------- coercion */

/* An unknown literal as a constant of type t (parsed now). */
static int literal_as(tm_expr_pool_t *pool, tm_expr_t *lit, const tm_expr_type_t *t,
                      tm_expr_t **out, char *errstr, size_t errstr_size)
{
    tm_expr_t *e = node(pool, EK_CONST, t->type);
    if (!e)
        return nomem(errstr, errstr_size);
    e->type = *t;
    if (lit->isnull) {
        e->isnull = true;
        *out = e;
        return 0;
    }
    int rc = tm__datum_from_text(lit->value.u.var.ptr, lit->value.u.var.len, t, &pool->arena,
                                 &e->value, errstr, errstr_size);
    if (rc)
        return rc == TM_ENOMEM ? rc : TM_ESQL;
    e->notnull = true;
    e->text = lit->text;
    *out = e;
    return 0;
}

static int cast_node(tm_expr_pool_t *pool, tm_expr_t *arg, const tm_expr_type_t *t,
                     tm_expr_t **out, char *errstr, size_t errstr_size)
{
    tm_expr_t *e = node(pool, EK_CAST, t->type);
    if (!e || !(e->args = args_new(pool, 1)))
        return nomem(errstr, errstr_size);
    e->type = *t;
    e->args[0] = arg;
    e->nargs = 1;
    e->notnull = arg->notnull;
    *out = e;
    return 0;
}

/* Coerces e to type t implicitly (unknown literal: parse; else an implicit cast). */
static int coerce(tm_expr_pool_t *pool, tm_expr_t *e, tm_type_t t, tm_expr_t **out, char *errstr,
                  size_t errstr_size)
{
    tm_expr_type_t et = tm__etype(t);
    if (e->unknown)
        return literal_as(pool, e, &et, out, errstr, errstr_size);
    if (e->type.type == t || t == TM__T_ANY) {
        *out = e;
        return 0;
    }
    if (!tm__can_implicit(e->type.type, t)) {
        char b[64];
        return tm_seterr(errstr, errstr_size, TM_ESQL, "cannot convert %s to %s implicitly",
                         tname(e, b, sizeof(b)), tm__type_sql_name(t));
    }
    return cast_node(pool, e, &et, out, errstr, errstr_size);
}

int tm_expr_cast(tm_expr_pool_t *pool, tm_expr_t *e, const tm_expr_type_t *type, tm_expr_t **out,
                 char *errstr, size_t errstr_size)
{
    if (e->unknown)
        return literal_as(pool, e, type, out, errstr, errstr_size);
    if (!tm__cast_exists(e->type.type, type->type)) {
        char a[64], b[64];
        return tm_seterr(errstr, errstr_size, TM_ESQL, "cannot cast type %s to %s",
                         tname(e, a, sizeof(a)), tm_expr_type_name(type, b, sizeof(b)));
    }
    return cast_node(pool, e, type, out, errstr, errstr_size);
}

/*
 * PostgreSQL's select_common_type over n expressions: unknowns alone give
 * text; otherwise every known type must share a category, and the type
 * the others convert to implicitly wins.  `what` names the construct.
 */
static int common_type(tm_expr_t *const *v, int n, const char *what, tm_type_t *out,
                       char *errstr, size_t errstr_size)
{
    tm_type_t t = 0;
    const tm_expr_t *first = NULL;
    for (int i = 0; i < n; i++) {
        if (!v[i] || v[i]->unknown)
            continue;
        tm_type_t x = v[i]->type.type;
        if (!t) {
            t = x;
            first = v[i];
            continue;
        }
        if (x == t)
            continue;
        char ct = tm__type_category(t), cx = tm__type_category(x);
        bool texty = (ct == 'S' && cx == 'S');
        if (ct != cx && !texty) {
            char a[64], b[64];
            return tm_seterr(errstr, errstr_size, TM_ESQL, "%s types %s and %s cannot be matched",
                             what, tname(first, a, sizeof(a)), tname(v[i], b, sizeof(b)));
        }
        if (texty)
            t = TM_T_TEXT;
        else if (tm__can_implicit(t, x) && !tm__can_implicit(x, t))
            t = x;
        else if (!tm__can_implicit(x, t)) {
            char a[64], b[64];
            return tm_seterr(errstr, errstr_size, TM_ESQL, "%s types %s and %s cannot be matched",
                             what, tname(first, a, sizeof(a)), tname(v[i], b, sizeof(b)));
        }
    }
    *out = t ? t : TM_T_TEXT;
    return 0;
}

/* The comparison type of two expressions, casting as needed (in place in *a / *b). */
static int unify_cmp(tm_expr_pool_t *pool, tm_expr_t **a, tm_expr_t **b, const char *op,
                     tm_type_t *cmp, char *errstr, size_t errstr_size)
{
    tm_expr_t *x = *a, *y = *b;
    if (x->unknown && y->unknown) {
        *cmp = TM_T_TEXT;
        int rc = coerce(pool, x, TM_T_TEXT, a, errstr, errstr_size);
        return rc ? rc : coerce(pool, y, TM_T_TEXT, b, errstr, errstr_size);
    }
    if (x->unknown || y->unknown) {
        tm_expr_t **u = x->unknown ? a : b;
        const tm_expr_t *k = x->unknown ? y : x;
        tm_expr_type_t kt = k->type;
        if (kt.type == TM_T_NUMERIC)
            kt = tm__etype(TM_T_NUMERIC);
        *cmp = kt.type == TM_T_INT16 || kt.type == TM_T_INT32 ? TM_T_INT64
               : kt.type == TM_T_FLOAT32                      ? TM_T_FLOAT64
               : tm__type_category(kt.type) == 'S'            ? TM_T_TEXT
                                                              : kt.type;
        if (kt.type == TM_T_TEXT)
            kt.precision = -1;
        if (kt.type == TM_T_ARRAY || kt.type == TM_T_ENUM || kt.type == TM_T_OTHER)
            kt = tm__etype(TM_T_TEXT);
        return literal_as(pool, *u, &kt, u, errstr, errstr_size);
    }
    tm_type_t tx = x->type.type, ty = y->type.type;
    int rx = tm__num_rank(tx), ry = tm__num_rank(ty);
    if (rx && ry) {
        if (rx <= 3 && ry <= 3) {
            *cmp = TM_T_INT64;
            return 0;
        }
        if (rx >= 5 || ry >= 5) {
            *cmp = TM_T_FLOAT64;
            int rc = 0;
            if (rx < 5)
                rc = coerce(pool, x, TM_T_FLOAT64, a, errstr, errstr_size);
            if (!rc && ry < 5)
                rc = coerce(pool, y, TM_T_FLOAT64, b, errstr, errstr_size);
            return rc;
        }
        *cmp = TM_T_NUMERIC;
        int rc = 0;
        if (rx != 4)
            rc = coerce(pool, x, TM_T_NUMERIC, a, errstr, errstr_size);
        if (!rc && ry != 4)
            rc = coerce(pool, y, TM_T_NUMERIC, b, errstr, errstr_size);
        return rc;
    }
    if (tm__type_category(tx) == 'S' && tm__type_category(ty) == 'S') {
        *cmp = TM_T_TEXT;
        return 0;
    }
    if (tx == ty) {
        *cmp = tx;
        return 0;
    }
    bool dx = tx == TM_T_DATE || tx == TM_T_TIMESTAMP || tx == TM_T_TIMESTAMPTZ;
    bool dy = ty == TM_T_DATE || ty == TM_T_TIMESTAMP || ty == TM_T_TIMESTAMPTZ;
    if (dx && dy) {
        tm_type_t t = (tx == TM_T_TIMESTAMPTZ || ty == TM_T_TIMESTAMPTZ) ? TM_T_TIMESTAMPTZ
                                                                         : TM_T_TIMESTAMP;
        *cmp = t;
        int rc = 0;
        if (tx == TM_T_DATE)
            rc = coerce(pool, x, t, a, errstr, errstr_size);
        if (!rc && ty == TM_T_DATE)
            rc = coerce(pool, y, t, b, errstr, errstr_size);
        return rc;
    }
    char s1[64], s2[64];
    return tm_seterr(errstr, errstr_size, TM_ESQL, "operator does not exist: %s %s %s",
                     tname(x, s1, sizeof(s1)), op, tname(y, s2, sizeof(s2)));
}

/* ---------------------------------------------------------- operators */

static int call_node(tm_expr_pool_t *pool, const tm__func_t *fn, const char *name, tm_type_t rt,
                     tm_expr_t *const *args, int nargs, tm_expr_t **out, char *errstr,
                     size_t errstr_size)
{
    tm_expr_t *e = node(pool, EK_CALL, rt);
    if (!e || !(e->args = args_new(pool, nargs)))
        return nomem(errstr, errstr_size);
    e->fn = fn;
    e->name = tm_arena_strdup(&pool->arena, name);
    if (!e->name)
        return nomem(errstr, errstr_size);
    e->nargs = nargs;
    bool nn = !(fn->flags & TM__FN_NONSTRICT);
    for (int i = 0; i < nargs; i++) {
        e->args[i] = args[i];
        nn = nn && args[i]->notnull;
    }
    (void)nn; /* row errors aside, JSON and NULLIF-like functions may return NULL */
    *out = e;
    return 0;
}

static const tm__func_t fn_arith = {"+", 2, {0}, 0, tm__op_arith, TM__FN_OPERATOR};
static const tm__func_t fn_json = {"->", 2, {0}, 0, tm__op_json, TM__FN_OPERATOR};

static bool is_int(tm_type_t t)
{
    return t == TM_T_INT16 || t == TM_T_INT32 || t == TM_T_INT64;
}

/* Result type of date/time arithmetic l op r, or 0.  *cast_l / *cast_r: cast targets (0 none). */
static tm_type_t datetime_result(int op, tm_type_t l, tm_type_t r, tm_type_t *cl, tm_type_t *cr)
{
    *cl = *cr = 0;
    bool num_r = tm__num_rank(r) != 0, num_l = tm__num_rank(l) != 0;
    if (op == '+' || op == '-') {
        if (l == TM_T_DATE && (r == TM_T_INT16 || r == TM_T_INT32)) {
            *cr = TM_T_INT32;
            return TM_T_DATE;
        }
        if (op == '+' && r == TM_T_DATE && (l == TM_T_INT16 || l == TM_T_INT32))
            return TM_T_DATE;
        if (op == '-' && l == TM_T_DATE && r == TM_T_DATE)
            return TM_T_INT32;
        if ((l == TM_T_DATE || l == TM_T_TIMESTAMP || l == TM_T_TIMESTAMPTZ) && r == TM_T_INTERVAL)
            return l == TM_T_TIMESTAMPTZ ? TM_T_TIMESTAMPTZ : TM_T_TIMESTAMP;
        if (op == '+' && l == TM_T_INTERVAL &&
            (r == TM_T_DATE || r == TM_T_TIMESTAMP || r == TM_T_TIMESTAMPTZ))
            return r == TM_T_TIMESTAMPTZ ? TM_T_TIMESTAMPTZ : TM_T_TIMESTAMP;
        if (op == '+' && ((l == TM_T_DATE && r == TM_T_TIME) || (l == TM_T_TIME && r == TM_T_DATE)))
            return TM_T_TIMESTAMP;
        if (l == TM_T_TIME && r == TM_T_INTERVAL)
            return TM_T_TIME;
        if (op == '+' && l == TM_T_INTERVAL && r == TM_T_TIME)
            return TM_T_TIME;
        if (op == '-' && l == TM_T_TIME && r == TM_T_TIME)
            return TM_T_INTERVAL;
        if (l == TM_T_INTERVAL && r == TM_T_INTERVAL)
            return TM_T_INTERVAL;
        if (op == '-') {
            bool tl = l == TM_T_DATE || l == TM_T_TIMESTAMP || l == TM_T_TIMESTAMPTZ;
            bool tr = r == TM_T_DATE || r == TM_T_TIMESTAMP || r == TM_T_TIMESTAMPTZ;
            if (tl && tr && !(l == TM_T_DATE && r == TM_T_DATE)) {
                tm_type_t t = (l == TM_T_TIMESTAMPTZ || r == TM_T_TIMESTAMPTZ) ? TM_T_TIMESTAMPTZ
                                                                               : TM_T_TIMESTAMP;
                if (l != t)
                    *cl = t;
                if (r != t)
                    *cr = t;
                return TM_T_INTERVAL;
            }
        }
    }
    if (op == '*' && l == TM_T_INTERVAL && num_r) {
        *cr = r == TM_T_FLOAT64 ? 0 : TM_T_FLOAT64;
        return TM_T_INTERVAL;
    }
    if (op == '*' && r == TM_T_INTERVAL && num_l) {
        *cl = l == TM_T_FLOAT64 ? 0 : TM_T_FLOAT64;
        return TM_T_INTERVAL;
    }
    if (op == '/' && l == TM_T_INTERVAL && num_r) {
        *cr = r == TM_T_FLOAT64 ? 0 : TM_T_FLOAT64;
        return TM_T_INTERVAL;
    }
    return 0;
}

static int op_error(const tm_expr_t *l, const char *op, const tm_expr_t *r, char *errstr,
                    size_t errstr_size)
{
    char a[64], b[64];
    if (!l)
        return tm_seterr(errstr, errstr_size, TM_ESQL, "operator does not exist: %s %s", op,
                         tname(r, b, sizeof(b)));
    return tm_seterr(errstr, errstr_size, TM_ESQL, "operator does not exist: %s %s %s",
                     tname(l, a, sizeof(a)), op, tname(r, b, sizeof(b)));
}

static int build_arith(tm_expr_pool_t *pool, const char *op, tm_expr_t *l, tm_expr_t *r,
                       tm_expr_t **out, char *errstr, size_t errstr_size)
{
    int opc = op[0];
    int rc;
    if (l->unknown && r->unknown)
        return tm_seterr(errstr, errstr_size, TM_ESQL, "operator is not unique: unknown %s unknown",
                         op);
    /* An unknown literal first takes the other side's type (PostgreSQL's rule). */
    if (l->unknown || r->unknown) {
        tm_expr_t **u = l->unknown ? &l : &r;
        const tm_expr_t *k = l->unknown ? r : l;
        tm_type_t kt = k->type.type;
        tm_type_t ut = kt;
        tm_type_t cl, cr;
        if (kt == TM_T_DATE && (opc == '+' || opc == '-') && u == &r && opc == '+')
            return tm_seterr(errstr, errstr_size, TM_ESQL,
                             "operator is not unique: date + unknown");
        if ((kt == TM_T_TIMESTAMP || kt == TM_T_TIMESTAMPTZ) && opc == '+')
            ut = TM_T_INTERVAL;
        if (kt == TM_T_INTERVAL && (opc == '*' || opc == '/'))
            ut = TM_T_FLOAT64;
        if (tm__num_rank(kt) == 0 && !datetime_result(opc, u == &l ? ut : kt, u == &l ? kt : ut,
                                                      &cl, &cr))
            return op_error(l, op, r, errstr, errstr_size);
        rc = coerce(pool, *u, ut, u, errstr, errstr_size);
        if (rc)
            return rc;
    }
    tm_type_t lt = l->type.type, rt = r->type.type;
    int rl = tm__num_rank(lt), rr = tm__num_rank(rt);
    tm_expr_t *args[2] = {l, r};
    tm_type_t res = 0;
    if (rl && rr) {
        int top = rl > rr ? rl : rr;
        if (rl <= 3 && rr <= 3)
            res = top == 3 ? TM_T_INT64 : top == 2 ? TM_T_INT32 : TM_T_INT16;
        else if (opc == '%' && (rl >= 5 || rr >= 5))
            return op_error(l, op, r, errstr, errstr_size);
        else if (rl == 5 && rr == 5)
            res = TM_T_FLOAT32;
        else if (rl >= 5 || rr >= 5)
            res = TM_T_FLOAT64;
        else
            res = TM_T_NUMERIC;
        if (res == TM_T_NUMERIC || res == TM_T_FLOAT64) {
            if (lt != res && (rc = coerce(pool, l, res, &args[0], errstr, errstr_size)))
                return rc;
            if (rt != res && (rc = coerce(pool, r, res, &args[1], errstr, errstr_size)))
                return rc;
        }
    } else {
        tm_type_t cl, cr;
        res = datetime_result(opc, lt, rt, &cl, &cr);
        if (!res)
            return op_error(l, op, r, errstr, errstr_size);
        if (cl && (rc = coerce(pool, l, cl, &args[0], errstr, errstr_size)))
            return rc;
        if (cr && (rc = coerce(pool, r, cr, &args[1], errstr, errstr_size)))
            return rc;
    }
    rc = call_node(pool, &fn_arith, op, res, args, 2, out, errstr, errstr_size);
    if (!rc)
        (*out)->cmp_op = opc;
    return rc;
}

static int build_unary(tm_expr_pool_t *pool, const char *op, tm_expr_t *r, tm_expr_t **out,
                       char *errstr, size_t errstr_size)
{
    if (r->unknown)
        return tm_seterr(errstr, errstr_size, TM_ESQL, "operator is not unique: %s unknown", op);
    tm_type_t t = r->type.type;
    if (!tm__num_rank(t) && t != TM_T_INTERVAL)
        return op_error(NULL, op, r, errstr, errstr_size);
    if (op[0] == '+') {
        *out = r;
        return 0;
    }
    tm_expr_t *args[1] = {r};
    int rc = call_node(pool, &fn_arith, "-", t, args, 1, out, errstr, errstr_size);
    if (!rc) {
        (*out)->cmp_op = 'n';
        if (t == TM_T_NUMERIC)
            (*out)->type = tm__etype(TM_T_NUMERIC);
    }
    return rc;
}

static int cmp_code(const char *op)
{
    if (!strcmp(op, "="))
        return TM__CMP_EQ;
    if (!strcmp(op, "<>") || !strcmp(op, "!="))
        return TM__CMP_NE;
    if (!strcmp(op, "<"))
        return TM__CMP_LT;
    if (!strcmp(op, "<="))
        return TM__CMP_LE;
    if (!strcmp(op, ">"))
        return TM__CMP_GT;
    if (!strcmp(op, ">="))
        return TM__CMP_GE;
    return 0;
}

int tm_expr_operator(tm_expr_pool_t *pool, const char *op, tm_expr_t *left, tm_expr_t *right,
                     tm_expr_t **out, char *errstr, size_t errstr_size)
{
    int rc;
    if (!right)
        return tm_seterr(errstr, errstr_size, TM_ESQL, "operator %s needs a right operand", op);
    if (!left) {
        if (strcmp(op, "-") && strcmp(op, "+"))
            return op_error(NULL, op, right, errstr, errstr_size);
        return build_unary(pool, op, right, out, errstr, errstr_size);
    }
    if (!strcmp(op, "+") || !strcmp(op, "-") || !strcmp(op, "*") || !strcmp(op, "/") ||
        !strcmp(op, "%"))
        return build_arith(pool, op, left, right, out, errstr, errstr_size);
    int c = cmp_code(op);
    if (c) {
        tm_expr_t *a = left, *b = right;
        tm_type_t ct;
        if ((rc = unify_cmp(pool, &a, &b, op, &ct, errstr, errstr_size)))
            return rc;
        tm_expr_t *args[2] = {a, b};
        rc = call_node(pool, &tm__fn_cmp, c == TM__CMP_NE ? "<>" : op, TM_T_BOOL, args, 2, out,
                       errstr, errstr_size);
        if (!rc) {
            (*out)->cmp_op = c;
            (*out)->cmp_type = ct;
        }
        return rc;
    }
    if (!strcmp(op, "||")) {
        tm_expr_t *a = left, *b = right;
        bool ta = !a->unknown && tm__type_category(a->type.type) == 'S';
        bool tb = !b->unknown && tm__type_category(b->type.type) == 'S';
        if (a->unknown && (b->unknown || tb || !tb))
            if ((rc = coerce(pool, a, TM_T_TEXT, &a, errstr, errstr_size)))
                return rc;
        if (b->unknown)
            if ((rc = coerce(pool, b, TM_T_TEXT, &b, errstr, errstr_size)))
                return rc;
        ta = tm__type_category(a->type.type) == 'S';
        tb = tm__type_category(b->type.type) == 'S';
        if (!ta && !tb)
            return op_error(left, op, right, errstr, errstr_size);
        tm_expr_t *args[2] = {a, b};
        return call_node(pool, &tm__fn_concat_op, "||", TM_T_TEXT, args, 2, out, errstr,
                         errstr_size);
    }
    static const char *const likes[] = {"~~", "!~~", "~~*", "!~~*"};
    for (int i = 0; i < 4; i++) {
        if (strcmp(op, likes[i]) != 0)
            continue;
        tm_expr_t *a = left, *b = right;
        if ((!a->unknown && tm__type_category(a->type.type) != 'S') ||
            (!b->unknown && tm__type_category(b->type.type) != 'S'))
            return op_error(left, op, right, errstr, errstr_size);
        if ((rc = coerce(pool, a, TM_T_TEXT, &a, errstr, errstr_size)) ||
            (rc = coerce(pool, b, TM_T_TEXT, &b, errstr, errstr_size)))
            return rc;
        tm_expr_t *args[2] = {a, b};
        return call_node(pool, &tm__fn_like[i], op, TM_T_BOOL, args, 2, out, errstr, errstr_size);
    }
    if (!strcmp(op, "->") || !strcmp(op, "->>") || !strcmp(op, "#>>")) {
        tm_expr_t *a = left, *b = right;
        if (a->unknown) {
            if ((rc = coerce(pool, a, TM_T_JSON, &a, errstr, errstr_size)))
                return rc;
        } else if (a->type.type != TM_T_JSON) {
            return op_error(left, op, right, errstr, errstr_size);
        }
        if (!strcmp(op, "#>>")) {
            if (b->unknown) {
                if ((rc = coerce(pool, b, TM_T_TEXT, &b, errstr, errstr_size)))
                    return rc;
            } else if (b->type.type != TM_T_ARRAY && b->type.type != TM_T_TEXT) {
                return op_error(left, op, right, errstr, errstr_size);
            }
        } else if (b->unknown) {
            if ((rc = coerce(pool, b, TM_T_TEXT, &b, errstr, errstr_size)))
                return rc;
        } else if (is_int(b->type.type)) {
            /* an array index */
        } else if (tm__type_category(b->type.type) != 'S') {
            return op_error(left, op, right, errstr, errstr_size);
        }
        tm_expr_t *args[2] = {a, b};
        rc = call_node(pool, &fn_json, op, strcmp(op, "->") == 0 ? TM_T_JSON : TM_T_TEXT, args, 2,
                       out, errstr, errstr_size);
        if (!rc)
            (*out)->cmp_op = !strcmp(op, "->") ? '>' : !strcmp(op, "->>") ? 't' : '#';
        return rc;
    }
    return tm_seterr(errstr, errstr_size, TM_ESQL, "operator %s is not supported", op);
}

/* ---------------------------------------------------------- logic */

static int bool_arg(tm_expr_pool_t *pool, tm_expr_t *a, const char *what, tm_expr_t **out,
                    char *errstr, size_t errstr_size)
{
    if (a->unknown)
        return coerce(pool, a, TM_T_BOOL, out, errstr, errstr_size);
    if (a->type.type != TM_T_BOOL) {
        char b[64];
        return tm_seterr(errstr, errstr_size, TM_ESQL, "argument of %s must be type boolean, not type %s",
                         what, tname(a, b, sizeof(b)));
    }
    *out = a;
    return 0;
}

static int logic(tm_expr_pool_t *pool, tm__ekind_t kind, const char *what, tm_expr_t *const *args,
                 int nargs, tm_expr_t **out, char *errstr, size_t errstr_size)
{
    tm_expr_t *e = node(pool, kind, TM_T_BOOL);
    if (!e || !(e->args = args_new(pool, nargs)))
        return nomem(errstr, errstr_size);
    e->nargs = nargs;
    e->notnull = true;
    for (int i = 0; i < nargs; i++) {
        int rc = bool_arg(pool, args[i], what, &e->args[i], errstr, errstr_size);
        if (rc)
            return rc;
        e->notnull = e->notnull && e->args[i]->notnull;
    }
    *out = e;
    return 0;
}

int tm_expr_and(tm_expr_pool_t *pool, tm_expr_t *const *args, int nargs, tm_expr_t **out,
                char *errstr, size_t errstr_size)
{
    return logic(pool, EK_AND, "AND", args, nargs, out, errstr, errstr_size);
}

int tm_expr_or(tm_expr_pool_t *pool, tm_expr_t *const *args, int nargs, tm_expr_t **out,
               char *errstr, size_t errstr_size)
{
    return logic(pool, EK_OR, "OR", args, nargs, out, errstr, errstr_size);
}

int tm_expr_not(tm_expr_pool_t *pool, tm_expr_t *arg, tm_expr_t **out, char *errstr,
                size_t errstr_size)
{
    return logic(pool, EK_NOT, "NOT", &arg, 1, out, errstr, errstr_size);
}

int tm_expr_test(tm_expr_pool_t *pool, tm_expr_test_t test, tm_expr_t *arg, tm_expr_t **out,
                 char *errstr, size_t errstr_size)
{
    tm_expr_t *e = node(pool, EK_TEST, TM_T_BOOL);
    if (!e || !(e->args = args_new(pool, 1)))
        return nomem(errstr, errstr_size);
    e->test = test;
    e->nargs = 1;
    e->notnull = true;
    e->args[0] = arg;
    if (test != TM_TEST_IS_NULL && test != TM_TEST_IS_NOT_NULL) {
        const char *names[] = {"", "", "IS TRUE", "IS NOT TRUE", "IS FALSE", "IS NOT FALSE"};
        int rc = bool_arg(pool, arg, names[test], &e->args[0], errstr, errstr_size);
        if (rc)
            return rc;
    }
    *out = e;
    return 0;
}

int tm_expr_distinct(tm_expr_pool_t *pool, bool negate, tm_expr_t *a, tm_expr_t *b,
                     tm_expr_t **out, char *errstr, size_t errstr_size)
{
    tm_type_t ct;
    int rc = unify_cmp(pool, &a, &b, "=", &ct, errstr, errstr_size);
    if (rc)
        return rc;
    tm_expr_t *e = node(pool, EK_DISTINCT, TM_T_BOOL);
    if (!e || !(e->args = args_new(pool, 2)))
        return nomem(errstr, errstr_size);
    e->negate = negate;
    e->nargs = 2;
    e->args[0] = a;
    e->args[1] = b;
    e->cmp_type = ct;
    e->notnull = true;
    *out = e;
    return 0;
}

/* Casts every expression of v to the common type t; returns the comparison type. */
static int coerce_all(tm_expr_pool_t *pool, tm_expr_t **v, int n, tm_type_t t, char *errstr,
                      size_t errstr_size)
{
    for (int i = 0; i < n; i++) {
        if (!v[i])
            continue;
        int rc = coerce(pool, v[i], t, &v[i], errstr, errstr_size);
        if (rc)
            return rc;
    }
    return 0;
}

static tm_type_t cmp_type_of(tm_type_t t)
{
    if (is_int(t))
        return TM_T_INT64;
    if (t == TM_T_FLOAT32)
        return TM_T_FLOAT64;
    if (tm__type_category(t) == 'S')
        return TM_T_TEXT;
    return t;
}

int tm_expr_in(tm_expr_pool_t *pool, bool negate, tm_expr_t *a, tm_expr_t *const *list, int n,
               tm_expr_t **out, char *errstr, size_t errstr_size)
{
    tm_expr_t *e = node(pool, EK_IN, TM_T_BOOL);
    if (!e || !(e->args = args_new(pool, n + 1)))
        return nomem(errstr, errstr_size);
    e->args[0] = a;
    for (int i = 0; i < n; i++)
        e->args[i + 1] = list[i];
    e->nargs = n + 1;
    e->negate = negate;
    tm_type_t t;
    int rc = common_type(e->args, n + 1, "IN", &t, errstr, errstr_size);
    if (!rc)
        rc = coerce_all(pool, e->args, n + 1, t, errstr, errstr_size);
    if (rc)
        return rc;
    e->cmp_type = cmp_type_of(t);
    *out = e;
    return 0;
}

int tm_expr_between(tm_expr_pool_t *pool, bool negate, tm_expr_t *a, tm_expr_t *lo, tm_expr_t *hi,
                    tm_expr_t **out, char *errstr, size_t errstr_size)
{
    tm_expr_t *c[2];
    int rc = tm_expr_operator(pool, negate ? "<" : ">=", a, lo, &c[0], errstr, errstr_size);
    if (!rc)
        rc = tm_expr_operator(pool, negate ? ">" : "<=", a, hi, &c[1], errstr, errstr_size);
    if (rc)
        return rc;
    return negate ? tm_expr_or(pool, c, 2, out, errstr, errstr_size)
                  : tm_expr_and(pool, c, 2, out, errstr, errstr_size);
}

int tm_expr_case(tm_expr_pool_t *pool, tm_expr_t *operand, tm_expr_t *const *whens,
                 tm_expr_t *const *thens, int n, tm_expr_t *els, tm_expr_t **out, char *errstr,
                 size_t errstr_size)
{
    int total = 2 * n + (els ? 1 : 0);
    tm_expr_t *e = node(pool, EK_CASE, TM_T_TEXT);
    if (!e || !(e->args = args_new(pool, total)))
        return nomem(errstr, errstr_size);
    e->nargs = total;
    e->has_else = els != NULL;
    e->has_operand = operand != NULL;
    int rc;
    tm_expr_t **results = args_new(pool, n + 1);
    if (!results)
        return nomem(errstr, errstr_size);
    for (int i = 0; i < n; i++) {
        tm_expr_t *w = whens[i];
        if (operand)
            rc = tm_expr_operator(pool, "=", operand, w, &w, errstr, errstr_size);
        else
            rc = bool_arg(pool, w, "CASE/WHEN", &w, errstr, errstr_size);
        if (rc)
            return rc;
        e->args[2 * i] = w;
        results[i] = thens[i];
    }
    results[n] = els;
    tm_type_t t;
    if ((rc = common_type(results, n + 1, "CASE", &t, errstr, errstr_size)) ||
        (rc = coerce_all(pool, results, n + 1, t, errstr, errstr_size)))
        return rc;
    for (int i = 0; i < n; i++)
        e->args[2 * i + 1] = results[i];
    if (els)
        e->args[total - 1] = results[n];
    e->type = tm__etype(t);
    /* Keep a numeric typmod when every branch agrees on it. */
    *out = e;
    return 0;
}

/* coalesce / nullif / greatest / least, which are not in the function table. */
static int special_form(tm_expr_pool_t *pool, const char *name, tm_expr_t *const *args, int nargs,
                        tm_expr_t **out, char *errstr, size_t errstr_size)
{
    tm__ekind_t kind = !strcasecmp(name, "coalesce")   ? EK_COALESCE
                       : !strcasecmp(name, "nullif")   ? EK_NULLIF
                       : !strcasecmp(name, "greatest") ? EK_GREATEST
                                                       : EK_LEAST;
    const char *what = kind == EK_COALESCE ? "COALESCE"
                       : kind == EK_NULLIF ? "NULLIF"
                       : kind == EK_GREATEST ? "GREATEST"
                                             : "LEAST";
    if (nargs < 1 || (kind == EK_NULLIF && nargs != 2))
        return tm_seterr(errstr, errstr_size, TM_ESQL, "function %s has the wrong number of arguments",
                         name);
    int rc;
    if (kind == EK_NULLIF) {
        tm_expr_t *a = args[0], *b = args[1];
        if (a->unknown && (rc = coerce(pool, a, b->unknown ? TM_T_TEXT : b->type.type, &a, errstr,
                                       errstr_size)))
            return rc;
        tm_expr_t *x = a, *y = b;
        tm_type_t ct;
        if ((rc = unify_cmp(pool, &x, &y, "=", &ct, errstr, errstr_size)))
            return rc;
        tm_expr_t *e = node(pool, EK_NULLIF, a->type.type);
        if (!e || !(e->args = args_new(pool, 3)))
            return nomem(errstr, errstr_size);
        e->type = a->type;
        e->nargs = 3;
        e->args[0] = a;
        e->args[1] = x;
        e->args[2] = y;
        e->cmp_type = ct;
        *out = e;
        return 0;
    }
    tm_expr_t *e = node(pool, kind, TM_T_TEXT);
    if (!e || !(e->args = args_new(pool, nargs)))
        return nomem(errstr, errstr_size);
    e->nargs = nargs;
    for (int i = 0; i < nargs; i++)
        e->args[i] = args[i];
    tm_type_t t;
    if ((rc = common_type(e->args, nargs, what, &t, errstr, errstr_size)) ||
        (rc = coerce_all(pool, e->args, nargs, t, errstr, errstr_size)))
        return rc;
    e->type = tm__etype(t);
    /* A shared typmod survives (coalesce(numeric(10,2), numeric(10,2)) keeps it). */
    bool same = true;
    for (int i = 1; i < nargs; i++)
        same = same && e->args[i]->type.precision == e->args[0]->type.precision &&
               e->args[i]->type.scale == e->args[0]->type.scale;
    if (same)
        e->type = e->args[0]->type;
    e->cmp_type = cmp_type_of(t);
    for (int i = 0; i < nargs && kind == EK_COALESCE; i++)
        e->notnull = e->notnull || e->args[i]->notnull;
    *out = e;
    return 0;
}

static bool is_aggregate_name(const char *name)
{
    static const char *const aggs[] = {"count",    "sum",        "min",       "max",
                                       "avg",      "bool_and",   "bool_or",   "string_agg",
                                       "every",    "array_agg",  "json_agg",  "stddev",
                                       "variance", "jsonb_agg"};
    for (size_t i = 0; i < sizeof(aggs) / sizeof(aggs[0]); i++)
        if (strcasecmp(aggs[i], name) == 0)
            return true;
    return false;
}

int tm_expr_call(tm_expr_pool_t *pool, const char *name, tm_expr_t *const *args, int nargs,
                 tm_expr_t **out, char *errstr, size_t errstr_size)
{
    if (is_aggregate_name(name))
        return tm_seterr(errstr, errstr_size, TM_ESQL,
                         "aggregate function %s is not allowed here", name);
    if (!strcasecmp(name, "coalesce") || !strcasecmp(name, "nullif") ||
        !strcasecmp(name, "greatest") || !strcasecmp(name, "least"))
        return special_form(pool, name, args, nargs, out, errstr, errstr_size);
    const tm__func_t *fn;
    int rc = tm__func_resolve(name, args, nargs, &fn, errstr, errstr_size);
    if (rc)
        return rc;
    tm_expr_t **cargs = args_new(pool, nargs);
    if (!cargs)
        return nomem(errstr, errstr_size);
    for (int i = 0; i < nargs; i++) {
        tm_type_t want = (fn->flags & TM__FN_VARIADIC) ? (args[i]->unknown ? TM_T_TEXT : TM__T_ANY)
                                                       : fn->args[i];
        if ((rc = coerce(pool, args[i], want, &cargs[i], errstr, errstr_size)))
            return rc;
    }
    tm_type_t rt = fn->result;
    rc = call_node(pool, fn, fn->name, rt, cargs, nargs, out, errstr, errstr_size);
    if (!rc && (fn->flags & TM__FN_VARIADIC))
        (*out)->notnull = true;
    return rc;
}

/* ---------------------------------------------------------- inspection */

const tm_expr_type_t *tm_expr_type(const tm_expr_t *e)
{
    return &e->type;
}

bool tm_expr_not_null(const tm_expr_t *e)
{
    return e->notnull;
}

int tm_expr_column_index(const tm_expr_t *e)
{
    return e->kind == EK_COLUMN ? e->column : -1;
}

int tm_expr_cast_column(const tm_expr_t *e)
{
    while (e->kind == EK_CAST && e->nargs == 1 && e->args[0] != NULL)
        e = e->args[0];
    return e->kind == EK_COLUMN ? e->column : -1;
}

const char *tm_expr_sql_type_name(tm_type_t t)
{
    return tm__type_sql_name(t);
}

int tm_expr_datum_text(tm_type_t type, const tm_datum_t *d, tm_arena_t *arena, const char **ptr,
                       size_t *len)
{
    return tm__datum_to_text(type, d, arena, ptr, len);
}

static bool any_node(const tm_expr_t *e, bool (*pred)(const tm_expr_t *))
{
    if (pred(e))
        return true;
    for (int i = 0; i < e->nargs; i++)
        if (e->args[i] && any_node(e->args[i], pred))
            return true;
    return false;
}

static bool is_volatile_or_column(const tm_expr_t *e)
{
    return e->kind == EK_COLUMN || (e->kind == EK_CALL && (e->fn->flags & TM__FN_VOLATILE));
}

static bool is_now(const tm_expr_t *e)
{
    return e->kind == EK_CALL && (e->fn->flags & TM__FN_VOLATILE);
}

bool tm_expr_is_constant(const tm_expr_t *e)
{
    return !any_node(e, is_volatile_or_column);
}

bool tm_expr_uses_now(const tm_expr_t *e)
{
    return any_node(e, is_now);
}

typedef struct fmtbuf {
    char *buf;
    size_t len, cap;
} fmtbuf_t;

static void put(fmtbuf_t *f, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(fmtbuf_t *f, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t room = f->len < f->cap ? f->cap - f->len : 0;
    int n = vsnprintf(room ? f->buf + f->len : NULL, room, fmt, ap);
    va_end(ap);
    if (n > 0)
        f->len += (size_t)n;
}

static void fmt_expr(fmtbuf_t *f, const tm_expr_t *e, const char *const *names);

/* Formats e's arguments from `from` on, with `sep` between them. */
static void fmt_args(fmtbuf_t *f, const tm_expr_t *e, int from, const char *sep,
                     const char *const *names)
{
    for (int i = from; i < e->nargs; i++) {
        if (i > from)
            put(f, "%s", sep);
        fmt_expr(f, e->args[i], names);
    }
}

static void fmt_expr(fmtbuf_t *f, const tm_expr_t *e, const char *const *names)
{
    static const char *const tests[] = {"IS NULL",  "IS NOT NULL", "IS TRUE",
                                        "IS NOT TRUE", "IS FALSE", "IS NOT FALSE"};
    switch (e->kind) {
    case EK_CONST:
        if (e->isnull) {
            put(f, "NULL");
        } else if (e->type.type == TM_T_BOOL) {
            put(f, "%s", e->value.u.b ? "true" : "false");
        } else if (is_int(e->type.type)) {
            put(f, "%lld", (long long)e->value.u.i64);
        } else if (e->text && e->type.type == TM_T_NUMERIC && !e->unknown) {
            put(f, "%s", e->text);
        } else {
            const char *p;
            size_t len;
            tm_arena_t tmp;
            tm_arena_init(&tmp, 256);
            if (tm__datum_to_text(e->type.type, &e->value, &tmp, &p, &len) == 0) {
                put(f, "'");
                for (size_t i = 0; i < len; i++)
                    put(f, p[i] == '\'' ? "''" : "%c", p[i]);
                put(f, "'");
                if (!e->unknown && e->type.type != TM_T_TEXT) {
                    char tb[64];
                    put(f, "::%s", tm_expr_type_name(&e->type, tb, sizeof(tb)));
                }
            }
            tm_arena_release(&tmp);
        }
        break;
    case EK_COLUMN:
        if (names)
            put(f, "%s", names[e->column]);
        else
            put(f, "$%d", e->column);
        break;
    case EK_CALL:
        if (e->fn->flags & TM__FN_OPERATOR) {
            put(f, "(");
            if (e->nargs == 1) {
                put(f, "%s", e->name);
                fmt_expr(f, e->args[0], names);
            } else {
                fmt_expr(f, e->args[0], names);
                put(f, " %s ", e->name);
                fmt_expr(f, e->args[1], names);
            }
            put(f, ")");
        } else {
            put(f, "%s(", e->name);
            fmt_args(f, e, 0, ", ", names);
            put(f, ")");
        }
        break;
    case EK_CAST: {
        char tb[64];
        put(f, "CAST(");
        fmt_expr(f, e->args[0], names);
        put(f, " AS %s)", tm_expr_type_name(&e->type, tb, sizeof(tb)));
        break;
    }
    case EK_AND:
    case EK_OR:
        put(f, "(");
        fmt_args(f, e, 0, e->kind == EK_AND ? " AND " : " OR ", names);
        put(f, ")");
        break;
    case EK_NOT:
        put(f, "(NOT ");
        fmt_expr(f, e->args[0], names);
        put(f, ")");
        break;
    case EK_TEST:
        put(f, "(");
        fmt_expr(f, e->args[0], names);
        put(f, " %s)", tests[e->test]);
        break;
    case EK_DISTINCT:
        put(f, "(");
        fmt_expr(f, e->args[0], names);
        put(f, e->negate ? " IS NOT DISTINCT FROM " : " IS DISTINCT FROM ");
        fmt_expr(f, e->args[1], names);
        put(f, ")");
        break;
    case EK_IN:
        put(f, "(");
        fmt_expr(f, e->args[0], names);
        put(f, e->negate ? " NOT IN (" : " IN (");
        fmt_args(f, e, 1, ", ", names);
        put(f, "))");
        break;
    case EK_CASE: {
        int n = (e->nargs - (e->has_else ? 1 : 0)) / 2;
        put(f, "CASE");
        for (int i = 0; i < n; i++) {
            put(f, " WHEN ");
            fmt_expr(f, e->args[2 * i], names);
            put(f, " THEN ");
            fmt_expr(f, e->args[2 * i + 1], names);
        }
        if (e->has_else) {
            put(f, " ELSE ");
            fmt_expr(f, e->args[e->nargs - 1], names);
        }
        put(f, " END");
        break;
    }
    case EK_NULLIF:
        put(f, "NULLIF(");
        fmt_expr(f, e->args[0], names);
        put(f, ", ");
        fmt_expr(f, e->args[2], names);
        put(f, ")");
        break;
    case EK_COALESCE:
    case EK_GREATEST:
    case EK_LEAST:
        put(f, "%s(", e->kind == EK_COALESCE   ? "COALESCE"
                      : e->kind == EK_GREATEST ? "GREATEST"
                                               : "LEAST");
        fmt_args(f, e, 0, ", ", names);
        put(f, ")");
        break;
    }
}

size_t tm_expr_format(const tm_expr_t *e, const char *const *names, char *buf, size_t buflen)
{
    fmtbuf_t f = {buf, 0, buflen};
    if (buflen)
        buf[0] = '\0';
    fmt_expr(&f, e, names);
    if (buflen)
        buf[f.len < buflen ? f.len : buflen - 1] = '\0';
    return f.len;
}
