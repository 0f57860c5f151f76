/*
 * registry.c — the list of connectors compiled into this binary.
 */
#include "runtime/connector.h"

#include <string.h>

extern const tm_connector_t tm_connector_postgres;
extern const tm_connector_t tm_connector_file;
extern const tm_connector_t tm_connector_stdout;
extern const tm_connector_t tm_connector_kafka;
extern const tm_connector_t tm_connector_postgres_table;
extern const tm_connector_t tm_connector_mysql;
extern const tm_connector_t tm_connector_datagen;
extern const tm_connector_t tm_connector_blackhole;

static const tm_connector_t *const connectors[] = {
    &tm_connector_postgres,
    &tm_connector_file,
    &tm_connector_stdout,
    &tm_connector_kafka,
    &tm_connector_postgres_table,
    &tm_connector_mysql,
    &tm_connector_datagen,
    &tm_connector_blackhole,
    NULL,
};

const tm_connector_t *tm_connector_find(const char *name)
{
    for (int i = 0; connectors[i] != NULL; i++)
        if (strcmp(connectors[i]->name, name) == 0)
            return connectors[i];
    return NULL;
}

const tm_connector_t *const *tm_connector_all(void)
{
    return connectors;
}
