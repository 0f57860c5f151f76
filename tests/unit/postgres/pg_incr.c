/*
 * pg_incr.c — unit tests of the incremental snapshots' control API
 * (connectors/postgres/pg_incr.h) as the admin hooks see it before any
 * source streams: the row filter must be one SQL expression (a second
 * statement smuggled in is refused before anything reaches a source), a
 * table no source captures is TM_ENOTFOUND, and the status is an empty list.
 * The chunks and watermarks themselves are tested against a real server in
 * tests/integration/test_pg_incremental.py.
 */
#include "tm_test.h"

#include "core/buf.h"
#include "core/error.h"
#include "postgres/pg_incr.h"

#include <string.h>

static void test_where_must_be_one_expression(void)
{
    const char *tables[] = {"public.orders"};
    char err[512];
    const char *bad[] = {
        "true); DROP TABLE orders; SELECT (1",
        "id >",
        "1) UNION SELECT 1 WHERE (1",
        ") OR (",
        "id > 1 --",
        "note = 'unterminated",
        "note = $x$)$y$",
        "/* ) */ 1) UNION SELECT (1",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        TM_CHECK_INT(tm_pg_incr_request(NULL, tables, 1, bad[i], err, sizeof(err)), TM_EINVAL);
        TM_CHECK(strstr(err, "\"where\"") != NULL);
    }
    /* A valid filter gets past the check and finds no source. */
    const char *good[] = {"id % 10 = 0", "created_at > now() - interval '1 day'",
                          "note = 'x); DROP TABLE y; --'", "id IN (SELECT 1)",
                          "note = $q$)) '$q$", "note = E'\\')'", "\"we)ird\" = 1 /* ( */",
                          "id = $1 OR true"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        TM_CHECK_INT(tm_pg_incr_request(NULL, tables, 1, good[i], err, sizeof(err)),
                     TM_ENOTFOUND);
}

static void test_no_source(void)
{
    const char *tables[] = {"public.orders", "public.items"};
    char err[512];
    TM_CHECK_INT(tm_pg_incr_request("shop", tables, 2, NULL, err, sizeof(err)), TM_ENOTFOUND);
    TM_CHECK(strstr(err, "shop") != NULL && strstr(err, "public.orders") != NULL);
    TM_CHECK_INT(tm_pg_incr_request(NULL, tables, 0, NULL, err, sizeof(err)), TM_EINVAL);
    TM_CHECK_INT(tm_pg_incr_control(NULL, "pause", err, sizeof(err)), TM_ENOTFOUND);
    TM_CHECK_INT(tm_pg_incr_control(NULL, "explode", err, sizeof(err)), TM_EINVAL);
    TM_CHECK(strstr(err, "pause, resume or cancel") != NULL);
    TM_CHECK_INT(tm_pg_incr_sources(), 0);
    tm_buf_t b;
    tm_buf_init(&b);
    tm_pg_incr_status(&b);
    tm_buf_putc(&b, '\0');
    TM_CHECK_STR(b.data, "{\"snapshots\":[]}\n");
    tm_buf_release(&b);
}

int main(void)
{
    TM_RUN(test_where_must_be_one_expression);
    TM_RUN(test_no_source);
    return tm_test_done();
}
