/*
 * pg_incr.c — incremental snapshots (DBLog) of the PostgreSQL source, and
 * tables added to a running job.
 *
 * Role: re-reads tables while streaming goes on, in primary-key chunks
 * interleaved with the log, as Debezium and Flink CDC do (the DBLog
 * algorithm).  For each chunk, on the normal connection:
 *
 *     emit  pg_logical_emit_message(false, 'tidemark', {open, chunk N})
 *     read  SELECT cols FROM t WHERE [(where) AND] (pk) > ($last) ORDER BY pk LIMIT n
 *     emit  pg_logical_emit_message(false, 'tidemark', {close, chunk N})
 *
 * and then, on the replication stream (pg_stream.c calls in here):
 *
 *     open seen ──► window: every key a streamed change touches in the
 *                   chunk's table is dropped from the chunk (from the
 *                   chunk's read on, see tm_pg_incr_on_change)
 *     close seen ─► the chunk's remaining rows are emitted, op 'r' with
 *                   source.snapshot = "incremental", at the close's place
 *
 * A row changed while its chunk was read thus appears once, from the log,
 * with its final value; every other row of the chunk appears once, from the
 * chunk, before any later change of it.  The messages need no table and no
 * write access (EXECUTE on pg_logical_emit_message, granted to PUBLIC).
 *
 * Jobs come from the admin API (pg_incr.h), from a row in Debezium's signal
 * table (option signal_table), and from tables that join the capture while
 * the job runs: a table in the `tables` option that the state file `tables`
 * does not list (the option changed between runs), or a captured-by-option
 * table that appears in the publication (ALTER PUBLICATION … ADD TABLE,
 * polled every TM_PG_INCR_POLL_MS, or its first Relation message).
 *
 * Invariants:
 *   1. The jobs' progress (tables, last key of the last completed chunk)
 *      goes into every checkpoint barrier's position string (" incremental="
 *      and compact JSON after the LSN), updated only when a chunk's rows have
 *      been put into batches: a restart resumes after the last chunk that a
 *      completed checkpoint covers, and re-reads the one in flight.
 *   2. At most one chunk is in flight; it is abandoned (and read again) when
 *      the replication connection is lost, when the table's shape changes
 *      inside the window, or when the job is paused or cancelled.
 *   3. Watermarks name this source's slot and a session token, so messages
 *      of another job on the same database, or of an earlier run, never open
 *      or close a window here; every 'tidemark' message is consumed, never
 *      emitted downstream.
 *   4. A table's name is added to the state file `tables` only once the
 *      snapshot that reads it is acknowledged downstream, so a crash before
 *      that reads it again.
 *
 * Thread: the source thread, except the registry functions of pg_incr.h
 * (any thread, under reg_lock).
 */
#include "postgres/pg_incr.h"
#include "postgres/postgres_int.h"

#include "core/buf.h"
#include "core/clock.h"
#include "core/datum.h"
#include "core/error.h"
#include "core/failpoint.h"
#include "core/fsutil.h"
#include "core/log.h"

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pg_query.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* Most rows in one incremental chunk: they are emitted at once at the close watermark. */
#define INCR_CHUNK_MAX 20000
/* Finished jobs kept for GET /v1/snapshots. */
#define HISTORY_MAX 16
/* Transactions whose commits the stream handed on most recently (wait_in_flight). */
#define RECENT_XIDS 1024
/* How long wait_in_flight() waits at most for them to become visible. */
#define INCR_WAIT_MS 10000

/* ---- Registry (any thread, under reg_lock) ---- */

enum { REQ_START, REQ_PAUSE, REQ_RESUME, REQ_CANCEL };

typedef struct reg_req {
    int op;
    char **tables;
    int ntables;
    char *where;
    int64_t id;
    int rc;
    char err[512];
    bool answered;
    bool abandoned; /* nobody waits: whoever takes it last frees it */
    struct reg_req *next;
} reg_req_t;

typedef struct reg_entry {
    tm_source_t *src;
    char *name;
    reg_req_t *head, *tail;
    char *status; /* JSON array elements, published by the source thread */
    struct reg_entry *next;
} reg_entry_t;

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t reg_cond = PTHREAD_COND_INITIALIZER;
static reg_entry_t *reg_head;
static int64_t reg_last_id;

static void req_free(reg_req_t *r)
{
    if (r == NULL)
        return;
    for (int i = 0; i < r->ntables; i++)
        free(r->tables[i]);
    free(r->tables);
    free(r->where);
    free(r);
}

/* A job id unique across restarts: milliseconds since the epoch, made increasing. */
static int64_t next_id_locked(void)
{
    int64_t id = tm_wall_us() / 1000;
    if (id <= reg_last_id)
        id = reg_last_id + 1;
    reg_last_id = id;
    return id;
}

/* ---- Jobs (source thread) ---- */

enum { JOB_QUEUED, JOB_RUNNING, JOB_DONE, JOB_CANCELLED, JOB_FAILED };
static const char *const job_state_names[] = {"queued", "running", "done", "cancelled", "failed"};

enum { PHASE_IDLE, PHASE_WAIT_OPEN, PHASE_WINDOW };

typedef struct itable {
    char *nsp, *rel;
    uint32_t relid;
    char **last; /* text of the key of the last row of the last completed chunk, or NULL */
    int nlast;
    uint64_t rows, chunks;
    double estimate;
    bool done;
} itable_t;

typedef struct ijob {
    int64_t id;
    char *where;
    bool added; /* reads tables that joined the capture (state file `tables`) */
    itable_t *tables;
    int ntables;
    int cur;
    int state;
    char *error;
    bool validated; /* the where clause ran once with LIMIT 0 */
} ijob_t;

struct tm_pg_incr {
    tm_source_ctx_t *ctx;
    reg_entry_t *reg;
    ijob_t **jobs; /* active and queued first, then finished (history) */
    int njobs;
    bool paused;
    bool dirty; /* status to publish */
    char session[20];
    uint64_t seq;

    /* The chunk in flight (invariant 2). */
    int phase;
    ijob_t *cj;
    uint32_t relid;
    tm_schema_t *schema; /* the shape it was read with (a reference) */
    PGresult *res;
    int nrows;
    bool *dropped;
    uint64_t ndropped;
    tm_batch_t *keys; /* the rows' keys, parsed */
    tm_row_t **keyrows;
    int32_t *slots; /* open addressing: row index + 1, 0 empty */
    int nslots;

    int64_t last_poll_us;
    int64_t last_log_us; /* the last progress line */
    uint32_t recent[RECENT_XIDS]; /* ring of the last committed xids the stream handed on */
    int nrecent;
    bool tables_pending; /* write the `tables` file once acked >= tables_token */
    uint64_t tables_token;
};

static void itable_clear(itable_t *t)
{
    free(t->nsp);
    free(t->rel);
    for (int i = 0; i < t->nlast; i++)
        free(t->last[i]);
    free(t->last);
    memset(t, 0, sizeof(*t));
}

static void job_free(ijob_t *j)
{
    if (j == NULL)
        return;
    for (int i = 0; i < j->ntables; i++)
        itable_clear(&j->tables[i]);
    free(j->tables);
    free(j->where);
    free(j->error);
    free(j);
}

static bool job_active(const ijob_t *j)
{
    return j->state == JOB_QUEUED || j->state == JOB_RUNNING;
}

static void chunk_drop(tm_pg_incr_t *in)
{
    if (in->res != NULL)
        PQclear(in->res);
    in->res = NULL;
    free(in->dropped);
    in->dropped = NULL;
    free(in->keyrows);
    in->keyrows = NULL;
    free(in->slots);
    in->slots = NULL;
    in->nslots = 0;
    in->keys = tm_batch_unref(in->keys);
    tm_schema_unref(in->schema);
    in->schema = NULL;
    in->phase = PHASE_IDLE;
    in->cj = NULL;
    in->nrows = 0;
    in->ndropped = 0;
}

/* Keeps at most HISTORY_MAX finished jobs; active ones always stay. */
static void trim_history(tm_pg_incr_t *in)
{
    int finished = 0;
    for (int i = in->njobs - 1; i >= 0; i--) {
        if (job_active(in->jobs[i]))
            continue;
        if (++finished > HISTORY_MAX) {
            job_free(in->jobs[i]);
            memmove(&in->jobs[i], &in->jobs[i + 1], sizeof(ijob_t *) * (size_t)(in->njobs - i - 1));
            in->njobs--;
        }
    }
}

static ijob_t *current_job(tm_pg_incr_t *in)
{
    for (int i = 0; i < in->njobs; i++)
        if (job_active(in->jobs[i]))
            return in->jobs[i];
    return NULL;
}

static int job_add(tm_pg_incr_t *in, ijob_t *j)
{
    ijob_t **v = realloc(in->jobs, sizeof(*v) * (size_t)(in->njobs + 1));
    if (v == NULL)
        return TM_ENOMEM;
    in->jobs = v;
    /* Active jobs stay in front of finished ones, in the order they came. */
    int at = 0;
    while (at < in->njobs && job_active(in->jobs[at]))
        at++;
    memmove(&in->jobs[at + 1], &in->jobs[at], sizeof(ijob_t *) * (size_t)(in->njobs - at));
    in->jobs[at] = j;
    in->njobs++;
    in->dirty = true;
    return 0;
}

static const tm_pg_table_t *captured(const tm_source_t *src, const char *nsp, const char *rel)
{
    for (int i = 0; i < src->ntables; i++)
        if (strcmp(src->tables[i].nspname, nsp) == 0 && strcmp(src->tables[i].relname, rel) == 0)
            return &src->tables[i];
    return NULL;
}

/* Splits "schema.table" (or "table": public) into two strings; false if malformed. */
static bool split_name(const char *name, char **nsp, char **rel)
{
    const char *dot = strchr(name, '.');
    *nsp = dot ? strndup(name, (size_t)(dot - name)) : strdup("public");
    *rel = strdup(dot ? dot + 1 : name);
    if (*nsp == NULL || *rel == NULL || (*nsp)[0] == '\0' || (*rel)[0] == '\0' ||
        strchr(*rel, '.') != NULL) {
        free(*nsp);
        free(*rel);
        *nsp = *rel = NULL;
        return false;
    }
    return true;
}

/* ---- Status (published for GET /v1/snapshots) ---- */

static json_t *job_json(const tm_source_t *src, const ijob_t *j, bool paused)
{
    json_t *o = json_object();
    json_t *tabs = json_array();
    uint64_t rows = 0, chunks = 0;
    double est = 0;
    int done = 0;
    for (int i = 0; i < j->ntables; i++) {
        const itable_t *t = &j->tables[i];
        char name[300];
        snprintf(name, sizeof(name), "%s.%s", t->nsp, t->rel);
        double pct = t->done ? 100.0
                     : t->estimate > 0 ? 100.0 * (double)t->rows / t->estimate
                                       : 0.0;
        if (pct > 99.9 && !t->done)
            pct = 99.9;
        json_t *to = json_pack("{s:s,s:I,s:I,s:b,s:f}", "table", name, "rows", (json_int_t)t->rows,
                               "chunks", (json_int_t)t->chunks, "done", t->done, "percent", pct);
        json_object_set_new(to, "estimate",
                            t->estimate >= 0 ? json_integer((json_int_t)t->estimate) : json_null());
        json_array_append_new(tabs, to);
        rows += t->rows;
        chunks += t->chunks;
        est += t->estimate > (double)t->rows ? t->estimate : (double)t->rows;
        done += t->done;
    }
    double pct = j->state == JOB_DONE ? 100.0 : est > 0 ? 100.0 * (double)rows / est : 0.0;
    if (pct > 99.9 && j->state != JOB_DONE)
        pct = 99.9;
    const char *state = job_state_names[j->state];
    if (j->state == JOB_RUNNING && paused)
        state = "paused";
    json_object_set_new(o, "id", json_integer((json_int_t)j->id));
    json_object_set_new(o, "source", json_string(src->name));
    json_object_set_new(o, "state", json_string(state));
    json_object_set_new(o, "where", j->where ? json_string(j->where) : json_null());
    json_object_set_new(o, "added_tables", json_boolean(j->added));
    json_object_set_new(o, "rows", json_integer((json_int_t)rows));
    json_object_set_new(o, "chunks", json_integer((json_int_t)chunks));
    json_object_set_new(o, "tables_done", json_integer(done));
    json_object_set_new(o, "percent", json_real(pct));
    json_object_set_new(o, "error", j->error ? json_string(j->error) : json_null());
    json_object_set_new(o, "tables", tabs);
    return o;
}

static void publish(tm_source_t *src)
{
    tm_pg_incr_t *in = src->incr;
    if (!in->dirty || in->reg == NULL)
        return;
    in->dirty = false;
    tm_buf_t b;
    tm_buf_init(&b);
    for (int i = 0; i < in->njobs; i++) {
        json_t *o = job_json(src, in->jobs[i], in->paused);
        char *s = json_dumps(o, JSON_COMPACT);
        json_decref(o);
        if (s != NULL)
            tm_buf_appendf(&b, "%s%s", b.len ? "," : "", s);
        free(s);
    }
    tm_buf_putc(&b, '\0');
    pthread_mutex_lock(&reg_lock);
    free(in->reg->status);
    in->reg->status = b.data; /* NULL when out of memory: shows no jobs */
    pthread_mutex_unlock(&reg_lock);
}

/* ---- Position (invariant 1) ---- */

char *tm_pg_incr_position(const tm_source_t *src, uint64_t token)
{
    char lsn[24];
    tm_pg_lsn_format(token, lsn);
    const tm_pg_incr_t *in = src->incr;
    json_t *jobs = json_array();
    for (int i = 0; in != NULL && i < in->njobs; i++) {
        const ijob_t *j = in->jobs[i];
        if (!job_active(j))
            continue;
        json_t *tabs = json_array();
        for (int k = 0; k < j->ntables; k++) {
            const itable_t *t = &j->tables[k];
            json_t *last = json_null();
            if (t->last != NULL) {
                last = json_array();
                for (int c = 0; c < t->nlast; c++)
                    json_array_append_new(last, json_string(t->last[c]));
            }
            json_array_append_new(tabs, json_pack("{s:s,s:s,s:o,s:I,s:I,s:b}", "nsp", t->nsp,
                                                  "rel", t->rel, "last", last, "rows",
                                                  (json_int_t)t->rows, "chunks",
                                                  (json_int_t)t->chunks, "done", t->done));
        }
        json_t *jo = json_pack("{s:I,s:b,s:o}", "id", (json_int_t)j->id, "added", j->added,
                               "tables", tabs);
        if (j->where)
            json_object_set_new(jo, "where", json_string(j->where));
        json_array_append_new(jobs, jo);
    }
    if (json_array_size(jobs) == 0) {
        json_decref(jobs);
        return strdup(lsn);
    }
    json_t *root = json_pack("{s:i,s:b,s:o}", "v", 1, "paused", in->paused, "jobs", jobs);
    char *js = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    char *out = js ? tm_asprintf("%s incremental=%s", lsn, js) : NULL;
    free(js);
    return out;
}

/* Rebuilds the active jobs from a restored position's JSON (after " incremental="). */
static int restore(tm_source_t *src, const char *text)
{
    tm_pg_incr_t *in = src->incr;
    json_error_t jerr;
    json_t *root = json_loads(text, 0, &jerr);
    if (root == NULL) {
        TM_WARN(TM_PG_COMP, "cannot read the incremental snapshots of the restored checkpoint",
                "source=%s error=\"%s\"", src->name, jerr.text);
        return 0;
    }
    in->paused = json_is_true(json_object_get(root, "paused"));
    size_t i;
    json_t *jo;
    int rc = 0;
    json_array_foreach(json_object_get(root, "jobs"), i, jo)
    {
        ijob_t *j = calloc(1, sizeof(*j));
        json_t *tabs = json_object_get(jo, "tables");
        if (j == NULL ||
            (j->tables = calloc(json_array_size(tabs) + 1, sizeof(itable_t))) == NULL) {
            job_free(j);
            rc = TM_ENOMEM;
            break;
        }
        j->id = (int64_t)json_integer_value(json_object_get(jo, "id"));
        j->added = json_is_true(json_object_get(jo, "added"));
        const char *w = json_string_value(json_object_get(jo, "where"));
        j->where = w ? strdup(w) : NULL;
        j->state = JOB_QUEUED;
        j->cur = -1;
        size_t k;
        json_t *to;
        json_array_foreach(tabs, k, to)
        {
            itable_t *t = &j->tables[j->ntables++];
            const char *nsp = json_string_value(json_object_get(to, "nsp"));
            const char *rel = json_string_value(json_object_get(to, "rel"));
            t->nsp = strdup(nsp ? nsp : "");
            t->rel = strdup(rel ? rel : "");
            t->rows = (uint64_t)json_integer_value(json_object_get(to, "rows"));
            t->chunks = (uint64_t)json_integer_value(json_object_get(to, "chunks"));
            t->done = json_is_true(json_object_get(to, "done"));
            t->estimate = -1;
            json_t *last = json_object_get(to, "last");
            if (json_is_array(last) && json_array_size(last) > 0) {
                t->nlast = (int)json_array_size(last);
                t->last = calloc((size_t)t->nlast, sizeof(char *));
                for (int c = 0; t->last && c < t->nlast; c++) {
                    const char *v = json_string_value(json_array_get(last, (size_t)c));
                    t->last[c] = strdup(v ? v : "");
                }
            }
            const tm_pg_table_t *pt = captured(src, t->nsp, t->rel);
            t->relid = pt ? pt->relid : 0;
            t->estimate = pt ? pt->reltuples : -1;
            if (j->cur < 0 && !t->done)
                j->cur = (int)k;
        }
        if (j->cur < 0)
            j->cur = j->ntables;
        if ((rc = job_add(in, j)) != 0) {
            job_free(j);
            break;
        }
        TM_INFO(TM_PG_COMP, "incremental snapshot resumed from the checkpoint",
                "source=%s id=%" PRId64 " tables=%d next_table=%d", src->name, j->id,
                j->ntables, j->cur);
    }
    json_decref(root);
    return rc;
}

/* ---- The state file `tables` (invariant 4) ---- */

static char *tables_path(const tm_source_t *src)
{
    return tm_asprintf("%s/tables", src->state_dir);
}

static int tables_write(const tm_source_t *src, const char *skip_nsp, const char *skip_rel)
{
    tm_buf_t b;
    tm_buf_init(&b);
    for (int i = 0; i < src->ntables; i++) {
        const tm_pg_table_t *t = &src->tables[i];
        if (skip_nsp && strcmp(t->nspname, skip_nsp) == 0 && strcmp(t->relname, skip_rel) == 0)
            continue;
        tm_buf_appendf(&b, "%s\t%s\n", t->nspname, t->relname);
    }
    int rc = tm_write_file_atomic(src->state_dir, "tables", b.data ? b.data : "", b.len);
    tm_buf_release(&b);
    if (rc != 0)
        TM_WARN(TM_PG_COMP, "cannot write the list of captured tables",
                "source=%s dir=%s error=\"%s\"", src->name, src->state_dir, strerror(errno));
    return rc;
}

/* True while an active job still has to read nsp.rel. */
static bool pending_in_jobs(const tm_pg_incr_t *in, const char *nsp, const char *rel)
{
    for (int i = 0; i < in->njobs; i++) {
        const ijob_t *j = in->jobs[i];
        if (!job_active(j) || !j->added)
            continue;
        for (int k = 0; k < j->ntables; k++)
            if (!j->tables[k].done && strcmp(j->tables[k].nsp, nsp) == 0 &&
                strcmp(j->tables[k].rel, rel) == 0)
                return true;
    }
    return false;
}

/* Writes `tables` with every captured table except those an active job still reads. */
static void tables_sync(tm_source_t *src)
{
    tm_buf_t b;
    tm_buf_init(&b);
    for (int i = 0; i < src->ntables; i++) {
        const tm_pg_table_t *t = &src->tables[i];
        if (!pending_in_jobs(src->incr, t->nspname, t->relname))
            tm_buf_appendf(&b, "%s\t%s\n", t->nspname, t->relname);
    }
    if (tm_write_file_atomic(src->state_dir, "tables", b.data ? b.data : "", b.len) != 0)
        TM_WARN(TM_PG_COMP, "cannot write the list of captured tables",
                "source=%s dir=%s error=\"%s\"", src->name, src->state_dir, strerror(errno));
    tm_buf_release(&b);
}

static ijob_t *job_new(int64_t id, const char *where, bool added)
{
    ijob_t *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return NULL;
    j->id = id;
    j->added = added;
    j->state = JOB_QUEUED;
    if (where != NULL && (j->where = strdup(where)) == NULL) {
        free(j);
        return NULL;
    }
    return j;
}

static int job_add_table(ijob_t *j, const tm_pg_table_t *pt)
{
    itable_t *v = realloc(j->tables, sizeof(*v) * (size_t)(j->ntables + 1));
    if (v == NULL)
        return TM_ENOMEM;
    j->tables = v;
    itable_t *t = &j->tables[j->ntables];
    memset(t, 0, sizeof(*t));
    t->nsp = strdup(pt->nspname);
    t->rel = strdup(pt->relname);
    t->relid = pt->relid;
    t->estimate = pt->reltuples;
    if (t->nsp == NULL || t->rel == NULL) {
        itable_clear(t);
        return TM_ENOMEM;
    }
    j->ntables++;
    return 0;
}

static int64_t new_id(void)
{
    pthread_mutex_lock(&reg_lock);
    int64_t id = next_id_locked();
    pthread_mutex_unlock(&reg_lock);
    return id;
}

/* Queues a job that reads tables which joined the capture. */
static int queue_added(tm_source_t *src, const tm_pg_table_t *const *tabs, int n, const char *why)
{
    if (n == 0)
        return 0;
    ijob_t *j = job_new(new_id(), NULL, true);
    if (j == NULL)
        return TM_ENOMEM;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        rc = job_add_table(j, tabs[i]);
        TM_INFO(TM_PG_COMP, "table joined the capture; reading it with an incremental snapshot",
                "source=%s table=%s.%s why=%s id=%" PRId64, src->name, tabs[i]->nspname,
                tabs[i]->relname, why, j->id);
    }
    if (rc == 0)
        rc = job_add(src->incr, j);
    if (rc != 0)
        job_free(j);
    return rc;
}

/* Compares the captured tables with the state file `tables` (the option changed between runs). */
static int tables_compare(tm_source_t *src)
{
    char *path = tables_path(src);
    if (path == NULL)
        return TM_ENOMEM;
    FILE *f = fopen(path, "r");
    free(path);
    if (f == NULL) {
        /* First run (or state from before this file): everything captured is read already. */
        tables_write(src, NULL, NULL);
        return 0;
    }
    char line[600];
    char **known = NULL;
    int nknown = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        line[strcspn(line, "\n")] = '\0';
        char **v = realloc(known, sizeof(*v) * (size_t)(nknown + 1));
        if (v == NULL)
            break;
        known = v;
        known[nknown] = strdup(line);
        if (known[nknown] != NULL)
            nknown++;
    }
    fclose(f);
    const tm_pg_table_t **added = calloc((size_t)src->ntables + 1, sizeof(*added));
    int nadded = 0, rc = 0;
    for (int i = 0; added != NULL && i < src->ntables; i++) {
        char key[600];
        snprintf(key, sizeof(key), "%s\t%s", src->tables[i].nspname, src->tables[i].relname);
        bool found = false;
        for (int k = 0; k < nknown && !found; k++)
            found = strcmp(known[k], key) == 0;
        if (!found && !pending_in_jobs(src->incr, src->tables[i].nspname, src->tables[i].relname))
            added[nadded++] = &src->tables[i];
    }
    for (int k = 0; k < nknown; k++) {
        char *tab = strchr(known[k], '\t');
        if (tab != NULL) {
            *tab = '\0';
            if (captured(src, known[k], tab + 1) == NULL)
                TM_INFO(TM_PG_COMP, "table left the capture; its changes are no longer emitted",
                        "source=%s table=%s.%s", src->name, known[k], tab + 1);
        }
        free(known[k]);
    }
    free(known);
    if (added == NULL)
        return TM_ENOMEM;
    rc = queue_added(src, added, nadded, "option");
    free(added);
    if (rc == 0)
        tables_sync(src);
    return rc;
}

/* Adds a table that appeared in the publication (or in the stream) to src->tables. */
static int table_appeared(tm_source_t *src, uint32_t relid, const char *nsp, const char *rel,
                          double reltuples, const char *why)
{
    if (captured(src, nsp, rel) != NULL || !tm_pg_wanted(src, nsp, rel))
        return 0;
    if (src->signal_nsp && strcmp(nsp, src->signal_nsp) == 0 && strcmp(rel, src->signal_rel) == 0)
        return 0;
    tm_pg_table_t *v = realloc(src->tables, sizeof(*v) * (size_t)(src->ntables + 1));
    if (v == NULL)
        return TM_ENOMEM;
    src->tables = v;
    tm_pg_table_t *t = &src->tables[src->ntables];
    t->relid = relid;
    t->nspname = strdup(nsp);
    t->relname = strdup(rel);
    t->reltuples = reltuples;
    if (t->nspname == NULL || t->relname == NULL) {
        free(t->nspname);
        free(t->relname);
        return TM_ENOMEM;
    }
    src->ntables++;
    const tm_pg_table_t *one = t;
    int rc = queue_added(src, &one, 1, why);
    if (rc == 0)
        tables_sync(src);
    return rc;
}

/* Polls the publication for captured-by-option tables not captured yet. */
static int poll_publication(tm_source_t *src, char *errstr, size_t errstr_size)
{
    if (tm_pg_conn_ensure(src, errstr, errstr_size) != 0)
        return 0; /* the next poll tries again */
    const char *p[1] = {src->publication};
    PGresult *res = PQexecParams(src->conn,
                                 "SELECT c.oid, t.schemaname, t.tablename, c.reltuples "
                                 "  FROM pg_catalog.pg_publication_tables t "
                                 "  JOIN pg_catalog.pg_namespace n ON n.nspname = t.schemaname "
                                 "  JOIN pg_catalog.pg_class c ON c.relnamespace = n.oid "
                                 "       AND c.relname = t.tablename "
                                 " WHERE t.pubname = $1",
                                 1, NULL, p, NULL, NULL, 0);
    int rc = 0;
    if (PQresultStatus(res) == PGRES_TUPLES_OK) {
        for (int r = 0; r < PQntuples(res) && rc == 0; r++)
            rc = table_appeared(src, (uint32_t)strtoul(PQgetvalue(res, r, 0), NULL, 10),
                                PQgetvalue(res, r, 1), PQgetvalue(res, r, 2),
                                strtod(PQgetvalue(res, r, 3), NULL), "publication");
    } else {
        TM_DEBUG(TM_PG_COMP, "cannot poll the publication's tables", "source=%s error=\"%s\"",
                 src->name, PQresultErrorMessage(res));
    }
    PQclear(res);
    return rc;
}

/* ---- Start and stop ---- */

int tm_pg_incr_register(tm_source_t *src)
{
    if (src->incr != NULL)
        return 0;
    tm_pg_incr_t *in = calloc(1, sizeof(*in));
    reg_entry_t *e = calloc(1, sizeof(*e));
    if (in == NULL || e == NULL || (e->name = strdup(src->name)) == NULL) {
        free(in);
        free(e);
        return TM_ENOMEM;
    }
    in->dirty = true;
    snprintf(in->session, sizeof(in->session), "%08x%08x", (unsigned)getpid(),
             (unsigned)(tm_mono_us() & 0xffffffffu));
    src->incr = in;
    e->src = src;
    in->reg = e;
    pthread_mutex_lock(&reg_lock);
    e->next = reg_head;
    reg_head = e;
    pthread_mutex_unlock(&reg_lock);
    return 0;
}

int tm_pg_incr_start(tm_source_t *src, tm_source_ctx_t *ctx, char *errstr, size_t errstr_size)
{
    (void)errstr;
    (void)errstr_size;
    int rc = tm_pg_incr_register(src);
    if (rc != 0)
        return rc;
    tm_pg_incr_t *in = src->incr;
    in->ctx = ctx;
    if (src->incr_restore != NULL)
        rc = restore(src, src->incr_restore);
    /* A snapshot about to run reads every captured table: nothing joins the capture then. */
    if (rc == 0 && src->do_snapshot)
        tables_write(src, NULL, NULL);
    else if (rc == 0)
        rc = tables_compare(src);
    publish(src);
    return rc;
}

void tm_pg_incr_stop(tm_source_t *src)
{
    tm_pg_incr_t *in = src->incr;
    if (in == NULL)
        return;
    pthread_mutex_lock(&reg_lock);
    for (reg_entry_t **pp = &reg_head; *pp != NULL; pp = &(*pp)->next) {
        if (*pp == in->reg) {
            *pp = in->reg->next;
            break;
        }
    }
    /* Pending requests are answered: the source is gone. */
    reg_req_t *r = in->reg->head;
    while (r != NULL) {
        reg_req_t *next = r->next;
        if (r->abandoned) {
            req_free(r);
        } else {
            r->rc = TM_ESTOPPED;
            snprintf(r->err, sizeof(r->err), "source %s stopped", src->name);
            r->answered = true;
        }
        r = next;
    }
    pthread_cond_broadcast(&reg_cond);
    pthread_mutex_unlock(&reg_lock);
    free(in->reg->status);
    free(in->reg->name);
    free(in->reg);
    chunk_drop(in);
    for (int i = 0; i < in->njobs; i++)
        job_free(in->jobs[i]);
    free(in->jobs);
    free(in);
    src->incr = NULL;
}

/* ---- Requests (source thread side) ---- */

/*
 * Runs a query with the user's filter in a READ ONLY transaction of its own,
 * so a filter that calls a function cannot write anything.  Returns the
 * result (check its status); NULL only when out of memory.
 */
static PGresult *read_only_query(PGconn *conn, const char *sql, int nparams,
                                 const char *const *params)
{
    PGresult *res = PQexec(conn, "BEGIN ISOLATION LEVEL READ COMMITTED READ ONLY");
    if (PQresultStatus(res) != PGRES_COMMAND_OK)
        return res;
    PQclear(res);
    res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
    PGresult *end = PQexec(conn, PQresultStatus(res) == PGRES_TUPLES_OK ? "COMMIT" : "ROLLBACK");
    PQclear(end);
    return res;
}

static int check_where(tm_source_t *src, const tm_pg_table_t *t, const char *where, char *err,
                       size_t errlen)
{
    char *qn = tm_pg_quote_ident(t->nspname), *qr = tm_pg_quote_ident(t->relname);
    char *sql = qn && qr ? tm_asprintf("SELECT 1 FROM %s.%s WHERE (%s) LIMIT 0", qn, qr, where)
                         : NULL;
    free(qn);
    free(qr);
    if (sql == NULL)
        return TM_ENOMEM;
    PGresult *res = read_only_query(src->conn, sql, 0, NULL);
    free(sql);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char m[400];
        rc = tm_seterr(err, errlen, TM_EINVAL, "the filter does not work on %s.%s: %s",
                       t->nspname, t->relname, tm_pg_msg(PQresultErrorMessage(res), m, sizeof(m)));
    }
    PQclear(res);
    return rc;
}

/* Checks and queues a started snapshot; fills r->rc and r->err. */
static void handle_start(tm_source_t *src, reg_req_t *r)
{
    tm_pg_incr_t *in = src->incr;
    char err[512] = "";
    int rc = 0;
    if (src->server_version > 0 && src->server_version < 140000)
        rc = tm_seterr(err, sizeof(err), TM_EUNSUPPORTED,
                       "incremental snapshots need PostgreSQL 14 or later (logical decoding "
                       "messages); this server is %d",
                       src->server_version);
    if (rc == 0)
        rc = tm_pg_conn_ensure(src, err, sizeof(err));
    ijob_t *j = rc == 0 ? job_new(r->id, r->where, false) : NULL;
    if (rc == 0 && j == NULL)
        rc = TM_ENOMEM;
    for (int i = 0; rc == 0 && i < r->ntables; i++) {
        char *nsp, *rel;
        if (!split_name(r->tables[i], &nsp, &rel)) {
            rc = tm_seterr(err, sizeof(err), TM_EINVAL,
                           "\"%s\" is not a table name; write schema.table", r->tables[i]);
            break;
        }
        const tm_pg_table_t *t = captured(src, nsp, rel);
        if (t == NULL)
            rc = tm_seterr(err, sizeof(err), TM_ENOTFOUND,
                           "source %s does not capture %s.%s (option tables)", src->name, nsp,
                           rel);
        free(nsp);
        free(rel);
        if (rc == 0 && r->where != NULL)
            rc = check_where(src, t, r->where, err, sizeof(err));
        if (rc == 0)
            rc = job_add_table(j, t);
    }
    if (rc == 0) {
        j->validated = true;
        rc = job_add(in, j);
    }
    if (rc != 0) {
        job_free(j);
        if (err[0] == '\0')
            snprintf(err, sizeof(err), "%s", tm_strerror(rc));
        TM_WARN(TM_PG_COMP, "incremental snapshot refused", "source=%s id=%" PRId64 " error=\"%s\"",
                src->name, r->id, err);
    } else {
        TM_INFO(TM_PG_COMP, "incremental snapshot requested",
                "source=%s id=%" PRId64 " tables=%d where=\"%s\"", src->name, r->id, r->ntables,
                r->where ? r->where : "");
    }
    r->rc = rc;
    snprintf(r->err, sizeof(r->err), "%s", err);
}

static void handle_control(tm_source_t *src, int op)
{
    tm_pg_incr_t *in = src->incr;
    in->dirty = true;
    if (op == REQ_PAUSE || op == REQ_RESUME) {
        in->paused = op == REQ_PAUSE;
        if (in->paused)
            chunk_drop(in); /* invariant 2: read again on resume */
        TM_INFO(TM_PG_COMP, in->paused ? "incremental snapshots paused"
                                       : "incremental snapshots resumed",
                "source=%s", src->name);
        return;
    }
    chunk_drop(in);
    in->paused = false;
    int n = 0;
    for (int i = 0; i < in->njobs; i++) {
        if (job_active(in->jobs[i])) {
            in->jobs[i]->state = JOB_CANCELLED;
            n++;
        }
    }
    /* Cancelled tables count as read: the administrator chose not to read them. */
    tables_sync(src);
    TM_INFO(TM_PG_COMP, "incremental snapshots cancelled", "source=%s jobs=%d", src->name, n);
}

static void take_requests(tm_source_t *src)
{
    tm_pg_incr_t *in = src->incr;
    for (;;) {
        pthread_mutex_lock(&reg_lock);
        reg_req_t *r = in->reg->head;
        if (r != NULL) {
            in->reg->head = r->next;
            if (in->reg->head == NULL)
                in->reg->tail = NULL;
        }
        pthread_mutex_unlock(&reg_lock);
        if (r == NULL)
            return;
        if (r->op == REQ_START)
            handle_start(src, r);
        else
            handle_control(src, r->op);
        pthread_mutex_lock(&reg_lock);
        bool gone = r->abandoned;
        r->answered = true;
        pthread_cond_broadcast(&reg_cond);
        pthread_mutex_unlock(&reg_lock);
        if (gone)
            req_free(r);
    }
}

/* ---- Chunks ---- */

static uint64_t key_hash(const tm_schema_t *s, const tm_row_t *row)
{
    uint64_t h = 0x9e3779b97f4a7c15u;
    for (int k = 0; k < s->nkeys; k++) {
        int c = s->key_cols[k];
        h = tm_row_is_null(row, c) ? h * 31 + 7 : tm_datum_hash(s->cols[c].type, &row->vals[c], h);
    }
    return h;
}

static bool key_equal(const tm_schema_t *s, const tm_row_t *a, const tm_row_t *b)
{
    for (int k = 0; k < s->nkeys; k++)
        if (!tm_row_col_equal(s, a, b, s->key_cols[k]))
            return false;
    return true;
}

static char *column_list(const tm_schema_t *s)
{
    tm_buf_t b;
    tm_buf_init(&b);
    for (int i = 0; i < s->ncols; i++) {
        char *q = tm_pg_quote_ident(s->cols[i].name);
        if (q == NULL) {
            tm_buf_release(&b);
            return NULL;
        }
        tm_buf_appendf(&b, "%s%s", i ? ", " : "", q);
        free(q);
    }
    if (s->ncols == 0)
        tm_buf_puts(&b, "NULL");
    if (tm_buf_putc(&b, '\0') != 0) {
        tm_buf_release(&b);
        return NULL;
    }
    return b.data;
}

/* Marks the job failed (it stays in the history with the message). */
static void job_fail(tm_source_t *src, ijob_t *j, const char *msg)
{
    j->state = JOB_FAILED;
    free(j->error);
    j->error = strdup(msg);
    src->incr->dirty = true;
    TM_WARN(TM_PG_COMP, "incremental snapshot failed", "source=%s id=%" PRId64 " error=\"%s\"",
            src->name, j->id, msg);
    tables_sync(src);
}

/*
 * A chunk could not be read: a lost connection is retried (the chunk is read
 * again once tm_pg_conn_ensure() reconnects); anything else fails the job.
 */
static void chunk_error(tm_source_t *src, ijob_t *j, const char *msg)
{
    if (src->conn == NULL || PQstatus(src->conn) != CONNECTION_OK) {
        TM_WARN(TM_PG_COMP, "incremental snapshot chunk failed; retrying after a reconnect",
                "source=%s id=%" PRId64 " error=\"%s\"", src->name, j->id, msg);
        return;
    }
    job_fail(src, j, msg);
}

static int emit_watermark(tm_source_t *src, const char *kind, const itable_t *t,
                          char *errstr, size_t errstr_size)
{
    tm_pg_incr_t *in = src->incr;
    /* Built by jansson: a table's name may hold any character. */
    char table[600];
    snprintf(table, sizeof(table), "%s.%s", t->nsp, t->rel);
    json_t *o = json_pack("{s:s,s:s,s:s,s:I,s:I,s:s}", "slot", src->slot, "session", in->session,
                          "kind", kind, "chunk", (json_int_t)in->seq, "id", (json_int_t)in->cj->id,
                          "table", table);
    char *content = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (content == NULL)
        return TM_ENOMEM;
    const char *p[1] = {content};
    /*
     * The walsender sends only flushed WAL, and a non-transactional message
     * does not flush: the close watermark would wait for the WAL writer
     * (wal_writer_delay, 200 ms by default) on a quiet server.  txid_current()
     * gives the statement's transaction an id, so its commit flushes the WAL,
     * the watermarks included; it writes nothing else.
     */
    PGresult *res = PQexecParams(src->conn,
                                 strcmp(kind, "close") == 0
                                     ? "SELECT pg_catalog.pg_logical_emit_message(false, '"
                                       TM_PG_INCR_PREFIX "', $1), pg_catalog.txid_current()"
                                     : "SELECT pg_catalog.pg_logical_emit_message(false, '"
                                       TM_PG_INCR_PREFIX "', $1)",
                                 1, NULL, p, NULL, NULL, 0);
    free(content);
    int rc = 0;
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char m[400];
        rc = tm_seterr(errstr, errstr_size, TM_ESOURCE,
                       "cannot write the incremental snapshot's watermark with "
                       "pg_logical_emit_message: %s (the role needs EXECUTE on it: GRANT "
                       "EXECUTE ON FUNCTION pg_logical_emit_message(boolean, text, text) TO "
                       "<role>)",
                       tm_pg_msg(PQresultErrorMessage(res), m, sizeof(m)));
    }
    PQclear(res);
    return rc;
}

void tm_pg_incr_note_commit(tm_source_t *src, uint32_t xid)
{
    tm_pg_incr_t *in = src->incr;
    if (in != NULL && xid != 0)
        in->recent[in->nrecent++ % RECENT_XIDS] = xid;
}

/*
 * After the open watermark, before the chunk's read: waits until every
 * transaction whose commit the stream has already handed on is visible.
 * Between a transaction's commit record and its visibility (ProcArray) there
 * is a moment, longer while its backend waits for the WAL flush or is not
 * scheduled, in which the walsender may already have sent the commit.  A
 * read then would miss its change, and since that change went downstream
 * before the chunk was read (so nothing drops its key) the chunk's older row
 * would follow it.  Transactions the stream handles later are covered by
 * tm_pg_incr_on_change(); transactions still running (not in `recent`) have
 * not written their commit record before the watermark, so they commit
 * inside the window or after it, which is safe, and are not waited for.
 */
static void wait_in_flight(tm_source_t *src)
{
    tm_pg_incr_t *in = src->incr;
    PGresult *res = PQexec(src->conn, "SELECT x::text FROM pg_catalog.pg_snapshot_xip("
                                      "pg_catalog.pg_current_snapshot()) x");
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        PQclear(res);
        return;
    }
    tm_buf_t b;
    tm_buf_init(&b);
    int n = in->nrecent < RECENT_XIDS ? in->nrecent : RECENT_XIDS;
    for (int r = 0; r < PQntuples(res); r++) {
        uint64_t x8 = strtoull(PQgetvalue(res, r, 0), NULL, 10);
        bool seen = false;
        for (int i = 0; i < n && !seen; i++)
            seen = in->recent[i] == (uint32_t)x8;
        if (seen)
            tm_buf_appendf(&b, "%s%" PRIu64, b.len ? "," : "{", x8);
    }
    PQclear(res);
    if (b.len == 0 || tm_buf_puts(&b, "}") != 0 || tm_buf_putc(&b, '\0') != 0) {
        tm_buf_release(&b);
        return;
    }
    int64_t until = tm_mono_us() + (int64_t)INCR_WAIT_MS * 1000;
    for (;;) {
        const char *p[1] = {b.data};
        res = PQexecParams(src->conn,
                           "SELECT count(*) FROM unnest($1::xid8[]) x WHERE x = ANY(ARRAY("
                           "SELECT pg_catalog.pg_snapshot_xip(pg_catalog.pg_current_snapshot())))",
                           1, NULL, p, NULL, NULL, 0);
        bool done = PQresultStatus(res) != PGRES_TUPLES_OK ||
                    strcmp(PQgetvalue(res, 0, 0), "0") == 0;
        PQclear(res);
        if (done)
            break;
        if (tm_mono_us() >= until) {
            TM_WARN(TM_PG_COMP, "committed transactions stayed invisible; reading the chunk anyway",
                    "source=%s xids=%s", src->name, b.data);
            break;
        }
        usleep(1000);
    }
    tm_buf_release(&b);
}

/* The relation cache entry of t, loaded from the catalog if the stream has not sent it. */
static tm_pg_rel_t *table_rel(tm_source_t *src, itable_t *t, char *errstr, size_t errstr_size)
{
    const tm_pg_table_t *pt = captured(src, t->nsp, t->rel);
    if (pt == NULL) {
        tm_seterr(errstr, errstr_size, TM_ENOTFOUND, "%s.%s is no longer captured", t->nsp,
                  t->rel);
        return NULL;
    }
    t->relid = pt->relid;
    if (t->estimate < 0)
        t->estimate = pt->reltuples;
    tm_pg_rel_t *rel = tm_pg_rel_find(src, pt->relid);
    if (rel != NULL && rel->schema != NULL)
        return rel;
    tm_schema_t *s;
    tm_pg_coltype_t *ct;
    char replident, *rowfilter = NULL;
    bool changed;
    if (tm_pg_schema_from_catalog(src, pt, &s, &ct, &replident, &rowfilter, errstr,
                                  errstr_size) != 0)
        return NULL;
    free(rowfilter);
    if (tm_pg_rel_install(src, pt->relid, replident, s, ct, &changed) != 0) {
        tm_seterr(errstr, errstr_size, TM_ENOMEM, "out of memory");
        return NULL;
    }
    return tm_pg_rel_find(src, pt->relid);
}

static int parse_keys(tm_source_t *src, tm_pg_rel_t *rel, char *errstr, size_t errstr_size)
{
    tm_pg_incr_t *in = src->incr;
    const tm_schema_t *s = rel->schema;
    int n = in->nrows;
    in->dropped = calloc((size_t)n + 1, sizeof(bool));
    in->keyrows = calloc((size_t)n + 1, sizeof(tm_row_t *));
    in->nslots = 16;
    while (in->nslots < 2 * n)
        in->nslots *= 2;
    in->slots = calloc((size_t)in->nslots, sizeof(int32_t));
    if ((in->keys = tm_batch_new()) == NULL || in->dropped == NULL || in->keyrows == NULL ||
        in->slots == NULL)
        return TM_ENOMEM;
    for (int r = 0; r < n; r++) {
        tm_row_t *row = tm_batch_new_row(in->keys, s);
        if (row == NULL)
            return TM_ENOMEM;
        for (int k = 0; k < s->nkeys; k++) {
            int c = s->key_cols[k];
            if (PQgetisnull(in->res, r, c))
                continue;
            char why[256];
            int rc = tm_pg_value_parse(in->keys, &rel->ct[c], PQgetvalue(in->res, r, c),
                                       (size_t)PQgetlength(in->res, r, c), &row->vals[c], why,
                                       sizeof(why));
            if (rc != 0)
                return rc == TM_ENOMEM ? rc
                                       : tm_seterr(errstr, errstr_size, TM_EPROTO,
                                                   "incremental snapshot of %s.%s, column %s: %s",
                                                   s->namespace, s->table, s->cols[c].name, why);
            tm_row_set_null(row, c, false);
        }
        in->keyrows[r] = row;
        uint64_t h = key_hash(s, row) & (uint64_t)(in->nslots - 1);
        while (in->slots[h] != 0)
            h = (h + 1) & (uint64_t)(in->nslots - 1);
        in->slots[h] = r + 1;
    }
    return 0;
}

/* Reads the next chunk between an open and a close watermark. */
static int chunk_begin(tm_source_t *src, ijob_t *j, char *errstr, size_t errstr_size)
{
    tm_pg_incr_t *in = src->incr;
    char err[512] = "";
    while (j->cur < j->ntables && j->tables[j->cur].done)
        j->cur++;
    if (j->cur >= j->ntables)
        return 0;
    itable_t *t = &j->tables[j->cur];
    if (j->state == JOB_QUEUED) {
        j->state = JOB_RUNNING;
        in->dirty = true;
        TM_INFO(TM_PG_COMP, "incremental snapshot started",
                "source=%s id=%" PRId64 " tables=%d where=\"%s\"", src->name, j->id, j->ntables,
                j->where ? j->where : "");
    }
    if (src->server_version > 0 && src->server_version < 140000) {
        snprintf(err, sizeof(err),
                 "incremental snapshots need PostgreSQL 14 or later (logical decoding messages); "
                 "this server is %d: use snapshot = 'always' to read %s.%s",
                 src->server_version, t->nsp, t->rel);
        job_fail(src, j, err);
        return 0;
    }
    if (tm_pg_conn_ensure(src, err, sizeof(err)) != 0) {
        TM_WARN(TM_PG_COMP, "incremental snapshot waits for the connection",
                "source=%s error=\"%s\"", src->name, err);
        return 0;
    }
    tm_pg_rel_t *rel = table_rel(src, t, err, sizeof(err));
    if (rel == NULL) {
        job_fail(src, j, err);
        return 0;
    }
    const tm_schema_t *s = rel->schema;
    if (s->nkeys == 0) {
        snprintf(err, sizeof(err),
                 "%s.%s has no primary key; an incremental snapshot reads a table in key order "
                 "(add a primary key, or use snapshot = 'always' to re-read it)",
                 t->nsp, t->rel);
        job_fail(src, j, err);
        return 0;
    }
    if (j->where != NULL && !j->validated) {
        const tm_pg_table_t *pt = captured(src, t->nsp, t->rel);
        if (pt != NULL && check_where(src, pt, j->where, err, sizeof(err)) != 0) {
            job_fail(src, j, err);
            return 0;
        }
    }
    char *cols = column_list(s);
    char *qn = tm_pg_quote_ident(t->nsp), *qr = tm_pg_quote_ident(t->rel);
    tm_buf_t sql, keys, params;
    tm_buf_init(&sql);
    tm_buf_init(&keys);
    tm_buf_init(&params);
    int rc = cols && qn && qr ? 0 : TM_ENOMEM;
    for (int k = 0; rc == 0 && k < s->nkeys; k++) {
        char *q = tm_pg_quote_ident(s->cols[s->key_cols[k]].name);
        if (q == NULL) {
            rc = TM_ENOMEM;
            break;
        }
        tm_buf_appendf(&keys, "%s%s", k ? ", " : "", q);
        tm_buf_appendf(&params, "%s$%d", k ? ", " : "", k + 1);
        free(q);
    }
    bool resume = t->last != NULL && t->nlast == s->nkeys;
    int64_t limit = src->chunk_size < INCR_CHUNK_MAX ? src->chunk_size : INCR_CHUNK_MAX;
    if (rc == 0) {
        tm_buf_putc(&keys, '\0');
        tm_buf_putc(&params, '\0');
        tm_buf_appendf(&sql, "SELECT %s FROM %s.%s", cols, qn, qr);
        if (j->where != NULL || resume)
            tm_buf_puts(&sql, " WHERE ");
        if (j->where != NULL)
            tm_buf_appendf(&sql, "(%s)%s", j->where, resume ? " AND " : "");
        if (resume)
            tm_buf_appendf(&sql, "(%s) > (%s)", keys.data, params.data);
        tm_buf_appendf(&sql, " ORDER BY %s LIMIT %" PRId64, keys.data, limit);
        if (tm_buf_putc(&sql, '\0') != 0)
            rc = TM_ENOMEM;
    }
    free(cols);
    free(qn);
    free(qr);
    tm_buf_release(&keys);
    tm_buf_release(&params);
    if (rc != 0) {
        tm_buf_release(&sql);
        return rc;
    }
    in->seq++;
    in->cj = j;
    if ((rc = emit_watermark(src, "open", t, err, sizeof(err))) != 0) {
        tm_buf_release(&sql);
        chunk_drop(in);
        chunk_error(src, j, err);
        return 0;
    }
    wait_in_flight(src);
    PGresult *res = read_only_query(src->conn, sql.data, resume ? s->nkeys : 0,
                                    (const char *const *)(resume ? t->last : NULL));
    tm_buf_release(&sql);
    if (PQresultStatus(res) != PGRES_TUPLES_OK) {
        char m[400];
        const char *state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
        snprintf(err, sizeof(err), "reading a chunk of %s.%s failed: %s%s", t->nsp, t->rel,
                 tm_pg_msg(PQresultErrorMessage(res), m, sizeof(m)),
                 state && strcmp(state, "42703") == 0
                     ? " (a column was dropped or renamed and the stream has not reached that "
                       "change yet: start the snapshot again after the next change of the table)"
                     : "");
        PQclear(res);
        chunk_drop(in);
        chunk_error(src, j, err);
        return 0;
    }
    in->res = res;
    in->nrows = PQntuples(res);
    in->relid = t->relid;
    in->schema = tm_schema_ref(rel->schema);
    if ((rc = parse_keys(src, rel, errstr, errstr_size)) != 0) {
        chunk_drop(in);
        if (rc == TM_ENOMEM)
            return rc;
        job_fail(src, j, errstr);
        return 0;
    }
    in->cj = j;
    /* Between the read and the close: a sleep here widens the window for tests. */
    tm_failpoint("pg.snapshot.chunk");
    if ((rc = emit_watermark(src, "close", t, err, sizeof(err))) != 0) {
        chunk_drop(in);
        chunk_error(src, j, err);
        return 0;
    }
    in->phase = PHASE_WAIT_OPEN;
    return 0;
}

/* The chunk's rows are emitted at the close watermark; the table's position moves on. */
static int chunk_finish(tm_source_t *src, void *st, uint64_t lsn, char *errstr,
                        size_t errstr_size)
{
    tm_pg_incr_t *in = src->incr;
    ijob_t *j = in->cj;
    itable_t *t = &j->tables[j->cur];
    tm_pg_rel_t *rel = tm_pg_rel_find(src, in->relid);
    if (rel == NULL || rel->schema != in->schema) {
        /* The shape changed since the chunk was read: read it again in the new shape. */
        chunk_drop(in);
        return 0;
    }
    const tm_schema_t *s = rel->schema;
    uint64_t emitted = 0;
    for (int r = 0; r < in->nrows; r++) {
        if (in->dropped[r])
            continue;
        tm_record_t *rec = tm_pg_stream_add(st, rel->schema, TM_OP_READ, lsn);
        if (rec == NULL)
            return TM_ENOMEM;
        rec->src.snapshot = TM_SNAPSHOT_INCREMENTAL;
        tm_batch_t *b = src->cur;
        tm_row_t *row = tm_batch_new_row(b, s);
        if (row == NULL)
            return TM_ENOMEM;
        for (int c = 0; c < s->ncols; c++) {
            if (PQgetisnull(in->res, r, c))
                continue;
            char why[256];
            int rc = tm_pg_value_parse(b, &rel->ct[c], PQgetvalue(in->res, r, c),
                                       (size_t)PQgetlength(in->res, r, c), &row->vals[c], why,
                                       sizeof(why));
            if (rc != 0)
                return rc == TM_ENOMEM ? rc
                                       : tm_seterr(errstr, errstr_size, TM_EPROTO,
                                                   "incremental snapshot of %s.%s, column %s "
                                                   "(%s): %s",
                                                   s->namespace, s->table, s->cols[c].name,
                                                   s->cols[c].db_type, why);
            tm_row_set_null(row, c, false);
        }
        rec->after = row;
        emitted++;
    }
    /* The position moves past the chunk's last key, dropped or not. */
    if (in->nrows > 0) {
        char **last = calloc((size_t)s->nkeys, sizeof(char *));
        if (last == NULL)
            return TM_ENOMEM;
        for (int k = 0; k < s->nkeys; k++)
            if ((last[k] = strdup(PQgetvalue(in->res, in->nrows - 1, s->key_cols[k]))) == NULL) {
                for (int x = 0; x < k; x++)
                    free(last[x]);
                free(last);
                return TM_ENOMEM;
            }
        for (int k = 0; k < t->nlast; k++)
            free(t->last[k]);
        free(t->last);
        t->last = last;
        t->nlast = s->nkeys;
    }
    int64_t limit = src->chunk_size < INCR_CHUNK_MAX ? src->chunk_size : INCR_CHUNK_MAX;
    t->rows += emitted;
    t->chunks++;
    t->done = in->nrows < limit;
    char name[300];
    snprintf(name, sizeof(name), "%s.%s", t->nsp, t->rel);
    tm_source_snapshot_progress(in->ctx, name, t->rows, t->estimate > 0 ? t->estimate : -1.0,
                                t->done);
    TM_DEBUG(TM_PG_COMP, "incremental chunk", "source=%s table=%s chunk=%" PRIu64 " read=%d "
             "dropped=%" PRIu64 " emitted=%" PRIu64, src->name, name, t->chunks, in->nrows,
             in->ndropped, emitted);
    int64_t now = tm_mono_us();
    if (!t->done && now - in->last_log_us >= 5000000) {
        in->last_log_us = now;
        double pct = t->estimate > 0 ? 100.0 * (double)t->rows / t->estimate : 0.0;
        TM_INFO(TM_PG_COMP, "incremental snapshot progress",
                "source=%s id=%" PRId64 " table=%s rows=%" PRIu64 " chunks=%" PRIu64 " pct=%.1f",
                src->name, j->id, name, t->rows, t->chunks, pct > 99.9 ? 99.9 : pct);
    }
    if (t->done) {
        TM_INFO(TM_PG_COMP, "incremental snapshot of table done",
                "source=%s id=%" PRId64 " table=%s rows=%" PRIu64 " chunks=%" PRIu64, src->name,
                j->id, name, t->rows, t->chunks);
        j->cur++;
        while (j->cur < j->ntables && j->tables[j->cur].done)
            j->cur++;
    }
    if (j->cur >= j->ntables) {
        j->state = JOB_DONE;
        uint64_t rows = 0;
        for (int i = 0; i < j->ntables; i++)
            rows += j->tables[i].rows;
        TM_INFO(TM_PG_COMP, "incremental snapshot done",
                "source=%s id=%" PRId64 " tables=%d rows=%" PRIu64, src->name, j->id,
                j->ntables, rows);
        if (j->added) {
            /* Invariant 4: the non-transactional close sets the token of the batch. */
            in->tables_pending = true;
            in->tables_token = lsn + 1;
        }
        trim_history(in);
    }
    in->dirty = true;
    chunk_drop(in);
    return 0;
}

/* ---- Stream hooks ---- */

/* Parses the watermark's JSON; true if it is one of ours for the chunk in flight. */
static bool watermark_is_ours(const tm_source_t *src, const tm_pg_msg_t *msg, const char **kind)
{
    const tm_pg_incr_t *in = src->incr;
    json_error_t jerr;
    json_t *o = json_loadb((const char *)msg->u.message.content, msg->u.message.len, 0, &jerr);
    if (o == NULL)
        return false;
    const char *slot = json_string_value(json_object_get(o, "slot"));
    const char *session = json_string_value(json_object_get(o, "session"));
    const char *k = json_string_value(json_object_get(o, "kind"));
    uint64_t chunk = (uint64_t)json_integer_value(json_object_get(o, "chunk"));
    bool ours = slot && session && k && strcmp(slot, src->slot) == 0 &&
                strcmp(session, in->session) == 0 && chunk == in->seq;
    *kind = ours && strcmp(k, "open") == 0 ? "open" : ours && strcmp(k, "close") == 0 ? "close"
                                                                                      : "";
    json_decref(o);
    return ours;
}

int tm_pg_incr_on_message(tm_source_t *src, void *st, const tm_pg_msg_t *msg, uint64_t lsn,
                          char *errstr, size_t errstr_size)
{
    tm_pg_incr_t *in = src->incr;
    const char *kind;
    if (in == NULL || in->phase == PHASE_IDLE || !watermark_is_ours(src, msg, &kind))
        return 0;
    if (strcmp(kind, "open") == 0 && in->phase == PHASE_WAIT_OPEN) {
        in->phase = PHASE_WINDOW;
        return 0;
    }
    if (strcmp(kind, "close") == 0 && in->phase == PHASE_WINDOW)
        return chunk_finish(src, st, lsn, errstr, errstr_size);
    return 0;
}

static void drop_key(tm_pg_incr_t *in, const tm_schema_t *s, const tm_row_t *row)
{
    uint64_t h = key_hash(s, row) & (uint64_t)(in->nslots - 1);
    while (in->slots[h] != 0) {
        int r = in->slots[h] - 1;
        if (!in->dropped[r] && key_equal(s, in->keyrows[r], row)) {
            in->dropped[r] = true;
            in->ndropped++;
            return;
        }
        h = (h + 1) & (uint64_t)(in->nslots - 1);
    }
}

/*
 * Changes streamed after the chunk was read count from then on, not only
 * inside the window: a transaction whose commit record precedes the open
 * watermark may still have been invisible to the chunk's read (the moment
 * between its commit record and its ProcArray update, which a slow WAL
 * flush stretches), and its streamed change then carries the newer value.
 * Dropping the key is safe for any change streamed before the close: the
 * last change of a key before the close has the key's value at the close.
 */
void tm_pg_incr_on_change(tm_source_t *src, const tm_pg_rel_t *rel, const tm_row_t *before,
                          const tm_row_t *after)
{
    tm_pg_incr_t *in = src->incr;
    if (in == NULL || in->phase == PHASE_IDLE || rel->relid != in->relid ||
        rel->schema != in->schema)
        return;
    if (before != NULL)
        drop_key(in, rel->schema, before);
    if (after != NULL)
        drop_key(in, rel->schema, after);
}

void tm_pg_incr_on_truncate(tm_source_t *src, uint32_t relid)
{
    tm_pg_incr_t *in = src->incr;
    if (in == NULL || in->phase == PHASE_IDLE || relid != in->relid)
        return;
    for (int r = 0; r < in->nrows; r++)
        in->dropped[r] = true;
}

int tm_pg_incr_on_relation(tm_source_t *src, const tm_pg_rel_t *rel, char *errstr,
                           size_t errstr_size)
{
    tm_pg_incr_t *in = src->incr;
    if (in == NULL || rel->schema == NULL)
        return 0;
    if (in->phase != PHASE_IDLE && rel->relid == in->relid && rel->schema != in->schema)
        chunk_drop(in); /* invariant 2 */
    if (!rel->wanted || rel->schema->namespace == NULL || rel->schema->table == NULL)
        return 0;
    (void)errstr;
    (void)errstr_size;
    return table_appeared(src, rel->relid, rel->schema->namespace, rel->schema->table, -1,
                          "relation");
}

void tm_pg_incr_reset(tm_source_t *src)
{
    if (src->incr != NULL && src->incr->phase != PHASE_IDLE)
        chunk_drop(src->incr);
}

bool tm_pg_incr_is_signal(const tm_source_t *src, const tm_pg_rel_t *rel)
{
    return src->signal_nsp != NULL && rel->schema != NULL && rel->schema->namespace != NULL &&
           rel->schema->table != NULL && strcmp(rel->schema->namespace, src->signal_nsp) == 0 &&
           strcmp(rel->schema->table, src->signal_rel) == 0;
}

/*
 * A column of the new tuple as a string, or NULL.  A text column's binary
 * value (binary pgoutput, pg_binary.c) is the same bytes as its text.
 */
static char *tuple_text(const tm_pg_rel_t *rel, const tm_pg_tuple_t *tup, const char *name)
{
    int c = tm_schema_find(rel->schema, name);
    if (c < 0 || c >= tup->ncols)
        return NULL;
    bool text = tup->cols[c].kind == TM_PG_COL_TEXT ||
                (tup->cols[c].kind == TM_PG_COL_BINARY && rel->schema->cols[c].type == TM_T_TEXT);
    if (!text)
        return NULL;
    return strndup((const char *)tup->cols[c].data, tup->cols[c].len);
}

int tm_pg_incr_on_signal(tm_source_t *src, const tm_pg_rel_t *rel, const tm_pg_msg_t *msg)
{
    tm_pg_incr_t *in = src->incr;
    if (in == NULL || msg->tag != TM_PG_MSG_INSERT)
        return 0;
    char *type = tuple_text(rel, &msg->u.change.newtup, "type");
    char *data = tuple_text(rel, &msg->u.change.newtup, "data");
    char *id = tuple_text(rel, &msg->u.change.newtup, "id");
    int rc = 0;
    if (type == NULL) {
        TM_WARN(TM_PG_COMP, "signal without a type ignored", "source=%s id=%s", src->name,
                id ? id : "");
    } else if (strcmp(type, "execute-snapshot") == 0) {
        json_error_t jerr;
        json_t *o = data ? json_loads(data, 0, &jerr) : NULL;
        json_t *cols = json_object_get(o, "data-collections");
        const char *kind = json_string_value(json_object_get(o, "type"));
        if (!json_is_array(cols) || json_array_size(cols) == 0 ||
            (kind != NULL && strcasecmp(kind, "incremental") != 0)) {
            TM_WARN(TM_PG_COMP, "execute-snapshot signal ignored: tidemark runs incremental "
                    "snapshots of the tables listed in data-collections",
                    "source=%s id=%s data=\"%s\"", src->name, id ? id : "", data ? data : "");
        } else {
            reg_req_t r;
            memset(&r, 0, sizeof(r));
            r.op = REQ_START;
            r.ntables = (int)json_array_size(cols);
            r.tables = calloc((size_t)r.ntables, sizeof(char *));
            json_t *cond = json_object_get(o, "additional-condition");
            r.where = json_is_string(cond) && json_string_length(cond) > 0
                          ? strdup(json_string_value(cond))
                          : NULL;
            for (int i = 0; r.tables && i < r.ntables; i++) {
                const char *s = json_string_value(json_array_get(cols, (size_t)i));
                r.tables[i] = strdup(s ? s : "");
            }
            r.id = new_id();
            if (r.tables != NULL) {
                handle_start(src, &r);
                TM_INFO(TM_PG_COMP, "signal received", "source=%s signal=%s type=%s rc=%d",
                        src->name, id ? id : "", type, r.rc);
            } else {
                rc = TM_ENOMEM;
            }
            for (int i = 0; r.tables && i < r.ntables; i++)
                free(r.tables[i]);
            free(r.tables);
            free(r.where);
        }
        json_decref(o);
    } else if (strcmp(type, "stop-snapshot") == 0) {
        handle_control(src, REQ_CANCEL);
    } else if (strcmp(type, "pause-snapshot") == 0) {
        handle_control(src, REQ_PAUSE);
    } else if (strcmp(type, "resume-snapshot") == 0) {
        handle_control(src, REQ_RESUME);
    } else {
        TM_INFO(TM_PG_COMP, "signal ignored", "source=%s id=%s type=%s", src->name,
                id ? id : "", type);
    }
    free(type);
    free(data);
    free(id);
    return rc;
}

/* ---- Housekeeping ---- */

int tm_pg_incr_tick(tm_source_t *src, bool idle, char *errstr, size_t errstr_size)
{
    tm_pg_incr_t *in = src->incr;
    if (in == NULL)
        return 0;
    int rc = 0;
    take_requests(src);
    if (in->tables_pending && tm_source_acked(in->ctx) >= in->tables_token) {
        in->tables_pending = false;
        tables_sync(src);
    }
    int64_t now = tm_mono_us();
    if (now - in->last_poll_us >= (int64_t)TM_PG_INCR_POLL_MS * 1000) {
        in->last_poll_us = now;
        if ((rc = poll_publication(src, errstr, errstr_size)) != 0)
            return rc;
    }
    if (idle && in->phase == PHASE_IDLE && !in->paused) {
        ijob_t *j = current_job(in);
        if (j != NULL && (rc = chunk_begin(src, j, errstr, errstr_size)) != 0)
            return rc;
        if (j != NULL && j->state == JOB_RUNNING && j->cur >= j->ntables) {
            /* Every table was done already (a restored job at its end). */
            j->state = JOB_DONE;
            in->dirty = true;
            if (j->added) {
                in->tables_pending = true;
                in->tables_token = src->sealed_token;
            }
        }
    }
    publish(src);
    return 0;
}

/* ---- Registry: the daemon's side ---- */

static bool entry_captures(const reg_entry_t *e, const char *name)
{
    char *nsp, *rel;
    if (!split_name(name, &nsp, &rel))
        return false;
    bool yes = tm_pg_wanted(e->src, nsp, rel);
    free(nsp);
    free(rel);
    return yes;
}

/*
 * True if the parentheses of `w` balance outside string literals, quoted
 * identifiers, dollar quotes and comments, never closing one it did not
 * open: then `(w)` cannot end early, and nothing of w (a UNION, a second
 * statement) can get outside the parentheses the chunk query puts it in.
 */
static bool parens_balance(const char *w)
{
    int depth = 0;
    for (const char *p = w; *p != '\0'; p++) {
        if (*p == '(') {
            depth++;
        } else if (*p == ')') {
            if (--depth < 0)
                return false;
        } else if (*p == '\'' || *p == '"') {
            char q = *p;
            bool esc = q == '\'' && p > w && (p[-1] == 'E' || p[-1] == 'e');
            for (p++; *p != '\0'; p++) {
                if (esc && *p == '\\' && p[1] != '\0')
                    p++;
                else if (*p == q && p[1] == q)
                    p++;
                else if (*p == q)
                    break;
            }
            if (*p == '\0')
                return false;
        } else if (*p == '-' && p[1] == '-') {
            return false; /* a comment would swallow what follows the filter */
        } else if (*p == '/' && p[1] == '*') {
            const char *e = strstr(p + 2, "*/");
            if (e == NULL)
                return false;
            p = e + 1;
        } else if (*p == '$') {
            const char *e = p + 1;
            while (*e == '_' || (*e >= 'a' && *e <= 'z') || (*e >= 'A' && *e <= 'Z') ||
                   (*e >= '0' && *e <= '9'))
                e++;
            if (*e != '$' || (e > p + 1 && p[1] >= '0' && p[1] <= '9'))
                continue; /* $1 or a lone $: not a dollar quote */
            size_t tag = (size_t)(e - p + 1);
            const char *end = e + 1;
            while ((end = strchr(end, '$')) != NULL && strncmp(end, p, tag) != 0)
                end++;
            if (end == NULL)
                return false;
            p = end + tag - 1;
        }
    }
    return depth == 0;
}

/* Checks that `where` is one SQL expression and nothing more (no second statement). */
static int where_parse(const char *where, char *errstr, size_t errstr_size)
{
    if (!parens_balance(where))
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "\"where\" must be one boolean expression with balanced parentheses "
                         "and no comments, such as \"id > 100\"");
    char *sql = tm_asprintf("SELECT 1 WHERE (%s)", where);
    if (sql == NULL)
        return TM_ENOMEM;
    PgQueryParseResult r = pg_query_parse(sql);
    int rc = 0;
    if (r.error != NULL)
        rc = tm_seterr(errstr, errstr_size, TM_EINVAL, "\"where\" is not a valid expression: %s",
                       r.error->message);
    else if (r.parse_tree == NULL || strstr(r.parse_tree, "\"stmts\":[{") == NULL ||
             strstr(r.parse_tree, "},{\"stmt\"") != NULL)
        rc = tm_seterr(errstr, errstr_size, TM_EINVAL,
                       "\"where\" must be one boolean expression, such as \"id > 100\"");
    pg_query_free_parse_result(r);
    free(sql);
    return rc;
}

int64_t tm_pg_incr_request(const char *source, const char *const *tables, int ntables,
                           const char *where, char *errstr, size_t errstr_size)
{
    if (ntables <= 0)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "name at least one table");
    int rc;
    if (where != NULL && (rc = where_parse(where, errstr, errstr_size)) != 0)
        return rc;
    reg_req_t *r = calloc(1, sizeof(*r));
    if (r == NULL || (r->tables = calloc((size_t)ntables, sizeof(char *))) == NULL) {
        free(r);
        return TM_ENOMEM;
    }
    r->op = REQ_START;
    for (int i = 0; i < ntables; i++) {
        if ((r->tables[r->ntables] = strdup(tables[i])) == NULL) {
            req_free(r);
            return TM_ENOMEM;
        }
        r->ntables++;
    }
    if (where != NULL && (r->where = strdup(where)) == NULL) {
        req_free(r);
        return TM_ENOMEM;
    }
    pthread_mutex_lock(&reg_lock);
    reg_entry_t *target = NULL;
    for (reg_entry_t *e = reg_head; e != NULL; e = e->next) {
        if (source != NULL && strcmp(e->name, source) != 0)
            continue;
        bool all = true;
        for (int i = 0; i < ntables && all; i++)
            all = entry_captures(e, tables[i]);
        if (all) {
            target = e;
            break;
        }
    }
    if (target == NULL) {
        pthread_mutex_unlock(&reg_lock);
        req_free(r);
        return tm_seterr(errstr, errstr_size, TM_ENOTFOUND,
                         "no streaming postgres-cdc source%s%s captures %s%s (one request "
                         "names the tables of one source)",
                         source ? " named " : "", source ? source : "", tables[0],
                         ntables > 1 ? " and the other tables named" : "");
    }
    r->id = next_id_locked();
    if (target->tail)
        target->tail->next = r;
    else
        target->head = r;
    target->tail = r;
    int64_t id = r->id;
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += TM_PG_INCR_ANSWER_MS / 1000;
    while (!r->answered) {
        if (pthread_cond_timedwait(&reg_cond, &reg_lock, &until) == ETIMEDOUT)
            break;
    }
    if (!r->answered) {
        r->abandoned = true; /* the source frees it */
        pthread_mutex_unlock(&reg_lock);
        return id;
    }
    pthread_mutex_unlock(&reg_lock);
    rc = r->rc;
    if (rc != 0)
        tm_seterr(errstr, errstr_size, rc, "%s", r->err);
    req_free(r);
    return rc != 0 ? rc : id;
}

int tm_pg_incr_control(const char *source, const char *op, char *errstr, size_t errstr_size)
{
    int code = strcmp(op, "pause") == 0    ? REQ_PAUSE
               : strcmp(op, "resume") == 0 ? REQ_RESUME
               : strcmp(op, "cancel") == 0 ? REQ_CANCEL
                                           : -1;
    if (code < 0)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "unknown operation \"%s\" (pause, resume or cancel)", op);
    int n = 0;
    pthread_mutex_lock(&reg_lock);
    for (reg_entry_t *e = reg_head; e != NULL; e = e->next) {
        if (source != NULL && strcmp(e->name, source) != 0)
            continue;
        reg_req_t *r = calloc(1, sizeof(*r));
        if (r == NULL)
            break;
        r->op = code;
        r->abandoned = true;
        if (e->tail)
            e->tail->next = r;
        else
            e->head = r;
        e->tail = r;
        n++;
    }
    pthread_mutex_unlock(&reg_lock);
    if (n == 0)
        return tm_seterr(errstr, errstr_size, TM_ENOTFOUND,
                         "no streaming postgres-cdc source%s%s", source ? " named " : "",
                         source ? source : "");
    return n;
}

void tm_pg_incr_status(tm_buf_t *out)
{
    tm_buf_puts(out, "{\"snapshots\":[");
    bool first = true;
    pthread_mutex_lock(&reg_lock);
    for (reg_entry_t *e = reg_head; e != NULL; e = e->next) {
        if (e->status == NULL || e->status[0] == '\0')
            continue;
        tm_buf_appendf(out, "%s%s", first ? "" : ",", e->status);
        first = false;
    }
    pthread_mutex_unlock(&reg_lock);
    tm_buf_puts(out, "]}\n");
}

int tm_pg_incr_sources(void)
{
    int n = 0;
    pthread_mutex_lock(&reg_lock);
    for (reg_entry_t *e = reg_head; e != NULL; e = e->next)
        n++;
    pthread_mutex_unlock(&reg_lock);
    return n;
}
