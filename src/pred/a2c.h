/* a2c — a small, dependency-free advantage actor-critic (Mnih et al., 2016, "A3C"
 * synchronous variant, as stable-baselines3's A2C that the LCIO code trains): a softmax
 * policy π(a|x) and a value function V(x), each a one-hidden-layer tanh MLP (or linear
 * with nhid = 0) on a real-valued input vector, trained by RMSprop on
 *   actor:  −A·log π(a|x) − β·H(π(·|x))      critic: ½(V(x) − target)²
 * with A = target − V(x) (the caller forms the target: a discounted return or a TD
 * target) and the per-network gradient norm clipped. Actions can be masked per state
 * (masked actions get probability 0). Deterministic: weights are drawn from the caller's
 * rng at init, sampling uses the rng passed in; nothing else is random.
 * Cost: O(nhid·(nin + nact)) per forward pass, ~3× that per update; no allocation after
 * a2c_new. Used by the M4A1 replay's RC-A2C (pred/m4a1.c) and by policy lcio. */
#ifndef FERRY_PRED_A2C_H
#define FERRY_PRED_A2C_H
#include <stddef.h>

#define A2C_MAX_IN  64
#define A2C_MAX_HID 128
#define A2C_MAX_ACT 32

struct rng;

struct a2c_cfg {
    int nin, nhid, nact;     /* input size, hidden units (0 = linear), actions */
    double lr;               /* RMSprop step size of both networks (SB3 A2C: 7e-4) */
    double rms_decay;        /* RMSprop α (SB3 A2C: 0.99) */
    double rms_eps;          /* RMSprop ε (SB3 A2C: 1e-5) */
    double ent_coef;         /* β, entropy bonus (SB3 A2C: 0) */
    double vf_coef;          /* scale of the critic's loss (SB3 A2C: 0.5) */
    double max_grad_norm;    /* per-network gradient-norm clip, 0 = none (SB3 A2C: 0.5) */
};

/* SB3 A2C's defaults with nhid = 64 (SB3: two hidden layers of 64; here one). */
void a2c_cfg_default(struct a2c_cfg *c, int nin, int nact);

struct a2c;

/* NULL if cfg is out of range (1 <= nin <= A2C_MAX_IN, 0 <= nhid <= A2C_MAX_HID,
 * 2 <= nact <= A2C_MAX_ACT, lr > 0, ...) or on out of memory. Hidden weights ~
 * N(0, 1/fan_in), the policy head ×0.01 (nearly uniform start, as SB3's orthogonal
 * init with gain 0.01), the value head ×1. */
struct a2c *a2c_new(const struct a2c_cfg *cfg, struct rng *r);
void a2c_free(struct a2c *a);
const struct a2c_cfg *a2c_config(const struct a2c *a);

/* π(·|x) into p[nact]; mask (NULL = all allowed) has nact bytes, nonzero = allowed.
 * Returns the number of allowed actions (0: p is all zero). */
int a2c_probs(const struct a2c *a, const double *x, const unsigned char *mask, double *p);
/* An action drawn from π(·|x) with r, or the most probable one (lowest index on ties);
 * -1 if no action is allowed. */
int a2c_sample(const struct a2c *a, const double *x, const unsigned char *mask, struct rng *r);
int a2c_greedy(const struct a2c *a, const double *x, const unsigned char *mask);
/* V(x). */
double a2c_value(const struct a2c *a, const double *x);
/* One update on (x, action, target): advantage A = target − V(x) (before the update)
 * weighs the policy gradient; the critic moves V(x) towards target. Returns A. action
 * must be allowed by mask. */
double a2c_update(struct a2c *a, const double *x, const unsigned char *mask, int action,
                  double target);

/* Dual ascent on one budget constraint E[spend] <= budget (the Lagrange multiplier of
 * RC-A2C's penalised reward r − λ·spend/budget): returns
 * min(lam_max, max(0, λ + η·(spend/budget − 1))). The cap keeps one episode with a tiny
 * budget from throwing λ far. budget <= 0 returns λ unchanged. */
double a2c_dual_step(double lam, double eta, double spend, double budget, double lam_max);

#endif
