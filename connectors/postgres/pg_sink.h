/*
 * pg_sink.h — internals of the PostgreSQL sink shared with its unit tests.
 *
 * The sink (pg_sink.c) turns a changelog into COPY rows.  The pieces that do
 * not need a server are exposed here so that tests/unit/postgres can check
 * them: the COPY text escaping, the PostgreSQL type a column is created
 * with, whether a target column's type can take a stream column, and the
 * per-key fold of one epoch (last image wins).
 *
 * Thread: the sink thread (the fold belongs to one sink).
 */
#ifndef TM_PG_PG_SINK_H
#define TM_PG_PG_SINK_H

#include "core/arena.h"
#include "core/buf.h"
#include "core/schema.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Appends `len` bytes of `s` to buf escaped for COPY's text format (\\, \t, \n, \r). */
int tm_pgsink_copy_escape(tm_buf_t *buf, const char *s, size_t len);

/*
 * Writes into buf the PostgreSQL type a column of this shape is created with
 * (create_table = true): "bigint", "numeric(14,2)", "timestamp with time zone", ...
 */
void tm_pgsink_type_sql(const tm_column_t *col, char *buf, size_t buflen);

/*
 * True when a target column of PostgreSQL type `typname` (pg_type.typname, e.g.
 * "int8", "numeric", "varchar"; `typtype` 'e' for enums, 'd' domains) accepts
 * the text of values of stream column `col` without loss of meaning.
 */
bool tm_pgsink_type_accepts(const char *typname, char typtype, const tm_column_t *col);

/*
 * One epoch's changes, folded per key, robust to the order in which changes
 * of one key arrive within the epoch (the sink may be fed by several upstream
 * subtasks, and a join partitioned on another column sends the retraction of
 * a row and its replacement from different ones).  Every change is a row
 * image with a count: +1 for an added row (insert, an update's new row), -1
 * for a retracted one (delete, an update's old row, which a retract stream
 * carries whole).  Equal images of a key add up and vanish at 0, so at the
 * end of the epoch, where the stream is consistent, what remains of a key is
 * one added image (write it), only retracted ones (delete the key), or
 * nothing (the key is as it was).  Without a key (append-only) every row is an
 * entry of its own.  Entries keep their first-seen order.
 */
typedef struct tm_pgsink_image {
    struct tm_pgsink_image *next; /* older images of the same key */
    const char *line;             /* the COPY row, without the trailing newline */
    uint32_t linelen;
    uint16_t ncols; /* target columns the line holds (later ones were added since) */
    int32_t net;    /* added minus retracted, never 0 while listed */
} tm_pgsink_image_t;

typedef struct tm_pgsink_entry {
    uint64_t hash;
    const char *key; /* arena; NULL for append-only rows */
    uint32_t keylen;
    tm_pgsink_image_t *images; /* newest first; NULL when everything cancelled */
} tm_pgsink_entry_t;

typedef struct tm_pgsink_fold {
    bool keyed;
    tm_arena_t arena;
    tm_pgsink_entry_t *ents;
    size_t n, cap;
    uint32_t *slots; /* open addressing: entry index + 1, 0 = empty */
    size_t nslots;
    tm_pgsink_image_t *spare; /* unlinked images, reused */
    uint64_t changes; /* images folded in */
} tm_pgsink_fold_t;

void tm_pgsink_fold_init(tm_pgsink_fold_t *f, bool keyed);
void tm_pgsink_fold_release(tm_pgsink_fold_t *f);
/* Forgets every entry (the arena is reused). */
void tm_pgsink_fold_clear(tm_pgsink_fold_t *f);
/*
 * Adds (delta = +1) or retracts (delta = -1) the image `line` of `key`
 * (NULL/0 for append-only, where delta must be +1).  delta = 0 is the
 * retraction of a key whose before image carries only the key (a source
 * table without REPLICA IDENTITY FULL, whose changes arrive in order): every
 * image of the key so far is dropped and the key counts as deleted.
 * delta = TM_PGSINK_REPLACE is an upsert (changes of the key arrive in
 * order): every image of the key so far is dropped and `line` is its row.
 * Copies both.  0 or TM_ENOMEM.
 */
#define TM_PGSINK_REPLACE 2
int tm_pgsink_fold_put(tm_pgsink_fold_t *f, const char *key, size_t keylen, const char *line,
                       size_t linelen, int ncols, int delta);
/*
 * What an entry comes to: the image to upsert (*del false), the image whose
 * key to delete (*del true), or NULL when the key is unchanged.  With more
 * than one added image left (an inconsistent stream) the newest wins and
 * *conflict is set.
 */
const tm_pgsink_image_t *tm_pgsink_fold_result(const tm_pgsink_entry_t *e, bool *del,
                                               bool *conflict);

#endif
