/*
 * group_agg.c — GROUP BY aggregation over a retract stream, mini-batched
 * (see group_agg.h).
 *
 * State layout in column family `uid` (G = tm_row_cols_key_encode of the
 * group columns, which is prefix-free for a given group schema; the key
 * group of every key below is tm_keygroup_of(G)):
 *
 *     G ‖ 00 00                  group state: u8 version (3), zigzag rows,
 *                                varint length ‖ the last emitted result row
 *                                (tm_row_serialize of out_schema; length 0 =
 *                                none emitted), then each aggregate's
 *                                accumulator (tm_agg_acc_encode), then for
 *                                each multiset m in order either
 *                                  varint 0 (inline) ‖ varint n ‖ n entries,
 *                                  ascending: varint length ‖ V ‖ varint
 *                                  count ‖ zigzag scale
 *                                or
 *                                  varint 1 (spilled) ‖ the cached extremes:
 *                                  its minimum if some min() reads it, then
 *                                  its maximum if some max() reads it, each
 *                                  varint (length + 1, 0 = empty multiset)
 *                                  ‖ V ‖ zigzag scale
 *     G ‖ u16 BE (m + 1) ‖ V     entry of a spilled multiset m: V =
 *                                tm_agg_value_encode of a value, value =
 *                                varint count ‖ zigzag scale (the numeric
 *                                scale the value was first seen with)
 *
 * A multiset is the values of one argument column, shared by every
 * value-keeping aggregate (min, max, string_agg, DISTINCT) of that column:
 * min(x), max(x) and count(DISTINCT x) keep one multiset, not three.  The
 * multisets are numbered in the order their column first appears among the
 * aggregates.  Versions 1 (one multiset per aggregate, no cached extremes)
 * and 2 (every multiset in entries) never shipped and are not read.
 *
 * A multiset lives inline in the group state while it has at most
 * INLINE_MAX values of at most INLINE_BYTES in all (the common case: a few
 * rows per group), so that a group costs one state read and write, both
 * usually answered by the write-behind cache (state/kvcache.h).  A multiset
 * that outgrows that spills: its values move to entries of their own and
 * stay there until the group is deleted.
 *
 * The entries of a spilled multiset of a group are one ordered key range:
 * min is its first key, max its last, string_agg reads it in order.  min and
 * max are cached in the group state, so that only a retraction of the
 * extreme itself (its count dropping to zero) needs a seek.
 *
 *     process(batch):
 *       1. group the batch's row images by G (hash map in the scratch arena),
 *          each with its sign (+1 insert/after, -1 delete/before), and net
 *          the multiset changes per (group, multiset, value)
 *       2. per group: read the group state once (through the cache), apply
 *          every image to the accumulators, then merge the net value changes
 *          into the inline multisets, or read and write each changed entry
 *          of a spilled one once, feeding DISTINCT accumulators the 0 → 1
 *          and 1 → 0 transitions and updating the extremes
 *       3. per group: where an extreme was retracted or a string_agg's values
 *          changed, commit the batch (once per call) and seek one iterator
 *          (one per call); compute the result, compare with the stored one,
 *          emit at most one change, write the group state
 *       4. commit the entries and emit the output batch
 *
 * Group states are written to the cache, which on_barrier and on_end flush.
 *
 * Invariants:
 *   1. Every entry write of a process() call is committed before it
 *      returns, and every group state write is in the cache; on_barrier
 *      flushes the cache, so after it the store holds everything
 *      (operator.h, 3).
 *   2. A group's stored result is exactly the last row emitted for it, so
 *      the next change's before image is what downstream holds.
 *   3. An entry exists only with a count > 0; a DISTINCT accumulator holds
 *      exactly the values with an entry; a cached extreme is the first
 *      (min) or last (max) entry of its multiset, and absent exactly when
 *      the multiset is empty.
 *   4. Only key groups in [ctx->kg_first, ctx->kg_last] are touched; a row
 *      of another key group fails the call (a partitioning bug upstream).
 *   5. Within one call every entry key is read at most once, and before the
 *      call writes it, so reads go straight to the database instead of
 *      through the write batch's index (earlier calls' writes are
 *      committed, 1).
 *   6. An inline multiset's values are ascending and unique, every count
 *      > 0, and there are at most INLINE_MAX of them; a spilled multiset
 *      has no inline values.
 *
 * Thread: its subtask's.
 */
#include "operators/group_agg.h"
#include "operators/batchkeys.h"
#include "core/error.h"
#include "core/hash.h"
#include "state/kvcache.h"
#include "state/rowcodec.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#define STATE_VERSION 3
/* Bounds of an inline multiset (see the layout); past either it spills. */
#define INLINE_MAX 64
#define INLINE_BYTES 2048

/* One row image of the batch applied to a group. */
typedef struct contrib {
    struct contrib *next;
    const tm_record_t *rec;
    const tm_row_t *row;
    int sign;
} contrib_t;

/* The net change of one value of one multiset of one group. */
typedef struct vent {
    struct vent *next; /* in its group */
    int group, ms;
    uint64_t hash;
    const uint8_t *key; /* the value's encoding */
    size_t klen;
    int64_t delta;
    const tm_datum_t *datum; /* a representative value (the input batch's) */
    const tm_record_t *rec;
} vent_t;

/* The values of one argument column, shared by its value-keeping aggregates. */
typedef struct mset {
    int col;
    tm_type_t type;
    bool min, max, join; /* some min() / max() / string_agg() reads it */
    int first_agg;       /* the first aggregate reading it (for messages) */
} mset_t;

/* A cached minimum or maximum of a group's multiset (invariant 3). */
typedef struct extreme {
    const uint8_t *val; /* tm_agg_value_encode bytes (scratch) */
    size_t len;
    int32_t scale;
    bool has;  /* the multiset is not empty */
    bool lost; /* the cached value was retracted: the store must be asked */
} extreme_t;

/* One value of an inline multiset. */
typedef struct ient {
    const uint8_t *key; /* tm_agg_value_encode bytes (scratch) */
    size_t klen;
    int64_t cnt;
    int32_t scale;
} ient_t;

/* A group's multiset as read from its state (invariant 6). */
typedef struct ilist {
    bool spilled;
    int n;
    ient_t *e;
} ilist_t;

typedef struct group {
    tm_batch_key_t bk; /* first, a tm_batch_keys_t entry: G */
    int64_t drows;
    contrib_t *first, *last;
    vent_t *vals;
    bool *changed;   /* per multiset: its entries changed in this batch */
    extreme_t *ext;  /* per multiset: [2m] its minimum, [2m + 1] its maximum */
    ilist_t *il;     /* per multiset: its inline values, or spilled */
} group_t;

struct tm_operator {
    const tm_group_agg_spec_t *spec;
    tm_operator_ctx_t ctx;
    tm_store_t *store;
    tm_store_cf_t *cf;
    tm_store_batch_t *wb; /* multiset entries, committed by every call */
    tm_kvcache_t *cache;  /* group states, flushed at barriers */
    int maxp;
    mset_t *ms;          /* the multisets */
    int nms;
    int *agg_ms;         /* per aggregate: its multiset, or -1 */
    bool *msbad;         /* per multiset: the current image's value is unavailable */
    tm_store_iter_t *it; /* per call, created on first need (after a commit) */
    bool join;           /* some string_agg(): its unchanged results come from the old row */
    tm_batch_t *scratch; /* only its arena: per-call groups, maps and rows */
    tm_batch_t *out;     /* the output batch being filled */
    tm_buf_t key, ekey, val, ser, state, sbuf;
    /* Per call. */
    tm_batch_keys_t groups;
    vent_t **vmap;
    uint32_t vmask;
};

/* ---- small encodings (varints and zigzag from core/buf.h) ---- */

/* G ‖ u16 BE tag into op->ekey (tag 0 = the group state, i + 1 = aggregate i's entries). */
static int entry_prefix(tm_operator_t *op, const group_t *g, int tag)
{
    tm_buf_clear(&op->ekey);
    int rc = tm_buf_append(&op->ekey, g->bk.key, g->bk.klen);
    rc = rc ? rc : tm_buf_putc(&op->ekey, (char)(uint8_t)(tag >> 8));
    return rc ? rc : tm_buf_putc(&op->ekey, (char)(uint8_t)tag);
}

/* ---- life cycle ---- */

static void op_free(tm_operator_t *op)
{
    if (op == NULL)
        return;
    tm_store_iter_free(op->it);
    tm_store_batch_free(op->wb);
    tm_kvcache_free(op->cache);
    free(op->ms);
    free(op->agg_ms);
    free(op->msbad);
    tm_batch_unref(op->scratch);
    tm_batch_unref(op->out);
    tm_buf_release(&op->key);
    tm_buf_release(&op->ekey);
    tm_buf_release(&op->val);
    tm_buf_release(&op->ser);
    tm_buf_release(&op->state);
    tm_buf_release(&op->sbuf);
    free(op);
}

int tm_group_agg_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                     tm_buf_t *out)
{
    const tm_group_agg_spec_t *s = spec;
    return tm_row_cols_key_encode(schema, row, s->group_cols, s->ngroup, out);
}

/* ---- emitting ---- */

static int emit_out(tm_operator_t *op, tm_collector_t *out, char *errstr, size_t errstr_size)
{
    return tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
}

/* A record in the output batch, emitting the batch first when it is full. */
static int out_record(tm_operator_t *op, tm_collector_t *out, tm_op_t kind, tm_record_t **rec,
                      char *errstr, size_t errstr_size)
{
    int rc = tm_collector_room(out, &op->out, op->ctx.uid, errstr, errstr_size);
    if (rc != 0)
        return rc;
    *rec = tm_batch_add(op->out, op->spec->out_schema, kind);
    return *rec == NULL ? TM_ENOMEM : 0;
}

/* ---- grouping (step 1) ---- */

static int row_error(tm_operator_t *op, const tm_record_t *rec, const char *reason, char *errstr,
                     size_t errstr_size)
{
    return tm_operator_row_error(&op->ctx, rec, reason, errstr, errstr_size);
}

/* A group's index in the batch (the index of its accumulators). */
static int group_index(const tm_operator_t *op, const group_t *g)
{
    return (int)(((const char *)g - op->groups.entries) / (ptrdiff_t)sizeof(group_t));
}

static int find_group(tm_operator_t *op, const uint8_t *key, size_t klen, group_t **out)
{
    void *entry;
    bool added;
    int rc = tm_batch_keys_find(&op->groups, key, klen, &entry, &added);
    if (rc != 0 || !added) {
        *out = entry;
        return rc;
    }
    group_t *g = entry;
    g->changed = tm_arena_zalloc(&op->scratch->arena, sizeof(bool) * (size_t)(op->nms + 1));
    g->ext = tm_arena_zalloc(&op->scratch->arena, sizeof(extreme_t) * 2 * (size_t)(op->nms + 1));
    g->il = tm_arena_zalloc(&op->scratch->arena, sizeof(ilist_t) * (size_t)(op->nms + 1));
    if (g->changed == NULL || g->ext == NULL || g->il == NULL)
        return TM_ENOMEM;
    *out = g;
    return 0;
}

static int add_image(tm_operator_t *op, const tm_record_t *rec, const tm_row_t *row, int sign,
                     char *errstr, size_t errstr_size)
{
    const tm_group_agg_spec_t *spec = op->spec;
    tm_buf_clear(&op->key);
    int rc = tm_row_cols_key_encode(spec->in_schema, row, spec->group_cols, spec->ngroup, &op->key);
    if (rc == TM_EINVAL)
        return row_error(op, rec,
                         "a GROUP BY column is an unchanged TOASTed value the source did not "
                         "send (set REPLICA IDENTITY FULL on the table)",
                         errstr, errstr_size);
    if (rc != 0)
        return rc;
    group_t *g;
    if ((rc = find_group(op, (const uint8_t *)op->key.data, op->key.len, &g)) != 0)
        return rc;
    if (g->bk.kg < op->ctx.kg_first || g->bk.kg > op->ctx.kg_last)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "group_agg %s: subtask %d received a row of key group %d, but owns key "
                         "groups %d..%d; its input is not hash-partitioned by the group key "
                         "(tm_group_agg_key)",
                         op->ctx.uid, op->ctx.subtask, g->bk.kg, op->ctx.kg_first,
                         op->ctx.kg_last);
    contrib_t *c = tm_arena_alloc(&op->scratch->arena, sizeof(*c));
    if (c == NULL)
        return TM_ENOMEM;
    c->next = NULL;
    c->rec = rec;
    c->row = row;
    c->sign = sign;
    if (g->last != NULL)
        g->last->next = c;
    else
        g->first = c;
    g->last = c;
    g->drows += sign;
    return 0;
}

static int group_batch(tm_operator_t *op, const tm_batch_t *batch, char *errstr,
                       size_t errstr_size)
{
    if (tm_batch_keys_init(&op->groups, &op->scratch->arena, sizeof(group_t),
                           (int)(2 * batch->count + 1), op->maxp) != 0)
        return TM_ENOMEM;
    uint32_t vcap = 16;
    while (op->nms > 0 && vcap < 4 * batch->count * (uint32_t)op->nms + 16)
        vcap <<= 1;
    op->vmask = vcap - 1;
    op->vmap = op->nms > 0 ? tm_arena_zalloc(&op->scratch->arena, sizeof(vent_t *) * vcap)
                           : NULL;
    if (op->nms > 0 && op->vmap == NULL)
        return TM_ENOMEM;
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

/* ---- applying (step 2) ---- */

static int add_value(tm_operator_t *op, int gi, int ms, const tm_datum_t *d, int sign,
                     const tm_record_t *rec)
{
    if (op->val.data == NULL && tm_buf_reserve(&op->val, 1) != 0)
        return TM_ENOMEM; /* an empty value (''): the buffer still needs memory to point at */
    uint64_t h = tm_xxh64(op->val.data, op->val.len, (uint64_t)gi * 1000003u + (uint64_t)ms);
    for (uint32_t i = (uint32_t)h & op->vmask;; i = (i + 1) & op->vmask) {
        vent_t *v = op->vmap[i];
        if (v == NULL) {
            v = tm_arena_alloc(&op->scratch->arena, sizeof(*v));
            if (v == NULL)
                return TM_ENOMEM;
            v->key = (const uint8_t *)tm_arena_memdup(&op->scratch->arena, op->val.data,
                                                      op->val.len);
            if (v->key == NULL)
                return TM_ENOMEM;
            v->klen = op->val.len;
            v->group = gi;
            v->ms = ms;
            v->hash = h;
            v->delta = sign;
            v->datum = d;
            v->rec = rec;
            group_t *g = tm_batch_keys_at(&op->groups, gi);
            v->next = g->vals;
            g->vals = v;
            op->vmap[i] = v;
            return 0;
        }
        if (v->hash == h && v->group == gi && v->ms == ms && v->klen == op->val.len &&
            memcmp(v->key, op->val.data, v->klen) == 0) {
            v->delta += sign;
            return 0;
        }
    }
}

/* Orders groups as their state keys sort in the store: key group, then G. */
static int group_cmp(const void *a, const void *b)
{
    return tm_batch_key_cmp(*(const tm_batch_key_t *const *)a, *(const tm_batch_key_t *const *)b);
}

/* Orders a group's values as their entry keys sort: multiset, then value bytes. */
static int vent_cmp(const void *a, const void *b)
{
    const vent_t *x = *(vent_t *const *)a, *y = *(vent_t *const *)b;
    if (x->ms != y->ms)
        return x->ms < y->ms ? -1 : 1;
    return tm_bytes_cmp(x->key, x->klen, y->key, y->klen);
}

/*
 * The batch's groups in key order: the memtable skiplist inserts a run of
 * ascending keys from where the previous insert ended, which costs far
 * fewer comparisons than inserts in hash order.
 */
static group_t **sort_groups(tm_operator_t *op)
{
    group_t **order = tm_arena_alloc(&op->scratch->arena, sizeof(group_t *) * (size_t)op->groups.n);
    if (order == NULL)
        return NULL;
    for (int gi = 0; gi < op->groups.n; gi++)
        order[gi] = tm_batch_keys_at(&op->groups, gi);
    qsort(order, (size_t)op->groups.n, sizeof(*order), group_cmp);
    return order;
}

/*
 * A group's values in key order (multiset, then value): merge_inline needs
 * each multiset's run ascending, and a spilled multiset's entries are then
 * written in key order too.
 */
static int sort_values(tm_operator_t *op, group_t *g)
{
    size_t n = 0;
    for (vent_t *v = g->vals; v != NULL; v = v->next)
        n++;
    if (n < 2)
        return 0;
    vent_t **vs = tm_arena_alloc(&op->scratch->arena, sizeof(vent_t *) * n);
    if (vs == NULL)
        return TM_ENOMEM;
    n = 0;
    for (vent_t *v = g->vals; v != NULL; v = v->next)
        vs[n++] = v;
    qsort(vs, n, sizeof(*vs), vent_cmp);
    for (size_t i = 0; i + 1 < n; i++)
        vs[i]->next = vs[i + 1];
    vs[n - 1]->next = NULL;
    g->vals = vs[0];
    return 0;
}

/* Reads a cached extreme (see the layout) into scratch memory; TM_ECORRUPT or TM_ENOMEM. */
static int get_extreme(tm_operator_t *op, const uint8_t **p, const uint8_t *end, extreme_t *e)
{
    uint64_t len;
    int64_t scale;
    memset(e, 0, sizeof(*e));
    if (tm_buf_get_varint(p, end, &len) != 0 || len > (uint64_t)(end - *p))
        return TM_ECORRUPT;
    if (len == 0)
        return 0;
    const uint8_t *v = *p;
    *p += len - 1;
    if (tm_buf_get_zigzag(p, end, &scale) != 0 || scale < INT16_MIN || scale > INT16_MAX)
        return TM_ECORRUPT;
    (void)op;
    e->val = v; /* in the scratch copy of the state */
    e->len = (size_t)len - 1;
    e->scale = (int32_t)scale;
    e->has = true;
    return 0;
}

static int put_extreme(tm_buf_t *out, const extreme_t *e)
{
    if (!e->has)
        return tm_buf_put_varint(out, 0);
    int rc = tm_buf_put_varint(out, (uint64_t)e->len + 1);
    rc = rc ? rc : tm_buf_append(out, e->val, e->len);
    return rc ? rc : tm_buf_put_zigzag(out, e->scale);
}

/* Reads an inline multiset (see the layout) pointing into the scratch copy of the state. */
static int get_inline(tm_operator_t *op, const uint8_t **p, const uint8_t *end, ilist_t *il)
{
    uint64_t n, len, cnt;
    int64_t scale;
    memset(il, 0, sizeof(*il));
    if (tm_buf_get_varint(p, end, &n) != 0 || n > INLINE_MAX)
        return TM_ECORRUPT;
    if (n == 0)
        return 0;
    il->e = tm_arena_alloc(&op->scratch->arena, sizeof(ient_t) * (size_t)n);
    if (il->e == NULL)
        return TM_ENOMEM;
    for (uint64_t i = 0; i < n; i++) {
        ient_t *e = &il->e[i];
        if (tm_buf_get_varint(p, end, &len) != 0 || len > (uint64_t)(end - *p))
            return TM_ECORRUPT;
        e->key = *p;
        e->klen = (size_t)len;
        *p += len;
        if (tm_buf_get_varint(p, end, &cnt) != 0 || cnt == 0 || cnt > INT64_MAX ||
            tm_buf_get_zigzag(p, end, &scale) != 0 || scale < INT16_MIN || scale > INT16_MAX)
            return TM_ECORRUPT;
        e->cnt = (int64_t)cnt;
        e->scale = (int32_t)scale;
    }
    il->n = (int)n;
    return 0;
}

static int put_inline(tm_buf_t *out, const ilist_t *il)
{
    int rc = tm_buf_put_varint(out, 0);
    rc = rc ? rc : tm_buf_put_varint(out, (uint64_t)il->n);
    for (int i = 0; rc == 0 && i < il->n; i++) {
        const ient_t *e = &il->e[i];
        rc = tm_buf_put_varint(out, e->klen);
        rc = rc ? rc : tm_buf_append(out, e->key, e->klen);
        rc = rc ? rc : tm_buf_put_varint(out, (uint64_t)e->cnt);
        rc = rc ? rc : tm_buf_put_zigzag(out, e->scale);
    }
    return rc;
}

/* The extremes of an inline multiset: its first and last values. */
static void inline_extremes(tm_operator_t *op, group_t *g, int m)
{
    const ilist_t *il = &g->il[m];
    for (int k = 0; k < 2; k++) {
        extreme_t *e = &g->ext[2 * m + k];
        memset(e, 0, sizeof(*e));
        if (!(k == 0 ? op->ms[m].min : op->ms[m].max) || il->n == 0)
            continue;
        const ient_t *x = &il->e[k == 0 ? 0 : il->n - 1];
        e->val = x->key;
        e->len = x->klen;
        e->scale = x->scale;
        e->has = true;
    }
}

/* Reads a group's state; *found false when it has none (accumulators zeroed). */
static int read_group(tm_operator_t *op, group_t *g, tm_agg_acc_t *accs, int64_t *rows,
                      const uint8_t **res, size_t *rlen, bool *found, char *errstr,
                      size_t errstr_size)
{
    const tm_group_agg_spec_t *spec = op->spec;
    *rows = 0;
    *res = NULL;
    *rlen = 0;
    *found = false;
    for (int i = 0; i < spec->naggs; i++)
        tm_agg_acc_init(&accs[i]);
    int rc = entry_prefix(op, g, 0);
    if (rc != 0)
        return rc;
    atomic_fetch_add(&op->ctx.metrics->state_reads, 1);
    const uint8_t *p;
    size_t vlen;
    rc = tm_kvcache_get(op->cache, g->bk.kg, op->ekey.data, op->ekey.len, &p, &vlen, errstr,
                        errstr_size);
    if (rc == TM_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    /* The cache's bytes last until its next call: everything below points into a copy. */
    if ((p = (const uint8_t *)tm_arena_memdup(&op->scratch->arena, p, vlen)) == NULL)
        return TM_ENOMEM;
    const uint8_t *end = p + vlen;
    uint64_t len;
    if (p >= end || *p++ != STATE_VERSION || tm_buf_get_zigzag(&p, end, rows) != 0 ||
        tm_buf_get_varint(&p, end, &len) != 0 || len > (uint64_t)(end - p))
        goto corrupt;
    *res = len > 0 ? p : NULL;
    *rlen = (size_t)len;
    p += len;
    for (int i = 0; i < spec->naggs; i++)
        if (tm_agg_acc_decode(&spec->aggs[i], &accs[i], &p, end) != 0)
            goto corrupt;
    for (int m = 0; m < op->nms; m++) {
        uint64_t mode;
        if (tm_buf_get_varint(&p, end, &mode) != 0 || mode > 1)
            goto corrupt;
        if (mode == 0) {
            if (get_inline(op, &p, end, &g->il[m]) != 0)
                goto corrupt;
            inline_extremes(op, g, m);
            continue;
        }
        g->il[m].spilled = true;
        for (int k = 0; k < 2; k++)
            if ((k == 0 ? op->ms[m].min : op->ms[m].max) &&
                get_extreme(op, &p, end, &g->ext[2 * m + k]) != 0)
                goto corrupt;
    }
    if (p != end)
        goto corrupt;
    *found = true;
    return 0;
corrupt:
    return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                     "group_agg %s: the state of a group in key group %d is unreadable (written "
                     "by an incompatible version?)",
                     op->ctx.uid, g->bk.kg);
}

/*
 * Applies one image: its values to the multisets (netted per batch), then
 * to every accumulator but the DISTINCT ones (fed by apply_values).
 */
static int apply_image(tm_operator_t *op, int gi, tm_agg_acc_t *accs, const contrib_t *c,
                       char *errstr, size_t errstr_size)
{
    const tm_group_agg_spec_t *spec = op->spec;
    int rc;
    for (int m = 0; m < op->nms; m++) {
        const mset_t *ms = &op->ms[m];
        op->msbad[m] = false;
        if (tm_row_is_null(c->row, ms->col))
            continue;
        const tm_datum_t *d = &c->row->vals[ms->col];
        tm_buf_clear(&op->val);
        rc = tm_agg_value_encode(ms->type, d, &op->val);
        if (rc == TM_EINVAL) {
            char why[256];
            op->msbad[m] = true;
            tm_seterr(why, sizeof(why), rc,
                      "%s: the argument is an unchanged TOASTed value the source did not "
                      "send (set REPLICA IDENTITY FULL on the table)",
                      tm_agg_name(spec->aggs[ms->first_agg].kind));
            if ((rc = row_error(op, c->rec, why, errstr, errstr_size)) != 0)
                return rc;
            continue;
        }
        if (rc == 0)
            rc = add_value(op, gi, m, d, c->sign, c->rec);
        if (rc != 0)
            return rc;
    }
    for (int i = 0; i < spec->naggs; i++) {
        const tm_agg_call_t *call = &spec->aggs[i];
        const tm_datum_t *d = NULL;
        if (call->kind != TM_AGG_COUNT_STAR) {
            if (tm_row_is_null(c->row, call->arg))
                continue; /* NULL inputs are ignored by every aggregate but count(*) */
            d = &c->row->vals[call->arg];
        }
        int m = op->agg_ms[i];
        if (m >= 0 && (op->msbad[m] || call->distinct))
            continue;
        char why[256];
        rc = tm_agg_acc_update(call, &accs[i], d, c->sign, why, sizeof(why));
        if (rc == TM_EINVAL && (rc = row_error(op, c->rec, why, errstr, errstr_size)) != 0)
            return rc;
        if (rc != 0 && rc != TM_EINVAL)
            return rc;
    }
    return 0;
}

/* A value entered or left multiset m: every DISTINCT aggregate of m sees it once. */
static int distinct_change(tm_operator_t *op, group_t *g, tm_agg_acc_t *accs, const vent_t *v,
                           int sign, int64_t scale, char *errstr, size_t errstr_size)
{
    const tm_group_agg_spec_t *spec = op->spec;
    const tm_datum_t *d = v->datum;
    tm_datum_t stored;
    bool decoded = false;
    for (int i = 0; i < spec->naggs; i++) {
        const tm_agg_call_t *call = &spec->aggs[i];
        if (op->agg_ms[i] != v->ms || !call->distinct)
            continue;
        if (sign < 0 && !decoded) {
            /*
             * A retraction uses the stored value (its scale), so the scale
             * histogram gets back exactly what it was given.
             */
            int rc = tm_agg_value_decode(op->ms[v->ms].type, v->key, v->klen, (int32_t)scale,
                                         op->scratch, &stored);
            if (rc != 0)
                return rc == TM_ENOMEM ? rc
                                       : tm_seterr(errstr, errstr_size, rc,
                                                   "group_agg %s: a stored value in key group "
                                                   "%d is unreadable",
                                                   op->ctx.uid, g->bk.kg);
            d = &stored;
            decoded = true;
        }
        char why[256];
        int rc = tm_agg_acc_update(call, &accs[i], d, sign, why, sizeof(why));
        if (rc == TM_EINVAL && (rc = row_error(op, v->rec, why, errstr, errstr_size)) != 0)
            return rc;
        if (rc != 0 && rc != TM_EINVAL)
            return rc;
    }
    return 0;
}

/* Folds a value's new count into the cached extremes of its multiset (invariant 3). */
static void extremes_update(tm_operator_t *op, group_t *g, const vent_t *v, int64_t old,
                            int64_t now, int32_t scale)
{
    const mset_t *ms = &op->ms[v->ms];
    for (int k = 0; k < 2; k++) {
        if (!(k == 0 ? ms->min : ms->max))
            continue;
        extreme_t *e = &g->ext[2 * v->ms + k];
        int cmp = 0;
        if (e->has) {
            size_t n = v->klen < e->len ? v->klen : e->len;
            cmp = memcmp(v->key, e->val, n);
            if (cmp == 0)
                cmp = v->klen < e->len ? -1 : v->klen > e->len;
            if (k == 1)
                cmp = -cmp; /* for the maximum, "better" is larger */
        }
        if (now > 0) {
            /*
             * Every stored value is at least as good as the cached one, so a
             * better value is the new extreme even when the cached one was
             * retracted in this batch.
             */
            if (!e->has || cmp < 0) {
                e->val = v->key;
                e->len = v->klen;
                e->scale = scale;
                e->has = true;
                e->lost = false;
            }
        } else if (old > 0 && e->has && cmp == 0) {
            e->lost = true; /* the store knows what comes next */
        }
    }
}

static int value_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    int c = memcmp(a, b, alen < blen ? alen : blen);
    return c != 0 ? c : (alen > blen) - (alen < blen);
}

/* Writes every value of an inline multiset as an entry: it no longer fits (invariant 6). */
static int spill(tm_operator_t *op, group_t *g, int m)
{
    ilist_t *il = &g->il[m];
    for (int i = 0; i < il->n; i++) {
        const ient_t *e = &il->e[i];
        tm_buf_clear(&op->sbuf);
        int rc = entry_prefix(op, g, m + 1);
        rc = rc ? rc : tm_buf_append(&op->ekey, e->key, e->klen);
        rc = rc ? rc : tm_buf_put_varint(&op->sbuf, (uint64_t)e->cnt);
        rc = rc ? rc : tm_buf_put_zigzag(&op->sbuf, e->scale);
        rc = rc ? rc
                : tm_store_batch_put(op->wb, op->cf, g->bk.kg, op->ekey.data, op->ekey.len,
                                     op->sbuf.data, op->sbuf.len);
        if (rc != 0)
            return rc;
    }
    il->spilled = true;
    il->n = 0;
    il->e = NULL;
    return 0;
}

/*
 * Merges the net changes of multiset m (the run of g's values starting at
 * *vp, ascending) into its inline values, and spills the result when it no
 * longer fits.  Advances *vp past the run.
 */
static int merge_inline(tm_operator_t *op, group_t *g, int m, vent_t **vp, tm_agg_acc_t *accs,
                        char *errstr, size_t errstr_size)
{
    ilist_t *il = &g->il[m];
    const mset_t *ms = &op->ms[m];
    size_t nv = 0;
    for (vent_t *v = *vp; v != NULL && v->ms == m; v = v->next)
        nv++;
    ient_t *out = tm_arena_alloc(&op->scratch->arena, sizeof(ient_t) * ((size_t)il->n + nv));
    if (out == NULL)
        return TM_ENOMEM;
    int n = 0, i = 0, rc;
    size_t bytes = 0;
    vent_t *v = *vp;
    while (i < il->n || (v != NULL && v->ms == m)) {
        int c = v == NULL || v->ms != m
                    ? -1
                    : i == il->n ? 1
                                 : value_cmp(il->e[i].key, il->e[i].klen, v->key, v->klen);
        if (c < 0) {
            out[n++] = il->e[i++]; /* unchanged */
            bytes += out[n - 1].klen;
            continue;
        }
        int64_t old = c == 0 ? il->e[i].cnt : 0;
        int32_t scale = c == 0 ? il->e[i].scale
                               : ms->type == TM_T_NUMERIC ? v->datum->scale : 0;
        int64_t now = old + v->delta;
        if (v->delta != 0) {
            g->changed[m] = true;
            if ((old > 0) != (now > 0) &&
                (rc = distinct_change(op, g, accs, v, now > 0 ? 1 : -1, scale, errstr,
                                      errstr_size)) != 0)
                return rc;
        }
        if (now > 0) {
            out[n++] = (ient_t){.key = v->key, .klen = v->klen, .cnt = now, .scale = scale};
            bytes += v->klen;
        }
        if (c == 0)
            i++;
        v = v->next;
    }
    *vp = v;
    il->e = out;
    il->n = n;
    inline_extremes(op, g, m);
    return n > INLINE_MAX || bytes > INLINE_BYTES ? spill(op, g, m) : 0;
}

/* Reads, updates and writes one changed value of a spilled multiset (invariant 5). */
static int apply_spilled(tm_operator_t *op, group_t *g, tm_agg_acc_t *accs, const vent_t *v,
                         char *errstr, size_t errstr_size)
{
    if (v->delta == 0)
        return 0; /* inserted and retracted within the batch: nothing to do */
    const mset_t *ms = &op->ms[v->ms];
    int rc = entry_prefix(op, g, v->ms + 1);
    rc = rc ? rc : tm_buf_append(&op->ekey, v->key, v->klen);
    if (rc != 0)
        return rc;
    atomic_fetch_add(&op->ctx.metrics->state_reads, 1);
    /* Invariant 5: the write batch cannot hold this key yet. */
    rc = tm_store_get(op->store, op->cf, g->bk.kg, op->ekey.data, op->ekey.len, &op->sbuf, errstr,
                      errstr_size);
    int64_t old = 0, scale = ms->type == TM_T_NUMERIC ? v->datum->scale : 0;
    if (rc == 0) {
        const uint8_t *p = (const uint8_t *)op->sbuf.data, *end = p + op->sbuf.len;
        uint64_t cnt;
        if (tm_buf_get_varint(&p, end, &cnt) != 0 || tm_buf_get_zigzag(&p, end, &scale) != 0 ||
            p != end || cnt > INT64_MAX || scale < INT16_MIN || scale > INT16_MAX)
            return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                             "group_agg %s: a value entry in key group %d is unreadable",
                             op->ctx.uid, g->bk.kg);
        old = (int64_t)cnt;
    } else if (rc != TM_ENOTFOUND) {
        return rc;
    }
    int64_t now = old + v->delta;
    g->changed[v->ms] = true;
    if ((old > 0) != (now > 0) &&
        (rc = distinct_change(op, g, accs, v, now > 0 ? 1 : -1, scale, errstr, errstr_size)) !=
            0)
        return rc;
    extremes_update(op, g, v, old, now, (int32_t)scale);
    if (now > 0) {
        tm_buf_clear(&op->sbuf);
        rc = tm_buf_put_varint(&op->sbuf, (uint64_t)now);
        rc = rc ? rc : tm_buf_put_zigzag(&op->sbuf, scale);
        rc = rc ? rc
                : tm_store_batch_put(op->wb, op->cf, g->bk.kg, op->ekey.data, op->ekey.len,
                                     op->sbuf.data, op->sbuf.len);
    } else if (old > 0) {
        rc = tm_store_batch_delete(op->wb, op->cf, g->bk.kg, op->ekey.data, op->ekey.len);
    }
    return rc;
}

/* Applies the net value changes of a group, one multiset's run at a time (step 2, value part). */
static int apply_values(tm_operator_t *op, group_t *g, tm_agg_acc_t *accs, char *errstr,
                        size_t errstr_size)
{
    vent_t *v = g->vals;
    while (v != NULL) {
        int rc;
        if (!g->il[v->ms].spilled) {
            /* Consumes the whole run of this multiset. */
            rc = merge_inline(op, g, v->ms, &v, accs, errstr, errstr_size);
        } else {
            rc = apply_spilled(op, g, accs, v, errstr, errstr_size);
            v = v->next;
        }
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- results (step 3) ---- */

/*
 * The call's iterator, positioned on multiset m of group g: created on first
 * need after committing the batch, since an iterator sees the database as of
 * its creation and the entries were written in step 2 (one commit and one
 * iterator per call, however many groups seek).
 */
static int seek_values(tm_operator_t *op, const group_t *g, int m, bool reverse, char *errstr,
                       size_t errstr_size)
{
    int rc;
    if (op->it == NULL) {
        if ((rc = tm_store_batch_commit(op->wb, errstr, errstr_size)) != 0)
            return rc;
        if ((rc = tm_store_iter_new(op->store, op->cf, g->bk.kg, g->bk.kg, NULL, 0, &op->it)) != 0)
            return rc;
    }
    atomic_fetch_add(&op->ctx.metrics->state_reads, 1);
    rc = entry_prefix(op, g, m + 1);
    return rc ? rc : tm_store_iter_seek(op->it, g->bk.kg, op->ekey.data, op->ekey.len, reverse);
}

/* Re-reads a retracted extreme from the store: the first / last entry of the multiset. */
static int seek_extreme(tm_operator_t *op, group_t *g, int m, int k, char *errstr,
                        size_t errstr_size)
{
    extreme_t *e = &g->ext[2 * m + k];
    int rc = seek_values(op, g, m, k == 1, errstr, errstr_size);
    if (rc != 0)
        return rc;
    tm_store_entry_t ent;
    rc = tm_store_iter_next(op->it, &ent, errstr, errstr_size);
    if (rc < 0)
        return rc;
    memset(e, 0, sizeof(*e));
    if (rc == 0)
        return 0; /* the multiset is empty */
    const uint8_t *p = ent.val, *end = ent.val + ent.vlen;
    uint64_t cnt;
    int64_t scale;
    if (tm_buf_get_varint(&p, end, &cnt) != 0 || tm_buf_get_zigzag(&p, end, &scale) != 0 ||
        scale < INT16_MIN || scale > INT16_MAX)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "group_agg %s: a value entry in key group %d is unreadable",
                         op->ctx.uid, g->bk.kg);
    e->len = ent.klen - op->ekey.len;
    e->val = (const uint8_t *)tm_arena_memdup(&op->scratch->arena, ent.key + op->ekey.len,
                                              e->len);
    if (e->val == NULL)
        return TM_ENOMEM;
    e->scale = (int32_t)scale;
    e->has = true;
    return 0;
}

/* string_agg: every value in order (DISTINCT: once each), joined by the separator. */
static int value_join(tm_operator_t *op, group_t *g, int agg, tm_datum_t *out, bool *isnull,
                      char *errstr, size_t errstr_size)
{
    const tm_agg_call_t *call = &op->spec->aggs[agg];
    const ilist_t *il = &g->il[op->agg_ms[agg]];
    tm_buf_clear(&op->sbuf);
    size_t sep = call->separator ? strlen(call->separator) : 0;
    bool any = false;
    int rc;
    if (!il->spilled) {
        for (int i = 0; i < il->n; i++)
            for (int64_t k = 0; k < (call->distinct ? 1 : il->e[i].cnt); k++) {
                if (any && sep > 0 && tm_buf_append(&op->sbuf, call->separator, sep) != 0)
                    return TM_ENOMEM;
                if (tm_buf_append(&op->sbuf, il->e[i].key, il->e[i].klen) != 0)
                    return TM_ENOMEM;
                any = true;
            }
        rc = 0;
        goto done;
    }
    if ((rc = seek_values(op, g, op->agg_ms[agg], false, errstr, errstr_size)) != 0)
        return rc;
    tm_store_entry_t e;
    while ((rc = tm_store_iter_next(op->it, &e, errstr, errstr_size)) == 1) {
        const uint8_t *p = e.val, *end = e.val + e.vlen;
        uint64_t cnt;
        if (tm_buf_get_varint(&p, end, &cnt) != 0) {
            rc = tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                           "group_agg %s: a stored value is unreadable", op->ctx.uid);
            break;
        }
        if (call->distinct)
            cnt = 1;
        for (uint64_t k = 0; rc == 1 && k < cnt; k++) {
            if (any && sep > 0 && tm_buf_append(&op->sbuf, call->separator, sep) != 0)
                rc = TM_ENOMEM;
            else if (tm_buf_append(&op->sbuf, e.key + op->ekey.len, e.klen - op->ekey.len) != 0)
                rc = TM_ENOMEM;
            any = true;
        }
        if (rc != 1)
            break;
    }
done:
    if (rc != 0)
        return rc;
    *isnull = !any;
    memset(out, 0, sizeof(*out));
    return any ? tm_batch_set_var(op->scratch, out, op->sbuf.len ? op->sbuf.data : "",
                                  op->sbuf.len)
               : 0;
}

/*
 * The group's result row (in scratch).  `old` (may be NULL) supplies
 * unchanged string_agg results; `fresh`: the group had no stored result;
 * `empty`: it has no rows (the global aggregate's empty-input result).
 */
static int build_result(tm_operator_t *op, group_t *g, const tm_agg_acc_t *accs,
                        const tm_row_t *old, bool fresh, bool empty, tm_row_t **out,
                        char *errstr, size_t errstr_size)
{
    const tm_group_agg_spec_t *spec = op->spec;
    tm_row_t *r = tm_batch_new_row(op->scratch, spec->out_schema);
    if (r == NULL)
        return TM_ENOMEM;
    /* Every image of a group has the same group values; the first one supplies them. */
    const tm_row_t *src = g->first->row;
    for (int j = 0; j < spec->ngroup; j++) {
        int c = spec->group_cols[j];
        if (!tm_row_is_null(src, c)) {
            r->vals[j] = src->vals[c];
            tm_row_set_null(r, j, false);
        }
    }
    for (int i = 0; i < spec->naggs; i++) {
        const tm_agg_call_t *call = &spec->aggs[i];
        int col = spec->ngroup + i;
        tm_datum_t d;
        bool isnull = true;
        int rc;
        int m = op->agg_ms[i];
        if (call->kind == TM_AGG_MIN || call->kind == TM_AGG_MAX) {
            const extreme_t *e = &g->ext[2 * m + (call->kind == TM_AGG_MAX)];
            isnull = !e->has;
            rc = isnull ? 0
                        : tm_agg_value_decode(op->ms[m].type, e->val, e->len, e->scale,
                                              op->scratch, &d);
            if (rc == TM_ECORRUPT)
                rc = tm_seterr(errstr, errstr_size, rc,
                               "group_agg %s: a cached %s in key group %d is unreadable",
                               op->ctx.uid, tm_agg_name(call->kind), g->bk.kg);
        } else if (call->kind == TM_AGG_STRING_AGG && (empty || (fresh && !g->changed[m]))) {
            /* No rows, or a new group whose values are unchanged: no values at all. */
            isnull = true;
            rc = 0;
        } else if (call->kind == TM_AGG_STRING_AGG && old != NULL && !g->changed[m]) {
            isnull = tm_row_is_null(old, col);
            d = old->vals[col];
            rc = 0;
        } else if (call->kind == TM_AGG_STRING_AGG) {
            rc = value_join(op, g, i, &d, &isnull, errstr, errstr_size);
        } else {
            char why[256];
            rc = tm_agg_acc_get(call, &accs[i], op->scratch, &d, &isnull, why, sizeof(why));
            if (rc == TM_EINVAL) {
                /* A result out of its type's range: the row error of the group's last change. */
                isnull = true;
                rc = row_error(op, g->last->rec, why, errstr, errstr_size);
            }
        }
        if (rc != 0)
            return rc;
        if (!isnull) {
            r->vals[col] = d;
            tm_row_set_null(r, col, false);
        }
    }
    *out = r;
    return 0;
}

static int write_group(tm_operator_t *op, group_t *g, const tm_agg_acc_t *accs, int64_t rows,
                       const tm_buf_t *result, char *errstr, size_t errstr_size)
{
    tm_buf_clear(&op->state);
    int rc = tm_buf_putc(&op->state, STATE_VERSION);
    rc = rc ? rc : tm_buf_put_zigzag(&op->state, rows);
    rc = rc ? rc : tm_buf_put_varint(&op->state, result->len);
    rc = rc ? rc : tm_buf_append(&op->state, result->data, result->len);
    for (int i = 0; rc == 0 && i < op->spec->naggs; i++)
        rc = tm_agg_acc_encode(&op->spec->aggs[i], &accs[i], &op->state);
    for (int m = 0; rc == 0 && m < op->nms; m++) {
        if (!g->il[m].spilled) {
            rc = put_inline(&op->state, &g->il[m]);
            continue;
        }
        rc = tm_buf_put_varint(&op->state, 1);
        if (rc == 0 && op->ms[m].min)
            rc = put_extreme(&op->state, &g->ext[2 * m]);
        if (rc == 0 && op->ms[m].max)
            rc = put_extreme(&op->state, &g->ext[2 * m + 1]);
    }
    rc = rc ? rc : entry_prefix(op, g, 0);
    return rc ? rc
              : tm_kvcache_put(op->cache, g->bk.kg, op->ekey.data, op->ekey.len, op->state.data,
                               op->state.len, errstr, errstr_size);
}

static int emit_change(tm_operator_t *op, tm_collector_t *out, const group_t *g, tm_op_t kind,
                       const uint8_t *old, size_t oldlen, const tm_row_t *after, char *errstr,
                       size_t errstr_size)
{
    tm_schema_t *s = op->spec->out_schema;
    tm_record_t *r;
    int rc = out_record(op, out, kind, &r, errstr, errstr_size);
    if (rc != 0)
        return rc;
    r->proc_us = g->last->rec->proc_us;
    r->src = g->last->rec->src;
    if (old != NULL) {
        rc = tm_row_deserialize(s, old, oldlen, op->out, &r->before);
        if (rc != 0)
            return rc == TM_ENOMEM ? rc
                                   : tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                                               "group_agg %s: a stored result row is unreadable "
                                               "(the output schema changed?)",
                                               op->ctx.uid);
    }
    if (after != NULL && (r->after = tm_row_copy(op->out, s, after)) == NULL)
        return TM_ENOMEM;
    return 0;
}

/* Step 3 for one group, after step 2 for every group. */
static int finish_group(tm_operator_t *op, group_t *g, tm_agg_acc_t *accs, int64_t rows,
                        const uint8_t *res, size_t rlen, tm_collector_t *out, char *errstr,
                        size_t errstr_size)
{
    const tm_group_agg_spec_t *spec = op->spec;
    tm_schema_t *s = spec->out_schema;
    int rc;
    if (rows <= 0 && spec->ngroup > 0) {
        /* The group became empty: retract its row and forget it. */
        if (res != NULL &&
            (rc = emit_change(op, out, g, TM_OP_DELETE, res, rlen, NULL, errstr, errstr_size)) != 0)
            return rc;
        if ((rc = entry_prefix(op, g, 0)) != 0)
            return rc;
        return tm_kvcache_delete(op->cache, g->bk.kg, op->ekey.data, op->ekey.len, errstr,
                                 errstr_size);
    }
    /*
     * A retracted extreme is re-read from the store (the only seeks for min
     * and max), unless the group has no rows left and so no values.
     */
    for (int m = 0; m < op->nms; m++)
        for (int k = 0; k < 2; k++) {
            extreme_t *e = &g->ext[2 * m + k];
            if (rows <= 0)
                memset(e, 0, sizeof(*e));
            else if (e->lost && (rc = seek_extreme(op, g, m, k, errstr, errstr_size)) != 0)
                return rc;
        }
    tm_row_t *old = NULL;
    if (op->join && res != NULL && tm_row_deserialize(s, res, rlen, op->scratch, &old) != 0)
        old = NULL; /* recomputed below from the entries */
    tm_row_t *row;
    if ((rc = build_result(op, g, accs, old, res == NULL, rows <= 0, &row, errstr,
                           errstr_size)) != 0)
        return rc;
    tm_buf_clear(&op->ser);
    if ((rc = tm_row_serialize(s, row, &op->ser)) != 0)
        return rc;
    if (res == NULL)
        rc = emit_change(op, out, g, TM_OP_CREATE, NULL, 0, row, errstr, errstr_size);
    else if (op->ser.len != rlen || memcmp(op->ser.data, res, rlen) != 0)
        rc = emit_change(op, out, g, TM_OP_UPDATE, res, rlen, row, errstr, errstr_size);
    if (rc != 0)
        return rc;
    return write_group(op, g, accs, rows < 0 ? 0 : rows, &op->ser, errstr, errstr_size);
}

/* ---- hooks ---- */

static int process(tm_operator_t *op, const tm_batch_t *batch, tm_collector_t *out,
                   char *errstr, size_t errstr_size)
{
    const tm_group_agg_spec_t *spec = op->spec;
    tm_arena_reset(&op->scratch->arena);
    int rc = group_batch(op, batch, errstr, errstr_size);
    if (rc != 0 || op->groups.n == 0)
        return rc;
    size_t naggs = (size_t)(spec->naggs > 0 ? spec->naggs : 1);
    tm_agg_acc_t *accs = tm_arena_alloc(&op->scratch->arena,
                                        sizeof(tm_agg_acc_t) * naggs * (size_t)op->groups.n);
    int64_t *rows = tm_arena_alloc(&op->scratch->arena, sizeof(int64_t) * (size_t)op->groups.n);
    const uint8_t **res = tm_arena_alloc(&op->scratch->arena, sizeof(*res) * (size_t)op->groups.n);
    size_t *rlen = tm_arena_alloc(&op->scratch->arena, sizeof(size_t) * (size_t)op->groups.n);
    group_t **order = sort_groups(op);
    if (accs == NULL || rows == NULL || res == NULL || rlen == NULL || order == NULL)
        return TM_ENOMEM;
    for (int k = 0; k < op->groups.n; k++) {
        group_t *g = order[k];
        int gi = group_index(op, g);
        tm_agg_acc_t *ga = &accs[(size_t)gi * naggs];
        bool found;
        rc = read_group(op, g, ga, &rows[gi], &res[gi], &rlen[gi], &found, errstr, errstr_size);
        if (rc != 0)
            return rc;
        rows[gi] += g->drows;
        for (contrib_t *c = g->first; c != NULL; c = c->next)
            if ((rc = apply_image(op, gi, ga, c, errstr, errstr_size)) != 0)
                return rc;
        if (g->vals != NULL &&
            ((rc = sort_values(op, g)) != 0 || (rc = apply_values(op, g, ga, errstr, errstr_size)) != 0))
            return rc;
    }
    for (int k = 0; k < op->groups.n; k++) {
        int gi = group_index(op, order[k]);
        rc = finish_group(op, order[k], &accs[(size_t)gi * naggs], rows[gi], res[gi],
                          rlen[gi], out, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    op->it = tm_store_iter_free(op->it);
    rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    return rc != 0 ? rc : emit_out(op, out, errstr, errstr_size);
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
    rc = rc ? rc : tm_kvcache_flush(op->cache, errstr, errstr_size);
    return rc != 0 ? rc : emit_out(op, out, errstr, errstr_size);
}

static int op_on_end(tm_operator_t *op, tm_collector_t *out, char *errstr, size_t errstr_size)
{
    return op_on_barrier(op, 0, out, errstr, errstr_size);
}

/* One multiset per argument column of the value-keeping aggregates, in order of first use. */
static int plan_multisets(tm_operator_t *op, char *errstr, size_t errstr_size)
{
    const tm_group_agg_spec_t *spec = op->spec;
    size_t n = (size_t)spec->naggs + 1;
    op->agg_ms = malloc(sizeof(int) * n);
    op->ms = calloc(n, sizeof(mset_t));
    op->msbad = calloc(n, sizeof(bool));
    if (op->agg_ms == NULL || op->ms == NULL || op->msbad == NULL)
        return TM_ENOMEM;
    for (int i = 0; i < spec->naggs; i++) {
        const tm_agg_call_t *call = &spec->aggs[i];
        op->agg_ms[i] = -1;
        if (call->kind != TM_AGG_COUNT_STAR &&
            (call->arg < 0 || call->arg >= spec->in_schema->ncols))
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "group_agg %s: aggregate %d reads column %d, which the input "
                             "does not have",
                             op->ctx.uid, i, call->arg);
        if (!tm_agg_keeps_values(call))
            continue;
        int m = 0;
        while (m < op->nms &&
               (op->ms[m].col != call->arg || op->ms[m].type != call->arg_type.type))
            m++;
        if (m == op->nms) {
            op->ms[m].col = call->arg;
            op->ms[m].type = call->arg_type.type;
            op->ms[m].first_agg = i;
            op->nms++;
        }
        op->agg_ms[i] = m;
        op->ms[m].min |= call->kind == TM_AGG_MIN;
        op->ms[m].max |= call->kind == TM_AGG_MAX;
        op->ms[m].join |= call->kind == TM_AGG_STRING_AGG;
        op->join |= call->kind == TM_AGG_STRING_AGG;
    }
    return 0;
}

static const tm_operator_ops_t group_agg_ops = {
    .name = "group_agg",
    .ninputs = 1,
    .process = op_process,
    .on_barrier = op_on_barrier,
    .on_end = op_on_end,
    .free = op_free,
};

int tm_group_agg_new(const void *spec_arg, const tm_operator_ctx_t *ctx,
                     const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                     size_t errstr_size)
{
    const tm_group_agg_spec_t *spec = spec_arg;
    *out = NULL;
    if (ctx->store == NULL)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "group_agg %s: the operator keeps state and needs a store",
                         ctx->uid ? ctx->uid : "");
    if (spec->ngroup < 0 || spec->naggs < 0 || spec->naggs > 65534 || spec->out_schema == NULL ||
        spec->out_schema->ncols != spec->ngroup + spec->naggs)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "group_agg %s: the output schema must have the %d group columns and "
                         "the %d aggregates",
                         ctx->uid ? ctx->uid : "", spec->ngroup, spec->naggs);
    int maxp = tm_store_max_parallelism(ctx->store);
    if (ctx->kg_first < 0 || ctx->kg_last >= maxp || ctx->kg_first > ctx->kg_last)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "group_agg %s: key groups %d..%d are outside the store's 0..%d",
                         ctx->uid ? ctx->uid : "", ctx->kg_first, ctx->kg_last, maxp - 1);
    tm_operator_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return TM_ENOMEM;
    op->spec = spec;
    op->ctx = *ctx;
    op->store = ctx->store;
    op->maxp = maxp;
    tm_buf_init(&op->key);
    tm_buf_init(&op->ekey);
    tm_buf_init(&op->val);
    tm_buf_init(&op->ser);
    tm_buf_init(&op->state);
    tm_buf_init(&op->sbuf);
    int rc = plan_multisets(op, errstr, errstr_size);
    rc = rc ? rc : tm_store_cf(ctx->store, ctx->uid, &op->cf, errstr, errstr_size);
    if (rc == 0 && (op->scratch = tm_batch_new()) == NULL)
        rc = TM_ENOMEM;
    if (rc == 0)
        rc = tm_store_batch_new_unindexed(ctx->store, &op->wb);
    if (rc == 0)
        rc = tm_kvcache_new(ctx->store, op->cf, tm_store_operator_cache_bytes(ctx->store),
                            &op->cache);
    if (rc != 0) {
        op_free(op);
        return rc;
    }
    *ops = &group_agg_ops;
    *out = op;
    return 0;
}
