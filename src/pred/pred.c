/* pred — predictor bank (pred.h). */
#include "pred/pred.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "node/profile.h"
#include "pred/trace.h"

static void node_init(struct pred_node *pn, const struct fy_node *node)
{
    memset(pn, 0, sizeof *pn);
    snprintf(pn->name, sizeof pn->name, "%s", node->name);
    snprintf(pn->model, sizeof pn->model, "%s", node->prof.model);
    pn->role = node->role;
    milp_init(&pn->milp, node);
    mgqp_init_node(&pn->mgqp, pred_role_prior(node->role));
    for (int t = 0; t < FY_TASK__N; t++) {
        double q = node->prof.q_prior[t];
        if (!(q > 0 && q < 1)) continue;   /* 0 = unknown (NaN too) */
        pn->q_prior[t] = q < 0.01 ? 0.01 : q > 0.99 ? 0.99 : q;
        mgqp_set_task_prior(&pn->mgqp, t, pn->q_prior[t]);
    }
}

int pred_set_profile_priors(struct pred *p, const char *path, char *err, size_t errlen)
{
    struct node_lib lib;
    node_lib_init(&lib);
    int rc = node_lib_load_path(&lib, path, err, errlen);
    for (int i = 0; rc >= 0 && i < lib.nmod; i++) {
        double q[FY_TASK__N];
        node_model_task_priors(&lib.mod[i], q);
        if (pred_set_model_prior(p, lib.mod[i].name, q) < 0) {
            snprintf(err, errlen, "%s: more than %d models", path, PRED_MAX_MODELS);
            rc = -1;
        }
    }
    for (int i = 0; rc >= 0 && i < lib.nnode; i++) {
        struct fy_node n;
        if (node_lib_resolve(&lib, lib.node[i].name, &n, err, errlen) < 0) {
            rc = -1;
            break;
        }
        int k = 0;
        while (k < p->nnode_prof && strcmp(p->node_prof[k].name, n.name) != 0) k++;
        if (k == FY_MAX_NODES) {
            snprintf(err, errlen, "%s: more than %d nodes", path, FY_MAX_NODES);
            rc = -1;
            break;
        }
        if (k == p->nnode_prof) p->nnode_prof++;
        struct pred_node_prof *np = &p->node_prof[k];
        snprintf(np->name, sizeof np->name, "%s", n.name);
        np->role = n.role;
        np->prof = n.prof;
    }
    if (rc >= 0) rc = lib.nmod;
    node_lib_fini(&lib);
    return rc;
}

double pred_role_prior(enum fy_role role)
{
    return role == FY_ROLE_CLOUD ? PRED_PRIOR_CLOUD : PRED_PRIOR_EDGE;
}

/* q[t] where it is set (in (0,1)), else q0; t out of range: the mean over the tasks. */
static double task_prior(const double *q, double q0, int t)
{
    if (t >= 0 && t < FY_TASK__N) return q[t] > 0 && q[t] < 1 ? q[t] : q0;
    double sum = 0;
    for (int k = 0; k < FY_TASK__N; k++) sum += q[k] > 0 && q[k] < 1 ? q[k] : q0;
    return sum / FY_TASK__N;
}

double pred_node_prior(const struct fy_node *n, int t)
{
    return task_prior(n->prof.q_prior, pred_role_prior(n->role), t);
}

double pred_prior(const struct pred *p, int node, int t)
{
    node = pred_quality_owner(p, node);
    if (node < 0) return 0;
    return task_prior(p->node[node].q_prior, p->node[node].mgqp.q0, t);
}

int pred_find(const struct pred *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->node[i].name, name)) return i;
    return -1;
}

/* Do a and b run the same model with the same prior (then they learn together)? */
static int same_quality_prior(const struct pred_node *a, const struct pred_node *b)
{
    return !strcmp(a->model, b->model) && a->mgqp.q0 == b->mgqp.q0 &&
           !memcmp(a->q_prior, b->q_prior, sizeof a->q_prior);
}

int pred_add_node(struct pred *p, const struct fy_node *node)
{
    int i = pred_find(p, node->name);
    if (i >= 0) return i;
    if (p->n >= FY_MAX_NODES) return -1;
    struct fy_node with;
    int has = 0;
    for (int t = 0; t < FY_TASK__N; t++) has |= node->prof.q_prior[t] > 0;
    for (int k = 0; k < p->nmodels && !has; k++) {
        if (strcmp(p->model_prior[k].model, node->prof.model) != 0) continue;
        with = *node;
        memcpy(with.prof.q_prior, p->model_prior[k].q, sizeof with.prof.q_prior);
        node = &with;
        break;
    }
    struct pred_node *pn = &p->node[p->n];
    node_init(pn, node);
    pn->qowner = p->n;
    for (int k = 0; pn->model[0] && k < p->n; k++)
        if (p->node[k].qowner == k && same_quality_prior(&p->node[k], pn)) {
            pn->qowner = k;
            break;
        }
    return p->n++;
}

int pred_set_model_prior(struct pred *p, const char *model, const double *q)
{
    int k = 0;
    while (k < p->nmodels && strcmp(p->model_prior[k].model, model) != 0) k++;
    if (k == PRED_MAX_MODELS) return -1;
    if (k == p->nmodels) p->nmodels++;
    snprintf(p->model_prior[k].model, sizeof p->model_prior[k].model, "%s", model);
    memcpy(p->model_prior[k].q, q, sizeof p->model_prior[k].q);
    return 0;
}

struct pred *pred_new(const struct fy_node *nodes, int nnodes)
{
    struct pred *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    mgqp_init_shared(&p->shared);
    for (int i = 0; i < nnodes && i < FY_MAX_NODES; i++) pred_add_node(p, &nodes[i]);
    return p;
}

void pred_free(struct pred *p) { free(p); }

void pred_set_quality_prior(struct pred *p, int node, double q0)
{
    if (!p || node < 0 || node >= p->n) return;
    /* an explicit prior for one node gives it a block of its own; the nodes that learned
     * in its block keep what was learned there, in the block of the first of them */
    int heir = -1;
    for (int k = node + 1; k < p->n; k++) {
        if (p->node[k].qowner != node) continue;
        if (heir < 0) {
            heir = k;
            p->node[k].mgqp = p->node[node].mgqp;
        }
        p->node[k].qowner = heir;
    }
    p->node[node].qowner = node;
    mgqp_init_node(&p->node[node].mgqp, q0);
    memset(p->node[node].q_prior, 0, sizeof p->node[node].q_prior);
}

int pred_quality_owner(const struct pred *p, int node)
{
    if (!p || node < 0 || node >= p->n) return -1;
    return p->node[node].qowner;
}

/* the MGQP block holding the quality of bank node pn */
static struct mgqp *qblock(struct pred *p, const struct pred_node *pn)
{
    return &p->node[pn->qowner].mgqp;
}

double pred_quality(struct pred *p, int node, const struct fy_features *f,
                    const struct fy_plan *plan, double *sd)
{
    int o = pred_quality_owner(p, node);
    if (sd) *sd = 0;
    if (o < 0) return 0;
    return mgqp2_predict(&p->shared, &p->node[o].mgqp, f, plan, sd);
}

int pred_label(struct pred *p, int node, const struct fy_features *f,
               const struct fy_plan *plan, double y, struct pred_site *site)
{
    int o = pred_quality_owner(p, node);
    if (site) memset(site, 0, sizeof *site);
    if (o < 0 || !(y >= 0 && y <= 1)) return -1;
    if (!site) {
        mgqp2_observe(&p->shared, &p->node[o].mgqp, f, plan, y);
        return 0;
    }
    site->owner = o;
    mgqp2_observe_sites(&p->shared, &p->node[o].mgqp, f, plan, y, &site->s, &site->d);
    return 0;
}

void pred_unlabel(struct pred *p, struct pred_site *site)
{
    if (!site) return;
    if (p && site->s && site->d && site->owner >= 0 && site->owner < p->n) {
        mgqp_retract(&p->shared, site->s);
        mgqp_retract(&p->node[site->owner].mgqp, site->d);
    }
    pred_site_free(site);
}

void pred_site_free(struct pred_site *site)
{
    if (!site) return;
    free(site->s);
    free(site->d);
    memset(site, 0, sizeof *site);
}

/* Qwen2-VL: one visual token per 28×28 patch (DESIGN.md), min 4; LLaVA-1.5: a fixed
 * 576 tokens per image (24×24 patches of a 336 px CLIP view); generic: 32×32 patches. */
static int vt_rule(enum fy_vt_family fam, int w, int h)
{
    if (w <= 0 || h <= 0) return 0;
    switch (fam) {
    case FY_VT_LLAVA: return 576;
    case FY_VT_GENERIC: return ((w + 31) / 32) * ((h + 31) / 32);
    default: {
        int t = ((w + 27) / 28) * ((h + 27) / 28);
        if (t < 4) t = 4;
        if (t > 16384) t = 16384;
        return t;
    }
    }
}

int pred_image_tokens(const struct fy_features *f, int i, const struct fy_node *node,
                      const struct fy_plan *plan, double *bytes)
{
    const struct fy_image_features *im = &f->img[i];
    int a = plan ? plan->img[i] : FY_IMG_KEEP;
    enum fy_vt_family fam = node->prof.vt_family;
    if (fam < 0 || fam >= FY_VT__N) fam = FY_VT_GENERIC;
    int full = im->tokens[fam] > 0 ? im->tokens[fam] : vt_rule(fam, im->width, im->height);
    if (a == FY_IMG_DROP || a == FY_IMG_SPLIT) {
        if (bytes) *bytes = 0;
        return 0;
    }
    if (a == FY_IMG_DOWNSCALE && plan->downscale_px > 0) {
        int side = im->width > im->height ? im->width : im->height;
        if (side > plan->downscale_px) {
            double s = (double)plan->downscale_px / side;
            int w = (int)(im->width * s + 0.5), h = (int)(im->height * s + 0.5);
            /* a re-encoded JPEG shrinks roughly with its area */
            if (bytes) *bytes = (double)im->bytes * s * s;
            return fam == FY_VT_LLAVA ? full : vt_rule(fam, w, h);
        }
    }
    if (bytes) *bytes = (double)im->bytes;
    return full;
}

/* Context of the main node: text tokens (+ descriptions of split images), image tokens
 * and bytes after the plan. */
static void main_ctx(const struct fy_features *f, const struct fy_node *node,
                     const struct fy_plan *plan, struct milp_ctx *c, int *nsplit,
                     double *split_bytes, int *split_tokens_aux, const struct fy_node *aux)
{
    memset(c, 0, sizeof *c);
    c->node = node;
    c->in_text_tokens = f->text_tokens;
    c->bytes_up = 4.0 * f->text_tokens + 512; /* JSON body around the text */
    *nsplit = 0;
    *split_bytes = 0;
    *split_tokens_aux = 0;
    for (int i = 0; i < f->nimages && i < FY_MAX_IMAGES; i++) {
        double b = 0;
        if (plan && plan->img[i] == FY_IMG_SPLIT) {
            (*nsplit)++;
            struct fy_plan keep = *plan;
            keep.img[i] = FY_IMG_KEEP;
            *split_tokens_aux += pred_image_tokens(f, i, aux ? aux : node, &keep, &b);
            *split_bytes += b * 4.0 / 3.0;
            continue;
        }
        c->image_tokens += pred_image_tokens(f, i, node, plan, &b);
        c->bytes_up += b * 4.0 / 3.0; /* base64 in a data: URL */
    }
    c->in_text_tokens += *nsplit * PRED_DESC_TOKENS;
}

static int bank_index(const struct pred *p, const struct fy_node *node)
{
    return pred_find(p, node->name);
}

int pred_estimate(struct pred *p, const struct fy_features *f, const struct fy_node *nodes,
                  int node, const struct fy_plan *plan, struct fy_estimate *out)
{
    memset(out, 0, sizeof *out);
    if (node < 0 || node >= FY_MAX_NODES || !nodes) return -1;
    int bi = bank_index(p, &nodes[node]);
    if (bi < 0) bi = pred_add_node(p, &nodes[node]);
    if (bi < 0) return -1;
    struct pred_node *pn = &p->node[bi];
    const struct fy_node *aux = NULL;
    if (plan && plan->aux_node >= 0 && plan->aux_node < FY_MAX_NODES)
        aux = &nodes[plan->aux_node];
    struct milp_ctx c;
    int nsplit, aux_tokens;
    double aux_bytes;
    main_ctx(f, &nodes[node], plan, &c, &nsplit, &aux_bytes, &aux_tokens, aux);
    milp_predict(&pn->milp, f, &c, out);
    double sd;
    if (!p->sp_valid || memcmp(p->sp_key, f->ngram, sizeof p->sp_key) != 0) {
        memcpy(p->sp_key, f->ngram, sizeof p->sp_key);
        p->sp_nnz = mgqp_ngram_nonzero(f, p->sp_idx);
        p->sp_valid = 1;
    }
    out->q_mean = mgqp2_predict_sparse(&p->shared, qblock(p, pn), f, plan, p->sp_idx, p->sp_nnz, &sd);
    out->q_std = sd;
    if (nsplit > 0 && aux && aux != &nodes[node]) {
        /* the aux node describes the split images first; its answer then goes into the
         * main node's prompt (sequential) */
        int ai = bank_index(p, aux);
        if (ai < 0) ai = pred_add_node(p, aux);
        if (ai >= 0) {
            struct milp_ctx ac = {.node = aux, .in_text_tokens = PRED_DESC_PROMPT,
                                  .image_tokens = aux_tokens, .bytes_up = aux_bytes + 512,
                                  .out_tokens = PRED_DESC_TOKENS * nsplit};
            struct fy_estimate ae;
            milp_predict(&p->node[ai].milp, f, &ac, &ae);
            out->t_up_ms += ae.t_up_ms;
            out->t_queue_ms += ae.t_queue_ms;
            out->t_vision_ms += ae.t_vision_ms;
            out->t_prefill_ms += ae.t_prefill_ms + ae.t_decode_ms;
            out->t_down_ms += ae.t_down_ms;
            out->ttft_ms += ae.e2e_ms;
            out->e2e_ms += ae.e2e_ms;
            out->e2e_std_ms = sqrt(out->e2e_std_ms * out->e2e_std_ms +
                                   ae.e2e_std_ms * ae.e2e_std_ms);
            out->cost_usd += ae.cost_usd;
        }
    }
    return 0;
}

void pred_observe(struct pred *p, const struct fy_features *f, const struct fy_node *nodes,
                  const struct fy_outcome *o)
{
    int node = o->plan.node;
    if (node < 0 || node >= FY_MAX_NODES || !nodes) return;
    int bi = bank_index(p, &nodes[node]);
    if (bi < 0) bi = pred_add_node(p, &nodes[node]);
    if (bi < 0) return;
    struct pred_node *pn = &p->node[bi];
    const struct fy_node *aux = NULL;
    if (o->plan.aux_node >= 0 && o->plan.aux_node < FY_MAX_NODES) aux = &nodes[o->plan.aux_node];
    struct milp_ctx c;
    int nsplit, aux_tokens;
    double aux_bytes;
    main_ctx(f, &nodes[node], &o->plan, &c, &nsplit, &aux_bytes, &aux_tokens, aux);
    if (o->quality >= 0 && o->quality <= 1) {
        double q = mgqp2_predict(&p->shared, qblock(p, pn), f, &o->plan, NULL);
        p->brier_sum += (q - o->quality) * (q - o->quality);
        p->nq++;
        mgqp2_observe(&p->shared, qblock(p, pn), f, &o->plan, o->quality);
    }
    /* latency of split plans mixes two nodes; only direct runs train MILP */
    if (nsplit == 0) milp_observe(&pn->milp, f, &c, o);
}

void pred_merge(struct pred *m, const struct pred *f, const struct pred *b)
{
    mgqp_merge(&m->shared, &f->shared, &b->shared);
    for (int i = 0; i < m->n; i++) {
        int fi = pred_find(f, m->node[i].name), bi = pred_find(b, m->node[i].name);
        if (fi < 0 || bi < 0 || strcmp(f->node[fi].model, m->node[i].model)) continue;
        mgqp_merge(&m->node[i].mgqp, &f->node[fi].mgqp, &b->node[bi].mgqp);
        milp_merge(&m->node[i].milp, &f->node[fi].milp, &b->node[bi].milp);
    }
}

void pred_error_stats(const struct pred *p, int node, double *mae_ms, double *mape,
                      double *brier, long *n)
{
    double ae = 0, ape = 0;
    long k = 0;
    for (int i = 0; i < p->n; i++) {
        if (node >= 0 && i != node) continue;
        ae += p->node[i].milp.abs_err_sum;
        ape += p->node[i].milp.ape_sum;
        k += p->node[i].milp.nerr;
    }
    if (mae_ms) *mae_ms = k ? ae / k : 0;
    if (mape) *mape = k ? ape / k : 0;
    if (brier) *brier = p->nq ? p->brier_sum / p->nq : 0;
    if (n) *n = k;
}

/* ==== from trace outcomes ========================================================== */

/* The node of a trace outcome: its profile from pred_set_profile_priors when a node of
 * that name, role and model was given, else only its model's name (Qwen2-VL visual
 * tokens, the MILP's built-in rates); link and state as recorded. */
int pred_node_profile(const struct pred *p, const char *name, enum fy_role role,
                      const char *model, struct fy_node_profile *out)
{
    for (int k = 0; k < p->nnode_prof; k++) {
        const struct pred_node_prof *np = &p->node_prof[k];
        if (!strcmp(np->name, name) && np->role == role && !strcmp(np->prof.model, model)) {
            *out = np->prof;
            return 0;
        }
    }
    return -1;
}

static void trace_node(const struct pred *p, const struct trace_outcome *t, struct fy_node *n)
{
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", t->node);
    snprintf(n->prof.model, sizeof n->prof.model, "%s", t->model);
    n->role = t->role;
    n->prof.vt_family = FY_VT_QWEN2VL;
    pred_node_profile(p, t->node, t->role, t->model, &n->prof);
    n->link = t->link;
    n->st = t->state;
    n->st.healthy = 1;
}

/* Bank entry and MILP context for a recorded outcome (split plans excluded). */
static struct pred_node *trace_ctx(struct pred *p, const struct fy_features *f,
                                   const struct trace_outcome *t, struct fy_node *n,
                                   struct milp_ctx *c, int *nsplit)
{
    trace_node(p, t, n);
    int bi = bank_index(p, n);
    if (bi < 0) bi = pred_add_node(p, n);
    if (bi < 0) return NULL;
    /* the bank's entry may carry a real profile (max_seqs etc.): use it */
    double aux_bytes;
    int aux_tokens;
    main_ctx(f, n, &t->o.plan, c, nsplit, &aux_bytes, &aux_tokens, NULL);
    if (t->image_tokens > 0) c->image_tokens = t->image_tokens;
    if (t->bytes_up > 0) c->bytes_up = t->bytes_up;
    return &p->node[bi];
}

int pred_estimate_trace(struct pred *p, const struct fy_features *f,
                        const struct trace_outcome *t, struct fy_estimate *out)
{
    struct fy_node n;
    struct milp_ctx c;
    int nsplit;
    memset(out, 0, sizeof *out);
    struct pred_node *pn = trace_ctx(p, f, t, &n, &c, &nsplit);
    if (!pn) return -1;
    milp_predict(&pn->milp, f, &c, out);
    double sd;
    out->q_mean = mgqp2_predict(&p->shared, qblock(p, pn), f, &t->o.plan, &sd);
    out->q_std = sd;
    return nsplit ? 1 : 0;
}

void pred_observe_trace(struct pred *p, const struct fy_features *f,
                        const struct trace_outcome *t)
{
    struct fy_node n;
    struct milp_ctx c;
    int nsplit;
    struct pred_node *pn = trace_ctx(p, f, t, &n, &c, &nsplit);
    if (!pn) return;
    const struct fy_outcome *o = &t->o;
    /* an escalated cascade's second stage: latency only (its requests were selected by
     * the first answer's confidence; their labels would bias the node's quality low) */
    if (t->stage != 2 && o->quality >= 0 && o->quality <= 1) {
        double q = mgqp2_predict(&p->shared, qblock(p, pn), f, &o->plan, NULL);
        p->brier_sum += (q - o->quality) * (q - o->quality);
        p->nq++;
        mgqp2_observe(&p->shared, qblock(p, pn), f, &o->plan, o->quality);
    }
    if (nsplit == 0) milp_observe(&pn->milp, f, &c, o);
}

/* ==== evaluation helper ============================================================ */

static int cmp_s(const void *a, const void *b)
{
    double x = ((const struct pred__qpair *)a)->s, y = ((const struct pred__qpair *)b)->s;
    return x < y ? -1 : x > y;
}

double pred__auc(struct pred__qpair *q, size_t n)
{
    qsort(q, n, sizeof *q, cmp_s);
    double rank_sum = 0, pos = 0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && q[j].s == q[i].s) j++;
        double avg = (double)(i + j + 1) / 2.0; /* ranks i+1..j */
        for (size_t k = i; k < j; k++)
            if (q[k].y > 0.5) {
                rank_sum += avg;
                pos++;
            }
        i = j;
    }
    double neg = (double)n - pos;
    if (pos == 0 || neg == 0) return NAN;
    return (rank_sum - pos * (pos + 1) / 2) / (pos * neg);
}
