/*
 * kafka_sink_int.h — what the Kafka sink's files share.
 *
 *     kafka_sink.c      options, life cycle, producing with back-pressure,
 *                       topics (created with the AdminAPI), at-least-once flush
 *     kafka_sink_enc.c  records → Kafka messages (debezium-json, json, upsert),
 *                       topic templates
 *     kafka_sink_txn.c  exactly-once: one transaction per checkpoint epoch, the
 *                       progress topic, the job's decision log (DESIGN §6)
 *
 * Invariants:
 *   1. Only one thread touches a sink at a time: the main thread until the
 *      pipeline starts (new, open, decided, recover), then the sink thread
 *      (write, flush, precommit, commit), then the main thread again (free).
 *      librdkafka's callbacks (delivery reports, errors) are served by
 *      rd_kafka_poll()/rd_kafka_flush() on that same thread, so the counters
 *      they update need no lock.  Only the log callback runs on librdkafka's
 *      own threads, and it touches nothing here.
 *   2. A message is never dropped: a produce that cannot be queued waits
 *      (back-pressure) or fails the job, and a delivery error fails the job.
 *      The runtime then replays from the last acknowledged position.
 *   3. Exactly-once: at most one Kafka transaction is open, and it holds the
 *      records of exactly one epoch.  Records of epoch N+1 that arrive while
 *      N is pre-committed but not yet committed wait in `held`.
 *
 * Thread: see invariant 1.
 */
#ifndef TM_CONNECTORS_KAFKA_SINK_INT_H
#define TM_CONNECTORS_KAFKA_SINK_INT_H

#include "kafka_int.h"

#include "core/buf.h"
#include "format/debezium.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

#define TM_KS_COMP "kafka"

/* Record encodings (`format`). */
typedef enum tm_ks_format {
    TM_KS_DEBEZIUM = 0, /* Debezium key + envelope; delete then tombstone */
    TM_KS_JSON,         /* flat row, `__deleted` as Debezium's ExtractNewRecordState rewrite */
    TM_KS_UPSERT,       /* flat row; a delete is the tombstone itself */
} tm_ks_format_t;

/* A topic the sink has produced to; checked (and created) once per run. */
typedef struct tm_ks_topic {
    char *name;
    rd_kafka_topic_t *rkt;
} tm_ks_topic_t;

/*
 * One encoded message.  `key`/`value` are offsets into the owning buffer;
 * a length of UINT32_MAX stands for a null key or a null value (tombstone).
 * `hdr` names an optional header (Debezium's __debezium.newkey/oldkey) whose
 * value is at hdr_off.
 */
#define TM_KS_NULL UINT32_MAX
typedef struct tm_ks_msg {
    uint32_t topic; /* index into sink->topics */
    uint32_t key_off, key_len;
    uint32_t val_off, val_len;
    const char *hdr; /* static string or NULL */
    uint32_t hdr_off, hdr_len;
} tm_ks_msg_t;

/* Messages in one buffer: what one record became, or an epoch held back. */
typedef struct tm_ks_msgs {
    tm_buf_t data;
    tm_ks_msg_t *msgs;
    uint32_t n, cap;
} tm_ks_msgs_t;

struct tm_sink {
    char *name;
    char *job;
    const tm_options_t *opts; /* owned by the job, outlives the sink */

    /* Encoding. */
    tm_ks_format_t format;
    bool tombstones;
    uint32_t skipped_ops; /* skipped_operations (tm_dbz_skipped) */
    bool schemas;
    tm_dbz_encoder_t *enc;
    char *topic_tmpl;
    bool tmpl_fixed; /* no {variables}: one topic for every record */
    /* json/upsert: the Kafka Connect schema of the last table's row (cached). */
    tm_schema_t *row_schema_of;
    json_t *row_schema;
    uint64_t skipped; /* truncates/messages that json/upsert cannot express */
    /* Debezium's transaction metadata and heartbeats (format/debezium.h). */
    tm_dbz_txmon_t *txmon; /* provide_transaction_metadata, else NULL */
    char *tx_suffix;       /* topic_transaction */
    char *hb_prefix;       /* topic_heartbeat_prefix */
    int64_t hb_interval_ms, hb_last_ms;
    char *last_prefix; /* the last record's source name: the prefix of those topics */

    /* Topics. */
    bool create_topics;
    int partitions, replication;
    tm_ks_topic_t *topics;
    uint32_t ntopics, captopics;
    const tm_schema_t *last_schema; /* one-entry cache, schema ref held */
    uint32_t last_topic;

    /* librdkafka. */
    rd_kafka_conf_t *conf; /* until sink_open hands it to rd_kafka_new */
    rd_kafka_t *rk;
    int64_t unavailable_ms; /* 0: wait for Kafka forever */
    int64_t txn_timeout_ms;
    char *bootstrap;
    bool opening; /* in sink_open: an unreachable cluster is reported after 30 s */

    /* Delivery reports (invariant 1: sink thread only). */
    uint64_t produced, delivered;
    uint64_t dr_failed;
    rd_kafka_resp_err_t dr_err;
    char dr_topic[256];
    bool purging; /* aborting: purge reports are expected, not failures */
    rd_kafka_resp_err_t last_error; /* from the error callback, for messages */
    int64_t last_warn_ms;
    /*
     * At-least-once acknowledgement by delivery reports (tm_kafka_sink_acked):
     * a ring of the writes not yet delivered in full, oldest first, each with
     * its count of undelivered messages (+1 while sink_write still produces).
     * Write number `ack_base` is at `ack_head`; every write before it is
     * delivered.  Messages carry their write number as their opaque.
     */
    uint32_t *ack_rem;
    uint32_t ack_cap, ack_head, ack_len;
    uint64_t ack_base;
    uint64_t writes;
    uint64_t producing; /* the write being produced (its messages' opaque), or 0 */
    /* sink_poll: deliveries seen at the last poll, and since when none came. */
    uint64_t poll_delivered;
    int64_t poll_since_ms;

    /* Scratch. */
    tm_ks_msgs_t out;

    /* Exactly-once (kafka_sink_txn.c). */
    bool eos;
    char *txn_id;
    char *progress_topic;
    char *progress_key;
    bool txn_inited;
    bool txn_open;
    int64_t txn_began_ms; /* when the open transaction began (monotonic) */
    bool decided_known;
    uint64_t decided;   /* newest checkpoint the progress topic records */
    uint64_t pending;   /* pre-committed, waiting for its commit; 0 if none */
    uint64_t committed; /* last committed (or recovered) checkpoint */
    tm_ks_msgs_t held;  /* epoch pending+1, held until pending is committed */
    bool held_warned;
    bool failed_fatal; /* fenced or fatal: never call transactional APIs again */
};

/* ---- kafka_sink.c ---- */
/* Ensures the topic is known (checked, created if allowed); returns its index or TM_E*. */
int tm__ks_topic(tm_sink_t *s, const char *name, char *errstr, size_t errstr_size);
/*
 * Creates `name` if it is missing (compacted when asked).  Returns 0 or
 * TM_E* with a message naming the topic and the option that governs it.
 * Thread: main or sink.
 */
int tm__ks_ensure_topic(tm_sink_t *s, const char *name, bool compact, int partitions,
                        char *errstr, size_t errstr_size);
/* Produces every message of `m`, waiting while the producer queue is full. */
int tm__ks_produce_all(tm_sink_t *s, const tm_ks_msgs_t *m, char *errstr, size_t errstr_size);
/* Produces one message to a topic by name (the progress record). */
int tm__ks_produce_raw(tm_sink_t *s, rd_kafka_topic_t *rkt, const char *key, size_t klen,
                       const char *val, size_t vlen, char *errstr, size_t errstr_size);
/* Waits until every produced message is acknowledged; fails on a delivery error. */
int tm__ks_flush(tm_sink_t *s, const char *why, char *errstr, size_t errstr_size);
/* Fills errstr for the producer's fatal error (fencing gets its own sentence). */
int tm__ks_fatal(tm_sink_t *s, rd_kafka_resp_err_t err, const char *what, char *errstr,
                 size_t errstr_size);
bool tm__ks_is_fenced(rd_kafka_resp_err_t err);
/* TM_ESTOPPED: a stop was requested while the sink waited at start (core/shutdown.h). */
int tm__ks_stopped(tm_sink_t *s, const char *what, char *errstr, size_t errstr_size);

void tm__ks_msgs_init(tm_ks_msgs_t *m);
void tm__ks_msgs_clear(tm_ks_msgs_t *m);
void tm__ks_msgs_release(tm_ks_msgs_t *m);
/* Appends the messages of `src` to `dst` (copies bytes). */
int tm__ks_msgs_append(tm_ks_msgs_t *dst, const tm_ks_msgs_t *src);

/* ---- kafka_sink_enc.c ---- */
/* Checks a topic template; 0 or TM_ECONFIG. */
int tm__ks_template_check(const char *tmpl, const char *table, bool *fixed, char *errstr,
                          size_t errstr_size);
/* Renders the topic of a record (Kafka's legal characters only). */
void tm__ks_topic_name(const tm_sink_t *s, const tm_record_t *rec, char *out, size_t outlen);
/*
 * Encodes one record into messages appended to `out` (0, 1, 2 or 3 of them:
 * a key change becomes delete + tombstone + create, as Debezium does).
 */
int tm__ks_encode(tm_sink_t *s, const tm_record_t *rec, uint32_t topic, tm_ks_msgs_t *out,
                  char *errstr, size_t errstr_size);

/* ---- kafka_sink_txn.c ---- */
int tm__ks_txn_configure(tm_sink_t *s, const tm_sink_config_t *cfg, char *errstr,
                         size_t errstr_size);
int tm__ks_txn_write(tm_sink_t *s, const tm_ks_msgs_t *m, char *errstr, size_t errstr_size);
void tm__ks_txn_close(tm_sink_t *s);

#endif
