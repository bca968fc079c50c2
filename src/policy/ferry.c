/* ferry — our policy. For every admissible node and modality plan (keep; downscale to
 * downscale_px; drop the images; on an edge node, split: a cloud node describes the
 * images) it predicts quality (MGQP) and latency from the node's live queue and link
 * (MILP), then picks
 *     the fastest plan whose quality lower bound  q̂ − z·σ_q  reaches the target,
 * target = the request's min_quality, or, when unset, (best q̂ among the candidates) − δ:
 * "as good as the best node, within δ, with confidence". Ties and the rest:
 *  - latency is the predicted end-to-end latency plus a cost price μ · cost; μ ≥ 0 is a
 *    dual variable updated after every outcome, μ ← max(0, μ + η (cost − budget)/budget),
 *    so that the mean cost per request stays within cost_budget_usd (off when < 0);
 *    prefs.max_cost_usd is a hard limit per request;
 *  - with an SLO, plans predicted to meet it come first;
 *  - a dialogue stays where its KV cache lives unless moving pays: the node of the
 *    previous turn is credited the prefill of the history it has cached (kv=1);
 *  - privacy = edge-only: only edge nodes, and no split (the image would leave);
 *  - exploration: with probability eps / sqrt(1 + n/100) a random admissible node
 *    with its keep plan, so that MGQP/MILP keep learning about every node.
 * truth=1 replaces the predictors by the simulator's oracle (pol_ctx.oracle; tests and
 * the "exact predictions" upper bound): with δ = 0 and z = 0 the rule then picks the
 * oracle's choice. zl > 0 adds zl predicted standard deviations to every latency (risk
 * aversion; off by default: on the shipped experiments it bought latency with
 * completion). Parameters (defaults): z=1 zl=0 delta=0.03 kappa=0.1 downscale_px=448 plans=all|keep
 * split=1 kv=1 eps=0.05 cost_budget_usd=-1 eta=0.05 truth=0. Not done: cascades. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/learned.h"
#include "policy/policy.h"
#include "pred/pred.h"
#include "util/rng.h"

struct ferry {
    double z, zl, delta, kappa, eps, cost_budget, eta, mu;
    int downscale_px, all_plans, split, kv, truth;
    long n;
    struct pred *own;
    struct pol__sessions sess;
};

static int fy_kv(void *arg, const char *k, const char *v, char *err, size_t errlen)
{
    struct ferry *s = arg;
    double d;
    if (!strcmp(k, "z")) return pol__num("ferry", k, v, 0, 10, &s->z, err, errlen);
    if (!strcmp(k, "zl")) return pol__num("ferry", k, v, 0, 10, &s->zl, err, errlen);
    if (!strcmp(k, "delta")) return pol__num("ferry", k, v, 0, 1, &s->delta, err, errlen);
    if (!strcmp(k, "kappa")) return pol__num("ferry", k, v, 0, 100, &s->kappa, err, errlen);
    if (!strcmp(k, "eps")) return pol__num("ferry", k, v, 0, 1, &s->eps, err, errlen);
    if (!strcmp(k, "eta")) return pol__num("ferry", k, v, 0, 100, &s->eta, err, errlen);
    if (!strcmp(k, "cost_budget_usd"))
        return pol__num("ferry", k, v, -1, 1e9, &s->cost_budget, err, errlen);
    if (!strcmp(k, "plans")) {
        if (strcmp(v, "all") && strcmp(v, "keep")) {
            snprintf(err, errlen, "ferry: plans=%s: expected all or keep", v);
            return -1;
        }
        s->all_plans = !strcmp(v, "all");
        return 0;
    }
    int *flag = !strcmp(k, "split") ? &s->split : !strcmp(k, "kv") ? &s->kv
              : !strcmp(k, "truth") ? &s->truth : NULL;
    if (flag) {
        if (pol__num("ferry", k, v, 0, 1, &d, err, errlen) < 0) return -1;
        *flag = d != 0;
        return 0;
    }
    if (!strcmp(k, "downscale_px")) {
        if (pol__num("ferry", k, v, 28, 1 << 16, &d, err, errlen) < 0) return -1;
        s->downscale_px = (int)d;
        return 0;
    }
    snprintf(err, errlen,
             "ferry: unknown parameter '%s' (z, zl, delta, kappa, downscale_px, plans, split, kv, eps, "
             "cost_budget_usd, eta, truth)", k);
    return -1;
}

static int fy_init(void **state, const char *params, char *err, size_t errlen)
{
    struct ferry *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "ferry: out of memory");
        return -ENOMEM;
    }
    s->z = 1.0;
    s->zl = 0;
    s->delta = 0.03;
    s->kappa = 0.1;
    s->eps = 0.05;
    s->cost_budget = -1;
    s->eta = 0.05;
    s->downscale_px = 448;
    s->all_plans = 1;
    s->split = 1;
    s->kv = 1;
    int rc = pol_params_each(params, fy_kv, s, err, errlen);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *state = s;
    return 0;
}

struct cand {
    struct fy_plan p;
    struct fy_estimate e;
    double lcb;        /* quality lower confidence bound */
    double lat;        /* effective latency (ms, incl. cost price and cache credit) */
    int slo_ok;
    int feasible;      /* reaches the (latency-relaxed) target */
};

/* Least-loaded admissible cloud node (the describer of split plans), or -1. */
static int split_aux(const struct pol_ctx *c)
{
    int best = -1;
    double bl = 0;
    for (int i = 0; i < c->nnodes; i++) {
        if (c->nodes[i].role != FY_ROLE_CLOUD || !pol__allowed(c, i)) continue;
        double l = pol_node_load(&c->nodes[i]);
        if (best < 0 || l < bl) best = i, bl = l;
    }
    return best;
}

/* Is a a better choice than b, given the target? */
static int better(const struct cand *a, const struct cand *b)
{
    int fa = a->feasible, fb = b->feasible;
    if (fa != fb) return fa > fb;
    if (a->slo_ok != b->slo_ok) return a->slo_ok > b->slo_ok;
    /* nothing reaches the target: the best mean (a node with few, unlucky outcomes has
     * a low lower bound but is not locked out by it) */
    if (!fa && fabs(a->e.q_mean - b->e.q_mean) > 1e-12) return a->e.q_mean > b->e.q_mean;
    return a->lat < b->lat;
}

#define MAX_CANDS (FY_MAX_NODES * POL_MAX_PLANS)

static int fy_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                     struct fy_estimate *est)
{
    struct ferry *s = state;
    if (est) memset(est, 0, sizeof *est);
    struct pred *bank = NULL;
    if (s->truth) {
        if (!c->oracle) return -EINVAL;
    } else if (!(bank = pol__bank(&s->own, c))) {
        return -ENOMEM;
    }
    const struct fy_features *f = c->f;
    const struct fy_prefs *pr = c->prefs;
    struct pol__sess *ss = s->kv ? pol__session(&s->sess, c->session ? c->session : pr->session)
                                 : NULL;
    int aux = (s->split && s->all_plans && f->nimages > 0) ? split_aux(c) : -1;
    struct cand cd[MAX_CANDS];
    int nc = 0;
    double qbest = -1;
    for (int i = 0; i < c->nnodes && i < FY_MAX_NODES; i++) {
        if (!pol__allowed(c, i)) continue;
        struct fy_plan plans[POL_MAX_PLANS];
        int np = s->all_plans
                     ? pol__plans(c, i, s->downscale_px,
                                  c->nodes[i].role == FY_ROLE_EDGE ? aux : -1, plans)
                     : (pol_plan_keep(&plans[0], i), 1);
        for (int k = 0; k < np; k++) {
            struct cand *x = &cd[nc];
            x->p = plans[k];
            int rc = s->truth ? c->oracle(c->oracle_arg, &x->p, &x->e)
                              : pred_estimate(bank, f, c->nodes, i, &x->p, &x->e);
            if (rc < 0) continue;
            if (pr->max_cost_usd >= 0 && x->e.cost_usd > pr->max_cost_usd) continue;
            /* latency with its risk: mean + zl standard deviations (a node whose
             * latency the predictor cannot pin down, e.g. one with bursty queues, pays
             * for it) */
            double lat = x->e.e2e_ms + (s->truth ? 0 : s->zl) * x->e.e2e_std_ms;
            if (ss && ss->last_node == i && f->history_tokens > 0 && bank) {
                /* cached history: its prefill is not redone on the node that holds it */
                int in = f->text_tokens > 0 ? f->text_tokens : 1;
                double saved = x->e.t_prefill_ms * (double)f->history_tokens / in;
                if (saved > x->e.t_prefill_ms) saved = x->e.t_prefill_ms;
                lat -= saved;
            }
            x->lat = lat + s->mu * x->e.cost_usd;
            double zs = (s->truth ? 0 : s->z) * x->e.q_std;
            x->lcb = x->e.q_mean - zs;
            x->slo_ok = !(pr->slo_ms > 0) || lat <= pr->slo_ms;
            if (x->e.q_mean > qbest) qbest = x->e.q_mean;
            nc++;
        }
    }
    if (nc == 0) return -1;
    double target = pr->min_quality >= 0 ? pr->min_quality
                                         : qbest - (s->truth ? 0 : s->delta);
    /* the reference: the best mean (ties: the fastest); a plan faster than it by Δ s
     * may be kappa·Δ below the target (a queue of a minute is not worth a point) */
    int ref = 0;
    for (int k = 1; k < nc; k++)
        if (cd[k].e.q_mean > cd[ref].e.q_mean + 1e-12 ||
            (fabs(cd[k].e.q_mean - cd[ref].e.q_mean) <= 1e-12 && cd[k].lat < cd[ref].lat))
            ref = k;
    double kappa = s->truth ? 0 : s->kappa;
    for (int k = 0; k < nc; k++) {
        double gain_s = (cd[ref].lat - cd[k].lat) / 1000;
        double q = k == ref ? cd[k].e.q_mean : cd[k].lcb;
        cd[k].feasible = q >= target - kappa * (gain_s > 0 ? gain_s : 0) - 1e-12;
    }
    int b = 0;
    for (int k = 1; k < nc; k++)
        if (better(&cd[k], &cd[b])) b = k;
    /* exploration over nodes (keep plans), never in truth mode */
    if (!s->truth && c->rng && s->eps > 0 &&
        rng_uniform(c->rng) < s->eps / sqrt(1.0 + s->n / 100.0)) {
        int keep_idx[FY_MAX_NODES], nk = 0;
        for (int k = 0; k < nc; k++)
            if (cd[k].p.aux_node < 0 && cd[k].p.downscale_px == 0) {
                int all_keep = 1;
                for (int j = 0; j < f->nimages && j < FY_MAX_IMAGES; j++)
                    if (cd[k].p.img[j] != FY_IMG_KEEP) all_keep = 0;
                if (all_keep && nk < FY_MAX_NODES) keep_idx[nk++] = k;
            }
        if (nk > 0) b = keep_idx[rng_below(c->rng, (uint64_t)nk)];
    }
    *out = cd[b].p;
    if (est) *est = cd[b].e;
    s->n++;
    if (ss) ss->last_node = out->node;
    return 0;
}

static void fy_observe(void *state, const struct pol_ctx *c, const struct fy_outcome *o)
{
    struct ferry *s = state;
    if (s->cost_budget > 0 && o->cost_usd >= 0) {
        /* μ in ms per USD: scaled so that one budget's worth of overspend moves it by
         * eta seconds-per-budget */
        s->mu += s->eta * 1000.0 / s->cost_budget * (o->cost_usd - s->cost_budget) /
                 s->cost_budget;
        if (s->mu < 0) s->mu = 0;
    }
    pol__bank_observe(s->own, c, o);
}

static void fy_free(void *state)
{
    struct ferry *s = state;
    if (!s) return;
    pred_free(s->own);
    free(s);
}

const struct fy_policy pol_ferry = {
    .name = "ferry",
    .summary = "ours: fastest node x modality plan whose quality LCB meets the target; live queues, cost dual, KV affinity, privacy",
    .init = fy_init,
    .decide = fy_decide,
    .observe = fy_observe,
    .free = fy_free,
};
