/*
 * exchange.h — routes a producer's output batch to the subtasks of the
 * consumer of one edge (DESIGN §13; graph.h says what each kind means).
 *
 *     batch ──► FORWARD    one target: the batch itself (a new reference)
 *           ──► SINGLE     subtask 0: the batch itself
 *           ──► BROADCAST  every subtask: the batch itself
 *           ──► HASH       each subtask: a child batch with only its records
 *
 * HASH children are shallow: their records point at the parent's rows, and
 * each child holds a reference to the parent (tm_batch_t.parent), so the
 * parent's arena and schemas live as long as any child.  An update whose
 * before and after images have different keys is split into DELETE(before)
 * and CREATE(after), each routed by its own key.  Records without images or
 * without a usable key (truncate, message, a table without primary key) go
 * to every subtask.
 *
 * Invariants:
 *   1. Per target, records keep their order in the parent.
 *   2. With carry_tokens, every target receives the parent's ack_token on the
 *      last batch it gets from this parent (an empty child if it got no
 *      record), so acknowledgement reaches every consumer subtask.
 *   3. A record's target is tm_keygroup_worker(tm_keygroup_of(key), n, maxp),
 *      the same function that assigns key groups to stores.
 *
 * Thread: one exchange is used by one producer thread (it owns scratch
 * buffers); the key encoder may be shared.
 */
#ifndef TM_RUNTIME_EXCHANGE_H
#define TM_RUNTIME_EXCHANGE_H

#include "core/buf.h"
#include "core/row.h"
#include "runtime/graph.h"

#include <stdbool.h>
#include <stddef.h>

typedef struct tm_exchange {
    tm_exchange_kind_t kind;
    tm_exchange_key_t key; /* HASH only */
    int ntargets;          /* the consumer's parallelism (sinks: 1) */
    int max_parallelism;   /* HASH only */
    int self;              /* FORWARD: the producer's subtask */
    bool carry_tokens;     /* invariant 2 */
    tm_buf_t kb, kb2;      /* scratch keys */
    tm_batch_t **child;    /* per target, while routing */
} tm_exchange_t;

/*
 * Receives one routed batch for `target` (ownership passes).  Returns 0 or a
 * negative TM_E* that stops the routing and is returned by route.
 */
typedef int (*tm_exchange_deliver_fn)(void *arg, int target, tm_batch_t *batch);

int tm_exchange_init(tm_exchange_t *x, tm_exchange_kind_t kind, const tm_exchange_key_t *key,
                     int ntargets, int max_parallelism, int self, bool carry_tokens);
void tm_exchange_destroy(tm_exchange_t *x);
/*
 * The targets a control event (barrier, watermark, …) goes to from this
 * producer: all of them, except FORWARD (the producer's own subtask) and
 * SINGLE (subtask 0).  Fills targets[] (room for ntargets); returns how many.
 */
int tm_exchange_control_targets(const tm_exchange_t *x, int *targets);
/*
 * Routes `batch` (borrowed: the caller keeps its reference) through
 * `deliver`.  Returns 0, TM_ENOMEM, or what deliver returned.
 */
int tm_exchange_route(tm_exchange_t *x, tm_batch_t *batch, tm_exchange_deliver_fn deliver,
                      void *arg);
/*
 * The target of one row under HASH: 0..ntargets-1, TM_EINVAL when the row
 * has no usable key, or TM_ENOMEM.  For tests and for operators that need
 * to know where a key lives.
 */
int tm_exchange_target_of(tm_exchange_t *x, const tm_schema_t *schema, const tm_row_t *row);

#endif
