/* request — parse an OpenAI chat-completions request body into struct fy_request
 * (include/ferry.h), with ferry's per-request preferences ("ferry" object and X-Ferry-*
 * headers). The format, the limits and the error format are documented in
 * docs/request.md.
 *
 * Untrusted bytes are bounded before they are touched: the body size and the JSON
 * nesting depth are checked on the raw bytes BEFORE cJSON parses; the decoded size of
 * each data: URL is computed before base64 decoding allocates; the pixel count of each
 * image is read from its header (feat_image_probe) without decoding pixels. */
#ifndef FERRY_REQ_REQUEST_H
#define FERRY_REQ_REQUEST_H
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

struct req_limits {
    size_t max_body_bytes;      /* raw body; default 32 MiB */
    int max_depth;              /* JSON nesting of objects + arrays; default 64 */
    int max_messages;           /* default 1024 */
    int max_parts;              /* content parts over all messages; default 4096 */
    int max_images;             /* image parts over all messages; default 16 (<= FY_MAX_IMAGES) */
    size_t max_image_bytes;     /* decoded bytes of one data: URL image; default 20 MiB */
    uint64_t max_pixels;        /* width*height of one image; default FEAT_IMAGE_MAX_PIXELS (40 000 000) */
    size_t max_text_bytes;      /* one text part; default 4 MiB */
};

/* One error a client caused: HTTP status, the JSON path and a message. */
struct req_error {
    int status;                 /* 400 bad request, 413 too large, 415 unsupported media type */
    char path[128];             /* e.g. "messages[2].content[1].image_url.url", "body" */
    char msg[256];              /* e.g. "unsupported media type image/gif" */
};

void req_limits_default(struct req_limits *l);

/* Parses body[0..len) (need not be NUL-terminated). l == NULL: defaults. Returns the
 * request (free with req_free) or NULL with *err filled. O(len); allocates the cJSON
 * tree and the decoded image bytes, nothing else proportional to the input. */
struct fy_request *req_parse(const char *body, size_t len, const struct req_limits *l,
                             struct req_error *err);

/* Applies one HTTP header. Preference headers (case-insensitive): X-Ferry-Tradeoff,
 * X-Ferry-Slo-Ms, X-Ferry-Min-Quality, X-Ferry-Privacy, X-Ferry-Max-Cost-Usd,
 * X-Ferry-Session; they override the body's "ferry" object. Returns 0 when applied,
 * 1 when the header is not one of these (ignored; the gateway may define others), or
 * -1 with *err (status 400, path "header X-Ferry-...") for a bad value. */
int req_apply_header(struct fy_request *r, const char *name, const char *value,
                     struct req_error *err);

/* Replaces the URL of image i in the pass-through JSON (e.g. a downscaled image re-encoded
 * as a data: URL by the gateway). The image's decoded bytes stay as parsed; url points to
 * the new string. Returns 0 or -1 (bad index, out of memory). */
int req_set_image_url(struct fy_request *r, int i, const char *url);

/* Index of the last message with role user, or -1. */
int req_last_user(const struct fy_request *r);

/* Validates UTF-8 (no overlongs, no surrogates, <= U+10FFFF). Returns -1 when valid,
 * else the byte offset of the first invalid sequence. */
long req_utf8_invalid_at(const char *s, size_t n);

void req_free(struct fy_request *r);

#endif
