/*
 * pg_conn.c — connections and retries shared by the PostgreSQL connectors
 * (see pg_conn.h).
 *
 * Invariants:
 *   1. Connection errors show the masked DSN only, never a password.
 *   2. Our session settings come after the user's `options`, so they win.
 *
 * Thread: any; the caller owns the PGconn.
 */
#include "postgres/pg_conn.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/shutdown.h"
#include "postgres/pg_types.h"
#include "postgres/postgres_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int tm_pgc_connect(const char *dsn, const char *masked, bool replication, const char *what,
                   PGconn **out, char *errstr, size_t errstr_size)
{
    char *perr = NULL;
    char mbuf[512];
    *out = NULL;
    PQconninfoOption *opts = PQconninfoParse(dsn, &perr);
    if (opts == NULL) {
        int rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "option 'dsn' (%s) is not a valid libpq connection string: %s; use "
                           "'host=… port=… dbname=… user=…' or a postgresql:// URI",
                           masked, perr ? tm_pg_msg(perr, mbuf, sizeof(mbuf)) : "no memory");
        PQfreemem(perr);
        return rc;
    }
    int n = 0;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        n++;
    const char **kw = calloc((size_t)n + 4, sizeof(char *));
    const char **val = calloc((size_t)n + 4, sizeof(char *));
    char *options = NULL;
    if (kw == NULL || val == NULL) {
        free(kw);
        free(val);
        PQconninfoFree(opts);
        return TM_ENOMEM;
    }
    int k = 0;
    const char *user_options = NULL;
    bool has_appname = false;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++) {
        if (o->val == NULL || strcmp(o->keyword, "replication") == 0)
            continue;
        if (strcmp(o->keyword, "options") == 0) {
            user_options = o->val;
            continue;
        }
        if (strcmp(o->keyword, "application_name") == 0)
            has_appname = true;
        kw[k] = o->keyword;
        val[k++] = o->val;
    }
    /* Our settings come last so that they win over the user's -c of the same name. */
    size_t olen = (user_options ? strlen(user_options) : 0) + sizeof(TM_PG_SESSION_OPTIONS) + 2;
    options = malloc(olen);
    if (options == NULL) {
        free(kw);
        free(val);
        PQconninfoFree(opts);
        return TM_ENOMEM;
    }
    snprintf(options, olen, "%s%s%s", user_options ? user_options : "", user_options ? " " : "",
             TM_PG_SESSION_OPTIONS);
    kw[k] = "options";
    val[k++] = options;
    if (!has_appname) {
        kw[k] = "application_name";
        val[k++] = "tidemark";
    }
    if (replication) {
        kw[k] = "replication";
        val[k++] = "database";
    }
    kw[k] = NULL;
    val[k] = NULL;
    PGconn *conn = PQconnectdbParams(kw, val, 0);
    free(kw);
    free(val);
    free(options);
    PQconninfoFree(opts);
    if (conn == NULL)
        return TM_ENOMEM;
    if (PQstatus(conn) != CONNECTION_OK) {
        const char *m = tm_pg_msg(PQerrorMessage(conn), mbuf, sizeof(mbuf));
        int rc;
        if (strstr(m, "password") != NULL || strstr(m, "authentication") != NULL)
            rc = tm_seterr(errstr, errstr_size, TM_ESOURCE,
                           "cannot connect to PostgreSQL with dsn '%s'%s: %s; check the user "
                           "and password: set PGPASSWORD, use a passfile (~/.pgpass or "
                           "passfile=…), or write password=${env:NAME} in the dsn",
                           masked, what, m);
        else if (strstr(m, "does not exist") != NULL || strstr(m, "pg_hba.conf") != NULL)
            rc = tm_seterr(errstr, errstr_size, TM_ESOURCE,
                           "cannot connect to PostgreSQL with dsn '%s'%s: %s; check dbname and "
                           "user in the dsn and the server's pg_hba.conf",
                           masked, what, m);
        else
            rc = tm_seterr(errstr, errstr_size, TM_ECONN,
                           "cannot connect to PostgreSQL with dsn '%s'%s: %s; check that the "
                           "server is running and that host and port in the dsn are right",
                           masked, what, m);
        PQfinish(conn);
        return rc;
    }
    *out = conn;
    return 0;
}

bool tm_pgc_broken(PGconn *conn)
{
    return conn == NULL || PQstatus(conn) != CONNECTION_OK ||
           PQtransactionStatus(conn) == PQTRANS_UNKNOWN;
}

bool tm_pgc_retriable(const char *sqlstate)
{
    if (sqlstate == NULL || sqlstate[0] == '\0')
        return true; /* no server answer at all: the connection broke */
    if (strncmp(sqlstate, "08", 2) == 0)
        return true;
    static const char *const transient[] = {"57P01", "57P02", "57P03", "40001",
                                            "40P01", "53300", "53400", NULL};
    for (int i = 0; transient[i] != NULL; i++)
        if (strcmp(sqlstate, transient[i]) == 0)
            return true;
    return false;
}

void tm_pgc_backoff_init(tm_pgc_backoff_t *b, int64_t budget_ms)
{
    b->started_ms = tm_mono_ms();
    b->budget_ms = budget_ms;
    b->next_ms = 500;
    b->attempts = 0;
}

bool tm_pgc_backoff_wait(tm_pgc_backoff_t *b)
{
    int64_t now = tm_mono_ms();
    int64_t left = b->started_ms + b->budget_ms - now;
    if (b->budget_ms <= 0 || left <= 0 || tm_shutdown_requested())
        return false;
    int64_t sleep_ms = b->next_ms < left ? b->next_ms : left;
    b->next_ms = b->next_ms * 2 > 30000 ? 30000 : b->next_ms * 2;
    b->attempts++;
    /* Sleep in slices so that a shutdown request is noticed within 100 ms. */
    while (sleep_ms > 0 && !tm_shutdown_requested()) {
        int64_t step = sleep_ms < 100 ? sleep_ms : 100;
        struct timespec ts = {(time_t)(step / 1000), (long)(step % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        sleep_ms -= step;
    }
    return !tm_shutdown_requested();
}
