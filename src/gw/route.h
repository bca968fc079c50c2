/* gw/route — from a parsed request to the body a backend receives: features, the
 * routing decision (a pinned node, or the configured policy over the live nodes), and
 * the modality plan applied for real to the pass-through JSON:
 *   KEEP       the image part is sent as it came
 *   DOWNSCALE  decoded, area-resized so the longer side is plan.downscale_px,
 *              re-encoded as JPEG and sent as a new data: URL (worker thread)
 *   DROP       the image part is removed
 *   SPLIT      the images go to plan.aux_node with a request for a short description;
 *              the answering node gets the text plus that description in their place
 * Every field of the client's body other than "model" (and the images a plan changes)
 * is forwarded untouched; the "ferry" object was already removed by req_parse. */
#ifndef FERRY_GW_ROUTE_H
#define FERRY_GW_ROUTE_H
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"
#include "gw/config.h"
#include "policy/policy.h"

#define GW_PIN_AUTO    (-1)   /* "ferry" / "auto": the policy decides */
#define GW_PIN_UNKNOWN (-2)   /* no node has that name or backend model */

/* The prompt the split plan sends with the images to the describing node. */
#define GW_SPLIT_PROMPT "Describe the image(s) briefly and factually: objects, text, " \
                        "numbers, colours and layout that a question about them may need."

/* GW_PIN_AUTO, GW_PIN_UNKNOWN or the index of the node that model pins. */
int gw_route_pin(const struct gw_config *c, const char *model);

/* Features of r (feat_request; decodes images: run on a worker). 0 or -1 with err. */
int gw_route_features(const struct fy_request *r, struct fy_features *f, char *err,
                      size_t errlen);

/* Calls pol->decide over ctx with the nodes in excluded[] (and unhealthy ones, unless
 * every candidate is unhealthy) taken out. When the policy fails or answers an excluded
 * node, the least-loaded remaining node is used with every image kept. Privacy
 * edge-only (ctx->prefs) is enforced here for every policy: no cloud node answers or
 * describes. 0, or -1 when no node is left. The returned plan is validated (indices in
 * range, actions known). */
int gw_route_decide(const struct fy_policy *pol, void *state, const struct pol_ctx *ctx,
                    const uint8_t *excluded, struct fy_plan *plan, struct fy_estimate *est);

/* Operator cap ([limits] max_image_side): every kept data: image of r whose longer side
 * exceeds side becomes DOWNSCALE, and plan.downscale_px is lowered to side when larger.
 * side <= 0: nothing. Returns the number of images changed. */
int gw_route_cap_images(const struct fy_request *r, struct fy_plan *p, int side);

/* 1 if the plan downscales, drops or splits any of the n images. */
int gw_route_plan_has(const struct fy_plan *p, int n, enum fy_img_action a);

/* DOWNSCALE: re-encodes every such data: image (worker thread). http(s) image references
 * are left as they are. 0 or -1 with err. */
int gw_route_downscale(struct fy_request *r, const struct fy_plan *p, int quality, char *err,
                       size_t errlen);
/* SPLIT: the describe request for the aux node (malloc'd JSON) with the split images. */
char *gw_route_split_body(const struct fy_request *r, const struct fy_plan *p,
                          const char *aux_model, int max_tokens, size_t *len);
/* SPLIT: puts "[Image description: desc]" where the first split image was and removes
 * the other split images; DROP images are removed. Call once, after the description
 * arrived (desc NULL or "" when there is none). 0 or -1. */
int gw_route_apply_text(struct fy_request *r, const struct fy_plan *p, const char *desc);
/* The body for the backend: r's JSON with "model" set to model. malloc'd, or NULL. */
char *gw_route_body(struct fy_request *r, const char *model, size_t *len);
/* X-Ferry-Plan value: "node=edge0;img=keep,downscale:448,drop;aux=cloud0". */
void gw_route_plan_str(const struct fy_plan *p, int nimages, const struct fy_node *nodes,
                       char *out, size_t cap);
/* Answer text of a non-streamed chat completion (choices[0].message.content), or NULL. */
char *gw_route_answer_text(const char *json, size_t len);

#endif
