/*
 * my_snapshot.c — the initial snapshot of the MySQL/MariaDB source.
 *
 * Role: reads every captured table at one consistent point and emits its
 * rows as op 'r' records, then says where the binlog stream continues so
 * that every change is either in the snapshot or in the stream, never in
 * both and never in neither.
 *
 *     MariaDB: START TRANSACTION WITH CONSISTENT SNAPSHOT, then
 *              SHOW STATUS LIKE 'binlog_snapshot_%' (file and offset of that
 *              very snapshot, no global lock) and @@gtid_binlog_pos read
 *              before and after (equal: no commit in between, so it is the
 *              snapshot's GTID set; else try again)
 *     MySQL:   FLUSH TABLES WITH READ LOCK, START TRANSACTION WITH
 *              CONSISTENT SNAPSHOT, SHOW MASTER STATUS, UNLOCK TABLES
 *
 * Tables with a primary key whose columns order the same in SQL and in
 * their text (numbers, temporal types, strings) are read in keyset chunks
 *
 *     SELECT cols FROM t WHERE (k1 > ?) OR (k1 = ? AND k2 > ?) … ORDER BY k1, k2 LIMIT chunk
 *
 * so each query is cheap and memory bounded; other tables in one streamed
 * scan (mysql_use_result).
 *
 * Values.  The schema of a table comes from the same code as the binlog
 * path's (a table map built from information_schema and completed by
 * my_catalog.c, then tm_my_schema_from_tablemap), and each text value is
 * turned into exactly the datum binlog_rows.c makes of the row image: the
 * SELECT asks for a form that is exact (TIMESTAMP in a UTC session, FLOAT as
 * DOUBLE, BIT as its number, GEOMETRY as stored: SRID and WKB) and
 * text_value() mirrors decode_value() type by type, zero dates included.
 *
 * Records carry Debezium's snapshot markers as the PostgreSQL source's do:
 * FIRST on the first record of the whole snapshot, LAST on the last,
 * FIRST_IN_DATA_COLLECTION / LAST_IN_DATA_COLLECTION on each table's first
 * and last, TRUE on the rest.
 *
 * Invariants:
 *   1. A full batch is emitted only when the next row is at hand, so the
 *      final row of a table is still in the unsent batch when the table
 *      ends and can get its closing marker.
 *   2. Only the final batch carries an ack token, the snapshot position's.
 *      No checkpoint barrier goes in during the snapshot, so a restart
 *      before the sinks acknowledged it finds no position and reads the
 *      tables again from a new snapshot (the PostgreSQL source's rule:
 *      the snapshot restarts cleanly, never half-resumes).
 *   3. The snapshot connection is the only one that reads the tables, and
 *      its transaction is open from the position read to the last row.
 *
 * Thread: the source thread.
 */
#include "mysql/mysql_int.h"

#include "common/snapprog.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/failpoint.h"
#include "core/log.h"

#include "core/fsutil.h"

#include <errmsg.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

typedef struct snapstate {
    uint64_t total;   /* rows emitted over all tables */
    int64_t start_us; /* monotonic */
    uint64_t table;   /* rows emitted of the current table */
    uint64_t token;   /* the snapshot position's ack token */
    int64_t now_us;   /* wall clock of the snapshot, every record's ts */
    tm_source_info_t info; /* every row's source block but its marker (tm_my_snapshot_source) */
} snapstate_t;

/* One table to read. */
typedef struct snaptable {
    char *db;
    char *table;
    double estimate; /* information_schema.TABLES.TABLE_ROWS, < 0 unknown */
} snaptable_t;

/* ---- Small helpers ---- */

static int snap_err(MYSQL *conn, const char *what, char *errstr, size_t errstr_size)
{
    unsigned e = mysql_errno(conn);
    return tm_seterr(errstr, errstr_size,
                     e >= CR_MIN_ERROR && e <= CR_MAX_ERROR ? TM_ECONN : TM_ESOURCE,
                     "snapshot: %s failed: %s (error %u)", what, mysql_error(conn), e);
}

/* Appends `name` quoted with backquotes (inner backquotes doubled). */
static void put_ident(tm_buf_t *b, const char *name)
{
    tm_buf_putc(b, '`');
    for (const char *p = name; *p; p++) {
        if (*p == '`')
            tm_buf_putc(b, '`');
        tm_buf_putc(b, *p);
    }
    tm_buf_putc(b, '`');
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

/* The last record emitted (still in the unsent batch, invariant 1) gets a closing marker. */
static void mark_last(tm_source_t *src, uint8_t marker)
{
    if (src->cur == NULL || src->cur->count == 0)
        return;
    tm_record_t *rec = &src->cur->recs[src->cur->count - 1];
    if (rec->src.snapshot != TM_SNAPSHOT_FIRST)
        rec->src.snapshot = marker;
}

/* ---- The table map of a table, from information_schema ---- */

static const char *const geometry_types[] = {
    "geometry",   "point",           "linestring",         "polygon",
    "multipoint", "multilinestring", "multipolygon",       "geometrycollection",
};

/*
 * The binlog type and metadata a TABLE_MAP gives a column of this
 * information_schema type (binlog_rows.c: read_meta); TM_EUNSUPPORTED for
 * a type without one.
 */
static int column_from_catalog(tm_my_column_t *c, const char *dtype, const char *coltype,
                               uint64_t octets, int prec, int scale, int fsp, bool is_mariadb)
{
    c->meta = 0;
    if (strcmp(dtype, "tinyint") == 0)
        c->type = TM_MY_T_TINY;
    else if (strcmp(dtype, "smallint") == 0)
        c->type = TM_MY_T_SHORT;
    else if (strcmp(dtype, "mediumint") == 0)
        c->type = TM_MY_T_INT24;
    else if (strcmp(dtype, "int") == 0 || strcmp(dtype, "integer") == 0)
        c->type = TM_MY_T_LONG;
    else if (strcmp(dtype, "bigint") == 0)
        c->type = TM_MY_T_LONGLONG;
    else if (strcmp(dtype, "float") == 0) {
        c->type = TM_MY_T_FLOAT;
        c->meta = 4;
    } else if (strcmp(dtype, "double") == 0 || strcmp(dtype, "real") == 0) {
        c->type = TM_MY_T_DOUBLE;
        c->meta = 8;
    } else if (strcmp(dtype, "decimal") == 0 || strcmp(dtype, "numeric") == 0) {
        c->type = TM_MY_T_NEWDECIMAL;
        c->meta = (uint16_t)((prec & 0xFF) << 8 | (scale & 0xFF));
    } else if (strcmp(dtype, "date") == 0)
        c->type = TM_MY_T_DATE;
    else if (strcmp(dtype, "datetime") == 0) {
        c->type = TM_MY_T_DATETIME2;
        c->meta = (uint16_t)fsp;
    } else if (strcmp(dtype, "timestamp") == 0) {
        c->type = TM_MY_T_TIMESTAMP2;
        c->meta = (uint16_t)fsp;
    } else if (strcmp(dtype, "time") == 0) {
        c->type = TM_MY_T_TIME2;
        c->meta = (uint16_t)fsp;
    } else if (strcmp(dtype, "year") == 0)
        c->type = TM_MY_T_YEAR;
    else if (strcmp(dtype, "char") == 0 || strcmp(dtype, "binary") == 0) {
        c->type = TM_MY_T_STRING;
        c->meta = (uint16_t)(octets > 1020 ? 1020 : octets);
    } else if (strcmp(dtype, "varchar") == 0 || strcmp(dtype, "varbinary") == 0) {
        c->type = TM_MY_T_VARCHAR;
        c->meta = (uint16_t)(octets > 65535 ? 65535 : octets);
    } else if (strcmp(dtype, "tinytext") == 0 || strcmp(dtype, "tinyblob") == 0) {
        c->type = TM_MY_T_BLOB;
        c->meta = 1;
    } else if (strcmp(dtype, "text") == 0 || strcmp(dtype, "blob") == 0) {
        c->type = TM_MY_T_BLOB;
        c->meta = 2;
    } else if (strcmp(dtype, "mediumtext") == 0 || strcmp(dtype, "mediumblob") == 0) {
        c->type = TM_MY_T_BLOB;
        c->meta = 3;
    } else if (strcmp(dtype, "longtext") == 0 || strcmp(dtype, "longblob") == 0 ||
               (strcmp(dtype, "json") == 0 && is_mariadb)) {
        c->type = TM_MY_T_BLOB;
        c->meta = 4;
    } else if (strcmp(dtype, "json") == 0) {
        c->type = TM_MY_T_JSON;
        c->meta = 4;
    } else if (strcmp(dtype, "enum") == 0) {
        c->type = TM_MY_T_ENUM;
        c->meta = 1;
    } else if (strcmp(dtype, "set") == 0) {
        c->type = TM_MY_T_SET;
        c->meta = 1;
    } else if (strcmp(dtype, "bit") == 0) {
        c->type = TM_MY_T_BIT;
        c->meta = (uint16_t)(((prec / 8) << 8) | (prec % 8));
    } else {
        for (size_t i = 0; i < sizeof(geometry_types) / sizeof(geometry_types[0]); i++)
            if (strcmp(dtype, geometry_types[i]) == 0) {
                c->type = TM_MY_T_GEOMETRY;
                c->meta = 4;
                return 0;
            }
        (void)coltype;
        return TM_EUNSUPPORTED;
    }
    return 0;
}

static int table_map(tm_source_t *src, MYSQL *conn, const snaptable_t *t, tm_my_tablemap_t **out,
                     char *errstr, size_t errstr_size)
{
    char edb[130], etb[130], sql[900];
    *out = NULL;
    mysql_real_escape_string(conn, edb, t->db, (unsigned long)strlen(t->db));
    mysql_real_escape_string(conn, etb, t->table, (unsigned long)strlen(t->table));
    snprintf(sql, sizeof(sql),
             "SELECT DATA_TYPE, COLUMN_TYPE, IS_NULLABLE, IFNULL(CHARACTER_OCTET_LENGTH, 0), "
             "IFNULL(NUMERIC_PRECISION, 0), IFNULL(NUMERIC_SCALE, 0), "
             "IFNULL(DATETIME_PRECISION, 0), COLUMN_NAME FROM information_schema.COLUMNS "
             "WHERE TABLE_SCHEMA = '%s' AND TABLE_NAME = '%s' ORDER BY ORDINAL_POSITION",
             edb, etb);
    if (mysql_query(conn, sql) != 0)
        return snap_err(conn, "reading the columns from information_schema", errstr,
                        errstr_size);
    MYSQL_RES *res = mysql_store_result(conn);
    if (res == NULL)
        return snap_err(conn, "reading the columns from information_schema", errstr,
                        errstr_size);
    tm_my_tablemap_t *map = calloc(1, sizeof(*map));
    uint64_t n = mysql_num_rows(res);
    int rc = 0;
    if (map == NULL || (map->db = strdup(t->db)) == NULL ||
        (map->table = strdup(t->table)) == NULL ||
        (n > 0 && (map->cols = calloc((size_t)n, sizeof(*map->cols))) == NULL)) {
        rc = TM_ENOMEM;
        goto out;
    }
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        tm_my_column_t *c = &map->cols[map->ncols++];
        c->key_index = -1;
        c->nullable = row[2] != NULL && strcmp(row[2], "YES") == 0;
        const char *dtype = row[0] ? row[0] : "";
        rc = column_from_catalog(c, dtype, row[1] ? row[1] : "",
                                 strtoull(row[3] ? row[3] : "0", NULL, 10),
                                 (int)strtol(row[4] ? row[4] : "0", NULL, 10),
                                 (int)strtol(row[5] ? row[5] : "0", NULL, 10),
                                 (int)strtol(row[6] ? row[6] : "0", NULL, 10), src->is_mariadb);
        if (rc == TM_EUNSUPPORTED) {
            rc = tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                           "snapshot of %s.%s: column %s has type %s, which tidemark cannot "
                           "read yet; leave the table out of option 'tables' or use snapshot = "
                           "'never'",
                           t->db, t->table, row[7] ? row[7] : "?", row[1] ? row[1] : dtype);
            goto out;
        }
    }
    if (map->ncols == 0) {
        rc = tm_seterr(errstr, errstr_size, TM_ESOURCE,
                       "snapshot of %s.%s: the table has no columns in information_schema (was "
                       "it dropped?)",
                       t->db, t->table);
        goto out;
    }
out:
    mysql_free_result(res);
    if (rc == 0)
        rc = tm_my_catalog_complete(src, map, errstr, errstr_size);
    if (rc != 0) {
        tm_my_tablemap_free(map);
        return rc;
    }
    *out = map;
    return 0;
}

/* ---- Text values to datums (the mirror of binlog_rows.c: decode_value) ---- */

/* Reads up to `max` digits; *n is set to how many were read. */
static uint64_t digits(const char **p, const char *end, int max, int *n)
{
    uint64_t v = 0;
    *n = 0;
    while (*p < end && **p >= '0' && **p <= '9' && *n < max) {
        v = v * 10 + (uint64_t)(**p - '0');
        (*p)++;
        (*n)++;
    }
    return v;
}

/* ".ffffff" (any number of digits up to 6) as microseconds; 0 without a fraction. */
static int frac_us(const char **p, const char *end, int64_t *us)
{
    *us = 0;
    if (*p >= end || **p != '.')
        return 0;
    (*p)++;
    int n;
    uint64_t v = digits(p, end, 6, &n);
    if (n == 0)
        return TM_EINVAL;
    for (int i = n; i < 6; i++)
        v *= 10;
    *us = (int64_t)v;
    return 0;
}

/* "YYYY-MM-DD[ hh:mm:ss[.ffffff]]": the date parts and the time of day in µs. */
static int parse_datetime(const char *s, size_t len, int64_t *y, unsigned *m, unsigned *d,
                          int64_t *tod_us)
{
    const char *p = s, *end = s + len;
    int n1, n2, n3;
    *y = (int64_t)digits(&p, end, 4, &n1);
    if (n1 != 4 || p >= end || *p++ != '-')
        return TM_EINVAL;
    *m = (unsigned)digits(&p, end, 2, &n2);
    if (n2 != 2 || p >= end || *p++ != '-')
        return TM_EINVAL;
    *d = (unsigned)digits(&p, end, 2, &n3);
    if (n3 != 2)
        return TM_EINVAL;
    *tod_us = 0;
    if (p == end)
        return 0;
    if (*p++ != ' ')
        return TM_EINVAL;
    uint64_t hh = digits(&p, end, 2, &n1);
    if (n1 != 2 || p >= end || *p++ != ':')
        return TM_EINVAL;
    uint64_t mi = digits(&p, end, 2, &n2);
    if (n2 != 2 || p >= end || *p++ != ':')
        return TM_EINVAL;
    uint64_t ss = digits(&p, end, 2, &n3);
    int64_t us;
    if (n3 != 2 || frac_us(&p, end, &us) != 0 || p != end)
        return TM_EINVAL;
    *tod_us = (int64_t)(hh * 3600 + mi * 60 + ss) * 1000000 + us;
    return 0;
}

/* "[-]h…h:mm:ss[.ffffff]" as signed microseconds. */
static int parse_time(const char *s, size_t len, int64_t *out)
{
    const char *p = s, *end = s + len;
    bool neg = p < end && *p == '-';
    if (neg)
        p++;
    int n1, n2, n3;
    uint64_t hh = digits(&p, end, 4, &n1);
    if (n1 == 0 || p >= end || *p++ != ':')
        return TM_EINVAL;
    uint64_t mi = digits(&p, end, 2, &n2);
    if (n2 != 2 || p >= end || *p++ != ':')
        return TM_EINVAL;
    uint64_t ss = digits(&p, end, 2, &n3);
    int64_t us;
    if (n3 != 2 || frac_us(&p, end, &us) != 0 || p != end)
        return TM_EINVAL;
    int64_t v = (int64_t)(hh * 3600 + mi * 60 + ss) * 1000000 + us;
    *out = neg ? -v : v;
    return 0;
}

static int parse_int(const char *s, size_t len, bool is_unsigned, uint64_t *out)
{
    char buf[32];
    if (len == 0 || len >= sizeof(buf))
        return TM_EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    char *end;
    errno = 0;
    if (is_unsigned) {
        if (buf[0] == '-')
            return TM_EINVAL;
        *out = strtoull(buf, &end, 10);
    } else {
        *out = (uint64_t)strtoll(buf, &end, 10);
    }
    return errno != 0 || *end != '\0' ? TM_EINVAL : 0;
}

/*
 * The datum binlog_rows.c's decode_value() makes of the same value, from the
 * text the SELECT of select_list() returns.  *isnull as there (zero dates).
 */
static int text_value(tm_batch_t *batch, const tm_my_column_t *c, const tm_column_t *col,
                      const char *s, size_t len, tm_datum_t *d, bool *isnull)
{
    *isnull = false;
    switch (c->type) {
    case TM_MY_T_TINY:
    case TM_MY_T_SHORT:
    case TM_MY_T_INT24:
    case TM_MY_T_LONG:
    case TM_MY_T_LONGLONG: {
        uint64_t v;
        if (parse_int(s, len, c->is_unsigned, &v) != 0)
            return TM_EINVAL;
        if (col->type == TM_T_NUMERIC) { /* BIGINT UNSIGNED, precise */
            d->u.dec = (__int128)v;
            d->scale = 0;
        } else {
            d->u.i64 = (int64_t)v; /* BIGINT UNSIGNED in long mode wraps, as decoded */
        }
        return 0;
    }
    case TM_MY_T_FLOAT:
    case TM_MY_T_DOUBLE: {
        /*
         * A DOUBLE prints as the shortest text that reads back as the same
         * value; a FLOAT is selected as a DOUBLE (select_list) and narrowed
         * back, as the decoder widens the float it reads.
         */
        char buf[64];
        if (len == 0 || len >= sizeof(buf))
            return TM_EINVAL;
        memcpy(buf, s, len);
        buf[len] = '\0';
        char *end;
        d->u.f64 = strtod(buf, &end);
        if (c->type == TM_MY_T_FLOAT)
            d->u.f64 = (float)d->u.f64;
        return *end == '\0' ? 0 : TM_EINVAL;
    }
    case TM_MY_T_NEWDECIMAL: {
        int rc = tm_numeric_parse(batch, d, s, len);
        if (rc == 0 && !(d->flags & TM_DATUM_WIDE))
            d->scale = (int16_t)(c->meta & 0xFF);
        return rc;
    }
    case TM_MY_T_YEAR: {
        uint64_t v;
        if (parse_int(s, len, true, &v) != 0)
            return TM_EINVAL;
        d->u.i64 = (int64_t)v;
        return 0;
    }
    case TM_MY_T_DATE:
    case TM_MY_T_DATETIME2:
    case TM_MY_T_TIMESTAMP2: {
        int64_t y, tod;
        unsigned m, dd;
        if (parse_datetime(s, len, &y, &m, &dd, &tod) != 0)
            return TM_EINVAL;
        if (m == 0 || dd == 0) {
            /*
             * A zero date: NULL in a nullable DATE/DATETIME column, else the
             * epoch; a zero TIMESTAMP is stored as 0 seconds, the epoch.
             */
            *isnull = c->type != TM_MY_T_TIMESTAMP2 && col->nullable;
            d->u.i64 = 0;
            return 0;
        }
        int64_t days = tm_my_days_from_civil(y, m, dd);
        d->u.i64 = c->type == TM_MY_T_DATE ? days : days * 86400 * 1000000 + tod;
        return 0;
    }
    case TM_MY_T_TIME2:
        return parse_time(s, len, &d->u.i64);
    case TM_MY_T_STRING:
    case TM_MY_T_VARCHAR:
        if (col->type == TM_T_BYTES && c->type == TM_MY_T_STRING && len < c->meta) {
            /* BINARY(n) as the decoder gives it: zero-padded to n. */
            char *buf = tm_arena_zalloc(&batch->arena, (size_t)c->meta + 1);
            if (buf == NULL)
                return TM_ENOMEM;
            memcpy(buf, s, len);
            d->u.var.ptr = buf;
            d->u.var.len = c->meta;
            return 0;
        }
        return tm_batch_set_var(batch, d, s, len);
    case TM_MY_T_BLOB:
    case TM_MY_T_GEOMETRY: /* as stored: the SRID (4 bytes) and the WKB, as in the binlog */
    case TM_MY_T_JSON:
    case TM_MY_T_ENUM:
    case TM_MY_T_SET:
        /* Character values arrive as UTF-8 (the connection's utf8mb4). */
        return tm_batch_set_var(batch, d, s, len);
    case TM_MY_T_BIT: {
        uint64_t v;
        int nbits = (c->meta >> 8) * 8 + (c->meta & 0xFF);
        if (nbits < 1 || nbits > 64 || parse_int(s, len, true, &v) != 0)
            return TM_EINVAL;
        if (col->type == TM_T_BOOL) {
            d->u.b = v & 1;
            return 0;
        }
        /* Debezium's Bits: little-endian bytes. */
        size_t n = (size_t)(nbits + 7) / 8;
        char *buf = tm_arena_alloc(&batch->arena, n + 1);
        if (buf == NULL)
            return TM_ENOMEM;
        for (size_t i = 0; i < n; i++)
            buf[i] = (char)(v >> (8 * i) & 0xFF);
        buf[n] = '\0';
        d->u.var.ptr = buf;
        d->u.var.len = (uint32_t)n;
        return 0;
    }
    default:
        return TM_EUNSUPPORTED;
    }
}

/* ---- Queries ---- */

/* The SELECT list: each column in the form text_value() reads. */
static void select_list(tm_buf_t *b, const tm_my_tablemap_t *map, const tm_schema_t *s)
{
    for (uint32_t i = 0; i < map->ncols; i++) {
        if (i)
            tm_buf_puts(b, ", ");
        const char *name = s->cols[i].name;
        switch (map->cols[i].type) {
        case TM_MY_T_BIT:
            tm_buf_putc(b, '(');
            put_ident(b, name);
            tm_buf_puts(b, " + 0)");
            break;
        case TM_MY_T_FLOAT:
            /* A FLOAT prints with 6 digits; as DOUBLE, exactly (and reads back as the float). */
            tm_buf_puts(b, "CAST(");
            put_ident(b, name);
            tm_buf_puts(b, " AS DOUBLE)");
            break;
        default:
            put_ident(b, name);
        }
    }
}

/* True when the key orders alike in SQL and as the literals keyset() writes. */
static bool chunkable(const tm_my_tablemap_t *map, const tm_schema_t *s)
{
    if (s->nkeys == 0)
        return false;
    for (int k = 0; k < s->nkeys; k++) {
        switch (map->cols[s->key_cols[k]].type) {
        case TM_MY_T_TINY:
        case TM_MY_T_SHORT:
        case TM_MY_T_INT24:
        case TM_MY_T_LONG:
        case TM_MY_T_LONGLONG:
        case TM_MY_T_NEWDECIMAL:
        case TM_MY_T_YEAR:
        case TM_MY_T_DATE:
        case TM_MY_T_DATETIME2:
        case TM_MY_T_TIMESTAMP2:
        case TM_MY_T_TIME2:
        case TM_MY_T_STRING:
        case TM_MY_T_VARCHAR:
            break;
        default:
            return false;
        }
    }
    return true;
}

/* One key value as an SQL literal: numbers as they are, strings quoted, bytes as X'…'. */
static int put_literal(tm_buf_t *b, MYSQL *conn, const tm_my_column_t *c, const tm_column_t *col,
                       const char *v, size_t len)
{
    switch (c->type) {
    case TM_MY_T_TINY:
    case TM_MY_T_SHORT:
    case TM_MY_T_INT24:
    case TM_MY_T_LONG:
    case TM_MY_T_LONGLONG:
    case TM_MY_T_NEWDECIMAL:
    case TM_MY_T_YEAR:
        if (len == 0 || strspn(v, "-.0123456789") < len)
            return TM_EINVAL;
        return tm_buf_append(b, v, len);
    default:
        break;
    }
    if (col->type == TM_T_BYTES) {
        tm_buf_puts(b, "X'");
        for (size_t i = 0; i < len; i++)
            tm_buf_appendf(b, "%02x", (unsigned char)v[i]);
        return tm_buf_putc(b, '\'');
    }
    char *esc = malloc(len * 2 + 1);
    if (esc == NULL)
        return TM_ENOMEM;
    unsigned long n = mysql_real_escape_string(conn, esc, v, (unsigned long)len);
    tm_buf_putc(b, '\'');
    tm_buf_append(b, esc, n);
    free(esc);
    return tm_buf_putc(b, '\'');
}

/* WHERE (k1 > v1) OR (k1 = v1 AND k2 > v2) OR …, for the last row of a chunk. */
static int keyset(tm_buf_t *b, MYSQL *conn, const tm_my_tablemap_t *map, const tm_schema_t *s,
                  char **last, const unsigned long *lastlen)
{
    tm_buf_puts(b, " WHERE ");
    for (int k = 0; k < s->nkeys; k++) {
        tm_buf_puts(b, k ? " OR (" : "(");
        for (int j = 0; j <= k; j++) {
            int ci = s->key_cols[j];
            if (j)
                tm_buf_puts(b, " AND ");
            put_ident(b, s->cols[ci].name);
            tm_buf_puts(b, j < k ? " = " : " > ");
            int rc = put_literal(b, conn, &map->cols[ci], &s->cols[ci], last[j], lastlen[j]);
            if (rc != 0)
                return rc;
        }
        tm_buf_putc(b, ')');
    }
    return 0;
}

/* ---- Reading a table ---- */

/* Snapshot progress as text (common/snapprog.h). */
static tm_snapprog_t prog_of(const tm_source_t *src, const snaptable_t *t, int64_t start_us)
{
    return (tm_snapprog_t){TM_MY_COMP, src->name, t->db, t->table, t->estimate, start_us};
}

static void progress(const tm_source_t *src, const snaptable_t *t, uint64_t rows, bool done,
                     const snapstate_t *st, int64_t t0)
{
    tm_snapprog_t p = prog_of(src, t, t0);
    tm_snapprog_log(&p, rows, st->total, done);
}

/* Emits one result row as an op 'r' record (emitting the full batch before it, invariant 1). */
static int emit_row(tm_source_t *src, tm_source_ctx_t *ctx, const snaptable_t *t,
                    const tm_my_tablemap_t *map, tm_schema_t *schema, MYSQL_ROW row,
                    const unsigned long *lens, snapstate_t *st, char *errstr, size_t errstr_size)
{
    if (src->cur != NULL && tm_batch_full(src->cur)) {
        tm_batch_t *b = src->cur;
        src->cur = NULL;
        tm_source_count(ctx, b->count, 0);
        int rc = emit_blocking(ctx, b);
        if (rc != 0)
            return rc;
    }
    if (src->cur == NULL && (src->cur = tm_batch_new()) == NULL)
        return TM_ENOMEM;
    tm_batch_t *b = src->cur;
    tm_row_t *after = tm_batch_new_row(b, schema);
    if (after == NULL)
        return TM_ENOMEM;
    for (uint32_t i = 0; i < map->ncols; i++) {
        if (row[i] == NULL)
            continue;
        bool isnull = false;
        int rc = text_value(b, &map->cols[i], &schema->cols[i], row[i], lens[i], &after->vals[i],
                            &isnull);
        if (rc == TM_ENOMEM)
            return rc;
        if (rc != 0)
            return tm_seterr(errstr, errstr_size, TM_EPROTO,
                             "snapshot of %s.%s, column %s (%s): cannot read the value '%.*s'",
                             t->db, t->table, schema->cols[i].name,
                             schema->cols[i].db_type ? schema->cols[i].db_type : "?",
                             (int)(lens[i] > 64 ? 64 : lens[i]), row[i]);
        tm_row_set_null(after, (int)i, isnull);
    }
    tm_record_t *rec = tm_batch_add(b, schema, TM_OP_READ);
    if (rec == NULL)
        return TM_ENOMEM;
    rec->after = after;
    rec->proc_us = st->now_us;
    rec->src = st->info;
    rec->src.snapshot = st->total == 0   ? TM_SNAPSHOT_FIRST
                        : st->table == 0 ? TM_SNAPSHOT_FIRST_IN_DATA_COLLECTION
                                         : TM_SNAPSHOT_TRUE;
    st->table++;
    st->total++;
    return 0;
}

/*
 * Book-keeping after a chunk of n rows: metrics, a progress line every 5 s
 * (a live line on a terminal), the failpoint that slows chunks in tests.
 */
static int chunk_done(tm_source_t *src, tm_source_ctx_t *ctx, const snaptable_t *t,
                      const snapstate_t *st, uint64_t rows, bool done, int64_t t0,
                      int64_t *last_log)
{
    char name[160];
    snprintf(name, sizeof(name), "%s.%s", t->db, t->table);
    tm_source_snapshot_progress(ctx, name, rows, t->estimate, done);
    if (done)
        return 0;
    tm_failpoint("mysql.snapshot.chunk");
    int64_t now = tm_mono_us();
    if (tm_log_is_terminal()) {
        if (now - *last_log >= 200000) {
            tm_snapprog_t p = prog_of(src, t, t0);
            tm_snapprog_line(&p, rows);
            *last_log = now;
        }
    } else if (now - *last_log >= 5000000) {
        progress(src, t, rows, false, st, t0);
        *last_log = now;
    }
    return tm_source_should_stop(ctx) ? TM_ESTOPPED : 0;
}

static int snapshot_table(tm_source_t *src, tm_source_ctx_t *ctx, MYSQL *conn,
                          const snaptable_t *t, snapstate_t *st, char *errstr, size_t errstr_size)
{
    tm_my_tablemap_t *map = NULL;
    tm_schema_t *schema = NULL;
    int rc = table_map(src, conn, t, &map, errstr, errstr_size);
    if (rc != 0)
        return rc;
    if ((rc = tm_my_schema_from_tablemap(map, src->name, &src->mapping, &schema, errstr,
                                         errstr_size)) != 0) {
        tm_my_tablemap_free(map);
        return rc;
    }
    bool chunks = chunkable(map, schema);
    int nk = schema->nkeys;
    tm_buf_t base, sql;
    tm_buf_init(&base);
    tm_buf_init(&sql);
    char **last = NULL;
    unsigned long *lastlen = NULL;
    uint64_t rows = 0;
    int64_t t0 = tm_mono_us(), last_log = t0;
    TM_INFO(TM_MY_COMP, "snapshot of table started",
            "source=%s table=%s.%s estimate=%.0f chunk=%" PRId64 " key_columns=%d chunked=%s",
            src->name, t->db, t->table, t->estimate, src->chunk_size, nk, chunks ? "yes" : "no");
    tm_buf_puts(&base, "SELECT ");
    select_list(&base, map, schema);
    /* The key columns again, as they are, for the next chunk's WHERE. */
    for (int k = 0; chunks && k < nk; k++) {
        tm_buf_puts(&base, ", ");
        put_ident(&base, schema->cols[schema->key_cols[k]].name);
    }
    tm_buf_puts(&base, " FROM ");
    put_ident(&base, t->db);
    tm_buf_putc(&base, '.');
    put_ident(&base, t->table);
    if (chunks) {
        last = calloc((size_t)nk, sizeof(*last));
        lastlen = calloc((size_t)nk, sizeof(*lastlen));
        if (last == NULL || lastlen == NULL) {
            rc = TM_ENOMEM;
            goto out;
        }
    }
    for (bool first = true;; first = false) {
        tm_buf_clear(&sql);
        tm_buf_append(&sql, base.data, base.len);
        if (chunks) {
            if (!first && (rc = keyset(&sql, conn, map, schema, last, lastlen)) != 0)
                goto out;
            tm_buf_puts(&sql, " ORDER BY ");
            for (int k = 0; k < nk; k++) {
                if (k)
                    tm_buf_puts(&sql, ", ");
                put_ident(&sql, schema->cols[schema->key_cols[k]].name);
            }
            tm_buf_appendf(&sql, " LIMIT %" PRId64, src->chunk_size);
        }
        if (tm_buf_putc(&sql, '\0') != 0) {
            rc = TM_ENOMEM;
            goto out;
        }
        if (mysql_real_query(conn, sql.data, (unsigned long)(sql.len - 1)) != 0) {
            rc = snap_err(conn, "reading the table", errstr, errstr_size);
            goto out;
        }
        /* A chunk is bounded: store it; a table without one streams row by row. */
        MYSQL_RES *res = chunks ? mysql_store_result(conn) : mysql_use_result(conn);
        if (res == NULL) {
            rc = snap_err(conn, "reading the table", errstr, errstr_size);
            goto out;
        }
        MYSQL_ROW row;
        uint64_t n = 0;
        while (rc == 0 && (row = mysql_fetch_row(res)) != NULL) {
            unsigned long *lens = mysql_fetch_lengths(res);
            rc = emit_row(src, ctx, t, map, schema, row, lens, st, errstr, errstr_size);
            n++;
            if (rc == 0 && chunks && n == (uint64_t)src->chunk_size) {
                for (int k = 0; k < nk; k++) {
                    free(last[k]);
                    unsigned long l = lens[map->ncols + (unsigned)k];
                    last[k] = malloc(l + 1);
                    if (last[k] == NULL) {
                        rc = TM_ENOMEM;
                        break;
                    }
                    memcpy(last[k], row[map->ncols + (unsigned)k] ? row[map->ncols + (unsigned)k]
                                                                  : "",
                           l);
                    last[k][l] = '\0';
                    lastlen[k] = l;
                }
            }
            if (rc == 0 && !chunks && n % (uint64_t)src->chunk_size == 0)
                rc = chunk_done(src, ctx, t, st, rows + n, false, t0, &last_log);
        }
        if (rc == 0 && mysql_errno(conn) != 0)
            rc = snap_err(conn, "reading the table", errstr, errstr_size);
        mysql_free_result(res);
        rows += n;
        if (rc != 0)
            goto out;
        bool done = !chunks || n < (uint64_t)src->chunk_size;
        if ((rc = chunk_done(src, ctx, t, st, rows, done, t0, &last_log)) != 0 || done)
            break;
    }
    if (rc == 0) {
        if (st->table > 0)
            mark_last(src, TM_SNAPSHOT_LAST_IN_DATA_COLLECTION);
        tm_log_progress(NULL);
        progress(src, t, rows, true, st, t0);
    }
out:
    tm_log_progress(NULL);
    if (last != NULL)
        for (int k = 0; k < nk; k++)
            free(last[k]);
    free(last);
    free(lastlen);
    tm_buf_release(&base);
    tm_buf_release(&sql);
    tm_schema_unref(schema);
    tm_my_tablemap_free(map);
    return rc;
}

/* ---- The consistent point ---- */

/* Reads SHOW STATUS LIKE 'binlog_snapshot_%' (MariaDB) into pos. */
static int mariadb_snapshot_pos(MYSQL *conn, tm_my_pos_t *pos, char *errstr, size_t errstr_size)
{
    if (mysql_query(conn, "SHOW STATUS LIKE 'binlog_snapshot_%'") != 0)
        return snap_err(conn, "SHOW STATUS LIKE 'binlog_snapshot_%'", errstr, errstr_size);
    MYSQL_RES *res = mysql_store_result(conn);
    if (res == NULL)
        return snap_err(conn, "SHOW STATUS LIKE 'binlog_snapshot_%'", errstr, errstr_size);
    MYSQL_ROW row;
    bool file = false, off = false;
    while ((row = mysql_fetch_row(res)) != NULL) {
        if (row[0] == NULL || row[1] == NULL)
            continue;
        if (strcasecmp(row[0], "Binlog_snapshot_file") == 0) {
            snprintf(pos->file, sizeof(pos->file), "%.191s", row[1]);
            file = row[1][0] != '\0';
        } else if (strcasecmp(row[0], "Binlog_snapshot_position") == 0) {
            pos->offset = strtoull(row[1], NULL, 10);
            off = true;
        }
    }
    mysql_free_result(res);
    if (!file || !off)
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "snapshot: the server did not say the binlog position of the "
                         "snapshot (Binlog_snapshot_file/position); is log_bin on?");
    return 0;
}

/*
 * Opens the snapshot transaction on conn and fills *pos with the binlog
 * position (and GTID set) that matches it exactly.
 */
static int consistent_point(tm_source_t *src, MYSQL *conn, tm_my_pos_t *pos, char *errstr,
                            size_t errstr_size)
{
    int rc;
    memset(pos, 0, sizeof(*pos));
    /*
     * UTC: TIMESTAMP values print as the UTC the binlog stores.  A long
     * net_write_timeout: a table read row by row waits on the sinks'
     * back-pressure, and the server must not give up on us meanwhile.
     */
    if ((rc = tm_my_exec(conn, "SET SESSION time_zone = '+00:00'", errstr, errstr_size)) != 0 ||
        (rc = tm_my_exec(conn, "SET SESSION net_write_timeout = 86400", errstr, errstr_size)) !=
            0 ||
        (rc = tm_my_exec(conn, "SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ", errstr,
                         errstr_size)) != 0)
        return rc;
    if (!src->is_mariadb) {
        /* MySQL has no snapshot position of its own: a short global read lock pairs them. */
        char cur[2][256];
        if ((rc = tm_my_exec(conn, "FLUSH TABLES WITH READ LOCK", errstr, errstr_size)) != 0 ||
            (rc = tm_my_exec(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT", errstr,
                             errstr_size)) != 0)
            return rc;
        rc = tm_my_query_row(conn, "SHOW MASTER STATUS", cur, 2, errstr, errstr_size);
        int urc = tm_my_exec(conn, "UNLOCK TABLES", errstr, errstr_size);
        if (rc != 0)
            return rc == TM_ENOTFOUND ? TM_ESOURCE : rc;
        if (urc != 0)
            return urc;
        snprintf(pos->file, sizeof(pos->file), "%.191s", cur[0]);
        pos->offset = strtoull(cur[1], NULL, 10);
        return 0;
    }
    for (int attempt = 0;; attempt++) {
        char g1[1][256] = {{0}}, g2[1][256] = {{0}};
        if ((rc = tm_my_query_row(conn, "SELECT @@gtid_binlog_pos", g1, 1, errstr,
                                  errstr_size)) != 0 ||
            (rc = tm_my_exec(conn, "START TRANSACTION WITH CONSISTENT SNAPSHOT", errstr,
                             errstr_size)) != 0 ||
            (rc = mariadb_snapshot_pos(conn, pos, errstr, errstr_size)) != 0 ||
            (rc = tm_my_query_row(conn, "SELECT @@gtid_binlog_pos", g2, 1, errstr,
                                  errstr_size)) != 0)
            return rc == TM_ENOTFOUND ? TM_ESOURCE : rc;
        /*
         * The same GTID state before and after: no transaction committed in
         * between, so it is the state at the snapshot.  After 20 tries of a
         * busy server the GTID is left out (resuming then uses file and
         * offset only).
         */
        if (strcmp(g1[0], g2[0]) == 0) {
            snprintf(pos->gtid, sizeof(pos->gtid), "%.191s", g2[0]);
            return 0;
        }
        if (attempt >= 20)
            return 0;
        if ((rc = tm_my_exec(conn, "ROLLBACK", errstr, errstr_size)) != 0)
            return rc;
    }
}

/* ---- Which tables ---- */

static void tables_free(snaptable_t *v, int n)
{
    for (int i = 0; i < n; i++) {
        free(v[i].db);
        free(v[i].table);
    }
    free(v);
}

/* The captured tables as they exist now (in the snapshot's transaction), sorted by name. */
static int list_tables(tm_source_t *src, MYSQL *conn, snaptable_t **out, int *nout, char *errstr,
                       size_t errstr_size)
{
    tm_buf_t sql;
    tm_buf_init(&sql);
    tm_buf_puts(&sql, "SELECT TABLE_SCHEMA, TABLE_NAME, IFNULL(TABLE_ROWS, -1) FROM "
                      "information_schema.TABLES WHERE TABLE_TYPE = 'BASE TABLE' AND (");
    for (int i = 0; i < src->nspecs; i++) {
        char e[130];
        const tm_my_tablespec_t *s = &src->specs[i];
        mysql_real_escape_string(conn, e, s->db, (unsigned long)strlen(s->db));
        tm_buf_appendf(&sql, "%s(TABLE_SCHEMA = '%s'", i ? " OR " : "", e);
        if (s->table != NULL) {
            mysql_real_escape_string(conn, e, s->table, (unsigned long)strlen(s->table));
            tm_buf_appendf(&sql, " AND TABLE_NAME = '%s'", e);
        }
        tm_buf_putc(&sql, ')');
    }
    tm_buf_puts(&sql, ") ORDER BY TABLE_SCHEMA, TABLE_NAME");
    if (tm_buf_putc(&sql, '\0') != 0) {
        tm_buf_release(&sql);
        return TM_ENOMEM;
    }
    int rc = 0;
    if (mysql_query(conn, sql.data) != 0) {
        tm_buf_release(&sql);
        return snap_err(conn, "listing the tables", errstr, errstr_size);
    }
    tm_buf_release(&sql);
    MYSQL_RES *res = mysql_store_result(conn);
    if (res == NULL)
        return snap_err(conn, "listing the tables", errstr, errstr_size);
    uint64_t n = mysql_num_rows(res);
    snaptable_t *v = calloc(n ? (size_t)n : 1, sizeof(*v));
    int k = 0;
    MYSQL_ROW row;
    while (v != NULL && (row = mysql_fetch_row(res)) != NULL) {
        if (row[0] == NULL || row[1] == NULL)
            continue;
        v[k].db = strdup(row[0]);
        v[k].table = strdup(row[1]);
        v[k].estimate = row[2] ? strtod(row[2], NULL) : -1.0;
        if (v[k].db == NULL || v[k].table == NULL) {
            k++;
            rc = TM_ENOMEM;
            break;
        }
        k++;
    }
    mysql_free_result(res);
    if (v == NULL)
        return TM_ENOMEM;
    if (rc != 0) {
        tables_free(v, k);
        return rc;
    }
    *out = v;
    *nout = k;
    return 0;
}

/* ---- Running it ---- */

int tm_my_snapshot_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    MYSQL *conn = NULL;
    snaptable_t *tables = NULL;
    int ntables = 0;
    tm_my_pos_t pos;
    int rc = tm_my_connect(src, &conn, errstr, errstr_size);
    if (rc != 0)
        return rc == TM_ECONN ? TM_ESOURCE : rc;
    snapstate_t st = {.start_us = tm_mono_us(), .now_us = tm_wall_us()};
    if ((rc = consistent_point(src, conn, &pos, errstr, errstr_size)) != 0 ||
        (rc = list_tables(src, conn, &tables, &ntables, errstr, errstr_size)) != 0)
        goto out;
    st.token = tm_my_pos_token(&pos);
    if ((rc = tm_my_snapshot_source(src, &pos, st.now_us, TM_SNAPSHOT_TRUE, &st.info)) != 0) {
        tm_seterr(errstr, errstr_size, rc, "out of memory");
        goto out;
    }
    char ps[512];
    tm_my_pos_format(&pos, ps, sizeof(ps));
    TM_INFO(TM_MY_COMP, "snapshot started",
            "source=%s tables=%d position=\"%s\" chunk=%" PRId64, src->name, ntables, ps,
            src->chunk_size);
    for (int i = 0; i < ntables && rc == 0; i++) {
        st.table = 0;
        rc = snapshot_table(src, ctx, conn, &tables[i], &st, errstr, errstr_size);
    }
    if (rc != 0)
        goto out;
    /* Every row is read: the transaction (and its undo history) can go. */
    if ((rc = tm_my_exec(conn, "COMMIT", errstr, errstr_size)) != 0)
        goto out;
    double secs = (double)(tm_mono_us() - st.start_us) / 1e6;
    TM_INFO(TM_MY_COMP, "snapshot read",
            "source=%s tables=%d rows=%" PRIu64 " seconds=%.1f rate=%.0f position=\"%s\"",
            src->name, ntables, st.total, secs, secs > 0 ? (double)st.total / secs : 0.0, ps);
    src->start = pos;
    /* snapshot_token stays 0 when no batch carries it: there is nothing to wait for. */
    src->snapshot_token = 0;
    if (src->cur != NULL && src->cur->count > 0) {
        src->snapshot_token = st.token;
        if (st.token > src->sealed_token)
            src->sealed_token = st.token;
        /* Invariant 2: the last batch, and only it, carries the snapshot's position. */
        mark_last(src, TM_SNAPSHOT_LAST);
        tm_batch_t *b = src->cur;
        src->cur = NULL;
        b->ack_token = st.token;
        tm_source_count(ctx, b->count, 0);
        rc = emit_blocking(ctx, b);
    }
out:
    tables_free(tables, ntables);
    mysql_close(conn);
    return rc;
}

int tm_my_snapshot_finish(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr,
                          size_t errstr_size)
{
    /*
     * The end of a bounded input is the end of event time: windows fire now,
     * before the barriers below, so their output is part of the checkpoint
     * that acknowledges the snapshot (as the PostgreSQL source's).
     */
    bool wm_sent = false;
    char pos[512];
    tm_my_pos_format(&src->start, pos, sizeof(pos));
    while (tm_source_acked(ctx) < src->snapshot_token) {
        if (tm_source_should_stop(ctx))
            return 0;
        if (!wm_sent) {
            int wrc = tm_source_emit_watermark(ctx, INT64_MAX, 100);
            if (wrc == TM_ESTOPPED)
                return 0;
            if (wrc != 0 && wrc != TM_EAGAIN)
                return tm_seterr(errstr, errstr_size, wrc,
                                 "mysql source %s: cannot emit the end-of-input watermark (%s)",
                                 src->name, tm_strerror(wrc));
            wm_sent = wrc == 0;
            continue;
        }
        /* With checkpoints the acknowledgement is a checkpoint, whose barrier only we inject. */
        uint64_t id = tm_source_barrier_due(ctx);
        if (id != 0) {
            int brc = tm_source_emit_barrier(ctx, id, src->snapshot_token, pos, 100);
            if (brc == TM_ESTOPPED)
                return 0;
            if (brc != 0 && brc != TM_EAGAIN)
                return tm_seterr(errstr, errstr_size, brc,
                                 "mysql source %s: cannot inject a checkpoint barrier (%s)",
                                 src->name, tm_strerror(brc));
        }
        usleep(50000);
    }
    char line[600];
    int n = snprintf(line, sizeof(line), "%s\n", pos);
    if (tm_write_file_atomic(src->state_dir, "snapshot.done", line, (size_t)n) != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot write %s/snapshot.done: %s",
                         src->state_dir, strerror(errno));
    TM_INFO(TM_MY_COMP, "snapshot complete; initial_only source finished",
            "source=%s position=\"%s\"", src->name, pos);
    return 0;
}
