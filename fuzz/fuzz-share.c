/* fuzz-share — the parsers of what other replicas wrote to Redis (gw/share.h), so
 * untrusted: gw_share_parse_load (a replica's load value; the input is used as is, no
 * NUL, and also behind the value's magic line, so the fuzzer reaches the line parser
 * without having to find the magic first) and gw_share_parse_feedback (one forwarded
 * feedback entry). */
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
    char id[48];
    double score;
    if (gw_share_parse_feedback((const char *)data, size, id, sizeof id, &score) == 0 &&
        (strlen(id) == 0 || strlen(id) > 47 || !(score >= 0 && score <= 1)))
        __builtin_trap();   /* the contract of gw_share_parse_feedback */
    size_t ml = strlen(GW_SHARE_LOAD_MAGIC);
    char *v = malloc(ml + size);
    if (!v) return 0;
    memcpy(v, GW_SHARE_LOAD_MAGIC, ml);
    if (size) memcpy(v + ml, data, size);
    gw_share_parse_load(v, ml + size, names, 3, inflight, tokens);
    free(v);
    return 0;
}
