/*
 * debezium_int.h — private helpers shared by the Debezium encoder and decoder.
 *
 * Role: the one place that says how a tidemark column maps onto a Kafka
 * Connect schema and a JSON value ("the wire form"), plus the leaf formatters
 * and parsers that both directions need: shortest round-trip doubles, ISO-8601
 * zoned times, and the two's-complement big-endian bytes of Kafka Connect's
 * Decimal.  The encoder (debezium_enc.c) writes with these; the decoder
 * (debezium_dec.c) reads the same forms back, which is what keeps
 * decode(encode(x)) == x true.
 *
 * Invariants:
 *   1. tm__dbz_col_desc() is a pure function of (column, options).  The fast
 *      encoder, the Jansson reference encoder and the decoder (when an event
 *      has no schema part) all call it, so they agree on every wire form.
 *   2. Formatters never allocate; they write into caller buffers whose minimum
 *      sizes are the TM__DBZ_*_MAX constants below.
 *   3. Functions that produce variable-length output (decimal bytes and text)
 *      append to a tm_buf_t and return 0 or TM_ENOMEM.
 *
 * Thread: everything here is reentrant; there is no shared state.
 */
#ifndef TM_FORMAT_DEBEZIUM_INT_H
#define TM_FORMAT_DEBEZIUM_INT_H

#include "core/buf.h"
#include "core/row.h"
#include "core/schema.h"
#include "format/debezium.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Debezium's default `unavailable.value.placeholder` for unchanged TOASTed values. */
#define TM_DBZ_UNAVAILABLE "__debezium_unavailable_value"
#define TM_DBZ_UNAVAILABLE_LEN (sizeof(TM_DBZ_UNAVAILABLE) - 1)
/* The same placeholder as Debezium writes it for uuid columns (UUID.nameUUIDFromBytes). */
#define TM_DBZ_UNAVAILABLE_UUID "b68a35a7-17ad-35b3-af2a-ae46edb4545a"

/* Logical names used on both sides. */
#define TM_DBZ_DECIMAL "org.apache.kafka.connect.data.Decimal"
#define TM_DBZ_VSD "io.debezium.data.VariableScaleDecimal"
#define TM_DBZ_VSD_DOC "Variable scaled decimal"
#define TM_DBZ_ENUM "io.debezium.data.Enum"
#define TM_DBZ_JSON "io.debezium.data.Json"
/*
 * MySQL spatial values.  A column with one of these semantic names holds
 * MySQL's own value bytes: the SRID (4 bytes, little-endian) and then the
 * WKB, which the encoder writes as Debezium's struct.
 */
#define TM_DBZ_GEOMETRY "io.debezium.data.geometry.Geometry"
#define TM_DBZ_POINT "io.debezium.data.geometry.Point"
#define TM_DBZ_UUID "io.debezium.data.Uuid"
#define TM_DBZ_BITS "io.debezium.data.Bits"

/*
 * How a value travels in JSON, beyond what the column type says.  The
 * encoder picks one per column from the options; the decoder learns it from
 * the event's schema part, or, without one, computes it as the encoder would.
 */
typedef enum tm_dbz_wire {
    TM_DBZ_W_PLAIN = 0,  /* the type's natural form (see tm__dbz_col_desc) */
    TM_DBZ_W_DEC_BYTES,  /* Decimal: base64 of the unscaled value at a fixed scale */
    TM_DBZ_W_DEC_VSD,    /* VariableScaleDecimal: {"scale":s,"value":base64} */
    TM_DBZ_W_DEC_STRING, /* decimal text, "12.34" */
    TM_DBZ_W_DEC_DOUBLE, /* JSON number */
    TM_DBZ_W_MS,         /* TIME/TIMESTAMP as integer milliseconds */
    TM_DBZ_W_US,         /* TIME/TIMESTAMP as integer microseconds */
    TM_DBZ_W_NS,         /* TIME/TIMESTAMP as integer nanoseconds (decoder only) */
    TM_DBZ_W_BITS,       /* bit(n>1)/varbit text as io.debezium.data.Bits bytes */
    TM_DBZ_W_BIT1,       /* bit(1)/varbit(1) text "0"/"1" as a boolean */
    TM_DBZ_W_GEOMETRY,   /* MySQL geometry (SRID + WKB bytes) as Geometry {wkb, srid} */
    TM_DBZ_W_POINT,      /* MySQL point (SRID + WKB bytes) as Point {x, y, wkb, srid} */
    TM_DBZ_W_UNKNOWN,    /* an unknown type's text as bytes (include.unknown.datatypes) */
    TM_DBZ_W_IV_STRING,  /* interval as io.debezium.time.Interval text */
    TM_DBZ_W_HSTORE_JSON, /* hstore text as a JSON object in a string */
    TM_DBZ_W_HSTORE_MAP, /* hstore text as a map (a JSON object) */
} tm_dbz_wire_t;

/*
 * The Kafka Connect schema of one column and its wire form.  Parameters are
 * derived from `name`: Decimal gets scale (+ precision when known), Enum gets
 * "allowed".  For arrays, `elem_type` names the element type whose own
 * descriptor is computed on demand with tm__dbz_elem_desc().
 */
typedef struct tm_dbz_coldesc {
    const char *type;    /* "int32", "string", "bytes", "struct", "array", ... */
    const char *name;    /* logical name, or NULL */
    int version;         /* schema version, 0 when Kafka Connect prints none */
    const char *doc;     /* NULL except for VariableScaleDecimal */
    int32_t scale;       /* Decimal: the column scale */
    int32_t precision;   /* Decimal: connect.decimal.precision, -1 to omit */
    const char *allowed; /* Enum: comma-separated labels, or NULL */
    tm_type_t elem_type; /* arrays only */
    int32_t bits;        /* Bits: the "length" parameter (declared bits) */
    uint8_t wire;        /* tm_dbz_wire_t */
    uint8_t bin;         /* tm_binary_mode_t of a bytes value (bytea, unknown types) */
    bool omit;           /* left out of the value (an unknown type, by default) */
} tm_dbz_coldesc_t;

/* Column → Kafka Connect schema and wire form (invariant 1). */
void tm__dbz_col_desc(const tm_column_t *col, const tm_dbz_opts_t *opts, tm_dbz_coldesc_t *desc);
/* Descriptor of an array's element type (elements are always optional). */
void tm__dbz_elem_desc(tm_type_t elem_type, const tm_dbz_opts_t *opts, tm_dbz_coldesc_t *desc);

/*
 * PostgreSQL bit strings, as Debezium's PostgresValueConverter writes them.
 * tm__dbz_bits_length() is the declared length of a bit/varbit column (bit
 * without a length is bit(1); varbit without one is 2147483647, what the
 * JDBC driver reports), or -1 for any other column.  Length 1 travels as a
 * boolean, longer ones as Bits: the bit string read as a binary number whose
 * last character is bit 0, in java.util.BitSet.toByteArray() order (little
 * endian, no trailing zero bytes; B'1010' is the one byte 0x0a, "Cg==").
 */
int32_t tm__dbz_bits_length(const tm_column_t *col);
/* "1010" → 0x0a appended to out.  Characters other than '1' count as 0.  0 or TM_ENOMEM. */
int tm__dbz_bits_to_bytes(const char *s, size_t n, tm_buf_t *out);
/*
 * The inverse: at least `length` digits (zero-padded on the left; fewer when
 * length < 0 or length exceeds 65536, then as many as the highest set bit
 * needs, at least one).  0 or TM_ENOMEM.
 */
int tm__dbz_bytes_to_bits(const uint8_t *b, size_t n, int32_t length, tm_buf_t *out);

/*
 * PostgreSQL's ±infinity, as Debezium's PostgresValueConverter writes them.
 * Inside tidemark a date infinity is INT32_MAX/INT32_MIN days and a
 * timestamp infinity INT64_MAX/INT64_MIN µs (pg_types.h).  On the wire:
 *   date         the epoch days of LocalDate -5877611-06-21 (+infinity) and
 *                -5877611-06-22 (-infinity), Debezium's POSITIVE/NEGATIVE_
 *                INFINITY_LOCAL_DATE (both are negative: that is Debezium's);
 *   timestamp    pgjdbc's DATE_POSITIVE/NEGATIVE_INFINITY read as µs
 *                (9223372036825200000, -9223372036832400000), in ms for the
 *                millisecond forms;
 *   timestamptz  the strings "infinity" and "-infinity".
 */
#define TM__DBZ_DATE_INF_IN INT32_MAX
#define TM__DBZ_DATE_NINF_IN INT32_MIN
#define TM__DBZ_TS_INF_IN INT64_MAX
#define TM__DBZ_TS_NINF_IN INT64_MIN
#define TM__DBZ_DATE_INF_WIRE INT64_C(-2147472692)
#define TM__DBZ_DATE_NINF_WIRE INT64_C(-2147472691)
#define TM__DBZ_TS_INF_WIRE_US INT64_C(9223372036825200000)
#define TM__DBZ_TS_NINF_WIRE_US INT64_C(-9223372036832400000)

/*
 * Debezium's snapshot reads a date through JDBC, where pgjdbc turns ±infinity
 * into its DATE_POSITIVE/NEGATIVE_INFINITY milliseconds, which Debezium then
 * counts as epoch days with an overflow: other numbers than the streaming
 * path's (tests/compat measured them).  Neither is a date PostgreSQL can hold.
 */
#define TM__DBZ_DATE_INF_SNAP INT64_C(-622191234)
#define TM__DBZ_DATE_NINF_SNAP INT64_C(-625821272)

/*
 * Days since 1970 as Debezium writes them (infinities mapped; `snap` for a
 * snapshot read), and back (either form).
 */
static inline int64_t tm__dbz_date_out(int64_t days, bool snap)
{
    if (days == TM__DBZ_DATE_INF_IN)
        return snap ? TM__DBZ_DATE_INF_SNAP : TM__DBZ_DATE_INF_WIRE;
    if (days == TM__DBZ_DATE_NINF_IN)
        return snap ? TM__DBZ_DATE_NINF_SNAP : TM__DBZ_DATE_NINF_WIRE;
    return days;
}
static inline int64_t tm__dbz_date_in(int64_t days)
{
    return days == TM__DBZ_DATE_INF_WIRE || days == TM__DBZ_DATE_INF_SNAP ? TM__DBZ_DATE_INF_IN
           : days == TM__DBZ_DATE_NINF_WIRE || days == TM__DBZ_DATE_NINF_SNAP
               ? TM__DBZ_DATE_NINF_IN
               : days;
}
/* A zone-less timestamp in µs as Debezium writes it (infinities mapped), and back. */
static inline int64_t tm__dbz_ts_out(int64_t us)
{
    return us == TM__DBZ_TS_INF_IN    ? TM__DBZ_TS_INF_WIRE_US
           : us == TM__DBZ_TS_NINF_IN ? TM__DBZ_TS_NINF_WIRE_US
                                      : us;
}
static inline int64_t tm__dbz_ts_in(int64_t us)
{
    return us == TM__DBZ_TS_INF_WIRE_US    ? TM__DBZ_TS_INF_IN
           : us == TM__DBZ_TS_NINF_WIRE_US ? TM__DBZ_TS_NINF_IN
                                           : us;
}

/* Sizes of the caller buffers for the formatters below, NUL included. */
#define TM__DBZ_DOUBLE_MAX 32
#define TM__DBZ_ZONED_MAX 48

/*
 * Writes the shortest decimal text that reads back as exactly `v` (as a
 * double, or for _f32 as a float), always with a '.' or exponent so that JSON
 * readers see a real.  NaN and infinities are not numbers in JSON: for those
 * the functions return 0 and tm__dbz_special_double() names the string form.
 */
size_t tm__dbz_fmt_f64(double v, char *buf);
size_t tm__dbz_fmt_f32(double v, char *buf);
/* "NaN", "Infinity", "-Infinity" (Kafka Connect's JSON spelling), or NULL if finite. */
const char *tm__dbz_special_double(double v);

/* µs since epoch → "2024-01-02T03:04:05.123456Z" in java.time ISO_OFFSET_DATE_TIME style. */
size_t tm__dbz_fmt_zoned_ts(int64_t us, char *buf);
/* The same with exactly `width` (0..6) fraction digits, as Debezium writes a timestamptz(width). */
size_t tm__dbz_fmt_zoned_ts_width(int64_t us, int width, char *buf);
/* µs since midnight UTC → "03:04:05.5Z" (ISO_OFFSET_TIME style). */
size_t tm__dbz_fmt_zoned_time(int64_t us, char *buf);
/* The inverses; they accept any UTC offset and return 0 or -1. */
int tm__dbz_parse_zoned_ts(const char *s, size_t len, int64_t *us);
int tm__dbz_parse_zoned_time(const char *s, size_t len, int64_t *us);

/* Floor division, as java.time uses for negative instants. */
static inline int64_t tm__dbz_floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && ((a < 0) != (b < 0))) ? q - 1 : q;
}

/*
 * NUMERIC datum → unscaled two's-complement big-endian bytes, minimal length
 * (java.math.BigInteger.toByteArray), appended to `out`.  `target_scale` is
 * the column scale, or TM_SCALE_VARIABLE to keep the value's own scale;
 * *scale_out receives the scale used.  Values with more fractional digits
 * than the target are rounded half-up, as PostgreSQL rounds on input.
 * Returns TM_ENOTFOUND for NaN/Infinity (no Decimal form), TM_EINVAL for a
 * malformed wide text, TM_ENOMEM.
 */
int tm__dbz_numeric_bytes(const tm_datum_t *d, int32_t target_scale, tm_buf_t *out,
                          int32_t *scale_out);
/*
 * NUMERIC datum → plain decimal text at target_scale (or its own scale when
 * TM_SCALE_VARIABLE) appended to `out`: the string-mode form.  NaN and
 * infinities are written as their text.  0 or TM_ENOMEM / TM_EINVAL.
 */
int tm__dbz_numeric_text(const tm_datum_t *d, int32_t target_scale, tm_buf_t *out);
/*
 * Two's-complement big-endian bytes + scale → plain decimal text appended to
 * `out` ("-12.34").  Any length; 0 or TM_ENOMEM.
 */
int tm__dbz_bytes_to_text(const uint8_t *b, size_t n, int32_t scale, tm_buf_t *out);

/*
 * Appends "<source_name>.<namespace>.<table>" — the stem of Debezium's record
 * schema names (…Value, …Key, …Envelope) — skipping NULL parts.  Without a
 * namespace (MySQL) the db takes its place, as in Debezium's MySQL topics.
 */
int tm__dbz_append_stem(tm_buf_t *out, const tm_schema_t *schema);

/*
 * Debezium connector options beyond the type mapping (debezium_opts.c).
 * A filter holds the compiled name lists; NULL when no list is set.
 */
typedef struct tm__dbz_filter tm__dbz_filter_t;
int tm__dbz_filter_new(const tm_dbz_opts_t *opts, tm__dbz_filter_t **out, char *errstr,
                       size_t errstr_size);
tm__dbz_filter_t *tm__dbz_filter_free(tm__dbz_filter_t *f);
/* True when column i belongs in the value (column.include/exclude.list). */
bool tm__dbz_filter_column(const tm__dbz_filter_t *f, const tm_schema_t *s, int i);
/* message.key.columns: the table's key columns in table order into cols (ncols room), or 0. */
int tm__dbz_filter_key(const tm__dbz_filter_t *f, const tm_schema_t *s, int *cols);
/* A PostgreSQL column Debezium has no converter for (include.unknown.datatypes). */
bool tm__dbz_pg_unknown(const tm_column_t *col);
bool tm__dbz_is_hstore(const tm_column_t *col);
/* Bytes as a quoted JSON string in a tm_binary_mode_t (bytes and base64 write the same text). */
int tm__dbz_append_binary(tm_buf_t *out, int mode, const void *p, size_t n);
/* An interval as Debezium's string mode writes it, quoted. */
int tm__dbz_interval_iso(int64_t us, int32_t months, tm_buf_t *out);
/* hstore text → JSON object text in Debezium's (java.util.HashMap) order; TM_EINVAL if malformed. */
int tm__dbz_hstore_json(const char *s, size_t n, tm_buf_t *out);

#endif
