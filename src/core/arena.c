/*
 * arena.c — chunked bump allocator (see arena.h).
 *
 * Invariant: head is the chunk being carved; `used` never exceeds `size`.
 * Oversized requests get a chunk of their own, linked *behind* the head so the
 * head keeps its free space.
 */
#include "core/arena.h"

#include <stdlib.h>
#include <string.h>

struct tm_arena_chunk {
    tm_arena_chunk_t *next;
    size_t size;
    size_t used;
    _Alignas(16) unsigned char data[];
};

#define TM_ARENA_ALIGN 16

void tm_arena_init(tm_arena_t *arena, size_t chunk_size)
{
    arena->head = NULL;
    arena->chunk_size = chunk_size ? chunk_size : 64 * 1024;
    arena->used_total = 0;
}

void tm_arena_release(tm_arena_t *arena)
{
    tm_arena_chunk_t *c = arena->head;
    while (c != NULL) {
        tm_arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    arena->head = NULL;
    arena->used_total = 0;
}

void tm_arena_reset(tm_arena_t *arena)
{
    tm_arena_chunk_t *keep = arena->head;
    if (keep == NULL)
        return;
    tm_arena_chunk_t *c = keep->next;
    while (c != NULL) {
        tm_arena_chunk_t *next = c->next;
        free(c);
        c = next;
    }
    keep->next = NULL;
    keep->used = 0;
    arena->used_total = 0;
}

static tm_arena_chunk_t *arena_chunk_new(size_t size)
{
    tm_arena_chunk_t *c = malloc(sizeof(*c) + size);
    if (c == NULL)
        return NULL;
    c->next = NULL;
    c->size = size;
    c->used = 0;
    return c;
}

void *tm_arena_alloc(tm_arena_t *arena, size_t size)
{
    size = (size + TM_ARENA_ALIGN - 1) & ~(size_t)(TM_ARENA_ALIGN - 1);
    if (size == 0)
        size = TM_ARENA_ALIGN;
    tm_arena_chunk_t *c = arena->head;
    if (c != NULL && c->size - c->used >= size) {
        void *p = c->data + c->used;
        c->used += size;
        arena->used_total += size;
        return p;
    }
    if (size > arena->chunk_size / 4 && c != NULL) {
        /* Big value: its own chunk, behind the head. */
        tm_arena_chunk_t *big = arena_chunk_new(size);
        if (big == NULL)
            return NULL;
        big->used = size;
        big->next = c->next;
        c->next = big;
        arena->used_total += size;
        return big->data;
    }
    size_t csize = arena->chunk_size > size ? arena->chunk_size : size;
    tm_arena_chunk_t *n = arena_chunk_new(csize);
    if (n == NULL)
        return NULL;
    n->next = c;
    arena->head = n;
    n->used = size;
    arena->used_total += size;
    return n->data;
}

void *tm_arena_zalloc(tm_arena_t *arena, size_t size)
{
    void *p = tm_arena_alloc(arena, size);
    if (p != NULL)
        memset(p, 0, size);
    return p;
}

char *tm_arena_memdup(tm_arena_t *arena, const void *src, size_t len)
{
    char *p = tm_arena_alloc(arena, len + 1);
    if (p == NULL)
        return NULL;
    if (len)
        memcpy(p, src, len);
    p[len] = '\0';
    return p;
}

char *tm_arena_strdup(tm_arena_t *arena, const char *s)
{
    return tm_arena_memdup(arena, s, strlen(s));
}
