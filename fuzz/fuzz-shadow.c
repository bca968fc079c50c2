/* fuzz-shadow — gw/shadow's readers of backend answers, which are untrusted bytes:
 * gw_shadow_content on the input as a non-streamed JSON answer and as SSE text, then
 * gw_shadow_score of what it found against the input itself (as text, NUL-terminated). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/shadow.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    for (int stream = 0; stream < 2; stream++) {
        struct buf out;
        buf_init(&out);
        int rc = gw_shadow_content((const char *)data, size, stream, &out);
        if (rc == 0 && (!out.data || out.len > GW_SHADOW_TEXT_MAX)) __builtin_trap();
        if (rc == 0) {
            char *ref = malloc(size + 1);
            if (ref) {
                memcpy(ref, data, size);
                ref[size] = 0;
                for (int k = GW_SHADOW_AUTO; k <= GW_SHADOW_LETTER; k++) {
                    double sc = gw_shadow_score((enum gw_shadow_cmp)k, out.data, ref);
                    if (!(sc == -1 || (sc >= 0 && sc <= 1))) __builtin_trap();
                }
                free(ref);
            }
        }
        buf_fini(&out);
    }
    return 0;
}
