/*
 * bind.c — SelectStmt parse nodes (libpg_query JSON) → tm_bound_query_t
 * (see bind.h).
 *
 * The binder walks one SELECT block in PostgreSQL's order: FROM (which may
 * recurse into a subquery or a view), WHERE, GROUP BY, the select list,
 * HAVING.  Expressions are bound in one of four modes:
 *
 *     PLAIN     columns of the FROM layout; aggregates are an error (WHERE)
 *     GROUPKEY  as PLAIN, but the message names GROUP BY
 *     GROUPED   the select list and HAVING of a grouped query: a subtree
 *               equal to a GROUP BY expression becomes a reference to that
 *               key; an aggregate call becomes a reference to its result; a
 *               bare column that is neither is PostgreSQL's "must appear in
 *               the GROUP BY clause" error
 *     AGGARG    an aggregate's argument: PLAIN, and another aggregate is
 *               "aggregate function calls cannot be nested"
 *
 * Matching a subtree against the GROUP BY expressions compares parse trees
 * (ignoring locations), except that column references compare by the column
 * they resolve to, so `GROUP BY o.customer_id` matches `customer_id`.
 *
 * Invariants:
 *   1. Every error names a line and column of the job file (the node's
 *      location, else the enclosing clause's).
 *   2. Nothing here trusts the shape of the JSON: a missing or mistyped
 *      field is an error, never a NULL dereference.
 *
 * Thread: the planner's.
 */
#include "sql/bind.h"
#include "core/error.h"

#include <jansson.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum { MODE_PLAIN, MODE_GROUPKEY, MODE_GROUPED, MODE_AGGARG };

#define MAX_DEPTH 48

typedef struct bctx {
    const tm_job_t *job;
    tm_expr_pool_t *pool;
    char *errstr;
    size_t errstr_size;
    int depth; /* FROM nesting (views, subqueries) */
} bctx_t;

/* The state of one SELECT block while it is bound. */
typedef struct qctx {
    bctx_t *b;
    tm_bound_query_t *q;
    const tm_schema_t *in;
    const char *qual;      /* the FROM item's visible name */
    json_t **group_nodes;  /* the parse nodes of the GROUP BY keys */
    json_t **arg_nodes;    /* pre_exprs[ngroup + i]'s parse node */
    json_t **agg_nodes;    /* the parse node of aggs[k] */
    int expr_depth;
} qctx_t;

static int bind_expr(qctx_t *qc, json_t *node, int mode, tm_expr_t **out);

/* ---- small JSON helpers ---- */

static const char *jstr(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The kind of a node {"Kind": {...}} and its body. */
static const char *node_kind(json_t *node, json_t **body)
{
    void *it = json_is_object(node) ? json_object_iter(node) : NULL;
    if (it == NULL) {
        *body = NULL;
        return NULL;
    }
    *body = json_object_iter_value(it);
    return json_object_iter_key(it);
}

static int node_location(json_t *node)
{
    json_t *body;
    if (node_kind(node, &body) == NULL || !json_is_object(body))
        return -1;
    json_t *loc = json_object_get(body, "location");
    return json_is_integer(loc) ? (int)json_integer_value(loc) : -1;
}

static const char *string_node(json_t *node)
{
    json_t *s = json_object_get(node, "String");
    return s ? jstr(s, "sval") : NULL;
}

/* The last String of a name list (funcname, operator name, type names). */
static const char *last_name(json_t *list)
{
    size_t n = json_array_size(list);
    return n ? string_node(json_array_get(list, n - 1)) : NULL;
}

/* ---- errors ---- */

static int err_at(bctx_t *b, int location, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int err_at(bctx_t *b, int location, int code, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line, col;
    tm_job_position(b->job, location, &line, &col);
    if (line > 0)
        return tm_seterr(b->errstr, b->errstr_size, code, "%s:%d:%d: %s", b->job->path, line, col,
                         msg);
    return tm_seterr(b->errstr, b->errstr_size, code, "%s: %s", b->job->path, msg);
}

/* Prefixes a builder's message with the node's position. */
static int builder_err(bctx_t *b, int location, int rc, const char *msg)
{
    char copy[1536];
    snprintf(copy, sizeof(copy), "%s", msg);
    return err_at(b, location, rc == TM_ENOMEM ? TM_ENOMEM : TM_ESQL, "%s", copy);
}

static int unsupported(bctx_t *b, int location, const char *what)
{
    return err_at(b, location, TM_EUNSUPPORTED, "%s is not supported (see docs/sql.md)", what);
}

/* ---- parse-tree equality (GROUP BY matching, aggregate dedup) ---- */

static int resolve_column(qctx_t *qc, json_t *cref, int *index);

static bool node_equal(qctx_t *qc, json_t *a, json_t *b)
{
    if (json_is_object(a) && json_is_object(b)) {
        json_t *ca = json_object_get(a, "ColumnRef"), *cb = json_object_get(b, "ColumnRef");
        if (ca != NULL && cb != NULL) {
            int ia = -1, ib = -1;
            return resolve_column(qc, ca, &ia) == 0 && resolve_column(qc, cb, &ib) == 0 &&
                   ia >= 0 && ia == ib;
        }
        size_t na = 0, nb = 0;
        const char *k;
        json_t *v;
        json_object_foreach(a, k, v)
        {
            if (strcmp(k, "location") == 0)
                continue;
            na++;
            if (!node_equal(qc, v, json_object_get(b, k)))
                return false;
        }
        json_object_foreach(b, k, v)
        {
            if (strcmp(k, "location") != 0)
                nb++;
        }
        return na == nb;
    }
    if (json_is_array(a) && json_is_array(b)) {
        if (json_array_size(a) != json_array_size(b))
            return false;
        for (size_t i = 0; i < json_array_size(a); i++)
            if (!node_equal(qc, json_array_get(a, i), json_array_get(b, i)))
                return false;
        return true;
    }
    return json_equal(a, b);
}

/* ---- column references ---- */

static void column_list(const tm_schema_t *s, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; s && i < s->ncols && n + 1 < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "", s->cols[i].name);
}

/*
 * Resolves a ColumnRef body to an input column.  Returns 0 with *index, or
 * a negative code with *index -1 and no message (the caller reports).
 */
static int resolve_column(qctx_t *qc, json_t *cref, int *index)
{
    json_t *fields = json_object_get(cref, "fields");
    size_t n = json_array_size(fields);
    *index = -1;
    if (n == 0 || n > 2 || qc->in == NULL)
        return TM_ESQL;
    const char *col = string_node(json_array_get(fields, n - 1));
    if (col == NULL)
        return TM_ESQL;
    if (n == 2) {
        const char *t = string_node(json_array_get(fields, 0));
        if (t == NULL || qc->qual == NULL || strcmp(t, qc->qual) != 0)
            return TM_ESQL;
    }
    *index = tm_schema_find(qc->in, col);
    return *index >= 0 ? 0 : TM_ESQL;
}

static tm_expr_t *input_column(qctx_t *qc, int i)
{
    tm_expr_type_t t;
    tm_expr_type_from_column(&qc->in->cols[i], &t);
    return tm_expr_column(qc->b->pool, i, &t, qc->in->cols[i].name);
}

static int no_columns_error(qctx_t *qc, int location)
{
    const tm_job_table_t *t = qc->q->table >= 0 ? &qc->b->job->tables[qc->q->table] : NULL;
    return err_at(qc->b, location, TM_ESQL,
                  "table '%s' declares no columns (CREATE TABLE %s () …), so a query over it can "
                  "only be SELECT * FROM %s; declare its columns to use them in expressions",
                  t ? t->name : qc->qual, t ? t->name : qc->qual, t ? t->name : qc->qual);
}

static int bind_column(qctx_t *qc, json_t *cref, int location, int mode, tm_expr_t **out)
{
    json_t *fields = json_object_get(cref, "fields");
    size_t n = json_array_size(fields);
    for (size_t i = 0; i < n; i++)
        if (json_object_get(json_array_get(fields, i), "A_Star") != NULL)
            return err_at(qc->b, location, TM_ESQL,
                          "* is allowed only as a whole item of the select list");
    if (qc->in == NULL)
        return no_columns_error(qc, location);
    const char *col = string_node(json_array_get(fields, n ? n - 1 : 0));
    if (n > 2 || col == NULL)
        return err_at(qc->b, location, TM_ESQL,
                      "improper qualified name (too many dotted names); write table.column");
    if (n == 2) {
        const char *t = string_node(json_array_get(fields, 0));
        if (t == NULL || qc->qual == NULL || strcmp(t, qc->qual) != 0)
            return err_at(qc->b, location, TM_ESQL,
                          "missing FROM-clause entry for table \"%s\"; the query reads %s",
                          t ? t : "?", qc->qual ? qc->qual : "no table");
    }
    int idx = tm_schema_find(qc->in, col);
    if (idx < 0) {
        char cols[1024];
        column_list(qc->in, cols, sizeof(cols));
        return err_at(qc->b, location, TM_ESQL, "column \"%s\" does not exist; %s has: %s", col,
                      qc->qual ? qc->qual : "the input", cols);
    }
    if (mode == MODE_GROUPED)
        return err_at(qc->b, location, TM_ESQL,
                      "column \"%s.%s\" must appear in the GROUP BY clause or be used in an "
                      "aggregate function",
                      qc->qual ? qc->qual : "?", col);
    *out = input_column(qc, idx);
    return *out ? 0 : TM_ENOMEM;
}

/* ---- constants ---- */

static int bind_const(qctx_t *qc, json_t *c, int location, tm_expr_t **out)
{
    tm_expr_pool_t *pool = qc->b->pool;
    json_t *v;
    char err[1024];
    if (json_is_true(json_object_get(c, "isnull"))) {
        *out = tm_expr_null(pool);
    } else if ((v = json_object_get(c, "ival")) != NULL) {
        /* libpg_query leaves out ival for 0. */
        json_t *iv = json_object_get(v, "ival");
        *out = tm_expr_int(pool, json_is_integer(iv) ? json_integer_value(iv) : 0);
    } else if ((v = json_object_get(c, "fval")) != NULL) {
        const char *text = jstr(v, "fval");
        if (text == NULL)
            return err_at(qc->b, location, TM_ESQL, "malformed numeric constant");
        /* An integer too wide for int4 is bigint when it fits, as in PostgreSQL. */
        bool digits = text[0] != '\0';
        for (const char *p = text; *p; p++)
            if ((*p < '0' || *p > '9') && !(p == text && *p == '-'))
                digits = false;
        char *end = NULL;
        long long ll = digits ? strtoll(text, &end, 10) : 0;
        if (digits && end && *end == '\0' && !(ll == LLONG_MAX || ll == LLONG_MIN)) {
            *out = tm_expr_int(pool, (int64_t)ll);
        } else {
            int rc = tm_expr_numeric_literal(pool, text, out, err, sizeof(err));
            if (rc != 0)
                return builder_err(qc->b, location, rc, err);
        }
    } else if ((v = json_object_get(c, "sval")) != NULL) {
        const char *text = jstr(v, "sval");
        *out = tm_expr_string(pool, text ? text : "");
    } else if ((v = json_object_get(c, "boolval")) != NULL) {
        *out = tm_expr_bool(pool, json_is_true(json_object_get(v, "boolval")));
    } else if (json_object_get(c, "bsval") != NULL) {
        return unsupported(qc->b, location, "a bit-string constant (B'…' / X'…')");
    } else {
        /* An A_Const with no value field is 0 printed as {"ival":{}} in some shapes. */
        return err_at(qc->b, location, TM_ESQL, "malformed constant");
    }
    return *out ? 0 : TM_ENOMEM;
}

/* ---- types ---- */

static int bind_type(qctx_t *qc, json_t *tn, int location, tm_expr_type_t *t)
{
    json_t *names = json_object_get(tn, "names");
    const char *name = last_name(names);
    if (name == NULL)
        return err_at(qc->b, location, TM_ESQL, "malformed type name");
    if (json_is_true(json_object_get(tn, "setof")) || json_object_get(tn, "pct_type"))
        return unsupported(qc->b, location, "this type form (SETOF / %TYPE)");
    int32_t mods[4];
    int nmods = 0;
    json_t *typmods = json_object_get(tn, "typmods");
    for (size_t i = 0; i < json_array_size(typmods); i++) {
        json_t *ac = json_object_get(json_array_get(typmods, i), "A_Const");
        json_t *iv = json_object_get(json_object_get(ac, "ival"), "ival");
        if (ac == NULL || nmods >= 4)
            return err_at(qc->b, location, TM_ESQL, "type modifiers of %s must be integer "
                          "constants", name);
        mods[nmods++] = json_is_integer(iv) ? (int32_t)json_integer_value(iv) : 0;
    }
    bool array = json_array_size(json_object_get(tn, "arrayBounds")) > 0;
    char err[1024];
    int rc = tm_expr_type_parse(name, mods, nmods, array, t, err, sizeof(err));
    return rc ? builder_err(qc->b, location, rc, err) : 0;
}

/* ---- aggregates ---- */

static bool is_aggregate_call(json_t *fc)
{
    const char *name = last_name(json_object_get(fc, "funcname"));
    return name != NULL && json_object_get(fc, "over") == NULL && tm_agg_is_aggregate(name);
}

/* True when the subtree calls an aggregate (not looking into subqueries). */
static bool has_aggregate(json_t *node)
{
    if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++)
            if (has_aggregate(json_array_get(node, i)))
                return true;
        return false;
    }
    if (!json_is_object(node))
        return false;
    json_t *fc = json_object_get(node, "FuncCall");
    if (fc != NULL && is_aggregate_call(fc))
        return true;
    if (json_object_get(node, "SubLink") || json_object_get(node, "SelectStmt"))
        return false;
    const char *k;
    json_t *v;
    json_object_foreach(node, k, v)
    {
        if (has_aggregate(v))
            return true;
    }
    return false;
}

/* Makes room for element `n` (0-based) of an array grown one element at a time. */
static int grow(void **arr, int n, size_t elem)
{
    void *p = realloc(*arr, (size_t)(n + 1) * elem);
    if (p == NULL)
        return TM_ENOMEM;
    memset((char *)p + (size_t)n * elem, 0, elem);
    *arr = p;
    return 0;
}

/* Appends a pre-aggregation expression (a group key or an aggregate argument). */
static int add_pre(qctx_t *qc, json_t *node, tm_expr_t *e, const char *name)
{
    tm_bound_query_t *q = qc->q;
    if (grow((void **)&q->pre_exprs, q->npre, sizeof(*q->pre_exprs)) != 0 ||
        grow((void **)&q->pre_names, q->npre, sizeof(*q->pre_names)) != 0 ||
        grow((void **)&qc->arg_nodes, q->npre, sizeof(*qc->arg_nodes)) != 0)
        return TM_ENOMEM;
    q->pre_exprs[q->npre] = e;
    q->pre_names[q->npre] = strdup(name);
    qc->arg_nodes[q->npre] = node;
    return q->npre++;
}

static int bind_aggregate(qctx_t *qc, json_t *fc, json_t *node, int location, tm_expr_t **out)
{
    tm_bound_query_t *q = qc->q;
    const char *name = last_name(json_object_get(fc, "funcname"));
    for (int k = 0; k < q->naggs; k++)
        if (node_equal(qc, node, qc->agg_nodes[k])) {
            tm_expr_type_t t = q->aggs[k].result_type;
            *out = tm_expr_column(qc->b->pool, q->ngroup + k, &t, name);
            return *out ? 0 : TM_ENOMEM;
        }
    if (json_object_get(fc, "agg_order") != NULL)
        return unsupported(qc->b, location, "ORDER BY inside an aggregate call");
    if (json_object_get(fc, "agg_filter") != NULL)
        return unsupported(qc->b, location, "an aggregate FILTER (WHERE …) clause");
    if (json_is_true(json_object_get(fc, "agg_within_group")))
        return unsupported(qc->b, location, "WITHIN GROUP");
    bool star = json_is_true(json_object_get(fc, "agg_star"));
    bool distinct = json_is_true(json_object_get(fc, "agg_distinct"));
    json_t *args = json_object_get(fc, "args");
    int nargs = (int)json_array_size(args);
    if (nargs > 2)
        return err_at(qc->b, location, TM_ESQL, "function %s with %d arguments does not exist",
                      name, nargs);
    tm_expr_t *argv[2] = {NULL, NULL};
    tm_expr_type_t types[2];
    for (int i = 0; i < nargs; i++) {
        int rc = bind_expr(qc, json_array_get(args, i), MODE_AGGARG, &argv[i]);
        if (rc != 0)
            return rc;
        types[i] = *tm_expr_type(argv[i]);
    }
    tm_agg_call_t call;
    memset(&call, 0, sizeof(call));
    char err[1024];
    int rc = tm_agg_resolve(name, star, distinct, types, nargs, &call, err, sizeof(err));
    if (rc != 0)
        return builder_err(qc->b, location, rc, err);
    call.arg = -1;
    if (nargs >= 1) {
        json_t *an = json_array_get(args, 0);
        for (int i = q->ngroup; i < q->npre; i++)
            if (node_equal(qc, an, qc->arg_nodes[i]))
                call.arg = i;
        if (call.arg < 0) {
            char nm[64];
            snprintf(nm, sizeof(nm), "%s_arg%d", name, q->npre - q->ngroup + 1);
            call.arg = add_pre(qc, an, argv[0], nm);
            if (call.arg < 0)
                return call.arg;
        }
    }
    if (nargs == 2) {
        /* string_agg's separator is a constant: the aggregate stores it, not a column. */
        json_t *sep = json_object_get(json_array_get(args, 1), "A_Const");
        if (sep == NULL)
            return err_at(qc->b, location, TM_EUNSUPPORTED,
                          "the second argument of %s must be a constant", name);
        const char *s = jstr(json_object_get(sep, "sval"), "sval");
        free(call.separator);
        call.separator = s ? strdup(s) : NULL;
    }
    if (grow((void **)&q->aggs, q->naggs, sizeof(*q->aggs)) != 0 ||
        grow((void **)&qc->agg_nodes, q->naggs, sizeof(*qc->agg_nodes)) != 0) {
        free(call.separator);
        return TM_ENOMEM;
    }
    q->aggs[q->naggs] = call;
    qc->agg_nodes[q->naggs] = node;
    tm_expr_type_t t = call.result_type;
    *out = tm_expr_column(qc->b->pool, q->ngroup + q->naggs, &t, name);
    q->naggs++;
    return *out ? 0 : TM_ENOMEM;
}

/* ---- function calls ---- */

static int bind_call(qctx_t *qc, const char *name, tm_expr_t *const *args, int nargs,
                     int location, tm_expr_t **out)
{
    char err[1024];
    int rc = tm_expr_call(qc->b->pool, name, args, nargs, out, err, sizeof(err));
    return rc ? builder_err(qc->b, location, rc, err) : 0;
}

static int bind_list(qctx_t *qc, json_t *list, int mode, tm_expr_t ***out, int *n)
{
    size_t cnt = json_array_size(list);
    *n = 0;
    *out = NULL;
    if (!json_is_array(list) || cnt == 0)
        return 0;
    tm_expr_t **v = calloc(cnt, sizeof(*v));
    if (v == NULL)
        return TM_ENOMEM;
    for (size_t i = 0; i < cnt; i++) {
        int rc = bind_expr(qc, json_array_get(list, i), mode, &v[i]);
        if (rc != 0) {
            free(v);
            return rc;
        }
    }
    *out = v;
    *n = (int)cnt;
    return 0;
}

static int bind_funccall(qctx_t *qc, json_t *fc, json_t *node, int location, int mode,
                         tm_expr_t **out)
{
    json_t *fname = json_object_get(fc, "funcname");
    const char *name = last_name(fname);
    if (name == NULL)
        return err_at(qc->b, location, TM_ESQL, "malformed function call");
    if (json_array_size(fname) > 1) {
        const char *schema = string_node(json_array_get(fname, 0));
        if (schema == NULL || strcmp(schema, "pg_catalog") != 0 || json_array_size(fname) > 2)
            return err_at(qc->b, location, TM_ESQL,
                          "function %s.%s does not exist; only built-in functions can be called",
                          schema ? schema : "?", name);
    }
    if (json_object_get(fc, "over") != NULL)
        return unsupported(qc->b, location, "window functions (… OVER (…))");
    if (tm_agg_is_aggregate(name)) {
        if (mode == MODE_PLAIN)
            return err_at(qc->b, location, TM_ESQL, "aggregate functions are not allowed in "
                          "WHERE; filter groups with HAVING");
        if (mode == MODE_GROUPKEY)
            return err_at(qc->b, location, TM_ESQL,
                          "aggregate functions are not allowed in GROUP BY");
        if (mode == MODE_AGGARG)
            return err_at(qc->b, location, TM_ESQL, "aggregate function calls cannot be nested");
        return bind_aggregate(qc, fc, node, location, out);
    }
    if (json_is_true(json_object_get(fc, "agg_star")))
        return err_at(qc->b, location, TM_ESQL,
                      "%s(*) specified, but %s is not an aggregate function", name, name);
    if (json_is_true(json_object_get(fc, "agg_distinct")) ||
        json_object_get(fc, "agg_order") || json_object_get(fc, "agg_filter"))
        return err_at(qc->b, location, TM_ESQL,
                      "DISTINCT, ORDER BY or FILTER specified, but %s is not an aggregate "
                      "function",
                      name);
    if (json_is_true(json_object_get(fc, "func_variadic")))
        return unsupported(qc->b, location, "VARIADIC arguments");
    if (strcmp(name, "like_escape") == 0)
        return unsupported(qc->b, location, "LIKE … ESCAPE");
    /* extract(field FROM x) reaches us as pg_catalog.extract('field', x): the function table has
     * it, numeric as in PostgreSQL 14 and later (date_part stays double precision). */
    json_t *args = json_object_get(fc, "args");
    for (size_t i = 0; i < json_array_size(args); i++)
        if (json_object_get(json_array_get(args, i), "NamedArgExpr"))
            return unsupported(qc->b, location, "named function arguments (name => value)");
    tm_expr_t **argv = NULL;
    int nargs = 0;
    int rc = bind_list(qc, args, mode, &argv, &nargs);
    if (rc == 0)
        rc = bind_call(qc, name, argv, nargs, location, out);
    free(argv);
    return rc;
}

/* ---- A_Expr ---- */

static int bind_aexpr(qctx_t *qc, json_t *ae, int location, int mode, tm_expr_t **out)
{
    tm_expr_pool_t *pool = qc->b->pool;
    const char *kind = jstr(ae, "kind");
    const char *op = last_name(json_object_get(ae, "name"));
    json_t *lexpr = json_object_get(ae, "lexpr"), *rexpr = json_object_get(ae, "rexpr");
    char err[1024];
    tm_expr_t *l = NULL, *r = NULL;
    int rc = 0;
    if (kind == NULL || op == NULL)
        return err_at(qc->b, location, TM_ESQL, "malformed operator expression");
    if (strcmp(kind, "AEXPR_OP_ANY") == 0 || strcmp(kind, "AEXPR_OP_ALL") == 0)
        return unsupported(qc->b, location, "ANY/ALL (array) comparisons; use IN (…)");
    if (strcmp(kind, "AEXPR_SIMILAR") == 0)
        return unsupported(qc->b, location, "SIMILAR TO");
    if (strcmp(kind, "AEXPR_BETWEEN_SYM") == 0 || strcmp(kind, "AEXPR_NOT_BETWEEN_SYM") == 0)
        return unsupported(qc->b, location, "BETWEEN SYMMETRIC");
    if (json_object_get(rexpr, "SubLink") != NULL)
        return unsupported(qc->b, location, "a subquery in an expression");

    if (lexpr != NULL && (rc = bind_expr(qc, lexpr, mode, &l)) != 0)
        return rc;
    if (strcmp(kind, "AEXPR_IN") == 0 || strcmp(kind, "AEXPR_BETWEEN") == 0 ||
        strcmp(kind, "AEXPR_NOT_BETWEEN") == 0) {
        json_t *items = json_object_get(json_object_get(rexpr, "List"), "items");
        tm_expr_t **list = NULL;
        int n = 0;
        if (!json_is_array(items))
            return err_at(qc->b, location, TM_ESQL, "malformed %s list", op);
        if ((rc = bind_list(qc, items, mode, &list, &n)) != 0)
            return rc;
        if (kind[6] == 'I')
            rc = tm_expr_in(pool, strcmp(op, "<>") == 0, l, list, n, out, err, sizeof(err));
        else if (n != 2)
            rc = tm_seterr(err, sizeof(err), TM_ESQL, "BETWEEN needs two bounds");
        else
            rc = tm_expr_between(pool, strcmp(kind, "AEXPR_NOT_BETWEEN") == 0, l, list[0],
                                 list[1], out, err, sizeof(err));
        free(list);
        return rc ? builder_err(qc->b, location, rc, err) : 0;
    }
    if (rexpr != NULL && (rc = bind_expr(qc, rexpr, mode, &r)) != 0)
        return rc;
    if (strcmp(kind, "AEXPR_OP") == 0 || strcmp(kind, "AEXPR_LIKE") == 0 ||
        strcmp(kind, "AEXPR_ILIKE") == 0) {
        if (r == NULL)
            return unsupported(qc->b, location, "a postfix operator");
        rc = tm_expr_operator(pool, op, l, r, out, err, sizeof(err));
    } else if (strcmp(kind, "AEXPR_DISTINCT") == 0 || strcmp(kind, "AEXPR_NOT_DISTINCT") == 0) {
        rc = tm_expr_distinct(pool, kind[6] == 'N', l, r, out, err, sizeof(err));
    } else if (strcmp(kind, "AEXPR_NULLIF") == 0) {
        tm_expr_t *args[2] = {l, r};
        return bind_call(qc, "nullif", args, 2, location, out);
    } else {
        return err_at(qc->b, location, TM_EUNSUPPORTED, "operator expression %s is not "
                      "supported", kind);
    }
    return rc ? builder_err(qc->b, location, rc, err) : 0;
}

/* ---- the node switch ---- */

static const struct {
    const char *kind;
    const char *what;
} unsupported_nodes[] = {
    {"SubLink", "a subquery in an expression"},
    {"A_ArrayExpr", "ARRAY[…] constructors"},
    {"RowExpr", "ROW(…) constructors"},
    {"A_Indirection", "subscripts and field selection (x[1], (x).f)"},
    {"ParamRef", "parameters ($1)"},
    {"CollateClause", "COLLATE"},
    {"GroupingFunc", "GROUPING()"},
    {"XmlExpr", "XML functions"},
    {"XmlSerialize", "XMLSERIALIZE"},
    {"SetToDefault", "DEFAULT"},
    {"CurrentOfExpr", "CURRENT OF"},
    {"MultiAssignRef", "multiple-column assignment"},
};

static int bind_expr(qctx_t *qc, json_t *node, int mode, tm_expr_t **out)
{
    tm_expr_pool_t *pool = qc->b->pool;
    json_t *body;
    const char *kind = node_kind(node, &body);
    int location = node_location(node);
    char err[1024];
    int rc = 0;
    *out = NULL;
    if (kind == NULL || !json_is_object(body))
        return err_at(qc->b, location, TM_ESQL, "malformed expression");
    if (++qc->expr_depth > 200) {
        qc->expr_depth--;
        return err_at(qc->b, location, TM_ESQL, "the expression nests too deeply");
    }

    /* A grouped query sees a GROUP BY expression as the key column it became. */
    if (mode == MODE_GROUPED && strcmp(kind, "A_Const") != 0)
        for (int i = 0; i < qc->q->ngroup; i++)
            if (node_equal(qc, node, qc->group_nodes[i])) {
                tm_expr_type_t t;
                tm_expr_type_from_column(&qc->q->agg_schema->cols[i], &t);
                *out = tm_expr_column(pool, i, &t, qc->q->agg_schema->cols[i].name);
                qc->expr_depth--;
                return *out ? 0 : TM_ENOMEM;
            }

    if (strcmp(kind, "ColumnRef") == 0) {
        rc = bind_column(qc, body, location, mode, out);
    } else if (strcmp(kind, "A_Const") == 0) {
        rc = bind_const(qc, body, location, out);
    } else if (strcmp(kind, "A_Expr") == 0) {
        rc = bind_aexpr(qc, body, location, mode, out);
    } else if (strcmp(kind, "BoolExpr") == 0) {
        const char *bop = jstr(body, "boolop");
        tm_expr_t **args = NULL;
        int n = 0;
        if (bop == NULL) {
            rc = err_at(qc->b, location, TM_ESQL, "malformed boolean expression");
        } else if ((rc = bind_list(qc, json_object_get(body, "args"), mode, &args, &n)) == 0) {
            if (strcmp(bop, "AND_EXPR") == 0)
                rc = tm_expr_and(pool, args, n, out, err, sizeof(err));
            else if (strcmp(bop, "OR_EXPR") == 0)
                rc = tm_expr_or(pool, args, n, out, err, sizeof(err));
            else if (n == 1)
                rc = tm_expr_not(pool, args[0], out, err, sizeof(err));
            else
                rc = tm_seterr(err, sizeof(err), TM_ESQL, "malformed NOT");
            if (rc != 0)
                rc = builder_err(qc->b, location, rc, err);
        }
        free(args);
    } else if (strcmp(kind, "NullTest") == 0 || strcmp(kind, "BooleanTest") == 0) {
        const char *t = jstr(body, kind[0] == 'N' ? "nulltesttype" : "booltesttype");
        static const struct {
            const char *name;
            tm_expr_test_t test;
        } tests[] = {
            {"IS_NULL", TM_TEST_IS_NULL},         {"IS_NOT_NULL", TM_TEST_IS_NOT_NULL},
            {"IS_TRUE", TM_TEST_IS_TRUE},         {"IS_NOT_TRUE", TM_TEST_IS_NOT_TRUE},
            {"IS_FALSE", TM_TEST_IS_FALSE},       {"IS_NOT_FALSE", TM_TEST_IS_NOT_FALSE},
            {"IS_UNKNOWN", TM_TEST_IS_NULL},      {"IS_NOT_UNKNOWN", TM_TEST_IS_NOT_NULL},
        };
        int which = -1;
        for (size_t i = 0; t && i < sizeof(tests) / sizeof(tests[0]); i++)
            if (strcmp(tests[i].name, t) == 0)
                which = (int)i;
        tm_expr_t *arg = NULL;
        if (which < 0)
            rc = err_at(qc->b, location, TM_ESQL, "malformed IS test");
        else if ((rc = bind_expr(qc, json_object_get(body, "arg"), mode, &arg)) == 0 &&
                 (rc = tm_expr_test(pool, tests[which].test, arg, out, err, sizeof(err))) != 0)
            rc = builder_err(qc->b, location, rc, err);
    } else if (strcmp(kind, "CaseExpr") == 0) {
        json_t *whens = json_object_get(body, "args");
        int n = (int)json_array_size(whens);
        tm_expr_t *operand = NULL, *els = NULL;
        tm_expr_t **w = calloc((size_t)n + 1, sizeof(*w)), **t = calloc((size_t)n + 1, sizeof(*t));
        if (w == NULL || t == NULL)
            rc = TM_ENOMEM;
        if (rc == 0 && json_object_get(body, "arg") != NULL)
            rc = bind_expr(qc, json_object_get(body, "arg"), mode, &operand);
        for (int i = 0; rc == 0 && i < n; i++) {
            json_t *cw = json_object_get(json_array_get(whens, i), "CaseWhen");
            rc = bind_expr(qc, json_object_get(cw, "expr"), mode, &w[i]);
            if (rc == 0)
                rc = bind_expr(qc, json_object_get(cw, "result"), mode, &t[i]);
        }
        if (rc == 0 && json_object_get(body, "defresult") != NULL)
            rc = bind_expr(qc, json_object_get(body, "defresult"), mode, &els);
        if (rc == 0 && (rc = tm_expr_case(pool, operand, w, t, n, els, out, err, sizeof(err))))
            rc = builder_err(qc->b, location, rc, err);
        free(w);
        free(t);
    } else if (strcmp(kind, "CoalesceExpr") == 0 || strcmp(kind, "MinMaxExpr") == 0) {
        const char *fn = "coalesce";
        if (kind[0] == 'M') {
            const char *mop = jstr(body, "op");
            fn = mop && strcmp(mop, "IS_LEAST") == 0 ? "least" : "greatest";
        }
        tm_expr_t **args = NULL;
        int n = 0;
        if ((rc = bind_list(qc, json_object_get(body, "args"), mode, &args, &n)) == 0)
            rc = bind_call(qc, fn, args, n, location, out);
        free(args);
    } else if (strcmp(kind, "TypeCast") == 0) {
        tm_expr_type_t t;
        tm_expr_t *arg = NULL;
        if ((rc = bind_type(qc, json_object_get(body, "typeName"), location, &t)) == 0 &&
            (rc = bind_expr(qc, json_object_get(body, "arg"), mode, &arg)) == 0 &&
            (rc = tm_expr_cast(pool, arg, &t, out, err, sizeof(err))) != 0)
            rc = builder_err(qc->b, location, rc, err);
    } else if (strcmp(kind, "FuncCall") == 0) {
        rc = bind_funccall(qc, body, node, location, mode, out);
    } else if (strcmp(kind, "SQLValueFunction") == 0) {
        const char *op = jstr(body, "op");
        tm_expr_t *now = NULL;
        tm_expr_type_t t = {0};
        if (op == NULL)
            rc = err_at(qc->b, location, TM_ESQL, "malformed SQL value function");
        else if (strcmp(op, "SVFOP_CURRENT_TIMESTAMP") == 0)
            rc = bind_call(qc, "now", NULL, 0, location, out);
        else if (strcmp(op, "SVFOP_CURRENT_DATE") == 0 || strcmp(op, "SVFOP_LOCALTIMESTAMP") == 0) {
            t.type = op[6] == 'C' ? TM_T_DATE : TM_T_TIMESTAMP;
            t.precision = -1;
            t.scale = TM_SCALE_VARIABLE;
            if ((rc = bind_call(qc, "now", NULL, 0, location, &now)) == 0 &&
                (rc = tm_expr_cast(pool, now, &t, out, err, sizeof(err))) != 0)
                rc = builder_err(qc->b, location, rc, err);
        } else {
            rc = err_at(qc->b, location, TM_EUNSUPPORTED,
                        "%s is not supported; CURRENT_TIMESTAMP, CURRENT_DATE, LOCALTIMESTAMP "
                        "and now() are",
                        op + 6);
        }
    } else {
        const char *what = NULL;
        for (size_t i = 0; i < sizeof(unsupported_nodes) / sizeof(unsupported_nodes[0]); i++)
            if (strcmp(unsupported_nodes[i].kind, kind) == 0)
                what = unsupported_nodes[i].what;
        if (what != NULL)
            rc = unsupported(qc->b, location, what);
        else
            rc = err_at(qc->b, location, TM_EUNSUPPORTED,
                        "expression %s is not supported (see docs/sql.md)", kind);
    }
    qc->expr_depth--;
    if (rc == 0 && *out == NULL)
        rc = TM_ENOMEM;
    return rc;
}

/* ---- SELECT blocks ---- */

static int bind_block(bctx_t *b, json_t *sel, tm_bound_query_t **out);

/* The name PostgreSQL gives an unaliased select-list item (FigureColname). */
static const char *figure_name(json_t *val)
{
    json_t *body;
    const char *kind = node_kind(val, &body);
    if (kind == NULL)
        return "?column?";
    if (strcmp(kind, "ColumnRef") == 0) {
        json_t *f = json_object_get(body, "fields");
        const char *n = string_node(json_array_get(f, json_array_size(f) - 1));
        return n ? n : "?column?";
    }
    if (strcmp(kind, "FuncCall") == 0) {
        const char *n = last_name(json_object_get(body, "funcname"));
        return n ? n : "?column?";
    }
    if (strcmp(kind, "TypeCast") == 0) {
        const char *n = figure_name(json_object_get(body, "arg"));
        if (strcmp(n, "?column?") != 0)
            return n;
        n = last_name(json_object_get(json_object_get(body, "typeName"), "names"));
        return n ? n : "?column?";
    }
    if (strcmp(kind, "CaseExpr") == 0)
        return "case";
    if (strcmp(kind, "CoalesceExpr") == 0)
        return "coalesce";
    if (strcmp(kind, "MinMaxExpr") == 0) {
        const char *op = jstr(body, "op");
        return op && strcmp(op, "IS_LEAST") == 0 ? "least" : "greatest";
    }
    if (strcmp(kind, "A_Expr") == 0) {
        const char *k = jstr(body, "kind");
        if (k && strcmp(k, "AEXPR_NULLIF") == 0)
            return "nullif";
    }
    if (strcmp(kind, "SQLValueFunction") == 0) {
        const char *op = jstr(body, "op");
        if (op && strcmp(op, "SVFOP_CURRENT_TIMESTAMP") == 0)
            return "current_timestamp";
        if (op && strcmp(op, "SVFOP_CURRENT_DATE") == 0)
            return "current_date";
        if (op && strcmp(op, "SVFOP_LOCALTIMESTAMP") == 0)
            return "localtimestamp";
    }
    return "?column?";
}

static bool is_star(json_t *val)
{
    json_t *f = json_object_get(json_object_get(val, "ColumnRef"), "fields");
    size_t n = json_array_size(f);
    return n > 0 && json_object_get(json_array_get(f, n - 1), "A_Star") != NULL;
}

static int check_clauses(bctx_t *b, json_t *sel, int location)
{
    json_t *v;
    const char *op = jstr(sel, "op");
    if (op != NULL && strcmp(op, "SETOP_NONE") != 0) {
        /* The keyword has no location: point at the second operand's first item. */
        json_t *rarg = json_object_get(sel, "rarg");
        json_t *first = json_array_get(json_object_get(rarg, "targetList"), 0);
        int loc = node_location(first);
        return err_at(b, loc >= 0 ? loc : location, TM_EUNSUPPORTED,
                      "%s is not supported (see docs/sql.md)",
                      strcmp(op, "SETOP_UNION") == 0       ? "UNION"
                      : strcmp(op, "SETOP_INTERSECT") == 0 ? "INTERSECT"
                                                           : "EXCEPT");
    }
    if (json_object_get(sel, "valuesLists") != NULL)
        return unsupported(b, location, "VALUES");
    if ((v = json_object_get(sel, "sortClause")) != NULL) {
        int loc = node_location(json_object_get(json_object_get(json_array_get(v, 0), "SortBy"),
                                                "node"));
        return err_at(b, loc >= 0 ? loc : location,
                      TM_EUNSUPPORTED,
                      "ORDER BY is not supported in a streaming query: a changelog has no order "
                      "(Top-N is not built yet)");
    }
    if ((v = json_object_get(sel, "limitCount")) != NULL ||
        (v = json_object_get(sel, "limitOffset")) != NULL)
        return err_at(b, node_location(v) >= 0 ? node_location(v) : location, TM_EUNSUPPORTED,
                      "LIMIT and OFFSET are not supported in a streaming query (Top-N is not "
                      "built yet)");
    if (json_object_get(sel, "windowClause") != NULL)
        return unsupported(b, location, "WINDOW clauses (window functions)");
    if (json_object_get(sel, "lockingClause") != NULL)
        return unsupported(b, location, "FOR UPDATE/SHARE");
    if (json_object_get(sel, "intoClause") != NULL)
        return unsupported(b, location, "SELECT INTO");
    if (json_object_get(sel, "withClause") != NULL)
        return unsupported(b, location, "WITH (common table expressions); use CREATE VIEW");
    if ((v = json_object_get(sel, "distinctClause")) != NULL) {
        json_t *first = json_array_get(v, 0);
        if (json_array_size(v) > 1 || (json_is_object(first) && json_object_size(first) > 0))
            return err_at(b, node_location(first) >= 0 ? node_location(first) : location,
                          TM_EUNSUPPORTED, "SELECT DISTINCT ON is not supported (Top-N is not "
                          "built yet)");
    }
    return 0;
}

/* Binds the FROM item into q->table / q->sub, q->in_schema and q->from_name. */
static int bind_from(bctx_t *b, tm_bound_query_t *q, json_t *sel, int location)
{
    json_t *from = json_object_get(sel, "fromClause");
    if (json_array_size(from) == 0)
        return err_at(b, location, TM_ESQL,
                      "a streaming query reads a source: add FROM <table>");
    if (json_array_size(from) > 1) {
        int loc = node_location(json_array_get(from, 1));
        return err_at(b, loc >= 0 ? loc : location, TM_EUNSUPPORTED,
                      "joins (FROM a, b) are not built yet");
    }
    json_t *item = json_array_get(from, 0), *body;
    const char *kind = node_kind(item, &body);
    int loc = node_location(item) >= 0 ? node_location(item) : location;
    if (kind == NULL || !json_is_object(body))
        return err_at(b, loc, TM_ESQL, "malformed FROM item");
    if (strcmp(kind, "JoinExpr") == 0) {
        int l = node_location(json_object_get(body, "larg"));
        return err_at(b, l >= 0 ? l : loc, TM_EUNSUPPORTED, "JOIN is not built yet");
    }
    if (strcmp(kind, "RangeFunction") == 0)
        return err_at(b, loc, TM_EUNSUPPORTED,
                      "functions in FROM (TUMBLE, HOP, SESSION, …) are not built yet");
    json_t *alias = json_object_get(body, "alias");
    const char *aname = jstr(alias, "aliasname");
    json_t *colnames = json_object_get(alias, "colnames");
    int rc;
    if (strcmp(kind, "RangeSubselect") == 0) {
        if (json_is_true(json_object_get(body, "lateral")))
            return unsupported(b, loc, "LATERAL");
        json_t *sub = json_object_get(json_object_get(body, "subquery"), "SelectStmt");
        if (sub == NULL)
            return err_at(b, loc, TM_ESQL, "malformed subquery in FROM");
        if ((rc = bind_block(b, sub, &q->sub)) != 0)
            return rc;
        q->table = -1;
        q->from_name = strdup(aname ? aname : "subquery");
    } else if (strcmp(kind, "RangeVar") == 0) {
        const char *name = jstr(body, "relname");
        if (name == NULL)
            return err_at(b, loc, TM_ESQL, "malformed table name");
        /* The grammar omits "inh" (false) exactly when the query says ONLY. */
        if (!json_is_true(json_object_get(body, "inh")))
            return err_at(b, loc, TM_EUNSUPPORTED,
                          "FROM ONLY %s is not supported: a job table has no inheritance "
                          "children; write FROM %s",
                          name, name);
        if (jstr(body, "schemaname") != NULL)
            return err_at(b, loc, TM_ESQL,
                          "\"%s.%s\": a query reads job tables and views by their job name "
                          "(the database table is the connector's `table` option); write "
                          "FROM %s",
                          jstr(body, "schemaname"), name, name);
        int ti = tm_job_find_table(b->job, name), vi = tm_job_find_view(b->job, name);
        if (ti >= 0) {
            q->table = ti;
            q->in_schema = b->job->tables[ti].declared
                               ? tm_schema_ref(b->job->tables[ti].declared)
                               : NULL;
        } else if (vi >= 0) {
            const tm_job_view_t *v = &b->job->views[vi];
            if ((rc = bind_block(b, v->select, &q->sub)) != 0)
                return rc;
            q->table = -1;
            q->from_view = true;
            if (v->naliases > 0) {
                tm_schema_t *s = q->sub->out_schema;
                if (s == NULL || v->naliases > s->ncols)
                    return err_at(b, v->location, TM_ESQL,
                                  "CREATE VIEW %s names more columns than its query has",
                                  v->name);
                for (int i = 0; i < v->naliases; i++)
                    tm_schema_set_str(&s->cols[i].name, v->aliases[i]);
            }
        } else {
            return err_at(b, loc, TM_ESQL, "relation \"%s\" does not exist", name);
        }
        q->from_name = strdup(aname ? aname : name);
    } else {
        return err_at(b, loc, TM_EUNSUPPORTED, "FROM item %s is not supported", kind);
    }
    if (q->sub != NULL && q->sub->out_schema != NULL)
        q->in_schema = tm_schema_ref(q->sub->out_schema);
    if (json_array_size(colnames) > 0) {
        if (q->in_schema == NULL || (int)json_array_size(colnames) > q->in_schema->ncols)
            return err_at(b, loc, TM_ESQL, "table \"%s\" has fewer columns than the %d "
                          "aliases given", q->from_name, (int)json_array_size(colnames));
        /* Renaming must not touch the table's declared schema: work on a copy. */
        tm_schema_t *s = tm_schema_clone(q->in_schema);
        if (s == NULL)
            return TM_ENOMEM;
        tm_schema_unref(q->in_schema);
        q->in_schema = s;
        for (size_t i = 0; i < json_array_size(colnames); i++) {
            const char *cn = string_node(json_array_get(colnames, i));
            tm_schema_set_str(&s->cols[i].name, cn ? cn : "?");
        }
    }
    return 0;
}

/*
 * Resolves one GROUP BY item to the parse node it groups by: an integer
 * constant is an output ordinal, a bare name that is not an input column
 * but is an output alias is that output's expression (PostgreSQL's rule:
 * input columns win).
 */
static int group_item(qctx_t *qc, json_t *item, json_t *targets, json_t **node)
{
    json_t *body;
    const char *kind = node_kind(item, &body);
    int loc = node_location(item);
    *node = item;
    if (kind == NULL)
        return err_at(qc->b, loc, TM_ESQL, "malformed GROUP BY item");
    if (strcmp(kind, "GroupingSet") == 0)
        return unsupported(qc->b, loc, "ROLLUP, CUBE and GROUPING SETS");
    if (strcmp(kind, "A_Const") == 0) {
        json_t *iv = json_object_get(body, "ival");
        if (iv == NULL)
            return err_at(qc->b, loc, TM_ESQL, "non-integer constant in GROUP BY");
        json_t *v = json_object_get(iv, "ival");
        long long pos = json_is_integer(v) ? json_integer_value(v) : 0;
        if (pos < 1 || pos > (long long)json_array_size(targets))
            return err_at(qc->b, loc, TM_ESQL, "GROUP BY position %lld is not in select list",
                          pos);
        json_t *rt = json_object_get(json_array_get(targets, (size_t)pos - 1), "ResTarget");
        json_t *val = json_object_get(rt, "val");
        if (is_star(val))
            return err_at(qc->b, loc, TM_ESQL, "GROUP BY position %lld refers to *; name the "
                          "columns", pos);
        *node = val;
        return 0;
    }
    if (strcmp(kind, "ColumnRef") == 0) {
        json_t *f = json_object_get(body, "fields");
        int idx;
        if (json_array_size(f) == 1 && resolve_column(qc, body, &idx) != 0) {
            const char *name = string_node(json_array_get(f, 0));
            for (size_t i = 0; name && i < json_array_size(targets); i++) {
                json_t *rt = json_object_get(json_array_get(targets, i), "ResTarget");
                const char *alias = jstr(rt, "name");
                if (alias && strcmp(alias, name) == 0) {
                    *node = json_object_get(rt, "val");
                    return 0;
                }
            }
        }
    }
    return 0;
}

static const char *group_name(json_t *node, json_t *targets, int i, char *buf, size_t len)
{
    /* The alias of a select-list item that is exactly this key, else its own name. */
    for (size_t t = 0; t < json_array_size(targets); t++) {
        json_t *rt = json_object_get(json_array_get(targets, t), "ResTarget");
        if (json_object_get(rt, "val") == node && jstr(rt, "name"))
            return jstr(rt, "name");
    }
    const char *n = figure_name(node);
    if (strcmp(n, "?column?") != 0)
        return n;
    snprintf(buf, len, "group_%d", i + 1);
    return buf;
}

static int make_schema_col(tm_schema_t *s, int i, const char *name, const tm_expr_t *e)
{
    tm_column_t *c = &s->cols[i];
    tm_schema_set_str(&c->name, name);
    tm_expr_type_to_column(tm_expr_type(e), c);
    c->nullable = !tm_expr_not_null(e);
    c->key_index = -1;
    return c->name ? 0 : TM_ENOMEM;
}

static int bind_targets(qctx_t *qc, json_t *targets, int mode)
{
    tm_bound_query_t *q = qc->q;
    int n = 0, rc = 0;
    char **names = NULL;
    for (size_t i = 0; rc == 0 && i < json_array_size(targets); i++) {
        json_t *rt = json_object_get(json_array_get(targets, i), "ResTarget");
        json_t *val = json_object_get(rt, "val");
        int loc = node_location(json_array_get(targets, i));
        if (val == NULL) {
            rc = err_at(qc->b, loc, TM_ESQL, "malformed select-list item");
            break;
        }
        if (is_star(val)) {
            json_t *f = json_object_get(json_object_get(val, "ColumnRef"), "fields");
            if (json_array_size(f) == 2) {
                const char *t = string_node(json_array_get(f, 0));
                if (t == NULL || qc->qual == NULL || strcmp(t, qc->qual) != 0) {
                    rc = err_at(qc->b, loc, TM_ESQL,
                                "missing FROM-clause entry for table \"%s\"", t ? t : "?");
                    break;
                }
            }
            if (qc->in == NULL) {
                rc = no_columns_error(qc, loc);
                break;
            }
            for (int c = 0; rc == 0 && c < qc->in->ncols; c++) {
                if (grow((void **)&q->targets, n, sizeof(*q->targets)) != 0 ||
                    grow((void **)&names, n, sizeof(*names)) != 0 ||
                    grow((void **)&q->target_locations, n, sizeof(int)) != 0) {
                    rc = TM_ENOMEM;
                    break;
                }
                tm_expr_t *e = NULL;
                if (mode == MODE_GROUPED) {
                    for (int g = 0; e == NULL && g < q->ngroup; g++) {
                        int gi;
                        json_t *cr = json_object_get(qc->group_nodes[g], "ColumnRef");
                        if (cr && resolve_column(qc, cr, &gi) == 0 && gi == c) {
                            tm_expr_type_t t;
                            tm_expr_type_from_column(&q->agg_schema->cols[g], &t);
                            e = tm_expr_column(qc->b->pool, g, &t, qc->in->cols[c].name);
                        }
                    }
                    if (e == NULL) {
                        rc = err_at(qc->b, loc, TM_ESQL,
                                      "column \"%s.%s\" must appear in the GROUP BY clause or "
                                      "be used in an aggregate function",
                                    qc->qual ? qc->qual : "?", qc->in->cols[c].name);
                        break;
                    }
                } else {
                    e = input_column(qc, c);
                }
                q->targets[n] = e;
                names[n] = strdup(qc->in->cols[c].name);
                q->target_locations[n] = loc;
                n++;
            }
            continue;
        }
        if (grow((void **)&q->targets, n, sizeof(*q->targets)) != 0 ||
            grow((void **)&names, n, sizeof(*names)) != 0 ||
            grow((void **)&q->target_locations, n, sizeof(int)) != 0) {
            rc = TM_ENOMEM;
            break;
        }
        rc = bind_expr(qc, val, mode, &q->targets[n]);
        if (rc == 0) {
            const char *alias = jstr(rt, "name");
            names[n] = strdup(alias ? alias : figure_name(val));
            q->target_locations[n] = loc;
            n++;
        }
    }
    if (rc == 0) {
        q->ntargets = n;
        q->out_schema = tm_schema_new(n);
        if (q->out_schema == NULL)
            rc = TM_ENOMEM;
        for (int i = 0; rc == 0 && i < n; i++)
            rc = make_schema_col(q->out_schema, i, names[i], q->targets[i]);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

static int bind_block(bctx_t *b, json_t *sel, tm_bound_query_t **out)
{
    *out = NULL;
    int location = -1;
    json_t *targets = json_object_get(sel, "targetList");
    if (json_array_size(targets) > 0)
        location = node_location(json_array_get(targets, 0));
    if (b->depth >= MAX_DEPTH)
        return err_at(b, location, TM_ESQL, "queries and views nest too deeply");
    int rc = check_clauses(b, sel, location);
    if (rc != 0)
        return rc;
    if (json_array_size(targets) == 0)
        return err_at(b, location, TM_ESQL, "a query must select at least one column");

    tm_bound_query_t *q = calloc(1, sizeof(*q));
    if (q == NULL)
        return TM_ENOMEM;
    q->table = -1;
    q->location = location;
    qctx_t qc;
    memset(&qc, 0, sizeof(qc));
    qc.b = b;
    qc.q = q;
    b->depth++;
    rc = bind_from(b, q, sel, location);
    b->depth--;
    qc.in = q->in_schema;
    qc.qual = q->from_name;

    json_t *where = json_object_get(sel, "whereClause");
    json_t *groups = json_object_get(sel, "groupClause");
    json_t *having = json_object_get(sel, "havingClause");
    json_t *distinct = json_object_get(sel, "distinctClause");
    bool aggs = has_aggregate(targets) || has_aggregate(having);
    q->grouped = json_array_size(groups) > 0 || having != NULL || aggs || distinct != NULL;
    bool star_only = json_array_size(targets) == 1 &&
                     is_star(json_object_get(json_object_get(json_array_get(targets, 0),
                                                             "ResTarget"),
                                             "val"));

    if (rc == 0 && star_only && where == NULL && !q->grouped &&
        (q->sub == NULL || q->sub->out_schema == NULL || q->sub->passthrough)) {
        /* Rows pass through with their own schema: no Calc. */
        q->passthrough = q->sub == NULL || q->sub->passthrough;
    }
    if (rc == 0 && q->in_schema == NULL && !q->passthrough)
        rc = no_columns_error(&qc, location);
    if (rc == 0 && where != NULL)
        rc = bind_expr(&qc, where, MODE_PLAIN, &q->where);
    if (rc == 0 && q->where != NULL) {
        const tm_expr_type_t *t = tm_expr_type(q->where);
        if (t->type != TM_T_BOOL) {
            char tn[64];
            tm_expr_t *cast = NULL;
            char err[512];
            /* An unknown-typed literal becomes boolean as in PostgreSQL; anything else errs. */
            tm_expr_type_t bt = {TM_T_BOOL, 0, -1, TM_SCALE_VARIABLE};
            if (json_object_get(where, "A_Const") &&
                tm_expr_cast(b->pool, q->where, &bt, &cast, err, sizeof(err)) == 0)
                q->where = cast;
            else
                rc = err_at(b, node_location(where), TM_ESQL,
                            "argument of WHERE must be type boolean, not type %s",
                            tm_expr_type_name(t, tn, sizeof(tn)));
        }
    }

    if (rc == 0 && q->grouped && !q->passthrough) {
        /* GROUP BY keys (or the DISTINCT select list) in the input scope. */
        json_t *items = groups;
        json_t *dlist = NULL;
        if (distinct != NULL && json_array_size(groups) == 0 && !aggs && having == NULL) {
            dlist = json_array();
            for (size_t i = 0; dlist && i < json_array_size(targets); i++) {
                json_t *val = json_object_get(
                    json_object_get(json_array_get(targets, i), "ResTarget"), "val");
                if (is_star(val)) {
                    rc = err_at(b, node_location(val), TM_EUNSUPPORTED,
                                "SELECT DISTINCT * is not supported; name the columns");
                    break;
                }
                json_array_append(dlist, val);
            }
            items = dlist;
        } else if (distinct != NULL) {
            rc = err_at(b, location, TM_EUNSUPPORTED,
                        "SELECT DISTINCT together with GROUP BY or aggregates is not supported");
        }
        size_t ng = json_array_size(items);
        qc.group_nodes = calloc(ng + 1, sizeof(json_t *));
        if (qc.group_nodes == NULL)
            rc = TM_ENOMEM;
        for (size_t i = 0; rc == 0 && i < ng; i++) {
            json_t *node;
            rc = group_item(&qc, json_array_get(items, i), targets, &node);
            /* A key listed twice groups once. */
            bool dup = false;
            for (int g = 0; rc == 0 && g < q->ngroup; g++)
                if (node_equal(&qc, node, qc.group_nodes[g]))
                    dup = true;
            if (rc != 0 || dup)
                continue;
            tm_expr_t *e = NULL;
            rc = bind_expr(&qc, node, MODE_GROUPKEY, &e);
            if (rc == 0) {
                char buf[32];
                qc.group_nodes[q->ngroup] = node;
                int idx = add_pre(&qc, node, e,
                                  group_name(node, targets, q->ngroup, buf, sizeof(buf)));
                if (idx < 0)
                    rc = idx;
                else
                    q->ngroup++;
            }
        }
        /*
         * The key columns of the aggregation's output are known now; the
         * aggregates are appended to agg_schema once the select list and
         * HAVING have found them.  Binding the select list needs the key
         * columns' types, so agg_schema starts with the keys only.
         */
        if (rc == 0) {
            q->agg_schema = tm_schema_new(q->ngroup);
            if (q->agg_schema == NULL)
                rc = TM_ENOMEM;
            for (int i = 0; rc == 0 && i < q->ngroup; i++)
                rc = make_schema_col(q->agg_schema, i, q->pre_names[i], q->pre_exprs[i]);
        }
        if (rc == 0)
            rc = bind_targets(&qc, targets, MODE_GROUPED);
        if (rc == 0 && having != NULL) {
            rc = bind_expr(&qc, having, MODE_GROUPED, &q->having);
            if (rc == 0 && tm_expr_type(q->having)->type != TM_T_BOOL) {
                char tn[64];
                rc = err_at(b, node_location(having), TM_ESQL,
                            "argument of HAVING must be type boolean, not type %s",
                            tm_expr_type_name(tm_expr_type(q->having), tn, sizeof(tn)));
            }
        }
        if (rc == 0) {
            /* Now the full aggregation output: keys, then aggregates. */
            tm_schema_t *s = tm_schema_new(q->ngroup + q->naggs);
            if (s == NULL)
                rc = TM_ENOMEM;
            for (int i = 0; rc == 0 && i < q->ngroup; i++) {
                tm_column_t *d = &s->cols[i], *c = &q->agg_schema->cols[i];
                tm_schema_set_str(&d->name, c->name);
                d->type = c->type;
                d->elem_type = c->elem_type;
                d->precision = c->precision;
                d->scale = c->scale;
                d->nullable = c->nullable;
                d->key_index = (int16_t)i;
            }
            for (int k = 0; rc == 0 && k < q->naggs; k++) {
                tm_column_t *d = &s->cols[q->ngroup + k];
                char nm[64];
                snprintf(nm, sizeof(nm), "%s_%d", tm_agg_name(q->aggs[k].kind), k + 1);
                tm_schema_set_str(&d->name, nm);
                tm_expr_type_to_column(&q->aggs[k].result_type, d);
                d->nullable = q->aggs[k].kind != TM_AGG_COUNT && q->aggs[k].kind !=
                              TM_AGG_COUNT_STAR;
                d->key_index = -1;
            }
            if (rc == 0 && tm_schema_finish(s) != 0)
                rc = TM_EINVAL;
            tm_schema_unref(q->agg_schema);
            q->agg_schema = s;
        }
        json_decref(dlist);
    } else if (rc == 0 && !q->passthrough) {
        rc = bind_targets(&qc, targets, MODE_PLAIN);
    } else if (rc == 0 && q->passthrough) {
        q->out_schema = q->in_schema ? tm_schema_ref(q->in_schema) : NULL;
    }
    free(qc.group_nodes);
    free(qc.arg_nodes);
    free(qc.agg_nodes);
    if (rc != 0) {
        tm_bound_query_free(q);
        return rc;
    }
    *out = q;
    return 0;
}

int tm_bind_select(const tm_job_t *job, struct json_t *select, tm_expr_pool_t *pool,
                   tm_bound_query_t **out, char *errstr, size_t errstr_size)
{
    bctx_t b = {job, pool, errstr, errstr_size, 0};
    *out = NULL;
    if (select == NULL)
        return tm_seterr(errstr, errstr_size, TM_ESQL, "%s: no query", job->path);
    return bind_block(&b, select, out);
}

int tm_bind_insert(const tm_job_t *job, int insert, tm_expr_pool_t *pool, tm_bound_query_t **out,
                   char *errstr, size_t errstr_size)
{
    if (insert < 0 || insert >= job->ninserts)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "no INSERT number %d", insert + 1);
    return tm_bind_select(job, job->inserts[insert].select, pool, out, errstr, errstr_size);
}

tm_bound_query_t *tm_bound_query_free(tm_bound_query_t *q)
{
    if (q == NULL)
        return NULL;
    tm_bound_query_free(q->sub);
    free(q->from_name);
    tm_schema_unref(q->in_schema);
    free(q->pre_exprs);
    for (int i = 0; i < q->npre; i++)
        free(q->pre_names[i]);
    free(q->pre_names);
    for (int k = 0; k < q->naggs; k++)
        free(q->aggs[k].separator);
    free(q->aggs);
    tm_schema_unref(q->agg_schema);
    free(q->targets);
    free(q->target_locations);
    tm_schema_unref(q->out_schema);
    free(q);
    return NULL;
}

int tm_bound_query_source(const tm_bound_query_t *q)
{
    while (q != NULL && q->table < 0)
        q = q->sub;
    return q ? q->table : -1;
}
