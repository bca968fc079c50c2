/* bench-decide — decision time of the learned policies with 8 nodes (4 edge, 4 cloud)
 * and up to 4 modality plans per node (keep, downscale, drop, split), on one core,
 * against least-loaded (the cheapest real policy) measured in the same run. The
 * predictor bank is warmed with 2000 outcomes first so that its state is realistic.
 * Prints per policy: median and p95 µs per decision (over batches of 100 decisions on
 * rotating requests) and the ratio of medians vs least-loaded. Target (issue 4):
 * ferry < 20 µs median (default, and with min_obs=0: every plan type a candidate from the
 * first decision). Also lcio with learner=a2c (RC-A2C). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ferry.h"
#include "policy/policy.h"
#include "pred/pred.h"
#include "util/clock.h"
#include "util/rng.h"

#define NN 8
#define NREQ 64
#define BATCH 100
#define NBATCH 400

static void mk_node(struct fy_node *n, int i)
{
    memset(n, 0, sizeof *n);
    int cloud = i >= NN / 2;
    snprintf(n->name, sizeof n->name, "%s%d", cloud ? "cloud" : "edge", i);
    snprintf(n->prof.model, sizeof n->prof.model, "%s", cloud ? "qwen2.5-vl-7b" : "qwen2-vl-2b");
    n->role = cloud ? FY_ROLE_CLOUD : FY_ROLE_EDGE;
    n->prof.prefill_tps = cloud ? 9000 : 3000;
    n->prof.decode_tps = cloud ? 90 : 150;
    n->prof.tpot_slope = 0.04;
    n->prof.max_seqs = 8;
    n->prof.vision_ms_per_token = 0.03;
    n->prof.vt_family = FY_VT_QWEN2VL;
    n->prof.usd_per_mtok_in = cloud ? 0.2 : 0;
    n->prof.usd_per_mtok_out = cloud ? 0.6 : 0;
    n->link.up_mbps = cloud ? 300 : 1000;
    n->link.down_mbps = n->link.up_mbps;
    n->link.rtt_ms = cloud ? 30 : 2;
    n->st.healthy = 1;
}

static void mk_req(struct rng *r, struct fy_features *f)
{
    memset(f, 0, sizeof *f);
    f->task = (enum fy_task)rng_below(r, FY_TASK__N);
    f->text_tokens = f->last_text_tokens = 10 + (int)rng_below(r, 100);
    f->c_text = rng_uniform(r);
    f->nimages = 1;
    f->img[0].width = 640 + (int)rng_below(r, 1000);
    f->img[0].height = 480 + (int)rng_below(r, 600);
    f->img[0].bytes = 100000 + rng_below(r, 300000);
    f->img[0].c_img = rng_uniform(r);
    for (int k = 0; k < 12; k++) f->ngram[rng_below(r, FY_HASH_DIM)] = 0.28f;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(void)
{
    struct fy_node nodes[NN];
    for (int i = 0; i < NN; i++) mk_node(&nodes[i], i);
    static struct fy_features reqs[NREQ];
    struct rng r;
    rng_seed(&r, 42);
    for (int i = 0; i < NREQ; i++) mk_req(&r, &reqs[i]);
    struct pred *bank = pred_new(nodes, NN);
    for (int i = 0; i < 2000; i++) { /* warm the bank */
        struct fy_outcome o;
        memset(&o, 0, sizeof o);
        o.plan.node = i % NN;
        o.plan.aux_node = -1;
        o.quality = rng_uniform(&r) < 0.7;
        o.e2e_ms = 800 + 400 * rng_uniform(&r);
        o.t_prefill_ms = 100;
        o.t_decode_ms = o.e2e_ms - 120;
        o.t_up_ms = 20;
        o.out_tokens = 40;
        pred_observe(bank, &reqs[i % NREQ], nodes, &o);
    }
    struct fy_prefs prefs;
    memset(&prefs, 0, sizeof prefs);
    prefs.tradeoff = -1;
    prefs.min_quality = -1;
    prefs.max_cost_usd = -1;
    /* label, policy, params; ferry last (the target line) */
    const char *pols[][3] = {{"least-loaded", "least-loaded", NULL}, {"moa-off", "moa-off", NULL},
                             {"perllm", "perllm", NULL}, {"qlmio", "qlmio", NULL},
                             {"lcio", "lcio", NULL}, {"lcio a2c", "lcio", "learner=a2c"},
                             {"ferry all plans", "ferry", "min_obs=0"}, {"ferry", "ferry", NULL}};
    const int npol = (int)(sizeof pols / sizeof pols[0]);
    double med[16] = {0};
    printf("decision time, %d nodes (4 edge, 4 cloud), 1 image per request, %d batches of %d "
           "decisions\n", NN, NBATCH, BATCH);
    printf("%-16s %12s %12s %14s\n", "policy", "median us", "p95 us", "vs least-loaded");
    for (int p = 0; p < npol; p++) {
        const struct fy_policy *pol = pol_find(pols[p][1]);
        void *st = NULL;
        char err[256];
        if (!pol || pol->init(&st, pols[p][2], err, sizeof err) < 0) {
            fprintf(stderr, "bench-decide: %s: cannot start\n", pols[p][0]);
            return 1;
        }
        struct pol_ctx c = {.prefs = &prefs, .nodes = nodes, .nnodes = NN, .pred = bank,
                            .rng = &r, .session = ""};
        static double t[NBATCH];
        struct fy_plan out;
        long sink = 0;
        for (int b = 0; b < NBATCH; b++) {
            uint64_t t0 = clock_now_ns();
            for (int k = 0; k < BATCH; k++) {
                c.f = &reqs[(b * BATCH + k) % NREQ];
                nodes[k % NN].st.running = (b + k) % 5;
                if (pol->decide(st, &c, &out, NULL) == 0) sink += out.node;
            }
            t[b] = (double)(clock_now_ns() - t0) / BATCH / 1e3;
        }
        qsort(t, NBATCH, sizeof t[0], cmp_d);
        med[p] = t[NBATCH / 2];
        printf("%-16s %12.3f %12.3f %13.1fx%s\n", pols[p][0], med[p], t[NBATCH * 95 / 100],
               med[p] / med[0], sink < 0 ? "!" : "");
        pol->free(st);
    }
    printf("ferry target: < 20 us median: %s (all plans from the start: %s)\n",
           med[npol - 1] < 20 ? "met" : "NOT met", med[npol - 2] < 20 ? "met" : "NOT met");
    pred_free(bank);
    return 0;
}
