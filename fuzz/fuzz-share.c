/* fuzz-share — gw_share_parse_load, the parser of another replica's load value read
 * from Redis (gw/share.h): bytes another process wrote, so untrusted. The input is used
 * as is (no NUL) and also behind the value's magic line, so the fuzzer reaches the
 * line parser without having to find the magic first. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/share.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char names[3][FY_NAME_MAX] = {"edge", "cloud", "a"};
    int inflight[3] = {0};
    double tokens[3] = {0};
    gw_share_parse_load((const char *)data, size, names, 3, inflight, tokens);
    size_t ml = strlen(GW_SHARE_LOAD_MAGIC);
    char *v = malloc(ml + size);
    if (!v) return 0;
    memcpy(v, GW_SHARE_LOAD_MAGIC, ml);
    if (size) memcpy(v + ml, data, size);
    gw_share_parse_load(v, ml + size, names, 3, inflight, tokens);
    free(v);
    return 0;
}
