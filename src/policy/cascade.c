/* cascade — the classic two-stage cascade baseline (FrugalGPT, Chen, Zaharia & Zou
 * 2023, "LLM cascade"; here with one small and one large model): every request is
 * answered first on the healthy edge node with the lowest load ((running + queued) /
 * max_seqs, ties to the lowest index), images as sent; when that answer's confidence is
 * below `below` the caller (simulator or gateway) discards it and asks the escalation
 * node again with every image kept, and the client gets the second answer.
 *
 * Escalation node (parameter to=quality|load, default quality):
 *   quality — the healthy cloud node with the highest prior quality in the shared
 *             predictor bank (pol_ctx.pred, its MGQP prior q0: the node's capability
 *             as configured or loaded from a model file), ties to the lowest load;
 *             without a bank every cloud node ties and the lowest load decides;
 *   load    — the healthy cloud node with the lowest load.
 * privacy=edge-only: never escalates (the plan is the plain edge plan). No healthy
 * cloud node: no escalation. No healthy edge node: the request goes straight to the
 * escalation node (when privacy allows), without a cascade.
 * Parameters: below=0.6 (confidence threshold in [0,1]; 0 = never escalate),
 * to=quality. Learns nothing (observe is NULL). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/learned.h"
#include "policy/policy.h"
#include "pred/pred.h"

struct cas {
    double below;
    int by_load;   /* to=load */
};

static int cas_kv(void *arg, const char *k, const char *v, char *err, size_t errlen)
{
    struct cas *s = arg;
    if (!strcmp(k, "below")) return pol__num("cascade", k, v, 0, 1, &s->below, err, errlen);
    if (!strcmp(k, "to")) {
        if (!strcmp(v, "quality")) s->by_load = 0;
        else if (!strcmp(v, "load")) s->by_load = 1;
        else {
            snprintf(err, errlen, "cascade: to=%s: expected quality or load", v);
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "cascade: unknown parameter '%s' (below, to)", k);
    return -1;
}

static int cas_init(void **state, const char *params, char *err, size_t errlen)
{
    struct cas *s = pol_state_new("cascade", sizeof *s, err, errlen);
    if (!s) return -ENOMEM;
    s->below = 0.6;
    return pol_state_params(state, s, params, cas_kv, err, errlen);
}

/* Prior quality of node i for this request's task from the shared bank (its model's
 * task prior, else the role default; pred.h), or 0 when unknown. */
static double prior_q(const struct pol_ctx *c, int i)
{
    if (!c->pred) return 0;
    int b = pred_find(c->pred, c->nodes[i].name);
    return b >= 0 ? pred_prior(c->pred, b, c->f ? (int)c->f->task : -1) : 0;
}

/* The escalation target: healthy cloud node, best prior quality (or lowest load). */
static int pick_cloud(const struct cas *s, const struct pol_ctx *c)
{
    int best = -1;
    double bq = 0, bl = 0;
    for (int i = 0; i < c->nnodes; i++) {
        const struct fy_node *n = &c->nodes[i];
        if (n->role != FY_ROLE_CLOUD || !n->st.healthy) continue;
        double q = s->by_load ? 0 : prior_q(c, i), l = pol_node_load(n);
        if (best < 0 || q > bq + 1e-12 || (q >= bq - 1e-12 && l < bl)) best = i, bq = q, bl = l;
    }
    return best;
}

static int cas_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                      struct fy_estimate *est)
{
    const struct cas *s = state;
    if (est) memset(est, 0, sizeof *est);
    int edge = pol_least_loaded_node(c, FY_ROLE_EDGE);
    int edge_only = c->prefs && c->prefs->privacy == FY_PRIV_EDGE_ONLY;
    int cloud = edge_only ? -1 : pick_cloud(s, c);
    if (edge < 0) {
        if (cloud < 0) return -1;
        pol_plan_keep(out, cloud);
        return 0;
    }
    pol_plan_keep(out, edge);
    if (cloud >= 0 && s->below > 0) {
        out->escalate_node = cloud;
        out->escalate_below = s->below;
    }
    return 0;
}

static void cas_free(void *state) { free(state); }

const struct fy_policy pol_cascade = {
    .name = "cascade",
    .summary = "answer at the least-loaded edge, escalate to the best cloud node when confidence < below (below, to)",
    .init = cas_init,
    .decide = cas_decide,
    .observe = NULL,
    .free = cas_free,
};
