/*
 * job.h — a job file parsed into tables, pipelines and settings.
 *
 * A job is a list of PostgreSQL-grammar statements, parsed by libpg_query
 * (its JSON parse tree read with Jansson):
 *
 *     CREATE TABLE name (cols…) WITH (connector = '…', …);   -- source or sink
 *     INSERT INTO sink SELECT * FROM source;                  -- a pipeline
 *     SET name = value;                                       -- a job setting
 *
 * A table's role comes from its use: named in FROM it is a source, after
 * INSERT INTO a sink.  Its options are checked against the connector's table
 * for that role.
 *
 * Ownership: a tm_job_t owns everything it points to.
 */
#ifndef TM_SQL_JOB_H
#define TM_SQL_JOB_H

#include "core/options.h"
#include "core/schema.h"
#include "runtime/connector.h"

#include <stdbool.h>

enum { TM_ROLE_NONE = 0, TM_ROLE_SOURCE = 1, TM_ROLE_SINK = 2 };

typedef struct tm_job_table {
    char *name;
    int line;
    tm_options_t *opts;
    tm_schema_t *declared; /* NULL for `()` */
    const tm_connector_t *conn;
    int role;
} tm_job_table_t;

typedef struct tm_job_insert {
    int sink;   /* index into tables */
    int source; /* index into tables */
    int line;
} tm_job_insert_t;

typedef struct tm_job {
    char *path;
    tm_job_table_t *tables;
    int ntables;
    tm_job_insert_t *inserts;
    int ninserts;
    tm_options_t *settings; /* SET name = value */
} tm_job_t;

/*
 * Parses and checks a job.  On error returns TM_ESQL or TM_ECONFIG and fills
 * errstr with "<path>:<line>: …" naming the statement and the problem.
 */
int tm_job_parse(const char *sql, const char *path, tm_job_t **out, char *errstr,
                 size_t errstr_size);
int tm_job_load(const char *path, tm_job_t **out, char *errstr, size_t errstr_size);
tm_job_t *tm_job_free(tm_job_t *job);

/* Job-level settings accepted by SET. */
extern const tm_option_def_t tm_job_settings[];

/* Options that describe the event encoding, accepted on sources and sinks. */
extern const char *const tm_job_format_options[];

#endif
