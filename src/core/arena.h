/*
 * arena.h — bump allocator that backs one batch.
 *
 * Every variable-length value of a batch (text, bytes, json, numeric strings,
 * rows themselves) lives in the batch's arena, and the whole arena is released
 * at once when the batch is freed.  Nothing allocated from an arena may be
 * freed individually.
 *
 * Thread: an arena belongs to one thread at a time (the one that holds the
 * batch); it has no locks.
 */
#ifndef TM_CORE_ARENA_H
#define TM_CORE_ARENA_H

#include <stddef.h>
#include <stdint.h>

typedef struct tm_arena_chunk tm_arena_chunk_t;

typedef struct tm_arena {
    tm_arena_chunk_t *head; /* current chunk; older ones follow ->next */
    size_t chunk_size;      /* size of the next regular chunk */
    size_t used_total;      /* bytes handed out, for metrics */
} tm_arena_t;

void tm_arena_init(tm_arena_t *arena, size_t chunk_size);
/* Releases every chunk.  The arena may be reused after tm_arena_init(). */
void tm_arena_release(tm_arena_t *arena);
/* Keeps the first chunk, drops the others, and rewinds. */
void tm_arena_reset(tm_arena_t *arena);

/* 16-byte aligned allocation; returns NULL only on out-of-memory. */
void *tm_arena_alloc(tm_arena_t *arena, size_t size);
void *tm_arena_zalloc(tm_arena_t *arena, size_t size);
/* Copies `len` bytes and appends a NUL (not counted in len). */
char *tm_arena_memdup(tm_arena_t *arena, const void *src, size_t len);
char *tm_arena_strdup(tm_arena_t *arena, const char *s);

#endif
