/*
 * kafka_source.c — the Kafka source: Debezium JSON events from topics
 * (DESIGN §7), read with isolation.level=read_committed.
 *
 * Role: options and life cycle hooks, the consumer loop, dead letters, and
 * the offsets that make up the source's checkpoint position.  Decoding is
 * format/debezium's tm_dbz_decode(); this file only feeds it and decides what
 * happens to records it rejects.
 *
 *   brokers ──fetch──► consumer_poll ──► decode ──► batch ──► outq ──► tm_source_emit
 *                          │                │                   ▲
 *                          │                └─ malformed ──► dead-letter producer
 *                          └─ next offset per partition ──► barrier position ─┘
 *
 * Tidemark assigns itself every partition of the configured topics
 * (rd_kafka_assign, no group rebalancing), as Flink's KafkaSource does: the
 * checkpoint holds the offsets, and a rebalance could not move them.  The
 * group id is used only to commit offsets for lag monitoring (and for
 * startup = 'group').
 *
 * Invariants:
 *   1. Positions.  part->next is the offset after the last record of that
 *      partition that was put into a batch, dead-lettered, skipped or counted
 *      as a tombstone.  A barrier is queued right after the batch holding
 *      everything before it was sealed, with next[] of that moment as its
 *      position, so restoring the position replays exactly what came after
 *      the barrier.
 *   2. Tokens.  Every sealed batch and every barrier takes the next value of
 *      one counter that starts at the restored token, so tokens grow across
 *      restarts.  The offsets that belong to a token are kept (a bounded
 *      ring) until tm_source_acked() reaches it; then they are committed to
 *      the group, asynchronously.  With checkpoints only barrier tokens are
 *      ever acknowledged, so after the first barrier only barriers are kept.
 *   3. Dead letters first.  A barrier is queued, and offsets are committed,
 *      only while the dead-letter producer has nothing in flight and no
 *      delivery has failed: a checkpoint never covers a malformed record
 *      whose dead letter could still be lost.
 *   4. The checkpoint is the truth.  A job restored from a checkpoint starts
 *      at its position whatever `startup` says; a checkpoint that names this
 *      source without a usable position stops the job instead of guessing.
 *      Barriers requested before the partitions are assigned (brokers down)
 *      are answered at once with the position the source started from, or
 *      "{}" (nothing read: a restore from it is a fresh start).
 *   5. Never stall silently.  While brokers do not answer, a line is logged
 *      every 10 s; malformed records are logged at most once a second with a
 *      running count; every wait checks tm_source_should_stop().
 *   6. Watermarks (DESIGN §4) are the runtime's (runtime/evtime.h): this
 *      source only tells which partition each record of a batch came from
 *      (tm_source_emit_parts), announces partitions as they are assigned
 *      (they hold the watermark back until their first record or their
 *      idle_timeout), and reports tombstones and skipped records as partition
 *      activity.  The event time is the table's `watermark` column, or by
 *      default the commit time source.ts_ms (else the envelope's ts_ms) minus
 *      watermark_delay.  Watermarks are not part of the position: after a
 *      restore they are rebuilt from the records read again, as Flink does.
 *
 * Thread: source_new/open/describe/free on the main thread, source_run on the
 * source thread.  librdkafka's error, commit and delivery callbacks are
 * served by consumer_poll / rd_kafka_poll / rd_kafka_flush on the source
 * thread (the consumer's main queue is redirected to its consumer queue);
 * its log callback runs on librdkafka's own threads.
 */
#include "kafka_int.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/errcount.h"
#include "core/error.h"
#include "core/log.h"
#include "format/debezium.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define COMP "kafka"

/* Sealed events allowed to wait before input stops being read. */
#define MAX_WAITING 2
/* Room in the output queue: MAX_WAITING batches, a seal and a barrier (or a watermark). */
#define OUTQ_MAX 6
/* Messages handled between two housekeeping passes. */
#define READ_BUDGET 4096
/* Offsets kept for acknowledgement (invariant 2). */
#define COMMIT_RING 64
/* Row schemas with an identity filled in from the topic name, kept for reuse. */
#define IDENT_MAX 64
/* Blocking metadata and offset look-ups give up after this and are retried. */
#define LOOKUP_TIMEOUT_MS 3000
/* How often the state of a wait (brokers down, ...) is logged. */
#define WAIT_LOG_MS 10000
/* Group commits happen at most this often, except the last one. */
#define COMMIT_MIN_INTERVAL_MS 1000
/* A topic the brokers say does not exist is asked for this many times. */
#define MISSING_TOPIC_CHECKS 3
/* The runtime keeps a barrier's position in a buffer of this size (pipeline.c). */
#define RUNTIME_POSITION_MAX 128
/* How long destroying a librdkafka handle may take before it is abandoned. */
#define DESTROY_TIMEOUT_MS 5000

enum { STARTUP_EARLIEST, STARTUP_LATEST, STARTUP_GROUP, STARTUP_TIMESTAMP };
enum { ON_ERROR_DEAD_LETTER, ON_ERROR_FAIL, ON_ERROR_SKIP };

static const char *const startup_names[] = {"earliest", "latest", "group", "timestamp"};
static const char *const on_error_names[] = {"dead-letter", "fail", "skip"};

const tm_option_def_t tm_kafka_source_options[] = {
    {"bootstrap_servers", TM_OPT_STRING, true, NULL, NULL,
     "comma-separated host:port list of Kafka brokers to bootstrap from"},
    {"topic", TM_OPT_STRING, true, NULL, NULL,
     "the topic to read, or a comma-separated list of topics; every partition is read"},
    {"format", TM_OPT_ENUM, false, "debezium-json", "debezium-json",
     "encoding of the record values: Debezium JSON, with or without the schema part"},
    {"group_id", TM_OPT_STRING, false, NULL, NULL,
     "consumer group that offsets are committed to, for lag monitoring and startup = 'group' "
     "(default tidemark-<job>-<table>)"},
    {"startup", TM_OPT_ENUM, false, "earliest", "earliest|latest|group|timestamp",
     "where a job without a checkpoint starts reading"},
    {"startup_timestamp", TM_OPT_STRING, false, NULL, NULL,
     "with startup = 'timestamp': milliseconds since the epoch or an ISO 8601 time"},
    {"on_error", TM_OPT_ENUM, false, "dead-letter", "dead-letter|fail|skip",
     "what happens to a record that cannot be decoded"},
    {"dead_letter_topic", TM_OPT_STRING, false, NULL, NULL,
     "topic that receives records that cannot be decoded (default <topic>.dlq)"},
    {"partition_discovery_interval", TM_OPT_DURATION, false, "30s", NULL,
     "how often to look for partitions added to the topics (0 = only at start)"},
    TM_SOURCE_OPT_IDLE_TIMEOUT,
    TM_SOURCE_OPT_WATERMARK,
    {"watermark_delay", TM_OPT_DURATION, false, "0", NULL,
     "without watermark: bounded out-of-orderness on the commit time; a partition's watermark "
     "is the newest source.ts_ms it read minus this"},
    {"schemas", TM_OPT_BOOL, false, "true", NULL,
     "schemas.enable for the sinks this source feeds (the decoder reads both forms)"},
    {"decimal_handling", TM_OPT_ENUM, false, "precise", "precise|string|double",
     "Debezium decimal.handling.mode the events were written with (for events without a schema "
     "part)"},
    {"time_precision", TM_OPT_ENUM, false, "adaptive", "adaptive|connect",
     "Debezium time.precision.mode the events were written with (for events without a schema "
     "part)"},
    {NULL, 0, false, NULL, NULL, NULL},
};

/* ---- State ---- */

typedef struct ktopic {
    char *name;
    char *dlq;             /* dead-letter topic of its records */
    rd_kafka_topic_t *rkt; /* for metadata look-ups */
    int *pidx;             /* partition number → index into src->parts, or -1 */
    int npidx;
} ktopic_t;

typedef struct kpart {
    int topic;
    int32_t partition;
    int64_t next; /* invariant 1 */
} kpart_t;

/* A restored position entry. */
typedef struct kpos {
    char *topic;
    int32_t partition;
    int64_t offset;
} kpos_t;

/* Offsets that belong to an ack token (invariant 2). */
typedef struct kcommit {
    uint64_t token;
    bool barrier;
    int n;
    int64_t *next;
} kcommit_t;

/* An event waiting for the runtime: a batch (with its records' partitions) or a barrier. */
typedef struct kout {
    tm_batch_t *batch;
    int32_t *parts; /* [batch->count]: index into src->parts of each record (invariant 6) */
    uint64_t barrier;
    uint64_t token;
    char *position;
} kout_t;

typedef struct kident {
    tm_schema_t *orig;  /* the decoder's schema (one reference) */
    int topic;
    tm_schema_t *fixed; /* the same with its identity filled in (one reference) */
    uint64_t used;
} kident_t;

struct tm_source {
    /* Configuration (main thread, read-only afterwards). */
    char *name;
    char *servers;
    char *group_id;
    int startup;
    int64_t startup_ts_ms;
    int on_error;
    bool dlq_explicit;
    int64_t discovery_ms;
    int64_t idle_timeout_ms; /* 0: partitions never become idle */
    bool idle_timeout_set;
    int64_t watermark_delay_us;
    bool watermark_column; /* the table declares `watermark`: its column is the event time */
    tm_dbz_opts_t dbz;
    tm_schema_t *declared;
    uint64_t restore_token;
    bool restoring;
    kpos_t *restored;
    int nrestored;
    ktopic_t *topics;
    int ntopics;
    const tm_options_t *opts;

    /* librdkafka handles (created in open). */
    rd_kafka_t *rk;
    rd_kafka_t *dlq;
    bool closed;

    /* Run state (source thread). */
    tm_source_ctx_t *ctx;
    tm_dbz_decoder_t *dec;
    kpart_t *parts;
    int nparts, capparts;
    tm_batch_t *cur;
    int32_t *cur_parts; /* [TM_BATCH_MAX]: the partition of each record of cur (invariant 6) */
    bool moved; /* offsets advanced since the last token */
    uint64_t seq;
    bool saw_barrier;
    kout_t outq[OUTQ_MAX];
    int outq_head, outq_len;
    kcommit_t ring[COMMIT_RING];
    int ring_head, ring_len;
    uint64_t committed_token;
    int64_t last_commit_ms;
    kident_t idents[IDENT_MAX];
    int nidents;
    uint64_t ident_tick;
    const char *last_topic_name;
    int last_topic;
    int64_t next_discovery_ms;
    bool position_warned;

    /* Counters. */
    uint64_t nrecords, ntombstones, nmalformed, ndead, nskipped;
    int64_t malformed_log_us;
    uint64_t malformed_suppressed;

    /* Set by callbacks (source thread). */
    char fatal[512];
    char dlq_error[1024];
    uint64_t dlq_failed;
    int64_t error_log_ms;
    uint64_t errors_suppressed;
    int64_t commit_log_ms;
    bool recheck_topics; /* librdkafka says a partition is gone: ask the brokers */
    char *idle_position; /* the restored position, for barriers before assignment */
    uint64_t pending_barrier, pending_token;
    int64_t dlq_wait_log_ms;
};

/* ---- Small helpers ---- */

/* Kafka's rule for topic names: [a-zA-Z0-9._-], at most 249, not "." or "..". */
static bool topic_name_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && n <= 249 && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 &&
           strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") == n;
}

static int enum_index(const char *v, const char *const *names, int n)
{
    for (int i = 0; v != NULL && i < n; i++)
        if (strcmp(v, names[i]) == 0)
            return i;
    return 0;
}

/* Reads exactly `n` digits. */
static bool read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = (*p)[i];
        if (c < '0' || c > '9')
            return false;
        v = v * 10 + (c - '0');
    }
    *p += n;
    *out = v;
    return true;
}

/*
 * Milliseconds since the epoch, or an ISO 8601 time: 2024-05-01, 2024-05-01T12:00:00,
 * 2024-05-01 12:00:00.250Z, 2024-05-01T14:00:00+02:00.  Without a zone it is UTC.
 */
static int parse_timestamp_ms(const char *s, int64_t *out)
{
    size_t n = strlen(s);
    if (n > 0 && n <= 18 && strspn(s, "0123456789") == n) {
        *out = strtoll(s, NULL, 10);
        return 0;
    }
    const char *p = s;
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0;
    if (!read_digits(&p, 4, &y) || *p++ != '-' || !read_digits(&p, 2, &mo) || *p++ != '-' ||
        !read_digits(&p, 2, &d))
        return TM_EINVAL;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (!read_digits(&p, 2, &h) || *p++ != ':' || !read_digits(&p, 2, &mi))
            return TM_EINVAL;
        if (*p == ':') {
            p++;
            if (!read_digits(&p, 2, &sec))
                return TM_EINVAL;
            if (*p == '.' || *p == ',') {
                int digits = 0;
                p++;
                while (*p >= '0' && *p <= '9') {
                    if (digits < 3)
                        frac_ms = frac_ms * 10 + (*p - '0');
                    digits++;
                    p++;
                }
                if (digits == 0)
                    return TM_EINVAL;
                for (; digits < 3; digits++)
                    frac_ms *= 10;
            }
        }
    }
    int64_t zone_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, zh, zm = 0;
        if (!read_digits(&p, 2, &zh))
            return TM_EINVAL;
        if (*p == ':')
            p++;
        if (*p != '\0' && !read_digits(&p, 2, &zm))
            return TM_EINVAL;
        zone_s = sign * (zh * 3600 + zm * 60);
    }
    if (*p != '\0' || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60)
        return TM_EINVAL;
    struct tm tmv;
    memset(&tmv, 0, sizeof(tmv));
    tmv.tm_year = y - 1900;
    tmv.tm_mon = mo - 1;
    tmv.tm_mday = d;
    tmv.tm_hour = h;
    tmv.tm_min = mi;
    tmv.tm_sec = sec;
    time_t t = timegm(&tmv);
    *out = ((int64_t)t - zone_s) * 1000 + frac_ms;
    return 0;
}

/* ---- source_new ---- */

static int add_topic(tm_source_t *src, const char *name, size_t len, char *errstr,
                     size_t errstr_size)
{
    char *t = strndup(name, len);
    if (t == NULL)
        return TM_ENOMEM;
    if (!topic_name_ok(t)) {
        int rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': option 'topic' has an invalid topic name '%s'; Kafka "
                           "topic names use letters, digits, '.', '_' and '-' (at most 249)",
                           src->name, t);
        free(t);
        return rc;
    }
    for (int i = 0; i < src->ntopics; i++)
        if (strcmp(src->topics[i].name, t) == 0) {
            int rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                               "table '%s': option 'topic' names '%s' twice", src->name, t);
            free(t);
            return rc;
        }
    ktopic_t *v = realloc(src->topics, sizeof(*v) * (size_t)(src->ntopics + 1));
    if (v == NULL) {
        free(t);
        return TM_ENOMEM;
    }
    src->topics = v;
    memset(&v[src->ntopics], 0, sizeof(*v));
    v[src->ntopics++].name = t;
    return 0;
}

static int parse_topics(tm_source_t *src, const char *value, char *errstr, size_t errstr_size)
{
    const char *p = value, *start;
    size_t len;
    while (tm_opt_next_item(&p, 0, &start, &len)) {
        int rc = add_topic(src, start, len, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    if (src->ntopics == 0)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': option 'topic' names no topic; write topic = "
                         "'shop.public.orders' or a comma-separated list",
                         src->name);
    return 0;
}

/*
 * Reads a checkpoint position {"topic":{"0":123,...},...} (invariant 4).
 * The checkpoint stores it as text, so a position that does not parse is
 * reported, never guessed around.
 */
static int parse_position(tm_source_t *src, const char *text, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    const char *key;
    json_t *v;
    if (root == NULL || !json_is_object(root)) {
        json_decref(root);
        return tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                         "table '%s': the checkpoint's position for this Kafka source is not an "
                         "object of offsets per topic and partition (%s): '%.200s'; was it "
                         "truncated?  Start from an older checkpoint or a fresh state directory",
                         src->name, root == NULL ? jerr.text : "not an object", text);
    }
    json_object_foreach(root, key, v)
    {
        const char *pk;
        json_t *off;
        if (!json_is_object(v))
            goto bad;
        json_object_foreach(v, pk, off)
        {
            char *end;
            errno = 0;
            long part = strtol(pk, &end, 10);
            if (*pk == '\0' || *end != '\0' || errno != 0 || part < 0 || part > INT32_MAX ||
                !json_is_integer(off) || json_integer_value(off) < 0)
                goto bad;
            kpos_t *n = realloc(src->restored, sizeof(*n) * (size_t)(src->nrestored + 1));
            if (n == NULL) {
                json_decref(root);
                return TM_ENOMEM;
            }
            src->restored = n;
            n[src->nrestored].topic = strdup(key);
            n[src->nrestored].partition = (int32_t)part;
            n[src->nrestored].offset = (int64_t)json_integer_value(off);
            if (n[src->nrestored++].topic == NULL) {
                json_decref(root);
                return TM_ENOMEM;
            }
        }
    }
    json_decref(root);
    return 0;
bad:
    json_decref(root);
    return tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                     "table '%s': the checkpoint's position for this Kafka source has an entry "
                     "that is not \"partition\": offset: '%.200s'",
                     src->name, text);
}

/* Options tidemark must own: the checkpoint, not the group, holds the offsets. */
static int check_passthrough(tm_source_t *src, const tm_options_t *o, char *errstr,
                             size_t errstr_size)
{
    static const struct {
        const char *key, *bad, *why;
    } owned[] = {
        {"kafka.group.id", NULL, "use the option 'group_id'"},
        {"kafka.enable.auto.commit", "true",
         "offsets are committed by tidemark once sinks (or a checkpoint) made them durable"},
        {"kafka.enable.auto.offset.store", "true",
         "offsets are committed by tidemark once sinks (or a checkpoint) made them durable"},
        {"kafka.group.instance.id", NULL,
         "the source assigns itself every partition and never joins the group"},
    };
    for (size_t i = 0; i < sizeof(owned) / sizeof(owned[0]); i++) {
        const char *v = tm_options_lookup(o, owned[i].key);
        if (v != NULL && (owned[i].bad == NULL || strcasecmp(v, owned[i].bad) == 0))
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': option '%s' cannot be set for the Kafka source: %s",
                             src->name, owned[i].key, owned[i].why);
    }
    return 0;
}

void tm_kafka_source_free(tm_source_t *src);

int tm_kafka_source_new(tm_source_t **out, const tm_source_config_t *cfg, char *errstr,
                        size_t errstr_size)
{
    const tm_options_t *o = cfg->opts;
    int rc;
    *out = NULL;
    tm_source_t *src = calloc(1, sizeof(*src));
    if (src == NULL)
        return TM_ENOMEM;
    src->last_topic = -1;
    src->opts = o;
    src->name = strdup(cfg->name ? cfg->name : "kafka");
    const char *servers = tm_opt_str(o, "bootstrap_servers");
    src->servers = strdup(servers ? servers : "");
    if (src->name == NULL || src->servers == NULL) {
        rc = TM_ENOMEM;
        goto fail;
    }
    if (servers == NULL || servers[strspn(servers, " \t,")] == '\0') {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'bootstrap_servers' is required (e.g. "
                       "bootstrap_servers = 'kafka1:9092,kafka2:9092')",
                       src->name);
        goto fail;
    }
    const char *topics = tm_opt_str(o, "topic");
    if ((rc = parse_topics(src, topics ? topics : "", errstr, errstr_size)) != 0)
        goto fail;

    const char *gid = tm_opt_str(o, "group_id");
    if (gid != NULL && gid[0] == '\0') {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'group_id' must not be empty", src->name);
        goto fail;
    }
    src->group_id = gid ? strdup(gid)
                  : cfg->job ? tm_asprintf("tidemark-%s-%s", cfg->job, src->name)
                             : tm_asprintf("tidemark-%s", src->name);
    if (src->group_id == NULL) {
        rc = TM_ENOMEM;
        goto fail;
    }

    src->startup = enum_index(tm_opt_str(o, "startup"), startup_names, 4);
    const char *ts = tm_opt_str(o, "startup_timestamp");
    if (src->startup == STARTUP_TIMESTAMP) {
        if (ts == NULL) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': startup = 'timestamp' needs option 'startup_timestamp' "
                           "(milliseconds since the epoch, or e.g. '2024-05-01T12:00:00Z')",
                           src->name);
            goto fail;
        }
        if (parse_timestamp_ms(ts, &src->startup_ts_ms) != 0 || src->startup_ts_ms < 0) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': option 'startup_timestamp' = '%s' is not a time; write "
                           "milliseconds since the epoch or ISO 8601 such as "
                           "'2024-05-01T12:00:00Z'",
                           src->name, ts);
            goto fail;
        }
    } else if (ts != NULL) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'startup_timestamp' is only used with startup = "
                       "'timestamp' (startup is '%s')",
                       src->name, startup_names[src->startup]);
        goto fail;
    }

    src->on_error = enum_index(tm_opt_str(o, "on_error"), on_error_names, 3);
    const char *dlq = tm_opt_str(o, "dead_letter_topic");
    src->dlq_explicit = dlq != NULL;
    if (dlq != NULL && !topic_name_ok(dlq)) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'dead_letter_topic' = '%s' is not a valid topic name",
                       src->name, dlq);
        goto fail;
    }
    for (int i = 0; i < src->ntopics; i++) {
        ktopic_t *t = &src->topics[i];
        t->dlq = dlq ? strdup(dlq) : tm_asprintf("%s.dlq", t->name);
        if (t->dlq == NULL) {
            rc = TM_ENOMEM;
            goto fail;
        }
        if (!topic_name_ok(t->dlq)) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': the default dead-letter topic '%s' is too long; set "
                           "option 'dead_letter_topic'",
                           src->name, t->dlq);
            goto fail;
        }
        for (int k = 0; k < src->ntopics; k++)
            if (strcmp(t->dlq, src->topics[k].name) == 0) {
                rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                               "table '%s': dead-letter topic '%s' is also a source topic; "
                               "choose another 'dead_letter_topic'",
                               src->name, t->dlq);
                goto fail;
            }
    }

    src->discovery_ms = tm_opt_duration_ms(o, "partition_discovery_interval");
    src->idle_timeout_set = tm_opt_isset(o, "idle_timeout");
    src->idle_timeout_ms = tm_opt_duration_ms(o, "idle_timeout");
    int64_t delay_ms = tm_opt_duration_ms(o, "watermark_delay");
    if (src->discovery_ms < 0 || src->idle_timeout_ms < 0 || delay_ms < 0) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': options 'partition_discovery_interval', 'idle_timeout' and "
                       "'watermark_delay' must not be negative",
                       src->name);
        goto fail;
    }
    if (__builtin_mul_overflow(delay_ms, 1000, &src->watermark_delay_us)) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'watermark_delay' is too large", src->name);
        goto fail;
    }
    src->watermark_column = tm_opt_isset(o, "watermark");
    if (src->watermark_column && tm_opt_isset(o, "watermark_delay")) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': 'watermark_delay' applies to the commit-time watermark only; "
                       "with 'watermark' write the delay there, as in "
                       "col - INTERVAL '5 seconds'",
                       src->name);
        goto fail;
    }
    if (src->discovery_ms > 0 && src->discovery_ms < 1000) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': option 'partition_discovery_interval' must be 0 (off) or at "
                       "least 1s",
                       src->name);
        goto fail;
    }
    if ((rc = check_passthrough(src, o, errstr, errstr_size)) != 0)
        goto fail;

    src->dbz.schemas = tm_opt_bool(o, "schemas");
    const char *dm = tm_opt_str(o, "decimal_handling");
    src->dbz.decimal_mode = dm && strcmp(dm, "string") == 0   ? TM_DECIMAL_STRING
                            : dm && strcmp(dm, "double") == 0 ? TM_DECIMAL_DOUBLE
                                                              : TM_DECIMAL_PRECISE;
    const char *tp = tm_opt_str(o, "time_precision");
    src->dbz.time_mode =
        tp && strcmp(tp, "connect") == 0 ? TM_TIME_CONNECT : TM_TIME_ADAPTIVE;

    if (cfg->declared != NULL && cfg->declared->ncols > 0 &&
        (src->declared = tm_schema_clone(cfg->declared)) == NULL) {
        rc = TM_ENOMEM;
        goto fail;
    }

    src->restore_token = cfg->restore_token;
    src->seq = cfg->restore_token;
    if (cfg->restore_position != NULL && cfg->restore_position[0] != '\0') {
        if ((rc = parse_position(src, cfg->restore_position, errstr, errstr_size)) != 0)
            goto fail;
        /* "{}": the checkpoint was taken before anything was assigned, so nothing was read. */
        src->restoring = src->nrestored > 0;
        if ((src->idle_position = strdup(cfg->restore_position)) == NULL) {
            rc = TM_ENOMEM;
            goto fail;
        }
    } else if (cfg->restore_token > 0) {
        /* Invariant 4: re-reading from `startup` would duplicate committed output. */
        rc = tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                       "table '%s': the checkpoint being restored covers this Kafka source "
                       "(token %" PRIu64 ") but holds no offsets for it, so it cannot resume "
                       "where it stopped; start from a fresh state directory to re-read from "
                       "startup = '%s'",
                       src->name, cfg->restore_token, startup_names[src->startup]);
        goto fail;
    }
    *out = src;
    return 0;
fail:
    tm_kafka_source_free(src);
    return rc;
}

/* ---- librdkafka callbacks (source thread, see the file header) ---- */

static void on_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    tm_source_t *src = opaque;
    if (err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC ||
        err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
        src->recheck_topics = true;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        char why[400];
        rd_kafka_resp_err_t orig = rd_kafka_fatal_error(rk, why, sizeof(why));
        if (src->fatal[0] == '\0')
            snprintf(src->fatal, sizeof(src->fatal), "%s (%s)", why, rd_kafka_err2name(orig));
        return;
    }
    int64_t now = tm_mono_ms();
    if (now - src->error_log_ms < WAIT_LOG_MS) {
        src->errors_suppressed++;
        return;
    }
    TM_WARN(COMP, "Kafka client error; librdkafka keeps retrying",
            "source=%s client=%s servers=%s error=%s detail=\"%s\" suppressed=%" PRIu64,
            src->name, rd_kafka_name(rk), src->servers, rd_kafka_err2name(err), reason,
            src->errors_suppressed);
    src->error_log_ms = now;
    src->errors_suppressed = 0;
}

static void on_commit_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *offsets, void *opaque)
{
    tm_source_t *src = opaque;
    (void)rk;
    (void)offsets;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR || err == RD_KAFKA_RESP_ERR__NO_OFFSET)
        return;
    int64_t now = tm_mono_ms();
    if (now - src->commit_log_ms < WAIT_LOG_MS)
        return;
    src->commit_log_ms = now;
    TM_WARN(COMP, "offset commit to the group failed (monitoring only: checkpoints hold the "
                  "positions)",
            "source=%s group=%s error=\"%s\"", src->name, src->group_id, rd_kafka_err2str(err));
}

/*
 * A dead letter too large for its topic (issue 9, item 12): a malformed
 * record of 5 MB that the dead-letter topic refuses must not stop the job on
 * every restart.  It is sent again cut to its first DLQ_TRUNCATE_BYTES (the
 * key to DLQ_KEY_TRUNCATE_BYTES), with header tidemark.truncated = its
 * original size, far below any topic's max.message.bytes.  Only when even
 * that is refused does the job stop, saying what to change.
 */
#define DLQ_TRUNCATE_BYTES (64 * 1024)
#define DLQ_KEY_TRUNCATE_BYTES 4096
#define DLQ_TRUNCATED_HEADER "tidemark.truncated"

/* The size a dead letter had before it was cut (its header), or 0 if it was not cut. */
static size_t dlq_truncated_from(const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t n;
    char num[24];
    if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR || h == NULL ||
        rd_kafka_header_get_last(h, DLQ_TRUNCATED_HEADER, &v, &n) != RD_KAFKA_RESP_ERR_NO_ERROR ||
        v == NULL || n == 0 || n >= sizeof(num))
        return 0;
    memcpy(num, v, n);
    num[n] = '\0';
    return (size_t)strtoull(num, NULL, 10);
}

/* Produces a dead letter cut to size; `hdrs` is consumed on success. */
static rd_kafka_resp_err_t dlq_produce_truncated(tm_source_t *src, const char *topic,
                                                 const rd_kafka_message_t *m,
                                                 rd_kafka_headers_t *hdrs)
{
    char n[24];
    snprintf(n, sizeof(n), "%zu", m->len);
    rd_kafka_header_add(hdrs, DLQ_TRUNCATED_HEADER, -1, n, -1);
    return rd_kafka_producev(
        src->dlq, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY(m->key, m->key_len < DLQ_KEY_TRUNCATE_BYTES ? m->key_len
                                                                    : DLQ_KEY_TRUNCATE_BYTES),
        RD_KAFKA_V_VALUE(m->payload, m->len < DLQ_TRUNCATE_BYTES ? m->len : DLQ_TRUNCATE_BYTES),
        RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
}

static void dlq_size_error(tm_source_t *src, const char *topic, size_t len)
{
    snprintf(src->dlq_error, sizeof(src->dlq_error),
             "delivery to dead-letter topic '%s' failed: a malformed record of %zu bytes is too "
             "large for it, even cut to its first %d bytes; raise the topic's max.message.bytes "
             "(and the source's kafka.message.max.bytes), or set on_error = 'skip'",
             topic, len, DLQ_TRUNCATE_BYTES);
}

/* Thread: source (librdkafka calls it from rd_kafka_poll on the dead-letter producer). */
static void on_delivery_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    tm_source_t *src = opaque;
    (void)rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR)
        return;
    const char *topic = rd_kafka_topic_name(m->rkt);
    size_t cut_from = dlq_truncated_from(m);
    if (m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && cut_from == 0 &&
        (m->len > DLQ_TRUNCATE_BYTES || m->key_len > DLQ_KEY_TRUNCATE_BYTES)) {
        /* The broker refused it (the topic's max.message.bytes): send it again, cut. */
        rd_kafka_headers_t *orig = NULL, *hdrs;
        hdrs = rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig
                   ? rd_kafka_headers_copy(orig)
                   : rd_kafka_headers_new(1);
        rd_kafka_resp_err_t err = hdrs ? dlq_produce_truncated(src, topic, m, hdrs)
                                       : RD_KAFKA_RESP_ERR__FAIL;
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            TM_WARN(COMP, "dead letter too large for its topic; sent truncated",
                    "source=%s topic=%s bytes=%zu sent_bytes=%d header=" DLQ_TRUNCATED_HEADER,
                    src->name, topic, m->len, m->len < DLQ_TRUNCATE_BYTES ? (int)m->len
                                                                          : DLQ_TRUNCATE_BYTES);
            return;
        }
        if (hdrs != NULL)
            rd_kafka_headers_destroy(hdrs);
    }
    tm_errors_count(TM_ERRKIND_DEAD_LETTER);
    if (src->dlq_failed++ != 0)
        return;
    if (m->err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        dlq_size_error(src, topic, cut_from > 0 ? cut_from : m->len);
    else
        snprintf(src->dlq_error, sizeof(src->dlq_error), "delivery to dead-letter topic '%s' "
                 "failed: %s", topic, rd_kafka_err2str(m->err));
}

/* ---- source_open ---- */

static bool user_set(const tm_source_t *src, const char *prop)
{
    char key[160];
    snprintf(key, sizeof(key), TM_KAFKA_PREFIX "%s", prop);
    return tm_options_lookup(src->opts, key) != NULL;
}

/* Sets a property unless the job set it with kafka.<prop>. */
static int conf_default(tm_source_t *src, rd_kafka_conf_t *conf, const char *prop,
                        const char *value, char *errstr, size_t errstr_size)
{
    if (user_set(src, prop))
        return 0;
    return tm_kafka_conf_set(conf, src->name, prop, value, errstr, errstr_size);
}

/* A librdkafka property the source sets: over the job's kafka.* (forced), or as a default. */
typedef struct kprop {
    const char *name, *value;
    bool forced;
} kprop_t;

static void consumer_callbacks(rd_kafka_conf_t *conf)
{
    rd_kafka_conf_set_offset_commit_cb(conf, on_commit_cb);
}

static void producer_callbacks(rd_kafka_conf_t *conf)
{
    rd_kafka_conf_set_dr_msg_cb(conf, on_delivery_cb);
}

/*
 * One librdkafka client of this source (the consumer, or the dead-letter
 * producer): the job's kafka.* options, then `props`, quiet connection
 * closes and a client.id of tidemark-<source><suffix>, the error callback
 * and the client's own callbacks.
 */
static int new_client(tm_source_t *src, rd_kafka_type_t type, const char *what,
                      const char *suffix, const kprop_t *props,
                      void (*callbacks)(rd_kafka_conf_t *conf), rd_kafka_t **out, char *errstr,
                      size_t errstr_size)
{
    rd_kafka_conf_t *conf = NULL;
    char why[512], cid[300];
    int rc = tm_kafka_conf_new(src->opts, src->name, COMP, &conf, errstr, errstr_size);
    if (rc != 0)
        return rc;
    snprintf(cid, sizeof(cid), "tidemark-%s%s", src->name, suffix);
    for (; rc == 0 && props->name != NULL; props++)
        rc = props->forced ? tm_kafka_conf_set(conf, src->name, props->name, props->value, errstr,
                                               errstr_size)
                           : conf_default(src, conf, props->name, props->value, errstr,
                                          errstr_size);
    if (rc == 0)
        rc = conf_default(src, conf, "log.connection.close", "false", errstr, errstr_size);
    if (rc == 0)
        rc = conf_default(src, conf, "client.id", cid, errstr, errstr_size);
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_conf_set_opaque(conf, src);
    rd_kafka_conf_set_error_cb(conf, on_error_cb);
    callbacks(conf);
    *out = rd_kafka_new(type, conf, why, sizeof(why));
    if (*out == NULL) {
        rd_kafka_conf_destroy(conf);
        return tm_seterr(errstr, errstr_size, TM_ECONFIG, "table '%s': cannot create the %s: %s",
                         src->name, what, why);
    }
    return 0;
}

static int open_consumer(tm_source_t *src, char *errstr, size_t errstr_size)
{
    /* The checkpoints own the offsets (invariant 1): the group only sees commits for lag. */
    const kprop_t props[] = {
        {"group.id", src->group_id, true},
        {"enable.auto.commit", "false", true},
        {"enable.auto.offset.store", "false", true},
        {"isolation.level", "read_committed", false},
        {"auto.offset.reset", "earliest", false},
        {"enable.partition.eof", "false", false},
        {NULL, NULL, false},
    };
    int rc = new_client(src, RD_KAFKA_CONSUMER, "Kafka consumer", "", props, consumer_callbacks,
                        &src->rk, errstr, errstr_size);
    if (rc != 0)
        return rc;
    /* Errors and commit results are then served by consumer_poll on the source thread. */
    rd_kafka_poll_set_consumer(src->rk);
    for (int i = 0; i < src->ntopics; i++)
        if ((src->topics[i].rkt = rd_kafka_topic_new(src->rk, src->topics[i].name, NULL)) == NULL)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': cannot use topic '%s': %s", src->name,
                             src->topics[i].name, rd_kafka_err2str(rd_kafka_last_error()));
    return 0;
}

static int open_dead_letter(tm_source_t *src, char *errstr, size_t errstr_size)
{
    static const kprop_t props[] = {
        {"enable.idempotence", "true", false},
        {"linger.ms", "5", false},
        /*
         * One record per batch: a broker refuses a whole batch that is over
         * the topic's max.message.bytes, so a large dead letter would take
         * its neighbours down with it, even those already cut to size.
         * Dead letters are rare; one request each costs nothing.
         */
        {"batch.num.messages", "1", false},
        {NULL, NULL, false},
    };
    return new_client(src, RD_KAFKA_PRODUCER, "dead-letter producer", "-dlq", props,
                      producer_callbacks, &src->dlq, errstr, errstr_size);
}

int tm_kafka_source_open(tm_source_t *src, char *errstr, size_t errstr_size)
{
    int rc = open_consumer(src, errstr, errstr_size);
    if (rc == 0 && src->on_error == ON_ERROR_DEAD_LETTER)
        rc = open_dead_letter(src, errstr, errstr_size);
    if (rc != 0)
        return rc;
    if (src->dlq_explicit && src->on_error != ON_ERROR_DEAD_LETTER)
        TM_WARN(COMP, "dead_letter_topic is ignored", "source=%s on_error=%s", src->name,
                on_error_names[src->on_error]);
    TM_DEBUG(COMP, "per-partition watermarks",
             "source=%s watermark_delay_ms=%" PRId64 " idle_timeout_ms=%" PRId64, src->name,
             src->watermark_delay_us / 1000, src->idle_timeout_ms);
    src->dec = tm_dbz_decoder_new(&src->dbz, src->declared);
    return src->dec != NULL ? 0 : TM_ENOMEM;
}

/* ---- Partitions and start offsets (source thread) ---- */

/*
 * Asks the brokers how many partitions `t` has.  TM_EAGAIN while they do not
 * answer (or the topic is being created), TM_ENOTFOUND if it does not
 * exist, TM_ESOURCE if it may not be read.
 */
static int topic_partitions(tm_source_t *src, ktopic_t *t, int *count, char *why, size_t whylen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(src->rk, 0, t->rkt, &md, LOOKUP_TIMEOUT_MS);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(why, whylen, "metadata request failed: %s", rd_kafka_err2str(err));
        return TM_EAGAIN;
    }
    int rc = TM_EAGAIN;
    const struct rd_kafka_metadata_topic *mt = md->topic_cnt > 0 ? &md->topics[0] : NULL;
    if (mt == NULL) {
        snprintf(why, whylen, "the brokers returned no metadata for topic '%s'", t->name);
    } else if (mt->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        snprintf(why, whylen, "topic '%s' does not exist", t->name);
        rc = TM_ENOTFOUND;
    } else if (mt->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED) {
        snprintf(why, whylen, "not authorized to describe topic '%s' (grant DESCRIBE and READ on "
                 "it to this client's principal)", t->name);
        rc = TM_ESOURCE;
    } else if (mt->err != RD_KAFKA_RESP_ERR_NO_ERROR || mt->partition_cnt <= 0) {
        snprintf(why, whylen, "topic '%s': %s", t->name,
                 mt->err ? rd_kafka_err2str(mt->err) : "no partitions yet");
    } else {
        *count = mt->partition_cnt;
        rc = 0;
    }
    rd_kafka_metadata_destroy(md);
    return rc;
}

static int part_add(tm_source_t *src, int topic, int32_t partition)
{
    ktopic_t *t = &src->topics[topic];
    if (partition >= t->npidx) {
        int n = partition + 1;
        int *v = realloc(t->pidx, sizeof(*v) * (size_t)n);
        if (v == NULL)
            return TM_ENOMEM;
        for (int i = t->npidx; i < n; i++)
            v[i] = -1;
        t->pidx = v;
        t->npidx = n;
    }
    if (t->pidx[partition] >= 0)
        return 0;
    if (src->nparts == src->capparts) {
        int ncap = src->capparts ? src->capparts * 2 : 16;
        kpart_t *v = realloc(src->parts, sizeof(*v) * (size_t)ncap);
        if (v == NULL)
            return TM_ENOMEM;
        src->parts = v;
        src->capparts = ncap;
    }
    kpart_t *p = &src->parts[src->nparts];
    p->topic = topic;
    p->partition = partition;
    p->next = -1;
    t->pidx[partition] = src->nparts++;
    return 0;
}

static const kpos_t *restored_offset(const tm_source_t *src, const kpart_t *p)
{
    for (int i = 0; i < src->nrestored; i++)
        if (src->restored[i].partition == p->partition &&
            strcmp(src->restored[i].topic, src->topics[p->topic].name) == 0)
            return &src->restored[i];
    return NULL;
}

static rd_kafka_topic_partition_list_t *parts_list(const tm_source_t *src, int first, int count)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(count);
    for (int i = first; i < first + count; i++)
        rd_kafka_topic_partition_list_add(l, src->topics[src->parts[i].topic].name,
                                          src->parts[i].partition);
    return l;
}

/* Errors that retrying cannot cure: an ACL is missing. */
static bool auth_error(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
           err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED ||
           err == RD_KAFKA_RESP_ERR_CLUSTER_AUTHORIZATION_FAILED;
}

/*
 * Looks up offsets by timestamp (ListOffsets; -2 earliest, -1 latest, which
 * under read_committed is the last stable offset) for the entries of `l`
 * whose offset is a timestamp or one of those two.  TM_EAGAIN if the brokers
 * did not answer.
 */
static int list_offsets(tm_source_t *src, rd_kafka_topic_partition_list_t *l, char *why,
                        size_t whylen)
{
    rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(src->rk, l, LOOKUP_TIMEOUT_MS);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(why, whylen, "offset look-up failed: %s", rd_kafka_err2str(err));
        return auth_error(err) ? TM_ESOURCE : TM_EAGAIN;
    }
    for (int i = 0; i < l->cnt; i++)
        if (l->elems[i].err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(why, whylen, "offset look-up for %s [%" PRId32 "] failed: %s%s",
                     l->elems[i].topic, l->elems[i].partition,
                     rd_kafka_err2str(l->elems[i].err),
                     auth_error(l->elems[i].err) ? " (grant DESCRIBE and READ on the topic)" : "");
            return auth_error(l->elems[i].err) ? TM_ESOURCE : TM_EAGAIN;
        }
    return 0;
}

/*
 * Numeric start offsets for parts[first..first+count): restored ones, else
 * by `startup` (`fresh` = partitions found while running start at the
 * earliest offset).  Numeric, so that every barrier position is exact even
 * for a partition nothing has been read from yet.
 */
static int resolve_starts(tm_source_t *src, int first, int count, bool fresh, char *why,
                          size_t whylen)
{
    rd_kafka_topic_partition_list_t *l = parts_list(src, first, count);
    int mode = fresh || src->restoring ? STARTUP_EARLIEST : src->startup;
    int rc = 0;
    for (int i = 0; i < count; i++) {
        const kpos_t *r = src->restoring ? restored_offset(src, &src->parts[first + i]) : NULL;
        l->elems[i].offset = r != NULL               ? r->offset
                             : mode == STARTUP_LATEST ? RD_KAFKA_OFFSET_END
                             : mode == STARTUP_TIMESTAMP ? src->startup_ts_ms
                                                         : RD_KAFKA_OFFSET_BEGINNING;
    }
    if (mode == STARTUP_GROUP) {
        rd_kafka_resp_err_t err = rd_kafka_committed(src->rk, l, LOOKUP_TIMEOUT_MS);
        for (int i = 0; err == RD_KAFKA_RESP_ERR_NO_ERROR && i < count; i++)
            err = l->elems[i].err;
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(why, whylen, "reading the committed offsets of group '%s' failed: %s%s",
                     src->group_id, rd_kafka_err2str(err),
                     auth_error(err) ? " (grant DESCRIBE and READ on the group, or use another "
                                       "startup mode)"
                                     : "");
            rc = auth_error(err) ? TM_ESOURCE : TM_EAGAIN;
            goto out;
        }
        /* A partition the group never committed starts at the earliest offset. */
        for (int i = 0; i < count; i++)
            if (l->elems[i].offset < 0)
                l->elems[i].offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    /* Entries still to look up; restored and committed offsets are numeric already. */
    rd_kafka_topic_partition_list_t *q = rd_kafka_topic_partition_list_new(count);
    for (int i = 0; i < count; i++) {
        bool numeric = l->elems[i].offset >= 0 && mode != STARTUP_TIMESTAMP;
        const kpos_t *r = src->restoring ? restored_offset(src, &src->parts[first + i]) : NULL;
        if (!numeric && r == NULL)
            rd_kafka_topic_partition_list_add(q, l->elems[i].topic, l->elems[i].partition)
                ->offset = l->elems[i].offset;
    }
    if (q->cnt > 0 && (rc = list_offsets(src, q, why, whylen)) == 0 &&
        mode == STARTUP_TIMESTAMP) {
        /* No record at or after the timestamp: start at the end. */
        rd_kafka_topic_partition_list_t *e = rd_kafka_topic_partition_list_new(q->cnt);
        for (int i = 0; i < q->cnt; i++)
            if (q->elems[i].offset < 0)
                rd_kafka_topic_partition_list_add(e, q->elems[i].topic, q->elems[i].partition)
                    ->offset = RD_KAFKA_OFFSET_END;
        if (e->cnt > 0 && (rc = list_offsets(src, e, why, whylen)) == 0)
            for (int i = 0; i < e->cnt; i++)
                rd_kafka_topic_partition_list_find(q, e->elems[i].topic, e->elems[i].partition)
                    ->offset = e->elems[i].offset;
        rd_kafka_topic_partition_list_destroy(e);
    }
    if (rc == 0)
        for (int i = 0; i < q->cnt; i++)
            rd_kafka_topic_partition_list_find(l, q->elems[i].topic, q->elems[i].partition)
                ->offset = q->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(q);
    if (rc == 0)
        for (int i = 0; i < count; i++) {
            if (l->elems[i].offset < 0) {
                snprintf(why, whylen, "the brokers returned no offset for %s [%" PRId32 "]",
                         l->elems[i].topic, l->elems[i].partition);
                rc = TM_EAGAIN;
                break;
            }
            src->parts[first + i].next = l->elems[i].offset;
        }
out:
    rd_kafka_topic_partition_list_destroy(l);
    return rc;
}

/* Adds parts[first..first+count) to the assignment, at their next offsets. */
static int assign_parts(tm_source_t *src, int first, int count, bool incremental, char *errstr,
                        size_t errstr_size)
{
    rd_kafka_topic_partition_list_t *l = parts_list(src, first, count);
    for (int i = 0; i < count; i++)
        l->elems[i].offset = src->parts[first + i].next;
    const char *why = NULL;
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_error_t *e = NULL;
    if (incremental) {
        e = rd_kafka_incremental_assign(src->rk, l);
        why = e ? rd_kafka_error_string(e) : NULL;
    } else {
        err = rd_kafka_assign(src->rk, l);
        why = err ? rd_kafka_err2str(err) : NULL;
    }
    rd_kafka_topic_partition_list_destroy(l);
    int rc = 0;
    if (why != NULL)
        rc = tm_seterr(errstr, errstr_size, TM_ESOURCE,
                       "table '%s': cannot assign %d partition(s) to the consumer: %s",
                       src->name, count, why);
    /* A partition's idle_timeout runs from its assignment until its first record. */
    if (rc == 0 && src->ctx != NULL) {
        tm_source_partitions(src->ctx, first + count);
        for (int i = 0; i < count; i++)
            tm_source_partition_active(src->ctx, first + i);
    }
    rd_kafka_error_destroy(e);
    return rc;
}

/* Serves callbacks and drops whatever the consumer queue holds before assignment. */
static void serve_idle(tm_source_t *src)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(src->rk, 0);
    if (m != NULL)
        rd_kafka_message_destroy(m);
    if (src->dlq != NULL)
        rd_kafka_poll(src->dlq, 0);
}

/*
 * Sleeps up to ms while serving callbacks and watching for stop.  Nothing
 * has been read yet, so a requested barrier is answered at once with the
 * position the source started from (the restored one, or "{}": nothing read,
 * which a restore treats as a fresh start) — checkpoints, and the final one
 * of a graceful stop, do not wait for brokers that do not answer.
 */
static bool nap(tm_source_t *src, int64_t ms)
{
    int64_t until = tm_mono_ms() + ms;
    while (tm_mono_ms() < until) {
        if (tm_source_should_stop(src->ctx))
            return false;
        uint64_t id = tm_source_barrier_due(src->ctx);
        if (id != 0) {
            if (src->pending_barrier != id) {
                src->pending_barrier = id;
                src->pending_token = ++src->seq;
            }
            if (tm_source_emit_barrier(src->ctx, id, src->pending_token,
                                       src->idle_position ? src->idle_position : "{}", 50) == 0)
                src->pending_barrier = 0;
        }
        serve_idle(src);
        /* No partition yet: with idle_timeout the source goes idle instead of holding others back. */
        tm_source_tick(src->ctx, 0);
        usleep(50000);
    }
    return !tm_source_should_stop(src->ctx);
}

/*
 * Finds every partition of every topic and their start offsets, and assigns
 * them.  Waits (invariant 5) while the brokers do not answer; fails when a
 * topic does not exist.
 */
static int connect_and_assign(tm_source_t *src, char *errstr, size_t errstr_size)
{
    char why[512] = "";
    int64_t start = tm_mono_ms(), last_log = start;
    int attempts = 0, missing = 0;
    const char *missing_topic = "";
    int rc;
    for (;;) {
        if (tm_source_should_stop(src->ctx))
            return TM_ESTOPPED;
        attempts++;
        rc = 0;
        for (int i = 0; rc == 0 && i < src->ntopics; i++) {
            int n = 0;
            rc = topic_partitions(src, &src->topics[i], &n, why, sizeof(why));
            if (rc == TM_ENOTFOUND)
                missing_topic = src->topics[i].name;
            for (int p = 0; rc == 0 && p < n; p++)
                rc = part_add(src, i, p);
        }
        if (rc == 0)
            rc = resolve_starts(src, 0, src->nparts, false, why, sizeof(why));
        if (rc == 0)
            break;
        if (rc == TM_ENOMEM)
            return rc;
        if (rc == TM_ESOURCE)
            return tm_seterr(errstr, errstr_size, TM_ESOURCE, "table '%s': %s", src->name, why);
        if (rc == TM_ENOTFOUND && ++missing >= MISSING_TOPIC_CHECKS)
            return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                             "table '%s': %s on the Kafka cluster at %s; create it first (e.g. "
                             "kafka-topics.sh --create --topic %s --partitions N) or correct "
                             "option 'topic'; tidemark does not create source topics",
                             src->name, why, src->servers, missing_topic);
        if (rc != TM_ENOTFOUND)
            missing = 0;
        int64_t now = tm_mono_ms();
        if (now - last_log >= WAIT_LOG_MS) {
            TM_WARN(COMP, "waiting for the Kafka brokers",
                    "source=%s servers=%s waited_s=%" PRId64 " attempts=%d error=\"%s\"",
                    src->name, src->servers, (now - start) / 1000, attempts, why);
            last_log = now;
        }
        if (!nap(src, rc == TM_ENOTFOUND ? 1000 : 500))
            return TM_ESTOPPED;
    }
    if (src->restoring)
        for (int i = 0; i < src->nrestored; i++) {
            const kpos_t *r = &src->restored[i];
            bool known = false;
            for (int k = 0; k < src->ntopics; k++)
                if (strcmp(src->topics[k].name, r->topic) == 0)
                    known = r->partition < src->topics[k].npidx;
            if (!known)
                TM_WARN(COMP, "the checkpoint names a partition this source no longer reads",
                        "source=%s topic=%s partition=%" PRId32 " offset=%" PRId64, src->name,
                        r->topic, r->partition, r->offset);
        }
    if ((rc = assign_parts(src, 0, src->nparts, false, errstr, errstr_size)) != 0)
        return rc;
    tm_buf_t b;
    tm_buf_init(&b);
    for (int i = 0; i < src->nparts && i < 32; i++)
        tm_buf_appendf(&b, "%s%s[%" PRId32 "]@%" PRId64, i ? "," : "",
                       src->topics[src->parts[i].topic].name, src->parts[i].partition,
                       src->parts[i].next);
    TM_INFO(COMP, "partitions assigned",
            "source=%s partitions=%d from=%s group=%s offsets=%s%s", src->name, src->nparts,
            src->restoring ? "checkpoint" : startup_names[src->startup], src->group_id,
            b.data ? b.data : "", src->nparts > 32 ? ",..." : "");
    tm_buf_release(&b);
    /* Dead letters are produced to topics that should exist; say so early if they do not. */
    if (src->dlq != NULL)
        for (int i = 0; i < src->ntopics; i++) {
            bool dup = false;
            for (int k = 0; k < i; k++)
                dup = dup || strcmp(src->topics[k].dlq, src->topics[i].dlq) == 0;
            rd_kafka_topic_t *rkt = dup ? NULL : rd_kafka_topic_new(src->rk, src->topics[i].dlq,
                                                                     NULL);
            const struct rd_kafka_metadata *md = NULL;
            if (rkt != NULL &&
                rd_kafka_metadata(src->rk, 0, rkt, &md, LOOKUP_TIMEOUT_MS) == 0 &&
                md->topic_cnt > 0 && md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART)
                TM_INFO(COMP, "the dead-letter topic does not exist yet",
                        "source=%s topic=%s hint=\"the first malformed record creates it if the "
                        "brokers allow auto.create.topics.enable; otherwise create it, or the "
                        "job stops at the first malformed record\"",
                        src->name, src->topics[i].dlq);
            if (md != NULL)
                rd_kafka_metadata_destroy(md);
            if (rkt != NULL)
                rd_kafka_topic_destroy(rkt);
        }
    return 0;
}

/* Picks up partitions added to the topics since the last look. */
static int discover(tm_source_t *src, char *errstr, size_t errstr_size)
{
    int64_t now = tm_mono_ms();
    if (src->discovery_ms <= 0 || now < src->next_discovery_ms)
        return 0;
    src->next_discovery_ms = now + src->discovery_ms;
    int first = src->nparts;
    char why[512];
    for (int i = 0; i < src->ntopics; i++) {
        int n = 0;
        if (topic_partitions(src, &src->topics[i], &n, why, sizeof(why)) != 0) {
            TM_DEBUG(COMP, "partition discovery skipped", "source=%s error=\"%s\"", src->name,
                     why);
            continue;
        }
        for (int p = 0; p < n; p++)
            if (part_add(src, i, p) != 0)
                return TM_ENOMEM;
    }
    int count = src->nparts - first;
    if (count == 0)
        return 0;
    if (resolve_starts(src, first, count, true, why, sizeof(why)) != 0) {
        /* Forget them for now; the next discovery finds them again. */
        for (int i = first; i < src->nparts; i++)
            src->topics[src->parts[i].topic].pidx[src->parts[i].partition] = -1;
        src->nparts = first;
        TM_WARN(COMP, "new partitions found but their offsets could not be read; retrying later",
                "source=%s error=\"%s\"", src->name, why);
        return 0;
    }
    int rc = assign_parts(src, first, count, true, errstr, errstr_size);
    if (rc == 0)
        TM_INFO(COMP, "new partitions assigned", "source=%s added=%d partitions=%d from=earliest",
                src->name, count, src->nparts);
    /* The offsets of the new partitions count as moved: the next token covers them. */
    src->moved = true;
    return rc;
}

/* ---- Tokens, positions and group commits (invariant 2) ---- */

static kcommit_t *ring_at(tm_source_t *src, int i)
{
    return &src->ring[(src->ring_head + i) % COMMIT_RING];
}

static int remember(tm_source_t *src, uint64_t token, bool barrier)
{
    kcommit_t *c;
    if (src->ring_len < COMMIT_RING) {
        c = ring_at(src, src->ring_len++);
    } else {
        /*
         * Full: the newest entry moves forward, unless it is a barrier's.
         * Committing then lags a little, but never runs ahead of acked.
         */
        c = ring_at(src, src->ring_len - 1);
        if (c->barrier && !barrier)
            return 0;
    }
    if (c->n < src->nparts) {
        int64_t *v = realloc(c->next, sizeof(*v) * (size_t)src->nparts);
        if (v == NULL)
            return TM_ENOMEM;
        c->next = v;
    }
    c->n = src->nparts;
    c->token = token;
    c->barrier = barrier;
    for (int i = 0; i < src->nparts; i++)
        c->next[i] = src->parts[i].next;
    return 0;
}

/* Commits the offsets of the newest token that tm_source_acked() covers. */
static void commit_acked(tm_source_t *src, bool final)
{
    uint64_t acked = tm_source_acked(src->ctx);
    int64_t now = tm_mono_ms();
    if (src->ring_len == 0 || ring_at(src, 0)->token > acked)
        return;
    if (!final && now - src->last_commit_ms < COMMIT_MIN_INTERVAL_MS)
        return;
    /* Invariant 3: a dead letter still in flight is not behind a committed offset. */
    if (src->dlq != NULL && (rd_kafka_outq_len(src->dlq) > 0 || src->dlq_failed > 0))
        return;
    kcommit_t *best = NULL;
    while (src->ring_len > 0 && ring_at(src, 0)->token <= acked) {
        /* Popped entries keep their arrays; remember() reuses them. */
        best = ring_at(src, 0);
        src->ring_head = (src->ring_head + 1) % COMMIT_RING;
        src->ring_len--;
    }
    if (best == NULL || best->token <= src->committed_token)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(best->n);
    for (int i = 0; i < best->n; i++)
        if (best->next[i] >= 0)
            rd_kafka_topic_partition_list_add(l, src->topics[src->parts[i].topic].name,
                                              src->parts[i].partition)
                ->offset = best->next[i];
    rd_kafka_resp_err_t err = l->cnt > 0 ? rd_kafka_commit(src->rk, l, 1) : 0;
    rd_kafka_topic_partition_list_destroy(l);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR)
        on_commit_cb(src->rk, err, NULL, src);
    else
        TM_DEBUG(COMP, "offsets committed", "source=%s group=%s token=%" PRIu64, src->name,
                 src->group_id, best->token);
    src->committed_token = best->token;
    src->last_commit_ms = now;
}

/* {"topic":{"0":123,"1":45},...}: the next offset to read per partition. */
static char *position_json(const tm_source_t *src)
{
    tm_buf_t b;
    tm_buf_init(&b);
    int rc = tm_buf_putc(&b, '{');
    for (int t = 0; rc == 0 && t < src->ntopics; t++) {
        const ktopic_t *kt = &src->topics[t];
        rc = tm_buf_appendf(&b, "%s", t ? "," : "");
        if (rc == 0)
            rc = tm_buf_append_json_str(&b, kt->name, strlen(kt->name));
        if (rc == 0)
            rc = tm_buf_putc(&b, ':');
        if (rc == 0)
            rc = tm_buf_putc(&b, '{');
        bool first = true;
        for (int p = 0; rc == 0 && p < kt->npidx; p++) {
            if (kt->pidx[p] < 0)
                continue;
            rc = tm_buf_appendf(&b, "%s\"%d\":%" PRId64, first ? "" : ",", p,
                                src->parts[kt->pidx[p]].next);
            first = false;
        }
        if (rc == 0)
            rc = tm_buf_putc(&b, '}');
    }
    if (rc == 0)
        rc = tm_buf_putc(&b, '}');
    if (rc == 0)
        rc = tm_buf_putc(&b, '\0');
    if (rc != 0) {
        tm_buf_release(&b);
        return NULL;
    }
    return b.data;
}

/* ---- Output queue ---- */

static kout_t *outq_at(tm_source_t *src, int i)
{
    return &src->outq[(src->outq_head + i) % OUTQ_MAX];
}

static kout_t *outq_push(tm_source_t *src)
{
    if (NEVER(src->outq_len == OUTQ_MAX))
        return NULL;
    kout_t *o = outq_at(src, src->outq_len++);
    memset(o, 0, sizeof(*o));
    return o;
}

/* Seals the current batch (or an empty one, when only offsets moved). */
static int seal(tm_source_t *src)
{
    tm_batch_t *b = src->cur;
    bool empty = b == NULL || b->count == 0;
    if (empty && !src->moved)
        return 0;
    if (src->outq_len >= OUTQ_MAX)
        return TM_EAGAIN;
    if (b == NULL && (b = tm_batch_new()) == NULL)
        return TM_ENOMEM;
    src->cur = NULL;
    b->ack_token = ++src->seq;
    src->moved = false;
    /* With checkpoints only barrier tokens are ever acknowledged (invariant 2). */
    int rc = src->saw_barrier ? 0 : remember(src, b->ack_token, false);
    kout_t *o = rc == 0 ? outq_push(src) : NULL;
    if (o == NULL) {
        tm_batch_unref(b);
        return rc != 0 ? rc : TM_ENOMEM;
    }
    o->batch = b;
    o->parts = src->cur_parts;
    src->cur_parts = NULL;
    return 0;
}

/* Hands queued events to the runtime; TM_EAGAIN when downstream is full. */
static int flush_outq(tm_source_t *src, int timeout_ms)
{
    while (src->outq_len > 0) {
        kout_t *o = outq_at(src, 0);
        int rc = o->batch != NULL ? tm_source_emit_parts(src->ctx, o->batch, o->parts, timeout_ms)
                                  : tm_source_emit_barrier(src->ctx, o->barrier, o->token,
                                                           o->position, timeout_ms);
        if (rc != 0)
            return rc;
        /* On success the runtime owns the batch. */
        free(o->parts);
        free(o->position);
        memset(o, 0, sizeof(*o));
        src->outq_head = (src->outq_head + 1) % OUTQ_MAX;
        src->outq_len--;
    }
    /* The runtime's watermark housekeeping (idle partitions); TM_EAGAIN loses nothing. */
    int rc = tm_source_tick(src->ctx, 0);
    return rc == TM_ESTOPPED ? rc : 0;
}

/*
 * Queues a requested barrier after everything read so far.  *blocked is set
 * while dead letters are still in flight (invariant 3): the caller then
 * waits for them instead of reading on.
 */
static int maybe_barrier(tm_source_t *src, bool *blocked, char *errstr, size_t errstr_size)
{
    *blocked = false;
    uint64_t id = tm_source_barrier_due(src->ctx);
    if (id == 0)
        return 0;
    for (int i = 0; i < src->outq_len; i++)
        if (outq_at(src, i)->barrier == id)
            return 0;
    if (src->outq_len >= OUTQ_MAX - 1)
        return 0;
    if (src->dlq_failed > 0)
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "table '%s': %s; the job stops so that the malformed record is not "
                         "lost (create the topic, fix its ACLs, or set on_error = 'skip')",
                         src->name, src->dlq_error);
    if (src->dlq != NULL && rd_kafka_outq_len(src->dlq) > 0) {
        *blocked = true;
        return 0;
    }
    int rc = seal(src);
    if (rc != 0)
        return rc;
    char *pos = position_json(src);
    if (pos == NULL)
        return TM_ENOMEM;
    if (strlen(pos) >= RUNTIME_POSITION_MAX && !src->position_warned) {
        TM_ERROR(COMP, "the position is longer than the runtime keeps; restoring this checkpoint "
                       "will fail",
                 "source=%s bytes=%zu limit=%d", src->name, strlen(pos), RUNTIME_POSITION_MAX - 1);
        src->position_warned = true;
    }
    uint64_t token = ++src->seq;
    src->saw_barrier = true;
    if ((rc = remember(src, token, true)) != 0) {
        free(pos);
        return rc;
    }
    kout_t *o = outq_push(src);
    if (o == NULL) {
        free(pos);
        return TM_ENOMEM;
    }
    o->barrier = id;
    o->token = token;
    o->position = pos;
    TM_DEBUG(COMP, "barrier queued", "source=%s checkpoint=%" PRIu64 " token=%" PRIu64
             " position=%s", src->name, id, token, pos);
    return 0;
}

/* ---- Records ---- */

static int topic_of(tm_source_t *src, const rd_kafka_message_t *m)
{
    const char *name = rd_kafka_topic_name(m->rkt);
    if (src->last_topic >= 0 && name == src->last_topic_name)
        return src->last_topic;
    for (int i = 0; i < src->ntopics; i++)
        if (strcmp(src->topics[i].name, name) == 0) {
            src->last_topic_name = name;
            src->last_topic = i;
            return i;
        }
    return -1;
}

/*
 * The decoder names a record's stream from the event's source block.  An
 * event without one (Flink's debezium-json writes none) is named after its
 * topic, read as Debezium names topics: <prefix>.<schema>.<table>,
 * <prefix>.<table>, or just <table> (prefix = this table's name).  The
 * result is cached per decoder schema and topic.
 */
static tm_schema_t *identity_for(tm_source_t *src, tm_schema_t *orig, int topic)
{
    kident_t *e;
    for (int i = 0; i < src->nidents; i++) {
        e = &src->idents[i];
        if (e->orig == orig && e->topic == topic) {
            e->used = ++src->ident_tick;
            return e->fixed;
        }
    }
    tm_schema_t *s = tm_schema_clone(orig);
    if (s == NULL)
        return NULL;
    const char *t = src->topics[topic].name;
    const char *last = strrchr(t, '.');
    char *prefix = NULL, *ns = NULL;
    const char *table = t;
    if (last != NULL) {
        table = last + 1;
        const char *mid = NULL;
        for (const char *p = t; p < last; p++)
            if (*p == '.')
                mid = p;
        if (mid != NULL) {
            prefix = strndup(t, (size_t)(mid - t));
            ns = strndup(mid + 1, (size_t)(last - mid - 1));
        } else {
            prefix = strndup(t, (size_t)(last - t));
        }
    }
    if (s->source_name == NULL)
        tm_schema_set_str(&s->source_name, prefix ? prefix : src->name);
    if (s->namespace == NULL && s->db == NULL && ns != NULL)
        tm_schema_set_str(&s->namespace, ns);
    tm_schema_set_str(&s->table, table);
    free(prefix);
    free(ns);
    if (src->nidents < IDENT_MAX) {
        e = &src->idents[src->nidents++];
    } else {
        e = &src->idents[0];
        for (int i = 1; i < src->nidents; i++)
            if (src->idents[i].used < e->used)
                e = &src->idents[i];
        tm_schema_unref(e->orig);
        tm_schema_unref(e->fixed);
    }
    e->orig = tm_schema_ref(orig);
    e->topic = topic;
    e->fixed = s;
    e->used = ++src->ident_tick;
    return s;
}

/*
 * Checks a decoded record against the declared primary key and gives it a
 * stream identity if the event named none.  The record is the batch's last;
 * on TM_ECORRUPT it is taken out again (its arena bytes stay until the batch
 * is freed).
 */
static int finish_record(tm_source_t *src, tm_batch_t *b, tm_record_t *rec, int topic,
                         char *why, size_t whylen)
{
    tm_op_t op = rec->op;
    if (src->declared != NULL && src->declared->nkeys > 0 &&
        (op == TM_OP_CREATE || op == TM_OP_READ || op == TM_OP_UPDATE || op == TM_OP_DELETE)) {
        const char *image = op == TM_OP_DELETE ? "before" : "after";
        const tm_row_t *row = op == TM_OP_DELETE ? rec->before : rec->after;
        const tm_schema_t *s = rec->schema;
        const char *missing = NULL;
        for (int k = 0; row != NULL && missing == NULL && k < s->nkeys; k++)
            if (tm_row_is_null(row, s->key_cols[k]))
                missing = s->cols[s->key_cols[k]].name;
        if (row == NULL || missing != NULL) {
            b->count--;
            if (row == NULL)
                return tm_seterr(why, whylen, TM_ECORRUPT,
                                 "a '%c' event without '%s', which the declared primary key needs",
                                 (char)op, image);
            return tm_seterr(why, whylen, TM_ECORRUPT,
                             "primary-key column '%s' is missing or null in '%s'", missing,
                             image);
        }
    }
    if (op == TM_OP_MESSAGE || rec->schema == NULL || rec->schema->table != NULL)
        return 0;
    tm_schema_t *fixed = identity_for(src, rec->schema, topic);
    if (fixed == NULL)
        return TM_ENOMEM;
    /* Re-add the record under the named schema, so the batch holds a reference to it. */
    tm_record_t saved = *rec;
    b->count--;
    tm_record_t *r = tm_batch_add(b, fixed, op);
    if (r == NULL)
        return TM_ENOMEM;
    saved.schema = r->schema;
    *r = saved;
    return 0;
}

static void log_malformed(tm_source_t *src, bool force, const char *topic, int32_t partition,
                          int64_t offset, const char *why)
{
    int64_t now = tm_mono_us();
    if (!force && now - src->malformed_log_us < 1000000) {
        src->malformed_suppressed++;
        return;
    }
    if (topic != NULL)
        TM_WARN(COMP, "malformed record", "source=%s topic=%s partition=%" PRId32
                " offset=%" PRId64 " action=%s malformed_total=%" PRIu64 " dead_lettered=%" PRIu64
                " skipped=%" PRIu64 " not_logged=%" PRIu64 " error=\"%s\"",
                src->name, topic, partition, offset, on_error_names[src->on_error],
                src->nmalformed, src->ndead, src->nskipped, src->malformed_suppressed, why);
    else
        TM_WARN(COMP, "malformed records", "source=%s action=%s malformed_total=%" PRIu64
                " dead_lettered=%" PRIu64 " skipped=%" PRIu64 " not_logged=%" PRIu64,
                src->name, on_error_names[src->on_error], src->nmalformed, src->ndead,
                src->nskipped, src->malformed_suppressed);
    src->malformed_log_us = now;
    src->malformed_suppressed = 0;
}

static int dead_letter(tm_source_t *src, const rd_kafka_message_t *m, const ktopic_t *t,
                       const char *why, char *errstr, size_t errstr_size)
{
    char pbuf[16], obuf[24];
    snprintf(pbuf, sizeof(pbuf), "%" PRId32, m->partition);
    snprintf(obuf, sizeof(obuf), "%" PRId64, m->offset);
    bool truncate = false;
    for (;;) {
        /* The original headers travel along, as Kafka Connect's dead-letter queue does. */
        rd_kafka_headers_t *orig = NULL, *hdrs;
        hdrs = rd_kafka_message_headers(m, &orig) == RD_KAFKA_RESP_ERR_NO_ERROR && orig
                   ? rd_kafka_headers_copy(orig)
                   : rd_kafka_headers_new(4);
        if (hdrs == NULL)
            return TM_ENOMEM;
        rd_kafka_header_add(hdrs, "tidemark.error", -1, why, -1);
        rd_kafka_header_add(hdrs, "tidemark.topic", -1, t->name, -1);
        rd_kafka_header_add(hdrs, "tidemark.partition", -1, pbuf, -1);
        rd_kafka_header_add(hdrs, "tidemark.offset", -1, obuf, -1);
        rd_kafka_resp_err_t err =
            truncate ? dlq_produce_truncated(src, t->dlq, m, hdrs)
                     : rd_kafka_producev(src->dlq, RD_KAFKA_V_TOPIC(t->dlq),
                                         RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                         RD_KAFKA_V_KEY(m->key, m->key_len),
                                         RD_KAFKA_V_VALUE(m->payload, m->len),
                                         RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_END);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
            if (truncate)
                TM_WARN(COMP, "dead letter too large for the producer; sent truncated",
                        "source=%s topic=%s partition=%s offset=%s bytes=%zu "
                        "header=" DLQ_TRUNCATED_HEADER,
                        src->name, t->name, pbuf, obuf, m->len);
            return 0; /* librdkafka owns hdrs now */
        }
        rd_kafka_headers_destroy(hdrs);
        /* Larger than the producer's message.max.bytes: once more, cut to size. */
        if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE && !truncate) {
            truncate = true;
            continue;
        }
        if (err == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE) {
            dlq_size_error(src, t->dlq, m->len);
            return tm_seterr(errstr, errstr_size, TM_ESOURCE, "table '%s': %s", src->name,
                             src->dlq_error);
        }
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                             "table '%s': cannot produce the malformed record from %s [%s] at "
                             "offset %s to dead-letter topic '%s': %s",
                             src->name, t->name, pbuf, obuf, t->dlq, rd_kafka_err2str(err));
        /* The producer's queue is full: let it deliver, then try again. */
        rd_kafka_poll(src->dlq, 100);
        if (tm_source_should_stop(src->ctx))
            return TM_ESTOPPED;
    }
}

static int on_malformed(tm_source_t *src, const rd_kafka_message_t *m, const ktopic_t *t,
                        const char *why, char *errstr, size_t errstr_size)
{
    src->nmalformed++;
    tm_errors_count(TM_ERRKIND_DECODE);
    if (src->on_error == ON_ERROR_FAIL)
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "table '%s': malformed record in topic '%s' partition %" PRId32
                         " at offset %" PRId64 ": %s; on_error = 'fail' stops the job (use "
                         "'dead-letter' or 'skip' to continue past such records)",
                         src->name, t->name, m->partition, m->offset, why);
    if (src->on_error == ON_ERROR_DEAD_LETTER) {
        int rc = dead_letter(src, m, t, why, errstr, errstr_size);
        if (rc != 0)
            return rc;
        src->ndead++;
    } else {
        src->nskipped++;
    }
    log_malformed(src, false, t->name, m->partition, m->offset, why);
    return 0;
}

static int on_consumer_error(tm_source_t *src, const rd_kafka_message_t *m, char *errstr,
                             size_t errstr_size)
{
    const char *topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    switch (m->err) {
    case RD_KAFKA_RESP_ERR__PARTITION_EOF:
        return 0;
    case RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART:
    case RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC:
    case RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION:
        /* Possibly transient (metadata propagation): housekeeping asks the brokers. */
        on_error_cb(src->rk, m->err, rd_kafka_message_errstr(m), src);
        return 0;
    case RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED:
    case RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED:
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "table '%s': not authorized (%s); grant READ on the topic and the "
                         "group '%s' to this client's principal",
                         src->name, rd_kafka_message_errstr(m), src->group_id);
    case RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET:
        /* The position is older than what the topic retains: records were lost to retention. */
        TM_WARN(COMP, "offset out of range; reset by auto.offset.reset",
                "source=%s topic=%s partition=%" PRId32 " detail=\"%s\"", src->name, topic,
                m->partition, rd_kafka_message_errstr(m));
        return 0;
    default:
        if (rd_kafka_fatal_error(src->rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
            return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                             "table '%s': the Kafka consumer failed: %s", src->name,
                             rd_kafka_message_errstr(m));
        on_error_cb(src->rk, m->err, rd_kafka_message_errstr(m), src);
        return 0;
    }
}

static int on_message(tm_source_t *src, const rd_kafka_message_t *m, char *errstr,
                      size_t errstr_size)
{
    if (m->err != RD_KAFKA_RESP_ERR_NO_ERROR)
        return on_consumer_error(src, m, errstr, errstr_size);
    int topic = topic_of(src, m);
    ktopic_t *t = topic >= 0 ? &src->topics[topic] : NULL;
    if (t == NULL || m->partition < 0 || m->partition >= t->npidx || t->pidx[m->partition] < 0)
        return 0; /* not assigned by us: cannot happen with rd_kafka_assign */
    kpart_t *p = &src->parts[t->pidx[m->partition]];
    if (m->offset < p->next)
        return 0; /* already read */
    tm_source_count(src->ctx, 0, m->len + m->key_len);
    int rc = TM_ENOTFOUND;
    char why[512] = "";
    int pidx = t->pidx[m->partition];
    if (m->payload != NULL && m->len > 0) {
        if (src->cur != NULL && tm_batch_full(src->cur) && (rc = seal(src)) != 0)
            return rc;
        if (src->cur == NULL && (src->cur = tm_batch_new()) == NULL)
            return TM_ENOMEM;
        if (src->cur_parts == NULL &&
            (src->cur_parts = malloc(sizeof(*src->cur_parts) * TM_BATCH_MAX)) == NULL)
            return TM_ENOMEM;
        uint32_t before = src->cur->count;
        tm_record_t *rec = NULL;
        rc = tm_dbz_decode(src->dec, m->payload, m->len, src->cur, &rec, why, sizeof(why));
        if (rc == 0)
            rc = finish_record(src, src->cur, rec, topic, why, sizeof(why));
        /* Invariant 6: the runtime reads each record's event time per partition. */
        for (uint32_t i = before; i < src->cur->count; i++)
            src->cur_parts[i] = pidx;
    }
    bool added = rc == 0;
    switch (rc) {
    case 0:
        src->nrecords++;
        break;
    case TM_ENOTFOUND:
        src->ntombstones++;
        break;
    case TM_ECORRUPT:
        if ((rc = on_malformed(src, m, t, why, errstr, errstr_size)) != 0)
            return rc;
        break;
    default:
        return tm_seterr(errstr, errstr_size, rc == TM_ENOMEM ? rc : TM_ESOURCE,
                         "table '%s': decoding the record from topic '%s' partition %" PRId32
                         " at offset %" PRId64 " failed: %s",
                         src->name, t->name, m->partition, m->offset, why);
    }
    p->next = m->offset + 1;
    src->moved = true;
    /* A tombstone or a skipped record keeps its partition from going idle (invariant 6). */
    if (!added)
        tm_source_partition_active(src->ctx, pidx);
    return 0;
}

/* ---- The loop ---- */

static int housekeeping(tm_source_t *src, char *errstr, size_t errstr_size)
{
    if (src->dlq != NULL)
        rd_kafka_poll(src->dlq, 0);
    if (src->fatal[0] != '\0')
        return tm_seterr(errstr, errstr_size, TM_ESOURCE, "table '%s': Kafka client failed: %s",
                         src->name, src->fatal);
    if (src->dlq_failed > 0)
        return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                         "table '%s': %s; the job stops so that the malformed record is not "
                         "lost (create the topic, fix its ACLs, or set on_error = 'skip')",
                         src->name, src->dlq_error);
    if (src->malformed_suppressed > 0 && tm_mono_us() - src->malformed_log_us >= 1000000)
        log_malformed(src, true, NULL, 0, 0, NULL);
    commit_acked(src, false);
    if (src->recheck_topics) {
        src->recheck_topics = false;
        for (int i = 0; i < src->ntopics; i++) {
            char why[512];
            int n = 0;
            if (topic_partitions(src, &src->topics[i], &n, why, sizeof(why)) == TM_ENOTFOUND)
                return tm_seterr(errstr, errstr_size, TM_ESOURCE,
                                 "table '%s': topic '%s' was deleted from the Kafka cluster "
                                 "while the job ran; recreate it and start from a fresh state "
                                 "directory (its old offsets mean nothing in a new topic)",
                                 src->name, src->topics[i].name);
        }
    }
    return discover(src, errstr, errstr_size);
}

static int stream_loop(tm_source_t *src, char *errstr, size_t errstr_size)
{
    int rc;
    for (;;) {
        if (tm_source_should_stop(src->ctx))
            return 0;
        if (flush_outq(src, 0) == TM_ESTOPPED)
            return 0;
        if ((rc = housekeeping(src, errstr, errstr_size)) != 0)
            return rc;
        if (src->outq_len >= MAX_WAITING) {
            /* Back-pressure: wait for room; the batch stays ours until emitted. */
            if (flush_outq(src, 100) == TM_ESTOPPED)
                return 0;
            continue;
        }
        bool blocked;
        if ((rc = maybe_barrier(src, &blocked, errstr, errstr_size)) != 0)
            return rc;
        if (blocked) {
            /* Invariant 3: the checkpoint waits for the dead letters before it. */
            int64_t now = tm_mono_ms();
            if (src->dlq_wait_log_ms == 0)
                src->dlq_wait_log_ms = now;
            if (now - src->dlq_wait_log_ms >= WAIT_LOG_MS) {
                TM_WARN(COMP, "the checkpoint waits for dead letters to be delivered",
                        "source=%s undelivered=%d", src->name, rd_kafka_outq_len(src->dlq));
                src->dlq_wait_log_ms = now;
            }
            rd_kafka_flush(src->dlq, 100);
            continue;
        }
        src->dlq_wait_log_ms = 0;
        int n = 0;
        for (; n < READ_BUDGET && src->outq_len < MAX_WAITING; n++) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(src->rk, 0);
            if (m == NULL)
                break;
            rc = on_message(src, m, errstr, errstr_size);
            rd_kafka_message_destroy(m);
            if (rc != 0)
                return rc;
        }
        if (n == READ_BUDGET || src->outq_len >= MAX_WAITING)
            continue;
        /* Nothing more is immediately available: what we have goes downstream now. */
        if ((rc = seal(src)) != 0)
            return rc;
        if (src->outq_len > 0) {
            if (flush_outq(src, 100) == TM_ESTOPPED)
                return 0;
            continue;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(src->rk, 100);
        if (m != NULL) {
            rc = on_message(src, m, errstr, errstr_size);
            rd_kafka_message_destroy(m);
            if (rc != 0)
                return rc;
        }
    }
}

/*
 * A graceful stop without checkpoints: the sinks still flush what they were
 * handed, so waiting (bounded) lets the last group commit cover it.  With
 * checkpoints the final checkpoint has completed before the stop.
 */
static void drain_acks(tm_source_t *src, int64_t max_ms)
{
    int64_t until = tm_mono_ms() + max_ms;
    while (!src->saw_barrier && src->ring_len > 0 && tm_mono_ms() < until) {
        if (tm_source_acked(src->ctx) >= ring_at(src, src->ring_len - 1)->token)
            break;
        usleep(20000);
    }
    if (src->dlq != NULL && rd_kafka_flush(src->dlq, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        TM_WARN(COMP, "dead letters not delivered at stop; they are produced again after a "
                      "restart",
                "source=%s undelivered=%d", src->name, rd_kafka_outq_len(src->dlq));
    if (src->dlq != NULL)
        rd_kafka_poll(src->dlq, 0);
    commit_acked(src, true);
}

/* Closes the consumer without blocking for longer than max_ms. */
static void close_consumer(tm_source_t *src, int64_t max_ms)
{
    rd_kafka_queue_t *q = rd_kafka_queue_new(src->rk);
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(src->rk, q);
    int64_t until = tm_mono_ms() + max_ms;
    if (e == NULL) {
        while (!rd_kafka_consumer_closed(src->rk) && tm_mono_ms() < until) {
            rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 100);
            if (ev != NULL)
                rd_kafka_event_destroy(ev);
        }
    }
    rd_kafka_error_destroy(e);
    rd_kafka_queue_destroy(q);
    src->closed = true;
}

int tm_kafka_source_run(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    src->ctx = ctx;
    /* Without a `watermark` column the event time is the commit time (invariant 6). */
    if (!src->watermark_column)
        tm_source_use_commit_time(ctx, src->watermark_delay_us, src->idle_timeout_ms);
    int rc = connect_and_assign(src, errstr, errstr_size);
    if (rc == 0) {
        src->next_discovery_ms = tm_mono_ms() + src->discovery_ms;
        tm_source_set_ready(ctx, true);
        rc = stream_loop(src, errstr, errstr_size);
    }
    tm_source_set_ready(ctx, false);
    if (rc == 0 || rc == TM_ESTOPPED) {
        drain_acks(src, 5000);
        rc = 0;
    }
    if (src->malformed_suppressed > 0)
        log_malformed(src, true, NULL, 0, 0, NULL);
    TM_INFO(COMP, "source stopped",
            "source=%s records=%" PRIu64 " tombstones=%" PRIu64 " malformed=%" PRIu64
            " dead_lettered=%" PRIu64 " skipped=%" PRIu64 " committed_token=%" PRIu64,
            src->name, src->nrecords, src->ntombstones, src->nmalformed, src->ndead,
            src->nskipped, src->committed_token);
    close_consumer(src, 5000);
    return rc;
}

/* ---- describe / free ---- */

void tm_kafka_source_describe(const tm_source_t *src, void (*line)(void *arg, const char *text),
                              void *arg)
{
    tm_buf_t b;
    char *s;
    tm_buf_init(&b);
    for (int i = 0; i < src->ntopics; i++)
        tm_buf_appendf(&b, "%s%s", i ? ", " : "", src->topics[i].name);
    tm_buf_putc(&b, '\0');
    if ((s = tm_asprintf("kafka %s: topics %s (debezium-json, every partition, assigned by "
                       "tidemark; new partitions %s)",
                       src->servers, b.data ? b.data : "",
                       src->discovery_ms > 0 ? "looked for periodically" : "found at start only")))
        line(arg, s);
    free(s);
    tm_buf_release(&b);
    if ((s = tm_asprintf("group %s: offsets committed for monitoring only, once a checkpoint "
                       "completes (or, without checkpoints, once the sinks flushed)",
                       src->group_id)))
        line(arg, s);
    free(s);
    char when[64] = "";
    if (src->startup == STARTUP_TIMESTAMP)
        snprintf(when, sizeof(when), " %" PRId64 " ms", src->startup_ts_ms);
    if ((s = tm_asprintf("startup %s%s when no checkpoint is restored; position = next offset per "
                       "partition; isolation %s",
                       startup_names[src->startup], when,
                       tm_options_lookup(src->opts, "kafka.isolation.level")
                           ? tm_options_lookup(src->opts, "kafka.isolation.level")
                           : "read_committed")))
        line(arg, s);
    free(s);
    if (src->on_error == ON_ERROR_DEAD_LETTER)
        s = src->dlq_explicit ? tm_asprintf("on_error dead-letter: malformed records go to topic %s",
                                          src->topics[0].dlq)
                              : tm_asprintf("on_error dead-letter: malformed records go to "
                                          "<topic>.dlq (%s%s)",
                                          src->topics[0].dlq, src->ntopics > 1 ? ", ..." : "");
    else
        s = tm_asprintf("on_error %s: malformed records %s", on_error_names[src->on_error],
                      src->on_error == ON_ERROR_FAIL ? "stop the job" : "are counted and skipped");
    if (s != NULL)
        line(arg, s);
    free(s);
    if (src->watermark_column)
        s = tm_asprintf("watermarks: per partition, event time from the watermark column (%s); "
                        "the source's is the minimum over partitions that are not idle",
                        tm_options_lookup(src->opts, "watermark"));
    else
        s = tm_asprintf("watermarks: per partition, event time source.ts_ms (else the envelope's "
                        "ts_ms) minus watermark_delay %" PRId64 " ms; the source's is the "
                        "minimum over partitions that are not idle, emitted when it advances; "
                        "not checkpointed",
                        src->watermark_delay_us / 1000);
    if (s != NULL)
        line(arg, s);
    free(s);
    if (src->idle_timeout_ms > 0)
        s = tm_asprintf("idle_timeout %" PRId64 " ms: a partition without records for that long "
                      "stops holding the watermark back",
                      src->idle_timeout_ms);
    else
        s = tm_asprintf("idle_timeout %s: a partition without records holds the watermark back "
                      "until it has some",
                      src->idle_timeout_set ? "0 (never idle)" : "unset (never idle)");
    if (s != NULL)
        line(arg, s);
    free(s);
}

/*
 * rd_kafka_destroy() with a time limit.  librdkafka 2.0 can hang in destroy
 * when a partition it was reading has been deleted from the cluster (a
 * fetch-queue reference cycle, librdkafka PR #4724); a job that stops must
 * not hang with it.  A handle that does not finish in time is left to its
 * thread, and the process exits around it.
 */
typedef struct kdestroy {
    rd_kafka_t *rk;
    int flags;
    atomic_bool done;
} kdestroy_t;

static void *destroy_main(void *arg)
{
    kdestroy_t *d = arg;
    rd_kafka_destroy_flags(d->rk, d->flags);
    atomic_store(&d->done, true);
    return NULL;
}

static void destroy_bounded(const tm_source_t *src, rd_kafka_t *rk, int flags)
{
    kdestroy_t *d = calloc(1, sizeof(*d));
    pthread_t th;
    if (d == NULL) {
        rd_kafka_destroy_flags(rk, flags);
        return;
    }
    d->rk = rk;
    d->flags = flags;
    atomic_init(&d->done, false);
    if (pthread_create(&th, NULL, destroy_main, d) != 0) {
        free(d);
        rd_kafka_destroy_flags(rk, flags);
        return;
    }
    int64_t until = tm_mono_ms() + DESTROY_TIMEOUT_MS;
    while (!atomic_load(&d->done) && tm_mono_ms() < until)
        usleep(10000);
    if (atomic_load(&d->done)) {
        pthread_join(th, NULL);
        free(d);
        return;
    }
    pthread_detach(th);
    TM_WARN(COMP, "a Kafka client did not close in time and was abandoned",
            "source=%s client=%s timeout_ms=%d hint=\"librdkafka 2.0 can hang here when a topic "
            "was deleted while it was read\"",
            src->name, rd_kafka_name(rk), DESTROY_TIMEOUT_MS);
}

void tm_kafka_source_free(tm_source_t *src)
{
    if (src == NULL)
        return;
    for (int i = 0; i < src->outq_len; i++) {
        kout_t *o = outq_at(src, i);
        tm_batch_unref(o->batch);
        free(o->parts);
        free(o->position);
    }
    tm_batch_unref(src->cur);
    free(src->cur_parts);
    for (int i = 0; i < COMMIT_RING; i++)
        free(src->ring[i].next);
    for (int i = 0; i < src->nidents; i++) {
        tm_schema_unref(src->idents[i].orig);
        tm_schema_unref(src->idents[i].fixed);
    }
    tm_dbz_decoder_free(src->dec);
    for (int i = 0; i < src->ntopics; i++) {
        if (src->topics[i].rkt != NULL)
            rd_kafka_topic_destroy(src->topics[i].rkt);
        free(src->topics[i].name);
        free(src->topics[i].dlq);
        free(src->topics[i].pidx);
    }
    free(src->topics);
    if (src->rk != NULL)
        destroy_bounded(src, src->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    if (src->dlq != NULL) {
        rd_kafka_purge(src->dlq, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        destroy_bounded(src, src->dlq, 0);
    }
    for (int i = 0; i < src->nrestored; i++)
        free(src->restored[i].topic);
    free(src->restored);
    free(src->parts);
    tm_schema_unref(src->declared);
    free(src->idle_position);
    free(src->name);
    free(src->servers);
    free(src->group_id);
    free(src);
}
