/*
 * row.h — the typed changelog record and the batch that carries it.
 *
 * A change is a record with an operation and up to two row images (DESIGN §2).
 * Flink's RowKind is the anchor; an update travels as ONE record that carries
 * both images, and tm_record_kinds() tells how it splits into -U/+U.
 *
 *      op         before          after        RowKinds
 *      READ (r)   NULL            row          +I
 *      CREATE (c) NULL            row          +I
 *      UPDATE (u) row or NULL     row          -U, +U   (before NULL: +U only)
 *      DELETE (d) row (key/full)  NULL         -D
 *      TRUNCATE   NULL            NULL         (control-like, per table)
 *      MESSAGE    NULL            NULL         (logical decoding message)
 *
 * Invariants:
 *   1. Every row, value and string of a batch lives in the batch's arena,
 *      except the interned names a source block points to (tm_intern),
 *      which live as long as the process.
 *   2. A batch holds one reference to every schema its records point to.
 *   3. Control events (barrier, watermark, schema change, end of input) never
 *      travel inside a batch; see runtime/queue.h.
 *   4. A batch is immutable once emitted; consumers only read it.  With
 *      several consumers it is shared and reference counted.
 *
 * Thread: filled by one thread, then handed over through a queue.
 */
#ifndef TM_CORE_ROW_H
#define TM_CORE_ROW_H

#include "core/arena.h"
#include "core/schema.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Datum flags. */
enum {
    TM_DATUM_UNAVAILABLE = 1 << 0, /* unchanged TOASTed value: not sent by the source */
    TM_DATUM_WIDE = 1 << 1,        /* NUMERIC too wide for 128 bits: u.var holds its text */
    TM_DATUM_NAN = 1 << 2,         /* NUMERIC NaN / ±Infinity: u.var holds its text */
};

typedef struct tm_datum {
    union {
        int64_t i64;
        double f64;
        bool b;
        __int128 dec; /* NUMERIC unscaled value */
        /*
         * INTERVAL: `us` (the same storage as i64) is the whole interval in
         * microseconds, a month counted as 30.4375 days (Debezium's
         * MicroDuration); `months` says how many calendar months of it came
         * from month/year fields, so timestamp ± interval can step by
         * calendar months as PostgreSQL does.  Zero when the source of the
         * value did not say (Debezium input, timestamp differences).
         */
        struct {
            int64_t us;
            int32_t months;
        } iv;
        struct {
            const char *ptr; /* arena memory; NUL-terminated for convenience */
            uint32_t len;
        } var;
    } u;
    int16_t scale; /* NUMERIC: scale of this value */
    uint8_t flags;
} tm_datum_t;

typedef struct tm_row {
    uint64_t *nulls; /* bit i set = column i is NULL */
    tm_datum_t *vals;
} tm_row_t;

static inline bool tm_row_is_null(const tm_row_t *row, int i)
{
    return (row->nulls[i >> 6] >> (i & 63)) & 1;
}

static inline void tm_row_set_null(tm_row_t *row, int i, bool isnull)
{
    if (isnull)
        row->nulls[i >> 6] |= (uint64_t)1 << (i & 63);
    else
        row->nulls[i >> 6] &= ~((uint64_t)1 << (i & 63));
}

typedef enum tm_op {
    TM_OP_READ = 'r',
    TM_OP_CREATE = 'c',
    TM_OP_UPDATE = 'u',
    TM_OP_DELETE = 'd',
    TM_OP_TRUNCATE = 't',
    TM_OP_MESSAGE = 'm',
} tm_op_t;

/* Flink RowKind. */
typedef enum tm_rowkind {
    TM_KIND_INSERT,        /* +I */
    TM_KIND_UPDATE_BEFORE, /* -U */
    TM_KIND_UPDATE_AFTER,  /* +U */
    TM_KIND_DELETE,        /* -D */
} tm_rowkind_t;

/*
 * Debezium's source.snapshot values.  A snapshot marks the first record of
 * the whole snapshot FIRST, the last LAST, and otherwise the first and last
 * record of each table; any value but FALSE and INCREMENTAL is "a snapshot
 * read" (tm_snapshot_read).
 */
enum {
    TM_SNAPSHOT_FALSE = 0,
    TM_SNAPSHOT_TRUE,
    TM_SNAPSHOT_LAST,
    TM_SNAPSHOT_INCREMENTAL,
    TM_SNAPSHOT_FIRST,
    TM_SNAPSHOT_FIRST_IN_DATA_COLLECTION,
    TM_SNAPSHOT_LAST_IN_DATA_COLLECTION,
};

/*
 * Which connector filled a record's source information, and so which member
 * of tm_source_info_t.u is valid.  TM_SOURCE_OTHER: none is (datagen,
 * derived streams, a Debezium event read back without PostgreSQL positions).
 */
typedef enum tm_source_kind {
    TM_SOURCE_OTHER = 0,
    TM_SOURCE_POSTGRES,
    TM_SOURCE_MYSQL,
} tm_source_kind_t;

/* PostgreSQL's part of a record's source information (u.pg). */
typedef struct tm_pg_source {
    uint64_t commit_lsn; /* LSN of the last commit before this change: sequence[0] */
    /*
     * Where the record's transaction is known to start or the one before it
     * to end, for Debezium's transaction metadata (format/debezium.h,
     * tm_dbz_txmon_t): in a transaction (xid != 0), the WAL position of its
     * BEGIN, which is the LSN in the id of its BEGIN event; outside one (a
     * non-transactional message), the end LSN of the last transaction before
     * it, the LSN in that transaction's END event.  0 if unknown.
     */
    uint64_t tx_lsn;
    uint32_t xid; /* transaction id, 0 if unknown */
} tm_pg_source_t;

/* MySQL/MariaDB's part of a record's source information (u.my): Debezium's binlog fields. */
typedef struct tm_my_source {
    /*
     * The binlog file of the event.  Interned (tm_intern): it lives as long
     * as the process, so copying the record to another batch needs no copy
     * of the text.
     */
    const char *file;
    const char *gtid_uuid; /* MySQL GTID: the source uuid text, interned; NULL otherwise */
    uint64_t gtid_seq;     /* GTID sequence number (gtid_kind != 0) */
    uint32_t gtid_domain;  /* MariaDB GTID domain */
    uint32_t gtid_server;  /* MariaDB GTID server id */
    uint32_t server_id;    /* server id in the event's header */
    uint32_t event_pos;    /* offset of the rows event in the file (Debezium's pos) */
    uint32_t row;          /* row number within the rows event */
    uint32_t thread;       /* thread id of the transaction's BEGIN, 0 if unknown (null) */
    uint8_t gtid_kind;     /* TM_MY_GTID_* */
    bool mariadb;          /* the server is MariaDB (Debezium's "mariadb" connector) */
} tm_my_source_t;

enum { TM_MY_GTID_NONE = 0, TM_MY_GTID_MARIADB, TM_MY_GTID_MYSQL };

/*
 * Where a record came from.  The common part holds what every reader may
 * use (time, snapshot marker, the ordering position); each connector has
 * its own small block in `u`, named by `kind`, which only readers that know
 * the connector look into (format/debezium).  The blocks hold numbers and
 * interned text only, so a record is copied with plain assignment.
 */
typedef struct tm_source_info {
    int64_t ts_us; /* commit (or snapshot) time, µs since epoch */
    /*
     * Where the change is in the source's log, ordered as the log is:
     * PostgreSQL's LSN of this change; MySQL's position token of its rows
     * event ((file number << 32) | offset).  0 if unknown.
     */
    uint64_t pos;
    uint8_t snapshot; /* TM_SNAPSHOT_* */
    uint8_t kind;     /* tm_source_kind_t: which member of u is valid */
    union {
        tm_pg_source_t pg;
        tm_my_source_t my;
    } u;
} tm_source_info_t;

/* The PostgreSQL block of `s`, or a zeroed one when the record is not PostgreSQL's. */
static inline const tm_pg_source_t *tm_source_pg(const tm_source_info_t *s)
{
    static const tm_pg_source_t none;
    return s->kind == TM_SOURCE_POSTGRES ? &s->u.pg : &none;
}

/*
 * Interns a string: the same text always gives the same pointer, valid
 * until the process ends (never freed).  For the few distinct names a
 * source block points to (binlog file names, server uuids).  NULL when
 * memory ran out, or when the table is full (TM_INTERN_MAX texts or
 * TM_INTERN_MAX_BYTES bytes: input from outside cannot grow it without
 * bound).  Thread-safe.
 */
#define TM_INTERN_MAX 65536
#define TM_INTERN_MAX_BYTES (16u << 20)
const char *tm_intern(const char *s, size_t len);

/*
 * Sets the GTID of a MySQL block from its text: MariaDB's domain-server-seq
 * or MySQL's uuid:seq (the uuid interned).  Anything else (or an empty
 * text) leaves no GTID (gtid_kind TM_MY_GTID_NONE), Debezium's null.
 */
void tm_my_source_set_gtid(tm_my_source_t *my, const char *gtid, size_t len);

typedef struct tm_record {
    tm_op_t op;
    tm_schema_t *schema; /* borrowed: the batch holds the reference */
    tm_row_t *before;    /* NULL when absent */
    tm_row_t *after;     /* NULL when absent */
    int64_t proc_us;     /* when the source produced the record, µs since epoch */
    tm_source_info_t src;
    /* TM_OP_MESSAGE only. */
    const char *msg_prefix;
    const uint8_t *msg_content;
    uint32_t msg_len;
} tm_record_t;

/* Number of RowKinds a record expands to (0..2), written to kinds[]. */
int tm_record_kinds(const tm_record_t *rec, tm_rowkind_t kinds[2]);

#define TM_BATCH_MAX 1024

typedef struct tm_batch {
    atomic_int refcount;
    tm_arena_t arena;
    uint32_t count;
    tm_record_t recs[TM_BATCH_MAX];
    /* Distinct schemas referenced by recs; the batch owns one ref each. */
    tm_schema_t **schemas;
    uint32_t nschemas, schemas_cap;
    /*
     * Acknowledgement token: the source-defined position that is complete
     * once everything up to and including this batch is durable (for
     * PostgreSQL the commit LSN of the last whole transaction in or before the
     * batch).  0 means "no new complete position".
     */
    uint64_t ack_token;
    /*
     * Which source's position ack_token is (the runtime's index of the
     * source, set when the source emits; -1 before).  Batches of several
     * sources can meet in one stage, and tokens are only comparable per
     * source.
     */
    int16_t ack_source;
    /*
     * A batch whose records borrow rows of another batch (an exchange's
     * per-subtask child) holds one reference to that parent here, so the
     * parent's arena and schemas outlive the child.  NULL otherwise.
     */
    struct tm_batch *parent;
} tm_batch_t;

tm_batch_t *tm_batch_new(void);
/*
 * A new empty batch that holds a reference to `parent` (see tm_batch_t.parent)
 * and its ack_source; its records may point at rows of the parent.
 */
tm_batch_t *tm_batch_new_child(tm_batch_t *parent);
tm_batch_t *tm_batch_ref(tm_batch_t *batch);
/* Drops one reference; frees the arena and schema refs at zero.  Accepts NULL. Returns NULL. */
tm_batch_t *tm_batch_unref(tm_batch_t *batch);
static inline bool tm_batch_full(const tm_batch_t *batch)
{
    return batch->count >= TM_BATCH_MAX;
}
/*
 * Appends a zeroed record for `schema` (taking a batch reference on the schema
 * if it is new to the batch).  Returns NULL if the batch is full or memory ran
 * out.
 */
tm_record_t *tm_batch_add(tm_batch_t *batch, tm_schema_t *schema, tm_op_t op);
/* Allocates a row for `schema` in the batch arena, all columns NULL. */
tm_row_t *tm_batch_new_row(tm_batch_t *batch, const tm_schema_t *schema);
/* Copies bytes into the arena and sets a var datum. */
int tm_batch_set_var(tm_batch_t *batch, tm_datum_t *d, const void *p, size_t len);

/*
 * NUMERIC helpers.  tm_numeric_parse() reads a decimal string ("-12.340",
 * "1.5e5") into an unscaled __int128 + scale, or sets TM_DATUM_WIDE /
 * TM_DATUM_NAN and keeps the text when it does not fit.  TM_EINVAL for bad
 * syntax, and for a value beyond PostgreSQL's limits (131072 digits before
 * the point, 16383 after).
 */
int tm_numeric_parse(tm_batch_t *batch, tm_datum_t *d, const char *s, size_t len);
/* Formats a NUMERIC datum as a plain decimal string; returns length written (excl. NUL). */
size_t tm_numeric_format(const tm_datum_t *d, char *buf, size_t buflen);

#endif
