/* policy — the offloading policy interface (DESIGN.md "Policies to ship"). A policy is a
 * function table; the simulator (`ferry sim`) and the gateway (`ferry serve`) call the
 * very same code. For every request the caller fills a pol_ctx (features, preferences,
 * nodes with their live state and link figures, the time) and calls decide(); when the
 * request has finished it calls observe() with the outcome of the chosen plan.
 *
 * Shipped here (owner sim): cloud-only, edge-only, random, least-loaded, oracle.
 * The learned policies (moa-off, perllm, qlmio, lcio, ferry; owner pred) add one line
 * each to registry.c. */
#ifndef FERRY_POLICY_POLICY_H
#define FERRY_POLICY_POLICY_H
#include <stddef.h>

#include "ferry.h"

struct pred;   /* src/pred/pred.h: shared predictor bank */
struct rng;    /* src/util/rng.h */

struct pol_ctx {
    const struct fy_features *f;    /* the request */
    const struct fy_prefs *prefs;   /* its preferences (never NULL) */
    const struct fy_node *nodes;    /* nodes with live st and current link figures */
    int nnodes;
    struct pred *pred;              /* shared predictor bank; may be NULL */
    double now_ms;                  /* caller's clock (sim time or ms since start) */
    struct rng *rng;                /* the caller's deterministic stream */
    const char *session;            /* dialogue id, "" = none */
    /* sim only (NULL elsewhere): the true outcome of a plan for this request if it were
     * dispatched now (quality = 1/0 as it would turn out, latency parts as the node
     * model would produce them given what is in service now, ignoring later arrivals).
     * Returns 0, or < 0 if the plan is invalid. */
    int (*oracle)(void *arg, const struct fy_plan *p, struct fy_estimate *truth);
    /* sim only: the same, but q_mean is the true P(correct) of the plan (what a perfect
     * quality predictor would say), not the outcome; q_std 0. Cascade plans: < 0. */
    int (*oracle_p)(void *arg, const struct fy_plan *p, struct fy_estimate *truth);
    void *oracle_arg;
};

struct fy_policy {
    const char *name;
    const char *summary;
    /* params: "k=v,k=v" or NULL. 0, or < 0 with a message naming the bad key. */
    int (*init)(void **state, const char *params, char *err, size_t errlen);
    /* Fills *out (a valid plan: 0 <= node < nnodes, aux_node -1 or a node, img[i] for
     * i < f->nimages). est_out (may be NULL) gets the policy's own estimate if it has
     * one (zeroed otherwise). Returns 0, or < 0 if no node can take the request. */
    int (*decide)(void *state, const struct pol_ctx *c, struct fy_plan *out,
                  struct fy_estimate *est_out);
    /* The outcome of a decision taken earlier (c describes the request as at decide
     * time, with now_ms = completion time). May be NULL. */
    void (*observe)(void *state, const struct pol_ctx *c, const struct fy_outcome *o);
    void (*free)(void *state);
};

/* NULL if no policy has that name. */
const struct fy_policy *pol_find(const char *name);
/* NULL-terminated list of every registered policy, in registry order. */
const struct fy_policy *const *pol_all(void);

/* Helpers for policy authors. */
void pol_plan_keep(struct fy_plan *p, int node);   /* node, every image kept */
/* One parameter k=v for the state arg: 0, or < 0 with the reason in err. */
typedef int (*pol_kv_fn)(void *arg, const char *k, const char *v, char *err, size_t errlen);
/* Iterates "k=v,k=v": calls kv for each pair (keys/values NUL-terminated copies, each
 * < 128 bytes). kv returns < 0 to stop with its message. 0 or < 0. */
int pol_params_each(const char *params, pol_kv_fn kv, void *arg, char *err, size_t errlen);
/* The two ends of an init(): pol_state_new allocates a zeroed state of size bytes (NULL
 * with "POLICY: out of memory" in err); the caller sets its defaults, then
 * pol_state_params applies params to it with kv and stores it in *state (0), or frees
 * it and returns pol_params_each's error. */
void *pol_state_new(const char *policy, size_t size, char *err, size_t errlen);
int pol_state_params(void **state, void *s, const char *params, pol_kv_fn kv, char *err,
                     size_t errlen);
/* Load of a node in [0, inf): (running + queued) / max_seqs. */
double pol_node_load(const struct fy_node *n);
/* Index of the healthy node with the lowest load among nodes of `role` (-1 = any role);
 * ties go to the lowest index. -1 if there is none. */
int pol_least_loaded_node(const struct pol_ctx *c, int role);
/* decide() of the load-only baselines: that node, images as sent, est zeroed (may be
 * NULL). 0, or -1 when there is no healthy node of role. */
int pol_decide_least_loaded(const struct pol_ctx *c, int role, struct fy_plan *out,
                            struct fy_estimate *est);

#endif
