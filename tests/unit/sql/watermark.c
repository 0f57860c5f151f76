/*
 * Unit tests: a source table's `watermark` option (sql/job_watermark.c):
 * the column and delay it records, and its errors at their line and column.
 */
#include "core/error.h"
#include "sql/job.h"
#include "tm_test.h"

#include <stdio.h>
#include <string.h>

/* The option is on line 3, its value's opening quote at column 19. */
static int parse(const char *decl, const char *wm, tm_job_t **job, char *err, size_t errlen)
{
    char sql[4096];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE orders (%s)\n"
             "  WITH (connector = 'postgres-cdc', dsn = 'host=x', table = 'public.orders',\n"
             "        watermark = '%s', idle_timeout = '30s');\n"
             "CREATE TABLE out () WITH (connector = 'stdout');\n"
             "INSERT INTO out SELECT * FROM orders;\n",
             decl, wm);
    return tm_job_parse(sql, "job.sql", job, err, errlen);
}

static const char *cols = "id bigint PRIMARY KEY, note text, created_at timestamptz, ts timestamp";

static void expect_ok(const char *decl, const char *wm, const char *column, int64_t delay_us)
{
    char err[2048] = "";
    tm_job_t *job = NULL;
    int rc = parse(decl, wm, &job, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "watermark '%s': %s\n", wm, err);
    TM_REQUIRE(rc == 0);
    const tm_job_table_t *t = &job->tables[tm_job_find_table(job, "orders")];
    TM_CHECK_STR(t->wm_column, column);
    TM_CHECK_INT(t->wm_delay_us, delay_us);
    TM_CHECK(job->tables[tm_job_find_table(job, "out")].wm_column == NULL);
    tm_job_free(job);
}

static void expect_error(const char *wm, const char *needle)
{
    char err[2048] = "";
    tm_job_t *job = NULL;
    TM_CHECK_INT(parse(cols, wm, &job, err, sizeof(err)), TM_ESQL);
    TM_CHECK(job == NULL);
    if (strstr(err, needle) == NULL) {
        fprintf(stderr, "watermark '%s': error '%s' lacks '%s'\n", wm, err, needle);
        TM_CHECK(0);
    }
}

static void test_accepted_forms(void)
{
    expect_ok(cols, "created_at - INTERVAL ''5 seconds''", "created_at", 5000000);
    expect_ok(cols, "created_at", "created_at", 0);
    expect_ok(cols, "ts - INTERVAL ''500 milliseconds''", "ts", 500000);
    expect_ok(cols, "created_at - interval ''1 minute 2.5 seconds''", "created_at", 62500000);
    /* Without declared columns the column is found per table at run time. */
    expect_ok("", "whenever - INTERVAL ''1 second''", "whenever", 1000000);
}

/* Errors name the problem at the offending part of the expression (line 3). */
static void test_errors_at_their_position(void)
{
    expect_error("created", "job.sql:3:22: table 'orders': watermark: column 'created' is not "
                            "declared; the table has id, note, created_at, ts");
    expect_error("note - INTERVAL ''5 seconds''",
                 "job.sql:3:22: table 'orders': watermark: column 'note' is text, but the "
                 "event-time column must be timestamp or timestamptz");
    /* 'created_at - ' is 13 characters: the delay starts at column 35. */
    expect_error("created_at - note", "job.sql:3:35: table 'orders': watermark: the delay must be "
                                      "a constant interval");
    expect_error("created_at - INTERVAL ''5 parsecs''", "is not an interval");
    expect_error("created_at - INTERVAL ''-1 second''", "is negative");
    expect_error("created_at + INTERVAL ''1 second''", "expected a column, or a column minus a "
                                                      "constant interval");
    expect_error("created_at -", "syntax error");
    expect_error("now()", "expected a column");
    expect_error("o.created_at", "plain column name");
}

int main(void)
{
    TM_RUN(test_accepted_forms);
    TM_RUN(test_errors_at_their_position);
    return tm_test_done();
}
