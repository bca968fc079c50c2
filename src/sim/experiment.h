/* experiment — experiment files (data/experiments/NAME.ini), --set overrides and sweeps,
 * resolved into everything one simulation run needs (docs/simulator.md "Experiment
 * files"). An experiment file holds:
 *   [experiment]  name, description, workload, nodes (comma list of [node X] names),
 *                 requests, duration_s, seeds, seed, policies (comma list),
 *                 params.POLICY = k=v,..., slo_ms, min_quality, tradeoff, max_cost_usd,
 *                 prefill_share, pred_model
 *   [arrivals]    process = poisson|mmpp|diurnal|closed, rate_rps, burst_rate_rps,
 *                 burst_s, calm_s, period_s, amplitude, users, think_s
 *   [quality]     drop_penalty, downscale_penalty, split_penalty
 *   [sweep]       key = SECTION.KEY (dotted, as for --set), values = v1,v2,...
 *   [device X] [model X] [link X] [node X]   refine or add profiles (profile.h)
 *   [workload] [class X]                       refine the workload (workload.h)
 * Profiles come from every DATA/profiles/X.ini and the workload from
 * DATA/workloads/NAME.ini, where DATA is $FERRY_DATA or the experiment file's folder's
 * parent (data/experiments/.. = data/). Every error names file:line. */
#ifndef FERRY_SIM_EXPERIMENT_H
#define FERRY_SIM_EXPERIMENT_H
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"
#include "node/link.h"
#include "node/profile.h"
#include "sim/quality.h"
#include "sim/workload.h"

#define SIM_MAX_POLICIES 32
#define SIM_MAX_SWEEP 64
/* mmpp arrivals: rate_rps·calm_s + burst_rate_rps·burst_s (requests per cycle) at least */
#define SIM_MMPP_MIN_PER_CYCLE 1e-3
/* simulated seconds the arrivals of `requests` may take on average (duration_s's bound):
 * the clock is a double in ms, 1e12 ms keeps latencies to 1e-4 ms */
#define SIM_MAX_SPAN_S 1e9
/* requests of a run at most: the bound of `requests`, and of rate × duration_s when the
 * run goes until duration_s */
#define SIM_MAX_REQUESTS 1e10

struct sim_entry {
    char section[96], key[96], value[512];
    char file[256];
    int line;
};

struct sim_entries {
    struct sim_entry *e;
    int n;
    size_t cap;
};

void sim_entries_fini(struct sim_entries *es);
int sim_entries_add(struct sim_entries *es, const char *section, const char *key,
                    const char *value, const char *file, int line);
/* Reads an INI file into entries. */
int sim_entries_read(struct sim_entries *es, const char *path, char *err, size_t errlen);
/* Adds a --set style "a.b.c=value" (node/link/device/model/class take a name as the
 * second component: "node.edge.max_seqs=8"). */
int sim_entries_add_dotted(struct sim_entries *es, const char *assign, const char *file,
                           int line, char *err, size_t errlen);

enum sim_arrival_kind { SIM_ARR_POISSON = 0, SIM_ARR_MMPP, SIM_ARR_DIURNAL, SIM_ARR_CLOSED };

struct sim_arrivals {
    enum sim_arrival_kind kind;
    double rate_rps;                /* poisson/diurnal mean, mmpp calm-state rate */
    double burst_rate_rps;          /* mmpp: rate in bursts */
    double burst_s, calm_s;         /* mmpp: mean sojourn times */
    double period_s, amplitude;     /* diurnal: rate(t) = rate (1 + A sin(2 pi t / period)) */
    int users;                      /* closed: population */
    double think_s;                 /* closed: mean think time between a user's requests */
};

struct sim_policy_spec {
    char name[FY_NAME_MAX];
    char params[256];
};

struct sim_exp {
    char name[64], description[256];
    char workload[64];
    long requests;                  /* requests to generate (0 = until duration_s) */
    double duration_s;              /* arrival window (0 = until requests) */
    int seeds;
    uint64_t seed;
    int npolicies;
    struct sim_policy_spec pol[SIM_MAX_POLICIES];
    int nnodes;
    char nodes[FY_MAX_NODES][FY_NAME_MAX];
    struct sim_arrivals arr;
    struct fy_prefs prefs;          /* applied to every request */
    double prefill_share;
    double privacy_edge_share;      /* share of requests marked edge-only (fy_prefs.privacy) */
    double dialogue_budget_ms;      /* per-dialogue latency budget (sum of turns); 0 = none */
    double dialogue_budget_usd;     /* per-dialogue cost budget; 0 = none */
    struct sim_quality q;
    char pred_model[512];
    char metrics[512];              /* table columns (CSV names, comma list); "" = default */
    char sweep_key[128];
    int nsweep;
    char sweep_val[SIM_MAX_SWEEP][64];
};

/* Everything a run needs, resolved. */
struct sim_setup {
    struct sim_exp exp;
    struct node_lib lib;
    struct sim_workload wl;
    int nnodes;
    struct fy_node nodes[FY_MAX_NODES];
    struct link_spec links[FY_MAX_NODES];
    const struct node_model *models[FY_MAX_NODES]; /* into lib */
    double cache_saving[FY_MAX_NODES];
    int max_queue[FY_MAX_NODES];
    char data_dir[512];
};

/* Reads the sweep of the experiment file + sets (key and values, no resolution). */
int sim_sweep_of(const struct sim_entries *es, char *key, size_t keycap,
                 char vals[][64], int *nvals, char *err, size_t errlen);

/* Resolves entries (file then --set) plus, when sweep_value is not NULL, the sweep key
 * set to it. exp_path locates the data folder. 0, or -1 with "file:line: what". */
int sim_setup_build(struct sim_setup *s, const char *exp_path, const struct sim_entries *es,
                    const char *sweep_value, char *err, size_t errlen);
void sim_setup_fini(struct sim_setup *s);

#endif
