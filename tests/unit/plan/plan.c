/*
 * Unit tests: plan shapes, changelog modes, keys, exchanges, stages and
 * uids for the queries of the SQL issue; sink fitting errors; explain.
 */
#include "core/error.h"
#include "plan/plan.h"
#include "tm_test.h"

#include <stdlib.h>
#include <string.h>

static const char *tables =
    "CREATE TABLE orders (id bigint, customer_id int, amount numeric(10,2), status text,\n"
    "  created_at timestamp, PRIMARY KEY (id))\n"
    "  WITH (connector='postgres-cdc', dsn='host=x', table='public.orders');\n"
    "CREATE TABLE big_orders () WITH (connector = 'stdout');\n"
    "CREATE TABLE revenue (customer_id int, n bigint, total numeric, lo numeric(10,2),\n"
    "  hi numeric(10,2), mean numeric, statuses bigint, PRIMARY KEY (customer_id))\n"
    "  WITH (connector = 'stdout');\n"
    "CREATE TABLE buckets () WITH (connector = 'stdout');\n"
    "CREATE TABLE totals () WITH (connector = 'stdout');\n"
    "SET parallelism = 2;\n";

static const char *q_big =
    "INSERT INTO big_orders SELECT id, customer_id, amount * 1.2 AS gross, upper(status) AS "
    "status,\n  date_trunc('hour', created_at) AS hour FROM orders WHERE amount > 100 AND status "
    "<> 'cancelled';\n";
static const char *q_revenue =
    "INSERT INTO revenue SELECT customer_id, count(*) AS n, sum(amount) AS total, min(amount) "
    "AS lo,\n  max(amount) AS hi, avg(amount) AS mean, count(DISTINCT status) AS statuses\n"
    "  FROM orders GROUP BY customer_id HAVING count(*) > 1;\n";
static const char *q_buckets =
    "CREATE VIEW per_customer AS SELECT customer_id, sum(amount) AS total FROM orders GROUP BY "
    "customer_id;\n"
    "INSERT INTO buckets SELECT floor(total / 100) AS bucket, count(*) AS customers FROM "
    "per_customer GROUP BY 1;\n";
static const char *q_totals = "INSERT INTO totals SELECT count(*) AS n, sum(amount) AS total "
                              "FROM orders;\n";

static char *job_text(const char *a, const char *b, const char *c, const char *d)
{
    char *s = NULL;
    if (asprintf(&s, "%s%s%s%s%s", tables, a ? a : "", b ? b : "", c ? c : "", d ? d : "") < 0)
        return NULL;
    return s;
}

static tm_plan_t *plan_of(const char *sql, tm_job_t **job)
{
    char err[2048] = "";
    tm_plan_t *plan = NULL;
    int rc = tm_job_parse(sql, "shop.sql", job, err, sizeof(err));
    if (rc == 0)
        rc = tm_plan_new(*job, &plan, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    return plan;
}

/* The chain of a pipeline from its source: kinds[i] of node i. */
static int chain(const tm_plan_t *plan, int p, tm_plan_node_t **nodes, int max)
{
    tm_plan_node_t *v[64];
    int n = 0;
    for (tm_plan_node_t *x = plan->pipelines[p].sink; x && n < 64; x = x->input)
        v[n++] = x;
    for (int i = 0; i < n && i < max; i++)
        nodes[i] = v[n - 1 - i];
    return n;
}

static void test_issue_queries(void)
{
    tm_job_t *job = NULL;
    char *sql = job_text(q_big, q_revenue, q_buckets, q_totals);
    tm_plan_t *plan = plan_of(sql, &job);
    TM_REQUIRE(plan != NULL);
    TM_CHECK_INT(plan->npipelines, 4);
    tm_plan_node_t *n[16];

    /* 1. Filter and projection: scan → upsert → calc → sink, retract, key (id). */
    TM_REQUIRE(chain(plan, 0, n, 16) == 4);
    TM_CHECK(n[0]->kind == TM_PLAN_SCAN && n[0]->mode == TM_MODE_UPSERT && !n[0]->before_images);
    TM_CHECK(n[1]->kind == TM_PLAN_UPSERT && n[1]->exchange == TM_EXCHANGE_HASH);
    TM_CHECK_STR(n[1]->uid, "upsert/orders/big_orders");
    TM_CHECK(n[1]->stateful && n[1]->parallelism == 2 && n[1]->mode == TM_MODE_RETRACT);
    TM_CHECK(n[2]->kind == TM_PLAN_CALC && n[2]->calc.filter != NULL && n[2]->calc.nexprs == 5);
    TM_CHECK(n[2]->exchange == TM_EXCHANGE_FORWARD && n[2]->stage == n[1]->stage);
    TM_CHECK(n[2]->nkey == 1 && n[2]->key[0] == 0 && n[2]->mode == TM_MODE_RETRACT);
    TM_CHECK_STR(n[2]->schema->cols[2].name, "gross");
    TM_CHECK_STR(n[2]->schema->source_name, "tidemark");
    TM_CHECK_STR(n[2]->schema->namespace, "shop");
    TM_CHECK_STR(n[2]->schema->table, "big_orders");
    TM_CHECK(n[3]->kind == TM_PLAN_SINK && !n[3]->sink_upsert);

    /* 2. GROUP BY into a sink keyed by the group column. */
    TM_REQUIRE(chain(plan, 1, n, 16) == 6);
    TM_CHECK(n[0] == plan->pipelines[0].sink->input->input->input); /* the scan is shared */
    TM_CHECK_STR(n[1]->uid, "upsert/orders/revenue");
    TM_CHECK(n[2]->kind == TM_PLAN_CALC && n[2]->calc.nexprs == 3 && n[2]->stage == n[1]->stage);
    TM_CHECK(n[3]->kind == TM_PLAN_GROUP_AGG && n[3]->exchange == TM_EXCHANGE_HASH);
    TM_CHECK(n[3]->agg.ngroup == 1 && n[3]->agg.naggs == 6 && n[3]->parallelism == 2);
    TM_CHECK(n[3]->mode == TM_MODE_UPSERT && n[3]->before_images && n[3]->nkey == 1);
    TM_CHECK(strncmp(n[3]->uid, "agg/revenue/1-", 14) == 0);
    TM_CHECK(n[3]->stage != n[2]->stage);
    TM_CHECK(n[4]->kind == TM_PLAN_CALC && n[4]->calc.filter != NULL && n[4]->stage == n[3]->stage);
    TM_CHECK(n[5]->sink_upsert && n[5]->mode == TM_MODE_UPSERT && n[5]->key[0] == 0);
    /* Fitted to the sink's declared types: count(*) stays bigint, avg becomes numeric. */
    TM_CHECK(n[5]->schema->cols[1].type == TM_T_INT64);
    TM_CHECK_INT(n[5]->schema->nkeys, 1);

    /* 3. An aggregate of an aggregate through a view: two aggregations, re-partitioned. */
    TM_REQUIRE(chain(plan, 2, n, 16) == 9);
    TM_CHECK(n[3]->kind == TM_PLAN_GROUP_AGG && n[6]->kind == TM_PLAN_GROUP_AGG);
    TM_CHECK(strncmp(n[3]->uid, "agg/buckets/1-", 14) == 0);
    TM_CHECK(strncmp(n[6]->uid, "agg/buckets/2-", 14) == 0);
    TM_CHECK(n[6]->exchange == TM_EXCHANGE_HASH && n[6]->stage != n[3]->stage);
    TM_CHECK(n[5]->kind == TM_PLAN_CALC && n[5]->stage == n[3]->stage);
    /* The pre-aggregation drops the first aggregation's key: a retract stream again. */
    TM_CHECK(n[5]->mode == TM_MODE_RETRACT && n[5]->nkey == 0 && n[5]->before_images);
    TM_CHECK(n[8]->mode == TM_MODE_UPSERT && n[8]->nkey == 1);

    /* 4. A global aggregate runs on one subtask. */
    TM_REQUIRE(chain(plan, 3, n, 16) == 6);
    TM_CHECK(n[3]->exchange == TM_EXCHANGE_SINGLE && n[3]->parallelism == 1);
    TM_CHECK(n[3]->agg.ngroup == 0 && n[3]->nkey == 0);

    /* Stateful uids for the state layer. */
    const char *uids[16];
    TM_CHECK_INT(tm_plan_state_uids(plan, uids, 16), 8);
    TM_CHECK_STR(uids[0], "upsert/orders/big_orders");
    tm_plan_free(plan);
    tm_job_free(job);
    free(sql);
}

static const char *agg_uid(const char *query)
{
    static char uid[128];
    tm_job_t *job = NULL;
    char *sql = job_text(query, NULL, NULL, NULL);
    tm_plan_t *plan = plan_of(sql, &job);
    uid[0] = '\0';
    for (int i = 0; plan && i < plan->nnodes; i++)
        if (plan->nodes[i]->kind == TM_PLAN_GROUP_AGG)
            snprintf(uid, sizeof(uid), "%s", plan->nodes[i]->uid);
    tm_plan_free(plan);
    tm_job_free(job);
    free(sql);
    return uid;
}

static void test_uid_stability(void)
{
    char a[128], b[128], c[128];
    snprintf(a, sizeof(a), "%s", agg_uid(q_revenue));
    snprintf(b, sizeof(b), "%s",
             agg_uid("INSERT INTO revenue SELECT customer_id, count(*) AS n, sum(amount) AS "
                     "total, min(amount) AS lo,\n  max(amount) AS hi, avg(amount) AS mean, "
                     "count(DISTINCT status) AS statuses\n  FROM orders WHERE id > 0 GROUP BY "
                     "customer_id HAVING count(*) > 5;\n"));
    snprintf(c, sizeof(c), "%s",
             agg_uid("INSERT INTO revenue SELECT customer_id, count(*) AS n, sum(amount) AS "
                     "total, min(amount) AS lo,\n  max(amount) AS hi, sum(amount) AS mean, "
                     "count(DISTINCT status) AS statuses\n  FROM orders GROUP BY customer_id;\n"));
    TM_CHECK(a[0] != '\0');
    /* Same aggregation, other filter and HAVING: the state keeps its meaning and its uid. */
    TM_CHECK_STR(a, b);
    /* Other aggregates: new state under a new uid. */
    TM_CHECK(strcmp(a, c) != 0);
}

static void expect_plan_error(const char *query, const char *needle)
{
    char err[2048] = "";
    tm_job_t *job = NULL;
    tm_plan_t *plan = NULL;
    char *sql = job_text(query, NULL, NULL, NULL);
    int rc = tm_job_parse(sql, "shop.sql", &job, err, sizeof(err));
    TM_CHECK_INT(rc, 0);
    if (rc == 0) {
        rc = tm_plan_new(job, &plan, err, sizeof(err));
        TM_CHECK(rc == TM_ESQL || rc == TM_EUNSUPPORTED);
        TM_CHECK(plan == NULL);
    }
    if (strstr(err, needle) == NULL) {
        fprintf(stderr, "error '%s' lacks '%s'\n", err, needle);
        TM_CHECK(0);
    }
    tm_job_free(job);
    free(sql);
}

static void test_sink_errors(void)
{
    expect_plan_error("INSERT INTO revenue SELECT customer_id, count(*) AS n FROM orders GROUP BY "
                      "customer_id;",
                      "the query has 2 columns but sink 'revenue' declares 7");
    expect_plan_error("INSERT INTO revenue SELECT customer_id, id, 1, 1, 1, 1, 1 FROM orders;",
                      "sink 'revenue' declares PRIMARY KEY (customer_id), but the query's rows "
                      "are unique on (n)");
    expect_plan_error("INSERT INTO revenue SELECT amount, count(*), 1, 1, 1, 1, 1 FROM orders "
                      "GROUP BY amount, status;",
                      "sink 'revenue' declares PRIMARY KEY (customer_id), but the query's rows "
                      "have no unique key");
    expect_plan_error("INSERT INTO revenue SELECT customer_id, now(), 1, 1, 1, 1, 1 FROM orders "
                      "GROUP BY customer_id;",
                      "column 2 (now) of the query is timestamp with time zone, but sink "
                      "'revenue' declares column \"n\" as bigint");
    expect_plan_error("INSERT INTO revenue (customer_id, nope) SELECT customer_id, count(*) FROM "
                      "orders GROUP BY customer_id;",
                      "column \"nope\" of sink 'revenue' does not exist");
    expect_plan_error("INSERT INTO totals SELECT id, id FROM orders;",
                      "has two columns named \"id\"");
    expect_plan_error("INSERT INTO totals SELECT id + 1 FROM orders;", "has no name");
}

static void test_explain(void)
{
    tm_job_t *job = NULL;
    char *sql = job_text(q_big, q_revenue, q_buckets, q_totals);
    tm_plan_t *plan = plan_of(sql, &job);
    TM_REQUIRE(plan != NULL);
    char *text = NULL, err[1024];
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    TM_REQUIRE(f != NULL);
    int rc = tm_plan_explain(plan, f, err, sizeof(err));
    fclose(f);
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_CHECK_INT(rc, 0);
    static const char *const want[] = {
        "uid upsert/orders/big_orders", "input: hash(id); parallelism 2 (stage 1)",
        "group_agg (global: one group)", "input: single; parallelism 1",
        "upserts on its PRIMARY KEY",     "changelog: upsert (+I +U -D) on (customer_id)",
        "stage 1: upsert → calc × 2",     "not built yet: interval joins",
        "on_error",
    };
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (text == NULL || strstr(text, want[i]) == NULL) {
            fprintf(stderr, "explain lacks '%s':\n%s\n", want[i], text ? text : "");
            TM_CHECK(0);
        }
    free(text);
    tm_plan_free(plan);
    tm_job_free(job);
    free(sql);
}

static void test_passthrough(void)
{
    /* SELECT * keeps the first version's shape: an upsert only when a key is declared. */
    tm_job_t *job = NULL;
    const char *sql =
        "CREATE TABLE shop () WITH (connector='postgres-cdc', dsn='x', tables='a.b, a.c');\n"
        "CREATE TABLE out () WITH (connector = 'stdout');\n"
        "CREATE TABLE keyed (id int PRIMARY KEY) WITH (connector = 'stdout');\n"
        "INSERT INTO out SELECT * FROM shop;\n"
        "INSERT INTO keyed SELECT * FROM shop;\n";
    tm_plan_t *plan = plan_of(sql, &job);
    TM_REQUIRE(plan != NULL);
    tm_plan_node_t *n[8];
    TM_CHECK_INT(chain(plan, 0, n, 8), 2);
    TM_CHECK(n[0]->kind == TM_PLAN_SCAN && n[1]->kind == TM_PLAN_SINK && n[1]->schema == NULL);
    TM_CHECK_INT(chain(plan, 1, n, 8), 3);
    TM_CHECK(n[1]->kind == TM_PLAN_UPSERT && n[1]->exchange_cols == NULL);
    TM_CHECK_STR(n[1]->uid, "upsert/shop/keyed");
    TM_CHECK_INT(plan->nstages, 1);
    tm_plan_free(plan);
    tm_job_free(job);
}

/* A lookup join: one FORWARD node after the stream, no state, the stream's key, the spec's keys. */
static void test_lookup_join_plan(void)
{
    const char *sql =
        "CREATE TABLE events (id int, dim_id bigint, region text, PRIMARY KEY (id))\n"
        "  WITH (connector='postgres-cdc', dsn='host=x', table='public.events');\n"
        "CREATE TABLE dims (region text, id int, label text, active boolean,\n"
        "  PRIMARY KEY (id, region)) WITH (connector='postgres', dsn='host=x', table='dims',\n"
        "  lookup = true, lookup_cache_rows = 7, lookup_ttl = '2s');\n"
        "CREATE TABLE out () WITH (connector = 'stdout');\n"
        "SET parallelism = 2;\n"
        "INSERT INTO out SELECT e.id, d.label FROM dims d RIGHT JOIN events e\n"
        "  ON e.region = d.region AND e.dim_id = d.id AND d.active AND d.label <> e.region;\n";
    tm_job_t *job = NULL;
    tm_plan_t *plan = plan_of(sql, &job);
    TM_REQUIRE(plan != NULL);
    tm_plan_node_t *lj = NULL;
    for (int i = 0; i < plan->nnodes; i++)
        if (plan->nodes[i]->kind == TM_PLAN_LOOKUP_JOIN)
            lj = plan->nodes[i];
    TM_REQUIRE(lj != NULL);
    TM_CHECK_STR(tm_plan_kind_name(lj->kind), "lookup_join");
    TM_CHECK(lj->input->kind == TM_PLAN_UPSERT);
    TM_CHECK(!lj->stateful && lj->exchange == TM_EXCHANGE_FORWARD && lj->parallelism == 2);
    TM_CHECK(lj->stage == lj->input->stage); /* chained into the stream's stage */
    const tm_lookup_join_spec_t *ls = &lj->lookup;
    TM_CHECK(ls->type == TM_JOIN_LEFT && ls->dim_left);
    TM_CHECK_INT(ls->lookup.nkeys, 2);
    /* Key slots follow the declared PRIMARY KEY (id, region): dims columns 1 and 0. */
    TM_CHECK_INT(ls->lookup.key_cols[0], 1);
    TM_CHECK_INT(ls->lookup.key_cols[1], 0);
    TM_CHECK_STR(ls->in_schema->cols[ls->probe_keys[0]].name, "dim_id");
    TM_CHECK_STR(ls->in_schema->cols[ls->probe_keys[1]].name, "region");
    /* The probe key keeps its type (bigint); the server compares across integer types. */
    TM_CHECK(ls->lookup.key_schema->cols[0].type == TM_T_INT64);
    TM_CHECK(ls->dim_filter != NULL && ls->residual != NULL);
    TM_CHECK_INT((int)ls->cache_rows, 7);
    TM_CHECK_INT((int)ls->ttl_us, 2000000);
    TM_CHECK(ls->cache_missing);
    /* d.id is cast to bigint for the pair: a computed column appended to the dims side. */
    TM_CHECK_INT(ls->ndim_ext, 1);
    /* dims ++ events: the stream's key (id) moves behind the 4 + 1 dims columns. */
    TM_CHECK_INT(lj->nkey, 1);
    TM_CHECK_INT(lj->key[0], 5);
    TM_CHECK(lj->mode == TM_MODE_RETRACT && lj->before_images);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    char err[512];
    TM_CHECK_INT(tm_plan_explain(plan, f, err, sizeof(err)), 0);
    fclose(f);
    TM_CHECK(text && strstr(text, "lookup_join left with lookup table dims") != NULL);
    TM_CHECK(text && strstr(text, "dims.id = stream.dim_id AND dims.region = stream.region"));
    TM_CHECK(text && strstr(text, "lookup_cache_rows = 7 per subtask"));
    TM_CHECK(text && strstr(text, "processing-time lookup"));
    free(text);
    tm_plan_free(plan);
    tm_job_free(job);
}

/* Top-N: calc → TopN (hash on the partition) → calc, keys and modes, uids. */
static void test_topn_plan(void)
{
    tm_job_t *job = NULL;
    char *sql = job_text(
        "CREATE TABLE top3 (status text, rn bigint, id bigint, amount numeric(10,2),\n"
        "  PRIMARY KEY (status, rn)) WITH (connector = 'stdout');\n"
        "INSERT INTO top3 SELECT status, rn, id, amount FROM (SELECT id, status, amount,\n"
        "  row_number() OVER (PARTITION BY status ORDER BY amount DESC, id) AS rn FROM orders) s\n"
        "  WHERE rn <= 3;\n"
        "INSERT INTO big_orders SELECT id, status FROM (SELECT *, row_number() OVER (ORDER BY\n"
        "  created_at) AS rn FROM orders) s WHERE rn = 1;\n",
        NULL, NULL, NULL);
    tm_plan_t *plan = plan_of(sql, &job);
    TM_REQUIRE(plan != NULL);
    tm_plan_node_t *v[16];
    int n = chain(plan, 0, v, 16);
    TM_REQUIRE(n == 6);
    TM_CHECK(v[2]->kind == TM_PLAN_CALC && v[3]->kind == TM_PLAN_TOPN);
    const tm_plan_node_t *t = v[3];
    TM_CHECK(t->exchange == TM_EXCHANGE_HASH && t->nexchange == 1 && t->parallelism == 2);
    TM_CHECK(t->stateful && t->mode == TM_MODE_RETRACT && t->before_images);
    TM_CHECK(t->topn.rank_number && t->topn.limit == 3 && t->topn.rn_col == 3);
    TM_CHECK(!t->topn.append_only);
    TM_CHECK(strncmp(t->uid, "topn/top3/1-", 12) == 0);
    /* Unique on (status, rn); the sink's PRIMARY KEY (status, rn) receives upserts. */
    TM_REQUIRE(t->nkey == 2);
    TM_CHECK_STR(t->schema->cols[t->key[0]].name, "status");
    TM_CHECK_STR(t->schema->cols[t->key[1]].name, "rn");
    TM_CHECK(v[5]->kind == TM_PLAN_SINK && v[5]->sink_upsert);
    /* No PARTITION BY: one subtask; rn not read: rows entering and leaving only, keyed by id. */
    n = chain(plan, 1, v, 16);
    TM_REQUIRE(n == 6);
    t = v[3];
    TM_CHECK(t->kind == TM_PLAN_TOPN && t->exchange == TM_EXCHANGE_SINGLE && t->parallelism == 1);
    TM_CHECK(!t->topn.rank_number && t->topn.limit == 1);
    TM_REQUIRE(t->nkey == 1);
    TM_CHECK_STR(t->schema->cols[t->key[0]].name, "id");
    tm_plan_free(plan);
    tm_job_free(job);
    free(sql);
    /* A ranked subquery read through a join has no filter on its rank. */
    expect_plan_error("INSERT INTO big_orders SELECT s.id FROM (SELECT id, customer_id, "
                      "row_number() OVER (ORDER BY id) AS rn FROM orders) s JOIN orders o ON "
                      "s.customer_id = o.customer_id WHERE s.rn <= 3;",
                      "row_number() needs a filter on it");
}

/* Interval joins: over snapshot-only sources an IntervalJoin, over changelogs a Join. */
static void test_interval_join_plan(void)
{
#define IJ_QUERY(t)                                                                         \
    "INSERT INTO big_orders SELECT a.id, b.id AS bid FROM " t " a LEFT JOIN " t " b ON "         \
    "a.customer_id = b.customer_id AND a.created_at BETWEEN b.created_at - INTERVAL '1 minute' " \
    "AND b.created_at AND a.amount > b.amount;\n"
    static const char *snap =
        "CREATE TABLE snap (id bigint, customer_id int, amount numeric(10,2), created_at\n"
        "  timestamp, PRIMARY KEY (id)) WITH (connector='postgres-cdc', dsn='host=x',\n"
        "  table='public.orders', snapshot = 'initial_only');\n";
    for (int bounded = 0; bounded < 2; bounded++) {
        char both[2048];
        snprintf(both, sizeof(both), "%s%s", snap, bounded ? IJ_QUERY("snap") : IJ_QUERY("orders"));
        tm_job_t *job = NULL;
        char *sql = job_text(both, NULL, NULL, NULL);
        tm_plan_t *plan = plan_of(sql, &job);
        TM_REQUIRE(plan != NULL);
        tm_plan_node_t *j = NULL;
        for (int i = 0; i < plan->nnodes; i++)
            if (plan->nodes[i]->input2 != NULL)
                j = plan->nodes[i];
        TM_REQUIRE(j != NULL);
        if (bounded) {
            TM_CHECK(j->kind == TM_PLAN_INTERVAL_JOIN);
            TM_CHECK(j->mode == TM_MODE_INSERT_ONLY);
            TM_CHECK(j->input->kind == TM_PLAN_SCAN); /* no upsert before it */
            TM_CHECK(j->ij.type == TM_JOIN_LEFT);
            TM_CHECK(j->ij.lower_us == -60000000 && j->ij.upper_us == 0);
            TM_CHECK(j->ij.residual != NULL); /* a.amount > b.amount */
            TM_CHECK(strncmp(j->uid, "join/big_orders/1-", 18) == 0);
        } else {
            TM_CHECK(j->kind == TM_PLAN_JOIN && j->interval_as_join);
            TM_CHECK(j->mode == TM_MODE_RETRACT);
        }
        tm_plan_free(plan);
        tm_job_free(job);
        free(sql);
    }
}

int main(void)
{
    TM_RUN(test_topn_plan);
    TM_RUN(test_interval_join_plan);
    TM_RUN(test_issue_queries);
    TM_RUN(test_uid_stability);
    TM_RUN(test_sink_errors);
    TM_RUN(test_explain);
    TM_RUN(test_passthrough);
    TM_RUN(test_lookup_join_plan);
    return tm_test_done();
}
