/* gw/metrics — Prometheus text exposition of the gateway's counters (see metrics.h). */
#include "gw/metrics.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

/* Decision-time histogram bounds, seconds: 10 µs .. 1 s. */
static const double k_bounds[GW_HIST_BUCKETS] = {1e-5, 2.5e-5, 5e-5, 1e-4, 2.5e-4, 5e-4,
                                                 1e-3, 2.5e-3, 5e-3, 1e-2, 1e-1, 1.0};
static const char *k_outcome[GW_OUT__N] = {"ok", "upstream_error", "client_gone"};
static const char *k_uperr[GW_UPERR__N] = {"connect", "timeout", "http_5xx", "midstream"};
static const int k_status[6] = {400, 401, 404, 405, 413, 0};

void gw_metrics_init(struct gw_metrics *m, int nnodes, const char *policy)
{
    memset(m, 0, sizeof *m);
    m->nnodes = nnodes;
    snprintf(m->policy, sizeof m->policy, "%s", policy);
}

void gw_metrics_decision(struct gw_metrics *m, double s)
{
    int i = 0;
    while (i < GW_HIST_BUCKETS && s > k_bounds[i]) i++;
    m->dec_bucket[i]++;
    m->dec_sum += s;
    m->dec_count++;
}

void gw_metrics_client_error(struct gw_metrics *m, int status)
{
    int i = 0;
    while (i < 5 && k_status[i] != status) i++;
    m->client_err[i]++;
}

void gw_metrics_latency(struct gw_metrics *m, int node, double pred_s, double obs_s)
{
    if (node < 0 || node >= m->nnodes || !isfinite(pred_s) || !isfinite(obs_s)) return;
    m->lat_pred_s[node] += pred_s;
    m->lat_obs_s[node] += obs_s;
    m->lat_abserr_s[node] += fabs(pred_s - obs_s);
    m->lat_n[node]++;
}

/* Label values are node names from the config: escape \ " and newline anyway. */
static void esc(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') buf_putc(b, '\\');
        if (*s == '\n') { buf_puts(b, "\\n"); continue; }
        buf_putc(b, *s);
    }
}

static void head(struct buf *b, const char *name, const char *type, const char *help)
{
    buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static void node_val(struct buf *b, const char *name, const char *node, double v)
{
    buf_printf(b, "%s{node=\"", name);
    esc(b, node);
    buf_printf(b, "\"} %.17g\n", v);
}

int gw_metrics_render(const struct gw_metrics *m, const struct gw_metrics_node *nodes,
                      struct buf *b)
{
    head(b, "ferry_requests_total", "counter",
         "Chat requests finished, by answering node, routing and outcome.");
    for (int n = 0; n < m->nnodes; n++)
        for (int r = 0; r < 2; r++)
            for (int o = 0; o < GW_OUT__N; o++) {
                buf_puts(b, "ferry_requests_total{node=\"");
                esc(b, nodes[n].name);
                buf_puts(b, "\",policy=\"");
                esc(b, r ? m->policy : "pinned");
                buf_printf(b, "\",outcome=\"%s\"} %llu\n", k_outcome[o], m->requests[n][r][o]);
            }
    head(b, "ferry_client_errors_total", "counter",
         "Requests refused before routing, by HTTP status.");
    for (int i = 0; i < 6; i++) {
        if (k_status[i]) buf_printf(b, "ferry_client_errors_total{status=\"%d\"} %llu\n",
                                    k_status[i], m->client_err[i]);
        else buf_printf(b, "ferry_client_errors_total{status=\"other\"} %llu\n", m->client_err[i]);
    }
    head(b, "ferry_decision_duration_seconds", "histogram",
         "Time from a parsed request to a routing decision (features included).");
    unsigned long long cum = 0;
    for (int i = 0; i < GW_HIST_BUCKETS; i++) {
        cum += m->dec_bucket[i];
        buf_printf(b, "ferry_decision_duration_seconds_bucket{le=\"%g\"} %llu\n", k_bounds[i], cum);
    }
    cum += m->dec_bucket[GW_HIST_BUCKETS];
    buf_printf(b, "ferry_decision_duration_seconds_bucket{le=\"+Inf\"} %llu\n", cum);
    buf_printf(b, "ferry_decision_duration_seconds_sum %.17g\n", m->dec_sum);
    buf_printf(b, "ferry_decision_duration_seconds_count %llu\n", m->dec_count);

    head(b, "ferry_upstream_errors_total", "counter",
         "Failed upstream attempts, by node and kind (before or after the first byte).");
    for (int n = 0; n < m->nnodes; n++)
        for (int k = 0; k < GW_UPERR__N; k++) {
            buf_puts(b, "ferry_upstream_errors_total{node=\"");
            esc(b, nodes[n].name);
            buf_printf(b, "\",kind=\"%s\"} %llu\n", k_uperr[k], m->uperr[n][k]);
        }
    head(b, "ferry_cascade_total", "counter",
         "Cascade plans, by first-stage node and verdict (docs/gateway.md \"Cascades\").");
    static const char *const k_casc[3] = {"accepted", "escalated", "unknown"};
    for (int n = 0; n < m->nnodes; n++)
        for (int k = 0; k < 3; k++) {
            buf_puts(b, "ferry_cascade_total{node=\"");
            esc(b, nodes[n].name);
            buf_printf(b, "\",outcome=\"%s\"} %llu\n", k_casc[k], m->cascade[n][k]);
        }
    head(b, "ferry_failovers_total", "counter", "Requests retried on another node.");
    buf_printf(b, "ferry_failovers_total %llu\n", m->failovers);
    head(b, "ferry_feedback_total", "counter", "Feedback scores received.");
    buf_printf(b, "ferry_feedback_total %llu\n", m->feedback);

    struct { const char *name, *help; const double *v; } sums[] = {
        {"ferry_latency_predicted_seconds_total", "Sum of predicted end-to-end latency.", m->lat_pred_s},
        {"ferry_latency_observed_seconds_total", "Sum of observed end-to-end latency.", m->lat_obs_s},
        {"ferry_latency_abs_error_seconds_total", "Sum of |predicted - observed| latency.", m->lat_abserr_s},
    };
    for (size_t s = 0; s < sizeof sums / sizeof sums[0]; s++) {
        head(b, sums[s].name, "counter", sums[s].help);
        for (int n = 0; n < m->nnodes; n++) node_val(b, sums[s].name, nodes[n].name, sums[s].v[n]);
    }
    head(b, "ferry_latency_observations_total", "counter",
         "Completed requests with both a prediction and an observation.");
    for (int n = 0; n < m->nnodes; n++)
        node_val(b, "ferry_latency_observations_total", nodes[n].name, (double)m->lat_n[n]);

    head(b, "ferry_inflight_requests", "gauge", "Requests the gateway has open at a node.");
    for (int n = 0; n < m->nnodes; n++) node_val(b, "ferry_inflight_requests", nodes[n].name, nodes[n].inflight);
    head(b, "ferry_node_healthy", "gauge", "1 when the node is in rotation, 0 when taken out.");
    for (int n = 0; n < m->nnodes; n++) node_val(b, "ferry_node_healthy", nodes[n].name, nodes[n].healthy);
    head(b, "ferry_node_ewma_ttft_seconds", "gauge", "EWMA of observed time to first token.");
    for (int n = 0; n < m->nnodes; n++) node_val(b, "ferry_node_ewma_ttft_seconds", nodes[n].name, nodes[n].ewma_ttft_s);
    head(b, "ferry_node_ewma_tpot_seconds", "gauge", "EWMA of observed time per output token.");
    for (int n = 0; n < m->nnodes; n++) node_val(b, "ferry_node_ewma_tpot_seconds", nodes[n].name, nodes[n].ewma_tpot_s);
    head(b, "ferry_node_backend_running", "gauge",
         "Requests running at the backend, from its own /metrics (-1 = not scraped).");
    for (int n = 0; n < m->nnodes; n++) node_val(b, "ferry_node_backend_running", nodes[n].name, nodes[n].backend_running);
    head(b, "ferry_node_backend_waiting", "gauge",
         "Requests waiting at the backend, from its own /metrics (-1 = not scraped).");
    for (int n = 0; n < m->nnodes; n++) node_val(b, "ferry_node_backend_waiting", nodes[n].name, nodes[n].backend_waiting);
    return b->data ? 0 : -1;
}
