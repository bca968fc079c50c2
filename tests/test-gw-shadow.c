/* test-gw-shadow — shadow sampling (gw/shadow.h, docs/gateway.md "Shadow sampling"):
 * the pure comparison and content readers, the [shadow] config keys, then a real
 * `ferry serve` process (FERRY_BIN, else ../ferry next to this binary) with the
 * edge-only policy in front of two in-process emulators (emu/server.h, ports from the
 * kernel): an edge node of capability -30 and a cloud node of capability +30, so that
 * an item of difficulty 0.5 is answered wrong at the edge and right in the cloud (and
 * difficulty 0 right and 1 wrong at both, by the emulator's definition). */
#define _GNU_SOURCE /* strcasestr */
#include "test.h"
#include "gwtest.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <strings.h>
#include <unistd.h>

#include "emu/faults.h"
#include "emu/server.h"
#include "gw/config.h"
#include "gw/shadow.h"
#include "pred/trace.h"
#include "util/buf.h"
#include "util/clock.h"

/* ==== pure parts ==================================================================== */

TEST(shadow_score_kinds)
{
    /* auto: a bare letter reference compares letters */
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_AUTO, "The answer is (B).", "B"), 1, 0);
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_AUTO, "C", "(B)"), 0, 0);
    /* auto: short references, containment either way */
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_AUTO, "The car is blue.", "blue"), 1, 0);
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_AUTO, "blue", "It is blue"), 1, 0);
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_AUTO, "I cannot tell from the image.", "blue"), 0, 0);
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_AUTO, "bluegreen", "blue"), 0, 0);
    /* auto: long references, token F1: 5 of 6 words shared both ways -> 5/6 */
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_AUTO, "red car parked near tree today",
                               "red car parked near big tree"), 5.0 / 6, 1e-9);
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_AUTO, "one two three four five six",
                               "1 2 3 4 5 6"), 1, 0);   /* number words normalised */
    /* explicit kinds */
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_EXACT, "Blue.", "blue"), 1, 0);
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_EXACT, "dark blue", "blue"), 0, 0);
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_CONTAINS, "dark blue", "blue"), 1, 0);
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_CONTAINS, "blue", "dark blue"), 0, 0);
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_VQA, "two", "2"), 1, 0);
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_LETTER, "option d", "The answer is D."), 1, 0);
    /* not comparable: no letter in the reference, empty reference; empty answer: 0 */
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_LETTER, "B", "no idea"), -1, 0);
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_EXACT, "blue", " ... "), -1, 0);
    CHECK_NEAR(gw_shadow_score(GW_SHADOW_EXACT, "", "blue"), 0, 0);
    CHECK_EQ_INT(gw_shadow_cmp_parse("letter"), GW_SHADOW_LETTER);
    CHECK_EQ_INT(gw_shadow_cmp_parse("mcq"), -1);
}

TEST(shadow_content_json_and_sse)
{
    struct buf b;
    buf_init(&b);
    const char *js = "{\"choices\":[{\"message\":{\"role\":\"assistant\",\"content\":\"blue\"}}]}";
    CHECK_EQ_INT(gw_shadow_content(js, strlen(js), 0, &b), 0);
    CHECK_STR(b.data, "blue");
    buf_reset(&b);
    /* cut JSON: nothing */
    CHECK_EQ_INT(gw_shadow_content(js, strlen(js) - 3, 0, &b), -1);
    const char *sse = "data: {\"choices\":[{\"delta\":{\"role\":\"assistant\"}}]}\r\n\r\n"
                      "data: {\"choices\":[{\"delta\":{\"content\":\"bl\"}}]}\n\n"
                      ": a comment\n"
                      "data:{\"choices\":[{\"delta\":{\"content\":\"ue\"}}]}\n\n"
                      "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":3}}\n\n"
                      "data: [DONE]\n\n";
    buf_reset(&b);
    CHECK_EQ_INT(gw_shadow_content(sse, strlen(sse), 1, &b), 0);
    CHECK_STR(b.data, "blue");
    /* the length bound: a content of GW_SHADOW_TEXT_MAX + 1 bytes is refused */
    size_t n = GW_SHADOW_TEXT_MAX + 1;
    char *big = malloc(n + 80);
    CHECK(big != NULL);
    int k = snprintf(big, 80, "{\"choices\":[{\"message\":{\"content\":\"");
    memset(big + k, 'x', n);
    strcpy(big + k + n, "\"}}]}");
    buf_reset(&b);
    CHECK_EQ_INT(gw_shadow_content(big, strlen(big), 0, &b), -1);
    free(big);
    buf_fini(&b);
}

TEST(shadow_config_keys_and_errors)
{
    const char *nodes = "[node e]\nrole = edge\nurl = http://127.0.0.1:1\n"
                        "[node c]\nrole = cloud\nurl = http://127.0.0.1:2\n";
    char text[1024], err[512];
    struct gw_config c;
    snprintf(text, sizeof text, "%s[shadow]\nrate = 0.02\nreference = c\nmax_inflight = 2\n"
             "max_usd_per_hour = 0.5\ncompare = letter\n", nodes);
    CHECK_EQ_INT(gw_config_load_string(text, "t.ini", &c, err, sizeof err), 0);
    CHECK_NEAR(c.shadow_rate, 0.02, 0);
    CHECK_STR(c.shadow_reference, "c");
    CHECK_EQ_INT(c.shadow_max_inflight, 2);
    CHECK_NEAR(c.shadow_max_usd_per_hour, 0.5, 0);
    CHECK_STR(c.shadow_compare, "letter");
    snprintf(text, sizeof text, "%s[shadow]\nrate = 1.5\n", nodes);
    CHECK_EQ_INT(gw_config_load_string(text, "t.ini", &c, err, sizeof err), -1);
    CHECK(strstr(err, "t.ini:8: [shadow] rate = '1.5'") != NULL);
    snprintf(text, sizeof text, "%s[shadow]\ncompare = mcq\n", nodes);
    CHECK_EQ_INT(gw_config_load_string(text, "t.ini", &c, err, sizeof err), -1);
    CHECK(strstr(err, "compare = 'mcq'") != NULL);
    snprintf(text, sizeof text, "%s[shadow]\nreference = nowhere\n", nodes);
    CHECK_EQ_INT(gw_config_load_string(text, "t.ini", &c, err, sizeof err), -1);
    CHECK(strstr(err, "reference = 'nowhere'") != NULL);
}

/* ==== over HTTP: emulators and the gateway ========================================== */

/* An emulated node answering at once; fault (kind, value) when fval is set. */
static int emu_start(struct gwt_emu *e, const char *model, double cap, enum emu_fault_kind fk,
                     const char *fval)
{
    struct emu_opts o;
    gwt_emu_opts(&o, model, 0, cap);
    if (fval && gwt_emu_fault(&o, fk, fval)) return -1;
    return gwt_emu_start(e, &o);
}

/* `ferry serve` (policy edge-only) over the two emulators with the given [shadow] text. */
static int gw_start(struct gwt_gw *g, const char *name, int edge, int cloud, const char *shadow)
{
    char cfg[4096];
    snprintf(cfg, sizeof cfg,
             "[server]\nlisten = 127.0.0.1:0\n[policy]\nname = edge-only\n"
             "[node edge]\nrole = edge\nurl = http://127.0.0.1:%d\nmodel = edge-model\n"
             "[node cloud]\nrole = cloud\nurl = http://127.0.0.1:%d\nmodel = cloud-model\n"
             "usd_per_mtok_in = 1\nusd_per_mtok_out = 1\n%s",
             edge, cloud, shadow);
    return gwt_gw_start(g, name, cfg, NULL, NULL);
}

static double shadow_n(int port, const char *outcome)
{
    char s[200];
    snprintf(s, sizeof s, "ferry_shadow_total{node=\"edge\",reference=\"cloud\",outcome=\"%s\"}",
             outcome);
    return gwt_metric(port, s);
}

/* Shadow outcomes counted so far at the gateway (every kind). */
static double shadow_all(int port)
{
    static const char *const o[] = {"agree", "disagree", "failed", "unscored",
                                    "skipped_budget", "skipped_busy"};
    double t = 0;
    for (int i = 0; i < 6; i++) {
        double v = shadow_n(port, o[i]);
        t += v > 0 ? v : 0;
    }
    return t;
}

/* Waits (bounded) until n shadow outcomes were counted; the count seen. An outcome is
 * counted when the reference has answered (or the request was skipped), so a reference
 * request counted here is also counted at its emulator (emu_done). */
static double shadow_wait(int port, double n)
{
    double t0 = clock_now_ms(), v = 0;
    while ((v = shadow_all(port)) < n && clock_now_ms() - t0 < 20000) usleep(20000);
    return v;
}

/* Chat requests an emulator completed (finished_reason stop + length). The emulator
 * counts a request before it queues the answer's last bytes (emu/server.c record_done):
 * once the gateway has an answer, this count includes it. */
static double emu_done(int port, const char *model)
{
    char s[200];
    double t = 0;
    snprintf(s, sizeof s, "vllm:request_success_total{model_name=\"%s\",finished_reason=\"stop\"}", model);
    t += gwt_metric(port, s);
    snprintf(s, sizeof s, "vllm:request_success_total{model_name=\"%s\",finished_reason=\"length\"}", model);
    t += gwt_metric(port, s);
    return t;
}

/* Item i of the test workload: i % 3 == 0 difficulty 0 (right everywhere), 1: 0.5
 * (wrong at the edge, right in the cloud), 2: difficulty 1 with a yes/no answer (wrong
 * everywhere: both say "no"). Streams when stream; extra goes into the body. */
static const char *item(int i, int stream, const char *extra)
{
    static char b[768];
    static const char *const ans[3] = {"blue", "blue", "yes"};
    static const char *const dif[3] = {"0", "0.5", "1"};
    snprintf(b, sizeof b, "{\"model\":\"ferry\",\"stream\":%s,%s%s\"messages\":[{\"role\":\"user\","
             "\"content\":\"Question %d: what colour is the car, and is it parked?\"}],"
             "\"metadata\":{\"answer\":\"%s\",\"difficulty\":%s}}",
             stream ? "true" : "false",
             stream ? "\"stream_options\":{\"include_usage\":true}," : "", extra ? extra : "", i,
             ans[i % 3], dif[i % 3]);
    return b;
}

static int served_at_edge(const struct gwt_resp *r)
{
    return r->status == 200 && strcasestr(r->hdrs.data, "X-Ferry-Node: edge\r\n") != NULL;
}

/* The request id of an answer ("" when absent), in out. */
static void request_id(const struct gwt_resp *r, char *out, size_t cap)
{
    const char *p = strcasestr(r->hdrs.data, "X-Ferry-Request-Id: ");
    size_t k = 0;
    if (p)
        for (p += 20; *p && *p != '\r' && *p != '\n' && k + 1 < cap; p++) out[k++] = *p;
    out[k] = 0;
}

TEST(gw_shadow_every_edge_answer_is_compared_with_the_cloud_and_mgqp_learns)
{
    struct gwt_emu edge, cloud;
    CHECK(emu_start(&edge, "edge-model", -30, 0, NULL) == 0);
    CHECK(emu_start(&cloud, "cloud-model", 30, 0, NULL) == 0);
    struct gwt_gw g;
    char db[512], extra[700], ids[9][48];
    snprintf(db, sizeof db, "%s", test_tmp_path("shadow1.db"));
    remove(db);
    enum { N = 9 };
    /* max_inflight = N: the client's next request may be answered before the previous
     * references are (the cloud emulator's thread is not scheduled on a busy machine),
     * and the default cap (4) would then skip some (skipped_busy: 4..8 of 9 sent) */
    snprintf(extra, sizeof extra,
             "[server]\ntrace_db = %s\n[shadow]\nrate = 1\nmax_inflight = %d\n", db, (int)N);
    int up = gw_start(&g, "shadow1.ini", edge.port, cloud.port, extra) == 0;
    int edge_ok = 0;
    double before_upd = -2, seen = -1, agree = -1, disagree = -1, edge_upd = -1, cloud_upd = -1;
    double busy = -1;
    double fb_obs = -1, feedback = -1, cloud_done = -1, cloud_inflight = -1;
    int promtool = -1;
    if (up) {
        before_upd = gwt_node_num(g.port, "edge", "mgqp_updates");
        for (int i = 0; i < N; i++) {
            struct gwt_resp r;
            gwt_http(g.port, "/v1/chat/completions", item(i, i % 2, NULL), &r);
            edge_ok += served_at_edge(&r);
            request_id(&r, ids[i], sizeof ids[i]);
            gwt_resp_fini(&r);
        }
        seen = shadow_wait(g.port, N);
        agree = shadow_n(g.port, "agree");
        disagree = shadow_n(g.port, "disagree");
        busy = shadow_n(g.port, "skipped_busy");
        edge_upd = gwt_node_num(g.port, "edge", "mgqp_updates");
        cloud_upd = gwt_node_num(g.port, "cloud", "mgqp_updates");
        cloud_inflight = gwt_node_num(g.port, "cloud", "inflight");
        fb_obs = gwt_node_num(g.port, "edge", "feedback_observations");
        feedback = gwt_metric(g.port, "ferry_feedback_total");
        cloud_done = emu_done(cloud.port, "cloud-model");
        struct gwt_resp m;
        gwt_http(g.port, "/metrics", NULL, &m);
        promtool = gwt_promtool(m.body.data, m.body.len, "shadow-metrics.txt");
        gwt_resp_fini(&m);
        gwt_gw_stop(&g);
    }
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK(up);
    CHECK_EQ_INT(edge_ok, N);
    CHECK_NEAR(seen, N, 0);
    CHECK_NEAR(busy, 0, 0);
    /* one reference request per edge answer, none for anything else */
    CHECK_NEAR(cloud_done, N, 0);
    /* difficulty 0 and 1 agree (1: both wrong alike), 0.5 disagrees */
    CHECK_NEAR(agree, 2 * N / 3, 0);
    CHECK_NEAR(disagree, N / 3, 0);
    /* each label reached MGQP through the feedback path */
    CHECK_NEAR(before_upd, 0, 0);
    CHECK_NEAR(edge_upd, N, 0);
    CHECK_NEAR(cloud_upd, 0, 0);
    CHECK_NEAR(cloud_inflight, 0, 0);     /* every reference request ended */
    CHECK_NEAR(fb_obs, N, 0);
    CHECK_NEAR(feedback, N, 0);
    CHECK_EQ_INT(promtool, 0);
    /* and the trace has each label as the request's quality */
    char jsonl[512], cmd[1400], err[256];
    snprintf(jsonl, sizeof jsonl, "%s", test_tmp_path("shadow1.jsonl"));
    snprintf(cmd, sizeof cmd, "'%s' bench export --db %s -o %s 2>/dev/null", gwt_ferry_bin(), db, jsonl);
    CHECK_EQ_INT(system(cmd), 0);
    struct trace_record *recs = NULL;
    size_t nrec = 0;
    CHECK_EQ_INT(trace_read_file(jsonl, 0, &recs, &nrec, err, sizeof err), 0);
    CHECK_EQ_INT(nrec, N);
    int labelled = 0;
    for (size_t k = 0; k < nrec; k++)
        for (int i = 0; i < N; i++)
            if (!strcmp(recs[k].id, ids[i]) && recs[k].nout == 1 &&
                recs[k].out[0].o.quality == (i % 3 == 1 ? 0.0 : 1.0))
                labelled++;
    free(recs);
    CHECK_EQ_INT(labelled, N);
}

/* The created time of the emulator's answers is the wall clock's second: masked. */
static void mask_created(struct buf *b)
{
    for (char *p = strstr(b->data, "\"created\":"); p; p = strstr(p + 1, "\"created\":"))
        for (char *d = p + 10; *d >= '0' && *d <= '9'; d++) *d = '0';
}

/* The client's bytes of the same workload of 6 requests with the [shadow] text `shadow`
 * (fresh emulators each time, same seeds); `want` shadow outcomes are waited for. Then
 * the cloud emulator's completed requests, the gateway's shadow outcomes (all kinds) and
 * its skipped_busy ones (-1: no shadow counters at all, as when shadowing is off). */
static int run_workload(const char *shadow, int want, struct buf *all, double *cloud_done,
                        double *shadows, double *busy)
{
    struct gwt_emu edge, cloud;
    int rc = -1;
    if (emu_start(&edge, "edge-model", -30, 0, NULL) || emu_start(&cloud, "cloud-model", 30, 0, NULL))
        goto done;
    struct gwt_gw g;
    if (gw_start(&g, "shadow2.ini", edge.port, cloud.port, shadow)) goto done;
    rc = 0;
    for (int i = 0; i < 6; i++) {
        struct gwt_resp r;
        gwt_http(g.port, "/v1/chat/completions", item(i, i % 2, NULL), &r);
        if (!served_at_edge(&r)) rc = -1;
        mask_created(&r.body);
        buf_append(all, r.body.data, r.body.len);
        gwt_resp_fini(&r);
    }
    *shadows = shadow_wait(g.port, want);
    *busy = shadow_n(g.port, "skipped_busy");
    *cloud_done = emu_done(cloud.port, "cloud-model");
    gwt_gw_stop(&g);
done:
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    return rc;
}

TEST(gw_shadow_rate_zero_sends_nothing_and_the_client_bytes_are_the_same)
{
    struct buf off, on;
    buf_init(&off);
    buf_init(&on);
    double done_off = -1, done_on = -1, sh_off = -1, sh_on = -1, busy_off = 0, busy_on = -1;
    CHECK_EQ_INT(run_workload("[shadow]\nrate = 0\n", 0, &off, &done_off, &sh_off, &busy_off), 0);
    /* max_inflight = 6: all six references may be open at once (a busy machine can
     * answer the client's next request before the cloud emulator answers the last
     * reference); under the default cap of 4 some would be skipped_busy, not sent */
    CHECK_EQ_INT(run_workload("[shadow]\nrate = 1\nmax_inflight = 6\n", 6, &on, &done_on,
                              &sh_on, &busy_on), 0);
    CHECK_NEAR(done_off, 0, 0);
    CHECK_NEAR(sh_off, 0, 0);
    CHECK_NEAR(busy_off, -1, 0);          /* rate 0: shadowing is off, no counters */
    CHECK_NEAR(busy_on, 0, 0);
    CHECK_NEAR(done_on, 6, 0);
    CHECK_NEAR(sh_on, 6, 0);
    CHECK(off.len > 0);
    CHECK_EQ_INT(off.len, on.len);
    CHECK(off.len == on.len && memcmp(off.data, on.data, off.len) == 0);
    buf_fini(&off);
    buf_fini(&on);
}

/* The cloud's inflight at the gateway (its own requests and the open reference
 * requests); for gwt_wait_for. */
static double cloud_inflight(int port, const char *name)
{
    return gwt_node_num(port, name, "inflight");
}

TEST(gw_shadow_never_sends_an_edge_only_request_to_the_cloud)
{
    /* NP edge-only requests and NN ordinary ones, interleaved (the last one private),
     * shadow rate 1 and max_inflight NP + NN: were a private request sampled, its
     * reference would be sent, not skipped. The gateway samples and submits a reference
     * on its loop before it takes the client's next request, so once every answer is in,
     * waiting until NN outcomes are counted and the cloud has nothing in flight leaves
     * every reference answered and counted: then exactly NN were sent. */
    enum { NP = 6, NN = 3 };
    struct gwt_emu edge, cloud;
    CHECK(emu_start(&edge, "edge-model", -30, 0, NULL) == 0);
    CHECK(emu_start(&cloud, "cloud-model", 30, 0, NULL) == 0);
    struct gwt_gw g;
    char shadow[200];
    snprintf(shadow, sizeof shadow, "[shadow]\nrate = 1\nreference = cloud\nmax_inflight = %d\n",
             (int)(NP + NN));
    int up = gw_start(&g, "shadow3.ini", edge.port, cloud.port, shadow) == 0;
    int ok = 0, nprivate = 0;
    double seen = -2, settled = -1, outcomes = -1, busy = -1, cloud_done = -1;
    if (up) {
        for (int i = 0; i < NP + NN; i++) {
            int private = i % 3 != 1;       /* P N P P N P P N P */
            struct gwt_resp r;
            gwt_http(g.port, "/v1/chat/completions",
                     item(i, i % 2, private ? "\"ferry\":{\"privacy\":\"edge-only\"}," : NULL),
                     &r);
            ok += served_at_edge(&r);
            nprivate += private;
            gwt_resp_fini(&r);
        }
        seen = shadow_wait(g.port, NN);
        settled = gwt_wait_for(cloud_inflight, g.port, "cloud", 0);
        outcomes = shadow_all(g.port);
        busy = shadow_n(g.port, "skipped_busy");
        cloud_done = emu_done(cloud.port, "cloud-model");
        gwt_gw_stop(&g);
    }
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK(up);
    CHECK_EQ_INT(nprivate, NP);
    CHECK_EQ_INT(ok, NP + NN);
    CHECK(seen >= NN);
    CHECK_NEAR(settled, 0, 0);
    CHECK_NEAR(busy, 0, 0);
    /* one outcome and one reference request per ordinary request, none for a private one */
    CHECK_NEAR(outcomes, NN, 0);
    CHECK_NEAR(cloud_done, NN, 0);
}

TEST(gw_shadow_failing_reference_counts_failed_and_the_client_sees_nothing)
{
    struct gwt_emu edge, cloud;
    CHECK(emu_start(&edge, "edge-model", -30, 0, NULL) == 0);
    CHECK(emu_start(&cloud, "cloud-model", 30, EMU_FAULT_ERROR, "1") == 0);
    struct gwt_gw g;
    int up = gw_start(&g, "shadow4.ini", edge.port, cloud.port, "[shadow]\nrate = 1\n") == 0;
    int ok = 0;
    double failed = -1, seen = -1, upd = -1, faults = -1;
    if (up) {
        for (int i = 0; i < 4; i++) {
            struct gwt_resp r;
            gwt_http(g.port, "/v1/chat/completions", item(i, i % 2, NULL), &r);
            ok += served_at_edge(&r) && strstr(r.body.data, "\"error\"") == NULL;
            gwt_resp_fini(&r);
        }
        seen = shadow_wait(g.port, 4);
        failed = shadow_n(g.port, "failed");
        upd = gwt_node_num(g.port, "edge", "mgqp_updates");
        faults = gwt_metric(cloud.port, "ferry_emu_faults_injected_total{fault=\"error\"}");
        gwt_gw_stop(&g);
    }
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK(up);
    CHECK_EQ_INT(ok, 4);
    CHECK_NEAR(seen, 4, 0);
    CHECK_NEAR(failed, 4, 0);
    CHECK_NEAR(faults, 4, 0);
    CHECK_NEAR(upd, 0, 0);        /* no label from a failed reference */
}

TEST(gw_shadow_budget_and_inflight_cap_the_reference_requests)
{
    /* a spending cap below one request's cost: the first request is sent (it crosses
     * the cap), every later one is skipped */
    struct gwt_emu edge, cloud;
    CHECK(emu_start(&edge, "edge-model", -30, 0, NULL) == 0);
    CHECK(emu_start(&cloud, "cloud-model", 30, 0, NULL) == 0);
    struct gwt_gw g;
    int up = gw_start(&g, "shadow5.ini", edge.port, cloud.port,
                      "[shadow]\nrate = 1\nmax_usd_per_hour = 0.000000001\n") == 0;
    double sent = -1, skipped = -1, seen = -1;
    if (up) {
        for (int i = 0; i < 5; i++) {
            struct gwt_resp r;
            gwt_http(g.port, "/v1/chat/completions", item(i, 0, NULL), &r);
            gwt_resp_fini(&r);
        }
        seen = shadow_wait(g.port, 5);
        sent = emu_done(cloud.port, "cloud-model");
        skipped = shadow_n(g.port, "skipped_budget");
        gwt_gw_stop(&g);
    }
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK(up);
    CHECK_NEAR(seen, 5, 0);
    CHECK_NEAR(sent, 1, 0);
    CHECK_NEAR(skipped, 4, 0);

    /* max_inflight = 1 with a reference that holds every request for a minute: the first
     * stays open, the next three are skipped (the gateway's exit cancels the first) */
    CHECK(emu_start(&edge, "edge-model", -30, 0, NULL) == 0);
    CHECK(emu_start(&cloud, "cloud-model", 30, EMU_FAULT_STALL_FIRST, "60000") == 0);
    up = gw_start(&g, "shadow6.ini", edge.port, cloud.port,
                  "[shadow]\nrate = 1\nmax_inflight = 1\n") == 0;
    double busy = -1, cloud_inflight = -1;
    int ok = 0;
    if (up) {
        for (int i = 0; i < 4; i++) {
            struct gwt_resp r;
            gwt_http(g.port, "/v1/chat/completions", item(i, 0, NULL), &r);
            ok += served_at_edge(&r);
            gwt_resp_fini(&r);
        }
        seen = shadow_wait(g.port, 3);
        busy = shadow_n(g.port, "skipped_busy");
        cloud_inflight = gwt_node_num(g.port, "cloud", "inflight");
        gwt_gw_stop(&g);
    }
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK(up);
    CHECK_EQ_INT(ok, 4);
    CHECK_NEAR(seen, 3, 0);
    CHECK_NEAR(busy, 3, 0);
    CHECK_NEAR(cloud_inflight, 1, 0);     /* the open reference request is its load */
}

/* POST /v1/feedback for id with score: its status; the body in out (cap bytes). */
static long post_feedback(int port, const char *id, double score, char *out, size_t cap)
{
    char b[256];
    snprintf(b, sizeof b, "{\"request_id\":\"%s\",\"score\":%g}", id, score);
    struct gwt_resp r;
    gwt_http(port, "/v1/feedback", b, &r);
    long st = r.status;
    snprintf(out, cap, "%s", r.body.data);
    gwt_resp_fini(&r);
    return st;
}

TEST(gw_shadow_label_is_replaced_by_user_feedback_and_never_replaces_it)
{
    /* B's user feedback must come before B's shadow label: the cloud (the reference) is
     * held (gwt_emu_pause) from before B is asked until after its feedback was taken,
     * so its reference answer cannot come earlier, however the machine schedules us.
     * Health probes are off meanwhile (a probe the held cloud cannot answer would mark
     * it down and so not a reference). */
    struct gwt_emu edge, cloud;
    CHECK(emu_start(&edge, "edge-model", -30, 0, NULL) == 0);
    CHECK(emu_start(&cloud, "cloud-model", 30, 0, NULL) == 0);
    struct gwt_gw g;
    char db[512], extra[700], ida[48] = "", idb[48] = "";
    snprintf(db, sizeof db, "%s", test_tmp_path("shadow-fb.db"));
    remove(db);
    snprintf(extra, sizeof extra, "[server]\ntrace_db = %s\n[health]\ninterval_ms = 600000\n"
             "[shadow]\nrate = 1\n", db);
    int up = gw_start(&g, "shadow-fb.ini", edge.port, cloud.port, extra) == 0;
    double dis = -1, upd1 = -1, mae1 = -1, upd2 = -1, obs2 = -1, mae2 = -1;
    double agree = -1, upd3 = -1, obs3 = -1, fb_total = -1, seen_b = -1;
    int held = -1, resumed = -1;
    long st_a = 0, st_again = 0, st_b = 0;
    char body_a[512] = "", body_again[512] = "", body_b[512] = "";
    if (up) {
        /* A: difficulty 0.5, wrong at the edge: the shadow label is 0 (disagree) */
        struct gwt_resp r;
        gwt_http(g.port, "/v1/chat/completions", item(1, 0, NULL), &r);
        request_id(&r, ida, sizeof ida);
        gwt_resp_fini(&r);
        shadow_wait(g.port, 1);
        dis = shadow_n(g.port, "disagree");
        upd1 = gwt_node_num(g.port, "edge", "mgqp_updates");
        mae1 = gwt_node_num(g.port, "edge", "quality_mae");
        /* the user says it was right: the shadow label is replaced */
        st_a = post_feedback(g.port, ida, 1, body_a, sizeof body_a);
        upd2 = gwt_node_num(g.port, "edge", "mgqp_updates");
        obs2 = gwt_node_num(g.port, "edge", "feedback_observations");
        mae2 = gwt_node_num(g.port, "edge", "quality_mae");
        st_again = post_feedback(g.port, ida, 0, body_again, sizeof body_again);
        /* B: user feedback first; its shadow label (agree) comes later and is dropped */
        held = gwt_emu_pause(&cloud);
        gwt_http(g.port, "/v1/chat/completions", item(0, 0, NULL), &r);
        request_id(&r, idb, sizeof idb);
        gwt_resp_fini(&r);
        st_b = post_feedback(g.port, idb, 0.25, body_b, sizeof body_b);
        resumed = gwt_emu_resume(&cloud);
        seen_b = shadow_wait(g.port, 2);
        agree = shadow_n(g.port, "agree");
        upd3 = gwt_node_num(g.port, "edge", "mgqp_updates");
        obs3 = gwt_node_num(g.port, "edge", "feedback_observations");
        fb_total = gwt_metric(g.port, "ferry_feedback_total");
        gwt_gw_stop(&g);
    }
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK(up);
    CHECK(ida[0] && idb[0]);
    CHECK_NEAR(dis, 1, 0);
    CHECK_NEAR(upd1, 1, 0);
    CHECK_EQ_INT(st_a, 200);
    CHECK(strstr(body_a, "\"replaced\":\"shadow\"") != NULL);
    CHECK_NEAR(upd2, 1, 0);               /* replaced, not added */
    CHECK_NEAR(obs2, 1, 0);
    /* the shadow label's error |q - 0| left quality_mae and the feedback's |q - 1| took
     * its place, against the same prediction q: the label was divided out of MGQP
     * exactly (nothing was learned in between) */
    CHECK(mae1 > 0 && mae1 < 1);
    CHECK_NEAR(mae1 + mae2, 1, 1e-9);
    CHECK_EQ_INT(st_again, 404);          /* one user score per request */
    CHECK(strstr(body_again, "already_scored") != NULL);
    CHECK_EQ_INT(held, 0);
    CHECK_EQ_INT(resumed, 0);
    CHECK_NEAR(seen_b, 2, 0);
    CHECK_EQ_INT(st_b, 200);
    CHECK(strstr(body_b, "replaced") == NULL);
    CHECK_NEAR(agree, 1, 0);              /* B was compared, but its label dropped */
    CHECK_NEAR(upd3, 2, 0);
    CHECK_NEAR(obs3, 2, 0);
    CHECK_NEAR(fb_total, 3, 0);           /* A's shadow label, A's and B's feedback */
    /* the trace has the users' scores */
    char jsonl[512], cmd[1400], err[256];
    snprintf(jsonl, sizeof jsonl, "%s", test_tmp_path("shadow-fb.jsonl"));
    snprintf(cmd, sizeof cmd, "'%s' bench export --db %s -o %s 2>/dev/null", gwt_ferry_bin(), db,
             jsonl);
    CHECK_EQ_INT(system(cmd), 0);
    struct trace_record *recs = NULL;
    size_t nrec = 0;
    CHECK_EQ_INT(trace_read_file(jsonl, 0, &recs, &nrec, err, sizeof err), 0);
    double qa = -1, qb = -1;
    for (size_t k = 0; k < nrec; k++) {
        if (!strcmp(recs[k].id, ida)) qa = recs[k].out[0].o.quality;
        if (!strcmp(recs[k].id, idb)) qb = recs[k].out[0].o.quality;
    }
    free(recs);
    CHECK_NEAR(qa, 1, 0);
    CHECK_NEAR(qb, 0.25, 0);
}
