/* experiment — experiment files, overrides, sweeps and their resolution (experiment.h). */
#include "sim/experiment.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "policy/policy.h"
#include "pred/pred.h"
#include "sim/report.h"
#include "util/grow.h"

/* ==== entries ====================================================================== */

void sim_entries_fini(struct sim_entries *es)
{
    free(es->e);
    memset(es, 0, sizeof *es);
}

int sim_entries_add(struct sim_entries *es, const char *section, const char *key,
                    const char *value, const char *file, int line)
{
    if (strlen(section) >= sizeof es->e[0].section || strlen(key) >= sizeof es->e[0].key ||
        strlen(value) >= sizeof es->e[0].value)
        return -2;
    struct sim_entry *n = util_grow(es->e, &es->cap, (size_t)es->n, sizeof *n, 64);
    if (!n) return -1;
    es->e = n;
    struct sim_entry *e = &es->e[es->n++];
    snprintf(e->section, sizeof e->section, "%s", section);
    snprintf(e->key, sizeof e->key, "%s", key);
    snprintf(e->value, sizeof e->value, "%s", value);
    snprintf(e->file, sizeof e->file, "%s", file ? file : "");
    e->line = line;
    return 0;
}

struct read_ctx { struct sim_entries *es; const char *path; };

static int read_cb(void *arg, const char *section, const char *key, const char *value, int line,
                   char *err, size_t errlen)
{
    struct read_ctx *c = arg;
    int rc = sim_entries_add(c->es, section, key, value, c->path, line);
    if (rc == -2) {
        snprintf(err, errlen, "[%s] %s: section, key or value too long", section, key);
        return -1;
    }
    if (rc < 0) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int sim_entries_read(struct sim_entries *es, const char *path, char *err, size_t errlen)
{
    struct read_ctx c = {es, path};
    return node_ini_read(path, read_cb, &c, err, errlen);
}

/* s[0..n) is device, model, link or node (the sections with a NAME in node_lib). */
static int named_section_kind(const char *s, size_t n)
{
    return (n == 6 && !strncmp(s, "device", 6)) || (n == 5 && !strncmp(s, "model", 5)) ||
           (n == 4 && !strncmp(s, "link", 4)) || (n == 4 && !strncmp(s, "node", 4));
}

static int named_section(const char *s)
{
    return !strcmp(s, "node") || !strcmp(s, "link") || !strcmp(s, "device") ||
           !strcmp(s, "model") || !strcmp(s, "class");
}

/* "a.b.c" -> section/key as described in experiment.h. */
static int split_dotted(const char *dotted, char *section, size_t scap, char *key, size_t kcap)
{
    const char *d1 = strchr(dotted, '.');
    if (!d1 || d1 == dotted) return -1;
    char first[32];
    size_t fl = (size_t)(d1 - dotted);
    if (fl >= sizeof first) return -1;
    memcpy(first, dotted, fl);
    first[fl] = '\0';
    const char *rest = d1 + 1;
    if (named_section(first)) {
        /* NAME may hold dots (model qwen2.5-vl-7b): the key is the last component, but a
         * model's cap.SKILL and prior.TASK, which hold one themselves */
        const char *d2 = strrchr(rest, '.');
        if (!strcmp(first, "model"))
            for (const char *p = rest; (p = strchr(p, '.')) != NULL; p++)
                if (p > rest && (!strncmp(p, ".cap.", 5) || !strncmp(p, ".prior.", 7))) d2 = p;
        if (!d2 || d2 == rest || !d2[1]) return -1;
        if ((size_t)snprintf(section, scap, "%s %.*s", first, (int)(d2 - rest), rest) >= scap) return -1;
        if ((size_t)snprintf(key, kcap, "%s", d2 + 1) >= kcap) return -1;
    } else {
        if (!*rest) return -1;
        if ((size_t)snprintf(section, scap, "%s", first) >= scap) return -1;
        if ((size_t)snprintf(key, kcap, "%s", rest) >= kcap) return -1;
    }
    return 0;
}

int sim_entries_add_dotted(struct sim_entries *es, const char *assign, const char *file, int line,
                           char *err, size_t errlen)
{
    const char *eq = strchr(assign, '=');
    char dotted[200], section[96], key[96];
    if (!eq || (size_t)(eq - assign) >= sizeof dotted) {
        snprintf(err, errlen, "%s: expected SECTION.KEY=VALUE", assign);
        return -1;
    }
    memcpy(dotted, assign, (size_t)(eq - assign));
    dotted[eq - assign] = '\0';
    if (split_dotted(dotted, section, sizeof section, key, sizeof key) < 0) {
        snprintf(err, errlen, "%s: expected SECTION.KEY=VALUE (node.NAME.KEY, link.NAME.KEY, "
                 "class.NAME.KEY, experiment.KEY, arrivals.KEY, workload.KEY, ...)", assign);
        return -1;
    }
    if (sim_entries_add(es, section, key, eq + 1, file, line) < 0) {
        snprintf(err, errlen, "%s: too long", assign);
        return -1;
    }
    return 0;
}

/* "file:line: msg"; for a --set line or a sweep value (line 0) the assignment itself,
 * "--set node.edge.max_seqs=0: msg", since several may share a key; "--option: msg" for
 * the other command-line entries. */
static void entry_error(char *err, size_t errlen, const struct sim_entry *e, const char *msg)
{
    if (e->line > 0) {
        snprintf(err, errlen, "%s:%d: %s", e->file, e->line, msg);
    } else if (!strcmp(e->file, "--set") || !strcmp(e->file, "[sweep]")) {
        /* the section back in dotted form: "node edge" -> "node.edge" */
        const char *sp = strchr(e->section, ' ');
        int n1 = sp ? (int)(sp - e->section) : (int)strlen(e->section);
        snprintf(err, errlen, "%s %.*s%s%s.%s=%s: %s", e->file, n1, e->section, sp ? "." : "",
                 sp ? sp + 1 : "", e->key, e->value, msg);
    } else {
        snprintf(err, errlen, "%s: %s", e->file, msg);
    }
}

/* ==== value helpers ================================================================ */

/* Splits a comma list into trimmed items; calls fn for each. */
static int each_item(const char *list, int (*fn)(void *arg, const char *item, char *err, size_t errlen),
                     void *arg, char *err, size_t errlen)
{
    const char *p = list;
    while (*p) {
        while (*p == ' ' || *p == '\t') p++;
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t')) len--;
        char item[128];
        if (len == 0 || len >= sizeof item) {
            snprintf(err, errlen, "'%s': empty or too long item in the list", list);
            return -1;
        }
        memcpy(item, p, len);
        item[len] = '\0';
        if (fn(arg, item, err, errlen) < 0) return -1;
        if (!end) break;
        p = end + 1;
    }
    return 0;
}

static int add_node_name(void *arg, const char *item, char *err, size_t errlen)
{
    struct sim_exp *x = arg;
    if (x->nnodes == FY_MAX_NODES) {
        snprintf(err, errlen, "nodes: more than %d", FY_MAX_NODES);
        return -1;
    }
    if (strlen(item) >= FY_NAME_MAX) {
        snprintf(err, errlen, "nodes: name '%s' too long", item);
        return -1;
    }
    for (int i = 0; i < x->nnodes; i++)
        if (!strcmp(x->nodes[i], item)) {
            snprintf(err, errlen, "nodes: '%s' listed twice", item);
            return -1;
        }
    snprintf(x->nodes[x->nnodes++], FY_NAME_MAX, "%s", item);
    return 0;
}

static int add_policy(void *arg, const char *item, char *err, size_t errlen)
{
    struct sim_exp *x = arg;
    if (!pol_find(item)) {
        char names[512] = "";
        size_t n = 0;
        for (const struct fy_policy *const *p = pol_all(); *p; p++)
            n += (size_t)snprintf(names + n, n < sizeof names ? sizeof names - n : 0, "%s%s",
                                  n ? ", " : "", (*p)->name);
        snprintf(err, errlen, "policies: unknown policy '%s' (known: %s)", item, names);
        return -1;
    }
    for (int i = 0; i < x->npolicies; i++)
        if (!strcmp(x->pol[i].name, item)) return 0;
    if (x->npolicies == SIM_MAX_POLICIES) {
        snprintf(err, errlen, "policies: more than %d", SIM_MAX_POLICIES);
        return -1;
    }
    snprintf(x->pol[x->npolicies].name, FY_NAME_MAX, "%s", item);
    x->pol[x->npolicies].params[0] = '\0';
    x->npolicies++;
    return 0;
}

static int check_metric(void *arg, const char *item, char *err, size_t errlen)
{
    (void)arg;
    if (sim_report_metric_known(item)) return 0;
    snprintf(err, errlen, "metrics: unknown metric '%s' (%s)", item, sim_report_metric_names());
    return -1;
}

static void exp_defaults(struct sim_exp *x)
{
    memset(x, 0, sizeof *x);
    snprintf(x->name, sizeof x->name, "experiment");
    x->requests = 1000;
    x->seeds = 1;
    x->seed = 1;
    x->arr.kind = SIM_ARR_POISSON;
    x->arr.rate_rps = 10;
    x->arr.burst_rate_rps = 50;
    x->arr.burst_s = 5;
    x->arr.calm_s = 30;
    x->arr.period_s = 600;
    x->arr.amplitude = 0.5;
    x->arr.users = 10;
    x->arr.think_s = 5;
    x->prefs.tradeoff = -1;
    x->prefs.min_quality = -1;
    x->prefs.max_cost_usd = -1;
    x->prefill_share = 0.5;
    sim_quality_default(&x->q);
}

static int feed_exp(struct sim_exp *x, const char *key, const char *v, char *err, size_t errlen)
{
    double d;
    if (!strcmp(key, "name") || !strcmp(key, "workload") || !strcmp(key, "description") ||
        !strcmp(key, "pred_model")) {
        char *dst = key[0] == 'n' ? x->name : key[0] == 'w' ? x->workload
                    : key[0] == 'd' ? x->description : x->pred_model;
        size_t cap = key[0] == 'n' ? sizeof x->name : key[0] == 'w' ? sizeof x->workload
                     : key[0] == 'd' ? sizeof x->description : sizeof x->pred_model;
        if (strlen(v) >= cap || (key[0] != 'd' && key[0] != 'p' && !*v)) {
            snprintf(err, errlen, "%s: expected 1..%zu characters", key, cap - 1);
            return -1;
        }
        snprintf(dst, cap, "%s", v);
        return 0;
    }
    if (!strcmp(key, "metrics")) {
        if (strlen(v) >= sizeof x->metrics) {
            snprintf(err, errlen, "metrics: too long");
            return -1;
        }
        if (each_item(v, check_metric, NULL, err, errlen) < 0) return -1;
        snprintf(x->metrics, sizeof x->metrics, "%s", v);
        return 0;
    }
    if (!strcmp(key, "nodes")) {
        x->nnodes = 0;
        return each_item(v, add_node_name, x, err, errlen);
    }
    if (!strcmp(key, "policies")) {
        x->npolicies = 0;
        return each_item(v, add_policy, x, err, errlen);
    }
    if (!strncmp(key, "params.", 7)) {
        for (int i = 0; i < x->npolicies; i++)
            if (!strcmp(x->pol[i].name, key + 7)) {
                if (strlen(v) >= sizeof x->pol[i].params) {
                    snprintf(err, errlen, "%s: too long", key);
                    return -1;
                }
                snprintf(x->pol[i].params, sizeof x->pol[i].params, "%s", v);
                return 0;
            }
        snprintf(err, errlen, "%s: policy '%s' is not in policies (list it first)", key, key + 7);
        return -1;
    }
    if (!strcmp(key, "requests")) {
        if (sim__int(key, v, 0, SIM_MAX_REQUESTS, &d, err, errlen) < 0) return -1;
        x->requests = (long)d;
        return 0;
    }
    if (!strcmp(key, "duration_s")) return sim__num(key, v, 0, 1e9, &x->duration_s, err, errlen);
    if (!strcmp(key, "seeds")) {
        if (sim__int(key, v, 1, 10000, &d, err, errlen) < 0) return -1;
        x->seeds = (int)d;
        return 0;
    }
    if (!strcmp(key, "seed")) {
        if (sim__int(key, v, 0, 9007199254740992.0, &d, err, errlen) < 0) return -1;
        x->seed = (uint64_t)d;
        return 0;
    }
    if (!strcmp(key, "slo_ms")) return sim__num(key, v, 0, 1e9, &x->prefs.slo_ms, err, errlen);
    if (!strcmp(key, "min_quality")) return sim__num(key, v, -1, 1, &x->prefs.min_quality, err, errlen);
    if (!strcmp(key, "tradeoff")) return sim__num(key, v, -1, 1, &x->prefs.tradeoff, err, errlen);
    if (!strcmp(key, "max_cost_usd")) return sim__num(key, v, -1, 1e9, &x->prefs.max_cost_usd, err, errlen);
    if (!strcmp(key, "dialogue_budget_ms"))
        return sim__num(key, v, 0, 1e12, &x->dialogue_budget_ms, err, errlen);
    if (!strcmp(key, "dialogue_budget_usd"))
        return sim__num(key, v, 0, 1e9, &x->dialogue_budget_usd, err, errlen);
    if (!strcmp(key, "privacy_edge_share"))
        return sim__num(key, v, 0, 1, &x->privacy_edge_share, err, errlen);
    if (!strcmp(key, "prefill_share")) {
        if (sim__num(key, v, 0, 1, &x->prefill_share, err, errlen) < 0) return -1;
        if (x->prefill_share <= 0) {
            snprintf(err, errlen, "prefill_share = %s: must be > 0", v);
            return -1;
        }
        return 0;
    }
    snprintf(err, errlen, "[experiment]: unknown key '%s' (name, description, workload, nodes, "
             "requests, duration_s, seeds, seed, policies, params.POLICY, slo_ms, min_quality, "
             "tradeoff, max_cost_usd, prefill_share, privacy_edge_share, dialogue_budget_ms, "
             "dialogue_budget_usd, metrics, pred_model)", key);
    return -1;
}

static int feed_arrivals(struct sim_arrivals *a, const char *key, const char *v, char *err,
                         size_t errlen)
{
    if (!strcmp(key, "process")) {
        if (!strcmp(v, "poisson")) a->kind = SIM_ARR_POISSON;
        else if (!strcmp(v, "mmpp")) a->kind = SIM_ARR_MMPP;
        else if (!strcmp(v, "diurnal")) a->kind = SIM_ARR_DIURNAL;
        else if (!strcmp(v, "closed")) a->kind = SIM_ARR_CLOSED;
        else {
            snprintf(err, errlen, "process = %s: expected poisson, mmpp, diurnal or closed", v);
            return -1;
        }
        return 0;
    }
    double d;
    if (!strcmp(key, "rate_rps")) {
        if (sim__num(key, v, 0, 1e9, &a->rate_rps, err, errlen) < 0) return -1;
        if (a->rate_rps <= 0) {
            snprintf(err, errlen, "rate_rps = %s: must be > 0", v);
            return -1;
        }
        return 0;
    }
    if (!strcmp(key, "burst_rate_rps")) return sim__num(key, v, 1e-9, 1e9, &a->burst_rate_rps, err, errlen);
    if (!strcmp(key, "burst_s")) return sim__num(key, v, 1e-6, 1e9, &a->burst_s, err, errlen);
    if (!strcmp(key, "calm_s")) return sim__num(key, v, 1e-6, 1e9, &a->calm_s, err, errlen);
    if (!strcmp(key, "period_s")) return sim__num(key, v, 1e-6, 1e9, &a->period_s, err, errlen);
    if (!strcmp(key, "amplitude")) return sim__num(key, v, 0, 1, &a->amplitude, err, errlen);
    if (!strcmp(key, "think_s")) return sim__num(key, v, 0, 1e9, &a->think_s, err, errlen);
    if (!strcmp(key, "users")) {
        if (sim__int(key, v, 1, 1e6, &d, err, errlen) < 0) return -1;
        a->users = (int)d;
        return 0;
    }
    snprintf(err, errlen, "[arrivals]: unknown key '%s' (process, rate_rps, burst_rate_rps, "
             "burst_s, calm_s, period_s, amplitude, users, think_s)", key);
    return -1;
}

static int feed_quality(struct sim_quality *q, const char *key, const char *v, char *err,
                        size_t errlen)
{
    if (!strcmp(key, "drop_penalty")) return sim__num(key, v, 0, 100, &q->drop_penalty, err, errlen);
    if (!strcmp(key, "downscale_penalty"))
        return sim__num(key, v, 0, 100, &q->downscale_penalty, err, errlen);
    if (!strcmp(key, "split_penalty")) return sim__num(key, v, 0, 100, &q->split_penalty, err, errlen);
    if (!strcmp(key, "confidence_sep"))
        return sim__num(key, v, 0, 100, &q->confidence_sep, err, errlen);
    if (!strcmp(key, "confidence_noise"))
        return sim__num(key, v, 0, 100, &q->confidence_noise, err, errlen);
    snprintf(err, errlen, "[quality]: unknown key '%s' (drop_penalty, downscale_penalty, "
             "split_penalty, confidence_sep, confidence_noise)", key);
    return -1;
}

/* ==== sweep ======================================================================== */

static int add_sweep_val(void *arg, const char *item, char *err, size_t errlen)
{
    struct { char (*vals)[64]; int *n; } *c = arg;
    if (*c->n == SIM_MAX_SWEEP || strlen(item) >= 64) {
        snprintf(err, errlen, "values: at most %d values of < 64 characters", SIM_MAX_SWEEP);
        return -1;
    }
    snprintf(c->vals[(*c->n)++], 64, "%s", item);
    return 0;
}

int sim_sweep_of(const struct sim_entries *es, char *key, size_t keycap, char vals[][64],
                 int *nvals, char *err, size_t errlen)
{
    key[0] = '\0';
    *nvals = 0;
    const struct sim_entry *last = NULL;
    for (int i = 0; i < es->n; i++) {
        const struct sim_entry *e = &es->e[i];
        if (strcmp(e->section, "sweep") != 0) continue;
        last = e;
        if (!strcmp(e->key, "key")) {
            char s[96], k[96];
            if (split_dotted(e->value, s, sizeof s, k, sizeof k) < 0 || strlen(e->value) >= keycap) {
                char m[256];
                snprintf(m, sizeof m, "key = %s: expected SECTION.KEY (e.g. link.wan.up_mbps)",
                         e->value);
                entry_error(err, errlen, e, m);
                return -1;
            }
            snprintf(key, keycap, "%s", e->value);
        } else if (!strcmp(e->key, "values")) {
            *nvals = 0;
            struct { char (*vals)[64]; int *n; } c = {vals, nvals};
            char msg[256];
            if (each_item(e->value, add_sweep_val, &c, msg, sizeof msg) < 0) {
                entry_error(err, errlen, e, msg);
                return -1;
            }
        } else {
            char m[256];
            snprintf(m, sizeof m, "[sweep]: unknown key '%s' (key, values)", e->key);
            entry_error(err, errlen, e, m);
            return -1;
        }
    }
    if ((key[0] != '\0') != (*nvals > 0)) { /* at the entry that left one of them out */
        entry_error(err, errlen, last, "[sweep]: needs both key and values");
        return -1;
    }
    return 0;
}

/* ==== setup ======================================================================== */

static void dir_of(const char *path, char *out, size_t cap)
{
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(out, cap, ".");
    else if (slash == path) snprintf(out, cap, "/");
    else snprintf(out, cap, "%.*s", (int)(slash - path), path);
}

struct wl_ctx { struct sim_workload *wl; const char *path; };

static int wl_cb(void *arg, const char *section, const char *key, const char *value, int line,
                 char *err, size_t errlen)
{
    struct wl_ctx *c = arg;
    int rc = sim_workload_feed(c->wl, c->path, section, key, value, line, err, errlen);
    if (rc == 0) {
        snprintf(err, errlen, "[%s]: unknown section in a workload file (expected [workload] "
                 "or [class NAME])", section);
        return -1;
    }
    return rc < 0 ? -1 : 0;
}

/* The last entry that set section.key (the one in force), or NULL. */
static const struct sim_entry *entry_of(const struct sim_entries *es, const char *section,
                                        const char *key)
{
    for (int i = es->n - 1; i >= 0; i--)
        if (!strcmp(es->e[i].section, section) && !strcmp(es->e[i].key, key)) return &es->e[i];
    return NULL;
}

/* 1 (with the message) when section is "[device|model|link|node NAME]" and no such
 * section exists yet: a --set or sweep value refines a profile, and one naming none (a
 * typo: node.edge-309.max_seqs=8) made a new, unused one and changed nothing. */
static int profile_missing(const struct node_lib *lib, const char *section, char *msg,
                           size_t cap)
{
    const char *sp = strchr(section, ' ');
    if (!sp || !named_section_kind(section, (size_t)(sp - section))) return 0;
    const char *name = sp + 1;
    int n = 0;
    const char *kind = "node";
    if (!strncmp(section, "device ", 7)) {
        if (node_lib_find_device(lib, name)) return 0;
        kind = "device";
        n = snprintf(msg, cap, "[%s]: no such device (", section);
        for (int i = 0; i < lib->ndev && n > 0 && (size_t)n < cap; i++)
            n += snprintf(msg + n, cap - (size_t)n, "%s%s", i ? ", " : "", lib->dev[i].name);
    } else if (!strncmp(section, "model ", 6)) {
        if (node_lib_find_model(lib, name)) return 0;
        kind = "model";
        n = snprintf(msg, cap, "[%s]: no such model (", section);
        for (int i = 0; i < lib->nmod && n > 0 && (size_t)n < cap; i++)
            n += snprintf(msg + n, cap - (size_t)n, "%s%s", i ? ", " : "", lib->mod[i].name);
    } else if (!strncmp(section, "link ", 5)) {
        if (node_lib_find_link(lib, name)) return 0;
        kind = "link";
        n = snprintf(msg, cap, "[%s]: no such link (", section);
        for (int i = 0; i < lib->nlnk && n > 0 && (size_t)n < cap; i++)
            n += snprintf(msg + n, cap - (size_t)n, "%s%s", i ? ", " : "", lib->lnk[i].name);
    } else if (!strncmp(section, "node ", 5)) {
        if (node_lib_find_node(lib, name)) return 0;
        n = snprintf(msg, cap, "[%s]: no such node (", section);
        for (int i = 0; i < lib->nnode && n > 0 && (size_t)n < cap; i++)
            n += snprintf(msg + n, cap - (size_t)n, "%s%s", i ? ", " : "", lib->node[i].name);
    } else {
        return 0;
    }
    if (n > 0 && (size_t)n < cap)
        snprintf(msg + n, cap - (size_t)n, "); --set and sweep values refine one that exists "
                 "(a new %s is defined in the experiment file)", kind);
    return 1;
}

static int workload_has_class(const struct sim_workload *w, const char *name)
{
    while (*name == ' ') name++;
    for (int c = 0; c < w->nclasses; c++)
        if (!strcmp(w->cls[c].name, name)) return 1;
    return 0;
}

/* Every policy's init() with its params, as sim_run calls it: a bad params.POLICY is
 * named at its line (or --set) before the first run, not when that policy's turn comes. */
static int check_policies(const struct sim_exp *x, const struct sim_entries *all, char *err,
                          size_t errlen)
{
    for (int p = 0; p < x->npolicies; p++) {
        const struct fy_policy *pol = pol_find(x->pol[p].name);
        void *st = NULL;
        char perr[256] = "";
        if (!pol || !pol->init) continue;
        if (pol->init(&st, x->pol[p].params[0] ? x->pol[p].params : NULL, perr, sizeof perr) == 0) {
            if (pol->free) pol->free(st);
            continue;
        }
        char key[128], msg[512];
        snprintf(key, sizeof key, "params.%s", pol->name);
        const struct sim_entry *e = entry_of(all, "experiment", key);
        snprintf(msg, sizeof msg, "%s: policy %s: %s", e ? key : "policies", pol->name, perr);
        if (!e) e = entry_of(all, "experiment", "policies");
        if (e) entry_error(err, errlen, e, msg);
        else snprintf(err, errlen, "%s", msg);
        return -1;
    }
    return 0;
}

/* pred_model is read by every run; a missing or mismatched file is named here, once. */
static int check_pred_model(const struct sim_setup *s, const struct sim_entries *all, char *err,
                            size_t errlen)
{
    if (!s->exp.pred_model[0]) return 0;
    char path[1200], perr[512], msg[600];
    if (s->exp.pred_model[0] == '/') snprintf(path, sizeof path, "%s", s->exp.pred_model);
    else snprintf(path, sizeof path, "%s/%s", s->data_dir, s->exp.pred_model);
    struct pred *p = pred_load(path, s->nodes, s->nnodes, perr, sizeof perr);
    if (p) {
        pred_free(p);
        return 0;
    }
    snprintf(msg, sizeof msg, "pred_model: %s", perr);
    const struct sim_entry *e = entry_of(all, "experiment", "pred_model");
    if (e) entry_error(err, errlen, e, msg);
    else snprintf(err, errlen, "%s", msg);
    return -1;
}

void sim_setup_fini(struct sim_setup *s)
{
    node_lib_fini(&s->lib);
    sim_workload_fini(&s->wl);
}

int sim_setup_build(struct sim_setup *s, const char *exp_path, const struct sim_entries *es,
                    const char *sweep_value, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    node_lib_init(&s->lib);
    sim_workload_init(&s->wl);
    exp_defaults(&s->exp);
    char msg[768];
    int rc = -1;
    struct sim_entries extra = {0};

    const char *env = getenv("FERRY_DATA");
    if (env && *env) snprintf(s->data_dir, sizeof s->data_dir, "%s", env);
    else {
        char d[400];
        dir_of(exp_path, d, sizeof d);
        snprintf(s->data_dir, sizeof s->data_dir, "%s/..", d);
    }
    char path[1024];
    snprintf(path, sizeof path, "%s/profiles", s->data_dir);
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
        snprintf(err, errlen, "%s: no profiles folder (the data folder is $FERRY_DATA, else the "
                 "folder above the experiment file's; docs/simulator.md)", path);
        goto fail;
    }
    if (node_lib_load_dir(&s->lib, path, err, errlen) < 0) goto fail;

    /* the sweep assignment goes last, so it wins over file and --set */
    struct sim_entries all = *es;
    char key[128], vals[SIM_MAX_SWEEP][64];
    int nv;
    if (sim_sweep_of(es, key, sizeof key, vals, &nv, err, errlen) < 0) goto fail;
    snprintf(s->exp.sweep_key, sizeof s->exp.sweep_key, "%s", key);
    s->exp.nsweep = nv;
    memcpy(s->exp.sweep_val, vals, sizeof vals);
    if (sweep_value) {
        char assign[256];
        snprintf(assign, sizeof assign, "%s=%s", key, sweep_value);
        for (int i = 0; i < es->n; i++)
            if (sim_entries_add(&extra, es->e[i].section, es->e[i].key, es->e[i].value,
                                es->e[i].file, es->e[i].line) < 0) {
                snprintf(err, errlen, "out of memory");
                goto fail;
            }
        if (sim_entries_add_dotted(&extra, assign, "[sweep]", 0, err, errlen) < 0) goto fail;
        all = extra;
    }

    /* pass 1: experiment, arrivals, quality and profile sections, in order */
    for (int i = 0; i < all.n; i++) {
        const struct sim_entry *e = &all.e[i];
        int r;
        if (!strcmp(e->section, "experiment")) r = feed_exp(&s->exp, e->key, e->value, msg, sizeof msg);
        else if (!strcmp(e->section, "arrivals")) r = feed_arrivals(&s->exp.arr, e->key, e->value, msg, sizeof msg);
        else if (!strcmp(e->section, "quality")) r = feed_quality(&s->exp.q, e->key, e->value, msg, sizeof msg);
        else if (!strcmp(e->section, "sweep") || !strcmp(e->section, "workload") ||
                 !strncmp(e->section, "class ", 6)) r = 0;
        else if (e->line == 0 && profile_missing(&s->lib, e->section, msg, sizeof msg)) {
            r = -1;
        } else {
            r = node_lib_feed(&s->lib, e->file, e->section, e->key, e->value, e->line, msg, sizeof msg);
            if (r == 0) {
                snprintf(msg, sizeof msg, "[%s]: unknown section (experiment, arrivals, quality, "
                         "sweep, workload, class X, node X, link X, device X, model X)", e->section);
                r = -1;
            } else if (r > 0) r = 0;
        }
        if (r < 0) {
            entry_error(err, errlen, e, msg);
            goto fail;
        }
    }
    if (!s->exp.workload[0]) {
        snprintf(err, errlen, "%s: [experiment] needs workload = NAME", exp_path);
        goto fail;
    }
    for (int k = 0; k < 2; k++) { /* emptied: at the entry that emptied it */
        const char *list = k ? "policies" : "nodes";
        if ((k ? s->exp.npolicies : s->exp.nnodes) > 0) continue;
        const struct sim_entry *e = entry_of(&all, "experiment", list);
        snprintf(msg, sizeof msg, "[experiment] needs %s = NAME,NAME", list);
        if (e) entry_error(err, errlen, e, msg);
        else snprintf(err, errlen, "%s: %s", exp_path, msg);
        goto fail;
    }
    if (s->exp.requests == 0 && s->exp.duration_s == 0) {
        snprintf(err, errlen, "%s: [experiment] needs requests > 0 or duration_s > 0", exp_path);
        goto fail;
    }
    /* the engine draws an MMPP arrival by walking the state switches before it: about
     * 2 / (expected requests of one calm + burst cycle) per request, so a cycle must
     * bring some (1e-3: at most ~2000 switches per request, not 1e15) */
    const struct sim_arrivals *ar = &s->exp.arr;
    double per_cycle = ar->rate_rps * ar->calm_s + ar->burst_rate_rps * ar->burst_s;
    if (ar->kind == SIM_ARR_MMPP && !(per_cycle >= SIM_MMPP_MIN_PER_CYCLE)) {
        snprintf(err, errlen, "%s: [arrivals] mmpp: rate_rps × calm_s + burst_rate_rps × "
                 "burst_s = %g requests per calm + burst cycle; at least %g", exp_path,
                 per_cycle, SIM_MMPP_MIN_PER_CYCLE);
        goto fail;
    }
    /* requests at a crawl (rate_rps = 1e-300) put the clock (double ms) so far out that a
     * latency is below its precision: every latency printed 0.0 ms */
    double mean_rps = ar->kind == SIM_ARR_MMPP ? per_cycle / (ar->calm_s + ar->burst_s)
                                               : ar->rate_rps;
    if (s->exp.duration_s == 0) {
        double span_s = ar->kind == SIM_ARR_CLOSED
                        ? (double)s->exp.requests * ar->think_s / ar->users
                        : (double)s->exp.requests / mean_rps;
        if (!(span_s <= SIM_MAX_SPAN_S)) {
            snprintf(err, errlen, "%s: requests = %ld at these [arrivals] (%s) would take %g s "
                     "of simulated time; at most %g (raise the rate, or give duration_s)",
                     exp_path, s->exp.requests,
                     ar->kind == SIM_ARR_CLOSED ? "users, think_s"
                     : ar->kind == SIM_ARR_MMPP ? "rate_rps, burst_rate_rps, calm_s, burst_s"
                     : "rate_rps", span_s, SIM_MAX_SPAN_S);
            goto fail;
        }
    } else if (s->exp.requests == 0 && ar->kind != SIM_ARR_CLOSED &&
               !(mean_rps * s->exp.duration_s <= SIM_MAX_REQUESTS)) {
        /* "until duration_s" at 1e6 requests/s for 1e6 s ran (and grew) for ever */
        snprintf(err, errlen, "%s: duration_s = %g at these [arrivals] (%g requests/s on "
                 "average) would bring %g requests; at most %g, the bound of requests",
                 exp_path, s->exp.duration_s, mean_rps, mean_rps * s->exp.duration_s,
                 SIM_MAX_REQUESTS);
        goto fail;
    }

    /* workload file, then the experiment's [workload]/[class X] refinements */
    char wdir[600];
    snprintf(wdir, sizeof wdir, "%s/workloads", s->data_dir);
    snprintf(path, sizeof path, "%s/%s.ini", wdir, s->exp.workload);
    struct wl_ctx wc = {&s->wl, path};
    snprintf(s->wl.name, sizeof s->wl.name, "%s", s->exp.workload);
    if (node_ini_read(path, wl_cb, &wc, err, errlen) < 0) {
        goto fail;
    }
    for (int i = 0; i < all.n; i++) {
        const struct sim_entry *e = &all.e[i];
        if (strcmp(e->section, "workload") != 0 && strncmp(e->section, "class ", 6) != 0) continue;
        if (!strncmp(e->section, "class ", 6) && !workload_has_class(&s->wl, e->section + 6)) {
            /* a typo made a class of its own, with weight 1 and default sizes */
            int n = snprintf(msg, sizeof msg, "[%s]: workload %s has no class %s (", e->section,
                             s->wl.name, e->section + 6);
            for (int c = 0; c < s->wl.nclasses && n > 0 && (size_t)n < sizeof msg; c++)
                n += snprintf(msg + n, sizeof msg - (size_t)n, "%s%s", c ? ", " : "",
                              s->wl.cls[c].name);
            if (n > 0 && (size_t)n < sizeof msg)
                snprintf(msg + n, sizeof msg - (size_t)n, "); an experiment refines the "
                         "classes of its workload file");
            entry_error(err, errlen, e, msg);
            goto fail;
        }
        if (sim_workload_feed(&s->wl, e->file, e->section, e->key, e->value, e->line, msg,
                              sizeof msg) < 0) {
            entry_error(err, errlen, e, msg);
            goto fail;
        }
    }
    if (sim_workload_finish(&s->wl, wdir, msg, sizeof msg) < 0) {
        /* an image pool the experiment named is reported at that entry */
        const struct sim_entry *e = entry_of(&all, "workload", "image_pool");
        if (e && !strncmp(msg, "image pool ", 11)) entry_error(err, errlen, e, msg);
        else snprintf(err, errlen, "%s", msg);
        goto fail;
    }

    /* nodes */
    s->nnodes = s->exp.nnodes;
    for (int i = 0; i < s->nnodes; i++) {
        const struct sim_entry *at = entry_of(&all, "experiment", "nodes");
        if (!node_lib_find_node(&s->lib, s->exp.nodes[i]) && at) {
            snprintf(msg, sizeof msg, "nodes: node '%s' is not defined (no [node %s] section "
                     "in the profiles or the experiment)", s->exp.nodes[i], s->exp.nodes[i]);
            entry_error(err, errlen, at, msg);
            goto fail;
        }
        if (node_lib_resolve(&s->lib, s->exp.nodes[i], &s->nodes[i], err, errlen) < 0) goto fail;
        const struct node_def *nd = node_lib_find_node(&s->lib, s->exp.nodes[i]);
        if (!nd->link[0]) {
            snprintf(err, errlen, "%s:%d: [node %s]: needs link = NAME", nd->file, nd->line, nd->name);
            goto fail;
        }
        s->links[i] = *node_lib_find_link(&s->lib, nd->link);
        s->models[i] = node_lib_find_model(&s->lib, nd->model);
        s->cache_saving[i] = nd->cache_saving;
        s->max_queue[i] = nd->max_queue;
        /* what sim_run would refuse, refused now, before the first run */
        if (node_lib_check_link(&s->lib, nd->link, err, errlen) < 0) goto fail;
    }
    if (check_policies(&s->exp, &all, err, errlen) < 0) goto fail;
    if (check_pred_model(s, &all, err, errlen) < 0) goto fail;
    sim_entries_fini(&extra);
    return 0;
fail:
    sim_entries_fini(&extra);
    sim_setup_fini(s);
    return rc;
}
