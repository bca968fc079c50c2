/* load — `ferry bench load`: a mixed workload over real HTTP (load.h). */
#include "emu/load.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "emu/dataset.h"
#include "emu/reply.h"
#include "emu/score.h"
#include "gw/config.h"
#include "util/buf.h"
#include "util/clock.h"
#include "util/file.h"
#include "util/rng.h"

#define M4A1_MAX_FILE (64u << 20)
#define MAX_TURNS 4
#define REF_MAX 200 /* bytes of a dialogue reference answer (the request model takes 255) */

/* Camera views of the dialogues (LCIO's three views), from the shared images. */
static const char *const g_views[] = {
    "images/photo-coffee.webp", "images/photo-cups-progressive.jpg",
    "images/photo-camera-gray.png",
};

/* Sentences of the long-text passages (ferry's own prose). */
static const char *const g_sentences[] = {
    "The harbour office opens at dawn and closes when the last ferry is moored.",
    "Every crossing is logged with its departure time, its load and the weather.",
    "In winter the northern route is shortened because ice forms near the breakwater.",
    "Passengers with bicycles board first, followed by cars and then foot passengers.",
    "The engine room keeps a spare set of filters for each of the three main pumps.",
    "A new timetable is printed every spring and posted at both landing stages.",
    "The crew practise a man-overboard drill on the first Monday of each month.",
    "Freight manifests are checked against the scale readings before departure.",
    "On foggy mornings the captain sounds the horn twice before leaving the quay.",
    "The café on the upper deck sells soup, bread and hot tea during the crossing.",
};
#define NSENT (sizeof g_sentences / sizeof g_sentences[0])

enum conv_kind { CONV_IMAGE = 0, CONV_SHORT, CONV_LONG, CONV_DIALOGUE };
static const char *const g_kind_names[] = {"image", "short", "long", "dialogue"};

struct conv {
    enum conv_kind kind;
    int nturns, sent;             /* turns planned / started */
    char *q[MAX_TURNS];           /* user text per turn (malloc'd) */
    char *ref[MAX_TURNS];         /* reference answer per turn (malloc'd) */
    enum emu_score_kind sk[MAX_TURNS];
    char skill[MAX_TURNS][32];    /* quality model skill (cap.<skill> of the node's model) */
    double diff[MAX_TURNS];
    int stream[MAX_TURNS];
    int max_tokens;
    const struct emu_item *item;  /* CONV_IMAGE */
    int item_idx;
    const char *view;             /* CONV_DIALOGUE: image path of turn 0 */
    cJSON *history;               /* messages so far (dialogues) */
    char session[32];
};

struct dlg {                      /* one M4A1 dialogue: questions and logged answers */
    int n;
    char *q[MAX_TURNS], *a[MAX_TURNS];
    double score[MAX_TURNS];
    char skill[MAX_TURNS][16];    /* from task_cat: assist, edit, query, recommend */
};

struct rec {                      /* outcome of one request */
    int ok, node;
    double e2e_ms, ttft_ms, score, cost;
};

struct lx {                       /* one transfer */
    struct emu_post post;
    int feedback;                 /* a POST /v1/feedback */
    struct conv *c;
    int turn;
    double t0;
    char node[FY_NAME_MAX];
    char req_id[96];
};

void emu_load_opts_default(struct emu_load_opts *o)
{
    memset(o, 0, sizeof *o);
    o->dataset = "data/collect/mini.jsonl";
    o->model = "ferry";
    o->requests = 60;
    o->concurrency = 4;
    o->seed = 1;
    o->stream_share = 0.3;
    o->feedback = 1;
    o->timeout_ms = 120000;
}

/* ==== workload ======================================================================== */

static char *xstrdup_cut(const char *s, size_t max)
{
    size_t n = strlen(s);
    if (n > max) {
        n = max;
        while (n > 0 && s[n] != ' ') n--; /* cut at a space: never inside UTF-8 */
        if (!n) n = 0;
    }
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

/* Reads questions, logged answers and scores of the M4A1 dialogues. */
static int load_m4a1(const char *path, struct dlg **out, int *n, char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    uint8_t *text;
    size_t len;
    if (util_read_file(path, M4A1_MAX_FILE, &text, &len, err, errlen) < 0) return -1;
    cJSON *root = cJSON_ParseWithLength((const char *)text, len);
    free(text);
    if (!cJSON_IsArray(root)) {
        snprintf(err, errlen, "%s: expected a JSON array of dialogues", path);
        cJSON_Delete(root);
        return -1;
    }
    int cnt = cJSON_GetArraySize(root);
    struct dlg *d = calloc((size_t)(cnt ? cnt : 1), sizeof *d);
    if (!d) {
        cJSON_Delete(root);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    int nd = 0;
    const cJSON *dj;
    cJSON_ArrayForEach(dj, root) {
        const cJSON *turns = cJSON_GetObjectItemCaseSensitive(dj, "interactions");
        const cJSON *t;
        struct dlg *x = &d[nd];
        cJSON_ArrayForEach(t, turns) {
            const cJSON *q = cJSON_GetObjectItemCaseSensitive(t, "question");
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(t, "answer");
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(t, "score");
            if (x->n >= MAX_TURNS || !cJSON_IsString(q) || !cJSON_IsString(a)) continue;
            x->q[x->n] = xstrdup_cut(q->valuestring, 2000);
            x->a[x->n] = xstrdup_cut(a->valuestring, REF_MAX);
            x->score[x->n] = cJSON_IsNumber(s) ? s->valuedouble : 0.5;
            const cJSON *tc = cJSON_GetObjectItemCaseSensitive(t, "task_cat");
            const char *sk = "chat";
            if (cJSON_IsString(tc)) {
                if (!strncmp(tc->valuestring, "Assist", 6)) sk = "assist";
                else if (!strncmp(tc->valuestring, "Message", 7)) sk = "edit";
                else if (!strncmp(tc->valuestring, "Query", 5)) sk = "query";
                else if (!strncmp(tc->valuestring, "Recommend", 9)) sk = "recommend";
            }
            snprintf(x->skill[x->n], sizeof x->skill[x->n], "%s", sk);
            if (x->q[x->n] && x->a[x->n] && x->a[x->n][0]) x->n++;
            else {
                free(x->q[x->n]);
                free(x->a[x->n]);
            }
        }
        if (x->n >= 2) nd++;
        else {
            for (int i = 0; i < x->n; i++) { free(x->q[i]); free(x->a[i]); }
            memset(x, 0, sizeof *x);
        }
    }
    cJSON_Delete(root);
    *out = d;
    *n = nd;
    return 0;
}

static void dlg_free(struct dlg *d, int n)
{
    for (int i = 0; i < n; i++)
        for (int k = 0; k < d[i].n; k++) {
            free(d[i].q[k]);
            free(d[i].a[k]);
        }
    free(d);
}

static void conv_fini(struct conv *c)
{
    for (int i = 0; i < MAX_TURNS; i++) {
        free(c->q[i]);
        free(c->ref[i]);
    }
    cJSON_Delete(c->history);
}

static char *fmt(const char *f, ...) __attribute__((format(printf, 1, 2)));
static char *fmt(const char *f, ...)
{
    struct buf b;
    buf_init(&b);
    va_list ap;
    va_start(ap, f);
    int rc = buf_vprintf(&b, f, ap);
    va_end(ap);
    if (rc < 0) {
        buf_fini(&b);
        return NULL;
    }
    return buf_steal(&b);
}

/* Builds the conversations: turns in all == requests (the last dialogue may be cut). */
static int make_workload(const struct emu_load_opts *o, const struct emu_item *items,
                         int nitems, const struct dlg *dl, int ndl, struct conv **out,
                         int *nconv)
{
    struct rng r;
    rng_seed(&r, o->seed);
    int cap = o->requests > 0 ? o->requests : 1, n = 0, turns = 0, next_dlg = 0;
    struct conv *cv = calloc((size_t)cap, sizeof *cv);
    if (!cv) return -1;
    while (turns < o->requests) {
        struct conv *c = &cv[n];
        double u = rng_uniform(&r);
        c->kind = u < 0.45 ? CONV_IMAGE : u < 0.65 ? CONV_SHORT : u < 0.80 ? CONV_LONG
                                                              : CONV_DIALOGUE;
        if (c->kind == CONV_IMAGE && nitems == 0) c->kind = CONV_SHORT;
        c->nturns = 1;
        c->max_tokens = 32;
        if (c->kind == CONV_IMAGE) {
            c->item_idx = (int)rng_below(&r, (uint64_t)nitems);
            c->item = &items[c->item_idx];
            c->q[0] = strdup(c->item->prompt);
            c->ref[0] = strdup(c->item->refs[0]);
            c->sk[0] = c->item->kind;
            c->diff[0] = c->item->difficulty >= 0 ? c->item->difficulty : 0.5;
            c->max_tokens = c->item->max_tokens;
            snprintf(c->skill[0], sizeof c->skill[0], "%s", c->item->skill[0] ? c->item->skill : "vqa");
        } else if (c->kind == CONV_SHORT) {
            int a = 2 + (int)rng_below(&r, 98), b = 2 + (int)rng_below(&r, 98);
            c->q[0] = fmt("What is %d plus %d? Answer with the number only.", a, b);
            c->ref[0] = fmt("%d", a + b);
            c->sk[0] = EMU_SCORE_EXACT;
            snprintf(c->skill[0], sizeof c->skill[0], "chat");
            c->diff[0] = 0.05 + 0.25 * rng_uniform(&r);
            c->max_tokens = 8;
        } else if (c->kind == CONV_LONG) {
            /* 1 000 - 3 000 tokens of passage (about 16 tokens per sentence) */
            int nsent = 60 + (int)rng_below(&r, 130), code = 1000 + (int)rng_below(&r, 9000);
            int at = (int)rng_below(&r, (uint64_t)nsent);
            struct buf b;
            buf_init(&b);
            buf_puts(&b, "Read the log below and answer the question after it.\n\n");
            for (int i = 0; i < nsent; i++) {
                if (i == at) buf_printf(&b, "The access code for the north gate is %d. ", code);
                buf_puts(&b, g_sentences[rng_below(&r, NSENT)]);
                buf_putc(&b, i % 6 == 5 ? '\n' : ' ');
            }
            buf_puts(&b, "\n\nWhat is the access code for the north gate? Answer with the "
                         "number only.");
            c->q[0] = buf_steal(&b);
            c->ref[0] = fmt("%d", code);
            c->sk[0] = EMU_SCORE_EXACT;
            snprintf(c->skill[0], sizeof c->skill[0], "chat");
            c->diff[0] = 0.2 + 0.4 * rng_uniform(&r);
            c->max_tokens = 8;
        } else {
            c->view = g_views[rng_below(&r, sizeof g_views / sizeof g_views[0])];
            snprintf(c->session, sizeof c->session, "dlg-%llu-%d", o->seed, n);
            c->history = cJSON_CreateArray();
            if (ndl > 0) {
                const struct dlg *d = &dl[next_dlg++ % ndl];
                c->nturns = d->n;
                for (int k = 0; k < d->n; k++) {
                    c->q[k] = strdup(d->q[k]);
                    c->ref[k] = strdup(d->a[k]);
                    c->sk[k] = EMU_SCORE_EXACT;
                    snprintf(c->skill[k], sizeof c->skill[k], "%s", d->skill[k]);
                    double df = 1 - d->score[k];
                    c->diff[k] = df < 0.05 ? 0.05 : df > 0.95 ? 0.95 : df;
                }
                c->max_tokens = 96;
            } else {
                /* no M4A1 file: an arithmetic chain */
                int acc = 2 + (int)rng_below(&r, 50);
                c->q[0] = fmt("Remember the number %d. What is it plus 1?", acc);
                c->ref[0] = fmt("%d", acc + 1);
                c->nturns = 3;
                for (int k = 1; k < 3; k++) {
                    int add = 1 + (int)rng_below(&r, 9);
                    acc += add + (k == 1);
                    c->q[k] = fmt("Now add %d to your last answer. Number only.", add);
                    c->ref[k] = fmt("%d", acc + 1);
                }
                for (int k = 0; k < 3; k++) {
                    c->sk[k] = EMU_SCORE_EXACT;
                    snprintf(c->skill[k], sizeof c->skill[k], "chat");
                    c->diff[k] = 0.1 + 0.1 * k;
                }
                c->max_tokens = 8;
            }
        }
        if (c->nturns > o->requests - turns) c->nturns = o->requests - turns;
        for (int k = 0; k < c->nturns; k++) {
            c->stream[k] = rng_uniform(&r) < o->stream_share;
            if (!c->q[k] || !c->ref[k]) {
                *out = cv;
                *nconv = n + 1;
                return -1;
            }
        }
        turns += c->nturns;
        n++;
    }
    *out = cv;
    *nconv = n;
    return 0;
}

/* ==== HTTP ============================================================================ */

/* Copies the value of header line h ("Name: value\r\n") when its name is name. */
static void take_header(const char *h, size_t n, const char *name, char *dst, size_t cap)
{
    size_t k = strlen(name);
    if (n <= k + 1 || strncasecmp(h, name, k) || h[k] != ':') return;
    const char *v = h + k + 1;
    size_t m = n - k - 1;
    while (m && (*v == ' ' || *v == '\t')) { v++; m--; }
    while (m && (v[m - 1] == '\r' || v[m - 1] == '\n' || v[m - 1] == ' ')) m--;
    if (m >= cap) m = cap - 1;
    memcpy(dst, v, m);
    dst[m] = 0;
}

static size_t on_header(char *p, size_t sz, size_t n, void *arg)
{
    struct lx *x = arg;
    take_header(p, sz * n, "X-Ferry-Node", x->node, sizeof x->node);
    take_header(p, sz * n, "X-Ferry-Request-Id", x->req_id, sizeof x->req_id);
    return sz * n;
}

static void lx_free(struct lx *x)
{
    if (!x) return;
    emu_post_fini(&x->post);
    free(x);
}

static struct lx *lx_new(const struct emu_load_opts *o, const char *path, char *body)
{
    struct lx *x = calloc(1, sizeof *x);
    if (!x) {
        free(body);
        return NULL;
    }
    char url[1024];
    snprintf(url, sizeof url, "%s%s", o->url, path);
    if (emu_post_init(&x->post, url, body, o->timeout_ms > 0 ? o->timeout_ms : 120000L, x) < 0) {
        lx_free(x);
        return NULL;
    }
    curl_easy_setopt(x->post.e, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(x->post.e, CURLOPT_HEADERDATA, x);
    return x;
}

/* The request body of turn k of c (images from urls of the item or the view). */
static char *turn_body(const struct emu_load_opts *o, struct conv *c, int k, char **urls,
                       const int *sides, int nurls)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", o->model);
    cJSON_AddBoolToObject(root, "stream", c->stream[k]);
    if (c->stream[k])
        cJSON_AddBoolToObject(cJSON_AddObjectToObject(root, "stream_options"), "include_usage", 1);
    cJSON_AddNumberToObject(root, "max_tokens", c->max_tokens);
    cJSON *msgs = c->history ? cJSON_Duplicate(c->history, 1) : cJSON_CreateArray();
    cJSON_AddItemToObject(root, "messages", msgs);
    cJSON *m = emu_user_message(urls, nurls, c->q[k]);
    cJSON_AddItemToArray(msgs, m);
    cJSON *md = cJSON_AddObjectToObject(root, "metadata");
    cJSON_AddStringToObject(md, "answer", c->ref[k]);
    char d[32];
    snprintf(d, sizeof d, "%.4f", c->diff[k]);
    cJSON_AddStringToObject(md, "difficulty", d);
    cJSON_AddStringToObject(md, "kind", g_kind_names[c->kind]);
    cJSON_AddStringToObject(md, "skill", c->skill[k]);
    emu_metadata_images(md, sides, nurls);
    if (c->history) {
        /* the history of the next turn: this user message (images included) */
        cJSON_AddItemToArray(c->history, cJSON_Duplicate(m, 1));
    }
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return txt;
}

static int cmp_dbl(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p)
{
    if (n <= 0) return NAN;
    int i = (int)ceil(p / 100.0 * n) - 1; /* nearest rank */
    if (i < 0) i = 0;
    if (i >= n) i = n - 1;
    return v[i];
}

int emu_load_run(const struct emu_load_opts *o, struct emu_load_summary *sum, char *err,
                 size_t errlen)
{
    memset(sum, 0, sizeof *sum);
    const char *base = o->base;
    if (!base || !*base) base = getenv("FERRY_SHARED");
    if (!base || !*base) base = "../shared";
    struct emu_item *items = NULL;
    int nitems = 0, ndl = 0, nconv = 0, rc = -1;
    struct dlg *dl = NULL;
    struct conv *cv = NULL;
    struct gw_config *cfg = NULL;
    char ***item_urls = NULL;  /* per item, loaded on first use */
    int (*item_sides)[FY_MAX_IMAGES] = NULL;
    char **view_urls[3] = {NULL, NULL, NULL};
    int view_sides[3][FY_MAX_IMAGES];
    struct rec *recs = NULL;
    int nrec = 0;
    int *queue = NULL;         /* conversation indices ready for their next turn */
    int qhead = 0, qtail = 0;
    CURLM *multi = NULL;
    struct lx **live = NULL;
    int nlive_cap = 0;
    if (o->dataset && emu_dataset_load(o->dataset, base, &items, &nitems, err, errlen) < 0)
        return -1;
    char m4[2048];
    const char *m4path = o->m4a1;
    if (!m4path) {
        struct stat st;
        snprintf(m4, sizeof m4, "%s/datasets/m4a1/M4A1.json", base);
        if (stat(m4, &st) == 0) m4path = m4;
    }
    if (m4path && load_m4a1(m4path, &dl, &ndl, err, errlen) < 0) goto out;
    if (o->config) {
        cfg = calloc(1, sizeof *cfg);
        if (!cfg) goto oom;
        gw_config_default(cfg);
        if (gw_config_load_flags(o->config, cfg, GW_CONFIG_NO_KEYS, err, errlen) < 0) goto out;
    }
    if (make_workload(o, items, nitems, dl, ndl, &cv, &nconv) < 0) goto oom;
    item_urls = calloc((size_t)(nitems ? nitems : 1), sizeof *item_urls);
    item_sides = calloc((size_t)(nitems ? nitems : 1), sizeof *item_sides);
    recs = calloc((size_t)(o->requests > 0 ? o->requests : 1), sizeof *recs);
    queue = calloc((size_t)nconv + 1, sizeof *queue);
    nlive_cap = (o->concurrency > 0 ? o->concurrency : 4) * 2 + 8;
    live = calloc((size_t)nlive_cap, sizeof *live);
    multi = curl_multi_init();
    if (!item_urls || !item_sides || !recs || !queue || !live || !multi) goto oom;
    for (int i = 0; i < nconv; i++) queue[qtail++] = i;
    int conc = o->concurrency > 0 ? o->concurrency : 4, running = 0, nlive = 0;
    for (;;) {
        while (running < conc && qhead < qtail) {
            struct conv *c = &cv[queue[qhead++]];
            int k = c->sent++;
            char **urls = NULL;
            const int *sides = NULL;
            int nurls = 0;
            if (c->kind == CONV_IMAGE) {
                if (!item_urls[c->item_idx]) {
                    size_t bytes;
                    if (emu_item_image_urls(c->item, &item_urls[c->item_idx],
                                            item_sides[c->item_idx], &bytes, err, errlen) < 0)
                        goto out;
                }
                urls = item_urls[c->item_idx];
                sides = item_sides[c->item_idx];
                nurls = c->item->nimages;
            } else if (c->kind == CONV_DIALOGUE && k == 0) {
                int v = 0;
                while (g_views[v] != c->view) v++;
                if (!view_urls[v]) {
                    struct emu_item tmp;
                    memset(&tmp, 0, sizeof tmp);
                    snprintf(tmp.id, sizeof tmp.id, "view-%d", v);
                    char path[2048];
                    snprintf(path, sizeof path, "%s/%s", base, g_views[v]);
                    tmp.images[0] = path;
                    tmp.nimages = 1;
                    size_t bytes;
                    if (emu_item_image_urls(&tmp, &view_urls[v], view_sides[v], &bytes, err,
                                            errlen) < 0)
                        goto out;
                }
                urls = view_urls[v];
                sides = view_sides[v];
                nurls = 1;
            }
            struct lx *x = lx_new(o, "/v1/chat/completions", turn_body(o, c, k, urls, sides, nurls));
            if (!x) goto oom;
            x->c = c;
            x->turn = k;
            if (c->session[0]) {
                char h[96];
                snprintf(h, sizeof h, "X-Ferry-Session: %s", c->session);
                if (!curl_slist_append(x->post.hdr, h)) {
                    lx_free(x);
                    goto oom;
                }
            }
            x->t0 = clock_now_ms();
            int slot = 0;
            while (slot < nlive_cap && live[slot]) slot++;
            if (slot == nlive_cap) {
                lx_free(x);
                goto oom;
            }
            live[slot] = x;
            nlive++;
            curl_multi_add_handle(multi, x->post.e);
            running++;
        }
        if (!nlive) break;
        int still;
        curl_multi_perform(multi, &still);
        struct lx *x;
        CURLcode cc;
        while ((x = emu_post_next_done(multi, &cc))) {
            for (int i = 0; i < nlive_cap; i++)
                if (live[i] == x) live[i] = NULL;
            nlive--;
            if (x->feedback) {
                long status = 0;
                curl_easy_getinfo(x->post.e, CURLINFO_RESPONSE_CODE, &status);
                sum->feedback_sent += cc == CURLE_OK && status == 200;
                lx_free(x);
                continue;
            }
            running--;
            char why[160];
            int ok = emu_post_done(&x->post, cc, why, sizeof why);
            struct conv *c = x->c;
            struct rec *r = &recs[nrec++];
            r->ok = ok;
            if (!ok && !sum->first_error[0])
                snprintf(sum->first_error, sizeof sum->first_error, "%s", why);
            r->e2e_ms = clock_now_ms() - x->t0;
            r->ttft_ms = x->post.rep.t_first > 0 ? x->post.rep.t_first - x->t0 : r->e2e_ms;
            r->node = -1;
            const char *reply = x->post.rep.content.data ? x->post.rep.content.data : "";
            if (r->ok) {
                const char *refs[1] = {c->ref[x->turn]};
                r->score = emu_score(c->sk[x->turn], reply, refs, 1,
                                     c->item ? (const char *const *)c->item->choices : NULL,
                                     c->item ? c->item->nchoices : 0);
                /* the node that answered: share per node and its prices */
                const char *nm = x->node[0] ? x->node : "(unnamed)";
                int k = 0;
                while (k < sum->nnodes && strcmp(sum->node[k], nm)) k++;
                if (k == sum->nnodes && k < FY_MAX_NODES) {
                    snprintf(sum->node[k], sizeof sum->node[k], "%s", nm);
                    sum->nnodes++;
                }
                if (k < FY_MAX_NODES) sum->node_count[k]++;
                r->node = k;
                if (cfg) {
                    int ci = gw_config_find_node(cfg, nm);
                    if (ci >= 0) {
                        const struct gw_node_cfg *nc = &cfg->nodes[ci];
                        r->cost = (x->post.rep.prompt_tokens * fmax(0, nc->usd_per_mtok_in) +
                                   x->post.rep.completion_tokens * fmax(0, nc->usd_per_mtok_out)) / 1e6;
                    }
                }
                if (o->feedback && x->req_id[0]) {
                    char *fb = fmt("{\"request_id\":\"%s\",\"score\":%.4f}", x->req_id, r->score);
                    struct lx *f = lx_new(o, "/v1/feedback", fb);
                    if (f) {
                        f->feedback = 1;
                        int slot = 0;
                        while (slot < nlive_cap && live[slot]) slot++;
                        if (slot < nlive_cap) {
                            live[slot] = f;
                            nlive++;
                            curl_multi_add_handle(multi, f->post.e);
                        } else {
                            lx_free(f);
                        }
                    }
                }
                if (c->history && x->turn + 1 < c->nturns) {
                    cJSON *a = cJSON_CreateObject();
                    cJSON_AddStringToObject(a, "role", "assistant");
                    cJSON_AddStringToObject(a, "content", reply);
                    cJSON_AddItemToArray(c->history, a);
                }
            }
            /* the next turn of a dialogue goes to the back of the queue; a failed turn
             * ends its dialogue (nothing to continue from) */
            if (r->ok && c->sent < c->nturns) {
                if (qtail >= nconv + 1) {
                    /* compact the queue (indices before qhead are done) */
                    memmove(queue, queue + qhead, (size_t)(qtail - qhead) * sizeof *queue);
                    qtail -= qhead;
                    qhead = 0;
                }
                queue[qtail++] = (int)(c - cv);
            }
            lx_free(x);
        }
        if (nlive) curl_multi_poll(multi, NULL, 0, 50, NULL);
    }
    /* summary */
    double *lat = calloc((size_t)nrec + 1, sizeof *lat), *ttft = calloc((size_t)nrec + 1, sizeof *ttft);
    if (!lat || !ttft) {
        free(lat);
        free(ttft);
        goto oom;
    }
    int nl = 0;
    for (int i = 0; i < nrec; i++) {
        sum->n++;
        if (!recs[i].ok) continue;
        sum->ok++;
        sum->quality_sum += recs[i].score;
        sum->completed += recs[i].score >= 0.5;
        sum->cost_usd += recs[i].cost;
        lat[nl] = recs[i].e2e_ms;
        ttft[nl++] = recs[i].ttft_ms;
    }
    qsort(lat, (size_t)nl, sizeof *lat, cmp_dbl);
    qsort(ttft, (size_t)nl, sizeof *ttft, cmp_dbl);
    sum->p50_ms = pct(lat, nl, 50);
    sum->p95_ms = pct(lat, nl, 95);
    sum->p99_ms = pct(lat, nl, 99);
    sum->ttft_p50_ms = pct(ttft, nl, 50);
    free(lat);
    free(ttft);
    rc = 0;
    goto out;
oom:
    snprintf(err, errlen, "out of memory");
out:
    if (multi) {
        for (int i = 0; live && i < nlive_cap; i++)
            if (live[i]) {
                curl_multi_remove_handle(multi, live[i]->post.e);
                lx_free(live[i]);
            }
        curl_multi_cleanup(multi);
    }
    free(live);
    free(queue);
    free(recs);
    for (int i = 0; item_urls && i < nitems; i++)
        if (item_urls[i]) emu_item_urls_free(item_urls[i], items[i].nimages);
    free(item_urls);
    free(item_sides);
    for (int v = 0; v < 3; v++) emu_item_urls_free(view_urls[v], 1);
    for (int i = 0; cv && i < nconv; i++) conv_fini(&cv[i]);
    free(cv);
    dlg_free(dl, ndl);
    emu_dataset_free(items, nitems);
    free(cfg);
    return rc;
}

void emu_load_print(FILE *fp, const char *label, const struct emu_load_summary *s)
{
    if (!s) {
        fprintf(fp, "%-14s %4s %5s %6s %7s %7s %7s %7s %7s %9s  %s\n", "policy", "n", "ok%",
                "compl%", "quality", "p50ms", "p95ms", "p99ms", "ttft50", "cost$",
                "share per node");
        return;
    }
    char share[512] = "";
    size_t k = 0;
    for (int i = 0; i < s->nnodes && k < sizeof share; i++)
        k += (size_t)snprintf(share + k, sizeof share - k, "%s%s %.0f%%", i ? ", " : "",
                              s->node[i], s->ok ? 100.0 * s->node_count[i] / s->ok : 0.0);
    if (!s->ok) { /* no answer: no quality or latency to show (the percentiles are NaN) */
        fprintf(fp, "%-14s %4d %5.1f %6.1f %7s %7s %7s %7s %7s %9.5f  %s\n", label, s->n, 0.0,
                0.0, "-", "-", "-", "-", "-", s->cost_usd, share);
        return;
    }
    fprintf(fp, "%-14s %4d %5.1f %6.1f %7.3f %7.0f %7.0f %7.0f %7.0f %9.5f  %s\n", label,
            s->n, s->n ? 100.0 * s->ok / s->n : 0.0, s->n ? 100.0 * s->completed / s->n : 0.0,
            s->ok ? s->quality_sum / s->ok : 0.0, s->p50_ms, s->p95_ms, s->p99_ms,
            s->ttft_p50_ms, s->cost_usd, share);
}
