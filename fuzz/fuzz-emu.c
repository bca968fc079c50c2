/* fuzz-emu — the bytes ferry's emulator side reads from others: OpenAI responses
 * (SSE or JSON, fed in arbitrary pieces) with the answer scorer run on what they
 * contain, labelled-dataset lines, and fault option values. The input's first byte
 * picks the target; any crash, leak or UB is a bug. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "emu/dataset.h"
#include "emu/faults.h"
#include "emu/reply.h"
#include "emu/score.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2) return 0;
    int target = data[0] % 3, cut = data[1];
    const char *p = (const char *)data + 2;
    size_t n = size - 2;
    if (target == 0) {
        struct emu_reply r;
        emu_reply_init(&r);
        size_t step = (size_t)cut % 64 + 1;
        for (size_t i = 0; i < n; i += step)
            if (emu_reply_feed(&r, p + i, n - i < step ? n - i : step) < 0) break;
        emu_reply_end(&r);
        const char *reply = r.content.data ? r.content.data : "";
        const char *refs[3] = {"two", "B", reply};
        const char *choices[2] = {"A. cat", reply};
        for (int k = 0; k < 4; k++)
            (void)emu_score((enum emu_score_kind)k, reply, refs, 3, choices, 2);
        emu_reply_fini(&r);
    } else if (target == 1) {
        struct emu_item it;
        char err[256];
        if (emu_item_parse(p, n, "fuzz", "/nonexistent", "/nonexistent", &it, err,
                           sizeof err) == 0)
            emu_item_fini(&it);
    } else {
        char *s = malloc(n + 1);
        if (!s) return 0;
        memcpy(s, p, n);
        s[n] = 0;
        struct emu_faults fs;
        char err[256];
        emu_faults_init(&fs);
        (void)emu_fault_parse((enum emu_fault_kind)(cut % EMU_FAULT__N), s, &fs, err, sizeof err);
        char norm[256];
        emu_score_normalize(s, norm, sizeof norm);
        free(s);
    }
    return 0;
}
