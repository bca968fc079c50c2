/* test-gw-cascade — cascade plans through the gateway over real sockets (docs/gateway.md
 * "Cascades"): the pure steps of gw/cascade.h, then a real `ferry serve` process
 * (FERRY_BIN, else ../ferry next to this binary) in front of two in-process emulators
 * (emu/server.h, an edge and a cloud node, ports from the kernel) with the `cascade`
 * policy. The edge emulator's confidence noise is 0, so every edge answer's confidence is
 * one of two known values: sigma(cap +- sep/2) (sim/quality.h). */
#include "test.h"
#include "gwtest.h"

#include <cjson/cJSON.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <pthread.h>
#include <stdlib.h>
#include <unistd.h>

#include "emu/faults.h"
#include "emu/server.h"
#include "gw/cascade.h"
#include "pred/trace.h"
#include "req/request.h"
#include "util/buf.h"

/* ==== pure steps ==================================================================== */

static struct fy_node g_nodes[3];

static void nodes3(void)
{
    const char *nm[3] = {"edge", "edge2", "cloud"};
    for (int i = 0; i < 3; i++) {
        memset(&g_nodes[i], 0, sizeof g_nodes[i]);
        snprintf(g_nodes[i].name, sizeof g_nodes[i].name, "%s", nm[i]);
        g_nodes[i].role = i < 2 ? FY_ROLE_EDGE : FY_ROLE_CLOUD;
    }
}

static struct fy_plan casc_plan(int node, int esc, double below)
{
    struct fy_plan p;
    memset(&p, 0, sizeof p);
    p.node = node;
    p.aux_node = -1;
    p.escalate_node = esc;
    p.escalate_below = below;
    return p;
}

TEST(casc_sanitize_never_escalates_edge_only_out_of_the_edge)
{
    nodes3();
    struct fy_plan p = casc_plan(0, 2, 0.6);
    CHECK_EQ_INT(gw_casc_sanitize(&p, g_nodes, 3, NULL, 0), 0);
    CHECK(gw_casc_is(&p));
    CHECK_EQ_INT(gw_casc_sanitize(&p, g_nodes, 3, NULL, 1), 1);   /* cloud: removed */
    CHECK(!gw_casc_is(&p));
    CHECK_EQ_INT(p.escalate_node, -1);
    p = casc_plan(0, 1, 0.6);                                      /* edge to edge: fine */
    CHECK_EQ_INT(gw_casc_sanitize(&p, g_nodes, 3, NULL, 1), 0);
    CHECK(gw_casc_is(&p));
    p = casc_plan(0, 0, 0.6);                                      /* itself */
    CHECK_EQ_INT(gw_casc_sanitize(&p, g_nodes, 3, NULL, 0), 1);
    p = casc_plan(0, 3, 0.6);                                      /* out of range */
    CHECK_EQ_INT(gw_casc_sanitize(&p, g_nodes, 3, NULL, 0), 1);
    unsigned char ex[3] = {0, 0, 1};
    p = casc_plan(0, 2, 0.6);                                      /* excluded */
    CHECK_EQ_INT(gw_casc_sanitize(&p, g_nodes, 3, ex, 0), 1);
    p = casc_plan(0, 2, 0);                                        /* no cascade at all */
    CHECK_EQ_INT(gw_casc_sanitize(&p, g_nodes, 3, NULL, 0), 0);
    CHECK_EQ_INT(p.escalate_node, -1);
    p = casc_plan(0, 2, 7);                                        /* clamped */
    p.img[0] = FY_IMG_DROP;
    CHECK_EQ_INT(gw_casc_sanitize(&p, g_nodes, 3, NULL, 0), 0);
    CHECK_NEAR(p.escalate_below, 1, 0);
    CHECK_EQ_INT(p.img[0], FY_IMG_KEEP);                           /* both stages: as sent */
}

TEST(casc_confidence_is_the_geometric_mean_token_probability)
{
    const char *a = "{\"object\":\"chat.completion\",\"choices\":[{\"index\":0,\"message\":"
                    "{\"role\":\"assistant\",\"content\":\"ab\"},\"logprobs\":{\"content\":["
                    "{\"token\":\"a\",\"logprob\":-0.1},{\"token\":\"b\",\"logprob\":-0.5}]}}]}";
    double c = -2;
    CHECK_EQ_INT(gw_casc_confidence_json(a, strlen(a), &c), 0);
    CHECK_NEAR(c, exp(-0.3), 1e-12);
    const char *none = "{\"choices\":[{\"message\":{\"content\":\"x\"},\"logprobs\":null}]}";
    CHECK_EQ_INT(gw_casc_confidence_json(none, strlen(none), &c), 1);
    CHECK_NEAR(c, -1, 0);
    CHECK_EQ_INT(gw_casc_confidence_json("{\"error\":{}}", 12, &c), -1);
    CHECK_EQ_INT(gw_casc_confidence_json("not json", 8, &c), -1);
    /* -inf-like values are floored, positive ones capped at 0 */
    const char *odd = "{\"choices\":[{\"logprobs\":{\"content\":[{\"logprob\":-1e300},"
                      "{\"logprob\":3}]}}]}";
    CHECK_EQ_INT(gw_casc_confidence_json(odd, strlen(odd), &c), 0);
    CHECK_NEAR(c, exp(-9999.0 / 2), 1e-300);
    /* streamed: one token per event, [DONE] ignored */
    struct gw_casc_conf acc = {0, 0};
    const char *ev[] = {
        "{\"choices\":[{\"delta\":{\"role\":\"assistant\"},\"logprobs\":null}]}",
        " {\"choices\":[{\"delta\":{\"content\":\"a\"},\"logprobs\":{\"content\":[{\"logprob\":-0.2}]}}]}",
        "{\"choices\":[{\"delta\":{\"content\":\"b\"},\"logprobs\":{\"content\":[{\"logprob\":-0.6}]}}]}",
        "[DONE]",
    };
    int k = 0;
    for (int i = 0; i < 4; i++) k += gw_casc_confidence_event(&acc, ev[i], strlen(ev[i]));
    CHECK_EQ_INT(k, 2);
    CHECK_NEAR(gw_casc_conf_value(&acc), exp(-0.4), 1e-12);
    CHECK_EQ_INT(gw_casc_judge(0.7, 0.6), GW_CASC_ACCEPTED);
    CHECK_EQ_INT(gw_casc_judge(0.6, 0.6), GW_CASC_ACCEPTED);
    CHECK_EQ_INT(gw_casc_judge(0.59, 0.6), GW_CASC_ESCALATED);
    CHECK_EQ_INT(gw_casc_judge(-1, 0.6), GW_CASC_UNKNOWN);
}

TEST(casc_stage1_body_asks_for_logprobs_without_a_stream)
{
    const char *body = "{\"model\":\"ferry\",\"stream\":true,\"stream_options\":{\"include_usage\":"
                       "true},\"top_logprobs\":3,\"logprobs\":false,\"messages\":[{\"role\":\"user\","
                       "\"content\":\"Hi\"}],\"temperature\":0.5}";
    struct req_limits lim;
    req_limits_default(&lim);
    struct req_error e;
    struct fy_request *r = req_parse(body, strlen(body), &lim, &e);
    CHECK(r);
    char *before = cJSON_PrintUnformatted(r->json);
    size_t len = 0;
    char *s1 = gw_casc_stage1_body(r, "edge-model", &len);
    char *after = cJSON_PrintUnformatted(r->json);
    cJSON *j = cJSON_Parse(s1);
    int ok = j && len == strlen(s1) &&
             !strcmp(cJSON_GetObjectItem(j, "model")->valuestring, "edge-model") &&
             cJSON_IsTrue(cJSON_GetObjectItem(j, "logprobs")) &&
             cJSON_IsFalse(cJSON_GetObjectItem(j, "stream")) &&
             !cJSON_GetObjectItem(j, "stream_options") &&
             cJSON_GetObjectItem(j, "top_logprobs")->valueint == 3 &&
             cJSON_GetObjectItem(j, "temperature")->valuedouble == 0.5;
    /* the request itself is unchanged (stage 2 sends it as the client did), key order aside */
    cJSON *jb = cJSON_Parse(before), *ja = cJSON_Parse(after);
    int same = cJSON_Compare(jb, ja, 1);
    cJSON_Delete(j);
    cJSON_Delete(jb);
    cJSON_Delete(ja);
    free(s1);
    free(before);
    free(after);
    req_free(r);
    CHECK(ok);
    CHECK(same);
}

static const char *k_answer =
    "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion\",\"created\":7,\"model\":\"edge-model\","
    "\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Yes, a \\\"cat\\\".\"},"
    "\"logprobs\":{\"content\":[{\"token\":\"Yes\",\"logprob\":-0.2}]},\"finish_reason\":\"length\"}],"
    "\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":4,\"total_tokens\":13}}";

TEST(casc_accepted_answer_as_json_without_logprobs)
{
    size_t n = 0;
    char *out = gw_casc_client_body(k_answer, strlen(k_answer), 0, 0, 0, &n);
    CHECK(out && n == strlen(out));
    cJSON *j = cJSON_Parse(out);
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    int ok = cJSON_IsNull(cJSON_GetObjectItem(ch, "logprobs")) &&
             !strcmp(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"), "content")->valuestring,
                     "Yes, a \"cat\".") &&
             cJSON_GetObjectItem(cJSON_GetObjectItem(j, "usage"), "total_tokens")->valueint == 13;
    cJSON_Delete(j);
    free(out);
    CHECK(ok);
    out = gw_casc_client_body(k_answer, strlen(k_answer), 1, 0, 0, &n);   /* asked: as is */
    CHECK(out);
    CHECK_STR(out, k_answer);
    free(out);
    CHECK(gw_casc_client_body("{\"error\":1}", 11, 0, 0, 0, &n) == NULL);
}

/* Splits an SSE body into its "data: " payloads (in place); the count, or -1 when an
 * event is not a single data line. */
static int sse_split(char *body, char **ev, int max)
{
    int n = 0;
    char *p = body;
    while (p && *p && n < max) {
        char *end = strstr(p, "\n\n");
        if (!end) return -1;
        *end = 0;
        if (strncmp(p, "data: ", 6) || strchr(p, '\n')) return -1;
        ev[n++] = p + 6;
        p = end + 2;
    }
    return n;
}

/* Checks an OpenAI SSE answer: chunks, a role first, content, a finish reason, the usage
 * chunk when usage is set, [DONE] last. Appends the content to text; returns the
 * completion_tokens of the usage chunk (0 without), or -1 when malformed. */
static int sse_check(const char *body, int usage, struct buf *text, char *finish, size_t fcap)
{
    char *copy = strdup(body);
    char *ev[64];
    int n = sse_split(copy, ev, 64), role = 0, ct = 0, bad = n < 3 || strcmp(ev[n - 1], "[DONE]");
    for (int i = 0; !bad && i < n - 1; i++) {
        cJSON *j = cJSON_Parse(ev[i]);
        const cJSON *obj = cJSON_GetObjectItem(j, "object");
        bad = !cJSON_IsString(obj) || strcmp(obj->valuestring, "chat.completion.chunk");
        cJSON *chs = cJSON_GetObjectItem(j, "choices");
        cJSON *u = cJSON_GetObjectItem(j, "usage");
        if (!bad && cJSON_GetArraySize(chs) == 0) {
            bad = !usage || !cJSON_IsObject(u);
            if (!bad) ct = cJSON_GetObjectItem(u, "completion_tokens")->valueint;
        } else if (!bad) {
            if (usage && !cJSON_IsNull(u)) bad = 1;
            cJSON *ch = cJSON_GetArrayItem(chs, 0), *d = cJSON_GetObjectItem(ch, "delta");
            const cJSON *r = cJSON_GetObjectItem(d, "role"), *c = cJSON_GetObjectItem(d, "content");
            const cJSON *f = cJSON_GetObjectItem(ch, "finish_reason");
            if (i == 0) role = cJSON_IsString(r) && !strcmp(r->valuestring, "assistant");
            if (cJSON_IsString(c)) buf_puts(text, c->valuestring);
            if (cJSON_IsString(f)) snprintf(finish, fcap, "%s", f->valuestring);
        }
        cJSON_Delete(j);
    }
    free(copy);
    return bad || !role ? -1 : ct;
}

TEST(casc_accepted_answer_as_openai_sse)
{
    size_t n = 0;
    char *out = gw_casc_client_body(k_answer, strlen(k_answer), 0, 1, 1, &n);
    CHECK(out && n == strlen(out));
    struct buf text;
    buf_init(&text);
    char finish[32] = "";
    int ct = sse_check(out, 1, &text, finish, sizeof finish);
    int nolp = strstr(out, "\"logprob\"") == NULL;
    free(out);
    CHECK_EQ_INT(ct, 4);
    CHECK_STR(text.data, "Yes, a \"cat\".");
    CHECK_STR(finish, "length");
    CHECK(nolp);
    buf_fini(&text);
    /* without include_usage: no usage anywhere; with logprobs asked: they are in it */
    out = gw_casc_client_body(k_answer, strlen(k_answer), 1, 1, 0, &n);
    CHECK(out);
    buf_init(&text);
    ct = sse_check(out, 0, &text, finish, sizeof finish);
    int nousage = strstr(out, "\"usage\"") == NULL, lp = strstr(out, "\"logprob\":-0.2") != NULL;
    free(out);
    buf_fini(&text);
    CHECK_EQ_INT(ct, 0);
    CHECK(nousage);
    CHECK(lp);
}

/* ==== over HTTP: emulators and the gateway ========================================== */

/* An emulated node at the given time scale (0 = answering at once); noise 0 makes its
 * confidence one of two values. */
static int emu_start_ts(struct gwt_emu *e, const char *model, double noise, const char *fault_error,
                        double time_scale)
{
    struct emu_opts o;
    gwt_emu_opts(&o, model, time_scale, 1);
    o.confidence_noise = noise;
    if (fault_error && gwt_emu_fault(&o, EMU_FAULT_ERROR, fault_error)) return -1;
    return gwt_emu_start(e, &o);
}

static int emu_start(struct gwt_emu *e, const char *model, double noise, const char *fault_error)
{
    return emu_start_ts(e, model, noise, fault_error, 0);
}

/* `ferry serve` with the cascade policy at threshold below over the two emulators, a
 * trace database when trace_db is set. */
static int gw_start_db(struct gwt_gw *g, const char *name, int edge, int cloud, double below,
                       const char *trace_db)
{
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "[server]\nlisten = 127.0.0.1:0\n%s%s%s[policy]\nname = cascade\nparams = below=%g\n"
             "[node edge]\nrole = edge\nurl = http://127.0.0.1:%d\nmodel = edge-model\n"
             "[node cloud]\nrole = cloud\nurl = http://127.0.0.1:%d\nmodel = cloud-model\n",
             trace_db ? "trace_db = " : "", trace_db ? trace_db : "", trace_db ? "\n" : "",
             below, edge, cloud);
    return gwt_gw_start(g, name, cfg, NULL, NULL);
}

static int gw_start(struct gwt_gw *g, const char *name, int edge, int cloud, double below)
{
    return gw_start_db(g, name, edge, cloud, below, NULL);
}

/* sigma(cap +- sep/2) at cap 1, sep 1, noise 0: the two confidences of the edge node. */
static int known_confidence(const char *v)
{
    double c = atof(v);
    return v[0] && (fabs(c - 1 / (1 + exp(-1.5))) < 6e-4 || fabs(c - 1 / (1 + exp(-0.5))) < 6e-4);
}

static char *body_of(int i, int stream, const char *extra)
{
    static char b[512];
    snprintf(b, sizeof b, "{\"model\":\"ferry\",\"stream\":%s,%s\"messages\":[{\"role\":\"user\","
             "\"content\":\"Question number %d, please answer.\"}],\"metadata\":{\"out_tokens\":12}}",
             stream ? "true" : "false", extra ? extra : "", i);
    return b;
}

/* The content and model of a non-streamed answer. */
static int answer_of(const char *json, char *content, size_t ccap, char *model, size_t mcap,
                     int *has_logprobs)
{
    cJSON *j = cJSON_Parse(json);
    cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItem(j, "choices"), 0);
    const char *c = cJSON_GetStringValue(cJSON_GetObjectItem(cJSON_GetObjectItem(ch, "message"),
                                                             "content"));
    const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(j, "model"));
    cJSON *lp = cJSON_GetObjectItem(ch, "logprobs");
    if (has_logprobs) *has_logprobs = cJSON_IsObject(lp);
    int ok = c && m;
    snprintf(content, ccap, "%s", c ? c : "");
    snprintf(model, mcap, "%s", m ? m : "");
    cJSON_Delete(j);
    return ok ? 0 : -1;
}

TEST(gw_cascade_escalates_every_answer_below_a_high_threshold)
{
    struct gwt_emu edge, cloud;
    CHECK(emu_start(&edge, "edge-model", 0, NULL) == 0);
    CHECK(emu_start(&cloud, "cloud-model", 0, NULL) == 0);
    struct gwt_gw g;
    int up = gw_start(&g, "high.ini", edge.port, cloud.port, 0.99) == 0;
    struct gwt_resp r[4], sse;
    memset(r, 0, sizeof r);
    memset(&sse, 0, sizeof sse);
    double esc = -1, acc = -1;
    if (up) {
        for (int i = 0; i < 4; i++) gwt_http(g.port, "/v1/chat/completions", body_of(i, 0, NULL), &r[i]);
        gwt_http(g.port, "/v1/chat/completions",
             body_of(9, 1, "\"stream_options\":{\"include_usage\":true},"), &sse);
        esc = gwt_metric(g.port, "ferry_cascade_total{node=\"edge\",outcome=\"escalated\"}");
        acc = gwt_metric(g.port, "ferry_cascade_total{node=\"edge\",outcome=\"accepted\"}");
        gwt_gw_stop(&g);
    }
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK(up);
    for (int i = 0; i < 4; i++) {
        char v[256], content[256], model[64];
        int lp = 1;
        CHECK_EQ_INT(r[i].status, 200);
        CHECK_STR(gwt_hdr(&r[i], "X-Ferry-Node", v, sizeof v), "cloud");
        CHECK_STR(gwt_hdr(&r[i], "X-Ferry-Cascade", v, sizeof v), "escalated");
        CHECK(known_confidence(gwt_hdr(&r[i], "X-Ferry-Confidence", v, sizeof v)));
        CHECK(!strncmp(gwt_hdr(&r[i], "X-Ferry-Plan", v, sizeof v), "cascade:edge>cloud@0.99;", 24));
        CHECK(answer_of(r[i].body.data, content, sizeof content, model, sizeof model, &lp) == 0);
        CHECK_STR(model, "cloud-model");   /* the cloud's answer, nothing of the edge's */
        CHECK(!lp);                        /* the client asked for no logprobs */
        gwt_resp_fini(&r[i]);
    }
    char v[64];
    CHECK_EQ_INT(sse.status, 200);
    CHECK_STR(gwt_hdr(&sse, "X-Ferry-Cascade", v, sizeof v), "escalated");
    struct buf text;
    buf_init(&text);
    char finish[32] = "";
    int ct = sse_check(sse.body.data, 1, &text, finish, sizeof finish);
    int cloud_model = strstr(sse.body.data, "\"model\":\"cloud-model\"") != NULL;
    buf_fini(&text);
    gwt_resp_fini(&sse);
    CHECK_EQ_INT(ct, 12);                  /* relayed from the cloud node as it streams */
    CHECK(cloud_model);
    CHECK_NEAR(esc, 5, 0);
    CHECK_NEAR(acc, 0, 0);
}

TEST(gw_cascade_accepts_every_answer_above_a_low_threshold)
{
    struct gwt_emu edge, cloud;
    CHECK(emu_start(&edge, "edge-model", 0, NULL) == 0);
    CHECK(emu_start(&cloud, "cloud-model", 0, NULL) == 0);
    struct gwt_gw g;
    int up = gw_start(&g, "low.ini", edge.port, cloud.port, 0.01) == 0;
    struct gwt_resp plain, withlp, sse, metrics;
    memset(&plain, 0, sizeof plain);
    memset(&withlp, 0, sizeof withlp);
    memset(&sse, 0, sizeof sse);
    memset(&metrics, 0, sizeof metrics);
    double acc = -1, esc = -1, ok_edge = -1, ok_cloud = -1;
    if (up) {
        gwt_http(g.port, "/v1/chat/completions", body_of(1, 0, NULL), &plain);
        gwt_http(g.port, "/v1/chat/completions", body_of(2, 0, "\"logprobs\":true,"), &withlp);
        /* the same question streamed: stage 1 gets the same body, so the same answer */
        gwt_http(g.port, "/v1/chat/completions",
             body_of(1, 1, "\"stream_options\":{\"include_usage\":true},"), &sse);
        acc = gwt_metric(g.port, "ferry_cascade_total{node=\"edge\",outcome=\"accepted\"}");
        esc = gwt_metric(g.port, "ferry_cascade_total{node=\"edge\",outcome=\"escalated\"}");
        ok_edge = gwt_metric(g.port, "ferry_requests_total{node=\"edge\",policy=\"cascade\",outcome=\"ok\"}");
        ok_cloud = gwt_metric(g.port, "ferry_requests_total{node=\"cloud\",policy=\"cascade\",outcome=\"ok\"}");
        gwt_http(g.port, "/metrics", NULL, &metrics);
        gwt_gw_stop(&g);
    }
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK(up);
    char v[256], content[256], model[64], c2[256];
    int lp = 1;
    CHECK_EQ_INT(plain.status, 200);
    CHECK_STR(gwt_hdr(&plain, "X-Ferry-Node", v, sizeof v), "edge");
    CHECK_STR(gwt_hdr(&plain, "X-Ferry-Cascade", v, sizeof v), "accepted");
    CHECK(known_confidence(gwt_hdr(&plain, "X-Ferry-Confidence", v, sizeof v)));
    CHECK(answer_of(plain.body.data, content, sizeof content, model, sizeof model, &lp) == 0);
    CHECK_STR(model, "edge-model");
    CHECK(!lp);                            /* stage 1's logprobs removed */
    /* the client asked for logprobs: they stay, and give the header's confidence */
    CHECK_EQ_INT(withlp.status, 200);
    CHECK_STR(gwt_hdr(&withlp, "X-Ferry-Cascade", v, sizeof v), "accepted");
    double hc = atof(gwt_hdr(&withlp, "X-Ferry-Confidence", v, sizeof v)), dc = -1;
    CHECK_EQ_INT(gw_casc_confidence_json(withlp.body.data, withlp.body.len, &dc), 0);
    CHECK_NEAR(dc, hc, 6e-4);
    /* streamed client: valid SSE converted from stage 1, the same content */
    CHECK_EQ_INT(sse.status, 200);
    CHECK(strstr(gwt_hdr(&sse, "Content-Type", v, sizeof v), "text/event-stream") != NULL);
    CHECK_STR(gwt_hdr(&sse, "X-Ferry-Cascade", v, sizeof v), "accepted");
    struct buf text;
    buf_init(&text);
    char finish[32] = "";
    int ct = sse_check(sse.body.data, 1, &text, finish, sizeof finish);
    snprintf(c2, sizeof c2, "%s", text.data ? text.data : "");
    buf_fini(&text);
    int nolp = strstr(sse.body.data, "\"logprob\"") == NULL;
    CHECK_EQ_INT(ct, 12);
    CHECK_STR(c2, content);
    CHECK_STR(finish, "stop");
    CHECK(nolp);
    CHECK_NEAR(acc, 3, 0);
    CHECK_NEAR(esc, 0, 0);
    CHECK_NEAR(ok_edge, 3, 0);
    CHECK_NEAR(ok_cloud, 0, 0);
    CHECK_EQ_INT(gwt_promtool(metrics.body.data, metrics.body.len, "casc-metrics.txt"), 0);
    gwt_resp_fini(&plain);
    gwt_resp_fini(&withlp);
    gwt_resp_fini(&sse);
    gwt_resp_fini(&metrics);
}

TEST(gw_cascade_stage1_failure_escalates)
{
    struct gwt_emu edge, cloud;
    CHECK(emu_start(&edge, "edge-model", 0, "1") == 0);   /* every chat request: HTTP 500 */
    CHECK(emu_start(&cloud, "cloud-model", 0, NULL) == 0);
    struct gwt_gw g;
    int up = gw_start(&g, "fail.ini", edge.port, cloud.port, 0.01) == 0;
    struct gwt_resp r;
    memset(&r, 0, sizeof r);
    double esc = -1, err5 = -1;
    if (up) {
        gwt_http(g.port, "/v1/chat/completions", body_of(3, 0, NULL), &r);
        esc = gwt_metric(g.port, "ferry_cascade_total{node=\"edge\",outcome=\"escalated\"}");
        err5 = gwt_metric(g.port, "ferry_upstream_errors_total{node=\"edge\",kind=\"http_5xx\"}");
        gwt_gw_stop(&g);
    }
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK(up);
    char v[256], content[256], model[64];
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR(gwt_hdr(&r, "X-Ferry-Node", v, sizeof v), "cloud");
    CHECK_STR(gwt_hdr(&r, "X-Ferry-Cascade", v, sizeof v), "escalated");
    CHECK_STR(gwt_hdr(&r, "X-Ferry-Confidence", v, sizeof v), "");   /* no answer, no confidence */
    CHECK(answer_of(r.body.data, content, sizeof content, model, sizeof model, NULL) == 0);
    CHECK_STR(model, "cloud-model");
    CHECK_NEAR(esc, 1, 0);
    CHECK_NEAR(err5, 1, 0);
    gwt_resp_fini(&r);
}

TEST(gw_cascade_edge_only_request_stays_at_the_edge)
{
    struct gwt_emu edge, cloud;
    CHECK(emu_start(&edge, "edge-model", 0, NULL) == 0);
    CHECK(emu_start(&cloud, "cloud-model", 0, NULL) == 0);
    struct gwt_gw g;
    int up = gw_start(&g, "priv.ini", edge.port, cloud.port, 0.99) == 0;
    struct gwt_resp r;
    memset(&r, 0, sizeof r);
    if (up) {
        gwt_http(g.port, "/v1/chat/completions", body_of(4, 0, "\"ferry\":{\"privacy\":\"edge-only\"},"), &r);
        gwt_gw_stop(&g);
    }
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK(up);
    char v[256], content[256], model[64];
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR(gwt_hdr(&r, "X-Ferry-Node", v, sizeof v), "edge");
    CHECK_STR(gwt_hdr(&r, "X-Ferry-Cascade", v, sizeof v), "");     /* no cascade at all */
    CHECK(answer_of(r.body.data, content, sizeof content, model, sizeof model, NULL) == 0);
    CHECK_STR(model, "edge-model");
    gwt_resp_fini(&r);
}

/* ==== a backend without logprobs ==================================================== */

/* A model server that ignores "logprobs" (as some do): a fixed answer, and the last
 * request body it received. */
struct plain {
    struct event_base *base;
    struct evhttp *http;
    pthread_t th;
    int port;
    pthread_mutex_t mu;
    char last[4096];
};

static void plain_handle(struct evhttp_request *req, void *arg)
{
    struct plain *p = arg;
    struct evbuffer *out = evbuffer_new();
    if (strcmp(evhttp_request_get_uri(req), "/health")) {
        struct evbuffer *in = evhttp_request_get_input_buffer(req);
        pthread_mutex_lock(&p->mu);
        size_t k = evbuffer_get_length(in);
        if (k > sizeof p->last - 1) k = sizeof p->last - 1;
        evbuffer_copyout(in, p->last, k);
        p->last[k] = 0;
        pthread_mutex_unlock(&p->mu);
        evbuffer_add_printf(out, "{\"id\":\"chatcmpl-p\",\"object\":\"chat.completion\",\"created\":1,"
                                 "\"model\":\"plain-model\",\"choices\":[{\"index\":0,\"message\":"
                                 "{\"role\":\"assistant\",\"content\":\"plain answer\"},"
                                 "\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":5,"
                                 "\"completion_tokens\":2,\"total_tokens\":7}}");
    } else {
        evbuffer_add_printf(out, "{\"status\":\"ok\"}");
    }
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static int plain_start(struct plain *p)
{
    memset(p, 0, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    p->base = event_base_new();
    p->http = p->base ? evhttp_new(p->base) : NULL;
    if (!p->http) return -1;
    evhttp_set_gencb(p->http, plain_handle, p);
    struct evhttp_bound_socket *bs = evhttp_bind_socket_with_handle(p->http, "127.0.0.1", 0);
    if (!bs) return -1;
    p->port = gwt_sock_port(evhttp_bound_socket_get_fd(bs));
    if (p->port < 0) return -1;
    return pthread_create(&p->th, NULL, gwt_loop, p->base) ? -1 : 0;
}

static void plain_stop(struct plain *p)
{
    event_base_loopexit(p->base, NULL);
    pthread_join(p->th, NULL);
    evhttp_free(p->http);
    event_base_free(p->base);
    pthread_mutex_destroy(&p->mu);
}

TEST(gw_cascade_without_logprobs_is_unknown_and_accepted)
{
    struct plain edge;
    struct gwt_emu cloud;
    CHECK(plain_start(&edge) == 0);
    CHECK(emu_start(&cloud, "cloud-model", 0, NULL) == 0);
    struct gwt_gw g;
    int up = gw_start(&g, "plain.ini", edge.port, cloud.port, 0.99) == 0;
    struct gwt_resp r, sse;
    memset(&r, 0, sizeof r);
    memset(&sse, 0, sizeof sse);
    double unk = -1, esc = -1;
    char stage1[4096] = "";
    if (up) {
        gwt_http(g.port, "/v1/chat/completions", body_of(5, 0, NULL), &r);
        gwt_http(g.port, "/v1/chat/completions",
             body_of(6, 1, "\"stream_options\":{\"include_usage\":true},"), &sse);
        pthread_mutex_lock(&edge.mu);
        memcpy(stage1, edge.last, sizeof stage1);
        pthread_mutex_unlock(&edge.mu);
        unk = gwt_metric(g.port, "ferry_cascade_total{node=\"edge\",outcome=\"unknown\"}");
        esc = gwt_metric(g.port, "ferry_cascade_total{node=\"edge\",outcome=\"escalated\"}");
        gwt_gw_stop(&g);
    }
    plain_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK(up);
    char v[256], content[256], model[64];
    CHECK_EQ_INT(r.status, 200);
    CHECK_STR(gwt_hdr(&r, "X-Ferry-Node", v, sizeof v), "edge");
    CHECK_STR(gwt_hdr(&r, "X-Ferry-Cascade", v, sizeof v), "unknown");
    CHECK_STR(gwt_hdr(&r, "X-Ferry-Confidence", v, sizeof v), "");
    CHECK(answer_of(r.body.data, content, sizeof content, model, sizeof model, NULL) == 0);
    CHECK_STR(content, "plain answer");
    /* what stage 1 sent over the wire (the streamed request's, the last one) */
    cJSON *j = cJSON_Parse(stage1);
    int asked = j && cJSON_IsTrue(cJSON_GetObjectItem(j, "logprobs")) &&
                cJSON_IsFalse(cJSON_GetObjectItem(j, "stream")) &&
                !cJSON_GetObjectItem(j, "stream_options") &&
                !strcmp(cJSON_GetObjectItem(j, "model")->valuestring, "edge-model");
    cJSON_Delete(j);
    CHECK(asked);
    CHECK_STR(gwt_hdr(&sse, "X-Ferry-Cascade", v, sizeof v), "unknown");
    struct buf text;
    buf_init(&text);
    char finish[32] = "";
    int ct = sse_check(sse.body.data, 1, &text, finish, sizeof finish);
    snprintf(content, sizeof content, "%s", text.data ? text.data : "");
    buf_fini(&text);
    CHECK_EQ_INT(ct, 2);
    CHECK_STR(content, "plain answer");
    CHECK_NEAR(unk, 2, 0);
    CHECK_NEAR(esc, 0, 0);
    gwt_resp_fini(&r);
    gwt_resp_fini(&sse);
}

/* ==== the trace ===================================================================== */

/* Exports the trace database db as JSONL and reads it back. 0 or -1. */
static int export_trace(const char *db, struct trace_record **recs, size_t *n)
{
    char jsonl[512], cmd[1400], err[256];
    snprintf(jsonl, sizeof jsonl, "%s", test_tmp_path("casc-trace.jsonl"));
    snprintf(cmd, sizeof cmd, "'%s' bench export --db %s -o %s 2>/dev/null", gwt_ferry_bin(), db, jsonl);
    if (system(cmd) != 0) return -1;
    return trace_read_file(jsonl, 0, recs, n, err, sizeof err) == 0 ? 0 : -1;
}

TEST(gw_cascade_trace_has_one_outcome_per_stage)
{
    char db_hi[512], db_lo[512];
    snprintf(db_hi, sizeof db_hi, "%s", test_tmp_path("casc-hi.db"));
    snprintf(db_lo, sizeof db_lo, "%s", test_tmp_path("casc-lo.db"));
    struct gwt_emu edge, cloud;
    CHECK(emu_start(&edge, "edge-model", 0, NULL) == 0);
    CHECK(emu_start(&cloud, "cloud-model", 0, NULL) == 0);
    struct gwt_gw g;
    int up = 0;
    struct gwt_resp r;
    for (int k = 0; k < 2; k++) {            /* 0: everything escalates, 1: nothing does */
        if (gw_start_db(&g, k ? "tlo.ini" : "thi.ini", edge.port, cloud.port, k ? 0.01 : 0.99,
                        k ? db_lo : db_hi))
            break;
        gwt_http(g.port, "/v1/chat/completions", body_of(7, 0, NULL), &r);
        gwt_resp_fini(&r);
        gwt_gw_stop(&g);                          /* commits the trace */
        up++;
    }
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK_EQ_INT(up, 2);
    struct trace_record *hi = NULL, *lo = NULL;
    size_t nhi = 0, nlo = 0;
    CHECK(export_trace(db_hi, &hi, &nhi) == 0);
    CHECK_EQ_INT(nhi, 1);
    const struct trace_outcome *s1 = &hi[0].out[0], *s2 = &hi[0].out[1];
    int hi_ok = hi[0].nout == 2 && !strcmp(s1->node, "edge") && s1->stage == 1 &&
                s1->o.escalated && s1->o.plan.escalate_below > 0.98 && s1->o.out_tokens == 12 &&
                !strcmp(s2->node, "cloud") && s2->stage == 2 && s2->o.out_tokens == 12 &&
                s1->o.e2e_ms > 0 && s2->o.e2e_ms > 0;
    char conf[32];
    snprintf(conf, sizeof conf, "%.3f", s1->o.confidence);
    free(hi);
    CHECK(hi_ok);
    CHECK(known_confidence(conf));
    CHECK(export_trace(db_lo, &lo, &nlo) == 0);
    CHECK_EQ_INT(nlo, 1);
    s1 = &lo[0].out[0];
    int lo_ok = lo[0].nout == 1 && !strcmp(s1->node, "edge") && s1->stage == 1 &&
                !s1->o.escalated && s1->o.out_tokens == 12;
    snprintf(conf, sizeof conf, "%.3f", s1->o.confidence);
    free(lo);
    CHECK(lo_ok);
    CHECK(known_confidence(conf));
}

TEST(gw_cascade_client_gone_in_stage_1_cancels_it)
{
    /* a slow edge (real time: 100 tokens at 50 tokens/s, 2 s) and a client that gives
     * up long before: stage 1 is dropped, nothing is judged or escalated even after the
     * edge has finished (had stage 1 lived on, its answer would have been judged at
     * once, and at 0.99 escalated to the cloud) */
    struct gwt_emu edge, cloud;
    struct emu_opts eo;
    gwt_emu_opts(&eo, "edge-model", 1, 1);
    eo.confidence_noise = 0;
    eo.prof.decode_tps = 50;   /* slower than the default edge's 187: the premise */
    CHECK(gwt_emu_start(&edge, &eo) == 0);
    CHECK(emu_start(&cloud, "cloud-model", 0, NULL) == 0);
    struct gwt_gw g;
    int up = gw_start(&g, "gone.ini", edge.port, cloud.port, 0.99) == 0;
    double ended = -1, judged = -1, cloud_prompts = -1, gone = -1;
    if (up) {
        struct gwt_resp r;
        const char *b = "{\"model\":\"ferry\",\"messages\":[{\"role\":\"user\",\"content\":"
                        "\"Write a long story.\"}],\"metadata\":{\"out_tokens\":100}}";
        gwt_http_opts(g.port, "/v1/chat/completions", b, &(struct gwt_http_opts){.timeout_ms = 300},
                      &r);
        gwt_resp_fini(&r);
        /* bounded wait for the edge to be done with it (answered into a closed
         * connection, or noticed the close) */
        for (int i = 0; i < 200 && ended < 1; i++) {
            usleep(50000);
            ended = gwt_metric(edge.port, "ferry_emu_requests_aborted_total") +
                    gwt_metric(edge.port, "vllm:request_success_total{model_name=\"edge-model\",finished_reason=\"stop\"}");
        }
        usleep(200000);
        judged = gwt_metric(g.port, "ferry_cascade_total{node=\"edge\",outcome=\"escalated\"}") +
                 gwt_metric(g.port, "ferry_cascade_total{node=\"edge\",outcome=\"accepted\"}");
        gone = gwt_metric(g.port, "ferry_inflight_requests{node=\"edge\"}");
        cloud_prompts = gwt_metric(cloud.port, "vllm:prompt_tokens_total{model_name=\"cloud-model\"}");
        gwt_gw_stop(&g);
    }
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK(up);
    CHECK_NEAR(ended, 1, 0);
    CHECK_NEAR(judged, 0, 0);
    CHECK_NEAR(gone, 0, 0);             /* the edge's in-flight count was given back */
    CHECK_NEAR(cloud_prompts, 0, 0);
}

/* inflight and queued_tokens of nodes "edge" (e[0], e[1]) and "cloud" (c[0], c[1]) from
 * one GET /v1/ferry/nodes, so that both describe the same moment. 0, or -1. */
static int load_of(int port, double e[2], double c[2])
{
    struct gwt_resp r;
    int rc = -1;
    e[0] = e[1] = c[0] = c[1] = -1;
    if (gwt_http(port, "/v1/ferry/nodes", NULL, &r) == 0 && r.status == 200) {
        cJSON *root = cJSON_Parse(r.body.data);
        cJSON *n;
        cJSON_ArrayForEach(n, cJSON_GetObjectItem(root, "nodes")) {
            const char *nm = cJSON_GetStringValue(cJSON_GetObjectItem(n, "name"));
            double *v = nm && !strcmp(nm, "edge") ? e : nm && !strcmp(nm, "cloud") ? c : NULL;
            if (!v) continue;
            v[0] = cJSON_GetNumberValue(cJSON_GetObjectItem(n, "inflight"));
            v[1] = cJSON_GetNumberValue(cJSON_GetObjectItem(n, "queued_tokens"));
            rc = 0;
        }
        cJSON_Delete(root);
    }
    gwt_resp_fini(&r);
    return rc;
}

/* Polls load_of every 20 ms (at most 10 s) until node "edge" (which = 0) or "cloud"
 * (which = 1) has one request in flight; 1 when seen, with that snapshot in e and c. */
static int wait_inflight(int port, int which, double e[2], double c[2])
{
    for (int i = 0; i < 500; i++) {
        if (load_of(port, e, c) == 0 && (which ? c : e)[0] == 1) return 1;
        usleep(20000);
    }
    return 0;
}

TEST(gw_cascade_each_stage_counts_in_its_nodes_load)
{
    /* slow nodes (real time: 50 tokens at 50 tokens/s, about 1 s a stage) and a
     * threshold no edge answer reaches: while stage 1 runs, the edge's in-flight count
     * and queued tokens are raised and the cloud's are not; while stage 2 runs, the
     * other way round; afterwards both are back to 0 */
    struct gwt_emu edge, cloud;
    struct emu_opts eo, co;
    gwt_emu_opts(&eo, "edge-model", 1, 1);
    eo.confidence_noise = 0;
    eo.prof.decode_tps = 50;
    gwt_emu_opts(&co, "cloud-model", 1, 1);
    co.prof.decode_tps = 50;
    CHECK(gwt_emu_start(&edge, &eo) == 0);
    CHECK(gwt_emu_start(&cloud, &co) == 0);
    struct gwt_gw g;
    int up = gw_start(&g, "load.ini", edge.port, cloud.port, 0.99) == 0;
    double e1[2] = {-1, -1}, c1[2] = {-1, -1}, e2[2] = {-1, -1}, c2[2] = {-1, -1};
    double e3[2] = {-1, -1}, c3[2] = {-1, -1};
    int seen1 = 0, seen2 = 0, answered = 0;
    if (up) {
        const char *b = "{\"model\":\"ferry\",\"messages\":[{\"role\":\"user\",\"content\":"
                        "\"Tell me about the sea.\"}],\"metadata\":{\"out_tokens\":50}}";
        int fd = gwt_connect(g.port, 0);
        if (fd >= 0 && gwt_raw_post(fd, b, 1) == 0) {
            seen1 = wait_inflight(g.port, 0, e1, c1);
            seen2 = wait_inflight(g.port, 1, e2, c2);
            struct buf o;
            buf_init(&o);
            gwt_read_until(fd, &o, NULL, NULL);
            answered = o.data && !strncmp(o.data, "HTTP/1.1 200", 12) &&
                       strstr(o.data, "cloud-model") != NULL;
            buf_fini(&o);
            /* the gateway gives the load back when the transfer ends, which may be just
             * after the client got the last byte */
            for (int i = 0; i < 200; i++) {
                if (load_of(g.port, e3, c3) == 0 && e3[0] == 0 && c3[0] == 0 && e3[1] == 0 &&
                    c3[1] == 0)
                    break;
                usleep(50000);
            }
        }
        if (fd >= 0) close(fd);
        gwt_gw_stop(&g);
    }
    gwt_emu_stop(&edge);
    gwt_emu_stop(&cloud);
    CHECK(up);
    CHECK(seen1);
    CHECK(e1[1] > 0);                  /* its prompt and expected output tokens */
    CHECK_NEAR(c1[0], 0, 0);
    CHECK_NEAR(c1[1], 0, 0);
    CHECK(seen2);
    CHECK_NEAR(e2[0], 0, 0);           /* stage 1 gave its load back */
    CHECK_NEAR(e2[1], 0, 0);
    CHECK(c2[1] > 0);
    CHECK(answered);
    CHECK_NEAR(e3[0], 0, 0);
    CHECK_NEAR(e3[1], 0, 0);
    CHECK_NEAR(c3[0], 0, 0);
    CHECK_NEAR(c3[1], 0, 0);
}
