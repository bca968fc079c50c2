/* server — `ferry emulate`: an OpenAI-compatible HTTP server that behaves like one MLLM
 * node (docs/emulator.md). Timing comes from the node service model (node/service.h)
 * driven by libevent timers on scaled wall-clock time: real concurrent requests share
 * the modelled device as in continuous batching, and streamed tokens leave at the
 * modelled pace. Endpoints:
 *   POST /v1/chat/completions   non-streaming JSON, or SSE with stream=true
 *                               (stream_options.include_usage adds a usage chunk)
 *   GET  /v1/models             the profile's model
 *   GET  /health                200 {"status":"ok"}; 503 while "loading" (slow start)
 *   GET  /metrics               Prometheus text with vLLM's metric names
 *   GET  /slots                 llama.cpp-style slot list (one per max_seqs)
 * One event loop, one thread; the server never blocks it. */
#ifndef FERRY_EMU_SERVER_H
#define FERRY_EMU_SERVER_H
/* --time-scale's bound: 1000 wall ms per modelled ms (1e300 overflowed the timer's
 * seconds) */
#define EMU_MAX_TIME_SCALE 1000.0
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"
#include "emu/faults.h"
#include "node/profile.h"

struct event_base;

struct emu_opts {
    char host[64];              /* listen address; default "127.0.0.1" */
    int port;                   /* 0 = chosen by the kernel */
    char name[FY_NAME_MAX];     /* node name (reported in /slots and logs) */
    struct fy_node_profile prof;/* timing and the model name served */
    double capability;          /* quality model: capability (logits) when !has_model */
    double confidence_sep;      /* answer-confidence model (sim/quality.h): logits between */
    double confidence_noise;    /*   right and wrong answers, and its noise; defaults 1, 1 */
    struct node_model model;    /* the profile's model: capability per skill */
    int has_model;
    struct link_spec link;      /* the profile's link: upload time of each request body */
    int has_link;
    double time_scale;          /* wall ms = modelled ms * time_scale; 0 = instant;
                                 * at most EMU_MAX_TIME_SCALE */
    uint64_t seed;              /* answers, output lengths and faults */
    uint64_t item_seed;         /* right/wrong draws, keyed by the item: nodes with the same
                                 * item seed draw the same u for the same question (0) */
    struct emu_faults faults;
    size_t max_body_bytes;      /* default 32 MiB */
    double tick_ms;             /* wall ms between stream flushes; default 5 */
};

void emu_opts_default(struct emu_opts *o);

struct emu_server;

/* Binds and starts serving on base (the caller runs the loop). NULL with a message
 * ("bind 127.0.0.1:80: Permission denied") on error. */
struct emu_server *emu_server_new(struct event_base *base, const struct emu_opts *o,
                                  char *err, size_t errlen);
/* The bound port (the kernel's choice when opts.port was 0). */
int emu_server_port(const struct emu_server *s);
/* The quality model used for answers: P(correct) for a model of this capability
 * (logits) and an item difficulty in [0,1] (< 0 = none); see server.c. */
double emu_p_correct(double capability, double difficulty);
/* The request's difficulty in [0,1] on the quality model's logit scale: ln(d/(1-d)),
 * clamped to +-12; 0 for "none" (< 0). */
double emu_difficulty_logit(double difficulty);

/* Stops accepting, drops open connections and frees everything. NULL is a no-op. */
void emu_server_free(struct emu_server *s);

#endif
