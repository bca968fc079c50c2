/* gw/metrics — the gateway's Prometheus counters and their text exposition (format
 * 0.0.4), served at GET /metrics. Everything is updated and rendered on the loop
 * thread, so there is no locking. Names (docs/gateway.md "Metrics"):
 *   ferry_requests_total{node,policy,outcome}         finished chat requests
 *   ferry_decision_duration_seconds (histogram)       features + routing decision
 *   ferry_upstream_errors_total{node,kind}            connect, timeout, http_5xx, midstream
 *   ferry_failovers_total                             retries on another node
 *   ferry_cascade_total{node,outcome}                 cascade verdicts: accepted,
 *                                                     escalated, unknown (no logprobs)
 *   ferry_latency_predicted_seconds_total{node}       sums over completed requests, with
 *   ferry_latency_observed_seconds_total{node}        ferry_latency_observations_total and
 *   ferry_latency_abs_error_seconds_total{node}       the absolute prediction error
 *   ferry_inflight_requests{node}, ferry_node_healthy{node},
 *   ferry_node_ewma_ttft_seconds{node}, ferry_node_ewma_tpot_seconds{node},
 *   ferry_node_backend_running{node}, ferry_node_backend_waiting{node},
 *   ferry_feedback_total, ferry_client_errors_total{status}
 * ferry_share_* and ferry_shadow_total are rendered by gw/share.h and gw/shadow.h,
 * ferry_http_connections and ferry_http_rejected_total by gw/http.h (gw_http_render). */
#ifndef FERRY_GW_METRICS_H
#define FERRY_GW_METRICS_H
#include "ferry.h"
#include "util/buf.h"

enum gw_outcome { GW_OUT_OK = 0, GW_OUT_UPSTREAM_ERROR, GW_OUT_CLIENT_GONE, GW_OUT__N };
enum gw_uperr { GW_UPERR_CONNECT = 0, GW_UPERR_TIMEOUT, GW_UPERR_5XX, GW_UPERR_MIDSTREAM,
                GW_UPERR__N };

#define GW_HIST_BUCKETS 12

struct gw_metrics {
    int nnodes;
    char policy[FY_NAME_MAX];
    /* [node][0 = pinned, 1 = routed by the policy][outcome] */
    unsigned long long requests[FY_MAX_NODES][2][GW_OUT__N];
    unsigned long long uperr[FY_MAX_NODES][GW_UPERR__N];
    unsigned long long failovers, feedback;
    /* [first-stage node][gw_casc_result: accepted, escalated, unknown] (gw/cascade.h) */
    unsigned long long cascade[FY_MAX_NODES][3];
    unsigned long long client_err[6];      /* 400 401 404 405 413 other */
    unsigned long long dec_bucket[GW_HIST_BUCKETS + 1];
    double dec_sum;
    unsigned long long dec_count;
    double lat_pred_s[FY_MAX_NODES], lat_obs_s[FY_MAX_NODES], lat_abserr_s[FY_MAX_NODES];
    unsigned long long lat_n[FY_MAX_NODES];
};

void gw_metrics_init(struct gw_metrics *m, int nnodes, const char *policy);
void gw_metrics_decision(struct gw_metrics *m, double seconds);
void gw_metrics_client_error(struct gw_metrics *m, int status);
void gw_metrics_latency(struct gw_metrics *m, int node, double predicted_s, double observed_s);

/* Live per-node gauges passed in at render time. */
struct gw_metrics_node {
    const char *name;
    int inflight, healthy;
    double ewma_ttft_s, ewma_tpot_s;
    double backend_running, backend_waiting;   /* < 0 = not scraped */
};

/* Appends the exposition text. 0 or -1 (out of memory). */
int gw_metrics_render(const struct gw_metrics *m, const struct gw_metrics_node *nodes,
                      struct buf *out);

#endif
