/* engine — discrete-event simulation of one (setup, policy, seed) (engine.h). */
#include "sim/engine.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feat/tokens.h"
#include "node/link.h"
#include "node/service.h"
#include "policy/policy.h"
#include "pred/pred.h"
#include "pred/trace.h"
#include "sim/quality.h"
#include "util/clock.h"
#include "util/grow.h"
#include "util/heap.h"
#include "util/rng.h"

/* Split plans: the aux node is asked (SIM_DESC_PROMPT prompt tokens plus the images) to
 * describe the images in SIM_DESC_TOKENS output tokens per image; the description is
 * then part of the answering node's prompt. Same figures as the predictor's. */
#define SIM_DESC_PROMPT PRED_DESC_PROMPT
#define SIM_DESC_TOKENS PRED_DESC_TOKENS
#define SIM_BODY_BYTES 512.0       /* JSON around the text of a request */
#define SIM_BYTES_PER_TOKEN 4.0    /* UTF-8 bytes per text token */
#define SIM_B64 (4.0 / 3.0)        /* images travel base64-encoded in data: URLs */

enum { EV_ARRIVAL = 1, EV_UPLOADED, EV_NODE, EV_TURN, EV_USER, EV_ESCALATE };
enum { PH_AUX = 0, PH_MAIN = 1 };

#define EV_VAL(type, a, b) (((uint64_t)(type) << 56) | ((uint64_t)(a) << 24) | (uint64_t)(b))
#define EV_TYPE(v) ((int)((v) >> 56))
#define EV_A(v) ((uint32_t)(((v) >> 24) & 0xffffffffu))
#define EV_B(v) ((uint32_t)((v) & 0xffffffu))

/* Work of one phase on one node. */
struct job {
    int node;
    int prompt, image_tokens, out;
    double bytes;
    int views;                  /* images uploaded (for `views` links) */
};

struct sreq {
    int active;
    uint64_t serial;
    int dlg;                    /* dialogue slot or -1 */
    int user;                   /* closed-population user or -1 */
    struct sim_latent lat;
    struct fy_features f;
    struct fy_prefs prefs;
    struct fy_plan plan;
    struct fy_estimate est;     /* the policy's own estimate */
    struct fy_node_state st0;   /* chosen node's state at dispatch */
    struct fy_link link0;
    struct job aux, main;
    int phase;
    double p_correct;
    int correct;
    double t_arrive, t_main_dispatch, t_up_end, t_start, t_first, t_done;
    double aux_busy_ms;         /* split: time the description spent in the aux node */
    double t_aux_start;
    /* cascade plans: stage 0 = the first (or only) answer, 1 = the escalated answer on
     * plan.escalate_node, dispatched at t_stage; s1 is the first stage's outcome (its
     * own times and cost, confidence, escalated = 1) with what tracing needs of it */
    int stage;
    double t_stage;             /* start of the current stage (t_arrive for stage 0) */
    struct fy_outcome s1;
    struct fy_node_state s1_st0;
    struct fy_link s1_link0;
    double s1_bytes;
    int s1_image_tokens, s1_node;
    struct trace_outcome *cf;   /* counterfactual outcomes (nodes), when tracing them */
    int ncf;
};

struct sdlg {
    int active;
    struct sim_dialogue d;
    int prev_node;
    int user;
    char session[32];
    struct rng rng;             /* the dialogue's own stream: turns, content, think times */
    double sum_e2e_ms, sum_cost_usd;
    int turns_correct, turns_failed;
};

struct eng {
    const struct sim_setup *s;
    const struct sim_run_opts *o;
    struct sim_result *res;
    struct heap ev;
    struct rng base;            /* the run's seed; per-entity streams split from it */
    struct rng rng_arr, rng_wl, rng_pol;
    struct rng *user_rng;       /* closed population: one stream per user */
    int n;
    struct node_svc *svc[FY_MAX_NODES];
    struct link *lnk[FY_MAX_NODES];
    uint32_t gen[FY_MAX_NODES];
    double sched[FY_MAX_NODES];
    struct fy_node view[FY_MAX_NODES];
    struct sreq *req;
    int nreq, capreq, free_req;
    int *req_next;              /* free list links */
    struct sdlg *dlg;
    int ndlg;
    size_t capdlg;
    long generated;             /* requests drawn so far (serial numbers) */
    long planned;               /* requests started or planned (dialogue turns) */
    long dialogues;
    int mmpp_burst;
    double mmpp_switch_ms;
    const struct fy_policy *pol;
    void *pstate;
    struct pred *pred;
    int cur;                    /* request being decided (oracle) */
    double now;
    struct trace_record *tr;
    int failed_alloc;
};

/* ==== small helpers ================================================================ */

static int dialogue_mode(const struct eng *e) { return e->s->wl.turns_max > 1; }

static long request_limit(const struct eng *e)
{
    return e->s->exp.requests > 0 ? e->s->exp.requests : -1;
}

static int may_generate(const struct eng *e, double t)
{
    long lim = request_limit(e);
    if (lim >= 0 && e->planned >= lim) return 0;
    if (e->s->exp.duration_s > 0 && t > e->s->exp.duration_s * 1000.0) return 0;
    return 1;
}

/* Jitter of request `serial` on node n: a pure function of (seed, serial, n), so the
 * oracle's view of an upload and the real upload agree. */
static double jitter_ms(const struct eng *e, uint64_t serial, int n)
{
    double sd = e->s->links[n].base.jitter_ms;
    if (!(sd > 0)) return 0;
    struct rng r;
    rng_seed(&r, e->o->seed * 0x9E3779B97F4A7C15ull ^ (serial << 6) ^ (uint64_t)n ^ 0xA5A5u);
    return rng_normal(&r, 0, sd);
}

/* The standard normal draw of request `serial`'s answer confidence (sim/quality.h): a
 * pure function of (seed, serial) like the jitter, so cascades shift no other draw and
 * the oracle's view of a cascade matches its execution. */
static double confidence_z(const struct eng *e, uint64_t serial)
{
    struct rng r;
    rng_seed(&r, e->o->seed * 0xD1B54A32D192ED03ull ^ (serial << 8) ^ 0xC0F1DE7Cu);
    return rng_normal(&r, 0, 1);
}

static int is_cascade(const struct fy_plan *p) { return p->escalate_below > 0; }

static int image_tokens_for(const struct fy_image_features *im, enum fy_vt_family fam, int action,
                            int px, double *bytes)
{
    if ((int)fam < 0 || fam >= FY_VT__N) fam = FY_VT_GENERIC;
    int full = im->tokens[fam] > 0 ? im->tokens[fam] : feat_visual_tokens(fam, im->width, im->height);
    if (full < 0) full = 0;
    if (action == FY_IMG_DROP || action == FY_IMG_SPLIT) {
        *bytes = 0;
        return 0;
    }
    int side = im->width > im->height ? im->width : im->height;
    if (action == FY_IMG_DOWNSCALE && px > 0 && side > px) {
        double s = (double)px / side;
        int w = (int)(im->width * s + 0.5), h = (int)(im->height * s + 0.5);
        if (w < 1) w = 1;
        if (h < 1) h = 1;
        *bytes = (double)im->bytes * s * s; /* a re-encoded image shrinks with its area */
        int t = feat_visual_tokens(fam, w, h);
        return t < 0 ? full : t;
    }
    *bytes = (double)im->bytes;
    return full;
}

/* Fills the aux and main jobs of plan p for request r; returns the number of split
 * images. */
static int plan_jobs(const struct eng *e, const struct sreq *r, const struct fy_plan *p,
                     struct job *aux, struct job *main)
{
    const struct fy_features *f = &r->f;
    int mn = p->node;
    memset(aux, 0, sizeof *aux);
    memset(main, 0, sizeof *main);
    main->node = mn;
    aux->node = p->aux_node;
    int nsplit = 0;
    int prompt = f->text_tokens;
    /* KV/prompt cache: the next turn of a dialogue on the node that holds its history */
    if (r->dlg >= 0 && e->dlg[r->dlg].prev_node == mn && f->history_tokens > 0)
        prompt -= (int)lround(e->s->cache_saving[mn] * f->history_tokens);
    main->bytes = SIM_BODY_BYTES + SIM_BYTES_PER_TOKEN * f->text_tokens;
    aux->bytes = SIM_BODY_BYTES + SIM_BYTES_PER_TOKEN * SIM_DESC_PROMPT;
    for (int i = 0; i < f->nimages && i < FY_MAX_IMAGES; i++) {
        double b;
        if (p->img[i] == FY_IMG_SPLIT && p->aux_node >= 0) {
            nsplit++;
            aux->image_tokens += image_tokens_for(&f->img[i], e->view[p->aux_node].prof.vt_family,
                                                  FY_IMG_KEEP, 0, &b);
            aux->bytes += b * SIM_B64;
            aux->views++;
            continue;
        }
        int act = p->img[i] == FY_IMG_SPLIT ? FY_IMG_DROP : p->img[i];
        main->image_tokens += image_tokens_for(&f->img[i], e->view[mn].prof.vt_family, act,
                                               p->downscale_px, &b);
        main->bytes += b * SIM_B64;
        if (act == FY_IMG_KEEP || act == FY_IMG_DOWNSCALE) main->views++;
    }
    main->prompt = prompt + nsplit * SIM_DESC_TOKENS;
    main->out = r->lat.out_tokens;
    if (nsplit) {
        aux->prompt = SIM_DESC_PROMPT;
        aux->out = nsplit * SIM_DESC_TOKENS;
        main->bytes += SIM_BYTES_PER_TOKEN * nsplit * SIM_DESC_TOKENS;
    }
    return nsplit;
}

static int fits_context(const struct eng *e, const struct job *j)
{
    int lim = e->view[j->node].prof.context_limit;
    return lim <= 0 || (long)j->prompt + j->image_tokens + j->out <= lim;
}

static double true_p(const struct eng *e, const struct sreq *r, const struct fy_plan *p)
{
    const struct sim_class *c = &e->s->wl.cls[r->lat.cls];
    double cap = node_model_cap(e->s->models[p->node], c->skill);
    double cap_aux = p->aux_node >= 0 ? node_model_cap(e->s->models[p->aux_node], c->skill) : cap;
    return sim_quality_p(&e->s->exp.q, c, &r->lat, &r->f, p, cap, cap_aux);
}

static double job_cost(const struct eng *e, const struct job *j, double busy_ms)
{
    const struct fy_node_profile *pf = &e->view[j->node].prof;
    int slots = pf->max_seqs > 0 ? pf->max_seqs : 1;
    return (j->prompt + j->image_tokens) * pf->usd_per_mtok_in / 1e6 +
           j->out * pf->usd_per_mtok_out / 1e6 + pf->usd_per_hour * busy_ms / 3.6e6 / slots;
}

static int plan_valid(const struct eng *e, const struct sreq *r, const struct fy_plan *p)
{
    if (p->node < 0 || p->node >= e->n) return 0;
    if (p->aux_node >= e->n || p->aux_node < -1) return 0;
    if (is_cascade(p) && (p->escalate_node < 0 || p->escalate_node >= e->n ||
                          p->escalate_node == p->node || !(p->escalate_below <= 1)))
        return 0;
    for (int i = 0; i < r->f.nimages && i < FY_MAX_IMAGES; i++) {
        if (p->img[i] > FY_IMG_SPLIT) return 0;
        if (p->img[i] == FY_IMG_SPLIT && p->aux_node < 0) return 0;
        if (p->img[i] == FY_IMG_DOWNSCALE && p->downscale_px <= 0) return 0;
    }
    return 1;
}

/* ==== node wake-ups ================================================================ */

static void node_cb(void *arg, uint64_t id, int ev, double t);

static void reschedule(struct eng *e, int n)
{
    double nt = node_svc_next_time(e->svc[n]);
    if (isinf(nt) || nt == e->sched[n]) return;
    e->sched[n] = nt;
    e->gen[n] = (e->gen[n] + 1) & 0xffffffu;
    if (heap_push(&e->ev, nt, EV_VAL(EV_NODE, n, e->gen[n])) < 0) e->failed_alloc = 1;
}

struct cb_ctx { struct eng *e; int node; };

static void advance_node(struct eng *e, int n, double t)
{
    struct cb_ctx c = {e, n};
    node_svc_advance(e->svc[n], t, node_cb, &c);
    e->sched[n] = INFINITY;
    reschedule(e, n);
}

static void refresh_views(struct eng *e, double t)
{
    for (int i = 0; i < e->n; i++) {
        advance_node(e, i, t);
        node_svc_state(e->svc[i], &e->view[i].st);
        link_state(e->lnk[i], t, &e->view[i].link);
    }
}

/* ==== the truth of a plan (oracle, counterfactual trace) =========================== */

struct probe { uint64_t id; double start, first, done; };

static void probe_cb(void *arg, uint64_t id, int ev, double t)
{
    struct probe *p = arg;
    if (id != p->id) return;
    if (ev == NODE_EV_START) p->start = t;
    else if (ev == NODE_EV_FIRST_TOKEN) p->first = t;
    else if (ev == NODE_EV_DONE) p->done = t;
}

/* Runs job j on a copy of its node, arriving at t_arr; fills the phase times. */
static int probe_job(struct eng *e, const struct job *j, double t_arr, struct probe *pr)
{
    struct node_svc *c = node_svc_clone(e->svc[j->node]);
    if (!c) return -ENOMEM;
    pr->id = UINT64_MAX;
    pr->start = pr->first = pr->done = -1;
    int rc = node_svc_advance(c, t_arr, NULL, NULL);
    if (rc >= 0) rc = node_svc_submit(c, t_arr, pr->id, j->prompt, j->image_tokens, j->out);
    while (rc >= 0 && pr->done < 0) {
        double nt = node_svc_next_time(c);
        if (isinf(nt)) { rc = -EINVAL; break; }
        rc = node_svc_advance(c, nt, probe_cb, pr);
    }
    node_svc_free(c);
    return rc < 0 ? rc : 0;
}

/* Outcome of plan p (one stage: its cascade fields ignored) for request r if
 * dispatched at time t. */
static int stage_truth(struct eng *e, const struct sreq *r, const struct fy_plan *p, double t,
                       struct fy_outcome *o, double *pc)
{
    memset(o, 0, sizeof *o);
    o->plan = *p;
    o->confidence = -1;
    o->first_quality = -1;
    struct job aux, main;
    int nsplit = plan_jobs(e, r, p, &aux, &main);
    if (!fits_context(e, &main) || (nsplit && !fits_context(e, &aux))) {
        o->failed = 1;
        o->quality = 0;
        *pc = 0;
        return 0;
    }
    double t_main = t, cost = 0;
    if (nsplit) {
        struct probe pa;
        double up = link_upload_end(e->lnk[aux.node], t, aux.bytes, aux.views,
                                    jitter_ms(e, r->serial, aux.node));
        if (probe_job(e, &aux, up, &pa) < 0) return -1;
        t_main = pa.done + link_down_ms(e->lnk[aux.node]);
        cost += job_cost(e, &aux, pa.done - pa.start);
    }
    double up = link_upload_end(e->lnk[main.node], t_main, main.bytes, main.views,
                                jitter_ms(e, r->serial, main.node));
    struct probe pm;
    if (probe_job(e, &main, up, &pm) < 0) return -1;
    double down = link_down_ms(e->lnk[main.node]);
    const struct fy_node_profile *pf = &e->view[main.node].prof;
    double vis_w = main.image_tokens * pf->vision_ms_per_token;
    double pre_w = 1000.0 * (main.prompt + main.image_tokens) / pf->prefill_tps;
    double pre = pm.first - pm.start;
    o->t_up_ms = up - t;
    o->t_queue_ms = pm.start - up;
    o->t_vision_ms = vis_w + pre_w > 0 ? pre * vis_w / (vis_w + pre_w) : 0;
    o->t_prefill_ms = pre - o->t_vision_ms;
    o->t_decode_ms = pm.done - pm.first;
    o->t_down_ms = down;
    o->ttft_ms = pm.first + down - t;
    o->e2e_ms = pm.done + down - t;
    o->in_tokens = main.prompt + main.image_tokens;
    o->out_tokens = main.out;
    o->cost_usd = cost + job_cost(e, &main, pm.done - pm.start);
    *pc = true_p(e, r, p);
    o->quality = r->lat.u < *pc ? 1 : 0;
    return 0;
}

/* Outcome of plan p for request r if dispatched at time t; for a cascade plan the
 * whole cascade (stage 2 probed on the escalation node as it will be when stage 1
 * ends, ignoring arrivals in between), *pc then the P(correct) of the final answer. */
static int plan_truth(struct eng *e, const struct sreq *r, const struct fy_plan *p, double t,
                      struct fy_outcome *o, double *pc)
{
    if (stage_truth(e, r, p, t, o, pc) < 0) return -1;
    if (!is_cascade(p)) return 0;
    o->plan = *p;
    o->first_quality = o->failed ? -1 : o->quality;
    o->confidence = o->failed ? -1 : sim_quality_confidence(&e->s->exp.q, *pc, o->quality > 0.5,
                                                            confidence_z(e, r->serial));
    if (!o->failed && o->confidence >= p->escalate_below) return 0;
    struct fy_outcome o2;
    struct fy_plan p2;
    pol_plan_keep(&p2, p->escalate_node);
    double t2 = t + (o->failed ? 0 : o->e2e_ms);
    if (stage_truth(e, r, &p2, t2, &o2, pc) < 0) return -1;
    double pre = t2 - t;
    o->quality = o2.quality;
    o->failed = o2.failed;
    o->escalated = 1;
    o->t_up_ms += o2.t_up_ms;
    o->t_queue_ms += o2.t_queue_ms;
    o->t_vision_ms += o2.t_vision_ms;
    o->t_prefill_ms += o2.t_prefill_ms;
    o->t_decode_ms += o2.t_decode_ms;
    o->t_down_ms += o2.t_down_ms;
    o->ttft_ms = pre + o2.ttft_ms;
    o->e2e_ms = pre + o2.e2e_ms;
    o->in_tokens += o2.in_tokens;
    o->out_tokens = o2.out_tokens;
    o->cost_usd += o2.cost_usd;
    return 0;
}

/* The truth of plan p for the request being decided: q_mean the outcome (know_p = 0)
 * or the true P(correct) (know_p = 1; not for cascades, whose outcome depends on the
 * first answer's realised confidence). */
static int truth_of(struct eng *e, const struct fy_plan *p, int know_p, struct fy_estimate *truth)
{
    const struct sreq *r = &e->req[e->cur];
    memset(truth, 0, sizeof *truth);
    if (!plan_valid(e, r, p) || (know_p && is_cascade(p))) return -EINVAL;
    struct fy_outcome o;
    double pc;
    if (plan_truth(e, r, p, e->now, &o, &pc) < 0) return -1;
    if (o.failed) return -ERANGE;
    truth->q_mean = know_p ? pc : o.quality;
    truth->t_up_ms = o.t_up_ms;
    truth->t_queue_ms = o.t_queue_ms;
    truth->t_vision_ms = o.t_vision_ms;
    truth->t_prefill_ms = o.t_prefill_ms;
    truth->t_decode_ms = o.t_decode_ms;
    truth->t_down_ms = o.t_down_ms;
    truth->ttft_ms = o.ttft_ms;
    truth->e2e_ms = o.e2e_ms;
    truth->out_tokens = o.out_tokens;
    truth->cost_usd = o.cost_usd;
    return 0;
}

static int oracle_cb(void *arg, const struct fy_plan *p, struct fy_estimate *truth)
{
    return truth_of(arg, p, 0, truth);
}

static int oracle_p_cb(void *arg, const struct fy_plan *p, struct fy_estimate *truth)
{
    return truth_of(arg, p, 1, truth);
}

/* ==== requests ===================================================================== */

static int req_alloc(struct eng *e)
{
    if (e->free_req >= 0) {
        int i = e->free_req;
        e->free_req = e->req_next[i];
        return i;
    }
    if (e->nreq == e->capreq) {
        int ncap = e->capreq ? e->capreq * 2 : 256;
        struct sreq *n = realloc(e->req, (size_t)ncap * sizeof *n);
        if (!n) return -1;
        e->req = n;
        int *nx = realloc(e->req_next, (size_t)ncap * sizeof *nx);
        if (!nx) return -1;
        e->req_next = nx;
        e->capreq = ncap;
    }
    return e->nreq++;
}

static void req_release(struct eng *e, int i)
{
    free(e->req[i].cf);
    e->req[i].cf = NULL;
    e->req[i].active = 0;
    e->req_next[i] = e->free_req;
    e->free_req = i;
}

static void pol_ctx_fill(struct eng *e, const struct sreq *r, double t, struct pol_ctx *c)
{
    memset(c, 0, sizeof *c);
    c->f = &r->f;
    c->prefs = &r->prefs;
    c->nodes = e->view;
    c->nnodes = e->n;
    c->pred = e->pred;
    c->now_ms = t;
    c->rng = &e->rng_pol;
    c->session = r->prefs.session;
    c->oracle = oracle_cb;
    c->oracle_p = oracle_p_cb;
    c->oracle_arg = e;
}

static void schedule_followup(struct eng *e, const struct sreq *r, double t);

/* o: the request's outcome; for an escalated cascade, the second stage's alone (the
 * first is r->s1). */
static void trace_request(struct eng *e, const struct sreq *r, const struct fy_outcome *o)
{
    struct trace_record *tr = e->tr;
    memset(tr, 0, sizeof *tr);
    snprintf(tr->id, sizeof tr->id, "%sr%llu", e->o->trace_tag ? e->o->trace_tag : "",
             (unsigned long long)r->serial);
    snprintf(tr->dataset, sizeof tr->dataset, "%s", e->s->wl.name);
    snprintf(tr->session, sizeof tr->session, "%s", r->prefs.session);
    tr->t_ms = r->t_arrive;
    tr->f = r->f;
    if (r->plan.node < 0 || r->plan.node >= e->n) { /* no valid decision: no outcome */
        trace_write(e->o->trace, tr);
        return;
    }
    struct trace_outcome *to;
    if (r->stage == 1) { /* escalated cascade: the first answer, then the second */
        to = &tr->out[tr->nout++];
        const struct fy_node *n1 = &e->view[r->s1_node];
        snprintf(to->node, sizeof to->node, "%s", n1->name);
        to->role = n1->role;
        snprintf(to->model, sizeof to->model, "%s", n1->prof.model);
        to->link = r->s1_link0;
        to->state = r->s1_st0;
        to->bytes_up = r->s1_bytes;
        to->image_tokens = r->s1_image_tokens;
        to->chosen = 1;
        to->stage = 1;
        to->o = r->s1;
    }
    int n = r->stage == 1 ? r->main.node : r->plan.node;
    to = &tr->out[tr->nout++];
    const struct fy_node *nd = &e->view[n];
    snprintf(to->node, sizeof to->node, "%s", nd->name);
    to->role = nd->role;
    snprintf(to->model, sizeof to->model, "%s", nd->prof.model);
    to->link = r->link0;
    to->state = r->st0;
    to->bytes_up = r->main.bytes + (r->aux.out ? r->aux.bytes : 0);
    to->image_tokens = r->main.image_tokens;
    to->chosen = 1;
    to->o = *o;
    if (is_cascade(&r->plan)) to->stage = r->stage + 1;
    for (int i = 0; i < r->ncf && tr->nout < FY_MAX_NODES; i++) tr->out[tr->nout++] = r->cf[i];
    trace_write(e->o->trace, tr);
}

/* The outcome of request r's current stage alone (times from r->t_stage). */
static void stage_outcome(struct eng *e, const struct sreq *r, int failed, struct fy_outcome *o)
{
    memset(o, 0, sizeof *o);
    o->plan = r->plan;
    o->confidence = -1;
    o->first_quality = -1;
    if (failed) {
        o->failed = 1;
        o->quality = 0;
        return;
    }
    const struct fy_node_profile *pf = &e->view[r->main.node].prof;
    double down = link_down_ms(e->lnk[r->main.node]);
    double vis_w = r->main.image_tokens * pf->vision_ms_per_token;
    double pre_w = 1000.0 * (r->main.prompt + r->main.image_tokens) / pf->prefill_tps;
    double pre = r->t_first - r->t_start;
    o->quality = r->correct;
    o->t_up_ms = r->t_up_end - r->t_stage;
    o->t_queue_ms = r->t_start - r->t_up_end;
    o->t_vision_ms = vis_w + pre_w > 0 ? pre * vis_w / (vis_w + pre_w) : 0;
    o->t_prefill_ms = pre - o->t_vision_ms;
    o->t_decode_ms = r->t_done - r->t_first;
    o->t_down_ms = down;
    o->ttft_ms = r->t_first + down - r->t_stage;
    o->e2e_ms = r->t_done + down - r->t_stage;
    o->in_tokens = r->main.prompt + r->main.image_tokens;
    o->out_tokens = r->main.out;
    o->cost_usd += job_cost(e, &r->main, r->t_done - r->t_start);
    if (r->aux.out) o->cost_usd += job_cost(e, &r->aux, r->aux_busy_ms);
}

/* Trains the shared bank with one stage's outcome o (the node's state at its dispatch);
 * cascade fields are removed: each stage is a plain run on its node. The second stage's
 * label is withheld from the quality model (its latency is learned): escalated requests
 * are a sample selected by the first answer's confidence, harder than their features
 * show, and MGQP would learn from them a cloud quality biased low for every request. */
static void observe_stage(struct eng *e, const struct sreq *r, const struct fy_outcome *o)
{
    if (!e->pred || o->failed) return;
    struct fy_node at[FY_MAX_NODES];
    memcpy(at, e->view, (size_t)e->n * sizeof at[0]);
    at[r->main.node].st = r->st0;
    at[r->main.node].link = r->link0;
    struct fy_outcome so = *o;
    if (r->stage == 1) {
        pol_plan_keep(&so.plan, r->main.node);
        so.quality = -1;
    }
    so.plan.escalate_node = -1;
    so.plan.escalate_below = 0;
    pred_observe(e->pred, &r->f, at, &so);
}

static void finish_request(struct eng *e, int ri, double t, int failed)
{
    struct sreq *r = &e->req[ri];
    struct sim_result *res = e->res;
    struct fy_outcome o;
    stage_outcome(e, r, failed, &o);
    if (!failed && r->stage == 0) /* every answer has a confidence (logprobs) */
        o.confidence = sim_quality_confidence(&e->s->exp.q, r->p_correct, r->correct,
                                              confidence_z(e, r->serial));
    if (r->stage == 0 && is_cascade(&r->plan)) {
        o.first_quality = failed ? -1 : r->correct;
        o.confidence = failed ? -1 : sim_quality_confidence(&e->s->exp.q, r->p_correct, r->correct,
                                                            confidence_z(e, r->serial));
        if (failed || o.confidence < r->plan.escalate_below) {
            /* escalate: the gateway discards this answer (the client saw nothing of it)
             * and asks the escalation node, every image kept, once the answer is in */
            o.escalated = 1;
            r->s1 = o;
            r->s1_st0 = r->st0;
            r->s1_link0 = r->link0;
            r->s1_bytes = failed ? 0 : r->main.bytes + (r->aux.out ? r->aux.bytes : 0);
            r->s1_image_tokens = r->main.image_tokens;
            r->s1_node = r->plan.node;
            if (!failed) observe_stage(e, r, &o);
            res->escalated++;
            double t2 = failed ? t : t + o.t_down_ms;
            if (heap_push(&e->ev, t2, EV_VAL(EV_ESCALATE, ri, 0)) < 0) e->failed_alloc = 1;
            return;
        }
    }
    if (!failed) observe_stage(e, r, &o);
    struct fy_outcome s2 = o; /* an escalated cascade's second stage alone (trace) */
    if (r->stage == 1) {
        pol_plan_keep(&s2.plan, r->main.node);
        s2.confidence = r->s1.confidence;
        s2.escalated = 1;
        s2.first_quality = r->s1.first_quality;
    }
    double bytes = failed ? 0 : r->main.bytes + (r->aux.out ? r->aux.bytes : 0);
    if (r->stage == 1) { /* the client's view: arrival to the end of stage 2, both costs */
        const struct fy_outcome *a = &r->s1;
        double pre = r->t_stage - r->t_arrive;
        o.plan = r->plan;
        o.confidence = a->confidence;
        o.first_quality = a->first_quality;
        o.escalated = 1;
        o.cost_usd += a->cost_usd;
        bytes += r->s1_bytes;
        if (!failed) {
            o.t_up_ms += a->t_up_ms;
            o.t_queue_ms += a->t_queue_ms;
            o.t_vision_ms += a->t_vision_ms;
            o.t_prefill_ms += a->t_prefill_ms;
            o.t_decode_ms += a->t_decode_ms;
            o.t_down_ms += a->t_down_ms;
            o.ttft_ms += pre;
            o.e2e_ms += pre;
            o.in_tokens += a->in_tokens;
        }
    }
    res->requests++;
    if (failed) {
        res->failed++;
    } else {
        res->correct += r->correct;
        int in_slo = !(r->prefs.slo_ms > 0) || o.e2e_ms <= r->prefs.slo_ms;
        res->completed += r->correct && in_slo;
        res->sum_p += r->p_correct;
        res->sum_e2e_ms += o.e2e_ms;
        res->sum_ttft_ms += o.ttft_ms;
        res->sum_up_ms += o.t_up_ms;
        res->sum_queue_ms += o.t_queue_ms;
        res->sum_vision_ms += o.t_vision_ms;
        res->sum_prefill_ms += o.t_prefill_ms;
        res->sum_decode_ms += o.t_decode_ms;
        res->sum_bytes_up += bytes;
        res->node[r->main.node].requests++;
        if (r->aux.out) res->node[r->aux.node].aux_requests++;
        res->sum_cost_usd += o.cost_usd;
        sim_hist_add(&res->e2e, o.e2e_ms);
        sim_hist_add(&res->ttft, o.ttft_ms);
        if (t > res->makespan_ms) res->makespan_ms = t;
    }
    if (r->dlg >= 0) {
        struct sdlg *d = &e->dlg[r->dlg];
        d->sum_e2e_ms += failed ? 0 : o.e2e_ms;
        d->sum_cost_usd += o.cost_usd;
        d->turns_correct += !failed && r->correct;
        d->turns_failed += failed;
    }
    if (e->o->trace) trace_request(e, r, r->stage == 1 ? &s2 : &o);
    if (e->pol->observe) {
        struct pol_ctx c;
        pol_ctx_fill(e, r, t, &c);
        e->pol->observe(e->pstate, &c, &o);
    }
    schedule_followup(e, r, t);
    req_release(e, ri);
}

/* Stage 2 of an escalated cascade: request ri goes to plan.escalate_node at t, every
 * image kept (uploaded again: the edge's copy is of no use to the cloud). */
static void escalate(struct eng *e, int ri, double t)
{
    struct sreq *r = &e->req[ri];
    int m = r->plan.escalate_node;
    struct fy_plan p2;
    pol_plan_keep(&p2, m);
    r->stage = 1;
    r->t_stage = t;
    plan_jobs(e, r, &p2, &r->aux, &r->main);
    r->aux.out = 0;
    if (!fits_context(e, &r->main)) {
        finish_request(e, ri, t, 1);
        return;
    }
    r->p_correct = true_p(e, r, &p2);
    r->correct = r->lat.u < r->p_correct;
    advance_node(e, m, t);
    r = &e->req[ri];
    node_svc_state(e->svc[m], &e->view[m].st);
    link_state(e->lnk[m], t, &e->view[m].link);
    r->st0 = e->view[m].st;
    r->link0 = e->view[m].link;
    r->phase = PH_MAIN;
    r->t_main_dispatch = t;
    r->t_up_end = link_upload_end(e->lnk[m], t, r->main.bytes, r->main.views,
                                  jitter_ms(e, r->serial, m));
    if (heap_push(&e->ev, r->t_up_end, EV_VAL(EV_UPLOADED, ri, PH_MAIN)) < 0) e->failed_alloc = 1;
}

/* The main phase (and for split plans first the aux phase) of request ri starts at t. */
static void dispatch(struct eng *e, int ri, double t)
{
    struct sreq *r = &e->req[ri];
    int nsplit = plan_jobs(e, r, &r->plan, &r->aux, &r->main);
    if (!nsplit) r->aux.out = 0;
    if (!fits_context(e, &r->main) || (nsplit && !fits_context(e, &r->aux))) {
        finish_request(e, ri, t, 1);
        return;
    }
    r->p_correct = true_p(e, r, &r->plan);
    r->correct = r->lat.u < r->p_correct;
    /* a cascade that may escalate an edge-only request to a cloud node counts too */
    if (r->prefs.privacy == FY_PRIV_EDGE_ONLY &&
        (e->view[r->plan.node].role == FY_ROLE_CLOUD ||
         (nsplit && e->view[r->aux.node].role == FY_ROLE_CLOUD) ||
         (is_cascade(&r->plan) && e->view[r->plan.escalate_node].role == FY_ROLE_CLOUD)))
        e->res->privacy_violations++;
    if (is_cascade(&r->plan)) e->res->plans_cascade++;
    r->st0 = e->view[r->plan.node].st;
    r->link0 = e->view[r->plan.node].link;
    if (nsplit) {
        e->res->plans_split++;
        r->phase = PH_AUX;
        double up = link_upload_end(e->lnk[r->aux.node], t, r->aux.bytes, r->aux.views,
                                    jitter_ms(e, r->serial, r->aux.node));
        if (heap_push(&e->ev, up, EV_VAL(EV_UPLOADED, ri, PH_AUX)) < 0) e->failed_alloc = 1;
    } else {
        r->phase = PH_MAIN;
        r->t_main_dispatch = t;
        r->t_up_end = link_upload_end(e->lnk[r->main.node], t, r->main.bytes, r->main.views,
                                      jitter_ms(e, r->serial, r->main.node));
        if (heap_push(&e->ev, r->t_up_end, EV_VAL(EV_UPLOADED, ri, PH_MAIN)) < 0) e->failed_alloc = 1;
    }
    for (int i = 0; i < r->f.nimages && i < FY_MAX_IMAGES; i++) {
        if (r->plan.img[i] == FY_IMG_DOWNSCALE) { e->res->plans_downscale++; break; }
    }
    for (int i = 0; i < r->f.nimages && i < FY_MAX_IMAGES; i++) {
        if (r->plan.img[i] == FY_IMG_DROP) { e->res->plans_drop++; break; }
    }
}

static void on_uploaded(struct eng *e, int ri, int phase, double t)
{
    struct sreq *r = &e->req[ri];
    const struct job *j = phase == PH_AUX ? &r->aux : &r->main;
    int n = j->node;
    advance_node(e, n, t);
    r = &e->req[ri];
    int rc = node_svc_submit(e->svc[n], t, (uint64_t)ri, j->prompt, j->image_tokens, j->out);
    if (rc < 0) {
        finish_request(e, ri, t, 1);
        return;
    }
    reschedule(e, n);
}

static void node_cb(void *arg, uint64_t id, int ev, double t)
{
    struct cb_ctx *c = arg;
    struct eng *e = c->e;
    int ri = (int)id;
    struct sreq *r = &e->req[ri];
    if (r->phase == PH_AUX) {
        if (ev == NODE_EV_START) r->t_aux_start = t;
        if (ev != NODE_EV_DONE) return;
        r->aux_busy_ms = t - r->t_aux_start;
        /* the description streams back to the client, which sends the main request */
        double t_main = t + link_down_ms(e->lnk[r->aux.node]);
        r->phase = PH_MAIN;
        r->t_main_dispatch = t_main;
        r->t_up_end = link_upload_end(e->lnk[r->main.node], t_main, r->main.bytes, r->main.views,
                                      jitter_ms(e, r->serial, r->main.node));
        if (heap_push(&e->ev, r->t_up_end, EV_VAL(EV_UPLOADED, ri, PH_MAIN)) < 0) e->failed_alloc = 1;
        return;
    }
    if (ev == NODE_EV_START) r->t_start = t;
    else if (ev == NODE_EV_FIRST_TOKEN) r->t_first = t;
    else if (ev == NODE_EV_DONE) {
        r->t_done = t;
        finish_request(e, ri, t, 0);
    }
}

/* Plan variant v of node n for a counterfactual outcome: 0 keep, 1 every image
 * downscaled to CF_DOWNSCALE_PX (only when some image is larger), 2 every image dropped.
 * 0, or -1 when the variant does not exist for this request. */
#define CF_DOWNSCALE_PX 448
static int cf_plan(const struct sreq *r, int n, int v, struct fy_plan *p)
{
    pol_plan_keep(p, n);
    if (v == 0) return 0;
    int k = r->f.nimages < FY_MAX_IMAGES ? r->f.nimages : FY_MAX_IMAGES, larger = 0;
    if (k == 0) return -1;
    for (int i = 0; i < k; i++) {
        const struct fy_image_features *im = &r->f.img[i];
        larger |= (im->width > im->height ? im->width : im->height) > CF_DOWNSCALE_PX;
        p->img[i] = v == 1 ? FY_IMG_DOWNSCALE : FY_IMG_DROP;
    }
    if (v == 1 && !larger) return -1; /* the same as keep */
    if (v == 1) p->downscale_px = CF_DOWNSCALE_PX;
    return 0;
}

static int plan_same(const struct fy_plan *a, const struct fy_plan *b, int nimages)
{
    if (a->node != b->node || a->aux_node != b->aux_node || is_cascade(a) || is_cascade(b))
        return 0;
    int down = 0;
    for (int i = 0; i < nimages && i < FY_MAX_IMAGES; i++) {
        if (a->img[i] != b->img[i]) return 0;
        down |= a->img[i] == FY_IMG_DOWNSCALE;
    }
    return !down || a->downscale_px == b->downscale_px;
}

/* The outcomes request r would have had with other plans, dispatched now (the trace's
 * counterfactual outcomes, what MIOBench measures): the keep plan on every other node;
 * with counterfactual = 2 also downscale and drop plans on every node (but the chosen
 * plan). Kept in r->cf until the request's trace record is written. */
static void record_counterfactuals(struct eng *e, struct sreq *r, double t)
{
    int variants = e->o->counterfactual >= 2 ? 3 : 1;
    r->cf = calloc((size_t)(e->n * variants), sizeof *r->cf);
    if (!r->cf) return;
    for (int n = 0; n < e->n; n++) {
        for (int v = 0; v < variants; v++) {
            struct fy_plan p;
            if (cf_plan(r, n, v, &p) < 0 || plan_same(&p, &r->plan, r->f.nimages)) continue;
            if (v == 0 && n == r->plan.node) continue;
            struct trace_outcome *to = &r->cf[r->ncf];
            memset(to, 0, sizeof *to);
            double pc;
            if (plan_truth(e, r, &p, t, &to->o, &pc) < 0) continue;
            struct job aux, main;
            plan_jobs(e, r, &p, &aux, &main);
            snprintf(to->node, sizeof to->node, "%s", e->view[n].name);
            to->role = e->view[n].role;
            snprintf(to->model, sizeof to->model, "%s", e->view[n].prof.model);
            to->link = e->view[n].link;
            to->state = e->view[n].st;
            to->bytes_up = main.bytes;
            to->image_tokens = main.image_tokens;
            to->chosen = 0;
            r->ncf++;
        }
    }
}

/* Draws and decides a new request at time t (turn of dialogue dl, or for user u). */
static void new_request(struct eng *e, double t, int dl, int user)
{
    int ri = req_alloc(e);
    if (ri < 0) {
        e->failed_alloc = 1;
        return;
    }
    struct sreq *r = &e->req[ri];
    memset(r, 0, sizeof *r);
    r->active = 1;
    r->serial = (uint64_t)e->generated++;
    r->dlg = dl;
    r->user = user;
    r->t_arrive = r->t_stage = t;
    /* content streams do not depend on the policy: the same requests reach every policy */
    struct rng *rs = dl >= 0 ? &e->dlg[dl].rng : user >= 0 ? &e->user_rng[user] : &e->rng_wl;
    sim_workload_draw(&e->s->wl, rs, dl >= 0 ? &e->dlg[dl].d : NULL, &r->lat, &r->f);
    r->prefs = e->s->exp.prefs;
    if (e->s->exp.privacy_edge_share > 0 && rng_uniform(rs) < e->s->exp.privacy_edge_share)
        r->prefs.privacy = FY_PRIV_EDGE_ONLY;
    if (dl >= 0) snprintf(r->prefs.session, sizeof r->prefs.session, "%s", e->dlg[dl].session);
    pol_plan_keep(&r->plan, 0);

    refresh_views(e, t);
    r = &e->req[ri];
    struct pol_ctx c;
    pol_ctx_fill(e, r, t, &c);
    e->cur = ri;
    e->now = t;
    uint64_t t0 = clock_now_ns();
    int rc = e->pol->decide(e->pstate, &c, &r->plan, &r->est);
    e->res->decide_ns += (double)(clock_now_ns() - t0);
    r = &e->req[ri];
    if (rc < 0 || !plan_valid(e, r, &r->plan)) {
        finish_request(e, ri, t, 1);
        return;
    }
    if (e->o->trace && e->o->counterfactual) record_counterfactuals(e, r, t);
    dispatch(e, ri, t);
}

/* ==== arrivals ===================================================================== */

static double next_open_arrival(struct eng *e, double t)
{
    const struct sim_arrivals *a = &e->s->exp.arr;
    switch (a->kind) {
    case SIM_ARR_MMPP:
        for (;;) {
            double rate = (e->mmpp_burst ? a->burst_rate_rps : a->rate_rps) / 1000.0;
            double dt = rng_exponential(&e->rng_arr, rate);
            if (t + dt <= e->mmpp_switch_ms) return t + dt;
            t = e->mmpp_switch_ms; /* memoryless: redraw in the new state */
            e->mmpp_burst = !e->mmpp_burst;
            double mean_s = e->mmpp_burst ? a->burst_s : a->calm_s;
            e->mmpp_switch_ms = t + rng_exponential(&e->rng_arr, 1.0 / (mean_s * 1000.0));
        }
    case SIM_ARR_DIURNAL: {
        /* thinning (Lewis & Shedler) against the peak rate */
        double peak = a->rate_rps * (1 + a->amplitude) / 1000.0;
        for (int guard = 0; guard < 1000000; guard++) {
            t += rng_exponential(&e->rng_arr, peak);
            double r = a->rate_rps * (1 + a->amplitude * sin(2 * M_PI * t / (a->period_s * 1000.0))) / 1000.0;
            if (rng_uniform(&e->rng_arr) * peak <= r) return t;
        }
        return t;
    }
    default:
        return t + rng_exponential(&e->rng_arr, a->rate_rps / 1000.0);
    }
}

static int dlg_alloc(struct eng *e, int user)
{
    int i;
    for (i = 0; i < e->ndlg; i++)
        if (!e->dlg[i].active) break;
    if (i == e->ndlg) {
        struct sdlg *n = util_grow(e->dlg, &e->capdlg, (size_t)e->ndlg, sizeof *n, 64);
        if (!n) return -1;
        e->dlg = n;
        e->ndlg++;
    }
    struct sdlg *d = &e->dlg[i];
    memset(d, 0, sizeof *d);
    d->active = 1;
    d->prev_node = -1;
    d->user = user;
    rng_split(&e->base, 0x100000000ull + (uint64_t)e->dialogues, &d->rng);
    snprintf(d->session, sizeof d->session, "d%ld", e->dialogues++);
    sim_dialogue_start(&e->s->wl, &d->rng, &d->d);
    return i;
}

/* A new request (or dialogue) starts at t for user u (-1 = open arrivals). */
static void start_unit(struct eng *e, double t, int user)
{
    if (!may_generate(e, t)) return;
    int dl = -1;
    if (dialogue_mode(e)) {
        dl = dlg_alloc(e, user);
        if (dl < 0) {
            e->failed_alloc = 1;
            return;
        }
        e->planned += e->dlg[dl].d.turns;
    } else {
        e->planned++;
    }
    new_request(e, t, dl, user);
}

/* After request r finished at t: the next turn of its dialogue, or the user's next. */
static void schedule_followup(struct eng *e, const struct sreq *r, double t)
{
    if (r->dlg >= 0) {
        struct sdlg *d = &e->dlg[r->dlg];
        d->prev_node = r->stage == 1 ? r->main.node : r->plan.node;
        sim_dialogue_next(&d->d, &r->lat, r->f.nimages);
        if (d->d.turn < d->d.turns) {
            double think = rng_exponential(&d->rng, 1.0 / (e->s->wl.think_s * 1000.0 + 1e-9));
            if (heap_push(&e->ev, t + think, EV_VAL(EV_TURN, r->dlg, 0)) < 0) e->failed_alloc = 1;
            return;
        }
        /* the dialogue is over: LCIO-style per-dialogue budgets */
        const struct sim_exp *x = &e->s->exp;
        struct sim_result *res = e->res;
        res->dialogues++;
        res->dialogue_turns_correct += d->turns_correct;
        res->dialogue_turns += d->d.turns;
        res->sum_dialogue_ms += d->sum_e2e_ms;
        res->sum_dialogue_usd += d->sum_cost_usd;
        int in_budget = d->turns_failed == 0 &&
                        (!(x->dialogue_budget_ms > 0) || d->sum_e2e_ms <= x->dialogue_budget_ms) &&
                        (!(x->dialogue_budget_usd > 0) || d->sum_cost_usd <= x->dialogue_budget_usd);
        res->dialogues_in_budget += in_budget;
        d->active = 0;
    }
    if (r->user >= 0) {
        double think = rng_exponential(&e->user_rng[r->user],
                                       1.0 / (e->s->exp.arr.think_s * 1000.0 + 1e-9));
        if (heap_push(&e->ev, t + think, EV_VAL(EV_USER, r->user, 0)) < 0) e->failed_alloc = 1;
    }
}

/* ==== run ========================================================================== */

int sim_run(const struct sim_setup *s, const struct sim_run_opts *o, struct sim_result *res,
            char *err, size_t errlen)
{
    struct eng *e = calloc(1, sizeof *e);
    if (!e) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int rc = -1;
    memset(res, 0, sizeof *res);
    if (o->trace && o->counterfactual >= 2 && s->nnodes * 3 > FY_MAX_NODES) {
        /* a trace record holds FY_MAX_NODES outcomes: the rest would be cut silently */
        snprintf(err, errlen, "--counterfactual-plans: %d nodes × 3 plans is more than the "
                 "%d outcomes a trace record holds (use --counterfactual)", s->nnodes,
                 FY_MAX_NODES);
        free(e);
        return -1;
    }
    e->s = s;
    e->o = o;
    e->res = res;
    e->n = s->nnodes;
    e->free_req = -1;
    e->pol = o->pol;
    heap_init(&e->ev);
    rng_seed(&e->base, o->seed);
    rng_split(&e->base, 1, &e->rng_arr);
    rng_split(&e->base, 2, &e->rng_wl);
    rng_split(&e->base, 3, &e->rng_pol);
    res->nnodes = e->n;
    struct node_svc_opts so;
    node_svc_opts_default(&so);
    so.prefill_share = s->exp.prefill_share;
    for (int i = 0; i < e->n; i++) {
        e->view[i] = s->nodes[i];
        so.max_queue = s->max_queue[i];
        e->svc[i] = node_svc_new(&s->nodes[i].prof, &so);
        if (!e->svc[i]) {
            snprintf(err, errlen, "node %s: the service model refuses its profile (rates must "
                     "be > 0, max_seqs >= 1)", s->nodes[i].name);
            goto done;
        }
        e->lnk[i] = link_new(&s->links[i], o->seed * 1000003u + (uint64_t)i, err, errlen);
        if (!e->lnk[i]) goto done;
        e->sched[i] = INFINITY;
    }
    if (o->trace) {
        e->tr = malloc(sizeof *e->tr);
        if (!e->tr) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
    }
    char perr[256] = "";
    if (o->pol->init(&e->pstate, o->params, perr, sizeof perr) < 0) {
        snprintf(err, errlen, "policy %s: %s", o->pol->name, perr);
        e->pol = NULL;
        goto done;
    }
    if (s->exp.pred_model[0] && o->use_pred != 0) {
        /* a trained bank (ferry train): the policy starts from it, and keeps learning */
        char perr2[512];
        char path[1200];
        if (s->exp.pred_model[0] == '/') snprintf(path, sizeof path, "%s", s->exp.pred_model);
        else snprintf(path, sizeof path, "%s/%s", s->data_dir, s->exp.pred_model);
        e->pred = pred_load(path, s->nodes, s->nnodes, perr2, sizeof perr2);
        if (!e->pred) {
            snprintf(err, errlen, "pred_model: %s", perr2);
            goto done;
        }
    } else if (o->use_pred == 1 || (o->use_pred < 0 && o->pol->observe)) {
        e->pred = pred_new(s->nodes, s->nnodes);
        if (!e->pred) {
            snprintf(err, errlen, "out of memory (predictor bank)");
            goto done;
        }
    }

    /* first arrivals */
    if (s->exp.arr.kind == SIM_ARR_CLOSED) {
        e->user_rng = calloc((size_t)s->exp.arr.users, sizeof *e->user_rng);
        if (!e->user_rng) {
            snprintf(err, errlen, "out of memory");
            goto done;
        }
        for (int u = 0; u < s->exp.arr.users; u++) {
            rng_split(&e->base, 0x200000000ull + (uint64_t)u, &e->user_rng[u]);
            double t = rng_exponential(&e->user_rng[u], 1.0 / (s->exp.arr.think_s * 1000.0 + 1e-9));
            heap_push(&e->ev, t, EV_VAL(EV_USER, u, 0));
        }
    } else {
        if (s->exp.arr.kind == SIM_ARR_MMPP)
            e->mmpp_switch_ms = rng_exponential(&e->rng_arr, 1.0 / (s->exp.arr.calm_s * 1000.0));
        heap_push(&e->ev, next_open_arrival(e, 0), EV_VAL(EV_ARRIVAL, 0, 0));
    }

    struct heap_item it;
    while (!e->failed_alloc && heap_pop(&e->ev, &it) == 0) {
        double t = it.key;
        switch (EV_TYPE(it.val)) {
        case EV_ARRIVAL:
            start_unit(e, t, -1);
            if (may_generate(e, t)) {
                double nt = next_open_arrival(e, t);
                if (heap_push(&e->ev, nt, EV_VAL(EV_ARRIVAL, 0, 0)) < 0) e->failed_alloc = 1;
            }
            break;
        case EV_USER:
            start_unit(e, t, (int)EV_A(it.val));
            break;
        case EV_TURN:
            new_request(e, t, (int)EV_A(it.val), e->dlg[EV_A(it.val)].user);
            break;
        case EV_UPLOADED:
            on_uploaded(e, (int)EV_A(it.val), (int)EV_B(it.val), t);
            break;
        case EV_ESCALATE:
            escalate(e, (int)EV_A(it.val), t);
            break;
        case EV_NODE: {
            int n = (int)EV_A(it.val);
            if (EV_B(it.val) != e->gen[n]) break; /* superseded */
            advance_node(e, n, t);
            break;
        }
        default:
            break;
        }
    }
    if (e->failed_alloc) {
        snprintf(err, errlen, "out of memory during the simulation");
        goto done;
    }
    for (int i = 0; i < e->n; i++) res->node[i].busy_ms = node_svc_busy_ms(e->svc[i]);
    rc = 0;
done:
    if (e->pol && e->pstate) e->pol->free(e->pstate);
    pred_free(e->pred);
    for (int i = 0; i < e->n; i++) {
        node_svc_free(e->svc[i]);
        link_free(e->lnk[i]);
    }
    for (int i = 0; i < e->nreq; i++) free(e->req[i].cf);
    free(e->req);
    free(e->req_next);
    free(e->dlg);
    free(e->user_rng);
    free(e->tr);
    heap_fini(&e->ev);
    free(e);
    return rc;
}
