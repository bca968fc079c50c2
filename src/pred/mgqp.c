/* mgqp — online Bayesian logistic regression for answer quality (mgqp.h). */
#include "pred/mgqp.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* Prior standard deviations of the weights (logit units per unit of feature). */
#define SD_BIAS  1.0
#define SD_DENSE 0.7
#define SD_NGRAM 0.3

static double clamp_q(double q)
{
    if (!(q > 0.01)) return 0.01;
    return q > 0.99 ? 0.99 : q;
}

void mgqp_init(struct mgqp *m, double q0)
{
    memset(m, 0, sizeof *m);
    q0 = clamp_q(q0);
    m->q0 = q0;
    for (int i = 0; i < MGQP_DIM; i++) {
        double sd = i == MGQP_BIAS ? SD_BIAS : i < MGQP_NGRAM0 ? SD_DENSE : SD_NGRAM;
        m->prec[i] = 1.0 / (sd * sd);
    }
    m->mu[MGQP_BIAS] = log(q0 / (1 - q0));
    /* what a model loses by not seeing (all of) the images: prior beliefs, weak */
    m->mu[MGQP_DROP] = -1.0;
    m->mu[MGQP_DOWN] = -0.5;
    m->mu[MGQP_SPLIT] = -0.4;
    mgqp_sync(m);
}

void mgqp_sync(struct mgqp *m)
{
    for (int i = 0; i < MGQP_DIM; i++) m->inv_prec[i] = 1.0 / m->prec[i];
}

/* The dense features x[0 .. MGQP_NGRAM0) only; returns the images kept. */
static int mgqp__dense(const struct fy_features *f, const struct fy_plan *plan, double *x)
{
    memset(x, 0, sizeof(double) * MGQP_NGRAM0);
    x[MGQP_BIAS] = 1;
    int n = f->nimages < FY_MAX_IMAGES ? f->nimages : FY_MAX_IMAGES, kept = 0;
    double sum = 0, mx = 0;
    int drop = 0, split = 0;
    double down = 0;
    for (int i = 0; i < n; i++) {
        int a = plan ? plan->img[i] : FY_IMG_KEEP;
        const struct fy_image_features *im = &f->img[i];
        if (a == FY_IMG_DROP) {
            drop++;
            continue;
        }
        kept++;
        if (a == FY_IMG_SPLIT) split++;
        if (a == FY_IMG_DOWNSCALE && plan->downscale_px > 0) {
            int side = im->width > im->height ? im->width : im->height;
            double s = side > 0 ? (double)plan->downscale_px / side : 1;
            if (s < 1) down += 1 - s;
        }
        sum += im->c_img;
        if (im->c_img > mx) mx = im->c_img;
    }
    x[MGQP_HASIMG] = n > 0;
    x[MGQP_CIMG_MEAN] = kept ? sum / kept : 0;
    x[MGQP_CIMG_MAX] = mx;
    x[MGQP_CTEXT] = f->c_text;
    x[MGQP_CL] = f->c_L;
    x[MGQP_CNER] = f->c_ner;
    x[MGQP_TURN] = f->turn > 0 ? (double)f->turn / (f->turn + 2.0) : 0;
    x[MGQP_LOGTOK] = log1p(f->last_text_tokens > 0 ? f->last_text_tokens : f->text_tokens) / 8.0;
    if (n > 0) {
        x[MGQP_DROP] = (double)drop / n;
        x[MGQP_DOWN] = down / n;
        x[MGQP_SPLIT] = (double)split / n;
    }
    if (f->task >= 0 && f->task < FY_TASK__N) x[MGQP_TASK0 + f->task] = 1;
    return kept;
}

int mgqp_features(const struct fy_features *f, const struct fy_plan *plan, double *x)
{
    int kept = mgqp__dense(f, plan, x);
    for (int k = 0; k < FY_HASH_DIM; k++) x[MGQP_NGRAM0 + k] = f->ngram[k];
    return kept;
}

double mgqp_predict_x(const struct mgqp *m, const double *x, double *sd, double *logit_mean,
                      double *logit_sd)
{
    double mean = 0, var = 0;
    for (int i = 0; i < MGQP_DIM; i++) {
        if (x[i] == 0) continue;
        mean += m->mu[i] * x[i];
        var += x[i] * x[i] * m->inv_prec[i];
    }
    double q = mgqp_sigmoid(mean / sqrt(1 + M_PI * var / 8));
    if (sd) *sd = q * (1 - q) * sqrt(var);
    if (logit_mean) *logit_mean = mean;
    if (logit_sd) *logit_sd = sqrt(var);
    return q;
}

/* Same as mgqp_predict_x on mgqp_features(f, plan), reading only the n-gram entries
 * listed in idx[0..nnz) (the non-zero ones; the decision hot path: one call per
 * candidate plan, the list built once per request). */
double mgqp_predict_sparse(const struct mgqp *m, const struct fy_features *f,
                           const struct fy_plan *plan, const uint16_t *idx, int nnz,
                           double *sd)
{
    double x[MGQP_NGRAM0];
    double mean = 0, var = 0;
    mgqp__dense(f, plan, x);
    for (int i = 0; i < MGQP_NGRAM0; i++) {
        mean += m->mu[i] * x[i];
        var += x[i] * x[i] * m->inv_prec[i];
    }
    for (int j = 0; j < nnz; j++) {
        int k = idx[j];
        double v = f->ngram[k];
        mean += m->mu[MGQP_NGRAM0 + k] * v;
        var += v * v * m->inv_prec[MGQP_NGRAM0 + k];
    }
    double q = mgqp_sigmoid(mean / sqrt(1 + M_PI * var / 8));
    if (sd) *sd = q * (1 - q) * sqrt(var);
    return q;
}

int mgqp_ngram_nonzero(const struct fy_features *f, uint16_t *idx)
{
    int n = 0;
    for (int k = 0; k < FY_HASH_DIM; k++)
        if (f->ngram[k] != 0) idx[n++] = (uint16_t)k;
    return n;
}

double mgqp_predict(const struct mgqp *m, const struct fy_features *f,
                    const struct fy_plan *plan, double *sd)
{
    uint16_t idx[FY_HASH_DIM];
    int nnz = mgqp_ngram_nonzero(f, idx);
    return mgqp_predict_sparse(m, f, plan, idx, nnz, sd);
}

void mgqp_observe_x(struct mgqp *m, const double *x, double y)
{
    if (!(y >= 0 && y <= 1)) return;
    double z = 0;
    for (int i = 0; i < MGQP_DIM; i++)
        if (x[i] != 0) z += m->mu[i] * x[i];
    double p = mgqp_sigmoid(z);
    double h = p * (1 - p);
    if (h < 1e-6) h = 1e-6;
    for (int i = 0; i < MGQP_DIM; i++) {
        if (x[i] == 0) continue;
        m->prec[i] += h * x[i] * x[i];
        m->inv_prec[i] = 1.0 / m->prec[i];
        m->mu[i] -= (p - y) * x[i] * m->inv_prec[i];
    }
    m->n++;
}

void mgqp_observe(struct mgqp *m, const struct fy_features *f, const struct fy_plan *plan,
                  double y)
{
    double x[MGQP_DIM];
    mgqp_features(f, plan, x);
    mgqp_observe_x(m, x, y);
}

/* The site of the observation at x that moved m from (prec0, eta0 = prec0·mu0) over
 * its nz non-zero features; NULL when out of memory. */
static struct mgqp_site *site_new(const struct mgqp *m, const double *x, int nz,
                                  const double *prec0, const double *eta0)
{
    struct mgqp_site *s = malloc(sizeof *s + (size_t)nz * sizeof s->w[0]);
    if (!s) return NULL;
    s->n = 0;
    for (int i = 0; i < MGQP_DIM; i++) {
        if (x[i] == 0) continue;
        s->w[s->n++] = (struct mgqp_site_w){i, m->prec[i] - prec0[i],
                                            m->prec[i] * m->mu[i] - eta0[i]};
    }
    return s;
}

struct mgqp_site *mgqp_observe_site(struct mgqp *m, const struct fy_features *f,
                                    const struct fy_plan *plan, double y)
{
    double x[MGQP_DIM], prec0[MGQP_DIM], eta0[MGQP_DIM];
    mgqp_features(f, plan, x);
    if (!(y >= 0 && y <= 1)) return NULL;
    int nz = 0;
    for (int i = 0; i < MGQP_DIM; i++) {
        if (x[i] == 0) continue;
        prec0[i] = m->prec[i];
        eta0[i] = m->prec[i] * m->mu[i];
        nz++;
    }
    mgqp_observe_x(m, x, y);
    return site_new(m, x, nz, prec0, eta0);
}

void mgqp_retract(struct mgqp *m, const struct mgqp_site *s)
{
    if (!s) return;
    for (int j = 0; j < s->n; j++) {
        int k = s->w[j].k;
        double p = m->prec[k] - s->w[j].dprec;
        double mu = (m->prec[k] * m->mu[k] - s->w[j].deta) / p;
        if (!(p > 0) || !isfinite(p) || !isfinite(mu)) continue;
        m->prec[k] = p;
        m->inv_prec[k] = 1.0 / p;
        m->mu[k] = mu;
    }
    if (m->n > 0) m->n--;
}

/* ==== shared + per-node ============================================================ */

#define SD_DEV_DENSE 0.25   /* a node's deviation from the shared weights */
#define SD_DEV_NGRAM 0.1

void mgqp_init_shared(struct mgqp *m)
{
    mgqp_init(m, 0.5);
    m->mu[MGQP_BIAS] = 0;
    m->prec[MGQP_BIAS] = 1e4; /* the bias lives in the node models */
    mgqp_sync(m);
}

void mgqp_init_node(struct mgqp *m, double q0)
{
    mgqp_init(m, q0);
    for (int i = 0; i < MGQP_DIM; i++) {
        if (i == MGQP_BIAS) continue;
        double sd = i < MGQP_NGRAM0 ? SD_DEV_DENSE : SD_DEV_NGRAM;
        m->mu[i] = 0;
        m->prec[i] = 1.0 / (sd * sd);
    }
    mgqp_sync(m);
}

void mgqp_set_task_prior(struct mgqp *d, int t, double q)
{
    if (t < 0 || t >= FY_TASK__N) return;
    q = clamp_q(q);
    d->mu[MGQP_TASK0 + t] = log(q / (1 - q)) - log(d->q0 / (1 - d->q0));
}

double mgqp2_predict_sparse(const struct mgqp *s, const struct mgqp *d,
                            const struct fy_features *f, const struct fy_plan *plan,
                            const uint16_t *idx, int nnz, double *sd)
{
    double x[MGQP_NGRAM0];
    double mean = 0, var = 0;
    mgqp__dense(f, plan, x);
    for (int i = 0; i < MGQP_NGRAM0; i++) {
        mean += (s->mu[i] + d->mu[i]) * x[i];
        var += x[i] * x[i] * (s->inv_prec[i] + d->inv_prec[i]);
    }
    for (int j = 0; j < nnz; j++) {
        int k = MGQP_NGRAM0 + idx[j];
        double v = f->ngram[idx[j]];
        mean += (s->mu[k] + d->mu[k]) * v;
        var += v * v * (s->inv_prec[k] + d->inv_prec[k]);
    }
    double q = mgqp_sigmoid(mean / sqrt(1 + M_PI * var / 8));
    if (sd) *sd = q * (1 - q) * sqrt(var);
    return q;
}

double mgqp2_predict(const struct mgqp *s, const struct mgqp *d, const struct fy_features *f,
                     const struct fy_plan *plan, double *sd)
{
    uint16_t idx[FY_HASH_DIM];
    int nnz = mgqp_ngram_nonzero(f, idx);
    return mgqp2_predict_sparse(s, d, f, plan, idx, nnz, sd);
}

static double dot2(const struct mgqp *s, const struct mgqp *d, const double *x)
{
    double z = 0;
    for (int i = 0; i < MGQP_DIM; i++)
        if (x[i] != 0) z += (s->mu[i] + d->mu[i]) * x[i];
    return z;
}

/* one diagonal Newton step of block m at the current total logit z */
static void step(struct mgqp *m, const double *x, double z, double y)
{
    double p = mgqp_sigmoid(z), h = p * (1 - p);
    if (h < 1e-6) h = 1e-6;
    for (int i = 0; i < MGQP_DIM; i++) {
        if (x[i] == 0) continue;
        m->prec[i] += h * x[i] * x[i];
        m->inv_prec[i] = 1.0 / m->prec[i];
        m->mu[i] -= (p - y) * x[i] * m->inv_prec[i];
    }
    m->n++;
}

void mgqp2_observe(struct mgqp *s, struct mgqp *d, const struct fy_features *f,
                   const struct fy_plan *plan, double y)
{
    if (!(y >= 0 && y <= 1)) return;
    double x[MGQP_DIM];
    mgqp_features(f, plan, x);
    step(s, x, dot2(s, d, x), y);
    step(d, x, dot2(s, d, x), y);
}

int mgqp2_observe_sites(struct mgqp *s, struct mgqp *d, const struct fy_features *f,
                        const struct fy_plan *plan, double y, struct mgqp_site **site_s,
                        struct mgqp_site **site_d)
{
    *site_s = *site_d = NULL;
    if (!(y >= 0 && y <= 1)) return -1;
    double x[MGQP_DIM], ps[MGQP_DIM], es[MGQP_DIM], pd[MGQP_DIM], ed[MGQP_DIM];
    mgqp_features(f, plan, x);
    int nz = 0;
    for (int i = 0; i < MGQP_DIM; i++) {
        if (x[i] == 0) continue;
        ps[i] = s->prec[i];
        es[i] = s->prec[i] * s->mu[i];
        pd[i] = d->prec[i];
        ed[i] = d->prec[i] * d->mu[i];
        nz++;
    }
    step(s, x, dot2(s, d, x), y);
    step(d, x, dot2(s, d, x), y);
    *site_s = site_new(s, x, nz, ps, es);
    *site_d = site_new(d, x, nz, pd, ed);
    if (*site_s && *site_d) return 0;
    free(*site_s);
    free(*site_d);
    *site_s = *site_d = NULL;
    return -1;
}

void mgqp_merge(struct mgqp *m, const struct mgqp *f, const struct mgqp *b)
{
    for (int k = 0; k < MGQP_DIM; k++) {
        double df = f->prec[k] - b->prec[k];
        if (!(df > 0)) continue;
        double p = m->prec[k] + df;
        double mu = (m->prec[k] * m->mu[k] + f->prec[k] * f->mu[k] - b->prec[k] * b->mu[k]) / p;
        if (isfinite(mu) && isfinite(p)) {
            m->prec[k] = p;
            m->mu[k] = mu;
        }
    }
    if (f->n > b->n) m->n += f->n - b->n;
    mgqp_sync(m);
}
