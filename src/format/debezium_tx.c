/*
 * debezium_tx.c — Debezium's transaction metadata, heartbeats and topic
 * names, as its PostgreSQL connector writes them (see debezium.h).
 *
 * Role: the sink-side half of provide.transaction.metadata.  The source says
 * which transaction each record belongs to (xid) and where transactions
 * begin and end (tx_lsn, commit_lsn, a batch's ack_token: core/row.h); the
 * monitor turns that into BEGIN/END events and the per-event transaction
 * block, in Debezium's shapes (checked against Debezium 3.6.1 by
 * tests/compat/test_txmeta.py):
 *
 *     BEGIN  key {"id":"<xid>:<begin LSN>"}
 *            value {"status":"BEGIN","id":…,"event_count":null,
 *                   "data_collections":null,"ts_ms":<commit time>}
 *     event  "transaction":{"id":"<xid>:<event LSN>","total_order":n,
 *                           "data_collection_order":m}
 *     END    key {"id":"<xid>:<end LSN>"}
 *            value {"status":"END","id":…,"event_count":n,"data_collections":
 *                   [{"data_collection":"<schema>.<table>","event_count":k}…],
 *                   "ts_ms":<commit time>}
 *
 * Invariants:
 *   1. Per transaction: BEGIN is queued before any of its events' blocks is
 *      handed out, END after the last, and END before the next BEGIN.
 *   2. The queue holds at most two events (an END and the BEGIN after it);
 *      the caller empties it after each record and each batch.
 *   3. The data-collection table keeps the capacity Java's HashMap reached
 *      (HashMap.clear() keeps its table), so END arrays keep Debezium's order
 *      across transactions of a run.
 *
 * Thread: a monitor belongs to one sink thread.
 */
#include "format/debezium.h"

#include "core/error.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TX_MSG_COLLECTION                                                                          \
    "io.debezium.connector.postgresql.LogicalDecodingMessageMonitor$LogicalDecodingMessageId@"

typedef struct tx_dc {
    char *name;
    int32_t hash; /* java.lang.String.hashCode() of name */
    uint32_t seq; /* insertion order */
    int64_t count;
} tx_dc_t;

typedef struct tx_ev {
    bool end;
    char id[48];
    int64_t ts_ms;
    int64_t count;
    tx_dc_t *dcs; /* END: owned, in Debezium's order */
    uint32_t ndcs;
} tx_ev_t;

struct tm_dbz_txmon {
    bool open;
    uint32_t xid;
    int64_t ts_ms;
    uint64_t last_lsn; /* the open transaction's last record */
    int64_t total;
    tx_dc_t *dcs;
    uint32_t ndcs, capdcs, seq;
    uint32_t map_cap; /* the Java HashMap's table size (invariant 3) */
    tx_ev_t q[2];     /* invariant 2 */
    int nq;
};

tm_dbz_txmon_t *tm_dbz_txmon_new(void)
{
    tm_dbz_txmon_t *m = calloc(1, sizeof(*m));
    if (m != NULL)
        m->map_cap = 16;
    return m;
}

static void dcs_free(tx_dc_t *dcs, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++)
        free(dcs[i].name);
    free(dcs);
}

tm_dbz_txmon_t *tm_dbz_txmon_free(tm_dbz_txmon_t *m)
{
    if (m == NULL)
        return NULL;
    dcs_free(m->dcs, m->ndcs);
    for (int i = 0; i < m->nq; i++)
        dcs_free(m->q[i].dcs, m->q[i].ndcs);
    free(m);
    return NULL;
}

bool tm_dbz_txmon_open(const tm_dbz_txmon_t *m)
{
    return m->open;
}

/* java.lang.String.hashCode() over the UTF-16 units of a UTF-8 string. */
static int32_t java_hash(const char *s)
{
    uint32_t h = 0;
    size_t n = strlen(s);
    while (n > 0) {
        int k = tm_utf8_seq_len((const unsigned char *)s, n);
        uint32_t cp;
        if (k <= 0) {
            cp = 0xFFFD; /* Java's decoder: one U+FFFD per ill-formed prefix */
            k = -k > 0 ? -k : 1;
        } else if (k == 1) {
            cp = (unsigned char)s[0];
        } else if (k == 2) {
            cp = ((s[0] & 0x1Fu) << 6) | (s[1] & 0x3Fu);
        } else if (k == 3) {
            cp = ((s[0] & 0x0Fu) << 12) | ((s[1] & 0x3Fu) << 6) | (s[2] & 0x3Fu);
        } else {
            cp = ((s[0] & 0x07u) << 18) | ((s[1] & 0x3Fu) << 12) | ((s[2] & 0x3Fu) << 6) |
                 (s[3] & 0x3Fu);
        }
        if (cp >= 0x10000) {
            h = h * 31 + (0xD800 + ((cp - 0x10000) >> 10));
            h = h * 31 + (0xDC00 + ((cp - 0x10000) & 0x3FF));
        } else {
            h = h * 31 + cp;
        }
        s += k;
        n -= (size_t)k;
    }
    return (int32_t)h;
}

/* HashMap.hash(): the bucket of a key in a table of cap entries. */
static uint32_t java_bucket(int32_t hash, uint32_t cap)
{
    uint32_t h = (uint32_t)hash;
    return (h ^ (h >> 16)) & (cap - 1);
}

/* Debezium's iteration order: by bucket, then insertion (an insertion sort: few collections). */
static void dcs_sort(tx_dc_t *d, uint32_t n, uint32_t cap)
{
    for (uint32_t i = 1; i < n; i++) {
        tx_dc_t x = d[i];
        uint32_t bx = java_bucket(x.hash, cap), j = i;
        while (j > 0 && java_bucket(d[j - 1].hash, cap) > bx) {
            d[j] = d[j - 1];
            j--;
        }
        d[j] = x;
    }
}

static void tx_id(char *buf, size_t n, uint32_t xid, uint64_t lsn)
{
    snprintf(buf, n, "%" PRIu32 ":%" PRIu64, xid, lsn);
}

static void queue_begin(tm_dbz_txmon_t *m, const tm_record_t *rec)
{
    tx_ev_t *e = &m->q[m->nq++];
    memset(e, 0, sizeof(*e));
    const tm_pg_source_t *pg = tm_source_pg(&rec->src);
    tx_id(e->id, sizeof(e->id), pg->xid, pg->tx_lsn ? pg->tx_lsn : rec->src.pos);
    e->ts_ms = m->ts_ms;
}

static void queue_end(tm_dbz_txmon_t *m, uint64_t end_lsn)
{
    tx_ev_t *e = &m->q[m->nq++];
    memset(e, 0, sizeof(*e));
    e->end = true;
    tx_id(e->id, sizeof(e->id), m->xid, end_lsn);
    e->ts_ms = m->ts_ms;
    e->count = m->total;
    dcs_sort(m->dcs, m->ndcs, m->map_cap);
    e->dcs = m->dcs;
    e->ndcs = m->ndcs;
    m->dcs = NULL;
    m->ndcs = m->capdcs = 0;
    m->open = false;
}

int tm_dbz_txmon_record(tm_dbz_txmon_t *m, const tm_record_t *rec)
{
    /* Transactions are told by PostgreSQL's xid: other sources' records are outside one. */
    const tm_pg_source_t *pg = tm_source_pg(&rec->src);
    if (pg->xid == 0) {
        /* Outside a transaction: the one before has ended, at tx_lsn when the source knows. */
        if (m->open && pg->tx_lsn != 0 && pg->tx_lsn > m->last_lsn)
            queue_end(m, pg->tx_lsn);
        return 0;
    }
    if (m->open && pg->xid == m->xid) {
        if (rec->src.pos > m->last_lsn)
            m->last_lsn = rec->src.pos;
        return 0;
    }
    if (m->open)
        queue_end(m, pg->commit_lsn != 0 ? pg->commit_lsn : m->last_lsn);
    m->open = true;
    m->xid = pg->xid;
    m->ts_ms = rec->src.ts_us / 1000 - (rec->src.ts_us % 1000 < 0);
    m->last_lsn = rec->src.pos;
    m->total = 0;
    m->seq = 0;
    queue_begin(m, rec);
    return 0;
}

void tm_dbz_txmon_batch_end(tm_dbz_txmon_t *m, uint64_t ack_token)
{
    if (m->open && m->nq < 2 && ack_token != 0 && ack_token > m->last_lsn)
        queue_end(m, ack_token);
}

/* Adds one event of collection `name` (owned by the caller); its count, or negative TM_E*. */
static int64_t dc_add(tm_dbz_txmon_t *m, const char *name, bool fresh)
{
    int32_t h = java_hash(name);
    if (!fresh)
        for (uint32_t i = 0; i < m->ndcs; i++)
            if (m->dcs[i].hash == h && strcmp(m->dcs[i].name, name) == 0)
                return ++m->dcs[i].count;
    if (m->ndcs == m->capdcs) {
        uint32_t ncap = m->capdcs ? m->capdcs * 2 : 8;
        tx_dc_t *p = realloc(m->dcs, sizeof(*p) * ncap);
        if (p == NULL)
            return TM_ENOMEM;
        m->dcs = p;
        m->capdcs = ncap;
    }
    tx_dc_t *d = &m->dcs[m->ndcs];
    if ((d->name = strdup(name)) == NULL)
        return TM_ENOMEM;
    d->hash = h;
    d->seq = m->seq++;
    d->count = 1;
    m->ndcs++;
    /* HashMap.putVal: resize once the size passes 0.75 of the table. */
    while (m->ndcs > m->map_cap / 4 * 3)
        m->map_cap *= 2;
    return 1;
}

int tm_dbz_txmon_event(tm_dbz_txmon_t *m, const tm_record_t *rec, tm_dbz_txblock_t *blk)
{
    if (!m->open || tm_source_pg(&rec->src)->xid != m->xid)
        return TM_ENOTFOUND;
    char name[512];
    bool fresh = false;
    if (rec->op == TM_OP_MESSAGE || rec->schema == NULL || rec->schema->table == NULL) {
        /* A new LogicalDecodingMessageId per message: Object.toString(), its identity hash. */
        uint64_t x = rec->src.pos * UINT64_C(0x9E3779B97F4A7C15);
        uint32_t ih = (uint32_t)(x >> 33) & 0x7fffffffu;
        snprintf(name, sizeof(name), "%s%" PRIx32, TX_MSG_COLLECTION, ih ? ih : 1u);
        fresh = true;
    } else {
        const tm_schema_t *s = rec->schema;
        if (s->namespace != NULL && s->namespace[0] != '\0')
            snprintf(name, sizeof(name), "%s.%s", s->namespace, s->table);
        else
            snprintf(name, sizeof(name), "%s", s->table);
    }
    int64_t order = dc_add(m, name, fresh);
    if (order < 0)
        return (int)order;
    m->total++;
    tx_id(blk->id, sizeof(blk->id), tm_source_pg(&rec->src)->xid, rec->src.pos);
    blk->total_order = m->total;
    blk->data_collection_order = order;
    return 0;
}

static const char tx_key_schema[] =
    "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":\"id\"}],"
    "\"optional\":false,\"name\":\"io.debezium.connector.common.TransactionMetadataKey\","
    "\"version\":1}";
static const char tx_value_schema[] =
    "{\"type\":\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":"
    "\"status\"},{\"type\":\"string\",\"optional\":false,\"field\":\"id\"},{\"type\":\"int64\","
    "\"optional\":true,\"field\":\"event_count\"},{\"type\":\"array\",\"items\":{\"type\":"
    "\"struct\",\"fields\":[{\"type\":\"string\",\"optional\":false,\"field\":"
    "\"data_collection\"},{\"type\":\"int64\",\"optional\":false,\"field\":\"event_count\"}],"
    "\"optional\":true,\"name\":\"event.collection\",\"version\":1},\"optional\":true,\"field\":"
    "\"data_collections\"},{\"type\":\"int64\",\"optional\":false,\"field\":\"ts_ms\"}],"
    "\"optional\":false,\"name\":\"io.debezium.connector.common.TransactionMetadataValue\","
    "\"version\":1}";

int tm_dbz_txmon_take(tm_dbz_txmon_t *m, bool schemas, tm_buf_t *key, tm_buf_t *val)
{
    if (m->nq == 0)
        return 0;
    tx_ev_t *e = &m->q[0];
    int rc = 0;
    if (schemas)
        rc |= tm_buf_appendf(key, "{\"schema\":%s,\"payload\":", tx_key_schema);
    rc |= tm_buf_appendf(key, "{\"id\":\"%s\"}", e->id);
    if (schemas)
        rc |= tm_buf_appendf(key, "}");
    if (schemas)
        rc |= tm_buf_appendf(val, "{\"schema\":%s,\"payload\":", tx_value_schema);
    if (!e->end) {
        rc |= tm_buf_appendf(val,
                             "{\"status\":\"BEGIN\",\"id\":\"%s\",\"event_count\":null,"
                             "\"data_collections\":null,\"ts_ms\":%" PRId64 "}",
                             e->id, e->ts_ms);
    } else {
        rc |= tm_buf_appendf(val,
                             "{\"status\":\"END\",\"id\":\"%s\",\"event_count\":%" PRId64
                             ",\"data_collections\":[",
                             e->id, e->count);
        for (uint32_t i = 0; i < e->ndcs; i++) {
            rc |= tm_buf_puts(val, i ? ",{\"data_collection\":" : "{\"data_collection\":");
            rc |= tm_buf_append_json_str(val, e->dcs[i].name, strlen(e->dcs[i].name));
            rc |= tm_buf_appendf(val, ",\"event_count\":%" PRId64 "}", e->dcs[i].count);
        }
        rc |= tm_buf_appendf(val, "],\"ts_ms\":%" PRId64 "}", e->ts_ms);
    }
    if (schemas)
        rc |= tm_buf_appendf(val, "}");
    if (rc != 0)
        return TM_ENOMEM;
    dcs_free(e->dcs, e->ndcs);
    m->q[0] = m->q[1];
    m->nq--;
    return 1;
}

int tm_dbz_encode_heartbeat(const char *server_name, int64_t ts_ms, bool schemas, tm_buf_t *key,
                            tm_buf_t *val)
{
    int rc = 0;
    if (schemas)
        rc |= tm_buf_puts(key, "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"string\","
                               "\"optional\":false,\"field\":\"serverName\"}],\"optional\":false,"
                               "\"name\":\"io.debezium.connector.common.ServerNameKey\","
                               "\"version\":1},\"payload\":");
    rc |= tm_buf_puts(key, "{\"serverName\":");
    rc |= tm_buf_append_json_str(key, server_name, strlen(server_name));
    rc |= tm_buf_puts(key, schemas ? "}}" : "}");
    if (schemas)
        rc |= tm_buf_puts(val, "{\"schema\":{\"type\":\"struct\",\"fields\":[{\"type\":\"int64\","
                               "\"optional\":false,\"field\":\"ts_ms\"}],\"optional\":false,"
                               "\"name\":\"io.debezium.connector.common.Heartbeat\","
                               "\"version\":1},\"payload\":");
    rc |= tm_buf_appendf(val, "{\"ts_ms\":%" PRId64 "}", ts_ms);
    if (schemas)
        rc |= tm_buf_puts(val, "}");
    return rc != 0 ? TM_ENOMEM : 0;
}

static bool topic_char_ok(unsigned char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* Kafka's limit, and Debezium's cut. */
#define TOPIC_MAX 249

int tm_dbz_topic_sanitize(tm_buf_t *out)
{
    tm_buf_t tmp;
    tm_buf_init(&tmp);
    const char *s = out->data;
    size_t n = out->len;
    int rc = tm_buf_reserve(&tmp, n + 1);
    while (rc == 0 && n > 0) {
        int k = tm_utf8_seq_len((const unsigned char *)s, n);
        size_t used = k > 0 ? (size_t)k : (size_t)(-k > 0 ? -k : 1);
        if (k == 1 && topic_char_ok((unsigned char)s[0]))
            rc = tm_buf_putc(&tmp, s[0]);
        else
            rc = tm_buf_puts(&tmp, k == 4 ? "__" : "_"); /* a surrogate pair is two units */
        s += used;
        n -= used;
    }
    if (rc == 0) {
        if (tmp.len > TOPIC_MAX)
            tmp.len = TOPIC_MAX;
        if (tmp.len == 1 && tmp.data[0] == '.')
            tmp.data[0] = '_';
        if (tmp.len == 2 && tmp.data[0] == '.' && tmp.data[1] == '.')
            tmp.data[0] = tmp.data[1] = '_';
        tm_buf_clear(out);
        rc = tm_buf_append(out, tmp.data ? tmp.data : "", tmp.len);
        if (rc == 0 && (rc = tm_buf_reserve(out, 1)) == 0)
            out->data[out->len] = '\0';
    }
    tm_buf_release(&tmp);
    return rc != 0 ? TM_ENOMEM : 0;
}

int tm_dbz_topic_name(const char *const *parts, int nparts, const char *delimiter, tm_buf_t *out)
{
    int rc = 0;
    bool first = true;
    tm_buf_clear(out);
    for (int i = 0; i < nparts && rc == 0; i++) {
        const char *p = parts[i];
        /* Strings.isNullOrBlank: null, empty or only whitespace parts are left out. */
        if (p == NULL || p[strspn(p, " \t\n\r\f\v")] == '\0')
            continue;
        if (!first)
            rc = tm_buf_puts(out, delimiter);
        if (rc == 0)
            rc = tm_buf_puts(out, p);
        first = false;
    }
    if (rc != 0)
        return TM_ENOMEM;
    return tm_dbz_topic_sanitize(out);
}
