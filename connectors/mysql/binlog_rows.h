/*
 * binlog_rows.h — a pure decoder of MySQL/MariaDB binlog row events.
 *
 * Role: turns the bytes of TABLE_MAP and WRITE/UPDATE/DELETE_ROWS events (v1
 * as MariaDB writes them, v2 as MySQL 5.6+ does) into tidemark schemas and
 * rows.  It does no I/O and keeps no state between calls beyond what the
 * caller passes in, so the unit tests feed it bytes captured from a real
 * server (tests/data/mysql/) and the fuzz target feeds it anything.
 *
 * Why not Connector/C's own row decoding (mariadb_rpl_extract_rows): the
 * library is used for the transport (COM_BINLOG_DUMP, reconnect, event
 * framing), but its value extraction in 3.3 allocates per value from the
 * event's memroot, has no packed-DECIMAL-to-exact path (only a string), no
 * charset conversion, and reports a malformed row by returning NULL without
 * saying where.  Decoding here keeps every type exact (DECIMAL as a scaled
 * integer, BIGINT UNSIGNED as asked), converts latin1 to UTF-8, bounds every
 * read by the event length, and can be tested and fuzzed byte for byte.
 *
 * Invariants:
 *   1. Every read is bounded by the length passed in; malformed input gives
 *      TM_ECORRUPT with a message naming the event, the column and the
 *      offset, never a crash or a read past the end.
 *   2. A tm_my_tablemap_t owns copies of everything it holds; nothing points
 *      into the event buffer, so it outlives the event.
 *   3. tm_my_rows_t points into the caller's event buffer, which must stay
 *      alive until the last tm_my_rows_next() call.
 *   4. Rows are allocated in the batch arena (row.h invariant 1) and match the
 *      schema built by tm_my_schema_from_tablemap() for the same table map
 *      and options.
 *
 * Thread: no shared state; any thread.
 */
#ifndef TM_MYSQL_BINLOG_ROWS_H
#define TM_MYSQL_BINLOG_ROWS_H

#include "core/buf.h"
#include "core/row.h"
#include "core/schema.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Event types (MySQL's Log_event_type plus MariaDB's 160+). */
enum {
    TM_MY_EV_QUERY = 2,
    TM_MY_EV_STOP = 3,
    TM_MY_EV_ROTATE = 4,
    TM_MY_EV_FORMAT_DESCRIPTION = 15,
    TM_MY_EV_XID = 16,
    TM_MY_EV_TABLE_MAP = 19,
    TM_MY_EV_WRITE_ROWS_V1 = 23,
    TM_MY_EV_UPDATE_ROWS_V1 = 24,
    TM_MY_EV_DELETE_ROWS_V1 = 25,
    TM_MY_EV_HEARTBEAT = 27,
    TM_MY_EV_WRITE_ROWS_V2 = 30,
    TM_MY_EV_UPDATE_ROWS_V2 = 31,
    TM_MY_EV_DELETE_ROWS_V2 = 32,
    TM_MY_EV_MYSQL_GTID = 33,
    TM_MY_EV_ANNOTATE_ROWS = 160,
    TM_MY_EV_BINLOG_CHECKPOINT = 161,
    TM_MY_EV_GTID = 162,
    TM_MY_EV_GTID_LIST = 163,
    TM_MY_EV_WRITE_ROWS_COMPRESSED_V1 = 169,
    TM_MY_EV_DELETE_ROWS_COMPRESSED_V1 = 171,
};

/* Column types as the binlog writes them (enum_field_types). */
enum {
    TM_MY_T_DECIMAL = 0,
    TM_MY_T_TINY = 1,
    TM_MY_T_SHORT = 2,
    TM_MY_T_LONG = 3,
    TM_MY_T_FLOAT = 4,
    TM_MY_T_DOUBLE = 5,
    TM_MY_T_NULL = 6,
    TM_MY_T_TIMESTAMP = 7,
    TM_MY_T_LONGLONG = 8,
    TM_MY_T_INT24 = 9,
    TM_MY_T_DATE = 10,
    TM_MY_T_TIME = 11,
    TM_MY_T_DATETIME = 12,
    TM_MY_T_YEAR = 13,
    TM_MY_T_NEWDATE = 14,
    TM_MY_T_VARCHAR = 15,
    TM_MY_T_BIT = 16,
    TM_MY_T_TIMESTAMP2 = 17,
    TM_MY_T_DATETIME2 = 18,
    TM_MY_T_TIME2 = 19,
    TM_MY_T_JSON = 245,
    TM_MY_T_NEWDECIMAL = 246,
    TM_MY_T_ENUM = 247,
    TM_MY_T_SET = 248,
    TM_MY_T_TINY_BLOB = 249,
    TM_MY_T_MEDIUM_BLOB = 250,
    TM_MY_T_LONG_BLOB = 251,
    TM_MY_T_BLOB = 252,
    TM_MY_T_VAR_STRING = 253,
    TM_MY_T_STRING = 254,
    TM_MY_T_GEOMETRY = 255,
};

#define TM_MY_HEADER_LEN 19
#define TM_MY_CHECKSUM_LEN 4
#define TM_MY_COLLATION_BINARY 63

/* The common header of every event. */
typedef struct tm_my_event_header {
    uint32_t timestamp; /* seconds since the epoch when the statement started */
    uint8_t type;
    uint32_t server_id;
    uint32_t size;     /* whole event, header and checksum included */
    uint32_t next_pos; /* position of the next event in the binlog file */
    uint16_t flags;
} tm_my_event_header_t;

int tm_my_event_header_parse(const uint8_t *ev, size_t len, tm_my_event_header_t *h,
                             char *errstr, size_t errstr_size);
/* CRC-32 (IEEE, as zlib's crc32) of len bytes. */
uint32_t tm_my_crc32(const uint8_t *p, size_t len);
/* TM_ECORRUPT unless the last 4 bytes of ev are the CRC-32 of the rest. */
int tm_my_event_checksum_verify(const uint8_t *ev, size_t len, char *errstr, size_t errstr_size);

/* One column of a TABLE_MAP, with what the optional metadata adds. */
typedef struct tm_my_column {
    uint8_t type;      /* binlog type; STRING resolved to ENUM/SET from its metadata */
    uint16_t meta;     /* type metadata (see binlog_rows.c: read_meta) */
    bool nullable;
    bool is_unsigned;  /* from SIGNEDNESS; false without it */
    uint32_t collation; /* character columns; 0 when the metadata does not say */
    char *name;         /* from COLUMN_NAME, or NULL */
    char **labels;      /* ENUM/SET values, or NULL */
    int nlabels;
    uint32_t geom_type;
    int key_index; /* position in the primary key, or -1 */
    bool json;     /* MariaDB JSON (a text column with a json_valid check), from the catalog */
} tm_my_column_t;

typedef struct tm_my_tablemap {
    uint64_t table_id;
    uint16_t flags;
    char *db;
    char *table;
    uint32_t ncols;
    tm_my_column_t *cols;
    bool has_names;   /* COLUMN_NAME metadata was present (binlog_row_metadata=FULL) */
    bool has_signedness;
    bool has_charsets; /* DEFAULT_CHARSET or COLUMN_CHARSET was present */
    bool has_key;      /* SIMPLE_PRIMARY_KEY or PRIMARY_KEY_WITH_PREFIX was present */
    bool has_labels;   /* ENUM_STR_VALUE or SET_STR_VALUE was present */
} tm_my_tablemap_t;

/*
 * Parses a TABLE_MAP event body (after the common header, without the
 * checksum).  *out is owned by the caller (tm_my_tablemap_free).
 */
int tm_my_tablemap_parse(const uint8_t *body, size_t len, tm_my_tablemap_t **out, char *errstr,
                         size_t errstr_size);
/* Frees a table map; accepts NULL; returns NULL. */
tm_my_tablemap_t *tm_my_tablemap_free(tm_my_tablemap_t *tm);
/* True when both describe the same columns (types, metadata, names, key). */
bool tm_my_tablemap_same_shape(const tm_my_tablemap_t *a, const tm_my_tablemap_t *b);

/*
 * True when `next`, as the binlog wrote it, describes the same table as
 * `cached` (which may have been completed from the catalog): the same
 * types, type metadata and nullability, and the same names, signedness,
 * charsets, labels and key wherever `next` carries them.
 */
bool tm_my_tablemap_same_binlog_shape(const tm_my_tablemap_t *cached,
                                      const tm_my_tablemap_t *next);
/* True for the types the SIGNEDNESS metadata covers. */
bool tm_my_type_is_numeric(uint8_t type);
/* True for the types DEFAULT_CHARSET / COLUMN_CHARSET cover. */
bool tm_my_type_is_character(uint8_t type);

/* How values map onto tidemark types (the Debezium modes that change the type). */
typedef struct tm_my_mapping {
    bool bigint_precise; /* bigint.unsigned.handling.mode = precise: NUMERIC(20,0) */
} tm_my_mapping_t;

/*
 * Builds the schema of a table map: column names from the metadata (col_N
 * without it), the Debezium MySQL type mapping, the primary key from
 * SIMPLE_PRIMARY_KEY.  db and namespace = the database, table = the table.
 * Returns TM_EUNSUPPORTED for a column type it cannot decode.
 */
int tm_my_schema_from_tablemap(const tm_my_tablemap_t *tm, const char *source_name,
                               const tm_my_mapping_t *map, tm_schema_t **out, char *errstr,
                               size_t errstr_size);

/* A parsed rows event: a cursor over its row images. */
typedef struct tm_my_rows {
    uint8_t type;
    tm_op_t op; /* CREATE, UPDATE or DELETE */
    uint64_t table_id;
    uint16_t flags;
    uint32_t ncols;
    const uint8_t *present[2]; /* columns-present bitmaps: before/only, after (update) */
    const uint8_t *p;          /* next row image */
    const uint8_t *start;      /* the body, for offsets in messages */
    const uint8_t *end;
} tm_my_rows_t;

/* True for the six uncompressed rows event types. */
bool tm_my_is_rows_event(uint8_t type);
/* Parses a rows event body (after the common header, without the checksum). */
int tm_my_rows_parse(uint8_t type, const uint8_t *body, size_t len, tm_my_rows_t *out,
                     char *errstr, size_t errstr_size);
/*
 * Decodes the next row of the event into rows of `schema` in `batch`: an
 * insert fills *after, a delete *before, an update both.  Columns not present
 * in the image are NULL.  Returns 1 when a row was decoded, 0 after the last,
 * or a negative TM_E* code.
 */
int tm_my_rows_next(tm_my_rows_t *r, const tm_my_tablemap_t *tm, const tm_schema_t *schema,
                    tm_batch_t *batch, tm_row_t **before, tm_row_t **after, char *errstr,
                    size_t errstr_size);

/*
 * Decodes the binlog's packed DECIMAL(prec, scale) from p (n bytes
 * available) into d, exactly.  TM_ECORRUPT if it does not fit or is not one.
 */
int tm_my_decimal_decode(tm_batch_t *batch, tm_datum_t *d, const uint8_t *p, size_t n, int prec,
                         int scale);
/*
 * MySQL 8's binary JSON document (n bytes) as the JSON text MySQL prints,
 * appended to out (binlog_json.c).  TM_ECORRUPT for malformed input.
 */
int tm_my_json_to_text(const uint8_t *doc, size_t n, tm_buf_t *out);

/* Days since 1970-01-01 of a proleptic Gregorian date. */
int64_t tm_my_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
