/* m4a1 — the M4A1 replay (`ferry bench m4a1 M4A1.json`): LCIO's local/cloud × image-view
 * offloading environment rebuilt over the 100 real logged dialogues of the public M4A1
 * sample, and the policies local, cloud, random, lcio (RC-A2C, pred/a2c.h), lcio-tab
 * (tabular Q) and ferry replayed on a held-out 20 % of the dialogues; plus MGQP trained
 * on the logged scores. Every modelling detail
 * follows ../shared/research/LCIO-M4A1.md (LCIO's public code) and is restated in
 * docs/results.md "M4A1 replay":
 *  - actions 0..8: 0 local; 1 cloud text only; 2-4 cloud + view {0},{1},{2};
 *    5-7 {0,1},{0,2},{1,2}; 8 all three views;
 *  - per-turn state [previous action (−1 at start), views of the previous turn (3),
 *    task id (alphabetical)], the observation stacks the last 5 turns (−1 padding);
 *  - response quality of (observation, action): distance-weighted kNN (k = 5, weights
 *    1/(d + 1e-6)) over the logged turns on [observation (25), cloud flag, views (3)];
 *    logged answers containing "sorry", "I don't have" or "can't" score 0;
 *  - latency and cost per action from LCIO's tables (Jetson TX2 local, wired cloud);
 *  - reward = resp + assoc/3 − lat/3 − cost/3 (assoc, lat, cost min–max normalised);
 *  - per-dialogue budgets 30 s and 0.05 USD; a step after which either budget is
 *    negative earns 0. */
#ifndef FERRY_PRED_M4A1_H
#define FERRY_PRED_M4A1_H
#include <stddef.h>
#include <stdint.h>

#define M4A1_MAX_BYTES   (64u << 20)
#define M4A1_MAX_TURNS   64
#define M4A1_MAX_ASSOC   1e6   /* |association score| accepted (the sample: 0.13..0.28) */
#define M4A1_NACT        9
#define M4A1_NTASK       4
#define M4A1_HIST        5
#define M4A1_OBS         (5 * M4A1_HIST)
#define M4A1_KNN_DIM     (M4A1_OBS + 4)

struct m4a1_turn {
    char *question;          /* owned */
    int task;                /* 0 Assistive System, 1 Message Editing, 2 Query, 3 Recommendation */
    int action;              /* logged action id 0..8 */
    double score;            /* logged score, 0 when the answer is a refusal */
    int refusal;
    double assoc[3];         /* association score of each view for this turn */
    double time_s, cost_usd; /* logged interaction time and cost (reported, not used) */
};

struct m4a1_dialogue {
    int id;
    int nturns;
    struct m4a1_turn *turn;  /* owned */
};

struct m4a1 {
    int n;
    struct m4a1_dialogue *d; /* owned */
};

/* Parses and validates n bytes of M4A1 JSON (need not be NUL-terminated; at most
 * M4A1_MAX_BYTES) into m; errors start with name (what the input is called: its path)
 * and name the dialogue and turn. 0, or -1 with m empty. O(n). */
int m4a1_parse(const char *name, const uint8_t *data, size_t n, struct m4a1 *m, char *err,
               size_t errlen);
/* Reads the file at path (at most M4A1_MAX_BYTES) and parses it (m4a1_parse). */
int m4a1_load(const char *path, struct m4a1 *m, char *err, size_t errlen);
void m4a1_fini(struct m4a1 *m);

/* Views bitmask (bit k = view k) of action a, and whether a runs in the cloud. */
unsigned m4a1_action_views(int a);
static inline int m4a1_action_cloud(int a) { return a > 0; }

/* What the replay reads of a logged turn, for tests and fuzz/fuzz-m4a1.c: the
 * association term of action a (the chosen views' scores summed, min–max normalised
 * over the 9 actions: in [0, 1]), and the request features MGQP sees for turn t of d
 * (the question text left out when with_text = 0). O(1) and O(question length). */
struct fy_features;
double m4a1_norm_assoc(const struct m4a1_turn *t, int a);
void m4a1_turn_features(const struct m4a1_dialogue *d, int t, int with_text,
                        struct fy_features *f);

/* lcio = RC-A2C (LCIO's method: advantage actor-critic on the budget-augmented
 * observation, reward penalised by Lagrange multipliers on the per-dialogue latency and
 * cost budgets); lcio-tab = the earlier tabular primal-dual Q-learner, kept to compare. */
enum { M4A1_POL_LOCAL = 0, M4A1_POL_CLOUD, M4A1_POL_RANDOM, M4A1_POL_LCIO, M4A1_POL_LCIO_TAB,
       M4A1_POL_FERRY, M4A1_POL__N };
const char *m4a1_policy_name(int pol);

struct m4a1_opts {
    int seeds;          /* splits/trainings averaged (default 3) */
    int epochs;         /* training passes of lcio-tab over the training dialogues (300) */
    int steps;          /* RC-A2C training steps (turns) per seed (100000; LCIO: 30000) */
    int nhid;           /* RC-A2C hidden units per network (64) */
    double lr;          /* RC-A2C RMSprop step size (SB3 A2C default 7e-4) */
    double dual_eta;    /* RC-A2C dual-ascent step on λ per episode (0.05, ours) */
    double ent_coef;    /* RC-A2C entropy bonus (SB3 A2C default 0) */
    int sampled_budgets;/* RC-A2C training budgets: 1 = LCIO's per-episode draws, 0 = the
                           evaluation budgets (30 s, 0.05 USD; the default) */
    unsigned seed;      /* split and training seeds are seed, seed + 1, ... (1000) */
    double test_share;  /* share of dialogues held out (0.2) */
};

/* Per policy: means over seeds (and their standard deviations in sd_*) of the held-out
 * response per turn, reward per dialogue, latency (s) and cost (USD) per dialogue, and
 * share of dialogues over either budget; max_over is the largest share over seeds. */
struct m4a1_result {
    double resp, reward, lat_s, cost_usd, over;
    double sd_resp, sd_reward, sd_lat_s, sd_cost_usd, sd_over;
    double max_over;
};

struct m4a1_report {
    struct m4a1_result pol[M4A1_POL__N];
    double auc, auc_prior, brier;   /* MGQP on the held-out logged turns (means) */
    double auc_notext;              /* the same without the question text */
    int turns, refusals;
    double lam_l, lam_c;            /* lcio: RC-A2C's multipliers after training (means) */
    double lam_peak_l, lam_peak_c;  /* ... and their peaks during training (means) */
};

void m4a1_opts_default(struct m4a1_opts *o);
/* 0, or -1 when out of memory or m has fewer than 2 dialogues (none to hold out). */
int m4a1_replay(const struct m4a1 *m, const struct m4a1_opts *o, struct m4a1_report *r);

/* `ferry bench m4a1` entry point (argv[0] = "m4a1"). */
int m4a1_main(int argc, char **argv);

#endif
