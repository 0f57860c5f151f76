/*
 * kafka_source.c — placeholder until the Kafka source lands; the connector
 * is not registered yet, so nothing reaches these functions.
 */
#include "kafka_int.h"

#include "core/error.h"

const tm_option_def_t tm_kafka_source_options[] = {{NULL, 0, false, NULL, NULL, NULL}};

int tm_kafka_source_new(tm_source_t **out, const tm_source_config_t *cfg, char *errstr,
                        size_t errstr_size)
{
    (void)out;
    (void)cfg;
    return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED, "the kafka source is not built yet");
}

int tm_kafka_source_open(tm_source_t *src, char *errstr, size_t errstr_size)
{
    (void)src;
    return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED, "the kafka source is not built yet");
}

int tm_kafka_source_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    (void)src;
    (void)ctx;
    return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED, "the kafka source is not built yet");
}

void tm_kafka_source_describe(const tm_source_t *src, void (*line)(void *arg, const char *text),
                              void *arg)
{
    (void)src;
    (void)line;
    (void)arg;
}

void tm_kafka_source_free(tm_source_t *src)
{
    (void)src;
}
