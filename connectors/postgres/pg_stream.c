/*
 * pg_stream.c — streaming changes from a logical replication slot.
 *
 * Role: runs START_REPLICATION, assembles pgoutput messages into records and
 * batches, hands them to the runtime, and tells the server how far it may
 * free WAL.  Like reorderbuffer.c it is where transactions take shape;
 * pgoutput.c only decodes.
 *
 * The loop never blocks on the runtime: tm_source_emit() is called with a
 * short timeout, and while the downstream queue is full the connection keeps
 * being served (status updates, replies to keepalives).  Input is read only
 * while fewer than two sealed batches wait, so memory stays bounded whatever
 * the transaction size.
 *
 *     network ──► XLogData ──► decode ─┬─► Begin/changes/Commit ──► batch ──► outq ──► emit
 *                                      └─► Stream Start…Stop ──► spill file
 *                                          Stream Commit ──► replay file ──┘
 *
 * Invariants:
 *   1. Acknowledgement.  A batch's ack_token is the end LSN of the last
 *      transaction that is complete in or before it (0 if that did not move).
 *      The flush LSN sent to the server is tm_source_acked(), never what was
 *      merely received.  Only when everything emitted has been acknowledged
 *      and no transaction is open is the keepalive's WAL end reported, which
 *      lets the slot advance over changes that were filtered out.
 *   2. No duplicates after a reconnect.  done_end is the end LSN of the last
 *      transaction fully put into batches; (partial_lsn, partial_count) say
 *      how many changes of a transaction were put into batches before the
 *      connection broke.  The server resends from the slot's confirmed flush;
 *      transactions committed before done_end are skipped, and the first
 *      partial_count changes of the partial one.
 *   3. Order.  Events leave in the order they were produced: schema changes
 *      wait in the same queue as the batches around them.
 *   4. Streamed transactions are spilled, never held in memory, and replayed
 *      only after their Stream Commit; replay yields to the emitter like
 *      network input does.
 *   5. Binary values (option binary) are asked for only while every wanted
 *      relation known can decode them (pg_binary.h).  A Relation message
 *      that cannot is not installed: the stream restarts from the slot in
 *      text, and invariant 2 skips what already went out.
 *
 * Thread: the source thread.
 */
#include "postgres/postgres_int.h"

#include "core/errcount.h"
#include "core/error.h"
#include "core/log.h"
#include "postgres/pg_binary.h"

#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Sealed events allowed to wait before input stops being read. */
#define MAX_WAITING 2
/* Messages handled between two housekeeping passes. */
#define READ_BUDGET 2048

typedef struct txstate {
    bool active;
    uint32_t xid;
    uint64_t final_lsn; /* LSN of the commit record */
    uint64_t begin_lsn; /* WAL position of the BEGIN message (0 for a replayed stream) */
    int64_t ts_us;      /* commit time, Unix µs */
    uint64_t nchanges;  /* changes seen in this transaction, emitted or not */
    bool skip_all;
    uint64_t skip_n;
} txstate_t;

typedef struct stream {
    tm_source_t *src;
    tm_source_ctx_t *ctx;
    int proto;
    tm_pg_decoder_t *dec;  /* network messages */
    tm_pg_decoder_t *rdec; /* replayed messages (always inside a stream block) */
    tm_pg_txbuf_t *txbuf;
    tm_pg_txreplay_t *replay;
    uint64_t replay_end_lsn;
    txstate_t tx;

    uint64_t recv_lsn;        /* highest WAL position received */
    uint64_t server_end;      /* last keepalive's WAL end */
    uint64_t wal_end_seen;    /* the newest server WAL end any message reported (lag only) */
    uint64_t done_end;        /* invariant 2 */
    uint64_t partial_lsn;     /* invariant 2 */
    uint64_t partial_count;   /* invariant 2 */
    uint64_t prev_commit_end; /* Debezium sequence[0] */
    uint64_t last_commit_lsn; /* commit LSN of the newest transaction begun (barriers at an LSN) */
    int64_t prev_commit_ts_us; /* the last commit's time: a non-transactional message's ts */
    bool untokened;           /* records were emitted after the last token (see seal) */
    uint64_t flush_sent;
    int64_t last_status_us;
    int64_t last_heartbeat_us;
    bool reply_requested;
    bool ever_connected;
    bool binary;  /* this session asked for binary values */
    bool to_text; /* the coming reconnect switches to text values: not a lost connection */
} stream_t;

/* ---- Output queue ---- */

static tm_pg_out_t *outq_at(tm_source_t *src, int i)
{
    return &src->outq[(src->outq_head + i) % TM_PG_OUTQ_MAX];
}

static int outq_push(tm_source_t *src, tm_batch_t *batch, tm_schema_t *schema)
{
    if (src->outq_len == TM_PG_OUTQ_MAX)
        return TM_ENOMEM; /* impossible: input stops at MAX_WAITING */
    tm_pg_out_t *o = outq_at(src, src->outq_len++);
    o->batch = batch;
    o->schema = schema;
    o->barrier = 0;
    o->barrier_pos = NULL;
    return 0;
}

/*
 * Seals the current batch: it gets its ack token and joins the queue.
 *
 * A batch that ends inside a transaction carries no new token, and the
 * Commit may then arrive with nothing after it.  The records already
 * emitted are acknowledged only through a later token, so in that case an
 * empty batch carries the transaction's end LSN: without it, "everything
 * emitted is acknowledged" could not be told from "the last token is
 * acknowledged", and the caught-up rule would confirm WAL whose records the
 * sinks had not yet made durable.
 */
static int seal(stream_t *st)
{
    tm_source_t *src = st->src;
    tm_batch_t *b = src->cur;
    bool empty = b == NULL || b->count == 0;
    if (empty && !(st->untokened && st->done_end > src->sealed_token))
        return 0;
    if (b == NULL && (b = tm_batch_new()) == NULL)
        return TM_ENOMEM;
    src->cur = NULL;
    if (st->done_end > src->sealed_token) {
        b->ack_token = st->done_end;
        src->sealed_token = st->done_end;
        /*
         * The token covers the transactions completed so far; records of a
         * transaction still open (already in this batch) are not covered
         * until a later token, so the caught-up rule must not fire yet.
         */
        st->untokened = st->tx.active && !st->tx.skip_all && st->tx.nchanges > st->tx.skip_n;
    } else {
        st->untokened = true;
    }
    tm_source_count(st->ctx, b->count, 0);
    int rc = outq_push(src, b, NULL);
    if (rc != 0)
        tm_batch_unref(b);
    return rc;
}

/* Hands queued events to the runtime; TM_EAGAIN when the downstream is full. */
static int flush_outq(stream_t *st, int timeout_ms)
{
    tm_source_t *src = st->src;
    while (src->outq_len > 0) {
        tm_pg_out_t *o = outq_at(src, 0);
        int rc;
        if (o->batch != NULL) {
            rc = tm_source_emit(st->ctx, o->batch, timeout_ms);
        } else if (o->barrier != 0) {
            char pos[24];
            rc = tm_source_emit_barrier(st->ctx, o->barrier, o->barrier_token,
                                        o->barrier_pos ? o->barrier_pos
                                                       : tm_pg_lsn_format(o->barrier_token, pos),
                                        timeout_ms);
        } else {
            rc = tm_source_emit_schema(st->ctx, o->schema, timeout_ms);
        }
        if (rc != 0)
            return rc;
        /* On success the runtime owns the batch; the schema event took its own reference. */
        tm_schema_unref(o->schema);
        o->batch = NULL;
        o->schema = NULL;
        o->barrier = 0;
        free(o->barrier_pos);
        o->barrier_pos = NULL;
        src->outq_head = (src->outq_head + 1) % TM_PG_OUTQ_MAX;
        src->outq_len--;
    }
    /*
     * Everything is downstream: the runtime's watermark housekeeping, so a
     * stream with heartbeats but no rows goes idle after idle_timeout.
     * TM_EAGAIN loses nothing.
     */
    int rc = tm_source_tick(st->ctx, 0);
    return rc == TM_ESTOPPED ? rc : 0;
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

static void fill_source(stream_t *st, tm_record_t *rec, uint64_t lsn);

tm_record_t *tm_pg_stream_add(void *arg, tm_schema_t *schema, tm_op_t op, uint64_t lsn)
{
    stream_t *st = arg;
    tm_record_t *rec = add_record(st, schema, op);
    if (rec != NULL)
        fill_source(st, rec, lsn);
    return rec;
}

/* ---- Status updates ---- */

static bool caught_up(const stream_t *st, uint64_t acked)
{
    const tm_source_t *src = st->src;
    return !st->tx.active && st->replay == NULL && src->outq_len == 0 &&
           (src->cur == NULL || src->cur->count == 0) && tm_pg_txbuf_count(st->txbuf) == 0 &&
           !st->untokened && acked >= src->sealed_token && !src->marker_pending;
}

static int send_status(stream_t *st, bool force)
{
    tm_source_t *src = st->src;
    int64_t now = tm_mono_us();
    uint64_t acked = tm_source_acked(st->ctx);
    uint64_t flush = acked;
    if (caught_up(st, acked) && st->server_end > flush)
        flush = st->server_end;
    /*
     * tidemark_source_lag_bytes: the slot's distance from the server's WAL
     * end, as the server's last message gave it, to what this flush confirms
     * (so a slot that is idle and caught up has no lag).
     */
    if (st->wal_end_seen > 0)
        tm_source_set_lag_bytes(st->ctx, st->wal_end_seen > flush
                                             ? (int64_t)(st->wal_end_seen - flush)
                                             : 0);
    bool due = force || st->reply_requested ||
               (src->status_ms > 0 && now - st->last_status_us >= src->status_ms * 1000) ||
               (flush > st->flush_sent && now - st->last_status_us >= 200000);
    if (!due || src->repl == NULL)
        return 0;
    uint64_t write = st->recv_lsn > flush ? st->recv_lsn : flush;
    uint8_t msg[34];
    tm_pg_status_update(msg, write, flush, flush, tm_wall_us() - TM_PG_EPOCH_OFFSET_US,
                        false);
    if (PQputCopyData(src->repl, (const char *)msg, sizeof(msg)) != 1 || PQflush(src->repl) < 0)
        return TM_ECONN;
    if (flush != st->flush_sent) {
        char a[24], b[24], c[24];
        TM_DEBUG(TM_PG_COMP, "status update", "source=%s write=%s flush=%s acked=%s",
                 src->name, tm_pg_lsn_format(write, a), tm_pg_lsn_format(flush, b),
                 tm_pg_lsn_format(acked, c));
    }
    st->last_status_us = now;
    st->flush_sent = flush;
    st->reply_requested = false;
    return 0;
}

static void heartbeat(stream_t *st)
{
    tm_source_t *src = st->src;
    int64_t now = tm_mono_us();
    if (src->heartbeat_ms <= 0 || now - st->last_heartbeat_us < src->heartbeat_ms * 1000)
        return;
    st->last_heartbeat_us = now;
    char err[512];
    if (tm_pg_conn_ensure(src, err, sizeof(err)) != 0) {
        TM_WARN(TM_PG_COMP, "heartbeat skipped", "source=%s error=\"%s\"", src->name, err);
        return;
    }
    PGresult *res = PQexec(src->conn, "SELECT pg_catalog.pg_logical_emit_message(false, '"
                                      TM_PG_HEARTBEAT_PREFIX "', '')");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        TM_WARN(TM_PG_COMP, "heartbeat failed", "source=%s error=\"%s\"", src->name,
                PQresultErrorMessage(res));
        /* A broken session is replaced on the next use. */
        PQfinish(src->conn);
        src->conn = NULL;
    }
    PQclear(res);
}

static int housekeeping(stream_t *st, char *errstr, size_t errstr_size)
{
    int rc = tm_pg_marker_check(st->src, st->ctx, errstr, errstr_size);
    if (rc != 0)
        return rc;
    /* Incremental snapshots read their next chunk only when nothing waits downstream. */
    bool idle = st->src->outq_len == 0 && !st->tx.active && st->replay == NULL;
    if ((rc = tm_pg_incr_tick(st->src, idle, errstr, errstr_size)) != 0)
        return rc;
    heartbeat(st);
    return send_status(st, false) == 0 ? 0 : TM_ECONN;
}

/* ---- Transactions ---- */

static void begin_tx(stream_t *st, uint32_t xid, uint64_t final_lsn, int64_t commit_ts,
                     uint64_t begin_lsn)
{
    txstate_t *tx = &st->tx;
    tx->active = true;
    tx->xid = xid;
    tx->final_lsn = final_lsn;
    tx->begin_lsn = begin_lsn;
    tx->ts_us = commit_ts + TM_PG_EPOCH_OFFSET_US;
    tx->nchanges = 0;
    tx->skip_all = final_lsn < st->done_end;
    if (final_lsn > st->last_commit_lsn)
        st->last_commit_lsn = final_lsn;
    tx->skip_n = final_lsn == st->partial_lsn ? st->partial_count : 0;
}

static void commit_tx(stream_t *st, uint64_t end_lsn)
{
    if (!st->tx.skip_all && end_lsn > st->done_end)
        st->done_end = end_lsn;
    if (st->partial_lsn == st->tx.final_lsn) {
        st->partial_lsn = 0;
        st->partial_count = 0;
    }
    st->prev_commit_end = end_lsn;
    st->prev_commit_ts_us = st->tx.ts_us;
    st->tx.active = false;
    tm_pg_incr_note_commit(st->src, st->tx.xid);
}

/* Counts one change of the open transaction; true if it must be skipped (invariant 2). */
static bool change_skipped(stream_t *st)
{
    txstate_t *tx = &st->tx;
    if (!tx->active)
        return false;
    tx->nchanges++;
    if (tx->skip_all || tx->nchanges <= tx->skip_n)
        return true;
    st->partial_lsn = tx->final_lsn;
    st->partial_count = tx->nchanges;
    return false;
}

static void fill_source(stream_t *st, tm_record_t *rec, uint64_t lsn)
{
    rec->proc_us = tm_wall_us();
    rec->src.ts_us = st->tx.active ? st->tx.ts_us : rec->proc_us;
    rec->src.kind = TM_SOURCE_POSTGRES;
    rec->src.pos = lsn;
    rec->src.u.pg.commit_lsn = st->prev_commit_end;
    rec->src.u.pg.xid = st->tx.active ? st->tx.xid : 0;
    rec->src.u.pg.tx_lsn = st->tx.active ? st->tx.begin_lsn : st->prev_commit_end;
    rec->src.snapshot = TM_SNAPSHOT_FALSE;
}

int tm_pg_tuple_to_row(tm_batch_t *batch, const tm_pg_rel_t *rel, const tm_pg_tuple_t *tup,
                       tm_row_t **out, char *errstr, size_t errstr_size)
{
    const tm_schema_t *s = rel->schema;
    if (tup->ncols != s->ncols)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "tuple of %s.%s has %u columns, but its Relation message had %d",
                         s->namespace, s->table, tup->ncols, s->ncols);
    tm_row_t *row = tm_batch_new_row(batch, s);
    if (row == NULL)
        return TM_ENOMEM;
    for (int i = 0; i < s->ncols; i++) {
        const tm_pg_tuple_col_t *c = &tup->cols[i];
        tm_datum_t *d = &row->vals[i];
        switch (c->kind) {
        case TM_PG_COL_NULL:
            break;
        case TM_PG_COL_UNCHANGED:
            d->flags = TM_DATUM_UNAVAILABLE;
            tm_row_set_null(row, i, false);
            break;
        case TM_PG_COL_TEXT: {
            char why[256];
            int rc = tm_pg_value_parse(batch, &rel->ct[i], (const char *)c->data, c->len, d, why,
                                       sizeof(why));
            if (rc != 0)
                return rc == TM_ENOMEM
                           ? rc
                           : tm_seterr(errstr, errstr_size, TM_EPROTO,
                                       "column %s.%s.%s (%s): %s", s->namespace, s->table,
                                       s->cols[i].name, s->cols[i].db_type, why);
            tm_row_set_null(row, i, false);
            break;
        }
        case TM_PG_COL_BINARY: {
            /* Asked for with the binary option; the same datum as its text (pg_binary.h). */
            char why[256];
            int rc = tm_pg_binary_parse(batch, &rel->ct[i], c->data, c->len, d, why, sizeof(why));
            if (rc != 0)
                return rc == TM_ENOMEM
                           ? rc
                           : tm_seterr(errstr, errstr_size, TM_EPROTO,
                                       "column %s.%s.%s (%s), binary value: %s", s->namespace,
                                       s->table, s->cols[i].name, s->cols[i].db_type, why);
            tm_row_set_null(row, i, false);
            break;
        }
        default:
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "column %s.%s.%s arrived with unknown kind 0x%02x", s->namespace,
                             s->table, s->cols[i].name, (unsigned char)c->kind);
        }
    }
    *out = row;
    return 0;
}

/*
 * Binary values need a decoder for the type of every captured column
 * (pg_binary.h); a type without one would arrive in a form nothing here can
 * read.  Returns false, having said which column and type stand in the way,
 * when a wanted relation of shape (s, ct) has such a column; the source then
 * streams text from the next START_REPLICATION on.
 */
static bool binary_usable(stream_t *st, const tm_schema_t *s, const tm_pg_coltype_t *ct,
                          bool wanted)
{
    tm_source_t *src = st->src;
    if (!wanted || s == NULL || ct == NULL)
        return true;
    const char *enc = src->repl != NULL ? PQparameterStatus(src->repl, "client_encoding") : NULL;
    bool xml_ok = enc != NULL && (strcmp(enc, "UTF8") == 0 || strcmp(enc, "SQL_ASCII") == 0);
    int i = tm_pg_binary_unsupported(ct, s->ncols, xml_ok);
    if (i < 0)
        return true;
    src->binary_off = true;
    TM_INFO(TM_PG_COMP, "binary values off: a captured column's type has no binary decoder",
            "source=%s table=%s.%s column=%s type=%s client_encoding=%s action=\"streaming text "
            "values\"",
            src->name, s->namespace, s->table, s->cols[i].name, s->cols[i].db_type,
            enc ? enc : "?");
    return false;
}

static int on_relation(stream_t *st, const tm_pg_msg_t *msg, char *errstr, size_t errstr_size)
{
    tm_source_t *src = st->src;
    tm_schema_t *s;
    tm_pg_coltype_t *ct;
    bool changed;
    int rc = tm_pg_schema_from_relation(src, msg, &s, &ct, errstr, errstr_size);
    if (rc != 0)
        return rc;
    if (st->binary &&
        !binary_usable(st, s, ct,
                       s->namespace && s->table && tm_pg_wanted(src, s->namespace, s->table))) {
        /*
         * Nothing of this shape went out yet: start over from the slot in
         * text, without installing it (the resent stream brings it again).
         */
        rc = tm_seterr(errstr, errstr_size, TM_ECONN,
                       "restarting the stream with text values for %s.%s", s->namespace,
                       s->table);
        tm_schema_unref(s);
        free(ct);
        st->to_text = true;
        return rc;
    }
    uint32_t relid = msg->u.relation.relid;
    if ((rc = tm_pg_rel_install(src, relid, msg->u.relation.replident, s, ct, &changed)) != 0)
        return rc;
    tm_pg_rel_t *rel = tm_pg_rel_find(src, relid);
    if ((rc = tm_pg_incr_on_relation(src, rel, errstr, errstr_size)) != 0)
        return rc;
    if (!changed || !rel->wanted)
        return 0;
    TM_INFO(TM_PG_COMP, "schema changed", "source=%s table=%s.%s version=%" PRIu32 " columns=%d",
            src->name, rel->schema->namespace, rel->schema->table, rel->schema->version,
            rel->schema->ncols);
    /* Records of the old shape go first, then the event, then the new shape (invariant 3). */
    if ((rc = seal(st)) != 0)
        return rc;
    return outq_push(src, NULL, tm_schema_ref(rel->schema));
}

static int on_change(stream_t *st, const tm_pg_msg_t *msg, uint64_t lsn, char *errstr,
                     size_t errstr_size)
{
    tm_source_t *src = st->src;
    tm_pg_rel_t *rel = tm_pg_rel_find(src, msg->u.change.relid);
    if (rel == NULL)
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "change for relation %" PRIu32 " arrived before its Relation message",
                         msg->u.change.relid);
    if (change_skipped(st))
        return 0;
    if (tm_pg_incr_is_signal(src, rel)) {
        int src_rc = tm_pg_incr_on_signal(src, rel, msg);
        if (src_rc != 0 || !rel->wanted)
            return src_rc;
    }
    if (!rel->wanted)
        return 0;
    tm_op_t op = msg->tag == TM_PG_MSG_INSERT   ? TM_OP_CREATE
                 : msg->tag == TM_PG_MSG_UPDATE ? TM_OP_UPDATE
                                                : TM_OP_DELETE;
    tm_record_t *rec = add_record(st, rel->schema, op);
    if (rec == NULL)
        return TM_ENOMEM;
    fill_source(st, rec, lsn);
    tm_batch_t *b = st->src->cur;
    int rc;
    if (msg->u.change.old_kind != 0 &&
        (rc = tm_pg_tuple_to_row(b, rel, &msg->u.change.oldtup, &rec->before, errstr,
                                 errstr_size)) != 0)
        return rc;
    if (msg->tag != TM_PG_MSG_DELETE &&
        (rc = tm_pg_tuple_to_row(b, rel, &msg->u.change.newtup, &rec->after, errstr,
                                 errstr_size)) != 0)
        return rc;
    if (msg->u.change.old_kind == 'O' && rec->after != NULL) {
        /*
         * An unchanged TOASTed value is, by definition, the old one: with
         * REPLICA IDENTITY FULL the old row carries it, so use it.
         */
        for (int i = 0; i < rel->schema->ncols; i++) {
            tm_datum_t *a = &rec->after->vals[i];
            const tm_datum_t *o = &rec->before->vals[i];
            if ((a->flags & TM_DATUM_UNAVAILABLE) && !(o->flags & TM_DATUM_UNAVAILABLE)) {
                *a = *o;
                tm_row_set_null(rec->after, i, tm_row_is_null(rec->before, i));
            }
        }
    }
    tm_pg_incr_on_change(src, rel, rec->before, rec->after);
    return 0;
}

static int on_truncate(stream_t *st, const tm_pg_msg_t *msg, uint64_t lsn, char *errstr,
                       size_t errstr_size)
{
    if (change_skipped(st))
        return 0;
    for (uint32_t i = 0; i < msg->u.truncate.nrels; i++) {
        tm_pg_rel_t *rel = tm_pg_rel_find(st->src, msg->u.truncate.relids[i]);
        if (rel == NULL)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "truncate of relation %" PRIu32 " arrived before its Relation "
                             "message",
                             msg->u.truncate.relids[i]);
        tm_pg_incr_on_truncate(st->src, rel->relid);
        if (!rel->wanted)
            continue;
        tm_record_t *rec = add_record(st, rel->schema, TM_OP_TRUNCATE);
        if (rec == NULL)
            return TM_ENOMEM;
        fill_source(st, rec, lsn);
    }
    return 0;
}

static int on_message(stream_t *st, const tm_pg_msg_t *msg, uint64_t lsn, char *errstr,
                      size_t errstr_size)
{
    tm_source_t *src = st->src;
    bool transactional = (msg->u.message.flags & TM_PG_MESSAGE_TRANSACTIONAL) != 0;
    if (transactional && change_skipped(st))
        return 0;
    if (!transactional && !st->tx.active) {
        /*
         * A non-transactional message has no commit: its own position is the
         * token that acknowledges it, and a resent copy (after a reconnect)
         * lies below it.
         */
        if (lsn < st->done_end)
            return 0;
        if (strcmp(msg->u.message.prefix, TM_PG_HEARTBEAT_PREFIX) == 0)
            return 0;
        st->done_end = lsn + 1;
    }
    if (strcmp(msg->u.message.prefix, TM_PG_HEARTBEAT_PREFIX) == 0)
        return 0;
    /* Watermarks of incremental snapshots (pg_incr.c): consumed, never emitted. */
    if (strcmp(msg->u.message.prefix, TM_PG_INCR_PREFIX) == 0)
        return transactional ? 0 : tm_pg_incr_on_message(src, st, msg, lsn, errstr, errstr_size);
    if (src->msg_schema == NULL) {
        src->msg_schema = tm_schema_new(0);
        if (src->msg_schema == NULL)
            return TM_ENOMEM;
        tm_schema_set_str(&src->msg_schema->source_name, src->name);
        tm_schema_set_str(&src->msg_schema->db, src->dbname);
        src->msg_schema->version = 1;
    }
    tm_record_t *rec = add_record(st, src->msg_schema, TM_OP_MESSAGE);
    if (rec == NULL)
        return TM_ENOMEM;
    fill_source(st, rec, lsn);
    if (!transactional) {
        /*
         * As Debezium writes it (tests/compat): the last commit's time (the
         * processing time before any), and the message's own LSN as both
         * halves of `sequence`; Debezium then counts it as the last commit,
         * so the next transaction's sequence[0] is this LSN too.
         */
        rec->src.ts_us = st->prev_commit_ts_us != 0 ? st->prev_commit_ts_us : rec->proc_us;
        rec->src.u.pg.commit_lsn = lsn;
        rec->src.u.pg.xid = 0;
        /* tx_lsn, set above, keeps the end of the transaction before it. */
        st->prev_commit_end = lsn;
    }
    tm_batch_t *b = src->cur;
    rec->msg_prefix = tm_arena_strdup(&b->arena, msg->u.message.prefix);
    rec->msg_content = (const uint8_t *)tm_arena_memdup(&b->arena, msg->u.message.content,
                                                        msg->u.message.len);
    rec->msg_len = msg->u.message.len;
    return rec->msg_prefix && rec->msg_content ? 0 : TM_ENOMEM;
}

static int barrier_before_tx(stream_t *st, uint64_t commit_lsn);

/* Messages that are the same whether they come from the network or a spill file. */
static int handle(stream_t *st, const tm_pg_msg_t *msg, uint64_t lsn, char *errstr,
                  size_t errstr_size)
{
    switch (msg->tag) {
    case TM_PG_MSG_BEGIN: {
        int rc = barrier_before_tx(st, msg->u.begin.final_lsn);
        if (rc == 0)
            begin_tx(st, msg->xid, msg->u.begin.final_lsn, msg->u.begin.commit_ts, lsn);
        return rc;
    }
    case TM_PG_MSG_COMMIT:
        commit_tx(st, msg->u.commit.end_lsn);
        return 0;
    case TM_PG_MSG_ORIGIN:
        return 0;
    case TM_PG_MSG_RELATION:
        return on_relation(st, msg, errstr, errstr_size);
    case TM_PG_MSG_TYPE:
        return tm_pg_typecache_note_name(st->src->types, msg->u.type.oid, msg->u.type.nspname,
                                         msg->u.type.typname);
    case TM_PG_MSG_INSERT:
    case TM_PG_MSG_UPDATE:
    case TM_PG_MSG_DELETE:
        return on_change(st, msg, lsn, errstr, errstr_size);
    case TM_PG_MSG_TRUNCATE:
        return on_truncate(st, msg, lsn, errstr, errstr_size);
    case TM_PG_MSG_MESSAGE:
        return on_message(st, msg, lsn, errstr, errstr_size);
    default:
        return tm_seterr(errstr, errstr_size, TM_EPROTO,
                         "unexpected pgoutput message '%c' outside a stream block", msg->tag);
    }
}

static int on_xlogdata(stream_t *st, const tm_pg_copydata_t *cd, char *errstr, size_t errstr_size)
{
    tm_pg_msg_t msg;
    int rc = tm_pg_decode(st->dec, cd->data, cd->len, &msg, errstr, errstr_size);
    if (rc != 0)
        return rc;
    if (cd->wal_start > st->recv_lsn)
        st->recv_lsn = cd->wal_start;
    if (msg.has_xid)
        return tm_pg_txbuf_append(st->txbuf, msg.xid, cd->wal_start, cd->data, cd->len, errstr,
                                  errstr_size);
    switch (msg.tag) {
    case TM_PG_MSG_STREAM_START:
        return tm_pg_txbuf_block_start(st->txbuf, msg.xid, errstr, errstr_size);
    case TM_PG_MSG_STREAM_STOP:
        return tm_pg_txbuf_block_stop(st->txbuf, errstr, errstr_size);
    case TM_PG_MSG_STREAM_ABORT:
        return tm_pg_txbuf_abort(st->txbuf, msg.xid, msg.u.stream_abort.subxid, errstr,
                                 errstr_size);
    case TM_PG_MSG_STREAM_COMMIT: {
        char lsn[24];
        TM_DEBUG(TM_PG_COMP, "replaying streamed transaction",
                 "source=%s xid=%" PRIu32 " bytes=%" PRIu64 " commit_lsn=%s", st->src->name,
                 msg.xid, tm_pg_txbuf_size(st->txbuf, msg.xid),
                 tm_pg_lsn_format(msg.u.commit.commit_lsn, lsn));
        if ((rc = barrier_before_tx(st, msg.u.commit.commit_lsn)) != 0 ||
            (rc = tm_pg_txbuf_replay(st->txbuf, msg.xid, &st->replay, errstr, errstr_size)) != 0)
            return rc;
        /* A streamed transaction's BEGIN position is not known: 0 (see tm_source_info_t). */
        begin_tx(st, msg.xid, msg.u.commit.commit_lsn, msg.u.commit.commit_ts, 0);
        st->replay_end_lsn = msg.u.commit.end_lsn;
        return 0;
    }
    default:
        return handle(st, &msg, cd->wal_start, errstr, errstr_size);
    }
}

/* Replays a streamed transaction while there is room downstream. */
static int replay_some(stream_t *st, char *errstr, size_t errstr_size)
{
    for (int n = 0; n < READ_BUDGET && st->src->outq_len < MAX_WAITING; n++) {
        uint32_t subxid;
        uint64_t lsn;
        const uint8_t *buf;
        size_t len;
        int rc = tm_pg_txreplay_next(st->replay, &subxid, &lsn, &buf, &len, errstr, errstr_size);
        if (rc < 0)
            return rc;
        if (rc == 0) {
            st->replay = tm_pg_txreplay_free(st->replay);
            commit_tx(st, st->replay_end_lsn);
            return 0;
        }
        tm_pg_msg_t msg;
        tm_pg_decoder_set_stream(st->rdec, true);
        if ((rc = tm_pg_decode(st->rdec, buf, len, &msg, errstr, errstr_size)) != 0 ||
            (rc = handle(st, &msg, lsn, errstr, errstr_size)) != 0)
            return rc;
    }
    return 0;
}

/* The newest server WAL end any message reported (for the lag in send_status). */
static void report_lag(stream_t *st, uint64_t wal_end)
{
    if (wal_end > st->wal_end_seen)
        st->wal_end_seen = wal_end;
}

static int on_copydata(stream_t *st, const uint8_t *buf, size_t len, char *errstr,
                       size_t errstr_size)
{
    tm_pg_copydata_t cd;
    int rc = tm_pg_copydata_parse(buf, len, &cd, errstr, errstr_size);
    if (rc != 0)
        return rc;
    tm_source_count(st->ctx, 0, len);
    if (cd.tag == 'k') {
        if (cd.wal_end > st->server_end)
            st->server_end = cd.wal_end;
        if (cd.reply_requested)
            st->reply_requested = true;
        report_lag(st, cd.wal_end);
        return 0;
    }
    rc = on_xlogdata(st, &cd, errstr, errstr_size);
    report_lag(st, cd.wal_end);
    return rc;
}

/* ---- Connection ---- */

/* SQLSTATEs after which retrying cannot help. */
static bool fatal_sqlstate(const char *state)
{
    static const char *const fatal[] = {
        "42704", /* undefined_object: the slot or the publication is gone */
        "42501", /* insufficient_privilege */
        "55000", /* object_not_in_prerequisite_state: wal_level, invalidated slot */
        "0A000", /* feature_not_supported */
        "22023", /* invalid_parameter_value */
        "28000", /* invalid_authorization_specification */
        NULL,
    };
    for (int i = 0; state != NULL && fatal[i] != NULL; i++)
        if (strcmp(state, fatal[i]) == 0)
            return true;
    return false;
}

/*
 * What to do after the server said `msg`, or "" (issue 9, item 12).  A
 * publication dropped under a slot cannot be undone by creating it again:
 * the walsender decodes each change with the catalog as of that change
 * (the slot's historic snapshot), where the new publication does not exist,
 * so every restart from the slot's position fails on the same change.  Only
 * a slot that starts after the publication exists can stream again.
 */
static const char *stream_hint(const tm_source_t *src, const char *msg, char *buf, size_t len)
{
    if (msg == NULL || strstr(msg, "publication") == NULL ||
        strstr(msg, "does not exist") == NULL)
        return "";
    snprintf(buf, len,
             ". The publication was dropped while slot '%s' still had changes to send; the slot "
             "decodes each change with the catalog as it was when the change was made, so it "
             "cannot use a publication created again later (create = true recreates it, and "
             "every restart fails the same way). To recover, stop the job and either drop the "
             "slot (SELECT pg_drop_replication_slot('%s');) or set slot = '<a new slot name>', "
             "and restart with snapshot = 'initial' or 'when_needed' so the tables are read "
             "again: changes made while the publication was missing cannot be streamed",
             src->slot, src->slot);
    return buf;
}

static int start_replication(stream_t *st, char *errstr, size_t errstr_size)
{
    tm_source_t *src = st->src;
    char *qslot = tm_pg_quote_ident(src->slot), *qpub = tm_pg_quote_ident(src->publication);
    char *lit = qpub ? tm_pg_quote_literal(qpub) : NULL;
    char cmd[1024];
    int rc = 0;
    if (qslot == NULL || lit == NULL) {
        free(qslot);
        free(qpub);
        free(lit);
        return TM_ENOMEM;
    }
    bool v14 = src->server_version == 0 || src->server_version >= 140000;
    /* Binary values (PostgreSQL 14+) unless a captured table already known cannot use them. */
    st->binary = src->binary && v14 && !src->binary_off;
    for (int i = 0; st->binary && i < src->nrels; i++) {
        const tm_pg_rel_t *rel = &src->rels[i];
        st->binary = binary_usable(st, rel->schema, rel->ct, rel->wanted);
    }
    const char *bin = st->binary ? ", binary 'true'" : "";
    if (!v14)
        snprintf(cmd, sizeof(cmd),
                 "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names %s)",
                 qslot, lit);
    else if (st->proto == 2)
        snprintf(cmd, sizeof(cmd),
                 "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '2', publication_names %s, "
                 "streaming 'on', messages 'true'%s)",
                 qslot, lit, bin);
    else
        snprintf(cmd, sizeof(cmd),
                 "START_REPLICATION SLOT %s LOGICAL 0/0 (proto_version '1', publication_names %s, "
                 "messages 'true'%s)",
                 qslot, lit, bin);
    free(qslot);
    free(qpub);
    free(lit);
    PGresult *res = PQexec(src->repl, cmd);
    if (PQresultStatus(res) != PGRES_COPY_BOTH) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        char m[512];
        snprintf(m, sizeof(m), "%s", PQresultErrorMessage(res));
        m[strcspn(m, "\n")] = '\0';
        bool fatal = fatal_sqlstate(state);
        char hint[1024];
        const char *pub_hint = stream_hint(src, m, hint, sizeof(hint));
        rc = tm_seterr(errstr, errstr_size, fatal ? TM_ESOURCE : TM_ECONN,
                       "START_REPLICATION on slot '%s' failed: %s%s", src->slot, m,
                       pub_hint[0]                             ? pub_hint
                       : state && strcmp(state, "42704") == 0 ? "; the slot or publication was "
                                                                "dropped: restart the job "
                                                                "(snapshot = 'when_needed' "
                                                                "re-reads the tables)"
                                                              : "");
        PQclear(res);
        return rc;
    }
    PQclear(res);
    if (PQsetnonblocking(src->repl, 1) != 0)
        return tm_seterr(errstr, errstr_size, TM_ECONN, "cannot make the connection non-blocking");
    char lsn[24];
    TM_INFO(TM_PG_COMP, "streaming started", "source=%s slot=%s proto=%d values=%s done_end=%s",
            src->name, src->slot, st->proto, st->binary ? "binary" : "text",
            tm_pg_lsn_format(st->done_end, lsn));
    st->ever_connected = true;
    st->last_status_us = 0;
    return 0;
}

/* Forgets everything that the server will send again after a reconnect. */
static void reset_session(stream_t *st)
{
    tm_source_t *src = st->src;
    if (src->repl != NULL) {
        PQfinish(src->repl);
        src->repl = NULL;
    }
    tm_pg_txbuf_reset(st->txbuf, NULL, 0);
    st->replay = tm_pg_txreplay_free(st->replay);
    tm_pg_decoder_set_stream(st->dec, false);
    st->tx.active = false;
    st->reply_requested = false;
    tm_pg_incr_reset(src);
}

/* Reads the error that ended the COPY stream, for the log. */
static void copy_error(PGconn *conn, char *buf, size_t buflen, bool *fatal)
{
    snprintf(buf, buflen, "%s", PQerrorMessage(conn));
    *fatal = false;
    PGresult *res;
    /*
     * After the server's CopyDone libpq stays in COPY IN state and keeps
     * returning that result; a bounded loop reads any error and stops there.
     */
    for (int i = 0; i < 8 && (res = PQgetResult(conn)) != NULL; i++) {
        ExecStatusType status = PQresultStatus(res);
        if (status == PGRES_FATAL_ERROR) {
            snprintf(buf, buflen, "%s", PQresultErrorMessage(res));
            *fatal = fatal_sqlstate(PQresultErrorField(res, PG_DIAG_SQLSTATE));
        }
        PQclear(res);
        if (status == PGRES_COPY_IN || status == PGRES_COPY_OUT || status == PGRES_COPY_BOTH ||
            PQstatus(conn) != CONNECTION_OK)
            break;
    }
    buf[strcspn(buf, "\n")] = '\0';
    if (buf[0] == '\0')
        snprintf(buf, buflen, "the server ended the replication stream");
}

/* Sleeps up to ms while still handing batches over and watching for stop. */
static bool nap(stream_t *st, int64_t ms)
{
    int64_t until = tm_mono_us() + ms * 1000;
    while (tm_mono_us() < until) {
        if (tm_source_should_stop(st->ctx))
            return false;
        if (st->src->outq_len > 0) {
            if (flush_outq(st, 100) == TM_ESTOPPED)
                return false;
        } else {
            usleep(50000);
        }
    }
    return true;
}

static int reconnect(stream_t *st, const char *why, char *errstr, size_t errstr_size)
{
    tm_source_t *src = st->src;
    /* Switching to text values (binary_usable) is a restart on purpose, not a failure. */
    bool planned = st->to_text;
    st->to_text = false;
    if (planned) {
        TM_INFO(TM_PG_COMP, "restarting replication", "source=%s reason=\"%s\"", src->name,
                why);
    } else {
        TM_WARN(TM_PG_COMP, "replication connection lost; reconnecting",
                "source=%s error=\"%s\" timeout_ms=%" PRId64, src->name, why,
                src->reconnect_ms);
        tm_errors_count(TM_ERRKIND_SOURCE_CONNECTION);
    }
    tm_source_set_ready(st->ctx, false);
    reset_session(st);
    int64_t deadline = tm_mono_us() + src->reconnect_ms * 1000;
    int64_t backoff = planned ? 0 : 500;
    char last[512];
    snprintf(last, sizeof(last), "%s", why);
    for (int attempt = 1;; attempt++) {
        if (!nap(st, backoff))
            return TM_ESTOPPED;
        int rc = tm_pg_connect(src, true, &src->repl, last, sizeof(last));
        if (rc == 0) {
            rc = start_replication(st, last, sizeof(last));
            if (rc == 0) {
                TM_INFO(TM_PG_COMP, "reconnected", "source=%s attempts=%d", src->name, attempt);
                tm_source_set_ready(st->ctx, true);
                return 0;
            }
            PQfinish(src->repl);
            src->repl = NULL;
            if (rc != TM_ECONN)
                return tm_seterr(errstr, errstr_size, rc, "%s", last);
        }
        if (tm_mono_us() >= deadline)
            return tm_seterr(errstr, errstr_size, TM_ECONN,
                             "lost the replication connection to PostgreSQL (%s) and could not "
                             "reconnect within reconnect_timeout (%" PRId64 " ms, %d attempts): "
                             "%s",
                             src->dsn_masked, src->reconnect_ms, attempt, last);
        backoff = backoff == 0 ? 500 : backoff * 2 > 30000 ? 30000 : backoff * 2;
        TM_WARN(TM_PG_COMP, "reconnect failed", "source=%s attempt=%d retry_ms=%" PRId64
                " error=\"%s\"", src->name, attempt, backoff, last);
    }
}

/* ---- The loop ---- */

static int wait_input(stream_t *st, int timeout_ms)
{
    struct pollfd pfd = {.fd = PQsocket(st->src->repl), .events = POLLIN};
    if (pfd.fd < 0)
        return TM_ECONN;
    int n = poll(&pfd, 1, timeout_ms);
    if (n < 0 && errno != EINTR)
        return TM_ECONN;
    if (PQconsumeInput(st->src->repl) != 1)
        return TM_ECONN;
    return 0;
}

/*
 * Injects a requested checkpoint barrier, but only between transactions
 * (DESIGN §6): everything before it has been put into batches, and its token
 * is the end LSN of the last complete transaction (or the snapshot's
 * consistent point if none has streamed yet).
 */
/* The id of a requested barrier not queued yet, or 0. */
static uint64_t barrier_wanted(stream_t *st)
{
    tm_source_t *src = st->src;
    uint64_t id = tm_source_barrier_due(st->ctx);
    if (id == 0)
        return 0;
    for (int i = 0; i < src->outq_len; i++)
        if (outq_at(src, i)->barrier == id)
            return 0;
    return id;
}

/* Queues barrier `id` after everything put into batches so far. */
static int inject_barrier(stream_t *st, uint64_t id)
{
    tm_source_t *src = st->src;
    int rc = seal(st);
    if (rc != 0)
        return rc;
    tm_pg_out_t *o = outq_at(src, src->outq_len++);
    o->batch = NULL;
    o->schema = NULL;
    o->barrier = id;
    o->barrier_token = st->done_end > src->sealed_token ? st->done_end : src->sealed_token;
    /* The incremental snapshots' progress as of this point goes with it (pg_incr.c). */
    o->barrier_pos = tm_pg_incr_position(src, o->barrier_token);
    return 0;
}

/*
 * A barrier due at an LSN (tm_source_barrier_at) goes in before the first
 * transaction that commits at or after it: called between transactions with
 * the commit LSN of the one about to begin.
 */
static int barrier_before_tx(stream_t *st, uint64_t commit_lsn)
{
    uint64_t id = barrier_wanted(st);
    if (id == 0 || st->tx.active || st->src->outq_len >= TM_PG_OUTQ_MAX - 1)
        return 0;
    uint64_t at = tm_source_barrier_at(st->ctx);
    return at != 0 && commit_lsn >= at ? inject_barrier(st, id) : 0;
}

static int maybe_barrier(stream_t *st)
{
    tm_source_t *src = st->src;
    uint64_t id = barrier_wanted(st);
    if (id == 0 || st->tx.active || st->replay != NULL || src->outq_len >= TM_PG_OUTQ_MAX - 1)
        return 0;
    uint64_t at = tm_source_barrier_at(st->ctx);
    if (at != 0) {
        /*
         * Between transactions: the barrier belongs here once the server
         * says decoding has passed `at` (a keepalive's WAL end is how far it
         * has sent), and too late if a transaction committing at or after
         * `at` went out already.
         */
        if (st->last_commit_lsn >= at) {
            char l1[24], l2[24];
            TM_WARN(TM_PG_COMP, "a barrier asked for at an LSN came too late to be placed there",
                    "source=%s checkpoint=%" PRIu64 " at=%s streamed=%s", src->name, id,
                    tm_pg_lsn_format(at, l1), tm_pg_lsn_format(st->last_commit_lsn, l2));
            tm_source_barrier_missed(st->ctx, id);
        } else if (st->server_end < at) {
            return 0;
        }
    }
    return inject_barrier(st, id);
}

static int stream_loop(stream_t *st, char *errstr, size_t errstr_size)
{
    tm_source_t *src = st->src;
    char why[512];
    int rc;
    for (;;) {
        if (tm_source_should_stop(st->ctx))
            return 0;
        rc = flush_outq(st, 0);
        if (rc == TM_ESTOPPED)
            return 0;
        if ((rc = housekeeping(st, errstr, errstr_size)) == TM_ECONN) {
            if ((rc = reconnect(st, "cannot send a status update", errstr, errstr_size)) != 0)
                return rc;
            continue;
        } else if (rc != 0) {
            return rc;
        }
        if (src->outq_len >= MAX_WAITING) {
            /* Back-pressure: wait for room, serving the connection in between. */
            if (flush_outq(st, 100) == TM_ESTOPPED)
                return 0;
            continue;
        }
        if ((rc = maybe_barrier(st)) != 0)
            return rc;
        /*
         * A pause (connector.h, tm_source_pause_wanted): between transactions,
         * with everything so far handed on, hold the input while the
         * connection is still served; a barrier may still go in above.
         */
        if (!st->tx.active && st->replay == NULL && tm_source_pause_wanted(st->ctx)) {
            if ((rc = seal(st)) != 0)
                return rc;
            tm_source_set_paused(st->ctx, true);
            if (flush_outq(st, 10) == TM_ESTOPPED)
                return 0;
            if (src->outq_len == 0)
                usleep(5000);
            continue;
        }
        tm_source_set_paused(st->ctx, false);
        if (st->replay != NULL) {
            rc = replay_some(st, errstr, errstr_size);
            if (rc == TM_ECONN) {
                /* A catalog lookup failed: the server resends the transaction after a reconnect. */
                snprintf(why, sizeof(why), "%s", errstr);
                if ((rc = reconnect(st, why, errstr, errstr_size)) != 0)
                    return rc;
            } else if (rc != 0) {
                return rc;
            }
            continue;
        }
        int r = 0;
        for (int n = 0; n < READ_BUDGET && src->outq_len < MAX_WAITING && st->replay == NULL;
             n++) {
            char *buf = NULL;
            r = PQgetCopyData(src->repl, &buf, 1);
            if (r <= 0)
                break;
            rc = on_copydata(st, (const uint8_t *)buf, (size_t)r, errstr, errstr_size);
            PQfreemem(buf);
            if (rc == TM_ECONN) {
                /* A catalog lookup lost the normal connection: start over from the slot. */
                snprintf(why, sizeof(why), "%s", errstr);
                r = -3;
                break;
            }
            if (rc != 0)
                return rc;
            /*
             * A barrier goes in only between transactions.  Under
             * back-pressure a pass usually ends mid-transaction (the queue
             * fills), so a barrier could wait for ever for the top of the
             * loop to find a boundary: end the pass at this one instead.
             */
            if (!st->tx.active && st->replay == NULL &&
                (barrier_wanted(st) != 0 || tm_source_pause_wanted(st->ctx)))
                break;
        }
        if (r == -1 || r == -2 || r == -3) {
            bool fatal = false;
            if (r != -3)
                copy_error(src->repl, why, sizeof(why), &fatal);
            if (fatal) {
                char hint[1024];
                return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                                 "the server stopped replication on slot '%s': %s%s", src->slot,
                                 why, stream_hint(src, why, hint, sizeof(hint)));
            }
            if ((rc = reconnect(st, why, errstr, errstr_size)) != 0)
                return rc;
            continue;
        }
        if (r > 0)
            continue; /* budget used up: housekeeping, then more */
        /*
         * Nothing more is immediately available: what we have goes downstream
         * now.  Not in the middle of a transaction, though: pgoutput sends a
         * (not streamed) transaction whole once it has committed, so its
         * Commit is at most a network delay away, and a batch sealed before
         * it would leave the transaction's end to an empty batch, which sinks
         * never see (Debezium's END event waits on it: docs/compat.md).
         */
        if (!st->tx.active && (rc = seal(st)) != 0)
            return rc;
        if (src->outq_len > 0) {
            rc = flush_outq(st, 100);
            if (rc == TM_ESTOPPED)
                return 0;
            if (rc == 0 && wait_input(st, 0) != 0 &&
                (rc = reconnect(st, "connection lost", errstr, errstr_size)) != 0)
                return rc;
            continue;
        }
        if (wait_input(st, 100) != 0) {
            snprintf(why, sizeof(why), "%s", PQerrorMessage(src->repl));
            why[strcspn(why, "\n")] = '\0';
            if ((rc = reconnect(st, why, errstr, errstr_size)) != 0)
                return rc;
        }
    }
}

/*
 * On a graceful stop the sinks still flush what they were handed.  Waiting
 * (bounded) for those acknowledgements lets the final status update, and
 * snapshot.done, cover everything emitted, so a restart resends nothing.
 */
static void drain_acks(stream_t *st, int64_t max_ms)
{
    tm_source_t *src = st->src;
    int64_t until = tm_mono_us() + max_ms * 1000;
    char err[256];
    while (tm_mono_us() < until) {
        tm_pg_marker_check(src, st->ctx, err, sizeof(err));
        if (!src->marker_pending && tm_source_acked(st->ctx) >= src->sealed_token)
            return;
        if (src->repl != NULL && PQstatus(src->repl) == CONNECTION_OK)
            send_status(st, false);
        usleep(20000);
    }
}

int tm_pg_stream_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    stream_t *st = calloc(1, sizeof(*st));
    if (st == NULL)
        return TM_ENOMEM;
    st->src = src;
    st->ctx = ctx;
    /* Transactions a completed checkpoint already committed are not emitted again. */
    st->done_end = src->restore_token;
    /* Streaming (protocol 2) and messages arrived in PostgreSQL 14. */
    bool v14 = src->server_version == 0 || src->server_version >= 140000;
    st->proto = src->streaming && v14 ? 2 : 1;
    int rc = 0;
    char *spill = NULL;
    if (src->types == NULL && (src->types = tm_pg_typecache_new()) == NULL)
        rc = TM_ENOMEM;
    if (rc == 0 && asprintf(&spill, "%s/spill", src->state_dir) < 0) {
        spill = NULL;
        rc = TM_ENOMEM;
    }
    if (rc == 0 && ((st->dec = tm_pg_decoder_new(st->proto)) == NULL ||
                    (st->rdec = tm_pg_decoder_new(2)) == NULL))
        rc = TM_ENOMEM;
    if (rc == 0)
        rc = tm_pg_txbuf_new(&st->txbuf, spill, errstr, errstr_size);
    if (rc == 0) {
        /* Batches left over from the snapshot (none, normally) keep their order. */
        if (src->repl == NULL || PQstatus(src->repl) != CONNECTION_OK)
            rc = reconnect(st, "no replication connection", errstr, errstr_size);
        else if ((rc = start_replication(st, errstr, errstr_size)) == TM_ECONN)
            rc = reconnect(st, errstr, errstr, errstr_size);
    }
    if (rc == 0) {
        tm_source_set_ready(ctx, true);
        rc = stream_loop(st, errstr, errstr_size);
    }
    if (rc == 0 || rc == TM_ESTOPPED) {
        drain_acks(st, 5000);
        /* A last word, so the slot reflects everything acknowledged so far. */
        if (src->repl != NULL && PQstatus(src->repl) == CONNECTION_OK) {
            send_status(st, true);
            PQputCopyEnd(src->repl, NULL);
            PQflush(src->repl);
        }
        char lsn[24];
        TM_INFO(TM_PG_COMP, "streaming stopped", "source=%s flushed=%s", src->name,
                tm_pg_lsn_format(st->flush_sent, lsn));
        rc = 0;
    }
    tm_source_set_ready(ctx, false);
    tm_pg_txreplay_free(st->replay);
    tm_pg_txbuf_free(st->txbuf);
    tm_pg_decoder_free(st->dec);
    tm_pg_decoder_free(st->rdec);
    free(spill);
    free(st);
    return rc;
}
