/* gw/shadow — shadow sampling (shadow.h). */
#include "gw/shadow.h"

#include <cjson/cJSON.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "emu/score.h"
#include "gw/nodes.h"
#include "gw/upstream.h"
#include "pred/pred.h"
#include "req/request.h"
#include "util/clock.h"
#include "util/log.h"
#include "util/rng.h"

#define NORM_CAP     (16 * 1024)   /* normalised text compared by token F1 */
#define MAX_WORDS    2048          /* words of one answer in token F1 */
#define SSE_LINE_CAP (256 * 1024)  /* a longer data: line is not parsed */
#define MINUTES      60            /* budget window: one hour in one-minute buckets */

struct shadow_xfer {                 /* one reference request in flight */
    struct gw_xfer x;                /* first member */
    struct gw_shadow *sh;
    struct shadow_xfer *prev, *next;
    char id[48];
    int node, ref;
    char *body;                      /* the reference request */
    size_t body_len;
    char *answer;                    /* the weaker node's content */
    struct buf resp;
    int overflow;
    struct curl_slist *hdrs;
    double charged_usd;              /* the estimate charged when sent */
    int counted;                     /* in the reference's gw_node_rt.inflight */
};

struct gw_shadow_req {
    char *body;                      /* reference request (JSON, stream=false) */
    size_t body_len;
    int ref;                         /* reference node index */
    int stream;                      /* the client's answer is SSE */
    int overflow;                    /* answer longer than GW_SHADOW_BODY_MAX */
    struct buf ans;                  /* the answer's bytes as received */
};

struct gw_shadow {
    struct gw_shadow_env env;
    struct rng rng;
    double rate;
    int ref_cfg;                     /* configured reference node, or -1 */
    enum gw_shadow_cmp cmp;
    int inflight;
    struct shadow_xfer *xfers;
    struct { long minute; double usd; } spent[MINUTES];
    /* [answering node][reference node][outcome] */
    unsigned long long n[FY_MAX_NODES][FY_MAX_NODES][GW_SHADOW__N];
};

static const char *const g_cmp[] = {"auto", "exact", "contains", "vqa", "letter"};
static const char *const g_out[GW_SHADOW__N] = {"agree", "disagree", "failed", "unscored",
                                                "skipped_budget", "skipped_busy"};

int gw_shadow_cmp_parse(const char *s)
{
    for (int k = 0; k < (int)(sizeof g_cmp / sizeof g_cmp[0]); k++)
        if (s && !strcmp(s, g_cmp[k])) return k;
    return -1;
}

const char *gw_shadow_outcome_name(enum gw_shadow_outcome o)
{
    return o >= 0 && o < GW_SHADOW__N ? g_out[o] : "?";
}

/* ---- comparing answers --------------------------------------------------------- */

/* The choice letter of a reference that is only a letter ("B", "(b)", "C."), or 0. */
static char bare_letter(const char *s)
{
    char l = 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (!isalnum(c)) continue;
        if (l) return 0;
        c = (unsigned char)toupper(c);
        if (c < 'A' || c > 'H') return 0;
        l = (char)c;
    }
    return l;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Splits normalised text (space-separated) in place into sorted words. */
static int words(char *t, char **w)
{
    int n = 0;
    for (char *save = NULL, *p = strtok_r(t, " ", &save); p && n < MAX_WORDS;
         p = strtok_r(NULL, " ", &save))
        w[n++] = p;
    qsort(w, (size_t)n, sizeof *w, cmp_str);
    return n;
}

/* Token F1 of two normalised texts (SQuAD-style bag-of-words overlap). */
static double token_f1(char *a, char *b)
{
    char **wa = malloc(2 * MAX_WORDS * sizeof *wa);
    if (!wa) return -1;
    char **wb = wa + MAX_WORDS;
    int na = words(a, wa), nb = words(b, wb), common = 0;
    for (int i = 0, j = 0; i < na && j < nb;) {
        int c = strcmp(wa[i], wb[j]);
        if (!c) { common++; i++; j++; }
        else if (c < 0) i++;
        else j++;
    }
    free(wa);
    if (!na || !nb) return na == nb ? 1 : 0;
    double p = (double)common / na, r = (double)common / nb;
    return common ? 2 * p * r / (p + r) : 0;
}

double gw_shadow_score(enum gw_shadow_cmp k, const char *answer, const char *reference)
{
    if (!answer || !reference) return -1;
    char *na = malloc(2 * NORM_CAP);
    if (!na) return -1;
    char *nr = na + NORM_CAP;
    double sc = -1;
    emu_score_normalize(reference, nr, NORM_CAP);
    emu_score_normalize(answer, na, NORM_CAP);
    char letter = bare_letter(reference);
    if (k == GW_SHADOW_AUTO && letter) k = GW_SHADOW_LETTER;
    if (k == GW_SHADOW_LETTER) {
        char want = letter ? letter : emu_score_letter(reference, NULL, 0);
        if (want) {
            char r[2] = {want, 0};
            const char *refs[1] = {r};
            sc = emu_score(EMU_SCORE_MCQ, answer, refs, 1, NULL, 0);
        }
        goto done;
    }
    if (!nr[0]) goto done;           /* nothing to compare with */
    if (!na[0]) {
        sc = 0;
        goto done;
    }
    const char *refs[1] = {reference};
    switch (k) {
    case GW_SHADOW_EXACT: sc = emu_score(EMU_SCORE_EXACT, answer, refs, 1, NULL, 0); break;
    case GW_SHADOW_CONTAINS: sc = emu_score(EMU_SCORE_CONTAINS, answer, refs, 1, NULL, 0); break;
    case GW_SHADOW_VQA: sc = emu_score(EMU_SCORE_VQA, answer, refs, 1, NULL, 0); break;
    default: {                       /* auto */
        int nw = 1;
        for (const char *p = nr; *p; p++) nw += *p == ' ';
        if (nw <= GW_SHADOW_SHORT_WORDS) {
            /* a short reference: either answer containing the other is agreement
             * ("blue" and "The car is blue.") */
            const char *ans[1] = {answer};
            sc = emu_score(EMU_SCORE_CONTAINS, answer, refs, 1, NULL, 0) > 0 ||
                         emu_score(EMU_SCORE_CONTAINS, reference, ans, 1, NULL, 0) > 0
                     ? 1 : 0;
        } else {
            sc = token_f1(na, nr);
        }
    }
    }
done:
    free(na);
    return sc;
}

/* ---- answer content ------------------------------------------------------------ */

static int put_content(struct buf *out, const cJSON *c)
{
    if (!cJSON_IsString(c)) return 0;
    size_t n = strlen(c->valuestring);
    if (out->len + n > GW_SHADOW_TEXT_MAX) return -1;
    return buf_append(out, c->valuestring, n) ? -1 : 1;
}

int gw_shadow_content(const char *p, size_t len, int stream, struct buf *out)
{
    if (!p) return -1;
    if (!stream) {
        cJSON *root = cJSON_ParseWithLength(p, len);
        cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
        cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
        int rc = put_content(out, cJSON_GetObjectItemCaseSensitive(msg, "content"));
        cJSON_Delete(root);
        return rc == 1 ? 0 : -1;
    }
    int found = 0;
    const char *end = p + len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        size_t n = (size_t)(le - p);
        if (n > 5 && n <= SSE_LINE_CAP && !memcmp(p, "data:", 5)) {
            const char *d = p + 5;
            size_t dn = n - 5;
            while (dn && *d == ' ') { d++; dn--; }
            while (dn && d[dn - 1] == '\r') dn--;
            if (dn && !(dn == 6 && !memcmp(d, "[DONE]", 6))) {
                cJSON *ev = cJSON_ParseWithLength(d, dn);
                cJSON *c0 = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(ev, "choices"), 0);
                cJSON *delta = cJSON_GetObjectItemCaseSensitive(c0, "delta");
                int rc = put_content(out, cJSON_GetObjectItemCaseSensitive(delta, "content"));
                cJSON_Delete(ev);
                if (rc < 0) return -1;
                found |= rc;
            }
        }
        if (!nl) break;
        p = nl + 1;
    }
    if (found && !out->data) buf_puts(out, "");   /* only empty deltas: "" */
    return found ? 0 : -1;
}

/* ---- budget -------------------------------------------------------------------- */

static double spent_last_hour(struct gw_shadow *sh)
{
    long now = (long)(clock_now_ms() / 60000.0);
    double s = 0;
    for (int i = 0; i < MINUTES; i++)
        if (sh->spent[i].minute > now - MINUTES) s += sh->spent[i].usd;
    return s > 0 ? s : 0;
}

static void charge(struct gw_shadow *sh, double usd)
{
    long now = (long)(clock_now_ms() / 60000.0);
    int k = (int)(now % MINUTES);
    if (sh->spent[k].minute != now) {
        sh->spent[k].minute = now;
        sh->spent[k].usd = 0;
    }
    sh->spent[k].usd += usd;
}

static double cost_usd(const struct gw_shadow *sh, int ref, double in, double out)
{
    const struct fy_node_profile *p = &sh->env.nodes->node[ref].prof;
    return (in * p->usd_per_mtok_in + out * p->usd_per_mtok_out) / 1e6;
}

/* ---- lifecycle ----------------------------------------------------------------- */

struct gw_shadow *gw_shadow_new(const struct gw_shadow_env *env, char *err, size_t errlen)
{
    const struct gw_config *c = env->cfg;
    if (errlen) err[0] = 0;
    if (c->shadow_rate <= 0) return NULL;
    struct gw_shadow *sh = calloc(1, sizeof *sh);
    if (!sh) {
        snprintf(err, errlen, "[shadow]: out of memory");
        return NULL;
    }
    sh->env = *env;
    rng_seed(&sh->rng, env->seed);
    sh->rate = c->shadow_rate;
    sh->ref_cfg = c->shadow_reference[0] ? gw_config_find_node(c, c->shadow_reference) : -1;
    int k = gw_shadow_cmp_parse(c->shadow_compare[0] ? c->shadow_compare : "auto");
    if ((c->shadow_reference[0] && sh->ref_cfg < 0) || k < 0) {
        snprintf(err, errlen, "%s: [shadow] %s = '%s': %s", c->path,
                 k < 0 ? "compare" : "reference", k < 0 ? c->shadow_compare : c->shadow_reference,
                 k < 0 ? "unknown comparison" : "no such node");
        free(sh);
        return NULL;
    }
    sh->cmp = (enum gw_shadow_cmp)k;
    for (int i = 0; i < MINUTES; i++) sh->spent[i].minute = -MINUTES - 1;
    return sh;
}

static void xfer_free(struct shadow_xfer *t)
{
    struct gw_shadow *sh = t->sh;
    if (t->prev) t->prev->next = t->next;
    else sh->xfers = t->next;
    if (t->next) t->next->prev = t->prev;
    sh->inflight--;
    if (t->counted) sh->env.nodes->rt[t->ref].inflight--;
    if (t->x.easy) curl_easy_cleanup(t->x.easy);
    curl_slist_free_all(t->hdrs);
    free(t->body);
    free(t->answer);
    buf_fini(&t->resp);
    free(t);
}

void gw_shadow_free(struct gw_shadow *sh)
{
    if (!sh) return;
    while (sh->xfers) {
        gw_up_remove(sh->env.up, &sh->xfers->x);
        xfer_free(sh->xfers);
    }
    free(sh);
}

void gw_shadow_req_free(struct gw_shadow_req *r)
{
    if (!r) return;
    free(r->body);
    buf_fini(&r->ans);
    free(r);
}

int gw_shadow_inflight(const struct gw_shadow *sh) { return sh ? sh->inflight : 0; }

/* ---- sampling ------------------------------------------------------------------ */

/* The node's prior quality over all tasks (pred.h: its model's task priors, else the
 * role default): which node is stronger, whatever this request's task. */
static double prior_q(const struct gw_shadow *sh, const struct pred *pred, int i)
{
    const struct fy_node *n = &sh->env.nodes->node[i];
    int bi = pred ? pred_find(pred, n->name) : -1;
    if (bi >= 0) return pred_prior(pred, bi, -1);
    return pred_node_prior(n, -1);
}

/* The reference for a request answered at node, or -1 (none is eligible). */
static int reference_for(const struct gw_shadow *sh, const struct pred *pred, int node,
                         int edge_only)
{
    const struct gw_nodes *ns = sh->env.nodes;
    int ref = sh->ref_cfg;
    if (ref < 0) {
        for (int i = 0; i < ns->n; i++) {
            if (!ns->rt[i].healthy) continue;
            if (ref < 0 || prior_q(sh, pred, i) > prior_q(sh, pred, ref)) ref = i;
        }
        if (ref >= 0 && !(prior_q(sh, pred, node) < prior_q(sh, pred, ref))) return -1;
    }
    if (ref < 0 || ref == node || !ns->rt[ref].healthy) return -1;
    if (edge_only && ns->node[ref].role != FY_ROLE_EDGE) return -1;   /* privacy */
    return ref;
}

struct gw_shadow_req *gw_shadow_pick(struct gw_shadow *sh, const struct pred *pred,
                                     const struct fy_request *fr, int node)
{
    if (!sh || !fr || !fr->json || node < 0 || node >= sh->env.nodes->n) return NULL;
    int ref = reference_for(sh, pred, node, fr->prefs.privacy == FY_PRIV_EDGE_ONLY);
    if (ref < 0) return NULL;
    if (!(rng_uniform(&sh->rng) < sh->rate)) return NULL;
    struct gw_shadow_req *r = calloc(1, sizeof *r);
    cJSON *j = cJSON_Duplicate(fr->json, 1);
    if (!r || !j) goto fail;
    cJSON_DeleteItemFromObjectCaseSensitive(j, "model");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "stream");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "stream_options");
    if (!cJSON_AddStringToObject(j, "model", sh->env.cfg->nodes[ref].model) ||
        !cJSON_AddFalseToObject(j, "stream"))
        goto fail;
    r->body = cJSON_PrintUnformatted(j);
    if (!r->body) goto fail;
    cJSON_Delete(j);
    r->body_len = strlen(r->body);
    r->ref = ref;
    r->stream = fr->stream;
    buf_init(&r->ans);
    return r;
fail:
    cJSON_Delete(j);
    free(r);
    return NULL;
}

void gw_shadow_bytes(struct gw_shadow_req *r, const char *p, size_t n)
{
    if (!r || r->overflow) return;
    if (r->ans.len + n > GW_SHADOW_BODY_MAX || buf_append(&r->ans, p, n)) {
        r->overflow = 1;
        buf_fini(&r->ans);
    }
}

/* ---- the reference request ----------------------------------------------------- */

static size_t on_write(char *p, size_t sz, size_t nm, void *arg)
{
    struct shadow_xfer *t = arg;
    size_t n = sz * nm;
    if (t->resp.len + n > GW_SHADOW_BODY_MAX || buf_append(&t->resp, p, n)) {
        t->overflow = 1;
        return 0;                    /* aborts the transfer */
    }
    return n;
}

static void count(struct gw_shadow *sh, int node, int ref, enum gw_shadow_outcome o)
{
    sh->n[node][ref][o]++;
}

static void on_done(struct gw_xfer *x, CURLcode rc)
{
    struct shadow_xfer *t = (struct shadow_xfer *)x;
    struct gw_shadow *sh = t->sh;
    long status = 0;
    curl_easy_getinfo(t->x.easy, CURLINFO_RESPONSE_CODE, &status);
    gw_up_remove(sh->env.up, &t->x);
    const char *ref = sh->env.nodes->node[t->ref].name;
    struct buf content;
    buf_init(&content);
    enum gw_shadow_outcome o = GW_SHADOW_FAILED;
    double usd = 0, score = -1;
    if (rc != CURLE_OK || status < 200 || status >= 300 || t->overflow) {
        log_info("gw", "%s: shadow reference '%s' failed: %s", t->id, ref,
                 rc != CURLE_OK ? curl_easy_strerror(rc)
                 : t->overflow ? "answer too long" : "HTTP error status");
    } else {
        cJSON *root = cJSON_ParseWithLength(t->resp.data ? t->resp.data : "", t->resp.len);
        cJSON *u = cJSON_GetObjectItemCaseSensitive(root, "usage");
        cJSON *pt = cJSON_GetObjectItemCaseSensitive(u, "prompt_tokens");
        cJSON *ct = cJSON_GetObjectItemCaseSensitive(u, "completion_tokens");
        if (cJSON_IsNumber(pt) && cJSON_IsNumber(ct) && pt->valuedouble >= 0 && ct->valuedouble >= 0)
            usd = cost_usd(sh, t->ref, pt->valuedouble, ct->valuedouble);
        else
            usd = t->charged_usd;    /* no usage: keep the estimate */
        cJSON_Delete(root);
        if (gw_shadow_content(t->resp.data, t->resp.len, 0, &content) == 0)
            score = gw_shadow_score(sh->cmp, t->answer, content.data);
        if (score < 0) {
            o = GW_SHADOW_UNSCORED;
        } else {
            o = score >= 0.5 ? GW_SHADOW_AGREE : GW_SHADOW_DISAGREE;
            if (sh->env.label(sh->env.arg, t->id, score))
                log_debug("gw", "%s: shadow label %.3f not applied (request no longer known, "
                          "or feedback was given first)", t->id, score);
        }
    }
    charge(sh, usd - t->charged_usd);
    count(sh, t->node, t->ref, o);
    log_debug("gw", "%s: shadow at '%s': %s (score %.3f)", t->id, ref, g_out[o], score);
    buf_fini(&content);
    xfer_free(t);
}

void gw_shadow_submit(struct gw_shadow *sh, struct gw_shadow_req *r, const char *id, int node,
                      int in_tokens, int out_tokens)
{
    if (!sh || !r) {
        gw_shadow_req_free(r);
        return;
    }
    const struct gw_config *c = sh->env.cfg;
    int ref = r->ref;
    struct shadow_xfer *t = NULL;
    struct buf text;
    buf_init(&text);
    /* a failover may have moved the request to the reference itself */
    if (node < 0 || node >= sh->env.nodes->n || node == ref) goto drop;
    if (r->overflow ||
        gw_shadow_content(r->ans.data ? r->ans.data : "", r->ans.len, r->stream, &text)) {
        count(sh, node, ref, GW_SHADOW_UNSCORED);
        goto drop;
    }
    if (sh->inflight >= c->shadow_max_inflight) {
        count(sh, node, ref, GW_SHADOW_SKIPPED_BUSY);
        goto drop;
    }
    if (c->shadow_max_usd_per_hour > 0 && spent_last_hour(sh) >= c->shadow_max_usd_per_hour) {
        count(sh, node, ref, GW_SHADOW_SKIPPED_BUDGET);
        goto drop;
    }
    t = calloc(1, sizeof *t);
    if (!t) goto drop;
    t->sh = sh;
    snprintf(t->id, sizeof t->id, "%s", id);
    t->node = node;
    t->ref = ref;
    t->body = r->body;
    t->body_len = r->body_len;
    r->body = NULL;
    t->answer = buf_steal(&text);
    buf_init(&t->resp);
    t->x.done = on_done;
    t->x.easy = curl_easy_init();
    const struct gw_node_cfg *nc = &c->nodes[ref];
    t->hdrs = curl_slist_append(NULL, "Content-Type: application/json");
    struct curl_slist *h = t->hdrs ? curl_slist_append(t->hdrs, "Expect:") : NULL;
    if (h && nc->api_key[0]) {
        char a[GW_KEY_MAX + 32];
        snprintf(a, sizeof a, "Authorization: Bearer %s", nc->api_key);
        h = curl_slist_append(h, a);
    }
    if (!t->x.easy || !t->answer || !h) goto fail;
    char url[GW_URL_MAX + 32];
    snprintf(url, sizeof url, "%s/v1/chat/completions", nc->url);
    CURL *e = t->x.easy;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)t->body_len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->hdrs);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, t);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)c->connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)c->total_ms);
    t->next = sh->xfers;
    if (sh->xfers) sh->xfers->prev = t;
    sh->xfers = t;
    sh->inflight++;
    /* charged now (the answering node's token counts at the reference's prices), so
     * that requests sent before this one answers see the spending; corrected with the
     * reference's own usage when it answers */
    double in_est = in_tokens > 0 ? in_tokens : t->body_len / 4.0;   /* no usage: ~4 B/token */
    t->charged_usd = cost_usd(sh, ref, in_est, out_tokens > 0 ? out_tokens : 0);
    charge(sh, t->charged_usd);
    log_debug("gw", "%s: shadow request to '%s'", id, sh->env.nodes->node[ref].name);
    if (gw_up_add(sh->env.up, &t->x)) {
        charge(sh, -t->charged_usd);
        count(sh, node, ref, GW_SHADOW_FAILED);
        xfer_free(t);
    } else {
        /* the policies see the reference's load (and [node] max_inflight includes it) */
        sh->env.nodes->rt[ref].inflight++;
        t->counted = 1;
    }
    gw_shadow_req_free(r);
    return;
fail:
    count(sh, node, ref, GW_SHADOW_FAILED);
    if (t->x.easy) curl_easy_cleanup(t->x.easy);
    curl_slist_free_all(t->hdrs);
    free(t->body);
    free(t->answer);
    free(t);
drop:
    buf_fini(&text);
    gw_shadow_req_free(r);
}

/* ---- metrics ------------------------------------------------------------------- */

/* A label value: backslash, quote and newline escaped (exposition format 0.0.4). */
static void put_label(struct buf *b, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"') buf_putc(b, '\\');
        if (*s == '\n') buf_puts(b, "\\n");
        else buf_putc(b, *s);
    }
}

void gw_shadow_render(const struct gw_shadow *sh, struct buf *out)
{
    if (!sh) return;
    const struct gw_nodes *ns = sh->env.nodes;
    buf_puts(out, "# HELP ferry_shadow_total Shadow-sampled requests by answering node, "
                  "reference node and outcome.\n# TYPE ferry_shadow_total counter\n");
    for (int i = 0; i < ns->n; i++)
        for (int r = 0; r < ns->n; r++) {
            int any = 0;
            for (int o = 0; o < GW_SHADOW__N; o++) any |= sh->n[i][r][o] != 0;
            /* every pair that saw a request, and the configured reference's pairs */
            if (!any && !(r == sh->ref_cfg && i != r)) continue;
            for (int o = 0; o < GW_SHADOW__N; o++) {
                buf_puts(out, "ferry_shadow_total{node=\"");
                put_label(out, ns->node[i].name);
                buf_puts(out, "\",reference=\"");
                put_label(out, ns->node[r].name);
                buf_printf(out, "\",outcome=\"%s\"} %llu\n", g_out[o], sh->n[i][r][o]);
            }
        }
}
