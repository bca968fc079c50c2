/* least-loaded — the healthy node with the lowest (running + queued) / max_seqs, ties
 * to the lowest index; images as sent. Parameter role=edge|cloud|any (default any). */
#include "policy/policy.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct ll { int role; };

static int ll_kv(void *arg, const char *k, const char *v, char *err, size_t errlen)
{
    struct ll *s = arg;
    if (strcmp(k, "role") != 0) {
        snprintf(err, errlen, "least-loaded: unknown parameter '%s' (role)", k);
        return -1;
    }
    if (!strcmp(v, "edge")) s->role = FY_ROLE_EDGE;
    else if (!strcmp(v, "cloud")) s->role = FY_ROLE_CLOUD;
    else if (!strcmp(v, "any")) s->role = -1;
    else {
        snprintf(err, errlen, "least-loaded: role=%s: expected edge, cloud or any", v);
        return -1;
    }
    return 0;
}

static int ll_init(void **state, const char *params, char *err, size_t errlen)
{
    struct ll *s = pol_state_new("least-loaded", sizeof *s, err, errlen);
    if (!s) return -ENOMEM;
    s->role = -1;
    return pol_state_params(state, s, params, ll_kv, err, errlen);
}

static int ll_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                     struct fy_estimate *est)
{
    const struct ll *s = state;
    return pol_decide_least_loaded(c, s->role, out, est);
}

static void ll_free(void *state) { free(state); }

const struct fy_policy pol_least_loaded = {
    .name = "least-loaded",
    .summary = "the node with the fewest sequences per slot (role=edge|cloud|any)",
    .init = ll_init,
    .decide = ll_decide,
    .observe = NULL,
    .free = ll_free,
};
