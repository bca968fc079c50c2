/* collect — `ferry bench collect` engine (collect.h). */
#include "emu/collect.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>
#include <curl/curl.h>

#include "emu/answers.h"
#include "emu/reply.h"
#include "emu/score.h"
#include "feat/features.h"
#include "feat/image.h"
#include "feat/tokens.h"
#include "gw/config.h"
#include "pred/trace.h"
#include "req/request.h"
#include "util/b64.h"
#include "util/buf.h"
#include "util/clock.h"

#define DEFAULT_MAX_TOKENS 64

/* ==== dataset ========================================================================= */

struct item {
    char id[64];
    char dataset[64];
    char skill[32];
    enum fy_task task;
    int task_given;               /* task from the dataset (else feat's guess) */
    enum emu_score_kind kind;
    char *prompt;                 /* question (+ choices), malloc'd */
    char *refs[COLLECT_MAX_REFS];
    int nrefs;
    char *choices[COLLECT_MAX_REFS];
    int nchoices;
    char *images[FY_MAX_IMAGES];  /* resolved paths */
    int nimages;
    double difficulty;            /* < 0 = none */
    int max_tokens;
};

static void item_fini(struct item *it)
{
    free(it->prompt);
    for (int i = 0; i < it->nrefs; i++) free(it->refs[i]);
    for (int i = 0; i < it->nchoices; i++) free(it->choices[i]);
    for (int i = 0; i < it->nimages; i++) free(it->images[i]);
    memset(it, 0, sizeof *it);
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* Resolves an image path: as is when absolute, else against the dataset's folder, then
 * against base. Returns a malloc'd path or NULL when the file exists nowhere. */
static char *resolve_image(const char *p, const char *dsdir, const char *base)
{
    char buf[4096];
    if (p[0] == '/') return file_exists(p) ? strdup(p) : NULL;
    snprintf(buf, sizeof buf, "%s/%s", dsdir, p);
    if (file_exists(buf)) return strdup(buf);
    snprintf(buf, sizeof buf, "%s/%s", base, p);
    if (file_exists(buf)) return strdup(buf);
    return NULL;
}

/* Reads an array of strings (or one string) into dst; -1 with err. */
static int get_strings(const cJSON *o, const char *key, char **dst, int *n, const char *where,
                       char *err, size_t errlen)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    *n = 0;
    if (!v) return 0;
    if (cJSON_IsString(v)) {
        dst[(*n)++] = strdup(v->valuestring);
        return dst[0] ? 0 : -1;
    }
    if (!cJSON_IsArray(v)) {
        snprintf(err, errlen, "%s: \"%s\": expected a string or an array of strings", where, key);
        return -1;
    }
    int i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e)) {
            snprintf(err, errlen, "%s: \"%s\"[%d]: expected a string", where, key, i);
            return -1;
        }
        if (*n >= COLLECT_MAX_REFS) {
            snprintf(err, errlen, "%s: \"%s\": more than %d entries", where, key, COLLECT_MAX_REFS);
            return -1;
        }
        if (!(dst[(*n)++] = strdup(e->valuestring))) return -1;
        i++;
    }
    return 0;
}

static int parse_item(const char *line, size_t len, const char *where, const char *dsdir,
                      const char *base, struct item *it, char *err, size_t errlen)
{
    memset(it, 0, sizeof *it);
    it->difficulty = -1;
    it->max_tokens = DEFAULT_MAX_TOKENS;
    cJSON *o = cJSON_ParseWithLength(line, len);
    if (!cJSON_IsObject(o)) {
        snprintf(err, errlen, "%s: not a JSON object", where);
        cJSON_Delete(o);
        return -1;
    }
    int rc = -1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, "id");
    if (!cJSON_IsString(v) || !v->valuestring[0] || strlen(v->valuestring) >= sizeof it->id) {
        snprintf(err, errlen, "%s: \"id\": expected a non-empty string of < %zu bytes", where,
                 sizeof it->id);
        goto out;
    }
    snprintf(it->id, sizeof it->id, "%s", v->valuestring);
    v = cJSON_GetObjectItemCaseSensitive(o, "dataset");
    if (cJSON_IsString(v)) snprintf(it->dataset, sizeof it->dataset, "%s", v->valuestring);
    v = cJSON_GetObjectItemCaseSensitive(o, "skill");
    if (cJSON_IsString(v)) snprintf(it->skill, sizeof it->skill, "%s", v->valuestring);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(o, "question");
    if (!cJSON_IsString(q) || !q->valuestring[0]) {
        snprintf(err, errlen, "%s: \"question\": expected a non-empty string", where);
        goto out;
    }
    if (get_strings(o, "answers", it->refs, &it->nrefs, where, err, errlen) < 0) goto out;
    if (!it->nrefs && get_strings(o, "answer", it->refs, &it->nrefs, where, err, errlen) < 0)
        goto out;
    if (!it->nrefs) {
        snprintf(err, errlen, "%s: \"answers\": at least one reference answer is required", where);
        goto out;
    }
    if (get_strings(o, "choices", it->choices, &it->nchoices, where, err, errlen) < 0) goto out;
    if (it->nchoices > 8) {
        snprintf(err, errlen, "%s: \"choices\": at most 8 (letters A..H)", where);
        goto out;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "kind");
    if (v) {
        int k = cJSON_IsString(v) ? emu_score_kind_parse(v->valuestring) : -1;
        if (k < 0) {
            snprintf(err, errlen, "%s: \"kind\": expected vqa, mcq, exact or contains", where);
            goto out;
        }
        it->kind = (enum emu_score_kind)k;
    } else {
        it->kind = it->nchoices ? EMU_SCORE_MCQ : it->nrefs >= 3 ? EMU_SCORE_VQA
                                                                 : EMU_SCORE_CONTAINS;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "task");
    it->task = it->kind == EMU_SCORE_MCQ ? FY_TASK_MCQ : FY_TASK_CHAT;
    if (v && (!cJSON_IsString(v) || trace_task_parse(v->valuestring, &it->task) < 0)) {
        snprintf(err, errlen, "%s: \"task\": unknown task name", where);
        goto out;
    }
    it->task_given = v != NULL || it->kind == EMU_SCORE_MCQ;
    v = cJSON_GetObjectItemCaseSensitive(o, "difficulty");
    if (v) {
        if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0 && v->valuedouble <= 1)) {
            snprintf(err, errlen, "%s: \"difficulty\": expected a number in [0, 1]", where);
            goto out;
        }
        it->difficulty = v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "max_tokens");
    if (v) {
        if (!cJSON_IsNumber(v) || v->valuedouble < 1 || v->valuedouble > 32768) {
            snprintf(err, errlen, "%s: \"max_tokens\": expected an integer in 1..32768", where);
            goto out;
        }
        it->max_tokens = (int)v->valuedouble;
    }
    v = cJSON_GetObjectItemCaseSensitive(o, "images");
    if (v) {
        if (!cJSON_IsArray(v)) {
            snprintf(err, errlen, "%s: \"images\": expected an array of paths", where);
            goto out;
        }
        const cJSON *e;
        cJSON_ArrayForEach(e, v) {
            if (!cJSON_IsString(e)) {
                snprintf(err, errlen, "%s: \"images\"[%d]: expected a path", where, it->nimages);
                goto out;
            }
            if (it->nimages >= FY_MAX_IMAGES) {
                snprintf(err, errlen, "%s: \"images\": more than %d", where, FY_MAX_IMAGES);
                goto out;
            }
            char *p = resolve_image(e->valuestring, dsdir, base);
            if (!p) {
                snprintf(err, errlen, "%s: \"images\"[%d]: %s: not found (looked in %s and %s)",
                         where, it->nimages, e->valuestring, dsdir, base);
                goto out;
            }
            it->images[it->nimages++] = p;
        }
    }
    /* the prompt: the question, then the choices one per line */
    struct buf b;
    buf_init(&b);
    buf_puts(&b, q->valuestring);
    if (it->nchoices) {
        for (int i = 0; i < it->nchoices; i++) {
            const char *c = it->choices[i];
            int labelled = isalpha((unsigned char)c[0]) && (c[1] == '.' || c[1] == ')');
            if (labelled) buf_printf(&b, "\n%s", c);
            else buf_printf(&b, "\n%c. %s", 'A' + i, c);
        }
        buf_puts(&b, "\nAnswer with the option's letter.");
    }
    it->prompt = buf_steal(&b);
    rc = 0;
out:
    cJSON_Delete(o);
    if (rc < 0) item_fini(it);
    return rc;
}

/* Reads the whole dataset; -1 with "path:line: what". */
static int load_dataset(const char *path, const char *base, struct item **out, int *n,
                        char *err, size_t errlen)
{
    FILE *fp = fopen(path, "r");
    if (!fp) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    char dsdir[2048];
    snprintf(dsdir, sizeof dsdir, "%s", path);
    char *slash = strrchr(dsdir, '/');
    if (slash) *slash = 0;
    else snprintf(dsdir, sizeof dsdir, ".");
    struct item *items = NULL;
    int cnt = 0, cap = 0, rc = -1, lineno = 0;
    char *line = malloc(COLLECT_MAX_LINE + 2);
    if (!line) goto out;
    while (fgets(line, COLLECT_MAX_LINE + 2, fp)) {
        lineno++;
        size_t len = strlen(line);
        char where[2200];
        snprintf(where, sizeof where, "%s:%d", path, lineno);
        if (len > COLLECT_MAX_LINE) {
            snprintf(err, errlen, "%s: line longer than %u bytes", where, COLLECT_MAX_LINE);
            goto out;
        }
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
        size_t k = 0;
        while (k < len && isspace((unsigned char)line[k])) k++;
        if (k == len || line[k] == '#') continue;
        if (cnt >= COLLECT_MAX_ITEMS) {
            snprintf(err, errlen, "%s: more than %d items", path, COLLECT_MAX_ITEMS);
            goto out;
        }
        if (cnt == cap) {
            int nc = cap ? cap * 2 : 64;
            struct item *ni = realloc(items, (size_t)nc * sizeof *ni);
            if (!ni) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            items = ni;
            cap = nc;
        }
        if (parse_item(line + k, len - k, where, dsdir, base, &items[cnt], err, errlen) < 0)
            goto out;
        for (int i = 0; i < cnt; i++)
            if (!strcmp(items[i].id, items[cnt].id)) {
                snprintf(err, errlen, "%s: duplicate id \"%s\"", where, items[cnt].id);
                item_fini(&items[cnt]);
                goto out;
            }
        cnt++;
    }
    if (ferror(fp)) {
        snprintf(err, errlen, "%s: read error", path);
        goto out;
    }
    rc = 0;
out:
    free(line);
    fclose(fp);
    if (rc < 0) {
        for (int i = 0; i < cnt; i++) item_fini(&items[i]);
        free(items);
        return -1;
    }
    *out = items;
    *n = cnt;
    return 0;
}

/* ==== requests ======================================================================== */

struct active {                   /* an item being run on its nodes */
    const struct item *it;
    char **urls;                  /* data: URLs of its images */
    size_t img_bytes;
    int pending;
    struct trace_record *rec;
};

struct xfer {
    CURL *e;
    struct curl_slist *hdr;
    struct active *a;
    int node;                     /* index into the selected nodes */
    char *body;
    size_t body_len;
    struct emu_reply rep;
    double t0;
};

static const char *mime_of(enum fy_img_format f)
{
    return f == FY_FMT_JPEG ? "image/jpeg" : f == FY_FMT_PNG ? "image/png"
         : f == FY_FMT_WEBP ? "image/webp" : "application/octet-stream";
}

static size_t on_body(char *p, size_t sz, size_t n, void *arg)
{
    struct xfer *x = arg;
    return emu_reply_feed(&x->rep, p, sz * n) < 0 ? 0 : sz * n;
}

static char *build_body(const struct item *it, char *const *urls, const struct gw_node_cfg *nc,
                        int send_metadata)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", nc->model[0] ? nc->model : nc->name);
    cJSON_AddBoolToObject(root, "stream", 1);
    cJSON_AddBoolToObject(cJSON_AddObjectToObject(root, "stream_options"), "include_usage", 1);
    cJSON_AddNumberToObject(root, "max_tokens", it->max_tokens);
    cJSON_AddNumberToObject(root, "temperature", 0);
    cJSON *msgs = cJSON_AddArrayToObject(root, "messages");
    cJSON *m = cJSON_CreateObject();
    cJSON_AddItemToArray(msgs, m);
    cJSON_AddStringToObject(m, "role", "user");
    cJSON *content = cJSON_AddArrayToObject(m, "content");
    for (int i = 0; i < it->nimages; i++) {
        cJSON *part = cJSON_CreateObject();
        cJSON_AddStringToObject(part, "type", "image_url");
        cJSON_AddStringToObject(cJSON_AddObjectToObject(part, "image_url"), "url", urls[i]);
        cJSON_AddItemToArray(content, part);
    }
    cJSON *tp = cJSON_CreateObject();
    cJSON_AddStringToObject(tp, "type", "text");
    cJSON_AddStringToObject(tp, "text", it->prompt);
    cJSON_AddItemToArray(content, tp);
    if (send_metadata) {
        cJSON *md = cJSON_AddObjectToObject(root, "metadata");
        cJSON_AddStringToObject(md, "answer", it->refs[0]);
        if (it->difficulty >= 0) cJSON_AddNumberToObject(md, "difficulty", it->difficulty);
        if (it->skill[0]) cJSON_AddStringToObject(md, "skill", it->skill);
    }
    char *txt = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return txt;
}

/* Loads the item's images as data: URLs and fills the request features. */
static int activate(struct active *a, const struct item *it, double t_ms, char *err,
                    size_t errlen)
{
    memset(a, 0, sizeof *a);
    a->it = it;
    a->rec = calloc(1, sizeof *a->rec);
    a->urls = calloc((size_t)it->nimages + 1, sizeof *a->urls);
    if (!a->rec || !a->urls) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct trace_record *r = a->rec;
    snprintf(r->id, sizeof r->id, "%s", it->id);
    snprintf(r->dataset, sizeof r->dataset, "%s", it->dataset);
    r->t_ms = t_ms;
    struct feat_image_opts fo;
    feat_image_opts_default(&fo);
    for (int i = 0; i < it->nimages; i++) {
        uint8_t *bytes = NULL;
        size_t n = 0;
        if (feat_read_file(it->images[i], COLLECT_MAX_IMAGE, &bytes, &n, err, errlen) < 0)
            return -1;
        enum fy_img_format fmt;
        int w, h;
        char ierr[256];
        if (feat_image_probe(bytes, n, &fmt, &w, &h, ierr, sizeof ierr) < 0) {
            snprintf(err, errlen, "item %s: %s: %s", it->id, it->images[i], ierr);
            free(bytes);
            return -1;
        }
        const char *mime = mime_of(fmt);
        size_t need = strlen("data:;base64,") + strlen(mime) + b64_encoded_len(n, 1) + 1;
        char *url = malloc(need);
        if (!url) {
            free(bytes);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        int k = snprintf(url, need, "data:%s;base64,", mime);
        b64_encode(bytes, n, B64_STD, 1, url + k);
        a->urls[i] = url;
        a->img_bytes += n;
        free(bytes);
    }
    /* features of the request exactly as sent (feat_request: images and text) */
    struct gw_node_cfg anon;
    memset(&anon, 0, sizeof anon);
    snprintf(anon.name, sizeof anon.name, "features");
    char *body = build_body(it, a->urls, &anon, 0);
    if (!body) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    struct req_limits lim;
    req_limits_default(&lim);
    lim.max_body_bytes = strlen(body) + 1;
    struct req_error rerr;
    struct fy_request *fr = req_parse(body, strlen(body), &lim, &rerr);
    free(body);
    if (!fr) {
        snprintf(err, errlen, "item %s: %s: %s", it->id, rerr.path, rerr.msg);
        return -1;
    }
    char ferr[256];
    int frc = feat_request(fr, &fo, &r->f, ferr, sizeof ferr);
    req_free(fr);
    if (frc < 0) {
        snprintf(err, errlen, "item %s: %s", it->id, ferr);
        return -1;
    }
    if (it->task_given) r->f.task = it->task; /* the dataset's label beats the guess */
    return 0;
}

static void deactivate(struct active *a)
{
    if (a->urls)
        for (int i = 0; i < a->it->nimages; i++) free(a->urls[i]);
    free(a->urls);
    free(a->rec);
    memset(a, 0, sizeof *a);
}

/* ==== run ============================================================================= */

/* Sorted ids already in the output (resume). */
struct idset { char (*id)[64]; size_t n; };

static int cmp_id(const void *a, const void *b) { return strcmp(a, b); }

static int load_done(const char *path, struct idset *s, char *err, size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (!path || !file_exists(path)) return 0;
    struct trace_record *recs = NULL;
    size_t n = 0;
    if (trace_read_file(path, 0, &recs, &n, err, errlen) < 0) return -1;
    s->id = calloc(n ? n : 1, sizeof *s->id);
    if (!s->id) {
        free(recs);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < n; i++) memcpy(s->id[i], recs[i].id, sizeof s->id[i]);
    s->n = n;
    free(recs);
    qsort(s->id, s->n, sizeof *s->id, cmp_id);
    return 0;
}

static int is_done(const struct idset *s, const char *id)
{
    return s->n && bsearch(id, s->id, s->n, sizeof *s->id, cmp_id) != NULL;
}

void emu_collect_opts_default(struct emu_collect_opts *o)
{
    memset(o, 0, sizeof *o);
    o->concurrency = 4;
    o->send_metadata = 1;
    o->timeout_ms = 300000;
}

static double nonneg(double v) { return v > 0 ? v : 0; }

/* Fills the outcome of transfer x in its record. */
static void finish_xfer(struct xfer *x, CURLcode cc, const struct gw_node_cfg *nc,
                        struct emu_collect_stats *st)
{
    long status = 0;
    curl_easy_getinfo(x->e, CURLINFO_RESPONSE_CODE, &status);
    double t_end = clock_now_ms();
    emu_reply_end(&x->rep);
    const struct item *it = x->a->it;
    struct trace_outcome *t = &x->a->rec->out[x->node];
    memset(t, 0, sizeof *t);
    snprintf(t->node, sizeof t->node, "%s", nc->name);
    t->role = nc->role;
    snprintf(t->model, sizeof t->model, "%s", nc->model[0] ? nc->model : nc->name);
    t->link.up_mbps = nonneg(nc->link.up_mbps);
    t->link.down_mbps = nonneg(nc->link.down_mbps);
    t->link.rtt_ms = nonneg(nc->link.rtt_ms);
    t->link.jitter_ms = nonneg(nc->link.jitter_ms);
    t->state.healthy = 1;
    t->bytes_up = (double)x->body_len;
    for (int i = 0; i < it->nimages; i++) t->image_tokens += x->a->rec->f.img[i].tokens[FY_VT_QWEN2VL];
    struct fy_outcome *o = &t->o;
    o->plan.node = x->node;
    o->plan.aux_node = -1;
    int ok = cc == CURLE_OK && status == 200 && x->rep.done;
    o->failed = !ok;
    o->quality = -1;
    o->e2e_ms = t_end - x->t0;
    o->ttft_ms = x->rep.t_first > 0 ? x->rep.t_first - x->t0 : o->e2e_ms;
    o->t_prefill_ms = o->ttft_ms;            /* upload + queue + prefill, as seen by a client */
    o->t_decode_ms = o->e2e_ms - o->ttft_ms;
    const char *reply = x->rep.content.data ? x->rep.content.data : "";
    o->in_tokens = x->rep.usage ? x->rep.prompt_tokens : 0;
    o->out_tokens = x->rep.usage ? x->rep.completion_tokens : emu_tokens(reply, strlen(reply));
    if (ok) {
        o->quality = emu_score(it->kind, reply, (const char *const *)it->refs, it->nrefs,
                               (const char *const *)it->choices, it->nchoices);
        st->score_sum += o->quality;
    } else {
        st->failed++;
    }
    o->cost_usd = (o->in_tokens * nonneg(nc->usd_per_mtok_in) +
                   o->out_tokens * nonneg(nc->usd_per_mtok_out)) / 1e6;
    st->runs++;
}

static void xfer_free(struct xfer *x)
{
    if (!x) return;
    if (x->e) curl_easy_cleanup(x->e);
    curl_slist_free_all(x->hdr);
    free(x->body);
    emu_reply_fini(&x->rep);
    free(x);
}

int emu_collect_run(const struct emu_collect_opts *o, struct emu_collect_stats *st,
                    char *err, size_t errlen)
{
    memset(st, 0, sizeof *st);
    struct gw_config *cfg = calloc(1, sizeof *cfg);
    struct item *items = NULL;
    int nitems = 0, rc = -1, sel[FY_MAX_NODES], nsel = 0;
    struct idset done = {0};
    FILE *out = NULL;
    CURLM *multi = NULL;
    struct active *act = NULL;
    struct xfer **xs = NULL; /* transfers in flight, conc slots */
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const char *base = o->base;
    if (!base || !*base) base = getenv("FERRY_SHARED");
    if (!base || !*base) base = "../shared";
    gw_config_default(cfg);
    if (gw_config_load(o->config, cfg, err, errlen) < 0) goto out;
    if (o->nodes && *o->nodes) {
        char tmp[1024];
        snprintf(tmp, sizeof tmp, "%s", o->nodes);
        for (char *save = NULL, *tok = strtok_r(tmp, ",", &save); tok;
             tok = strtok_r(NULL, ",", &save)) {
            int k = -1;
            for (int i = 0; i < cfg->nnodes; i++)
                if (!strcmp(cfg->nodes[i].name, tok)) k = i;
            if (k < 0) {
                snprintf(err, errlen, "--nodes: no node '%s' in %s", tok, o->config);
                goto out;
            }
            if (nsel < FY_MAX_NODES) sel[nsel++] = k;
        }
    } else {
        for (int i = 0; i < cfg->nnodes; i++) sel[nsel++] = i;
    }
    if (nsel < 1) {
        snprintf(err, errlen, "%s: no nodes", o->config);
        goto out;
    }
    if (load_dataset(o->dataset, base, &items, &nitems, err, errlen) < 0) goto out;
    if (load_done(o->out, &done, err, errlen) < 0) goto out;
    out = o->out ? fopen(o->out, "a") : stdout;
    if (!out) {
        snprintf(err, errlen, "%s: %s", o->out, strerror(errno));
        goto out;
    }
    st->items = nitems;
    int conc = o->concurrency > 0 ? o->concurrency : 4;
    /* at most conc items are active at once (each holds its images in memory) */
    act = calloc((size_t)conc, sizeof *act);
    xs = calloc((size_t)conc, sizeof *xs);
    multi = curl_multi_init();
    if (!act || !xs || !multi) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    double t_start = clock_now_ms(), last_progress = 0;
    int next_item = 0, next_node = 0, running = 0, limit_left = o->limit > 0 ? o->limit : -1;
    struct active *cur = NULL; /* item whose nodes are being dispatched */
    for (;;) {
        /* dispatch while below the concurrency bound */
        while (running < conc) {
            if (!cur) {
                while (next_item < nitems && is_done(&done, items[next_item].id)) {
                    st->skipped++;
                    next_item++;
                }
                if (next_item >= nitems || limit_left == 0) break;
                int slot = -1;
                for (int i = 0; i < conc; i++)
                    if (!act[i].it) { slot = i; break; }
                if (slot < 0) break;
                if (activate(&act[slot], &items[next_item], clock_now_ms() - t_start, err,
                             errlen) < 0) {
                    deactivate(&act[slot]);
                    goto out;
                }
                cur = &act[slot];
                cur->rec->nout = nsel;
                next_node = 0;
                next_item++;
                if (limit_left > 0) limit_left--;
            }
            const struct gw_node_cfg *nc = &cfg->nodes[sel[next_node]];
            struct xfer *x = calloc(1, sizeof *x);
            if (!x) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            x->a = cur;
            x->node = next_node;
            emu_reply_init(&x->rep);
            x->body = build_body(cur->it, cur->urls, nc, o->send_metadata);
            x->e = curl_easy_init();
            if (!x->body || !x->e) {
                xfer_free(x);
                snprintf(err, errlen, "out of memory");
                goto out;
            }
            x->body_len = strlen(x->body);
            char url[GW_URL_MAX + 32], auth[GW_KEY_MAX + 32];
            snprintf(url, sizeof url, "%s/v1/chat/completions", nc->url);
            x->hdr = curl_slist_append(NULL, "Content-Type: application/json");
            x->hdr = curl_slist_append(x->hdr, "Accept: text/event-stream");
            if (nc->api_key[0]) {
                snprintf(auth, sizeof auth, "Authorization: Bearer %s", nc->api_key);
                x->hdr = curl_slist_append(x->hdr, auth);
            }
            curl_easy_setopt(x->e, CURLOPT_URL, url);
            curl_easy_setopt(x->e, CURLOPT_HTTPHEADER, x->hdr);
            curl_easy_setopt(x->e, CURLOPT_POSTFIELDS, x->body);
            curl_easy_setopt(x->e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len);
            curl_easy_setopt(x->e, CURLOPT_WRITEFUNCTION, on_body);
            curl_easy_setopt(x->e, CURLOPT_WRITEDATA, x);
            curl_easy_setopt(x->e, CURLOPT_PRIVATE, x);
            curl_easy_setopt(x->e, CURLOPT_NOSIGNAL, 1L);
            curl_easy_setopt(x->e, CURLOPT_TIMEOUT_MS, o->timeout_ms > 0 ? o->timeout_ms : 300000L);
            x->t0 = clock_now_ms();
            for (int i = 0; i < conc; i++)
                if (!xs[i]) { xs[i] = x; break; }
            curl_multi_add_handle(multi, x->e);
            cur->pending++;
            running++;
            if (++next_node >= nsel) cur = NULL;
        }
        if (!running) break;
        int still = 0;
        curl_multi_perform(multi, &still);
        CURLMsg *msg;
        int left;
        while ((msg = curl_multi_info_read(multi, &left))) {
            if (msg->msg != CURLMSG_DONE) continue;
            struct xfer *x = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&x);
            CURLcode cc = msg->data.result;
            curl_multi_remove_handle(multi, x->e);
            for (int i = 0; i < conc; i++)
                if (xs[i] == x) xs[i] = NULL;
            finish_xfer(x, cc, &cfg->nodes[sel[x->node]], st);
            struct active *a = x->a;
            xfer_free(x);
            running--;
            if (--a->pending == 0 && a != cur) {
                if (trace_write(out, a->rec) < 0 || fflush(out) != 0) {
                    snprintf(err, errlen, "%s: write error", o->out ? o->out : "stdout");
                    goto out;
                }
                st->done++;
                deactivate(a);
            }
            double now = clock_now_ms();
            if (o->progress && (now - last_progress > 200 || !running)) {
                last_progress = now;
                fprintf(stderr, "\rcollect: %d/%d items (%d skipped), %d runs, %d failed, "
                                "%d in flight   ", st->done + st->skipped, nitems, st->skipped,
                        st->runs, st->failed, running);
            }
        }
        if (running) curl_multi_poll(multi, NULL, 0, 100, NULL);
    }
    if (o->progress) fprintf(stderr, "\n");
    rc = 0;
out:
    if (multi) {
        /* on error: abandon transfers still running */
        for (int i = 0; xs && i < (o->concurrency > 0 ? o->concurrency : 4); i++)
            if (xs[i]) {
                curl_multi_remove_handle(multi, xs[i]->e);
                xfer_free(xs[i]);
            }
        curl_multi_cleanup(multi);
    }
    free(xs);
    if (act)
        for (int i = 0; i < (o->concurrency > 0 ? o->concurrency : 4); i++)
            if (act[i].it) deactivate(&act[i]);
    free(act);
    if (out && out != stdout) fclose(out);
    for (int i = 0; i < nitems; i++) item_fini(&items[i]);
    free(items);
    free(done.id);
    free(cfg);
    return rc;
}
