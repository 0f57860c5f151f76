/*
 * jobstate.c — opening, restoring and rescaling the stores of stateful stages, and
 * savepoints from checkpoints (see jobstate.h).
 */
#include "runtime/jobstate.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "state/keygroup.h"
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
    for (int k = 0; k < o->nstages; k++)
        for (int i = 0; i < o->stages[k].nuids; i++)
            if (strcmp(o->stages[k].uids[i], uid) == 0)
                return true;
    return false;
}

static bool in_checkpoint(const tm_checkpoint_info_t *chk, const char *uid)
{
    for (int i = 0; i < chk->noperators; i++)
        if (strcmp(chk->operators[i], uid) == 0)
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

static void work_dir(const char *state_dir, const char *what, int k, int w, char *out, size_t n)
{
    /* A path too long for `out` is cut; opening it then fails with a clear error. */
    if (snprintf(out, n, "%s/work/%s%d-%d", state_dir, what, k, w) >= (int)n && n > 0)
        out[n - 1] = '\0';
}

static void store_opts(const tm_jobstate_opts_t *o, tm_store_mem_t *mem, tm_store_opts_t *so)
{
    memset(so, 0, sizeof(*so));
    so->mem = mem;
    so->state_ttl_us = o->state_ttl_us;
    so->max_parallelism = o->max_parallelism;
}

/* Opens every store of checkpoint `chk` into scratch directories `what`0-I. */
static int open_checkpoint_stores(const char *state_dir, const char *what,
                                  const tm_checkpoint_info_t *chk, tm_store_mem_t *mem,
                                  const tm_jobstate_opts_t *o, tm_store_t **stores, char *errstr,
                                  size_t errstr_size)
{
    tm_store_opts_t so;
    store_opts(o, mem, &so);
    so.max_parallelism = chk->max_parallelism;
    for (int i = 0; i < chk->nstores; i++) {
        char src[4200], dst[4200];
        snprintf(src, sizeof(src), "%s/%s", chk->dir, chk->stores[i].dir);
        work_dir(state_dir, what, 0, i, dst, sizeof(dst));
        tm_rm_rf(dst);
        int rc = tm_store_open_from_checkpoint(src, dst, &so, &stores[i], errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    return 0;
}

static void close_checkpoint_stores(const char *state_dir, const char *what, tm_store_t **stores,
                                    int n)
{
    char dir[4200];
    for (int i = 0; stores != NULL && i < n; i++) {
        tm_store_close(stores[i]);
        work_dir(state_dir, what, 0, i, dir, sizeof(dir));
        tm_rm_rf(dir);
    }
    free(stores);
}

static bool store_has(const tm_checkpoint_store_t *cs, const char *uid)
{
    for (int i = 0; i < cs->nuids; i++)
        if (strcmp(cs->uids[i], uid) == 0)
            return true;
    return false;
}

/*
 * The checkpoint stores of stage `st` if they can be hard-linked as they
 * are: exactly st->parallelism stores, subtasks 0..P-1, each holding exactly
 * the stage's uids.  Fills idx[w] (the store index of subtask w).
 */
static bool same_layout(const tm_checkpoint_info_t *chk, const tm_jobstate_stage_t *st, int *idx)
{
    int found = 0;
    for (int w = 0; w < st->parallelism; w++)
        idx[w] = -1;
    for (int i = 0; i < chk->nstores; i++) {
        const tm_checkpoint_store_t *cs = &chk->stores[i];
        if (cs->nuids != st->nuids)
            continue;
        bool all = true;
        for (int k = 0; k < st->nuids && all; k++)
            all = store_has(cs, st->uids[k]);
        if (!all)
            continue;
        if (cs->parallelism != st->parallelism || cs->subtask < 0 ||
            cs->subtask >= st->parallelism || idx[cs->subtask] >= 0)
            return false;
        idx[cs->subtask] = i;
        found++;
    }
    return found == st->parallelism && st->nuids > 0;
}

/* True when any of the stage's operators has state in the checkpoint. */
static bool has_state(const tm_checkpoint_info_t *chk, const tm_jobstate_stage_t *st)
{
    for (int k = 0; k < st->nuids; k++)
        if (in_checkpoint(chk, st->uids[k]))
            return true;
    return false;
}

/*
 * Restores the portable savepoint `tmsp` into the stages marked in `which`
 * (NULL: all), each operator uid into the stores of the stage that holds it.
 */
static int restore_portable(tm_jobstate_t *js, const tm_jobstate_opts_t *o, const bool *which,
                            const char *tmsp, bool allow_non_restored, tm_savepoint_stats_t *st,
                            int *nstores, char *errstr, size_t errstr_size)
{
    int nuids = 0;
    for (int k = 0; k < o->nstages; k++)
        nuids += o->stages[k].nuids;
    const char **uids = calloc((size_t)(nuids ? nuids : 1), sizeof(*uids));
    tm_store_t *const **ustores = calloc((size_t)(nuids ? nuids : 1), sizeof(*ustores));
    int *un = calloc((size_t)(nuids ? nuids : 1), sizeof(*un));
    int rc = 0;
    if (uids == NULL || ustores == NULL || un == NULL) {
        rc = TM_ENOMEM;
        goto out;
    }
    int n = 0;
    *nstores = 0;
    for (int k = 0; k < o->nstages; k++) {
        if (which != NULL && !which[k])
            continue;
        *nstores += js->stages[k].n;
        for (int i = 0; i < o->stages[k].nuids; i++) {
            uids[n] = o->stages[k].uids[i];
            ustores[n] = js->stages[k].stores;
            un[n++] = js->stages[k].n;
        }
    }
    tm_savepoint_target_t target = {
        .stores = NULL,
        .nstores = 0,
        .uids = uids,
        .nuids = n,
        .allow_non_restored = allow_non_restored,
        .uid_stores = (tm_store_t *const *const *)ustores,
        .uid_nstores = un,
    };
    memset(st, 0, sizeof(*st));
    rc = tm_savepoint_restore(tmsp, &target, st, errstr, errstr_size);
out:
    free(uids);
    free(ustores);
    free(un);
    return rc;
}

int tm_jobstate_open(tm_jobstate_t *js, const tm_jobstate_opts_t *o,
                     const tm_checkpoint_info_t *chk, const char *savepoint, char *errstr,
                     size_t errstr_size)
{
    memset(js, 0, sizeof(*js));
    snprintf(js->restored, sizeof(js->restored), "nothing");
    int total = 0, rc;
    for (int k = 0; k < o->nstages; k++) {
        if ((rc = tm_keygroup_check(o->max_parallelism, o->stages[k].parallelism, errstr,
                                    errstr_size)) != 0)
            return rc;
        total += o->stages[k].parallelism;
    }
    bool from_chk = chk != NULL && chk->id > 0 && chk->nstores > 0;
    if (from_chk && chk->max_parallelism != o->max_parallelism)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "checkpoint %s was taken with max_parallelism = %d, but the job sets %d; "
                         "max_parallelism cannot change for the life of a job's state",
                         chk->dir, chk->max_parallelism, o->max_parallelism);
    if (from_chk && (rc = check_dropped(o, chk, errstr, errstr_size)) != 0)
        return rc;
    if (o->nstages == 0)
        return 0;
    if ((rc = tm_store_mem_new(o->state_memory, total, &js->mem, errstr, errstr_size)) != 0)
        return rc;
    js->stages = calloc((size_t)o->nstages, sizeof(*js->stages));
    bool *rescale = calloc((size_t)o->nstages, sizeof(*rescale));
    int *idx = calloc((size_t)total + 1, sizeof(*idx));
    if (js->stages == NULL || rescale == NULL || idx == NULL) {
        free(rescale);
        free(idx);
        return TM_ENOMEM;
    }
    js->nstages = o->nstages;
    char dir[4200];
    snprintf(dir, sizeof(dir), "%s/work", o->state_dir);
    tm_rm_rf(dir); /* scratch of an earlier run (jobstate.h) */
    tm_store_opts_t so;
    store_opts(o, js->mem, &so);

    bool any_rescale = false, any_linked = false;
    for (int k = 0; k < o->nstages && rc == 0; k++) {
        const tm_jobstate_stage_t *st = &o->stages[k];
        tm_jobstate_stores_t *ss = &js->stages[k];
        if ((ss->stores = calloc((size_t)st->parallelism, sizeof(*ss->stores))) == NULL) {
            rc = TM_ENOMEM;
            break;
        }
        ss->n = st->parallelism;
        bool link = from_chk && same_layout(chk, st, idx);
        for (int w = 0; w < st->parallelism && rc == 0; w++) {
            work_dir(o->state_dir, "stage", k, w, dir, sizeof(dir));
            if (link) {
                char src[4200];
                snprintf(src, sizeof(src), "%s/%s", chk->dir, chk->stores[idx[w]].dir);
                rc = tm_store_open_from_checkpoint(src, dir, &so, &ss->stores[w], errstr,
                                                   errstr_size);
            } else {
                rc = tm_store_open(dir, &so, &ss->stores[w], errstr, errstr_size);
            }
        }
        any_linked |= link;
        if (!link && from_chk && has_state(chk, st)) {
            rescale[k] = any_rescale = true;
            int from = 0;
            for (int i = 0; i < chk->nstores; i++)
                for (int u = 0; u < st->nuids; u++)
                    if (store_has(&chk->stores[i], st->uids[u]))
                        from = chk->stores[i].parallelism;
            TM_INFO("state", "rescaling checkpoint state",
                    "checkpoint=%" PRIu64 " stage=\"%s\" from=%d to=%d", chk->id, st->name, from,
                    st->parallelism);
        }
    }
    free(idx);
    if (rc != 0) {
        free(rescale);
        return rc;
    }
    if (from_chk && !any_rescale) {
        free(rescale);
        if (any_linked)
            snprintf(js->restored, sizeof(js->restored), "checkpoint %" PRIu64, chk->id);
        return 0;
    }

    char tmsp[4200];
    bool temporary = false;
    if (from_chk) {
        /* Rescaling: through a temporary portable savepoint (jobstate.h). */
        tm_store_t **old = calloc((size_t)chk->nstores, sizeof(*old));
        rc = old != NULL ? open_checkpoint_stores(o->state_dir, "rescale", chk, js->mem, o, old,
                                                  errstr, errstr_size)
                         : TM_ENOMEM;
        snprintf(tmsp, sizeof(tmsp), "%s/work/rescale.tmsp", o->state_dir);
        if (rc == 0)
            rc = tm_savepoint_write(old, chk->nstores, (const char *const *)chk->operators,
                                    chk->noperators, chk->job ? chk->job : "", tmsp, NULL, errstr,
                                    errstr_size);
        close_checkpoint_stores(o->state_dir, "rescale", old, chk->nstores);
        if (rc != 0) {
            free(rescale);
            return rc;
        }
        temporary = true;
        snprintf(js->restored, sizeof(js->restored), "checkpoint %" PRIu64 " (rescaled)", chk->id);
    } else if (savepoint != NULL) {
        snprintf(tmsp, sizeof(tmsp), "%s/state.tmsp", savepoint);
        free(rescale);
        rescale = NULL;
        if (access(tmsp, F_OK) != 0)
            return 0; /* a savepoint of a job without keyed state */
        snprintf(js->restored, sizeof(js->restored), "savepoint");
    } else {
        free(rescale);
        return 0;
    }
    tm_savepoint_stats_t st;
    int nstores = 0;
    /*
     * From a checkpoint only the rescaled stages are restored here (the
     * others were linked), and invariant 1 was checked above, so uids of
     * other stages are skipped rather than refused.
     */
    rc = restore_portable(js, o, rescale, tmsp, from_chk ? true : o->allow_non_restored, &st,
                          &nstores, errstr, errstr_size);
    free(rescale);
    if (temporary)
        unlink(tmsp);
    if (rc == 0) {
        js->restored_records = st.records;
        TM_INFO("state", "restored keyed state", "from=\"%s\" records=%" PRIu64
                " operators=%u skipped_operators=%u workers=%d",
                js->restored, st.records, st.operators, from_chk ? 0u : st.skipped, nstores);
    }
    return rc;
}

void tm_jobstate_close(tm_jobstate_t *js)
{
    for (int k = 0; js->stages != NULL && k < js->nstages; k++) {
        for (int w = 0; w < js->stages[k].n; w++)
            tm_store_close(js->stages[k].stores[w]);
        free(js->stages[k].stores);
    }
    free(js->stages);
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
    if (chk->nstores > 0) {
        tm_jobstate_opts_t o = {.state_dir = tmp, .max_parallelism = chk->max_parallelism};
        tm_store_mem_t *mem = NULL;
        tm_store_t **stores = calloc((size_t)chk->nstores, sizeof(*stores));
        rc = stores ? tm_store_mem_new(0, chk->nstores, &mem, errstr, errstr_size) : TM_ENOMEM;
        if (rc == 0)
            rc = open_checkpoint_stores(tmp, "open", chk, mem, &o, stores, errstr, errstr_size);
        snprintf(path, sizeof(path), "%s/state.tmsp", tmp);
        tm_savepoint_stats_t st;
        /* Each uid is collected from the stores that hold it (savepoint.h). */
        if (rc == 0)
            rc = tm_savepoint_write(stores, chk->nstores, (const char *const *)chk->operators,
                                    chk->noperators, job, path, &st, errstr, errstr_size);
        close_checkpoint_stores(tmp, "open", stores, chk->nstores);
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
