/* fuzz-b64.c — libFuzzer target for base64: decode with both alphabets; on success the
 * size equals b64_decoded_len and is within b64_decoded_max, and encoding then decoding
 * again gives the same bytes (abort otherwise). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util/b64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *in = (const char *)data;
    size_t cap = b64_decoded_max(size);
    uint8_t *out = malloc(cap + 1), *back = malloc(cap + 1);
    char *enc = malloc(b64_encoded_len(cap, 1) + 1);
    if (!out || !back || !enc) abort();
    for (int a = 0; a < 2; a++) {
        size_t n = 0;
        int rc = b64_decode(in, size, (enum b64_alphabet)a, out, cap, &n);
        if (rc != 0) {
            if (rc != B64_EBADCHAR && rc != B64_EPAD && rc != B64_ETRUNC) abort();
            continue;
        }
        if (n > cap || n != b64_decoded_len(in, size)) abort();
        for (int pad = 0; pad < 2; pad++) {
            size_t m = b64_encode(out, n, (enum b64_alphabet)a, pad, enc);
            size_t n2 = 0;
            if (m != b64_encoded_len(n, pad)) abort();
            if (b64_decode(enc, m, (enum b64_alphabet)a, back, cap, &n2) != 0) abort();
            if (n2 != n || memcmp(out, back, n) != 0) abort();
        }
        /* one byte less room than needed must be refused, never overrun */
        if (n > 0 && b64_decode(in, size, (enum b64_alphabet)a, back, n - 1, &n) != B64_ESPACE)
            abort();
    }
    free(out);
    free(back);
    free(enc);
    return 0;
}
