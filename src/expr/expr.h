/*
 * expr.h — typed scalar expressions: the tree, its builders (which apply
 * PostgreSQL's typing rules), and the evaluator (DESIGN §8, §13).
 *
 * Layering: sql/bind.c turns parse nodes into calls of the builders below;
 * the builders resolve functions and operators in the function table
 * (expr/func.c), insert implicit casts and compute result types exactly as
 * PostgreSQL does (int + int is int, int / int truncates, sum(int) is bigint,
 * numeric keeps exact scale, …).  Operators (calc, group_agg's
 * pre-projection, joins) evaluate trees against rows.
 *
 * Ownership: every node is allocated from a tm_expr_pool_t, and freeing the
 * pool frees them all.  A plan owns one pool; trees are immutable once built
 * and may be evaluated by several threads at once (evaluation never writes
 * to a node).
 *
 * Types: a tm_expr_type_t is a tm_type_t plus NUMERIC precision/scale
 * (scale TM_SCALE_VARIABLE for unconstrained numeric) and the element type
 * of arrays.  TM_T_INT16/INT32/INT64 keep their width as types (smallint,
 * integer, bigint), though all three are held in u.i64.
 *
 * NULLs: three-valued logic exactly as PostgreSQL's (NULL AND false is
 * false, NULL OR true is true, NOT NULL is NULL; strict functions return
 * NULL on any NULL argument; COALESCE, CASE, IS [NOT] NULL, IS [NOT]
 * DISTINCT FROM, GREATEST/LEAST (which ignore NULLs), concat (which skips
 * them) are not strict).
 *
 * Errors.  Builders return 0 or TM_ESQL with a message for a person:
 *   - unknown function: "function lenght(text) does not exist; did you mean
 *     length?" (close names by edit distance);
 *   - type errors name the expected and the actual types: "operator does
 *     not exist: text + integer", "argument 2 of substring must be integer,
 *     not text", "CASE types integer and text cannot be matched".
 * The evaluator returns 0, or TM_EINVAL for a *row* error (division by
 * zero, numeric overflow, a bad cast such as 'abc'::int, an out-of-range
 * date) with PostgreSQL's message in errstr ("division by zero", "integer
 * out of range", "invalid input syntax for type integer: \"abc\""), or
 * TM_ENOMEM.  A row error never crashes and never yields a wrong value.
 *
 * Thread: building on one thread (the planner's); evaluation on any.
 */
#ifndef TM_EXPR_EXPR_H
#define TM_EXPR_EXPR_H

#include "core/arena.h"
#include "core/row.h"
#include "core/schema.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_expr tm_expr_t;
typedef struct tm_expr_pool tm_expr_pool_t;

typedef struct tm_expr_type {
    tm_type_t type;
    tm_type_t elem_type; /* TM_T_ARRAY only */
    int32_t precision;   /* NUMERIC: -1 unconstrained */
    int32_t scale;       /* NUMERIC: TM_SCALE_VARIABLE unconstrained */
} tm_expr_type_t;

tm_expr_pool_t *tm_expr_pool_new(void);
/* Frees every node of the pool.  Accepts NULL; returns NULL. */
tm_expr_pool_t *tm_expr_pool_free(tm_expr_pool_t *pool);

/* ---- builders (thread: the planner's) ---- */

/* A reference to column `index` of the input row, of type `type`. */
tm_expr_t *tm_expr_column(tm_expr_pool_t *pool, int index, const tm_expr_type_t *type,
                          const char *name);
/* Literals.  Strings are unknown-typed as in PostgreSQL until context gives a type. */
tm_expr_t *tm_expr_null(tm_expr_pool_t *pool);
tm_expr_t *tm_expr_bool(tm_expr_pool_t *pool, bool v);
tm_expr_t *tm_expr_int(tm_expr_pool_t *pool, int64_t v); /* integer, or bigint if it needs 64 bits */
/* A numeric literal as written ("1.20", "1e5"): numeric, as PostgreSQL types it. */
int tm_expr_numeric_literal(tm_expr_pool_t *pool, const char *text, tm_expr_t **out, char *errstr,
                            size_t errstr_size);
tm_expr_t *tm_expr_string(tm_expr_pool_t *pool, const char *text); /* unknown-typed literal */
/* `TYPE 'text'` and 'text'::type literals resolve through tm_expr_cast. */

/*
 * A function call by name, as written (case-insensitive), with its
 * arguments.  Resolves the overload, inserts implicit casts, types the
 * result.  Covers every scalar function of docs/sql.md: lower, upper,
 * length, substring, position, concat, trim, ltrim, rtrim, replace,
 * split_part, left, right, lpad, rpad, md5, abs, round, floor, ceil (and
 * ceiling), mod, power, sqrt, now, date_trunc, date_part, make_date,
 * to_timestamp, coalesce, nullif, greatest, least.  `extract(field FROM x)`
 * binds as date_part('field', x).  Aggregate names are not functions here
 * (see expr/agg.h): calling one gives TM_ESQL "aggregate … is not allowed
 * here".
 */
int tm_expr_call(tm_expr_pool_t *pool, const char *name, tm_expr_t *const *args, int nargs,
                 tm_expr_t **out, char *errstr, size_t errstr_size);

/*
 * A binary or unary operator by its SQL spelling: + - * / % (unary: "-" and
 * "+" with left NULL), = <> != < <= > >=, ||, ~~ (LIKE), !~~ (NOT LIKE),
 * ~~* (ILIKE), !~~* (NOT ILIKE), -> ->> #>> (JSON), and date/time/interval
 * arithmetic through + and -.
 */
int tm_expr_operator(tm_expr_pool_t *pool, const char *op, tm_expr_t *left, tm_expr_t *right,
                     tm_expr_t **out, char *errstr, size_t errstr_size);

/* CAST(e AS type) / e::type; explicit casts among every supported type. */
int tm_expr_cast(tm_expr_pool_t *pool, tm_expr_t *e, const tm_expr_type_t *type, tm_expr_t **out,
                 char *errstr, size_t errstr_size);

/* Boolean connectives (arguments must be boolean or unknown literals). */
int tm_expr_and(tm_expr_pool_t *pool, tm_expr_t *const *args, int nargs, tm_expr_t **out,
                char *errstr, size_t errstr_size);
int tm_expr_or(tm_expr_pool_t *pool, tm_expr_t *const *args, int nargs, tm_expr_t **out,
               char *errstr, size_t errstr_size);
int tm_expr_not(tm_expr_pool_t *pool, tm_expr_t *arg, tm_expr_t **out, char *errstr,
                size_t errstr_size);

typedef enum tm_expr_test {
    TM_TEST_IS_NULL,
    TM_TEST_IS_NOT_NULL,
    TM_TEST_IS_TRUE,
    TM_TEST_IS_NOT_TRUE,
    TM_TEST_IS_FALSE,
    TM_TEST_IS_NOT_FALSE,
} tm_expr_test_t;
int tm_expr_test(tm_expr_pool_t *pool, tm_expr_test_t test, tm_expr_t *arg, tm_expr_t **out,
                 char *errstr, size_t errstr_size);
/* a IS [NOT] DISTINCT FROM b */
int tm_expr_distinct(tm_expr_pool_t *pool, bool negate, tm_expr_t *a, tm_expr_t *b,
                     tm_expr_t **out, char *errstr, size_t errstr_size);
/* a [NOT] IN (list): PostgreSQL's NULL rules (no match and a NULL in the list: NULL). */
int tm_expr_in(tm_expr_pool_t *pool, bool negate, tm_expr_t *a, tm_expr_t *const *list, int n,
               tm_expr_t **out, char *errstr, size_t errstr_size);
/* a [NOT] BETWEEN lo AND hi */
int tm_expr_between(tm_expr_pool_t *pool, bool negate, tm_expr_t *a, tm_expr_t *lo, tm_expr_t *hi,
                    tm_expr_t **out, char *errstr, size_t errstr_size);
/*
 * CASE [operand] WHEN w THEN t ... [ELSE e] END.  `operand` NULL for the
 * searched form; `els` NULL means ELSE NULL.  Result type unified as
 * PostgreSQL's (integer and numeric give numeric; text and integer fail).
 */
int tm_expr_case(tm_expr_pool_t *pool, tm_expr_t *operand, tm_expr_t *const *whens,
                 tm_expr_t *const *thens, int n, tm_expr_t *els, tm_expr_t **out, char *errstr,
                 size_t errstr_size);

/* ---- inspection (plan, explain) ---- */

const tm_expr_type_t *tm_expr_type(const tm_expr_t *e);
/* True when the value can never be NULL (a non-null column, a literal, count(*)). */
bool tm_expr_not_null(const tm_expr_t *e);
/* Column index when e is a bare column reference, else -1. */
int tm_expr_column_index(const tm_expr_t *e);
/*
 * The column a key expression reads: e's index when e is a bare column, or
 * a cast (of a cast …) of one, else -1.  The lookup join's planner uses it to
 * find the dimension column behind a key the binder cast to a common type.
 */
int tm_expr_cast_column(const tm_expr_t *e);
/* The SQL name of a bare type ("integer", "bigint", "text", "timestamp with time zone", …). */
const char *tm_expr_sql_type_name(tm_type_t t);
/*
 * PostgreSQL's text output of a non-NULL value (typoutput; TimeZone UTC),
 * which the server's typinput reads back (a lookup query's parameters).
 * Variable results go to `arena`.  0 or TM_ENOMEM.
 */
int tm_expr_datum_text(tm_type_t type, const tm_datum_t *d, tm_arena_t *arena, const char **ptr,
                       size_t *len);
/* True when e references no column and calls no volatile function (now()). */
bool tm_expr_is_constant(const tm_expr_t *e);
/* True when e calls now() (processing time: explain says so). */
bool tm_expr_uses_now(const tm_expr_t *e);
/*
 * Appends SQL text for e to buf (explain): column references print as
 * `names[index]` when names is not NULL, else `$index`.  Returns the length
 * that was needed, snprintf-style.
 */
size_t tm_expr_format(const tm_expr_t *e, const char *const *names, char *buf, size_t buflen);
/* A readable type name: "integer", "numeric(10,2)", "text", "timestamp with time zone", … */
const char *tm_expr_type_name(const tm_expr_type_t *t, char *buf, size_t buflen);
/*
 * Parses a SQL type name as libpg_query gives it (the last element of
 * TypeName.names, e.g. "int4", "numeric", "varchar", "timestamptz", "text")
 * with its typmods into *out.  Returns 0 or TM_ESQL naming the type.
 */
int tm_expr_type_parse(const char *name, const int32_t *typmods, int ntypmods, bool array,
                       tm_expr_type_t *out, char *errstr, size_t errstr_size);

/*
 * The text form of a non-NULL value as PostgreSQL's output function writes it
 * (TimeZone = UTC, IntervalStyle = postgres), which its input function reads
 * back; the PostgreSQL sink writes COPY rows with it.  Variable results go to
 * `arena`.  Returns 0 or TM_ENOMEM.
 */
int tm_expr_value_text(tm_type_t type, const tm_datum_t *in, tm_arena_t *arena, const char **ptr,
                       size_t *len);

/* ---- evaluation (thread: any) ---- */

typedef struct tm_eval_env {
    tm_arena_t *arena; /* where variable-length results are allocated */
    int64_t now_us;    /* now(): processing time, fixed per batch */
} tm_eval_env_t;

/*
 * Evaluates e over `row` (laid out as the input the tree was built for).
 * On 0, *isnull says whether the result is NULL and *out holds it
 * otherwise.  TM_EINVAL is a row error (message in errstr), TM_ENOMEM fatal.
 */
int tm_expr_eval(const tm_expr_t *e, const tm_row_t *row, const tm_eval_env_t *env,
                 tm_datum_t *out, bool *isnull, char *errstr, size_t errstr_size);
/*
 * A predicate (WHERE, HAVING): *keep is true only when e is true (NULL and
 * false both drop the row).
 */
int tm_expr_eval_pred(const tm_expr_t *e, const tm_row_t *row, const tm_eval_env_t *env,
                      bool *keep, char *errstr, size_t errstr_size);

/* Fills a schema column's type fields from an expression type. */
void tm_expr_type_to_column(const tm_expr_type_t *t, tm_column_t *col);
void tm_expr_type_from_column(const tm_column_t *col, tm_expr_type_t *t);

#endif
