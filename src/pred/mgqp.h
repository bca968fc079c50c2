/* mgqp — the quality predictor (QLMIO's "MGQP"): for one (request, node, plan) the
 * probability that the node's answer completes the task, with its uncertainty.
 *
 * Model: Bayesian logistic regression per node, P(y=1|x) = σ(wᵀx), with a diagonal
 * Gaussian posterior N(μ, diag(1/prec)) (the Laplace approximation with a diagonal
 * Hessian, updated online one observation at a time as in Chapelle & Li, "An Empirical
 * Evaluation of Thompson Sampling", NIPS 2011, Algorithm 3, made incremental):
 *   p = σ(μᵀx);  prec_i += p(1−p) x_i²;  μ_i −= (p − y) x_i / prec_i.
 * Labels y are scores in [0,1] (soft labels are fine for the log loss). The prior is
 * centred on the node's prior quality (bias = logit(q0)) with small weights elsewhere.
 * Prediction integrates over the posterior with the probit approximation
 *   q = σ(m / sqrt(1 + π v / 8)),  m = μᵀx,  v = Σ x_i² / prec_i
 * (MacKay 1992), which keeps probabilities calibrated while the model is unsure, and
 * reports q_std = q(1−q)·sqrt(v) (delta method). A lower confidence bound is
 * σ(m − z sqrt(v)).
 *
 * Features x (MGQP_DIM): bias, has-image, mean and max c_img of the images kept, c_text,
 * C_L, C_ner, turn (saturating), log text tokens, the plan's share of dropped /
 * downscaled (with severity) / split images, task one-hot, hashed n-grams. */
#ifndef FERRY_PRED_MGQP_H
#define FERRY_PRED_MGQP_H
#include <stdint.h>

#include "ferry.h"

enum {
    MGQP_BIAS = 0, MGQP_HASIMG, MGQP_CIMG_MEAN, MGQP_CIMG_MAX, MGQP_CTEXT, MGQP_CL, MGQP_CNER,
    MGQP_TURN, MGQP_LOGTOK, MGQP_DROP, MGQP_DOWN, MGQP_SPLIT, MGQP_TASK0,
    MGQP_NGRAM0 = MGQP_TASK0 + FY_TASK__N,
    MGQP_DIM = MGQP_NGRAM0 + FY_HASH_DIM
};

struct mgqp {
    double mu[MGQP_DIM];
    double prec[MGQP_DIM];
    double inv_prec[MGQP_DIM]; /* 1 / prec, kept in step (prediction without divisions) */
    double q0;                 /* prior quality */
    long n;                    /* observations */
};

/* Prior centred on quality q0 in (0,1). */
void mgqp_init(struct mgqp *m, double q0);
/* Recomputes inv_prec from prec (after prec was set directly, e.g. by a model load). */
void mgqp_sync(struct mgqp *m);
/* Feature vector of (request, plan); plan may be NULL (everything kept). Returns the
 * number of images of the request the plan keeps in any form. */
int mgqp_features(const struct fy_features *f, const struct fy_plan *plan, double *x);
/* Predictive mean and std of P(complete). */
double mgqp_predict_x(const struct mgqp *m, const double *x, double *sd, double *logit_mean,
                      double *logit_sd);
double mgqp_predict(const struct mgqp *m, const struct fy_features *f,
                    const struct fy_plan *plan, double *sd);
/* The same with the request's non-zero n-gram indices listed once (idx from
 * mgqp_ngram_nonzero, which returns their count). */
int mgqp_ngram_nonzero(const struct fy_features *f, uint16_t *idx);
double mgqp_predict_sparse(const struct mgqp *m, const struct fy_features *f,
                           const struct fy_plan *plan, const uint16_t *idx, int nnz,
                           double *sd);
void mgqp_observe_x(struct mgqp *m, const double *x, double y);
void mgqp_observe(struct mgqp *m, const struct fy_features *f, const struct fy_plan *plan,
                  double y);

/* One observation's factor of the posterior (its "site", as in expectation propagation):
 * the change it made to precision and to precision × mean, on the weights it moved. */
struct mgqp_site {
    int n;                        /* entries */
    struct mgqp_site_w { int k; double dprec, deta; } w[];
};
/* mgqp_observe, returning the observation's site (malloc'd, free with free(); NULL when
 * out of memory or y is not in [0,1] — the observation is applied either way when it is
 * valid). */
struct mgqp_site *mgqp_observe_site(struct mgqp *m, const struct fy_features *f,
                                    const struct fy_plan *plan, double y);
/* Divides the site s out of m (subtracts its natural parameters) and takes one from
 * m->n; s NULL: no-op. Right after the observation, m is back where it was (to
 * round-off); after later observations, close to but not equal to the posterior without
 * this one (the EP cavity: the diagonal Laplace steps in between were taken at means the
 * site had moved; tests/test-pred.c measures it). A weight whose precision would not
 * stay positive is left alone. */
void mgqp_retract(struct mgqp *m, const struct mgqp_site *s);

/* Shared + per-node MGQP (used by the predictor bank, pred.h). The probability for node
 * n is σ((s + d_n)ᵀx): s are weights shared by every node (how features and plans move
 * quality for any model), d_n the node's own model — its bias logit(q0) (its
 * capability) and small deviations (tighter prior). A node that has served few requests
 * thus borrows everything but its bias from the others. Variances add. Updates fit s
 * then d_n (one diagonal Newton step each, the second on the residual of the first). */
void mgqp_init_shared(struct mgqp *s);
void mgqp_init_node(struct mgqp *d, double q0);
/* After mgqp_init_node: the prior quality of requests of task t (0 <= t < FY_TASK__N) on
 * this node becomes q (clamped like q0): the node's task weight starts at
 * logit(q) − logit(q0), so the untrained mean logit of a task-t request is logit(q), with
 * the task weight's usual prior SD (0.25). Other tasks keep q0. */
void mgqp_set_task_prior(struct mgqp *d, int t, double q);
double mgqp2_predict_sparse(const struct mgqp *s, const struct mgqp *d,
                            const struct fy_features *f, const struct fy_plan *plan,
                            const uint16_t *idx, int nnz, double *sd);
double mgqp2_predict(const struct mgqp *s, const struct mgqp *d, const struct fy_features *f,
                     const struct fy_plan *plan, double *sd);
void mgqp2_observe(struct mgqp *s, struct mgqp *d, const struct fy_features *f,
                   const struct fy_plan *plan, double y);
/* mgqp2_observe, also returning the observation's site in each block (malloc'd; retract
 * each from its block with mgqp_retract, then free). 0; -1 when y is not in [0,1] (not
 * applied) or out of memory (applied, *site_s = *site_d = NULL). */
int mgqp2_observe_sites(struct mgqp *s, struct mgqp *d, const struct fy_features *f,
                        const struct fy_plan *plan, double y, struct mgqp_site **site_s,
                        struct mgqp_site **site_d);

/* Adds f's learning beyond b to m (three states of one MGQP block, f and m descending
 * from b): per weight in natural parameters, prec += f.prec − b.prec and
 * prec·mu += f.prec·f.mu − b.prec·b.mu, where f is more certain than b (elsewhere m is
 * kept); n += f.n − b.n. Exact for Gaussian posteriors over disjoint observations (the
 * likelihood factors f multiplied in since b); b's prior is subtracted, so a prior is
 * never counted twice. */
void mgqp_merge(struct mgqp *m, const struct mgqp *f, const struct mgqp *b);

static inline double mgqp_sigmoid(double z)
{
    return z >= 0 ? 1.0 / (1.0 + __builtin_exp(-z)) : __builtin_exp(z) / (1.0 + __builtin_exp(z));
}

#endif
