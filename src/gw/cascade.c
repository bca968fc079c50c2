/* gw/cascade — cascade plans executed over HTTP (cascade.h). */
#include "gw/cascade.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#define LOGPROB_FLOOR (-9999.0)   /* OpenAI's "vanishing probability"; also -inf, NaN */

const char *gw_casc_result_name(enum gw_casc_result r)
{
    switch (r) {
    case GW_CASC_ACCEPTED: return "accepted";
    case GW_CASC_ESCALATED: return "escalated";
    case GW_CASC_UNKNOWN: return "unknown";
    default: return "?";
    }
}

static void no_cascade(struct fy_plan *p)
{
    p->escalate_below = 0;
    p->escalate_node = -1;
}

int gw_casc_sanitize(struct fy_plan *p, const struct fy_node *nodes, int n,
                     const unsigned char *excluded, int edge_only)
{
    if (!(p->escalate_below > 0)) {   /* also NaN */
        no_cascade(p);
        return 0;
    }
    int e = p->escalate_node;
    if (e < 0 || e >= n || e == p->node || (excluded && excluded[e]) ||
        (edge_only && nodes[e].role != FY_ROLE_EDGE)) {
        no_cascade(p);
        return 1;
    }
    if (p->escalate_below > 1) p->escalate_below = 1;
    /* both stages get the request as the client sent it */
    memset(p->img, FY_IMG_KEEP, sizeof p->img);
    p->aux_node = -1;
    p->downscale_px = 0;
    return 0;
}

/* ---- confidence ------------------------------------------------------------------- */

int gw_casc_conf_add(struct gw_casc_conf *c, const void *obj)
{
    const cJSON *root = obj;
    const cJSON *ch = cJSON_GetArrayItem(cJSON_GetObjectItemCaseSensitive(root, "choices"), 0);
    const cJSON *lp = cJSON_GetObjectItemCaseSensitive(ch, "logprobs");
    const cJSON *content = cJSON_GetObjectItemCaseSensitive(lp, "content");
    if (!cJSON_IsArray(content)) return 0;
    int k = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, content) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(it, "logprob");
        if (!cJSON_IsNumber(v)) continue;
        double l = v->valuedouble;
        if (!(l >= LOGPROB_FLOOR)) l = LOGPROB_FLOOR;   /* -inf, NaN, below the floor */
        if (l > 0) l = 0;                               /* a probability is at most 1 */
        c->sum += l;
        c->n++;
        k++;
    }
    return k;
}

double gw_casc_conf_value(const struct gw_casc_conf *c)
{
    return c->n > 0 ? exp(c->sum / (double)c->n) : -1;
}

/* 1 when root looks like a chat completion (object with a "choices" array). */
static int is_answer(const cJSON *root)
{
    return cJSON_IsObject(root) && cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(root, "choices"));
}

int gw_casc_confidence_json(const char *json, size_t len, double *conf)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!is_answer(root)) {
        cJSON_Delete(root);
        return -1;
    }
    struct gw_casc_conf c = {0, 0};
    gw_casc_conf_add(&c, root);
    cJSON_Delete(root);
    *conf = gw_casc_conf_value(&c);
    return c.n > 0 ? 0 : 1;
}

int gw_casc_confidence_event(struct gw_casc_conf *c, const char *data, size_t len)
{
    while (len && (*data == ' ' || *data == '\t')) { data++; len--; }
    if (len == 6 && !memcmp(data, "[DONE]", 6)) return 0;
    cJSON *root = cJSON_ParseWithLength(data, len);
    int k = is_answer(root) ? gw_casc_conf_add(c, root) : 0;
    cJSON_Delete(root);
    return k;
}

enum gw_casc_result gw_casc_judge(double conf, double below)
{
    if (conf < 0) return GW_CASC_UNKNOWN;
    return conf >= below ? GW_CASC_ACCEPTED : GW_CASC_ESCALATED;
}

/* ---- bodies ----------------------------------------------------------------------- */

char *gw_casc_stage1_body(struct fy_request *r, const char *model, size_t *len)
{
    cJSON *j = r->json;
    char *out = NULL;
    /* detach what stage 1 changes, put it back afterwards: the tree holds the images,
     * copying it would copy megabytes */
    cJSON *lp = cJSON_DetachItemFromObjectCaseSensitive(j, "logprobs");
    cJSON *st = cJSON_DetachItemFromObjectCaseSensitive(j, "stream");
    cJSON *so = cJSON_DetachItemFromObjectCaseSensitive(j, "stream_options");
    cJSON *m = cJSON_DetachItemFromObjectCaseSensitive(j, "model");
    if (cJSON_AddStringToObject(j, "model", model) && cJSON_AddTrueToObject(j, "logprobs") &&
        cJSON_AddFalseToObject(j, "stream"))
        out = cJSON_PrintUnformatted(j);
    cJSON_DeleteItemFromObjectCaseSensitive(j, "model");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "logprobs");
    cJSON_DeleteItemFromObjectCaseSensitive(j, "stream");
    if (m) cJSON_AddItemToObject(j, "model", m);
    if (lp) cJSON_AddItemToObject(j, "logprobs", lp);
    if (st) cJSON_AddItemToObject(j, "stream", st);
    if (so) cJSON_AddItemToObject(j, "stream_options", so);
    if (out) *len = strlen(out);
    return out;
}

/* Appends "data: <chunk>\n\n" for one chat.completion.chunk with the answer's id,
 * created, model (and system_fingerprint) and the given choices / usage. Takes
 * choices and usage over. 0 or -1. */
static int add_chunk(struct buf *b, const cJSON *ans, cJSON *choices, cJSON *usage,
                     int with_usage)
{
    static const char *const copy[] = {"id", "created", "model", "system_fingerprint"};
    cJSON *c = cJSON_CreateObject();
    int rc = -1;
    if (!c || !choices) goto out;
    for (size_t i = 0; i < sizeof copy / sizeof copy[0]; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(ans, copy[i]);
        if (!v) continue;
        cJSON *d = cJSON_Duplicate(v, 1);
        if (!d) goto out;
        cJSON_AddItemToObject(c, copy[i], d);
        if (i == 0) cJSON_AddStringToObject(c, "object", "chat.completion.chunk");
    }
    if (!cJSON_GetObjectItemCaseSensitive(c, "object"))
        cJSON_AddStringToObject(c, "object", "chat.completion.chunk");
    cJSON_AddItemToObject(c, "choices", choices);
    choices = NULL;
    if (with_usage) {
        cJSON_AddItemToObject(c, "usage", usage ? usage : cJSON_CreateNull());
        usage = NULL;
    }
    char *txt = cJSON_PrintUnformatted(c);
    if (!txt) goto out;
    rc = buf_printf(b, "data: %s\n\n", txt);
    free(txt);
out:
    cJSON_Delete(choices);
    cJSON_Delete(usage);
    cJSON_Delete(c);
    return rc;
}

/* One choice of a chunk: {"index":i,"delta":delta,"logprobs":lp,"finish_reason":fin}
 * (delta and lp taken over; lp NULL = null, fin NULL = null). */
static cJSON *chunk_choices(int index, cJSON *delta, cJSON *lp, const cJSON *fin)
{
    cJSON *arr = cJSON_CreateArray(), *ch = cJSON_CreateObject();
    if (!arr || !ch || !delta) {
        cJSON_Delete(arr);
        cJSON_Delete(ch);
        cJSON_Delete(delta);
        cJSON_Delete(lp);
        return NULL;
    }
    cJSON_AddNumberToObject(ch, "index", index);
    cJSON_AddItemToObject(ch, "delta", delta);
    cJSON_AddItemToObject(ch, "logprobs", lp ? lp : cJSON_CreateNull());
    cJSON *f = fin && !cJSON_IsNull(fin) ? cJSON_Duplicate(fin, 1) : cJSON_CreateNull();
    cJSON_AddItemToObject(ch, "finish_reason", f);
    cJSON_AddItemToArray(arr, ch);
    return arr;
}

static int to_sse(const cJSON *ans, int keep_logprobs, int include_usage, struct buf *b)
{
    const cJSON *choices = cJSON_GetObjectItemCaseSensitive(ans, "choices");
    const cJSON *ch;
    int i = 0;
    cJSON_ArrayForEach(ch, choices) {
        const cJSON *idx = cJSON_GetObjectItemCaseSensitive(ch, "index");
        int index = cJSON_IsNumber(idx) ? idx->valueint : i;
        const cJSON *msg = cJSON_GetObjectItemCaseSensitive(ch, "message");
        /* 1: the role */
        cJSON *d = cJSON_CreateObject();
        if (d) {
            cJSON_AddStringToObject(d, "role", "assistant");
            cJSON_AddStringToObject(d, "content", "");
        }
        if (add_chunk(b, ans, chunk_choices(index, d, NULL, NULL), NULL, include_usage) < 0)
            return -1;
        /* 2: the message itself, role aside */
        d = cJSON_IsObject(msg) ? cJSON_Duplicate(msg, 1) : cJSON_CreateObject();
        if (d) cJSON_DeleteItemFromObjectCaseSensitive(d, "role");
        const cJSON *lp = cJSON_GetObjectItemCaseSensitive(ch, "logprobs");
        cJSON *lpd = keep_logprobs && lp && !cJSON_IsNull(lp) ? cJSON_Duplicate(lp, 1) : NULL;
        if (add_chunk(b, ans, chunk_choices(index, d, lpd, NULL), NULL, include_usage) < 0)
            return -1;
        /* 3: the end */
        const cJSON *fin = cJSON_GetObjectItemCaseSensitive(ch, "finish_reason");
        cJSON *stop = cJSON_CreateString("stop");
        int rc = add_chunk(b, ans, chunk_choices(index, cJSON_CreateObject(), NULL,
                                                 fin && !cJSON_IsNull(fin) ? fin : stop),
                           NULL, include_usage);
        cJSON_Delete(stop);
        if (rc < 0) return -1;
        i++;
    }
    if (include_usage) {
        const cJSON *u = cJSON_GetObjectItemCaseSensitive(ans, "usage");
        cJSON *ud = u && !cJSON_IsNull(u) ? cJSON_Duplicate(u, 1) : NULL;
        if (add_chunk(b, ans, cJSON_CreateArray(), ud, 1) < 0) return -1;
    }
    return buf_puts(b, "data: [DONE]\n\n");
}

char *gw_casc_client_body(const char *json, size_t len, int keep_logprobs, int stream,
                          int include_usage, size_t *outlen)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    char *out = NULL;
    if (!is_answer(root)) goto done;
    if (!stream) {
        if (keep_logprobs) {
            out = malloc(len + 1);
            if (out) {
                memcpy(out, json, len);
                out[len] = 0;
                *outlen = len;
            }
            goto done;
        }
        cJSON *ch;
        cJSON_ArrayForEach(ch, cJSON_GetObjectItemCaseSensitive(root, "choices")) {
            if (!cJSON_IsObject(ch)) continue;
            cJSON *nul = cJSON_CreateNull();
            if (!nul) goto done;
            if (cJSON_GetObjectItemCaseSensitive(ch, "logprobs"))
                cJSON_ReplaceItemInObjectCaseSensitive(ch, "logprobs", nul);
            else
                cJSON_AddItemToObject(ch, "logprobs", nul);
        }
        out = cJSON_PrintUnformatted(root);
        if (out) *outlen = strlen(out);
        goto done;
    }
    struct buf b;
    buf_init(&b);
    if (to_sse(root, keep_logprobs, include_usage, &b) < 0) {
        buf_fini(&b);
        goto done;
    }
    *outlen = b.len;
    out = buf_steal(&b);
done:
    cJSON_Delete(root);
    return out;
}

void gw_casc_plan_str(const struct fy_plan *p, const struct fy_node *nodes, const char *rest,
                      char *out, size_t cap)
{
    snprintf(out, cap, "cascade:%s>%s@%.2f;%s", nodes[p->node].name,
             nodes[p->escalate_node].name, p->escalate_below, rest ? rest : "");
}

/* ---- the stage-1 transfer --------------------------------------------------------- */

struct gw_casc *gw_casc_new(const struct fy_plan *p)
{
    struct gw_casc *c = calloc(1, sizeof *c);
    if (!c) return NULL;
    c->plan = *p;
    c->confidence = -1;
    c->result = GW_CASC_ESCALATED;
    buf_init(&c->resp);
    return c;
}

static size_t on_write(char *p, size_t sz, size_t nm, void *arg)
{
    struct gw_casc *c = arg;
    size_t n = sz * nm;
    if (c->resp.len + n > GW_CASC_ANSWER_MAX || buf_append(&c->resp, p, n) < 0)
        return 0;   /* aborts the transfer: judged as a failed stage 1 */
    return n;
}

static void on_done(struct gw_xfer *x, CURLcode rc)
{
    struct gw_casc *c = (struct gw_casc *)x;
    c->rc = rc;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &c->status);
    gw_up_remove(c->up, x);
    curl_easy_cleanup(x->easy);
    x->easy = NULL;
    c->live = 0;
    double conf = -1;
    c->answered = rc == CURLE_OK && c->status == 200 &&
                  gw_casc_confidence_json(c->resp.data ? c->resp.data : "", c->resp.len,
                                          &conf) >= 0;
    c->confidence = c->answered ? conf : -1;
    c->result = c->answered ? gw_casc_judge(conf, c->plan.escalate_below) : GW_CASC_ESCALATED;
    c->done(c, c->arg);
}

int gw_casc_start(struct gw_casc *c, struct gw_up *up, const char *url,
                  struct curl_slist *hdrs, char *body, size_t len, long connect_ms,
                  long total_ms, gw_casc_cb done, void *arg)
{
    free(c->body);
    c->body = body;
    if (!body) return -1;
    buf_reset(&c->resp);
    c->up = up;
    c->done = done;
    c->arg = arg;
    c->status = 0;
    c->answered = 0;
    c->confidence = -1;
    c->x.done = on_done;
    c->x.easy = curl_easy_init();
    CURL *e = c->x.easy;
    if (!e) return -1;
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, c);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, total_ms);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, hdrs);
    if (gw_up_add(up, &c->x)) {
        curl_easy_cleanup(e);
        c->x.easy = NULL;
        return -1;
    }
    c->live = 1;
    return 0;
}

void gw_casc_cancel(struct gw_casc *c)
{
    if (!c || !c->live) return;
    gw_up_remove(c->up, &c->x);
    curl_easy_cleanup(c->x.easy);
    c->x.easy = NULL;
    c->live = 0;
}

void gw_casc_free(struct gw_casc *c)
{
    if (!c) return;
    gw_casc_cancel(c);
    free(c->body);
    free(c->snap);
    buf_fini(&c->resp);
    free(c);
}
