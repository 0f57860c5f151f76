/*
 * explain.c — `tidemark explain`: the plan object in words (see plan.h).
 *
 * For each pipeline, its nodes from source to sink, each with its changelog
 * mode, unique key, the exchange into it, parallelism, state and uid, plus
 * its expressions (tm_expr_format); then the stages the runtime will run,
 * the sources and sinks with their options and delivery guarantee, the
 * settings and the checkpoint policy.  Sources and sinks are created (no
 * I/O) and freed so that explain refuses exactly what run would refuse.
 *
 * Thread: the main thread.
 */
#include "plan/plan.h"
#include "core/error.h"
#include "runtime/deadletter.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void explain_options(FILE *f, const tm_options_t *opts, const tm_option_def_t *defs)
{
    for (const tm_option_def_t *d = defs; d && d->name; d++) {
        const tm_option_kv_t *kv = NULL;
        for (int i = 0; i < opts->n; i++)
            if (strcmp(opts->kv[i].key, d->name) == 0)
                kv = &opts->kv[i];
        if (kv != NULL) {
            char *shown = tm_option_display(kv);
            fprintf(f, "      %-22s = %s\n", d->name, shown ? shown : "");
            free(shown);
        } else if (d->def != NULL) {
            fprintf(f, "      %-22s = %s (default)\n", d->name,
                    d->type == TM_OPT_SECRET ? "****" : d->def);
        }
    }
    /* Passthrough options (e.g. kafka.*) are not in the table. */
    for (int i = 0; i < opts->n; i++) {
        if (opts->kv[i].def == NULL) {
            char *shown = tm_option_display(&opts->kv[i]);
            fprintf(f, "      %-22s = %s\n", opts->kv[i].key, shown ? shown : "");
            free(shown);
        }
    }
}

static FILE *describe_out;

static void describe_line(void *arg, const char *text)
{
    (void)arg;
    fprintf(describe_out, "      %s\n", text);
}

static void print_cols(FILE *f, const tm_schema_t *s, const int *cols, int n)
{
    for (int k = 0; k < n; k++)
        fprintf(f, "%s%s", k ? ", " : "", s && cols ? s->cols[cols[k]].name : "?");
}

static void print_key(FILE *f, const tm_plan_node_t *n)
{
    if (n->nkey > 0 && n->key == NULL)
        fprintf(f, "the source's primary key");
    else if (n->nkey == 0 && n->kind != TM_PLAN_SCAN)
        fprintf(f, n->mode == TM_MODE_UPSERT ? "() (a single row)" : "none");
    else if (n->nkey == 0)
        fprintf(f, "none");
    else {
        fprintf(f, "(");
        print_cols(f, n->schema, n->key, n->nkey);
        fprintf(f, ")");
    }
}

static void print_mode(FILE *f, const tm_plan_node_t *n)
{
    switch (n->mode) {
    case TM_MODE_INSERT_ONLY:
        fprintf(f, "insert-only (+I)");
        break;
    case TM_MODE_RETRACT:
        fprintf(f, "retract (+I -U +U -D)");
        if (n->kind == TM_PLAN_SCAN)
            fprintf(f, ", taken to carry full before images (the table has no declared PRIMARY "
                       "KEY: set REPLICA IDENTITY FULL, or declare the key to get an upsert "
                       "stage)");
        else if (n->before_images)
            fprintf(f, ", updates and deletes carry the row they retract");
        break;
    case TM_MODE_UPSERT:
        fprintf(f, "upsert (+I +U -D) on ");
        print_key(f, n);
        fprintf(f, n->before_images ? ", with before images"
                                    : ", an update's before image may carry only the key");
        break;
    }
}

static void print_exchange(FILE *f, const tm_plan_node_t *n)
{
    switch (n->exchange) {
    case TM_EXCHANGE_FORWARD:
        fprintf(f, "forward");
        break;
    case TM_EXCHANGE_HASH:
        fprintf(f, "hash(");
        if (n->exchange_cols == NULL)
            fprintf(f, "the records' primary key");
        else
            print_cols(f, n->input ? n->input->schema : NULL, n->exchange_cols, n->nexchange);
        fprintf(f, ")");
        break;
    case TM_EXCHANGE_BROADCAST:
        fprintf(f, "broadcast");
        break;
    case TM_EXCHANGE_SINGLE:
        fprintf(f, "single");
        break;
    default:
        fprintf(f, "-");
    }
}

static void print_expr(FILE *f, const tm_expr_t *e, const tm_schema_t *in)
{
    const char *names[512];
    int n = in ? (in->ncols < 512 ? in->ncols : 512) : 0;
    for (int i = 0; i < n; i++)
        names[i] = in->cols[i].name;
    char buf[4096];
    tm_expr_format(e, in ? names : NULL, buf, sizeof(buf));
    fprintf(f, "%s", buf);
    if (tm_expr_uses_now(e))
        fprintf(f, "   -- now() is processing time");
}


/* A Top-N's ranking, and what it emits. */
static void explain_topn(FILE *f, const tm_plan_node_t *n)
{
    const tm_topn_spec_t *ts = &n->topn;
    fprintf(f, "          rank   %s := row_number() OVER (",
            ts->rn_col >= 0 ? n->schema->cols[ts->rn_col].name : "rn");
    if (ts->npart > 0) {
        fprintf(f, "PARTITION BY ");
        print_cols(f, ts->in_schema, ts->part_cols, ts->npart);
        fprintf(f, " ");
    }
    fprintf(f, "ORDER BY ");
    for (int i = 0; i < ts->norder; i++)
        fprintf(f, "%s%s %s NULLS %s", i ? ", " : "", ts->in_schema->cols[ts->order_cols[i]].name,
                ts->order_desc[i] ? "DESC" : "ASC", ts->nulls_first[i] ? "FIRST" : "LAST");
    fprintf(f, ") <= %lld\n", (long long)ts->limit);
    if (n->windowed)
        fprintf(f, "          emits  insert-only: each window's top %lld once, when the "
                   "watermark passes its window_end (%s); rows of a window already emitted "
                   "are late (counted, dropped)\n",
                (long long)ts->limit, ts->in_schema->cols[n->wrank.end_col].name);
    else if (ts->rank_number)
        fprintf(f, "          emits  by rank: a change of rank updates the rows at every rank it "
                   "shifts\n");
    else
        fprintf(f, "          emits  rows entering and leaving the top %lld only (the rank is "
                   "not selected, so rank changes emit nothing)\n",
                (long long)ts->limit);
}

/* The scans (source tables) under a node, for "state grows without bound" and the header. */
static void side_sources(const tm_plan_t *plan, const tm_plan_node_t *n, char *buf, size_t len)
{
    size_t used = strlen(buf);
    if (n == NULL || used + 1 >= len)
        return;
    if (n->kind == TM_PLAN_SCAN) {
        const char *name = plan->job->tables[n->table].name;
        if (strstr(buf, name) == NULL)
            snprintf(buf + used, len - used, "%s%s", used ? ", " : "", name);
        return;
    }
    side_sources(plan, n->input, buf, len);
    if (n->kind == TM_PLAN_JOIN || n->kind == TM_PLAN_INTERVAL_JOIN)
        side_sources(plan, n->input2, buf, len);
}

/* A join's keys, residual, state views and their growth. */
static void explain_join(const tm_plan_t *plan, FILE *f, const tm_plan_node_t *n)
{
    const tm_join_spec_t *js = &n->join;
    const tm_schema_t *ls = js->left_schema, *rs = js->right_schema;
    fprintf(f, "          on     ");
    for (int k = 0; k < js->nkeys; k++)
        fprintf(f, "%sleft.%s = right.%s", k ? " AND " : "", ls->cols[js->left_keys[k]].name,
                rs->cols[js->right_keys[k]].name);
    if (js->nkeys == 0)
        fprintf(f, "(no key: every row meets every row)");
    fprintf(f, "   (NULL keys never match)\n");
    if (js->residual != NULL) {
        /* The residual reads left ++ right: name the columns by side. */
        int nl = ls->ncols, nr = rs->ncols;
        const char **names = calloc((size_t)(nl + nr) + 1, sizeof(*names));
        char **owned = calloc((size_t)(nl + nr) + 1, sizeof(*owned));
        for (int i = 0; names && owned && i < nl + nr; i++) {
            const char *c = i < nl ? ls->cols[i].name : rs->cols[i - nl].name;
            if (asprintf(&owned[i], "%s.%s", i < nl ? "left" : "right", c) < 0)
                owned[i] = NULL;
            names[i] = owned[i] ? owned[i] : c;
        }
        char buf[4096];
        tm_expr_format(js->residual, names, buf, sizeof(buf));
        fprintf(f, "          and    %s   (residual, over each matching pair)\n", buf);
        for (int i = 0; owned && i < nl + nr; i++)
            free(owned[i]);
        free(owned);
        free(names);
    }
    bool ttl = tm_opt_duration_ms(plan->job->settings, "state_ttl") > 0;
    for (int s = 0; s < 2; s++) {
        const tm_plan_node_t *in = s == 0 ? n->input : n->input2;
        const int *uk = s == 0 ? js->left_uk : js->right_uk;
        int nuk = s == 0 ? js->nleft_uk : js->nright_uk;
        const tm_schema_t *sch = s == 0 ? ls : rs;
        bool counted = (s == 0 && (js->type == TM_JOIN_LEFT || js->type == TM_JOIN_FULL ||
                                   js->type == TM_JOIN_SEMI || js->type == TM_JOIN_ANTI)) ||
                       (s == 1 && (js->type == TM_JOIN_RIGHT || js->type == TM_JOIN_FULL));
        char src[512] = "";
        side_sources(plan, in, src, sizeof(src));
        fprintf(f, "          %-6s state: ", s == 0 ? "left" : "right");
        if (nuk > 0) {
            fprintf(f, "unique-key view, one row per (");
            print_cols(f, sch, uk, nuk);
            fprintf(f, ") under its join key");
        } else if (in->key != NULL && in->nkey > 0) {
            fprintf(f, "multiset view, each distinct row with its count under its join key "
                       "(the input's unique key is not used: its changes of one key can come "
                       "from several upstream subtasks, out of order)");
        } else {
            fprintf(f, "multiset view, each distinct row with its count under its join key "
                       "(the input has no unique key)");
        }
        if (counted)
            fprintf(f, ", with its number of matches");
        fprintf(f, "; rows of %s", src);
        if (ttl)
            fprintf(f, ", expired after state_ttl = %s",
                    tm_opt_str(plan->job->settings, "state_ttl"));
        fprintf(f, "\n");
        if (!ttl && in->mode == TM_MODE_INSERT_ONLY)
            fprintf(f, "          warning: the %s state of %s grows without bound: its input (%s) "
                       "is append-only, so no row ever leaves it; SET state_ttl = '…' to "
                       "expire rows (a join then forgets rows older than that)\n",
                    s == 0 ? "left" : "right", n->uid, src);
        else if (!ttl && nuk == 0 && (in->key == NULL || in->nkey <= 0))
            fprintf(f, "          note: without a unique key (no PRIMARY KEY on %s) the %s state "
                       "holds every live row of it, and grows as long as rows are inserted and "
                       "never deleted; SET state_ttl = '…' bounds it\n",
                    src, s == 0 ? "left" : "right");
    }
    char all[512] = "";
    side_sources(plan, n->input, all, sizeof(all));
    side_sources(plan, n->input2, all, sizeof(all));
    fprintf(f, "          estimate: the live rows of %s (both sides' rows are kept until retracted%s)\n", all,
            ttl ? " or expired" : "");
    if (n->interval_as_join)
        fprintf(f, "          note: the ON clause bounds the time columns (right.%s + %lld µs <= "
                   "left.%s <= right.%s + %lld µs: an interval join), but an input is not "
                   "append-only (left: %s, right: %s), so this is a regular join with the time "
                   "bounds as a condition over each pair: its state is not cleaned by watermarks "
                   "(Flink plans the same)\n",
                rs->cols[n->ij.right_time].name, (long long)n->ij.lower_us,
                ls->cols[n->ij.left_time].name, rs->cols[n->ij.right_time].name,
                (long long)n->ij.upper_us, tm_changelog_mode_name(n->input->mode),
                tm_changelog_mode_name(n->input2->mode));
}

/* An interval join's keys, time range, residual and state. */
static void explain_interval_join(const tm_plan_t *plan, FILE *f, const tm_plan_node_t *n)
{
    const tm_interval_join_spec_t *js = &n->ij;
    const tm_schema_t *ls = js->left_schema, *rs = js->right_schema;
    fprintf(f, "          on     ");
    for (int k = 0; k < js->nkeys; k++)
        fprintf(f, "%sleft.%s = right.%s", k ? " AND " : "", ls->cols[js->left_keys[k]].name,
                rs->cols[js->right_keys[k]].name);
    fprintf(f, "   (NULL keys never match)\n");
    fprintf(f, "          time   right.%s + %lld µs <= left.%s <= right.%s + %lld µs\n",
            rs->cols[js->right_time].name, (long long)js->lower_us, ls->cols[js->left_time].name,
            rs->cols[js->right_time].name, (long long)js->upper_us);
    if (js->residual != NULL) {
        char buf[4096];
        tm_expr_format(js->residual, NULL, buf, sizeof(buf));
        fprintf(f, "          and    %s   (residual over left ++ right, $i = column i)\n", buf);
    }
    char all[512] = "";
    side_sources(plan, n->input, all, sizeof(all));
    side_sources(plan, n->input2, all, sizeof(all));
    fprintf(f, "          rows   of %s, each kept until the watermark passes the last time "
               "the other side can match it%s\n",
            all, js->type == TM_JOIN_INNER ? "" : " (an unmatched outer row is padded then)");
}

/* A lookup join's key, conditions, cache and consistency. */
static void explain_lookup_join(const tm_plan_t *plan, FILE *f, const tm_plan_node_t *n)
{
    const tm_lookup_join_spec_t *ls = &n->lookup;
    const tm_job_table_t *t = &plan->job->tables[n->table];
    const tm_schema_t *decl = ls->lookup.declared;
    fprintf(f, "          key    ");
    for (int k = 0; k < ls->lookup.nkeys; k++)
        fprintf(f, "%s%s.%s = stream.%s", k ? " AND " : "", t->name,
                decl->cols[ls->lookup.key_cols[k]].name,
                ls->in_schema->cols[ls->probe_keys[k]].name);
    fprintf(f, "   (the table's PRIMARY KEY; NULL keys never match and are not looked up)\n");
    if (ls->dim_filter != NULL) {
        fprintf(f, "          where  ");
        print_expr(f, ls->dim_filter, decl);
        fprintf(f, "   (on the fetched row; a row that fails it is no match%s)\n",
                ls->type == TM_JOIN_LEFT ? ": the stream's row is padded with NULLs" : "");
    }
    if (ls->residual != NULL) {
        fprintf(f, "          and    ");
        print_expr(f, ls->residual, n->schema);
        fprintf(f, "   (residual, on the joined row)\n");
    }
    int64_t rows = ls->cache_rows;
    if (rows > 0)
        fprintf(f, "          cache  lookup_cache_rows = %lld per subtask (least recently used "
                   "evicted), lookup_ttl = %s, missing keys %s; one query per input batch for "
                   "the distinct keys the cache does not hold\n",
                (long long)rows, tm_opt_str(t->opts, "lookup_ttl"),
                ls->cache_missing ? "cached too" : "not cached");
    else
        fprintf(f, "          cache  off (lookup_cache_rows = 0): one query per input batch for "
                   "its distinct keys\n");
    fprintf(f, "          consistency: processing-time lookup (Flink's lookup join): each change "
               "is joined with the table's row as of when it is processed%s; a later change of "
               "the table does not update or retract earlier output, a retraction is looked up "
               "again (and may carry newer values), and a replay after recovery looks up "
               "again\n",
            rows > 0 ? ", or as cached up to lookup_ttl earlier" : "");
}


/* "µs" as the largest whole unit ("1 minute", "90 seconds", "1500 ms"). */
static void print_duration(FILE *f, int64_t us)
{
    static const struct {
        int64_t us;
        const char *unit;
    } units[] = {{86400000000LL, "day"}, {3600000000LL, "hour"}, {60000000LL, "minute"},
                 {1000000LL, "second"}, {1000LL, "millisecond"}, {1LL, "microsecond"}};
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (us % units[i].us == 0) {
            int64_t v = us / units[i].us;
            fprintf(f, "INTERVAL '%" PRId64 " %s%s'", v, units[i].unit, v == 1 ? "" : "s");
            return;
        }
}

static void explain_window_head(FILE *f, const tm_plan_node_t *n)
{
    const tm_window_agg_spec_t *w = n->kind == TM_PLAN_WINDOW_TVF ? &n->wtvf.win : &n->win;
    const char *tc = w->in_schema->cols[w->time_col].name;
    switch (w->kind) {
    case TM_WINDOW_TUMBLE:
        fprintf(f, " TUMBLE(%s, ", tc);
        print_duration(f, w->size_us);
        break;
    case TM_WINDOW_HOP:
        fprintf(f, " HOP(%s, slide ", tc);
        print_duration(f, w->slide_us);
        fprintf(f, ", size ");
        print_duration(f, w->size_us);
        break;
    case TM_WINDOW_CUMULATE:
        fprintf(f, " CUMULATE(%s, step ", tc);
        print_duration(f, w->slide_us);
        fprintf(f, ", size ");
        print_duration(f, w->size_us);
        break;
    case TM_WINDOW_SESSION:
        fprintf(f, " SESSION(%s, gap ", tc);
        print_duration(f, w->size_us);
        fprintf(f, ", per group key");
        break;
    }
    fprintf(f, ")\n");
}

static void explain_window(const tm_plan_t *plan, FILE *f, const tm_plan_node_t *n)
{
    const tm_window_agg_spec_t *w = &n->win;
    char tn[64];
    fprintf(f, "          group by ");
    for (int i = 0; i < w->ngroup; i++)
        fprintf(f, "%s%s", i ? ", " : "", n->schema->cols[i].name);
    fprintf(f, "\n");
    for (int k = 0; k < w->naggs; k++) {
        const tm_agg_call_t *a = &w->aggs[k];
        fprintf(f, "          %-8s %s := %s(%s%s)", k == 0 ? "compute" : "",
                n->schema->cols[w->ngroup + k].name, tm_agg_name(a->kind),
                a->distinct ? "DISTINCT " : "",
                a->arg >= 0 ? w->in_schema->cols[a->arg].name : "*");
        fprintf(f, "   :: %s\n", tm_expr_type_name(&a->result_type, tn, sizeof(tn)));
    }
    fprintf(f, "          fires: once the watermark passes a window's end (window_time), and "
               "every window at the end of a bounded input; not on a stop\n");
    if (w->allowed_lateness_us > 0) {
        fprintf(f, "          allowed_lateness ");
        print_duration(f, w->allowed_lateness_us);
        fprintf(f, ": a fired window keeps its state that long; a row in that time emits a "
                   "correction (retract)\n");
    } else {
        fprintf(f, "          late rows (behind the watermark for all their windows): counted in "
                   "tidemark_late_rows_total and logged, not applied\n");
    }
    if (n->late_table >= 0)
        fprintf(f, "          late_data_sink %s: every late row goes there too (side output: its "
                   "columns, operator, window_start, window_end, watermark, reason)\n",
                plan->job->tables[n->late_table].name);
}

static void explain_node(const tm_plan_t *plan, FILE *f, const tm_plan_node_t *n)
{
    const tm_job_t *job = plan->job;
    const tm_job_table_t *t = n->table >= 0 ? &job->tables[n->table] : NULL;
    char tn[64];
    fprintf(f, "    [%d] %s", n->id, tm_plan_kind_name(n->kind));
    switch (n->kind) {
    case TM_PLAN_SCAN:
        fprintf(f, " %s (connector %s)\n", t->name, t->conn->name);
        break;
    case TM_PLAN_UPSERT:
        fprintf(f, ": changelog normalization keyed by ");
        if (n->exchange_cols) {
            fprintf(f, "the primary key (");
            print_cols(f, n->schema, n->exchange_cols, n->nexchange);
            fprintf(f, ")\n");
        } else
            fprintf(f, "the records' primary key (learnt from the database)\n");
        break;
    case TM_PLAN_CALC:
        fprintf(f, " (%s)\n", n->calc_role ? n->calc_role : "project");
        break;
    case TM_PLAN_GROUP_AGG:
        fprintf(f, "%s\n", n->agg.ngroup ? "" : " (global: one group)");
        break;
    case TM_PLAN_WINDOW_AGG:
    case TM_PLAN_WINDOW_TVF:
        explain_window_head(f, n);
        break;
    case TM_PLAN_JOIN:
        fprintf(f, " %s%s: left [%d], right [%d]\n", tm_plan_join_type_name(n->join.type),
                n->join.null_aware ? " (null-aware: NOT IN)" : "", n->input->id, n->input2->id);
        break;
    case TM_PLAN_INTERVAL_JOIN:
        fprintf(f, " %s: left [%d], right [%d]\n", tm_plan_join_type_name(n->ij.type),
                n->input->id, n->input2->id);
        break;
    case TM_PLAN_LOOKUP_JOIN:
        fprintf(f, " %s with lookup table %s (connector %s): stream [%d]%s\n",
                n->lookup.type == TM_JOIN_LEFT ? "left" : "inner", t->name, t->conn->name,
                n->input->id, n->lookup.dim_left ? " (the table is the join's left side)" : "");
        break;
    case TM_PLAN_TOPN:
        if (n->windowed)
            fprintf(f, ": the top %lld row%s per window and partition (window %s)\n",
                    (long long)n->topn.limit, n->topn.limit == 1 ? "" : "s",
                    n->topn.limit == 1 ? "deduplication" : "Top-N");
        else
            fprintf(f, ": the top %lld rows per partition%s\n", (long long)n->topn.limit,
                    n->topn.limit == 1 ? " (deduplication)" : "");
        break;
    case TM_PLAN_SINK:
        fprintf(f, " %s (connector %s)%s\n", t->name, t->conn->name,
                !n->sink_upsert       ? ""
                : n->before_images ? ": upserts on its PRIMARY KEY"
                                   : ": upserts on its PRIMARY KEY, the source's changes applied "
                                     "in order by key (no upsert operator)");
        break;
    default:
        fprintf(f, "\n");
    }
    if (n->kind == TM_PLAN_CALC) {
        const tm_schema_t *in = n->calc.in_schema;
        if (n->calc.filter != NULL) {
            fprintf(f, "          %s ",
                    n->input->kind == TM_PLAN_GROUP_AGG || n->input->kind == TM_PLAN_WINDOW_AGG
                        ? "having"
                        : "where ");
            print_expr(f, n->calc.filter, in);
            fprintf(f, "\n");
        }
        for (int i = 0; i < n->calc.nexprs; i++) {
            fprintf(f, "          %-6s %s := ", i == 0 ? "select" : "",
                    n->schema->cols[i].name);
            print_expr(f, n->calc_exprs[i], in);
            fprintf(f, "   :: %s\n", tm_expr_type_name(&(tm_expr_type_t){n->schema->cols[i].type,
                                                                         n->schema->cols[i]
                                                                             .elem_type,
                                                                         n->schema->cols[i]
                                                                             .precision,
                                                                         n->schema->cols[i].scale},
                                                       tn, sizeof(tn)));
        }
    }
    if (n->kind == TM_PLAN_GROUP_AGG) {
        const tm_schema_t *in = n->agg.in_schema;
        fprintf(f, "          group by ");
        if (n->agg.ngroup == 0)
            fprintf(f, "()");
        print_cols(f, in, n->agg.group_cols, n->agg.ngroup);
        fprintf(f, "\n");
        for (int k = 0; k < n->agg.naggs; k++) {
            const tm_agg_call_t *a = &n->agg.aggs[k];
            fprintf(f, "          %-8s %s := %s(%s%s)", k == 0 ? "compute" : "",
                    n->schema->cols[n->agg.ngroup + k].name, tm_agg_name(a->kind),
                    a->distinct ? "DISTINCT " : "",
                    a->arg >= 0 && in ? in->cols[a->arg].name : "*");
            fprintf(f, "   :: %s\n", tm_expr_type_name(&a->result_type, tn, sizeof(tn)));
        }
    }
    if (n->kind == TM_PLAN_WINDOW_AGG)
        explain_window(plan, f, n);
    if (n->kind == TM_PLAN_TOPN)
        explain_topn(f, n);
    if (n->kind == TM_PLAN_INTERVAL_JOIN)
        explain_interval_join(plan, f, n);
    if (n->kind == TM_PLAN_JOIN)
        explain_join(plan, f, n);
    if (n->kind == TM_PLAN_LOOKUP_JOIN)
        explain_lookup_join(plan, f, n);
    if (n->kind != TM_PLAN_SCAN) {
        fprintf(f, "          input: ");
        bool two = n->kind == TM_PLAN_JOIN || n->kind == TM_PLAN_INTERVAL_JOIN;
        if (two)
            fprintf(f, "left ");
        print_exchange(f, n);
        if (two) {
            fprintf(f, ", right ");
            if (n->exchange == TM_EXCHANGE_HASH) {
                fprintf(f, "hash(");
                print_cols(f, n->input2->schema, n->join_right_keys,
                           n->kind == TM_PLAN_JOIN ? n->join.nkeys : n->ij.nkeys);
                fprintf(f, ")");
            } else {
                print_exchange(f, n);
            }
        }
        fprintf(f, "; parallelism %d", n->parallelism);
        if (n->stage >= 0)
            fprintf(f, " (stage %d)", n->stage + 1);
        fprintf(f, "\n");
    }
    fprintf(f, "          state: ");
    if (n->kind == TM_PLAN_UPSERT) {
        fprintf(f, "the last row per key, keyed by ");
        if (n->exchange_cols) {
            fprintf(f, "(");
            print_cols(f, n->schema, n->exchange_cols, n->nexchange);
            fprintf(f, ")");
        } else {
            fprintf(f, "the records' primary key");
        }
    } else if (n->kind == TM_PLAN_JOIN) {
        fprintf(f, "each side's rows under their join key (see above)");
    } else if (n->kind == TM_PLAN_INTERVAL_JOIN) {
        fprintf(f, "each side's rows by (join key, time), and a time index per side");
    } else if (n->kind == TM_PLAN_LOOKUP_JOIN) {
        fprintf(f, "none (the lookup cache is memory only, per subtask, never checkpointed)");
    } else if (n->kind == TM_PLAN_WINDOW_AGG) {
        fprintf(f, "accumulators per (");
        if (n->win.nkey > 0) {
            print_cols(f, n->win.in_schema, n->win.key_cols, n->win.nkey);
            fprintf(f, ", ");
        }
        fprintf(f, "window) and a timer per window, keyed by %s",
                n->win.nkey > 0 ? "the group key" : "the window (one subtask)");
    } else if (n->kind == TM_PLAN_TOPN) {
        if (n->windowed)
            fprintf(f, "at most %lld rows per open window and partition, and a timer per "
                       "window (dropped when it fires)",
                    (long long)n->topn.limit);
        else if (n->topn.append_only)
            fprintf(f, "at most %lld rows per partition (the input is insert-only)",
                    (long long)n->topn.limit);
        else
            fprintf(f, "every row of each partition, sorted by the order key (rows below the "
                       "top %lld can move up when a row of it is retracted)",
                    (long long)n->topn.limit);
    } else if (n->kind == TM_PLAN_GROUP_AGG) {
        if (n->agg.ngroup == 0) {
            fprintf(f, "accumulators of the one group");
        } else {
            fprintf(f, "accumulators per group, keyed by (");
            print_cols(f, n->agg.in_schema, n->agg.group_cols, n->agg.ngroup);
            fprintf(f, ")");
        }
    } else {
        fprintf(f, "none");
    }
    if (n->stateful)
        fprintf(f, " in RocksDB, %d key groups", plan->max_parallelism);
    fprintf(f, "; uid %s\n", n->uid);
    fprintf(f, "          changelog: ");
    print_mode(f, n);
    if (n->mode != TM_MODE_UPSERT && n->kind != TM_PLAN_SCAN) {
        fprintf(f, "; unique key ");
        print_key(f, n);
    }
    fprintf(f, "\n");
}

/* Marks a pipeline's nodes (inputs of joins included). */
/* A pipeline's nodes, found from its sink (each once). */
typedef struct node_set {
    const tm_plan_node_t **v;
    int n, cap;
    bool oom;
} node_set_t;

static bool node_set_has(const node_set_t *set, const tm_plan_node_t *n)
{
    for (int i = 0; i < set->n; i++)
        if (set->v[i] == n)
            return true;
    return false;
}

static void collect(const tm_plan_node_t *n, node_set_t *set)
{
    for (; n != NULL && !set->oom && !node_set_has(set, n); n = n->input) {
        if (set->n == set->cap) {
            int cap = set->cap ? set->cap * 2 : 16;
            const tm_plan_node_t **v = realloc(set->v, sizeof(*v) * (size_t)cap);
            if (v == NULL) {
                set->oom = true;
                return;
            }
            set->v = v;
            set->cap = cap;
        }
        set->v[set->n++] = n;
        if (n->kind == TM_PLAN_JOIN || n->kind == TM_PLAN_INTERVAL_JOIN)
            collect(n->input2, set);
    }
}

static int by_id(const void *a, const void *b)
{
    int x = (*(const tm_plan_node_t *const *)a)->id, y = (*(const tm_plan_node_t *const *)b)->id;
    return (x > y) - (x < y);
}

static void explain_pipeline(const tm_plan_t *plan, FILE *f, int p)
{
    const tm_job_t *job = plan->job;
    const tm_plan_pipeline_t *pl = &plan->pipelines[p];
    const tm_job_insert_t *ins = &job->inserts[pl->insert];
    /*
     * Only this pipeline's nodes, not a pass over the whole plan: a job of
     * 20,000 INSERTs has as many pipelines (tests/integration/test_inputs.py).
     */
    node_set_t set = {NULL, 0, 0, false};
    collect(pl->sink, &set);
    if (set.oom) {
        free(set.v);
        return;
    }
    char src[512] = "";
    side_sources(plan, pl->sink, src, sizeof(src));
    fprintf(f, "  pipeline %d (line %d): %s ──► %s\n", p + 1, ins->line,
            src[0] ? src : job->tables[ins->source].name, job->tables[ins->sink].name);
    /* Plan order (node ids) is topological: every node after its inputs. */
    qsort(set.v, (size_t)set.n, sizeof(*set.v), by_id);
    for (int i = 0; i < set.n; i++)
        explain_node(plan, f, set.v[i]);
    free(set.v);
}

static int explain_sources(const tm_plan_t *plan, FILE *f, char *err, size_t errlen)
{
    const tm_job_t *job = plan->job;
    fprintf(f, "\nsources:\n");
    for (int i = 0; i < job->ntables; i++) {
        const tm_job_table_t *t = &job->tables[i];
        if (t->role != TM_ROLE_SOURCE)
            continue;
        fprintf(f, "  %s (connector %s)\n", t->name, t->conn->name);
        if (t->declared != NULL) {
            fprintf(f, "    declared columns:");
            for (int c = 0; c < t->declared->ncols; c++)
                fprintf(f, "%s %s %s%s", c ? "," : "", t->declared->cols[c].name,
                        tm_type_name(t->declared->cols[c].type),
                        t->declared->cols[c].key_index >= 0 ? " (key)" : "");
            fprintf(f, "\n");
        }
        fprintf(f, "    options:\n");
        explain_options(f, t->opts, t->conn->source_options);
        if (t->conn->source_new != NULL && t->conn->source_describe != NULL) {
            tm_source_t *src = NULL;
            tm_source_config_t cfg = {t->name, t->opts, t->declared, "."};
            int rc = t->conn->source_new(&src, &cfg, err, errlen);
            if (rc != 0)
                return rc;
            fprintf(f, "    details:\n");
            describe_out = f;
            t->conn->source_describe(src, describe_line, NULL);
            t->conn->source_free(src);
        }
    }
    return 0;
}

static int explain_lookups(const tm_plan_t *plan, FILE *f, char *err, size_t errlen)
{
    const tm_job_t *job = plan->job;
    bool any = false;
    for (int i = 0; i < plan->nnodes; i++) {
        const tm_plan_node_t *n = plan->nodes[i];
        if (n->kind != TM_PLAN_LOOKUP_JOIN)
            continue;
        const tm_job_table_t *t = &job->tables[n->table];
        if (!any)
            fprintf(f, "\nlookup tables:\n");
        any = true;
        fprintf(f, "  %s (connector %s) for [%d]\n", t->name, t->conn->name, n->id);
        fprintf(f, "    options:\n");
        explain_options(f, t->opts, t->conn->lookup_options);
        /* lookup_new validates without I/O, so explain refuses what run would refuse. */
        tm_lookup_t *lk = NULL;
        int rc = t->conn->lookup_new(&lk, &n->lookup.lookup, err, errlen);
        if (rc != 0)
            return rc;
        if (t->conn->lookup_describe != NULL) {
            fprintf(f, "    details:\n");
            describe_out = f;
            t->conn->lookup_describe(lk, describe_line, NULL);
        }
        t->conn->lookup_free(lk);
    }
    return 0;
}

static int explain_sinks(const tm_plan_t *plan, FILE *f, char *err, size_t errlen)
{
    const tm_job_t *job = plan->job;
    fprintf(f, "\nsinks:\n");
    for (int i = 0; i < job->ntables; i++) {
        const tm_job_table_t *t = &job->tables[i];
        if (t->role != TM_ROLE_SINK)
            continue;
        fprintf(f, "  %s (connector %s)\n", t->name, t->conn->name);
        int64_t chk_ms = tm_opt_duration_ms(job->settings, "checkpoint_interval");
        bool exactly = chk_ms > 0 && t->conn->sink_precommit != NULL;
        bool decision_log = false;
        /* sink_new validates without I/O, so explain refuses what run would refuse. */
        tm_sink_t *snk = NULL;
        tm_sink_config_t cfg = {t->name, t->opts, t->declared, ".", chk_ms > 0, "explain", chk_ms};
        int rc = t->conn->sink_new(&snk, &cfg, err, errlen);
        if (rc != 0)
            return rc;
        if (exactly && t->conn->sink_is_decision_log != NULL) {
            /* A sink that can be the decision log is exactly-once only as one. */
            decision_log = t->conn->sink_is_decision_log(snk);
            exactly = decision_log;
        }
        const char *said =
            t->conn->sink_delivery != NULL ? t->conn->sink_delivery(snk, chk_ms > 0) : NULL;
        t->conn->sink_free(snk);
        if (said == NULL)
            said = decision_log ? "exactly-once (transaction per checkpoint); this sink is the "
                                  "job's decision log: its commit completes each checkpoint"
                   : exactly    ? "exactly-once (two-phase commit per checkpoint)"
                                : "at-least-once";
        fprintf(f, "    delivery: %s\n", said);
        fprintf(f, "    options:\n");
        explain_options(f, t->opts, t->conn->sink_options);
    }
    return 0;
}

/* What on_error does, and with 'dead-letter' which files get the rejected rows. */
static void explain_row_errors(const tm_plan_t *plan, FILE *f)
{
    const char *policy = tm_opt_str(plan->job->settings, "on_error");
    if (strcmp(policy, "dead-letter") != 0) {
        fprintf(f, "\nrow errors: on_error = '%s': %s\n", policy,
                strcmp(policy, "skip") == 0
                    ? "a row whose expression fails is dropped, counted and logged"
                    : "a row whose expression fails stops the job");
        return;
    }
    fprintf(f, "\nrow errors: on_error = 'dead-letter': a row whose expression fails is dropped, "
               "counted and appended as one JSON line (ts_ms, job, operator, subtask, reason, op, "
               "before, after, source) to <state-dir>/dead-letter/<operator uid, '/' as "
               "'_'>-<subtask>.jsonl, flushed at every checkpoint; at-least-once (a replay after "
               "a crash may write a row again)\n");
    for (int s = 0; s < plan->nstages; s++) {
        const tm_plan_stage_t *st = &plan->stages[s];
        for (int i = 0; i < st->nnodes; i++) {
            const tm_plan_node_t *n = st->nodes[i];
            /* Only expressions fail per row: projections, filters and aggregates. */
            if (n->kind != TM_PLAN_CALC && n->kind != TM_PLAN_GROUP_AGG &&
                n->kind != TM_PLAN_WINDOW_AGG)
                continue;
            char name[512];
            tm_dead_letter_file_name(name, sizeof(name), n->uid, 0);
            size_t len = strlen(name);
            /* "calc_out_1-0.jsonl" → "calc_out_1-{0..P-1}.jsonl" */
            if (st->parallelism > 1 && len > 8)
                fprintf(f, "  %s: dead-letter/%.*s{0..%d}.jsonl\n", n->uid, (int)(len - 7),
                        name, st->parallelism - 1);
            else
                fprintf(f, "  %s: dead-letter/%s\n", n->uid, name);
        }
    }
}

int tm_plan_explain(const tm_plan_t *plan, FILE *f, char *errstr, size_t errstr_size)
{
    const tm_job_t *job = plan->job;
    fprintf(f, "job %s\n", job->path);
    fprintf(f, "\nplan:\n");
    for (int p = 0; p < plan->npipelines; p++)
        explain_pipeline(plan, f, p);
    fprintf(f, "\nstages (operator chains; each subtask is a thread with its own state):\n");
    if (plan->nstages == 0)
        fprintf(f, "  none: every pipeline passes records from its source to its sink\n");
    for (int s = 0; s < plan->nstages; s++) {
        const tm_plan_stage_t *st = &plan->stages[s];
        fprintf(f, "  stage %d: %s × %d, input ", s + 1, st->label, st->parallelism);
        print_exchange(f, st->nodes[0]);
        fprintf(f, "%s; name %s\n", st->stateful ? ", stateful" : ", stateless", st->name);
    }
    int rc = explain_sources(plan, f, errstr, errstr_size);
    if (rc == 0)
        rc = explain_lookups(plan, f, errstr, errstr_size);
    if (rc == 0)
        rc = explain_sinks(plan, f, errstr, errstr_size);
    if (rc != 0)
        return rc;
    fprintf(f, "\nsettings:\n");
    explain_options(f, job->settings, tm_job_settings);
    int64_t chk = tm_opt_duration_ms(job->settings, "checkpoint_interval");
    if (chk > 0)
        fprintf(f, "\ncheckpoints: every %" PRId64 " ms into <state-dir>/checkpoints; sinks with "
                   "two-phase commit are exactly-once, sources acknowledge completed checkpoints "
                   "only\n",
                chk);
    else
        fprintf(f, "\ncheckpoints: off (SET checkpoint_interval = '10s' turns them on); sinks are "
                   "at-least-once, sources acknowledge what sinks flushed\n");
    explain_row_errors(plan, f);
    fprintf(f, "\nnot built yet: interval joins over CDC changelogs (they run as regular joins; only "
               "datagen and snapshot-only sources are append-only), joins "
               "without an equality between their sides (cross joins), JOIN … USING and NATURAL "
               "JOIN, a window function (TUMBLE, …) without GROUP BY window_start, window_end, "
               "window Top-N, SELECT DISTINCT ON, subqueries in expressions, "
               "set operations (UNION …).\n");
    return 0;
}
