/* fuzz-gw — the gateway's parsers of untrusted or operator-written bytes: the INI
 * configuration (gw_config_load_string), a backend's /metrics page
 * (gw_nodes_parse_metrics) and the usage/answer extraction from a backend's reply
 * (gw_route_answer_text). The first input byte picks the parser. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "gw/config.h"
#include "gw/nodes.h"
#include "gw/route.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    int which = data[0] % 3;
    data++;
    size--;
    char *s = malloc(size + 1);
    if (!s) return 0;
    memcpy(s, data, size);
    s[size] = 0;
    if (which == 0) {
        static struct gw_config c;
        char err[512];
        gw_config_load_string(s, "fuzz.ini", &c, err, sizeof err);
    } else if (which == 1) {
        double r = -1, w = -1;
        gw_nodes_parse_metrics(s, size, &r, &w);
    } else {
        free(gw_route_answer_text(s, size));
    }
    free(s);
    return 0;
}
