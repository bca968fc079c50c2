/* edge-only, cloud-only — every request to a node of one role, images as sent. With
 * several nodes of that role the least loaded one ((running + queued) / max_seqs, ties
 * to the lowest index). No parameters. Fails only when there is no healthy node of the
 * role. */
#include "policy/policy.h"

#include <stdio.h>

static int no_params(const char *policy, void **state, const char *params, char *err,
                     size_t errlen)
{
    *state = NULL;
    if (params && *params) {
        snprintf(err, errlen, "%s takes no parameters (got '%s')", policy, params);
        return -1;
    }
    return 0;
}

static int edge_init(void **state, const char *params, char *err, size_t errlen)
{
    return no_params("edge-only", state, params, err, errlen);
}

static int cloud_init(void **state, const char *params, char *err, size_t errlen)
{
    return no_params("cloud-only", state, params, err, errlen);
}

static int edge_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                       struct fy_estimate *est)
{
    (void)state;
    return pol_decide_least_loaded(c, FY_ROLE_EDGE, out, est);
}

static int cloud_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                        struct fy_estimate *est)
{
    (void)state;
    return pol_decide_least_loaded(c, FY_ROLE_CLOUD, out, est);
}

static void role_free(void *state) { (void)state; }

const struct fy_policy pol_edge_only = {
    .name = "edge-only",
    .summary = "everything to the least loaded edge node, images as sent",
    .init = edge_init,
    .decide = edge_decide,
    .observe = NULL,
    .free = role_free,
};

const struct fy_policy pol_cloud_only = {
    .name = "cloud-only",
    .summary = "everything to the least loaded cloud node, images as sent",
    .init = cloud_init,
    .decide = cloud_decide,
    .observe = NULL,
    .free = role_free,
};
