/* logprobs — token log-probabilities in OpenAI's format (logprobs.h). */
#include "emu/logprobs.h"

#include <math.h>
#include <string.h>

void emu_logprobs_make(double confidence, int n, struct rng *r, double *lp)
{
    if (n <= 0) return;
    if (!(confidence > 0)) confidence = 0;
    if (confidence > 1) confidence = 1;
    double m = confidence > 0 ? log(confidence) : EMU_LOGPROB_FLOOR;
    double mean_u = 0;
    for (int i = 0; i < n; i++) {
        lp[i] = rng_uniform(r);
        mean_u += lp[i];
    }
    mean_u /= n;
    for (int i = 0; i < n; i++) lp[i] = m * (1 + 0.5 * (lp[i] - mean_u));
}

int emu_json_str(struct buf *b, const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        int rc;
        if (c == '"' || c == '\\') rc = buf_printf(b, "\\%c", c);
        else if (c == '\n') rc = buf_puts(b, "\\n");
        else if (c < 0x20) rc = buf_printf(b, "\\u%04x", c);
        else rc = buf_putc(b, (char)c);
        if (rc < 0) return -1;
    }
    return 0;
}

/* Alternatives offered in top_logprobs: short, common pieces of the emulator's text. */
static const char *const g_alts[] = {
    "the ", "a ",  "yes", "no",  "A",   "B",    "C",    "D",    "1",    "2",   "3",
    "is ",  "it ", "and ", "of ", "to ", "in ", "not ", "I ",   "it",   "an ", "one ",
};
#define NALTS (sizeof g_alts / sizeof g_alts[0])

static int entry(struct buf *b, const char *tok, size_t len, double lp)
{
    if (buf_puts(b, "{\"token\":\"") < 0 || emu_json_str(b, tok, len) < 0) return -1;
    if (buf_printf(b, "\",\"logprob\":%.17g,\"bytes\":[", lp) < 0) return -1;
    for (size_t i = 0; i < len; i++)
        if (buf_printf(b, "%s%u", i ? "," : "", (unsigned)(unsigned char)tok[i]) < 0)
            return -1;
    return buf_putc(b, ']');
}

int emu_logprobs_item(struct buf *b, const char *tok, size_t len, double lp, int top)
{
    if (top < 0) top = 0;
    if (top > EMU_TOP_LOGPROBS_MAX) top = EMU_TOP_LOGPROBS_MAX;
    if (entry(b, tok, len, lp) < 0 || buf_puts(b, ",\"top_logprobs\":[") < 0) return -1;
    double rest = 1 - exp(lp), half = 0.5;
    int alt = 0, own = 0;
    size_t k = 0;
    for (int i = 0; i < top; i++) {
        double lalt = rest * half > 0 ? log(rest * half) : EMU_LOGPROB_FLOOR;
        if (lalt < EMU_LOGPROB_FLOOR) lalt = EMU_LOGPROB_FLOOR;
        if (buf_puts(b, i ? "," : "") < 0) return -1;
        if (!own && (lp >= lalt || i == top - 1 || alt >= (int)NALTS - 1)) {
            /* the token itself, at its place in the descending order (listed even when
             * others beat it all, as the chosen token always is here) */
            if (entry(b, tok, len, lp) < 0 || buf_putc(b, '}') < 0) return -1;
            own = 1;
            continue;
        }
        while (k < NALTS && strlen(g_alts[k]) == len && !memcmp(g_alts[k], tok, len)) k++;
        const char *a = k < NALTS ? g_alts[k++] : "?";
        if (entry(b, a, strlen(a), lalt) < 0 || buf_putc(b, '}') < 0) return -1;
        half *= 0.5;
        alt++;
    }
    return buf_puts(b, "]}");
}
