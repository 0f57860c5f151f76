/*
 * pg_lookup.h — the lookup side of the `postgres` connector (pg_lookup.c): a
 * PostgreSQL table read by key at processing time for lookup joins.  The
 * connector's one descriptor, in pg_sink.c, takes these hooks beside the
 * sink's (runtime/connector.h documents the lookup life cycle).
 *
 * Thread: a lookup handle belongs to the subtask that opened it.
 */
#ifndef TM_PG_LOOKUP_H
#define TM_PG_LOOKUP_H

#include "runtime/connector.h"

extern const tm_option_def_t tm_pglk_options[];

int tm_pglk_new(tm_lookup_t **out, const tm_lookup_config_t *cfg, char *errstr,
                size_t errstr_size);
int tm_pglk_open(tm_lookup_t *lk, char *errstr, size_t errstr_size);
int tm_pglk_fetch(tm_lookup_t *lk, const tm_row_t *const *keys, int nkeys, tm_lookup_row_fn fn,
                  void *arg, char *errstr, size_t errstr_size);
void tm_pglk_describe(const tm_lookup_t *lk, void (*line)(void *arg, const char *text),
                      void *arg);
void tm_pglk_free(tm_lookup_t *lk);

#endif
