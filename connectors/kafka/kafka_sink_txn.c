/*
 * kafka_sink_txn.c — exactly-once delivery: the Kafka sink as the job's
 * decision log (DESIGN §6).
 *
 * librdkafka cannot resume another producer's transaction: a new instance's
 * init_transactions() aborts whatever the old one left open.  So the Kafka
 * commit cannot be redone after a crash, and it must itself be the commit
 * point of a checkpoint.  Each epoch (the records between barriers N-1 and N)
 * is one Kafka transaction, and that transaction also carries a *progress
 * record* {job, checkpoint N, source positions} in the compacted progress
 * topic.  Whether N completed is then whatever Kafka says.
 *
 *     sink_decided   (main)  init_transactions: fences older instances and
 *                            aborts what they left open; then reads the
 *                            progress topic read_committed → *epoch = the
 *                            newest checkpoint committed for this job+sink
 *     sink_write     (sink)  produce into the open transaction (begun lazily)
 *     sink_precommit (sink)  barrier N: flush, every message acknowledged;
 *                            the transaction stays open
 *     sink_commit    (sink)  after chk-N/_metadata is written as pending:
 *                            produce the progress record, commit_transaction
 *     sink_recover   (main)  nothing to redo; remember the epoch
 *
 * The gap between pre-commit and commit.  After precommit(N) the sink thread
 * keeps receiving epoch N+1's records until the coordinator has written N's
 * metadata and commit(N) arrives.  A producer has one transaction at a time,
 * so those records are encoded into `held` (memory), and produced into the
 * N+1 transaction right after N commits.  The gap is normally the few
 * milliseconds a _metadata write takes, so `held` stays small; it is logged
 * when it passes 64 MiB.
 *
 *     (no txn) ──write──► open(N) ──precommit(N)──► pending(N) ──commit(N)──► (no txn)
 *                           ▲                         │ write: held            │
 *                           └──────── held produced ◄─┴────────────────────────┘
 *
 * Invariants:
 *   1. The progress record of N and N's data are in one transaction; a
 *      progress record is written for every checkpoint, even an empty one,
 *      so the log's last record always names the last completed checkpoint.
 *   2. commit(N) for an N already committed is a no-op (idempotent).
 *   3. Fencing and other fatal errors end the job at once, with a message;
 *      after one, no transactional call is made again (failed_fatal).
 *   4. Retriable errors are retried for a bounded time (twice the
 *      transaction timeout); abortable errors abort and fail the checkpoint,
 *      and recovery replays from the last completed one.
 *
 * Thread: as marked above; see kafka_sink_int.h for the hand-over rule.
 */
#include "kafka_sink_int.h"

#include "core/clock.h"
#include "core/error.h"
#include "core/log.h"
#include "core/shutdown.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* checkpoint_interval + this must stay below transaction.timeout.ms. */
#define KS_TXN_MARGIN_MS 10000
/* `held` above this many bytes is logged once per epoch. */
#define KS_HELD_WARN_BYTES (64u << 20)

int tm__ks_txn_configure(tm_sink_t *s, const tm_sink_config_t *cfg, char *errstr,
                         size_t errstr_size)
{
    const tm_options_t *o = s->opts;
    if (!cfg->checkpointing)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': delivery = 'exactly-once' commits one Kafka transaction "
                         "per checkpoint, so the job needs checkpoints: add SET "
                         "checkpoint_interval = '10s'; to the job, or use delivery = "
                         "'at-least-once'",
                         s->name);
    if (tm_options_lookup(o, "kafka.transactional.id") != NULL)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': set transactional_id_prefix instead of "
                         "'kafka.transactional.id'; tidemark derives the id "
                         "<prefix>-<job>-<sink> so that each sink fences only its own earlier "
                         "instances",
                         s->name);
    const char *prefix = tm_opt_str(o, "transactional_id_prefix");
    if (prefix == NULL || prefix[0] == '\0')
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': transactional_id_prefix must not be empty", s->name);
    bool fixed;
    int rc = tm__ks_template_check(tm_opt_str(o, "progress_topic"), s->name, &fixed, errstr,
                                   errstr_size);
    if (rc == 0 && !fixed)
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': progress_topic must be a plain topic name, not a template",
                       s->name);
    if (rc != 0)
        return rc;
    size_t n = strlen(prefix) + strlen(s->job) + strlen(s->name) + 3;
    s->txn_id = malloc(n);
    s->progress_topic = strdup(tm_opt_str(o, "progress_topic"));
    json_t *key = json_pack("{s:s,s:s}", "job", s->job, "sink", s->name);
    s->progress_key = key ? json_dumps(key, JSON_COMPACT) : NULL;
    json_decref(key);
    if (s->txn_id == NULL || s->progress_topic == NULL || s->progress_key == NULL)
        return TM_ENOMEM;
    snprintf(s->txn_id, n, "%s-%s-%s", prefix, s->job, s->name);
    if ((rc = tm_kafka_conf_set(s->conf, s->name, "transactional.id", s->txn_id, errstr,
                                errstr_size)) != 0)
        return rc;

    /* The timeout as librdkafka will use it: its default, or the job's kafka.* value. */
    char buf[64];
    size_t sz = sizeof(buf);
    if (rd_kafka_conf_get(s->conf, "transaction.timeout.ms", buf, &sz) != RD_KAFKA_CONF_OK)
        snprintf(buf, sizeof(buf), "60000");
    s->txn_timeout_ms = strtoll(buf, NULL, 10);
    int64_t chk = cfg->checkpoint_interval_ms;
    if (chk > 0 && chk + KS_TXN_MARGIN_MS >= s->txn_timeout_ms)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': checkpoint_interval (%" PRId64
                         " ms) plus a %d s margin must stay below the Kafka transaction timeout "
                         "transaction.timeout.ms (%" PRId64
                         " ms), or the broker aborts each transaction before its checkpoint can "
                         "commit it; lower SET checkpoint_interval, or raise "
                         "'kafka.transaction.timeout.ms' (at most the broker's "
                         "transaction.max.timeout.ms, 15 min by default)",
                         s->name, chk, KS_TXN_MARGIN_MS / 1000, s->txn_timeout_ms);
    return 0;
}

/* ---- transactional calls, with the error classes of librdkafka's transactional API ---- */

/*
 * Waits until a retriable transactional call may be tried again: bounded
 * backoff, a warning every 10 s, and a limit of twice the transaction
 * timeout (enough for an older instance's transaction to time out).
 */
static int retry_wait(tm_sink_t *s, int64_t since, int *attempt, const char *what,
                      rd_kafka_error_t *e, char *errstr, size_t errstr_size)
{
    if (!s->txn_inited && tm_shutdown_requested())
        return tm__ks_stopped(s, what, errstr, errstr_size);
    int64_t now = tm_mono_ms();
    int64_t limit = 2 * s->txn_timeout_ms;
    if (now - since >= limit)
        return tm_seterr(errstr, errstr_size, TM_ECONN,
                         "sink '%s': Kafka (%s) could not %s for %" PRId64
                         " s (%s); the job stops and a restart resumes from the last completed "
                         "checkpoint",
                         s->name, s->bootstrap, what, (now - since) / 1000,
                         rd_kafka_error_string(e));
    if (now - s->last_warn_ms >= 10000) {
        s->last_warn_ms = now;
        TM_WARN(TM_KS_COMP, "retrying", "sink=%s action=\"%s\" error=\"%s\" waited_s=%" PRId64,
                s->name, what, rd_kafka_error_string(e), (now - since) / 1000);
    }
    int ms = 100 << (*attempt < 6 ? *attempt : 6);
    (*attempt)++;
    rd_kafka_poll(s->rk, ms > 5000 ? 5000 : ms);
    return 0;
}

/* An error that is neither retriable nor abortable: fatal (fencing) or unexpected. */
static int txn_failed(tm_sink_t *s, rd_kafka_error_t *e, const char *what, char *errstr,
                      size_t errstr_size)
{
    rd_kafka_resp_err_t code = rd_kafka_error_code(e);
    if (rd_kafka_error_is_fatal(e) || tm__ks_is_fenced(code) ||
        code == RD_KAFKA_RESP_ERR__FATAL ||
        code == RD_KAFKA_RESP_ERR_TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        return tm__ks_fatal(s, code, what, errstr, errstr_size);
    /* librdkafka: treat errors without a class as fatal, and never call again. */
    s->failed_fatal = true;
    return tm_seterr(errstr, errstr_size, TM_ESINK,
                     "sink '%s': Kafka failed to %s for transactional id '%s': %s (%s); the job "
                     "stops and a restart resumes from the last completed checkpoint",
                     s->name, what, s->txn_id, rd_kafka_error_string(e), rd_kafka_err2name(code));
}

static int txn_init(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    if (s->txn_inited)
        return 0;
    if (s->failed_fatal)
        return tm_seterr(errstr, errstr_size, TM_ESINK, "sink '%s': the producer has failed",
                         s->name);
    int64_t since = tm_mono_ms();
    int attempt = 0;
    for (;;) {
        rd_kafka_error_t *e = rd_kafka_init_transactions(s->rk, 10000);
        if (e == NULL)
            break;
        int rc = 0;
        if (rd_kafka_error_is_retriable(e))
            rc = retry_wait(s, since, &attempt, "initialise transactions", e, errstr,
                            errstr_size);
        else
            rc = txn_failed(s, e, "initialise transactions", errstr, errstr_size);
        rd_kafka_error_destroy(e);
        if (rc != 0)
            return rc;
    }
    s->txn_inited = true;
    return 0;
}

static int txn_begin(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    if (s->txn_open)
        return 0;
    int rc = txn_init(s, errstr, errstr_size);
    if (rc != 0)
        return rc;
    rd_kafka_error_t *e = rd_kafka_begin_transaction(s->rk);
    if (e != NULL) {
        rc = txn_failed(s, e, "begin a transaction", errstr, errstr_size);
        rd_kafka_error_destroy(e);
        return rc;
    }
    s->txn_open = true;
    s->txn_began_ms = tm_mono_ms();
    return 0;
}

/* Aborts the open transaction; what it held is replayed by recovery. */
static void txn_abort(tm_sink_t *s, const char *why)
{
    if (!s->txn_open)
        return;
    s->txn_open = false;
    if (s->failed_fatal)
        return; /* a fenced producer may not call the API; the broker aborts it */
    s->purging = true;
    rd_kafka_error_t *e = rd_kafka_abort_transaction(s->rk, 10000);
    s->purging = false;
    s->dr_failed = 0;
    if (e != NULL) {
        TM_WARN(TM_KS_COMP, "could not abort the open transaction",
                "sink=%s transactional_id=%s reason=\"%s\" error=\"%s\" note=\"the next instance "
                "aborts it, or the broker after transaction.timeout.ms\"",
                s->name, s->txn_id, why, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        return;
    }
    TM_INFO(TM_KS_COMP, "aborted the open transaction",
            "sink=%s transactional_id=%s reason=\"%s\"", s->name, s->txn_id, why);
}

void tm__ks_txn_close(tm_sink_t *s)
{
    if (!s->eos)
        return;
    if (s->txn_open)
        txn_abort(s, s->pending ? "stopping before the checkpoint committed"
                                : "stopping: records after the last checkpoint are replayed");
}

/* ---- writing ---- */

int tm__ks_txn_write(tm_sink_t *s, const tm_ks_msgs_t *m, char *errstr, size_t errstr_size)
{
    if (m->n == 0)
        return 0;
    if (s->pending != 0) {
        /* Epoch pending+1: its transaction can begin only once pending commits. */
        int rc = tm__ks_msgs_append(&s->held, m);
        if (rc == 0 && !s->held_warned && s->held.data.len > KS_HELD_WARN_BYTES) {
            s->held_warned = true;
            TM_WARN(TM_KS_COMP, "holding records until the checkpoint commits",
                    "sink=%s checkpoint=%" PRIu64 " held_bytes=%zu held_messages=%u", s->name,
                    s->pending, s->held.data.len, s->held.n);
        }
        return rc == 0 ? 0 : tm_seterr(errstr, errstr_size, rc, "sink '%s': out of memory",
                                       s->name);
    }
    int rc = txn_begin(s, errstr, errstr_size);
    if (rc == 0)
        rc = tm__ks_produce_all(s, m, errstr, errstr_size);
    return rc;
}

/* ---- the checkpoint hooks ---- */

bool tm_kafka_sink_is_decision_log(const tm_sink_t *s)
{
    return s->eos;
}

int tm_kafka_sink_precommit(tm_sink_t *s, uint64_t epoch, tm_buf_t *handle, char *errstr,
                            size_t errstr_size)
{
    if (!s->eos)
        /* At-least-once under checkpoints: a barrier makes everything so far acknowledged. */
        return tm__ks_flush(s, "flushing at a checkpoint barrier", errstr, errstr_size);
    if (s->failed_fatal)
        return tm_seterr(errstr, errstr_size, TM_ESINK, "sink '%s': the producer has failed",
                         s->name);
    if (NEVER(s->pending != 0 && s->pending != epoch))
        return tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                         "sink '%s': checkpoint %" PRIu64
                         " reached the sink while checkpoint %" PRIu64
                         " still waits for its commit",
                         s->name, epoch, s->pending);
    char what[96];
    snprintf(what, sizeof(what), "pre-committing checkpoint %" PRIu64, epoch);
    int rc = tm__ks_flush(s, what, errstr, errstr_size);
    if (rc != 0) {
        txn_abort(s, "a message of the epoch was not delivered");
        return rc;
    }
    json_t *h = json_pack("{s:s,s:I,s:s}", "transactional_id", s->txn_id, "epoch",
                          (json_int_t)epoch, "progress_topic", s->progress_topic);
    char *text = h ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(h);
    if (text == NULL || tm_buf_puts(handle, text) != 0) {
        free(text);
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "sink '%s': out of memory", s->name);
    }
    free(text);
    s->pending = epoch;
    s->held_warned = false;
    return 0;
}

/* The progress record's value: the runtime's record plus who wrote it. */
static char *progress_value(tm_sink_t *s, uint64_t epoch, const char *progress, char *errstr,
                            size_t errstr_size)
{
    json_t *v;
    if (progress != NULL) {
        json_error_t jerr;
        v = json_loads(progress, 0, &jerr);
        if (!json_is_object(v)) {
            json_decref(v);
            tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                      "sink '%s': the progress record of checkpoint %" PRIu64
                      " is not a JSON object (%s)",
                      s->name, epoch, jerr.text);
            return NULL;
        }
    } else {
        v = json_pack("{s:s}", "job", s->job);
    }
    json_t *chk = json_object_get(v, "checkpoint");
    if (chk != NULL && (uint64_t)json_integer_value(chk) != epoch) {
        json_decref(v);
        tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                  "sink '%s': asked to commit checkpoint %" PRIu64
                  " with the progress record of checkpoint %" PRId64,
                  s->name, epoch, (int64_t)json_integer_value(chk));
        return NULL;
    }
    json_object_set_new(v, "checkpoint", json_integer((json_int_t)epoch));
    json_object_set_new(v, "sink", json_string(s->name));
    json_object_set_new(v, "transactional_id", json_string(s->txn_id));
    json_object_set_new(v, "committed_at_ms", json_integer((json_int_t)(tm_wall_us() / 1000)));
    char *text = json_dumps(v, JSON_COMPACT);
    json_decref(v);
    if (text == NULL)
        tm_seterr(errstr, errstr_size, TM_ENOMEM, "sink '%s': out of memory", s->name);
    return text;
}

int tm_kafka_sink_commit(tm_sink_t *s, uint64_t epoch, const char *progress, char *errstr,
                         size_t errstr_size)
{
    if (!s->eos)
        return 0;
    if (s->pending != epoch) {
        if (epoch == s->committed || (s->pending == 0 && epoch < s->committed))
            return 0; /* invariant 2 */
        return tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                         "sink '%s': asked to commit checkpoint %" PRIu64
                         ", which it has not pre-committed (pending: %" PRIu64 ")",
                         s->name, epoch, s->pending);
    }
    if (s->failed_fatal)
        return tm_seterr(errstr, errstr_size, TM_ESINK, "sink '%s': the producer has failed",
                         s->name);
    int rc = txn_begin(s, errstr, errstr_size); /* an empty epoch still records its progress */
    if (rc != 0)
        return rc;
    char *value = progress_value(s, epoch, progress, errstr, errstr_size);
    if (value == NULL) {
        txn_abort(s, "the progress record could not be built");
        return TM_ECHECKPOINT;
    }
    int t = tm__ks_topic(s, s->progress_topic, errstr, errstr_size);
    rc = t < 0 ? t
               : tm__ks_produce_raw(s, s->topics[t].rkt, s->progress_key, strlen(s->progress_key),
                                    value, strlen(value), errstr, errstr_size);
    free(value);
    if (rc != 0) {
        txn_abort(s, "the progress record could not be produced");
        return rc;
    }

    int64_t since = tm_mono_ms();
    int attempt = 0;
    for (;;) {
        /* -1: the transaction's remaining time, as librdkafka recommends. */
        rd_kafka_error_t *e = rd_kafka_commit_transaction(s->rk, -1);
        if (e == NULL)
            break;
        if (rd_kafka_error_txn_requires_abort(e)) {
            rc = tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                           "sink '%s': Kafka (%s) aborted the transaction of checkpoint %" PRIu64
                           " (%s); the job stops, and recovery replays from the last "
                           "completed checkpoint",
                           s->name, s->bootstrap, epoch, rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            txn_abort(s, "the commit failed");
            return rc;
        }
        if (rd_kafka_error_is_retriable(e))
            rc = retry_wait(s, since, &attempt, "commit a transaction", e, errstr, errstr_size);
        else
            rc = txn_failed(s, e, "commit the transaction", errstr, errstr_size);
        rd_kafka_error_destroy(e);
        if (rc != 0)
            return rc;
    }
    s->txn_open = false;
    s->pending = 0;
    s->committed = epoch;
    TM_DEBUG(TM_KS_COMP, "committed", "sink=%s checkpoint=%" PRIu64 " messages=%" PRIu64, s->name,
             epoch, s->produced);

    /* Epoch N+1's records that waited: they open the next transaction now. */
    if (s->held.n > 0) {
        TM_DEBUG(TM_KS_COMP, "producing held records", "sink=%s checkpoint=%" PRIu64
                 " messages=%u bytes=%zu", s->name, epoch + 1, s->held.n, s->held.data.len);
        rc = txn_begin(s, errstr, errstr_size);
        if (rc == 0)
            rc = tm__ks_produce_all(s, &s->held, errstr, errstr_size);
        tm__ks_msgs_clear(&s->held);
        if (s->held.cap > 4096) {
            /* Do not keep a burst's memory for the rest of the run. */
            tm__ks_msgs_release(&s->held);
            tm__ks_msgs_init(&s->held);
        }
    }
    return rc;
}

/* ---- the decision: reading the progress topic ---- */

/* The consumer that reads the progress topic takes only connection and security settings. */
static bool consumer_keeps(const char *prop)
{
    static const char *const prefixes[] = {
        "security.",   "sasl.",        "ssl.",           "ssl_",          "enable.ssl.",
        "enable.sasl.", "socket.",     "broker.",        "api.version",   "reconnect.",
        "debug",       "log",          "resolve.",       "client.dns.",   "connections.",
        "metadata.",   "topic.metadata.", "client.rack", "retry.backoff", NULL,
    };
    for (const char *const *p = prefixes; *p; p++)
        if (strncmp(prop, *p, strlen(*p)) == 0)
            return true;
    return false;
}

typedef struct progress_scan {
    int np;
    int64_t *hi;  /* per partition: the high watermark when the scan began */
    bool *done;
    int ndone;
    uint64_t checkpoint;
    int64_t best_ts; /* timestamp of the record `checkpoint` came from */
    bool found;
} progress_scan_t;

static void scan_message(tm_sink_t *s, progress_scan_t *ps, const rd_kafka_message_t *m)
{
    if (m->key_len != strlen(s->progress_key) ||
        memcmp(m->key, s->progress_key, m->key_len) != 0 || m->payload == NULL)
        return;
    json_t *v = json_loadb(m->payload, m->len, 0, NULL);
    json_t *chk = json_object_get(v, "checkpoint");
    if (json_is_integer(chk)) {
        /*
         * The last record of the key in offset order wins.  Should the topic
         * have gained partitions, the key's records may sit on two; the
         * newer timestamp wins then.
         */
        rd_kafka_timestamp_type_t tt;
        int64_t ts = rd_kafka_message_timestamp(m, &tt);
        if (!ps->found || ts >= ps->best_ts) {
            ps->checkpoint = (uint64_t)json_integer_value(chk);
            ps->best_ts = ts;
            ps->found = true;
        }
    }
    json_decref(v);
}

static int read_progress(tm_sink_t *s, uint64_t *out, char *errstr, size_t errstr_size)
{
    char why[512];
    rd_kafka_conf_t *conf = NULL;
    int rc = tm_kafka_conf_new_filtered(s->opts, s->name, consumer_keeps, &conf, errstr,
                                        errstr_size);
    if (rc != 0)
        return rc;
    char cid[600];
    snprintf(cid, sizeof(cid), "%s-progress", s->txn_id);
    static const char *const props[][2] = {
        {"isolation.level", "read_committed"}, {"enable.partition.eof", "true"},
        {"enable.auto.commit", "false"},       {"auto.offset.reset", "earliest"},
        {"enable.auto.offset.store", "false"},
    };
    for (size_t i = 0; rc == 0 && i < sizeof(props) / sizeof(props[0]); i++)
        rc = tm_kafka_conf_set(conf, s->name, props[i][0], props[i][1], errstr, errstr_size);
    /* librdkafka wants a group for assign(); it is never joined and nothing is committed. */
    if (rc == 0)
        rc = tm_kafka_conf_set(conf, s->name, "client.id", cid, errstr, errstr_size);
    if (rc == 0)
        rc = tm_kafka_conf_set(conf, s->name, "group.id", cid, errstr, errstr_size);
    if (rc != 0) {
        rd_kafka_conf_destroy(conf);
        return rc;
    }
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, why, sizeof(why));
    if (rk == NULL) {
        rd_kafka_conf_destroy(conf);
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "sink '%s': librdkafka refused the progress reader's configuration: %s",
                         s->name, why);
    }
    progress_scan_t ps;
    memset(&ps, 0, sizeof(ps));
    rd_kafka_topic_partition_list_t *parts = NULL;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, s->progress_topic, NULL);
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, rkt, &md, 30000);
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1)
        err = md->topics[0].err;
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc = tm_seterr(errstr, errstr_size, TM_ECONN,
                       "sink '%s': cannot look up the progress topic '%s' (%s); the principal "
                       "needs DESCRIBE and READ on it",
                       s->name, s->progress_topic, rd_kafka_err2str(err));
        goto done;
    }
    ps.np = md->topics[0].partition_cnt;
    ps.hi = calloc((size_t)ps.np + 1, sizeof(*ps.hi));
    ps.done = calloc((size_t)ps.np + 1, sizeof(*ps.done));
    parts = rd_kafka_topic_partition_list_new(ps.np > 0 ? ps.np : 1);
    if (ps.hi == NULL || ps.done == NULL || parts == NULL) {
        rc = TM_ENOMEM;
        goto done;
    }
    for (int i = 0; i < ps.np; i++) {
        int32_t p = md->topics[0].partitions[i].id;
        int64_t lo = 0, hi = 0;
        err = rd_kafka_query_watermark_offsets(rk, s->progress_topic, p, &lo, &hi, 30000);
        if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONN,
                           "sink '%s': cannot read the offsets of progress topic '%s' "
                           "partition %d (%s)",
                           s->name, s->progress_topic, (int)p, rd_kafka_err2str(err));
            goto done;
        }
        if (p >= 0 && p < ps.np)
            ps.hi[p] = hi;
        if (hi <= lo) {
            ps.done[p] = true;
            ps.ndone++;
        } else {
            rd_kafka_topic_partition_list_add(parts, s->progress_topic, p)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
        }
    }
    if (parts->cnt > 0 && (err = rd_kafka_assign(rk, parts)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        rc = tm_seterr(errstr, errstr_size, TM_ESINK,
                       "sink '%s': cannot read progress topic '%s' (%s)", s->name,
                       s->progress_topic, rd_kafka_err2str(err));
        goto done;
    }
    /*
     * Read to the high watermark seen at the start.  read_committed stops at
     * the last stable offset, so an open transaction of another job (the
     * topic is shared) holds us back until it ends, at most its
     * transaction.timeout.ms later.  Our own older instances' transactions
     * were settled by init_transactions already.
     */
    int64_t since = tm_mono_ms(), warned = since;
    int64_t limit = 2 * s->txn_timeout_ms + 30000;
    while (ps.ndone < ps.np) {
        if (tm_shutdown_requested()) {
            rc = tm__ks_stopped(s, "reading the progress topic", errstr, errstr_size);
            goto done;
        }
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        int64_t now = tm_mono_ms();
        if (m != NULL) {
            int32_t p = m->partition;
            bool known = p >= 0 && p < ps.np;
            if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
                scan_message(s, &ps, m);
                if (known && !ps.done[p] && m->offset + 1 >= ps.hi[p]) {
                    ps.done[p] = true;
                    ps.ndone++;
                }
            } else if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                if (known && !ps.done[p] && m->offset >= ps.hi[p]) {
                    ps.done[p] = true;
                    ps.ndone++;
                }
            } else if (m->err == RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED ||
                       m->err == RD_KAFKA_RESP_ERR__FATAL) {
                /* (A group error is no reason to stop: the group is never used.) */
                rc = tm_seterr(errstr, errstr_size, TM_ESINK,
                               "sink '%s': cannot read progress topic '%s': %s; the principal "
                               "needs READ on it",
                               s->name, s->progress_topic, rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
                goto done;
            }
            rd_kafka_message_destroy(m);
        }
        if (now - warned >= 10000) {
            warned = now;
            TM_WARN(TM_KS_COMP, "still reading the progress topic",
                    "sink=%s topic=%s waited_s=%" PRId64
                    " note=\"an open transaction of another producer on the topic holds "
                    "read_committed readers back until it ends\"",
                    s->name, s->progress_topic, (now - since) / 1000);
        }
        if (now - since >= limit) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONN,
                           "sink '%s': could not read progress topic '%s' to its end within "
                           "%" PRId64 " s; another producer's transaction may be stuck there, "
                           "or the brokers are unreachable",
                           s->name, s->progress_topic, limit / 1000);
            goto done;
        }
    }
    *out = ps.found ? ps.checkpoint : 0;
done:
    if (parts != NULL)
        rd_kafka_topic_partition_list_destroy(parts);
    if (md != NULL)
        rd_kafka_metadata_destroy(md);
    free(ps.hi);
    free(ps.done);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

int tm_kafka_sink_decided(tm_sink_t *s, uint64_t *epoch, char *errstr, size_t errstr_size)
{
    *epoch = 0;
    if (!s->eos)
        return 0;
    int rc = txn_init(s, errstr, errstr_size);
    if (rc == 0)
        rc = read_progress(s, &s->decided, errstr, errstr_size);
    if (rc != 0)
        return rc;
    s->decided_known = true;
    s->committed = s->decided;
    *epoch = s->decided;
    TM_INFO(TM_KS_COMP, "decision log read",
            "sink=%s transactional_id=%s progress_topic=%s last_committed_checkpoint=%" PRIu64,
            s->name, s->txn_id, s->progress_topic, s->decided);
    return 0;
}

int tm_kafka_sink_recover(tm_sink_t *s, uint64_t epoch, const char *handle, char *errstr,
                          size_t errstr_size)
{
    (void)handle; /* the decision was read from Kafka; there is nothing to redo */
    if (!s->eos)
        return 0;
    if (!s->decided_known) {
        /* A runtime that does not call sink_decided: fence and read the decision here. */
        uint64_t d;
        int rc = tm_kafka_sink_decided(s, &d, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    if (s->decided > 0 && epoch > s->decided)
        return tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                         "sink '%s': the state directory restores checkpoint %" PRIu64
                         ", but Kafka's progress topic '%s' says the last checkpoint this sink "
                         "committed is %" PRIu64
                         "; that checkpoint's Kafka transaction was aborted, so restoring it "
                         "would lose its output. The runtime must restore the checkpoint the "
                         "decision log names",
                         s->name, epoch, s->progress_topic, s->decided);
    if (epoch != s->decided)
        TM_WARN(TM_KS_COMP, "restoring a checkpoint the progress topic does not name",
                "sink=%s checkpoint=%" PRIu64 " progress_topic_checkpoint=%" PRIu64
                " note=\"%s\"",
                s->name, epoch, s->decided,
                s->decided == 0 ? "no progress record yet for this job and sink"
                                : "a new or older state directory: output after it may repeat");
    s->committed = epoch;
    return 0;
}
