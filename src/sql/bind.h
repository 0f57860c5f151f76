/*
 * bind.h — a SELECT's parse tree resolved into a bound query: names to
 * columns, parse nodes to typed expressions (expr/expr.h), aggregate calls
 * to tm_agg_call_t (expr/agg.h).  SQLite's resolve step, PostgreSQL's
 * parse analysis (DESIGN §8, §13).
 *
 * One bound query is one SELECT block:
 *
 *     FROM    one job table, or a subquery (FROM (SELECT …) AS x, or a view,
 *             inlined as a subquery); or a join tree (`from`, below)
 *     WHERE   a predicate over the FROM layout (`in_schema`)
 *     GROUP BY / aggregates:
 *             pre_exprs over in_schema: the group keys (0 .. ngroup-1), then
 *             the aggregates' distinct argument expressions; aggs[k].arg
 *             indexes pre_exprs.  The aggregation's output layout
 *             (`agg_schema`) is the group keys then one column per aggregate.
 *     HAVING  a predicate over agg_schema
 *     targets the select list: over agg_schema when `grouped`, else over
 *             in_schema; out_schema names and types them.
 *
 * A query over a table that declares no columns (`CREATE TABLE t () …`) can
 * only be `SELECT * FROM t`: that is a `passthrough` query (rows keep their
 * source schema), and so is SELECT * without WHERE over any table.
 *
 * Errors are TM_ESQL (or TM_EUNSUPPORTED for a construct this version does
 * not run) with "<path>:<line>:<col>: <message>", PostgreSQL's wording
 * where it has one ("column \"x\" does not exist", "column \"t.x\" must
 * appear in the GROUP BY clause or be used in an aggregate function"), and
 * the name of any unsupported construct.  Binding never crashes on a parse
 * tree it does not know: an unknown node kind is an unsupported construct.
 *
 * Ownership: expressions live in the caller's pool; a bound query owns its
 * subquery, arrays and schemas (out_schema and agg_schema are references
 * the planner may take).  Thread: the planner's.
 */
#ifndef TM_SQL_BIND_H
#define TM_SQL_BIND_H

#include "expr/agg.h"
#include "expr/expr.h"
#include "sql/job.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_bound_query tm_bound_query_t;

/*
 * Joins.  A FROM with JOIN … ON / USING, a comma list (its join conditions
 * taken from WHERE), or a WHERE with [NOT] EXISTS / [NOT] IN (subquery)
 * conjuncts becomes a left-deep tree of binary joins (tm_bound_from_t):
 *
 *   leaf     a job table (table >= 0) or a subquery or view (sub); its rows
 *            are `raw` (the table's declared columns, the subquery's output)
 *   join     left and right items; raw = left->schema ++ right->schema, with
 *            the columns of a side that can be null-padded made nullable
 *            (LEFT: right, RIGHT: left, FULL: both); SEMI and ANTI
 *            (EXISTS, IN; NOT EXISTS, NOT IN) output the left side only
 *
 * The ON clause (or a subquery's WHERE) is split into equi-key pairs — a
 * conjunct `a = b` with `a` over one side only and `b` over the other —
 * and the rest.  A key pair whose sides differ in type is cast to their
 * common type; a key that is not a bare column of its side (an expression,
 * or a cast) is computed before the join and appended to that side's row
 * (`ext`, columns named "$key<N>", invisible to names).  A conjunct over
 * one side only becomes that side's `filter` where SQL allows it (the side
 * whose rows are dropped, never padded, when they fail: both of INNER, the
 * right of LEFT and of SEMI/ANTI, the left of RIGHT); everything else is
 * the `residual`, a predicate over left->schema ++ right->schema.  A join
 * needs at least one key pair, except NOT IN, which is `null_aware` (NULL
 * keys follow NOT IN's rule; the planner runs it on one subtask).
 *
 * Every item's `schema` is what its consumer sees: raw ++ ext, rows kept
 * only when `filter` holds.  `ranges` say which names a layout exposes:
 * each table, view or subquery alias of the tree with its columns' offset.
 */
typedef enum tm_bound_join_kind {
    TM_BOUND_LEAF = 0,
    TM_BOUND_INNER,
    TM_BOUND_LEFT,
    TM_BOUND_RIGHT,
    TM_BOUND_FULL,
    TM_BOUND_SEMI,
    TM_BOUND_ANTI,
} tm_bound_join_kind_t;

typedef struct tm_bound_range {
    char *name;           /* the alias (or the table's or view's name) */
    tm_schema_t *schema;  /* the leaf's raw columns (a reference) */
    int offset;           /* of its first column in the item's layout */
} tm_bound_range_t;

typedef struct tm_bound_from tm_bound_from_t;

/*
 * A window table-valued function in FROM (DESIGN §8):
 *
 *     TUMBLE(t, col, size)   HOP(t, col, slide, size)
 *     SESSION(t, col, gap)   CUMULATE(t, col, step, size)
 *
 * `t` names a job table or view, `col` one of its timestamp or timestamptz
 * columns, and the sizes are positive constant intervals without months
 * (HOP's size a multiple of its slide, CUMULATE's of its step, at most
 * 1000 windows per row).  Its layout is t's columns, then window_start,
 * window_end and window_time (window_end - 1µs), of col's type.  The TVF
 * adds no rows itself: it is bound only under GROUP BY window_start,
 * window_end (window aggregation: the planner's WindowAgg assigns the
 * windows), and the window columns may appear only as bare GROUP BY keys
 * (and in the select list and HAVING through them); or, not grouped (TUMBLE,
 * HOP, CUMULATE), in a select list with row_number() OVER (PARTITION BY
 * window_start, window_end …) (a window Top-N: the planner's WindowTVF
 * assigns the windows).  WHERE never reads the window columns.
 */
typedef enum tm_bound_window_kind {
    TM_BOUND_WINDOW_TUMBLE = 1,
    TM_BOUND_WINDOW_HOP,
    TM_BOUND_WINDOW_SESSION,
    TM_BOUND_WINDOW_CUMULATE,
} tm_bound_window_kind_t;

typedef struct tm_bound_window {
    tm_bound_window_kind_t kind;
    int time_col;       /* column of `input` (and of the TVF's layout) */
    int64_t size_us;    /* TUMBLE, HOP, CUMULATE: size; SESSION: gap */
    int64_t slide_us;   /* HOP: slide; CUMULATE: step; otherwise size_us */
    int first_col;      /* window_start's column in the layout (= input->ncols) */
    tm_schema_t *input; /* t's columns (a reference) */
    int location;       /* of the function call */
} tm_bound_window_t;

struct tm_bound_from {
    tm_bound_join_kind_t kind;
    int location; /* byte offset (the join's left item, the subquery), for messages */

    /* A leaf. */
    int table;
    tm_bound_query_t *sub;
    bool view;  /* sub is the view named `name` */
    char *name; /* visible name */

    /* A join. */
    tm_bound_from_t *left, *right;
    int *left_keys; /* columns of left->schema, pairwise with right_keys (same types) */
    int *right_keys;
    int nkeys;
    tm_expr_t *residual; /* over left->schema ++ right->schema; NULL = true */
    bool null_aware;     /* ANTI from NOT IN with a nullable key */
    /*
     * Interval join (INNER/LEFT/RIGHT/FULL): residual conjuncts that bound
     * one side's time column by the other's from both sides, as
     *     right.time_right + lower_us <= left.time_left <= right.time_right + upper_us
     * (BETWEEN, <, <=, >, >= with ± a constant INTERVAL without months; a
     * strict bound is one microsecond tighter).  `residual` keeps them (a
     * regular join runs them as a condition); `interval_rest` is the
     * residual without them (NULL = true), for an interval join.
     */
    bool interval;
    int time_left, time_right; /* columns of left->schema / right->schema */
    int64_t lower_us, upper_us;
    tm_expr_t *interval_rest;

    tm_schema_t *raw;    /* the item's output */
    tm_expr_t *filter;   /* over raw, or NULL */
    tm_expr_t **ext;     /* computed join keys appended to raw (over raw) */
    int next;
    tm_schema_t *schema; /* raw ++ ext (a reference to raw when next == 0) */

    tm_bound_range_t *ranges;
    int nranges;

    tm_bound_window_t *window; /* a leaf that is a window TVF, or NULL */
};

/*
 * Top-N (bind.c, section Top-N).  A select list may hold one `row_number() OVER
 * (PARTITION BY … ORDER BY …)` over bare columns of the FROM layout.
 * Its target is a placeholder bigint column; the planner computes the other
 * targets, then ranks.  The query that reads the subquery must filter the
 * rank with `rn <= N`, `rn < N` or `rn = 1` (the binder of that query
 * removes the filter and sets `limit`); it may or may not read rn itself
 * (`rank_used`).
 */
typedef struct tm_bound_rank {
    int target;        /* the select-list item that is row_number() */
    int *part_targets; /* select-list items of PARTITION BY */
    int npart;
    int *order_targets; /* select-list items of ORDER BY */
    bool *desc;
    bool *nulls_first;
    int norder;
    /*
     * PARTITION BY / ORDER BY columns the select list does not project:
     * item t >= ntargets above is hidden[t - ntargets], an expression over
     * the FROM layout that the planner computes after the select list and
     * drops after ranking.
     */
    tm_expr_t **hidden;
    int nhidden;
    tm_expr_t **exprs; /* binding only: the PARTITION BY, then the ORDER BY columns */
    int64_t limit;  /* N; 0 until the enclosing query's filter is found */
    bool rank_used; /* the enclosing query reads the rank column */
    int location;   /* of the row_number() call */
} tm_bound_rank_t;

struct tm_bound_query {
    /* FROM: a job table (table >= 0) or a subquery (sub != NULL). */
    int table;
    tm_bound_query_t *sub;
    char *from_name;      /* the table's, view's or alias's name (explain, errors) */
    bool from_view;       /* sub is the view named from_name */
    tm_bound_from_t *from; /* a join tree (table -1, sub NULL), or NULL */
    tm_schema_t *in_schema; /* the FROM layout; NULL for a table without declared columns */

    bool passthrough; /* SELECT * with no WHERE and no grouping: rows pass unchanged */
    tm_expr_t *where; /* over in_schema, or NULL */

    bool grouped;          /* GROUP BY, HAVING, DISTINCT or an aggregate */
    int ngroup;            /* group keys: pre_exprs[0 .. ngroup-1] */
    tm_expr_t **pre_exprs; /* group keys, then aggregate arguments; over in_schema */
    char **pre_names;
    int npre;
    tm_agg_call_t *aggs;   /* arg indexes pre_exprs (-1 for count(*)) */
    int naggs;
    tm_schema_t *agg_schema; /* ngroup + naggs columns */
    tm_expr_t *having;       /* over agg_schema, or NULL */

    tm_expr_t **targets; /* the select list */
    int ntargets;
    int *target_locations; /* byte offsets, for the planner's messages */
    tm_schema_t *out_schema; /* names and types of targets; NULL when passthrough over `()` */

    int location; /* byte offset of the SELECT */

    tm_bound_window_t *window; /* FROM is a window TVF (table or sub is its input), or NULL */
    tm_bound_rank_t *rank; /* row_number() OVER (…) in the select list, or NULL */
};

/*
 * Binds the SELECT of INSERT number `insert` of the job.  On success *out is
 * the bound query (free with tm_bound_query_free); its expressions are in
 * `pool`.
 */
int tm_bind_insert(const tm_job_t *job, int insert, tm_expr_pool_t *pool, tm_bound_query_t **out,
                   char *errstr, size_t errstr_size);
/* Binds any SelectStmt parse node of the job (a view's, an insert's). */
int tm_bind_select(const tm_job_t *job, struct json_t *select, tm_expr_pool_t *pool,
                   tm_bound_query_t **out, char *errstr, size_t errstr_size);
/* Accepts NULL; returns NULL. */
tm_bound_query_t *tm_bound_query_free(tm_bound_query_t *q);

/* Accepts NULL; returns NULL. */
tm_bound_from_t *tm_bound_from_free(tm_bound_from_t *f);
/* Accepts NULL; returns NULL. */
tm_bound_window_t *tm_bound_window_free(tm_bound_window_t *w);

/* The job table a query finally reads (through subqueries and views). */
int tm_bound_query_source(const tm_bound_query_t *q);

#endif
