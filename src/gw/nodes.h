/* gw/nodes — live state of the gateway's backends: requests in flight, EWMA of observed
 * time to first token and time per output token, the backend's own queue scraped from
 * its /metrics (vLLM `vllm:num_requests_running` / `vllm:num_requests_waiting`, llama.cpp
 * `llamacpp:requests_processing` / `llamacpp:requests_deferred`), and health: a node
 * that refuses, times out or answers 5xx is taken out and probed (GET /health) with
 * exponential backoff until it answers again. All on the loop thread. */
#ifndef FERRY_GW_NODES_H
#define FERRY_GW_NODES_H
#include <stddef.h>

#include "ferry.h"
#include "gw/config.h"
#include "gw/share.h"
#include "gw/upstream.h"

struct event_base;

#define GW_EWMA_ALPHA 0.2   /* weight of the newest observation */

struct gw_probe;            /* a health or metrics request in flight (nodes.c) */

struct gw_node_rt {
    int inflight;                /* requests the gateway has open at this node */
    double tokens_ahead;         /* remaining prompt + expected output tokens of those */
    int healthy;
    double backoff_ms;           /* current probe interval while unhealthy */
    double next_probe_ms;        /* clock_now_ms() of the next health probe */
    struct gw_probe *health, *scrape;
    enum gw_metrics_kind metrics;/* detected kind (AUTO until known) */
    double backend_running, backend_waiting; /* -1 = unknown */
    double ewma_ttft_ms, ewma_tpot_ms;       /* 0 = no observation yet */
    unsigned long long taken_out;            /* times marked unhealthy */
    /* prediction errors (latency ms, quality) for GET /v1/ferry/nodes */
    double lat_abs_err_sum, q_abs_err_sum;
    unsigned long long lat_err_n, q_err_n;
    /* other replicas' requests at this node ([share], gw/share.h); 0 when not shared */
    int remote_inflight;
    double remote_tokens;
};

struct gw_nodes {
    const struct gw_config *cfg;
    struct event_base *base;
    struct gw_up *up;
    int n;
    struct fy_node node[FY_MAX_NODES];   /* profile, link and live state for policies */
    struct gw_node_rt rt[FY_MAX_NODES];
    struct event *tick;                  /* health + scrape timer */
    double last_scrape_ms;
    struct gw_share *share;              /* set by gw_share_new; NULL = not shared */
};

/* Builds fy_node for each configured node (profile from its INI via node_lib when
 * given, else the built-in node of its role, node_profile_default and
 * node_link_default; link and prices from the config) and starts the
 * timers. A node without an explicit `model` gets its profile's model name (cfg is
 * updated). 0, or -1 with err. */
int gw_nodes_init(struct gw_nodes *ns, struct gw_config *cfg, struct event_base *base,
                  struct gw_up *up, char *err, size_t errlen);
void gw_nodes_fini(struct gw_nodes *ns);
/* Refreshes node[i].st from the runtime numbers (call before a decision): this
 * replica's requests plus the other replicas' (remote_*), the backend's scraped queue
 * when larger. */
void gw_nodes_refresh(struct gw_nodes *ns);
/* A request failed at node i before its first byte: take it out, probe it back in. */
void gw_nodes_fail(struct gw_nodes *ns, int i);
/* A request succeeded at node i. */
void gw_nodes_ok(struct gw_nodes *ns, int i);
/* Observed timing of one completed stream. ttft_ms <= 0 or tpot_ms <= 0: unknown. */
void gw_nodes_observe(struct gw_nodes *ns, int i, double ttft_ms, double tpot_ms);
/* Parses Prometheus text for the running/waiting gauges. Returns the kind found
 * (GW_METRICS_VLLM / GW_METRICS_LLAMACPP) or GW_METRICS_NONE. */
enum gw_metrics_kind gw_nodes_parse_metrics(const char *text, size_t len, double *running,
                                            double *waiting);

#endif
