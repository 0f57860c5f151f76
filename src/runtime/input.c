/*
 * input.c — barrier alignment, the watermark valve and END counting (see
 * input.h for the invariants).
 *
 * Thread: the consumer's own.
 */
#include "runtime/input.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>

int tm_input_init(tm_input_t *in, int nslots)
{
    memset(in, 0, sizeof(*in));
    if (nslots < 0)
        return TM_EINVAL;
    in->slots = calloc(nslots > 0 ? (size_t)nslots : 1, sizeof(*in->slots));
    if (in->slots == NULL)
        return TM_ENOMEM;
    in->nslots = nslots;
    for (int i = 0; i < nslots; i++)
        in->slots[i].wm = INT64_MIN;
    in->wm_out = INT64_MIN;
    in->hold_limit = TM_INPUT_HOLD_LIMIT;
    return 0;
}

void tm_input_destroy(tm_input_t *in)
{
    for (size_t i = 0; i < in->nheld; i++)
        tm_event_release(&in->held[i]);
    free(in->held);
    free(in->slots);
    memset(in, 0, sizeof(*in));
}

void tm_input_set_hold_limit(tm_input_t *in, size_t limit)
{
    in->hold_limit = limit;
}

static bool valid(const tm_input_t *in, int slot)
{
    return slot >= 0 && slot < in->nslots;
}

int tm_input_offer(tm_input_t *in, tm_event_t *ev)
{
    if (in->aligning == 0 || !valid(in, ev->producer) || !in->slots[ev->producer].got_barrier)
        return 0;
    if (in->nheld >= in->hold_limit) {
        tm_event_release(ev);
        return TM_ENOMEM;
    }
    if (in->nheld == in->capheld) {
        size_t ncap = in->capheld ? in->capheld * 2 : 16;
        tm_event_t *h = realloc(in->held, sizeof(*h) * ncap);
        if (h == NULL) {
            tm_event_release(ev);
            return TM_ENOMEM;
        }
        in->held = h;
        in->capheld = ncap;
    }
    in->held[in->nheld++] = *ev;
    return 1;
}

/* The barrier being aligned is complete once every live slot delivered it. */
static uint64_t check_aligned(tm_input_t *in)
{
    if (in->aligning == 0)
        return 0;
    for (int i = 0; i < in->nslots; i++)
        if (!in->slots[i].ended && !in->slots[i].got_barrier)
            return 0;
    uint64_t id = in->aligning;
    in->aligning = 0;
    for (int i = 0; i < in->nslots; i++)
        in->slots[i].got_barrier = false;
    return id;
}

uint64_t tm_input_barrier(tm_input_t *in, int slot, uint64_t id)
{
    if (!valid(in, slot))
        return 0;
    if (in->aligning == 0)
        in->aligning = id;
    in->slots[slot].got_barrier = true;
    return check_aligned(in);
}

/* Recomputes the valve's output; true when it advanced. */
static bool valve(tm_input_t *in)
{
    int64_t min = INT64_MAX;
    bool any = false;
    for (int i = 0; i < in->nslots; i++) {
        const tm_input_slot_t *s = &in->slots[i];
        if (s->ended || s->idle)
            continue;
        any = true;
        if (s->wm < min)
            min = s->wm;
    }
    /* No live slot, or one without a watermark yet: nothing to say. */
    if (!any || min == INT64_MIN || min <= in->wm_out)
        return false;
    in->wm_out = min;
    return true;
}

uint64_t tm_input_end(tm_input_t *in, int slot, bool *wm_advanced)
{
    *wm_advanced = false;
    if (!valid(in, slot) || in->slots[slot].ended)
        return 0;
    in->slots[slot].ended = true;
    in->nended++;
    *wm_advanced = valve(in);
    return check_aligned(in);
}

bool tm_input_all_ended(const tm_input_t *in)
{
    return in->nended >= in->nslots;
}

tm_event_t *tm_input_take_held(tm_input_t *in, size_t *n)
{
    tm_event_t *held = in->held;
    *n = in->nheld;
    in->held = NULL;
    in->nheld = in->capheld = 0;
    return held;
}

bool tm_input_watermark(tm_input_t *in, int slot, int64_t ts_us)
{
    if (!valid(in, slot) || ts_us <= in->slots[slot].wm)
        return false;
    in->slots[slot].wm = ts_us;
    return valve(in);
}

bool tm_input_set_idle(tm_input_t *in, int slot, bool idle)
{
    if (!valid(in, slot))
        return false;
    in->slots[slot].idle = idle;
    return valve(in);
}

bool tm_input_idle(const tm_input_t *in)
{
    bool any = false;
    for (int i = 0; i < in->nslots; i++) {
        if (in->slots[i].ended)
            continue;
        if (!in->slots[i].idle)
            return false;
        any = true;
    }
    return any;
}

int64_t tm_input_watermark_out(const tm_input_t *in)
{
    return in->wm_out;
}
