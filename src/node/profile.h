/* profile — device, model, link and node profiles from INI files (inih), with
 * line-numbered errors, and the roofline derivation of service rates
 * (docs/simulator.md "Profiles"). One INI file may hold any number of sections:
 *
 *   [device rtx3090]   mem_bw_gbs, tflops (dense fp16/bf16), mem_gb,
 *                      eff_decode, eff_prefill (roofline efficiency factors)
 *   [model qwen2-vl-2b] params_b (language model), vision_params_b, bytes_per_param,
 *                      patches_per_token, vt_family (qwen2vl|llava|generic),
 *                      context_limit, cap.<skill> = logit capability (quality model),
 *                      cap = default capability for skills not listed,
 *                      prior.<task> = prior accuracy for a task (node_model_task_priors)
 *   [link wan-300]     kind (const|series|markov|views), up_mbps, down_mbps, rtt_ms,
 *                      jitter_ms, series, bad_mbps, good_s, bad_s, view_s
 *   [node edge-3090]   device, model, role (edge|cloud), link, max_seqs, tpot_slope,
 *                      usd_per_mtok_in, usd_per_mtok_out, usd_per_hour, cache_saving, max_queue,
 *                      and measured overrides: prefill_tps, decode_tps, vision_ms_per_token
 *
 * Derived rates (each times the device's efficiency factor; a node's measured
 * numbers override them):
 *   decode_tps  = eff_decode  * mem_bw / (params * bytes_per_param)    (memory-bound)
 *   prefill_tps = eff_prefill * flops / (2 * params)                   (compute-bound)
 *   vision_ms_per_token = 1000 * 2 * vision_params * patches_per_token / (eff_prefill * flops)
 * (DESIGN.md "Latency model": decode at batch 1 ≈ bandwidth / weight bytes, prefill ≈
 * 2·params FLOP per token.) */
#ifndef FERRY_NODE_PROFILE_H
#define FERRY_NODE_PROFILE_H
#include <stddef.h>

#include "ferry.h"
#include "node/link.h"

#define NODE_MAX_SKILLS 16
#define NODE_INI_MAX_BYTES (4u << 20) /* profile/experiment files larger are refused */
/* Bounds of a node's service rates, given (prefill_tps, decode_tps, vision_ms_per_token)
 * or derived by node_lib_resolve: tokens/s at least, ms per visual token at most. */
#define NODE_MIN_TPS 1e-3
#define NODE_MAX_VISION_MS 1e6

struct node_device {
    char name[FY_NAME_MAX];
    double mem_bw_gbs;          /* GB/s (1e9 bytes) */
    double tflops;              /* dense fp16/bf16 TFLOP/s */
    double mem_gb;              /* weights must fit (checked by resolve); 0 = unknown */
    double eff_decode, eff_prefill; /* (0,1]; defaults 0.6 and 0.4 */
    int line;                   /* where it was defined */
    char file[256];
};

struct node_model {
    char name[FY_NAME_MAX];
    double params_b;            /* language-model parameters, billions */
    double vision_params_b;     /* vision encoder parameters, billions */
    double bytes_per_param;     /* 2 for fp16/bf16 */
    double patches_per_token;   /* encoder patches merged into one visual token */
    enum fy_vt_family vt_family;
    int context_limit;          /* tokens; 0 = not given: node_profile_default's */
    int nskills;
    char skill[NODE_MAX_SKILLS][32];
    double cap[NODE_MAX_SKILLS];
    double cap_default;         /* capability for unlisted skills (logits) */
    double prior[FY_TASK__N];   /* prior.<task>: P(task completed) in (0, 1); 0 = not given */
    int line;
    char file[256];
};

struct node_def {
    char name[FY_NAME_MAX];
    char device[FY_NAME_MAX], model[FY_NAME_MAX], link[FY_NAME_MAX];
    enum fy_role role;
    int max_seqs;               /* 0 = not given: node_profile_default's for the role */
    double tpot_slope;          /* < 0 = not given: node_profile_default's for the role */
    double usd_per_mtok_in, usd_per_mtok_out, usd_per_hour;
    double cache_saving;        /* fraction of the history's prefill saved when the next
                                 * turn of a dialogue returns to this node (KV reuse) */
    double prefill_tps, decode_tps, vision_ms_per_token; /* > 0 = measured override */
    int max_queue;              /* waiting requests beyond which the node refuses; 0 = no limit */
    int line;
    char file[256];
    /* where device, model and link were last set (an experiment file or --set may
     * override the profile's): their "is not defined" errors point there */
    struct node_origin { int line; char file[256]; } at_device, at_model, at_link;
};

struct node_lib {
    struct node_device *dev; int ndev; size_t capdev;
    struct node_model *mod; int nmod; size_t capmod;
    struct link_spec *lnk; int nlnk; size_t caplnk; /* caplnk: of lnk and lnk_at */
    /* where each link section was first defined, and where its kind and series were
     * last set (node_lib_check_link names the one its error is about) */
    struct node_link_at { struct node_origin sec, kind, series; } *lnk_at;
    struct node_def *node; int nnode; size_t capnode;
};

/* Generic INI reading with line numbers (inih underneath): cb gets every key with its
 * section and 1-based line; returning < 0 stops the parse (cb writes its own message).
 * Errors: "path:line: what". Files over NODE_INI_MAX_BYTES are refused. */
typedef int (*node_ini_cb)(void *arg, const char *section, const char *key,
                           const char *value, int line, char *err, size_t errlen);
int node_ini_read(const char *path, node_ini_cb cb, void *arg, char *err, size_t errlen);

/* The keys an INI file has set, to refuse one set twice (the later value would win
 * silently; with inih an indented line continues the key above and so sets it again).
 * O(1) per key (open addressing). Zeroed memory is an empty set. */
struct node_ini_keys {
    struct node_ini_key { unsigned hash; int line; char sk[104]; } *slot;
    size_t cap, n;
};
/* 0 when section.key is new (recorded at line), the line it was first set at when it
 * was, -ENOMEM. Sections and keys longer than 50 characters compare by their first 50. */
int node_ini_keys_add(struct node_ini_keys *k, const char *section, const char *key, int line);
void node_ini_keys_fini(struct node_ini_keys *k);

void node_lib_init(struct node_lib *lib);
void node_lib_fini(struct node_lib *lib);

/* Feeds one key of a "[device X]", "[model X]", "[link X]" or "[node X]" section.
 * Returns 1 if handled, 0 if the section is not a profile section, -1 on error (err
 * says what; the caller prefixes file:line). A later definition of a name replaces
 * the earlier one key by key (experiment files refine shipped profiles). */
int node_lib_feed(struct node_lib *lib, const char *file, const char *section,
                  const char *key, const char *value, int line, char *err, size_t errlen);

/* Loads every section of one file (unknown sections are errors). */
int node_lib_load(struct node_lib *lib, const char *path, char *err, size_t errlen);
/* Loads every *.ini of a directory in name order. */
int node_lib_load_dir(struct node_lib *lib, const char *dir, char *err, size_t errlen);

const struct node_def *node_lib_find_node(const struct node_lib *lib, const char *name);
const struct node_model *node_lib_find_model(const struct node_lib *lib, const char *name);
const struct node_device *node_lib_find_device(const struct node_lib *lib, const char *name);
const struct link_spec *node_lib_find_link(const struct node_lib *lib, const char *name);
/* Checks that link `name` can be built as the simulator builds it (link_new: a const or
 * markov link needs its rates and sojourns, a series link its file, read and checked
 * here, a views link its view_s), so that a bad link stops the experiment before any
 * run. 0, or -1 with "FILE:LINE: link NAME: what" at the link's section. */
int node_lib_check_link(const struct node_lib *lib, const char *name, char *err, size_t errlen);

/* Resolves a node definition into a struct fy_node (name, role, profile with the
 * derived rates, link figures of its link, healthy state). Errors name the node's
 * file:line and the missing or invalid piece. */
int node_lib_resolve(const struct node_lib *lib, const char *node_name, struct fy_node *out,
                     char *err, size_t errlen);

/* The built-in node of a role, for whoever has no profile file: the default edge/cloud
 * pair of data/profiles (nodes.ini: edge-3090 = Qwen2-VL-2B on an RTX 3090 over the
 * LAN, cloud-a100 = Qwen2.5-VL-7B on an A100-40GB over a 300 Mbit/s WAN, the MoA-Off
 * setup of DESIGN.md), compiled in, with the rates the roofline above derives from their
 * device and model sections:
 *                 prefill tok/s  decode tok/s  vision ms/token  max_seqs  tpot_slope  USD/h
 *   edge  (3090)          9 467         187.2            0.190        16        0.02      0
 *   cloud (A100)          8 211          61.4            0.043        32        0.02    1.5
 * both: context_limit 32768, Qwen2-VL visual tokens, no per-token prices. The emulator
 * (edge), the gateway (by the node's role) and the profile reader (the keys a [node] or
 * [model] section leaves out) take their defaults from here; tests/test-node.c checks
 * that it equals what data/profiles resolves to. node_profile_default fills every field
 * (p->model: the model's name in data/profiles); node_link_default the link's (lan,
 * wan-300). */
void node_profile_default(struct fy_node_profile *p, enum fy_role role);
void node_link_default(struct fy_link *l, enum fy_role role);

/* Capability (logits) of a model for a skill: cap.<skill>, else cap. */
double node_model_cap(const struct node_model *m, const char *skill);

/* The model's prior accuracy per task, q[t] for t of enum fy_task (the quality
 * predictor's starting point, pred.h; docs/predictors.md "Prior"):
 *   prior.<task>  when the [model] section gives it: an accuracy in (0, 1) — a published
 *                 benchmark accuracy, or the deployer's own measurement;
 *   else, when the section lists cap.<task> (a skill named like the task):
 *                 node_cap_accuracy(cap.<task>), the mean accuracy over the reference
 *                 difficulty below;
 *   else 0: unknown (the predictor then uses its default for the node's role).
 * The catch-all `cap` is not used: it is the simulator's guess for skills a profile does
 * not list, not knowledge of the model. <task> is a name of feat_task_name: chat,
 * caption, count, ocr, yesno, mcq, reason. */
void node_model_task_priors(const struct node_model *m, double *q);
/* E[σ(cap − d)] over the reference difficulty d ~ N(NODE_PRIOR_D_MEAN, NODE_PRIOR_D_SD²):
 * every shipped workload draws its classes' difficulty with sd 1.5 around means from
 * −0.8 to 0.8 (data/workloads; the held-out ones were not looked at), so a task "of
 * typical difficulty" is N(0, 1.5²). O(1): 161-point quadrature. */
#define NODE_PRIOR_D_MEAN 0.0
#define NODE_PRIOR_D_SD   1.5
double node_cap_accuracy(double cap);
/* Loads a profile file or every *.ini of a directory (node_lib_load / _load_dir). */
int node_lib_load_path(struct node_lib *lib, const char *path, char *err, size_t errlen);

int node_parse_role(const char *s, enum fy_role *out);      /* 0 or -1 */
int node_parse_vt_family(const char *s, enum fy_vt_family *out);

#endif
