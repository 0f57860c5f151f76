/*
 * jsonl.c — Debezium lines for the file and stdout sinks (see jsonl.h).
 */
#include "file/jsonl.h"
#include "core/error.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

static int jsonl_encode(tm_jsonl_t *w, const tm_record_t *rec, tm_buf_t *line);

void tm_jsonl_dbz_opts(const tm_options_t *opts, tm_dbz_opts_t *o)
{
    memset(o, 0, sizeof(*o));
    o->schemas = tm_opt_bool(opts, "schemas");
    const char *dm = tm_opt_str(opts, "decimal_handling");
    o->decimal_mode = !strcasecmp(dm, "string")   ? TM_DECIMAL_STRING
                      : !strcasecmp(dm, "double") ? TM_DECIMAL_DOUBLE
                                                  : TM_DECIMAL_PRECISE;
    const char *tp = tm_opt_str(opts, "time_precision");
    o->time_mode = !strcasecmp(tp, "connect") ? TM_TIME_CONNECT : TM_TIME_ADAPTIVE;
    o->connector = "postgresql";
    o->version = TM_VERSION;
    const char *bm = tm_opt_str(opts, "binary_handling_mode");
    o->binary_mode = !strcasecmp(bm, "base64")            ? TM_BINARY_BASE64
                     : !strcasecmp(bm, "base64-url-safe") ? TM_BINARY_BASE64_URL
                     : !strcasecmp(bm, "hex")             ? TM_BINARY_HEX
                                                          : TM_BINARY_BYTES;
    o->interval_mode = !strcasecmp(tm_opt_str(opts, "interval_handling_mode"), "string")
                           ? TM_INTERVAL_STRING
                           : TM_INTERVAL_NUMERIC;
    o->hstore_mode = !strcasecmp(tm_opt_str(opts, "hstore_handling_mode"), "map")
                         ? TM_HSTORE_MAP
                         : TM_HSTORE_JSON;
    o->include_unknown = tm_opt_bool(opts, "include_unknown_datatypes");
    o->key_columns = tm_opt_str(opts, "message_key_columns");
    o->column_include = tm_opt_str(opts, "column_include_list");
    o->column_exclude = tm_opt_str(opts, "column_exclude_list");
}

static char *opt_dup(const tm_options_t *opts, const char *name)
{
    const char *v = tm_opt_isset(opts, name) ? tm_opt_str(opts, name) : NULL;
    return v != NULL ? strdup(v) : NULL;
}

int tm_jsonl_init(tm_jsonl_t *w, const tm_options_t *opts, char *errstr, size_t errstr_size)
{
    tm_dbz_opts_t o;
    memset(w, 0, sizeof(*w));
    tm_buf_init(&w->txout);
    tm_jsonl_dbz_opts(opts, &o);
    int rc = tm_dbz_encoder_open(&o, &w->enc, errstr, errstr_size);
    if (rc != 0)
        return rc;
    w->include_key = tm_opt_bool(opts, "include_key");
    w->schemas = o.schemas;
    w->tombstones = tm_opt_bool(opts, "tombstones_on_delete");
    rc = tm_dbz_skipped_parse(tm_opt_str(opts, "skipped_operations"), &w->skipped_ops, errstr,
                              errstr_size);
    if (rc != 0)
        return rc;
    w->hb_interval_ms = tm_opt_int(opts, "heartbeat_interval_ms");
    if (w->hb_interval_ms < 0)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "heartbeat_interval_ms = %lld is negative; use 0 (no heartbeats) or a "
                         "period in milliseconds",
                         (long long)w->hb_interval_ms);
    w->topic_tmpl = opt_dup(opts, "topic");
    w->prefix = opt_dup(opts, "topic_prefix");
    w->delim = strdup(tm_opt_str(opts, "topic_delimiter"));
    w->tx_suffix = strdup(tm_opt_str(opts, "topic_transaction"));
    w->hb_prefix = strdup(tm_opt_str(opts, "topic_heartbeat_prefix"));
    if (tm_opt_bool(opts, "provide_transaction_metadata") &&
        (w->txmon = tm_dbz_txmon_new()) == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    if (w->enc == NULL || (tm_opt_isset(opts, "topic") && w->topic_tmpl == NULL) ||
        (tm_opt_isset(opts, "topic_prefix") && w->prefix == NULL) || w->delim == NULL ||
        w->tx_suffix == NULL || w->hb_prefix == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    if (w->prefix != NULL && w->prefix[0] == '\0')
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "topic_prefix is empty; name the first part of the topics, or leave it "
                         "unset to use the source's name");
    return 0;
}

void tm_jsonl_release(tm_jsonl_t *w)
{
    w->enc = tm_dbz_encoder_free(w->enc);
    w->txmon = tm_dbz_txmon_free(w->txmon);
    tm_buf_release(&w->txout);
    free(w->topic_tmpl);
    free(w->prefix);
    free(w->delim);
    free(w->tx_suffix);
    free(w->hb_prefix);
    free(w->last_prefix);
    w->topic_tmpl = w->prefix = w->delim = w->tx_suffix = w->hb_prefix = w->last_prefix = NULL;
}

/* The topic prefix of a record: topic_prefix, or the name of the source it came from. */
static const char *rec_prefix(const tm_jsonl_t *w, const tm_record_t *rec)
{
    if (w->prefix != NULL)
        return w->prefix;
    if (rec->schema != NULL && rec->schema->source_name != NULL)
        return rec->schema->source_name;
    return "tidemark";
}

int tm_jsonl_topic(const tm_jsonl_t *w, const tm_record_t *rec, tm_buf_t *out)
{
    const tm_schema_t *s = rec->schema;
    const char *prefix = rec_prefix(w, rec);
    int rc = 0;
    tm_buf_clear(out);
    /* A logical-decoding message has no table: Debezium routes it to <prefix>.message. */
    if (rec->op == TM_OP_MESSAGE || s == NULL || s->table == NULL) {
        const char *parts[] = {prefix, "message"};
        return tm_dbz_topic_name(parts, 2, w->delim, out);
    }
    if (w->topic_tmpl == NULL) {
        /* Debezium's SchemaTopicNamingStrategy: <prefix>.<schema>.<table>, sanitized. */
        const char *parts[] = {prefix, s->namespace, s->table};
        return tm_dbz_topic_name(parts, 3, w->delim, out);
    }
    const char *p = w->topic_tmpl;
    while (*p && rc == 0) {
        const char *val = NULL;
        size_t skip = 0;
        if (!strncmp(p, "{source}", 8)) {
            val = s->source_name, skip = 8;
        } else if (!strncmp(p, "{prefix}", 8)) {
            val = prefix, skip = 8;
        } else if (!strncmp(p, "{db}", 4)) {
            val = s->db, skip = 4;
        } else if (!strncmp(p, "{schema}", 8)) {
            val = s->namespace, skip = 8;
        } else if (!strncmp(p, "{table}", 7)) {
            val = s->table, skip = 7;
        }
        if (skip) {
            rc = tm_buf_puts(out, val ? val : "");
            p += skip;
        } else {
            rc = tm_buf_putc(out, *p++);
        }
    }
    /* Whatever the template, Debezium's rule: only characters Kafka accepts. */
    return rc == 0 ? tm_dbz_topic_sanitize(out) : rc;
}

int tm_jsonl_tx_topic(const tm_jsonl_t *w, tm_buf_t *out)
{
    tm_buf_clear(out);
    int rc = tm_buf_appendf(out, "%s%s%s", w->prefix ? w->prefix
                                           : w->last_prefix ? w->last_prefix
                                                            : "tidemark",
                            w->delim, w->tx_suffix);
    return rc == 0 ? 0 : TM_ENOMEM;
}

int tm_jsonl_heartbeat(tm_jsonl_t *w, int64_t now_ms, tm_buf_t *topic, tm_buf_t *line)
{
    const char *prefix = w->prefix ? w->prefix : w->last_prefix;
    if (w->hb_interval_ms <= 0 || prefix == NULL)
        return 0;
    if (w->hb_last_ms != 0 && now_ms - w->hb_last_ms < w->hb_interval_ms)
        return 0;
    if (w->hb_last_ms == 0) {
        /* The first period starts now, as Debezium's heartbeat timer does. */
        w->hb_last_ms = now_ms;
        return 0;
    }
    w->hb_last_ms = now_ms;
    tm_buf_clear(topic);
    int rc = tm_buf_appendf(topic, "%s%s%s", w->hb_prefix, w->delim, prefix) ? TM_ENOMEM : 0;
    if (rc == 0 && w->include_key)
        rc = tm_buf_puts(line, "{\"key\":");
    /* Key and value apart: the key goes only with include_key. */
    tm_buf_t k, v;
    tm_buf_init(&k);
    tm_buf_init(&v);
    if (rc == 0)
        rc = tm_dbz_encode_heartbeat(prefix, now_ms, w->schemas, &k, &v);
    if (rc == 0 && w->include_key)
        rc = tm_buf_appendf(line, "%.*s,\"value\":%.*s}\n", (int)k.len, k.data, (int)v.len,
                            v.data)
                 ? TM_ENOMEM
                 : 0;
    else if (rc == 0)
        rc = tm_buf_appendf(line, "%.*s\n", (int)v.len, v.data) ? TM_ENOMEM : 0;
    tm_buf_release(&k);
    tm_buf_release(&v);
    return rc == 0 ? 1 : rc;
}

/* Moves the queued transaction events into txout, one line each. */
static int jsonl_take_tx(tm_jsonl_t *w)
{
    tm_buf_t k, v;
    int rc;
    tm_buf_init(&k);
    tm_buf_init(&v);
    bool schemas = w->schemas;
    while ((rc = tm_dbz_txmon_take(w->txmon, schemas, &k, &v)) == 1) {
        if (w->include_key)
            rc = tm_buf_appendf(&w->txout, "{\"key\":%.*s,\"value\":%.*s}\n", (int)k.len,
                                k.data, (int)v.len, v.data);
        else
            rc = tm_buf_appendf(&w->txout, "%.*s\n", (int)v.len, v.data);
        tm_buf_clear(&k);
        tm_buf_clear(&v);
        if (rc != 0) {
            rc = TM_ENOMEM;
            break;
        }
    }
    tm_buf_release(&k);
    tm_buf_release(&v);
    return rc;
}

int tm_jsonl_batch_end(tm_jsonl_t *w, const tm_batch_t *batch)
{
    if (w->txmon == NULL)
        return 0;
    tm_dbz_txmon_batch_end(w->txmon, batch->ack_token);
    return jsonl_take_tx(w);
}

/* A tombstone: the value null, under the deleted row's key with include_key. */
static int jsonl_tombstone(tm_jsonl_t *w, const tm_record_t *del, tm_buf_t *line)
{
    int rc;
    if (!w->include_key)
        return tm_buf_puts(line, "null\n");
    if ((rc = tm_buf_puts(line, "{\"key\":")) != 0)
        return rc;
    /* A table without a key: Debezium's tombstone has a null key. */
    if ((rc = tm_dbz_encode_key(w->enc, del, line)) == TM_ENOTFOUND)
        rc = tm_buf_puts(line, "null");
    if (rc != 0)
        return rc;
    return tm_buf_puts(line, ",\"value\":null}\n");
}

/* One event, then its tombstone when it is a delete and tombstones are on. */
static int jsonl_event(tm_jsonl_t *w, const tm_record_t *rec, tm_buf_t *out)
{
    tm_dbz_txblock_t blk;
    int rc = 0;
    if (w->txmon != NULL) {
        /* Every event written counts in its transaction (a tombstone does not, as in Debezium). */
        rc = tm_dbz_txmon_event(w->txmon, rec, &blk);
        tm_dbz_encoder_set_txblock(w->enc, rc == 0 ? &blk : NULL);
        if (rc == TM_ENOTFOUND)
            rc = 0;
    }
    if (rc == 0)
        rc = jsonl_encode(w, rec, out);
    tm_dbz_encoder_set_txblock(w->enc, NULL);
    /* Every delete, a keyless table's too (its tombstone's key is null), as Debezium writes them. */
    if (rc == 0 && rec->op == TM_OP_DELETE && w->tombstones && rec->schema != NULL)
        rc = jsonl_tombstone(w, rec, out);
    return rc;
}

int tm_jsonl_encode(tm_jsonl_t *w, const tm_record_t *rec, tm_buf_t *out)
{
    size_t start = out->len;
    int rc;
    const char *prefix = rec_prefix(w, rec);
    if (w->last_prefix == NULL || strcmp(w->last_prefix, prefix) != 0) {
        char *p = strdup(prefix);
        if (p == NULL)
            return TM_ENOMEM;
        free(w->last_prefix);
        w->last_prefix = p;
    }
    /* Transaction boundaries are decided on every record, skipped ones too (Debezium's BEGIN/END). */
    if (w->txmon != NULL && ((rc = tm_dbz_txmon_record(w->txmon, rec)) != 0 ||
                             (rc = jsonl_take_tx(w)) != 0))
        return rc;
    if (tm_dbz_skipped(w->skipped_ops, rec->op)) {
        rc = 0;
    } else if (tm_dbz_encoder_key_changed(w->enc, rec)) {
        tm_record_t del, cre;
        tm_dbz_split_key_change(rec, &del, &cre);
        rc = jsonl_event(w, &del, out);
        if (rc == 0)
            rc = jsonl_event(w, &cre, out);
    } else {
        rc = jsonl_event(w, rec, out);
    }
    if (rc != 0) {
        /* A failed record leaves no partial line behind. */
        out->len = start;
        if (out->data != NULL)
            out->data[start] = '\0';
    }
    return rc;
}

static int jsonl_encode(tm_jsonl_t *w, const tm_record_t *rec, tm_buf_t *line)
{
    int rc;
    if (w->include_key) {
        if ((rc = tm_buf_puts(line, "{\"key\":")) != 0)
            return rc;
        rc = tm_dbz_encode_key(w->enc, rec, line);
        /* No key (a truncate, a table without a primary key): null, as in Kafka. */
        if (rc == TM_ENOTFOUND)
            rc = tm_buf_puts(line, "null");
        if (rc != 0 || (rc = tm_buf_puts(line, ",\"value\":")) != 0)
            return rc;
    }
    if ((rc = tm_dbz_encode_value(w->enc, rec, line)) != 0)
        return rc;
    if (w->include_key && (rc = tm_buf_putc(line, '}')) != 0)
        return rc;
    return tm_buf_putc(line, '\n');
}
