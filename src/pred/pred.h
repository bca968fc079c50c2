/* pred — the predictor bank shared by the simulator, the gateway and the policies: one
 * MILP (latency, milp.h) and one MGQP (quality, mgqp.h) per node, matched to nodes by
 * name. pred_estimate() gives, for a (request, node, plan), predicted quality with its
 * uncertainty, the latency parts from the node's live state, and cost; pred_observe()
 * learns from an outcome. Model files: model.h. Not thread-safe: one bank per thread or
 * a lock around it. */
#ifndef FERRY_PRED_PRED_H
#define FERRY_PRED_PRED_H
#include <stddef.h>

#include "ferry.h"
#include "pred/mgqp.h"
#include "pred/milp.h"

#define PRED_DESC_TOKENS 64   /* split plan: tokens of the aux node's image description */
#define PRED_DESC_PROMPT 24   /* split plan: prompt tokens asking the aux node to describe */
#define PRED_MAX_MODELS  64   /* pred_set_model_prior entries */

struct pred_node {
    char name[FY_NAME_MAX];
    char model[FY_NAME_MAX];
    enum fy_role role;
    struct milp milp;
    struct mgqp mgqp;
    /* the model's prior P(complete) per task (fy_node_profile.q_prior, clamped to
     * [0.01, 0.99]); 0 = none: mgqp.q0 */
    double q_prior[FY_TASK__N];
    int qowner;  /* the node whose mgqp block holds this node's quality (pred_quality_owner) */
};

struct pred {
    int n;
    struct pred_node node[FY_MAX_NODES];  /* node.mgqp: the node's own part (mgqp.h) */
    struct mgqp shared;                   /* MGQP weights shared by every node */
    /* the non-zero n-gram indices of the last request estimated (a cache: candidates of
     * one decision share the request; keyed by the whole n-gram vector) */
    float sp_key[FY_HASH_DIM];
    uint16_t sp_idx[FY_HASH_DIM];
    int sp_nnz, sp_valid;
    /* running quality-prediction statistics (a-priori predictions vs observed labels) */
    double brier_sum;
    long nq;
    /* task priors by model name, for nodes added later without them (pred_set_model_prior) */
    int nmodels;
    struct pred_model_prior {
        char model[FY_NAME_MAX];
        double q[FY_TASK__N];
    } model_prior[PRED_MAX_MODELS];
    /* node profiles by node name, for nodes known only from traces (pred_set_profile_priors;
     * trace outcomes record name, role, model, link and state, not service rates) */
    int nnode_prof;
    struct pred_node_prof {
        char name[FY_NAME_MAX];
        enum fy_role role;
        struct fy_node_profile prof;
    } node_prof[FY_MAX_NODES];
};

/* Prior P(complete) of a node without a model file (docs/predictors.md "Prior").
 * Per task t: the node's profile's q_prior[t] (the model's accuracy on that task: an
 * explicit prior.<task> of its [model] section, else derived from its cap.<task>,
 * node/profile.h), else the role default — the MoA-Off setup's VQAv2 accuracies (edge
 * Qwen2-VL-2B ≈ 0.62, cloud Qwen2.5-VL-7B ≈ 0.77; DESIGN.md "Quality model"). The MGQP
 * node part starts with bias logit(role default) and task weights logit(q_prior[t]) −
 * logit(role default) (mgqp_set_task_prior). */
#define PRED_PRIOR_EDGE  0.62
#define PRED_PRIOR_CLOUD 0.77

struct pred *pred_new(const struct fy_node *nodes, int nnodes);
void pred_free(struct pred *p);
/* Index in the bank of the node called name, or -1. */
int pred_find(const struct pred *p, const char *name);
/* Adds (or finds) a node; returns its index or -1 when the bank is full. A new node's
 * MGQP starts from its prior per task (above). */
int pred_add_node(struct pred *p, const struct fy_node *node);
/* Resets the node's MGQP to a prior of q0 for every task (the profile's task priors are
 * dropped), in a block of its own (the nodes it shared one with keep theirs). */
void pred_set_quality_prior(struct pred *p, int node, double q0);

/* Quality is the model's, not the device's: nodes of the bank running the same model
 * (equal non-empty fy_node_profile.model) with the same prior learn and predict with one
 * MGQP block, that of the first of them; pred_quality_owner gives its index (node itself
 * when the model is unnamed or unique; -1 for a bad index). pred_set_quality_prior gives
 * a node a block of its own. Latency (MILP) stays per node. */
int pred_quality_owner(const struct pred *p, int node);

/* P(complete) of plan on node (shared + the owner's block) and its SD (may be NULL); 0
 * for a bad node. */
double pred_quality(struct pred *p, int node, const struct fy_features *f,
                    const struct fy_plan *plan, double *sd);

/* A label y in [0,1] for plan on node: MGQP learns it (shared + owner block, as
 * pred_observe does) without touching MILP. site (may be NULL) gets what pred_unlabel
 * needs to take the label out again (its parts NULL when out of memory: the label is
 * learned all the same). 0, or -1 (bad node or y: nothing learned). */
struct pred_site {
    int owner;
    struct mgqp_site *s, *d;  /* owned: the label's factor in the shared and owner blocks */
};
int pred_label(struct pred *p, int node, const struct fy_features *f,
               const struct fy_plan *plan, double y, struct pred_site *site);
/* Divides a label's factors out of the bank (mgqp_retract in both blocks) and frees
 * them; site zeroed. NULL or an empty site: no-op. pred_site_free only frees. */
void pred_unlabel(struct pred *p, struct pred_site *site);
void pred_site_free(struct pred_site *site);
/* Task priors q[FY_TASK__N] (as fy_node_profile.q_prior, 0 = unknown) for nodes of
 * model `model` added to the bank from now on whose profile has none — nodes known only
 * by their model's name, as in traces (`ferry train/eval --profiles`). 0, or -1 when
 * PRED_MAX_MODELS models are registered already. */
int pred_set_model_prior(struct pred *p, const char *model, const double *q);
/* pred_set_model_prior for every [model] of the profile file or directory `path`
 * (node/profile.h: node_model_task_priors), and every [node] resolved to its profile
 * (service rates, max_seqs, prices, visual-token family): a trace outcome of a node of
 * that name, role and model is then estimated and learned with that profile, as the
 * simulator and the gateway do (without it, the MILP prior and its queue test, which
 * needs max_seqs, see a profile-less node). Returns the models registered, or -1 with
 * err (the profile's own message, file:line; more than FY_MAX_NODES nodes). */
int pred_set_profile_priors(struct pred *p, const char *path, char *err, size_t errlen);
/* The profile pred_set_profile_priors found for the node of that name, role and model:
 * 0 and *out set, or -1 (none; *out untouched). */
int pred_node_profile(const struct pred *p, const char *name, enum fy_role role,
                      const char *model, struct fy_node_profile *out);
/* The role default above. */
double pred_role_prior(enum fy_role role);
/* Prior P(complete) of task t for a node (its profile's, else the role default), and in
 * the bank (its q_prior, else its mgqp.q0; 0 for a node out of range). t < 0 or
 * >= FY_TASK__N: the mean over the tasks (a model-level summary, e.g. to rank nodes). */
double pred_node_prior(const struct fy_node *n, int t);
double pred_prior(const struct pred *p, int node, int t);

/* Image tokens the node's model sees for image i under the plan's action (visual-token
 * rule of the node's family, area-scaled for DOWNSCALE, 0 for DROP and SPLIT), and the
 * bytes sent for it. */
int pred_image_tokens(const struct fy_features *f, int i, const struct fy_node *node,
                      const struct fy_plan *plan, double *bytes);

/* Estimate for (request f, node `node` of nodes[], plan). nodes[] supply profile, link
 * and live state; nodes[i] is matched to the bank by name. plan->aux_node is used for
 * SPLIT images. Returns 0, or -1 when the node is out of range. */
int pred_estimate(struct pred *p, const struct fy_features *f, const struct fy_node *nodes,
                  int node, const struct fy_plan *plan, struct fy_estimate *out);
/* Learns from outcome o of f run with plan o->plan; nodes[] are the nodes as they were
 * when the request was dispatched (state matters for the queue term). */
void pred_observe(struct pred *p, const struct fy_features *f, const struct fy_node *nodes,
                  const struct fy_outcome *o);

/* The same from a trace outcome (trace.h): the node as recorded (name, role, model,
 * link, state at dispatch) and the recorded image tokens and bytes when present. Used
 * by `ferry train` / `ferry eval`. The second stage of an escalated cascade (stage 2)
 * trains latency only, not quality (a selected sample). */
struct trace_outcome;
int pred_estimate_trace(struct pred *p, const struct fy_features *f,
                        const struct trace_outcome *t, struct fy_estimate *out);
void pred_observe_trace(struct pred *p, const struct fy_features *f,
                        const struct trace_outcome *t);

/* Merges f's learning beyond b into m (three banks of the same nodes, f and m
 * descending from b; gw/share.c): the shared MGQP and, for every node of m that f and b
 * hold with the same model, its MGQP (mgqp_merge) and MILP (milp_merge). m keeps its
 * own priors (q_prior, pred_set_model_prior's table). */
void pred_merge(struct pred *m, const struct pred *f, const struct pred *b);

/* A-priori error statistics since creation: latency MAE (ms) / MAPE of node i
 * (-1 for all nodes), and the Brier score of the quality predictions. */
void pred_error_stats(const struct pred *p, int node, double *mae_ms, double *mape,
                      double *brier, long *n);

/* Area under the ROC curve of scores s for labels y > 0.5, ties at their average rank;
 * O(n log n), sorts q. NAN when one class is empty. (Shared by eval and bench m4a1.) */
struct pred__qpair { double s, y; };
double pred__auc(struct pred__qpair *q, size_t n);

/* Model files (format in docs/predictors.md, code in model.c). pred_load matches the
 * file's nodes to nodes[] by name; nodes[] missing from the file keep their priors;
 * a node whose model differs from the file's is refused. */
int pred_save(const struct pred *p, const char *path, char *err, size_t errlen);
struct pred *pred_load(const char *path, const struct fy_node *nodes, int nnodes, char *err,
                       size_t errlen);

#endif
