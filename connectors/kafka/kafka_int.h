/*
 * kafka_int.h — what the Kafka connector's files share.
 *
 *     kafka.c         the descriptor (tm_connector_kafka)
 *     kafka_common.c  librdkafka configuration from the job's options, logs
 *     kafka_sink.c    the sink: transactional (decision log) or at-least-once
 *     kafka_source.c  the source: Debezium JSON from topics, read_committed
 *
 * Thread: see each function.
 */
#ifndef TM_CONNECTORS_KAFKA_INT_H
#define TM_CONNECTORS_KAFKA_INT_H

#include "runtime/connector.h"

#include <librdkafka/rdkafka.h>
#include <stdbool.h>
#include <stddef.h>

/* Passthrough prefix: `kafka.X = 'v'` sets librdkafka property X. */
#define TM_KAFKA_PREFIX "kafka."

/*
 * Builds a librdkafka configuration from a table's validated options:
 * bootstrap.servers from `bootstrap_servers`, then every `kafka.*` option
 * with the prefix removed (so they may override anything tidemark sets),
 * and a log callback that routes librdkafka's logs to tidemark's log
 * (component "kafka"; `comp` is reserved and unused).  The configuration's
 * opaque is left to the caller.  `table` names the table in error messages, which name
 * the property but never print a value of a secret-looking property.
 * Returns 0 or TM_ECONFIG.  Thread: main.
 */
int tm_kafka_conf_new(const tm_options_t *opts, const char *table, const char *comp,
                      rd_kafka_conf_t **out, char *errstr, size_t errstr_size);

/*
 * The same, passing on only the `kafka.*` properties for which keep(name
 * without the prefix) is true (NULL: all).  A client of another kind than the
 * table's (the Kafka sink's progress reader is a consumer) takes only the
 * connection and security settings, so librdkafka does not warn about the
 * rest.  Thread: main.
 */
int tm_kafka_conf_new_filtered(const tm_options_t *opts, const char *table,
                               bool (*keep)(const char *prop), rd_kafka_conf_t **out,
                               char *errstr, size_t errstr_size);

/* Sets one property, with the same error rule.  Returns 0 or TM_ECONFIG. */
int tm_kafka_conf_set(rd_kafka_conf_t *conf, const char *table, const char *name,
                      const char *value, char *errstr, size_t errstr_size);

/* True for properties whose values must never be logged or shown. */
bool tm_kafka_is_secret(const char *name);

/* ---- source (kafka_source.c) ---- */
extern const tm_option_def_t tm_kafka_source_options[];
int tm_kafka_source_new(tm_source_t **out, const tm_source_config_t *cfg, char *errstr,
                        size_t errstr_size);
int tm_kafka_source_open(tm_source_t *src, char *errstr, size_t errstr_size);
int tm_kafka_source_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size);
void tm_kafka_source_describe(const tm_source_t *src, void (*line)(void *arg, const char *text),
                              void *arg);
void tm_kafka_source_free(tm_source_t *src);

/* ---- sink (kafka_sink*.c; see kafka_sink_int.h) ---- */
extern const tm_option_def_t tm_kafka_sink_options[];
int tm_kafka_sink_new(tm_sink_t **out, const tm_sink_config_t *cfg, char *errstr,
                      size_t errstr_size);
int tm_kafka_sink_open(tm_sink_t *sink, char *errstr, size_t errstr_size);
int tm_kafka_sink_write(tm_sink_t *sink, const tm_batch_t *batch, char *errstr,
                        size_t errstr_size);
int tm_kafka_sink_flush(tm_sink_t *sink, char *errstr, size_t errstr_size);
int tm_kafka_sink_poll(tm_sink_t *sink, char *errstr, size_t errstr_size);
int tm_kafka_sink_acked(tm_sink_t *sink, uint64_t *writes, char *errstr, size_t errstr_size);
int tm_kafka_sink_precommit(tm_sink_t *sink, uint64_t epoch, tm_buf_t *handle, char *errstr,
                            size_t errstr_size);
int tm_kafka_sink_commit(tm_sink_t *sink, uint64_t epoch, const char *progress, char *errstr,
                         size_t errstr_size);
int tm_kafka_sink_recover(tm_sink_t *sink, uint64_t epoch, const char *handle, char *errstr,
                          size_t errstr_size);
bool tm_kafka_sink_is_decision_log(const tm_sink_t *sink);
int tm_kafka_sink_decided(tm_sink_t *sink, uint64_t *epoch, char *errstr, size_t errstr_size);
void tm_kafka_sink_free(tm_sink_t *sink);

#endif
