/*
 * verify.c — `tidemark verify JOB.sql --sink NAME`: the target table of a
 * PostgreSQL sink against its defining query run on the source database, at
 * one consistent point (docs/connectors/postgres-sink.md, "Verifying a view").
 *
 * Role: an audit no peer offers.  A materialised-view job keeps a target
 * table equal to `INSERT INTO sink SELECT …` over postgres-cdc sources; this
 * command says whether it is, row by row.  Both sides must be read at the
 * same point of the source's history, while the job keeps running:
 *
 *   1. A temporary logical slot on the source exports a snapshot at its
 *      consistent point S (CREATE_REPLICATION_SLOT … SNAPSHOT 'export'); a
 *      second connection imports it (SET TRANSACTION SNAPSHOT) and so reads
 *      the source exactly as of S.
 *   2. The job is asked (POST /v1/checkpoints {"at_lsn": S}) for a checkpoint
 *      whose barrier every source places at S: after each transaction that
 *      commits before S and before every other one (pg_stream.c).  A
 *      transactional logical message emitted after the request commits after
 *      S, so an idle source reaches S at once.  A source that had already
 *      streamed past S places the barrier where it is and says so ("missed");
 *      verify then tries again with a new slot.
 *   3. Once the sinks committed that checkpoint, the target holds exactly the
 *      view of the source at S, and stays so: no checkpoint starts while the
 *      hold lasts (POST /v1/checkpoints/release ends it), and an exactly-once
 *      sink writes nothing visible between checkpoints.
 *   4. The query (views and source tables given as CTEs, each source table
 *      read from the table its `tables` option names) runs in the snapshot,
 *      its columns cast to the target's column types so that both sides are
 *      rendered by the same output functions; the target is read; the rows
 *      are compared by the sink's key (or as multisets without one).
 *
 * Invariants:
 *   1. The hold is always released, on every path after the request.
 *   2. Nothing is written to the source but the verify message and the
 *      temporary slot, which the server drops when the connection closes.
 *   3. Exit status: 0 equal, 1 different, 2 the job or its options do not
 *      allow a verify (config), 3 a server or the daemon cannot be reached.
 *
 * Thread: main (a CLI command).
 */
#include "daemon/admin.h"
#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/options.h"
#include "sql/job.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#define VERIFY_ATTEMPTS 5
#define VERIFY_MESSAGE_PREFIX "tidemark.verify"

typedef struct verify {
    const char *job_path;
    const char *sink;
    const char *state_dir;
    const char *admin;
    const char *token;
    tm_admin_client_tls_t tls; /* for a daemon that serves https:// (admin.h) */
    int64_t timeout_ms;
    int64_t hold_ms;
    int max_diffs;
    tm_job_t *job;
    const tm_job_table_t *sink_table;
    const tm_job_insert_t *insert;
    const char *src_dsn;
    char addr[300];
    int64_t deadline;
    /* Target columns compared, with their types (format_type) and key flags. */
    char **cols;
    char **types;
    bool *key;
    int ncols;
    char *target_q;
} verify_t;

static void usage_verify(FILE *f)
{
    fprintf(f, "Usage: tidemark verify JOB.sql --sink NAME [--state-dir DIR | --admin HOST:PORT]\n"
               "                       [--token T] [--hold DURATION] [--timeout DURATION]\n"
               "                       [--max-diffs N]\n"
               "A daemon that serves https:// is reached with TIDEMARK_ADMIN_CACERT,\n"
               "TIDEMARK_ADMIN_TLS_SERVER_NAME, TIDEMARK_ADMIN_CERT and TIDEMARK_ADMIN_KEY.\n"
               "Compares the sink's target table with the job's query run on the source database,\n"
               "both at one point of the source's history, while the job runs. Exit 0: equal;\n"
               "1: different; 2: the job cannot be verified; 3: a server or the job is not\n"
               "reachable.\n");
}

/* ---- the query's text ---- */

/* Skips white space and comments; returns the new position. */
static const char *skip_ws(const char *p, const char *end)
{
    for (;;) {
        while (p < end && isspace((unsigned char)*p))
            p++;
        if (end - p >= 2 && p[0] == '-' && p[1] == '-') {
            while (p < end && *p != '\n')
                p++;
        } else if (end - p >= 2 && p[0] == '/' && p[1] == '*') {
            p += 2;
            while (end - p >= 2 && !(p[0] == '*' && p[1] == '/'))
                p++;
            p = end - p >= 2 ? p + 2 : end;
        } else {
            return p;
        }
    }
}

/* Skips one token: a word, a quoted identifier, a string, or one character. */
static const char *skip_token(const char *p, const char *end)
{
    if (p >= end)
        return p;
    if (*p == '"' || *p == '\'') {
        char q = *p++;
        while (p < end) {
            if (*p == q && (p + 1 >= end || p[1] != q))
                return p + 1;
            p += *p == q ? 2 : 1;
        }
        return end;
    }
    if (isalnum((unsigned char)*p) || *p == '_' || (unsigned char)*p >= 0x80) {
        while (p < end && (isalnum((unsigned char)*p) || *p == '_' || *p == '$' ||
                           (unsigned char)*p >= 0x80))
            p++;
        return p;
    }
    return p + 1;
}

static bool word_is(const char *p, const char *end, const char *w)
{
    size_t n = strlen(w);
    return (size_t)(end - p) >= n && strncasecmp(p, w, n) == 0 &&
           ((size_t)(end - p) == n || !(isalnum((unsigned char)p[n]) || p[n] == '_'));
}

/* Past a parenthesised group starting at p ('('), quotes respected. */
static const char *skip_group(const char *p, const char *end)
{
    int depth = 0;
    while (p < end) {
        if (*p == '(')
            depth++;
        else if (*p == ')' && --depth == 0)
            return p + 1;
        p = (*p == '(' || *p == ')') ? p + 1 : skip_token(p, end);
    }
    return end;
}

/* Past a possibly qualified name: ident(.ident)*. */
static const char *skip_name(const char *p, const char *end)
{
    p = skip_token(skip_ws(p, end), end);
    for (;;) {
        const char *q = skip_ws(p, end);
        if (q < end && *q == '.')
            p = skip_token(skip_ws(q + 1, end), end);
        else
            return p;
    }
}

static bool starts_query(const char *p, const char *end)
{
    return word_is(p, end, "SELECT") || word_is(p, end, "WITH") || word_is(p, end, "VALUES") ||
           word_is(p, end, "TABLE") || (p < end && *p == '(');
}

/*
 * The query of `INSERT INTO name [AS alias] [(cols)] query` or of `CREATE
 * [OR REPLACE] [TEMP] VIEW name [(cols)] AS query`, in [*qs, *qe); false if
 * the text does not have that shape.
 */
static bool find_query(const char *sql, int start, int stop, const char **qs, const char **qe)
{
    const char *p = sql + start, *end = sql + stop;
    p = skip_ws(p, end);
    if (word_is(p, end, "INSERT")) {
        p = skip_ws(skip_token(p, end), end); /* INTO */
        p = skip_name(skip_token(p, end), end);
        p = skip_ws(p, end);
        if (word_is(p, end, "AS"))
            p = skip_ws(skip_token(skip_ws(skip_token(p, end), end), end), end);
        if (p < end && *p == '(') {
            const char *in = skip_ws(p + 1, end);
            if (!starts_query(in, end))
                p = skip_ws(skip_group(p, end), end);
        }
    } else {
        /* CREATE … VIEW name [(cols)] AS */
        while (p < end && !word_is(p, end, "VIEW"))
            p = skip_ws(skip_token(p, end), end);
        p = skip_ws(skip_name(skip_token(p, end), end), end);
        if (p < end && *p == '(')
            p = skip_ws(skip_group(p, end), end);
        if (!word_is(p, end, "AS"))
            return false;
        p = skip_ws(skip_token(p, end), end);
    }
    if (!starts_query(p, end))
        return false;
    while (end > p && (isspace((unsigned char)end[-1]) || end[-1] == ';'))
        end--;
    *qs = p;
    *qe = end;
    return true;
}

/* buf's text as a C string (tm_buf_putc does not terminate it); NULL when out of memory. */
static const char *cstr(tm_buf_t *b)
{
    if (tm_buf_putc(b, '\0') != 0)
        return NULL;
    b->len--;
    return b->data;
}

/* Appends `name` as a quoted identifier. */
static int put_ident(tm_buf_t *b, const char *name)
{
    if (tm_buf_putc(b, '"') != 0)
        return TM_ENOMEM;
    for (const char *c = name; *c; c++)
        if ((*c == '"' && tm_buf_putc(b, '"') != 0) || tm_buf_putc(b, *c) != 0)
            return TM_ENOMEM;
    return tm_buf_putc(b, '"') != 0 ? TM_ENOMEM : 0;
}

/* Appends "schema"."table" for a `schema.table` option value, each part as written. */
static int put_qualified(tm_buf_t *b, const char *name)
{
    const char *dot = strchr(name, '.');
    if (dot == NULL)
        return put_ident(b, name);
    char *nsp = strndup(name, (size_t)(dot - name));
    int rc = nsp ? put_ident(b, nsp) : TM_ENOMEM;
    free(nsp);
    if (rc == 0)
        rc = tm_buf_putc(b, '.') != 0 ? TM_ENOMEM : put_ident(b, dot + 1);
    return rc;
}

/*
 * The SQL run on the source: the job's source tables and views as CTEs, then
 * the INSERT's query with its columns named and cast as the target's.
 */
static int build_source_sql(verify_t *v, tm_buf_t *out, char *err, size_t errlen)
{
    const tm_job_t *job = v->job;
    int rc = tm_buf_append(out, "WITH ", 5) ? TM_ENOMEM : 0;
    bool first = true;
    for (int i = 0; rc == 0 && i < job->ntables; i++) {
        const tm_job_table_t *t = &job->tables[i];
        if (t->role != TM_ROLE_SOURCE)
            continue;
        const char *tables = tm_opt_str(t->opts, "table");
        if (tables == NULL || tables[0] == '\0')
            tables = tm_opt_str(t->opts, "tables");
        if (tables == NULL || strchr(tables, ',') != NULL || strchr(tables, '*') != NULL)
            return tm_seterr(err, errlen, TM_ECONFIG,
                             "source '%s' reads %s; verify needs each source to read one table, "
                             "which it reads again under that source's name",
                             t->name, tables ? tables : "no table");
        rc = first ? 0 : (tm_buf_append(out, ", ", 2) ? TM_ENOMEM : 0);
        first = false;
        if (rc == 0)
            rc = put_ident(out, t->name);
        if (rc == 0)
            rc = tm_buf_puts(out, " AS (SELECT ") ? TM_ENOMEM : 0;
        for (int c = 0; rc == 0 && t->declared != NULL && c < t->declared->ncols; c++) {
            if (c > 0)
                rc = tm_buf_append(out, ", ", 2) ? TM_ENOMEM : 0;
            if (rc == 0)
                rc = put_ident(out, t->declared->cols[c].name);
        }
        if (rc == 0 && (t->declared == NULL || t->declared->ncols == 0))
            rc = tm_buf_putc(out, '*') ? TM_ENOMEM : 0;
        if (rc == 0)
            rc = tm_buf_puts(out, " FROM ") ? TM_ENOMEM : 0;
        if (rc == 0)
            rc = put_qualified(out, tables);
        if (rc == 0)
            rc = tm_buf_putc(out, ')') ? TM_ENOMEM : 0;
    }
    for (int i = 0; rc == 0 && i < job->nviews; i++) {
        const tm_job_view_t *w = &job->views[i];
        const char *qs, *qe;
        if (!find_query(job->sql, w->location, w->end, &qs, &qe))
            return tm_seterr(err, errlen, TM_ECONFIG, "cannot find the query of view '%s'",
                             w->name);
        rc = first ? 0 : (tm_buf_append(out, ", ", 2) ? TM_ENOMEM : 0);
        first = false;
        if (rc == 0)
            rc = put_ident(out, w->name);
        for (int a = 0; rc == 0 && a < w->naliases; a++) {
            rc = tm_buf_puts(out, a == 0 ? "(" : ", ") ? TM_ENOMEM : put_ident(out, w->aliases[a]);
            if (rc == 0 && a + 1 == w->naliases)
                rc = tm_buf_putc(out, ')') ? TM_ENOMEM : 0;
        }
        if (rc == 0)
            rc = tm_buf_appendf(out, " AS (%.*s)", (int)(qe - qs), qs) ? TM_ENOMEM : 0;
    }
    const char *qs, *qe;
    if (rc == 0 && !find_query(job->sql, v->insert->location, v->insert->end, &qs, &qe))
        return tm_seterr(err, errlen, TM_ECONFIG, "cannot find the query of the INSERT into '%s'",
                         v->sink);
    if (rc == 0)
        rc = tm_buf_puts(out, " SELECT ") ? TM_ENOMEM : 0;
    for (int c = 0; rc == 0 && c < v->ncols; c++) {
        rc = c > 0 && tm_buf_append(out, ", ", 2) ? TM_ENOMEM : 0;
        if (rc == 0)
            rc = put_ident(out, v->cols[c]);
        if (rc == 0)
            rc = tm_buf_appendf(out, "::%s", v->types[c]) ? TM_ENOMEM : 0;
    }
    if (rc == 0)
        rc = tm_buf_appendf(out, " FROM (%.*s) AS \"tidemark_verify_q\"(", (int)(qe - qs), qs)
                 ? TM_ENOMEM
                 : 0;
    /* The query's columns, in order, are the INSERT's columns (or the sink's declared ones). */
    const tm_job_insert_t *ins = v->insert;
    const tm_schema_t *decl = v->sink_table->declared;
    int nout = ins->ncols > 0 ? ins->ncols : decl ? decl->ncols : 0;
    for (int c = 0; rc == 0 && c < nout; c++) {
        rc = c > 0 && tm_buf_append(out, ", ", 2) ? TM_ENOMEM : 0;
        if (rc == 0)
            rc = put_ident(out, ins->ncols > 0 ? ins->cols[c] : decl->cols[c].name);
    }
    if (rc == 0)
        rc = tm_buf_putc(out, ')') || cstr(out) == NULL ? TM_ENOMEM : 0;
    if (rc == TM_ENOMEM)
        tm_seterr(err, errlen, rc, "out of memory");
    return rc;
}

/* ---- database helpers ---- */

static PGconn *connect_db(const char *dsn, bool replication, char *err, size_t errlen)
{
    char *full = NULL;
    if (asprintf(&full, "%s%sconnect_timeout=10%s", dsn, dsn[0] ? " " : "",
                 replication ? " replication=database" : "") < 0)
        return NULL;
    PGconn *c = PQconnectdb(full);
    free(full);
    if (PQstatus(c) != CONNECTION_OK) {
        char m[512];
        snprintf(m, sizeof(m), "%s", PQerrorMessage(c));
        m[strcspn(m, "\n")] = '\0';
        tm_seterr(err, errlen, TM_ECONN, "cannot connect to %s: %s", dsn, m);
        PQfinish(c);
        return NULL;
    }
    return c;
}

static int exec_ok(PGconn *c, const char *sql, const char *what, char *err, size_t errlen)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType st = PQresultStatus(r);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        char m[600];
        snprintf(m, sizeof(m), "%s", PQresultErrorMessage(r));
        m[strcspn(m, "\n")] = '\0';
        rc = tm_seterr(err, errlen, TM_ESOURCE, "%s failed: %s", what, m);
    }
    PQclear(r);
    return rc;
}

/* The same text rendering on both servers, whatever their settings. */
static int set_rendering(PGconn *c, char *err, size_t errlen)
{
    return exec_ok(c,
                   "SET DateStyle = ISO; SET IntervalStyle = postgres; SET TimeZone = 'UTC'; "
                   "SET extra_float_digits = 3; SET bytea_output = hex",
                   "setting the output format", err, errlen);
}

/* Reads the sink's target columns (the declared ones, or all) with their types and key. */
static int read_target_shape(verify_t *v, PGconn *c, char *err, size_t errlen)
{
    const char *table = tm_opt_str(v->sink_table->opts, "table");
    if (table == NULL || table[0] == '\0')
        table = v->sink_table->name;
    tm_buf_t q;
    tm_buf_init(&q);
    int rc = put_qualified(&q, table);
    const char *tq = rc == 0 ? cstr(&q) : NULL;
    v->target_q = tq != NULL ? strdup(tq) : NULL;
    tm_buf_release(&q);
    if (v->target_q == NULL)
        return tm_seterr(err, errlen, TM_ENOMEM, "out of memory");
    const char *params[1] = {v->target_q};
    PGresult *r = PQexecParams(
        c,
        "SELECT a.attname, format_type(a.atttypid, a.atttypmod), "
        "COALESCE(a.attnum = ANY (i.indkey), false) "
        "FROM pg_attribute a LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary "
        "WHERE a.attrelid = $1::regclass AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY a.attnum",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[600];
        snprintf(m, sizeof(m), "%s", PQresultErrorMessage(r));
        m[strcspn(m, "\n")] = '\0';
        PQclear(r);
        return tm_seterr(err, errlen, TM_ECONFIG, "cannot read the target table %s: %s",
                         v->target_q, m);
    }
    int n = PQntuples(r);
    const tm_schema_t *decl = v->sink_table->declared;
    v->cols = calloc((size_t)n + 1, sizeof(char *));
    v->types = calloc((size_t)n + 1, sizeof(char *));
    v->key = calloc((size_t)n + 1, sizeof(bool));
    if (v->cols == NULL || v->types == NULL || v->key == NULL) {
        PQclear(r);
        return tm_seterr(err, errlen, TM_ENOMEM, "out of memory");
    }
    /* In the sink's declared order: the query's columns map to those. */
    int want = decl != NULL && decl->ncols > 0 ? decl->ncols : n;
    for (int k = 0; k < want; k++) {
        const char *name = decl != NULL && decl->ncols > 0 ? decl->cols[k].name
                                                            : PQgetvalue(r, k, 0);
        int row = -1;
        for (int i = 0; i < n && row < 0; i++)
            if (strcmp(PQgetvalue(r, i, 0), name) == 0)
                row = i;
        if (row < 0) {
            PQclear(r);
            return tm_seterr(err, errlen, TM_ECONFIG,
                             "the target table %s has no column \"%s\" that sink '%s' declares",
                             v->target_q, name, v->sink);
        }
        v->cols[v->ncols] = strdup(name);
        v->types[v->ncols] = strdup(PQgetvalue(r, row, 1));
        v->key[v->ncols] = PQgetvalue(r, row, 2)[0] == 't';
        if (v->cols[v->ncols] == NULL || v->types[v->ncols] == NULL) {
            PQclear(r);
            return tm_seterr(err, errlen, TM_ENOMEM, "out of memory");
        }
        v->ncols++;
    }
    PQclear(r);
    return 0;
}

/* ---- rows ---- */

/* A row as its columns' text, NULL as a NULL pointer, tab-joined for sorting. */
typedef struct vrow {
    char *line; /* "\x01" for NULL; columns separated by '\x1f' */
    char *key;  /* the key columns alone, same form (a pointer into nothing when keyless) */
} vrow_t;

typedef struct vrows {
    vrow_t *v;
    size_t n;
} vrows_t;

static void rows_free(vrows_t *rs)
{
    for (size_t i = 0; i < rs->n; i++) {
        free(rs->v[i].line);
        free(rs->v[i].key);
    }
    free(rs->v);
    rs->v = NULL;
    rs->n = 0;
}

static int cmp_key(const void *a, const void *b)
{
    const vrow_t *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c != 0 ? c : strcmp(x->line, y->line);
}

static int take_rows(const verify_t *v, PGresult *r, vrows_t *out)
{
    size_t n = (size_t)PQntuples(r);
    out->v = calloc(n + 1, sizeof(vrow_t));
    if (out->v == NULL)
        return TM_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        tm_buf_t line, key;
        tm_buf_init(&line);
        tm_buf_init(&key);
        int rc = 0;
        for (int c = 0; rc == 0 && c < v->ncols; c++) {
            const char *val = PQgetisnull(r, (int)i, c) ? "\x01" : PQgetvalue(r, (int)i, c);
            rc = (c > 0 && tm_buf_putc(&line, '\x1f')) || tm_buf_puts(&line, val) ? TM_ENOMEM
                                                                                    : 0;
            if (rc == 0 && v->key[c])
                rc = (key.len > 0 && tm_buf_putc(&key, '\x1f')) || tm_buf_puts(&key, val)
                         ? TM_ENOMEM
                         : 0;
        }
        const char *l = rc == 0 ? cstr(&line) : NULL, *k = rc == 0 ? cstr(&key) : NULL;
        out->v[i].line = l != NULL ? strdup(l) : NULL;
        out->v[i].key = k != NULL ? strdup(k) : NULL;
        tm_buf_release(&line);
        tm_buf_release(&key);
        out->n = i + 1;
        if (out->v[i].line == NULL || out->v[i].key == NULL)
            return TM_ENOMEM;
    }
    qsort(out->v, out->n, sizeof(vrow_t), cmp_key);
    return 0;
}

/* Prints a row as (a, b, NULL). */
static void print_row(FILE *f, const char *line)
{
    fputc('(', f);
    for (const char *p = line; *p; p++) {
        if (*p == '\x1f')
            fputs(", ", f);
        else if (*p == '\x01')
            fputs("NULL", f);
        else
            fputc(*p, f);
    }
    fputc(')', f);
}

typedef struct diff_counts {
    size_t missing, extra, different;
} diff_counts_t;

/*
 * Walks both sorted row sets.  With a key, rows of one key are paired (a
 * "different" row); without one, equal lines pair and the rest are missing
 * (in the query only) or extra (in the target only).
 */
static void compare(const verify_t *v, const vrows_t *q, const vrows_t *t, diff_counts_t *d)
{
    bool keyed = false;
    for (int c = 0; c < v->ncols; c++)
        keyed |= v->key[c];
    size_t i = 0, j = 0, shown = 0;
    while (i < q->n || j < t->n) {
        int c;
        if (i >= q->n)
            c = 1;
        else if (j >= t->n)
            c = -1;
        else
            c = keyed ? strcmp(q->v[i].key, t->v[j].key) : strcmp(q->v[i].line, t->v[j].line);
        bool show = shown < (size_t)v->max_diffs;
        if (c == 0) {
            if (strcmp(q->v[i].line, t->v[j].line) != 0) {
                d->different++;
                if (show) {
                    printf("  different  query ");
                    print_row(stdout, q->v[i].line);
                    printf("\n             target ");
                    print_row(stdout, t->v[j].line);
                    printf("\n");
                    shown++;
                }
            }
            i++;
            j++;
        } else if (c < 0) {
            d->missing++;
            if (show) {
                printf("  missing    ");
                print_row(stdout, q->v[i].line);
                printf("   (in the query, not in the target)\n");
                shown++;
            }
            i++;
        } else {
            d->extra++;
            if (show) {
                printf("  extra      ");
                print_row(stdout, t->v[j].line);
                printf("   (in the target, not in the query)\n");
                shown++;
            }
            j++;
        }
    }
}

/* ---- the daemon ---- */

static int daemon_call(verify_t *v, const char *method, const char *path, const char *body,
                       int *status, json_t **out, char *err, size_t errlen)
{
    tm_buf_t resp;
    tm_buf_init(&resp);
    int64_t left = v->deadline - tm_mono_ms();
    int rc = left <= 0 ? tm_seterr(err, errlen, TM_EAGAIN, "the --timeout passed")
                       : tm_admin_request_tls(v->addr, &v->tls, v->token, method, path, body,
                                              (int)(left < 30000 ? left : 30000), status, &resp,
                                              err, errlen);
    if (rc == 0 && out != NULL)
        *out = json_loadb(resp.data ? resp.data : "", resp.len, 0, NULL);
    if (rc == 0 && *status >= 300) {
        json_t *j = json_loadb(resp.data ? resp.data : "", resp.len, 0, NULL);
        const char *m = json_string_value(json_object_get(j, "error"));
        rc = tm_seterr(err, errlen, *status == 409 ? TM_EAGAIN : TM_ECONFIG,
                       "the job answered HTTP %d: %s", *status, m ? m : "(no message)");
        json_decref(j);
    }
    tm_buf_release(&resp);
    return rc;
}

static void release_hold(verify_t *v)
{
    int status = 0;
    char err[256];
    /* Invariant 1: even after --timeout passed. */
    if (v->deadline < tm_mono_ms() + 5000)
        v->deadline = tm_mono_ms() + 5000;
    (void)daemon_call(v, "POST", "/v1/checkpoints/release", "{}", &status, NULL, err,
                      sizeof(err));
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- one attempt ---- */

typedef struct attempt {
    PGconn *repl, *snap, *tgt;
    char lsn[32];
    uint64_t checkpoint;
    bool requested;
} attempt_t;

static void attempt_end(verify_t *v, attempt_t *a)
{
    if (a->requested)
        release_hold(v);
    PQfinish(a->snap);
    PQfinish(a->repl);
    PQfinish(a->tgt);
    memset(a, 0, sizeof(*a));
}

/*
 * Reads both sides at one point.  0 with the rows, TM_EAGAIN when a source
 * had already passed the point (try again), or an error.
 */
static int attempt_once(verify_t *v, attempt_t *a, const char *src_sql, vrows_t *qrows,
                        vrows_t *trows, char *err, size_t errlen)
{
    const char *tdsn = tm_opt_str(v->sink_table->opts, "dsn");
    if ((a->repl = connect_db(v->src_dsn, true, err, errlen)) == NULL ||
        (a->snap = connect_db(v->src_dsn, false, err, errlen)) == NULL ||
        (a->tgt = connect_db(tdsn, false, err, errlen)) == NULL)
        return TM_ECONN;
    /*
     * 0. The sources hold still at a transaction boundary, so that the point
     * chosen next is one that none of them has passed (they go on once the
     * checkpoint's barrier is requested, or after 5 s).
     */
    int status = 0;
    int rc = daemon_call(v, "POST", "/v1/checkpoints/pause", "{\"max_ms\":5000}", &status, NULL,
                         err, errlen);
    for (int64_t until = tm_mono_ms() + 4000; rc == 0;) {
        json_t *ans = NULL;
        rc = daemon_call(v, "GET", "/v1/checkpoints/pause", NULL, &status, &ans, err, errlen);
        json_int_t paused = json_integer_value(json_object_get(ans, "paused"));
        json_int_t sources = json_integer_value(json_object_get(ans, "sources"));
        json_decref(ans);
        if (rc != 0 || (sources > 0 && paused == sources))
            break;
        if (tm_mono_ms() >= until)
            return TM_EAGAIN; /* a source is in a long transaction: try again */
        sleep_ms(5);
    }
    if (rc != 0)
        return rc;
    /* 1. The point: a temporary slot's consistent point, with its snapshot. */
    char cmd[256];
    snprintf(cmd, sizeof(cmd),
             "CREATE_REPLICATION_SLOT \"tidemark_verify_%d\" TEMPORARY LOGICAL pgoutput "
             "(SNAPSHOT 'export')",
             (int)getpid());
    PGresult *r = PQexec(a->repl, cmd);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        char m[600];
        snprintf(m, sizeof(m), "%s", PQresultErrorMessage(r));
        m[strcspn(m, "\n")] = '\0';
        PQclear(r);
        return tm_seterr(err, errlen, TM_ESOURCE,
                         "cannot create a temporary replication slot on the source (it needs "
                         "the REPLICATION attribute, as the job's user has): %s",
                         m);
    }
    snprintf(a->lsn, sizeof(a->lsn), "%s", PQgetvalue(r, 0, 1));
    char snapshot[128];
    snprintf(snapshot, sizeof(snapshot), "%s", PQgetvalue(r, 0, 2));
    PQclear(r);
    char *lit = PQescapeLiteral(a->snap, snapshot, strlen(snapshot));
    char setsnap[256];
    snprintf(setsnap, sizeof(setsnap), "SET TRANSACTION SNAPSHOT %s", lit ? lit : "''");
    PQfreemem(lit);
    rc = set_rendering(a->snap, err, errlen);
    if (rc == 0)
        rc = exec_ok(a->snap, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY", "BEGIN", err,
                     errlen);
    if (rc == 0)
        rc = exec_ok(a->snap, setsnap, "importing the snapshot", err, errlen);
    if (rc != 0)
        return rc;
    /* 2. The job's checkpoint at that point. */
    char body[128];
    snprintf(body, sizeof(body), "{\"at_lsn\":\"%s\",\"hold_ms\":%" PRId64 "}", a->lsn,
             v->hold_ms);
    json_t *ans = NULL;
    rc = daemon_call(v, "POST", "/v1/checkpoints", body, &status, &ans, err, errlen);
    if (rc == 0) {
        a->checkpoint = (uint64_t)json_integer_value(json_object_get(ans, "id"));
        a->requested = true;
    }
    json_decref(ans);
    if (rc != 0)
        return rc;
    /* A commit after the point, so that an idle stream reaches it now. */
    PGconn *msg = connect_db(v->src_dsn, false, err, errlen);
    if (msg == NULL)
        return TM_ECONN;
    rc = exec_ok(msg,
                 "SELECT pg_logical_emit_message(true, '" VERIFY_MESSAGE_PREFIX "', 'point')",
                 "emitting the verify message on the source", err, errlen);
    PQfinish(msg);
    if (rc != 0)
        return rc;
    /* 3. The source as of the point. */
    r = PQexec(a->snap, src_sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[800];
        snprintf(m, sizeof(m), "%s", PQresultErrorMessage(r));
        m[strcspn(m, "\n")] = '\0';
        PQclear(r);
        return tm_seterr(err, errlen, TM_ECONFIG,
                         "the job's query does not run on the source database as PostgreSQL "
                         "SQL: %s (the query verify ran: %s)",
                         m, src_sql);
    }
    rc = take_rows(v, r, qrows);
    PQclear(r);
    if (rc != 0)
        return tm_seterr(err, errlen, rc, "out of memory");
    exec_ok(a->snap, "COMMIT", "COMMIT", err, errlen);
    /* The slot is no longer needed: closing its connection drops it. */
    PQfinish(a->repl);
    a->repl = NULL;
    /* 4. Wait until every sink committed that checkpoint. */
    char path[64];
    snprintf(path, sizeof(path), "/v1/checkpoints/%" PRIu64, a->checkpoint);
    for (;;) {
        ans = NULL;
        rc = daemon_call(v, "GET", path, NULL, &status, &ans, err, errlen);
        const char *st = rc == 0 ? json_string_value(json_object_get(ans, "status")) : NULL;
        bool missed = json_is_true(json_object_get(ans, "missed"));
        bool done = st != NULL && strcmp(st, "committed") == 0;
        json_decref(ans);
        if (rc != 0)
            return rc;
        if (done && missed)
            return TM_EAGAIN;
        if (done)
            break;
        if (tm_mono_ms() >= v->deadline)
            return tm_seterr(err, errlen, TM_EAGAIN,
                             "checkpoint %" PRIu64 " at %s did not complete within --timeout; "
                             "is the job streaming?",
                             a->checkpoint, a->lsn);
        sleep_ms(100);
    }
    /* 5. The target, as that checkpoint left it (held: nothing commits meanwhile). */
    tm_buf_t q;
    tm_buf_init(&q);
    tm_buf_puts(&q, "SELECT ");
    for (int c = 0; c < v->ncols; c++) {
        if (c > 0)
            tm_buf_puts(&q, ", ");
        put_ident(&q, v->cols[c]);
    }
    tm_buf_appendf(&q, " FROM %s", v->target_q);
    rc = set_rendering(a->tgt, err, errlen);
    if (rc == 0 && cstr(&q) == NULL)
        rc = tm_seterr(err, errlen, TM_ENOMEM, "out of memory");
    if (rc == 0) {
        r = PQexec(a->tgt, q.data);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            char m[600];
            snprintf(m, sizeof(m), "%s", PQresultErrorMessage(r));
            m[strcspn(m, "\n")] = '\0';
            rc = tm_seterr(err, errlen, TM_ESOURCE, "reading the target %s failed: %s",
                           v->target_q, m);
        } else if (take_rows(v, r, trows) != 0) {
            rc = tm_seterr(err, errlen, TM_ENOMEM, "out of memory");
        }
        PQclear(r);
    }
    tm_buf_release(&q);
    return rc;
}

/* ---- the command ---- */

static int64_t parse_duration_arg(const char *s)
{
    int64_t ms = 0;
    return tm_parse_duration_ms(s, &ms) == 0 ? ms : -1;
}

static int exit_for(int rc)
{
    if (rc == TM_ECONFIG || rc == TM_ESQL || rc == TM_EUNSUPPORTED || rc == TM_EINVAL)
        return TM_EXIT_CONFIG;
    return TM_EXIT_SOURCE;
}

/* Checks the job and finds the sink, its INSERT and the source DSN. */
static int check_job(verify_t *v, char *err, size_t errlen)
{
    tm_job_t *job = v->job;
    for (int i = 0; i < job->ntables; i++)
        if (job->tables[i].role == TM_ROLE_SINK && strcmp(job->tables[i].name, v->sink) == 0)
            v->sink_table = &job->tables[i];
    if (v->sink_table == NULL)
        return tm_seterr(err, errlen, TM_ECONFIG, "%s has no sink named '%s'", v->job_path,
                         v->sink);
    if (strcmp(v->sink_table->conn->name, "postgres") != 0)
        return tm_seterr(err, errlen, TM_ECONFIG,
                         "sink '%s' uses connector '%s'; verify compares PostgreSQL sinks "
                         "(connector 'postgres') only",
                         v->sink, v->sink_table->conn->name);
    const char *delivery = tm_opt_str(v->sink_table->opts, "delivery");
    if (delivery == NULL || strcasecmp(delivery, "exactly-once") != 0)
        return tm_seterr(err, errlen, TM_ECONFIG,
                         "sink '%s' is at-least-once: it commits between checkpoints, so its "
                         "target has no point to be compared at; verify needs delivery = "
                         "'exactly-once'",
                         v->sink);
    for (int i = 0; i < job->ninserts; i++)
        if (&job->tables[job->inserts[i].sink] == v->sink_table)
            v->insert = &job->inserts[i];
    if (v->insert == NULL)
        return tm_seterr(err, errlen, TM_ECONFIG, "no INSERT writes to sink '%s'", v->sink);
    for (int i = 0; i < job->ntables; i++) {
        const tm_job_table_t *t = &job->tables[i];
        if (t->role != TM_ROLE_SOURCE)
            continue;
        if (strcmp(t->conn->name, "postgres-cdc") != 0)
            return tm_seterr(err, errlen, TM_ECONFIG,
                             "source '%s' uses connector '%s'; verify reads the sources again "
                             "from PostgreSQL, so every source must be postgres-cdc",
                             t->name, t->conn->name);
        const char *dsn = tm_opt_str(t->opts, "dsn");
        if (v->src_dsn != NULL && strcmp(v->src_dsn, dsn) != 0)
            return tm_seterr(err, errlen, TM_ECONFIG,
                             "sources read from different servers or databases ('%s' and "
                             "another); verify needs one point in one server's history",
                             t->name);
        v->src_dsn = dsn;
    }
    if (v->src_dsn == NULL)
        return tm_seterr(err, errlen, TM_ECONFIG, "the job has no postgres-cdc source");
    return 0;
}

static int find_addr(verify_t *v)
{
    if (v->admin != NULL) {
        snprintf(v->addr, sizeof(v->addr), "%s", v->admin);
        return 0;
    }
    char path[4200];
    snprintf(path, sizeof(path), "%s/%s", v->state_dir, TM_ADMIN_ADDR_FILE);
    FILE *f = fopen(path, "r");
    if (f == NULL || fgets(v->addr, sizeof(v->addr), f) == NULL) {
        if (f != NULL)
            fclose(f);
        fprintf(stderr, "tidemark verify: cannot read %s (%s): is the job running with "
                        "--state-dir %s? pass --state-dir or --admin\n",
                path, strerror(errno ? errno : ENODATA), v->state_dir);
        return TM_EXIT_SOURCE;
    }
    fclose(f);
    v->addr[strcspn(v->addr, "\r\n \t")] = '\0';
    return 0;
}

int tm_verify_main(int argc, char **argv)
{
    verify_t v = {.state_dir = "./tidemark-state", .timeout_ms = 120000, .hold_ms = 60000,
                  .max_diffs = 20};
    static const struct option longopts[] = {
        {"sink", required_argument, NULL, 's'},      {"state-dir", required_argument, NULL, 'd'},
        {"admin", required_argument, NULL, 'a'},     {"token", required_argument, NULL, 't'},
        {"hold", required_argument, NULL, 'H'},      {"timeout", required_argument, NULL, 'T'},
        {"max-diffs", required_argument, NULL, 'm'}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (c) {
        case 's':
            v.sink = optarg;
            break;
        case 'd':
            v.state_dir = optarg;
            break;
        case 'a':
            v.admin = optarg;
            break;
        case 't':
            v.token = optarg;
            break;
        case 'H':
            v.hold_ms = parse_duration_arg(optarg);
            break;
        case 'T':
            v.timeout_ms = parse_duration_arg(optarg);
            break;
        case 'm':
            v.max_diffs = atoi(optarg);
            break;
        case 'h':
            usage_verify(stdout);
            return TM_EXIT_OK;
        default:
            usage_verify(stderr);
            return TM_EXIT_CONFIG;
        }
    }
    if (optind + 1 != argc || v.sink == NULL || v.hold_ms < 1000 || v.hold_ms > 600000 ||
        v.timeout_ms <= 0 || v.max_diffs < 0) {
        fprintf(stderr, "tidemark verify: %s\n",
                v.sink == NULL || optind + 1 != argc
                    ? "needs a job file and --sink NAME"
                    : "--hold must be 1s to 10min, --timeout positive, --max-diffs >= 0");
        usage_verify(stderr);
        return TM_EXIT_CONFIG;
    }
    v.job_path = argv[optind];
    if (v.token == NULL)
        v.token = getenv("TIDEMARK_ADMIN_TOKEN");
    /* A daemon that serves TLS: as `tidemark status` is told, by the environment. */
    v.tls.ca_file = getenv("TIDEMARK_ADMIN_CACERT");
    v.tls.server_name = getenv("TIDEMARK_ADMIN_TLS_SERVER_NAME");
    v.tls.cert = getenv("TIDEMARK_ADMIN_CERT");
    v.tls.key = getenv("TIDEMARK_ADMIN_KEY");
    char err[4096] = "";
    int rc = tm_job_load(v.job_path, &v.job, err, sizeof(err));
    if (rc == 0)
        rc = check_job(&v, err, sizeof(err));
    if (rc == 0 && v.token == NULL)
        v.token = tm_opt_str(v.job->settings, "admin_token");
    if (rc != 0) {
        fprintf(stderr, "tidemark verify: %s\n", err);
        tm_job_free(v.job);
        return exit_for(rc);
    }
    int code = find_addr(&v);
    if (code != 0) {
        tm_job_free(v.job);
        return code;
    }
    v.deadline = tm_mono_ms() + v.timeout_ms;
    /* The target's shape first: the source query casts to its types. */
    PGconn *tgt = connect_db(tm_opt_str(v.sink_table->opts, "dsn"), false, err, sizeof(err));
    rc = tgt == NULL ? TM_ECONN : read_target_shape(&v, tgt, err, sizeof(err));
    PQfinish(tgt);
    tm_buf_t src_sql;
    tm_buf_init(&src_sql);
    if (rc == 0)
        rc = build_source_sql(&v, &src_sql, err, sizeof(err));
    vrows_t qrows = {0}, trows = {0};
    attempt_t a = {0};
    int attempts = 0;
    while (rc == 0 || rc == TM_EAGAIN) {
        rows_free(&qrows);
        rows_free(&trows);
        if (++attempts > VERIFY_ATTEMPTS) {
            rc = tm_seterr(err, sizeof(err), TM_EAGAIN,
                           "the job's sources streamed past the chosen point %d times in a "
                           "row (the job is catching up fast); run verify again",
                           VERIFY_ATTEMPTS);
            break;
        }
        err[0] = '\0';
        rc = attempt_once(&v, &a, src_sql.data, &qrows, &trows, err, sizeof(err));
        uint64_t chk = a.checkpoint;
        char lsn[32];
        snprintf(lsn, sizeof(lsn), "%s", a.lsn);
        attempt_end(&v, &a); /* invariant 1 */
        if (rc == TM_EAGAIN && err[0] == '\0') {
            fprintf(stderr, "tidemark verify: the job had streamed past %s already; trying "
                            "again\n", lsn);
            continue;
        }
        if (rc != 0)
            break;
        diff_counts_t d = {0};
        printf("verify: sink %s (table %s) at checkpoint %" PRIu64 ", source LSN %s\n", v.sink,
               v.target_q, chk, lsn);
        compare(&v, &qrows, &trows, &d);
        bool equal = d.missing == 0 && d.extra == 0 && d.different == 0;
        printf("summary: %zu rows from the query, %zu in the target: %zu missing, %zu extra, "
               "%zu different: %s\n",
               qrows.n, trows.n, d.missing, d.extra, d.different, equal ? "EQUAL" : "DIFFERENT");
        code = equal ? TM_EXIT_OK : TM_EXIT_FAILURE;
        break;
    }
    if (rc != 0) {
        fprintf(stderr, "tidemark verify: %s\n", err);
        code = exit_for(rc);
    }
    rows_free(&qrows);
    rows_free(&trows);
    tm_buf_release(&src_sql);
    for (int i = 0; i < v.ncols; i++) {
        free(v.cols[i]);
        free(v.types[i]);
    }
    free(v.cols);
    free(v.types);
    free(v.key);
    free(v.target_q);
    tm_job_free(v.job);
    return code;
}
