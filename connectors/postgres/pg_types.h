/*
 * pg_types.h — PostgreSQL types: oid → column metadata, and text → datum.
 *
 * pgoutput and the snapshot's SELECTs both deliver values in PostgreSQL's
 * text output format.  This module knows every built-in PostgreSQL 15 type:
 * it maps a (type oid, typmod) pair to a tm_column_t (type, precision, scale,
 * length, Debezium semantic name) plus a small parse descriptor, and parses
 * the text form of a value into a tm_datum_t in a batch's arena.
 *
 * Types that are not built in (enums, domains, arrays of those, extension
 * types) live in a tm_pg_typecache_t that postgres.c fills from pg_type and
 * pg_enum on the normal connection.  A type that is neither built in nor
 * cached still works: it becomes TM_T_OTHER and keeps its text form.
 *
 * Determinism: the text formats depend on session settings.  The connections
 * are opened with DateStyle=ISO, TimeZone=UTC, IntervalStyle=iso_8601,
 * bytea_output=hex, lc_monetary=C and extra_float_digits=3 (see
 * TM_PG_SESSION_OPTIONS); the parsers also accept the other common styles
 * where that is cheap (postgres-style intervals, escape-format bytea).
 *
 * Value conventions (the tm_type_t comments in core/schema.h apply):
 *   - date ±infinity      → INT32_MAX / INT32_MIN days (TM_PG_DATE_*_INF)
 *   - timestamp ±infinity → INT64_MAX / INT64_MIN µs   (TM_PG_TS_*_INF)
 *   - timetz              → µs since midnight in UTC, wrapped into [0, 24h)
 *   - interval            → µs, months counting 30.4375 days (Debezium
 *                           MicroDuration), computed in integers
 *   - money               → NUMERIC with scale 2
 *   - arrays              → JSON array text; elements converted the way the
 *                           Debezium encoder converts scalars in adaptive time
 *                           mode (numbers, strings, booleans, µs, days)
 *
 * Thread: the builtin table is immutable; a type cache belongs to one thread.
 */
#ifndef TM_PG_PG_TYPES_H
#define TM_PG_PG_TYPES_H

#include "core/row.h"
#include "core/schema.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Appended to the connection's `options` so that text output is parseable. */
#define TM_PG_SESSION_OPTIONS                                                                      \
    "-c datestyle=ISO -c timezone=UTC -c intervalstyle=iso_8601 -c bytea_output=hex "              \
    "-c lc_monetary=C -c extra_float_digits=3"

#define TM_PG_DATE_POS_INF INT32_MAX
#define TM_PG_DATE_NEG_INF INT32_MIN
#define TM_PG_TS_POS_INF INT64_MAX
#define TM_PG_TS_NEG_INF INT64_MIN

/* How a value's text is parsed. */
typedef enum tm_pg_kind {
    TM_PG_K_OTHER = 0, /* text kept as is */
    TM_PG_K_BOOL,
    TM_PG_K_INT,
    TM_PG_K_FLOAT,
    TM_PG_K_NUMERIC,
    TM_PG_K_MONEY,
    TM_PG_K_TEXT,
    TM_PG_K_BYTEA,
    TM_PG_K_DATE,
    TM_PG_K_TIME,
    TM_PG_K_TIMETZ,
    TM_PG_K_TIMESTAMP,
    TM_PG_K_TIMESTAMPTZ,
    TM_PG_K_INTERVAL,
    TM_PG_K_UUID,
    TM_PG_K_JSON,
    TM_PG_K_ENUM,
    TM_PG_K_ARRAY,
} tm_pg_kind_t;

/* Everything needed to parse one column's values; derived once per relation. */
typedef struct tm_pg_coltype {
    uint8_t kind;      /* tm_pg_kind_t */
    uint8_t elem_kind; /* arrays: the element's kind */
    char delim;        /* arrays: element delimiter (',' except box) */
    uint8_t bin;       /* tm_pg_bin_t (pg_binary.h): how a binary value decodes, 0 = cannot */
    uint8_t elem_bin;  /* arrays: the element's tm_pg_bin_t */
} tm_pg_coltype_t;

/* A non-builtin type learnt from the catalog. */
typedef struct tm_pg_typeinfo {
    uint32_t oid;
    char *name;          /* typname */
    char *nspname;       /* namespace, may be NULL */
    char typtype;        /* pg_type.typtype: 'b' base, 'e' enum, 'd' domain, 'c', 'r', ... */
    uint32_t elem_oid;   /* arrays (typcategory 'A'): element type */
    uint32_t base_oid;   /* domains: base type */
    int32_t base_typmod; /* domains: typtypmod */
    char delim;
    char *enum_labels; /* enums: comma-separated, in sort order */
} tm_pg_typeinfo_t;

typedef struct tm_pg_typecache tm_pg_typecache_t;

tm_pg_typecache_t *tm_pg_typecache_new(void);
tm_pg_typecache_t *tm_pg_typecache_free(tm_pg_typecache_t *tc);
/* Copies *info (deep) into the cache, replacing an entry with the same oid. */
int tm_pg_typecache_put(tm_pg_typecache_t *tc, const tm_pg_typeinfo_t *info);
/*
 * Records a Type message's names for an oid not yet learnt from the catalog
 * (kept if the catalog lookup fails); never overrides a catalog entry.
 */
int tm_pg_typecache_note_name(tm_pg_typecache_t *tc, uint32_t oid, const char *nspname,
                              const char *name);
const tm_pg_typeinfo_t *tm_pg_typecache_get(const tm_pg_typecache_t *tc, uint32_t oid);

/* True if oid is a PostgreSQL 15 built-in type (or array of one) that needs no lookup. */
bool tm_pg_type_is_builtin(uint32_t oid);
/*
 * Returns the first oid reachable from `oid` (itself, an array's element, a
 * domain's base) that is neither built in nor in a complete cache entry, or 0
 * when everything needed to describe `oid` is known.
 */
uint32_t tm_pg_type_missing(const tm_pg_typecache_t *tc, uint32_t oid);

/*
 * Fills the type fields of *col (type, elem_type, precision, scale, length,
 * db_type, type_oid, typmod, semantic, enum_values) and *ct for a column of
 * type oid/typmod.  `tc` may be NULL.  Unknown types become TM_T_OTHER.
 * Returns 0 or TM_ENOMEM.
 */
int tm_pg_column_describe(const tm_pg_typecache_t *tc, uint32_t oid, int32_t typmod,
                          tm_column_t *col, tm_pg_coltype_t *ct);

/*
 * Parses the text form `s` (len bytes, not necessarily NUL-terminated) of a
 * value of the given coltype into *d, allocating in batch's arena.  Returns 0,
 * TM_EPROTO when the text is not a valid value of that type (errstr names the
 * problem, the caller adds the column), or TM_ENOMEM.
 */
int tm_pg_value_parse(tm_batch_t *batch, const tm_pg_coltype_t *ct, const char *s, size_t len,
                      tm_datum_t *d, char *errstr, size_t errstr_size);

/*
 * Appends one array element's datum (of the element kind `kind`) as the JSON
 * the text path's array parser writes for it; the binary array decoder
 * (pg_binary.c) shares it so that both paths write the same text.  Returns 0
 * or TM_ENOMEM.
 */
struct tm_buf;
int tm_pg_elem_json(struct tm_buf *out, uint8_t kind, const tm_datum_t *d);

/*
 * A column default as Debezium's PostgreSQL connector reads it (its
 * PostgresDefaultValueConverter, 3.x): `expr` is the catalog's text of the
 * DEFAULT expression (pg_get_expr(adbin, adrelid)).  Only built-in types of
 * Debezium's list have a default (integers and serials, numeric, float4/8,
 * bool, text types, json/jsonb, xml, uuid, date, time, timestamp/timestamptz,
 * interval, bit/varbit) and enums (only `'label'::type`); the value is the
 * expression's first quoted literal, or the whole text when it has no quote;
 * an expression that starts with a function call (`nextval(…)`, `now()`) or
 * is CURRENT_TIMESTAMP and its kin stands for the type's placeholder (0, "",
 * false, the epoch...), and `NULL::…` means no default.  Anything that does
 * not parse as a value of the column's type means no default, as in Debezium
 * (which logs a warning).
 *
 * On success with a default, fills *d (var bytes in batch's arena) and sets
 * *has; otherwise *has is false.  Returns 0 or TM_ENOMEM.
 */
int tm_pg_default_parse(tm_batch_t *batch, const tm_column_t *col, const tm_pg_coltype_t *ct,
                        const char *expr, tm_datum_t *d, bool *has);

/* Lower-level parsers, exposed for tests.  All return 0 or TM_EPROTO. */
int tm_pg_parse_date(const char *s, size_t len, int64_t *days);
int tm_pg_parse_time(const char *s, size_t len, int64_t *us);
int tm_pg_parse_timetz(const char *s, size_t len, int64_t *utc_us);
int tm_pg_parse_timestamp(const char *s, size_t len, bool with_tz, int64_t *us);
/* An interval as microseconds (a month is 30.4375 days) and, when `months` is not NULL, the
 * calendar months among them (row.h u.iv). */
int tm_pg_parse_interval(const char *s, size_t len, int64_t *us, int32_t *months);

/* Days since 1970-01-01 of a proleptic Gregorian date (astronomical year numbering). */
int64_t tm_pg_days_from_civil(int64_t y, unsigned m, unsigned d);

#endif
