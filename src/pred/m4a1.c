/* m4a1 — M4A1 replay: loader, LCIO environment, policies, report (m4a1.h). */
#include "pred/m4a1.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feat/text.h"
#include "pred/a2c.h"
#include "pred/pred.h"
#include "util/err.h"
#include "util/file.h"
#include "util/num.h"
#include "util/rng.h"

/* ==== LCIO's constants (LCIO-M4A1.md; Jetson TX2 local device, wired cloud) ========= */

/* latency (s) and cost (USD) by number of uploaded views k; index 0 of LOCAL_* */
#define LOCAL_S   0.011429   /* 2·3.8e9/1024·2048 FLOP / 1330 GFLOP/s */
#define LOCAL_USD 7.94e-9    /* 15 W for that time at 16.68 ¢/kWh */
static const double g_cloud_s[4] = {6.46030, 4.76134, 6.24569, 6.98211};
static const double g_cloud_usd[4] = {0.00049, 0.00500, 0.00945, 0.01368};
#define BUDGET_S   30.0
#define BUDGET_USD 0.05

static const unsigned g_views[M4A1_NACT] = {0, 0, 1, 2, 4, 3, 5, 6, 7};
static const char *const g_task_names[M4A1_NTASK] = {"Assistive System", "Message Editing",
                                                     "Query", "Recommendation"};

unsigned m4a1_action_views(int a) { return a >= 0 && a < M4A1_NACT ? g_views[a] : 0; }

static int popcount3(unsigned m) { return (m & 1) + ((m >> 1) & 1) + ((m >> 2) & 1); }

static double act_lat(int a) { return a == 0 ? LOCAL_S : g_cloud_s[popcount3(g_views[a])]; }
static double act_cost(int a) { return a == 0 ? LOCAL_USD : g_cloud_usd[popcount3(g_views[a])]; }

/* min–max over [local, cloud k = 0..3] */
static double norm_lat(int a)
{
    double lo = LOCAL_S, hi = LOCAL_S;
    for (int k = 0; k < 4; k++) {
        if (g_cloud_s[k] < lo) lo = g_cloud_s[k];
        if (g_cloud_s[k] > hi) hi = g_cloud_s[k];
    }
    return (act_lat(a) - lo) / (hi - lo);
}

static double norm_cost(int a)
{
    double lo = LOCAL_USD, hi = LOCAL_USD;
    for (int k = 0; k < 4; k++) {
        if (g_cloud_usd[k] < lo) lo = g_cloud_usd[k];
        if (g_cloud_usd[k] > hi) hi = g_cloud_usd[k];
    }
    return (act_cost(a) - lo) / (hi - lo);
}

/* Sum of the chosen views' association scores, min–max normalised over the 9 actions. */
static double norm_assoc(const struct m4a1_turn *t, int a)
{
    double v[M4A1_NACT], lo = INFINITY, hi = -INFINITY;
    for (int b = 0; b < M4A1_NACT; b++) {
        v[b] = 0;
        for (int k = 0; k < 3; k++)
            if (g_views[b] >> k & 1) v[b] += t->assoc[k];
        if (v[b] < lo) lo = v[b];
        if (v[b] > hi) hi = v[b];
    }
    return hi > lo ? (v[a] - lo) / (hi - lo) : 0;
}

double m4a1_norm_assoc(const struct m4a1_turn *t, int a) { return norm_assoc(t, a); }

/* ==== loader ======================================================================= */

static int task_id(const char *s)
{
    for (int i = 0; i < M4A1_NTASK; i++)
        if (!strcmp(s, g_task_names[i])) return i;
    return -1;
}

static int is_refusal(const char *a)
{
    return strstr(a, "sorry") || strstr(a, "I don't have") || strstr(a, "can't");
}

void m4a1_fini(struct m4a1 *m)
{
    if (!m) return;
    for (int i = 0; i < m->n; i++) {
        for (int t = 0; t < m->d[i].nturns; t++) free(m->d[i].turn[t].question);
        free(m->d[i].turn);
    }
    free(m->d);
    memset(m, 0, sizeof *m);
}

static int load_turn(const cJSON *it, const cJSON *assoc, struct m4a1_turn *t, int di, int ti,
                     char *err, size_t errlen)
{
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(it, "question");
    const cJSON *task = cJSON_GetObjectItemCaseSensitive(it, "task_cat");
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(it, "action");
    const cJSON *idx = cJSON_GetObjectItemCaseSensitive(it, "image_index");
    const cJSON *ans = cJSON_GetObjectItemCaseSensitive(it, "answer");
    const cJSON *sc = cJSON_GetObjectItemCaseSensitive(it, "score");
    const cJSON *tm = cJSON_GetObjectItemCaseSensitive(it, "interaction_time");
    const cJSON *co = cJSON_GetObjectItemCaseSensitive(it, "usage_cost");
    if (!cJSON_IsString(q) || !cJSON_IsString(task) || !cJSON_IsNumber(act) ||
        !cJSON_IsString(ans) || !cJSON_IsNumber(sc)) {
        util_seterr(err, errlen,
                    "dialogue %d, turn %d: question, task_cat, action, answer and score are required",
                    di, ti);
        return -1;
    }
    t->task = task_id(task->valuestring);
    if (t->task < 0) {
        util_seterr(err, errlen, "dialogue %d, turn %d: unknown task_cat \"%.40s\"", di, ti,
                    task->valuestring);
        return -1;
    }
    unsigned views = 0;
    if (idx && cJSON_IsArray(idx)) {
        const cJSON *e;
        cJSON_ArrayForEach(e, idx)
        {
            if (!cJSON_IsNumber(e) || !(e->valuedouble == 0 || e->valuedouble == 1 ||
                                         e->valuedouble == 2)) {
                util_seterr(err, errlen, "dialogue %d, turn %d: image_index entries must be 0..2",
                            di, ti);
                return -1;
            }
            views |= 1u << (int)e->valuedouble;
        }
    } else if (idx && !cJSON_IsNull(idx)) {
        util_seterr(err, errlen, "dialogue %d, turn %d: image_index must be null or a list",
                    di, ti);
        return -1;
    }
    if (act->valuedouble == 0) {
        t->action = 0;
    } else if (act->valuedouble == 1) {
        t->action = 1;
        for (int a = 1; a < M4A1_NACT; a++)
            if (g_views[a] == views) t->action = a;
    } else {
        util_seterr(err, errlen, "dialogue %d, turn %d: action must be 0 or 1", di, ti);
        return -1;
    }
    if (!isfinite(sc->valuedouble) || sc->valuedouble < 0 || sc->valuedouble > 10) {
        util_seterr(err, errlen, "dialogue %d, turn %d: score must be in [0, 10]", di, ti);
        return -1;
    }
    t->refusal = is_refusal(ans->valuestring) != 0;
    t->score = t->refusal ? 0 : sc->valuedouble;
    /* optional, reported only: absent or null = 0, else a finite number >= 0 */
    if ((tm && !cJSON_IsNull(tm) &&
         (!cJSON_IsNumber(tm) || !isfinite(tm->valuedouble) || tm->valuedouble < 0)) ||
        (co && !cJSON_IsNull(co) &&
         (!cJSON_IsNumber(co) || !isfinite(co->valuedouble) || co->valuedouble < 0))) {
        util_seterr(err, errlen,
                    "dialogue %d, turn %d: interaction_time and usage_cost must be numbers >= 0",
                    di, ti);
        return -1;
    }
    t->time_s = cJSON_IsNumber(tm) ? tm->valuedouble : 0;
    t->cost_usd = cJSON_IsNumber(co) ? co->valuedouble : 0;
    const cJSON *row = cJSON_GetArrayItem(assoc, ti);
    if (!cJSON_IsArray(row) || cJSON_GetArraySize(row) != 3) {
        util_seterr(err, errlen, "dialogue %d: association_score row %d must hold 3 numbers",
                    di, ti);
        return -1;
    }
    for (int k = 0; k < 3; k++) {
        const cJSON *v = cJSON_GetArrayItem(row, k);
        /* bounded so that sums and min-max spans stay finite (the sample: 0.13..0.28) */
        if (!cJSON_IsNumber(v) || !(fabs(v->valuedouble) <= M4A1_MAX_ASSOC)) {
            util_seterr(err, errlen,
                        "dialogue %d: association_score[%d][%d] is not a number in [-%g, %g]",
                        di, ti, k, M4A1_MAX_ASSOC, M4A1_MAX_ASSOC);
            return -1;
        }
        t->assoc[k] = v->valuedouble;
    }
    t->question = strdup(q->valuestring);
    if (!t->question) {
        util_seterr(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int m4a1_parse(const char *name, const uint8_t *data, size_t n, struct m4a1 *m, char *err,
               size_t errlen)
{
    memset(m, 0, sizeof *m);
    cJSON *root = NULL;
    int rc = -1;
    if (n > M4A1_MAX_BYTES) {
        util_seterr(err, errlen, "%s: larger than the limit of %u bytes", name,
                    (unsigned)M4A1_MAX_BYTES);
        return -1;
    }
    root = cJSON_ParseWithLength((const char *)data, n);
    if (!cJSON_IsArray(root)) {
        util_seterr(err, errlen, "%s: not a JSON list of dialogues", name);
        goto cleanup;
    }
    int nd = cJSON_GetArraySize(root);
    if (nd <= 0 || nd > 100000) {
        util_seterr(err, errlen, "%s: %d dialogues (expected 1..100000)", name, nd);
        goto cleanup;
    }
    m->d = calloc((size_t)nd, sizeof *m->d);
    if (!m->d) goto nomem;
    const cJSON *dj;
    cJSON_ArrayForEach(dj, root)
    {
        int di = m->n;
        struct m4a1_dialogue *d = &m->d[m->n++];
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(dj, "id");
        const cJSON *its = cJSON_GetObjectItemCaseSensitive(dj, "interactions");
        const cJSON *assoc = cJSON_GetObjectItemCaseSensitive(dj, "association_score");
        if (id && !cJSON_IsNull(id) &&
            (!cJSON_IsNumber(id) || !(fabs(id->valuedouble) <= 1e9) ||
             id->valuedouble != floor(id->valuedouble))) {
            util_seterr(err, errlen, "%s: dialogue %d: id must be an integer in [-1e9, 1e9]",
                        name, di);
            goto cleanup;
        }
        d->id = cJSON_IsNumber(id) ? (int)id->valuedouble : di;
        if (!cJSON_IsArray(its) || !cJSON_IsArray(assoc)) {
            util_seterr(err, errlen,
                        "%s: dialogue %d: interactions and association_score must be lists",
                        name, di);
            goto cleanup;
        }
        int nt = cJSON_GetArraySize(its);
        if (nt < 1 || nt > M4A1_MAX_TURNS || cJSON_GetArraySize(assoc) < nt) {
            util_seterr(err, errlen,
                        "%s: dialogue %d: %d turns (1..%d) and %d association rows", name,
                        di, nt, M4A1_MAX_TURNS, cJSON_GetArraySize(assoc));
            goto cleanup;
        }
        d->turn = calloc((size_t)nt, sizeof *d->turn);
        if (!d->turn) goto nomem;
        const cJSON *it;
        cJSON_ArrayForEach(it, its)
        {
            char e2[256];
            if (load_turn(it, assoc, &d->turn[d->nturns], di, d->nturns, e2, sizeof e2) < 0) {
                util_seterr(err, errlen, "%s: %s", name, e2);
                goto cleanup;
            }
            d->nturns++;
        }
    }
    rc = 0;
    goto cleanup;
nomem:
    util_seterr(err, errlen, "%s: out of memory", name);
    goto cleanup;
cleanup:
    if (rc < 0) m4a1_fini(m);
    cJSON_Delete(root);
    return rc;
}

int m4a1_load(const char *path, struct m4a1 *m, char *err, size_t errlen)
{
    memset(m, 0, sizeof *m);
    uint8_t *data = NULL;
    size_t sz = 0;
    /* says "is a directory", "No such file...", or names the size limit */
    if (util_read_file(path, M4A1_MAX_BYTES, &data, &sz, err, errlen) < 0) return -1;
    int rc = m4a1_parse(path, data, sz, m, err, errlen);
    free(data);
    return rc;
}

/* ==== environment: observation and kNN response ==================================== */

/* Observation of turn t of d after actions acts[0..t-1] (LCIO: the last 5 per-turn
 * states [previous action, its views (3), task], newest first, −1 padding). */
static void observe(const struct m4a1_dialogue *d, int t, const int *acts, double *obs)
{
    for (int h = 0; h < M4A1_HIST; h++) {
        int j = t - h;
        double *e = obs + 5 * h;
        if (j < 0) {
            for (int k = 0; k < 5; k++) e[k] = -1;
            continue;
        }
        int prev = j > 0 ? acts[j - 1] : -1;
        e[0] = prev;
        for (int k = 0; k < 3; k++) e[1 + k] = prev >= 0 ? (double)(g_views[prev] >> k & 1) : 0;
        e[4] = d->turn[j].task;
    }
}

static void knn_vec(const double *obs, int a, double *v)
{
    memcpy(v, obs, sizeof(double) * M4A1_OBS);
    v[M4A1_OBS] = m4a1_action_cloud(a);
    for (int k = 0; k < 3; k++) v[M4A1_OBS + 1 + k] = g_views[a] >> k & 1;
}

struct env {
    double (*x)[M4A1_KNN_DIM];
    double *y;
    int n;
};

static int env_build(struct env *e, const struct m4a1 *m)
{
    int total = 0;
    for (int i = 0; i < m->n; i++) total += m->d[i].nturns;
    e->x = malloc(sizeof *e->x * (size_t)total);
    e->y = malloc(sizeof *e->y * (size_t)total);
    e->n = 0;
    if (!e->x || !e->y) return -1;
    for (int i = 0; i < m->n; i++) {
        const struct m4a1_dialogue *d = &m->d[i];
        int acts[M4A1_MAX_TURNS];
        for (int t = 0; t < d->nturns; t++) acts[t] = d->turn[t].action;
        for (int t = 0; t < d->nturns; t++) {
            double obs[M4A1_OBS];
            observe(d, t, acts, obs);
            knn_vec(obs, acts[t], e->x[e->n]);
            e->y[e->n++] = d->turn[t].score;
        }
    }
    return 0;
}

static void env_fini(struct env *e)
{
    free(e->x);
    free(e->y);
}

/* Distance-weighted 5-NN response of (obs, a); O(n) in logged turns. */
static double env_resp(const struct env *e, const double *obs, int a)
{
    double v[M4A1_KNN_DIM], bd[5], by[5];
    int nb = 0;
    knn_vec(obs, a, v);
    for (int i = 0; i < e->n; i++) {
        double d2 = 0;
        for (int k = 0; k < M4A1_KNN_DIM; k++) {
            double df = e->x[i][k] - v[k];
            d2 += df * df;
        }
        double d = sqrt(d2);
        if (nb < 5) {
            bd[nb] = d;
            by[nb++] = e->y[i];
        } else {
            int w = 0;
            for (int k = 1; k < 5; k++)
                if (bd[k] > bd[w]) w = k;
            if (d < bd[w]) {
                bd[w] = d;
                by[w] = e->y[i];
            }
        }
    }
    double sw = 0, sy = 0;
    for (int k = 0; k < nb; k++) {
        double w = 1.0 / (bd[k] + 1e-6);
        sw += w;
        sy += w * by[k];
    }
    return sw > 0 ? sy / sw : 0;
}

/* ==== policies ===================================================================== */

#define POL_LOCAL M4A1_POL_LOCAL
#define POL_CLOUD M4A1_POL_CLOUD
#define POL_RANDOM M4A1_POL_RANDOM
#define POL_LCIO M4A1_POL_LCIO
#define POL_LCIO_TAB M4A1_POL_LCIO_TAB
#define POL_FERRY M4A1_POL_FERRY
#define POL__N M4A1_POL__N
static const char *const g_pol_names[POL__N] = {"local", "cloud", "random", "lcio",
                                                    "lcio-tab", "ferry"};

const char *m4a1_policy_name(int pol) { return pol >= 0 && pol < POL__N ? g_pol_names[pol] : "?"; }

#define NCTX_PREV (M4A1_NACT + 1)
#define NBUD 4

struct qcell { double q; long n; double r_sum, r_sq; };

/* ferry's response statistics for one exact observed history: the LCIO observation
 * (last 5 turns' previous action and task; the views follow from the action) packed
 * into key, and per action the responses seen there. */
#define HIST_CAP (1u << 14)           /* slots; ~5 400 histories on the sample's 80 */
#define HIST_MAX (HIST_CAP / 4 * 3)   /* at most this many: later ones fall back */
#define FERRY_ONPOLICY_EPOCHS 100
struct hcell { uint64_t key; struct qcell c[M4A1_NACT]; };
struct htab { struct hcell *slot; unsigned n; }; /* open addressing; key 0 = empty */

struct agent {
    /* lcio: tabular Q over (previous action, task, budget bucket) × action, with the
     * Lagrangian reward and dual variables */
    struct qcell q[NCTX_PREV][M4A1_NTASK][NBUD][M4A1_NACT];
    double lam_l, lam_c;
    /* ferry: immediate response statistics per (previous action, task) × action, and
     * per exact observed history (hist, keyed by hist_key_of) × action */
    struct qcell r[NCTX_PREV][M4A1_NTASK][M4A1_NACT];
    struct htab *hist;  /* not owned */
    double rem_turns[M4A1_MAX_TURNS + 1]; /* E[N − t | N > t] over training dialogues */
    double z, slack;  /* ferry: LCB width and pacing slack, chosen on the training dialogues */
    double p_task[M4A1_NTASK][M4A1_NTASK]; /* P(next task | task), training dialogues */
    double p_cont[M4A1_MAX_TURNS];         /* P(turn t + 1 exists | turn t exists) */
    double assoc_mean[M4A1_NACT];          /* mean norm_assoc of each action */
    const struct a2c *net; /* lcio: the trained RC-A2C actor-critic (rc_train) */
};

struct step_ctx {
    const struct m4a1_dialogue *d;
    int t;
    const int *acts;
    double rem_s, rem_usd;
};

static int bud_bucket(const struct step_ctx *c)
{
    double f = fmin(c->rem_s / BUDGET_S, c->rem_usd / BUDGET_USD);
    if (f <= 0) return 0;
    int b = 1 + (int)(f * (NBUD - 1));
    return b >= NBUD ? NBUD - 1 : b;
}

static int prev_of(const struct step_ctx *c) { return c->t > 0 ? c->acts[c->t - 1] + 1 : 0; }

/* The observation of c (what observe() fills) as per-slot codes, newest first: 0 before
 * the dialogue, else 1 + (previous action + 1)·4 + task (1..40). */
static void hist_codes(const struct step_ctx *c, int code[M4A1_HIST])
{
    for (int h = 0; h < M4A1_HIST; h++) {
        int j = c->t - h;
        code[h] = j < 0 ? 0 : 1 + (j > 0 ? c->acts[j - 1] + 1 : 0) * M4A1_NTASK + c->d->turn[j].task;
    }
}

/* The codes as one non-zero number (base 41). */
static uint64_t hist_key_of(const int code[M4A1_HIST])
{
    uint64_t k = 1;
    for (int h = 0; h < M4A1_HIST; h++) k = k * 41 + (uint64_t)code[h];
    return k;
}

/* The statistics of history key k; creates them when create != 0. NULL when absent, or
 * when new and the table holds HIST_MAX already (the caller falls back). Linear probing;
 * the load factor stays ≤ 3/4, so an empty slot ends every search. */
static struct hcell *hist_find(struct htab *t, uint64_t k, int create)
{
    if (!t) return NULL;
    uint64_t h = k * 0x9E3779B97F4A7C15ull;
    for (uint32_t i = 0; i < HIST_CAP; i++) {
        struct hcell *s = &t->slot[((uint32_t)(h >> 40) + i) & (HIST_CAP - 1)];
        if (s->key == k) return s;
        if (s->key == 0) {
            if (!create || t->n >= HIST_MAX) return NULL;
            s->key = k;
            t->n++;
            return s;
        }
    }
    return NULL;
}

static int fits(const struct step_ctx *c, int a)
{
    return act_lat(a) <= c->rem_s && act_cost(a) <= c->rem_usd;
}

static int lcio_pick(const struct agent *ag, const struct step_ctx *c, double eps, struct rng *r)
{
    int p = prev_of(c), task = c->d->turn[c->t].task, b = bud_bucket(c);
    if (eps > 0 && rng_uniform(r) < eps) return (int)rng_below(r, M4A1_NACT);
    int best = 0;
    for (int a = 1; a < M4A1_NACT; a++)
        if (ag->q[p][task][b][a].q > ag->q[p][task][b][best].q) best = a;
    return best;
}

/* ferry's estimate of the response of action a in the history code[]: the statistics
 * of that exact history when it has seen a there, else of (previous action, task);
 * lower confidence bound with width z. 0 (and *known = 0) when it has none. */
static double resp_lcb(const struct agent *ag, const int code[M4A1_HIST], int a, int *known)
{
    const struct hcell *h = hist_find(ag->hist, hist_key_of(code), 0);
    int prev = (code[0] - 1) / M4A1_NTASK, task = (code[0] - 1) % M4A1_NTASK;
    const struct qcell *s = h && h->c[a].n > 0 ? &h->c[a] : &ag->r[prev][task][a];
    *known = s->n > 0;
    if (!s->n) return 0;
    double mean = s->r_sum / s->n, var = s->r_sq / s->n - mean * mean;
    return mean - ag->z * sqrt(var > 0 ? var : 0) / sqrt((double)s->n);
}

/* The value ferry expects from the next turn after action a in history code[] with
 * rem_s / rem_usd left: over the next task (learned transition frequencies) the best
 * estimated reward of an action that fits, the next turn's association taken at its
 * training mean; times the chance that the dialogue goes on after turn t. */
static double next_value(const struct agent *ag, const int code[M4A1_HIST], int t, int a,
                         double rem_s, double rem_usd)
{
    int task = (code[0] - 1) % M4A1_NTASK;
    if (t + 1 >= M4A1_MAX_TURNS || ag->p_cont[t] <= 0) return 0;
    int nc[M4A1_HIST];
    for (int h = M4A1_HIST - 1; h > 0; h--) nc[h] = code[h - 1];
    double v = 0;
    for (int tn = 0; tn < M4A1_NTASK; tn++) {
        double pt = ag->p_task[task][tn];
        if (pt <= 0) continue;
        nc[0] = 1 + (a + 1) * M4A1_NTASK + tn;
        double best = 0;
        int any = 0;
        for (int b = 0; b < M4A1_NACT; b++) {
            if (act_lat(b) > rem_s || act_cost(b) > rem_usd) continue;
            int known;
            double r = resp_lcb(ag, nc, b, &known);
            if (!known) continue;
            r += ag->assoc_mean[b] / 3 - norm_lat(b) / 3 - norm_cost(b) / 3;
            if (!any || r > best) best = r, any = 1;
        }
        v += pt * best;
    }
    return ag->p_cont[t] * v;
}

/* ferry on M4A1: the action with the best lower-confidence reward of this turn plus the
 * expected best reward of the next (look ahead one turn on its learned response model)
 * among those whose latency and cost fit the paced allowance (remaining budget /
 * expected remaining turns, × slack) and the remaining budget; local when none does.
 * z and slack are chosen on the training dialogues (m4a1_replay). */
static int ferry_pick(const struct agent *ag, const struct step_ctx *c)
{
    const struct m4a1_turn *tu = &c->d->turn[c->t];
    double er = ag->rem_turns[c->t < M4A1_MAX_TURNS ? c->t : M4A1_MAX_TURNS];
    if (er < 1) er = 1;
    double allow_s = ag->slack * c->rem_s / er, allow_usd = ag->slack * c->rem_usd / er;
    int code[M4A1_HIST];
    hist_codes(c, code);
    int best = 0;
    double bv = -INFINITY;
    for (int a = 0; a < M4A1_NACT; a++) {
        if (!fits(c, a)) continue;
        if (a > 0 && (act_lat(a) > allow_s || act_cost(a) > allow_usd)) continue;
        int known;
        double lcb = resp_lcb(ag, code, a, &known);
        if (!known) continue;
        double v = lcb + norm_assoc(tu, a) / 3 - norm_lat(a) / 3 - norm_cost(a) / 3;
        v += next_value(ag, code, c->t, a, c->rem_s - act_lat(a), c->rem_usd - act_cost(a));
        if (v > bv) bv = v, best = a;
    }
    return best;
}

/* ferry's statistics of the training dialogues' shape: P(next task | task), P(another
 * turn after turn t) and each action's mean normalised association. */
static void ferry_learn_dialogues(struct agent *ag, const struct m4a1 *m, const int *is_test)
{
    double tr[M4A1_NTASK][M4A1_NTASK] = {{0}}, at[M4A1_MAX_TURNS + 1] = {0}, sa[M4A1_NACT] = {0};
    long nturn = 0;
    for (int i = 0; i < m->n; i++) {
        if (is_test[i]) continue;
        const struct m4a1_dialogue *d = &m->d[i];
        for (int t = 0; t < d->nturns; t++) {
            at[t]++;
            if (t + 1 < d->nturns) tr[d->turn[t].task][d->turn[t + 1].task]++;
            for (int a = 0; a < M4A1_NACT; a++) sa[a] += norm_assoc(&d->turn[t], a);
            nturn++;
        }
    }
    for (int k = 0; k < M4A1_NTASK; k++) {
        double n = 0;
        for (int j = 0; j < M4A1_NTASK; j++) n += tr[k][j];
        for (int j = 0; j < M4A1_NTASK; j++) ag->p_task[k][j] = n > 0 ? tr[k][j] / n : 0;
    }
    for (int t = 0; t < M4A1_MAX_TURNS; t++) ag->p_cont[t] = at[t] > 0 ? at[t + 1] / at[t] : 0;
    for (int a = 0; a < M4A1_NACT; a++) ag->assoc_mean[a] = nturn ? sa[a] / (double)nturn : 0;
}

/* ==== lcio: RC-A2C ================================================================= */

/* Observation of the actor-critic: LCIO's stacked per-turn states (25 numbers, as the
 * kNN sees them) and, as LCIO's resource-constrained variant appends, the remaining
 * latency and money of the dialogue; ours: those two are divided by the evaluation
 * budgets (30 s, 0.05 USD) so that they are O(1) like the rest. */
#define RC_NIN (M4A1_OBS + 2)

static void rc_obs(const struct step_ctx *c, double *x)
{
    observe(c->d, c->t, c->acts, x);
    x[M4A1_OBS] = c->rem_s / BUDGET_S;
    x[M4A1_OBS + 1] = c->rem_usd / BUDGET_USD;
}

static int pick(int pol, const struct agent *ag, const struct step_ctx *c, struct rng *r)
{
    switch (pol) {
    case POL_LOCAL: return 0;
    case POL_CLOUD: return 1 + (int)rng_below(r, M4A1_NACT - 1);
    case POL_RANDOM: return rng_uniform(r) < 0.5 ? 0 : 1 + (int)rng_below(r, M4A1_NACT - 1);
    case POL_LCIO: {
        double x[RC_NIN];
        rc_obs(c, x);
        return a2c_greedy(ag->net, x, NULL);
    }
    case POL_LCIO_TAB: return lcio_pick(ag, c, 0, r);
    default: return ferry_pick(ag, c);
    }
}

/* ==== episodes ===================================================================== */

struct dstats {
    double resp_sum, reward_sum, lat_s, cost_usd;
    int turns, over;
};

/* One dialogue under policy pol (training when train != 0: lcio learns by Q-learning,
 * ferry collects response statistics from uniformly explored actions). */
static void episode(const struct env *e, const struct m4a1_dialogue *d, int pol,
                    struct agent *ag, int train, double eps, struct rng *r, struct dstats *out)
{
    int acts[M4A1_MAX_TURNS];
    struct step_ctx c = {.d = d, .acts = acts, .rem_s = BUDGET_S, .rem_usd = BUDGET_USD};
    memset(out, 0, sizeof *out);
    int prev_s[M4A1_MAX_TURNS][4];
    double lag_r[M4A1_MAX_TURNS];
    for (int t = 0; t < d->nturns; t++) {
        c.t = t;
        int a;
        int hcode[M4A1_HIST];
        hist_codes(&c, hcode);
        if (train && pol == POL_LCIO_TAB) a = lcio_pick(ag, &c, eps, r);
        else if (train && eps < 1 && rng_uniform(r) >= eps) a = ferry_pick(ag, &c);
        else if (train) a = (int)rng_below(r, M4A1_NACT);
        else a = pick(pol, ag, &c, r);
        double obs[M4A1_OBS];
        observe(d, t, acts, obs);
        double resp = env_resp(e, obs, a);
        double rw = resp + norm_assoc(&d->turn[t], a) / 3 - norm_lat(a) / 3 - norm_cost(a) / 3;
        prev_s[t][0] = prev_of(&c);
        prev_s[t][1] = d->turn[t].task;
        prev_s[t][2] = bud_bucket(&c);
        prev_s[t][3] = a;
        c.rem_s -= act_lat(a);
        c.rem_usd -= act_cost(a);
        if (c.rem_s < 0 || c.rem_usd < 0) rw = 0; /* LCIO: no reward past the budget */
        acts[t] = a;
        out->resp_sum += resp;
        out->reward_sum += rw;
        out->lat_s += act_lat(a);
        out->cost_usd += act_cost(a);
        out->turns++;
        lag_r[t] = rw - ag->lam_l * act_lat(a) / BUDGET_S - ag->lam_c * act_cost(a) / BUDGET_USD;
        if (train && pol == POL_FERRY) {
            struct qcell *s = &ag->r[prev_s[t][0]][prev_s[t][1]][a];
            s->n++;
            s->r_sum += resp;
            s->r_sq += resp * resp;
            struct hcell *h = hist_find(ag->hist, hist_key_of(hcode), 1);
            if (h) {
                h->c[a].n++;
                h->c[a].r_sum += resp;
                h->c[a].r_sq += resp * resp;
            }
        }
    }
    out->over = out->lat_s > BUDGET_S + 1e-9 || out->cost_usd > BUDGET_USD + 1e-12;
    if (train && pol == POL_LCIO_TAB) {
        /* Q-learning backwards over the episode (γ = 1): target = Lagrangian reward +
         * greedy value of the next state; step size 1/n, at least 0.05 */
        for (int t = d->nturns - 1; t >= 0; t--) {
            double next = 0;
            if (t + 1 < d->nturns) {
                const struct qcell *row = ag->q[prev_s[t + 1][0]][prev_s[t + 1][1]][prev_s[t + 1][2]];
                next = row[0].q;
                for (int b = 1; b < M4A1_NACT; b++)
                    if (row[b].q > next) next = row[b].q;
            }
            struct qcell *q = &ag->q[prev_s[t][0]][prev_s[t][1]][prev_s[t][2]][prev_s[t][3]];
            q->n++;
            double alpha = 1.0 / q->n < 0.05 ? 0.05 : 1.0 / q->n;
            q->q += alpha * (lag_r[t] + next - q->q);
        }
        /* dual ascent on the per-dialogue budgets */
        const double eta = 0.02;
        ag->lam_l = fmax(0, ag->lam_l + eta * (out->lat_s / BUDGET_S - 1));
        ag->lam_c = fmax(0, ag->lam_c + eta * (out->cost_usd / BUDGET_USD - 1));
    }
}

/* ==== RC-A2C training =============================================================== */

#define RC_GAMMA   0.99   /* discount (SB3 A2C default, LCIO trains with it) */
#define RC_LAM_MAX 10.0   /* cap on the multipliers (ours) */

/* A training episode's budget (LCIO, constraint_distribution "normal"): N(mid, (hi −
 * lo)/6) clipped to [lo, hi], lo = 5 × local, hi = 5 × cloud with all three views. */
static double rc_budget(struct rng *r, double lo, double hi)
{
    double v = rng_normal(r, 0.5 * (lo + hi), (hi - lo) / 6);
    return v < lo ? lo : v > hi ? hi : v;
}

/* Trains RC-A2C on the training dialogues train[0..ntrain-1] for o->steps turns:
 * episodes on uniformly drawn dialogues with sampled budgets; actions drawn from π;
 * step reward as LCIO's environment (0 once a remaining budget is negative) minus
 * λ_L·lat/B_L + λ_C·cost/B_C (B = the episode's budgets); Monte-Carlo returns with γ
 * (a dialogue has at most 5 turns = SB3's n_steps); after each episode λ ← dual step on
 * the episode's spend against its budget. lam_out gets the final (λ_L, λ_C) and their
 * peaks during training. NULL on out of memory. */
static struct a2c *rc_train(const struct env *e, const struct m4a1 *m, const int *train,
                            int ntrain, const struct m4a1_opts *o, struct rng *r,
                            double lam_out[4])
{
    struct a2c_cfg cfg;
    a2c_cfg_default(&cfg, RC_NIN, M4A1_NACT);
    cfg.nhid = o->nhid;
    cfg.lr = o->lr;
    cfg.ent_coef = o->ent_coef;
    struct a2c *net = a2c_new(&cfg, r);
    if (!net) return NULL;
    double lam_l = 0, lam_c = 0, peak_l = 0, peak_c = 0;
    for (long steps = 0; steps < o->steps;) {
        const struct m4a1_dialogue *d = &m->d[train[rng_below(r, (uint64_t)ntrain)]];
        double b_s = BUDGET_S, b_usd = BUDGET_USD;
        if (o->sampled_budgets) {
            b_s = rc_budget(r, 5 * LOCAL_S, 5 * g_cloud_s[3]);
            b_usd = rc_budget(r, 5 * LOCAL_USD, 5 * g_cloud_usd[3]);
        }
        int acts[M4A1_MAX_TURNS];
        double x[M4A1_MAX_TURNS][RC_NIN], rw[M4A1_MAX_TURNS], spend_s = 0, spend_usd = 0;
        struct step_ctx c = {.d = d, .acts = acts, .rem_s = b_s, .rem_usd = b_usd};
        for (int t = 0; t < d->nturns; t++) {
            c.t = t;
            rc_obs(&c, x[t]);
            int a = a2c_sample(net, x[t], NULL, r);
            double v = env_resp(e, x[t], a) + norm_assoc(&d->turn[t], a) / 3 - norm_lat(a) / 3 -
                       norm_cost(a) / 3;
            c.rem_s -= act_lat(a);
            c.rem_usd -= act_cost(a);
            if (c.rem_s < 0 || c.rem_usd < 0) v = 0;
            spend_s += act_lat(a);
            spend_usd += act_cost(a);
            rw[t] = v - lam_l * act_lat(a) / b_s - lam_c * act_cost(a) / b_usd;
            acts[t] = a;
        }
        double g = 0;
        for (int t = d->nturns - 1; t >= 0; t--) {
            g = rw[t] + RC_GAMMA * g;
            a2c_update(net, x[t], NULL, acts[t], g);
        }
        lam_l = a2c_dual_step(lam_l, o->dual_eta, spend_s, b_s, RC_LAM_MAX);
        lam_c = a2c_dual_step(lam_c, o->dual_eta, spend_usd, b_usd, RC_LAM_MAX);
        peak_l = fmax(peak_l, lam_l);
        peak_c = fmax(peak_c, lam_c);
        steps += d->nturns;
    }
    lam_out[0] = lam_l;
    lam_out[1] = lam_c;
    lam_out[2] = peak_l;
    lam_out[3] = peak_c;
    return net;
}

/* ==== MGQP on the logged scores ==================================================== */

/* Request features of a logged turn, computed as the gateway computes them for a live
 * request (feat/text.h: token estimate, MoA-Off text scores, hashed word uni/bigrams),
 * plus the task category as an extra hashed word ("m4a1task0".."m4a1task3"), and the
 * three views as images whose complexity is the view's association score. */
static void turn_features(const struct m4a1_dialogue *d, int t, int with_text,
                          struct fy_features *f)
{
    const struct m4a1_turn *tu = &d->turn[t];
    memset(f, 0, sizeof *f);
    size_t n = with_text ? strlen(tu->question) : 0;
    struct feat_text_stats st;
    feat_text_stats(tu->question, n, NULL, &st);
    feat_text_ngrams_add(f->ngram, tu->question, n);
    char task[16];
    snprintf(task, sizeof task, "m4a1task%d", tu->task);
    for (int k = 0; k < 2; k++) feat_text_ngrams_add(f->ngram, task, strlen(task));
    feat_text_ngrams_normalize(f->ngram);
    f->text_tokens = f->last_text_tokens = st.tokens;
    f->sentences = st.sentences;
    f->c_L = st.c_L;
    f->c_ner = st.c_ner;
    f->c_text = st.c_text;
    f->turn = t;
    f->task = FY_TASK_CHAT;
    f->nimages = 3;
    for (int k = 0; k < 3; k++) f->img[k].c_img = fmin(1, fmax(0, (tu->assoc[k] - 0.13) / 0.15));
}

void m4a1_turn_features(const struct m4a1_dialogue *d, int t, int with_text,
                        struct fy_features *f)
{
    turn_features(d, t, with_text, f);
}

static void turn_plan(int a, struct fy_plan *p)
{
    memset(p, 0, sizeof *p);
    p->node = m4a1_action_cloud(a);
    p->aux_node = -1;
    for (int k = 0; k < 3; k++) p->img[k] = (g_views[a] >> k & 1) ? FY_IMG_KEEP : FY_IMG_DROP;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Trains MGQP (nodes local and cloud) on the training dialogues' logged turns with
 * label score > median(training scores), returns held-out AUC (and the AUC of the
 * untrained prior). with_text = 0 leaves the question text out (task, node, views,
 * turn only): the reference that shows what the text adds. */
static double mgqp_auc(const struct m4a1 *m, const int *is_test, int with_text,
                       double *auc_prior, double *brier)
{
    struct fy_node nodes[2];
    memset(nodes, 0, sizeof nodes);
    snprintf(nodes[0].name, sizeof nodes[0].name, "local");
    snprintf(nodes[1].name, sizeof nodes[1].name, "cloud");
    nodes[1].role = FY_ROLE_CLOUD;
    struct pred *p = pred_new(nodes, 2), *p0 = pred_new(nodes, 2);
    double *sc = malloc(sizeof(double) * 4096);
    struct pred__qpair *q = malloc(sizeof *q * 4096), *q0 = malloc(sizeof *q0 * 4096);
    double auc = NAN;
    if (!p || !p0 || !sc || !q || !q0) goto cleanup;
    int ns = 0;
    for (int i = 0; i < m->n; i++)
        if (!is_test[i])
            for (int t = 0; t < m->d[i].nturns && ns < 4096; t++) sc[ns++] = m->d[i].turn[t].score;
    qsort(sc, (size_t)ns, sizeof *sc, cmp_d);
    double med = ns ? sc[ns / 2] : 0;
    struct fy_features f;
    struct fy_plan plan;
    for (int ep = 0; ep < 3; ep++)
        for (int i = 0; i < m->n; i++) {
            if (is_test[i]) continue;
            for (int t = 0; t < m->d[i].nturns; t++) {
                turn_features(&m->d[i], t, with_text, &f);
                turn_plan(m->d[i].turn[t].action, &plan);
                mgqp_observe(&p->node[plan.node].mgqp, &f, &plan, m->d[i].turn[t].score > med);
            }
        }
    size_t n = 0;
    double b = 0;
    for (int i = 0; i < m->n; i++) {
        if (!is_test[i]) continue;
        for (int t = 0; t < m->d[i].nturns && n < 4096; t++) {
            turn_features(&m->d[i], t, with_text, &f);
            turn_plan(m->d[i].turn[t].action, &plan);
            double y = m->d[i].turn[t].score > med;
            double s = mgqp_predict(&p->node[plan.node].mgqp, &f, &plan, NULL);
            b += (s - y) * (s - y);
            q[n] = (struct pred__qpair){s, y};
            q0[n] = (struct pred__qpair){mgqp_predict(&p0->node[plan.node].mgqp, &f, &plan, NULL), y};
            n++;
        }
    }
    auc = pred__auc(q, n);
    *auc_prior = pred__auc(q0, n);
    *brier = n ? b / n : NAN;
cleanup:
    free(sc);
    free(q);
    free(q0);
    pred_free(p);
    pred_free(p0);
    return auc;
}

/* ==== replay ====================================================================== */

void m4a1_opts_default(struct m4a1_opts *o)
{
    o->seeds = 3;
    o->epochs = 300;
    o->steps = 100000;
    o->nhid = 64;
    o->lr = 7e-4;
    o->dual_eta = 0.05;
    o->ent_coef = 0;
    o->sampled_budgets = 0;
    o->seed = 1000;
    o->test_share = 0.2;
}

static void acc_add(double *sum, double *sq, double v)
{
    *sum += v;
    *sq += v * v;
}

int m4a1_replay(const struct m4a1 *m, const struct m4a1_opts *o, struct m4a1_report *rep)
{
    struct env e = {0};
    int rc = -1;
    struct agent *ag = calloc(2, sizeof *ag);
    struct htab hist = {calloc(HIST_CAP, sizeof *hist.slot), 0};
    struct a2c *net = NULL;
    int *is_test = calloc((size_t)m->n, sizeof *is_test), *order = calloc((size_t)m->n, sizeof *order);
    struct m4a1_result sq[POL__N];
    memset(rep, 0, sizeof *rep);
    memset(sq, 0, sizeof sq);
    if (m->n < 2) goto cleanup; /* nothing to hold out */
    if (!ag || !hist.slot || !is_test || !order || env_build(&e, m) < 0) goto cleanup;
    for (int i = 0; i < m->n; i++)
        for (int t = 0; t < m->d[i].nturns; t++) {
            rep->turns++;
            rep->refusals += m->d[i].turn[t].refusal;
        }
    int nauc = 0;
    for (int s = 0; s < o->seeds; s++) {
        struct rng r;
        rng_seed(&r, o->seed + (uint64_t)s);
        for (int i = 0; i < m->n; i++) order[i] = i;
        for (int i = m->n - 1; i > 0; i--) {
            int j = (int)rng_below(&r, (uint64_t)i + 1), t = order[i];
            order[i] = order[j];
            order[j] = t;
        }
        int ntest = (int)(m->n * o->test_share + 0.5);
        if (ntest < 1) ntest = 1;
        if (ntest >= m->n) ntest = m->n - 1;
        for (int i = 0; i < m->n; i++) is_test[order[i]] = i < ntest;
        /* train on the other dialogues */
        memset(ag, 0, 2 * sizeof *ag);
        memset(hist.slot, 0, sizeof *hist.slot * HIST_CAP);
        hist.n = 0;
        ag[1].hist = &hist;
        struct dstats ds;
        long cnt[M4A1_MAX_TURNS + 1] = {0}, rem[M4A1_MAX_TURNS + 1] = {0};
        for (int i = 0; i < m->n; i++) {
            if (is_test[i]) continue;
            for (int t = 0; t < m->d[i].nturns; t++) {
                cnt[t]++;
                rem[t] += m->d[i].nturns - t;
            }
        }
        for (int t = 0; t <= M4A1_MAX_TURNS; t++)
            ag[1].rem_turns[t] = cnt[t] ? (double)rem[t] / cnt[t] : 1;
        ferry_learn_dialogues(&ag[1], m, is_test);
        for (int ep = 0; ep < o->epochs; ep++) {
            double eps = fmax(0.05, 1.0 - 2.0 * ep / o->epochs);
            for (int k = ntest; k < m->n; k++) {
                const struct m4a1_dialogue *d = &m->d[order[k]];
                episode(&e, d, POL_LCIO_TAB, &ag[0], 1, eps, &r, &ds);
                if (ep < 20) episode(&e, d, POL_FERRY, &ag[1], 1, 1, &r, &ds);
            }
        }
        /* ferry then explores around its own choices (ε = 0.2), so that the histories
         * it creates have statistics of their own */
        ag[1].z = 1;
        ag[1].slack = 1.5;
        for (int ep = 0; ep < FERRY_ONPOLICY_EPOCHS; ep++)
            for (int k = ntest; k < m->n; k++)
                episode(&e, &m->d[order[k]], POL_FERRY, &ag[1], 1, 0.2, &r, &ds);
        /* ferry's two parameters: the best mean reward on the training dialogues */
        {
            static const double zs[] = {0, 0.5, 1, 2}, slacks[] = {1, 1.5, 2, 3, 1e9};
            double best = -INFINITY, bz = 1, bsl = 1.5;
            for (size_t zi = 0; zi < sizeof zs / sizeof zs[0]; zi++)
                for (size_t si = 0; si < sizeof slacks / sizeof slacks[0]; si++) {
                    ag[1].z = zs[zi];
                    ag[1].slack = slacks[si];
                    double rw = 0;
                    for (int k = ntest; k < m->n; k++) {
                        episode(&e, &m->d[order[k]], POL_FERRY, &ag[1], 0, 0, &r, &ds);
                        rw += ds.reward_sum;
                    }
                    if (rw > best + 1e-9) best = rw, bz = zs[zi], bsl = slacks[si];
                }
            ag[1].z = bz;
            ag[1].slack = bsl;
        }
        /* lcio: RC-A2C, on its own random stream (the others' draws stay as they were) */
        {
            struct rng rr;
            rng_seed(&rr, 5000 + o->seed + (uint64_t)s);
            a2c_free(net);
            double lam[4];
            net = rc_train(&e, m, order + ntest, m->n - ntest, o, &rr, lam);
            if (!net) goto cleanup;
            rep->lam_l += lam[0] / o->seeds;
            rep->lam_c += lam[1] / o->seeds;
            rep->lam_peak_l += lam[2] / o->seeds;
            rep->lam_peak_c += lam[3] / o->seeds;
            ag[0].net = net;
        }
        /* evaluate every policy on the held-out dialogues */
        for (int pol = 0; pol < POL__N; pol++) {
            double resp = 0, turns = 0, reward = 0, lat = 0, cost = 0, over = 0;
            struct rng er;
            rng_seed(&er, 77 + (uint64_t)s);
            for (int k = 0; k < ntest; k++) {
                episode(&e, &m->d[order[k]], pol, pol == POL_FERRY ? &ag[1] : &ag[0], 0, 0, &er,
                        &ds);
                resp += ds.resp_sum;
                turns += ds.turns;
                reward += ds.reward_sum;
                lat += ds.lat_s;
                cost += ds.cost_usd;
                over += ds.over;
            }
            struct m4a1_result *a = &rep->pol[pol], *q = &sq[pol];
            acc_add(&a->resp, &q->resp, resp / turns);
            acc_add(&a->reward, &q->reward, reward / ntest);
            acc_add(&a->lat_s, &q->lat_s, lat / ntest);
            acc_add(&a->cost_usd, &q->cost_usd, cost / ntest);
            acc_add(&a->over, &q->over, over / ntest);
            if (over / ntest > a->max_over) a->max_over = over / ntest;
        }
        double a0, br, a0n, brn;
        double a = mgqp_auc(m, is_test, 1, &a0, &br);
        double an = mgqp_auc(m, is_test, 0, &a0n, &brn);
        if (isfinite(a) && isfinite(a0) && isfinite(an)) {
            rep->auc_notext += an;
            rep->auc += a;
            rep->auc_prior += a0;
            rep->brier += br;
            nauc++;
        }
    }
    double n = o->seeds;
    for (int p = 0; p < POL__N; p++) {
        struct m4a1_result *a = &rep->pol[p];
        const struct m4a1_result *q = &sq[p];
#define FIN(f) do { a->f /= n; a->sd_##f = sqrt(fmax(0, q->f / n - a->f * a->f)); } while (0)
        FIN(resp);
        FIN(reward);
        FIN(lat_s);
        FIN(cost_usd);
        FIN(over);
#undef FIN
    }
    if (nauc) {
        rep->auc /= nauc;
        rep->auc_notext /= nauc;
        rep->auc_prior /= nauc;
        rep->brier /= nauc;
    } else {
        rep->auc = rep->auc_prior = rep->brier = rep->auc_notext = NAN;
    }
    rc = 0;
cleanup:
    env_fini(&e);
    a2c_free(net);
    free(hist.slot);
    free(ag);
    free(is_test);
    free(order);
    return rc;
}

/* ==== the command ================================================================== */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry bench m4a1 M4A1.json [options]\n"
            "\n"
            "Replays the M4A1 dialogues in LCIO's environment (kNN outcome model, TX2 +\n"
            "wired tables, budgets 30 s and 0.05 USD per dialogue). For each seed the\n"
            "dialogues are split by dialogue; lcio (RC-A2C), lcio-tab (tabular primal-dual\n"
            "Q-learning) and ferry learn on the training part, every policy (local, cloud,\n"
            "random, lcio, lcio-tab, ferry) is scored on the held-out part. Prints means\n"
            "± sd over seeds and MGQP's held-out AUC for \"score above the training\n"
            "median\". docs/policies.md \"lcio\", docs/results.md.\n"
            "\n"
            "  --seeds N            split seeds S, S+1, ... (default 3, at most 100)\n"
            "  --seed S             the first split seed (default 1000)\n"
            "  --test-share F       share of dialogues held out, 0 < F < 1 (default 0.2)\n"
            "  --epochs N           lcio-tab's training passes (default 300)\n"
            "RC-A2C (lcio):\n"
            "  --steps N            training turns (default 100000)\n"
            "  --hidden N           hidden units (default 64, at most %d; 0 = linear)\n"
            "  --lr F               RMSprop step (default 7e-4)\n"
            "  --dual-eta F         Lagrange multiplier step (default 0.05)\n"
            "  --ent F              entropy bonus (default 0)\n"
            "  --train-budgets eval|sampled\n"
            "                       budgets while training: the evaluation's (30 s, 0.05\n"
            "                       USD; default) or LCIO's per-episode draws\n"
            "  -h, --help           this text\n"
            "\n"
            "Exit status: 0, 1 when M4A1.json could not be read, 2 on a usage error.\n",
            A2C_MAX_HID);
}

/* Option values are parsed whole (no trailing characters, no overflow) and checked
 * against their range; a bad one is named with its value. 0 or -1 after the message. */
static int opt_long(const char *opt, const char *v, long lo, long hi, long *out)
{
    if (util_parse_long(v, lo, hi, out) < 0) {
        fprintf(stderr, "ferry bench m4a1: %s '%s': expected an integer in [%ld, %ld]\n", opt,
                v, lo, hi);
        return -1;
    }
    return 0;
}

static int opt_int(const char *opt, const char *v, long lo, long hi, int *out)
{
    long n;
    if (opt_long(opt, v, lo, hi, &n) < 0) return -1;
    *out = (int)n;
    return 0;
}

/* open_lo / open_hi: the bound itself is excluded */
static int opt_num(const char *opt, const char *v, double lo, double hi, int open_lo,
                   int open_hi, double *out)
{
    double d;
    if (util_parse_double(v, lo, hi, &d) < 0 || (open_lo && d == lo) || (open_hi && d == hi)) {
        fprintf(stderr, "ferry bench m4a1: %s '%s': expected a number in %c%g, %g%c\n", opt, v,
                open_lo ? '(' : '[', lo, hi, open_hi ? ')' : ']');
        return -1;
    }
    *out = d;
    return 0;
}

int m4a1_main(int argc, char **argv)
{
    const char *path = NULL;
    struct m4a1_opts o;
    m4a1_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int bad = 0;
        long seed;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(a, "--seeds") || !strcmp(a, "--epochs") ||
                   !strcmp(a, "--test-share") || !strcmp(a, "--steps") ||
                   !strcmp(a, "--hidden") || !strcmp(a, "--lr") ||
                   !strcmp(a, "--dual-eta") || !strcmp(a, "--seed") ||
                   !strcmp(a, "--ent") || !strcmp(a, "--train-budgets")) {
            if (!v) {
                fprintf(stderr, "ferry bench m4a1: %s needs a value (try --help)\n", a);
                return 2;
            }
            i++;
            if (!strcmp(a, "--seeds")) bad = opt_int(a, v, 1, 100, &o.seeds);
            else if (!strcmp(a, "--epochs")) bad = opt_int(a, v, 1, 100000, &o.epochs);
            else if (!strcmp(a, "--test-share")) bad = opt_num(a, v, 0, 1, 1, 1, &o.test_share);
            else if (!strcmp(a, "--steps")) bad = opt_int(a, v, 1, 100000000, &o.steps);
            else if (!strcmp(a, "--hidden")) bad = opt_int(a, v, 0, A2C_MAX_HID, &o.nhid);
            else if (!strcmp(a, "--lr")) bad = opt_num(a, v, 0, 1, 1, 0, &o.lr);
            else if (!strcmp(a, "--dual-eta")) bad = opt_num(a, v, 0, 10, 0, 0, &o.dual_eta);
            else if (!strcmp(a, "--ent")) bad = opt_num(a, v, 0, 10, 0, 0, &o.ent_coef);
            else if (!strcmp(a, "--seed")) {
                bad = opt_long(a, v, 0, 4294967295L, &seed);
                o.seed = (unsigned)seed;
            } else if (!strcmp(v, "sampled")) o.sampled_budgets = 1;
            else if (!strcmp(v, "eval")) o.sampled_budgets = 0;
            else {
                fprintf(stderr, "ferry bench m4a1: --train-budgets '%s': expected sampled or "
                        "eval\n", v);
                return 2;
            }
            if (bad) return 2;
        } else if (a[0] == '-') {
            fprintf(stderr, "ferry bench m4a1: unknown option %s (try --help)\n", a);
            return 2;
        } else if (path) {
            fprintf(stderr, "ferry bench m4a1: one M4A1.json at a time (got %s and %s)\n",
                    path, a);
            return 2;
        } else {
            path = a;
        }
    }
    if (!path) {
        fprintf(stderr, "ferry bench m4a1: no M4A1.json given (try --help)\n");
        return 2;
    }
    struct m4a1 m;
    char err[512];
    if (m4a1_load(path, &m, err, sizeof err) < 0) {
        fprintf(stderr, "ferry bench m4a1: %s\n", err);
        return 1;
    }
    if (m.n < 2) {
        fprintf(stderr, "ferry bench m4a1: %s: 1 dialogue; the replay needs at least 2 (one to "
                "train on, one to hold out)\n", path);
        m4a1_fini(&m);
        return 1;
    }
    struct m4a1_report rep;
    if (m4a1_replay(&m, &o, &rep) < 0) {
        fprintf(stderr, "ferry bench m4a1: out of memory\n");
        m4a1_fini(&m);
        return 1;
    }
    printf("M4A1 replay: %s: %d dialogues, %d turns (%d refusals scored 0); LCIO environment,\n"
           "TX2 local + wired cloud, budgets %.0f s and %.2f USD per dialogue; %d seed%s,\n"
           "%.0f %% of dialogues held out; trained on the rest: lcio (RC-A2C) %d steps,\n"
           "%s budgets; lcio-tab (tabular Q) %d epochs.\n\n",
           path, m.n, rep.turns, rep.refusals, BUDGET_S, BUDGET_USD, o.seeds,
           o.seeds > 1 ? "s" : "", 100 * o.test_share, o.steps,
           o.sampled_budgets ? "LCIO's sampled" : "evaluation", o.epochs);
    printf("%-8s %18s %18s %18s %20s %14s\n", "policy", "response/turn", "reward/dialogue",
           "latency s/dlg", "cost 1e-3 USD/dlg", "over budget %");
    for (int p = 0; p < POL__N; p++) {
        const struct m4a1_result *a = &rep.pol[p];
        printf("%-8s %10.3f ± %5.3f %10.3f ± %5.3f %10.2f ± %5.2f %12.2f ± %5.2f %8.1f ± %4.1f\n",
               g_pol_names[p], a->resp, a->sd_resp, a->reward, a->sd_reward, a->lat_s,
               a->sd_lat_s, 1e3 * a->cost_usd, 1e3 * a->sd_cost_usd, 100 * a->over,
               100 * a->sd_over);
    }
    printf("\nMGQP on logged scores (label: score > training median): held-out AUC %.3f "
           "(without the question text %.3f, untrained prior %.3f), Brier %.3f; mean over "
           "%d seed%s\n",
           rep.auc, rep.auc_notext, rep.auc_prior, rep.brier, o.seeds, o.seeds > 1 ? "s" : "");
    printf("lcio (RC-A2C) Lagrange multipliers after training: latency %.3f, cost %.3f; peak "
           "during training %.3f, %.3f (means over seeds)\n",
           rep.lam_l, rep.lam_c, rep.lam_peak_l, rep.lam_peak_c);
    m4a1_fini(&m);
    return 0;
}
