/*
 * cli.c — command dispatch and the job life cycle (see cli.h).
 *
 * `run` builds every connector from the job (sinks first, so a sink that
 * cannot open fails before a source creates a replication slot), starts the
 * data plane, and runs the control loop (libevent) until the job ends or a
 * signal stops it:
 *
 *     SIGTERM / first SIGINT → graceful stop: sources stop reading, sinks
 *                              drain and flush, sources acknowledge, exit 0
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
#include "runtime/checkpoint.h"
#include "runtime/pipeline.h"
#include "sql/job.h"

#include <errno.h>
#include <event2/event.h>
#include <getopt.h>
#include <jansson.h>
#include <inttypes.h>
#include <time.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct run_state {
    tm_pipeline_t *pipeline;
    tm_coordinator_t *coord; /* NULL without checkpoints */
    struct event_base *base;
    int sigints;
    bool stopping;           /* a graceful stop waits for the final checkpoint */
    uint64_t final_target;
    int64_t stop_deadline_ms;
    int rc;
    char err[1024];
} run_state_t;

/*
 * A graceful stop with checkpoints takes a final checkpoint first, so that
 * everything read so far is committed and acknowledged (DESIGN §9).
 */
static void begin_stop(run_state_t *rs)
{
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
            "  tidemark run JOB.sql [--state-dir DIR]   run a job until stopped\n"
            "  tidemark explain JOB.sql                 print the plan, delivery guarantees and\n"
            "                                           options in effect (secrets masked)\n"
            "  tidemark inspect DIR                     print what the newest checkpoint in a state\n"
            "                                           directory (or a chk-N directory) holds\n"
            "  tidemark --version                       print the version\n"
            "  tidemark --help                          print this help\n"
            "\n"
            "Options:\n"
            "  --state-dir DIR     the job's state directory (default ./tidemark-state)\n"
            "  --log-level LEVEL   error, warn, info (default) or debug\n"
            "  --log-format FMT    logfmt (default) or json\n"
            "\n"
            "Signals: SIGTERM stops gracefully; SIGINT twice stops at once.\n"
            "Exit codes: 0 stopped cleanly, 1 internal failure, 2 configuration or SQL error,\n"
            "            3 source error that cannot be retried, 4 checkpoint failure.\n"
            "Documentation: docs/ in the source tree; start with README.md.\n",
            TM_VERSION);
}

/* ---- explain ---- */

static void explain_line(void *arg, const char *text)
{
    (void)arg;
    printf("      %s\n", text);
}

static void explain_options(const tm_options_t *opts, const tm_option_def_t *defs)
{
    for (const tm_option_def_t *d = defs; d && d->name; d++) {
        const tm_option_kv_t *kv = NULL;
        for (int i = 0; i < opts->n; i++)
            if (strcmp(opts->kv[i].key, d->name) == 0)
                kv = &opts->kv[i];
        if (kv != NULL) {
            char *shown = tm_option_display(kv);
            printf("      %-22s = %s\n", d->name, shown ? shown : "");
            free(shown);
        } else if (d->def != NULL) {
            printf("      %-22s = %s (default)\n", d->name,
                   d->type == TM_OPT_SECRET ? "****" : d->def);
        }
    }
    /* Passthrough options (e.g. kafka.*) are not in the table. */
    for (int i = 0; i < opts->n; i++) {
        if (opts->kv[i].def == NULL) {
            char *shown = tm_option_display(&opts->kv[i]);
            printf("      %-22s = %s\n", opts->kv[i].key, shown ? shown : "");
            free(shown);
        }
    }
}

static int cmd_explain(const char *path)
{
    char err[2048];
    tm_job_t *job = NULL;
    int rc = tm_job_load(path, &job, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "tidemark: %s\n", err);
        return tm_exit_code_for(rc);
    }
    printf("job %s\n", job->path);
    printf("\nplan:\n");
    for (int i = 0; i < job->ninserts; i++) {
        tm_job_table_t *src = &job->tables[job->inserts[i].source];
        tm_job_table_t *snk = &job->tables[job->inserts[i].sink];
        printf("  pipeline %d (line %d): %s ──► %s\n", i + 1, job->inserts[i].line, src->name,
               snk->name);
        printf("    source %s [%s]: changelog +I/-U/+U/-D (Debezium ops r,c,u,d,t,m)\n",
               src->name, src->conn->name);
        printf("    project: SELECT * (every column, passthrough)\n");
        printf("    sink %s [%s]\n", snk->name, snk->conn->name);
    }
    printf("\nsources:\n");
    for (int i = 0; i < job->ntables; i++) {
        tm_job_table_t *t = &job->tables[i];
        if (t->role != TM_ROLE_SOURCE)
            continue;
        printf("  %s (connector %s)\n", t->name, t->conn->name);
        if (t->declared != NULL) {
            printf("    declared columns:");
            for (int c = 0; c < t->declared->ncols; c++)
                printf("%s %s %s%s", c ? "," : "", t->declared->cols[c].name,
                       tm_type_name(t->declared->cols[c].type),
                       t->declared->cols[c].key_index >= 0 ? " (key)" : "");
            printf("\n");
        }
        printf("    options:\n");
        explain_options(t->opts, t->conn->source_options);
        if (t->conn->source_new != NULL && t->conn->source_describe != NULL) {
            tm_source_t *src = NULL;
            tm_source_config_t cfg = {t->name, t->opts, t->declared, "."};
            if (t->conn->source_new(&src, &cfg, err, sizeof(err)) == 0) {
                printf("    details:\n");
                t->conn->source_describe(src, explain_line, NULL);
                t->conn->source_free(src);
            } else {
                fprintf(stderr, "tidemark: %s\n", err);
                tm_job_free(job);
                return TM_EXIT_CONFIG;
            }
        }
    }
    printf("\nsinks:\n");
    for (int i = 0; i < job->ntables; i++) {
        tm_job_table_t *t = &job->tables[i];
        if (t->role != TM_ROLE_SINK)
            continue;
        printf("  %s (connector %s)\n", t->name, t->conn->name);
        bool exactly = tm_opt_duration_ms(job->settings, "checkpoint_interval") > 0 &&
                       t->conn->sink_precommit != NULL;
        printf("    delivery: %s\n", exactly ? "exactly-once (two-phase commit per checkpoint)"
                                              : "at-least-once");
        printf("    options:\n");
        explain_options(t->opts, t->conn->sink_options);
    }
    printf("\nsettings:\n");
    explain_options(job->settings, tm_job_settings);
    int64_t chk = tm_opt_duration_ms(job->settings, "checkpoint_interval");
    if (chk > 0)
        printf("\ncheckpoints: every %" PRId64 " ms into <state-dir>/checkpoints; sinks with "
               "two-phase commit are exactly-once, sources acknowledge completed checkpoints only\n",
               chk);
    else
        printf("\ncheckpoints: off (SET checkpoint_interval = '10s' turns them on); sinks are "
               "at-least-once, sources acknowledge what sinks flushed\n");
    printf("\nnot built yet: savepoints, operator state, projections/filters/joins/aggregation, "
           "the MySQL and Kafka connectors, the admin API.\n");
    tm_job_free(job);
    return TM_EXIT_OK;
}

/* ---- inspect ---- */

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
    printf("  operator state: none (no stateful operators in this version)\n");
    json_decref(m);
    return TM_EXIT_OK;
}

/* ---- run ---- */

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
        TM_INFO("main", "SIGTERM: stopping gracefully", "%s", "");
    }
    begin_stop(rs);
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    run_state_t *rs = arg;
    (void)fd;
    (void)what;
    if (rs->coord != NULL && rs->rc == 0 && tm_pipeline_error(rs->pipeline) == 0) {
        rs->rc = tm_coordinator_tick(rs->coord, rs->err, sizeof(rs->err));
        if (rs->rc != 0)
            tm_pipeline_request_stop(rs->pipeline);
        if (rs->stopping && ((tm_coordinator_idle(rs->coord) &&
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
    if (tm_pipeline_done(rs->pipeline))
        event_base_loopbreak(rs->base);
}

static int cmd_run(const char *path, const char *state_dir)
{
    char err[2048];
    tm_job_t *job = NULL;
    int rc = tm_job_load(path, &job, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "tidemark: %s\n", err);
        return tm_exit_code_for(rc);
    }
    const char *lvl = tm_opt_str(job->settings, "log_level");
    if (tm_opt_isset(job->settings, "log_level"))
        tm_log_set_level(lvl);
    if (tm_mkdir_p(state_dir, 0750) != 0) {
        fprintf(stderr, "tidemark: cannot create state directory %s (%s); pass --state-dir\n",
                state_dir, strerror(errno));
        tm_job_free(job);
        return TM_EXIT_CONFIG;
    }
    TM_INFO("main", "starting", "version=%s job=%s state_dir=%s", TM_VERSION, path, state_dir);

    int64_t chk_interval = tm_opt_duration_ms(job->settings, "checkpoint_interval");
    tm_checkpoint_info_t restored;
    memset(&restored, 0, sizeof(restored));
    if (chk_interval > 0) {
        rc = tm_checkpoint_load_latest(state_dir, &restored, err, sizeof(err));
        if (rc != 0) {
            fprintf(stderr, "tidemark: %s\n", err);
            tm_job_free(job);
            return tm_exit_code_for(rc);
        }
        if (restored.id > 0)
            TM_INFO("main", "restoring from checkpoint", "checkpoint=%" PRIu64, restored.id);
    }
    tm_pipeline_t *p = tm_pipeline_new();
    tm_pipeline_set_flush_interval(p, (int)tm_opt_duration_ms(job->settings,
                                                              "sink_flush_interval"));
    if (chk_interval > 0)
        tm_pipeline_set_ack_policy(p, TM_ACK_CHECKPOINT);
    int *node = calloc((size_t)job->ntables, sizeof(int));
    rc = 0;
    /* Sinks first: a sink that cannot open must fail before a slot is created. */
    for (int i = 0; rc == 0 && i < job->ntables; i++) {
        tm_job_table_t *t = &job->tables[i];
        if (t->role != TM_ROLE_SINK)
            continue;
        tm_sink_t *sink = NULL;
        tm_sink_config_t cfg = {t->name, t->opts, t->declared, state_dir, chk_interval > 0};
        rc = t->conn->sink_new(&sink, &cfg, err, sizeof(err));
        if (rc == 0 && t->conn->sink_open)
            rc = t->conn->sink_open(sink, err, sizeof(err));
        /* Recovery: commit the last completed epoch if needed, discard newer ones. */
        if (rc == 0 && chk_interval > 0 && t->conn->sink_recover)
            rc = t->conn->sink_recover(sink, restored.id,
                                       tm_checkpoint_sink_handle(&restored, t->name), err,
                                       sizeof(err));
        if (rc != 0) {
            if (sink)
                t->conn->sink_free(sink);
            break;
        }
        node[i] = tm_pipeline_add_sink(p, t->conn, sink, t->name);
    }
    for (int i = 0; rc == 0 && i < job->ntables; i++) {
        tm_job_table_t *t = &job->tables[i];
        if (t->role != TM_ROLE_SOURCE)
            continue;
        tm_source_t *src = NULL;
        tm_source_config_t cfg = {t->name, t->opts, t->declared, state_dir,
                                  tm_checkpoint_source_token(&restored, t->name)};
        rc = t->conn->source_new(&src, &cfg, err, sizeof(err));
        if (rc == 0 && t->conn->source_open)
            rc = t->conn->source_open(src, err, sizeof(err));
        if (rc != 0) {
            if (src)
                t->conn->source_free(src);
            break;
        }
        node[i] = tm_pipeline_add_source(p, t->conn, src, t->name);
    }
    for (int i = 0; rc == 0 && i < job->ninserts; i++)
        tm_pipeline_connect(p, node[job->inserts[i].source], node[job->inserts[i].sink]);
    free(node);
    if (rc != 0) {
        TM_ERROR("main", "cannot start the job", "error=\"%s\"", err);
        fprintf(stderr, "tidemark: %s\n", err);
        tm_pipeline_free(p);
        tm_job_free(job);
        return tm_exit_code_for(rc);
    }

    run_state_t rs;
    memset(&rs, 0, sizeof(rs));
    rs.pipeline = p;
    rs.base = event_base_new();
    if (chk_interval > 0)
        rs.coord = tm_coordinator_new(
            p, state_dir, path, chk_interval, tm_opt_duration_ms(job->settings, "checkpoint_timeout"),
            (int)tm_opt_int(job->settings, "checkpoints_retained"), restored.id);
    tm_checkpoint_info_release(&restored);
    struct event *ev_term = evsignal_new(rs.base, SIGTERM, on_signal, &rs);
    struct event *ev_int = evsignal_new(rs.base, SIGINT, on_signal, &rs);
    struct event *tick = event_new(rs.base, -1, EV_PERSIST, on_tick, &rs);
    struct timeval tv = {0, 100000};
    evsignal_add(ev_term, NULL);
    evsignal_add(ev_int, NULL);
    event_add(tick, &tv);

    /* Worker threads inherit this mask, so signals reach the main thread only. */
    sigset_t set, old;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, &old);
    rc = tm_pipeline_start(p, err, sizeof(err));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc == 0) {
        TM_INFO("main", "running", "pipelines=%d", job->ninserts);
        event_base_dispatch(rs.base);
    }
    int jrc = tm_pipeline_join(p, err, sizeof(err));
    if (rc == 0)
        rc = jrc;
    if (rc == 0 && rs.rc != 0) {
        rc = rs.rc;
        snprintf(err, sizeof(err), "%s", rs.err);
    }
    tm_coordinator_free(rs.coord);
    event_free(ev_term);
    event_free(ev_int);
    event_free(tick);
    event_base_free(rs.base);
    tm_pipeline_free(p);
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
        {NULL, 0, NULL, 0},
    };
    const char *state_dir = "./tidemark-state";
    int c;
    signal(SIGPIPE, SIG_IGN);
    while ((c = getopt_long(argc, argv, "hV", longopts, NULL)) != -1) {
        switch (c) {
        case 'h':
            usage(stdout);
            return TM_EXIT_OK;
        case 'V':
            printf("tidemark %s\n", TM_VERSION);
            return TM_EXIT_OK;
        case 's':
            state_dir = optarg;
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
        return cmd[0] == 'r' ? cmd_run(argv[optind + 1], state_dir)
                             : cmd_explain(argv[optind + 1]);
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
