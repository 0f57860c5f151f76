/*
 * queue.c — bounded multi-producer/single-consumer event queue (see queue.h).
 */
#include "runtime/queue.h"
#include "core/error.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

int tm_queue_init(tm_queue_t *q, uint32_t capacity)
{
    q->ring = calloc(capacity, sizeof(tm_event_t));
    if (q->ring == NULL)
        return TM_ENOMEM;
    q->cap = capacity;
    q->head = 0;
    q->count = 0;
    pthread_mutex_init(&q->lock, NULL);
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&q->not_empty, &ca);
    pthread_cond_init(&q->not_full, &ca);
    pthread_condattr_destroy(&ca);
    return 0;
}

void tm_event_release(tm_event_t *ev)
{
    switch (ev->kind) {
    case TM_EV_BATCH:
        ev->u.batch = tm_batch_unref(ev->u.batch);
        break;
    case TM_EV_SCHEMA_CHANGE:
        ev->u.schema = tm_schema_unref(ev->u.schema);
        break;
    default:
        break;
    }
}

void tm_queue_destroy(tm_queue_t *q)
{
    if (q->ring == NULL)
        return;
    while (q->count > 0) {
        tm_event_release(&q->ring[q->head]);
        q->head = (q->head + 1) % q->cap;
        q->count--;
    }
    free(q->ring);
    q->ring = NULL;
    pthread_mutex_destroy(&q->lock);
    pthread_cond_destroy(&q->not_empty);
    pthread_cond_destroy(&q->not_full);
}

static void deadline_after(struct timespec *ts, int timeout_ms)
{
    clock_gettime(CLOCK_MONOTONIC, ts);
    ts->tv_sec += timeout_ms / 1000;
    ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts->tv_nsec >= 1000000000L) {
        ts->tv_sec++;
        ts->tv_nsec -= 1000000000L;
    }
}

/* Waits on cond until pred holds or the deadline passes; lock held. */
#define WAIT_UNTIL(q, cond, pred, timeout_ms)                                                      \
    do {                                                                                           \
        struct timespec dl_;                                                                       \
        if ((timeout_ms) > 0)                                                                      \
            deadline_after(&dl_, (timeout_ms));                                                    \
        while (!(pred)) {                                                                          \
            if ((timeout_ms) == 0)                                                                 \
                break;                                                                             \
            if ((timeout_ms) < 0) {                                                                \
                pthread_cond_wait((cond), &(q)->lock);                                             \
            } else if (pthread_cond_timedwait((cond), &(q)->lock, &dl_) == ETIMEDOUT) {            \
                break;                                                                             \
            }                                                                                      \
        }                                                                                          \
    } while (0)

int tm_queue_push(tm_queue_t *q, const tm_event_t *ev, int timeout_ms)
{
    pthread_mutex_lock(&q->lock);
    WAIT_UNTIL(q, &q->not_full, q->count < q->cap, timeout_ms);
    if (q->count >= q->cap) {
        pthread_mutex_unlock(&q->lock);
        return TM_EAGAIN;
    }
    q->ring[(q->head + q->count) % q->cap] = *ev;
    q->count++;
    pthread_cond_signal(&q->not_empty);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

int tm_queue_pop(tm_queue_t *q, tm_event_t *ev, int timeout_ms)
{
    pthread_mutex_lock(&q->lock);
    WAIT_UNTIL(q, &q->not_empty, q->count > 0, timeout_ms);
    if (q->count == 0) {
        pthread_mutex_unlock(&q->lock);
        return TM_EAGAIN;
    }
    *ev = q->ring[q->head];
    q->head = (q->head + 1) % q->cap;
    q->count--;
    pthread_cond_broadcast(&q->not_full);
    pthread_mutex_unlock(&q->lock);
    return 0;
}

uint32_t tm_queue_count(tm_queue_t *q)
{
    pthread_mutex_lock(&q->lock);
    uint32_t n = q->count;
    pthread_mutex_unlock(&q->lock);
    return n;
}
