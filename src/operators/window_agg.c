/*
 * window_agg.c — window aggregation (see window_agg.h).
 *
 * State layout in column family `uid` (G = tm_row_cols_key_encode of the
 * non-window key columns, prefix-free for a given input schema; T(x) = x as
 * a big-endian u64 with the sign bit flipped, so that times sort as bytes;
 * the key group of every key is tm_keygroup_of(G), and of `m` every owned
 * key group):
 *
 *     'w' ‖ G ‖ T(start) ‖ T(end)        a window: u8 version (1), u8 flags
 *                                        (bit 0: fired), zigzag rows (net
 *                                        row count), varint length ‖ the
 *                                        key row (tm_row_serialize of
 *                                        in_schema with only the key
 *                                        columns set), each aggregate's
 *                                        accumulator (tm_agg_acc_encode),
 *                                        then for each value-keeping
 *                                        aggregate (min, max, string_agg,
 *                                        DISTINCT) its multiset: varint n ‖
 *                                        n entries ascending: varint length
 *                                        ‖ V ‖ varint count ‖ zigzag scale
 *                                        (V = tm_agg_value_encode)
 *     't' ‖ T(due) ‖ u8 kind ‖ T(start) ‖ T(end) ‖ G
 *                                        a timer (empty value): kind 0 fires
 *                                        the window at due = end - 1 (its
 *                                        window_time); kind 1 drops a fired
 *                                        window's state at due = end - 1 + L
 *     'm'                                the watermark the operator had seen
 *                                        at the last barrier (T), in every
 *                                        owned key group
 *
 * Timers are a key range ordered by time inside each key group (no column
 * family of their own): on_watermark seeks each owned key group's 't'
 * range and takes timers while due <= watermark.  `next_due` (the earliest
 * timer, rebuilt on restore) skips the seeks for a watermark that fires
 * nothing, and `kg_next` (each key group's earliest timer, kept current by
 * the firing's own scan and by every timer written) the key groups with
 * nothing due, so a firing costs the key groups it fires in, not all.  A window's multisets live inline in its value: a window holds
 * the rows of one key over one period, and its state goes when it fires.
 *
 *     process(batch):
 *       1. per row image (sign +1 insert/after, -1 delete/before): its
 *          windows; a row whose every window is late is counted and skipped
 *       2. per touched window: load it once per call (a per-call table of
 *          groups and their windows; SESSION loads all windows of the key
 *          and merges), apply the image to its accumulators and multisets
 *       3. write back every touched window and its timers, emit corrections
 *          for fired windows (allowed_lateness), commit
 *
 * Invariants:
 *   1. After on_watermark(w) returns no unfired window with window_time <= w
 *      is left: every such window has a timer and it was due.
 *   2. Every window in the store has exactly one timer: kind 0 while it has
 *      not fired, kind 1 after (only with allowed_lateness > 0; without it a
 *      window is deleted when it fires).
 *   3. A fired window's stored state is exactly what its last emitted result
 *      was computed from, so a correction retracts what downstream holds.
 *   4. Every write of a call is committed before the call returns (no
 *      write-behind cache), so on_barrier only records the watermark.
 *   5. Only key groups in [ctx->kg_first, ctx->kg_last] are touched; a row of
 *      another key group fails the call (a partitioning bug upstream).
 *
 * Thread: its subtask's.
 */
#include "operators/window_agg.h"
#include "operators/evstate.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/hash.h"
#include "core/log.h"
#include "core/shutdown.h"
#include "state/rowcodec.h"

#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STATE_VERSION 1
#define TIMER_FIRE 0
#define TIMER_CLEANUP 1

/* One value of a multiset. */
typedef struct ment {
    uint8_t *v;
    size_t len;
    int64_t cnt;
    int32_t scale;
} ment_t;

typedef struct mset {
    ment_t *e;
    int n, cap;
} mset_t;

/* One window of one group key, as loaded for a call. */
typedef struct win {
    int64_t start, end;
    int64_t rows;
    bool fired;   /* its result was emitted (kept for allowed_lateness) */
    bool stored;  /* its key is in the store (with its timer) */
    bool dirty;   /* changed in this call */
    bool gone;    /* merged into another, or emptied: delete its key and timer */
    tm_row_t *old; /* fired: the result emitted before this call (scratch), or NULL */
    tm_agg_acc_t *acc;
    mset_t *ms;
} win_t;

/* A group key touched by a call, with the windows loaded for it. */
typedef struct grp {
    uint8_t *g;
    size_t glen;
    uint64_t hash;
    int kg;
    uint8_t *keyrow; /* serialized key row */
    size_t keyrowlen;
    win_t **w;
    int nw, cap;
    bool scanned; /* every window of the key is loaded (SESSION) */
} grp_t;

struct tm_operator {
    const tm_window_agg_spec_t *spec;
    tm_operator_ctx_t ctx;
    tm_store_cf_t *cf;
    int64_t wm;       /* the input watermark seen so far */
    int64_t saved_wm; /* the watermark recorded at the last barrier */
    int64_t next_due; /* earliest timer (INT64_MAX: none) */
    /*
     * Earliest timer of each owned key group (index kg - kg_first), or a
     * time before it: a timer deleted since only makes a firing look at its
     * key group once more, never misses one.
     */
    int64_t *kg_next;
    tm_batch_t *out;
    tm_batch_t *scratch; /* per call: result rows */
    tm_store_batch_t *wb;
    tm_store_iter_t *it;
    tm_buf_t key, val, tmp;
    /* The per-call table of groups: open addressing on hash. */
    grp_t **groups;
    int ngroups;
    grp_t **slots;
    int nslots;
    int64_t last_late_log_ms;
    uint64_t late_unlogged;
    tm_batch_t *late; /* late rows for ctx.side_out, emitted at the end of each call */
};

static const tm_operator_ops_t window_agg_ops;

/* ---- time and keys ---- */

static int64_t floor_div(int64_t a, int64_t b)
{
    int64_t q = a / b;
    if ((a % b != 0) && ((a < 0) != (b < 0)))
        q--;
    return q;
}

int tm_window_assign(const tm_window_agg_spec_t *spec, int64_t ts, int64_t *starts,
                     int64_t *ends, int max)
{
    int n = 0;
    int64_t size = spec->size_us, slide = spec->slide_us > 0 ? spec->slide_us : size;
    switch (spec->kind) {
    case TM_WINDOW_TUMBLE:
        if (max < 1)
            return 0;
        starts[0] = floor_div(ts, size) * size;
        ends[0] = tm_evstate_sat_add(starts[0], size);
        return 1;
    case TM_WINDOW_HOP: {
        int64_t last = floor_div(ts, slide) * slide;
        for (int64_t s = last; s > ts - size && n < max; s -= slide) {
            starts[n] = s;
            ends[n] = tm_evstate_sat_add(s, size);
            n++;
        }
        return n;
    }
    case TM_WINDOW_CUMULATE: {
        int64_t s = floor_div(ts, size) * size;
        for (int64_t e = tm_evstate_sat_add(s, slide); n < max; e = tm_evstate_sat_add(e, slide)) {
            if (e > ts) {
                starts[n] = s;
                ends[n] = e;
                n++;
            }
            if (e >= s + size)
                break;
        }
        return n;
    }
    case TM_WINDOW_SESSION:
        if (max < 1)
            return 0;
        starts[0] = ts;
        ends[0] = tm_evstate_sat_add(ts, size);
        return 1;
    }
    return 0;
}

int tm_window_agg_key(const void *spec, const tm_schema_t *schema, const tm_row_t *row,
                      tm_buf_t *out)
{
    const tm_window_agg_spec_t *s = spec;
    return tm_row_cols_key_encode(schema, row, s->key_cols, s->nkey, out);
}

/* 'w' ‖ G ‖ T(start) ‖ T(end) into op->key. */
static int win_key(tm_operator_t *op, const grp_t *g, int64_t start, int64_t end)
{
    uint8_t t[16];
    tm_evstate_put_time(t, start);
    tm_evstate_put_time(t + 8, end);
    tm_buf_clear(&op->key);
    int rc = tm_buf_putc(&op->key, 'w');
    rc = rc ? rc : tm_buf_append(&op->key, g->g, g->glen);
    return rc ? rc : tm_buf_append(&op->key, t, 16);
}

/* 't' ‖ T(due) ‖ kind ‖ T(start) ‖ T(end) ‖ G into op->key. */
static int timer_key(tm_operator_t *op, int kind, int64_t due, int64_t start, int64_t end,
                     const uint8_t *g, size_t glen)
{
    uint8_t t[25];
    tm_evstate_put_time(t, due);
    t[8] = (uint8_t)kind;
    tm_evstate_put_time(t + 9, start);
    tm_evstate_put_time(t + 17, end);
    tm_buf_clear(&op->key);
    int rc = tm_buf_putc(&op->key, 't');
    rc = rc ? rc : tm_buf_append(&op->key, t, 25);
    return rc ? rc : tm_buf_append(&op->key, g, glen);
}

static int64_t lateness(const tm_operator_t *op)
{
    return op->spec->allowed_lateness_us > 0 ? op->spec->allowed_lateness_us : 0;
}

/* The timer a stored window has (invariant 2). */
static int timer_of(tm_operator_t *op, const grp_t *g, const win_t *w, bool fired)
{
    return fired ? timer_key(op, TIMER_CLEANUP, tm_evstate_sat_add(w->end - 1, lateness(op)), w->start,
                             w->end, g->g, g->glen)
                 : timer_key(op, TIMER_FIRE, w->end - 1, w->start, w->end, g->g, g->glen);
}

/* ---- windows in memory ---- */

static void win_free(tm_operator_t *op, win_t *w)
{
    if (w == NULL)
        return;
    for (int i = 0; w->ms != NULL && i < op->spec->naggs; i++) {
        for (int k = 0; k < w->ms[i].n; k++)
            free(w->ms[i].e[k].v);
        free(w->ms[i].e);
    }
    free(w->ms);
    free(w->acc);
    free(w);
}

static win_t *win_new(tm_operator_t *op, int64_t start, int64_t end)
{
    win_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return NULL;
    int n = op->spec->naggs;
    w->acc = calloc((size_t)n + 1, sizeof(*w->acc));
    w->ms = calloc((size_t)n + 1, sizeof(*w->ms));
    if (w->acc == NULL || w->ms == NULL) {
        win_free(op, w);
        return NULL;
    }
    for (int i = 0; i < n; i++)
        tm_agg_acc_init(&w->acc[i]);
    w->start = start;
    w->end = end;
    return w;
}

static void grp_free(tm_operator_t *op, grp_t *g)
{
    if (g == NULL)
        return;
    for (int i = 0; i < g->nw; i++)
        win_free(op, g->w[i]);
    free(g->w);
    free(g->g);
    free(g->keyrow);
    free(g);
}

static void groups_clear(tm_operator_t *op)
{
    for (int i = 0; i < op->ngroups; i++)
        grp_free(op, op->groups[i]);
    op->ngroups = 0;
    if (op->slots != NULL)
        memset(op->slots, 0, sizeof(*op->slots) * (size_t)op->nslots);
}

static int grp_add_win(grp_t *g, win_t *w)
{
    if (g->nw == g->cap) {
        int cap = g->cap ? 2 * g->cap : 4;
        win_t **v = realloc(g->w, sizeof(*v) * (size_t)cap);
        if (v == NULL)
            return TM_ENOMEM;
        g->w = v;
        g->cap = cap;
    }
    g->w[g->nw++] = w;
    return 0;
}

/* Finds or adds the group of key bytes (g, glen); *out is owned by the table. */
static int group_get(tm_operator_t *op, const uint8_t *gk, size_t glen, int kg, grp_t **out)
{
    uint64_t h = tm_xxh64(gk, glen, 0);
    if (op->ngroups * 2 >= op->nslots) {
        int ns = op->nslots ? op->nslots * 2 : 64;
        grp_t **s = calloc((size_t)ns, sizeof(*s));
        grp_t **v = realloc(op->groups, sizeof(*v) * (size_t)ns);
        if (s == NULL || v == NULL) {
            free(s);
            if (v != NULL)
                op->groups = v;
            return TM_ENOMEM;
        }
        op->groups = v;
        for (int i = 0; i < op->ngroups; i++) {
            size_t j = op->groups[i]->hash & (size_t)(ns - 1);
            while (s[j] != NULL)
                j = (j + 1) & (size_t)(ns - 1);
            s[j] = op->groups[i];
        }
        free(op->slots);
        op->slots = s;
        op->nslots = ns;
    }
    size_t j = h & (size_t)(op->nslots - 1);
    for (; op->slots[j] != NULL; j = (j + 1) & (size_t)(op->nslots - 1)) {
        grp_t *g = op->slots[j];
        if (g->hash == h && g->glen == glen && memcmp(g->g, gk, glen) == 0) {
            *out = g;
            return 0;
        }
    }
    grp_t *g = calloc(1, sizeof(*g));
    if (g == NULL || (g->g = malloc(glen ? glen : 1)) == NULL) {
        free(g);
        return TM_ENOMEM;
    }
    memcpy(g->g, gk, glen);
    g->glen = glen;
    g->hash = h;
    g->kg = kg;
    op->slots[j] = g;
    op->groups[op->ngroups++] = g;
    *out = g;
    return 0;
}

/* ---- the value format ---- */

static int mset_find(const mset_t *m, const uint8_t *v, size_t len, bool *found)
{
    int lo = 0, hi = m->n;
    while (lo < hi) {
        int mid = (lo + hi) / 2;
        const ment_t *e = &m->e[mid];
        size_t l = e->len < len ? e->len : len;
        int c = memcmp(e->v, v, l);
        if (c == 0)
            c = e->len < len ? -1 : e->len > len ? 1 : 0;
        if (c == 0) {
            *found = true;
            return mid;
        }
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

/* Adds `delta` to value v's count (inserting or removing it); *before is the old count. */
static int mset_add(mset_t *m, const uint8_t *v, size_t len, int32_t scale, int64_t delta,
                    int64_t *before)
{
    bool found;
    int i = mset_find(m, v, len, &found);
    if (found) {
        *before = m->e[i].cnt;
        m->e[i].cnt += delta;
        if (m->e[i].cnt <= 0) {
            free(m->e[i].v);
            memmove(&m->e[i], &m->e[i + 1], sizeof(ment_t) * (size_t)(m->n - i - 1));
            m->n--;
        }
        return 0;
    }
    *before = 0;
    if (delta <= 0)
        return 0; /* a retraction of a value the window never held: nothing to undo */
    if (m->n == m->cap) {
        int cap = m->cap ? 2 * m->cap : 4;
        ment_t *e = realloc(m->e, sizeof(*e) * (size_t)cap);
        if (e == NULL)
            return TM_ENOMEM;
        m->e = e;
        m->cap = cap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (copy == NULL)
        return TM_ENOMEM;
    memcpy(copy, v, len);
    memmove(&m->e[i + 1], &m->e[i], sizeof(ment_t) * (size_t)(m->n - i));
    m->e[i] = (ment_t){copy, len, delta, scale};
    m->n++;
    return 0;
}

static int win_encode(tm_operator_t *op, const grp_t *g, const win_t *w, tm_buf_t *out)
{
    tm_buf_clear(out);
    int rc = tm_buf_putc(out, STATE_VERSION);
    rc = rc ? rc : tm_buf_putc(out, w->fired ? 1 : 0);
    rc = rc ? rc : tm_buf_put_zigzag(out, w->rows);
    rc = rc ? rc : tm_buf_put_varint(out, g->keyrowlen);
    rc = rc ? rc : tm_buf_append(out, g->keyrow, g->keyrowlen);
    for (int i = 0; rc == 0 && i < op->spec->naggs; i++)
        rc = tm_agg_acc_encode(&op->spec->aggs[i], &w->acc[i], out);
    for (int i = 0; rc == 0 && i < op->spec->naggs; i++) {
        if (!tm_agg_keeps_values(&op->spec->aggs[i]))
            continue;
        const mset_t *m = &w->ms[i];
        rc = tm_buf_put_varint(out, (uint64_t)m->n);
        for (int k = 0; rc == 0 && k < m->n; k++) {
            rc = tm_buf_put_varint(out, m->e[k].len);
            rc = rc ? rc : tm_buf_append(out, m->e[k].v, m->e[k].len);
            rc = rc ? rc : tm_buf_put_varint(out, (uint64_t)m->e[k].cnt);
            rc = rc ? rc : tm_buf_put_zigzag(out, m->e[k].scale);
        }
    }
    return rc ? TM_ENOMEM : 0;
}

/* Decodes a stored window; the key row goes to g when g has none yet. */
static int win_decode(tm_operator_t *op, grp_t *g, win_t *w, const uint8_t *p, size_t len,
                      char *errstr, size_t errstr_size)
{
    const uint8_t *end = p + len;
    uint64_t u, klen;
    int64_t rows;
    int rc = 0;
    if (len < 2 || p[0] != STATE_VERSION)
        goto corrupt;
    w->fired = (p[1] & 1) != 0;
    p += 2;
    if (tm_buf_get_zigzag(&p, end, &rows) != 0 || tm_buf_get_varint(&p, end, &klen) != 0 ||
        klen > (uint64_t)(end - p))
        goto corrupt;
    w->rows = rows;
    if (g->keyrow == NULL) {
        if ((g->keyrow = malloc(klen ? klen : 1)) == NULL)
            return TM_ENOMEM;
        memcpy(g->keyrow, p, klen);
        g->keyrowlen = klen;
    }
    p += klen;
    for (int i = 0; i < op->spec->naggs; i++)
        if (tm_agg_acc_decode(&op->spec->aggs[i], &w->acc[i], &p, end) != 0)
            goto corrupt;
    for (int i = 0; i < op->spec->naggs; i++) {
        if (!tm_agg_keeps_values(&op->spec->aggs[i]))
            continue;
        if (tm_buf_get_varint(&p, end, &u) != 0 || u > (uint64_t)(end - p))
            goto corrupt;
        for (uint64_t k = 0; k < u; k++) {
            uint64_t vl, cnt;
            int64_t scale, before;
            if (tm_buf_get_varint(&p, end, &vl) != 0 || vl > (uint64_t)(end - p))
                goto corrupt;
            const uint8_t *v = p;
            p += vl;
            if (tm_buf_get_varint(&p, end, &cnt) != 0 || tm_buf_get_zigzag(&p, end, &scale) != 0 ||
                cnt == 0 || cnt > INT64_MAX)
                goto corrupt;
            if ((rc = mset_add(&w->ms[i], v, vl, (int32_t)scale, (int64_t)cnt, &before)) != 0)
                return rc;
        }
    }
    if (p != end)
        goto corrupt;
    return 0;
corrupt:
    return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                     "window_agg %s: the state of a window in key group %d is unreadable",
                     op->ctx.uid, g->kg);
}

/* ---- results ---- */

/* The window's result row (in op->scratch). */
static int build_result(tm_operator_t *op, const grp_t *g, const win_t *w, tm_row_t **out,
                        char *errstr, size_t errstr_size)
{
    const tm_window_agg_spec_t *spec = op->spec;
    tm_row_t *keyrow = NULL;
    int rc = tm_row_deserialize(spec->in_schema, g->keyrow, g->keyrowlen, op->scratch, &keyrow);
    if (rc != 0)
        return tm_seterr(errstr, errstr_size, rc == TM_ENOMEM ? rc : TM_ECORRUPT,
                         "window_agg %s: a stored group key in key group %d is unreadable%s",
                         op->ctx.uid, g->kg,
                         rc == TM_EINVAL ? " (the query changed its group key types)" : "");
    tm_row_t *r = tm_batch_new_row(op->scratch, spec->out_schema);
    if (r == NULL)
        return TM_ENOMEM;
    for (int j = 0; j < spec->ngroup; j++) {
        int c = spec->out_cols[j];
        if (c >= 0) {
            if (!tm_row_is_null(keyrow, c)) {
                r->vals[j] = keyrow->vals[c];
                tm_row_set_null(r, j, false);
            }
            continue;
        }
        memset(&r->vals[j], 0, sizeof(r->vals[j]));
        r->vals[j].u.i64 = c == TM_WINDOW_COL_START ? w->start
                           : c == TM_WINDOW_COL_END ? w->end
                                                    : w->end - 1;
        tm_row_set_null(r, j, false);
    }
    for (int i = 0; i < spec->naggs; i++) {
        const tm_agg_call_t *call = &spec->aggs[i];
        const mset_t *m = &w->ms[i];
        int col = spec->ngroup + i;
        tm_datum_t d;
        bool isnull = true;
        memset(&d, 0, sizeof(d));
        if (call->kind == TM_AGG_MIN || call->kind == TM_AGG_MAX) {
            if (m->n > 0) {
                const ment_t *e = &m->e[call->kind == TM_AGG_MIN ? 0 : m->n - 1];
                rc = tm_agg_value_decode(call->arg_type.type, e->v, e->len, e->scale,
                                         op->scratch, &d);
                if (rc != 0)
                    return tm_seterr(errstr, errstr_size, rc,
                                     "window_agg %s: a stored %s value is unreadable",
                                     op->ctx.uid, tm_agg_name(call->kind));
                isnull = false;
            }
        } else if (call->kind == TM_AGG_STRING_AGG) {
            size_t sep = call->separator ? strlen(call->separator) : 0;
            tm_buf_clear(&op->tmp);
            for (int k = 0; k < m->n; k++)
                for (int64_t c = 0; c < (call->distinct ? 1 : m->e[k].cnt); c++) {
                    if (!isnull && sep > 0 && tm_buf_append(&op->tmp, call->separator, sep))
                        return TM_ENOMEM;
                    if (tm_buf_append(&op->tmp, m->e[k].v, m->e[k].len) != 0)
                        return TM_ENOMEM;
                    isnull = false;
                }
            if (!isnull &&
                tm_batch_set_var(op->scratch, &d, op->tmp.len ? op->tmp.data : "", op->tmp.len))
                return TM_ENOMEM;
        } else {
            char why[256];
            rc = tm_agg_acc_get(call, &w->acc[i], op->scratch, &d, &isnull, why, sizeof(why));
            if (rc == TM_EINVAL) {
                /* A result out of its type's range: a row error of the window. */
                isnull = true;
                tm_record_t rec = {.op = TM_OP_CREATE, .schema = spec->out_schema, .after = r};
                rc = tm_operator_row_error(&op->ctx, &rec, why, errstr, errstr_size);
            }
            if (rc != 0)
                return rc;
        }
        if (!isnull) {
            r->vals[col] = d;
            tm_row_set_null(r, col, false);
        }
    }
    *out = r;
    return 0;
}

static int emit(tm_operator_t *op, tm_collector_t *out, tm_op_t kind, const tm_row_t *before,
                const tm_row_t *after, char *errstr, size_t errstr_size)
{
    int rc = tm_collector_room(out, &op->out, op->ctx.uid, errstr, errstr_size);
    if (rc != 0)
        return rc;
    tm_record_t *rec = tm_batch_add(op->out, op->spec->out_schema, kind);
    if (rec == NULL)
        return TM_ENOMEM;
    rec->proc_us = tm_store_now(op->ctx.store);
    if (before != NULL && (rec->before = tm_row_copy(op->out, op->spec->out_schema, before)) ==
                              NULL)
        return TM_ENOMEM;
    if (after != NULL &&
        (rec->after = tm_row_copy(op->out, op->spec->out_schema, after)) == NULL)
        return TM_ENOMEM;
    return 0;
}

/* ---- late rows ---- */

tm_schema_t *tm_window_agg_late_schema(const tm_window_agg_spec_t *spec)
{
    const tm_schema_t *in = spec->in_schema;
    static const char *const names[] = {"operator", "window_start", "window_end", "watermark",
                                        "reason"};
    tm_schema_t *s = tm_schema_new(in->ncols + TM_WINDOW_LATE_EXTRA);
    if (s == NULL)
        return NULL;
    bool ok = true;
    for (int i = 0; i < in->ncols; i++) {
        tm_column_t *c = &s->cols[i];
        c->name = strdup(in->cols[i].name);
        c->type = in->cols[i].type;
        c->elem_type = in->cols[i].elem_type;
        c->precision = in->cols[i].precision;
        c->scale = in->cols[i].scale;
        c->length = in->cols[i].length;
        c->nullable = true;
        c->key_index = -1;
        ok &= c->name != NULL;
    }
    for (int k = 0; k < TM_WINDOW_LATE_EXTRA; k++) {
        tm_column_t *c = &s->cols[in->ncols + k];
        /* An input column of the same name keeps it; the added one says it is about lateness. */
        char name[64];
        snprintf(name, sizeof(name), "%s%s", tm_schema_find(in, names[k]) >= 0 ? "late_" : "",
                 names[k]);
        c->name = strdup(name);
        c->type = k == 0 || k == 4 ? TM_T_TEXT : in->cols[spec->time_col].type;
        c->precision = k == 0 || k == 4 ? -1 : in->cols[spec->time_col].precision;
        c->scale = 0;
        c->length = -1;
        c->nullable = true;
        c->key_index = -1;
        ok &= c->name != NULL;
    }
    if (!ok || tm_schema_finish(s) != 0)
        return tm_schema_unref(s);
    return s;
}

/*
 * Appends a late row image to the side output's batch: the input row, the
 * operator, the (last) window it was late for, the watermark and why.
 */
static int late_side(tm_operator_t *op, const tm_row_t *row, int sign, int64_t wstart,
                     int64_t wend, char *errstr, size_t errstr_size)
{
    const tm_window_agg_spec_t *spec = op->spec;
    int rc = tm_collector_room(op->ctx.side_out, &op->late, op->ctx.uid, errstr, errstr_size);
    if (rc != 0)
        return rc;
    tm_record_t *rec = tm_batch_add(op->late, spec->late_schema, TM_OP_CREATE);
    const tm_row_t *in = rec != NULL ? tm_row_copy(op->late, spec->in_schema, row) : NULL;
    tm_row_t *r = in != NULL ? tm_batch_new_row(op->late, spec->late_schema) : NULL;
    if (r == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "%s: out of memory", op->ctx.uid);
    int n = spec->in_schema->ncols;
    for (int i = 0; i < n; i++) {
        r->vals[i] = in->vals[i];
        tm_row_set_null(r, i, tm_row_is_null(in, i));
    }
    const char *reason = sign > 0 ? "late" : "late retraction";
    rc = tm_batch_set_var(op->late, &r->vals[n], op->ctx.uid, strlen(op->ctx.uid));
    if (rc == 0)
        rc = tm_batch_set_var(op->late, &r->vals[n + 4], reason, strlen(reason));
    if (rc != 0)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "%s: out of memory", op->ctx.uid);
    tm_row_set_null(r, n, false);
    tm_row_set_null(r, n + 4, false);
    int64_t t[3] = {wstart, wend, op->wm};
    for (int k = 0; k < 3; k++) {
        /* No watermark yet cannot make a row late, but keep the column honest anyway. */
        if (t[k] == INT64_MIN || t[k] == INT64_MAX)
            continue;
        r->vals[n + 1 + k].u.i64 = t[k];
        tm_row_set_null(r, n + 1 + k, false);
    }
    rec->proc_us = tm_store_now(op->ctx.store);
    rec->after = r;
    return 0;
}

/*
 * Counts (and logs, rate-limited) a row image that is late for every window
 * it belongs to, and writes it to the side output when the job has one;
 * [wstart, wend) is the last of those windows.
 */
static int late_row(tm_operator_t *op, const tm_row_t *row, int64_t ts, int sign, int64_t wstart,
                    int64_t wend, char *errstr, size_t errstr_size)
{
    atomic_fetch_add_explicit(&op->ctx.metrics->late_rows, 1, memory_order_relaxed);
    if (op->ctx.side_out != NULL && op->spec->late_schema != NULL) {
        int rc = late_side(op, row, sign, wstart, wend, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    op->late_unlogged++;
    int64_t now = tm_mono_ms();
    if (now - op->last_late_log_ms < 10000 && op->last_late_log_ms != 0)
        return 0;
    op->last_late_log_ms = now;
    TM_WARN("window",
            "late rows: behind the watermark for every window they belong to; counted in "
            "tidemark_late_rows_total and not applied (raise allowed_lateness or the source's "
            "watermark delay to keep them)",
            "operator=%s subtask=%d rows=%" PRIu64 " last_time_us=%" PRId64
            " last_kind=%s watermark_us=%" PRId64,
            op->ctx.uid, op->ctx.subtask, op->late_unlogged, ts,
            sign > 0 ? "insert" : "retraction", op->wm);
    op->late_unlogged = 0;
    return 0;
}

/* ---- loading ---- */

/* Loads window [start, end) of g from the store (NULL *out when absent). */
static int load_win(tm_operator_t *op, grp_t *g, int64_t start, int64_t end, win_t **out,
                    char *errstr, size_t errstr_size)
{
    *out = NULL;
    int rc = win_key(op, g, start, end);
    if (rc != 0)
        return rc;
    rc = tm_store_get(op->ctx.store, op->cf, g->kg, op->key.data, op->key.len, &op->val, errstr,
                      errstr_size);
    if (rc == TM_ENOTFOUND)
        return 0;
    if (rc != 0)
        return rc;
    win_t *w = win_new(op, start, end);
    if (w == NULL)
        return TM_ENOMEM;
    rc = win_decode(op, g, w, (const uint8_t *)op->val.data, op->val.len, errstr, errstr_size);
    if (rc == 0)
        rc = grp_add_win(g, w);
    if (rc != 0) {
        win_free(op, w);
        return rc;
    }
    w->stored = true;
    *out = w;
    return 0;
}

/* SESSION: loads every stored window of g. */
static int scan_group(tm_operator_t *op, grp_t *g, char *errstr, size_t errstr_size)
{
    g->scanned = true;
    tm_buf_clear(&op->key);
    if (tm_buf_putc(&op->key, 'w') != 0 || tm_buf_append(&op->key, g->g, g->glen) != 0)
        return TM_ENOMEM;
    tm_store_iter_t *it = NULL;
    int rc = tm_store_iter_new(op->ctx.store, op->cf, g->kg, g->kg, op->key.data, op->key.len,
                               &it);
    if (rc != 0)
        return rc;
    tm_store_entry_t e;
    while ((rc = tm_store_iter_next(it, &e, errstr, errstr_size)) == 1) {
        if (e.klen != 1 + g->glen + 16) {
            rc = tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                           "window_agg %s: a window key in key group %d is malformed",
                           op->ctx.uid, g->kg);
            break;
        }
        win_t *w = win_new(op, tm_evstate_get_time(e.key + 1 + g->glen), tm_evstate_get_time(e.key + 1 + g->glen + 8));
        if (w == NULL) {
            rc = TM_ENOMEM;
            break;
        }
        rc = win_decode(op, g, w, e.val, e.vlen, errstr, errstr_size);
        if (rc == 0)
            rc = grp_add_win(g, w);
        if (rc != 0) {
            win_free(op, w);
            break;
        }
        w->stored = true;
        rc = 1;
    }
    tm_store_iter_free(it);
    return rc < 0 ? rc : 0;
}

/* A fired window's result before this call's changes (for its correction). */
static int remember_old(tm_operator_t *op, grp_t *g, win_t *w, char *errstr, size_t errstr_size)
{
    if (!w->fired || w->old != NULL || w->rows <= 0 || w->dirty)
        return 0;
    return build_result(op, g, w, &w->old, errstr, errstr_size);
}

/* ---- applying one row image ---- */

static int apply_value(tm_operator_t *op, win_t *w, const tm_row_t *row, int sign, char *errstr,
                       size_t errstr_size)
{
    const tm_window_agg_spec_t *spec = op->spec;
    w->rows += sign;
    for (int i = 0; i < spec->naggs; i++) {
        const tm_agg_call_t *call = &spec->aggs[i];
        const tm_datum_t *d = NULL;
        if (call->arg >= 0) {
            if (tm_row_is_null(row, call->arg))
                continue;
            d = &row->vals[call->arg];
        }
        bool feed = true;
        if (tm_agg_keeps_values(call)) {
            tm_buf_clear(&op->tmp);
            int rc = tm_agg_value_encode(call->arg_type.type, d, &op->tmp);
            if (rc != 0)
                return tm_seterr(errstr, errstr_size, rc,
                                 "window_agg %s: a value of %s() cannot be kept", op->ctx.uid,
                                 tm_agg_name(call->kind));
            int64_t before;
            rc = mset_add(&w->ms[i], (const uint8_t *)op->tmp.data, op->tmp.len, d->scale, sign,
                          &before);
            if (rc != 0)
                return rc;
            if (call->distinct)
                feed = (sign > 0 && before == 0) || (sign < 0 && before == 1);
            if (sign < 0 && before == 0)
                feed = false;
        }
        if (!feed)
            continue;
        char why[256];
        int rc = tm_agg_acc_update(call, &w->acc[i], d, sign, why, sizeof(why));
        if (rc == TM_EINVAL) {
            tm_record_t rec = {.op = TM_OP_CREATE, .schema = (tm_schema_t *)spec->in_schema,
                               .after = (tm_row_t *)row};
            rc = tm_operator_row_error(&op->ctx, &rec, why, errstr, errstr_size);
        }
        if (rc != 0)
            return rc;
    }
    w->dirty = true;
    return 0;
}

/* Merges window b into a (SESSION); b becomes gone. */
static int merge_into(tm_operator_t *op, win_t *a, win_t *b, char *errstr, size_t errstr_size)
{
    for (int i = 0; i < op->spec->naggs; i++) {
        int rc = 0;
        const tm_agg_call_t *call = &op->spec->aggs[i];
        if (tm_agg_keeps_values(call)) {
            mset_t *m = &b->ms[i];
            for (int k = 0; k < m->n; k++) {
                int64_t before;
                rc = mset_add(&a->ms[i], m->e[k].v, m->e[k].len, m->e[k].scale, m->e[k].cnt,
                              &before);
                if (rc != 0)
                    return rc;
                /* DISTINCT: only a value new to `a` counts once more. */
                if (call->distinct && before == 0) {
                    tm_datum_t d;
                    rc = tm_agg_value_decode(call->arg_type.type, m->e[k].v, m->e[k].len,
                                             m->e[k].scale, op->scratch, &d);
                    if (rc == 0)
                        rc = tm_agg_acc_update(call, &a->acc[i], &d, 1, errstr, errstr_size);
                    if (rc != 0)
                        return rc;
                }
            }
            if (call->distinct)
                continue;
        }
        if ((rc = tm_agg_acc_merge(call, &a->acc[i], &b->acc[i], errstr, errstr_size)) != 0)
            return rc;
    }
    a->rows += b->rows;
    a->start = a->start < b->start ? a->start : b->start;
    a->end = a->end > b->end ? a->end : b->end;
    a->dirty = true;
    b->gone = true;
    b->dirty = true;
    return 0;
}

static bool is_late(const tm_operator_t *op, int64_t end)
{
    return tm_evstate_sat_add(end - 1, lateness(op)) <= op->wm;
}

static int apply_session(tm_operator_t *op, grp_t *g, int64_t ts, const tm_row_t *row, int sign,
                         char *errstr, size_t errstr_size)
{
    int rc;
    if (!g->scanned && (rc = scan_group(op, g, errstr, errstr_size)) != 0)
        return rc;
    if (sign < 0) {
        for (int i = 0; i < g->nw; i++) {
            win_t *w = g->w[i];
            if (!w->gone && w->start <= ts && ts < w->end) {
                if ((rc = remember_old(op, g, w, errstr, errstr_size)) != 0)
                    return rc;
                return apply_value(op, w, row, -1, errstr, errstr_size);
            }
        }
        return late_row(op, row, ts, sign, ts, tm_evstate_sat_add(ts, op->spec->size_us), errstr,
                        errstr_size);
    }
    int64_t s = ts, e = tm_evstate_sat_add(ts, op->spec->size_us);
    if (is_late(op, e))
        return late_row(op, row, ts, sign, s, e, errstr, errstr_size);
    win_t *nw = win_new(op, s, e);
    if (nw == NULL)
        return TM_ENOMEM;
    if ((rc = grp_add_win(g, nw)) != 0) {
        win_free(op, nw);
        return rc;
    }
    nw->dirty = true;
    /* Absorb every live window that intersects the growing one (touching windows merge). */
    bool again = true;
    while (again) {
        again = false;
        for (int i = 0; i < g->nw; i++) {
            win_t *w = g->w[i];
            if (w == nw || w->gone || w->start > nw->end || nw->start > w->end)
                continue;
            if ((rc = remember_old(op, g, w, errstr, errstr_size)) != 0)
                return rc;
            nw->fired |= w->fired && w->end >= nw->end;
            if ((rc = merge_into(op, nw, w, errstr, errstr_size)) != 0)
                return rc;
            again = true;
        }
    }
    /* A merged session that ends at or behind the watermark is fired at once. */
    nw->fired = nw->end - 1 <= op->wm;
    return apply_value(op, nw, row, 1, errstr, errstr_size);
}

static int apply_image(tm_operator_t *op, const tm_row_t *row, int sign, char *errstr,
                       size_t errstr_size)
{
    const tm_window_agg_spec_t *spec = op->spec;
    if (tm_row_is_null(row, spec->time_col))
        return 0; /* no event time: in no window (as a NULL timestamp is in no date_bin) */
    int64_t ts = row->vals[spec->time_col].u.i64;
    tm_buf_clear(&op->tmp);
    int rc = tm_row_cols_key_encode(spec->in_schema, row, spec->key_cols, spec->nkey, &op->tmp);
    if (rc != 0)
        return tm_seterr(errstr, errstr_size, rc, "window_agg %s: cannot encode a group key",
                         op->ctx.uid);
    int kg = tm_keygroup_of(op->tmp.data, op->tmp.len, op->ctx.max_parallelism);
    if (kg < op->ctx.kg_first || kg > op->ctx.kg_last)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "window_agg %s (subtask %d): a row of key group %d arrived, but this "
                         "subtask owns key groups %d-%d (the input is not partitioned by "
                         "tm_window_agg_key)",
                         op->ctx.uid, op->ctx.subtask, kg, op->ctx.kg_first, op->ctx.kg_last);
    grp_t *g;
    /* A query grouped by the window alone has an empty key (and a NULL buffer). */
    const uint8_t *gk = op->tmp.len > 0 ? (const uint8_t *)op->tmp.data : (const uint8_t *)"";
    if ((rc = group_get(op, gk, op->tmp.len, kg, &g)) != 0)
        return rc;
    if (g->keyrow == NULL) {
        /* The key row: the key columns of this row, everything else NULL. */
        tm_row_t *kr = tm_batch_new_row(op->scratch, spec->in_schema);
        if (kr == NULL)
            return TM_ENOMEM;
        for (int k = 0; k < spec->nkey; k++) {
            int c = spec->key_cols[k];
            if (!tm_row_is_null(row, c)) {
                kr->vals[c] = row->vals[c];
                tm_row_set_null(kr, c, false);
            }
        }
        tm_buf_clear(&op->val);
        if ((rc = tm_row_serialize(spec->in_schema, kr, &op->val)) != 0)
            return rc;
        if ((g->keyrow = malloc(op->val.len ? op->val.len : 1)) == NULL)
            return TM_ENOMEM;
        memcpy(g->keyrow, op->val.data, op->val.len);
        g->keyrowlen = op->val.len;
    }
    if (spec->kind == TM_WINDOW_SESSION)
        return apply_session(op, g, ts, row, sign, errstr, errstr_size);
    int64_t starts[64], ends[64];
    int64_t *sv = starts, *ev = ends;
    int64_t per = spec->slide_us > 0 ? spec->size_us / spec->slide_us + 1 : 1;
    if (per > 64) {
        sv = malloc(sizeof(int64_t) * (size_t)per * 2);
        if (sv == NULL)
            return TM_ENOMEM;
        ev = sv + per;
    }
    int n = tm_window_assign(spec, ts, sv, ev, (int)(per > 64 ? per : 64));
    bool applied = false;
    for (int i = 0; rc == 0 && i < n; i++) {
        if (is_late(op, ev[i]))
            continue;
        win_t *w = NULL;
        for (int k = 0; k < g->nw && w == NULL; k++)
            if (g->w[k]->start == sv[i] && g->w[k]->end == ev[i] && !g->w[k]->gone)
                w = g->w[k];
        if (w == NULL && (rc = load_win(op, g, sv[i], ev[i], &w, errstr, errstr_size)) != 0)
            break;
        if (w == NULL && sign < 0)
            continue; /* nothing to retract from: the insert was late (counted then) */
        if (w == NULL) {
            if ((w = win_new(op, sv[i], ev[i])) == NULL) {
                rc = TM_ENOMEM;
                break;
            }
            if ((rc = grp_add_win(g, w)) != 0) {
                win_free(op, w);
                break;
            }
            /* Within allowed_lateness of a window that had no rows: it fires at once. */
            w->fired = ev[i] - 1 <= op->wm;
        }
        if ((rc = remember_old(op, g, w, errstr, errstr_size)) != 0)
            break;
        rc = apply_value(op, w, row, sign, errstr, errstr_size);
        applied = true;
    }
    if (rc == 0 && !applied) {
        /* The window that ends last: every earlier one was late before it. */
        int last = 0;
        for (int i = 1; i < n; i++)
            last = ev[i] > ev[last] ? i : last;
        rc = n > 0 ? late_row(op, row, ts, sign, sv[last], ev[last], errstr, errstr_size)
                   : late_row(op, row, ts, sign, INT64_MIN, INT64_MIN, errstr, errstr_size);
    }
    if (sv != starts)
        free(sv);
    return rc;
}

/* ---- writing back ---- */

static int put_timer(tm_operator_t *op, const grp_t *g, const win_t *w, bool fired, bool del)
{
    int rc = timer_of(op, g, w, fired);
    if (rc != 0)
        return rc;
    int64_t due = tm_evstate_get_time((const uint8_t *)op->key.data + 1);
    if (del)
        return tm_store_batch_delete(op->wb, op->cf, g->kg, op->key.data, op->key.len);
    if (due < op->next_due)
        op->next_due = due;
    int64_t *kn = &op->kg_next[g->kg - op->ctx.kg_first];
    if (due < *kn)
        *kn = due;
    return tm_store_batch_put(op->wb, op->cf, g->kg, op->key.data, op->key.len, "", 0);
}

/*
 * Writes every touched window back (data and timer) and emits the
 * corrections of fired windows; clears the table.
 */
static int write_back(tm_operator_t *op, tm_collector_t *out, char *errstr, size_t errstr_size)
{
    int rc = 0;
    for (int gi = 0; rc == 0 && gi < op->ngroups; gi++) {
        grp_t *g = op->groups[gi];
        for (int i = 0; rc == 0 && i < g->nw; i++) {
            win_t *w = g->w[i];
            if (!w->dirty)
                continue;
            bool keep = !w->gone && w->rows > 0;
            if (w->stored) {
                /* The stored key and timer go; a kept window writes its own below. */
                if ((rc = win_key(op, g, w->start, w->end)) == 0 && !keep)
                    rc = tm_store_batch_delete(op->wb, op->cf, g->kg, op->key.data, op->key.len);
                if (rc == 0 && !keep)
                    rc = put_timer(op, g, w, w->fired, true);
            }
            if (rc != 0)
                break;
            if (!keep) {
                /* A fired window that went (emptied, or merged into another): retract it. */
                if (w->old != NULL)
                    rc = emit(op, out, TM_OP_DELETE, w->old, NULL, errstr, errstr_size);
                continue;
            }
            tm_row_t *now = NULL;
            if (w->fired && (rc = build_result(op, g, w, &now, errstr, errstr_size)) != 0)
                break;
            if (w->fired && w->old != NULL)
                rc = emit(op, out, TM_OP_UPDATE, w->old, now, errstr, errstr_size);
            else if (w->fired)
                rc = emit(op, out, TM_OP_CREATE, NULL, now, errstr, errstr_size);
            if (rc == 0 && (rc = win_encode(op, g, w, &op->val)) == 0 &&
                (rc = win_key(op, g, w->start, w->end)) == 0)
                rc = tm_store_batch_put(op->wb, op->cf, g->kg, op->key.data, op->key.len,
                                        op->val.data, op->val.len);
            if (rc == 0 && !w->stored)
                rc = put_timer(op, g, w, w->fired, false);
        }
    }
    groups_clear(op);
    if (rc == 0)
        rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    return rc;
}

static int scratch_reset(tm_operator_t *op)
{
    tm_batch_unref(op->scratch);
    op->scratch = tm_batch_new();
    return op->scratch ? 0 : TM_ENOMEM;
}

static int window_process(tm_operator_t *op, int input, const tm_batch_t *batch,
                          tm_collector_t *out, char *errstr, size_t errstr_size)
{
    (void)input;
    int rc = scratch_reset(op);
    for (uint32_t i = 0; rc == 0 && i < batch->count; i++) {
        const tm_record_t *rec = &batch->recs[i];
        const tm_row_t *img[2];
        rc = tm_operator_images(&op->ctx, rec, img, errstr, errstr_size);
        if (rc == 0 && img[0] != NULL)
            rc = apply_image(op, img[0], -1, errstr, errstr_size);
        if (rc == 0 && img[1] != NULL)
            rc = apply_image(op, img[1], 1, errstr, errstr_size);
    }
    if (rc == 0)
        rc = write_back(op, out, errstr, errstr_size);
    else
        groups_clear(op);
    if (rc == 0)
        rc = tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
    if (rc == 0 && op->late != NULL)
        rc = tm_collector_flush(op->ctx.side_out, &op->late, op->ctx.uid, errstr, errstr_size);
    return rc;
}

/* ---- firing ---- */

/* Every owned key group's earliest timer (at open and restore: firings keep them current). */
static int find_next_due(tm_operator_t *op, char *errstr, size_t errstr_size)
{
    return tm_evstate_earliest_timers(op->it, op->ctx.kg_first, op->ctx.kg_last, op->kg_next,
                                      &op->next_due, errstr, errstr_size);
}

static int fresh_iter(tm_operator_t *op)
{
    tm_store_iter_free(op->it);
    op->it = NULL;
    return tm_store_iter_new(op->ctx.store, op->cf, op->ctx.kg_first, op->ctx.kg_last, "t", 1,
                             &op->it);
}

typedef struct due_timer {
    int kg;
    int kind;
    int64_t start, end;
    uint8_t *g;
    size_t glen;
} due_timer_t;

/* Fires (or cleans up) every window whose timer is due at `wm`. */
static int fire_until(tm_operator_t *op, int64_t wm, tm_collector_t *out, char *errstr,
                      size_t errstr_size)
{
    if (wm < op->next_due)
        return 0;
    int rc = fresh_iter(op);
    due_timer_t *v = NULL;
    size_t nv = 0, cap = 0;
    for (int kg = op->ctx.kg_first; rc == 0 && kg <= op->ctx.kg_last; kg++) {
        int64_t *kn = &op->kg_next[kg - op->ctx.kg_first];
        if (*kn > wm)
            continue; /* nothing due in this key group */
        if ((rc = tm_store_iter_seek(op->it, kg, "t", 1, false)) != 0)
            break;
        tm_store_entry_t e;
        *kn = INT64_MAX;
        while ((rc = tm_store_iter_next(op->it, &e, errstr, errstr_size)) == 1) {
            if (e.klen < 26) {
                rc = tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                               "window_agg %s: a timer in key group %d is malformed",
                               op->ctx.uid, kg);
                break;
            }
            int64_t due = tm_evstate_get_time(e.key + 1);
            if (due > wm) {
                *kn = due; /* the key group's next timer once these are gone */
                break;
            }
            if (nv == cap) {
                cap = cap ? 2 * cap : 64;
                due_timer_t *nvv = realloc(v, sizeof(*v) * cap);
                if (nvv == NULL) {
                    rc = TM_ENOMEM;
                    break;
                }
                v = nvv;
            }
            due_timer_t *t = &v[nv];
            t->kg = kg;
            t->kind = e.key[9];
            t->start = tm_evstate_get_time(e.key + 10);
            t->end = tm_evstate_get_time(e.key + 18);
            t->glen = e.klen - 26;
            if ((t->g = malloc(t->glen ? t->glen : 1)) == NULL) {
                rc = TM_ENOMEM;
                break;
            }
            memcpy(t->g, e.key + 26, t->glen);
            nv++;
        }
        rc = rc < 0 ? rc : 0;
    }
    if (rc == 0)
        rc = scratch_reset(op);
    for (size_t i = 0; rc == 0 && i < nv; i++) {
        due_timer_t *t = &v[i];
        win_t *w = NULL;
        /* The timer goes in any case. */
        if ((rc = timer_key(op, t->kind, t->kind == TIMER_FIRE ? t->end - 1
                                                               : tm_evstate_sat_add(t->end - 1, lateness(op)),
                            t->start, t->end, t->g, t->glen)) != 0 ||
            (rc = tm_store_batch_delete(op->wb, op->cf, t->kg, op->key.data, op->key.len)) != 0)
            break;
        grp_t *gp = calloc(1, sizeof(*gp));
        if (gp == NULL) {
            rc = TM_ENOMEM;
            break;
        }
        gp->kg = t->kg;
        gp->glen = t->glen;
        if ((gp->g = malloc(t->glen ? t->glen : 1)) == NULL) {
            grp_free(op, gp);
            rc = TM_ENOMEM;
            break;
        }
        memcpy(gp->g, t->g, t->glen);
        rc = load_win(op, gp, t->start, t->end, &w, errstr, errstr_size);
        if (rc == 0 && w != NULL && t->kind == TIMER_FIRE && !w->fired) {
            tm_row_t *r = NULL;
            if (w->rows > 0 && (rc = build_result(op, gp, w, &r, errstr, errstr_size)) == 0)
                rc = emit(op, out, TM_OP_CREATE, NULL, r, errstr, errstr_size);
            bool keep = lateness(op) > 0 && tm_evstate_sat_add(t->end - 1, lateness(op)) > wm;
            if (rc == 0 && (rc = win_key(op, gp, t->start, t->end)) == 0) {
                if (!keep) {
                    rc = tm_store_batch_delete(op->wb, op->cf, t->kg, op->key.data, op->key.len);
                } else {
                    w->fired = true;
                    if ((rc = win_encode(op, gp, w, &op->val)) == 0 &&
                        (rc = win_key(op, gp, t->start, t->end)) == 0)
                        rc = tm_store_batch_put(op->wb, op->cf, t->kg, op->key.data, op->key.len,
                                                op->val.data, op->val.len);
                    if (rc == 0)
                        rc = put_timer(op, gp, w, true, false);
                }
            }
        } else if (rc == 0 && w != NULL && t->kind == TIMER_CLEANUP && w->fired) {
            if ((rc = win_key(op, gp, t->start, t->end)) == 0)
                rc = tm_store_batch_delete(op->wb, op->cf, t->kg, op->key.data, op->key.len);
        }
        grp_free(op, gp);
        /* Emit in batches: a watermark may fire many windows. */
        if (rc == 0 && op->scratch->arena.used_total > ((size_t)64 << 20))
            rc = scratch_reset(op);
    }
    for (size_t i = 0; i < nv; i++)
        free(v[i].g);
    free(v);
    if (rc == 0)
        rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    if (rc == 0)
        rc = fresh_iter(op);
    if (rc == 0) {
        /* The scan above (and put_timer for timers written since) kept kg_next current. */
        op->next_due = INT64_MAX;
        for (int i = 0; i <= op->ctx.kg_last - op->ctx.kg_first; i++)
            if (op->kg_next[i] < op->next_due)
                op->next_due = op->kg_next[i];
    }
    if (rc == 0)
        rc = tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
    return rc;
}

static int window_on_watermark(tm_operator_t *op, int64_t ts_us, int64_t *forward_us,
                               tm_collector_t *out, char *errstr, size_t errstr_size)
{
    (void)forward_us;
    if (ts_us <= op->wm)
        return 0;
    op->wm = ts_us;
    return fire_until(op, ts_us, out, errstr, errstr_size);
}

static int window_on_barrier(tm_operator_t *op, uint64_t id, tm_collector_t *out, char *errstr,
                             size_t errstr_size)
{
    (void)id;
    int rc = tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
    if (rc != 0 || op->wm == op->saved_wm)
        return rc;
    /* Every owned key group records the watermark, so a rescaled job finds it (restore). */
    rc = tm_evstate_save_watermark(op->wb, op->cf, op->ctx.kg_first, op->ctx.kg_last, op->wm);
    if (rc == 0)
        rc = tm_store_batch_commit(op->wb, errstr, errstr_size);
    if (rc == 0)
        op->saved_wm = op->wm;
    return rc;
}

static int window_on_end(tm_operator_t *op, tm_collector_t *out, char *errstr,
                         size_t errstr_size)
{
    if (tm_shutdown_is_stopping())
        return tm_collector_flush(out, &op->out, op->ctx.uid, errstr, errstr_size);
    /* The end of a bounded input: every window fires (Flink's MAX_WATERMARK). */
    op->wm = INT64_MAX;
    return fire_until(op, INT64_MAX, out, errstr, errstr_size);
}

static int window_restore(tm_operator_t *op, char *errstr, size_t errstr_size)
{
    /*
     * The watermark of the checkpoint: the lowest any owned key group kept
     * (after rescaling, key groups come from subtasks that may have seen
     * different watermarks; the lowest is the one every one of them passed).
     */
    char what[300];
    snprintf(what, sizeof(what), "window_agg %s", op->ctx.uid);
    int64_t wm;
    bool any;
    int rc = tm_evstate_restore_watermark(op->ctx.store, op->cf, op->ctx.kg_first,
                                          op->ctx.kg_last, &op->val, what, &wm, &any, errstr,
                                          errstr_size);
    if (rc != 0)
        return rc;
    if (any)
        op->wm = op->saved_wm = wm;
    rc = fresh_iter(op);
    return rc ? rc : find_next_due(op, errstr, errstr_size);
}

static void window_free(tm_operator_t *op)
{
    if (op == NULL)
        return;
    groups_clear(op);
    free(op->groups);
    free(op->slots);
    free(op->kg_next);
    tm_batch_unref(op->out);
    tm_batch_unref(op->late);
    tm_batch_unref(op->scratch);
    tm_store_batch_free(op->wb);
    tm_store_iter_free(op->it);
    tm_buf_release(&op->key);
    tm_buf_release(&op->val);
    tm_buf_release(&op->tmp);
    free(op);
}

static const tm_operator_ops_t window_agg_ops = {
    .name = "window_agg",
    .ninputs = 1,
    .process = window_process,
    .on_watermark = window_on_watermark,
    .on_barrier = window_on_barrier,
    .on_end = window_on_end,
    .restore = window_restore,
    .free = window_free,
};

int tm_window_agg_new(const void *spec, const tm_operator_ctx_t *ctx,
                      const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                      size_t errstr_size)
{
    const tm_window_agg_spec_t *s = spec;
    *out = NULL;
    if (ctx->store == NULL)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "window_agg %s needs a state store (a stateful stage)", ctx->uid);
    if (s->size_us <= 0 || s->slide_us < 0 ||
        (s->slide_us > 0 && s->size_us / s->slide_us > TM_WINDOW_MAX_PER_ROW))
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "window_agg %s: invalid window size or slide", ctx->uid);
    tm_operator_t *op = calloc(1, sizeof(*op));
    if (op == NULL)
        return TM_ENOMEM;
    op->spec = s;
    op->ctx = *ctx;
    op->wm = op->saved_wm = INT64_MIN;
    op->next_due = INT64_MAX;
    op->kg_next = malloc(sizeof(*op->kg_next) * (size_t)(ctx->kg_last - ctx->kg_first + 1));
    tm_buf_init(&op->key);
    tm_buf_init(&op->val);
    tm_buf_init(&op->tmp);
    int rc = op->kg_next != NULL ? tm_store_cf(ctx->store, ctx->uid, &op->cf, errstr, errstr_size)
                                 : TM_ENOMEM;
    if (rc == 0)
        rc = tm_store_batch_new(ctx->store, &op->wb);
    if (rc == 0)
        rc = fresh_iter(op);
    if (rc == 0)
        rc = find_next_due(op, errstr, errstr_size);
    if (rc != 0) {
        window_free(op);
        return rc;
    }
    *ops = &window_agg_ops;
    *out = op;
    return 0;
}
