/* registry — every policy by name, plus small helpers shared by policy files. */
#include "policy/policy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const struct fy_policy pol_cloud_only;
extern const struct fy_policy pol_edge_only;
extern const struct fy_policy pol_random;
extern const struct fy_policy pol_least_loaded;
extern const struct fy_policy pol_oracle;
extern const struct fy_policy pol_moa_off;
extern const struct fy_policy pol_perllm;
extern const struct fy_policy pol_qlmio;
extern const struct fy_policy pol_lcio;
extern const struct fy_policy pol_ferry;
extern const struct fy_policy pol_cascade;

/* One line per policy; learned policies (owner pred) are added below the baselines. */
static const struct fy_policy *const g_policies[] = {
    &pol_cloud_only,
    &pol_edge_only,
    &pol_random,
    &pol_least_loaded,
    &pol_oracle,
    &pol_moa_off,
    &pol_perllm,
    &pol_qlmio,
    &pol_lcio,
    &pol_cascade,
    &pol_ferry,
    NULL,
};

const struct fy_policy *const *pol_all(void) { return g_policies; }

const struct fy_policy *pol_find(const char *name)
{
    if (!name) return NULL;
    for (const struct fy_policy *const *p = g_policies; *p; p++)
        if (!strcmp((*p)->name, name)) return *p;
    return NULL;
}

void pol_plan_keep(struct fy_plan *p, int node)
{
    memset(p, 0, sizeof *p);
    p->node = node;
    p->aux_node = -1;
    p->escalate_node = -1;
    p->escalate_below = 0;
    for (int i = 0; i < FY_MAX_IMAGES; i++) p->img[i] = FY_IMG_KEEP;
}

double pol_node_load(const struct fy_node *n)
{
    int cap = n->prof.max_seqs > 0 ? n->prof.max_seqs : 1;
    return (double)(n->st.running + n->st.queued) / cap;
}

int pol_least_loaded_node(const struct pol_ctx *c, int role)
{
    int best = -1;
    double best_load = 0;
    for (int i = 0; i < c->nnodes; i++) {
        const struct fy_node *n = &c->nodes[i];
        if ((role >= 0 && (int)n->role != role) || !n->st.healthy) continue;
        double l = pol_node_load(n);
        if (best < 0 || l < best_load) best = i, best_load = l;
    }
    return best;
}

int pol_decide_least_loaded(const struct pol_ctx *c, int role, struct fy_plan *out,
                            struct fy_estimate *est)
{
    if (est) *est = (struct fy_estimate){0};
    int best = pol_least_loaded_node(c, role);
    if (best < 0) return -1;
    pol_plan_keep(out, best);
    return 0;
}

int pol_params_each(const char *params, pol_kv_fn kv, void *arg, char *err, size_t errlen)
{
    if (!params) return 0;
    const char *p = params;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len) {
            const char *eq = memchr(p, '=', len);
            if (!eq) {
                snprintf(err, errlen, "policy parameter '%.*s': expected key=value", (int)len, p);
                return -1;
            }
            size_t kl = (size_t)(eq - p), vl = len - kl - 1;
            if (kl == 0 || kl >= 128 || vl >= 128) {
                snprintf(err, errlen, "policy parameter '%.*s': empty or too long", (int)len, p);
                return -1;
            }
            char k[128], v[128];
            memcpy(k, p, kl);
            k[kl] = '\0';
            memcpy(v, eq + 1, vl);
            v[vl] = '\0';
            int rc = kv(arg, k, v, err, errlen);
            if (rc < 0) return rc;
        }
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

void *pol_state_new(const char *policy, size_t size, char *err, size_t errlen)
{
    void *s = calloc(1, size);
    if (!s) snprintf(err, errlen, "%s: out of memory", policy);
    return s;
}

int pol_state_params(void **state, void *s, const char *params, pol_kv_fn kv, char *err,
                     size_t errlen)
{
    int rc = pol_params_each(params, kv, s, err, errlen);
    if (rc < 0) {
        free(s);
        return rc;
    }
    *state = s;
    return 0;
}
