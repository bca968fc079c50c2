/* test-policy — the policy registry and the baseline policies' decision rules. */
#include "test.h"

#include "policy/policy.h"
#include "util/rng.h"

static void mk_nodes(struct fy_node *n, int count)
{
    memset(n, 0, sizeof *n * (size_t)count);
    for (int i = 0; i < count; i++) {
        snprintf(n[i].name, sizeof n[i].name, "n%d", i);
        n[i].role = i % 2 ? FY_ROLE_CLOUD : FY_ROLE_EDGE; /* 0 edge, 1 cloud, 2 edge, ... */
        n[i].prof.max_seqs = 4;
        n[i].st.healthy = 1;
    }
}

struct fix {
    struct fy_node nodes[4];
    struct fy_features f;
    struct fy_prefs prefs;
    struct rng rng;
    struct pol_ctx c;
};

static void fix_init(struct fix *x)
{
    memset(x, 0, sizeof *x);
    mk_nodes(x->nodes, 4);
    x->f.nimages = 1;
    x->prefs.slo_ms = 0;
    rng_seed(&x->rng, 1);
    x->c.f = &x->f;
    x->c.prefs = &x->prefs;
    x->c.nodes = x->nodes;
    x->c.nnodes = 4;
    x->c.rng = &x->rng;
    x->c.session = "";
}

static int decide(const char *name, const char *params, const struct pol_ctx *c, struct fy_plan *p)
{
    const struct fy_policy *pol = pol_find(name);
    if (!pol) return -100;
    void *st = NULL;
    char err[256];
    if (pol->init(&st, params, err, sizeof err) < 0) return -101;
    int rc = pol->decide(st, c, p, NULL);
    pol->free(st);
    return rc;
}

TEST(policy_registry_lists_unique_names)
{
    const char *need[] = {"cloud-only", "edge-only", "random", "least-loaded", "oracle"};
    for (size_t i = 0; i < 5; i++) {
        const struct fy_policy *p = pol_find(need[i]);
        CHECK(p != NULL);
        CHECK_STR(p->name, need[i]);
        CHECK(p->init && p->decide && p->free && p->summary);
    }
    CHECK(pol_find("nope") == NULL);
    CHECK(pol_find(NULL) == NULL);
    int n = 0;
    for (const struct fy_policy *const *a = pol_all(); *a; a++, n++)
        for (const struct fy_policy *const *b = a + 1; *b; b++) CHECK(strcmp((*a)->name, (*b)->name) != 0);
    CHECK(n >= 5);
}

TEST(policy_role_baselines_pick_least_loaded_of_their_role)
{
    struct fix x;
    fix_init(&x);
    struct fy_plan p;
    x.nodes[1].st.running = 3;  /* cloud n1 busier than cloud n3 */
    x.nodes[3].st.running = 1;
    x.nodes[0].st.queued = 2;   /* edge n0 busier than edge n2 */
    CHECK_EQ_INT(decide("cloud-only", NULL, &x.c, &p), 0);
    CHECK_EQ_INT(p.node, 3);
    CHECK_EQ_INT(p.aux_node, -1);
    CHECK_EQ_INT(p.img[0], FY_IMG_KEEP);
    CHECK_EQ_INT(decide("edge-only", NULL, &x.c, &p), 0);
    CHECK_EQ_INT(p.node, 2);
    x.nodes[0].st.healthy = x.nodes[2].st.healthy = 0;
    CHECK(decide("edge-only", NULL, &x.c, &p) < 0);
    CHECK_EQ_INT(decide("cloud-only", "x=1", &x.c, &p), -101);
}

TEST(policy_least_loaded_over_all_or_one_role)
{
    struct fix x;
    fix_init(&x);
    struct fy_plan p;
    x.nodes[0].st.running = 4;
    x.nodes[1].st.running = 2;
    x.nodes[2].st.running = 3;
    x.nodes[3].st.running = 2;
    x.nodes[3].prof.max_seqs = 8; /* 2/8 is the lowest load */
    CHECK_EQ_INT(decide("least-loaded", NULL, &x.c, &p), 0);
    CHECK_EQ_INT(p.node, 3);
    CHECK_EQ_INT(decide("least-loaded", "role=edge", &x.c, &p), 0);
    CHECK_EQ_INT(p.node, 2);
    CHECK_EQ_INT(decide("least-loaded", "role=fog", &x.c, &p), -101);
    x.nodes[3].st.running = 4;   /* ties (n1 2/4 vs n3 4/8) go to the lower index */
    CHECK_EQ_INT(decide("least-loaded", NULL, &x.c, &p), 0);
    CHECK_EQ_INT(p.node, 1);
}

TEST(policy_random_follows_its_weights)
{
    struct fix x;
    fix_init(&x);
    const struct fy_policy *pol = pol_find("random");
    void *st;
    char err[256];
    CHECK_EQ_INT(pol->init(&st, "weights=1:3:0:0", err, sizeof err), 0);
    int count[4] = {0};
    for (int i = 0; i < 40000; i++) {
        struct fy_plan p;
        CHECK_EQ_INT(pol->decide(st, &x.c, &p, NULL), 0);
        count[p.node]++;
    }
    pol->free(st);
    CHECK_EQ_INT(count[2] + count[3], 0);
    CHECK_NEAR((double)count[1] / 40000, 0.75, 0.02);
    CHECK_EQ_INT(pol->init(&st, "p_cloud=1", err, sizeof err), 0);
    for (int i = 0; i < 1000; i++) {
        struct fy_plan p;
        CHECK_EQ_INT(pol->decide(st, &x.c, &p, NULL), 0);
        CHECK_EQ_INT(x.nodes[p.node].role, FY_ROLE_CLOUD);
    }
    pol->free(st);
    CHECK(pol->init(&st, "weights=1:-2", err, sizeof err) < 0);
    CHECK(strstr(err, "weights") != NULL);
    CHECK(pol->init(&st, "p_cloud", err, sizeof err) < 0);
    CHECK(strstr(err, "key=value") != NULL);
    CHECK(pol->init(&st, "p_cloud=", err, sizeof err) < 0); /* empty is not 0 */
    CHECK(strstr(err, "p_cloud") != NULL);
}

/* A fake truth: node i answers in (100 - 10 i) ms, correct only on nodes listed. */
struct truth { int correct[4]; int calls; };

static int fake_oracle(void *arg, const struct fy_plan *p, struct fy_estimate *t)
{
    struct truth *tr = arg;
    tr->calls++;
    memset(t, 0, sizeof *t);
    t->e2e_ms = 100 - 10 * p->node;
    if (p->img[0] == FY_IMG_DROP) t->e2e_ms -= 50;
    t->q_mean = tr->correct[p->node] && p->img[0] != FY_IMG_DROP;
    return 0;
}

TEST(policy_oracle_picks_the_fastest_correct_node)
{
    struct fix x;
    fix_init(&x);
    struct truth tr = {{1, 1, 0, 0}, 0};
    x.c.oracle = fake_oracle;
    x.c.oracle_arg = &tr;
    struct fy_plan p;
    CHECK_EQ_INT(decide("oracle", NULL, &x.c, &p), 0);
    CHECK_EQ_INT(p.node, 1);            /* n3 and n2 are faster but wrong */
    CHECK_EQ_INT(tr.calls, 4);
    x.prefs.slo_ms = 85;                /* n1 (90 ms) misses the SLO: nothing completes */
    CHECK_EQ_INT(decide("oracle", NULL, &x.c, &p), 0);
    CHECK_EQ_INT(p.node, 1);            /* highest quality, then fastest */
    x.prefs.slo_ms = 0;
    memset(tr.correct, 0, sizeof tr.correct);
    CHECK_EQ_INT(decide("oracle", NULL, &x.c, &p), 0);
    CHECK_EQ_INT(p.node, 3);            /* all wrong: the fastest */
    tr.correct[0] = 1;
    CHECK_EQ_INT(decide("oracle", "plans=all", &x.c, &p), 0);
    CHECK_EQ_INT(p.node, 0);            /* dropping would be faster but wrong */
    CHECK_EQ_INT(p.img[0], FY_IMG_KEEP);
    x.c.oracle = NULL;                  /* outside the simulator there is no truth */
    CHECK(decide("oracle", NULL, &x.c, &p) < 0);
}

struct kvs { int n; char k[4][128], v[4][128]; };

static int collect_kv(void *arg, const char *k, const char *v, char *err, size_t errlen)
{
    struct kvs *x = arg;
    if (!strcmp(k, "stop")) {
        snprintf(err, errlen, "stop here");
        return -1;
    }
    if (x->n < 4) {
        snprintf(x->k[x->n], 128, "%s", k);
        snprintf(x->v[x->n], 128, "%s", v);
        x->n++;
    }
    return 0;
}

TEST(policy_params_parser)
{
    struct kvs got = {0};
    char err[256];
    CHECK_EQ_INT(pol_params_each("a=1,,b=x=y", collect_kv, &got, err, sizeof err), 0);
    CHECK_EQ_INT(got.n, 2);
    CHECK_STR(got.k[0], "a");
    CHECK_STR(got.v[0], "1");
    CHECK_STR(got.k[1], "b");
    CHECK_STR(got.v[1], "x=y");
    CHECK_EQ_INT(pol_params_each(NULL, collect_kv, &got, err, sizeof err), 0);
    CHECK(pol_params_each("=3", collect_kv, &got, err, sizeof err) < 0);
    CHECK(pol_params_each("a=1,stop=1,c=2", collect_kv, &got, err, sizeof err) < 0);
    CHECK_STR(err, "stop here");
}
