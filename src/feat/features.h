/* features — a parsed request (struct fy_request) to struct fy_features: per-image
 * complexity through feat_image_analyze, text and dialogue features through feat/text.
 * Which text each field covers (docs/features.md, "Text and dialogue features"):
 *   text_tokens       all text parts of all messages (what the model prefills, without
 *                     chat-template overhead)
 *   last_text_tokens, sentences, c_L, c_ner, c_text, task, ngram
 *                     the text parts of the last user message (the current prompt)
 *   turn              user messages before the last one (0 = first turn)
 *   history_tokens, history_images
 *                     text tokens and images of the messages before the last user message
 *   img[]             every image of the request in order (at most FY_MAX_IMAGES);
 *                     http(s) references are not fetched: format unknown, all zero. */
#ifndef FEAT_FEATURES_H
#define FEAT_FEATURES_H
#include <stddef.h>

#include "ferry.h"
#include "feat/image.h"
#include "feat/text.h"

/* o: image options (NULL = defaults); tp: text parameters (NULL = defaults). Returns 0,
 * or -1 with err naming the image by its JSON path
 * ("messages[3].content[1].image_url.url: png: truncated data"). Cost:
 * one image decode + analysis per data: image (milliseconds), O(text bytes) for text. */
int feat_request_ex(const struct fy_request *r, const struct feat_image_opts *o,
                    const struct feat_text_params *tp, struct fy_features *out, char *err,
                    size_t errlen);
/* The agreed entry point: default text parameters. */
int feat_request(const struct fy_request *r, const struct feat_image_opts *o,
                 struct fy_features *out, char *err, size_t errlen);
/* Text and dialogue fields only (no image decoding): every field except img[] details;
 * nimages is set and img[] holds format/width/height/bytes from the request. */
void feat_request_text(const struct fy_request *r, const struct feat_text_params *tp,
                       struct fy_features *out);

#endif
