/*
 * kafka_common.c — librdkafka configuration shared by the Kafka source and
 * sink: the job's options become rd_kafka_conf_t properties, and
 * librdkafka's own log lines go to tidemark's log.
 */
#include "kafka_int.h"

#include "core/error.h"
#include "core/log.h"

#include <string.h>

/* One list of secret names for every connector (core/options.c), librdkafka's included. */
bool tm_kafka_is_secret(const char *name)
{
    return tm_option_name_is_secret(name);
}

int tm_kafka_conf_set(rd_kafka_conf_t *conf, const char *table, const char *name,
                      const char *value, char *errstr, size_t errstr_size)
{
    char why[512];
    if (rd_kafka_conf_set(conf, name, value, why, sizeof(why)) == RD_KAFKA_CONF_OK)
        return 0;
    return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                     "table '%s': librdkafka refused property '%s'%s%s%s (%s); see "
                     "https://github.com/confluentinc/librdkafka/blob/master/CONFIGURATION.md",
                     table, name, tm_kafka_is_secret(name) ? "" : " = '",
                     tm_kafka_is_secret(name) ? "" : value, tm_kafka_is_secret(name) ? "" : "'",
                     why);
}

/* librdkafka's log callback; runs on librdkafka's threads, and tm_log is thread-safe. */
static void kafka_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    const char *comp = "kafka";
    (void)rk;
    if (level <= 3)
        TM_ERROR(comp, "librdkafka", "facility=%s detail=\"%s\"", fac, buf);
    else if (level <= 4)
        TM_WARN(comp, "librdkafka", "facility=%s detail=\"%s\"", fac, buf);
    else
        TM_DEBUG(comp, "librdkafka", "facility=%s detail=\"%s\"", fac, buf);
}

int tm_kafka_conf_new(const tm_options_t *opts, const char *table, const char *comp,
                      rd_kafka_conf_t **out, char *errstr, size_t errstr_size)
{
    (void)comp;
    return tm_kafka_conf_new_filtered(opts, table, NULL, out, errstr, errstr_size);
}

int tm_kafka_conf_new_filtered(const tm_options_t *opts, const char *table,
                               bool (*keep)(const char *prop), rd_kafka_conf_t **out,
                               char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = 0;
    const char *servers = tm_opt_str(opts, "bootstrap_servers");
    if (servers != NULL)
        rc = tm_kafka_conf_set(conf, table, "bootstrap.servers", servers, errstr, errstr_size);
    const size_t plen = strlen(TM_KAFKA_PREFIX);
    for (int i = 0; rc == 0 && i < opts->n; i++) {
        const tm_option_kv_t *kv = &opts->kv[i];
        if (strncmp(kv->key, TM_KAFKA_PREFIX, plen) == 0 && (keep == NULL || keep(kv->key + plen)))
            rc = tm_kafka_conf_set(conf, table, kv->key + plen, kv->value, errstr, errstr_size);
    }
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_log_cb(conf, kafka_log);
    *out = conf;
    return 0;
}
