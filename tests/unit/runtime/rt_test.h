/*
 * rt_test.h — helpers shared by the runtime unit tests: a two-column keyed
 * table t(k int64 key, v int64), its exchange key, and batch builders.
 */
#ifndef TM_RT_TEST_H
#define TM_RT_TEST_H

#include "core/buf.h"
#include "core/row.h"
#include "core/schema.h"
#include "runtime/graph.h"
#include "state/keygroup.h"
#include "tm_test.h"

#include <stdint.h>
#include <string.h>

static inline tm_schema_t *rt_schema(void)
{
    tm_schema_t *s = tm_schema_new(2);
    tm_schema_set_str(&s->source_name, "src");
    tm_schema_set_str(&s->namespace, "public");
    tm_schema_set_str(&s->table, "t");
    tm_schema_set_str(&s->cols[0].name, "k");
    s->cols[0].type = TM_T_INT64;
    s->cols[0].key_index = 0;
    tm_schema_set_str(&s->cols[1].name, "v");
    s->cols[1].type = TM_T_INT64;
    s->cols[1].key_index = -1;
    tm_schema_finish(s);
    return s;
}

static inline tm_row_t *rt_row(tm_batch_t *b, const tm_schema_t *s, int64_t k, int64_t v)
{
    tm_row_t *r = tm_batch_new_row(b, s);
    tm_row_set_null(r, 0, false);
    tm_row_set_null(r, 1, false);
    r->vals[0].u.i64 = k;
    r->vals[1].u.i64 = v;
    return r;
}

static inline tm_record_t *rt_add(tm_batch_t *b, tm_schema_t *s, tm_op_t op, tm_row_t *before,
                                  tm_row_t *after)
{
    tm_record_t *r = tm_batch_add(b, s, op);
    r->before = before;
    r->after = after;
    return r;
}

/* The exchange key of t: k's 8 bytes, big-endian. */
static inline int rt_key(const void *arg, const tm_schema_t *schema, const tm_row_t *row,
                         tm_buf_t *out)
{
    (void)arg;
    if (row == NULL || schema->nkeys <= 0 || tm_row_is_null(row, 0))
        return TM_EINVAL;
    uint8_t k[8];
    uint64_t v = (uint64_t)row->vals[0].u.i64;
    for (int i = 0; i < 8; i++)
        k[i] = (uint8_t)(v >> (56 - 8 * i));
    return tm_buf_append(out, k, sizeof(k));
}

/* The subtask that must receive key k among n, by keygroup.h. */
static inline int rt_owner(int64_t k, int n, int maxp)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)k >> (56 - 8 * i));
    return tm_keygroup_worker(tm_keygroup_of(b, 8, maxp), n, maxp);
}

static const tm_exchange_key_t rt_exchange_key = {rt_key, NULL};

#endif
