/* fuzz-gw-cascade — what the gateway does with a backend's stage-1 answer of a cascade
 * (gw/cascade.h): the confidence of a chat.completion or of SSE event payloads, and the
 * conversion of an accepted answer for the client (JSON without logprobs, or SSE). The
 * first input byte picks the variant. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/cascade.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int which = data[0] % 4;
    data++;
    size--;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    size_t n = 0;
    double conf;
    if (which == 0) {
        gw_casc_confidence_json(s, size, &conf);
    } else if (which == 1) {
        struct gw_casc_conf c = {0, 0};
        /* every line is one event's data payload */
        for (char *p = s, *nl; p; p = nl ? nl + 1 : NULL) {
            nl = memchr(p, '\n', size - (size_t)(p - s));
            gw_casc_confidence_event(&c, p, nl ? (size_t)(nl - p) : size - (size_t)(p - s));
        }
        gw_casc_conf_value(&c);
    } else {
        free(gw_casc_client_body(s, size, which == 3, which == 2 || which == 3, 1, &n));
    }
    free(s);
    return 0;
}
