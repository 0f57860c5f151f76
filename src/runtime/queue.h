/*
 * queue.h — bounded queue of events between data-plane threads.
 *
 * Events are batches and the control events that travel *between* batches
 * (DESIGN §2): barrier(N), watermark(t), schema change, sync request and end of
 * input.  The bound is what creates back-pressure: a full queue makes the
 * producer wait (with a timeout, so a PostgreSQL source can keep answering
 * keepalives meanwhile).
 *
 * Invariants:
 *   1. FIFO: events leave in the order they entered, per producer.
 *   2. A queue owns the references held by the events inside it; popping
 *      transfers them to the consumer.
 *
 * Thread: any number of producers, one consumer.  A mutex and two condition
 * variables; at ~1000 rows per event the lock is not the bottleneck.
 */
#ifndef TM_RUNTIME_QUEUE_H
#define TM_RUNTIME_QUEUE_H

#include "core/row.h"
#include "core/schema.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef enum tm_event_kind {
    TM_EV_BATCH = 1,
    TM_EV_BARRIER,       /* checkpoint barrier; id in u.id */
    TM_EV_WATERMARK,     /* event-time watermark, µs, in u.ts_us */
    TM_EV_SCHEMA_CHANGE, /* new schema version in u.schema (owned ref) */
    TM_EV_SYNC,          /* make everything so far durable; id in u.id */
    TM_EV_END,           /* this producer has no more input */
    TM_EV_IDLE,          /* producer idle status: u.id 1 = idle (valves ignore it), 0 = active */
} tm_event_kind_t;

typedef struct tm_event {
    tm_event_kind_t kind;
    int producer; /* the consumer's input slot it arrived on, set by the runtime */
    int source;   /* TM_EV_SYNC: index of the source that asked for it */
    union {
        tm_batch_t *batch;
        uint64_t id;
        int64_t ts_us;
        tm_schema_t *schema;
    } u;
} tm_event_t;

typedef struct tm_queue {
    pthread_mutex_t lock;
    pthread_cond_t not_empty;
    pthread_cond_t not_full;
    tm_event_t *ring;
    uint32_t cap, head, count;
} tm_queue_t;

int tm_queue_init(tm_queue_t *q, uint32_t capacity);
/* Releases whatever events are still inside. */
void tm_queue_destroy(tm_queue_t *q);
/*
 * Pushes ev, waiting at most timeout_ms for room (<0: forever).  Returns 0 or
 * TM_EAGAIN; on TM_EAGAIN the caller keeps its references.
 */
int tm_queue_push(tm_queue_t *q, const tm_event_t *ev, int timeout_ms);
/* Pops into *ev, waiting at most timeout_ms (<0: forever).  0 or TM_EAGAIN. */
int tm_queue_pop(tm_queue_t *q, tm_event_t *ev, int timeout_ms);
uint32_t tm_queue_count(tm_queue_t *q);
/* Releases the references an event holds. */
void tm_event_release(tm_event_t *ev);

#endif
