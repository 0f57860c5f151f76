/*
 * jsonl.h — the line-oriented Debezium writer shared by the file and stdout
 * sinks.
 *
 * Each record becomes one line: its Debezium value envelope, or
 * {"key":…,"value":…} with include_key.  Records are routed to a topic named
 * by a template ("{source}.{schema}.{table}" by default, Debezium's
 * topic.prefix.schema.table).  The caller supplies where a topic's bytes go.
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
        {"topic", TM_OPT_STRING, false, "{source}.{schema}.{table}", NULL,                         \
         "Topic name template; {source}, {db}, {schema} and {table} are replaced."},               \
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
    bool tombstones;      /* tombstones_on_delete */
    uint32_t skipped_ops; /* skipped_operations (tm_dbz_skipped) */
    char *topic_tmpl;
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
/* Fills encoder options from a sink's options. */
void tm_jsonl_dbz_opts(const tm_options_t *opts, tm_dbz_opts_t *out);

#endif
