/* score — answer scoring for `ferry bench collect` (score.h). */
#include "emu/score.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NORM_MAX 1024

static const char *const g_kinds[] = {"vqa", "mcq", "exact", "contains"};

int emu_score_kind_parse(const char *s)
{
    for (int k = 0; k < 4; k++)
        if (s && !strcmp(s, g_kinds[k])) return k;
    return -1;
}

static const char *const g_numwords[] = {"zero", "one", "two", "three", "four", "five",
                                         "six", "seven", "eight", "nine", "ten"};

/* Appends word w (n bytes) to out unless it is an article; maps number words. */
static void put_word(const char *w, size_t n, char *out, size_t cap, size_t *len)
{
    if ((n == 1 && w[0] == 'a') || (n == 2 && !memcmp(w, "an", 2)) ||
        (n == 3 && !memcmp(w, "the", 3)))
        return;
    char num[4];
    for (int i = 0; i <= 10; i++)
        if (strlen(g_numwords[i]) == n && !memcmp(w, g_numwords[i], n)) {
            size_t k = (size_t)snprintf(num, sizeof num, "%d", i);
            w = num;
            n = k;
            break;
        }
    size_t need = (*len ? 1 : 0) + n;
    if (*len + need + 1 > cap) return;
    if (*len) out[(*len)++] = ' ';
    memcpy(out + *len, w, n);
    *len += n;
    out[*len] = 0;
}

void emu_score_normalize(const char *s, char *out, size_t cap)
{
    char word[128];
    size_t wl = 0, len = 0;
    if (!cap) return;
    out[0] = 0;
    for (size_t i = 0;; i++) {
        unsigned char c = (unsigned char)s[i];
        int keep = c && (isalnum(c) || c >= 0x80 ||
                         /* 3.5 keeps its point; don't keeps its apostrophe */
                         (c == '.' && i > 0 && isdigit((unsigned char)s[i - 1]) &&
                          isdigit((unsigned char)s[i + 1])) ||
                         (c == '\'' && wl > 0 && isalpha((unsigned char)s[i + 1])));
        if (keep) {
            if (wl + 1 < sizeof word) word[wl++] = (char)tolower(c);
            continue;
        }
        if (wl) put_word(word, wl, out, cap, &len);
        wl = 0;
        if (!c) break;
    }
}

/* Index of the choice whose normalised text equals the normalised reply, or -1. */
static int choice_text_match(const char *nreply, const char *const *choices, int nchoices)
{
    char n[NORM_MAX];
    for (int i = 0; i < nchoices && i < 8; i++) {
        const char *c = choices[i];
        /* choices may be written "A. cat" or "cat": drop a leading letter label */
        if (c[0] && isalpha((unsigned char)c[0]) && (c[1] == '.' || c[1] == ')' || c[1] == ':'))
            c += 2;
        emu_score_normalize(c, n, sizeof n);
        if (n[0] && !strcmp(n, nreply)) return i;
    }
    return -1;
}

char emu_score_letter(const char *reply, const char *const *choices, int nchoices)
{
    char n[NORM_MAX];
    emu_score_normalize(reply, n, sizeof n);
    int ci = choice_text_match(n, choices, nchoices);
    if (ci >= 0) return (char)('A' + ci);
    /* a standalone letter A..H, upper case in the raw reply ("B", "(B)", "B.") */
    size_t len = strlen(reply);
    for (size_t i = 0; i < len; i++) {
        char c = reply[i];
        if (c < 'A' || c > 'H') continue;
        int left = i == 0 || !isalnum((unsigned char)reply[i - 1]);
        int right = i + 1 == len || !isalnum((unsigned char)reply[i + 1]);
        /* "A" as an English article starts a sentence: skip "A cat ..." */
        if (left && right && !(c == 'A' && i + 1 < len && reply[i + 1] == ' ' &&
                               i + 2 < len && islower((unsigned char)reply[i + 2])))
            return c;
    }
    /* "option b" / "answer: b" in lower case */
    const char *kw[] = {"option ", "answer ", "answer is "};
    for (size_t k = 0; k < sizeof kw / sizeof kw[0]; k++) {
        const char *p = strstr(n, kw[k]);
        if (p) {
            p += strlen(kw[k]);
            if (*p >= 'a' && *p <= 'h' && (p[1] == 0 || p[1] == ' ')) return (char)(*p - 32);
        }
    }
    return 0;
}

/* Whole-word containment of needle in hay (both normalised). */
static int contains_words(const char *hay, const char *needle)
{
    size_t n = strlen(needle);
    if (!n) return 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) {
        int left = p == hay || p[-1] == ' ';
        int right = p[n] == 0 || p[n] == ' ';
        if (left && right) return 1;
    }
    return 0;
}

double emu_score(enum emu_score_kind k, const char *reply, const char *const *refs,
                 int nrefs, const char *const *choices, int nchoices)
{
    char nr[NORM_MAX], nref[NORM_MAX];
    if (!reply || nrefs <= 0) return 0;
    if (k == EMU_SCORE_MCQ) {
        char got = emu_score_letter(reply, choices, nchoices);
        char want = 0;
        const char *r = refs[0];
        while (*r == ' ' || *r == '(') r++;
        if (*r >= 'a' && *r <= 'h') want = (char)(*r - 32);
        else if (*r >= 'A' && *r <= 'H') want = *r;
        return got && got == want ? 1.0 : 0.0;
    }
    emu_score_normalize(reply, nr, sizeof nr);
    if (k == EMU_SCORE_VQA) {
        int m = 0;
        for (int i = 0; i < nrefs; i++) {
            emu_score_normalize(refs[i], nref, sizeof nref);
            m += nref[0] && !strcmp(nr, nref);
        }
        if (nrefs == 1) return m ? 1.0 : 0.0;
        return m >= 3 ? 1.0 : m / 3.0;
    }
    for (int i = 0; i < nrefs; i++) {
        emu_score_normalize(refs[i], nref, sizeof nref);
        if (k == EMU_SCORE_EXACT ? (nref[0] && !strcmp(nr, nref)) : contains_words(nr, nref))
            return 1.0;
    }
    return 0.0;
}
