/*
 * pg_lookup.c — the `postgres` connector: a PostgreSQL table read by key at
 * processing time (a lookup table, runtime/connector.h), for the lookup join
 * (operators/lookup_join.h).  Issue 12 will add the sink kind to this name.
 *
 * One handle per subtask of the join, so each thread has its own libpq
 * connection.  lookup_open checks the table in the catalog and prepares one
 * statement; lookup_fetch runs it once per batch of keys:
 *
 *     SELECT k.ord, t."c1"::type1, …
 *     FROM unnest($1::K1[], $2::K2[]) WITH ORDINALITY AS k(v1, v2, ord)
 *     JOIN "schema"."table" AS t ON t."key1" = k.v1 AND t."key2" = k.v2
 *
 * The parameters are text arrays of the keys (element text from
 * tm_expr_datum_text, each element double-quoted with `"` and `\` escaped),
 * so any value is binary-safe; the ordinality says which key a row answers,
 * so the match uses the server's own equality and never depends on how
 * values print.  Each key array is cast to the table column's own type (so
 * the primary key's index is used), except when a numeric probe meets a
 * numeric column of another type: then to the probe's type, whose
 * cross-type operators PostgreSQL has (an int8 probe never overflows an int4
 * column).  Selected columns are cast to the declared column's type when it
 * is a built-in one, so the text parses straight into the declared type
 * (pg_types.c, the CDC source's parser and session settings).
 *
 * Invariants:
 *   1. Everything the server sends is checked before use: the result's
 *      shape, each ordinal (1..nkeys), each value's text (a bad one is an
 *      error naming the column, never a crash).
 *   2. A lost connection is retried: reconnect (and prepare again) with a
 *      backoff of 100 ms doubling to 5 s, at most lookup_max_retries times,
 *      then the fetch fails with the table and the server's last message.
 *      An SQL error on a live connection is not retried.
 *
 * Thread: new/open/describe/free on the main thread; fetch on the join's
 * subtask thread (never concurrently with the others).
 */
#include "postgres/pg_lookup.h"
#include "postgres/pg_conn.h"
#include "core/error.h"
#include "core/log.h"
#include "expr/expr.h"
#include "postgres/pg_types.h"
#include "postgres/postgres_int.h"
#include "runtime/connector.h"

#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LK_STMT "tm_lookup"

const tm_option_def_t tm_pglk_options[] = {
    {"dsn", TM_OPT_DSN, true, NULL, NULL,
     "libpq connection string or URI of the database that holds the lookup table"},
    {"table", TM_OPT_STRING, true, NULL, NULL,
     "the schema.table to look rows up in (the schema defaults to public)"},
    {"lookup", TM_OPT_BOOL, false, "false", NULL,
     "must be true: the table is a lookup (dimension) table, read by key when a join needs it"},
    {"lookup_cache_rows", TM_OPT_INT, false, "10000", NULL,
     "rows (and missing keys) each subtask of the join caches, least recently used evicted "
     "first; 0 = no cache"},
    {"lookup_ttl", TM_OPT_DURATION, false, "10min", NULL,
     "how long a cached row (or missing key) is used before it is looked up again"},
    {"lookup_caching_missing_keys", TM_OPT_BOOL, false, "true", NULL,
     "also cache that a key has no row"},
    {"lookup_max_retries", TM_OPT_INT, false, "3", NULL,
     "reconnects and retries of one lookup after a lost connection before the job fails"},
    {NULL, 0, false, NULL, NULL, NULL},
};

/* The catalog's view of one declared column. */
typedef struct lk_col {
    tm_pg_coltype_t ct;  /* how the selected text parses */
    tm_type_t actual;    /* the table column's tm type */
    char *actual_name;   /* format_type(atttypid, NULL) */
} lk_col_t;

struct tm_lookup {
    char *name;
    char *dsn;
    char *dsn_masked;
    char *nspname, *relname;
    tm_schema_t *declared;
    tm_schema_t *key_schema; /* NULL: the key columns' own types */
    int *key_cols;
    int nkeys;
    int64_t max_retries;

    PGconn *conn;
    bool prepared;
    lk_col_t *cols; /* per declared column, filled by open */
    char *sql;
    tm_batch_t *scratch; /* parameters and result rows of the last fetch */
};


static void split_table(const char *t, char **nsp, char **rel)
{
    const char *dot = strchr(t, '.');
    if (dot == NULL) {
        *nsp = strdup("public");
        *rel = strdup(t);
    } else {
        *nsp = strndup(t, (size_t)(dot - t));
        *rel = strdup(dot + 1);
    }
}

int tm_pglk_new(tm_lookup_t **out, const tm_lookup_config_t *cfg, char *errstr,
                  size_t errstr_size)
{
    *out = NULL;
    const tm_options_t *o = cfg->opts;
    if (!tm_opt_bool(o, "lookup"))
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': connector 'postgres' is a lookup table only with lookup = "
                         "true (add it to WITH (…)); without it the table is a sink (INSERT "
                         "INTO), and connector = 'postgres-cdc' reads a table's changes as a "
                         "source",
                         cfg->name);
    if (cfg->declared == NULL || cfg->declared->ncols == 0 || cfg->declared->nkeys == 0)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "lookup table '%s' must declare its columns and PRIMARY KEY, e.g. "
                         "CREATE TABLE %s (id int PRIMARY KEY, label text) WITH (connector = "
                         "'postgres', …, lookup = true)",
                         cfg->name, cfg->name);
    const char *table = tm_opt_str(o, "table");
    if (table == NULL || table[0] == '\0' || table[strlen(table) - 1] == '.' || table[0] == '.')
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "lookup table '%s': option 'table' must name the database table as "
                         "schema.table (or table, in schema public)",
                         cfg->name);
    if (tm_opt_int(o, "lookup_cache_rows") < 0 || tm_opt_int(o, "lookup_max_retries") < 0 ||
        tm_opt_int(o, "lookup_max_retries") > 100)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "lookup table '%s': lookup_cache_rows must be 0 or more and "
                         "lookup_max_retries between 0 and 100",
                         cfg->name);
    if (cfg->nkeys <= 0 || cfg->key_cols == NULL)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "lookup table '%s': the plan gave no key columns", cfg->name);
    tm_lookup_t *lk = calloc(1, sizeof(*lk));
    if (lk == NULL)
        return TM_ENOMEM;
    lk->name = strdup(cfg->name);
    lk->dsn = strdup(tm_opt_str(o, "dsn") ? tm_opt_str(o, "dsn") : "");
    lk->dsn_masked = lk->dsn ? tm_dsn_mask(lk->dsn) : NULL;
    split_table(table, &lk->nspname, &lk->relname);
    lk->declared = tm_schema_ref((tm_schema_t *)cfg->declared);
    lk->key_schema = cfg->key_schema ? tm_schema_ref((tm_schema_t *)cfg->key_schema) : NULL;
    lk->nkeys = cfg->nkeys;
    lk->key_cols = malloc(sizeof(int) * (size_t)cfg->nkeys);
    lk->max_retries = tm_opt_int(o, "lookup_max_retries");
    if (!lk->name || !lk->dsn || !lk->dsn_masked || !lk->nspname || !lk->relname ||
        !lk->key_cols) {
        tm_pglk_free(lk);
        return TM_ENOMEM;
    }
    for (int k = 0; k < cfg->nkeys; k++) {
        if (cfg->key_cols[k] < 0 || cfg->key_cols[k] >= cfg->declared->ncols ||
            (lk->key_schema != NULL && lk->key_schema->ncols != cfg->nkeys)) {
            tm_pglk_free(lk);
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "lookup table '%s': the plan gave a bad key layout", cfg->name);
        }
        lk->key_cols[k] = cfg->key_cols[k];
    }
    *out = lk;
    return 0;
}

void tm_pglk_free(tm_lookup_t *lk)
{
    if (lk == NULL)
        return;
    if (lk->conn != NULL)
        PQfinish(lk->conn);
    for (int i = 0; lk->cols != NULL && lk->declared != NULL && i < lk->declared->ncols; i++)
        free(lk->cols[i].actual_name);
    free(lk->cols);
    free(lk->sql);
    tm_batch_unref(lk->scratch);
    tm_schema_unref(lk->declared);
    tm_schema_unref(lk->key_schema);
    free(lk->key_cols);
    free(lk->name);
    free(lk->dsn);
    free(lk->dsn_masked);
    free(lk->nspname);
    free(lk->relname);
    free(lk);
}

/* The built-in oid whose text parses into a declared type, or 0 (keep the column's own). */
static uint32_t builtin_oid(tm_type_t t)
{
    switch (t) {
    case TM_T_BOOL:
        return 16;
    case TM_T_INT16:
        return 21;
    case TM_T_INT32:
        return 23;
    case TM_T_INT64:
        return 20;
    case TM_T_FLOAT32:
        return 700;
    case TM_T_FLOAT64:
        return 701;
    case TM_T_NUMERIC:
        return 1700;
    case TM_T_TEXT:
        return 25;
    case TM_T_BYTES:
        return 17;
    case TM_T_JSON:
        return 114;
    case TM_T_UUID:
        return 2950;
    case TM_T_DATE:
        return 1082;
    case TM_T_TIME:
        return 1083;
    case TM_T_TIMETZ:
        return 1266;
    case TM_T_TIMESTAMP:
        return 1114;
    case TM_T_TIMESTAMPTZ:
        return 1184;
    case TM_T_INTERVAL:
        return 1186;
    default:
        return 0;
    }
}

/* Frees what tm_pg_column_describe allocated in a stack column. */
static void col_clear(tm_column_t *c)
{
    free(c->name);
    free(c->db_type);
    free(c->semantic);
    free(c->enum_values);
    free(c->default_value);
    memset(c, 0, sizeof(*c));
}

static bool numeric_family(tm_type_t t)
{
    return t == TM_T_INT16 || t == TM_T_INT32 || t == TM_T_INT64 || t == TM_T_FLOAT32 ||
           t == TM_T_FLOAT64 || t == TM_T_NUMERIC;
}

static const char *where_table(const tm_lookup_t *lk, char *buf, size_t len)
{
    snprintf(buf, len, "%s.%s", lk->nspname, lk->relname);
    return buf;
}

/* One catalog query with text parameters; the result or NULL with errstr filled. */
static PGresult *catalog(tm_lookup_t *lk, const char *sql, int n, const char *const *params,
                         char *errstr, size_t errstr_size)
{
    char mbuf[512];
    PGresult *res = PQexecParams(lk->conn, sql, n, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        tm_seterr(errstr, errstr_size, TM_ESOURCE,
                  "lookup table '%s': reading the catalog of %s.%s failed: %s", lk->name,
                  lk->nspname, lk->relname, tm_pg_msg(PQresultErrorMessage(res), mbuf,
                                                      sizeof(mbuf)));
        PQclear(res);
        return NULL;
    }
    return res;
}

/* Checks the table, its columns and its unique key against the declaration; fills lk->cols. */
static int check_catalog(tm_lookup_t *lk, char *errstr, size_t errstr_size)
{
    char tb[600];
    const char *p2[2] = {lk->nspname, lk->relname};
    PGresult *res = catalog(lk,
                            "SELECT c.oid::text, c.relkind::text FROM pg_catalog.pg_class c "
                            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
                            "WHERE n.nspname = $1 AND c.relname = $2",
                            2, p2, errstr, errstr_size);
    if (res == NULL)
        return TM_ESOURCE;
    if (PQntuples(res) != 1 || PQnfields(res) != 2) {
        PQclear(res);
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "lookup table '%s': table %s does not exist in the database of dsn "
                         "'%s'; create it, or fix the option 'table' (schema.table)",
                         lk->name, where_table(lk, tb, sizeof(tb)), lk->dsn_masked);
    }
    char oid[32];
    snprintf(oid, sizeof(oid), "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    const char *p1[1] = {oid};
    res = catalog(lk,
                  "SELECT a.attname, a.atttypid::text, a.atttypmod::text, "
                  "pg_catalog.format_type(a.atttypid, NULL) FROM pg_catalog.pg_attribute a "
                  "WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped",
                  1, p1, errstr, errstr_size);
    if (res == NULL)
        return TM_ESOURCE;
    int rc = 0;
    if (PQnfields(res) != 4)
        rc = tm_seterr(errstr, errstr_size, TM_EPROTO, "lookup table '%s': unexpected catalog "
                       "answer", lk->name);
    lk->cols = calloc((size_t)lk->declared->ncols, sizeof(*lk->cols));
    if (rc == 0 && lk->cols == NULL)
        rc = TM_ENOMEM;
    for (int i = 0; rc == 0 && i < lk->declared->ncols; i++) {
        const tm_column_t *d = &lk->declared->cols[i];
        int row = -1;
        for (int r = 0; r < PQntuples(res) && row < 0; r++)
            if (strcmp(PQgetvalue(res, r, 0), d->name) == 0)
                row = r;
        if (row < 0) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "lookup table '%s': declared column '%s' does not exist in %s; fix "
                           "the column list or the option 'table'",
                           lk->name, d->name, where_table(lk, tb, sizeof(tb)));
            break;
        }
        uint32_t toid = (uint32_t)strtoul(PQgetvalue(res, row, 1), NULL, 10);
        int32_t typmod = (int32_t)strtol(PQgetvalue(res, row, 2), NULL, 10);
        tm_column_t col;
        memset(&col, 0, sizeof(col));
        tm_pg_coltype_t act;
        if (tm_pg_column_describe(NULL, toid, typmod, &col, &act) != 0) {
            rc = TM_ENOMEM;
            break;
        }
        lk->cols[i].actual = col.type;
        lk->cols[i].actual_name = strdup(PQgetvalue(res, row, 3));
        col_clear(&col);
        if (lk->cols[i].actual_name == NULL) {
            rc = TM_ENOMEM;
            break;
        }
        if (d->type != 0 && !tm_pg_types_compatible(d->type, lk->cols[i].actual)) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "lookup table '%s': declared column '%s' has type %s, but %s.%s is "
                           "%s (%s); declare it as %s",
                           lk->name, d->name, tm_type_name(d->type),
                           where_table(lk, tb, sizeof(tb)), d->name, lk->cols[i].actual_name,
                           tm_type_name(lk->cols[i].actual), tm_type_name(lk->cols[i].actual));
            break;
        }
        uint32_t b = d->type != 0 ? builtin_oid(d->type) : 0;
        if (b != 0) {
            tm_column_t bc;
            memset(&bc, 0, sizeof(bc));
            if (tm_pg_column_describe(NULL, b, -1, &bc, &lk->cols[i].ct) != 0)
                rc = TM_ENOMEM;
            col_clear(&bc);
        } else {
            lk->cols[i].ct = act;
        }
    }
    PQclear(res);
    if (rc != 0)
        return rc;
    /* The declared PRIMARY KEY must be the table's primary key or a unique index, as a set. */
    res = catalog(lk,
                  "SELECT i.indisprimary::text, (SELECT pg_catalog.string_agg(a.attname, "
                  "chr(1) ORDER BY a.attname COLLATE \"C\") FROM pg_catalog.pg_attribute a "
                  "WHERE a.attrelid = i.indrelid AND a.attnum = ANY ((i.indkey::int2[])"
                  "[0:i.indnkeyatts - 1])) FROM pg_catalog.pg_index i WHERE i.indrelid = "
                  "$1::oid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL AND "
                  "i.indexprs IS NULL ORDER BY i.indisprimary DESC",
                  1, p1, errstr, errstr_size);
    if (res == NULL)
        return TM_ESOURCE;
    /* The declared key's names, sorted bytewise, joined by \1 (the query's form). */
    int nk = lk->declared->nkeys;
    const char **names = calloc((size_t)nk, sizeof(char *));
    if (names == NULL) {
        PQclear(res);
        return TM_ENOMEM;
    }
    for (int k = 0; k < nk; k++)
        names[k] = lk->declared->cols[lk->declared->key_cols[k]].name;
    for (int a = 0; a < nk; a++)
        for (int b = a + 1; b < nk; b++)
            if (strcmp(names[b], names[a]) < 0) {
                const char *t = names[a];
                names[a] = names[b];
                names[b] = t;
            }
    char want[1024] = "", pretty[1024] = "";
    size_t wl = 0, pl = 0;
    for (int k = 0; k < nk; k++) {
        wl += (size_t)snprintf(want + wl, wl < sizeof(want) ? sizeof(want) - wl : 0, "%s%s",
                               k ? "\x01" : "", names[k]);
        pl += (size_t)snprintf(pretty + pl, pl < sizeof(pretty) ? sizeof(pretty) - pl : 0,
                               "%s%s", k ? ", " : "", names[k]);
    }
    free(names);
    bool found = false;
    char pk[1024] = "";
    for (int r = 0; r < PQntuples(res) && PQnfields(res) == 2; r++) {
        const char *cols = PQgetvalue(res, r, 1);
        if (strcmp(cols, want) == 0)
            found = true;
        if (strcmp(PQgetvalue(res, r, 0), "true") == 0 && pk[0] == '\0') {
            snprintf(pk, sizeof(pk), "%s", cols);
            for (char *c = pk; *c; c++)
                if (*c == '\x01')
                    *c = ',';
        }
    }
    PQclear(res);
    if (!found)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "lookup table '%s': the declared PRIMARY KEY (%s) is not the primary "
                         "key or a unique index of %s%s%s%s; a lookup reads one row per key, so "
                         "declare the table's own key%s",
                         lk->name, pretty, where_table(lk, tb, sizeof(tb)),
                         pk[0] ? " (its primary key is (" : "", pk, pk[0] ? "))" : "",
                         pk[0] ? "" : ", or add a unique index on those columns");
    return 0;
}

/* Builds the fetch statement from the catalog's answers (lk->cols). */
static int build_sql(tm_lookup_t *lk)
{
    tm_buf_t b;
    tm_buf_init(&b);
    tm_buf_appendf(&b, "SELECT k.ord");
    int rc = 0;
    for (int i = 0; rc == 0 && i < lk->declared->ncols; i++) {
        const tm_column_t *d = &lk->declared->cols[i];
        char *q = tm_pg_quote_ident(d->name);
        if (q == NULL) {
            rc = TM_ENOMEM;
            break;
        }
        if (d->type != 0 && builtin_oid(d->type) != 0)
            tm_buf_appendf(&b, ", t.%s::%s", q, tm_expr_sql_type_name(d->type));
        else
            tm_buf_appendf(&b, ", t.%s", q);
        free(q);
    }
    tm_buf_appendf(&b, " FROM unnest(");
    for (int k = 0; rc == 0 && k < lk->nkeys; k++) {
        int c = lk->key_cols[k];
        tm_type_t probe =
            lk->key_schema ? lk->key_schema->cols[k].type : lk->declared->cols[c].type;
        tm_type_t actual = lk->cols[c].actual;
        const char *tn = probe != actual && numeric_family(probe) && numeric_family(actual)
                             ? tm_expr_sql_type_name(probe)
                             : lk->cols[c].actual_name;
        tm_buf_appendf(&b, "%s$%d::%s[]", k ? ", " : "", k + 1, tn);
    }
    tm_buf_appendf(&b, ") WITH ORDINALITY AS k(");
    for (int k = 0; k < lk->nkeys; k++)
        tm_buf_appendf(&b, "v%d, ", k + 1);
    char *n = tm_pg_quote_ident(lk->nspname), *r = tm_pg_quote_ident(lk->relname);
    if (n == NULL || r == NULL)
        rc = TM_ENOMEM;
    else
        tm_buf_appendf(&b, "ord) JOIN %s.%s AS t ON ", n, r);
    free(n);
    free(r);
    for (int k = 0; rc == 0 && k < lk->nkeys; k++) {
        char *q = tm_pg_quote_ident(lk->declared->cols[lk->key_cols[k]].name);
        if (q == NULL) {
            rc = TM_ENOMEM;
            break;
        }
        tm_buf_appendf(&b, "%st.%s = k.v%d", k ? " AND " : "", q, k + 1);
        free(q);
    }
    if (rc != 0 || b.data == NULL) {
        tm_buf_release(&b);
        return rc ? rc : TM_ENOMEM;
    }
    free(lk->sql);
    lk->sql = strdup(b.data);
    tm_buf_release(&b);
    return lk->sql ? 0 : TM_ENOMEM;
}

/* Connects (when not connected) and prepares the statement. */
static int ensure_conn(tm_lookup_t *lk, char *errstr, size_t errstr_size)
{
    char mbuf[512];
    bool alive = lk->conn != NULL && PQstatus(lk->conn) == CONNECTION_OK;
    if (alive && (lk->prepared || lk->sql == NULL))
        return 0;
    if (!alive) {
        if (lk->conn != NULL)
            PQfinish(lk->conn);
        lk->conn = NULL;
        lk->prepared = false;
        int rc = tm_pgc_connect(lk->dsn, lk->dsn_masked, false, "", &lk->conn, errstr,
                                   errstr_size);
        if (rc != 0)
            return rc;
    }
    int rc;
    if (lk->sql == NULL)
        return 0; /* lookup_open prepares once the catalog is checked */
    PGresult *res = PQprepare(lk->conn, LK_STMT, lk->sql, lk->nkeys, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        rc = tm_seterr(errstr, errstr_size,
                       PQstatus(lk->conn) == CONNECTION_OK ? TM_ESOURCE : TM_ECONN,
                       "lookup table '%s': preparing the lookup query on %s.%s failed: %s",
                       lk->name, lk->nspname, lk->relname,
                       tm_pg_msg(PQresultErrorMessage(res), mbuf, sizeof(mbuf)));
        PQclear(res);
        return rc;
    }
    PQclear(res);
    lk->prepared = true;
    return 0;
}

int tm_pglk_open(tm_lookup_t *lk, char *errstr, size_t errstr_size)
{
    int rc = ensure_conn(lk, errstr, errstr_size);
    if (rc != 0 && rc != TM_ENOMEM && errstr_size > 0) {
        /* Name the table: a job may read several databases. */
        char *msg = strdup(errstr);
        if (msg != NULL)
            tm_seterr(errstr, errstr_size, rc, "lookup table '%s': %s", lk->name, msg);
        free(msg);
    }
    if (rc == 0)
        rc = check_catalog(lk, errstr, errstr_size);
    if (rc == 0)
        rc = build_sql(lk);
    if (rc == 0)
        rc = ensure_conn(lk, errstr, errstr_size);
    if (rc == 0 && (lk->scratch = tm_batch_new()) == NULL)
        rc = TM_ENOMEM;
    if (rc == TM_ENOMEM)
        tm_seterr(errstr, errstr_size, rc, "lookup table '%s': out of memory", lk->name);
    return rc;
}

/* Appends one array element: "text" with " and \ escaped. */
static void append_elem(tm_buf_t *b, const char *p, size_t len)
{
    tm_buf_append(b, "\"", 1);
    size_t start = 0;
    for (size_t i = 0; i < len; i++)
        if (p[i] == '"' || p[i] == '\\') {
            tm_buf_append(b, p + start, i - start);
            tm_buf_append(b, "\\", 1);
            start = i;
        }
    tm_buf_append(b, p + start, len - start);
    tm_buf_append(b, "\"", 1);
}

/* One attempt: 0, TM_ECONN (connection lost: retry), or another error (do not). */
static int fetch_once(tm_lookup_t *lk, const char *const *params, int nkeys, tm_lookup_row_fn fn,
                      void *arg, char *errstr, size_t errstr_size)
{
    char mbuf[512], perr[256];
    PGresult *res = PQexecPrepared(lk->conn, LK_STMT, lk->nkeys, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        bool lost = PQstatus(lk->conn) != CONNECTION_OK;
        int rc = tm_seterr(errstr, errstr_size, lost ? TM_ECONN : TM_ESOURCE,
                           "lookup table '%s': the lookup in %s.%s failed: %s", lk->name,
                           lk->nspname, lk->relname,
                           res ? tm_pg_msg(PQresultErrorMessage(res), mbuf, sizeof(mbuf))
                               : tm_pg_msg(PQerrorMessage(lk->conn), mbuf, sizeof(mbuf)));
        PQclear(res);
        return rc;
    }
    int ncols = lk->declared->ncols;
    int rc = 0;
    if (PQnfields(res) != ncols + 1)
        rc = tm_seterr(errstr, errstr_size, TM_EPROTO,
                       "lookup table '%s': the server answered %d columns, expected %d",
                       lk->name, PQnfields(res), ncols + 1);
    for (int r = 0; rc == 0 && r < PQntuples(res); r++) {
        char *end = NULL;
        long ord = PQgetisnull(res, r, 0) ? 0 : strtol(PQgetvalue(res, r, 0), &end, 10);
        if (ord < 1 || ord > nkeys || end == NULL || *end != '\0') {
            rc = tm_seterr(errstr, errstr_size, TM_EPROTO,
                           "lookup table '%s': the server answered a bad key ordinal", lk->name);
            break;
        }
        tm_row_t *row = tm_batch_new_row(lk->scratch, lk->declared);
        if (row == NULL) {
            rc = TM_ENOMEM;
            break;
        }
        for (int c = 0; rc == 0 && c < ncols; c++) {
            if (PQgetisnull(res, r, c + 1)) {
                tm_row_set_null(row, c, true);
                continue;
            }
            tm_row_set_null(row, c, false);
            rc = tm_pg_value_parse(lk->scratch, &lk->cols[c].ct, PQgetvalue(res, r, c + 1),
                                   (size_t)PQgetlength(res, r, c + 1), &row->vals[c], perr,
                                   sizeof(perr));
            if (rc == TM_EPROTO)
                rc = tm_seterr(errstr, errstr_size, TM_ESOURCE,
                               "lookup table '%s': column '%s' of %s.%s holds a value that "
                               "cannot be read as %s: %s",
                               lk->name, lk->declared->cols[c].name, lk->nspname, lk->relname,
                               tm_type_name(lk->declared->cols[c].type), perr);
        }
        if (rc == 0)
            rc = fn(arg, (int)ord - 1, row);
    }
    PQclear(res);
    if (rc == TM_ENOMEM && (errstr_size == 0 || errstr[0] == '\0'))
        tm_seterr(errstr, errstr_size, rc, "lookup table '%s': out of memory", lk->name);
    return rc;
}

int tm_pglk_fetch(tm_lookup_t *lk, const tm_row_t *const *keys, int nkeys, tm_lookup_row_fn fn,
                    void *arg, char *errstr, size_t errstr_size)
{
    if (nkeys <= 0)
        return 0;
    tm_batch_unref(lk->scratch);
    if ((lk->scratch = tm_batch_new()) == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    /* The parameters: one text array per key column. */
    tm_buf_t *arrays = calloc((size_t)lk->nkeys, sizeof(tm_buf_t));
    const char **params = calloc((size_t)lk->nkeys, sizeof(char *));
    int rc = arrays && params ? 0 : TM_ENOMEM;
    for (int k = 0; rc == 0 && k < lk->nkeys; k++) {
        tm_buf_init(&arrays[k]);
        tm_type_t t = lk->key_schema ? lk->key_schema->cols[k].type
                                     : lk->declared->cols[lk->key_cols[k]].type;
        int col = lk->key_schema ? k : lk->key_cols[k];
        tm_buf_append(&arrays[k], "{", 1);
        for (int i = 0; rc == 0 && i < nkeys; i++) {
            if (i > 0)
                tm_buf_append(&arrays[k], ",", 1);
            if (tm_row_is_null(keys[i], col)) {
                tm_buf_append(&arrays[k], "NULL", 4);
                continue;
            }
            const char *p = NULL;
            size_t len = 0;
            rc = tm_expr_datum_text(t, &keys[i]->vals[col], &lk->scratch->arena, &p, &len);
            if (rc == 0)
                append_elem(&arrays[k], p, len);
        }
        tm_buf_append(&arrays[k], "}", 1);
        params[k] = arrays[k].data;
        if (params[k] == NULL)
            rc = TM_ENOMEM;
    }
    char last[1024] = "";
    for (int attempt = 0; rc == 0; attempt++) {
        rc = ensure_conn(lk, errstr, errstr_size);
        if (rc == 0)
            rc = fetch_once(lk, params, nkeys, fn, arg, errstr, errstr_size);
        if (rc != TM_ECONN)
            break;
        snprintf(last, sizeof(last), "%s", errstr);
        if (attempt >= lk->max_retries) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONN,
                           "lookup table '%s' (%s.%s): the lookup failed after %d "
                           "retr%s: %s",
                           lk->name, lk->nspname, lk->relname, attempt, attempt == 1 ? "y" : "ies",
                           last);
            break;
        }
        TM_WARN(TM_PG_COMP, "lookup connection lost, retrying", "table=%s attempt=%d error=%s",
                lk->name, attempt + 1, last);
        int64_t ms = (int64_t)100 << (attempt < 6 ? attempt : 6);
        if (ms > 5000)
            ms = 5000;
        struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        rc = 0;
    }
    for (int k = 0; arrays && k < lk->nkeys; k++)
        tm_buf_release(&arrays[k]);
    free(arrays);
    free(params);
    if (rc == TM_ENOMEM && (errstr_size == 0 || errstr[0] == '\0'))
        tm_seterr(errstr, errstr_size, rc, "lookup table '%s': out of memory", lk->name);
    return rc;
}

void tm_pglk_describe(const tm_lookup_t *lk, void (*line)(void *arg, const char *text),
                        void *arg)
{
    char buf[1024];
    size_t n = (size_t)snprintf(buf, sizeof(buf), "table %s.%s, one query per batch of keys: "
                                "SELECT … FROM %s.%s WHERE (",
                                lk->nspname, lk->relname, lk->nspname, lk->relname);
    for (int k = 0; k < lk->nkeys && n < sizeof(buf); k++)
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s%s", k ? ", " : "",
                              lk->declared->cols[lk->key_cols[k]].name);
    if (n < sizeof(buf))
        snprintf(buf + n, sizeof(buf) - n, ") IN (the batch's distinct keys)");
    line(arg, buf);
    snprintf(buf, sizeof(buf), "dsn %s; a lost connection is retried %lld time(s) with backoff",
             lk->dsn_masked, (long long)lk->max_retries);
    line(arg, buf);
}

