/*
 * jsonl.h — the line-oriented Debezium writer shared by the file and stdout
 * sinks.
 *
 * Each record becomes one line: its Debezium value envelope, or
 * {"key":…,"value":…} with include_key.  Records are routed to a topic named
 * as Debezium names them (<prefix>.<schema>.<table>, sanitized:
 * tm_dbz_topic_name), or by a `topic` template.  The caller supplies where a
 * topic's bytes go.  With provide_transaction_metadata, BEGIN/END lines
 * collect in txout for the topic tm_jsonl_tx_topic() names; heartbeats are
 * rendered by tm_jsonl_heartbeat() when due.
 *
 * What is written follows Debezium's defaults: truncates are skipped
 * (skipped_operations = 't'), and an update that changes the primary key
 * becomes a delete of the old key and a create of the new one.  A delete is
 * followed by a tombstone line only with tombstones_on_delete: "null", or
 * {"key":…,"value":null} with include_key.  Files are not compacted logs, so
 * that one default departs from Debezium's (docs/connectors/file.md).
 *
 * Thread: sink thread only.
 */
#ifndef TM_CONNECTORS_JSONL_H
#define TM_CONNECTORS_JSONL_H

#include "core/buf.h"
#include "core/options.h"
#include "core/row.h"
#include "format/debezium.h"

#include <stdbool.h>

/* Options every line-writing sink accepts, as table rows to splice in. */
#define TM_JSONL_OPTIONS                                                                           \
    {"format", TM_OPT_ENUM, false, "debezium-json", "debezium-json",                              \
     "Encoding of each line: the Debezium value envelope."},                                       \
        {"schemas", TM_OPT_BOOL, false, "true", NULL,                                              \
         "Include the Debezium schema part (Kafka Connect schemas.enable)."},                      \
        {"include_key", TM_OPT_BOOL, false, "false", NULL,                                         \
         "Write {\"key\":…,\"value\":…} instead of the value alone."},                             \
        {"decimal_handling", TM_OPT_ENUM, false, "precise", "precise|string|double",               \
         "Debezium decimal.handling.mode; defaults to the source's setting."},                     \
        {"time_precision", TM_OPT_ENUM, false, "adaptive", "adaptive|connect",                     \
         "Debezium time.precision.mode; defaults to the source's setting."},                       \
        {"topic", TM_OPT_STRING, false, NULL, NULL,                                                \
         "Topic name template; {source}, {prefix}, {db}, {schema} and {table} are replaced. "      \
         "Unset: Debezium's <prefix>.<schema>.<table>."},                                          \
        {"topic_prefix", TM_OPT_STRING, false, NULL, NULL,                                         \
         "Debezium topic.prefix: the first part of every topic name; defaults to the source's "    \
         "name in the job."},                                                                      \
        {"topic_delimiter", TM_OPT_STRING, false, ".", NULL,                                       \
         "Debezium topic.delimiter: joins the parts of topic names."},                             \
        {"provide_transaction_metadata", TM_OPT_BOOL, false, "false", NULL,                        \
         "Debezium provide.transaction.metadata: BEGIN/END events on <prefix>.transaction and a "  \
         "transaction block in every event."},                                                     \
        {"topic_transaction", TM_OPT_STRING, false, "transaction", NULL,                           \
         "Debezium topic.transaction: the last part of the transaction topic's name."},            \
        {"heartbeat_interval_ms", TM_OPT_INT, false, "0", NULL,                                    \
         "Debezium heartbeat.interval.ms: write a heartbeat this often; 0 writes none."},          \
        {"topic_heartbeat_prefix", TM_OPT_STRING, false, TM_DBZ_HEARTBEAT_PREFIX, NULL,            \
         "Debezium topic.heartbeat.prefix: heartbeats go to <this>.<prefix>."},                    \
        {"skipped_operations", TM_OPT_STRING, false, TM_DBZ_SKIPPED_DEFAULT, NULL,                 \
         "Debezium skipped.operations: operations not written, any of c, u, d, t separated by "    \
         "commas, or none."},                                                                      \
        {"tombstones_on_delete", TM_OPT_BOOL, false, "false", NULL,                                \
         "Debezium tombstones.on.delete: follow each delete with a tombstone line (null value)."},  \
        TM_JSONL_DBZ_OPTIONS

/*
 * Debezium connector options that shape the Debezium JSON of every sink that
 * writes it (file, stdout, Kafka); docs/compat.md lists them.
 */
#define TM_JSONL_DBZ_OPTIONS                                                                       \
    {"message_key_columns", TM_OPT_STRING, false, "", NULL,                                        \
     "Debezium message.key.columns: <table regex>:<column>,<column>;… custom message keys."},      \
        {"column_include_list", TM_OPT_STRING, false, "", NULL,                                    \
         "Debezium column.include.list: regexes of schema.table.column that values carry."},       \
        {"column_exclude_list", TM_OPT_STRING, false, "", NULL,                                    \
         "Debezium column.exclude.list: regexes of schema.table.column that values leave out."},   \
        {"include_unknown_datatypes", TM_OPT_BOOL, false, "false", NULL,                           \
         "Debezium include.unknown.datatypes: write columns of types Debezium has no converter "   \
         "for, as bytes of their text."},                                                          \
        {"hstore_handling_mode", TM_OPT_ENUM, false, "json", "json|map",                           \
         "Debezium hstore.handling.mode: hstore as a JSON string or as a map."},                   \
        {"interval_handling_mode", TM_OPT_ENUM, false, "numeric", "numeric|string",                \
         "Debezium interval.handling.mode: microseconds or ISO-8601 text."},                       \
        {"binary_handling_mode", TM_OPT_ENUM, false, "bytes", "bytes|base64|base64-url-safe|hex",  \
         "Debezium binary.handling.mode: bytea as bytes or as base64, base64-url-safe or hex "     \
         "text."}

typedef struct tm_jsonl {
    tm_dbz_encoder_t *enc;
    bool include_key;
    bool schemas;
    bool tombstones;      /* tombstones_on_delete */
    uint32_t skipped_ops; /* skipped_operations (tm_dbz_skipped) */
    char *topic_tmpl;     /* NULL: Debezium's topic names */
    char *prefix;         /* topic_prefix, or NULL: each record's source name */
    char *delim;          /* topic_delimiter */
    char *tx_suffix;      /* topic_transaction */
    char *hb_prefix;      /* topic_heartbeat_prefix */
    int64_t hb_interval_ms;
    int64_t hb_last_ms;
    tm_dbz_txmon_t *txmon; /* provide_transaction_metadata, else NULL */
    /*
     * Lines of transaction events (BEGIN/END) that tm_jsonl_encode() and
     * tm_jsonl_batch_end() queued for the topic tm_jsonl_tx_topic() names;
     * the sink moves them out and clears the buffer.
     */
    tm_buf_t txout;
    char *last_prefix; /* the prefix of the last record: the transaction and heartbeat topics */
} tm_jsonl_t;

int tm_jsonl_init(tm_jsonl_t *w, const tm_options_t *opts, char *errstr, size_t errstr_size);
void tm_jsonl_release(tm_jsonl_t *w);
/*
 * Renders the topic of a record into out (replacing its content; whole, and
 * NUL-terminated): a topic may be as long as the names it is made of.
 */
int tm_jsonl_topic(const tm_jsonl_t *w, const tm_record_t *rec, tm_buf_t *out);
/*
 * Appends what one record becomes, as lines (each with '\n'), to out: none for
 * a skipped operation, three for a key change with tombstones.  On error out
 * is unchanged.
 */
int tm_jsonl_encode(tm_jsonl_t *w, const tm_record_t *rec, tm_buf_t *out);
/*
 * After the records of a batch: the END of a transaction that the batch's
 * ack_token shows complete (see tm_dbz_txmon_t) goes to txout.
 */
int tm_jsonl_batch_end(tm_jsonl_t *w, const tm_batch_t *batch);
/* <prefix><delimiter><topic_transaction>, Debezium's transaction topic (not sanitized, as there). */
int tm_jsonl_tx_topic(const tm_jsonl_t *w, tm_buf_t *out);
/*
 * When a heartbeat is due at now_ms (heartbeat_interval_ms passed since the
 * last one, and a prefix is known: topic_prefix or a record's source),
 * renders its topic and line and returns 1; 0 when none is due.
 */
int tm_jsonl_heartbeat(tm_jsonl_t *w, int64_t now_ms, tm_buf_t *topic, tm_buf_t *line);
/* Fills encoder options from a sink's options. */
void tm_jsonl_dbz_opts(const tm_options_t *opts, tm_dbz_opts_t *out);

#endif
