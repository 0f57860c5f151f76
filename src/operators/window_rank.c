/*
 * window_rank.c — window Top-N, and the window TVF operator that feeds it
 * rows of a window function read directly (see window_rank.h).
 *
 * State layout in column family `uid` (P = tm_row_cols_key_encode of the
 * partition columns, which include window_end; S = the order key and R =
 * tm_row_serialize of the row, both as in topn.c; T(x) = x as a big-endian
 * u64 with the sign bit flipped, so that times sort as bytes; the key group
 * of 'r' and 't' keys is tm_keygroup_of(P), of 'm' every owned key group):
 *
 *     'r' ‖ P ‖ S ‖ R         a row of a window: value = varint count
 *     't' ‖ T(due) ‖ P        the window's timer (empty value), due at its
 *                             window_time = window_end - 1µs
 *     'm'                     the watermark seen at the last barrier (T)
 *
 * A partition's rows are one key range in rank order ('r' ‖ P is
 * prefix-free), and a key group's timers one range in time order.
 *
 *     process(batch):
 *       1. each insert becomes ('r' ‖ P ‖ S ‖ R, due); a row whose window the
 *          watermark already reached is late (counted, dropped); sort them by
 *          (key group, key): a partition is one run
 *       2. per partition: read its stored rows in rank order (at most N
 *          copies) through one iterator opened before any write
 *       3. per partition: merge the batch's rows into them and write what
 *          changes (rows entering the top N, counts, rows pushed past rank
 *          N), and the timer of a new partition; commit once
 *     on_watermark(w): per owned key group whose earliest timer (kg_due)
 *       is due, take the timers due at w; per timer: emit its partition's
 *       rows with ranks 1..N, delete them and the timer; commit
 *
 * Invariants:
 *   1. After process returns, a partition holds at most N copies (so firing
 *      reads at most N rows, and state is N rows per open window).
 *   2. Every partition in the store has exactly one timer, and after
 *      on_watermark(w) returns no timer due at or before w is left.
 *   3. Every write of a call is committed before it returns: on_barrier
 *      only records the watermark.
 *   4. Only key groups in [ctx->kg_first, ctx->kg_last] are touched; a row
 *      of another key group fails the call (a partitioning bug upstream).
 *
 * The window TVF operator (tm_window_tvf_new, at the end) shares the
 * instance type: it keeps no state, and copies each insert once per window
 * (tm_window_assign of window_agg.h) with the window columns appended.
 *
 * Thread: its subtask's.
 */
#include "operators/window_rank.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/shutdown.h"
#include "operators/batchkeys.h"
#include "operators/evstate.h"
#include "state/keygroup.h"
#include "state/rowcodec.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One insert of the batch (step 1). */
typedef struct wr_image {
    int kg;
    const uint8_t *key; /* 'r' ‖ P ‖ S ‖ R, in the scratch arena */
    size_t klen;
    size_t plen; /* |'r' ‖ P| */
    int64_t due;
    uint32_t seq; /* position in the batch: a stable sort */
} wr_image_t;

/* A stored row of a partition, in rank order: `cnt` copies of key (step 2). */
typedef struct wr_ent {
    const uint8_t *key; /* in the scratch arena */
    size_t klen;
    int64_t cnt;
} wr_ent_t;

/* A due timer (on_watermark): its partition's key prefix 'r' ‖ P. */
typedef struct wr_timer {
    int kg;
    uint8_t *tkey; /* the timer's key, to delete it */
    size_t tlen;
    uint8_t *prefix;
    size_t plen;
} wr_timer_t;

/*
 * One instance type for both operators of this file: a window Top-N (spec),
 * or a window TVF (tvf; it uses only ctx, scratch and out).
 */
struct tm_operator {
    const tm_window_rank_spec_t *spec;
    const tm_window_tvf_spec_t *tvf;
    tm_operator_ctx_t ctx;
    tm_store_cf_t *cf;
    tm_store_batch_t *wb;
    tm_store_iter_t *it; /* per call, never kept across calls */
    tm_batch_t *scratch; /* only its arena: per-call keys */
    tm_batch_t *out;     /* the output batch being filled */
    tm_buf_t key, val, tmp;
    int64_t wm;       /* the input watermark seen so far */
    int64_t saved_wm; /* the watermark recorded at the last barrier */
    int64_t next_due; /* the earliest timer (INT64_MAX: none) */
    /*
     * Per owned key group (index kg - kg_first), its earliest timer: a
     * firing seeks only the key groups with a timer due, since a seek into
     * a timer range first skips the tombstones of the timers fired before.
     */
    int64_t *kg_due;
    wr_image_t *imgs;
    int nimgs, cap;
    wr_ent_t *ents; /* a partition's stored rows (merge_part) */
    int nents, ents_cap;
    int64_t last_late_log_ms;
    uint64_t late_unlogged;
};

/* ---- late rows ---- */

static void late_row(tm_operator_t *op, int64_t due)
{
    atomic_fetch_add_explicit(&op->ctx.metrics->late_rows, 1, memory_order_relaxed);
    op->late_unlogged++;
    int64_t now = tm_mono_ms();
    if (now - op->last_late_log_ms < 10000 && op->last_late_log_ms != 0)
        return;
    op->last_late_log_ms = now;
    TM_WARN("window",
            "late rows: a window Top-N received rows of a window it already emitted; counted "
            "in tidemark_late_rows_total and dropped",
            "operator=%s subtask=%d rows=%" PRIu64 " window_time_us=%" PRId64
            " watermark_us=%" PRId64,
            op->ctx.uid, op->ctx.subtask, op->late_unlogged, due, op->wm);
    op->late_unlogged = 0;
}

/* ---- step 1: images ---- */

static int add_image(tm_operator_t *op, const tm_record_t *rec, const tm_row_t *row,
                     uint32_t seq, char *errstr, size_t errstr_size)
{
    const tm_topn_spec_t *ts = &op->spec->topn;
    int ec = op->spec->end_col;
    if (tm_row_is_null(row, ec))
        return tm_operator_row_error(&op->ctx, rec, "window_end is NULL: the row is in no window",
                                     errstr, errstr_size);
    int64_t due = row->vals[ec].u.i64 - 1;
    if (due <= op->wm) {
        late_row(op, due);
        return 0;
    }
    tm_buf_clear(&op->key);
    int rc = tm_buf_putc(&op->key, 'r');
    if (rc == 0)
        rc = tm_row_cols_key_encode(ts->in_schema, row, ts->part_cols, ts->npart, &op->key);
    size_t plen = op->key.len;
    if (rc == 0)
        rc = tm_topn_order_put(ts, row, &op->key, &op->tmp);
    if (rc == TM_EINVAL)
        return tm_operator_row_error(&op->ctx, rec,
                                     "a PARTITION BY or ORDER BY column is an unchanged TOASTed "
                                     "value the source did not send",
                                     errstr, errstr_size);
    if (rc == 0)
        rc = tm_row_serialize(ts->in_schema, row, &op->key);
    if (rc != 0)
        return rc;
    int kg = tm_keygroup_of(op->key.data + 1, plen - 1, op->ctx.max_parallelism);
    if (kg < op->ctx.kg_first || kg > op->ctx.kg_last)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "window_rank %s: subtask %d received a row of key group %d, but owns "
                         "key groups %d..%d; its input is not hash-partitioned by the partition "
                         "key (tm_topn_key)",
                         op->ctx.uid, op->ctx.subtask, kg, op->ctx.kg_first, op->ctx.kg_last);
    if (op->nimgs == op->cap) {
        int cap = op->cap ? 2 * op->cap : 256;
        wr_image_t *v = realloc(op->imgs, sizeof(*v) * (size_t)cap);
        if (v == NULL)
            return TM_ENOMEM;
        op->imgs = v;
        op->cap = cap;
    }
    uint8_t *k = tm_arena_alloc(&op->scratch->arena, op->key.len);
    if (k == NULL)
        return TM_ENOMEM;
    memcpy(k, op->key.data, op->key.len);
    op->imgs[op->nimgs++] = (wr_image_t){kg, k, op->key.len, plen, due, seq};
    return 0;
}

static int image_cmp(const void *a, const void *b)
{
    const wr_image_t *x = a, *y = b;
    if (x->kg != y->kg)
        return x->kg < y->kg ? -1 : 1;
    int c = tm_bytes_cmp(x->key, x->klen, y->key, y->klen);
    if (c != 0)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static bool same_part(const wr_image_t *a, const wr_image_t *b)
{
    return a->kg == b->kg && a->plen == b->plen && memcmp(a->key, b->key, a->plen) == 0;
}

/* ---- steps 2 and 3 ---- */

static int bad_count(tm_operator_t *op, char *errstr, size_t errstr_size)
{
    return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                     "window_rank %s: a stored row count is unreadable (state written by "
                     "another version?)",
                     op->ctx.uid);
}

static int put_timer(tm_operator_t *op, const wr_image_t *im)
{
    tm_buf_clear(&op->tmp);
    uint8_t t[9];
    t[0] = 't';
    tm_evstate_put_time(t + 1, im->due);
    int rc = tm_buf_append(&op->tmp, t, sizeof(t));
    if (rc == 0)
        rc = tm_buf_append(&op->tmp, im->key + 1, im->plen - 1);
    if (rc == 0)
        rc = tm_store_batch_put(op->wb, op->cf, im->kg, op->tmp.data, op->tmp.len, "", 0);
    if (rc == 0 && im->due < op->kg_due[im->kg - op->ctx.kg_first])
        op->kg_due[im->kg - op->ctx.kg_first] = im->due;
    if (rc == 0 && im->due < op->next_due)
        op->next_due = im->due;
    return rc;
}

/* Grows op->ents to hold one more entry. */
static int ents_room(tm_operator_t *op)
{
    if (op->nents < op->ents_cap)
        return 0;
    int cap = op->ents_cap ? 2 * op->ents_cap : 16;
    wr_ent_t *v = realloc(op->ents, sizeof(*v) * (size_t)cap);
    if (v == NULL)
        return TM_ENOMEM;
    op->ents = v;
    op->ents_cap = cap;
    return 0;
}

/*
 * Steps 2 and 3 for the partition of imgs[first, end): reads its stored
 * rows in rank order (at most N copies, invariant 1) through op->it, merges
 * the batch's rows into them, and writes only what changes: a row entering
 * the top N, a count that changes, a row pushed out; and the timer of a
 * partition new to the store.
 */
static int merge_part(tm_operator_t *op, int first, int end, char *errstr, size_t errstr_size)
{
    const wr_image_t *im = &op->imgs[first];
    int64_t limit = op->spec->topn.limit, total = 0;
    int rc = tm_store_iter_seek(op->it, im->kg, im->key, im->plen, false);
    if (rc != 0)
        return rc;
    atomic_fetch_add(&op->ctx.metrics->state_reads, 1);
    op->nents = 0;
    tm_store_entry_t e;
    while (total < limit && (rc = tm_store_iter_next(op->it, &e, errstr, errstr_size)) == 1) {
        const uint8_t *p = e.val;
        uint64_t cnt;
        if (tm_buf_get_varint(&p, e.val + e.vlen, &cnt) != 0 || cnt == 0 || cnt > INT64_MAX)
            return bad_count(op, errstr, errstr_size);
        uint8_t *k = tm_arena_alloc(&op->scratch->arena, e.klen);
        if (k == NULL || ents_room(op) != 0)
            return TM_ENOMEM;
        memcpy(k, e.key, e.klen);
        op->ents[op->nents++] = (wr_ent_t){k, e.klen, (int64_t)cnt};
        total += (int64_t)cnt;
    }
    if (rc < 0)
        return rc;
    rc = 0;
    bool fresh = op->nents == 0;
    int64_t left = limit;
    for (int si = 0, bi = first; rc == 0 && (si < op->nents || bi < end);) {
        const wr_ent_t *se = si < op->nents ? &op->ents[si] : NULL;
        const wr_image_t *be = bi < end ? &op->imgs[bi] : NULL;
        int c = se == NULL   ? 1
                : be == NULL ? -1
                             : tm_bytes_cmp(se->key, se->klen, be->key, be->klen);
        const uint8_t *key = c <= 0 ? se->key : be->key;
        size_t klen = c <= 0 ? se->klen : be->klen;
        int64_t have = 0, add = 0;
        if (c <= 0) {
            have = se->cnt;
            si++;
        }
        if (c >= 0) {
            int j = bi;
            while (j < end && tm_bytes_cmp(op->imgs[j].key, op->imgs[j].klen, key, klen) == 0)
                j++;
            add = j - bi;
            bi = j;
        }
        int64_t keep = have + add < left ? have + add : left;
        left -= keep;
        if (keep == have)
            continue;
        if (keep == 0) {
            rc = tm_store_batch_delete(op->wb, op->cf, im->kg, key, klen);
            continue;
        }
        tm_buf_clear(&op->val);
        if ((rc = tm_buf_put_varint(&op->val, (uint64_t)keep)) == 0)
            rc = tm_store_batch_put(op->wb, op->cf, im->kg, key, klen, op->val.data,
                                    op->val.len);
    }
    if (rc == 0 && fresh)
        rc = put_timer(op, im);
    return rc;
}

static int new_iter(tm_operator_t *op)
{
    op->it = tm_store_iter_free(op->it);
    return tm_store_iter_new(op->ctx.store, op->cf, op->ctx.kg_first, op->ctx.kg_last, NULL, 0,
                             &op->it);
}

static int process(tm_operator_t *op, const tm_batch_t *batch, char *errstr, size_t errstr_size)
{
    tm_arena_reset(&op->scratch->arena);
    op->nimgs = 0;
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < batch->count; i++) {
        const tm_record_t *rec = &batch->recs[i];
        const tm_row_t *img[2];
        if ((rc = tm_operator_images(&op->ctx, rec, img, errstr, errstr_size)) != 0)
            break;
        if (img[0] != NULL)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "window_rank %s: received an update or delete, but a window "
                             "Top-N needs an insert-only input (a window aggregation without "
                             "allowed_lateness)",
                             op->ctx.uid);
        if (img[1] != NULL)
            rc = add_image(op, rec, img[1], i, errstr, errstr_size);
    }
    if (rc != 0 || op->nimgs == 0)
        return rc;
    qsort(op->imgs, (size_t)op->nimgs, sizeof(*op->imgs), image_cmp);
    /* Steps 2 and 3: one view taken before any write; partitions are disjoint. */
    if ((rc = new_iter(op)) != 0)
        return rc;
    for (int i = 0; rc == 0 && i < op->nimgs;) {
        int j = i + 1;
        while (j < op->nimgs && same_part(&op->imgs[i], &op->imgs[j]))
            j++;
        rc = merge_part(op, i, j, errstr, errstr_size);
        i = j;
    }
    op->it = tm_store_iter_free(op->it);
    if (rc == 0)
        rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    return rc;
}

static int op_process(tm_operator_t *op, int input, const tm_batch_t *batch, tm_collector_t *out,
                      char *errstr, size_t errstr_size)
{
    (void)input;
    (void)out;
    int rc = process(op, batch, errstr, errstr_size);
    /* The iterator pins memtables and blocks: it never outlives the call, even on failure. */
    op->it = tm_store_iter_free(op->it);
    return rc;
}

/* ---- firing ---- */

/* Every owned key group's earliest timer (at open and restore: firings keep them current). */
static int find_next_due(tm_operator_t *op, char *errstr, size_t errstr_size)
{
    return tm_evstate_earliest_timers(op->it, op->ctx.kg_first, op->ctx.kg_last, op->kg_due,
                                      &op->next_due, errstr, errstr_size);
}

/* Emits the top N of one due partition as inserts and deletes its rows (op->it). */
static int fire_one(tm_operator_t *op, const wr_timer_t *t, tm_collector_t *out, char *errstr,
                    size_t errstr_size)
{
    const tm_topn_spec_t *ts = &op->spec->topn;
    int64_t rank = 0;
    int rc = tm_store_iter_seek(op->it, t->kg, t->prefix, t->plen, false);
    if (rc != 0)
        return rc;
    atomic_fetch_add(&op->ctx.metrics->state_reads, 1);
    tm_store_entry_t e;
    while ((rc = tm_store_iter_next(op->it, &e, errstr, errstr_size)) == 1) {
        const uint8_t *p = e.val;
        uint64_t cnt;
        if (tm_buf_get_varint(&p, e.val + e.vlen, &cnt) != 0 || cnt == 0 || cnt > INT64_MAX)
            return bad_count(op, errstr, errstr_size);
        for (uint64_t c = 0; c < cnt && rank < ts->limit; c++) {
            if ((rc = tm_collector_room(out, &op->out, op->ctx.uid, errstr, errstr_size)) != 0)
                return rc;
            tm_record_t *r = tm_batch_add(op->out, ts->out_schema, TM_OP_CREATE);
            if (r == NULL)
                return TM_ENOMEM;
            rc = tm_topn_row_out(ts, e.key, e.klen, t->plen, ++rank, op->out, &r->after);
            if (rc == TM_ECORRUPT)
                return tm_seterr(errstr, errstr_size, rc,
                                 "window_rank %s: a stored row is unreadable (the input schema "
                                 "changed?)",
                                 op->ctx.uid);
            if (rc != 0)
                return rc;
        }
        if ((rc = tm_store_batch_delete(op->wb, op->cf, e.kg, e.key, e.klen)) != 0)
            return rc;
    }
    if (rc < 0)
        return rc;
    return tm_store_batch_delete(op->wb, op->cf, t->kg, t->tkey, t->tlen);
}

static void timers_free(wr_timer_t *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free(v[i].tkey);
        free(v[i].prefix);
    }
    free(v);
}

/* Fires every partition whose timer is due at `wm` (invariant 2). */
static int fire_until(tm_operator_t *op, int64_t wm, tm_collector_t *out, char *errstr,
                      size_t errstr_size)
{
    if (wm < op->next_due)
        return 0;
    int rc = new_iter(op);
    wr_timer_t *v = NULL;
    size_t nv = 0, cap = 0;
    for (int kg = op->ctx.kg_first; rc == 0 && kg <= op->ctx.kg_last; kg++) {
        int64_t *due = &op->kg_due[kg - op->ctx.kg_first];
        if (*due > wm)
            continue;
        if ((rc = tm_store_iter_seek(op->it, kg, "t", 1, false)) != 0)
            break;
        *due = INT64_MAX; /* unless a timer past wm is left */
        tm_store_entry_t e;
        while ((rc = tm_store_iter_next(op->it, &e, errstr, errstr_size)) == 1) {
            if (e.klen < 9) {
                rc = tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                               "window_rank %s: a timer in key group %d is malformed",
                               op->ctx.uid, kg);
                break;
            }
            if (tm_evstate_get_time(e.key + 1) > wm) {
                *due = tm_evstate_get_time(e.key + 1);
                break;
            }
            if (nv == cap) {
                cap = cap ? 2 * cap : 64;
                wr_timer_t *nvv = realloc(v, sizeof(*v) * cap);
                if (nvv == NULL) {
                    rc = TM_ENOMEM;
                    break;
                }
                v = nvv;
            }
            wr_timer_t *t = &v[nv];
            t->kg = kg;
            t->tlen = e.klen;
            t->plen = e.klen - 8; /* 'r' ‖ P */
            t->tkey = malloc(t->tlen);
            t->prefix = malloc(t->plen);
            if (t->tkey == NULL || t->prefix == NULL) {
                free(t->tkey);
                free(t->prefix);
                rc = TM_ENOMEM;
                break;
            }
            nv++;
            memcpy(t->tkey, e.key, e.klen);
            t->prefix[0] = 'r';
            memcpy(t->prefix + 1, e.key + 9, e.klen - 9);
        }
        rc = rc < 0 ? rc : 0;
    }
    for (size_t i = 0; rc == 0 && i < nv; i++)
        rc = fire_one(op, &v[i], out, errstr, errstr_size);
    timers_free(v, nv);
    if (rc == 0)
        rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    op->it = tm_store_iter_free(op->it);
    /* The scan left each key group's next timer in kg_due (firing adds none). */
    op->next_due = INT64_MAX;
    for (int i = 0; i <= op->ctx.kg_last - op->ctx.kg_first; i++)
        if (op->kg_due[i] < op->next_due)
            op->next_due = op->kg_due[i];
    if (rc == 0)
        rc = tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
    return rc;
}

static int op_on_watermark(tm_operator_t *op, int64_t ts_us, int64_t *forward_us,
                           tm_collector_t *out, char *errstr, size_t errstr_size)
{
    (void)forward_us;
    if (ts_us <= op->wm)
        return 0;
    op->wm = ts_us;
    int rc = fire_until(op, ts_us, out, errstr, errstr_size);
    op->it = tm_store_iter_free(op->it);
    return rc;
}

static int op_on_barrier(tm_operator_t *op, uint64_t id, tm_collector_t *out, char *errstr,
                         size_t errstr_size)
{
    (void)id;
    int rc = tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
    if (rc != 0 || op->wm == op->saved_wm)
        return rc;
    /* Every owned key group records the watermark, so a rescaled job finds it (restore). */
    rc = tm_evstate_save_watermark(op->wb, op->cf, op->ctx.kg_first, op->ctx.kg_last, op->wm);
    if (rc == 0)
        rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    if (rc == 0)
        op->saved_wm = op->wm;
    return rc;
}

static int op_on_end(tm_operator_t *op, tm_collector_t *out, char *errstr, size_t errstr_size)
{
    if (tm_shutdown_is_stopping())
        return tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
    /* The end of a bounded input: every window closes (Flink's MAX_WATERMARK). */
    op->wm = INT64_MAX;
    int rc = fire_until(op, INT64_MAX, out, errstr, errstr_size);
    op->it = tm_store_iter_free(op->it);
    return rc;
}

static int op_restore(tm_operator_t *op, char *errstr, size_t errstr_size)
{
    /* The lowest watermark any owned key group kept (window_agg.c's restore says why). */
    char what[300];
    snprintf(what, sizeof(what), "window_rank %s", op->ctx.uid);
    int64_t wm;
    bool any;
    int rc = tm_evstate_restore_watermark(op->ctx.store, op->cf, op->ctx.kg_first,
                                          op->ctx.kg_last, &op->val, what, &wm, &any, errstr,
                                          errstr_size);
    if (rc != 0)
        return rc;
    if (any)
        op->wm = op->saved_wm = wm;
    rc = new_iter(op);
    if (rc == 0)
        rc = find_next_due(op, errstr, errstr_size);
    op->it = tm_store_iter_free(op->it);
    return rc;
}

static void op_free(tm_operator_t *op)
{
    if (op == NULL)
        return;
    tm_store_iter_free(op->it);
    tm_store_batch_free(op->wb);
    tm_batch_unref(op->scratch);
    tm_batch_unref(op->out);
    tm_buf_release(&op->key);
    tm_buf_release(&op->val);
    tm_buf_release(&op->tmp);
    free(op->imgs);
    free(op->ents);
    free(op->kg_due);
    free(op);
}

static const tm_operator_ops_t window_rank_ops = {
    .name = "window_rank",
    .ninputs = 1,
    .process = op_process,
    .on_watermark = op_on_watermark,
    .on_barrier = op_on_barrier,
    .on_end = op_on_end,
    .restore = op_restore,
    .free = op_free,
};

static int check_spec(const tm_window_rank_spec_t *spec, const char *uid, char *errstr,
                      size_t errstr_size)
{
    const tm_topn_spec_t *ts = &spec->topn;
    const tm_schema_t *in = ts->in_schema;
    bool ok = in != NULL && ts->out_schema != NULL && ts->norder >= 1 && ts->npart >= 1 &&
              ts->limit >= 1 && ts->nhidden >= 0 && ts->nhidden < in->ncols &&
              ts->out_schema->ncols == in->ncols - ts->nhidden + (ts->rn_col >= 0) &&
              ts->rn_col < ts->out_schema->ncols &&
              (ts->rn_col < 0 || ts->out_schema->cols[ts->rn_col].type == TM_T_INT64) &&
              spec->end_col >= 0 && spec->end_col < in->ncols &&
              (in->cols[spec->end_col].type == TM_T_TIMESTAMP ||
               in->cols[spec->end_col].type == TM_T_TIMESTAMPTZ);
    bool end_in_part = false;
    for (int i = 0; ok && i < ts->npart; i++) {
        ok = ts->part_cols[i] >= 0 && ts->part_cols[i] < in->ncols;
        end_in_part |= ok && ts->part_cols[i] == spec->end_col;
    }
    for (int i = 0; ok && i < ts->norder; i++)
        ok = ts->order_cols[i] >= 0 && ts->order_cols[i] < in->ncols &&
             tm_topn_orderable(in->cols[ts->order_cols[i]].type);
    if (!ok || !end_in_part)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "window_rank %s: needs an input and output schema (the output the "
                         "input's visible columns with a bigint rank), at least one ORDER BY "
                         "column of a sortable type, a limit of at least 1, and window_end (a "
                         "timestamp column) among the partition columns",
                         uid);
    return 0;
}

int tm_window_rank_new(const void *spec_arg, const tm_operator_ctx_t *ctx,
                       const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                       size_t errstr_size)
{
    const tm_window_rank_spec_t *spec = spec_arg;
    const char *uid = ctx->uid ? ctx->uid : "";
    *out = NULL;
    if (ctx->store == NULL)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "window_rank %s: the operator keeps state and needs a store", uid);
    int rc = check_spec(spec, uid, errstr, errstr_size);
    if (rc != 0)
        return rc;
    if (ctx->kg_first < 0 || ctx->kg_last >= ctx->max_parallelism ||
        ctx->kg_first > ctx->kg_last)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "window_rank %s: key groups %d..%d are outside 0..%d", uid,
                         ctx->kg_first, ctx->kg_last, ctx->max_parallelism - 1);
    tm_operator_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return TM_ENOMEM;
    op->spec = spec;
    op->ctx = *ctx;
    op->wm = op->saved_wm = INT64_MIN;
    op->next_due = INT64_MAX;
    tm_buf_init(&op->key);
    tm_buf_init(&op->val);
    tm_buf_init(&op->tmp);
    rc = tm_store_cf(ctx->store, ctx->uid, &op->cf, errstr, errstr_size);
    if (rc == 0 && (op->scratch = tm_batch_new()) == NULL)
        rc = TM_ENOMEM;
    if (rc == 0 && (op->kg_due = malloc(sizeof(int64_t) *
                                        (size_t)(ctx->kg_last - ctx->kg_first + 1))) == NULL)
        rc = TM_ENOMEM;
    if (rc == 0)
        rc = tm_store_batch_new_unindexed(ctx->store, &op->wb);
    if (rc == 0)
        rc = new_iter(op);
    if (rc == 0)
        rc = find_next_due(op, errstr, errstr_size);
    op->it = tm_store_iter_free(op->it);
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    *ops = &window_rank_ops;
    *out = op;
    return 0;
}

/* ---- the window TVF operator (window_rank.h) ---- */

static int tvf_process(tm_operator_t *op, int input, const tm_batch_t *batch,
                       tm_collector_t *out, char *errstr, size_t errstr_size)
{
    (void)input;
    const tm_window_tvf_spec_t *spec = op->tvf;
    const tm_schema_t *in = spec->win.in_schema;
    tm_schema_t *os = spec->out_schema;
    int tc = spec->win.time_col, nin = in->ncols;
    int64_t starts[TM_WINDOW_MAX_PER_ROW], ends[TM_WINDOW_MAX_PER_ROW];
    tm_arena_reset(&op->scratch->arena);
    int rc = 0;
    for (uint32_t i = 0; rc == 0 && i < batch->count; i++) {
        const tm_record_t *rec = &batch->recs[i];
        const tm_row_t *img[2];
        if ((rc = tm_operator_images(&op->ctx, rec, img, errstr, errstr_size)) != 0)
            break;
        if (img[0] != NULL)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "window_tvf %s: received an update or delete, but a window Top-N "
                             "over a window function needs an insert-only input",
                             op->ctx.uid);
        const tm_row_t *row = img[1];
        if (row == NULL || tm_row_is_null(row, tc))
            continue; /* no event time: in no window */
        int n = tm_window_assign(&spec->win, row->vals[tc].u.i64, starts, ends,
                                 TM_WINDOW_MAX_PER_ROW);
        tm_row_t *wide = tm_batch_new_row(op->scratch, os);
        if (wide == NULL)
            return TM_ENOMEM;
        for (int c = 0; c < nin; c++) {
            wide->vals[c] = row->vals[c];
            tm_row_set_null(wide, c, tm_row_is_null(row, c));
        }
        for (int k = 0; rc == 0 && k < n; k++) {
            int64_t w[3] = {starts[k], ends[k], ends[k] - 1};
            for (int c = 0; c < 3; c++) {
                wide->vals[nin + c].u.i64 = w[c];
                tm_row_set_null(wide, nin + c, false);
            }
            if ((rc = tm_collector_room(out, &op->out, op->ctx.uid, errstr, errstr_size)) != 0)
                break;
            tm_record_t *r = tm_batch_add(op->out, os, TM_OP_CREATE);
            if (r == NULL || (r->after = tm_row_copy(op->out, os, wide)) == NULL)
                return TM_ENOMEM;
            r->proc_us = rec->proc_us;
            r->src = rec->src;
        }
    }
    return rc != 0 ? rc : tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
}

static int tvf_flush(tm_operator_t *op, uint64_t id, tm_collector_t *out, char *errstr,
                     size_t errstr_size)
{
    (void)id;
    return tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
}

static int tvf_on_end(tm_operator_t *op, tm_collector_t *out, char *errstr, size_t errstr_size)
{
    return tvf_flush(op, 0, out, errstr, errstr_size);
}

static const tm_operator_ops_t window_tvf_ops = {
    .name = "window_tvf",
    .ninputs = 1,
    .process = tvf_process,
    .on_barrier = tvf_flush,
    .on_end = tvf_on_end,
    .free = op_free,
};

int tm_window_tvf_new(const void *spec_arg, const tm_operator_ctx_t *ctx,
                      const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                      size_t errstr_size)
{
    const tm_window_tvf_spec_t *spec = spec_arg;
    const tm_window_agg_spec_t *w = &spec->win;
    const char *uid = ctx->uid ? ctx->uid : "";
    *out = NULL;
    const tm_schema_t *in = w->in_schema, *os = spec->out_schema;
    bool ok = in != NULL && os != NULL && os->ncols == in->ncols + 3 && w->time_col >= 0 &&
              w->time_col < in->ncols &&
              (in->cols[w->time_col].type == TM_T_TIMESTAMP ||
               in->cols[w->time_col].type == TM_T_TIMESTAMPTZ) &&
              (w->kind == TM_WINDOW_TUMBLE || w->kind == TM_WINDOW_HOP ||
               w->kind == TM_WINDOW_CUMULATE) &&
              w->size_us > 0 && w->slide_us >= 0 &&
              (w->slide_us == 0 || w->size_us / w->slide_us <= TM_WINDOW_MAX_PER_ROW);
    if (!ok)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "window_tvf %s: needs TUMBLE, HOP or CUMULATE over a timestamp column "
                         "with a positive size (at most %d windows per row) and an output of "
                         "the input's columns plus three window columns",
                         uid, TM_WINDOW_MAX_PER_ROW);
    tm_operator_t *op = calloc(1, sizeof(*op));
    if (op == NULL || (op->scratch = tm_batch_new()) == NULL) {
        free(op);
        return TM_ENOMEM;
    }
    op->tvf = spec;
    op->ctx = *ctx;
    *ops = &window_tvf_ops;
    *out = op;
    return 0;
}
