/* fuzz-model.c — libFuzzer target for the model file loader (pred_load): arbitrary
 * bytes are written to an in-memory file (memfd: nothing is left behind) and loaded; the
 * loader must refuse or accept without crashing, and an accepted bank must save and load
 * again. Seeds:
 * fuzz/corpus/fuzz-model/ (a small trained model). */
#define _GNU_SOURCE /* memfd_create */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "pred/pred.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64], path2[64];
    if (!path[0]) {
        int a = memfd_create("fuzz-model", 0), b = memfd_create("fuzz-model-2", 0);
        if (a < 0 || b < 0) {
            perror("fuzz-model: memfd_create");
            abort();
        }
        /* fopen(..., "wb") of these paths reopens the memfd and truncates it */
        snprintf(path, sizeof path, "/proc/self/fd/%d", a);
        snprintf(path2, sizeof path2, "/proc/self/fd/%d", b);
    }
    FILE *fp = fopen(path, "wb");
    if (!fp) return 0;
    fwrite(data, 1, size, fp);
    fclose(fp);
    char err[256];
    struct pred *p = pred_load(path, NULL, 0, err, sizeof err);
    if (p) {
        if (pred_save(p, path2, err, sizeof err) == 0) {
            struct pred *q = pred_load(path2, NULL, 0, err, sizeof err);
            if (!q) abort();
            pred_free(q);
        }
        pred_free(p);
    }
    return 0;
}
