/* fuzz-request.c — libFuzzer target for the request parser and the text features:
 * req_parse (with small limits so one input stays fast), the X-Ferry-* headers, the
 * pass-through print, feat_request on what parsed, and the text functions on the raw
 * bytes. Contract checks abort: a refusal has status 400/413/415, a path and a message. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "feat/features.h"
#include "feat/text.h"
#include "req/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct req_limits l;
    struct req_error e;
    req_limits_default(&l);
    l.max_body_bytes = 1 << 20;
    l.max_pixels = 1 << 20;
    struct fy_request *r = req_parse((const char *)data, size, &l, &e);
    if (!r) {
        if ((e.status != 400 && e.status != 413 && e.status != 415) || !e.path[0] || !e.msg[0])
            abort();
    } else {
        /* a header value taken from the input */
        char val[32];
        size_t k = size < sizeof val - 1 ? size : sizeof val - 1;
        memcpy(val, data, k);
        val[k] = '\0';
        (void)req_apply_header(r, "X-Ferry-Tradeoff", val, &e);
        (void)req_apply_header(r, "X-Ferry-Session", val, &e);
        char *out = cJSON_PrintUnformatted(r->json);
        if (!out) abort();
        free(out);
        static struct fy_features f;
        struct feat_image_opts io;
        char err[256];
        feat_image_opts_default(&io);
        io.max_pixels = 1 << 20;
        (void)feat_request(r, &io, &f, err, sizeof err);
        if (r->nimages > 0 && req_set_image_url(r, 0, "https://example.org/x.jpg") != 0) abort();
        req_free(r);
    }
    struct feat_text_stats st;
    float v[FY_HASH_DIM] = {0};
    feat_text_stats((const char *)data, size, NULL, &st);
    if (st.c_text < 0 || st.c_text > 1 || st.tokens < 0) abort();
    (void)feat_text_task((const char *)data, size);
    feat_text_ngrams_add(v, (const char *)data, size);
    feat_text_ngrams_normalize(v);
    return 0;
}
