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

int tm_jsonl_init(tm_jsonl_t *w, const tm_options_t *opts, char *errstr, size_t errstr_size)
{
    tm_dbz_opts_t o;
    memset(w, 0, sizeof(*w));
    tm_jsonl_dbz_opts(opts, &o);
    int rc = tm_dbz_encoder_open(&o, &w->enc, errstr, errstr_size);
    if (rc != 0)
        return rc;
    w->include_key = tm_opt_bool(opts, "include_key");
    w->tombstones = tm_opt_bool(opts, "tombstones_on_delete");
    rc = tm_dbz_skipped_parse(tm_opt_str(opts, "skipped_operations"), &w->skipped_ops, errstr,
                              errstr_size);
    if (rc != 0)
        return rc;
    w->topic_tmpl = strdup(tm_opt_str(opts, "topic"));
    if (w->enc == NULL || w->topic_tmpl == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    return 0;
}

void tm_jsonl_release(tm_jsonl_t *w)
{
    w->enc = tm_dbz_encoder_free(w->enc);
    free(w->topic_tmpl);
    w->topic_tmpl = NULL;
}

int tm_jsonl_topic(const tm_jsonl_t *w, const tm_record_t *rec, tm_buf_t *out)
{
    const tm_schema_t *s = rec->schema;
    const char *p = w->topic_tmpl;
    int rc = 0;
    tm_buf_clear(out);
    /* A logical-decoding message has no table: Debezium routes it to <prefix>.message. */
    if (rec->op == TM_OP_MESSAGE || s == NULL || s->table == NULL)
        return tm_buf_appendf(out, "%s.message",
                              s && s->source_name ? s->source_name : "tidemark");
    while (*p && rc == 0) {
        const char *val = NULL;
        size_t skip = 0;
        if (!strncmp(p, "{source}", 8)) {
            val = s->source_name, skip = 8;
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
    if (rc == 0 && out->data == NULL)
        rc = tm_buf_reserve(out, 1);
    if (rc == 0)
        out->data[out->len] = '\0';
    return rc;
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
    int rc = jsonl_encode(w, rec, out);
    /* Every delete, a keyless table's too (its tombstone's key is null), as Debezium writes them. */
    if (rc == 0 && rec->op == TM_OP_DELETE && w->tombstones && rec->schema != NULL)
        rc = jsonl_tombstone(w, rec, out);
    return rc;
}

int tm_jsonl_encode(tm_jsonl_t *w, const tm_record_t *rec, tm_buf_t *out)
{
    size_t start = out->len;
    int rc;
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
