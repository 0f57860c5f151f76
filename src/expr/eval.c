/*
 * eval.c — the evaluator: walks a built tree over one row.
 *
 * Invariants:
 *   1. Evaluation never writes to a node, so one tree serves many threads.
 *   2. NULL handling is PostgreSQL's three-valued logic: AND/OR decide as
 *      soon as a false/true argument is seen and are NULL only when no
 *      argument decides; strict functions are NULL on any NULL argument.
 *   3. A row error is TM_EINVAL with the message in errstr, never a value.
 *
 * Thread: any.
 */
#include "expr/expr_int.h"

#include "core/datum.h"

#include <string.h>

#define MAX_STACK_ARGS 16

static int eval_call(const tm_expr_t *e, const tm_row_t *row, const tm_eval_env_t *env,
                     tm_datum_t *out, bool *isnull, char *errstr, size_t errstr_size)
{
    tm_datum_t sargs[MAX_STACK_ARGS];
    bool snulls[MAX_STACK_ARGS];
    tm_datum_t *args = sargs;
    bool *nulls = snulls;
    if (e->nargs > MAX_STACK_ARGS) {
        args = tm_arena_alloc(env->arena, sizeof(tm_datum_t) * (size_t)e->nargs);
        nulls = tm_arena_alloc(env->arena, sizeof(bool) * (size_t)e->nargs);
        if (!args || !nulls)
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    }
    bool strict = !(e->fn->flags & TM__FN_NONSTRICT);
    for (int i = 0; i < e->nargs; i++) {
        int rc = tm__eval(e->args[i], row, env, &args[i], &nulls[i], errstr, errstr_size);
        if (rc)
            return rc;
        if (nulls[i] && strict) {
            *isnull = true;
            return 0;
        }
    }
    *isnull = false;
    /* Implementations set only the fields their type uses: the rest (flags, scale) must not be
     * whatever the caller's datum held, or a stale TM_DATUM_UNAVAILABLE bit makes an aggregate
     * over length(note) reject a value the source did send. */
    memset(out, 0, sizeof(*out));
    int rc = e->fn->impl(e, args, nulls, env, out, isnull, errstr, errstr_size);
    if (rc == 0 && !*isnull) {
        /* A value computed from one the source did not send is not known either. */
        for (int i = 0; i < e->nargs; i++)
            if (!nulls[i] && (args[i].flags & TM_DATUM_UNAVAILABLE))
                out->flags |= TM_DATUM_UNAVAILABLE;
    }
    return rc;
}

int tm__eval(const tm_expr_t *e, const tm_row_t *row, const tm_eval_env_t *env, tm_datum_t *out,
             bool *isnull, char *errstr, size_t errstr_size)
{
    int rc;
    tm_datum_t v;
    bool vn;
    switch (e->kind) {
    case EK_CONST:
        *isnull = e->isnull;
        if (!e->isnull)
            *out = e->value;
        return 0;
    case EK_COLUMN:
        if (!row || tm_row_is_null(row, e->column)) {
            *isnull = true;
            return 0;
        }
        *isnull = false;
        *out = row->vals[e->column];
        return 0;
    case EK_CALL:
        return eval_call(e, row, env, out, isnull, errstr, errstr_size);
    case EK_CAST:
        rc = tm__eval(e->args[0], row, env, &v, &vn, errstr, errstr_size);
        if (rc || vn) {
            *isnull = vn;
            return rc;
        }
        *isnull = false;
        return tm__cast_datum(e->args[0]->type.type, &v, &e->type, env->arena, out, errstr,
                              errstr_size);
    case EK_AND:
    case EK_OR: {
        bool decide = e->kind == EK_OR; /* the value that decides the result */
        bool sawnull = false;
        for (int i = 0; i < e->nargs; i++) {
            rc = tm__eval(e->args[i], row, env, &v, &vn, errstr, errstr_size);
            if (rc)
                return rc;
            if (vn) {
                sawnull = true;
            } else if (v.u.b == decide) {
                memset(out, 0, sizeof(*out));
                out->u.b = decide;
                *isnull = false;
                return 0;
            }
        }
        memset(out, 0, sizeof(*out));
        out->u.b = !decide;
        *isnull = sawnull;
        return 0;
    }
    case EK_NOT:
        rc = tm__eval(e->args[0], row, env, &v, &vn, errstr, errstr_size);
        if (rc)
            return rc;
        *isnull = vn;
        memset(out, 0, sizeof(*out));
        out->u.b = !vn && !v.u.b;
        return 0;
    case EK_TEST: {
        rc = tm__eval(e->args[0], row, env, &v, &vn, errstr, errstr_size);
        if (rc)
            return rc;
        bool r = false;
        switch ((tm_expr_test_t)e->test) {
        case TM_TEST_IS_NULL:
            r = vn;
            break;
        case TM_TEST_IS_NOT_NULL:
            r = !vn;
            break;
        case TM_TEST_IS_TRUE:
            r = !vn && v.u.b;
            break;
        case TM_TEST_IS_NOT_TRUE:
            r = vn || !v.u.b;
            break;
        case TM_TEST_IS_FALSE:
            r = !vn && !v.u.b;
            break;
        case TM_TEST_IS_NOT_FALSE:
            r = vn || v.u.b;
            break;
        }
        memset(out, 0, sizeof(*out));
        out->u.b = r;
        *isnull = false;
        return 0;
    }
    case EK_DISTINCT: {
        tm_datum_t w;
        bool wn;
        rc = tm__eval(e->args[0], row, env, &v, &vn, errstr, errstr_size);
        if (!rc)
            rc = tm__eval(e->args[1], row, env, &w, &wn, errstr, errstr_size);
        if (rc)
            return rc;
        bool distinct = (vn || wn) ? vn != wn : !tm_datum_equal(e->cmp_type, &v, &w);
        memset(out, 0, sizeof(*out));
        out->u.b = e->negate ? !distinct : distinct;
        *isnull = false;
        return 0;
    }
    case EK_IN: {
        rc = tm__eval(e->args[0], row, env, &v, &vn, errstr, errstr_size);
        if (rc)
            return rc;
        if (vn) {
            *isnull = true;
            return 0;
        }
        bool sawnull = false, found = false;
        for (int i = 1; i < e->nargs && !found; i++) {
            tm_datum_t w;
            bool wn;
            rc = tm__eval(e->args[i], row, env, &w, &wn, errstr, errstr_size);
            if (rc)
                return rc;
            if (wn)
                sawnull = true;
            else if (tm_datum_equal(e->cmp_type, &v, &w))
                found = true;
        }
        memset(out, 0, sizeof(*out));
        *isnull = !found && sawnull;
        out->u.b = e->negate ? !found : found;
        return 0;
    }
    case EK_CASE: {
        int n = (e->nargs - (e->has_else ? 1 : 0)) / 2;
        for (int i = 0; i < n; i++) {
            rc = tm__eval(e->args[2 * i], row, env, &v, &vn, errstr, errstr_size);
            if (rc)
                return rc;
            if (!vn && v.u.b)
                return tm__eval(e->args[2 * i + 1], row, env, out, isnull, errstr, errstr_size);
        }
        if (e->has_else)
            return tm__eval(e->args[e->nargs - 1], row, env, out, isnull, errstr, errstr_size);
        *isnull = true;
        return 0;
    }
    case EK_COALESCE:
        for (int i = 0; i < e->nargs; i++) {
            rc = tm__eval(e->args[i], row, env, out, isnull, errstr, errstr_size);
            if (rc || !*isnull)
                return rc;
        }
        *isnull = true;
        return 0;
    case EK_NULLIF: {
        /* args: the value, the value in the comparison type, the other side in it. */
        tm_datum_t x, y;
        bool xn, yn;
        rc = tm__eval(e->args[0], row, env, out, isnull, errstr, errstr_size);
        if (rc || *isnull)
            return rc;
        rc = tm__eval(e->args[1], row, env, &x, &xn, errstr, errstr_size);
        if (!rc)
            rc = tm__eval(e->args[2], row, env, &y, &yn, errstr, errstr_size);
        if (rc)
            return rc;
        if (!xn && !yn && tm_datum_equal(e->cmp_type, &x, &y))
            *isnull = true;
        return 0;
    }
    case EK_GREATEST:
    case EK_LEAST: {
        bool have = false;
        for (int i = 0; i < e->nargs; i++) {
            rc = tm__eval(e->args[i], row, env, &v, &vn, errstr, errstr_size);
            if (rc)
                return rc;
            if (vn)
                continue;
            int c = have ? tm_datum_compare(e->cmp_type, &v, out) : 0;
            if (!have || (e->kind == EK_GREATEST ? c > 0 : c < 0))
                *out = v;
            have = true;
        }
        *isnull = !have;
        return 0;
    }
    }
    return tm_seterr(errstr, errstr_size, TM_EINVAL, "unknown expression node");
}

int tm_expr_eval(const tm_expr_t *e, const tm_row_t *row, const tm_eval_env_t *env,
                 tm_datum_t *out, bool *isnull, char *errstr, size_t errstr_size)
{
    return tm__eval(e, row, env, out, isnull, errstr, errstr_size);
}

int tm_expr_eval_pred(const tm_expr_t *e, const tm_row_t *row, const tm_eval_env_t *env,
                      bool *keep, char *errstr, size_t errstr_size)
{
    tm_datum_t v;
    bool vn;
    int rc = tm__eval(e, row, env, &v, &vn, errstr, errstr_size);
    if (rc)
        return rc;
    *keep = !vn && v.u.b;
    return 0;
}
