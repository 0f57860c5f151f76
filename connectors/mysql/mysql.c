/*
 * mysql.c — the MySQL/MariaDB binlog source ("mysql-cdc").
 *
 * Role: the connector descriptor, its options table, and the life cycle
 * hooks.  source_open does every check that can fail with an actionable
 * message (connection and password, log_bin, binlog_format = ROW,
 * binlog_row_image, binlog_row_metadata, privileges, server_id clash, the
 * captured tables, the binlog the resume position needs) and decides where
 * streaming starts; source_run streams (my_stream.c).
 *
 * Where streaming starts, first match wins:
 *
 *     the checkpoint's position string (cfg->restore_position)
 *     the checkpoint's ack token (file sequence and offset; the file name is
 *         rebuilt from the server's binlog base name)
 *     <state_dir>/mysql-<name>/position, written as sinks acknowledge
 *     a snapshot's position (snapshot = initial, when_needed, initial_only;
 *         my_snapshot.c), which the position file follows once acknowledged
 *     the server's current position (SHOW MASTER STATUS): snapshot = 'never'
 *
 * A resume position must still be on the server: its binlog file, or
 * (MariaDB) every transaction after its GTID set, judged by the Gtid_list
 * of the oldest binlog.  If not, when_needed takes a new snapshot and the
 * other modes stop with the missing range and the way out.
 *
 * Invariants:
 *   1. A position always points at a transaction boundary, so resuming from
 *      it neither repeats nor skips a row.
 *   2. The password is never logged nor shown in explain: describe prints
 *      user@host:port only, and error messages never include it.
 *   3. A resume position that the server no longer has stops the job with
 *      the missing range named (or, with when_needed, re-reads the tables);
 *      it never silently starts from "now".
 *
 * Thread: source_new/open/describe/free on the main thread, source_run on the
 * source thread.
 */
#include "mysql/mysql_int.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/log.h"

#include <errno.h>
#include <errmsg.h>
#include <inttypes.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

static const tm_option_def_t my_source_options[] = {
    {"host", TM_OPT_STRING, false, "127.0.0.1", NULL, "server host name or address"},
    {"port", TM_OPT_INT, false, "3306", NULL, "server TCP port"},
    {"user", TM_OPT_STRING, true, NULL, NULL,
     "user to connect as; needs REPLICATION SLAVE, REPLICATION CLIENT (MariaDB 10.5+: "
     "BINLOG MONITOR) and SELECT"},
    {"password", TM_OPT_SECRET, false, NULL, NULL,
     "the user's password; write ${env:NAME} or ${file:PATH} rather than the password itself"},
    {"tables", TM_OPT_STRING, true, NULL, NULL,
     "comma-separated db.table list to capture; db.* captures every table of a database"},
    {"server_id", TM_OPT_INT, true, NULL, NULL,
     "the replica server id tidemark uses; unique among the server's replicas (1 to 4294967295)"},
    {"snapshot", TM_OPT_ENUM, false, "initial", "initial|never|initial_only|when_needed",
     "initial snapshot mode: read the tables first (initial), never, only the snapshot "
     "(initial_only), or again when the binlog needed to resume is gone (when_needed)"},
    {"snapshot_chunk_size", TM_OPT_INT, false, "10000", NULL,
     "rows per primary-key chunk of the initial snapshot"},
    {"heartbeat_interval", TM_OPT_DURATION, false, "1s", NULL,
     "binlog heartbeat period the server sends on an idle stream (tells idle from dead; "
     "bounds how long a stop waits)"},
    {"connect_timeout", TM_OPT_DURATION, false, "10s", NULL, "timeout of one connection attempt"},
    {"reconnect_timeout", TM_OPT_DURATION, false, "5m", NULL,
     "how long to retry a lost connection (backoff 0.5s to 30s) before failing"},
    {"ssl_mode", TM_OPT_ENUM, false, "preferred",
     "disabled|preferred|required|verify_ca|verify_identity",
     "TLS to the server, as MySQL's --ssl-mode"},
    {"ssl_ca", TM_OPT_STRING, false, NULL, NULL, "CA certificate file (PEM) for verify_ca/verify_identity"},
    {"ssl_cert", TM_OPT_STRING, false, NULL, NULL, "client certificate file (PEM)"},
    {"ssl_key", TM_OPT_STRING, false, NULL, NULL, "client private key file (PEM)"},
    {"bigint_unsigned_handling", TM_OPT_ENUM, false, "long", "long|precise",
     "Debezium bigint.unsigned.handling.mode: BIGINT UNSIGNED as int64 (values above 2^63 wrap) "
     "or as an exact decimal"},
    TM_SOURCE_OPT_WATERMARK,
    TM_SOURCE_OPT_IDLE_TIMEOUT,
    {NULL, 0, false, NULL, NULL, NULL},
};

/* ---- Small helpers ---- */

static char *dup_opt(const tm_options_t *o, const char *name)
{
    const char *v = tm_opt_str(o, name);
    return v != NULL ? strdup(v) : NULL;
}

/* Parses `db.table` / `db.*` / `db.`table`` entries, comma-separated. */
static int parse_specs(tm_source_t *src, const char *value, char *errstr, size_t errstr_size)
{
    const char *p = value, *start;
    size_t len;
    while (tm_opt_next_item(&p, 0, &start, &len)) {
        char *entry = strndup(start, len);
        if (entry == NULL)
            return TM_ENOMEM;
        /* Backquotes are allowed around either part and dropped. */
        char *w = entry;
        for (char *r = entry; *r; r++)
            if (*r != '`')
                *w++ = *r;
        *w = '\0';
        char *dot = strchr(entry, '.');
        if (dot == NULL || dot == entry || dot[1] == '\0' || strchr(dot + 1, '.') != NULL) {
            int rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                               "table '%s': option 'tables' has an invalid entry '%s'; write "
                               "db.table or db.* (comma-separated)",
                               src->name, entry);
            free(entry);
            return rc;
        }
        *dot = '\0';
        tm_my_tablespec_t *v = realloc(src->specs, sizeof(*v) * (size_t)(src->nspecs + 1));
        if (v == NULL) {
            free(entry);
            return TM_ENOMEM;
        }
        src->specs = v;
        tm_my_tablespec_t *s = &src->specs[src->nspecs++];
        s->db = strdup(entry);
        s->table = strcmp(dot + 1, "*") == 0 ? NULL : strdup(dot + 1);
        bool oom = s->db == NULL || (strcmp(dot + 1, "*") != 0 && s->table == NULL);
        free(entry);
        if (oom)
            return TM_ENOMEM;
    }
    if (src->nspecs == 0)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': option 'tables' names no table; write db.table", src->name);
    return 0;
}

bool tm_my_wanted(const tm_source_t *src, const char *db, const char *table)
{
    for (int i = 0; i < src->nspecs; i++)
        if (strcmp(src->specs[i].db, db) == 0 &&
            (src->specs[i].table == NULL || strcmp(src->specs[i].table, table) == 0))
            return true;
    return false;
}

/* ---- Positions ---- */

static uint64_t file_seq(const char *file)
{
    const char *dot = strrchr(file, '.');
    if (dot == NULL || dot[1] == '\0' || strspn(dot + 1, "0123456789") != strlen(dot + 1))
        return 0;
    return strtoull(dot + 1, NULL, 10);
}

uint64_t tm_my_pos_token(const tm_my_pos_t *pos)
{
    uint64_t seq = file_seq(pos->file);
    if (seq == 0 || seq >= (1u << 31))
        return 0;
    return (seq << 32) | (pos->offset & 0xFFFFFFFFu);
}

void tm_my_pos_format(const tm_my_pos_t *pos, char *buf, size_t buflen)
{
    snprintf(buf, buflen, "file=%s pos=%" PRIu64 " gtid=%s", pos->file, pos->offset, pos->gtid);
}

int tm_my_pos_parse(const char *s, tm_my_pos_t *pos)
{
    memset(pos, 0, sizeof(*pos));
    const char *f = strstr(s, "file="), *p = strstr(s, " pos="), *g = strstr(s, " gtid=");
    if (f != s || p == NULL || g == NULL || g < p)
        return TM_EINVAL;
    size_t flen = (size_t)(p - (f + 5));
    if (flen == 0 || flen >= sizeof(pos->file))
        return TM_EINVAL;
    memcpy(pos->file, f + 5, flen);
    char *end;
    errno = 0;
    pos->offset = strtoull(p + 5, &end, 10);
    if (errno != 0 || end != g || pos->offset < 4)
        return TM_EINVAL;
    snprintf(pos->gtid, sizeof(pos->gtid), "%s", g + 6);
    pos->gtid[strcspn(pos->gtid, " \n")] = '\0';
    return 0;
}

int tm_my_pos_save(tm_source_t *src, const tm_my_pos_t *pos, char *errstr, size_t errstr_size)
{
    char line[512];
    tm_my_pos_format(pos, line, sizeof(line));
    size_t n = strlen(line);
    line[n++] = '\n';
    if (tm_write_file_atomic(src->state_dir, "position", line, n) != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot write %s/position: %s",
                         src->state_dir, strerror(errno));
    return 0;
}

static bool pos_load(const tm_source_t *src, tm_my_pos_t *pos)
{
    char *path = tm_asprintf("%s/position", src->state_dir);
    if (path == NULL)
        return false;
    FILE *f = fopen(path, "r");
    free(path);
    if (f == NULL)
        return false;
    char line[512];
    bool ok = fgets(line, sizeof(line), f) != NULL;
    fclose(f);
    return ok && tm_my_pos_parse(line, pos) == 0;
}

/* ---- source_new ---- */

static void my_source_free(tm_source_t *src);

static int my_source_new(tm_source_t **out, const tm_source_config_t *cfg, char *errstr,
                         size_t errstr_size)
{
    const tm_options_t *o = cfg->opts;
    int rc;
    *out = NULL;
    tm_source_t *src = calloc(1, sizeof(*src));
    if (src == NULL)
        return TM_ENOMEM;
    src->name = strdup(cfg->name ? cfg->name : "mysql");
    src->host = dup_opt(o, "host");
    src->user = dup_opt(o, "user");
    src->password = dup_opt(o, "password");
    src->ssl_mode = dup_opt(o, "ssl_mode");
    src->ssl_ca = dup_opt(o, "ssl_ca");
    src->state_dir = tm_asprintf("%s/mysql-%s", cfg->state_dir ? cfg->state_dir : ".",
                               cfg->name ? cfg->name : "mysql");
    src->restore_token = cfg->restore_token;
    if (cfg->restore_position != NULL)
        src->restore_position = strdup(cfg->restore_position);
    if (!src->name || !src->host || !src->user || !src->ssl_mode || !src->state_dir ||
        (cfg->restore_position != NULL && src->restore_position == NULL)) {
        my_source_free(src);
        return TM_ENOMEM;
    }
    int64_t port = tm_opt_int(o, "port"), sid = tm_opt_int(o, "server_id");
    src->heartbeat_ms = tm_opt_duration_ms(o, "heartbeat_interval");
    src->connect_timeout_ms = tm_opt_duration_ms(o, "connect_timeout");
    src->reconnect_ms = tm_opt_duration_ms(o, "reconnect_timeout");
    src->mapping.bigint_precise =
        strcmp(tm_opt_str(o, "bigint_unsigned_handling"), "precise") == 0;
    const char *mode = tm_opt_str(o, "snapshot");
    src->snapmode = strcmp(mode, "never") == 0          ? TM_MY_SNAP_NEVER
                    : strcmp(mode, "initial_only") == 0 ? TM_MY_SNAP_INITIAL_ONLY
                    : strcmp(mode, "when_needed") == 0  ? TM_MY_SNAP_WHEN_NEEDED
                                                        : TM_MY_SNAP_INITIAL;
    if (port < 1 || port > 65535) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'port' = %" PRId64 " is not a TCP port (1 to 65535)",
                       src->name, port);
        goto fail;
    }
    src->port = (int)port;
    if (sid < 1 || sid > 4294967295LL) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'server_id' = %" PRId64
                       " is out of range; use a number from 1 to 4294967295 that no other "
                       "replica of the server uses",
                       src->name, sid);
        goto fail;
    }
    src->server_id = (uint32_t)sid;
    if (src->heartbeat_ms < 100 || src->heartbeat_ms > 4294967) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'heartbeat_interval' must be between 100ms and "
                       "4294s (the server's limit)",
                       src->name);
        goto fail;
    }
    if (src->connect_timeout_ms < 1000 || src->reconnect_ms < 0) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': connect_timeout must be at least 1s and reconnect_timeout "
                       "must not be negative",
                       src->name);
        goto fail;
    }
    src->chunk_size = tm_opt_int(o, "snapshot_chunk_size");
    if (src->chunk_size < 1 || src->chunk_size > 10000000) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'snapshot_chunk_size' = %" PRId64
                       " is out of range; use 1 to 10000000 rows",
                       src->name, src->chunk_size);
        goto fail;
    }
    if (cfg->declared != NULL && cfg->declared->ncols > 0) {
        rc = tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                       "table '%s': declared columns are not supported by mysql-cdc yet; write "
                       "CREATE TABLE %s () and the columns come from the binlog",
                       src->name, src->name);
        goto fail;
    }
    if (strcmp(src->ssl_mode, "verify_ca") == 0 || strcmp(src->ssl_mode, "verify_identity") == 0) {
        if (src->ssl_ca == NULL) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': ssl_mode = '%s' verifies the server's certificate and "
                           "needs ssl_ca = '<CA file>'",
                           src->name, src->ssl_mode);
            goto fail;
        }
    }
    if ((rc = parse_specs(src, tm_opt_str(o, "tables"), errstr, errstr_size)) != 0)
        goto fail;
    src->ssl_cert = dup_opt(o, "ssl_cert");
    src->ssl_key = dup_opt(o, "ssl_key");
    if ((src->ssl_cert == NULL) != (src->ssl_key == NULL)) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': set both ssl_cert and ssl_key, or neither", src->name);
        goto fail;
    }
    *out = src;
    return 0;
fail:
    my_source_free(src);
    return rc;
}

/* ---- Connections ---- */

int tm_my_exec(MYSQL *conn, const char *sql, char *errstr, size_t errstr_size)
{
    if (mysql_query(conn, sql) != 0) {
        unsigned e = mysql_errno(conn);
        return tm_seterr(errstr, errstr_size,
                         e >= CR_MIN_ERROR && e <= CR_MAX_ERROR ? TM_ECONN : TM_ESOURCE,
                         "the server refused '%s': %s (error %u)", sql, mysql_error(conn), e);
    }
    MYSQL_RES *res = mysql_store_result(conn);
    if (res != NULL)
        mysql_free_result(res);
    return 0;
}

int tm_my_connect(tm_source_t *src, MYSQL **out, char *errstr, size_t errstr_size)
{
    *out = NULL;
    MYSQL *m = mysql_init(NULL);
    if (m == NULL)
        return TM_ENOMEM;
    unsigned ct = (unsigned)((src->connect_timeout_ms + 999) / 1000);
    /* A read that waits three heartbeats (and some slack) has lost the server. */
    unsigned rt = (unsigned)((src->heartbeat_ms * 3 + 999) / 1000) + 10;
    mysql_optionsv(m, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    mysql_optionsv(m, MYSQL_OPT_READ_TIMEOUT, &rt);
    mysql_optionsv(m, MYSQL_OPT_WRITE_TIMEOUT, &rt);
    mysql_optionsv(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    my_bool yes = 1, no = 0;
    const char *mode = src->ssl_mode;
    if (strcmp(mode, "disabled") == 0) {
        mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &no);
    } else if (strcmp(mode, "preferred") != 0) {
        mysql_optionsv(m, MYSQL_OPT_SSL_ENFORCE, &yes);
        if (src->ssl_ca != NULL)
            mysql_optionsv(m, MYSQL_OPT_SSL_CA, src->ssl_ca);
        if (src->ssl_cert != NULL) {
            mysql_optionsv(m, MYSQL_OPT_SSL_CERT, src->ssl_cert);
            mysql_optionsv(m, MYSQL_OPT_SSL_KEY, src->ssl_key);
        }
        my_bool verify = strcmp(mode, "required") != 0;
        mysql_optionsv(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
    }
    if (mysql_real_connect(m, src->host, src->user, src->password ? src->password : "", NULL,
                           (unsigned)src->port, NULL, 0) == NULL) {
        unsigned e = mysql_errno(m);
        int rc;
        if (e == ER_ACCESS_DENIED_ERROR || e == ER_DBACCESS_DENIED_ERROR)
            rc = tm_seterr(errstr, errstr_size, TM_ESOURCE,
                           "cannot log in to %s:%d as '%s': %s; check user and password (the "
                           "password option takes ${env:NAME})",
                           src->host, src->port, src->user, mysql_error(m));
        else
            rc = tm_seterr(errstr, errstr_size, TM_ECONN,
                           "cannot connect to the MySQL/MariaDB server at %s:%d: %s (error %u); "
                           "check host and port and that the server runs",
                           src->host, src->port, mysql_error(m), e);
        mysql_close(m);
        return rc;
    }
    *out = m;
    return 0;
}

/* One row of one query, copied into cells (NULL stays NULL); 0 rows is TM_ENOTFOUND. */
static int query_row(MYSQL *conn, const char *sql, char cells[][256], int ncells, char *errstr,
                     size_t errstr_size)
{
    if (mysql_query(conn, sql) != 0) {
        unsigned e = mysql_errno(conn);
        return tm_seterr(errstr, errstr_size,
                         e >= CR_MIN_ERROR && e <= CR_MAX_ERROR ? TM_ECONN : TM_ESOURCE,
                         "query '%s' failed: %s (error %u)", sql, mysql_error(conn), e);
    }
    MYSQL_RES *res = mysql_store_result(conn);
    if (res == NULL)
        return tm_seterr(errstr, errstr_size, TM_ESOURCE, "query '%s' returned no result: %s",
                         sql, mysql_error(conn));
    MYSQL_ROW row = mysql_fetch_row(res);
    int rc = TM_ENOTFOUND;
    if (row != NULL) {
        unsigned nf = mysql_num_fields(res);
        for (int i = 0; i < ncells; i++)
            snprintf(cells[i], 256, "%s", (unsigned)i < nf && row[i] ? row[i] : "");
        rc = 0;
    }
    mysql_free_result(res);
    return rc;
}

int tm_my_query_row(MYSQL *conn, const char *sql, char cells[][256], int ncells, char *errstr,
                    size_t errstr_size)
{
    return query_row(conn, sql, cells, ncells, errstr, errstr_size);
}

static const char *snapmode_name(tm_my_snapmode_t m)
{
    static const char *const names[] = {"initial", "never", "initial_only", "when_needed"};
    return (unsigned)m < 4 ? names[m] : "?";
}

/* ---- source_open: checks ---- */

static int check_server(tm_source_t *src, char *errstr, size_t errstr_size)
{
    char v[7][256];
    int rc = query_row(src->conn,
                       "SELECT @@version, @@log_bin, @@binlog_format, @@binlog_row_image, "
                       "@@server_id, @@binlog_checksum, @@binlog_row_metadata",
                       v, 7, errstr, errstr_size);
    if (rc == TM_ESOURCE) {
        /* Before MariaDB 10.5 / MySQL 8.0.1 there is no binlog_row_metadata. */
        rc = query_row(src->conn,
                       "SELECT @@version, @@log_bin, @@binlog_format, @@binlog_row_image, "
                       "@@server_id, @@binlog_checksum, 'MINIMAL'",
                       v, 7, errstr, errstr_size);
    }
    if (rc != 0)
        return rc == TM_ENOTFOUND ? TM_ESOURCE : rc;
    snprintf(src->server_version, sizeof(src->server_version), "%.63s", v[0]);
    src->is_mariadb = strstr(v[0], "MariaDB") != NULL;
    if (strcmp(v[1], "1") != 0 && strcasecmp(v[1], "ON") != 0)
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "binary logging is off on %s:%d; start the server with --log-bin "
                         "(and --binlog-format=ROW, --binlog-row-metadata=FULL)",
                         src->host, src->port);
    if (strcasecmp(v[2], "ROW") != 0)
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "the server's binlog_format is %s, but change data capture needs ROW; "
                         "set binlog_format = ROW in the server configuration (SET GLOBAL "
                         "binlog_format = 'ROW' only affects new sessions)",
                         v[2]);
    if (strcasecmp(v[3], "FULL") != 0)
        TM_WARN(TM_MY_COMP, "binlog_row_image is not FULL",
                "source=%s binlog_row_image=%s hint=\"updates and deletes will carry only the "
                "columns the server logs; set binlog_row_image = FULL for whole before images\"",
                src->name, v[3]);
    if (strcasecmp(v[6], "FULL") != 0)
        TM_WARN(TM_MY_COMP, "binlog_row_metadata is not FULL",
                "source=%s binlog_row_metadata=%s hint=\"column names, signedness, charsets "
                "and keys come from information_schema, which describes tables as they are now: "
                "set binlog_row_metadata = FULL so that events written before an ALTER TABLE "
                "decode as they were\"",
                src->name, v[6]);
    src->checksum_alg = strcasecmp(v[5], "CRC32") == 0 ? 1 : 0;
    if (strtoul(v[4], NULL, 10) == src->server_id)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': server_id %" PRIu32
                         " is the server's own server_id; choose another value for option "
                         "'server_id'",
                         src->name, src->server_id);
    return 0;
}

/* The user must be able to read the binlog; SHOW GRANTS says. */
static int check_privileges(tm_source_t *src, char *errstr, size_t errstr_size)
{
    if (mysql_query(src->conn, "SHOW GRANTS") != 0)
        return tm_seterr(errstr, errstr_size, TM_ESOURCE, "SHOW GRANTS failed: %s",
                         mysql_error(src->conn));
    MYSQL_RES *res = mysql_store_result(src->conn);
    if (res == NULL)
        return tm_seterr(errstr, errstr_size, TM_ESOURCE, "SHOW GRANTS returned nothing: %s",
                         mysql_error(src->conn));
    bool all = false, slave = false, client = false;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        const char *g = row[0] ? row[0] : "";
        if (strstr(g, " ON *.*") == NULL)
            continue;
        if (strstr(g, "GRANT ALL PRIVILEGES ON *.*") == g)
            all = true;
        if (strstr(g, "REPLICATION SLAVE") != NULL || strstr(g, "REPLICATION REPLICA") != NULL)
            slave = true;
        if (strstr(g, "REPLICATION CLIENT") != NULL || strstr(g, "BINLOG MONITOR") != NULL ||
            strstr(g, "SUPER") != NULL)
            client = true;
    }
    mysql_free_result(res);
    if (all || (slave && client))
        return 0;
    return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                     "user '%s' may not read the binlog (it lacks %s%s%s); run GRANT "
                     "REPLICATION SLAVE, %s, SELECT ON *.* TO '%s'@'<host>' as an administrator",
                     src->user, slave ? "" : "REPLICATION SLAVE",
                     !slave && !client ? " and " : "",
                     client ? "" : (src->is_mariadb ? "BINLOG MONITOR" : "REPLICATION CLIENT"),
                     src->is_mariadb ? "BINLOG MONITOR" : "REPLICATION CLIENT", src->user);
}

/* Another replica registered with our server_id would have its stream cut by ours. */
/*
 * Whether another replica is registered with our server_id; *host gets its
 * report host.  0 when none is, or when the replicas cannot be listed.
 */
static int replica_with_our_id(tm_source_t *src, char *host, size_t hostlen, bool *found)
{
    *found = false;
    if (mysql_query(src->conn, "SHOW SLAVE HOSTS") != 0) {
        /* Needs REPLICATION MASTER ADMIN on MariaDB 10.5+; not having it is no error. */
        TM_DEBUG(TM_MY_COMP, "cannot list replicas", "source=%s error=\"%s\"", src->name,
                 mysql_error(src->conn));
        return 0;
    }
    MYSQL_RES *res = mysql_store_result(src->conn);
    if (res == NULL)
        return 0;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        if (row[0] != NULL && strtoul(row[0], NULL, 10) == src->server_id) {
            snprintf(host, hostlen, "%s", row[1] ? row[1] : "");
            *found = true;
            break;
        }
    }
    mysql_free_result(res);
    return 0;
}

/*
 * A replica registered with our server_id is a clash, unless it goes away:
 * a job killed (or stopped) a moment ago stays registered until the server's
 * dump thread notices the closed connection, at its next heartbeat write.
 * So a restart waits up to two heartbeat periods and a second for that before
 * calling it a clash (the crash harness restarts within a second of kill -9).
 */
static int check_server_id_clash(tm_source_t *src, char *errstr, size_t errstr_size)
{
    int64_t wait_ms = 2 * src->heartbeat_ms + 1000;
    int64_t until = tm_mono_us() + wait_ms * 1000;
    char host[256];
    bool found, said = false;
    for (;;) {
        replica_with_our_id(src, host, sizeof(host), &found);
        if (!found)
            return 0;
        if (tm_mono_us() >= until)
            break;
        if (!said) {
            TM_INFO(TM_MY_COMP, "waiting for a replica with our server_id to go",
                    "source=%s server_id=%" PRIu32 " host=\"%s\" wait_ms=%" PRId64, src->name,
                    src->server_id, host, wait_ms);
            said = true;
        }
        usleep(100 * 1000);
    }
    return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                     "table '%s': server_id %" PRIu32
                     " is already used by a replica of this server (host '%s'); each "
                     "replica needs its own: choose another value for option 'server_id'",
                     src->name, src->server_id, host);
}

/* Named tables must exist (a db.* may match none yet: tables created later are captured). */
static int check_tables(tm_source_t *src, char *errstr, size_t errstr_size)
{
    for (int i = 0; i < src->nspecs; i++) {
        const tm_my_tablespec_t *s = &src->specs[i];
        char edb[130], etb[130], sql[600], cell[1][256];
        if (strlen(s->db) > 64 || (s->table && strlen(s->table) > 64))
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': name '%s.%s' is longer than MySQL allows (64)",
                             src->name, s->db, s->table ? s->table : "*");
        mysql_real_escape_string(src->conn, edb, s->db, (unsigned long)strlen(s->db));
        if (s->table != NULL) {
            mysql_real_escape_string(src->conn, etb, s->table, (unsigned long)strlen(s->table));
            snprintf(sql, sizeof(sql),
                     "SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = '%s' AND "
                     "TABLE_NAME = '%s'",
                     edb, etb);
        } else {
            snprintf(sql, sizeof(sql),
                     "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = '%s'", edb);
        }
        int rc = query_row(src->conn, sql, cell, 1, errstr, errstr_size);
        if (rc == TM_ENOTFOUND)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': %s %s%s%s does not exist on %s:%d (or user '%s' may "
                             "not see it); check option 'tables' (names are case-sensitive on "
                             "most systems)",
                             src->name, s->table ? "table" : "database", s->db,
                             s->table ? "." : "", s->table ? s->table : "", src->host, src->port,
                             src->user);
        if (rc != 0)
            return rc;
    }
    return 0;
}

/* True if the server still has binlog file `file` (SHOW BINARY LOGS). */
static int binlog_exists(tm_source_t *src, const char *file, bool *exists, char *first,
                         size_t firstlen, char *errstr, size_t errstr_size)
{
    *exists = false;
    first[0] = '\0';
    if (mysql_query(src->conn, "SHOW BINARY LOGS") != 0)
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "SHOW BINARY LOGS failed: %s; the user needs REPLICATION CLIENT "
                         "(MariaDB 10.5+: BINLOG MONITOR)",
                         mysql_error(src->conn));
    MYSQL_RES *res = mysql_store_result(src->conn);
    if (res == NULL)
        return TM_ESOURCE;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL) {
        if (row[0] == NULL)
            continue;
        if (first[0] == '\0')
            snprintf(first, firstlen, "%s", row[0]);
        if (strcmp(row[0], file) == 0)
            *exists = true;
    }
    mysql_free_result(res);
    return 0;
}

/*
 * The GTID list the server's oldest binlog file starts after (its
 * Gtid_list event: "0-1-5,1-2-9"); "" when the server does not say.
 */
static void oldest_gtid_list(tm_source_t *src, const char *first, char *out, size_t outlen)
{
    char efile[400], sql[512];
    out[0] = '\0';
    if (strlen(first) > 190)
        return;
    mysql_real_escape_string(src->conn, efile, first, (unsigned long)strlen(first));
    snprintf(sql, sizeof(sql), "SHOW BINLOG EVENTS IN '%s' LIMIT 6", efile);
    if (mysql_query(src->conn, sql) != 0)
        return;
    MYSQL_RES *res = mysql_store_result(src->conn);
    if (res == NULL)
        return;
    MYSQL_ROW row;
    while ((row = mysql_fetch_row(res)) != NULL)
        if (mysql_num_fields(res) >= 6 && row[2] != NULL && row[5] != NULL &&
            strcmp(row[2], "Gtid_list") == 0) {
            /* Info is "[0-1-5,1-2-9]": the list without its brackets. */
            const char *p = row[5] + (row[5][0] == '[');
            size_t n = strcspn(p, "]");
            snprintf(out, outlen, "%.*s", (int)n, p);
            break;
        }
    mysql_free_result(res);
}

/*
 * Whether the server still has everything after pos: its binlog file, or
 * (MariaDB, the file gone or renamed) every transaction after its GTID set.
 * *by_gtid says which; when neither, why names the missing range.
 */
static int resume_available(tm_source_t *src, const tm_my_pos_t *pos, bool *ok, bool *by_gtid,
                            char *why, size_t whylen, char *errstr, size_t errstr_size)
{
    bool exists;
    char first[256], list[256] = "", gwhy[256] = "";
    *ok = *by_gtid = false;
    int rc = binlog_exists(src, pos->file, &exists, first, sizeof(first), errstr, errstr_size);
    if (rc != 0)
        return rc;
    if (first[0] != '\0')
        oldest_gtid_list(src, first, list, sizeof(list));
    if (exists) {
        *ok = true;
        *by_gtid = src->is_mariadb && pos->gtid[0] != '\0';
        return 0;
    }
    if (src->is_mariadb && pos->gtid[0] != '\0' && list[0] != '\0' &&
        tm_my_gtid_covered(pos->gtid, list, gwhy, sizeof(gwhy)) == 1) {
        *ok = *by_gtid = true;
        return 0;
    }
    snprintf(why, whylen,
             "it needs binlog file %s from position %" PRIu64 "%s%s%s, but the server's oldest "
             "binlog is %s%s%s%s%s%s",
             pos->file, pos->offset, pos->gtid[0] ? " (after GTID " : "", pos->gtid,
             pos->gtid[0] ? ")" : "", first[0] ? first : "none",
             list[0] ? " (starting after GTID " : "", list, list[0] ? ")" : "",
             gwhy[0] ? "; " : "", gwhy);
    return 0;
}

static int decide_start(tm_source_t *src, char *errstr, size_t errstr_size)
{
    char cur[3][256];
    int rc = query_row(src->conn, "SHOW MASTER STATUS", cur, 2, errstr, errstr_size);
    if (rc == TM_ENOTFOUND)
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "SHOW MASTER STATUS returned nothing: binary logging is off");
    if (rc != 0)
        return rc;
    const char *dot = strrchr(cur[0], '.');
    snprintf(src->binlog_base, sizeof(src->binlog_base), "%.*s",
             (int)(dot ? dot - cur[0] : (long)strlen(cur[0])), cur[0]);
    if (src->snapmode == TM_MY_SNAP_INITIAL_ONLY) {
        /* A bounded job: its snapshot, once, and nothing else. */
        char *path = tm_asprintf("%s/snapshot.done", src->state_dir);
        bool done = path != NULL && access(path, F_OK) == 0;
        free(path);
        if (done) {
            TM_INFO(TM_MY_COMP, "snapshot already done; nothing to do",
                    "source=%s mode=initial_only marker=%s/snapshot.done", src->name,
                    src->state_dir);
            src->snapshot_finished = true;
        } else {
            src->do_snapshot = true;
        }
        return 0;
    }
    const char *from = NULL;
    tm_my_pos_t pos;
    if (src->restore_position != NULL && tm_my_pos_parse(src->restore_position, &pos) == 0) {
        from = "checkpoint";
    } else if (src->restore_token != 0) {
        memset(&pos, 0, sizeof(pos));
        snprintf(pos.file, sizeof(pos.file), "%s.%06" PRIu64, src->binlog_base,
                 src->restore_token >> 32);
        pos.offset = src->restore_token & 0xFFFFFFFFu;
        from = "checkpoint token";
    } else if (pos_load(src, &pos)) {
        from = "position file";
    }
    if (from != NULL) {
        bool ok, by_gtid;
        char why[1024] = "";
        if ((rc = resume_available(src, &pos, &ok, &by_gtid, why, sizeof(why), errstr,
                                   errstr_size)) != 0)
            return rc;
        if (ok) {
            src->start = pos;
            TM_INFO(TM_MY_COMP, "resuming",
                    "source=%s from=\"%s\" by=%s file=%s pos=%" PRIu64 " gtid=%s", src->name,
                    from, by_gtid ? "gtid" : "file", pos.file, pos.offset, pos.gtid);
            return 0;
        }
        /* Invariant 3: never a silent start from "now". */
        if (src->snapmode == TM_MY_SNAP_WHEN_NEEDED) {
            TM_WARN(TM_MY_COMP, "binlog needed to resume is gone; taking a new snapshot",
                    "source=%s from=\"%s\" reason=\"%s\" hint=\"snapshot = 'when_needed': the "
                    "tables are read again, then streaming goes on from there\"",
                    src->name, from, why);
            src->do_snapshot = true;
            return 0;
        }
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "table '%s': cannot resume from the %s: %s; the changes in between are "
                         "no longer on the server (purged by binlog_expire_logs_seconds, "
                         "expire_logs_days or PURGE BINARY LOGS). To recover, set snapshot = "
                         "'when_needed' to read the tables again and stream on from there, or "
                         "start a new job (remove %s and the sink's output)",
                         src->name, from, why, src->state_dir);
    }
    if (src->snapmode != TM_MY_SNAP_NEVER) {
        src->do_snapshot = true;
        return 0;
    }
    /*
     * The GTID state and the file position come from two statements; a
     * commit between them would pair a position with a GTID state one
     * transaction ahead.  Read the GTID state before and after the position
     * and retry until they agree.
     */
    for (int attempt = 0;; attempt++) {
        char g1[1][256] = {{0}}, g2[1][256] = {{0}};
        if (src->is_mariadb &&
            (rc = query_row(src->conn, "SELECT @@gtid_binlog_pos", g1, 1, errstr,
                            errstr_size)) != 0 && rc != TM_ENOTFOUND)
            return rc;
        if (attempt > 0 &&
            (rc = query_row(src->conn, "SHOW MASTER STATUS", cur, 2, errstr, errstr_size)) != 0)
            return rc == TM_ENOTFOUND ? TM_ESOURCE : rc;
        if (src->is_mariadb &&
            (rc = query_row(src->conn, "SELECT @@gtid_binlog_pos", g2, 1, errstr,
                            errstr_size)) != 0 && rc != TM_ENOTFOUND)
            return rc;
        if (strcmp(g1[0], g2[0]) != 0 && attempt < 20)
            continue;
        memset(&src->start, 0, sizeof(src->start));
        snprintf(src->start.file, sizeof(src->start.file), "%.191s", cur[0]);
        src->start.offset = strtoull(cur[1], NULL, 10);
        /* Still moving after 20 tries: the GTID is for the record only, leave it out. */
        if (strcmp(g1[0], g2[0]) == 0)
            snprintf(src->start.gtid, sizeof(src->start.gtid), "%.191s", g2[0]);
        return 0;
    }
}

static int my_source_open(tm_source_t *src, char *errstr, size_t errstr_size)
{
    int rc;
    if (tm_mkdir_p(src->state_dir, 0700) != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot create state directory %s: %s",
                         src->state_dir, strerror(errno));
    if ((rc = tm_my_connect(src, &src->conn, errstr, errstr_size)) != 0)
        return rc == TM_ECONN ? TM_ESOURCE : rc;
    if ((rc = check_server(src, errstr, errstr_size)) != 0 ||
        (rc = check_privileges(src, errstr, errstr_size)) != 0 ||
        (rc = check_server_id_clash(src, errstr, errstr_size)) != 0 ||
        (rc = check_tables(src, errstr, errstr_size)) != 0 ||
        (rc = decide_start(src, errstr, errstr_size)) != 0)
        return rc == TM_ECONN ? TM_ESOURCE : rc;
    char pos[512];
    if (src->do_snapshot || src->snapshot_finished)
        snprintf(pos, sizeof(pos), "%s", src->do_snapshot ? "after the snapshot" : "none");
    else
        tm_my_pos_format(&src->start, pos, sizeof(pos));
    TM_INFO(TM_MY_COMP, "source opened",
            "source=%s server=\"%s:%d\" user=%s version=\"%s\" server_id=%" PRIu32
            " tables=%d snapshot=%s read_snapshot=%s start=\"%s\"",
            src->name, src->host, src->port, src->user, src->server_version, src->server_id,
            src->nspecs, snapmode_name(src->snapmode), src->do_snapshot ? "yes" : "no", pos);
    return 0;
}

/* ---- source_run, describe, free ---- */

static int my_source_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    if (src->snapshot_finished)
        return 0; /* initial_only, done before: the bounded input is empty */
    if (src->do_snapshot) {
        bool only = src->snapmode == TM_MY_SNAP_INITIAL_ONLY;
        /* Ready means streaming; a bounded initial_only job is ready while it reads. */
        if (only)
            tm_source_set_ready(ctx, true);
        int rc = tm_my_snapshot_run(src, ctx, errstr, errstr_size);
        if (rc != 0)
            return rc == TM_ESTOPPED ? 0 : rc;
        if (tm_source_should_stop(ctx))
            return 0;
        if (only) {
            rc = tm_my_snapshot_finish(src, ctx, errstr, errstr_size);
            tm_source_set_ready(ctx, false);
            return rc;
        }
    }
    int rc = tm_my_stream_run(src, ctx, errstr, errstr_size);
    return rc == TM_ESTOPPED ? 0 : rc;
}

static void my_source_describe(const tm_source_t *src, void (*line)(void *arg, const char *text),
                               void *arg)
{
    tm_buf_t b;
    tm_buf_init(&b);
    for (int i = 0; i < src->nspecs; i++)
        tm_buf_appendf(&b, "%s%s.%s", i ? ", " : "", src->specs[i].db,
                       src->specs[i].table ? src->specs[i].table : "*");
    tm_buf_putc(&b, '\0');
    char *s;
    /* Invariant 2: user@host:port, never the password. */
    if ((s = tm_asprintf("mysql-cdc %s@%s:%d: tables %s", src->user, src->host, src->port,
                       b.data ? b.data : "")))
        line(arg, s);
    free(s);
    tm_buf_release(&b);
    if ((s = tm_asprintf("server_id %" PRIu32 ", ssl_mode %s, heartbeat %" PRId64
                       " ms, snapshot %s (chunks of %" PRId64 " rows), position = binlog file "
                       "and offset after the last complete transaction and the GTID set there "
                       "(MariaDB: resumes by GTID)",
                       src->server_id, src->ssl_mode, src->heartbeat_ms,
                       snapmode_name(src->snapmode), src->chunk_size)))
        line(arg, s);
    free(s);
}

static void my_source_free(tm_source_t *src)
{
    if (src == NULL)
        return;
    if (src->conn != NULL)
        mysql_close(src->conn);
    for (int i = 0; i < src->nspecs; i++) {
        free(src->specs[i].db);
        free(src->specs[i].table);
    }
    free(src->specs);
    tm_my_tables_free(src);
    tm_batch_unref(src->cur);
    tm_srcq_clear(&src->outq);
    free(src->name);
    free(src->host);
    free(src->user);
    if (src->password != NULL) {
        /* Do not leave the password in freed memory. */
        memset(src->password, 0, strlen(src->password));
        free(src->password);
    }
    free(src->ssl_mode);
    free(src->ssl_ca);
    free(src->ssl_cert);
    free(src->ssl_key);
    free(src->state_dir);
    free(src->restore_position);
    free(src);
}

const tm_connector_t tm_connector_mysql = {
    .abi = TM_CONNECTOR_ABI,
    .name = "mysql-cdc",
    .kinds = TM_CONNECTOR_SOURCE,
    .doc = "MySQL/MariaDB binlog (row events): an initial snapshot, then every change",
    .source_options = my_source_options,
    .sink_options = NULL,
    .option_prefix = NULL,
    .source_new = my_source_new,
    .source_open = my_source_open,
    .source_run = my_source_run,
    .source_describe = my_source_describe,
    .source_free = my_source_free,
};
