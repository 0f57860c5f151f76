/*
 * kafka_sink_enc.c — what a change record becomes in Kafka.
 *
 * The key is always the Debezium key (tm_dbz_encode_key: the primary key; null
 * for a table without one, as Debezium), with its schema part when `schemas`
 * is on.  The
 * value depends on `format`:
 *
 *     format          insert/update/read     delete                      truncate, message
 *     debezium-json   envelope               envelope, then tombstone    envelope (null key)
 *     json            flat row, __deleted    flat before image with      skipped
 *                     = "false"              __deleted = "true", then
 *                                            tombstone
 *     upsert          flat row               tombstone (null value)      skipped
 *
 * Operations in `skipped_operations` (Debezium's skipped.operations, by
 * default "t": truncates) are not written at all; an update that changes its
 * key is skipped whole when "u" is listed.
 *
 * `json` is what Debezium's ExtractNewRecordState SMT writes with
 * delete.handling.mode = rewrite; `upsert` is what Flink's upsert-kafka and
 * Kafka Streams' KTables read.  `tombstones = false` drops the tombstone that
 * follows a delete (in upsert the tombstone *is* the delete, so it stays).
 *
 * An update that changes the primary key is written as Debezium writes it: a
 * delete of the old key (header __debezium.newkey), its tombstone, then a
 * create of the new key (header __debezium.oldkey).  Otherwise the old key
 * would live on in a compacted topic, and the two keys may sit on different
 * partitions, where no consumer could order them.
 *
 * Thread: sink.
 */
#include "kafka_sink_int.h"

#include "core/error.h"
#include "core/log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- topics ---- */

static const char *const tmpl_vars[] = {"{source}", "{db}", "{schema}", "{table}", NULL};

static bool topic_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

int tm__ks_template_check(const char *tmpl, const char *table, bool *fixed, char *errstr,
                          size_t errstr_size)
{
    *fixed = true;
    if (tmpl[0] == '\0')
        return tm_seterr(errstr, errstr_size, TM_ECONFIG, "table '%s': 'topic' is empty", table);
    for (const char *p = tmpl; *p; p++) {
        if (*p == '{') {
            size_t n = 0;
            for (const char *const *v = tmpl_vars; *v && n == 0; v++)
                if (strncmp(p, *v, strlen(*v)) == 0)
                    n = strlen(*v);
            if (n == 0)
                return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                                 "table '%s': topic template '%s' has an unknown variable at "
                                 "'%.20s'; the variables are {source}, {db}, {schema} and "
                                 "{table}",
                                 table, tmpl, p);
            *fixed = false;
            p += n - 1;
        } else if (!topic_char_ok(*p)) {
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "table '%s': topic '%s' has the character '%c', which Kafka does not "
                             "allow in topic names (only letters, digits, '.', '_' and '-')",
                             table, tmpl, *p);
        }
    }
    if (*fixed && (strcmp(tmpl, ".") == 0 || strcmp(tmpl, "..") == 0 || strlen(tmpl) > 249))
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "table '%s': '%s' is not a valid Kafka topic name", table, tmpl);
    return 0;
}

/* Copies a rendered, sanitized name into the caller's fixed buffer. */
static void put_name(const tm_buf_t *b, int rc, char *out, size_t outlen)
{
    size_t n = rc == 0 && b->data != NULL ? b->len : 0;
    if (n + 1 > outlen)
        n = outlen - 1;
    memcpy(out, n ? b->data : "", n);
    out[n] = '\0';
}

void tm__ks_topic_name(const tm_sink_t *s, const tm_record_t *rec, char *out, size_t outlen)
{
    const tm_schema_t *sc = rec->schema;
    if (outlen == 0)
        return;
    if (s->tmpl_fixed) {
        snprintf(out, outlen, "%s", s->topic_tmpl);
        return;
    }
    tm_buf_t b;
    tm_buf_init(&b);
    int rc = 0;
    const char *prefix = sc && sc->source_name ? sc->source_name : "tidemark";
    if (rec->op == TM_OP_MESSAGE || sc == NULL || sc->table == NULL) {
        /* A logical-decoding message has no table: Debezium routes it to <prefix>.message. */
        const char *parts[] = {prefix, "message"};
        rc = tm_dbz_topic_name(parts, 2, ".", &b);
    } else if (strcmp(s->topic_tmpl, "{source}.{schema}.{table}") == 0) {
        /* The default is Debezium's SchemaTopicNamingStrategy, blank parts left out. */
        const char *parts[] = {prefix, sc->namespace, sc->table};
        rc = tm_dbz_topic_name(parts, 3, ".", &b);
    } else {
        for (const char *p = s->topic_tmpl; *p && rc == 0;) {
            const char *val = NULL;
            size_t skip = 0;
            if (!strncmp(p, "{source}", 8))
                val = sc->source_name, skip = 8;
            else if (!strncmp(p, "{db}", 4))
                val = sc->db, skip = 4;
            else if (!strncmp(p, "{schema}", 8))
                val = sc->namespace, skip = 8;
            else if (!strncmp(p, "{table}", 7))
                val = sc->table, skip = 7;
            if (skip) {
                rc = tm_buf_puts(&b, val ? val : "");
                p += skip;
            } else {
                rc = tm_buf_putc(&b, *p++);
            }
        }
        /* Debezium's rule on the whole name (the template's own characters are valid already). */
        if (rc == 0)
            rc = tm_dbz_topic_sanitize(&b);
    }
    put_name(&b, rc, out, outlen);
    tm_buf_release(&b);
}

/* ---- message lists ---- */

void tm__ks_msgs_init(tm_ks_msgs_t *m)
{
    memset(m, 0, sizeof(*m));
    tm_buf_init(&m->data);
}

void tm__ks_msgs_clear(tm_ks_msgs_t *m)
{
    tm_buf_clear(&m->data);
    m->n = 0;
}

void tm__ks_msgs_release(tm_ks_msgs_t *m)
{
    tm_buf_release(&m->data);
    free(m->msgs);
    memset(m, 0, sizeof(*m));
}

static tm_ks_msg_t *msgs_add(tm_ks_msgs_t *m)
{
    if (m->n == m->cap) {
        uint32_t ncap = m->cap ? m->cap * 2 : 64;
        tm_ks_msg_t *p = realloc(m->msgs, sizeof(*p) * ncap);
        if (p == NULL)
            return NULL;
        m->msgs = p;
        m->cap = ncap;
    }
    tm_ks_msg_t *msg = &m->msgs[m->n++];
    memset(msg, 0, sizeof(*msg));
    msg->key_len = msg->val_len = TM_KS_NULL;
    return msg;
}

int tm__ks_msgs_append(tm_ks_msgs_t *dst, const tm_ks_msgs_t *src)
{
    uint32_t base = (uint32_t)dst->data.len;
    if (src->data.len > 0 && tm_buf_append(&dst->data, src->data.data, src->data.len) != 0)
        return TM_ENOMEM;
    for (uint32_t i = 0; i < src->n; i++) {
        tm_ks_msg_t *d = msgs_add(dst);
        if (d == NULL)
            return TM_ENOMEM;
        *d = src->msgs[i];
        d->key_off += base;
        d->val_off += base;
        d->hdr_off += base;
    }
    return 0;
}

/* ---- encoders ---- */

typedef struct range {
    uint32_t off, len;
} range_t;

static const range_t null_range = {0, TM_KS_NULL};

static int put_key(tm_sink_t *s, const tm_record_t *rec, tm_ks_msgs_t *m, range_t *r)
{
    size_t start = m->data.len;
    if (rec->op == TM_OP_TRUNCATE) {
        *r = null_range;
        return 0;
    }
    int rc = tm_dbz_encode_key(s->enc, rec, &m->data);
    if (rc == TM_ENOTFOUND) {
        *r = null_range;
        return 0;
    }
    if (rc != 0)
        return rc;
    r->off = (uint32_t)start;
    r->len = (uint32_t)(m->data.len - start);
    return 0;
}

static int push(tm_ks_msgs_t *m, uint32_t topic, range_t key, range_t val, const char *hdr,
                range_t hval)
{
    tm_ks_msg_t *msg = msgs_add(m);
    if (msg == NULL)
        return TM_ENOMEM;
    msg->topic = topic;
    msg->key_off = key.off, msg->key_len = key.len;
    msg->val_off = val.off, msg->val_len = val.len;
    msg->hdr = hdr;
    msg->hdr_off = hval.off, msg->hdr_len = hval.len;
    return 0;
}

static int dump_cb(const char *buffer, size_t size, void *data)
{
    return tm_buf_append(data, buffer, size) == 0 ? 0 : -1;
}

/*
 * The Kafka Connect schema of a table's flat row: the envelope's "after"
 * field, made a required top-level struct (plus __deleted for `json`).
 * Cached for the last table seen, holding a reference on its schema so the
 * pointer cannot be reused for another table while cached.
 */
static json_t *row_schema(tm_sink_t *s, const tm_record_t *rec, json_t *env)
{
    if (s->row_schema != NULL && s->row_schema_of == rec->schema)
        return s->row_schema;
    json_t *fields = json_object_get(json_object_get(env, "schema"), "fields");
    json_t *after = NULL;
    for (size_t i = 0; i < json_array_size(fields); i++) {
        json_t *f = json_array_get(fields, i);
        const char *name = json_string_value(json_object_get(f, "field"));
        if (name != NULL && strcmp(name, "after") == 0)
            after = f;
    }
    if (after == NULL)
        return NULL;
    json_t *sch = json_deep_copy(after);
    if (sch == NULL)
        return NULL;
    json_object_del(sch, "field");
    json_object_set_new(sch, "optional", json_false());
    if (s->format == TM_KS_JSON)
        json_array_append_new(json_object_get(sch, "fields"),
                              json_pack("{s:s,s:b,s:s}", "type", "string", "optional", 1, "field",
                                        "__deleted"));
    json_decref(s->row_schema);
    tm_schema_unref(s->row_schema_of);
    s->row_schema = sch;
    s->row_schema_of = tm_schema_ref(rec->schema);
    return sch;
}

/* The flat row of a record (after, or before for a delete), as JSON text. */
static int put_flat(tm_sink_t *s, const tm_record_t *rec, tm_ks_msgs_t *m, range_t *r)
{
    json_t *env = tm_dbz_encode_value_json(s->enc, rec);
    if (env == NULL)
        return TM_ENOMEM;
    json_t *p = s->schemas ? json_object_get(env, "payload") : env;
    json_t *row = json_object_get(p, rec->op == TM_OP_DELETE ? "before" : "after");
    int rc = 0;
    if (!json_is_object(row)) {
        /* A delete without a before image (no replica identity) has nothing to show. */
        json_decref(env);
        *r = null_range;
        return TM_ENOTFOUND;
    }
    if (s->format == TM_KS_JSON)
        json_object_set_new(row, "__deleted",
                            json_string(rec->op == TM_OP_DELETE ? "true" : "false"));
    json_t *out = json_incref(row);
    if (s->schemas) {
        json_t *sch = row_schema(s, rec, env);
        json_decref(out);
        out = sch ? json_pack("{s:O,s:O}", "schema", sch, "payload", row) : NULL;
    }
    size_t start = m->data.len;
    if (out == NULL || json_dump_callback(out, dump_cb, &m->data, JSON_COMPACT) != 0)
        rc = TM_ENOMEM;
    json_decref(out);
    json_decref(env);
    r->off = (uint32_t)start;
    r->len = (uint32_t)(m->data.len - start);
    return rc;
}

/* Encodes one record that does not change its key. */
/* json/upsert have no form for truncates and messages (nor for a delete without a before image). */
static void skip(tm_sink_t *s, const tm_record_t *rec)
{
    if (s->skipped++ == 0)
        TM_WARN(TM_KS_COMP, "skipping records the format cannot express",
                "sink=%s format=%s op=%c note=\"only the first is logged; use format = "
                "'debezium-json' to keep truncates and messages\"",
                s->name, s->format == TM_KS_JSON ? "json" : "upsert", (char)rec->op);
}

static int encode_one(tm_sink_t *s, const tm_record_t *rec, uint32_t topic, tm_ks_msgs_t *m,
                      range_t key, const char *hdr, range_t hval)
{
    range_t val;
    int rc;
    bool del = rec->op == TM_OP_DELETE;
    switch (s->format) {
    case TM_KS_DEBEZIUM: {
        size_t start = m->data.len;
        tm_dbz_txblock_t blk;
        /* provide_transaction_metadata: every event written counts, its tombstone does not. */
        if (s->txmon != NULL) {
            rc = tm_dbz_txmon_event(s->txmon, rec, &blk);
            if (rc != 0 && rc != TM_ENOTFOUND)
                return rc;
            tm_dbz_encoder_set_txblock(s->enc, rc == 0 ? &blk : NULL);
        }
        rc = tm_dbz_encode_value(s->enc, rec, &m->data);
        tm_dbz_encoder_set_txblock(s->enc, NULL);
        if (rc != 0)
            return rc;
        val.off = (uint32_t)start;
        val.len = (uint32_t)(m->data.len - start);
        break;
    }
    case TM_KS_JSON:
        rc = put_flat(s, rec, m, &val);
        if (rc == TM_ENOTFOUND) {
            skip(s, rec);
            return 0;
        }
        if (rc != 0)
            return rc;
        break;
    default: /* TM_KS_UPSERT */
        if (del && key.len == TM_KS_NULL) {
            /* A table without a primary key has no key to delete (issue 10 row 5). */
            skip(s, rec);
            return 0;
        }
        if (del)
            return push(m, topic, key, null_range, hdr, hval);
        if ((rc = put_flat(s, rec, m, &val)) == TM_ENOTFOUND)
            skip(s, rec);
        if (rc != 0)
            return rc == TM_ENOTFOUND ? 0 : rc;
        break;
    }
    if ((rc = push(m, topic, key, val, hdr, hval)) != 0)
        return rc;
    /* Debezium follows every delete with a tombstone, a keyless table's too (null key, tests/compat). */
    if (del && s->tombstones && (key.len != TM_KS_NULL || s->format == TM_KS_DEBEZIUM))
        rc = push(m, topic, key, null_range, NULL, null_range);
    return rc;
}

int tm__ks_encode(tm_sink_t *s, const tm_record_t *rec, uint32_t topic, tm_ks_msgs_t *m,
                  char *errstr, size_t errstr_size)
{
    int rc;
    if (s->format != TM_KS_DEBEZIUM &&
        (rec->op == TM_OP_TRUNCATE || rec->op == TM_OP_MESSAGE)) {
        skip(s, rec);
        return 0;
    }
    if (tm_dbz_skipped(s->skipped_ops, rec->op))
        return 0;
    if (tm_dbz_encoder_key_changed(s->enc, rec)) {
        tm_record_t del, cre;
        tm_dbz_split_key_change(rec, &del, &cre);
        range_t oldkey, newkey;
        if ((rc = put_key(s, &del, m, &oldkey)) != 0 || (rc = put_key(s, &cre, m, &newkey)) != 0 ||
            (rc = encode_one(s, &del, topic, m, oldkey, "__debezium.newkey", newkey)) != 0 ||
            (rc = encode_one(s, &cre, topic, m, newkey, "__debezium.oldkey", oldkey)) != 0)
            goto fail;
        return 0;
    }
    range_t key;
    if ((rc = put_key(s, rec, m, &key)) != 0 ||
        (rc = encode_one(s, rec, topic, m, key, NULL, null_range)) != 0)
        goto fail;
    return 0;
fail:
    return tm_seterr(errstr, errstr_size, rc, "sink '%s': cannot encode a record (%s)", s->name,
                     tm_strerror(rc));
}
