/* test-policies — the defining rule of each learned policy on hand-made cases
 * (moa-off, perllm, qlmio, lcio, ferry). */
#include <stdlib.h>
#include <string.h>

#include "test.h"
#include "ferry.h"
#include "policy/policy.h"
#include "pred/pred.h"
#include "util/rng.h"

static void mk_node(struct fy_node *n, const char *name, enum fy_role role)
{
    memset(n, 0, sizeof *n);
    snprintf(n->name, sizeof n->name, "%s", name);
    snprintf(n->prof.model, sizeof n->prof.model, "%s", role == FY_ROLE_CLOUD ? "big" : "small");
    n->role = role;
    n->prof.prefill_tps = role == FY_ROLE_CLOUD ? 8000 : 2000;
    n->prof.decode_tps = role == FY_ROLE_CLOUD ? 60 : 100; /* a 2B model decodes faster */
    n->prof.tpot_slope = 0.05;
    n->prof.max_seqs = 4;
    n->prof.vision_ms_per_token = 0.05;
    n->prof.vt_family = FY_VT_QWEN2VL;
    n->prof.usd_per_mtok_in = role == FY_ROLE_CLOUD ? 2 : 0;
    n->prof.usd_per_mtok_out = role == FY_ROLE_CLOUD ? 6 : 0;
    n->link.up_mbps = role == FY_ROLE_CLOUD ? 100 : 1000;
    n->link.down_mbps = n->link.up_mbps;
    n->link.rtt_ms = role == FY_ROLE_CLOUD ? 40 : 2;
    n->st.healthy = 1;
}

struct env {
    struct fy_node nodes[4];
    int n;
    struct fy_features f;
    struct fy_prefs prefs;
    struct rng rng;
    struct pol_ctx c;
};

static void env_init(struct env *e, int nedge, int ncloud)
{
    memset(e, 0, sizeof *e);
    char name[16];
    for (int i = 0; i < nedge; i++) {
        snprintf(name, sizeof name, "edge%d", i);
        mk_node(&e->nodes[e->n++], name, FY_ROLE_EDGE);
    }
    for (int i = 0; i < ncloud; i++) {
        snprintf(name, sizeof name, "cloud%d", i);
        mk_node(&e->nodes[e->n++], name, FY_ROLE_CLOUD);
    }
    e->prefs.tradeoff = -1;
    e->prefs.min_quality = -1;
    e->prefs.max_cost_usd = -1;
    rng_seed(&e->rng, 1);
    e->c.f = &e->f;
    e->c.prefs = &e->prefs;
    e->c.nodes = e->nodes;
    e->c.nnodes = e->n;
    e->c.rng = &e->rng;
    e->c.session = "";
}

static void one_image(struct fy_features *f, double c_img, double c_text)
{
    memset(f, 0, sizeof *f);
    f->text_tokens = f->last_text_tokens = 20;
    f->c_text = c_text;
    f->nimages = 1;
    f->img[0].width = 1024;
    f->img[0].height = 768;
    f->img[0].bytes = 150000;
    f->img[0].c_img = c_img;
}

static void *start(const char *name, const char *params)
{
    const struct fy_policy *p = pol_find(name);
    if (!p) return NULL;
    void *st = NULL;
    char err[256];
    if (p->init(&st, params, err, sizeof err) < 0) {
        fprintf(stderr, "%s\n", err);
        return NULL;
    }
    return st;
}

TEST(learned_policies_registered_and_reject_bad_params)
{
    const char *names[] = {"moa-off", "perllm", "qlmio", "lcio", "ferry"};
    for (int i = 0; i < 5; i++) {
        const struct fy_policy *p = pol_find(names[i]);
        CHECK(p != NULL);
        void *st = NULL;
        char err[256] = "";
        CHECK(p->init(&st, "nonsense=1", err, sizeof err) < 0);
        CHECK(strstr(err, "nonsense") != NULL);
        CHECK(p->init(&st, NULL, err, sizeof err) == 0);
        p->free(st);
    }
    void *st = NULL;
    char err[256] = "";
    CHECK(pol_find("moa-off")->init(&st, "tau_img=2", err, sizeof err) < 0);
    CHECK(strstr(err, "tau_img=2") != NULL);
    /* integer parameters: 2.5 hidden units were silently 2 */
    CHECK(pol_find("lcio")->init(&st, "learner=a2c,hidden=2.5", err, sizeof err) < 0);
    CHECK(strstr(err, "lcio: hidden=2.5: expected an integer") != NULL);
    CHECK(pol_find("lcio")->init(&st, "seed=1.5", err, sizeof err) < 0);
    CHECK(strstr(err, "lcio: seed=1.5: expected an integer") != NULL);
    CHECK(pol_find("ferry")->init(&st, "downscale_px=300.7", err, sizeof err) < 0);
    CHECK(strstr(err, "ferry: downscale_px=300.7: expected an integer") != NULL);
}

TEST(moa_off_routes_each_modality_by_its_complexity)
{
    struct env e;
    env_init(&e, 1, 1);
    const struct fy_policy *p = pol_find("moa-off");
    void *st = start("moa-off", NULL);
    CHECK(st);
    struct fy_plan out;
    /* simple image, simple text: the edge answers with the image */
    one_image(&e.f, 0.3, 0.2);
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.node, 0);
    CHECK_EQ_INT(out.img[0], FY_IMG_KEEP);
    /* image above tau, simple text: split — the cloud describes, the edge answers */
    one_image(&e.f, 0.8, 0.2);
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.node, 0);
    CHECK_EQ_INT(out.aux_node, 1);
    CHECK_EQ_INT(out.img[0], FY_IMG_SPLIT);
    /* both complex: the cloud */
    one_image(&e.f, 0.8, 0.9);
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.node, 1);
    CHECK_EQ_INT(out.img[0], FY_IMG_KEEP);
    /* simple request but the edge is overloaded (l > lmax = 1): the cloud */
    one_image(&e.f, 0.3, 0.2);
    e.nodes[0].st.running = 4;
    e.nodes[0].st.queued = 2;
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.node, 1);
    /* ... unless the request must stay at the edge */
    e.prefs.privacy = FY_PRIV_EDGE_ONLY;
    one_image(&e.f, 0.8, 0.9);
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.node, 0);
    CHECK_EQ_INT(out.aux_node, -1);
    p->free(st);
    /* tau_img raised to 0.9: the 0.8 image stays at the edge */
    st = start("moa-off", "tau_img=0.9");
    e.prefs.privacy = FY_PRIV_ANY;
    e.nodes[0].st.running = e.nodes[0].st.queued = 0;
    one_image(&e.f, 0.8, 0.2);
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.node, 0);
    CHECK_EQ_INT(out.img[0], FY_IMG_KEEP);
    p->free(st);
}

TEST(perllm_explores_every_arm_then_exploits_the_best)
{
    struct env e;
    env_init(&e, 2, 2);
    const struct fy_policy *p = pol_find("perllm");
    void *st = start("perllm", NULL);
    CHECK(st);
    memset(&e.f, 0, sizeof e.f);
    e.f.text_tokens = 30;
    const double lat[4] = {900, 400, 1500, 2500}; /* node 1 is the best arm */
    int seen[4] = {0}, picks[4] = {0};
    for (int it = 0; it < 400; it++) {
        struct fy_plan out;
        CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
        CHECK(out.node >= 0 && out.node < 4);
        if (it < 4) seen[out.node]++;
        if (it >= 300) picks[out.node]++;
        struct fy_outcome o;
        memset(&o, 0, sizeof o);
        o.plan = out;
        o.e2e_ms = lat[out.node] * (0.9 + 0.2 * rng_uniform(&e.rng));
        o.quality = 1;
        p->observe(st, &e.c, &o);
    }
    for (int i = 0; i < 4; i++) CHECK_EQ_INT(seen[i], 1);
    CHECK(picks[1] > 80);
    /* an SLO the best arm cannot meet filters it out */
    p->free(st);
}

TEST(qlmio_maximises_weighted_quality_minus_latency)
{
    struct env e;
    env_init(&e, 1, 1);
    e.nodes[1].link.up_mbps = 20;
    e.nodes[1].link.rtt_ms = 100;
    struct pred *bank = pred_new(e.nodes, e.n);
    /* the cloud answers better, the edge faster (by the profiles and link) */
    pred_set_quality_prior(bank, 0, 0.5);
    pred_set_quality_prior(bank, 1, 0.9);
    e.c.pred = bank;
    one_image(&e.f, 0.5, 0.5);
    const struct fy_policy *p = pol_find("qlmio");
    struct fy_plan out;
    struct fy_estimate est[2];
    for (int i = 0; i < 2; i++) {
        struct fy_plan k = {.node = i, .aux_node = -1};
        pred_estimate(bank, &e.f, e.nodes, i, &k, &est[i]);
    }
    CHECK(est[1].q_mean > est[0].q_mean + 0.2);
    CHECK(est[0].e2e_ms < est[1].e2e_ms);
    void *st = start("qlmio", "w=1");
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.node, 1); /* quality only */
    p->free(st);
    st = start("qlmio", "w=0");
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.node, 0); /* latency only */
    /* latency only, but the request needs q >= 0.8: only the cloud qualifies */
    e.prefs.min_quality = 0.8;
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.node, 1);
    /* the request's own tradeoff overrides w */
    e.prefs.min_quality = -1;
    e.prefs.tradeoff = 1;
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.node, 1);
    p->free(st);
    pred_free(bank);
}

/* A toy dialogue world for lcio: outcomes are what an exact, fixed predictor says
 * (latency and cost), quality 0.9 in the cloud with the image, 0.4 otherwise. Runs
 * ndlg dialogues of 8 turns; returns the dialogues over 20 s or 0.05 USD (-1 on error),
 * and in *cloud_img the turns sent to the cloud with the image, in *late_cloud_img
 * those of the last quarter of dialogues. */
static int lcio_toy(const char *params, int ndlg, int edge_only, int *cloud_img,
                    int *late_cloud_img, int *cloud_turns)
{
    struct env e;
    env_init(&e, 1, 1);
    e.nodes[1].prof.usd_per_mtok_in = 10; /* ≈ 0.01 USD per turn with the image */
    if (edge_only) e.prefs.privacy = FY_PRIV_EDGE_ONLY;
    struct pred *truth = pred_new(e.nodes, e.n);
    const struct fy_policy *p = pol_find("lcio");
    void *st = start("lcio", params);
    if (!st || !truth) return -1;
    int over = 0;
    *cloud_img = *late_cloud_img = *cloud_turns = 0;
    char sid[32];
    for (int d = 0; d < ndlg; d++) {
        snprintf(sid, sizeof sid, "dlg%d", d);
        e.c.session = sid;
        double spent_usd = 0, spent_ms = 0;
        for (int t = 0; t < 8; t++) {
            one_image(&e.f, 0.6, 0.5);
            e.f.turn = t;
            e.f.task = FY_TASK_REASON;
            struct fy_plan out;
            if (p->decide(st, &e.c, &out, NULL) != 0) return -1;
            struct fy_estimate te;
            pred_estimate(truth, &e.f, e.nodes, out.node, &out, &te);
            struct fy_outcome o;
            memset(&o, 0, sizeof o);
            o.plan = out;
            o.e2e_ms = te.e2e_ms;
            o.cost_usd = te.cost_usd;
            o.out_tokens = (int)te.out_tokens;
            int ci = out.node == 1 && out.img[0] == FY_IMG_KEEP;
            o.quality = ci ? 0.9 : 0.4;
            spent_usd += o.cost_usd;
            spent_ms += o.e2e_ms;
            *cloud_turns += out.node == 1;
            *cloud_img += ci;
            if (d >= ndlg * 3 / 4) *late_cloud_img += ci;
            p->observe(st, &e.c, &o);
        }
        if (spent_usd > 0.05 + 1e-9 || spent_ms > 20000 + 1e-6) over++;
    }
    p->free(st);
    pred_free(truth);
    return over;
}

TEST(lcio_respects_per_dialogue_budgets)
{
    int ci, late, cloud;
    /* the bandit (default learner) and the RC-A2C learner */
    CHECK_EQ_INT(lcio_toy("budget_ms=20000,budget_usd=0.05,turns=5", 60, 0, &ci, &late, &cloud), 0);
    CHECK(cloud > 60); /* it does use the costly, better node within budget */
    CHECK_EQ_INT(lcio_toy("learner=a2c,budget_ms=20000,budget_usd=0.05,turns=5", 60, 0, &ci,
                          &late, &cloud), 0);
    CHECK(cloud > 60);
}

/* RC-A2C in the loop: with a budget that allows it the actor-critic learns to send the
 * image to the better cloud node (most of the late turns); privacy=edge-only is never
 * broken, whatever it has learned. Deterministic (seeded actor-critic, env rng). */
TEST(lcio_a2c_learns_the_better_action_and_keeps_privacy)
{
    int ci, late, cloud;
    const char *par = "learner=a2c,lr=0.01,budget_ms=1e9,budget_usd=1,turns=8";
    CHECK(lcio_toy(par, 200, 0, &ci, &late, &cloud) >= 0); /* (over 20 s: no budget here) */
    /* 50 late dialogues × 8 turns; uniform choice over its 4 actions would give ~100 */
    CHECK(late > 300);
    CHECK(lcio_toy(par, 20, 1, &ci, &late, &cloud) >= 0);
    CHECK_EQ_INT(cloud, 0);
    CHECK(start("lcio", "learner=ppo") == NULL);
}

/* A fake simulator oracle: a fixed random truth per (node, plan kind). */
struct fake_truth {
    struct env *e;
    double q[4][4], lat[4][4];
};

static int plan_kind(const struct fy_plan *p, int nimg)
{
    if (p->aux_node >= 0) return 3;
    if (nimg > 0 && p->img[0] == FY_IMG_DROP) return 2;
    if (nimg > 0 && p->img[0] == FY_IMG_DOWNSCALE) return 1;
    return 0;
}

static int fake_oracle(void *arg, const struct fy_plan *p, struct fy_estimate *t)
{
    struct fake_truth *ft = arg;
    memset(t, 0, sizeof *t);
    int k = plan_kind(p, ft->e->f.nimages);
    t->q_mean = ft->q[p->node][k];
    t->e2e_ms = ft->lat[p->node][k];
    return 0;
}

TEST(ferry_picks_the_oracle_choice_when_predictions_are_exact)
{
    struct env e;
    env_init(&e, 2, 2);
    struct fake_truth ft = {.e = &e};
    e.c.oracle = fake_oracle;
    e.c.oracle_arg = &ft;
    const struct fy_policy *pf = pol_find("ferry"), *po = pol_find("oracle");
    void *sf = start("ferry", "truth=1,plans=keep,kv=0");
    void *so = start("oracle", "plans=keep");
    CHECK(sf && so);
    struct rng r;
    rng_seed(&r, 21);
    int agree = 0;
    for (int it = 0; it < 500; it++) {
        for (int i = 0; i < 4; i++)
            for (int k = 0; k < 4; k++) {
                ft.q[i][k] = rng_uniform(&r) < 0.4 ? 1 : 0;
                ft.lat[i][k] = 100 + 3000 * rng_uniform(&r);
            }
        e.prefs.slo_ms = it % 3 == 0 ? 1500 : 0;
        one_image(&e.f, 0.5, 0.5);
        struct fy_plan a, b;
        CHECK_EQ_INT(pf->decide(sf, &e.c, &a, NULL), 0);
        CHECK_EQ_INT(po->decide(so, &e.c, &b, NULL), 0);
        agree += a.node == b.node;
    }
    CHECK_EQ_INT(agree, 500);
    pf->free(sf);
    po->free(so);
}

/* truth=p: with exact probabilities and latencies, ferry takes the fastest plan whose
 * P(correct) is within delta (+ kappa per second saved) of the best, and refuses to run
 * without a probability oracle. */
TEST(ferry_with_exact_probabilities_takes_the_fastest_plan_within_delta)
{
    struct env e;
    env_init(&e, 2, 2);
    struct fake_truth ft = {.e = &e};
    const struct fy_policy *pf = pol_find("ferry");
    void *sf = start("ferry", "truth=p,plans=keep,kv=0,delta=0.05,kappa=0");
    CHECK(sf);
    one_image(&e.f, 0.5, 0.5);
    struct fy_plan a;
    CHECK(pf->decide(sf, &e.c, &a, NULL) < 0); /* no oracle_p: refused, not guessed */
    e.c.oracle_p = fake_oracle;
    e.c.oracle_arg = &ft;
    struct rng r;
    rng_seed(&r, 33);
    int checked = 0;
    for (int it = 0; it < 500; it++) {
        double qbest = 0;
        for (int i = 0; i < 4; i++) {
            ft.q[i][0] = 0.4 + 0.5 * rng_uniform(&r);
            ft.lat[i][0] = 100 + 3000 * rng_uniform(&r);
            if (ft.q[i][0] > qbest) qbest = ft.q[i][0];
        }
        int want = -1;
        for (int i = 0; i < 4; i++)
            if (ft.q[i][0] >= qbest - 0.05 && (want < 0 || ft.lat[i][0] < ft.lat[want][0])) want = i;
        CHECK_EQ_INT(pf->decide(sf, &e.c, &a, NULL), 0);
        CHECK_EQ_INT(a.node, want);
        checked += want >= 0;
    }
    CHECK_EQ_INT(checked, 500);
    CHECK(start("ferry", "truth=q") == NULL);
    pf->free(sf);
}

/* The request's tradeoff steers ferry: 1 takes the best P(correct) (the fastest of
 * equals), 0 the fastest plan (above a min_quality, when there is one), 0.5 is the
 * configured rule, and in between the price of quality scales by the odds (1 − t)/t. */
TEST(ferry_follows_the_requests_tradeoff)
{
    struct env e;
    env_init(&e, 2, 2);
    struct fake_truth ft = {.e = &e};
    e.c.oracle_p = fake_oracle;
    e.c.oracle_arg = &ft;
    const struct fy_policy *pf = pol_find("ferry");
    void *sf = start("ferry", "truth=p,plans=keep,kv=0,delta=0.05,kappa=0,cascade=0");
    CHECK(sf);
    one_image(&e.f, 0.5, 0.5);
    struct rng r;
    rng_seed(&r, 35);
    int moved = 0;
    for (int it = 0; it < 300; it++) {
        int best = 0, fast = 0;
        for (int i = 0; i < 4; i++) {
            ft.q[i][0] = 0.3 + 0.6 * rng_uniform(&r);
            ft.lat[i][0] = 100 + 3000 * rng_uniform(&r);
            if (ft.q[i][0] > ft.q[best][0]) best = i;
            if (ft.lat[i][0] < ft.lat[fast][0]) fast = i;
        }
        struct fy_plan a, b;
        e.prefs.tradeoff = 1;
        CHECK_EQ_INT(pf->decide(sf, &e.c, &a, NULL), 0);
        CHECK_EQ_INT(a.node, best);
        e.prefs.tradeoff = 0;
        CHECK_EQ_INT(pf->decide(sf, &e.c, &a, NULL), 0);
        CHECK_EQ_INT(a.node, fast);
        e.prefs.min_quality = 0.6; /* a floor still holds */
        CHECK_EQ_INT(pf->decide(sf, &e.c, &a, NULL), 0);
        int want = -1;
        for (int i = 0; i < 4; i++)
            if (ft.q[i][0] >= 0.6 && (want < 0 || ft.lat[i][0] < ft.lat[want][0])) want = i;
        if (want >= 0) CHECK_EQ_INT(a.node, want);
        e.prefs.min_quality = -1;
        e.prefs.tradeoff = 0.5; /* neutral: the configured delta */
        CHECK_EQ_INT(pf->decide(sf, &e.c, &a, NULL), 0);
        e.prefs.tradeoff = -1;
        CHECK_EQ_INT(pf->decide(sf, &e.c, &b, NULL), 0);
        CHECK_EQ_INT(a.node, b.node);
        /* t = 0.2: odds 4, delta 0.2: the fastest plan within 0.2 of the best */
        e.prefs.tradeoff = 0.2;
        CHECK_EQ_INT(pf->decide(sf, &e.c, &a, NULL), 0);
        want = -1;
        for (int i = 0; i < 4; i++)
            if (ft.q[i][0] >= ft.q[best][0] - 0.2 && (want < 0 || ft.lat[i][0] < ft.lat[want][0]))
                want = i;
        CHECK_EQ_INT(a.node, want);
        moved += a.node != b.node;
        e.prefs.tradeoff = -1;
    }
    CHECK(moved > 30); /* the knob does something in between, too */
    pf->free(sf);
}

TEST(ferry_never_violates_edge_only_privacy)
{
    struct env e;
    env_init(&e, 2, 2);
    const struct fy_policy *p = pol_find("ferry");
    void *st = start("ferry", "eps=0.5"); /* explores often: exploration must obey too */
    CHECK(st);
    struct rng r;
    rng_seed(&r, 5);
    int cloud_when_allowed = 0;
    for (int it = 0; it < 400; it++) {
        one_image(&e.f, rng_uniform(&r), rng_uniform(&r));
        e.prefs.privacy = it % 2 ? FY_PRIV_EDGE_ONLY : FY_PRIV_ANY;
        for (int i = 0; i < 4; i++) e.nodes[i].st.running = (int)rng_below(&r, 6);
        struct fy_plan out;
        CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
        if (e.prefs.privacy == FY_PRIV_EDGE_ONLY) {
            CHECK_EQ_INT(e.nodes[out.node].role, FY_ROLE_EDGE);
            CHECK(out.aux_node < 0 || e.nodes[out.aux_node].role == FY_ROLE_EDGE);
            CHECK(out.escalate_below <= 0 || e.nodes[out.escalate_node].role == FY_ROLE_EDGE);
        } else {
            cloud_when_allowed += e.nodes[out.node].role == FY_ROLE_CLOUD ||
                                  (out.aux_node >= 0 && e.nodes[out.aux_node].role == FY_ROLE_CLOUD);
        }
        struct fy_outcome o;
        memset(&o, 0, sizeof o);
        o.plan = out;
        o.e2e_ms = 500;
        o.quality = 1;
        p->observe(st, &e.c, &o);
    }
    CHECK(cloud_when_allowed > 0); /* the test would not notice a policy that never uses the cloud */
    /* with only cloud nodes, an edge-only request is refused rather than leaked */
    struct env c2;
    env_init(&c2, 0, 2);
    one_image(&c2.f, 0.5, 0.5);
    c2.prefs.privacy = FY_PRIV_EDGE_ONLY;
    struct fy_plan out;
    CHECK(p->decide(st, &c2.c, &out, NULL) < 0);
    p->free(st);
}

TEST(ferry_prefers_cheaper_plan_when_quality_allows)
{
    /* quality the same everywhere (priors equal): ferry takes the fastest plan, which
     * for a large image on a slow uplink is the edge; with a strict min_quality that
     * only the cloud's prior meets, it pays the latency */
    struct env e;
    env_init(&e, 1, 1);
    e.nodes[1].link.up_mbps = 5;
    struct pred *bank = pred_new(e.nodes, e.n);
    pred_set_quality_prior(bank, 0, 0.7);
    pred_set_quality_prior(bank, 1, 0.7);
    e.c.pred = bank;
    const struct fy_policy *p = pol_find("ferry");
    void *st = start("ferry", "eps=0,z=0,kappa=0");
    one_image(&e.f, 0.5, 0.5);
    struct fy_plan out;
    struct fy_estimate est;
    CHECK_EQ_INT(p->decide(st, &e.c, &out, &est), 0);
    CHECK_EQ_INT(out.node, 0);
    pred_set_quality_prior(bank, 1, 0.95);
    e.prefs.min_quality = 0.8;
    CHECK_EQ_INT(p->decide(st, &e.c, &out, &est), 0);
    CHECK_EQ_INT(out.node, 1);
    CHECK(est.q_mean >= 0.8);
    p->free(st);
    pred_free(bank);
}

TEST(cascade_answers_at_edge_escalates_to_best_cloud_and_respects_privacy)
{
    struct env e;
    env_init(&e, 2, 2);
    struct pred *bank = pred_new(e.nodes, e.n);
    CHECK(bank != NULL);
    pred_set_quality_prior(bank, 3, 0.9); /* cloud1 is the better cloud model */
    e.c.pred = bank;
    const struct fy_policy *p = pol_find("cascade");
    CHECK(p != NULL);
    void *st = start("cascade", "below=0.7");
    CHECK(st);
    one_image(&e.f, 0.5, 0.5);
    e.nodes[0].st.running = 3; /* edge1 is the less loaded edge */
    e.nodes[3].st.running = 4; /* the better cloud wins despite its load */
    struct fy_plan out;
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.node, 1);
    CHECK_EQ_INT(out.escalate_node, 3);
    CHECK(out.escalate_below > 0.69 && out.escalate_below < 0.71);
    CHECK_EQ_INT(out.img[0], FY_IMG_KEEP);
    /* edge-only requests are never escalated */
    e.prefs.privacy = FY_PRIV_EDGE_ONLY;
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(e.nodes[out.node].role, FY_ROLE_EDGE);
    CHECK(out.escalate_below <= 0);
    CHECK_EQ_INT(out.escalate_node, -1);
    e.prefs.privacy = FY_PRIV_ANY;
    /* to=load: the least loaded cloud instead */
    p->free(st);
    st = start("cascade", "to=load");
    CHECK(st);
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.escalate_node, 2);
    CHECK(out.escalate_below > 0.59 && out.escalate_below < 0.61); /* default below */
    /* no healthy cloud: plain edge plan; below=0: no cascade */
    e.nodes[2].st.healthy = e.nodes[3].st.healthy = 0;
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK(out.escalate_below <= 0);
    e.nodes[2].st.healthy = e.nodes[3].st.healthy = 1;
    p->free(st);
    st = start("cascade", "below=0");
    CHECK(st);
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK(out.escalate_below <= 0);
    /* edge-only request with no edge node: refused, not leaked */
    struct env c2;
    env_init(&c2, 0, 2);
    one_image(&c2.f, 0.5, 0.5);
    c2.prefs.privacy = FY_PRIV_EDGE_ONLY;
    CHECK(p->decide(st, &c2.c, &out, NULL) < 0);
    c2.prefs.privacy = FY_PRIV_ANY;
    CHECK_EQ_INT(p->decide(st, &c2.c, &out, NULL), 0);
    CHECK_EQ_INT(c2.nodes[out.node].role, FY_ROLE_CLOUD);
    p->free(st);
    void *bad = NULL;
    char err[256] = "";
    CHECK(p->init(&bad, "below=2", err, sizeof err) < 0);
    CHECK(strstr(err, "below=2") != NULL);
    CHECK(p->init(&bad, "to=up", err, sizeof err) < 0);
    pred_free(bank);
}

TEST(ferry_untrained_keeps_the_users_images)
{
    /* No observation yet: ferry must not drop or downscale an image on the strength of
     * its priors alone (what dropping costs is unknown until seen). Requests with one
     * or several images of various sizes and complexities, edge-only or not, nodes
     * idle or busy, a fast or a slow cloud link. */
    struct rng r;
    rng_seed(&r, 77);
    const char *params[] = {NULL, "cascade=0"};
    int nbad = 0;
    for (int pi = 0; pi < 2; pi++) {
        for (int it = 0; it < 300; it++) {
            struct env e;
            env_init(&e, 1 + (int)rng_below(&r, 2), 1 + (int)rng_below(&r, 2));
            struct pred *bank = pred_new(e.nodes, e.n); /* the gateway's shared, untrained bank */
            CHECK(bank != NULL);
            e.c.pred = bank;
            void *st = start("ferry", params[pi]);
            CHECK(st != NULL);
            const struct fy_policy *p = pol_find("ferry");
            one_image(&e.f, rng_uniform(&r), rng_uniform(&r));
            int big = (int)rng_below(&r, 3);
            e.f.nimages = 1 + (int)rng_below(&r, 3);
            for (int k = 0; k < e.f.nimages; k++) {
                e.f.img[k] = e.f.img[0];
                e.f.img[k].width = big == 2 ? 4032 : big == 1 ? 1920 : 640;
                e.f.img[k].height = big == 2 ? 3024 : big == 1 ? 1080 : 480;
                e.f.img[k].bytes = big == 2 ? 3000000 : big == 1 ? 600000 : 60000;
                e.f.img[k].c_img = rng_uniform(&r);
                e.f.img[k].tokens[FY_VT_QWEN2VL] = (e.f.img[k].width / 28) * (e.f.img[k].height / 28);
            }
            for (int i = 0; i < e.n; i++) {
                e.nodes[i].st.running = (int)rng_below(&r, 8);
                e.nodes[i].st.queued = (int)rng_below(&r, 3);
                if (e.nodes[i].role == FY_ROLE_CLOUD) e.nodes[i].link.up_mbps = rng_below(&r, 2) ? 5 : 100;
            }
            e.prefs.privacy = rng_below(&r, 3) == 0 ? FY_PRIV_EDGE_ONLY : FY_PRIV_ANY;
            e.prefs.slo_ms = rng_below(&r, 3) == 0 ? 2000 : 0;
            e.c.rng = NULL; /* no exploration draw: the rule itself */
            struct fy_plan out;
            CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
            int bad = 0;
            for (int k = 0; k < e.f.nimages; k++)
                bad += !(out.img[k] == FY_IMG_KEEP || out.img[k] == FY_IMG_SPLIT);
            nbad += bad > 0;
            p->free(st);
            pred_free(bank);
        }
    }
    CHECK_EQ_INT(nbad, 0); /* the policy before this rule dropped images in 89 of these */
    /* once the bank has seen that dropping is harmless, dropping is allowed again */
    struct env e;
    env_init(&e, 1, 1);
    struct pred *bank = pred_new(e.nodes, e.n);
    CHECK(bank != NULL);
    e.c.pred = bank;
    e.c.rng = NULL;
    one_image(&e.f, 0.5, 0.5);
    e.f.img[0].width = 4032;
    e.f.img[0].height = 3024;
    e.f.img[0].bytes = 3000000;
    e.f.img[0].tokens[FY_VT_QWEN2VL] = 144 * 108;
    e.nodes[1].link.up_mbps = 5;
    for (int i = 0; i < 200; i++) {
        struct fy_outcome o;
        memset(&o, 0, sizeof o);
        pol_plan_keep(&o.plan, i % 2);
        o.plan.img[0] = i % 4 < 2 ? FY_IMG_DROP : FY_IMG_KEEP;
        o.quality = (i / 4) % 10 < 7; /* 70 % right with or without the image */
        o.confidence = -1;
        o.first_quality = -1;
        o.e2e_ms = o.plan.img[0] == FY_IMG_DROP ? 300 : 3000;
        o.t_up_ms = o.plan.img[0] == FY_IMG_DROP ? 10 : 2000;
        o.t_decode_ms = 200;
        o.in_tokens = 100;
        o.out_tokens = 10;
        pred_observe(bank, &e.f, e.nodes, &o);
    }
    void *st = start("ferry", NULL);
    CHECK(st != NULL);
    struct fy_plan out;
    CHECK_EQ_INT(pol_find("ferry")->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.img[0], FY_IMG_DROP);
    pol_find("ferry")->free(st);
    pred_free(bank);
}

/* Feeds ferry n outcomes of cascade plans edge 0 -> cloud 1 whose first answers have
 * confidence 0.9 and are right (share right) or confidence 0.2 and are wrong. */
static void teach_cascades(const struct fy_policy *p, void *st, struct env *e, int n, double right)
{
    for (int i = 0; i < n; i++) {
        struct fy_outcome o;
        memset(&o, 0, sizeof o);
        pol_plan_keep(&o.plan, 0);
        o.plan.escalate_node = 1;
        o.plan.escalate_below = 0.6;
        int ok = (i % 10) < right * 10;
        o.confidence = ok ? 0.9 : 0.2;
        o.first_quality = ok;
        o.escalated = !ok;
        o.quality = 1;
        o.e2e_ms = ok ? 200 : 3000;
        p->observe(st, &e->c, &o);
    }
}

TEST(ferry_cascades_when_the_edge_is_fast_and_its_confident_answers_hold)
{
    struct env e;
    env_init(&e, 1, 1);
    struct pred *bank = pred_new(e.nodes, e.n);
    CHECK(bank != NULL);
    e.c.pred = bank;
    e.c.rng = NULL;
    one_image(&e.f, 0.5, 0.5);
    e.nodes[1].link.up_mbps = 1;   /* the cloud is seconds away, the edge is not */
    e.nodes[1].link.rtt_ms = 150;
    /* the bank knows both nodes well (the cloud is right 80 % of the time, the edge
     * 60 %): a cascade must compete with a well-known cloud */
    for (int i = 0; i < 600; i++) {
        struct fy_outcome o;
        memset(&o, 0, sizeof o);
        pol_plan_keep(&o.plan, i % 2);
        o.quality = (i / 2) % 10 < (i % 2 ? 8 : 6);
        o.confidence = o.first_quality = -1;
        o.e2e_ms = i % 2 ? 2500 : 600;
        o.t_up_ms = i % 2 ? 2000 : 5;
        o.t_decode_ms = i % 2 ? 400 : 500;
        o.in_tokens = 800;
        o.out_tokens = 20;
        pred_observe(bank, &e.f, e.nodes, &o);
    }
    const struct fy_policy *p = pol_find("ferry");
    void *st = start("ferry", NULL), *st0 = start("ferry", "cascade=0");
    CHECK(st && st0);
    struct fy_plan out;
    /* what it learns decides: confident edge answers that are right make the cascade
     * as good as the cloud and faster */
    teach_cascades(p, st, &e, 200, 0.6);
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK_EQ_INT(out.node, 0);
    CHECK_EQ_INT(out.escalate_node, 1);
    CHECK(out.escalate_below >= 0.5 && out.escalate_below <= 0.8);
    CHECK_EQ_INT(out.img[0], FY_IMG_KEEP);
    /* cascade=0 never plans one; edge-only requests never get one */
    CHECK_EQ_INT(p->decide(st0, &e.c, &out, NULL), 0);
    CHECK(out.escalate_below <= 0);
    e.prefs.privacy = FY_PRIV_EDGE_ONLY;
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK(out.escalate_below <= 0);
    CHECK_EQ_INT(out.node, 0);
    e.prefs.privacy = FY_PRIV_ANY;
    p->free(st);
    /* confident answers that are wrong as often as not: no cascade (its quality bound
     * falls short of the cloud's) */
    st = start("ferry", NULL);
    CHECK(st != NULL);
    for (int i = 0; i < 200; i++) {
        struct fy_outcome o;
        memset(&o, 0, sizeof o);
        pol_plan_keep(&o.plan, 0);
        o.plan.escalate_node = 1;
        o.plan.escalate_below = 0.6;
        o.confidence = 0.9;
        o.first_quality = i % 2;
        o.quality = i % 2;
        o.e2e_ms = 200;
        p->observe(st, &e.c, &o);
    }
    CHECK_EQ_INT(p->decide(st, &e.c, &out, NULL), 0);
    CHECK(out.escalate_below <= 0);
    CHECK_EQ_INT(out.node, 1);
    p->free(st);
    p->free(st0);
    pred_free(bank);
}
