/*
 * Unit test: the Nexmark generator (determinism, the 1:3:46 mix, id, price
 * and time rules, out-of-order groups), the datagen connector's options and
 * restore position, and the planner's insert-only mode for its scans.
 */
#include "datagen/nexmark.h"
#include "core/error.h"
#include "plan/plan.h"
#include "runtime/connector.h"
#include "sql/job.h"
#include "tm_test.h"

#include <string.h>

/* A digest of every field of an event. */
static uint64_t digest(const tm_nexmark_event_t *e)
{
    uint64_t h = 1469598103934665603ULL;
#define MIX(v)                                                                                     \
    do {                                                                                           \
        h ^= (uint64_t)(v);                                                                        \
        h *= 1099511628211ULL;                                                                     \
    } while (0)
#define MIXS(s)                                                                                    \
    for (const char *p_ = (s); *p_; p_++)                                                          \
    MIX((unsigned char)*p_)
    MIX(e->kind);
    MIX(e->id);
    MIX(e->date_time_ms);
    switch (e->kind) {
    case TM_NEXMARK_PERSON:
        MIX(e->person_id);
        MIXS(e->name);
        MIXS(e->email);
        MIXS(e->credit_card);
        MIXS(e->city);
        MIXS(e->state);
        break;
    case TM_NEXMARK_AUCTION:
        MIX(e->auction_id);
        MIX(e->initial_bid);
        MIX(e->reserve);
        MIX(e->expires_ms);
        MIX(e->seller);
        MIX(e->category);
        MIXS(e->item_name);
        MIXS(e->description);
        break;
    case TM_NEXMARK_BID:
        MIX(e->auction);
        MIX(e->bidder);
        MIX(e->price);
        MIXS(e->channel);
        MIXS(e->url);
        break;
    }
    MIXS(e->extra);
    return h;
}

static void test_deterministic(void)
{
    tm_nexmark_cfg_t c;
    tm_nexmark_cfg_default(&c);
    tm_nexmark_event_t a = {0}, b = {0};
    uint64_t fwd[500];
    for (uint64_t n = 0; n < 500; n++) {
        TM_REQUIRE(tm_nexmark_generate(&c, n, &a) == 0);
        fwd[n] = digest(&a);
    }
    /* Backwards, with a fresh event struct: the same events (no hidden state). */
    for (uint64_t n = 500; n-- > 0;) {
        TM_REQUIRE(tm_nexmark_generate(&c, n, &b) == 0);
        TM_CHECK(digest(&b) == fwd[n]);
    }
    /* Another seed gives other events, with the same ids and times. */
    c.seed = 7;
    int differ = 0;
    for (uint64_t n = 0; n < 500; n++) {
        TM_REQUIRE(tm_nexmark_generate(&c, n, &a) == 0);
        differ += digest(&a) != fwd[n];
    }
    TM_CHECK(differ > 490);
    tm_nexmark_event_release(&a);
    tm_nexmark_event_release(&b);
}

static void test_mix_ids_prices(void)
{
    tm_nexmark_cfg_t c;
    tm_nexmark_cfg_default(&c);
    tm_nexmark_event_t e = {0};
    uint64_t count[3] = {0};
    int64_t last_person = 999, last_auction = 999, last_time = 0;
    uint64_t hot_auction = 0, hot_bidder = 0, bids = 0, extra_bytes = 0;
    int64_t price_min = INT64_MAX, price_max = 0;
    const uint64_t N = 50000;
    for (uint64_t n = 0; n < N; n++) {
        TM_REQUIRE(tm_nexmark_generate(&c, n, &e) == 0);
        count[e.kind]++;
        /* In order (group 1): id = n, time = base + n / rate. */
        TM_CHECK(e.id == n);
        TM_CHECK(e.date_time_ms == c.base_time_ms + (int64_t)(n / 10));
        TM_CHECK(e.date_time_ms >= last_time);
        last_time = e.date_time_ms;
        if (e.kind == TM_NEXMARK_PERSON) {
            /* Person ids are dense from 1000. */
            TM_CHECK(e.person_id == last_person + 1);
            last_person = e.person_id;
            TM_CHECK(strlen(e.credit_card) == 19);
            TM_CHECK(strchr(e.email, '@') != NULL);
        } else if (e.kind == TM_NEXMARK_AUCTION) {
            TM_CHECK(e.auction_id == last_auction + 1);
            last_auction = e.auction_id;
            TM_CHECK(e.category >= 10 && e.category < 15);
            TM_CHECK(e.reserve >= e.initial_bid);
            TM_CHECK(e.expires_ms > e.date_time_ms);
            /* A seller is a person created so far, or at most 10 ahead. */
            TM_CHECK(e.seller >= 1000 && e.seller <= last_person + 10);
        } else {
            bids++;
            TM_CHECK(e.auction >= 1000 && e.auction <= last_auction + 10);
            TM_CHECK(e.bidder >= 1000 && e.bidder <= last_person + 10);
            TM_CHECK(e.price >= 100 && e.price <= 100000000);
            price_min = e.price < price_min ? e.price : price_min;
            price_max = e.price > price_max ? e.price : price_max;
            hot_auction += (e.auction - 1000) % 100 == 0;
            hot_bidder += (e.bidder - 1000) % 100 == 1;
            extra_bytes += 32 + e.extra_len;
        }
    }
    /* 1 : 3 : 46 exactly, since N is a multiple of 50. */
    TM_CHECK(count[0] == N / 50 && count[1] == 3 * N / 50 && count[2] == 46 * N / 50);
    /* Hot auctions: 1 - 1/2 of bids at least; hot bidders 1 - 1/4. */
    TM_CHECK(hot_auction > bids * 45 / 100 && hot_auction < bids * 60 / 100);
    TM_CHECK(hot_bidder > bids * 70 / 100 && hot_bidder < bids * 80 / 100);
    /* Prices spread over six decades; bid sizes average 100 bytes. */
    TM_CHECK(price_min < 1000 && price_max > 10000000);
    TM_CHECK(extra_bytes / bids >= 95 && extra_bytes / bids <= 105);
    tm_nexmark_event_release(&e);
}

static void test_out_of_order(void)
{
    tm_nexmark_cfg_t c;
    tm_nexmark_cfg_default(&c);
    c.out_of_order_group = 100;
    /* Each group's ids are a permutation of the group's range, not in order. */
    bool seen[100];
    int inversions = 0;
    for (uint64_t g = 0; g < 20; g++) {
        memset(seen, 0, sizeof(seen));
        for (uint64_t k = 0; k < 100; k++) {
            uint64_t id = tm_nexmark_event_id(&c, g * 100 + k);
            TM_REQUIRE(id >= g * 100 && id < g * 100 + 100);
            TM_CHECK(!seen[id - g * 100]);
            seen[id - g * 100] = true;
            if (k > 0)
                inversions += id < tm_nexmark_event_id(&c, g * 100 + k - 1);
        }
    }
    TM_CHECK(inversions > 100);
    char err[256];
    c.out_of_order_group = 953 * 2;
    TM_CHECK(tm_nexmark_cfg_check(&c, err, sizeof(err)) == TM_ECONFIG);
    TM_CHECK(strstr(err, "953") != NULL);
}

/* Parses one CREATE TABLE + INSERT and makes the datagen source of table 0. */
static int source_of(const char *with, const char *cols, const char *restore, tm_source_t **out,
                     tm_job_t **jobp, char *err, size_t errlen)
{
    char sql[2048];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE g (%s) WITH (connector = 'datagen'%s);\n"
             "CREATE TABLE o () WITH (connector = 'blackhole');\n"
             "INSERT INTO o SELECT * FROM g;\n",
             cols, with);
    int rc = tm_job_parse(sql, "g.sql", jobp, err, errlen);
    if (rc != 0)
        return rc;
    const tm_job_table_t *t = &(*jobp)->tables[0];
    tm_source_config_t cfg = {.name = t->name,
                              .opts = t->opts,
                              .declared = t->declared,
                              .state_dir = "/nonexistent",
                              .restore_position = restore,
                              .job = "g"};
    return t->conn->source_new(out, &cfg, err, errlen);
}

static void describe_line(void *arg, const char *text)
{
    char *buf = arg;
    size_t len = strlen(buf);
    snprintf(buf + len, 1024 - len, "%s\n", text);
}

static void test_connector_options(void)
{
    const tm_connector_t *dg = tm_connector_find("datagen");
    TM_REQUIRE(dg != NULL);
    TM_CHECK(dg->kinds & TM_CONNECTOR_INSERT_ONLY);
    TM_REQUIRE(tm_connector_find("blackhole") != NULL);
    char err[1024] = "";
    tm_job_t *job = NULL;
    tm_source_t *src = NULL;
    /* A column that Nexmark's bid does not have is named in the error. */
    int rc = source_of(", kind = 'nexmark', \"table\" = 'bid'", "auction bigint, colour text", NULL,
                       &src, &job, err, sizeof(err));
    TM_CHECK_INT(rc, TM_ECONFIG);
    TM_CHECK(strstr(err, "colour") != NULL && strstr(err, "bidder") != NULL);
    job = tm_job_free(job);
    /* Flink's mixed-case names match case-insensitively; a wrong type is refused. */
    rc = source_of(", kind = 'nexmark', \"table\" = 'bid'", "price text", NULL, &src, &job, err,
                   sizeof(err));
    TM_CHECK_INT(rc, TM_ECONFIG);
    TM_CHECK(strstr(err, "bigint") != NULL);
    job = tm_job_free(job);
    rc = source_of(", kind = 'nexmark'", "price bigint", NULL, &src, &job, err, sizeof(err));
    TM_CHECK_INT(rc, TM_ECONFIG);
    TM_CHECK(strstr(err, "table = 'person'") != NULL);
    job = tm_job_free(job);
    rc = source_of(", \"fields.nope.kind\" = 'sequence'", "id bigint", NULL, &src, &job, err,
                   sizeof(err));
    TM_CHECK_INT(rc, TM_ECONFIG);
    TM_CHECK(strstr(err, "fields.nope.kind") != NULL);
    job = tm_job_free(job);
    rc = source_of(", events = '5'", "id bigint", NULL, &src, &job, err, sizeof(err));
    TM_CHECK_INT(rc, TM_ECONFIG);
    TM_CHECK(strstr(err, "number_of_rows") != NULL);
    job = tm_job_free(job);
    /* Bounds out of range are refused, not cast (a numeric is made as a scaled int64). */
    rc = source_of(", \"fields.v.max\" = '1e30'", "v numeric(10,2)", NULL, &src, &job, err,
                   sizeof(err));
    TM_CHECK_INT(rc, TM_ECONFIG);
    TM_CHECK(strstr(err, "fields.v.min/max") != NULL);
    job = tm_job_free(job);
    rc = source_of(", \"fields.v.min\" = '-1e300'", "v bigint", NULL, &src, &job, err, sizeof(err));
    TM_CHECK_INT(rc, 0);
    if (rc == 0)
        dg->source_free(src);
    job = tm_job_free(job);
    /* A checkpoint position that is not datagen's is an error, not a silent restart. */
    rc = source_of("", "id bigint", "lsn=0/1", &src, &job, err, sizeof(err));
    TM_CHECK_INT(rc, TM_ECHECKPOINT);
    job = tm_job_free(job);
    /* A good one is accepted and shown by describe. */
    rc = source_of(", kind = 'nexmark', \"table\" = 'bid', events = '100'",
                   "auction bigint, dateTime timestamp, event_id bigint", "event=42", &src, &job,
                   err, sizeof(err));
    TM_CHECK_INT(rc, 0);
    if (rc == 0) {
        char lines[1024] = "";
        dg->source_describe(src, describe_line, lines);
        TM_CHECK(strstr(lines, "Nexmark bid events") != NULL);
        TM_CHECK(strstr(lines, "position from 42") != NULL);
        dg->source_free(src);
    }
    job = tm_job_free(job);
}

static void test_plan_insert_only(void)
{
    /* A declared key on an insert-only source keeps the scan insert-only: no upsert node. */
    const char *sql = "CREATE TABLE g (id bigint PRIMARY KEY, v int) WITH (connector = 'datagen');\n"
                      "CREATE TABLE o () WITH (connector = 'blackhole');\n"
                      "INSERT INTO o SELECT id, v FROM g;\n";
    char err[1024] = "";
    tm_job_t *job = NULL;
    tm_plan_t *plan = NULL;
    TM_REQUIRE(tm_job_parse(sql, "g.sql", &job, err, sizeof(err)) == 0);
    int rc = tm_plan_new(job, &plan, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "%s\n", err);
    TM_REQUIRE(rc == 0);
    bool scan = false;
    for (int i = 0; i < plan->nnodes; i++) {
        TM_CHECK(plan->nodes[i]->kind != TM_PLAN_UPSERT);
        if (plan->nodes[i]->kind == TM_PLAN_SCAN) {
            scan = true;
            TM_CHECK(plan->nodes[i]->mode == TM_MODE_INSERT_ONLY);
        }
        if (plan->nodes[i]->kind == TM_PLAN_SINK)
            TM_CHECK(plan->nodes[i]->mode == TM_MODE_INSERT_ONLY);
    }
    TM_CHECK(scan);
    tm_plan_free(plan);
    tm_job_free(job);
}

int main(void)
{
    TM_RUN(test_deterministic);
    TM_RUN(test_mix_ids_prices);
    TM_RUN(test_out_of_order);
    TM_RUN(test_connector_options);
    TM_RUN(test_plan_insert_only);
    return tm_test_done();
}
