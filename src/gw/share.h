/* gw/share — several `ferry serve` replicas sharing node load and learned predictor state
 * through Redis (DESIGN.md "Scale"; docs/gateway.md "Running several replicas").
 *
 * Live load: every [share] interval_ms a replica writes its own per-node in-flight counts
 * and tokens ahead to PREFIX:load:REPLICA (a string with a TTL of ttl_ms, so a dead
 * replica's counts expire), adds REPLICA to the set PREFIX:replicas, and reads the other
 * members' keys (members whose key has expired are removed from the set). The sums of the
 * others' numbers land in gw_node_rt.remote_inflight / remote_tokens, which
 * gw_nodes_refresh adds to what the policy sees. Remote numbers older than ttl_ms (Redis
 * unreachable) are dropped: the replica then decides on its local numbers only.
 *
 * Learned state: the hash PREFIX:state:LINEAGE (fields bytes — the state file's format —,
 * saved_ms, replica, token) holds the fleet's bank. Every save_interval_s a replica reads
 * it and merges it into its own bank (what the fleet learned beyond the replica's last
 * sync: MGQP's Gaussian posteriors combined in natural parameters, MILP's RLS models in
 * information form; share.c says how),
 * and, when it learned something itself, writes the result back in a WATCH/MULTI/EXEC
 * transaction (a conflict merges again next time); the same at shutdown (blocking,
 * bounded). A starting replica reads it. LINEAGE names what the state descends from:
 * "prior" (no model file) or "model-HEX" (the model file's checksum), so replicas
 * running different model files never mix their states.
 *
 * Feedback: POST /v1/feedback for a request another replica served (its id starts with
 * that replica's id prefix, published with its load) is pushed to the list
 * PREFIX:fb:IDPREFIX (expires after a minute unread); every replica pops its own list
 * in each round and applies what it finds.
 *
 * Everything on the loop is asynchronous (hiredis' libevent adapter); only the start
 * (gw_share_fetch_state) and stop (gw_share_final_save) exchanges block, before and after
 * the loop runs, each bounded by timeout_ms. Redis down: one log line per outage, the
 * replica keeps serving on local state, reconnects with doubling backoff (up to 5 s), and
 * the metric ferry_share_connected says 0. */
#ifndef FERRY_GW_SHARE_H
#define FERRY_GW_SHARE_H
#include <stddef.h>

#include "ferry.h"
#include "gw/config.h"

struct event_base;
struct gw_nodes;
struct gw_share;
struct pred;
struct buf;

/* Value written to PREFIX:load:REPLICA: "ferry-load 1\n" then one line per node
 * "NAME INFLIGHT TOKENS_AHEAD\n". */
#define GW_SHARE_LOAD_MAGIC "ferry-load 1\n"
#define GW_SHARE_LOAD_MAX   65536   /* a longer value is ignored */

/* Adds the numbers of one replica's load value to inflight[i] / tokens[i] of the node
 * whose name is names[i] (lines naming other nodes are skipped). Bounded: reads at most
 * len bytes (no NUL needed), counts clamped to 0..1e6 and tokens to 0..1e12. Returns the
 * number of lines used, or -1 if v is not a load value (nothing added). */
int gw_share_parse_load(const char *v, size_t len, const char (*names)[FY_NAME_MAX], int n,
                        int *inflight, double *tokens);

/* Feedback forwarded between replicas: an entry of the list PREFIX:fb:IDPREFIX is
 * "REQUEST_ID SCORE". Parses one (untrusted: another process wrote it): the id is
 * 1..47 bytes of [A-Za-z0-9_.-], the score a number in [0, 1]. 0 or -1. */
int gw_share_parse_feedback(const char *v, size_t len, char *id, size_t idcap, double *score);

/* Lineage of the learned state for cfg: "prior", or "model-HEX" from the model file's
 * checksum line. 0, or -1 with err (file unreadable or without a checksum line). */
int gw_share_lineage(const struct gw_config *cfg, char *out, size_t cap, char *err,
                     size_t errlen);

/* The model-format bytes of p (malloc'd, *len bytes, NUL-terminated). 0 or -1 with err. */
int gw_share_pred_bytes(const struct pred *p, char **out, size_t *len, char *err,
                        size_t errlen);
/* A predictor bank from model-format bytes (what pred_load checks, checks here too);
 * what = a name for messages. NULL with err. */
struct pred *gw_share_pred_parse(const char *bytes, size_t len, const char *what,
                                 const struct fy_node *nodes, int nnodes, char *err,
                                 size_t errlen);

/* Blocking (start only, bounded by cfg->share_timeout_ms): the state stored under
 * PREFIX:state:LINEAGE. 1 found (*bytes malloc'd, *saved_ms wall-clock ms since the epoch,
 * replica = writer), 0 absent, -1 Redis unreachable or error (err says why). */
int gw_share_fetch_state(const struct gw_config *cfg, const char *lineage, char **bytes,
                         size_t *len, double *saved_ms, char *replica, size_t replica_cap,
                         char *err, size_t errlen);

/* Starts sharing for the nodes of ns on base (connects asynchronously; never fails
 * because Redis is down). pred: the bank whose state is published (may be NULL); its
 * owner keeps it alive until gw_share_free. NULL only when out of memory or when the
 * address cannot be resolved (err). */
struct gw_share *gw_share_new(struct event_base *base, const struct gw_config *cfg,
                              struct gw_nodes *ns, const char *lineage, char *err,
                              size_t errlen);
void gw_share_set_pred(struct gw_share *sh, struct pred *p);
/* Feedback routing. id_prefix: what this replica's request ids start with (up to the
 * '-'), published with its load so other replicas can forward feedback for them.
 * apply(arg, id, score) gives this replica feedback another replica received for one
 * of its requests; it returns 0 when the id was known. */
typedef int (*gw_share_feedback_fn)(void *arg, const char *id, double score);
void gw_share_set_feedback(struct gw_share *sh, const char *id_prefix,
                           gw_share_feedback_fn apply, void *arg);
/* Feedback this replica does not know the request of: if the id's prefix belongs to a
 * live replica, queues it for that replica (asynchronously) and returns 0; -1 when not
 * connected, the id is not another live replica's, or sh is NULL. */
int gw_share_forward_feedback(struct gw_share *sh, const char *id, double score);
/* Blocking (after the loop ended, bounded by timeout_ms): saves the state one last time
 * and removes this replica's load entry. 0 or -1 (logged). */
int gw_share_final_save(struct gw_share *sh);
void gw_share_free(struct gw_share *sh);
/* Prometheus text of the share metrics (ferry_share_*); nothing when sh is NULL. */
void gw_share_render(const struct gw_share *sh, struct buf *b);
int gw_share_connected(const struct gw_share *sh);
const char *gw_share_replica(const struct gw_share *sh);

#endif
