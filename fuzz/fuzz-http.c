/* fuzz-http — the gateway's HTTP/1.1 request parsers (gw/http.h), which read untrusted
 * bytes from every client: the head parser (gw_http_parse_head) and the chunked-body
 * decoder (gw_http_chunked). The first input byte picks the parser; for the decoder the
 * input is decoded once whole and once fed in pieces whose sizes come from the input,
 * and both runs must agree (result, consumed bytes, decoded body). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/http.h"

static void fuzz_head(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1);
    if (!s) return;
    memcpy(s, data, size);
    s[size] = 0;
    static struct gw_hreq r;
    int rc = gw_http_parse_head(s, size, &r);
    if (rc > (int)size) abort();
    if (rc > 0) {
        if (!r.path || !r.method_name || !r.query || (r.minor != 0 && r.minor != 1)) abort();
        if (r.nhdr < 0 || r.nhdr > GW_HTTP_MAX_HEADERS) abort();
        for (int i = 0; i < r.nhdr; i++)
            if (!r.hdr[i].name[0] || strlen(r.hdr[i].name) + strlen(r.hdr[i].value) > size) abort();
        if (r.chunked && r.content_length >= 0) abort();
        (void)gw_http_header(&r, "content-length");
    } else if (rc < 0 && rc != -400 && rc != -414 && rc != -431 && rc != -501 && rc != -505 &&
               rc != -417) {
        abort();
    }
    if (rc < 0 && (!r.err[0] || strlen(r.err) >= sizeof r.err)) abort();   /* a reason */
    if (rc >= 0 && r.err[0]) abort();
    free(s);
}

static void fuzz_chunked(const uint8_t *data, size_t size)
{
    if (size < 1) return;
    size_t step = (size_t)(data[0] % 7) + 1;
    data++;
    size--;
    const size_t max = 4096;
    struct gw_chunked a, b;
    memset(&a, 0, sizeof a);
    memset(&b, 0, sizeof b);
    struct buf oa, ob;
    buf_init(&oa);
    buf_init(&ob);
    size_t ua = 0;
    int ra = gw_http_chunked(&a, (const char *)data, size, &oa, max, &ua);
    size_t ub = 0;
    int rb = 0;
    while (ub < size) {
        size_t k = size - ub < step ? size - ub : step;
        size_t u = 0;
        rb = gw_http_chunked(&b, (const char *)data + ub, k, &ob, max, &u);
        ub += u;
        if (rb != 0) break;
        if (u != k) abort();            /* "need more" means everything was consumed */
    }
    if (ra != rb || ua != ub || oa.len != ob.len || oa.len > max) abort();
    if (oa.len && memcmp(oa.data, ob.data, oa.len)) abort();
    if (ua > size) abort();
    buf_fini(&oa);
    buf_fini(&ob);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (data[0] & 1) fuzz_chunked(data + 1, size - 1);
    else fuzz_head(data + 1, size - 1);
    return 0;
}
