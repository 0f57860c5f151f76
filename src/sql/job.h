/*
 * job.h — a job file parsed into tables, pipelines and settings.
 *
 * A job is a list of PostgreSQL-grammar statements, parsed by libpg_query
 * (its JSON parse tree read with Jansson):
 *
 *     CREATE TABLE name (cols…) WITH (connector = '…', …);   -- source or sink
 *     CREATE VIEW name [(cols)] AS SELECT …;                 -- a named query
 *     INSERT INTO sink [(cols)] SELECT …;                    -- a pipeline
 *     SET name = value;                                       -- a job setting
 *
 * This layer reads statements, not queries: it keeps each SELECT as
 * libpg_query's SelectStmt node (JSON, with byte locations into `sql`) for
 * the binder (sql/bind.h), and looks inside a SELECT only to find the tables
 * it reads.  A table's role comes from its use: named in a FROM of an INSERT
 * (directly or through views) it is a source, after INSERT INTO a sink.  Its
 * options are checked against the connector's table for that role.
 *
 * Invariants:
 *   1. A view refers only to tables and to views declared before it, so
 *      expanding views always terminates.
 *   2. Every INSERT reads at least one source table (`source` >= 0) and
 *      never writes a table it reads.
 *
 * Ownership: a tm_job_t owns everything it points to, including a
 * reference to each kept parse node.  Thread: any, one at a time.
 */
#ifndef TM_SQL_JOB_H
#define TM_SQL_JOB_H

#include "core/options.h"
#include "core/schema.h"
#include "runtime/connector.h"

#include <stdbool.h>

struct json_t; /* jansson's node type: the kept parse trees */

/*
 * A table named in a FROM is a source, or a lookup table when its connector
 * reads tables by key (TM_CONNECTOR_LOOKUP; with a connector that is also a
 * source, only when it says lookup = true): the planner allows it only as
 * the dimension side of a lookup join (plan.h).
 */
enum { TM_ROLE_NONE = 0, TM_ROLE_SOURCE = 1, TM_ROLE_SINK = 2, TM_ROLE_LOOKUP = 4 };

typedef struct tm_job_table {
    char *name;
    int line;
    tm_options_t *opts;
    tm_schema_t *declared; /* NULL for `()` */
    const tm_connector_t *conn;
    int role;
    /*
     * A source's `watermark` option (sql/job_watermark.c): the declared
     * event-time column, or NULL without the option, and the delay.
     */
    char *wm_column;
    int64_t wm_delay_us;
    int wm_location; /* byte offset of the option in sql (its name), or -1 */
} tm_job_table_t;

typedef struct tm_job_view {
    char *name;
    int line;
    int location;           /* byte offset of the statement in job->sql */
    struct json_t *select;  /* the SelectStmt node */
    char **aliases;         /* CREATE VIEW v (a, b): column names, or NULL */
    int naliases;
    int end; /* byte offset just past the statement in job->sql (before its ';') */
} tm_job_view_t;

typedef struct tm_job_insert {
    int sink;   /* index into tables */
    int source; /* index into tables: the first source table the query reads */
    int lookup; /* index into tables: the first lookup table it joins, or -1 */
    int line;
    int location;          /* byte offset of the statement in job->sql */
    struct json_t *select; /* the SelectStmt node */
    char **cols;           /* INSERT INTO sink (a, b): the named columns, or NULL */
    int *col_locations;    /* their byte offsets */
    int ncols;
    int end; /* byte offset just past the statement in job->sql (before its ';') */
} tm_job_insert_t;

typedef struct tm_job {
    char *path;
    char *sql; /* the job's text: parse-node locations are byte offsets into it */
    tm_job_table_t *tables;
    int ntables;
    tm_job_insert_t *inserts;
    int ninserts;
    tm_job_view_t *views;
    int nviews;
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

/* The 1-based line and column (in bytes) of byte offset `location` of job->sql. */
void tm_job_position(const tm_job_t *job, int location, int *line, int *col);
/* The index of a table or view by name (case-sensitive, as stored), or -1. */
int tm_job_find_table(const tm_job_t *job, const char *name);
int tm_job_find_view(const tm_job_t *job, const char *name);

/* True when a table named in a FROM is a lookup table (see TM_ROLE_LOOKUP). */
bool tm_job_table_is_lookup(const tm_job_table_t *t);

/* Job-level settings accepted by SET. */
extern const tm_option_def_t tm_job_settings[];

/* Options that describe the event encoding, accepted on sources and sinks. */
extern const char *const tm_job_format_options[];

#endif
