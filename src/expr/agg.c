/*
 * agg.c — aggregate functions: resolution, accumulators under retraction,
 * and the order-preserving value encoding of their multisets (see agg.h).
 *
 * Invariants:
 *   1. Every accumulator operation is exact and invertible except float
 *      sums: integer and numeric sums are 128-bit integers, and NaN and the
 *      infinities are counted apart from the finite sum, so retracting an
 *      Infinity gives the finite sum back instead of NaN.  A float sum is
 *      reset to 0 when its last finite input is retracted, so rounding
 *      drift does not outlive the values that caused it.
 *   2. tm_agg_acc_update() either applies the whole change or none of it.
 *   3. avg over integers and numerics is PostgreSQL's numeric division
 *      (core/numeric.h tm_num_div: select_div_scale, at least 16
 *      significant digits, never fewer decimals than the sum, round half
 *      away from zero) of the sum at its display scale by the count.
 *   4. tm_agg_value_encode() of two values compares with memcmp() as the
 *      values compare, and equal values give equal bytes.
 *
 * Thread: any; no shared state.
 */
#include "expr/agg.h"
#include "core/datum.h"
#include "core/error.h"
#include "core/numeric.h"
#include "expr/expr_int.h"

#include <math.h>
#include <stdio.h>
#include <stddef.h>
#include <string.h>
#include <strings.h>

/* ---- resolution ---- */

static const struct {
    const char *name;
    tm_agg_kind_t kind;
} agg_names[] = {
    {"count", TM_AGG_COUNT},       {"sum", TM_AGG_SUM},         {"min", TM_AGG_MIN},
    {"max", TM_AGG_MAX},           {"avg", TM_AGG_AVG},         {"bool_and", TM_AGG_BOOL_AND},
    {"every", TM_AGG_BOOL_AND},    {"bool_or", TM_AGG_BOOL_OR}, {"string_agg", TM_AGG_STRING_AGG},
};

bool tm_agg_is_aggregate(const char *name)
{
    for (size_t i = 0; name != NULL && i < sizeof(agg_names) / sizeof(agg_names[0]); i++)
        if (strcasecmp(name, agg_names[i].name) == 0)
            return true;
    return false;
}

const char *tm_agg_name(tm_agg_kind_t kind)
{
    switch (kind) {
    case TM_AGG_COUNT_STAR:
    case TM_AGG_COUNT:
        return "count";
    case TM_AGG_SUM:
        return "sum";
    case TM_AGG_MIN:
        return "min";
    case TM_AGG_MAX:
        return "max";
    case TM_AGG_AVG:
        return "avg";
    case TM_AGG_BOOL_AND:
        return "bool_and";
    case TM_AGG_BOOL_OR:
        return "bool_or";
    case TM_AGG_STRING_AGG:
        return "string_agg";
    }
    return "?";
}

static bool is_int(tm_type_t t)
{
    return t == TM_T_INT16 || t == TM_T_INT32 || t == TM_T_INT64;
}

static bool is_float(tm_type_t t)
{
    return t == TM_T_FLOAT32 || t == TM_T_FLOAT64;
}

/* Types whose order min/max may use: those tm_datum_compare() orders as PostgreSQL does. */
static bool is_ordered(tm_type_t t)
{
    switch (t) {
    case TM_T_INT16:
    case TM_T_INT32:
    case TM_T_INT64:
    case TM_T_FLOAT32:
    case TM_T_FLOAT64:
    case TM_T_NUMERIC:
    case TM_T_TEXT:
    case TM_T_DATE:
    case TM_T_TIME:
    case TM_T_TIMETZ:
    case TM_T_TIMESTAMP:
    case TM_T_TIMESTAMPTZ:
    case TM_T_INTERVAL:
        return true;
    default:
        return false;
    }
}

static void set_type(tm_expr_type_t *t, tm_type_t type)
{
    memset(t, 0, sizeof(*t));
    t->type = type;
    t->precision = -1;
    t->scale = TM_SCALE_VARIABLE;
}

static int no_such_function(const char *name, const tm_expr_type_t *arg_types, int nargs,
                            char *errstr, size_t errstr_size)
{
    char args[256] = "";
    size_t at = 0;
    for (int i = 0; i < nargs && at < sizeof(args); i++)
        at += (size_t)snprintf(args + at, sizeof(args) - at, "%s%s", i ? ", " : "",
                               tm__type_sql_name(arg_types[i].type));
    return tm_seterr(errstr, errstr_size, TM_ESQL,
                     "function %s(%s) does not exist; no aggregate of that name accepts these "
                     "argument types (add an explicit cast)",
                     name, args);
}

int tm_agg_resolve(const char *name, bool star, bool distinct, const tm_expr_type_t *arg_types,
                   int nargs, tm_agg_call_t *out, char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    out->arg = -1;
    out->distinct = distinct;
    int kind = 0;
    for (size_t i = 0; name != NULL && i < sizeof(agg_names) / sizeof(agg_names[0]); i++)
        if (strcasecmp(name, agg_names[i].name) == 0)
            kind = agg_names[i].kind;
    if (kind == 0)
        return tm_seterr(errstr, errstr_size, TM_ESQL, "%s is not an aggregate function",
                         name ? name : "(null)");
    const char *lname = tm_agg_name((tm_agg_kind_t)kind);
    if (star) {
        if (kind != TM_AGG_COUNT || nargs != 0)
            return tm_seterr(errstr, errstr_size, TM_ESQL,
                             "%s(*) must be used to call a parameterless aggregate function; "
                             "only count(*) exists",
                             lname);
        if (distinct)
            return tm_seterr(errstr, errstr_size, TM_ESQL,
                             "count(DISTINCT *) is not valid; write count(DISTINCT column)");
        out->kind = TM_AGG_COUNT_STAR;
        set_type(&out->result_type, TM_T_INT64);
        return 0;
    }
    int want = kind == TM_AGG_STRING_AGG ? 2 : 1;
    if (nargs != want)
        return no_such_function(lname, arg_types, nargs, errstr, errstr_size);
    tm_type_t t = arg_types[0].type;
    out->kind = (tm_agg_kind_t)kind;
    out->arg_type = arg_types[0];
    switch (kind) {
    case TM_AGG_COUNT:
        set_type(&out->result_type, TM_T_INT64);
        return 0;
    case TM_AGG_SUM:
        if (t == TM_T_INT16 || t == TM_T_INT32)
            set_type(&out->result_type, TM_T_INT64);
        else if (t == TM_T_INT64 || t == TM_T_NUMERIC)
            set_type(&out->result_type, TM_T_NUMERIC);
        else if (is_float(t))
            set_type(&out->result_type, t);
        else
            break;
        return 0;
    case TM_AGG_AVG:
        if (is_int(t) || t == TM_T_NUMERIC)
            set_type(&out->result_type, TM_T_NUMERIC);
        else if (is_float(t))
            set_type(&out->result_type, TM_T_FLOAT64);
        else
            break;
        return 0;
    case TM_AGG_MIN:
    case TM_AGG_MAX:
        if (!is_ordered(t))
            break;
        out->result_type = arg_types[0];
        return 0;
    case TM_AGG_BOOL_AND:
    case TM_AGG_BOOL_OR:
        if (t != TM_T_BOOL)
            break;
        set_type(&out->result_type, TM_T_BOOL);
        return 0;
    case TM_AGG_STRING_AGG:
        if (t != TM_T_TEXT || arg_types[1].type != TM_T_TEXT)
            break;
        set_type(&out->result_type, TM_T_TEXT);
        return 0;
    }
    return no_such_function(lname, arg_types, nargs, errstr, errstr_size);
}

bool tm_agg_keeps_values(const tm_agg_call_t *call)
{
    return call->distinct || call->kind == TM_AGG_MIN || call->kind == TM_AGG_MAX ||
           call->kind == TM_AGG_STRING_AGG;
}

/* ---- accumulators ---- */

typedef enum { ACC_COUNT, ACC_INT, ACC_NUM, ACC_FLOAT, ACC_BOOL } acc_kind_t;

static acc_kind_t acc_kind(const tm_agg_call_t *call)
{
    switch (call->kind) {
    case TM_AGG_SUM:
    case TM_AGG_AVG:
        if (call->arg_type.type == TM_T_NUMERIC)
            return ACC_NUM;
        return is_float(call->arg_type.type) ? ACC_FLOAT : ACC_INT;
    case TM_AGG_BOOL_AND:
    case TM_AGG_BOOL_OR:
        return ACC_BOOL;
    default:
        return ACC_COUNT;
    }
}

void tm_agg_acc_init(tm_agg_acc_t *acc)
{
    /* scales[] is read only below nscales: every group of every batch skips zeroing it. */
    memset(acc, 0, offsetof(tm_agg_acc_t, scales));
}

/* v * 10^k without overflow; false when it does not fit. */
static bool mul_pow10(__int128 *v, int k)
{
    for (; k > 0; k--)
        if (__builtin_mul_overflow(*v, 10, v))
            return false;
    return true;
}

/* The kind of a NaN-flagged numeric from its text: 0 NaN, 1 +Infinity, -1 -Infinity. */
static int numeric_special(const tm_datum_t *d)
{
    const char *s = d->u.var.ptr;
    size_t n = d->u.var.len;
    if (s == NULL || n == 0)
        return 0;
    bool neg = s[0] == '-';
    if (s[0] == '-' || s[0] == '+')
        s++, n--;
    if (n >= 3 && strncasecmp(s, "inf", 3) == 0)
        return neg ? -1 : 1;
    return 0;
}

/* Adds `delta` values of `scale` to the histogram; merges upwards when it is full. */
static void scale_count(tm_agg_acc_t *acc, int32_t scale, int64_t delta)
{
    for (int i = 0; i < acc->nscales; i++) {
        if (acc->scales[i].scale != scale)
            continue;
        acc->scales[i].count += delta;
        if (acc->scales[i].count <= 0)
            acc->scales[i] = acc->scales[--acc->nscales];
        return;
    }
    if (delta <= 0)
        return; /* retracting a scale never counted: nothing to undo */
    if (acc->nscales == TM_AGG_SCALES) {
        /*
         * Full: fold the smallest scale into the next larger one.  The
         * display scale can then stay larger than PostgreSQL's, never
         * smaller, so the sum is always shown exactly.
         */
        int lo = 0, next = -1;
        for (int i = 1; i < acc->nscales; i++)
            if (acc->scales[i].scale < acc->scales[lo].scale)
                lo = i;
        if (scale < acc->scales[lo].scale) {
            acc->scales[lo].count += delta;
            return;
        }
        for (int i = 0; i < acc->nscales; i++)
            if (i != lo && (next < 0 || acc->scales[i].scale < acc->scales[next].scale))
                next = i;
        acc->scales[next].count += acc->scales[lo].count;
        acc->scales[lo] = acc->scales[--acc->nscales];
    }
    acc->scales[acc->nscales].scale = scale;
    acc->scales[acc->nscales].count = delta;
    acc->nscales++;
}

static int num_update(const tm_agg_call_t *call, tm_agg_acc_t *acc, const tm_datum_t *d, int sign,
                      char *errstr, size_t errstr_size)
{
    if (d->flags & TM_DATUM_NAN) {
        int k = numeric_special(d);
        if (k == 0)
            acc->nnan += sign;
        else if (k > 0)
            acc->npinf += sign;
        else
            acc->nninf += sign;
        acc->n += sign;
        return 0;
    }
    if (d->flags & TM_DATUM_WIDE)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "%s(numeric): the value %.*s has more than 38 digits, which the "
                         "aggregate cannot sum exactly",
                         tm_agg_name(call->kind), (int)(d->u.var.len > 60 ? 60 : d->u.var.len),
                         d->u.var.ptr ? d->u.var.ptr : "");
    __int128 v = d->u.dec;
    int32_t scale = d->scale;
    if (scale < 0) {
        if (!mul_pow10(&v, -scale))
            goto overflow;
        scale = 0;
    }
    if (scale > 1000)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "%s(numeric): a scale of %d is beyond numeric's 1000 decimals",
                         tm_agg_name(call->kind), (int)scale);
    __int128 sum = acc->isum;
    int32_t sscale = acc->scale;
    if (scale > sscale) {
        if (!mul_pow10(&sum, scale - sscale))
            goto overflow;
        sscale = scale;
    } else if (!mul_pow10(&v, sscale - scale)) {
        goto overflow;
    }
    if (sign < 0 ? __builtin_sub_overflow(sum, v, &sum) : __builtin_add_overflow(sum, v, &sum))
        goto overflow;
    acc->isum = sum;
    acc->scale = sscale;
    acc->n += sign;
    scale_count(acc, scale, sign);
    return 0;
overflow:
    return tm_seterr(errstr, errstr_size, TM_EINVAL,
                     "%s(numeric): the sum exceeds 38 significant digits (numeric field overflow)",
                     tm_agg_name(call->kind));
}

int tm_agg_acc_update(const tm_agg_call_t *call, tm_agg_acc_t *acc, const tm_datum_t *d,
                      int sign, char *errstr, size_t errstr_size)
{
    if (d != NULL && (d->flags & TM_DATUM_UNAVAILABLE))
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "%s: the argument is an unchanged TOASTed value the source did not send "
                         "(set REPLICA IDENTITY FULL on the table)",
                         tm_agg_name(call->kind));
    switch (acc_kind(call)) {
    case ACC_COUNT:
        acc->n += sign;
        return 0;
    case ACC_BOOL:
        acc->n += sign;
        if (d->u.b)
            acc->ntrue += sign;
        return 0;
    case ACC_INT: {
        __int128 s;
        if (sign < 0 ? __builtin_sub_overflow(acc->isum, (__int128)d->u.i64, &s)
                     : __builtin_add_overflow(acc->isum, (__int128)d->u.i64, &s))
            return tm_seterr(errstr, errstr_size, TM_EINVAL, "%s: integer sum out of range",
                             tm_agg_name(call->kind));
        acc->isum = s;
        acc->n += sign;
        return 0;
    }
    case ACC_FLOAT: {
        double v = d->u.f64;
        if (isnan(v))
            acc->nnan += sign;
        else if (isinf(v))
            *(v > 0 ? &acc->npinf : &acc->nninf) += sign;
        else
            acc->fsum += sign < 0 ? -v : v;
        acc->n += sign;
        if (acc->n - acc->nnan - acc->npinf - acc->nninf <= 0)
            acc->fsum = 0.0; /* invariant 1 */
        return 0;
    }
    case ACC_NUM:
        return num_update(call, acc, d, sign, errstr, errstr_size);
    }
    return TM_EINVAL;
}

int tm_agg_acc_merge(const tm_agg_call_t *call, tm_agg_acc_t *acc, const tm_agg_acc_t *other,
                     char *errstr, size_t errstr_size)
{
    tm_agg_acc_t r = *acc;
    r.n += other->n;
    r.ntrue += other->ntrue;
    r.nnan += other->nnan;
    r.npinf += other->npinf;
    r.nninf += other->nninf;
    r.fsum += other->fsum;
    __int128 a = acc->isum, b = other->isum;
    int32_t scale = acc->scale;
    if (acc_kind(call) == ACC_NUM) {
        scale = acc->scale > other->scale ? acc->scale : other->scale;
        if (!mul_pow10(&a, scale - acc->scale) || !mul_pow10(&b, scale - other->scale))
            goto overflow;
        for (int i = 0; i < other->nscales; i++)
            scale_count(&r, other->scales[i].scale, other->scales[i].count);
    }
    if (__builtin_add_overflow(a, b, &r.isum))
        goto overflow;
    r.scale = scale;
    *acc = r;
    return 0;
overflow:
    return tm_seterr(errstr, errstr_size, TM_EINVAL, "%s: sum out of range when merging",
                     tm_agg_name(call->kind));
}

/* Sets *out from a decimal text through the numeric parser (wide values keep their text). */
static int numeric_from_text(tm_batch_t *batch, tm_datum_t *out, const char *text)
{
    memset(out, 0, sizeof(*out));
    int rc = tm_numeric_parse(batch, out, text, strlen(text));
    return rc == TM_EINVAL ? TM_ECORRUPT : rc;
}

/*
 * sum / cnt as PostgreSQL's avg: numeric division of the sum, shown at its
 * display scale `dscale` (exact: every value present has scale <= dscale),
 * by the count (invariant 3).  `sum` is unscaled at `scale` >= dscale.
 */
static int numeric_avg(__int128 sum, int scale, int dscale, int64_t cnt, tm_batch_t *batch,
                       tm_datum_t *out, char *errstr, size_t errstr_size)
{
    for (int k = scale; k > dscale; k--)
        sum /= 10;
    tm_datum_t a, b;
    tm_num_from_dec(sum, dscale, &a);
    tm_num_from_int(cnt, &b);
    memset(out, 0, sizeof(*out));
    return tm_num_div(&a, &b, batch != NULL ? &batch->arena : NULL, out, errstr, errstr_size);
}

/* NaN / ±Infinity result of a sum or avg with special inputs; false when there are none. */
static bool special_result(const tm_agg_acc_t *acc, const char **text, double *f)
{
    if (acc->nnan > 0 || (acc->npinf > 0 && acc->nninf > 0)) {
        *text = "NaN";
        *f = NAN;
    } else if (acc->npinf > 0) {
        *text = "Infinity";
        *f = INFINITY;
    } else if (acc->nninf > 0) {
        *text = "-Infinity";
        *f = -INFINITY;
    } else {
        return false;
    }
    return true;
}

static int32_t display_scale(const tm_agg_acc_t *acc)
{
    int32_t d = 0;
    for (int i = 0; i < acc->nscales; i++)
        if (acc->scales[i].scale > d)
            d = acc->scales[i].scale;
    return d > acc->scale ? acc->scale : d;
}

int tm_agg_acc_get(const tm_agg_call_t *call, const tm_agg_acc_t *acc, tm_batch_t *batch,
                   tm_datum_t *out, bool *isnull, char *errstr, size_t errstr_size)
{
    memset(out, 0, sizeof(*out));
    *isnull = false;
    if (call->kind == TM_AGG_COUNT || call->kind == TM_AGG_COUNT_STAR) {
        out->u.i64 = acc->n > 0 ? acc->n : 0;
        return 0;
    }
    if (acc->n <= 0) {
        *isnull = true; /* no input: PostgreSQL's NULL for every aggregate but count */
        return 0;
    }
    const char *stext;
    double sf;
    switch (call->kind) {
    case TM_AGG_BOOL_AND:
        out->u.b = acc->ntrue >= acc->n;
        return 0;
    case TM_AGG_BOOL_OR:
        out->u.b = acc->ntrue > 0;
        return 0;
    case TM_AGG_SUM:
    case TM_AGG_AVG:
        break;
    default:
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "%s has no accumulator result: it is computed from its values",
                         tm_agg_name(call->kind));
    }
    bool avg = call->kind == TM_AGG_AVG;
    switch (acc_kind(call)) {
    case ACC_INT:
        if (avg)
            return numeric_avg(acc->isum, 0, 0, acc->n, batch, out, errstr, errstr_size);
        if (call->result_type.type == TM_T_INT64) {
            if (acc->isum > INT64_MAX || acc->isum < INT64_MIN)
                return tm_seterr(errstr, errstr_size, TM_EINVAL, "bigint out of range");
            out->u.i64 = (int64_t)acc->isum;
        } else {
            out->u.dec = acc->isum;
            out->scale = 0;
        }
        return 0;
    case ACC_FLOAT:
        if (special_result(acc, &stext, &sf)) {
            out->u.f64 = sf;
        } else {
            int64_t finite = acc->n - acc->nnan - acc->npinf - acc->nninf;
            out->u.f64 = avg ? acc->fsum / (double)finite : acc->fsum;
        }
        if (call->result_type.type == TM_T_FLOAT32)
            out->u.f64 = (double)(float)out->u.f64;
        return 0;
    case ACC_NUM: {
        if (special_result(acc, &stext, &sf))
            return numeric_from_text(batch, out, stext);
        int32_t d = display_scale(acc);
        int64_t finite = acc->n;
        if (avg)
            return numeric_avg(acc->isum, acc->scale, d, finite, batch, out, errstr, errstr_size);
        __int128 v = acc->isum;
        for (int32_t k = acc->scale; k > d; k--)
            v /= 10; /* exact: every value present has scale <= d */
        out->u.dec = v;
        out->scale = (int16_t)d;
        return 0;
    }
    default:
        return TM_EINVAL;
    }
}

/* ---- accumulator bytes (varints and zigzag from core/buf.h) ---- */

static int put_i128(tm_buf_t *out, __int128 v)
{
    uint8_t b[16];
    unsigned __int128 u = (unsigned __int128)v;
    for (int i = 0; i < 16; i++)
        b[i] = (uint8_t)(u >> (8 * i));
    return tm_buf_append(out, b, 16);
}

static int get_i128(const uint8_t **p, const uint8_t *end, __int128 *v)
{
    if (end - *p < 16)
        return TM_ECORRUPT;
    unsigned __int128 u = 0;
    for (int i = 0; i < 16; i++)
        u |= (unsigned __int128)(*p)[i] << (8 * i);
    *p += 16;
    *v = (__int128)u;
    return 0;
}

int tm_agg_acc_encode(const tm_agg_call_t *call, const tm_agg_acc_t *acc, tm_buf_t *out)
{
    int rc = tm_buf_put_zigzag(out, acc->n);
    switch (acc_kind(call)) {
    case ACC_COUNT:
        break;
    case ACC_BOOL:
        rc = rc ? rc : tm_buf_put_zigzag(out, acc->ntrue);
        break;
    case ACC_INT:
        rc = rc ? rc : put_i128(out, acc->isum);
        break;
    case ACC_FLOAT: {
        uint64_t bits;
        memcpy(&bits, &acc->fsum, 8);
        rc = rc ? rc : tm_buf_put_zigzag(out, acc->nnan);
        rc = rc ? rc : tm_buf_put_zigzag(out, acc->npinf);
        rc = rc ? rc : tm_buf_put_zigzag(out, acc->nninf);
        for (int i = 0; rc == 0 && i < 8; i++)
            rc = tm_buf_putc(out, (char)(uint8_t)(bits >> (8 * i)));
        break;
    }
    case ACC_NUM:
        rc = rc ? rc : tm_buf_put_zigzag(out, acc->nnan);
        rc = rc ? rc : tm_buf_put_zigzag(out, acc->npinf);
        rc = rc ? rc : tm_buf_put_zigzag(out, acc->nninf);
        rc = rc ? rc : tm_buf_put_zigzag(out, acc->scale);
        rc = rc ? rc : put_i128(out, acc->isum);
        rc = rc ? rc : tm_buf_put_varint(out, (uint64_t)acc->nscales);
        for (int i = 0; rc == 0 && i < acc->nscales; i++) {
            rc = tm_buf_put_zigzag(out, acc->scales[i].scale);
            rc = rc ? rc : tm_buf_put_zigzag(out, acc->scales[i].count);
        }
        break;
    }
    return rc;
}

int tm_agg_acc_decode(const tm_agg_call_t *call, tm_agg_acc_t *acc, const uint8_t **p,
                      const uint8_t *end)
{
    tm_agg_acc_init(acc);
    int64_t v;
    if (tm_buf_get_zigzag(p, end, &acc->n) != 0)
        return TM_ECORRUPT;
    switch (acc_kind(call)) {
    case ACC_COUNT:
        return 0;
    case ACC_BOOL:
        return tm_buf_get_zigzag(p, end, &acc->ntrue);
    case ACC_INT:
        return get_i128(p, end, &acc->isum);
    case ACC_FLOAT: {
        if (tm_buf_get_zigzag(p, end, &acc->nnan) || tm_buf_get_zigzag(p, end, &acc->npinf) ||
            tm_buf_get_zigzag(p, end, &acc->nninf) || end - *p < 8)
            return TM_ECORRUPT;
        uint64_t bits = 0;
        for (int i = 0; i < 8; i++)
            bits |= (uint64_t)(*p)[i] << (8 * i);
        *p += 8;
        memcpy(&acc->fsum, &bits, 8);
        return 0;
    }
    case ACC_NUM: {
        uint64_t ns;
        if (tm_buf_get_zigzag(p, end, &acc->nnan) || tm_buf_get_zigzag(p, end, &acc->npinf) ||
            tm_buf_get_zigzag(p, end, &acc->nninf) || tm_buf_get_zigzag(p, end, &v) || v < 0 ||
            v > INT16_MAX || get_i128(p, end, &acc->isum) || tm_buf_get_varint(p, end, &ns) ||
            ns > TM_AGG_SCALES)
            return TM_ECORRUPT;
        acc->scale = (int32_t)v;
        acc->nscales = (int)ns;
        for (int i = 0; i < acc->nscales; i++) {
            if (tm_buf_get_zigzag(p, end, &v) || v < INT16_MIN || v > INT16_MAX ||
                tm_buf_get_zigzag(p, end, &acc->scales[i].count))
                return TM_ECORRUPT;
            acc->scales[i].scale = (int32_t)v;
        }
        return 0;
    }
    }
    return TM_ECORRUPT;
}

/* ---- order-preserving value encoding ---- */

/* Numeric tags, in value order. */
enum {
    NUM_NEG_INF = 0x10,
    NUM_NEG = 0x20,
    NUM_ZERO = 0x30,
    NUM_POS = 0x40,
    NUM_POS_INF = 0x50,
    NUM_NAN = 0x60,
};

static int put_be64(tm_buf_t *out, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (56 - 8 * i));
    return tm_buf_append(out, b, 8);
}

static uint64_t get_be64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

/*
 * A finite numeric as sign, significant digits (no leading or trailing
 * zeros) and exponent x, value = 0.DIGITS × 10^x.  Reads the decimal text
 * (with an optional exponent), so exact and wide values take one path.
 * Returns the number of digits (0 for zero) or -1 for malformed text.
 */
static int numeric_digits(const char *s, size_t len, bool *neg, char *digits, size_t cap,
                          long *x)
{
    size_t i = 0, n = 0;
    long point = 0; /* digits before the decimal point, leading zeros included */
    bool seen_point = false, any = false;
    *neg = false;
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (i < len && (s[i] == '-' || s[i] == '+'))
        *neg = s[i++] == '-';
    long lead = 0; /* leading zeros skipped, counted where they matter */
    for (; i < len; i++) {
        char c = s[i];
        if (c == '.' && !seen_point) {
            seen_point = true;
            continue;
        }
        if (c < '0' || c > '9')
            break;
        any = true;
        if (n == 0 && c == '0') {
            if (seen_point)
                lead++;
            continue;
        }
        if (!seen_point)
            point++;
        if (n >= cap)
            return -1;
        digits[n++] = c;
    }
    long e = 0;
    if (i < len && (s[i] == 'e' || s[i] == 'E')) {
        bool eneg = false;
        i++;
        if (i < len && (s[i] == '-' || s[i] == '+'))
            eneg = s[i++] == '-';
        if (i >= len)
            return -1;
        for (; i < len && s[i] >= '0' && s[i] <= '9'; i++)
            if (e < 1000000)
                e = e * 10 + (s[i] - '0');
        e = eneg ? -e : e;
    }
    while (i < len && (s[i] == ' ' || s[i] == '\t'))
        i++;
    if (!any || i != len)
        return -1;
    while (n > 0 && digits[n - 1] == '0')
        n--;
    if (n == 0)
        return 0;
    /* With integer digits, x = their count; else minus the zeros after the point. */
    *x = (point > 0 ? point : -lead) + e;
    return (int)n;
}

static int encode_numeric(const tm_datum_t *d, tm_buf_t *out)
{
    char text[1100];
    size_t tlen;
    if (d->flags & (TM_DATUM_WIDE | TM_DATUM_NAN)) {
        if (d->flags & TM_DATUM_NAN) {
            int k = numeric_special(d);
            return tm_buf_putc(out, (char)(k == 0 ? NUM_NAN : k > 0 ? NUM_POS_INF : NUM_NEG_INF));
        }
        tlen = d->u.var.len;
        if (tlen >= sizeof(text))
            return TM_EINVAL;
        memcpy(text, d->u.var.ptr, tlen);
    } else {
        tlen = tm_numeric_format(d, text, sizeof(text));
    }
    char digits[1100];
    bool neg;
    long x = 0;
    int n = numeric_digits(text, tlen, &neg, digits, sizeof(digits), &x);
    if (n < 0)
        return TM_EINVAL;
    if (n == 0)
        return tm_buf_putc(out, (char)NUM_ZERO);
    /* Larger exponents are larger magnitudes; negatives invert everything after the tag. */
    uint32_t ex = (uint32_t)(int32_t)x ^ 0x80000000u;
    if (neg)
        ex = ~ex;
    uint8_t hdr[5] = {neg ? NUM_NEG : NUM_POS, (uint8_t)(ex >> 24), (uint8_t)(ex >> 16),
                      (uint8_t)(ex >> 8), (uint8_t)ex};
    int rc = tm_buf_append(out, hdr, 5);
    for (int i = 0; rc == 0 && i < n; i++) {
        int dg = digits[i] - '0';
        rc = tm_buf_putc(out, (char)(uint8_t)(neg ? 0x0a - dg : 0x01 + dg));
    }
    /* A negative's terminator sorts above every digit: -0.15 > -0.153. */
    return rc != 0 || !neg ? rc : tm_buf_putc(out, (char)0xff);
}

int tm_agg_value_encode(tm_type_t type, const tm_datum_t *d, tm_buf_t *out)
{
    if (d->flags & TM_DATUM_UNAVAILABLE)
        return TM_EINVAL;
    switch (tm_type_storage(type)) {
    case TM_STORAGE_BOOL:
        return tm_buf_putc(out, d->u.b ? 1 : 0);
    case TM_STORAGE_I64:
        return put_be64(out, (uint64_t)d->u.i64 ^ ((uint64_t)1 << 63));
    case TM_STORAGE_F64: {
        double f = d->u.f64;
        if (f == 0.0)
            f = 0.0; /* -0.0 = 0.0 */
        else if (isnan(f))
            f = NAN; /* one NaN, above +Infinity */
        uint64_t bits;
        memcpy(&bits, &f, 8);
        bits = (bits >> 63) ? ~bits : bits | ((uint64_t)1 << 63);
        return put_be64(out, bits);
    }
    case TM_STORAGE_NUMERIC:
        return encode_numeric(d, out);
    default: /* TM_STORAGE_VAR (and any other value: its bytes as they are) */
        return tm_buf_append(out, d->u.var.ptr, d->u.var.len);
    }
}

static int decode_numeric(const uint8_t *p, size_t len, int32_t scale, tm_batch_t *batch,
                          tm_datum_t *out)
{
    if (len == 1 && p[0] != NUM_NEG && p[0] != NUM_POS) {
        switch (p[0]) {
        case NUM_ZERO: {
            char z[1100] = "0";
            if (scale > 0 && scale < 1000) {
                z[1] = '.';
                memset(z + 2, '0', (size_t)scale);
                z[2 + scale] = '\0';
            }
            return numeric_from_text(batch, out, z);
        }
        case NUM_NAN:
            return numeric_from_text(batch, out, "NaN");
        case NUM_POS_INF:
            return numeric_from_text(batch, out, "Infinity");
        case NUM_NEG_INF:
            return numeric_from_text(batch, out, "-Infinity");
        }
        return TM_ECORRUPT;
    }
    if (len < 6 || (p[0] != NUM_NEG && p[0] != NUM_POS))
        return TM_ECORRUPT;
    bool neg = p[0] == NUM_NEG;
    uint32_t ex = (uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4];
    if (neg)
        ex = ~ex;
    long x = (int32_t)(ex ^ 0x80000000u);
    size_t n = len - 5 - (neg ? 1 : 0);
    if (n == 0 || n > 1000 || (neg && p[len - 1] != 0xff))
        return TM_ECORRUPT;
    char digits[1001];
    for (size_t i = 0; i < n; i++) {
        int dg = neg ? 0x0a - p[5 + i] : p[5 + i] - 0x01;
        if (dg < 0 || dg > 9)
            return TM_ECORRUPT;
        digits[i] = (char)('0' + dg);
    }
    /* value = DIGITS × 10^(x - n); shown with sc >= n - x decimals. */
    long sc = (long)n - x;
    if (sc < scale)
        sc = scale;
    if (sc < 0)
        sc = 0;
    if (sc > 1000 || x > 1000)
        return TM_ECORRUPT;
    long zeros = x - (long)n + sc; /* trailing zeros of the unscaled value */
    char text[2200];
    size_t t = 0;
    if (neg)
        text[t++] = '-';
    long total = (long)n + zeros; /* digits of the unscaled value */
    if (total <= sc) {
        text[t++] = '0';
        text[t++] = '.';
        for (long i = 0; i < sc - total; i++)
            text[t++] = '0';
        for (long i = 0; i < total; i++)
            text[t++] = i < (long)n ? digits[i] : '0';
    } else {
        for (long i = 0; i < total; i++) {
            if (i == total - sc)
                text[t++] = '.';
            text[t++] = i < (long)n ? digits[i] : '0';
        }
    }
    text[t] = '\0';
    return numeric_from_text(batch, out, text);
}

int tm_agg_value_decode(tm_type_t type, const uint8_t *p, size_t len, int32_t scale,
                        tm_batch_t *batch, tm_datum_t *out)
{
    memset(out, 0, sizeof(*out));
    switch (tm_type_storage(type)) {
    case TM_STORAGE_BOOL:
        if (len != 1 || p[0] > 1)
            return TM_ECORRUPT;
        out->u.b = p[0] != 0;
        return 0;
    case TM_STORAGE_I64:
        if (len != 8)
            return TM_ECORRUPT;
        out->u.i64 = (int64_t)(get_be64(p) ^ ((uint64_t)1 << 63));
        return 0;
    case TM_STORAGE_F64: {
        if (len != 8)
            return TM_ECORRUPT;
        uint64_t bits = get_be64(p);
        bits = (bits >> 63) ? bits & ~((uint64_t)1 << 63) : ~bits;
        memcpy(&out->u.f64, &bits, 8);
        return 0;
    }
    case TM_STORAGE_NUMERIC:
        return decode_numeric(p, len, scale, batch, out);
    default: /* TM_STORAGE_VAR (and any other value: its bytes as they are) */
        return tm_batch_set_var(batch, out, len > 0 ? (const void *)p : "", len);
    }
}
