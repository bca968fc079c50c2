/* test-sim — the simulator: closed-form runs through the whole engine, calibration of
 * the quality model against MoA-Off Table 1, determinism, event ordering, shipped
 * experiments, trace output, line-numbered errors in experiment files. */
#include "test.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "feat/text.h"
#include "node/profile.h"
#include "policy/policy.h"
#include "pred/pred.h"
#include "pred/trace.h"
#include "sim/engine.h"
#include "sim/experiment.h"
#include "sim/quality.h"
#include "sim/stats.h"
#include "util/rng.h"

/* Builds the setup of an experiment file plus "a.b=v" overrides (NULL-terminated). */
static int build(struct sim_setup *s, const char *path, const char *const *sets, char *err,
                 size_t errlen)
{
    struct sim_entries es = {0};
    int rc = sim_entries_read(&es, path, err, errlen);
    for (int i = 0; rc == 0 && sets && sets[i]; i++)
        rc = sim_entries_add_dotted(&es, sets[i], "--set", 0, err, errlen);
    if (rc == 0) rc = sim_setup_build(s, path, &es, NULL, err, errlen);
    sim_entries_fini(&es);
    return rc;
}

static int run(const struct sim_setup *s, const char *policy, uint64_t seed, FILE *trace,
               struct sim_result *res)
{
    char err[512];
    struct sim_run_opts o = {.pol = pol_find(policy), .seed = seed, .trace = trace, .use_pred = -1};
    if (!o.pol) return -1;
    int rc = sim_run(s, &o, res, err, sizeof err);
    if (rc < 0) fprintf(stderr, "sim_run: %s\n", err);
    return rc;
}

/* build() on a setup of its own, run() policy with seed into res, then free the setup:
 * 0, or < 0 with the reason on stderr. */
static int build_and_run(const char *path, const char *const *sets, const char *policy,
                         uint64_t seed, struct sim_result *res)
{
    struct sim_setup *s = calloc(1, sizeof *s);
    if (!s) return -1;
    char err[512];
    int rc = build(s, path, sets, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "%s: %s\n", path, err);
    } else {
        rc = run(s, policy, seed, NULL, res);
        sim_setup_fini(s);
    }
    free(s);
    return rc;
}

/* A temporary data folder: the shipped profiles and image pool, plus given files. */
static const char *tmp_data(void)
{
    static char dir[512];
    if (dir[0]) return dir;
    snprintf(dir, sizeof dir, "%s", test_tmp_path("data"));
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/experiments' '%s/workloads' && cp -r data/profiles '%s/' "
             "&& cp data/workloads/*.ini data/workloads/images.csv '%s/workloads/'", dir, dir, dir, dir);
    if (system(cmd) != 0) dir[0] = '\0';
    return dir;
}

static const char *write_file(const char *rel, const char *text)
{
    static char path[1024];
    snprintf(path, sizeof path, "%s/%s", tmp_data(), rel);
    FILE *fp = fopen(path, "w");
    if (!fp) return NULL;
    fputs(text, fp);
    fclose(fp);
    return path;
}

/* One node, one class with fixed lengths (sigma 0), one request. */
static const char *k_single =
    "[experiment]\nname = single\nworkload = fixed\nnodes = n\nrequests = 1\n"
    "policies = least-loaded\n"
    "[device d]\nmem_bw_gbs = 1000\ntflops = 100\n"
    "[model m]\nparams_b = 1\nvt_family = qwen2vl\ncap = 1\n"
    "[link l]\nup_mbps = 100\nrtt_ms = 20\njitter_ms = 0\n"
    "[node n]\ndevice = d\nmodel = m\nlink = l\nprefill_tps = 1000\ndecode_tps = 50\n"
    "vision_ms_per_token = 0.5\nmax_seqs = 4\n";

static const char *k_fixed_wl =
    "[workload]\nname = fixed\n"
    "[class q]\nskill = x\nprompt_tokens = 100\nprompt_sigma = 0\nout_tokens = 11\n"
    "out_sigma = 0\nimage_prefix = flat-gray\n";

TEST(sim_one_request_ttft_is_upload_plus_prefill)
{
    CHECK(write_file("workloads/fixed.ini", k_fixed_wl));
    const char *exp = write_file("experiments/single.ini", k_single);
    CHECK(exp);
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *r = calloc(1, sizeof *r);
    char err[512] = "";
    int rc = build(s, exp, NULL, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CHECK_EQ_INT(rc, 0);
    CHECK_EQ_INT(run(s, "least-loaded", 1, NULL, r), 0);
    CHECK_EQ_INT(r->requests, 1);
    /* flat-gray-256.webp: 178 bytes, 81 Qwen2-VL tokens (256x256 -> 252x252 / 28^2) */
    double bytes = 512 + 4 * 100 + 178 * 4.0 / 3.0;
    double up = 10 + bytes * 8 / 1e5;                 /* rtt/2 + bits / (100 Mbps) */
    double prefill = 81 * 0.5 + 1000.0 * (100 + 81) / 1000;
    double down = 10;
    CHECK_NEAR(r->sum_ttft_ms, up + prefill + down, 1e-6);
    CHECK_NEAR(r->sum_e2e_ms, up + prefill + 10 * 20.0 + down, 1e-6); /* 10 more tokens at 20 ms */
    CHECK_NEAR(r->sum_up_ms, up, 1e-6);
    CHECK_NEAR(r->sum_queue_ms, 0, 1e-9);
    CHECK_NEAR(r->sum_vision_ms + r->sum_prefill_ms, prefill, 1e-6);
    CHECK_NEAR(r->sum_vision_ms, 81 * 0.5, 1e-6);
    sim_setup_fini(s);
    free(s);
    free(r);
}

/* MoA-Off Table 1 (as quoted in issue 3): Qwen2-VL-2B 61-63 % and Qwen2.5-VL-7B 76-78 %
 * on VQAv2, 58-61 % and 75-77 % on MMBench. The shipped workloads must reproduce them. */
TEST(sim_calibration_reproduces_moaoff_table1)
{
    struct { const char *exp, *policy; double lo, hi; } cases[] = {
        {"data/experiments/moaoff-vqav2.ini", "edge-only", 61, 63},
        {"data/experiments/moaoff-vqav2.ini", "cloud-only", 76, 78},
        {"data/experiments/moaoff-mmbench.ini", "edge-only", 58, 61},
        {"data/experiments/moaoff-mmbench.ini", "cloud-only", 75, 77},
    };
    const char *sets[] = {"experiment.requests=40000", "arrivals.rate_rps=1", NULL};
    struct sim_result *r = calloc(1, sizeof *r);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sim_setup *s = calloc(1, sizeof *s);
        char err[512];
        CHECK_EQ_INT(build(s, cases[i].exp, sets, err, sizeof err), 0);
        CHECK_EQ_INT(run(s, cases[i].policy, 11, NULL, r), 0);
        double acc = 100.0 * r->correct / r->requests;
        if (!(acc >= cases[i].lo && acc <= cases[i].hi))
            fprintf(stderr, "  %s %s: accuracy %.2f %%\n", cases[i].exp, cases[i].policy, acc);
        CHECK(acc >= cases[i].lo && acc <= cases[i].hi);
        sim_setup_fini(s);
        free(s);
    }
    free(r);
}

TEST(sim_same_seed_same_result_other_seed_differs)
{
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b), *c = calloc(1, sizeof *c);
    char err[512];
    const char *sets[] = {"experiment.requests=3000", NULL};
    CHECK_EQ_INT(build(s, "data/experiments/hetero.ini", sets, err, sizeof err), 0);
    CHECK_EQ_INT(run(s, "random", 5, NULL, a), 0);
    CHECK_EQ_INT(run(s, "random", 5, NULL, b), 0);
    CHECK_EQ_INT(run(s, "random", 6, NULL, c), 0);
    a->decide_ns = b->decide_ns = c->decide_ns = 0; /* wall clock, not part of the result */
    CHECK(memcmp(a, b, sizeof *a) == 0);
    CHECK(memcmp(a, c, sizeof *a) != 0);
    sim_setup_fini(s);
    free(s);
    free(a);
    free(b);
    free(c);
}

TEST(sim_cli_output_is_byte_identical)
{
    const char *bin = test_ferry_bin();
    CHECK(access(bin, X_OK) == 0);
    char cmd[4096], out1[600], out2[600];
    snprintf(out1, sizeof out1, "%s", test_tmp_path("out1.txt"));
    snprintf(out2, sizeof out2, "%s", test_tmp_path("out2.txt"));
    const char *args = "data/experiments/dialogue.ini --requests 300 --seeds 2 --no-timing";
    snprintf(cmd, sizeof cmd, "%s sim %s > %s && %s sim %s > %s && cmp -s %s %s", bin, args, out1,
             bin, args, out2, out1, out2);
    CHECK_EQ_INT(system(cmd), 0);
    FILE *fp = fopen(out1, "r");
    CHECK(fp);
    char line[512];
    int rows = 0;
    while (fgets(line, sizeof line, fp)) rows += !strncmp(line, "oracle", 6);
    fclose(fp);
    CHECK(rows >= 2); /* the main table and the node table */
}

TEST(sim_cli_refuses_an_option_without_its_partner)
{
    CHECK_CLI("sim data/experiments/dialogue.ini --png", 2, "--png needs --plot DIR");
    CHECK_CLI("sim data/experiments/dialogue.ini --out x.csv", 2,
              "--out goes with --image-pool DIR");
    CHECK_CLI("sim data/experiments/dialogue.ini --counterfactual", 2,
              "--counterfactual needs --trace FILE");
    CHECK_CLI("sim data/experiments/dialogue.ini --counterfactual-plans", 2,
              "--counterfactual-plans needs --trace FILE");
    /* a bad option value is a usage error too (2), named with its option */
    CHECK_CLI("sim data/experiments/dialogue.ini --seeds 0", 2,
              "--seeds 0: expected an integer in [1, 10000]");
    CHECK_CLI("sim data/experiments/dialogue.ini --requests 2.5", 2, "--requests 2.5");
    /* counts in the experiment are whole numbers too (2.5 seeds were silently 2) */
    CHECK_CLI("sim data/experiments/dialogue.ini --set experiment.seeds=2.5", 1,
              "--set experiment.seeds=2.5: seeds = 2.5: expected an integer");
    CHECK_CLI("sim data/experiments/dialogue.ini --set arrivals.users=2.5", 1,
              "users = 2.5: expected an integer");
    CHECK_CLI("sim data/experiments/dialogue.ini --set experiment.requests=1e2.5", 1,
              "requests = 1e2.5");
}

/* A bad value is refused when the experiment is resolved, named by the --set that gave
 * it, before any run: each of these got through to a run (a link's "up_mbps must be > 0"
 * and a policy's params without their origin, after the runs before them), or ran and
 * printed nonsense (every latency 0.0 ms at rate_rps = 1e-300, 3e62 ms at eff_decode =
 * 1e-300), or was named without its --set. */
TEST(sim_cli_bad_values_are_named_by_their_set_before_any_run)
{
    static const struct { const char *set, *want; } bad[] = {
        {"link.wan-200.up_mbps=0", "--set link.wan-200.up_mbps=0: up_mbps = 0: expected a "
                                   "number in [0.001, 1e+07]"},
        {"link.wan-300.kind=markov", "--set link.wan-300.kind=markov: link wan-300: kind = "
                                     "markov needs up_mbps, bad_mbps, good_s, bad_s all > 0"},
        {"experiment.params.cloud-only=k=1", "--set experiment.params.cloud-only=k=1: "
                                             "params.cloud-only: policy cloud-only: "},
        {"experiment.pred_model=no-such.fy", "--set experiment.pred_model=no-such.fy: "
                                             "pred_model: "},
        {"arrivals.rate_rps=1e-300", "requests = 10 at these [arrivals] (rate_rps) would take "
                                     "1e+301 s of simulated time; at most 1e+09"},
        {"class.yesno.images_max=0", "--set class.yesno.images_max=0: workload vqav2-like: "
                                     "[class yesno] images_max = 0 is below images_min = 1"},
        {"device.a100-40gb.eff_decode=1e-300", "--set device.a100-40gb.eff_decode=1e-300: "},
        /* a class typo made a class of its own (weight 1, default sizes) and ran */
        {"class.yesnoo.weight=2", "--set class.yesnoo.weight=2: [class yesnoo]: workload "
                                  "vqav2-like has no class yesnoo (yesno, number, other)"},
        {"experiment.nodes=edge-3090,nope", "--set experiment.nodes=edge-3090,nope: nodes: "
                                            "node 'nope' is not defined"},
        {"sweep.values=", "--set sweep.values=: [sweep]: needs both key and values"},
        /* "until duration_s" at 1e6/s for 1e6 s: 1e12 requests, it ran on and grew */
        {"experiment.duration_s=1e6 --set experiment.requests=0 --set arrivals.rate_rps=1e6",
         "duration_s = 1e+06 at these [arrivals] (1e+06 requests/s on average) would bring "
         "1e+12 requests; at most 1e+10"},
        /* a typo in a profile name made a new, unused node and changed nothing */
        {"node.edge-309.max_seqs=8", "--set node.edge-309.max_seqs=8: [node edge-309]: no such "
                                     "node (edge-3090, cloud-a100, "},
        /* a name with dots: the key is the last component (it was "5-vl-7b.params_b" of a
         * model "qwen2"), cap.SKILL and prior.TASK whole */
        {"model.qwen2.5-vl-7b.params_b=1e9", "--set model.qwen2.5-vl-7b.params_b=1e9: params_b "
                                             "= 1e9: expected 0 or a number in"},
        {"model.qwen2.5-vl-7b.cap.vqa=x", "--set model.qwen2.5-vl-7b.cap.vqa=x: cap.vqa = x: "},
        {"workload.image_pool=no-such.csv", "--set workload.image_pool=no-such.csv: image pool "},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char args[512];
        snprintf(args, sizeof args, "sim data/experiments/moaoff-vqav2.ini --requests 10 "
                 "--seeds 1 --policies random,cloud-only --set %s", bad[i].set);
        CHECK_CLI(args, 1, bad[i].want);
    }
    /* an image-pool row is checked column by column (sscanf took 1e300 pixels as an int,
     * nan scores, and whatever followed the last column) */
    static const struct { const char *row, *want; } rows[] = {
        {"a.png,png,1e300,500,1,1,1,1,0.5,0.5,0.5,0.5,0.5,1,1,1", "column 'width' = '1e300'"},
        {"a.png,png,800,500,1,1,1,1,nan,0.5,0.5,0.5,0.5,1,1,1", "column 'c_res' = 'nan'"},
        {"a.png,png,800,500,1,1,1,1,0.5,0.5,0.5,0.5,0.5,1,1,1,7", "expected 16 comma-separated"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char pool[600], text[300], cmd[1200];
        snprintf(pool, sizeof pool, "%s", test_tmp_path("bad-pool.csv"));
        snprintf(text, sizeof text, "# a pool\n%s\n", rows[i].row);
        CHECK(test_write_file(pool, text) == 0);
        snprintf(cmd, sizeof cmd, "sim data/experiments/moaoff-vqav2.ini --requests 10 --seeds 1 "
                 "--set 'workload.image_pool=%s'", pool);
        CHECK_CLI(cmd, 1, "bad-pool.csv:2: ", rows[i].want);
    }
    /* `sim --nodes DIR` checks the nodes' links as an experiment would */
    char dir[600], args[800];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("nodes-profiles"));
    CHECK(mkdir(dir, 0700) == 0 || errno == EEXIST);
    snprintf(args, sizeof args, "%s/p.ini", dir);
    CHECK(test_write_file(args, "[device d]\nmem_bw_gbs = 100\ntflops = 10\n[model m]\n"
                                "params_b = 1\n[link l]\nkind = markov\nup_mbps = 10\n"
                                "[node n]\ndevice = d\nmodel = m\nlink = l\n") == 0);
    snprintf(args, sizeof args, "sim --nodes '%s'", dir);
    CHECK_CLI(args, 1, "p.ini:7: link l: kind = markov needs up_mbps, bad_mbps, good_s, bad_s");
}

TEST(sim_cli_image_pool_measures_images_and_names_the_bad_ones)
{
    const char *bin = test_ferry_bin();
    CHECK(access(bin, X_OK) == 0);
    /* one image, one cut-off JPEG, one text file */
    char dir[512], csv[600], errf[600], cmd[8192];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("pool"));
    snprintf(csv, sizeof csv, "%s/../pool.csv", dir);
    snprintf(errf, sizeof errf, "%s/../pool.err", dir);
    snprintf(cmd, sizeof cmd, "mkdir -p '%s' && cp '%s/images/photo-cat-chelsea.png' '%s/' && "
             "head -c 300 '%s/images/photo-boats-evening.jpg' > '%s/cut.jpg' && "
             "echo notes > '%s/notes.txt' && %s sim --image-pool '%s' --out '%s' 2> '%s'",
             dir, test_shared_dir(), dir, test_shared_dir(), dir, dir, bin, dir, csv, errf);
    CHECK_EQ_INT(system(cmd), 0);
    FILE *fp = fopen(csv, "r");
    CHECK(fp);
    char line[1024];
    int rows = 0, cat = 0;
    while (fgets(line, sizeof line, fp)) {
        rows++;
        cat += !strncmp(line, "photo-cat-chelsea.png,png,451,300,", 34);
    }
    fclose(fp);
    CHECK_EQ_INT(rows, 2); /* header and the one image */
    CHECK_EQ_INT(cat, 1);
    fp = fopen(errf, "r");
    CHECK(fp);
    int cut = 0, notes = 0;
    while (fgets(line, sizeof line, fp)) {
        cut += strstr(line, "cut.jpg") && strstr(line, "(skipped)");
        notes += strstr(line, "notes.txt") != NULL;
    }
    fclose(fp);
    CHECK_EQ_INT(cut, 1);
    CHECK_EQ_INT(notes, 0); /* not an image: left out without a word */
}

/* The prior P(complete) of task column `task` in node `node`'s row of the prior table
 * of `ferry sim --nodes` output `out`; -1 when the table, column or row is absent.
 * *role_default: 1 when the value is marked '*' (the role default). */
static double nodes_prior(const char *out, const char *node, const char *task, int *role_default)
{
    const char *tab = strstr(out, "\nprior P(complete) per task");
    const char *hdr = tab ? strchr(tab + 1, '\n') : NULL;
    if (!hdr) return -1;
    hdr++;
    /* the header's words: node, model, then one per task */
    int col = -1, k = 0;
    for (const char *p = hdr; *p && *p != '\n' && col < 0; k++) {
        while (*p == ' ') p++;
        size_t n = strcspn(p, " \n");
        if (n == strlen(task) && !strncmp(p, task, n)) col = k;
        p += n;
    }
    char key[80];
    snprintf(key, sizeof key, "\n%s ", node);
    const char *row = strstr(hdr, key);
    if (col < 2 || !row) return -1;
    row++;
    for (k = 0; k < col; k++) {           /* skip to word `col` of the row */
        row += strcspn(row, " \n");
        while (*row == ' ') row++;
    }
    char *end;
    double v = strtod(row, &end);
    if (end == row) return -1;
    *role_default = *end == '*';
    return v;
}

TEST(sim_cli_nodes_lists_the_prior_quality_per_task)
{
    const char *bin = test_ferry_bin();
    CHECK(access(bin, X_OK) == 0);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s sim --nodes data/profiles", bin);
    FILE *p = popen(cmd, "r");
    CHECK(p);
    static char out[16384];
    size_t n = fread(out, 1, sizeof out - 1, p);
    out[n] = 0;
    int st = pclose(p);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0);
    /* every cell is the node's pred_node_prior, '*' where its model has none */
    struct node_lib lib;
    node_lib_init(&lib);
    char err[768];
    CHECK_EQ_INT(node_lib_load_dir(&lib, "data/profiles", err, sizeof err), 0);
    static const char *const names[] = {"edge-3090", "cloud-h100-72b"};
    double ocr[2] = {-1, -1};
    int cells = 0;
    for (int i = 0; i < 2; i++) {
        struct fy_node nd;
        CHECK_EQ_INT(node_lib_resolve(&lib, names[i], &nd, err, sizeof err), 0);
        for (int t = 0; t < FY_TASK__N; t++) {
            int dflt = -1;
            double v = nodes_prior(out, names[i], feat_task_name((enum fy_task)t), &dflt);
            int own = nd.prof.q_prior[t] > 0 && nd.prof.q_prior[t] < 1;
            cells += fabs(v - pred_node_prior(&nd, t)) < 5e-4 && dflt == !own;
            if (t == FY_TASK_OCR) ocr[i] = v;
        }
    }
    node_lib_fini(&lib);
    CHECK_EQ_INT(cells, 2 * FY_TASK__N);
    /* the 2B model (edge-3090) reads text worse than the 72B (cloud-h100-72b): both
     * from their models' cap.ocr (0.2 and 2.2), not the role defaults */
    int d2 = -1, d72 = -1;
    CHECK(nodes_prior(out, "edge-3090", "ocr", &d2) > 0);
    CHECK(nodes_prior(out, "cloud-h100-72b", "ocr", &d72) > 0);
    CHECK_EQ_INT(d2, 0);
    CHECK_EQ_INT(d72, 0);
    CHECK(ocr[0] > 0 && ocr[0] < ocr[1] && ocr[1] < 1);
    /* a task without prior.T or cap.T: the role default, marked */
    int dm = -1;
    CHECK_NEAR(nodes_prior(out, "cloud-h100-72b", "mcq", &dm), PRED_PRIOR_CLOUD, 5e-4);
    CHECK_EQ_INT(dm, 1);
    CHECK_NEAR(nodes_prior(out, "edge-3090", "yesno", &dm), 0.62, 5e-4);   /* prior.yesno */
    CHECK_EQ_INT(dm, 0);
}

TEST(sim_policies_see_the_same_requests)
{
    /* common random numbers: request content does not depend on the policy, so the
     * oracle is never less accurate than any fixed-node policy */
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *r = calloc(1, sizeof *r);
    char err[512];
    const char *sets[] = {"experiment.requests=2000", NULL};
    CHECK_EQ_INT(build(s, "data/experiments/dialogue.ini", sets, err, sizeof err), 0);
    long n = -1, best_correct = 0;
    const char *pols[] = {"cloud-only", "edge-only", "least-loaded"};
    for (int i = 0; i < 3; i++) {
        CHECK_EQ_INT(run(s, pols[i], 3, NULL, r), 0);
        if (n >= 0) CHECK_EQ_INT(r->requests, n);
        n = r->requests;
        if (r->correct > best_correct) best_correct = r->correct;
    }
    CHECK_EQ_INT(run(s, "oracle", 3, NULL, r), 0);
    CHECK_EQ_INT(r->requests, n);
    CHECK(r->correct >= best_correct);
    sim_setup_fini(s);
    free(s);
    free(r);
}

TEST(sim_closed_user_waits_for_its_answer)
{
    /* one user of a closed population: each request arrives after the previous one's
     * answer (event ordering through completion -> think -> next arrival) */
    const char *exp = "data/experiments/moaoff-vqav2.ini";
    const char *sets[] = {"experiment.requests=200", "arrivals.process=closed", "arrivals.users=1",
                          "arrivals.think_s=0.5", NULL};
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *r = calloc(1, sizeof *r);
    char err[512];
    CHECK_EQ_INT(build(s, exp, sets, err, sizeof err), 0);
    const char *tpath = test_tmp_path("closed.jsonl");
    FILE *tf = fopen(tpath, "w");
    CHECK(tf);
    CHECK_EQ_INT(run(s, "least-loaded", 2, tf, r), 0);
    fclose(tf);
    CHECK_EQ_INT(r->requests, 200);
    struct trace_record *recs = NULL;
    size_t n = 0;
    CHECK_EQ_INT(trace_read_file(tpath, 0, &recs, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 200);
    for (size_t i = 1; i < n; i++) {
        double prev_end = recs[i - 1].t_ms + recs[i - 1].out[0].o.e2e_ms;
        if (!(recs[i].t_ms >= prev_end - 1e-6)) {
            fprintf(stderr, "  request %zu arrived at %.3f before the previous answer at %.3f\n",
                    i, recs[i].t_ms, prev_end);
            free(recs);
            CHECK(0);
        }
        CHECK(recs[i].out[0].o.t_queue_ms < 1e-9); /* alone in the system */
    }
    free(recs);
    sim_setup_fini(s);
    free(s);
    free(r);
}

/* Runs least-loaded (seed 1) on experiment `path` with `sets` into a trace with the
 * given counterfactual level (engine.h), read back into *recs / *n; s is built. 0 or -1. */
static int counterfactual_trace(struct sim_setup *s, const char *path, const char *const *sets,
                                int counterfactual, const char *name,
                                struct trace_record **recs, size_t *n)
{
    char err[512];
    if (build(s, path, sets, err, sizeof err) < 0) return -1;
    const char *tpath = test_tmp_path(name);
    FILE *tf = fopen(tpath, "w");
    if (!tf) return -1;
    struct sim_result *r = calloc(1, sizeof *r);
    struct sim_run_opts o = {.pol = pol_find("least-loaded"), .seed = 1, .trace = tf,
                             .counterfactual = counterfactual, .trace_tag = "t/", .use_pred = 0};
    int rc = r ? sim_run(s, &o, r, err, sizeof err) : -1;
    free(r);
    if (fclose(tf) != 0 || rc < 0) return -1;
    *recs = NULL;
    *n = 0;
    return trace_read_file(tpath, 0, recs, n, err, sizeof err) < 0 ? -1 : 0;
}

TEST(sim_trace_with_counterfactual_outcomes)
{
    const char *sets[] = {"experiment.requests=300", NULL};
    struct sim_setup *s = calloc(1, sizeof *s);
    struct trace_record *recs = NULL;
    size_t n = 0;
    CHECK_EQ_INT(counterfactual_trace(s, "data/experiments/hetero.ini", sets, 1, "cf.jsonl",
                                      &recs, &n), 0);
    CHECK_EQ_INT(n, 300);
    long cloud_better = 0;
    for (size_t i = 0; i < n; i++) {
        CHECK_EQ_INT(recs[i].nout, s->nnodes);
        int chosen = 0;
        for (int k = 0; k < recs[i].nout; k++) {
            chosen += recs[i].out[k].chosen;
            CHECK(recs[i].out[k].o.e2e_ms > recs[i].out[k].o.ttft_ms);
        }
        CHECK_EQ_INT(chosen, 1);
        CHECK(!strncmp(recs[i].id, "t/r", 3));
        CHECK_EQ_INT(recs[i].f.nimages, 1);
        /* outcomes are correlated: if the 2B edge model is right, the 72B model is too */
        int q_edge = -1, q_72b = -1;
        for (int k = 0; k < recs[i].nout; k++) {
            if (!strcmp(recs[i].out[k].node, "edge-3090")) q_edge = (int)recs[i].out[k].o.quality;
            if (!strcmp(recs[i].out[k].node, "cloud-h100-72b")) q_72b = (int)recs[i].out[k].o.quality;
        }
        CHECK(q_edge >= 0 && q_72b >= 0);
        CHECK(!(q_edge == 1 && q_72b == 0));
        cloud_better += q_72b > q_edge;
    }
    CHECK(cloud_better > 0);
    free(recs);
    sim_setup_fini(s);
    free(s);
}

/* --counterfactual-plans: on every node the keep, downscale (448 px, only for a larger
 * image) and drop outcomes, each (node, plan) once, the chosen one among them */
TEST(sim_trace_with_counterfactual_plans)
{
    const char *sets[] = {"experiment.requests=200", "sweep.values=wan-300", NULL};
    struct sim_setup *s = calloc(1, sizeof *s);
    struct trace_record *recs = NULL;
    size_t n = 0;
    CHECK_EQ_INT(counterfactual_trace(s, "data/experiments/moaoff-vqav2.ini", sets, 2,
                                      "cfp.jsonl", &recs, &n), 0);
    CHECK_EQ_INT(n, 200);
    long larger = 0, smaller = 0, lower_q = 0, fewer_tokens = 0;
    for (size_t i = 0; i < n; i++) {
        const struct trace_record *t = &recs[i];
        CHECK_EQ_INT(t->f.nimages, 1);
        int side = t->f.img[0].width > t->f.img[0].height ? t->f.img[0].width : t->f.img[0].height;
        int big = side > 448;
        larger += big;
        smaller += !big;
        CHECK_EQ_INT(t->nout, s->nnodes * (2 + big));
        int seen[FY_MAX_NODES][3] = {{0}}, chosen = 0;
        for (int k = 0; k < t->nout; k++) {
            const struct trace_outcome *to = &t->out[k];
            int nd = -1;
            for (int j = 0; j < s->nnodes; j++)
                if (!strcmp(to->node, s->nodes[j].name)) nd = j;
            CHECK(nd >= 0);
            int a = to->o.plan.img[0];
            CHECK(a == FY_IMG_KEEP || a == FY_IMG_DOWNSCALE || a == FY_IMG_DROP);
            int v = a == FY_IMG_KEEP ? 0 : a == FY_IMG_DOWNSCALE ? 1 : 2;
            seen[nd][v]++;
            chosen += to->chosen;
            if (v == 1) CHECK_EQ_INT(to->o.plan.downscale_px, 448);
            if (v == 2) CHECK_EQ_INT(to->image_tokens, 0);
        }
        CHECK_EQ_INT(chosen, 1);
        for (int j = 0; j < s->nnodes; j++) {
            CHECK_EQ_INT(seen[j][0], 1);
            CHECK_EQ_INT(seen[j][1], big);
            CHECK_EQ_INT(seen[j][2], 1);
        }
        /* on one node, a downscaled image is fewer bytes than kept and no more visual
         * tokens (a side just above 448 px may round to the same 28-px patches) */
        const struct trace_outcome *keep = NULL, *down = NULL;
        for (int k = 0; k < t->nout; k++) {
            if (strcmp(t->out[k].node, t->out[0].node)) continue;
            if (t->out[k].o.plan.img[0] == FY_IMG_KEEP) keep = &t->out[k];
            if (t->out[k].o.plan.img[0] == FY_IMG_DOWNSCALE) down = &t->out[k];
        }
        CHECK(keep);
        if (down) {
            CHECK(down->image_tokens <= keep->image_tokens);
            fewer_tokens += down->image_tokens < keep->image_tokens;
            CHECK(down->bytes_up < keep->bytes_up);
            lower_q += down->o.quality < keep->o.quality;
        }
    }
    CHECK(larger > 0 && smaller > 0); /* both kinds of image are in the workload */
    CHECK(lower_q > 0);               /* downscaling costs some answers */
    CHECK(fewer_tokens > larger / 2);
    free(recs);
    sim_setup_fini(s);
    free(s);
}

/* --counterfactual-plans with more than 10 nodes would overflow a record's 32 outcomes:
 * refused before the run, not cut silently */
TEST(sim_counterfactual_plans_refuses_more_outcomes_than_a_record_holds)
{
    const char *sets[] = {"experiment.requests=10", NULL};
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *r = calloc(1, sizeof *r);
    char err[512] = "";
    CHECK_EQ_INT(build(s, "data/experiments/hetero.ini", sets, err, sizeof err), 0);
    FILE *tf = fopen(test_tmp_path("big.jsonl"), "w");
    CHECK(tf);
    struct sim_run_opts o = {.pol = pol_find("least-loaded"), .seed = 1, .trace = tf,
                             .counterfactual = 2, .use_pred = 0};
    int n0 = s->nnodes;
    s->nnodes = FY_MAX_NODES / 3 + 1; /* checked before any node is read */
    CHECK_EQ_INT(sim_run(s, &o, r, err, sizeof err), -1);
    s->nnodes = n0;
    CHECK(strstr(err, "--counterfactual-plans: 11 nodes") != NULL);
    o.counterfactual = 1;
    CHECK_EQ_INT(sim_run(s, &o, r, err, sizeof err), 0);
    fclose(tf);
    sim_setup_fini(s);
    free(s);
    free(r);
}

/* The chain behind docs/results.md's "ferry trained": a --counterfactual-plans trace,
 * `ferry train` (which counts its downscaled and dropped outcomes), and ferry with that
 * bank downscales images, which it never does from a fresh bank (no evidence) */
TEST(sim_ferry_downscales_only_with_a_bank_trained_on_plans)
{
    char tpath[512], mpath[512], cmd[2048], line[256];
    snprintf(tpath, sizeof tpath, "%s", test_tmp_path("bank.jsonl"));
    snprintf(mpath, sizeof mpath, "%s", test_tmp_path("bank.fy"));
    snprintf(cmd, sizeof cmd,
             "%s sim data/experiments/moaoff-vqav2.ini --policies least-loaded --seeds 1 "
             "--requests 600 --set sweep.values=wan-300 --set experiment.seed=1001 --no-timing "
             "--trace %s --counterfactual-plans >/dev/null && %s train %s -o %s --holdout 0",
             test_ferry_bin(), tpath, test_ferry_bin(), tpath, mpath);
    FILE *p = popen(cmd, "r");
    CHECK(p);
    long down = -1, drop = -1;
    while (fgets(line, sizeof line, p))
        sscanf(line, "  outcomes with images downscaled %ld, dropped %ld", &down, &drop);
    CHECK_EQ_INT(pclose(p), 0);
    /* the trace's own counts: every record has each node's drop and, for a larger
     * image, downscale outcome */
    struct trace_record *recs = NULL;
    size_t n = 0;
    char err[512];
    CHECK_EQ_INT(trace_read_file(tpath, 0, &recs, &n, err, sizeof err), 0);
    long want_down = 0, want_drop = 0;
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < recs[i].nout; k++) {
            want_down += recs[i].out[k].o.plan.img[0] == FY_IMG_DOWNSCALE;
            want_drop += recs[i].out[k].o.plan.img[0] == FY_IMG_DROP;
        }
    free(recs);
    CHECK(want_down > 0 && want_drop == 2 * (long)n);
    CHECK_EQ_INT(down, want_down);
    CHECK_EQ_INT(drop, want_drop);
    /* ferry on other seeds: downscales with the bank, never without */
    char model_set[600];
    snprintf(model_set, sizeof model_set, "experiment.pred_model=%s", mpath);
    const char *fresh[] = {"experiment.requests=600", "sweep.values=wan-300", NULL};
    const char *trained[] = {"experiment.requests=600", "sweep.values=wan-300", model_set, NULL};
    struct sim_result *r = calloc(1, sizeof *r);
    CHECK_EQ_INT(build_and_run("data/experiments/moaoff-vqav2.ini", fresh, "ferry", 1, r), 0);
    CHECK_EQ_INT(r->plans_downscale, 0);
    CHECK_EQ_INT(build_and_run("data/experiments/moaoff-vqav2.ini", trained, "ferry", 1, r), 0);
    CHECK(r->plans_downscale > 600 / 20);
    free(r);
}

TEST(sim_every_shipped_experiment_runs)
{
    const char *names[] = {"moaoff-vqav2", "moaoff-mmbench", "hetero", "dialogue", "load-sweep",
                           "bandwidth-drop"};
    struct sim_result *r = calloc(1, sizeof *r);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char path[256], err[512];
        snprintf(path, sizeof path, "data/experiments/%s.ini", names[i]);
        struct sim_entries es = {0};
        CHECK_EQ_INT(sim_entries_read(&es, path, err, sizeof err), 0);
        CHECK_EQ_INT(sim_entries_add_dotted(&es, "experiment.requests=150", "t", 0, err, sizeof err), 0);
        char key[128], vals[SIM_MAX_SWEEP][64];
        int nv;
        CHECK_EQ_INT(sim_sweep_of(&es, key, sizeof key, vals, &nv, err, sizeof err), 0);
        for (int k = 0; k < (nv ? nv : 1); k++) {
            struct sim_setup *s = calloc(1, sizeof *s);
            int rc = sim_setup_build(s, path, &es, nv ? vals[k] : NULL, err, sizeof err);
            if (rc) fprintf(stderr, "  %s: %s\n", names[i], err);
            CHECK_EQ_INT(rc, 0);
            for (int p = 0; p < s->exp.npolicies; p++) {
                CHECK_EQ_INT(run(s, s->exp.pol[p].name, 1, NULL, r), 0);
                CHECK(r->requests >= 150);
                CHECK_EQ_INT(r->failed, 0);
                CHECK(r->sum_e2e_ms > 0);
            }
            sim_setup_fini(s);
            free(s);
        }
        sim_entries_fini(&es);
    }
    free(r);
}

TEST(sim_bandwidth_drop_slows_cloud_uploads)
{
    /* the same MMBench-like requests over a constant 300 Mbps link and over wan-drop (2 Mbps
     * between 60 and 180 s): only the upload part changes, and it grows */
    struct sim_result *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    const char *c1[] = {"node.cloud-a100.link=wan-300", "experiment.requests=200", NULL};
    const char *c2[] = {"node.cloud-a100.link=wan-drop", "experiment.requests=200", NULL};
    CHECK_EQ_INT(build_and_run("data/experiments/bandwidth-drop.ini", c1, "cloud-only", 4, a), 0);
    CHECK_EQ_INT(build_and_run("data/experiments/bandwidth-drop.ini", c2, "cloud-only", 4, b), 0);
    CHECK(b->sum_up_ms > 5 * a->sum_up_ms);
    CHECK_EQ_INT(a->correct, b->correct);
    free(a);
    free(b);
}

static void expect_error(const char *name, const char *text, const char *const *sets,
                         const char *where, const char *what, int *ok)
{
    char rel[128];
    snprintf(rel, sizeof rel, "experiments/%s", name);
    const char *path = write_file(rel, text);
    struct sim_setup *s = calloc(1, sizeof *s);
    char err[1024] = "";
    int rc = path ? build(s, path, sets, err, sizeof err) : 0;
    *ok = rc < 0 && strstr(err, where) && strstr(err, what);
    if (!*ok) fprintf(stderr, "  %s: got \"%s\", want \"%s\" and \"%s\"\n", name, err, where, what);
    if (rc == 0) sim_setup_fini(s);
    free(s);
}

TEST(sim_bad_experiment_files_name_file_and_line)
{
    CHECK(write_file("workloads/fixed.ini", k_fixed_wl));
    int ok;
    const char *head = "[experiment]\nworkload = fixed\nnodes = edge-3090\n";
    char text[1024];
    snprintf(text, sizeof text, "%spolicies = cloud-only, no-such\n", head);
    expect_error("e1.ini", text, NULL, "e1.ini:4:", "unknown policy 'no-such'", &ok);
    CHECK(ok);
    snprintf(text, sizeof text, "%spolicies = random\nrequets = 5\n", head);
    expect_error("e2.ini", text, NULL, "e2.ini:5:", "unknown key 'requets'", &ok);
    CHECK(ok);
    snprintf(text, sizeof text, "%spolicies = random\n\n[arrivals]\nprocess = bursty\n", head);
    expect_error("e3.ini", text, NULL, "e3.ini:7:", "poisson, mmpp, diurnal or closed", &ok);
    CHECK(ok);
    snprintf(text, sizeof text, "%spolicies = random\n[nodes x]\na = 1\n", head);
    expect_error("e4.ini", text, NULL, "e4.ini:6:", "unknown section", &ok);
    CHECK(ok);
    snprintf(text, sizeof text, "%spolicies = random\n[class q]\nweight = -1\n", head);
    expect_error("e5.ini", text, NULL, "e5.ini:6:", "weight", &ok);
    CHECK(ok);
    snprintf(text, sizeof text, "%spolicies = random\n[node edge-3090]\nmax_seqs = 0\n", head);
    expect_error("e6.ini", text, NULL, "e6.ini:6:", "max_seqs", &ok);
    CHECK(ok);
    snprintf(text, sizeof text, "[experiment]\nworkload = nope\nnodes = edge-3090\npolicies = random\n");
    expect_error("e7.ini", text, NULL, "nope.ini", "No such file", &ok);
    CHECK(ok);
    snprintf(text, sizeof text, "%spolicies = random\n", head);
    const char *bad_set[] = {"arrivals.rate_rps=fast", NULL};
    expect_error("e8.ini", text, bad_set, "--set", "rate_rps", &ok);
    CHECK(ok);
    /* which of several --set lines is wrong: the message quotes it whole (it said
     * "--set: max_seqs = 0: ...", the same for every node) */
    const char *two_nodes[] = {"node.cloud-a100.max_seqs=8", "node.edge-3090.max_seqs=0", NULL};
    expect_error("e8b.ini", text, two_nodes, "--set node.edge-3090.max_seqs=0: ", "max_seqs",
                 &ok);
    CHECK(ok);
    const char *bad_class[] = {"class.q.weight=-1", NULL};
    expect_error("e8c.ini", text, bad_class, "--set class.q.weight=-1: ", "weight", &ok);
    CHECK(ok);
    /* a node's link, device or model that does not exist is reported where it was named,
     * not at the node's section in the profiles (nodes.ini:N, which names another one) */
    const char *bad_link[] = {"node.edge-3090.link=nowhere", NULL};
    expect_error("e8d.ini", text, bad_link, "--set: [node edge-3090]: link 'nowhere'",
                 "not defined", &ok);
    CHECK(ok);
    snprintf(text, sizeof text, "%spolicies = random\n[node edge-3090]\nmodel = m0\n", head);
    expect_error("e8e.ini", text, NULL, "e8e.ini:6: [node edge-3090]: model 'm0'", "not defined",
                 &ok);
    CHECK(ok);
    /* a sweep value is applied per run, by the command */
    CHECK_CLI("sim data/experiments/moaoff-vqav2.ini --requests 10 --set sweep.values=wan-999",
              1, "[sweep]: [node cloud-a100]: link 'wan-999' is not defined");
    snprintf(text, sizeof text, "%spolicies = random\n[sweep]\nkey = requests\nvalues = 1,2\n", head);
    expect_error("e9.ini", text, NULL, "e9.ini:6:", "SECTION.KEY", &ok);
    CHECK(ok);
    snprintf(text, sizeof text, "%spolicies = random\nmetrics = e2e_mean_ms, speed\n", head);
    expect_error("e10.ini", text, NULL, "e10.ini:5:", "unknown metric 'speed'", &ok);
    CHECK(ok);
    /* an experiment outside a data folder: the error says where profiles are looked for */
    char lonely[600];
    snprintf(lonely, sizeof lonely, "%s", test_tmp_path("lonely"));
    CHECK(mkdir(lonely, 0700) == 0 || errno == EEXIST);
    snprintf(lonely + strlen(lonely), sizeof lonely - strlen(lonely), "/x.ini");
    CHECK(test_write_file(lonely, head) == 0);
    struct sim_setup *s = calloc(1, sizeof *s);
    char err[1024] = "";
    if (getenv("FERRY_DATA") == NULL) { /* $FERRY_DATA would give the profiles */
        CHECK(build(s, lonely, NULL, err, sizeof err) < 0);
        CHECK(strstr(err, "lonely/../profiles: no profiles folder") != NULL);
        CHECK(strstr(err, "$FERRY_DATA") != NULL);
    }
    free(s);
}

/* An MMPP whose calm + burst cycle brings almost no request made the engine walk ~1e15
 * state switches per arrival (`ferry sim` hung): refused when the setup is built. */
TEST(sim_mmpp_with_almost_no_requests_per_cycle_is_refused)
{
    CHECK(write_file("workloads/fixed.ini", k_fixed_wl));
    const char *text = "[experiment]\nworkload = fixed\nnodes = edge-3090\npolicies = random\n"
                       "requests = 5\n[arrivals]\nprocess = mmpp\n";
    const char *bad[] = {"arrivals.rate_rps=1e-9", "arrivals.burst_rate_rps=1e-9",
                         "arrivals.burst_s=1e-6", "arrivals.calm_s=1e-6", NULL};
    int ok;
    expect_error("m1.ini", text, bad, "m1.ini", "requests per calm + burst cycle", &ok);
    CHECK(ok);
    /* the same rates with cycles long enough to bring some requests are fine */
    const char *good[] = {"arrivals.rate_rps=1e-3", "arrivals.burst_rate_rps=1e-9",
                          "arrivals.burst_s=1e-6", "arrivals.calm_s=10", NULL};
    struct sim_setup *s = calloc(1, sizeof *s);
    char err[1024] = "";
    const char *path = write_file("experiments/m2.ini", text);
    CHECK(path != NULL);
    int rc = build(s, path, good, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    CHECK_EQ_INT(rc, 0);
    sim_setup_fini(s);
    free(s);
}

TEST(sim_quality_model_plan_effects)
{
    struct sim_quality q;
    sim_quality_default(&q);
    struct sim_class c = {.image_need = 1, .visual_share = 0.8};
    struct sim_latent lat = {.difficulty = 0.5};
    struct fy_features f = {.nimages = 1};
    f.img[0].width = 1000;
    f.img[0].height = 500;
    f.img[0].c_img = 0.8;
    struct fy_plan p;
    pol_plan_keep(&p, 0);
    double keep = sim_quality_p(&q, &c, &lat, &f, &p, 1.0, 2.0);
    CHECK_NEAR(keep, 1 / (1 + exp(-0.5)), 1e-12);
    p.img[0] = FY_IMG_DOWNSCALE;
    p.downscale_px = 500;               /* s = 0.5: penalty 2.0 * 1 * 0.8 * 0.5 = 0.8 */
    CHECK_NEAR(sim_quality_p(&q, &c, &lat, &f, &p, 1.0, 2.0), 1 / (1 + exp(-(0.5 - 0.8))), 1e-12);
    f.img[0].c_img = 0.2;               /* a simple image loses less */
    CHECK(sim_quality_p(&q, &c, &lat, &f, &p, 1.0, 2.0) > 1 / (1 + exp(-(0.5 - 0.8))));
    p.downscale_px = 2000;              /* no downscale at all */
    CHECK_NEAR(sim_quality_p(&q, &c, &lat, &f, &p, 1.0, 2.0), keep, 1e-12);
    p.img[0] = FY_IMG_DROP;
    CHECK_NEAR(sim_quality_p(&q, &c, &lat, &f, &p, 1.0, 2.0), 1 / (1 + exp(-(0.5 - 3.0))), 1e-12);
    p.img[0] = FY_IMG_SPLIT;
    p.aux_node = 1;                     /* 1 + 0.8 * (2 - 1) - 0.5 - 0.4 */
    CHECK_NEAR(sim_quality_p(&q, &c, &lat, &f, &p, 1.0, 2.0), 1 / (1 + exp(-(0.9))), 1e-12);
}

/* ==== plans through the engine: a test policy with a fixed plan ==================== */

static struct fy_plan g_fixed_plan;

static int fixed_init(void **st, const char *params, char *err, size_t errlen)
{
    (void)params; (void)err; (void)errlen;
    *st = NULL;
    return 0;
}

static int fixed_decide(void *st, const struct pol_ctx *c, struct fy_plan *out, struct fy_estimate *e)
{
    (void)st; (void)c;
    *out = g_fixed_plan;
    if (e) memset(e, 0, sizeof *e);
    return 0;
}

static void fixed_free(void *st) { (void)st; }

static const struct fy_policy g_fixed = {"fixed", "test", fixed_init, fixed_decide, NULL, fixed_free};

static int run_plan(const struct sim_setup *s, int node, int action, int aux, int px,
                    struct sim_result *r)
{
    pol_plan_keep(&g_fixed_plan, node);
    for (int i = 0; i < FY_MAX_IMAGES; i++) g_fixed_plan.img[i] = (uint8_t)action;
    g_fixed_plan.aux_node = aux;
    g_fixed_plan.downscale_px = px;
    char err[512];
    struct sim_run_opts o = {.pol = &g_fixed, .seed = 9, .use_pred = 0};
    int rc = sim_run(s, &o, r, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    return rc;
}

TEST(sim_plans_change_bytes_tokens_latency_and_quality)
{
    /* MMBench-like at a low rate on the MoA-Off pair (0 = edge, 1 = cloud) */
    const char *sets[] = {"experiment.requests=3000", "arrivals.rate_rps=1",
                          "sweep.values=wan-300", NULL};
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *keep = calloc(1, sizeof *keep), *ds = calloc(1, sizeof *ds),
                      *drop = calloc(1, sizeof *drop), *split = calloc(1, sizeof *split),
                      *cloud = calloc(1, sizeof *cloud);
    char err[512];
    CHECK_EQ_INT(build(s, "data/experiments/moaoff-mmbench.ini", sets, err, sizeof err), 0);
    CHECK_EQ_INT(run_plan(s, 0, FY_IMG_KEEP, -1, 0, keep), 0);
    CHECK_EQ_INT(run_plan(s, 0, FY_IMG_DOWNSCALE, -1, 336, ds), 0);
    CHECK_EQ_INT(run_plan(s, 0, FY_IMG_DROP, -1, 0, drop), 0);
    CHECK_EQ_INT(run_plan(s, 0, FY_IMG_SPLIT, 1, 0, split), 0);
    CHECK_EQ_INT(run_plan(s, 1, FY_IMG_KEEP, -1, 0, cloud), 0);
    CHECK_EQ_INT(keep->failed + ds->failed + drop->failed + split->failed, 0);
    /* downscale: fewer bytes and less vision work, lower but not dropped quality */
    CHECK(ds->sum_bytes_up < 0.5 * keep->sum_bytes_up);
    CHECK(ds->sum_vision_ms < 0.5 * keep->sum_vision_ms);
    CHECK(ds->sum_p < keep->sum_p);
    CHECK(drop->sum_p < ds->sum_p);
    CHECK_EQ_INT(ds->plans_downscale, 3000);
    /* drop: no vision at all, the worst quality */
    CHECK_NEAR(drop->sum_vision_ms, 0, 1e-9);
    CHECK(drop->sum_e2e_ms < keep->sum_e2e_ms);
    /* split: the cloud describes every image, the edge answers; quality between the
     * edge's and the cloud's own, latency includes the description round trip */
    CHECK_EQ_INT(split->plans_split, 3000);
    CHECK_EQ_INT(split->node[1].aux_requests, 3000);
    CHECK_EQ_INT(split->node[0].requests, 3000);
    CHECK(split->sum_p > keep->sum_p && split->sum_p < cloud->sum_p);
    CHECK(split->sum_up_ms > cloud->sum_up_ms);
    CHECK_NEAR(split->sum_vision_ms, 0, 1e-9); /* no images reach the answering node */
    sim_setup_fini(s);
    free(s);
    free(keep);
    free(ds);
    free(drop);
    free(split);
    free(cloud);
}

/* ==== arrival processes =========================================================== */

/* Index of dispersion of arrival counts in windows of w ms, from a trace. */
static double dispersion(const struct trace_record *r, size_t n, double w, double *peak_share,
                         double period_ms)
{
    double tmax = r[n - 1].t_ms;
    int nw = (int)(tmax / w);
    if (nw < 2) return 0;
    double *cnt = calloc((size_t)nw, sizeof *cnt);
    double in_peak = 0;
    for (size_t i = 0; i < n; i++) {
        int k = (int)(r[i].t_ms / w);
        if (k < nw) cnt[k]++;
        if (period_ms > 0 && fmod(r[i].t_ms, period_ms) < period_ms / 2) in_peak++;
    }
    double m = 0, v = 0;
    for (int k = 0; k < nw; k++) m += cnt[k];
    m /= nw;
    for (int k = 0; k < nw; k++) v += (cnt[k] - m) * (cnt[k] - m);
    v /= nw - 1;
    free(cnt);
    if (peak_share) *peak_share = in_peak / n;
    return v / m;
}

static int arrivals_of(const char *const *sets, struct trace_record **recs, size_t *n)
{
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *r = calloc(1, sizeof *r);
    char err[512];
    int rc = build(s, "data/experiments/moaoff-vqav2.ini", sets, err, sizeof err);
    const char *tpath = test_tmp_path("arr.jsonl");
    FILE *tf = fopen(tpath, "w");
    if (rc == 0) rc = run(s, "least-loaded", 21, tf, r);
    fclose(tf);
    if (rc == 0) rc = trace_read_file(tpath, 0, recs, n, err, sizeof err);
    if (rc == 0) { /* order by arrival (the trace is in completion order) */
        for (size_t i = 1; i < *n; i++) {
            struct trace_record *t = malloc(sizeof *t);
            *t = (*recs)[i];
            size_t j = i;
            while (j > 0 && (*recs)[j - 1].t_ms > t->t_ms) { (*recs)[j] = (*recs)[j - 1]; j--; }
            (*recs)[j] = *t;
            free(t);
        }
    }
    if (s->nnodes) sim_setup_fini(s);
    free(s);
    free(r);
    return rc;
}

TEST(sim_arrival_processes_have_their_shape)
{
    struct trace_record *recs = NULL;
    size_t n = 0;
    const char *poisson[] = {"experiment.requests=3000", "sweep.values=wan-300", "arrivals.rate_rps=8",
                             NULL};
    CHECK_EQ_INT(arrivals_of(poisson, &recs, &n), 0);
    CHECK_EQ_INT(n, 3000);
    double dp = dispersion(recs, n, 2000, NULL, 0);
    CHECK(dp > 0.8 && dp < 1.25);            /* Poisson: variance = mean */
    CHECK_NEAR(n / (recs[n - 1].t_ms / 1000), 8, 0.5);
    free(recs);
    const char *mmpp[] = {"experiment.requests=3000", "sweep.values=wan-300", "arrivals.process=mmpp",
                          "arrivals.rate_rps=2", "arrivals.burst_rate_rps=40", "arrivals.burst_s=5",
                          "arrivals.calm_s=20", NULL};
    CHECK_EQ_INT(arrivals_of(mmpp, &recs, &n), 0);
    CHECK(dispersion(recs, n, 2000, NULL, 0) > 5);   /* bursts: overdispersed */
    free(recs);
    const char *diurnal[] = {"experiment.requests=4000", "sweep.values=wan-300",
                             "arrivals.process=diurnal", "arrivals.rate_rps=8",
                             "arrivals.period_s=100", "arrivals.amplitude=0.8", NULL};
    CHECK_EQ_INT(arrivals_of(diurnal, &recs, &n), 0);
    double peak;
    dispersion(recs, n, 2000, &peak, 100000);
    /* share of arrivals in the rising half of the sine: (1 + 2A/pi) / 2 = 0.755 */
    CHECK_NEAR(peak, 0.5 + 0.8 / M_PI, 0.03);
    free(recs);
}

TEST(sim_privacy_share_marks_requests_edge_only)
{
    const char *sets[] = {"experiment.requests=4000", "experiment.privacy_edge_share=0.25",
                          "sweep.values=wan-300", NULL};
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *r = calloc(1, sizeof *r);
    char err[512];
    CHECK_EQ_INT(build(s, "data/experiments/moaoff-vqav2.ini", sets, err, sizeof err), 0);
    CHECK_EQ_INT(run(s, "cloud-only", 2, NULL, r), 0);
    CHECK_NEAR((double)r->privacy_violations / r->requests, 0.25, 0.02);
    CHECK_EQ_INT(run(s, "edge-only", 2, NULL, r), 0);
    CHECK_EQ_INT(r->privacy_violations, 0);
    sim_setup_fini(s);
    free(s);
    free(r);
}

TEST(sim_dialogue_budgets_are_per_dialogue)
{
    const char *sets[] = {"experiment.requests=600", NULL};
    const char *tight[] = {"experiment.requests=600", "experiment.dialogue_budget_ms=2000", NULL};
    struct sim_result *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    CHECK_EQ_INT(build_and_run("data/experiments/dialogue.ini", sets, "cloud-only", 1, a), 0);
    CHECK_EQ_INT(build_and_run("data/experiments/dialogue.ini", tight, "cloud-only", 1, b), 0);
    /* every turn belongs to a finished dialogue of 2..5 turns */
    CHECK_EQ_INT(a->dialogue_turns, a->requests);
    CHECK(a->dialogues * 2 <= a->requests && a->dialogues * 5 >= a->requests);
    CHECK_EQ_INT(a->dialogue_turns_correct, a->correct);
    /* same dialogues, same latencies: only the verdict changes with the budget */
    CHECK_NEAR(a->sum_dialogue_ms, b->sum_dialogue_ms, 1e-6);
    CHECK(b->dialogues_in_budget < a->dialogues_in_budget);
    /* a tight budget: a dialogue is in budget iff its turns sum to <= 2 s; the
     * cloud-only WiFi calls take >= 1.9 s each (tmo-wifi, one view), so few are */
    CHECK(b->dialogues_in_budget < b->dialogues / 2);
    free(a);
    free(b);
}

/* ==== the oracle's truth is the engine's outcome =================================== */

#define PROBE_N 400
static struct { int n_dec, n_obs; double est_e2e[PROBE_N], est_ttft[PROBE_N], est_q[PROBE_N];
                double obs_e2e[PROBE_N], obs_ttft[PROBE_N], obs_q[PROBE_N]; } g_probe;

static int probe_decide(void *st, const struct pol_ctx *c, struct fy_plan *out, struct fy_estimate *e)
{
    (void)st;
    *out = g_fixed_plan;
    struct fy_estimate t;
    if (!c->oracle || c->oracle(c->oracle_arg, out, &t) < 0) return -1;
    if (g_probe.n_dec < PROBE_N) {
        g_probe.est_e2e[g_probe.n_dec] = t.e2e_ms;
        g_probe.est_ttft[g_probe.n_dec] = t.ttft_ms;
        g_probe.est_q[g_probe.n_dec] = t.q_mean;
        g_probe.n_dec++;
    }
    if (e) *e = t;
    return 0;
}

static void probe_observe(void *st, const struct pol_ctx *c, const struct fy_outcome *o)
{
    (void)st; (void)c;
    if (g_probe.n_obs < PROBE_N) {
        g_probe.obs_e2e[g_probe.n_obs] = o->e2e_ms;
        g_probe.obs_ttft[g_probe.n_obs] = o->ttft_ms;
        g_probe.obs_q[g_probe.n_obs] = o->quality;
        g_probe.n_obs++;
    }
}

static const struct fy_policy g_probe_pol = {"probe", "test", fixed_init, probe_decide,
                                             probe_observe, fixed_free};

TEST(sim_oracle_truth_equals_the_outcome_without_later_arrivals)
{
    /* one user in a closed loop: nothing arrives while a request is served, so the
     * oracle's forward run of the node copies must give exactly what happens, for a
     * plain plan and for a split plan (aux phase, handoff, jitter included) */
    const char *sets[] = {"experiment.requests=300", "arrivals.process=closed", "arrivals.users=1",
                          "arrivals.think_s=1", "sweep.values=wan-200", NULL};
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *r = calloc(1, sizeof *r);
    char err[512];
    CHECK_EQ_INT(build(s, "data/experiments/moaoff-mmbench.ini", sets, err, sizeof err), 0);
    for (int variant = 0; variant < 3; variant++) {
        memset(&g_probe, 0, sizeof g_probe);
        pol_plan_keep(&g_fixed_plan, 1);
        if (variant == 1) {
            pol_plan_keep(&g_fixed_plan, 0);
            g_fixed_plan.aux_node = 1;
            for (int i = 0; i < FY_MAX_IMAGES; i++) g_fixed_plan.img[i] = FY_IMG_SPLIT;
        }
        if (variant == 2) { /* a cascade: the truth of the whole cascade */
            pol_plan_keep(&g_fixed_plan, 0);
            g_fixed_plan.escalate_node = 1;
            g_fixed_plan.escalate_below = 0.6;
        }
        struct sim_run_opts o = {.pol = &g_probe_pol, .seed = 3, .use_pred = 0};
        CHECK_EQ_INT(sim_run(s, &o, r, err, sizeof err), 0);
        CHECK_EQ_INT(g_probe.n_dec, 300);
        CHECK_EQ_INT(g_probe.n_obs, 300);
        for (int i = 0; i < 300; i++) {
            CHECK_NEAR(g_probe.est_e2e[i], g_probe.obs_e2e[i], 1e-6);
            CHECK_NEAR(g_probe.est_ttft[i], g_probe.obs_ttft[i], 1e-6);
            CHECK_NEAR(g_probe.est_q[i], g_probe.obs_q[i], 0);
        }
        if (variant == 1) CHECK_EQ_INT(r->plans_split, 300);
        if (variant == 2) {
            CHECK_EQ_INT(r->plans_cascade, 300);
            CHECK(r->escalated > 30 && r->escalated < 270);
        }
    }
    sim_setup_fini(s);
    free(s);
    free(r);
}

TEST(sim_dialogue_turns_reuse_the_prompt_cache_of_their_node)
{
    /* edge-only keeps every dialogue on one node: with cache_saving the history is not
     * prefilled again, so prefill time drops; answers and arrivals stay the same */
    const char *with[] = {"experiment.requests=600", "node.edge-3090.cache_saving=0.9", NULL};
    const char *without[] = {"experiment.requests=600", "node.edge-3090.cache_saving=0", NULL};
    struct sim_result *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    CHECK_EQ_INT(build_and_run("data/experiments/dialogue.ini", with, "edge-only", 1, a), 0);
    CHECK_EQ_INT(build_and_run("data/experiments/dialogue.ini", without, "edge-only", 1, b), 0);
    CHECK_EQ_INT(a->requests, b->requests);
    CHECK_EQ_INT(a->correct, b->correct);
    CHECK(a->sum_prefill_ms < 0.7 * b->sum_prefill_ms);
    CHECK(a->sum_ttft_ms < b->sum_ttft_ms);
    free(a);
    free(b);
}

TEST(sim_invalid_plans_fail_the_request_not_the_run)
{
    const char *sets[] = {"experiment.requests=50", "sweep.values=wan-300", NULL};
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *r = calloc(1, sizeof *r);
    char err[512];
    CHECK_EQ_INT(build(s, "data/experiments/moaoff-vqav2.ini", sets, err, sizeof err), 0);
    pol_plan_keep(&g_fixed_plan, 7);            /* only 2 nodes */
    const char *tpath = test_tmp_path("bad.jsonl");
    FILE *tf = fopen(tpath, "w");
    struct sim_run_opts o = {.pol = &g_fixed, .seed = 1, .trace = tf, .use_pred = 0};
    CHECK_EQ_INT(sim_run(s, &o, r, err, sizeof err), 0);
    fclose(tf);
    CHECK_EQ_INT(r->requests, 50);
    CHECK_EQ_INT(r->failed, 50);
    CHECK_EQ_INT(r->e2e.n, 0);
    struct trace_record *recs = NULL;
    size_t n = 0;
    CHECK_EQ_INT(trace_read_file(tpath, 0, &recs, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 50);
    CHECK_EQ_INT(recs[0].nout, 0);
    free(recs);
    pol_plan_keep(&g_fixed_plan, 0);            /* split without an aux node */
    g_fixed_plan.img[0] = FY_IMG_SPLIT;
    o.trace = NULL;
    CHECK_EQ_INT(sim_run(s, &o, r, err, sizeof err), 0);
    CHECK_EQ_INT(r->failed, 50);
    sim_setup_fini(s);
    free(s);
    free(r);
}

TEST(sim_stats_histogram_quantiles_and_ci)
{
    struct sim_hist *h = calloc(1, sizeof *h);
    for (int i = 1; i <= 100000; i++) sim_hist_add(h, i * 0.01); /* 0.01 .. 1000 ms */
    CHECK_EQ_INT(h->n, 100000);
    CHECK_NEAR(sim_hist_quantile(h, 0.5), 500, 500 * 0.006);
    CHECK_NEAR(sim_hist_quantile(h, 0.99), 990, 990 * 0.006);
    CHECK_NEAR(sim_hist_quantile(h, 0.01), 10, 10 * 0.006);
    sim_hist_add(h, 1e12);                     /* beyond the range: counted in the last bin */
    CHECK_EQ_INT(h->bins[SIM_HIST_BINS - 1], 1);
    free(h);
    double x[] = {1, 2, 3, 4, 5}, m, half;
    sim_mean_ci95(x, 5, &m, &half);
    CHECK_NEAR(m, 3, 1e-12);
    CHECK_NEAR(half, 2.776 * sqrt(2.5 / 5), 1e-9);   /* t(4) = 2.776, s^2 = 2.5 */
    sim_mean_ci95(x, 1, &m, &half);
    CHECK_NEAR(half, 0, 0);
}

TEST(sim_engine_md1_queue_matches_pollaczek_khinchine)
{
    /* one slot, fixed 100-token prompts, one output token: S = 100 / 10000 tok/s = 10 ms;
     * Poisson at 30/s: rho = 0.3, Wq = rho S / (2 (1 - rho)) = 2.143 ms */
    CHECK(write_file("workloads/fixed-text.ini",
                     "[workload]\nname = fixed-text\n[class q]\nskill = x\nprompt_tokens = 100\n"
                     "prompt_sigma = 0\nout_tokens = 1\nout_sigma = 0\np_image = 0\nimages = 0\n"));
    const char *exp = write_file("experiments/md1.ini",
        "[experiment]\nworkload = fixed-text\nnodes = n\nrequests = 60000\npolicies = least-loaded\n"
        "[arrivals]\nprocess = poisson\nrate_rps = 30\n"
        "[device d]\nmem_bw_gbs = 1000\ntflops = 100\n[model m]\nparams_b = 1\n"
        "[link l]\nup_mbps = 1000\nrtt_ms = 2\n"
        "[node n]\ndevice = d\nmodel = m\nlink = l\nmax_seqs = 1\nprefill_tps = 10000\n"
        "decode_tps = 100\n");
    CHECK(exp);
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *r = calloc(1, sizeof *r);
    char err[512];
    CHECK_EQ_INT(build(s, exp, NULL, err, sizeof err), 0);
    CHECK_EQ_INT(run(s, "least-loaded", 8, NULL, r), 0);
    CHECK_EQ_INT(r->requests, 60000);
    double wq = 0.3 * 10 / (2 * 0.7);
    CHECK_NEAR(r->sum_queue_ms / r->requests, wq, 0.05 * wq);
    CHECK_NEAR(r->sum_prefill_ms / r->requests, 10, 1e-6);
    CHECK_NEAR((double)r->node[0].busy_ms / r->makespan_ms, 0.3, 0.01);
    sim_setup_fini(s);
    free(s);
    free(r);
}

TEST(sim_node_queue_limit_refuses_requests)
{
    /* a full node refuses: with max_queue = 2 and a load the edge cannot carry, some
     * requests fail; without the limit none does */
    const char *lim[] = {"experiment.requests=500", "arrivals.rate_rps=30", "sweep.values=wan-300",
                         "node.edge-3090.max_seqs=2", "node.edge-3090.max_queue=2", NULL};
    const char *nolim[] = {"experiment.requests=500", "arrivals.rate_rps=30", "sweep.values=wan-300",
                           "node.edge-3090.max_seqs=2", NULL};
    struct sim_result *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    CHECK_EQ_INT(build_and_run("data/experiments/moaoff-vqav2.ini", lim, "edge-only", 1, a), 0);
    CHECK_EQ_INT(build_and_run("data/experiments/moaoff-vqav2.ini", nolim, "edge-only", 1, b), 0);
    CHECK(a->failed > 50);
    CHECK_EQ_INT(b->failed, 0);
    CHECK(sim_hist_quantile(&a->e2e, 0.99) < sim_hist_quantile(&b->e2e, 0.99));
    free(a);
    free(b);
}

TEST(sim_cli_writes_csv_and_plots)
{
    const char *bin = test_ferry_bin();
    char dir[600], csv[600], cmd[4096];
    snprintf(dir, sizeof dir, "%s", test_tmp_path("plots"));
    snprintf(csv, sizeof csv, "%s", test_tmp_path("out.csv"));
    snprintf(cmd, sizeof cmd, "%s sim data/experiments/moaoff-vqav2.ini --requests 200 --seeds 2 "
             "--policies cloud-only,oracle --csv %s --plot %s > /dev/null", bin, csv, dir);
    CHECK_EQ_INT(system(cmd), 0);
    /* CSV: header + 3 sweep values x 2 policies x 2 seeds */
    FILE *fp = fopen(csv, "r");
    CHECK(fp);
    char line[4096];
    int rows = 0, oracle_rows = 0;
    while (fgets(line, sizeof line, fp)) {
        rows++;
        oracle_rows += strstr(line, ",oracle,") != NULL;
    }
    fclose(fp);
    CHECK_EQ_INT(rows, 1 + 3 * 2 * 2);
    CHECK_EQ_INT(oracle_rows, 6);
    const char *files[] = {"latency-cdf-0.svg", "latency-cdf-2.svg", "latency-vs-completion.svg",
                           "sweep-latency.svg", "sweep-completion.svg"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char path[800];
        snprintf(path, sizeof path, "%s/%s", dir, files[i]);
        fp = fopen(path, "r");
        if (!fp) fprintf(stderr, "  missing %s\n", path);
        CHECK(fp);
        size_t n = fread(line, 1, sizeof line - 1, fp);
        line[n] = '\0';
        fclose(fp);
        CHECK(strstr(line, "<svg") != NULL);
    }
}

/* ==== cascades ===================================================================== */

#define REC_N 300
static struct { int n; struct fy_outcome o[REC_N]; } g_rec;

static void rec_observe(void *st, const struct pol_ctx *c, const struct fy_outcome *o)
{
    (void)st; (void)c;
    if (g_rec.n < REC_N) g_rec.o[g_rec.n++] = *o;
}

static const struct fy_policy g_rec_pol = {"rec", "test", fixed_init, fixed_decide, rec_observe,
                                           fixed_free};

/* Runs the fixed plan (node, escalation to esc below theta when theta > 0) with one
 * closed-loop user (no contention: each request meets idle nodes); g_rec gets the
 * outcomes in request order. */
static int rec_run(const struct sim_setup *s, int node, int esc, double theta, struct sim_result *r)
{
    memset(&g_rec, 0, sizeof g_rec);
    pol_plan_keep(&g_fixed_plan, node);
    if (theta > 0) {
        g_fixed_plan.escalate_node = esc;
        g_fixed_plan.escalate_below = theta;
    }
    char err[512];
    struct sim_run_opts o = {.pol = &g_rec_pol, .seed = 4, .use_pred = 0};
    int rc = sim_run(s, &o, r, err, sizeof err);
    if (rc) fprintf(stderr, "%s\n", err);
    return rc;
}

TEST(sim_cascade_escalates_below_theta_and_pays_both_stages)
{
    /* the edge is given a price so that "both stages paid" is visible */
    const char *sets[] = {"experiment.requests=300", "arrivals.process=closed", "arrivals.users=1",
                          "arrivals.think_s=1", "sweep.values=wan-200",
                          "node.edge-3090.usd_per_mtok_in=0.5", NULL};
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *r = calloc(1, sizeof *r);
    struct fy_outcome *edge = calloc(REC_N, sizeof *edge), *cloud = calloc(REC_N, sizeof *cloud);
    char err[512];
    CHECK_EQ_INT(build(s, "data/experiments/moaoff-mmbench.ini", sets, err, sizeof err), 0);
    /* the same 300 requests (same content streams) on the edge alone, the cloud alone */
    CHECK_EQ_INT(rec_run(s, 0, -1, 0, r), 0);
    CHECK_EQ_INT(g_rec.n, REC_N);
    memcpy(edge, g_rec.o, sizeof g_rec.o);
    CHECK_EQ_INT(r->plans_cascade, 0);
    CHECK(edge[0].cost_usd > 0);
    CHECK_EQ_INT(rec_run(s, 1, -1, 0, r), 0);
    memcpy(cloud, g_rec.o, sizeof g_rec.o);
    CHECK(cloud[0].cost_usd > 0);
    const double thetas[] = {0.3, 0.6, 0.9};
    long prev_esc = -1;
    for (int ti = 0; ti < 3; ti++) {
        double th = thetas[ti];
        CHECK_EQ_INT(rec_run(s, 0, 1, th, r), 0);
        CHECK_EQ_INT(g_rec.n, REC_N);
        CHECK_EQ_INT(r->plans_cascade, REC_N);
        long esc = 0, right = 0;
        for (int i = 0; i < REC_N; i++) {
            const struct fy_outcome *o = &g_rec.o[i];
            CHECK(o->confidence >= 0 && o->confidence <= 1);
            CHECK_EQ_INT(o->escalated, o->confidence < th);   /* iff below θ */
            CHECK_NEAR(o->first_quality, edge[i].quality, 0); /* stage 1 is the edge's answer */
            esc += o->escalated;
            if (o->escalated) {
                /* both stages back to back, both paid; the answer is the cloud's */
                CHECK_NEAR(o->e2e_ms, edge[i].e2e_ms + cloud[i].e2e_ms, 1e-6);
                CHECK(o->e2e_ms >= edge[i].e2e_ms && o->e2e_ms >= cloud[i].e2e_ms);
                CHECK_NEAR(o->ttft_ms, edge[i].e2e_ms + cloud[i].ttft_ms, 1e-6);
                CHECK_NEAR(o->cost_usd, edge[i].cost_usd + cloud[i].cost_usd, 1e-12);
                CHECK_NEAR(o->quality, cloud[i].quality, 0);
            } else {
                CHECK_NEAR(o->e2e_ms, edge[i].e2e_ms, 1e-6);
                CHECK_NEAR(o->cost_usd, edge[i].cost_usd, 1e-12);
                CHECK_NEAR(o->quality, edge[i].quality, 0);
            }
            right += o->quality > 0.5;
        }
        CHECK_EQ_INT(r->escalated, esc);
        CHECK_EQ_INT(r->correct, right);
        CHECK(esc > prev_esc); /* a higher θ escalates more */
        prev_esc = esc;
    }
    CHECK(prev_esc < REC_N && prev_esc > REC_N / 2);
    /* wrong first answers are escalated more often than right ones (sep > 0) */
    long esc_wrong = 0, wrong = 0, esc_right = 0, nright = 0;
    for (int i = 0; i < REC_N; i++) {
        if (edge[i].quality > 0.5) nright++, esc_right += g_rec.o[i].escalated;
        else wrong++, esc_wrong += g_rec.o[i].escalated;
    }
    CHECK(wrong > 20 && nright > 20);
    CHECK((double)esc_wrong / wrong > (double)esc_right / nright + 0.1);
    free(edge);
    free(cloud);
    sim_setup_fini(s);
    free(s);
    free(r);
}

/* The parts of a result that are a pure function of (setup, policy, seed). */
static int same_result(const struct sim_result *a, const struct sim_result *b)
{
    return a->requests == b->requests && a->failed == b->failed && a->correct == b->correct &&
           a->completed == b->completed && a->sum_e2e_ms == b->sum_e2e_ms &&
           a->sum_ttft_ms == b->sum_ttft_ms && a->sum_cost_usd == b->sum_cost_usd &&
           a->sum_bytes_up == b->sum_bytes_up && a->makespan_ms == b->makespan_ms &&
           a->sum_p == b->sum_p && a->plans_cascade == b->plans_cascade &&
           a->escalated == b->escalated && !memcmp(a->node, b->node, sizeof a->node) &&
           !memcmp(&a->e2e, &b->e2e, sizeof a->e2e);
}

TEST(sim_cascade_runs_are_deterministic_and_below_zero_is_edge_only)
{
    const char *sets[] = {"experiment.requests=1500", "sweep.values=wan-200", NULL};
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *a = calloc(1, sizeof *a), *b = calloc(1, sizeof *b);
    char err[512];
    CHECK_EQ_INT(build(s, "data/experiments/moaoff-vqav2.ini", sets, err, sizeof err), 0);
    struct sim_run_opts o = {.pol = pol_find("cascade"), .seed = 7, .use_pred = -1};
    CHECK(o.pol != NULL);
    CHECK_EQ_INT(sim_run(s, &o, a, err, sizeof err), 0);
    CHECK_EQ_INT(sim_run(s, &o, b, err, sizeof err), 0);
    CHECK(same_result(a, b));
    CHECK_EQ_INT(a->plans_cascade, 1500);
    CHECK(a->escalated > 100 && a->escalated < 1400);
    /* the trace carries both stages of an escalated request, the first with its
     * confidence, and reads back */
    const char *tpath = test_tmp_path("cascade.jsonl");
    FILE *tf = fopen(tpath, "w");
    CHECK(tf != NULL);
    o.trace = tf;
    CHECK_EQ_INT(sim_run(s, &o, b, err, sizeof err), 0);
    fclose(tf);
    o.trace = NULL;
    struct trace_record *recs = NULL;
    size_t n = 0;
    CHECK_EQ_INT(trace_read_file(tpath, 0, &recs, &n, err, sizeof err), 0);
    CHECK_EQ_INT(n, 1500);
    long esc = 0;
    for (size_t i = 0; i < n; i++) {
        const struct trace_record *t = &recs[i];
        CHECK(t->nout >= 1);
        const struct trace_outcome *t1 = &t->out[0];
        CHECK_EQ_INT(t1->stage, 1);
        CHECK_EQ_INT(t1->role, FY_ROLE_EDGE);
        CHECK(t1->o.confidence >= 0 && t1->o.confidence <= 1);
        CHECK(t1->o.plan.escalate_node == 1 && t1->o.plan.escalate_below > 0.59);
        CHECK_EQ_INT(t1->o.escalated, t1->o.confidence < 0.6);
        if (t1->o.escalated) {
            esc++;
            CHECK_EQ_INT(t->nout, 2);
            CHECK_EQ_INT(t->out[1].stage, 2);
            CHECK_EQ_INT(t->out[1].role, FY_ROLE_CLOUD);
            CHECK(t->out[1].o.plan.escalate_below <= 0); /* a plain run on the cloud node */
            CHECK(t->out[1].o.e2e_ms > 0);
        } else {
            CHECK_EQ_INT(t->nout, 1);
        }
    }
    CHECK_EQ_INT(esc, a->escalated);
    free(recs);
    /* below=0 never escalates: exactly the edge-only run */
    o.params = "below=0";
    CHECK_EQ_INT(sim_run(s, &o, a, err, sizeof err), 0);
    CHECK_EQ_INT(run(s, "edge-only", 7, NULL, b), 0);
    CHECK_EQ_INT(a->plans_cascade, 0);
    CHECK(same_result(a, b));
    /* edge-only requests: the cascade policy never escalates them to the cloud */
    sim_setup_fini(s);
    const char *priv[] = {"experiment.requests=1500", "sweep.values=wan-200",
                          "experiment.privacy_edge_share=0.3", NULL};
    CHECK_EQ_INT(build(s, "data/experiments/moaoff-vqav2.ini", priv, err, sizeof err), 0);
    o.params = NULL;
    CHECK_EQ_INT(sim_run(s, &o, a, err, sizeof err), 0);
    CHECK_EQ_INT(a->privacy_violations, 0);
    CHECK(a->plans_cascade > 900 && a->plans_cascade < 1200);
    /* ... while a fixed cascade plan that ignores privacy is counted */
    memset(&g_rec, 0, sizeof g_rec);
    pol_plan_keep(&g_fixed_plan, 0);
    g_fixed_plan.escalate_node = 1;
    g_fixed_plan.escalate_below = 0.5;
    struct sim_run_opts of = {.pol = &g_fixed, .seed = 7, .use_pred = 0};
    CHECK_EQ_INT(sim_run(s, &of, a, err, sizeof err), 0);
    CHECK(a->privacy_violations > 300 && a->privacy_violations < 600);
    sim_setup_fini(s);
    free(s);
    free(a);
    free(b);
}

TEST(sim_confidence_separates_right_from_wrong_as_documented)
{
    /* at a fixed P(correct), AUC(confidence | right vs wrong) = Phi(sep / (noise sqrt 2)) */
    const double cases[][3] = {{1, 1, 0.6}, {2, 0.5, 0.3}, {0.5, 1.5, 0.8}};
    for (int c = 0; c < 3; c++) {
        struct sim_quality q;
        sim_quality_default(&q);
        q.confidence_sep = cases[c][0];
        q.confidence_noise = cases[c][1];
        double p = cases[c][2];
        struct rng r;
        rng_seed(&r, 11 + (uint64_t)c);
        enum { N = 20000 };
        struct pred__qpair *v = malloc(N * sizeof *v);
        double mean_right = 0, mean_wrong = 0;
        long nr = 0;
        for (int i = 0; i < N; i++) {
            int right = rng_uniform(&r) < p;
            v[i].s = sim_quality_confidence(&q, p, right, rng_normal(&r, 0, 1));
            v[i].y = right;
            nr += right;
            if (right) mean_right += v[i].s;
            else mean_wrong += v[i].s;
        }
        double want = 0.5 * erfc(-(q.confidence_sep / (q.confidence_noise * sqrt(2))) / sqrt(2));
        CHECK_NEAR(pred__auc(v, N), want, 0.012);
        CHECK(mean_right / nr > mean_wrong / (N - nr));
        free(v);
    }
    /* sep = noise = 0: the confidence is exactly P(correct) */
    struct sim_quality q;
    sim_quality_default(&q);
    q.confidence_sep = q.confidence_noise = 0;
    CHECK_NEAR(sim_quality_confidence(&q, 0.37, 1, 2.0), 0.37, 1e-9);
    CHECK_NEAR(sim_quality_confidence(&q, 0.37, 0, -2.0), 0.37, 1e-9);
}

TEST(sim_ferry_cascades_never_escalate_edge_only_requests)
{
    /* an informative confidence (sep 4) makes ferry cascade on the dialogue setup; 30 %
     * of the requests are edge-only: none of them may reach the cloud */
    const char *sets[] = {"experiment.requests=800", "quality.confidence_sep=4",
                          "experiment.privacy_edge_share=0.3", NULL};
    struct sim_setup *s = calloc(1, sizeof *s);
    struct sim_result *r = calloc(1, sizeof *r);
    char err[512];
    CHECK_EQ_INT(build(s, "data/experiments/dialogue.ini", sets, err, sizeof err), 0);
    CHECK_EQ_INT(run(s, "ferry", 101, NULL, r), 0);
    CHECK(r->plans_cascade > 20);   /* cascades were planned ... */
    CHECK(r->escalated > 5);        /* ... and escalated */
    CHECK_EQ_INT(r->privacy_violations, 0);
    sim_setup_fini(s);
    free(s);
    free(r);
}
