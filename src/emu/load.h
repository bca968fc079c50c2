/* load — `ferry bench load`: drives a mixed chat workload through an OpenAI-compatible
 * endpoint (normally the gateway) over real HTTP and summarises what a user would see
 * (docs/emulator.md "Load driver"; used by `make demo`).
 *
 * The workload is a deterministic function of (seed, requests, dataset, M4A1 file), so
 * runs against differently configured gateways see the same requests in the same order:
 *   45 %  image questions: the labelled dataset's items (images inline as data: URLs)
 *   20 %  short text: "What is A plus B?" (answer known)
 *   15 %  long text: a passage of 1 000-3 000 tokens with one embedded fact to retrieve
 *   20 %  dialogues: 2-4 turns of an M4A1 dialogue (its real questions; reference = the
 *         logged answer), the first turn with a camera view from ../shared/images, each
 *         turn sent after the previous answer, with the history and X-Ferry-Session
 * A share of requests (--stream-share) is streamed. Every request carries
 * metadata.answer/difficulty (emulated nodes answer with the quality model); the reply
 * is scored (score.h) and the score is sent to POST /v1/feedback when the response
 * named an X-Ferry-Request-Id.
 *
 * A request is completed when it succeeded (HTTP 200, whole body) and its score is at
 * least 0.5 (DESIGN.md "Quality model": completion = quality reaches the minimum). */
#ifndef FERRY_EMU_LOAD_H
#define FERRY_EMU_LOAD_H
#include <stdio.h>

#include "ferry.h"

struct emu_load_opts {
    const char *url;          /* base URL, e.g. http://127.0.0.1:8080 */
    const char *config;       /* gateway INI for node prices (cost); NULL = no cost */
    const char *dataset;      /* labelled JSONL (dataset.h); default data/collect/mini.jsonl */
    const char *m4a1;         /* M4A1.json; default <base>/datasets/m4a1/M4A1.json if present */
    const char *base;         /* shared folder; default $FERRY_SHARED, else ../shared */
    const char *model;        /* "model" of every request; default "ferry" */
    int requests;             /* conversations' turns in all; default 60 */
    int concurrency;          /* requests at once; default 4 */
    unsigned long long seed;  /* default 1 */
    double stream_share;      /* default 0.3 */
    int feedback;             /* 1 = POST /v1/feedback (default) */
    long timeout_ms;          /* per request; default 120000 */
};

struct emu_load_summary {
    int n, ok, completed, feedback_sent;
    double quality_sum;
    double p50_ms, p95_ms, p99_ms, ttft_p50_ms;
    double cost_usd;
    int nnodes;
    char node[FY_MAX_NODES][FY_NAME_MAX];
    int node_count[FY_MAX_NODES];
    char first_error[160];    /* why the first failed request failed; "" = none failed */
};

void emu_load_opts_default(struct emu_load_opts *o);
/* Runs the workload. 0, or -1 with err (bad dataset, config, URL). */
int emu_load_run(const struct emu_load_opts *o, struct emu_load_summary *sum, char *err,
                 size_t errlen);
/* One row of the comparison table (header when sum is NULL). */
void emu_load_print(FILE *fp, const char *label, const struct emu_load_summary *sum);

/* `ferry bench load` (argv[0] = "load"). */
int cmd_bench_load(int argc, char **argv);

#endif
