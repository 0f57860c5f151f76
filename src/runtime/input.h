/*
 * input.h — the one input module of every consumer of the data plane
 * (DESIGN §13): barrier alignment, the watermark valve and END counting over
 * the input slots of a sink or a stage subtask (and later of each input of a
 * two-input operator).
 *
 * A consumer has one slot per (edge, producer subtask) that feeds it; the
 * runtime stamps each event with its slot (tm_event_t.producer).
 *
 * Barrier alignment (DESIGN §6 step 2).  Once slot s delivered barrier N,
 * every later event of s is held back until every slot that has not ended
 * delivered N; then N is "aligned", the consumer acts on it and replays the
 * held events in arrival order.  An END of a slot that has not delivered N
 * also completes the alignment (an ended input sends no more barriers).
 *
 *     idle ──barrier N (first slot)──► aligning N ──last live slot──► aligned N
 *       ▲                                  │ hold events of slots that                │
 *       └──────── replay held, in order ◄──┘ delivered N                  ◄───────────┘
 *
 * Watermark valve (DESIGN §4).  The output watermark is the minimum of the
 * slots' watermarks over the slots that have neither ended nor been marked
 * idle; it only moves forward, and there is none while a live slot has not
 * sent one.  An ended slot stops holding the others back.
 *
 * Invariants:
 *   1. Held events are never dropped: holding more than the hold limit, or
 *      running out of memory, fails with TM_ENOMEM (the event is released and
 *      the job must fail), it never discards one silently.
 *   2. Held events are replayed in the order they arrived.
 *   3. The output watermark is strictly increasing.
 *
 * Thread: the consumer's own thread; nothing here is shared.
 */
#ifndef TM_RUNTIME_INPUT_H
#define TM_RUNTIME_INPUT_H

#include "runtime/queue.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_input_slot {
    bool got_barrier; /* delivered the barrier being aligned */
    bool ended;
    bool idle;
    int64_t wm; /* newest watermark, INT64_MIN before the first */
} tm_input_slot_t;

typedef struct tm_input {
    int nslots;
    tm_input_slot_t *slots;
    int nended;
    uint64_t aligning; /* 0 when no barrier is being aligned */
    tm_event_t *held;
    size_t nheld, capheld, hold_limit;
    int64_t wm_out; /* INT64_MIN before the first */
} tm_input_t;

/* Default bound on held events (each holds at most one batch). */
#define TM_INPUT_HOLD_LIMIT (1u << 20)

int tm_input_init(tm_input_t *in, int nslots);
/* Releases held events.  Accepts a zeroed struct. */
void tm_input_destroy(tm_input_t *in);
/* For tests: hold at most `limit` events before failing with TM_ENOMEM. */
void tm_input_set_hold_limit(tm_input_t *in, size_t limit);

/*
 * Call first for every event taken from the queue.  Returns 1 when the event
 * was held (the input owns it now), 0 when the caller handles it now, or
 * TM_ENOMEM (the event was released; fail the job).
 */
int tm_input_offer(tm_input_t *in, tm_event_t *ev);
/*
 * Slot `slot` delivered barrier `id`.  Returns id once every live slot
 * delivered it (the caller acts on the barrier, then replays
 * tm_input_take_held()), else 0.
 */
uint64_t tm_input_barrier(tm_input_t *in, int slot, uint64_t id);
/*
 * Slot `slot` ended.  Returns a barrier id whose alignment this completed
 * (handle it as from tm_input_barrier), else 0.  *wm_advanced is set when the
 * output watermark moved (read tm_input_watermark_out).
 */
uint64_t tm_input_end(tm_input_t *in, int slot, bool *wm_advanced);
/* Every slot ended. */
bool tm_input_all_ended(const tm_input_t *in);
/* The held events, in arrival order (the caller replays and frees the array). */
tm_event_t *tm_input_take_held(tm_input_t *in, size_t *n);
/*
 * Slot `slot` sent watermark ts_us.  Returns true when the output watermark
 * advanced; the new value is tm_input_watermark_out().
 */
bool tm_input_watermark(tm_input_t *in, int slot, int64_t ts_us);
/* Marks a slot idle (it stops holding the watermark back) or active again. */
bool tm_input_set_idle(tm_input_t *in, int slot, bool idle);
/* True when some slot has not ended and every slot that has not ended is idle. */
bool tm_input_idle(const tm_input_t *in);
int64_t tm_input_watermark_out(const tm_input_t *in);

#endif
