/* bench-emu — timing fidelity of `ferry emulate`: bursts of k simultaneous chat
 * requests over loopback HTTP to an emulated node, each request's measured wall-clock
 * latency divided by what the node service model predicts for the same burst replayed
 * offline (node_svc, the simulator's model) times the time scale. 1.00 = the emulator
 * reproduces the model exactly; above 1 = HTTP, scheduling and the 5-ms stream tick
 * added. Then the fault stalls, which are wall-clock ms by design: the extra time of a
 * stall-first request over the same request without it, and the longest pause of a
 * stall-mid stream, each divided by the configured stall. Also the emulator's own cost
 * at --time-scale 0 (requests/s on one connection).
 * Timings are reported, never asserted. */
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <event2/event.h>
#include <event2/thread.h>

#include "emu/server.h"
#include "feat/text.h"
#include "node/service.h"
#include "util/clock.h"

#define MAXK 32
static const char *const PROMPT = "Summarise the harbour log of today in a few sentences.";

struct srv { struct event_base *base; struct emu_server *s; pthread_t th; int port; };

static void *loop_main(void *arg)
{
    struct srv *v = arg;
    event_base_loop(v->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

/* An emulator with options o on a port the kernel chose, its loop on a thread of its
 * own: 0, or -1 with the reason on stderr. */
static int srv_start(struct srv *v, const struct emu_opts *o)
{
    char err[256];
    v->base = event_base_new();
    v->s = emu_server_new(v->base, o, err, sizeof err);
    if (!v->s) {
        fprintf(stderr, "bench-emu: %s\n", err);
        event_base_free(v->base);
        return -1;
    }
    v->port = emu_server_port(v->s);
    pthread_create(&v->th, NULL, loop_main, v);
    return 0;
}

static void srv_stop(struct srv *v)
{
    event_base_loopexit(v->base, NULL);
    pthread_join(v->th, NULL);
    emu_server_free(v->s);
    event_base_free(v->base);
}

struct job { int port, out, stream; double ms; long status; double last, gap; };

/* Discards the body; keeps the largest wall gap between two reads (stream pauses). */
static size_t sink(char *p, size_t sz, size_t n, void *arg)
{
    struct job *j = arg;
    double now = clock_now_ms();
    (void)p;
    if (j->last > 0 && now - j->last > j->gap) j->gap = now - j->last;
    j->last = now;
    return sz * n;
}

static void *job_main(void *arg)
{
    struct job *j = arg;
    char url[96], body[512];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1/chat/completions", j->port);
    snprintf(body, sizeof body,
             "{\"model\":\"x\",\"stream\":%s,\"messages\":[{\"role\":\"user\",\"content\":\"%s\"}],"
             "\"metadata\":{\"out_tokens\":%d}}", j->stream ? "true" : "false", PROMPT, j->out);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, sink);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, j);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    double t0 = clock_now_ms();
    curl_easy_perform(c);
    j->ms = clock_now_ms() - t0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &j->status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return NULL;
}

static double done_ms[MAXK];
static void on_ev(void *arg, uint64_t id, int ev, double t)
{
    (void)arg;
    if (ev == NODE_EV_DONE && id < MAXK) done_ms[id] = t;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Median wall ms of 5 sequential requests (out tokens, stream or not) to a fresh
 * server with options o, or with gap set the median of their largest pause between two
 * reads; NAN when one fails. */
static double median_wall(const struct emu_opts *o, int out, int stream, int gap)
{
    struct srv v;
    if (srv_start(&v, o) < 0) return NAN;
    double w[5];
    for (int i = 0; i < 5; i++) {
        struct job j = {v.port, out, stream, 0, 0, 0, 0};
        job_main(&j);
        w[i] = j.status == 200 ? (gap ? j.gap : j.ms) : NAN;
    }
    srv_stop(&v);
    qsort(w, 5, sizeof *w, cmp);
    return w[2];
}

int main(void)
{
    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    struct emu_opts o;
    emu_opts_default(&o);
    /* a node like the demo's edge: 2B model on a 3090-class GPU (rates rounded) */
    o.prof.prefill_tps = 9000;
    o.prof.decode_tps = 150;
    o.prof.tpot_slope = 0.02;
    o.prof.max_seqs = 16;
    int prompt = 4 + feat_text_tokens(PROMPT, strlen(PROMPT));
    const int out = 60;
    const double scales[] = {1.0, 0.1};
    const int ks[] = {1, 4, 16};
    printf("inputs: bursts of k simultaneous requests (%d prompt, %d output tokens), node %.0f/%.0f "
           "tok/s prefill/decode, tpot_slope %.2f, max_seqs %d; 5 bursts each\n",
           prompt, out, o.prof.prefill_tps, o.prof.decode_tps, o.prof.tpot_slope, o.prof.max_seqs);
    printf("%-6s %-9s %3s %12s %12s %14s %14s\n", "scale", "mode", "k", "model ms", "wall ms",
           "ratio median", "ratio max");
    for (size_t si = 0; si < sizeof scales / sizeof scales[0]; si++) {
        o.time_scale = scales[si];
        struct srv v;
        if (srv_start(&v, &o) < 0) return 1;
        for (int stream = 0; stream < 2; stream++)
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
                int k = ks[ki];
                /* the model's answer for the burst, offline */
                struct node_svc *svc = node_svc_new(&o.prof, NULL);
                for (int i = 0; i < k; i++) node_svc_submit(svc, 0, (uint64_t)i, prompt, 0, out);
                while (isfinite(node_svc_next_time(svc)))
                    node_svc_advance(svc, node_svc_next_time(svc), on_ev, NULL);
                node_svc_free(svc);
                double model_med;
                {
                    double m[MAXK];
                    memcpy(m, done_ms, sizeof(double) * (size_t)k);
                    qsort(m, (size_t)k, sizeof *m, cmp);
                    model_med = m[k / 2];
                }
                double ratios[5 * MAXK], walls[5 * MAXK];
                int nr = 0;
                for (int rep = 0; rep < 5; rep++) {
                    struct job j[MAXK];
                    pthread_t th[MAXK];
                    for (int i = 0; i < k; i++) {
                        j[i] = (struct job){v.port, out, stream, 0, 0, 0, 0};
                        pthread_create(&th[i], NULL, job_main, &j[i]);
                    }
                    for (int i = 0; i < k; i++) pthread_join(th[i], NULL);
                    /* pair the i-th fastest measured with the i-th fastest modelled */
                    double w[MAXK], mm[MAXK];
                    for (int i = 0; i < k; i++) {
                        w[i] = j[i].status == 200 ? j[i].ms : NAN;
                        mm[i] = done_ms[i];
                    }
                    qsort(w, (size_t)k, sizeof *w, cmp);
                    qsort(mm, (size_t)k, sizeof *mm, cmp);
                    for (int i = 0; i < k; i++) {
                        walls[nr] = w[i];
                        ratios[nr++] = w[i] / (mm[i] * o.time_scale);
                    }
                }
                qsort(ratios, (size_t)nr, sizeof *ratios, cmp);
                qsort(walls, (size_t)nr, sizeof *walls, cmp);
                printf("%-6g %-9s %3d %12.1f %12.1f %14.3f %14.3f\n", o.time_scale,
                       stream ? "stream" : "whole", k, model_med * o.time_scale, walls[nr / 2],
                       ratios[nr / 2], ratios[nr - 1]);
            }
        srv_stop(&v);
    }
    /* fault stalls are wall-clock ms (docs/emulator.md "Faults"): the extra wall time a
     * stalled request takes over the same request without the fault, measured in this
     * run, divided by the configured stall (1.00 = exact). The tests only count the
     * injected stalls; this is where their duration is checked. */
    {
        struct emu_opts fo = o;
        fo.time_scale = 0.1;
        const double stall = 300;
        double plain_whole = median_wall(&fo, out, 0, 0);
        double plain_gap = median_wall(&fo, out, 1, 1);
        fo.faults.f[EMU_FAULT_STALL_FIRST] = (struct emu_fault){.rate = 1, .ms = stall};
        double first = median_wall(&fo, out, 0, 0);
        fo.faults.f[EMU_FAULT_STALL_FIRST] = (struct emu_fault){0};
        fo.faults.f[EMU_FAULT_STALL_MID] = (struct emu_fault){.rate = 1, .ms = stall};
        double mid = median_wall(&fo, out, 1, 1);
        /* stall-mid: the longest pause in the stream (the model keeps decoding meanwhile,
         * so the stream's total grows by less than the stall) */
        printf("fault stalls of %.0f wall ms at scale 0.1 (median of 5): stall-first (whole) "
               "%.1f ms vs %.1f without, (difference / stall) %.3f; stall-mid (stream) longest "
               "pause %.1f ms (%.1f without), pause / stall %.3f\n", stall, first,
               plain_whole, (first - plain_whole) / stall, mid, plain_gap, mid / stall);
    }
    /* the emulator's own cost: sequential requests at --time-scale 0 */
    o.time_scale = 0;
    struct srv v;
    if (srv_start(&v, &o) < 0) return 1;
    double lat[2000];
    for (int i = 0; i < 2000; i++) {
        struct job j = {v.port, 16, 0, 0, 0, 0, 0};
        job_main(&j);
        lat[i] = j.ms;
    }
    qsort(lat, 2000, sizeof *lat, cmp);
    printf("time scale 0 (instant), one connection at a time, new curl handle per request: "
           "p50 %.3f ms, p99 %.3f ms (client + loopback + emulator)\n", lat[1000], lat[1980]);
    srv_stop(&v);
    curl_global_cleanup();
    return 0;
}
