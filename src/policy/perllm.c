/* perllm — PerLLM's constraint-satisfaction upper confidence bound (CS-UCB) scheduler,
 * the collaborative baseline of MoA-Off. PerLLM (Yang et al., 2024) schedules LLM
 * services over edge and cloud servers as a bandit: every (service class, server) pair
 * is an arm, arms that cannot satisfy the service's constraints are filtered out, and
 * among the rest the arm with the largest UCB of the reward is played. Where the paper
 * is vague we assumed (docs/policies.md):
 *  - service class = the request's task category (fy_task); arms = task × node;
 *  - reward of a finished request = −e2e / lref_ms − cost / cref_usd (time and money:
 *    PerLLM's objective is processing time and energy cost), in [−inf, 0];
 *  - UCB_a = mean_a + c · sqrt(2 ln N_task / n_a) · scale, scale = |mean reward| of
 *    the class (rewards are not in [0,1]); untried arms first (every arm is explored);
 *  - constraints: node admissible (health, privacy), capacity (load ≤ cap_load), and,
 *    when the request has an SLO, the optimistic latency (mean − c · sd / sqrt(n)) of
 *    the arm within the SLO. When nothing satisfies them, the least-loaded admissible
 *    node; images are always sent as they are (PerLLM has no modality plan).
 * Parameters: c=1.0 lref_ms=10000 cref_usd=0.01 cap_load=2.0 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/learned.h"
#include "policy/policy.h"

struct arm {
    long n;              /* outcomes observed */
    long sent;           /* decisions taken (outcomes may still be pending) */
    double r_sum;        /* sum of rewards */
    double l_sum, l_sq;  /* latency sum and sum of squares, ms */
};

struct perllm {
    double c, lref_ms, cref_usd, cap_load;
    struct arm arm[FY_TASK__N][FY_MAX_NODES];
    long plays[FY_TASK__N];
};

static int pl_kv(void *arg, const char *k, const char *v, char *err, size_t errlen)
{
    struct perllm *s = arg;
    if (!strcmp(k, "c")) return pol__num("perllm", k, v, 0, 100, &s->c, err, errlen);
    if (!strcmp(k, "lref_ms")) return pol__num("perllm", k, v, 1e-3, 1e9, &s->lref_ms, err, errlen);
    if (!strcmp(k, "cref_usd")) return pol__num("perllm", k, v, 1e-9, 1e6, &s->cref_usd, err, errlen);
    if (!strcmp(k, "cap_load")) return pol__num("perllm", k, v, 0, 1e6, &s->cap_load, err, errlen);
    snprintf(err, errlen, "perllm: unknown parameter '%s' (c, lref_ms, cref_usd, cap_load)", k);
    return -1;
}

static int pl_init(void **state, const char *params, char *err, size_t errlen)
{
    struct perllm *s = pol_state_new("perllm", sizeof *s, err, errlen);
    if (!s) return -ENOMEM;
    s->c = 1.0;
    s->lref_ms = 10000;
    s->cref_usd = 0.01;
    s->cap_load = 2.0;
    return pol_state_params(state, s, params, pl_kv, err, errlen);
}

static int task_of(const struct pol_ctx *c)
{
    int t = (int)c->f->task;
    return t >= 0 && t < FY_TASK__N ? t : 0;
}

static int pl_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                     struct fy_estimate *est)
{
    struct perllm *s = state;
    if (est) memset(est, 0, sizeof *est);
    int t = task_of(c), best = -1;
    double best_u = -INFINITY;
    double scale = 0;
    long tried = 0;
    for (int i = 0; i < c->nnodes && i < FY_MAX_NODES; i++)
        if (s->arm[t][i].n) {
            scale += fabs(s->arm[t][i].r_sum / s->arm[t][i].n);
            tried++;
        }
    scale = tried ? scale / tried : 1;
    if (scale < 1e-6) scale = 1e-6;
    double lnN = log((double)(s->plays[t] + 1));
    for (int i = 0; i < c->nnodes && i < FY_MAX_NODES; i++) {
        if (!pol__allowed(c, i)) continue;
        if (pol_node_load(&c->nodes[i]) > s->cap_load) continue;
        const struct arm *a = &s->arm[t][i];
        double u;
        if (a->n == 0) {
            /* unobserved: explore first, round robin over those not yet sent */
            u = 1e300 / (double)(1 + a->sent);
        } else {
            double mean_l = a->l_sum / a->n;
            double var_l = a->l_sq / a->n - mean_l * mean_l;
            double sd = var_l > 0 ? sqrt(var_l) : 0;
            double opt_l = mean_l - s->c * sd / sqrt((double)a->n);
            if (c->prefs->slo_ms > 0 && opt_l > c->prefs->slo_ms) continue;
            u = a->r_sum / a->n + s->c * sqrt(2 * lnN / a->n) * scale;
        }
        if (best < 0 || u > best_u) best = i, best_u = u;
    }
    if (best < 0) {
        /* no arm satisfies the constraints: least-loaded admissible node */
        double bl = 0;
        for (int i = 0; i < c->nnodes; i++) {
            if (!pol__allowed(c, i)) continue;
            double l = pol_node_load(&c->nodes[i]);
            if (best < 0 || l < bl) best = i, bl = l;
        }
    }
    if (best < 0) return -1;
    s->arm[t][best].sent++;
    pol_plan_keep(out, best);
    return 0;
}

static void pl_observe(void *state, const struct pol_ctx *c, const struct fy_outcome *o)
{
    struct perllm *s = state;
    int i = o->plan.node, t = task_of(c);
    if (i < 0 || i >= FY_MAX_NODES) return;
    double l = o->failed || !(o->e2e_ms > 0) ? 2 * s->lref_ms : o->e2e_ms;
    double r = -l / s->lref_ms - (o->cost_usd > 0 ? o->cost_usd : 0) / s->cref_usd;
    struct arm *a = &s->arm[t][i];
    a->n++;
    a->r_sum += r;
    a->l_sum += l;
    a->l_sq += l * l;
    s->plays[t]++;
}

static void pl_free(void *state) { free(state); }

const struct fy_policy pol_perllm = {
    .name = "perllm",
    .summary = "PerLLM CS-UCB: UCB over task x node arms with constraint filtering (c, lref_ms, cref_usd, cap_load)",
    .init = pl_init,
    .decide = pl_decide,
    .observe = pl_observe,
    .free = pl_free,
};
