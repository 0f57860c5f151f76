/*
 * nexmark.h — the Nexmark event generator: person, auction and bid events as
 * pure functions of a configuration, a seed and an event number.
 *
 * Role: the rules of Beam's and nexmark/nexmark's GeneratorConfig and its
 * Person/Auction/Bid generators (the standard Nexmark workload Flink's
 * published figures use), re-stated here, with one change: every random
 * draw comes from a SplitMix64 stream seeded by (seed, event id), so event n
 * is the same in every run, in every process, and after a restore, and the
 * Java port in bench/nexmark/flink (the Flink side of the benchmark) yields
 * the same events bit for bit.
 *
 * The rules, per event number n (0, 1, 2, … in generation order):
 *
 *   id        = (n / G) * G + (n * 953) % G      G = out_of_order_group (1: id = n)
 *   kind      = person  if id % T <  P           T = P + A + B (1 + 3 + 46)
 *               auction if id % T <  P + A
 *               bid     otherwise
 *   dateTime  = base_time + (int64)(id * 1e6 / first_event_rate) / 1000   (ms)
 *   person.id = lastPerson(id) + 1000; auction.id = lastAuction(id) + 1000,
 *               where lastPerson/lastAuction count the people/auctions at or
 *               before id (so ids are dense and a bid refers to existing or
 *               soon-to-exist rows)
 *   seller    hot (P = 1 - 1/hot_sellers_ratio): the first of the last 100
 *               people; else one of the num_active_people newest (+10 ahead)
 *   bid.auction  hot (1 - 1/hot_auction_ratio): the first of the last 100
 *               auctions; else one of the num_in_flight_auctions newest (+10)
 *   bid.bidder   hot (1 - 1/hot_bidders_ratio): the second of the last 100
 *               people; else as seller
 *   price     round(10^(6u) * 100), u uniform in [0, 1): 100 .. 100,000,000
 *   expires   dateTime + 1 + uniform(2 * time until num_in_flight_auctions
 *               more auctions)
 *   extra     padding so that the event's size averages 200 / 500 / 100 bytes
 *
 * Invariants:
 *   1. tm_nexmark_generate() depends only on (cfg, n): no hidden state, so
 *      a source restores by setting n.
 *   2. Random draws happen in one fixed order per kind, whatever columns a
 *      table declares.
 *   3. Over any G consecutive event numbers starting at a multiple of G the
 *      ids are a permutation of the same range (953 is prime and G must not
 *      be a multiple of it), so the 1:3:46 mix holds per group.
 *
 * Thread: any; a tm_nexmark_event_t is its caller's.
 */
#ifndef TM_DATAGEN_NEXMARK_H
#define TM_DATAGEN_NEXMARK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* SplitMix64: the generator's only source of randomness (see the Java port). */
typedef struct tm_dg_rng {
    uint64_t s;
} tm_dg_rng_t;

/* The stream for (seed, key): event id for Nexmark, (row, column) for random rows. */
void tm_dg_rng_seed(tm_dg_rng_t *r, int64_t seed, uint64_t key);
uint64_t tm_dg_rng_next(tm_dg_rng_t *r);
/* Uniform in [0, bound), bound in [1, 2^31). */
int32_t tm_dg_rng_int(tm_dg_rng_t *r, int32_t bound);
/* Uniform-ish in [0, n), n >= 1 (modulo for n >= 2^31, as Nexmark's LongGenerator). */
int64_t tm_dg_rng_long(tm_dg_rng_t *r, int64_t n);
/* Uniform in [0, 1) with 53 random bits. */
double tm_dg_rng_double(tm_dg_rng_t *r);

typedef enum tm_nexmark_kind {
    TM_NEXMARK_PERSON = 0,
    TM_NEXMARK_AUCTION = 1,
    TM_NEXMARK_BID = 2,
} tm_nexmark_kind_t;

typedef struct tm_nexmark_cfg {
    int64_t seed;
    int64_t base_time_ms;     /* event time of event 0, ms since the epoch */
    int64_t first_event_rate; /* events per second of event time (spacing) */
    int32_t person_proportion, auction_proportion, bid_proportion;
    int32_t hot_auction_ratio, hot_sellers_ratio, hot_bidders_ratio;
    int32_t num_in_flight_auctions, num_active_people;
    int32_t avg_person_bytes, avg_auction_bytes, avg_bid_bytes;
    int64_t out_of_order_group; /* 1: in order */
} tm_nexmark_cfg_t;

/* Nexmark's standard configuration (NexmarkConfiguration's defaults, seed 0). */
void tm_nexmark_cfg_default(tm_nexmark_cfg_t *cfg);
/* 0, or TM_ECONFIG naming the value out of range. */
int tm_nexmark_cfg_check(const tm_nexmark_cfg_t *cfg, char *errstr, size_t errstr_size);

/* The id of event number n (out-of-order groups applied). */
uint64_t tm_nexmark_event_id(const tm_nexmark_cfg_t *cfg, uint64_t n);
tm_nexmark_kind_t tm_nexmark_kind_of(const tm_nexmark_cfg_t *cfg, uint64_t id);
/* Event time of the event with this id, ms since the epoch. */
int64_t tm_nexmark_time_ms(const tm_nexmark_cfg_t *cfg, uint64_t id);
/* Ids (base 0, without the 1000 offset) of the last person / auction at or before id. */
int64_t tm_nexmark_last_person(const tm_nexmark_cfg_t *cfg, uint64_t id);
int64_t tm_nexmark_last_auction(const tm_nexmark_cfg_t *cfg, uint64_t id);

/*
 * One event.  Strings are NUL-terminated, in the struct or in `extra_buf`
 * (which tm_nexmark_generate() grows; release with tm_nexmark_event_release).
 */
typedef struct tm_nexmark_event {
    tm_nexmark_kind_t kind;
    uint64_t n, id;       /* event number and id */
    int64_t date_time_ms; /* every kind */
    /* person */
    int64_t person_id;
    char name[32], email[32], credit_card[24], city[16], state[4];
    /* auction */
    int64_t auction_id, initial_bid, reserve, expires_ms, seller, category;
    char item_name[24], description[104];
    /* bid */
    int64_t auction, bidder, price;
    char channel[24], url[128];
    /* every kind */
    char *extra;
    size_t extra_len, extra_cap;
} tm_nexmark_event_t;

/* Fills ev with event number n.  0, or TM_ENOMEM (the extra buffer). */
int tm_nexmark_generate(const tm_nexmark_cfg_t *cfg, uint64_t n, tm_nexmark_event_t *ev);
void tm_nexmark_event_release(tm_nexmark_event_t *ev);

#endif
