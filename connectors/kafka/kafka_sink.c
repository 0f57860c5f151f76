/*
 * kafka_sink.c — the Kafka sink: options, life cycle, producing with
 * back-pressure, topics, and the at-least-once flush.
 *
 * Each record becomes one or more Kafka messages (kafka_sink_enc.c): the key
 * is the Debezium key, so librdkafka's murmur2_random partitioner puts every
 * change of a row on one partition, the partition a Java client or Debezium
 * would pick, and a key keeps its order.
 *
 *     delivery        what a flush/barrier does                   after a crash
 *     at-least-once   rd_kafka_flush: every message acknowledged  unacknowledged changes are
 *                     (acks=all, idempotent), then the source     re-sent; the tail may repeat
 *                     may acknowledge
 *     exactly-once    one transaction per checkpoint epoch,       the progress topic decides
 *                     committed with the progress record          which checkpoint completed
 *                     (kafka_sink_txn.c)
 *
 * Invariants (see also kafka_sink_int.h):
 *   1. Nothing is dropped.  A full producer queue blocks sink_write, which
 *      polls and retries (back-pressure reaches the source through the
 *      pipeline's bounded queues); at-least-once messages never time out
 *      (message.timeout.ms = 0).  The wait is bounded by
 *      `unavailable_timeout`, after which the job stops with TM_ECONN without
 *      acknowledging anything it could not deliver.
 *   2. A delivery error or a fatal producer error fails the job with a
 *      message naming the topic and the cause; nothing loops on it.
 *   3. No option value is logged; librdkafka refusals of secret-looking
 *      properties name the property only (tm_kafka_conf_set).
 *
 * Thread: main (new, open, free), sink (write, flush).
 */
#include "kafka_sink_int.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/shutdown.h"
#include "file/jsonl.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* How long sink_open waits for the cluster before it reports it unreachable. */
#define KS_OPEN_TIMEOUT_MS 30000
/* The producer queue's default bound (librdkafka's own is 1 GiB). */
#define KS_QUEUE_KBYTES "65536"
/* Warnings about a stalled producer come at most this often. */
#define KS_WARN_EVERY_MS 10000

const tm_option_def_t tm_kafka_sink_options[] = {
    {"bootstrap_servers", TM_OPT_STRING, true, NULL, NULL,
     "Kafka brokers to bootstrap from, host:port[,host:port…] (librdkafka bootstrap.servers)."},
    {"topic", TM_OPT_STRING, false, "{source}.{schema}.{table}", NULL,
     "Topic name, or a template in which {source}, {db}, {schema} and {table} are replaced."},
    {"format", TM_OPT_ENUM, false, "debezium-json", "debezium-json|json|upsert",
     "Message encoding: the Debezium envelope, the flat row (with __deleted), or upsert (flat "
     "row, null value on delete)."},
    {"delivery", TM_OPT_ENUM, false, "at-least-once", "at-least-once|exactly-once",
     "exactly-once writes one Kafka transaction per checkpoint and makes this sink the job's "
     "decision log (needs SET checkpoint_interval)."},
    {"transactional_id_prefix", TM_OPT_STRING, false, "tidemark", NULL,
     "Prefix of the transactional id <prefix>-<job>-<sink>, so ACLs can be granted by prefix."},
    {"progress_topic", TM_OPT_STRING, false, "_tidemark_progress", NULL,
     "Compacted topic that records each committed checkpoint (exactly-once); created if missing."},
    {"tombstones_on_delete", TM_OPT_BOOL, false, "true", NULL,
     "Debezium tombstones.on.delete: follow each delete with a tombstone (same key, null value) "
     "for log compaction."},
    {"tombstones", TM_OPT_BOOL, false, "true", NULL,
     "The older name of tombstones_on_delete; set one or the other."},
    {"skipped_operations", TM_OPT_STRING, false, TM_DBZ_SKIPPED_DEFAULT, NULL,
     "Debezium skipped.operations: operations not written, any of c, u, d, t separated by "
     "commas, or none."},
    {"schemas", TM_OPT_BOOL, false, "true", NULL,
     "Include the Kafka Connect schema part in keys and values (schemas.enable)."},
    TM_JSONL_DBZ_OPTIONS,
    {"provide_transaction_metadata", TM_OPT_BOOL, false, "false", NULL,
     "Debezium provide.transaction.metadata (debezium-json): BEGIN/END events on "
     "<source>.transaction and a transaction block in every event."},
    {"topic_transaction", TM_OPT_STRING, false, "transaction", NULL,
     "Debezium topic.transaction: the last part of the transaction topic's name."},
    {"heartbeat_interval_ms", TM_OPT_INT, false, "0", NULL,
     "Debezium heartbeat.interval.ms: send a heartbeat this often; 0 sends none."},
    {"topic_heartbeat_prefix", TM_OPT_STRING, false, TM_DBZ_HEARTBEAT_PREFIX, NULL,
     "Debezium topic.heartbeat.prefix: heartbeats go to <this>.<source>."},
    {"decimal_handling", TM_OPT_ENUM, false, "precise", "precise|string|double",
     "Debezium decimal.handling.mode; defaults to the source's setting."},
    {"time_precision", TM_OPT_ENUM, false, "adaptive", "adaptive|connect",
     "Debezium time.precision.mode; defaults to the source's setting."},
    {"compression", TM_OPT_ENUM, false, "none", "none|gzip|snappy|lz4|zstd",
     "Compression of message batches (librdkafka compression.codec)."},
    {"linger_ms", TM_OPT_INT, false, NULL, NULL,
     "How long the producer waits to fill a batch, in ms (librdkafka linger.ms; its default "
     "is 5)."},
    {"create_topics", TM_OPT_BOOL, false, "true", NULL,
     "Create missing topics (and the progress topic) with the AdminAPI."},
    {"topic_partitions", TM_OPT_INT, false, "-1", NULL,
     "Partitions of topics the sink creates; -1 takes the broker's num.partitions."},
    {"topic_replication", TM_OPT_INT, false, "-1", NULL,
     "Replication factor of topics the sink creates; -1 takes the broker's "
     "default.replication.factor."},
    {"unavailable_timeout", TM_OPT_DURATION, false, "5min", NULL,
     "How long the sink waits for unreachable brokers before the job stops with a connection "
     "error (nothing unacknowledged is lost); 0 waits forever."},
    {NULL, 0, false, NULL, NULL, NULL},
};

/* ---- at-least-once acknowledgement by delivery reports (thread: sink) ---- */

/* Opens write number ++writes, held until ack_done(its number) at its end. */
static int ack_begin(tm_sink_t *s)
{
    if (s->ack_len == s->ack_cap) {
        uint32_t ncap = s->ack_cap ? s->ack_cap * 2 : 64;
        uint32_t *n = malloc(sizeof(*n) * ncap);
        if (n == NULL)
            return TM_ENOMEM;
        for (uint32_t i = 0; i < s->ack_len; i++)
            n[i] = s->ack_rem[(s->ack_head + i) % s->ack_cap];
        free(s->ack_rem);
        s->ack_rem = n;
        s->ack_cap = ncap;
        s->ack_head = 0;
    }
    if (s->ack_len == 0)
        s->ack_base = s->writes + 1;
    s->ack_rem[(s->ack_head + s->ack_len++) % s->ack_cap] = 1;
    s->writes++;
    return 0;
}

/* One message of write `w` was delivered (or the write finished producing). */
static void ack_done(tm_sink_t *s, uint64_t w)
{
    if (w == 0 || w < s->ack_base || w - s->ack_base >= s->ack_len)
        return; /* exactly-once, or not tracked */
    uint32_t *rem = &s->ack_rem[(s->ack_head + (w - s->ack_base)) % s->ack_cap];
    if (NEVER(*rem == 0))
        return;
    (*rem)--;
    while (s->ack_len > 0 && s->ack_rem[s->ack_head] == 0) {
        s->ack_head = (s->ack_head + 1) % s->ack_cap;
        s->ack_len--;
        s->ack_base++;
    }
}

/* ---- librdkafka callbacks (thread: whichever calls rd_kafka_poll/flush) ---- */

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    tm_sink_t *s = opaque;
    (void)rk;
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        s->delivered++;
        ack_done(s, (uint64_t)(uintptr_t)m->_private);
        return;
    }
    if (s->purging && (m->err == RD_KAFKA_RESP_ERR__PURGE_QUEUE ||
                       m->err == RD_KAFKA_RESP_ERR__PURGE_INFLIGHT))
        return;
    if (s->dr_failed++ == 0) {
        s->dr_err = m->err;
        snprintf(s->dr_topic, sizeof(s->dr_topic), "%s",
                 m->rkt ? rd_kafka_topic_name(m->rkt) : "?");
    }
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    tm_sink_t *s = opaque;
    (void)rk;
    (void)reason; /* librdkafka's log callback has already said it. */
    s->last_error = (rd_kafka_resp_err_t)err;
}

/* ---- helpers ---- */

static const char *opt_or(const tm_options_t *o, const char *name, const char *def)
{
    const char *v = tm_opt_str(o, name);
    return v ? v : def;
}

/* Sets a property unless the job set it itself with `kafka.<name>`. */
static int conf_default(tm_sink_t *s, const char *name, const char *value, char *errstr,
                        size_t errstr_size)
{
    char key[256];
    snprintf(key, sizeof(key), TM_KAFKA_PREFIX "%s", name);
    if (tm_options_lookup(s->opts, key) != NULL)
        return 0;
    return tm_kafka_conf_set(s->conf, s->name, name, value, errstr, errstr_size);
}

/* A convenience option and the librdkafka properties it stands for may not both be set. */
static int conflict(tm_sink_t *s, const char *opt, const char *const *props, char *errstr,
                    size_t errstr_size)
{
    if (!tm_opt_isset(s->opts, opt))
        return 0;
    for (; *props; props++) {
        char key[256];
        snprintf(key, sizeof(key), TM_KAFKA_PREFIX "%s", *props);
        if (tm_options_lookup(s->opts, key) != NULL)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': both '%s' and '%s' are set; they mean the same "
                             "librdkafka property, so keep one",
                             s->name, opt, key);
    }
    return 0;
}

bool tm__ks_is_fenced(rd_kafka_resp_err_t err)
{
    return err == RD_KAFKA_RESP_ERR__FENCED || err == RD_KAFKA_RESP_ERR_PRODUCER_FENCED ||
           err == RD_KAFKA_RESP_ERR_INVALID_PRODUCER_EPOCH;
}

int tm__ks_fatal(tm_sink_t *s, rd_kafka_resp_err_t err, const char *what, char *errstr,
                 size_t errstr_size)
{
    char reason[512] = "";
    rd_kafka_resp_err_t fe =
        s->rk ? rd_kafka_fatal_error(s->rk, reason, sizeof(reason)) : RD_KAFKA_RESP_ERR_NO_ERROR;
    if (fe != RD_KAFKA_RESP_ERR_NO_ERROR)
        err = fe;
    else
        snprintf(reason, sizeof(reason), "%s", rd_kafka_err2str(err));
    s->failed_fatal = true;
    int64_t open_ms = s->txn_open ? tm_mono_ms() - s->txn_began_ms : 0;
    if (s->eos && tm__ks_is_fenced(err) && open_ms >= s->txn_timeout_ms)
        /* The coordinator aborts a timed-out transaction and bumps the epoch: it looks fenced. */
        return tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                         "sink '%s': Kafka aborted the transaction of transactional id '%s' after "
                         "it was open %" PRId64 " s, past transaction.timeout.ms (%" PRId64
                         " ms), and fenced this producer (%s); the brokers were unreachable or "
                         "the checkpoint was delayed that long. The job stops, and a restart "
                         "resumes from the last completed checkpoint",
                         s->name, s->txn_id, open_ms / 1000, s->txn_timeout_ms, reason);
    if (s->eos && tm__ks_is_fenced(err))
        return tm_seterr(errstr, errstr_size, TM_ESINK,
                         "sink '%s': another tidemark instance with transactional id '%s' took "
                         "over (fenced); this instance stops. Run each job once, or give a "
                         "second copy its own transactional_id_prefix",
                         s->name, s->txn_id);
    if (err == RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        return tm_seterr(errstr, errstr_size, TM_ESINK,
                         "sink '%s': Kafka refused transactional id '%s' (%s); grant the "
                         "principal WRITE and DESCRIBE on TransactionalId prefix '%s'",
                         s->name, s->txn_id ? s->txn_id : "", reason,
                         opt_or(s->opts, "transactional_id_prefix", "tidemark"));
    return tm_seterr(errstr, errstr_size, TM_ESINK,
                     "sink '%s': the Kafka producer failed fatally while %s: %s (%s); the job "
                     "stops, and a restart resumes from the last %s",
                     s->name, what, rd_kafka_err2name(err), reason,
                     s->eos ? "completed checkpoint" : "acknowledged position");
}

int tm__ks_stopped(tm_sink_t *s, const char *what, char *errstr, size_t errstr_size)
{
    return tm_seterr(errstr, errstr_size, TM_ESTOPPED,
                     "sink '%s': a stop was requested while %s at start; the job did not run",
                     s->name, what);
}

/*
 * One round of waiting for Kafka: polls (serving delivery reports), warns at
 * most every KS_WARN_EVERY_MS, and gives up after `limit_ms` (0: never).
 */
static int stall(tm_sink_t *s, int64_t since, int64_t limit_ms, const char *what, char *errstr,
                 size_t errstr_size)
{
    if (s->opening && tm_shutdown_requested())
        return tm__ks_stopped(s, what, errstr, errstr_size);
    rd_kafka_poll(s->rk, 100);
    if (rd_kafka_fatal_error(s->rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return tm__ks_fatal(s, RD_KAFKA_RESP_ERR__FATAL, what, errstr, errstr_size);
    int64_t now = tm_mono_ms();
    const char *last = s->last_error ? rd_kafka_err2str(s->last_error) : "none";
    if (now - since >= 2000 && now - s->last_warn_ms >= KS_WARN_EVERY_MS) {
        s->last_warn_ms = now;
        TM_WARN(TM_KS_COMP, "waiting for Kafka",
                "sink=%s waiting_for=\"%s\" waited_s=%" PRId64
                " queued=%d brokers=\"%s\" last_error=\"%s\"",
                s->name, what, (now - since) / 1000, rd_kafka_outq_len(s->rk), s->bootstrap,
                last);
    }
    if (limit_ms > 0 && now - since >= limit_ms)
        return tm_seterr(errstr, errstr_size, TM_ECONN,
                         "sink '%s': Kafka (%s) did not respond for %" PRId64
                         " s while %s (last error: %s); the job stops without acknowledging "
                         "what was not delivered, so a restart re-sends it. Check the brokers, "
                         "or raise unavailable_timeout",
                         s->name, s->bootstrap, (now - since) / 1000, what, last);
    return 0;
}

static int delivery_error(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    rd_kafka_resp_err_t e = s->dr_err;
    if (rd_kafka_fatal_error(s->rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR || tm__ks_is_fenced(e))
        return tm__ks_fatal(s, e, "delivering messages", errstr, errstr_size);
    if (s->eos && e == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        /* The transaction's time ran out: an outage or a stall, not the settings. */
        return tm_seterr(errstr, errstr_size, TM_ECONN,
                         "sink '%s': Kafka (%s) did not acknowledge %" PRIu64
                         " message(s) of the open transaction, the first for topic '%s', "
                         "within its transaction.timeout.ms (%" PRId64
                         " ms; last error: %s): the brokers were unreachable or too slow for "
                         "that long. The transaction is aborted, the job stops, and a restart "
                         "resumes from the last completed checkpoint",
                         s->name, s->bootstrap, s->dr_failed, s->dr_topic, s->txn_timeout_ms,
                         s->last_error ? rd_kafka_err2str(s->last_error) : "none");
    const char *hint = "";
    if (e == RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE)
        hint = "; raise the topic's max.message.bytes and 'kafka.message.max.bytes'";
    else if (e == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED)
        hint = "; grant the principal WRITE on the topic";
    else if (e == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT)
        hint = "; 'kafka.message.timeout.ms' was set, so messages may time out";
    return tm_seterr(errstr, errstr_size, TM_ESINK,
                     "sink '%s': Kafka did not accept %" PRIu64
                     " message(s), the first for topic '%s': %s (%s)%s; the job stops and "
                     "nothing undelivered is acknowledged",
                     s->name, s->dr_failed, s->dr_topic, rd_kafka_err2str(e),
                     rd_kafka_err2name(e), hint);
}

/* ---- topics ---- */

/*
 * Waits for the cluster's metadata (all topics: asking for one would let a
 * broker with auto.create.topics.enable create it with its defaults).  *md
 * must be destroyed by the caller.
 */
static int metadata(tm_sink_t *s, const struct rd_kafka_metadata **md, char *errstr,
                    size_t errstr_size)
{
    int64_t since = tm_mono_ms();
    int64_t limit = s->unavailable_ms;
    if (s->opening && (limit == 0 || limit > KS_OPEN_TIMEOUT_MS))
        limit = KS_OPEN_TIMEOUT_MS;
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_metadata(s->rk, 1, NULL, md, 5000);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        s->last_error = err;
        int rc = stall(s, since, limit, "reading the cluster's metadata", errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
}

static int unreachable(tm_sink_t *s, const char *topic, char *errstr, size_t errstr_size)
{
    return tm_seterr(errstr, errstr_size, TM_ECONN,
                     "sink '%s': cannot reach Kafka at '%s'%s%s%s (%s); check "
                     "bootstrap_servers and the kafka.security.protocol, kafka.sasl.* and "
                     "kafka.ssl.* settings",
                     s->name, s->bootstrap, topic[0] ? " to look up topic '" : "", topic,
                     topic[0] ? "'" : "",
                     s->last_error ? rd_kafka_err2str(s->last_error) : "timed out");
}

/*
 * Waits until a topic just created shows in the cluster's metadata with a
 * leader for every partition.  Creation is asynchronous: produced at once,
 * librdkafka may find the topic unknown, hold the messages, and fail them
 * with "Unknown topic" when topic.metadata.propagation.max.ms runs out.
 * After KS_OPEN_TIMEOUT_MS it goes on with a warning; a delivery failure
 * then stops the job with the topic's name (tm_kafka_sink_poll).
 */
static int topic_ready(tm_sink_t *s, const char *name, char *errstr, size_t errstr_size)
{
    int64_t since = tm_mono_ms();
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        int rc = metadata(s, &md, errstr, errstr_size);
        if (rc != 0)
            return rc == TM_ECONN ? unreachable(s, name, errstr, errstr_size) : rc;
        bool ready = false;
        for (int i = 0; i < md->topic_cnt; i++) {
            const struct rd_kafka_metadata_topic *t = &md->topics[i];
            if (strcmp(t->topic, name) != 0)
                continue;
            ready = t->err == RD_KAFKA_RESP_ERR_NO_ERROR && t->partition_cnt > 0;
            for (int p = 0; ready && p < t->partition_cnt; p++)
                ready = t->partitions[p].err == RD_KAFKA_RESP_ERR_NO_ERROR &&
                        t->partitions[p].leader >= 0;
        }
        rd_kafka_metadata_destroy(md);
        if (ready)
            return 0;
        if (tm_mono_ms() - since >= KS_OPEN_TIMEOUT_MS) {
            TM_WARN(TM_KS_COMP, "topic not ready",
                    "sink=%s topic=%s waited_s=%d detail=\"the new topic has no leader in the "
                    "cluster's metadata yet; producing anyway\"",
                    s->name, name, KS_OPEN_TIMEOUT_MS / 1000);
            return 0;
        }
        rd_kafka_poll(s->rk, 100);
    }
}

int tm__ks_ensure_topic(tm_sink_t *s, const char *name, bool compact, int partitions,
                        char *errstr, size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    int rc = metadata(s, &md, errstr, errstr_size);
    if (rc != 0)
        return rc == TM_ECONN ? unreachable(s, name, errstr, errstr_size) : rc;
    bool exists = false;
    for (int i = 0; i < md->topic_cnt && !exists; i++)
        exists = strcmp(md->topics[i].topic, name) == 0 &&
                 md->topics[i].err != RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART;
    rd_kafka_metadata_destroy(md);
    if (exists)
        return 0;
    if (!s->create_topics)
        return tm_seterr(errstr, errstr_size, TM_ESINK,
                         "sink '%s': topic '%s' does not exist and create_topics = false; create "
                         "it, or set create_topics = true",
                         s->name, name);

    char why[512];
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(name, partitions, s->replication, why, sizeof(why));
    if (nt == NULL)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "sink '%s': cannot describe topic '%s' to create (%s); check "
                         "topic_partitions and topic_replication",
                         s->name, name, why);
    if (compact)
        rd_kafka_NewTopic_set_config(nt, "cleanup.policy", "compact");
    rd_kafka_AdminOptions_t *ao = rd_kafka_AdminOptions_new(s->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(ao, 30000, why, sizeof(why));
    rd_kafka_AdminOptions_set_request_timeout(ao, 30000, why, sizeof(why));
    rd_kafka_queue_t *q = rd_kafka_queue_new(s->rk);
    rd_kafka_CreateTopics(s->rk, &nt, 1, ao, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 70000);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    snprintf(why, sizeof(why), "no answer from the cluster");
    const rd_kafka_CreateTopics_result_t *res = ev ? rd_kafka_event_CreateTopics_result(ev) : NULL;
    if (ev != NULL && rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        err = rd_kafka_event_error(ev);
        snprintf(why, sizeof(why), "%s", rd_kafka_event_error_string(ev));
    } else if (res != NULL) {
        size_t cnt = 0;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);
        if (cnt == 1) {
            err = rd_kafka_topic_result_error(tr[0]);
            const char *es = rd_kafka_topic_result_error_string(tr[0]);
            snprintf(why, sizeof(why), "%s", es ? es : rd_kafka_err2str(err));
        }
    }
    if (ev != NULL)
        rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(ao);
    rd_kafka_NewTopic_destroy(nt);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR) {
        TM_INFO(TM_KS_COMP, "created topic",
                "sink=%s topic=%s partitions=%d replication=%d cleanup_policy=%s", s->name, name,
                partitions, s->replication, compact ? "compact" : "delete");
        return topic_ready(s, name, errstr, errstr_size);
    }
    if (err == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS)
        return topic_ready(s, name, errstr, errstr_size); /* created meanwhile elsewhere */
    return tm_seterr(errstr, errstr_size,
                     err == RD_KAFKA_RESP_ERR__TIMED_OUT || err == RD_KAFKA_RESP_ERR__TRANSPORT
                         ? TM_ECONN
                         : TM_ESINK,
                     "sink '%s': cannot create topic '%s': %s (%s); create it yourself, grant "
                     "the principal CREATE, or check topic_partitions and topic_replication",
                     s->name, name, why, rd_kafka_err2name(err));
}

int tm__ks_topic(tm_sink_t *s, const char *name, char *errstr, size_t errstr_size)
{
    for (uint32_t i = 0; i < s->ntopics; i++)
        if (strcmp(s->topics[i].name, name) == 0)
            return (int)i;
    if (name[0] == '\0' || strlen(name) > 249 || strcmp(name, ".") == 0 ||
        strcmp(name, "..") == 0)
        return tm_seterr(errstr, errstr_size, TM_ESINK,
                         "sink '%s': '%s' is not a valid Kafka topic name (1 to 249 characters, "
                         "not '.' or '..'); change the 'topic' template",
                         s->name, name);
    int rc = tm__ks_ensure_topic(s, name, false, s->partitions, errstr, errstr_size);
    if (rc != 0)
        return rc;
    if (s->ntopics == s->captopics) {
        uint32_t ncap = s->captopics ? s->captopics * 2 : 8;
        tm_ks_topic_t *p = realloc(s->topics, sizeof(*p) * ncap);
        if (p == NULL)
            return TM_ENOMEM;
        s->topics = p;
        s->captopics = ncap;
    }
    tm_ks_topic_t *t = &s->topics[s->ntopics];
    t->name = strdup(name);
    t->rkt = rd_kafka_topic_new(s->rk, name, NULL);
    if (t->name == NULL || t->rkt == NULL) {
        free(t->name);
        return tm_seterr(errstr, errstr_size, TM_ESINK,
                         "sink '%s': librdkafka cannot open topic '%s' (%s)", s->name, name,
                         rd_kafka_err2str(rd_kafka_last_error()));
    }
    return (int)s->ntopics++;
}

/* ---- producing ---- */

static int produce(tm_sink_t *s, rd_kafka_topic_t *rkt, const char *key, size_t klen, bool has_key,
                   const char *val, size_t vlen, bool has_val, const char *hdr, const char *hval,
                   size_t hlen, char *errstr, size_t errstr_size)
{
    rd_kafka_vu_t vu[6];
    size_t n = 0;
    memset(vu, 0, sizeof(vu));
    vu[n].vtype = RD_KAFKA_VTYPE_RKT;
    vu[n++].u.rkt = rkt;
    if (has_key) {
        vu[n].vtype = RD_KAFKA_VTYPE_KEY;
        vu[n].u.mem.ptr = (void *)key;
        vu[n++].u.mem.size = klen;
    }
    if (has_val) {
        vu[n].vtype = RD_KAFKA_VTYPE_VALUE;
        vu[n].u.mem.ptr = (void *)val;
        vu[n++].u.mem.size = vlen;
    }
    vu[n].vtype = RD_KAFKA_VTYPE_MSGFLAGS;
    vu[n++].u.i = RD_KAFKA_MSG_F_COPY;
    if (s->producing != 0) {
        /* At-least-once: the write it belongs to, for its delivery report. */
        vu[n].vtype = RD_KAFKA_VTYPE_OPAQUE;
        vu[n++].u.ptr = (void *)(uintptr_t)s->producing;
    }
    if (hdr != NULL) {
        vu[n].vtype = RD_KAFKA_VTYPE_HEADER;
        vu[n].u.header.name = hdr;
        vu[n].u.header.val = hval;
        vu[n++].u.header.size = (ssize_t)hlen;
    }
    int64_t since = 0;
    for (;;) {
        rd_kafka_error_t *e = rd_kafka_produceva(s->rk, vu, n);
        if (e == NULL) {
            s->produced++;
            if (s->producing != 0) /* its write waits for this message's delivery too */
                s->ack_rem[(s->ack_head + (s->producing - s->ack_base)) % s->ack_cap]++;
            return 0;
        }
        rd_kafka_resp_err_t code = rd_kafka_error_code(e);
        bool fatal = rd_kafka_error_is_fatal(e);
        rd_kafka_error_destroy(e);
        if (code == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            /* Back-pressure: the producer holds queue.buffering.max.* already. */
            if (since == 0)
                since = tm_mono_ms();
            int rc = stall(s, since, s->unavailable_ms, "room in the producer queue", errstr,
                           errstr_size);
            if (rc != 0)
                return rc;
            continue;
        }
        if (fatal || code == RD_KAFKA_RESP_ERR__FATAL)
            return tm__ks_fatal(s, code, "producing", errstr, errstr_size);
        if (code == RD_KAFKA_RESP_ERR__STATE && s->eos)
            return tm__ks_fatal(s, code, "producing into the transaction", errstr, errstr_size);
        return tm_seterr(errstr, errstr_size, TM_ESINK,
                         "sink '%s': cannot produce to topic '%s': %s (%s)", s->name,
                         rd_kafka_topic_name(rkt), rd_kafka_err2str(code), rd_kafka_err2name(code));
    }
}

int tm__ks_produce_raw(tm_sink_t *s, rd_kafka_topic_t *rkt, const char *key, size_t klen,
                       const char *val, size_t vlen, char *errstr, size_t errstr_size)
{
    return produce(s, rkt, key, klen, key != NULL, val, vlen, val != NULL, NULL, NULL, 0, errstr,
                   errstr_size);
}

int tm__ks_produce_all(tm_sink_t *s, const tm_ks_msgs_t *m, char *errstr, size_t errstr_size)
{
    const char *d = m->data.data;
    for (uint32_t i = 0; i < m->n; i++) {
        const tm_ks_msg_t *msg = &m->msgs[i];
        int rc = produce(s, s->topics[msg->topic].rkt, d + msg->key_off, msg->key_len,
                         msg->key_len != TM_KS_NULL, d + msg->val_off, msg->val_len,
                         msg->val_len != TM_KS_NULL, msg->hdr, d + msg->hdr_off,
                         msg->hdr_len == TM_KS_NULL ? 0 : msg->hdr_len, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    rd_kafka_poll(s->rk, 0);
    return 0;
}

int tm__ks_flush(tm_sink_t *s, const char *why, char *errstr, size_t errstr_size)
{
    int64_t since = tm_mono_ms();
    for (;;) {
        rd_kafka_resp_err_t err = rd_kafka_flush(s->rk, 500);
        if (s->dr_failed > 0)
            return delivery_error(s, errstr, errstr_size);
        if (rd_kafka_fatal_error(s->rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
            return tm__ks_fatal(s, RD_KAFKA_RESP_ERR__FATAL, why, errstr, errstr_size);
        if (err == RD_KAFKA_RESP_ERR_NO_ERROR)
            return 0;
        int rc = stall(s, since, s->unavailable_ms, why, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
}

/* ---- the connector hooks ---- */

void tm_kafka_sink_free(tm_sink_t *s)
{
    if (s == NULL)
        return;
    if (s->rk != NULL) {
        tm__ks_txn_close(s);
        /* Whatever is still queued was never acknowledged: the source re-sends it. */
        s->purging = true;
        rd_kafka_purge(s->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
        rd_kafka_poll(s->rk, 0);
        for (uint32_t i = 0; i < s->ntopics; i++)
            rd_kafka_topic_destroy(s->topics[i].rkt);
        rd_kafka_destroy(s->rk);
    }
    for (uint32_t i = 0; i < s->ntopics; i++)
        free(s->topics[i].name);
    free(s->topics);
    if (s->conf != NULL)
        rd_kafka_conf_destroy(s->conf);
    tm_schema_unref((tm_schema_t *)s->last_schema);
    tm_schema_unref(s->row_schema_of);
    json_decref(s->row_schema);
    tm_dbz_encoder_free(s->enc);
    tm_dbz_txmon_free(s->txmon);
    free(s->tx_suffix);
    free(s->hb_prefix);
    free(s->last_prefix);
    tm__ks_msgs_release(&s->out);
    tm__ks_msgs_release(&s->held);
    free(s->ack_rem);
    free(s->topic_tmpl);
    free(s->bootstrap);
    free(s->txn_id);
    free(s->progress_topic);
    free(s->progress_key);
    free(s->job);
    free(s->name);
    free(s);
}

int tm_kafka_sink_new(tm_sink_t **out, const tm_sink_config_t *cfg, char *errstr,
                      size_t errstr_size)
{
    *out = NULL;
    tm_sink_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return TM_ENOMEM;
    const tm_options_t *o = cfg->opts;
    s->opts = o;
    s->name = strdup(cfg->name);
    /* A runtime that does not name the job still gets a stable transactional id. */
    s->job = strdup(cfg->job && cfg->job[0] ? cfg->job : "job");
    tm__ks_msgs_init(&s->out);
    tm__ks_msgs_init(&s->held);
    const char *fmt = tm_opt_str(o, "format");
    s->format = !strcasecmp(fmt, "json")     ? TM_KS_JSON
                : !strcasecmp(fmt, "upsert") ? TM_KS_UPSERT
                                             : TM_KS_DEBEZIUM;
    s->tombstones = tm_opt_isset(o, "tombstones_on_delete") ? tm_opt_bool(o, "tombstones_on_delete")
                                                             : tm_opt_bool(o, "tombstones");
    s->schemas = tm_opt_bool(o, "schemas");
    s->create_topics = tm_opt_bool(o, "create_topics");
    s->partitions = (int)tm_opt_int(o, "topic_partitions");
    s->replication = (int)tm_opt_int(o, "topic_replication");
    s->unavailable_ms = tm_opt_duration_ms(o, "unavailable_timeout");
    s->eos = !strcasecmp(tm_opt_str(o, "delivery"), "exactly-once");
    s->topic_tmpl = strdup(tm_opt_str(o, "topic"));
    s->bootstrap = strdup(tm_opt_str(o, "bootstrap_servers"));
    int rc = 0;
    if (s->name == NULL || s->job == NULL || s->topic_tmpl == NULL || s->bootstrap == NULL) {
        rc = TM_ENOMEM;
        goto fail;
    }
    if ((s->partitions < 1 && s->partitions != -1) ||
        (s->replication < 1 && s->replication != -1)) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': topic_partitions and topic_replication must be -1 (the "
                       "broker's default) or at least 1",
                       s->name);
        goto fail;
    }
    if (s->unavailable_ms < 0) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': unavailable_timeout must not be negative", s->name);
        goto fail;
    }
    if (tm_opt_isset(o, "tombstones_on_delete") && tm_opt_isset(o, "tombstones")) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': set tombstones_on_delete or its older name tombstones, not "
                       "both",
                       s->name);
        goto fail;
    }
    if ((rc = tm_dbz_skipped_parse(tm_opt_str(o, "skipped_operations"), &s->skipped_ops, errstr,
                                   errstr_size)) != 0)
        goto fail;
    if ((rc = tm__ks_template_check(s->topic_tmpl, s->name, &s->tmpl_fixed, errstr,
                                    errstr_size)) != 0)
        goto fail;
    s->hb_interval_ms = tm_opt_int(o, "heartbeat_interval_ms");
    if (s->hb_interval_ms < 0) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': heartbeat_interval_ms = %lld is negative; use 0 (no "
                       "heartbeats) or a period in milliseconds",
                       s->name, (long long)s->hb_interval_ms);
        goto fail;
    }
    s->tx_suffix = strdup(tm_opt_str(o, "topic_transaction"));
    s->hb_prefix = strdup(tm_opt_str(o, "topic_heartbeat_prefix"));
    if (s->tx_suffix == NULL || s->hb_prefix == NULL) {
        rc = TM_ENOMEM;
        goto fail;
    }
    if (tm_opt_bool(o, "provide_transaction_metadata")) {
        if (s->format != TM_KS_DEBEZIUM) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': provide_transaction_metadata needs format = "
                           "'debezium-json' (the flat formats have no transaction block)",
                           s->name);
            goto fail;
        }
        if ((s->txmon = tm_dbz_txmon_new()) == NULL) {
            rc = TM_ENOMEM;
            goto fail;
        }
    }
    tm_dbz_opts_t dopts;
    tm_jsonl_dbz_opts(o, &dopts);
    if ((rc = tm_dbz_encoder_open(&dopts, &s->enc, errstr, errstr_size)) != 0)
        goto fail;

    /* librdkafka: bootstrap.servers and kafka.* first, so the job's own settings win. */
    if ((rc = tm_kafka_conf_new(o, s->name, TM_KS_COMP, &s->conf, errstr, errstr_size)) != 0)
        goto fail;
    static const char *const compression_props[] = {"compression.codec", "compression.type",
                                                     NULL};
    static const char *const linger_props[] = {"linger.ms", "queue.buffering.max.ms", NULL};
    if ((rc = conflict(s, "compression", compression_props, errstr, errstr_size)) != 0 ||
        (rc = conflict(s, "linger_ms", linger_props, errstr, errstr_size)) != 0)
        goto fail;
    char num[32], cid[512];
    snprintf(cid, sizeof(cid), "tidemark-%s-%s", s->job, s->name);
    /* Java clients and Debezium place keys with murmur2; so do we. */
    if ((rc = conf_default(s, "partitioner", "murmur2_random", errstr, errstr_size)) != 0 ||
        (rc = conf_default(s, "client.id", cid, errstr, errstr_size)) != 0)
        goto fail;
    /*
     * librdkafka would queue up to 1 GiB; 64 MiB keeps the daemon's memory
     * bounded, and a full queue is back-pressure (produce waits) anyway.
     */
    if ((rc = conf_default(s, "queue.buffering.max.kbytes", KS_QUEUE_KBYTES, errstr,
                           errstr_size)) != 0)
        goto fail;
    if (tm_opt_isset(o, "compression") || tm_options_lookup(o, "kafka.compression.type") == NULL)
        rc = conf_default(s, "compression.codec", tm_opt_str(o, "compression"), errstr,
                          errstr_size);
    if (rc == 0 && tm_opt_isset(o, "linger_ms")) {
        snprintf(num, sizeof(num), "%" PRId64, tm_opt_int(o, "linger_ms"));
        rc = tm_kafka_conf_set(s->conf, s->name, "linger.ms", num, errstr, errstr_size);
    }
    if (rc != 0)
        goto fail;
    if (s->eos) {
        rc = tm__ks_txn_configure(s, cfg, errstr, errstr_size);
    } else {
        /*
         * At-least-once: idempotence keeps retries from reordering or
         * duplicating within a run, and messages never time out, so an
         * outage stalls the job instead of losing data (invariant 1).
         */
        if ((rc = conf_default(s, "enable.idempotence", "true", errstr, errstr_size)) == 0)
            rc = conf_default(s, "message.timeout.ms", "0", errstr, errstr_size);
    }
    if (rc != 0)
        goto fail;
    rd_kafka_conf_set_opaque(s->conf, s);
    rd_kafka_conf_set_dr_msg_cb(s->conf, dr_cb);
    rd_kafka_conf_set_error_cb(s->conf, error_cb);
    *out = s;
    return 0;
fail:
    tm_kafka_sink_free(s);
    return rc;
}

int tm_kafka_sink_open(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    char why[512];
    s->rk = rd_kafka_new(RD_KAFKA_PRODUCER, s->conf, why, sizeof(why));
    if (s->rk == NULL)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': librdkafka refused the producer configuration: %s",
                         s->name, why);
    s->conf = NULL; /* rd_kafka_new took it */
    /* At start an unreachable cluster is reported soon, not after unavailable_timeout. */
    s->opening = true;
    int rc = 0;
    if (s->tmpl_fixed) {
        rc = tm__ks_topic(s, s->topic_tmpl, errstr, errstr_size);
    } else {
        const struct rd_kafka_metadata *md = NULL;
        if ((rc = metadata(s, &md, errstr, errstr_size)) == 0)
            rd_kafka_metadata_destroy(md);
        else if (rc == TM_ECONN)
            rc = unreachable(s, "", errstr, errstr_size);
    }
    if (rc >= 0 && s->eos)
        rc = tm__ks_ensure_topic(s, s->progress_topic, true, 1, errstr, errstr_size);
    s->opening = false;
    if (rc < 0)
        return rc;
    if (s->eos)
        TM_INFO(TM_KS_COMP, "sink ready",
                "sink=%s brokers=\"%s\" topic=\"%s\" format=%s delivery=exactly-once "
                "transactional_id=%s",
                s->name, s->bootstrap, s->topic_tmpl, tm_opt_str(s->opts, "format"), s->txn_id);
    else
        TM_INFO(TM_KS_COMP, "sink ready",
                "sink=%s brokers=\"%s\" topic=\"%s\" format=%s delivery=at-least-once", s->name,
                s->bootstrap, s->topic_tmpl, tm_opt_str(s->opts, "format"));
    return 0;
}

/* Appends one message (key and value JSON) to `m` for topic `name`. */
static int push_raw(tm_sink_t *s, tm_ks_msgs_t *m, const char *name, const tm_buf_t *k,
                    const tm_buf_t *v, char *errstr, size_t errstr_size)
{
    int t = tm__ks_topic(s, name, errstr, errstr_size);
    if (t < 0)
        return t;
    tm_ks_msgs_t one;
    tm__ks_msgs_init(&one);
    int rc = TM_ENOMEM;
    if (tm_buf_append(&one.data, k->data, k->len) == 0 &&
        tm_buf_append(&one.data, v->data, v->len) == 0) {
        one.msgs = calloc(1, sizeof(*one.msgs));
        if (one.msgs != NULL) {
            one.n = one.cap = 1;
            one.msgs[0].topic = (uint32_t)t;
            one.msgs[0].key_off = 0, one.msgs[0].key_len = (uint32_t)k->len;
            one.msgs[0].val_off = (uint32_t)k->len, one.msgs[0].val_len = (uint32_t)v->len;
            one.msgs[0].hdr_len = TM_KS_NULL;
            rc = tm__ks_msgs_append(m, &one);
        }
    }
    tm__ks_msgs_release(&one);
    return rc == 0 ? 0 : tm_seterr(errstr, errstr_size, rc, "sink '%s': out of memory", s->name);
}

/* The transaction events the monitor queued, as messages on <prefix>.<topic_transaction>. */
static int take_tx(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    if (s->txmon == NULL)
        return 0;
    tm_buf_t k, v, name;
    tm_buf_init(&k);
    tm_buf_init(&v);
    tm_buf_init(&name);
    int rc = tm_buf_appendf(&name, "%s.%s", s->last_prefix ? s->last_prefix : "tidemark",
                            s->tx_suffix) ? TM_ENOMEM : 0;
    while (rc == 0 && (rc = tm_dbz_txmon_take(s->txmon, s->schemas, &k, &v)) == 1) {
        rc = push_raw(s, &s->out, name.data, &k, &v, errstr, errstr_size);
        tm_buf_clear(&k);
        tm_buf_clear(&v);
    }
    tm_buf_release(&k);
    tm_buf_release(&v);
    tm_buf_release(&name);
    return rc;
}

/*
 * A heartbeat when one is due, appended to `m`.  Before any record the
 * source's name (the heartbeat topic's suffix and serverName) is not known.
 */
static int heartbeat(tm_sink_t *s, tm_ks_msgs_t *m, char *errstr, size_t errstr_size)
{
    int64_t now = tm_wall_us() / 1000;
    if (s->hb_interval_ms <= 0 || s->last_prefix == NULL)
        return 0;
    if (s->hb_last_ms == 0 || now - s->hb_last_ms < s->hb_interval_ms) {
        if (s->hb_last_ms == 0)
            s->hb_last_ms = now; /* the first period starts now, as Debezium's timer */
        return 0;
    }
    s->hb_last_ms = now;
    tm_buf_t k, v, name;
    tm_buf_init(&k);
    tm_buf_init(&v);
    tm_buf_init(&name);
    int rc = tm_buf_appendf(&name, "%s.%s", s->hb_prefix, s->last_prefix) ? TM_ENOMEM : 0;
    if (rc == 0)
        rc = tm_dbz_encode_heartbeat(s->last_prefix, now, s->schemas, &k, &v);
    if (rc == 0)
        rc = push_raw(s, m, name.data, &k, &v, errstr, errstr_size);
    tm_buf_release(&k);
    tm_buf_release(&v);
    tm_buf_release(&name);
    return rc;
}

int tm_kafka_sink_write(tm_sink_t *s, const tm_batch_t *batch, char *errstr, size_t errstr_size)
{
    tm__ks_msgs_clear(&s->out);
    for (uint32_t i = 0; i < batch->count; i++) {
        const tm_record_t *rec = &batch->recs[i];
        int t;
        const char *prefix = rec->schema && rec->schema->source_name ? rec->schema->source_name
                                                                     : "tidemark";
        if (s->last_prefix == NULL || strcmp(s->last_prefix, prefix) != 0) {
            free(s->last_prefix);
            if ((s->last_prefix = strdup(prefix)) == NULL)
                return tm_seterr(errstr, errstr_size, TM_ENOMEM, "sink '%s': out of memory",
                                 s->name);
        }
        if (s->txmon != NULL) {
            int rc = tm_dbz_txmon_record(s->txmon, rec);
            if (rc == 0)
                rc = take_tx(s, errstr, errstr_size);
            if (rc != 0)
                return rc;
        }
        if (rec->schema != NULL && rec->schema == s->last_schema && rec->op != TM_OP_MESSAGE) {
            t = (int)s->last_topic;
        } else {
            char name[512];
            tm__ks_topic_name(s, rec, name, sizeof(name));
            if ((t = tm__ks_topic(s, name, errstr, errstr_size)) < 0)
                return t;
            if (rec->op != TM_OP_MESSAGE && rec->schema != NULL) {
                tm_schema_unref((tm_schema_t *)s->last_schema);
                s->last_schema = tm_schema_ref(rec->schema);
                s->last_topic = (uint32_t)t;
            }
        }
        int rc = tm__ks_encode(s, rec, (uint32_t)t, &s->out, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    if (s->txmon != NULL) {
        tm_dbz_txmon_batch_end(s->txmon, batch->ack_token);
        int rc = take_tx(s, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    int hrc = heartbeat(s, &s->out, errstr, errstr_size);
    if (hrc != 0)
        return hrc;
    if (s->eos)
        return tm__ks_txn_write(s, &s->out, errstr, errstr_size);
    if (ack_begin(s) != 0)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "sink '%s': out of memory", s->name);
    s->producing = s->writes;
    int rc = tm__ks_produce_all(s, &s->out, errstr, errstr_size);
    s->producing = 0;
    ack_done(s, s->writes); /* every message of the write is queued: release its hold */
    return rc;
}

int tm_kafka_sink_flush(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    /*
     * Exactly-once: this only hurries delivery of the open transaction's
     * messages; they become visible when the checkpoint commits.
     */
    return tm__ks_flush(s, "waiting for acknowledgements", errstr, errstr_size);
}

/*
 * Between events: serves delivery reports, so a message Kafka refused fails
 * the job now (naming the topic) instead of at the next checkpoint, and
 * warns when queued messages make no progress (invariant 2).
 */
int tm_kafka_sink_poll(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    if (s->rk == NULL)
        return 0;
    /*
     * Heartbeats while idle, at-least-once only: they are produced outside
     * any write (no acknowledgement waits for them).  Exactly-once sends them
     * with writes only, since a transactional producer can send nothing
     * outside the checkpoint's transaction.
     */
    if (!s->eos && s->hb_interval_ms > 0) {
        tm_ks_msgs_t hb;
        tm__ks_msgs_init(&hb);
        int rc = heartbeat(s, &hb, errstr, errstr_size);
        if (rc == 0 && hb.n > 0)
            rc = tm__ks_produce_all(s, &hb, errstr, errstr_size);
        tm__ks_msgs_release(&hb);
        if (rc != 0)
            return rc;
    }
    rd_kafka_poll(s->rk, 0);
    if (s->dr_failed > 0)
        return delivery_error(s, errstr, errstr_size);
    if (rd_kafka_fatal_error(s->rk, NULL, 0) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return tm__ks_fatal(s, RD_KAFKA_RESP_ERR__FATAL, "delivering messages", errstr,
                            errstr_size);
    int64_t now = tm_mono_ms();
    int queued = rd_kafka_outq_len(s->rk);
    if (queued == 0 || s->delivered != s->poll_delivered || s->poll_since_ms == 0) {
        s->poll_delivered = s->delivered;
        s->poll_since_ms = now;
        return 0;
    }
    const char *last = s->last_error ? rd_kafka_err2str(s->last_error) : "none";
    if (now - s->poll_since_ms >= KS_WARN_EVERY_MS && now - s->last_warn_ms >= KS_WARN_EVERY_MS) {
        s->last_warn_ms = now;
        TM_WARN(TM_KS_COMP, "waiting for Kafka",
                "sink=%s waiting_for=\"deliveries\" waited_s=%" PRId64
                " queued=%d brokers=\"%s\" last_error=\"%s\"",
                s->name, (now - s->poll_since_ms) / 1000, queued, s->bootstrap, last);
    }
    if (s->unavailable_ms > 0 && now - s->poll_since_ms >= s->unavailable_ms)
        return tm_seterr(errstr, errstr_size, TM_ECONN,
                         "sink '%s': Kafka (%s) delivered nothing for %" PRId64
                         " s with %d message(s) queued (last error: %s); the job stops without "
                         "acknowledging what was not delivered, so a restart re-sends it. Check "
                         "the brokers, or raise unavailable_timeout",
                         s->name, s->bootstrap, (now - s->poll_since_ms) / 1000, queued, last);
    return 0;
}

/*
 * Without checkpoints, at-least-once: how many writes Kafka acknowledged in
 * full (every message of them, acks=all), so the runtime can acknowledge
 * their source positions while the producer keeps its queue full, rather
 * than emptying it with a blocking flush every sink_flush_interval.
 */
int tm_kafka_sink_acked(tm_sink_t *s, uint64_t *writes, char *errstr, size_t errstr_size)
{
    int rc = tm_kafka_sink_poll(s, errstr, errstr_size);
    if (rc != 0)
        return rc;
    *writes = s->ack_len > 0 ? s->ack_base - 1 : s->writes;
    return 0;
}
