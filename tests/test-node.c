#include "test.h"
#include "node/service.h"

TEST(node_placeholder_builds)
{
    struct fy_node_profile p = {.prefill_tps = 1000, .decode_tps = 100, .max_seqs = 2};
    struct node_svc *s = node_svc_new(&p, NULL);
    CHECK(s != NULL);
    node_svc_free(s);
}
