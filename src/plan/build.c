/*
 * build.c — the plan as a runtime graph (runtime/graph.h).  The only file
 * that names operator constructors: every other layer knows operators by
 * their specs (calc.h, group_agg.h) and the plan's node kinds.
 *
 * Each plan stage (plan.c, plan_stages: a node whose input arrives FORWARD
 * chains onto its input's stage) becomes one tm_pipeline_add_stage with one
 * factory per node; each stage's first node gets a tm_pipeline_link from
 * its producer with the node's exchange; each sink gets a FORWARD link from
 * the node before it (a sink has an input slot per producer subtask).
 *
 * Invariants:
 *   1. The specs handed to the runtime are the plan's own (plan nodes), so
 *      the plan must outlive the pipeline (plan.h).
 *   2. A HASH exchange's key function is the one the consuming operator
 *      stores its state under (tm_upsert_exchange_key for the upsert,
 *      tm_group_agg_key for group_agg, tm_topn_key for topn,
 *      tm_join_left_key/right_key for the
 *      two inputs of a join), so a key's state is always on the subtask
 *      that receives it.
 *   3. A join's stage has two inputs: input 0 linked from the left
 *      producer, input 1 from the right (plan node input / input2).
 *   4. A window aggregation with a late_table gets a side link
 *      (tm_pipeline_link_side) from its place in its stage's chain to that
 *      table's sink; nothing else is linked to that sink.
 *
 * Thread: the main thread, before tm_pipeline_start().
 */
#include "plan/plan.h"
#include "core/error.h"
#include "operators/calc.h"
#include "operators/group_agg.h"
#include "operators/interval_join.h"
#include "operators/join.h"
#include "operators/lookup_join.h"
#include "operators/topn.h"
#include "operators/window_rank.h"
#include "operators/upsert.h"
#include "operators/window_agg.h"

#include <stdlib.h>

static int factory_of(const tm_plan_node_t *n, tm_operator_factory_t *f, char *errstr,
                      size_t errstr_size)
{
    f->uid = n->uid;
    f->stateful = n->stateful;
    switch (n->kind) {
    case TM_PLAN_UPSERT:
        /* The upsert operator needs no spec: it keys by each record's own primary key. */
        f->make = tm_upsert_op_new;
        f->spec = NULL;
        return 0;
    case TM_PLAN_CALC:
        f->make = tm_calc_new;
        f->spec = &n->calc;
        return 0;
    case TM_PLAN_GROUP_AGG:
        f->make = tm_group_agg_new;
        f->spec = &n->agg;
        return 0;
    case TM_PLAN_JOIN:
        f->make = tm_join_new;
        f->spec = &n->join;
        return 0;
    case TM_PLAN_WINDOW_AGG:
        f->make = tm_window_agg_new;
        f->spec = &n->win;
        return 0;
    case TM_PLAN_LOOKUP_JOIN:
        f->make = tm_lookup_join_new;
        f->spec = &n->lookup;
        return 0;
    case TM_PLAN_INTERVAL_JOIN:
        f->make = tm_interval_join_new;
        f->spec = &n->ij;
        return 0;
    case TM_PLAN_TOPN:
        /* A window Top-N shares the plain one's spec and exchange key (plan.h). */
        f->make = n->windowed ? tm_window_rank_new : tm_topn_new;
        f->spec = n->windowed ? (const void *)&n->wrank : (const void *)&n->topn;
        return 0;
    case TM_PLAN_WINDOW_TVF:
        f->make = tm_window_tvf_new;
        f->spec = &n->wtvf;
        return 0;
    default:
        return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                         "plan node %d (%s) has no operator in this version", n->id,
                         tm_plan_kind_name(n->kind));
    }
}

static int exchange_key_of(const tm_plan_node_t *n, int input, tm_exchange_key_t *key)
{
    key->encode = NULL;
    key->arg = NULL;
    if (n->exchange != TM_EXCHANGE_HASH)
        return 0;
    if (n->kind == TM_PLAN_JOIN) {
        key->encode = input == 0 ? tm_join_left_key : tm_join_right_key;
        key->arg = &n->join;
        return 0;
    }
    if (n->kind == TM_PLAN_INTERVAL_JOIN) {
        key->encode = input == 0 ? tm_interval_join_left_key : tm_interval_join_right_key;
        key->arg = &n->ij;
        return 0;
    }
    if (n->kind == TM_PLAN_UPSERT) {
        key->encode = tm_upsert_exchange_key;
        return 0;
    }
    if (n->kind == TM_PLAN_GROUP_AGG) {
        key->encode = tm_group_agg_key;
        key->arg = &n->agg;
        return 0;
    }
    if (n->kind == TM_PLAN_WINDOW_AGG) {
        key->encode = tm_window_agg_key;
        key->arg = &n->win;
        return 0;
    }
    if (n->kind == TM_PLAN_TOPN) {
        key->encode = tm_topn_key;
        key->arg = &n->topn;
        return 0;
    }
    return TM_EINVAL;
}

/* The graph node that produces a plan node's output. */
static int producer_of(const tm_plan_node_t *n, const int *table_nodes, const int *stage_ids)
{
    if (n->kind == TM_PLAN_SCAN)
        return table_nodes[n->table];
    return n->stage >= 0 ? stage_ids[n->stage] : -1;
}

int tm_plan_build(tm_plan_t *plan, tm_pipeline_t *p, const int *table_nodes, int *stage_nodes,
                  char *errstr, size_t errstr_size)
{
    int *ids = calloc((size_t)plan->nstages + 1, sizeof(int));
    if (ids == NULL)
        return TM_ENOMEM;
    int rc = 0;
    for (int s = 0; rc == 0 && s < plan->nstages; s++) {
        const tm_plan_stage_t *st = &plan->stages[s];
        tm_operator_factory_t *fs = calloc((size_t)st->nnodes, sizeof(*fs));
        if (fs == NULL) {
            rc = TM_ENOMEM;
            break;
        }
        for (int i = 0; rc == 0 && i < st->nnodes; i++)
            rc = factory_of(st->nodes[i], &fs[i], errstr, errstr_size);
        if (rc == 0) {
            int id = tm_pipeline_add_stage(p, st->name, st->parallelism, fs, st->nnodes, errstr,
                                           errstr_size);
            if (id < 0)
                rc = id;
            else
                ids[s] = id;
        }
        free(fs);
    }
    for (int s = 0; rc == 0 && s < plan->nstages; s++) {
        const tm_plan_node_t *first = plan->stages[s].nodes[0];
        int ninputs =
            first->kind == TM_PLAN_JOIN || first->kind == TM_PLAN_INTERVAL_JOIN ? 2 : 1;
        for (int in = 0; rc == 0 && in < ninputs; in++) {
            tm_exchange_key_t key;
            int from = producer_of(in == 0 ? first->input : first->input2, table_nodes, ids);
            if (from < 0 || exchange_key_of(first, in, &key) != 0) {
                rc = tm_seterr(errstr, errstr_size, TM_EINVAL,
                               "plan node %d (%s) has no producer or exchange key for input %d",
                               first->id, tm_plan_kind_name(first->kind), in);
                break;
            }
            rc = tm_pipeline_link(p, from, ids[s], in, first->exchange, &key, errstr,
                                  errstr_size);
            rc = rc < 0 ? rc : 0;
        }
    }
    for (int i = 0; rc == 0 && i < plan->npipelines; i++) {
        const tm_plan_node_t *sink = plan->pipelines[i].sink;
        int from = producer_of(sink->input, table_nodes, ids);
        int to = table_nodes[sink->table];
        if (from < 0 || to < 0) {
            rc = tm_seterr(errstr, errstr_size, TM_EINVAL,
                           "pipeline %d: its source or sink was not added to the graph", i + 1);
            break;
        }
        rc = tm_pipeline_link(p, from, to, 0, TM_EXCHANGE_FORWARD, NULL, errstr, errstr_size);
        rc = rc < 0 ? rc : 0;
    }
    /* SET late_data_sink: each window aggregation's side output goes to that sink. */
    for (int i = 0; rc == 0 && i < plan->nnodes; i++) {
        const tm_plan_node_t *n = plan->nodes[i];
        if (n->late_table < 0 || n->stage < 0)
            continue;
        const tm_plan_stage_t *st = &plan->stages[n->stage];
        int op = 0;
        while (op < st->nnodes && st->nodes[op] != n)
            op++;
        int to = table_nodes[n->late_table];
        if (to < 0 || op == st->nnodes) {
            rc = tm_seterr(errstr, errstr_size, TM_EINVAL,
                           "%s: its late_data_sink was not added to the graph", n->uid);
            break;
        }
        rc = tm_pipeline_link_side(p, ids[n->stage], op, to, errstr, errstr_size);
        rc = rc < 0 ? rc : 0;
    }
    if (rc == 0 && stage_nodes != NULL)
        for (int s = 0; s < plan->nstages; s++)
            stage_nodes[s] = ids[s];
    free(ids);
    return rc;
}
