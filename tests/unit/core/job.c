/* Unit tests: job files through libpg_query into tables and pipelines. */
#include "core/error.h"
#include "sql/job.h"
#include "tm_test.h"

static const char *good =
    "-- a job\n"
    "CREATE TABLE shop () WITH (\n"
    "  connector = 'postgres-cdc',\n"
    "  dsn = 'host=127.0.0.1 dbname=shop user=cdc password=s3cret',\n"
    "  tables = 'public.orders, public.customers',\n"
    "  decimal_handling = 'string'\n"
    ");\n"
    "CREATE TABLE out () WITH (connector = 'file', path = '/tmp/x', format = 'debezium-json');\n"
    "INSERT INTO out SELECT * FROM shop;\n"
    "SET sink_flush_interval = '1s';\n";

static void test_good_job(void)
{
    char err[1024];
    tm_job_t *job = NULL;
    int rc = tm_job_parse(good, "job.sql", &job, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_REQUIRE(rc == 0);
    TM_CHECK_INT(job->ntables, 2);
    TM_CHECK_INT(job->ninserts, 1);
    TM_CHECK_STR(job->tables[0].name, "shop");
    TM_CHECK_STR(job->tables[0].conn->name, "postgres-cdc");
    TM_CHECK_INT(job->tables[0].role, TM_ROLE_SOURCE);
    TM_CHECK_INT(job->tables[1].role, TM_ROLE_SINK);
    TM_CHECK_INT(job->tables[0].line, 2);
    /* The sink inherits the source's encoding option. */
    TM_CHECK_STR(tm_opt_str(job->tables[1].opts, "decimal_handling"), "string");
    TM_CHECK_INT(tm_opt_duration_ms(job->settings, "sink_flush_interval"), 1000);
    tm_job_free(job);
}

static void test_declared_columns(void)
{
    char err[1024];
    tm_job_t *job = NULL;
    const char *sql =
        "CREATE TABLE orders (id bigint, amount numeric(10,2) NOT NULL, tags text[],\n"
        "  at timestamptz(3), PRIMARY KEY (id)) WITH (connector = 'postgres-cdc',\n"
        "  dsn = 'host=x', table = 'public.orders');\n"
        "CREATE TABLE o () WITH (connector = 'stdout');\n"
        "INSERT INTO o SELECT * FROM orders;\n";
    int rc = tm_job_parse(sql, "j", &job, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_REQUIRE(rc == 0);
    tm_schema_t *s = job->tables[0].declared;
    TM_REQUIRE(s != NULL && s->ncols == 4);
    TM_CHECK(s->cols[0].type == TM_T_INT64 && s->cols[0].key_index == 0);
    TM_CHECK(s->cols[1].type == TM_T_NUMERIC && s->cols[1].precision == 10 &&
             s->cols[1].scale == 2 && !s->cols[1].nullable);
    TM_CHECK(s->cols[2].type == TM_T_ARRAY && s->cols[2].elem_type == TM_T_TEXT);
    TM_CHECK(s->cols[3].type == TM_T_TIMESTAMPTZ && s->cols[3].precision == 3);
    TM_CHECK_INT(s->nkeys, 1);
    tm_job_free(job);
}

static void expect_error(const char *sql, int want_rc, const char *needle)
{
    char err[1024] = "";
    tm_job_t *job = NULL;
    int rc = tm_job_parse(sql, "job.sql", &job, err, sizeof(err));
    TM_CHECK_INT(rc, want_rc);
    if (strstr(err, needle) == NULL) {
        fprintf(stderr, "error '%s' lacks '%s'\n", err, needle);
        TM_CHECK(0);
    }
    TM_CHECK(job == NULL);
}

static void test_errors(void)
{
    expect_error("CREATE TABLE x () WITH (connector='stdout') garbage;", TM_ESQL,
                 "job.sql:1:45: syntax error at or near \"garbage\"");
    expect_error("CREATE TABLE a () WITH (connector='nope');", TM_ECONFIG,
                 "unknown connector 'nope'");
    expect_error("CREATE TABLE a () WITH (path='x');", TM_ECONFIG, "has no connector");
    expect_error("CREATE TABLE a () WITH (connector='stdout');\n"
                 "CREATE TABLE b () WITH (connector='stdout', colour='red');\n"
                 "INSERT INTO b SELECT * FROM a;",
                 TM_ECONFIG, "cannot be used as a source");
    expect_error("CREATE TABLE s () WITH (connector='postgres-cdc', dsn='x', tables='a.b');\n"
                 "CREATE TABLE b () WITH (connector='stdout', colour='red');\n"
                 "INSERT INTO b SELECT * FROM s;",
                 TM_ECONFIG, "job.sql:2: table 'b': unknown option 'colour'");
    expect_error("CREATE TABLE s () WITH (connector='postgres-cdc', dsn='x', tables='a.b');\n"
                 "CREATE TABLE b () WITH (connector='stdout');\n"
                 "INSERT INTO b VALUES (1);",
                 TM_EUNSUPPORTED,
                 "job.sql:3:23: INSERT … VALUES and DEFAULT VALUES are not supported");
    expect_error("CREATE TABLE b () WITH (connector='stdout');\n"
                 "INSERT INTO b SELECT * FROM nowhere;",
                 TM_ESQL, "source table 'nowhere' is not declared");
    expect_error("CREATE TABLE b () WITH (connector='stdout');", TM_ESQL, "no INSERT INTO");
    expect_error("CREATE TABLE s () WITH (connector='postgres-cdc', dsn='x', tables='a.b');\n"
                 "CREATE TABLE b () WITH (connector='stdout');\n"
                 "INSERT INTO b SELECT * FROM s; SET warp_speed = 9;",
                 TM_ECONFIG, "unknown option 'warp_speed'");
    expect_error("DROP TABLE x;", TM_EUNSUPPORTED, "DropStmt is not supported");
}

static void test_views_and_queries(void)
{
    char err[1024];
    tm_job_t *job = NULL;
    const char *sql =
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int, amount numeric(10,2))\n"
        "  WITH (connector = 'postgres-cdc', dsn = 'host=x', table = 'public.orders');\n"
        "CREATE TABLE unused () WITH (connector = 'stdout');\n"
        "CREATE TABLE out () WITH (connector = 'stdout');\n"
        "CREATE VIEW per_customer AS SELECT customer_id, sum(amount) AS total FROM orders\n"
        "  GROUP BY customer_id;\n"
        "INSERT INTO out (bucket, n) SELECT floor(total / 100), count(*) FROM per_customer\n"
        "  GROUP BY 1;\n"
        "SET on_error = 'skip';\n";
    int rc = tm_job_parse(sql, "job.sql", &job, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_REQUIRE(rc == 0);
    TM_CHECK_INT(job->nviews, 1);
    TM_CHECK_STR(job->views[0].name, "per_customer");
    TM_CHECK_INT(job->views[0].line, 5);
    TM_CHECK_INT(job->ninserts, 1);
    /* The source is found through the view. */
    TM_CHECK_INT(job->inserts[0].source, 0);
    TM_CHECK_INT(job->inserts[0].sink, 2);
    TM_CHECK_INT(job->tables[0].role, TM_ROLE_SOURCE);
    TM_CHECK_INT(job->tables[1].role, TM_ROLE_NONE);
    TM_CHECK_INT(job->inserts[0].ncols, 2);
    TM_CHECK_STR(job->inserts[0].cols[1], "n");
    TM_CHECK(job->inserts[0].select != NULL);
    TM_CHECK_STR(tm_opt_str(job->settings, "on_error"), "skip");
    int line, col;
    tm_job_position(job, job->inserts[0].location, &line, &col);
    TM_CHECK_INT(line, 7);
    TM_CHECK_INT(col, 1);
    tm_job_free(job);
}

static void test_query_errors(void)
{
    const char *src =
        "CREATE TABLE s (a int) WITH (connector='postgres-cdc', dsn='x', table='a.b');\n"
        "CREATE TABLE b () WITH (connector='stdout');\n";
    char sql[1024];
    snprintf(sql, sizeof(sql), "%sCREATE VIEW v AS SELECT a FROM nowhere;", src);
    expect_error(sql, TM_ESQL, "job.sql:3:32: source table 'nowhere' is not declared");
    snprintf(sql, sizeof(sql), "%sCREATE VIEW s AS SELECT a FROM s;", src);
    expect_error(sql, TM_ESQL, "'s' is already declared");
    snprintf(sql, sizeof(sql), "%sCREATE VIEW v AS SELECT a FROM b;\nINSERT INTO b SELECT * FROM v;",
             src);
    expect_error(sql, TM_ESQL, "table 'b' cannot feed itself");
    snprintf(sql, sizeof(sql), "%sINSERT INTO b SELECT 1;", src);
    expect_error(sql, TM_ESQL, "reads no source table");
    snprintf(sql, sizeof(sql), "%sWITH x AS (SELECT a FROM s) INSERT INTO b SELECT * FROM x;",
             src);
    expect_error(sql, TM_EUNSUPPORTED, "WITH");
    snprintf(sql, sizeof(sql), "%sINSERT INTO b SELECT * FROM s; SET on_error = 'ignore';", src);
    expect_error(sql, TM_ECONFIG, "on_error");
}

int main(void)
{
    TM_RUN(test_good_job);
    TM_RUN(test_declared_columns);
    TM_RUN(test_errors);
    TM_RUN(test_views_and_queries);
    TM_RUN(test_query_errors);
    return tm_test_done();
}
