/* gw/share — replicas sharing node load and learned state through Redis (see share.h). */
#define _GNU_SOURCE /* memfd_create */
#include "gw/share.h"

#include <errno.h>
#include <event2/event.h>
#include <hiredis/adapters/libevent.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "gw/nodes.h"
#include "pred/milp.h"
#include "pred/model.h"
#include "pred/pred.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#define BACKOFF_MIN_MS 100.0
#define BACKOFF_MAX_MS 5000.0

struct gw_share {
    struct event_base *evbase;
    const struct gw_config *cfg;
    struct gw_nodes *ns;
    struct pred *pred;             /* published learned state; not owned */
    char lineage[48], replica[64];
    char host[128];                /* numeric address, or the socket path when port == 0 */
    int port;
    char key_load[160], key_set[160], key_state[160];
    redisAsyncContext *ac;         /* NULL while disconnected */
    int connected;
    int down_logged;               /* this outage was logged (one line per outage) */
    int ever_connected;
    double backoff_ms, next_connect_ms, connect_started_ms;
    struct event *tick;
    int round_busy;                /* a load round waits for replies */
    double round_started_ms, last_read_ms, last_save_ms;
    int save_busy;
    long long saved_updates;       /* learn_count of the bank when last in step with the
                                    * fleet's copy (saved, loaded or merged) */
    struct pred *base;             /* the bank when last in step with the fleet's copy */
    struct pred *pend_ok, *pend_fail; /* the next base if the write commits / conflicts */
    long long pend_count;
    unsigned long long pend_token; /* written with the state (field token) */
    int pend_sent;                 /* EXEC sent, its reply not yet seen */
    int pend_uncertain;            /* the connection went down before EXEC's reply */
    int merge_warned;
    unsigned long long state_merges, state_conflicts;
    int remote_replicas;
    int have_remote;               /* remote_* numbers of the nodes are set */
    unsigned long long errors, reconnects, state_saves, load_rounds;
    int closing;
    /* feedback routing */
    char id_prefix[24], key_fb[200];
    gw_share_feedback_fn fb_apply;
    void *fb_arg;
    char peer_idp[64][24];         /* id prefixes of the live replicas read last */
    int npeers;
    unsigned long long fb_forwarded, fb_applied, fb_unknown;
};

struct round {                     /* one MGET of the other replicas' load keys */
    struct gw_share *sh;
    int n;
    char (*member)[64];
};

/* ==== load values ================================================================== */

int gw_share_parse_load(const char *v, size_t len, const char (*names)[FY_NAME_MAX], int n,
                        int *inflight, double *tokens)
{
    size_t ml = strlen(GW_SHARE_LOAD_MAGIC);
    if (!v || len > GW_SHARE_LOAD_MAX || len < ml || memcmp(v, GW_SHARE_LOAD_MAGIC, ml))
        return -1;
    int used = 0;
    const char *p = v + ml, *end = v + len;
    while (p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        size_t ll = (size_t)(eol - p);
        char line[FY_NAME_MAX + 64];
        const char *sp = ll < sizeof line && *p != '@' ? memchr(p, ' ', ll) : NULL;
        if (sp && sp > p && (size_t)(sp - p) < FY_NAME_MAX) {
            memcpy(line, p, ll);
            line[ll] = 0;
            size_t nl = (size_t)(sp - p);
            line[nl] = 0;                       /* line = NAME, line + nl + 1 = numbers */
            char *e1, *e2;
            errno = 0;
            long c = strtol(line + nl + 1, &e1, 10);
            double t = e1 != line + nl + 1 && *e1 == ' ' ? strtod(e1 + 1, &e2) : NAN;
            if (!errno && isfinite(t) && e2 != e1 + 1 && *e2 == 0) {
                if (c < 0) c = 0;
                if (c > 1000000) c = 1000000;
                t = t < 0 ? 0 : t > 1e12 ? 1e12 : t;
                for (int i = 0; i < n; i++)
                    if (!strcmp(names[i], line)) {
                        inflight[i] += (int)c;
                        tokens[i] += t;
                        used++;
                        break;
                    }
            }
        }
        if (eol == end) break;   /* (end + 1 would point past the value) */
        p = eol + 1;
    }
    return used;
}

static int idp_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.';
}

/* The "@id PREFIX" line of a load value (the replica's request-id prefix); 0 or -1. */
static int parse_idp(const char *v, size_t len, char *out, size_t cap)
{
    static const char key[] = "\n@id ";
    size_t kl = sizeof key - 1;
    for (size_t i = 0; i + kl < len; i++) {
        if (memcmp(v + i, key, kl)) continue;
        size_t k = 0;
        const char *p = v + i + kl, *end = v + len;
        while (p + k < end && idp_char(p[k]) && k + 1 < cap) k++;
        if (k == 0 || (p + k < end && p[k] != '\n')) return -1;
        memcpy(out, p, k);
        out[k] = 0;
        return 0;
    }
    return -1;
}

int gw_share_parse_feedback(const char *v, size_t len, char *id, size_t idcap, double *score)
{
    size_t k = 0;
    while (k < len && k < 47 && k + 1 < idcap && (idp_char(v[k]) || v[k] == '-')) k++;
    if (k == 0 || k >= len || v[k] != ' ' || len - k > 32) return -1;
    char num[40];
    memcpy(num, v + k + 1, len - k - 1);
    num[len - k - 1] = 0;
    char *e;
    double d = strtod(num, &e);
    if (e == num || *e || !(d >= 0 && d <= 1)) return -1;
    memcpy(id, v, k);
    id[k] = 0;
    *score = d;
    return 0;
}

static void load_value(const struct gw_share *sh, const struct gw_nodes *ns, struct buf *b)
{
    buf_puts(b, GW_SHARE_LOAD_MAGIC);
    if (sh->id_prefix[0]) buf_printf(b, "@id %s\n", sh->id_prefix);
    for (int i = 0; i < ns->n; i++)
        buf_printf(b, "%s %d %.0f\n", ns->node[i].name, ns->rt[i].inflight,
                   ns->rt[i].tokens_ahead > 0 ? ns->rt[i].tokens_ahead : 0);
}

/* ==== learned state as bytes ======================================================= */

int gw_share_lineage(const struct gw_config *cfg, char *out, size_t cap, char *err,
                     size_t errlen)
{
    if (!cfg->model_file[0]) {
        snprintf(out, cap, "prior");
        return 0;
    }
    FILE *fp = fopen(cfg->model_file, "rb");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", cfg->model_file, strerror(errno));
        return -1;
    }
    char tail[80];
    size_t n = 0;
    if (fseek(fp, -(long)(sizeof tail - 1), SEEK_END) != 0) rewind(fp);
    n = fread(tail, 1, sizeof tail - 1, fp);
    fclose(fp);
    tail[n] = 0;
    const char *c = NULL;
    for (const char *q = tail; (q = strstr(q, "checksum ")) != NULL; q++) c = q + 9;
    char hex[17] = "";
    int k = 0;
    while (c && k < 16 && ((c[k] >= '0' && c[k] <= '9') || (c[k] >= 'a' && c[k] <= 'f'))) {
        hex[k] = c[k];
        k++;
    }
    if (k != 16) {
        snprintf(err, errlen, "%s: no checksum line at the end: not a complete model file",
                 cfg->model_file);
        return -1;
    }
    hex[16] = 0;
    snprintf(out, cap, "model-%s", hex);
    return 0;
}

/* pred_save / pred_load work on paths: a memfd gives them one without touching a disk. */
static int memfd_path(char *path, size_t cap, char *err, size_t errlen)
{
    int fd = memfd_create("ferry-state", MFD_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "memfd_create: %s", strerror(errno));
        return -1;
    }
    snprintf(path, cap, "/proc/self/fd/%d", fd);
    return fd;
}

int gw_share_pred_bytes(const struct pred *p, char **out, size_t *len, char *err,
                        size_t errlen)
{
    char path[64];
    int fd = memfd_path(path, sizeof path, err, errlen);
    if (fd < 0) return -1;
    int rc = -1;
    char *data = NULL;
    if (pred_save(p, path, err, errlen)) goto cleanup;
    off_t sz = lseek(fd, 0, SEEK_END);
    if (sz < 0 || (unsigned long long)sz > MODEL_MAX_BYTES) {
        snprintf(err, errlen, "learned state: size %lld out of range", (long long)sz);
        goto cleanup;
    }
    data = malloc((size_t)sz + 1);
    if (!data) {
        snprintf(err, errlen, "out of memory");
        goto cleanup;
    }
    size_t got = 0;
    while (got < (size_t)sz) {
        ssize_t r = pread(fd, data + got, (size_t)sz - got, (off_t)got);
        if (r <= 0) {
            snprintf(err, errlen, "learned state: read back: %s", r ? strerror(errno) : "short");
            goto cleanup;
        }
        got += (size_t)r;
    }
    data[sz] = 0;
    *out = data;
    *len = (size_t)sz;
    data = NULL;
    rc = 0;
cleanup:
    free(data);
    close(fd);
    return rc;
}

struct pred *gw_share_pred_parse(const char *bytes, size_t len, const char *what,
                                 const struct fy_node *nodes, int nnodes, char *err,
                                 size_t errlen)
{
    if (len > MODEL_MAX_BYTES) {
        snprintf(err, errlen, "%s: %zu bytes, more than a model may have", what, len);
        return NULL;
    }
    char path[64];
    int fd = memfd_path(path, sizeof path, err, errlen);
    if (fd < 0) return NULL;
    struct pred *p = NULL;
    size_t put = 0;
    while (put < len) {
        ssize_t w = write(fd, bytes + put, len - put);
        if (w <= 0) {
            snprintf(err, errlen, "%s: memfd write: %s", what, strerror(errno));
            goto cleanup;
        }
        put += (size_t)w;
    }
    char e[512] = "";
    p = pred_load(path, nodes, nnodes, e, sizeof e);
    if (!p) {   /* messages start with the path: name the real source instead */
        size_t pl = strlen(path);
        snprintf(err, errlen, "%s%s", what, strncmp(e, path, pl) ? e : e + pl);
    }
cleanup:
    close(fd);
    return p;
}

/* Updates the bank has learned (MGQP labels, RLS updates, cost observations): a replica
 * writes its state to the fleet only when this moved since it loaded or last saved, so
 * one that learned nothing never overwrites what the others learned. */
static long long learn_count(const struct pred *p)
{
    long long n = p->shared.n;
    for (int i = 0; i < p->n; i++) {
        n += p->node[i].mgqp.n + p->node[i].milp.nerr;
        for (int k = 0; k < MILP__N; k++) n += p->node[i].milp.part[k].n;
    }
    return n;
}

/* ---- merging the fleet's learned state ----------------------------------------------
 * Every replica keeps `base`, its bank when it was last in step with the fleet's copy.
 * Merging the fleet's copy f into this replica's bank m adds what f learned beyond
 * base, per diagonal Gaussian MGQP weight in natural parameters (precision, precision ×
 * mean): m + (f − base), where f is more certain than base (f descends from base
 * there). For Gaussian posteriors over disjoint observations this is exact (the product
 * of the likelihood factors each side multiplied in since base); MGQP's Laplace
 * approximation makes it as approximate as each online update already is. MGQP's
 * observation counts add up the same way. MILP's latency models (RLS with forgetting)
 * merge the same way in their information form (P⁻¹, P⁻¹w), the base discounted for
 * both sides' updates (milp_merge, pred/milp.h says how and when it is exact).
 * pred_merge (pred.h) does both; the priors are part of base, so they are not counted
 * again (tested with per-task priors: pred_merge_adds_what_replicas_learned_not_priors).
 * The write is a transaction on the key (WATCH/MULTI/EXEC): when another replica wrote
 * between this replica's read and its write, nothing is written and the next save
 * merges again, so no replica's learning is lost to a race. */

/* The fleet's copy in a reply (string or nil), parsed for this replica's nodes; NULL when
 * absent or unusable (then this replica's bank replaces it: warned once). */
static struct pred *fleet_copy(struct gw_share *sh, const redisReply *r)
{
    if (!r || r->type != REDIS_REPLY_STRING) return NULL;
    char e[512];
    struct pred *f = gw_share_pred_parse(r->str, r->len, sh->key_state, sh->ns->node,
                                         sh->ns->n, e, sizeof e);
    if (!f && !sh->merge_warned) {
        log_warn("share", "the fleet's learned state is unusable here, this replica's "
                 "replaces it: %s", e);
        sh->merge_warned = 1;
    }
    return f;
}

/* ==== blocking exchanges (start and stop only) ====================================== */

/* host/port to connect to: the socket path, or the first address getaddrinfo gives, as
 * a numeric string (so the loop never waits for a resolver). */
static int resolve(const struct gw_config *cfg, char *host, size_t cap, int *port, char *err,
                   size_t errlen)
{
    *port = cfg->share_port;
    if (!cfg->share_port) {
        snprintf(host, cap, "%s", cfg->share_host);
        return 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(cfg->share_host, NULL, &hints, &ai);
    if (rc || !ai) {
        snprintf(err, errlen, "[share] redis = %s: cannot resolve '%s': %s", cfg->share_redis,
                 cfg->share_host, gai_strerror(rc));
        return -1;
    }
    rc = getnameinfo(ai->ai_addr, ai->ai_addrlen, host, (socklen_t)cap, NULL, 0, NI_NUMERICHOST);
    freeaddrinfo(ai);
    if (rc) {
        snprintf(err, errlen, "[share] redis = %s: %s", cfg->share_redis, gai_strerror(rc));
        return -1;
    }
    return 0;
}

static redisContext *sync_connect(const struct gw_config *cfg, char *err, size_t errlen)
{
    char host[128];
    int port;
    if (resolve(cfg, host, sizeof host, &port, err, errlen)) return NULL;
    struct timeval tv = {cfg->share_timeout_ms / 1000, (cfg->share_timeout_ms % 1000) * 1000};
    redisContext *c = port ? redisConnectWithTimeout(host, port, tv)
                           : redisConnectUnixWithTimeout(host, tv);
    if (!c || c->err) {
        snprintf(err, errlen, "redis %s: %s", cfg->share_redis, c ? c->errstr : "out of memory");
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    return c;
}

static void keys(const struct gw_config *cfg, const char *lineage, const char *replica,
                 char *load, char *set, char *state, size_t cap)
{
    snprintf(load, cap, "%s:load:%s", cfg->share_prefix, replica);
    snprintf(set, cap, "%s:replicas", cfg->share_prefix);
    snprintf(state, cap, "%s:state:%s", cfg->share_prefix, lineage);
}

int gw_share_fetch_state(const struct gw_config *cfg, const char *lineage, char **bytes,
                         size_t *len, double *saved_ms, char *replica, size_t replica_cap,
                         char *err, size_t errlen)
{
    redisContext *c = sync_connect(cfg, err, errlen);
    if (!c) return -1;
    char kl[160], ks[160], kst[160];
    keys(cfg, lineage, "-", kl, ks, kst, sizeof kst);
    redisReply *r = redisCommand(c, "HMGET %s bytes saved_ms replica", kst);
    int rc = -1;
    if (!r) {
        snprintf(err, errlen, "redis %s: HMGET %s: %s", cfg->share_redis, kst, c->errstr);
    } else if (r->type == REDIS_REPLY_ERROR) {
        snprintf(err, errlen, "redis %s: HMGET %s: %.200s", cfg->share_redis, kst, r->str);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 3) {
        snprintf(err, errlen, "redis %s: HMGET %s: unexpected reply", cfg->share_redis, kst);
    } else if (r->element[0]->type != REDIS_REPLY_STRING) {
        rc = 0;   /* absent */
    } else {
        *bytes = malloc(r->element[0]->len + 1);
        if (!*bytes) {
            snprintf(err, errlen, "out of memory");
        } else {
            memcpy(*bytes, r->element[0]->str, r->element[0]->len);
            (*bytes)[r->element[0]->len] = 0;
            *len = r->element[0]->len;
            *saved_ms = r->element[1]->type == REDIS_REPLY_STRING
                            ? strtod(r->element[1]->str, NULL) : 0;
            snprintf(replica, replica_cap, "%.60s",
                     r->element[2]->type == REDIS_REPLY_STRING ? r->element[2]->str : "?");
            rc = 1;
        }
    }
    if (r) freeReplyObject(r);
    redisFree(c);
    return rc;
}

static double wall_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

int gw_share_final_save(struct gw_share *sh)
{
    if (!sh) return 0;
    char err[512] = "";
    redisContext *c = sync_connect(sh->cfg, err, sizeof err);
    if (!c) {
        log_warn("share", "final save skipped: %s", err);
        return -1;
    }
    int rc = 0;
    int dirty = sh->pred && sh->base && learn_count(sh->pred) != sh->saved_updates;
    /* merge and write; a conflict (another replica wrote meanwhile) merges again */
    for (int attempt = 0; dirty && attempt < 3; attempt++) {
        redisReply *w = redisCommand(c, "WATCH %s", sh->key_state);
        if (w) freeReplyObject(w);
        redisReply *r = w ? redisCommand(c, "HGET %s bytes", sh->key_state) : NULL;
        if (!r || r->type == REDIS_REPLY_ERROR) {
            log_warn("share", "final save to redis %s: %s", sh->cfg->share_redis,
                     r ? r->str : c->errstr);
            if (r) freeReplyObject(r);
            rc = -1;
            break;
        }
        struct pred *f = fleet_copy(sh, r);
        freeReplyObject(r);
        if (f) {
            pred_merge(sh->pred, f, sh->base);
            memcpy(sh->base, f, sizeof *f);   /* what the next attempt merges from */
            pred_free(f);
        }
        char *bytes = NULL, ms[32];
        size_t len = 0;
        if (gw_share_pred_bytes(sh->pred, &bytes, &len, err, sizeof err)) {
            log_warn("share", "final save: %s", err);
            rc = -1;
            break;
        }
        snprintf(ms, sizeof ms, "%.0f", wall_ms());
        redisAppendCommand(c, "MULTI");
        redisAppendCommand(c, "HSET %s bytes %b saved_ms %s replica %s", sh->key_state, bytes,
                           len, ms, sh->replica);
        redisAppendCommand(c, "EXEC");
        free(bytes);
        int committed = 0, failed = 0;
        for (int i = 0; i < 3; i++) {
            void *rp = NULL;
            if (redisGetReply(c, &rp) != REDIS_OK || !rp) {
                failed = 1;
                break;
            }
            redisReply *x = rp;
            if (i == 2) committed = x->type == REDIS_REPLY_ARRAY;
            if (x->type == REDIS_REPLY_ERROR) failed = 1;
            freeReplyObject(x);
        }
        if (failed) {
            log_warn("share", "final save to redis %s: %s", sh->cfg->share_redis,
                     c->err ? c->errstr : "error reply");
            rc = -1;
            break;
        }
        if (committed) {
            sh->state_saves++;
            log_info("share", "learned state saved to %s", sh->key_state);
            dirty = 0;
        } else {
            sh->state_conflicts++;
        }
    }
    if (dirty && rc == 0) {
        log_warn("share", "final save: the fleet's state kept changing; not saved");
        rc = -1;
    }
    redisReply *r = redisCommand(c, "DEL %s", sh->key_load);
    if (r) freeReplyObject(r);
    r = redisCommand(c, "SREM %s %s", sh->key_set, sh->replica);
    if (r) freeReplyObject(r);
    redisFree(c);
    return rc;
}

/* ==== the asynchronous connection =================================================== */

static void outage(struct gw_share *sh, const char *why)
{
    double now = clock_now_ms();
    sh->connected = 0;
    if (sh->save_busy) sh->saved_updates = -1;   /* unknown whether it landed: again */
    if (sh->pend_sent) {                         /* base = as if not committed; the token */
        memcpy(sh->base, sh->pend_fail, sizeof *sh->base);   /* read next tells */
        sh->pend_uncertain = 1;
        sh->pend_sent = 0;
    }
    sh->round_busy = sh->save_busy = 0;
    sh->errors++;
    if (!sh->down_logged) {
        log_warn("share", "redis %s: %s; serving on local state, reconnecting in the background",
                 sh->cfg->share_redis, why && *why ? why : "connection failed");
        sh->down_logged = 1;
    }
    sh->next_connect_ms = now + sh->backoff_ms;
    sh->backoff_ms = fmin(sh->backoff_ms * 2, BACKOFF_MAX_MS);
}

/* Drops the current connection from our side (timeouts). */
static void drop(struct gw_share *sh, const char *why)
{
    redisAsyncContext *ac = sh->ac;
    sh->ac = NULL;             /* on_disconnect and pending callbacks see it is gone */
    if (ac) redisAsyncFree(ac);
    outage(sh, why);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    struct gw_share *sh = ac->data;
    if (!sh || sh->ac != ac) return;
    if (status != REDIS_OK) {
        sh->ac = NULL;         /* hiredis frees it after this callback */
        outage(sh, ac->errstr);
        return;
    }
    sh->connected = 1;
    sh->backoff_ms = BACKOFF_MIN_MS;
    if (sh->ever_connected) sh->reconnects++;
    if (sh->down_logged)
        log_warn("share", "redis %s: connected again", sh->cfg->share_redis);
    else if (!sh->ever_connected)
        log_info("share", "connected to redis %s as replica %s", sh->cfg->share_redis,
                 sh->replica);
    sh->down_logged = 0;
    sh->ever_connected = 1;
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    struct gw_share *sh = ac->data;
    if (!sh || sh->closing || sh->ac != ac) return;
    sh->ac = NULL;             /* hiredis frees it after this callback */
    outage(sh, status == REDIS_OK ? "connection closed" : ac->errstr);
}

static void start_connect(struct gw_share *sh)
{
    redisAsyncContext *ac = sh->port ? redisAsyncConnect(sh->host, sh->port)
                                     : redisAsyncConnectUnix(sh->host);
    if (!ac || ac->err) {
        char why[160];
        snprintf(why, sizeof why, "%s", ac ? ac->errstr : "out of memory");
        if (ac) redisAsyncFree(ac);
        outage(sh, why);
        return;
    }
    ac->data = sh;
    if (redisLibeventAttach(ac, sh->evbase) != REDIS_OK) {
        redisAsyncFree(ac);
        outage(sh, "cannot attach to the event loop");
        return;
    }
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    sh->ac = ac;
    sh->connect_started_ms = clock_now_ms();
}

/* ---- one load round: SET own, SADD, SMEMBERS -> MGET others -> sums ---------------- */

static void on_checked(redisAsyncContext *ac, void *reply, void *priv)
{
    (void)priv;
    struct gw_share *sh = ac->data;
    redisReply *r = reply;
    if (sh && r && r->type == REDIS_REPLY_ERROR) {
        sh->errors++;
        log_debug("share", "redis: %.200s", r->str);
    }
}

static void apply_remote(struct gw_share *sh, const int *inflight, const double *tokens)
{
    sh->have_remote = inflight != NULL;
    for (int i = 0; i < sh->ns->n; i++) {
        sh->ns->rt[i].remote_inflight = inflight ? inflight[i] : 0;
        sh->ns->rt[i].remote_tokens = tokens ? tokens[i] : 0;
    }
    gw_nodes_refresh(sh->ns);
}

static void on_loads(redisAsyncContext *ac, void *reply, void *priv)
{
    struct round *rd = priv;
    struct gw_share *sh = rd->sh;
    redisReply *r = reply;
    if (!sh->closing && sh->ac == ac) {
        sh->round_busy = 0;
        if (r && r->type == REDIS_REPLY_ARRAY && (int)r->elements == rd->n) {
            int inflight[FY_MAX_NODES] = {0};
            double tokens[FY_MAX_NODES] = {0};
            char names[FY_MAX_NODES][FY_NAME_MAX];
            for (int i = 0; i < sh->ns->n; i++)
                snprintf(names[i], FY_NAME_MAX, "%s", sh->ns->node[i].name);
            int live = 0;
            sh->npeers = 0;
            for (int k = 0; k < rd->n; k++) {
                redisReply *e = r->element[k];
                if (e->type == REDIS_REPLY_STRING) {
                    if (gw_share_parse_load(e->str, e->len, (const char(*)[FY_NAME_MAX])names,
                                            sh->ns->n, inflight, tokens) >= 0)
                        live++;
                    if (sh->npeers < 64 && parse_idp(e->str, e->len, sh->peer_idp[sh->npeers],
                                                     sizeof sh->peer_idp[0]) == 0)
                        sh->npeers++;
                } else if (e->type == REDIS_REPLY_NIL) {   /* expired: a dead replica */
                    redisAsyncCommand(ac, on_checked, NULL, "SREM %s %s", sh->key_set,
                                      rd->member[k]);
                }
            }
            sh->remote_replicas = live;
            sh->last_read_ms = clock_now_ms();
            sh->load_rounds++;
            apply_remote(sh, inflight, tokens);
        } else if (r && r->type == REDIS_REPLY_ERROR) {
            sh->errors++;
        }
    }
    free(rd->member);
    free(rd);
}

static void on_members(redisAsyncContext *ac, void *reply, void *priv)
{
    struct gw_share *sh = priv;
    redisReply *r = reply;
    if (sh->closing || sh->ac != ac) return;
    if (!r || r->type != REDIS_REPLY_ARRAY) {
        sh->round_busy = 0;
        if (r) sh->errors++;
        return;
    }
    struct round *rd = calloc(1, sizeof *rd);
    size_t cap = r->elements;
    const char **argv = calloc(cap + 1, sizeof *argv);
    size_t *argl = calloc(cap + 1, sizeof *argl);
    char (*keyv)[160] = calloc(cap + 1, sizeof *keyv);
    if (rd) rd->member = calloc(cap + 1, sizeof *rd->member);
    if (!rd || !rd->member || !argv || !argl || !keyv) {
        sh->round_busy = 0;
        goto cleanup;
    }
    rd->sh = sh;
    argv[0] = "MGET";
    argl[0] = 4;
    for (size_t k = 0; k < r->elements; k++) {
        redisReply *e = r->element[k];
        if (e->type != REDIS_REPLY_STRING || e->len >= 64 || !strcmp(e->str, sh->replica))
            continue;
        snprintf(rd->member[rd->n], 64, "%s", e->str);
        snprintf(keyv[rd->n], 160, "%s:load:%s", sh->cfg->share_prefix, e->str);
        argv[rd->n + 1] = keyv[rd->n];
        argl[rd->n + 1] = strlen(keyv[rd->n]);
        rd->n++;
    }
    if (rd->n == 0) {            /* alone */
        sh->round_busy = 0;
        sh->remote_replicas = 0;
        sh->last_read_ms = clock_now_ms();
        sh->load_rounds++;
        apply_remote(sh, NULL, NULL);
        goto cleanup;
    }
    if (redisAsyncCommandArgv(ac, on_loads, rd, rd->n + 1, argv, argl) == REDIS_OK) rd = NULL;
    else sh->round_busy = 0;
cleanup:
    if (rd) free(rd->member);
    free(rd);
    free(argv);
    free(argl);
    free(keyv);
}

static void on_fb(redisAsyncContext *ac, void *reply, void *priv)
{
    struct gw_share *sh = priv;
    redisReply *r = reply;
    if (sh->closing || sh->ac != ac || !r) return;
    if (r->type == REDIS_REPLY_ERROR) {
        sh->errors++;
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY) return;   /* nil: nothing queued */
    for (size_t k = 0; k < r->elements; k++) {
        redisReply *e = r->element[k];
        char id[48];
        double score;
        if (e->type != REDIS_REPLY_STRING ||
            gw_share_parse_feedback(e->str, e->len, id, sizeof id, &score)) {
            sh->fb_unknown++;
            continue;
        }
        if (sh->fb_apply(sh->fb_arg, id, score) == 0) sh->fb_applied++;
        else sh->fb_unknown++;
    }
}

static void start_round(struct gw_share *sh)
{
    struct buf v;
    buf_init(&v);
    load_value(sh, sh->ns, &v);
    if (!v.data) return;
    redisAsyncContext *ac = sh->ac;
    int ok = redisAsyncCommand(ac, on_checked, NULL, "SET %s %b PX %d", sh->key_load, v.data,
                               v.len, sh->cfg->share_ttl_ms) == REDIS_OK &&
             redisAsyncCommand(ac, on_checked, NULL, "SADD %s %s", sh->key_set,
                               sh->replica) == REDIS_OK &&
             redisAsyncCommand(ac, on_members, sh, "SMEMBERS %s", sh->key_set) == REDIS_OK;
    buf_fini(&v);
    if (ok && sh->fb_apply && sh->id_prefix[0])   /* feedback the others forwarded to us */
        redisAsyncCommand(ac, on_fb, sh, "LPOP %s 64", sh->key_fb);
    if (ok) {
        sh->round_busy = 1;
        sh->round_started_ms = clock_now_ms();
    }
}

/* EXEC's reply: an array = committed; nil = another replica wrote since our read. */
static void on_state_exec(redisAsyncContext *ac, void *reply, void *priv)
{
    struct gw_share *sh = priv;
    redisReply *r = reply;
    if (sh->closing || sh->ac != ac) return;
    sh->save_busy = 0;
    sh->pend_sent = 0;
    if (!r) sh->pend_uncertain = 1;   /* connection lost: the next read's token tells */
    if (r && r->type == REDIS_REPLY_ARRAY) {
        sh->state_saves++;
        memcpy(sh->base, sh->pend_ok, sizeof *sh->base);
        sh->saved_updates = sh->pend_count;
    } else {
        if (r && r->type == REDIS_REPLY_NIL) sh->state_conflicts++;
        else sh->errors++;
        memcpy(sh->base, sh->pend_fail, sizeof *sh->base);
        sh->saved_updates = -1;    /* merge and write again at the next interval */
    }
}

/* HGET's reply (after WATCH): merge the fleet's copy into the live bank; write the
 * result back in a transaction when this replica learned something of its own. */
static void on_state_read(redisAsyncContext *ac, void *reply, void *priv)
{
    struct gw_share *sh = priv;
    redisReply *r = reply;
    if (sh->closing || sh->ac != ac) return;
    if (!r || r->type == REDIS_REPLY_ERROR) {
        sh->save_busy = 0;
        if (r) sh->errors++;
        redisAsyncCommand(ac, NULL, NULL, "UNWATCH");
        return;
    }
    if (r->type != REDIS_REPLY_ARRAY || r->elements != 2) {
        sh->save_busy = 0;
        sh->errors++;
        redisAsyncCommand(ac, NULL, NULL, "UNWATCH");
        return;
    }
    if (sh->pend_uncertain) {   /* did our last write commit after all? */
        redisReply *t = r->element[1];
        if (t->type == REDIS_REPLY_STRING && strtoull(t->str, NULL, 16) == sh->pend_token) {
            memcpy(sh->base, sh->pend_ok, sizeof *sh->base);
            sh->saved_updates = sh->pend_count;
        }
        sh->pend_uncertain = 0;
    }
    int dirty = learn_count(sh->pred) != sh->saved_updates;
    struct pred *f = fleet_copy(sh, r->element[0]);
    if (f) {
        pred_merge(sh->pred, f, sh->base);
        sh->state_merges++;
    }
    if (!dirty) {   /* nothing of ours to add: the fleet's learning adopted, no write */
        redisAsyncCommand(ac, NULL, NULL, "UNWATCH");
        memcpy(sh->base, sh->pred, sizeof *sh->base);
        sh->saved_updates = learn_count(sh->pred);
        sh->save_busy = 0;
        pred_free(f);
        return;
    }
    char *bytes = NULL, err[256], ms[32];
    size_t len = 0;
    if (gw_share_pred_bytes(sh->pred, &bytes, &len, err, sizeof err)) {
        log_warn("share", "learned state: %s", err);
        redisAsyncCommand(ac, NULL, NULL, "UNWATCH");
        if (f) memcpy(sh->base, f, sizeof *sh->base);
        sh->save_busy = 0;
        pred_free(f);
        return;
    }
    memcpy(sh->pend_ok, sh->pred, sizeof *sh->pend_ok);
    memcpy(sh->pend_fail, f ? f : sh->base, sizeof *sh->pend_fail);
    sh->pend_count = learn_count(sh->pred);
    sh->pend_token = ((unsigned long long)rand() << 32) ^ (unsigned long long)rand() ^
                     (unsigned long long)(wall_ms() * 1e3);
    snprintf(ms, sizeof ms, "%.0f", wall_ms());
    char tok[24];
    snprintf(tok, sizeof tok, "%llx", sh->pend_token);
    /* back to back on the loop: nothing of ours can land between MULTI and EXEC */
    redisAsyncCommand(ac, on_checked, NULL, "MULTI");
    redisAsyncCommand(ac, on_checked, NULL,
                      "HSET %s bytes %b saved_ms %s replica %s token %s", sh->key_state, bytes,
                      len, ms, sh->replica, tok);
    if (redisAsyncCommand(ac, on_state_exec, sh, "EXEC") == REDIS_OK) sh->pend_sent = 1;
    free(bytes);
    pred_free(f);
}

static void start_save(struct gw_share *sh)
{
    sh->last_save_ms = clock_now_ms();
    if (!sh->base) return;
    if (redisAsyncCommand(sh->ac, on_checked, NULL, "WATCH %s", sh->key_state) == REDIS_OK &&
        redisAsyncCommand(sh->ac, on_state_read, sh, "HMGET %s bytes token", sh->key_state) ==
            REDIS_OK)
        sh->save_busy = 1;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct gw_share *sh = arg;
    double now = clock_now_ms();
    if (!sh->ac && now >= sh->next_connect_ms) start_connect(sh);
    if (sh->ac && !sh->connected && now - sh->connect_started_ms > sh->cfg->share_timeout_ms)
        drop(sh, "connect timed out");
    if (sh->connected && sh->round_busy && now - sh->round_started_ms > sh->cfg->share_timeout_ms)
        drop(sh, "no answer within timeout_ms");
    if (sh->connected && !sh->round_busy) start_round(sh);
    if (sh->connected && sh->pred && !sh->save_busy &&
        now - sh->last_save_ms >= sh->cfg->save_interval_s * 1e3)
        start_save(sh);
    /* numbers nobody refreshed for a TTL are no longer the fleet's: local only */
    if (now - sh->last_read_ms > sh->cfg->share_ttl_ms && sh->have_remote) {
        sh->remote_replicas = 0;
        apply_remote(sh, NULL, NULL);
    }
}

/* ==== lifecycle ===================================================================== */

struct gw_share *gw_share_new(struct event_base *base, const struct gw_config *cfg,
                              struct gw_nodes *ns, const char *lineage, char *err,
                              size_t errlen)
{
    struct gw_share *sh = calloc(1, sizeof *sh);
    if (!sh) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    sh->evbase = base;
    sh->cfg = cfg;
    sh->ns = ns;
    snprintf(sh->lineage, sizeof sh->lineage, "%s", lineage);
    if (cfg->share_replica[0]) {
        snprintf(sh->replica, sizeof sh->replica, "%s", cfg->share_replica);
    } else {
        char hn[40] = "host";
        gethostname(hn, sizeof hn - 1);
        hn[sizeof hn - 1] = 0;
        for (char *p = hn; *p; p++)
            if (*p == ' ' || *p == ':') *p = '-';
        snprintf(sh->replica, sizeof sh->replica, "%s-%ld", hn, (long)getpid());
    }
    keys(cfg, sh->lineage, sh->replica, sh->key_load, sh->key_set, sh->key_state,
         sizeof sh->key_load);
    if (resolve(cfg, sh->host, sizeof sh->host, &sh->port, err, errlen)) goto fail;
    sh->backoff_ms = BACKOFF_MIN_MS;
    double now = clock_now_ms();
    sh->last_save_ms = now;
    sh->last_read_ms = now;
    sh->tick = event_new(base, -1, EV_PERSIST, on_tick, sh);
    struct timeval tv = {cfg->share_interval_ms / 1000, (cfg->share_interval_ms % 1000) * 1000};
    if (!sh->tick || event_add(sh->tick, &tv)) {
        snprintf(err, errlen, "share: cannot create the timer");
        goto fail;
    }
    ns->share = sh;
    start_connect(sh);
    return sh;
fail:
    gw_share_free(sh);
    return NULL;
}

void gw_share_set_pred(struct gw_share *sh, struct pred *p)
{
    if (!sh) return;
    sh->pred = p;
    sh->saved_updates = p ? learn_count(p) : 0;
    if (p && !sh->base) {
        sh->base = malloc(sizeof *sh->base);
        sh->pend_ok = malloc(sizeof *sh->pend_ok);
        sh->pend_fail = malloc(sizeof *sh->pend_fail);
        if (!sh->base || !sh->pend_ok || !sh->pend_fail) {   /* no merging: no saving */
            log_warn("share", "out of memory: learned state not shared");
            free(sh->base);
            free(sh->pend_ok);
            free(sh->pend_fail);
            sh->base = sh->pend_ok = sh->pend_fail = NULL;
        }
    }
    if (p && sh->base) memcpy(sh->base, p, sizeof *sh->base);
}

void gw_share_free(struct gw_share *sh)
{
    if (!sh) return;
    sh->closing = 1;
    if (sh->tick) event_free(sh->tick);
    redisAsyncContext *ac = sh->ac;
    sh->ac = NULL;
    if (ac) redisAsyncFree(ac);          /* pending callbacks run now with NULL replies */
    if (sh->ns && sh->ns->share == sh) sh->ns->share = NULL;
    free(sh->base);
    free(sh->pend_ok);
    free(sh->pend_fail);
    free(sh);
}

void gw_share_set_feedback(struct gw_share *sh, const char *id_prefix,
                           gw_share_feedback_fn apply, void *arg)
{
    if (!sh) return;
    size_t k = 0;
    while (id_prefix && idp_char(id_prefix[k]) && k + 1 < sizeof sh->id_prefix) k++;
    memcpy(sh->id_prefix, id_prefix ? id_prefix : "", k);
    sh->id_prefix[k] = 0;
    snprintf(sh->key_fb, sizeof sh->key_fb, "%s:fb:%s", sh->cfg->share_prefix, sh->id_prefix);
    sh->fb_apply = apply;
    sh->fb_arg = arg;
}

int gw_share_forward_feedback(struct gw_share *sh, const char *id, double score)
{
    if (!sh || !sh->connected || !id) return -1;
    const char *dash = strchr(id, '-');
    size_t k = dash ? (size_t)(dash - id) : 0;
    if (k == 0 || k >= sizeof sh->peer_idp[0] || strlen(id) > 47) return -1;
    char entry[96];
    int n = snprintf(entry, sizeof entry, "%s %.17g", id, score);
    char idt[48];
    double chk;
    if (n <= 0 || (size_t)n >= sizeof entry ||
        gw_share_parse_feedback(entry, (size_t)n, idt, sizeof idt, &chk))
        return -1;                               /* not an id we could have made */
    int peer = -1;
    for (int i = 0; i < sh->npeers; i++)
        if (strlen(sh->peer_idp[i]) == k && !memcmp(sh->peer_idp[i], id, k)) peer = i;
    if (peer < 0 || !strcmp(sh->peer_idp[peer], sh->id_prefix)) return -1;
    char key[200];
    snprintf(key, sizeof key, "%s:fb:%s", sh->cfg->share_prefix, sh->peer_idp[peer]);
    /* bounded: at most 10000 queued, gone a minute after the last push if never read */
    if (redisAsyncCommand(sh->ac, on_checked, NULL, "RPUSH %s %b", key, entry, (size_t)n) ||
        redisAsyncCommand(sh->ac, on_checked, NULL, "LTRIM %s -10000 -1", key) ||
        redisAsyncCommand(sh->ac, on_checked, NULL, "PEXPIRE %s 60000", key))
        return -1;
    sh->fb_forwarded++;
    return 0;
}

int gw_share_connected(const struct gw_share *sh) { return sh && sh->connected; }
const char *gw_share_replica(const struct gw_share *sh) { return sh ? sh->replica : ""; }

void gw_share_render(const struct gw_share *sh, struct buf *b)
{
    if (!sh) return;
    buf_puts(b, "# HELP ferry_share_remote_inflight Requests the other replicas have in flight "
                "at the node (as read last; counted in the node state policies see).\n"
                "# TYPE ferry_share_remote_inflight gauge\n");
    for (int i = 0; i < sh->ns->n; i++) {
        buf_puts(b, "ferry_share_remote_inflight{node=\"");
        for (const char *c = sh->ns->node[i].name; *c; c++) {   /* label escaping */
            if (*c == '\\' || *c == '"') buf_putc(b, '\\');
            if (*c == '\n') buf_puts(b, "\\n");
            else buf_putc(b, *c);
        }
        buf_printf(b, "\"} %d\n", sh->ns->rt[i].remote_inflight);
    }
    buf_printf(b,
               "# HELP ferry_share_connected 1 while the Redis connection of [share] is up.\n"
               "# TYPE ferry_share_connected gauge\nferry_share_connected %d\n"
               "# HELP ferry_share_remote_replicas Other live replicas whose node load was "
               "read last.\n"
               "# TYPE ferry_share_remote_replicas gauge\nferry_share_remote_replicas %d\n"
               "# HELP ferry_share_errors_total Redis failures: connects, lost connections, "
               "timeouts, error replies.\n"
               "# TYPE ferry_share_errors_total counter\nferry_share_errors_total %llu\n"
               "# HELP ferry_share_reconnects_total Connections made again after an outage.\n"
               "# TYPE ferry_share_reconnects_total counter\nferry_share_reconnects_total %llu\n"
               "# HELP ferry_share_load_rounds_total Node-load publish and read rounds "
               "completed.\n"
               "# TYPE ferry_share_load_rounds_total counter\nferry_share_load_rounds_total %llu\n"
               "# HELP ferry_share_state_saves_total Learned-state saves to Redis that "
               "succeeded.\n"
               "# TYPE ferry_share_state_saves_total counter\nferry_share_state_saves_total %llu\n"
               "# HELP ferry_share_state_merges_total Times the fleet's learned state was "
               "merged into this replica's.\n"
               "# TYPE ferry_share_state_merges_total counter\n"
               "ferry_share_state_merges_total %llu\n"
               "# HELP ferry_share_state_conflicts_total State writes not committed because "
               "another replica wrote first (merged again next time).\n"
               "# TYPE ferry_share_state_conflicts_total counter\n"
               "ferry_share_state_conflicts_total %llu\n"
               "# HELP ferry_share_feedback_total Feedback routed between replicas: forwarded "
               "to the replica that served the request, applied here for one of ours, or "
               "unknown here.\n"
               "# TYPE ferry_share_feedback_total counter\n"
               "ferry_share_feedback_total{direction=\"forwarded\"} %llu\n"
               "ferry_share_feedback_total{direction=\"applied\"} %llu\n"
               "ferry_share_feedback_total{direction=\"unknown\"} %llu\n",
               sh->connected, sh->remote_replicas, sh->errors, sh->reconnects, sh->load_rounds,
               sh->state_saves, sh->state_merges, sh->state_conflicts, sh->fb_forwarded,
               sh->fb_applied, sh->fb_unknown);
}
