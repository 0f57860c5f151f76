/*
 * my_stream.c — streaming row changes from the binlog.
 *
 * Role: connects as a replica through MariaDB Connector/C's binlog API
 * (mariadb_rpl_open/fetch: COM_BINLOG_DUMP from a file and offset), checks
 * each event's CRC32, follows transactions (GTID … XID/COMMIT, or a
 * standalone DDL group), decodes TABLE_MAP and rows events with
 * binlog_rows.c, and hands records to the runtime in batches through the
 * shared source-output path (tm_source_emit & co.), with schema changes and
 * checkpoint barriers in order between them.
 *
 *     server ──► mariadb_rpl_fetch ──► CRC32 ──┬─► GTID/XID/QUERY ──► transaction bounds, position
 *                                              ├─► TABLE_MAP ──► table cache, schema change
 *                                              └─► rows ──► records ──► batch ──► outq ──► emit
 *
 * The library's blocking fetch returns at least every heartbeat period (the
 * server sends a HEARTBEAT event on an idle stream), so a stop request is
 * seen within heartbeat_interval, and a read that times out means the
 * connection is dead.
 *
 * Invariants:
 *   1. Acknowledgement.  A batch's ack_token is the position token (see
 *      mysql_int.h) after the last transaction complete in or before it.  The
 *      position file is written only for tokens tm_source_acked() covers.
 *   2. No duplicates after a reconnect.  Streaming restarts at done (the end
 *      of the last complete transaction: its GTID set on MariaDB, else its
 *      file and offset); if records of the transaction that
 *      was open were already put into batches, that many rows of it are
 *      skipped when it arrives again.
 *   3. Order.  Schema changes, batches and barriers leave in the order they
 *      were produced; barriers go in only between transactions.
 *   4. Every event is checked against its CRC32 before anything reads it
 *      (when the server writes checksums).
 *
 * Thread: the source thread.
 */
#include "mysql/mysql_int.h"

#include "core/clock.h"
#include "core/errcount.h"
#include "core/error.h"
#include "core/failpoint.h"
#include "core/log.h"

#include <errmsg.h>
#include <inttypes.h>
#include <mariadb_rpl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Sealed events allowed to wait before input stops being read. */
#define MAX_WAITING 2
/* Sealed (token, position) pairs remembered for the position file. */
#define ACKRING 128
/* MariaDB GTID event flag: the group has no XID/COMMIT (DDL). */
#define GTID_FL_STANDALONE 1
/* Event header flag: the server made the event up (fake ROTATE at dump start). */
#define EV_ARTIFICIAL 0x20

typedef struct ackpos {
    uint64_t token;
    tm_my_pos_t pos;
} ackpos_t;

typedef struct stream {
    tm_source_t *src;
    tm_source_ctx_t *ctx;
    MYSQL *conn;
    MARIADB_RPL *rpl;
    MARIADB_RPL_EVENT *ev;

    char file[192];        /* binlog file being read */
    tm_my_pos_t done;      /* after the last complete transaction (invariant 2) */
    uint64_t done_token;
    /* The open transaction. */
    bool tx_active;
    bool tx_standalone;
    char tx_gtid[192];
    uint64_t tx_rows;   /* rows put into batches in this transaction */
    uint64_t skip_rows; /* rows to skip of the first transaction after a reconnect */
    /*
     * The open transaction's part of the records' source block (GTID,
     * thread), and the interned name of the file being read (ifile, for
     * st->file), so a record's block is filled without a lookup.
     */
    tm_my_source_t txsrc;
    const char *ifile;
    bool untokened;     /* records emitted after the last token */

    ackpos_t ring[ACKRING];
    int ring_head, ring_len;
    uint64_t saved_token;
    bool ever_connected;
    bool crc;          /* events carry a CRC32 (see handle_event) */
    bool fde_logged;   /* the checksum setting was logged ... */
    bool fde_checksum; /* ... as this */
} stream_t;

/* ---- Output ---- */

static void ring_push(stream_t *st, uint64_t token, const tm_my_pos_t *pos)
{
    if (st->ring_len == ACKRING) {
        st->ring_head = (st->ring_head + 1) % ACKRING;
        st->ring_len--;
    }
    ackpos_t *a = &st->ring[(st->ring_head + st->ring_len++) % ACKRING];
    a->token = token;
    a->pos = *pos;
}

/*
 * Seals the current batch: it gets the token of the last complete
 * transaction, if that moved, and joins the queue.  As in pg_stream.c, an
 * empty batch carries a token when records were emitted without one, so
 * "everything emitted is acknowledged" can be told.
 */
static int seal(stream_t *st)
{
    tm_source_t *src = st->src;
    tm_batch_t *b = src->cur;
    bool empty = b == NULL || b->count == 0;
    if (empty && !(st->untokened && st->done_token > src->sealed_token))
        return 0;
    if (b == NULL && (b = tm_batch_new()) == NULL)
        return TM_ENOMEM;
    src->cur = NULL;
    if (st->done_token > src->sealed_token) {
        b->ack_token = st->done_token;
        src->sealed_token = st->done_token;
        ring_push(st, st->done_token, &st->done);
        st->untokened = st->tx_active && st->tx_rows > 0;
    } else {
        st->untokened = true;
    }
    tm_source_count(st->ctx, b->count, 0);
    int rc = tm_srcq_push_batch(&src->outq, b);
    if (rc != 0)
        tm_batch_unref(b);
    return rc;
}

static int flush_outq(stream_t *st, int timeout_ms)
{
    return tm_srcq_flush(&st->src->outq, st->ctx, timeout_ms);
}

static tm_record_t *add_record(stream_t *st, tm_schema_t *schema, tm_op_t op)
{
    tm_source_t *src = st->src;
    if (src->cur != NULL && tm_batch_full(src->cur) && seal(st) != 0)
        return NULL;
    if (src->cur == NULL && (src->cur = tm_batch_new()) == NULL)
        return NULL;
    return tm_batch_add(src->cur, schema, op);
}

/* Writes the position file for the newest acknowledged token (invariant 1). */
static int save_acked(stream_t *st, char *errstr, size_t errstr_size)
{
    uint64_t acked = tm_source_acked(st->ctx);
    const tm_my_pos_t *best = NULL;
    uint64_t best_token = 0;
    while (st->ring_len > 0 && st->ring[st->ring_head].token <= acked) {
        best = &st->ring[st->ring_head].pos;
        best_token = st->ring[st->ring_head].token;
        st->ring_head = (st->ring_head + 1) % ACKRING;
        st->ring_len--;
    }
    if (best == NULL || best_token <= st->saved_token)
        return 0;
    tm_my_pos_t copy = *best;
    int rc = tm_my_pos_save(st->src, &copy, errstr, errstr_size);
    if (rc == 0)
        st->saved_token = best_token;
    return rc;
}

/* ---- Barriers ---- */

/* Injects a requested barrier between transactions (invariant 3). */
static int maybe_barrier(stream_t *st)
{
    tm_source_t *src = st->src;
    uint64_t id = tm_source_barrier_due(st->ctx);
    if (id == 0 || st->tx_active || tm_srcq_has_barrier(&src->outq, id) ||
        tm_srcq_room(&src->outq) < 2)
        return 0;
    int rc = seal(st);
    if (rc != 0)
        return rc;
    char pos[512];
    tm_my_pos_format(&st->done, pos, sizeof(pos));
    if (st->done_token > src->sealed_token) {
        /* No batch carried this token: the barrier does, and the position file may follow it. */
        src->sealed_token = st->done_token;
        ring_push(st, st->done_token, &st->done);
    }
    return tm_srcq_push_barrier(&src->outq, id, st->done_token, pos);
}

/* ---- Tables ---- */

void tm_my_tables_free(tm_source_t *src)
{
    for (int i = 0; i < src->ntables; i++) {
        free(src->tables[i].db);
        free(src->tables[i].table);
        tm_my_tablemap_free(src->tables[i].map);
        tm_schema_unref(src->tables[i].schema);
    }
    free(src->tables);
    src->tables = NULL;
    src->ntables = src->tablecap = 0;
}

static tm_my_table_t *table_by_name(tm_source_t *src, const char *db, const char *table)
{
    for (int i = 0; i < src->ntables; i++)
        if (strcmp(src->tables[i].db, db) == 0 && strcmp(src->tables[i].table, table) == 0)
            return &src->tables[i];
    if (src->ntables == src->tablecap) {
        int cap = src->tablecap ? src->tablecap * 2 : 16;
        tm_my_table_t *v = realloc(src->tables, sizeof(*v) * (size_t)cap);
        if (v == NULL)
            return NULL;
        src->tables = v;
        src->tablecap = cap;
    }
    tm_my_table_t *t = &src->tables[src->ntables];
    memset(t, 0, sizeof(*t));
    t->db = strdup(db);
    t->table = strdup(table);
    if (t->db == NULL || t->table == NULL) {
        free(t->db);
        free(t->table);
        return NULL;
    }
    t->wanted = tm_my_wanted(src, db, table);
    src->ntables++;
    return t;
}

static tm_my_table_t *table_by_id(tm_source_t *src, uint64_t id)
{
    for (int i = 0; i < src->ntables; i++)
        if (src->tables[i].table_id == id && (src->tables[i].map != NULL || !src->tables[i].wanted))
            return &src->tables[i];
    return NULL;
}

/* True if two schemas of a table describe its columns alike, to the Debezium details. */
static bool same_schema(const tm_schema_t *a, const tm_schema_t *b)
{
    if (!tm_schema_equal_shape(a, b))
        return false;
    for (int i = 0; i < a->ncols; i++) {
        const tm_column_t *x = &a->cols[i], *y = &b->cols[i];
        if (x->length != y->length ||
            (x->semantic == NULL) != (y->semantic == NULL) ||
            (x->semantic != NULL && strcmp(x->semantic, y->semantic) != 0) ||
            !tm_column_default_equal(x, y))
            return false;
    }
    return true;
}

static int on_table_map(stream_t *st, const uint8_t *body, size_t len, char *errstr,
                        size_t errstr_size)
{
    tm_source_t *src = st->src;
    tm_my_tablemap_t *map = NULL;
    int rc = tm_my_tablemap_parse(body, len, &map, errstr, errstr_size);
    if (rc != 0)
        return rc;
    tm_my_table_t *t = table_by_name(src, map->db, map->table);
    if (t == NULL) {
        tm_my_tablemap_free(map);
        return TM_ENOMEM;
    }
    /* A table id belongs to one table at a time: forget older holders of it. */
    for (int i = 0; i < src->ntables; i++)
        if (&src->tables[i] != t && src->tables[i].table_id == map->table_id)
            src->tables[i].table_id = 0;
    t->table_id = map->table_id;
    if (!t->wanted) {
        tm_my_tablemap_free(map);
        return 0;
    }
    if (t->map != NULL && !t->refresh && tm_my_tablemap_same_binlog_shape(t->map, map)) {
        /* The usual case: one TABLE_MAP per transaction, same table (and catalog reads). */
        t->map->table_id = map->table_id;
        tm_my_tablemap_free(map);
        return 0;
    }
    if ((rc = tm_my_catalog_complete(src, map, errstr, errstr_size)) != 0) {
        tm_my_tablemap_free(map);
        return rc;
    }
    tm_schema_t *schema = NULL;
    rc = tm_my_schema_from_tablemap(map, src->name, &src->mapping, &schema, errstr, errstr_size);
    if (rc != 0) {
        tm_my_tablemap_free(map);
        return rc;
    }
    t->refresh = false;
    if (t->schema != NULL && same_schema(t->schema, schema)) {
        /* Read again after a DDL that changed nothing here: no new version. */
        tm_schema_unref(schema);
        schema = tm_schema_ref(t->schema);
    }
    bool changed = t->schema != NULL && schema != t->schema;
    if (changed) {
        schema->version = t->schema->version + 1;
        TM_INFO(TM_MY_COMP, "table shape changed", "source=%s table=%s.%s version=%" PRIu32,
                src->name, t->db, t->table, schema->version);
    }
    tm_my_tablemap_free(t->map);
    tm_schema_unref(t->schema);
    t->map = map;
    t->schema = schema;
    if (changed) {
        /* Invariant 3: the rows before the change leave first. */
        if ((rc = seal(st)) != 0)
            return rc;
        if ((rc = tm_srcq_push_schema(&src->outq, tm_schema_ref(schema))) != 0) {
            tm_schema_unref(schema);
            return rc;
        }
    }
    return 0;
}

static int on_rows(stream_t *st, const tm_my_event_header_t *h, const uint8_t *body, size_t len,
                   char *errstr, size_t errstr_size)
{
    tm_source_t *src = st->src;
    tm_my_rows_t r;
    tm_failpoint("mysql.stream.rows");
    int rc = tm_my_rows_parse(h->type, body, len, &r, errstr, errstr_size);
    if (rc != 0)
        return rc;
    tm_my_table_t *t = table_by_id(src, r.table_id);
    if (t == NULL)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                         "rows event for table id %" PRIu64 " without its TABLE_MAP (%s at %" PRIu32
                         ")",
                         r.table_id, st->file, h->next_pos);
    if (!t->wanted)
        return 0;
    tm_my_pos_t here = st->done;
    snprintf(here.file, sizeof(here.file), "%s", st->file);
    here.offset = h->next_pos >= h->size ? h->next_pos - h->size : 0;
    uint64_t lsn = tm_my_pos_token(&here);
    if (st->ifile == NULL || strcmp(st->ifile, st->file) != 0) {
        /* A new file (once per file, so the interned names stay few). */
        if ((st->ifile = tm_intern(st->file, strlen(st->file))) == NULL)
            return TM_ENOMEM;
    }
    st->txsrc.mariadb = src->is_mariadb;
    uint32_t row = 0; /* Debezium's row: the row's number within its rows event */
    /* One clock read per event: its rows arrived together (one per row showed in profiles). */
    int64_t now_us = tm_wall_us();
    for (;;) {
        if (st->src->cur != NULL && tm_batch_full(st->src->cur) && (rc = seal(st)) != 0)
            return rc;
        if (src->cur == NULL && (src->cur = tm_batch_new()) == NULL)
            return TM_ENOMEM;
        tm_row_t *before, *after;
        rc = tm_my_rows_next(&r, t->map, t->schema, src->cur, &before, &after, errstr,
                             errstr_size);
        if (rc < 0) {
            size_t n = strlen(errstr);
            snprintf(errstr + n, errstr_size - n, " (%s, event at %" PRIu64 ")", st->file,
                     here.offset);
            return rc;
        }
        if (rc == 0)
            return 0;
        if (st->skip_rows > 0) {
            /* Invariant 2: already emitted before the reconnect. */
            st->skip_rows--;
            st->tx_rows++;
            row++;
            continue;
        }
        tm_record_t *rec = add_record(st, t->schema, r.op);
        if (rec == NULL)
            return TM_ENOMEM;
        rec->before = before;
        rec->after = after;
        rec->proc_us = now_us;
        rec->src.ts_us = (int64_t)h->timestamp * 1000000;
        rec->src.pos = lsn;
        rec->src.snapshot = TM_SNAPSHOT_FALSE;
        rec->src.kind = TM_SOURCE_MYSQL;
        rec->src.u.my = st->txsrc;
        rec->src.u.my.file = st->ifile;
        rec->src.u.my.server_id = h->server_id;
        rec->src.u.my.event_pos = (uint32_t)here.offset;
        rec->src.u.my.row = row++;
        st->tx_rows++;
    }
}

/* ---- Transactions ---- */

static void tx_begin(stream_t *st, const char *gtid, bool standalone)
{
    st->tx_active = true;
    st->tx_standalone = standalone;
    st->tx_rows = 0;
    snprintf(st->tx_gtid, sizeof(st->tx_gtid), "%s", gtid);
    memset(&st->txsrc, 0, sizeof(st->txsrc));
    tm_my_source_set_gtid(&st->txsrc, gtid, strlen(gtid));
}

static void tx_end(stream_t *st, uint32_t next_pos)
{
    st->tx_active = false;
    st->tx_standalone = false;
    snprintf(st->done.file, sizeof(st->done.file), "%s", st->file);
    st->done.offset = next_pos;
    /*
     * The position's GTID set moves one domain entry at a time.  A set that
     * was unknown at the start stays unknown (a partial one would make a
     * GTID resume re-read the other domains), as does one that outgrows
     * the field: resuming then goes by file and offset.
     */
    if (st->tx_gtid[0] != '\0' && st->done.gtid[0] != '\0' &&
        tm_my_gtid_set_update(st->done.gtid, sizeof(st->done.gtid), st->tx_gtid) != 0)
        st->done.gtid[0] = '\0';
    st->done_token = tm_my_pos_token(&st->done);
    /* A transaction fully skipped after a reconnect leaves nothing to skip in the next. */
    st->skip_rows = 0;
}

/* ---- Connection ---- */

static void disconnect(stream_t *st)
{
    if (st->ev != NULL) {
        mariadb_free_rpl_event(st->ev);
        st->ev = NULL;
    }
    if (st->rpl != NULL) {
        mariadb_rpl_close(st->rpl);
        st->rpl = NULL;
    }
    if (st->conn != NULL) {
        mysql_close(st->conn);
        st->conn = NULL;
    }
}

/* Opens the binlog dump at st->done. */
static int connect_stream(stream_t *st, char *errstr, size_t errstr_size)
{
    tm_source_t *src = st->src;
    int rc = tm_my_connect(src, &st->conn, errstr, errstr_size);
    if (rc != 0)
        return rc;
    char sql[128];
    snprintf(sql, sizeof(sql), "SET @master_heartbeat_period = %" PRId64,
             src->heartbeat_ms * 1000000);
    /* The server sends checksums only to a replica that says it can check them. */
    if ((rc = tm_my_exec(st->conn, "SET @master_binlog_checksum = @@global.binlog_checksum",
                         errstr, errstr_size)) != 0 ||
        (rc = tm_my_exec(st->conn, sql, errstr, errstr_size)) != 0)
        return rc;
    if (src->is_mariadb &&
        (rc = tm_my_exec(st->conn, "SET @mariadb_slave_capability = 4", errstr, errstr_size)) != 0)
        return rc;
    /*
     * MariaDB: resume by GTID set when it is known, as a MariaDB replica
     * does (CHANGE MASTER … MASTER_USE_GTID = slave_pos): the server finds
     * the file itself, so a renamed or rebuilt binlog (a failover) still
     * resumes exactly.  Strict mode makes a GTID the server never had an
     * error rather than a silent skip.  Without a set, file and offset.
     */
    bool by_gtid = src->is_mariadb && st->done.gtid[0] != '\0' &&
                   strspn(st->done.gtid, "0123456789-,") == strlen(st->done.gtid);
    if (by_gtid) {
        char gsql[300];
        snprintf(gsql, sizeof(gsql), "SET @slave_connect_state = '%s'", st->done.gtid);
        if ((rc = tm_my_exec(st->conn, gsql, errstr, errstr_size)) != 0 ||
            (rc = tm_my_exec(st->conn, "SET @slave_gtid_strict_mode = 1", errstr, errstr_size)) !=
                0 ||
            (rc = tm_my_exec(st->conn, "SET @slave_gtid_ignore_duplicates = 0", errstr,
                             errstr_size)) != 0)
            return rc;
    }
    /* The events before the first FORMAT_DESCRIPTION are checksummed as announced here. */
    if (mysql_query(st->conn, "SELECT @@global.binlog_checksum") != 0)
        return tm_seterr(errstr, errstr_size, TM_ECONN, "cannot read binlog_checksum: %s",
                         mysql_error(st->conn));
    MYSQL_RES *res = mysql_store_result(st->conn);
    MYSQL_ROW row = res ? mysql_fetch_row(res) : NULL;
    st->crc = row != NULL && row[0] != NULL && strcasecmp(row[0], "CRC32") == 0;
    if (res != NULL)
        mysql_free_result(res);
    st->rpl = mariadb_rpl_init(st->conn);
    if (st->rpl == NULL)
        return TM_ENOMEM;
    unsigned long start = (unsigned long)st->done.offset;
    mariadb_rpl_optionsv(st->rpl, MARIADB_RPL_SERVER_ID, (unsigned int)src->server_id);
    mariadb_rpl_optionsv(st->rpl, MARIADB_RPL_FILENAME, st->done.file,
                         (size_t)strlen(st->done.file));
    mariadb_rpl_optionsv(st->rpl, MARIADB_RPL_START, start);
    mariadb_rpl_optionsv(st->rpl, MARIADB_RPL_FLAGS, (unsigned int)0);
    /*
     * With a host set, the library registers us (COM_REGISTER_SLAVE), so SHOW
     * SLAVE HOSTS lists this job under its server_id and another job's
     * server_id check can see it.
     */
    char report[96];
    snprintf(report, sizeof(report), "tidemark:%.80s", src->name);
    mariadb_rpl_optionsv(st->rpl, MARIADB_RPL_HOST, report, (size_t)strlen(report));
    mariadb_rpl_optionsv(st->rpl, MARIADB_RPL_PORT, (unsigned int)0);
    if (mariadb_rpl_open(st->rpl) != 0) {
        unsigned e = mysql_errno(st->conn);
        rc = tm_seterr(errstr, errstr_size,
                       e >= CR_MIN_ERROR && e <= CR_MAX_ERROR ? TM_ECONN : TM_ESOURCE,
                       "cannot start reading the binlog at %s:%" PRIu64 "%s%s: %s (error %u)",
                       st->done.file, st->done.offset, by_gtid ? " GTID " : "",
                       by_gtid ? st->done.gtid : "", mysql_error(st->conn), e);
        return rc;
    }
    if (!st->ever_connected)
        TM_INFO(TM_MY_COMP, "binlog dump started",
                "source=%s by=%s file=%s pos=%" PRIu64 " gtid=%s", src->name,
                by_gtid ? "gtid" : "file", st->done.file, st->done.offset, st->done.gtid);
    snprintf(st->file, sizeof(st->file), "%s", st->done.file);
    /* Invariant 2: rows of the transaction that was open are in batches already. */
    st->skip_rows = st->tx_active ? st->tx_rows : 0;
    if (st->skip_rows > 0)
        TM_INFO(TM_MY_COMP, "resuming inside a transaction", "source=%s gtid=%s skip_rows=%" PRIu64,
                src->name, st->tx_gtid, st->skip_rows);
    st->tx_active = false;
    st->tx_rows = 0;
    st->ever_connected = true;
    return 0;
}

static bool nap(stream_t *st, int64_t ms)
{
    int64_t until = tm_mono_us() + ms * 1000;
    while (tm_mono_us() < until) {
        if (tm_source_should_stop(st->ctx))
            return false;
        if (flush_outq(st, 0) == TM_ESTOPPED)
            return false;
        usleep(20000);
    }
    return true;
}

static int reconnect(stream_t *st, const char *why, char *errstr, size_t errstr_size)
{
    tm_source_t *src = st->src;
    tm_source_set_ready(st->ctx, false);
    disconnect(st);
    int64_t deadline = tm_mono_us() + src->reconnect_ms * 1000;
    int64_t backoff = 500;
    char last[512];
    snprintf(last, sizeof(last), "%s", why);
    TM_WARN(TM_MY_COMP, "binlog connection lost; reconnecting", "source=%s reason=\"%s\"",
            src->name, why);
    tm_errors_count(TM_ERRKIND_SOURCE_CONNECTION);
    for (;;) {
        if (!nap(st, backoff))
            return TM_ESTOPPED;
        int rc = connect_stream(st, errstr, errstr_size);
        if (rc == 0) {
            TM_INFO(TM_MY_COMP, "binlog connection restored", "source=%s file=%s pos=%" PRIu64,
                    src->name, st->done.file, st->done.offset);
            tm_source_set_ready(st->ctx, true);
            return 0;
        }
        disconnect(st);
        if (rc != TM_ECONN)
            return rc;
        snprintf(last, sizeof(last), "%s", errstr);
        if (tm_mono_us() >= deadline)
            return tm_seterr(errstr, errstr_size, TM_ECONN,
                             "lost the binlog connection and could not restore it within "
                             "reconnect_timeout: %s",
                             last);
        backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
    }
}

/* True if the binlog connection has bytes waiting (or is closed) right now. */
static bool input_pending(stream_t *st)
{
    struct pollfd p = {.fd = (int)mysql_get_socket(st->conn), .events = POLLIN};
    return p.fd >= 0 && poll(&p, 1, 0) > 0;
}

/* ---- Events ---- */

static int handle_event(stream_t *st, MARIADB_RPL_EVENT *ev, char *errstr, size_t errstr_size)
{
    tm_source_t *src = st->src;
    if (ev->raw_data == NULL || ev->raw_data_size < 1 + TM_MY_HEADER_LEN)
        return tm_seterr(errstr, errstr_size, TM_ECORRUPT, "binlog event too short (%zu bytes)",
                         ev->raw_data_size);
    /* raw_data starts with the packet's OK byte. */
    const uint8_t *raw = ev->raw_data + 1;
    size_t len = ev->raw_data_size - 1;
    tm_my_event_header_t h;
    int rc = tm_my_event_header_parse(raw, len, &h, errstr, errstr_size);
    if (rc != 0)
        return rc;
    /*
     * Whether events carry a CRC32: what the connection announced (the
     * server's binlog_checksum when we connected) for the events before the
     * first FORMAT_DESCRIPTION (the artificial ROTATE), then what each
     * file's FORMAT_DESCRIPTION says (binlog_checksum can change at run
     * time, for the next file).
     */
    if (h.type == TM_MY_EV_FORMAT_DESCRIPTION) {
        /*
         * It ends with the algorithm byte and four checksum bytes, which hold
         * the CRC32 when the byte is 1 (CRC32) and are not checked when it is
         * 0 (OFF): seen from MariaDB 10.11 after SET GLOBAL binlog_checksum.
         */
        uint8_t alg = len >= TM_MY_HEADER_LEN + 5 ? raw[len - 5] : 0xFF;
        if (alg == 1 && tm_my_event_checksum_verify(raw, len, errstr, errstr_size) == 0)
            st->crc = true;
        else if (alg == 0)
            st->crc = false;
        else
            return tm_seterr(errstr, errstr_size, TM_ECORRUPT,
                             "FORMAT_DESCRIPTION event of %s names no checksum algorithm tidemark "
                             "knows, or fails its CRC32",
                             st->file);
    }
    size_t cks = st->crc ? TM_MY_CHECKSUM_LEN : 0;
    if (cks && (rc = tm_my_event_checksum_verify(raw, len, errstr, errstr_size)) != 0) {
        size_t n = strlen(errstr);
        snprintf(errstr + n, errstr_size - n, " (%s, event ending at %" PRIu32 ")", st->file,
                 h.next_pos);
        return rc;
    }
    if (len < TM_MY_HEADER_LEN + cks)
        return TM_ECORRUPT;
    const uint8_t *body = raw + TM_MY_HEADER_LEN;
    size_t blen = len - TM_MY_HEADER_LEN - cks;
    tm_source_count(st->ctx, 0, len);
    switch (h.type) {
    case TM_MY_EV_ROTATE: {
        /* post-header: 8-byte position, then the new file's name. */
        if (blen < 8 || blen - 8 >= sizeof(st->file))
            return tm_seterr(errstr, errstr_size, TM_ECORRUPT, "malformed ROTATE event");
        snprintf(st->file, sizeof(st->file), "%.*s", (int)(blen - 8), (const char *)body + 8);
        if (!st->tx_active && !(h.flags & EV_ARTIFICIAL)) {
            /* A real rotate ends a file: the next transaction starts in the new one. */
            uint64_t at = 0;
            for (int i = 7; i >= 0; i--)
                at = at << 8 | body[i];
            snprintf(st->done.file, sizeof(st->done.file), "%s", st->file);
            st->done.offset = at;
            st->done_token = tm_my_pos_token(&st->done);
        }
        return 0;
    }
    case TM_MY_EV_GTID: {
        /* seq_no (8), domain_id (4), flags2 (1). */
        if (blen < 13)
            return tm_seterr(errstr, errstr_size, TM_ECORRUPT, "malformed GTID event");
        uint64_t seq = 0;
        uint32_t domain = 0;
        for (int i = 7; i >= 0; i--)
            seq = seq << 8 | body[i];
        for (int i = 11; i >= 8; i--)
            domain = domain << 8 | body[i];
        char gtid[64];
        snprintf(gtid, sizeof(gtid), "%" PRIu32 "-%" PRIu32 "-%" PRIu64, domain, h.server_id,
                 seq);
        tx_begin(st, gtid, (body[12] & GTID_FL_STANDALONE) != 0);
        return 0;
    }
    case TM_MY_EV_XID:
        if (st->tx_active)
            tx_end(st, h.next_pos);
        return 0;
    case TM_MY_EV_QUERY: {
        /*
         * thread id (4), exec time (4), db length (1), error code (2), status
         * vars length (2), status vars, db, NUL, statement.
         */
        if (blen < 13)
            return tm_seterr(errstr, errstr_size, TM_ECORRUPT, "malformed QUERY event");
        size_t dblen = body[8], svlen = (size_t)(body[11] | body[12] << 8);
        size_t off = 13 + svlen + dblen + 1;
        const char *stmt = off <= blen ? (const char *)body + off : "";
        size_t slen = off <= blen ? blen - off : 0;
        if (slen == 5 && strncmp(stmt, "BEGIN", 5) == 0) {
            if (!st->tx_active)
                tx_begin(st, "", false);
            /* Debezium's thread: the connection id of the session that wrote the transaction. */
            st->txsrc.thread = (uint32_t)body[0] | (uint32_t)body[1] << 8 |
                               (uint32_t)body[2] << 16 | (uint32_t)body[3] << 24;
            return 0;
        }
        bool commit = slen == 6 && strncmp(stmt, "COMMIT", 6) == 0;
        /* A DDL statement, however its group is framed, may change a captured table. */
        if (!commit)
            tm_my_catalog_note_ddl(src, stmt, slen);
        if (commit || st->tx_standalone || !st->tx_active) {
            /* COMMIT of a non-transactional group, or a standalone statement (DDL). */
            if (!commit)
                TM_DEBUG(TM_MY_COMP, "statement", "source=%s query=\"%.*s\"", src->name,
                         (int)(slen > 200 ? 200 : slen), stmt);
            tx_end(st, h.next_pos);
        }
        return 0;
    }
    case TM_MY_EV_TABLE_MAP:
        return on_table_map(st, body, blen, errstr, errstr_size);
    case TM_MY_EV_WRITE_ROWS_V1:
    case TM_MY_EV_UPDATE_ROWS_V1:
    case TM_MY_EV_DELETE_ROWS_V1:
    case TM_MY_EV_WRITE_ROWS_V2:
    case TM_MY_EV_UPDATE_ROWS_V2:
    case TM_MY_EV_DELETE_ROWS_V2:
        return on_rows(st, &h, body, blen, errstr, errstr_size);
    case TM_MY_EV_FORMAT_DESCRIPTION:
        if (!st->fde_logged || st->fde_checksum != (cks != 0)) {
            TM_INFO(TM_MY_COMP, "binlog format", "source=%s file=%s checksums=%s", src->name,
                    st->file, cks ? "crc32" : "none");
            st->fde_logged = true;
            st->fde_checksum = cks != 0;
        }
        return 0;
    case TM_MY_EV_STOP:
        /*
         * The server stopped after writing this file; the dump goes on with
         * the next file (a ROTATE follows), so it is no error here.  A
         * server that is shutting down now ends the connection, and that
         * is handled as a lost connection.
         */
        return 0;
    default:
        if (h.type >= TM_MY_EV_WRITE_ROWS_COMPRESSED_V1 - 3 &&
            h.type <= TM_MY_EV_DELETE_ROWS_COMPRESSED_V1)
            return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                             "the server writes compressed row events (log_bin_compress = ON), "
                             "which tidemark cannot read yet; turn log_bin_compress off");
        /* FORMAT_DESCRIPTION, HEARTBEAT, ANNOTATE_ROWS, GTID_LIST, checkpoints… */
        return 0;
    }
}

static int stream_loop(stream_t *st, char *errstr, size_t errstr_size)
{
    tm_source_t *src = st->src;
    int rc;
    for (;;) {
        if (tm_source_should_stop(st->ctx))
            return 0;
        if (flush_outq(st, 0) == TM_ESTOPPED)
            return 0;
        if ((rc = save_acked(st, errstr, errstr_size)) != 0)
            return rc;
        if (src->outq.len >= MAX_WAITING) {
            if (flush_outq(st, 100) == TM_ESTOPPED)
                return 0;
            continue;
        }
        if ((rc = maybe_barrier(st)) != 0)
            return rc;
        st->ev = mariadb_rpl_fetch(st->rpl, st->ev);
        if (st->ev == NULL) {
            if (tm_source_should_stop(st->ctx))
                return 0;
            char why[512];
            unsigned e = mysql_errno(st->conn);
            snprintf(why, sizeof(why), "%s (error %u)",
                     mysql_error(st->conn)[0] ? mysql_error(st->conn) : "end of stream", e);
            if (e == 1236) /* ER_MASTER_FATAL_ERROR_READING_BINLOG: purged, corrupt */
                return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                                 "the server cannot send the binlog from %s:%" PRIu64
                                 "%s%s: %s; if it was purged, the changes since are lost to "
                                 "this job: restart it with snapshot = 'when_needed' to read "
                                 "the tables again, or start a new job",
                                 st->done.file, st->done.offset, st->done.gtid[0] ? " GTID " : "",
                                 st->done.gtid, why);
            if ((rc = reconnect(st, why, errstr, errstr_size)) != 0)
                return rc == TM_ESTOPPED ? 0 : rc;
            continue;
        }
        rc = handle_event(st, st->ev, errstr, errstr_size);
        if (rc == TM_ECONN) {
            char why[512];
            snprintf(why, sizeof(why), "%s", errstr);
            if ((rc = reconnect(st, why, errstr, errstr_size)) != 0)
                return rc == TM_ESTOPPED ? 0 : rc;
            continue;
        }
        if (rc != 0)
            return rc;
        /* Between transactions with nothing more waiting: what we have goes downstream now. */
        if (!st->tx_active && !input_pending(st) && (rc = seal(st)) != 0)
            return rc;
    }
}

/* On a graceful stop, wait (bounded) for the sinks so the position file covers everything. */
static void drain_acks(stream_t *st, int64_t max_ms)
{
    tm_source_t *src = st->src;
    int64_t until = tm_mono_us() + max_ms * 1000;
    char err[256];
    while (tm_mono_us() < until) {
        save_acked(st, err, sizeof(err));
        if (tm_source_acked(st->ctx) >= src->sealed_token)
            return;
        usleep(20000);
    }
}

int tm_my_stream_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return TM_ENOMEM;
    st->src = src;
    st->ctx = ctx;
    st->done = src->start;
    st->done_token = tm_my_pos_token(&st->done);
    /* What the checkpoint already covers is acknowledged: the position file need not repeat it. */
    st->saved_token = src->restore_token;
    if (src->do_snapshot) {
        /*
         * After a snapshot: its last batch carries the start position's
         * token, and the position file follows once the sinks hold it
         * (my_snapshot.c invariant 2).  An empty snapshot emitted nothing:
         * its position is durable as it is.
         */
        st->saved_token = 0;
        if (src->snapshot_token != 0) {
            ring_push(st, src->snapshot_token, &st->done);
        } else {
            int prc = tm_my_pos_save(src, &st->done, errstr, errstr_size);
            if (prc != 0) {
                free(st);
                return prc;
            }
        }
    }
    int rc = connect_stream(st, errstr, errstr_size);
    if (rc == TM_ECONN)
        rc = reconnect(st, errstr, errstr, errstr_size);
    if (rc == 0) {
        tm_source_set_ready(ctx, true);
        rc = stream_loop(st, errstr, errstr_size);
    }
    if (rc == 0 || rc == TM_ESTOPPED) {
        if (!st->tx_active)
            seal(st);
        flush_outq(st, 1000);
        drain_acks(st, 5000);
        char pos[512];
        tm_my_pos_format(&st->done, pos, sizeof(pos));
        TM_INFO(TM_MY_COMP, "streaming stopped", "source=%s position=\"%s\"", src->name, pos);
        rc = 0;
    }
    tm_source_set_ready(ctx, false);
    disconnect(st);
    free(st);
    return rc;
}
