/*
 * intern.c — interned strings for source blocks (tm_intern, row.h), and the
 * MySQL block's GTID reader (tm_my_source_set_gtid), which interns its uuid.
 *
 * Role: records carry a few names that repeat for millions of records (the
 * binlog file, a server uuid).  Each distinct text is stored once and never
 * freed, so a record holds a plain pointer that stays valid wherever the
 * record is copied, with no per-record allocation.
 *
 * Invariants:
 *   1. A text is stored once; equal texts give equal pointers.
 *   2. Stored texts are never freed or moved: the table grows by chaining.
 *   3. The number of distinct texts is small (one per binlog file read, one
 *      per server uuid), but a Debezium event read from Kafka can name any
 *      file: the table stops growing at TM_INTERN_MAX texts or
 *      TM_INTERN_MAX_BYTES bytes, and then answers NULL for new texts.
 *
 * Thread: any; one mutex guards the table (the callers cache the pointer,
 * so the lock is taken once per new file or transaction, not per record).
 */
#include "core/row.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define INTERN_BUCKETS 256

typedef struct intern_entry {
    struct intern_entry *next;
    size_t len;
    char text[];
} intern_entry_t;

static pthread_mutex_t intern_lock = PTHREAD_MUTEX_INITIALIZER;
static intern_entry_t *intern_table[INTERN_BUCKETS];
static size_t intern_count, intern_bytes;

static unsigned intern_hash(const char *s, size_t len)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 16777619u;
    return h % INTERN_BUCKETS;
}

const char *tm_intern(const char *s, size_t len)
{
    if (s == NULL)
        return NULL;
    unsigned b = intern_hash(s, len);
    const char *out = NULL;
    pthread_mutex_lock(&intern_lock);
    for (intern_entry_t *e = intern_table[b]; e != NULL && out == NULL; e = e->next)
        if (e->len == len && memcmp(e->text, s, len) == 0)
            out = e->text;
    bool room = intern_count < TM_INTERN_MAX && len < TM_INTERN_MAX_BYTES &&
                intern_bytes + len <= TM_INTERN_MAX_BYTES;
    if (out == NULL && room) {
        intern_entry_t *e = malloc(sizeof(*e) + len + 1);
        if (e != NULL) {
            e->len = len;
            memcpy(e->text, s, len);
            e->text[len] = '\0';
            e->next = intern_table[b];
            intern_table[b] = e;
            intern_count++;
            intern_bytes += len;
            out = e->text;
        }
    }
    pthread_mutex_unlock(&intern_lock);
    return out;
}

/* ---- MySQL GTIDs (row.h, tm_my_source_t) ---- */

/* Reads decimal digits p[0..n) into *out; false if empty, not all digits, or too large. */
static bool parse_u64(const char *p, size_t n, uint64_t max, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9')
            return false;
        uint64_t d = (uint64_t)(p[i] - '0');
        if (v > (max - d) / 10)
            return false;
        v = v * 10 + d;
    }
    *out = v;
    return true;
}

void tm_my_source_set_gtid(tm_my_source_t *my, const char *gtid, size_t len)
{
    my->gtid_kind = TM_MY_GTID_NONE;
    my->gtid_uuid = NULL;
    my->gtid_seq = 0;
    my->gtid_domain = my->gtid_server = 0;
    if (gtid == NULL || len == 0)
        return;
    const char *colon = memchr(gtid, ':', len);
    uint64_t a, b, c;
    if (colon != NULL) {
        /* MySQL: uuid:seq (a single GTID, not a set). */
        size_t ul = (size_t)(colon - gtid);
        if (ul == 0 || memchr(colon + 1, ':', len - ul - 1) != NULL ||
            !parse_u64(colon + 1, len - ul - 1, UINT64_MAX, &c))
            return;
        if ((my->gtid_uuid = tm_intern(gtid, ul)) == NULL)
            return;
        my->gtid_seq = c;
        my->gtid_kind = TM_MY_GTID_MYSQL;
        return;
    }
    /* MariaDB: domain-server-seq. */
    const char *d1 = memchr(gtid, '-', len);
    const char *d2 = d1 ? memchr(d1 + 1, '-', len - (size_t)(d1 + 1 - gtid)) : NULL;
    if (d2 == NULL || !parse_u64(gtid, (size_t)(d1 - gtid), UINT32_MAX, &a) ||
        !parse_u64(d1 + 1, (size_t)(d2 - d1 - 1), UINT32_MAX, &b) ||
        !parse_u64(d2 + 1, len - (size_t)(d2 + 1 - gtid), UINT64_MAX, &c))
        return;
    my->gtid_domain = (uint32_t)a;
    my->gtid_server = (uint32_t)b;
    my->gtid_seq = c;
    my->gtid_kind = TM_MY_GTID_MARIADB;
}
