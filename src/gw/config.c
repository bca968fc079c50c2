/* gw/config — INI configuration of `ferry serve` (see config.h). */
#include "gw/config.h"
#include "feat/image.h"
#include "gw/http.h"
#include "node/profile.h"
#include "util/file.h"
#include "util/num.h"

#include <errno.h>
#include <ini.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct parse_ctx {
    struct gw_config *c;
    char msg[512];          /* first error; ini_parse reports its line */
    int cur_node;           /* index of the [node NAME] section being read, or -1 */
    char cur_section[128];
    unsigned flags;         /* GW_CONFIG_* */
    const int *line;        /* the line being read (line_src.line) */
    /* lines of the keys cross-field checks name (0: not in the file) */
    int node_line[FY_MAX_NODES], ref_line, ttl_line;
    struct node_ini_keys seen; /* section.key already set, to refuse a second value */
};

static int validate(struct gw_config *c, const struct parse_ctx *x, int *line, char *err,
                    size_t errlen);

void gw_config_default(struct gw_config *c)
{
    memset(c, 0, sizeof *c);
    snprintf(c->listen_host, sizeof c->listen_host, "127.0.0.1");
    c->listen_port = 8080;
    c->workers = 2;
    c->save_interval_s = 60;
    c->drain_timeout_s = 30;
    c->header_timeout_ms = GW_HTTP_DEF_HEADER_MS;
    c->body_timeout_ms = GW_HTTP_DEF_BODY_MS;
    c->min_body_rate = GW_HTTP_DEF_BODY_RATE;
    c->keepalive_timeout_ms = GW_HTTP_DEF_KEEPALIVE_MS;
    c->send_timeout_ms = GW_HTTP_DEF_SEND_MS;
    c->max_connections = GW_HTTP_DEF_MAX_CONNS;
    c->max_images = FY_MAX_IMAGES;   /* the request model's default */
    snprintf(c->policy, sizeof c->policy, "least-loaded");
    c->max_client_buffer = 256 * 1024;
    c->downscale_quality = 85;
    c->split_max_tokens = 96;
    c->connect_ms = 2000;
    c->first_byte_ms = 60000;
    c->idle_ms = 60000;
    c->total_ms = 600000;
    c->max_retries = 2;
    c->health_interval_ms = 2000;
    c->health_backoff_max_ms = 30000;
    c->scrape_interval_ms = 1000;
    snprintf(c->share_prefix, sizeof c->share_prefix, "ferry");
    c->share_interval_ms = 200;
    c->share_timeout_ms = 1000;
    c->shadow_max_inflight = 4;
    snprintf(c->shadow_compare, sizeof c->shadow_compare, "auto");
}

const char *gw_role_name(enum fy_role r) { return r == FY_ROLE_CLOUD ? "cloud" : "edge"; }

/* ---- value parsers: each returns 0 or -1 with ctx->msg set ------------------------ */

static int fail(struct parse_ctx *x, const char *fmt, const char *a, const char *b)
{
    if (!x->msg[0]) snprintf(x->msg, sizeof x->msg, fmt, a, b);
    return -1;
}

/* Numbers follow util/num.h: the whole value, decimal, finite, inside [lo, hi]. */
static int parse_long(struct parse_ctx *x, const char *name, const char *v, long lo,
                      long hi, long *out)
{
    if (util_parse_long(v, lo, hi, out) < 0) {
        char range[64];
        snprintf(range, sizeof range, "%ld..%ld", lo, hi);
        char what[160];
        snprintf(what, sizeof what, "%s = '%.80s'", name, v);
        return fail(x, "%s: not an integer in %s", what, range);
    }
    return 0;
}

static int parse_int(struct parse_ctx *x, const char *name, const char *v, int lo, int hi,
                     int *out)
{
    long n;
    if (parse_long(x, name, v, lo, hi, &n)) return -1;
    *out = (int)n;
    return 0;
}

static int parse_double(struct parse_ctx *x, const char *name, const char *v, double lo,
                        double hi, double *out)
{
    if (util_parse_double(v, lo, hi, out) < 0) {
        char what[160], range[64];
        snprintf(what, sizeof what, "%s = '%.80s'", name, v);
        snprintf(range, sizeof range, "%g..%g", lo, hi);
        return fail(x, "%s: not a number in %s", what, range);
    }
    return 0;
}

static int copy_str(struct parse_ctx *x, const char *name, const char *v, char *dst,
                    size_t cap)
{
    size_t n = strlen(v);
    if (n >= cap) return fail(x, "%s: value longer than %s bytes", name,
                              cap > 255 ? "255" : "63");
    memcpy(dst, v, n + 1);
    return 0;
}

/* ---- sections ------------------------------------------------------------------- */

static int h_server(struct parse_ctx *x, const char *k, const char *v)
{
    struct gw_config *c = x->c;
    if (!strcmp(k, "listen")) {
        const char *colon = strrchr(v, ':');
        if (!colon || colon == v) return fail(x, "listen = '%s': expected HOST:PORT%s", v, "");
        size_t hl = (size_t)(colon - v);
        if (hl >= sizeof c->listen_host) return fail(x, "listen = '%s': host too long%s", v, "");
        if (hl >= 2 && v[0] == '[' && v[hl - 1] == ']') {   /* [::1]:8080 */
            v++;
            hl -= 2;
        }
        memcpy(c->listen_host, v, hl);
        c->listen_host[hl] = 0;
        return parse_int(x, "listen port", colon + 1, 0, 65535, &c->listen_port);
    }
    if (!strcmp(k, "workers")) return parse_int(x, k, v, 1, 64, &c->workers);
    if (!strcmp(k, "api_key")) {
        if (c->nclient_keys >= GW_MAX_CLIENT_KEYS)
            return fail(x, "api_key: more than %s client keys%s", "16", "");
        if (!*v) return fail(x, "api_key: empty key%s%s", "", "");
        return copy_str(x, "api_key", v, c->client_keys[c->nclient_keys++], GW_KEY_MAX);
    }
    if (!strcmp(k, "api_keys_env")) {
        /* comma-separated keys in an environment variable, so they stay out of files */
        const char *e = getenv(v);
        if ((!e || !*e) && (x->flags & GW_CONFIG_NO_KEYS)) return 0;
        if (!e || !*e) return fail(x, "api_keys_env: environment variable '%s' is not set%s", v, "");
        char tmp[4096];
        snprintf(tmp, sizeof tmp, "%s", e);
        for (char *save = NULL, *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            if (c->nclient_keys >= GW_MAX_CLIENT_KEYS)
                return fail(x, "api_keys_env: more than %s client keys%s", "16", "");
            if (strlen(t) >= GW_KEY_MAX) return fail(x, "api_keys_env: a key is too long%s%s", "", "");
            snprintf(c->client_keys[c->nclient_keys++], GW_KEY_MAX, "%s", t);
        }
        return 0;
    }
    if (!strcmp(k, "state_file")) return copy_str(x, k, v, c->state_file, sizeof c->state_file);
    if (!strcmp(k, "trace_db")) return copy_str(x, k, v, c->trace_db, sizeof c->trace_db);
    if (!strcmp(k, "save_interval_s")) return parse_int(x, k, v, 1, 86400, &c->save_interval_s);
    if (!strcmp(k, "drain_timeout_s")) return parse_int(x, k, v, 0, 3600, &c->drain_timeout_s);
    if (!strcmp(k, "header_timeout_ms"))
        return parse_int(x, k, v, 10, 3600000, &c->header_timeout_ms);
    if (!strcmp(k, "body_timeout_ms")) return parse_int(x, k, v, 10, 3600000, &c->body_timeout_ms);
    if (!strcmp(k, "min_body_rate")) return parse_long(x, k, v, 1, 1L << 30, &c->min_body_rate);
    if (!strcmp(k, "keepalive_timeout_ms"))
        return parse_int(x, k, v, 10, 3600000, &c->keepalive_timeout_ms);
    if (!strcmp(k, "send_timeout_ms")) return parse_int(x, k, v, 10, 3600000, &c->send_timeout_ms);
    return fail(x, "[server]: unknown key '%s'%s", k, "");
}

static int h_policy(struct parse_ctx *x, const char *k, const char *v)
{
    if (!strcmp(k, "name")) {
        x->c->policy_line = *x->line;
        return copy_str(x, k, v, x->c->policy, sizeof x->c->policy);
    }
    if (!strcmp(k, "params")) {
        x->c->policy_params_line = *x->line;
        return copy_str(x, k, v, x->c->policy_params, sizeof x->c->policy_params);
    }
    return fail(x, "[policy]: unknown key '%s'%s", k, "");
}

static int h_pred(struct parse_ctx *x, const char *k, const char *v)
{
    if (!strcmp(k, "model")) {
        x->c->model_origin = "[pred] model";
        x->c->model_line = *x->line;
        return copy_str(x, k, v, x->c->model_file, sizeof x->c->model_file);
    }
    return fail(x, "[pred]: unknown key '%s'%s", k, "");
}

static int ident_ok(const char *v)
{
    if (!*v) return 0;
    for (const char *p = v; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-' || *p == '.' || *p == ':'))
            return 0;
    return 1;
}

/* redis = HOST:PORT, [V6ADDR]:PORT, or an absolute path of a unix socket. */
static int parse_redis(struct parse_ctx *x, const char *v)
{
    struct gw_config *c = x->c;
    if (copy_str(x, "[share] redis", v, c->share_redis, sizeof c->share_redis)) return -1;
    if (v[0] == '/') {
        if (strlen(v) >= 108) /* sizeof sockaddr_un.sun_path */
            return fail(x, "[share] redis = '%s': a unix socket path has at most 107 "
                        "bytes%s", v, "");
        memcpy(c->share_host, v, strlen(v) + 1);
        c->share_port = 0;
        return 0;
    }
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || !colon[1])
        return fail(x, "[share] redis = '%s': expected HOST:PORT or the absolute path of a "
                    "unix socket%s", v, "");
    size_t hl = (size_t)(colon - v);
    if (hl >= 2 && v[0] == '[' && v[hl - 1] == ']') {
        v++;
        hl -= 2;
    }
    if (hl == 0 || hl >= sizeof c->share_host)
        return fail(x, "[share] redis = '%s': bad host%s", c->share_redis, "");
    memcpy(c->share_host, v, hl);
    c->share_host[hl] = 0;
    return parse_int(x, "[share] redis port", colon + 1, 1, 65535, &c->share_port);
}

static int h_share(struct parse_ctx *x, const char *k, const char *v)
{
    struct gw_config *c = x->c;
    if (!strcmp(k, "redis")) return parse_redis(x, v);
    if (!strcmp(k, "prefix") || !strcmp(k, "replica")) {
        char *dst = k[0] == 'p' ? c->share_prefix : c->share_replica;
        if (!ident_ok(v))
            return fail(x, "[share] %s = '%s': use 1 to 63 of A-Z a-z 0-9 _ - . :", k, v);
        return copy_str(x, k, v, dst, sizeof c->share_prefix);
    }
    if (!strcmp(k, "interval_ms")) return parse_int(x, k, v, 10, 60000, &c->share_interval_ms);
    if (!strcmp(k, "ttl_ms")) {
        x->ttl_line = *x->line;
        return parse_int(x, k, v, 100, 3600000, &c->share_ttl_ms);
    }
    if (!strcmp(k, "timeout_ms")) return parse_int(x, k, v, 10, 60000, &c->share_timeout_ms);
    return fail(x, "[share]: unknown key '%s'%s", k, "");
}

static int h_shadow(struct parse_ctx *x, const char *k, const char *v)
{
    struct gw_config *c = x->c;
    if (!strcmp(k, "rate")) return parse_double(x, "[shadow] rate", v, 0, 1, &c->shadow_rate);
    if (!strcmp(k, "reference")) {
        x->ref_line = *x->line;
        return copy_str(x, "[shadow] reference", v, c->shadow_reference,
                        sizeof c->shadow_reference);
    }
    if (!strcmp(k, "max_inflight"))
        return parse_int(x, "[shadow] max_inflight", v, 1, 1024, &c->shadow_max_inflight);
    if (!strcmp(k, "max_usd_per_hour"))
        return parse_double(x, "[shadow] max_usd_per_hour", v, 0, 1e9,
                            &c->shadow_max_usd_per_hour);
    if (!strcmp(k, "compare")) {
        static const char *const kinds[] = {"auto", "exact", "contains", "vqa", "letter"};
        for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++)
            if (!strcmp(v, kinds[i]))
                return copy_str(x, k, v, c->shadow_compare, sizeof c->shadow_compare);
        return fail(x, "[shadow] compare = '%s': expected auto, exact, contains, vqa or letter%s",
                    v, "");
    }
    return fail(x, "[shadow]: unknown key '%s'%s", k, "");
}

static int h_limits(struct parse_ctx *x, const char *k, const char *v)
{
    struct gw_config *c = x->c;
    long n;
    if (!strcmp(k, "max_body_bytes")) {
        if (parse_long(x, k, v, 1024, 1L << 30, &n)) return -1;
        c->max_body_bytes = (size_t)n;
        return 0;
    }
    if (!strcmp(k, "max_images")) return parse_int(x, k, v, 0, FY_MAX_IMAGES, &c->max_images);
    if (!strcmp(k, "max_pixels")) {
        /* the image decoder's own bound (feat/image.h) is the ceiling: a larger value
         * would pass the parser and then fail in feature extraction */
        if (parse_long(x, k, v, 1, (long)FEAT_IMAGE_MAX_PIXELS, &n)) return -1;
        c->max_pixels = (unsigned long long)n;
        return 0;
    }
    if (!strcmp(k, "max_client_buffer")) {
        if (parse_long(x, k, v, 4096, 1L << 28, &n)) return -1;
        c->max_client_buffer = (size_t)n;
        return 0;
    }
    if (!strcmp(k, "max_connections")) return parse_int(x, k, v, 1, 1000000, &c->max_connections);
    if (!strcmp(k, "downscale_quality")) return parse_int(x, k, v, 10, 100, &c->downscale_quality);
    if (!strcmp(k, "max_image_side")) return parse_int(x, k, v, 0, 65535, &c->max_image_side);
    if (!strcmp(k, "split_max_tokens")) return parse_int(x, k, v, 8, 4096, &c->split_max_tokens);
    return fail(x, "[limits]: unknown key '%s'%s", k, "");
}

static int h_timeouts(struct parse_ctx *x, const char *k, const char *v)
{
    struct gw_config *c = x->c;
    if (!strcmp(k, "connect_ms")) return parse_int(x, k, v, 1, 600000, &c->connect_ms);
    if (!strcmp(k, "first_byte_ms")) return parse_int(x, k, v, 1, 3600000, &c->first_byte_ms);
    if (!strcmp(k, "idle_ms")) return parse_int(x, k, v, 1, 3600000, &c->idle_ms);
    if (!strcmp(k, "total_ms")) return parse_int(x, k, v, 1, 86400000, &c->total_ms);
    if (!strcmp(k, "max_retries")) return parse_int(x, k, v, 0, FY_MAX_NODES, &c->max_retries);
    return fail(x, "[timeouts]: unknown key '%s'%s", k, "");
}

static int h_health(struct parse_ctx *x, const char *k, const char *v)
{
    struct gw_config *c = x->c;
    if (!strcmp(k, "interval_ms")) return parse_int(x, k, v, 10, 3600000, &c->health_interval_ms);
    if (!strcmp(k, "backoff_max_ms"))
        return parse_int(x, k, v, 10, 3600000, &c->health_backoff_max_ms);
    if (!strcmp(k, "scrape_interval_ms"))
        return parse_int(x, k, v, 10, 3600000, &c->scrape_interval_ms);
    return fail(x, "[health]: unknown key '%s'%s", k, "");
}

static int h_node(struct parse_ctx *x, struct gw_node_cfg *n, const char *k, const char *v)
{
    if (!strcmp(k, "role")) {
        if (node_parse_role(v, &n->role) == 0) return 0;
        return fail(x, "node '%s': role = '%s': expected edge or cloud", n->name, v);
    }
    if (!strcmp(k, "url")) {
        if (strncmp(v, "http://", 7) && strncmp(v, "https://", 8))
            return fail(x, "node '%s': url = '%s': must start with http:// or https://", n->name, v);
        if (copy_str(x, k, v, n->url, sizeof n->url)) return -1;
        size_t l = strlen(n->url);
        while (l > 0 && n->url[l - 1] == '/') n->url[--l] = 0; /* base URL without '/' */
        return 0;
    }
    if (!strcmp(k, "model")) {
        n->model_given = 1;
        return copy_str(x, k, v, n->model, sizeof n->model);
    }
    if (!strcmp(k, "profile")) {
        n->profile_line = *x->line;
        return copy_str(x, k, v, n->profile, sizeof n->profile);
    }
    if (!strcmp(k, "profile_node")) {
        n->profile_node_line = *x->line;
        return copy_str(x, k, v, n->profile_node, sizeof n->profile_node);
    }
    if (!strcmp(k, "api_key_env")) {
        if (copy_str(x, k, v, n->api_key_env, sizeof n->api_key_env)) return -1;
        const char *e = getenv(v);
        if ((!e || !*e) && (x->flags & GW_CONFIG_NO_KEYS)) return 0;
        if (!e || !*e)
            return fail(x, "node '%s': api_key_env: environment variable '%s' is not set",
                        n->name, v);
        if (strlen(e) >= sizeof n->api_key)
            return fail(x, "node '%s': the key in '%s' is too long", n->name, v);
        snprintf(n->api_key, sizeof n->api_key, "%s", e);
        return 0;
    }
    if (!strcmp(k, "metrics")) {
        if (!strcmp(v, "auto")) n->metrics = GW_METRICS_AUTO;
        else if (!strcmp(v, "vllm")) n->metrics = GW_METRICS_VLLM;
        else if (!strcmp(v, "llamacpp")) n->metrics = GW_METRICS_LLAMACPP;
        else if (!strcmp(v, "none")) n->metrics = GW_METRICS_NONE;
        else return fail(x, "node '%s': metrics = '%s': expected auto, vllm, llamacpp or none",
                         n->name, v);
        return 0;
    }
    if (!strcmp(k, "up_mbps")) return parse_double(x, k, v, 0.001, 1e6, &n->link.up_mbps);
    if (!strcmp(k, "down_mbps")) return parse_double(x, k, v, 0.001, 1e6, &n->link.down_mbps);
    if (!strcmp(k, "rtt_ms")) return parse_double(x, k, v, 0, 1e5, &n->link.rtt_ms);
    if (!strcmp(k, "jitter_ms")) return parse_double(x, k, v, 0, 1e5, &n->link.jitter_ms);
    if (!strcmp(k, "usd_per_mtok_in")) return parse_double(x, k, v, 0, 1e6, &n->usd_per_mtok_in);
    if (!strcmp(k, "usd_per_mtok_out"))
        return parse_double(x, k, v, 0, 1e6, &n->usd_per_mtok_out);
    if (!strcmp(k, "max_inflight")) return parse_int(x, k, v, 0, 100000, &n->max_inflight);
    return fail(x, "node '%s': unknown key '%s'", n->name, k);
}

static int handler(void *user, const char *section, const char *name, const char *value)
{
    struct parse_ctx *x = user;
    struct gw_config *c = x->c;
    if (strcmp(section, x->cur_section)) {
        snprintf(x->cur_section, sizeof x->cur_section, "%s", section);
        x->cur_node = -1;
        if (!strncmp(section, "node ", 5)) {
            const char *nm = section + 5;
            while (*nm == ' ') nm++;
            if (!*nm) return fail(x, "[node]: a node section needs a name: [node NAME]%s%s", "", "") + 1;
            for (int i = 0; i < c->nnodes; i++)
                if (!strcmp(c->nodes[i].name, nm))
                    return fail(x, "[node %s]: duplicate node name%s", nm, "") + 1;
            if (c->nnodes >= FY_MAX_NODES)
                return fail(x, "[node %s]: more than %s nodes", nm, "32") + 1;
            if (strlen(nm) >= FY_NAME_MAX) return fail(x, "[node %s]: name too long%s", nm, "") + 1;
            /* the name goes into response headers and model files (where white space
             * ends it); JSON and metrics labels escape the rest */
            for (const unsigned char *q = (const unsigned char *)nm; *q; q++)
                if (*q <= ' ' || *q >= 0x7f)
                    return fail(x, "[node %s]: a node name is printable ASCII without "
                                   "spaces%s", nm, "") + 1;
            struct gw_node_cfg *n = &c->nodes[c->nnodes];
            memset(n, 0, sizeof *n);
            snprintf(n->name, sizeof n->name, "%s", nm);
            n->link.up_mbps = n->link.down_mbps = n->link.rtt_ms = n->link.jitter_ms = -1;
            n->usd_per_mtok_in = -1;
            n->usd_per_mtok_out = -1;
            x->node_line[c->nnodes] = *x->line; /* its first key: inih shows no header */
            x->cur_node = c->nnodes++;
        }
    }
    /* one value per key: the later one won silently (and an indented line continues the
     * key above it in INI); api_key is the one key meant to repeat */
    if (strcmp(name, "api_key") != 0) {
        int first = node_ini_keys_add(&x->seen, section, name, *x->line);
        if (first < 0) return fail(x, "out of memory%s%s", "", "") + 1;
        if (first > 0) {
            if (!x->msg[0])
                snprintf(x->msg, sizeof x->msg, "[%s] %s: set again (first at line %d; one "
                         "value per key — an indented line continues the key above it)",
                         section, name, first);
            return 0;
        }
    }
    int rc;
    if (!strcmp(section, "server")) rc = h_server(x, name, value);
    else if (!strcmp(section, "policy")) rc = h_policy(x, name, value);
    else if (!strcmp(section, "pred")) rc = h_pred(x, name, value);
    else if (!strcmp(section, "share")) rc = h_share(x, name, value);
    else if (!strcmp(section, "shadow")) rc = h_shadow(x, name, value);
    else if (!strcmp(section, "limits")) rc = h_limits(x, name, value);
    else if (!strcmp(section, "timeouts")) rc = h_timeouts(x, name, value);
    else if (!strcmp(section, "health")) rc = h_health(x, name, value);
    else if (x->cur_node >= 0) rc = h_node(x, &c->nodes[x->cur_node], name, value);
    else rc = fail(x, "unknown section [%s]%s", section, "");
    return rc == 0; /* inih: nonzero = ok */
}

static int finish(struct parse_ctx *x, const char *name, int rc, char *err, size_t errlen)
{
    if (rc == -1) { /* inih: fopen failed, errno is fopen's */
        snprintf(err, errlen, "%s: cannot open: %s", name, strerror(errno));
        return -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "%s: out of memory while reading", name);
        return -1;
    }
    if (rc > 0) {
        snprintf(err, errlen, "%s:%d: %s", name, rc, x->msg[0] ? x->msg : "syntax error");
        return -1;
    }
    snprintf(x->c->path, sizeof x->c->path, "%s", name);
    int line;
    if (validate(x->c, x, &line, x->msg, sizeof x->msg)) {
        if (line > 0) snprintf(err, errlen, "%s:%d: %s", name, line, x->msg);
        else snprintf(err, errlen, "%s: %s", name, x->msg);
        return -1;
    }
    return 0;
}

/* inih reads lines through this, one per call as its own reader does, so its line
 * numbers hold. A line longer than inih's buffer (num - 1 bytes with the line break: 198
 * characters with Debian's libinih, INI_MAX_LINE 200) is not cut in two (inih would
 * parse the tail as a line of its own): a long comment keeps its head, any other long
 * line stops the parse with too_long set. */
struct line_src {
    const char *p, *end;
    int line;       /* lines handed out */
    int too_long;   /* when a line was too long: the characters a line may have */
    size_t long_len;/* ... and that line's characters before its line break */
    int long_cr;    /* ... it ends in CR LF (the CR counts) */
};

static char *read_line(char *str, int num, void *stream)
{
    struct line_src *s = stream;
    if (s->p >= s->end || num < 3) return NULL;
    const char *nl = memchr(s->p, '\n', (size_t)(s->end - s->p));
    const char *eol = nl ? nl + 1 : s->end;
    size_t n = (size_t)(eol - s->p);
    s->line++;
    if (n > (size_t)num - 1) {
        const char *q = s->p;
        while (*q == ' ' || *q == '\t') q++;
        if (*q != ';' && *q != '#') {
            s->too_long = num - 2;   /* characters before the line break */
            s->long_len = nl ? (size_t)(nl - s->p) : n;
            s->long_cr = nl && nl > s->p && nl[-1] == '\r';
            return NULL;
        }
        n = (size_t)num - 1;
    }
    memcpy(str, s->p, n);
    str[n] = 0;
    s->p = eol;
    return str;
}

static int load_text(const char *text, size_t len, const char *name, struct gw_config *c,
                     unsigned flags, char *err, size_t errlen)
{
    gw_config_default(c);
    struct line_src src = {.p = text, .end = text + len};
    struct parse_ctx x = {.c = c, .cur_node = -1, .flags = flags, .line = &src.line};
    int rc = ini_parse_stream(read_line, &src, handler, &x);
    node_ini_keys_fini(&x.seen);
    if (src.too_long && rc == 0) {
        snprintf(err, errlen, "%s:%d: line longer than %d characters (%zu%s): the INI "
                 "parser (inih) reads at most %d; only a comment line may be longer",
                 name, src.line, src.too_long, src.long_len, src.long_cr ? " with its CR" : "",
                 src.too_long);
        return -1;
    }
    return finish(&x, name, rc, err, errlen);
}

int gw_config_load(const char *path, struct gw_config *c, char *err, size_t errlen)
{
    return gw_config_load_flags(path, c, 0, err, errlen);
}

int gw_config_load_flags(const char *path, struct gw_config *c, unsigned flags, char *err,
                         size_t errlen)
{
    uint8_t *text = NULL;
    size_t len = 0;
    gw_config_default(c);
    if (util_read_file(path, NODE_INI_MAX_BYTES, &text, &len, err, errlen)) return -1;
    int rc = -1;
    if (memchr(text, 0, len))
        snprintf(err, errlen, "%s: contains a NUL byte: not an INI text file", path);
    else
        rc = load_text((const char *)text, len, path, c, flags, err, errlen);
    free(text);
    return rc;
}

int gw_config_load_string(const char *text, const char *name, struct gw_config *c,
                          char *err, size_t errlen)
{
    return load_text(text, strlen(text), name, c, 0, err, errlen);
}

int gw_config_validate(struct gw_config *c, char *err, size_t errlen)
{
    int line;
    return validate(c, NULL, &line, err, errlen);
}

/* gw_config_validate; *line = the line of the key an error is about, when x knows it. */
static int validate(struct gw_config *c, const struct parse_ctx *x, int *line, char *err,
                    size_t errlen)
{
    *line = 0;
    if (c->nnodes == 0) {
        snprintf(err, errlen, "no [node NAME] section: the gateway needs at least one backend");
        return -1;
    }
    for (int i = 0; i < c->nnodes; i++) {
        struct gw_node_cfg *n = &c->nodes[i];
        if (!n->url[0]) {
            if (x) *line = x->node_line[i];
            snprintf(err, errlen, "node '%s': url is missing", n->name);
            return -1;
        }
        if (!n->model[0]) snprintf(n->model, sizeof n->model, "%s", n->name);
        if (n->profile_node[0] && !n->profile[0]) { /* it was ignored: the built-in node ran */
            *line = n->profile_node_line;
            snprintf(err, errlen, "node '%s': profile_node = '%s' needs profile = FILE or "
                     "FOLDER holding that [node %s] (without it the node is the built-in %s "
                     "node)", n->name, n->profile_node, n->profile_node, gw_role_name(n->role));
            return -1;
        }
        if (!strcmp(n->name, "ferry") || !strcmp(n->name, "auto")) {
            snprintf(err, errlen, "node '%s': 'ferry' and 'auto' are reserved model names",
                     n->name);
            return -1;
        }
    }
    if (c->shadow_reference[0] && gw_config_find_node(c, c->shadow_reference) < 0) {
        if (x) *line = x->ref_line;
        snprintf(err, errlen, "[shadow] reference = '%s': no node of that name or model",
                 c->shadow_reference);
        return -1;
    }
    if (c->first_byte_ms < c->connect_ms) c->first_byte_ms = c->connect_ms;
    if (c->share_ttl_ms == 0) /* five publish rounds, at least a second */
        c->share_ttl_ms = c->share_interval_ms * 5 > 1000 ? c->share_interval_ms * 5 : 1000;
    if (c->share_redis[0] && c->share_ttl_ms <= c->share_interval_ms) {
        if (x) *line = x->ttl_line;
        snprintf(err, errlen, "[share] ttl_ms = %d must be longer than interval_ms = %d (a "
                 "live replica's load would expire between two publications)",
                 c->share_ttl_ms, c->share_interval_ms);
        return -1;
    }
    return 0;
}

int gw_config_find_node(const struct gw_config *c, const char *s)
{
    for (int i = 0; i < c->nnodes; i++)
        if (!strcmp(c->nodes[i].name, s)) return i;
    for (int i = 0; i < c->nnodes; i++)
        if (!strcmp(c->nodes[i].model, s)) return i;
    return -1;
}
