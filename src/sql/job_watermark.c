/*
 * job_watermark.c — a source table's `watermark` option (DESIGN §4):
 *
 *     watermark = 'col'                                  -- no delay
 *     watermark = 'col - INTERVAL ''5 seconds'''         -- bounded out-of-orderness
 *
 * The option's text is a SQL expression, parsed by libpg_query as the
 * target of a SELECT.  It names a column, optionally minus a constant
 * interval; when the table declares its columns, a declared one of type
 * timestamp or timestamptz (else the runtime resolves it per captured table).  Errors point at the
 * offending part of the expression inside the job file (line and column of
 * the character in the option's string literal, with '' counted as one).
 * The runtime generates the watermarks (runtime/evtime.h); this file only
 * checks and records the column and the delay (tm_job_table_t.wm_*).
 *
 * Thread: any, one job at a time.
 */
#include "sql/job_int.h"
#include "core/arena.h"
#include "core/error.h"
#include "expr/expr.h"

#include <jansson.h>
#include <pg_query.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PREFIX "SELECT "

typedef struct wm_ctx {
    const tm_job_t *job;
    const tm_job_table_t *t;
    const char *text; /* the option's value */
    char *errstr;
    size_t errstr_size;
} wm_ctx_t;

/*
 * The byte offset in job->sql of character `off` of the option's value:
 * the value starts after the opening quote at t->wm_location, and each ''
 * in the file is one ' in the value.  -1 when the literal is not found.
 */
static int file_offset(const wm_ctx_t *w, int off)
{
    const char *sql = w->job->sql;
    int loc = w->t->wm_location;
    if (loc < 0 || sql == NULL || (size_t)loc >= strlen(sql))
        return -1;
    /* From the option's name to the opening quote of its value. */
    const char *p = strchr(sql + loc, '\'');
    if (p == NULL)
        return -1;
    p++;
    for (int i = 0; i < off && *p != '\0'; i++)
        p += p[0] == '\'' && p[1] == '\'' ? 2 : 1;
    return (int)(p - sql);
}

static int wm_error(const wm_ctx_t *w, int off, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int wm_error(const wm_ctx_t *w, int off, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int pos = file_offset(w, off < 0 ? 0 : off);
    if (pos < 0)
        return tm_seterr(w->errstr, w->errstr_size, code, "%s:%d: table '%s': watermark: %s",
                         w->job->path, w->t->line, w->t->name, msg);
    int line, col;
    tm_job_position(w->job, pos, &line, &col);
    return tm_seterr(w->errstr, w->errstr_size, code, "%s:%d:%d: table '%s': watermark: %s",
                     w->job->path, line, col, w->t->name, msg);
}

/* A node's "location" inside the option's text, or -1. */
static int loc_of(json_t *inner)
{
    json_t *l = json_object_get(inner, "location");
    if (!json_is_integer(l))
        return -1;
    int v = (int)json_integer_value(l) - (int)strlen(PREFIX);
    return v < 0 ? 0 : v;
}

static const char *sval(json_t *node)
{
    json_t *s = json_object_get(json_object_get(node, "String"), "sval");
    return json_is_string(s) ? json_string_value(s) : NULL;
}

/*
 * The column of a ColumnRef: declared, and a timestamp.  A table without
 * declared columns (`()`, a database stream of several tables) is checked
 * at run time, per table: rows of a table without such a timestamp column
 * do not move the watermark (runtime/evtime.h).
 */
static int check_column(wm_ctx_t *w, json_t *cref, const char **column)
{
    json_t *fields = json_object_get(cref, "fields");
    int at = loc_of(cref);
    const char *name = json_array_size(fields) == 1 ? sval(json_array_get(fields, 0)) : NULL;
    if (name == NULL)
        return wm_error(w, at, TM_ESQL,
                        "the event-time column must be a plain column name of the table, as in "
                        "'created_at - INTERVAL ''5 seconds'''");
    const tm_schema_t *s = w->t->declared;
    *column = name;
    if (s == NULL)
        return 0;
    int i = tm_schema_find(s, name);
    if (i < 0) {
        char cols[512] = "";
        size_t n = 0;
        for (int k = 0; k < s->ncols && n < sizeof(cols); k++)
            n += (size_t)snprintf(cols + n, sizeof(cols) - n, "%s%s", k ? ", " : "",
                                  s->cols[k].name);
        return wm_error(w, at, TM_ESQL, "column '%s' is not declared; the table has %s", name,
                        cols);
    }
    tm_type_t ty = s->cols[i].type;
    if (ty != TM_T_TIMESTAMP && ty != TM_T_TIMESTAMPTZ)
        return wm_error(w, at, TM_ESQL,
                        "column '%s' is %s, but the event-time column must be timestamp or "
                        "timestamptz",
                        name, s->cols[i].db_type ? s->cols[i].db_type : "not a timestamp");
    *column = s->cols[i].name;
    return 0;
}

/* The delay: INTERVAL 'text' (a TypeCast of a string constant to interval), >= 0. */
static int check_delay(wm_ctx_t *w, json_t *node, int fallback, int64_t *delay_us)
{
    json_t *tc = json_object_get(node, "TypeCast");
    json_t *arg = tc ? json_object_get(json_object_get(tc, "arg"), "A_Const") : NULL;
    json_t *tn = tc ? json_object_get(tc, "typeName") : NULL;
    json_t *names = json_object_get(tn, "names");
    const char *ty = sval(json_array_get(names, json_array_size(names) - 1));
    json_t *str = json_object_get(json_object_get(arg, "sval"), "sval");
    int at = tc ? (loc_of(tn) >= 0 ? loc_of(tn) : loc_of(tc)) : fallback;
    if (tc == NULL) {
        void *it = json_object_iter(node);
        json_t *inner = it ? json_object_iter_value(it) : NULL;
        if (json_is_object(inner) && loc_of(inner) >= 0)
            at = loc_of(inner);
    }
    if (tc == NULL || ty == NULL || strcmp(ty, "interval") != 0 || !json_is_string(str) ||
        json_array_size(json_object_get(tn, "typmods")) > 0)
        return wm_error(w, at, TM_ESQL,
                        "the delay must be a constant interval, as in INTERVAL ''5 seconds'' or "
                        "INTERVAL ''500 milliseconds''");
    tm_expr_pool_t *pool = tm_expr_pool_new();
    if (pool == NULL)
        return TM_ENOMEM;
    tm_expr_type_t ity = {.type = TM_T_INTERVAL};
    tm_expr_t *e = NULL;
    char why[256] = "";
    int rc = tm_expr_cast(pool, tm_expr_string(pool, json_string_value(str)), &ity, &e, why,
                          sizeof(why));
    tm_datum_t d;
    bool isnull = true;
    if (rc == 0) {
        tm_arena_t arena;
        tm_arena_init(&arena, 256);
        tm_eval_env_t env = {&arena, 0};
        rc = tm_expr_eval(e, NULL, &env, &d, &isnull, why, sizeof(why));
        tm_arena_release(&arena);
    }
    tm_expr_pool_free(pool);
    if (rc == TM_ENOMEM)
        return rc;
    if (rc != 0 || isnull)
        return wm_error(w, loc_of(arg) >= 0 ? loc_of(arg) : at, TM_ESQL,
                        "'%s' is not an interval (%s)", json_string_value(str),
                        why[0] ? why : "NULL");
    if (d.u.iv.us < 0)
        return wm_error(w, loc_of(arg) >= 0 ? loc_of(arg) : at, TM_ESQL,
                        "the delay '%s' is negative; write the interval that rows may arrive "
                        "late by, e.g. INTERVAL ''5 seconds''",
                        json_string_value(str));
    *delay_us = d.u.iv.us;
    return 0;
}

static int check_expr(wm_ctx_t *w, json_t *val, const char **col, int64_t *delay_us)
{
    json_t *cref = json_object_get(val, "ColumnRef");
    if (cref != NULL) {
        *delay_us = 0;
        return check_column(w, cref, col);
    }
    json_t *ax = json_object_get(val, "A_Expr");
    const char *kind = ax ? json_string_value(json_object_get(ax, "kind")) : NULL;
    json_t *name = json_object_get(ax, "name");
    const char *op = json_array_size(name) == 1 ? sval(json_array_get(name, 0)) : NULL;
    if (ax != NULL && kind != NULL && strcmp(kind, "AEXPR_OP") == 0 && op != NULL &&
        strcmp(op, "-") == 0) {
        json_t *l = json_object_get(json_object_get(ax, "lexpr"), "ColumnRef");
        if (l == NULL)
            return wm_error(w, loc_of(ax), TM_ESQL,
                            "the left side of '-' must be the event-time column");
        int rc = check_column(w, l, col);
        if (rc != 0)
            return rc;
        return check_delay(w, json_object_get(ax, "rexpr"), loc_of(ax), delay_us);
    }
    int at = 0;
    void *it = json_object_iter(val);
    json_t *inner = it ? json_object_iter_value(it) : NULL;
    if (json_is_object(inner) && loc_of(inner) >= 0)
        at = loc_of(inner);
    return wm_error(w, at, TM_ESQL,
                    "expected a column, or a column minus a constant interval, as in "
                    "'created_at - INTERVAL ''5 seconds'''");
}

int tm__job_watermark(tm_job_t *job, tm_job_table_t *t, char *errstr, size_t errstr_size)
{
    const char *text = tm_options_lookup(t->opts, "watermark");
    if (text == NULL)
        return 0;
    wm_ctx_t w = {job, t, text, errstr, errstr_size};
    size_t n = strlen(PREFIX) + strlen(text) + 1;
    char *sql = malloc(n);
    if (sql == NULL)
        return TM_ENOMEM;
    snprintf(sql, n, "%s%s", PREFIX, text);
    PgQueryParseResult r = pg_query_parse(sql);
    free(sql);
    if (r.error != NULL) {
        int pos = r.error->cursorpos > (int)strlen(PREFIX) ? r.error->cursorpos - 1 -
                                                                 (int)strlen(PREFIX)
                                                           : 0;
        int rc = wm_error(&w, pos, TM_ESQL, "%s in '%s'", r.error->message, text);
        pg_query_free_parse_result(r);
        return rc;
    }
    json_error_t jerr;
    json_t *tree = json_loads(r.parse_tree, 0, &jerr);
    pg_query_free_parse_result(r);
    if (tree == NULL)
        return wm_error(&w, 0, TM_ESQL, "cannot read the parse tree (%s)", jerr.text);
    json_t *stmts = json_object_get(tree, "stmts");
    json_t *sel = json_object_get(json_object_get(json_array_get(stmts, 0), "stmt"), "SelectStmt");
    json_t *targets = json_object_get(sel, "targetList");
    int rc;
    if (json_array_size(stmts) != 1 || sel == NULL || json_array_size(targets) != 1 ||
        json_object_get(sel, "fromClause") != NULL || json_object_get(sel, "whereClause") != NULL)
        rc = wm_error(&w, 0, TM_ESQL,
                      "expected one expression: a column, or a column minus a constant "
                      "interval, as in 'created_at - INTERVAL ''5 seconds'''");
    else {
        json_t *val = json_object_get(
            json_object_get(json_array_get(targets, 0), "ResTarget"), "val");
        const char *col = NULL;
        int64_t delay = 0;
        rc = check_expr(&w, val, &col, &delay);
        if (rc == 0) {
            free(t->wm_column);
            t->wm_column = strdup(col);
            t->wm_delay_us = delay;
            if (t->wm_column == NULL)
                rc = TM_ENOMEM;
        }
    }
    json_decref(tree);
    return rc;
}
