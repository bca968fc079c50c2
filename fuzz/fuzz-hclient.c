/* fuzz-hclient — the response-head parser of the gateway's backend client
 * (gw_hc_parse_head, gw/hclient.h): status line, framing headers, Content-Type. Backends
 * are configured by the operator but their bytes are still untrusted. Checks the
 * contract: a result within the input, a status of 100..999, framing never ambiguous. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/hclient.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_hc_resp r;
    int rc = gw_hc_parse_head((const char *)data, size, &r);
    if (rc > (int)size || rc < -1) abort();
    if (rc > 0) {
        if (r.status < 100 || r.status > 999 || (r.minor != 0 && r.minor != 1)) abort();
        if (r.chunked && r.content_length >= 0) abort();
        if (memchr(r.ctype, 0, sizeof r.ctype) == NULL) abort();
    }
    return 0;
}
