/* quality — P(correct | request, model, plan) (quality.h). */
#include "sim/quality.h"

#include <math.h>

void sim_quality_default(struct sim_quality *q)
{
    q->drop_penalty = 3.0;
    q->downscale_penalty = 2.0;
    q->split_penalty = 0.4;
    q->confidence_sep = 1.0;
    q->confidence_noise = 1.0;
}

double sim_quality_confidence(const struct sim_quality *q, double p, int correct, double z)
{
    const double eps = 1e-6;
    if (p < eps) p = eps;
    if (p > 1 - eps) p = 1 - eps;
    double logit = log(p / (1 - p)) + q->confidence_sep * (correct ? 0.5 : -0.5)
                   + q->confidence_noise * z;
    return 1.0 / (1.0 + exp(-logit));
}

double sim_quality_p(const struct sim_quality *q, const struct sim_class *c,
                     const struct sim_latent *lat, const struct fy_features *f,
                     const struct fy_plan *p, double cap_main, double cap_aux)
{
    double logit = cap_main - lat->difficulty;
    int k = f->nimages;
    if (k > 0 && p) {
        double pen = 0;
        int nsplit = 0;
        for (int i = 0; i < k && i < FY_MAX_IMAGES; i++) {
            const struct fy_image_features *im = &f->img[i];
            switch (p->img[i]) {
            case FY_IMG_DOWNSCALE: {
                int side = im->width > im->height ? im->width : im->height;
                double s = p->downscale_px > 0 && side > 0 ? (double)p->downscale_px / side : 1;
                if (s < 1) pen += q->downscale_penalty * c->image_need * im->c_img * (1 - s);
                break;
            }
            case FY_IMG_DROP:
                pen += q->drop_penalty * c->image_need;
                break;
            case FY_IMG_SPLIT:
                nsplit++;
                break;
            default:
                break;
            }
        }
        logit -= pen / k;
        if (nsplit > 0) {
            double share = (double)nsplit / k;
            logit += c->visual_share * (cap_aux - cap_main) * share;
            logit -= q->split_penalty * c->image_need * share;
        }
    }
    return 1.0 / (1.0 + exp(-logit));
}
