/* lcio — LCIO's resource-constrained local-cloud offloading, with two learners
 * (parameter learner=, docs/policies.md "lcio" has the numbers that chose the default):
 *
 * learner=a2c — RC-A2C, LCIO's method: an advantage actor-critic (pred/a2c.h) whose
 *  - action = (node, images sent ∈ {none, first ⌈n/2⌉, all}) over the first LC_AN
 *    nodes (unsent images are dropped);
 *  - state = LCIO's: task, the dialogue's previous action (none / edge / cloud text
 *    only / cloud with images), the remaining latency and money of the dialogue
 *    (fractions of the budgets); plus ours: request features bucketed (has images,
 *    image count, log text tokens, c_text, mean c_img) and each node's MILP-predicted
 *    latency and cost of sending everything (so that the actor sees the live load);
 *  - reward (LCIO) r = q + assoc/3 − lat/3 − cost/3, as the bandit's below but with the
 *    observed q (0/1), e2e and cost; penalised by the Lagrange multipliers:
 *    r − λ_L e2e/share_L − λ_C usd/share_C; TD target r' + γ V(s'), s' = this state after
 *    the action (previous action and remaining budget updated; γ = 0 by default: the
 *    next request's features are unknown when the outcome arrives);
 *  - actions drawn from π with the caller's rng (greedy without one); actions predicted
 *    to overrun what the dialogue has left are masked, as in the bandit;
 *  - the state is rebuilt at observe() from the request and the nodes' state then (not
 *    stored from decide()): the node terms may have moved in between.
 *
 * learner=bandit — a primal-dual contextual bandit:
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
 *  - the action maximises r̂ − λ_L lat_pred/share_L − λ_C cost_pred/share_C.
 *
 * Both: dual λ_L, λ_C ≥ 0 price latency and money against the per-turn share of the
 *    per-dialogue budgets (budget / turns):  λ ← max(0, λ + η (spent / share − 1))
 *    after each outcome; hard budget (LCIO's RCRL: steps over budget earn nothing):
 *    actions whose predicted latency or cost exceed what the dialogue has left are
 *    masked; when none fits, the fastest action with no images on the cheapest node is
 *    taken. Nodes refused by privacy=edge-only (pol__allowed) are never offered.
 * Parameters: learner=bandit budget_ms=30000 budget_usd=0.05 (LCIO's evaluation budgets)
 *   turns=4 lat_norm_ms=10000 cost_norm_usd=0.01 eta=0.05 ucb=0.3 (bandit)
 *   lr=0.001 hidden=64 gamma=0 ent=0 seed=1 (a2c; picked on seeds 101-103, never on the
 *   reported seeds: docs/policies.md "lcio") */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/learned.h"
#include "policy/policy.h"
#include "pred/a2c.h"
#include "pred/pred.h"
#include "util/rng.h"

#define LC_PREV 4   /* previous action class: none, edge, cloud text-only, cloud images */
#define LC_SHARE 3  /* images sent: none, some, all */
#define LC_AN 10    /* nodes the a2c learner offers (actions LC_AN × LC_SHARE) */
#define LC_NIN (18 + 2 * LC_AN)
#define LC_NACT (LC_AN * LC_SHARE)

struct cell {
    long n;
    double q_sum;
};

struct lcio {
    double budget_ms, budget_usd, turns, lat_norm, cost_norm, eta, ucb;
    double lam_l, lam_c;
    long plays;
    int learner;   /* 0 bandit, 1 a2c */
    double lr, hidden, gamma, ent, seed;
    struct a2c *net;
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
    if (!strcmp(k, "lr")) return pol__num("lcio", k, v, 1e-6, 1, &s->lr, err, errlen);
    if (!strcmp(k, "hidden")) return pol__int("lcio", k, v, 0, A2C_MAX_HID, &s->hidden, err, errlen);
    if (!strcmp(k, "gamma")) return pol__num("lcio", k, v, 0, 1, &s->gamma, err, errlen);
    if (!strcmp(k, "ent")) return pol__num("lcio", k, v, 0, 10, &s->ent, err, errlen);
    if (!strcmp(k, "seed")) return pol__int("lcio", k, v, 0, 1e15, &s->seed, err, errlen);
    if (!strcmp(k, "learner")) {
        if (!strcmp(v, "a2c")) s->learner = 1;
        else if (!strcmp(v, "bandit")) s->learner = 0;
        else {
            snprintf(err, errlen, "lcio: learner=%.40s: expected a2c or bandit", v);
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen,
             "lcio: unknown parameter '%s' (learner, budget_ms, budget_usd, turns, lat_norm_ms, "
             "cost_norm_usd, eta, ucb, lr, hidden, gamma, ent, seed)", k);
    return -1;
}

static int lc_init(void **state, const char *params, char *err, size_t errlen)
{
    struct lcio *s = pol_state_new("lcio", sizeof *s, err, errlen);
    if (!s) return -ENOMEM;
    s->budget_ms = 30000;
    s->budget_usd = 0.05;
    s->turns = 4;
    s->lat_norm = 10000;
    s->cost_norm = 0.01;
    s->eta = 0.05;
    s->ucb = 0.3;
    s->learner = 0;
    s->lr = 0.001;
    s->hidden = 64;
    s->gamma = 0;
    s->ent = 0;
    s->seed = 1;
    int rc = pol_params_each(params, lc_kv, s, err, errlen);
    if (rc < 0) {
        free(s);
        return rc;
    }
    if (s->learner == 1) {
        struct a2c_cfg cfg;
        a2c_cfg_default(&cfg, LC_NIN, LC_NACT);
        cfg.nhid = (int)s->hidden;
        cfg.lr = s->lr;
        cfg.ent_coef = s->ent;
        struct rng r;
        rng_seed(&r, (uint64_t)s->seed);
        s->net = a2c_new(&cfg, &r);
        if (!s->net) {
            snprintf(err, errlen, "lcio: out of memory");
            free(s);
            return -ENOMEM;
        }
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

static int bandit_decide(struct lcio *s, const struct pol_ctx *c, struct fy_plan *out,
                         struct fy_estimate *est)
{
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

/* ==== learner=a2c ================================================================== */

/* Plan of a2c action (node, share): none, the first ⌈n/2⌉ images, or all. */
static void a2c_plan(struct fy_plan *p, int node, int share, int n)
{
    pol_plan_keep(p, node);
    int keep = share == 0 ? 0 : share == 1 ? (n + 1) / 2 : n;
    for (int k = 0; k < n; k++) p->img[k] = k < keep ? FY_IMG_KEEP : FY_IMG_DROP;
}

static int a2c_share_valid(int share, int n)
{
    return share == 0 || (share == 2 && n > 0) || (share == 1 && n > 1);
}

static double clampd(double v, double lo, double hi) { return v < lo ? lo : v > hi ? hi : v; }

/* State x[LC_NIN] and action mask of request c for a dialogue in class pc with left_ms /
 * left_usd to spend; plans[]/ests[] (may be NULL) get each allowed action's plan and
 * MILP estimate; fb and fb_e the fallback (no images, cheapest then fastest) when
 * fb_found is set. Returns the number of allowed actions. */
static int a2c_state(const struct lcio *s, const struct pol_ctx *c, struct pred *bank, int pc,
                     double left_ms, double left_usd, double *x, unsigned char *mask,
                     struct fy_plan *plans, struct fy_estimate *ests, struct fy_plan *fb,
                     struct fy_estimate *fb_e, int *fb_found)
{
    const struct fy_features *f = c->f;
    int n = f->nimages < FY_MAX_IMAGES ? f->nimages : FY_MAX_IMAGES, na = 0;
    memset(x, 0, sizeof(double) * LC_NIN);
    memset(mask, 0, LC_NACT);
    x[task_of(f)] = 1;                                   /* 0..6 */
    x[FY_TASK__N + pc] = 1;                              /* 7..10 */
    x[11] = n > 0;
    x[12] = (n < 4 ? n : 4) / 4.0;
    x[13] = clampd(log2(1.0 + (f->text_tokens > 0 ? f->text_tokens : 0)) / 12, 0, 2);
    x[14] = clampd(f->c_text, 0, 1);
    double ci = 0;
    for (int k = 0; k < n; k++) ci += f->img[k].c_img;
    x[15] = n ? clampd(ci / n, 0, 1) : 0;
    x[16] = clampd(left_ms / s->budget_ms, -1, 1);
    x[17] = s->budget_usd > 0 ? clampd(left_usd / s->budget_usd, -1, 1) : 0;
    *fb_found = 0;
    for (int i = 0; i < c->nnodes && i < LC_AN; i++) {
        if (!pol__allowed(c, i)) continue;
        for (int sh = 0; sh < LC_SHARE; sh++) {
            if (!a2c_share_valid(sh, n)) continue;
            struct fy_plan p;
            struct fy_estimate e;
            a2c_plan(&p, i, sh, n);
            if (pred_estimate(bank, f, c->nodes, i, &p, &e) < 0) continue;
            if (sh == (n ? 2 : 0)) { /* everything sent: the node's load and price */
                x[18 + 2 * i] = clampd(e.e2e_ms / s->lat_norm, 0, 10);
                x[19 + 2 * i] = clampd(e.cost_usd / s->cost_norm, 0, 10);
            }
            if (sh == 0 && (!*fb_found || e.cost_usd < fb_e->cost_usd - 1e-12 ||
                            (e.cost_usd <= fb_e->cost_usd + 1e-12 && e.e2e_ms < fb_e->e2e_ms))) {
                *fb = p;
                *fb_e = e;
                *fb_found = 1;
            }
            if (e.e2e_ms > left_ms || e.cost_usd > left_usd) continue;
            int a = i * LC_SHARE + sh;
            mask[a] = 1;
            if (plans) plans[a] = p;
            if (ests) ests[a] = e;
            na++;
        }
    }
    return na;
}

static int a2c_decide(struct lcio *s, const struct pol_ctx *c, struct fy_plan *out,
                      struct fy_estimate *est)
{
    struct pred *bank = pol__bank(&s->own, c);
    if (est) memset(est, 0, sizeof *est);
    if (!bank) return -ENOMEM;
    struct pol__sess *ss = pol__session(&s->sess, c->session ? c->session : c->prefs->session);
    double left_ms = ss ? s->budget_ms - ss->used_ms : s->budget_ms;
    double left_usd = ss ? s->budget_usd - ss->used_usd : s->budget_usd;
    int pc = prev_class(c, ss ? ss->last_action : -1), fb_found;
    double x[LC_NIN];
    unsigned char mask[LC_NACT];
    struct fy_plan plans[LC_NACT], fb;
    struct fy_estimate ests[LC_NACT], fb_e = {0};
    int na = a2c_state(s, c, bank, pc, left_ms, left_usd, x, mask, plans, ests, &fb, &fb_e,
                       &fb_found);
    if (!na) {
        if (!fb_found) return -1;
        *out = fb;
        if (est) *est = fb_e;
        return 0;
    }
    int a = c->rng ? a2c_sample(s->net, x, mask, c->rng) : a2c_greedy(s->net, x, mask);
    if (a < 0) return -1;
    *out = plans[a];
    if (est) *est = ests[a];
    return 0;
}

/* The update of outcome o (before the session's spend is updated). */
static void a2c_learn(struct lcio *s, const struct pol_ctx *c, const struct fy_outcome *o,
                      const struct pol__sess *ss, int sent)
{
    const struct fy_features *f = c->f;
    int i = o->plan.node, n = f->nimages < FY_MAX_IMAGES ? f->nimages : FY_MAX_IMAGES;
    if (i < 0 || i >= LC_AN || o->quality < 0) return;
    struct pred *bank = pol__bank(&s->own, c);
    if (!bank) return;
    double left_ms = ss ? s->budget_ms - ss->used_ms : s->budget_ms;
    double left_usd = ss ? s->budget_usd - ss->used_usd : s->budget_usd;
    int pc = prev_class(c, ss ? ss->last_action : -1), fb_found;
    double x[LC_NIN];
    unsigned char mask[LC_NACT];
    struct fy_plan fb;
    struct fy_estimate fb_e = {0};
    a2c_state(s, c, bank, pc, left_ms, left_usd, x, mask, NULL, NULL, &fb, &fb_e, &fb_found);
    int sh = share_of(sent, n), a = i * LC_SHARE + sh;
    mask[a] = 1; /* it was taken: allowed then (the fallback, or the budget moved since) */
    double e2e = o->e2e_ms > 0 ? o->e2e_ms : 0, usd = o->cost_usd > 0 ? o->cost_usd : 0;
    double q = o->failed ? 0 : o->quality, assoc = n ? (double)sent / n : 0;
    double r = q + assoc / 3 - e2e / s->lat_norm / 3 - usd / s->cost_norm / 3;
    if (e2e > left_ms || usd > left_usd) r = 0; /* LCIO: no reward past the budget */
    double share_l = s->budget_ms / s->turns, share_c = s->budget_usd / s->turns;
    r -= s->lam_l * e2e / share_l + (share_c > 0 ? s->lam_c * usd / share_c : 0);
    double target = r;
    if (s->gamma > 0) { /* s' = this state after the action */
        double x2[LC_NIN];
        memcpy(x2, x, sizeof x2);
        for (int k = 0; k < LC_PREV; k++) x2[FY_TASK__N + k] = 0;
        int node_cloud = i < c->nnodes && c->nodes[i].role != FY_ROLE_EDGE;
        x2[FY_TASK__N + (node_cloud ? (sent ? 3 : 2) : 1)] = 1;
        x2[16] = clampd((left_ms - e2e) / s->budget_ms, -1, 1);
        x2[17] = s->budget_usd > 0 ? clampd((left_usd - usd) / s->budget_usd, -1, 1) : 0;
        target += s->gamma * a2c_value(s->net, x2);
    }
    a2c_update(s->net, x, mask, a, target);
}

static int lc_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                     struct fy_estimate *est)
{
    struct lcio *s = state;
    return s->learner ? a2c_decide(s, c, out, est) : bandit_decide(s, c, out, est);
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
    if (s->learner) a2c_learn(s, c, o, ss, sent);
    else if (o->quality >= 0) {
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
    a2c_free(s->net);
    free(s);
}

const struct fy_policy pol_lcio = {
    .name = "lcio",
    .summary = "LCIO: primal-dual bandit (learner=a2c: RC-A2C actor-critic, Lagrangian budget penalties) over node x images sent, per-dialogue latency/cost budgets",
    .init = lc_init,
    .decide = lc_decide,
    .observe = lc_observe,
    .free = lc_free,
};
