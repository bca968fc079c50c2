/* learned — helpers shared by the learned policies (moa-off, perllm, qlmio, lcio,
 * ferry; owner pred): the predictor bank a policy uses, node admissibility (health,
 * privacy), candidate modality plans, and a small per-dialogue table.
 *
 * Predictor bank: a policy uses c->pred when the caller shares one, and then never
 * trains it (the caller calls pred_observe once per outcome); with c->pred == NULL it
 * keeps a private bank, created from c->nodes at the first decision and trained in the
 * policy's observe(). */
#ifndef FERRY_POLICY_LEARNED_H
#define FERRY_POLICY_LEARNED_H
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"
#include "policy/policy.h"

struct pred;

/* The bank to use for c: c->pred, or *own (created on first use; NULL on ENOMEM). */
struct pred *pol__bank(struct pred **own, const struct pol_ctx *c);
/* Trains *own (if the policy owns a bank) with outcome o. */
void pol__bank_observe(struct pred *own, const struct pol_ctx *c, const struct fy_outcome *o);

/* Node i may take the request: healthy, and an edge node when privacy = edge-only. */
int pol__allowed(const struct pol_ctx *c, int i);

/* Candidate modality plans for node i (up to POL_MAX_PLANS): keep; downscale to
 * downscale_px (when an image is larger); drop every image; split (images described
 * by aux, when aux >= 0, aux != i and i is allowed to receive descriptions). */
#define POL_MAX_PLANS 4
int pol__plans(const struct pol_ctx *c, int i, int downscale_px, int aux, struct fy_plan *out);

/* Per-dialogue state, keyed by the session id (fixed capacity, oldest entry reused). */
struct pol__sess {
    uint64_t key;          /* FNV-1a of the session id; 0 = free slot */
    uint64_t stamp;        /* last use (for reuse of the oldest slot) */
    int last_node;         /* node of the previous turn, -1 = none */
    int last_action;       /* policy-specific action id of the previous turn, -1 = none */
    int turns;             /* turns decided so far */
    double used_ms, used_usd; /* latency and money spent by the dialogue so far */
};

#define POL_SESS_CAP 4096
struct pol__sessions {
    struct pol__sess s[POL_SESS_CAP];
    uint64_t clock;
};

/* The entry of session id (created when absent); NULL for an empty id. */
struct pol__sess *pol__session(struct pol__sessions *t, const char *id);

/* Parses v as a number in [lo, hi] for parameter k of policy pol; 0 or -1 with a
 * message "pol: k=v: expected a number in [lo, hi]". */
int pol__num(const char *pol, const char *k, const char *v, double lo, double hi, double *out,
             char *err, size_t errlen);
/* The same for a whole number ("pol: k=v: expected an integer in [lo, hi]"). */
int pol__int(const char *pol, const char *k, const char *v, double lo, double hi, double *out,
             char *err, size_t errlen);

#endif
