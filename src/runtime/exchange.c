/*
 * exchange.c — forward, hash, broadcast and single routing of batches to
 * consumer subtasks (see exchange.h for the invariants).
 *
 * Thread: the producer's.
 */
#include "runtime/exchange.h"
#include "core/error.h"
#include "state/keygroup.h"

#include <stdlib.h>
#include <string.h>

int tm_exchange_init(tm_exchange_t *x, tm_exchange_kind_t kind, const tm_exchange_key_t *key,
                     int ntargets, int max_parallelism, int self, bool carry_tokens)
{
    memset(x, 0, sizeof(*x));
    if (ntargets < 1 || (kind == TM_EXCHANGE_HASH && (key == NULL || key->encode == NULL)))
        return TM_EINVAL;
    x->kind = kind;
    if (key != NULL)
        x->key = *key;
    x->ntargets = ntargets;
    x->max_parallelism = max_parallelism;
    x->self = self;
    x->carry_tokens = carry_tokens;
    tm_buf_init(&x->kb);
    tm_buf_init(&x->kb2);
    x->child = calloc((size_t)ntargets, sizeof(*x->child));
    return x->child != NULL ? 0 : TM_ENOMEM;
}

void tm_exchange_destroy(tm_exchange_t *x)
{
    tm_buf_release(&x->kb);
    tm_buf_release(&x->kb2);
    free(x->child);
    memset(x, 0, sizeof(*x));
}

int tm_exchange_control_targets(const tm_exchange_t *x, int *targets)
{
    switch (x->kind) {
    case TM_EXCHANGE_FORWARD:
        targets[0] = x->self < x->ntargets ? x->self : 0;
        return 1;
    case TM_EXCHANGE_SINGLE:
        targets[0] = 0;
        return 1;
    default:
        for (int t = 0; t < x->ntargets; t++)
            targets[t] = t;
        return x->ntargets;
    }
}

static int encode(tm_exchange_t *x, tm_buf_t *buf, const tm_schema_t *schema, const tm_row_t *row)
{
    tm_buf_clear(buf);
    if (schema == NULL || row == NULL)
        return TM_EINVAL;
    return x->key.encode(x->key.arg, schema, row, buf);
}

static int target_of_buf(const tm_exchange_t *x, const tm_buf_t *buf)
{
    int kg = tm_keygroup_of(buf->data, buf->len, x->max_parallelism);
    return kg < 0 ? kg : tm_keygroup_worker(kg, x->ntargets, x->max_parallelism);
}

int tm_exchange_target_of(tm_exchange_t *x, const tm_schema_t *schema, const tm_row_t *row)
{
    int rc = encode(x, &x->kb, schema, row);
    return rc != 0 ? rc : target_of_buf(x, &x->kb);
}

/* Delivers target t's child (if any), stamping it with the token when it is the last. */
static int flush_child(tm_exchange_t *x, int t, tm_exchange_deliver_fn deliver, void *arg)
{
    tm_batch_t *c = x->child[t];
    x->child[t] = NULL;
    return c != NULL ? deliver(arg, t, c) : 0;
}

/* Appends a shallow copy of `rec` (op `op`, images given) to target t's child. */
static int add(tm_exchange_t *x, tm_batch_t *parent, int t, const tm_record_t *rec, tm_op_t op,
               tm_row_t *before, tm_row_t *after, tm_exchange_deliver_fn deliver, void *arg)
{
    if (x->child[t] != NULL && tm_batch_full(x->child[t])) {
        int rc = flush_child(x, t, deliver, arg);
        if (rc != 0)
            return rc;
    }
    if (x->child[t] == NULL && (x->child[t] = tm_batch_new_child(parent)) == NULL)
        return TM_ENOMEM;
    tm_record_t *r = tm_batch_add(x->child[t], rec->schema, op);
    if (r == NULL)
        return TM_ENOMEM;
    /* Rows, strings and message payloads stay in the parent's arena (exchange.h). */
    *r = *rec;
    r->op = op;
    r->before = before;
    r->after = after;
    return 0;
}

static int add_all(tm_exchange_t *x, tm_batch_t *parent, const tm_record_t *rec,
                   tm_exchange_deliver_fn deliver, void *arg)
{
    for (int t = 0; t < x->ntargets; t++) {
        int rc = add(x, parent, t, rec, rec->op, rec->before, rec->after, deliver, arg);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static bool same(const tm_buf_t *a, const tm_buf_t *b)
{
    return a->len == b->len && memcmp(a->data, b->data, a->len) == 0;
}

/* Routes one record under HASH. */
static int route_one(tm_exchange_t *x, tm_batch_t *parent, const tm_record_t *rec,
                     tm_exchange_deliver_fn deliver, void *arg)
{
    tm_row_t *key_row = rec->op == TM_OP_DELETE ? rec->before : rec->after;
    if (rec->op == TM_OP_TRUNCATE || rec->op == TM_OP_MESSAGE || key_row == NULL)
        return add_all(x, parent, rec, deliver, arg);
    int rc = encode(x, &x->kb, rec->schema, key_row);
    if (rc == TM_EINVAL)
        return add_all(x, parent, rec, deliver, arg);
    if (rc != 0)
        return rc;
    int t = target_of_buf(x, &x->kb);
    if (t < 0)
        return t;
    if (rec->op == TM_OP_UPDATE && rec->before != NULL) {
        rc = encode(x, &x->kb2, rec->schema, rec->before);
        if (rc != 0 && rc != TM_EINVAL)
            return rc;
        if (rc == 0 && !same(&x->kb, &x->kb2)) {
            /* The key changed: retract the old key where it lives, insert the new one. */
            int tb = target_of_buf(x, &x->kb2);
            if (tb < 0)
                return tb;
            rc = add(x, parent, tb, rec, TM_OP_DELETE, rec->before, NULL, deliver, arg);
            return rc != 0 ? rc : add(x, parent, t, rec, TM_OP_CREATE, NULL, rec->after, deliver,
                                      arg);
        }
    }
    return add(x, parent, t, rec, rec->op, rec->before, rec->after, deliver, arg);
}

/* Invariant 2: each target's last batch from this parent carries its token. */
static int finish_tokens(tm_exchange_t *x, tm_batch_t *parent, tm_exchange_deliver_fn deliver,
                         void *arg)
{
    int rc = 0;
    for (int t = 0; t < x->ntargets && rc == 0; t++) {
        bool token = x->carry_tokens && parent->ack_token != 0;
        if (x->child[t] == NULL && token && (x->child[t] = tm_batch_new_child(parent)) == NULL)
            rc = TM_ENOMEM;
        if (rc == 0 && x->child[t] != NULL) {
            x->child[t]->ack_token = parent->ack_token;
            rc = flush_child(x, t, deliver, arg);
        }
    }
    for (int t = 0; t < x->ntargets; t++)
        x->child[t] = tm_batch_unref(x->child[t]);
    return rc;
}

int tm_exchange_route(tm_exchange_t *x, tm_batch_t *batch, tm_exchange_deliver_fn deliver,
                      void *arg)
{
    int targets[1];
    switch (x->kind) {
    case TM_EXCHANGE_FORWARD:
    case TM_EXCHANGE_SINGLE:
        tm_exchange_control_targets(x, targets);
        return deliver(arg, targets[0], tm_batch_ref(batch));
    case TM_EXCHANGE_BROADCAST:
        for (int t = 0; t < x->ntargets; t++) {
            int rc = deliver(arg, t, tm_batch_ref(batch));
            if (rc != 0)
                return rc;
        }
        return 0;
    case TM_EXCHANGE_HASH:
        break;
    default:
        return TM_EINVAL;
    }
    if (x->ntargets == 1)
        return deliver(arg, 0, tm_batch_ref(batch));
    int rc = 0;
    for (uint32_t i = 0; i < batch->count && rc == 0; i++)
        rc = route_one(x, batch, &batch->recs[i], deliver, arg);
    if (rc != 0) {
        for (int t = 0; t < x->ntargets; t++)
            x->child[t] = tm_batch_unref(x->child[t]);
        return rc;
    }
    return finish_tokens(x, batch, deliver, arg);
}
