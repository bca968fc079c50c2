/* b64 — base64 decoding and encoding (RFC 4648); rules in b64.h. */
#include "util/b64.h"

#include <pthread.h>

/* Decoding table values: 0..63 sextets, SP whitespace, PAD '=', BAD anything else. */
enum { SP = 64, PAD = 65, BAD = 66 };

static uint8_t g_dec[2][256];
static pthread_once_t g_dec_once = PTHREAD_ONCE_INIT;

static const char g_enc[2][65] = {
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/",
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_",
};

static void build_tables(void)
{
    for (int a = 0; a < 2; a++) {
        for (int c = 0; c < 256; c++) g_dec[a][c] = BAD;
        for (int i = 0; i < 64; i++) g_dec[a][(uint8_t)g_enc[a][i]] = (uint8_t)i;
        g_dec[a][' '] = g_dec[a]['\t'] = g_dec[a]['\r'] = g_dec[a]['\n'] = SP;
        g_dec[a]['\f'] = g_dec[a]['\v'] = SP;
        g_dec[a]['='] = PAD;
    }
}

/* Builds both tables once, thread-safely (the gateway decodes on worker threads). */
static void init_tables(void)
{
    pthread_once(&g_dec_once, build_tables);
}

size_t b64_decoded_max(size_t n)
{
    return n / 4 * 3 + (n % 4 * 3 + 3) / 4;
}

size_t b64_decoded_len(const char *in, size_t n)
{
    init_tables();
    size_t sig = 0;
    for (size_t i = 0; i < n; i++)
        sig += g_dec[0][(uint8_t)in[i]] < SP || g_dec[1][(uint8_t)in[i]] < SP;
    return sig / 4 * 3 + (sig % 4 == 0 ? 0 : sig % 4 - 1);
}

int b64_decode(const char *in, size_t n, enum b64_alphabet a, uint8_t *out, size_t cap,
               size_t *out_len)
{
    init_tables();
    const uint8_t *t = g_dec[a == B64_URL ? 1 : 0];
    uint32_t acc = 0;
    int k = 0; /* sextets in acc, 0..3 */
    size_t o = 0, i = 0;

    for (; i < n; i++) {
        /* fast path: whole groups of 4 alphabet characters (sextet values < 64; the
         * markers SP, PAD, BAD all have bit 6 set) */
        while (k == 0 && n - i >= 4 && cap - o >= 3) {
            uint32_t a0 = t[(uint8_t)in[i]], a1 = t[(uint8_t)in[i + 1]];
            uint32_t a2 = t[(uint8_t)in[i + 2]], a3 = t[(uint8_t)in[i + 3]];
            if ((a0 | a1 | a2 | a3) & 0x40) break;
            uint32_t g = a0 << 18 | a1 << 12 | a2 << 6 | a3;
            out[o] = (uint8_t)(g >> 16);
            out[o + 1] = (uint8_t)(g >> 8);
            out[o + 2] = (uint8_t)g;
            o += 3;
            i += 4;
        }
        if (i >= n) break;
        uint8_t v = t[(uint8_t)in[i]];
        if (v < 64) {
            acc = acc << 6 | v;
            if (++k == 4) {
                if (cap - o < 3) return B64_ESPACE;
                out[o++] = (uint8_t)(acc >> 16);
                out[o++] = (uint8_t)(acc >> 8);
                out[o++] = (uint8_t)acc;
                acc = 0;
                k = 0;
            }
        } else if (v == SP) {
            continue;
        } else if (v == PAD) {
            break;
        } else {
            *out_len = i;
            return B64_EBADCHAR;
        }
    }
    if (i < n) {
        /* Padding: k must be 2 (then "==") or 3 (then "="); only whitespace after. */
        size_t pad_at = i;
        int need = k == 2 ? 2 : k == 3 ? 1 : -1;
        int got = 0;
        for (; i < n; i++) {
            uint8_t v = t[(uint8_t)in[i]];
            if (v == PAD) got++;
            else if (v != SP) break;
        }
        if (need < 0 || got != need || i < n) {
            *out_len = i < n ? i : pad_at;
            return B64_EPAD;
        }
    }
    if (k == 1) return B64_ETRUNC;
    if (k > 1) {
        if (cap - o < (size_t)(k - 1)) return B64_ESPACE;
        if (k == 2) {
            out[o++] = (uint8_t)(acc >> 4);
        } else {
            out[o++] = (uint8_t)(acc >> 10);
            out[o++] = (uint8_t)(acc >> 2);
        }
    }
    *out_len = o;
    return B64_OK;
}

size_t b64_encoded_len(size_t n, int pad)
{
    return pad ? (n + 2) / 3 * 4 : n / 3 * 4 + (n % 3 ? n % 3 + 1 : 0);
}

size_t b64_encode(const uint8_t *in, size_t n, enum b64_alphabet a, int pad, char *out)
{
    const char *e = g_enc[a == B64_URL ? 1 : 0];
    size_t o = 0, i = 0;
    for (; i + 3 <= n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        out[o++] = e[v >> 18];
        out[o++] = e[v >> 12 & 63];
        out[o++] = e[v >> 6 & 63];
        out[o++] = e[v & 63];
    }
    if (n - i == 1) {
        uint32_t v = (uint32_t)in[i] << 16;
        out[o++] = e[v >> 18];
        out[o++] = e[v >> 12 & 63];
        if (pad) { out[o++] = '='; out[o++] = '='; }
    } else if (n - i == 2) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8;
        out[o++] = e[v >> 18];
        out[o++] = e[v >> 12 & 63];
        out[o++] = e[v >> 6 & 63];
        if (pad) out[o++] = '=';
    }
    out[o] = '\0';
    return o;
}

const char *b64_strerror(int err)
{
    switch (err) {
    case B64_OK: return "ok";
    case B64_EBADCHAR: return "invalid base64 character";
    case B64_EPAD: return "misplaced base64 padding";
    case B64_ETRUNC: return "truncated base64 (a lone final character)";
    case B64_ESPACE: return "base64 output buffer too small";
    default: return "unknown base64 error";
    }
}
