/*
 * interval_join.c — the interval join of two append-only streams (see
 * interval_join.h).
 *
 * State layout in column family `uid` (K = tm_row_cols_key_encode of a
 * side's join-key columns, whose first byte is 0x01 because rows with a
 * NULL key are never stored; T = the row's time as u64 big-endian with the
 * sign bit flipped, so that memcmp() orders times; R = tm_row_serialize of
 * the row; the key group of every key is tm_keygroup_of(K)):
 *
 *     K ‖ side ‖ T ‖ R          a row: value = varint copies ‖ u8 matched
 *     FF ‖ side ‖ T ‖ K ‖ R     its entry in the side's time index (value 00)
 *
 * so that a probe reads the other side's rows of one key in time order
 * (one seek, stopping past the upper bound), and on_watermark reads each
 * side's expired rows first in every key group it owns.
 *
 *     process(batch of side s): per row, in order:
 *       1. NULL key or time: pad it at once if s is an outer side
 *       2. seek the other side's rows of K, walk those whose time is in
 *          the row's range, test the residual, emit the pairs, mark both
 *          rows matched
 *       3. unless already expired (late), add it to its side (copies + 1)
 *          and to the time index; else pad it now if it is an unmatched
 *          outer row
 *       then commit.
 *     on_watermark(W): per side, unless no stored row is that old (the
 *       oldest time is tracked in memory once a walk has seen it), per
 *       owned key group, walk the time index up to the side's expiry time,
 *       pad the unmatched outer rows, delete both entries; commit; forward
 *       W - max(|lower|, |upper|).
 *     on_end: as on_watermark with every row expired.
 *
 * Invariants:
 *   1. A row's main entry and its time-index entry are written and deleted
 *      together, in one committed store batch.
 *   2. Output is insert-only: a pair is emitted once per copy when its
 *      second row arrives, a padded row once, when its row leaves the state
 *      (or at once when it cannot be stored).
 *   3. Every key read or written is in a key group this subtask owns.
 *
 * Thread: its subtask's.
 */
#include "operators/interval_join.h"
#include "operators/evstate.h"
#include "core/error.h"
#include "state/keygroup.h"
#include "state/rowcodec.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#define INDEX_TAG 0xff

struct tm_operator {
    const tm_interval_join_spec_t *spec;
    tm_operator_ctx_t ctx;
    tm_store_t *store;
    tm_store_cf_t *cf;
    tm_store_batch_t *wb; /* indexed: a side's copies are read back within a call */
    tm_store_iter_t *it;  /* per call, never kept across calls */
    tm_batch_t *scratch;  /* only its arena: rows read from state, per call */
    tm_batch_t *out;      /* the output batch being filled */
    const tm_schema_t *sch[2];
    const int *keys[2];
    int time_col[2];
    bool outer[2];        /* the side's unmatched rows are padded */
    int nl, nr, maxp;
    int64_t wm;           /* the last watermark, INT64_MIN before the first */
    /*
     * Per side, no stored row is older than this (INT64_MIN: unknown, as
     * after a restore), so a watermark that expires nothing skips the walk
     * over every key group.
     */
    int64_t oldest[2];
    tm_row_t pair;
    tm_eval_env_t env;
    tm_buf_t key, ikey, val, ser;
};

/* ---- small helpers ---- */

/*
 * The earliest time a row of side s may have and still be matched by a row
 * the other side sends after watermark `wm` (interval_join.h, Time).
 */
static int64_t keep_from(const tm_operator_t *op, int s, int64_t wm)
{
    return s == 0 ? tm_evstate_sat_add(wm, op->spec->lower_us) : tm_evstate_sat_add(wm, -op->spec->upper_us);
}

int tm_interval_join_left_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                              tm_buf_t *out)
{
    const tm_interval_join_spec_t *s = spec;
    return tm_row_cols_key_encode(schema, row, s->left_keys, s->nkeys, out);
}

int tm_interval_join_right_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                               tm_buf_t *out)
{
    const tm_interval_join_spec_t *s = spec;
    return tm_row_cols_key_encode(schema, row, s->right_keys, s->nkeys, out);
}

static void op_free(tm_operator_t *op)
{
    if (op == NULL)
        return;
    tm_store_iter_free(op->it);
    tm_store_batch_free(op->wb);
    tm_batch_unref(op->scratch);
    tm_batch_unref(op->out);
    free(op->pair.nulls);
    free(op->pair.vals);
    tm_buf_release(&op->key);
    tm_buf_release(&op->ikey);
    tm_buf_release(&op->val);
    tm_buf_release(&op->ser);
    free(op);
}

/* ---- output ---- */

static void set_side(tm_operator_t *op, int side, const tm_row_t *row)
{
    int base = side == 0 ? 0 : op->nl;
    int n = side == 0 ? op->nl : op->nr;
    for (int i = 0; i < n; i++) {
        bool isnull = row == NULL || tm_row_is_null(row, i);
        tm_row_set_null(&op->pair, base + i, isnull);
        if (!isnull)
            op->pair.vals[base + i] = row->vals[i];
    }
}

/* Emits `n` copies of left ++ right (either NULL: padding). */
static int emit_pair(tm_operator_t *op, tm_collector_t *out, const tm_record_t *src,
                     const tm_row_t *left, const tm_row_t *right, int64_t n, char *errstr,
                     size_t errstr_size)
{
    set_side(op, 0, left);
    set_side(op, 1, right);
    for (int64_t i = 0; i < n; i++) {
        int rc = tm_collector_room(out, &op->out, op->ctx.uid, errstr, errstr_size);
        if (rc != 0)
            return rc;
        tm_record_t *r = tm_batch_add(op->out, op->spec->out_schema, TM_OP_CREATE);
        if (r == NULL || (r->after = tm_row_copy(op->out, op->spec->out_schema, &op->pair)) == NULL)
            return TM_ENOMEM;
        if (src != NULL) {
            r->proc_us = src->proc_us;
            r->src = src->src;
        }
    }
    return 0;
}

static int emit_padded(tm_operator_t *op, tm_collector_t *out, const tm_record_t *src, int s,
                       const tm_row_t *row, int64_t n, char *errstr, size_t errstr_size)
{
    return emit_pair(op, out, src, s == 0 ? row : NULL, s == 0 ? NULL : row, n, errstr,
                     errstr_size);
}

static int corrupt(tm_operator_t *op, char *errstr, size_t errstr_size)
{
    return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                     "interval_join %s: a stored row is unreadable (written by another version, "
                     "or the input schema changed?)",
                     op->ctx.uid);
}

/* ---- process ---- */

/* Whether x (side s) and o (the other side) pass the residual. */
static int match(tm_operator_t *op, int s, const tm_row_t *x, const tm_row_t *o,
                 const tm_record_t *rec, bool *yes, char *errstr, size_t errstr_size)
{
    *yes = true;
    if (op->spec->residual == NULL)
        return 0;
    set_side(op, s, x);
    set_side(op, 1 - s, o);
    char why[512];
    int rc = tm_expr_eval_pred(op->spec->residual, &op->pair, &op->env, yes, why, sizeof(why));
    if (rc == TM_EINVAL) {
        *yes = false;
        return tm_operator_row_error(&op->ctx, rec, why, errstr, errstr_size);
    }
    return rc == TM_ENOMEM
               ? tm_seterr(errstr, errstr_size, rc, "interval_join %s: %s", op->ctx.uid, why)
               : rc;
}

/* Reads "varint copies ‖ u8 matched". */
static int get_entry(const uint8_t *p, size_t len, int64_t *copies, bool *matched)
{
    const uint8_t *end = p + len;
    uint64_t c;
    if (tm_buf_get_varint(&p, end, &c) != 0 || c == 0 || c > INT64_MAX || p + 1 != end)
        return TM_ECORRUPT;
    *copies = (int64_t)c;
    *matched = *p != 0;
    return 0;
}

static int put_entry(tm_operator_t *op, int kg, const void *key, size_t klen, int64_t copies,
                     bool matched)
{
    tm_buf_clear(&op->val);
    int rc = tm_buf_put_varint(&op->val, (uint64_t)copies);
    rc = rc ? rc : tm_buf_putc(&op->val, (char)(matched ? 1 : 0));
    return rc ? rc : tm_store_batch_put(op->wb, op->cf, kg, key, klen, op->val.data, op->val.len);
}

static int process_row(tm_operator_t *op, int s, const tm_record_t *rec, const tm_row_t *x,
                       tm_collector_t *out, char *errstr, size_t errstr_size)
{
    const tm_interval_join_spec_t *spec = op->spec;
    int o = 1 - s, tc = op->time_col[s];
    bool null_key = tm_row_is_null(x, tc);
    for (int i = 0; i < spec->nkeys && !null_key; i++)
        null_key = tm_row_is_null(x, op->keys[s][i]);
    if (null_key)
        return op->outer[s] ? emit_padded(op, out, rec, s, x, 1, errstr, errstr_size) : 0;
    int64_t t = x->vals[tc].u.i64;
    tm_buf_clear(&op->key);
    int rc = tm_row_cols_key_encode(op->sch[s], x, op->keys[s], spec->nkeys, &op->key);
    if (rc == TM_EINVAL)
        return tm_operator_row_error(&op->ctx, rec,
                                     "a join key is an unchanged TOASTed value the source did "
                                     "not send (set REPLICA IDENTITY FULL on the table)",
                                     errstr, errstr_size);
    if (rc != 0)
        return rc;
    size_t klen = op->key.len;
    int kg = tm_keygroup_of(op->key.data, klen, op->maxp);
    if (kg < op->ctx.kg_first || kg > op->ctx.kg_last)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "interval_join %s: subtask %d received a row of key group %d, but owns "
                         "key groups %d..%d; its input is not hash-partitioned by the join key",
                         op->ctx.uid, op->ctx.subtask, kg, op->ctx.kg_first, op->ctx.kg_last);
    /* Step 2: the other side's rows of K whose time is in range. */
    int64_t lo, hi;
    if (s == 0) {
        lo = tm_evstate_sat_add(t, -spec->upper_us);
        hi = tm_evstate_sat_add(t, -spec->lower_us);
    } else {
        lo = tm_evstate_sat_add(t, spec->lower_us);
        hi = tm_evstate_sat_add(t, spec->upper_us);
    }
    bool matched = false;
    if ((rc = tm_buf_putc(&op->key, (char)o)) != 0)
        return rc;
    if ((rc = tm_store_iter_seek(op->it, kg, op->key.data, op->key.len, false)) != 0)
        return rc;
    op->key.len = klen;
    atomic_fetch_add(&op->ctx.metrics->state_reads, 1);
    tm_store_entry_t e;
    while ((rc = tm_store_iter_next(op->it, &e, errstr, errstr_size)) == 1) {
        if (e.klen < klen + 9)
            return corrupt(op, errstr, errstr_size);
        int64_t ot = tm_evstate_get_time(e.key + klen + 1);
        if (ot < lo)
            continue;
        if (ot > hi)
            break;
        int64_t copies;
        bool om;
        tm_row_t *orow;
        if (get_entry(e.val, e.vlen, &copies, &om) != 0 ||
            tm_row_deserialize(op->sch[o], e.key + klen + 9, e.klen - klen - 9, op->scratch,
                               &orow) != 0)
            return corrupt(op, errstr, errstr_size);
        bool yes;
        if ((rc = match(op, s, x, orow, rec, &yes, errstr, errstr_size)) != 0)
            return rc;
        if (!yes)
            continue;
        matched = true;
        rc = emit_pair(op, out, rec, s == 0 ? x : orow, s == 0 ? orow : x, copies, errstr,
                       errstr_size);
        if (rc == 0 && op->outer[o] && !om)
            rc = put_entry(op, e.kg, e.key, e.klen, copies, true);
        if (rc != 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    /* Step 3: keep it while the other side may still match it. */
    if (t < keep_from(op, s, op->wm))
        return op->outer[s] && !matched ? emit_padded(op, out, rec, s, x, 1, errstr, errstr_size)
                                        : 0;
    uint8_t tb[8];
    tm_evstate_put_time(tb, t);
    tm_buf_clear(&op->ser);
    if ((rc = tm_row_serialize(op->sch[s], x, &op->ser)) != 0)
        return rc;
    rc = tm_buf_putc(&op->key, (char)s);
    rc = rc ? rc : tm_buf_append(&op->key, tb, 8);
    rc = rc ? rc : tm_buf_append(&op->key, op->ser.data, op->ser.len);
    if (rc != 0)
        return rc;
    int64_t copies = 0;
    bool was = false;
    rc = tm_store_batch_get(op->wb, op->cf, kg, op->key.data, op->key.len, &op->val, errstr,
                            errstr_size);
    if (rc == 0 && get_entry((const uint8_t *)op->val.data, op->val.len, &copies, &was) != 0)
        return corrupt(op, errstr, errstr_size);
    if (rc != 0 && rc != TM_ENOTFOUND)
        return rc;
    if ((rc = put_entry(op, kg, op->key.data, op->key.len, copies + 1, was || matched)) != 0)
        return rc;
    if (t < op->oldest[s])
        op->oldest[s] = t;
    if (copies > 0)
        return 0; /* its index entry exists */
    tm_buf_clear(&op->ikey);
    rc = tm_buf_putc(&op->ikey, (char)INDEX_TAG);
    rc = rc ? rc : tm_buf_putc(&op->ikey, (char)s);
    rc = rc ? rc : tm_buf_append(&op->ikey, tb, 8);
    rc = rc ? rc : tm_buf_append(&op->ikey, op->key.data, klen);
    rc = rc ? rc : tm_buf_append(&op->ikey, op->ser.data, op->ser.len);
    return rc ? rc : tm_store_batch_put(op->wb, op->cf, kg, op->ikey.data, op->ikey.len, "", 1);
}

static int new_iter(tm_operator_t *op)
{
    op->it = tm_store_iter_free(op->it);
    return tm_store_iter_new(op->store, op->cf, op->ctx.kg_first, op->ctx.kg_last, NULL, 0,
                             &op->it);
}

static int op_process(tm_operator_t *op, int input, const tm_batch_t *batch, tm_collector_t *out,
                      char *errstr, size_t errstr_size)
{
    int s = input == 0 ? 0 : 1, rc = 0;
    tm_arena_reset(&op->scratch->arena);
    op->env.now_us = tm_store_now(op->store);
    if ((rc = new_iter(op)) != 0)
        return rc;
    for (uint32_t i = 0; rc == 0 && i < batch->count; i++) {
        const tm_record_t *rec = &batch->recs[i];
        switch (rec->op) {
        case TM_OP_READ:
        case TM_OP_CREATE:
            if (rec->after != NULL)
                rc = process_row(op, s, rec, rec->after, out, errstr, errstr_size);
            break;
        case TM_OP_UPDATE:
        case TM_OP_DELETE:
        case TM_OP_TRUNCATE:
            rc = tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                           "interval_join %s: its %s input sent an update or a delete, but an "
                           "interval join takes append-only (insert-only) inputs",
                           op->ctx.uid, s == 0 ? "left" : "right");
            break;
        default:
            break; /* logical decoding messages carry no rows */
        }
    }
    op->it = tm_store_iter_free(op->it);
    if (rc == 0)
        rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    return rc != 0 ? rc : tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
}

/* ---- watermarks ---- */

/* Drops the rows of side s whose time is before `until`, padding the unmatched outer ones. */
static int expire_side(tm_operator_t *op, int s, int64_t until, tm_collector_t *out,
                       char *errstr, size_t errstr_size)
{
    const tm_interval_join_spec_t *spec = op->spec;
    uint8_t prefix[2] = {INDEX_TAG, (uint8_t)s};
    int rc = 0;
    if (until <= op->oldest[s] && op->oldest[s] != INT64_MIN)
        return 0; /* nothing that old is stored */
    int64_t oldest = INT64_MAX; /* of the rows that stay */
    for (int kg = op->ctx.kg_first; rc == 0 && kg <= op->ctx.kg_last; kg++) {
        if ((rc = tm_store_iter_seek(op->it, kg, prefix, 2, false)) != 0)
            return rc;
        tm_store_entry_t e;
        while ((rc = tm_store_iter_next(op->it, &e, errstr, errstr_size)) == 1) {
            if (e.klen < 10)
                return corrupt(op, errstr, errstr_size);
            int64_t t = tm_evstate_get_time(e.key + 2);
            if (t >= until) {
                oldest = t < oldest ? t : oldest;
                break;
            }
            size_t klen;
            if (tm_row_cols_key_skip(op->sch[s], op->keys[s], spec->nkeys, e.key + 10,
                                     e.klen - 10, &klen) != 0)
                return corrupt(op, errstr, errstr_size);
            const uint8_t *k = e.key + 10, *r = e.key + 10 + klen;
            size_t rlen = e.klen - 10 - klen;
            /* The row's own entry: K ‖ side ‖ T ‖ R. */
            tm_buf_clear(&op->key);
            rc = tm_buf_append(&op->key, k, klen);
            rc = rc ? rc : tm_buf_putc(&op->key, (char)s);
            rc = rc ? rc : tm_buf_append(&op->key, e.key + 2, 8);
            rc = rc ? rc : tm_buf_append(&op->key, r, rlen);
            if (rc != 0)
                return rc;
            if (op->outer[s]) {
                rc = tm_store_batch_get(op->wb, op->cf, kg, op->key.data, op->key.len, &op->val,
                                        errstr, errstr_size);
                int64_t copies;
                bool matched;
                tm_row_t *row;
                if (rc == 0 && (get_entry((const uint8_t *)op->val.data, op->val.len, &copies,
                                          &matched) != 0 ||
                                tm_row_deserialize(op->sch[s], r, rlen, op->scratch, &row) != 0))
                    return corrupt(op, errstr, errstr_size);
                if (rc == 0 && !matched)
                    rc = emit_padded(op, out, NULL, s, row, copies, errstr, errstr_size);
                if (rc == TM_ENOTFOUND)
                    rc = 0; /* expired by state_ttl */
                if (rc != 0)
                    return rc;
            }
            rc = tm_store_batch_delete(op->wb, op->cf, kg, op->key.data, op->key.len);
            rc = rc ? rc : tm_store_batch_delete(op->wb, op->cf, kg, e.key, e.klen);
            if (rc != 0)
                return rc;
        }
        rc = rc < 0 ? rc : 0;
    }
    /* Every row older than `until` is gone; INT64_MAX when nothing stays. */
    if (rc == 0)
        op->oldest[s] = oldest;
    return rc;
}

static int expire(tm_operator_t *op, int64_t until_left, int64_t until_right, tm_collector_t *out,
                  char *errstr, size_t errstr_size)
{
    tm_arena_reset(&op->scratch->arena);
    /* The iterator sees what earlier calls committed: everything (invariant 1). */
    int rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    rc = rc ? rc : new_iter(op);
    rc = rc ? rc : expire_side(op, 0, until_left, out, errstr, errstr_size);
    rc = rc ? rc : expire_side(op, 1, until_right, out, errstr, errstr_size);
    op->it = tm_store_iter_free(op->it);
    rc = rc ? rc : tm_store_batch_commit(op->wb, errstr, errstr_size);
    return rc != 0 ? rc : tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
}

static int op_on_watermark(tm_operator_t *op, int64_t ts_us, int64_t *forward_us,
                           tm_collector_t *out, char *errstr, size_t errstr_size)
{
    const tm_interval_join_spec_t *spec = op->spec;
    if (ts_us > op->wm)
        op->wm = ts_us;
    int rc = expire(op, keep_from(op, 0, op->wm), keep_from(op, 1, op->wm), out, errstr,
                    errstr_size);
    int64_t a = spec->lower_us < 0 ? -spec->lower_us : spec->lower_us;
    int64_t b = spec->upper_us < 0 ? -spec->upper_us : spec->upper_us;
    if (forward_us != NULL)
        *forward_us = tm_evstate_sat_add(ts_us, -(a > b ? a : b));
    return rc;
}

static int op_on_barrier(tm_operator_t *op, uint64_t id, tm_collector_t *out, char *errstr,
                         size_t errstr_size)
{
    (void)id;
    int rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    return rc != 0 ? rc : tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
}

/* The end of both inputs: no row can match any more, so every row expires. */
static int op_on_end(tm_operator_t *op, tm_collector_t *out, char *errstr, size_t errstr_size)
{
    return expire(op, INT64_MAX, INT64_MAX, out, errstr, errstr_size);
}

static const tm_operator_ops_t interval_join_ops = {
    .name = "interval_join",
    .ninputs = 2,
    .process = op_process,
    .on_watermark = op_on_watermark,
    .on_barrier = op_on_barrier,
    .on_end = op_on_end,
    .free = op_free,
};

static bool is_time(tm_type_t t)
{
    return t == TM_T_TIMESTAMP || t == TM_T_TIMESTAMPTZ;
}

static int check_spec(const tm_interval_join_spec_t *s, const char *uid, char *errstr,
                      size_t errstr_size)
{
    if (s->left_schema == NULL || s->right_schema == NULL || s->out_schema == NULL ||
        s->nkeys < 1 || s->left_keys == NULL || s->right_keys == NULL)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "interval_join %s: needs both input schemas, an output schema and at "
                         "least one key pair",
                         uid);
    if (s->type != TM_JOIN_INNER && s->type != TM_JOIN_LEFT && s->type != TM_JOIN_RIGHT &&
        s->type != TM_JOIN_FULL)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "interval_join %s: only INNER, LEFT, RIGHT and FULL joins", uid);
    int nl = s->left_schema->ncols, nr = s->right_schema->ncols;
    if (s->out_schema->ncols != nl + nr)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "interval_join %s: the output must be the %d left and %d right columns",
                         uid, nl, nr);
    if (s->left_time < 0 || s->left_time >= nl || s->right_time < 0 || s->right_time >= nr ||
        !is_time(s->left_schema->cols[s->left_time].type) ||
        !is_time(s->right_schema->cols[s->right_time].type))
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "interval_join %s: the time columns must be timestamp or timestamptz "
                         "columns of their sides",
                         uid);
    if (s->lower_us > s->upper_us)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "interval_join %s: the lower bound %lld µs is above the upper bound "
                         "%lld µs, so nothing can match",
                         uid, (long long)s->lower_us, (long long)s->upper_us);
    for (int i = 0; i < s->nkeys; i++) {
        int lc = s->left_keys[i], rc = s->right_keys[i];
        if (lc < 0 || lc >= nl || rc < 0 || rc >= nr ||
            s->left_schema->cols[lc].type != s->right_schema->cols[rc].type)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "interval_join %s: join key %d pairs left column %d with right "
                             "column %d, which are not columns of one type",
                             uid, i, lc, rc);
    }
    return 0;
}

int tm_interval_join_new(const void *spec_arg, const tm_operator_ctx_t *ctx,
                         const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                         size_t errstr_size)
{
    const tm_interval_join_spec_t *spec = spec_arg;
    const char *uid = ctx->uid ? ctx->uid : "";
    *out = NULL;
    if (ctx->store == NULL)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "interval_join %s: the operator keeps state and needs a store", uid);
    int rc = check_spec(spec, uid, errstr, errstr_size);
    if (rc != 0)
        return rc;
    int maxp = tm_store_max_parallelism(ctx->store);
    if (ctx->kg_first < 0 || ctx->kg_last >= maxp || ctx->kg_first > ctx->kg_last)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "interval_join %s: key groups %d..%d are outside the store's 0..%d", uid,
                         ctx->kg_first, ctx->kg_last, maxp - 1);
    tm_operator_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return TM_ENOMEM;
    op->spec = spec;
    op->ctx = *ctx;
    op->store = ctx->store;
    op->maxp = maxp;
    op->wm = INT64_MIN;
    op->oldest[0] = op->oldest[1] = INT64_MIN;
    op->sch[0] = spec->left_schema;
    op->sch[1] = spec->right_schema;
    op->keys[0] = spec->left_keys;
    op->keys[1] = spec->right_keys;
    op->time_col[0] = spec->left_time;
    op->time_col[1] = spec->right_time;
    op->outer[0] = spec->type == TM_JOIN_LEFT || spec->type == TM_JOIN_FULL;
    op->outer[1] = spec->type == TM_JOIN_RIGHT || spec->type == TM_JOIN_FULL;
    op->nl = spec->left_schema->ncols;
    op->nr = spec->right_schema->ncols;
    tm_buf_init(&op->key);
    tm_buf_init(&op->ikey);
    tm_buf_init(&op->val);
    tm_buf_init(&op->ser);
    int n = op->nl + op->nr;
    op->pair.nulls = calloc(((size_t)n + 63) / 64 + 1, sizeof(uint64_t));
    op->pair.vals = calloc((size_t)n + 1, sizeof(tm_datum_t));
    rc = op->pair.nulls && op->pair.vals ? 0 : TM_ENOMEM;
    rc = rc ? rc : tm_store_cf(ctx->store, ctx->uid, &op->cf, errstr, errstr_size);
    if (rc == 0 && (op->scratch = tm_batch_new()) == NULL)
        rc = TM_ENOMEM;
    if (rc == 0)
        rc = tm_store_batch_new(ctx->store, &op->wb);
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    op->env.arena = &op->scratch->arena;
    *ops = &interval_join_ops;
    *out = op;
    return 0;
}
