/*
 * srcq.c — the ordered output queue of a source (see srcq.h).
 */
#include "common/srcq.h"

#include "core/error.h"

#include <stdio.h>
#include <string.h>

static tm_srcq_item_t *at(tm_srcq_t *q, int i)
{
    return &q->items[(q->head + i) % TM_SRCQ_MAX];
}

static tm_srcq_item_t *push(tm_srcq_t *q)
{
    if (q->len == TM_SRCQ_MAX)
        return NULL;
    tm_srcq_item_t *it = at(q, q->len++);
    it->batch = NULL;
    it->schema = NULL;
    it->barrier = 0;
    it->token = 0;
    it->position[0] = '\0';
    return it;
}

int tm_srcq_push_batch(tm_srcq_t *q, tm_batch_t *batch)
{
    tm_srcq_item_t *it = push(q);
    if (it == NULL)
        return TM_ENOMEM;
    it->batch = batch;
    return 0;
}

int tm_srcq_push_schema(tm_srcq_t *q, tm_schema_t *schema)
{
    tm_srcq_item_t *it = push(q);
    if (it == NULL)
        return TM_ENOMEM;
    it->schema = schema;
    return 0;
}

int tm_srcq_push_barrier(tm_srcq_t *q, uint64_t id, uint64_t token, const char *position)
{
    tm_srcq_item_t *it = push(q);
    if (it == NULL)
        return TM_ENOMEM;
    it->barrier = id;
    it->token = token;
    snprintf(it->position, sizeof(it->position), "%s", position ? position : "");
    return 0;
}

bool tm_srcq_has_barrier(const tm_srcq_t *q, uint64_t id)
{
    for (int i = 0; i < q->len; i++)
        if (q->items[(q->head + i) % TM_SRCQ_MAX].barrier == id)
            return true;
    return false;
}

int tm_srcq_flush(tm_srcq_t *q, tm_source_ctx_t *ctx, int timeout_ms)
{
    while (q->len > 0) {
        tm_srcq_item_t *it = at(q, 0);
        int rc;
        if (it->batch != NULL)
            rc = tm_source_emit(ctx, it->batch, timeout_ms);
        else if (it->barrier != 0)
            rc = tm_source_emit_barrier(ctx, it->barrier, it->token, it->position, timeout_ms);
        else
            rc = tm_source_emit_schema(ctx, it->schema, timeout_ms);
        if (rc != 0)
            return rc;
        /* Invariant 2: the batch is the runtime's now; the schema event took its own ref. */
        tm_schema_unref(it->schema);
        it->batch = NULL;
        it->schema = NULL;
        it->barrier = 0;
        q->head = (q->head + 1) % TM_SRCQ_MAX;
        q->len--;
    }
    /*
     * Everything is downstream: the runtime's watermark housekeeping (idle
     * partitions, a watermark that waited for room).  TM_EAGAIN loses nothing.
     */
    int rc = tm_source_tick(ctx, 0);
    return rc == TM_ESTOPPED ? rc : 0;
}

void tm_srcq_clear(tm_srcq_t *q)
{
    for (int i = 0; i < q->len; i++) {
        tm_srcq_item_t *it = at(q, i);
        tm_batch_unref(it->batch);
        tm_schema_unref(it->schema);
    }
    q->head = q->len = 0;
}
