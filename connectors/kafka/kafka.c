/*
 * kafka.c — the Kafka connector's descriptor: a source (Debezium JSON from
 * topics, read_committed; kafka_source.c) and a sink (kafka_sink*.c) that is
 * at-least-once, or exactly-once as the job's decision log.
 */
#include "kafka_int.h"

const tm_connector_t tm_connector_kafka = {
    .abi = TM_CONNECTOR_ABI,
    .name = "kafka",
    .kinds = TM_CONNECTOR_SOURCE | TM_CONNECTOR_SINK,
    .doc = "Kafka topics through librdkafka.  As a sink: Debezium JSON (or flat/upsert JSON) keyed "
           "by the primary key; delivery = 'exactly-once' commits one transaction per checkpoint "
           "and makes the sink the job's decision log, at-least-once otherwise.",
    .source_options = tm_kafka_source_options,
    .sink_options = tm_kafka_sink_options,
    .option_prefix = TM_KAFKA_PREFIX,
    .source_new = tm_kafka_source_new,
    .source_open = tm_kafka_source_open,
    .source_run = tm_kafka_source_run,
    .source_describe = tm_kafka_source_describe,
    .source_free = tm_kafka_source_free,
    .sink_new = tm_kafka_sink_new,
    .sink_open = tm_kafka_sink_open,
    .sink_write = tm_kafka_sink_write,
    .sink_flush = tm_kafka_sink_flush,
    .sink_precommit = tm_kafka_sink_precommit,
    .sink_commit = tm_kafka_sink_commit,
    .sink_recover = tm_kafka_sink_recover,
    .sink_is_decision_log = tm_kafka_sink_is_decision_log,
    .sink_decided = tm_kafka_sink_decided,
    .sink_poll = tm_kafka_sink_poll,
    .sink_acked = tm_kafka_sink_acked,
    .sink_free = tm_kafka_sink_free,
};
