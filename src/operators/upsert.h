/*
 * upsert.h — changelog normalisation keyed by primary key (Flink's
 * ChangelogNormalize), the first stateful operator.
 *
 * Role: turns whatever a source delivers — an upsert stream, a replayed
 * snapshot, updates without before images (REPLICA IDENTITY DEFAULT),
 * unchanged-TOAST placeholders — into a proper retract stream in which every
 * update and delete carries the exact row it retracts.  State: per key, the
 * last row image (state/rowcodec.h) in the operator's column family.
 *
 *   input                     state for key     output
 *   r/c/u, after == stored    row               nothing (a duplicate)
 *   r/c, key unknown          -                 r/c as is; store after
 *   r/c, key known            row               UPDATE before=row; store after
 *   u,   key known            row               UPDATE before=row; store after
 *   u,   key unknown          -                 CREATE (an insert: nothing to retract)
 *   u,   primary key changed  old, new          DELETE old key (if known), then the
 *                                               new key as an r/c/u above
 *   d,   key known            row               DELETE before=row; state deleted
 *   d,   key unknown          -                 nothing; counted in unknown_deletes
 *   t (truncate)              the table's keys  passed on; the table's keys deleted
 *   m (message)               -                 passed on
 *
 * Unchanged-TOAST datums (TM_DATUM_UNAVAILABLE) of an after image are filled
 * from the stored row before anything is compared or stored.
 *
 * State key: table tag ‖ primary key, where the table tag is
 * u16 length ‖ "source_name␟db␟namespace␟table" (␟ = 0x1f).  Keying per
 * table lets one operator serve a source that delivers several tables and
 * lets a truncate delete exactly one table's keys with range deletes.  The
 * key group is that of the whole state key (tm_upsert_keygroups()).
 *
 * Invariants:
 *   1. After tm_upsert_process() returns, the state reflects every record it
 *      consumed (its write batch is committed), so a checkpoint taken between
 *      calls is consistent with the records emitted.
 *   2. Emitted records own nothing outside the out batch: rows, strings and
 *      message payloads are copied into its arena, and the out batch takes
 *      its own schema references.
 *   3. Memory per call is bounded: scratch rows live in an operator arena
 *      reset per record; nothing is kept between calls but the write batch,
 *      which is empty.
 *
 * As an operator of the runtime (operator.h, tm_upsert_op_new) it runs in a
 * stage fed by a HASH exchange keyed by tm_upsert_exchange_key(), whose bytes
 * are exactly the state key, so each subtask receives the keys whose key
 * groups it owns; the exchange splits a primary-key-changing update into a
 * delete and an insert.  Records without a key (truncate, message, a table
 * without primary key) reach every subtask: each applies a truncate to its
 * own keys, and only subtask 0 emits them.
 *
 * Thread: the stage subtask that owns the store.
 */
#ifndef TM_OPERATORS_UPSERT_H
#define TM_OPERATORS_UPSERT_H

#include "core/buf.h"
#include "core/row.h"
#include "runtime/operator.h"
#include "state/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct tm_upsert tm_upsert_t;

typedef struct tm_upsert_stats {
    uint64_t records_in;       /* input records consumed */
    uint64_t records_out;      /* records emitted */
    uint64_t duplicates;       /* dropped: the after image equals the stored row */
    uint64_t unknown_deletes;  /* dropped: delete of a key without state */
    uint64_t unknown_updates;  /* update of a key without state, emitted as an insert */
    uint64_t upgraded_inserts; /* insert of a known key, emitted as an update */
    uint64_t key_changes;      /* updates that changed the primary key */
    uint64_t toast_filled;     /* unchanged-TOAST datums filled from state */
    uint64_t shape_changes;    /* stored row of an older schema shape: source images passed on */
    uint64_t no_key;           /* no usable primary key: passed on unchanged */
    uint64_t truncates;        /* truncates (each deleted its table's keys) */
    uint64_t foreign;          /* skipped: the key belongs to another worker */
    uint64_t state_reads;      /* state lookups (one per key image) */
} tm_upsert_stats_t;

/*
 * Creates the operator on `store` with column family `uid` (the plan's
 * stable operator uid).  max_parallelism must match the store's (0 = take
 * the store's).  Returns 0, TM_ECONFIG, TM_EIO or TM_ENOMEM.
 */
int tm_upsert_new(tm_store_t *store, const char *uid, int max_parallelism, tm_upsert_t **out,
                  char *errstr, size_t errstr_size);
/*
 * Restricts the operator to the key groups [kg_first, kg_last] its worker
 * owns (keygroup.h), for a runtime that hands every worker the whole input
 * batch.  A record whose key lives elsewhere is consumed without output; a
 * primary-key-changing update emits only the half whose key is owned (the
 * retracting delete, or the new key's insert).  Records without a key
 * (truncate, message, no primary key) are emitted only when `keyless` is
 * true, by exactly one worker; a truncate still deletes the table's keys in
 * every worker.  The default is everything: [0, max_parallelism), keyless.
 */
void tm_upsert_set_owner(tm_upsert_t *op, int kg_first, int kg_last, bool keyless);

/* Accepts NULL; returns NULL.  The state stays in the store. */
tm_upsert_t *tm_upsert_free(tm_upsert_t *op);

/*
 * Processes in->recs[start ..] and appends what it emits to `out`.  Returns
 * the number of input records consumed (>= 0); fewer than in->count - start
 * means `out` is full: send it and call again with start advanced by the
 * return value.  A record is consumed only together with all of its output
 * (at most two records), so resuming never duplicates or loses one.  On a
 * negative TM_E* the operator must be freed; the state to resume from is the
 * last checkpoint's.  `out->ack_token` is left to the caller.
 */
int tm_upsert_process(tm_upsert_t *op, const tm_batch_t *in, uint32_t start, tm_batch_t *out,
                      char *errstr, size_t errstr_size);

/* Counters since tm_upsert_new().  Thread: the owner (copy them for metrics). */
const tm_upsert_stats_t *tm_upsert_stats(const tm_upsert_t *op);

/*
 * Routing helper: the key groups a record's state lives in.  Returns 0 for
 * a record without state (truncate, message, no key), 1 (kg[0]) for most,
 * 2 (kg[0] = old key, kg[1] = new key) for an update that changes the
 * primary key, or TM_ENOMEM.
 */
int tm_upsert_keygroups(const tm_record_t *rec, int max_parallelism, int kg[2]);

/*
 * The operator.h face of this operator (a tm_operator_new_fn).  `spec` may
 * be NULL; the uid, store, key-group range and subtask come from ctx.
 */
int tm_upsert_op_new(const void *spec, const tm_operator_ctx_t *ctx,
                     const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                     size_t errstr_size);
/*
 * tm_exchange_key_t.encode for a HASH exchange in front of the operator: the
 * state key of `row` (table tag ‖ primary key).  TM_EINVAL when the table has
 * no primary key.  `arg` is unused.  Thread: any.
 */
int tm_upsert_exchange_key(const void *arg, const tm_schema_t *schema, const tm_row_t *row,
                           tm_buf_t *out);

#endif
