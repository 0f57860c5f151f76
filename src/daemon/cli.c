/*
 * cli.c — command dispatch and the job life cycle (see cli.h).
 *
 * `run` first checks everything that can be checked without a side effect
 * (check_job: settings, the admin address, every connector's options, at
 * most one decision log; `explain` runs the same checks), then creates the
 * state directory, binds the admin API, builds every connector from the job
 * (sinks first, so a sink that cannot open fails before a source creates a
 * replication slot), starts the data plane, and runs the control loop
 * (libevent) until the job ends or a signal stops it:
 *
 *     SIGTERM / SIGHUP /     → graceful stop: sources stop reading, sinks
 *     first SIGINT             drain and flush, sources acknowledge, exit 0
 *                              (SIGHUP: the terminal or the supervisor went
 *                              away; a final checkpoint beats dying mid-epoch)
 *     second SIGINT          → immediate exit (130)
 *
 * Signal handlers are libevent's (they only wake the loop); worker threads
 * block these signals so the kernel delivers them to the main thread.
 */
#include "daemon/cli.h"
#include "core/clock.h"
#include "core/error.h"
#include "core/fsutil.h"
#include "core/log.h"
#include "core/shutdown.h"
#include "daemon/admin.h"
#include "daemon/metrics.h"
#include "postgres/pg_incr.h"
#include "runtime/checkpoint.h"
#include "runtime/graph.h"
#include "runtime/jobstate.h"
#include "state/savepoint.h"
#include "runtime/pipeline.h"
#include "plan/plan.h"
#include "sql/job.h"

#include <dirent.h>
#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <jansson.h>
#include <limits.h>
#include <pthread.h>
#include <inttypes.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct run_opts {
    const char *state_dir;
    const char *from_savepoint;
    const char *admin_address; /* NULL: the job's admin_address setting */
    int64_t checkpoint_interval_ms; /* -1: the job's checkpoint_interval setting */
    bool allow_non_restored;
    const char *savepoint_dir; /* checkpoints: where savepoints are (default <state_dir>/savepoints) */
} run_opts_t;

/* A savepoint request from the admin API (one at a time). */
typedef struct savepoint_req {
    int64_t id;       /* 0: none yet */
    bool active;      /* waiting for checkpoint `target` */
    bool stop;        /* stop the job once written */
    uint64_t target;
    char *dir;
    char *path;       /* once completed */
    char error[1024]; /* once failed */
} savepoint_req_t;

typedef struct run_state {
    tm_pipeline_t *pipeline;
    tm_coordinator_t *coord; /* NULL without checkpoints */
    struct event_base *base;
    struct event *tick; /* on_tick, re-armed by itself */
    const tm_job_t *job;
    const char *job_name;
    const char *state_dir;
    int64_t chk_interval;
    int sigints;
    bool stopping;           /* a graceful stop waits for the final checkpoint */
    uint64_t final_target;
    int64_t stop_deadline_ms;
    int64_t started_wall_ms;
    savepoint_req_t sp;
    int rc;
    char err[1024];
} run_state_t;


/*
 * A graceful stop with checkpoints takes a final checkpoint first, so that
 * everything read so far is committed and acknowledged (DESIGN §9).
 */
static void begin_stop(run_state_t *rs)
{
    /* Sources now end because of the stop: windows must not fire at on_end (window_agg.h). */
    tm_shutdown_stopping();
    if (rs->coord == NULL || tm_pipeline_error(rs->pipeline) != 0) {
        tm_pipeline_request_stop(rs->pipeline);
        return;
    }
    if (rs->stopping)
        return;
    rs->stopping = true;
    rs->final_target = tm_coordinator_last_completed(rs->coord) + 1;
    rs->stop_deadline_ms = tm_mono_ms() + 60000;
    tm_coordinator_trigger_now(rs->coord);
}

static void usage(FILE *f)
{
    fprintf(f,
            "tidemark %s — change-data-capture stream processor\n"
            "\n"
            "Usage:\n"
            "  tidemark run JOB.sql [--state-dir DIR] [--from-savepoint P]\n"
            "               [--allow-non-restored-state] [--admin-address HOST:PORT]\n"
            "                                           run a job until stopped\n"
            "  tidemark explain JOB.sql                 print the plan, delivery guarantees and\n"
            "                                           options in effect (secrets masked)\n"
            "  tidemark checkpoints [--state-dir S] [--savepoint-dir P]\n"
            "                                           list completed checkpoints and savepoints\n"
            "  tidemark inspect DIR                     print what a state directory's newest\n"
            "                                           checkpoint, a chk-N or a savepoint holds\n"
            "  tidemark savepoint [--dir D] [--state-dir S | --admin HOST:PORT]\n"
            "                                           take a savepoint of the running job\n"
            "  tidemark stop [--savepoint] [--dir D] [--state-dir S | --admin HOST:PORT]\n"
            "                                           stop the running job (final checkpoint)\n"
            "  tidemark status [--live | --ready] [--state-dir S | --admin HOST:PORT]\n"
            "                                           print the running job, or probe it\n"
            "  tidemark snapshot --table T [--where EXPR] [--wait] [--state-dir S]\n"
            "                                           re-read a PostgreSQL table while the job\n"
            "                                           streams (incremental snapshot; also\n"
            "                                           --status, --pause, --resume, --cancel)\n"
            "  tidemark verify JOB.sql --sink NAME [--state-dir S | --admin HOST:PORT]\n"
            "                                           compare a PostgreSQL sink's table with\n"
            "                                           its query on the source, at one point\n"
            "                  (savepoint, stop, status: --token, and for a daemon that serves\n"
            "                  TLS --cacert, --tls-server-name, --cert, --key; see --help of each)\n"
            "  tidemark --version                       print the version\n"
            "  tidemark --help                          print this help\n"
            "\n"
            "Options:\n"
            "  --state-dir DIR     the job's state directory (default ./tidemark-state)\n"
            "  --log-level LEVEL   error, warn, info (default) or debug\n"
            "  --log-format FMT    logfmt (default) or json\n"
            "  --from-savepoint P  restore state and positions from savepoint directory P\n"
            "  --allow-non-restored-state\n"
            "                      drop savepoint/checkpoint state of operators the job lost\n"
            "  --admin-address A   where the admin API listens (overrides SET admin_address)\n"
            "  --checkpoint-interval D\n"
            "                      checkpoint every D, e.g. 10s; 0 = off (overrides SET\n"
            "                      checkpoint_interval)\n"
            "\n"
            "Signals: SIGTERM and SIGHUP stop gracefully; SIGINT twice stops at once.\n"
            "Exit codes: 0 stopped cleanly, 1 internal failure, 2 configuration or SQL error,\n"
            "            3 source error that cannot be retried, 4 checkpoint failure.\n"
            "Documentation: docs/ in the source tree; start with README.md.\n",
            TM_VERSION);
}

/* ---- explain ---- */

/* The job's name: the file's base name without ".sql". */
static char *job_name_of(const char *path)
{
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *name = strdup(base);
    size_t n = name ? strlen(name) : 0;
    if (n > 4 && strcmp(name + n - 4, ".sql") == 0)
        name[n - 4] = '\0';
    return name;
}

/* The admin API's TLS settings (SET admin_tls_cert, admin_tls_key, admin_tls_client_ca). */
static tm_admin_tls_t admin_tls_of(const tm_job_t *job)
{
    tm_admin_tls_t tls = {tm_opt_str(job->settings, "admin_tls_cert"),
                          tm_opt_str(job->settings, "admin_tls_key"),
                          tm_opt_str(job->settings, "admin_tls_client_ca")};
    return tls;
}

/*
 * Everything about a job that can be checked without a side effect: the
 * admin API's address and token (without binding), and every source and
 * sink created from its options (source_new and sink_new do no I/O), with at
 * most one decision-log sink.  `run` calls it before it creates the state
 * directory, binds, connects or creates a replication slot, and `explain`
 * before it prints, so both refuse the same jobs, and a bad setting leaves
 * nothing behind (issue 9, item 9).
 */
static int check_job(const tm_job_t *job, const char *admin_address, int64_t chk_interval,
                     const char *state_dir, char *err, size_t errlen)
{
    const char *addr = admin_address ? admin_address : tm_opt_str(job->settings, "admin_address");
    tm_admin_tls_t tls = admin_tls_of(job);
    int rc = tm_admin_check_tls(addr, tm_opt_str(job->settings, "admin_token"), &tls, err, errlen);
    if (rc != 0)
        return rc;
    char *job_name = job_name_of(job->path);
    if (job_name == NULL)
        return tm_seterr(err, errlen, TM_ENOMEM, "out of memory");
    int dl = -1;
    for (int i = 0; rc == 0 && i < job->ntables; i++) {
        const tm_job_table_t *t = &job->tables[i];
        if (t->role == TM_ROLE_SOURCE && t->conn->source_new != NULL) {
            tm_source_t *src = NULL;
            tm_source_config_t cfg = {t->name, t->opts, t->declared, state_dir, 0, NULL,
                                      job_name};
            rc = t->conn->source_new(&src, &cfg, err, errlen);
            if (src != NULL)
                t->conn->source_free(src);
        } else if (t->role == TM_ROLE_LOOKUP && t->conn->lookup_new != NULL &&
                   t->declared != NULL && t->declared->nkeys > 0) {
            /* Options only (no I/O); the planner has checked how the table is joined. */
            tm_lookup_t *lk = NULL;
            tm_lookup_config_t cfg = {t->name, t->opts, t->declared, t->declared->key_cols, NULL,
                                      t->declared->nkeys, job_name};
            rc = t->conn->lookup_new(&lk, &cfg, err, errlen);
            if (lk != NULL)
                t->conn->lookup_free(lk);
        } else if (t->role == TM_ROLE_SINK && t->conn->sink_new != NULL) {
            tm_sink_t *snk = NULL;
            tm_sink_config_t cfg = {t->name,  t->opts,  t->declared, state_dir, chk_interval > 0,
                                    job_name, chk_interval};
            rc = t->conn->sink_new(&snk, &cfg, err, errlen);
            if (rc == 0 && chk_interval > 0 && t->conn->sink_is_decision_log != NULL &&
                t->conn->sink_is_decision_log(snk)) {
                if (dl >= 0)
                    rc = tm_seterr(err, errlen, TM_ECONFIG,
                                   "%s:%d: sinks '%s' and '%s' would both be the job's decision "
                                   "log (each is a Kafka sink with delivery = 'exactly-once'); a "
                                   "job may have at most one: make one of them 'at-least-once', "
                                   "or split the job in two",
                                   job->path, t->line, job->tables[dl].name, t->name);
                dl = i;
            }
            if (snk != NULL)
                t->conn->sink_free(snk);
        }
    }
    free(job_name);
    return rc;
}

static int cmd_explain(const char *path)
{
    char err[2048];
    tm_job_t *job = NULL;
    tm_plan_t *plan = NULL;
    int rc = tm_job_load(path, &job, err, sizeof(err));
    if (rc == 0)
        rc = tm_plan_new(job, &plan, err, sizeof(err));
    if (rc == 0)
        rc = check_job(job, NULL, tm_opt_duration_ms(job->settings, "checkpoint_interval"), ".",
                       err, sizeof(err));
    if (rc == 0)
        rc = tm_plan_explain(plan, stdout, err, sizeof(err));
    if (rc != 0)
        fprintf(stderr, "tidemark: %s\n", err);
    tm_plan_free(plan);
    tm_job_free(job);
    return rc != 0 ? tm_exit_code_for(rc) : TM_EXIT_OK;
}

/* ---- inspect ---- */

static void inspect_savepoint_part(void *arg, const tm_savepoint_desc_t *d)
{
    (void)arg;
    switch (d->part) {
    case TM_SAVEPOINT_HEADER:
        printf("  format %d, job %s, max_parallelism %d, %u operator(s), %" PRIu64
               " records, %" PRIu64 " bytes (checksums verified)\n",
               d->version, d->job, d->max_parallelism, d->noperators, d->records, d->bytes);
        break;
    case TM_SAVEPOINT_OPERATOR:
        printf("  operator %s: %u key group(s), %" PRIu64 " records, %" PRIu64 " bytes\n", d->uid,
               d->keygroups, d->records, d->bytes);
        break;
    case TM_SAVEPOINT_KEYGROUP:
        printf("    key group %d: %" PRIu64 " records, %" PRIu64 " bytes\n", d->kg, d->records,
               d->bytes);
        break;
    }
}

/* ---- tidemark checkpoints ---- */

typedef struct listed {
    bool savepoint;
    uint64_t id;
    int64_t completed_ms;
    uint64_t bytes;
    char *path;
    char *sources; /* "name=position, …" */
} listed_t;

static int listed_cmp(const void *a, const void *b)
{
    const listed_t *x = a, *y = b;
    if (x->completed_ms != y->completed_ms)
        return x->completed_ms < y->completed_ms ? -1 : 1;
    return x->savepoint - y->savepoint;
}

/* Reads dir/_metadata into *out; false when it is not a completed checkpoint or savepoint. */
static bool list_one(const char *dir, bool savepoint, listed_t *out)
{
    char path[4400];
    snprintf(path, sizeof(path), "%s/_metadata", dir);
    json_t *m = json_load_file(path, 0, NULL);
    if (m == NULL)
        return false;
    memset(out, 0, sizeof(*out));
    out->savepoint = savepoint;
    out->id = (uint64_t)json_integer_value(json_object_get(m, "checkpoint"));
    out->completed_ms = (int64_t)json_integer_value(json_object_get(m, "completed_at_ms"));
    out->path = strdup(dir);
    tm_buf_t src;
    tm_buf_init(&src);
    const char *name;
    json_t *v;
    json_object_foreach(json_object_get(m, "sources"), name, v) {
        tm_buf_appendf(&src, "%s%s=%s", src.len ? ", " : "", name,
                       json_string_value(json_object_get(v, "position")) ?: "?");
    }
    tm_buf_putc(&src, '\0');
    out->sources = src.data;
    if (savepoint) {
        /* The savepoint's state is its one file. */
        struct stat st;
        snprintf(path, sizeof(path), "%s/state.tmsp", dir);
        out->bytes = stat(path, &st) == 0 ? (uint64_t)st.st_size : 0;
    } else {
        size_t i;
        json_array_foreach(json_object_get(json_object_get(m, "state"), "stores"), i, v)
            out->bytes += (uint64_t)json_integer_value(json_object_get(v, "bytes"));
    }
    json_decref(m);
    return out->path != NULL;
}

/* Appends every completed checkpoint (chk-N) or savepoint directory under `parent`. */
static int list_dir(const char *parent, bool savepoint, listed_t **v, size_t *n, size_t *cap)
{
    DIR *d = opendir(parent);
    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        if (!savepoint && strncmp(de->d_name, "chk-", 4) != 0)
            continue;
        char dir[4200];
        if (snprintf(dir, sizeof(dir), "%s/%s", parent, de->d_name) >= (int)sizeof(dir))
            continue;
        if (*n == *cap) {
            size_t nc = *cap ? *cap * 2 : 16;
            listed_t *nv = realloc(*v, nc * sizeof(*nv));
            if (nv == NULL)
                break;
            *v = nv;
            *cap = nc;
        }
        if (list_one(dir, savepoint, &(*v)[*n]))
            (*n)++;
        else if (savepoint) {
            /* A subdirectory of the root ("nightly/") may hold savepoints of its own. */
            list_dir(dir, true, v, n, cap);
        }
    }
    closedir(d);
    return 0;
}

static void human_bytes(uint64_t b, char *buf, size_t len)
{
    static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = (double)b;
    int u = 0;
    while (v >= 1024 && u < 4) {
        v /= 1024;
        u++;
    }
    snprintf(buf, len, u == 0 ? "%.0f %s" : "%.1f %s", v, units[u]);
}

static void human_age(int64_t ms, char *buf, size_t len)
{
    int64_t s = ms / 1000;
    if (s < 120)
        snprintf(buf, len, "%" PRId64 "s", s);
    else if (s < 7200)
        snprintf(buf, len, "%" PRId64 "m", s / 60);
    else if (s < 2 * 86400)
        snprintf(buf, len, "%" PRId64 "h", s / 3600);
    else
        snprintf(buf, len, "%" PRId64 "d", s / 86400);
}

/*
 * Lists the completed checkpoints of a state directory and the savepoints
 * under its savepoint root, oldest first: what `--from-savepoint` and a
 * restart can resume from.
 */
static int cmd_checkpoints(const run_opts_t *ro)
{
    char chk[4200], sp[4200];
    snprintf(chk, sizeof(chk), "%s/checkpoints", ro->state_dir);
    if (ro->savepoint_dir != NULL)
        snprintf(sp, sizeof(sp), "%s", ro->savepoint_dir);
    else
        snprintf(sp, sizeof(sp), "%s/savepoints", ro->state_dir);
    struct stat st;
    if (stat(ro->state_dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "tidemark: state directory %s does not exist; pass the --state-dir the "
                        "job runs with\n",
                ro->state_dir);
        return TM_EXIT_CONFIG;
    }
    listed_t *v = NULL;
    size_t n = 0, cap = 0;
    if (list_dir(chk, false, &v, &n, &cap) != 0 || list_dir(sp, true, &v, &n, &cap) != 0) {
        fprintf(stderr, "tidemark: cannot read %s or %s: %s\n", chk, sp, strerror(errno));
        free(v);
        return TM_EXIT_FAILURE;
    }
    if (n > 1)
        qsort(v, n, sizeof(*v), listed_cmp);
    int64_t now = tm_wall_us() / 1000;
    printf("%-10s %8s  %-19s  %6s  %10s  %s\n", "KIND", "ID", "COMPLETED (UTC)", "AGE", "STATE",
           "POSITIONS / PATH");
    for (size_t i = 0; i < n; i++) {
        char when[32] = "?", age[32], size[24];
        time_t t = (time_t)(v[i].completed_ms / 1000);
        struct tm tmv;
        if (gmtime_r(&t, &tmv) != NULL)
            strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tmv);
        human_age(now - v[i].completed_ms, age, sizeof(age));
        human_bytes(v[i].bytes, size, sizeof(size));
        printf("%-10s %8" PRIu64 "  %-19s  %6s  %10s  %s\n%58s%s\n",
               v[i].savepoint ? "savepoint" : "checkpoint", v[i].id, when, age, size,
               v[i].sources[0] ? v[i].sources : "(no sources)", "", v[i].path);
        free(v[i].path);
        free(v[i].sources);
    }
    if (n == 0)
        printf("(none: no completed checkpoint in %s and no savepoint in %s)\n", chk, sp);
    free(v);
    return TM_EXIT_OK;
}

/*
 * Prints what a checkpoint holds.  DIR is a chk-N directory or a state
 * directory, whose newest completed checkpoint is shown.
 */
static int cmd_inspect(const char *dir)
{
    char path[4200], err[1024];
    snprintf(path, sizeof(path), "%s/_metadata", dir);
    if (access(path, F_OK) != 0) {
        tm_checkpoint_info_t info;
        int rc = tm_checkpoint_load_latest(dir, &info, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "tidemark: %s\n", err);
            return tm_exit_code_for(rc);
        }
        if (info.id == 0) {
            fprintf(stderr, "tidemark: %s holds no completed checkpoint (no %s/checkpoints/chk-N/"
                            "_metadata); pass a state directory or a chk-N directory\n",
                    dir, dir);
            return TM_EXIT_CONFIG;
        }
        snprintf(path, sizeof(path), "%s/checkpoints/chk-%" PRIu64 "/_metadata", dir, info.id);
        tm_checkpoint_info_release(&info);
    }
    json_error_t jerr;
    json_t *m = json_load_file(path, 0, &jerr);
    if (m == NULL) {
        fprintf(stderr, "tidemark: %s is not readable checkpoint metadata (%s)\n", path, jerr.text);
        return TM_EXIT_CHECKPOINT;
    }
    printf("checkpoint %lld\n", (long long)json_integer_value(json_object_get(m, "checkpoint")));
    printf("  metadata:    %s\n", path);
    printf("  job:         %s\n", json_string_value(json_object_get(m, "job")));
    printf("  format:      %lld\n", (long long)json_integer_value(json_object_get(m, "format")));
    long long at = (long long)json_integer_value(json_object_get(m, "completed_at_ms"));
    time_t secs = (time_t)(at / 1000);
    struct tm tmv;
    char when[64];
    gmtime_r(&secs, &tmv);
    strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tmv);
    printf("  completed:   %s (took %lld ms)\n", when,
           (long long)json_integer_value(json_object_get(m, "duration_ms")));
    const char *key;
    json_t *v;
    printf("  sources (positions):\n");
    json_object_foreach(json_object_get(m, "sources"), key, v)
    {
        printf("    %-20s position %s (token %s)\n", key,
               json_string_value(json_object_get(v, "position")),
               json_string_value(json_object_get(v, "token")));
    }
    printf("  sinks (pre-commit handles):\n");
    json_object_foreach(json_object_get(m, "sinks"), key, v)
    {
        const char *h = json_string_value(json_object_get(v, "handle"));
        printf("    %-20s %s\n", key, h && h[0] ? h : "(none: no two-phase commit)");
    }
    const char *dl = json_string_value(json_object_get(m, "decision_log"));
    if (dl != NULL)
        printf("  decision log: sink %s (the checkpoint is complete once it committed)\n", dl);
    const char *from = json_string_value(json_object_get(m, "restored_from"));
    if (from != NULL)
        printf("  lineage:     restored from savepoint %s\n", from);
    json_t *state = json_object_get(m, "state");
    if (!json_is_object(state)) {
        printf("  operator state: none (the job has no stateful operators)\n");
    } else {
        printf("  operator state: %lld worker(s), max_parallelism %lld\n",
               (long long)json_integer_value(json_object_get(state, "parallelism")),
               (long long)json_integer_value(json_object_get(state, "max_parallelism")));
        size_t i;
        json_t *x;
        json_array_foreach(json_object_get(state, "operators"), i, x)
            printf("    operator %s\n", json_string_value(x));
        /* One store per stateful stage subtask; older checkpoints list "workers". */
        json_t *stores = json_object_get(state, "stores");
        bool old = !json_is_array(stores);
        if (old)
            stores = json_object_get(state, "workers");
        json_array_foreach(stores, i, x)
        {
            json_t *kg = json_object_get(x, "key_groups");
            const char *stage = json_string_value(json_object_get(x, "stage"));
            long long sub = old ? (long long)i
                                : (long long)json_integer_value(json_object_get(x, "subtask"));
            printf("    store %s subtask %lld: key groups %lld-%lld, %lld bytes (%lld new), %s\n",
                   stage ? stage : "workers", sub,
                   (long long)json_integer_value(json_array_get(kg, 0)),
                   (long long)json_integer_value(json_array_get(kg, 1)),
                   (long long)json_integer_value(json_object_get(x, "bytes")),
                   (long long)json_integer_value(json_object_get(x, "bytes_new")),
                   json_string_value(json_object_get(x, "dir")));
        }
    }
    json_decref(m);
    /* A savepoint: the portable state file, verified completely, by operator and key group. */
    char tmsp[4200];
    snprintf(tmsp, sizeof(tmsp), "%s/state.tmsp", dir);
    if (access(tmsp, F_OK) == 0) {
        printf("savepoint state %s\n", tmsp);
        int rc = tm_savepoint_describe(tmsp, inspect_savepoint_part, NULL, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "tidemark: %s\n", err);
            return TM_EXIT_CHECKPOINT;
        }
    }
    return TM_EXIT_OK;
}

/* ---- run ---- */

/*
 * Until the event loop runs, a signal only raises the shutdown flag: opening
 * sinks and sources can wait long (brokers that do not answer), and those
 * waits check the flag.  A second SIGINT still exits at once.
 */
static volatile sig_atomic_t start_sigints;
/* SIGHUP was ignored when the process started (nohup): it stays ignored. */
static bool hup_ignored;

static void on_start_signal(int sig)
{
    if (sig == SIGINT && ++start_sigints >= 2)
        _exit(130);
    tm_shutdown_request();
}

static void install_start_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_start_signal;
    sa.sa_flags = SA_RESTART;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    /* SIGHUP stops like SIGTERM, unless it was ignored when we started (nohup). */
    struct sigaction hup;
    hup_ignored = sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler == SIG_IGN;
    if (!hup_ignored)
        sigaction(SIGHUP, &sa, NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    run_state_t *rs = arg;
    (void)what;
    if (sig == SIGINT) {
        if (++rs->sigints >= 2) {
            TM_WARN("main", "second SIGINT: stopping at once", "%s", "");
            _exit(130);
        }
        TM_INFO("main", "SIGINT: stopping gracefully; press Ctrl-C again to stop at once", "%s",
                "");
    } else {
        TM_INFO("main", sig == SIGHUP ? "SIGHUP: stopping gracefully (as SIGTERM)"
                                      : "SIGTERM: stopping gracefully",
                "%s", "");
    }
    begin_stop(rs);
}

/* Writes the savepoint of the checkpoint the pending request waited for. */
static void savepoint_write(run_state_t *rs)
{
    savepoint_req_t *sp = &rs->sp;
    uint64_t id = tm_coordinator_last_completed(rs->coord);
    tm_checkpoint_info_t info;
    char err[1024];
    int rc = tm_checkpoint_load(rs->state_dir, id, &info, err, sizeof(err));
    char *path = NULL;
    if (rc == 0)
        rc = tm_jobstate_savepoint(&info, sp->dir, rs->job_name, &path, err, sizeof(err));
    tm_checkpoint_info_release(&info);
    sp->active = false;
    if (rc != 0) {
        snprintf(sp->error, sizeof(sp->error), "%s", err);
        TM_ERROR("savepoint", "savepoint failed", "request=%" PRId64 " error=\"%s\"", sp->id, err);
        return;
    }
    sp->path = path;
    TM_INFO("savepoint", "savepoint written", "request=%" PRId64 " checkpoint=%" PRIu64
            " path=%s", sp->id, id, path);
}

/* How often the control loop looks at the coordinator and the pipeline. */
#define TICK_IDLE_MS 100
#define TICK_BUSY_MS 5

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    run_state_t *rs = arg;
    (void)fd;
    (void)what;
    if (rs->coord != NULL && rs->rc == 0 && tm_pipeline_error(rs->pipeline) == 0) {
        rs->rc = tm_coordinator_tick(rs->coord, rs->err, sizeof(rs->err));
        if (rs->rc != 0)
            tm_pipeline_request_stop(rs->pipeline);
        if (rs->sp.active && tm_coordinator_idle(rs->coord) &&
            tm_coordinator_last_completed(rs->coord) >= rs->sp.target)
            savepoint_write(rs);
        if (rs->stopping && !rs->sp.active &&
            ((tm_coordinator_idle(rs->coord) &&
              tm_coordinator_last_completed(rs->coord) >= rs->final_target) ||
             tm_mono_ms() > rs->stop_deadline_ms)) {
            if (tm_mono_ms() > rs->stop_deadline_ms)
                TM_WARN("main", "final checkpoint did not complete in 60 s; stopping without it",
                        "%s", "");
            tm_pipeline_request_stop(rs->pipeline);
        }
    } else if (rs->stopping) {
        tm_pipeline_request_stop(rs->pipeline);
    }
    if (rs->sp.active && (rs->coord == NULL || rs->rc != 0 || tm_pipeline_error(rs->pipeline))) {
        rs->sp.active = false;
        snprintf(rs->sp.error, sizeof(rs->sp.error), "the job failed before the savepoint's "
                                                     "checkpoint completed; see the daemon's log");
    }
    if (tm_pipeline_done(rs->pipeline)) {
        event_base_loopbreak(rs->base);
        return;
    }
    /*
     * While a checkpoint is in flight every step waits for this loop (all
     * sinks pre-committed: write _metadata; the decision log committed:
     * publish), and an exactly-once Kafka sink holds its records meanwhile:
     * look every TICK_BUSY_MS then, every TICK_IDLE_MS otherwise.
     */
    bool busy = rs->coord != NULL && !tm_coordinator_idle(rs->coord);
    struct timeval tv = {0, (busy ? TICK_BUSY_MS : TICK_IDLE_MS) * 1000};
    event_add(rs->tick, &tv);
}

/* ---- admin API hooks (thread: main, the control loop) ---- */

static bool admin_ready(void *arg)
{
    run_state_t *rs = arg;
    return tm_pipeline_sources_ready(rs->pipeline) && !rs->stopping &&
           (rs->coord == NULL || tm_coordinator_last_completed(rs->coord) > 0);
}

static void admin_metrics(void *arg, tm_buf_t *out)
{
    run_state_t *rs = arg;
    tm_metrics_src_t m = {rs->pipeline, rs->coord, rs->started_wall_ms};
    tm_metrics_render(&m, out);
}

static void admin_job(void *arg, tm_buf_t *out)
{
    run_state_t *rs = arg;
    json_t *root = json_object();
    json_object_set_new(root, "job", json_string(rs->job_name));
    json_object_set_new(root, "file", json_string(rs->job->path));
    json_object_set_new(root, "state", json_string(rs->stopping ? "stopping" : "running"));
    json_object_set_new(root, "version", json_string(TM_VERSION));
    json_object_set_new(root, "started_at_ms", json_integer(rs->started_wall_ms));
    json_object_set_new(root, "checkpoint_interval_ms", json_integer(rs->chk_interval));
    tm_pipeline_t *p = rs->pipeline;
    int parallelism = 0;
    json_t *stages = json_array();
    json_t *ops = json_array();
    for (int st = 0; st < tm_pipeline_nstages(p); st++) {
        if (tm_pipeline_stage_parallelism(p, st) > parallelism)
            parallelism = tm_pipeline_stage_parallelism(p, st);
        json_t *uids = json_array();
        for (int k = 0; k < tm_pipeline_stage_nops(p, st); k++) {
            json_array_append_new(uids, json_string(tm_pipeline_op_uid(p, st, k)));
            json_array_append_new(ops, json_string(tm_pipeline_op_uid(p, st, k)));
        }
        json_array_append_new(stages, json_pack("{s:s,s:i,s:o}", "name",
                                                tm_pipeline_stage_name(p, st), "parallelism",
                                                tm_pipeline_stage_parallelism(p, st), "operators",
                                                uids));
    }
    json_object_set_new(root, "parallelism", json_integer(parallelism));
    json_object_set_new(root, "stages", stages);
    json_t *sources = json_array();
    for (int i = 0; i < tm_pipeline_nsources(rs->pipeline); i++) {
        uint64_t ev, by;
        bool ready;
        tm_pipeline_source_counts(rs->pipeline, i, &ev, &by, &ready);
        int64_t wm;
        /* Milliseconds since the epoch, rounded down; null before the first watermark. */
        json_t *wm_ms = tm_pipeline_source_watermark(rs->pipeline, i, &wm)
                            ? json_integer((json_int_t)(wm >= 0 ? wm / 1000 : -((999 - wm) / 1000)))
                            : json_null();
        json_t *sj = json_pack("{s:s,s:b,s:I,s:o}", "name", tm_pipeline_source_name(rs->pipeline, i),
                               "ready", ready, "events", (json_int_t)ev, "watermark_ms", wm_ms);
        /* Marked idle downstream (every partition without records for idle_timeout). */
        json_object_set_new(sj, "idle", json_boolean(tm_pipeline_source_idle(rs->pipeline, i)));
        int64_t lag_us, lag_bytes;
        bool has_lag = tm_pipeline_source_lag(rs->pipeline, i, &lag_us, &lag_bytes);
        json_object_set_new(sj, "lag_ms",
                            has_lag ? json_integer(lag_us > 0 ? lag_us / 1000 : 0) : json_null());
        json_object_set_new(sj, "lag_bytes",
                            lag_bytes >= 0 ? json_integer(lag_bytes) : json_null());
        tm_snapshot_progress_t sp;
        if (tm_pipeline_source_snapshot(rs->pipeline, i, &sp)) {
            json_t *snap = json_pack("{s:s,s:I,s:I,s:b}", "table", sp.table, "rows",
                                     (json_int_t)sp.rows, "tables_done",
                                     (json_int_t)sp.tables_done, "done", sp.done);
            json_object_set_new(snap, "estimate", sp.estimate >= 0
                                                      ? json_integer((json_int_t)sp.estimate)
                                                      : json_null());
            json_object_set_new(sj, "snapshot", snap);
        } else {
            json_object_set_new(sj, "snapshot", json_null());
        }
        json_array_append_new(sources, sj);
    }
    json_object_set_new(root, "sources", sources);
    json_t *sinks = json_array();
    for (int i = 0; i < tm_pipeline_nsinks(rs->pipeline); i++)
        json_array_append_new(sinks, json_pack("{s:s}", "name",
                                               tm_pipeline_sink_name(rs->pipeline, i)));
    json_object_set_new(root, "sinks", sinks);
    json_object_set_new(root, "operators", ops);
    /* The watermark each operator last received (ms since the epoch, rounded down), or null. */
    json_t *op_wms = json_array();
    for (int st = 0; st < tm_pipeline_nstages(p); st++)
        for (int k = 0; k < tm_pipeline_stage_nops(p, st); k++) {
            int64_t wm;
            json_t *v = tm_pipeline_op_watermark(p, st, k, &wm)
                            ? json_integer((json_int_t)(wm >= 0 ? wm / 1000 : -((999 - wm) / 1000)))
                            : json_null();
            json_array_append_new(op_wms, json_pack("{s:s,s:o}", "operator",
                                                    tm_pipeline_op_uid(p, st, k), "watermark_ms",
                                                    v));
        }
    json_object_set_new(root, "operator_watermarks", op_wms);
    /* Incremental snapshots of PostgreSQL sources (GET /v1/snapshots has the same list). */
    tm_buf_t incr;
    tm_buf_init(&incr);
    tm_pg_incr_status(&incr);
    json_t *ij = json_loadb(incr.data ? incr.data : "", incr.len, 0, NULL);
    json_t *list = json_object_get(ij, "snapshots");
    json_object_set_new(root, "incremental_snapshots",
                        list ? json_incref(list) : json_array());
    json_decref(ij);
    tm_buf_release(&incr);
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text != NULL)
        tm_buf_puts(out, text);
    free(text);
}

static void admin_checkpoints(void *arg, tm_buf_t *out)
{
    run_state_t *rs = arg;
    json_t *root = json_object();
    if (rs->coord != NULL) {
        tm_checkpoint_stats_t st;
        tm_coordinator_stats(rs->coord, &st);
        json_object_set_new(root, "enabled", json_true());
        json_object_set_new(root, "interval_ms", json_integer(rs->chk_interval));
        json_object_set_new(root, "completed", json_integer((json_int_t)st.completed));
        json_object_set_new(root, "failed", json_integer((json_int_t)st.failed));
        if (st.last_id > 0)
            json_object_set_new(
                root, "latest",
                json_pack("{s:I,s:I,s:I,s:I,s:s}", "id", (json_int_t)st.last_id, "duration_ms",
                          (json_int_t)st.last_duration_ms, "state_bytes",
                          (json_int_t)st.last_state_bytes, "completed_at_ms",
                          (json_int_t)st.last_completed_wall_ms, "directory",
                          tm_coordinator_dir(rs->coord)));
    } else {
        json_object_set_new(root, "enabled", json_false());
    }
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text != NULL)
        tm_buf_puts(out, text);
    free(text);
}

static int64_t admin_savepoint(void *arg, const char *dir, bool stop, char *errstr,
                               size_t errstr_size)
{
    run_state_t *rs = arg;
    if (rs->coord == NULL)
        return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                         "savepoints need checkpoints; add SET checkpoint_interval = '10s' to the "
                         "job");
    if (rs->sp.active)
        return tm_seterr(errstr, errstr_size, TM_EAGAIN,
                         "savepoint request %" PRId64 " is still in progress", rs->sp.id);
    if (rs->stopping)
        return tm_seterr(errstr, errstr_size, TM_ESTOPPED, "the job is stopping");
    /* Savepoints stay below savepoint_dir (admin.h, tm_admin_savepoint_dir). */
    char def[4200];
    const char *root = tm_opt_str(rs->job->settings, "savepoint_dir");
    if (root == NULL || root[0] == '\0') {
        snprintf(def, sizeof(def), "%s/savepoints", rs->state_dir);
        root = def;
    }
    char *confined = NULL;
    int crc = tm_admin_savepoint_dir(root, dir, &confined, errstr, errstr_size);
    if (crc != 0)
        return crc;
    savepoint_req_t *sp = &rs->sp;
    free(sp->dir);
    free(sp->path);
    sp->path = NULL;
    sp->error[0] = '\0';
    sp->dir = confined;
    sp->id++;
    sp->active = true;
    sp->stop = stop;
    if (stop) {
        begin_stop(rs);
        sp->target = rs->final_target;
    } else {
        /* The checkpoint in flight, if any, or the next one, started now. */
        sp->target = tm_coordinator_last_completed(rs->coord) + 1;
        tm_coordinator_trigger_now(rs->coord);
    }
    TM_INFO("savepoint", "savepoint requested", "request=%" PRId64 " dir=\"%s\" stop=%s", sp->id,
            sp->dir, stop ? "true" : "false");
    return sp->id;
}

static bool admin_savepoint_status(void *arg, int64_t id, tm_buf_t *out)
{
    run_state_t *rs = arg;
    if (id <= 0 || id != rs->sp.id)
        return false;
    json_t *root = json_pack("{s:I,s:s}", "id", (json_int_t)id, "status",
                             rs->sp.active  ? "in_progress"
                             : rs->sp.path ? "completed"
                                           : "failed");
    if (rs->sp.path)
        json_object_set_new(root, "path", json_string(rs->sp.path));
    if (!rs->sp.active && !rs->sp.path)
        json_object_set_new(root, "error", json_string(rs->sp.error));
    char *text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text != NULL)
        tm_buf_puts(out, text);
    free(text);
    return true;
}

static void admin_stop(void *arg)
{
    begin_stop(arg);
}

/* "X/Y" (hexadecimal halves, PostgreSQL's LSN text) into *lsn; false if malformed. */
static bool parse_lsn(const char *s, uint64_t *lsn)
{
    unsigned hi, lo;
    int n = 0;
    if (s == NULL || sscanf(s, "%x/%x%n", &hi, &lo, &n) != 2 || s[n] != '\0')
        return false;
    *lsn = ((uint64_t)hi << 32) | lo;
    /* 0/0 is before everything: the coordinator takes 1, which means the same. */
    if (*lsn == 0)
        *lsn = 1;
    return true;
}

static int64_t admin_checkpoint_at(void *arg, const char *at_lsn, int64_t hold_ms, char *errstr,
                                   size_t errstr_size)
{
    run_state_t *rs = arg;
    uint64_t lsn = 0;
    if (rs->coord == NULL)
        return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                         "a checkpoint at a position needs checkpoints; add SET "
                         "checkpoint_interval = '10s' to the job");
    if (rs->stopping)
        return tm_seterr(errstr, errstr_size, TM_ESTOPPED, "the job is stopping");
    if (!parse_lsn(at_lsn, &lsn))
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "\"at_lsn\" must be a PostgreSQL LSN such as \"0/16B3748\", not \"%s\"",
                         at_lsn);
    /* Only PostgreSQL sources know where an LSN is in their stream. */
    for (int i = 0; i < rs->job->ntables; i++) {
        const tm_job_table_t *t = &rs->job->tables[i];
        if (t->role == TM_ROLE_SOURCE && strcmp(t->conn->name, "postgres-cdc") != 0)
            return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                             "source '%s' (connector %s) cannot place a barrier at an LSN; only "
                             "jobs whose sources are all postgres-cdc can",
                             t->name, t->conn->name);
    }
    uint64_t id = 0;
    int rc = tm_coordinator_request_at(rs->coord, lsn, hold_ms, &id);
    if (rc == TM_EAGAIN)
        return tm_seterr(errstr, errstr_size, TM_EAGAIN,
                         "a checkpoint at a position is already pending; wait for it, or POST "
                         "/v1/checkpoints/release after it");
    if (rc != 0)
        return tm_seterr(errstr, errstr_size, rc, "cannot request the checkpoint");
    TM_INFO("checkpoint", "checkpoint at a position requested",
            "checkpoint=%" PRIu64 " at_lsn=%s hold_ms=%" PRId64, id, at_lsn, hold_ms);
    return (int64_t)id;
}

static bool admin_checkpoint_at_status(void *arg, int64_t id, tm_buf_t *out)
{
    run_state_t *rs = arg;
    bool missed = false;
    int st = rs->coord != NULL ? tm_coordinator_at_status(rs->coord, (uint64_t)id, &missed) : -1;
    if (st < 0)
        return false;
    static const char *const names[] = {"pending", "completed", "committed"};
    tm_buf_appendf(out, "{\"id\":%" PRId64 ",\"status\":\"%s\",\"missed\":%s}\n", id, names[st],
                   missed ? "true" : "false");
    return true;
}

static int admin_checkpoint_pause(void *arg, int64_t max_ms, char *errstr, size_t errstr_size)
{
    run_state_t *rs = arg;
    if (rs->coord == NULL)
        return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                         "pausing the sources for a checkpoint at a position needs checkpoints");
    if (rs->stopping)
        return tm_seterr(errstr, errstr_size, TM_ESTOPPED, "the job is stopping");
    tm_coordinator_pause_sources(rs->coord, max_ms);
    return 0;
}

static void admin_checkpoint_paused(void *arg, tm_buf_t *out)
{
    run_state_t *rs = arg;
    int paused = 0, sources = 0;
    if (rs->coord != NULL)
        tm_coordinator_paused(rs->coord, &paused, &sources);
    tm_buf_appendf(out, "{\"paused\":%d,\"sources\":%d}\n", paused, sources);
}

static int64_t admin_snapshot_start(void *arg, const char *const *tables, int ntables,
                                    const char *where, const char *source, char *errstr,
                                    size_t errstr_size)
{
    run_state_t *rs = arg;
    if (rs->stopping)
        return tm_seterr(errstr, errstr_size, TM_ESTOPPED, "the job is stopping");
    return tm_pg_incr_request(source, tables, ntables, where, errstr, errstr_size);
}

static void admin_snapshots(void *arg, tm_buf_t *out)
{
    (void)arg;
    tm_pg_incr_status(out);
}

static int admin_snapshot_control(void *arg, const char *op, const char *source, char *errstr,
                                  size_t errstr_size)
{
    (void)arg;
    return tm_pg_incr_control(source, op, errstr, errstr_size);
}

static void admin_checkpoint_release(void *arg)
{
    run_state_t *rs = arg;
    if (rs->coord != NULL)
        tm_coordinator_release(rs->coord);
}

static int cmd_run(const char *path, const run_opts_t *ro)
{
    char err[2048];
    const char *state_dir = ro->state_dir;
    tm_job_t *job = NULL;
    int rc = tm_job_load(path, &job, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "tidemark: %s\n", err);
        return tm_exit_code_for(rc);
    }
    /* Planning errors stop the job before anything is opened or created. */
    tm_plan_t *plan = NULL;
    rc = tm_plan_new(job, &plan, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "tidemark: %s\n", err);
        tm_job_free(job);
        return tm_exit_code_for(rc);
    }
    const char *lvl = tm_opt_str(job->settings, "log_level");
    if (tm_opt_isset(job->settings, "log_level"))
        tm_log_set_level(lvl);
    int64_t chk_interval = ro->checkpoint_interval_ms >= 0
                               ? ro->checkpoint_interval_ms
                               : tm_opt_duration_ms(job->settings, "checkpoint_interval");
    /* Every setting is checked before the first side effect (the state directory). */
    rc = check_job(job, ro->admin_address, chk_interval, state_dir, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "tidemark: %s\n", err);
        tm_plan_free(plan);
        tm_job_free(job);
        return tm_exit_code_for(rc);
    }
    if (tm_mkdir_p(state_dir, 0750) != 0) {
        fprintf(stderr, "tidemark: cannot create state directory %s (%s); pass --state-dir\n",
                state_dir, strerror(errno));
        tm_plan_free(plan);
        tm_job_free(job);
        return TM_EXIT_CONFIG;
    }
    /*
     * One process per state directory: two would share checkpoints, slots and
     * sinks (issue 9).  The lock is held until the process ends.
     */
    char lock_path[4096], holder[300];
    int lock_fd = -1;
    snprintf(lock_path, sizeof(lock_path), "%s/LOCK", state_dir);
    rc = tm_fs_lock(lock_path, &lock_fd, holder, sizeof(holder));
    if (rc != 0) {
        if (rc == TM_EAGAIN)
            fprintf(stderr,
                    "tidemark: state directory %s is in use by %s; stop that process, or give "
                    "this job its own --state-dir\n",
                    state_dir, holder);
        else
            fprintf(stderr, "tidemark: cannot lock state directory %s (%s: %s)\n", state_dir,
                    lock_path, strerror(errno));
        tm_plan_free(plan);
        tm_job_free(job);
        return TM_EXIT_CONFIG;
    }
    char *job_name = job_name_of(path);
    install_start_signals();
    TM_INFO("main", "starting", "version=%s job=%s state_dir=%s", TM_VERSION, path, state_dir);

    /*
     * The admin API binds before any connector opens, so an address that
     * cannot be used (taken, not permitted) fails before a replication slot
     * or a Kafka transaction exists.  Its hooks run only once the control
     * loop dispatches, by which time the pipeline is set; a request that
     * arrives meanwhile waits in the listen backlog.
     */
    run_state_t rs;
    memset(&rs, 0, sizeof(rs));
    rs.base = event_base_new();
    tm_admin_hooks_t hooks = {&rs,         admin_ready,     admin_metrics,         admin_job,
                              admin_checkpoints, admin_savepoint, admin_savepoint_status,
                              admin_stop,  admin_checkpoint_at, admin_checkpoint_at_status,
                              admin_checkpoint_release, admin_checkpoint_pause,
                              admin_checkpoint_paused, admin_snapshot_start,
                              admin_snapshots,  admin_snapshot_control};
    const char *addr = ro->admin_address ? ro->admin_address
                                         : tm_opt_str(job->settings, "admin_address");
    /* An admin API asked for by address or with TLS is part of the job: not starting it fails. */
    bool explicit_addr = ro->admin_address != NULL ||
                         tm_opt_isset(job->settings, "admin_address") ||
                         tm_opt_isset(job->settings, "admin_tls_cert") ||
                         tm_opt_isset(job->settings, "admin_tls_key");
    char addr_file[4200];
    snprintf(addr_file, sizeof(addr_file), "%s/%s", state_dir, TM_ADMIN_ADDR_FILE);
    tm_admin_t *admin = NULL;
    tm_admin_tls_t tls = admin_tls_of(job);
    rc = rs.base == NULL ? tm_seterr(err, sizeof(err), TM_ENOMEM, "out of memory")
                         : tm_admin_start_tls(rs.base, addr,
                                              tm_opt_str(job->settings, "admin_token"), &tls,
                                              &hooks, addr_file, &admin, err, sizeof(err));
    if (rc != 0 && !explicit_addr && rs.base != NULL) {
        TM_WARN("main", "admin API not started; set admin_address to another address",
                "error=\"%s\"", err);
        rc = 0;
    } else if (rc == 0) {
        TM_INFO("main", "admin API listening", "address=%s", tm_admin_address(admin));
    }
    if (rc != 0) {
        TM_ERROR("main", "cannot start the job", "error=\"%s\"", err);
        fprintf(stderr, "tidemark: %s\n", err);
        if (rs.base != NULL)
            event_base_free(rs.base);
        free(job_name);
        tm_plan_free(plan);
        tm_job_free(job);
        return tm_exit_code_for(rc);
    }

    tm_checkpoint_info_t latest, sp_info, *restored = NULL;
    memset(&latest, 0, sizeof(latest));
    memset(&sp_info, 0, sizeof(sp_info));
    tm_pipeline_t *p = tm_pipeline_new();
    tm_jobstate_t js;
    memset(&js, 0, sizeof(js));
    int *node = calloc((size_t)job->ntables, sizeof(int));
    tm_sink_t **sinks = calloc((size_t)job->ntables, sizeof(*sinks));
    int *stage_nodes = calloc((size_t)plan->nstages + 1, sizeof(int));
    int *stage_js = calloc((size_t)plan->nstages + 1, sizeof(int)); /* index in js, or -1 */
    int nstateful = 0, nuids = 0, dl = -1;
    char *restored_from = NULL; /* the savepoint this run's lineage started from */
    char *sp_real = NULL;

    /* 1. Sinks first: a sink that cannot open must fail before a slot is created. */
    for (int i = 0; rc == 0 && i < job->ntables; i++) {
        tm_job_table_t *t = &job->tables[i];
        if (t->role != TM_ROLE_SINK)
            continue;
        const char *policy = tm_opt_str(job->settings, "on_error");
        char dl_dir[4200];
        snprintf(dl_dir, sizeof(dl_dir), "%s/dead-letter", state_dir);
        tm_sink_config_t cfg = {t->name,  t->opts,  t->declared,  state_dir, chk_interval > 0,
                                job_name, chk_interval, tm_plan_sink_upserts(plan, i)};
        cfg.on_error = strcmp(policy, "skip") == 0          ? TM_ON_ERROR_SKIP
                       : strcmp(policy, "dead-letter") == 0 ? TM_ON_ERROR_DEAD_LETTER
                                                            : TM_ON_ERROR_FAIL;
        cfg.dead_letter_dir = cfg.on_error == TM_ON_ERROR_DEAD_LETTER ? dl_dir : NULL;
        rc = t->conn->sink_new(&sinks[i], &cfg, err, sizeof(err));
        if (rc == 0 && t->conn->sink_open)
            rc = t->conn->sink_open(sinks[i], err, sizeof(err));
        if (rc == 0 && chk_interval > 0 && t->conn->sink_is_decision_log != NULL &&
            t->conn->sink_is_decision_log(sinks[i])) {
            if (dl >= 0)
                rc = tm_seterr(err, sizeof(err), TM_ECONFIG,
                               "sinks '%s' and '%s' would both be the job's decision log; a job "
                               "may have at most one exactly-once Kafka sink (DESIGN §6)",
                               job->tables[dl].name, t->name);
            dl = i;
        }
    }

    /* 2. What to restore: the latest checkpoint, a savepoint, or nothing. */
    if (rc == 0 && chk_interval > 0)
        rc = tm_checkpoint_load_latest(state_dir, &latest, err, sizeof(err));
    if (rc == 0 && ro->from_savepoint != NULL) {
        sp_real = realpath(ro->from_savepoint, NULL);
        rc = tm_checkpoint_load_dir(sp_real ? sp_real : ro->from_savepoint, &sp_info, err,
                                    sizeof(err));
        if (rc == TM_ENOTFOUND)
            rc = TM_ECONFIG;
    }
    if (rc == 0 && sp_real != NULL && !(latest.id > 0 && latest.restored_from != NULL &&
                                        strcmp(latest.restored_from, sp_real) == 0)) {
        restored = &sp_info;
        restored_from = sp_real;
        TM_INFO("main", "restoring from savepoint", "savepoint=%s checkpoint=%" PRIu64, sp_real,
                sp_info.id);
    } else if (rc == 0 && latest.id > 0) {
        restored = &latest;
        restored_from = latest.restored_from;
        if (sp_real != NULL)
            TM_INFO("main", "this job was already restored from the savepoint; recovering from "
                            "its newest checkpoint instead",
                    "savepoint=%s checkpoint=%" PRIu64, sp_real, latest.id);
    }
    /* The decision log fences earlier instances and decides a pending checkpoint. */
    if (rc == 0 && dl >= 0) {
        uint64_t decided = 0;
        tm_job_table_t *t = &job->tables[dl];
        rc = t->conn->sink_decided(sinks[dl], &decided, err, sizeof(err));
        if (rc == 0 && restored == &latest && latest.decision_log != NULL &&
            decided < latest.id) {
            TM_WARN("main", "the newest checkpoint was not committed by the decision log; "
                            "recovering from the one it committed",
                    "pending=%" PRIu64 " decided=%" PRIu64 " decision_log=%s", latest.id,
                    decided, t->name);
            tm_checkpoint_info_release(&latest);
            tm_checkpoint_discard_after(state_dir, decided);
            if (decided > 0)
                rc = tm_checkpoint_load(state_dir, decided, &latest, err, sizeof(err));
            restored = latest.id > 0 ? &latest : NULL;
            restored_from = restored ? latest.restored_from : NULL;
        }
    }
    if (restored != NULL && restored->id > 0 && restored == &latest)
        TM_INFO("main", "restoring from checkpoint", "checkpoint=%" PRIu64, latest.id);

    /* 3. Sinks recover: commit the restored epoch if needed, discard newer ones. */
    for (int i = 0; rc == 0 && i < job->ntables; i++) {
        tm_job_table_t *t = &job->tables[i];
        if (t->role != TM_ROLE_SINK || chk_interval <= 0 || t->conn->sink_recover == NULL)
            continue;
        bool from_chk = restored == &latest;
        rc = t->conn->sink_recover(sinks[i], from_chk ? latest.id : 0,
                                   from_chk ? tm_checkpoint_sink_handle(&latest, t->name) : NULL,
                                   err, sizeof(err));
    }

    /* 4. Keyed state: one set of stores per stateful stage of the plan (jobstate.h). */
    int max_parallelism = (int)tm_opt_int(job->settings, "max_parallelism");
    tm_jobstate_stage_t *jstages = calloc((size_t)plan->nstages + 1, sizeof(*jstages));
    if (jstages == NULL || stage_nodes == NULL || stage_js == NULL)
        rc = tm_seterr(err, sizeof(err), TM_ENOMEM, "out of memory");
    for (int s = 0; rc == 0 && s < plan->nstages; s++) {
        const tm_plan_stage_t *st = &plan->stages[s];
        stage_js[s] = -1;
        if (!st->stateful)
            continue;
        stage_js[s] = nstateful;
        jstages[nstateful++] = (tm_jobstate_stage_t){st->name, st->parallelism, st->uids,
                                                     st->nuids};
        nuids += st->nuids;
    }
    if (rc == 0 && (nstateful > 0 || (restored && restored->noperators > 0))) {
        tm_jobstate_opts_t jo = {
            .state_dir = state_dir,
            .max_parallelism = max_parallelism,
            .state_memory = (size_t)tm_opt_size(job->settings, "state_memory"),
            .state_ttl_us = tm_opt_duration_ms(job->settings, "state_ttl") * 1000,
            .stages = jstages,
            .nstages = nstateful,
            .allow_non_restored = ro->allow_non_restored,
        };
        rc = tm_jobstate_open(&js, &jo, restored == &latest ? &latest : NULL,
                              restored == &sp_info ? sp_real : NULL, err, sizeof(err));
    }
    free(jstages);
    tm_pipeline_set_max_parallelism(p, max_parallelism);

    /* 5. The pipeline: sinks, then sources resuming where the restore point left them. */
    for (int i = 0; rc == 0 && i < job->ntables; i++) {
        tm_job_table_t *t = &job->tables[i];
        if (t->role != TM_ROLE_SINK)
            continue;
        node[i] = tm_pipeline_add_sink(p, t->conn, sinks[i], t->name);
        sinks[i] = NULL;
        if (i == dl)
            tm_pipeline_set_decision_log(p, node[i]);
    }
    for (int i = 0; rc == 0 && i < job->ntables; i++) {
        tm_job_table_t *t = &job->tables[i];
        if (t->role != TM_ROLE_SOURCE)
            continue;
        tm_source_t *src = NULL;
        const char *pos = NULL;
        uint64_t token = 0;
        if (restored != NULL) {
            token = tm_checkpoint_source_token(restored, t->name);
            for (int k = 0; k < restored->nsources; k++)
                if (strcmp(restored->sources[k].name, t->name) == 0 &&
                    restored->sources[k].position[0] != '\0')
                    pos = restored->sources[k].position;
        }
        tm_source_config_t cfg = {t->name, t->opts, t->declared, state_dir, token, pos, job_name};
        rc = t->conn->source_new(&src, &cfg, err, sizeof(err));
        if (rc == 0 && t->conn->source_open)
            rc = t->conn->source_open(src, err, sizeof(err));
        if (rc != 0) {
            if (src)
                t->conn->source_free(src);
            break;
        }
        node[i] = tm_pipeline_add_source(p, t->conn, src, t->name);
        /* watermark = 'col - INTERVAL …': the runtime generates the source's watermarks. */
        if (node[i] >= 0 && t->wm_column != NULL &&
            (rc = tm_pipeline_set_source_event_time(p, node[i], t->wm_column, t->wm_delay_us,
                                                    tm_opt_isset(t->opts, "idle_timeout")
                                                        ? tm_opt_duration_ms(t->opts,
                                                                             "idle_timeout")
                                                        : 0)) != 0)
            tm_seterr(err, sizeof(err), rc, "table '%s': cannot set up its watermarks", t->name);
    }
    /* 6. The plan's stages and edges (plan/build.c), and their stores. */
    if (rc == 0)
        rc = tm_plan_build(plan, p, node, stage_nodes, err, sizeof(err));
    for (int s = 0; rc == 0 && s < plan->nstages; s++) {
        if (stage_js[s] < 0)
            continue;
        rc = tm_pipeline_set_stage_stores(p, stage_nodes[s], js.stages[stage_js[s]].stores,
                                          js.stages[stage_js[s]].n);
        if (rc != 0)
            tm_seterr(err, sizeof(err), rc, "stage %s: its stores do not fit",
                      plan->stages[s].name);
    }
    if (rc == 0) {
        const char *policy = tm_opt_str(job->settings, "on_error");
        tm_pipeline_set_error_policy(p, strcmp(policy, "skip") == 0 ? TM_ON_ERROR_SKIP
                                        : strcmp(policy, "dead-letter") == 0
                                            ? TM_ON_ERROR_DEAD_LETTER
                                            : TM_ON_ERROR_FAIL);
        if (strcmp(policy, "dead-letter") == 0) {
            /* One file per operator instance under the state directory (docs/operations.md). */
            char dl_dir[4200];
            snprintf(dl_dir, sizeof(dl_dir), "%s/dead-letter", state_dir);
            rc = tm_pipeline_set_dead_letter_dir(p, dl_dir, job_name);
            if (rc != 0)
                tm_seterr(err, sizeof(err), rc, "out of memory");
        }
    }
    for (int i = 0; i < job->ntables; i++)
        if (sinks[i] != NULL)
            job->tables[i].conn->sink_free(sinks[i]);
    free(sinks);
    free(node);

    if (rc == 0) {
        tm_pipeline_set_flush_interval(p, (int)tm_opt_duration_ms(job->settings,
                                                                  "sink_flush_interval"));
        if (chk_interval > 0) {
            char chk_root[4200];
            snprintf(chk_root, sizeof(chk_root), "%s/checkpoints", state_dir);
            tm_pipeline_set_ack_policy(p, TM_ACK_CHECKPOINT);
            tm_pipeline_set_state_checkpoint_dir(p, chk_root);
            /* New checkpoint ids continue after anything the state directory holds. */
            uint64_t last = restored ? restored->id : 0;
            tm_checkpoint_info_t newest;
            if (tm_checkpoint_load_latest(state_dir, &newest, err, sizeof(err)) == 0) {
                if (newest.id > last)
                    last = newest.id;
                tm_checkpoint_info_release(&newest);
            }
            rs.coord = tm_coordinator_new(
                p, state_dir, job_name, chk_interval,
                tm_opt_duration_ms(job->settings, "checkpoint_timeout"),
                (int)tm_opt_int(job->settings, "checkpoints_retained"), last);
            tm_coordinator_set_lineage(rs.coord, restored_from);
            if (dl >= 0)
                tm_coordinator_set_decision_log(rs.coord, job->tables[dl].name);
        }
    }
    uint64_t restored_id = restored ? restored->id : 0;
    tm_checkpoint_info_release(&latest);
    tm_checkpoint_info_release(&sp_info);
    free(sp_real);
    if ((rc == 0 || rc == TM_ESTOPPED) && tm_shutdown_requested()) {
        /* Nothing was read yet, so stopping now loses nothing. */
        if (rc != 0)
            TM_INFO("main", "stopping gracefully",
                    "detail=\"a stop was requested while the job started; it did not run\" "
                    "reason=\"%s\"",
                    err);
        else
            TM_INFO("main", "stopping gracefully",
                    "detail=\"a stop was requested while the job started; it did not run\"");
        rc = TM_ESTOPPED;
    }
    if (rc != 0) {
        if (rc != TM_ESTOPPED) {
            TM_ERROR("main", "cannot start the job", "error=\"%s\"", err);
            fprintf(stderr, "tidemark: %s\n", err);
        }
        tm_admin_free(admin);
        event_base_free(rs.base);
        tm_coordinator_free(rs.coord);
        tm_pipeline_free(p);
        tm_jobstate_close(&js);
        free(stage_nodes);
        free(stage_js);
        free(job_name);
        tm_plan_free(plan);
        tm_job_free(job);
        return tm_exit_code_for(rc);
    }

    rs.pipeline = p;
    rs.job = job;
    rs.job_name = job_name;
    rs.state_dir = state_dir;
    rs.chk_interval = chk_interval;
    rs.started_wall_ms = tm_wall_us() / 1000;
    struct event *ev_term = evsignal_new(rs.base, SIGTERM, on_signal, &rs);
    struct event *ev_int = evsignal_new(rs.base, SIGINT, on_signal, &rs);
    struct event *ev_hup = hup_ignored ? NULL : evsignal_new(rs.base, SIGHUP, on_signal, &rs);
    struct event *tick = event_new(rs.base, -1, 0, on_tick, &rs);
    struct timeval tv = {0, TICK_IDLE_MS * 1000};
    rs.tick = tick;
    evsignal_add(ev_term, NULL);
    evsignal_add(ev_int, NULL);
    if (ev_hup != NULL)
        evsignal_add(ev_hup, NULL);
    event_add(tick, &tv);

    if (rc == 0) {
        /* Worker threads inherit this mask, so signals reach the main thread only. */
        sigset_t set, old;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        pthread_sigmask(SIG_BLOCK, &set, &old);
        rc = tm_pipeline_start(p, err, sizeof(err));
        pthread_sigmask(SIG_SETMASK, &old, NULL);
    }
    if (rc == 0) {
        TM_INFO("main", "running",
                "pipelines=%d workers=%d stateful_operators=%d restored_checkpoint=%" PRIu64
                " keyed_state=\"%s\"",
                job->ninserts, plan->parallelism, nuids, restored_id,
                js.nstages > 0 ? js.restored : "none");
        if (tm_shutdown_requested()) /* a signal between the start-up checks and evsignal_add */
            begin_stop(&rs);
        event_base_dispatch(rs.base);
    } else {
        tm_pipeline_request_stop(p);
    }
    int jrc = tm_pipeline_join(p, rc == 0 ? err : (char[1]){0}, rc == 0 ? sizeof(err) : 0);
    if (rc == 0)
        rc = jrc;
    if (rc == 0 && rs.rc != 0) {
        rc = rs.rc;
        snprintf(err, sizeof(err), "%s", rs.err);
    }
    tm_admin_free(admin);
    tm_coordinator_free(rs.coord);
    event_free(ev_term);
    event_free(ev_int);
    if (ev_hup != NULL)
        event_free(ev_hup);
    event_free(tick);
    event_base_free(rs.base);
    tm_pipeline_free(p);
    tm_jobstate_close(&js);
    free(stage_nodes);
    free(stage_js);
    /* After the join: the pipeline borrowed the plan's operator specs. */
    tm_plan_free(plan);
    free(rs.sp.dir);
    free(rs.sp.path);
    free(job_name);
    tm_job_free(job);
    if (rc != 0) {
        TM_ERROR("main", "job failed", "error=\"%s\"", err);
        fprintf(stderr, "tidemark: %s\n", err);
        return tm_exit_code_for(rc);
    }
    TM_INFO("main", "stopped", "%s", "");
    return TM_EXIT_OK;
}

int tm_cli_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},
        {"state-dir", required_argument, NULL, 's'},
        {"log-level", required_argument, NULL, 'l'},
        {"log-format", required_argument, NULL, 'f'},
        {"from-savepoint", required_argument, NULL, 'S'},
        {"allow-non-restored-state", no_argument, NULL, 'A'},
        {"admin-address", required_argument, NULL, 'a'},
        {"checkpoint-interval", required_argument, NULL, 'c'},
        {"savepoint-dir", required_argument, NULL, 'P'},
        {NULL, 0, NULL, 0},
    };
    run_opts_t ro = {.state_dir = "./tidemark-state", .checkpoint_interval_ms = -1};
    int c;
    signal(SIGPIPE, SIG_IGN);
    /*
     * savepoint and stop talk to a running daemon and parse their own flags;
     * global flags before the command are applied here (logging) or passed
     * on (--state-dir).
     */
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--state-dir") == 0 || strcmp(argv[i], "--log-level") == 0 ||
            strcmp(argv[i], "--log-format") == 0) {
            i++; /* its value */
            continue;
        }
        if (argv[i][0] == '-')
            continue;
        if (strcmp(argv[i], "savepoint") == 0 || strcmp(argv[i], "stop") == 0 ||
            strcmp(argv[i], "status") == 0 || strcmp(argv[i], "verify") == 0 ||
            strcmp(argv[i], "snapshot") == 0) {
            char **args = calloc((size_t)argc + 1, sizeof(*args));
            int n = 0;
            args[n++] = argv[i];
            for (int k = 1; k < argc; k++) {
                if (k == i)
                    continue;
                if (k < i && (strcmp(argv[k], "--log-level") == 0 ||
                              strcmp(argv[k], "--log-format") == 0) && k + 1 < i) {
                    if (argv[k][6] == 'l')
                        tm_log_set_level(argv[k + 1]);
                    else
                        tm_log_json = strcmp(argv[k + 1], "json") == 0;
                    k++;
                    continue;
                }
                args[n++] = argv[k];
            }
            optind = 1;
            int rc = argv[i][0] == 'v'   ? tm_verify_main(n, args)
                     : argv[i][1] == 'n' ? tm_admin_cli_snapshot(n, args)
                     : argv[i][1] == 'a' ? tm_admin_cli_savepoint(n, args)
                     : argv[i][3] == 'p' ? tm_admin_cli_stop(n, args)
                                         : tm_admin_cli_status(n, args);
            free(args);
            return rc;
        }
        break;
    }
    while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return TM_EXIT_OK;
        case 'V':
            printf("tidemark %s\n", TM_VERSION);
            return TM_EXIT_OK;
        case 's':
            ro.state_dir = optarg;
            break;
        case 'S':
            ro.from_savepoint = optarg;
            break;
        case 'P':
            ro.savepoint_dir = optarg;
            break;
        case 'A':
            ro.allow_non_restored = true;
            break;
        case 'a':
            ro.admin_address = optarg;
            break;
        case 'c':
            if (tm_parse_duration_ms(optarg, &ro.checkpoint_interval_ms) != 0 ||
                ro.checkpoint_interval_ms < 0) {
                fprintf(stderr, "tidemark: --checkpoint-interval '%s' is not a duration such as "
                                "'10s', '500ms' or '0' (off)\n",
                        optarg);
                return TM_EXIT_CONFIG;
            }
            break;
        case 'l':
            if (tm_log_set_level(optarg) != 0) {
                fprintf(stderr, "tidemark: --log-level '%s' is not one of error, warn, info, "
                                "debug\n",
                        optarg);
                return TM_EXIT_CONFIG;
            }
            break;
        case 'f':
            if (strcmp(optarg, "json") == 0) {
                tm_log_json = 1;
            } else if (strcmp(optarg, "logfmt") != 0) {
                fprintf(stderr, "tidemark: --log-format '%s' is not logfmt or json\n", optarg);
                return TM_EXIT_CONFIG;
            }
            break;
        default:
            fprintf(stderr, "tidemark: see 'tidemark --help'\n");
            return TM_EXIT_CONFIG;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return TM_EXIT_CONFIG;
    }
    const char *cmd = argv[optind];
    if (strcmp(cmd, "run") == 0 || strcmp(cmd, "explain") == 0) {
        if (optind + 1 >= argc) {
            fprintf(stderr, "tidemark: '%s' needs a job file: tidemark %s JOB.sql\n", cmd, cmd);
            return TM_EXIT_CONFIG;
        }
        if (optind + 2 < argc) {
            fprintf(stderr, "tidemark: unexpected argument '%s'; see 'tidemark --help'\n",
                    argv[optind + 2]);
            return TM_EXIT_CONFIG;
        }
        return cmd[0] == 'r' ? cmd_run(argv[optind + 1], &ro)
                             : cmd_explain(argv[optind + 1]);
    }
    if (strcmp(cmd, "checkpoints") == 0) {
        if (optind + 1 < argc) {
            fprintf(stderr, "tidemark: unexpected argument '%s'; write tidemark checkpoints "
                            "[--state-dir DIR] [--savepoint-dir DIR]\n",
                    argv[optind + 1]);
            return TM_EXIT_CONFIG;
        }
        return cmd_checkpoints(&ro);
    }
    if (strcmp(cmd, "inspect") == 0) {
        if (optind + 1 >= argc) {
            fprintf(stderr, "tidemark: 'inspect' needs a directory: tidemark inspect STATE-DIR\n");
            return TM_EXIT_CONFIG;
        }
        return cmd_inspect(argv[optind + 1]);
    }
    if (strcmp(cmd, "help") == 0) {
        usage(stdout);
        return TM_EXIT_OK;
    }
    if (strcmp(cmd, "version") == 0) {
        printf("tidemark %s\n", TM_VERSION);
        return TM_EXIT_OK;
    }
    fprintf(stderr, "tidemark: unknown command '%s'; see 'tidemark --help'\n", cmd);
    return TM_EXIT_CONFIG;
}
