/*
 * jobstate.c — opening, restoring and rescaling the workers' stores, and
 * savepoints from checkpoints (see jobstate.h).
 */
#include "runtime/jobstate.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "state/savepoint.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static bool in_plan(const tm_jobstate_opts_t *o, const char *uid)
{
    for (int i = 0; i < o->nuids; i++)
        if (strcmp(o->uids[i], uid) == 0)
            return true;
    return false;
}

/* Invariant 1 for a checkpoint restored as is. */
static int check_dropped(const tm_jobstate_opts_t *o, const tm_checkpoint_info_t *chk,
                         char *errstr, size_t errstr_size)
{
    for (int i = 0; i < chk->noperators; i++) {
        if (in_plan(o, chk->operators[i]))
            continue;
        if (o->allow_non_restored) {
            TM_WARN("state", "dropping the state of an operator the job no longer has",
                    "operator=%s", chk->operators[i]);
            continue;
        }
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "checkpoint %s holds state of operator '%s', which the job no longer "
                         "has; restore the old job, or pass --allow-non-restored-state to drop "
                         "that state",
                         chk->dir, chk->operators[i]);
    }
    return 0;
}

static void work_dir(const char *state_dir, const char *what, int w, char *out, size_t n)
{
    snprintf(out, n, "%s/work/%s-%d", state_dir, what, w);
}

static void store_opts(const tm_jobstate_opts_t *o, tm_store_mem_t *mem, tm_store_opts_t *so)
{
    memset(so, 0, sizeof(*so));
    so->mem = mem;
    so->state_ttl_us = o->state_ttl_us;
    so->max_parallelism = o->max_parallelism;
}

/* Opens the stores of checkpoint `chk` into scratch directories `what`-W. */
static int open_checkpoint_stores(const char *state_dir, const char *what,
                                  const tm_checkpoint_info_t *chk, tm_store_mem_t *mem,
                                  const tm_jobstate_opts_t *o, tm_store_t **stores, char *errstr,
                                  size_t errstr_size)
{
    tm_store_opts_t so;
    store_opts(o, mem, &so);
    so.max_parallelism = chk->max_parallelism;
    for (int w = 0; w < chk->parallelism; w++) {
        char src[4200], dst[4200];
        snprintf(src, sizeof(src), "%s/state/worker-%d", chk->dir, w);
        work_dir(state_dir, what, w, dst, sizeof(dst));
        tm_rm_rf(dst);
        int rc = tm_store_open_from_checkpoint(src, dst, &so, &stores[w], errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

int tm_jobstate_open(tm_jobstate_t *js, const tm_jobstate_opts_t *o,
                     const tm_checkpoint_info_t *chk, const char *savepoint, char *errstr,
                     size_t errstr_size)
{
    memset(js, 0, sizeof(*js));
    snprintf(js->restored, sizeof(js->restored), "nothing");
    int n = o->parallelism;
    int rc = tm_keygroup_check(o->max_parallelism, n, errstr, errstr_size);
    if (rc != 0)
        return rc;
    if ((rc = tm_store_mem_new(o->state_memory, n, &js->mem, errstr, errstr_size)) != 0)
        return rc;
    js->stores = calloc((size_t)n, sizeof(*js->stores));
    if (js->stores == NULL)
        return TM_ENOMEM;
    js->n = n;
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/work", o->state_dir);
    tm_rm_rf(dir); /* scratch of an earlier run (jobstate.h) */
    tm_store_opts_t so;
    store_opts(o, js->mem, &so);

    bool from_chk = chk != NULL && chk->id > 0 && chk->parallelism > 0;
    if (from_chk && chk->max_parallelism != o->max_parallelism)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "checkpoint %s was taken with max_parallelism = %d, but the job sets %d; "
                         "max_parallelism cannot change for the life of a job's state",
                         chk->dir, chk->max_parallelism, o->max_parallelism);
    if (from_chk && (rc = check_dropped(o, chk, errstr, errstr_size)) != 0)
        return rc;
    if (from_chk && chk->parallelism == n) {
        for (int w = 0; w < n && rc == 0; w++) {
            char src[4200];
            snprintf(src, sizeof(src), "%s/state/worker-%d", chk->dir, w);
            work_dir(o->state_dir, "worker", w, dir, sizeof(dir));
            rc = tm_store_open_from_checkpoint(src, dir, &so, &js->stores[w], errstr, errstr_size);
        }
        snprintf(js->restored, sizeof(js->restored), "checkpoint %" PRIu64, chk->id);
        return rc;
    }
    for (int w = 0; w < n && rc == 0; w++) {
        work_dir(o->state_dir, "worker", w, dir, sizeof(dir));
        rc = tm_store_open(dir, &so, &js->stores[w], errstr, errstr_size);
    }
    if (rc != 0)
        return rc;

    char tmsp[4200];
    bool temporary = false;
    if (from_chk) {
        /* Rescaling: through a temporary portable savepoint (jobstate.h). */
        tm_store_t **old = calloc((size_t)chk->parallelism, sizeof(*old));
        if (old == NULL)
            return TM_ENOMEM;
        rc = open_checkpoint_stores(o->state_dir, "rescale", chk, js->mem, o, old, errstr,
                                    errstr_size);
        snprintf(tmsp, sizeof(tmsp), "%s/work/rescale.tmsp", o->state_dir);
        if (rc == 0)
            rc = tm_savepoint_write(old, chk->parallelism, (const char *const *)chk->operators,
                                    chk->noperators, chk->job ? chk->job : "", tmsp, NULL, errstr,
                                    errstr_size);
        for (int w = 0; w < chk->parallelism; w++) {
            tm_store_close(old[w]);
            work_dir(o->state_dir, "rescale", w, dir, sizeof(dir));
            tm_rm_rf(dir);
        }
        free(old);
        if (rc != 0)
            return rc;
        temporary = true;
        TM_INFO("state", "rescaling checkpoint state", "checkpoint=%" PRIu64 " from=%d to=%d",
                chk->id, chk->parallelism, n);
        snprintf(js->restored, sizeof(js->restored), "checkpoint %" PRIu64 " (rescaled)", chk->id);
    } else if (savepoint != NULL) {
        snprintf(tmsp, sizeof(tmsp), "%s/state.tmsp", savepoint);
        if (access(tmsp, F_OK) != 0)
            return 0; /* a savepoint of a job without keyed state */
        snprintf(js->restored, sizeof(js->restored), "savepoint");
    } else {
        return 0;
    }
    tm_savepoint_target_t target = {js->stores, n, o->uids, o->nuids, o->allow_non_restored};
    tm_savepoint_stats_t st;
    memset(&st, 0, sizeof(st));
    rc = tm_savepoint_restore(tmsp, &target, &st, errstr, errstr_size);
    if (temporary)
        unlink(tmsp);
    if (rc == 0) {
        js->restored_records = st.records;
        TM_INFO("state", "restored keyed state", "from=\"%s\" records=%" PRIu64
                " operators=%u skipped_operators=%u workers=%d",
                js->restored, st.records, st.operators, st.skipped, n);
    }
    return rc;
}

void tm_jobstate_close(tm_jobstate_t *js)
{
    for (int w = 0; w < js->n; w++)
        tm_store_close(js->stores[w]);
    free(js->stores);
    tm_store_mem_free(js->mem);
    memset(js, 0, sizeof(*js));
}

static int copy_file(const char *from, const char *to)
{
    FILE *in = fopen(from, "rb");
    if (in == NULL)
        return TM_EIO;
    FILE *out = fopen(to, "wb");
    if (out == NULL) {
        fclose(in);
        return TM_EIO;
    }
    char buf[65536];
    size_t n;
    int rc = 0;
    while ((n = fread(buf, 1, sizeof(buf), in)) > 0)
        if (fwrite(buf, 1, n, out) != n)
            rc = TM_EIO;
    if (ferror(in) || fflush(out) != 0 || fsync(fileno(out)) != 0)
        rc = TM_EIO;
    fclose(in);
    if (fclose(out) != 0)
        rc = TM_EIO;
    return rc;
}

int tm_jobstate_savepoint(const tm_checkpoint_info_t *chk, const char *parent, const char *job,
                          char **path_out, char *errstr, size_t errstr_size)
{
    *path_out = NULL;
    if (tm_mkdir_p(parent, 0750) != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot create savepoint directory %s (%s)",
                         parent, strerror(errno));
    char final[4200], tmp[4300], path[4400];
    snprintf(final, sizeof(final), "%s/savepoint-%s-%" PRIu64 "-%" PRId64, parent, job, chk->id,
             tm_wall_us() / 1000);
    snprintf(tmp, sizeof(tmp), "%s.inprogress", final);
    tm_rm_rf(tmp);
    if (mkdir(tmp, 0750) != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot create %s (%s)", tmp,
                         strerror(errno));
    int rc = 0;
    if (chk->parallelism > 0) {
        tm_jobstate_opts_t o = {.state_dir = tmp, .max_parallelism = chk->max_parallelism};
        tm_store_mem_t *mem = NULL;
        tm_store_t **stores = calloc((size_t)chk->parallelism, sizeof(*stores));
        rc = stores ? tm_store_mem_new(0, chk->parallelism, &mem, errstr, errstr_size) : TM_ENOMEM;
        if (rc == 0)
            rc = open_checkpoint_stores(tmp, "open", chk, mem, &o, stores, errstr, errstr_size);
        snprintf(path, sizeof(path), "%s/state.tmsp", tmp);
        tm_savepoint_stats_t st;
        if (rc == 0)
            rc = tm_savepoint_write(stores, chk->parallelism, (const char *const *)chk->operators,
                                    chk->noperators, job, path, &st, errstr, errstr_size);
        for (int w = 0; stores && w < chk->parallelism; w++)
            tm_store_close(stores[w]);
        free(stores);
        tm_store_mem_free(mem);
        snprintf(path, sizeof(path), "%s/work", tmp);
        tm_rm_rf(path);
    }
    if (rc == 0) {
        char from[4200];
        snprintf(from, sizeof(from), "%s/_metadata", chk->dir);
        snprintf(path, sizeof(path), "%s/_metadata", tmp);
        if (copy_file(from, path) != 0 || tm_fsync_dir(tmp) != 0)
            rc = tm_seterr(errstr, errstr_size, TM_EIO, "cannot write %s (%s)", path,
                           strerror(errno));
    }
    if (rc == 0 && (rename(tmp, final) != 0 || tm_fsync_dir(parent) != 0))
        rc = tm_seterr(errstr, errstr_size, TM_EIO, "cannot rename %s into place (%s)", tmp,
                       strerror(errno));
    if (rc != 0) {
        tm_rm_rf(tmp);
        return rc;
    }
    *path_out = strdup(final);
    return 0;
}
