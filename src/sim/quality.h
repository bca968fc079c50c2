/* quality — the simulator's ground truth for answer quality (docs/simulator.md "Quality
 * model"; DESIGN.md "Quality model"). For a request with latent difficulty d answered
 * by a model with capability cap (logits, the node model's cap.<skill>):
 *
 *   logit = cap - d - sum_i penalty_i / k           (k images in the request)
 *     keep       penalty 0
 *     downscale  downscale_penalty * need * c_img_i * (1 - s_i),  s_i = min(1, px / longer side)
 *     drop       drop_penalty * need
 *   split (image described by the aux model, answered from text by the main model):
 *   logit = cap_main + v * (cap_aux - cap_main) * (split images / k) - d
 *           - split_penalty * need * (split images / k)
 *   P(correct) = sigma(logit)
 *
 * need = the class's image_need, v = its visual_share. Outcomes are correlated across
 * nodes and plans through d and through one uniform u per request: correct iff
 * u < P(correct), so a plan with higher P is correct whenever a lower one is. */
#ifndef FERRY_SIM_QUALITY_H
#define FERRY_SIM_QUALITY_H

#include "ferry.h"
#include "sim/workload.h"

struct sim_quality {
    double drop_penalty;       /* logits; default 3.0 */
    double downscale_penalty;  /* logits at c_img = 1 and s -> 0; default 2.0 */
    double split_penalty;      /* logits lost by describing instead of seeing; default 0.4 */
};

void sim_quality_default(struct sim_quality *q);

/* P(correct) of the request (class c, latent lat, features f) under plan p, with the
 * answering model's capability cap_main and (split) the describing model's cap_aux. */
double sim_quality_p(const struct sim_quality *q, const struct sim_class *c,
                     const struct sim_latent *lat, const struct fy_features *f,
                     const struct fy_plan *p, double cap_main, double cap_aux);

#endif
