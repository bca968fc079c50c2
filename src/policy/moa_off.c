/* moa-off — modality-aware offloading (MoA-Off). Per modality i ∈ {image, text}:
 *   modality i stays at the edge  ⇔  c_i ≤ τ_i  ∧  ℓ ≤ ℓ_max  ∧  b ≤ β      (eq. 5/6)
 * with c_img the request's largest image complexity (feat: the weighted sum of C_res,
 * C_edge, C_ent, C_lap, weights at their average 1/4 each), c_text = β_L C_L + β_ner
 * C_ner, ℓ the load of the least-loaded admissible edge node ((running + queued) /
 * max_seqs), and b the uplink bandwidth to the least-loaded cloud node in Mbps.
 * Routing per request from the two modality decisions:
 *   both edge  → edge node, images kept;    both cloud → cloud node, images kept;
 *   image cloud, text edge → SPLIT: the cloud describes the images, the edge answers the
 *     text with the description (the paper's per-modality routing);
 *   image edge, text cloud → SPLIT the other way (edge describes, cloud answers).
 * A request without images follows the text decision. Privacy edge-only: edge always.
 * Parameters (defaults = the paper's setup as we read it, docs/policies.md):
 *   tau_img=0.5  tau_text=0.5  lmax=1.0  beta=1e9 (Mbps; the bandwidth condition is off
 *   unless set: the paper gives no value)  split=1 (0 = route the whole request to the
 *   cloud when any modality must go there). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/learned.h"
#include "policy/policy.h"

struct moa {
    double tau_img, tau_text, lmax, beta;
    int split;
};

static int moa_kv(void *arg, const char *k, const char *v, char *err, size_t errlen)
{
    struct moa *m = arg;
    double d;
    if (!strcmp(k, "tau_img")) return pol__num("moa-off", k, v, 0, 1, &m->tau_img, err, errlen);
    if (!strcmp(k, "tau_text")) return pol__num("moa-off", k, v, 0, 1, &m->tau_text, err, errlen);
    if (!strcmp(k, "lmax")) return pol__num("moa-off", k, v, 0, 1e6, &m->lmax, err, errlen);
    if (!strcmp(k, "beta")) return pol__num("moa-off", k, v, 0, 1e12, &m->beta, err, errlen);
    if (!strcmp(k, "split")) {
        if (pol__num("moa-off", k, v, 0, 1, &d, err, errlen) < 0) return -1;
        m->split = d != 0;
        return 0;
    }
    snprintf(err, errlen, "moa-off: unknown parameter '%s' (tau_img, tau_text, lmax, beta, split)",
             k);
    return -1;
}

static int moa_init(void **state, const char *params, char *err, size_t errlen)
{
    struct moa *m = pol_state_new("moa-off", sizeof *m, err, errlen);
    if (!m) return -ENOMEM;
    m->tau_img = 0.5;
    m->tau_text = 0.5;
    m->lmax = 1.0;
    m->beta = 1e9;
    m->split = 1;
    return pol_state_params(state, m, params, moa_kv, err, errlen);
}

/* Least-loaded admissible node of a role, or -1. */
static int pick(const struct pol_ctx *c, int role)
{
    int best = -1;
    double bl = 0;
    for (int i = 0; i < c->nnodes; i++) {
        if ((int)c->nodes[i].role != role || !pol__allowed(c, i)) continue;
        double l = pol_node_load(&c->nodes[i]);
        if (best < 0 || l < bl) best = i, bl = l;
    }
    return best;
}

static int moa_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                      struct fy_estimate *est)
{
    const struct moa *m = state;
    const struct fy_features *f = c->f;
    if (est) memset(est, 0, sizeof *est);
    int edge = pick(c, FY_ROLE_EDGE), cloud = pick(c, FY_ROLE_CLOUD);
    if (edge < 0 && cloud < 0) return -1;
    if (edge < 0 || cloud < 0) {
        pol_plan_keep(out, edge >= 0 ? edge : cloud);
        return 0;
    }
    double load = pol_node_load(&c->nodes[edge]);
    double bw = c->nodes[cloud].link.up_mbps;
    int env_ok = load <= m->lmax && bw <= m->beta;
    double cimg = 0;
    int nimg = f->nimages < FY_MAX_IMAGES ? f->nimages : FY_MAX_IMAGES;
    for (int k = 0; k < nimg; k++)
        if (f->img[k].c_img > cimg) cimg = f->img[k].c_img;
    int text_edge = f->c_text <= m->tau_text && env_ok;
    int img_edge = nimg == 0 || (cimg <= m->tau_img && env_ok);
    if (text_edge && img_edge) {
        pol_plan_keep(out, edge);
    } else if (!text_edge && !img_edge) {
        pol_plan_keep(out, cloud);
    } else if (!m->split) {
        pol_plan_keep(out, cloud);
    } else {
        /* split: aux describes the images, node answers */
        pol_plan_keep(out, text_edge ? edge : cloud);
        out->aux_node = text_edge ? cloud : edge;
        for (int k = 0; k < nimg; k++) out->img[k] = FY_IMG_SPLIT;
    }
    return 0;
}

static void moa_free(void *state) { free(state); }

const struct fy_policy pol_moa_off = {
    .name = "moa-off",
    .summary = "MoA-Off: per-modality complexity thresholds, split plans (tau_img, tau_text, lmax, beta, split)",
    .init = moa_init,
    .decide = moa_decide,
    .observe = NULL,
    .free = moa_free,
};
