/* gw/nodes — backend health, scraped queues and observed timing (see nodes.h). */
#include "gw/nodes.h"

#include <errno.h>
#include <event2/event.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "node/profile.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/log.h"

#define PROBE_MAX_BYTES (1u << 20)   /* a /metrics page larger than this is cut */
#define TICK_MS 50

enum { PROBE_HEALTH = 0, PROBE_SCRAPE };

struct gw_probe {
    struct gw_xfer x;
    struct gw_nodes *ns;
    int node, kind;
    struct curl_slist *hdrs;
    struct buf body;
};

/* Errors start with the config's "FILE:LINE:" of the key they are about: profile, or
 * profile_node when that names no node of the profiles. */
static int load_profile(const struct gw_config *cfg, const struct gw_node_cfg *nc,
                        struct fy_node *out, char *err, size_t errlen)
{
    struct stat st;
    if (stat(nc->profile, &st) != 0) {   /* say which node and key, and from where */
        snprintf(err, errlen, "%s:%d: node '%s': profile = '%s': %s%s", cfg->path,
                 nc->profile_line, nc->name, nc->profile, strerror(errno),
                 nc->profile[0] == '/' ? "" : " (a relative path is read from the working "
                                              "directory, not from the config's folder)");
        return -1;
    }
    struct node_lib lib;
    node_lib_init(&lib);
    char e2[512];
    int line = nc->profile_line;
    int rc = S_ISDIR(st.st_mode) ? node_lib_load_dir(&lib, nc->profile, e2, sizeof e2)
                                 : node_lib_load(&lib, nc->profile, e2, sizeof e2);
    if (rc == 0) {
        const char *nm = nc->profile_node[0] ? nc->profile_node : nc->name;
        if (!node_lib_find_node(&lib, nm) && nc->profile_node[0]) line = nc->profile_node_line;
        rc = node_lib_resolve(&lib, nm, out, e2, sizeof e2);
    }
    if (rc)
        snprintf(err, errlen, "%s:%d: node '%s': profile = '%s': %s", cfg->path, line,
                 nc->name, nc->profile, e2);
    node_lib_fini(&lib);
    return rc;
}

static void on_tick(evutil_socket_t fd, short what, void *arg);

int gw_nodes_init(struct gw_nodes *ns, struct gw_config *cfg, struct event_base *base,
                  struct gw_up *up, char *err, size_t errlen)
{
    memset(ns, 0, sizeof *ns);
    ns->cfg = cfg;
    ns->base = base;
    ns->up = up;
    ns->n = cfg->nnodes;
    for (int i = 0; i < ns->n; i++) {
        struct gw_node_cfg *nc = &cfg->nodes[i];
        struct fy_node *n = &ns->node[i];
        if (nc->profile[0]) {
            if (load_profile(cfg, nc, n, err, errlen)) return -1;
        } else {
            /* the built-in node of its role (node/profile.h), under the configured name */
            node_profile_default(&n->prof, nc->role);
            snprintf(n->prof.model, sizeof n->prof.model, "%s", nc->model);
            node_link_default(&n->link, nc->role);
        }
        snprintf(n->name, sizeof n->name, "%s", nc->name);
        n->role = nc->role;
        if (!nc->model_given && n->prof.model[0])   /* the profile knows the model's name */
            snprintf(cfg->nodes[i].model, sizeof cfg->nodes[i].model, "%s", n->prof.model);
        if (nc->link.up_mbps >= 0) n->link.up_mbps = nc->link.up_mbps;
        if (nc->link.down_mbps >= 0) n->link.down_mbps = nc->link.down_mbps;
        if (nc->link.rtt_ms >= 0) n->link.rtt_ms = nc->link.rtt_ms;
        if (nc->link.jitter_ms >= 0) n->link.jitter_ms = nc->link.jitter_ms;
        if (nc->usd_per_mtok_in >= 0) n->prof.usd_per_mtok_in = nc->usd_per_mtok_in;
        if (nc->usd_per_mtok_out >= 0) n->prof.usd_per_mtok_out = nc->usd_per_mtok_out;
        struct gw_node_rt *r = &ns->rt[i];
        r->healthy = 1;       /* optimistic until a request or probe fails */
        r->metrics = nc->metrics;
        r->backend_running = r->backend_waiting = -1;
        r->backoff_ms = cfg->health_interval_ms;
    }
    ns->tick = event_new(base, -1, EV_PERSIST, on_tick, ns);
    struct timeval tv = {0, TICK_MS * 1000};
    if (!ns->tick || event_add(ns->tick, &tv)) {
        snprintf(err, errlen, "nodes: cannot create the health timer");
        return -1;
    }
    gw_nodes_refresh(ns);
    return 0;
}

static void probe_free(struct gw_probe *p)
{
    if (!p) return;
    if (p->x.easy) curl_easy_cleanup(p->x.easy);
    curl_slist_free_all(p->hdrs);
    buf_fini(&p->body);
    free(p);
}

void gw_nodes_fini(struct gw_nodes *ns)
{
    if (ns->tick) event_free(ns->tick);
    ns->tick = NULL;
    for (int i = 0; i < ns->n; i++) {
        struct gw_probe *ps[2] = {ns->rt[i].health, ns->rt[i].scrape};
        for (int k = 0; k < 2; k++)
            if (ps[k]) {
                gw_up_remove(ns->up, &ps[k]->x);
                probe_free(ps[k]);
            }
        ns->rt[i].health = ns->rt[i].scrape = NULL;
    }
}

void gw_nodes_refresh(struct gw_nodes *ns)
{
    for (int i = 0; i < ns->n; i++) {
        struct gw_node_rt *r = &ns->rt[i];
        struct fy_node_state *st = &ns->node[i].st;
        st->healthy = r->healthy;
        /* The backend's own numbers include other clients' work; ours (this replica's
         * and the other replicas', gw/share.h) are a floor. */
        int ours = r->inflight + r->remote_inflight;
        st->running = ours;
        st->queued = 0;
        if (r->backend_running >= 0 && r->backend_running > ours)
            st->running = (int)r->backend_running;
        if (r->backend_waiting >= 0) st->queued = (int)r->backend_waiting;
        int max_seqs = ns->node[i].prof.max_seqs > 0 ? ns->node[i].prof.max_seqs : 1;
        if (st->running > max_seqs) {   /* what we sent beyond the batch is queued */
            st->queued += st->running - max_seqs;
            st->running = max_seqs;
        }
        /* same meaning as the service model's: work still ahead in the node */
        double ahead = r->tokens_ahead + r->remote_tokens;
        st->queued_tokens = ahead > 0 ? ahead : 0;
        st->ewma_ttft_ms = r->ewma_ttft_ms;
        st->ewma_tpot_ms = r->ewma_tpot_ms;
    }
}

void gw_nodes_fail(struct gw_nodes *ns, int i)
{
    struct gw_node_rt *r = &ns->rt[i];
    if (r->healthy) {
        r->healthy = 0;
        r->taken_out++;
        r->backoff_ms = ns->cfg->health_interval_ms;
        log_warn("gw", "node '%s' taken out of rotation", ns->node[i].name);
    }
    r->next_probe_ms = clock_now_ms() + r->backoff_ms;
    gw_nodes_refresh(ns);
}

void gw_nodes_ok(struct gw_nodes *ns, int i)
{
    struct gw_node_rt *r = &ns->rt[i];
    if (!r->healthy) log_info("gw", "node '%s' back in rotation", ns->node[i].name);
    r->healthy = 1;
    r->backoff_ms = ns->cfg->health_interval_ms;
}

void gw_nodes_observe(struct gw_nodes *ns, int i, double ttft_ms, double tpot_ms)
{
    struct gw_node_rt *r = &ns->rt[i];
    if (ttft_ms > 0 && isfinite(ttft_ms))
        r->ewma_ttft_ms = r->ewma_ttft_ms > 0
                              ? (1 - GW_EWMA_ALPHA) * r->ewma_ttft_ms + GW_EWMA_ALPHA * ttft_ms
                              : ttft_ms;
    if (tpot_ms > 0 && isfinite(tpot_ms))
        r->ewma_tpot_ms = r->ewma_tpot_ms > 0
                              ? (1 - GW_EWMA_ALPHA) * r->ewma_tpot_ms + GW_EWMA_ALPHA * tpot_ms
                              : tpot_ms;
}

/* ---- /metrics parsing ------------------------------------------------------------ */

/* Sum of the samples of one metric name (any labels) in Prometheus text; -1 if absent. */
static double metric_sum(const char *t, size_t len, const char *name)
{
    size_t nl = strlen(name);
    double sum = -1;
    const char *end = t + len;
    for (const char *p = t; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol) eol = end;
        size_t ll = (size_t)(eol - p);
        if (ll > nl && p[0] != '#' && !memcmp(p, name, nl) && (p[nl] == '{' || p[nl] == ' ')) {
            const char *v = p + nl;
            if (*v == '{') {
                v = memchr(v, '}', (size_t)(eol - v));
                if (!v) goto next;
                v++;
            }
            char num[64];
            size_t k = 0;
            while (v < eol && *v == ' ') v++;
            while (v < eol && *v != ' ' && k < sizeof num - 1) num[k++] = *v++;
            num[k] = 0;
            char *e;
            double d = strtod(num, &e);
            if (e != num && isfinite(d)) sum = (sum < 0 ? 0 : sum) + d;
        }
    next:
        p = eol + 1;
    }
    return sum;
}

enum gw_metrics_kind gw_nodes_parse_metrics(const char *t, size_t len, double *running,
                                            double *waiting)
{
    double r = metric_sum(t, len, "vllm:num_requests_running");
    double w = metric_sum(t, len, "vllm:num_requests_waiting");
    if (r >= 0 || w >= 0) {
        *running = r;
        *waiting = w;
        return GW_METRICS_VLLM;
    }
    r = metric_sum(t, len, "llamacpp:requests_processing");
    w = metric_sum(t, len, "llamacpp:requests_deferred");
    if (r >= 0 || w >= 0) {
        *running = r;
        *waiting = w;
        return GW_METRICS_LLAMACPP;
    }
    return GW_METRICS_NONE;
}

/* ---- probes ---------------------------------------------------------------------- */

static size_t probe_write(char *p, size_t sz, size_t nm, void *arg)
{
    struct gw_probe *pr = arg;
    size_t n = sz * nm;
    if (pr->body.len + n > PROBE_MAX_BYTES) return n; /* keep the head, drop the rest */
    buf_append(&pr->body, p, n);
    return n;
}

static void probe_done(struct gw_xfer *x, CURLcode rc)
{
    struct gw_probe *p = (struct gw_probe *)x;
    struct gw_nodes *ns = p->ns;
    struct gw_node_rt *r = &ns->rt[p->node];
    long status = 0;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
    gw_up_remove(ns->up, x);
    if (p->kind == PROBE_HEALTH) {
        r->health = NULL;
        /* Any HTTP answer below 500 means the server is up (cloud APIs have no /health). */
        if (rc == CURLE_OK && status > 0 && status < 500) {
            gw_nodes_ok(ns, p->node);
            r->next_probe_ms = clock_now_ms() + ns->cfg->health_interval_ms;
        } else if (r->healthy) {
            gw_nodes_fail(ns, p->node);
        } else {
            r->backoff_ms = fmin(r->backoff_ms * 2, ns->cfg->health_backoff_max_ms);
            r->next_probe_ms = clock_now_ms() + r->backoff_ms;
        }
    } else {
        r->scrape = NULL;
        if (rc == CURLE_OK && status == 200) {
            double run = -1, wait = -1;
            enum gw_metrics_kind k = gw_nodes_parse_metrics(p->body.data ? p->body.data : "",
                                                            p->body.len, &run, &wait);
            if (k != GW_METRICS_NONE) {
                r->metrics = k;
                r->backend_running = run;
                r->backend_waiting = wait;
            } else if (r->metrics == GW_METRICS_AUTO) {
                r->metrics = GW_METRICS_NONE;   /* no known names: stop scraping */
            }
        } else if (rc == CURLE_OK && status == 404 && r->metrics == GW_METRICS_AUTO) {
            r->metrics = GW_METRICS_NONE;
        }
    }
    probe_free(p);
    gw_nodes_refresh(ns);
}

static struct gw_probe *probe_start(struct gw_nodes *ns, int i, int kind)
{
    const struct gw_node_cfg *nc = &ns->cfg->nodes[i];
    struct gw_probe *p = calloc(1, sizeof *p);
    if (!p) return NULL;
    p->ns = ns;
    p->node = i;
    p->kind = kind;
    p->x.done = probe_done;
    p->x.easy = curl_easy_init();
    if (!p->x.easy) goto fail;
    char url[GW_URL_MAX + 16];
    snprintf(url, sizeof url, "%s%s", nc->url, kind == PROBE_HEALTH ? "/health" : "/metrics");
    CURL *e = p->x.easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, probe_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, p);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ns->cfg->connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ns->cfg->connect_ms * 2);
    if (nc->api_key[0]) {
        char h[GW_KEY_MAX + 32];
        snprintf(h, sizeof h, "Authorization: Bearer %s", nc->api_key);
        p->hdrs = curl_slist_append(NULL, h);
        curl_easy_setopt(e, CURLOPT_HTTPHEADER, p->hdrs);
    }
    if (gw_up_add(ns->up, &p->x)) goto fail;
    return p;
fail:
    probe_free(p);
    return NULL;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd; (void)what;
    struct gw_nodes *ns = arg;
    double now = clock_now_ms();
    int scrape = now - ns->last_scrape_ms >= ns->cfg->scrape_interval_ms;
    if (scrape) ns->last_scrape_ms = now;
    for (int i = 0; i < ns->n; i++) {
        struct gw_node_rt *r = &ns->rt[i];
        if (!r->health && now >= r->next_probe_ms)
            r->health = probe_start(ns, i, PROBE_HEALTH);
        if (scrape && r->healthy && !r->scrape && r->metrics != GW_METRICS_NONE)
            r->scrape = probe_start(ns, i, PROBE_SCRAPE);
    }
}
