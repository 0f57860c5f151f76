/*
 * postgres_int.h — internals shared by the files of the PostgreSQL source.
 *
 *     postgres.c     descriptor, options, source_new/open/run/describe/free,
 *                    checks and slot/publication setup
 *     pg_catalog.c   connections and catalog queries: tables, columns, types,
 *                    relation schemas
 *     pg_snapshot.c  the initial snapshot (keyset chunks, progress, marker)
 *     pg_stream.c    START_REPLICATION, transaction assembly, batches,
 *                    acknowledgements, keepalives, heartbeats, reconnects
 *     pgoutput.c     message decoding (no intelligence)
 *     pg_types.c     type metadata and text parsing
 *     pg_binary.c    binary values (pgoutput's binary 'true'), as the text parses
 *     txbuf.c        spill files of streamed transactions
 *     pg_incr.c      incremental snapshots (DBLog watermarks), tables added
 *                    to a running job, the signal table
 *
 * Ownership: the tm_source_t owns both connections, every schema in the
 * relation cache (one reference each) and the batches it has not emitted.
 *
 * Thread: source_new/open/describe/free run on the main thread, source_run
 * and everything it calls on the source thread; the two never overlap.
 */
#ifndef TM_PG_POSTGRES_INT_H
#define TM_PG_POSTGRES_INT_H

#include "core/clock.h"
#include "postgres/pg_types.h"
#include "postgres/pgoutput.h"
#include "postgres/txbuf.h"
#include "runtime/connector.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>

#define TM_PG_COMP "postgres"
#define TM_PG_HEARTBEAT_PREFIX "tidemark_heartbeat"
/* The prefix of incremental snapshot watermarks (pg_logical_emit_message). */
#define TM_PG_INCR_PREFIX "tidemark"
/* How often the publication is polled for tables added to it. */
#define TM_PG_INCR_POLL_MS 5000

typedef struct tm_pg_incr tm_pg_incr_t;

typedef enum {
    TM_PG_SNAP_INITIAL = 0,
    TM_PG_SNAP_NEVER,
    TM_PG_SNAP_INITIAL_ONLY,
    TM_PG_SNAP_WHEN_NEEDED,
    TM_PG_SNAP_ALWAYS, /* re-read the tables on every start (backfills) */
} tm_pg_snapmode_t;

/* One entry of the `tables` option: a table, or every table of a schema ("s.*"). */
typedef struct tm_pg_tablespec {
    char *nspname;
    char *relname; /* NULL for "schema.*" */
} tm_pg_tablespec_t;

/* A table resolved in the catalog at open. */
typedef struct tm_pg_table {
    uint32_t relid;
    char *nspname;
    char *relname;
    double reltuples; /* pg_class estimate, < 0 if unknown */
} tm_pg_table_t;

/* What the source knows about one relation (by oid). */
typedef struct tm_pg_rel {
    uint32_t relid;
    bool wanted;         /* matches the `tables` option */
    char replident;      /* 'd', 'n', 'f', 'i' */
    tm_schema_t *schema; /* current version; one reference owned here */
    tm_pg_coltype_t *ct; /* per column of schema */
} tm_pg_rel_t;

/* An event waiting to be handed to the runtime, in order. */
typedef struct tm_pg_out {
    tm_batch_t *batch;   /* either a batch ... */
    tm_schema_t *schema; /* ... or a schema change (owned reference) ... */
    uint64_t barrier;    /* ... or checkpoint barrier `barrier` ... */
    uint64_t barrier_token; /* ... complete up to this end LSN */
    char *barrier_pos;      /* the barrier's position string (owned), or NULL */
} tm_pg_out_t;

#define TM_PG_OUTQ_MAX 64

struct tm_source {
    /* Configuration: set by source_new, immutable afterwards. */
    char *name;
    char *dsn;
    char *dsn_masked;
    tm_pg_tablespec_t *specs;
    int nspecs;
    char *slot;
    char *publication;
    bool create;
    bool streaming;
    bool binary; /* ask for binary values on PostgreSQL 14+ (pg_binary.h) */
    tm_pg_snapmode_t snapmode;
    int64_t chunk_size;
    int64_t heartbeat_ms;
    int64_t status_ms;
    int64_t reconnect_ms;
    tm_schema_t *declared;
    char *state_dir; /* <state_dir>/postgres-<name> */

    /* Connections. */
    PGconn *conn; /* normal: catalog, snapshot, heartbeats */
    PGconn *repl; /* replication=database */
    char *dbname;
    int server_version;

    /* Decided at open. */
    tm_pg_table_t *tables;
    int ntables;
    bool do_snapshot;
    bool pub_partial; /* create = false and the publication lists only some tables of a schema.* */
    bool snapshot_exported;  /* conn holds a transaction with the slot's snapshot */
    bool slot_for_streaming; /* false for initial_only: no slot at all */
    uint64_t snapshot_lsn;
    uint32_t snapshot_xid; /* txid_current() of the snapshot transaction (Debezium's txId) */
    bool marker_pending; /* write snapshot.done once acked >= snapshot_lsn */

    /* Source thread state. */
    tm_pg_typecache_t *types;
    bool binary_off; /* a captured column's type has no binary decoder: text from now on */
    tm_pg_rel_t *rels;
    int nrels, relcap;
    tm_schema_t *msg_schema;
    tm_batch_t *cur;
    tm_pg_out_t outq[TM_PG_OUTQ_MAX];
    int outq_head, outq_len;
    uint64_t sealed_token; /* highest ack_token put on a batch */
    uint64_t restore_token; /* end LSN committed by the last completed checkpoint */

    /* Incremental snapshots (pg_incr.c). */
    char *signal_nsp, *signal_rel; /* option signal_table, or NULL */
    char *incr_restore; /* the restored position's JSON after " incremental=", or NULL */
    tm_pg_incr_t *incr; /* while streaming */
};

/* ---- postgres.c ---- */

/* True when a declared column of type `declared` can read a column of type `actual`. */
bool tm_pg_types_compatible(tm_type_t declared, tm_type_t actual);

/* ---- pg_catalog.c ---- */

/*
 * Copies a libpq message into buf without its trailing newline and with inner
 * newlines folded, so it reads well on one log line.  Returns buf.
 */
const char *tm_pg_msg(const char *m, char *buf, size_t buflen);

/*
 * Connects with the DSN plus TM_PG_SESSION_OPTIONS (and replication=database
 * when `replication`).  On failure returns TM_ESOURCE or TM_ECONN with libpq's
 * message, the masked DSN and what to do.
 */
int tm_pg_connect(tm_source_t *src, bool replication, PGconn **out, char *errstr,
                  size_t errstr_size);
/* Makes sure src->conn is usable, reconnecting once if it is not. */
int tm_pg_conn_ensure(tm_source_t *src, char *errstr, size_t errstr_size);
/* Runs a command that returns no rows; TM_ESOURCE with the server's message on error. */
int tm_pg_exec(PGconn *conn, const char *sql, char *errstr, size_t errstr_size);
/* Quotes an identifier ("a""b"); caller frees. */
char *tm_pg_quote_ident(const char *s);
/* Quotes a string literal ('a''b'); caller frees. */
char *tm_pg_quote_literal(const char *s);

/* Loads catalog entries for every type oid reachable from oid that is not known. */
int tm_pg_types_resolve(tm_source_t *src, uint32_t oid, char *errstr, size_t errstr_size);
/* Finds a relation in the cache, or NULL. */
tm_pg_rel_t *tm_pg_rel_find(tm_source_t *src, uint32_t relid);
/* True if nsp.rel matches the `tables` option. */
bool tm_pg_wanted(const tm_source_t *src, const char *nspname, const char *relname);
/*
 * Installs `schema` (consuming the caller's reference) and its coltypes as the
 * current shape of relid.  *changed is set when a previous, different shape
 * existed; then the schema's version is one above the old one.
 */
int tm_pg_rel_install(tm_source_t *src, uint32_t relid, char replident, tm_schema_t *schema,
                      tm_pg_coltype_t *ct, bool *changed);
/* Builds the schema of a Relation message (types resolved on src->conn). */
int tm_pg_schema_from_relation(tm_source_t *src, const tm_pg_msg_t *msg, tm_schema_t **out,
                               tm_pg_coltype_t **ct, char *errstr, size_t errstr_size);
/*
 * Builds the schema of a table from the catalog (the columns the publication
 * sends, the primary key, the replica identity).  Runs on src->conn, inside the
 * snapshot transaction when there is one.
 */
int tm_pg_schema_from_catalog(tm_source_t *src, const tm_pg_table_t *t, tm_schema_t **out,
                              tm_pg_coltype_t **ct, char *replident, char **rowfilter,
                              char *errstr, size_t errstr_size);
/* Frees the relation cache. */
void tm_pg_rels_free(tm_source_t *src);

/* ---- pg_snapshot.c ---- */

int tm_pg_snapshot_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size);
/* Writes <state>/snapshot.done (fsync + rename). */
int tm_pg_marker_write(tm_source_t *src, char *errstr, size_t errstr_size);
/* True if the marker exists and names the configured slot. */
bool tm_pg_marker_exists(const tm_source_t *src);
/* Writes once the snapshot is acknowledged; returns 0 when nothing is to do. */
int tm_pg_marker_check(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size);

/* ---- pg_stream.c ---- */

int tm_pg_stream_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size);
/* Parses one tuple into a row of rel's schema. */
int tm_pg_tuple_to_row(tm_batch_t *batch, const tm_pg_rel_t *rel, const tm_pg_tuple_t *tup,
                       tm_row_t **out, char *errstr, size_t errstr_size);

/*
 * Adds a record at the stream's current place (source fields as a streamed
 * change at `lsn`) to src->cur; NULL when out of memory.  `st` is the
 * stream's private state, as pg_stream.c hands it to the pg_incr hooks.
 */
tm_record_t *tm_pg_stream_add(void *st, tm_schema_t *schema, tm_op_t op, uint64_t lsn);

/* ---- pg_incr.c ---- */

/*
 * Registers the source for the admin API (source_open, main thread): requests
 * queue from then on and are taken once it streams.
 */
int tm_pg_incr_register(tm_source_t *src);
/* Registers if needed, restores the jobs, compares the captured tables (source thread). */
int tm_pg_incr_start(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size);
/* Unregisters and frees (answers any waiting request). */
void tm_pg_incr_stop(tm_source_t *src);
/*
 * Housekeeping: takes requests, polls the publication, and reads the next
 * chunk when `idle` (nothing waits downstream) and none is in flight.
 */
int tm_pg_incr_tick(tm_source_t *src, bool idle, char *errstr, size_t errstr_size);
/* A 'tidemark' message: opens or closes the window (emitting the chunk through st). */
int tm_pg_incr_on_message(tm_source_t *src, void *st, const tm_pg_msg_t *msg, uint64_t lsn,
                          char *errstr, size_t errstr_size);
/* A streamed change of rel (rows parsed): drops its keys from the chunk in the window. */
void tm_pg_incr_on_change(tm_source_t *src, const tm_pg_rel_t *rel, const tm_row_t *before,
                          const tm_row_t *after);
void tm_pg_incr_on_truncate(tm_source_t *src, uint32_t relid);
/* A Relation message was installed: a changed shape drops the chunk; a new table joins. */
int tm_pg_incr_on_relation(tm_source_t *src, const tm_pg_rel_t *rel, char *errstr,
                           size_t errstr_size);
/* The stream handed on transaction xid's commit (kept for wait_in_flight, pg_incr.c). */
void tm_pg_incr_note_commit(tm_source_t *src, uint32_t xid);
/* The replication session was reset: the chunk in flight is read again. */
void tm_pg_incr_reset(tm_source_t *src);
/* True if rel is the signal table. */
bool tm_pg_incr_is_signal(const tm_source_t *src, const tm_pg_rel_t *rel);
/* A change of the signal table (Debezium's execute-snapshot and friends). */
int tm_pg_incr_on_signal(tm_source_t *src, const tm_pg_rel_t *rel, const tm_pg_msg_t *msg);
/* The barrier position: the LSN, plus " incremental=<json>" while jobs are active. */
char *tm_pg_incr_position(const tm_source_t *src, uint64_t token);

#endif
