/*
 * expr_int.h — private to src/expr: the node layout, the function table
 * entry, and the helpers the builder, the evaluator and the casts share.
 *
 * Invariants:
 *   1. After a builder returns, every argument of a node already has the
 *      type the node's implementation expects (implicit casts are explicit
 *      EK_CAST nodes, unknown literals are typed constants).
 *   2. Comparison nodes (EK_CMP, IN, CASE with operand, DISTINCT, NULLIF,
 *      GREATEST/LEAST) compare values of one type: `cmp_type`.
 *   3. Nodes are never written after their builder returns.
 *
 * Thread: as expr.h.
 */
#ifndef TM_EXPR_EXPR_INT_H
#define TM_EXPR_EXPR_INT_H

#include "core/error.h"
#include "expr/expr.h"

typedef enum tm__ekind {
    EK_CONST = 1,
    EK_COLUMN,
    EK_CALL,
    EK_CAST,
    EK_AND,
    EK_OR,
    EK_NOT,
    EK_TEST,
    EK_DISTINCT,
    EK_IN,
    EK_CASE,
    EK_COALESCE,
    EK_NULLIF,
    EK_GREATEST,
    EK_LEAST,
} tm__ekind_t;

typedef int (*tm__fn_impl_t)(const tm_expr_t *e, const tm_datum_t *args, const bool *nulls,
                             const tm_eval_env_t *env, tm_datum_t *out, bool *isnull, char *errstr,
                             size_t errstr_size);

enum {
    TM__FN_NONSTRICT = 1 << 0, /* called with NULL arguments (concat) */
    TM__FN_VOLATILE = 1 << 1,  /* now() */
    TM__FN_OPERATOR = 1 << 2,  /* printed infix */
    TM__FN_VARIADIC = 1 << 3,  /* any number of arguments of any type */
};

/* TM_T_* values used only as function-table argument markers. */
#define TM__T_ANY ((tm_type_t)100)

typedef struct tm__func {
    const char *name;
    int nargs;
    tm_type_t args[3];
    tm_type_t result;
    tm__fn_impl_t impl;
    unsigned flags;
} tm__func_t;

struct tm_expr {
    tm__ekind_t kind;
    tm_expr_type_t type;
    bool unknown;  /* an unknown-typed string literal (type TEXT until context decides) */
    bool notnull;  /* never NULL */
    bool negate;   /* IN / DISTINCT: the NOT form */
    int test;      /* EK_TEST: tm_expr_test_t */
    int column;    /* EK_COLUMN */
    const char *name; /* column name, or the function/operator spelling for EK_CALL */
    const tm__func_t *fn;
    tm_datum_t value; /* EK_CONST */
    bool isnull;      /* EK_CONST */
    const char *text; /* unknown literal text */
    tm_expr_t **args;
    int nargs;
    bool has_operand, has_else; /* EK_CASE: args = [operand], w1, t1, …, [else] */
    tm_type_t cmp_type;         /* the type comparisons of this node run in */
    int cmp_op;                 /* EK_CALL comparisons: TM__CMP_* */
};

enum { TM__CMP_EQ = 1, TM__CMP_NE, TM__CMP_LT, TM__CMP_LE, TM__CMP_GT, TM__CMP_GE };

struct tm_expr_pool {
    tm_arena_t arena;
};

/* ---- types.c ---- */

/* PostgreSQL's type category letter: 'N' numeric, 'S' string, 'D' datetime, 'T' timespan, 'B' bool, … */
char tm__type_category(tm_type_t t);
bool tm__type_preferred(tm_type_t t);
/* True when PostgreSQL casts `from` to `to` implicitly. */
bool tm__can_implicit(tm_type_t from, tm_type_t to);
/* Rank inside the numeric category: int2 1, int4 2, int8 3, numeric 4, float4 5, float8 6; else 0. */
int tm__num_rank(tm_type_t t);
/* A plain expression type of `t` (unconstrained numeric). */
tm_expr_type_t tm__etype(tm_type_t t);
/* The SQL name of a bare type ("integer", "text", …). */
const char *tm__type_sql_name(tm_type_t t);

/* ---- func.c ---- */

/* Resolves name(args) in the function table; fills *fn and the argument types to cast to. */
int tm__func_resolve(const char *name, tm_expr_t *const *args, int nargs, const tm__func_t **fn,
                     char *errstr, size_t errstr_size);
bool tm__func_exists(const char *name);
/* Implementations shared with the operator builder. */
extern const tm__func_t tm__fn_cmp;
extern const tm__func_t tm__fn_like[4];
extern const tm__func_t tm__fn_concat_op;
/* Arithmetic and date/time operator implementations, chosen by expr.c. */
int tm__op_arith(const tm_expr_t *e, const tm_datum_t *args, const bool *nulls,
                 const tm_eval_env_t *env, tm_datum_t *out, bool *isnull, char *errstr,
                 size_t errstr_size);
int tm__op_json(const tm_expr_t *e, const tm_datum_t *args, const bool *nulls,
                const tm_eval_env_t *env, tm_datum_t *out, bool *isnull, char *errstr,
                size_t errstr_size);

/* ---- cast.c ---- */

/*
 * Converts `in` of type `from` to type `to` (typmod applied).  Variable
 * results go to `arena`.  TM_EINVAL with PostgreSQL's message on a bad value.
 */
int tm__cast_datum(tm_type_t from, const tm_datum_t *in, const tm_expr_type_t *to,
                   tm_arena_t *arena, tm_datum_t *out, char *errstr, size_t errstr_size);
/* True when an explicit cast from -> to exists. */
bool tm__cast_exists(tm_type_t from, tm_type_t to);
/* The text output of a value (PostgreSQL's typoutput, TimeZone=UTC, IntervalStyle postgres). */
int tm__datum_to_text(tm_type_t type, const tm_datum_t *in, tm_arena_t *arena, const char **ptr,
                      size_t *len);
/* Input of a value from text (PostgreSQL's typinput). */
int tm__datum_from_text(const char *s, size_t len, const tm_expr_type_t *to, tm_arena_t *arena,
                        tm_datum_t *out, char *errstr, size_t errstr_size);

/* Calendar helpers (proleptic Gregorian, days since 1970-01-01). */
int64_t tm__days_from_civil(int64_t y, int m, int d);
void tm__civil_from_days(int64_t days, int64_t *y, int *m, int *d);

#define TM__US_PER_SEC INT64_C(1000000)
#define TM__US_PER_DAY INT64_C(86400000000)
/* An interval month is 30.4375 days (365.25 / 12), as the PostgreSQL source decodes intervals. */
#define TM__US_PER_MONTH INT64_C(2629800000000)

/* ---- eval.c ---- */
int tm__eval(const tm_expr_t *e, const tm_row_t *row, const tm_eval_env_t *env, tm_datum_t *out,
             bool *isnull, char *errstr, size_t errstr_size);

#endif
