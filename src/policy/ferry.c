/* ferry — our policy. For every admissible node and modality plan (keep; downscale to
 * downscale_px; drop the images; on an edge node, split: a cloud node describes the
 * images) it predicts quality (MGQP) and latency from the node's live queue and link
 * (MILP), then picks
 *     the fastest plan whose quality lower bound  q̂ − z·σ_q  reaches the target,
 * target = the request's min_quality, or, when unset, (best q̂ among the candidates) − δ:
 * "as good as the best node, within δ, with confidence". Ties and the rest:
 *  - latency is the predicted end-to-end latency plus a cost price μ · cost; μ ≥ 0 (ms
 *    per USD) is a dual variable updated after every outcome,
 *    μ ← max(0, μ + η · (1000 / budget) · (cost − budget) / budget),
 *    so that the mean cost per request stays within cost_budget_usd (off when < 0);
 *    prefs.max_cost_usd is a hard limit per request;
 *  - with an SLO, plans predicted to meet it come first;
 *  - a dialogue stays where its KV cache lives unless moving pays: the node of the
 *    previous turn is credited the prefill of the history it has cached (kv=1);
 *  - privacy = edge-only: only edge nodes, and no split (the image would leave);
 *  - the request's tradeoff t in [0, 1] scales delta, kappa and cas_kappa by the odds
 *    (1 − t) / t: 0.5 = as configured, 1 = the best q̂, 0 = the fastest plan;
 *  - exploration: with probability eps / sqrt(1 + n/100) a random admissible node
 *    with its keep plan, so that MGQP/MILP keep learning about every node.
 * truth=1 replaces the predictors by the simulator's oracle (pol_ctx.oracle; tests and
 * the clairvoyant upper bound): with δ = 0 and z = 0 the rule then picks the oracle's
 * choice. truth=p replaces them by the true P(correct) and the true latency
 * (pol_ctx.oracle_p: a perfect predictor, not a clairvoyant) with z = 0 and δ, kappa as
 * set, and no cascades: what ferry's rule reaches when nothing is left to learn. zl > 0 adds zl predicted standard deviations to every latency (risk
 * aversion; off by default: on the shipped experiments it bought latency with
 * completion).
 *
 * Images are the user's: a plan that drops or downscales them is a candidate only once
 * there is evidence of what that action costs: min_obs outcomes of such plans, counting
 * those this policy observed plus the growth of the shared MGQP weight's precision over
 * its prior in units of 1/4 (the most one outcome adds; a model trained on traces
 * that contain such plans). The prior alone (a weak guess of what not seeing costs) made the untrained
 * policy drop large images to save their upload and prefill.
 *
 * Cascades (cascade=1): for every admissible edge node e (its keep plan) and the cloud
 * node c whose keep plan has the best q̂ (ties: faster), the plans (e → c, θ) for θ in
 * CAS_THETAS: answer at e, escalate to c when the answer's confidence < θ. Predicted
 * from what the gateway can see — the confidence of first answers, and their labels
 * when they exist (simulator, feedback):
 *   - the distribution of e's confidences, as a histogram per (edge node, bucket of
 *     q̂_e) (q̂_e carries the task and request features through MGQP), learned online
 *     from observed first answers; prior: confidence = σ(logit q̂ + N(0, 1)), i.e.
 *     calibrated with a spread, worth CAS_PRIOR_N observations;
 *   - a calibration map P(correct | confidence bin) per edge node, learned from the
 *     first answers' labels; prior: calibrated (P = bin centre), CAS_CAL_N pseudo-labels;
 *   - escalated requests are the harder ones: the cloud's q̂_c is scaled on them by a
 *     learned ratio (observed stage-2 correctness / q̂_c), prior CAS_ESC_R0.
 * Then P(accept) = P(conf ≥ θ), Q = Σ_{bins ≥ θ} P(bin)·acc(bin) + P(escalate)·ratio·q̂_c
 * (counting only stages predicted within the SLO when there is one), latency =
 * e2e_e + P(escalate)·e2e_c, cost = cost_e + P(escalate)·cost_c, σ_Q from the counts
 * behind the histogram plus P(escalate)·σ_c. The cascade then competes with the other
 * plans under the same rule (quality bound, latency, kappa, cost price).
 * privacy = edge-only: no cloud node is admissible, hence no cascade.
 *
 * Parameters (defaults): z=1 zl=0 delta=0.03 kappa=0.1 downscale_px=448 plans=all|keep
 * split=1 kv=1 eps=0.05 cost_budget_usd=-1 eta=0.05 truth=0 cascade=1 cas_kappa=0.03
 * min_obs=20. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "policy/learned.h"
#include "policy/policy.h"
#include "pred/pred.h"
#include "util/rng.h"

#define CAS_NB      20      /* confidence bins of width 0.05 */
#define CAS_NQ      5       /* buckets of q̂_e: [0, .2), [.2, .4), ... */
#define CAS_NT      4
static const double CAS_THETAS[CAS_NT] = {0.5, 0.6, 0.7, 0.8};
#define CAS_PRIOR_N 10.0    /* weight of the prior confidence histogram, observations */
#define CAS_CAL_N   5.0     /* pseudo-labels per bin of the calibration prior */
#define CAS_ESC_N   20.0    /* weight of the escalation ratio's prior */
#define CAS_ESC_R0  0.9     /* prior: the cloud answers escalated requests at 0.9·q̂_c */

/* What ferry knows of one edge node's first answers (cascades). */
struct cas_node {
    double hist[CAS_NQ][CAS_NB];   /* confidence counts, prior included */
    double tot[CAS_NQ];
    double cal_n[CAS_NB], cal_y[CAS_NB];  /* labelled first answers per bin (prior incl.) */
    double esc_y, esc_q;           /* escalated: Σ stage-2 correctness, Σ q̂_c (prior incl.) */
};

enum { TRUTH_OFF = 0, TRUTH_OUTCOME = 1, TRUTH_P = 2 }; /* truth=0|1|p */

struct ferry {
    double z, zl, delta, kappa, eps, cost_budget, eta, mu, min_obs, cas_kappa;
    int downscale_px, all_plans, split, kv, truth, cascade;
    long n, n_drop, n_down;                    /* decisions; outcomes of drop/downscale plans */
    double prior_prec_drop, prior_prec_down;   /* the shared MGQP prior's precisions */
    struct pred *own;
    struct pol__sessions sess;
    struct cas_node cas[FY_MAX_NODES];         /* by node index of pol_ctx.nodes */
};

static int fy_kv(void *arg, const char *k, const char *v, char *err, size_t errlen)
{
    struct ferry *s = arg;
    double d;
    if (!strcmp(k, "z")) return pol__num("ferry", k, v, 0, 10, &s->z, err, errlen);
    if (!strcmp(k, "zl")) return pol__num("ferry", k, v, 0, 10, &s->zl, err, errlen);
    if (!strcmp(k, "delta")) return pol__num("ferry", k, v, 0, 1, &s->delta, err, errlen);
    if (!strcmp(k, "kappa")) return pol__num("ferry", k, v, 0, 100, &s->kappa, err, errlen);
    if (!strcmp(k, "eps")) return pol__num("ferry", k, v, 0, 1, &s->eps, err, errlen);
    if (!strcmp(k, "eta")) return pol__num("ferry", k, v, 0, 100, &s->eta, err, errlen);
    if (!strcmp(k, "cost_budget_usd"))
        return pol__num("ferry", k, v, -1, 1e9, &s->cost_budget, err, errlen);
    if (!strcmp(k, "plans")) {
        if (strcmp(v, "all") && strcmp(v, "keep")) {
            snprintf(err, errlen, "ferry: plans=%s: expected all or keep", v);
            return -1;
        }
        s->all_plans = !strcmp(v, "all");
        return 0;
    }
    if (!strcmp(k, "min_obs")) return pol__num("ferry", k, v, 0, 1e9, &s->min_obs, err, errlen);
    if (!strcmp(k, "cas_kappa")) return pol__num("ferry", k, v, 0, 100, &s->cas_kappa, err, errlen);
    if (!strcmp(k, "truth")) {
        s->truth = !strcmp(v, "0") ? TRUTH_OFF : !strcmp(v, "1") ? TRUTH_OUTCOME
                 : !strcmp(v, "p") ? TRUTH_P : -1;
        if (s->truth >= 0) return 0;
        snprintf(err, errlen, "ferry: truth=%s: expected 0, 1 or p", v);
        return -1;
    }
    int *flag = !strcmp(k, "split") ? &s->split : !strcmp(k, "kv") ? &s->kv
              : !strcmp(k, "cascade") ? &s->cascade : NULL;
    if (flag) {
        if (pol__num("ferry", k, v, 0, 1, &d, err, errlen) < 0) return -1;
        *flag = d != 0;
        return 0;
    }
    if (!strcmp(k, "downscale_px")) {
        if (pol__int("ferry", k, v, 28, 1 << 16, &d, err, errlen) < 0) return -1;
        s->downscale_px = (int)d;
        return 0;
    }
    snprintf(err, errlen,
             "ferry: unknown parameter '%s' (z, zl, delta, kappa, downscale_px, plans, split, kv, eps, "
             "cost_budget_usd, eta, truth (0, 1 or p), cascade, min_obs, cas_kappa)", k);
    return -1;
}

/* The prior of the confidence histograms and calibration maps: confidence =
 * σ(logit q + N(0,1)) for q at the bucket's centre (calibrated, spread out), mass per
 * bin by a fixed 64-point quadrature of the normal. */
static void cas_prior(struct cas_node *cn)
{
    memset(cn, 0, sizeof *cn);
    for (int b = 0; b < CAS_NQ; b++) {
        double q = (b + 0.5) / CAS_NQ, l = log(q / (1 - q));
        double w = 0, mass[CAS_NB] = {0};
        for (int k = 0; k < 64; k++) {
            double zz = -3 + 6 * (k + 0.5) / 64, pw = exp(-0.5 * zz * zz);
            double cf = 1 / (1 + exp(-(l + zz)));
            int bin = (int)(cf * CAS_NB);
            if (bin >= CAS_NB) bin = CAS_NB - 1;
            mass[bin] += pw;
            w += pw;
        }
        for (int k = 0; k < CAS_NB; k++) cn->hist[b][k] = CAS_PRIOR_N * mass[k] / w;
        cn->tot[b] = CAS_PRIOR_N;
    }
    for (int k = 0; k < CAS_NB; k++) {
        cn->cal_n[k] = CAS_CAL_N;
        cn->cal_y[k] = CAS_CAL_N * (k + 0.5) / CAS_NB;
    }
    cn->esc_q = CAS_ESC_N;
    cn->esc_y = CAS_ESC_N * CAS_ESC_R0;
}

static int cas_bucket(double q)
{
    int b = (int)(q * CAS_NQ);
    return b < 0 ? 0 : b >= CAS_NQ ? CAS_NQ - 1 : b;
}

static int cas_bin(double conf)
{
    int k = (int)(conf * CAS_NB);
    return k < 0 ? 0 : k >= CAS_NB ? CAS_NB - 1 : k;
}

static int fy_init(void **state, const char *params, char *err, size_t errlen)
{
    struct ferry *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "ferry: out of memory");
        return -ENOMEM;
    }
    s->z = 1.0;
    s->zl = 0;
    s->delta = 0.03;
    s->kappa = 0.1;
    s->eps = 0.05;
    s->cost_budget = -1;
    s->eta = 0.05;
    s->downscale_px = 448;
    s->all_plans = 1;
    s->split = 1;
    s->kv = 1;
    s->cascade = 1;
    s->min_obs = 20;
    s->cas_kappa = 0.03;
    int rc = pol_params_each(params, fy_kv, s, err, errlen);
    if (rc < 0) {
        free(s);
        return rc;
    }
    struct mgqp *m0 = malloc(sizeof *m0);
    if (!m0) {
        free(s);
        snprintf(err, errlen, "ferry: out of memory");
        return -ENOMEM;
    }
    mgqp_init_shared(m0);
    s->prior_prec_drop = m0->prec[MGQP_DROP];
    s->prior_prec_down = m0->prec[MGQP_DOWN];
    free(m0);
    for (int i = 0; i < FY_MAX_NODES; i++) cas_prior(&s->cas[i]);
    *state = s;
    return 0;
}

struct cand {
    struct fy_plan p;
    struct fy_estimate e;
    double lcb;        /* quality lower confidence bound */
    double lat;        /* effective latency (ms, incl. cost price and cache credit) */
    int slo_ok;
    int feasible;      /* reaches the (latency-relaxed) target */
};

/* Least-loaded admissible cloud node (the describer of split plans), or -1. */
static int split_aux(const struct pol_ctx *c)
{
    int best = -1;
    double bl = 0;
    for (int i = 0; i < c->nnodes; i++) {
        if (c->nodes[i].role != FY_ROLE_CLOUD || !pol__allowed(c, i)) continue;
        double l = pol_node_load(&c->nodes[i]);
        if (best < 0 || l < bl) best = i, bl = l;
    }
    return best;
}

/* Is a a better choice than b, given the target? */
static int better(const struct cand *a, const struct cand *b)
{
    int fa = a->feasible, fb = b->feasible;
    if (fa != fb) return fa > fb;
    if (a->slo_ok != b->slo_ok) return a->slo_ok > b->slo_ok;
    /* nothing reaches the target: the best mean (a node with few, unlucky outcomes has
     * a low lower bound but is not locked out by it) */
    if (!fa && fabs(a->e.q_mean - b->e.q_mean) > 1e-12) return a->e.q_mean > b->e.q_mean;
    return a->lat < b->lat;
}

#define MAX_CANDS (FY_MAX_NODES * POL_MAX_PLANS + FY_MAX_NODES * CAS_NT)

/* Does plan p drop or downscale an image, and has the bank seen enough of that? */
static int plan_trusted(const struct ferry *s, const struct pred *bank, const struct fy_features *f,
                        const struct fy_plan *p)
{
    int drop = 0, down = 0;
    for (int j = 0; j < f->nimages && j < FY_MAX_IMAGES; j++) {
        drop |= p->img[j] == FY_IMG_DROP;
        down |= p->img[j] == FY_IMG_DOWNSCALE;
    }
    if (!drop && !down) return 1;
    if (!bank) return 1; /* truth mode */
    /* evidence in observations: those this policy saw, plus what the bank's precision
     * says (a model trained offline); one outcome adds at most 1/4 of precision */
    double ev_drop = s->n_drop + (bank->shared.prec[MGQP_DROP] - s->prior_prec_drop) / 0.25;
    double ev_down = s->n_down + (bank->shared.prec[MGQP_DOWN] - s->prior_prec_down) / 0.25;
    if (drop && ev_drop < s->min_obs) return 0;
    if (down && ev_down < s->min_obs) return 0;
    return 1;
}

static int all_kept(const struct fy_features *f, const struct fy_plan *p)
{
    if (p->aux_node >= 0 || p->escalate_below > 0) return 0;
    for (int j = 0; j < f->nimages && j < FY_MAX_IMAGES; j++)
        if (p->img[j] != FY_IMG_KEEP) return 0;
    return 1;
}

/* Quality of the cascade (edge keep estimate ee, cloud keep estimate ec, θ) from what
 * ferry learned of node e's first answers; slo_e / slo_ec: stage 1 alone / both stages
 * predicted within the SLO. */
static void cas_predict(const struct cas_node *cn, const struct fy_estimate *ee,
                        const struct fy_estimate *ec, double theta, int slo_e, int slo_ec,
                        double *q, double *q_std, double *p_esc)
{
    int b = cas_bucket(ee->q_mean), k0 = cas_bin(theta);
    if (theta * CAS_NB > k0 + 1e-9) k0++; /* bins entirely at or above θ */
    double acc = 0, good = 0;
    for (int k = k0; k < CAS_NB; k++) {
        double pk = cn->hist[b][k] / cn->tot[b];
        acc += pk;
        good += pk * cn->cal_y[k] / cn->cal_n[k];
    }
    double pe = 1 - acc;
    if (pe < 0) pe = 0;
    double ratio = cn->esc_y / cn->esc_q;
    double qc = ec->q_mean * ratio;
    if (qc > 1) qc = 1;
    *q = (slo_e ? good : 0) + (slo_ec ? pe * qc : 0);
    double n = cn->tot[b];
    *q_std = sqrt(*q * (1 - *q) / n) + pe * ec->q_std;
    *p_esc = pe;
}

static int fy_decide(void *state, const struct pol_ctx *c, struct fy_plan *out,
                     struct fy_estimate *est)
{
    struct ferry *s = state;
    if (est) memset(est, 0, sizeof *est);
    struct pred *bank = NULL;
    int (*truth)(void *, const struct fy_plan *, struct fy_estimate *) =
        s->truth == TRUTH_P ? c->oracle_p : c->oracle;
    if (s->truth) {
        if (!truth) return -EINVAL;
    } else if (!(bank = pol__bank(&s->own, c))) {
        return -ENOMEM;
    }
    const struct fy_features *f = c->f;
    const struct fy_prefs *pr = c->prefs;
    struct pol__sess *ss = s->kv ? pol__session(&s->sess, c->session ? c->session : pr->session)
                                 : NULL;
    int aux = (s->split && s->all_plans && f->nimages > 0) ? split_aux(c) : -1;
    struct cand cd[MAX_CANDS];
    int nc = 0;
    double qbest = -1;
    for (int i = 0; i < c->nnodes && i < FY_MAX_NODES; i++) {
        if (!pol__allowed(c, i)) continue;
        struct fy_plan plans[POL_MAX_PLANS];
        int np = s->all_plans
                     ? pol__plans(c, i, s->downscale_px,
                                  c->nodes[i].role == FY_ROLE_EDGE ? aux : -1, plans)
                     : (pol_plan_keep(&plans[0], i), 1);
        for (int k = 0; k < np; k++) {
            struct cand *x = &cd[nc];
            x->p = plans[k];
            if (!s->truth && !plan_trusted(s, bank, f, &x->p)) continue;
            int rc = s->truth ? truth(c->oracle_arg, &x->p, &x->e)
                              : pred_estimate(bank, f, c->nodes, i, &x->p, &x->e);
            if (rc < 0) continue;
            if (pr->max_cost_usd >= 0 && x->e.cost_usd > pr->max_cost_usd) continue;
            /* latency with its risk: mean + zl standard deviations (a node whose
             * latency the predictor cannot pin down, e.g. one with bursty queues, pays
             * for it) */
            double lat = x->e.e2e_ms + (s->truth ? 0 : s->zl) * x->e.e2e_std_ms;
            if (ss && ss->last_node == i && f->history_tokens > 0 && bank) {
                /* cached history: its prefill is not redone on the node that holds it */
                int in = f->text_tokens > 0 ? f->text_tokens : 1;
                double saved = x->e.t_prefill_ms * (double)f->history_tokens / in;
                if (saved > x->e.t_prefill_ms) saved = x->e.t_prefill_ms;
                lat -= saved;
            }
            x->lat = lat + s->mu * x->e.cost_usd;
            double zs = (s->truth ? 0 : s->z) * x->e.q_std;
            x->lcb = x->e.q_mean - zs;
            x->slo_ok = !(pr->slo_ms > 0) || lat <= pr->slo_ms;
            if (x->e.q_mean > qbest) qbest = x->e.q_mean;
            nc++;
        }
    }
    /* cascades: each edge node's keep plan, escalated to the best cloud keep plan */
    int ncore = nc;
    if (s->cascade && s->truth != TRUTH_P) { /* truth=p knows no cascade's P(correct) */
        int cl = -1;
        for (int k = 0; k < ncore; k++)
            if (c->nodes[cd[k].p.node].role == FY_ROLE_CLOUD && all_kept(f, &cd[k].p) &&
                (cl < 0 || cd[k].e.q_mean > cd[cl].e.q_mean + 1e-12 ||
                 (fabs(cd[k].e.q_mean - cd[cl].e.q_mean) <= 1e-12 && cd[k].lat < cd[cl].lat)))
                cl = k;
        for (int k = 0; cl >= 0 && k < ncore; k++) {
            if (c->nodes[cd[k].p.node].role != FY_ROLE_EDGE || !all_kept(f, &cd[k].p)) continue;
            const struct fy_estimate *ee = &cd[k].e, *ec = &cd[cl].e;
            double le = cd[k].lat, lc = cd[cl].lat;  /* with cost price and cache credit */
            int slo_e = !(pr->slo_ms > 0) || ee->e2e_ms <= pr->slo_ms;
            int slo_ec = !(pr->slo_ms > 0) || ee->e2e_ms + ec->e2e_ms <= pr->slo_ms;
            for (int t = 0; t < CAS_NT && nc < MAX_CANDS; t++) {
                struct cand *x = &cd[nc];
                x->p = cd[k].p;
                x->p.escalate_node = cd[cl].p.node;
                x->p.escalate_below = CAS_THETAS[t];
                double q, qs, pe = 0;
                if (s->truth) {
                    if (truth(c->oracle_arg, &x->p, &x->e) < 0) continue;
                    x->lat = x->e.e2e_ms;
                    q = x->e.q_mean;
                    qs = 0;
                } else {
                    cas_predict(&s->cas[cd[k].p.node], ee, ec, CAS_THETAS[t], slo_e, slo_ec, &q,
                                &qs, &pe);
                    x->e = *ee;
                    x->e.q_mean = q;
                    x->e.q_std = qs;
                    x->e.e2e_ms = ee->e2e_ms + pe * ec->e2e_ms;
                    x->e.ttft_ms = ee->e2e_ms + pe * ec->ttft_ms; /* the gateway buffers stage 1 */
                    x->e.e2e_std_ms = ee->e2e_std_ms + pe * ec->e2e_std_ms;
                    x->e.cost_usd = ee->cost_usd + pe * ec->cost_usd;
                    x->lat = le + pe * lc;
                }
                if (pr->max_cost_usd >= 0 && x->e.cost_usd > pr->max_cost_usd) continue;
                x->lcb = q - (s->truth ? 0 : s->z) * qs;
                x->slo_ok = slo_e;
                nc++;
            }
        }
    }
    if (nc == 0) return -1;
    /* the request's tradeoff t (0 = fastest answer, 1 = best quality) scales the price of
     * quality in latency by the odds (1 − t) / t, neutral at t = 0.5 (the configured
     * delta, kappa, cas_kappa), as QLMIO's w·Q − (1 − w)·L/L_ref weighs the two: t = 1
     * takes the best q̂ (the fastest of equals), t = 0 the fastest plan (a min_quality
     * still holds) */
    double delta = s->delta, kappa = s->kappa, cas_kappa = s->cas_kappa;
    int fastest = 0;
    if (pr->tradeoff >= 0 && pr->tradeoff <= 1) {
        double t = pr->tradeoff, odds = t > 0 ? (1 - t) / t : 0;
        fastest = t == 0;
        delta = fmin(1, delta * odds);
        kappa *= odds;
        cas_kappa *= odds;
    }
    if (s->truth == TRUTH_OUTCOME) delta = kappa = cas_kappa = 0, fastest = 0;
    double target = pr->min_quality >= 0 ? pr->min_quality : fastest ? -INFINITY : qbest - delta;
    /* the reference: the best mean (ties: the fastest); a plan faster than it by Δ s
     * may be kappa·Δ below the target (a queue of a minute is not worth a point) */
    int ref = 0;
    for (int k = 1; k < ncore; k++)
        if (cd[k].e.q_mean > cd[ref].e.q_mean + 1e-12 ||
            (fabs(cd[k].e.q_mean - cd[ref].e.q_mean) <= 1e-12 && cd[k].lat < cd[ref].lat))
            ref = k;
    /* a cascade must reach the reference's upper bound (less δ): its quality is learned
     * from many first answers and is precise, the reference's (a node the cascades keep
     * from being labelled) may be uncertain and low; only when the reference is known
     * to be no better may the cascade replace it (or with an explicit min_quality) */
    double zz = s->truth ? 0 : s->z;
    double cas_target = pr->min_quality >= 0 || fastest
                            ? target
                            : cd[ref].e.q_mean + zz * cd[ref].e.q_std - delta;
    for (int k = 0; k < nc; k++) {
        double gain_s = (cd[ref].lat - cd[k].lat) / 1000;
        double q = k == ref ? cd[k].e.q_mean : cd[k].lcb;
        if (k >= ncore) { /* a cascade is there to keep quality: its own, smaller slack */
            cd[k].feasible = q >= cas_target - cas_kappa * (gain_s > 0 ? gain_s : 0) - 1e-12;
            continue;
        }
        cd[k].feasible = q >= target - kappa * (gain_s > 0 ? gain_s : 0) - 1e-12;
    }
    int b = 0;
    for (int k = 1; k < nc; k++)
        if (better(&cd[k], &cd[b])) b = k;
    /* exploration over nodes (keep plans), never in truth mode */
    if (!s->truth && c->rng && s->eps > 0 &&
        rng_uniform(c->rng) < s->eps / sqrt(1.0 + s->n / 100.0)) {
        int keep_idx[FY_MAX_NODES], nk = 0;
        for (int k = 0; k < nc; k++)
            if (cd[k].p.downscale_px == 0 && all_kept(f, &cd[k].p) && nk < FY_MAX_NODES)
                keep_idx[nk++] = k;
        if (nk > 0) b = keep_idx[rng_below(c->rng, (uint64_t)nk)];
    }
    *out = cd[b].p;
    if (est) *est = cd[b].e;
    s->n++;
    if (ss) ss->last_node = out->node;
    return 0;
}

static void fy_observe(void *state, const struct pol_ctx *c, const struct fy_outcome *o)
{
    struct ferry *s = state;
    if (s->cost_budget > 0 && o->cost_usd >= 0) {
        /* μ in ms per USD: scaled so that one budget's worth of overspend moves it by
         * eta seconds-per-budget */
        s->mu += s->eta * 1000.0 / s->cost_budget * (o->cost_usd - s->cost_budget) /
                 s->cost_budget;
        if (s->mu < 0) s->mu = 0;
    }
    for (int j = 0; j < c->f->nimages && j < FY_MAX_IMAGES; j++)
        if (o->plan.img[j] == FY_IMG_DROP) { s->n_drop++; break; }
    for (int j = 0; j < c->f->nimages && j < FY_MAX_IMAGES; j++)
        if (o->plan.img[j] == FY_IMG_DOWNSCALE) { s->n_down++; break; }
    if (o->escalated && s->kv && o->plan.escalate_node >= 0) {
        /* the dialogue's last answer came from the escalation node */
        struct pol__sess *ss = pol__session(&s->sess, c->session ? c->session : c->prefs->session);
        if (ss && ss->last_node == o->plan.node) ss->last_node = o->plan.escalate_node;
    }
    /* cascades: what the edge's answers with every image kept look like (any such
     * answer that carries a confidence: a cascade's first stage, or a plain answer when
     * the caller reports one) */
    int e = o->plan.node, cas = o->plan.escalate_below > 0;
    if (s->cascade && o->confidence >= 0 && o->confidence <= 1 && e >= 0 && e < c->nnodes &&
        e < FY_MAX_NODES && c->nodes[e].role == FY_ROLE_EDGE &&
        (cas || all_kept(c->f, &o->plan))) {
        struct pred *bank = pol__bank(&s->own, c);
        struct fy_plan pe;
        pol_plan_keep(&pe, e);
        struct fy_estimate ee;
        if (bank && pred_estimate(bank, c->f, c->nodes, e, &pe, &ee) == 0) {
            struct cas_node *cn = &s->cas[e];
            int b = cas_bucket(ee.q_mean), k = cas_bin(o->confidence);
            cn->hist[b][k] += 1;
            cn->tot[b] += 1;
            /* the label of this answer: the first stage's of a cascade, else the answer's */
            double y = cas ? o->first_quality : o->failed ? -1 : o->quality;
            if (y >= 0 && y <= 1) {
                cn->cal_n[k] += 1;
                cn->cal_y[k] += y;
            }
            int cl = o->plan.escalate_node;
            if (o->escalated && !o->failed && o->quality >= 0 && cl >= 0 && cl < c->nnodes) {
                struct fy_plan pc;
                struct fy_estimate ec;
                pol_plan_keep(&pc, cl);
                if (pred_estimate(bank, c->f, c->nodes, cl, &pc, &ec) == 0) {
                    cn->esc_y += o->quality;
                    cn->esc_q += ec.q_mean;
                }
            }
        }
    }
    if (o->plan.escalate_below > 0) {
        /* a private bank learns each stage as a plain run; the outcome of an escalated
         * cascade mixes two nodes, so only a first answer that stood is learned here
         * (a shared bank is trained by the caller, stage by stage) */
        if (!o->escalated) {
            struct fy_outcome o1 = *o;
            o1.plan.escalate_node = -1;
            o1.plan.escalate_below = 0;
            pol__bank_observe(s->own, c, &o1);
        }
        return;
    }
    pol__bank_observe(s->own, c, o);
}

static void fy_free(void *state)
{
    struct ferry *s = state;
    if (!s) return;
    pred_free(s->own);
    free(s);
}

const struct fy_policy pol_ferry = {
    .name = "ferry",
    .summary = "ours: fastest node x modality plan whose quality LCB meets the target; live queues, cost dual, KV affinity, privacy",
    .init = fy_init,
    .decide = fy_decide,
    .observe = fy_observe,
    .free = fy_free,
};
