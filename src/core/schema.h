/*
 * schema.h — the shape of a changelog stream: columns, types, primary key.
 *
 * A schema is created once (by a source when it learns a table's shape, or by
 * the SQL layer from declared columns) and is immutable after it has been
 * published in a batch.  Rows point to their schema and never copy it.  A
 * schema change mid-stream produces a *new* schema object with a higher
 * `version`; the old one stays alive as long as a batch references it.
 *
 * Ownership: reference counted.  tm_schema_ref()/tm_schema_unref() are
 * thread-safe (atomic); everything else is read-only after publication.
 *
 * Type model (DESIGN §2): fixed-width values for int/float/bool/date/time/
 * timestamp/interval, an exact numeric (128-bit scaled integer, or a decimal
 * string once too wide), and length+pointer values for text, bytes, json, uuid
 * and the text form of anything else.
 */
#ifndef TM_CORE_SCHEMA_H
#define TM_CORE_SCHEMA_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * Logical column types.  The comment says how a tm_datum_t holds the value.
 */
typedef enum tm_type {
    TM_T_BOOL = 1,    /* u.b */
    TM_T_INT16,       /* u.i64 */
    TM_T_INT32,       /* u.i64 */
    TM_T_INT64,       /* u.i64 */
    TM_T_FLOAT32,     /* u.f64 */
    TM_T_FLOAT64,     /* u.f64 */
    TM_T_NUMERIC,     /* u.dec + scale, or u.var decimal string (TM_DATUM_WIDE) */
    TM_T_TEXT,        /* u.var, UTF-8 */
    TM_T_BYTES,       /* u.var, raw bytes */
    TM_T_JSON,        /* u.var, JSON text */
    TM_T_UUID,        /* u.var, canonical 36-char text */
    TM_T_DATE,        /* u.i64, days since 1970-01-01 */
    TM_T_TIME,        /* u.i64, microseconds since midnight */
    TM_T_TIMETZ,      /* u.i64, microseconds since midnight, normalised to UTC */
    TM_T_TIMESTAMP,   /* u.i64, microseconds since epoch, no zone */
    TM_T_TIMESTAMPTZ, /* u.i64, microseconds since epoch, UTC */
    TM_T_INTERVAL,    /* u.iv: u.i64 microseconds (Debezium MicroDuration), and months */
    TM_T_ARRAY,       /* u.var, JSON array text; element type in elem_type */
    TM_T_ENUM,        /* u.var, the label */
    TM_T_OTHER,       /* u.var, the database's text form of an unmapped type */
} tm_type_t;

const char *tm_type_name(tm_type_t type);
/* Parses the names printed by tm_type_name(); returns 0 if unknown. */
tm_type_t tm_type_from_name(const char *name);

/* Numeric scale value meaning "variable scale" (unconstrained NUMERIC). */
#define TM_SCALE_VARIABLE (-1)

typedef struct tm_column {
    char *name;
    tm_type_t type;
    tm_type_t elem_type; /* TM_T_ARRAY only */
    int32_t precision;   /* NUMERIC precision, or fractional-second digits; -1 unknown */
    int32_t scale;       /* NUMERIC scale, TM_SCALE_VARIABLE if unconstrained */
    int32_t length;      /* declared length of char/varchar/bit; -1 if none */
    bool nullable;
    int16_t key_index; /* position within the primary key, -1 if not a key column */
    /*
     * Where the column came from: the database's type name (e.g. "int4",
     * "numeric", "my_enum") and, for PostgreSQL, the type oid and typmod.  The
     * encoders use these for Debezium's `__debezium.source.column.type`-style
     * details and for types that fall back to TM_T_OTHER.
     */
    char *db_type;
    uint32_t type_oid;
    int32_t typmod;
    /*
     * Debezium semantic name for types that map onto strings or bytes with a
     * logical name (io.debezium.data.Xml, io.debezium.data.Enum, ...), or NULL.
     */
    char *semantic;
    char *enum_values; /* comma-separated labels for TM_T_ENUM, or NULL */
    /*
     * The column's default as a value of the column's type, when the source
     * can tell it (a constant DEFAULT clause, read the way Debezium reads it),
     * or NULL.  Owned by the schema: one allocation holding the datum and its
     * variable-length bytes (tm_column_set_default).  Debezium writes it as
     * the field's "default" and in place of a NULL in a NOT NULL column.
     */
    struct tm_datum *default_value;
} tm_column_t;

typedef struct tm_schema {
    atomic_int refcount;
    uint32_t version; /* bumped on every schema change of the same table */
    /*
     * Identity of the stream.  `source_name` is the job-level table name of the
     * source (Debezium's topic.prefix / source.name); db/namespace/table are
     * the database's names.  Any may be NULL for derived streams.
     */
    char *source_name;
    char *db;
    char *namespace;
    char *table;
    uint32_t relid; /* source-specific relation id (PostgreSQL oid), 0 if none */

    int ncols;
    tm_column_t *cols;
    int nkeys;
    int *key_cols; /* indices into cols, in key order */
    /*
     * REPLICA IDENTITY FULL (or a MySQL FULL row image): before images carry
     * every column.  Otherwise they carry only key columns.
     */
    bool full_identity;
} tm_schema_t;

/* Allocates an empty schema with refcount 1 and `ncols` zeroed columns. */
tm_schema_t *tm_schema_new(int ncols);
tm_schema_t *tm_schema_ref(tm_schema_t *schema);
/* Drops one reference; frees at zero.  Accepts NULL.  Returns NULL. */
tm_schema_t *tm_schema_unref(tm_schema_t *schema);
/*
 * Fills key_cols/nkeys from the columns' key_index values.  Call after the
 * columns are set.  Returns 0 or TM_EINVAL if key indices are inconsistent.
 */
int tm_schema_finish(tm_schema_t *schema);
/*
 * Sets col->default_value to a copy of *d (NULL clears it), freeing the
 * previous one.  0 or TM_ENOMEM.
 */
int tm_column_set_default(tm_column_t *col, const struct tm_datum *d);
/* True when both columns have no default, or equal ones. */
bool tm_column_default_equal(const tm_column_t *a, const tm_column_t *b);

/* Returns the column index with that name, or -1. */
int tm_schema_find(const tm_schema_t *schema, const char *name);
/* Sets a string field, freeing the previous value. */
void tm_schema_set_str(char **field, const char *value);
/* Deep copy with refcount 1 and version unchanged. */
tm_schema_t *tm_schema_clone(const tm_schema_t *schema);
/* True when both describe the same columns, types and key. */
bool tm_schema_equal_shape(const tm_schema_t *a, const tm_schema_t *b);

#endif
