/*
 * agg.h — aggregate functions (DESIGN §13): resolution and result types
 * for the binder, and accumulate / retract / merge / get for group_agg.
 *
 * Supported: count(*), count(x), count(DISTINCT x), sum, min, max, avg,
 * bool_and, bool_or, string_agg(x, sep) — each also with DISTINCT where
 * PostgreSQL allows it.  Result types are PostgreSQL's: count → bigint;
 * sum(smallint|integer) → bigint; sum(bigint|numeric) → numeric;
 * sum(real) → real; sum(double) → double; avg(integer types|numeric) →
 * numeric; avg(real|double) → double; min/max → the argument type;
 * bool_and/bool_or → boolean; string_agg(text, text) → text.
 *
 * Retraction: every aggregate is correct under deletes and updates of its
 * input.  min, max, string_agg and every DISTINCT aggregate keep the
 * multiset of the values they need in state (value → count), not only the
 * current result; count/sum/avg keep counts and sums (sum also counts its
 * non-NULL inputs, so retracting the last one gives NULL again).
 * string_agg orders its values by value (as string_agg(x, sep ORDER BY x)),
 * so its result does not depend on arrival order; docs/sql.md says so.
 *
 * Thread: any; the functions here are pure.  State handling is in
 * operators/group_agg.c.
 */
#ifndef TM_EXPR_AGG_H
#define TM_EXPR_AGG_H

#include "expr/expr.h"

#include <stdbool.h>
#include <stddef.h>

typedef enum tm_agg_kind {
    TM_AGG_COUNT_STAR = 1,
    TM_AGG_COUNT,
    TM_AGG_SUM,
    TM_AGG_MIN,
    TM_AGG_MAX,
    TM_AGG_AVG,
    TM_AGG_BOOL_AND,
    TM_AGG_BOOL_OR,
    TM_AGG_STRING_AGG,
} tm_agg_kind_t;

/* One aggregate call of a query, after binding. */
typedef struct tm_agg_call {
    tm_agg_kind_t kind;
    bool distinct;
    int arg;                 /* input column of the argument; -1 for count(*) */
    tm_expr_type_t arg_type;
    tm_expr_type_t result_type;
    char *separator;         /* string_agg: the constant separator (NULL = NULL separator) */
} tm_agg_call_t;

/* True when `name` (case-insensitive) is an aggregate function. */
bool tm_agg_is_aggregate(const char *name);
/*
 * Resolves name(args) into *out (arg left -1: the binder sets it).  `star`
 * for count(*).  Returns 0 or TM_ESQL naming the function and the
 * argument types ("function sum(text) does not exist").
 */
int tm_agg_resolve(const char *name, bool star, bool distinct, const tm_expr_type_t *arg_types,
                   int nargs, tm_agg_call_t *out, char *errstr, size_t errstr_size);
const char *tm_agg_name(tm_agg_kind_t kind);

#endif
