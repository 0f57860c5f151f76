/*
 * datum.h — equality, ordering and hashing of single values of every tm
 * type (DESIGN §13), the one place that switches over tm_type_t for them.
 *
 * Used by the exchange, expressions, aggregation, joins, the Kafka encoder
 * and the row codec instead of private type switches.
 *
 * Semantics (PostgreSQL's, where SQL defines them):
 *   - NULL is handled by the caller; these functions see two non-NULL
 *     datums of the same column type.
 *   - NUMERIC compares by value: 1.50 = 1.5; NaN equals NaN and sorts above
 *     every number (PostgreSQL's rule); a wide value compares as its text
 *     parsed exactly.
 *   - FLOAT: -0.0 = 0.0; NaN = NaN and sorts above every number.
 *   - TEXT, ENUM, UUID, JSON, OTHER, ARRAY compare bytewise (the C
 *     collation); BYTES bytewise.
 *   - tm_datum_hash: equal values hash equal (so 1.50 and 1.5 too).
 *   - A datum flagged TM_DATUM_UNAVAILABLE is equal only to another such.
 *
 * Thread: any; pure functions.
 */
#ifndef TM_CORE_DATUM_H
#define TM_CORE_DATUM_H

#include "core/row.h"
#include "core/schema.h"

#include <stdbool.h>
#include <stdint.h>

/*
 * How a tm_type_t is held in a tm_datum_t (schema.h's per-type comments):
 * the one switch over every type that code choosing a datum field uses.
 */
typedef enum tm_storage {
    TM_STORAGE_BOOL,    /* u.b */
    TM_STORAGE_I64,     /* u.i64: integers, dates, times, timestamps, intervals */
    TM_STORAGE_F64,     /* u.f64 */
    TM_STORAGE_NUMERIC, /* u.dec + scale, or u.var text when TM_DATUM_WIDE/NAN */
    TM_STORAGE_VAR,     /* u.var: text, bytes, json, uuid, arrays, enums, others */
    TM_STORAGE_UNKNOWN, /* not a tm_type_t */
} tm_storage_t;

tm_storage_t tm_type_storage(tm_type_t type);

bool tm_datum_equal(tm_type_t type, const tm_datum_t *a, const tm_datum_t *b);
/* <0, 0, >0. */
int tm_datum_compare(tm_type_t type, const tm_datum_t *a, const tm_datum_t *b);
uint64_t tm_datum_hash(tm_type_t type, const tm_datum_t *d, uint64_t seed);

/* Column i of two rows of `schema`, NULLs included (NULL = NULL here, NULLs sort last). */
bool tm_row_col_equal(const tm_schema_t *schema, const tm_row_t *a, const tm_row_t *b, int i);
bool tm_row_equal(const tm_schema_t *schema, const tm_row_t *a, const tm_row_t *b);

#endif
