/*
 * deadletter.c — the dead-letter writer of one operator instance (see
 * deadletter.h for the file layout, the line format and the invariants).
 *
 * Lines are built with Jansson: dead letters are rare, and Jansson's string
 * escaping is the one the control plane already trusts.  Times reuse the
 * Debezium encoder's ISO formatting (format/debezium_int.h), so a timestamp
 * reads the same in a dead letter as in a sink's ZonedTimestamp.
 *
 * Thread: the owning subtask's; `count` is an atomic read by metrics.
 */
#include "runtime/deadletter.h"
#include "core/clock.h"
#include "core/errcount.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/numeric.h"
#include "format/debezium_int.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct tm_dead_letter {
    char *dir;
    char *job;
    char *uid;
    int subtask;
    char *path;
    FILE *f;           /* NULL until the first line (invariant 1) */
    bool dirty;        /* lines written since the last flush */
    bool created;      /* opened, its directory entry not yet synced */
    int err;           /* sticky (invariant 4) */
    char errmsg[600];
    _Atomic uint64_t count;
};

int tm_dead_letter_file_name(char *buf, size_t n, const char *uid, int subtask)
{
    int len = snprintf(buf, n, "%s-%d.jsonl", uid, subtask);
    /* A uid names a column family ("calc/out/1"); a file name cannot hold a '/'. */
    for (size_t i = 0; n > 0 && i < n - 1 && buf[i] != '\0'; i++)
        if (buf[i] == '/')
            buf[i] = '_';
    return len;
}

tm_dead_letter_t *tm_dead_letter_new(const char *dir, const char *job, const char *uid,
                                     int subtask)
{
    tm_dead_letter_t *dl = calloc(1, sizeof(*dl));
    if (dl == NULL)
        return NULL;
    char name[512];
    tm_dead_letter_file_name(name, sizeof(name), uid, subtask);
    size_t plen = strlen(dir) + strlen(name) + 2;
    dl->dir = strdup(dir);
    dl->job = strdup(job ? job : "");
    dl->uid = strdup(uid);
    dl->path = malloc(plen);
    dl->subtask = subtask;
    atomic_init(&dl->count, 0);
    if (dl->dir == NULL || dl->job == NULL || dl->uid == NULL || dl->path == NULL)
        return tm_dead_letter_free(dl);
    snprintf(dl->path, plen, "%s/%s", dir, name);
    return dl;
}

tm_dead_letter_t *tm_dead_letter_free(tm_dead_letter_t *dl)
{
    if (dl == NULL)
        return NULL;
    if (dl->f != NULL)
        fclose(dl->f);
    free(dl->dir);
    free(dl->job);
    free(dl->uid);
    free(dl->path);
    free(dl);
    return NULL;
}

const char *tm_dead_letter_path(const tm_dead_letter_t *dl)
{
    return dl->path;
}

uint64_t tm_dead_letter_count(const tm_dead_letter_t *dl)
{
    return atomic_load_explicit(&dl->count, memory_order_relaxed);
}

/* Records the first error (invariant 4) and returns it. */
static int fail(tm_dead_letter_t *dl, int rc, const char *what, int errnum)
{
    if (dl->err == 0) {
        tm_errors_count(TM_ERRKIND_DEAD_LETTER);
        dl->err = rc;
        snprintf(dl->errmsg, sizeof(dl->errmsg),
                 "operator %s: cannot %s dead-letter file %s: %s", dl->uid, what, dl->path,
                 errnum ? strerror(errnum) : tm_strerror(rc));
    }
    return dl->err;
}

int tm_dead_letter_error(const tm_dead_letter_t *dl, char *errstr, size_t errstr_size)
{
    if (dl->err != 0 && errstr_size > 0)
        snprintf(errstr, errstr_size, "%s", dl->errmsg);
    return dl->err;
}

/* ---- values ---- */

/* "2024-01-02T03:04:05.123456Z" without the Z when `zone` is false. */
static json_t *iso_ts(int64_t us, bool zone)
{
    char buf[TM__DBZ_ZONED_MAX];
    size_t n = tm__dbz_fmt_zoned_ts(us, buf);
    if (!zone && n > 0 && buf[n - 1] == 'Z')
        buf[--n] = '\0';
    return json_stringn(buf, n);
}

static json_t *hex_bytes(const char *p, uint32_t len)
{
    static const char digits[] = "0123456789abcdef";
    char *s = malloc(2 + (size_t)len * 2 + 1);
    if (s == NULL)
        return NULL;
    s[0] = '\\';
    s[1] = 'x';
    for (uint32_t i = 0; i < len; i++) {
        s[2 + 2 * i] = digits[(uint8_t)p[i] >> 4];
        s[3 + 2 * i] = digits[(uint8_t)p[i] & 15];
    }
    s[2 + 2 * (size_t)len] = '\0';
    json_t *j = json_stringn(s, 2 + 2 * (size_t)len);
    free(s);
    return j;
}

/* One value as JSON (see deadletter.h for the rendering); NULL when out of memory. */
static json_t *datum_json(const tm_column_t *col, const tm_datum_t *d)
{
    if (d->flags & TM_DATUM_UNAVAILABLE)
        return json_string("__debezium_unavailable_value");
    switch (col->type) {
    case TM_T_BOOL:
        return json_boolean(d->u.b);
    case TM_T_INT16:
    case TM_T_INT32:
    case TM_T_INT64:
        return json_integer((json_int_t)d->u.i64);
    case TM_T_FLOAT32:
    case TM_T_FLOAT64: {
        const char *special = tm__dbz_special_double(d->u.f64);
        return special ? json_string(special) : json_real(d->u.f64);
    }
    case TM_T_NUMERIC: {
        char buf[160];
        size_t n = tm_num_format(d, buf, sizeof(buf));
        if (n < sizeof(buf))
            return json_stringn(buf, n);
        char *big = malloc(n + 1);
        if (big == NULL)
            return NULL;
        tm_num_format(d, big, n + 1);
        json_t *j = json_stringn(big, n);
        free(big);
        return j;
    }
    case TM_T_DATE: {
        json_t *ts = iso_ts(d->u.i64 * INT64_C(86400000000), false);
        const char *s = ts ? json_string_value(ts) : NULL;
        const char *t = s ? strchr(s, 'T') : NULL;
        json_t *j = t ? json_stringn(s, (size_t)(t - s)) : NULL;
        json_decref(ts);
        return j;
    }
    case TM_T_TIME:
    case TM_T_TIMETZ: {
        char buf[TM__DBZ_ZONED_MAX];
        size_t n = tm__dbz_fmt_zoned_time(d->u.i64, buf);
        if (col->type == TM_T_TIME && n > 0 && buf[n - 1] == 'Z')
            n--;
        return json_stringn(buf, n);
    }
    case TM_T_TIMESTAMP:
        return iso_ts(d->u.i64, false);
    case TM_T_TIMESTAMPTZ:
        return iso_ts(d->u.i64, true);
    case TM_T_INTERVAL:
        return json_integer((json_int_t)d->u.i64);
    case TM_T_BYTES:
        return hex_bytes(d->u.var.ptr, d->u.var.len);
    case TM_T_JSON:
    case TM_T_ARRAY: {
        json_t *j = json_loadb(d->u.var.ptr, d->u.var.len, JSON_DECODE_ANY, NULL);
        return j ? j : json_stringn(d->u.var.ptr, d->u.var.len);
    }
    default: {
        json_t *j = json_stringn(d->u.var.ptr ? d->u.var.ptr : "", d->u.var.len);
        /* Jansson refuses invalid UTF-8; such a value is shown as its bytes. */
        return j ? j : hex_bytes(d->u.var.ptr, d->u.var.len);
    }
    }
}

static json_t *row_json(const tm_schema_t *schema, const tm_row_t *row)
{
    if (row == NULL)
        return json_null();
    json_t *o = json_object();
    for (int i = 0; o != NULL && i < schema->ncols; i++) {
        const tm_column_t *col = &schema->cols[i];
        json_t *v = tm_row_is_null(row, i) ? json_null() : datum_json(col, &row->vals[i]);
        if (v == NULL || json_object_set_new(o, col->name, v) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static json_t *source_json(const tm_schema_t *schema)
{
    if (schema == NULL)
        return json_null();
    if (schema->table != NULL && schema->namespace != NULL)
        return json_sprintf("%s.%s", schema->namespace, schema->table);
    if (schema->table != NULL)
        return json_string(schema->table);
    if (schema->source_name != NULL)
        return json_string(schema->source_name);
    return json_null();
}

/* ---- writing ---- */

static int open_file(tm_dead_letter_t *dl)
{
    if (tm_mkdir_p(dl->dir, 0750) != 0)
        return fail(dl, TM_EIO, "create the directory of the", errno);
    dl->f = fopen(dl->path, "a");
    if (dl->f == NULL)
        return fail(dl, TM_EIO, "open", errno);
    dl->created = true;
    return 0;
}

/* Appends one line; takes the references to before, after and source (any may be NULL). */
static int write_line(tm_dead_letter_t *dl, char opc, json_t *before, json_t *after,
                      json_t *source, const char *reason, int64_t ts_ms)
{
    if (dl->err == 0 && dl->f == NULL)
        (void)open_file(dl);
    if (dl->err != 0) {
        json_decref(before);
        json_decref(after);
        json_decref(source);
        return dl->err;
    }
    char op[2] = {opc, '\0'};
    json_t *line = json_object();
    if (line == NULL ||
        json_object_set_new(line, "ts_ms", json_integer((json_int_t)ts_ms)) != 0 ||
        json_object_set_new(line, "job", json_string(dl->job)) != 0 ||
        json_object_set_new(line, "operator", json_string(dl->uid)) != 0 ||
        json_object_set_new(line, "subtask", json_integer(dl->subtask)) != 0 ||
        json_object_set_new(line, "reason", json_string(reason ? reason : "")) != 0 ||
        json_object_set_new(line, "op", json_string(op)) != 0 ||
        json_object_set_new(line, "before", before ? before : json_null()) != 0 ||
        json_object_set_new(line, "after", after ? after : json_null()) != 0 ||
        json_object_set_new(line, "source", source ? source : json_null()) != 0) {
        json_decref(line);
        return fail(dl, TM_ENOMEM, "render a line for the", 0);
    }
    char *text = json_dumps(line, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(line);
    if (text == NULL)
        return fail(dl, TM_ENOMEM, "render a line for the", 0);
    int rc = 0;
    if (fputs(text, dl->f) == EOF || fputc('\n', dl->f) == EOF)
        rc = fail(dl, TM_EIO, "write to the", errno);
    free(text);
    if (rc == 0) {
        dl->dirty = true;
        atomic_fetch_add_explicit(&dl->count, 1, memory_order_relaxed);
    }
    return rc;
}

int tm_dead_letter_write(tm_dead_letter_t *dl, const tm_record_t *rec, const char *reason,
                         int64_t ts_ms)
{
    const tm_schema_t *s = rec->schema;
    return write_line(dl, (char)rec->op, s ? row_json(s, rec->before) : NULL,
                      s ? row_json(s, rec->after) : NULL, source_json(s), reason, ts_ms);
}

int tm_dead_letter_write_json(tm_dead_letter_t *dl, char op, json_t *before, json_t *after,
                              const char *source, const char *reason, int64_t ts_ms)
{
    return write_line(dl, op, before, after, source ? json_string(source) : NULL, reason, ts_ms);
}

void tm_dead_letter_callback(void *arg, const char *uid, const tm_record_t *rec,
                             const char *reason)
{
    (void)uid;
    /* Errors are sticky; the runtime reports them after the batch (invariant 4). */
    (void)tm_dead_letter_write(arg, rec, reason, tm_wall_us() / 1000);
}

int tm_dead_letter_flush(tm_dead_letter_t *dl, char *errstr, size_t errstr_size)
{
    if (dl->err == 0 && dl->f != NULL && dl->dirty) {
        if (fflush(dl->f) != 0)
            fail(dl, TM_EIO, "write to the", errno);
        else if (fdatasync(fileno(dl->f)) != 0)
            fail(dl, TM_EIO, "sync the", errno);
        else if (dl->created && tm_fsync_dir(dl->dir) != 0)
            fail(dl, TM_EIO, "sync the directory of the", errno);
        else
            dl->dirty = dl->created = false;
    }
    return tm_dead_letter_error(dl, errstr, errstr_size);
}
