/*
 * mysql_int.h — internals shared by the files of the MySQL/MariaDB source.
 *
 *     mysql.c        descriptor, options, source_new/open/run/describe/free,
 *                    the start checks, positions and the position file
 *     my_catalog.c   information_schema: what a TABLE_MAP does not carry
 *     my_srcinfo.c   the source block of snapshot rows (Debezium's binlog fields)
 *     my_stream.c    the binlog stream through Connector/C (mariadb_rpl_*):
 *                    events to records and batches, transactions, barriers,
 *                    acknowledgements, reconnects
 *     binlog_rows.c  the pure row-event decoder (no I/O)
 *     my_snapshot.c  the initial snapshot (consistent read, chunks, progress)
 *     my_gtid.c      GTID sets (MariaDB domain-server-seq lists), pure
 *
 * Positions.  A position is where the next transaction starts: a binlog file
 * and the offset after the last complete transaction's commit event, plus the
 * MariaDB GTID set there (one domain-server-seq per domain), which a MariaDB
 * resume goes by (my_stream.c: connect_stream).  Its
 * ack token (tm_batch_t.ack_token) packs the file's sequence number and the
 * offset, (seq << 32) | offset, which orders as the binlog does; the position
 * string (tm_source_emit_barrier, the position file) is
 * "file=<name> pos=<offset> gtid=<gtid>".
 *
 * Ownership: the tm_source_t owns its connections, the table cache (table
 * maps and one reference per schema) and the batches it has not emitted.
 *
 * Thread: source_new/open/describe/free on the main thread, source_run and
 * everything it calls on the source thread; the two never overlap.
 */
#ifndef TM_MYSQL_MYSQL_INT_H
#define TM_MYSQL_MYSQL_INT_H

#include "common/srcq.h"
#include "mysql/binlog_rows.h"
#include "runtime/connector.h"

#include <mysql.h>
#include <stdbool.h>
#include <stdint.h>

#define TM_MY_COMP "mysql"

typedef enum {
    TM_MY_SNAP_INITIAL = 0,
    TM_MY_SNAP_NEVER,
    TM_MY_SNAP_INITIAL_ONLY,
    TM_MY_SNAP_WHEN_NEEDED,
} tm_my_snapmode_t;

/* One entry of the `tables` option: db.table, or db.* (table NULL). */
typedef struct tm_my_tablespec {
    char *db;
    char *table;
} tm_my_tablespec_t;

/* A binlog position; see the file comment. */
typedef struct tm_my_pos {
    char file[192];
    uint64_t offset;
    /*
     * MariaDB's GTID set at this position: the last domain-server-seq of
     * each replication domain ("0-1-7,1-2-30"), as @@gtid_binlog_pos; "" when
     * unknown (then resuming uses the file and offset).
     */
    char gtid[192];
} tm_my_pos_t;

/* What the source knows about one table (by db.table). */
typedef struct tm_my_table {
    char *db;
    char *table;
    bool wanted;
    uint64_t table_id;      /* of the last TABLE_MAP */
    tm_my_tablemap_t *map;  /* the last TABLE_MAP (owned) */
    tm_schema_t *schema;    /* its schema; one reference owned here */
    /*
     * A DDL statement named the table since its TABLE_MAP was cached: the
     * next TABLE_MAP is completed from information_schema again even if its
     * binlog shape is the same (a renamed column keeps its type).
     */
    bool refresh;
} tm_my_table_t;

struct tm_source {
    /* Configuration: set by source_new, immutable afterwards. */
    char *name;
    char *host;
    int port;
    char *user;
    char *password;
    char *ssl_mode;
    char *ssl_ca;
    char *ssl_cert;
    char *ssl_key;
    tm_my_tablespec_t *specs;
    int nspecs;
    uint32_t server_id;
    tm_my_snapmode_t snapmode;
    int64_t heartbeat_ms;
    int64_t connect_timeout_ms;
    int64_t reconnect_ms;
    tm_my_mapping_t mapping;
    char *state_dir; /* <state_dir>/mysql-<name> */
    uint64_t restore_token;
    char *restore_position;
    int64_t chunk_size; /* snapshot_chunk_size */

    /* Snapshot plan (decided at open, my_snapshot.c runs it). */
    bool do_snapshot;        /* read the tables before streaming */
    bool snapshot_finished;  /* initial_only: snapshot.done exists, nothing to do */
    uint64_t snapshot_token; /* ack token of the snapshot's position; 0 before */

    /* Decided at open. */
    MYSQL *conn;          /* queries and checks */
    char server_version[64];
    bool is_mariadb;
    char binlog_base[160]; /* "binlog" of binlog.000001 */
    tm_my_pos_t start;     /* where streaming starts */
    uint32_t checksum_alg; /* at open: 0 none, 1 CRC32 (each file's FDE decides when streaming) */

    /* Source thread state. */
    tm_my_table_t *tables;
    int ntables, tablecap;
    tm_batch_t *cur;
    tm_srcq_t outq; /* the shared source-output path (common/srcq.h) */
    uint64_t sealed_token;
};

/* ---- mysql.c ---- */

/*
 * Connects src->... to the server with the configured TLS options.  On failure
 * TM_ECONN (network, retriable) or TM_ESOURCE (access denied, TLS refused)
 * with the server's message and what to do.
 */
int tm_my_connect(tm_source_t *src, MYSQL **out, char *errstr, size_t errstr_size);
/* Runs a statement that returns no rows; TM_ESOURCE/TM_ECONN with the server's message. */
int tm_my_exec(MYSQL *conn, const char *sql, char *errstr, size_t errstr_size);
/* The ack token of a position: (file sequence << 32) | offset; 0 if the name has no number. */
uint64_t tm_my_pos_token(const tm_my_pos_t *pos);
/* Formats a position as "file=<name> pos=<offset> gtid=<gtid>". */
void tm_my_pos_format(const tm_my_pos_t *pos, char *buf, size_t buflen);
/* Parses the format above; TM_EINVAL if it is not one. */
int tm_my_pos_parse(const char *s, tm_my_pos_t *pos);
/* Writes <state>/position (fsync + rename). */
int tm_my_pos_save(tm_source_t *src, const tm_my_pos_t *pos, char *errstr, size_t errstr_size);
/* True if `db`.`table` matches the tables option. */
bool tm_my_wanted(const tm_source_t *src, const char *db, const char *table);

/* ---- my_catalog.c ---- */

/*
 * Fills what a TABLE_MAP lacks (names, signedness, charsets, labels, key)
 * from information_schema, and marks MariaDB JSON columns.  TM_ESOURCE when
 * the catalog no longer matches the event's columns.
 */
int tm_my_catalog_complete(tm_source_t *src, tm_my_tablemap_t *map, char *errstr,
                           size_t errstr_size);

/*
 * True if `stmt` (a QUERY event's statement) is DDL (ALTER, CREATE, DROP,
 * RENAME, TRUNCATE) that names `table` as an identifier, quoted or not.  No
 * SQL is parsed beyond that: a false positive costs one catalog read.
 */
bool tm_my_catalog_ddl_names(const char *stmt, size_t len, const char *table);
/*
 * Marks every captured table a DDL statement names for a catalog refresh
 * (tm_my_table_t.refresh); returns how many were marked.
 */
int tm_my_catalog_note_ddl(tm_source_t *src, const char *stmt, size_t len);

/* ---- my_srcinfo.c ---- */

/*
 * Fills a snapshot row's source information as Debezium's MySQL/MariaDB
 * connectors write it: the position the snapshot is consistent with (its
 * file and offset), row 0, server_id 0, no GTID; `snapshot` is the
 * TM_SNAPSHOT_* marker, ts_us the snapshot's time.  0, or TM_ENOMEM when the
 * file name cannot be interned.
 */
int tm_my_snapshot_source(const tm_source_t *src, const tm_my_pos_t *pos, int64_t ts_us,
                          uint8_t snapshot, tm_source_info_t *info);

/*
 * Reads the first row of `sql` into cells (up to ncells, 256 bytes each;
 * NULL gives ""); TM_ENOTFOUND when there is no row.
 */
int tm_my_query_row(MYSQL *conn, const char *sql, char cells[][256], int ncells, char *errstr,
                    size_t errstr_size);

/* ---- my_gtid.c ---- */

/*
 * Puts `gtid` (domain-server-seq) into the set (comma-separated, one entry
 * per domain): it replaces the entry of its domain or is appended.
 * TM_EINVAL if gtid is not one, TM_EINVAL too if the set would not fit in cap.
 */
int tm_my_gtid_set_update(char *set, size_t cap, const char *gtid);
/*
 * Whether a server whose oldest binlog starts after the GTID list `oldest`
 * (its Gtid_list event, "0-1-5,1-2-9" or "[0-1-5]") still has every
 * transaction after the set `need`: for each domain of `oldest`, `need` must
 * have reached that domain's seq.  Returns 1 (covered), 0 (not: the first
 * missing domain is described in `why`), or TM_EINVAL for a malformed set.
 */
int tm_my_gtid_covered(const char *need, const char *oldest, char *why, size_t whylen);

/* ---- my_snapshot.c ---- */

/*
 * Takes a consistent snapshot (START TRANSACTION WITH CONSISTENT SNAPSHOT
 * and the binlog position that matches it), reads every captured table as
 * op 'r' records, and sets src->start to the position streaming continues
 * from and src->snapshot_token to its token (carried by the last batch).
 */
int tm_my_snapshot_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr,
                       size_t errstr_size);
/* initial_only: waits until the sinks hold the snapshot, then writes snapshot.done. */
int tm_my_snapshot_finish(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr,
                          size_t errstr_size);

/* ---- my_stream.c ---- */

int tm_my_stream_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size);
/* Frees the table cache. */
void tm_my_tables_free(tm_source_t *src);

#endif
