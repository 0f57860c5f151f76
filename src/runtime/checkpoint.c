/*
 * checkpoint.c — the coordinator's state machine and _metadata files
 * (see checkpoint.h for the protocol and its invariants).
 */
#include "runtime/checkpoint.h"
#include "core/clock.h"
#include "core/errcount.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/failpoint.h"
#include "core/log.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define METADATA_FORMAT 1

/* How long the sources may take to reach a checkpoint's position (tm_coordinator_request_at). */
#define TM_CHECKPOINT_AT_MAX_MS 10000

struct tm_coordinator {
    tm_pipeline_t *p;
    char *dir; /* <state_dir>/checkpoints */
    char *job;
    int64_t interval_ms;
    int64_t timeout_ms;
    int retained;
    uint64_t last_completed;
    uint64_t inflight;   /* 0 when idle */
    bool committing;     /* metadata written, waiting for the sinks to commit */
    bool warned_timeout;
    int64_t started_ms;
    int64_t next_ms;
    uint64_t failed;
    uint64_t ncompleted;
    char *restored_from;
    char *decision_log;
    int64_t last_duration_ms;
    int64_t last_wall_ms;
    uint64_t last_bytes, last_bytes_new;
    /* A checkpoint at a source position (tm_coordinator_request_at). */
    uint64_t at_pos;     /* requested, not triggered yet; 0: none */
    int64_t at_hold_ms;
    uint64_t at_id;      /* the checkpoint it became; 0 until triggered */
    int64_t hold_until;  /* no checkpoint starts before, unless released */
};

static bool parse_chk_name(const char *name, uint64_t *id)
{
    char *end;
    if (strncmp(name, "chk-", 4) != 0)
        return false;
    *id = strtoull(name + 4, &end, 10);
    return *id > 0 && *end == '\0';
}

void tm_checkpoint_info_release(tm_checkpoint_info_t *info)
{
    free(info->dir);
    free(info->job);
    free(info->decision_log);
    free(info->restored_from);
    for (int i = 0; i < info->noperators; i++)
        free(info->operators[i]);
    for (int i = 0; i < info->nstores; i++) {
        free(info->stores[i].stage);
        free(info->stores[i].dir);
        for (int k = 0; k < info->stores[i].nuids; k++)
            free(info->stores[i].uids[k]);
    }
    free(info->stores);
    for (int i = 0; i < info->nsources; i++) {
        free(info->sources[i].name);
        free(info->sources[i].position);
    }
    for (int i = 0; i < info->nsinks; i++) {
        free(info->sinks[i].name);
        free(info->sinks[i].handle);
    }
    memset(info, 0, sizeof(*info));
}

static int read_store(json_t *x, int idx, const char *stage, tm_checkpoint_store_t *st,
                      const tm_checkpoint_info_t *info)
{
    json_t *kg = json_object_get(x, "key_groups");
    const char *dir = json_string_value(json_object_get(x, "dir"));
    if (dir == NULL || !json_is_array(kg))
        return TM_ECORRUPT;
    st->dir = strdup(dir);
    st->stage = strdup(stage ? stage : "");
    st->kg_first = (int)json_integer_value(json_array_get(kg, 0));
    st->kg_last = (int)json_integer_value(json_array_get(kg, 1));
    st->bytes = (uint64_t)json_integer_value(json_object_get(x, "bytes"));
    st->bytes_new = (uint64_t)json_integer_value(json_object_get(x, "bytes_new"));
    json_t *sub = json_object_get(x, "subtask");
    st->subtask = json_is_integer(sub) ? (int)json_integer_value(sub) : idx;
    json_t *par = json_object_get(x, "parallelism");
    st->parallelism = json_is_integer(par) ? (int)json_integer_value(par) : info->parallelism;
    json_t *ops = json_object_get(x, "operators");
    size_t i;
    json_t *uid;
    if (json_is_array(ops)) {
        json_array_foreach(ops, i, uid)
        {
            if (json_is_string(uid) && st->nuids < 16)
                st->uids[st->nuids++] = strdup(json_string_value(uid));
        }
    } else {
        /* The older layout: one set of workers held every operator. */
        for (int k = 0; k < info->noperators && st->nuids < 16; k++)
            st->uids[st->nuids++] = strdup(info->operators[k]);
    }
    return st->dir != NULL && st->stage != NULL ? 0 : TM_ENOMEM;
}

/* The "stores" list (or the older "workers" list) of the state section. */
static int read_stores(json_t *state, tm_checkpoint_info_t *info)
{
    json_t *stores = json_object_get(state, "stores");
    const char *stage = NULL;
    if (!json_is_array(stores)) {
        stores = json_object_get(state, "workers");
        stage = "workers";
    }
    if (!json_is_array(stores) || json_array_size(stores) == 0)
        return 0;
    size_t n = json_array_size(stores);
    info->stores = calloc(n, sizeof(*info->stores));
    if (info->stores == NULL)
        return TM_ENOMEM;
    size_t i;
    json_t *x;
    json_array_foreach(stores, i, x)
    {
        const char *name = stage ? stage : json_string_value(json_object_get(x, "stage"));
        int rc = read_store(x, (int)i, name, &info->stores[info->nstores], info);
        info->nstores++;
        if (rc != 0)
            return rc;
    }
    return 0;
}

static int read_metadata(const char *path, tm_checkpoint_info_t *info)
{
    json_error_t jerr;
    memset(info, 0, sizeof(*info));
    json_t *root = json_load_file(path, 0, &jerr);
    if (root == NULL)
        return TM_ECORRUPT;
    int rc = TM_ECORRUPT;
    json_t *id = json_object_get(root, "checkpoint");
    json_t *sources = json_object_get(root, "sources");
    json_t *sinks = json_object_get(root, "sinks");
    if (!json_is_integer(id) || !json_is_object(sources) || !json_is_object(sinks))
        goto out;
    info->id = (uint64_t)json_integer_value(id);
    const char *str;
    if ((str = json_string_value(json_object_get(root, "job"))) != NULL)
        info->job = strdup(str);
    if ((str = json_string_value(json_object_get(root, "decision_log"))) != NULL)
        info->decision_log = strdup(str);
    if ((str = json_string_value(json_object_get(root, "restored_from"))) != NULL)
        info->restored_from = strdup(str);
    json_t *state = json_object_get(root, "state");
    if (json_is_object(state)) {
        info->parallelism = (int)json_integer_value(json_object_get(state, "parallelism"));
        info->max_parallelism = (int)json_integer_value(json_object_get(state, "max_parallelism"));
        size_t i;
        json_t *uid;
        json_array_foreach(json_object_get(state, "operators"), i, uid)
        {
            if (json_is_string(uid) && info->noperators < 64)
                info->operators[info->noperators++] = strdup(json_string_value(uid));
        }
        if (read_stores(state, info) != 0)
            goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(sources, key, v)
    {
        if (info->nsources >= 64)
            break;
        const char *tok = json_string_value(json_object_get(v, "token"));
        const char *pos = json_string_value(json_object_get(v, "position"));
        info->sources[info->nsources].name = strdup(key);
        info->sources[info->nsources].token = tok ? strtoull(tok, NULL, 10) : 0;
        info->sources[info->nsources].position = strdup(pos ? pos : "");
        info->nsources++;
    }
    json_object_foreach(sinks, key, v)
    {
        if (info->nsinks >= 64)
            break;
        const char *h = json_string_value(json_object_get(v, "handle"));
        info->sinks[info->nsinks].name = strdup(key);
        info->sinks[info->nsinks].handle = strdup(h ? h : "");
        info->nsinks++;
    }
    rc = 0;
out:
    /* Whatever was filled in before the failure, checkpoint 0 included (a fuzzer found it). */
    if (rc != 0)
        tm_checkpoint_info_release(info);
    json_decref(root);
    return rc;
}

int tm_checkpoint_load_dir(const char *dir, tm_checkpoint_info_t *info, char *errstr,
                           size_t errstr_size)
{
    char path[4200];
    memset(info, 0, sizeof(*info));
    snprintf(path, sizeof(path), "%s/_metadata", dir);
    if (access(path, F_OK) != 0)
        return tm_seterr(errstr, errstr_size, TM_ENOTFOUND,
                         "%s holds no _metadata: it is not a completed checkpoint or savepoint",
                         dir);
    if (read_metadata(path, info) != 0)
        return tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                         "metadata %s is corrupt; move that directory away to recover from "
                         "an earlier checkpoint",
                         path);
    info->dir = strdup(dir);
    return 0;
}

int tm_checkpoint_load(const char *state_dir, uint64_t id, tm_checkpoint_info_t *info,
                       char *errstr, size_t errstr_size)
{
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/checkpoints/chk-%" PRIu64, state_dir, id);
    return tm_checkpoint_load_dir(dir, info, errstr, errstr_size);
}

/* The ids of every chk-N under state_dir, unsorted; returns how many. */
static int list_ids(const char *state_dir, uint64_t *ids, int max)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/checkpoints", state_dir);
    DIR *d = opendir(dir);
    if (d == NULL)
        return 0;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL && n < max) {
        uint64_t id;
        if (parse_chk_name(e->d_name, &id))
            ids[n++] = id;
    }
    closedir(d);
    return n;
}

int tm_checkpoint_load_latest(const char *state_dir, tm_checkpoint_info_t *info, char *errstr,
                              size_t errstr_size)
{
    static uint64_t ids[4096];
    memset(info, 0, sizeof(*info));
    int n = list_ids(state_dir, ids, 4096);
    /* Newest first; a chk-N without _metadata never completed (invariant 2). */
    for (;;) {
        int best = -1;
        for (int i = 0; i < n; i++)
            if (ids[i] != 0 && (best < 0 || ids[i] > ids[best]))
                best = i;
        if (best < 0)
            return 0;
        int rc = tm_checkpoint_load(state_dir, ids[best], info, errstr, errstr_size);
        if (rc != TM_ENOTFOUND)
            return rc;
        ids[best] = 0;
    }
}

void tm_checkpoint_discard_after(const char *state_dir, uint64_t id)
{
    static uint64_t ids[4096];
    int n = list_ids(state_dir, ids, 4096);
    for (int i = 0; i < n; i++) {
        if (ids[i] <= id)
            continue;
        char dir[4200];
        snprintf(dir, sizeof(dir), "%s/checkpoints/chk-%" PRIu64, state_dir, ids[i]);
        tm_rm_rf(dir);
    }
}

uint64_t tm_checkpoint_source_token(const tm_checkpoint_info_t *info, const char *name)
{
    for (int i = 0; i < info->nsources; i++)
        if (strcmp(info->sources[i].name, name) == 0)
            return info->sources[i].token;
    return 0;
}

const char *tm_checkpoint_sink_handle(const tm_checkpoint_info_t *info, const char *name)
{
    for (int i = 0; i < info->nsinks; i++)
        if (strcmp(info->sinks[i].name, name) == 0)
            return info->sinks[i].handle;
    return NULL;
}

tm_coordinator_t *tm_coordinator_new(tm_pipeline_t *p, const char *state_dir, const char *job,
                                     int64_t interval_ms, int64_t timeout_ms, int retained,
                                     uint64_t last_completed)
{
    tm_coordinator_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    size_t n = strlen(state_dir) + 16;
    c->dir = malloc(n);
    snprintf(c->dir, n, "%s/checkpoints", state_dir);
    c->job = strdup(job);
    c->p = p;
    c->interval_ms = interval_ms;
    c->timeout_ms = timeout_ms;
    c->retained = retained > 0 ? retained : 1;
    c->last_completed = last_completed;
    c->next_ms = tm_mono_ms() + interval_ms;
    return c;
}

tm_coordinator_t *tm_coordinator_free(tm_coordinator_t *c)
{
    if (c == NULL)
        return NULL;
    free(c->dir);
    free(c->job);
    free(c->restored_from);
    free(c->decision_log);
    free(c);
    return NULL;
}

void tm_coordinator_set_lineage(tm_coordinator_t *c, const char *restored_from)
{
    free(c->restored_from);
    c->restored_from = restored_from ? strdup(restored_from) : NULL;
}

void tm_coordinator_set_decision_log(tm_coordinator_t *c, const char *sink)
{
    free(c->decision_log);
    c->decision_log = sink ? strdup(sink) : NULL;
}

void tm_coordinator_stats(const tm_coordinator_t *c, tm_checkpoint_stats_t *out)
{
    out->completed = c->ncompleted;
    out->failed = c->failed;
    out->last_id = c->last_completed;
    out->last_duration_ms = c->last_duration_ms;
    out->last_state_bytes = c->last_bytes;
    out->last_state_bytes_new = c->last_bytes_new;
    out->last_completed_wall_ms = c->last_wall_ms;
}

const char *tm_coordinator_dir(const tm_coordinator_t *c)
{
    return c->dir;
}

/* Deletes completed checkpoints older than the retained ones, and abandoned ones. */
static void retain(tm_coordinator_t *c)
{
    DIR *d = opendir(c->dir);
    if (d == NULL)
        return;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        uint64_t id;
        if (!parse_chk_name(e->d_name, &id))
            continue;
        if (id + (uint64_t)c->retained <= c->last_completed || id > c->last_completed) {
            char path[4200];
            snprintf(path, sizeof(path), "%s/%s", c->dir, e->d_name);
            tm_rm_rf(path);
        }
    }
    closedir(d);
}

static int write_metadata(tm_coordinator_t *c, uint64_t id, int64_t duration_ms, char *errstr,
                          size_t errstr_size)
{
    json_t *root = json_object();
    json_t *sources = json_object();
    json_t *sinks = json_object();
    char num[32];
    struct timeval tv;
    gettimeofday(&tv, NULL);
    json_object_set_new(root, "format", json_integer(METADATA_FORMAT));
    json_object_set_new(root, "job", json_string(c->job));
    json_object_set_new(root, "checkpoint", json_integer((json_int_t)id));
    json_object_set_new(root, "completed_at_ms",
                        json_integer((json_int_t)tv.tv_sec * 1000 + tv.tv_usec / 1000));
    json_object_set_new(root, "duration_ms", json_integer(duration_ms));
    for (int i = 0; i < tm_pipeline_nsources(c->p); i++) {
        json_t *src = json_object();
        /* Tokens are unsigned 64-bit: a string keeps every bit. */
        snprintf(num, sizeof(num), "%" PRIu64, tm_pipeline_source_token(c->p, i));
        json_object_set_new(src, "token", json_string(num));
        json_object_set_new(src, "position", json_string(tm_pipeline_source_position(c->p, i)));
        json_object_set_new(sources, tm_pipeline_source_name(c->p, i), src);
    }
    for (int i = 0; i < tm_pipeline_nsinks(c->p); i++) {
        json_t *snk = json_object();
        json_object_set_new(snk, "handle", json_string(tm_pipeline_sink_handle(c->p, i)));
        json_object_set_new(sinks, tm_pipeline_sink_name(c->p, i), snk);
    }
    json_object_set_new(root, "sources", sources);
    json_object_set_new(root, "sinks", sinks);
    if (c->decision_log != NULL)
        json_object_set_new(root, "decision_log", json_string(c->decision_log));
    if (c->restored_from != NULL)
        json_object_set_new(root, "restored_from", json_string(c->restored_from));
    c->last_bytes = c->last_bytes_new = 0;
    int nstores = tm_pipeline_nstores(c->p);
    if (nstores > 0) {
        /* One entry per store of a stateful stage subtask (docs/state.md). */
        json_t *state = json_object();
        json_t *ops = json_array();
        json_t *stores = json_array();
        int first_par = 0;
        for (int i = 0; i < nstores; i++) {
            tm_pipeline_store_info_t si;
            tm_pipeline_store_info(c->p, i, &si);
            if (i == 0)
                first_par = si.parallelism;
            json_t *uids = json_array();
            for (int k = 0; k < si.nuids; k++) {
                json_array_append_new(uids, json_string(si.uids[k]));
                if (si.subtask == 0)
                    json_array_append_new(ops, json_string(si.uids[k]));
            }
            json_t *sj = json_object();
            json_object_set_new(sj, "stage", json_string(si.stage));
            json_object_set_new(sj, "operators", uids);
            json_object_set_new(sj, "subtask", json_integer(si.subtask));
            json_object_set_new(sj, "parallelism", json_integer(si.parallelism));
            json_object_set_new(sj, "dir", json_string(si.dir));
            json_object_set_new(sj, "key_groups", json_pack("[i,i]", si.kg_first, si.kg_last));
            json_object_set_new(sj, "bytes", json_integer((json_int_t)si.chk.bytes));
            json_object_set_new(sj, "bytes_new", json_integer((json_int_t)si.chk.bytes_new));
            json_object_set_new(sj, "files", json_integer((json_int_t)si.chk.files));
            json_array_append_new(stores, sj);
            c->last_bytes += si.chk.bytes;
            c->last_bytes_new += si.chk.bytes_new;
        }
        json_object_set_new(state, "parallelism", json_integer(first_par));
        json_object_set_new(state, "max_parallelism",
                            json_integer(tm_pipeline_max_parallelism(c->p)));
        json_object_set_new(state, "operators", ops);
        json_object_set_new(state, "stores", stores);
        json_object_set_new(root, "state", state);
    }
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    if (text == NULL)
        return TM_ENOMEM;
    char chk[4200];
    snprintf(chk, sizeof(chk), "%s/chk-%" PRIu64, c->dir, id);
    int rc = 0;
    tm_failpoint("checkpoint.before_metadata");
    if (tm_mkdir_p(chk, 0750) != 0 || tm_write_file_atomic(chk, "_metadata", text, strlen(text)) != 0 ||
        tm_fsync_dir(c->dir) != 0)
        rc = tm_seterr(errstr, errstr_size, TM_ECHECKPOINT,
                       "cannot write checkpoint %s/_metadata (%s); check the state directory's "
                       "free space and permissions",
                       chk, strerror(errno));
    free(text);
    return rc;
}

/* {"job":J,"checkpoint":N,"sources":{NAME:POSITION}}: what a decision log records. */
static char *progress_record(tm_coordinator_t *c, uint64_t id)
{
    json_t *sources = json_object();
    for (int i = 0; i < tm_pipeline_nsources(c->p); i++)
        json_object_set_new(sources, tm_pipeline_source_name(c->p, i),
                            json_string(tm_pipeline_source_position(c->p, i)));
    json_t *root = json_pack("{s:s,s:I,s:o}", "job", c->job, "checkpoint", (json_int_t)id,
                             "sources", sources);
    char *text = root ? json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    json_decref(root);
    return text;
}

/* An at-position checkpoint gives way (a stop, or a position the sources never reach). */
static void cancel_at(tm_coordinator_t *c)
{
    if (c->at_id == 0 || c->last_completed >= c->at_id)
        return;
    c->at_pos = 0;
    tm_pipeline_barrier_at_cancel(c->p, c->at_id);
    tm_pipeline_pause_sources(c->p, 0);
}

void tm_coordinator_trigger_now(tm_coordinator_t *c)
{
    c->next_ms = 0;
    c->hold_until = 0;
    cancel_at(c);
}

int tm_coordinator_request_at(tm_coordinator_t *c, uint64_t pos, int64_t hold_ms, uint64_t *id)
{
    if (pos == 0)
        return TM_EINVAL;
    if (c->at_pos != 0 || (c->at_id != 0 && c->last_completed < c->at_id))
        return TM_EAGAIN;
    c->at_pos = pos;
    c->at_hold_ms = hold_ms;
    /* The checkpoint after the one in flight, if any: tick triggers it next. */
    c->at_id = (c->inflight != 0 ? c->inflight : c->last_completed) + 1;
    *id = c->at_id;
    return 0;
}

void tm_coordinator_release(tm_coordinator_t *c)
{
    c->hold_until = 0;
}

void tm_coordinator_pause_sources(tm_coordinator_t *c, int64_t max_ms)
{
    tm_pipeline_pause_sources(c->p, tm_mono_ms() + max_ms);
}

void tm_coordinator_paused(const tm_coordinator_t *c, int *paused, int *sources)
{
    *paused = tm_pipeline_sources_paused(c->p);
    *sources = tm_pipeline_nsources(c->p);
}

int tm_coordinator_at_status(const tm_coordinator_t *c, uint64_t id, bool *missed)
{
    *missed = false;
    if (id == 0 || id != c->at_id)
        return -1;
    if (c->at_pos != 0 || c->last_completed < id)
        return 0;
    *missed = tm_pipeline_barrier_missed(c->p, id);
    return c->committing && c->last_completed == id ? 1 : 2;
}

bool tm_coordinator_idle(const tm_coordinator_t *c)
{
    return c->inflight == 0 && !c->committing;
}

uint64_t tm_coordinator_last_completed(const tm_coordinator_t *c)
{
    return c->last_completed;
}

int tm_coordinator_tick(tm_coordinator_t *c, char *errstr, size_t errstr_size)
{
    int64_t now = tm_mono_ms();
    if (c->committing) {
        if (!tm_pipeline_committed(c->p, c->last_completed))
            return 0;
        c->committing = false;
        retain(c);
    }
    if (c->inflight == 0) {
        bool at = c->at_pos != 0;
        /* A bounded source that ended waits for its final checkpoint: take it now. */
        if (!at && (now < c->next_ms || now < c->hold_until) &&
            !tm_pipeline_take_checkpoint_wanted(c->p))
            return 0;
        c->inflight = c->last_completed + 1;
        c->started_ms = now;
        c->warned_timeout = false;
        TM_DEBUG("checkpoint", "triggered", "checkpoint=%" PRIu64, c->inflight);
        if (at) {
            /* The barrier is requested first: only then may paused sources go on. */
            tm_pipeline_request_barrier_at(c->p, c->inflight, c->at_pos);
            tm_pipeline_pause_sources(c->p, 0);
            c->at_pos = 0;
        } else {
            tm_pipeline_request_barrier(c->p, c->inflight);
        }
        return 0;
    }
    if (c->inflight == c->at_id && now - c->started_ms > TM_CHECKPOINT_AT_MAX_MS &&
        !tm_pipeline_barrier_missed(c->p, c->inflight)) {
        TM_WARN("checkpoint", "the sources did not reach the position asked for; the checkpoint "
                "goes on without it",
                "checkpoint=%" PRIu64 " waited_ms=%" PRId64, c->inflight, now - c->started_ms);
        cancel_at(c);
    }
    if (!tm_pipeline_precommitted(c->p, c->inflight)) {
        if (!c->warned_timeout && now - c->started_ms > c->timeout_ms) {
            /*
             * A barrier that cannot pass (a source stuck in a long snapshot, a
             * sink that cannot write) keeps the checkpoint open: there is no
             * partial state to roll back, and the previous checkpoint stays
             * the recovery point.
             */
            c->warned_timeout = true;
            c->failed++;
            tm_errors_count(TM_ERRKIND_CHECKPOINT_FAILED);
            TM_WARN("checkpoint", "checkpoint is taking longer than checkpoint_timeout",
                    "checkpoint=%" PRIu64 " elapsed_ms=%" PRId64 " timeouts=%" PRIu64,
                    c->inflight, now - c->started_ms, c->failed);
        }
        return 0;
    }
    int rc = write_metadata(c, c->inflight, now - c->started_ms, errstr, errstr_size);
    if (rc != 0) {
        c->failed++;
        tm_errors_count(TM_ERRKIND_CHECKPOINT_FAILED);
        return rc;
    }
    tm_failpoint("checkpoint.after_metadata");
    c->last_completed = c->inflight;
    c->inflight = 0;
    c->committing = true;
    c->next_ms = now + c->interval_ms;
    if (c->last_completed == c->at_id && c->at_hold_ms > 0)
        c->hold_until = now + c->at_hold_ms;
    c->ncompleted++;
    c->last_duration_ms = now - c->started_ms;
    c->last_wall_ms = tm_wall_us() / 1000;
    char *progress = progress_record(c, c->last_completed);
    tm_pipeline_complete(c->p, c->last_completed, progress);
    free(progress);
    TM_INFO("checkpoint", "completed", "checkpoint=%" PRIu64 " duration_ms=%" PRId64,
            c->last_completed, now - c->started_ms);
    return 0;
}
