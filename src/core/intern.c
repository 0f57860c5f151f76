/*
 * intern.c — interned strings for source blocks (tm_intern, row.h).
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
 *      per server uuid); nothing here bounds it, callers only intern names
 *      of that kind.
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
    if (out == NULL) {
        intern_entry_t *e = malloc(sizeof(*e) + len + 1);
        if (e != NULL) {
            e->len = len;
            memcpy(e->text, s, len);
            e->text[len] = '\0';
            e->next = intern_table[b];
            intern_table[b] = e;
            out = e->text;
        }
    }
    pthread_mutex_unlock(&intern_lock);
    return out;
}
