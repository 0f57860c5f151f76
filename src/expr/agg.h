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

#include "core/buf.h"
#include "expr/expr.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* ---- accumulators (added with group_agg; thread: any, pure) ---- */

/* Distinct numeric scales an accumulator tracks exactly (more are merged upwards). */
#define TM_AGG_SCALES 16

/*
 * The running state of one aggregate call over one group.  Which fields
 * are used depends on the call: count → n; sum/avg of integers → n, isum;
 * of numerics → n, the special-value counts, isum at `scale` and the scale
 * histogram (the result's display scale is the largest scale among the
 * values present, as PostgreSQL's); of floats → n, special counts, fsum;
 * bool_and/bool_or → n, ntrue; min, max, string_agg → n only (their values
 * are in the group's multiset, kept by group_agg).  Under DISTINCT the
 * accumulator sees each distinct value once (group_agg feeds it the
 * multiset's 0 → 1 and 1 → 0 transitions).
 */
typedef struct tm_agg_acc {
    int64_t n;                  /* inputs counted (rows for count(*), else non-NULL values) */
    int64_t ntrue;              /* bool_and / bool_or: true inputs */
    int64_t nnan, npinf, nninf; /* NaN, +Infinity, -Infinity inputs of sum/avg */
    __int128 isum;              /* integer sum; numeric sum at `scale` */
    double fsum;                /* float sum of the finite inputs */
    int32_t scale;
    int nscales;
    struct {
        int32_t scale;
        int64_t count;
    } scales[TM_AGG_SCALES]; /* only [0, nscales) is defined (init leaves the rest) */
} tm_agg_acc_t;

void tm_agg_acc_init(tm_agg_acc_t *acc);
/*
 * Accumulates (sign +1) or retracts (sign -1) one input: `d` is the
 * non-NULL argument value, or NULL for count(*).  Returns 0, or TM_EINVAL
 * with a message when the value cannot be summed (a numeric sum beyond 38
 * digits, an infinite or NaN numeric's text unknown); acc is then unchanged.
 */
int tm_agg_acc_update(const tm_agg_call_t *call, tm_agg_acc_t *acc, const tm_datum_t *d,
                      int sign, char *errstr, size_t errstr_size);
/* acc += other (two partial accumulators of the same call).  0 or TM_EINVAL on overflow. */
int tm_agg_acc_merge(const tm_agg_call_t *call, tm_agg_acc_t *acc, const tm_agg_acc_t *other,
                     char *errstr, size_t errstr_size);
/*
 * The result of count, sum, avg, bool_and and bool_or from `acc`: *isnull,
 * or *out (numeric results may be allocated in `batch`'s arena).  Returns 0,
 * TM_EINVAL for a result out of its type's range ("bigint out of range"), or
 * TM_ENOMEM.  min, max and string_agg are computed from the multiset.
 */
int tm_agg_acc_get(const tm_agg_call_t *call, const tm_agg_acc_t *acc, tm_batch_t *batch,
                   tm_datum_t *out, bool *isnull, char *errstr, size_t errstr_size);
/* Appends / reads the accumulator's bytes (the group_agg state format). */
int tm_agg_acc_encode(const tm_agg_call_t *call, const tm_agg_acc_t *acc, tm_buf_t *out);
/* Reads from *p (advanced past the accumulator); TM_ECORRUPT when malformed. */
int tm_agg_acc_decode(const tm_agg_call_t *call, tm_agg_acc_t *acc, const uint8_t **p,
                      const uint8_t *end);

/* True when the call keeps the multiset of its values (min, max, string_agg, DISTINCT). */
bool tm_agg_keeps_values(const tm_agg_call_t *call);

/*
 * Order-preserving ("memcomparable") encoding of a non-NULL value: two
 * values compare with memcmp() as tm_datum_compare() orders them (text and
 * other variable-length types bytewise, NaN above every number), and equal
 * values (1.5 and 1.50, -0.0 and 0.0) encode equally.  The encoding is not
 * self-delimiting: it is the last component of a key.  Returns 0, TM_ENOMEM,
 * or TM_EINVAL for an unavailable datum.
 */
int tm_agg_value_encode(tm_type_t type, const tm_datum_t *d, tm_buf_t *out);
/*
 * Decodes tm_agg_value_encode()'s bytes into *out (variable-length data in
 * `batch`'s arena).  A numeric comes back with scale `scale` (the scale of
 * the value first stored; the encoding normalises it away) or more if the
 * value needs it.  Returns 0, TM_ECORRUPT or TM_ENOMEM.
 */
int tm_agg_value_decode(tm_type_t type, const uint8_t *p, size_t len, int32_t scale,
                        tm_batch_t *batch, tm_datum_t *out);

#endif
