/* gw/cmd_serve — `ferry serve -c ferry.ini [--check] [--listen HOST:PORT] [--model FILE]`. */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <curl/curl.h>

#include "cli.h"
#include "feat/text.h"
#include "gw/config.h"
#include "gw/nodes.h"
#include "gw/server.h"
#include "gw/share.h"
#include "gw/upstream.h"
#include "policy/policy.h"
#include "pred/pred.h"
#include "util/log.h"
#include "util/num.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry serve -c FILE [--check] [--listen HOST:PORT] [--model FILE]\n"
            "\n"
            "The OpenAI-compatible offloading gateway (docs/gateway.md).\n"
            "  -c, --config FILE   INI configuration (see data/ferry.ini)\n"
            "  --check             validate the configuration (nodes, profiles, policy, model\n"
            "                      file, [share]) and exit\n"
            "  --listen HOST:PORT  override [server] listen (port 0 = any free port)\n"
            "  --model FILE        predictors' starting point: a model from `ferry train`\n"
            "                      (overrides [pred] model). Learned state that descends from\n"
            "                      the same model (state_file, or Redis with [share]) is\n"
            "                      used instead when present, the newest of the two.\n"
            "  -h, --help          this text\n"
            "\n"
            "The bound address is printed on stdout: 'listening on http://HOST:PORT'.\n"
            "SIGTERM/SIGINT: stop accepting, finish open requests, save state, exit.\n"
            "Exit status: 0 after a clean stop (or a valid --check), 1 when the\n"
            "configuration is invalid or the gateway cannot start, 2 on a usage error.\n");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("gw", "signal %d: draining", (int)sig);
    gw_server_drain(arg);
}

static char share_note[600];   /* --check: what it found about [share] */

/* --check: the model file loads for these nodes; the Redis address resolves (an
 * unreachable Redis is reported, not an error: the gateway serves without it). */
/* What errors about the model file call it: the option or the config key it came from. */
static const char *model_origin(const struct gw_config *c)
{
    static char at[GW_PATH_MAX + 64]; /* `ferry serve` is one thread until it serves */
    if (c->model_origin && c->model_line > 0 && !strcmp(c->model_origin, "[pred] model")) {
        snprintf(at, sizeof at, "%s:%d: %s", c->path, c->model_line, c->model_origin);
        return at;
    }
    return c->model_origin ? c->model_origin : "model";
}

static int check_model_share(const struct gw_config *c, struct gw_nodes *ns)
{
    char err[512] = "";
    if (c->model_file[0]) {
        struct pred *p = pred_load(c->model_file, ns->node, ns->n, err, sizeof err);
        if (!p) {
            fprintf(stderr, "ferry serve: %s: %s\n", model_origin(c), err);
            return 1;
        }
        pred_free(p);
        char lin[48];
        if (gw_share_lineage(c, lin, sizeof lin, err, sizeof err)) {
            fprintf(stderr, "ferry serve: %s: %s\n", model_origin(c), err);
            return 1;
        }
    }
    if (c->share_redis[0]) {
        char *bytes = NULL, who[64], lin[48] = "prior";
        size_t len = 0;
        double at = 0;
        gw_share_lineage(c, lin, sizeof lin, err, sizeof err);
        int f = gw_share_fetch_state(c, lin, &bytes, &len, &at, who, sizeof who, err, sizeof err);
        free(bytes);
        if (f < 0 && strstr(err, "cannot resolve")) {
            fprintf(stderr, "ferry serve: %s: %s\n", c->path, err);
            return 1;
        }
        snprintf(share_note, sizeof share_note,
                 "redis %s, prefix %s, interval %d ms, ttl %d ms: %s%s", c->share_redis,
                 c->share_prefix, c->share_interval_ms, c->share_ttl_ms,
                 f < 0 ? "NOT reachable now (the gateway would serve on local state): "
                       : "reachable",
                 f < 0 ? err : f ? ", learned state present" : "");
    }
    return 0;
}

/* ---- the learned state a starting gateway uses ---------------------------------------
 * Learned state counts only when it descends from the configured starting point (its
 * lineage: the same model file, or none); among such states (state_file, Redis) the
 * newest wins; without any, the model file; without one, the built-in priors. The
 * lineage of state_file is kept next to it in STATE_FILE.lineage. */

static void lineage_path(const struct gw_config *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s.lineage", c->state_file);
}

static void file_lineage(const struct gw_config *c, char *out, size_t cap)
{
    char p[GW_PATH_MAX + 16];
    lineage_path(c, p, sizeof p);
    snprintf(out, cap, "prior");   /* state files from before lineages: no model file */
    FILE *f = fopen(p, "r");
    if (!f) return;
    char line[64];
    if (fgets(line, sizeof line, f)) {
        line[strcspn(line, "\r\n")] = 0;
        if (line[0]) snprintf(out, cap, "%s", line);
    }
    fclose(f);
}

static int write_lineage(const struct gw_config *c, const char *lin)
{
    char p[GW_PATH_MAX + 16], tmp[GW_PATH_MAX + 24];
    lineage_path(c, p, sizeof p);
    snprintf(tmp, sizeof tmp, "%s.tmp", p);
    FILE *f = fopen(tmp, "w");
    if (!f) return -1;
    int ok = fprintf(f, "%s\n", lin) > 0;
    ok = fclose(f) == 0 && ok;
    return ok && rename(tmp, p) == 0 ? 0 : -1;
}

/* from: where the predictors start from, for the start line. */
static int choose_state(struct gw_server *s, const struct gw_config *cfg, const char *lin,
                        char *from, size_t fromcap, char *err, size_t errlen)
{
    const struct gw_nodes *ns = gw_server_nodes(s);
    struct stat st;
    double file_ms = -1;   /* wall-clock ms of the state file when it is of this lineage */
    char flin[64] = "";
    if (cfg->state_file[0] && stat(cfg->state_file, &st) == 0) {
        file_lineage(cfg, flin, sizeof flin);
        if (!strcmp(flin, lin)) file_ms = st.st_mtim.tv_sec * 1e3 + st.st_mtim.tv_nsec / 1e6;
    }
    struct pred *chosen = NULL;
    if (cfg->share_redis[0]) {
        char *bytes = NULL, who[64], e[512];
        size_t len = 0;
        double at = 0;
        int f = gw_share_fetch_state(cfg, lin, &bytes, &len, &at, who, sizeof who, e, sizeof e);
        if (f < 0) {
            log_warn("share", "no learned state from Redis at start: %s", e);
        } else if (f > 0 && at > file_ms) {
            char what[200];
            snprintf(what, sizeof what, "redis %s:state:%s", cfg->share_prefix, lin);
            chosen = gw_share_pred_parse(bytes, len, what, ns->node, ns->n, e, sizeof e);
            if (chosen) {
                snprintf(from, fromcap, "%s (saved by replica %s)", what, who);
            } else {
                log_warn("share", "ignoring the fleet's learned state: %s", e);
            }
        }
        free(bytes);
    }
    if (!chosen && file_ms >= 0) {   /* gw_server_new loaded it already */
        snprintf(from, fromcap, "state_file %s", cfg->state_file);
        if (access(cfg->state_file, R_OK) == 0 && flin[0]) write_lineage(cfg, lin);
        return 0;
    }
    if (!chosen && cfg->model_file[0]) {
        chosen = pred_load(cfg->model_file, ns->node, ns->n, err, errlen);
        if (!chosen) return -1;
        snprintf(from, fromcap, "model %s%s", cfg->model_file,
                 flin[0] ? " (state_file was of another model or none)" : "");
    }
    if (!chosen) {
        chosen = pred_new(ns->node, ns->n);
        if (!chosen) {
            snprintf(err, errlen, "cannot create the predictor bank");
            return -1;
        }
        snprintf(from, fromcap, "built-in priors");
        if (flin[0])
            log_warn("gw", "state_file %s descends from %s, not from %s: starting from the "
                     "built-in priors", cfg->state_file, flin, lin);
    }
    gw_server_set_pred(s, chosen);
    /* the state file now holds what this process starts from, with its lineage */
    if (cfg->state_file[0]) {
        char e[512] = "";
        if (gw_server_save(s, e, sizeof e) || write_lineage(cfg, lin))
            log_warn("gw", "state_file %s: %s", cfg->state_file,
                     e[0] ? e : "cannot write the lineage");
    }
    return 0;
}

/* gw/share hands over feedback another replica received for one of our requests */
static int apply_feedback(void *arg, const char *id, double score)
{
    char node[FY_NAME_MAX];
    return gw_server_feedback(arg, id, score, node, sizeof node);
}

/* --check: the node's quality prior per task (pred.h: its profile's, else the role's) */
static void print_prior(const struct fy_node *n)
{
    char list[256] = "";
    size_t k = 0;
    for (int t = 0; t < FY_TASK__N && k < sizeof list; t++) {
        double q = n->prof.q_prior[t];
        if (q > 0 && q < 1)
            k += (size_t)snprintf(list + k, sizeof list - k, "%s%s %.3f", k ? ", " : "",
                                  feat_task_name((enum fy_task)t), q);
    }
    if (k)
        printf("  %-12s quality prior: %s; other tasks %.2f (role default)\n", "",
               list, pred_role_prior(n->role));
    else
        printf("  %-12s quality prior: %.2f for every task (role default; no model profile "
               "with priors)\n", "", pred_role_prior(n->role));
}

/* "FILE:LINE" of a config key, or "FILE" when it was not in the file (0: the default). */
static const char *at_line(const struct gw_config *c, int line, char *buf, size_t cap)
{
    if (line > 0) snprintf(buf, cap, "%s:%d", c->path, line);
    else snprintf(buf, cap, "%s", c->path);
    return buf;
}

static int check(struct gw_config *c)
{
    char err[512] = "", at[GW_PATH_MAX + 16];
    const struct fy_policy *p = pol_find(c->policy);
    if (!p) {
        fprintf(stderr, "ferry serve: %s: [policy] name = '%s': no such policy\n",
                at_line(c, c->policy_line, at, sizeof at), c->policy);
        return 1;
    }
    if (!strcmp(p->name, "oracle")) {
        fprintf(stderr, "ferry serve: %s: [policy] name = oracle: the oracle needs the "
                "simulator's ground truth; it cannot serve real requests\n",
                at_line(c, c->policy_line, at, sizeof at));
        return 1;
    }
    void *st = NULL;
    if (p->init && p->init(&st, c->policy_params[0] ? c->policy_params : NULL, err, sizeof err)) {
        fprintf(stderr, "ferry serve: %s: [policy] params: %s\n",
                at_line(c, c->policy_params_line, at, sizeof at), err);
        return 1;
    }
    if (p->free && st) p->free(st);
    struct event_base *base = event_base_new();
    struct gw_up *up = base ? gw_up_new(base) : NULL;
    struct gw_nodes ns;
    int rc = 0, ns_ok = 0;
    share_note[0] = 0;
    if (!up || gw_nodes_init(&ns, c, base, up, err, sizeof err)) {
        /* gw_nodes_init names the config's file and line itself */
        fprintf(stderr, "ferry serve: %s\n", err[0] ? err : "out of memory");
        rc = 1;
    } else {
        ns_ok = 1;
        rc = check_model_share(c, &ns);
    }
    if (rc == 0) {
        printf("%s: ok — listen %s:%d, policy %s, %d node(s)\n", c->path, c->listen_host,
               c->listen_port, c->policy, c->nnodes);
        for (int i = 0; i < c->nnodes; i++) {
            printf("  %-12s %-5s %-40s model %s, %.0f/%.0f tok/s prefill/decode, key %s\n",
                   c->nodes[i].name, gw_role_name(c->nodes[i].role), c->nodes[i].url,
                   c->nodes[i].model, ns.node[i].prof.prefill_tps, ns.node[i].prof.decode_tps,
                   c->nodes[i].api_key_env[0] ? c->nodes[i].api_key_env : "(none)");
            print_prior(&ns.node[i]);
        }
        if (c->model_file[0]) printf("  model %s: ok\n", c->model_file);
        if (c->share_redis[0]) printf("  share: %s\n", share_note);
    }
    if (ns_ok) gw_nodes_fini(&ns);
    gw_up_free(up);
    if (base) event_base_free(base);
    return rc;
}

/* --listen HOST:PORT: port 0..65535 in decimal and nothing after it. Returns 0, or -1
 * with the reason in err. */
static int parse_listen(const char *v, char *host, size_t hostcap, int *port, char *err,
                        size_t errlen)
{
    const char *colon = strrchr(v, ':');
    if (!colon || (size_t)(colon - v) >= hostcap) {
        snprintf(err, errlen, "--listen '%s': expected HOST:PORT", v);
        return -1;
    }
    const char *p = colon + 1;
    int n;
    if (*p == '-' || *p == '+' || util_parse_int(p, 0, 65535, &n) < 0) {
        snprintf(err, errlen, "--listen '%s': '%s' is not a port: expected an integer in "
                 "0..65535 (0 = any free port)", v, p);
        return -1;
    }
    snprintf(host, hostcap, "%.*s", (int)(colon - v), v);
    *port = n;
    return 0;
}

int cmd_serve(int argc, char **argv)
{
    const char *path = NULL, *listen = NULL, *model = NULL;
    int do_check = 0;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--listen") && i + 1 < argc) listen = argv[++i];
        else if (!strcmp(argv[i], "--model") && i + 1 < argc) model = argv[++i];
        else if (!strcmp(argv[i], "--check")) do_check = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config") ||
                   !strcmp(argv[i], "--listen") || !strcmp(argv[i], "--model")) {
            fprintf(stderr, "ferry serve: %s needs a value (try --help)\n", argv[i]);
            return 2;
        } else if (argv[i][0] == '-') {
            fprintf(stderr, "ferry serve: unknown option %s (try --help)\n", argv[i]);
            return 2;
        } else {
            fprintf(stderr, "ferry serve: unexpected argument '%s' (a configuration goes with "
                            "-c; try --help)\n", argv[i]);
            return 2;
        }
    }
    if (!path) {
        fprintf(stderr, "ferry serve: -c FILE is missing (try --help)\n");
        return 2;
    }
    char err[512], lhost[sizeof ((struct gw_config *)0)->listen_host];
    int lport = 0;
    if (listen && parse_listen(listen, lhost, sizeof lhost, &lport, err, sizeof err)) {
        fprintf(stderr, "ferry serve: %s\n", err);
        return 2;
    }
    struct gw_config *cfg = malloc(sizeof *cfg);
    if (!cfg) return 1;
    if (gw_config_load(path, cfg, err, sizeof err)) {
        fprintf(stderr, "ferry serve: %s\n", err);
        free(cfg);
        return 1;
    }
    if (listen) {
        snprintf(cfg->listen_host, sizeof cfg->listen_host, "%s", lhost);
        cfg->listen_port = lport;
    }
    if (model) {
        if (!*model) {
            fprintf(stderr, "ferry serve: --model '': expected a model file (leave the option "
                    "out for none)\n");
            free(cfg);
            return 2;
        }
        if (strlen(model) >= sizeof cfg->model_file) {
            fprintf(stderr, "ferry serve: --model: path longer than %zu bytes\n",
                    sizeof cfg->model_file - 1);
            free(cfg);
            return 2;
        }
        snprintf(cfg->model_file, sizeof cfg->model_file, "%s", model);
        cfg->model_origin = "--model";
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = 0;
    struct gw_share *share = NULL;
    if (do_check) {
        rc = check(cfg);
        goto out;
    }
    /* The epoll changelist folds the del+add pairs of curl's and evhttp's interest
     * changes within one loop turn into one epoll_ctl (or none). */
    struct event_config *ec = event_config_new();
    if (ec) event_config_set_flag(ec, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST);
    struct event_base *base = ec ? event_base_new_with_config(ec) : event_base_new();
    if (ec) event_config_free(ec);
    struct gw_server *s = base ? gw_server_new(base, cfg, err, sizeof err) : NULL;
    if (!s) {
        fprintf(stderr, "ferry serve: %s\n", base ? err : "cannot create the event loop");
        if (base) event_base_free(base);
        rc = 1;
        goto out;
    }
    char lin[48], from[400] = "";
    int bad_model = gw_share_lineage(cfg, lin, sizeof lin, err, sizeof err) ||
                    choose_state(s, cfg, lin, from, sizeof from, err, sizeof err);
    if (!bad_model && cfg->share_redis[0])
        share = gw_share_new(base, cfg, gw_server_nodes(s), lin, err, sizeof err);
    if (bad_model || (cfg->share_redis[0] && !share)) {
        if (bad_model && cfg->model_file[0])
            fprintf(stderr, "ferry serve: %s: %s\n", model_origin(cfg), err);
        else
            fprintf(stderr, "ferry serve: %s\n", err);
        gw_server_free(s);
        event_base_free(base);
        rc = 1;
        goto out;
    }
    gw_share_set_pred(share, gw_server_pred(s));
    gw_share_set_feedback(share, gw_server_id_prefix(s), apply_feedback, s);
    struct event *sterm = evsignal_new(base, SIGTERM, on_signal, s);
    struct event *sint = evsignal_new(base, SIGINT, on_signal, s);
    event_add(sterm, NULL);
    event_add(sint, NULL);
    printf("ferry serve: listening on http://%s:%d (policy %s, %d node(s), "
           "predictors from %s%s%s)\n",
           cfg->listen_host, gw_server_port(s), cfg->policy, cfg->nnodes, from,
           share ? ", sharing as replica " : "", share ? gw_share_replica(share) : "");
    fflush(stdout);
    event_base_dispatch(base);
    event_free(sterm);
    event_free(sint);
    gw_share_final_save(share);   /* before the bank is freed; blocking, bounded */
    gw_share_free(share);
    gw_server_free(s);
    event_base_free(base);
    fprintf(stderr, "ferry serve: stopped\n");
out:
    curl_global_cleanup();
    free(cfg);
    return rc;
}
