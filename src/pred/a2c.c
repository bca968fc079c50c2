/* a2c — small advantage actor-critic: two MLPs trained by RMSprop (a2c.h). */
#include "pred/a2c.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "util/rng.h"

#define W2_COLS ((A2C_MAX_HID > A2C_MAX_IN ? A2C_MAX_HID : A2C_MAX_IN) + 1)

/* One network: x[nin] -> tanh hidden[nhid] -> out[nout] (nhid = 0: out = W2 x + b).
 * Bias in the last column of each weight row. s* are RMSprop's running mean squares,
 * g* the gradient of the current update. */
struct net {
    int nin, nhid, nout;
    double w1[A2C_MAX_HID][A2C_MAX_IN + 1], s1[A2C_MAX_HID][A2C_MAX_IN + 1];
    double g1[A2C_MAX_HID][A2C_MAX_IN + 1];
    double w2[A2C_MAX_ACT][W2_COLS], s2[A2C_MAX_ACT][W2_COLS], g2[A2C_MAX_ACT][W2_COLS];
};

struct a2c {
    struct a2c_cfg cfg;
    struct net pi, v;
};

void a2c_cfg_default(struct a2c_cfg *c, int nin, int nact)
{
    c->nin = nin;
    c->nhid = 64;
    c->nact = nact;
    c->lr = 7e-4;
    c->rms_decay = 0.99;
    c->rms_eps = 1e-5;
    c->ent_coef = 0;
    c->vf_coef = 0.5;
    c->max_grad_norm = 0.5;
}

static void net_init(struct net *n, int nin, int nhid, int nout, double out_gain, struct rng *r)
{
    memset(n, 0, sizeof *n);
    n->nin = nin;
    n->nhid = nhid;
    n->nout = nout;
    for (int j = 0; j < nhid; j++)
        for (int i = 0; i < nin; i++) n->w1[j][i] = rng_normal(r, 0, 1.0 / sqrt((double)nin));
    int h = nhid ? nhid : nin;
    for (int k = 0; k < nout; k++)
        for (int j = 0; j < h; j++) n->w2[k][j] = out_gain * rng_normal(r, 0, 1.0 / sqrt((double)h));
}

/* Forward pass: hidden activations into hid[] (x itself when linear), outputs into out. */
static const double *net_forward(const struct net *n, const double *x, double *hid, double *out)
{
    const double *h = x;
    int nh = n->nin;
    if (n->nhid) {
        for (int j = 0; j < n->nhid; j++) {
            const double *w = n->w1[j];
            double z = w[n->nin];
            for (int i = 0; i < n->nin; i++) z += w[i] * x[i];
            hid[j] = tanh(z);
        }
        h = hid;
        nh = n->nhid;
    }
    for (int k = 0; k < n->nout; k++) {
        const double *w = n->w2[k];
        double z = w[nh];
        for (int j = 0; j < nh; j++) z += w[j] * h[j];
        out[k] = z;
    }
    return h;
}

/* Gradient of the loss given dL/dout = gout; then clip and one RMSprop step. */
static void net_step(struct net *n, const struct a2c_cfg *c, const double *x, const double *h,
                     const double *gout)
{
    int nh = n->nhid ? n->nhid : n->nin;
    double dh[A2C_MAX_HID] = {0}, sq = 0;
    for (int k = 0; k < n->nout; k++) {
        for (int j = 0; j < nh; j++) {
            n->g2[k][j] = gout[k] * h[j];
            sq += n->g2[k][j] * n->g2[k][j];
            if (n->nhid) dh[j] += gout[k] * n->w2[k][j];
        }
        n->g2[k][nh] = gout[k];
        sq += gout[k] * gout[k];
    }
    for (int j = 0; j < n->nhid; j++) {
        double dz = dh[j] * (1 - h[j] * h[j]);
        for (int i = 0; i < n->nin; i++) {
            n->g1[j][i] = dz * x[i];
            sq += n->g1[j][i] * n->g1[j][i];
        }
        n->g1[j][n->nin] = dz;
        sq += dz * dz;
    }
    double scale = 1, norm = sqrt(sq);
    if (c->max_grad_norm > 0 && norm > c->max_grad_norm) scale = c->max_grad_norm / norm;
    double a = c->rms_decay;
    for (int j = 0; j < n->nhid; j++)
        for (int i = 0; i <= n->nin; i++) {
            double g = scale * n->g1[j][i];
            n->s1[j][i] = a * n->s1[j][i] + (1 - a) * g * g;
            n->w1[j][i] -= c->lr * g / (sqrt(n->s1[j][i]) + c->rms_eps);
        }
    for (int k = 0; k < n->nout; k++)
        for (int j = 0; j <= nh; j++) {
            double g = scale * n->g2[k][j];
            n->s2[k][j] = a * n->s2[k][j] + (1 - a) * g * g;
            n->w2[k][j] -= c->lr * g / (sqrt(n->s2[k][j]) + c->rms_eps);
        }
}

struct a2c *a2c_new(const struct a2c_cfg *cfg, struct rng *r)
{
    if (!cfg || !r || cfg->nin < 1 || cfg->nin > A2C_MAX_IN || cfg->nhid < 0 ||
        cfg->nhid > A2C_MAX_HID || cfg->nact < 2 || cfg->nact > A2C_MAX_ACT ||
        !(cfg->lr > 0) || !(cfg->rms_decay >= 0 && cfg->rms_decay < 1) ||
        !(cfg->rms_eps > 0) || !(cfg->ent_coef >= 0) || !(cfg->vf_coef > 0) ||
        !(cfg->max_grad_norm >= 0))
        return NULL;
    struct a2c *a = malloc(sizeof *a);
    if (!a) return NULL;
    a->cfg = *cfg;
    net_init(&a->pi, cfg->nin, cfg->nhid, cfg->nact, 0.01, r);
    net_init(&a->v, cfg->nin, cfg->nhid, 1, 1.0, r);
    return a;
}

void a2c_free(struct a2c *a) { free(a); }

const struct a2c_cfg *a2c_config(const struct a2c *a) { return &a->cfg; }

/* Masked softmax of logits z into p; returns the number of allowed actions. */
static int softmax(const double *z, int n, const unsigned char *mask, double *p)
{
    double mx = -INFINITY;
    int na = 0;
    for (int k = 0; k < n; k++)
        if (!mask || mask[k]) {
            if (z[k] > mx) mx = z[k];
            na++;
        }
    double s = 0;
    for (int k = 0; k < n; k++) {
        p[k] = (!mask || mask[k]) ? exp(z[k] - mx) : 0;
        s += p[k];
    }
    for (int k = 0; k < n && na; k++) p[k] /= s;
    return na;
}

int a2c_probs(const struct a2c *a, const double *x, const unsigned char *mask, double *p)
{
    double hid[A2C_MAX_HID], z[A2C_MAX_ACT];
    net_forward(&a->pi, x, hid, z);
    return softmax(z, a->cfg.nact, mask, p);
}

int a2c_sample(const struct a2c *a, const double *x, const unsigned char *mask, struct rng *r)
{
    double p[A2C_MAX_ACT];
    if (!a2c_probs(a, x, mask, p)) return -1;
    double u = rng_uniform(r), acc = 0;
    int last = -1;
    for (int k = 0; k < a->cfg.nact; k++) {
        if (p[k] <= 0) continue;
        last = k;
        acc += p[k];
        if (u < acc) return k;
    }
    return last; /* u within rounding of 1 */
}

int a2c_greedy(const struct a2c *a, const double *x, const unsigned char *mask)
{
    double hid[A2C_MAX_HID], z[A2C_MAX_ACT];
    net_forward(&a->pi, x, hid, z);
    int best = -1;
    for (int k = 0; k < a->cfg.nact; k++)
        if ((!mask || mask[k]) && (best < 0 || z[k] > z[best])) best = k;
    return best;
}

double a2c_value(const struct a2c *a, const double *x)
{
    double hid[A2C_MAX_HID], v;
    net_forward(&a->v, x, hid, &v);
    return v;
}

double a2c_update(struct a2c *a, const double *x, const unsigned char *mask, int action,
                  double target)
{
    const struct a2c_cfg *c = &a->cfg;
    double hid[A2C_MAX_HID], v, z[A2C_MAX_ACT], p[A2C_MAX_ACT], g[A2C_MAX_ACT];
    const double *h = net_forward(&a->v, x, hid, &v);
    double adv = target - v;
    double gv = c->vf_coef * (v - target);
    net_step(&a->v, c, x, h, &gv);
    if (action < 0 || action >= c->nact || (mask && !mask[action])) return adv;
    h = net_forward(&a->pi, x, hid, z);
    softmax(z, c->nact, mask, p);
    /* d/dz_k of −A log p_a − β H,  H = −Σ p log p:  −A(1[k=a] − p_k) + β p_k (log p_k + H) */
    double ent = 0;
    for (int k = 0; k < c->nact; k++)
        if (p[k] > 0) ent -= p[k] * log(p[k]);
    for (int k = 0; k < c->nact; k++) {
        g[k] = -adv * ((k == action) - p[k]);
        if (c->ent_coef > 0 && p[k] > 0) g[k] += c->ent_coef * p[k] * (log(p[k]) + ent);
    }
    net_step(&a->pi, c, x, h, g);
    return adv;
}

double a2c_dual_step(double lam, double eta, double spend, double budget, double lam_max)
{
    if (!(budget > 0)) return lam;
    double l = lam + eta * (spend / budget - 1);
    return l < 0 ? 0 : l > lam_max ? lam_max : l;
}
