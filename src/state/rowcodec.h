/*
 * rowcodec.h — rows to bytes and back, for operator state.
 *
 * Operator state keeps row images in RocksDB, so a row must become a compact
 * byte string and come back exactly: every tm_type_t, the null bitmap and
 * the datum flags (unchanged-TOAST, wide and NaN numerics) survive the round
 * trip.  The encoding depends only on the row's values and the schema's
 * column list, never on pointers or host byte order.
 *
 * Serialised row, format version 1 (integers little-endian, varint = LEB128,
 * zigzag for signed values):
 *
 *     u8      version (1)
 *     u32     shape id of the schema (tm_row_shape_id)
 *     varint  ncols
 *     bytes   null bitmap, ceil(ncols / 8) bytes, bit i (LSB first) = column i NULL
 *     then, for each non-NULL column in order:
 *     u8      datum flags (TM_DATUM_*); UNAVAILABLE ends the column here
 *     value   BOOL                       u8 0 or 1
 *             INT16..INT64, DATE, TIME,  zigzag varint
 *             TIMETZ, TIMESTAMP(TZ),
 *             INTERVAL
 *             FLOAT32, FLOAT64           8 bytes, IEEE-754 binary64 bits
 *             NUMERIC (exact)            zigzag varint scale, u8 n (1..16),
 *                                        n bytes two's complement, sign-extended
 *             NUMERIC (WIDE/NAN), TEXT,  varint length, bytes
 *             BYTES, JSON, UUID, ARRAY,
 *             ENUM, OTHER
 *
 * The shape id is a hash of the column names and types.  Rows written under
 * one schema can only be read back under a schema of the same shape; after a
 * schema change tm_row_deserialize() says so (TM_EINVAL) instead of
 * misreading columns by position.
 *
 * Equal rows serialise to equal bytes, so comparing serialised images is how
 * operators decide that a row is unchanged.
 *
 * Thread: any; no shared state.
 */
#ifndef TM_STATE_ROWCODEC_H
#define TM_STATE_ROWCODEC_H

#include "core/buf.h"
#include "core/row.h"
#include "core/schema.h"

#include <stddef.h>
#include <stdint.h>

#define TM_ROWCODEC_VERSION 1

/* A 32-bit hash of the schema's column names, types and element types. */
uint32_t tm_row_shape_id(const tm_schema_t *schema);

/*
 * Appends the encoding of `row` (which must belong to `schema`) to `out`.
 * Returns 0, TM_ENOMEM, or TM_EINVAL for a column type the codec does not
 * know.
 */
int tm_row_serialize(const tm_schema_t *schema, const tm_row_t *row, tm_buf_t *out);

/*
 * Decodes a row serialised under a schema of the same shape into a new row
 * allocated in `batch`'s arena (every variable-length value is copied there).
 * Returns 0; TM_EINVAL if the bytes were written under a different shape
 * (a schema change); TM_ECORRUPT if they are malformed; TM_ENOMEM.
 */
int tm_row_deserialize(const tm_schema_t *schema, const void *data, size_t len,
                       tm_batch_t *batch, tm_row_t **out);

/* Reads the shape id of a serialised row; TM_ECORRUPT if it has no valid header. */
int tm_row_serialized_shape(const void *data, size_t len, uint32_t *shape);

/*
 * Appends the primary-key columns of `row`, in key order, to `out`, in an
 * injective encoding in which equal keys give equal bytes: NUMERIC values
 * are normalised (1.50 and 1.5 are the same key), as are -0.0 and NaN.
 * Returns 0, TM_ENOMEM, or TM_EINVAL if the schema has no primary key or a
 * key column is NULL or unavailable.
 */
int tm_row_key_encode(const tm_schema_t *schema, const tm_row_t *row, tm_buf_t *out);

/*
 * Appends the columns `cols[0..ncols)` of `row`, in that order, to `out` in
 * the same injective, normalised encoding as tm_row_key_encode(), each
 * preceded by a u8 that is 0 for NULL (no value follows) and 1 otherwise.
 * This is the key of a GROUP BY group, a join key and a hash exchange's
 * key: equal values (1.50 and 1.5 included) give equal bytes, and the key
 * group is tm_keygroup_of() of the bytes.  Returns 0, TM_ENOMEM, or
 * TM_EINVAL for a column index out of range or an unavailable datum.
 */
int tm_row_cols_key_encode(const tm_schema_t *schema, const tm_row_t *row, const int *cols,
                           int ncols, tm_buf_t *out);

/*
 * Measures the encoding tm_row_cols_key_encode() wrote for the columns
 * `cols[0..ncols)` of `schema` at the start of `data`: sets *consumed to its
 * length, so that a state key that continues after such a key can be read.
 * Returns 0, or TM_ECORRUPT if the bytes end early or are not such a key.
 */
int tm_row_cols_key_skip(const tm_schema_t *schema, const int *cols, int ncols, const void *data,
                         size_t len, size_t *consumed);

/*
 * Deep-copies `row` (of `schema`) into `batch`'s arena.  Returns NULL when
 * memory runs out.
 */
tm_row_t *tm_row_copy(tm_batch_t *batch, const tm_schema_t *schema, const tm_row_t *row);

#endif
