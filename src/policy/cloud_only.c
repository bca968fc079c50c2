/* cloud-only — every request to a cloud node, images as sent. With several cloud nodes
 * the least loaded one ((running + queued) / max_seqs, ties to the lowest index). No
 * parameters. Fails only when there is no healthy cloud node. */
#include "policy/policy.h"

#include <stdio.h>

static int role_init(void **state, const char *params, char *err, size_t errlen)
{
    *state = NULL;
    if (params && *params) {
        snprintf(err, errlen, "cloud-only takes no parameters (got '%s')", params);
        return -1;
    }
    return 0;
}

static int cloud_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                        struct fy_estimate *est)
{
    (void)state;
    return pol_decide_least_loaded(c, FY_ROLE_CLOUD, out, est);
}

static void role_free(void *state) { (void)state; }

const struct fy_policy pol_cloud_only = {
    .name = "cloud-only",
    .summary = "everything to the least loaded cloud node, images as sent",
    .init = role_init,
    .decide = cloud_decide,
    .observe = NULL,
    .free = role_free,
};
