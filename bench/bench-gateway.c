/* bench-gateway — the gateway's per-request CPU work for one request with one
 * 1024-pixel JPEG (a shared photo downscaled to 1024x770), on one thread as a worker
 * runs it: req_parse (JSON + base64 + header probe), feat_request (decode at the
 * analysis size, complexity, text features) and the policy decision with the predictor
 * bank over an edge and a cloud node. Prints p50/p99 per stage in ms.
 *   bench-gateway IMAGE [REPS] [POLICY] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feat/image.h"
#include "gw/route.h"
#include "node/profile.h"
#include "policy/policy.h"
#include "pred/pred.h"
#include "req/request.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/file.h"
#include "util/rng.h"

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double pct(double *v, int n, double q)
{
    qsort(v, (size_t)n, sizeof *v, cmp);
    int i = (int)(q * (n - 1) + 0.5);
    return v[i];
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench-gateway IMAGE [REPS] [POLICY]\n");
        return 2;
    }
    int reps = argc > 2 ? atoi(argv[2]) : 200;
    const char *polname = argc > 3 ? argv[3] : "ferry";
    char err[512];
    uint8_t *raw = NULL, *jpg = NULL;
    size_t rl = 0, jl = 0;
    if (util_read_file(argv[1], 0, &raw, &rl, err, sizeof err) ||
        feat_image_downscale_jpeg(raw, rl, 1024, 90, &jpg, &jl, err, sizeof err)) {
        fprintf(stderr, "bench-gateway: %s\n", err);
        return 1;
    }
    enum fy_img_format fmt;
    int w = 0, h = 0;
    feat_image_probe(jpg, jl, &fmt, &w, &h, err, sizeof err);
    char *b64 = malloc(b64_encoded_len(jl, 1) + 1);
    b64_encode(jpg, jl, B64_STD, 1, b64);
    struct buf body;
    buf_init(&body);
    buf_printf(&body, "{\"model\":\"ferry\",\"max_tokens\":64,\"messages\":[{\"role\":\"user\","
                      "\"content\":[{\"type\":\"text\",\"text\":\"How many boats are in the picture, "
                      "and what colour is the largest one?\"},{\"type\":\"image_url\",\"image_url\":"
                      "{\"url\":\"data:image/jpeg;base64,%s\"}}]}]}", b64);
    struct node_lib lib;
    node_lib_init(&lib);
    struct fy_node nodes[2];
    if (node_lib_load_dir(&lib, "data/profiles", err, sizeof err) ||
        node_lib_resolve(&lib, "edge-3090", &nodes[0], err, sizeof err) ||
        node_lib_resolve(&lib, "cloud-a100", &nodes[1], err, sizeof err)) {
        fprintf(stderr, "bench-gateway: %s\n", err);
        return 1;
    }
    const struct fy_policy *pol = pol_find(polname);
    void *st = NULL;
    if (!pol || (pol->init && pol->init(&st, NULL, err, sizeof err))) {
        fprintf(stderr, "bench-gateway: policy %s: %s\n", polname, pol ? err : "unknown");
        return 1;
    }
    struct pred *pred = pred_new(nodes, 2);
    struct rng rng;
    rng_seed(&rng, 1);
    double *tp = calloc((size_t)reps, sizeof *tp), *tf = calloc((size_t)reps, sizeof *tf);
    double *td = calloc((size_t)reps, sizeof *td), *tt = calloc((size_t)reps, sizeof *tt);
    for (int i = 0; i < reps; i++) {
        struct req_error re;
        struct fy_features f;
        double t0 = clock_now_ms();
        struct fy_request *r = req_parse(body.data, body.len, NULL, &re);
        double t1 = clock_now_ms();
        if (!r || gw_route_features(r, &f, err, sizeof err)) {
            fprintf(stderr, "bench-gateway: %s\n", r ? err : re.msg);
            return 1;
        }
        double t2 = clock_now_ms();
        struct pol_ctx c = {.f = &f, .prefs = &r->prefs, .nodes = nodes, .nnodes = 2,
                            .pred = pred, .now_ms = i, .rng = &rng, .session = ""};
        struct fy_plan plan;
        struct fy_estimate est;
        if (gw_route_decide(pol, st, &c, NULL, &plan, &est)) {
            fprintf(stderr, "bench-gateway: no decision\n");
            return 1;
        }
        double t3 = clock_now_ms();
        tp[i] = t1 - t0;
        tf[i] = t2 - t1;
        td[i] = t3 - t2;
        tt[i] = t3 - t0;
        req_free(r);
    }
    printf("image %dx%d JPEG, %zu bytes (%zu bytes of JSON), policy %s, %d repetitions, one thread\n",
           w, h, jl, body.len, polname, reps);
    printf("%-34s %10s %10s\n", "stage", "p50 ms", "p99 ms");
    printf("%-34s %10.3f %10.3f\n", "req_parse (JSON, base64, probe)", pct(tp, reps, .5), pct(tp, reps, .99));
    printf("%-34s %10.3f %10.3f\n", "feat_request (decode, features)", pct(tf, reps, .5), pct(tf, reps, .99));
    printf("%-34s %10.3f %10.3f\n", "policy decision (2 nodes)", pct(td, reps, .5), pct(td, reps, .99));
    printf("%-34s %10.3f %10.3f   target < 10 ms p99\n", "total", pct(tt, reps, .5), pct(tt, reps, .99));
    /* the same stages for the benchmark's short text request, plus what the gateway does
     * around them: the forwarded body (cJSON print) and learning from the outcome */
    const char *text = "{\"model\":\"ferry\",\"max_tokens\":16,\"messages\":[{\"role\":\"user\","
                       "\"content\":\"What is the capital of France? Answer in one word.\"}]}";
    double *tb = calloc((size_t)reps, sizeof *tb), *to = calloc((size_t)reps, sizeof *to);
    int treps = reps * 10;
    double *xp = calloc((size_t)treps, sizeof *xp), *xf = calloc((size_t)treps, sizeof *xf);
    double *xd = calloc((size_t)treps, sizeof *xd), *xb = calloc((size_t)treps, sizeof *xb);
    double *xo = calloc((size_t)treps, sizeof *xo);
    for (int i = 0; i < treps; i++) {
        struct req_error re;
        struct fy_features f;
        double t0 = clock_now_ms();
        struct fy_request *r = req_parse(text, strlen(text), NULL, &re);
        double t1 = clock_now_ms();
        gw_route_features(r, &f, err, sizeof err);
        double t2 = clock_now_ms();
        struct pol_ctx c = {.f = &f, .prefs = &r->prefs, .nodes = nodes, .nnodes = 2,
                            .pred = pred, .now_ms = i, .rng = &rng, .session = ""};
        struct fy_plan plan;
        struct fy_estimate est;
        gw_route_decide(pol, st, &c, NULL, &plan, &est);
        double t3 = clock_now_ms();
        size_t bl = 0;
        char *fwd = gw_route_body(r, "qwen2-vl-2b", &bl);
        double t4 = clock_now_ms();
        struct fy_outcome o;
        memset(&o, 0, sizeof o);
        o.plan = plan;
        o.quality = -1;
        o.ttft_ms = 50;
        o.e2e_ms = 120;
        o.out_tokens = 3;
        o.in_tokens = 20;
        if (pol->observe) pol->observe(st, &c, &o);
        pred_observe(pred, &f, nodes, &o);
        double t5 = clock_now_ms();
        xp[i] = (t1 - t0) * 1e3;
        xf[i] = (t2 - t1) * 1e3;
        xd[i] = (t3 - t2) * 1e3;
        xb[i] = (t4 - t3) * 1e3;
        xo[i] = (t5 - t4) * 1e3;
        free(fwd);
        req_free(r);
    }
    printf("\ntext request (%zu bytes), %d repetitions                 p50 us     p99 us\n",
           strlen(text), treps);
    printf("%-34s %10.2f %10.2f\n", "req_parse", pct(xp, treps, .5), pct(xp, treps, .99));
    printf("%-34s %10.2f %10.2f\n", "feat_request (text features)", pct(xf, treps, .5), pct(xf, treps, .99));
    printf("%-34s %10.2f %10.2f\n", "policy decision + estimate", pct(xd, treps, .5), pct(xd, treps, .99));
    printf("%-34s %10.2f %10.2f\n", "forwarded body (cJSON print)", pct(xb, treps, .5), pct(xb, treps, .99));
    printf("%-34s %10.2f %10.2f\n", "observe (policy + pred_observe)", pct(xo, treps, .5), pct(xo, treps, .99));
    free(tb); free(to); free(xp); free(xf); free(xd); free(xb); free(xo);
    if (pol->free && st) pol->free(st);
    pred_free(pred);
    node_lib_fini(&lib);
    buf_fini(&body);
    free(b64); free(raw); free(jpg); free(tp); free(tf); free(td); free(tt);
    return 0;
}
