/* milp — latency predictor: physical structure + per-node RLS coefficients (milp.h). */
#include "pred/milp.h"

#include <math.h>
#include <string.h>

/* ==== recursive least squares ====================================================== */

void rls_init(struct rls *r, int d, const double *w0, const double *p0diag, double lambda,
              double s2)
{
    memset(r, 0, sizeof *r);
    r->d = d;
    r->lambda = lambda;
    r->s2 = s2;
    for (int i = 0; i < d; i++) {
        r->w[i] = w0[i];
        r->P[i * RLS_MAX + i] = p0diag[i];
    }
}

double rls_predict(const struct rls *r, const double *x)
{
    double y = 0;
    for (int i = 0; i < r->d; i++) y += r->w[i] * x[i];
    return y;
}

double rls_var(const struct rls *r, const double *x)
{
    double q = 0;
    for (int i = 0; i < r->d; i++) {
        double s = 0;
        for (int j = 0; j < r->d; j++) s += r->P[i * RLS_MAX + j] * x[j];
        q += x[i] * s;
    }
    return r->s2 * (1.0 + (q > 0 ? q : 0));
}

/* Standard RLS step: k = P x / (λ + xᵀ P x); w += k e; P = (P − k xᵀ P) / λ.
 * O(d²). P is re-symmetrised and its diagonal kept positive against round-off. */
void rls_update(struct rls *r, const double *x, double y)
{
    int d = r->d;
    double Px[RLS_MAX], k[RLS_MAX];
    double denom = r->lambda;
    for (int i = 0; i < d; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += r->P[i * RLS_MAX + j] * x[j];
        Px[i] = s;
        denom += x[i] * s;
    }
    if (!(denom > 1e-12) || !isfinite(denom) || !isfinite(y)) return;
    double e = y - rls_predict(r, x);
    /* residual variance: EWMA of the a-priori error, normalised by the predictive gain */
    double e2 = e * e / (denom / r->lambda);
    double a = r->n < 20 ? 1.0 / (double)(r->n + 2) : 0.05;
    r->s2 = (1 - a) * r->s2 + a * e2;
    if (r->s2 < 1e-12) r->s2 = 1e-12; /* a perfect fit must not decay it to a subnormal */
    for (int i = 0; i < d; i++) k[i] = Px[i] / denom;
    for (int i = 0; i < d; i++) r->w[i] += k[i] * e;
    for (int i = 0; i < d; i++)
        for (int j = 0; j < d; j++)
            r->P[i * RLS_MAX + j] = (r->P[i * RLS_MAX + j] - k[i] * Px[j]) / r->lambda;
    for (int i = 0; i < d; i++) {
        for (int j = i + 1; j < d; j++) {
            double m = 0.5 * (r->P[i * RLS_MAX + j] + r->P[j * RLS_MAX + i]);
            r->P[i * RLS_MAX + j] = r->P[j * RLS_MAX + i] = m;
        }
        if (r->P[i * RLS_MAX + i] < 1e-12) r->P[i * RLS_MAX + i] = 1e-12;
        if (r->P[i * RLS_MAX + i] > 1e12) r->P[i * RLS_MAX + i] = 1e12;
    }
    r->n++;
}

/* Inverse of the symmetric positive definite d×d matrix a (row stride RLS_MAX, lower
 * triangle read) into inv, by Cholesky. 0, or -1 when a is not positive definite. O(d³). */
static int spd_inverse(const double *a, int d, double *inv)
{
    double L[RLS_MAX * RLS_MAX] = {0};
    for (int j = 0; j < d; j++) {
        double s = a[j * RLS_MAX + j];
        for (int k = 0; k < j; k++) s -= L[j * RLS_MAX + k] * L[j * RLS_MAX + k];
        if (!(s > 0) || !isfinite(s)) return -1;
        double ljj = sqrt(s);
        L[j * RLS_MAX + j] = ljj;
        for (int i = j + 1; i < d; i++) {
            double t = a[i * RLS_MAX + j];
            for (int k = 0; k < j; k++) t -= L[i * RLS_MAX + k] * L[j * RLS_MAX + k];
            L[i * RLS_MAX + j] = t / ljj;
        }
    }
    for (int c = 0; c < d; c++) {   /* column c: L y = e_c, then Lᵀ x = y */
        double y[RLS_MAX];
        for (int i = 0; i < d; i++) {
            double t = i == c ? 1.0 : 0.0;
            for (int k = 0; k < i; k++) t -= L[i * RLS_MAX + k] * y[k];
            y[i] = t / L[i * RLS_MAX + i];
        }
        for (int i = d - 1; i >= 0; i--) {
            double t = y[i];
            for (int k = i + 1; k < d; k++) t -= L[k * RLS_MAX + i] * inv[k * RLS_MAX + c];
            inv[i * RLS_MAX + c] = t / L[i * RLS_MAX + i];
        }
    }
    return 0;
}

/* Information form of r: A = P⁻¹, eta = A w. 0 or -1. */
static int rls_info(const struct rls *r, double *A, double *eta)
{
    if (spd_inverse(r->P, r->d, A)) return -1;
    for (int i = 0; i < r->d; i++) {
        double s = 0;
        for (int j = 0; j < r->d; j++) s += A[i * RLS_MAX + j] * r->w[j];
        eta[i] = s;
    }
    return 0;
}

int rls_merge(struct rls *m, const struct rls *f, const struct rls *b)
{
    int d = m->d;
    if (f->d != d || b->d != d || f->lambda != m->lambda || b->lambda != m->lambda)
        return -1;
    long km = m->n - b->n, kf = f->n - b->n;
    if (kf == 0) return 0;
    if (km < 0 || kf < 0) return -1;
    double Am[RLS_MAX * RLS_MAX], Af[RLS_MAX * RLS_MAX], Ab[RLS_MAX * RLS_MAX];
    double em[RLS_MAX], ef[RLS_MAX], eb[RLS_MAX];
    if (rls_info(m, Am, em) || rls_info(f, Af, ef) || rls_info(b, Ab, eb)) return -1;
    double lam = m->lambda;
    double lm = pow(lam, (double)km), lf = pow(lam, (double)kf);
    double cb = lm * lf, cm = pow(lam, kf / 2.0), cf = pow(lam, km / 2.0);
    /* A = cb A_b + cm (A_m − lm A_b) + cf (A_f − lf A_b), η the same */
    double kb = cb - cm * lm - cf * lf;
    double A[RLS_MAX * RLS_MAX] = {0}, eta[RLS_MAX], P[RLS_MAX * RLS_MAX], w[RLS_MAX];
    for (int i = 0; i < d; i++) {
        for (int j = 0; j < d; j++) {
            int ij = i * RLS_MAX + j;
            A[ij] = kb * Ab[ij] + cm * Am[ij] + cf * Af[ij];
        }
        eta[i] = kb * eb[i] + cm * em[i] + cf * ef[i];
    }
    for (int i = 0; i < d; i++)   /* symmetric against round-off */
        for (int j = i + 1; j < d; j++)
            A[i * RLS_MAX + j] = A[j * RLS_MAX + i] =
                0.5 * (A[i * RLS_MAX + j] + A[j * RLS_MAX + i]);
    if (spd_inverse(A, d, P)) return -1;
    for (int i = 0; i < d; i++) {
        double s = 0;
        for (int j = 0; j < d; j++) s += P[i * RLS_MAX + j] * eta[j];
        if (!isfinite(s)) return -1;
        w[i] = s;
    }
    for (int i = 0; i < d; i++) {
        m->w[i] = w[i];
        for (int j = 0; j < d; j++) m->P[i * RLS_MAX + j] = P[i * RLS_MAX + j];
        for (int j = i + 1; j < d; j++)
            m->P[i * RLS_MAX + j] = m->P[j * RLS_MAX + i] =
                0.5 * (P[i * RLS_MAX + j] + P[j * RLS_MAX + i]);
        if (m->P[i * RLS_MAX + i] < 1e-12) m->P[i * RLS_MAX + i] = 1e-12;
        if (m->P[i * RLS_MAX + i] > 1e12) m->P[i * RLS_MAX + i] = 1e12;
    }
    m->s2 = ((double)km * m->s2 + (double)kf * f->s2) / (double)(km + kf);
    m->n += kf;
    return 1;
}

/* ==== regressors =================================================================== */

#define OUT_MAX 4096.0
#define OUT_BYTES_PER_TOKEN 4.0  /* streamed answer bytes per token (JSON/SSE framing
                                  * excluded): a round figure for English BPE text */

int milp_outlen_x(const struct fy_features *f, double *x)
{
    for (int t = 0; t < FY_TASK__N; t++) x[t] = ((int)f->task == t) ? 1.0 : 0.0;
    x[FY_TASK__N] = f->last_text_tokens / 100.0;
    x[FY_TASK__N + 1] = f->nimages;
    return FY_TASK__N + 2;
}

static double bps(double mbps) { return mbps > 0 ? mbps * 1e6 : 1e9; }

static void x_up(const struct milp_ctx *c, double *x)
{
    x[0] = c->node->link.rtt_ms / 2 + 8.0 * c->bytes_up / bps(c->node->link.up_mbps) * 1e3;
    x[1] = 1;
}

/* Queue regressors; returns 0 when the request would start at once. */
static int x_queue(const struct milp_ctx *c, double *x)
{
    const struct fy_node_state *s = &c->node->st;
    int slots = c->node->prof.max_seqs > 0 ? c->node->prof.max_seqs : 1;
    x[0] = s->queued_tokens;
    x[1] = s->queued;
    return s->queued > 0 || s->running >= slots;
}

/* Prefill regressors: prompt + visual tokens, 1, and three congestion terms — the
 * sequences in service (their prefills and decodes share the device), the node's
 * recent TTFT (EWMA, seconds) and the work ahead (queued_tokens / 1000, which the
 * simulator and gateway count for admitted sequences too): together they carry the
 * prefill backlog of admitted sequences. */
static void x_prefill(const struct milp_ctx *c, double *x)
{
    x[0] = c->in_text_tokens + c->image_tokens;
    x[1] = 1;
    x[2] = c->node->st.running;
    x[3] = c->node->st.ewma_ttft_ms > 0 ? c->node->st.ewma_ttft_ms / 1000 : 0;
    x[4] = c->node->st.queued_tokens / 1000;
}

/* Vision regressors: visual tokens and the same congestion terms as prefill (the
 * encoder runs in the prefill slot). */
static void x_vision(const struct milp_ctx *c, double *x)
{
    x[0] = c->image_tokens;
    x[1] = c->node->st.running;
    x[2] = c->node->st.ewma_ttft_ms > 0 ? c->node->st.ewma_ttft_ms / 1000 : 0;
    x[3] = c->node->st.queued_tokens / 1000;
}

static void x_down(const struct milp_ctx *c, double out, double *x)
{
    x[0] = c->node->link.rtt_ms / 2 +
           8.0 * OUT_BYTES_PER_TOKEN * out / bps(c->node->link.down_mbps) * 1e3;
    x[1] = 1;
}

/* ==== init, predict, observe ======================================================= */

void milp_init(struct milp *m, const struct fy_node *node)
{
    const struct fy_node_profile *p = &node->prof;
    double pre = p->prefill_tps > 0 ? 1000.0 / p->prefill_tps : 1.0;   /* ms / token */
    double dec = p->decode_tps > 0 ? 1000.0 / p->decode_tps : 30.0;     /* ms / token */
    int slots = p->max_seqs > 0 ? p->max_seqs : 1;
    /* a full batch of `slots` sequences emits slots / (dec (1 + slope (slots − 1)))
     * tokens per ms: the queue drains at that rate */
    double drain = dec * (1 + p->tpot_slope * (slots - 1)) / slots;
    memset(m, 0, sizeof *m);
    const double lam = 0.998; /* forgetting: effective memory ≈ 500 observations */
    rls_init(&m->part[MILP_UP], 2, (double[]){1, 0}, (double[]){0.05, 100}, lam, 4);
    rls_init(&m->part[MILP_QUEUE], 2, (double[]){drain, 0}, (double[]){drain * drain, 1e4},
             lam, 100);
    rls_init(&m->part[MILP_VISION], 4, (double[]){p->vision_ms_per_token, 0, 0, 0},
             (double[]){0.01 + p->vision_ms_per_token * p->vision_ms_per_token, 100, 1e4, 1e4},
             lam, 4);
    rls_init(&m->part[MILP_PREFILL], 5, (double[]){pre, 0, 0, 0, 0},
             (double[]){pre * pre, 100, 100, 1e4, 1e4}, lam, 4);
    rls_init(&m->part[MILP_DECODE], 2, (double[]){dec, dec * p->tpot_slope},
             (double[]){dec * dec, dec * dec * 0.01}, lam, 25);
    rls_init(&m->part[MILP_DOWN], 2, (double[]){1, 0}, (double[]){0.05, 100}, lam, 4);
    double w0[RLS_MAX], p0[RLS_MAX];
    for (int i = 0; i < FY_TASK__N; i++) {
        w0[i] = 48;   /* a short answer: prior mean output length, tokens */
        p0[i] = 2500;
    }
    w0[FY_TASK__N] = 0;
    p0[FY_TASK__N] = 400;
    w0[FY_TASK__N + 1] = 0;
    p0[FY_TASK__N + 1] = 400;
    rls_init(&m->part[MILP_OUTLEN], FY_TASK__N + 2, w0, p0, lam, 900);
    m->cost_ratio = 1;
}

double milp_out_tokens(const struct milp *m, const struct fy_features *f, double *sd)
{
    double x[RLS_MAX];
    milp_outlen_x(f, x);
    double y = rls_predict(&m->part[MILP_OUTLEN], x);
    double hi = f->max_out_tokens > 0 ? f->max_out_tokens : OUT_MAX;
    if (y > hi) y = hi;
    if (y < 1) y = 1;
    if (sd) *sd = sqrt(rls_var(&m->part[MILP_OUTLEN], x));
    return y;
}

static double nonneg(double v) { return v > 0 && isfinite(v) ? v : 0; }

void milp_predict(const struct milp *m, const struct fy_features *f, const struct milp_ctx *c,
                  struct fy_estimate *e)
{
    const struct fy_node *n = c->node;
    double x[RLS_MAX], var = 0, out_sd = 0;
    double out = c->out_tokens > 0 ? c->out_tokens : milp_out_tokens(m, f, &out_sd);
    if (c->out_tokens > 0) out_sd = 0;

    x_up(c, x);
    e->t_up_ms = nonneg(rls_predict(&m->part[MILP_UP], x));
    var += rls_var(&m->part[MILP_UP], x);
    e->t_queue_ms = 0;
    if (x_queue(c, x)) {
        e->t_queue_ms = nonneg(rls_predict(&m->part[MILP_QUEUE], x));
        var += rls_var(&m->part[MILP_QUEUE], x);
    }
    x_vision(c, x);
    e->t_vision_ms = c->image_tokens > 0 ? nonneg(rls_predict(&m->part[MILP_VISION], x)) : 0;
    if (c->image_tokens > 0) var += rls_var(&m->part[MILP_VISION], x);
    x_prefill(c, x);
    e->t_prefill_ms = nonneg(rls_predict(&m->part[MILP_PREFILL], x));
    var += rls_var(&m->part[MILP_PREFILL], x);
    /* the new request joins the running batch */
    double running = n->st.running + 1;
    x[0] = out;
    x[1] = out * (running - 1);
    e->t_decode_ms = nonneg(rls_predict(&m->part[MILP_DECODE], x));
    var += rls_var(&m->part[MILP_DECODE], x);
    double tpot = e->t_decode_ms / out;
    var += out_sd * out_sd * tpot * tpot;
    x_down(c, out, x);
    e->t_down_ms = nonneg(rls_predict(&m->part[MILP_DOWN], x));
    var += rls_var(&m->part[MILP_DOWN], x);

    e->out_tokens = out;
    e->ttft_ms = e->t_up_ms + e->t_queue_ms + e->t_vision_ms + e->t_prefill_ms + tpot;
    e->e2e_ms = e->ttft_ms + e->t_decode_ms - tpot + e->t_down_ms;
    e->e2e_std_ms = sqrt(var);
    const struct fy_node_profile *p = &n->prof;
    int slots = p->max_seqs > 0 ? p->max_seqs : 1;
    double model_cost = (c->in_text_tokens + c->image_tokens) * p->usd_per_mtok_in / 1e6 +
                        out * p->usd_per_mtok_out / 1e6 +
                        p->usd_per_hour * (e->e2e_ms - e->t_up_ms) / 3.6e6 / slots;
    e->cost_usd = model_cost * m->cost_ratio;
}

void milp_observe(struct milp *m, const struct fy_features *f, const struct milp_ctx *c,
                  const struct fy_outcome *o)
{
    if (o->failed || !(o->e2e_ms > 0)) return;
    struct fy_estimate pr;
    struct milp_ctx cc = *c;
    cc.out_tokens = o->out_tokens > 0 ? o->out_tokens : 0;
    milp_predict(m, f, c, &pr);  /* a-priori, with the predicted output length */
    m->abs_err_sum += fabs(pr.e2e_ms - o->e2e_ms);
    m->ape_sum += fabs(pr.e2e_ms - o->e2e_ms) / o->e2e_ms;
    m->nerr++;
    struct fy_estimate pk;       /* with the true output length, to apportion parts */
    milp_predict(m, f, &cc, &pk);

    double up = o->t_up_ms, qu = o->t_queue_ms, vi = o->t_vision_ms, pf = o->t_prefill_ms,
           de = o->t_decode_ms, dn = o->t_down_ms;
    int have_parts = (up + qu + vi + pf + de + dn) > 0;
    if (!have_parts) {
        /* gateway: only TTFT and e2e are measured; split them as the model would */
        double ttft = o->ttft_ms > 0 ? o->ttft_ms : pk.ttft_ms;
        double pre_sum = pk.t_up_ms + pk.t_queue_ms + pk.t_vision_ms + pk.t_prefill_ms;
        double scale = pre_sum > 0 ? ttft / pre_sum : 1;
        up = pk.t_up_ms * scale;
        qu = pk.t_queue_ms * scale;
        vi = pk.t_vision_ms * scale;
        pf = pk.t_prefill_ms * scale;
        double rest = o->e2e_ms - ttft;
        double dsum = pk.t_decode_ms + pk.t_down_ms;
        de = dsum > 0 ? rest * pk.t_decode_ms / dsum : rest;
        dn = rest - de;
    }
    double x[RLS_MAX];
    x_up(c, x);
    rls_update(&m->part[MILP_UP], x, up);
    if (x_queue(c, x)) rls_update(&m->part[MILP_QUEUE], x, qu);
    if (c->image_tokens > 0) {
        x_vision(c, x);
        rls_update(&m->part[MILP_VISION], x, vi);
    }
    x_prefill(c, x);
    rls_update(&m->part[MILP_PREFILL], x, pf);
    if (o->out_tokens > 0) {
        double running = c->node->st.running + 1;
        x[0] = o->out_tokens;
        x[1] = o->out_tokens * (running - 1);
        rls_update(&m->part[MILP_DECODE], x, de);
        milp_outlen_x(f, x);
        rls_update(&m->part[MILP_OUTLEN], x, o->out_tokens);
    }
    x_down(c, o->out_tokens > 0 ? o->out_tokens : pk.out_tokens, x);
    rls_update(&m->part[MILP_DOWN], x, dn);
    if (pk.cost_usd > 0 && o->cost_usd >= 0) {
        double model = pk.cost_usd / m->cost_ratio;
        if (model > 0) {
            double r = o->cost_usd / model;
            if (r > 0 && r < 1e3) m->cost_ratio = 0.9 * m->cost_ratio + 0.1 * r;
        }
    }
}

void milp_merge(struct milp *m, const struct milp *f, const struct milp *b)
{
    for (int k = 0; k < MILP__N; k++) rls_merge(&m->part[k], &f->part[k], &b->part[k]);
    long km = m->nerr - b->nerr, kf = f->nerr - b->nerr;
    if (kf <= 0 || km < 0) return;
    if (f->cost_ratio > 0 && isfinite(f->cost_ratio))
        m->cost_ratio = ((double)km * m->cost_ratio + (double)kf * f->cost_ratio) /
                        (double)(km + kf);
    m->nerr += kf;
    m->abs_err_sum += f->abs_err_sum - b->abs_err_sum;
    m->ape_sum += f->ape_sum - b->ape_sum;
}
