/* test-gw-share — `ferry serve --model` and several replicas sharing node load and
 * learned state through a real redis-server (gw/share.h). Everything over real sockets:
 * redis on a unix socket in the test's temp directory (--port 0: no TCP port to pick),
 * `ferry emulate` backends and `ferry serve` replicas as child processes. Waits poll a
 * condition a bounded number of times; no assert is on wall time. */
#include "test.h"
#include "gwtest.h"

#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

#include "gw/share.h"
#include "pred/milp.h"
#include "util/buf.h"
#include "util/rng.h"

/* ==== merging MILP's RLS models (pred/milp.h rls_merge) ============================== */

/* Prefill-like regressors of milp.c: prompt tokens, 1, running sequences, recent TTFT
 * (s), queued ktokens. */
static void prefill_x(struct rng *r, double *x)
{
    x[0] = 100 + 2900 * rng_uniform(r);
    x[1] = 1;
    x[2] = (double)rng_below(r, 9);
    x[3] = 2 * rng_uniform(r);
    x[4] = 20 * rng_uniform(r);
}

static double prefill_y(struct rng *r, const double *x)
{
    static const double w[5] = {0.3, 20, 15, 100, 5};   /* ms per token, ms, ... */
    double y = 0;
    for (int i = 0; i < 5; i++) y += w[i] * x[i];
    return y + rng_normal(r, 0, 50);
}

/* One stream of n (<= 1000) observations, alternately to replica a and replica b, and
 * all of them to one model `all`; a and b start from base (all from milp.c's prefill
 * prior at forgetting lambda). a then merges b's learning. Returned: the largest
 * relative difference of a's predictions from all's over 200 new requests; the same in
 * *writer for b alone (what last-writer-wins kept) and in *order for one model fed the
 * same observations in another order (a's half, then b's). */
static double merge_gap(double lambda, int n, double *writer, double *order,
                        struct rls *merged, struct rls *all_out)
{
    struct rls base, a, b, all, seq;
    rls_init(&base, 5, (double[]){0.5, 0, 0, 0, 0}, (double[]){0.25, 100, 100, 1e4, 1e4},
             lambda, 4);
    a = b = all = seq = base;
    struct rng r;
    rng_seed(&r, 11);
    double x[RLS_MAX], X[1000][5], Y[1000];
    for (int i = 0; i < n; i++) {
        prefill_x(&r, x);
        double y = prefill_y(&r, x);
        rls_update(i % 2 ? &b : &a, x, y);
        rls_update(&all, x, y);
        memcpy(X[i], x, sizeof X[i]);
        Y[i] = y;
    }
    for (int h = 0; h < 2; h++)
        for (int i = h; i < n; i += 2) rls_update(&seq, X[i], Y[i]);
    double gap = -1, wgap = -1, sgap = 0;
    if (rls_merge(&a, &b, &base) == 1) {
        gap = wgap = 0;
        for (int i = 0; i < 200; i++) {
            prefill_x(&r, x);
            double y = rls_predict(&all, x);
            gap = fmax(gap, fabs(rls_predict(&a, x) - y) / y);
            wgap = fmax(wgap, fabs(rls_predict(&b, x) - y) / y);
            sgap = fmax(sgap, fabs(rls_predict(&seq, x) - y) / y);
        }
    }
    *writer = wgap;
    *order = sgap;
    if (merged) *merged = a;
    if (all_out) *all_out = all;
    return gap;
}

TEST(share_rls_merge_without_forgetting_equals_one_model_of_all_data)
{
    /* lambda = 1: the information form adds up exactly; merged and single model differ
     * by round-off only (the RLS recursion and two 5x5 Cholesky inversions) */
    double writer, order;
    struct rls m, all;
    double gap = merge_gap(1.0, 400, &writer, &order, &m, &all);
    CHECK(gap >= 0 && gap < 1e-9);
    for (int i = 0; i < 5; i++) CHECK_NEAR(m.w[i], all.w[i], 1e-8 * (1 + fabs(all.w[i])));
    for (int i = 0; i < 5; i++)
        CHECK_NEAR(m.P[i * RLS_MAX + i], all.P[i * RLS_MAX + i], 1e-6 * all.P[i * RLS_MAX + i]);
    CHECK_EQ_INT(m.n, 400);
}

TEST(share_rls_merge_with_forgetting_predicts_like_one_model_of_all_data)
{
    /* milp.c's lambda = 0.998 over 600 observations, 300 on each replica (each side's
     * base weight 0.998^300 = 0.55): the merge is exact to first order in (1 - lambda) k
     * only. With forgetting, one model of all data depends on the order they came in;
     * the merge must be closer to it than that same model fed the same data in another
     * order (a's half, then b's), and much closer than one replica's model alone.
     * (Seed 11: 0.6 %, 1.8 % and 4.4 %; seeds 1-6 gave 0.25-0.76 % against 0.96-2.2 %
     * and 1.6-7.7 %.) */
    double writer, order;
    double gap = merge_gap(0.998, 600, &writer, &order, NULL, NULL);
    CHECK(gap >= 0);
    CHECK(gap < order);
    CHECK(gap < 0.5 * writer);
}

TEST(share_rls_merge_refuses_states_that_do_not_descend_from_the_base)
{
    struct rls base, a, b;
    rls_init(&base, 2, (double[]){1, 0}, (double[]){1, 1}, 1.0, 1);
    a = b = base;
    CHECK_EQ_INT(rls_merge(&a, &b, &base), 0);       /* nothing new: untouched */
    rls_update(&b, (double[]){1, 1}, 3);
    struct rls behind = base;
    behind.n = -1;                                    /* "older" than the base */
    CHECK_EQ_INT(rls_merge(&behind, &b, &base), -1);
    b.lambda = 0.99;                                  /* another forgetting factor */
    CHECK_EQ_INT(rls_merge(&a, &b, &base), -1);
    CHECK_NEAR(a.w[0], 1, 0);
    CHECK_EQ_INT(a.n, 0);
}

/* ==== the load-value parser ========================================================= */

TEST(share_parse_load_adds_known_nodes_and_refuses_garbage)
{
    const char names[2][FY_NAME_MAX] = {"edge", "cloud"};
    int inf[2] = {0, 0};
    double tok[2] = {0, 0};
    const char *v = "ferry-load 1\nedge 3 120\nother 9 9\ncloud 1 40\n";
    CHECK_EQ_INT(gw_share_parse_load(v, strlen(v), names, 2, inf, tok), 2);
    CHECK_EQ_INT(inf[0], 3);
    CHECK_EQ_INT(inf[1], 1);
    CHECK_NEAR(tok[0], 120, 0);
    CHECK_NEAR(tok[1], 40, 0);
    /* a second replica's value adds up; last line without a newline is read */
    const char *w = "ferry-load 1\nedge 2 30";
    CHECK_EQ_INT(gw_share_parse_load(w, strlen(w), names, 2, inf, tok), 1);
    CHECK_EQ_INT(inf[0], 5);
    CHECK_NEAR(tok[0], 150, 0);
    /* negative counts clamp to 0, non-numbers and NaN are skipped */
    const char *bad = "ferry-load 1\nedge -4 -1\ncloud x 1\ncloud 1 nan\ncloud 1 2 3\n edge 1 1\n";
    CHECK_EQ_INT(gw_share_parse_load(bad, strlen(bad), names, 2, inf, tok), 1);
    CHECK_EQ_INT(inf[0], 5);
    CHECK_EQ_INT(inf[1], 1);
    /* not a load value at all */
    CHECK_EQ_INT(gw_share_parse_load("edge 1 1\n", 9, names, 2, inf, tok), -1);
    CHECK_EQ_INT(gw_share_parse_load("", 0, names, 2, inf, tok), -1);
    /* the length bounds the read: the same bytes cut before the numbers add nothing */
    CHECK_EQ_INT(gw_share_parse_load(v, strlen("ferry-load 1\nedge"), names, 2, inf, tok), 0);
    char *big = malloc(GW_SHARE_LOAD_MAX + 2);
    CHECK(big);
    memset(big, 'x', GW_SHARE_LOAD_MAX + 1);
    memcpy(big, GW_SHARE_LOAD_MAGIC, strlen(GW_SHARE_LOAD_MAGIC));
    int r = gw_share_parse_load(big, GW_SHARE_LOAD_MAX + 1, names, 2, inf, tok);
    free(big);
    CHECK_EQ_INT(r, -1);
    CHECK_EQ_INT(inf[0], 5);
}

/* ==== processes ===================================================================== */

static redisContext *redis_at(const char *sock)
{
    redisContext *c = redisConnectUnix(sock);
    if (c && c->err) {
        redisFree(c);
        return NULL;
    }
    return c;
}

/* redis-server on a unix socket only; waits until it answers PING. */
static pid_t redis_start(const char *sock)
{
    unlink(sock);
    const char *argv[] = {"redis-server", "--port", "0", "--unixsocket", sock, "--save", "",
                          "--appendonly", "no", NULL};
    pid_t pid = gwt_spawn(argv, 1);
    for (int i = 0; i < 500; i++) {
        redisContext *c = redis_at(sock);
        if (c) {
            redisReply *r = redisCommand(c, "PING");
            int ok = r && r->type == REDIS_REPLY_STATUS;
            if (r) freeReplyObject(r);
            redisFree(c);
            if (ok) return pid;
        }
        usleep(10000);
    }
    gwt_kill(&pid, SIGKILL);
    return -1;
}

/* ==== HTTP ========================================================================== */

/* running + queued of a node as a replica's policy sees it */
static double node_load(int port, const char *name)
{
    return gwt_node_num(port, name, "running") + gwt_node_num(port, name, "queued");
}

static double node_num_inflight(int port, const char *name)
{
    return gwt_node_num(port, name, "inflight");
}

static double node_num_updates(int port, const char *name)
{
    return gwt_node_num(port, name, "predictor.mgqp_updates");
}

/* MILP's observations of the node (the latency model learns from every completion). */
static double node_num_latency_obs(int port, const char *name)
{
    return gwt_node_num(port, name, "predictor.observations");
}

static char *chat(const char *model)
{
    static char b[512];
    snprintf(b, sizeof b,
             "{\"model\":\"%s\",\"max_tokens\":8,\"messages\":[{\"role\":\"user\","
             "\"content\":\"Describe a harbour at dawn in one sentence.\"}]}", model);
    return b;
}

/* `promtool check metrics` on the replica's /metrics page: its exit status. */
static int promtool_ok(int port)
{
    struct gwt_resp r;
    int rc = gwt_http(port, "/metrics", NULL, &r) == 0 && r.status == 200
                 ? gwt_promtool(r.body.data, r.body.len, "metrics.txt")
                 : -1;
    gwt_resp_fini(&r);
    return rc;
}

/* A chat request written on a raw socket and left open (in flight at the gateway). */
static int hold_request(int port, const char *model)
{
    int fd = gwt_connect(port, 0);
    if (fd >= 0 && gwt_raw_post(fd, chat(model), 0)) {
        close(fd);
        return -1;
    }
    return fd;
}

/* [node] sections for an edge and a cloud emulator; metrics = none so that a replica's
 * view of a node's load comes only from its own and the other replicas' requests (the
 * emulator's /metrics would otherwise report every replica's requests by itself). */
static void cfg_text(char *out, size_t cap, int eport, int cport, const char *extra)
{
    snprintf(out, cap,
             "[server]\nlisten = 127.0.0.1:0\n[policy]\nname = ferry\n"
             "[health]\ninterval_ms = 600000\n"
             "[node edge-3090]\nrole = edge\nurl = http://127.0.0.1:%d\nprofile = data/profiles\n"
             "metrics = none\n"
             "[node cloud-a100]\nrole = cloud\nurl = http://127.0.0.1:%d\nprofile = data/profiles\n"
             "metrics = none\n%s",
             eport, cport, extra ? extra : "");
}

/* ==== --model ======================================================================= */

/* `ferry sim` writes a counterfactual trace of N requests, `ferry train` fits it. */
static int train_model(const char *out, int n)
{
    char trace[512], cmd[2048];
    snprintf(trace, sizeof trace, "%s.jsonl", out);
    snprintf(cmd, sizeof cmd,
             "'%s' sim data/experiments/moaoff-vqav2.ini --policies random --seeds 1 "
             "--requests %d --counterfactual --trace '%s' --set sweep.values=wan-300 >/dev/null "
             "&& '%s' train '%s' -o '%s' --holdout 0 >/dev/null",
             gwt_ferry_bin(), n, trace, gwt_ferry_bin(), trace, out);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* "mgqp Q0 N" of node NAME in a model file: the number of quality labels it learned. */
static long model_mgqp_n(const char *path, const char *name)
{
    FILE *f = fopen(path, "r");
    if (!f) return -1;
    static char line[1 << 16];
    int in = 0;
    long n = -1;
    char want[128];
    snprintf(want, sizeof want, "node %s ", name);
    while (fgets(line, sizeof line, f)) {
        if (!strncmp(line, "node ", 5)) in = !strncmp(line, want, strlen(want));
        double q0;
        if (in && sscanf(line, "mgqp %lf %ld", &q0, &n) == 2) break;
    }
    fclose(f);
    return n;
}

/* Sends one routed request and feedback for it: the answering node's MGQP learns once. */
static int learn_once(int port, const char *model)
{
    struct buf h;
    buf_init(&h);
    long st = gwt_http_status(port, "/v1/chat/completions", chat(model), NULL, &h);
    char id[96], fb[256];
    gwt_hdr_in(h.data, "X-Ferry-Request-Id", id, sizeof id);
    buf_fini(&h);
    if (st != 200 || !id[0]) return -1;
    snprintf(fb, sizeof fb, "{\"request_id\":\"%s\",\"score\":1}", id);
    return gwt_http_status(port, "/v1/feedback", fb, NULL, NULL) == 200 ? 0 : -1;
}

TEST(serve_model_changes_predictions_and_bad_models_are_refused)
{
    gwt_ferry_bin();
    char m1[512], bad[512], cfgp[512], msg[512], args[2048];
    snprintf(m1, sizeof m1, "%s", test_tmp_path("m1.fy"));
    snprintf(bad, sizeof bad, "%s", test_tmp_path("bad.fy"));
    CHECK_EQ_INT(train_model(m1, 300), 0);
    long n_edge = model_mgqp_n(m1, "edge-3090");
    CHECK(n_edge > 0);
    char pe[512], pc[512];
    snprintf(pe, sizeof pe, "%s", test_tmp_path("m-e.port"));
    snprintf(pc, sizeof pc, "%s", test_tmp_path("m-c.port"));
    int eport = 0, cport = 0;
    pid_t ep = gwt_emulate("edge-3090", pe, &eport, "--seed", "1");
    pid_t cp = gwt_emulate("cloud-a100", pc, &cport, "--seed", "2");
    char cfg[2048];
    cfg_text(cfg, sizeof cfg, eport, cport, NULL);
    struct gwt_gw plain = {0}, trained = {0};
    int ok = eport > 0 && cport > 0 && gwt_gw_start(&plain, "m-plain.ini", cfg, NULL, NULL) == 0 &&
             gwt_gw_start(&trained, "m-trained.ini", cfg, "--model", m1) == 0;
    double up_plain = NAN, up_trained = NAN;
    char q_plain[64] = "", q_trained[64] = "";
    if (ok) {
        up_plain = gwt_node_num(plain.port, "edge-3090", "predictor.mgqp_updates");
        up_trained = gwt_node_num(trained.port, "edge-3090", "predictor.mgqp_updates");
        struct buf h1, h2;
        buf_init(&h1);
        buf_init(&h2);
        gwt_http_status(plain.port, "/v1/chat/completions", chat("edge-3090"), NULL, &h1);
        gwt_http_status(trained.port, "/v1/chat/completions", chat("edge-3090"), NULL, &h2);
        gwt_hdr_in(h1.data, "X-Ferry-Predicted-Quality", q_plain, sizeof q_plain);
        gwt_hdr_in(h2.data, "X-Ferry-Predicted-Quality", q_trained, sizeof q_trained);
        buf_fini(&h1);
        buf_fini(&h2);
    }
    gwt_gw_stop(&plain);
    gwt_gw_stop(&trained);
    gwt_kill(&ep, SIGTERM);
    gwt_kill(&cp, SIGTERM);
    CHECK(ok);
    CHECK_NEAR(up_plain, 0, 0);
    CHECK_NEAR(up_trained, (double)n_edge, 0);   /* the file's labels, not the priors */
    CHECK(q_plain[0] && q_trained[0]);
    CHECK(strcmp(q_plain, q_trained) != 0);      /* the same request, another prediction */

    /* a damaged file: cut in the middle (no checksum line), then one byte changed */
    snprintf(cfgp, sizeof cfgp, "%s", test_tmp_path("m-check.ini"));
    CHECK(test_write_file(cfgp, cfg) == 0);
    snprintf(args, sizeof args, "serve --check -c '%s' --model '%s'", cfgp, m1);
    CHECK_EQ_INT(test_ferry_cli(args, msg, sizeof msg), 0);
    char cmd[1200];
    snprintf(cmd, sizeof cmd, "head -c 3000 '%s' > '%s'", m1, bad);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(args, sizeof args, "serve --check -c '%s' --model '%s'", cfgp, bad);
    CHECK_CLI(args, 1, "model", "bad.fy", "checksum");
    snprintf(cmd, sizeof cmd, "sed 's/^shared /shared 1/' '%s' > '%s'", m1, bad);
    CHECK_EQ_INT(system(cmd), 0);
    snprintf(args, sizeof args, "serve -c '%s' --model '%s'", cfgp, bad);  /* serving, too */
    CHECK_CLI(args, 1, "checksum mismatch");
    /* [pred] model = a trace, not a model */
    char cfg2[2600];
    snprintf(cfg2, sizeof cfg2, "%s[pred]\nmodel = %s.jsonl\n", cfg, m1);
    CHECK(test_write_file(cfgp, cfg2) == 0);
    snprintf(args, sizeof args, "serve --check -c '%s'", cfgp);
    CHECK_CLI(args, 1, "not a ferry model file");
    /* mismatched: the file's edge-3090 was trained for qwen2-vl-2b; here the node of that
     * name runs the cloud profile's model */
    snprintf(cfg2, sizeof cfg2,
             "[node edge-3090]\nrole = edge\nurl = http://127.0.0.1:9\nprofile = data/profiles\n"
             "profile_node = cloud-a100\n");
    CHECK(test_write_file(cfgp, cfg2) == 0);
    snprintf(args, sizeof args, "serve --check -c '%s' --model '%s'", cfgp, m1);
    CHECK_CLI(args, 1, "edge-3090", "trained for model");
    snprintf(args, sizeof args, "serve --check -c '%s' --model '%s'", cfgp, "/nonexistent/m.fy");
    CHECK_CLI(args, 1, "/nonexistent/m.fy");
}

TEST(serve_model_precedence_with_the_state_file)
{
    gwt_ferry_bin();
    char m1[512], m2[512], st[512];
    snprintf(m1, sizeof m1, "%s", test_tmp_path("p1.fy"));
    snprintf(m2, sizeof m2, "%s", test_tmp_path("p2.fy"));
    snprintf(st, sizeof st, "%s", test_tmp_path("p.state"));
    CHECK_EQ_INT(train_model(m1, 300), 0);
    CHECK_EQ_INT(train_model(m2, 200), 0);
    long n1 = model_mgqp_n(m1, "cloud-a100"), n2 = model_mgqp_n(m2, "cloud-a100");
    CHECK(n1 > 0 && n2 > 0 && n1 != n2);
    char pe[512], pc[512];
    snprintf(pe, sizeof pe, "%s", test_tmp_path("p-e.port"));
    snprintf(pc, sizeof pc, "%s", test_tmp_path("p-c.port"));
    int eport = 0, cport = 0;
    pid_t ep = gwt_emulate("edge-3090", pe, &eport, "--seed", "1");
    pid_t cp = gwt_emulate("cloud-a100", pc, &cport, "--seed", "2");
    char extra[700], cfg[2600];
    snprintf(extra, sizeof extra, "[server]\nstate_file = %s\n", st);
    cfg_text(cfg, sizeof cfg, eport, cport, extra);
    double u[4] = {NAN, NAN, NAN, NAN};
    int learned = -1;
    struct gwt_gw g = {0};
    /* 1: model m1, learns once from feedback, saves at shutdown */
    if (eport > 0 && cport > 0 && gwt_gw_start(&g, "p.ini", cfg, "--model", m1) == 0) {
        learned = learn_once(g.port, "cloud-a100");
        u[0] = gwt_node_num(g.port, "cloud-a100", "predictor.mgqp_updates");
        gwt_gw_stop(&g);
    }
    /* 2: same model again: the state file descends from it and wins */
    if (gwt_gw_start(&g, "p.ini", cfg, "--model", m1) == 0) {
        u[1] = gwt_node_num(g.port, "cloud-a100", "predictor.mgqp_updates");
        gwt_gw_stop(&g);
    }
    /* 3: a newly trained model: the state file learned from m1, so m2 wins */
    if (gwt_gw_start(&g, "p.ini", cfg, "--model", m2) == 0) {
        u[2] = gwt_node_num(g.port, "cloud-a100", "predictor.mgqp_updates");
        gwt_gw_stop(&g);
    }
    /* 4: no model: the state file (now m2's) is not of the priors' lineage */
    if (gwt_gw_start(&g, "p.ini", cfg, NULL, NULL) == 0) {
        u[3] = gwt_node_num(g.port, "cloud-a100", "predictor.mgqp_updates");
        gwt_gw_stop(&g);
    }
    gwt_kill(&ep, SIGTERM);
    gwt_kill(&cp, SIGTERM);
    CHECK_EQ_INT(learned, 0);
    CHECK_NEAR(u[0], (double)(n1 + 1), 0);
    CHECK_NEAR(u[1], (double)(n1 + 1), 0);
    CHECK_NEAR(u[2], (double)n2, 0);
    CHECK_NEAR(u[3], 0, 0);
}

/* ==== [share] ======================================================================= */

TEST(share_bad_config_is_a_clear_error)
{
    gwt_ferry_bin();
    struct { const char *lines, *needle; } cases[] = {
        {"redis = localhost\n", "expected HOST:PORT"},
        {"redis = 127.0.0.1:0\n", "redis port"},
        {"redis = 127.0.0.1:6379\ninterval_ms = 0\n", "interval_ms"},
        {"redis = 127.0.0.1:6379\nprefix = a b\n", "prefix"},
        {"redis = 127.0.0.1:6379\ninterval_ms = 500\nttl_ms = 400\n", "ttl_ms"},
        {"redis = 127.0.0.1:6379\nchannel = x\n", "unknown key 'channel'"},
        {"redis = no-such-host.invalid:6379\n", "cannot resolve"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char cfg[1024], path[512], args[700], msg[512];
        snprintf(cfg, sizeof cfg,
                 "[node e]\nrole = edge\nurl = http://127.0.0.1:9\n[share]\n%s", cases[i].lines);
        snprintf(path, sizeof path, "%s", test_tmp_path("bad-share.ini"));
        CHECK(test_write_file(path, cfg) == 0);
        snprintf(args, sizeof args, "serve --check -c '%s'", path);
        int rc = test_ferry_cli(args, msg, sizeof msg);
        if (rc != 1 || !strstr(msg, cases[i].needle)) {
            test_fail(__FILE__, __LINE__, "case %zu: exit %d, '%s' lacks '%s'", i, rc, msg,
                      cases[i].needle);
            return;
        }
    }
}

TEST(share_replicas_see_each_others_load_and_survive_redis_loss)
{
    gwt_ferry_bin();
    char sock[512], pe[512], pc[512];
    snprintf(sock, sizeof sock, "%s", test_tmp_path("redis.sock"));
    snprintf(pe, sizeof pe, "%s", test_tmp_path("s-e.port"));
    snprintf(pc, sizeof pc, "%s", test_tmp_path("s-c.port"));
    pid_t rp = redis_start(sock);
    CHECK(rp > 0);
    int eport = 0, cport = 0;
    /* the edge holds every request 10 min before its first token: they stay in flight
     * for the whole test, however slow the machine (the emulator is killed at the end) */
    pid_t ep = gwt_emulate("edge-3090", pe, &eport, "--fault-stall-first", "600000@1");
    pid_t cp = gwt_emulate("cloud-a100", pc, &cport, "--seed", "2");
    char extra[1024], cfga[2600], cfgb[2600];
    snprintf(extra, sizeof extra,
             "[timeouts]\nfirst_byte_ms = 900000\nidle_ms = 900000\n"
             "[share]\nredis = %s\nreplica = a\n", sock);
    cfg_text(cfga, sizeof cfga, eport, cport, extra);
    snprintf(extra, sizeof extra,
             "[timeouts]\nfirst_byte_ms = 900000\nidle_ms = 900000\n"
             "[share]\nredis = %s\nreplica = b\n", sock);
    cfg_text(cfgb, sizeof cfgb, eport, cport, extra);
    struct gwt_gw a = {0}, b = {0};
    int ok = eport > 0 && cport > 0 && gwt_gw_start(&a, "a.ini", cfga, NULL, NULL) == 0 &&
             gwt_gw_start(&b, "b.ini", cfgb, NULL, NULL) == 0;
    int fds[3] = {-1, -1, -1};
    long fb_status = 0, fb_bogus = 0, fb_twice = 0;
    double fb_a = NAN, fb_b = NAN, fb_applied = NAN;
    double a_in = NAN, b_in = NAN, b_sees = NAN, b_idle = NAN, b_after = NAN, rem = NAN;
    double conn_a = NAN, conn_b = NAN, back_a = NAN, back_b = NAN;
    int prom = -1;
    double b_remote = NAN;
    long st_a = 0, st_b = 0;
    if (ok) {
        rem = gwt_wait_for(gwt_metric, b.port, "ferry_share_remote_replicas", 1);
        b_idle = node_load(b.port, "edge-3090");
        /* feedback for a request A served, sent to B: B forwards it, A's MGQP learns */
        struct buf h;
        buf_init(&h);
        char id[96] = "", fb[256];
        if (gwt_http_status(a.port, "/v1/chat/completions", chat("cloud-a100"), NULL, &h) == 200)
            gwt_hdr_in(h.data, "X-Ferry-Request-Id", id, sizeof id);
        buf_fini(&h);
        snprintf(fb, sizeof fb, "{\"request_id\":\"%s\",\"score\":1}", id);
        fb_status = gwt_http_status(b.port, "/v1/feedback", fb, NULL, NULL);
        fb_a = gwt_wait_for(node_num_updates, a.port, "cloud-a100", 1);
        fb_b = gwt_node_num(b.port, "cloud-a100", "predictor.mgqp_updates");
        fb_applied = gwt_metric(a.port, "ferry_share_feedback_total{direction=\"applied\"}");
        fb_twice = gwt_http_status(a.port, "/v1/feedback", fb, NULL, NULL);   /* one score per request */
        snprintf(fb, sizeof fb, "{\"request_id\":\"%s-999999\",\"score\":1}", "fy0000dead");
        fb_bogus = gwt_http_status(b.port, "/v1/feedback", fb, NULL, NULL);
        for (int i = 0; i < 3; i++) fds[i] = hold_request(a.port, "edge-3090");
        a_in = gwt_wait_for(node_num_inflight, a.port, "edge-3090", 3);
        b_sees = gwt_wait_for(node_load, b.port, "edge-3090", 3);
        b_in = gwt_node_num(b.port, "edge-3090", "inflight");   /* B itself sent nothing */
        b_remote = gwt_metric(b.port, "ferry_share_remote_inflight{node=\"edge-3090\"}");
        rem = gwt_metric(b.port, "ferry_share_remote_replicas");
        prom = promtool_ok(b.port);
        /* redis goes away: both replicas keep answering, and say so */
        gwt_kill(&rp, SIGKILL);
        conn_a = gwt_wait_for(gwt_metric, a.port, "ferry_share_connected", 0);
        conn_b = gwt_wait_for(gwt_metric, b.port, "ferry_share_connected", 0);
        st_a = gwt_http_status(a.port, "/v1/chat/completions", chat("cloud-a100"), NULL, NULL);
        st_b = gwt_http_status(b.port, "/v1/chat/completions", chat("cloud-a100"), NULL, NULL);
        /* the others' numbers are dropped once they are older than the TTL */
        b_after = gwt_wait_for(node_load, b.port, "edge-3090", 0);
        /* redis back on the same socket: both reconnect */
        rp = redis_start(sock);
        back_a = gwt_wait_for(gwt_metric, a.port, "ferry_share_connected", 1);
        back_b = gwt_wait_for(gwt_metric, b.port, "ferry_share_connected", 1);
    }
    double b_again = ok ? gwt_wait_for(node_load, b.port, "edge-3090", 3) : NAN;
    /* a replica killed without a goodbye: its published load expires with its key */
    gwt_kill(&a.pid, SIGKILL);
    double b_dead = ok ? gwt_wait_for(node_load, b.port, "edge-3090", 0) : NAN;
    for (int i = 0; i < 3; i++)
        if (fds[i] >= 0) close(fds[i]);
    gwt_gw_stop(&b);
    gwt_kill(&ep, SIGKILL);
    gwt_kill(&cp, SIGTERM);
    gwt_kill(&rp, SIGTERM);
    CHECK(ok);
    CHECK_NEAR(b_idle, 0, 0);
    CHECK_NEAR(rem, 1, 0);
    CHECK_EQ_INT(fb_status, 202);
    CHECK_NEAR(fb_a, 1, 0);
    CHECK_NEAR(fb_b, 0, 0);
    CHECK_NEAR(fb_applied, 1, 0);
    CHECK_EQ_INT(fb_twice, 404);
    CHECK_EQ_INT(fb_bogus, 404);   /* no live replica has that prefix */
    CHECK(fds[0] >= 0 && fds[1] >= 0 && fds[2] >= 0);
    CHECK_NEAR(a_in, 3, 0);
    CHECK_NEAR(b_in, 0, 0);
    CHECK_NEAR(b_sees, 3, 0);       /* B's policy counts A's requests at the node */
    CHECK_NEAR(b_remote, 3, 0);
    CHECK_NEAR(rem, 1, 0);
    CHECK_EQ_INT(prom, 0);          /* the page with the share metrics passes promtool */
    CHECK_NEAR(conn_a, 0, 0);
    CHECK_NEAR(conn_b, 0, 0);
    CHECK_EQ_INT(st_a, 200);
    CHECK_EQ_INT(st_b, 200);
    CHECK_NEAR(b_after, 0, 0);
    CHECK_NEAR(back_a, 1, 0);
    CHECK_NEAR(back_b, 1, 0);
    CHECK_NEAR(b_again, 3, 0);
    CHECK_NEAR(b_dead, 0, 0);
}

TEST(share_learned_state_reaches_a_new_replica)
{
    gwt_ferry_bin();
    char sock[512], pe[512], pc[512];
    snprintf(sock, sizeof sock, "%s", test_tmp_path("redis2.sock"));
    snprintf(pe, sizeof pe, "%s", test_tmp_path("l-e.port"));
    snprintf(pc, sizeof pc, "%s", test_tmp_path("l-c.port"));
    pid_t rp = redis_start(sock);
    CHECK(rp > 0);
    int eport = 0, cport = 0;
    pid_t ep = gwt_emulate("edge-3090", pe, &eport, "--seed", "1");
    pid_t cp = gwt_emulate("cloud-a100", pc, &cport, "--seed", "2");
    char extra[1024], cfga[2600], cfgc[2600];
    snprintf(extra, sizeof extra, "[server]\nsave_interval_s = 1\n[share]\nredis = %s\n", sock);
    cfg_text(cfga, sizeof cfga, eport, cport, extra);
    snprintf(extra, sizeof extra, "[share]\nredis = %s\nreplica = c\n", sock);
    cfg_text(cfgc, sizeof cfgc, eport, cport, extra);
    struct gwt_gw a = {0}, c = {0}, fresh = {0};
    double ua = NAN, oa = NAN, uc = NAN, oc = NAN, uf = NAN, saves = NAN;
    int learned = -1, in_redis = 0, stop_a = -1;
    if (eport > 0 && cport > 0 && gwt_gw_start(&a, "la.ini", cfga, NULL, NULL) == 0) {
        learned = learn_once(a.port, "cloud-a100");
        learn_once(a.port, "cloud-a100");
        ua = gwt_node_num(a.port, "cloud-a100", "predictor.mgqp_updates");
        oa = gwt_node_num(a.port, "cloud-a100", "predictor.observations");
        /* the periodic save (every save_interval_s) runs while A serves */
        for (int i = 0; i < 400 && !(saves >= 1); i++) {
            saves = gwt_metric(a.port, "ferry_share_state_saves_total");
            usleep(50000);
        }
        stop_a = gwt_gw_stop(&a);   /* and the final one at shutdown */
    }
    redisContext *rc = redis_at(sock);
    if (rc) {
        redisReply *r = redisCommand(rc, "HEXISTS ferry:state:prior bytes");
        in_redis = r && r->type == REDIS_REPLY_INTEGER && r->integer == 1;
        if (r) freeReplyObject(r);
        redisFree(rc);
    }
    if (gwt_gw_start(&c, "lc.ini", cfgc, NULL, NULL) == 0) {
        uc = gwt_node_num(c.port, "cloud-a100", "predictor.mgqp_updates");
        oc = gwt_node_num(c.port, "cloud-a100", "predictor.observations");
        gwt_gw_stop(&c);
    }
    /* C learned nothing: stopping it left A's state in place */
    char writer[64] = "";
    rc = redis_at(sock);
    if (rc) {
        redisReply *r = redisCommand(rc, "HGET ferry:state:prior replica");
        if (r && r->type == REDIS_REPLY_STRING) snprintf(writer, sizeof writer, "%s", r->str);
        if (r) freeReplyObject(r);
        redisFree(rc);
    }
    char cfgf[2600];
    cfg_text(cfgf, sizeof cfgf, eport, cport, NULL);   /* not sharing: the priors */
    if (gwt_gw_start(&fresh, "lf.ini", cfgf, NULL, NULL) == 0) {
        uf = gwt_node_num(fresh.port, "cloud-a100", "predictor.mgqp_updates");
        gwt_gw_stop(&fresh);
    }
    gwt_kill(&ep, SIGTERM);
    gwt_kill(&cp, SIGTERM);
    gwt_kill(&rp, SIGTERM);
    CHECK_EQ_INT(learned, 0);
    CHECK(saves >= 1);
    CHECK_EQ_INT(stop_a, 0);
    CHECK(in_redis);
    CHECK_NEAR(ua, 2, 0);
    CHECK(oa >= 2);
    CHECK_NEAR(uc, ua, 0);        /* C starts from what A learned */
    CHECK_NEAR(oc, oa, 0);
    CHECK_NEAR(uf, 0, 0);
    CHECK(writer[0] && strcmp(writer, "c") != 0);
}

/* Two replicas learn from different feedback at the same time; neither's learning is
 * lost: each adopts the other's (the fleet's copy is a merge, not the last writer's),
 * and a replica started afterwards has both. */
TEST(share_learning_of_two_replicas_is_merged)
{
    gwt_ferry_bin();
    char sock[512], pe[512], pc[512];
    snprintf(sock, sizeof sock, "%s", test_tmp_path("redis3.sock"));
    snprintf(pe, sizeof pe, "%s", test_tmp_path("g-e.port"));
    snprintf(pc, sizeof pc, "%s", test_tmp_path("g-c.port"));
    pid_t rp = redis_start(sock);
    CHECK(rp > 0);
    int eport = 0, cport = 0;
    pid_t ep = gwt_emulate("edge-3090", pe, &eport, "--seed", "1");
    pid_t cp = gwt_emulate("cloud-a100", pc, &cport, "--seed", "2");
    char extra[1024], cfg[3][2600];
    const char *names[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        snprintf(extra, sizeof extra, "[server]\nsave_interval_s = 1\n[share]\nredis = %s\n"
                 "replica = %s\n", sock, names[i]);
        cfg_text(cfg[i], sizeof cfg[i], eport, cport, extra);
    }
    struct gwt_gw a = {0}, b = {0}, c = {0};
    int ok = eport > 0 && cport > 0 && gwt_gw_start(&a, "ga.ini", cfg[0], NULL, NULL) == 0 &&
             gwt_gw_start(&b, "gb.ini", cfg[1], NULL, NULL) == 0;
    int la = 0, lb = 0;
    double ua = NAN, ub = NAN, uc = NAN, merges = NAN, oa = NAN, ob = NAN, oc = NAN;
    char qc[64] = "";
    if (ok) {
        for (int i = 0; i < 2; i++) la += learn_once(a.port, "cloud-a100") == 0;
        for (int i = 0; i < 3; i++) lb += learn_once(b.port, "cloud-a100") == 0;
        /* every save_interval_s each merges the fleet's copy in and writes back */
        ua = gwt_wait_for(node_num_updates, a.port, "cloud-a100", 5);
        ub = gwt_wait_for(node_num_updates, b.port, "cloud-a100", 5);
        oa = gwt_wait_for(node_num_latency_obs, a.port, "cloud-a100", 5);
        ob = gwt_wait_for(node_num_latency_obs, b.port, "cloud-a100", 5);
        merges = gwt_metric(a.port, "ferry_share_state_merges_total");
    }
    gwt_gw_stop(&a);
    gwt_gw_stop(&b);
    if (ok && gwt_gw_start(&c, "gc.ini", cfg[2], NULL, NULL) == 0) {
        uc = gwt_node_num(c.port, "cloud-a100", "predictor.mgqp_updates");
        oc = node_num_latency_obs(c.port, "cloud-a100");
        struct buf h;
        buf_init(&h);
        gwt_http_status(c.port, "/v1/chat/completions", chat("cloud-a100"), NULL, &h);
        gwt_hdr_in(h.data, "X-Ferry-Predicted-Quality", qc, sizeof qc);
        buf_fini(&h);
        gwt_gw_stop(&c);
    }
    gwt_kill(&ep, SIGTERM);
    gwt_kill(&cp, SIGTERM);
    gwt_kill(&rp, SIGTERM);
    CHECK(ok);
    double q = qc[0] ? atof(qc) : NAN;
    CHECK(q > 0 && q < 1);   /* the merged model still predicts a probability */
    CHECK_EQ_INT(la, 2);
    CHECK_EQ_INT(lb, 3);
    CHECK_NEAR(ua, 5, 0);   /* its own 2 and B's 3 */
    CHECK_NEAR(ub, 5, 0);
    CHECK(merges >= 1);
    CHECK_NEAR(uc, 5, 0);   /* last writer wins would give 2 or 3 */
    /* MILP (latency) is merged too: its observations of both replicas' completions */
    CHECK_NEAR(oa, 5, 0);
    CHECK_NEAR(ob, 5, 0);
    CHECK_NEAR(oc, 5, 0);
}
