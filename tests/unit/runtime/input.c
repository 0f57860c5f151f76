/* Unit tests: barrier alignment, the watermark valve and END counting (runtime/input.h). */
#include "runtime/input.h"
#include "core/error.h"
#include "tm_test.h"

#include <stdlib.h>

static tm_event_t ev_batch(int slot, uint64_t token)
{
    tm_event_t ev = {.kind = TM_EV_BATCH, .producer = slot};
    ev.u.batch = tm_batch_new();
    ev.u.batch->ack_token = token;
    return ev;
}

static tm_event_t ev_ctl(tm_event_kind_t kind, int slot, uint64_t id)
{
    tm_event_t ev = {.kind = kind, .producer = slot};
    ev.u.id = id;
    return ev;
}

/* Slots that delivered the barrier are held; the others pass; alignment when all delivered. */
static void test_alignment_holds_and_replays_in_order(void)
{
    tm_input_t in;
    TM_REQUIRE(tm_input_init(&in, 3) == 0);
    tm_event_t e = ev_batch(0, 1);
    TM_CHECK_INT(tm_input_offer(&in, &e), 0); /* nothing aligning yet */
    tm_event_release(&e);

    e = ev_ctl(TM_EV_BARRIER, 1, 7);
    TM_CHECK_INT(tm_input_offer(&in, &e), 0);
    TM_CHECK_INT((int)tm_input_barrier(&in, 1, 7), 0);
    /* Slot 1 delivered 7: its next events are held, in order. */
    for (uint64_t t = 10; t < 13; t++) {
        e = ev_batch(1, t);
        TM_CHECK_INT(tm_input_offer(&in, &e), 1);
    }
    /* Slot 0 has not delivered: it passes. */
    e = ev_batch(0, 2);
    TM_CHECK_INT(tm_input_offer(&in, &e), 0);
    tm_event_release(&e);
    e = ev_ctl(TM_EV_BARRIER, 0, 7);
    TM_CHECK_INT(tm_input_offer(&in, &e), 0);
    TM_CHECK_INT((int)tm_input_barrier(&in, 0, 7), 0);
    e = ev_batch(0, 20);
    TM_CHECK_INT(tm_input_offer(&in, &e), 1);
    /* The last slot completes the alignment. */
    e = ev_ctl(TM_EV_BARRIER, 2, 7);
    TM_CHECK_INT(tm_input_offer(&in, &e), 0);
    TM_CHECK_INT((int)tm_input_barrier(&in, 2, 7), 7);
    size_t n;
    tm_event_t *held = tm_input_take_held(&in, &n);
    TM_REQUIRE(n == 4);
    uint64_t want[] = {10, 11, 12, 20};
    for (size_t i = 0; i < n; i++) {
        TM_CHECK(held[i].kind == TM_EV_BATCH);
        TM_CHECK_INT((long long)held[i].u.batch->ack_token, (long long)want[i]);
        tm_event_release(&held[i]);
    }
    free(held);
    /* After alignment nothing is held. */
    e = ev_batch(1, 30);
    TM_CHECK_INT(tm_input_offer(&in, &e), 0);
    tm_event_release(&e);
    tm_input_destroy(&in);
}

/* An input that ends completes an alignment it would otherwise block. */
static void test_end_completes_alignment(void)
{
    tm_input_t in;
    TM_REQUIRE(tm_input_init(&in, 2) == 0);
    TM_CHECK_INT((int)tm_input_barrier(&in, 0, 3), 0);
    tm_event_t e = ev_ctl(TM_EV_END, 0, 0);
    /* END of a slot that delivered the barrier is held like any of its events. */
    TM_CHECK_INT(tm_input_offer(&in, &e), 1);
    bool wm;
    TM_CHECK_INT((int)tm_input_end(&in, 1, &wm), 3);
    TM_CHECK(!tm_input_all_ended(&in));
    size_t n;
    tm_event_t *held = tm_input_take_held(&in, &n);
    TM_REQUIRE(n == 1 && held[0].kind == TM_EV_END);
    TM_CHECK_INT((int)tm_input_end(&in, held[0].producer, &wm), 0);
    free(held);
    TM_CHECK(tm_input_all_ended(&in));
    tm_input_destroy(&in);
}

/* Holding is bounded: past the limit the event is released and TM_ENOMEM returned. */
static void test_hold_limit_fails_cleanly(void)
{
    tm_input_t in;
    TM_REQUIRE(tm_input_init(&in, 2) == 0);
    tm_input_set_hold_limit(&in, 2);
    tm_input_barrier(&in, 0, 1);
    tm_event_t e = ev_batch(0, 1);
    TM_CHECK_INT(tm_input_offer(&in, &e), 1);
    e = ev_batch(0, 2);
    TM_CHECK_INT(tm_input_offer(&in, &e), 1);
    e = ev_batch(0, 3);
    TM_CHECK_INT(tm_input_offer(&in, &e), TM_ENOMEM);
    TM_CHECK(e.u.batch == NULL); /* released, not leaked */
    tm_input_destroy(&in);       /* releases the two held batches */
}

/* The valve: minimum over live inputs, monotonic, ended and idle inputs do not hold it back. */
static void test_watermark_valve(void)
{
    tm_input_t in;
    TM_REQUIRE(tm_input_init(&in, 3) == 0);
    TM_CHECK(!tm_input_watermark(&in, 0, 100)); /* slots 1, 2 have none yet */
    TM_CHECK(!tm_input_watermark(&in, 1, 50));
    TM_CHECK(tm_input_watermark(&in, 2, 70));
    TM_CHECK_INT(tm_input_watermark_out(&in), 50);
    TM_CHECK(!tm_input_watermark(&in, 1, 40)); /* a slot going back changes nothing */
    TM_CHECK_INT(tm_input_watermark_out(&in), 50);
    TM_CHECK(tm_input_watermark(&in, 1, 90));
    TM_CHECK_INT(tm_input_watermark_out(&in), 70);
    /* Slot 2 goes idle: 90 is the minimum of the rest. */
    TM_CHECK(tm_input_set_idle(&in, 2, true));
    TM_CHECK_INT(tm_input_watermark_out(&in), 90);
    /* Back to active with 70: the output never goes back. */
    TM_CHECK(!tm_input_set_idle(&in, 2, false));
    TM_CHECK_INT(tm_input_watermark_out(&in), 90);
    TM_CHECK(!tm_input_watermark(&in, 2, 80));
    TM_CHECK(!tm_input_watermark(&in, 2, 95)); /* slot 1 (90) is now the minimum */
    TM_CHECK_INT(tm_input_watermark_out(&in), 90);
    /* Slot 1 (90) ends: min(100, 95). */
    bool wm;
    tm_input_end(&in, 1, &wm);
    TM_CHECK(wm);
    TM_CHECK_INT(tm_input_watermark_out(&in), 95);
    tm_input_end(&in, 2, &wm);
    TM_CHECK(wm);
    TM_CHECK_INT(tm_input_watermark_out(&in), 100);
    /* Every input ended: nothing more to say. */
    tm_input_end(&in, 0, &wm);
    TM_CHECK(!wm);
    TM_CHECK(tm_input_all_ended(&in));
    tm_input_destroy(&in);
}

int main(void)
{
    TM_RUN(test_alignment_holds_and_replays_in_order);
    TM_RUN(test_end_completes_alignment);
    TM_RUN(test_hold_limit_fails_cleanly);
    TM_RUN(test_watermark_valve);
    return tm_test_done();
}
