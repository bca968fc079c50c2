/* lcio — LCIO's resource-constrained local-cloud offloading, as a primal-dual
 * contextual bandit (the paper trains PPO/A2C with constraints; the issue allows a
 * primal-dual bandit, docs/policies.md says what differs).
 *  - action = node × which images ("views") are sent: every subset when the request has
 *    1–3 images (unsent images are dropped), {all, none} beyond 3;
 *  - state (context) = task, the dialogue's previous action (none / edge / cloud text
 *    only / cloud with images) and whether the request has images — LCIO's state of
 *    previous action, views and task;
 *  - reward (LCIO): r = q + assoc/3 − lat/3 − cost/3 with lat = e2e / lat_norm_ms,
 *    cost = usd / cost_norm_usd, and assoc = share of the images sent (our proxy: the
 *    simulator has no per-view relevance scores);
 *  - primal: q is learned per (state, node, share of images sent ∈ {none, some, all})
 *    as a running mean with a UCB bonus ucb · sqrt(ln N / (n + 1)) (prior q0 = 0.5);
 *    latency and cost of an action come from the MILP predictor (src/pred);
 *  - dual: λ_L, λ_C ≥ 0 price latency and money against the per-turn share of the
 *    per-dialogue budgets (budget / turns):  λ ← max(0, λ + η (spent / share − 1))
 *    after each outcome; the action maximises r̂ − λ_L lat_pred/share_L − λ_C cost_pred/share_C;
 *  - hard budget (LCIO's RCRL: steps over budget earn nothing): actions whose
 *    predicted latency or cost exceed what the dialogue has left are masked; when none
 *    fits, the fastest action with no images on the cheapest node is taken.
 * Parameters: budget_ms=30000 budget_usd=0.05 (LCIO's evaluation budgets) turns=4
 *   lat_norm_ms=10000 cost_norm_usd=0.01 eta=0.05 ucb=0.3 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/learned.h"
#include "policy/policy.h"
#include "pred/pred.h"

#define LC_PREV 4   /* previous action class: none, edge, cloud text-only, cloud images */
#define LC_SHARE 3  /* images sent: none, some, all */

struct cell {
    long n;
    double q_sum;
};

struct lcio {
    double budget_ms, budget_usd, turns, lat_norm, cost_norm, eta, ucb;
    double lam_l, lam_c;
    long plays;
    struct cell q[FY_TASK__N][LC_PREV][2][FY_MAX_NODES][LC_SHARE];
    struct pred *own;
    struct pol__sessions sess;
};

static int lc_kv(void *arg, const char *k, const char *v, char *err, size_t errlen)
{
    struct lcio *s = arg;
    if (!strcmp(k, "budget_ms")) return pol__num("lcio", k, v, 1, 1e12, &s->budget_ms, err, errlen);
    if (!strcmp(k, "budget_usd")) return pol__num("lcio", k, v, 0, 1e9, &s->budget_usd, err, errlen);
    if (!strcmp(k, "turns")) return pol__num("lcio", k, v, 1, 1e6, &s->turns, err, errlen);
    if (!strcmp(k, "lat_norm_ms")) return pol__num("lcio", k, v, 1e-3, 1e12, &s->lat_norm, err, errlen);
    if (!strcmp(k, "cost_norm_usd")) return pol__num("lcio", k, v, 1e-12, 1e9, &s->cost_norm, err, errlen);
    if (!strcmp(k, "eta")) return pol__num("lcio", k, v, 0, 10, &s->eta, err, errlen);
    if (!strcmp(k, "ucb")) return pol__num("lcio", k, v, 0, 100, &s->ucb, err, errlen);
    snprintf(err, errlen,
             "lcio: unknown parameter '%s' (budget_ms, budget_usd, turns, lat_norm_ms, "
             "cost_norm_usd, eta, ucb)", k);
    return -1;
}

static int lc_init(void **state, const char *params, char *err, size_t errlen)
{
    struct lcio *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "lcio: out of memory");
        return -ENOMEM;
    }
    s->budget_ms = 30000;
    s->budget_usd = 0.05;
    s->turns = 4;
    s->lat_norm = 10000;
    s->cost_norm = 0.01;
    s->eta = 0.05;
    s->ucb = 0.3;
    int rc = pol_params_each(params, lc_kv, s, err, errlen);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *state = s;
    return 0;
}

static int share_of(int sent, int n) { return sent == 0 ? 0 : sent < n ? 1 : 2; }

static int prev_class(const struct pol_ctx *c, int last_action)
{
    if (last_action < 0) return 0;
    int node = last_action >> 8, sent = last_action & 0xff;
    if (node >= c->nnodes || c->nodes[node].role == FY_ROLE_EDGE) return 1;
    return sent ? 3 : 2;
}

static int task_of(const struct fy_features *f)
{
    return f->task >= 0 && f->task < FY_TASK__N ? (int)f->task : 0;
}

/* Plan of action (node, subset mask over the first n images). */
static void mk_plan(struct fy_plan *p, int node, unsigned mask, int n, int all_or_none)
{
    pol_plan_keep(p, node);
    for (int k = 0; k < n; k++) {
        int sent = all_or_none ? (mask != 0) : (int)((mask >> k) & 1);
        p->img[k] = sent ? FY_IMG_KEEP : FY_IMG_DROP;
    }
}

static int lc_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                     struct fy_estimate *est)
{
    struct lcio *s = state;
    struct pred *bank = pol__bank(&s->own, c);
    if (est) memset(est, 0, sizeof *est);
    if (!bank) return -ENOMEM;
    const struct fy_features *f = c->f;
    int n = f->nimages < FY_MAX_IMAGES ? f->nimages : FY_MAX_IMAGES;
    int all_or_none = n > 3;
    unsigned nmask = all_or_none ? 2 : 1u << n;
    struct pol__sess *ss = pol__session(&s->sess, c->session ? c->session : c->prefs->session);
    double left_ms = ss ? s->budget_ms - ss->used_ms : s->budget_ms;
    double left_usd = ss ? s->budget_usd - ss->used_usd : s->budget_usd;
    int t = task_of(f), pc = prev_class(c, ss ? ss->last_action : -1), hi = n > 0;
    double share_l = s->budget_ms / s->turns, share_c = s->budget_usd / s->turns;
    double lnN = log((double)s->plays + 2);
    int found = 0, fb_found = 0;
    double best = 0;
    struct fy_plan fb;
    struct fy_estimate best_e = {0}, fb_e = {0};
    for (int i = 0; i < c->nnodes && i < FY_MAX_NODES; i++) {
        if (!pol__allowed(c, i)) continue;
        for (unsigned m = 0; m < nmask; m++) {
            struct fy_plan p;
            mk_plan(&p, i, all_or_none ? (m ? 0xffffu : 0) : m, n, all_or_none);
            int sent = 0;
            for (int k = 0; k < n; k++) sent += p.img[k] == FY_IMG_KEEP;
            struct fy_estimate e;
            if (pred_estimate(bank, f, c->nodes, i, &p, &e) < 0) continue;
            /* fallback: no images, the cheapest-then-fastest node */
            if (sent == 0 && (!fb_found || e.cost_usd < fb_e.cost_usd - 1e-12 ||
                              (e.cost_usd <= fb_e.cost_usd + 1e-12 && e.e2e_ms < fb_e.e2e_ms))) {
                fb = p;
                fb_e = e;
                fb_found = 1;
            }
            if (e.e2e_ms > left_ms || e.cost_usd > left_usd) continue;
            const struct cell *cl = &s->q[t][pc][hi][i][share_of(sent, n)];
            double q = (cl->q_sum + 0.5) / (cl->n + 1);
            q += s->ucb * sqrt(lnN / (cl->n + 1));
            double assoc = n ? (double)sent / n : 0;
            double lat = e.e2e_ms / s->lat_norm, cost = e.cost_usd / s->cost_norm;
            double r = q + assoc / 3 - lat / 3 - cost / 3 - s->lam_l * e.e2e_ms / share_l -
                       (share_c > 0 ? s->lam_c * e.cost_usd / share_c : 0);
            if (!found || r > best) {
                best = r;
                *out = p;
                best_e = e;
                found = 1;
            }
        }
    }
    if (!found) {
        if (!fb_found) return -1;
        *out = fb;
        best_e = fb_e;
    }
    if (est) *est = best_e;
    return 0;
}

static void lc_observe(void *state, const struct pol_ctx *c, const struct fy_outcome *o)
{
    struct lcio *s = state;
    const struct fy_features *f = c->f;
    int i = o->plan.node;
    if (i < 0 || i >= FY_MAX_NODES) return;
    int n = f->nimages < FY_MAX_IMAGES ? f->nimages : FY_MAX_IMAGES, sent = 0;
    for (int k = 0; k < n; k++) sent += o->plan.img[k] != FY_IMG_DROP;
    struct pol__sess *ss = pol__session(&s->sess, c->session ? c->session : c->prefs->session);
    int t = task_of(f), pc = prev_class(c, ss ? ss->last_action : -1), hi = n > 0;
    double e2e = o->e2e_ms > 0 ? o->e2e_ms : 0, usd = o->cost_usd > 0 ? o->cost_usd : 0;
    if (o->quality >= 0) {
        struct cell *cl = &s->q[t][pc][hi][i][share_of(sent, n)];
        cl->n++;
        cl->q_sum += o->failed ? 0 : o->quality;
        s->plays++;
    }
    double share_l = s->budget_ms / s->turns, share_c = s->budget_usd / s->turns;
    s->lam_l += s->eta * (e2e / share_l - 1);
    if (s->lam_l < 0) s->lam_l = 0;
    if (share_c > 0) {
        s->lam_c += s->eta * (usd / share_c - 1);
        if (s->lam_c < 0) s->lam_c = 0;
    }
    if (ss) {
        ss->used_ms += e2e;
        ss->used_usd += usd;
        ss->turns++;
        ss->last_action = (i << 8) | (sent > 255 ? 255 : sent);
        ss->last_node = i;
    }
    pol__bank_observe(s->own, c, o);
}

static void lc_free(void *state)
{
    struct lcio *s = state;
    if (!s) return;
    pred_free(s->own);
    free(s);
}

const struct fy_policy pol_lcio = {
    .name = "lcio",
    .summary = "LCIO: primal-dual contextual bandit over node x image subsets with per-dialogue latency/cost budgets",
    .init = lc_init,
    .decide = lc_decide,
    .observe = lc_observe,
    .free = lc_free,
};
