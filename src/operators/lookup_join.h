/*
 * lookup_join.h — the lookup join (Flink's LookupJoinOperator with a
 * partial cache): enrich each change of a stream with the row of a lookup
 * table (runtime/connector.h, TM_CONNECTOR_LOOKUP) read by key at
 * processing time.
 *
 * One input, the probe side, laid out as in_schema (records of another
 * shape are read by column name).  Per input batch:
 *
 *   1. every image of every record (an update's before and after) gives a
 *      probe key (probe_keys columns); a key with a NULL column never
 *      matches and is not looked up;
 *   2. the batch's distinct keys are served from the cache (lookup_cache.h:
 *      LRU, lookup_ttl, negative entries when cache_missing) and the rest
 *      fetched with ONE lookup_fetch call, then cached;
 *   3. records are emitted in input order.  A found row passes `dim_filter`
 *      (over the table's declared columns; failing = no match), gets the
 *      computed columns `dim_ext` appended (the dimension side's layout,
 *      dim_schema) and is joined to the image (dim_left: dim ++ probe, else
 *      probe ++ dim), then `residual` (over that layout) decides the match.
 *      INNER drops an image without a match, LEFT pads it with NULLs.
 *
 * Change kinds: each output record keeps its input record's op, as calc
 * does with a filter: insert/read → insert/read of the joined after image;
 * delete → delete of the joined before image; update → update when both
 * images join, delete (before) or insert (after) when only one does,
 * nothing when neither does or both joined images are equal; an update
 * without a before image (upsert input) → update of the joined after.  The
 * before image is looked up again like the after: when the dimension row
 * changed between an insert and its retraction, the retraction carries the
 * new dimension values (Flink does the same; docs/sql.md "Lookup joins").
 * Truncate and message records are dropped.
 *
 * No keyed state: nothing goes to the store and nothing is checkpointed
 * (the cache is rebuilt by lookups after a restart).  Each subtask opens its
 * own handle (lookup_new + lookup_open in tm_lookup_join_new, on the main
 * thread) and frees it in free.
 *
 * Metrics: lookup_cache_hits / lookup_cache_misses per distinct key of a
 * batch, lookup_queries per lookup_fetch call.
 *
 * Thread: its subtask's.
 */
#ifndef TM_OPERATORS_LOOKUP_JOIN_H
#define TM_OPERATORS_LOOKUP_JOIN_H

#include "expr/expr.h"
#include "operators/join.h"
#include "runtime/connector.h"
#include "runtime/operator.h"

typedef struct tm_lookup_join_spec {
    tm_join_type_t type;             /* TM_JOIN_INNER, or TM_JOIN_LEFT: the probe side is kept */
    bool dim_left;                   /* output is dim ++ probe (the table is the SQL's left side) */
    const tm_schema_t *in_schema;    /* the probe input's layout */
    const int *probe_keys;           /* in_schema columns, pairwise with lookup.key_cols */
    const tm_connector_t *conn;      /* has TM_CONNECTOR_LOOKUP */
    tm_lookup_config_t lookup;       /* nkeys, key_cols, key_schema (the probe keys' types) */
    const tm_schema_t *dim_schema;   /* lookup.declared ++ one column per dim_ext */
    const tm_expr_t *const *dim_ext; /* over lookup.declared */
    int ndim_ext;
    const tm_expr_t *dim_filter;     /* over lookup.declared; NULL = true */
    const tm_expr_t *residual;       /* over the output layout; NULL = true */
    tm_schema_t *out_schema;         /* probe ++ dim, or dim ++ probe */
    int64_t cache_rows;              /* 0: no cache */
    int64_t ttl_us;                  /* 0: cached rows never expire */
    bool cache_missing;              /* cache keys without a row too */
    /* Test hook: the clock of the cache (µs); NULL = tm_mono_us. */
    int64_t (*clock_us)(void *arg);
    void *clock_arg;
} tm_lookup_join_spec_t;

/* tm_operator_new_fn for a const tm_lookup_join_spec_t *spec (opens the lookup handle). */
int tm_lookup_join_new(const void *spec, const tm_operator_ctx_t *ctx,
                       const tm_operator_ops_t **ops, tm_operator_t **out, char *errstr,
                       size_t errstr_size);

#endif
