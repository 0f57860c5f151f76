/* Unit tests: the bounded event queue (order, bound, timeouts, threads). */
#include "core/error.h"
#include "runtime/queue.h"
#include "tm_test.h"

#include <pthread.h>

#define N_EVENTS 20000

static void *producer(void *arg)
{
    tm_queue_t *q = arg;
    for (uint64_t i = 1; i <= N_EVENTS; i++) {
        tm_event_t ev = {.kind = TM_EV_BARRIER};
        ev.u.id = i;
        while (tm_queue_push(q, &ev, 10) != 0)
            ;
    }
    return NULL;
}

static void test_fifo_across_threads(void)
{
    tm_queue_t q;
    TM_REQUIRE(tm_queue_init(&q, 4) == 0);
    pthread_t t;
    pthread_create(&t, NULL, producer, &q);
    uint64_t expect = 1;
    bool ordered = true;
    while (expect <= N_EVENTS) {
        tm_event_t ev;
        if (tm_queue_pop(&q, &ev, 1000) != 0)
            break;
        if (ev.u.id != expect)
            ordered = false;
        expect++;
    }
    pthread_join(t, NULL);
    TM_CHECK(ordered);
    TM_CHECK_INT(expect, N_EVENTS + 1);
    tm_queue_destroy(&q);
}

static void test_bound_and_timeout(void)
{
    tm_queue_t q;
    TM_REQUIRE(tm_queue_init(&q, 2) == 0);
    tm_event_t ev = {.kind = TM_EV_WATERMARK};
    TM_CHECK(tm_queue_push(&q, &ev, 0) == 0);
    TM_CHECK(tm_queue_push(&q, &ev, 0) == 0);
    TM_CHECK(tm_queue_push(&q, &ev, 0) == TM_EAGAIN);
    TM_CHECK(tm_queue_push(&q, &ev, 20) == TM_EAGAIN);
    TM_CHECK_INT(tm_queue_count(&q), 2);
    TM_CHECK(tm_queue_pop(&q, &ev, 0) == 0);
    TM_CHECK(tm_queue_pop(&q, &ev, 0) == 0);
    TM_CHECK(tm_queue_pop(&q, &ev, 20) == TM_EAGAIN);
    tm_queue_destroy(&q);
}

static void test_destroy_releases_batches(void)
{
    tm_queue_t q;
    TM_REQUIRE(tm_queue_init(&q, 4) == 0);
    tm_schema_t *s = tm_schema_new(1);
    tm_batch_t *b = tm_batch_new();
    tm_batch_add(b, s, TM_OP_CREATE);
    tm_event_t ev = {.kind = TM_EV_BATCH};
    ev.u.batch = b;
    TM_CHECK(tm_queue_push(&q, &ev, 0) == 0);
    TM_CHECK_INT(atomic_load(&s->refcount), 2);
    tm_queue_destroy(&q);
    TM_CHECK_INT(atomic_load(&s->refcount), 1);
    tm_schema_unref(s);
}

int main(void)
{
    TM_RUN(test_fifo_across_threads);
    TM_RUN(test_bound_and_timeout);
    TM_RUN(test_destroy_releases_batches);
    return tm_test_done();
}
