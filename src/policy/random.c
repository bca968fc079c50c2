/* random — a node drawn at random from the caller's deterministic stream, images as
 * sent. Parameters:
 *   weights=w0:w1:...   relative weight per node index (missing = 1, 0 = never);
 *   p_cloud=p           alternatively: probability of a cloud node (uniform among
 *                       the healthy nodes of the drawn role).
 * Default: uniform over healthy nodes. */
#include "policy/policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/num.h"

#include "util/rng.h"

struct rnd {
    int nweights;
    double w[FY_MAX_NODES];
    double p_cloud;     /* < 0 = unused */
};

static int rnd_kv(void *arg, const char *k, const char *v, char *err, size_t errlen)
{
    struct rnd *r = arg;
    char *end;
    if (!strcmp(k, "p_cloud")) {
        if (util_parse_double(v, 0, 1, &r->p_cloud) < 0) {
            snprintf(err, errlen, "random: p_cloud=%s: expected a number in [0, 1]", v);
            return -1;
        }
        return 0;
    }
    if (!strcmp(k, "weights")) {
        const char *p = v;
        r->nweights = 0;
        while (*p) {
            if (r->nweights >= FY_MAX_NODES) {
                snprintf(err, errlen, "random: weights: more than %d entries", FY_MAX_NODES);
                return -1;
            }
            errno = 0;
            double w = strtod(p, &end);
            if (errno || end == p || !(w >= 0) || (*end && *end != ':')) {
                snprintf(err, errlen, "random: weights=%s: entry %d is not a number >= 0", v,
                         r->nweights);
                return -1;
            }
            r->w[r->nweights++] = w;
            p = *end ? end + 1 : end;
        }
        return 0;
    }
    snprintf(err, errlen, "random: unknown parameter '%s' (weights, p_cloud)", k);
    return -1;
}

static int rnd_init(void **state, const char *params, char *err, size_t errlen)
{
    struct rnd *r = pol_state_new("random", sizeof *r, err, errlen);
    if (!r) return -ENOMEM;
    r->p_cloud = -1;
    return pol_state_params(state, r, params, rnd_kv, err, errlen);
}

/* Weighted draw among healthy nodes with role `role` (-1 = any); -1 if none. */
static int draw(const struct rnd *r, const struct pol_ctx *c, int role)
{
    double total = 0;
    for (int i = 0; i < c->nnodes; i++) {
        if (!c->nodes[i].st.healthy || (role >= 0 && (int)c->nodes[i].role != role)) continue;
        total += i < r->nweights ? r->w[i] : 1.0;
    }
    if (!(total > 0)) return -1;
    double u = rng_uniform(c->rng) * total;
    int last = -1;
    for (int i = 0; i < c->nnodes; i++) {
        if (!c->nodes[i].st.healthy || (role >= 0 && (int)c->nodes[i].role != role)) continue;
        double w = i < r->nweights ? r->w[i] : 1.0;
        if (w <= 0) continue;
        last = i;
        if (u < w) return i;
        u -= w;
    }
    return last; /* rounding at the top end */
}

static int rnd_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                      struct fy_estimate *est)
{
    const struct rnd *r = state;
    if (est) *est = (struct fy_estimate){0};
    int node;
    if (r->p_cloud >= 0) {
        int role = rng_uniform(c->rng) < r->p_cloud ? FY_ROLE_CLOUD : FY_ROLE_EDGE;
        node = draw(r, c, role);
        if (node < 0) node = draw(r, c, -1);
    } else {
        node = draw(r, c, -1);
    }
    if (node < 0) return -1;
    pol_plan_keep(out, node);
    return 0;
}

static void rnd_free(void *state) { free(state); }

const struct fy_policy pol_random = {
    .name = "random",
    .summary = "a random node (weights=w0:w1:.. or p_cloud=p), images as sent",
    .init = rnd_init,
    .decide = rnd_decide,
    .observe = NULL,
    .free = rnd_free,
};
