/* gw/server — `ferry serve`: the OpenAI-compatible offloading gateway on one libevent
 * loop (gw/http for clients, gw/hclient for http:// backends and curl multi for others,
 * a worker pool for images).
 * Endpoints (docs/gateway.md "HTTP API"):
 *   POST /v1/chat/completions   routed ("ferry"/"auto") or pinned (a node's name or
 *                               backend model); streamed SSE relayed chunk by chunk
 *   GET  /v1/models             "ferry", "auto" and every node
 *   GET  /health                200 when at least one node is in rotation, else 503
 *   GET  /metrics               Prometheus text (gw/metrics.h)
 *   POST /v1/feedback           {"request_id": "...", "score": 0..1} -> MGQP learns
 *   GET  /v1/ferry/nodes        live node state and predictor errors
 * Response headers of chat completions: X-Ferry-Node, X-Ferry-Policy, X-Ferry-Plan,
 * X-Ferry-Predicted-Latency-Ms, X-Ferry-Predicted-Quality, X-Ferry-Request-Id. */
#ifndef FERRY_GW_SERVER_H
#define FERRY_GW_SERVER_H
#include <stddef.h>

#include "gw/config.h"

struct event_base;
struct gw_server;
struct pred;

/* Binds cfg's listen address on base, loads the learned state (cfg.state_file) and
 * opens the trace (cfg.trace_db). The caller runs the loop. NULL with err. */
struct gw_server *gw_server_new(struct event_base *base, const struct gw_config *cfg,
                                char *err, size_t errlen);
int gw_server_port(const struct gw_server *s);
/* Chat requests open (parsing, waiting for a worker or a backend, streaming). */
int gw_server_inflight(const struct gw_server *s);
/* Stops accepting new requests (new chat requests get 503), lets open ones finish, then
 * calls event_base_loopexit — at the latest after cfg.drain_timeout_s. */
void gw_server_drain(struct gw_server *s);
/* Saves the learned state to cfg.state_file and commits the trace. 0 or -1 with err. */
int gw_server_save(struct gw_server *s, char *err, size_t errlen);
/* Saves (as gw_server_save), closes everything. Open requests are dropped. NULL ok. */
void gw_server_free(struct gw_server *s);
/* The predictor bank (learned state); replacing it (before the loop runs) frees the old. */
struct pred *gw_server_pred(struct gw_server *s);
void gw_server_set_pred(struct gw_server *s, struct pred *p);
struct gw_nodes *gw_server_nodes(struct gw_server *s);
/* Request ids start with this prefix and '-' (gw/share routes feedback by it). */
const char *gw_server_id_prefix(const struct gw_server *s);
/* Feedback for a recent request: 0 with the answering node's name, -1 if unknown. */
int gw_server_feedback(struct gw_server *s, const char *id, double score, char *node,
                       size_t cap);

#endif
