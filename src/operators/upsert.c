/*
 * upsert.c — changelog normalisation keyed by primary key (see upsert.h).
 *
 * Invariants (beyond upsert.h's):
 *   1. A record is processed only when `out` has room for everything it can
 *      emit (two records for an update, one otherwise), so a record is never
 *      half emitted.
 *   2. Rows decoded from state and merged after images live in op->scratch,
 *      whose arena is rewound before each record; only emitted rows are
 *      copied into the out batch, so dropped duplicates cost no out memory.
 *   3. Reads go through the operator's write batch, so a key written earlier
 *      in the same call is seen with its new value.
 *
 * Thread: the worker that owns the store.
 */
#include "operators/upsert.h"
#include "core/error.h"
#include "state/rowcodec.h"

#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

struct tm_upsert {
    tm_store_t *store;
    tm_store_cf_t *cf;
    char *uid;
    int maxp;
    int kg_first, kg_last; /* owned key groups */
    bool keyless;          /* emits records without a key */
    tm_store_batch_t *wb;
    tm_batch_t *scratch; /* only its arena is used (invariant 2) */
    tm_buf_t key_old, key_new;
    tm_buf_t stored; /* the value read by the last lookup */
    tm_buf_t ser;    /* the serialised after image being stored */
    tm_upsert_stats_t stats;
};

typedef enum { ST_ABSENT, ST_FOUND, ST_SHAPE } state_t;

/* ---- keys ---- */

static int append_name(tm_buf_t *out, const char *s, bool sep)
{
    int rc = sep ? tm_buf_putc(out, 0x1f) : 0;
    return rc != 0 || s == NULL ? rc : tm_buf_puts(out, s);
}

/* u16 big-endian length ‖ source_name␟db␟namespace␟table */
static int append_tag(const tm_schema_t *s, tm_buf_t *out)
{
    size_t at = out->len;
    int rc = tm_buf_append(out, "\0\0", 2);
    if (rc == 0)
        rc = append_name(out, s->source_name, false);
    if (rc == 0)
        rc = append_name(out, s->db, true);
    if (rc == 0)
        rc = append_name(out, s->namespace, true);
    if (rc == 0)
        rc = append_name(out, s->table, true);
    if (rc != 0)
        return rc;
    size_t n = out->len - at - 2;
    if (n > UINT16_MAX) {
        out->len = at;
        return TM_EINVAL;
    }
    out->data[at] = (char)(n >> 8);
    out->data[at + 1] = (char)n;
    return 0;
}

/* The state key of `row`: 0, TM_EINVAL when it has no usable primary key, TM_ENOMEM. */
static int state_key(const tm_schema_t *s, const tm_row_t *row, tm_buf_t *out)
{
    tm_buf_clear(out);
    if (row == NULL || s->nkeys <= 0)
        return TM_EINVAL;
    int rc = append_tag(s, out);
    return rc != 0 ? rc : tm_row_key_encode(s, row, out);
}

static bool same_key(const tm_buf_t *a, const tm_buf_t *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

int tm_upsert_exchange_key(const void *arg, const tm_schema_t *schema, const tm_row_t *row,
                           tm_buf_t *out)
{
    (void)arg;
    if (row == NULL || schema->nkeys <= 0)
        return TM_EINVAL;
    /* Appends, as the exchange expects; state_key() clears first for its own use. */
    int rc = append_tag(schema, out);
    return rc != 0 ? rc : tm_row_key_encode(schema, row, out);
}

int tm_upsert_keygroups(const tm_record_t *rec, int max_parallelism, int kg[2])
{
    const tm_schema_t *s = rec->schema;
    if (s == NULL || s->nkeys <= 0)
        return 0;
    tm_buf_t a, b;
    tm_buf_init(&a);
    tm_buf_init(&b);
    int n = 0, rc;
    switch (rec->op) {
    case TM_OP_DELETE:
        if ((rc = state_key(s, rec->before, &a)) == 0)
            kg[n++] = tm_keygroup_of(a.data, a.len, max_parallelism);
        break;
    case TM_OP_READ:
    case TM_OP_CREATE:
    case TM_OP_UPDATE:
        if ((rc = state_key(s, rec->after, &a)) != 0)
            break;
        if (rec->op == TM_OP_UPDATE && (rc = state_key(s, rec->before, &b)) == 0 &&
            !same_key(&a, &b))
            kg[n++] = tm_keygroup_of(b.data, b.len, max_parallelism);
        rc = 0;
        kg[n++] = tm_keygroup_of(a.data, a.len, max_parallelism);
        break;
    default:
        rc = 0;
        break;
    }
    tm_buf_release(&a);
    tm_buf_release(&b);
    if (rc == TM_ENOMEM)
        return rc;
    for (int i = 0; i < n; i++)
        if (kg[i] < 0)
            return kg[i];
    return n;
}

/* ---- life cycle ---- */

int tm_upsert_new(tm_store_t *store, const char *uid, int max_parallelism, tm_upsert_t **out,
                  char *errstr, size_t errstr_size)
{
    *out = NULL;
    int smaxp = tm_store_max_parallelism(store);
    if (max_parallelism != 0 && max_parallelism != smaxp)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "upsert operator %s: max_parallelism = %d, but its state store uses %d",
                         uid ? uid : "", max_parallelism, smaxp);
    tm_upsert_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return TM_ENOMEM;
    op->store = store;
    op->maxp = smaxp;
    op->kg_first = 0;
    op->kg_last = smaxp - 1;
    op->keyless = true;
    tm_buf_init(&op->key_old);
    tm_buf_init(&op->key_new);
    tm_buf_init(&op->stored);
    tm_buf_init(&op->ser);
    int rc = tm_store_cf(store, uid, &op->cf, errstr, errstr_size);
    if (rc == 0 && ((op->uid = strdup(uid)) == NULL || (op->scratch = tm_batch_new()) == NULL))
        rc = TM_ENOMEM;
    if (rc == 0)
        rc = tm_store_batch_new(store, &op->wb);
    if (rc != 0) {
        tm_upsert_free(op);
        return rc;
    }
    *out = op;
    return 0;
}

tm_upsert_t *tm_upsert_free(tm_upsert_t *op)
{
    if (op == NULL)
        return NULL;
    tm_store_batch_free(op->wb);
    tm_batch_unref(op->scratch);
    tm_buf_release(&op->key_old);
    tm_buf_release(&op->key_new);
    tm_buf_release(&op->stored);
    tm_buf_release(&op->ser);
    free(op->uid);
    free(op);
    return NULL;
}

void tm_upsert_set_owner(tm_upsert_t *op, int kg_first, int kg_last, bool keyless)
{
    op->kg_first = kg_first;
    op->kg_last = kg_last;
    op->keyless = keyless;
}

static bool owned(const tm_upsert_t *op, const tm_buf_t *key)
{
    int kg = tm_keygroup_of(key->data, key->len, op->maxp);
    return kg >= op->kg_first && kg <= op->kg_last;
}

const tm_upsert_stats_t *tm_upsert_stats(const tm_upsert_t *op)
{
    return &op->stats;
}

/* ---- emitting ---- */

static int emit(tm_upsert_t *op, tm_batch_t *out, const tm_record_t *rec, tm_op_t kind,
                const tm_row_t *before, const tm_row_t *after)
{
    tm_record_t *r = tm_batch_add(out, rec->schema, kind);
    if (r == NULL)
        return TM_ENOMEM; /* invariant 1: room was checked, so only memory can fail */
    r->proc_us = rec->proc_us;
    r->src = rec->src;
    if (before != NULL && (r->before = tm_row_copy(out, rec->schema, before)) == NULL)
        return TM_ENOMEM;
    if (after != NULL && (r->after = tm_row_copy(out, rec->schema, after)) == NULL)
        return TM_ENOMEM;
    if (rec->op == TM_OP_MESSAGE) {
        if (rec->msg_prefix != NULL &&
            (r->msg_prefix = tm_arena_strdup(&out->arena, rec->msg_prefix)) == NULL)
            return TM_ENOMEM;
        if (rec->msg_content != NULL) {
            r->msg_content =
                (const uint8_t *)tm_arena_memdup(&out->arena, rec->msg_content, rec->msg_len);
            if (r->msg_content == NULL)
                return TM_ENOMEM;
        }
        r->msg_len = rec->msg_len;
    }
    op->stats.records_out++;
    return 0;
}

static int pass_through(tm_upsert_t *op, tm_batch_t *out, const tm_record_t *rec)
{
    return emit(op, out, rec, rec->op, rec->before, rec->after);
}

/* ---- state ---- */

/* Reads the state of `key`; on ST_FOUND *row is the stored image, decoded into scratch. */
static int lookup(tm_upsert_t *op, const tm_schema_t *s, int kg, const tm_buf_t *key,
                  state_t *st, tm_row_t **row, char *errstr, size_t errstr_size)
{
    *row = NULL;
    op->stats.state_reads++;
    int rc = tm_store_batch_get(op->wb, op->cf, kg, key->data, key->len, &op->stored, errstr,
                                errstr_size);
    if (rc == TM_ENOTFOUND) {
        *st = ST_ABSENT;
        return 0;
    }
    if (rc != 0)
        return rc;
    rc = tm_row_deserialize(s, op->stored.data, op->stored.len, op->scratch, row);
    if (rc == TM_EINVAL) {
        *st = ST_SHAPE; /* written under another schema shape (a schema change) */
        return 0;
    }
    if (rc != 0)
        return tm_seterr(errstr, errstr_size, rc == TM_ENOMEM ? rc : TM_ECORRUPT,
                         "upsert operator %s: the stored row of a key of %s.%s is unreadable",
                         op->uid, s->namespace ? s->namespace : "", s->table ? s->table : "");
    *st = ST_FOUND;
    return 0;
}

/*
 * The after image to store and emit: `after` itself, or, when it has
 * unchanged-TOAST datums and the stored row has them, a scratch copy with
 * those datums taken from the stored row.
 */
static const tm_row_t *fill_unavailable(tm_upsert_t *op, const tm_schema_t *s,
                                        const tm_row_t *after, const tm_row_t *stored)
{
    if (stored == NULL)
        return after;
    tm_row_t *m = NULL;
    for (int i = 0; i < s->ncols; i++) {
        if (tm_row_is_null(after, i) || !(after->vals[i].flags & TM_DATUM_UNAVAILABLE))
            continue;
        if (!tm_row_is_null(stored, i) && (stored->vals[i].flags & TM_DATUM_UNAVAILABLE))
            continue; /* the stored row does not know the value either */
        if (m == NULL) {
            /* Shallow: values point into the input batch or scratch, both alive meanwhile. */
            if ((m = tm_batch_new_row(op->scratch, s)) == NULL)
                return NULL;
            size_t words = ((size_t)s->ncols + 63) / 64;
            memcpy(m->nulls, after->nulls, (words ? words : 1) * sizeof(uint64_t));
            memcpy(m->vals, after->vals, sizeof(tm_datum_t) * (size_t)s->ncols);
        }
        m->vals[i] = stored->vals[i];
        tm_row_set_null(m, i, tm_row_is_null(stored, i));
        op->stats.toast_filled++;
    }
    return m != NULL ? m : after;
}

/*
 * The delete half: a delete of `key`, emitted with the stored row.  An
 * unknown key emits nothing (there is nothing downstream to retract).
 */
static int do_delete(tm_upsert_t *op, tm_batch_t *out, const tm_record_t *rec, const tm_buf_t *key,
                     const tm_row_t *src_before, char *errstr, size_t errstr_size)
{
    const tm_schema_t *s = rec->schema;
    int kg = tm_keygroup_of(key->data, key->len, op->maxp);
    state_t st;
    tm_row_t *stored;
    int rc = lookup(op, s, kg, key, &st, &stored, errstr, errstr_size);
    if (rc != 0)
        return rc;
    if (st == ST_ABSENT) {
        op->stats.unknown_deletes++;
        return 0;
    }
    if (st == ST_SHAPE)
        op->stats.shape_changes++;
    rc = emit(op, out, rec, TM_OP_DELETE, st == ST_FOUND ? stored : src_before, NULL);
    return rc != 0 ? rc : tm_store_batch_delete(op->wb, op->cf, kg, key->data, key->len);
}

/*
 * The insert-or-update half: stores `after` for `key` and emits what
 * changed.  `src_before` is the source's own before image for this key (NULL
 * if it has none), used only when the stored row cannot be read.
 */
static int do_upsert(tm_upsert_t *op, tm_batch_t *out, const tm_record_t *rec,
                     const tm_buf_t *key, const tm_row_t *src_before, char *errstr,
                     size_t errstr_size)
{
    const tm_schema_t *s = rec->schema;
    int kg = tm_keygroup_of(key->data, key->len, op->maxp);
    state_t st;
    tm_row_t *stored;
    int rc = lookup(op, s, kg, key, &st, &stored, errstr, errstr_size);
    if (rc != 0)
        return rc;
    const tm_row_t *after = fill_unavailable(op, s, rec->after, st == ST_FOUND ? stored : NULL);
    if (after == NULL)
        return TM_ENOMEM;
    tm_buf_clear(&op->ser);
    if ((rc = tm_row_serialize(s, after, &op->ser)) != 0)
        return rc;
    switch (st) {
    case ST_FOUND:
        if (op->ser.len == op->stored.len &&
            memcmp(op->ser.data, op->stored.data, op->ser.len) == 0) {
            op->stats.duplicates++;
            return 0;
        }
        if (rec->op != TM_OP_UPDATE)
            op->stats.upgraded_inserts++;
        rc = emit(op, out, rec, TM_OP_UPDATE, stored, after);
        break;
    case ST_SHAPE:
        op->stats.shape_changes++;
        rc = emit(op, out, rec, TM_OP_UPDATE, src_before, after);
        break;
    case ST_ABSENT:
        if (rec->op == TM_OP_UPDATE) {
            op->stats.unknown_updates++;
            rc = emit(op, out, rec, TM_OP_CREATE, NULL, after);
        } else {
            rc = emit(op, out, rec, rec->op, NULL, after);
        }
        break;
    }
    return rc != 0 ? rc
                   : tm_store_batch_put(op->wb, op->cf, kg, key->data, key->len, op->ser.data,
                                        op->ser.len);
}

static int do_truncate(tm_upsert_t *op, tm_batch_t *out, const tm_record_t *rec, char *errstr,
                       size_t errstr_size)
{
    if (rec->schema != NULL && rec->schema->nkeys > 0) {
        /* Pending writes first, or they would land after the range deletion. */
        int rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
        tm_buf_clear(&op->key_old);
        if (rc == 0)
            rc = append_tag(rec->schema, &op->key_old);
        if (rc == 0)
            rc = tm_store_delete_prefix(op->store, op->cf, op->key_old.data, op->key_old.len,
                                        errstr, errstr_size);
        if (rc != 0)
            return rc;
        op->stats.truncates++;
    }
    return op->keyless ? pass_through(op, out, rec) : 0;
}

static int process_one(tm_upsert_t *op, tm_batch_t *out, const tm_record_t *rec, char *errstr,
                       size_t errstr_size)
{
    const tm_schema_t *s = rec->schema;
    int rc;
    switch (rec->op) {
    case TM_OP_TRUNCATE:
        return do_truncate(op, out, rec, errstr, errstr_size);
    case TM_OP_READ:
    case TM_OP_CREATE:
    case TM_OP_UPDATE:
    case TM_OP_DELETE:
        break;
    default:
        return op->keyless ? pass_through(op, out, rec) : 0;
    }
    if (s == NULL)
        goto no_key;
    if (rec->op == TM_OP_DELETE) {
        rc = state_key(s, rec->before, &op->key_old);
        if (rc == TM_EINVAL)
            goto no_key;
        if (rc != 0)
            return rc;
        if (!owned(op, &op->key_old))
            goto foreign;
        return do_delete(op, out, rec, &op->key_old, rec->before, errstr, errstr_size);
    }
    rc = state_key(s, rec->after, &op->key_new);
    if (rc == TM_EINVAL)
        goto no_key;
    if (rc != 0)
        return rc;
    if (rec->op == TM_OP_UPDATE && rec->before != NULL) {
        rc = state_key(s, rec->before, &op->key_old);
        if (rc == TM_ENOMEM)
            return rc;
        if (rc == 0 && !same_key(&op->key_old, &op->key_new)) {
            /*
             * The primary key changed: retract the old key, then upsert the
             * new one; each half only where its key group is owned.
             */
            bool old_here = owned(op, &op->key_old), new_here = owned(op, &op->key_new);
            if (!old_here && !new_here)
                goto foreign;
            op->stats.key_changes++;
            if (old_here &&
                (rc = do_delete(op, out, rec, &op->key_old, rec->before, errstr, errstr_size)) != 0)
                return rc;
            return new_here ? do_upsert(op, out, rec, &op->key_new, NULL, errstr, errstr_size) : 0;
        }
    }
    if (!owned(op, &op->key_new))
        goto foreign;
    return do_upsert(op, out, rec, &op->key_new, rec->before, errstr, errstr_size);
no_key:
    op->stats.no_key++;
    return op->keyless ? pass_through(op, out, rec) : 0;
foreign:
    op->stats.foreign++;
    return 0;
}

int tm_upsert_process(tm_upsert_t *op, const tm_batch_t *in, uint32_t start, tm_batch_t *out,
                      char *errstr, size_t errstr_size)
{
    uint32_t i = start;
    for (; i < in->count; i++) {
        const tm_record_t *rec = &in->recs[i];
        uint32_t need = rec->op == TM_OP_UPDATE ? 2 : 1;
        if (out->count + need > TM_BATCH_MAX)
            break;
        tm_arena_reset(&op->scratch->arena);
        int rc = process_one(op, out, rec, errstr, errstr_size);
        if (rc != 0)
            return rc;
        op->stats.records_in++;
    }
    /* Invariant 1 of upsert.h: state matches what was emitted once we return. */
    int rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    return rc != 0 ? rc : (int)(i - start);
}

/* ---- the operator.h face ---- */

typedef struct upsert_op {
    tm_upsert_t *u;
    const tm_operator_ctx_t *ctx;
} upsert_op_t;

static int op_process(tm_operator_t *op, int input, const tm_batch_t *batch, tm_collector_t *out,
                      char *errstr, size_t errstr_size)
{
    upsert_op_t *o = (upsert_op_t *)op;
    (void)input;
    uint32_t start = 0;
    while (start < batch->count) {
        tm_batch_t *b = tm_batch_new();
        if (b == NULL)
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "upsert operator %s: out of memory",
                             o->ctx->uid);
        uint64_t reads = tm_upsert_stats(o->u)->state_reads;
        int n = tm_upsert_process(o->u, batch, start, b, errstr, errstr_size);
        atomic_fetch_add_explicit(&o->ctx->metrics->state_reads,
                                  tm_upsert_stats(o->u)->state_reads - reads,
                                  memory_order_relaxed);
        if (n < 0) {
            tm_batch_unref(b);
            return n;
        }
        start += (uint32_t)n;
        if (b->count == 0) {
            tm_batch_unref(b);
            continue;
        }
        int rc = tm_collector_emit(out, b);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void op_free(tm_operator_t *op)
{
    upsert_op_t *o = (upsert_op_t *)op;
    if (o == NULL)
        return;
    tm_upsert_free(o->u);
    free(o);
}

static const tm_operator_ops_t upsert_ops = {
    .name = "upsert",
    .ninputs = 1,
    .process = op_process,
    .free = op_free,
};

int tm_upsert_op_new(const void *spec, const tm_operator_ctx_t *ctx,
                     const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                     size_t errstr_size)
{
    (void)spec;
    *out = NULL;
    if (ctx->store == NULL)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "upsert operator %s needs a state store", ctx->uid);
    upsert_op_t *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return TM_ENOMEM;
    int rc = tm_upsert_new(ctx->store, ctx->uid, ctx->max_parallelism, &o->u, errstr,
                           errstr_size);
    if (rc != 0) {
        free(o);
        return rc;
    }
    o->ctx = ctx;
    /* The exchange already routes by key group; keyless records reach every subtask. */
    tm_upsert_set_owner(o->u, ctx->kg_first, ctx->kg_last, ctx->subtask == 0);
    *ops = &upsert_ops;
    *out = (tm_operator_t *)o;
    return 0;
}
