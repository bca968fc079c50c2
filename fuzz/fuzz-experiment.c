/* fuzz-experiment.c — libFuzzer target for experiment files (`ferry sim EXPERIMENT.ini`)
 * and `--set` assignments. Byte 0 selects:
 *   even: the rest is an experiment file, read by sim_entries_read (from a memfd, so
 *         nothing is left behind) and resolved by sim_setup_build against data/profiles
 *         and data/workloads, as `ferry sim` does (every sweep value when it has one);
 *   odd:  the rest, split at newlines, is a list of `--set SECTION.KEY=VALUE`
 *         (sim_entries_add_dotted) applied over data/experiments/moaoff-vqav2.ini, then
 *         resolved the same way.
 * A resolved setup must hold what the engine indexes with (node, policy and class
 * counts in range, positive arrival rate); then the first policy runs a tiny
 * simulation (5 requests, no trace, no prediction model file) and the others' params go
 * through their init. Any crash, leak or UB is a bug. Run from the repository root (data/ is found there). Seeds:
 * fuzz/corpus/fuzz-experiment/ (copies of data/experiments/NAME.ini with byte 0 = '0',
 * --set lists with byte 0 = '1'). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "policy/policy.h"
#include "sim/engine.h"
#include "sim/experiment.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define BASE_EXP "data/experiments/moaoff-vqav2.ini"
/* What sim_setup_build is told the file is: data/experiments/.. is the data folder. */
#define FUZZ_EXP "data/experiments/fuzz.ini"
#define MAX_SETS 64 /* --set lines taken from one input */

static struct sim_entries g_base; /* BASE_EXP's entries, read once */
static int g_memfd = -1;
static char g_memfd_path[64];
static struct sim_result *g_res;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc;
    (void)argv;
    char err[512];
    struct stat st;
    unsetenv("FERRY_DATA"); /* the data folder is ./data */
    if (stat("data/profiles", &st) != 0 ||
        sim_entries_read(&g_base, BASE_EXP, err, sizeof err) < 0) {
        fprintf(stderr, "fuzz-experiment: run from the repository root (%s)\n",
                stat("data/profiles", &st) != 0 ? "no data/profiles" : err);
        exit(1);
    }
    g_memfd = memfd_create("fuzz-experiment", 0);
    g_res = malloc(sizeof *g_res);
    if (g_memfd < 0 || !g_res) {
        perror("fuzz-experiment: memfd_create");
        exit(1);
    }
    snprintf(g_memfd_path, sizeof g_memfd_path, "/proc/self/fd/%d", g_memfd);
    return 0;
}

/* The engine's indices come from these: out of range is a resolver bug. */
static void check_setup(const struct sim_setup *s)
{
    const struct sim_exp *x = &s->exp;
    if (s->nnodes < 1 || s->nnodes > FY_MAX_NODES || x->npolicies < 1 ||
        x->npolicies > SIM_MAX_POLICIES || x->seeds < 1 || s->wl.nclasses < 1 ||
        x->nsweep < 0 || x->nsweep > SIM_MAX_SWEEP || !(x->arr.rate_rps > 0) ||
        (x->requests <= 0 && !(x->duration_s > 0)))
        abort();
    for (int i = 0; i < s->nnodes; i++)
        if (!s->models[i] || !(s->nodes[i].prof.decode_tps > 0) ||
            !(s->nodes[i].prof.prefill_tps > 0))
            abort();
    for (int p = 0; p < x->npolicies; p++)
        if (!pol_find(x->pol[p].name)) abort();
}

/* A tiny run of the first policy (5 requests, one seed, no files); the others' params
 * go through their init only. */
static void tiny_run(struct sim_setup *s)
{
    char err[512];
    for (int p = 1; p < s->exp.npolicies; p++) {
        const struct fy_policy *pol = pol_find(s->exp.pol[p].name);
        void *st = NULL;
        if (pol->init(&st, s->exp.pol[p].params[0] ? s->exp.pol[p].params : NULL, err,
                      sizeof err) == 0 && pol->free)
            pol->free(st);
    }
    s->exp.requests = 5;
    s->exp.duration_s = 0;
    s->exp.pred_model[0] = '\0';
    struct sim_run_opts o = {
        .pol = pol_find(s->exp.pol[0].name),
        .params = s->exp.pol[0].params[0] ? s->exp.pol[0].params : NULL,
        .seed = s->exp.seed,
        .use_pred = -1,
    };
    /* a dialogue started before the 5th request brings all its turns */
    if (sim_run(s, &o, g_res, err, sizeof err) == 0 && g_res->requests > 5 + s->wl.turns_max)
        abort();
}

static void build_all(const struct sim_entries *es, const char *exp_path)
{
    char err[1024], key[128], vals[SIM_MAX_SWEEP][64];
    int nv;
    if (sim_sweep_of(es, key, sizeof key, vals, &nv, err, sizeof err) < 0) return;
    for (int k = 0; k < (nv > 0 ? nv : 1); k++) {
        struct sim_setup *s = malloc(sizeof *s);
        if (!s) return;
        if (sim_setup_build(s, exp_path, es, nv > 0 ? vals[k] : NULL, err, sizeof err) == 0) {
            check_setup(s);
            if (k == 0) tiny_run(s);
            sim_setup_fini(s);
        } else if (!err[0]) {
            abort(); /* a refusal says why */
        }
        free(s);
    }
}

static void as_file(const uint8_t *data, size_t size)
{
    char err[512];
    if (ftruncate(g_memfd, 0) < 0 || lseek(g_memfd, 0, SEEK_SET) < 0) return;
    for (size_t off = 0; off < size;) {
        ssize_t w = write(g_memfd, data + off, size - off);
        if (w <= 0) return;
        off += (size_t)w;
    }
    struct sim_entries es = {0};
    if (sim_entries_read(&es, g_memfd_path, err, sizeof err) == 0) build_all(&es, FUZZ_EXP);
    sim_entries_fini(&es);
}

static void as_sets(const uint8_t *data, size_t size)
{
    char err[512];
    struct sim_entries es = {0};
    for (int i = 0; i < g_base.n; i++) {
        const struct sim_entry *e = &g_base.e[i];
        if (sim_entries_add(&es, e->section, e->key, e->value, e->file, e->line) < 0) goto done;
    }
    int nset = 0;
    for (size_t off = 0; off < size && nset < MAX_SETS; nset++) {
        const uint8_t *nl = memchr(data + off, '\n', size - off);
        size_t len = nl ? (size_t)(nl - (data + off)) : size - off;
        char *line = malloc(len + 1); /* exactly the line: ASan sees overreads */
        if (!line) goto done;
        memcpy(line, data + off, len);
        line[len] = '\0';
        int rc = sim_entries_add_dotted(&es, line, "--set", 0, err, sizeof err);
        free(line);
        if (rc < 0) goto done;
        off += len + 1;
    }
    build_all(&es, BASE_EXP);
done:
    sim_entries_fini(&es);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (data[0] & 1) as_sets(data + 1, size - 1);
    else as_file(data + 1, size - 1);
    return 0;
}
