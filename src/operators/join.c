/*
 * join.c — the regular join of two retract streams, mini-batched (see
 * join.h for what it computes).
 *
 * State layout in column family `uid` (J = the join key, tm_row_cols_key_encode
 * of the side's key columns, prefix-free for a given key type list; empty for
 * a global join; the key group of every key below is tm_keygroup_of(J)):
 *
 *     J ‖ u8 side ‖ U        unique-key view (the side has left_uk/right_uk):
 *                            U = tm_row_cols_key_encode of the unique key;
 *                            value = varint matches ‖ tm_row_serialize(row)
 *     J ‖ u8 side ‖ R        multiset view: R = tm_row_serialize(row) (equal
 *                            rows give equal bytes, rowcodec.h);
 *                            value = varint copies ‖ varint matches
 *
 * side is 0 (left) or 1 (right).  `matches` is the number of rows of the
 * other side (counting copies) the row matches; it is kept only for the
 * sides that need it (the outer side(s) of LEFT/RIGHT/FULL, the left of
 * SEMI/ANTI) and is 0 elsewhere.  All copies of a multiset row match the
 * same rows, so one count serves them all.
 *
 *     process(input s, batch):
 *       1. every image (before: -1, after: +1) goes to its join key J, in
 *          arrival order; an image whose key has a NULL matches nothing and
 *          is answered at once without state (the null-padded row of an
 *          outer side, the row itself for ANTI)
 *       2. keys are visited in store order (key group, J); per key, one seek
 *          of the call's one iterator reads the other side's rows under
 *          J ‖ other, and each distinct row of side s the batch touches is
 *          read once by its own key (a point read), never the whole side
 *       3. the key's images are applied in order against those rows,
 *          emitting pairs, null-padded rows and their retractions, and
 *          adjusting the match counts of both sides in memory
 *       4. the changed entries of both sides are written to the call's
 *          write batch, which is committed before process() returns
 *
 * Retraction of a row that is not in the state (never seen, or expired
 * under state_ttl) changes nothing and emits nothing: a count never goes
 * negative.  A unique-key view retracts the *stored* row, so a delete whose
 * before image lacks some columns still retracts exactly what was emitted;
 * an insert for a unique key already stored first retracts the stored row.
 *
 * NULL join keys: tm_join_left_key / tm_join_right_key encode a NULL as
 * such, so a row with a NULL key is hash-routed like any other, always to
 * the same subtask, which answers it without state.  Only a key the codec
 * cannot encode (an unchanged-TOAST value) makes the exchange broadcast a
 * record; one subtask reports it as a row error (the owner of the other
 * image's key group, else of key group 0) and the others drop it.
 *
 * Invariants:
 *   1. Every write of a process() call is committed before it returns, so
 *      on_barrier has nothing to flush (operator.h, 3).
 *   2. Within one call each state key is read once, before the call writes
 *      it; the iterator, created once per call after the previous commit,
 *      sees every earlier write.
 *   3. An entry exists only with copies > 0, and its `matches` (where kept)
 *      equals the number of other-side rows, with copies, that match it in
 *      the state, except after rows expired under state_ttl.
 *   4. Only key groups in [ctx->kg_first, ctx->kg_last] are touched; a
 *      usable-keyed row of another key group fails the call.
 *   5. Output records are inserts (after) and deletes (before) only, and a
 *      delete always follows the insert of the same row.  A call's output is
 *      in the order of the input images that produced it (a record's before
 *      image before its after image), as if the batch were processed one
 *      record at a time: downstream operators that keep one row per unique
 *      key (a join's unique-key view, an upsert sink) rely on a retraction
 *      arriving before the insert that replaces it, even when the two come
 *      from images under different join keys, which step 2 visits in store
 *      order (emit_out).
 *
 * Thread: its subtask's.
 */
#include "operators/join.h"
#include "operators/batchkeys.h"
#include "core/datum.h"
#include "core/error.h"
#include "core/hash.h"
#include "state/rowcodec.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

/* One row image of the batch under its join key. */
typedef struct image {
    struct image *next;
    const tm_record_t *rec;
    const tm_row_t *row;
    int sign;
    uint32_t order; /* 2 × the record's index in the batch, + 1 for an after image */
} image_t;

/* An output record of this call, and where its input image stood (invariant 5). */
typedef struct pend {
    uint32_t order; /* image_t.order of the image that produced it */
    uint32_t seq;   /* emission order within the call */
    tm_batch_t *b;
    uint32_t idx;
} pend_t;

/* One join key of the batch. */
typedef struct jkey {
    tm_batch_key_t bk; /* first: a tm_batch_keys_t entry */
    int nimg;
    image_t *first, *last;
} jkey_t;

/* A stored row of either side under the key being processed (scratch memory). */
typedef struct entry {
    const uint8_t *id; /* the state key after J ‖ side */
    size_t idlen;
    const uint8_t *rowbytes; /* tm_row_serialize of the row */
    size_t rowlen;
    tm_row_t *row;
    int64_t copies; /* 0: absent */
    int64_t matches;
    uint64_t hash;
    bool dirty;
} entry_t;

struct tm_operator {
    const tm_join_spec_t *spec;
    tm_operator_ctx_t ctx;
    tm_store_t *store;
    tm_store_cf_t *cf;
    tm_store_batch_t *wb;
    tm_store_iter_t *it; /* per call, created on first need */
    int maxp;
    bool global;  /* one bucket for every row (nkeys 0 or null_aware) */
    bool pairs;   /* INNER/LEFT/RIGHT/FULL: the output is left ++ right */
    bool track[2]; /* the side keeps its match counts */
    const tm_schema_t *sch[2];
    const int *keys[2];
    const int *uk[2];
    int nuk[2];
    int nl, nr;
    tm_row_t pair; /* left ++ right, for the residual and the output */
    tm_batch_t *scratch;
    tm_batch_t *out;
    /* Per call: the output so far, in full batches and records (emit_rows). */
    tm_batch_t **pbat;
    size_t npbat, pbat_cap;
    pend_t *pend;
    size_t npend, pend_cap;
    uint32_t cur_order, seq;
    tm_buf_t key, skey, val, ser;
    tm_eval_env_t env;
    /* Per call. */
    tm_batch_keys_t jkeys;
    /* Per key: the other side's rows, and the touched rows of the input side. */
    entry_t **other;
    size_t nother, other_cap;
    entry_t **own;
    uint32_t omask;
    /* Rows (with copies) of each side in the state: restore's count plus every committed call's. */
    int64_t live[2], dlive[2];
};

/* ---- life cycle ---- */

static void op_free(tm_operator_t *op)
{
    if (op == NULL)
        return;
    tm_store_iter_free(op->it);
    tm_store_batch_free(op->wb);
    tm_batch_unref(op->scratch);
    tm_batch_unref(op->out);
    for (size_t i = 0; i < op->npbat; i++)
        tm_batch_unref(op->pbat[i]);
    free(op->pbat);
    free(op->pend);
    tm_buf_release(&op->key);
    tm_buf_release(&op->skey);
    tm_buf_release(&op->val);
    tm_buf_release(&op->ser);
    free(op->pair.nulls);
    free(op->pair.vals);
    free(op->other);
    free(op);
}

/* ---- exchange keys ---- */

static int side_key(const tm_join_spec_t *s, const int *cols, const tm_schema_t *schema,
                    const tm_row_t *row, tm_buf_t *out)
{
    /* A NULL is encoded as such: the row is routed like any other and matches nothing. */
    return tm_row_cols_key_encode(schema, row, cols, s->nkeys, out);
}

int tm_join_left_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                     tm_buf_t *out)
{
    const tm_join_spec_t *s = spec;
    return side_key(s, s->left_keys, schema, row, out);
}

int tm_join_right_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                      tm_buf_t *out)
{
    const tm_join_spec_t *s = spec;
    return side_key(s, s->right_keys, schema, row, out);
}

/* ---- output ---- */

/* Keeps the current output batch for the end of the call. */
static int park_out(tm_operator_t *op)
{
    if (op->out == NULL)
        return 0;
    if (op->npbat == op->pbat_cap) {
        size_t cap = op->pbat_cap ? op->pbat_cap * 2 : 8;
        tm_batch_t **v = realloc(op->pbat, sizeof(*v) * cap);
        if (v == NULL)
            return TM_ENOMEM;
        op->pbat = v;
        op->pbat_cap = cap;
    }
    op->pbat[op->npbat++] = op->out;
    op->out = NULL;
    return 0;
}

static void drop_parked(tm_operator_t *op)
{
    for (size_t i = 0; i < op->npbat; i++)
        op->pbat[i] = tm_batch_unref(op->pbat[i]);
    op->npbat = 0;
    op->npend = 0;
    op->seq = 0;
}

static int pend_cmp(const void *a, const void *b)
{
    const pend_t *x = a, *y = b;
    if (x->order != y->order)
        return x->order < y->order ? -1 : 1;
    return (x->seq > y->seq) - (x->seq < y->seq);
}

/*
 * The call's output, in the order of the input images that produced it
 * (invariant 5): keys are visited in store order, so two records of the
 * batch under different keys may have produced their rows out of turn.
 * When they did not (the common case), the batches go as they are;
 * otherwise the records are copied into new batches in order.
 */
static int emit_out(tm_operator_t *op, tm_collector_t *out, char *errstr, size_t errstr_size)
{
    int rc = park_out(op);
    bool sorted = true;
    for (size_t i = 1; i < op->npend && sorted; i++)
        sorted = op->pend[i - 1].order <= op->pend[i].order;
    if (rc == 0 && !sorted) {
        qsort(op->pend, op->npend, sizeof(*op->pend), pend_cmp);
        tm_batch_t **old = op->pbat;
        size_t nold = op->npbat;
        op->pbat = NULL;
        op->npbat = op->pbat_cap = 0;
        for (size_t i = 0; i < op->npend && rc == 0; i++) {
            const tm_record_t *r = &op->pend[i].b->recs[op->pend[i].idx];
            if (op->out != NULL && tm_batch_full(op->out))
                rc = park_out(op);
            if (rc == 0 && op->out == NULL && (op->out = tm_batch_new()) == NULL)
                rc = TM_ENOMEM;
            tm_record_t *c = rc == 0 ? tm_batch_add(op->out, r->schema, r->op) : NULL;
            if (rc == 0 && c == NULL)
                rc = TM_ENOMEM;
            if (rc == 0) {
                c->proc_us = r->proc_us;
                c->src = r->src;
                const tm_row_t *row = r->after != NULL ? r->after : r->before;
                tm_row_t *copy = tm_row_copy(op->out, r->schema, row);
                if (copy == NULL)
                    rc = TM_ENOMEM;
                else if (r->after != NULL)
                    c->after = copy;
                else
                    c->before = copy;
            }
        }
        for (size_t i = 0; i < nold; i++)
            tm_batch_unref(old[i]);
        free(old);
        if (rc == 0)
            rc = park_out(op);
    }
    for (size_t i = 0; i < op->npbat && rc == 0; i++) {
        tm_batch_t *b = op->pbat[i];
        op->pbat[i] = NULL;
        rc = tm_collector_emit(out, b);
        if (rc != 0)
            rc = tm_seterr(errstr, errstr_size, rc, "join %s: the output was refused (%s)",
                           op->ctx.uid, tm_strerror(rc));
    }
    drop_parked(op);
    return rc;
}

/* Copies `row` of side `side` (NULL: all NULL) into the pair row. */
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

/*
 * Emits `n` copies of an output row: left ++ right (either NULL for the
 * padding) for pair joins, `left` for SEMI/ANTI; an insert for sign > 0, a
 * delete otherwise.
 */
static int emit_rows(tm_operator_t *op, const tm_record_t *src, const tm_row_t *left,
                     const tm_row_t *right, int sign, int64_t n)
{
    tm_schema_t *os = op->spec->out_schema;
    const tm_row_t *row = left;
    if (op->pairs) {
        set_side(op, 0, left);
        set_side(op, 1, right);
        row = &op->pair;
    }
    for (int64_t i = 0; i < n; i++) {
        if (op->out != NULL && tm_batch_full(op->out) && park_out(op) != 0)
            return TM_ENOMEM;
        if (op->out == NULL && (op->out = tm_batch_new()) == NULL)
            return TM_ENOMEM;
        tm_record_t *r = tm_batch_add(op->out, os, sign > 0 ? TM_OP_CREATE : TM_OP_DELETE);
        if (r == NULL)
            return TM_ENOMEM;
        if (op->npend == op->pend_cap) {
            size_t cap = op->pend_cap ? op->pend_cap * 2 : 256;
            pend_t *v = realloc(op->pend, sizeof(*v) * cap);
            if (v == NULL)
                return TM_ENOMEM;
            op->pend = v;
            op->pend_cap = cap;
        }
        op->pend[op->npend++] = (pend_t){op->cur_order, op->seq++, op->out, op->out->count - 1};
        r->proc_us = src->proc_us;
        r->src = src->src;
        tm_row_t *copy = tm_row_copy(op->out, os, row);
        if (copy == NULL)
            return TM_ENOMEM;
        if (sign > 0)
            r->after = copy;
        else
            r->before = copy;
    }
    return 0;
}

/* ---- matching ---- */

static int row_error(tm_operator_t *op, const tm_record_t *rec, const char *reason, char *errstr,
                     size_t errstr_size)
{
    return tm_operator_row_error(&op->ctx, rec, reason, errstr, errstr_size);
}

/*
 * Whether `x` of side s and `o` of the other side match (same join key
 * already: they share J).  A residual that fails on a row is a row error;
 * under on_error = 'skip' the pair does not match, which is stable because
 * evaluation is deterministic.
 */
static int match(tm_operator_t *op, int s, const tm_row_t *x, const tm_row_t *o,
                 const tm_record_t *rec, bool *yes, char *errstr, size_t errstr_size)
{
    const tm_join_spec_t *spec = op->spec;
    const tm_row_t *l = s == 0 ? x : o, *r = s == 0 ? o : x;
    *yes = false;
    if (spec->null_aware) {
        /* NOT IN: a pair blocks unless some key pair is unequal and neither is NULL. */
        for (int i = 0; i < spec->nkeys; i++) {
            int lc = spec->left_keys[i], rc = spec->right_keys[i];
            if (tm_row_is_null(l, lc) || tm_row_is_null(r, rc))
                continue;
            if (!tm_datum_equal(op->sch[0]->cols[lc].type, &l->vals[lc], &r->vals[rc]))
                return 0;
        }
    }
    if (spec->residual == NULL) {
        *yes = true;
        return 0;
    }
    set_side(op, 0, l);
    set_side(op, 1, r);
    char why[512];
    int rc = tm_expr_eval_pred(spec->residual, &op->pair, &op->env, yes, why, sizeof(why));
    if (rc == TM_EINVAL) {
        *yes = false;
        return row_error(op, rec, why, errstr, errstr_size);
    }
    return rc == TM_ENOMEM ? tm_seterr(errstr, errstr_size, rc, "join %s: %s", op->ctx.uid, why)
                           : rc;
}

/* ---- state keys and entries ---- */

/* J ‖ side ‖ id into op->skey. */
static int state_key(tm_operator_t *op, const jkey_t *k, int side, const uint8_t *id, size_t idlen)
{
    tm_buf_clear(&op->skey);
    int rc = tm_buf_append(&op->skey, k->bk.key, k->bk.klen);
    rc = rc ? rc : tm_buf_putc(&op->skey, (char)side);
    return rc ? rc : tm_buf_append(&op->skey, id, idlen);
}

static int corrupt(tm_operator_t *op, const jkey_t *k, char *errstr, size_t errstr_size)
{
    return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                     "join %s: a stored row in key group %d is unreadable (written by an "
                     "incompatible version, or the input schema changed)",
                     op->ctx.uid, k->bk.kg);
}

/* Decodes a stored value of `side` into e (whose id is set); copies into scratch. */
static int decode_entry(tm_operator_t *op, const jkey_t *k, int side, const uint8_t *val,
                        size_t vlen, entry_t *e, char *errstr, size_t errstr_size)
{
    const uint8_t *p = val, *end = val + vlen;
    uint64_t a, b;
    if (op->nuk[side] > 0) {
        if (tm_buf_get_varint(&p, end, &a) != 0 || a > INT64_MAX)
            return corrupt(op, k, errstr, errstr_size);
        e->copies = 1;
        e->matches = (int64_t)a;
        e->rowlen = (size_t)(end - p);
        e->rowbytes = (const uint8_t *)tm_arena_memdup(&op->scratch->arena, p, e->rowlen);
        if (e->rowbytes == NULL)
            return TM_ENOMEM;
    } else {
        if (tm_buf_get_varint(&p, end, &a) != 0 || a == 0 || a > INT64_MAX ||
            tm_buf_get_varint(&p, end, &b) != 0 || b > INT64_MAX || p != end)
            return corrupt(op, k, errstr, errstr_size);
        e->copies = (int64_t)a;
        e->matches = (int64_t)b;
        e->rowbytes = e->id;
        e->rowlen = e->idlen;
    }
    int rc = tm_row_deserialize(op->sch[side], e->rowbytes, e->rowlen, op->scratch, &e->row);
    if (rc == TM_ENOMEM)
        return rc;
    return rc != 0 ? corrupt(op, k, errstr, errstr_size) : 0;
}

static int write_entry(tm_operator_t *op, const jkey_t *k, int side, const entry_t *e)
{
    int rc = state_key(op, k, side, e->id, e->idlen);
    if (rc != 0)
        return rc;
    if (e->copies <= 0)
        return tm_store_batch_delete(op->wb, op->cf, k->bk.kg, op->skey.data, op->skey.len);
    tm_buf_clear(&op->val);
    if (op->nuk[side] > 0) {
        rc = tm_buf_put_varint(&op->val, (uint64_t)e->matches);
        rc = rc ? rc : tm_buf_append(&op->val, e->rowbytes, e->rowlen);
    } else {
        rc = tm_buf_put_varint(&op->val, (uint64_t)e->copies);
        rc = rc ? rc : tm_buf_put_varint(&op->val, (uint64_t)e->matches);
    }
    return rc ? rc
              : tm_store_batch_put(op->wb, op->cf, k->bk.kg, op->skey.data, op->skey.len,
                                   op->val.data, op->val.len);
}

/* Reads the other side's rows under k with the call's iterator (one seek). */
static int load_other(tm_operator_t *op, const jkey_t *k, int other, char *errstr,
                      size_t errstr_size)
{
    op->nother = 0;
    int rc = state_key(op, k, other, NULL, 0);
    if (rc != 0)
        return rc;
    size_t plen = op->skey.len;
    if (op->it == NULL)
        rc = tm_store_iter_new(op->store, op->cf, k->bk.kg, k->bk.kg, op->skey.data, plen, &op->it);
    else
        rc = tm_store_iter_seek(op->it, k->bk.kg, op->skey.data, plen, false);
    if (rc != 0)
        return tm_seterr(errstr, errstr_size, rc, "join %s: cannot read the state (%s)",
                         op->ctx.uid, tm_strerror(rc));
    atomic_fetch_add(&op->ctx.metrics->state_reads, 1);
    tm_store_entry_t se;
    while ((rc = tm_store_iter_next(op->it, &se, errstr, errstr_size)) == 1) {
        if (op->nother == op->other_cap) {
            size_t cap = op->other_cap ? 2 * op->other_cap : 64;
            entry_t **n = realloc(op->other, cap * sizeof(*n));
            if (n == NULL)
                return TM_ENOMEM;
            op->other = n;
            op->other_cap = cap;
        }
        entry_t *e = tm_arena_zalloc(&op->scratch->arena, sizeof(*e));
        if (e == NULL)
            return TM_ENOMEM;
        e->idlen = se.klen - plen;
        e->id = (const uint8_t *)tm_arena_memdup(&op->scratch->arena, se.key + plen, e->idlen);
        if (e->id == NULL)
            return TM_ENOMEM;
        if ((rc = decode_entry(op, k, other, se.val, se.vlen, e, errstr, errstr_size)) != 0)
            return rc;
        op->other[op->nother++] = e;
    }
    return rc;
}

/* The entry of side s with id op->key (read from the store on first use in this key). */
static int own_entry(tm_operator_t *op, const jkey_t *k, int s, entry_t **out, char *errstr,
                     size_t errstr_size)
{
    const uint8_t *id = (const uint8_t *)op->key.data;
    size_t idlen = op->key.len;
    uint64_t h = tm_xxh64(id, idlen, 0);
    uint32_t i = (uint32_t)h & op->omask;
    for (;; i = (i + 1) & op->omask) {
        entry_t *e = op->own[i];
        if (e == NULL)
            break;
        if (e->hash == h && e->idlen == idlen && memcmp(e->id, id, idlen) == 0) {
            *out = e;
            return 0;
        }
    }
    entry_t *e = tm_arena_zalloc(&op->scratch->arena, sizeof(*e));
    if (e == NULL || (e->id = (const uint8_t *)tm_arena_memdup(&op->scratch->arena,
                                                              idlen ? (const void *)id : "",
                                                              idlen)) == NULL)
        return TM_ENOMEM;
    e->idlen = idlen;
    e->hash = h;
    op->own[i] = e;
    int rc = state_key(op, k, s, e->id, e->idlen);
    if (rc != 0)
        return rc;
    atomic_fetch_add(&op->ctx.metrics->state_reads, 1);
    rc = tm_store_get(op->store, op->cf, k->bk.kg, op->skey.data, op->skey.len, &op->val, errstr,
                      errstr_size);
    if (rc == 0) {
        /* op->val is reused by writes: decode from a copy. */
        const uint8_t *v = (const uint8_t *)tm_arena_memdup(&op->scratch->arena,
                                                            op->val.len ? op->val.data : "",
                                                            op->val.len);
        if (v == NULL)
            return TM_ENOMEM;
        rc = decode_entry(op, k, s, v, op->val.len, e, errstr, errstr_size);
    } else if (rc == TM_ENOTFOUND) {
        rc = 0;
    }
    *out = e;
    return rc;
}

/* ---- applying one image ---- */

/*
 * Applies one image of side s (sign +1 insert, -1 retract) against the
 * other side's rows of its key; `e` is the row's own entry.
 */
static int apply(tm_operator_t *op, int s, entry_t *e, const tm_row_t *x, int sign,
                 const tm_record_t *rec, char *errstr, size_t errstr_size)
{
    const tm_join_spec_t *spec = op->spec;
    int other = 1 - s;
    int rc = 0;
    if (sign < 0) {
        if (e->copies <= 0)
            return 0; /* not in the state: nothing was emitted for it */
        x = e->row;   /* the stored image is what downstream holds */
    } else if (op->nuk[s] > 0 && e->copies > 0) {
        /* An insert for a stored unique key replaces the stored row. */
        if ((rc = apply(op, s, e, NULL, -1, rec, errstr, errstr_size)) != 0)
            return rc;
    }
    bool semi_right = !op->pairs && s == 1;
    int64_t m = 0;
    for (size_t i = 0; i < op->nother; i++) {
        entry_t *o = op->other[i];
        bool yes;
        if (o->copies <= 0)
            continue;
        if ((rc = match(op, s, x, o->row, rec, &yes, errstr, errstr_size)) != 0)
            return rc;
        if (!yes)
            continue;
        m += o->copies;
        rc = 0;
        const tm_row_t *l = s == 0 ? x : o->row, *r = s == 0 ? o->row : x;
        if (op->pairs) {
            if (sign > 0) {
                if (op->track[other] && o->matches == 0)
                    rc = emit_rows(op, rec, s == 0 ? NULL : l, s == 0 ? r : NULL, -1,
                                   o->copies);
                rc = rc ? rc : emit_rows(op, rec, l, r, 1, o->copies);
            } else {
                rc = emit_rows(op, rec, l, r, -1, o->copies);
                if (rc == 0 && op->track[other] && o->matches == 1)
                    rc = emit_rows(op, rec, s == 0 ? NULL : l, s == 0 ? r : NULL, 1,
                                   o->copies);
            }
        } else if (semi_right) {
            /* A left row gains its first match or loses its last one. */
            bool flip = sign > 0 ? o->matches == 0 : o->matches == 1;
            if (flip) {
                int osign = spec->type == TM_JOIN_SEMI ? sign : -sign;
                rc = emit_rows(op, rec, o->row, NULL, osign, o->copies);
            }
        }
        if (rc != 0)
            return rc;
        if (op->track[other]) {
            o->matches += sign;
            if (o->matches < 0)
                o->matches = 0; /* only after expired rows (invariant 3) */
            o->dirty = true;
        }
    }
    /* The row itself: its null-padded form, or its SEMI/ANTI output. */
    int64_t had = sign > 0 ? m : (op->track[s] ? e->matches : m);
    rc = 0;
    if (op->pairs && op->track[s] && had == 0)
        rc = emit_rows(op, rec, s == 0 ? x : NULL, s == 0 ? NULL : x, sign, 1);
    else if (!op->pairs && s == 0 && (spec->type == TM_JOIN_SEMI) == (had > 0))
        rc = emit_rows(op, rec, x, NULL, sign, 1);
    if (rc != 0)
        return rc;
    op->dlive[s] += sign; /* the entry gains or loses one copy below */
    if (sign < 0) {
        e->copies--;
    } else {
        if (op->nuk[s] > 0 || e->copies == 0) {
            /* A new entry (or a replaced unique-key row): keep its bytes in scratch. */
            tm_buf_clear(&op->ser);
            if ((rc = tm_row_serialize(op->sch[s], x, &op->ser)) != 0)
                return rc;
            e->rowlen = op->ser.len;
            e->rowbytes = (const uint8_t *)tm_arena_memdup(&op->scratch->arena,
                                                           op->ser.data, op->ser.len);
            if (e->rowbytes == NULL ||
                (e->row = tm_row_copy(op->scratch, op->sch[s], x)) == NULL)
                return TM_ENOMEM;
        }
        e->copies++;
        e->matches = op->track[s] ? m : 0;
    }
    e->dirty = true;
    return 0;
}

/* ---- the batch ---- */

/* Adds `delta` to the rows of each side and shows the totals in the metrics. */
static void publish_live(tm_operator_t *op, const int64_t delta[2])
{
    for (int side = 0; side < 2; side++) {
        op->live[side] += delta[side];
        if (op->live[side] < 0)
            op->live[side] = 0; /* only after expired rows were retracted (invariant 3) */
        atomic_store_explicit(&op->ctx.metrics->state_rows[side], op->live[side],
                              memory_order_relaxed);
    }
    atomic_store_explicit(&op->ctx.metrics->state_inputs, 2, memory_order_relaxed);
}

/*
 * The image of side s with a NULL join key: it matches nothing, so only an
 * outer side's padded row or an ANTI join's row comes out, with no state.
 */
static int null_key_image(tm_operator_t *op, int s, const tm_row_t *x, int sign,
                          const tm_record_t *rec)
{
    if (op->pairs && op->track[s])
        return emit_rows(op, rec, s == 0 ? x : NULL, s == 0 ? NULL : x, sign, 1);
    if (op->spec->type == TM_JOIN_ANTI && s == 0)
        return emit_rows(op, rec, x, NULL, sign, 1);
    return 0;
}

/* Image key status. */
enum { KEY_OK, KEY_NULL, KEY_BAD };

static int image_key(tm_operator_t *op, int s, const tm_row_t *row, tm_buf_t *buf)
{
    tm_buf_clear(buf);
    if (op->global)
        return KEY_OK;
    int rc = tm_row_cols_key_encode(op->sch[s], row, op->keys[s], op->spec->nkeys, buf);
    if (rc != 0)
        return rc == TM_EINVAL ? KEY_BAD : rc;
    for (int i = 0; i < op->spec->nkeys; i++)
        if (tm_row_is_null(row, op->keys[s][i]))
            return KEY_NULL;
    return KEY_OK;
}

static bool owns(const tm_operator_t *op, int kg)
{
    return kg >= op->ctx.kg_first && kg <= op->ctx.kg_last;
}

static int add_image(tm_operator_t *op, const tm_record_t *rec, const tm_row_t *row, int sign,
                     uint32_t order, const tm_buf_t *key)
{
    void *entry;
    bool added;
    int rc = tm_batch_keys_find(&op->jkeys, key->data, key->len, &entry, &added);
    if (rc != 0)
        return rc;
    jkey_t *k = entry;
    image_t *im = tm_arena_alloc(&op->scratch->arena, sizeof(*im));
    if (im == NULL)
        return TM_ENOMEM;
    im->next = NULL;
    im->rec = rec;
    im->row = row;
    im->sign = sign;
    im->order = order;
    if (k->last != NULL)
        k->last->next = im;
    else
        k->first = im;
    k->last = im;
    k->nimg++;
    return 0;
}

/* Step 1 for one record. */
static int add_record(tm_operator_t *op, int s, uint32_t index, const tm_record_t *rec,
                      char *errstr, size_t errstr_size)
{
    const tm_row_t *img[2];
    int irc = tm_operator_images(&op->ctx, rec, img, errstr, errstr_size);
    if (irc != 0)
        return irc;
    int st[2] = {KEY_BAD, KEY_BAD}, kg[2] = {-1, -1};
    tm_buf_t *kb[2] = {&op->key, &op->skey};
    int home = -1;
    bool bad = false;
    for (int i = 0; i < 2; i++) {
        if (img[i] == NULL)
            continue;
        st[i] = image_key(op, s, img[i], kb[i]);
        if (st[i] < 0)
            return st[i];
        if (st[i] != KEY_BAD) {
            kg[i] = tm_keygroup_of(kb[i]->len ? kb[i]->data : "", kb[i]->len, op->maxp);
            if (home < 0)
                home = kg[i];
        }
        bad |= st[i] == KEY_BAD;
    }
    if (bad) {
        /*
         * The exchange broadcasts a record with an unusable key (or sends an
         * update to its other image's subtask): one subtask reports it.
         */
        if (home >= 0 ? !owns(op, home) : op->ctx.kg_first != 0)
            return 0;
        return row_error(op, rec,
                         "a join key column is an unchanged TOASTed value the source did not "
                         "send (set REPLICA IDENTITY FULL on the table)",
                         errstr, errstr_size);
    }
    for (int i = 0; i < 2; i++)
        if (img[i] != NULL && !owns(op, kg[i]))
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "join %s: subtask %d received a row of key group %d, but owns key "
                             "groups %d..%d; input %d is not hash-partitioned by its join key "
                             "(tm_join_%s_key)",
                             op->ctx.uid, op->ctx.subtask, kg[i], op->ctx.kg_first,
                             op->ctx.kg_last, s, s == 0 ? "left" : "right");
    for (int i = 0; i < 2; i++) {
        if (img[i] == NULL)
            continue;
        op->cur_order = 2 * index + (uint32_t)i;
        int rc = st[i] == KEY_OK
                     ? add_image(op, rec, img[i], i == 0 ? -1 : 1, op->cur_order, kb[i])
                     : null_key_image(op, s, img[i], i == 0 ? -1 : 1, rec);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* Orders keys as their state keys sort in the store. */
static int key_cmp(const void *a, const void *b)
{
    return tm_batch_key_cmp(a, b);
}

/* Steps 2-4 for one key. */
static int process_key(tm_operator_t *op, int s, jkey_t *k, char *errstr,
                       size_t errstr_size)
{
    int rc = load_other(op, k, 1 - s, errstr, errstr_size);
    if (rc != 0)
        return rc;
    uint32_t cap = 16;
    while (cap < 2 * (uint32_t)k->nimg + 2)
        cap <<= 1;
    op->omask = cap - 1;
    op->own = tm_arena_zalloc(&op->scratch->arena, sizeof(entry_t *) * cap);
    if (op->own == NULL)
        return TM_ENOMEM;
    for (image_t *im = k->first; im != NULL; im = im->next) {
        tm_buf_clear(&op->key);
        rc = op->nuk[s] > 0 ? tm_row_cols_key_encode(op->sch[s], im->row, op->uk[s], op->nuk[s],
                                                     &op->key)
                            : tm_row_serialize(op->sch[s], im->row, &op->key);
        if (rc == TM_EINVAL && op->nuk[s] > 0) {
            rc = row_error(op, im->rec,
                           "a unique-key column is an unchanged TOASTed value the source did "
                           "not send (set REPLICA IDENTITY FULL on the table)",
                           errstr, errstr_size);
            if (rc != 0)
                return rc;
            continue;
        }
        entry_t *e;
        op->cur_order = im->order;
        rc = rc ? rc : own_entry(op, k, s, &e, errstr, errstr_size);
        rc = rc ? rc : apply(op, s, e, im->row, im->sign, im->rec, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    for (uint32_t i = 0; i <= op->omask; i++)
        if (op->own[i] != NULL && op->own[i]->dirty &&
            (rc = write_entry(op, k, s, op->own[i])) != 0)
            return rc;
    for (size_t i = 0; i < op->nother; i++)
        if (op->other[i]->dirty && (rc = write_entry(op, k, 1 - s, op->other[i])) != 0)
            return rc;
    return 0;
}

static int process(tm_operator_t *op, int s, const tm_batch_t *batch, tm_collector_t *out,
                   char *errstr, size_t errstr_size)
{
    if (s != 0 && s != 1)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "join %s: input %d does not exist (a join has inputs 0 and 1)",
                         op->ctx.uid, s);
    tm_arena_reset(&op->scratch->arena);
    op->env.arena = &op->scratch->arena;
    op->env.now_us = tm_store_now(op->store);
    op->dlive[0] = op->dlive[1] = 0;
    int rc = tm_batch_keys_init(&op->jkeys, &op->scratch->arena, sizeof(jkey_t),
                                (int)(2 * batch->count + 1), op->maxp);
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < batch->count && rc == 0; i++)
        rc = add_record(op, s, i, &batch->recs[i], errstr, errstr_size);
    if (rc != 0) {
        drop_parked(op);
        return rc;
    }
    /* Sorted in place: the map is not used again in this call. */
    qsort(op->jkeys.entries, (size_t)op->jkeys.n, sizeof(jkey_t), key_cmp);
    for (int i = 0; i < op->jkeys.n && rc == 0; i++)
        rc = process_key(op, s, tm_batch_keys_at(&op->jkeys, i), errstr, errstr_size);
    op->it = tm_store_iter_free(op->it);
    rc = rc ? rc : tm_store_batch_commit(op->wb, errstr, errstr_size);
    if (rc != 0) {
        drop_parked(op);
        return rc;
    }
    publish_live(op, op->dlive);
    return emit_out(op, out, errstr, errstr_size);
}

/* ---- hooks ---- */

/*
 * Counts the rows of each side in the key groups this subtask owns, for the
 * state_rows metric: one pass over the state at start (nothing at a fresh
 * start), reading only the side byte after J and, in a multiset view, the
 * copies.  Rows that expire under state_ttl later stay counted until the
 * next start.
 */
static int op_restore(tm_operator_t *op, char *errstr, size_t errstr_size)
{
    tm_store_iter_t *it;
    int rc = tm_store_iter_new(op->store, op->cf, op->ctx.kg_first, op->ctx.kg_last, NULL, 0,
                               &it);
    if (rc != 0)
        return tm_seterr(errstr, errstr_size, rc, "join %s: cannot read the state (%s)",
                         op->ctx.uid, tm_strerror(rc));
    int64_t n[2] = {0, 0};
    tm_store_entry_t se;
    while ((rc = tm_store_iter_next(it, &se, errstr, errstr_size)) == 1) {
        size_t jlen = 0;
        const uint8_t *p, *end = se.val + se.vlen;
        uint64_t copies = 1;
        if (!op->global && tm_row_cols_key_skip(op->sch[0], op->keys[0], op->spec->nkeys,
                                                se.key, se.klen, &jlen) != 0)
            jlen = se.klen; /* fails below */
        int side = jlen < se.klen ? se.key[jlen] : -1;
        p = se.val;
        if (side == 0 || side == 1) {
            if (op->nuk[side] == 0 && (tm_buf_get_varint(&p, end, &copies) != 0 ||
                                       copies == 0 || copies > INT64_MAX))
                side = -1;
        }
        if (side != 0 && side != 1) {
            rc = tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                           "join %s: a stored row is unreadable (written by an incompatible "
                           "version, or the input schema changed)",
                           op->ctx.uid);
            break;
        }
        n[side] += (int64_t)copies;
    }
    tm_store_iter_free(it);
    if (rc < 0)
        return rc;
    op->live[0] = op->live[1] = 0;
    publish_live(op, n);
    return 0;
}

static int op_process(tm_operator_t *op, int input, const tm_batch_t *batch, tm_collector_t *out,
                      char *errstr, size_t errstr_size)
{
    int rc = process(op, input, batch, out, errstr, errstr_size);
    /* The iterator pins memtables and blocks: it never outlives the call, even on failure. */
    op->it = tm_store_iter_free(op->it);
    return rc;
}

static int op_on_barrier(tm_operator_t *op, uint64_t id, tm_collector_t *out, char *errstr,
                         size_t errstr_size)
{
    (void)id;
    int rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    return rc != 0 ? rc : emit_out(op, out, errstr, errstr_size);
}

static int op_on_end(tm_operator_t *op, tm_collector_t *out, char *errstr, size_t errstr_size)
{
    return op_on_barrier(op, 0, out, errstr, errstr_size);
}

static const tm_operator_ops_t join_ops = {
    .name = "join",
    .ninputs = 2,
    .process = op_process,
    .on_barrier = op_on_barrier,
    .on_end = op_on_end,
    .restore = op_restore,
    .free = op_free,
};

static int check_spec(const tm_join_spec_t *s, const char *uid, char *errstr, size_t errstr_size)
{
    if (s == NULL || s->type < TM_JOIN_INNER || s->type > TM_JOIN_ANTI || s->left_schema == NULL ||
        s->right_schema == NULL || s->out_schema == NULL || s->nkeys < 0 ||
        (s->nkeys > 0 && (s->left_keys == NULL || s->right_keys == NULL)))
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "join %s: the plan gave an incomplete join spec", uid);
    if (s->null_aware && s->type != TM_JOIN_ANTI)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "join %s: only an ANTI join can be null-aware (NOT IN)", uid);
    int nl = s->left_schema->ncols, nr = s->right_schema->ncols;
    bool pairs = s->type != TM_JOIN_SEMI && s->type != TM_JOIN_ANTI;
    if (s->out_schema->ncols != (pairs ? nl + nr : nl))
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "join %s: the output schema has %d columns, but a %s join of %d and %d "
                         "columns gives %d",
                         uid, s->out_schema->ncols, pairs ? "pair" : "semi/anti", nl, nr,
                         pairs ? nl + nr : nl);
    for (int i = 0; i < s->nkeys; i++) {
        int l = s->left_keys[i], r = s->right_keys[i];
        if (l < 0 || l >= nl || r < 0 || r >= nr ||
            s->left_schema->cols[l].type != s->right_schema->cols[r].type)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "join %s: join key %d pairs left column %d with right column %d, "
                             "which are missing or of different types (the planner casts first)",
                             uid, i, l, r);
    }
    for (int side = 0; side < 2; side++) {
        const int *uk = side == 0 ? s->left_uk : s->right_uk;
        int n = side == 0 ? s->nleft_uk : s->nright_uk;
        int nc = side == 0 ? nl : nr;
        if (n < 0 || (n > 0 && uk == NULL))
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "join %s: the %s unique key is inconsistent", uid,
                             side == 0 ? "left" : "right");
        for (int i = 0; i < n; i++)
            if (uk[i] < 0 || uk[i] >= nc)
                return tm_seterr(errstr, errstr_size, TM_EINVAL,
                                 "join %s: the %s unique key names column %d, which the input "
                                 "does not have",
                                 uid, side == 0 ? "left" : "right", uk[i]);
    }
    return 0;
}

int tm_join_new(const void *spec_arg, const tm_operator_ctx_t *ctx, const tm_operator_ops_t **ops,
                tm_operator_t **out, char *errstr, size_t errstr_size)
{
    const tm_join_spec_t *spec = spec_arg;
    const char *uid = ctx->uid ? ctx->uid : "";
    *out = NULL;
    if (ctx->store == NULL)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "join %s: the operator keeps state and needs a store", uid);
    int rc = check_spec(spec, uid, errstr, errstr_size);
    if (rc != 0)
        return rc;
    int maxp = tm_store_max_parallelism(ctx->store);
    if (ctx->kg_first < 0 || ctx->kg_last >= maxp || ctx->kg_first > ctx->kg_last)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "join %s: key groups %d..%d are outside the store's 0..%d", uid,
                         ctx->kg_first, ctx->kg_last, maxp - 1);
    tm_operator_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return TM_ENOMEM;
    op->spec = spec;
    op->ctx = *ctx;
    op->store = ctx->store;
    op->maxp = maxp;
    op->global = spec->nkeys == 0 || spec->null_aware;
    op->pairs = spec->type != TM_JOIN_SEMI && spec->type != TM_JOIN_ANTI;
    op->track[0] = spec->type == TM_JOIN_LEFT || spec->type == TM_JOIN_FULL || !op->pairs;
    op->track[1] = spec->type == TM_JOIN_RIGHT || spec->type == TM_JOIN_FULL;
    op->sch[0] = spec->left_schema;
    op->sch[1] = spec->right_schema;
    op->keys[0] = spec->left_keys;
    op->keys[1] = spec->right_keys;
    op->uk[0] = spec->left_uk;
    op->uk[1] = spec->right_uk;
    op->nuk[0] = spec->nleft_uk;
    op->nuk[1] = spec->nright_uk;
    op->nl = spec->left_schema->ncols;
    op->nr = spec->right_schema->ncols;
    int n = op->nl + op->nr;
    op->pair.nulls = calloc(((size_t)n + 63) / 64 + 1, sizeof(uint64_t));
    op->pair.vals = calloc((size_t)n + 1, sizeof(tm_datum_t));
    tm_buf_init(&op->key);
    tm_buf_init(&op->skey);
    tm_buf_init(&op->val);
    tm_buf_init(&op->ser);
    if (op->pair.nulls == NULL || op->pair.vals == NULL || (op->scratch = tm_batch_new()) == NULL)
        rc = TM_ENOMEM;
    rc = rc ? rc : tm_store_cf(ctx->store, ctx->uid, &op->cf, errstr, errstr_size);
    rc = rc ? rc : tm_store_batch_new_unindexed(ctx->store, &op->wb);
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    *ops = &join_ops;
    *out = op;
    return 0;
}
