/* cmd_emulate — `ferry emulate`: run one emulated MLLM node (docs/emulator.md). */
#include <errno.h>
#include <float.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <event2/event.h>

#include "cli.h"
#include "emu/server.h"
#include "node/profile.h"
#include "util/log.h"
#include "util/num.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry emulate --profile FILE|NAME [options]\n"
            "\n"
            "An OpenAI-compatible server that behaves like one MLLM node: timing from the\n"
            "node service model of the profile, answers from the quality model, faults on\n"
            "request. docs/emulator.md has the details.\n"
            "\n"
            "  --profile FILE|NAME  node profile: an INI file with [node X] (and its device,\n"
            "                       model, link), or the name of a node in data/profiles/\n"
            "  --node NAME          the node to use when FILE defines several (default: the\n"
            "                       only one, else the first)\n"
            "  --profiles DIR       where NAME is looked up (default $FERRY_PROFILES, else\n"
            "                       data/profiles)\n"
            "  --no-link            ignore the profile's link (no upload time modelled)\n"
            "  --listen HOST:PORT   default 127.0.0.1:0 (port 0: the kernel picks one)\n"
            "  --port-file F        write the bound port to F once listening\n"
            "  --time-scale X       wall ms per modelled ms (default 1; 0.1 = 10x faster;\n"
            "                       0 = instant)\n"
            "  --seed N             answers, lengths and faults (default 1)\n"
            "  --item-seed N        right/wrong draws, one per question: nodes with the same\n"
            "                       item seed are right or wrong together as their quality\n"
            "                       model says (default 0)\n"
            "  --confidence-sep X   answer confidence (logprobs): logits between right and\n"
            "                       wrong answers (default 1)\n"
            "  --confidence-noise X its standard deviation in logits (default 1; 0 = exact)\n"
            "  --fault-error P              HTTP 500 with probability P\n"
            "  --fault-refuse P             connection reset before any byte, probability P\n"
            "  --fault-stall-first MS[@P]   hold a request MS ms before it starts (with\n"
            "                               probability P, default 1)\n"
            "  --fault-stall-mid MS[@P]     pause output MS ms after half of the tokens\n"
            "  --fault-disconnect-mid P     drop the connection after half of the tokens\n"
            "  --fault-slow-start MS        503 'Loading model' for MS ms after start\n"
            "  --fault-down UP_MS:DOWN_MS   accept connections UP_MS, then refuse them\n"
            "                               (port closed) DOWN_MS, and again\n"
            "  -h, --help           this text\n"
            "\n"
            "Prints 'listening on http://HOST:PORT' on stdout; SIGTERM/SIGINT stop it.\n"
            "Exit status: 0 after a stop, 1 when the profile is invalid or the server cannot\n"
            "start, 2 on a usage error.\n");
}

static struct event_base *g_base;

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    (void)arg;
    event_base_loopexit(g_base, NULL);
}

static int is_file(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Fills o->name, o->prof, o->capability from a profile file or a named node. */
static int load_profile(const char *spec, const char *node, const char *dir, int no_link,
                        struct emu_opts *o, char *err, size_t errlen)
{
    struct node_lib lib;
    node_lib_init(&lib);
    int rc = -1;
    const char *want = node;
    size_t sl = strlen(spec);
    /* a path (with a '/' or ending in .ini) is read as a file, so that a missing one or a
     * directory is reported as such, not as an unknown node name */
    if (is_file(spec) || strchr(spec, '/') || (sl > 4 && !strcmp(spec + sl - 4, ".ini"))) {
        if (node_lib_load(&lib, spec, err, errlen) < 0) goto out;
        if (!want) {
            if (lib.nnode < 1) {
                snprintf(err, errlen, "%s: no [node NAME] section", spec);
                goto out;
            }
            want = lib.node[0].name;
        }
    } else {
        if (!dir) dir = getenv("FERRY_PROFILES");
        if (!dir || !*dir) dir = "data/profiles";
        if (node_lib_load_dir(&lib, dir, err, errlen) < 0) goto out;
        if (!want) want = spec;
    }
    struct fy_node n;
    if (!node_lib_find_node(&lib, want)) {
        snprintf(err, errlen, "profile '%s': no node named '%s'%s%s", spec, want,
                 is_file(spec) ? "" : " in ", is_file(spec) ? "" : dir);
        goto out;
    }
    if (node_lib_resolve(&lib, want, &n, err, errlen) < 0) goto out;
    snprintf(o->name, sizeof o->name, "%s", n.name);
    o->prof = n.prof;
    const struct node_def *d = node_lib_find_node(&lib, want);
    const struct node_model *m = d ? node_lib_find_model(&lib, d->model) : NULL;
    if (m) {
        o->model = *m;
        o->has_model = 1;
    }
    const struct link_spec *ls = d && d->link[0] ? node_lib_find_link(&lib, d->link) : NULL;
    if (ls && !no_link) {
        /* a link the server could not build, named at its profile line, not at start */
        if (node_lib_check_link(&lib, d->link, err, errlen) < 0) goto out;
        o->link = *ls;
        o->has_link = 1;
    }
    rc = 0;
out:
    node_lib_fini(&lib);
    return rc;
}

/* 1 for the options that take a value: an unknown option is then reported as
 * unknown, not as one missing its value. */
static int takes_value(const char *a)
{
    static const char *const with_value[] = {"--profile", "--node", "--profiles", "--port-file",
                                             "--listen", "--time-scale", "--seed", "--item-seed",
                                             "--confidence-sep", "--confidence-noise"};
    for (size_t k = 0; k < sizeof with_value / sizeof with_value[0]; k++)
        if (!strcmp(a, with_value[k])) return 1;
    return !strncmp(a, "--fault-", 8) && emu_fault_kind_from_name(a + 8) >= 0;
}

static int parse_listen(const char *v, struct emu_opts *o)
{
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || (size_t)(colon - v) >= sizeof o->host) return -1;
    int p;
    if (util_parse_int(colon + 1, 0, 65535, &p) < 0) return -1;
    memcpy(o->host, v, (size_t)(colon - v));
    o->host[colon - v] = 0;
    o->port = p;
    return 0;
}

int cmd_emulate(int argc, char **argv)
{
    struct emu_opts o;
    emu_opts_default(&o);
    const char *profile = NULL, *node = NULL, *dir = NULL, *port_file = NULL;
    int no_link = 0;
    char err[512];
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            usage(stdout);
            return 0;
        }
        if (!strcmp(a, "--no-link")) {
            no_link = 1;
            continue;
        }
        if (a[0] != '-') {
            fprintf(stderr, "ferry emulate: unexpected argument '%s' (a profile goes with "
                            "--profile; try --help)\n", a);
            return 2;
        }
        if (!takes_value(a)) {
            fprintf(stderr, "ferry emulate: unknown option %s (try --help)\n", a);
            return 2;
        }
        if (!v) {
            fprintf(stderr, "ferry emulate: %s needs a value (try --help)\n", a);
            return 2;
        }
        i++;
        if (!strcmp(a, "--profile")) profile = v;
        else if (!strcmp(a, "--node")) node = v;
        else if (!strcmp(a, "--profiles")) dir = v;
        else if (!strcmp(a, "--port-file")) port_file = v;
        else if (!strcmp(a, "--listen")) {
            if (parse_listen(v, &o) < 0) {
                fprintf(stderr, "ferry emulate: --listen '%s': expected HOST:PORT with a port "
                        "in 0..65535\n", v);
                return 2;
            }
        } else if (!strcmp(a, "--time-scale")) {
            if (util_parse_double(v, 0, EMU_MAX_TIME_SCALE, &o.time_scale) < 0) {
                fprintf(stderr, "ferry emulate: --time-scale '%s': expected a number in [0, "
                        "%g]\n", v, EMU_MAX_TIME_SCALE);
                return 2;
            }
        } else if (!strcmp(a, "--confidence-sep") || !strcmp(a, "--confidence-noise")) {
            double x;
            /* the simulator's [quality] bounds: logits beyond 100 are a unit slip */
            if (util_parse_double(v, 0, 100, &x) < 0) {
                fprintf(stderr, "ferry emulate: %s '%s': expected a number in [0, 100]\n", a,
                        v);
                return 2;
            }
            if (a[13] == 's') o.confidence_sep = x;
            else o.confidence_noise = x;
        } else if (!strcmp(a, "--seed") || !strcmp(a, "--item-seed")) {
            unsigned long long x;
            if (util_parse_ull(v, 0, ULLONG_MAX, &x) < 0) {
                fprintf(stderr, "ferry emulate: %s '%s': expected an integer >= 0\n", a, v);
                return 2;
            }
            if (a[2] == 's') o.seed = x;
            else o.item_seed = x;
        } else { /* --fault-KIND, checked by takes_value */
            int k = emu_fault_kind_from_name(a + 8);
            if (emu_fault_parse((enum emu_fault_kind)k, v, &o.faults, err, sizeof err) < 0) {
                fprintf(stderr, "ferry emulate: %s\n", err);
                return 2;
            }
        }
    }
    if (!profile) {
        fprintf(stderr, "ferry emulate: --profile FILE|NAME is required (try --help)\n");
        return 2;
    }
    if (load_profile(profile, node, dir, no_link, &o, err, sizeof err) < 0) {
        fprintf(stderr, "ferry emulate: %s\n", err);
        return 1;
    }
    g_base = event_base_new();
    if (!g_base) {
        fprintf(stderr, "ferry emulate: event_base_new failed\n");
        return 1;
    }
    int rc = 1;
    struct event *sigint = NULL, *sigterm = NULL;
    struct emu_server *s = emu_server_new(g_base, &o, err, sizeof err);
    if (!s) {
        fprintf(stderr, "ferry emulate: %s\n", err);
        goto out;
    }
    sigint = evsignal_new(g_base, SIGINT, on_signal, NULL);
    sigterm = evsignal_new(g_base, SIGTERM, on_signal, NULL);
    if (sigint) evsignal_add(sigint, NULL);
    if (sigterm) evsignal_add(sigterm, NULL);
    signal(SIGPIPE, SIG_IGN);
    printf("ferry emulate: node %s (model %s) listening on http://%s:%d, time scale %g\n",
           o.name, o.prof.model, o.host, emu_server_port(s), o.time_scale);
    fflush(stdout);
    if (port_file) {
        /* write to a temporary name, then rename: readers never see a partial port */
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s.tmp", port_file);
        FILE *fp = fopen(tmp, "w");
        if (!fp || fprintf(fp, "%d\n", emu_server_port(s)) < 0 || fclose(fp) != 0 ||
            rename(tmp, port_file) != 0) {
            fprintf(stderr, "ferry emulate: --port-file %s: %s\n", port_file, strerror(errno));
            goto out;
        }
    }
    event_base_dispatch(g_base);
    rc = 0;
out:
    emu_server_free(s);
    if (sigint) event_free(sigint);
    if (sigterm) event_free(sigterm);
    event_base_free(g_base);
    return rc;
}
