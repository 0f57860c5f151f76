/*
 * pg_snapshot.c — the initial snapshot of the PostgreSQL source.
 *
 * Role: reads every captured table inside the REPEATABLE READ transaction
 * that source_open prepared (with the slot's exported snapshot, so the rows
 * are exactly the state at the slot's consistent point) and emits them as
 * op 'r' records.
 *
 * Tables with a primary key are read in keyset chunks
 *
 *     SELECT cols FROM t WHERE (pk) > ($last) ORDER BY pk LIMIT chunk
 *
 * which keeps each query cheap and memory bounded whatever the table size;
 * tables without one go through a cursor, FETCH chunk rows at a time.
 *
 * Records carry Debezium's snapshot markers: FIRST on the first record of the
 * whole snapshot, LAST on the last, and otherwise FIRST_IN_DATA_COLLECTION /
 * LAST_IN_DATA_COLLECTION on the first and last record of each table (the
 * last wins for a table of one row; FIRST wins over everything), TRUE on the
 * rest; and the snapshot transaction's id as txId, as Debezium does.
 *
 * Invariants:
 *   1. Only the last record of the whole snapshot is marked TM_SNAPSHOT_LAST,
 *      and the last of each table LAST_IN_DATA_COLLECTION: a full batch is
 *      emitted only when the next row is at hand, so a table's final row is
 *      always still in the unsent batch when the table ends.
 *   2. Only that final batch carries an ack token (the consistent point).
 *      snapshot.done is written once tm_source_acked() reaches it, and not
 *      before: a crash earlier makes the next start redo the snapshot.
 *   3. The replication connection is idle during the snapshot (the slot
 *      exists, streaming has not started), so waiting on back-pressure here
 *      needs no keepalives.
 *
 * Thread: the source thread.
 */
#include "postgres/postgres_int.h"

#include "common/snapprog.h"
#include "core/buf.h"
#include "core/error.h"
#include "core/failpoint.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct snapstate {
    uint64_t total;   /* rows emitted over all tables */
    int64_t start_us; /* monotonic */
    uint64_t table;   /* rows emitted of the current table */
} snapstate_t;

/*
 * The last record emitted, still in the unsent batch (invariant 1), gets a
 * closing marker; FIRST stays what it is.
 */
static void mark_last(tm_source_t *src, uint8_t marker)
{
    if (src->cur == NULL || src->cur->count == 0)
        return;
    tm_record_t *rec = &src->cur->recs[src->cur->count - 1];
    if (rec->src.snapshot != TM_SNAPSHOT_FIRST)
        rec->src.snapshot = marker;
}

/* Debezium's txId of a snapshot read: the snapshot transaction's id. */
static int snapshot_txid(tm_source_t *src, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexec(src->conn, "SELECT CASE WHEN pg_catalog.pg_is_in_recovery() THEN 0 "
                                      "ELSE pg_catalog.txid_current() END");
    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        char mbuf[512];
        int rc = tm_seterr(errstr, errstr_size, TM_ESOURCE,
                           "cannot read the snapshot's transaction id: %s",
                           tm_pg_msg(PQresultErrorMessage(res), mbuf, sizeof(mbuf)));
        PQclear(res);
        return rc;
    }
    /* txid_current() counts epochs above 32 bits; the WAL's xids (streaming) do not. */
    src->snapshot_xid = (uint32_t)strtoull(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    return 0;
}

/* Hands a batch over, waiting as long as it takes unless the job stops. */
static int emit_blocking(tm_source_ctx_t *ctx, tm_batch_t *b)
{
    for (;;) {
        int rc = tm_source_emit(ctx, b, 100);
        if (rc == 0)
            return 0;
        if (rc != TM_EAGAIN) {
            tm_batch_unref(b);
            return rc;
        }
        if (tm_source_should_stop(ctx)) {
            tm_batch_unref(b);
            return TM_ESTOPPED;
        }
    }
}

/* Returns a record slot, emitting the current batch first if it is full. */
static int next_record(tm_source_t *src, tm_source_ctx_t *ctx, tm_pg_rel_t *rel,
                       tm_record_t **out)
{
    if (src->cur != NULL && tm_batch_full(src->cur)) {
        tm_batch_t *b = src->cur;
        src->cur = NULL;
        int rc = emit_blocking(ctx, b);
        if (rc != 0)
            return rc;
    }
    if (src->cur == NULL && (src->cur = tm_batch_new()) == NULL)
        return TM_ENOMEM;
    *out = tm_batch_add(src->cur, rel->schema, TM_OP_READ);
    return *out != NULL ? 0 : TM_ENOMEM;
}

static int row_from_result(tm_source_t *src, tm_pg_rel_t *rel, PGresult *res, int r,
                           tm_row_t **out, char *errstr, size_t errstr_size)
{
    tm_batch_t *b = src->cur;
    const tm_schema_t *s = rel->schema;
    tm_row_t *row = tm_batch_new_row(b, s);
    if (row == NULL)
        return TM_ENOMEM;
    for (int c = 0; c < s->ncols; c++) {
        if (PQgetisnull(res, r, c))
            continue;
        char why[256];
        int rc = tm_pg_value_parse(b, &rel->ct[c], PQgetvalue(res, r, c),
                                   (size_t)PQgetlength(res, r, c), &row->vals[c], why,
                                   sizeof(why));
        if (rc != 0)
            return rc == TM_ENOMEM ? rc
                                   : tm_seterr(errstr, errstr_size, TM_EPROTO,
                                               "snapshot of %s.%s, column %s (%s): %s",
                                               s->namespace, s->table, s->cols[c].name,
                                               s->cols[c].db_type, why);
        tm_row_set_null(row, c, false);
    }
    *out = row;
    return 0;
}

/* Snapshot progress as text (common/snapprog.h). */
static tm_snapprog_t prog_of(const tm_source_t *src, const tm_pg_table_t *t, int64_t start_us)
{
    return (tm_snapprog_t){TM_PG_COMP, src->name, t->nspname, t->relname, t->reltuples,
                           start_us};
}

static void progress(const tm_source_t *src, const tm_pg_table_t *t, uint64_t rows, bool done,
                     const snapstate_t *st, int64_t table_start_us)
{
    tm_snapprog_t p = prog_of(src, t, table_start_us);
    tm_snapprog_log(&p, rows, st->total, done);
}

/*
 * Book-keeping after one chunk of n rows: counts them, shows progress (on a
 * terminal a progress line every 200 ms, else a log line every 5 s), and
 * says whether to go on: 0 for the next chunk, 1 when the table is done (a
 * short chunk), TM_ESTOPPED when the job is stopping.
 */
static int chunk_done(const tm_source_t *src, tm_source_ctx_t *ctx, const tm_pg_table_t *t,
                      const snapstate_t *st, int n, uint64_t *rows, int64_t t0, int64_t *last_log)
{
    bool first = *rows == 0;
    *rows += (uint64_t)n;
    char name[256];
    snprintf(name, sizeof(name), "%s.%s", t->nspname, t->relname);
    tm_source_snapshot_progress(ctx, name, *rows, t->reltuples > 0 ? t->reltuples : -1.0,
                                n < src->chunk_size);
    if (n < src->chunk_size)
        return 1;
    tm_failpoint("pg.snapshot.chunk");
    int64_t now = tm_mono_us();
    if (tm_log_is_terminal()) {
        if (first || now - *last_log >= 200000) {
            tm_snapprog_t p = prog_of(src, t, t0);
            tm_snapprog_line(&p, *rows);
            *last_log = now;
        }
    } else if (now - *last_log >= 5000000) {
        progress(src, t, *rows, false, st, t0);
        *last_log = now;
    }
    return tm_source_should_stop(ctx) ? TM_ESTOPPED : 0;
}

static int emit_rows(tm_source_t *src, tm_source_ctx_t *ctx, tm_pg_rel_t *rel, PGresult *res,
                     snapstate_t *st, char *errstr, size_t errstr_size)
{
    int rows = PQntuples(res);
    int64_t now = tm_wall_us();
    for (int r = 0; r < rows; r++) {
        tm_record_t *rec;
        int rc = next_record(src, ctx, rel, &rec);
        if (rc != 0)
            return rc;
        rec->proc_us = now;
        rec->src.ts_us = now;
        rec->src.kind = TM_SOURCE_POSTGRES;
        rec->src.pos = src->snapshot_lsn;
        rec->src.u.pg.xid = src->snapshot_xid;
        rec->src.snapshot = st->total == 0    ? TM_SNAPSHOT_FIRST
                            : st->table == 0 ? TM_SNAPSHOT_FIRST_IN_DATA_COLLECTION
                                             : TM_SNAPSHOT_TRUE;
        st->table++;
        if ((rc = row_from_result(src, rel, res, r, &rec->after, errstr, errstr_size)) != 0)
            return rc;
        st->total++;
    }
    tm_source_count(ctx, (uint64_t)rows, 0);
    return 0;
}

static char *column_list(const tm_schema_t *s)
{
    tm_buf_t b;
    tm_buf_init(&b);
    for (int i = 0; i < s->ncols; i++) {
        char *q = tm_pg_quote_ident(s->cols[i].name);
        if (q == NULL || tm_buf_appendf(&b, "%s%s", i ? ", " : "", q) != 0) {
            free(q);
            tm_buf_release(&b);
            return NULL;
        }
        free(q);
    }
    if (s->ncols == 0)
        tm_buf_puts(&b, "NULL");
    if (tm_buf_putc(&b, '\0') != 0) {
        tm_buf_release(&b);
        return NULL;
    }
    return b.data;
}

static int snapshot_table(tm_source_t *src, tm_source_ctx_t *ctx, const tm_pg_table_t *t,
                          snapstate_t *st, char *errstr, size_t errstr_size)
{
    tm_schema_t *s;
    tm_pg_coltype_t *ct;
    char replident, *rowfilter = NULL, mbuf[512];
    bool changed;
    int rc = tm_pg_schema_from_catalog(src, t, &s, &ct, &replident, &rowfilter, errstr,
                                       errstr_size);
    if (rc != 0)
        return rc;
    if ((rc = tm_pg_rel_install(src, t->relid, replident, s, ct, &changed)) != 0) {
        free(rowfilter);
        return rc;
    }
    tm_pg_rel_t *rel = tm_pg_rel_find(src, t->relid);
    s = rel->schema;
    char *cols = column_list(s);
    char *qn = tm_pg_quote_ident(t->nspname), *qr = tm_pg_quote_ident(t->relname);
    tm_buf_t sql, order, keys, params;
    tm_buf_init(&sql);
    tm_buf_init(&order);
    tm_buf_init(&keys);
    tm_buf_init(&params);
    char **last = NULL;
    uint64_t rows = 0;
    int64_t t0 = tm_mono_us(), last_log = t0;
    if (cols == NULL || qn == NULL || qr == NULL) {
        rc = TM_ENOMEM;
        goto out;
    }
    TM_INFO(TM_PG_COMP, "snapshot of table started",
            "source=%s table=%s.%s estimate=%.0f chunk=%" PRId64 " key_columns=%d", src->name,
            t->nspname, t->relname, t->reltuples, src->chunk_size, s->nkeys);

    if (s->nkeys > 0) {
        for (int k = 0; k < s->nkeys; k++) {
            char *q = tm_pg_quote_ident(s->cols[s->key_cols[k]].name);
            if (q == NULL) {
                rc = TM_ENOMEM;
                goto out;
            }
            tm_buf_appendf(&keys, "%s%s", k ? ", " : "", q);
            tm_buf_appendf(&params, "%s$%d", k ? ", " : "", k + 1);
            free(q);
        }
        tm_buf_putc(&keys, '\0');
        tm_buf_putc(&params, '\0');
        last = calloc((size_t)s->nkeys, sizeof(char *));
        if (last == NULL || keys.data == NULL || params.data == NULL) {
            rc = TM_ENOMEM;
            goto out;
        }
        for (bool first = true;; first = false) {
            tm_buf_clear(&sql);
            tm_buf_appendf(&sql, "SELECT %s FROM %s.%s", cols, qn, qr);
            if (rowfilter != NULL || !first)
                tm_buf_puts(&sql, " WHERE ");
            if (rowfilter != NULL)
                tm_buf_appendf(&sql, "(%s)%s", rowfilter, first ? "" : " AND ");
            if (!first)
                tm_buf_appendf(&sql, "(%s) > (%s)", keys.data, params.data);
            tm_buf_appendf(&sql, " ORDER BY %s LIMIT %" PRId64, keys.data, src->chunk_size);
            if (tm_buf_putc(&sql, '\0') != 0) {
                rc = TM_ENOMEM;
                goto out;
            }
            PGresult *res = PQexecParams(src->conn, sql.data, first ? 0 : s->nkeys, NULL,
                                         (const char *const *)last, NULL, NULL, 0);
            if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                rc = tm_seterr(errstr, errstr_size, TM_ESOURCE, "snapshot of %s.%s failed: %s",
                               t->nspname, t->relname,
                               PQresultErrorMessage(res) ? PQresultErrorMessage(res) : "");
                PQclear(res);
                goto out;
            }
            int n = PQntuples(res);
            rc = emit_rows(src, ctx, rel, res, st, errstr, errstr_size);
            if (rc == 0 && n > 0) {
                for (int k = 0; k < s->nkeys; k++) {
                    free(last[k]);
                    last[k] = strdup(PQgetvalue(res, n - 1, s->key_cols[k]));
                    if (last[k] == NULL)
                        rc = TM_ENOMEM;
                }
            }
            PQclear(res);
            if (rc != 0)
                goto out;
            if ((rc = chunk_done(src, ctx, t, st, n, &rows, t0, &last_log)) != 0)
                break;
        }
        if (rc < 0)
            goto out;
        rc = 0;
    } else {
        tm_buf_appendf(&sql, "DECLARE tidemark_snapshot NO SCROLL CURSOR FOR SELECT %s FROM %s.%s",
                       cols, qn, qr);
        if (rowfilter != NULL)
            tm_buf_appendf(&sql, " WHERE (%s)", rowfilter);
        if (tm_buf_putc(&sql, '\0') != 0 ||
            (rc = tm_pg_exec(src->conn, sql.data, errstr, errstr_size)) != 0)
            goto out;
        char fetch[64];
        snprintf(fetch, sizeof(fetch), "FETCH FORWARD %" PRId64 " FROM tidemark_snapshot",
                 src->chunk_size);
        for (;;) {
            PGresult *res = PQexec(src->conn, fetch);
            if (PQresultStatus(res) != PGRES_TUPLES_OK) {
                snprintf(mbuf, sizeof(mbuf), "%s", PQresultErrorMessage(res));
                rc = tm_seterr(errstr, errstr_size, TM_ESOURCE, "snapshot of %s.%s failed: %s",
                               t->nspname, t->relname, mbuf);
                PQclear(res);
                goto out;
            }
            int n = PQntuples(res);
            rc = emit_rows(src, ctx, rel, res, st, errstr, errstr_size);
            PQclear(res);
            if (rc != 0)
                goto out;
            if ((rc = chunk_done(src, ctx, t, st, n, &rows, t0, &last_log)) != 0)
                break;
        }
        if (rc < 0)
            goto out;
        rc = tm_pg_exec(src->conn, "CLOSE tidemark_snapshot", errstr, errstr_size);
    }
    if (rc == 0) {
        if (st->table > 0)
            mark_last(src, TM_SNAPSHOT_LAST_IN_DATA_COLLECTION);
        tm_log_progress(NULL);
        progress(src, t, rows, true, st, t0);
    }
out:
    tm_log_progress(NULL); /* also on failure: the error is then logged on a clean line */
    if (last != NULL)
        for (int k = 0; k < s->nkeys; k++)
            free(last[k]);
    free(last);
    tm_buf_release(&sql);
    tm_buf_release(&order);
    tm_buf_release(&keys);
    tm_buf_release(&params);
    free(cols);
    free(qn);
    free(qr);
    free(rowfilter);
    return rc;
}

int tm_pg_snapshot_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    snapstate_t st = {0, tm_mono_us(), 0};
    int rc = snapshot_txid(src, errstr, errstr_size);
    for (int i = 0; i < src->ntables && rc == 0; i++) {
        st.table = 0;
        rc = snapshot_table(src, ctx, &src->tables[i], &st, errstr, errstr_size);
    }
    if (rc != 0)
        return rc;
    /* Ending the transaction releases the exported snapshot; the rows are all read. */
    if ((rc = tm_pg_exec(src->conn, "COMMIT", errstr, errstr_size)) != 0)
        return rc;
    src->snapshot_exported = false;
    double secs = (double)(tm_mono_us() - st.start_us) / 1e6;
    char lsn[24];
    TM_INFO(TM_PG_COMP, "snapshot read",
            "source=%s tables=%d rows=%" PRIu64 " seconds=%.1f rate=%.0f lsn=%s", src->name,
            src->ntables, st.total, secs, secs > 0 ? (double)st.total / secs : 0.0,
            tm_pg_lsn_format(src->snapshot_lsn, lsn));
    if (src->cur == NULL || src->cur->count == 0) {
        /* Nothing to acknowledge downstream: the snapshot is complete as it is. */
        src->marker_pending = false;
        return tm_pg_marker_write(src, errstr, errstr_size);
    }
    mark_last(src, TM_SNAPSHOT_LAST);
    tm_batch_t *b = src->cur;
    src->cur = NULL;
    b->ack_token = src->snapshot_lsn;
    if (b->ack_token > src->sealed_token)
        src->sealed_token = b->ack_token;
    src->marker_pending = true;
    return emit_blocking(ctx, b);
}

int tm_pg_marker_check(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    if (!src->marker_pending || tm_source_acked(ctx) < src->snapshot_lsn)
        return 0;
    int rc = tm_pg_marker_write(src, errstr, errstr_size);
    if (rc != 0)
        return rc;
    src->marker_pending = false;
    char lsn[24];
    TM_INFO(TM_PG_COMP, "snapshot acknowledged", "source=%s lsn=%s", src->name,
            tm_pg_lsn_format(src->snapshot_lsn, lsn));
    return 0;
}
