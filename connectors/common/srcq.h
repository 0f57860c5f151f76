/*
 * srcq.h — the ordered output queue of a source: batches, schema changes and
 * checkpoint barriers waiting to be handed to the runtime.
 *
 * Role: the shared source-output path.  A source thread produces events
 * faster than it may block on the runtime: tm_source_emit() and its
 * siblings are called with a short timeout and may answer TM_EAGAIN, in
 * which case the same event must be offered again later (connector.h).
 * This queue keeps the events in production order and retries them, so a
 * source only pushes and flushes.  The PostgreSQL and Kafka sources predate
 * it and keep private copies of the same logic; the MySQL source is its
 * first user, and they can move to it.
 *
 * Invariants:
 *   1. Events leave in the order they were pushed, whatever their kind.
 *   2. The queue owns what it holds: one batch reference, one schema
 *      reference.  A flushed batch belongs to the runtime; a flushed schema
 *      event's reference is dropped here (the runtime took its own).
 *   3. On TM_EAGAIN/TM_ESTOPPED the head stays, to be offered again.
 *
 * Thread: one source thread.
 */
#ifndef TM_COMMON_SRCQ_H
#define TM_COMMON_SRCQ_H

#include "runtime/connector.h"

#include <stdbool.h>
#include <stdint.h>

#define TM_SRCQ_MAX 64

typedef struct tm_srcq_item {
    tm_batch_t *batch;      /* a batch ... */
    tm_schema_t *schema;    /* ... or a schema change ... */
    uint64_t barrier;       /* ... or checkpoint barrier `barrier` */
    uint64_t token;         /* the barrier's ack token */
    char position[512];     /* the barrier's position string */
} tm_srcq_item_t;

typedef struct tm_srcq {
    tm_srcq_item_t items[TM_SRCQ_MAX];
    int head, len;
} tm_srcq_t;

/* Takes ownership of batch; TM_ENOMEM when full (the caller still owns it). */
int tm_srcq_push_batch(tm_srcq_t *q, tm_batch_t *batch);
/* Takes the caller's schema reference; TM_ENOMEM when full (the caller keeps it). */
int tm_srcq_push_schema(tm_srcq_t *q, tm_schema_t *schema);
/* Queues barrier `id`, complete up to `token` (`position` is its text, may be NULL). */
int tm_srcq_push_barrier(tm_srcq_t *q, uint64_t id, uint64_t token, const char *position);
/* True if barrier `id` is queued. */
bool tm_srcq_has_barrier(const tm_srcq_t *q, uint64_t id);
/* Free slots (a barrier needs one after the batch sealed before it). */
static inline int tm_srcq_room(const tm_srcq_t *q)
{
    return TM_SRCQ_MAX - q->len;
}
/*
 * Hands queued events to the runtime in order, each waiting at most
 * timeout_ms; 0 when the queue is empty, else TM_EAGAIN or TM_ESTOPPED from
 * the runtime with the rest still queued.
 */
int tm_srcq_flush(tm_srcq_t *q, tm_source_ctx_t *ctx, int timeout_ms);
/* Drops everything queued (at the end, or after a failure). */
void tm_srcq_clear(tm_srcq_t *q);

#endif
