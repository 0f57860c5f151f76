/*
 * postgres.c — the PostgreSQL logical-replication source ("postgres-cdc").
 *
 * Role: the connector descriptor, its options table, and the life cycle
 * hooks.  source_open does every check that can fail with an actionable
 * message (DSN and password, wal_level, REPLICATION, tables, declared
 * columns, publication, slot) and prepares the snapshot; source_run runs the
 * snapshot (pg_snapshot.c) and then streams (pg_stream.c).
 *
 * Slot and snapshot state machine (state files under <state_dir>/postgres-<name>/):
 *
 *     slot missing ──CREATE_REPLICATION_SLOT … (SNAPSHOT 'export')──► write "slot.created"
 *          │                                                             │
 *          │ (mode never, or initial with snapshot.done: SNAPSHOT 'nothing')
 *          ▼                                                             ▼
 *     stream from the slot ◄── snapshot.done written once acked ≥ ── snapshot read in
 *                              consistent point                      REPEATABLE READ
 *
 * Invariants:
 *   1. snapshot.done names the slot it belongs to; a marker for another slot
 *      counts as missing.
 *   2. A slot that exists without snapshot.done, but that slot.created says we
 *      made for a snapshot, is from a snapshot that never completed: it is
 *      dropped and the snapshot redone, so no row is lost.
 *   3. The exported snapshot is imported on the normal connection before the
 *      replication connection runs any other command, and that transaction
 *      stays open until the snapshot has been read.
 *   4. initial_only creates no slot: a slot nobody consumes would hold WAL
 *      forever.  It reads a plain REPEATABLE READ snapshot and stops.
 *
 * Thread: source_new/open/describe/free on the main thread, source_run on the
 * source thread.
 */
#include "postgres/postgres_int.h"

#include "core/buf.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/log.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static const tm_option_def_t pg_source_options[] = {
    {"dsn", TM_OPT_DSN, true, NULL, NULL,
     "libpq connection string or URI; the password may come from PGPASSWORD, a passfile, "
     "${env:NAME} or ${file:PATH}"},
    {"tables", TM_OPT_STRING, false, NULL, NULL,
     "comma-separated schema.table list to capture; schema.* captures every table of a schema"},
    {"table", TM_OPT_STRING, false, NULL, NULL,
     "the one schema.table to capture, used with declared columns"},
    {"slot", TM_OPT_STRING, false, NULL, NULL,
     "logical replication slot name (default tidemark_<table name>)"},
    {"publication", TM_OPT_STRING, false, NULL, NULL,
     "publication name (default tidemark_<table name>)"},
    {"create", TM_OPT_BOOL, false, "true", NULL,
     "create the slot and the publication when they are missing"},
    {"snapshot", TM_OPT_ENUM, false, "initial", "initial|never|initial_only|when_needed|always",
     "initial snapshot mode"},
    {"snapshot_chunk_size", TM_OPT_INT, false, "10000", NULL,
     "rows per primary-key chunk of the initial snapshot"},
    {"heartbeat_interval", TM_OPT_DURATION, false, "0", NULL,
     "how often to write a heartbeat message so the slot advances on idle tables (0 = off)"},
    {"status_interval", TM_OPT_DURATION, false, "10s", NULL,
     "how often to send standby status updates to the server"},
    {"streaming", TM_OPT_BOOL, false, "true", NULL,
     "stream large in-progress transactions (protocol 2) and spill them to disk"},
    {"binary", TM_OPT_BOOL, false, "true", NULL,
     "ask PostgreSQL 14+ for column values in binary, which costs the server less; a job "
     "capturing a column of a type without a binary decoder streams text"},
    {"reconnect_timeout", TM_OPT_DURATION, false, "5m", NULL,
     "how long to retry a lost connection (backoff 0.5s to 30s) before failing"},
    {"signal_table", TM_OPT_STRING, false, NULL, NULL,
     "schema.table of a Debezium signal table; an execute-snapshot row inserted there starts an "
     "incremental snapshot"},
    {"schemas", TM_OPT_BOOL, false, "true", NULL,
     "include the schema part in Debezium JSON (schemas.enable)"},
    {"decimal_handling", TM_OPT_ENUM, false, "precise", "precise|string|double",
     "Debezium decimal.handling.mode"},
    {"time_precision", TM_OPT_ENUM, false, "adaptive", "adaptive|connect",
     "Debezium time.precision.mode"},
    TM_SOURCE_OPT_WATERMARK,
    TM_SOURCE_OPT_IDLE_TIMEOUT,
    {NULL, 0, false, NULL, NULL, NULL},
};

/* ---- Small helpers ---- */

/*
 * Parses one identifier (plain or double-quoted) at *p, stopping at '.' or the
 * end.  Plain identifiers are taken literally (no case folding), because that
 * is what users copy from \dt output.
 */
static char *parse_ident(const char **p, const char *end)
{
    const char *s = *p;
    char *out = malloc((size_t)(end - s) + 1), *o = out;
    if (out == NULL)
        return NULL;
    if (s < end && *s == '"') {
        s++;
        while (s < end) {
            if (*s == '"') {
                if (s + 1 < end && s[1] == '"') {
                    *o++ = '"';
                    s += 2;
                    continue;
                }
                s++;
                break;
            }
            *o++ = *s++;
        }
    } else {
        while (s < end && *s != '.')
            *o++ = *s++;
    }
    *o = '\0';
    *p = s;
    return out;
}

static int parse_spec(const char *s, size_t len, tm_pg_tablespec_t *spec)
{
    const char *p = s, *end = s + len;
    memset(spec, 0, sizeof(*spec));
    char *first = parse_ident(&p, end);
    if (first == NULL)
        return TM_ENOMEM;
    if (p == end) {
        spec->nspname = strdup("public");
        spec->relname = first;
    } else if (*p == '.') {
        p++;
        spec->nspname = first;
        if (end - p == 1 && *p == '*') {
            spec->relname = NULL;
            p++;
        } else {
            spec->relname = parse_ident(&p, end);
            if (spec->relname == NULL)
                return TM_ENOMEM;
        }
    } else {
        free(first);
        return TM_EINVAL;
    }
    if (spec->nspname == NULL || p != end || spec->nspname[0] == '\0' ||
        (spec->relname != NULL && spec->relname[0] == '\0'))
        return TM_EINVAL;
    return 0;
}

static int parse_specs(tm_source_t *src, const char *optname, const char *value, char *errstr,
                       size_t errstr_size)
{
    const char *p = value, *start;
    size_t len;
    while (tm_opt_next_item(&p, '"', &start, &len)) {
        const char *end = start + len;
        tm_pg_tablespec_t *v = realloc(src->specs, sizeof(*v) * (size_t)(src->nspecs + 1));
        if (v == NULL)
            return TM_ENOMEM;
        src->specs = v;
        tm_pg_tablespec_t *spec = &src->specs[src->nspecs++];
        int rc = parse_spec(start, (size_t)(end - start), spec);
        if (rc == TM_EINVAL)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': option '%s' has an invalid entry '%.*s'; write "
                             "schema.table or schema.* (comma-separated)",
                             src->name, optname, (int)(end - start), start);
        if (rc != 0)
            return rc;
    }
    if (src->nspecs == 0)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': option '%s' names no table; write schema.table",
                         src->name, optname);
    return 0;
}

static char *spec_display(const tm_pg_tablespec_t *s)
{
    return tm_asprintf("%s.%s", s->nspname, s->relname ? s->relname : "*");
}

/* ---- source_new ---- */

static void pg_source_free(tm_source_t *src);

static int pg_source_new(tm_source_t **out, const tm_source_config_t *cfg, char *errstr,
                         size_t errstr_size)
{
    const tm_options_t *o = cfg->opts;
    int rc;
    *out = NULL;
    tm_source_t *src = calloc(1, sizeof(*src));
    if (src == NULL)
        return TM_ENOMEM;
    src->name = strdup(cfg->name ? cfg->name : "postgres");
    src->restore_token = cfg->restore_token;
    /* The incremental snapshots' progress rides on the position (pg_incr.c, invariant 1). */
    const char *incr = cfg->restore_position ? strstr(cfg->restore_position, " incremental=")
                                             : NULL;
    if (incr != NULL && (src->incr_restore = strdup(incr + strlen(" incremental="))) == NULL) {
        pg_source_free(src);
        return TM_ENOMEM;
    }
    src->dsn = strdup(tm_opt_str(o, "dsn") ? tm_opt_str(o, "dsn") : "");
    src->dsn_masked = tm_dsn_mask(src->dsn);
    src->state_dir = tm_asprintf("%s/postgres-%s", cfg->state_dir ? cfg->state_dir : ".",
                               cfg->name ? cfg->name : "postgres");
    const char *slot = tm_opt_str(o, "slot"), *pub = tm_opt_str(o, "publication");
    src->slot = slot ? strdup(slot) : tm_asprintf("tidemark_%s", src->name);
    src->publication = pub ? strdup(pub) : tm_asprintf("tidemark_%s", src->name);
    if (!src->name || !src->dsn || !src->dsn_masked || !src->state_dir || !src->slot ||
        !src->publication) {
        pg_source_free(src);
        return TM_ENOMEM;
    }
    src->create = tm_opt_bool(o, "create");
    src->streaming = tm_opt_bool(o, "streaming");
    src->binary = tm_opt_bool(o, "binary");
    src->chunk_size = tm_opt_int(o, "snapshot_chunk_size");
    src->heartbeat_ms = tm_opt_duration_ms(o, "heartbeat_interval");
    src->status_ms = tm_opt_duration_ms(o, "status_interval");
    src->reconnect_ms = tm_opt_duration_ms(o, "reconnect_timeout");
    const char *mode = tm_opt_str(o, "snapshot");
    if (mode == NULL || strcmp(mode, "initial") == 0)
        src->snapmode = TM_PG_SNAP_INITIAL;
    else if (strcmp(mode, "never") == 0)
        src->snapmode = TM_PG_SNAP_NEVER;
    else if (strcmp(mode, "initial_only") == 0)
        src->snapmode = TM_PG_SNAP_INITIAL_ONLY;
    else if (strcmp(mode, "always") == 0)
        src->snapmode = TM_PG_SNAP_ALWAYS;
    else
        src->snapmode = TM_PG_SNAP_WHEN_NEEDED;

    if (src->chunk_size < 1 || src->chunk_size > 10000000) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'snapshot_chunk_size' = %" PRId64
                       " is out of range; use 1 to 10000000 rows",
                       src->name, src->chunk_size);
        goto fail;
    }
    if (src->heartbeat_ms < 0 || src->reconnect_ms < 0) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': heartbeat_interval and reconnect_timeout must not be negative",
                       src->name);
        goto fail;
    }
    if (src->status_ms <= 0 || src->status_ms > 3600000) {
        /* Without status updates a back-pressured connection hits wal_sender_timeout. */
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'status_interval' must be between 1ms and 1h (keep it "
                       "well below the server's wal_sender_timeout)",
                       src->name);
        goto fail;
    }
    if (strlen(src->slot) > 63 || src->slot[0] == '\0' ||
        strspn(src->slot, "abcdefghijklmnopqrstuvwxyz0123456789_") != strlen(src->slot)) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': slot name '%s' is invalid; PostgreSQL slot names use only "
                       "lower-case letters, digits and underscores (at most 63); set option "
                       "'slot'",
                       src->name, src->slot);
        goto fail;
    }
    const char *tables = tm_opt_str(o, "tables"), *table = tm_opt_str(o, "table");
    if (tables != NULL && table != NULL) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': set either 'tables' or 'table', not both", src->name);
        goto fail;
    }
    if (tables == NULL && table == NULL) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'tables' is required (e.g. tables = 'public.orders, "
                       "public.customers'), or 'table' with declared columns",
                       src->name);
        goto fail;
    }
    if ((rc = parse_specs(src, table ? "table" : "tables", table ? table : tables, errstr,
                          errstr_size)) != 0)
        goto fail;
    const char *signal = tm_opt_str(o, "signal_table");
    if (signal != NULL) {
        tm_pg_tablespec_t sig;
        rc = parse_spec(signal, strlen(signal), &sig);
        if (rc != 0 || sig.relname == NULL) {
            free(sig.nspname);
            free(sig.relname);
            rc = rc == TM_ENOMEM ? rc
                                 : tm_seterr(errstr, errstr_size, TM_ECONFIG,
                                             "table '%s': option 'signal_table' = '%s' must name "
                                             "one schema.table",
                                             src->name, signal);
            goto fail;
        }
        src->signal_nsp = sig.nspname;
        src->signal_rel = sig.relname;
    }
    if (table != NULL && (src->nspecs != 1 || src->specs[0].relname == NULL)) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'table' must name exactly one schema.table", src->name);
        goto fail;
    }
    if (cfg->declared != NULL && cfg->declared->ncols > 0) {
        if (src->nspecs != 1 || src->specs[0].relname == NULL) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s' declares columns, so it must capture exactly one table: "
                           "use table = 'schema.table'",
                           src->name);
            goto fail;
        }
        src->declared = tm_schema_clone(cfg->declared);
        if (src->declared == NULL) {
            rc = TM_ENOMEM;
            goto fail;
        }
    }
    *out = src;
    return 0;
fail:
    pg_source_free(src);
    return rc;
}

/* ---- State files ---- */

static int write_file_atomic(const char *dir, const char *name, const char *content,
                             char *errstr, size_t errstr_size)
{
    if (tm_write_file_atomic(dir, name, content, strlen(content)) != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot write %s/%s: %s", dir, name,
                         strerror(errno));
    return 0;
}

/* Reads the first line of <state>/<name> into buf; false if absent. */
static bool read_first_line(const tm_source_t *src, const char *name, char *buf, size_t buflen)
{
    char *path = tm_asprintf("%s/%s", src->state_dir, name);
    if (path == NULL)
        return false;
    FILE *f = fopen(path, "r");
    free(path);
    if (f == NULL)
        return false;
    bool ok = fgets(buf, (int)buflen, f) != NULL;
    fclose(f);
    if (ok)
        buf[strcspn(buf, "\n")] = '\0';
    return ok;
}

bool tm_pg_marker_exists(const tm_source_t *src)
{
    char line[128];
    return read_first_line(src, "snapshot.done", line, sizeof(line)) &&
           strcmp(line, src->slot) == 0;
}

int tm_pg_marker_write(tm_source_t *src, char *errstr, size_t errstr_size)
{
    char lsn[24];
    char *content = tm_asprintf("%s\n%s\n", src->slot, tm_pg_lsn_format(src->snapshot_lsn, lsn));
    if (content == NULL)
        return TM_ENOMEM;
    int rc = write_file_atomic(src->state_dir, "snapshot.done", content, errstr, errstr_size);
    free(content);
    return rc;
}

static bool slot_created_by_us(const tm_source_t *src)
{
    char line[128];
    return read_first_line(src, "slot.created", line, sizeof(line)) &&
           strcmp(line, src->slot) == 0;
}

static int remove_state(const tm_source_t *src, const char *name)
{
    char *path = tm_asprintf("%s/%s", src->state_dir, name);
    if (path == NULL)
        return TM_ENOMEM;
    unlink(path);
    free(path);
    return 0;
}

/* ---- source_open: checks ---- */

static PGresult *query(PGconn *conn, const char *sql, int nparams, const char *const *params)
{
    return PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
}

static int query_failed(PGresult *res, const char *what, char *errstr, size_t errstr_size)
{
    char mbuf[512];
    int rc = tm_seterr(errstr, errstr_size, TM_ESOURCE, "cannot %s: %s", what,
                       tm_pg_msg(PQresultErrorMessage(res), mbuf, sizeof(mbuf)));
    PQclear(res);
    return rc;
}

static int check_server(tm_source_t *src, bool need_replication, char *errstr,
                        size_t errstr_size)
{
    src->server_version = PQserverVersion(src->conn);
    PGresult *res = query(src->conn,
                          "SELECT current_database(), current_setting('wal_level'), "
                          "       current_user, "
                          "       (SELECT rolreplication OR rolsuper FROM pg_catalog.pg_roles "
                          "         WHERE rolname = current_user)",
                          0, NULL);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return query_failed(res, "read the server settings", errstr, errstr_size);
    free(src->dbname);
    src->dbname = strdup(PQgetvalue(res, 0, 0));
    bool logical = strcmp(PQgetvalue(res, 0, 1), "logical") == 0;
    bool repl_role = PQgetvalue(res, 0, 3)[0] == 't';
    char wal_level[32], user[128];
    snprintf(wal_level, sizeof(wal_level), "%s", PQgetvalue(res, 0, 1));
    snprintf(user, sizeof(user), "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
    if (src->dbname == NULL)
        return TM_ENOMEM;
    if (src->server_version < 100000)
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "PostgreSQL %d.%d is too old: logical replication with pgoutput needs "
                         "PostgreSQL 10 or later (15 is tested)",
                         src->server_version / 10000, src->server_version / 100 % 100);
    if (!need_replication)
        return 0;
    if (!logical)
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "the server's wal_level is '%s', but logical decoding needs 'logical'; "
                         "set wal_level = logical in postgresql.conf and restart the server",
                         wal_level);
    if (!repl_role) {
        char *q = tm_pg_quote_ident(user);
        int rc = tm_seterr(errstr, errstr_size, TM_ESOURCE,
                           "role '%s' may not use replication; run ALTER ROLE %s REPLICATION "
                           "as a superuser, or connect as a role that has it",
                           user, q ? q : user);
        free(q);
        return rc;
    }
    return 0;
}

static int add_table(tm_source_t *src, const char *oid, const char *nsp, const char *rel,
                     const char *reltuples)
{
    for (int i = 0; i < src->ntables; i++)
        if (src->tables[i].relid == (uint32_t)strtoul(oid, NULL, 10))
            return 0;
    tm_pg_table_t *v = realloc(src->tables, sizeof(*v) * (size_t)(src->ntables + 1));
    if (v == NULL)
        return TM_ENOMEM;
    src->tables = v;
    tm_pg_table_t *t = &src->tables[src->ntables];
    t->relid = (uint32_t)strtoul(oid, NULL, 10);
    t->nspname = strdup(nsp);
    t->relname = strdup(rel);
    t->reltuples = strtod(reltuples, NULL);
    if (t->nspname == NULL || t->relname == NULL) {
        free(t->nspname);
        free(t->relname);
        return TM_ENOMEM;
    }
    src->ntables++;
    return 0;
}

static void free_tables(tm_source_t *src)
{
    for (int i = 0; i < src->ntables; i++) {
        free(src->tables[i].nspname);
        free(src->tables[i].relname);
    }
    free(src->tables);
    src->tables = NULL;
    src->ntables = 0;
}

/* Resolves the `tables` option into concrete tables; named tables must exist. */
static int resolve_tables(tm_source_t *src, char *errstr, size_t errstr_size)
{
    free_tables(src);
    for (int i = 0; i < src->nspecs; i++) {
        const tm_pg_tablespec_t *s = &src->specs[i];
        const char *params[2] = {s->nspname, s->relname};
        PGresult *res;
        if (s->relname != NULL)
            res = query(src->conn,
                        "SELECT c.oid, n.nspname, c.relname, c.reltuples, c.relkind "
                        "  FROM pg_catalog.pg_class c "
                        "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                        " WHERE n.nspname = $1 AND c.relname = $2",
                        2, params);
        else
            res = query(src->conn,
                        "SELECT c.oid, n.nspname, c.relname, c.reltuples, c.relkind "
                        "  FROM pg_catalog.pg_namespace n "
                        "  LEFT JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid "
                        "       AND c.relkind IN ('r', 'p') AND NOT c.relispartition "
                        " WHERE n.nspname = $1 ORDER BY c.relname",
                        1, params);
        if (PQresultStatus(res) != PGRES_TUPLES_OK)
            return query_failed(res, "look up the captured tables", errstr, errstr_size);
        int rows = PQntuples(res);
        if (rows == 0) {
            PQclear(res);
            if (s->relname != NULL)
                return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                                 "table '%s': table %s.%s does not exist in database '%s'; check "
                                 "option '%s' (names are case-sensitive; quote them as "
                                 "\"Name\" if they were created quoted)",
                                 src->name, s->nspname, s->relname, src->dbname,
                                 src->declared ? "table" : "tables");
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': schema %s does not exist in database '%s'; check "
                             "option 'tables'",
                             src->name, s->nspname, src->dbname);
        }
        if (s->relname != NULL) {
            char kind = PQgetvalue(res, 0, 4)[0];
            if (kind != 'r' && kind != 'p') {
                PQclear(res);
                return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                                 "table '%s': %s.%s is not a table (relkind '%c'); logical "
                                 "replication captures only tables",
                                 src->name, s->nspname, s->relname, kind);
            }
        }
        int rc = 0;
        bool empty_schema = s->relname == NULL && rows == 1 && PQgetisnull(res, 0, 0);
        for (int r = 0; r < rows && rc == 0; r++)
            if (!PQgetisnull(res, r, 0))
                rc = add_table(src, PQgetvalue(res, r, 0), PQgetvalue(res, r, 1),
                               PQgetvalue(res, r, 2), PQgetvalue(res, r, 3));
        PQclear(res);
        if (rc != 0)
            return rc;
        if (empty_schema)
            TM_WARN(TM_PG_COMP, "schema has no tables yet", "source=%s schema=%s", src->name,
                    s->nspname);
    }
    return 0;
}

bool tm_pg_types_compatible(tm_type_t declared, tm_type_t actual)
{
    if (declared == actual)
        return true;
    bool d_int = declared == TM_T_INT16 || declared == TM_T_INT32 || declared == TM_T_INT64;
    bool a_int = actual == TM_T_INT16 || actual == TM_T_INT32 || actual == TM_T_INT64;
    switch (declared) {
    case TM_T_INT16:
    case TM_T_INT32:
    case TM_T_INT64:
        return a_int;
    case TM_T_FLOAT32:
    case TM_T_FLOAT64:
        return actual == TM_T_FLOAT32 || actual == TM_T_FLOAT64 || a_int ||
               actual == TM_T_NUMERIC;
    case TM_T_NUMERIC:
        return a_int || actual == TM_T_NUMERIC;
    case TM_T_TEXT:
        /* Anything with a text form can be read as text. */
        return actual != TM_T_BYTES;
    case TM_T_JSON:
        return actual == TM_T_TEXT;
    case TM_T_TIMESTAMP:
    case TM_T_TIMESTAMPTZ:
        return actual == TM_T_TIMESTAMP || actual == TM_T_TIMESTAMPTZ;
    case TM_T_TIME:
    case TM_T_TIMETZ:
        return actual == TM_T_TIME || actual == TM_T_TIMETZ;
    default:
        (void)d_int;
        return false;
    }
}

static int check_declared(tm_source_t *src, char *errstr, size_t errstr_size)
{
    if (src->declared == NULL || src->ntables != 1)
        return 0;
    tm_schema_t *s = NULL;
    tm_pg_coltype_t *ct = NULL;
    char replident, *rowfilter = NULL;
    int rc = tm_pg_schema_from_catalog(src, &src->tables[0], &s, &ct, &replident, &rowfilter,
                                       errstr, errstr_size);
    if (rc != 0)
        return rc;
    free(rowfilter);
    free(ct);
    for (int i = 0; i < src->declared->ncols && rc == 0; i++) {
        const tm_column_t *d = &src->declared->cols[i];
        int idx = tm_schema_find(s, d->name);
        if (idx < 0) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': declared column '%s' does not exist in %s.%s (or is not "
                           "published); fix the column list or the table name",
                           src->name, d->name, src->tables[0].nspname, src->tables[0].relname);
        } else if (d->type != 0 && !tm_pg_types_compatible(d->type, s->cols[idx].type)) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': declared column '%s' has type %s, but %s.%s.%s is %s "
                           "(%s); declare it as %s",
                           src->name, d->name, tm_type_name(d->type), src->tables[0].nspname,
                           src->tables[0].relname, d->name, s->cols[idx].db_type,
                           tm_type_name(s->cols[idx].type), tm_type_name(s->cols[idx].type));
        }
    }
    tm_schema_unref(s);
    return rc;
}

/* Builds "TABLE a, b, TABLES IN SCHEMA s" for CREATE/ALTER PUBLICATION. */
static char *publication_targets(const tm_source_t *src, const bool *only)
{
    tm_buf_t b;
    tm_buf_init(&b);
    bool first = true;
    for (int i = 0; i < src->nspecs; i++) {
        if (only != NULL && !only[i])
            continue;
        const tm_pg_tablespec_t *s = &src->specs[i];
        char *n = tm_pg_quote_ident(s->nspname);
        char *r = s->relname ? tm_pg_quote_ident(s->relname) : NULL;
        if (n == NULL || (s->relname && r == NULL)) {
            free(n);
            free(r);
            tm_buf_release(&b);
            return NULL;
        }
        if (s->relname)
            tm_buf_appendf(&b, "%sTABLE %s.%s", first ? "" : ", ", n, r);
        else
            tm_buf_appendf(&b, "%sTABLES IN SCHEMA %s", first ? "" : ", ", n);
        first = false;
        free(n);
        free(r);
    }
    if (tm_buf_putc(&b, '\0') != 0) {
        tm_buf_release(&b);
        return NULL;
    }
    return b.data;
}

static int ensure_publication(tm_source_t *src, char *errstr, size_t errstr_size)
{
    const char *p1[1] = {src->publication};
    char mbuf[512];
    PGresult *res = query(src->conn,
                          "SELECT oid, puballtables FROM pg_catalog.pg_publication "
                          "WHERE pubname = $1",
                          1, p1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return query_failed(res, "look up the publication", errstr, errstr_size);
    bool exists = PQntuples(res) == 1;
    bool alltables = exists && PQgetvalue(res, 0, 1)[0] == 't';
    char puboid[16] = "0";
    if (exists)
        snprintf(puboid, sizeof(puboid), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    char *qpub = tm_pg_quote_ident(src->publication);
    if (qpub == NULL)
        return TM_ENOMEM;
    int rc = 0;
    if (!exists) {
        char *targets = publication_targets(src, NULL);
        /*
         * Changes of a partition are published under the partitioned table's
         * name, which is the one the user listed (PostgreSQL 13 and later).
         */
        char *sql = targets ? tm_asprintf("CREATE PUBLICATION %s FOR %s%s", qpub, targets,
                                        src->server_version >= 130000
                                            ? " WITH (publish_via_partition_root = true)"
                                            : "")
                            : NULL;
        if (sql == NULL) {
            rc = TM_ENOMEM;
        } else if (!src->create) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': publication '%s' does not exist and create = false; ask "
                           "an administrator to run: %s",
                           src->name, src->publication, sql);
        } else {
            res = PQexec(src->conn, sql);
            if (PQresultStatus(res) != PGRES_COMMAND_OK)
                rc = tm_seterr(errstr, errstr_size, TM_ESOURCE,
                               "cannot create publication '%s' (%s): %s; the role needs CREATE "
                               "on the database and must own the tables (superuser for TABLES "
                               "IN SCHEMA), or an administrator can create it and you set "
                               "create = false",
                               src->publication, sql,
                               tm_pg_msg(PQresultErrorMessage(res), mbuf, sizeof(mbuf)));
            else
                TM_INFO(TM_PG_COMP, "created publication", "source=%s publication=%s",
                        src->name, src->publication);
            PQclear(res);
        }
        free(sql);
        free(targets);
        free(qpub);
        return rc;
    }
    if (alltables) {
        free(qpub);
        return 0;
    }
    /* The publication exists: find the specs it does not cover. */
    bool *missing = calloc((size_t)src->nspecs, sizeof(bool));
    int nmissing = 0;
    if (missing == NULL) {
        free(qpub);
        return TM_ENOMEM;
    }
    for (int i = 0; i < src->nspecs && rc == 0; i++) {
        const tm_pg_tablespec_t *s = &src->specs[i];
        const char *params[3] = {src->publication, s->nspname, s->relname};
        if (s->relname != NULL)
            res = query(src->conn,
                        "SELECT 1 FROM pg_catalog.pg_publication_tables "
                        "WHERE pubname = $1 AND schemaname = $2 AND tablename = $3",
                        3, params);
        else if (src->server_version >= 150000)
            res = query(src->conn,
                        "SELECT 1 FROM pg_catalog.pg_publication_namespace pn "
                        "  JOIN pg_catalog.pg_namespace n ON n.oid = pn.pnnspid "
                        "  JOIN pg_catalog.pg_publication p ON p.oid = pn.pnpubid "
                        " WHERE p.pubname = $1 AND n.nspname = $2",
                        2, params);
        else
            res = query(src->conn,
                        "SELECT 1 WHERE NOT EXISTS ("
                        "  SELECT 1 FROM pg_catalog.pg_class c "
                        "    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                        "   WHERE n.nspname = $2 AND c.relkind IN ('r','p') AND NOT EXISTS ("
                        "     SELECT 1 FROM pg_catalog.pg_publication_tables t "
                        "      WHERE t.pubname = $1 AND t.schemaname = n.nspname "
                        "        AND t.tablename = c.relname))",
                        2, params);
        if (PQresultStatus(res) != PGRES_TUPLES_OK) {
            rc = query_failed(res, "check the publication's tables", errstr, errstr_size);
            break;
        }
        if (PQntuples(res) == 0 && s->relname == NULL && !src->create) {
            /*
             * An administrator's publication that lists some tables of the
             * schema: capture those, and the ones added to it later (ALTER
             * PUBLICATION … ADD TABLE, pg_incr.c polls for them).
             */
            TM_WARN(TM_PG_COMP,
                    "publication covers only some tables of a schema; capturing those, and "
                    "tables an administrator adds to it later",
                    "source=%s publication=%s schema=%s", src->name, src->publication,
                    s->nspname);
            src->pub_partial = true;
        } else if (PQntuples(res) == 0) {
            missing[i] = true;
            nmissing++;
        }
        PQclear(res);
    }
    if (rc == 0 && nmissing > 0) {
        char *targets = publication_targets(src, missing);
        char *sql = targets ? tm_asprintf("ALTER PUBLICATION %s ADD %s", qpub, targets) : NULL;
        if (sql == NULL) {
            rc = TM_ENOMEM;
        } else if (!src->create) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': publication '%s' does not include %s and create = false; "
                           "ask an administrator to run: %s",
                           src->name, src->publication, targets, sql);
        } else {
            res = PQexec(src->conn, sql);
            if (PQresultStatus(res) != PGRES_COMMAND_OK)
                rc = tm_seterr(errstr, errstr_size, TM_ESOURCE,
                               "cannot add tables to publication '%s' (%s): %s; the role must "
                               "own the publication and the tables, or an administrator can "
                               "run that statement",
                               src->publication, sql,
                               tm_pg_msg(PQresultErrorMessage(res), mbuf, sizeof(mbuf)));
            else
                TM_INFO(TM_PG_COMP, "added tables to publication", "source=%s publication=%s",
                        src->name, src->publication);
            PQclear(res);
        }
        free(sql);
        free(targets);
    }
    free(missing);
    free(qpub);
    return rc;
}

/* ---- source_open: slot ---- */

typedef struct slotinfo {
    bool exists;
    bool active;
    int active_pid;
    char plugin[64];
    char type[16];
    char database[128];
    uint64_t confirmed_flush;
} slotinfo_t;

static int slot_lookup(tm_source_t *src, slotinfo_t *si, char *errstr, size_t errstr_size)
{
    memset(si, 0, sizeof(*si));
    const char *p[1] = {src->slot};
    PGresult *res = query(src->conn,
                          "SELECT plugin, slot_type, database, active, active_pid, "
                          "       confirmed_flush_lsn "
                          "  FROM pg_catalog.pg_replication_slots WHERE slot_name = $1",
                          1, p);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return query_failed(res, "look up the replication slot", errstr, errstr_size);
    if (PQntuples(res) == 1) {
        si->exists = true;
        snprintf(si->plugin, sizeof(si->plugin), "%s", PQgetvalue(res, 0, 0));
        snprintf(si->type, sizeof(si->type), "%s", PQgetvalue(res, 0, 1));
        snprintf(si->database, sizeof(si->database), "%s", PQgetvalue(res, 0, 2));
        si->active = PQgetvalue(res, 0, 3)[0] == 't';
        si->active_pid = atoi(PQgetvalue(res, 0, 4));
        if (!PQgetisnull(res, 0, 5))
            tm_pg_lsn_parse(PQgetvalue(res, 0, 5), &si->confirmed_flush);
    }
    PQclear(res);
    return 0;
}

static int slot_check(tm_source_t *src, slotinfo_t *si, char *errstr, size_t errstr_size)
{
    if (!si->exists)
        return 0;
    if (strcmp(si->type, "logical") != 0 || strcmp(si->plugin, "pgoutput") != 0 ||
        strcmp(si->database, src->dbname) != 0)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': replication slot '%s' exists but is a %s slot of plugin "
                         "'%s' in database '%s', not a pgoutput slot of database '%s'; choose "
                         "another slot name with option 'slot'",
                         src->name, src->slot, si->type, si->plugin, si->database, src->dbname);
    /* A previous run of ours may still be shutting down: give its walsender a moment. */
    for (int tries = 0; si->active && tries < 10; tries++) {
        usleep(500000);
        int rc = slot_lookup(src, si, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    if (si->exists && si->active && si->active_pid != PQbackendPID(src->repl))
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "replication slot '%s' is active for PID %d; stop the other consumer or "
                         "choose another slot with option 'slot'",
                         src->slot, si->active_pid);
    return 0;
}

static int drop_slot(tm_source_t *src, char *errstr, size_t errstr_size)
{
    char *q = tm_pg_quote_ident(src->slot);
    char *sql = q ? tm_asprintf("DROP_REPLICATION_SLOT %s", q) : NULL;
    free(q);
    if (sql == NULL)
        return TM_ENOMEM;
    int rc = tm_pg_exec(src->repl, sql, errstr, errstr_size);
    free(sql);
    return rc;
}

/*
 * Creates the slot.  With `export`, imports the exported snapshot into a
 * REPEATABLE READ transaction on the normal connection right away (invariant
 * 3) and records the consistent point.
 */
static int create_slot(tm_source_t *src, bool export, char *errstr, size_t errstr_size)
{
    char mbuf[512];
    char *q = tm_pg_quote_ident(src->slot);
    if (q == NULL)
        return TM_ENOMEM;
    char *sql;
    if (src->server_version >= 150000)
        sql = tm_asprintf("CREATE_REPLICATION_SLOT %s LOGICAL pgoutput (SNAPSHOT '%s')", q,
                        export ? "export" : "nothing");
    else
        sql = tm_asprintf("CREATE_REPLICATION_SLOT %s LOGICAL pgoutput %s", q,
                        export ? "EXPORT_SNAPSHOT" : "NOEXPORT_SNAPSHOT");
    free(q);
    if (sql == NULL)
        return TM_ENOMEM;
    if (export) {
        /* Written before the slot exists, so a crash in between is seen as "ours". */
        char *content = tm_asprintf("%s\n", src->slot);
        int rc = content ? write_file_atomic(src->state_dir, "slot.created", content, errstr,
                                             errstr_size)
                         : TM_ENOMEM;
        free(content);
        if (rc != 0) {
            free(sql);
            return rc;
        }
    }
    PGresult *res = PQexec(src->repl, sql);
    free(sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        const char *m = tm_pg_msg(PQresultErrorMessage(res), mbuf, sizeof(mbuf));
        int rc = tm_seterr(errstr, errstr_size, TM_ESOURCE,
                           "cannot create replication slot '%s': %s%s", src->slot, m,
                           strstr(m, "max_replication_slots")
                               ? "; raise max_replication_slots in postgresql.conf or drop "
                                 "unused slots"
                               : "");
        PQclear(res);
        return rc;
    }
    uint64_t lsn = 0;
    tm_pg_lsn_parse(PQgetvalue(res, 0, 1), &lsn);
    char snapname[128];
    snprintf(snapname, sizeof(snapname), "%s", PQgetisnull(res, 0, 2) ? "" : PQgetvalue(res, 0, 2));
    PQclear(res);
    char lsnbuf[24];
    TM_INFO(TM_PG_COMP, "created replication slot", "source=%s slot=%s consistent_point=%s",
            src->name, src->slot, tm_pg_lsn_format(lsn, lsnbuf));
    src->snapshot_lsn = lsn;
    if (!export)
        return 0;
    int rc = tm_pg_exec(src->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", errstr,
                        errstr_size);
    if (rc != 0)
        return rc;
    char *lit = tm_pg_quote_literal(snapname);
    char *set = lit ? tm_asprintf("SET TRANSACTION SNAPSHOT %s", lit) : NULL;
    free(lit);
    if (set == NULL)
        return TM_ENOMEM;
    rc = tm_pg_exec(src->conn, set, errstr, errstr_size);
    free(set);
    if (rc != 0)
        return rc;
    src->snapshot_exported = true;
    return 0;
}

/* A snapshot that is not tied to a new slot: plain REPEATABLE READ. */
static int begin_plain_snapshot(tm_source_t *src, uint64_t ack_lsn, char *errstr,
                                size_t errstr_size)
{
    int rc = tm_pg_exec(src->conn, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", errstr,
                        errstr_size);
    if (rc != 0)
        return rc;
    src->snapshot_exported = true;
    if (ack_lsn != 0) {
        src->snapshot_lsn = ack_lsn;
        return 0;
    }
    PGresult *res = PQexec(src->conn, "SELECT pg_catalog.pg_current_wal_lsn()");
    if (PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1)
        tm_pg_lsn_parse(PQgetvalue(res, 0, 0), &src->snapshot_lsn);
    PQclear(res);
    if (src->snapshot_lsn == 0)
        src->snapshot_lsn = 1; /* a standby has no current LSN; any non-zero token works */
    return 0;
}

static int plan_slot_and_snapshot(tm_source_t *src, char *errstr, size_t errstr_size)
{
    slotinfo_t si;
    int rc;
    bool marker = tm_pg_marker_exists(src);

    if (src->snapmode == TM_PG_SNAP_INITIAL_ONLY) {
        src->slot_for_streaming = false;
        if (marker) {
            TM_INFO(TM_PG_COMP, "snapshot already done; nothing to do",
                    "source=%s mode=initial_only", src->name);
            src->do_snapshot = false;
            return 0;
        }
        src->do_snapshot = true;
        return begin_plain_snapshot(src, 0, errstr, errstr_size);
    }
    src->slot_for_streaming = true;
    if ((rc = slot_lookup(src, &si, errstr, errstr_size)) != 0 ||
        (rc = slot_check(src, &si, errstr, errstr_size)) != 0)
        return rc;

    /*
     * The checkpoint that committed the snapshot completed, but the process
     * died before snapshot.done was written: the snapshot is in the sinks,
     * so it is done (reading it again would repeat every row).  No barrier
     * passes during a snapshot, so a restored token at or past the slot's
     * position can only come from a checkpoint after the snapshot.
     */
    if (si.exists && !marker && src->snapmode != TM_PG_SNAP_NEVER && slot_created_by_us(src) &&
        src->restore_token != 0 && src->restore_token >= si.confirmed_flush) {
        TM_INFO(TM_PG_COMP, "snapshot was committed by the restored checkpoint; marking it done",
                "source=%s slot=%s", src->name, src->slot);
        src->snapshot_lsn = si.confirmed_flush;
        if ((rc = tm_pg_marker_write(src, errstr, errstr_size)) != 0)
            return rc;
        marker = true;
    }
    if (si.exists && !marker && src->snapmode != TM_PG_SNAP_NEVER && slot_created_by_us(src)) {
        TM_WARN(TM_PG_COMP, "dropping slot of an unfinished snapshot and starting over",
                "source=%s slot=%s", src->name, src->slot);
        if ((rc = drop_slot(src, errstr, errstr_size)) != 0)
            return rc;
        si.exists = false;
    }
    if (!si.exists && !src->create)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': replication slot '%s' does not exist and create = false; "
                         "create it with SELECT pg_create_logical_replication_slot('%s', "
                         "'pgoutput') or set create = true",
                         src->name, src->slot, src->slot);

    switch (src->snapmode) {
    case TM_PG_SNAP_NEVER:
        src->do_snapshot = false;
        return si.exists ? 0 : create_slot(src, false, errstr, errstr_size);
    case TM_PG_SNAP_INITIAL:
        if (si.exists && marker) {
            src->do_snapshot = false;
            return 0;
        }
        if (!si.exists && marker) {
            TM_WARN(TM_PG_COMP,
                    "slot is missing although the snapshot was done; streaming from now on, "
                    "changes made while the slot was gone are lost (use snapshot = "
                    "'when_needed' to re-read the tables)",
                    "source=%s slot=%s", src->name, src->slot);
            src->do_snapshot = false;
            return create_slot(src, false, errstr, errstr_size);
        }
        break;
    case TM_PG_SNAP_ALWAYS:
        if (si.exists && marker) {
            /*
             * Re-read the tables, then stream from the slot's position:
             * changes in between may arrive twice, which the upsert
             * operator of a job with a primary key drops as duplicates.
             */
            char at[24];
            TM_INFO(TM_PG_COMP, "snapshot = 'always': reading the tables again",
                    "source=%s slot=%s confirmed_flush=%s", src->name, src->slot,
                    tm_pg_lsn_format(si.confirmed_flush, at));
            src->do_snapshot = true;
            return begin_plain_snapshot(src, si.confirmed_flush, errstr, errstr_size);
        }
        break;
    case TM_PG_SNAP_WHEN_NEEDED:
        if (si.exists && marker) {
            src->do_snapshot = false;
            return 0;
        }
        if (!si.exists && marker) {
            TM_WARN(TM_PG_COMP,
                    "slot is missing although the snapshot was done; taking a new snapshot "
                    "because changes made while the slot was gone would be lost",
                    "source=%s slot=%s mode=when_needed", src->name, src->slot);
            remove_state(src, "snapshot.done");
        }
        break;
    default:
        break;
    }
    src->do_snapshot = true;
    if (!si.exists)
        return create_slot(src, true, errstr, errstr_size);
    /*
     * The slot exists but was not made by us for a snapshot (an administrator
     * created it, or the state directory is new).  Its snapshot cannot be
     * exported any more, so read the tables now and stream from the slot's
     * position: changes between the two may be delivered twice, never lost.
     */
    char lsn[24];
    TM_WARN(TM_PG_COMP,
            "slot exists without a completed snapshot; reading the tables now, changes since "
            "the slot's position may appear twice",
            "source=%s slot=%s confirmed_flush=%s", src->name, src->slot,
            tm_pg_lsn_format(si.confirmed_flush, lsn));
    return begin_plain_snapshot(src, si.confirmed_flush, errstr, errstr_size);
}

/*
 * The signal table's inserts must reach the stream, so it must be in the
 * publication (its changes are emitted only if `tables` captures it too).
 */
static int ensure_signal_table(tm_source_t *src, char *errstr, size_t errstr_size)
{
    if (src->signal_nsp == NULL)
        return 0;
    const char *params[3] = {src->publication, src->signal_nsp, src->signal_rel};
    PGresult *res = query(src->conn,
                          "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_class c "
                          "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                          " WHERE n.nspname = $2 AND c.relname = $3), "
                          "       EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables "
                          " WHERE pubname = $1 AND schemaname = $2 AND tablename = $3)",
                          3, params);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return query_failed(res, "look up the signal table", errstr, errstr_size);
    bool exists = PQgetvalue(res, 0, 0)[0] == 't', published = PQgetvalue(res, 0, 1)[0] == 't';
    PQclear(res);
    if (!exists)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': signal table %s.%s does not exist; create it as Debezium "
                         "does: CREATE TABLE %s.%s (id varchar(42) PRIMARY KEY, type "
                         "varchar(32) NOT NULL, data varchar(2048))",
                         src->name, src->signal_nsp, src->signal_rel, src->signal_nsp,
                         src->signal_rel);
    if (published)
        return 0;
    char *qp = tm_pg_quote_ident(src->publication), *qn = tm_pg_quote_ident(src->signal_nsp),
         *qr = tm_pg_quote_ident(src->signal_rel);
    char *sql = qp && qn && qr ? tm_asprintf("ALTER PUBLICATION %s ADD TABLE %s.%s", qp, qn, qr)
                               : NULL;
    free(qp);
    free(qn);
    free(qr);
    if (sql == NULL)
        return TM_ENOMEM;
    int rc = 0;
    if (!src->create) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': publication '%s' does not include the signal table and "
                       "create = false; ask an administrator to run: %s",
                       src->name, src->publication, sql);
    } else {
        char mbuf[512];
        res = PQexec(src->conn, sql);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = tm_seterr(errstr, errstr_size, TM_ESOURCE,
                           "cannot add the signal table to publication '%s' (%s): %s",
                           src->publication, sql,
                           tm_pg_msg(PQresultErrorMessage(res), mbuf, sizeof(mbuf)));
        PQclear(res);
    }
    free(sql);
    return rc;
}

/* With a publication that lists only some tables of a captured schema: only those. */
static int keep_published_tables(tm_source_t *src, char *errstr, size_t errstr_size)
{
    if (!src->pub_partial)
        return 0;
    const char *p1[1] = {src->publication};
    PGresult *res = query(src->conn,
                          "SELECT schemaname, tablename FROM pg_catalog.pg_publication_tables "
                          "WHERE pubname = $1",
                          1, p1);
    if (PQresultStatus(res) != PGRES_TUPLES_OK)
        return query_failed(res, "read the publication's tables", errstr, errstr_size);
    int kept = 0;
    for (int i = 0; i < src->ntables; i++) {
        bool in = false;
        for (int r = 0; r < PQntuples(res) && !in; r++)
            in = strcmp(PQgetvalue(res, r, 0), src->tables[i].nspname) == 0 &&
                 strcmp(PQgetvalue(res, r, 1), src->tables[i].relname) == 0;
        if (in) {
            src->tables[kept++] = src->tables[i];
        } else {
            free(src->tables[i].nspname);
            free(src->tables[i].relname);
        }
    }
    src->ntables = kept;
    PQclear(res);
    return 0;
}

static int pg_source_open(tm_source_t *src, char *errstr, size_t errstr_size)
{
    int rc;
    bool need_repl = src->snapmode != TM_PG_SNAP_INITIAL_ONLY;
    if ((rc = tm_mkdir_p(src->state_dir, 0700)) != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot create state directory %s: %s",
                         src->state_dir, strerror(errno));
    if ((rc = tm_pg_connect(src, false, &src->conn, errstr, errstr_size)) != 0)
        return rc == TM_ECONN ? TM_ESOURCE : rc;
    if (src->types == NULL && (src->types = tm_pg_typecache_new()) == NULL)
        return TM_ENOMEM;
    if ((rc = check_server(src, need_repl, errstr, errstr_size)) != 0 ||
        (rc = resolve_tables(src, errstr, errstr_size)) != 0 ||
        (rc = check_declared(src, errstr, errstr_size)) != 0)
        return rc;
    if (need_repl) {
        if ((rc = ensure_publication(src, errstr, errstr_size)) != 0 ||
            (rc = keep_published_tables(src, errstr, errstr_size)) != 0 ||
            (rc = ensure_signal_table(src, errstr, errstr_size)) != 0)
            return rc;
        if ((rc = tm_pg_connect(src, true, &src->repl, errstr, errstr_size)) != 0)
            return rc == TM_ECONN ? TM_ESOURCE : rc;
    }
    if ((rc = plan_slot_and_snapshot(src, errstr, errstr_size)) != 0)
        return rc;
    if (src->slot_for_streaming && (rc = tm_pg_incr_register(src)) != 0)
        return rc;
    char lsn[24];
    TM_INFO(TM_PG_COMP, "source opened",
            "source=%s dsn=\"%s\" db=%s tables=%d slot=%s publication=%s snapshot=%s lsn=%s",
            src->name, src->dsn_masked, src->dbname, src->ntables,
            src->slot_for_streaming ? src->slot : "-", need_repl ? src->publication : "-",
            src->do_snapshot ? "yes" : "no", tm_pg_lsn_format(src->snapshot_lsn, lsn));
    return 0;
}

/* ---- source_run ---- */

static int wait_acked(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    /*
     * The end of a bounded input is the end of event time (Flink's
     * MAX_WATERMARK): windows fire now, before the barriers below, so their
     * results are part of the checkpoint that acknowledges the snapshot
     * (output that only on_end produced would come after the last one).
     */
    bool wm_sent = !src->marker_pending;
    while (src->marker_pending) {
        if (!wm_sent) {
            int wrc = tm_source_emit_watermark(ctx, INT64_MAX, 100);
            if (wrc == TM_ESTOPPED)
                return 0;
            if (wrc != 0 && wrc != TM_EAGAIN)
                return tm_seterr(errstr, errstr_size, wrc,
                                 "postgres source %s: cannot emit the end-of-input watermark (%s)",
                                 src->name, tm_strerror(wrc));
            wm_sent = wrc == 0;
            continue;
        }
        if (tm_source_should_stop(ctx))
            return 0;
        /*
         * With checkpoints the acknowledgement comes from a completed
         * checkpoint, and this source is the one that injects its barriers:
         * keep injecting them (at the snapshot's position: everything was
         * emitted), or the job waits for itself forever.
         */
        uint64_t id = tm_source_barrier_due(ctx);
        if (id != 0) {
            char pos[24];
            int brc = tm_source_emit_barrier(ctx, id, src->snapshot_lsn,
                                             tm_pg_lsn_format(src->snapshot_lsn, pos), 100);
            if (brc == TM_ESTOPPED)
                return 0;
            if (brc != 0 && brc != TM_EAGAIN)
                return tm_seterr(errstr, errstr_size, brc,
                                 "postgres source %s: cannot inject a checkpoint barrier (%s)",
                                 src->name, tm_strerror(brc));
        }
        int rc = tm_pg_marker_check(src, ctx, errstr, errstr_size);
        if (rc != 0)
            return rc;
        if (src->marker_pending)
            usleep(50000);
    }
    return 0;
}

static int run_source(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    int rc = 0;
    if (src->do_snapshot) {
        /* Ready means streaming; a bounded initial_only job is ready while it reads. */
        if (!src->slot_for_streaming)
            tm_source_set_ready(ctx, true);
        rc = tm_pg_snapshot_run(src, ctx, errstr, errstr_size);
        if (rc != 0)
            return rc == TM_ESTOPPED ? 0 : rc;
        if (tm_source_should_stop(ctx))
            return 0;
    }
    if (!src->slot_for_streaming) {
        /* initial_only: the job ends once the snapshot is durable downstream. */
        tm_source_set_ready(ctx, true);
        rc = wait_acked(src, ctx, errstr, errstr_size);
        if (rc == 0 && !src->marker_pending && src->do_snapshot)
            TM_INFO(TM_PG_COMP, "snapshot complete; initial_only source finished", "source=%s",
                    src->name);
        return rc;
    }
    rc = tm_pg_stream_run(src, ctx, errstr, errstr_size);
    return rc == TM_ESTOPPED ? 0 : rc;
}

static int pg_source_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    int rc = 0;
    /*
     * Incremental snapshots (pg_incr.c) are asked for from the start, so a
     * request that comes during the initial snapshot waits for streaming.
     */
    if (src->slot_for_streaming && (rc = tm_pg_incr_start(src, ctx, errstr, errstr_size)) != 0)
        return rc;
    rc = run_source(src, ctx, errstr, errstr_size);
    tm_pg_incr_stop(src);
    return rc;
}

static void pg_source_describe(const tm_source_t *src, void (*line)(void *arg, const char *text),
                               void *arg)
{
    static const char *const modes[] = {"initial", "never", "initial_only", "when_needed",
                                        "always"};
    char *s;
    tm_buf_t b;
    tm_buf_init(&b);
    for (int i = 0; i < src->nspecs; i++) {
        char *d = spec_display(&src->specs[i]);
        tm_buf_appendf(&b, "%s%s", i ? ", " : "", d ? d : "?");
        free(d);
    }
    tm_buf_putc(&b, '\0');
    if ((s = tm_asprintf("postgres-cdc %s: tables %s", src->dsn_masked, b.data ? b.data : "")))
        line(arg, s);
    free(s);
    tm_buf_release(&b);
    if ((s = tm_asprintf("slot %s, publication %s (create %s), protocol %d%s", src->slot,
                       src->publication, src->create ? "on" : "off", src->streaming ? 2 : 1,
                       src->streaming ? " with streaming" : "")))
        line(arg, s);
    free(s);
    if ((s = tm_asprintf("snapshot %s (chunks of %" PRId64 " rows), heartbeat %s, position = "
                       "end LSN of the last complete transaction",
                       modes[src->snapmode], src->chunk_size,
                       src->heartbeat_ms > 0 ? "on" : "off")))
        line(arg, s);
    free(s);
}

static void pg_source_free(tm_source_t *src)
{
    if (src == NULL)
        return;
    tm_pg_incr_stop(src);
    if (src->conn != NULL)
        PQfinish(src->conn);
    if (src->repl != NULL)
        PQfinish(src->repl);
    for (int i = 0; i < src->nspecs; i++) {
        free(src->specs[i].nspname);
        free(src->specs[i].relname);
    }
    free(src->specs);
    free_tables(src);
    tm_pg_rels_free(src);
    tm_pg_typecache_free(src->types);
    tm_schema_unref(src->msg_schema);
    tm_batch_unref(src->cur);
    for (int i = 0; i < src->outq_len; i++) {
        tm_pg_out_t *o = &src->outq[(src->outq_head + i) % TM_PG_OUTQ_MAX];
        tm_batch_unref(o->batch);
        tm_schema_unref(o->schema);
        free(o->barrier_pos);
    }
    free(src->signal_nsp);
    free(src->signal_rel);
    free(src->incr_restore);
    tm_schema_unref(src->declared);
    free(src->name);
    free(src->dsn);
    free(src->dsn_masked);
    free(src->slot);
    free(src->publication);
    free(src->dbname);
    free(src->state_dir);
    free(src);
}

const tm_connector_t tm_connector_postgres = {
    .abi = TM_CONNECTOR_ABI,
    .name = "postgres-cdc",
    .kinds = TM_CONNECTOR_SOURCE,
    .doc = "PostgreSQL logical replication (pgoutput): initial snapshot, then every change",
    .source_options = pg_source_options,
    .sink_options = NULL,
    .option_prefix = NULL,
    .source_new = pg_source_new,
    .source_open = pg_source_open,
    .source_run = pg_source_run,
    .source_describe = pg_source_describe,
    .source_free = pg_source_free,
};
