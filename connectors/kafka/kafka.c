/*
 * kafka.c — the Kafka connector's descriptor.  Not registered yet
 * (runtime/registry.c) while the source and sink are being built.
 */
#include "kafka_int.h"

const tm_connector_t tm_connector_kafka = {
    .abi = TM_CONNECTOR_ABI,
    .name = "kafka",
    .kinds = TM_CONNECTOR_SOURCE,
    .doc = "Kafka topics (not built yet).",
    .source_options = tm_kafka_source_options,
    .sink_options = tm_kafka_sink_options,
    .option_prefix = TM_KAFKA_PREFIX,
    .source_new = tm_kafka_source_new,
    .source_open = tm_kafka_source_open,
    .source_run = tm_kafka_source_run,
    .source_describe = tm_kafka_source_describe,
    .source_free = tm_kafka_source_free,
};
