/*
 * debezium.h — the Debezium JSON envelope: encoder and decoder (DESIGN §3).
 *
 * The Debezium envelope is tidemark's compatibility contract: its output must
 * be accepted by Flink's debezium-json format, Debezium's JDBC sink, Materialize
 * and RisingWave FORMAT DEBEZIUM, and Kafka Connect's JSON converter.  JSON
 * exists only at the edges; inside, changes are tm_record_t.
 *
 * Encoder: a schema-driven writer that appends to a tm_buf_t (the hot path).
 * The schema part of each table is rendered once and cached per tm_schema_t.
 * tm_dbz_encode_value_json() is the Jansson reference encoder that the tests
 * compare the fast one against.
 *
 * Decoder: reads one event, with or without the schema part, into a record in
 * a batch.  Types come from, in order: the declared schema, the event's schema
 * part, or the JSON values themselves.
 *
 * Thread: an encoder or decoder belongs to one thread.
 */
#ifndef TM_FORMAT_DEBEZIUM_H
#define TM_FORMAT_DEBEZIUM_H

#include "core/buf.h"
#include "core/row.h"

#include <jansson.h>
#include <stdbool.h>

typedef enum {
    TM_DECIMAL_PRECISE = 0, /* org.apache.kafka.connect.data.Decimal, base64 unscaled */
    TM_DECIMAL_STRING,
    TM_DECIMAL_DOUBLE,
} tm_decimal_mode_t;

typedef enum {
    TM_TIME_ADAPTIVE = 0, /* io.debezium.time.* (Date, MicroTime, MicroTimestamp, ...) */
    TM_TIME_CONNECT,      /* org.apache.kafka.connect.data.{Date,Time,Timestamp}, ms */
} tm_time_mode_t;

/* Debezium binary.handling.mode: how bytea (and unknown types) travel. */
typedef enum {
    TM_BINARY_BYTES = 0,  /* Kafka Connect bytes (base64 in JSON) */
    TM_BINARY_BASE64,     /* a string, base64 */
    TM_BINARY_BASE64_URL, /* a string, base64 with the URL alphabet */
    TM_BINARY_HEX,        /* a string, lower-case hex */
} tm_binary_mode_t;

/* Debezium interval.handling.mode. */
typedef enum {
    TM_INTERVAL_NUMERIC = 0, /* int64 io.debezium.time.MicroDuration */
    TM_INTERVAL_STRING,      /* string io.debezium.time.Interval, "P1Y2M3DT4H5M6.5S" */
} tm_interval_mode_t;

/* Debezium hstore.handling.mode. */
typedef enum {
    TM_HSTORE_JSON = 0, /* string io.debezium.data.Json, {"k":"v"} */
    TM_HSTORE_MAP,      /* map<string, optional string> */
} tm_hstore_mode_t;

typedef struct tm_dbz_opts {
    bool schemas;             /* include the "schema" part (schemas.enable) */
    tm_decimal_mode_t decimal_mode;
    tm_time_mode_t time_mode;
    const char *connector;    /* "postgresql", "mysql" */
    const char *version;      /* source.version */
    /* Debezium connector options (docs/compat.md); zero is Debezium's default. */
    tm_binary_mode_t binary_mode;
    tm_interval_mode_t interval_mode;
    tm_hstore_mode_t hstore_mode;
    bool include_unknown;       /* include.unknown.datatypes */
    /* Read by tm_dbz_encoder_open() only, which compiles them; NULL or "" for none. */
    const char *key_columns;    /* message.key.columns */
    const char *column_include; /* column.include.list */
    const char *column_exclude; /* column.exclude.list */
} tm_dbz_opts_t;

typedef struct tm_dbz_encoder tm_dbz_encoder_t;

tm_dbz_encoder_t *tm_dbz_encoder_new(const tm_dbz_opts_t *opts);
/*
 * The same, with the options a user wrote checked: 0 and *out set, or
 * TM_ECONFIG/TM_ENOMEM with a message naming the option (a bad regular
 * expression, both column lists set).  tm_dbz_encoder_new() returns NULL for
 * those.
 */
int tm_dbz_encoder_open(const tm_dbz_opts_t *opts, tm_dbz_encoder_t **out, char *errstr,
                        size_t errstr_size);
tm_dbz_encoder_t *tm_dbz_encoder_free(tm_dbz_encoder_t *enc);

/*
 * Appends the value envelope of rec (no trailing newline).  0 or TM_E*; on
 * failure `out` is restored to its length at entry.  The text is always
 * NUL-terminated (out->data[out->len] == '\0').  The encoder keeps a
 * reference on every schema it has cached (at most 1024, then it starts over).
 */
int tm_dbz_encode_value(tm_dbz_encoder_t *enc, const tm_record_t *rec, tm_buf_t *out);
/*
 * Appends the key: {"schema":…,"payload":{pk…}} (or just the payload).  The
 * key columns are the primary key; the values come from `after`, or `before`
 * for deletes.  A message's key is Debezium's MessageKey {"prefix":…}.  A
 * truncate has no key, nor has a table without a primary key (Debezium's
 * null key, whatever the replica identity): TM_ENOTFOUND, nothing appended.
 */
int tm_dbz_encode_key(tm_dbz_encoder_t *enc, const tm_record_t *rec, tm_buf_t *out);
/* Reference encoder (Jansson).  Returns a new reference or NULL (no key: NULL). */
json_t *tm_dbz_encode_value_json(tm_dbz_encoder_t *enc, const tm_record_t *rec);
json_t *tm_dbz_encode_key_json(tm_dbz_encoder_t *enc, const tm_record_t *rec);

/*
 * Debezium's `skipped.operations`: a set of ops a sink does not write, as a
 * bit mask over the op letters.  tm_dbz_skipped_parse() reads the option's
 * text: a comma-separated list of c, u, d and t, or "none" (Debezium's
 * default is "t", so truncates are skipped).  0 or TM_ECONFIG with a message
 * naming the option and the value.  A skipped op is decided on the record as
 * the source produced it: an update that changes its key is skipped as an
 * update, whole, as Debezium's EventDispatcher does.
 */
#define TM_DBZ_SKIPPED_DEFAULT "t"
int tm_dbz_skipped_parse(const char *spec, uint32_t *mask, char *errstr, size_t errstr_size);
static inline bool tm_dbz_skipped(uint32_t mask, int op)
{
    switch (op) {
    case 'c':
        return (mask & 1u) != 0;
    case 'u':
        return (mask & 2u) != 0;
    case 'd':
        return (mask & 4u) != 0;
    case 't':
        return (mask & 8u) != 0;
    default:
        return false;
    }
}

/*
 * True when rec is an update whose before image carries a different primary
 * key than its after image.  Debezium writes such an update as a delete of the
 * old key (then its tombstone) and a create of the new key; every sink that
 * writes Debezium events splits it with tm_dbz_split_key_change(), which fills
 * *del and *cre as shallow copies of rec (they share its rows).
 */
bool tm_dbz_key_changed(const tm_record_t *rec);
/* The same with the encoder's message key (message.key.columns when it names the table). */
bool tm_dbz_encoder_key_changed(tm_dbz_encoder_t *enc, const tm_record_t *rec);
void tm_dbz_split_key_change(const tm_record_t *rec, tm_record_t *del, tm_record_t *cre);

/*
 * Debezium's transaction metadata (provide.transaction.metadata) and topic
 * names, shared by every sink that writes Debezium events (debezium_tx.c).
 *
 * The transaction block of one data event: {"id":"<txId>:<LSN>",
 * "total_order":n,"data_collection_order":m}, where, as Debezium's
 * PostgreSQL connector writes it, the LSN is the event's own.  The encoder
 * writes the block set with tm_dbz_encoder_set_txblock() into the next
 * values it encodes (NULL, the default, writes "transaction":null).  The
 * encoder does not copy it: it must stay valid while it is set.
 */
typedef struct tm_dbz_txblock {
    char id[48];
    int64_t total_order;
    int64_t data_collection_order;
} tm_dbz_txblock_t;
void tm_dbz_encoder_set_txblock(tm_dbz_encoder_t *enc, const tm_dbz_txblock_t *blk);

/*
 * The transaction monitor: one per sink, fed every record in the order the
 * source produced it.  It decides where a transaction begins and ends and
 * queues BEGIN and END events for the sink to write to <prefix>.transaction.
 *
 * Where a transaction ends, the record stream says it in three ways, used in
 * this order (docs/compat.md): the next record belongs to another
 * transaction (its commit_lsn is the end LSN of this one); a record outside
 * any transaction (a non-transactional message, whose tx_lsn is that end
 * LSN); or a batch whose ack_token lies past the transaction's last record
 * (the token is then the end LSN of the last transaction committed in or
 * before the batch, normally this one).  The BEGIN's LSN is the record's
 * tx_lsn (the BEGIN message's WAL position), or without one the first
 * record's LSN.
 *
 * Usage per record: tm_dbz_txmon_record(); write the queued events
 * (tm_dbz_txmon_take) ; then, for each event written for the record
 * (a key change is two, a tombstone none), tm_dbz_txmon_event() fills the
 * block to set on the encoder.  Per batch, after its records:
 * tm_dbz_txmon_batch_end() and tm_dbz_txmon_take() again.
 *
 * The END's data_collections come in the order Debezium's HashMap<String,
 * Long> iterates them (String.hashCode buckets, then insertion order), so
 * that the arrays match; a logical message is a collection of its own each
 * time, named as Debezium names it ("...LogicalDecodingMessageId@<hex>"; the
 * hex is Java's identity hash there, a hash of the message's LSN here).
 */
typedef struct tm_dbz_txmon tm_dbz_txmon_t;
tm_dbz_txmon_t *tm_dbz_txmon_new(void);
tm_dbz_txmon_t *tm_dbz_txmon_free(tm_dbz_txmon_t *m);
int tm_dbz_txmon_record(tm_dbz_txmon_t *m, const tm_record_t *rec);
int tm_dbz_txmon_event(tm_dbz_txmon_t *m, const tm_record_t *rec, tm_dbz_txblock_t *blk);
void tm_dbz_txmon_batch_end(tm_dbz_txmon_t *m, uint64_t ack_token);
/* True when a transaction is open (its END not yet queued). */
bool tm_dbz_txmon_open(const tm_dbz_txmon_t *m);
/*
 * Writes the oldest queued event's key and value (each {"schema":…,
 * "payload":…} with schemas, else the payload) to key and val (appended),
 * and drops it from the queue: 1, or 0 when the queue is empty, or TM_ENOMEM.
 */
int tm_dbz_txmon_take(tm_dbz_txmon_t *m, bool schemas, tm_buf_t *key, tm_buf_t *val);

/*
 * A heartbeat as Debezium writes it on __debezium-heartbeat.<prefix>: key
 * {"serverName":<prefix>} (io.debezium.connector.common.ServerNameKey),
 * value {"ts_ms":now} (io.debezium.connector.common.Heartbeat).  Appended.
 */
#define TM_DBZ_HEARTBEAT_PREFIX "__debezium-heartbeat"
int tm_dbz_encode_heartbeat(const char *server_name, int64_t ts_ms, bool schemas, tm_buf_t *key,
                            tm_buf_t *val);

/*
 * Debezium's topic names (SchemaTopicNamingStrategy): the non-empty parts
 * joined by the delimiter, then sanitized as AbstractTopicNamingStrategy
 * does: every UTF-16 unit other than A-Z, a-z, 0-9, '.', '_' and '-'
 * becomes '_' (a character outside the BMP two of them, a byte that is not
 * UTF-8 one), the name is cut to 249 characters, and "." or ".." become "_"
 * or "__".  Replaces out's content; NUL-terminated.  0 or TM_ENOMEM.
 */
int tm_dbz_topic_name(const char *const *parts, int nparts, const char *delimiter, tm_buf_t *out);
/* Sanitizes out's content in place as above. 0 or TM_ENOMEM. */
int tm_dbz_topic_sanitize(tm_buf_t *out);

typedef struct tm_dbz_decoder tm_dbz_decoder_t;

/* `declared` may be NULL; the decoder takes a reference on it. */
tm_dbz_decoder_t *tm_dbz_decoder_new(const tm_dbz_opts_t *opts, tm_schema_t *declared);
tm_dbz_decoder_t *tm_dbz_decoder_free(tm_dbz_decoder_t *dec);

/*
 * Decodes one event (a value envelope, with or without the schema part) and
 * appends the record to batch.  A tombstone (len == 0, "null", or
 * {"schema":…,"payload":null}) yields TM_ENOTFOUND and appends nothing.
 * Malformed input yields TM_ECORRUPT with a message naming the field; a full
 * batch yields TM_EAGAIN.  On any error nothing is appended.  Never crashes on
 * any input.
 *
 * The record's schema belongs to the batch (and to the decoder's cache, which
 * hands out one schema object per stream and shape, at most 256 at a time);
 * its source_name/db/namespace/table come from the event's source block.
 */
int tm_dbz_decode(tm_dbz_decoder_t *dec, const char *json, size_t len, tm_batch_t *batch,
                  tm_record_t **out, char *errstr, size_t errstr_size);

#endif
