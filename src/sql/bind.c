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

#include <inttypes.h>
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

/*
 * A name visible to column references: a FROM item's alias with its
 * columns at `offset` of the layout.  `level` 0 is the block's own FROM;
 * level 1 the enclosing query's, seen from a subquery (correlation): a
 * name resolves at the lowest level that has it, as in PostgreSQL.
 */
typedef struct scope_entry {
    const char *name;
    const tm_schema_t *schema;
    int offset;
    int level;
} scope_entry_t;

/* The state of one SELECT block while it is bound. */
typedef struct qctx {
    bctx_t *b;
    tm_bound_query_t *q;
    const tm_schema_t *in;
    const char *qual;      /* the FROM item's visible name (NULL for a join) */
    scope_entry_t *scope;  /* the names of `in` */
    int nscope;
    int used_min, used_max; /* columns of `in` the expressions bound so far read */
    json_t **group_nodes;  /* the parse nodes of the GROUP BY keys */
    json_t **arg_nodes;    /* pre_exprs[ngroup + i]'s parse node */
    json_t **agg_nodes;    /* the parse node of aggs[k] */
    int expr_depth;
    int window_refs; /* references to a window TVF's window columns bound so far */
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

enum { FIND_OK = 0, FIND_NO_RANGE, FIND_NO_COLUMN, FIND_AMBIGUOUS };

/*
 * Looks `col` (of the item named `t`, or of any) up in the scope: the
 * lowest level that has a match wins; two matches on that level are
 * ambiguous (PostgreSQL's rule).  *index is the column of qc->in.
 */
static int scope_find(const qctx_t *qc, const char *t, const char *col, int *index)
{
    *index = -1;
    bool range_seen = false;
    int maxlevel = 0;
    for (int i = 0; i < qc->nscope; i++)
        maxlevel = qc->scope[i].level > maxlevel ? qc->scope[i].level : maxlevel;
    for (int level = 0; level <= maxlevel; level++) {
        int found = -1, nfound = 0;
        for (int i = 0; i < qc->nscope; i++) {
            const scope_entry_t *e = &qc->scope[i];
            if (e->level != level || (t != NULL && (e->name == NULL || strcmp(e->name, t) != 0)))
                continue;
            range_seen = true;
            int c = e->schema ? tm_schema_find(e->schema, col) : -1;
            if (c >= 0) {
                found = e->offset + c;
                nfound++;
            }
        }
        if (nfound > 1)
            return FIND_AMBIGUOUS;
        if (nfound == 1) {
            *index = found;
            return FIND_OK;
        }
        /* A qualified name binds to the nearest item with that name, found or not. */
        if (t != NULL && range_seen)
            return FIND_NO_COLUMN;
    }
    return t != NULL && !range_seen ? FIND_NO_RANGE : FIND_NO_COLUMN;
}

/* The scope's item names, for messages: "o, c". */
static void scope_names(const qctx_t *qc, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int i = 0; i < qc->nscope && n + 1 < len; i++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", i ? ", " : "",
                              qc->scope[i].name ? qc->scope[i].name : "?");
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
    const char *t = NULL;
    if (n == 2 && (t = string_node(json_array_get(fields, 0))) == NULL)
        return TM_ESQL;
    return scope_find(qc, t, col, index) == FIND_OK ? 0 : TM_ESQL;
}

static tm_expr_t *input_column(qctx_t *qc, int i)
{
    tm_expr_type_t t;
    tm_expr_type_from_column(&qc->in->cols[i], &t);
    if (qc->used_min < 0 || i < qc->used_min)
        qc->used_min = i;
    if (i > qc->used_max)
        qc->used_max = i;
    if (qc->q != NULL && qc->q->window != NULL && i >= qc->q->window->first_col)
        qc->window_refs++;
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
    const char *t = n == 2 ? string_node(json_array_get(fields, 0)) : NULL;
    if (n == 2 && t == NULL)
        return err_at(qc->b, location, TM_ESQL, "malformed qualified column name");
    int idx = -1;
    char names[512];
    scope_names(qc, names, sizeof(names));
    switch (scope_find(qc, t, col, &idx)) {
    case FIND_OK:
        break;
    case FIND_NO_RANGE:
        return err_at(qc->b, location, TM_ESQL,
                      "missing FROM-clause entry for table \"%s\"; the query reads %s", t,
                      qc->nscope ? names : "no table");
    case FIND_AMBIGUOUS:
        return err_at(qc->b, location, TM_ESQL,
                      "column reference \"%s\" is ambiguous: more than one of %s has it; "
                      "qualify it (table.%s)",
                      col, names, col);
    default: {
        char cols[1024];
        if (qc->nscope <= 1 || t != NULL) {
            const tm_schema_t *s = qc->in;
            for (int i = 0; t != NULL && i < qc->nscope; i++)
                if (qc->scope[i].name && strcmp(qc->scope[i].name, t) == 0)
                    s = qc->scope[i].schema;
            column_list(s, cols, sizeof(cols));
            return err_at(qc->b, location, TM_ESQL, "column \"%s\" does not exist; %s has: %s",
                          col, t ? t : (qc->qual ? qc->qual : "the input"), cols);
        }
        return err_at(qc->b, location, TM_ESQL,
                      "column \"%s\" does not exist in any of %s", col, names);
    }
    }
    if (mode == MODE_GROUPED)
        return err_at(qc->b, location, TM_ESQL,
                      "column \"%s.%s\" must appear in the GROUP BY clause or be used in an "
                      "aggregate function",
                      t ? t : (qc->qual ? qc->qual : "?"), col);
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
    int wrefs = qc->window_refs;
    for (int i = 0; i < nargs; i++) {
        int rc = bind_expr(qc, json_array_get(args, i), MODE_AGGARG, &argv[i]);
        if (rc != 0)
            return rc;
        types[i] = *tm_expr_type(argv[i]);
    }
    if (qc->window_refs != wrefs)
        return err_at(qc->b, location, TM_EUNSUPPORTED,
                      "an aggregate over window_start, window_end or window_time is not "
                      "supported: they are the same for every row of a window; select them "
                      "as GROUP BY keys");
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
                      "(for Top-N, rank with row_number() OVER (… ORDER BY …) and filter "
                      "rn <= N)");
    }
    if ((v = json_object_get(sel, "limitCount")) != NULL ||
        (v = json_object_get(sel, "limitOffset")) != NULL)
        return err_at(b, node_location(v) >= 0 ? node_location(v) : location, TM_EUNSUPPORTED,
                      "LIMIT and OFFSET are not supported in a streaming query (for Top-N, "
                      "rank with row_number() OVER (…) and filter rn <= N)");
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
                          TM_EUNSUPPORTED, "SELECT DISTINCT ON is not supported (deduplicate with "
                          "row_number() OVER (PARTITION BY … ORDER BY …) and rn = 1)");
    }
    return 0;
}

static int bind_window_leaf(bctx_t *b, json_t *rf, int location, tm_bound_from_t *f);

/* Binds a table, view or subquery FROM item into f->table / f->sub, f->raw and f->name. */
static int bind_leaf(bctx_t *b, json_t *item, int location, tm_bound_from_t *f)
{
    json_t *body;
    const char *kind = node_kind(item, &body);
    int loc = node_location(item) >= 0 ? node_location(item) : location;
    if (kind == NULL || !json_is_object(body))
        return err_at(b, loc, TM_ESQL, "malformed FROM item");
    if (strcmp(kind, "RangeFunction") == 0)
        return bind_window_leaf(b, body, loc, f);
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
        if ((rc = bind_block(b, sub, &f->sub)) != 0)
            return rc;
        f->table = -1;
        f->name = strdup(aname ? aname : "subquery");
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
            f->table = ti;
            f->raw = b->job->tables[ti].declared
                               ? tm_schema_ref(b->job->tables[ti].declared)
                               : NULL;
        } else if (vi >= 0) {
            const tm_job_view_t *v = &b->job->views[vi];
            if ((rc = bind_block(b, v->select, &f->sub)) != 0)
                return rc;
            f->table = -1;
            f->view = true;
            if (v->naliases > 0) {
                tm_schema_t *s = f->sub->out_schema;
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
        f->name = strdup(aname ? aname : name);
    } else {
        return err_at(b, loc, TM_EUNSUPPORTED, "FROM item %s is not supported", kind);
    }
    if (f->sub != NULL && f->sub->out_schema != NULL)
        f->raw = tm_schema_ref(f->sub->out_schema);
    if (json_array_size(colnames) > 0) {
        if (f->raw == NULL || (int)json_array_size(colnames) > f->raw->ncols)
            return err_at(b, loc, TM_ESQL, "table \"%s\" has fewer columns than the %d "
                          "aliases given", f->name, (int)json_array_size(colnames));
        /* Renaming must not touch the table's declared schema: work on a copy. */
        tm_schema_t *s = tm_schema_clone(f->raw);
        if (s == NULL)
            return TM_ENOMEM;
        tm_schema_unref(f->raw);
        f->raw = s;
        for (size_t i = 0; i < json_array_size(colnames); i++) {
            const char *cn = string_node(json_array_get(colnames, i));
            tm_schema_set_str(&s->cols[i].name, cn ? cn : "?");
        }
    }
    return 0;
}

/* ---- FROM: leaves, joins, semi and anti joins ---- */

static int make_schema_col(tm_schema_t *s, int i, const char *name, const tm_expr_t *e);

tm_bound_window_t *tm_bound_window_free(tm_bound_window_t *w)
{
    if (w != NULL) {
        tm_schema_unref(w->input);
        free(w);
    }
    return NULL;
}

tm_bound_from_t *tm_bound_from_free(tm_bound_from_t *f)
{
    if (f == NULL)
        return NULL;
    tm_bound_query_free(f->sub);
    free(f->name);
    tm_bound_from_free(f->left);
    tm_bound_from_free(f->right);
    free(f->left_keys);
    free(f->right_keys);
    tm_schema_unref(f->raw);
    free(f->ext);
    tm_schema_unref(f->schema);
    for (int i = 0; i < f->nranges; i++) {
        free(f->ranges[i].name);
        tm_schema_unref(f->ranges[i].schema);
    }
    free(f->ranges);
    tm_bound_window_free(f->window);
    free(f);
    return NULL;
}

static tm_bound_from_t *from_new(int location)
{
    tm_bound_from_t *f = calloc(1, sizeof(*f));
    if (f != NULL) {
        f->table = -1;
        f->location = location;
    }
    return f;
}

static int add_range(tm_bound_from_t *f, const char *name, tm_schema_t *schema, int offset)
{
    if (grow((void **)&f->ranges, f->nranges, sizeof(*f->ranges)) != 0)
        return TM_ENOMEM;
    tm_bound_range_t *r = &f->ranges[f->nranges++];
    r->name = strdup(name ? name : "?");
    r->schema = schema ? tm_schema_ref(schema) : NULL;
    r->offset = offset;
    return r->name ? 0 : TM_ENOMEM;
}

static int copy_col(tm_column_t *d, const tm_column_t *c, bool nullable)
{
    tm_schema_set_str(&d->name, c->name);
    d->type = c->type;
    d->elem_type = c->elem_type;
    d->precision = c->precision;
    d->scale = c->scale;
    d->length = c->length;
    d->nullable = c->nullable || nullable;
    d->key_index = -1;
    d->type_oid = c->type_oid;
    d->typmod = c->typmod;
    if (c->db_type)
        tm_schema_set_str(&d->db_type, c->db_type);
    if (c->semantic)
        tm_schema_set_str(&d->semantic, c->semantic);
    if (c->enum_values)
        tm_schema_set_str(&d->enum_values, c->enum_values);
    return d->name ? 0 : TM_ENOMEM;
}

/* a ++ b (b may be NULL), the columns of a side that can be null-padded made nullable. */
static tm_schema_t *concat_schema(const tm_schema_t *a, const tm_schema_t *b, bool null_a,
                                  bool null_b)
{
    int na = a->ncols, nb = b ? b->ncols : 0;
    tm_schema_t *s = tm_schema_new(na + nb);
    int rc = s ? 0 : TM_ENOMEM;
    for (int i = 0; rc == 0 && i < na; i++)
        rc = copy_col(&s->cols[i], &a->cols[i], null_a);
    for (int i = 0; rc == 0 && i < nb; i++)
        rc = copy_col(&s->cols[na + i], &b->cols[i], null_b);
    if (rc == 0 && tm_schema_finish(s) != 0)
        rc = TM_EINVAL;
    if (rc != 0)
        return tm_schema_unref(s);
    return s;
}

/* ---- window table-valued functions (TUMBLE, HOP, SESSION, CUMULATE) ---- */

static void qctx_over(qctx_t *qc, bctx_t *b, tm_bound_query_t *q, const tm_schema_t *in,
                      scope_entry_t *scope, int nscope);

/*
 * The first location inside a parse node (INTERVAL '1 minute' is a TypeCast
 * whose own location libpg_query leaves at -1; its constant has one).
 */
static int inner_location(json_t *node)
{
    int loc = node_location(node);
    if (loc >= 0 || !json_is_object(node))
        return loc;
    void *it;
    for (it = json_object_iter(node); it != NULL; it = json_object_iter_next(node, it)) {
        json_t *v = json_object_iter_value(it);
        if (strcmp(json_object_iter_key(it), "location") == 0 && json_is_integer(v) &&
            json_integer_value(v) >= 0)
            return (int)json_integer_value(v);
        if (json_is_object(v) && (loc = inner_location(v)) >= 0)
            return loc;
    }
    return -1;
}

/* True when the parse tree reads a column (a ColumnRef anywhere in it). */
static bool reads_column(json_t *node)
{
    if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++)
            if (reads_column(json_array_get(node, i)))
                return true;
        return false;
    }
    if (!json_is_object(node))
        return false;
    if (json_object_get(node, "ColumnRef") != NULL)
        return true;
    const char *k;
    json_t *v;
    json_object_foreach(node, k, v)
    {
        if (reads_column(v))
            return true;
    }
    return false;
}

/* A positive constant interval argument of a window function, in µs. */
static int window_interval(bctx_t *b, json_t *arg, const char *fn, const char *what,
                           int location, int64_t *us)
{
    if (reads_column(arg) || has_aggregate(arg)) {
        int l = inner_location(arg);
        return err_at(b, l >= 0 ? l : location, TM_ESQL,
                      "the %s of %s must be a constant interval (INTERVAL '1 minute'), not an "
                      "expression over the rows",
                      what, fn);
    }
    tm_bound_query_t dummy;
    memset(&dummy, 0, sizeof(dummy));
    qctx_t qc;
    qctx_over(&qc, b, &dummy, NULL, NULL, 0);
    int loc = inner_location(arg) >= 0 ? inner_location(arg) : location;
    tm_expr_t *e = NULL;
    int rc = bind_expr(&qc, arg, MODE_PLAIN, &e);
    if (rc != 0)
        return rc;
    char tn[64];
    if (tm_expr_type(e)->type != TM_T_INTERVAL || !tm_expr_is_constant(e))
        return err_at(b, loc, TM_ESQL,
                      "the %s of %s must be a constant interval (INTERVAL '1 minute'), not %s%s",
                      what, fn, tm_expr_is_constant(e) ? "type " : "an expression of type ",
                      tm_expr_type_name(tm_expr_type(e), tn, sizeof(tn)));
    tm_arena_t arena;
    tm_arena_init(&arena, 256);
    uint64_t nulls = 0;
    tm_row_t none = {&nulls, NULL};
    tm_eval_env_t env = {&arena, 0};
    tm_datum_t d;
    bool isnull = true;
    char err[512];
    rc = tm_expr_eval(e, &none, &env, &d, &isnull, err, sizeof(err));
    tm_arena_release(&arena);
    if (rc != 0)
        return err_at(b, loc, rc == TM_ENOMEM ? rc : TM_ESQL, "the %s of %s: %s", what, fn, err);
    if (isnull || d.u.iv.us <= 0)
        return err_at(b, loc, TM_ESQL, "the %s of %s must be a positive interval", what, fn);
    if (d.u.iv.months != 0)
        return err_at(b, loc, TM_EUNSUPPORTED,
                      "the %s of %s cannot count months or years (they differ in length); "
                      "give it in days, hours, minutes or seconds",
                      what, fn);
    *us = d.u.iv.us;
    return 0;
}

/*
 * FROM TUMBLE(t, col, size) and its kin (a RangeFunction): f becomes t's leaf
 * with the window columns appended and f->window set (bind.h).
 */
static int bind_window_leaf(bctx_t *b, json_t *rf, int location, tm_bound_from_t *f)
{
    json_t *fns = json_object_get(rf, "functions");
    json_t *items = json_object_get(json_object_get(json_array_get(fns, 0), "List"), "items");
    json_t *fc = json_object_get(json_array_get(items, 0), "FuncCall");
    if (json_array_size(fns) != 1 || fc == NULL)
        return err_at(b, location, TM_EUNSUPPORTED,
                      "this function in FROM is not supported: FROM takes the window functions "
                      "TUMBLE, HOP, SESSION and CUMULATE");
    int loc = node_location(json_array_get(items, 0)) >= 0
                  ? node_location(json_array_get(items, 0))
                  : location;
    if (json_object_get(fc, "location") != NULL)
        loc = (int)json_integer_value(json_object_get(fc, "location"));
    if (json_is_true(json_object_get(rf, "lateral")) ||
        json_is_true(json_object_get(rf, "ordinality")) ||
        json_is_true(json_object_get(rf, "is_rowsfrom")))
        return unsupported(b, loc, "LATERAL, WITH ORDINALITY or ROWS FROM on a function in FROM");
    const char *name = last_name(json_object_get(fc, "funcname"));
    static const struct {
        const char *name;
        tm_bound_window_kind_t kind;
        int nargs;
        const char *usage;
    } fns_tab[] = {
        {"tumble", TM_BOUND_WINDOW_TUMBLE, 3, "TUMBLE(table, time_column, size)"},
        {"hop", TM_BOUND_WINDOW_HOP, 4, "HOP(table, time_column, slide, size)"},
        {"session", TM_BOUND_WINDOW_SESSION, 3, "SESSION(table, time_column, gap)"},
        {"cumulate", TM_BOUND_WINDOW_CUMULATE, 4, "CUMULATE(table, time_column, step, size)"},
    };
    int k = -1;
    for (int i = 0; name != NULL && i < 4; i++)
        if (strcasecmp(name, fns_tab[i].name) == 0)
            k = i;
    if (k < 0)
        return err_at(b, loc, TM_EUNSUPPORTED,
                      "function %s() in FROM is not supported: FROM takes the window functions "
                      "TUMBLE, HOP, SESSION and CUMULATE",
                      name ? name : "?");
    char fn[16];
    snprintf(fn, sizeof(fn), "%s", fns_tab[k].name);
    for (char *p = fn; *p; p++)
        *p = (char)(*p - 'a' + 'A');
    json_t *args = json_object_get(fc, "args");
    if ((int)json_array_size(args) != fns_tab[k].nargs)
        return err_at(b, loc, TM_ESQL, "%s takes %d arguments: %s", fn, fns_tab[k].nargs,
                      fns_tab[k].usage);
    /* The table: a bare name (libpg_query reads it as a column reference). */
    json_t *a0 = json_array_get(args, 0);
    json_t *cref = json_object_get(a0, "ColumnRef");
    json_t *fields = json_object_get(cref, "fields");
    const char *tname = json_array_size(fields) == 1 ? string_node(json_array_get(fields, 0))
                                                     : NULL;
    int aloc = node_location(a0) >= 0 ? node_location(a0) : loc;
    if (tname == NULL)
        return err_at(b, aloc, TM_ESQL,
                      "the first argument of %s must name a table or view of the job: %s", fn,
                      fns_tab[k].usage);
    json_t *rv = json_pack("{s:{s:s,s:b,s:i}}", "RangeVar", "relname", tname, "inh", 1,
                           "location", aloc);
    if (rv == NULL)
        return TM_ENOMEM;
    int rc = bind_leaf(b, rv, aloc, f);
    json_decref(rv);
    if (rc != 0)
        return rc;
    if (f->raw == NULL)
        return err_at(b, aloc, TM_ESQL,
                      "'%s' declares no columns, so %s cannot read its time column; declare "
                      "its columns",
                      tname, fn);
    /* The time column. */
    json_t *a1 = json_array_get(args, 1);
    json_t *cf = json_object_get(json_object_get(a1, "ColumnRef"), "fields");
    const char *cname = json_array_size(cf) == 1 ? string_node(json_array_get(cf, 0)) : NULL;
    int cloc = node_location(a1) >= 0 ? node_location(a1) : loc;
    if (cname == NULL && json_object_get(a1, "FuncCall") != NULL)
        return err_at(b, cloc, TM_EUNSUPPORTED,
                      "processing-time windows are not supported: the second argument of %s is "
                      "a function call (such as now() or PROCTIME()), but windows are on event "
                      "time; name a timestamp column of %s (with the table's watermark option)",
                      fn, tname);
    if (cname == NULL)
        return err_at(b, cloc, TM_ESQL,
                      "the second argument of %s must name a timestamp column of %s: %s", fn,
                      tname, fns_tab[k].usage);
    int tc = -1;
    for (int i = 0; i < f->raw->ncols; i++)
        if (strcmp(f->raw->cols[i].name, cname) == 0)
            tc = i;
    if (tc < 0) {
        char cols[512];
        column_list(f->raw, cols, sizeof(cols));
        return err_at(b, cloc, TM_ESQL, "column \"%s\" does not exist in %s (its columns: %s)",
                      cname, tname, cols);
    }
    tm_type_t tt = f->raw->cols[tc].type;
    if (tt != TM_T_TIMESTAMP && tt != TM_T_TIMESTAMPTZ)
        return err_at(b, cloc, TM_ESQL,
                      "the time column of %s must be of type timestamp or timestamptz, but "
                      "\"%s\" is %s",
                      fn, cname, tm_expr_sql_type_name(tt));
    tm_bound_window_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return TM_ENOMEM;
    f->window = w;
    w->kind = fns_tab[k].kind;
    w->time_col = tc;
    w->location = loc;
    w->first_col = f->raw->ncols;
    w->input = tm_schema_ref(f->raw);
    int last = fns_tab[k].nargs - 1;
    rc = window_interval(b, json_array_get(args, last), fn,
                         w->kind == TM_BOUND_WINDOW_SESSION ? "gap" : "size", loc, &w->size_us);
    w->slide_us = w->size_us;
    if (rc == 0 && fns_tab[k].nargs == 4) {
        const char *what = w->kind == TM_BOUND_WINDOW_HOP ? "slide" : "step";
        rc = window_interval(b, json_array_get(args, 2), fn, what, loc, &w->slide_us);
        int sloc = inner_location(json_array_get(args, 2));
        if (rc == 0 && w->size_us % w->slide_us != 0)
            rc = err_at(b, sloc >= 0 ? sloc : loc, TM_ESQL,
                        "the size of %s must be a whole multiple of its %s", fn, what);
        if (rc == 0 && w->size_us / w->slide_us > 1000)
            rc = err_at(b, sloc >= 0 ? sloc : loc, TM_EUNSUPPORTED,
                        "%s would put every row in %" PRId64 " windows (size / %s); at most "
                        "1000 are supported",
                        fn, w->size_us / w->slide_us, what);
    }
    if (rc != 0)
        return rc;
    /* The layout: t's columns, then window_start, window_end, window_time. */
    tm_schema_t *ext = tm_schema_new(3);
    if (ext == NULL)
        return TM_ENOMEM;
    static const char *const wnames[] = {"window_start", "window_end", "window_time"};
    for (int i = 0; i < 3; i++) {
        tm_schema_set_str(&ext->cols[i].name, wnames[i]);
        ext->cols[i].type = tt;
        ext->cols[i].nullable = false;
        ext->cols[i].key_index = -1;
    }
    tm_schema_t *all = tm_schema_finish(ext) == 0 ? concat_schema(f->raw, ext, false, false)
                                                 : NULL;
    tm_schema_unref(ext);
    if (all == NULL)
        return TM_ENOMEM;
    tm_schema_unref(f->raw);
    f->raw = all;
    /* An alias on the call names the leaf: FROM TUMBLE(orders, …) AS o. */
    const char *aname = jstr(json_object_get(rf, "alias"), "aliasname");
    if (aname != NULL) {
        free(f->name);
        f->name = strdup(aname);
    }
    return f->name ? 0 : TM_ENOMEM;
}

/* The AND of conjuncts (NULL when there are none). */
static int and_all(bctx_t *b, tm_expr_t **v, int n, int location, tm_expr_t **out)
{
    char err[512];
    *out = NULL;
    if (n == 0)
        return 0;
    if (n == 1) {
        *out = v[0];
        return 0;
    }
    int rc = tm_expr_and(b->pool, v, n, out, err, sizeof(err));
    return rc ? builder_err(b, location, rc, err) : 0;
}

/* Flattens nested ANDs into an array of conjuncts (borrowed nodes). */
static void conjuncts(json_t *node, json_t *arr)
{
    json_t *be = json_object_get(node, "BoolExpr");
    const char *op = be ? jstr(be, "boolop") : NULL;
    if (op != NULL && strcmp(op, "AND_EXPR") == 0) {
        json_t *args = json_object_get(be, "args");
        for (size_t i = 0; i < json_array_size(args); i++)
            conjuncts(json_array_get(args, i), arr);
        return;
    }
    if (node != NULL)
        json_array_append(arr, node);
}

static int bind_leaf(bctx_t *b, json_t *item, int location, tm_bound_from_t *f);
static int bind_from_item(bctx_t *b, tm_bound_query_t *q, json_t *item, int location,
                          tm_bound_from_t **out);

/* A query context over a layout with the names of one or two items. */
static void qctx_over(qctx_t *qc, bctx_t *b, tm_bound_query_t *q, const tm_schema_t *in,
                      scope_entry_t *scope, int nscope)
{
    memset(qc, 0, sizeof(*qc));
    qc->b = b;
    qc->q = q;
    qc->in = in;
    qc->scope = scope;
    qc->nscope = nscope;
    qc->used_min = -1;
    qc->used_max = -1;
}

/* Appends f's names to a scope, shifted by `offset`, at `level`. */
static int scope_add(scope_entry_t **sc, int *n, const tm_bound_from_t *f, int offset, int level)
{
    for (int i = 0; i < f->nranges; i++) {
        if (grow((void **)sc, *n, sizeof(**sc)) != 0)
            return TM_ENOMEM;
        scope_entry_t *e = &(*sc)[(*n)++];
        e->name = f->ranges[i].name;
        e->schema = f->ranges[i].schema;
        e->offset = f->ranges[i].offset + offset;
        e->level = level;
    }
    return 0;
}

/* Binds an expression over one item alone (its own layout). */
static int bind_over(bctx_t *b, tm_bound_query_t *q, const tm_bound_from_t *f, json_t *node,
                     tm_expr_t **out)
{
    scope_entry_t *sc = NULL;
    int n = 0;
    int rc = scope_add(&sc, &n, f, 0, 0);
    qctx_t qc;
    qctx_over(&qc, b, q, f->schema, sc, n);
    if (rc == 0)
        rc = bind_expr(&qc, node, MODE_PLAIN, out);
    free(sc);
    return rc;
}

static bool is_eq_node(json_t *node, json_t **l, json_t **r)
{
    json_t *ae = json_object_get(node, "A_Expr");
    const char *kind = ae ? jstr(ae, "kind") : NULL;
    const char *op = ae ? last_name(json_object_get(ae, "name")) : NULL;
    if (kind == NULL || op == NULL || strcmp(kind, "AEXPR_OP") != 0 || strcmp(op, "=") != 0)
        return false;
    *l = json_object_get(ae, "lexpr");
    *r = json_object_get(ae, "rexpr");
    return *l != NULL && *r != NULL;
}

enum { SIDE_NONE = 0, SIDE_LEFT = 1, SIDE_RIGHT = 2, SIDE_BOTH = 3 };

static int side_of(const qctx_t *qc, int nleft)
{
    if (qc->used_min < 0)
        return SIDE_NONE;
    int s = 0;
    if (qc->used_min < nleft)
        s |= SIDE_LEFT;
    if (qc->used_max >= nleft)
        s |= SIDE_RIGHT;
    return s;
}

/* What a join is made of (make_join). */
typedef struct join_in {
    tm_bound_join_kind_t kind;
    json_t *conj;      /* conjunct parse nodes: ON, or the subquery's WHERE */
    json_t *in_left;   /* IN: the tested expression (over left) … */
    json_t *in_right;  /* … and the subquery's select-list item (over right) */
    bool not_in;
    bool subquery;     /* right is a subquery's FROM; left the enclosing query's */
    const char *what;  /* "JOIN", "EXISTS", "IN", … for messages */
    int location;
} join_in_t;

/* Appends computed keys to a side: its `ext`, and `schema` = raw ++ ext. */
static int side_key(tm_bound_from_t *f, tm_expr_t *e, int *col)
{
    int c = tm_expr_column_index(e);
    if (c >= 0 && c < f->raw->ncols) {
        *col = c;
        return 0;
    }
    if (grow((void **)&f->ext, f->next, sizeof(*f->ext)) != 0)
        return TM_ENOMEM;
    f->ext[f->next] = e;
    *col = f->raw->ncols + f->next;
    f->next++;
    return 0;
}

static int side_finish(tm_bound_from_t *f)
{
    if (f->next == 0)
        return 0;
    tm_schema_t *s = tm_schema_new(f->raw->ncols + f->next);
    if (s == NULL)
        return TM_ENOMEM;
    int rc = 0;
    for (int i = 0; rc == 0 && i < f->raw->ncols; i++)
        rc = copy_col(&s->cols[i], &f->raw->cols[i], false);
    for (int k = 0; rc == 0 && k < f->next; k++) {
        char nm[32];
        snprintf(nm, sizeof(nm), "$key%d", k + 1);
        rc = make_schema_col(s, f->raw->ncols + k, nm, f->ext[k]);
    }
    if (rc == 0 && tm_schema_finish(s) != 0)
        rc = TM_EINVAL;
    if (rc != 0) {
        tm_schema_unref(s);
        return rc;
    }
    tm_schema_unref(f->schema);
    f->schema = s;
    return 0;
}

static int check_bool(bctx_t *b, tm_expr_t *e, json_t *node, const char *what)
{
    const tm_expr_type_t *t = tm_expr_type(e);
    if (t->type == TM_T_BOOL)
        return 0;
    char tn[64];
    return err_at(b, node_location(node), TM_ESQL, "argument of %s must be type boolean, not "
                  "type %s", what, tm_expr_type_name(t, tn, sizeof(tn)));
}

/*
 * Joins L and R (both consumed: owned by *out, or freed on error) on the
 * conjuncts of `in` (see bind.h, Joins).
 */
/* ---- interval joins: time bounds in a join's residual (bind.h, tm_bound_from_t) ---- */

/* A term `col` or `col ± constant interval` of a time bound, over the join's layout. */
static bool time_term(qctx_t *qc, json_t *node, int *col, int64_t *off_us)
{
    json_t *ae = json_object_get(node, "A_Expr");
    json_t *cref = node;
    int sign = 0;
    *off_us = 0;
    if (ae != NULL) {
        const char *kind = jstr(ae, "kind"), *op = last_name(json_object_get(ae, "name"));
        if (kind == NULL || strcmp(kind, "AEXPR_OP") != 0 || op == NULL ||
            (strcmp(op, "+") != 0 && strcmp(op, "-") != 0))
            return false;
        sign = op[0] == '+' ? 1 : -1;
        cref = json_object_get(ae, "lexpr");
    }
    json_t *cr = json_object_get(cref, "ColumnRef");
    if (cr == NULL || resolve_column(qc, cr, col) != 0)
        return false;
    tm_type_t t = qc->in->cols[*col].type;
    if (t != TM_T_TIMESTAMP && t != TM_T_TIMESTAMPTZ)
        return false;
    if (sign == 0)
        return true;
    tm_expr_t *c = NULL;
    if (bind_expr(qc, json_object_get(ae, "rexpr"), MODE_PLAIN, &c) != 0 ||
        !tm_expr_is_constant(c) || tm_expr_type(c)->type != TM_T_INTERVAL)
        return false;
    tm_arena_t arena;
    tm_arena_init(&arena, 1024);
    tm_eval_env_t env = {&arena, 0};
    tm_datum_t d;
    bool isnull = true;
    char why[256];
    int rc = tm_expr_eval(c, NULL, &env, &d, &isnull, why, sizeof(why));
    tm_arena_release(&arena);
    /* A month is not a fixed number of microseconds: such a bound is only a condition. */
    if (rc != 0 || isnull || d.u.iv.months != 0)
        return false;
    *off_us = sign * d.u.iv.us;
    return true;
}

/*
 * Whether conjunct `node` bounds the left time column by the right one;
 * narrows J's bounds when it does.  `nl` = the left side's width.
 */
static bool time_bound(qctx_t *qc, json_t *node, int nl, tm_bound_from_t *J, bool *have_lo,
                       bool *have_hi)
{
    /* A failed resolution is reported where the conjunct is bound for real. */
    char *saved = qc->b->errstr;
    size_t saved_size = qc->b->errstr_size;
    char scratch[256];
    qc->b->errstr = scratch;
    qc->b->errstr_size = sizeof(scratch);
    json_t *ae = json_object_get(node, "A_Expr");
    const char *kind = jstr(ae, "kind"), *op = last_name(json_object_get(ae, "name"));
    json_t *l = json_object_get(ae, "lexpr"), *r = json_object_get(ae, "rexpr");
    int ca, cb, cc;
    int64_t oa, ob, oc;
    bool ok = false;
    int64_t lo = INT64_MIN, hi = INT64_MAX;
    int tl = -1, tr = -1;
    if (kind != NULL && strcmp(kind, "AEXPR_BETWEEN") == 0) {
        json_t *bounds = json_is_array(r) ? r : json_object_get(json_object_get(r, "List"),
                                                                   "items");
        if (json_array_size(bounds) == 2 && time_term(qc, l, &ca, &oa) &&
            time_term(qc, json_array_get(bounds, 0), &cb, &ob) &&
            time_term(qc, json_array_get(bounds, 1), &cc, &oc) && cb == cc &&
            (ca < nl) != (cb < nl) && oa == 0) {
            if (ca < nl) { /* l BETWEEN r + ob AND r + oc */
                tl = ca, tr = cb - nl, lo = ob, hi = oc;
            } else { /* r BETWEEN l + ob AND l + oc: r - oc <= l <= r - ob */
                tl = cb, tr = ca - nl, lo = -oc, hi = -ob;
            }
            ok = true;
        }
    } else if (kind != NULL && strcmp(kind, "AEXPR_OP") == 0 && op != NULL &&
               (strcmp(op, "<") == 0 || strcmp(op, "<=") == 0 || strcmp(op, ">") == 0 ||
                strcmp(op, ">=") == 0) &&
               time_term(qc, l, &ca, &oa) && time_term(qc, r, &cb, &ob) &&
               (ca < nl) != (cb < nl)) {
        /* ca + oa OP cb + ob, as left OP right + c. */
        bool lt = op[0] == '<', eq = op[1] == '=';
        int64_t c;
        if (ca < nl) {
            tl = ca, tr = cb - nl, c = ob - oa;
        } else {
            tl = cb, tr = ca - nl, c = oa - ob, lt = !lt;
        }
        if (lt)
            hi = eq ? c : c - 1;
        else
            lo = eq ? c : c + 1;
        ok = true;
    }
    qc->b->errstr = saved;
    qc->b->errstr_size = saved_size;
    if (!ok)
        return false;
    /* Every bound must relate the same two columns (and types). */
    if (J->interval && (J->time_left != tl || J->time_right != tr))
        return false;
    if (qc->in->cols[tl].type != qc->in->cols[nl + tr].type)
        return false;
    if (!J->interval) {
        J->interval = true;
        J->time_left = tl;
        J->time_right = tr;
        J->lower_us = INT64_MIN;
        J->upper_us = INT64_MAX;
    }
    if (lo != INT64_MIN) {
        *have_lo = true;
        J->lower_us = lo > J->lower_us ? lo : J->lower_us;
    }
    if (hi != INT64_MAX) {
        *have_hi = true;
        J->upper_us = hi < J->upper_us ? hi : J->upper_us;
    }
    return true;
}

static int make_join(bctx_t *b, tm_bound_query_t *q, const join_in_t *in, tm_bound_from_t *L,
                     tm_bound_from_t *R, tm_bound_from_t **out)
{
    *out = NULL;
    tm_bound_from_t *J = from_new(in->location);
    scope_entry_t *sc = NULL;
    int nsc = 0;
    tm_schema_t *cat = NULL;
    tm_expr_t **lk = NULL, **rk = NULL, **lf = NULL, **rf = NULL;
    json_t **resid = NULL;
    int nk = 0, nlf = 0, nrf = 0, nres = 0;
    int rc = J ? 0 : TM_ENOMEM;
    if (rc == 0) {
        J->kind = in->kind;
        J->left = L;
        J->right = R;
        L = R = NULL;
    } else {
        tm_bound_from_free(L);
        tm_bound_from_free(R);
        return rc;
    }
    L = J->left;
    R = J->right;
    char err[1024];
    int nl = L->schema->ncols;
    bool filter_left = in->kind == TM_BOUND_INNER || in->kind == TM_BOUND_RIGHT;
    bool filter_right = in->kind != TM_BOUND_RIGHT && in->kind != TM_BOUND_FULL;
    /* Names: the enclosing query's are one level out when the right is a subquery. */
    cat = concat_schema(L->schema, R->schema, false, false);
    rc = cat ? 0 : TM_ENOMEM;
    if (rc == 0)
        rc = scope_add(&sc, &nsc, L, 0, in->subquery ? 1 : 0);
    if (rc == 0)
        rc = scope_add(&sc, &nsc, R, nl, 0);
    size_t nconj = json_array_size(in->conj);
    for (size_t i = 0; rc == 0 && i < nconj; i++) {
        json_t *c = json_array_get(in->conj, i), *a = NULL, *bb = NULL;
        qctx_t qc;
        tm_expr_t *e = NULL;
        qctx_over(&qc, b, q, cat, sc, nsc);
        if ((rc = bind_expr(&qc, c, MODE_PLAIN, &e)) != 0 ||
            (rc = check_bool(b, e, c, in->subquery ? "WHERE" : "JOIN/ON")) != 0)
            break;
        int side = side_of(&qc, nl);
        if (in->not_in && (side & SIDE_LEFT))
            rc = err_at(b, node_location(c), TM_EUNSUPPORTED,
                        "NOT IN over a correlated subquery is not supported (NULLs make its "
                        "answer depend on every correlated row); write NOT EXISTS (… WHERE "
                        "inner = outer AND …) if the columns cannot be NULL");
        if (rc != 0)
            break;
        if (side == SIDE_BOTH && is_eq_node(c, &a, &bb)) {
            qctx_t qa, qb;
            tm_expr_t *ea = NULL, *eb = NULL;
            qctx_over(&qa, b, q, cat, sc, nsc);
            qctx_over(&qb, b, q, cat, sc, nsc);
            if (bind_expr(&qa, a, MODE_PLAIN, &ea) == 0 && bind_expr(&qb, bb, MODE_PLAIN, &eb) == 0) {
                int sa = side_of(&qa, nl), sb = side_of(&qb, nl);
                if (sa == SIDE_RIGHT && sb == SIDE_LEFT) {
                    json_t *t = a;
                    a = bb;
                    bb = t;
                    sa = SIDE_LEFT;
                    sb = SIDE_RIGHT;
                }
                if (sa == SIDE_LEFT && sb == SIDE_RIGHT) {
                    if (grow((void **)&lk, nk, sizeof(*lk)) != 0 ||
                        grow((void **)&rk, nk, sizeof(*rk)) != 0) {
                        rc = TM_ENOMEM;
                        break;
                    }
                    if ((rc = bind_over(b, q, L, a, &lk[nk])) != 0 ||
                        (rc = bind_over(b, q, R, bb, &rk[nk])) != 0)
                        break;
                    nk++;
                    continue;
                }
            }
        }
        if ((side == SIDE_LEFT && filter_left) || (side == SIDE_RIGHT && filter_right)) {
            bool left = side == SIDE_LEFT;
            tm_expr_t ***v = left ? &lf : &rf;
            int *n = left ? &nlf : &nrf;
            if (grow((void **)v, *n, sizeof(**v)) != 0) {
                rc = TM_ENOMEM;
                break;
            }
            if ((rc = bind_over(b, q, left ? L : R, c, &(*v)[*n])) != 0)
                break;
            (*n)++;
            continue;
        }
        if (grow((void **)&resid, nres, sizeof(*resid)) != 0) {
            rc = TM_ENOMEM;
            break;
        }
        resid[nres++] = c;
    }
    if (rc == 0 && in->in_left != NULL) {
        /* x [NOT] IN (SELECT y …): the pair (x, y). */
        if (grow((void **)&lk, nk, sizeof(*lk)) != 0 || grow((void **)&rk, nk, sizeof(*rk)) != 0)
            rc = TM_ENOMEM;
        if (rc == 0 && (rc = bind_over(b, q, L, in->in_left, &lk[nk])) == 0 &&
            (rc = bind_over(b, q, R, in->in_right, &rk[nk])) == 0) {
            /* NOT IN needs its NULL rule only when a NULL can occur on either side. */
            J->null_aware = in->not_in && !(tm_expr_not_null(lk[nk]) && tm_expr_not_null(rk[nk]));
            nk++;
        }
    }
    if (rc == 0 && nk == 0)
        rc = err_at(b, in->location, TM_EUNSUPPORTED,
                    in->subquery
                        ? "%s needs a correlation equality between the subquery and the outer "
                          "query (WHERE inner.col = outer.col), which becomes the join key; an "
                          "uncorrelated subquery is not supported"
                        : "%s needs an equality between an expression of each side (ON a.x = "
                          "b.y), which becomes the join key; cross joins and joins on other "
                          "conditions only are not supported (an interval join such as a.ts "
                          "BETWEEN b.ts - INTERVAL … AND b.ts needs a key equality too)",
                    in->what);
    /* Key pairs: one type per pair (their common type), keys as columns of each side. */
    if (rc == 0) {
        J->left_keys = calloc((size_t)nk, sizeof(int));
        J->right_keys = calloc((size_t)nk, sizeof(int));
        rc = J->left_keys && J->right_keys ? 0 : TM_ENOMEM;
        J->nkeys = nk;
    }
    for (int k = 0; rc == 0 && k < nk; k++) {
        tm_expr_t *eq = NULL;
        const tm_expr_type_t *lt = tm_expr_type(lk[k]), *rt = tm_expr_type(rk[k]);
        if ((rc = tm_expr_operator(b->pool, "=", lk[k], rk[k], &eq, err, sizeof(err))) != 0) {
            rc = builder_err(b, in->location, rc, err);
            break;
        }
        if (lt->type != rt->type) {
            tm_expr_t *args[2] = {lk[k], rk[k]}, *co = NULL;
            if ((rc = tm_expr_call(b->pool, "coalesce", args, 2, &co, err, sizeof(err))) != 0) {
                rc = builder_err(b, in->location, rc, err);
                break;
            }
            tm_expr_type_t ct = *tm_expr_type(co);
            if (lt->type != ct.type &&
                (rc = tm_expr_cast(b->pool, lk[k], &ct, &lk[k], err, sizeof(err))) != 0)
                rc = builder_err(b, in->location, rc, err);
            if (rc == 0 && rt->type != ct.type &&
                (rc = tm_expr_cast(b->pool, rk[k], &ct, &rk[k], err, sizeof(err))) != 0)
                rc = builder_err(b, in->location, rc, err);
            if (rc != 0)
                break;
        }
        if ((rc = side_key(L, lk[k], &J->left_keys[k])) == 0)
            rc = side_key(R, rk[k], &J->right_keys[k]);
    }
    if (rc == 0)
        rc = and_all(b, lf, nlf, in->location, &L->filter);
    if (rc == 0)
        rc = and_all(b, rf, nrf, in->location, &R->filter);
    if (rc == 0)
        rc = side_finish(L);
    if (rc == 0)
        rc = side_finish(R);
    /* The join's own layout and names. */
    if (rc == 0) {
        bool semi = in->kind == TM_BOUND_SEMI || in->kind == TM_BOUND_ANTI;
        J->raw = semi ? tm_schema_ref(L->schema)
                      : concat_schema(L->schema, R->schema,
                                      in->kind == TM_BOUND_RIGHT || in->kind == TM_BOUND_FULL,
                                      in->kind == TM_BOUND_LEFT || in->kind == TM_BOUND_FULL);
        J->schema = J->raw ? tm_schema_ref(J->raw) : NULL;
        rc = J->raw ? 0 : TM_ENOMEM;
        for (int i = 0; rc == 0 && i < L->nranges; i++)
            rc = add_range(J, L->ranges[i].name, L->ranges[i].schema, L->ranges[i].offset);
        for (int i = 0; rc == 0 && !semi && i < R->nranges; i++)
            rc = add_range(J, R->ranges[i].name, R->ranges[i].schema,
                           R->ranges[i].offset + L->schema->ncols);
    }
    /* The residual, over the final layouts (computed keys included). */
    if (rc == 0 && nres > 0) {
        tm_schema_unref(cat);
        free(sc);
        sc = NULL;
        nsc = 0;
        cat = concat_schema(L->schema, R->schema, false, false);
        rc = cat ? 0 : TM_ENOMEM;
        if (rc == 0)
            rc = scope_add(&sc, &nsc, L, 0, in->subquery ? 1 : 0);
        if (rc == 0)
            rc = scope_add(&sc, &nsc, R, L->schema->ncols, 0);
        tm_expr_t **v = calloc((size_t)nres, sizeof(*v));
        tm_expr_t **rest = calloc((size_t)nres, sizeof(*rest));
        bool *tb = calloc((size_t)nres, sizeof(bool));
        bool have_lo = false, have_hi = false;
        int nrest = 0;
        if (v == NULL || rest == NULL || tb == NULL)
            rc = TM_ENOMEM;
        bool pairs = in->kind == TM_BOUND_INNER || in->kind == TM_BOUND_LEFT ||
                     in->kind == TM_BOUND_RIGHT || in->kind == TM_BOUND_FULL;
        for (int i = 0; rc == 0 && i < nres; i++) {
            qctx_t qc;
            qctx_over(&qc, b, q, cat, sc, nsc);
            rc = bind_expr(&qc, resid[i], MODE_PLAIN, &v[i]);
            if (rc == 0 && pairs && !in->subquery)
                tb[i] = time_bound(&qc, resid[i], L->schema->ncols, J, &have_lo, &have_hi);
            if (rc == 0 && !tb[i])
                rest[nrest++] = v[i];
        }
        if (rc == 0)
            rc = and_all(b, v, nres, in->location, &J->residual);
        /* An interval join needs both bounds; one alone is only a condition. */
        if (rc == 0 && J->interval && !(have_lo && have_hi))
            J->interval = false;
        if (rc == 0 && J->interval)
            rc = and_all(b, rest, nrest, in->location, &J->interval_rest);
        free(v);
        free(rest);
        free(tb);
    }
    tm_schema_unref(cat);
    free(sc);
    free(lk);
    free(rk);
    free(lf);
    free(rf);
    free(resid);
    if (rc != 0) {
        tm_bound_from_free(J);
        return rc;
    }
    *out = J;
    return 0;
}

static int join_kind(const char *jt, tm_bound_join_kind_t *kind)
{
    static const struct {
        const char *name;
        tm_bound_join_kind_t kind;
    } kinds[] = {{"JOIN_INNER", TM_BOUND_INNER},
                 {"JOIN_LEFT", TM_BOUND_LEFT},
                 {"JOIN_RIGHT", TM_BOUND_RIGHT},
                 {"JOIN_FULL", TM_BOUND_FULL}};
    for (size_t i = 0; jt && i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (strcmp(kinds[i].name, jt) == 0) {
            *kind = kinds[i].kind;
            return 0;
        }
    return TM_EUNSUPPORTED;
}

/* A FROM item: a leaf, or a JoinExpr bound recursively into a join. */
static int bind_from_item(bctx_t *b, tm_bound_query_t *q, json_t *item, int location,
                          tm_bound_from_t **out)
{
    json_t *body;
    const char *kind = node_kind(item, &body);
    int loc = node_location(item) >= 0 ? node_location(item) : location;
    *out = NULL;
    if (kind == NULL || !json_is_object(body))
        return err_at(b, loc, TM_ESQL, "malformed FROM item");
    if (strcmp(kind, "JoinExpr") != 0) {
        tm_bound_from_t *f = from_new(loc);
        if (f == NULL)
            return TM_ENOMEM;
        int rc = bind_leaf(b, item, loc, f);
        if (rc == 0 && f->window != NULL)
            rc = err_at(b, f->window->location, TM_EUNSUPPORTED,
                        "a window function (TUMBLE, HOP, SESSION, CUMULATE) can only be the one "
                        "item of a FROM clause for now: aggregate it in a view or subquery, then "
                        "join that");
        if (rc == 0 && f->raw == NULL)
            rc = err_at(b, loc, TM_ESQL,
                        "'%s' declares no columns (CREATE TABLE %s () …), so it cannot be "
                        "joined; declare its columns",
                        f->name, f->name);
        if (rc == 0) {
            f->schema = tm_schema_ref(f->raw);
            rc = add_range(f, f->name, f->raw, 0);
        }
        if (rc != 0) {
            tm_bound_from_free(f);
            return rc;
        }
        *out = f;
        return 0;
    }
    json_t *larg = json_object_get(body, "larg"), *rarg = json_object_get(body, "rarg");
    int lloc = node_location(larg) >= 0 ? node_location(larg) : loc;
    int rloc = node_location(rarg) >= 0 ? node_location(rarg) : lloc;
    tm_bound_join_kind_t jk;
    if (join_kind(jstr(body, "jointype"), &jk) != 0)
        return err_at(b, rloc, TM_EUNSUPPORTED, "this kind of JOIN (%s) is not supported",
                      jstr(body, "jointype") ? jstr(body, "jointype") : "?");
    if (json_is_true(json_object_get(body, "isNatural")))
        return err_at(b, rloc, TM_EUNSUPPORTED,
                      "NATURAL JOIN is not supported; name the join columns: JOIN … ON a.x = "
                      "b.x");
    if (json_object_get(body, "usingClause") != NULL)
        return err_at(b, rloc, TM_EUNSUPPORTED,
                      "JOIN … USING (…) is not supported yet; write JOIN … ON a.col = b.col");
    if (json_object_get(body, "alias") != NULL)
        return err_at(b, rloc, TM_EUNSUPPORTED,
                      "an alias on a parenthesised join is not supported; alias its tables");
    if (json_object_get(body, "quals") == NULL)
        return err_at(b, rloc, TM_EUNSUPPORTED,
                      "CROSS JOIN is not supported: a join needs an equality between its sides "
                      "(JOIN … ON a.x = b.y)");
    tm_bound_from_t *L = NULL, *R = NULL;
    int rc = bind_from_item(b, q, larg, lloc, &L);
    if (rc == 0)
        rc = bind_from_item(b, q, rarg, rloc, &R);
    json_t *conj = json_array();
    if (rc == 0 && conj == NULL)
        rc = TM_ENOMEM;
    if (rc != 0) {
        tm_bound_from_free(L);
        tm_bound_from_free(R);
        json_decref(conj);
        return rc;
    }
    conjuncts(json_object_get(body, "quals"), conj);
    join_in_t in = {jk, conj, NULL, NULL, false, false, "JOIN", rloc};
    rc = make_join(b, q, &in, L, R, out);
    json_decref(conj);
    return rc;
}

/* The SubLink of a WHERE conjunct `[NOT] EXISTS (…)` / `x [NOT] IN (SELECT …)`, or NULL. */
static json_t *sublink_of(json_t *node, bool *negated)
{
    *negated = false;
    json_t *be = json_object_get(node, "BoolExpr");
    const char *op = be ? jstr(be, "boolop") : NULL;
    if (op != NULL && strcmp(op, "NOT_EXPR") == 0 &&
        json_array_size(json_object_get(be, "args")) == 1) {
        *negated = true;
        node = json_array_get(json_object_get(be, "args"), 0);
    }
    json_t *sl = json_object_get(node, "SubLink");
    const char *t = sl ? jstr(sl, "subLinkType") : NULL;
    if (t == NULL || (strcmp(t, "EXISTS_SUBLINK") != 0 && strcmp(t, "ANY_SUBLINK") != 0))
        return NULL;
    return sl;
}

/* Joins `*acc` with the subquery of a WHERE conjunct as a SEMI or ANTI join. */
static int bind_sublink(bctx_t *b, tm_bound_query_t *q, json_t *sl, bool negated, int location,
                        tm_bound_from_t **acc)
{
    bool exists = strcmp(jstr(sl, "subLinkType"), "EXISTS_SUBLINK") == 0;
    json_t *lsl = json_object_get(sl, "location");
    int loc = json_is_integer(lsl) ? (int)json_integer_value(lsl) : location;
    json_t *sub = json_object_get(json_object_get(sl, "subselect"), "SelectStmt");
    const char *what = exists ? (negated ? "NOT EXISTS" : "EXISTS") : (negated ? "NOT IN" : "IN");
    if (sub == NULL)
        return err_at(b, loc, TM_ESQL, "malformed subquery");
    int rc = check_clauses(b, sub, loc);
    if (rc != 0)
        return rc;
    json_t *targets = json_object_get(sub, "targetList");
    if (json_array_size(json_object_get(sub, "groupClause")) > 0 ||
        json_object_get(sub, "havingClause") != NULL || has_aggregate(targets) ||
        json_object_get(sub, "distinctClause") != NULL)
        return err_at(b, loc, TM_EUNSUPPORTED,
                      "a subquery of %s with GROUP BY, HAVING, DISTINCT or aggregates is not "
                      "supported; declare it as a view and join it",
                      what);
    json_t *from = json_object_get(sub, "fromClause");
    if (json_array_size(from) != 1)
        return err_at(b, loc, TM_EUNSUPPORTED,
                      json_array_size(from) == 0
                          ? "the subquery of %s reads no table: add FROM <table>"
                          : "the subquery of %s reads several FROM items; join them with JOIN … "
                            "ON inside it, or use a view",
                      what);
    json_t *test = NULL, *target = NULL;
    if (!exists) {
        const char *op = last_name(json_object_get(sl, "operName"));
        test = json_object_get(sl, "testexpr");
        if (op != NULL && strcmp(op, "=") != 0)
            return err_at(b, loc, TM_EUNSUPPORTED,
                          "%s ANY/ALL (subquery) is not supported; IN (subquery) and EXISTS are",
                          op);
        if (test == NULL || json_object_get(test, "RowExpr") != NULL)
            return err_at(b, loc, TM_EUNSUPPORTED,
                          "%s with a row of several columns is not supported; compare one "
                          "expression",
                          what);
        if (json_array_size(targets) != 1)
            return err_at(b, loc, TM_ESQL, "subquery has too %s columns: %s (subquery) needs "
                          "exactly one",
                          json_array_size(targets) > 1 ? "many" : "few", what);
        target = json_object_get(json_object_get(json_array_get(targets, 0), "ResTarget"), "val");
        if (target == NULL || is_star(target))
            return err_at(b, loc, TM_ESQL, "%s (subquery) needs the subquery to select one "
                          "expression, not *",
                          what);
    }
    tm_bound_from_t *R = NULL;
    b->depth++;
    rc = bind_from_item(b, q, json_array_get(from, 0), loc, &R);
    b->depth--;
    if (rc != 0)
        return rc;
    json_t *conj = json_array();
    if (conj == NULL) {
        tm_bound_from_free(R);
        return TM_ENOMEM;
    }
    conjuncts(json_object_get(sub, "whereClause"), conj);
    join_in_t in = {negated ? TM_BOUND_ANTI : TM_BOUND_SEMI, conj, test, target,
                    negated && !exists, true, what, loc};
    tm_bound_from_t *J = NULL;
    rc = make_join(b, q, &in, *acc, R, &J);
    json_decref(conj);
    *acc = J; /* make_join consumed the old tree either way */
    return rc;
}

/*
 * Binds FROM (and, for joins, the WHERE conjuncts that are join conditions
 * or subqueries) into q.  *where is the WHERE left to apply after the FROM:
 * the statement's own, or a new node (*owned, to be released) of the
 * conjuncts that remain.
 */
static int bind_from(bctx_t *b, tm_bound_query_t *q, json_t *sel, int location, json_t **where,
                     json_t **owned)
{
    json_t *from = json_object_get(sel, "fromClause");
    *where = json_object_get(sel, "whereClause");
    *owned = NULL;
    if (json_array_size(from) == 0)
        return err_at(b, location, TM_ESQL,
                      "a streaming query reads a source: add FROM <table>");
    json_t *item = json_array_get(from, 0), *body;
    const char *kind = node_kind(item, &body);
    json_t *conj = json_array();
    if (conj == NULL)
        return TM_ENOMEM;
    conjuncts(*where, conj);
    bool subs = false;
    for (size_t i = 0; i < json_array_size(conj); i++) {
        bool neg;
        subs |= sublink_of(json_array_get(conj, i), &neg) != NULL;
    }
    if (json_array_size(from) == 1 && !subs && (kind == NULL || strcmp(kind, "JoinExpr") != 0)) {
        /* One table, view or subquery: its layout is the query's, as it always was. */
        json_decref(conj);
        tm_bound_from_t f;
        memset(&f, 0, sizeof(f));
        f.table = -1;
        int rc = bind_leaf(b, item, location, &f);
        q->table = f.table;
        q->sub = f.sub;
        q->from_view = f.view;
        q->from_name = f.name;
        q->in_schema = f.raw;
        q->window = f.window;
        return rc;
    }
    /* The items of a comma list, then joined left to right. */
    size_t nitems = json_array_size(from);
    tm_bound_from_t **items = calloc(nitems, sizeof(*items));
    json_t *rest = json_array();
    int rc = items && rest ? 0 : TM_ENOMEM;
    for (size_t i = 0; rc == 0 && i < nitems; i++)
        rc = bind_from_item(b, q, json_array_get(from, i), location, &items[i]);
    /* Each WHERE conjunct over several items joins the last of them (a comma join's ON). */
    json_t **step_conj = calloc(nitems, sizeof(*step_conj));
    if (rc == 0 && step_conj == NULL)
        rc = TM_ENOMEM;
    for (size_t i = 0; rc == 0 && i < nitems; i++)
        if ((step_conj[i] = json_array()) == NULL)
            rc = TM_ENOMEM;
    scope_entry_t *sc = NULL;
    int nsc = 0, off = 0;
    int *starts = calloc(nitems + 1, sizeof(int));
    tm_schema_t *all = NULL;
    if (rc == 0 && starts == NULL)
        rc = TM_ENOMEM;
    for (size_t i = 0; rc == 0 && i < nitems; i++) {
        starts[i] = off;
        rc = scope_add(&sc, &nsc, items[i], off, 0);
        tm_schema_t *s = all ? concat_schema(all, items[i]->schema, false, false)
                             : tm_schema_ref(items[i]->schema);
        tm_schema_unref(all);
        all = s;
        if (s == NULL)
            rc = TM_ENOMEM;
        off += items[i]->schema->ncols;
    }
    for (size_t i = 0; rc == 0 && i < json_array_size(conj); i++) {
        json_t *c = json_array_get(conj, i);
        bool neg;
        if (sublink_of(c, &neg) != NULL || nitems < 2) {
            json_array_append(rest, c);
            continue;
        }
        qctx_t qc;
        tm_expr_t *e = NULL;
        qctx_over(&qc, b, q, all, sc, nsc);
        if ((rc = bind_expr(&qc, c, MODE_PLAIN, &e)) != 0)
            break;
        size_t last = 0;
        for (size_t k = 0; qc.used_max >= 0 && k < nitems; k++)
            if (qc.used_max >= starts[k])
                last = k;
        size_t first = 0;
        for (size_t k = 0; qc.used_min >= 0 && k < nitems; k++)
            if (qc.used_min >= starts[k])
                first = k;
        if (qc.used_min >= 0 && last > 0 && first < last)
            json_array_append(step_conj[last], c);
        else
            json_array_append(rest, c);
    }
    tm_schema_unref(all);
    free(sc);
    free(starts);
    tm_bound_from_t *acc = rc == 0 ? items[0] : NULL;
    if (rc == 0)
        items[0] = NULL;
    for (size_t i = 1; rc == 0 && i < nitems; i++) {
        int l = items[i]->location;
        join_in_t in = {TM_BOUND_INNER, step_conj[i], NULL, NULL, false, false,
                        "a join of FROM items (FROM a, b WHERE a.x = b.y)", l};
        tm_bound_from_t *J = NULL;
        rc = make_join(b, q, &in, acc, items[i], &J);
        items[i] = NULL;
        acc = J;
    }
    /* [NOT] EXISTS and [NOT] IN (subquery): semi and anti joins, in WHERE order. */
    json_t *left = json_array();
    if (rc == 0 && left == NULL)
        rc = TM_ENOMEM;
    for (size_t i = 0; rc == 0 && i < json_array_size(rest); i++) {
        bool neg;
        json_t *sl = sublink_of(json_array_get(rest, i), &neg);
        if (sl == NULL)
            json_array_append(left, json_array_get(rest, i));
        else
            rc = bind_sublink(b, q, sl, neg, location, &acc);
    }
    for (size_t i = 0; items && i < nitems; i++)
        tm_bound_from_free(items[i]);
    free(items);
    for (size_t i = 0; step_conj && i < nitems; i++)
        json_decref(step_conj[i]);
    free(step_conj);
    json_decref(rest);
    json_decref(conj);
    if (rc == 0) {
        q->from = acc;
        q->table = -1;
        q->from_name = strdup(acc->kind == TM_BOUND_LEAF ? acc->name : "the join");
        q->in_schema = tm_schema_ref(acc->schema);
        acc = NULL;
        size_t n = json_array_size(left);
        if (n == 1)
            *where = *owned = json_incref(json_array_get(left, 0));
        else if (n > 1)
            *where = *owned = json_pack("{s:{s:s,s:O,s:i}}", "BoolExpr", "boolop", "AND_EXPR",
                                        "args", left, "location",
                                        node_location(json_array_get(left, 0)));
        else
            *where = NULL;
    }
    tm_bound_from_free(acc);
    json_decref(left);
    return rc;
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

/* ---- Top-N: row_number() OVER (…) and the filter on it (bind.h, tm_bound_rank_t) ---- */

static bool is_window_call(json_t *val)
{
    json_t *fc = json_object_get(val, "FuncCall");
    return fc != NULL && json_object_get(fc, "over") != NULL;
}

/* A PARTITION BY or ORDER BY item: a bare column of the FROM layout. */
static int rank_column(qctx_t *qc, json_t *node, int location, const char *clause, int *col,
                       tm_expr_t **out)
{
    tm_expr_t *e = NULL;
    int rc = bind_expr(qc, node, MODE_PLAIN, &e);
    *out = e;
    if (rc != 0)
        return rc;
    *col = tm_expr_column_index(e);
    if (*col < 0)
        return err_at(qc->b, node_location(node) >= 0 ? node_location(node) : location,
                      TM_EUNSUPPORTED,
                      "%s of row_number() must name a column; compute the expression in a "
                      "subquery first",
                      clause);
    return 0;
}

static int bind_rank(qctx_t *qc, json_t *val, int location, int mode, int target,
                     tm_expr_t **out)
{
    tm_bound_query_t *q = qc->q;
    json_t *fc = json_object_get(val, "FuncCall");
    const char *name = last_name(json_object_get(fc, "funcname"));
    json_t *over = json_object_get(fc, "over");
    json_t *wd = json_object_get(over, "WindowDef");
    if (wd == NULL)
        wd = over;
    if (name == NULL || strcmp(name, "row_number") != 0)
        return err_at(qc->b, location, TM_EUNSUPPORTED,
                      "window function %s() is not supported; only row_number() OVER "
                      "(PARTITION BY … ORDER BY …) filtered by rn <= N (Top-N) is",
                      name ? name : "?");
    if (json_array_size(json_object_get(fc, "args")) > 0)
        return err_at(qc->b, location, TM_ESQL, "row_number() takes no arguments");
    if (mode != MODE_PLAIN)
        return unsupported(qc->b, location,
                           "row_number() in a query with GROUP BY or aggregates (rank the "
                           "aggregate's rows in an enclosing query)");
    if (q->rank != NULL)
        return unsupported(qc->b, location, "more than one row_number() in one select list");
    if (jstr(wd, "refname") != NULL)
        return unsupported(qc->b, location, "named windows (OVER w)");
    if (qc->in == NULL)
        return no_columns_error(qc, location);
    json_t *parts = json_object_get(wd, "partitionClause");
    json_t *orders = json_object_get(wd, "orderClause");
    if (json_array_size(orders) == 0)
        return err_at(qc->b, location, TM_EUNSUPPORTED,
                      "row_number() needs ORDER BY inside OVER (…): Top-N ranks rows by it");
    tm_bound_rank_t *rk = calloc(1, sizeof(*rk));
    size_t np = json_array_size(parts), no = json_array_size(orders);
    if (rk == NULL)
        return TM_ENOMEM;
    q->rank = rk;
    rk->target = target;
    rk->location = location;
    rk->part_targets = calloc(np + 1, sizeof(int));
    rk->order_targets = calloc(no + 1, sizeof(int));
    rk->desc = calloc(no + 1, sizeof(bool));
    rk->nulls_first = calloc(no + 1, sizeof(bool));
    rk->exprs = calloc(np + no + 1, sizeof(tm_expr_t *));
    rk->hidden = calloc(np + no + 1, sizeof(tm_expr_t *));
    if (rk->part_targets == NULL || rk->order_targets == NULL || rk->desc == NULL ||
        rk->nulls_first == NULL || rk->exprs == NULL || rk->hidden == NULL)
        return TM_ENOMEM;
    int rc = 0;
    /* Input columns for now; bind_targets maps them to select-list items at its end. */
    for (size_t i = 0; rc == 0 && i < np; i++)
        rc = rank_column(qc, json_array_get(parts, i), location, "PARTITION BY",
                         &rk->part_targets[rk->npart], &rk->exprs[rk->npart]), rk->npart++;
    for (size_t i = 0; rc == 0 && i < no; i++) {
        json_t *sb = json_object_get(json_array_get(orders, i), "SortBy");
        const char *dir = jstr(sb, "sortby_dir"), *nulls = jstr(sb, "sortby_nulls");
        if (sb == NULL)
            return err_at(qc->b, location, TM_ESQL, "malformed ORDER BY in OVER (…)");
        if (dir != NULL && strcmp(dir, "SORTBY_USING") == 0)
            return unsupported(qc->b, location, "ORDER BY … USING");
        bool desc = dir != NULL && strcmp(dir, "SORTBY_DESC") == 0;
        rk->desc[rk->norder] = desc;
        /* PostgreSQL's default: NULLs sort as larger than any value. */
        rk->nulls_first[rk->norder] =
            nulls != NULL && strcmp(nulls, "SORTBY_NULLS_FIRST") == 0   ? true
            : nulls != NULL && strcmp(nulls, "SORTBY_NULLS_LAST") == 0 ? false
                                                                         : desc;
        rc = rank_column(qc, json_object_get(sb, "node"), location, "ORDER BY",
                         &rk->order_targets[rk->norder], &rk->exprs[np + (size_t)rk->norder]);
        rk->norder++;
    }
    if (rc != 0)
        return rc;
    /* A placeholder of the rank's type (bigint); the planner never evaluates it. */
    tm_expr_t *big = tm_expr_int(qc->b->pool, INT64_MAX);
    *out = big ? tm_expr_column(qc->b->pool, 0, tm_expr_type(big), "row_number()") : NULL;
    return *out ? 0 : TM_ENOMEM;
}

/*
 * Maps the rank's input columns to the select-list items that project them
 * bare, or to hidden items after the select list (bind.h, tm_bound_rank_t).
 */
static int rank_targets(qctx_t *qc)
{
    tm_bound_query_t *q = qc->q;
    tm_bound_rank_t *rk = q->rank;
    for (int pass = 0; pass < 2; pass++) {
        int *cols = pass == 0 ? rk->part_targets : rk->order_targets;
        int n = pass == 0 ? rk->npart : rk->norder;
        tm_expr_t **exprs = pass == 0 ? rk->exprs : rk->exprs + rk->npart;
        for (int i = 0; i < n; i++) {
            int t = -1;
            for (int j = 0; j < q->ntargets && t < 0; j++)
                if (j != rk->target && tm_expr_column_index(q->targets[j]) == cols[i])
                    t = j;
            for (int h = 0; h < rk->nhidden && t < 0; h++)
                if (tm_expr_column_index(rk->hidden[h]) == cols[i])
                    t = q->ntargets + h;
            if (t < 0) {
                t = q->ntargets + rk->nhidden;
                rk->hidden[rk->nhidden++] = exprs[i];
            }
            cols[i] = t;
        }
    }
    return 0;
}

/* The integer constant of an A_Const, if it is one. */
static bool int_const(json_t *node, int64_t *v)
{
    json_t *c = json_object_get(node, "A_Const"), *iv;
    if (c == NULL || (iv = json_object_get(c, "ival")) == NULL)
        return false;
    json_t *x = json_object_get(iv, "ival");
    *v = json_is_integer(x) ? json_integer_value(x) : 0;
    return true;
}

/* True when `node` is a column reference to the subquery's rank column. */
static bool is_rank_ref(qctx_t *qc, json_t *node)
{
    json_t *cr = json_object_get(node, "ColumnRef");
    int idx;
    char *saved = qc->b->errstr;
    size_t saved_size = qc->b->errstr_size;
    char scratch[256];
    if (cr == NULL)
        return false;
    /* A failed resolution is reported later, where the reference is bound. */
    qc->b->errstr = scratch;
    qc->b->errstr_size = sizeof(scratch);
    bool is = resolve_column(qc, cr, &idx) == 0 && idx == qc->q->sub->rank->target;
    qc->b->errstr = saved;
    qc->b->errstr_size = saved_size;
    return is;
}

/* Does the enclosing query read the rank column (or `*`)? */
static bool reads_rank(qctx_t *qc, json_t *node)
{
    if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++)
            if (reads_rank(qc, json_array_get(node, i)))
                return true;
        return false;
    }
    if (!json_is_object(node))
        return false;
    json_t *cr = json_object_get(node, "ColumnRef");
    if (cr != NULL) {
        json_t *f = json_object_get(cr, "fields");
        size_t n = json_array_size(f);
        return (n > 0 && json_object_get(json_array_get(f, n - 1), "A_Star") != NULL) ||
               is_rank_ref(qc, node);
    }
    const char *k;
    json_t *v;
    json_object_foreach(node, k, v) if (reads_rank(qc, v)) return true;
    return false;
}

/*
 * In the query over a ranked subquery: finds the conjuncts of WHERE that
 * bound the rank (rn <= N, rn < N, rn = 1, N >= rn, rn BETWEEN 1 AND N,
 * and lower bounds that keep rank 1), sets the subquery's limit, and
 * replaces *where with the rest (*owned holds a new node, if one was made).
 */
static int rank_filter(qctx_t *qc, json_t *sel, json_t **where, json_t **owned)
{
    tm_bound_rank_t *rk = qc->q->sub->rank;
    json_t *conj = json_array(), *rest = json_array();
    if (conj == NULL || rest == NULL) {
        json_decref(conj);
        json_decref(rest);
        return TM_ENOMEM;
    }
    conjuncts(*where, conj);
    int rc = 0;
    int64_t limit = INT64_MAX;
    bool found = false;
    for (size_t i = 0; rc == 0 && i < json_array_size(conj); i++) {
        json_t *c = json_array_get(conj, i);
        json_t *ae = json_object_get(c, "A_Expr");
        const char *kind = jstr(ae, "kind"), *op = last_name(json_object_get(ae, "name"));
        json_t *l = json_object_get(ae, "lexpr"), *r = json_object_get(ae, "rexpr");
        int64_t k = 0, hi = 0;
        int loc = node_location(c);
        /* BETWEEN's bounds are a List node (an array in older parse trees). */
        json_t *bounds = json_is_array(r) ? r : json_object_get(json_object_get(r, "List"),
                                                                   "items");
        if (kind != NULL && strcmp(kind, "AEXPR_BETWEEN") == 0 && is_rank_ref(qc, l) &&
            json_array_size(bounds) == 2 && int_const(json_array_get(bounds, 0), &k) &&
            int_const(json_array_get(bounds, 1), &hi)) {
            if (k > 1)
                rc = err_at(qc->b, loc, TM_EUNSUPPORTED,
                            "a rank range that does not start at 1 is not supported");
            limit = hi < limit ? hi : limit;
            found = true;
            continue;
        }
        if (kind == NULL || strcmp(kind, "AEXPR_OP") != 0 || op == NULL) {
            json_array_append(rest, c);
            continue;
        }
        const char *o = op;
        if (is_rank_ref(qc, l) && int_const(r, &k)) {
            /* rn OP k */
        } else if (is_rank_ref(qc, r) && int_const(l, &k)) {
            /* k OP rn: mirror the operator. */
            o = strcmp(op, "<") == 0    ? ">"
                : strcmp(op, "<=") == 0 ? ">="
                : strcmp(op, ">") == 0  ? "<"
                : strcmp(op, ">=") == 0 ? "<="
                                        : op;
        } else {
            json_array_append(rest, c);
            continue;
        }
        found = true;
        int64_t n = -1;
        if (strcmp(o, "<=") == 0)
            n = k;
        else if (strcmp(o, "<") == 0)
            n = k == INT64_MIN ? 0 : k - 1;
        else if (strcmp(o, "=") == 0 && k == 1)
            n = 1;
        else if ((strcmp(o, ">=") == 0 && k <= 1) || (strcmp(o, ">") == 0 && k <= 0))
            continue; /* keeps every rank from 1 */
        else
            rc = err_at(qc->b, loc, TM_EUNSUPPORTED,
                        "this filter on row_number() is not supported; Top-N takes rn <= N, "
                        "rn < N or rn = 1");
        if (n >= 0 && n < limit)
            limit = n;
    }
    if (rc == 0 && (!found || limit == INT64_MAX))
        rc = err_at(qc->b, rk->location, TM_EUNSUPPORTED,
                    "row_number() needs a filter on it where the subquery is read: WHERE rn <= "
                    "N, rn < N or rn = 1 (Top-N; an unbounded ranking is not supported)");
    if (rc == 0 && limit < 1)
        rc = err_at(qc->b, rk->location, TM_EUNSUPPORTED,
                    "the filter on row_number() keeps no rank; Top-N needs rn <= N with N >= 1");
    if (rc == 0) {
        rk->limit = limit;
        size_t nr = json_array_size(rest);
        if (nr == 0)
            *where = NULL;
        else if (nr == 1)
            *where = json_array_get(rest, 0);
        else {
            *owned = json_pack("{s:{s:s,s:O,s:i}}", "BoolExpr", "boolop", "AND_EXPR", "args",
                               rest, "location", node_location(*where));
            *where = *owned;
            if (*owned == NULL)
                rc = TM_ENOMEM;
        }
    }
    if (rc == 0) {
        json_t *parts[] = {json_object_get(sel, "targetList"), json_object_get(sel, "groupClause"),
                           json_object_get(sel, "havingClause"), *where};
        for (size_t i = 0; i < sizeof(parts) / sizeof(parts[0]); i++)
            rk->rank_used |= reads_rank(qc, parts[i]);
    }
    json_decref(conj);
    json_decref(rest);
    return rc;
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
            const char *t = NULL;
            if (json_array_size(f) == 2) {
                t = string_node(json_array_get(f, 0));
                bool known = false;
                for (int r = 0; t != NULL && r < qc->nscope; r++)
                    known |= qc->scope[r].level == 0 && qc->scope[r].name &&
                             strcmp(qc->scope[r].name, t) == 0;
                if (!known && (qc->nscope > 0 || t == NULL || qc->qual == NULL ||
                               strcmp(t, qc->qual) != 0)) {
                    rc = err_at(qc->b, loc, TM_ESQL,
                                "missing FROM-clause entry for table \"%s\"", t ? t : "?");
                    break;
                }
            }
            if (qc->in == NULL) {
                rc = no_columns_error(qc, loc);
                break;
            }
            /* `*` is every item's columns in FROM order; `t.*` the item t's. */
            for (int r = 0; rc == 0 && r < qc->nscope; r++) {
                const scope_entry_t *se = &qc->scope[r];
                if (se->level != 0 || (t != NULL && strcmp(se->name ? se->name : "", t) != 0))
                    continue;
                for (int sc = 0; rc == 0 && se->schema && sc < se->schema->ncols; sc++) {
                    int c = se->offset + sc;
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
                                tm_expr_type_t ty;
                                tm_expr_type_from_column(&q->agg_schema->cols[g], &ty);
                                e = tm_expr_column(qc->b->pool, g, &ty, qc->in->cols[c].name);
                            }
                        }
                        if (e == NULL) {
                            rc = err_at(qc->b, loc, TM_ESQL,
                                        "column \"%s.%s\" must appear in the GROUP BY clause "
                                        "or be used in an aggregate function",
                                        se->name ? se->name : "?", qc->in->cols[c].name);
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
            }
            if (rc != 0)
                break;
            continue;
        }
        if (grow((void **)&q->targets, n, sizeof(*q->targets)) != 0 ||
            grow((void **)&names, n, sizeof(*names)) != 0 ||
            grow((void **)&q->target_locations, n, sizeof(int)) != 0) {
            rc = TM_ENOMEM;
            break;
        }
        rc = is_window_call(val) ? bind_rank(qc, val, loc, mode, n, &q->targets[n])
                                 : bind_expr(qc, val, mode, &q->targets[n]);
        if (rc == 0) {
            const char *alias = jstr(rt, "name");
            names[n] = strdup(alias ? alias : figure_name(val));
            q->target_locations[n] = loc;
            n++;
        }
    }
    if (rc == 0) {
        q->ntargets = n;
        if (q->rank != NULL)
            rc = rank_targets(qc);
    }
    if (rc == 0) {
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

/*
 * A window TVF's select-list item or hidden rank item `t` (bind.h,
 * tm_bound_rank_t): its FROM column when it is a bare one, else -1.
 */
static int rank_item_column(const tm_bound_query_t *q, int t)
{
    const tm_bound_rank_t *rk = q->rank;
    const tm_expr_t *e = t < q->ntargets ? q->targets[t] : rk->hidden[t - q->ntargets];
    return tm_expr_column_index(e);
}

/*
 * A query over a window TVF is a window aggregation, or a window Top-N
 * (deduplication) ranking the TVF's rows per window (bind.h,
 * tm_bound_window_t).
 */
static int check_window_query(bctx_t *b, tm_bound_query_t *q, int location)
{
    const tm_bound_window_t *w = q->window;
    if (!q->grouped && q->rank != NULL) {
        const tm_bound_rank_t *rk = q->rank;
        bool start = false, end = false;
        for (int i = 0; i < rk->npart; i++) {
            int c = rank_item_column(q, rk->part_targets[i]);
            start |= c == w->first_col;
            end |= c == w->first_col + 1;
        }
        if (!start || !end)
            return err_at(b, rk->location, TM_EUNSUPPORTED,
                          "row_number() over a window function ranks the rows of each window: "
                          "PARTITION BY must hold window_start and window_end (window Top-N)");
        if (w->kind == TM_BOUND_WINDOW_SESSION)
            return err_at(b, w->location, TM_EUNSUPPORTED,
                          "a window Top-N over SESSION is not supported (a session's bounds "
                          "are known only once it closes); rank the rows of a window "
                          "aggregation over SESSION instead");
        return 0;
    }
    if (!q->grouped || q->ngroup == 0)
        return err_at(b, w->location, TM_EUNSUPPORTED,
                      "a window function in FROM is supported under window aggregation and "
                      "window Top-N only: add GROUP BY window_start, window_end, or rank its "
                      "rows with row_number() OVER (PARTITION BY window_start, window_end …) "
                      "in a subquery filtered by rn <= N (a plain SELECT over a window "
                      "function is not built yet)");
    bool start = false, end = false;
    for (int i = 0; i < q->ngroup; i++) {
        int c = tm_expr_column_index(q->pre_exprs[i]);
        start |= c == w->first_col;
        end |= c == w->first_col + 1;
    }
    if (!start || !end)
        return err_at(b, location, TM_ESQL,
                      "a window aggregation groups by the window: add %s to GROUP BY",
                      !start && !end ? "window_start, window_end"
                      : !start       ? "window_start"
                                     : "window_end");
    return 0;
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
    json_t *where = NULL, *where_owned = NULL;
    scope_entry_t one;
    b->depth++;
    rc = bind_from(b, q, sel, location, &where, &where_owned);
    b->depth--;
    qc.in = q->in_schema;
    qc.used_min = qc.used_max = -1;
    if (q->from != NULL) {
        rc = rc ? rc : scope_add(&qc.scope, &qc.nscope, q->from, 0, 0);
    } else {
        qc.qual = q->from_name;
        one = (scope_entry_t){q->from_name, q->in_schema, 0, 0};
        qc.scope = q->in_schema ? &one : NULL;
        qc.nscope = q->in_schema ? 1 : 0;
    }
    json_t *rank_owned = NULL;
    if (rc == 0 && q->sub != NULL && q->sub->rank != NULL && q->from == NULL)
        rc = rank_filter(&qc, sel, &where, &rank_owned);
    json_t *groups = json_object_get(sel, "groupClause");
    json_t *having = json_object_get(sel, "havingClause");
    json_t *distinct = json_object_get(sel, "distinctClause");
    bool aggs = has_aggregate(targets) || has_aggregate(having);
    q->grouped = json_array_size(groups) > 0 || having != NULL || aggs || distinct != NULL;
    bool star_only = json_array_size(targets) == 1 &&
                     is_star(json_object_get(json_object_get(json_array_get(targets, 0),
                                                             "ResTarget"),
                                             "val"));

    if (rc == 0 && star_only && where == NULL && !q->grouped && q->from == NULL &&
        (q->sub == NULL || q->sub->out_schema == NULL || q->sub->passthrough)) {
        /* Rows pass through with their own schema: no Calc. */
        q->passthrough = q->sub == NULL || q->sub->passthrough;
    }
    if (rc == 0 && q->in_schema == NULL && !q->passthrough)
        rc = no_columns_error(&qc, location);
    if (rc == 0 && where != NULL)
        rc = bind_expr(&qc, where, MODE_PLAIN, &q->where);
    if (rc == 0 && q->window != NULL && qc.window_refs > 0)
        rc = err_at(b, node_location(where), TM_EUNSUPPORTED,
                    "WHERE cannot use window_start, window_end or window_time: the window "
                    "aggregation assigns them after WHERE; filter in HAVING or in an outer "
                    "query");
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
            qc.window_refs = 0;
            rc = bind_expr(&qc, node, MODE_GROUPKEY, &e);
            if (rc == 0 && q->window != NULL && qc.window_refs > 0 &&
                tm_expr_column_index(e) < q->window->first_col)
                rc = err_at(b, node_location(node), TM_EUNSUPPORTED,
                            "GROUP BY may use window_start, window_end and window_time only as "
                            "they are, not inside an expression");
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
    if (rc == 0 && q->window != NULL)
        rc = check_window_query(b, q, location);
    free(qc.group_nodes);
    free(qc.arg_nodes);
    free(qc.agg_nodes);
    if (q->from != NULL)
        free(qc.scope);
    json_decref(where_owned);
    json_decref(rank_owned);
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
    int rc = tm_bind_select(job, job->inserts[insert].select, pool, out, errstr, errstr_size);
    if (rc == 0 && (*out)->rank != NULL) {
        bctx_t b = {job, pool, errstr, errstr_size, 0};
        rc = err_at(&b, (*out)->rank->location, TM_EUNSUPPORTED,
                    "row_number() needs a filter on it where the query is read: rank in a "
                    "subquery and filter it with WHERE rn <= N, rn < N or rn = 1 (Top-N)");
        *out = tm_bound_query_free(*out);
    }
    return rc;
}

tm_bound_query_t *tm_bound_query_free(tm_bound_query_t *q)
{
    if (q == NULL)
        return NULL;
    tm_bound_query_free(q->sub);
    tm_bound_from_free(q->from);
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
    tm_bound_window_free(q->window);
    if (q->rank != NULL) {
        free(q->rank->part_targets);
        free(q->rank->order_targets);
        free(q->rank->desc);
        free(q->rank->nulls_first);
        free(q->rank->exprs);
        free(q->rank->hidden);
        free(q->rank);
    }
    free(q);
    return NULL;
}

int tm_bound_query_source(const tm_bound_query_t *q)
{
    while (q != NULL && q->table < 0)
        q = q->sub;
    return q ? q->table : -1;
}
