/*
 * pg_sink.c — the PostgreSQL sink: a table kept equal to a changelog.
 *
 * Role: each epoch's changes (the records between two checkpoint barriers, or
 * between two flushes without checkpoints) are folded per primary key in
 * memory (last image wins, tm_pgsink_fold_t), then written in one go:
 *
 *   keyed target     COPY into an unlogged staging table (op flag + columns),
 *                    one INSERT … SELECT … ON CONFLICT (key) DO UPDATE for the
 *                    upserts, one DELETE … USING for the deletes, TRUNCATE stage
 *   append-only      COPY straight into the target
 *
 * The staging table is a regular UNLOGGED table, not a temporary one, because
 * PostgreSQL refuses to PREPARE a transaction that touched a temporary table.
 *
 * Delivery (DESIGN §6):
 *
 *   mode            precommit(N)                    commit(N)               recover(N)
 *   at-least-once   write + COMMIT                  -                       -
 *   two-phase       write + PREPARE TRANSACTION     COMMIT PREPARED every   COMMIT PREPARED
 *   (exactly-once,  'tidemark:<job>:<sink>:<N>'     prepared epoch <= N     gids <= N, ROLLBACK
 *   max_prepared_                                   ("does not exist" = it  PREPARED newer ones
 *   transactions>0)                                 was committed already)
 *   decision log    write into an open transaction  upsert tidemark_progress -  (sink_decided
 *   (exactly-once,                                  (job, sink, N, progress) reads the progress
 *   no prepared                                     in it, then COMMIT      row)
 *   transactions)
 *
 * Invariants:
 *   1. An epoch's changes reach the target in one transaction, so a reader
 *      never sees half an epoch, and (exactly-once) the transaction is
 *      committed only once its checkpoint has completed.
 *   2. The open epoch's changes stay in the sink's own buffer until they are
 *      durable (prepared, committed, or sealed with the decision log's
 *      transaction), so a lost connection or a restarted server is retried
 *      with backoff and the epoch redone from the buffer, up to retry_timeout.
 *      The one exception is an epoch larger than batch_size: its first part is
 *      written early into the open transaction, which cannot then be redone,
 *      and a connection lost in it fails the job, which recovers from its last
 *      checkpoint.
 *   3. Between PREPARE of N and COMMIT PREPARED of N nothing else is written
 *      (the coordinator requests barrier N+1 only after every sink committed
 *      N, and an early write of N+1 waits for that), so epoch N+1 never waits
 *      on row locks held by prepared transaction N.
 *   4. One sink instance writes a target at a time: the session holds the
 *      advisory lock hashtext('tidemark:<job>:<sink>'), taken at open (and
 *      again after a reconnect).  A new instance waits for the old backend
 *      to finish (kill -9: the server ends it when the socket closes) before
 *      it scans pg_prepared_xacts or reads the progress row.
 *   5. Changes of one key arrive in order: the sink runs as one instance,
 *      and the planner feeds a keyed sink from an exchange keyed on the same
 *      columns, so all changes of a key come from one upstream subtask, in
 *      that subtask's order (plan.c sink_check), or from one source in its
 *      own order (tm_sink_config_t.upserts).
 *   6. A row the target rejects (a constraint, a value its column cannot
 *      hold: SQLSTATE classes 22 and 23) fails the job under on_error =
 *      'fail'.  Otherwise the write runs under a savepoint, and when it fails
 *      the epoch's rows are written again in halves under savepoints of their
 *      own until the rejected rows are alone; those are skipped, logged,
 *      counted and (dead-letter) appended to the dead-letter file with the
 *      server's message, and the rest of the epoch is written.  A redone
 *      epoch (invariant 2) rejects its rows again: dead letters are
 *      at-least-once, as everywhere (runtime/deadletter.h).
 *   7. An exactly-once epoch is written and prepared (or sealed) in the
 *      background, by a writer thread started at the barrier, so that the
 *      pipeline goes on folding the next epoch meanwhile instead of waiting
 *      for the target (connector.h, sink_precommit_poll).  While the writer
 *      runs it alone uses the connection and the target's shape (columns,
 *      statements, DDL): the sink thread only folds into `cur`, skips early
 *      writes, and waits for the writer before it changes the shape (a new
 *      stream column) or the connection (commit).  The epoch counts as
 *      pre-committed only once the writer is done.
 *
 * Thread: main (new, open, decided, recover, free), sink (write, flush,
 * precommit, poll, commit), the writer (the background pre-commit).
 */
#include "postgres/pg_sink.h"
#include "postgres/pg_lookup.h"

#include "core/clock.h"
#include "core/datum.h"
#include "core/errcount.h"
#include "core/error.h"
#include "core/failpoint.h"
#include "core/log.h"
#include "core/options.h"
#include "expr/expr.h"
#include "postgres/pg_conn.h"
#include "postgres/pg_types.h"
#include "postgres/postgres_int.h"
#include "runtime/connector.h"
#include "runtime/deadletter.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define PS_COMP "postgres-sink"
/* COPY data goes to the server in chunks of this size. */
#define PS_COPY_CHUNK (1 << 20)
/* Record schemas whose column mapping is cached. */
#define PS_MAPS 8
/* How long open waits for a previous instance's advisory lock. */
#define PS_LOCK_WAIT_MS 30000
/* PostgreSQL's limit on a prepared transaction's gid, with its NUL. */
#define PS_GID_MAX 200

static const tm_option_def_t ps_options[] = {
    {"dsn", TM_OPT_DSN, true, NULL, NULL,
     "libpq connection string of the target database (host=… dbname=… user=…)."},
    {"table", TM_OPT_STRING, false, NULL, NULL,
     "Target table, optionally schema-qualified (analytics.customer_revenue); default the "
     "sink's name in the job."},
    {"create_table", TM_OPT_BOOL, false, "false", NULL,
     "Create the target table from the sink's columns when it does not exist."},
    {"delivery", TM_OPT_ENUM, false, "at-least-once", "at-least-once|exactly-once",
     "exactly-once writes each checkpoint epoch in one transaction committed with the "
     "checkpoint (two-phase commit, or the decision log); needs SET checkpoint_interval."},
    {"schema_evolution", TM_OPT_ENUM, false, "none", "none|add_columns",
     "A stream column the target lacks: stop with an error, or ALTER TABLE … ADD COLUMN."},
    {"batch_size", TM_OPT_INT, false, "100000", NULL,
     "Distinct keys (rows, for append-only targets) buffered before they are written."},
    {"retry_timeout", TM_OPT_DURATION, false, "60s", NULL,
     "How long to retry an unreachable or restarting target (backoff 0.5 s to 30 s) before "
     "the job fails; 0 fails at once."},
    {"progress_table", TM_OPT_STRING, false, "tidemark_progress", NULL,
     "Decision-log mode (exactly-once without prepared transactions): the table that records "
     "each committed checkpoint."},
    {NULL, 0, false, NULL, NULL, NULL},
};

typedef enum { PS_ALO = 0, PS_2PC, PS_DLOG } ps_mode_t;

/* The column mapping of one record schema onto the target's columns. */
typedef struct ps_map {
    tm_schema_t *schema; /* one reference held, so the address stays unique */
    int *idx;            /* per target column: the record column, or -1 */
    int ncols;           /* target columns when built */
} ps_map_t;

struct tm_sink {
    /* Configuration (sink_new). */
    char *name;
    char *job;
    char *dsn;
    char *dsn_masked;
    char *nsp, *rel;  /* target, unquoted; nsp NULL when unqualified */
    char *target_q;   /* quoted, qualified */
    char *stage_q;    /* quoted staging table, same schema */
    char *progress_q; /* quoted progress table */
    char *gid_prefix; /* tidemark:<job>:<sink>: */
    bool create;
    bool eos;
    bool add_columns;
    bool checkpointing;
    bool upserts; /* tm_sink_config_t.upserts: fed one source's upserts in order */
    int64_t batch_size;
    int64_t retry_ms;
    tm_schema_t *declared;

    /* Target shape (setup). */
    bool ready;
    tm_column_t *cols; /* target columns written, in COPY order (names owned) */
    int ncols, capcols;
    int *keys; /* indices into cols */
    int nkeys;
    bool stage_ready;
    char **ddl; /* ALTER TABLE statements for the next transaction */
    int nddl;
    tm_buf_t sql_copy, sql_upsert, sql_delete;

    /* Connection and delivery state (sink thread after open). */
    PGconn *conn;
    ps_mode_t mode;
    bool txn_open;    /* BEGIN issued for the current epoch (or the sealed one) */
    bool txn_partial; /* part of the epoch was written early: no redo */
    uint64_t *prepared; /* two-phase: epochs prepared, not yet committed */
    int nprepared, capprepared;
    tm_pgsink_fold_t cur;     /* the epoch being received */
    tm_pgsink_fold_t sealed;  /* decision log: the epoch waiting for commit */
    tm_pgsink_fold_t writing; /* two-phase: the epoch being prepared by the writer */
    /* The background pre-commit (invariant 7). */
    pthread_t w_thread;
    pthread_mutex_t w_mu;
    pthread_cond_t w_cv;
    bool w_sync_ready;  /* w_mu and w_cv initialised */
    bool w_running;     /* started and not joined yet */
    bool w_done;        /* under w_mu: the writer has finished */
    bool w_collected;   /* joined; w_rc not yet reported by poll */
    int w_rc;
    char w_err[1024];
    uint64_t w_epoch;
    char w_gid[200];
    int (*w_step)(tm_sink_t *s, void *arg, bool retry, char *errstr, size_t errstr_size);
    void *w_arg;
    bool w_redoable;
    uint64_t sealed_epoch;
    bool sealed_partial;
    ps_map_t maps[PS_MAPS];
    int next_map;
    tm_arena_t scratch;
    tm_buf_t line, key;
    uint64_t truncates_skipped;
    uint64_t rows_written;
    /* on_error (invariant 6). */
    int on_error; /* tm_sink_config_t.on_error */
    tm_dead_letter_t *dl;
    char sqlstate[6]; /* of the last failed statement, "" if none */
    uint64_t rows_rejected;
    int64_t rejected_warned_ms;
};

enum { PS_ON_ERROR_FAIL = 0, PS_ON_ERROR_SKIP = 1, PS_ON_ERROR_DEAD_LETTER = 2 };

/* ------------------------------------------------------------------ fold */

void tm_pgsink_fold_init(tm_pgsink_fold_t *f, bool keyed)
{
    memset(f, 0, sizeof(*f));
    f->keyed = keyed;
    tm_arena_init(&f->arena, 1 << 20);
}

void tm_pgsink_fold_release(tm_pgsink_fold_t *f)
{
    tm_arena_release(&f->arena);
    free(f->ents);
    free(f->slots);
    memset(f, 0, sizeof(*f));
}

void tm_pgsink_fold_clear(tm_pgsink_fold_t *f)
{
    tm_arena_reset(&f->arena);
    if (f->slots != NULL && f->n > 0)
        memset(f->slots, 0, f->nslots * sizeof(*f->slots));
    f->n = 0;
    f->spare = NULL;
    f->changes = 0;
}

static int fold_rehash(tm_pgsink_fold_t *f, size_t nslots)
{
    uint32_t *slots = calloc(nslots, sizeof(*slots));
    if (slots == NULL)
        return TM_ENOMEM;
    for (size_t i = 0; i < f->n; i++) {
        size_t h = (size_t)f->ents[i].hash & (nslots - 1);
        while (slots[h] != 0)
            h = (h + 1) & (nslots - 1);
        slots[h] = (uint32_t)i + 1;
    }
    free(f->slots);
    f->slots = slots;
    f->nslots = nslots;
    return 0;
}

static uint64_t fold_hash(const char *p, size_t len)
{
    /* FNV-1a, then a final mix: keys are short text. */
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)p[i]) * 1099511628211ull;
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

int tm_pgsink_fold_put(tm_pgsink_fold_t *f, const char *key, size_t keylen, const char *line,
                       size_t linelen, int ncols, int delta)
{
    if (linelen > UINT32_MAX || keylen > UINT32_MAX)
        return TM_EINVAL;
    f->changes++;
    tm_pgsink_entry_t *e = NULL;
    uint64_t hash = 0;
    size_t slot = 0;
    if (f->keyed) {
        if (f->nslots == 0 || (f->n + 1) * 2 > f->nslots) {
            int rc = fold_rehash(f, f->nslots ? f->nslots * 2 : 1024);
            if (rc != 0)
                return rc;
        }
        hash = fold_hash(key, keylen);
        slot = (size_t)hash & (f->nslots - 1);
        while (f->slots[slot] != 0) {
            tm_pgsink_entry_t *c = &f->ents[f->slots[slot] - 1];
            if (c->hash == hash && c->keylen == keylen && memcmp(c->key, key, keylen) == 0) {
                e = c;
                break;
            }
            slot = (slot + 1) & (f->nslots - 1);
        }
    }
    if (e != NULL && (delta == 0 || delta == TM_PGSINK_REPLACE)) {
        /* A key-only retraction or an upsert: whatever the key held in this epoch is gone. */
        while (e->images != NULL) {
            tm_pgsink_image_t *im = e->images;
            e->images = im->next;
            im->next = f->spare;
            f->spare = im;
        }
    } else if (e != NULL) {
        /* An equal image of the key: the counts add up, and a 0 leaves the list. */
        for (tm_pgsink_image_t **pp = &e->images; *pp != NULL; pp = &(*pp)->next) {
            tm_pgsink_image_t *im = *pp;
            if (im->linelen != linelen || memcmp(im->line, line, linelen) != 0)
                continue;
            im->net += delta;
            if (im->net == 0) {
                *pp = im->next;
                im->next = f->spare;
                f->spare = im;
            } else if (pp != &e->images) {
                /* The newest change of the key comes first. */
                *pp = im->next;
                im->next = e->images;
                e->images = im;
            }
            return 0;
        }
    } else {
        if (f->n == f->cap) {
            size_t ncap = f->cap ? f->cap * 2 : 1024;
            tm_pgsink_entry_t *n = realloc(f->ents, ncap * sizeof(*n));
            if (n == NULL)
                return TM_ENOMEM;
            f->ents = n;
            f->cap = ncap;
        }
        e = &f->ents[f->n];
        memset(e, 0, sizeof(*e));
        if (f->keyed) {
            char *kcopy = tm_arena_memdup(&f->arena, key, keylen);
            if (kcopy == NULL)
                return TM_ENOMEM;
            e->key = kcopy;
            e->keylen = (uint32_t)keylen;
            e->hash = hash;
            f->slots[slot] = (uint32_t)f->n + 1;
        }
        f->n++;
    }
    tm_pgsink_image_t *im = f->spare;
    if (im != NULL)
        f->spare = im->next;
    else if ((im = tm_arena_alloc(&f->arena, sizeof(*im))) == NULL)
        return TM_ENOMEM;
    char *lcopy = tm_arena_memdup(&f->arena, line, linelen);
    if (lcopy == NULL)
        return TM_ENOMEM;
    im->line = lcopy;
    im->linelen = (uint32_t)linelen;
    im->ncols = (uint16_t)ncols;
    im->net = delta == TM_PGSINK_REPLACE ? 1 : delta != 0 ? delta : -1;
    im->next = e->images;
    e->images = im;
    return 0;
}

const tm_pgsink_image_t *tm_pgsink_fold_result(const tm_pgsink_entry_t *e, bool *del,
                                               bool *conflict)
{
    const tm_pgsink_image_t *added = NULL, *retracted = NULL;
    *conflict = false;
    for (const tm_pgsink_image_t *im = e->images; im != NULL; im = im->next) {
        if (im->net > 0) {
            if (added != NULL || im->net > 1)
                *conflict = true;
            if (added == NULL)
                added = im;
        } else if (retracted == NULL) {
            retracted = im;
        }
    }
    *del = added == NULL && retracted != NULL;
    return added != NULL ? added : retracted;
}

/* ------------------------------------------------------------ encoding */

int tm_pgsink_copy_escape(tm_buf_t *buf, const char *s, size_t len)
{
    if (tm_buf_reserve(buf, len + 8) != 0)
        return TM_ENOMEM;
    size_t start = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        const char *esc = c == '\\' ? "\\\\" : c == '\t' ? "\\t" : c == '\n' ? "\\n"
                                              : c == '\r' ? "\\r" : NULL;
        if (esc == NULL)
            continue;
        if (tm_buf_append(buf, s + start, i - start) != 0 || tm_buf_append(buf, esc, 2) != 0)
            return TM_ENOMEM;
        start = i + 1;
    }
    return tm_buf_append(buf, s + start, len - start) != 0 ? TM_ENOMEM : 0;
}

void tm_pgsink_type_sql(const tm_column_t *col, char *buf, size_t buflen)
{
    switch (col->type) {
    case TM_T_BOOL:
        snprintf(buf, buflen, "boolean");
        return;
    case TM_T_INT16:
        snprintf(buf, buflen, "smallint");
        return;
    case TM_T_INT32:
        snprintf(buf, buflen, "integer");
        return;
    case TM_T_INT64:
        snprintf(buf, buflen, "bigint");
        return;
    case TM_T_FLOAT32:
        snprintf(buf, buflen, "real");
        return;
    case TM_T_FLOAT64:
        snprintf(buf, buflen, "double precision");
        return;
    case TM_T_NUMERIC:
        if (col->precision > 0 && col->scale >= 0)
            snprintf(buf, buflen, "numeric(%d,%d)", (int)col->precision, (int)col->scale);
        else
            snprintf(buf, buflen, "numeric");
        return;
    case TM_T_TEXT:
        if (col->length > 0)
            snprintf(buf, buflen, "varchar(%d)", (int)col->length);
        else
            snprintf(buf, buflen, "text");
        return;
    case TM_T_BYTES:
        snprintf(buf, buflen, "bytea");
        return;
    case TM_T_JSON:
        snprintf(buf, buflen, "%s",
                 col->db_type != NULL && strcmp(col->db_type, "json") == 0 ? "json" : "jsonb");
        return;
    case TM_T_UUID:
        snprintf(buf, buflen, "uuid");
        return;
    case TM_T_DATE:
        snprintf(buf, buflen, "date");
        return;
    case TM_T_TIME:
        snprintf(buf, buflen, "time without time zone");
        return;
    case TM_T_TIMETZ:
        snprintf(buf, buflen, "time with time zone");
        return;
    case TM_T_TIMESTAMP:
        snprintf(buf, buflen, "timestamp without time zone");
        return;
    case TM_T_TIMESTAMPTZ:
        snprintf(buf, buflen, "timestamp with time zone");
        return;
    case TM_T_INTERVAL:
        snprintf(buf, buflen, "interval");
        return;
    case TM_T_ARRAY:
        /* Arrays travel as JSON array text (schema.h). */
        snprintf(buf, buflen, "jsonb");
        return;
    default:
        snprintf(buf, buflen, "text");
        return;
    }
}

static bool name_in(const char *name, const char *const *list)
{
    for (int i = 0; list[i] != NULL; i++)
        if (strcmp(name, list[i]) == 0)
            return true;
    return false;
}

bool tm_pgsink_type_accepts(const char *typname, char typtype, const tm_column_t *col)
{
    static const char *const texty[] = {"text", "varchar", "bpchar", "citext", "name", NULL};
    static const char *const ints[] = {"int2", "int4", "int8", "numeric", NULL};
    static const char *const floats[] = {"float4", "float8", "numeric", NULL};
    static const char *const jsons[] = {"json", "jsonb", NULL};
    /* Any value's text form fits a text column. */
    if (name_in(typname, texty))
        return true;
    if (typtype == 'd')
        return true; /* a domain: its input function decides, at write time */
    switch (col->type) {
    case TM_T_BOOL:
        return strcmp(typname, "bool") == 0;
    case TM_T_INT16:
        return name_in(typname, ints);
    case TM_T_INT32:
        return strcmp(typname, "int2") != 0 && name_in(typname, ints);
    case TM_T_INT64:
        return strcmp(typname, "int8") == 0 || strcmp(typname, "numeric") == 0;
    case TM_T_FLOAT32:
        return name_in(typname, floats);
    case TM_T_FLOAT64:
        return strcmp(typname, "float8") == 0 || strcmp(typname, "numeric") == 0;
    case TM_T_NUMERIC:
        return strcmp(typname, "numeric") == 0 || strcmp(typname, "money") == 0;
    case TM_T_BYTES:
        return strcmp(typname, "bytea") == 0;
    case TM_T_JSON:
    case TM_T_ARRAY:
        return name_in(typname, jsons);
    case TM_T_UUID:
        return strcmp(typname, "uuid") == 0;
    case TM_T_DATE:
        return strcmp(typname, "date") == 0 || strcmp(typname, "timestamp") == 0 ||
               strcmp(typname, "timestamptz") == 0;
    case TM_T_TIME:
        return strcmp(typname, "time") == 0;
    case TM_T_TIMETZ:
        return strcmp(typname, "timetz") == 0;
    case TM_T_TIMESTAMP:
        return strcmp(typname, "timestamp") == 0 || strcmp(typname, "timestamptz") == 0;
    case TM_T_TIMESTAMPTZ:
        return strcmp(typname, "timestamptz") == 0;
    case TM_T_INTERVAL:
        return strcmp(typname, "interval") == 0;
    case TM_T_ENUM:
        return typtype == 'e';
    default:
        return true; /* TM_T_OTHER: the database's own text form */
    }
}

/* ---------------------------------------------------------- life cycle */

static void ps_free(tm_sink_t *s)
{
    if (s == NULL)
        return;
    if (s->conn != NULL)
        PQfinish(s->conn);
    free(s->name);
    free(s->job);
    free(s->dsn);
    free(s->dsn_masked);
    free(s->nsp);
    free(s->rel);
    free(s->target_q);
    free(s->stage_q);
    free(s->progress_q);
    free(s->gid_prefix);
    tm_schema_unref(s->declared);
    for (int i = 0; i < s->ncols; i++) {
        free(s->cols[i].name);
        free(s->cols[i].db_type);
    }
    free(s->cols);
    free(s->keys);
    for (int i = 0; i < s->nddl; i++)
        free(s->ddl[i]);
    free(s->ddl);
    tm_buf_release(&s->sql_copy);
    tm_buf_release(&s->sql_upsert);
    tm_buf_release(&s->sql_delete);
    if (s->w_running)
        pthread_join(s->w_thread, NULL);
    if (s->w_sync_ready) {
        pthread_mutex_destroy(&s->w_mu);
        pthread_cond_destroy(&s->w_cv);
    }
    free(s->prepared);
    tm_pgsink_fold_release(&s->cur);
    tm_pgsink_fold_release(&s->sealed);
    tm_pgsink_fold_release(&s->writing);
    for (int i = 0; i < PS_MAPS; i++) {
        tm_schema_unref(s->maps[i].schema);
        free(s->maps[i].idx);
    }
    tm_arena_release(&s->scratch);
    tm_buf_release(&s->line);
    tm_buf_release(&s->key);
    tm_dead_letter_free(s->dl);
    free(s);
}

/* "a.b" → quoted "a"."b"; names are taken as written (no case folding). */
static char *qualify(const char *nsp, const char *rel)
{
    char *r = tm_pg_quote_ident(rel);
    if (nsp == NULL || r == NULL)
        return r;
    char *n = tm_pg_quote_ident(nsp);
    char *out = NULL;
    if (n != NULL) {
        size_t len = strlen(n) + strlen(r) + 2;
        out = malloc(len);
        if (out != NULL)
            snprintf(out, len, "%s.%s", n, r);
    }
    free(n);
    free(r);
    return out;
}

static int ps_new(tm_sink_t **out, const tm_sink_config_t *cfg, char *errstr, size_t errstr_size)
{
    *out = NULL;
    tm_sink_t *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return TM_ENOMEM;
    const tm_options_t *o = cfg->opts;
    s->name = strdup(cfg->name);
    s->job = strdup(cfg->job ? cfg->job : "job");
    s->dsn = strdup(tm_opt_str(o, "dsn"));
    s->dsn_masked = s->dsn ? tm_dsn_mask(s->dsn) : NULL;
    s->create = tm_opt_bool(o, "create_table");
    s->eos = strcasecmp(tm_opt_str(o, "delivery"), "exactly-once") == 0;
    s->add_columns = strcasecmp(tm_opt_str(o, "schema_evolution"), "add_columns") == 0;
    s->checkpointing = cfg->checkpointing;
    s->upserts = cfg->upserts;
    s->on_error = cfg->on_error;
    if (s->on_error == PS_ON_ERROR_DEAD_LETTER && cfg->dead_letter_dir != NULL) {
        char uid[300];
        snprintf(uid, sizeof(uid), "sink/%s", cfg->name);
        s->dl = tm_dead_letter_new(cfg->dead_letter_dir, s->job, uid, 0);
        if (s->dl == NULL) {
            ps_free(s);
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
        }
    }
    s->batch_size = tm_opt_int(o, "batch_size");
    s->retry_ms = tm_opt_duration_ms(o, "retry_timeout");
    s->declared = cfg->declared ? tm_schema_ref((tm_schema_t *)cfg->declared) : NULL;
    tm_pgsink_fold_init(&s->cur, false);
    tm_pgsink_fold_init(&s->sealed, false);
    tm_pgsink_fold_init(&s->writing, false);
    if (pthread_mutex_init(&s->w_mu, NULL) == 0) {
        if (pthread_cond_init(&s->w_cv, NULL) == 0)
            s->w_sync_ready = true;
        else
            pthread_mutex_destroy(&s->w_mu);
    }
    tm_arena_init(&s->scratch, 64 << 10);
    tm_buf_init(&s->line);
    tm_buf_init(&s->key);
    tm_buf_init(&s->sql_copy);
    tm_buf_init(&s->sql_upsert);
    tm_buf_init(&s->sql_delete);
    int rc = 0;
    if (!s->name || !s->job || !s->dsn || !s->dsn_masked || !s->w_sync_ready)
        rc = TM_ENOMEM;
    const char *table = rc == 0 ? tm_opt_str(o, "table") : NULL;
    if (rc == 0 && (table == NULL || table[0] == '\0'))
        table = cfg->name;
    if (rc == 0) {
        const char *dot = strchr(table, '.');
        if (dot != NULL) {
            s->nsp = strndup(table, (size_t)(dot - table));
            s->rel = strdup(dot + 1);
        } else {
            s->rel = strdup(table);
        }
        if (s->rel == NULL || (dot != NULL && s->nsp == NULL))
            rc = TM_ENOMEM;
        else if (s->rel[0] == '\0' || (s->nsp != NULL && s->nsp[0] == '\0') ||
                 strchr(s->rel, '.') != NULL)
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': option 'table' = '%s' is not a table name; write "
                           "'name' or 'schema.name'",
                           s->name, table);
    }
    if (rc == 0 && s->batch_size <= 0)
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': batch_size must be at least 1", s->name);
    if (rc == 0) {
        char stage[128];
        uint64_t h = fold_hash(s->job, strlen(s->job)) ^ fold_hash(s->name, strlen(s->name));
        /* At most 30 bytes of the name, cut on a UTF-8 character boundary. */
        int cut = (int)strlen(s->rel) < 30 ? (int)strlen(s->rel) : 30;
        while (cut > 0 && ((unsigned char)s->rel[cut] & 0xC0) == 0x80)
            cut--;
        snprintf(stage, sizeof(stage), "tidemark_stage_%.*s_%08x", cut, s->rel, (unsigned)h);
        s->target_q = qualify(s->nsp, s->rel);
        s->stage_q = qualify(s->nsp, stage);
        const char *pt = tm_opt_str(o, "progress_table");
        const char *pdot = strchr(pt, '.');
        char *pn = pdot ? strndup(pt, (size_t)(pdot - pt)) : NULL;
        s->progress_q = qualify(pn, pdot ? pdot + 1 : pt);
        free(pn);
        size_t glen = strlen(s->job) + strlen(s->name) + 16;
        s->gid_prefix = malloc(glen);
        if (s->gid_prefix)
            snprintf(s->gid_prefix, glen, "tidemark:%s:%s:", s->job, s->name);
        if (!s->target_q || !s->stage_q || !s->progress_q || !s->gid_prefix)
            rc = TM_ENOMEM;
        else if (strlen(s->gid_prefix) + 21 >= PS_GID_MAX)
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                           "table '%s': the job and sink names are too long for a prepared "
                           "transaction's id (%s…, at most %d bytes); use shorter names",
                           s->name, s->gid_prefix, PS_GID_MAX - 22);
    }
    if (rc == 0 && s->eos && !cfg->checkpointing)
        rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                       "table '%s': delivery = 'exactly-once' commits one PostgreSQL transaction "
                       "per checkpoint, so the job needs checkpoints: add SET "
                       "checkpoint_interval = '10s'; to the job, or use delivery = "
                       "'at-least-once'",
                       s->name);
    if (rc != 0) {
        ps_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

/* ---------------------------------------------------------- statements */

/*
 * The error of a failed result (or of the connection when res is NULL) as one
 * sentence: the server's message, its detail and context (which names the
 * COPY line and column), and whether a retry can help (TM_ECONN) or not
 * (TM_ESINK).
 */
static int ps_fail(tm_sink_t *s, PGresult *res, const char *what, char *errstr,
                   size_t errstr_size)
{
    char m[600], d[400], c[400];
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    snprintf(s->sqlstate, sizeof(s->sqlstate), "%s", state ? state : "");
    const char *primary = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
    tm_pg_msg(primary ? primary : res ? PQresultErrorMessage(res) : PQerrorMessage(s->conn), m,
              sizeof(m));
    if (m[0] == '\0')
        tm_pg_msg(PQerrorMessage(s->conn), m, sizeof(m));
    const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
    const char *ctx = res ? PQresultErrorField(res, PG_DIAG_CONTEXT) : NULL;
    tm_pg_msg(detail, d, sizeof(d));
    tm_pg_msg(ctx, c, sizeof(c));
    bool retry = tm_pgc_broken(s->conn) || tm_pgc_retriable(state);
    return tm_seterr(errstr, errstr_size, retry ? TM_ECONN : TM_ESINK,
                     "table '%s': PostgreSQL target %s failed at %s: %s%s%s%s%s%s", s->name,
                     s->target_q, what, m, d[0] ? " (" : "", d, d[0] ? ")" : "",
                     c[0] ? "; where: " : "", c);
}

static int ps_exec(tm_sink_t *s, const char *sql, const char *what, char *errstr,
                   size_t errstr_size)
{
    PGresult *res = PQexec(s->conn, sql);
    ExecStatusType st = PQresultStatus(res);
    int rc = 0;
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK)
        rc = ps_fail(s, res, what, errstr, errstr_size);
    PQclear(res);
    return rc;
}

/* Runs a one-parameter-or-none query; the caller PQclear()s *out. */
static int ps_query(tm_sink_t *s, const char *sql, int nparams, const char *const *params,
                    const char *what, PGresult **out, char *errstr, size_t errstr_size)
{
    PGresult *res = PQexecParams(s->conn, sql, nparams, NULL, params, NULL, NULL, 0);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        int rc = ps_fail(s, res, what, errstr, errstr_size);
        PQclear(res);
        return rc;
    }
    *out = res;
    return 0;
}

/* Takes the sink's advisory lock (invariant 4), waiting up to PS_LOCK_WAIT_MS. */
static int ps_lock(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    const char *params[1] = {s->gid_prefix};
    int64_t until = tm_mono_ms() + PS_LOCK_WAIT_MS;
    for (;;) {
        PGresult *res = NULL;
        int rc = ps_query(s, "SELECT pg_try_advisory_lock(hashtext($1))", 1, params,
                          "taking the sink's advisory lock", &res, errstr, errstr_size);
        if (rc != 0)
            return rc;
        bool got = strcmp(PQgetvalue(res, 0, 0), "t") == 0;
        PQclear(res);
        if (got)
            return 0;
        if (tm_mono_ms() > until)
            return tm_seterr(errstr, errstr_size, TM_ESINK,
                             "table '%s': another session holds the advisory lock of this "
                             "job's sink on %s (hashtext('%s')): is another tidemark running "
                             "the same job? Stop it, or give this job another name",
                             s->name, s->dsn_masked, s->gid_prefix);
        struct timespec ts = {0, 200 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* Server notices (DROP … IF EXISTS "skipping") are not worth a line on stderr. */
static void quiet_notice(void *arg, const char *message)
{
    (void)arg;
    (void)message;
}

/* Connects (or reconnects) and takes the advisory lock; no retry here. */
static int ps_connect_once(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    if (s->conn != NULL) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    /* A new session has no open transaction: whatever was open is gone. */
    s->txn_open = false;
    int rc = tm_pgc_connect(s->dsn, s->dsn_masked, false, " (sink target)", &s->conn, errstr,
                            errstr_size);
    if (rc == 0) {
        PQsetNoticeProcessor(s->conn, quiet_notice, NULL);
        rc = ps_lock(s, errstr, errstr_size);
    }
    return rc;
}

/* Connects, retrying a retriable failure with backoff for up to retry_timeout. */
static int ps_connect(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    tm_pgc_backoff_t b;
    tm_pgc_backoff_init(&b, s->retry_ms);
    for (;;) {
        int rc = ps_connect_once(s, errstr, errstr_size);
        if (rc != TM_ECONN)
            return rc;
        TM_WARN(PS_COMP, "target unreachable, retrying", "sink=%s attempt=%d error=\"%s\"",
                s->name, b.attempts + 1, errstr);
        if (!tm_pgc_backoff_wait(&b))
            return rc;
    }
}

/* ------------------------------------------------------------- target */

static int add_col(tm_sink_t *s, const tm_column_t *c)
{
    if (s->ncols == s->capcols) {
        int ncap = s->capcols ? s->capcols * 2 : 16;
        tm_column_t *n = realloc(s->cols, (size_t)ncap * sizeof(*n));
        if (n == NULL)
            return TM_ENOMEM;
        s->cols = n;
        s->capcols = ncap;
    }
    tm_column_t *d = &s->cols[s->ncols];
    *d = *c;
    d->name = strdup(c->name);
    d->db_type = c->db_type ? strdup(c->db_type) : NULL;
    d->semantic = NULL;
    d->enum_values = NULL;
    d->default_value = NULL;
    if (d->name == NULL || (c->db_type != NULL && d->db_type == NULL)) {
        free(d->name);
        free(d->db_type);
        return TM_ENOMEM;
    }
    s->ncols++;
    return 0;
}

/* Builds the COPY, upsert and delete statements for the current columns. */
static int build_sql(tm_sink_t *s)
{
    tm_buf_t cols;
    tm_buf_init(&cols);
    int rc = 0;
    for (int i = 0; rc == 0 && i < s->ncols; i++) {
        char *q = tm_pg_quote_ident(s->cols[i].name);
        rc = q ? tm_buf_appendf(&cols, "%s%s", i ? ", " : "", q) : TM_ENOMEM;
        free(q);
    }
    tm_buf_clear(&s->sql_copy);
    tm_buf_clear(&s->sql_upsert);
    tm_buf_clear(&s->sql_delete);
    if (rc == 0 && s->nkeys == 0) {
        rc = tm_buf_appendf(&s->sql_copy, "COPY %s (%s) FROM STDIN", s->target_q, cols.data);
    } else if (rc == 0) {
        rc = tm_buf_appendf(&s->sql_copy, "COPY %s (\"__tidemark_delete\", %s) FROM STDIN",
                            s->stage_q, cols.data);
        tm_buf_t keys, set, on;
        tm_buf_init(&keys);
        tm_buf_init(&set);
        tm_buf_init(&on);
        for (int i = 0; rc == 0 && i < s->ncols; i++) {
            char *q = tm_pg_quote_ident(s->cols[i].name);
            bool key = false;
            for (int k = 0; k < s->nkeys; k++)
                key |= s->keys[k] == i;
            if (q == NULL)
                rc = TM_ENOMEM;
            else if (key)
                rc = tm_buf_appendf(&keys, "%s%s", keys.len ? ", " : "", q) ||
                     tm_buf_appendf(&on, "%st.%s = s.%s", on.len ? " AND " : "", q, q);
            else
                rc = tm_buf_appendf(&set, "%s%s = EXCLUDED.%s", set.len ? ", " : "", q, q);
            free(q);
        }
        if (rc == 0)
            rc = tm_buf_appendf(&s->sql_upsert,
                                "INSERT INTO %s (%s) SELECT %s FROM %s WHERE NOT "
                                "\"__tidemark_delete\" ON CONFLICT (%s) DO %s%s",
                                s->target_q, cols.data, cols.data, s->stage_q, keys.data,
                                set.len ? "UPDATE SET " : "NOTHING", set.len ? set.data : "");
        if (rc == 0)
            rc = tm_buf_appendf(&s->sql_delete,
                                "DELETE FROM %s t USING %s s WHERE s.\"__tidemark_delete\" AND %s",
                                s->target_q, s->stage_q, on.data);
        tm_buf_release(&keys);
        tm_buf_release(&set);
        tm_buf_release(&on);
    }
    tm_buf_release(&cols);
    return rc ? TM_ENOMEM : 0;
}

/* One column of the existing target (check_target). */
typedef struct tcol {
    char *name, *typname, *format;
    char typtype;
    bool notnull, hasdef, pk;
} tcol_t;

static const char TARGET_COLS_SQL[] =
    "SELECT a.attname, t.typname, format_type(a.atttypid, a.atttypmod), t.typtype, "
    "a.attnotnull, a.atthasdef, coalesce(a.attnum = ANY(i.indkey), false) "
    "FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid "
    "LEFT JOIN pg_index i ON i.indrelid = a.attrelid AND i.indisprimary "
    "WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped "
    "ORDER BY a.attnum";

static int create_target(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    tm_buf_t sql;
    tm_buf_init(&sql);
    int rc = tm_buf_appendf(&sql, "CREATE TABLE IF NOT EXISTS %s (", s->target_q);
    for (int i = 0; rc == 0 && i < s->ncols; i++) {
        char type[64];
        tm_pgsink_type_sql(&s->cols[i], type, sizeof(type));
        char *q = tm_pg_quote_ident(s->cols[i].name);
        rc = q ? tm_buf_appendf(&sql, "%s%s %s%s", i ? ", " : "", q, type,
                                s->cols[i].nullable ? "" : " NOT NULL")
               : TM_ENOMEM;
        free(q);
    }
    for (int k = 0; rc == 0 && k < s->nkeys; k++) {
        char *q = tm_pg_quote_ident(s->cols[s->keys[k]].name);
        rc = q ? tm_buf_appendf(&sql, "%s%s", k ? ", " : ", PRIMARY KEY (", q) : TM_ENOMEM;
        free(q);
    }
    if (rc == 0)
        rc = tm_buf_appendf(&sql, "%s)", s->nkeys ? ")" : "");
    if (rc == 0) {
        rc = ps_exec(s, sql.data, "CREATE TABLE", errstr, errstr_size);
        if (rc == 0)
            TM_INFO(PS_COMP, "created the target table", "sink=%s table=%s columns=%d keys=%d",
                    s->name, s->target_q, s->ncols, s->nkeys);
    }
    tm_buf_release(&sql);
    return rc;
}

/*
 * Checks the existing target against the sink's columns: each column exists
 * with a type that takes its values, and a keyed sink's key is the target's
 * primary key (ON CONFLICT needs it).  Creates the table when it is missing
 * and create_table is set.
 */
static int check_target(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    const char *params[1] = {s->target_q};
    PGresult *res = NULL;
    int rc = ps_query(s, TARGET_COLS_SQL, 1, params, "reading the target's columns", &res, errstr,
                      errstr_size);
    if (rc != 0)
        return rc;
    int n = PQntuples(res);
    if (n == 0) {
        PQclear(res);
        if (!s->create)
            return tm_seterr(errstr, errstr_size, TM_ESINK,
                             "table '%s': the target table %s does not exist in %s; create it, "
                             "or set create_table = true",
                             s->name, s->target_q, s->dsn_masked);
        rc = create_target(s, errstr, errstr_size);
        if (rc != 0)
            return rc;
        rc = ps_query(s, TARGET_COLS_SQL, 1, params, "reading the target's columns", &res, errstr,
                      errstr_size);
        if (rc != 0)
            return rc;
        n = PQntuples(res);
    }
    for (int i = 0; rc == 0 && i < s->ncols; i++) {
        const tm_column_t *c = &s->cols[i];
        int r = 0;
        while (r < n && strcmp(PQgetvalue(res, r, 0), c->name) != 0)
            r++;
        char want[64];
        tm_pgsink_type_sql(c, want, sizeof(want));
        if (r == n) {
            rc = tm_seterr(errstr, errstr_size, TM_ESINK,
                           "table '%s': the target table %s has no column \"%s\" (%s); add it "
                           "(ALTER TABLE %s ADD COLUMN \"%s\" %s)%s",
                           s->name, s->target_q, c->name, want, s->target_q, c->name, want,
                           s->add_columns ? "" : ", or set schema_evolution = 'add_columns'");
            if (s->add_columns) {
                char *q = tm_pg_quote_ident(c->name);
                char sql[1024];
                snprintf(sql, sizeof(sql), "ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s",
                         s->target_q, q ? q : "", want);
                free(q);
                rc = ps_exec(s, sql, "ALTER TABLE", errstr, errstr_size);
            }
            continue;
        }
        const char *typname = PQgetvalue(res, r, 1);
        char typtype = PQgetvalue(res, r, 3)[0];
        if (!tm_pgsink_type_accepts(typname, typtype, c))
            rc = tm_seterr(errstr, errstr_size, TM_ESINK,
                           "table '%s': column \"%s\" of the target table %s is %s, but the "
                           "sink writes %s values (%s) into it; change the column's type, or "
                           "cast the value in the query",
                           s->name, c->name, s->target_q, PQgetvalue(res, r, 2),
                           tm_type_name(c->type), want);
    }
    /* A keyed sink needs the same key on the target for ON CONFLICT. */
    if (rc == 0 && s->nkeys > 0) {
        int npk = 0;
        bool same = true;
        for (int r = 0; r < n; r++) {
            if (strcmp(PQgetvalue(res, r, 6), "t") != 0)
                continue;
            npk++;
            bool found = false;
            for (int k = 0; k < s->nkeys; k++)
                found |= strcmp(s->cols[s->keys[k]].name, PQgetvalue(res, r, 0)) == 0;
            same &= found;
        }
        if (!same || npk != s->nkeys) {
            char want[256] = "";
            size_t len = 0;
            for (int k = 0; k < s->nkeys && len < sizeof(want); k++)
                len += (size_t)snprintf(want + len, sizeof(want) - len, "%s%s", k ? ", " : "",
                                        s->cols[s->keys[k]].name);
            rc = tm_seterr(errstr, errstr_size, TM_ESINK,
                           "table '%s': the sink's PRIMARY KEY is (%s), but the target table %s "
                           "%s; upserts need that key: ALTER TABLE %s ADD PRIMARY KEY (%s)",
                           s->name, want, s->target_q,
                           npk == 0 ? "has no primary key" : "has a different primary key",
                           s->target_q, want);
        }
    }
    PQclear(res);
    return rc;
}

/* Learns the target columns (declared, or the first record's schema) and checks the target. */
static int setup(tm_sink_t *s, const tm_schema_t *shape, char *errstr, size_t errstr_size)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < shape->ncols; i++)
        rc = add_col(s, &shape->cols[i]);
    if (rc == 0 && shape->nkeys > 0) {
        s->keys = calloc((size_t)shape->nkeys, sizeof(int));
        if (s->keys == NULL)
            rc = TM_ENOMEM;
        for (int k = 0; rc == 0 && k < shape->nkeys; k++)
            s->keys[k] = shape->key_cols[k];
        s->nkeys = shape->nkeys;
    }
    if (rc == TM_ENOMEM)
        return tm_seterr(errstr, errstr_size, rc, "out of memory");
    s->cur.keyed = s->sealed.keyed = s->writing.keyed = s->nkeys > 0;
    rc = check_target(s, errstr, errstr_size);
    if (rc == 0 && build_sql(s) != 0)
        rc = tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    if (rc == 0) {
        s->ready = true;
        TM_INFO(PS_COMP, "target ready", "sink=%s table=%s columns=%d keys=%d mode=%s", s->name,
                s->target_q, s->ncols, s->nkeys, s->nkeys ? "upsert" : "append");
    }
    return rc;
}

static int ps_open(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    int rc = ps_connect(s, errstr, errstr_size);
    if (rc != 0)
        return rc;
    s->mode = PS_ALO;
    if (s->eos) {
        PGresult *res = NULL;
        rc = ps_query(s, "SELECT current_setting('max_prepared_transactions')::int", 0, NULL,
                      "reading max_prepared_transactions", &res, errstr, errstr_size);
        if (rc != 0)
            return rc;
        int mpt = atoi(PQgetvalue(res, 0, 0));
        PQclear(res);
        if (mpt > 0) {
            s->mode = PS_2PC;
            TM_INFO(PS_COMP, "exactly-once with two-phase commit", "sink=%s gid_prefix=%s",
                    s->name, s->gid_prefix);
        } else {
            s->mode = PS_DLOG;
            TM_WARN(PS_COMP,
                    "the target has max_prepared_transactions = 0: this sink is the job's "
                    "decision log (each checkpoint commits with a row in the progress table)",
                    "sink=%s progress_table=%s", s->name, s->progress_q);
        }
    }
    if (s->declared != NULL && s->declared->ncols > 0)
        rc = setup(s, s->declared, errstr, errstr_size);
    return rc;
}

/* ------------------------------------------------------------ writing */

/* The mapping of a record schema's columns onto the target's (cached). */
static void writer_join(tm_sink_t *s);

static int map_for(tm_sink_t *s, tm_schema_t *schema, const int **idx, char *errstr,
                   size_t errstr_size)
{
    for (int i = 0; i < PS_MAPS; i++)
        if (s->maps[i].schema == schema && s->maps[i].ncols == s->ncols) {
            *idx = s->maps[i].idx;
            return 0;
        }
    /* A new shape may change the target's columns, which the writer reads (invariant 7). */
    writer_join(s);
    /* A stream column the target lacks: add it (schema_evolution) or stop. */
    for (int j = 0; j < schema->ncols; j++) {
        bool found = false;
        for (int i = 0; i < s->ncols && !found; i++)
            found = strcmp(s->cols[i].name, schema->cols[j].name) == 0;
        if (found)
            continue;
        char type[64];
        tm_pgsink_type_sql(&schema->cols[j], type, sizeof(type));
        if (!s->add_columns)
            return tm_seterr(errstr, errstr_size, TM_ESINK,
                             "table '%s': the stream has a new column \"%s\" (%s) that the "
                             "target table %s lacks; add it to the target, or set "
                             "schema_evolution = 'add_columns'",
                             s->name, schema->cols[j].name, type, s->target_q);
        if (s->ncols >= UINT16_MAX)
            return tm_seterr(errstr, errstr_size, TM_ESINK, "table '%s': too many columns",
                             s->name);
        char *q = tm_pg_quote_ident(schema->cols[j].name);
        size_t len = strlen(s->target_q) + (q ? strlen(q) : 0) + strlen(type) + 64;
        char *ddl = q ? malloc(len) : NULL;
        char **v = ddl ? realloc(s->ddl, (size_t)(s->nddl + 1) * sizeof(*v)) : NULL;
        if (v == NULL || add_col(s, &schema->cols[j]) != 0) {
            free(q);
            free(ddl);
            if (v != NULL)
                s->ddl = v;
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
        }
        snprintf(ddl, len, "ALTER TABLE %s ADD COLUMN IF NOT EXISTS %s %s", s->target_q, q, type);
        free(q);
        s->ddl = v;
        s->ddl[s->nddl++] = ddl;
        s->cols[s->ncols - 1].nullable = true;
        s->stage_ready = false;
        if (build_sql(s) != 0)
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
        TM_INFO(PS_COMP, "adding a column to the target", "sink=%s table=%s column=%s type=\"%s\"",
                s->name, s->target_q, schema->cols[j].name, type);
    }
    ps_map_t *m = &s->maps[s->next_map];
    s->next_map = (s->next_map + 1) % PS_MAPS;
    tm_schema_unref(m->schema);
    free(m->idx);
    m->schema = tm_schema_ref(schema);
    m->idx = malloc((size_t)s->ncols * sizeof(int));
    m->ncols = s->ncols;
    if (m->idx == NULL) {
        m->schema = tm_schema_unref(m->schema);
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    }
    for (int i = 0; i < s->ncols; i++)
        m->idx[i] = tm_schema_find(schema, s->cols[i].name);
    for (int k = 0; k < s->nkeys; k++)
        if (m->idx[s->keys[k]] < 0)
            return tm_seterr(errstr, errstr_size, TM_ESINK,
                             "table '%s': the stream has no column \"%s\" of the target's key",
                             s->name, s->cols[s->keys[k]].name);
    *idx = m->idx;
    return 0;
}

/* Appends the COPY text of one value (\N for NULL). */
static int put_value(tm_sink_t *s, tm_buf_t *b, const tm_column_t *scol, const tm_row_t *row,
                     int j, char *errstr, size_t errstr_size)
{
    if (j < 0 || tm_row_is_null(row, j))
        return tm_buf_append(b, "\\N", 2) ? TM_ENOMEM : 0;
    const tm_datum_t *d = &row->vals[j];
    if (d->flags & TM_DATUM_UNAVAILABLE)
        return tm_seterr(errstr, errstr_size, TM_ESINK,
                         "table '%s': column \"%s\" holds an unchanged TOASTed value that the "
                         "source did not send; set REPLICA IDENTITY FULL on the source table",
                         s->name, scol->name);
    /* Integers need neither text conversion through the arena nor escaping: the hot path. */
    if (scol->type == TM_T_INT16 || scol->type == TM_T_INT32 || scol->type == TM_T_INT64)
        return tm_buf_append_i64(b, d->u.i64) ? TM_ENOMEM : 0;
    const char *p = NULL;
    size_t len = 0;
    /* ±infinity of dates and timestamps (pg_types.h conventions). */
    if (scol->type == TM_T_DATE &&
        (d->u.i64 == TM_PG_DATE_POS_INF || d->u.i64 == TM_PG_DATE_NEG_INF))
        p = d->u.i64 > 0 ? "infinity" : "-infinity";
    else if ((scol->type == TM_T_TIMESTAMP || scol->type == TM_T_TIMESTAMPTZ) &&
             (d->u.i64 == TM_PG_TS_POS_INF || d->u.i64 == TM_PG_TS_NEG_INF))
        p = d->u.i64 > 0 ? "infinity" : "-infinity";
    if (p != NULL) {
        len = strlen(p);
    } else if (scol->type == TM_T_INTERVAL && d->u.iv.months != 0) {
        /*
         * The calendar months of an interval travel inside its microseconds
         * (30.4375 days each, row.h): write them as months again, so that
         * '1 mon' stays '1 mon' and not '30 days 10:30:00'.
         */
        tm_datum_t rest = *d;
        rest.u.iv.us = d->u.iv.us - (int64_t)d->u.iv.months * 2629800000000LL;
        rest.u.iv.months = 0;
        const char *rp = NULL;
        size_t rlen = 0;
        if (tm_expr_value_text(TM_T_INTERVAL, &rest, &s->scratch, &rp, &rlen) != 0 ||
            tm_buf_appendf(b, "%d mons ", (int)d->u.iv.months) != 0)
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
        p = rp;
        len = rlen;
    } else if (tm_expr_value_text(scol->type, d, &s->scratch, &p, &len) != 0) {
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    }
    return tm_pgsink_copy_escape(b, p, len);
}

/* The COPY row of `row` for the target columns, and its key (tab-separated key values). */
static int encode_row(tm_sink_t *s, const tm_schema_t *schema, const int *idx,
                      const tm_row_t *row, char *errstr, size_t errstr_size)
{
    tm_buf_clear(&s->line);
    tm_buf_clear(&s->key);
    int rc = 0;
    for (int i = 0; rc == 0 && i < s->ncols; i++) {
        bool key = false;
        for (int k = 0; k < s->nkeys; k++)
            key |= s->keys[k] == i;
        if (i > 0)
            rc = tm_buf_putc(&s->line, '\t') ? TM_ENOMEM : 0;
        int j = idx[i];
        const tm_column_t *scol = j >= 0 ? &schema->cols[j] : &s->cols[i];
        if (rc == 0)
            rc = put_value(s, &s->line, scol, row, j, errstr, errstr_size);
        if (rc == 0 && key) {
            if (j < 0 || tm_row_is_null(row, j))
                return tm_seterr(errstr, errstr_size, TM_ESINK,
                                 "table '%s': a row has NULL in key column \"%s\"", s->name,
                                 s->cols[i].name);
            rc = (s->key.len && tm_buf_putc(&s->key, '\t')) ? TM_ENOMEM : 0;
            if (rc == 0)
                rc = put_value(s, &s->key, scol, row, j, errstr, errstr_size);
        }
    }
    if (rc == TM_ENOMEM)
        tm_seterr(errstr, errstr_size, rc, "out of memory");
    return rc;
}

/* Folds one row image in: +1 added, -1 retracted (tm_pgsink_fold_t). */
static int fold_row(tm_sink_t *s, const tm_schema_t *schema, const int *idx,
                    const tm_row_t *row, int delta, char *errstr, size_t errstr_size)
{
    int rc = encode_row(s, schema, idx, row, errstr, errstr_size);
    if (rc == 0)
        rc = tm_pgsink_fold_put(&s->cur, s->key.data, s->key.len, s->line.data, s->line.len,
                                s->ncols, delta);
    if (rc == TM_ENOMEM || rc == TM_EINVAL)
        rc = tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    return rc;
}

/*
 * An upsert stream (s->upserts): the changes of a key come in order, so the
 * newest image of a key is its row and a delete removes whatever it was.  An
 * update that changes the key deletes the old key first.
 */
static int write_upsert(tm_sink_t *s, const tm_record_t *r, const int *idx, char *errstr,
                        size_t errstr_size)
{
    const tm_row_t *before = r->before;
    if (r->op == TM_OP_UPDATE && before != NULL && r->after != NULL) {
        bool same = true;
        for (int k = 0; same && k < s->nkeys; k++) {
            int j = idx[s->keys[k]];
            same = j >= 0 && tm_row_col_equal(r->schema, before, r->after, j);
        }
        if (same)
            before = NULL;
    }
    if ((r->op == TM_OP_UPDATE || r->op == TM_OP_DELETE) && before != NULL) {
        int rc = fold_row(s, r->schema, idx, before, 0, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    if (r->op != TM_OP_DELETE && r->after != NULL)
        return fold_row(s, r->schema, idx, r->after, TM_PGSINK_REPLACE, errstr, errstr_size);
    return 0;
}

static int write_record(tm_sink_t *s, const tm_record_t *r, char *errstr, size_t errstr_size)
{
    if (r->op == TM_OP_MESSAGE)
        return 0;
    if (r->op == TM_OP_TRUNCATE) {
        if (s->truncates_skipped++ == 0)
            TM_WARN(PS_COMP, "a TRUNCATE of the source is not applied to the target",
                    "sink=%s table=%s", s->name, s->target_q);
        return 0;
    }
    if (!s->ready) {
        int rc = setup(s, r->schema, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    const int *idx = NULL;
    int rc = map_for(s, r->schema, &idx, errstr, errstr_size);
    if (rc != 0)
        return rc;
    bool update = r->op == TM_OP_UPDATE, del = r->op == TM_OP_DELETE;
    if (s->nkeys == 0) {
        if (update || del)
            return tm_seterr(errstr, errstr_size, TM_ESINK,
                             "table '%s': the target has no PRIMARY KEY, so the sink can only "
                             "insert, but it received %s; declare the sink's PRIMARY KEY",
                             s->name, update ? "an update" : "a delete");
        return r->after ? fold_row(s, r->schema, idx, r->after, 1, errstr, errstr_size) : 0;
    }
    if (s->upserts)
        return write_upsert(s, r, idx, errstr, errstr_size);
    /*
     * Keyed: the retracted image (a delete's row, an update's old row, under
     * its own key, so a key change deletes the old key) and the added one.
     * A source schema without full identity retracts by key only (delta 0).
     */
    if ((update || del) && r->before != NULL) {
        rc = fold_row(s, r->schema, idx, r->before, r->schema->full_identity ? -1 : 0, errstr,
                      errstr_size);
        if (rc != 0)
            return rc;
    }
    if (!del && r->after != NULL)
        rc = fold_row(s, r->schema, idx, r->after, 1, errstr, errstr_size);
    return rc;
}

/*
 * Sends one fold to the server with COPY: what each key comes to, with the
 * delete flag first for the staging table.  Counts the upserts and deletes.
 */
static int copy_fold(tm_sink_t *s, const tm_pgsink_fold_t *f, size_t lo, size_t hi,
                     size_t *nups, size_t *ndel, char *errstr, size_t errstr_size)
{
    *nups = *ndel = 0;
    PGresult *res = PQexec(s->conn, s->sql_copy.data);
    if (PQresultStatus(res) != PGRES_COPY_IN) {
        int rc = ps_fail(s, res, "COPY", errstr, errstr_size);
        PQclear(res);
        return rc;
    }
    PQclear(res);
    tm_buf_t chunk;
    tm_buf_init(&chunk);
    int rc = 0;
    uint64_t conflicts = 0;
    for (size_t i = lo; rc == 0 && i < hi; i++) {
        bool del = false, conflict = false;
        const tm_pgsink_image_t *im = tm_pgsink_fold_result(&f->ents[i], &del, &conflict);
        if (im == NULL)
            continue;
        conflicts += conflict;
        *ndel += del;
        *nups += !del;
        if (s->nkeys > 0)
            rc = tm_buf_append(&chunk, del ? "t\t" : "f\t", 2) ? TM_ENOMEM : 0;
        if (rc == 0)
            rc = tm_buf_append(&chunk, im->line, im->linelen) ? TM_ENOMEM : 0;
        /* Columns added after this row was encoded are NULL in it. */
        for (int c = im->ncols; rc == 0 && c < s->ncols; c++)
            rc = tm_buf_append(&chunk, "\t\\N", 3) ? TM_ENOMEM : 0;
        if (rc == 0)
            rc = tm_buf_putc(&chunk, '\n') ? TM_ENOMEM : 0;
        if (rc == 0 && chunk.len >= PS_COPY_CHUNK) {
            if (PQputCopyData(s->conn, chunk.data, (int)chunk.len) != 1)
                rc = ps_fail(s, NULL, "COPY", errstr, errstr_size);
            tm_buf_clear(&chunk);
        }
    }
    if (rc == 0 && chunk.len > 0 && PQputCopyData(s->conn, chunk.data, (int)chunk.len) != 1)
        rc = ps_fail(s, NULL, "COPY", errstr, errstr_size);
    tm_buf_release(&chunk);
    if (conflicts > 0)
        TM_WARN(PS_COMP, "keys with more than one live row in an epoch: the newest was written",
                "sink=%s keys=%" PRIu64, s->name, conflicts);
    if (rc == TM_ENOMEM) {
        PQputCopyEnd(s->conn, "out of memory");
        while ((res = PQgetResult(s->conn)) != NULL)
            PQclear(res);
        return tm_seterr(errstr, errstr_size, rc, "out of memory");
    }
    if (rc == 0 && PQputCopyEnd(s->conn, NULL) != 1)
        rc = ps_fail(s, NULL, "COPY", errstr, errstr_size);
    while ((res = PQgetResult(s->conn)) != NULL) {
        if (rc == 0 && PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = ps_fail(s, res, "COPY", errstr, errstr_size);
        PQclear(res);
    }
    return rc;
}

/* Writes entries [lo, hi) of a fold: COPY, then (keyed) the merge and the delete. */
static int apply_range(tm_sink_t *s, const tm_pgsink_fold_t *f, size_t lo, size_t hi,
                       size_t *nrows, char *errstr, size_t errstr_size)
{
    size_t nups = 0, ndel = 0;
    int rc = copy_fold(s, f, lo, hi, &nups, &ndel, errstr, errstr_size);
    if (rc == 0 && s->nkeys > 0) {
        if (nups > 0)
            rc = ps_exec(s, s->sql_upsert.data, "the upsert", errstr, errstr_size);
        if (rc == 0 && ndel > 0)
            rc = ps_exec(s, s->sql_delete.data, "the delete", errstr, errstr_size);
        if (rc == 0) {
            char sql[512];
            snprintf(sql, sizeof(sql), "TRUNCATE %s", s->stage_q);
            rc = ps_exec(s, sql, "emptying the staging table", errstr, errstr_size);
        }
    }
    *nrows = nups + ndel;
    return rc;
}

/* A row's fault, not the connection's: data exceptions (22) and constraint violations (23). */
static bool row_rejected(const tm_sink_t *s, int rc)
{
    return rc == TM_ESINK && (strncmp(s->sqlstate, "22", 2) == 0 ||
                              strncmp(s->sqlstate, "23", 2) == 0);
}

/* The COPY line of an image as a JSON object by target column (text values, NULL as null). */
static json_t *line_json(const tm_sink_t *s, const tm_pgsink_image_t *im)
{
    json_t *o = json_object();
    const char *p = im->line, *end = im->line + im->linelen;
    tm_buf_t v;
    tm_buf_init(&v);
    for (int c = 0; o != NULL && c < s->ncols; c++) {
        tm_buf_clear(&v);
        bool null = false;
        if (c >= im->ncols || p > end) {
            null = true;
        } else if (end - p >= 2 && p[0] == '\\' && p[1] == 'N' &&
                   (p + 2 == end || p[2] == '\t')) {
            null = true;
            p += 2;
        } else {
            for (; p < end && *p != '\t'; p++) {
                char ch = *p;
                if (ch == '\\' && p + 1 < end) {
                    ch = *++p;
                    ch = ch == 't' ? '\t' : ch == 'n' ? '\n' : ch == 'r' ? '\r' : ch;
                }
                if (tm_buf_putc(&v, ch) != 0)
                    break;
            }
        }
        if (c < im->ncols)
            p++; /* the tab, or past the end */
        json_t *val = null ? json_null() : json_stringn(v.data ? v.data : "", v.len);
        if (json_object_set_new(o, s->cols[c].name, val) != 0) {
            json_decref(o);
            o = NULL;
        }
    }
    tm_buf_release(&v);
    return o;
}

/* Skips entry i of f, rejected by the target with message `why` (invariant 6). */
static int reject(tm_sink_t *s, const tm_pgsink_fold_t *f, size_t i, const char *why,
                  char *errstr, size_t errstr_size)
{
    bool del = false, conflict = false;
    const tm_pgsink_image_t *im = tm_pgsink_fold_result(&f->ents[i], &del, &conflict);
    if (im == NULL)
        return 0;
    s->rows_rejected++;
    /* At most one warning a second, with the count so far. */
    int64_t now = tm_mono_ms();
    if (s->rejected_warned_ms == 0 || now - s->rejected_warned_ms >= 1000) {
        s->rejected_warned_ms = now;
        TM_WARN(PS_COMP, "the target rejected a row; it is skipped (on_error)",
                "sink=%s rows_rejected=%" PRIu64 " reason=\"%s\"", s->name, s->rows_rejected,
                why);
    }
    if (s->dl == NULL)
        return 0;
    json_t *row = line_json(s, im);
    char source[300];
    snprintf(source, sizeof(source), "%s", s->target_q);
    int rc = tm_dead_letter_write_json(s->dl, del ? 'd' : 'u', del ? row : NULL, del ? NULL : row,
                                       source, why, tm_wall_us() / 1000);
    return rc != 0 ? tm_dead_letter_error(s->dl, errstr, errstr_size) : 0;
}

/*
 * Writes entries [lo, hi) under a savepoint; when the target rejects a row,
 * rolls back to it and writes each half the same way, down to single rows,
 * which are rejected (invariant 6).
 */
static int apply_isolating(tm_sink_t *s, const tm_pgsink_fold_t *f, size_t lo, size_t hi,
                           size_t *nrows, char *errstr, size_t errstr_size)
{
    if (lo >= hi)
        return 0;
    int rc = ps_exec(s, "SAVEPOINT tidemark_rows", "SAVEPOINT", errstr, errstr_size);
    size_t n = 0;
    if (rc == 0)
        rc = apply_range(s, f, lo, hi, &n, errstr, errstr_size);
    if (rc == 0) {
        *nrows += n;
        return ps_exec(s, "RELEASE SAVEPOINT tidemark_rows", "RELEASE SAVEPOINT", errstr,
                       errstr_size);
    }
    if (!row_rejected(s, rc))
        return rc;
    char why[1024];
    snprintf(why, sizeof(why), "%s", errstr);
    rc = ps_exec(s, "ROLLBACK TO SAVEPOINT tidemark_rows", "ROLLBACK TO SAVEPOINT", errstr,
                 errstr_size);
    if (rc == 0)
        rc = ps_exec(s, "RELEASE SAVEPOINT tidemark_rows", "RELEASE SAVEPOINT", errstr,
                     errstr_size);
    if (rc != 0)
        return rc;
    if (hi - lo == 1)
        return reject(s, f, lo, why, errstr, errstr_size);
    size_t mid = lo + (hi - lo) / 2;
    rc = apply_isolating(s, f, lo, mid, nrows, errstr, errstr_size);
    return rc == 0 ? apply_isolating(s, f, mid, hi, nrows, errstr, errstr_size) : rc;
}

/* Writes one fold into the open transaction (invariant 1). */
static int apply(tm_sink_t *s, const tm_pgsink_fold_t *f, char *errstr, size_t errstr_size)
{
    int rc = 0;
    for (int i = 0; rc == 0 && i < s->nddl; i++)
        rc = ps_exec(s, s->ddl[i], "ALTER TABLE", errstr, errstr_size);
    if (rc != 0 || f->n == 0)
        return rc;
    if (s->nkeys > 0 && !s->stage_ready) {
        char sql[1024];
        snprintf(sql, sizeof(sql), "DROP TABLE IF EXISTS %s", s->stage_q);
        rc = ps_exec(s, sql, "dropping the staging table", errstr, errstr_size);
        tm_buf_t cols;
        tm_buf_init(&cols);
        for (int i = 0; rc == 0 && i < s->ncols; i++) {
            char *q = tm_pg_quote_ident(s->cols[i].name);
            rc = q ? tm_buf_appendf(&cols, ", %s", q) : TM_ENOMEM;
            free(q);
        }
        tm_buf_t create;
        tm_buf_init(&create);
        if (rc == 0)
            rc = tm_buf_appendf(&create,
                                "CREATE UNLOGGED TABLE %s AS SELECT false AS "
                                "\"__tidemark_delete\"%s FROM %s WITH NO DATA",
                                s->stage_q, cols.data, s->target_q);
        if (rc == 0)
            rc = ps_exec(s, create.data, "creating the staging table", errstr, errstr_size);
        if (rc == 0)
            s->stage_ready = true;
        tm_buf_release(&cols);
        tm_buf_release(&create);
        if (rc != 0)
            return rc;
    }
    size_t nrows = 0;
    if (s->on_error == PS_ON_ERROR_FAIL) {
        rc = apply_range(s, f, 0, f->n, &nrows, errstr, errstr_size);
        if (row_rejected(s, rc)) {
            size_t len = strlen(errstr);
            snprintf(errstr + len, errstr_size - len,
                     "; fix the row or the target, or SET on_error = 'skip' or 'dead-letter' to "
                     "write the rest and set such rows aside");
        }
    } else
        rc = apply_isolating(s, f, 0, f->n, &nrows, errstr, errstr_size);
    if (rc == 0)
        s->rows_written += nrows;
    return rc;
}

static int begin(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    if (s->txn_open)
        return 0;
    int rc = ps_exec(s, "BEGIN", "BEGIN", errstr, errstr_size);
    if (rc == 0)
        s->txn_open = true;
    return rc;
}

/* Called after a successful transaction end: DDL and a new staging table are in place. */
static void txn_done(tm_sink_t *s)
{
    s->txn_open = false;
    s->txn_partial = false;
    for (int i = 0; i < s->nddl; i++)
        free(s->ddl[i]);
    s->nddl = 0;
}

/*
 * Runs `step` until it succeeds, reconnecting with backoff after a retriable
 * failure as long as the work can be redone (`redoable`) and retry_timeout
 * allows (invariant 2).
 */
typedef int (*ps_step_fn)(tm_sink_t *s, void *arg, bool retry, char *errstr, size_t errstr_size);

static int with_retry(tm_sink_t *s, ps_step_fn step, void *arg, bool redoable, char *errstr,
                      size_t errstr_size)
{
    tm_pgc_backoff_t b;
    tm_pgc_backoff_init(&b, s->retry_ms);
    bool retry = false;
    for (;;) {
        int rc = s->conn != NULL && !tm_pgc_broken(s->conn) ? 0 : TM_ECONN;
        if (rc != 0)
            rc = ps_connect_once(s, errstr, errstr_size);
        if (rc == 0)
            rc = step(s, arg, retry, errstr, errstr_size);
        if (rc == 0)
            return 0;
        if (rc == TM_ECONN)
            tm_errors_count(TM_ERRKIND_SINK_CONNECTION);
        if (rc != TM_ECONN || !redoable)
            return rc;
        TM_WARN(PS_COMP, "target failed, retrying", "sink=%s attempt=%d error=\"%s\"", s->name,
                b.attempts + 1, errstr);
        /* The session's transaction is lost with it; a reconnect starts afresh. */
        s->txn_open = false;
        s->stage_ready = false;
        if (s->conn != NULL) {
            PQfinish(s->conn);
            s->conn = NULL;
        }
        if (!tm_pgc_backoff_wait(&b))
            return rc;
        retry = true;
    }
}

/* at-least-once: one plain transaction per flush. */
static int step_commit_cur(tm_sink_t *s, void *arg, bool retry, char *errstr, size_t errstr_size)
{
    (void)arg;
    (void)retry;
    int rc = begin(s, errstr, errstr_size);
    if (rc == 0)
        rc = apply(s, &s->cur, errstr, errstr_size);
    if (rc == 0)
        rc = ps_exec(s, "COMMIT", "COMMIT", errstr, errstr_size);
    if (rc == 0)
        txn_done(s);
    return rc;
}

/* An early part of a large epoch into the open transaction (invariant 2's exception). */
static int step_partial(tm_sink_t *s, void *arg, bool retry, char *errstr, size_t errstr_size)
{
    (void)arg;
    (void)retry;
    int rc = begin(s, errstr, errstr_size);
    if (rc == 0)
        rc = apply(s, &s->cur, errstr, errstr_size);
    if (rc == 0)
        s->txn_partial = true;
    return rc;
}

/* Makes the dead letters of what was written so far durable (runtime/deadletter.h). */
static int flush_dead_letters(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    return s->dl != NULL ? tm_dead_letter_flush(s->dl, errstr, errstr_size) : 0;
}

static int ps_flush(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    /* Exactly-once: only barriers end transactions. */
    if (s->mode != PS_ALO || s->cur.n == 0)
        return 0;
    int rc = with_retry(s, step_commit_cur, NULL, true, errstr, errstr_size);
    if (rc == 0)
        tm_pgsink_fold_clear(&s->cur);
    return rc == 0 ? flush_dead_letters(s, errstr, errstr_size) : rc;
}

static int ps_write(tm_sink_t *s, const tm_batch_t *batch, char *errstr, size_t errstr_size)
{
    tm_arena_reset(&s->scratch);
    for (uint32_t i = 0; i < batch->count; i++) {
        int rc = write_record(s, &batch->recs[i], errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    if ((int64_t)s->cur.n < s->batch_size)
        return 0;
    if (s->mode == PS_ALO)
        return ps_flush(s, errstr, errstr_size);
    /*
     * Exactly-once: a large epoch's first part goes into the open transaction
     * now, unless an earlier epoch still waits for its commit (invariant 3).
     */
    if (s->nprepared > 0 || s->sealed_epoch != 0 || s->w_running || s->w_collected)
        return 0;
    bool first = !s->txn_partial;
    int rc = with_retry(s, step_partial, NULL, !s->txn_partial, errstr, errstr_size);
    if (rc == 0) {
        if (first)
            TM_INFO(PS_COMP, "epoch larger than batch_size: writing it early, in its transaction",
                    "sink=%s rows=%zu", s->name, s->cur.n);
        tm_pgsink_fold_clear(&s->cur);
    }
    return rc;
}

/* ------------------------------------------------- two-phase commit */

static void gid_of(const tm_sink_t *s, uint64_t epoch, char *buf, size_t len)
{
    snprintf(buf, len, "%s%" PRIu64, s->gid_prefix, epoch);
}

/* True if gid is among the prepared transactions (after a lost PREPARE reply). */
static int gid_prepared(tm_sink_t *s, const char *gid, bool *yes, char *errstr,
                        size_t errstr_size)
{
    const char *params[1] = {gid};
    PGresult *res = NULL;
    int rc = ps_query(s, "SELECT 1 FROM pg_prepared_xacts WHERE gid = $1", 1, params,
                      "reading pg_prepared_xacts", &res, errstr, errstr_size);
    if (rc == 0) {
        *yes = PQntuples(res) > 0;
        PQclear(res);
    }
    return rc;
}

static int step_prepare(tm_sink_t *s, void *arg, bool retry, char *errstr, size_t errstr_size)
{
    const char *gid = arg;
    if (retry) {
        bool done = false;
        int rc = gid_prepared(s, gid, &done, errstr, errstr_size);
        if (rc != 0 || done)
            return rc;
    }
    int rc = begin(s, errstr, errstr_size);
    if (rc == 0)
        rc = apply(s, &s->writing, errstr, errstr_size);
    tm_failpoint("pgsink.before_prepare");
    if (rc == 0) {
        char *lit = tm_pg_quote_literal(gid);
        char sql[PS_GID_MAX + 64];
        snprintf(sql, sizeof(sql), "PREPARE TRANSACTION %s", lit ? lit : "''");
        free(lit);
        rc = ps_exec(s, sql, "PREPARE TRANSACTION", errstr, errstr_size);
    }
    if (rc == 0)
        txn_done(s);
    return rc;
}

/* COMMIT PREPARED or ROLLBACK PREPARED; a gid that no longer exists counts as done. */
static int finish_prepared(tm_sink_t *s, const char *gid, bool commit, char *errstr,
                           size_t errstr_size)
{
    char *lit = tm_pg_quote_literal(gid);
    char sql[PS_GID_MAX + 64];
    snprintf(sql, sizeof(sql), "%s PREPARED %s", commit ? "COMMIT" : "ROLLBACK", lit ? lit : "''");
    free(lit);
    PGresult *res = PQexec(s->conn, sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        if (state == NULL || strcmp(state, "42704") != 0)
            rc = ps_fail(s, res, commit ? "COMMIT PREPARED" : "ROLLBACK PREPARED", errstr,
                         errstr_size);
    }
    PQclear(res);
    return rc;
}

static int step_commit_prepared(tm_sink_t *s, void *arg, bool retry, char *errstr,
                                size_t errstr_size)
{
    (void)retry;
    uint64_t upto = *(const uint64_t *)arg;
    int kept = 0, rc = 0;
    for (int i = 0; i < s->nprepared; i++) {
        if (rc == 0 && s->prepared[i] <= upto) {
            char gid[PS_GID_MAX];
            gid_of(s, s->prepared[i], gid, sizeof(gid));
            tm_failpoint("pgsink.before_commit_prepared");
            rc = finish_prepared(s, gid, true, errstr, errstr_size);
            if (rc == 0)
                continue;
        }
        s->prepared[kept++] = s->prepared[i];
    }
    s->nprepared = kept;
    return rc;
}

/* ----------------------------------------------------- decision log */

static int ensure_progress_table(tm_sink_t *s, char *errstr, size_t errstr_size)
{
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS %s (job text NOT NULL, sink text NOT NULL, "
             "checkpoint bigint NOT NULL, progress jsonb, committed_at timestamptz NOT NULL "
             "DEFAULT now(), PRIMARY KEY (job, sink))",
             s->progress_q);
    return ps_exec(s, sql, "creating the progress table", errstr, errstr_size);
}

static int read_progress(tm_sink_t *s, uint64_t *epoch, char *errstr, size_t errstr_size)
{
    char sql[512];
    snprintf(sql, sizeof(sql), "SELECT checkpoint FROM %s WHERE job = $1 AND sink = $2",
             s->progress_q);
    const char *params[2] = {s->job, s->name};
    PGresult *res = NULL;
    int rc = ps_query(s, sql, 2, params, "reading the progress table", &res, errstr, errstr_size);
    if (rc != 0)
        return rc;
    *epoch = PQntuples(res) > 0 ? strtoull(PQgetvalue(res, 0, 0), NULL, 10) : 0;
    PQclear(res);
    return 0;
}

typedef struct dl_commit {
    uint64_t epoch;
    const char *progress;
} dl_commit_t;

static int step_dl_commit(tm_sink_t *s, void *arg, bool retry, char *errstr, size_t errstr_size)
{
    const dl_commit_t *c = arg;
    int rc = 0;
    if (retry) {
        uint64_t done = 0;
        rc = read_progress(s, &done, errstr, errstr_size);
        if (rc != 0 || done >= c->epoch)
            return rc;
        /* The transaction was lost before COMMIT: write the sealed epoch again. */
        rc = begin(s, errstr, errstr_size);
        if (rc == 0)
            rc = apply(s, &s->sealed, errstr, errstr_size);
    } else {
        rc = begin(s, errstr, errstr_size);
    }
    if (rc == 0) {
        char sql[768];
        snprintf(sql, sizeof(sql),
                 "INSERT INTO %s (job, sink, checkpoint, progress) VALUES ($1, $2, $3, $4) "
                 "ON CONFLICT (job, sink) DO UPDATE SET checkpoint = EXCLUDED.checkpoint, "
                 "progress = EXCLUDED.progress, committed_at = now()",
                 s->progress_q);
        char n[32];
        snprintf(n, sizeof(n), "%" PRIu64, c->epoch);
        const char *params[4] = {s->job, s->name, n, c->progress ? c->progress : "{}"};
        PGresult *res = PQexecParams(s->conn, sql, 4, NULL, params, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_COMMAND_OK)
            rc = ps_fail(s, res, "writing the progress row", errstr, errstr_size);
        PQclear(res);
    }
    tm_failpoint("pgsink.before_dl_commit");
    if (rc == 0)
        rc = ps_exec(s, "COMMIT", "COMMIT", errstr, errstr_size);
    if (rc == 0)
        txn_done(s);
    return rc;
}

static int step_dl_seal(tm_sink_t *s, void *arg, bool retry, char *errstr, size_t errstr_size)
{
    (void)arg;
    (void)retry;
    int rc = begin(s, errstr, errstr_size);
    if (rc == 0)
        rc = apply(s, &s->sealed, errstr, errstr_size);
    return rc;
}

/* ------------------------------------------------------- checkpoints */

/* The writer thread (invariant 7): one step with retries, then the dead letters it wrote. */
static void *writer_main(void *arg)
{
    tm_sink_t *s = arg;
    char err[sizeof(s->w_err)] = "";
    int rc = with_retry(s, s->w_step, s->w_arg, s->w_redoable, err, sizeof(err));
    if (rc == 0)
        rc = flush_dead_letters(s, err, sizeof(err));
    pthread_mutex_lock(&s->w_mu);
    s->w_rc = rc;
    memcpy(s->w_err, err, sizeof(err));
    s->w_done = true;
    pthread_cond_signal(&s->w_cv);
    pthread_mutex_unlock(&s->w_mu);
    return NULL;
}

/* Starts the writer on `step`; TM_EAGAIN when it runs (sink_precommit_poll reports its end). */
static int writer_start(tm_sink_t *s, uint64_t epoch, ps_step_fn step, void *arg, bool redoable,
                        char *errstr, size_t errstr_size)
{
    s->w_step = step;
    s->w_arg = arg;
    s->w_redoable = redoable;
    s->w_epoch = epoch;
    s->w_done = false;
    s->w_rc = 0;
    s->w_err[0] = '\0';
    int err = pthread_create(&s->w_thread, NULL, writer_main, s);
    if (err != 0)
        return tm_seterr(errstr, errstr_size, TM_ESINK,
                         "table '%s': cannot start the writer thread: %s", s->name, strerror(err));
    s->w_running = true;
    return TM_EAGAIN;
}

/*
 * Waits for the writer to end, up to timeout_ms (-1: no limit), and joins it;
 * its result stays for sink_precommit_poll (w_collected).  True once joined
 * (or if none ran).
 */
static bool writer_wait(tm_sink_t *s, int timeout_ms)
{
    if (!s->w_running)
        return true;
    pthread_mutex_lock(&s->w_mu);
    if (!s->w_done && timeout_ms != 0) {
        if (timeout_ms < 0) {
            while (!s->w_done)
                pthread_cond_wait(&s->w_cv, &s->w_mu);
        } else {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_sec += timeout_ms / 1000;
            until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
            if (until.tv_nsec >= 1000000000L) {
                until.tv_sec++;
                until.tv_nsec -= 1000000000L;
            }
            while (!s->w_done && pthread_cond_timedwait(&s->w_cv, &s->w_mu, &until) != ETIMEDOUT)
                ;
        }
    }
    bool done = s->w_done;
    pthread_mutex_unlock(&s->w_mu);
    if (!done)
        return false;
    pthread_join(s->w_thread, NULL);
    s->w_running = false;
    s->w_collected = true;
    return true;
}

static void writer_join(tm_sink_t *s)
{
    (void)writer_wait(s, -1);
}

static int precommit_epoch(tm_sink_t *s, uint64_t epoch, tm_buf_t *handle, char *errstr,
                           size_t errstr_size)
{
    if (s->mode == PS_ALO)
        return ps_flush(s, errstr, errstr_size);
    if (s->mode == PS_DLOG) {
        /* The epoch is written now and committed with the progress row in sink_commit. */
        tm_pgsink_fold_t t = s->sealed;
        s->sealed = s->cur;
        s->cur = t;
        tm_pgsink_fold_clear(&s->cur);
        s->sealed_epoch = epoch;
        s->sealed_partial = s->txn_partial;
        if (tm_buf_appendf(handle, "{\"progress\":%" PRIu64 "}", epoch) != 0)
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
        if (s->sealed.n == 0)
            return flush_dead_letters(s, errstr, errstr_size);
        return writer_start(s, epoch, step_dl_seal, NULL, !s->sealed_partial, errstr,
                            errstr_size);
    }
    if (s->cur.n == 0 && !s->txn_open && s->nddl == 0)
        return flush_dead_letters(s, errstr, errstr_size); /* nothing to prepare */
    if (s->nprepared == s->capprepared) {
        int ncap = s->capprepared ? s->capprepared * 2 : 4;
        uint64_t *n = realloc(s->prepared, (size_t)ncap * sizeof(*n));
        if (n == NULL)
            return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
        s->prepared = n;
        s->capprepared = ncap;
    }
    gid_of(s, epoch, s->w_gid, sizeof(s->w_gid));
    if (tm_buf_appendf(handle, "%s", s->w_gid) != 0)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
    tm_pgsink_fold_t t = s->writing;
    s->writing = s->cur;
    s->cur = t;
    tm_pgsink_fold_clear(&s->cur);
    return writer_start(s, epoch, step_prepare, s->w_gid, !s->txn_partial, errstr, errstr_size);
}

static int ps_precommit(tm_sink_t *s, uint64_t epoch, tm_buf_t *handle, char *errstr,
                        size_t errstr_size)
{
    /* The runtime polls one pre-commit to its end before it starts the next. */
    writer_join(s);
    return precommit_epoch(s, epoch, handle, errstr, errstr_size);
}

static int ps_precommit_poll(tm_sink_t *s, int timeout_ms, bool *done, char *errstr,
                             size_t errstr_size)
{
    *done = false;
    if (!writer_wait(s, timeout_ms))
        return 0;
    *done = true;
    if (!s->w_collected)
        return 0;
    s->w_collected = false;
    if (s->w_rc != 0) {
        snprintf(errstr, errstr_size, "%s", s->w_err);
        return s->w_rc;
    }
    if (s->mode == PS_2PC) {
        s->prepared[s->nprepared++] = s->w_epoch;
        tm_pgsink_fold_clear(&s->writing);
    }
    return 0;
}

static int ps_commit(tm_sink_t *s, uint64_t epoch, const char *progress, char *errstr,
                     size_t errstr_size)
{
    if (s->mode == PS_2PC) {
        if (s->nprepared == 0)
            return 0;
        return with_retry(s, step_commit_prepared, &epoch, true, errstr, errstr_size);
    }
    if (s->mode == PS_DLOG) {
        dl_commit_t c = {epoch, progress};
        int rc = with_retry(s, step_dl_commit, &c, !s->sealed_partial, errstr, errstr_size);
        if (rc == 0) {
            tm_pgsink_fold_clear(&s->sealed);
            s->sealed_epoch = 0;
            s->sealed_partial = false;
        }
        return rc;
    }
    return 0;
}

static int ps_recover(tm_sink_t *s, uint64_t epoch, const char *handle, char *errstr,
                      size_t errstr_size)
{
    (void)handle;
    /*
     * Also at-least-once: a job switched from exactly-once may have left
     * prepared epochs, whose locks would block the staging table.
     */
    if (s->mode == PS_DLOG)
        return 0;
    const char *params[1] = {s->gid_prefix};
    PGresult *res = NULL;
    int rc = ps_query(s,
                      "SELECT gid, database = current_database() FROM pg_prepared_xacts "
                      "WHERE left(gid, length($1)) = $1 ORDER BY gid",
                      1, params, "reading pg_prepared_xacts", &res, errstr, errstr_size);
    if (rc != 0)
        return rc;
    int committed = 0, rolled = 0;
    for (int i = 0; rc == 0 && i < PQntuples(res); i++) {
        const char *gid = PQgetvalue(res, i, 0);
        if (strcmp(PQgetvalue(res, i, 1), "t") != 0) {
            TM_WARN(PS_COMP, "a prepared transaction of this sink belongs to another database",
                    "sink=%s gid=%s", s->name, gid);
            continue;
        }
        char *end = NULL;
        uint64_t n = strtoull(gid + strlen(s->gid_prefix), &end, 10);
        if (end == NULL || *end != '\0')
            continue;
        bool commit = n <= epoch;
        rc = finish_prepared(s, gid, commit, errstr, errstr_size);
        committed += commit && rc == 0;
        rolled += !commit && rc == 0;
    }
    PQclear(res);
    if (rc == 0 && (committed > 0 || rolled > 0))
        TM_INFO(PS_COMP, "recovered prepared transactions",
                "sink=%s checkpoint=%" PRIu64 " committed=%d rolled_back=%d", s->name, epoch,
                committed, rolled);
    return rc;
}

static bool ps_is_decision_log(const tm_sink_t *s)
{
    return s->mode == PS_DLOG;
}

static int ps_decided(tm_sink_t *s, uint64_t *epoch, char *errstr, size_t errstr_size)
{
    /* The advisory lock (taken at open) already fences an earlier instance. */
    int rc = ensure_progress_table(s, errstr, errstr_size);
    if (rc == 0)
        rc = read_progress(s, epoch, errstr, errstr_size);
    if (rc == 0)
        TM_INFO(PS_COMP, "decision log read", "sink=%s progress_table=%s checkpoint=%" PRIu64,
                s->name, s->progress_q, *epoch);
    return rc;
}

static const char *ps_delivery(const tm_sink_t *s, bool checkpointing)
{
    if (!s->eos)
        return checkpointing ? "at-least-once (committed at every checkpoint; upserts make a "
                               "replayed tail harmless)"
                             : "at-least-once (committed at every flush; upserts make a replayed "
                               "tail harmless)";
    return "exactly-once (one transaction per checkpoint: PREPARE TRANSACTION, COMMIT PREPARED "
           "once the checkpoint completes; on a target with max_prepared_transactions = 0 this "
           "sink is the job's decision log instead)";
}

/*
 * The `postgres` connector: a PostgreSQL table as a sink (this file) or, with
 * lookup = true, as a lookup table (pg_lookup.c).  The job decides which by
 * where the table appears (sql/job.c).
 */
const tm_connector_t tm_connector_postgres_table = {
    .abi = TM_CONNECTOR_ABI,
    .name = "postgres",
    .kinds = TM_CONNECTOR_SINK | TM_CONNECTOR_LOOKUP,
    .doc = "Keeps a PostgreSQL table equal to the changelog: batched upserts and deletes by "
           "primary key (or inserts), exactly-once with two-phase commit or a decision log; "
           "with lookup = true, a table read by key at processing time (lookup joins).",
    .lookup_options = tm_pglk_options,
    .lookup_new = tm_pglk_new,
    .lookup_open = tm_pglk_open,
    .lookup_fetch = tm_pglk_fetch,
    .lookup_describe = tm_pglk_describe,
    .lookup_free = tm_pglk_free,
    .sink_options = ps_options,
    .sink_new = ps_new,
    .sink_open = ps_open,
    .sink_write = ps_write,
    .sink_flush = ps_flush,
    .sink_precommit = ps_precommit,
    .sink_commit = ps_commit,
    .sink_recover = ps_recover,
    .sink_precommit_poll = ps_precommit_poll,
    .sink_is_decision_log = ps_is_decision_log,
    .sink_decided = ps_decided,
    .sink_free = ps_free,
    .sink_delivery = ps_delivery,
};
