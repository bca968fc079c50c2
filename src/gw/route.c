/* gw/route — decision and modality plans applied to the pass-through JSON (route.h). */
#include "gw/route.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "feat/features.h"
#include "feat/image.h"
#include "gw/cascade.h"
#include "req/request.h"
#include "util/b64.h"

int gw_route_pin(const struct gw_config *c, const char *model)
{
    if (!model[0] || !strcmp(model, "ferry") || !strcmp(model, "auto")) return GW_PIN_AUTO;
    int i = gw_config_find_node(c, model);
    return i >= 0 ? i : GW_PIN_UNKNOWN;
}

int gw_route_features(const struct fy_request *r, struct fy_features *f, char *err,
                      size_t errlen)
{
    struct feat_image_opts o;
    feat_image_opts_default(&o);
    return feat_request(r, &o, f, err, errlen) ? -1 : 0;
}

static int plan_valid(const struct fy_plan *p, int nnodes, int nimages)
{
    if (p->node < 0 || p->node >= nnodes) return 0;
    if (p->aux_node < -1 || p->aux_node >= nnodes) return 0;
    for (int i = 0; i < nimages && i < FY_MAX_IMAGES; i++) {
        if (p->img[i] > FY_IMG_SPLIT) return 0;
        if (p->img[i] == FY_IMG_SPLIT && p->aux_node < 0) return 0;
        if (p->img[i] == FY_IMG_DOWNSCALE && p->downscale_px < 28) return 0;
    }
    return 1;
}

int gw_route_decide(const struct fy_policy *pol, void *state, const struct pol_ctx *ctx,
                    const uint8_t *excluded, struct fy_plan *plan, struct fy_estimate *est)
{
    struct fy_node nodes[FY_MAX_NODES];
    int n = ctx->nnodes, any_healthy = 0, any = 0;
    memcpy(nodes, ctx->nodes, (size_t)n * sizeof nodes[0]);
    for (int i = 0; i < n; i++) {
        if (excluded && excluded[i]) nodes[i].st.healthy = 0;
        else {
            any = 1;
            if (nodes[i].st.healthy) any_healthy = 1;
        }
    }
    if (!any) return -1;
    /* Health is a guess from the past: when every candidate looks down, try them. */
    if (!any_healthy)
        for (int i = 0; i < n; i++)
            if (!excluded || !excluded[i]) nodes[i].st.healthy = 1;
    struct pol_ctx c = *ctx;
    c.nodes = nodes;
    memset(plan, 0, sizeof *plan);
    if (est) memset(est, 0, sizeof *est);
    int rc = pol ? pol->decide(state, &c, plan, est) : -1;
    int nimg = ctx->f ? ctx->f->nimages : 0;
    /* privacy edge-only is a hard rule whatever the policy says (docs/request.md) */
    int edge_only = ctx->prefs && ctx->prefs->privacy == FY_PRIV_EDGE_ONLY;
    int ok = rc >= 0 && plan_valid(plan, n, nimg) && nodes[plan->node].st.healthy &&
             (plan->aux_node < 0 || nodes[plan->aux_node].st.healthy);
    if (ok && edge_only)
        ok = nodes[plan->node].role == FY_ROLE_EDGE &&
             (plan->aux_node < 0 || nodes[plan->aux_node].role == FY_ROLE_EDGE);
    if (!ok) {
        int k = pol_least_loaded_node(&c, edge_only ? FY_ROLE_EDGE : -1);
        if (k < 0) return -1;
        pol_plan_keep(plan, k);
        if (est) memset(est, 0, sizeof *est);
    }
    /* cascades: a valid escalation target, never a cloud one for edge-only requests */
    gw_casc_sanitize(plan, nodes, n, excluded, edge_only);
    return 0;
}

int gw_route_cap_images(const struct fy_request *r, struct fy_plan *p, int side)
{
    if (side <= 0) return 0;
    int n = 0, any_down = 0;
    for (int i = 0; i < r->nimages && i < FY_MAX_IMAGES; i++) {
        const struct fy_image_ref *im = &r->images[i];
        if (p->img[i] == FY_IMG_DOWNSCALE) any_down = 1;
        if (p->img[i] != FY_IMG_KEEP || !im->is_data) continue;
        if (im->width > side || im->height > side) {
            p->img[i] = FY_IMG_DOWNSCALE;
            n++;
        }
    }
    if (n && (!any_down || p->downscale_px > side || p->downscale_px <= 0)) p->downscale_px = side;
    else if (any_down && p->downscale_px > side) p->downscale_px = side;
    return n;
}

int gw_route_plan_has(const struct fy_plan *p, int n, enum fy_img_action a)
{
    for (int i = 0; i < n && i < FY_MAX_IMAGES; i++)
        if (p->img[i] == a) return 1;
    return 0;
}

/* The JSON path of image i's URL, as feat_request names a failing image. */
static void image_path(const struct fy_request *r, int i, char *out, size_t cap)
{
    const struct fy_message *msg = &r->messages[r->images[i].message];
    int k = 0;
    while (k < msg->nparts && r->parts[msg->first_part + k].image != i) k++;
    snprintf(out, cap, "messages[%d].content[%d].image_url.url", r->images[i].message, k);
}

int gw_route_downscale(struct fy_request *r, const struct fy_plan *p, int quality, char *err,
                       size_t errlen)
{
    for (int i = 0; i < r->nimages && i < FY_MAX_IMAGES; i++) {
        struct fy_image_ref *im = &r->images[i];
        if (p->img[i] != FY_IMG_DOWNSCALE || !im->is_data || !im->bytes) continue;
        if (im->width <= p->downscale_px && im->height <= p->downscale_px) continue;
        uint8_t *jpg = NULL;
        size_t jl = 0;
        char e[200];
        if (feat_image_downscale_jpeg(im->bytes, im->nbytes, p->downscale_px, quality, &jpg,
                                      &jl, e, sizeof e)) {
            char where[96];
            image_path(r, i, where, sizeof where);
            snprintf(err, errlen, "%s: downscale: %s", where, e);
            return -1;
        }
        static const char prefix[] = "data:image/jpeg;base64,";
        size_t el = b64_encoded_len(jl, 1);
        char *url = malloc(sizeof prefix + el + 1);
        if (!url) {
            free(jpg);
            snprintf(err, errlen, "image %d: out of memory", i);
            return -1;
        }
        memcpy(url, prefix, sizeof prefix - 1);
        b64_encode(jpg, jl, B64_STD, 1, url + sizeof prefix - 1);
        free(jpg);
        int rc = req_set_image_url(r, i, url);
        free(url);
        if (rc) {
            snprintf(err, errlen, "image %d: cannot rewrite its URL", i);
            return -1;
        }
    }
    return 0;
}

/* The content part holding image i (its "image_url.url" is images[i].url_node), with the
 * array it sits in. */
static cJSON *find_part(cJSON *json, const cJSON *url_node, cJSON **arr)
{
    cJSON *msgs = cJSON_GetObjectItemCaseSensitive(json, "messages");
    cJSON *m;
    cJSON_ArrayForEach(m, msgs) {
        cJSON *content = cJSON_GetObjectItemCaseSensitive(m, "content");
        if (!cJSON_IsArray(content)) continue;
        cJSON *part;
        cJSON_ArrayForEach(part, content) {
            cJSON *iu = cJSON_GetObjectItemCaseSensitive(part, "image_url");
            cJSON *u = cJSON_IsObject(iu) ? cJSON_GetObjectItemCaseSensitive(iu, "url") : iu;
            if (u && u == url_node) {
                *arr = content;
                return part;
            }
        }
    }
    return NULL;
}

char *gw_route_split_body(const struct fy_request *r, const struct fy_plan *p,
                          const char *aux_model, int max_tokens, size_t *len)
{
    cJSON *root = cJSON_CreateObject(), *msgs = NULL, *msg, *content;
    char *out = NULL;
    if (!root) return NULL;
    cJSON_AddStringToObject(root, "model", aux_model);
    cJSON_AddNumberToObject(root, "max_tokens", max_tokens);
    cJSON_AddBoolToObject(root, "stream", 0);
    msgs = cJSON_AddArrayToObject(root, "messages");
    msg = cJSON_CreateObject();
    if (!msgs || !msg) goto done;
    cJSON_AddItemToArray(msgs, msg);
    cJSON_AddStringToObject(msg, "role", "user");
    content = cJSON_AddArrayToObject(msg, "content");
    if (!content) goto done;
    cJSON *t = cJSON_CreateObject();
    cJSON_AddItemToArray(content, t);
    cJSON_AddStringToObject(t, "type", "text");
    cJSON_AddStringToObject(t, "text", GW_SPLIT_PROMPT);
    for (int i = 0; i < r->nimages && i < FY_MAX_IMAGES; i++) {
        if (p->img[i] != FY_IMG_SPLIT) continue;
        cJSON *arr;
        cJSON *part = find_part(r->json, r->images[i].url_node, &arr);
        if (part) cJSON_AddItemToArray(content, cJSON_Duplicate(part, 1));
    }
    out = cJSON_PrintUnformatted(root);
    if (out) *len = strlen(out);
done:
    cJSON_Delete(root);
    return out;
}

int gw_route_apply_text(struct fy_request *r, const struct fy_plan *p, const char *desc)
{
    int placed = 0;
    for (int i = 0; i < r->nimages && i < FY_MAX_IMAGES; i++) {
        if (p->img[i] != FY_IMG_SPLIT && p->img[i] != FY_IMG_DROP) continue;
        cJSON *arr = NULL;
        cJSON *part = find_part(r->json, r->images[i].url_node, &arr);
        if (!part) continue;
        if (p->img[i] == FY_IMG_SPLIT && !placed && desc && *desc) {
            cJSON *t = cJSON_CreateObject();
            if (!t) return -1;
            size_t dl = strlen(desc) + 32;
            char *txt = malloc(dl);
            if (!txt) { cJSON_Delete(t); return -1; }
            snprintf(txt, dl, "[Image description: %s]", desc);
            cJSON_AddStringToObject(t, "type", "text");
            cJSON_AddStringToObject(t, "text", txt);
            free(txt);
            cJSON_ReplaceItemViaPointer(arr, part, t);
            placed = 1;
        } else {
            cJSON_DetachItemViaPointer(arr, part);
            cJSON_Delete(part);
        }
        /* the part (and its url string) is gone: forget the pointers into it */
        r->images[i].url_node = NULL;
        r->images[i].url = "";
    }
    return 0;
}

char *gw_route_body(struct fy_request *r, const char *model, size_t *len)
{
    cJSON *m = cJSON_GetObjectItemCaseSensitive(r->json, "model");
    if (cJSON_IsString(m)) {
        if (!cJSON_SetValuestring(m, model)) return NULL;
    } else {
        cJSON *s = cJSON_CreateString(model);
        if (!s) return NULL;
        if (m) cJSON_ReplaceItemInObjectCaseSensitive(r->json, "model", s);
        else cJSON_AddItemToObject(r->json, "model", s);
    }
    char *out = cJSON_PrintUnformatted(r->json);
    if (out) *len = strlen(out);
    return out;
}

static const char *act_name(int a)
{
    switch (a) {
    case FY_IMG_KEEP: return "keep";
    case FY_IMG_DOWNSCALE: return "downscale";
    case FY_IMG_DROP: return "drop";
    case FY_IMG_SPLIT: return "split";
    default: return "?";
    }
}

void gw_route_plan_str(const struct fy_plan *p, int nimages, const struct fy_node *nodes,
                       char *out, size_t cap)
{
    size_t k = (size_t)snprintf(out, cap, "node=%s", nodes[p->node].name);
    for (int i = 0; i < nimages && i < FY_MAX_IMAGES && k < cap; i++) {
        k += (size_t)snprintf(out + k, cap - k, "%s%s", i ? "," : ";img=", act_name(p->img[i]));
        if (p->img[i] == FY_IMG_DOWNSCALE && k < cap)
            k += (size_t)snprintf(out + k, cap - k, ":%d", p->downscale_px);
    }
    if (p->aux_node >= 0 && k < cap)
        snprintf(out + k, cap - k, ";aux=%s", nodes[p->aux_node].name);
}

char *gw_route_answer_text(const char *json, size_t len)
{
    cJSON *root = cJSON_ParseWithLength(json, len);
    char *out = NULL;
    cJSON *ch = cJSON_GetObjectItemCaseSensitive(root, "choices");
    cJSON *c0 = cJSON_GetArrayItem(ch, 0);
    cJSON *msg = cJSON_GetObjectItemCaseSensitive(c0, "message");
    cJSON *content = cJSON_GetObjectItemCaseSensitive(msg, "content");
    if (cJSON_IsString(content)) out = strdup(content->valuestring);
    cJSON_Delete(root);
    return out;
}
