/* milp — the latency predictor (QLMIO's "MILP"): for one (request, node, plan) the
 * expected latency parts (upload, queue, vision, prefill, decode, download), TTFT and
 * end-to-end latency with its uncertainty, and the expected output length.
 *
 * Structure (DESIGN.md "Latency model"); every part is linear in a few physical
 * regressors, and the coefficients of each part are learned per node by recursive least
 * squares (RLS) with exponential forgetting, starting from the node profile:
 *   T_up      = a0 · (RTT/2 + 8·bytes_up / up_bps) + a1
 *   T_queue   = q0 · queued_tokens + q1 · queued            (0 when nothing waits and a
 *                                                            sequence slot is free)
 *   T_vision  = v0 · image_tokens + v1 · running + v2 · ewma_ttft_s + v3 · queued_ktok
 *   T_prefill = p0 · in_tokens + p1 + p2 · running + p3 · ewma_ttft_s + p4 · queued_ktok
 *               (the last three: congestion, the prefill backlog of admitted sequences)
 *   T_decode  = d0 · out_tokens + d1 · out_tokens · running  (tpot grows with the batch)
 *   T_down    = b0 · (RTT/2 + 8·4·out_tokens / down_bps) + b1
 *   out_tokens = o · [task one-hot, last_text_tokens/100, nimages]   (clipped to the
 *                request's limit and to [1, 4096])
 * TTFT = up + queue + vision + prefill + tpot; e2e = TTFT + decode + down − tpot.
 * The uncertainty of each part is sqrt(s² (1 + xᵀPx)) with s² the running residual
 * variance of that part and P the RLS covariance; parts are added as independent. */
#ifndef FERRY_PRED_MILP_H
#define FERRY_PRED_MILP_H
#include <stdio.h>

#include "ferry.h"

#define RLS_MAX 10

/* Recursive least squares, y ≈ wᵀx, with forgetting factor lambda (1 = none). */
struct rls {
    int d;
    double w[RLS_MAX];
    double P[RLS_MAX * RLS_MAX];   /* covariance / s², row major */
    double lambda;
    double s2;                     /* residual variance (EWMA of squared a-priori errors) */
    long n;                        /* updates seen */
};

void rls_init(struct rls *r, int d, const double *w0, const double *p0diag, double lambda,
              double s2);
double rls_predict(const struct rls *r, const double *x);
double rls_var(const struct rls *r, const double *x); /* s² (1 + xᵀPx) */
void rls_update(struct rls *r, const double *x, double y);
/* Merges into m what f learned beyond b, where m and f both descend from b (b is a past
 * state of each; m is typically this replica's model, f another replica's, b their last
 * common state). In information form, A = P⁻¹ and η = A w, RLS with forgetting λ gives
 * A_n = λ A_{n−1} + x xᵀ and η_n = λ η_{n−1} + x y, so with k_m = m.n − b.n and
 * k_f = f.n − b.n updates on each side, ΔA_m = A_m − λ^k_m A_b holds m's own
 * observations (likewise f's) and
 *   A = λ^(k_m+k_f) A_b + λ^(k_f/2) ΔA_m + λ^(k_m/2) ΔA_f,   η the same,   w = A⁻¹ η:
 * the base decays by every update of both sides, and each side's new observations by
 * half the other side's count — the mean discount when the two streams interleaved
 * evenly in time (the order is not recorded). For λ = 1 this is exactly the RLS fit of
 * b's prior and both sides' observations; for λ < 1 it is exact to first order in
 * (1 − λ)·k. s² becomes the k-weighted mean of m's and f's, n = m.n + k_f.
 * Returns 1 when merged, 0 when f holds nothing beyond b (m untouched), -1 when the
 * three do not fit together (dimension, λ, f or m behind b) or the merged information
 * matrix is not positive definite (m untouched). O(d³). */
int rls_merge(struct rls *m, const struct rls *f, const struct rls *b);

enum milp_part { MILP_UP = 0, MILP_QUEUE, MILP_VISION, MILP_PREFILL, MILP_DECODE, MILP_DOWN,
                 MILP_OUTLEN, MILP__N };

struct milp {
    struct rls part[MILP__N];
    double cost_ratio;             /* EWMA of observed / modelled cost (1 = model exact) */
    double abs_err_sum, ape_sum;   /* e2e error statistics of a-priori predictions */
    long nerr;
};

/* What a node looks like when a request is dispatched to it. */
struct milp_ctx {
    const struct fy_node *node;    /* profile, link, live state */
    int in_text_tokens;            /* prompt text tokens (incl. history and descriptions) */
    int image_tokens;              /* visual tokens after the plan */
    double bytes_up;               /* bytes sent after the plan */
    int out_tokens;                /* > 0: known output length (else predicted) */
};

/* Priors from the node profile. */
void milp_init(struct milp *m, const struct fy_node *node);
/* Predicted output tokens for a request on this node (>= 1). */
double milp_out_tokens(const struct milp *m, const struct fy_features *f, double *sd);
/* Fills the latency and cost fields of *e (q_mean/q_std untouched). */
void milp_predict(const struct milp *m, const struct fy_features *f, const struct milp_ctx *c,
                  struct fy_estimate *e);
/* Learns from an observed outcome of a request dispatched in context c. Parts the
 * outcome leaves at 0 while ttft/e2e are known are apportioned from the prediction. */
void milp_observe(struct milp *m, const struct fy_features *f, const struct milp_ctx *c,
                  const struct fy_outcome *o);

/* Merges f's learning beyond b into m (all three of one node): every part by rls_merge,
 * the error sums and counts by adding f's increments over b, cost_ratio as the mean of
 * m's and f's weighted by their new observations (nerr − b.nerr). */
void milp_merge(struct milp *m, const struct milp *f, const struct milp *b);

/* Feature vectors of the output-length model (exported for tests). */
int milp_outlen_x(const struct fy_features *f, double *x);

#endif
