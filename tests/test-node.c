/* test-node — the node service model against closed-form cases, links (bandwidth
 * changes mid-upload), and INI profiles (roofline derivation, line-numbered errors). */
#include "test.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "node/link.h"
#include "node/profile.h"
#include "node/service.h"
#include "util/rng.h"

/* ==== service model ================================================================ */

struct evlog {
    int n;
    uint64_t id[64];
    int ev[64];
    double t[64];
};

static void log_cb(void *arg, uint64_t id, int ev, double t)
{
    struct evlog *l = arg;
    if (l->n < 64) {
        l->id[l->n] = id;
        l->ev[l->n] = ev;
        l->t[l->n] = t;
        l->n++;
    }
}

/* Time of event ev for id in the log, or -1. */
static double ev_time(const struct evlog *l, uint64_t id, int ev)
{
    for (int i = 0; i < l->n; i++)
        if (l->id[i] == id && l->ev[i] == ev) return l->t[i];
    return -1;
}

static struct fy_node_profile test_profile(void)
{
    struct fy_node_profile p = {0};
    p.prefill_tps = 1000;        /* 1 ms per prompt token */
    p.decode_tps = 100;          /* 10 ms per output token at batch 1 */
    p.tpot_slope = 0.1;
    p.max_seqs = 4;
    p.vision_ms_per_token = 0.5;
    return p;
}

static void run_all(struct node_svc *s, struct evlog *l)
{
    for (int guard = 0; guard < 1000 && !isinf(node_svc_next_time(s)); guard++)
        node_svc_advance(s, node_svc_next_time(s), log_cb, l);
}

TEST(svc_one_request_ttft_is_vision_plus_prefill)
{
    struct fy_node_profile p = test_profile();
    struct node_svc *s = node_svc_new(&p, NULL);
    CHECK(s);
    struct evlog l = {0};
    CHECK_EQ_INT(node_svc_submit(s, 0, 7, 100, 200, 11), 0);
    run_all(s, &l);
    /* W = 200 * 0.5 + 1000 * (100 + 200) / 1000 = 400 ms; then 10 tokens at 10 ms */
    CHECK_NEAR(ev_time(&l, 7, NODE_EV_START), 0, 1e-9);
    CHECK_NEAR(ev_time(&l, 7, NODE_EV_FIRST_TOKEN), 400, 1e-9);
    CHECK_NEAR(ev_time(&l, 7, NODE_EV_DONE), 500, 1e-9);
    CHECK(isinf(node_svc_next_time(s)));
    CHECK_NEAR(node_svc_busy_ms(s), 500, 1e-9);
    node_svc_free(s);
}

TEST(svc_chunked_prefill_shares_the_device)
{
    struct fy_node_profile p = test_profile();
    struct node_svc_opts o;
    node_svc_opts_default(&o);
    o.prefill_share = 0.5;
    struct node_svc *s = node_svc_new(&p, &o);
    struct evlog l = {0};
    CHECK_EQ_INT(node_svc_submit(s, 0, 1, 100, 0, 11), 0);
    CHECK_EQ_INT(node_svc_submit(s, 0, 2, 100, 0, 11), 0);
    run_all(s, &l);
    /* A prefills alone (100 ms). B's prefill then runs at half speed (200 ms) while A
     * decodes at half speed: 10 tokens in 200 ms. B decodes alone afterwards. */
    CHECK_NEAR(ev_time(&l, 1, NODE_EV_FIRST_TOKEN), 100, 1e-9);
    CHECK_NEAR(ev_time(&l, 1, NODE_EV_DONE), 300, 1e-6);
    CHECK_NEAR(ev_time(&l, 2, NODE_EV_START), 0, 1e-9);
    CHECK_NEAR(ev_time(&l, 2, NODE_EV_FIRST_TOKEN), 300, 1e-6);
    CHECK_NEAR(ev_time(&l, 2, NODE_EV_DONE), 400, 1e-6);
    node_svc_free(s);
}

TEST(svc_batch_decoding_slows_each_sequence)
{
    struct fy_node_profile p = test_profile();
    struct node_svc *s = node_svc_new(&p, NULL);
    struct evlog l = {0};
    CHECK_EQ_INT(node_svc_submit(s, 0, 1, 0, 0, 11), 0);
    CHECK_EQ_INT(node_svc_submit(s, 0, 2, 0, 0, 11), 0);
    run_all(s, &l);
    /* tpot(2) = 10 * (1 + 0.1) = 11 ms; 10 tokens each */
    CHECK_NEAR(ev_time(&l, 1, NODE_EV_DONE), 110, 1e-6);
    CHECK_NEAR(ev_time(&l, 2, NODE_EV_DONE), 110, 1e-6);
    node_svc_free(s);
}

TEST(svc_queues_fifo_beyond_max_seqs)
{
    struct fy_node_profile p = test_profile();
    p.max_seqs = 1;
    struct node_svc *s = node_svc_new(&p, NULL);
    struct evlog l = {0};
    CHECK_EQ_INT(node_svc_submit(s, 0, 1, 50, 0, 6), 0);
    CHECK_EQ_INT(node_svc_submit(s, 0, 2, 50, 0, 6), 0);
    CHECK_EQ_INT(node_svc_submit(s, 0, 3, 50, 0, 6), 0);
    node_svc_advance(s, 0, log_cb, &l);
    struct fy_node_state st;
    node_svc_state(s, &st);
    CHECK_EQ_INT(st.running, 1);
    CHECK_EQ_INT(st.queued, 2);
    CHECK_NEAR(st.queued_tokens, 3 * (50 + 6), 1e-9);
    run_all(s, &l);
    /* each takes 50 + 5 * 10 = 100 ms alone */
    CHECK_NEAR(ev_time(&l, 2, NODE_EV_START), 100, 1e-9);
    CHECK_NEAR(ev_time(&l, 3, NODE_EV_START), 200, 1e-9);
    CHECK_NEAR(ev_time(&l, 3, NODE_EV_DONE), 300, 1e-9);
    CHECK(ev_time(&l, 2, NODE_EV_START) < ev_time(&l, 3, NODE_EV_START));
    node_svc_free(s);
}

TEST(svc_tokens_at_follows_the_decode_pace)
{
    struct fy_node_profile p = test_profile();
    struct node_svc *s = node_svc_new(&p, NULL);
    CHECK_EQ_INT(node_svc_submit(s, 0, 9, 20, 0, 50), 0);
    node_svc_advance(s, 10, NULL, NULL);
    CHECK_EQ_INT(node_svc_tokens_at(s, 9, 10), 0);    /* still in prefill */
    node_svc_advance(s, 20, NULL, NULL);               /* first token at 20 ms */
    CHECK_EQ_INT(node_svc_tokens_at(s, 9, 20), 1);
    CHECK_EQ_INT(node_svc_tokens_at(s, 9, 55), 4);     /* + 3 tokens at 10 ms */
    node_svc_advance(s, 100, NULL, NULL);
    CHECK_EQ_INT(node_svc_tokens_at(s, 9, 100), 9);
    CHECK_EQ_INT(node_svc_tokens_at(s, 12345, 100), -ENOENT);
    node_svc_free(s);
}

TEST(svc_cancel_frees_the_slot_and_speeds_up_the_rest)
{
    struct fy_node_profile p = test_profile();
    struct node_svc *s = node_svc_new(&p, NULL);
    struct evlog l = {0};
    CHECK_EQ_INT(node_svc_submit(s, 0, 1, 0, 0, 101), 0);
    CHECK_EQ_INT(node_svc_submit(s, 0, 2, 0, 0, 101), 0);
    node_svc_advance(s, 0, log_cb, &l);
    double both = node_svc_next_time(s);
    CHECK_NEAR(both, 100 * 11.0, 1e-6);
    node_svc_advance(s, 110, log_cb, &l);     /* 10 tokens each */
    CHECK_EQ_INT(node_svc_cancel(s, 110, 2), 0);
    CHECK_EQ_INT(node_svc_cancel(s, 110, 2), -ENOENT);
    /* the remaining 90 tokens of 1 now go at 10 ms */
    CHECK_NEAR(node_svc_next_time(s), 110 + 900, 1e-6);
    run_all(s, &l);
    CHECK(ev_time(&l, 2, NODE_EV_DONE) < 0);
    CHECK_NEAR(ev_time(&l, 1, NODE_EV_DONE), 1010, 1e-6);
    node_svc_free(s);
}

TEST(svc_rejects_time_travel_and_bad_args)
{
    struct fy_node_profile p = test_profile();
    struct node_svc *s = node_svc_new(&p, NULL);
    CHECK_EQ_INT(node_svc_submit(s, 10, 1, 10, 0, 5), 0);
    CHECK_EQ_INT(node_svc_advance(s, 5, NULL, NULL), -EINVAL);
    CHECK_EQ_INT(node_svc_submit(s, 10, 1, 10, 0, 5), -EEXIST);
    CHECK_EQ_INT(node_svc_submit(s, 10, 2, -1, 0, 5), -EINVAL);
    /* events pending before 100: must advance first */
    CHECK_EQ_INT(node_svc_submit(s, 100, 3, 1, 0, 1), -EINVAL);
    node_svc_free(s);
    p.decode_tps = 0;
    CHECK(node_svc_new(&p, NULL) == NULL);
}

TEST(svc_clone_runs_the_same_future)
{
    struct fy_node_profile p = test_profile();
    struct node_svc *s = node_svc_new(&p, NULL);
    for (int i = 0; i < 6; i++) CHECK_EQ_INT(node_svc_submit(s, 0, (uint64_t)i, 30 + i, 10, 8 + i), 0);
    node_svc_advance(s, 50, NULL, NULL);
    struct node_svc *c = node_svc_clone(s);
    CHECK(c);
    struct evlog a = {0}, b = {0};
    run_all(s, &a);
    run_all(c, &b);
    CHECK_EQ_INT(a.n, b.n);
    for (int i = 0; i < a.n; i++) {
        CHECK_EQ_INT(a.id[i], b.id[i]);
        CHECK_EQ_INT(a.ev[i], b.ev[i]);
        CHECK_NEAR(a.t[i], b.t[i], 0);
    }
    node_svc_free(s);
    node_svc_free(c);
}

/* M/D/1: Poisson arrivals, one slot, deterministic service S (prefill only, one output
 * token). Mean wait in queue Wq = rho S / (2 (1 - rho)) (Pollaczek-Khinchine). */
struct md1 { double *submit; double wait_sum; long n; };

static void md1_cb(void *arg, uint64_t id, int ev, double t)
{
    struct md1 *m = arg;
    if (ev != NODE_EV_START) return;
    m->wait_sum += t - m->submit[id];
    m->n++;
}

TEST(svc_md1_queueing_matches_pollaczek_khinchine)
{
    struct fy_node_profile p = test_profile();
    p.max_seqs = 1;
    p.prefill_tps = 1000;            /* S = 10 ms for 10 prompt tokens */
    struct node_svc *s = node_svc_new(&p, NULL);
    const long N = 200000;
    const double S = 10, rho = 0.3, lambda = rho / S;
    struct md1 m = {calloc((size_t)N, sizeof(double)), 0, 0};
    CHECK(m.submit);
    struct rng r;
    rng_seed(&r, 42);
    double t = 0;
    for (long i = 0; i < N; i++) {
        t += rng_exponential(&r, lambda);
        node_svc_advance(s, t, md1_cb, &m);
        m.submit[i] = t;
        CHECK_EQ_INT(node_svc_submit(s, t, (uint64_t)i, 10, 0, 1), 0);
    }
    node_svc_advance(s, t + 1e6, md1_cb, &m);
    CHECK_EQ_INT(m.n, N);
    double wq = rho * S / (2 * (1 - rho));   /* 2.142857 ms */
    CHECK_NEAR(m.wait_sum / m.n, wq, 0.05 * wq);
    free(m.submit);
    node_svc_free(s);
}

/* ==== links ======================================================================== */

TEST(link_constant_upload_time)
{
    struct link_spec sp = {.kind = LINK_CONST, .base = {.up_mbps = 100, .rtt_ms = 20}};
    char err[256];
    struct link *l = link_new(&sp, 1, err, sizeof err);
    CHECK(l);
    /* 1 MB = 8e6 bits at 1e5 bits/ms = 80 ms, + rtt/2 */
    CHECK_NEAR(link_upload_end(l, 1000, 1e6, 1, 0), 1000 + 80 + 10, 1e-9);
    CHECK_NEAR(link_down_ms(l), 10, 1e-12);
    link_free(l);
}

TEST(link_bandwidth_change_mid_upload)
{
    const char *path = test_tmp_path("bw.csv");
    FILE *fp = fopen(path, "w");
    CHECK(fp);
    fprintf(fp, "# t_s,mbps\nt_s,mbps\n0,100\n0.05,10\n1,100\n");
    fclose(fp);
    struct link_spec sp = {.kind = LINK_SERIES, .base = {.rtt_ms = 0}};
    snprintf(sp.series_path, sizeof sp.series_path, "%s", path);
    char err[256];
    struct link *l = link_new(&sp, 1, err, sizeof err);
    CHECK(l);
    /* 8e6 bits: 5e6 in the first 50 ms at 100 Mbps, 3e6 at 10 Mbps = 300 ms more */
    CHECK_NEAR(link_upload_end(l, 0, 1e6, 1, 0), 350, 1e-9);
    /* starting in the slow phase: 950 ms at 10 Mbps carry 9.5e6 bits > 8e6 */
    CHECK_NEAR(link_upload_end(l, 50, 1e6, 1, 0), 850, 1e-9);
    /* spanning the recovery at 1 s: 400 ms slow (4e6 bits), then 4e6 at 100 Mbps */
    CHECK_NEAR(link_upload_end(l, 600, 1e6, 1, 0), 1040, 1e-9);
    CHECK_NEAR(link_up_mbps_at(l, 5000), 100, 0);
    link_free(l);
}

TEST(link_series_errors_name_the_line)
{
    const char *path = test_tmp_path("bad.csv");
    FILE *fp = fopen(path, "w");
    fprintf(fp, "0,100\n2,50\n1,20\n");
    fclose(fp);
    struct link_spec sp = {.kind = LINK_SERIES};
    snprintf(sp.name, sizeof sp.name, "x");
    snprintf(sp.series_path, sizeof sp.series_path, "%s", path);
    char err[512];
    CHECK(link_new(&sp, 1, err, sizeof err) == NULL);
    CHECK(strstr(err, "bad.csv:3:") != NULL);

    /* a comment longer than any line buffer is one line (its tail was read as data, at
     * the wrong line number); the line of a bad value is exact after it */
    char comment[400];
    memset(comment, 'x', sizeof comment - 1);
    comment[0] = '#';
    comment[sizeof comment - 1] = '\0';
    fp = fopen(path, "w");
    fprintf(fp, "%s\nt_s,mbps\n0,100\n%s\n5,1e-300\n", comment, comment);
    fclose(fp);
    CHECK(link_new(&sp, 1, err, sizeof err) == NULL);
    CHECK(strstr(err, "bad.csv:5: expected \"t_s,mbps\" with t_s in [0, 1e+09] and mbps in "
                      "[0.001, 1e+07]"));
    /* a time is a number in range too (strtod took 1e300 s and hex) */
    fp = fopen(path, "w");
    fprintf(fp, "0,100\n1e300,5\n");
    fclose(fp);
    CHECK(link_new(&sp, 1, err, sizeof err) == NULL);
    CHECK(strstr(err, "bad.csv:2: expected \"t_s,mbps\" with t_s in [0, 1e+09]"));
    fp = fopen(path, "w");
    fprintf(fp, "%s\n0,100\n10,5\n", comment);
    fclose(fp);
    struct link *l = link_new(&sp, 1, err, sizeof err);
    CHECK(l != NULL);
    link_free(l);
    /* a directory is named as one (it said "no points") */
    snprintf(sp.series_path, sizeof sp.series_path, "%s", test_tmp_path(""));
    CHECK(link_new(&sp, 1, err, sizeof err) == NULL);
    CHECK(strstr(err, ": is a directory") != NULL);
}

TEST(link_markov_is_reproducible_and_query_order_free)
{
    struct link_spec sp = {.kind = LINK_MARKOV, .base = {.up_mbps = 300, .rtt_ms = 10},
                           .bad_mbps = 20, .good_s = 5, .bad_s = 2};
    char err[256];
    struct link *a = link_new(&sp, 77, err, sizeof err), *b = link_new(&sp, 77, err, sizeof err);
    CHECK(a && b);
    double late = link_up_mbps_at(b, 500000);   /* b jumps far ahead first */
    int bad = 0, good = 0;
    for (int i = 0; i <= 500; i++) {
        double t = i * 1000.0;
        double x = link_up_mbps_at(a, t), y = link_up_mbps_at(b, t);
        CHECK_NEAR(x, y, 0);
        CHECK(x == 300 || x == 20);
        bad += x == 20;
        good += x == 300;
    }
    CHECK_NEAR(link_up_mbps_at(a, 500000), late, 0);
    /* both states visited; bad about 2/7 of the time */
    CHECK(bad > 50 && good > 200);
    link_free(a);
    link_free(b);
}

TEST(link_views_table_from_lcio)
{
    struct link_spec sp = {.kind = LINK_VIEWS, .nviews = 4, .view_s = {0.5, 1.898, 2.016, 2.238}};
    char err[256];
    struct link *l = link_new(&sp, 1, err, sizeof err);
    CHECK(l);
    CHECK_NEAR(link_upload_end(l, 0, 1e6, 0, 0), 500, 1e-9);
    CHECK_NEAR(link_upload_end(l, 0, 1e6, 2, 0), 2016, 1e-9);
    CHECK_NEAR(link_upload_end(l, 0, 1e6, 9, 0), 2238, 1e-9);
    link_free(l);
}

/* ==== profiles ===================================================================== */

TEST(profile_roofline_derivation)
{
    struct node_lib lib;
    node_lib_init(&lib);
    char err[512];
    int rc = node_lib_load_dir(&lib, "data/profiles", err, sizeof err);
    if (rc < 0) fprintf(stderr, "%s\n", err);
    CHECK_EQ_INT(rc, 0);
    struct fy_node n;
    CHECK_EQ_INT(node_lib_resolve(&lib, "edge-3090", &n, err, sizeof err), 0);
    /* 0.6 * 936e9 / (1.5e9 * 2); 0.4 * 71e12 / (2 * 1.5e9); 1000 * 2 * 0.675e9 * 4 / (0.4 * 71e12) */
    CHECK_NEAR(n.prof.decode_tps, 187.2, 1e-9);
    CHECK_NEAR(n.prof.prefill_tps, 0.4 * 71e12 / 3e9, 1e-6);
    CHECK_NEAR(n.prof.vision_ms_per_token, 1000.0 * 2 * 0.675e9 * 4 / (0.4 * 71e12), 1e-12);
    CHECK_EQ_INT(n.role, FY_ROLE_EDGE);
    CHECK_EQ_INT(n.prof.vt_family, FY_VT_QWEN2VL);
    CHECK_NEAR(n.link.up_mbps, 1000, 0);
    CHECK_EQ_INT(node_lib_resolve(&lib, "cloud-api", &n, err, sizeof err), 0);
    CHECK_NEAR(n.prof.decode_tps, 80, 0);    /* measured override */
    CHECK_NEAR(n.prof.usd_per_mtok_out, 10, 0);
    const struct node_model *m = node_lib_find_model(&lib, "qwen2.5-vl-7b");
    CHECK(m);
    CHECK(node_model_cap(m, "vqa") > node_model_cap(node_lib_find_model(&lib, "qwen2-vl-2b"), "vqa"));
    CHECK_NEAR(node_model_cap(m, "no-such-skill"), m->cap_default, 0);
    node_lib_fini(&lib);
}

static int load_text(const char *name, const char *text, char *err, size_t errlen,
                     struct node_lib *lib)
{
    const char *path = test_tmp_path(name);
    FILE *fp = fopen(path, "w");
    if (!fp) return -2;
    fputs(text, fp);
    fclose(fp);
    return node_lib_load(lib, path, err, errlen);
}

/* The compiled-in defaults are the shipped default pair, field by field: whoever edits
 * data/profiles or node_profile_default sees the two part here. */
TEST(profile_builtin_default_is_the_shipped_pair)
{
    struct node_lib lib;
    node_lib_init(&lib);
    char err[512];
    int rc = node_lib_load_dir(&lib, "data/profiles", err, sizeof err);
    if (rc < 0) fprintf(stderr, "%s\n", err);
    CHECK_EQ_INT(rc, 0);
    static const struct { enum fy_role role; const char *node; } pair[] = {
        {FY_ROLE_EDGE, "edge-3090"}, {FY_ROLE_CLOUD, "cloud-a100"}};
    for (size_t i = 0; i < sizeof pair / sizeof pair[0]; i++) {
        struct fy_node n;
        CHECK_EQ_INT(node_lib_resolve(&lib, pair[i].node, &n, err, sizeof err), 0);
        CHECK_EQ_INT(n.role, pair[i].role);
        struct fy_node_profile d;
        struct fy_link l;
        node_profile_default(&d, pair[i].role);
        node_link_default(&l, pair[i].role);
        CHECK_STR(d.model, n.prof.model);
        CHECK_NEAR(d.prefill_tps, n.prof.prefill_tps, 1e-9);
        CHECK_NEAR(d.decode_tps, n.prof.decode_tps, 1e-9);
        CHECK_NEAR(d.tpot_slope, n.prof.tpot_slope, 0);
        CHECK_EQ_INT(d.max_seqs, n.prof.max_seqs);
        CHECK_NEAR(d.vision_ms_per_token, n.prof.vision_ms_per_token, 1e-12);
        CHECK_EQ_INT(d.context_limit, n.prof.context_limit);
        CHECK_EQ_INT(d.vt_family, n.prof.vt_family);
        CHECK_NEAR(d.usd_per_mtok_in, n.prof.usd_per_mtok_in, 0);
        CHECK_NEAR(d.usd_per_mtok_out, n.prof.usd_per_mtok_out, 0);
        CHECK_NEAR(d.usd_per_hour, n.prof.usd_per_hour, 0);
        CHECK_NEAR(l.up_mbps, n.link.up_mbps, 0);
        CHECK_NEAR(l.down_mbps, n.link.down_mbps, 0);
        CHECK_NEAR(l.rtt_ms, n.link.rtt_ms, 0);
        CHECK_NEAR(l.jitter_ms, n.link.jitter_ms, 0);
    }
    /* the figures profile.h quotes */
    struct fy_node_profile e, c;
    node_profile_default(&e, FY_ROLE_EDGE);
    node_profile_default(&c, FY_ROLE_CLOUD);
    CHECK_NEAR(e.decode_tps, 187.2, 1e-9);
    CHECK_NEAR(c.decode_tps, 0.6 * 1555e9 / 15.2e9, 1e-9);
    CHECK_EQ_INT(e.max_seqs, 16);
    CHECK_EQ_INT(c.max_seqs, 32);
    node_lib_fini(&lib);
}

/* Keys a [node] or [model] section leaves out take the default of the node's role. */
TEST(profile_missing_keys_take_the_roles_default)
{
    struct node_lib lib;
    node_lib_init(&lib);
    char err[512];
    const char *text = "[device d]\nmem_bw_gbs = 100\ntflops = 10\n"
                       "[model m]\nparams_b = 1\n"
                       "[node e]\ndevice = d\nmodel = m\n"
                       "[node c]\ndevice = d\nmodel = m\nrole = cloud\n"
                       "[node z]\ndevice = d\nmodel = m\nrole = cloud\ntpot_slope = 0\nmax_seqs = 3\n";
    CHECK_EQ_INT(load_text("defaults.ini", text, err, sizeof err, &lib), 0);
    struct fy_node_profile de, dc;
    node_profile_default(&de, FY_ROLE_EDGE);
    node_profile_default(&dc, FY_ROLE_CLOUD);
    struct fy_node n;
    CHECK_EQ_INT(node_lib_resolve(&lib, "e", &n, err, sizeof err), 0);
    CHECK_EQ_INT(n.prof.max_seqs, de.max_seqs);
    CHECK_NEAR(n.prof.tpot_slope, de.tpot_slope, 0);
    CHECK_EQ_INT(n.prof.context_limit, de.context_limit);
    CHECK_EQ_INT(node_lib_resolve(&lib, "c", &n, err, sizeof err), 0);
    CHECK_EQ_INT(n.prof.max_seqs, dc.max_seqs);
    CHECK_NEAR(n.prof.tpot_slope, dc.tpot_slope, 0);
    CHECK_EQ_INT(node_lib_resolve(&lib, "z", &n, err, sizeof err), 0);
    CHECK_EQ_INT(n.prof.max_seqs, 3);        /* given values stay, 0 included */
    CHECK_NEAR(n.prof.tpot_slope, 0, 0);
    node_lib_fini(&lib);
}

TEST(profile_errors_name_file_and_line)
{
    struct node_lib lib;
    node_lib_init(&lib);
    char err[512];
    CHECK_EQ_INT(load_text("a.ini", "[device d]\nmem_bw_gbs = 100\n\ntflop = 3\n", err, sizeof err, &lib), -1);
    CHECK(strstr(err, "a.ini:4:") && strstr(err, "tflop"));
    CHECK_EQ_INT(load_text("b.ini", "[model m]\nparams_b = many\n", err, sizeof err, &lib), -1);
    CHECK(strstr(err, "b.ini:2:") && strstr(err, "params_b"));
    CHECK_EQ_INT(load_text("c.ini", "; comment\n[gpu x]\nk = 1\n", err, sizeof err, &lib), -1);
    CHECK(strstr(err, "c.ini:3:") && strstr(err, "unknown section"));
    CHECK_EQ_INT(load_text("d.ini", "[node n]\nrole = fog\n", err, sizeof err, &lib), -1);
    CHECK(strstr(err, "d.ini:2:") && strstr(err, "edge or cloud"));
    CHECK_EQ_INT(load_text("e.ini", "[node n2]\ndevice = nope\nmodel = nope\n", err, sizeof err, &lib), 0);
    struct fy_node n;
    CHECK_EQ_INT(node_lib_resolve(&lib, "n2", &n, err, sizeof err), -1);
    CHECK(strstr(err, "e.ini:2:") && strstr(err, "device 'nope'")); /* first key of the section */
    CHECK_EQ_INT(load_text("f.ini", "[device d]\nmem_bw_gbs = 1\nthis line has no equals\n", err,
                           sizeof err, &lib), -1);
    CHECK(strstr(err, "f.ini:3:"));
    CHECK_EQ_INT(load_text("g.ini", "[device small]\nmem_bw_gbs = 100\ntflops = 10\nmem_gb = 8\n"
                           "[model big]\nparams_b = 7\nvision_params_b = 0.5\n"
                           "[node n3]\ndevice = small\nmodel = big\n", err, sizeof err, &lib), 0);
    CHECK_EQ_INT(node_lib_resolve(&lib, "n3", &n, err, sizeof err), -1);
    CHECK(strstr(err, "g.ini:9:") && strstr(err, "15.0 GB") && strstr(err, "8.0 GB"));
    /* a comment of any length is fine (it was "line too long"); a long value line is
     * refused with the limit and its line */
    char text[2048], longs[1001];
    memset(longs, 'w', sizeof longs - 1);
    longs[sizeof longs - 1] = '\0';
    snprintf(text, sizeof text, "; %s\n[device dl]\n# %s\nmem_bw_gbs = 5\n", longs, longs);
    CHECK_EQ_INT(load_text("h.ini", text, err, sizeof err, &lib), 0);
    CHECK(node_lib_find_device(&lib, "dl") && node_lib_find_device(&lib, "dl")->mem_bw_gbs == 5);
    snprintf(text, sizeof text, "[device dm]\ndescription = %s\n", longs);
    CHECK_EQ_INT(load_text("i.ini", text, err, sizeof err, &lib), -1);
    CHECK(strstr(err, "i.ini:2: line longer than ") && strstr(err, " characters"));
    node_lib_fini(&lib);
}

/* Values far outside any real device, model or link (a unit slip) are refused with the
 * range, instead of giving latencies of 1e62 ms; 0 still means "not given" for rates. */
TEST(profile_values_out_of_range_are_refused)
{
    static const struct { const char *text, *want; } bad[] = {
        {"[device d]\ntflops = 1e-300\n", "tflops = 1e-300: expected 0 or a number in [0.001, 1e+06]"},
        {"[device d]\nmem_bw_gbs = 1e300\n", "mem_bw_gbs = 1e300: expected 0 or a number in"},
        {"[model m]\nparams_b = 1e-300\n", "params_b = 1e-300: expected 0 or a number in [0.0001, 100000]"},
        {"[model m]\npatches_per_token = 1e300\n", "patches_per_token = 1e300: expected a number in [1, 10000]"},
        {"[link l]\nup_mbps = 1e-300\n", "up_mbps = 1e-300: expected a number in [0.001, 1e+07]"},
        /* a link's rates and sojourns: > 0 when given (up_mbps = 0 got through to the
         * first run: "link l: up_mbps must be > 0", without the line) */
        {"[link l]\nup_mbps = 0\n", "up_mbps = 0: expected a number in [0.001, 1e+07]"},
        {"[link l]\nbad_mbps = 0\n", "bad_mbps = 0: expected a number in [0.001, 1e+07]"},
        {"[link l]\ngood_s = 0\n", "good_s = 0: expected a number in [0.001, 1e+09]"},
        {"[device d]\neff_decode = 1e-300\n", "eff_decode = 1e-300: expected a number in [0.001, 1]"},
        {"[link l]\nrtt_ms = 1e300\n", "rtt_ms = 1e300: expected a number in [0, 1e+06]"},
        {"[link l]\nkind = views\nview_s = 1, 1e300\n", "value 2 is not a number in [0, 1e+06]"},
        /* strtod took hex and a trailing comma */
        {"[link l]\nview_s = 1, 0x10\n", "view_s = 1, 0x10: value 2 is not a number"},
        {"[link l]\nview_s = 1,\n", "view_s = 1,: value 2 is not a number"},
        {"[node n]\nmax_seqs = 1000000000\n", "max_seqs = 1000000000: expected an integer in [1, 1000000]"},
        {"[node n]\ntpot_slope = 1e300\n", "tpot_slope = 1e300: expected a number in [0, 100]"},
        {"[node n]\nusd_per_hour = 1e300\n", "usd_per_hour = 1e300: expected a number in [0, 1e+06]"},
        {"[node n]\ncache_saving = 1.5\n", "cache_saving = 1.5: expected a number in [0, 1]"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct node_lib lib;
        node_lib_init(&lib);
        int rc = load_text("r.ini", bad[i].text, err, sizeof err, &lib);
        node_lib_fini(&lib);
        if (rc != -1 || !strstr(err, bad[i].want) || !strstr(err, "r.ini:"))
            test_fail(__FILE__, __LINE__, "%s: rc %d, '%s'", bad[i].want, rc, err);
    }
    struct node_lib lib;
    node_lib_init(&lib);
    CHECK_EQ_INT(load_text("ok.ini", "[device d]\ntflops = 0\nmem_bw_gbs = 0.001\n"
                                     "[link l]\ndown_mbps = 0\n", err, sizeof err, &lib), 0);
    node_lib_fini(&lib);
}

/* What no single key shows is caught before a run, at the line that asked for it: a key
 * set twice in one file (an indented line continues the key above and replaced its value
 * silently), a link its kind cannot be built from (sim_run refused it without a line),
 * rates in range that derive a node no run can finish on. */
TEST(profile_whole_file_checks_name_the_line)
{
    static const struct { const char *text, *link, *want; } bad[] = {
        {"[node n]\nmax_seqs = 4\nrole = edge\nmax_seqs = 8\n", NULL,
         "w.ini:4: [node n] max_seqs: set again (first at line 2"},
        {"[link l]\nrtt_ms = 1\n  2\n", NULL, "w.ini:3: [link l] rtt_ms: set again"},
        {"[link l]\nrtt_ms = 1\nkind = markov\nup_mbps = 5\n", "l",
         "w.ini:3: link l: kind = markov needs up_mbps, bad_mbps, good_s, bad_s"},
        {"[link l]\nrtt_ms = 1\n", "l", "w.ini:2: link l: kind = const needs up_mbps > 0"},
        {"[link l]\nkind = series\nseries = no-such.csv\n", "l",
         "w.ini:3: link l: series file "},
        {"[link l]\nkind = views\n", "l", "w.ini:2: link l: kind = views needs view_s"},
    };
    char err[512];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct node_lib lib;
        node_lib_init(&lib);
        int rc = load_text("w.ini", bad[i].text, err, sizeof err, &lib);
        if (rc == 0 && bad[i].link) rc = node_lib_check_link(&lib, bad[i].link, err, sizeof err);
        node_lib_fini(&lib);
        if (rc != -1 || !strstr(err, bad[i].want))
            test_fail(__FILE__, __LINE__, "%s: rc %d, '%s'", bad[i].want, rc, err);
    }
    /* the same keys in two files: the later refines (experiment files rely on it) */
    struct node_lib lib;
    node_lib_init(&lib);
    CHECK_EQ_INT(load_text("a.ini", "[link l]\nup_mbps = 5\n", err, sizeof err, &lib), 0);
    CHECK_EQ_INT(load_text("b.ini", "[link l]\nup_mbps = 7\n", err, sizeof err, &lib), 0);
    CHECK_EQ_INT(node_lib_check_link(&lib, "l", err, sizeof err), 0);
    CHECK_NEAR(node_lib_find_link(&lib, "l")->base.up_mbps, 7, 0);
    /* every key in range, the node impossible: 0.001 GB/s for 200 GB of weights */
    CHECK_EQ_INT(load_text("c.ini", "[device d]\nmem_bw_gbs = 0.001\ntflops = 1\n"
                                    "[model m]\nparams_b = 100\n[node n]\ndevice = d\n"
                                    "model = m\n", err, sizeof err, &lib), 0);
    struct fy_node n;
    CHECK_EQ_INT(node_lib_resolve(&lib, "n", &n, err, sizeof err), -1);
    if (!strstr(err, "c.ini:7: [node n]: device d with model m derives decode 3e-06 tok/s"))
        test_fail(__FILE__, __LINE__, "derived rates: '%s'", err);
    node_lib_fini(&lib);
}

/* The quality predictor's prior per task: prior.<task>, else cap.<task> over the
 * reference difficulty N(0, 1.5²), else 0 (the role default); bad keys named. */
TEST(profile_task_priors_from_prior_keys_and_capabilities)
{
    /* σ(cap − d) averaged over d ~ N(0, 1.5²): 0.5 at cap 0, symmetric, shrunk toward
     * 0.5 against σ(cap) (the probit approximation σ(cap / sqrt(1 + π 1.5² / 8)) is
     * within 0.01) */
    CHECK_NEAR(node_cap_accuracy(0), 0.5, 1e-12);
    CHECK_NEAR(node_cap_accuracy(1) + node_cap_accuracy(-1), 1, 1e-12);
    CHECK_NEAR(node_cap_accuracy(2), 1 / (1 + exp(-2 / sqrt(1 + M_PI * 2.25 / 8))), 0.01);
    CHECK(node_cap_accuracy(2) < 1 / (1 + exp(-2.0)));
    struct node_lib lib;
    node_lib_init(&lib);
    char err[512];
    CHECK_EQ_INT(node_lib_load_dir(&lib, "data/profiles", err, sizeof err), 0);
    double q2[FY_TASK__N], q72[FY_TASK__N], q7[FY_TASK__N];
    node_model_task_priors(node_lib_find_model(&lib, "qwen2-vl-2b"), q2);
    node_model_task_priors(node_lib_find_model(&lib, "qwen2.5-vl-72b"), q72);
    node_model_task_priors(node_lib_find_model(&lib, "qwen2.5-vl-7b"), q7);
    CHECK_NEAR(q2[FY_TASK_OCR], node_cap_accuracy(0.2), 1e-12);   /* cap.ocr */
    CHECK_NEAR(q2[FY_TASK_OCR], 0.535, 0.001);
    CHECK_NEAR(q72[FY_TASK_OCR], 0.832, 0.001);
    CHECK(q2[FY_TASK_OCR] < q2[FY_TASK_CHAT] - 0.05);
    CHECK_NEAR(q2[FY_TASK_YESNO], 0.62, 0);                        /* prior.yesno */
    CHECK_NEAR(q7[FY_TASK_CAPTION], 0.77, 0);
    CHECK_NEAR(q2[FY_TASK_MCQ], 0, 0);      /* no prior.mcq, no cap.mcq: unknown ... */
    CHECK_NEAR(q72[FY_TASK_YESNO], 0, 0);   /* ... and `cap` alone does not count */
    /* a resolved node carries them */
    struct fy_node n;
    CHECK_EQ_INT(node_lib_resolve(&lib, "cloud-h100-72b", &n, err, sizeof err), 0);
    CHECK_NEAR(n.prof.q_prior[FY_TASK_OCR], q72[FY_TASK_OCR], 0);
    CHECK_NEAR(n.prof.q_prior[FY_TASK_CHAT], q72[FY_TASK_CHAT], 0);
    /* an explicit prior wins over the capability; a later file refines it */
    CHECK_EQ_INT(load_text("p.ini", "[model qwen2-vl-2b]\nprior.ocr = 0.3\n", err, sizeof err,
                           &lib), 0);
    node_model_task_priors(node_lib_find_model(&lib, "qwen2-vl-2b"), q2);
    CHECK_NEAR(q2[FY_TASK_OCR], 0.3, 0);
    node_lib_fini(&lib);
    node_lib_init(&lib);
    CHECK_EQ_INT(load_text("p.ini", "[model m]\ncap.chat = 1\n\nprior.poetry = 0.5\n", err,
                           sizeof err, &lib), -1);
    CHECK(strstr(err, "p.ini:4:") && strstr(err, "unknown task 'poetry'") &&
          strstr(err, "chat, caption, count, ocr, yesno, mcq, reason"));
    node_lib_fini(&lib);
    const char *bad[] = {"1", "0", "1.5", "-0.2", "high"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char text[128], want[64];
        snprintf(text, sizeof text, "[model m]\nprior.ocr = %s\n", bad[i]);
        snprintf(want, sizeof want, "prior.ocr = %s: expected an accuracy in (0, 1)", bad[i]);
        node_lib_init(&lib);
        int rc = load_text("q.ini", text, err, sizeof err, &lib);
        node_lib_fini(&lib);
        if (rc != -1 || !strstr(err, want) || !strstr(err, "q.ini:2:"))
            test_fail(__FILE__, __LINE__, "%s: rc %d, '%s'", want, rc, err);
    }
}

/* An empty profiles folder loads nothing and is no error here (the callers say what
 * they miss); under UBSan it passed NULL to qsort. */
TEST(profile_empty_folder_loads_nothing)
{
    char dir[512], err[256];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("no-profiles"));
    CHECK_EQ_INT(mkdir(dir, 0700), 0);
    struct node_lib lib;
    node_lib_init(&lib);
    CHECK_EQ_INT(node_lib_load_dir(&lib, dir, err, sizeof err), 0);
    CHECK_EQ_INT(lib.nnode + lib.ndev + lib.nmod + lib.nlnk, 0);
    node_lib_fini(&lib);
}
