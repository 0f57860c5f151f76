/*
 * datagen.c — the generator source ("datagen"): Nexmark's person, auction
 * and bid streams, or random rows over the declared columns, insert-only,
 * with no server at all.
 *
 *     CREATE TABLE bid (auction bigint, bidder bigint, price bigint, channel text,
 *                       url text, dateTime timestamp, extra text)
 *     WITH (connector = 'datagen', kind = 'nexmark', "table" = 'bid', events = '10000000');
 *
 *     CREATE TABLE orders (id bigint, amount numeric(10,2), note text)
 *     WITH (connector = 'datagen', rows_per_second = '100', number_of_rows = '1000',
 *           "fields.id.kind" = 'sequence', "fields.amount.max" = '500');
 *
 * One table per Nexmark event type, as Flink users write the three views over
 * the `nexmark` table: each table walks the same event numbers 0, 1, 2, … of
 * one deterministic stream (nexmark.h) and keeps its own kind, so three tables
 * of one configuration together are exactly the combined stream, and a table
 * never pays for generating the others' events.
 *
 * Position: the next event number (Nexmark) or row number (random).  It is
 * the ack token of every batch and the barrier position ("event=N"), and a
 * restore resumes from it (invariant 1).  Without checkpoints a run starts at
 * 0, as Flink's datagen does.
 *
 * Invariants:
 *   1. Every event number below the position has been emitted, none at or
 *      above it: a batch is emitted whole before a barrier, and a barrier
 *      carries the position right after the last emitted batch.
 *   2. Row values depend only on (options, seed, event or row number), never
 *      on timing, batch boundaries or restores; the one exception is a random
 *      timestamp column, which is "now minus a random age" as in Flink.
 *   3. The stream is insert-only (the connector says so with
 *      TM_CONNECTOR_INSERT_ONLY, which the planner reads).
 *
 * Thread: source_new/open/describe/free on the main thread, source_run on the
 * source thread.
 */
#include "datagen/nexmark.h"

#include "core/clock.h"
#include "core/error.h"
#include "runtime/connector.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const tm_option_def_t dg_options[] = {
    {"kind", TM_OPT_ENUM, false, "random", "random|nexmark",
     "random rows over the declared columns (Flink's datagen), or the Nexmark event stream"},
    {"table", TM_OPT_ENUM, false, NULL, "person|auction|bid",
     "kind = 'nexmark': which event type this table receives"},
    {"seed", TM_OPT_INT, false, "0", NULL, "seed of every random draw; same seed, same rows"},
    {"rows_per_second", TM_OPT_INT, false, NULL, NULL,
     "throttle to this many rows per second of wall-clock time; 0 = as fast as possible "
     "(default: 10000 for random, 0 for nexmark)"},
    {"number_of_rows", TM_OPT_INT, false, NULL, NULL,
     "kind = 'random': stop after this many rows (unset: unbounded)"},
    {"events", TM_OPT_INT, false, NULL, NULL,
     "kind = 'nexmark': stop after this many events of all three types (unset: unbounded)"},
    {"first_event_rate", TM_OPT_INT, false, "10000", NULL,
     "Nexmark: events per second of event time, which spaces the dateTime values"},
    {"base_time", TM_OPT_INT, false, "1735689600000", NULL,
     "Nexmark: dateTime of event 0, ms since the epoch (default 2025-01-01T00:00:00Z)"},
    {"person_proportion", TM_OPT_INT, false, "1", NULL, "Nexmark: people per cycle of events"},
    {"auction_proportion", TM_OPT_INT, false, "3", NULL, "Nexmark: auctions per cycle of events"},
    {"bid_proportion", TM_OPT_INT, false, "46", NULL, "Nexmark: bids per cycle of events"},
    {"hot_auction_ratio", TM_OPT_INT, false, "2", NULL,
     "Nexmark: a bid is for a hot auction with probability 1 - 1/ratio"},
    {"hot_sellers_ratio", TM_OPT_INT, false, "4", NULL,
     "Nexmark: an auction is by a hot seller with probability 1 - 1/ratio"},
    {"hot_bidders_ratio", TM_OPT_INT, false, "4", NULL,
     "Nexmark: a bid is by a hot bidder with probability 1 - 1/ratio"},
    {"num_in_flight_auctions", TM_OPT_INT, false, "100", NULL,
     "Nexmark: auctions open at a time (bids pick among them; sets auction length)"},
    {"num_active_people", TM_OPT_INT, false, "1000", NULL,
     "Nexmark: people who sell and bid (the newest ones)"},
    {"avg_person_bytes", TM_OPT_INT, false, "200", NULL, "Nexmark: average person size (extra pads)"},
    {"avg_auction_bytes", TM_OPT_INT, false, "500", NULL,
     "Nexmark: average auction size (extra pads)"},
    {"avg_bid_bytes", TM_OPT_INT, false, "100", NULL, "Nexmark: average bid size (extra pads)"},
    {"out_of_order_group", TM_OPT_INT, false, "1", NULL,
     "Nexmark: events are shuffled within groups of this many (1: in order)"},
    TM_SOURCE_OPT_WATERMARK,
    TM_SOURCE_OPT_IDLE_TIMEOUT,
    {NULL, 0, false, NULL, NULL, NULL},
};

/* ---- Nexmark columns ---- */

typedef enum nx_field {
    NX_EVENT_ID = 1,
    NX_P_ID, NX_P_NAME, NX_P_EMAIL, NX_P_CARD, NX_P_CITY, NX_P_STATE,
    NX_A_ID, NX_A_ITEM, NX_A_DESC, NX_A_INITIAL, NX_A_RESERVE, NX_A_EXPIRES, NX_A_SELLER,
    NX_A_CATEGORY,
    NX_B_AUCTION, NX_B_BIDDER, NX_B_PRICE, NX_B_CHANNEL, NX_B_URL,
    NX_DATETIME, NX_EXTRA,
} nx_field_t;

typedef enum { NX_INT, NX_TEXT, NX_TIME } nx_type_t;

typedef struct nx_col {
    const char *name;
    nx_field_t field;
    nx_type_t type;
} nx_col_t;

/* Flink's Nexmark DDL names, per table; event_id is tidemark's addition. */
static const nx_col_t nx_person[] = {
    {"id", NX_P_ID, NX_INT},          {"name", NX_P_NAME, NX_TEXT},
    {"emailAddress", NX_P_EMAIL, NX_TEXT}, {"creditCard", NX_P_CARD, NX_TEXT},
    {"city", NX_P_CITY, NX_TEXT},      {"state", NX_P_STATE, NX_TEXT},
    {"dateTime", NX_DATETIME, NX_TIME}, {"extra", NX_EXTRA, NX_TEXT},
    {"event_id", NX_EVENT_ID, NX_INT}, {NULL, 0, 0},
};
static const nx_col_t nx_auction[] = {
    {"id", NX_A_ID, NX_INT},           {"itemName", NX_A_ITEM, NX_TEXT},
    {"description", NX_A_DESC, NX_TEXT}, {"initialBid", NX_A_INITIAL, NX_INT},
    {"reserve", NX_A_RESERVE, NX_INT}, {"dateTime", NX_DATETIME, NX_TIME},
    {"expires", NX_A_EXPIRES, NX_TIME}, {"seller", NX_A_SELLER, NX_INT},
    {"category", NX_A_CATEGORY, NX_INT}, {"extra", NX_EXTRA, NX_TEXT},
    {"event_id", NX_EVENT_ID, NX_INT}, {NULL, 0, 0},
};
static const nx_col_t nx_bid[] = {
    {"auction", NX_B_AUCTION, NX_INT}, {"bidder", NX_B_BIDDER, NX_INT},
    {"price", NX_B_PRICE, NX_INT},     {"channel", NX_B_CHANNEL, NX_TEXT},
    {"url", NX_B_URL, NX_TEXT},        {"dateTime", NX_DATETIME, NX_TIME},
    {"extra", NX_EXTRA, NX_TEXT},      {"event_id", NX_EVENT_ID, NX_INT},
    {NULL, 0, 0},
};

/* ---- random columns ---- */

typedef struct rnd_col {
    bool sequence;
    bool has_end;
    int64_t start, end;  /* sequence */
    double min, max;     /* random numbers */
    int64_t imin, imax;  /* random integers */
    int64_t length;      /* random text */
    int64_t max_past_ms; /* random timestamps */
} rnd_col_t;

struct tm_source {
    char *name;
    bool nexmark;
    tm_nexmark_cfg_t nx;
    tm_nexmark_kind_t table;
    const nx_col_t *nx_cols; /* the table's column list */
    nx_field_t *fields;      /* per declared column (Nexmark) */
    rnd_col_t *rcols;        /* per declared column (random) */
    tm_schema_t *schema;     /* the declared columns, with this table's identity */
    int64_t rows_per_second; /* 0: flat out */
    uint64_t limit;          /* events or rows; UINT64_MAX: unbounded */
    uint64_t pos;            /* invariant 1 */
    tm_nexmark_event_t ev;
};

static void dg_source_free(tm_source_t *s)
{
    if (s == NULL)
        return;
    free(s->name);
    free(s->fields);
    free(s->rcols);
    tm_schema_unref(s->schema);
    tm_nexmark_event_release(&s->ev);
    free(s);
}

static bool is_int_type(tm_type_t t)
{
    return t == TM_T_INT16 || t == TM_T_INT32 || t == TM_T_INT64;
}

static int map_nexmark(tm_source_t *s, char *errstr, size_t errstr_size)
{
    const tm_schema_t *sc = s->schema;
    for (int i = 0; i < sc->ncols; i++) {
        const tm_column_t *col = &sc->cols[i];
        const nx_col_t *m = NULL;
        for (const nx_col_t *c = s->nx_cols; c->name; c++)
            if (strcasecmp(c->name, col->name) == 0)
                m = c;
        if (m == NULL) {
            char names[256] = "";
            for (const nx_col_t *c = s->nx_cols; c->name; c++)
                snprintf(names + strlen(names), sizeof(names) - strlen(names), "%s%s",
                         names[0] ? ", " : "", c->name);
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': column '%s' is not a Nexmark %s column; declare some "
                             "of: %s",
                             s->name, col->name,
                             s->table == TM_NEXMARK_PERSON    ? "person"
                             : s->table == TM_NEXMARK_AUCTION ? "auction"
                                                              : "bid",
                             names);
        }
        bool ok = m->type == NX_INT   ? is_int_type(col->type) || col->type == TM_T_NUMERIC
                  : m->type == NX_TEXT ? col->type == TM_T_TEXT
                                       : col->type == TM_T_TIMESTAMP ||
                                             col->type == TM_T_TIMESTAMPTZ;
        if (!ok)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': Nexmark column '%s' is declared %s; declare it %s",
                             s->name, col->name, tm_type_name(col->type),
                             m->type == NX_INT    ? "bigint"
                             : m->type == NX_TEXT ? "text (or varchar)"
                                                  : "timestamp (or timestamptz)");
        s->fields[i] = m->field;
    }
    return 0;
}

/* The scale random numerics are made with: the column's, at most 18 (2 if unconstrained). */
static int numeric_scale(const tm_column_t *col)
{
    return col->scale >= 0 && col->scale <= 18 ? col->scale : col->scale > 18 ? 18 : 2;
}

/* Reads fields.<col>.<prop> options (Flink's datagen per-field options). */
static int map_random(tm_source_t *s, const tm_options_t *opts, char *errstr, size_t errstr_size)
{
    const tm_schema_t *sc = s->schema;
    for (int i = 0; i < sc->ncols; i++) {
        rnd_col_t *rc = &s->rcols[i];
        tm_type_t t = sc->cols[i].type;
        rc->start = 0;
        rc->length = 100;
        rc->min = 0;
        rc->max = t == TM_T_NUMERIC ? 1000 : 1;
        rc->imin = t == TM_T_INT16 ? INT16_MIN : t == TM_T_INT32 ? INT32_MIN : INT64_MIN;
        rc->imax = t == TM_T_INT16 ? INT16_MAX : t == TM_T_INT32 ? INT32_MAX : INT64_MAX;
        if (t != TM_T_BOOL && !is_int_type(t) && t != TM_T_FLOAT32 && t != TM_T_FLOAT64 &&
            t != TM_T_NUMERIC && t != TM_T_TEXT && t != TM_T_DATE && t != TM_T_TIMESTAMP &&
            t != TM_T_TIMESTAMPTZ)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': datagen cannot generate column '%s' of type %s; use "
                             "boolean, smallint, int, bigint, real, double precision, numeric, "
                             "text, date or timestamp(tz)",
                             s->name, sc->cols[i].name, tm_type_name(t));
    }
    for (int k = 0; k < opts->n; k++) {
        const char *key = opts->kv[k].key, *val = opts->kv[k].value;
        if (strncmp(key, "fields.", 7) != 0)
            continue;
        const char *col = key + 7, *dot = strrchr(col, '.');
        int ci = -1;
        if (dot != NULL)
            for (int i = 0; i < sc->ncols; i++)
                if (strlen(sc->cols[i].name) == (size_t)(dot - col) &&
                    strncasecmp(sc->cols[i].name, col, (size_t)(dot - col)) == 0)
                    ci = i;
        if (ci < 0)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': option '%s' names no declared column; write "
                             "fields.<column>.<kind|min|max|length|start|end|max_past>",
                             s->name, key);
        const char *prop = dot + 1;
        rnd_col_t *rc = &s->rcols[ci];
        if (strcmp(prop, "kind") == 0) {
            if (strcmp(val, "sequence") != 0 && strcmp(val, "random") != 0)
                return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                                 "table '%s': %s = '%s'; use 'sequence' or 'random'", s->name,
                                 key, val);
            rc->sequence = strcmp(val, "sequence") == 0;
            continue;
        }
        char *end;
        errno = 0;
        double d = strtod(val, &end);
        if (errno != 0 || end == val || *end != '\0' || !isfinite(d))
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': %s = '%s' is not a number", s->name, key, val);
        long long ll = strtoll(val, &end, 10);
        bool integral = *end == '\0';
        /* Bounds beyond the int64 range saturate (a cast would be undefined). */
        double dc = d < -9.2e18 ? -9.2e18 : d > 9.2e18 ? 9.2e18 : d;
        if (strcmp(prop, "min") == 0) {
            rc->min = d;
            rc->imin = integral ? ll : (int64_t)ceil(dc);
        } else if (strcmp(prop, "max") == 0) {
            rc->max = d;
            rc->imax = integral ? ll : (int64_t)floor(dc);
        } else if (strcmp(prop, "start") == 0 && integral) {
            rc->start = ll;
        } else if (strcmp(prop, "end") == 0 && integral) {
            rc->end = ll;
            rc->has_end = true;
        } else if (strcmp(prop, "length") == 0 && integral && ll >= 0 && ll <= 65536) {
            rc->length = ll;
        } else if (strcmp(prop, "max_past") == 0 && integral && ll >= 0) {
            rc->max_past_ms = ll;
        } else {
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': option '%s' = '%s' is not understood; the properties "
                             "are kind, min, max, length (0 to 65536), start, end (integers) "
                             "and max_past (ms)",
                             s->name, key, val);
        }
    }
    for (int i = 0; i < sc->ncols; i++) {
        rnd_col_t *rc = &s->rcols[i];
        tm_type_t t = sc->cols[i].type;
        if (rc->sequence && !is_int_type(t) && t != TM_T_TEXT && t != TM_T_NUMERIC &&
            t != TM_T_FLOAT64 && t != TM_T_FLOAT32)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': column '%s' (%s) cannot be a sequence; sequences are "
                             "numbers or text",
                             s->name, sc->cols[i].name, tm_type_name(t));
        if (rc->sequence && rc->has_end) {
            if (rc->end < rc->start)
                return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                                 "table '%s': fields.%s.end (%lld) is below its start (%lld)",
                                 s->name, sc->cols[i].name, (long long)rc->end,
                                 (long long)rc->start);
            /* Flink ends the source when a bounded sequence is exhausted. */
            uint64_t n = (uint64_t)(rc->end - rc->start) + 1;
            if (n < s->limit)
                s->limit = n;
        }
        if (t == TM_T_NUMERIC) {
            /* Values are made as scaled 64-bit integers (fill_random). */
            double lim = 9.2e18 / pow(10.0, numeric_scale(&sc->cols[i]));
            if (fabs(rc->min) > lim || fabs(rc->max) > lim)
                return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                                 "table '%s': fields.%s.min/max must lie within +-%g for a "
                                 "numeric of scale %d",
                                 s->name, sc->cols[i].name, lim, numeric_scale(&sc->cols[i]));
        }
        if (!rc->sequence && (rc->min > rc->max || rc->imin > rc->imax))
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': fields.%s.min is above its max", s->name,
                             sc->cols[i].name);
    }
    return 0;
}

static int64_t opt_int(const tm_options_t *o, const char *name)
{
    return tm_opt_int(o, name);
}

static int dg_source_new(tm_source_t **out, const tm_source_config_t *cfg, char *errstr,
                         size_t errstr_size)
{
    const tm_options_t *o = cfg->opts;
    if (cfg->declared == NULL || cfg->declared->ncols == 0)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': datagen needs declared columns, e.g. CREATE TABLE bid "
                         "(auction bigint, bidder bigint, price bigint, dateTime timestamp) "
                         "WITH (connector = 'datagen', kind = 'nexmark', table = 'bid')",
                         cfg->name);
    tm_source_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return TM_ENOMEM;
    int rc = TM_ENOMEM;
    s->name = strdup(cfg->name);
    s->schema = tm_schema_clone(cfg->declared);
    if (s->name == NULL || s->schema == NULL)
        goto fail;
    tm_schema_set_str(&s->schema->source_name, "datagen");
    tm_schema_set_str(&s->schema->namespace, "datagen");
    tm_schema_set_str(&s->schema->table, cfg->name);
    s->nexmark = strcmp(tm_opt_str(o, "kind"), "nexmark") == 0;
    s->limit = UINT64_MAX;
    const char *limit_opt = s->nexmark ? "events" : "number_of_rows";
    const char *other_opt = s->nexmark ? "number_of_rows" : "events";
    if (tm_opt_isset(o, other_opt)) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option '%s' is for kind = '%s'; with kind = '%s' write '%s'",
                       cfg->name, other_opt, s->nexmark ? "random" : "nexmark",
                       s->nexmark ? "nexmark" : "random", limit_opt);
        goto fail;
    }
    if (tm_opt_isset(o, limit_opt)) {
        int64_t v = opt_int(o, limit_opt);
        if (v < 0) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': %s = %lld is negative; give a count, or leave it unset "
                           "for an unbounded stream",
                           cfg->name, limit_opt, (long long)v);
            goto fail;
        }
        s->limit = (uint64_t)v;
    }
    s->rows_per_second =
        tm_opt_isset(o, "rows_per_second") ? opt_int(o, "rows_per_second") : s->nexmark ? 0 : 10000;
    if (s->rows_per_second < 0 || s->rows_per_second > 1000000000) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': rows_per_second = %lld is out of range; use 0 (as fast as "
                       "possible) to 1000000000",
                       cfg->name, (long long)s->rows_per_second);
        goto fail;
    }
    tm_nexmark_cfg_default(&s->nx);
    s->nx.seed = opt_int(o, "seed");
    int ncols = s->schema->ncols;
    if (s->nexmark) {
        const char *t = tm_opt_str(o, "table");
        if (t == NULL) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': kind = 'nexmark' needs table = 'person', 'auction' or "
                           "'bid' (one CREATE TABLE per event type)",
                           cfg->name);
            goto fail;
        }
        s->table = strcmp(t, "person") == 0    ? TM_NEXMARK_PERSON
                   : strcmp(t, "auction") == 0 ? TM_NEXMARK_AUCTION
                                               : TM_NEXMARK_BID;
        s->nx_cols = s->table == TM_NEXMARK_PERSON    ? nx_person
                     : s->table == TM_NEXMARK_AUCTION ? nx_auction
                                                      : nx_bid;
        s->nx.base_time_ms = opt_int(o, "base_time");
        s->nx.first_event_rate = opt_int(o, "first_event_rate");
        struct {
            const char *name;
            int32_t *dst;
        } ints[] = {
            {"person_proportion", &s->nx.person_proportion},
            {"auction_proportion", &s->nx.auction_proportion},
            {"bid_proportion", &s->nx.bid_proportion},
            {"hot_auction_ratio", &s->nx.hot_auction_ratio},
            {"hot_sellers_ratio", &s->nx.hot_sellers_ratio},
            {"hot_bidders_ratio", &s->nx.hot_bidders_ratio},
            {"num_in_flight_auctions", &s->nx.num_in_flight_auctions},
            {"num_active_people", &s->nx.num_active_people},
            {"avg_person_bytes", &s->nx.avg_person_bytes},
            {"avg_auction_bytes", &s->nx.avg_auction_bytes},
            {"avg_bid_bytes", &s->nx.avg_bid_bytes},
        };
        for (size_t i = 0; i < sizeof(ints) / sizeof(ints[0]); i++) {
            int64_t v = opt_int(o, ints[i].name);
            *ints[i].dst = v < INT32_MIN ? INT32_MIN : v > INT32_MAX ? INT32_MAX : (int32_t)v;
        }
        s->nx.out_of_order_group = opt_int(o, "out_of_order_group");
        if ((rc = tm_nexmark_cfg_check(&s->nx, errstr, errstr_size)) != 0)
            goto fail;
        s->fields = calloc((size_t)ncols, sizeof(*s->fields));
        rc = TM_ENOMEM;
        if (s->fields == NULL)
            goto fail;
        if ((rc = map_nexmark(s, errstr, errstr_size)) != 0)
            goto fail;
    } else {
        s->rcols = calloc((size_t)ncols, sizeof(*s->rcols));
        rc = TM_ENOMEM;
        if (s->rcols == NULL)
            goto fail;
        if ((rc = map_random(s, o, errstr, errstr_size)) != 0)
            goto fail;
    }
    /* Resume after what the last completed checkpoint covers (invariant 1). */
    if (cfg->restore_position != NULL) {
        unsigned long long p;
        char tail;
        if (sscanf(cfg->restore_position, "event=%llu%c", &p, &tail) != 1 &&
            sscanf(cfg->restore_position, "row=%llu%c", &p, &tail) != 1) {
            rc = tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                           "table '%s': the checkpoint's position '%s' is not a datagen position "
                           "(event=N or row=N); was the table's connector changed?",
                           cfg->name, cfg->restore_position);
            goto fail;
        }
        s->pos = p;
    } else {
        s->pos = cfg->restore_token;
    }
    *out = s;
    return 0;
fail:
    dg_source_free(s);
    return rc;
}

static int dg_source_open(tm_source_t *s, char *errstr, size_t errstr_size)
{
    (void)s;
    (void)errstr;
    (void)errstr_size;
    return 0;
}

/* ---- rows ---- */

static int set_text(tm_batch_t *b, tm_row_t *row, int i, const char *p, size_t len)
{
    tm_row_set_null(row, i, false);
    return tm_batch_set_var(b, &row->vals[i], p, len);
}

static void set_int(const tm_column_t *col, tm_row_t *row, int i, int64_t v)
{
    tm_row_set_null(row, i, false);
    tm_datum_t *d = &row->vals[i];
    if (col->type == TM_T_NUMERIC) {
        d->u.dec = v;
        d->scale = 0;
    } else {
        d->u.i64 = v;
    }
}

static int fill_nexmark(tm_source_t *s, tm_batch_t *b, tm_row_t *row)
{
    const tm_nexmark_event_t *e = &s->ev;
    const tm_schema_t *sc = s->schema;
    int rc = 0;
    for (int i = 0; i < sc->ncols && rc == 0; i++) {
        const tm_column_t *col = &sc->cols[i];
        switch (s->fields[i]) {
        case NX_EVENT_ID: set_int(col, row, i, (int64_t)e->n); break;
        case NX_P_ID: set_int(col, row, i, e->person_id); break;
        case NX_P_NAME: rc = set_text(b, row, i, e->name, strlen(e->name)); break;
        case NX_P_EMAIL: rc = set_text(b, row, i, e->email, strlen(e->email)); break;
        case NX_P_CARD: rc = set_text(b, row, i, e->credit_card, strlen(e->credit_card)); break;
        case NX_P_CITY: rc = set_text(b, row, i, e->city, strlen(e->city)); break;
        case NX_P_STATE: rc = set_text(b, row, i, e->state, strlen(e->state)); break;
        case NX_A_ID: set_int(col, row, i, e->auction_id); break;
        case NX_A_ITEM: rc = set_text(b, row, i, e->item_name, strlen(e->item_name)); break;
        case NX_A_DESC: rc = set_text(b, row, i, e->description, strlen(e->description)); break;
        case NX_A_INITIAL: set_int(col, row, i, e->initial_bid); break;
        case NX_A_RESERVE: set_int(col, row, i, e->reserve); break;
        case NX_A_EXPIRES:
            tm_row_set_null(row, i, false);
            row->vals[i].u.i64 = e->expires_ms * 1000;
            break;
        case NX_A_SELLER: set_int(col, row, i, e->seller); break;
        case NX_A_CATEGORY: set_int(col, row, i, e->category); break;
        case NX_B_AUCTION: set_int(col, row, i, e->auction); break;
        case NX_B_BIDDER: set_int(col, row, i, e->bidder); break;
        case NX_B_PRICE: set_int(col, row, i, e->price); break;
        case NX_B_CHANNEL: rc = set_text(b, row, i, e->channel, strlen(e->channel)); break;
        case NX_B_URL: rc = set_text(b, row, i, e->url, strlen(e->url)); break;
        case NX_DATETIME:
            tm_row_set_null(row, i, false);
            row->vals[i].u.i64 = e->date_time_ms * 1000;
            break;
        case NX_EXTRA: rc = set_text(b, row, i, e->extra, e->extra_len); break;
        }
    }
    return rc;
}

/* A uniform integer in [lo, hi]. */
static int64_t rnd_range(tm_dg_rng_t *r, int64_t lo, int64_t hi)
{
    uint64_t span = (uint64_t)hi - (uint64_t)lo;
    uint64_t x = tm_dg_rng_next(r);
    return (int64_t)((uint64_t)lo + (span == UINT64_MAX ? x : x % (span + 1)));
}

static int fill_random(tm_source_t *s, uint64_t rowno, int64_t now_us, tm_batch_t *b,
                       tm_row_t *row)
{
    const tm_schema_t *sc = s->schema;
    tm_dg_rng_t r;
    tm_dg_rng_seed(&r, s->nx.seed, rowno);
    char buf[64];
    for (int i = 0; i < sc->ncols; i++) {
        const tm_column_t *col = &sc->cols[i];
        const rnd_col_t *rc = &s->rcols[i];
        tm_datum_t *d = &row->vals[i];
        tm_row_set_null(row, i, false);
        int64_t seq = rc->start + (int64_t)rowno;
        switch (col->type) {
        case TM_T_BOOL:
            d->u.b = (tm_dg_rng_next(&r) >> 63) != 0;
            break;
        case TM_T_INT16:
        case TM_T_INT32:
        case TM_T_INT64:
            d->u.i64 = rc->sequence ? seq : rnd_range(&r, rc->imin, rc->imax);
            break;
        case TM_T_FLOAT32:
        case TM_T_FLOAT64:
            d->u.f64 = rc->sequence ? (double)seq
                                    : rc->min + tm_dg_rng_double(&r) * (rc->max - rc->min);
            if (col->type == TM_T_FLOAT32)
                d->u.f64 = (float)d->u.f64;
            break;
        case TM_T_NUMERIC: {
            int scale = numeric_scale(col);
            double p10 = pow(10.0, scale);
            double v = rc->sequence ? (double)seq
                                    : rc->min + tm_dg_rng_double(&r) * (rc->max - rc->min);
            d->u.dec = (__int128)llround(v * p10);
            d->scale = (int16_t)scale;
            break;
        }
        case TM_T_TEXT: {
            if (rc->sequence) {
                int n = snprintf(buf, sizeof(buf), "%" PRId64, seq);
                if (tm_batch_set_var(b, d, buf, (size_t)n) != 0)
                    return TM_ENOMEM;
                break;
            }
            char *p = tm_arena_alloc(&b->arena, (size_t)rc->length + 1);
            if (p == NULL)
                return TM_ENOMEM;
            uint64_t bits = 0;
            for (int64_t k = 0; k < rc->length; k++) {
                if (k % 12 == 0)
                    bits = tm_dg_rng_next(&r);
                /* Twelve hex-like letters per draw: 5 bits each, folded into a-z. */
                p[k] = (char)('a' + (bits & 31) % 26);
                bits >>= 5;
            }
            p[rc->length] = '\0';
            d->u.var.ptr = p;
            d->u.var.len = (uint32_t)rc->length;
            break;
        }
        case TM_T_DATE:
            d->u.i64 = now_us / 86400000000LL -
                       (rc->max_past_ms > 0 ? rnd_range(&r, 0, rc->max_past_ms) / 86400000 : 0);
            break;
        case TM_T_TIMESTAMP:
        case TM_T_TIMESTAMPTZ:
            d->u.i64 = now_us - (rc->max_past_ms > 0 ? rnd_range(&r, 0, rc->max_past_ms) : 0) * 1000;
            break;
        default:
            tm_row_set_null(row, i, true);
            break;
        }
    }
    return 0;
}

/* ---- the run loop ---- */

static int emit_batch(tm_source_ctx_t *ctx, tm_batch_t *b)
{
    for (;;) {
        int rc = tm_source_emit(ctx, b, 100);
        if (rc == 0)
            return 0;
        if (rc != TM_EAGAIN || tm_source_should_stop(ctx)) {
            tm_batch_unref(b);
            return rc == TM_EAGAIN ? TM_ESTOPPED : rc;
        }
    }
}

static int emit_barrier(tm_source_t *s, tm_source_ctx_t *ctx, uint64_t id)
{
    char pos[64];
    snprintf(pos, sizeof(pos), "%s=%" PRIu64, s->nexmark ? "event" : "row", s->pos);
    for (;;) {
        int rc = tm_source_emit_barrier(ctx, id, s->pos, pos, 100);
        if (rc != TM_EAGAIN)
            return rc;
        if (tm_source_should_stop(ctx))
            return TM_ESTOPPED;
    }
}

/*
 * Fills one batch of at most `room` rows from s->pos on; advances s->pos past
 * the last event number it looked at (Nexmark tables skip the other kinds).
 */
static int fill_batch(tm_source_t *s, tm_batch_t *b, uint32_t room, int64_t now_us)
{
    /* Skipping other kinds is cheap, but bound it so barriers are not held up. */
    uint64_t scan_limit = s->pos + (uint64_t)room * 64;
    while (b->count < room && s->pos < s->limit && s->pos < scan_limit) {
        if (s->nexmark &&
            tm_nexmark_kind_of(&s->nx, tm_nexmark_event_id(&s->nx, s->pos)) != s->table) {
            s->pos++;
            continue;
        }
        tm_record_t *rec = tm_batch_add(b, s->schema, TM_OP_CREATE);
        tm_row_t *row = rec ? tm_batch_new_row(b, s->schema) : NULL;
        if (row == NULL)
            return TM_ENOMEM;
        int rc;
        if (s->nexmark) {
            if ((rc = tm_nexmark_generate(&s->nx, s->pos, &s->ev)) != 0 ||
                (rc = fill_nexmark(s, b, row)) != 0)
                return rc;
        } else if ((rc = fill_random(s, s->pos, now_us, b, row)) != 0) {
            return rc;
        }
        /*
         * The "commit time" of a generated row is when it is made, so the
         * source-lag metric reads about 0; event time is a declared column
         * (dateTime), named by the table's `watermark` option.
         */
        rec->src.ts_us = now_us;
        rec->after = row;
        rec->proc_us = now_us;
        s->pos++;
    }
    b->ack_token = s->pos;
    return 0;
}

static int dg_source_run(tm_source_t *s, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    tm_source_set_ready(ctx, true);
    /* With a throttle, small batches keep latency near 1/20 s. */
    uint32_t chunk = TM_BATCH_MAX;
    if (s->rows_per_second > 0 && s->rows_per_second / 20 < TM_BATCH_MAX)
        chunk = s->rows_per_second / 20 > 0 ? (uint32_t)(s->rows_per_second / 20) : 1;
    /* Long random texts: keep a batch's arena near 4 MB. */
    if (!s->nexmark) {
        size_t row_bytes = 64;
        for (int i = 0; i < s->schema->ncols; i++)
            if (s->schema->cols[i].type == TM_T_TEXT && !s->rcols[i].sequence)
                row_bytes += (size_t)s->rcols[i].length;
        if ((4u << 20) / row_bytes < chunk)
            chunk = (uint32_t)((4u << 20) / row_bytes) > 0 ? (uint32_t)((4u << 20) / row_bytes) : 1;
    }
    int64_t t0 = tm_mono_us();
    uint64_t emitted = 0;
    int rc = 0;
    while (!tm_source_should_stop(ctx)) {
        uint64_t id = tm_source_barrier_due(ctx);
        if (id != 0 && (rc = emit_barrier(s, ctx, id)) != 0)
            break;
        if (s->pos >= s->limit)
            break;
        if (s->rows_per_second > 0) {
            int64_t due = t0 + (int64_t)((double)emitted * 1e6 / (double)s->rows_per_second);
            int64_t now = tm_mono_us();
            if (now < due) {
                int64_t wait = due - now < 100000 ? due - now : 100000;
                struct timespec ts = {.tv_sec = 0, .tv_nsec = (long)wait * 1000};
                nanosleep(&ts, NULL);
                /* Throttled: let the runtime send a due watermark (connector.h). */
                (void)tm_source_tick(ctx, 0);
                continue;
            }
        }
        tm_batch_t *b = tm_batch_new();
        if (b == NULL) {
            rc = TM_ENOMEM;
            break;
        }
        uint64_t before = s->pos;
        if ((rc = fill_batch(s, b, chunk, tm_wall_us())) != 0) {
            tm_batch_unref(b);
            s->pos = before;
            break;
        }
        emitted += b->count;
        if (b->count == 0) {
            /* Only other kinds' events in this stretch: nothing to send, position moved. */
            tm_batch_unref(b);
            continue;
        }
        if ((rc = emit_batch(ctx, b)) != 0)
            break;
    }
    if (rc == TM_ESTOPPED)
        return rc;
    if (rc != 0)
        return tm_seterr(errstr, errstr_size, rc, "datagen table '%s': %s", s->name,
                         tm_strerror(rc));
    if (s->pos >= s->limit) {
        /* Every row emitted: the final checkpoint records the end (connector.h). */
        char pos[64];
        snprintf(pos, sizeof(pos), "%s=%" PRIu64, s->nexmark ? "event" : "row", s->pos);
        tm_source_finished(ctx, s->pos, pos);
    }
    return 0;
}

static void dg_source_describe(const tm_source_t *s, void (*line)(void *arg, const char *text),
                               void *arg)
{
    char buf[256];
    if (s->nexmark)
        snprintf(buf, sizeof(buf),
                 "datagen: Nexmark %s events, seed %" PRId64 ", %d:%d:%d, first_event_rate %" PRId64
                 "/s",
                 s->table == TM_NEXMARK_PERSON    ? "person"
                 : s->table == TM_NEXMARK_AUCTION ? "auction"
                                                  : "bid",
                 s->nx.seed, s->nx.person_proportion, s->nx.auction_proportion,
                 s->nx.bid_proportion, s->nx.first_event_rate);
    else
        snprintf(buf, sizeof(buf), "datagen: random rows over %d columns, seed %" PRId64,
                 s->schema->ncols, s->nx.seed);
    line(arg, buf);
    char lim[32] = "unbounded";
    if (s->limit != UINT64_MAX)
        snprintf(lim, sizeof(lim), "%" PRIu64, s->limit);
    char rate[32] = "as fast as possible";
    if (s->rows_per_second > 0)
        snprintf(rate, sizeof(rate), "%" PRId64 " rows/s", s->rows_per_second);
    snprintf(buf, sizeof(buf), "%s: %s, %s; insert-only; position from %" PRIu64,
             s->nexmark ? "events" : "rows", lim, rate, s->pos);
    line(arg, buf);
}

const tm_connector_t tm_connector_datagen = {
    .abi = TM_CONNECTOR_ABI,
    .name = "datagen",
    .kinds = TM_CONNECTOR_SOURCE | TM_CONNECTOR_INSERT_ONLY,
    .doc = "Generates Nexmark events or random rows, deterministic from a seed; insert-only.",
    .source_options = dg_options,
    .option_prefix = "fields.",
    .source_new = dg_source_new,
    .source_open = dg_source_open,
    .source_run = dg_source_run,
    .source_describe = dg_source_describe,
    .source_free = dg_source_free,
};
