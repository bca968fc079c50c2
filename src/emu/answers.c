/* answers — what the emulated node says (answers.h). */
#include "emu/answers.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util/buf.h"

size_t emu_token_len(const char *s, size_t n)
{
    size_t k = n < EMU_TOKEN_BYTES ? n : EMU_TOKEN_BYTES;
    /* never end a token inside a UTF-8 sequence: extend over continuation bytes */
    while (k < n && ((unsigned char)s[k] & 0xC0) == 0x80) k++;
    return k;
}

int emu_tokens(const char *s, size_t n)
{
    int t = 0;
    size_t i = 0;
    while (i < n) {
        i += emu_token_len(s + i, n - i);
        t++;
    }
    return t;
}

int emu_model_out_tokens(struct rng *r)
{
    double v = rng_lognormal(r, log(80.0), 0.6);
    if (v < 8) v = 8;
    if (v > 1024) v = 1024;
    return (int)lround(v);
}

/* Three-letter words: filler text of n tokens is n of these, each followed by a space. */
static const char *const g_words[] = {
    "the", "sky", "was", "red", "and", "one", "big", "owl", "sat", "on",  "old", "elm",
    "for", "all", "day", "who", "saw", "its", "new", "way", "out", "fox", "ran", "far",
    "sea", "air", "dry", "fog", "sun", "hot", "ice", "mud", "map", "key", "box", "cup",
};
#define NWORDS (sizeof g_words / sizeof g_words[0])

static int append_filler(struct buf *b, int n, struct rng *r)
{
    for (int i = 0; i < n; i++) {
        const char *w = g_words[rng_below(r, NWORDS)];
        /* "on" is two letters: pad so every word + space stays one 4-byte token */
        if (buf_printf(b, "%-3s ", w) < 0) return -1;
    }
    return 0;
}

/* A wrong answer of the same kind as the reference (answers.h). */
static int append_wrong(struct buf *b, const char *ref, struct rng *r)
{
    size_t n = strlen(ref);
    while (n && isspace((unsigned char)ref[n - 1])) n--;
    while (n && isspace((unsigned char)*ref)) { ref++; n--; }
    if (n == 1 && isupper((unsigned char)ref[0]) && ref[0] <= 'H') {
        /* multiple-choice letter: another of A..D (or up to the reference's letter) */
        int hi = ref[0] > 'D' ? ref[0] - 'A' + 1 : 4;
        int k = (int)rng_below(r, (uint64_t)hi - 1);
        char c = (char)('A' + k);
        if (c >= ref[0]) c++;
        return buf_printf(b, "%c", c);
    }
    if (n == 3 && !strncasecmp(ref, "yes", 3)) return buf_puts(b, "no");
    if (n == 2 && !strncasecmp(ref, "no", 2)) return buf_puts(b, "yes");
    int digits = n > 0 && n < 10;
    for (size_t i = 0; i < n && digits; i++) digits = isdigit((unsigned char)ref[i]);
    if (digits) {
        long v = strtol(ref, NULL, 10);
        return buf_printf(b, "%ld", v + 1 + (long)rng_below(r, 3));
    }
    return buf_puts(b, "I cannot tell from the image.");
}

/* Cuts b to at most max tokens (on a token boundary). Returns 1 when it cut. */
static int cut_tokens(struct buf *b, int max)
{
    size_t i = 0;
    int t = 0;
    while (i < b->len) {
        if (t == max) {
            b->len = i;
            b->data[i] = 0;
            return 1;
        }
        i += emu_token_len(b->data + i, b->len - i);
        t++;
    }
    return 0;
}

int emu_answer_make(const struct emu_answer_in *in, struct rng *r, struct emu_answer *a)
{
    struct buf b;
    buf_init(&b);
    memset(a, 0, sizeof *a);
    a->correct = -1;
    a->finish = "stop";
    int rc;
    if (in->answer) {
        /* draw first, so the stream of draws does not depend on the answer text (also
         * when the caller gives u: the stream stays the same) */
        double u = rng_uniform(r);
        if (in->has_u) u = in->u;
        a->correct = u < in->p_correct;
        rc = a->correct ? buf_puts(&b, in->answer) : append_wrong(&b, in->answer, r);
    } else {
        int n = in->out_tokens > 0 ? in->out_tokens : emu_model_out_tokens(r);
        if (n > EMU_MAX_OUT_TOKENS) n = EMU_MAX_OUT_TOKENS;
        rc = append_filler(&b, n, r);
        /* the last word's trailing space would be a token of its own: keep it, the
         * count stays n because "xyz " is exactly one 4-byte token */
    }
    if (rc < 0 || buf_reserve(&b, 0) < 0) goto fail;
    int cap = in->max_tokens > 0 ? in->max_tokens : EMU_MAX_OUT_TOKENS;
    if (cut_tokens(&b, cap)) a->finish = "length";
    a->tokens = emu_tokens(b.data, b.len);
    a->text = buf_steal(&b);
    return 0;
fail:
    buf_fini(&b);
    return -1;
}

void emu_answer_fini(struct emu_answer *a)
{
    free(a->text);
    a->text = NULL;
}
