/*
 * my_catalog.c — completing a TABLE_MAP from information_schema.
 *
 * Role: a TABLE_MAP carries column types always, and names, signedness,
 * charsets, ENUM/SET labels and the primary key only with
 * binlog_row_metadata = FULL (MariaDB's default is NO_LOG, MySQL 8's
 * MINIMAL).  What the event lacks is read from information_schema, and
 * MariaDB's JSON columns (LONGTEXT with a json_valid check, which no binlog
 * metadata marks) are recognised by their check constraint.
 *
 * The catalog describes the table as it is now, not as it was when the
 * event was written.  The two agree unless the table changed since; a
 * column count that differs is caught and stops the job with a message
 * (binlog_row_metadata = FULL avoids the question).  Debezium parses DDL
 * to follow such changes; tidemark does not have an SQL parser for it.
 * It only notices that a DDL statement names a captured table
 * (tm_my_catalog_note_ddl), and then reads the catalog again at the
 * table's next TABLE_MAP, so a change the binlog shape does not show (a
 * renamed column) is seen while streaming live.
 *
 * Invariants:
 *   1. Only fields the event did not carry are filled (has_* flags), so a
 *      FULL-metadata event is never overridden by a newer catalog.
 *   2. A lost catalog connection is reopened once before failing.
 *   3. With names in the event, catalog rows are matched by name, never by
 *      position, so a catalog newer than the event cannot shift columns.
 *
 * Thread: the source thread (src->conn belongs to it once source_open ended).
 */
#include "mysql/mysql_int.h"

#include "core/error.h"
#include "core/log.h"

#include <errmsg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Parses the labels of "enum('a','b''c')" / "set(...)" into c->labels. */
static int parse_labels(tm_my_column_t *c, const char *coltype)
{
    const char *p = strchr(coltype, '(');
    if (p == NULL)
        return 0;
    p++;
    while (*p == '\'') {
        p++;
        size_t cap = strlen(p) + 1, n = 0;
        char *lab = malloc(cap);
        if (lab == NULL)
            return TM_ENOMEM;
        while (*p) {
            if (*p == '\'' && p[1] == '\'') {
                lab[n++] = '\'';
                p += 2;
            } else if (*p == '\'') {
                p++;
                break;
            } else if (*p == '\\' && p[1]) {
                lab[n++] = p[1];
                p += 2;
            } else {
                lab[n++] = *p++;
            }
        }
        lab[n] = '\0';
        char **v = realloc(c->labels, sizeof(char *) * (size_t)(c->nlabels + 1));
        if (v == NULL) {
            free(lab);
            return TM_ENOMEM;
        }
        c->labels = v;
        c->labels[c->nlabels++] = lab;
        if (*p == ',')
            p++;
    }
    return 0;
}

static int run_query(tm_source_t *src, const char *sql, MYSQL_RES **out, char *errstr,
                     size_t errstr_size)
{
    for (int attempt = 0; attempt < 2; attempt++) {
        if (src->conn == NULL) {
            int rc = tm_my_connect(src, &src->conn, errstr, errstr_size);
            if (rc != 0)
                return rc;
        }
        if (mysql_query(src->conn, sql) == 0 && (*out = mysql_store_result(src->conn)) != NULL)
            return 0;
        unsigned e = mysql_errno(src->conn);
        if (e < CR_MIN_ERROR || e > CR_MAX_ERROR)
            return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                             "cannot read information_schema: %s (error %u); the user needs "
                             "SELECT on the captured tables",
                             mysql_error(src->conn), e);
        /* Invariant 2: the connection was lost (a server restart, an idle timeout). */
        mysql_close(src->conn);
        src->conn = NULL;
    }
    return tm_seterr(errstr, errstr_size, TM_ECONN, "lost the catalog connection twice");
}

int tm_my_catalog_complete(tm_source_t *src, tm_my_tablemap_t *map, char *errstr,
                           size_t errstr_size)
{
    bool complete = map->has_names && map->has_signedness && map->has_charsets &&
                    map->has_key && map->has_labels;
    if (complete && !src->is_mariadb)
        return 0;
    char edb[130], etb[130], sql[1600];
    if (strlen(map->db) > 64 || strlen(map->table) > 64)
        return TM_ECORRUPT;
    mysql_real_escape_string(src->conn, edb, map->db, (unsigned long)strlen(map->db));
    mysql_real_escape_string(src->conn, etb, map->table, (unsigned long)strlen(map->table));
    snprintf(sql, sizeof(sql),
             "SELECT c.COLUMN_NAME, c.COLUMN_TYPE, c.COLLATION_NAME, IFNULL(co.ID, 0), "
             "       IFNULL(k.SEQ_IN_INDEX, 0), %s "
             "  FROM information_schema.COLUMNS c "
             "  LEFT JOIN information_schema.COLLATIONS co ON co.COLLATION_NAME = c.COLLATION_NAME "
             "  LEFT JOIN information_schema.STATISTICS k ON k.TABLE_SCHEMA = c.TABLE_SCHEMA "
             "       AND k.TABLE_NAME = c.TABLE_NAME AND k.COLUMN_NAME = c.COLUMN_NAME "
             "       AND k.INDEX_NAME = 'PRIMARY' "
             " WHERE c.TABLE_SCHEMA = '%s' AND c.TABLE_NAME = '%s' ORDER BY c.ORDINAL_POSITION",
             src->is_mariadb
                 ? "(SELECT COUNT(*) FROM information_schema.CHECK_CONSTRAINTS cc "
                   "  WHERE cc.CONSTRAINT_SCHEMA = c.TABLE_SCHEMA AND cc.TABLE_NAME = c.TABLE_NAME"
                   "    AND cc.CHECK_CLAUSE = CONCAT('json_valid(`', c.COLUMN_NAME, '`)'))"
                 : "0",
             edb, etb);
    MYSQL_RES *res = NULL;
    int rc = run_query(src, sql, &res, errstr, errstr_size);
    if (rc != 0)
        return rc;
    /*
     * With names in the event (FULL metadata), catalog rows are matched by
     * name, so a column added or dropped since does not shift the others and
     * a count that differs is no error; without them, by position, and the
     * counts must agree.
     */
    uint64_t nrows = mysql_num_rows(res);
    if (!map->has_names && nrows != map->ncols) {
        mysql_free_result(res);
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "table %s.%s has %" PRIu64 " columns in information_schema but %u in "
                         "the binlog event being read: it changed since, and the catalog cannot "
                         "describe the older events; set binlog_row_metadata = FULL on the server "
                         "so the binlog describes every event itself",
                         map->db, map->table, nrows, map->ncols);
    }
    uint32_t i = 0;
    MYSQL_ROW row;
    while (rc == 0 && (row = mysql_fetch_row(res)) != NULL) {
        tm_my_column_t *c = NULL;
        if (!map->has_names) {
            c = &map->cols[i++];
        } else {
            for (uint32_t k = 0; k < map->ncols && c == NULL; k++)
                if (map->cols[k].name != NULL && row[0] != NULL &&
                    strcmp(map->cols[k].name, row[0]) == 0)
                    c = &map->cols[k];
            if (c == NULL)
                continue; /* a column the event does not have (added since) */
        }
        const char *coltype = row[1] ? row[1] : "";
        if (!map->has_names) {
            free(c->name);
            if ((c->name = strdup(row[0] ? row[0] : "")) == NULL)
                rc = TM_ENOMEM;
        }
        if (!map->has_signedness && tm_my_type_is_numeric(c->type))
            c->is_unsigned = strstr(coltype, "unsigned") != NULL;
        if (!map->has_charsets && tm_my_type_is_character(c->type))
            /* No collation in the catalog: a binary string type. */
            c->collation = row[2] == NULL ? TM_MY_COLLATION_BINARY
                                          : (uint32_t)strtoul(row[3] ? row[3] : "0", NULL, 10);
        if (!map->has_labels && (c->type == TM_MY_T_ENUM || c->type == TM_MY_T_SET) &&
            c->nlabels == 0 && rc == 0)
            rc = parse_labels(c, coltype);
        if (!map->has_key) {
            long seq = strtol(row[4] ? row[4] : "0", NULL, 10);
            c->key_index = seq > 0 ? (int)seq - 1 : -1;
        }
        c->json = row[5] != NULL && strtol(row[5], NULL, 10) > 0 &&
                  tm_my_type_is_character(c->type);
        /* Without GEOMETRY_TYPE metadata (NO_LOG): a POINT column is told by its type. */
        if (c->type == TM_MY_T_GEOMETRY && c->geom_type == 0 &&
            strncasecmp(coltype, "point", 5) == 0)
            c->geom_type = 1;
    }
    mysql_free_result(res);
    if (rc != 0)
        return rc;
    return 0;
}

/* ---- DDL ---- */

static bool ident_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '$' || (unsigned char)c >= 0x80;
}

/* Skips spaces and comments at the start of a statement. */
static size_t skip_blank(const char *s, size_t len, size_t i)
{
    for (;;) {
        while (i < len && (s[i] == ' ' || s[i] == '\t' || s[i] == '\n' || s[i] == '\r'))
            i++;
        if (i + 1 < len && s[i] == '/' && s[i + 1] == '*') {
            const char *end = NULL;
            for (size_t k = i + 2; k + 1 < len && end == NULL; k++)
                if (s[k] == '*' && s[k + 1] == '/')
                    end = s + k + 2;
            if (end == NULL)
                return len;
            i = (size_t)(end - s);
        } else if (i + 1 < len && s[i] == '-' && s[i + 1] == '-') {
            while (i < len && s[i] != '\n')
                i++;
        } else {
            return i;
        }
    }
}

bool tm_my_catalog_ddl_names(const char *stmt, size_t len, const char *table)
{
    static const char *const verbs[] = {"ALTER", "CREATE", "DROP", "RENAME", "TRUNCATE"};
    size_t i = skip_blank(stmt, len, 0);
    bool ddl = false;
    for (size_t v = 0; v < sizeof(verbs) / sizeof(verbs[0]) && !ddl; v++) {
        size_t n = strlen(verbs[v]);
        ddl = i + n < len && strncasecmp(stmt + i, verbs[v], n) == 0 && !ident_char(stmt[i + n]);
    }
    size_t tl = strlen(table);
    if (!ddl || tl == 0)
        return false;
    for (size_t k = i; k + tl <= len; k++) {
        if (memcmp(stmt + k, table, tl) != 0)
            continue;
        /* An identifier on its own: not part of a longer name (quotes and dots are bounds). */
        bool left = k == 0 || !ident_char(stmt[k - 1]);
        bool right = k + tl == len || !ident_char(stmt[k + tl]);
        if (left && right)
            return true;
    }
    return false;
}

int tm_my_catalog_note_ddl(tm_source_t *src, const char *stmt, size_t len)
{
    int marked = 0;
    for (int i = 0; i < src->ntables; i++) {
        tm_my_table_t *t = &src->tables[i];
        if (t->wanted && t->map != NULL && !t->refresh &&
            tm_my_catalog_ddl_names(stmt, len, t->table)) {
            t->refresh = true;
            marked++;
            TM_INFO(TM_MY_COMP, "DDL on a captured table; its columns are read again",
                    "source=%s table=%s.%s", src->name, t->db, t->table);
        }
    }
    return marked;
}
