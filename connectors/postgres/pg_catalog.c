/*
 * pg_catalog.c — connections and catalog knowledge of the PostgreSQL source.
 *
 * Role: opens libpq connections with deterministic session settings, and
 * turns catalog rows and Relation messages into tm_schema_t objects with the
 * parse descriptors of their columns.
 *
 * Invariants:
 *   1. A relation's schema is replaced only by a schema of a different shape
 *      (columns, types, nullability, defaults, key, replica identity); an
 *      identical Relation message,
 *      as sent again after every reconnect, keeps the published object, so
 *      downstream operators see one schema version per real change.
 *   2. Every schema built here carries source_name = the job's table name,
 *      db = the connected database, and relid = the table's oid.
 *   3. Nothing here logs secrets: connection errors show the masked DSN.
 *
 * Thread: main thread during open, the source thread afterwards.
 */
#include "postgres/pg_conn.h"
#include "postgres/postgres_int.h"

#include "core/error.h"
#include "core/log.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Strips libpq's trailing newline(s) into a static-free copy in buf. */
const char *tm_pg_msg(const char *m, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "%s", m != NULL ? m : "");
    size_t n = strlen(buf);
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' '))
        buf[--n] = '\0';
    /* Multi-line messages read better on one log line. */
    for (char *p = buf; *p; p++)
        if (*p == '\n')
            *p = ' ';
    return buf;
}

int tm_pg_connect(tm_source_t *src, bool replication, PGconn **out, char *errstr,
                  size_t errstr_size)
{
    return tm_pgc_connect(src->dsn, src->dsn_masked, replication,
                          replication ? " (replication connection)" : "", out, errstr, errstr_size);
}

int tm_pg_conn_ensure(tm_source_t *src, char *errstr, size_t errstr_size)
{
    if (src->conn != NULL && PQstatus(src->conn) == CONNECTION_OK &&
        PQtransactionStatus(src->conn) != PQTRANS_UNKNOWN)
        return 0;
    if (src->conn != NULL) {
        TM_WARN(TM_PG_COMP, "reconnecting normal connection", "source=%s", src->name);
        PQfinish(src->conn);
        src->conn = NULL;
    }
    return tm_pg_connect(src, false, &src->conn, errstr, errstr_size);
}

int tm_pg_exec(PGconn *conn, const char *sql, char *errstr, size_t errstr_size)
{
    char mbuf[512];
    PGresult *res = PQexec(conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = tm_seterr(errstr, errstr_size, TM_ESOURCE, "PostgreSQL rejected \"%.200s\": %s", sql,
                       tm_pg_msg(PQresultErrorMessage(res), mbuf, sizeof(mbuf)));
    PQclear(res);
    return rc;
}

static char *quote_with(const char *s, char q)
{
    size_t n = 2;
    for (const char *p = s; *p; p++)
        n += *p == q ? 2 : 1;
    char *out = malloc(n + 1), *o = out;
    if (out == NULL)
        return NULL;
    *o++ = q;
    for (const char *p = s; *p; p++) {
        if (*p == q)
            *o++ = q;
        *o++ = *p;
    }
    *o++ = q;
    *o = '\0';
    return out;
}

char *tm_pg_quote_ident(const char *s)
{
    return quote_with(s, '"');
}

char *tm_pg_quote_literal(const char *s)
{
    /* standard_conforming_strings is on in every supported server: only quotes double. */
    return quote_with(s, '\'');
}

/* ---- Types ---- */

static int load_type(tm_source_t *src, uint32_t oid, char *errstr, size_t errstr_size)
{
    char mbuf[512], oidbuf[16];
    int rc = tm_pg_conn_ensure(src, errstr, errstr_size);
    if (rc != 0)
        return rc;
    snprintf(oidbuf, sizeof(oidbuf), "%" PRIu32, oid);
    const char *params[1] = {oidbuf};
    PGresult *res = PQexecParams(
        src->conn,
        "SELECT t.typname, n.nspname, t.typtype, "
        "       CASE WHEN t.typcategory = 'A' THEN t.typelem ELSE 0 END, "
        "       t.typbasetype, t.typtypmod, t.typdelim, "
        "       (SELECT string_agg(e.enumlabel, ',' ORDER BY e.enumsortorder) "
        "          FROM pg_catalog.pg_enum e WHERE e.enumtypid = t.oid) "
        "  FROM pg_catalog.pg_type t JOIN pg_catalog.pg_namespace n ON n.oid = t.typnamespace "
        " WHERE t.oid = $1::oid",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONN, "cannot look up type %" PRIu32 ": %s", oid,
                       tm_pg_msg(PQresultErrorMessage(res), mbuf, sizeof(mbuf)));
        PQclear(res);
        return rc;
    }
    tm_pg_typeinfo_t info;
    memset(&info, 0, sizeof(info));
    info.oid = oid;
    char namebuf[32];
    if (PQntuples(res) == 0) {
        /* A type dropped since the change was written: keep its text form. */
        snprintf(namebuf, sizeof(namebuf), "oid:%" PRIu32, oid);
        const tm_pg_typeinfo_t *known = tm_pg_typecache_get(src->types, oid);
        info.name = known != NULL && known->name != NULL ? known->name : namebuf;
        info.typtype = 'b';
    } else {
        info.name = PQgetvalue(res, 0, 0);
        info.nspname = PQgetvalue(res, 0, 1);
        info.typtype = PQgetvalue(res, 0, 2)[0];
        info.elem_oid = (uint32_t)strtoul(PQgetvalue(res, 0, 3), NULL, 10);
        info.base_oid = (uint32_t)strtoul(PQgetvalue(res, 0, 4), NULL, 10);
        info.base_typmod = (int32_t)strtol(PQgetvalue(res, 0, 5), NULL, 10);
        info.delim = PQgetvalue(res, 0, 6)[0];
        info.enum_labels = PQgetisnull(res, 0, 7) ? NULL : PQgetvalue(res, 0, 7);
        if (info.typtype == 0)
            info.typtype = 'b';
    }
    rc = tm_pg_typecache_put(src->types, &info);
    PQclear(res);
    return rc;
}

int tm_pg_types_resolve(tm_source_t *src, uint32_t oid, char *errstr, size_t errstr_size)
{
    /* Each round learns one oid of the chain; the chain is short (array → domain → base). */
    for (int i = 0; i < 16; i++) {
        uint32_t missing = tm_pg_type_missing(src->types, oid);
        if (missing == 0)
            return 0;
        int rc = load_type(src, missing, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* ---- Relation cache ---- */

tm_pg_rel_t *tm_pg_rel_find(tm_source_t *src, uint32_t relid)
{
    for (int i = 0; i < src->nrels; i++)
        if (src->rels[i].relid == relid)
            return &src->rels[i];
    return NULL;
}

bool tm_pg_wanted(const tm_source_t *src, const char *nspname, const char *relname)
{
    for (int i = 0; i < src->nspecs; i++) {
        const tm_pg_tablespec_t *s = &src->specs[i];
        if (strcmp(s->nspname, nspname) != 0)
            continue;
        if (s->relname == NULL || strcmp(s->relname, relname) == 0)
            return true;
    }
    return false;
}

static bool same_shape(const tm_schema_t *a, const tm_schema_t *b)
{
    if (!tm_schema_equal_shape(a, b) || a->full_identity != b->full_identity ||
        a->ncols != b->ncols)
        return false;
    if ((a->namespace == NULL) != (b->namespace == NULL) ||
        (a->table == NULL) != (b->table == NULL))
        return false;
    if (a->namespace && strcmp(a->namespace, b->namespace) != 0)
        return false;
    if (a->table && strcmp(a->table, b->table) != 0)
        return false;
    for (int i = 0; i < a->ncols; i++) {
        const tm_column_t *x = &a->cols[i], *y = &b->cols[i];
        if (strcmp(x->name, y->name) != 0 || x->type != y->type || x->elem_type != y->elem_type ||
            x->type_oid != y->type_oid || x->typmod != y->typmod || x->key_index != y->key_index ||
            x->nullable != y->nullable || !tm_column_default_equal(x, y))
            return false;
    }
    return true;
}

int tm_pg_rel_install(tm_source_t *src, uint32_t relid, char replident, tm_schema_t *schema,
                      tm_pg_coltype_t *ct, bool *changed)
{
    *changed = false;
    tm_pg_rel_t *rel = tm_pg_rel_find(src, relid);
    if (rel == NULL) {
        if (src->nrels == src->relcap) {
            int ncap = src->relcap ? src->relcap * 2 : 16;
            tm_pg_rel_t *v = realloc(src->rels, sizeof(*v) * (size_t)ncap);
            if (v == NULL) {
                tm_schema_unref(schema);
                free(ct);
                return TM_ENOMEM;
            }
            src->rels = v;
            src->relcap = ncap;
        }
        rel = &src->rels[src->nrels++];
        memset(rel, 0, sizeof(*rel));
        rel->relid = relid;
    } else if (rel->schema != NULL) {
        if (same_shape(rel->schema, schema)) {
            /* The published object stays; only the parse descriptors are refreshed. */
            tm_schema_unref(schema);
            free(rel->ct);
            rel->ct = ct;
            rel->replident = replident;
            return 0;
        }
        schema->version = rel->schema->version + 1;
        *changed = true;
        for (int i = 0; i < schema->ncols && i < rel->schema->ncols; i++) {
            const tm_column_t *x = &rel->schema->cols[i], *y = &schema->cols[i];
            if (strcmp(x->name, y->name) != 0 || x->type != y->type ||
                x->precision != y->precision || x->scale != y->scale ||
                x->nullable != y->nullable || x->key_index != y->key_index ||
                x->type_oid != y->type_oid || x->typmod != y->typmod ||
                x->elem_type != y->elem_type || strcmp(x->db_type, y->db_type) != 0 ||
                (x->enum_values == NULL) != (y->enum_values == NULL) ||
                (x->enum_values && strcmp(x->enum_values, y->enum_values) != 0)) {
                TM_DEBUG(TM_PG_COMP, "column changed",
                         "relid=%" PRIu32 " column=%s type=%s/%s oid=%" PRIu32 "/%" PRIu32
                         " typmod=%d/%d nullable=%d/%d key=%d/%d db_type=%s/%s",
                         relid, y->name, tm_type_name(x->type), tm_type_name(y->type),
                         x->type_oid, y->type_oid, x->typmod, y->typmod, x->nullable,
                         y->nullable, x->key_index, y->key_index, x->db_type, y->db_type);
                break;
            }
        }
        tm_schema_unref(rel->schema);
    }
    rel->schema = schema;
    free(rel->ct);
    rel->ct = ct;
    rel->replident = replident;
    rel->wanted = schema->namespace != NULL && schema->table != NULL &&
                  tm_pg_wanted(src, schema->namespace, schema->table);
    return 0;
}

void tm_pg_rels_free(tm_source_t *src)
{
    for (int i = 0; i < src->nrels; i++) {
        tm_schema_unref(src->rels[i].schema);
        free(src->rels[i].ct);
    }
    free(src->rels);
    src->rels = NULL;
    src->nrels = src->relcap = 0;
}

static int schema_identity(tm_source_t *src, tm_schema_t *s, uint32_t relid, const char *nspname,
                           const char *relname)
{
    tm_schema_set_str(&s->source_name, src->name);
    tm_schema_set_str(&s->db, src->dbname);
    tm_schema_set_str(&s->namespace, nspname);
    tm_schema_set_str(&s->table, relname);
    s->relid = relid;
    s->version = 1;
    if (!s->source_name || (src->dbname && !s->db) || !s->namespace || !s->table)
        return TM_ENOMEM;
    return 0;
}

/*
 * Nullability and primary key of relid's columns, from the catalog.  A
 * Relation message carries neither (its key flags are the replica identity:
 * every column under FULL, none under NOTHING, some unique index under
 * INDEX), and the snapshot's schema is built from the catalog, so both paths
 * must agree for an unchanged table to keep one schema version.
 */
typedef struct attinfo {
    char *name;
    bool notnull;
    int pkpos;     /* position in the primary key, -1 if not part of it */
    char *defexpr; /* pg_get_expr of the column's DEFAULT, or NULL */
} attinfo_t;

static void free_attinfo(attinfo_t *a, int n)
{
    for (int i = 0; i < n; i++) {
        free(a[i].name);
        free(a[i].defexpr);
    }
    free(a);
}

/*
 * Sets the column's default from the catalog's text of its DEFAULT
 * expression, read as Debezium reads it (tm_pg_default_parse).  *tmp is a
 * scratch batch for the parse, made on first use; the caller unrefs it.
 */
static int apply_default(tm_batch_t **tmp, tm_column_t *c, const tm_pg_coltype_t *ct,
                         const char *expr)
{
    if (expr == NULL)
        return 0;
    if (*tmp == NULL && (*tmp = tm_batch_new()) == NULL)
        return TM_ENOMEM;
    tm_datum_t d;
    bool has;
    int rc = tm_pg_default_parse(*tmp, c, ct, expr, &d, &has);
    if (rc != 0 || !has)
        return rc;
    return tm_column_set_default(c, &d);
}

static int attrs_info(tm_source_t *src, uint32_t relid, attinfo_t **out, int *n, char *errstr,
                      size_t errstr_size)
{
    char oidbuf[16], mbuf[512];
    *out = NULL;
    *n = 0;
    int rc = tm_pg_conn_ensure(src, errstr, errstr_size);
    if (rc != 0)
        return rc;
    snprintf(oidbuf, sizeof(oidbuf), "%" PRIu32, relid);
    const char *params[1] = {oidbuf};
    PGresult *res = PQexecParams(
        src->conn,
        "SELECT a.attname, a.attnotnull, "
        "       (SELECT k.pos FROM pg_catalog.pg_index i, generate_subscripts(i.indkey, 1) k(pos) "
        "         WHERE i.indrelid = a.attrelid AND i.indisprimary AND i.indkey[k.pos] = a.attnum), "
        "       pg_catalog.pg_get_expr(d.adbin, d.adrelid) "
        "  FROM pg_catalog.pg_attribute a "
        "  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum "
        "       AND a.atthasdef "
        " WHERE a.attrelid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped",
        1, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONN,
                       "cannot read the columns of relation %" PRIu32 ": %s", relid,
                       tm_pg_msg(PQresultErrorMessage(res), mbuf, sizeof(mbuf)));
        PQclear(res);
        return rc;
    }
    int rows = PQntuples(res);
    attinfo_t *a = calloc(rows ? (size_t)rows : 1, sizeof(*a));
    if (a == NULL) {
        PQclear(res);
        return TM_ENOMEM;
    }
    for (int i = 0; i < rows; i++) {
        a[i].name = strdup(PQgetvalue(res, i, 0));
        a[i].notnull = PQgetvalue(res, i, 1)[0] == 't';
        a[i].pkpos = PQgetisnull(res, i, 2) ? -1 : atoi(PQgetvalue(res, i, 2));
        if (!PQgetisnull(res, i, 3) && (a[i].defexpr = strdup(PQgetvalue(res, i, 3))) == NULL)
            rc = TM_ENOMEM;
        if (a[i].name == NULL)
            rc = TM_ENOMEM;
    }
    PQclear(res);
    if (rc != 0) {
        free_attinfo(a, rows);
        return rc;
    }
    *out = a;
    *n = rows;
    return 0;
}

int tm_pg_schema_from_relation(tm_source_t *src, const tm_pg_msg_t *msg, tm_schema_t **out,
                               tm_pg_coltype_t **ctout, char *errstr, size_t errstr_size)
{
    const uint16_t ncols = msg->u.relation.ncols;
    const char replident = msg->u.relation.replident;
    int rc;
    *out = NULL;
    *ctout = NULL;
    /* pgoutput sends "" for pg_catalog (it never publishes catalogs, but be exact). */
    const char *nsp = msg->u.relation.nspname[0] ? msg->u.relation.nspname : "pg_catalog";
    for (uint16_t i = 0; i < ncols; i++)
        if ((rc = tm_pg_types_resolve(src, msg->u.relation.cols[i].type_oid, errstr,
                                      errstr_size)) != 0)
            return rc;
    tm_schema_t *s = tm_schema_new(ncols);
    tm_pg_coltype_t *ct = calloc(ncols ? ncols : 1, sizeof(*ct));
    if (s == NULL || ct == NULL) {
        tm_schema_unref(s);
        free(ct);
        return TM_ENOMEM;
    }
    if ((rc = schema_identity(src, s, msg->u.relation.relid, nsp, msg->u.relation.relname)) != 0)
        goto fail;
    s->full_identity = replident == 'f';
    for (uint16_t i = 0; i < ncols; i++) {
        const tm_pg_relcol_t *rcol = &msg->u.relation.cols[i];
        tm_column_t *c = &s->cols[i];
        tm_schema_set_str(&c->name, rcol->name);
        if (c->name == NULL) {
            rc = TM_ENOMEM;
            goto fail;
        }
        if ((rc = tm_pg_column_describe(src->types, rcol->type_oid, rcol->typmod, c, &ct[i])) != 0)
            goto fail;
    }
    attinfo_t *ai;
    int nai;
    if ((rc = attrs_info(src, msg->u.relation.relid, &ai, &nai, errstr, errstr_size)) != 0)
        goto fail;
    /* Key positions in indkey order, renumbered densely over the published columns. */
    int nkeys = 0;
    for (int pos = 0; pos < 64 && nai > 0; pos++) {
        for (int a = 0; a < nai; a++) {
            if (ai[a].pkpos != pos)
                continue;
            int idx = tm_schema_find(s, ai[a].name);
            if (idx >= 0)
                s->cols[idx].key_index = (int16_t)nkeys++;
        }
    }
    tm_batch_t *tmp = NULL;
    for (int a = 0; a < nai && rc == 0; a++) {
        int idx = tm_schema_find(s, ai[a].name);
        if (idx >= 0) {
            s->cols[idx].nullable = !ai[a].notnull;
            rc = apply_default(&tmp, &s->cols[idx], &ct[idx], ai[a].defexpr);
        }
    }
    tm_batch_unref(tmp);
    free_attinfo(ai, nai);
    if (rc != 0)
        goto fail;
    if (nkeys == 0 && replident != 'f') {
        /* No primary key (or the table is gone): the replica identity is the next best key. */
        for (uint16_t i = 0; i < ncols; i++)
            if (msg->u.relation.cols[i].flags & TM_PG_RELCOL_KEY)
                s->cols[i].key_index = (int16_t)nkeys++;
    }
    if ((rc = tm_schema_finish(s)) != 0)
        goto fail;
    *out = s;
    *ctout = ct;
    return 0;
fail:
    tm_schema_unref(s);
    free(ct);
    if (rc == TM_ENOMEM)
        tm_seterr(errstr, errstr_size, rc, "out of memory building the schema of %s.%s", nsp,
                  msg->u.relation.relname);
    return rc;
}

int tm_pg_schema_from_catalog(tm_source_t *src, const tm_pg_table_t *t, tm_schema_t **out,
                              tm_pg_coltype_t **ctout, char *replident, char **rowfilter,
                              char *errstr, size_t errstr_size)
{
    char oidbuf[16], mbuf[512];
    int rc;
    *out = NULL;
    *ctout = NULL;
    *rowfilter = NULL;
    snprintf(oidbuf, sizeof(oidbuf), "%" PRIu32, t->relid);
    const char *params[3] = {oidbuf, src->publication, NULL};
    /*
     * The publication decides which columns pgoutput sends (PostgreSQL 15
     * column lists) and which rows (row filters); the snapshot must match.
     */
    const char *sql15 =
        "SELECT a.attname, a.atttypid, a.atttypmod, a.attnotnull, c.relreplident, "
        "       (SELECT k.pos FROM pg_catalog.pg_index i, generate_subscripts(i.indkey, 1) k(pos) "
        "         WHERE i.indrelid = c.oid AND i.indisprimary AND i.indkey[k.pos] = a.attnum), "
        "       pt.attnames IS NULL OR a.attname = ANY(pt.attnames), pt.rowfilter, "
        "       (SELECT k.pos FROM pg_catalog.pg_index i, generate_subscripts(i.indkey, 1) k(pos) "
        "         WHERE i.indrelid = c.oid AND i.indisreplident AND i.indkey[k.pos] = a.attnum), "
        "       pg_catalog.pg_get_expr(d.adbin, d.adrelid) "
        "  FROM pg_catalog.pg_class c "
        "  JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid "
        "  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
        "  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
        "       AND a.atthasdef "
        "  LEFT JOIN pg_catalog.pg_publication_tables pt "
        "         ON pt.pubname = $2 AND pt.schemaname = n.nspname AND pt.tablename = c.relname "
        " WHERE c.oid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' "
        " ORDER BY a.attnum";
    const char *sql_old =
        "SELECT a.attname, a.atttypid, a.atttypmod, a.attnotnull, c.relreplident, "
        "       (SELECT k.pos FROM pg_catalog.pg_index i, generate_subscripts(i.indkey, 1) k(pos) "
        "         WHERE i.indrelid = c.oid AND i.indisprimary AND i.indkey[k.pos] = a.attnum), "
        "       true, NULL, "
        "       (SELECT k.pos FROM pg_catalog.pg_index i, generate_subscripts(i.indkey, 1) k(pos) "
        "         WHERE i.indrelid = c.oid AND i.indisreplident AND i.indkey[k.pos] = a.attnum), "
        "       pg_catalog.pg_get_expr(d.adbin, d.adrelid) "
        "  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid "
        "  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum "
        "       AND a.atthasdef "
        " WHERE c.oid = $1::oid AND a.attnum > 0 AND NOT a.attisdropped AND $2::text IS NOT NULL "
        " ORDER BY a.attnum";
    PGresult *res = PQexecParams(src->conn, src->server_version >= 150000 ? sql15 : sql_old, 2,
                                 NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        rc = tm_seterr(errstr, errstr_size, TM_ESOURCE, "cannot read the columns of %s.%s: %s",
                       t->nspname, t->relname,
                       tm_pg_msg(PQresultErrorMessage(res), mbuf, sizeof(mbuf)));
        PQclear(res);
        return rc;
    }
    int rows = PQntuples(res), ncols = 0;
    for (int r = 0; r < rows; r++)
        if (PQgetvalue(res, r, 6)[0] == 't')
            ncols++;
    for (int r = 0; r < rows; r++) {
        uint32_t oid = (uint32_t)strtoul(PQgetvalue(res, r, 1), NULL, 10);
        if ((rc = tm_pg_types_resolve(src, oid, errstr, errstr_size)) != 0) {
            PQclear(res);
            return rc;
        }
    }
    tm_schema_t *s = tm_schema_new(ncols);
    tm_pg_coltype_t *ct = calloc(ncols ? (size_t)ncols : 1, sizeof(*ct));
    if (s == NULL || ct == NULL || schema_identity(src, s, t->relid, t->nspname, t->relname)) {
        tm_schema_unref(s);
        free(ct);
        PQclear(res);
        return TM_ENOMEM;
    }
    *replident = rows > 0 ? PQgetvalue(res, 0, 4)[0] : 'd';
    s->full_identity = *replident == 'f';
    rc = 0;
    if (rows > 0 && !PQgetisnull(res, 0, 7) && (*rowfilter = strdup(PQgetvalue(res, 0, 7))) == NULL)
        rc = TM_ENOMEM;
    /* Key positions come from indkey order; renumber them densely over the kept columns. */
    int i = 0;
    int keypos[1700], idxpos[1700];
    int nkeypos = 0, nidxpos = 0;
    int *idxkey = calloc(ncols ? (size_t)ncols : 1, sizeof(int));
    tm_batch_t *tmp = NULL;
    if (idxkey == NULL)
        rc = TM_ENOMEM;
    for (int r = 0; r < rows && rc == 0; r++) {
        if (PQgetvalue(res, r, 6)[0] != 't')
            continue;
        tm_column_t *c = &s->cols[i];
        tm_schema_set_str(&c->name, PQgetvalue(res, r, 0));
        uint32_t oid = (uint32_t)strtoul(PQgetvalue(res, r, 1), NULL, 10);
        int32_t typmod = (int32_t)strtol(PQgetvalue(res, r, 2), NULL, 10);
        if (c->name == NULL)
            rc = TM_ENOMEM;
        else
            rc = tm_pg_column_describe(src->types, oid, typmod, c, &ct[i]);
        c->nullable = PQgetvalue(res, r, 3)[0] != 't';
        if (rc == 0 && !PQgetisnull(res, r, 9))
            rc = apply_default(&tmp, c, &ct[i], PQgetvalue(res, r, 9));
        if (!PQgetisnull(res, r, 5) && nkeypos < (int)(sizeof(keypos) / sizeof(keypos[0]))) {
            c->key_index = (int16_t)atoi(PQgetvalue(res, r, 5));
            keypos[nkeypos++] = i;
        }
        if (!PQgetisnull(res, r, 8) && nidxpos < (int)(sizeof(idxpos) / sizeof(idxpos[0]))) {
            idxkey[i] = atoi(PQgetvalue(res, r, 8));
            idxpos[nidxpos++] = i;
        }
        i++;
    }
    PQclear(res);
    tm_batch_unref(tmp);
    /*
     * Without a primary key, REPLICA IDENTITY USING INDEX names the next best
     * key, exactly as tm_pg_schema_from_relation() falls back to the Relation
     * message's identity flags, so both paths agree on the shape.
     */
    if (nkeypos == 0 && *replident == 'i') {
        for (int k = 0; k < nidxpos; k++) {
            keypos[k] = idxpos[k];
            s->cols[idxpos[k]].key_index = (int16_t)idxkey[idxpos[k]];
        }
        nkeypos = nidxpos;
    }
    free(idxkey);
    /* Sort key columns by their indkey position, then number them 0..n-1. */
    for (int a = 1; a < nkeypos; a++)
        for (int b = a; b > 0 && s->cols[keypos[b - 1]].key_index > s->cols[keypos[b]].key_index;
             b--) {
            int tmp = keypos[b];
            keypos[b] = keypos[b - 1];
            keypos[b - 1] = tmp;
        }
    for (int k = 0; k < nkeypos; k++)
        s->cols[keypos[k]].key_index = (int16_t)k;
    if (rc == 0)
        rc = tm_schema_finish(s);
    if (rc != 0) {
        tm_schema_unref(s);
        free(ct);
        free(*rowfilter);
        *rowfilter = NULL;
        return rc == TM_ENOMEM ? tm_seterr(errstr, errstr_size, rc, "out of memory") : rc;
    }
    *out = s;
    *ctout = ct;
    return 0;
}
