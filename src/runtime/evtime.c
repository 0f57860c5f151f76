/*
 * evtime.c — per-partition bounded out-of-orderness watermarks and idle
 * partitions for one source (see evtime.h for the invariants).
 *
 * Thread: the source's own.
 */
#include "runtime/evtime.h"
#include "core/error.h"
#include "core/log.h"

#include <stdlib.h>
#include <string.h>

int tm_evtime_init(tm_evtime_t *g, const char *column, int64_t delay_us,
                   int64_t idle_timeout_ms, int64_t now_ms)
{
    memset(g, 0, sizeof(*g));
    if (delay_us < 0 || idle_timeout_ms < 0)
        return TM_EINVAL;
    if (column != NULL && (g->column = strdup(column)) == NULL)
        return TM_ENOMEM;
    g->delay_us = delay_us;
    g->idle_timeout_ms = idle_timeout_ms;
    int rc = tm_evtime_partitions(g, 1, now_ms);
    if (rc != 0)
        tm_evtime_destroy(g);
    return rc;
}

void tm_evtime_destroy(tm_evtime_t *g)
{
    for (int i = 0; i < g->ncols; i++)
        tm_schema_unref(g->cols[i].schema);
    free(g->column);
    free(g->parts);
    memset(g, 0, sizeof(*g));
}

int tm_evtime_partitions(tm_evtime_t *g, int n, int64_t now_ms)
{
    if (n <= g->nparts)
        return 0;
    if (n > g->capparts) {
        int ncap = g->capparts ? g->capparts : 4;
        while (ncap < n)
            ncap *= 2;
        tm_evtime_part_t *v = realloc(g->parts, sizeof(*v) * (size_t)ncap);
        if (v == NULL)
            return TM_ENOMEM;
        g->parts = v;
        g->capparts = ncap;
    }
    for (int i = g->nparts; i < n; i++) {
        g->parts[i].max_us = INT64_MIN;
        g->parts[i].active_ms = now_ms;
    }
    g->nparts = n;
    return 0;
}

void tm_evtime_touch(tm_evtime_t *g, int part, int64_t now_ms)
{
    if (part < 0 || tm_evtime_partitions(g, part + 1, now_ms) != 0)
        return;
    g->parts[part].active_ms = now_ms;
}

/*
 * The column's index in `schema`, or -1 when it lacks it or it is not a
 * timestamp (a table of a stream without declared columns; logged once).
 */
static int resolve(tm_evtime_t *g, tm_schema_t *schema)
{
    for (int i = 0; i < g->ncols; i++)
        if (g->cols[i].schema == schema)
            return g->cols[i].index;
    int i = schema != NULL ? tm_schema_find(schema, g->column) : -1;
    if (i >= 0 && schema->cols[i].type != TM_T_TIMESTAMP &&
        schema->cols[i].type != TM_T_TIMESTAMPTZ)
        i = -1;
    if (i < 0 && schema != NULL && !g->warned) {
        g->warned = true;
        TM_WARN("runtime", "a table has no timestamp column of the watermark's name; its rows do "
                           "not move the watermark",
                "table=%s.%s column=%s", schema->namespace ? schema->namespace : "",
                schema->table ? schema->table : "?", g->column);
    }
    if (schema == NULL)
        return -1;
    /* Round robin: a stream of more tables than slots re-resolves, which is only slower. */
    tm_evtime_col_t *c = &g->cols[g->ncols < TM_EVTIME_SCHEMAS ? g->ncols++ : g->next_col++];
    g->next_col %= TM_EVTIME_SCHEMAS;
    if (c->schema != NULL)
        tm_schema_unref(c->schema);
    c->schema = tm_schema_ref(schema);
    c->index = i;
    return i;
}

int tm_evtime_observe(tm_evtime_t *g, const tm_batch_t *batch, int part, const int32_t *parts,
                      int64_t now_ms)
{
    if (batch->count == 0)
        return 0;
    /* The partitions this batch touches exist before the loop, which then only compares. */
    int top = part;
    if (parts != NULL)
        for (uint32_t i = 0; i < batch->count; i++)
            if (parts[i] > top)
                top = parts[i];
    if (top < 0 || tm_evtime_partitions(g, top + 1, now_ms) != 0)
        return top < 0 ? TM_EINVAL : TM_ENOMEM;
    tm_evtime_part_t *pp = g->parts;
    if (parts == NULL)
        pp[part].active_ms = now_ms;
    const tm_schema_t *last = NULL;
    int index = -1;
    for (uint32_t i = 0; i < batch->count; i++) {
        const tm_record_t *r = &batch->recs[i];
        tm_evtime_part_t *pt = parts != NULL ? &pp[parts[i] < 0 ? 0 : parts[i]] : &pp[part];
        if (parts != NULL)
            pt->active_ms = now_ms;
        int64_t t;
        if (g->column == NULL) {
            /* Commit-time mode: the source database's commit time, else when it was produced. */
            t = r->src.ts_us != 0 ? r->src.ts_us : r->proc_us;
            if (t == 0)
                continue;
        } else {
            const tm_row_t *row = r->after != NULL ? r->after : r->before;
            if (row == NULL)
                continue;
            if (r->schema != last || last == NULL) {
                last = r->schema;
                index = resolve(g, r->schema);
            }
            if (index < 0 || tm_row_is_null(row, index))
                continue; /* invariant 2 */
            t = row->vals[index].u.i64;
        }
        if (t > pt->max_us)
            pt->max_us = t;
    }
    return 0;
}

bool tm_evtime_current(const tm_evtime_t *g, int64_t now_ms, int64_t *wm_us, bool *all_idle)
{
    int64_t min = INT64_MAX;
    bool live = false, waiting = false;
    for (int i = 0; i < g->nparts; i++) {
        const tm_evtime_part_t *p = &g->parts[i];
        if (g->idle_timeout_ms > 0 && now_ms - p->active_ms >= g->idle_timeout_ms)
            continue;
        live = true;
        if (p->max_us == INT64_MIN) {
            waiting = true; /* invariant 1 */
            continue;
        }
        int64_t w;
        if (__builtin_sub_overflow(p->max_us, g->delay_us, &w))
            w = INT64_MIN + 1;
        if (w < min)
            min = w;
    }
    *all_idle = g->nparts > 0 && !live;
    if (!live || waiting)
        return false;
    *wm_us = min;
    return true;
}
