/* oracle — simulator only: asks the simulator for the true outcome of sending the
 * request, images as sent, to every healthy node now (pol_ctx.oracle), and picks the
 * fastest node whose answer is correct and, when the request has an SLO, in time.
 * When no node completes the request, the node with the highest true quality (ties:
 * fastest). The upper bound the learned policies are measured against; its knowledge
 * ignores arrivals after the decision. Parameter plans=keep|all: with `all` it also
 * tries dropping every image and downscaling them to 448 px on each node. */
#include "policy/policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct orc { int all_plans; };

static int orc_kv(void *arg, const char *k, const char *v, char *err, size_t errlen)
{
    struct orc *o = arg;
    if (!strcmp(k, "plans") && (!strcmp(v, "keep") || !strcmp(v, "all"))) {
        o->all_plans = !strcmp(v, "all");
        return 0;
    }
    snprintf(err, errlen, "oracle: bad parameter '%s=%s' (plans=keep|all)", k, v);
    return -1;
}

static int orc_init(void **state, const char *params, char *err, size_t errlen)
{
    struct orc *o = pol_state_new("oracle", sizeof *o, err, errlen);
    if (!o) return -ENOMEM;
    return pol_state_params(state, o, params, orc_kv, err, errlen);
}

static int completes(const struct pol_ctx *c, const struct fy_estimate *t)
{
    if (t->q_mean < 0.5) return 0;
    if (c->prefs->slo_ms > 0 && t->e2e_ms > c->prefs->slo_ms) return 0;
    return 1;
}

/* Is candidate a better than the best so far b? */
static int better(const struct pol_ctx *c, const struct fy_estimate *a, const struct fy_estimate *b)
{
    int ca = completes(c, a), cb = completes(c, b);
    if (ca != cb) return ca > cb;
    if (!ca && a->q_mean != b->q_mean) return a->q_mean > b->q_mean;
    return a->e2e_ms < b->e2e_ms;
}

static int orc_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                      struct fy_estimate *est)
{
    const struct orc *o = state;
    if (!c->oracle) return -EINVAL; /* only the simulator knows the truth */
    int found = 0;
    struct fy_estimate best = {0};
    int variants = o->all_plans && c->f->nimages > 0 ? 3 : 1;
    for (int i = 0; i < c->nnodes; i++) {
        if (!c->nodes[i].st.healthy) continue;
        for (int v = 0; v < variants; v++) {
            struct fy_plan p;
            pol_plan_keep(&p, i);
            if (v > 0) {
                for (int k = 0; k < c->f->nimages && k < FY_MAX_IMAGES; k++)
                    p.img[k] = v == 1 ? FY_IMG_DOWNSCALE : FY_IMG_DROP;
                p.downscale_px = 448;
            }
            struct fy_estimate t;
            if (c->oracle(c->oracle_arg, &p, &t) < 0) continue;
            if (!found || better(c, &t, &best)) {
                best = t;
                *out = p;
                found = 1;
            }
        }
    }
    if (!found) return -1;
    if (est) *est = best;
    return 0;
}

static void orc_free(void *state) { free(state); }

const struct fy_policy pol_oracle = {
    .name = "oracle",
    .summary = "sim only: fastest node whose true answer is correct (plans=keep|all)",
    .init = orc_init,
    .decide = orc_decide,
    .observe = NULL,
    .free = orc_free,
};
