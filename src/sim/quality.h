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
 * u < P(correct), so a plan with higher P is correct whenever a lower one is.
 *
 * Answer confidence (for cascades: answer at the edge, escalate when unsure). A model's
 * self-reported confidence in an answer (e.g. its mean token probability) is modelled as
 *
 *   confidence = sigma( logit(P(correct)) + sep * (correct ? +1/2 : -1/2) + noise * z )
 *
 * with z ~ N(0, 1) drawn by the caller. sep = 0 and noise = 0 give a perfectly
 * calibrated confidence that knows P(correct) but nothing of the realised outcome; sep
 * > 0 adds what the model "notices" about this particular answer. For a fixed P the
 * confidence separates right from wrong answers with AUC Phi(sep / (noise sqrt 2)).
 * Defaults sep = 1, noise = 1 (AUC 0.76 at fixed P, more over a mix of difficulties):
 * an assumption of ferry, in the range of the AUROCs reported for small models'
 * token-probability confidence; a scenario sets its own ([quality] confidence_sep,
 * confidence_noise). */
#ifndef FERRY_SIM_QUALITY_H
#define FERRY_SIM_QUALITY_H

#include "ferry.h"
#include "sim/workload.h"

struct sim_quality {
    double drop_penalty;       /* logits; default 3.0 */
    double downscale_penalty;  /* logits at c_img = 1 and s -> 0; default 2.0 */
    double split_penalty;      /* logits lost by describing instead of seeing; default 0.4 */
    double confidence_sep;     /* logits between right and wrong answers' confidence; default 1 */
    double confidence_noise;   /* standard deviation of the confidence logit; default 1 */
};

void sim_quality_default(struct sim_quality *q);

/* P(correct) of the request (class c, latent lat, features f) under plan p, with the
 * answering model's capability cap_main and (split) the describing model's cap_aux. */
double sim_quality_p(const struct sim_quality *q, const struct sim_class *c,
                     const struct sim_latent *lat, const struct fy_features *f,
                     const struct fy_plan *p, double cap_main, double cap_aux);

/* The answer's confidence in [0,1] (model above): p = P(correct) of the plan that
 * answered, correct = its realised outcome (0/1), z = a standard normal draw. */
double sim_quality_confidence(const struct sim_quality *q, double p, int correct, double z);

#endif
