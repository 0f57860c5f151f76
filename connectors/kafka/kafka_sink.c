/*
 * kafka_sink.c — placeholder until the Kafka sink lands.
 */
#include "kafka_int.h"

const tm_option_def_t tm_kafka_sink_options[] = {{NULL, 0, false, NULL, NULL, NULL}};
