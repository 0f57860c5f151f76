/*
 * nexmark.c — the Nexmark event generator (rules in nexmark.h).
 *
 * Every function here is pure over its arguments; the Java port in
 * bench/nexmark/flink/src/main/java/io/tidemark/bench/NexmarkGen.java mirrors
 * it line for line, so any change here must be made there too (the bench
 * prints a sanity line comparing both generators' sums).
 *
 * Thread: any.
 */
#include "datagen/nexmark.h"

#include "core/error.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FIRST_PERSON_ID 1000
#define FIRST_AUCTION_ID 1000
#define FIRST_CATEGORY_ID 10
#define NUM_CATEGORIES 5
#define ID_LEAD 10    /* yet-to-be-created people and auctions a choice may name */
#define HOT_BATCH 100 /* hot sellers/bidders/auctions are the first of each 100 */
#define MIN_STRING_LENGTH 3
#define NUM_CHANNELS 10000

static const char *const first_names[] = {"Peter", "Paul",  "Luke",  "John",   "Saul",  "Vicky",
                                          "Kate",  "Julie", "Sarah", "Deiter", "Walter"};
static const char *const last_names[] = {"Shultz", "Abrams", "Spencer", "White", "Bartels",
                                         "Walton", "Smith",  "Jones",   "Noris"};
static const char *const us_cities[] = {"Phoenix", "Los Angeles", "San Francisco", "Boise",
                                        "Portland", "Bend", "Redmond", "Seattle", "Kent",
                                        "Cheyenne"};
static const char *const us_states[] = {"AZ", "CA", "ID", "OR", "WA", "WY"};
static const char *const hot_channels[] = {"Google", "Facebook", "Baidu", "Apple"};
static const char *const hot_urls[] = {
    "https://www.nexmark.com/googl/item.htm?query=1",
    "https://www.nexmark.com/faceb/item.htm?query=1",
    "https://www.nexmark.com/baidu/item.htm?query=1",
    "https://www.nexmark.com/apple/item.htm?query=1",
};

#define NELEM(a) ((int32_t)(sizeof(a) / sizeof((a)[0])))

/* ---- the random stream ---- */

void tm_dg_rng_seed(tm_dg_rng_t *r, int64_t seed, uint64_t key)
{
    r->s = (uint64_t)seed * 0xD1B54A32D192ED03ULL + key * 0x9E3779B97F4A7C15ULL;
}

uint64_t tm_dg_rng_next(tm_dg_rng_t *r)
{
    uint64_t z = (r->s += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

int32_t tm_dg_rng_int(tm_dg_rng_t *r, int32_t bound)
{
    /* Lemire's multiply-shift, without rejection: a bias below 2^-32 is harmless here. */
    return (int32_t)(((tm_dg_rng_next(r) >> 32) * (uint64_t)bound) >> 32);
}

int64_t tm_dg_rng_long(tm_dg_rng_t *r, int64_t n)
{
    if (n < 0x7FFFFFFF)
        return tm_dg_rng_int(r, (int32_t)n);
    return (int64_t)((tm_dg_rng_next(r) >> 1) % (uint64_t)n);
}

double tm_dg_rng_double(tm_dg_rng_t *r)
{
    return (double)(tm_dg_rng_next(r) >> 11) * 0x1.0p-53;
}

/* ---- configuration ---- */

void tm_nexmark_cfg_default(tm_nexmark_cfg_t *c)
{
    memset(c, 0, sizeof(*c));
    c->seed = 0;
    c->base_time_ms = 1735689600000LL; /* 2025-01-01T00:00:00Z: fixed, so runs agree */
    c->first_event_rate = 10000;
    c->person_proportion = 1;
    c->auction_proportion = 3;
    c->bid_proportion = 46;
    c->hot_auction_ratio = 2;
    c->hot_sellers_ratio = 4;
    c->hot_bidders_ratio = 4;
    c->num_in_flight_auctions = 100;
    c->num_active_people = 1000;
    c->avg_person_bytes = 200;
    c->avg_auction_bytes = 500;
    c->avg_bid_bytes = 100;
    c->out_of_order_group = 1;
}

int tm_nexmark_cfg_check(const tm_nexmark_cfg_t *c, char *errstr, size_t errstr_size)
{
    struct {
        const char *name;
        int64_t v, lo, hi;
    } checks[] = {
        {"first_event_rate", c->first_event_rate, 1, 1000000000},
        {"person_proportion", c->person_proportion, 1, 1000},
        {"auction_proportion", c->auction_proportion, 1, 1000},
        {"bid_proportion", c->bid_proportion, 1, 1000},
        {"hot_auction_ratio", c->hot_auction_ratio, 1, 1000000},
        {"hot_sellers_ratio", c->hot_sellers_ratio, 1, 1000000},
        {"hot_bidders_ratio", c->hot_bidders_ratio, 1, 1000000},
        {"num_in_flight_auctions", c->num_in_flight_auctions, 1, 100000000},
        {"num_active_people", c->num_active_people, 1, 100000000},
        {"avg_person_bytes", c->avg_person_bytes, 1, 100000},
        {"avg_auction_bytes", c->avg_auction_bytes, 1, 100000},
        {"avg_bid_bytes", c->avg_bid_bytes, 1, 100000},
        {"out_of_order_group", c->out_of_order_group, 1, 1000000000},
    };
    for (size_t i = 0; i < sizeof(checks) / sizeof(checks[0]); i++)
        if (checks[i].v < checks[i].lo || checks[i].v > checks[i].hi)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "datagen: %s = %lld is out of range; use %lld to %lld",
                             checks[i].name, (long long)checks[i].v, (long long)checks[i].lo,
                             (long long)checks[i].hi);
    if (c->out_of_order_group % 953 == 0)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "datagen: out_of_order_group = %lld is a multiple of 953, which would "
                         "repeat event ids; pick another size",
                         (long long)c->out_of_order_group);
    return 0;
}

/* ---- ids and times ---- */

static int64_t total(const tm_nexmark_cfg_t *c)
{
    return (int64_t)c->person_proportion + c->auction_proportion + c->bid_proportion;
}

uint64_t tm_nexmark_event_id(const tm_nexmark_cfg_t *c, uint64_t n)
{
    uint64_t g = (uint64_t)c->out_of_order_group;
    if (g <= 1)
        return n;
    /* n * 953 wraps only past 2^54 events, far beyond any run. */
    return (n / g) * g + (n * 953u) % g;
}

tm_nexmark_kind_t tm_nexmark_kind_of(const tm_nexmark_cfg_t *c, uint64_t id)
{
    int64_t rem = (int64_t)(id % (uint64_t)total(c));
    if (rem < c->person_proportion)
        return TM_NEXMARK_PERSON;
    if (rem < c->person_proportion + c->auction_proportion)
        return TM_NEXMARK_AUCTION;
    return TM_NEXMARK_BID;
}

int64_t tm_nexmark_time_ms(const tm_nexmark_cfg_t *c, uint64_t id)
{
    double delay_us = 1000000.0 / (double)c->first_event_rate;
    return c->base_time_ms + (int64_t)((double)id * delay_us) / 1000;
}

int64_t tm_nexmark_last_person(const tm_nexmark_cfg_t *c, uint64_t id)
{
    int64_t t = total(c);
    int64_t epoch = (int64_t)(id / (uint64_t)t), offset = (int64_t)(id % (uint64_t)t);
    if (offset >= c->person_proportion)
        offset = c->person_proportion - 1;
    return epoch * c->person_proportion + offset;
}

int64_t tm_nexmark_last_auction(const tm_nexmark_cfg_t *c, uint64_t id)
{
    int64_t t = total(c);
    int64_t epoch = (int64_t)(id / (uint64_t)t), offset = (int64_t)(id % (uint64_t)t);
    if (offset < c->person_proportion) {
        /* A person: the last auction is the previous epoch's last. */
        epoch--;
        offset = c->auction_proportion - 1;
    } else if (offset >= c->person_proportion + c->auction_proportion) {
        offset = c->auction_proportion - 1;
    } else {
        offset -= c->person_proportion;
    }
    return epoch * c->auction_proportion + offset;
}

/* A person among the active ones, or a few not created yet (base 0). */
static int64_t next_person(const tm_nexmark_cfg_t *c, uint64_t id, tm_dg_rng_t *r)
{
    int64_t people = tm_nexmark_last_person(c, id) + 1;
    int64_t active = people < c->num_active_people ? people : c->num_active_people;
    return people - active + tm_dg_rng_long(r, active + ID_LEAD);
}

/* An auction among those probably in flight, or a few not created yet (base 0). */
static int64_t next_auction(const tm_nexmark_cfg_t *c, uint64_t id, tm_dg_rng_t *r)
{
    int64_t maxa = tm_nexmark_last_auction(c, id);
    int64_t mina = maxa - c->num_in_flight_auctions > 0 ? maxa - c->num_in_flight_auctions : 0;
    return mina + tm_dg_rng_long(r, maxa - mina + 1 + ID_LEAD);
}

static int64_t next_price(tm_dg_rng_t *r)
{
    return (int64_t)floor(pow(10.0, tm_dg_rng_double(r) * 6.0) * 100.0 + 0.5);
}

/* Up to max-1 letters and spaces (at least 3 drawn), trimmed; buf holds max bytes. */
static size_t next_string(tm_dg_rng_t *r, int32_t max, char *buf)
{
    int32_t len = MIN_STRING_LENGTH + tm_dg_rng_int(r, max - MIN_STRING_LENGTH);
    for (int32_t i = 0; i < len; i++)
        buf[i] = tm_dg_rng_int(r, 13) == 0 ? ' ' : (char)('a' + tm_dg_rng_int(r, 26));
    size_t b = 0, e = (size_t)len;
    while (b < e && buf[b] == ' ')
        b++;
    while (e > b && buf[e - 1] == ' ')
        e--;
    memmove(buf, buf + b, e - b);
    buf[e - b] = '\0';
    return e - b;
}

/* Padding so that current + its length averages `avg` (±20 %). */
static int next_extra(tm_dg_rng_t *r, int64_t current, int64_t avg, tm_nexmark_event_t *ev)
{
    int64_t size = 0;
    if (current <= avg) {
        int64_t want = avg - current;
        int64_t delta = (int64_t)floor((double)want * 0.2 + 0.5);
        size = want - delta + (delta == 0 ? 0 : tm_dg_rng_int(r, (int32_t)(2 * delta)));
    }
    if ((size_t)size + 1 > ev->extra_cap) {
        size_t cap = (size_t)size + 64;
        char *p = realloc(ev->extra, cap);
        if (p == NULL)
            return TM_ENOMEM;
        ev->extra = p;
        ev->extra_cap = cap;
    }
    uint64_t bits = 0;
    int left = 0;
    for (int64_t i = 0; i < size; i++) {
        if (left == 0) {
            bits = tm_dg_rng_next(r) >> 33; /* 31 bits: six letters */
            left = 6;
        }
        ev->extra[i] = (char)('a' + bits % 26);
        bits /= 26;
        left--;
    }
    ev->extra[size] = '\0';
    ev->extra_len = (size_t)size;
    return 0;
}

/*
 * String building without printf: the generator is most of a simple query's
 * CPU, and snprintf was a quarter of it.  Each returns the end of what it wrote.
 */
static char *put_str(char *dst, const char *src)
{
    size_t n = strlen(src);
    memcpy(dst, src, n);
    return dst + n;
}

/* Writes v (>= 0) in decimal, zero-padded to `width` digits. */
static char *put_uint(char *dst, uint32_t v, int width)
{
    char tmp[12];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    while (n < width)
        tmp[n++] = '0';
    while (n > 0)
        *dst++ = tmp[--n];
    return dst;
}

static int gen_person(const tm_nexmark_cfg_t *c, tm_dg_rng_t *r, tm_nexmark_event_t *ev)
{
    ev->person_id = tm_nexmark_last_person(c, ev->id) + FIRST_PERSON_ID;
    /* Two statements: the order of draws must not depend on argument evaluation order. */
    int32_t first = tm_dg_rng_int(r, NELEM(first_names));
    int32_t last = tm_dg_rng_int(r, NELEM(last_names));
    char *p = put_str(ev->name, first_names[first]); /* at most 6 + 1 + 7 bytes */
    *p++ = ' ';
    *put_str(p, last_names[last]) = '\0';
    char a[8], b[8];
    next_string(r, 7, a);
    next_string(r, 5, b);
    p = put_str(ev->email, a); /* at most 6 + 1 + 4 + 4 bytes */
    *p++ = '@';
    p = put_str(p, b);
    *put_str(p, ".com") = '\0';
    p = ev->credit_card;
    for (int i = 0; i < 4; i++) {
        if (i > 0)
            *p++ = ' ';
        p = put_uint(p, (uint32_t)tm_dg_rng_int(r, 10000), 4);
    }
    *p = '\0';
    *put_str(ev->city, us_cities[tm_dg_rng_int(r, NELEM(us_cities))]) = '\0';
    *put_str(ev->state, us_states[tm_dg_rng_int(r, NELEM(us_states))]) = '\0';
    int64_t cur = 8 + (int64_t)(strlen(ev->name) + strlen(ev->email) + strlen(ev->credit_card) +
                                strlen(ev->city) + strlen(ev->state));
    return next_extra(r, cur, c->avg_person_bytes, ev);
}

static int gen_auction(const tm_nexmark_cfg_t *c, tm_dg_rng_t *r, tm_nexmark_event_t *ev)
{
    ev->auction_id = tm_nexmark_last_auction(c, ev->id) + FIRST_AUCTION_ID;
    int64_t seller;
    if (tm_dg_rng_int(r, c->hot_sellers_ratio) > 0)
        seller = (tm_nexmark_last_person(c, ev->id) / HOT_BATCH) * HOT_BATCH;
    else
        seller = next_person(c, ev->id, r);
    ev->seller = seller + FIRST_PERSON_ID;
    ev->category = FIRST_CATEGORY_ID + tm_dg_rng_int(r, NUM_CATEGORIES);
    ev->initial_bid = next_price(r);
    /* Auctions last about as long as it takes to create num_in_flight_auctions more. */
    int64_t ahead = ((int64_t)c->num_in_flight_auctions * total(c)) / c->auction_proportion;
    int64_t horizon = tm_nexmark_time_ms(c, ev->id + (uint64_t)ahead) - ev->date_time_ms;
    ev->expires_ms = ev->date_time_ms + 1 + tm_dg_rng_long(r, horizon * 2 > 1 ? horizon * 2 : 1);
    size_t nl = next_string(r, 20, ev->item_name);
    size_t dl = next_string(r, 100, ev->description);
    ev->reserve = ev->initial_bid + next_price(r);
    return next_extra(r, 8 + (int64_t)(nl + dl) + 40, c->avg_auction_bytes, ev);
}

static int gen_bid(const tm_nexmark_cfg_t *c, tm_dg_rng_t *r, tm_nexmark_event_t *ev)
{
    int64_t auction;
    if (tm_dg_rng_int(r, c->hot_auction_ratio) > 0)
        auction = (tm_nexmark_last_auction(c, ev->id) / HOT_BATCH) * HOT_BATCH;
    else
        auction = next_auction(c, ev->id, r);
    ev->auction = auction + FIRST_AUCTION_ID;
    int64_t bidder;
    if (tm_dg_rng_int(r, c->hot_bidders_ratio) > 0)
        bidder = (tm_nexmark_last_person(c, ev->id) / HOT_BATCH) * HOT_BATCH + 1;
    else
        bidder = next_person(c, ev->id, r);
    ev->bidder = bidder + FIRST_PERSON_ID;
    ev->price = next_price(r);
    if (tm_dg_rng_int(r, 2) > 0) {
        int32_t i = tm_dg_rng_int(r, NELEM(hot_channels));
        *put_str(ev->channel, hot_channels[i]) = '\0';
        *put_str(ev->url, hot_urls[i]) = '\0';
    } else {
        uint32_t ch = (uint32_t)tm_dg_rng_int(r, NUM_CHANNELS);
        char a[8], b[8], d[8];
        next_string(r, 5, a);
        next_string(r, 5, b);
        next_string(r, 5, d);
        *put_uint(put_str(ev->channel, "channel-"), ch, 1) = '\0';
        /* At most 24 + 3 * (4 + 1) + 29 + 4 bytes: ev->url holds 128. */
        char *p = put_str(ev->url, "https://www.nexmark.com/");
        char *dirs = p;
        p = put_str(p, a);
        *p++ = '/';
        p = put_str(p, b);
        *p++ = '/';
        p = put_str(p, d);
        for (char *q = dirs; q < p; q++)
            if (*q == ' ')
                *q = '_';
        p = put_str(p, "/item.htm?query=1&channel_id=");
        *put_uint(p, ch, 1) = '\0';
    }
    return next_extra(r, 32, c->avg_bid_bytes, ev);
}

int tm_nexmark_generate(const tm_nexmark_cfg_t *c, uint64_t n, tm_nexmark_event_t *ev)
{
    ev->n = n;
    ev->id = tm_nexmark_event_id(c, n);
    ev->kind = tm_nexmark_kind_of(c, ev->id);
    ev->date_time_ms = tm_nexmark_time_ms(c, ev->id);
    tm_dg_rng_t r;
    tm_dg_rng_seed(&r, c->seed, ev->id);
    switch (ev->kind) {
    case TM_NEXMARK_PERSON:
        return gen_person(c, &r, ev);
    case TM_NEXMARK_AUCTION:
        return gen_auction(c, &r, ev);
    default:
        return gen_bid(c, &r, ev);
    }
}

void tm_nexmark_event_release(tm_nexmark_event_t *ev)
{
    free(ev->extra);
    ev->extra = NULL;
    ev->extra_cap = ev->extra_len = 0;
}
