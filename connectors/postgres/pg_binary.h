/*
 * pg_binary.h — PostgreSQL binary send format → datum, for pgoutput's
 * `binary 'true'` (PostgreSQL 14+).
 *
 * With the binary option the walsender calls each column type's send
 * function instead of its output function, which is cheaper for the server
 * (no float or timestamp formatting, no numeric to text).  This module
 * decodes the send format of every type pg_types.c maps, into exactly the
 * datum the text path (tm_pg_value_parse) makes of the same value: the two
 * paths must give byte-identical records, so a job may switch between them
 * at any restart.  Where the text path's datum depends on how PostgreSQL
 * prints a value (float4 read back as a double, numeric's digits and scale,
 * "char" escapes, bit strings), the decoder rebuilds that text first.
 *
 * Types without a decoder (geometric, network, ranges, composites, unknown
 * extension types and arrays of them) have format TM_PG_BIN_NONE: a job
 * that captures such a column must stream in text (pg_stream.c decides).
 *
 * Invariants:
 *   1. No read outside [p, p + len); a value that is not a well-formed send
 *      format of its type yields TM_EPROTO with a sentence, never a crash.
 *   2. Output is bounded by the input: an array's element count is checked
 *      against the bytes present before anything is allocated.
 *
 * Thread: pure functions; any thread.
 */
#ifndef TM_PG_PG_BINARY_H
#define TM_PG_PG_BINARY_H

#include "core/row.h"
#include "postgres/pg_types.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* How a binary value is laid out (tm_pg_coltype_t.bin / .elem_bin). */
typedef enum tm_pg_bin {
    TM_PG_BIN_NONE = 0, /* no decoder: the column must come as text */
    TM_PG_BIN_BOOL,
    TM_PG_BIN_INT2,
    TM_PG_BIN_INT4,
    TM_PG_BIN_INT8,
    TM_PG_BIN_OID, /* unsigned int4 */
    TM_PG_BIN_FLOAT4,
    TM_PG_BIN_FLOAT8,
    TM_PG_BIN_NUMERIC,
    TM_PG_BIN_MONEY,
    TM_PG_BIN_TEXT, /* text, varchar, bpchar, name, json, refcursor, enums: the bytes */
    TM_PG_BIN_XML,  /* the bytes, but with a declaration added unless the encoding is UTF8 */
    TM_PG_BIN_CHAR, /* "char": one raw byte */
    TM_PG_BIN_BIT,  /* bit, varbit: int32 bit count, then the bits */
    TM_PG_BIN_BYTEA,
    TM_PG_BIN_DATE,
    TM_PG_BIN_TIME,
    TM_PG_BIN_TIMETZ,
    TM_PG_BIN_TIMESTAMP, /* timestamp and timestamptz */
    TM_PG_BIN_INTERVAL,
    TM_PG_BIN_UUID,
    TM_PG_BIN_JSONB, /* version byte 1, then the text */
    TM_PG_BIN_ARRAY,
} tm_pg_bin_t;

/*
 * The binary format of a resolved scalar type: `oid` is the built-in type a
 * column resolves to (domains followed), `kind` its tm_pg_kind_t.  Enums
 * (kind TM_PG_K_ENUM) send their label.  TM_PG_BIN_NONE when there is no
 * decoder.
 */
uint8_t tm_pg_binary_format(uint32_t oid, uint8_t kind);

/*
 * The index of the first of ncols columns whose values binary cannot decode
 * (no decoder for the type or the array's element type), or -1 when all can.
 * `xml_ok`: xml_send adds an encoding declaration to every value unless the
 * connection's client_encoding is UTF8 or SQL_ASCII, which the text form
 * lacks, so xml counts as decodable only then.
 */
int tm_pg_binary_unsupported(const tm_pg_coltype_t *ct, int ncols, bool xml_ok);

/*
 * Decodes the binary form p[0..len) of a value of coltype ct into *d, with
 * variable-length data in batch's arena, exactly as tm_pg_value_parse would
 * from the value's text.  Returns 0, TM_EPROTO (errstr says what is wrong;
 * the caller adds the column), or TM_ENOMEM.
 */
int tm_pg_binary_parse(tm_batch_t *batch, const tm_pg_coltype_t *ct, const uint8_t *p,
                       size_t len, tm_datum_t *d, char *errstr, size_t errstr_size);

/* Exposed for tests: the double the text path reads from float4's shortest text. */
double tm_pg_float4_as_text(float f);

#endif
