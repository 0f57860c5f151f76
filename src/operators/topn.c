/*
 * topn.c — Top-N per partition over a retract stream, mini-batched (see
 * topn.h).
 *
 * State layout in column family `uid` (P = tm_row_cols_key_encode of the
 * partition columns, prefix-free for a given input schema; the key group of
 * every key is tm_keygroup_of(P)):
 *
 *     P ‖ S ‖ R     a distinct row: value = varint count (copies of it)
 *
 * S is the row's order key, one component per ORDER BY column, so that
 * memcmp() of two keys of one partition is their rank order:
 *
 *     NULL          u8 0x00 (NULLS FIRST) or 0x02 (NULLS LAST)
 *     a value       u8 0x01 ‖ escaped(V) ‖ 00 01, every byte inverted for DESC
 *
 * where V = tm_agg_value_encode of the value (order-preserving but not
 * self-delimiting) and escaped() writes a 00 byte as 00 FF: the terminator
 * 00 01 sorts below any continuation, so a value that is a prefix of
 * another sorts first, exactly as memcmp() orders the raw V.  R =
 * tm_row_serialize of the row: it breaks ties and is the row itself.
 *
 *     process(batch):
 *       1. each record's images become (P ‖ S ‖ R, +1 / -1); sort them by
 *          (key group, key): a partition is one run (P is prefix-free)
 *       2. per partition: read its top N (the first keys under P, counting
 *          copies) through an iterator opened before any write
 *       3. per distinct key: net its signs, read its count, write the new
 *          one (or delete it at 0); commit
 *       4. per partition: read the top N again (a new iterator, after the
 *          commit); an append-only input deletes everything past rank N
 *       5. per partition: emit the difference of the two lists (topn.h)
 *
 *     An append-only input's batch of inserts does steps 3 and 4 in memory
 *     instead (merge_part): its stored rows are the top list before, so
 *     the list after is their merge with the batch's rows; only the changes
 *     are written, with one commit.
 *
 * Invariants:
 *   1. A key's count is >= 1; a row retracted more often than it was
 *      inserted (the input lost a change) is forgotten, never negative.
 *   2. Nothing outlives a call but the store's contents: on_barrier has
 *      nothing to flush beyond the output batch.
 *   3. Every key read or written is in a key group this subtask owns; a
 *      row of another key group is an error (the input is not partitioned
 *      by tm_topn_key).
 *
 * Thread: its subtask's.
 */
#include "operators/topn.h"
#include "core/error.h"
#include "expr/agg.h"
#include "operators/batchkeys.h"
#include "state/keygroup.h"
#include "state/rowcodec.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

enum { ORD_NULL_FIRST = 0x00, ORD_VALUE = 0x01, ORD_NULL_LAST = 0x02 };

/* One row image of the batch (step 1). */
typedef struct image {
    int kg;
    const uint8_t *key; /* P ‖ S ‖ R, in the scratch arena */
    size_t klen;
    size_t plen;
    int sign;
    const tm_record_t *rec;
} image_t;

/* A row of a top list: `cnt` copies of the key (at most the ranks left). */
typedef struct rank_ent {
    const uint8_t *key;
    size_t klen;
    int64_t cnt;
} rank_ent_t;

typedef struct toplist {
    rank_ent_t *e;
    int n, cap;
} toplist_t;

/* A run of images of one partition, with its top lists before and after the batch. */
typedef struct part {
    int first, end; /* images [first, end) */
    toplist_t before, after;
} part_t;

struct tm_operator {
    const tm_topn_spec_t *spec;
    tm_operator_ctx_t ctx;
    tm_store_t *store;
    tm_store_cf_t *cf;
    tm_store_batch_t *wb;
    tm_store_iter_t *it;  /* per call, never kept across calls */
    tm_batch_t *scratch;  /* only its arena: per-call images, keys and lists */
    tm_batch_t *out;      /* the output batch being filled */
    tm_buf_t key, val, tmp;
    int maxp;
    /* Per call. */
    image_t *imgs;
    int nimgs, cap;
};

/* ---- keys ---- */

int tm_topn_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row, tm_buf_t *out)
{
    const tm_topn_spec_t *s = spec;
    return tm_row_cols_key_encode(schema, row, s->part_cols, s->npart, out);
}

bool tm_topn_orderable(tm_type_t type)
{
    switch (type) {
    case TM_T_BOOL:
    case TM_T_INT16:
    case TM_T_INT32:
    case TM_T_INT64:
    case TM_T_FLOAT32:
    case TM_T_FLOAT64:
    case TM_T_NUMERIC:
    case TM_T_TEXT:
    case TM_T_DATE:
    case TM_T_TIME:
    case TM_T_TIMESTAMP:
    case TM_T_TIMESTAMPTZ:
    case TM_T_INTERVAL:
        return true;
    default:
        return false;
    }
}

int tm_topn_order_put(const tm_topn_spec_t *spec, const tm_row_t *row, tm_buf_t *key,
                      tm_buf_t *tmp)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < spec->norder; i++) {
        int c = spec->order_cols[i];
        uint8_t inv = spec->order_desc[i] ? 0xff : 0x00;
        if (tm_row_is_null(row, c)) {
            rc = tm_buf_putc(key, (char)(spec->nulls_first[i] ? ORD_NULL_FIRST : ORD_NULL_LAST));
            continue;
        }
        tm_buf_clear(tmp);
        if ((rc = tm_agg_value_encode(spec->in_schema->cols[c].type, &row->vals[c], tmp)) != 0)
            return rc;
        if ((rc = tm_buf_reserve(key, 2 * tmp->len + 3)) != 0)
            return rc;
        uint8_t *p = (uint8_t *)key->data + key->len;
        *p++ = ORD_VALUE;
        for (size_t k = 0; k < tmp->len; k++) {
            uint8_t b = (uint8_t)tmp->data[k];
            *p++ = b ^ inv;
            if (b == 0)
                *p++ = 0xff ^ inv;
        }
        *p++ = 0x00 ^ inv;
        *p++ = 0x01 ^ inv;
        key->len = (size_t)(p - (uint8_t *)key->data);
    }
    return rc;
}

ptrdiff_t tm_topn_order_len(const tm_topn_spec_t *spec, const uint8_t *p, const uint8_t *end)
{
    const uint8_t *start = p;
    for (int i = 0; i < spec->norder; i++) {
        if (p >= end)
            return -1;
        uint8_t m = *p++;
        if (m == ORD_NULL_FIRST || m == ORD_NULL_LAST)
            continue;
        if (m != ORD_VALUE)
            return -1;
        uint8_t inv = spec->order_desc[i] ? 0xff : 0x00;
        for (;;) {
            if (p >= end)
                return -1;
            if ((uint8_t)(*p++ ^ inv) != 0)
                continue;
            if (p >= end)
                return -1;
            uint8_t n = *p++ ^ inv;
            if (n == 0x01)
                break;
            if (n != 0xff)
                return -1;
        }
    }
    return p - start;
}

/* ---- life cycle ---- */

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
    free(op);
}

/* ---- step 1: images ---- */

static int add_image(tm_operator_t *op, const tm_record_t *rec, const tm_row_t *row, int sign,
                     char *errstr, size_t errstr_size)
{
    const tm_topn_spec_t *spec = op->spec;
    tm_buf_clear(&op->key);
    int rc = tm_row_cols_key_encode(spec->in_schema, row, spec->part_cols, spec->npart, &op->key);
    size_t plen = op->key.len;
    if (rc == 0)
        rc = tm_topn_order_put(spec, row, &op->key, &op->tmp);
    if (rc == TM_EINVAL)
        return tm_operator_row_error(&op->ctx, rec,
                                     "a PARTITION BY or ORDER BY column is an unchanged TOASTed "
                                     "value the source did not send (set REPLICA IDENTITY FULL "
                                     "on the table)",
                                     errstr, errstr_size);
    if (rc == 0)
        rc = tm_row_serialize(spec->in_schema, row, &op->key);
    if (rc != 0)
        return rc;
    int kg = tm_keygroup_of(op->key.data, plen, op->maxp);
    if (kg < op->ctx.kg_first || kg > op->ctx.kg_last)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "topn %s: subtask %d received a row of key group %d, but owns key "
                         "groups %d..%d; its input is not hash-partitioned by the partition key "
                         "(tm_topn_key)",
                         op->ctx.uid, op->ctx.subtask, kg, op->ctx.kg_first, op->ctx.kg_last);
    if (op->nimgs == op->cap) {
        int cap = op->cap ? 2 * op->cap : 256;
        image_t *v = realloc(op->imgs, sizeof(*v) * (size_t)cap);
        if (v == NULL)
            return TM_ENOMEM;
        op->imgs = v;
        op->cap = cap;
    }
    uint8_t *k = tm_arena_alloc(&op->scratch->arena, op->key.len + 1);
    if (k == NULL)
        return TM_ENOMEM;
    memcpy(k, op->key.data, op->key.len);
    op->imgs[op->nimgs++] = (image_t){kg, k, op->key.len, plen, sign, rec};
    return 0;
}

static int collect_images(tm_operator_t *op, const tm_batch_t *batch, char *errstr,
                          size_t errstr_size)
{
    op->nimgs = 0;
    for (uint32_t i = 0; i < batch->count; i++) {
        const tm_record_t *rec = &batch->recs[i];
        const tm_row_t *img[2];
        int rc = tm_operator_images(&op->ctx, rec, img, errstr, errstr_size);
        if (rc == 0 && img[0] != NULL)
            rc = add_image(op, rec, img[0], -1, errstr, errstr_size);
        if (rc == 0 && img[1] != NULL)
            rc = add_image(op, rec, img[1], 1, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int image_cmp(const void *a, const void *b)
{
    const image_t *x = a, *y = b;
    if (x->kg != y->kg)
        return x->kg < y->kg ? -1 : 1;
    int c = tm_bytes_cmp(x->key, x->klen, y->key, y->klen);
    if (c != 0)
        return c;
    /* Stable for equal keys: the batch's order. */
    return x->rec < y->rec ? -1 : x->rec > y->rec;
}

/* ---- steps 2 and 4: a partition's top list ---- */

static int list_add(tm_operator_t *op, toplist_t *tl, const uint8_t *key, size_t klen, int64_t cnt)
{
    if (tl->n == tl->cap) {
        int cap = tl->cap ? 2 * tl->cap : 8;
        rank_ent_t *v = tm_arena_alloc(&op->scratch->arena, sizeof(*v) * (size_t)cap);
        if (v == NULL)
            return TM_ENOMEM;
        if (tl->n > 0)
            memcpy(v, tl->e, sizeof(*v) * (size_t)tl->n);
        tl->e = v;
        tl->cap = cap;
    }
    uint8_t *k = tm_arena_alloc(&op->scratch->arena, klen + 1);
    if (k == NULL)
        return TM_ENOMEM;
    memcpy(k, key, klen);
    tl->e[tl->n++] = (rank_ent_t){k, klen, cnt};
    return 0;
}

static int bad_count(tm_operator_t *op, char *errstr, size_t errstr_size)
{
    return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                     "topn %s: a stored row count is unreadable (state written by another "
                     "version?)",
                     op->ctx.uid);
}

/*
 * Reads the top N of the partition of image `im` through op->it.  With
 * `prune` (an append-only input, after the batch's writes) every copy past
 * rank N is deleted in op->wb.
 */
static int read_top(tm_operator_t *op, const image_t *im, bool prune, toplist_t *tl,
                    char *errstr, size_t errstr_size)
{
    int64_t limit = op->spec->limit, total = 0;
    int rc = tm_store_iter_seek(op->it, im->kg, im->key, im->plen, false);
    if (rc != 0)
        return rc;
    atomic_fetch_add(&op->ctx.metrics->state_reads, 1);
    tm_store_entry_t e;
    while ((rc = tm_store_iter_next(op->it, &e, errstr, errstr_size)) == 1) {
        const uint8_t *p = e.val;
        uint64_t cnt;
        if (tm_buf_get_varint(&p, e.val + e.vlen, &cnt) != 0 || cnt == 0 || cnt > INT64_MAX)
            return bad_count(op, errstr, errstr_size);
        if (total >= limit) {
            if (!prune)
                return 0;
            rc = tm_store_batch_delete(op->wb, op->cf, e.kg, e.key, e.klen);
            if (rc != 0)
                return rc;
            continue;
        }
        int64_t take = (int64_t)cnt < limit - total ? (int64_t)cnt : limit - total;
        if ((rc = list_add(op, tl, e.key, e.klen, take)) != 0)
            return rc;
        total += take;
        if (prune && take < (int64_t)cnt) {
            tm_buf_clear(&op->val);
            if ((rc = tm_buf_put_varint(&op->val, (uint64_t)take)) != 0 ||
                (rc = tm_store_batch_put(op->wb, op->cf, e.kg, e.key, e.klen, op->val.data,
                                         op->val.len)) != 0)
                return rc;
        }
    }
    return rc < 0 ? rc : 0;
}

/* ---- step 3: counts ---- */

static int apply_part(tm_operator_t *op, const part_t *pt, char *errstr, size_t errstr_size)
{
    int rc = 0;
    for (int i = pt->first; rc == 0 && i < pt->end;) {
        const image_t *im = &op->imgs[i];
        int64_t delta = 0;
        int j = i;
        while (j < pt->end && tm_bytes_cmp(op->imgs[j].key, op->imgs[j].klen, im->key,
                                           im->klen) == 0)
            delta += op->imgs[j++].sign;
        i = j;
        if (delta == 0)
            continue;
        int64_t cur = 0;
        rc = tm_store_get(op->store, op->cf, im->kg, im->key, im->klen, &op->val, errstr,
                          errstr_size);
        atomic_fetch_add(&op->ctx.metrics->state_reads, 1);
        if (rc == 0) {
            const uint8_t *p = (const uint8_t *)op->val.data;
            uint64_t c;
            if (tm_buf_get_varint(&p, p + op->val.len, &c) != 0 || c > INT64_MAX)
                return bad_count(op, errstr, errstr_size);
            cur = (int64_t)c;
        } else if (rc != TM_ENOTFOUND) {
            return rc;
        }
        rc = 0;
        int64_t n = cur + delta;
        if (n <= 0) {
            /* Invariant 1: a retraction of a row never seen leaves nothing behind. */
            if (cur > 0)
                rc = tm_store_batch_delete(op->wb, op->cf, im->kg, im->key, im->klen);
            continue;
        }
        tm_buf_clear(&op->val);
        rc = tm_buf_put_varint(&op->val, (uint64_t)n);
        if (rc == 0)
            rc = tm_store_batch_put(op->wb, op->cf, im->kg, im->key, im->klen, op->val.data,
                                    op->val.len);
    }
    return rc;
}

/*
 * Steps 3 and 4 at once for an insert-only batch of an insert-only input
 * (append_only): the stored rows are the `before` list (at most N copies,
 * kept so by step 4's pruning), so the top N after the batch is the merge of
 * that list with the batch's rows, and only what changes is written: a row
 * entering the top N, a count that changes, a row pushed past rank N.  No
 * count is read and no second view is needed.
 */
static int merge_part(tm_operator_t *op, part_t *pt)
{
    const toplist_t *B = &pt->before;
    int64_t left = op->spec->limit;
    int kg = op->imgs[pt->first].kg, rc = 0;
    for (int si = 0, bi = pt->first; rc == 0 && (si < B->n || bi < pt->end);) {
        const rank_ent_t *se = si < B->n ? &B->e[si] : NULL;
        const image_t *be = bi < pt->end ? &op->imgs[bi] : NULL;
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
            while (j < pt->end && tm_bytes_cmp(op->imgs[j].key, op->imgs[j].klen, key, klen) == 0)
                j++;
            add = j - bi;
            bi = j;
        }
        int64_t keep = have + add < left ? have + add : left;
        left -= keep;
        if (keep > 0 && (rc = list_add(op, &pt->after, key, klen, keep)) != 0)
            break;
        if (keep == have)
            continue;
        if (keep == 0) {
            rc = tm_store_batch_delete(op->wb, op->cf, kg, key, klen);
            continue;
        }
        tm_buf_clear(&op->val);
        if ((rc = tm_buf_put_varint(&op->val, (uint64_t)keep)) == 0)
            rc = tm_store_batch_put(op->wb, op->cf, kg, key, klen, op->val.data, op->val.len);
    }
    return rc;
}

/* ---- step 5: output ---- */

int tm_topn_row_out(const tm_topn_spec_t *spec, const uint8_t *key, size_t klen, size_t plen,
                    int64_t rank, tm_batch_t *batch, tm_row_t **out)
{
    ptrdiff_t slen = plen <= klen ? tm_topn_order_len(spec, key + plen, key + klen) : -1;
    tm_row_t *row = NULL;
    int rc = slen < 0 ? TM_ECORRUPT
                      : tm_row_deserialize(spec->in_schema, key + plen + slen,
                                           klen - plen - (size_t)slen, batch, &row);
    if (rc == TM_ENOMEM)
        return rc;
    if (rc != 0)
        return TM_ECORRUPT;
    if (spec->rn_col < 0 && spec->nhidden == 0) {
        *out = row;
        return 0;
    }
    tm_row_t *r = tm_batch_new_row(batch, spec->out_schema);
    if (r == NULL)
        return TM_ENOMEM;
    for (int c = 0; c < spec->out_schema->ncols; c++) {
        if (c == spec->rn_col) {
            if (spec->rank_number) {
                r->vals[c].u.i64 = rank;
                tm_row_set_null(r, c, false);
            }
            continue;
        }
        int src = spec->rn_col < 0 || c < spec->rn_col ? c : c - 1;
        r->vals[c] = row->vals[src];
        tm_row_set_null(r, c, tm_row_is_null(row, src));
    }
    *out = r;
    return 0;
}

static int out_row(tm_operator_t *op, const rank_ent_t *ent, size_t plen, int64_t rank,
                   tm_row_t **out, char *errstr, size_t errstr_size)
{
    int rc = tm_topn_row_out(op->spec, ent->key, ent->klen, plen, rank, op->out, out);
    if (rc == TM_ECORRUPT)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "topn %s: a stored row is unreadable (the input schema changed?)",
                         op->ctx.uid);
    return rc;
}

static int emit(tm_operator_t *op, tm_collector_t *out, const part_t *pt, tm_op_t kind,
                const rank_ent_t *before, const rank_ent_t *after, int64_t rank, char *errstr,
                size_t errstr_size)
{
    int rc = tm_collector_room(out, &op->out, op->ctx.uid, errstr, errstr_size);
    if (rc != 0)
        return rc;
    tm_record_t *r = tm_batch_add(op->out, op->spec->out_schema, kind);
    if (r == NULL)
        return TM_ENOMEM;
    const tm_record_t *last = op->imgs[pt->end - 1].rec;
    r->proc_us = last->proc_us;
    r->src = last->src;
    size_t plen = op->imgs[pt->first].plen;
    if (before != NULL && (rc = out_row(op, before, plen, rank, &r->before, errstr,
                                        errstr_size)) != 0)
        return rc;
    if (after != NULL &&
        (rc = out_row(op, after, plen, rank, &r->after, errstr, errstr_size)) != 0)
        return rc;
    return 0;
}

static bool same_key(const rank_ent_t *a, const rank_ent_t *b)
{
    return a->klen == b->klen && memcmp(a->key, b->key, a->klen) == 0;
}

/* By rank: the row at each rank before and after. */
static int diff_ranks(tm_operator_t *op, tm_collector_t *out, const part_t *pt, char *errstr,
                      size_t errstr_size)
{
    const toplist_t *B = &pt->before, *A = &pt->after;
    int bi = 0, ai = 0, rc = 0;
    int64_t bc = 0, ac = 0; /* copies of the current entry used so far */
    for (int64_t rank = 1; rc == 0 && (bi < B->n || ai < A->n); rank++) {
        const rank_ent_t *b = bi < B->n ? &B->e[bi] : NULL;
        const rank_ent_t *a = ai < A->n ? &A->e[ai] : NULL;
        if (b != NULL && a != NULL) {
            if (!same_key(b, a))
                rc = emit(op, out, pt, TM_OP_UPDATE, b, a, rank, errstr, errstr_size);
        } else if (b != NULL) {
            rc = emit(op, out, pt, TM_OP_DELETE, b, NULL, rank, errstr, errstr_size);
        } else {
            rc = emit(op, out, pt, TM_OP_CREATE, NULL, a, rank, errstr, errstr_size);
        }
        if (b != NULL && ++bc == b->cnt) {
            bi++;
            bc = 0;
        }
        if (a != NULL && ++ac == a->cnt) {
            ai++;
            ac = 0;
        }
    }
    return rc;
}

/* As multisets: rows that left the top N are deleted (pass 0), rows that entered it inserted. */
static int diff_sets(tm_operator_t *op, tm_collector_t *out, const part_t *pt, char *errstr,
                     size_t errstr_size)
{
    const toplist_t *B = &pt->before, *A = &pt->after;
    int rc = 0;
    for (int pass = 0; pass < 2; pass++) {
        int bi = 0, ai = 0;
        while (rc == 0 && (bi < B->n || ai < A->n)) {
            int c = bi >= B->n   ? 1
                    : ai >= A->n ? -1
                                 : tm_bytes_cmp(B->e[bi].key, B->e[bi].klen, A->e[ai].key,
                                                A->e[ai].klen);
            int64_t d; /* copies entering (> 0) or leaving (< 0) */
            const rank_ent_t *ent;
            if (c == 0) {
                d = A->e[ai].cnt - B->e[bi].cnt;
                ent = &A->e[ai];
                bi++;
                ai++;
            } else if (c < 0) {
                d = -B->e[bi].cnt;
                ent = &B->e[bi++];
            } else {
                d = A->e[ai].cnt;
                ent = &A->e[ai++];
            }
            for (; rc == 0 && pass == 0 && d < 0; d++)
                rc = emit(op, out, pt, TM_OP_DELETE, ent, NULL, 0, errstr, errstr_size);
            for (; rc == 0 && pass == 1 && d > 0; d--)
                rc = emit(op, out, pt, TM_OP_CREATE, NULL, ent, 0, errstr, errstr_size);
        }
    }
    return rc;
}

/* ---- hooks ---- */

static int new_iter(tm_operator_t *op)
{
    op->it = tm_store_iter_free(op->it);
    return tm_store_iter_new(op->store, op->cf, op->ctx.kg_first, op->ctx.kg_last, NULL, 0,
                             &op->it);
}

static int process(tm_operator_t *op, const tm_batch_t *batch, tm_collector_t *out,
                   char *errstr, size_t errstr_size)
{
    tm_arena_reset(&op->scratch->arena);
    int rc = collect_images(op, batch, errstr, errstr_size);
    if (rc != 0 || op->nimgs == 0)
        return rc;
    qsort(op->imgs, (size_t)op->nimgs, sizeof(*op->imgs), image_cmp);
    part_t *parts = tm_arena_zalloc(&op->scratch->arena, sizeof(*parts) * (size_t)op->nimgs);
    if (parts == NULL)
        return TM_ENOMEM;
    int nparts = 0;
    for (int i = 0; i < op->nimgs; i++) {
        const image_t *im = &op->imgs[i];
        if (nparts > 0) {
            const image_t *f = &op->imgs[parts[nparts - 1].first];
            if (f->kg == im->kg && f->plen == im->plen && memcmp(f->key, im->key, im->plen) == 0) {
                parts[nparts - 1].end = i + 1;
                continue;
            }
        }
        parts[nparts++] = (part_t){.first = i, .end = i + 1};
    }
    /* Step 2: the top lists before, from one view taken before any write. */
    if ((rc = new_iter(op)) != 0)
        return rc;
    for (int k = 0; rc == 0 && k < nparts; k++)
        rc = read_top(op, &op->imgs[parts[k].first], false, &parts[k].before, errstr,
                      errstr_size);
    bool inserts_only = op->spec->append_only;
    for (int i = 0; inserts_only && i < op->nimgs; i++)
        inserts_only = op->imgs[i].sign > 0;
    if (inserts_only) {
        /* Steps 3 and 4 in memory (merge_part), one commit. */
        op->it = tm_store_iter_free(op->it);
        for (int k = 0; rc == 0 && k < nparts; k++)
            rc = merge_part(op, &parts[k]);
        if (rc == 0)
            rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
        for (int k = 0; rc == 0 && k < nparts; k++)
            rc = op->spec->rank_number ? diff_ranks(op, out, &parts[k], errstr, errstr_size)
                                       : diff_sets(op, out, &parts[k], errstr, errstr_size);
        return rc != 0 ? rc : tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
    }
    /* Step 3. */
    for (int k = 0; rc == 0 && k < nparts; k++)
        rc = apply_part(op, &parts[k], errstr, errstr_size);
    if (rc == 0)
        rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    /* Step 4: a fresh view sees the commit. */
    if (rc == 0)
        rc = new_iter(op);
    for (int k = 0; rc == 0 && k < nparts; k++)
        rc = read_top(op, &op->imgs[parts[k].first], op->spec->append_only, &parts[k].after,
                      errstr, errstr_size);
    op->it = tm_store_iter_free(op->it);
    if (rc == 0)
        rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    /* Step 5. */
    for (int k = 0; rc == 0 && k < nparts; k++)
        rc = op->spec->rank_number ? diff_ranks(op, out, &parts[k], errstr, errstr_size)
                                   : diff_sets(op, out, &parts[k], errstr, errstr_size);
    return rc != 0 ? rc : tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
}

static int op_process(tm_operator_t *op, int input, const tm_batch_t *batch, tm_collector_t *out,
                      char *errstr, size_t errstr_size)
{
    (void)input;
    int rc = process(op, batch, out, errstr, errstr_size);
    /* The iterator pins memtables and blocks: it never outlives the call, even on failure. */
    op->it = tm_store_iter_free(op->it);
    return rc;
}

static int op_on_barrier(tm_operator_t *op, uint64_t id, tm_collector_t *out, char *errstr,
                         size_t errstr_size)
{
    (void)id;
    int rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    return rc != 0 ? rc : tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
}

static int op_on_end(tm_operator_t *op, tm_collector_t *out, char *errstr, size_t errstr_size)
{
    return op_on_barrier(op, 0, out, errstr, errstr_size);
}

static const tm_operator_ops_t topn_ops = {
    .name = "topn",
    .ninputs = 1,
    .process = op_process,
    .on_barrier = op_on_barrier,
    .on_end = op_on_end,
    .free = op_free,
};

static int check_spec(const tm_topn_spec_t *spec, const char *uid, char *errstr,
                      size_t errstr_size)
{
    const tm_schema_t *in = spec->in_schema;
    if (in == NULL || spec->out_schema == NULL || spec->norder < 1 || spec->npart < 0 ||
        spec->limit < 1)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "topn %s: needs an input and output schema, at least one ORDER BY "
                         "column and a limit of at least 1",
                         uid);
    int extra = spec->rn_col >= 0 ? 1 : 0, nout = in->ncols - spec->nhidden + extra;
    if (spec->nhidden < 0 || spec->nhidden >= in->ncols || spec->out_schema->ncols != nout ||
        spec->rn_col >= nout ||
        (extra && spec->out_schema->cols[spec->rn_col].type != TM_T_INT64))
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "topn %s: the output must be the first %d input columns with a bigint "
                         "rank column at %d",
                         uid, in->ncols - spec->nhidden, spec->rn_col);
    for (int i = 0; i < spec->npart; i++)
        if (spec->part_cols[i] < 0 || spec->part_cols[i] >= in->ncols)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "topn %s: partition column %d is not an input column", uid,
                             spec->part_cols[i]);
    for (int i = 0; i < spec->norder; i++) {
        int c = spec->order_cols[i];
        if (c < 0 || c >= in->ncols || !tm_topn_orderable(in->cols[c].type))
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "topn %s: ORDER BY column %d is not an input column of a type "
                             "Top-N can sort",
                             uid, c);
    }
    return 0;
}

int tm_topn_new(const void *spec_arg, const tm_operator_ctx_t *ctx, const tm_operator_ops_t **ops,
                tm_operator_t **out, char *errstr, size_t errstr_size)
{
    const tm_topn_spec_t *spec = spec_arg;
    const char *uid = ctx->uid ? ctx->uid : "";
    *out = NULL;
    if (ctx->store == NULL)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "topn %s: the operator keeps state and needs a store", uid);
    int rc = check_spec(spec, uid, errstr, errstr_size);
    if (rc != 0)
        return rc;
    int maxp = tm_store_max_parallelism(ctx->store);
    if (ctx->kg_first < 0 || ctx->kg_last >= maxp || ctx->kg_first > ctx->kg_last)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "topn %s: key groups %d..%d are outside the store's 0..%d", uid,
                         ctx->kg_first, ctx->kg_last, maxp - 1);
    tm_operator_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return TM_ENOMEM;
    op->spec = spec;
    op->ctx = *ctx;
    op->store = ctx->store;
    op->maxp = maxp;
    tm_buf_init(&op->key);
    tm_buf_init(&op->val);
    tm_buf_init(&op->tmp);
    rc = tm_store_cf(ctx->store, ctx->uid, &op->cf, errstr, errstr_size);
    if (rc == 0 && (op->scratch = tm_batch_new()) == NULL)
        rc = TM_ENOMEM;
    if (rc == 0)
        rc = tm_store_batch_new_unindexed(ctx->store, &op->wb);
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    *ops = &topn_ops;
    *out = op;
    return 0;
}
