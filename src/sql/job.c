/*
 * job.c — job file → tm_job_t, through libpg_query's JSON parse tree.
 *
 * The parse tree is PostgreSQL's own (version 15 grammar), so a job file is
 * checked by the same parser as psql input; this file only reads the four
 * statement kinds tidemark understands and rejects the rest with a message
 * that names the statement and its line.  Queries are kept as parse nodes
 * for the binder (sql/bind.c), which reports what they may not contain.
 */
#include "sql/job.h"
#include "sql/job_int.h"
#include "core/error.h"
#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <jansson.h>
#include <pg_query.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* Job files and ${file:} secrets are read whole; past this size they are refused. */
#define TM_JOB_MAX_BYTES (4 << 20)

const tm_option_def_t tm_job_settings[] = {
    {"sink_flush_interval", TM_OPT_DURATION, false, "200ms", NULL,
     "How often sinks make their writes durable, which is when sources may acknowledge them."},
    {"log_level", TM_OPT_ENUM, false, "info", "error|warn|info|debug", "Log verbosity."},
    {"checkpoint_interval", TM_OPT_DURATION, false, "0", NULL,
     "How often a checkpoint is taken; 0 turns checkpoints off (at-least-once, acknowledged "
     "after each sink flush)."},
    {"checkpoint_timeout", TM_OPT_DURATION, false, "10min", NULL,
     "A checkpoint still open after this long is logged and counted as timed out."},
    {"checkpoints_retained", TM_OPT_INT, false, "3", NULL,
     "How many completed checkpoints are kept in the state directory."},
    {"parallelism", TM_OPT_INT, false, "1", NULL,
     "Worker threads that run the stateful operators; each owns a range of key groups."},
    {"max_parallelism", TM_OPT_INT, false, "128", NULL,
     "Key groups keyed state is split into; the most workers a job can ever use.  Fixed for "
     "the life of the job's state, savepoints included."},
    {"state_memory", TM_OPT_SIZE, false, "256MiB", NULL,
     "Memory for all keyed state together: RocksDB block cache plus memtables."},
    {"state_ttl", TM_OPT_DURATION, false, "0", NULL,
     "Keyed state not written for this long expires; 0 keeps it forever."},
    {"allowed_lateness", TM_OPT_DURATION, false, "0", NULL,
     "How long a fired window keeps its state: a row that arrives that late still updates it, "
     "and the window aggregation emits a correction (its output becomes a changelog)."},
    {"late_data_sink", TM_OPT_STRING, false, NULL, NULL,
     "A table of the job (CREATE TABLE … WITH (connector = …)) that receives every row a window "
     "aggregation counts as late, with the operator, window, watermark and reason."},
    {"admin_address", TM_OPT_STRING, false, "127.0.0.1:8081", NULL,
     "Where the admin HTTP API listens (health, metrics, savepoints); port 0 picks a free one."},
    {"admin_token", TM_OPT_SECRET, false, NULL, NULL,
     "Bearer token the admin API requires; mandatory when admin_address is not loopback."},
    {"admin_tls_cert", TM_OPT_STRING, false, NULL, NULL,
     "PEM certificate (then its chain) the admin API serves HTTPS with, a path or the PEM text "
     "itself; needs admin_tls_key."},
    {"admin_tls_key", TM_OPT_SECRET, false, NULL, NULL,
     "PEM private key (unencrypted) of admin_tls_cert: a path, e.g. "
     "'${env:CREDENTIALS_DIRECTORY}/admin-tls.key' under systemd, or the PEM text itself "
     "('${file:…}', '${env:…}'); masked in explain."},
    {"admin_tls_client_ca", TM_OPT_STRING, false, NULL, NULL,
     "PEM CA bundle; when set, admin API clients must present a certificate it signed "
     "(mutual TLS), which also allows a non-loopback admin_address without admin_token."},
    {"savepoint_dir", TM_OPT_STRING, false, NULL, NULL,
     "Root for savepoints (default <state-dir>/savepoints); the admin API writes savepoints "
     "only below it, and a relative \"dir\" is taken below it."},
    {"on_error", TM_OPT_ENUM, false, "fail", "fail|skip|dead-letter",
     "What a row whose expression fails (division by zero, a bad cast), or that a PostgreSQL "
     "sink's target rejects, does: fail the job, skip the row (counted and logged), or skip it "
     "and append it to <state-dir>/dead-letter/<operator>-<subtask>.jsonl."},
    {NULL, 0, false, NULL, NULL, NULL},
};

const char *const tm_job_format_options[] = {"schemas", "decimal_handling", "time_precision",
                                             NULL};

static int check_text(const char *sql, size_t len, const char *path, char *errstr,
                      size_t errstr_size);

typedef struct parse_ctx {
    const char *sql;
    const char *path;
    tm_job_t *job;
    char *errstr;
    size_t errstr_size;
} parse_ctx_t;

static int line_of(const char *sql, long pos)
{
    int line = 1;
    for (long i = 0; i < pos && sql[i]; i++)
        if (sql[i] == '\n')
            line++;
    return line;
}

static const char *jstr(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    return json_is_string(v) ? json_string_value(v) : NULL;
}

/* The text of a node like {"String":{"sval":"x"}}. */
static const char *node_sval(json_t *node)
{
    json_t *s = json_object_get(node, "String");
    return s ? jstr(s, "sval") : NULL;
}

static tm_job_table_t *job_find_table(tm_job_t *job, const char *name, int *idx)
{
    for (int i = 0; i < job->ntables; i++)
        if (strcmp(job->tables[i].name, name) == 0) {
            if (idx)
                *idx = i;
            return &job->tables[i];
        }
    return NULL;
}

/* Reads a DefElem argument (String, Integer, Float, Boolean) as text. */
static int defelem_value(json_t *arg, char *buf, size_t buflen)
{
    json_t *v;
    if ((v = json_object_get(arg, "String")) != NULL) {
        const char *s = jstr(v, "sval");
        snprintf(buf, buflen, "%s", s ? s : "");
        return 0;
    }
    if ((v = json_object_get(arg, "Integer")) != NULL) {
        snprintf(buf, buflen, "%lld", (long long)json_integer_value(json_object_get(v, "ival")));
        return 0;
    }
    if ((v = json_object_get(arg, "Float")) != NULL) {
        const char *s = jstr(v, "fval");
        snprintf(buf, buflen, "%s", s ? s : "0");
        return 0;
    }
    if ((v = json_object_get(arg, "Boolean")) != NULL) {
        snprintf(buf, buflen, "%s", json_is_true(json_object_get(v, "boolval")) ? "true" : "false");
        return 0;
    }
    if ((v = json_object_get(arg, "TypeName")) != NULL) {
        json_t *names = json_object_get(v, "names");
        const char *s = node_sval(json_array_get(names, json_array_size(names) - 1));
        snprintf(buf, buflen, "%s", s ? s : "");
        return 0;
    }
    return -1;
}

/* A_Const → text. */
static int aconst_value(json_t *c, char *buf, size_t buflen)
{
    json_t *v;
    if ((v = json_object_get(c, "sval")) != NULL) {
        snprintf(buf, buflen, "%s", jstr(v, "sval") ? jstr(v, "sval") : "");
        return 0;
    }
    if ((v = json_object_get(c, "ival")) != NULL) {
        snprintf(buf, buflen, "%lld", (long long)json_integer_value(json_object_get(v, "ival")));
        return 0;
    }
    if ((v = json_object_get(c, "fval")) != NULL) {
        snprintf(buf, buflen, "%s", jstr(v, "fval") ? jstr(v, "fval") : "0");
        return 0;
    }
    if ((v = json_object_get(c, "boolval")) != NULL) {
        snprintf(buf, buflen, "%s", json_is_true(json_object_get(v, "boolval")) ? "true" : "false");
        return 0;
    }
    if (json_is_true(json_object_get(c, "isnull"))) {
        snprintf(buf, buflen, "%s", "");
        return 0;
    }
    return -1;
}

static const struct {
    const char *name;
    tm_type_t type;
} declared_types[] = {
    {"bool", TM_T_BOOL},         {"boolean", TM_T_BOOL},       {"int2", TM_T_INT16},
    {"smallint", TM_T_INT16},    {"int4", TM_T_INT32},         {"int", TM_T_INT32},
    {"integer", TM_T_INT32},     {"int8", TM_T_INT64},         {"bigint", TM_T_INT64},
    {"float4", TM_T_FLOAT32},    {"real", TM_T_FLOAT32},       {"float8", TM_T_FLOAT64},
    {"double", TM_T_FLOAT64},    {"numeric", TM_T_NUMERIC},    {"decimal", TM_T_NUMERIC},
    {"text", TM_T_TEXT},         {"varchar", TM_T_TEXT},       {"bpchar", TM_T_TEXT},
    {"char", TM_T_TEXT},         {"string", TM_T_TEXT},        {"bytea", TM_T_BYTES},
    {"bytes", TM_T_BYTES},       {"json", TM_T_JSON},          {"jsonb", TM_T_JSON},
    {"uuid", TM_T_UUID},         {"date", TM_T_DATE},          {"time", TM_T_TIME},
    {"timetz", TM_T_TIMETZ},     {"timestamp", TM_T_TIMESTAMP}, {"timestamptz", TM_T_TIMESTAMPTZ},
    {"interval", TM_T_INTERVAL},
};

static int own_location(json_t *obj);

static int parse_column(parse_ctx_t *pc, tm_column_t *col, json_t *cdef, int line, bool *is_pk)
{
    const char *name = jstr(cdef, "colname");
    json_t *tn = json_object_get(cdef, "typeName");
    json_t *names = json_object_get(tn, "names");
    const char *tname = node_sval(json_array_get(names, json_array_size(names) - 1));
    if (name == NULL || tname == NULL)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL, "%s:%d: malformed column definition",
                         pc->path, line);
    col->name = strdup(name);
    col->db_type = strdup(tname);
    col->type = TM_T_OTHER;
    for (size_t i = 0; i < sizeof(declared_types) / sizeof(declared_types[0]); i++)
        if (strcasecmp(declared_types[i].name, tname) == 0)
            col->type = declared_types[i].type;
    json_t *mods = json_object_get(tn, "typmods");
    int64_t m[2] = {-1, -1};
    for (size_t i = 0; i < json_array_size(mods) && i < 2; i++) {
        json_t *ac = json_object_get(json_array_get(mods, i), "A_Const");
        json_t *iv = json_object_get(json_object_get(ac, "ival"), "ival");
        m[i] = json_is_integer(iv) ? json_integer_value(iv) : (ac ? 0 : -1);
    }
    if (col->type == TM_T_NUMERIC) {
        col->precision = (int32_t)m[0];
        col->scale = m[0] >= 0 ? (int32_t)(m[1] >= 0 ? m[1] : 0) : TM_SCALE_VARIABLE;
    } else if (col->type == TM_T_TIME || col->type == TM_T_TIMETZ ||
               col->type == TM_T_TIMESTAMP || col->type == TM_T_TIMESTAMPTZ) {
        col->precision = (int32_t)m[0];
    } else if (m[0] >= 0) {
        col->length = (int32_t)m[0];
    }
    if (json_array_size(json_object_get(tn, "arrayBounds")) > 0) {
        col->elem_type = col->type;
        col->type = TM_T_ARRAY;
    }
    json_t *cons = json_object_get(cdef, "constraints");
    for (size_t i = 0; i < json_array_size(cons); i++) {
        json_t *c = json_object_get(json_array_get(cons, i), "Constraint");
        const char *ct = jstr(c, "contype");
        if (ct && strcmp(ct, "CONSTR_PRIMARY") == 0) {
            *is_pk = true;
            col->nullable = false;
        } else if (ct && strcmp(ct, "CONSTR_NOTNULL") == 0) {
            col->nullable = false;
        }
    }
    return 0;
}

static int parse_create(parse_ctx_t *pc, json_t *cs, int line)
{
    tm_job_t *job = pc->job;
    const char *name = jstr(json_object_get(cs, "relation"), "relname");
    if (name == NULL)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL, "%s:%d: CREATE TABLE without a name",
                         pc->path, line);
    if (job_find_table(job, name, NULL) != NULL)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                         "%s:%d: table '%s' is declared twice", pc->path, line, name);
    tm_job_table_t *t = realloc(job->tables, sizeof(*t) * (size_t)(job->ntables + 1));
    if (t == NULL)
        return TM_ENOMEM;
    job->tables = t;
    t = &job->tables[job->ntables++];
    memset(t, 0, sizeof(*t));
    t->name = strdup(name);
    t->line = line;
    t->opts = tm_options_new();
    t->wm_location = -1;

    json_t *opts = json_object_get(cs, "options");
    const char *connector = NULL;
    for (size_t i = 0; i < json_array_size(opts); i++) {
        json_t *de = json_object_get(json_array_get(opts, i), "DefElem");
        const char *key = jstr(de, "defname");
        const char *ns = jstr(de, "defnamespace");
        char val[8192], fullkey[256];
        if (key == NULL)
            continue;
        if (defelem_value(json_object_get(de, "arg"), val, sizeof(val)) != 0)
            return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                             "%s:%d: table '%s': option '%s' needs a value, e.g. %s = 'value'",
                             pc->path, line, name, key, key);
        snprintf(fullkey, sizeof(fullkey), "%s%s%s", ns ? ns : "", ns ? "." : "", key);
        if (strcasecmp(fullkey, "connector") == 0) {
            connector = jstr(json_object_get(json_object_get(de, "arg"), "String"), "sval");
            continue;
        }
        if (strcmp(fullkey, "watermark") == 0)
            t->wm_location = own_location(de);
        if (tm_options_lookup(t->opts, fullkey) != NULL)
            return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                             "%s:%d: table '%s': option '%s' is given twice", pc->path, line, name,
                             fullkey);
        tm_options_set(t->opts, fullkey, val);
    }
    /* Both messages list the connectors from the registry, so a new one is never left out. */
    char known[256] = "";
    size_t nk = 0;
    for (const tm_connector_t *const *c = tm_connector_all(); *c && nk < sizeof(known); c++)
        nk += (size_t)snprintf(known + nk, sizeof(known) - nk, "%s%s", nk ? ", " : "", (*c)->name);
    if (connector == NULL)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ECONFIG,
                         "%s:%d: table '%s' has no connector; add WITH (connector = '…'), one of "
                         "%s",
                         pc->path, line, name, known);
    t->conn = tm_connector_find(connector);
    if (t->conn == NULL) {
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ECONFIG,
                         "%s:%d: table '%s': unknown connector '%s'; available: %s", pc->path,
                         line, name, connector, known);
    }

    json_t *elts = json_object_get(cs, "tableElts");
    if (json_array_size(elts) > 0) {
        int ncols = 0;
        for (size_t i = 0; i < json_array_size(elts); i++)
            if (json_object_get(json_array_get(elts, i), "ColumnDef"))
                ncols++;
        tm_schema_t *s = tm_schema_new(ncols);
        if (s == NULL)
            return TM_ENOMEM;
        t->declared = s;
        int c = 0, nkeys = 0;
        for (size_t i = 0; i < json_array_size(elts); i++) {
            json_t *e = json_array_get(elts, i);
            json_t *cdef = json_object_get(e, "ColumnDef");
            if (cdef != NULL) {
                bool pk = false;
                int rc = parse_column(pc, &s->cols[c], cdef, line, &pk);
                if (rc != 0)
                    return rc;
                if (pk)
                    s->cols[c].key_index = (int16_t)nkeys++;
                c++;
                continue;
            }
            json_t *con = json_object_get(e, "Constraint");
            const char *ct = jstr(con, "contype");
            if (ct && strcmp(ct, "CONSTR_PRIMARY") == 0) {
                if (nkeys > 0)
                    return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                                     "%s:%d: table '%s' declares its primary key twice", pc->path,
                                     line, name);
                json_t *keys = json_object_get(con, "keys");
                for (size_t k = 0; k < json_array_size(keys); k++) {
                    const char *kn = node_sval(json_array_get(keys, k));
                    int ci = kn ? tm_schema_find(s, kn) : -1;
                    if (ci < 0)
                        return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                                         "%s:%d: table '%s': primary key column '%s' is not "
                                         "declared",
                                         pc->path, line, name, kn ? kn : "?");
                    s->cols[ci].key_index = (int16_t)nkeys++;
                    s->cols[ci].nullable = false;
                }
            } else if (ct != NULL) {
                return tm_seterr(pc->errstr, pc->errstr_size, TM_EUNSUPPORTED,
                                 "%s:%d: table '%s': only PRIMARY KEY and NOT NULL constraints are "
                                 "supported",
                                 pc->path, line, name);
            }
        }
        if (tm_schema_finish(s) != 0)
            return TM_EINVAL;
    }
    return 0;
}

static void position_of(const char *sql, long pos, int *line, int *col)
{
    int l = 1;
    long ls = 0;
    for (long i = 0; i < pos && sql[i]; i++)
        if (sql[i] == '\n') {
            l++;
            ls = i + 1;
        }
    *line = l;
    *col = (int)(pos - ls) + 1;
}

static int node_location(json_t *node)
{
    /* A node is {"Kind": {..., "location": n}}; some carry it on the outer object. */
    json_t *loc = json_object_get(node, "location");
    if (!json_is_integer(loc)) {
        void *it = json_object_iter(node);
        json_t *inner = it ? json_object_iter_value(it) : NULL;
        loc = json_is_object(inner) ? json_object_get(inner, "location") : NULL;
    }
    return json_is_integer(loc) ? (int)json_integer_value(loc) : -1;
}

/*
 * ---- What a statement may not say ----
 *
 * Every field of the statement nodes that the planner does not implement is
 * refused here, by name and at its own line and column, rather than dropped:
 * a job that says ON CONFLICT, ONLY or TEMPORARY must not run as if it had
 * not (issue 9, item 10).  The SELECT inside is audited by the binder
 * (sql/bind.c, check_clauses and bind_from).  A field added to what
 * tidemark implements leaves this list; a field PostgreSQL adds to its
 * grammar must join it.
 */

/* "path:line:col: <message>" at `location`, or at `fallback` when the node has none. */
static int refuse(parse_ctx_t *pc, int location, int fallback, int code, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static int refuse(parse_ctx_t *pc, int location, int fallback, int code, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    int line, col;
    position_of(pc->sql, location >= 0 ? location : fallback >= 0 ? fallback : 0, &line, &col);
    return tm_seterr(pc->errstr, pc->errstr_size, code, "%s:%d:%d: %s", pc->path, line, col,
                     msg);
}

/* The location of an object node itself ({"location": n, …}), or -1. */
static int own_location(json_t *obj)
{
    json_t *loc = json_object_get(obj, "location");
    return json_is_integer(loc) ? (int)json_integer_value(loc) : -1;
}

/*
 * The earliest location anywhere inside `node`, or -1: for nodes that carry
 * none of their own (a WITH RECURSIVE written by the grammar, a SELECT).
 */
static int first_location(json_t *node, int depth)
{
    int best = -1;
    if (depth > 64)
        return -1;
    if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++) {
            int l = first_location(json_array_get(node, i), depth + 1);
            if (l >= 0 && (best < 0 || l < best))
                best = l;
        }
        return best;
    }
    if (!json_is_object(node))
        return -1;
    const char *key;
    json_t *v;
    json_object_foreach(node, key, v) {
        int l = strcmp(key, "location") == 0 && json_is_integer(v) ? (int)json_integer_value(v)
                                                                   : first_location(v, depth + 1);
        if (l >= 0 && (best < 0 || l < best))
            best = l;
    }
    return best;
}

/*
 * A table or view name in a statement that declares or writes one: a bare
 * name, since job tables are not database tables (their connector's options
 * name those).  `what` is "table", "view" or "sink".
 */
static int check_relation_name(parse_ctx_t *pc, json_t *rv, int fallback, const char *what)
{
    const char *name = jstr(rv, "relname");
    int loc = own_location(rv);
    const char *schema = jstr(rv, "schemaname");
    if (schema != NULL) {
        const char *cat = jstr(rv, "catalogname");
        return refuse(pc, loc, fallback, TM_ESQL,
                      "%s \"%s%s%s.%s\": job tables and views have a bare name, with no schema "
                      "or database qualifier (the database table is the connector's `table` "
                      "option); write %s",
                      what, cat ? cat : "", cat ? "." : "", schema, name ? name : "?",
                      name ? name : "a bare name");
    }
    const char *persist = jstr(rv, "relpersistence");
    if (persist != NULL && strcmp(persist, "p") != 0)
        return refuse(pc, loc, fallback, TM_EUNSUPPORTED,
                      "%s \"%s\": TEMPORARY and UNLOGGED are not supported; a job's tables and "
                      "views exist only in the job (drop the word)",
                      what, name ? name : "?");
    return 0;
}

static const char *const create_unsupported[][2] = {
    {"inhRelations", "INHERITS"},
    {"partbound", "PARTITION OF"},
    {"partspec", "PARTITION BY"},
    {"ofTypename", "OF type"},
    {"tablespacename", "TABLESPACE"},
    {"accessMethod", "USING (table access method)"},
    {"constraints", "table constraints other than PRIMARY KEY"},
};

static const char *const column_constraints_ok[] = {"CONSTR_PRIMARY", "CONSTR_NOTNULL",
                                                    "CONSTR_NULL", NULL};

static int check_create(parse_ctx_t *pc, json_t *cs, int stmt_loc)
{
    json_t *rel = json_object_get(cs, "relation");
    const char *name = jstr(rel, "relname");
    int rc = check_relation_name(pc, rel, stmt_loc, "table");
    if (rc != 0)
        return rc;
    if (json_is_true(json_object_get(cs, "if_not_exists")))
        return refuse(pc, own_location(rel), stmt_loc, TM_EUNSUPPORTED,
                      "CREATE TABLE IF NOT EXISTS is not supported; a job declares each table "
                      "once (CREATE TABLE %s …)",
                      name ? name : "name");
    const char *oncommit = jstr(cs, "oncommit");
    if (oncommit != NULL && strcmp(oncommit, "ONCOMMIT_NOOP") != 0)
        return refuse(pc, own_location(rel), stmt_loc, TM_EUNSUPPORTED,
                      "table '%s': ON COMMIT is not supported", name ? name : "?");
    for (size_t i = 0; i < sizeof(create_unsupported) / sizeof(create_unsupported[0]); i++) {
        json_t *v = json_object_get(cs, create_unsupported[i][0]);
        if (v == NULL)
            continue;
        int loc = json_is_array(v) ? first_location(v, 0) : first_location(v, 0);
        return refuse(pc, loc, own_location(rel), TM_EUNSUPPORTED,
                      "table '%s': %s is not supported in a job; declare the columns (and a "
                      "PRIMARY KEY) and the connector's options only",
                      name ? name : "?", create_unsupported[i][1]);
    }
    json_t *elts = json_object_get(cs, "tableElts");
    for (size_t i = 0; i < json_array_size(elts); i++) {
        json_t *e = json_array_get(elts, i);
        json_t *like = json_object_get(e, "TableLikeClause");
        if (like != NULL)
            return refuse(pc, first_location(like, 0), own_location(rel), TM_EUNSUPPORTED,
                          "table '%s': LIKE is not supported; list the columns", name ? name : "?");
        json_t *tcon = json_object_get(e, "Constraint");
        const char *tct = jstr(tcon, "contype");
        if (tcon != NULL && (tct == NULL || strcmp(tct, "CONSTR_PRIMARY") != 0))
            return refuse(pc, own_location(tcon), own_location(rel), TM_EUNSUPPORTED,
                          "table '%s': this constraint is not supported; only PRIMARY KEY and "
                          "NOT NULL constraints are",
                          name ? name : "?");
        json_t *cdef = json_object_get(e, "ColumnDef");
        if (cdef == NULL)
            continue;
        const char *col = jstr(cdef, "colname");
        int cloc = own_location(cdef);
        json_t *tn = json_object_get(cdef, "typeName");
        json_t *tnames = json_object_get(tn, "names");
        const char *tschema = json_array_size(tnames) > 1 ? node_sval(json_array_get(tnames, 0))
                                                          : NULL;
        /* The grammar itself writes int, varchar, … as pg_catalog.int4, …. */
        if (tschema != NULL && strcmp(tschema, "pg_catalog") != 0)
            return refuse(pc, own_location(tn), cloc, TM_EUNSUPPORTED,
                          "column \"%s\": a schema-qualified type name (\"%s\") is not "
                          "supported; write the type's own name",
                          col ? col : "?", tschema);
        if (json_is_true(json_object_get(tn, "setof")) || json_object_get(tn, "pct_type"))
            return refuse(pc, own_location(tn), cloc, TM_EUNSUPPORTED,
                          "column \"%s\": SETOF and %%TYPE are not supported", col ? col : "?");
        if (json_object_get(cdef, "collClause") != NULL)
            return refuse(pc, own_location(json_object_get(cdef, "collClause")), cloc,
                          TM_EUNSUPPORTED,
                          "column \"%s\": COLLATE is not supported (text compares by bytes)",
                          col ? col : "?");
        json_t *cons = json_object_get(cdef, "constraints");
        for (size_t k = 0; k < json_array_size(cons); k++) {
            json_t *c = json_object_get(json_array_get(cons, k), "Constraint");
            const char *ct = jstr(c, "contype");
            bool ok = false;
            for (const char *const *o = column_constraints_ok; *o && ct; o++)
                ok = ok || strcmp(*o, ct) == 0;
            if (ok)
                continue;
            return refuse(pc, own_location(c), cloc, TM_EUNSUPPORTED,
                          "column \"%s\": %s is not supported; a job's column takes only "
                          "PRIMARY KEY, NOT NULL and NULL",
                          col ? col : "?",
                          ct == NULL                               ? "this constraint"
                          : strcmp(ct, "CONSTR_DEFAULT") == 0      ? "DEFAULT"
                          : strcmp(ct, "CONSTR_CHECK") == 0        ? "CHECK"
                          : strcmp(ct, "CONSTR_UNIQUE") == 0       ? "UNIQUE"
                          : strcmp(ct, "CONSTR_FOREIGN") == 0      ? "REFERENCES"
                          : strcmp(ct, "CONSTR_IDENTITY") == 0     ? "GENERATED … AS IDENTITY"
                          : strcmp(ct, "CONSTR_GENERATED") == 0    ? "GENERATED … AS (…) STORED"
                          : strcmp(ct, "CONSTR_EXCLUSION") == 0    ? "EXCLUDE"
                                                                   : "this constraint");
        }
        if (json_object_get(cdef, "raw_default") != NULL ||
            json_object_get(cdef, "identitySequence") != NULL ||
            json_object_get(cdef, "storage") != NULL ||
            json_object_get(cdef, "compression") != NULL)
            return refuse(pc, cloc, own_location(rel), TM_EUNSUPPORTED,
                          "column \"%s\": only a name, a type, PRIMARY KEY and NOT NULL are "
                          "supported",
                          col ? col : "?");
    }
    return 0;
}

static int check_view(parse_ctx_t *pc, json_t *vs, int stmt_loc)
{
    json_t *rel = json_object_get(vs, "view");
    const char *name = jstr(rel, "relname");
    int rc = check_relation_name(pc, rel, stmt_loc, "view");
    if (rc != 0)
        return rc;
    json_t *opts = json_object_get(vs, "options");
    if (json_array_size(opts) > 0)
        return refuse(pc, first_location(opts, 0), own_location(rel), TM_EUNSUPPORTED,
                      "view '%s': WITH (…) options are not supported", name ? name : "?");
    const char *check = jstr(vs, "withCheckOption");
    if (check != NULL && strcmp(check, "NO_CHECK_OPTION") != 0)
        return refuse(pc, -1, own_location(rel), TM_EUNSUPPORTED,
                      "view '%s': WITH CHECK OPTION is not supported (job views are read-only)",
                      name ? name : "?");
    /* CREATE RECURSIVE VIEW is a WITH RECURSIVE query the grammar wrote, with no location. */
    json_t *with = json_object_get(json_object_get(json_object_get(vs, "query"), "SelectStmt"),
                                   "withClause");
    if (json_is_true(json_object_get(with, "recursive")) && own_location(with) < 0)
        return refuse(pc, -1, stmt_loc, TM_EUNSUPPORTED,
                      "CREATE RECURSIVE VIEW is not supported (a streaming query cannot recurse)");
    return 0;
}

static int check_insert(parse_ctx_t *pc, json_t *is, int stmt_loc)
{
    json_t *rel = json_object_get(is, "relation");
    const char *name = jstr(rel, "relname");
    json_t *v;
    int rc = check_relation_name(pc, rel, stmt_loc, "sink");
    if (rc != 0)
        return rc;
    json_t *sel = json_object_get(json_object_get(is, "selectStmt"), "SelectStmt");
    if (sel == NULL || (v = json_object_get(sel, "valuesLists")) != NULL)
        return refuse(pc, sel ? first_location(v, 0) : -1, stmt_loc, TM_EUNSUPPORTED,
                      "INSERT … VALUES and DEFAULT VALUES are not supported; a pipeline is "
                      "INSERT INTO <sink> SELECT … FROM <source>");
    if ((v = json_object_get(is, "withClause")) != NULL)
        return refuse(pc, own_location(v) >= 0 ? own_location(v) : first_location(v, 0),
                      stmt_loc, TM_EUNSUPPORTED,
                      "WITH (common table expressions) is not supported; declare the query "
                      "with CREATE VIEW name AS SELECT … instead");
    if (json_object_get(rel, "alias") != NULL)
        return refuse(pc, own_location(rel), stmt_loc, TM_EUNSUPPORTED,
                      "INSERT INTO %s AS alias is not supported (nothing could refer to it); "
                      "drop the alias",
                      name ? name : "?");
    if ((v = json_object_get(is, "onConflictClause")) != NULL)
        return refuse(pc, own_location(v), stmt_loc, TM_EUNSUPPORTED,
                      "INSERT … ON CONFLICT is not supported; declare a PRIMARY KEY on sink "
                      "'%s' and it receives upserts (and deletes) on that key",
                      name ? name : "?");
    if ((v = json_object_get(is, "returningList")) != NULL)
        return refuse(pc, first_location(v, 0), stmt_loc, TM_EUNSUPPORTED,
                      "INSERT … RETURNING is not supported: a pipeline's output is its sink");
    const char *ov = jstr(is, "override");
    if (ov != NULL && strcmp(ov, "OVERRIDING_NOT_SET") != 0)
        return refuse(pc, own_location(rel), stmt_loc, TM_EUNSUPPORTED,
                      "INSERT … OVERRIDING … VALUE is not supported (a sink has no identity "
                      "columns)");
    return 0;
}

static int check_set(parse_ctx_t *pc, json_t *vs, int stmt_loc)
{
    if (json_is_true(json_object_get(vs, "is_local")))
        return refuse(pc, first_location(vs, 0), stmt_loc, TM_EUNSUPPORTED,
                      "SET LOCAL is not supported; a job's settings hold for the whole job "
                      "(write SET %s = 'value')",
                      jstr(vs, "name") ? jstr(vs, "name") : "name");
    return 0;
}

static int job_find_view(tm_job_t *job, const char *name)
{
    for (int i = 0; i < job->nviews; i++)
        if (strcmp(job->views[i].name, name) == 0)
            return i;
    return -1;
}

/*
 * Walks a SELECT for the relations it reads.  With `insert` set, tables get
 * the source role and the insert its first source; views are followed (their
 * own relations were checked when they were declared).  Without, it only
 * checks that every relation is known (CREATE VIEW).
 */
static int walk_relations(parse_ctx_t *pc, json_t *node, int line, tm_job_insert_t *insert,
                          int depth)
{
    if (depth > 64)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                         "%s:%d: the query nests too deeply", pc->path, line);
    if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++) {
            int rc = walk_relations(pc, json_array_get(node, i), line, insert, depth + 1);
            if (rc != 0)
                return rc;
        }
        return 0;
    }
    if (!json_is_object(node))
        return 0;
    json_t *with = json_object_get(node, "withClause");
    if (with != NULL) {
        int l, c;
        position_of(pc->sql, node_location(json_object_get(with, "WithClause")) >= 0
                                 ? node_location(json_object_get(with, "WithClause"))
                                 : 0,
                    &l, &c);
        return tm_seterr(pc->errstr, pc->errstr_size, TM_EUNSUPPORTED,
                         "%s:%d:%d: WITH (common table expressions) is not supported; declare "
                         "the query with CREATE VIEW name AS SELECT … instead",
                         pc->path, l, c);
    }
    json_t *rf = json_object_get(node, "RangeFunction");
    if (rf != NULL) {
        /*
         * A window TVF, FROM TUMBLE(t, col, …): its first argument names the
         * table or view read (a bare name, parsed as a column reference); the
         * binder checks the rest.
         */
        json_t *items = json_object_get(
            json_object_get(json_array_get(json_object_get(rf, "functions"), 0), "List"), "items");
        json_t *fc = json_object_get(json_array_get(items, 0), "FuncCall");
        json_t *cref = json_object_get(json_array_get(json_object_get(fc, "args"), 0), "ColumnRef");
        json_t *fields = json_object_get(cref, "fields");
        const char *name = json_array_size(fields) == 1
                               ? jstr(json_object_get(json_array_get(fields, 0), "String"), "sval")
                               : NULL;
        if (name != NULL) {
            json_t *fake = json_pack("{s:{s:s,s:i}}", "RangeVar", "relname", name, "location",
                                     node_location(cref));
            if (fake == NULL)
                return TM_ENOMEM;
            int rc = walk_relations(pc, fake, line, insert, depth + 1);
            json_decref(fake);
            return rc;
        }
    }
    json_t *rv = json_object_get(node, "RangeVar");
    if (rv != NULL) {
        const char *name = jstr(rv, "relname");
        int ti = -1, vi;
        if (name == NULL)
            return 0;
        if (job_find_table(pc->job, name, &ti) != NULL) {
            if (insert != NULL && tm_job_table_is_lookup(&pc->job->tables[ti])) {
                /* Joined by key, not read: not the insert's source (see parse_insert). */
                pc->job->tables[ti].role |= TM_ROLE_LOOKUP;
                if (ti == insert->sink)
                    return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                                     "%s:%d: table '%s' cannot feed itself", pc->path, line,
                                     name);
                if (insert->lookup < 0)
                    insert->lookup = ti;
                return 0;
            }
            if (insert != NULL) {
                pc->job->tables[ti].role |= TM_ROLE_SOURCE;
                if (ti == insert->sink)
                    return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                                     "%s:%d: table '%s' cannot feed itself", pc->path, line,
                                     name);
                if (insert->source < 0)
                    insert->source = ti;
            }
            return 0;
        }
        if ((vi = job_find_view(pc->job, name)) >= 0)
            return insert ? walk_relations(pc, pc->job->views[vi].select, line, insert,
                                           depth + 1)
                          : 0;
        int l, c;
        position_of(pc->sql, node_location(node), &l, &c);
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                         "%s:%d:%d: source table '%s' is not declared; add CREATE TABLE %s (…) "
                         "WITH (connector = '…') or CREATE VIEW %s AS SELECT … before this "
                         "statement",
                         pc->path, l, c, name, name, name);
    }
    void *it;
    for (it = json_object_iter(node); it != NULL; it = json_object_iter_next(node, it)) {
        int rc = walk_relations(pc, json_object_iter_value(it), line, insert, depth + 1);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int parse_insert(parse_ctx_t *pc, json_t *is, int line, int location)
{
    tm_job_t *job = pc->job;
    const char *sink = jstr(json_object_get(is, "relation"), "relname");
    json_t *sel = json_object_get(json_object_get(is, "selectStmt"), "SelectStmt");
    if (sink == NULL || sel == NULL || json_object_get(sel, "valuesLists") != NULL)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_EUNSUPPORTED,
                         "%s:%d: only INSERT INTO <sink> SELECT … is supported (not VALUES or "
                         "DEFAULT VALUES)",
                         pc->path, line);
    if (json_object_get(is, "withClause") != NULL)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_EUNSUPPORTED,
                         "%s:%d: WITH (common table expressions) is not supported; declare the "
                         "query with CREATE VIEW name AS SELECT … instead",
                         pc->path, line);
    if (json_object_get(is, "onConflictClause") != NULL ||
        json_object_get(is, "returningList") != NULL)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_EUNSUPPORTED,
                         "%s:%d: INSERT … ON CONFLICT and RETURNING are not supported; a sink "
                         "with a PRIMARY KEY receives upserts on it",
                         pc->path, line);
    int ki;
    tm_job_table_t *snk = job_find_table(job, sink, &ki);
    if (snk == NULL)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                         "%s:%d: sink table '%s' is not declared; add CREATE TABLE %s (…) WITH "
                         "(connector = '…') before this INSERT",
                         pc->path, line, sink, sink);
    tm_job_insert_t *ins = realloc(job->inserts, sizeof(*ins) * (size_t)(job->ninserts + 1));
    if (ins == NULL)
        return TM_ENOMEM;
    job->inserts = ins;
    ins = &job->inserts[job->ninserts++];
    memset(ins, 0, sizeof(*ins));
    ins->sink = ki;
    ins->source = -1;
    ins->lookup = -1;
    ins->line = line;
    ins->location = location;
    ins->select = json_incref(sel);
    json_t *cols = json_object_get(is, "cols");
    if (json_array_size(cols) > 0) {
        size_t n = json_array_size(cols);
        ins->cols = calloc(n, sizeof(char *));
        ins->col_locations = calloc(n, sizeof(int));
        if (ins->cols == NULL || ins->col_locations == NULL)
            return TM_ENOMEM;
        for (size_t i = 0; i < n; i++) {
            json_t *rt = json_object_get(json_array_get(cols, i), "ResTarget");
            const char *cn = jstr(rt, "name");
            if (cn == NULL || json_object_get(rt, "indirection") != NULL)
                return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                                 "%s:%d: INSERT INTO %s (…) lists plain column names only",
                                 pc->path, line, sink);
            for (int k = 0; k < ins->ncols; k++)
                if (strcmp(ins->cols[k], cn) == 0)
                    return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                                     "%s:%d: column \"%s\" is named twice in INSERT INTO %s (…)",
                                     pc->path, line, cn, sink);
            ins->cols[i] = strdup(cn);
            ins->col_locations[i] = node_location(json_array_get(cols, i));
            ins->ncols++;
        }
    }
    snk->role |= TM_ROLE_SINK;
    int rc = walk_relations(pc, sel, line, ins, 0);
    if (rc != 0)
        return rc;
    /* Only a lookup table: the planner says, at its position, that it must be joined. */
    if (ins->source < 0 && ins->lookup >= 0)
        ins->source = ins->lookup;
    if (ins->source < 0)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                         "%s:%d: INSERT INTO %s reads no source table; a pipeline streams from "
                         "a table declared with CREATE TABLE … WITH (connector = '…') (add FROM "
                         "<source>)",
                         pc->path, line, sink);
    return 0;
}

static int parse_view(parse_ctx_t *pc, json_t *vs, int line, int location)
{
    tm_job_t *job = pc->job;
    const char *name = jstr(json_object_get(vs, "view"), "relname");
    json_t *sel = json_object_get(json_object_get(vs, "query"), "SelectStmt");
    if (name == NULL || sel == NULL)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                         "%s:%d: write views as CREATE VIEW name AS SELECT …", pc->path, line);
    if (json_is_true(json_object_get(vs, "replace")))
        return tm_seterr(pc->errstr, pc->errstr_size, TM_EUNSUPPORTED,
                         "%s:%d: CREATE OR REPLACE VIEW is not supported; a job declares each "
                         "view once (CREATE VIEW %s AS …)",
                         pc->path, line, name);
    if (job_find_table(job, name, NULL) != NULL || job_find_view(job, name) >= 0)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                         "%s:%d: '%s' is already declared; views and tables share one namespace",
                         pc->path, line, name);
    int rc = walk_relations(pc, sel, line, NULL, 0);
    if (rc != 0)
        return rc;
    tm_job_view_t *v = realloc(job->views, sizeof(*v) * (size_t)(job->nviews + 1));
    if (v == NULL)
        return TM_ENOMEM;
    job->views = v;
    v = &job->views[job->nviews++];
    memset(v, 0, sizeof(*v));
    v->name = strdup(name);
    v->line = line;
    v->location = location;
    v->select = json_incref(sel);
    json_t *aliases = json_object_get(vs, "aliases");
    if (json_array_size(aliases) > 0) {
        v->aliases = calloc(json_array_size(aliases), sizeof(char *));
        if (v->aliases == NULL)
            return TM_ENOMEM;
        for (size_t i = 0; i < json_array_size(aliases); i++) {
            const char *a = node_sval(json_array_get(aliases, i));
            v->aliases[v->naliases++] = strdup(a ? a : "?");
        }
    }
    return 0;
}

static int parse_set(parse_ctx_t *pc, json_t *vs, int line)
{
    const char *name = jstr(vs, "name");
    const char *kind = jstr(vs, "kind");
    json_t *args = json_object_get(vs, "args");
    char val[1024];
    if (name == NULL || kind == NULL || strcmp(kind, "VAR_SET_VALUE") != 0 ||
        json_array_size(args) != 1 ||
        aconst_value(json_object_get(json_array_get(args, 0), "A_Const"), val, sizeof(val)) != 0)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                         "%s:%d: write settings as SET name = 'value'", pc->path, line);
    return tm_options_set(pc->job->settings, name, val);
}

bool tm_job_table_is_lookup(const tm_job_table_t *t)
{
    if (t->conn == NULL || !(t->conn->kinds & TM_CONNECTOR_LOOKUP))
        return false;
    if (!(t->conn->kinds & TM_CONNECTOR_SOURCE))
        return true;
    bool v = false;
    const char *s = tm_options_lookup(t->opts, "lookup");
    return s != NULL && tm_parse_bool(s, &v) == 0 && v;
}

/* Checks each table's options against its connector, for the role it plays. */
static int job_check(parse_ctx_t *pc)
{
    tm_job_t *job = pc->job;
    char where[300];
    if (job->ninserts == 0)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                         "%s: the job has no INSERT INTO … SELECT … statement, so nothing would "
                         "run",
                         pc->path);
    /*
     * A sink that does not set an encoding option inherits it from its
     * source (the first INSERT's, if several feed it), so a Debezium user can
     * write decimal_handling on the source as usual.  This happens before
     * validation, so inherited values are checked like the sink's own.
     */
    for (int i = 0; i < job->ninserts; i++) {
        tm_job_table_t *src = &job->tables[job->inserts[i].source];
        tm_job_table_t *snk = &job->tables[job->inserts[i].sink];
        for (const char *const *f = tm_job_format_options; *f; f++) {
            const char *v = tm_options_lookup(src->opts, *f);
            if (v != NULL && !tm_opt_isset(snk->opts, *f))
                tm_options_set(snk->opts, *f, v);
        }
    }
    /* SET late_data_sink = 'table': the table is a sink fed by the planner, not by an INSERT. */
    const char *late = tm_options_lookup(job->settings, "late_data_sink");
    if (late != NULL) {
        int li = tm_job_find_table(job, late);
        if (li < 0)
            return tm_seterr(pc->errstr, pc->errstr_size, TM_ECONFIG,
                             "%s: SET late_data_sink = '%s' names no table of the job; declare "
                             "it with CREATE TABLE %s (…) WITH (connector = '…')",
                             pc->path, late, late);
        if (job->tables[li].role & TM_ROLE_SINK)
            return tm_seterr(pc->errstr, pc->errstr_size, TM_EUNSUPPORTED,
                             "%s: SET late_data_sink = '%s' names a table that an INSERT INTO "
                             "also writes; late rows need a table of their own",
                             pc->path, late);
        job->tables[li].role |= TM_ROLE_SINK;
    }
    for (int i = 0; i < job->ntables; i++) {
        tm_job_table_t *t = &job->tables[i];
        snprintf(where, sizeof(where), "%s:%d: table '%s'", pc->path, t->line, t->name);
        if (t->role == (TM_ROLE_SOURCE | TM_ROLE_SINK))
            return tm_seterr(pc->errstr, pc->errstr_size, TM_EUNSUPPORTED,
                             "%s is used both as a source and as a sink; declare two tables",
                             where);
        if ((t->role & TM_ROLE_LOOKUP) && t->role != TM_ROLE_LOOKUP)
            return tm_seterr(pc->errstr, pc->errstr_size, TM_EUNSUPPORTED,
                             "%s is a lookup table (connector '%s') and cannot also be %s; "
                             "declare two tables",
                             where, t->conn->name,
                             (t->role & TM_ROLE_SINK) ? "a sink" : "a source");
        if (t->role == TM_ROLE_NONE)
            continue;
        if (t->role == TM_ROLE_LOOKUP) {
            int rc = tm_options_validate(t->opts, t->conn->lookup_options, t->conn->option_prefix,
                                         where, pc->errstr, pc->errstr_size);
            if (rc != 0)
                return rc;
            if (!tm_opt_bool(t->opts, "lookup"))
                return tm_seterr(pc->errstr, pc->errstr_size, TM_ECONFIG,
                                 "%s: connector '%s' makes a lookup table only with lookup = "
                                 "true (add it to WITH (…) to join the table by key); without "
                                 "it the table can be a sink (INSERT INTO), and connector = "
                                 "'postgres-cdc' reads a table's changes as a source",
                                 where, t->conn->name);
            continue;
        }
        if (t->role == TM_ROLE_SINK && (t->conn->kinds & TM_CONNECTOR_LOOKUP) &&
            !(t->conn->kinds & TM_CONNECTOR_SINK))
            return tm_seterr(pc->errstr, pc->errstr_size, TM_EUNSUPPORTED,
                             "%s: connector '%s' cannot be a sink yet: the PostgreSQL sink is not "
                             "built yet; with lookup = true the table is a lookup table (joined "
                             "by key: FROM s JOIN %s d ON s.col = d.key), and connector = "
                             "'postgres-cdc' reads a table's changes as a source",
                             where, t->conn->name, t->name);
        bool src = t->role == TM_ROLE_SOURCE;
        if (!(t->conn->kinds & (src ? TM_CONNECTOR_SOURCE : TM_CONNECTOR_SINK)))
            return tm_seterr(pc->errstr, pc->errstr_size, TM_ECONFIG,
                             "%s: connector '%s' cannot be used as a %s", where, t->conn->name,
                             src ? "source (it appears after FROM)" : "sink (it appears after "
                                                                      "INSERT INTO)");
        int rc = tm_options_validate(t->opts, src ? t->conn->source_options : t->conn->sink_options,
                                     t->conn->option_prefix, where, pc->errstr, pc->errstr_size);
        if (rc == 0 && src)
            rc = tm__job_watermark(job, t, pc->errstr, pc->errstr_size);
        if (rc != 0)
            return rc;
    }
    snprintf(where, sizeof(where), "%s: SET", pc->path);
    return tm_options_validate(job->settings, tm_job_settings, NULL, where, pc->errstr,
                               pc->errstr_size);
}

/*
 * libpg_query 15-4.x writes an Integer A_Const whose value is 0 or negative as
 * {"ival": {}} (its JSON writer omits values it takes for the default; fixed
 * upstream in pganalyze/libpg_query#249).  The grammar folds a leading minus
 * into the constant and reports the constant at the minus sign, so the value
 * is read back from the job's text at the node's location: minus signs (each
 * flips the sign), white space and the digits.  Text that is not such a
 * literal leaves the node as it is, which everything downstream reads as 0.
 */
static void fix_integer_const(json_t *aconst, const char *sql, size_t sql_len)
{
    json_t *iv = json_object_get(aconst, "ival");
    if (!json_is_object(iv) || json_object_get(iv, "ival") != NULL)
        return;
    json_t *locj = json_object_get(aconst, "location");
    if (!json_is_integer(locj) || json_integer_value(locj) < 0 ||
        (size_t)json_integer_value(locj) >= sql_len)
        return;
    const char *p = sql + json_integer_value(locj);
    bool negative = false;
    while (*p == '-' || isspace((unsigned char)*p)) {
        if (*p == '-')
            negative = !negative;
        p++;
    }
    if (!isdigit((unsigned char)*p))
        return;
    errno = 0;
    char *end = NULL;
    long long v = strtoll(p, &end, 10);
    if (errno != 0 || end == p)
        return;
    json_object_set_new(iv, "ival", json_integer(negative ? -v : v));
}

static void fix_integer_consts(json_t *node, const char *sql, size_t sql_len)
{
    if (json_is_array(node)) {
        for (size_t i = 0; i < json_array_size(node); i++)
            fix_integer_consts(json_array_get(node, i), sql, sql_len);
        return;
    }
    if (!json_is_object(node))
        return;
    const char *key;
    json_t *value;
    json_object_foreach(node, key, value) {
        if (strcmp(key, "A_Const") == 0 && json_is_object(value))
            fix_integer_const(value, sql, sql_len);
        else
            fix_integer_consts(value, sql, sql_len);
    }
}

int tm_job_parse(const char *sql, const char *path, tm_job_t **out, char *errstr,
                 size_t errstr_size)
{
    parse_ctx_t pc = {sql, path ? path : "job", NULL, errstr, errstr_size};
    *out = NULL;
    int trc = check_text(sql, strlen(sql), pc.path, errstr, errstr_size);
    if (trc != 0)
        return trc;
    PgQueryParseResult r = pg_query_parse(sql);
    if (r.error != NULL) {
        int pos = r.error->cursorpos > 0 ? r.error->cursorpos - 1 : 0;
        int line = line_of(sql, pos);
        const char *ls = sql + pos;
        while (ls > sql && ls[-1] != '\n')
            ls--;
        const char *le = strchr(ls, '\n');
        int llen = le ? (int)(le - ls) : (int)strlen(ls);
        int col = (int)(sql + pos - ls);
        int rc = tm_seterr(errstr, errstr_size, TM_ESQL, "%s:%d:%d: %s\n  %.*s\n  %*s^", pc.path,
                           line, col + 1, r.error->message, llen > 200 ? 200 : llen, ls, col, "");
        pg_query_free_parse_result(r);
        return rc;
    }
    json_error_t jerr;
    json_t *tree = json_loads(r.parse_tree, 0, &jerr);
    pg_query_free_parse_result(r);
    if (tree == NULL)
        return tm_seterr(errstr, errstr_size, TM_ESQL, "%s: cannot read the parse tree (%s)",
                         pc.path, jerr.text);
    size_t sql_len = strlen(sql);
    fix_integer_consts(tree, sql, sql_len);
    tm_job_t *job = calloc(1, sizeof(*job));
    if (job == NULL) {
        json_decref(tree);
        return TM_ENOMEM;
    }
    job->path = strdup(pc.path);
    job->sql = strdup(sql);
    job->settings = tm_options_new();
    pc.job = job;
    int rc = 0;
    json_t *stmts = json_object_get(tree, "stmts");
    /*
     * Statement locations only grow, so lines are counted on from the last
     * statement's: recounting from the start made 20,000 statements take
     * over a minute.
     */
    long counted = 0;
    int counted_line = 1;
    for (size_t i = 0; rc == 0 && i < json_array_size(stmts); i++) {
        json_t *raw = json_array_get(stmts, i);
        long loc = (long)json_integer_value(json_object_get(raw, "stmt_location"));
        if (loc < 0 || (size_t)loc > sql_len)
            loc = 0;
        /* stmt_len 0 means "to the end of the text" (the last statement without a ';'). */
        long slen = (long)json_integer_value(json_object_get(raw, "stmt_len"));
        long end = slen > 0 && (size_t)(loc + slen) <= sql_len ? loc + slen : (long)sql_len;
        /* Skip leading whitespace and comments so the line is the statement's own. */
        while (sql[loc] && isspace((unsigned char)sql[loc]))
            loc++;
        while (sql[loc] == '-' && sql[loc + 1] == '-') {
            while (sql[loc] && sql[loc] != '\n')
                loc++;
            while (sql[loc] && isspace((unsigned char)sql[loc]))
                loc++;
        }
        if (loc < counted) {
            counted = 0;
            counted_line = 1;
        }
        counted_line += line_of(sql + counted, loc - counted) - 1;
        counted = loc;
        int line = counted_line;
        json_t *stmt = json_object_get(raw, "stmt");
        json_t *node;
        if ((node = json_object_get(stmt, "CreateStmt")) != NULL) {
            rc = check_create(&pc, node, (int)loc);
            if (rc == 0)
                rc = parse_create(&pc, node, line);
        } else if ((node = json_object_get(stmt, "InsertStmt")) != NULL) {
            rc = check_insert(&pc, node, (int)loc);
            if (rc == 0)
                rc = parse_insert(&pc, node, line, (int)loc);
            if (rc == 0)
                job->inserts[job->ninserts - 1].end = (int)end;
        } else if ((node = json_object_get(stmt, "ViewStmt")) != NULL) {
            rc = check_view(&pc, node, (int)loc);
            if (rc == 0)
                rc = parse_view(&pc, node, line, (int)loc);
            if (rc == 0)
                job->views[job->nviews - 1].end = (int)end;
        } else if ((node = json_object_get(stmt, "VariableSetStmt")) != NULL) {
            rc = check_set(&pc, node, (int)loc);
            if (rc == 0)
                rc = parse_set(&pc, node, line);
        } else {
            const char *kind = "?";
            void *iter = json_object_iter(stmt);
            if (iter)
                kind = json_object_iter_key(iter);
            rc = tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                           "%s:%d: statement %s is not supported in a job; use CREATE TABLE … "
                           "WITH (…), CREATE VIEW … AS SELECT …, INSERT INTO … SELECT … and SET",
                           pc.path, line, kind);
        }
    }
    json_decref(tree);
    if (rc == 0)
        rc = job_check(&pc);
    if (rc != 0) {
        tm_job_free(job);
        return rc;
    }
    *out = job;
    return 0;
}

/*
 * Refuses text that is not a job: invalid UTF-8 and control characters other
 * than white space.  The message gives the position and the byte in hex,
 * never the bytes themselves, which could drive a terminal or forge lines.
 */
static int check_text(const char *sql, size_t len, const char *path, char *errstr,
                      size_t errstr_size)
{
    int line = 1;
    size_t ls = 0;
    for (size_t i = 0; i < len;) {
        unsigned char c = (unsigned char)sql[i];
        const char *what = NULL;
        size_t k = tm_utf8_seqlen(sql + i, len - i);
        if (c == '\0')
            what = "a NUL byte";
        else if (k == 0)
            what = "a byte that is not UTF-8";
        else if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r' && c != '\f' && c != '\v') ||
                 c == 0x7f)
            what = "a control character";
        if (what != NULL)
            return tm_seterr(errstr, errstr_size, TM_ESQL,
                             "%s:%d:%zu: the job file holds %s (0x%02x); a job file is SQL text "
                             "in UTF-8",
                             path, line, i - ls + 1, what, c);
        if (c == '\n') {
            line++;
            ls = i + 1;
        }
        i += k;
    }
    return 0;
}

int tm_job_load(const char *path, tm_job_t **out, char *errstr, size_t errstr_size)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (f == NULL)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG, "cannot open job file %s (%s)", path,
                         strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "job file %s is a directory; name the .sql file to run", path);
    }
    /*
     * The cap holds for anything that can be opened (a pipe, /dev/zero), not
     * only for regular files whose size fstat() knows, so it is counted as
     * the bytes arrive.
     */
    size_t cap = 8192, len = 0;
    char *sql = malloc(cap);
    size_t n;
    int rc = 0;
    while (sql != NULL && (n = fread(sql + len, 1, cap - len - 1, f)) > 0) {
        len += n;
        if (len > TM_JOB_MAX_BYTES) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "job file %s is larger than %d MiB; a job is a few statements, so "
                           "check that the path names the right file",
                           path, TM_JOB_MAX_BYTES >> 20);
            break;
        }
        if (len + 1 >= cap) {
            char *p = realloc(sql, cap * 2);
            if (p == NULL) {
                free(sql);
                sql = NULL;
                break;
            }
            sql = p;
            cap *= 2;
        }
    }
    if (rc == 0 && sql != NULL && ferror(f))
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG, "cannot read job file %s (%s)", path,
                       strerror(errno));
    fclose(f);
    if (sql == NULL)
        return TM_ENOMEM;
    if (rc == 0)
        rc = check_text(sql, len, path, errstr, errstr_size);
    if (rc == 0) {
        sql[len] = '\0';
        rc = tm_job_parse(sql, path, out, errstr, errstr_size);
    }
    free(sql);
    return rc;
}

tm_job_t *tm_job_free(tm_job_t *job)
{
    if (job == NULL)
        return NULL;
    for (int i = 0; i < job->ntables; i++) {
        free(job->tables[i].name);
        tm_options_free(job->tables[i].opts);
        tm_schema_unref(job->tables[i].declared);
        free(job->tables[i].wm_column);
    }
    free(job->tables);
    for (int i = 0; i < job->ninserts; i++) {
        json_decref(job->inserts[i].select);
        for (int k = 0; k < job->inserts[i].ncols; k++)
            free(job->inserts[i].cols[k]);
        free(job->inserts[i].cols);
        free(job->inserts[i].col_locations);
    }
    free(job->inserts);
    for (int i = 0; i < job->nviews; i++) {
        free(job->views[i].name);
        json_decref(job->views[i].select);
        for (int k = 0; k < job->views[i].naliases; k++)
            free(job->views[i].aliases[k]);
        free(job->views[i].aliases);
    }
    free(job->views);
    free(job->sql);
    tm_options_free(job->settings);
    free(job->path);
    free(job);
    return NULL;
}

void tm_job_position(const tm_job_t *job, int location, int *line, int *col)
{
    if (location < 0 || job->sql == NULL) {
        *line = 0;
        *col = 0;
        return;
    }
    position_of(job->sql, location, line, col);
}

int tm_job_find_table(const tm_job_t *job, const char *name)
{
    int idx = -1;
    return job_find_table((tm_job_t *)job, name, &idx) ? idx : -1;
}

int tm_job_find_view(const tm_job_t *job, const char *name)
{
    return job_find_view((tm_job_t *)job, name);
}
