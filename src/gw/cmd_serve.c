/* gw/cmd_serve — `ferry serve -c ferry.ini [--check] [--listen HOST:PORT]`. */
#include <event2/event.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>

#include "cli.h"
#include "gw/config.h"
#include "gw/nodes.h"
#include "gw/server.h"
#include "gw/upstream.h"
#include "policy/policy.h"
#include "util/log.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry serve -c FILE [--check] [--listen HOST:PORT]\n"
            "\n"
            "The OpenAI-compatible offloading gateway (docs/gateway.md).\n"
            "  -c, --config FILE   INI configuration (see data/ferry.ini)\n"
            "  --check             validate the configuration (nodes, profiles, policy) and exit\n"
            "  --listen HOST:PORT  override [server] listen (port 0 = any free port)\n"
            "The bound address is printed on stdout: 'listening on http://HOST:PORT'.\n"
            "SIGTERM/SIGINT: stop accepting, finish open requests, save state, exit.\n");
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    log_info("gw", "signal %d: draining", (int)sig);
    gw_server_drain(arg);
}

static int check(struct gw_config *c)
{
    char err[512] = "";
    const struct fy_policy *p = pol_find(c->policy);
    if (!p) {
        fprintf(stderr, "ferry serve: %s: [policy] name = '%s': no such policy\n", c->path,
                c->policy);
        return 1;
    }
    if (!strcmp(p->name, "oracle")) {
        fprintf(stderr, "ferry serve: %s: [policy] name = oracle: the oracle needs the "
                "simulator's ground truth; it cannot serve real requests\n", c->path);
        return 1;
    }
    void *st = NULL;
    if (p->init && p->init(&st, c->policy_params[0] ? c->policy_params : NULL, err, sizeof err)) {
        fprintf(stderr, "ferry serve: %s: [policy] params: %s\n", c->path, err);
        return 1;
    }
    if (p->free && st) p->free(st);
    struct event_base *base = event_base_new();
    struct gw_up *up = base ? gw_up_new(base) : NULL;
    struct gw_nodes ns;
    int rc = 0;
    if (!up || gw_nodes_init(&ns, c, base, up, err, sizeof err)) {
        fprintf(stderr, "ferry serve: %s: %s\n", c->path, err[0] ? err : "out of memory");
        rc = 1;
    } else {
        printf("%s: ok — listen %s:%d, policy %s, %d node(s)\n", c->path, c->listen_host,
               c->listen_port, c->policy, c->nnodes);
        for (int i = 0; i < c->nnodes; i++)
            printf("  %-12s %-5s %-40s model %s, %.0f/%.0f tok/s prefill/decode, key %s\n",
                   c->nodes[i].name, gw_role_name(c->nodes[i].role), c->nodes[i].url,
                   c->nodes[i].model, ns.node[i].prof.prefill_tps, ns.node[i].prof.decode_tps,
                   c->nodes[i].api_key_env[0] ? c->nodes[i].api_key_env : "(none)");
        gw_nodes_fini(&ns);
    }
    gw_up_free(up);
    if (base) event_base_free(base);
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    const char *path = NULL, *listen = NULL;
    int do_check = 0;
    for (int i = 1; i < argc; i++) {
        if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc) path = argv[++i];
        else if (!strcmp(argv[i], "--listen") && i + 1 < argc) listen = argv[++i];
        else if (!strcmp(argv[i], "--check")) do_check = 1;
        else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else {
            fprintf(stderr, "ferry serve: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        }
    }
    if (!path) {
        usage(stderr);
        return 2;
    }
    struct gw_config *cfg = malloc(sizeof *cfg);
    char err[512];
    if (!cfg) return 1;
    if (gw_config_load(path, cfg, err, sizeof err)) {
        fprintf(stderr, "ferry serve: %s\n", err);
        free(cfg);
        return 1;
    }
    if (listen) {
        const char *colon = strrchr(listen, ':');
        if (!colon || (size_t)(colon - listen) >= sizeof cfg->listen_host) {
            fprintf(stderr, "ferry serve: --listen '%s': expected HOST:PORT\n", listen);
            free(cfg);
            return 2;
        }
        snprintf(cfg->listen_host, sizeof cfg->listen_host, "%.*s", (int)(colon - listen), listen);
        cfg->listen_port = atoi(colon + 1);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    int rc = 0;
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
    struct event *sterm = evsignal_new(base, SIGTERM, on_signal, s);
    struct event *sint = evsignal_new(base, SIGINT, on_signal, s);
    event_add(sterm, NULL);
    event_add(sint, NULL);
    printf("ferry serve: listening on http://%s:%d (policy %s, %d node(s))\n", cfg->listen_host,
           gw_server_port(s), cfg->policy, cfg->nnodes);
    fflush(stdout);
    event_base_dispatch(base);
    event_free(sterm);
    event_free(sint);
    gw_server_free(s);
    event_base_free(base);
    fprintf(stderr, "ferry serve: stopped\n");
out:
    curl_global_cleanup();
    free(cfg);
    return rc;
}
