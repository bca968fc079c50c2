/* fuzz-profile.c — libFuzzer target for the simulator's file parsers: byte 0 selects
 * the INI profile loader (node_lib_load, then every node resolved and driven through the
 * service model and its link) or the image-pool CSV reader (sim_pool_load). Seeds:
 * fuzz/corpus/fuzz-profile/ (the shipped profiles). */
#define _GNU_SOURCE /* memfd_create */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "node/link.h"
#include "node/profile.h"
#include "node/service.h"
#include "sim/workload.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static char g_path[64];

static void drive(const struct fy_node *n, const struct link_spec *ls)
{
    struct node_svc *s = node_svc_new(&n->prof, NULL);
    if (s) {
        for (uint64_t i = 0; i < 4; i++) node_svc_submit(s, 0, i, 10 + (int)i, 64, 5);
        for (int k = 0; k < 64 && !isinf(node_svc_next_time(s)); k++)
            if (node_svc_advance(s, node_svc_next_time(s), NULL, NULL) < 0) break;
        struct fy_node_state st;
        node_svc_state(s, &st);
        node_svc_free(s);
    }
    if (ls && ls->kind != LINK_SERIES) { /* series would read files named by the input */
        char err[256];
        struct link *l = link_new(ls, 1, err, sizeof err);
        if (l) {
            link_upload_end(l, 0, 1e6, 1, 0);
            link_up_mbps_at(l, 1e7);
            link_free(l);
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    if (!g_path[0]) {
        /* an in-memory file (nothing left behind); fopen "wb" reopens and truncates it */
        int fd = memfd_create("fuzz-profile", 0);
        if (fd < 0) {
            perror("fuzz-profile: memfd_create");
            abort();
        }
        snprintf(g_path, sizeof g_path, "/proc/self/fd/%d", fd);
    }
    FILE *fp = fopen(g_path, "wb");
    if (!fp) return 0;
    fwrite(data + 1, 1, size - 1, fp);
    fclose(fp);
    char err[512];
    if (data[0] & 1) {
        struct sim_image *pool = NULL;
        int n = 0;
        if (sim_pool_load(g_path, &pool, &n, err, sizeof err) == 0) {
            for (int i = 1; i < n; i++)
                if (pool[i].f.c_img < pool[i - 1].f.c_img) abort(); /* sorted by c_img */
            free(pool);
        }
        return 0;
    }
    struct node_lib lib;
    node_lib_init(&lib);
    if (node_lib_load(&lib, g_path, err, sizeof err) == 0) {
        for (int i = 0; i < lib.nnode && i < 8; i++) {
            struct fy_node n;
            if (node_lib_resolve(&lib, lib.node[i].name, &n, err, sizeof err) == 0) {
                if (!(n.prof.decode_tps > 0) || !(n.prof.prefill_tps > 0)) abort();
                drive(&n, node_lib_find_link(&lib, lib.node[i].link));
            }
        }
    }
    node_lib_fini(&lib);
    return 0;
}
