/*
 * Unit tests: the binder's errors (names, positions, PostgreSQL's wording,
 * unsupported constructs named) and the shape of bound queries.
 */
#include "core/error.h"
#include "sql/bind.h"
#include "tm_test.h"

#include <string.h>

/* Line 1-2: the source; line 3: a sink; the query under test is on line 4. */
static const char *prefix =
    "CREATE TABLE orders (id bigint, customer_id int, amount numeric(10,2), status text,\n"
    "  created_at timestamp, PRIMARY KEY (id)) WITH (connector='postgres-cdc', dsn='host=x', table='public.orders');\n"
    "CREATE TABLE out () WITH (connector = 'stdout');\n";

static int bind_one(const char *query, tm_bound_query_t **q, tm_job_t **job, tm_expr_pool_t *pool,
                    char *err, size_t errlen)
{
    char sql[4096];
    snprintf(sql, sizeof(sql), "%s%s", prefix, query);
    int rc = tm_job_parse(sql, "job.sql", job, err, errlen);
    if (rc != 0)
        return rc;
    return tm_bind_insert(*job, (*job)->ninserts - 1, pool, q, err, errlen);
}

static void expect_bind_error(const char *query, const char *needle)
{
    char err[2048] = "";
    tm_job_t *job = NULL;
    tm_bound_query_t *q = NULL;
    tm_expr_pool_t *pool = tm_expr_pool_new();
    int rc = bind_one(query, &q, &job, pool, err, sizeof(err));
    TM_CHECK(rc == TM_ESQL || rc == TM_EUNSUPPORTED);
    TM_CHECK(q == NULL);
    if (strstr(err, needle) == NULL) {
        fprintf(stderr, "query: %s\nerror '%s' lacks '%s'\n", query, err, needle);
        TM_CHECK(0);
    }
    tm_job_free(job);
    tm_expr_pool_free(pool);
}

static void test_errors(void)
{
    expect_bind_error("INSERT INTO out SELECT id, nope FROM orders;",
                      "job.sql:4:28: column \"nope\" does not exist");
    expect_bind_error("INSERT INTO out SELECT o.id FROM orders;",
                      "job.sql:4:24: missing FROM-clause entry for table \"o\"");
    expect_bind_error("INSERT INTO out SELECT lenght(status) AS l FROM orders;", "lenght");
    expect_bind_error("INSERT INTO out SELECT lenght(status) AS l FROM orders;", "length");
    expect_bind_error("INSERT INTO out SELECT status + 1 AS x FROM orders;", "text");
    expect_bind_error("INSERT INTO out SELECT id FROM orders WHERE amount;",
                      "argument of WHERE must be type boolean, not type numeric");
    expect_bind_error("INSERT INTO out SELECT status, count(*) AS n FROM orders\n"
                      "  GROUP BY customer_id;",
                      "job.sql:4:24: column \"orders.status\" must appear in the GROUP BY clause "
                      "or be used in an aggregate function");
    expect_bind_error("INSERT INTO out SELECT customer_id, sum(count(*)) AS n FROM orders "
                      "GROUP BY customer_id;",
                      "aggregate function calls cannot be nested");
    expect_bind_error("INSERT INTO out SELECT id FROM orders WHERE count(*) > 1;",
                      "aggregate functions are not allowed in WHERE");
    expect_bind_error("INSERT INTO out SELECT a.id FROM orders a JOIN orders b USING (id);",
                      "USING (…) is not supported yet");
    expect_bind_error("INSERT INTO out SELECT a.id FROM orders a NATURAL JOIN orders b;",
                      "NATURAL JOIN is not supported");
    expect_bind_error("INSERT INTO out SELECT orders.id FROM orders, orders x;",
                      "needs an equality");
    expect_bind_error("INSERT INTO out SELECT a.id FROM orders a JOIN orders b ON a.id < b.id;",
                      "job.sql:4:48: JOIN needs an equality");
    expect_bind_error("INSERT INTO out SELECT id FROM orders a JOIN orders b ON a.id = b.id;",
                      "job.sql:4:24: column reference \"id\" is ambiguous");
    expect_bind_error("INSERT INTO out SELECT a.nope FROM orders a JOIN orders b ON a.id = b.id;",
                      "column \"nope\" does not exist; a has:");
    expect_bind_error("INSERT INTO out SELECT a.id FROM orders a JOIN orders b ON a.id = b.status;",
                      "operator does not exist");
    expect_bind_error("INSERT INTO out SELECT a.id FROM orders a JOIN orders b ON a.id = b.id "
                      "AND a.amount;",
                      "argument of JOIN/ON must be type boolean");
    expect_bind_error("INSERT INTO out SELECT id FROM orders o WHERE EXISTS (SELECT 1 FROM orders);",
                      "EXISTS needs a correlation equality");
    expect_bind_error("INSERT INTO out SELECT id FROM orders o WHERE id NOT IN (SELECT p.id FROM "
                      "orders p WHERE p.status = o.status);",
                      "NOT IN over a correlated subquery is not supported");
    expect_bind_error("INSERT INTO out SELECT id FROM orders o WHERE id IN (SELECT max(id) FROM "
                      "orders);",
                      "GROUP BY, HAVING, DISTINCT or aggregates is not supported");
    expect_bind_error("INSERT INTO out SELECT id FROM orders o WHERE id IN (SELECT id, status FROM "
                      "orders);",
                      "subquery has too many columns");
    expect_bind_error("INSERT INTO out SELECT id FROM orders ORDER BY id;",
                      "job.sql:4:48: ORDER BY is not supported in a streaming query");
    expect_bind_error("INSERT INTO out SELECT id FROM orders LIMIT 3;", "LIMIT");
    expect_bind_error("INSERT INTO out SELECT id, row_number() OVER () AS r FROM orders;",
                      "needs ORDER BY inside OVER");
    expect_bind_error("INSERT INTO out SELECT id, rank() OVER (ORDER BY id) AS r FROM orders;",
                      "window function rank() is not supported");
    expect_bind_error("INSERT INTO out SELECT id, row_number() OVER (ORDER BY id) + 1 AS r "
                      "FROM orders;",
                      "window functions");
    /* Top-N: the filter on the rank is required and must bound it from above. */
    expect_bind_error("INSERT INTO out SELECT id, row_number() OVER (ORDER BY id) AS r FROM "
                      "orders;",
                      "job.sql:4:28: row_number() needs a filter on it");
    expect_bind_error("INSERT INTO out SELECT * FROM (SELECT id, row_number() OVER (ORDER BY id) "
                      "AS rn FROM orders) s WHERE rn > 2;",
                      "this filter on row_number() is not supported");
    expect_bind_error("INSERT INTO out SELECT * FROM (SELECT id, row_number() OVER (ORDER BY id) "
                      "AS rn FROM orders) s WHERE rn = 2;",
                      "this filter on row_number() is not supported");
    expect_bind_error("INSERT INTO out SELECT * FROM (SELECT id, row_number() OVER (ORDER BY id) "
                      "AS rn FROM orders) s WHERE rn <= 0;",
                      "keeps no rank");
    expect_bind_error("INSERT INTO out SELECT * FROM (SELECT id, row_number() OVER (ORDER BY id) "
                      "AS rn FROM orders) s WHERE rn <= 3 OR id = 1;",
                      "row_number() needs a filter on it");
    expect_bind_error("INSERT INTO out SELECT * FROM (SELECT id, row_number() OVER (ORDER BY "
                      "amount + 1) AS rn FROM orders) s WHERE rn <= 3;",
                      "ORDER BY of row_number() must name a column");
    expect_bind_error("INSERT INTO out SELECT * FROM (SELECT customer_id, count(*) AS n, "
                      "row_number() OVER (ORDER BY customer_id) AS rn FROM orders GROUP BY "
                      "customer_id) s WHERE rn <= 3;",
                      "row_number() in a query with GROUP BY");
    expect_bind_error("INSERT INTO out SELECT id FROM orders WHERE id > 3 OR id IN (SELECT id "
                      "FROM orders);",
                      "a subquery in an expression is not supported");
    expect_bind_error("INSERT INTO out SELECT id FROM orders UNION SELECT id FROM orders;",
                      "UNION");
    expect_bind_error("INSERT INTO out SELECT DISTINCT ON (id) id FROM orders;", "DISTINCT ON");
    expect_bind_error("INSERT INTO out SELECT id FROM orders GROUP BY ROLLUP (id);", "ROLLUP");
    expect_bind_error("INSERT INTO out SELECT id FROM orders GROUP BY 3;",
                      "GROUP BY position 3 is not in select list");
    expect_bind_error("INSERT INTO out SELECT ARRAY[1, 2] AS a FROM orders;", "ARRAY");
}

static void test_undeclared_columns(void)
{
    char err[2048] = "";
    tm_job_t *job = NULL;
    const char *sql =
        "CREATE TABLE shop () WITH (connector='postgres-cdc', dsn='x', tables='a.b');\n"
        "CREATE TABLE out () WITH (connector = 'stdout');\n"
        "INSERT INTO out SELECT id FROM shop;\n"
        "INSERT INTO out SELECT * FROM shop;\n";
    TM_REQUIRE(tm_job_parse(sql, "job.sql", &job, err, sizeof(err)) == 0);
    tm_expr_pool_t *pool = tm_expr_pool_new();
    tm_bound_query_t *q = NULL;
    TM_CHECK_INT(tm_bind_insert(job, 0, pool, &q, err, sizeof(err)), TM_ESQL);
    TM_CHECK(strstr(err, "job.sql:3:24: table 'shop' declares no columns") != NULL);
    TM_CHECK_INT(tm_bind_insert(job, 1, pool, &q, err, sizeof(err)), 0);
    TM_CHECK(q->passthrough && q->out_schema == NULL && q->table == 0);
    tm_bound_query_free(q);
    tm_job_free(job);
    tm_expr_pool_free(pool);
}

static void test_grouped_shape(void)
{
    char err[2048] = "";
    tm_job_t *job = NULL;
    tm_bound_query_t *q = NULL;
    tm_expr_pool_t *pool = tm_expr_pool_new();
    int rc = bind_one("INSERT INTO out SELECT customer_id, count(*) AS n, sum(amount) AS total,\n"
                      "  min(amount) AS lo, max(amount) AS hi, avg(amount) AS mean,\n"
                      "  count(DISTINCT status) AS statuses FROM orders o GROUP BY o.customer_id\n"
                      "  HAVING count(*) > 1;",
                      &q, &job, pool, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_REQUIRE(rc == 0);
    TM_CHECK(q->grouped && !q->passthrough);
    TM_CHECK_INT(q->ngroup, 1);
    /* count(*) in HAVING is the select list's count(*); amount is one argument column. */
    TM_CHECK_INT(q->naggs, 6);
    TM_CHECK_INT(q->npre, 3);
    TM_CHECK(q->aggs[0].kind == TM_AGG_COUNT_STAR && q->aggs[0].arg == -1);
    TM_CHECK(q->aggs[1].kind == TM_AGG_SUM && q->aggs[1].arg == 1);
    TM_CHECK(q->aggs[5].kind == TM_AGG_COUNT && q->aggs[5].distinct && q->aggs[5].arg == 2);
    TM_CHECK(q->having != NULL);
    TM_CHECK_INT(q->ntargets, 7);
    TM_CHECK_INT(tm_expr_column_index(q->targets[0]), 0);
    TM_CHECK_INT(tm_expr_column_index(q->targets[2]), 2);
    TM_CHECK_STR(q->out_schema->cols[6].name, "statuses");
    TM_CHECK(q->out_schema->cols[1].type == TM_T_INT64);
    TM_CHECK(q->out_schema->cols[2].type == TM_T_NUMERIC);
    TM_CHECK_INT(q->agg_schema->ncols, 7);
    tm_bound_query_free(q);
    tm_job_free(job);

    /* GROUP BY an output ordinal and an output alias. */
    rc = bind_one("INSERT INTO out SELECT floor(amount / 100) AS bucket, count(*) AS n\n"
                  "  FROM orders GROUP BY bucket;",
                  &q, &job, pool, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_REQUIRE(rc == 0);
    TM_CHECK_INT(q->ngroup, 1);
    TM_CHECK_INT(tm_expr_column_index(q->targets[0]), 0);
    TM_CHECK_STR(q->agg_schema->cols[0].name, "bucket");
    tm_bound_query_free(q);
    tm_job_free(job);

    /* A view, aggregated again: the inner query is a subquery of the outer. */
    rc = bind_one("CREATE VIEW per_customer AS SELECT customer_id, sum(amount) AS total\n"
                  "  FROM orders GROUP BY customer_id;\n"
                  "INSERT INTO out SELECT floor(total / 100) AS bucket, count(*) AS customers\n"
                  "  FROM per_customer GROUP BY 1;",
                  &q, &job, pool, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_REQUIRE(rc == 0);
    TM_CHECK(q->sub != NULL && q->from_view && q->sub->grouped);
    TM_CHECK_STR(q->from_name, "per_customer");
    TM_CHECK_INT(tm_bound_query_source(q), 0);
    TM_CHECK_INT(q->in_schema->ncols, 2);
    tm_bound_query_free(q);
    tm_job_free(job);

    /* SELECT DISTINCT is a GROUP BY over the select list. */
    rc = bind_one("INSERT INTO out SELECT DISTINCT status FROM orders;", &q, &job, pool, err,
                  sizeof(err));
    TM_REQUIRE(rc == 0);
    TM_CHECK(q->grouped && q->ngroup == 1 && q->naggs == 0);
    tm_bound_query_free(q);
    tm_job_free(job);
    tm_expr_pool_free(pool);
}

static void test_expressions(void)
{
    char err[2048] = "";
    tm_job_t *job = NULL;
    tm_bound_query_t *q = NULL;
    tm_expr_pool_t *pool = tm_expr_pool_new();
    int rc = bind_one(
        "INSERT INTO out SELECT id, extract(hour FROM created_at) AS h,\n"
        "  substring(status FROM 2 FOR 3) AS s, position('x' IN status) AS p,\n"
        "  trim(both ' ' FROM status) AS t, CURRENT_TIMESTAMP AS now, amount::numeric(12,4) AS a,\n"
        "  CASE WHEN amount > 10 THEN 'big' ELSE 'small' END AS size,\n"
        "  coalesce(status, 'none') AS st, greatest(amount, 1) AS g, nullif(status, '') AS n,\n"
        "  status IS NULL AS isn, (amount > 1) IS TRUE AS ist, id IN (1, 2) AS i,\n"
        "  amount BETWEEN 1 AND 2 AS b, status LIKE 'a%' AS l, status ILIKE 'A%' AS il,\n"
        "  id IS DISTINCT FROM 3 AS d, -amount AS neg, NOT (id = 1) AS nt, 3000000000 AS big\n"
        "FROM orders WHERE status <> 'cancelled' AND amount > 100;",
        &q, &job, pool, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_REQUIRE(rc == 0);
    TM_CHECK_INT(q->ntargets, 21);
    TM_CHECK(q->where != NULL && tm_expr_type(q->where)->type == TM_T_BOOL);
    TM_CHECK(tm_expr_uses_now(q->targets[5]));
    TM_CHECK(q->out_schema->cols[6].type == TM_T_NUMERIC && q->out_schema->cols[6].scale == 4);
    TM_CHECK(q->out_schema->cols[7].type == TM_T_TEXT);
    TM_CHECK(q->out_schema->cols[20].type == TM_T_INT64);
    /* EXTRACT is numeric since PostgreSQL 14 (it used to be bound as date_part, a double). */
    TM_CHECK(q->out_schema->cols[1].type == TM_T_NUMERIC);
    TM_CHECK(q->out_schema->cols[11].type == TM_T_BOOL && !q->out_schema->cols[11].nullable);
    tm_bound_query_free(q);
    tm_job_free(job);
    tm_expr_pool_free(pool);
}

/* libpg_query 15-4.x drops the value of a zero or negative integer constant from its JSON; the job
 * parser reads it back from the text (left(x, -1) was bound as left(x, 0)). */
static void test_negative_integer_constants(void)
{
    char err[2048] = "";
    tm_job_t *job = NULL;
    tm_bound_query_t *q = NULL;
    tm_expr_pool_t *pool = tm_expr_pool_new();
    int rc = bind_one("INSERT INTO out SELECT left(status, -1) AS a, id + - 7 AS b,\n"
                      "  id * - -2 AS c, 0 AS d, -2147483648 AS e, -3000000000 AS f\n"
                      "FROM orders;",
                      &q, &job, pool, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_REQUIRE(rc == 0);
    TM_REQUIRE(q->ntargets == 6);
    const char *want[] = {"left(status, -1)", "(id + -7)", "(id * 2)", "0", "-2147483648",
                          "-3000000000"};
    const char *names[] = {"id", "customer_id", "amount", "status", "created_at"};
    for (int i = 0; i < 6; i++) {
        char buf[256];
        tm_expr_format(q->targets[i], names, buf, sizeof(buf));
        TM_CHECK_STR(buf, want[i]);
    }
    TM_CHECK(q->out_schema->cols[4].type == TM_T_INT32);
    TM_CHECK(q->out_schema->cols[5].type == TM_T_INT64);
    /* A type modifier is an integer constant too (tidemark has no negative numeric scales). */
    expect_bind_error("INSERT INTO out SELECT amount::numeric(4, -1) AS g FROM orders;",
                      "NUMERIC scale -1 must be between 0 and precision 4");
    tm_bound_query_free(q);
    tm_job_free(job);
    tm_expr_pool_free(pool);
}

/* Joins: the tree, keys, computed keys (casts), side filters, residual, nullability. */
static void test_join_shape(void)
{
    char err[2048] = "";
    tm_job_t *job = NULL;
    tm_bound_query_t *q = NULL;
    tm_expr_pool_t *pool = tm_expr_pool_new();
    int rc = bind_one("INSERT INTO out SELECT a.id, b.status AS s FROM orders a LEFT JOIN orders b "
                      "ON a.customer_id = b.id AND b.status = 'x' AND a.amount > b.amount;",
                      &q, &job, pool, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_REQUIRE(rc == 0 && q != NULL && q->from != NULL);
    const tm_bound_from_t *j = q->from;
    TM_CHECK_INT(j->kind, TM_BOUND_LEFT);
    TM_CHECK_INT(j->nkeys, 1);
    /* int = bigint: the left key is cast to bigint before the join, appended as $key1. */
    TM_CHECK_INT(j->left->next, 1);
    TM_CHECK_INT(j->right_keys[0], 0);
    TM_CHECK_INT(j->left_keys[0], 5);
    TM_CHECK_STR(j->left->schema->cols[5].name, "$key1");
    TM_CHECK(j->right->filter != NULL); /* b.status = 'x': the right of a LEFT join */
    TM_CHECK(j->left->filter == NULL);
    TM_CHECK(j->residual != NULL);      /* a.amount > b.amount */
    TM_CHECK_INT(j->raw->ncols, 6 + 5);
    TM_CHECK(j->raw->cols[6].nullable);  /* b.id, null-padded */
    TM_CHECK_INT(q->ntargets, 2);
    tm_bound_query_free(q);
    tm_job_free(job);
    q = NULL;
    job = NULL;
    rc = bind_one("INSERT INTO out SELECT id FROM orders o WHERE NOT EXISTS (SELECT 1 FROM orders p "
                  "WHERE p.customer_id = o.customer_id AND p.id <> o.id) AND o.id NOT IN "
                  "(SELECT customer_id FROM orders) AND amount > 0;",
                  &q, &job, pool, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_REQUIRE(rc == 0 && q != NULL && q->from != NULL);
    TM_CHECK_INT(q->from->kind, TM_BOUND_ANTI);
    TM_CHECK(q->from->null_aware); /* customer_id can be NULL */
    TM_CHECK_INT(q->from->left->kind, TM_BOUND_ANTI);
    TM_CHECK(!q->from->left->null_aware);
    TM_CHECK(q->from->left->residual != NULL); /* p.id <> o.id */
    TM_CHECK_INT(q->in_schema->ncols, 5);     /* the left side's columns only */
    TM_CHECK(q->where != NULL);               /* amount > 0 stays in WHERE */
    tm_bound_query_free(q);
    tm_job_free(job);
    tm_expr_pool_free(pool);
}

/* Interval joins: the time bounds the binder finds in a join's ON clause. */
static void test_interval_bounds(void)
{
    const int64_t M = 60 * 1000000LL; /* a minute in µs */
    static const struct {
        const char *on;
        bool interval;
        int64_t lower, upper; /* in minutes, or µs with `exact` */
        bool exact;
        bool rest; /* a residual besides the bounds */
    } cases[] = {
        {"a.created_at BETWEEN b.created_at AND b.created_at + INTERVAL '10 minutes'", true, 0,
         10, false, false},
        {"a.created_at >= b.created_at - INTERVAL '5 minutes' AND a.created_at < b.created_at",
         true, -5 * M, -1, true, false},
        {"b.created_at BETWEEN a.created_at - INTERVAL '2 minutes' AND a.created_at + "
         "INTERVAL '3 minutes' AND a.amount > b.amount",
         true, -3, 2, false, true},
        {"b.created_at + INTERVAL '1 minute' > a.created_at AND a.created_at > b.created_at",
         true, 1, M - 1, true, false},
        {"a.created_at > b.created_at AND a.created_at <= b.created_at + INTERVAL '1 hour' AND "
         "a.created_at <= b.created_at + INTERVAL '30 minutes'",
         true, 1, 30 * M, true, false},
        /* One bound only, a month, or a non-constant offset: a plain condition. */
        {"a.created_at >= b.created_at", false, 0, 0, false, true},
        {"a.created_at BETWEEN b.created_at AND b.created_at + INTERVAL '1 month'", false, 0, 0,
         false, true},
        {"a.created_at BETWEEN b.created_at AND a.created_at + INTERVAL '1 minute'", false, 0,
         0, false, true},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char sql[1024], err[2048] = "";
        snprintf(sql, sizeof(sql),
                 "INSERT INTO out SELECT a.id, b.id AS bid FROM orders a JOIN orders b ON "
                 "a.customer_id = b.customer_id AND %s;",
                 cases[i].on);
        tm_job_t *job = NULL;
        tm_bound_query_t *q = NULL;
        tm_expr_pool_t *pool = tm_expr_pool_new();
        int rc = bind_one(sql, &q, &job, pool, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "%s\n", err);
        TM_REQUIRE(rc == 0);
        const tm_bound_from_t *J = q->from;
        TM_REQUIRE(J != NULL && J->kind == TM_BOUND_INNER);
        if (J->interval != cases[i].interval)
            fprintf(stderr, "case %zu: interval %d\n", i, J->interval);
        TM_CHECK(J->interval == cases[i].interval);
        TM_CHECK(J->residual != NULL); /* a regular join keeps every condition */
        if (cases[i].interval) {
            int64_t mul = cases[i].exact ? 1 : M;
            TM_CHECK_STR(J->left->schema->cols[J->time_left].name, "created_at");
            TM_CHECK_STR(J->right->schema->cols[J->time_right].name, "created_at");
            if (J->lower_us != cases[i].lower * mul || J->upper_us != cases[i].upper * mul)
                fprintf(stderr, "case %zu: bounds %lld..%lld\n", i, (long long)J->lower_us,
                        (long long)J->upper_us);
            TM_CHECK(J->lower_us == cases[i].lower * mul);
            TM_CHECK(J->upper_us == cases[i].upper * mul);
            TM_CHECK((J->interval_rest != NULL) == cases[i].rest);
        }
        tm_bound_query_free(q);
        tm_job_free(job);
        tm_expr_pool_free(pool);
    }
}

/* Top-N: the rank's columns, order, limit and whether the enclosing query reads rn. */
static void test_rank_shape(void)
{
    static const struct {
        const char *sql;
        int64_t limit;
        bool used;
        int nhidden;
    } cases[] = {
        {"INSERT INTO out SELECT * FROM (SELECT *, row_number() OVER (PARTITION BY status "
         "ORDER BY amount DESC, created_at NULLS FIRST) AS rn FROM orders) s WHERE rn <= 3;",
         3, true, 0},
        {"INSERT INTO out SELECT id FROM (SELECT *, row_number() OVER (PARTITION BY status "
         "ORDER BY amount DESC, created_at NULLS FIRST) AS rn FROM orders) s WHERE 4 > rn "
         "AND rn >= 1 AND id > 2;",
         3, false, 0},
        {"INSERT INTO out SELECT id, status FROM (SELECT id, status, row_number() OVER "
         "(PARTITION BY status ORDER BY amount DESC, created_at NULLS FIRST) AS rn FROM orders) "
         "s WHERE rn = 1 AND rn < 7;",
         1, false, 2},
        {"INSERT INTO out SELECT id, rn * 2 AS r2 FROM (SELECT *, row_number() OVER "
         "(PARTITION BY status ORDER BY amount DESC, created_at NULLS FIRST) AS rn FROM orders) "
         "s WHERE rn BETWEEN 1 AND 5;",
         5, true, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char err[2048] = "";
        tm_job_t *job = NULL;
        tm_bound_query_t *q = NULL;
        tm_expr_pool_t *pool = tm_expr_pool_new();
        int rc = bind_one(cases[i].sql, &q, &job, pool, err, sizeof(err));
        if (rc != 0)
            fprintf(stderr, "%s\n", err);
        TM_REQUIRE(rc == 0);
        TM_REQUIRE(q->sub != NULL && q->sub->rank != NULL);
        const tm_bound_query_t *sub = q->sub;
        const tm_bound_rank_t *rk = sub->rank;
        TM_CHECK_INT((int)rk->limit, (int)cases[i].limit);
        TM_CHECK(rk->rank_used == cases[i].used);
        TM_CHECK_INT(rk->nhidden, cases[i].nhidden);
        TM_CHECK_INT(rk->npart, 1);
        TM_CHECK_INT(rk->norder, 2);
        TM_CHECK(rk->desc[0] && rk->nulls_first[0]);   /* DESC: NULLs first by default */
        TM_CHECK(!rk->desc[1] && rk->nulls_first[1]);  /* ASC NULLS FIRST */
        TM_CHECK_STR(sub->out_schema->cols[rk->target].name, "rn");
        TM_CHECK(sub->out_schema->cols[rk->target].type == TM_T_INT64);
        /* The partition column is the select list's status, or hidden. */
        int p = rk->part_targets[0];
        if (cases[i].nhidden == 0)
            TM_CHECK_STR(sub->out_schema->cols[p].name, "status");
        else
            TM_CHECK(p >= sub->ntargets || strcmp(sub->out_schema->cols[p].name, "status") == 0);
        /* The filter on rn is gone from the enclosing query; other conditions stay. */
        TM_CHECK((q->where != NULL) == (i == 1));
        tm_bound_query_free(q);
        tm_job_free(job);
        tm_expr_pool_free(pool);
    }
}

int main(void)
{
    TM_RUN(test_rank_shape);
    TM_RUN(test_interval_bounds);
    TM_RUN(test_join_shape);
    TM_RUN(test_errors);
    TM_RUN(test_undeclared_columns);
    TM_RUN(test_grouped_shape);
    TM_RUN(test_expressions);
    TM_RUN(test_negative_integer_constants);
    return tm_test_done();
}
