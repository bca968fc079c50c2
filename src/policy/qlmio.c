/* qlmio — QLMIO's quality–latency tradeoff-aware offloading. For every admissible node
 * (images as sent), MGQP predicts the quality Q̂ and MILP the end-to-end latency L̂
 * (src/pred); the request goes to
 *     argmax_n  w · Q̂_n − (1 − w) · L̂_n / L_ref     subject to  Q̂_n ≥ q_min
 * and to the node with the highest Q̂ when no node meets q_min. w is the request's
 * tradeoff preference (prefs.tradeoff) or the parameter w; q_min the request's minimum
 * quality or the parameter qmin; L_ref the parameter lref_ms, or, when 0, the largest
 * L̂ among the candidates (so that both terms are in [0, 1] for every request).
 * Predictors learn online from every outcome (pred_observe).
 * Parameters: w=0.5 qmin=0 lref_ms=0 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/learned.h"
#include "policy/policy.h"
#include "pred/pred.h"

struct qlmio {
    double w, qmin, lref_ms;
    struct pred *own;
};

static int q_kv(void *arg, const char *k, const char *v, char *err, size_t errlen)
{
    struct qlmio *s = arg;
    if (!strcmp(k, "w")) return pol__num("qlmio", k, v, 0, 1, &s->w, err, errlen);
    if (!strcmp(k, "qmin")) return pol__num("qlmio", k, v, 0, 1, &s->qmin, err, errlen);
    if (!strcmp(k, "lref_ms")) return pol__num("qlmio", k, v, 0, 1e9, &s->lref_ms, err, errlen);
    snprintf(err, errlen, "qlmio: unknown parameter '%s' (w, qmin, lref_ms)", k);
    return -1;
}

static int q_init(void **state, const char *params, char *err, size_t errlen)
{
    struct qlmio *s = pol_state_new("qlmio", sizeof *s, err, errlen);
    if (!s) return -ENOMEM;
    s->w = 0.5;
    return pol_state_params(state, s, params, q_kv, err, errlen);
}

static int q_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                    struct fy_estimate *est)
{
    struct qlmio *s = state;
    struct pred *bank = pol__bank(&s->own, c);
    if (est) memset(est, 0, sizeof *est);
    if (!bank) return -ENOMEM;
    struct fy_estimate e[FY_MAX_NODES];
    int ok[FY_MAX_NODES] = {0}, any = 0;
    double lmax = 0;
    for (int i = 0; i < c->nnodes && i < FY_MAX_NODES; i++) {
        if (!pol__allowed(c, i)) continue;
        struct fy_plan p;
        pol_plan_keep(&p, i);
        if (pred_estimate(bank, c->f, c->nodes, i, &p, &e[i]) < 0) continue;
        ok[i] = 1;
        any = 1;
        if (e[i].e2e_ms > lmax) lmax = e[i].e2e_ms;
    }
    if (!any) return -1;
    double w = c->prefs->tradeoff >= 0 && c->prefs->tradeoff <= 1 ? c->prefs->tradeoff : s->w;
    double qmin = c->prefs->min_quality >= 0 ? c->prefs->min_quality : s->qmin;
    double lref = s->lref_ms > 0 ? s->lref_ms : (lmax > 0 ? lmax : 1);
    int best = -1, bestq = -1;
    double bs = 0;
    for (int i = 0; i < c->nnodes && i < FY_MAX_NODES; i++) {
        if (!ok[i]) continue;
        if (bestq < 0 || e[i].q_mean > e[bestq].q_mean) bestq = i;
        if (e[i].q_mean < qmin) continue;
        double sc = w * e[i].q_mean - (1 - w) * e[i].e2e_ms / lref;
        if (best < 0 || sc > bs) best = i, bs = sc;
    }
    if (best < 0) best = bestq;
    pol_plan_keep(out, best);
    if (est) *est = e[best];
    return 0;
}

static void q_observe(void *state, const struct pol_ctx *c, const struct fy_outcome *o)
{
    struct qlmio *s = state;
    pol__bank_observe(s->own, c, o);
}

static void q_free(void *state)
{
    struct qlmio *s = state;
    if (!s) return;
    pred_free(s->own);
    free(s);
}

const struct fy_policy pol_qlmio = {
    .name = "qlmio",
    .summary = "QLMIO: max w*Q - (1-w)*L/Lref from MGQP and MILP, s.t. Q >= qmin (w, qmin, lref_ms)",
    .init = q_init,
    .decide = q_decide,
    .observe = q_observe,
    .free = q_free,
};
