/*
 * fuzz_txmeta.c — libFuzzer target for Debezium's topic names and the
 * transaction monitor (src/format/debezium_tx.c).
 *
 * Role: the input's first part, up to a NUL, is a table name (a hostile one
 * comes from a Kafka record's source.table); it is made a topic name with
 * tm_dbz_topic_name.  The rest is a stream of 6-byte record descriptors
 * (op, xid, LSN step, whether tx_lsn/commit_lsn are set, batch end) fed to a
 * transaction monitor, whose queued events are taken after every record.
 *
 * Invariants: no crash, leak or undefined behaviour on any input; a topic
 * name holds only [A-Za-z0-9._-], at most 249 of them, and is not "." or
 * ".."; every transaction event is valid JSON, and BEGIN and END alternate,
 * starting with BEGIN; a transaction block is handed out only inside an
 * open transaction, with total_order counting up from 1.
 *
 * Run (tests/fuzz/meson.build): build-fuzz/tests/fuzz/fuzz-txmeta tests/fuzz/txmeta
 *
 * Thread: libFuzzer calls the target from one thread.
 */
#include "core/buf.h"
#include "core/error.h"
#include "core/row.h"
#include "core/schema.h"
#include "format/debezium.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_topic(const char *name)
{
    tm_buf_t out;
    tm_buf_init(&out);
    const char *parts[] = {"shop", "public", name};
    if (tm_dbz_topic_name(parts, 3, ".", &out) == 0) {
        if (out.len > 249 || strcmp(out.data, ".") == 0 || strcmp(out.data, "..") == 0)
            abort();
        for (size_t i = 0; i < out.len; i++) {
            char c = out.data[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-'))
                abort();
        }
    }
    tm_buf_release(&out);
}

/* Takes every queued event; checks JSON and the BEGIN/END alternation. */
static void take_all(tm_dbz_txmon_t *m, bool *open, int *depth, int64_t *total)
{
    tm_buf_t k, v;
    tm_buf_init(&k);
    tm_buf_init(&v);
    int rc;
    while ((rc = tm_dbz_txmon_take(m, (*depth & 1) != 0, &k, &v)) == 1) {
        json_error_t e;
        json_t *jk = json_loadb(k.data, k.len, 0, &e);
        json_t *jv = json_loadb(v.data, v.len, 0, &e);
        if (jk == NULL || jv == NULL)
            abort();
        json_t *p = json_object_get(jv, "payload");
        const char *st = json_string_value(json_object_get(p ? p : jv, "status"));
        if (st == NULL)
            abort();
        bool begin = strcmp(st, "BEGIN") == 0;
        if (begin == *open)
            abort();
        *open = begin;
        if (begin)
            *total = 0;
        json_decref(jk);
        json_decref(jv);
        tm_buf_clear(&k);
        tm_buf_clear(&v);
        (*depth)++;
    }
    if (rc < 0)
        abort();
    tm_buf_release(&k);
    tm_buf_release(&v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t n = 0;
    while (n < size && data[n] != 0)
        n++;
    char *name = malloc(n + 1);
    if (name == NULL)
        return 0;
    memcpy(name, data, n);
    name[n] = '\0';
    check_topic(name);

    tm_schema_t *s = tm_schema_new(0);
    tm_schema_set_str(&s->source_name, "shop");
    tm_schema_set_str(&s->namespace, "public");
    s->table = name; /* the schema frees it */
    tm_dbz_txmon_t *m = tm_dbz_txmon_new();
    bool open = false;
    int depth = 0;
    uint64_t lsn = 1000;
    int64_t total = 0;
    for (size_t i = n + 1; m != NULL && i + 6 <= size; i += 6) {
        const uint8_t *d = data + i;
        static const tm_op_t ops[] = {TM_OP_CREATE, TM_OP_UPDATE, TM_OP_DELETE, TM_OP_TRUNCATE,
                                      TM_OP_MESSAGE, TM_OP_READ};
        tm_record_t rec;
        memset(&rec, 0, sizeof(rec));
        rec.op = ops[d[0] % 6];
        rec.schema = s;
        rec.src.kind = TM_SOURCE_POSTGRES;
        rec.src.u.pg.xid = d[1] % 4;
        lsn += (uint64_t)d[2] | (uint64_t)d[3] << 8;
        rec.src.pos = lsn;
        rec.src.u.pg.tx_lsn = (d[4] & 1) ? lsn - (d[4] >> 1) : 0;
        rec.src.u.pg.commit_lsn = (d[4] & 2) ? lsn - d[2] : 0;
        rec.src.ts_us = (int64_t)lsn * 1000 - 500000;
        if (tm_dbz_txmon_record(m, &rec) != 0)
            abort();
        take_all(m, &open, &depth, &total);
        if (open != tm_dbz_txmon_open(m))
            abort();
        tm_dbz_txblock_t blk;
        int rc = tm_dbz_txmon_event(m, &rec, &blk);
        if (rc == 0) {
            if (!open || blk.total_order != ++total || blk.data_collection_order < 1)
                abort();
        } else if (rc != TM_ENOTFOUND) {
            abort();
        }
        if (d[5] & 1) {
            tm_dbz_txmon_batch_end(m, (d[5] & 2) ? lsn + d[5] : 0);
            take_all(m, &open, &depth, &total);
        }
    }
    tm_dbz_txmon_free(m);
    tm_schema_unref(s);
    return 0;
}
