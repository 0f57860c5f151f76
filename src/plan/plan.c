/*
 * plan.c — the planner: bound queries (sql/bind.h) → plan nodes with
 * changelog modes, keys, exchanges, parallelism and uids (see plan.h).
 *
 * Rules, in the order they apply to one INSERT:
 *   1. FROM a table: a Scan (one per source table, shared by every INSERT
 *      that reads it; insert-only for a snapshot-only source, snapshot =
 *      'initial_only').  A table with a declared PRIMARY KEY — or a SELECT *
 *      pipeline into a sink that declares one, as in the first version — gets
 *      an Upsert hashed by that key right after it, before anything stateful.
 *      FROM a subquery or view: that query's plan, inlined.
 *   2. Not grouped: one Calc (WHERE + select list), unless the query is a
 *      passthrough SELECT *.
 *   3. Grouped: a Calc computing the group keys and aggregate arguments as
 *      columns (WHERE folded in), GroupAgg behind a HASH exchange on the keys
 *      (SINGLE for a global aggregate), then a Calc for HAVING and the select
 *      list.
 *   4. The select list is fitted to the sink (its declared columns and the
 *      INSERT's column list: order, casts, names), then the Sink checks the
 *      mode and the key it receives (sink_check, the one capability check).
 *
 * Invariants:
 *   1. Nodes are appended after their input, so plan->nodes is in
 *      topological order and ids grow from sources to sinks.
 *   2. Every expression lives in plan->pool; every schema a node holds is a
 *      reference it releases.
 *   3. Planning never touches a connector: it is pure over the job.
 *
 * Thread: the main thread.
 */
#include "plan/plan.h"
#include "core/buf.h"
#include "core/error.h"
#include "state/keygroup.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct pctx {
    tm_plan_t *plan;
    int insert;
    const char *sink_name;
    int nagg;  /* aggregations planned so far for this INSERT */
    int njoin; /* joins planned so far for this INSERT */
    int nlookup; /* lookup joins, counted apart so that they never renumber the joins' uids */
    int ncalc; /* calcs planned so far for this INSERT */
    /*
     * The sink applies upserts by key itself (a PostgreSQL sink keyed like
     * the query's one source, fed a projection of it): the source's changes
     * go to it as they come, with no upsert operator in between.
     */
    bool sink_folds_upserts;
    char *errstr;
    size_t errstr_size;
    int ntopn; /* Top-Ns planned so far for this INSERT */
} pctx_t;

const char *tm_changelog_mode_name(tm_changelog_mode_t mode)
{
    switch (mode) {
    case TM_MODE_INSERT_ONLY:
        return "insert-only";
    case TM_MODE_RETRACT:
        return "retract";
    case TM_MODE_UPSERT:
        return "upsert";
    }
    return "?";
}

const char *tm_plan_kind_name(tm_plan_kind_t kind)
{
    static const char *const names[] = {"?",    "scan",       "upsert", "calc",       "group_agg",
                                        "sink", "join",       "window_agg", "topn",
                                        "lookup_join", "interval_join", "window_tvf"};
    return kind >= TM_PLAN_SCAN && kind <= TM_PLAN_WINDOW_TVF ? names[kind] : "?";
}

static int plan_err(pctx_t *pc, int location, int code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int plan_err(pctx_t *pc, int location, int code, const char *fmt, ...)
{
    char msg[1536];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    const tm_job_t *job = pc->plan->job;
    int line = 0, col = 0;
    if (location >= 0)
        tm_job_position(job, location, &line, &col);
    else if (pc->insert >= 0)
        tm_job_position(job, job->inserts[pc->insert].location, &line, &col);
    if (line > 0)
        return tm_seterr(pc->errstr, pc->errstr_size, code, "%s:%d:%d: %s", job->path, line, col,
                         msg);
    return tm_seterr(pc->errstr, pc->errstr_size, code, "%s: %s", job->path, msg);
}

static int *int_dup(const int *v, int n)
{
    if (n <= 0 || v == NULL)
        return NULL;
    int *d = malloc(sizeof(int) * (size_t)n);
    if (d != NULL)
        memcpy(d, v, sizeof(int) * (size_t)n);
    return d;
}

static tm_plan_node_t *node_add(tm_plan_t *plan, tm_plan_kind_t kind, tm_plan_node_t *input,
                                int insert)
{
    tm_plan_node_t *n = calloc(1, sizeof(*n));
    tm_plan_node_t **v = realloc(plan->nodes, sizeof(*v) * (size_t)(plan->nnodes + 1));
    if (n == NULL || v == NULL) {
        free(n);
        if (v != NULL)
            plan->nodes = v;
        return NULL;
    }
    plan->nodes = v;
    plan->nodes[plan->nnodes++] = n;
    n->kind = kind;
    n->id = plan->nnodes;
    n->input = input;
    n->insert = insert;
    n->table = -1;
    n->late_table = -1;
    n->stage = -1;
    n->parallelism = 1;
    return n;
}

static void node_free(tm_plan_node_t *n)
{
    if (n == NULL)
        return;
    free(n->uid);
    tm_schema_unref(n->schema);
    free(n->key);
    free(n->exchange_cols);
    free(n->calc_exprs);
    tm_schema_unref((tm_schema_t *)n->calc.in_schema);
    free(n->agg_group_cols);
    for (int k = 0; k < n->agg.naggs; k++)
        free(n->agg_calls[k].separator);
    /* A window aggregation keeps its calls in agg_calls too (its own count: win.naggs). */
    for (int k = 0; k < n->win.naggs; k++)
        free(n->agg_calls[k].separator);
    free(n->agg_calls);
    tm_schema_unref((tm_schema_t *)n->agg.in_schema);
    free(n->join_left_keys);
    free(n->join_right_keys);
    free(n->join_left_uk);
    free(n->join_right_uk);
    free(n->lookup_probe_keys);
    free(n->lookup_key_cols);
    tm_schema_unref(n->lookup_key_schema);
    tm_schema_unref(n->lookup_dim_schema);
    free(n->lookup_ext);
    free(n->win_key_cols);
    free(n->win_out_cols);
    tm_schema_unref((tm_schema_t *)n->win.in_schema);
    tm_schema_unref(n->win.late_schema);
    tm_schema_unref((tm_schema_t *)n->wtvf.win.in_schema);
    free(n->topn_part);
    free(n->topn_order);
    free(n->topn_desc);
    free(n->topn_nulls_first);
    free(n);
}

/* Computed rows carry the identity of the sink they are for (docs/sql.md, output envelope). */
static int set_identity(pctx_t *pc, tm_schema_t *s)
{
    tm_schema_set_str(&s->source_name, "tidemark");
    tm_schema_set_str(&s->db, NULL);
    tm_schema_set_str(&s->namespace, pc->plan->job_name);
    tm_schema_set_str(&s->table, pc->sink_name);
    s->full_identity = true;
    return s->source_name && s->namespace && s->table ? 0 : TM_ENOMEM;
}

/* Sets key_index from a list of columns and refreshes key_cols. */
static int set_schema_key(tm_schema_t *s, const int *key, int nkey)
{
    for (int i = 0; i < s->ncols; i++)
        s->cols[i].key_index = -1;
    for (int k = 0; k < nkey; k++)
        s->cols[key[k]].key_index = (int16_t)k;
    return tm_schema_finish(s) == 0 ? 0 : TM_EINVAL;
}

static uint32_t fnv(uint32_t h, const char *s)
{
    for (; s && *s; s++) {
        h ^= (uint8_t)*s;
        h *= 16777619u;
    }
    h ^= 0xff;
    h *= 16777619u;
    return h;
}

/* ---- sources ---- */

static tm_plan_node_t *scan_for(pctx_t *pc, int table)
{
    tm_plan_t *plan = pc->plan;
    for (int i = 0; i < plan->nnodes; i++)
        if (plan->nodes[i]->kind == TM_PLAN_SCAN && plan->nodes[i]->table == table)
            return plan->nodes[i];
    const tm_job_table_t *t = &plan->job->tables[table];
    tm_plan_node_t *n = node_add(plan, TM_PLAN_SCAN, NULL, -1);
    if (n == NULL)
        return NULL;
    n->table = table;
    n->uid = tm_asprintf("scan/%s", t->name);
    n->schema = t->declared ? tm_schema_ref(t->declared) : NULL;
    n->exchange = 0;
    const char *snap = t->conn != NULL && strcmp(t->conn->name, "postgres-cdc") == 0
                           ? tm_opt_str(t->opts, "snapshot")
                           : NULL;
    if ((t->conn != NULL && (t->conn->kinds & TM_CONNECTOR_INSERT_ONLY)) ||
        (snap != NULL && strcmp(snap, "initial_only") == 0)) {
        /*
         * An append-only source (datagen), or a snapshot-only CDC source,
         * which reads the table once and ends: every record is a snapshot
         * read.  Insert-only (a bounded stream for the latter), unique on a
         * declared key if any; before images vacuously whole.
         */
        n->mode = TM_MODE_INSERT_ONLY;
        n->before_images = true;
        if (t->declared != NULL && t->declared->nkeys > 0) {
            n->key = int_dup(t->declared->key_cols, t->declared->nkeys);
            n->nkey = t->declared->nkeys;
        }
    } else if (t->declared != NULL && t->declared->nkeys > 0) {
        /* A CDC source keyed by its primary key: an update may carry only the key as before. */
        n->mode = TM_MODE_UPSERT;
        n->before_images = false;
        n->key = int_dup(t->declared->key_cols, t->declared->nkeys);
        n->nkey = t->declared->nkeys;
    } else {
        n->mode = TM_MODE_RETRACT;
        n->before_images = true;
    }
    return n->uid ? n : NULL;
}

static tm_plan_node_t *plan_table(pctx_t *pc, int table, bool force_upsert)
{
    tm_plan_t *plan = pc->plan;
    const tm_job_table_t *t = &plan->job->tables[table];
    tm_plan_node_t *scan = scan_for(pc, table);
    if (scan == NULL)
        return NULL;
    bool pk = t->declared != NULL && t->declared->nkeys > 0;
    /* An insert-only scan needs no changelog normalization. */
    if ((!pk && !force_upsert) || (pk && pc->sink_folds_upserts) ||
        scan->mode == TM_MODE_INSERT_ONLY)
        return scan;
    tm_plan_node_t *n = node_add(plan, TM_PLAN_UPSERT, scan, pc->insert);
    if (n == NULL)
        return NULL;
    n->table = table;
    /* A second upsert of the same source in one INSERT (a self-join) needs a uid of its own. */
    int same = 0;
    /*
     * This INSERT's nodes are the newest ones, among scans (insert -1) shared
     * with the others: the count stays linear in the job's size.
     */
    for (int i = plan->nnodes - 1;
         i >= 0 && (plan->nodes[i]->insert == pc->insert || plan->nodes[i]->insert == -1); i--)
        same += plan->nodes[i]->kind == TM_PLAN_UPSERT && plan->nodes[i]->table == table &&
                plan->nodes[i] != n;
    n->uid = same == 0 ? tm_asprintf("upsert/%s/%s", t->name, pc->sink_name)
                       : tm_asprintf("upsert/%s/%s/%d", t->name, pc->sink_name, same + 1);
    n->schema = scan->schema ? tm_schema_ref(scan->schema) : NULL;
    n->mode = TM_MODE_RETRACT;
    n->before_images = true;
    if (pk) {
        n->key = int_dup(t->declared->key_cols, t->declared->nkeys);
        n->nkey = t->declared->nkeys;
        n->exchange_cols = int_dup(t->declared->key_cols, t->declared->nkeys);
        n->nexchange = t->declared->nkeys;
    } else {
        /* The records' own primary key, learnt from the database (first-version behaviour). */
        n->nkey = 1;
    }
    n->exchange = TM_EXCHANGE_HASH;
    n->parallelism = plan->parallelism;
    n->stateful = true;
    return n->uid ? n : NULL;
}

/* ---- calc ---- */

/* The unique key of a calc's output: every input key column projected bare. */
static void calc_key(tm_plan_node_t *n)
{
    tm_plan_node_t *in = n->input;
    free(n->key);
    n->key = NULL;
    n->nkey = 0;
    if (in->nkey <= 0 || in->key == NULL)
        return;
    int *key = calloc((size_t)in->nkey, sizeof(int));
    if (key == NULL)
        return;
    for (int k = 0; k < in->nkey; k++) {
        key[k] = -1;
        for (int i = 0; i < n->calc.nexprs && key[k] < 0; i++)
            if (tm_expr_column_index(n->calc_exprs[i]) == in->key[k])
                key[k] = i;
        if (key[k] < 0) {
            free(key);
            return;
        }
    }
    n->key = key;
    n->nkey = in->nkey;
}

static tm_plan_node_t *plan_calc(pctx_t *pc, tm_plan_node_t *input, tm_schema_t *in_schema,
                                 tm_expr_t *filter, tm_expr_t *const *exprs, int nexprs,
                                 const tm_schema_t *out, const char *role)
{
    tm_plan_node_t *n = node_add(pc->plan, TM_PLAN_CALC, input, pc->insert);
    if (n == NULL)
        return NULL;
    pc->ncalc++;
    n->uid = tm_asprintf("calc/%s/%d", pc->sink_name, pc->ncalc);
    n->calc_role = role;
    n->calc_exprs = calloc((size_t)nexprs + 1, sizeof(*n->calc_exprs));
    n->schema = tm_schema_clone(out);
    if (n->uid == NULL || n->calc_exprs == NULL || n->schema == NULL ||
        set_identity(pc, n->schema) != 0)
        return NULL;
    memcpy(n->calc_exprs, exprs, sizeof(*exprs) * (size_t)nexprs);
    n->calc.in_schema = tm_schema_ref(in_schema);
    n->calc.filter = filter;
    n->calc.exprs = (const tm_expr_t *const *)n->calc_exprs;
    n->calc.nexprs = nexprs;
    n->calc.out_schema = n->schema;
    /* A SELECT * … WHERE keeps truncates and messages flowing; computed rows do not. */
    bool star = in_schema != NULL && nexprs == in_schema->ncols;
    for (int i = 0; star && i < nexprs; i++)
        star = tm_expr_column_index(exprs[i]) == i;
    n->calc.pass_control = star && input->kind != TM_PLAN_GROUP_AGG &&
                           input->kind != TM_PLAN_WINDOW_AGG && input->kind != TM_PLAN_JOIN &&
                           input->kind != TM_PLAN_INTERVAL_JOIN &&
                           strcmp(role, "pre-join") != 0 && strcmp(role, "pre-rank") != 0;
    n->mode = input->mode;
    n->before_images = input->before_images;
    n->exchange = TM_EXCHANGE_FORWARD;
    n->parallelism = input->parallelism;
    calc_key(n);
    /* An upsert stream whose key is not selected is still a retract stream (it has before images). */
    if (n->mode == TM_MODE_UPSERT && input->nkey > 0 && n->nkey == 0)
        n->mode = n->before_images ? TM_MODE_RETRACT : TM_MODE_UPSERT;
    if (set_schema_key(n->schema, n->key, n->nkey) != 0)
        return NULL;
    return n;
}

/* ---- group_agg ---- */

static tm_plan_node_t *plan_group_agg(pctx_t *pc, tm_plan_node_t *pre, const tm_bound_query_t *q)
{
    tm_plan_t *plan = pc->plan;
    tm_plan_node_t *n = node_add(plan, TM_PLAN_GROUP_AGG, pre, pc->insert);
    if (n == NULL)
        return NULL;
    pc->nagg++;
    /* The fingerprint: what the state means (keys, argument expressions, aggregates). */
    uint32_t h = 2166136261u;
    char buf[2048], tn[64];
    for (int i = 0; i < q->npre; i++) {
        tm_expr_format(q->pre_exprs[i], NULL, buf, sizeof(buf));
        h = fnv(h, buf);
        h = fnv(h, tm_expr_type_name(tm_expr_type(q->pre_exprs[i]), tn, sizeof(tn)));
        if (i == q->ngroup - 1)
            h = fnv(h, "|");
    }
    for (int k = 0; k < q->naggs; k++) {
        snprintf(buf, sizeof(buf), "%s/%d/%d/%s", tm_agg_name(q->aggs[k].kind),
                 q->aggs[k].distinct, q->aggs[k].arg,
                 q->aggs[k].separator ? q->aggs[k].separator : "");
        h = fnv(h, buf);
    }
    n->uid = tm_asprintf("agg/%s/%d-%08x", pc->sink_name, pc->nagg, h);
    n->agg_group_cols = calloc((size_t)q->ngroup + 1, sizeof(int));
    n->agg_calls = calloc((size_t)q->naggs + 1, sizeof(tm_agg_call_t));
    n->schema = tm_schema_clone(q->agg_schema);
    if (n->uid == NULL || n->agg_group_cols == NULL || n->agg_calls == NULL ||
        n->schema == NULL || set_identity(pc, n->schema) != 0)
        return NULL;
    for (int i = 0; i < q->ngroup; i++)
        n->agg_group_cols[i] = i;
    for (int k = 0; k < q->naggs; k++) {
        n->agg_calls[k] = q->aggs[k];
        n->agg_calls[k].separator = q->aggs[k].separator ? strdup(q->aggs[k].separator) : NULL;
    }
    n->agg.in_schema = tm_schema_ref(pre->schema);
    n->agg.group_cols = n->agg_group_cols;
    n->agg.ngroup = q->ngroup;
    n->agg.aggs = n->agg_calls;
    n->agg.naggs = q->naggs;
    n->agg.out_schema = n->schema;
    n->mode = TM_MODE_UPSERT;
    n->before_images = true;
    n->key = int_dup(n->agg_group_cols, q->ngroup);
    n->nkey = q->ngroup;
    n->stateful = true;
    if (q->ngroup > 0) {
        n->exchange = TM_EXCHANGE_HASH;
        n->exchange_cols = int_dup(n->agg_group_cols, q->ngroup);
        n->nexchange = q->ngroup;
        n->parallelism = plan->parallelism;
    } else {
        n->exchange = TM_EXCHANGE_SINGLE;
        n->parallelism = 1;
    }
    return n;
}

static int plan_query(pctx_t *pc, const tm_bound_query_t *q, bool force_upsert,
                      tm_plan_node_t **out);

/* ---- join ---- */

static int plan_from(pctx_t *pc, const tm_bound_from_t *f, tm_plan_node_t **out);

static tm_join_type_t join_type_of(tm_bound_join_kind_t k)
{
    switch (k) {
    case TM_BOUND_LEFT:
        return TM_JOIN_LEFT;
    case TM_BOUND_RIGHT:
        return TM_JOIN_RIGHT;
    case TM_BOUND_FULL:
        return TM_JOIN_FULL;
    case TM_BOUND_SEMI:
        return TM_JOIN_SEMI;
    case TM_BOUND_ANTI:
        return TM_JOIN_ANTI;
    default:
        return TM_JOIN_INNER;
    }
}

const char *tm_plan_join_type_name(tm_join_type_t t)
{
    static const char *const names[] = {"?", "inner", "left", "right", "full", "semi", "anti"};
    return t >= TM_JOIN_INNER && t <= TM_JOIN_ANTI ? names[t] : "?";
}

/* True when every column of key (nkey > 0) is among cols. */
static bool key_within(const int *key, int nkey, const int *cols, int ncols)
{
    if (key == NULL || nkey <= 0)
        return false;
    for (int k = 0; k < nkey; k++) {
        bool found = false;
        for (int i = 0; i < ncols; i++)
            found |= cols[i] == key[k];
        if (!found)
            return false;
    }
    return true;
}

/* ---- lookup join ---- */

/* True when f is a leaf that reads a lookup table (TM_ROLE_LOOKUP). */
static bool is_lookup_leaf(const pctx_t *pc, const tm_bound_from_t *f)
{
    return f != NULL && f->kind == TM_BOUND_LEAF && f->sub == NULL && f->table >= 0 &&
           (pc->plan->job->tables[f->table].role & TM_ROLE_LOOKUP) != 0;
}

/* The one message for a lookup table read any other way than by a lookup join. */
static int lookup_misuse(pctx_t *pc, int location, const tm_job_table_t *t, const char *how)
{
    char key[256] = "key";
    if (t->declared != NULL && t->declared->nkeys > 0) {
        size_t n = 0;
        key[0] = '\0';
        for (int k = 0; k < t->declared->nkeys && n < sizeof(key); k++)
            n += (size_t)snprintf(key + n, sizeof(key) - n, "%s%s", k ? ", " : "",
                                  t->declared->cols[t->declared->key_cols[k]].name);
    }
    return plan_err(pc, location, TM_EUNSUPPORTED,
                    "'%s' is a lookup table (connector '%s', lookup = true): it is read by key "
                    "when a stream's row needs it, never streamed itself, so %s; join it to a "
                    "stream on its whole PRIMARY KEY (%s): FROM <source> s [LEFT] JOIN %s d ON "
                    "s.<column> = d.<key column> …",
                    t->name, t->conn->name, how, key, t->name);
}

static int plan_lookup_join(pctx_t *pc, const tm_bound_from_t *f, tm_plan_node_t **out)
{
    tm_plan_t *plan = pc->plan;
    bool dim_left = is_lookup_leaf(pc, f->left);
    const tm_bound_from_t *D = dim_left ? f->left : f->right;
    const tm_bound_from_t *P = dim_left ? f->right : f->left;
    const tm_job_table_t *t = &plan->job->tables[D->table];
    if (is_lookup_leaf(pc, P))
        return plan_err(pc, f->location, TM_EUNSUPPORTED,
                        "this join reads two lookup tables ('%s' and '%s'); a lookup join "
                        "enriches a stream: join one of them to a source first",
                        plan->job->tables[f->left->table].name,
                        plan->job->tables[f->right->table].name);
    bool probe_outer = false;
    switch (f->kind) {
    case TM_BOUND_INNER:
        break;
    case TM_BOUND_LEFT:
    case TM_BOUND_RIGHT:
        if ((f->kind == TM_BOUND_LEFT) == dim_left)
            return lookup_misuse(pc, D->location, t,
                                 "it cannot be the preserved side of an outer join (a table "
                                 "that is never scanned has no unmatched rows to emit); put it "
                                 "on the right of the LEFT JOIN");
        probe_outer = true;
        break;
    case TM_BOUND_FULL:
        return lookup_misuse(pc, D->location, t,
                             "it cannot be a side of a FULL JOIN (a table that is never scanned "
                             "has no unmatched rows to emit); use INNER or LEFT JOIN with it on "
                             "the right");
    default:
        return lookup_misuse(pc, D->location, t,
                             "it cannot be the subquery of EXISTS or IN; join it instead (LEFT "
                             "JOIN … WHERE d.<key> IS NOT NULL keeps the rows that have a match)");
    }
    const tm_schema_t *decl = t->declared;
    if (decl == NULL || decl->nkeys == 0)
        return plan_err(pc, D->location, TM_ESQL,
                        "lookup table '%s' must declare its columns and PRIMARY KEY", t->name);
    const int *dkeys = dim_left ? f->left_keys : f->right_keys;
    const int *pkeys = dim_left ? f->right_keys : f->left_keys;
    int nraw = D->raw->ncols;
    int nk = decl->nkeys;
    int *probe_keys = calloc((size_t)nk, sizeof(int));
    int *key_cols = calloc((size_t)nk, sizeof(int));
    tm_expr_t **extra = calloc((size_t)f->nkeys + 2, sizeof(*extra));
    int nextra = 0;
    if (probe_keys == NULL || key_cols == NULL || extra == NULL) {
        free(probe_keys);
        free(key_cols);
        free(extra);
        return TM_ENOMEM;
    }
    for (int k = 0; k < nk; k++)
        probe_keys[k] = key_cols[k] = -1;
    int rc = 0;
    int nl = f->left->schema->ncols;
    int doff = dim_left ? 0 : nl, poff = dim_left ? nl : 0;
    for (int i = 0; rc == 0 && i < f->nkeys; i++) {
        int dc = dkeys[i] < nraw ? dkeys[i] : tm_expr_cast_column(D->ext[dkeys[i] - nraw]);
        int slot = -1;
        for (int k = 0; dc >= 0 && k < nk; k++)
            if (decl->key_cols[k] == dc && probe_keys[k] < 0)
                slot = k;
        if (slot >= 0) {
            probe_keys[slot] = pkeys[i];
            key_cols[slot] = dc;
            continue;
        }
        /* Not (another) primary-key column: an equality checked on the fetched row. */
        const tm_schema_t *js = f->raw;
        int a = poff + pkeys[i], b = doff + dkeys[i];
        tm_expr_type_t ta, tb;
        tm_expr_type_from_column(&js->cols[a], &ta);
        tm_expr_type_from_column(&js->cols[b], &tb);
        char err[512];
        tm_expr_t *ea = tm_expr_column(plan->pool, a, &ta, js->cols[a].name);
        tm_expr_t *eb = tm_expr_column(plan->pool, b, &tb, js->cols[b].name);
        if (ea == NULL || eb == NULL ||
            tm_expr_operator(plan->pool, "=", ea, eb, &extra[nextra], err, sizeof(err)) != 0)
            rc = plan_err(pc, f->location, TM_ESQL, "lookup join with '%s': %s", t->name,
                          ea && eb ? err : "out of memory");
        else
            nextra++;
    }
    for (int k = 0; rc == 0 && k < nk; k++)
        if (probe_keys[k] < 0) {
            char want[256];
            size_t n = 0;
            for (int j = 0; j < nk && n < sizeof(want); j++)
                n += (size_t)snprintf(want + n, sizeof(want) - n, "%s%s", j ? ", " : "",
                                      decl->cols[decl->key_cols[j]].name);
            rc = plan_err(pc, f->location, TM_EUNSUPPORTED,
                          "a join with lookup table '%s' needs an equality for every column of "
                          "its PRIMARY KEY (%s), because the table is read by that key; \"%s\" "
                          "has none: add ON … AND %s.%s = <expression of the other side>",
                          t->name, want, decl->cols[decl->key_cols[k]].name, D->name,
                          decl->cols[decl->key_cols[k]].name);
        }
    tm_plan_node_t *in = NULL;
    if (rc == 0)
        rc = plan_from(pc, P, &in);
    tm_expr_t *residual = f->residual;
    if (rc == 0 && nextra > 0) {
        char err[512];
        if (residual != NULL)
            extra[nextra++] = residual;
        if (nextra == 1)
            residual = extra[0];
        else if (tm_expr_and(plan->pool, extra, nextra, &residual, err, sizeof(err)) != 0)
            rc = plan_err(pc, f->location, TM_ESQL, "lookup join with '%s': %s", t->name, err);
    }
    free(extra);
    tm_plan_node_t *n = NULL;
    if (rc == 0 && (n = node_add(plan, TM_PLAN_LOOKUP_JOIN, in, pc->insert)) == NULL)
        rc = TM_ENOMEM;
    if (rc != 0) {
        free(probe_keys);
        free(key_cols);
        return rc;
    }
    n->table = D->table;
    n->lookup_probe_keys = probe_keys;
    n->lookup_key_cols = key_cols;
    pc->nlookup++;
    n->uid = tm_asprintf("lookup/%s/%d-%s", pc->sink_name, pc->nlookup, t->name);
    n->schema = tm_schema_clone(f->raw);
    /* The probe keys' types (the binder cast both sides of each pair to one type). */
    n->lookup_key_schema = tm_schema_new(nk);
    if (D->next > 0)
        n->lookup_ext = calloc((size_t)D->next, sizeof(*n->lookup_ext));
    if (n->uid == NULL || n->schema == NULL || set_identity(pc, n->schema) != 0 ||
        n->lookup_key_schema == NULL || (D->next > 0 && n->lookup_ext == NULL))
        return TM_ENOMEM;
    for (int k = 0; k < nk; k++) {
        const tm_column_t *pcol = &P->schema->cols[probe_keys[k]];
        tm_column_t *c = &n->lookup_key_schema->cols[k];
        tm_schema_set_str(&c->name, pcol->name);
        c->type = pcol->type;
        c->elem_type = pcol->elem_type;
        c->precision = pcol->precision;
        c->scale = pcol->scale;
        c->nullable = true;
    }
    if (tm_schema_finish(n->lookup_key_schema) != 0)
        return TM_EINVAL;
    for (int e = 0; e < D->next; e++)
        n->lookup_ext[e] = D->ext[e];
    tm_lookup_join_spec_t *ls = &n->lookup;
    ls->type = probe_outer ? TM_JOIN_LEFT : TM_JOIN_INNER;
    ls->dim_left = dim_left;
    ls->in_schema = in->schema; /* a join side always has declared columns (bind.c) */
    ls->probe_keys = n->lookup_probe_keys;
    ls->conn = t->conn;
    ls->lookup.name = t->name;
    ls->lookup.opts = t->opts;
    ls->lookup.declared = decl;
    ls->lookup.key_cols = n->lookup_key_cols;
    ls->lookup.key_schema = n->lookup_key_schema;
    ls->lookup.nkeys = nk;
    ls->lookup.job = plan->job_name;
    n->lookup_dim_schema = tm_schema_ref(D->schema);
    ls->dim_schema = n->lookup_dim_schema;
    ls->dim_ext = (const tm_expr_t *const *)n->lookup_ext;
    ls->ndim_ext = D->next;
    ls->dim_filter = D->filter;
    ls->residual = residual;
    ls->out_schema = n->schema;
    ls->cache_rows = tm_opt_int(t->opts, "lookup_cache_rows");
    ls->ttl_us = tm_opt_duration_ms(t->opts, "lookup_ttl") * 1000;
    ls->cache_missing = tm_opt_bool(t->opts, "lookup_caching_missing_keys");
    /* Processing time: no exchange, no state; the input's mode and key go through. */
    n->mode = in->mode;
    n->before_images = in->before_images;
    n->exchange = TM_EXCHANGE_FORWARD;
    n->parallelism = in->parallelism;
    n->stateful = false;
    if (in->key != NULL && in->nkey > 0) {
        n->key = malloc(sizeof(int) * (size_t)in->nkey);
        if (n->key == NULL)
            return TM_ENOMEM;
        for (int k = 0; k < in->nkey; k++)
            n->key[k] = poff + in->key[k];
        n->nkey = in->nkey;
    }
    if (set_schema_key(n->schema, n->key, n->nkey) != 0)
        return TM_EINVAL;
    *out = n;
    return 0;
}

/*
 * True when every change of one value of n's unique key comes out of one
 * producer subtask, in order: a join may then keep that input in a
 * unique-key view, which retracts the *stored* row of a key and replaces it
 * on insert.  A join's output is produced on the subtask of its join key, so
 * a row whose join key changed (an order moved to another customer) leaves
 * its retraction on one subtask and its new image on another, and the two
 * can reach the next operator in either order; a unique-key view would then
 * let the late retraction delete the new row.  A multiset view retracts the
 * exact row, whatever the order, so such inputs get one.  Independent of the
 * parallelism, so the state layout survives a rescale.
 */
bool tm_plan_key_ordered(const tm_plan_node_t *n)
{
    switch (n->kind) {
    case TM_PLAN_SCAN:
    case TM_PLAN_UPSERT:
    case TM_PLAN_GROUP_AGG:
    case TM_PLAN_WINDOW_AGG:
        return true; /* keyed by a source's key, or partitioned by the group key */
    case TM_PLAN_CALC:
    case TM_PLAN_LOOKUP_JOIN:
        return tm_plan_key_ordered(n->input); /* forward: the input's order */
    case TM_PLAN_JOIN: {
        if (!tm_plan_key_ordered(n->input) || !tm_plan_key_ordered(n->input2))
            return false;
        if (n->exchange == TM_EXCHANGE_SINGLE)
            return true; /* one subtask */
        if (n->key == NULL || n->nkey <= 0)
            return false;
        /* The partitioning (join key) columns must be part of the unique key. */
        int nl = n->input->schema != NULL ? n->input->schema->ncols : 0;
        bool left = true, right = n->join.type != TM_JOIN_SEMI && n->join.type != TM_JOIN_ANTI;
        for (int k = 0; k < n->join.nkeys; k++) {
            bool lin = false, rin = false;
            for (int i = 0; i < n->nkey; i++) {
                lin |= n->key[i] == n->join.left_keys[k];
                rin |= n->key[i] == nl + n->join.right_keys[k];
            }
            left &= lin;
            right &= rin;
        }
        return left || right;
    }
    case TM_PLAN_TOPN:
        /* By rank, the output key holds the partition key: one subtask per key value. */
        return n->topn.rank_number && n->key != NULL && n->nkey > 0 &&
               tm_plan_key_ordered(n->input);
    default:
        return false;
    }
}

/*
 * An interval join (plan.h, IntervalJoin): both inputs insert-only, the
 * time bounds found by the binder.  Its uid counts as a join's.
 */
static int plan_interval_join(pctx_t *pc, const tm_bound_from_t *f, tm_plan_node_t *l,
                              tm_plan_node_t *r, tm_plan_node_t **out)
{
    tm_plan_node_t *n = node_add(pc->plan, TM_PLAN_INTERVAL_JOIN, l, pc->insert);
    if (n == NULL)
        return TM_ENOMEM;
    n->input2 = r;
    pc->njoin++;
    tm_interval_join_spec_t *s = &n->ij;
    s->type = join_type_of(f->kind);
    uint32_t h = 2166136261u;
    char buf[256], tn[64];
    h = fnv(h, "interval");
    h = fnv(h, tm_plan_join_type_name(s->type));
    const tm_schema_t *sides[2] = {l->schema, r->schema};
    for (int k = 0; k < 2; k++) {
        for (int i = 0; sides[k] && i < sides[k]->ncols; i++) {
            tm_expr_type_t t;
            tm_expr_type_from_column(&sides[k]->cols[i], &t);
            h = fnv(h, sides[k]->cols[i].name);
            h = fnv(h, tm_expr_type_name(&t, tn, sizeof(tn)));
        }
        h = fnv(h, "|");
    }
    for (int k = 0; k < f->nkeys; k++) {
        snprintf(buf, sizeof(buf), "%d=%d", f->left_keys[k], f->right_keys[k]);
        h = fnv(h, buf);
    }
    snprintf(buf, sizeof(buf), "t%d/%d/%lld/%lld", f->time_left, f->time_right,
             (long long)f->lower_us, (long long)f->upper_us);
    h = fnv(h, buf);
    n->uid = tm_asprintf("join/%s/%d-%08x", pc->sink_name, pc->njoin, h);
    n->schema = tm_schema_clone(f->raw);
    n->join_left_keys = int_dup(f->left_keys, f->nkeys);
    n->join_right_keys = int_dup(f->right_keys, f->nkeys);
    if (n->uid == NULL || n->schema == NULL || set_identity(pc, n->schema) != 0 ||
        n->join_left_keys == NULL || n->join_right_keys == NULL)
        return TM_ENOMEM;
    s->left_schema = l->schema;
    s->right_schema = r->schema;
    s->left_keys = n->join_left_keys;
    s->right_keys = n->join_right_keys;
    s->nkeys = f->nkeys;
    s->left_time = f->time_left;
    s->right_time = f->time_right;
    s->lower_us = f->lower_us;
    s->upper_us = f->upper_us;
    s->residual = f->interval_rest;
    s->out_schema = n->schema;
    n->mode = TM_MODE_INSERT_ONLY;
    n->before_images = true; /* vacuously: it emits no updates or deletes */
    n->stateful = true;
    n->exchange = TM_EXCHANGE_HASH;
    n->exchange_cols = int_dup(f->left_keys, f->nkeys);
    n->nexchange = f->nkeys;
    n->parallelism = pc->plan->parallelism;
    if (set_schema_key(n->schema, NULL, 0) != 0)
        return TM_EINVAL;
    *out = n;
    return 0;
}

static int plan_join(pctx_t *pc, const tm_bound_from_t *f, tm_plan_node_t **out)
{
    tm_plan_t *plan = pc->plan;
    tm_plan_node_t *l = NULL, *r = NULL;
    if (is_lookup_leaf(pc, f->left) || is_lookup_leaf(pc, f->right))
        return plan_lookup_join(pc, f, out);
    int rc = plan_from(pc, f->left, &l);
    if (rc == 0)
        rc = plan_from(pc, f->right, &r);
    if (rc != 0)
        return rc;
    if (f->interval && f->lower_us <= f->upper_us && l->mode == TM_MODE_INSERT_ONLY &&
        r->mode == TM_MODE_INSERT_ONLY)
        return plan_interval_join(pc, f, l, r, out);
    if (!l->before_images || !r->before_images)
        return plan_err(pc, f->location, TM_EUNSUPPORTED,
                        "a join needs changelogs whose updates carry their before images; "
                        "declare the sources' PRIMARY KEY");
    tm_plan_node_t *n = node_add(plan, TM_PLAN_JOIN, l, pc->insert);
    if (n == NULL)
        return TM_ENOMEM;
    n->input2 = r;
    pc->njoin++;
    tm_join_spec_t *js = &n->join;
    js->type = join_type_of(f->kind);
    /* The fingerprint: what the state means (type, keys, residual, both layouts). */
    uint32_t h = 2166136261u;
    char buf[4096], tn[64];
    h = fnv(h, tm_plan_join_type_name(js->type));
    const tm_schema_t *sides[2] = {l->schema, r->schema};
    for (int s = 0; s < 2; s++) {
        for (int i = 0; sides[s] && i < sides[s]->ncols; i++) {
            tm_expr_type_t t;
            tm_expr_type_from_column(&sides[s]->cols[i], &t);
            h = fnv(h, sides[s]->cols[i].name);
            h = fnv(h, tm_expr_type_name(&t, tn, sizeof(tn)));
        }
        h = fnv(h, "|");
    }
    for (int k = 0; k < f->nkeys; k++) {
        snprintf(buf, sizeof(buf), "%d=%d", f->left_keys[k], f->right_keys[k]);
        h = fnv(h, buf);
    }
    if (f->residual != NULL) {
        tm_expr_format(f->residual, NULL, buf, sizeof(buf));
        h = fnv(h, buf);
    }
    h = fnv(h, f->null_aware ? "null-aware" : "");
    /* Each side's state view is part of what the state means (tm_plan_key_ordered). */
    bool luk = l->key != NULL && l->nkey > 0 && tm_plan_key_ordered(l);
    bool ruk = r->key != NULL && r->nkey > 0 && tm_plan_key_ordered(r);
    h = fnv(h, luk ? "left:unique" : "left:multiset");
    h = fnv(h, ruk ? "right:unique" : "right:multiset");
    n->uid = tm_asprintf("join/%s/%d-%08x", pc->sink_name, pc->njoin, h);
    n->schema = tm_schema_clone(f->raw);
    n->join_left_keys = int_dup(f->left_keys, f->nkeys);
    n->join_right_keys = int_dup(f->right_keys, f->nkeys);
    if (n->uid == NULL || n->schema == NULL || set_identity(pc, n->schema) != 0 ||
        (f->nkeys > 0 && (n->join_left_keys == NULL || n->join_right_keys == NULL)))
        return TM_ENOMEM;
    if (luk)
        n->join_left_uk = int_dup(l->key, l->nkey);
    if (ruk)
        n->join_right_uk = int_dup(r->key, r->nkey);
    js->left_schema = l->schema;
    js->right_schema = r->schema;
    js->left_keys = n->join_left_keys;
    js->right_keys = n->join_right_keys;
    js->nkeys = f->nkeys;
    js->left_uk = n->join_left_uk;
    js->nleft_uk = n->join_left_uk ? l->nkey : 0;
    js->right_uk = n->join_right_uk;
    js->nright_uk = n->join_right_uk ? r->nkey : 0;
    js->residual = f->residual;
    js->null_aware = f->null_aware;
    n->interval_as_join = f->interval;
    if (f->interval) {
        /* For explain: the bounds the residual holds. */
        n->ij.left_time = f->time_left;
        n->ij.right_time = f->time_right;
        n->ij.lower_us = f->lower_us;
        n->ij.upper_us = f->upper_us;
    }
    js->out_schema = n->schema;
    n->mode = TM_MODE_RETRACT;
    n->before_images = true;
    n->stateful = true;
    /* The output's unique key (plan.h, Join). */
    int nl = l->schema->ncols;
    bool semi = js->type == TM_JOIN_SEMI || js->type == TM_JOIN_ANTI;
    bool r_one = key_within(js->right_uk, js->nright_uk, js->right_keys, js->nkeys);
    bool l_one = key_within(js->left_uk, js->nleft_uk, js->left_keys, js->nkeys);
    if (semi || (r_one && (js->type == TM_JOIN_INNER || js->type == TM_JOIN_LEFT))) {
        n->key = int_dup(js->left_uk, js->nleft_uk);
        n->nkey = n->key ? js->nleft_uk : 0;
    } else if (l_one && (js->type == TM_JOIN_INNER || js->type == TM_JOIN_RIGHT)) {
        n->key = malloc(sizeof(int) * (size_t)js->nright_uk);
        for (int k = 0; n->key && k < js->nright_uk; k++)
            n->key[k] = nl + js->right_uk[k];
        n->nkey = n->key ? js->nright_uk : 0;
    } else if (js->nleft_uk > 0 && js->nright_uk > 0) {
        n->key = malloc(sizeof(int) * (size_t)(js->nleft_uk + js->nright_uk));
        for (int k = 0; n->key && k < js->nleft_uk; k++)
            n->key[k] = js->left_uk[k];
        for (int k = 0; n->key && k < js->nright_uk; k++)
            n->key[js->nleft_uk + k] = nl + js->right_uk[k];
        n->nkey = n->key ? js->nleft_uk + js->nright_uk : 0;
    }
    if (js->null_aware) {
        /* NOT IN's NULL rule needs every row of both sides: one subtask (join.h). */
        n->exchange = TM_EXCHANGE_SINGLE;
        n->parallelism = 1;
    } else {
        n->exchange = TM_EXCHANGE_HASH;
        n->exchange_cols = int_dup(js->left_keys, js->nkeys);
        n->nexchange = js->nkeys;
        n->parallelism = plan->parallelism;
    }
    if (set_schema_key(n->schema, n->key, n->nkey) != 0)
        return TM_EINVAL;
    *out = n;
    return 0;
}

/* A FROM item: its table, view, subquery or join, then its pre-join filter and computed keys. */
static int plan_from(pctx_t *pc, const tm_bound_from_t *f, tm_plan_node_t **out)
{
    tm_plan_node_t *n = NULL;
    int rc = 0;
    if (is_lookup_leaf(pc, f))
        return lookup_misuse(pc, f->location, &pc->plan->job->tables[f->table],
                             "it cannot be read on its own here");
    if (f->kind != TM_BOUND_LEAF)
        rc = plan_join(pc, f, &n);
    else if (f->sub != NULL)
        rc = plan_query(pc, f->sub, false, &n);
    else if ((n = plan_table(pc, f->table, false)) == NULL)
        rc = TM_ENOMEM;
    if (rc != 0)
        return rc;
    if (f->filter != NULL || f->next > 0) {
        int m = f->raw->ncols + f->next;
        tm_expr_t **v = calloc((size_t)m, sizeof(*v));
        if (v == NULL)
            return TM_ENOMEM;
        for (int i = 0; i < f->raw->ncols; i++) {
            tm_expr_type_t t;
            tm_expr_type_from_column(&f->raw->cols[i], &t);
            v[i] = tm_expr_column(pc->plan->pool, i, &t, f->raw->cols[i].name);
            if (v[i] == NULL)
                rc = TM_ENOMEM;
        }
        for (int k = 0; k < f->next; k++)
            v[f->raw->ncols + k] = f->ext[k];
        /* The producer's own schema object, so the calc never remaps by name (see plan_query). */
        tm_schema_t *in_schema = n->schema != NULL && n->schema->ncols == f->raw->ncols
                                     ? n->schema
                                     : f->raw;
        if (rc == 0)
            n = plan_calc(pc, n, in_schema, f->filter, v, m, f->schema, "pre-join");
        free(v);
        if (rc != 0 || n == NULL)
            return rc ? rc : TM_ENOMEM;
    }
    *out = n;
    return 0;
}

/* ---- Top-N ---- */

/* `s` without column `drop`. */
static tm_schema_t *schema_without(const tm_schema_t *s, int drop)
{
    tm_schema_t *d = tm_schema_new(s->ncols - 1);
    if (d == NULL)
        return NULL;
    for (int i = 0, j = 0; i < s->ncols; i++) {
        if (i == drop)
            continue;
        const tm_column_t *c = &s->cols[i];
        tm_column_t *o = &d->cols[j++];
        tm_schema_set_str(&o->name, c->name);
        o->type = c->type;
        o->elem_type = c->elem_type;
        o->precision = c->precision;
        o->scale = c->scale;
        o->nullable = c->nullable;
        o->key_index = -1;
    }
    if (tm_schema_finish(d) != 0)
        return tm_schema_unref(d), NULL;
    return d;
}

/*
 * The window column (TM_WINDOW_COL_START/END/TIME) that column `col` of
 * node `n` is, followed through calcs that project it bare to the window
 * aggregation or window TVF that made it; 0 when it is not one.
 */
static int window_col_of(const tm_plan_node_t *n, int col)
{
    while (n != NULL && n->kind == TM_PLAN_CALC) {
        if (col < 0 || col >= n->calc.nexprs)
            return 0;
        col = tm_expr_column_index(n->calc_exprs[col]);
        n = n->input;
    }
    if (n != NULL && n->kind == TM_PLAN_WINDOW_TVF) {
        int first = n->wtvf.win.in_schema->ncols;
        return col == first       ? TM_WINDOW_COL_START
               : col == first + 1 ? TM_WINDOW_COL_END
               : col == first + 2 ? TM_WINDOW_COL_TIME
                                  : 0;
    }
    if (n == NULL || n->kind != TM_PLAN_WINDOW_AGG || col < 0 || col >= n->win.ngroup)
        return 0;
    return n->win_out_cols[col] < 0 ? n->win_out_cols[col] : 0;
}

/*
 * A ranked query (q->rank): a calc computes every select-list item but the
 * rank, then TopN ranks its rows and puts the rank column back at its place
 * (plan.h, TopN).
 */
static int plan_topn(pctx_t *pc, tm_plan_node_t *in, tm_schema_t *in_schema,
                     const tm_bound_query_t *q, tm_plan_node_t **out)
{
    tm_plan_t *plan = pc->plan;
    const tm_bound_rank_t *rk = q->rank;
    if (rk->limit < 1)
        return plan_err(pc, rk->location, TM_EUNSUPPORTED,
                        "row_number() needs a filter on it where the subquery is read: WHERE "
                        "rn <= N, rn < N or rn = 1 (Top-N)");
    if (!in->before_images)
        return plan_err(pc, rk->location, TM_EUNSUPPORTED,
                        "Top-N needs a changelog whose updates carry their before images; "
                        "declare the source's PRIMARY KEY");
    /* The select list without the rank, then the hidden PARTITION BY / ORDER BY columns. */
    int nt = q->ntargets - 1, nv = nt + rk->nhidden;
    tm_expr_t **v = calloc((size_t)nv + 1, sizeof(*v));
    tm_schema_t *vis = schema_without(q->out_schema, rk->target);
    tm_schema_t *pre_schema = vis ? tm_schema_new(nv) : NULL;
    if (v == NULL || pre_schema == NULL) {
        free(v);
        tm_schema_unref(vis);
        tm_schema_unref(pre_schema);
        return TM_ENOMEM;
    }
    for (int i = 0, j = 0; i < q->ntargets; i++)
        if (i != rk->target)
            v[j++] = q->targets[i];
    for (int h = 0; h < rk->nhidden; h++)
        v[nt + h] = rk->hidden[h];
    for (int i = 0; i < nv; i++) {
        tm_column_t *o = &pre_schema->cols[i];
        if (i < nt) {
            const tm_column_t *c = &vis->cols[i];
            tm_schema_set_str(&o->name, c->name);
            o->type = c->type;
            o->elem_type = c->elem_type;
            o->precision = c->precision;
            o->scale = c->scale;
            o->nullable = c->nullable;
        } else {
            char nm[32];
            snprintf(nm, sizeof(nm), "$rank%d", i - nt + 1);
            tm_schema_set_str(&o->name, nm);
            tm_expr_type_to_column(tm_expr_type(v[i]), o);
            o->nullable = !tm_expr_not_null(v[i]);
        }
        o->key_index = -1;
    }
    tm_schema_unref(vis);
    if (tm_schema_finish(pre_schema) != 0) {
        free(v);
        tm_schema_unref(pre_schema);
        return TM_EINVAL;
    }
    tm_plan_node_t *pre = plan_calc(pc, in, in_schema, q->where, v, nv, pre_schema, "pre-rank");
    free(v);
    tm_schema_unref(pre_schema);
    if (pre == NULL)
        return TM_ENOMEM;
    tm_plan_node_t *n = node_add(plan, TM_PLAN_TOPN, pre, pc->insert);
    if (n == NULL)
        return TM_ENOMEM;
    pc->ntopn++;
    /* A select-list item's column in the calc's output (the rank's item is not there). */
#define PRE_COL(t) ((t) < rk->target ? (t) : (t) - 1)
    n->topn_part = calloc((size_t)rk->npart + 1, sizeof(int));
    n->topn_order = calloc((size_t)rk->norder + 1, sizeof(int));
    n->topn_desc = calloc((size_t)rk->norder + 1, sizeof(bool));
    n->topn_nulls_first = calloc((size_t)rk->norder + 1, sizeof(bool));
    n->schema = tm_schema_clone(q->out_schema);
    if (n->topn_part == NULL || n->topn_order == NULL || n->topn_desc == NULL ||
        n->topn_nulls_first == NULL || n->schema == NULL || set_identity(pc, n->schema) != 0)
        return TM_ENOMEM;
    for (int i = 0; i < rk->npart; i++)
        n->topn_part[i] = PRE_COL(rk->part_targets[i]);
    for (int i = 0; i < rk->norder; i++) {
        n->topn_order[i] = PRE_COL(rk->order_targets[i]);
        const tm_column_t *c = &pre->schema->cols[n->topn_order[i]];
        if (!tm_topn_orderable(c->type))
            return plan_err(pc, rk->location, TM_EUNSUPPORTED,
                            "Top-N cannot order by a column of type %s (\"%s\")",
                            tm_type_name(c->type), c->name);
        n->topn_desc[i] = rk->desc[i];
        n->topn_nulls_first[i] = rk->nulls_first[i];
    }
    /* The fingerprint: what the state means (partition, order, N, mode, input layout). */
    uint32_t h = 2166136261u;
    char buf[256], tn[64];
    for (int i = 0; pre->schema && i < pre->schema->ncols; i++) {
        tm_expr_type_t t;
        tm_expr_type_from_column(&pre->schema->cols[i], &t);
        h = fnv(h, pre->schema->cols[i].name);
        h = fnv(h, tm_expr_type_name(&t, tn, sizeof(tn)));
    }
    for (int i = 0; i < rk->npart; i++) {
        snprintf(buf, sizeof(buf), "p%d", n->topn_part[i]);
        h = fnv(h, buf);
    }
    for (int i = 0; i < rk->norder; i++) {
        snprintf(buf, sizeof(buf), "o%d/%d/%d", n->topn_order[i], n->topn_desc[i],
                 n->topn_nulls_first[i]);
        h = fnv(h, buf);
    }
    bool append_only = pre->mode == TM_MODE_INSERT_ONLY;
    /*
     * Window Top-N (Flink's WindowRank): an insert-only input partitioned by
     * window_start and window_end of a window aggregation; the window's top
     * N is final once the watermark passes its end, so it is emitted once.
     */
    int end_col = -1;
    bool has_start = false;
    for (int i = 0; append_only && i < rk->npart; i++) {
        int w = window_col_of(pre, n->topn_part[i]);
        has_start |= w == TM_WINDOW_COL_START;
        if (w == TM_WINDOW_COL_END)
            end_col = n->topn_part[i];
    }
    n->windowed = has_start && end_col >= 0;
    snprintf(buf, sizeof(buf), "n%lld/%d/%d%s", (long long)rk->limit, rk->rank_used, append_only,
             n->windowed ? "/window" : "");
    h = fnv(h, buf);
    n->uid = tm_asprintf("topn/%s/%d-%08x", pc->sink_name, pc->ntopn, h);
    if (n->uid == NULL)
        return TM_ENOMEM;
    tm_topn_spec_t *ts = &n->topn;
    ts->in_schema = pre->schema;
    ts->part_cols = n->topn_part;
    ts->npart = rk->npart;
    ts->order_cols = n->topn_order;
    ts->order_desc = n->topn_desc;
    ts->nulls_first = n->topn_nulls_first;
    ts->norder = rk->norder;
    ts->limit = rk->limit;
    ts->rn_col = rk->target;
    ts->rank_number = rk->rank_used;
    ts->append_only = append_only;
    ts->nhidden = rk->nhidden;
    ts->out_schema = n->schema;
    n->mode = n->windowed ? TM_MODE_INSERT_ONLY : TM_MODE_RETRACT;
    n->before_images = true;
    n->stateful = true;
    bool part_visible = true, key_visible = pre->key != NULL && pre->nkey > 0;
    for (int i = 0; i < rk->npart; i++)
        part_visible &= rk->part_targets[i] < q->ntargets;
    for (int i = 0; key_visible && i < pre->nkey; i++)
        key_visible = pre->key[i] < nt;
    if (rk->rank_used && part_visible) {
        /* Unique on (partition columns, rn): one row per rank of a partition. */
        n->key = calloc((size_t)rk->npart + 1, sizeof(int));
        if (n->key == NULL)
            return TM_ENOMEM;
        for (int i = 0; i < rk->npart; i++)
            n->key[i] = rk->part_targets[i];
        n->key[rk->npart] = rk->target;
        n->nkey = rk->npart + 1;
    } else if (!rk->rank_used && key_visible) {
        n->key = malloc(sizeof(int) * (size_t)pre->nkey);
        if (n->key == NULL)
            return TM_ENOMEM;
        for (int i = 0; i < pre->nkey; i++)
            n->key[i] = pre->key[i] < rk->target ? pre->key[i] : pre->key[i] + 1;
        n->nkey = pre->nkey;
    }
#undef PRE_COL
    if (rk->npart > 0) {
        n->exchange = TM_EXCHANGE_HASH;
        n->exchange_cols = int_dup(n->topn_part, rk->npart);
        n->nexchange = rk->npart;
        n->parallelism = plan->parallelism;
    } else {
        n->exchange = TM_EXCHANGE_SINGLE;
        n->parallelism = 1;
    }
    if (set_schema_key(n->schema, n->key, n->nkey) != 0)
        return TM_EINVAL;
    if (n->windowed) {
        n->wrank.topn = *ts;
        n->wrank.topn.rank_number = true; /* inserts only: every row can carry its rank */
        n->wrank.end_col = end_col;
    }
    *out = n;
    return 0;
}

/* ---- queries ---- */

static int plan_input(pctx_t *pc, const tm_bound_query_t *q, bool force_upsert,
                      tm_plan_node_t **out)
{
    if (q->sub != NULL)
        return plan_query(pc, q->sub, force_upsert, out);
    if (pc->plan->job->tables[q->table].role & TM_ROLE_LOOKUP)
        return lookup_misuse(pc, q->location, &pc->plan->job->tables[q->table],
                             "it cannot be scanned (FROM it alone, or in a subquery)");
    *out = plan_table(pc, q->table, force_upsert);
    return *out ? 0 : TM_ENOMEM;
}

static int plan_window(pctx_t *pc, const tm_bound_query_t *q, tm_plan_node_t *in,
                       tm_plan_node_t **out);
static int plan_window_tvf(pctx_t *pc, const tm_bound_query_t *q, tm_plan_node_t *in,
                           tm_plan_node_t **out);

/*
 * SET late_data_sink: the window aggregation n writes its late rows to that
 * table (plan.h, WindowAgg).  A table with declared columns must declare
 * exactly the late rows' columns (tm_window_agg_late_schema), in order and
 * with their types, and no primary key (the rows are inserts only).
 */
static int plan_late_sink(pctx_t *pc, tm_plan_node_t *n)
{
    const tm_job_t *job = pc->plan->job;
    const char *late = tm_options_lookup(job->settings, "late_data_sink");
    int li = late != NULL ? tm_job_find_table(job, late) : -1;
    if (li < 0)
        return 0;
    tm_schema_t *ls = tm_window_agg_late_schema(&n->win);
    if (ls == NULL)
        return TM_ENOMEM;
    tm_schema_set_str(&ls->source_name, "tidemark");
    tm_schema_set_str(&ls->namespace, pc->plan->job_name);
    tm_schema_set_str(&ls->table, late);
    ls->full_identity = true;
    n->win.late_schema = ls;
    n->late_table = li;
    if (ls->source_name == NULL || ls->namespace == NULL || ls->table == NULL)
        return TM_ENOMEM;
    const tm_schema_t *d = job->tables[li].declared;
    if (d == NULL)
        return 0;
    char want[1024] = "";
    for (int i = 0; i < ls->ncols; i++) {
        size_t len = strlen(want);
        snprintf(want + len, sizeof(want) - len, "%s%s %s", i ? ", " : "", ls->cols[i].name,
                 tm_expr_sql_type_name(ls->cols[i].type));
    }
    bool same = d->ncols == ls->ncols && d->nkeys == 0;
    for (int i = 0; same && i < d->ncols; i++)
        same = strcmp(d->cols[i].name, ls->cols[i].name) == 0 &&
               d->cols[i].type == ls->cols[i].type;
    if (!same)
        return tm_seterr(pc->errstr, pc->errstr_size, TM_ESQL,
                         "%s:%d: table '%s' is the late_data_sink of window aggregation %s, whose "
                         "late rows have the columns (%s) and no primary key; declare exactly "
                         "those, or declare the table with () to take them as they come",
                         job->path, job->tables[li].line, late, n->uid, want);
    return 0;
}

static int plan_query(pctx_t *pc, const tm_bound_query_t *q, bool force_upsert,
                      tm_plan_node_t **out)
{
    tm_plan_node_t *in = NULL;
    int rc = q->from != NULL ? plan_from(pc, q->from, &in)
                             : plan_input(pc, q, force_upsert && q->passthrough, &in);
    if (rc != 0)
        return rc;
    if (q->passthrough) {
        *out = in;
        return 0;
    }
    /*
     * A calc remaps a row whose schema is not its in_schema by column name
     * (calc.c), and a join's layout may name two columns alike (o.id, c.id):
     * after a join the calc reads the join's own output schema.
     */
    tm_schema_t *in_schema = q->from != NULL && in->schema != NULL ? in->schema : q->in_schema;
    if (q->window != NULL && !q->grouped && q->rank != NULL) {
        /* A window Top-N over the TVF itself: its WHERE runs in the TVF's calc. */
        tm_bound_query_t rq = *q;
        rq.where = NULL;
        if ((rc = plan_window_tvf(pc, q, in, &in)) != 0)
            return rc;
        return plan_topn(pc, in, in->schema, &rq, out);
    }
    if (q->rank != NULL)
        return plan_topn(pc, in, in_schema, q, out);
    if (!q->grouped) {
        *out = plan_calc(pc, in, in_schema, q->where, q->targets, q->ntargets, q->out_schema,
                         "project");
        return *out ? 0 : TM_ENOMEM;
    }
    if (!in->before_images)
        return plan_err(pc, q->location, TM_EUNSUPPORTED,
                        "an aggregation needs a changelog whose updates carry their before "
                        "images; declare the source's PRIMARY KEY");
    if (q->window != NULL)
        return plan_window(pc, q, in, out);
    /* The pre-aggregation layout: group keys, then aggregate arguments. */
    tm_schema_t *pre_schema = tm_schema_new(q->npre);
    if (pre_schema == NULL)
        return TM_ENOMEM;
    for (int i = 0; i < q->npre; i++) {
        tm_schema_set_str(&pre_schema->cols[i].name, q->pre_names[i]);
        tm_expr_type_to_column(tm_expr_type(q->pre_exprs[i]), &pre_schema->cols[i]);
        pre_schema->cols[i].nullable = !tm_expr_not_null(q->pre_exprs[i]);
    }
    tm_plan_node_t *pre = plan_calc(pc, in, in_schema, q->where, q->pre_exprs, q->npre,
                                    pre_schema, "pre-aggregate");
    tm_schema_unref(pre_schema);
    if (pre == NULL)
        return TM_ENOMEM;
    tm_plan_node_t *agg = plan_group_agg(pc, pre, q);
    if (agg == NULL)
        return TM_ENOMEM;
    *out = plan_calc(pc, agg, q->agg_schema, q->having, q->targets, q->ntargets, q->out_schema,
                     q->having ? "having + project" : "project");
    return *out ? 0 : TM_ENOMEM;
}


/* ---- window aggregation ---- */

/*
 * A grouped query over a window TVF (bind.h, tm_bound_window_t): a calc
 * computing [event time, the non-window group keys, the aggregate
 * arguments] over the TVF's input, the WindowAgg, then a calc for HAVING
 * and the select list over the aggregation's layout (the group keys, the
 * window columns among them where GROUP BY put them, then the aggregates).
 */
static int plan_window(pctx_t *pc, const tm_bound_query_t *q, tm_plan_node_t *in,
                       tm_plan_node_t **out)
{
    const tm_bound_window_t *w = q->window;
    tm_plan_t *plan = pc->plan;
    int nargs = q->npre - q->ngroup;
    tm_expr_t **exprs = calloc((size_t)q->npre + 2, sizeof(*exprs));
    int *out_cols = calloc((size_t)q->ngroup + 1, sizeof(int));
    int *key_cols = calloc((size_t)q->ngroup + 1, sizeof(int));
    tm_schema_t *pre_schema = NULL;
    int rc = exprs && out_cols && key_cols ? 0 : TM_ENOMEM;
    int nk = 0;
    if (rc == 0) {
        tm_expr_type_t tt;
        tm_expr_type_from_column(&w->input->cols[w->time_col], &tt);
        exprs[0] = tm_expr_column(plan->pool, w->time_col, &tt,
                                  w->input->cols[w->time_col].name);
        rc = exprs[0] ? 0 : TM_ENOMEM;
    }
    for (int i = 0; rc == 0 && i < q->ngroup; i++) {
        int c = tm_expr_column_index(q->pre_exprs[i]);
        if (c >= w->first_col) {
            out_cols[i] = c == w->first_col       ? TM_WINDOW_COL_START
                          : c == w->first_col + 1 ? TM_WINDOW_COL_END
                                                  : TM_WINDOW_COL_TIME;
            continue;
        }
        exprs[1 + nk] = q->pre_exprs[i];
        key_cols[nk] = 1 + nk;
        out_cols[i] = 1 + nk;
        nk++;
    }
    int npre = 1 + nk + nargs;
    for (int i = 0; rc == 0 && i < nargs; i++)
        exprs[1 + nk + i] = q->pre_exprs[q->ngroup + i];
    if (rc == 0) {
        /* The pre-window layout's columns are named after what they compute. */
        tm_schema_t *s = tm_schema_new(npre);
        rc = s ? 0 : TM_ENOMEM;
        for (int i = 0; rc == 0 && i < npre; i++) {
            const char *nm = i == 0        ? w->input->cols[w->time_col].name
                             : i <= nk     ? NULL
                                           : q->pre_names[q->ngroup + (i - 1 - nk)];
            if (i >= 1 && i <= nk)
                for (int g = 0, seen = 0; g < q->ngroup; g++)
                    if (out_cols[g] >= 0 && ++seen == i)
                        nm = q->pre_names[g];
            tm_schema_set_str(&s->cols[i].name, nm ? nm : "?");
            tm_expr_type_to_column(tm_expr_type(exprs[i]), &s->cols[i]);
            s->cols[i].nullable = !tm_expr_not_null(exprs[i]);
            s->cols[i].key_index = -1;
        }
        pre_schema = s;
        if (rc == 0 && tm_schema_finish(s) != 0)
            rc = TM_EINVAL;
    }
    tm_plan_node_t *pre = NULL, *n = NULL;
    if (rc == 0) {
        pre = plan_calc(pc, in, w->input, q->where, exprs, npre, pre_schema, "pre-window");
        rc = pre ? 0 : TM_ENOMEM;
    }
    if (rc == 0) {
        n = node_add(plan, TM_PLAN_WINDOW_AGG, pre, pc->insert);
        rc = n ? 0 : TM_ENOMEM;
    }
    if (rc == 0) {
        pc->nagg++;
        uint32_t h = 2166136261u;
        char buf[2048], tn[64];
        snprintf(buf, sizeof(buf), "window/%d/%" PRId64 "/%" PRId64, (int)w->kind, w->size_us,
                 w->slide_us);
        h = fnv(h, buf);
        for (int i = 0; i < npre; i++) {
            tm_expr_format(exprs[i], NULL, buf, sizeof(buf));
            h = fnv(h, buf);
            h = fnv(h, tm_expr_type_name(tm_expr_type(exprs[i]), tn, sizeof(tn)));
            if (i == nk)
                h = fnv(h, "|");
        }
        for (int k = 0; k < q->naggs; k++) {
            snprintf(buf, sizeof(buf), "%s/%d/%d/%s", tm_agg_name(q->aggs[k].kind),
                     q->aggs[k].distinct, q->aggs[k].arg,
                     q->aggs[k].separator ? q->aggs[k].separator : "");
            h = fnv(h, buf);
        }
        n->uid = tm_asprintf("window/%s/%d-%08x", pc->sink_name, pc->nagg, h);
        n->agg_calls = calloc((size_t)q->naggs + 1, sizeof(tm_agg_call_t));
        n->schema = tm_schema_clone(q->agg_schema);
        if (n->uid == NULL || n->agg_calls == NULL || n->schema == NULL ||
            set_identity(pc, n->schema) != 0)
            rc = TM_ENOMEM;
    }
    if (rc == 0) {
        for (int k = 0; k < q->naggs; k++) {
            n->agg_calls[k] = q->aggs[k];
            n->agg_calls[k].separator =
                q->aggs[k].separator ? strdup(q->aggs[k].separator) : NULL;
            if (q->aggs[k].arg >= 0)
                n->agg_calls[k].arg = 1 + nk + (q->aggs[k].arg - q->ngroup);
        }
        int64_t lateness_ms = tm_opt_duration_ms(plan->job->settings, "allowed_lateness");
        n->win_key_cols = key_cols;
        n->win_out_cols = out_cols;
        key_cols = out_cols = NULL;
        n->win.in_schema = tm_schema_ref(pre->schema);
        static const tm_window_kind_t kinds[] = {0, TM_WINDOW_TUMBLE, TM_WINDOW_HOP,
                                                 TM_WINDOW_SESSION, TM_WINDOW_CUMULATE};
        n->win.kind = kinds[w->kind];
        n->win.time_col = 0;
        n->win.size_us = w->size_us;
        n->win.slide_us = w->slide_us;
        n->win.key_cols = n->win_key_cols;
        n->win.nkey = nk;
        n->win.out_cols = n->win_out_cols;
        n->win.ngroup = q->ngroup;
        n->win.aggs = n->agg_calls;
        n->win.naggs = q->naggs;
        n->win.allowed_lateness_us = lateness_ms > 0 ? lateness_ms * 1000 : 0;
        n->win.out_schema = n->schema;
        n->mode = n->win.allowed_lateness_us > 0 ? TM_MODE_RETRACT : TM_MODE_INSERT_ONLY;
        n->before_images = true;
        n->key = calloc((size_t)q->ngroup + 1, sizeof(int));
        for (int i = 0; n->key != NULL && i < q->ngroup; i++)
            n->key[i] = i;
        n->nkey = q->ngroup;
        n->stateful = true;
        if (nk > 0) {
            n->exchange = TM_EXCHANGE_HASH;
            n->exchange_cols = int_dup(n->win_key_cols, nk);
            n->nexchange = nk;
            n->parallelism = plan->parallelism;
        } else {
            n->exchange = TM_EXCHANGE_SINGLE;
            n->parallelism = 1;
        }
        rc = n->key ? 0 : TM_ENOMEM;
        if (rc == 0)
            rc = plan_late_sink(pc, n);
    }
    free(exprs);
    free(out_cols);
    free(key_cols);
    tm_schema_unref(pre_schema);
    if (rc != 0)
        return rc;
    *out = plan_calc(pc, n, q->agg_schema, q->having, q->targets, q->ntargets, q->out_schema,
                     q->having ? "having + project" : "project");
    return *out ? 0 : TM_ENOMEM;
}

/*
 * A window TVF read without GROUP BY (a window Top-N over it, plan.h
 * WindowTVF): a calc of the table's columns with the query's WHERE, then
 * the WindowTVF node, whose layout is the TVF's (bind.h): the columns, then
 * window_start, window_end and window_time.
 */
static int plan_window_tvf(pctx_t *pc, const tm_bound_query_t *q, tm_plan_node_t *in,
                           tm_plan_node_t **out)
{
    const tm_bound_window_t *w = q->window;
    if (in->mode != TM_MODE_INSERT_ONLY)
        return plan_err(pc, w->location, TM_EUNSUPPORTED,
                        "a window Top-N over a window function needs an insert-only input, but "
                        "%s is a changelog; rank the rows of a window aggregation instead, or "
                        "read the table as a snapshot (snapshot = 'initial_only') or an "
                        "append-only stream",
                        q->from_name ? q->from_name : "its table");
    int ncols = w->input->ncols;
    tm_expr_t **v = calloc((size_t)ncols + 1, sizeof(*v));
    if (v == NULL)
        return TM_ENOMEM;
    int rc = 0;
    for (int i = 0; rc == 0 && i < ncols; i++) {
        tm_expr_type_t t;
        tm_expr_type_from_column(&w->input->cols[i], &t);
        v[i] = tm_expr_column(pc->plan->pool, i, &t, w->input->cols[i].name);
        rc = v[i] ? 0 : TM_ENOMEM;
    }
    tm_plan_node_t *pre = NULL, *n = NULL;
    if (rc == 0)
        rc = (pre = plan_calc(pc, in, w->input, q->where, v, ncols, w->input, "pre-window")) ? 0
                                                                                      : TM_ENOMEM;
    free(v);
    if (rc == 0)
        rc = (n = node_add(pc->plan, TM_PLAN_WINDOW_TVF, pre, pc->insert)) ? 0 : TM_ENOMEM;
    if (rc != 0)
        return rc;
    pc->ncalc++;
    n->uid = tm_asprintf("window_tvf/%s/%d", pc->sink_name, pc->ncalc);
    n->schema = tm_schema_clone(q->in_schema);
    if (n->uid == NULL || n->schema == NULL || set_identity(pc, n->schema) != 0)
        return TM_ENOMEM;
    for (int i = 0; i < n->schema->ncols; i++)
        n->schema->cols[i].key_index = -1;
    static const tm_window_kind_t kinds[] = {0, TM_WINDOW_TUMBLE, TM_WINDOW_HOP,
                                             TM_WINDOW_SESSION, TM_WINDOW_CUMULATE};
    tm_window_agg_spec_t *ws = &n->wtvf.win;
    ws->in_schema = tm_schema_ref(pre->schema);
    ws->kind = kinds[w->kind];
    ws->time_col = w->time_col;
    ws->size_us = w->size_us;
    ws->slide_us = w->slide_us;
    n->wtvf.out_schema = n->schema;
    n->mode = TM_MODE_INSERT_ONLY;
    n->before_images = true;
    n->exchange = TM_EXCHANGE_FORWARD;
    n->parallelism = pre->parallelism;
    if (set_schema_key(n->schema, NULL, 0) != 0)
        return TM_EINVAL;
    *out = n;
    return 0;
}

/* ---- fitting the output to the sink ---- */

static bool is_number(tm_type_t t)
{
    return t == TM_T_INT16 || t == TM_T_INT32 || t == TM_T_INT64 || t == TM_T_FLOAT32 ||
           t == TM_T_FLOAT64 || t == TM_T_NUMERIC;
}

/* PostgreSQL's assignment casts, the ones an INSERT applies silently. */
static bool assignable(tm_type_t from, tm_type_t to)
{
    if (from == to || to == TM_T_TEXT)
        return true;
    if (is_number(from) && is_number(to))
        return true;
    if (from == TM_T_DATE && (to == TM_T_TIMESTAMP || to == TM_T_TIMESTAMPTZ))
        return true;
    if ((from == TM_T_TIMESTAMP && to == TM_T_TIMESTAMPTZ) ||
        (from == TM_T_TIMESTAMPTZ && to == TM_T_TIMESTAMP))
        return true;
    if (from == TM_T_JSON && to == TM_T_JSON)
        return true;
    return false;
}

static int fit_expr(pctx_t *pc, tm_plan_node_t *top, int i, const tm_column_t *want,
                    const char *sink, int location, tm_expr_t **e)
{
    const tm_expr_type_t *have = tm_expr_type(*e);
    tm_expr_type_t target;
    tm_expr_type_from_column(want, &target);
    char h[64], w[64], err[1024];
    if (have->type == target.type &&
        (have->type != TM_T_NUMERIC || target.scale == TM_SCALE_VARIABLE ||
         (have->scale == target.scale && have->precision == target.precision)))
        return 0;
    if (!assignable(have->type, target.type) && have->type != TM_T_OTHER)
        return plan_err(pc, location, TM_ESQL,
                        "column %d (%s) of the query is %s, but sink '%s' declares column "
                        "\"%s\" as %s; CAST the expression to %s or change the sink's column "
                        "type",
                        i + 1, top->schema->cols[i].name, tm_expr_type_name(have, h, sizeof(h)),
                        sink, want->name, tm_expr_type_name(&target, w, sizeof(w)),
                        tm_expr_type_name(&target, w, sizeof(w)));
    tm_expr_t *cast = NULL;
    int rc = tm_expr_cast(pc->plan->pool, *e, &target, &cast, err, sizeof(err));
    if (rc != 0)
        return plan_err(pc, location, TM_ESQL, "column %d (%s) cannot be stored in sink '%s' "
                        "column \"%s\": %s", i + 1, top->schema->cols[i].name, sink, want->name,
                        err);
    *e = cast;
    return 0;
}

/*
 * Fits the final Calc's output to the sink: the INSERT's column list, the
 * sink's declared columns (order, count, assignment casts) and names.
 */
static int fit_sink(pctx_t *pc, tm_plan_node_t *top, const tm_job_table_t *sink)
{
    const tm_job_insert_t *ins = &pc->plan->job->inserts[pc->insert];
    const tm_schema_t *decl = sink->declared;
    int n = top->calc.nexprs;
    int loc = ins->location;
    if (ins->ncols > 0 && ins->ncols != n)
        return plan_err(pc, loc, TM_ESQL, "INSERT has more %s than %s: %d column%s listed, the "
                        "query has %d",
                        ins->ncols < n ? "expressions" : "target columns",
                        ins->ncols < n ? "target columns" : "expressions", ins->ncols,
                        ins->ncols == 1 ? "" : "s", n);
    if (decl == NULL) {
        for (int i = 0; i < ins->ncols; i++)
            tm_schema_set_str(&top->schema->cols[i].name, ins->cols[i]);
    } else {
        int m = decl->ncols;
        int *from = calloc((size_t)m + 1, sizeof(int));
        tm_expr_t **exprs = calloc((size_t)m + 1, sizeof(*exprs));
        tm_schema_t *s = tm_schema_new(m);
        int rc = from && exprs && s ? 0 : TM_ENOMEM;
        if (rc == 0 && ins->ncols == 0 && n != m)
            rc = plan_err(pc, loc, TM_ESQL,
                          "the query has %d column%s but sink '%s' declares %d; select one "
                          "expression per sink column (in its order), or name the columns: "
                          "INSERT INTO %s (col, …) SELECT …",
                          n, n == 1 ? "" : "s", sink->name, m, sink->name);
        for (int j = 0; rc == 0 && j < m; j++) {
            from[j] = ins->ncols == 0 ? j : -1;
            for (int i = 0; i < ins->ncols; i++)
                if (strcmp(ins->cols[i], decl->cols[j].name) == 0)
                    from[j] = i;
        }
        for (int i = 0; rc == 0 && i < ins->ncols; i++)
            if (tm_schema_find(decl, ins->cols[i]) < 0)
                rc = plan_err(pc, ins->col_locations[i], TM_ESQL,
                              "column \"%s\" of sink '%s' does not exist", ins->cols[i],
                              sink->name);
        for (int j = 0; rc == 0 && j < m; j++) {
            const tm_column_t *want = &decl->cols[j];
            if (from[j] < 0) {
                if (!want->nullable || want->key_index >= 0) {
                    rc = plan_err(pc, loc, TM_ESQL,
                                  "sink '%s' column \"%s\" is NOT NULL but INSERT INTO %s (…) "
                                  "does not set it; add it to the column list",
                                  sink->name, want->name, sink->name);
                    break;
                }
                tm_expr_type_t t;
                tm_expr_type_from_column(want, &t);
                char err[512];
                tm_expr_t *null = tm_expr_null(pc->plan->pool);
                if (null == NULL || tm_expr_cast(pc->plan->pool, null, &t, &exprs[j], err,
                                                 sizeof(err)) != 0)
                    exprs[j] = null;
            } else {
                int i = from[j];
                int tloc = loc;
                exprs[j] = top->calc_exprs[i];
                rc = fit_expr(pc, top, i, want, sink->name, tloc, &exprs[j]);
            }
            if (rc == 0) {
                tm_column_t *c = &s->cols[j];
                tm_schema_set_str(&c->name, want->name);
                tm_expr_type_to_column(tm_expr_type(exprs[j]), c);
                c->nullable = !tm_expr_not_null(exprs[j]);
            }
        }
        if (rc == 0)
            rc = set_identity(pc, s);
        if (rc != 0) {
            free(from);
            free(exprs);
            tm_schema_unref(s);
            return rc;
        }
        /* The unique key follows its columns to their sink positions (casts keep it). */
        for (int k = 0; top->key != NULL && k < top->nkey; k++) {
            int j = 0;
            while (j < m && from[j] != top->key[k])
                j++;
            if (j == m) {
                free(top->key);
                top->key = NULL;
                top->nkey = 0;
                break;
            }
            top->key[k] = j;
        }
        free(from);
        free(top->calc_exprs);
        top->calc_exprs = exprs;
        top->calc.exprs = (const tm_expr_t *const *)exprs;
        top->calc.nexprs = m;
        tm_schema_unref(top->schema);
        top->schema = s;
        top->calc.out_schema = s;
        if (set_schema_key(s, top->key, top->nkey) != 0)
            return TM_EINVAL;
    }
    /* Names become JSON fields and sink columns: each must be a real, distinct name. */
    for (int i = 0; i < top->schema->ncols; i++) {
        const char *nm = top->schema->cols[i].name;
        if (nm == NULL || strcmp(nm, "?column?") == 0)
            return plan_err(pc, loc, TM_ESQL,
                            "column %d of the query into '%s' has no name; give it one with "
                            "AS name",
                            i + 1, sink->name);
        for (int k = 0; k < i; k++)
            if (strcmp(top->schema->cols[k].name, nm) == 0)
                return plan_err(pc, loc, TM_ESQL,
                                "the query into '%s' has two columns named \"%s\" (%d and %d); "
                                "rename one with AS",
                                sink->name, nm, k + 1, i + 1);
    }
    return 0;
}

static void key_names(const tm_schema_t *s, const int *key, int nkey, char *buf, size_t len)
{
    size_t n = 0;
    buf[0] = '\0';
    for (int k = 0; k < nkey && n + 1 < len; k++)
        n += (size_t)snprintf(buf + n, len - n, "%s%s", k ? ", " : "",
                              s && key ? s->cols[key[k]].name : "?");
}

/*
 * The one place that says which changelogs a sink takes.  Every sink of
 * this version writes Debezium envelopes (before/after images, op c/u/d,
 * tombstones on the key), which carry insert-only, retract and upsert
 * streams alike; a sink that declares a PRIMARY KEY receives upserts on it.
 */
static int sink_check(pctx_t *pc, tm_plan_node_t *sinknode, const tm_job_table_t *sink)
{
    tm_plan_node_t *in = sinknode->input;
    const tm_schema_t *decl = sink->declared;
    int loc = pc->plan->job->inserts[pc->insert].location;
    sinknode->mode = in->mode;
    sinknode->before_images = in->before_images;
    /*
     * A PostgreSQL sink without a key can only insert rows: it has no way to
     * find the row an update or a delete retracts.
     */
    /* Without declared columns (SELECT * into `()`), each record's own key decides at run time. */
    bool keyless = decl != NULL && decl->nkeys == 0;
    bool pgsink = sink->conn != NULL && strcmp(sink->conn->name, "postgres") == 0;
    if (pgsink && keyless &&
        in->mode != TM_MODE_INSERT_ONLY)
        return plan_err(pc, loc, TM_ESQL,
                        "sink '%s' (connector 'postgres') has no PRIMARY KEY, so it can only "
                        "insert rows, but the query's changelog is %s (it updates and deletes "
                        "rows); declare the sink's PRIMARY KEY (the query's unique key), or "
                        "write an insert-only query",
                        sink->name, tm_changelog_mode_name(in->mode));
    if (decl == NULL || decl->nkeys == 0 || in->schema == NULL) {
        sinknode->key = int_dup(in->key, in->nkey);
        sinknode->nkey = in->key ? in->nkey : (in->nkey > 0 ? 1 : 0);
        return 0;
    }
    /* The query's unique key must be the sink's primary key, as a set of columns. */
    bool same = in->key != NULL && in->nkey == decl->nkeys;
    for (int k = 0; same && k < decl->nkeys; k++) {
        bool found = false;
        for (int j = 0; j < in->nkey; j++)
            found |= in->key[j] == decl->key_cols[k];
        same = found;
    }
    char want[256], have[256];
    key_names(decl, decl->key_cols, decl->nkeys, want, sizeof(want));
    key_names(in->schema, in->key, in->nkey, have, sizeof(have));
    if (!same) {
        if (in->key == NULL || in->nkey == 0)
            return plan_err(pc, loc, TM_ESQL,
                            "sink '%s' declares PRIMARY KEY (%s), but the query's rows have no "
                            "unique key; select the source's primary key columns unchanged, or "
                            "GROUP BY %s, or drop the sink's PRIMARY KEY to receive the full "
                            "changelog",
                            sink->name, want, want);
        return plan_err(pc, loc, TM_ESQL,
                        "sink '%s' declares PRIMARY KEY (%s), but the query's rows are unique "
                        "on (%s); make the sink's key (%s), or GROUP BY %s",
                        sink->name, want, have, have, want);
    }
    /*
     * The PostgreSQL sink cancels each retraction against the row it retracts
     * (pg_sink.h, tm_pgsink_fold_t), so it needs whole before images, unless
     * it is fed one source's upserts in order (sink_takes_upserts).
     */
    if (pgsink && !in->before_images && !pc->sink_folds_upserts)
        return plan_err(pc, loc, TM_EUNSUPPORTED,
                        "sink '%s' (connector 'postgres') needs updates and deletes that carry "
                        "the whole row they retract, but the query's changelog carries only the "
                        "key; select from the source through a view or a projection",
                        sink->name);
    sinknode->sink_upsert = true;
    sinknode->mode = TM_MODE_UPSERT;
    sinknode->key = int_dup(in->key, in->nkey);
    sinknode->nkey = in->nkey;
    return 0;
}

/*
 * True when the sink can be fed the source's upserts directly: a PostgreSQL
 * sink with a PRIMARY KEY folds each epoch's changes per key, and a change
 * whose before image carries only the key (or none) replaces what the key
 * held (pg_sink.h, TM_PGSINK_REPLACE).  That is right as long as the changes
 * of one key reach the sink in the source's order, which holds for one
 * source table keyed by its PRIMARY KEY, projected without a WHERE (a filter
 * would need the old row to retract a row that stops matching), with no
 * exchange on the way.  The sink_check below still checks that the query's
 * key is the sink's.  Everything else keeps the upsert operator, which turns
 * upserts into a retract stream (Flink's ChangelogNormalize).
 */
static bool sink_takes_upserts(const tm_plan_t *plan, const tm_job_table_t *sink,
                               const tm_bound_query_t *q)
{
    if (sink->conn == NULL || strcmp(sink->conn->name, "postgres") != 0 ||
        sink->declared == NULL || sink->declared->nkeys == 0)
        return false;
    if (q->from != NULL || q->sub != NULL || q->grouped || q->where != NULL || q->table < 0)
        return false;
    const tm_job_table_t *src = &plan->job->tables[q->table];
    return (src->role & TM_ROLE_LOOKUP) == 0 && src->declared != NULL &&
           src->declared->nkeys > 0;
}

static int plan_insert(tm_plan_t *plan, int insert, char *errstr, size_t errstr_size)
{
    const tm_job_t *job = plan->job;
    const tm_job_insert_t *ins = &job->inserts[insert];
    const tm_job_table_t *sink = &job->tables[ins->sink];
    pctx_t pc = {plan, insert, sink->name, 0, 0, 0, 0, false, errstr, errstr_size};
    tm_bound_query_t *q = NULL;
    int rc = tm_bind_insert(job, insert, plan->pool, &q, errstr, errstr_size);
    if (rc != 0)
        return rc;
    bool sink_pk = sink->declared != NULL && sink->declared->nkeys > 0;
    pc.sink_folds_upserts = sink_takes_upserts(plan, sink, q);
    tm_plan_node_t *top = NULL;
    rc = plan_query(&pc, q, q->passthrough && sink_pk, &top);
    if (rc == 0 && q->passthrough && ins->ncols > 0)
        rc = plan_err(&pc, ins->col_locations[0], TM_EUNSUPPORTED,
                      "INSERT INTO %s (columns) SELECT * over a table without declared columns "
                      "is not supported; declare the source's columns",
                      sink->name);
    if (rc == 0 && top->kind == TM_PLAN_CALC && !q->passthrough)
        rc = fit_sink(&pc, top, sink);
    tm_plan_node_t *sn = NULL;
    if (rc == 0) {
        sn = node_add(plan, TM_PLAN_SINK, top, insert);
        if (sn == NULL)
            rc = TM_ENOMEM;
    }
    if (rc == 0) {
        sn->table = ins->sink;
        sn->uid = tm_asprintf("sink/%s", sink->name);
        sn->schema = top->schema ? tm_schema_ref(top->schema) : NULL;
        sn->exchange = TM_EXCHANGE_FORWARD;
        sn->parallelism = 1;
        rc = sn->uid ? sink_check(&pc, sn, sink) : TM_ENOMEM;
    }
    if (rc == 0) {
        tm_plan_pipeline_t *v =
            realloc(plan->pipelines, sizeof(*v) * (size_t)(plan->npipelines + 1));
        if (v == NULL) {
            rc = TM_ENOMEM;
        } else {
            plan->pipelines = v;
            v[plan->npipelines].insert = insert;
            v[plan->npipelines].sink = sn;
            plan->npipelines++;
        }
    }
    tm_bound_query_free(q);
    return rc;
}

bool tm_plan_sink_upserts(const tm_plan_t *plan, int table)
{
    for (int i = 0; i < plan->npipelines; i++) {
        const tm_plan_node_t *sn = plan->pipelines[i].sink;
        if (sn->table == table && sn->sink_upsert && !sn->before_images)
            return true;
    }
    return false;
}

/* Chains each FORWARD node into its input's stage; anything else starts a stage. */
static int plan_stages(tm_plan_t *plan)
{
    for (int i = 0; i < plan->nnodes; i++) {
        tm_plan_node_t *n = plan->nodes[i];
        if (n->kind == TM_PLAN_SCAN || n->kind == TM_PLAN_SINK)
            continue;
        tm_plan_stage_t *st;
        if (n->exchange == TM_EXCHANGE_FORWARD && n->input && n->input->stage >= 0) {
            n->stage = n->input->stage;
            st = &plan->stages[n->stage];
        } else {
            tm_plan_stage_t *v = realloc(plan->stages, sizeof(*v) * (size_t)(plan->nstages + 1));
            if (v == NULL)
                return TM_ENOMEM;
            plan->stages = v;
            n->stage = plan->nstages++;
            st = &plan->stages[n->stage];
            memset(st, 0, sizeof(*st));
            st->parallelism = n->parallelism;
            st->exchange = n->exchange;
        }
        tm_plan_node_t **nv = realloc(st->nodes, sizeof(*nv) * (size_t)(st->nnodes + 1));
        if (nv == NULL)
            return TM_ENOMEM;
        st->nodes = nv;
        st->nodes[st->nnodes++] = n;
        if (n->stateful) {
            const char **uv = realloc(st->uids, sizeof(*uv) * (size_t)(st->nuids + 1));
            if (uv == NULL)
                return TM_ENOMEM;
            st->uids = uv;
            st->uids[st->nuids++] = n->uid;
            if (!st->stateful)
                st->name = n->uid;
            st->stateful = true;
        }
        if (st->name == NULL)
            st->name = n->uid;
        char *label = tm_asprintf("%s%s%s", st->label ? st->label : "", st->label ? " → " : "",
                              tm_plan_kind_name(n->kind));
        if (label == NULL)
            return TM_ENOMEM;
        free(st->label);
        st->label = label;
    }
    return 0;
}

/*
 * The ranges of the numeric settings that the options table cannot say
 * (TM_OPT_INT has no bounds).  Checked here, before anything is opened, so
 * that `explain` refuses what `run` would, and the message names the setting
 * rather than whatever would trip over it later (parallelism = 0 once said
 * "a state memory budget needs >= 1 store").
 */
static int check_settings(const tm_job_t *job, char *errstr, size_t errstr_size)
{
    const tm_options_t *set = job->settings;
    int64_t par = tm_opt_int(set, "parallelism");
    int64_t maxp = tm_opt_int(set, "max_parallelism");
    if (maxp < 1 || maxp > TM_MAX_PARALLELISM_LIMIT)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s: SET max_parallelism = %" PRId64 " is out of range: it must be "
                         "between 1 and %d (default %d)",
                         job->path, maxp, TM_MAX_PARALLELISM_LIMIT, TM_MAX_PARALLELISM_DEFAULT);
    if (par < 1 || par > maxp)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s: SET parallelism = %" PRId64 " is out of range: parallelism (worker "
                         "threads per stateful stage) must be at least 1 and at most "
                         "max_parallelism (%" PRId64 ")",
                         job->path, par, maxp);
    if (tm_opt_int(set, "checkpoints_retained") < 1)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s: SET checkpoints_retained = %" PRId64 " is out of range: at least "
                         "the newest checkpoint must be kept (1 or more)",
                         job->path, tm_opt_int(set, "checkpoints_retained"));
    static const char *const durations[] = {"checkpoint_interval", "checkpoint_timeout",
                                            "sink_flush_interval", "state_ttl", NULL};
    for (const char *const *d = durations; *d; d++)
        if (tm_opt_duration_ms(set, *d) < 0)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "%s: SET %s must not be negative", job->path, *d);
    if (tm_opt_size(set, "state_memory") < 1024 * 1024)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s: SET state_memory = '%s' is too small: keyed state needs at least "
                         "1MiB (default 256MiB)",
                         job->path, tm_opt_str(set, "state_memory"));
    return 0;
}

int tm_plan_new(const tm_job_t *job, tm_plan_t **out, char *errstr, size_t errstr_size)
{
    *out = NULL;
    if (errstr_size > 0)
        errstr[0] = '\0';
    tm_plan_t *plan = calloc(1, sizeof(*plan));
    if (plan == NULL)
        return TM_ENOMEM;
    plan->job = job;
    plan->pool = tm_expr_pool_new();
    plan->parallelism = (int)tm_opt_int(job->settings, "parallelism");
    plan->max_parallelism = (int)tm_opt_int(job->settings, "max_parallelism");
    int rc = check_settings(job, errstr, errstr_size);
    if (rc != 0) {
        tm_plan_free(plan);
        return rc;
    }
    const char *base = strrchr(job->path, '/');
    plan->job_name = strdup(base ? base + 1 : job->path);
    if (plan->job_name != NULL) {
        size_t n = strlen(plan->job_name);
        if (n > 4 && strcmp(plan->job_name + n - 4, ".sql") == 0)
            plan->job_name[n - 4] = '\0';
    }
    rc = plan->pool && plan->job_name ? 0 : TM_ENOMEM;
    for (int i = 0; rc == 0 && i < job->ninserts; i++)
        rc = plan_insert(plan, i, errstr, errstr_size);
    const char *late = tm_options_lookup(job->settings, "late_data_sink");
    bool fed = false;
    for (int i = 0; rc == 0 && late != NULL && i < plan->nnodes; i++)
        fed |= plan->nodes[i]->late_table >= 0;
    if (rc == 0 && late != NULL && !fed)
        rc = tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                       "%s: SET late_data_sink = '%s', but the job has no window aggregation "
                       "(FROM TUMBLE/HOP/CUMULATE/SESSION … GROUP BY window_start, window_end), "
                       "the only operator that counts late rows; remove the setting",
                       job->path, late);
    if (rc == 0)
        rc = plan_stages(plan);
    if (rc != 0) {
        if (rc == TM_ENOMEM && (errstr_size == 0 || errstr[0] == '\0'))
            tm_seterr(errstr, errstr_size, rc, "%s: out of memory while planning", job->path);
        tm_plan_free(plan);
        return rc;
    }
    *out = plan;
    return 0;
}

tm_plan_t *tm_plan_free(tm_plan_t *plan)
{
    if (plan == NULL)
        return NULL;
    for (int i = 0; i < plan->nnodes; i++)
        node_free(plan->nodes[i]);
    free(plan->nodes);
    free(plan->pipelines);
    for (int i = 0; i < plan->nstages; i++) {
        free(plan->stages[i].nodes);
        free(plan->stages[i].label);
        free(plan->stages[i].uids);
    }
    free(plan->stages);
    free(plan->job_name);
    tm_expr_pool_free(plan->pool);
    free(plan);
    return NULL;
}

int tm_plan_state_uids(const tm_plan_t *plan, const char **uids, int max)
{
    int n = 0;
    for (int i = 0; i < plan->nnodes; i++)
        if (plan->nodes[i]->stateful) {
            if (n < max)
                uids[n] = plan->nodes[i]->uid;
            n++;
        }
    return n;
}
