/* text — text complexity features (contract in text.h; user documentation with the
 * measured token-estimate error in docs/features.md, "Text and dialogue features"). */
#include "feat/text.h"

#include <math.h>
#include <string.h>

/* ==== character classes ============================================================== */

static inline int is_ascii_letter(unsigned c) { return (unsigned)((c | 32) - 'a') < 26; }
static inline int is_digit(unsigned c) { return (unsigned)(c - '0') < 10; }
static inline int is_upper(unsigned c) { return (unsigned)(c - 'A') < 26; }
static inline int is_space(unsigned c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v'; }

/* Length of the UTF-8 sequence led by c (1 for ASCII and for stray bytes). */
static inline size_t u8len(unsigned c)
{
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* Lead bytes E3..ED cover U+3000..U+DFFF: CJK punctuation, kana, CJK ideographs, hangul.
 * BPE vocabularies give these about one token per character; 4-byte sequences (emoji,
 * rare ideographs) too. */
static inline int is_own_token(unsigned c)
{
    return (c >= 0xE3 && c <= 0xED) || c >= 0xF0;
}

/* Letters of a word: ASCII letters and non-ASCII characters that are not own tokens. */
static inline int is_word_byte(unsigned c)
{
    return is_ascii_letter(c) || (c >= 0x80 && !is_own_token(c));
}

/* ==== token estimate ================================================================= */

/* Heuristic constants, fitted on data/oracle/text_tokens.csv (o200k_base); see text.h. */
#define TOK_WORD_FREE   12   /* letters one token covers */
#define TOK_WORD_EXTRA  4    /* further letters per extra token */
#define TOK_PUNCT_EXTRA 0.2  /* tokens per extra mark in a punctuation run */

int feat_text_tokens(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    double tok = 0;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (is_word_byte(c)) {
            size_t letters = 0;
            while (i < n && is_word_byte(s[i])) {
                i += u8len(s[i]);
                letters++;
            }
            tok += 1;
            if (letters > TOK_WORD_FREE)
                tok += (double)(letters - TOK_WORD_FREE) / TOK_WORD_EXTRA;
            /* contraction: 's 't 're 've 'm 'll 'd — one token */
            if (i + 1 < n && (s[i] == '\'') && is_ascii_letter(s[i + 1])) {
                i++;
                while (i < n && is_ascii_letter(s[i])) i++;
                tok += 1;
            }
        } else if (is_digit(c)) {
            size_t d = 0;
            while (i < n && is_digit(s[i])) { i++; d++; }
            tok += (double)((d + 2) / 3);
        } else if (c == ' ') {
            size_t k = 0;
            while (i < n && s[i] == ' ') { i++; k++; }
            if (k > 1) tok += 1; /* a single space joins the next word's token */
        } else if (is_space(c)) {
            while (i < n && is_space(s[i])) i++;
            tok += 1;
        } else if (is_own_token(c)) {
            i += u8len(c);
            tok += 1;
        } else {
            size_t k = 0;
            while (i < n && !is_word_byte(s[i]) && !is_digit(s[i]) && !is_space(s[i]) &&
                   !is_own_token(s[i])) {
                i++;
                k++;
            }
            tok += 1 + TOK_PUNCT_EXTRA * (double)(k - 1);
        }
    }
    long t = lround(tok);
    return t < 1 && n > 0 ? 1 : (int)t;
}

/* ==== sentences and entities ========================================================= */

void feat_text_params_default(struct feat_text_params *p)
{
    p->L0 = 128;
    p->gamma = 2;
    p->beta_L = 0.5;
    p->beta_ner = 0.5;
}

/* Abbreviations whose '.' does not end a sentence (lower-case, without the dot). */
static int is_abbrev(const unsigned char *w, size_t len)
{
    static const char *const ab[] = {"mr", "mrs", "ms", "dr", "prof", "st", "vs", "etc",
                                     "eg", "ie", "no", "fig", "approx", "inc", "ltd", "jr",
                                     "sr", "cf", "al", NULL};
    if (len == 1) return 1; /* initials and "e.g."/"U.S." pieces */
    for (int k = 0; ab[k]; k++) {
        size_t m = strlen(ab[k]);
        if (m != len) continue;
        size_t j = 0;
        while (j < m && (unsigned)(w[j] | 32) == (unsigned char)ab[k][j]) j++;
        if (j == m) return 1;
    }
    return 0;
}

/* Entity rule (one pass):
 *   - a word containing a digit (numbers, dates "2024-05-01", times "10:30", "3.5", "1st")
 *     is one entity;
 *   - an all-capital word of 2+ letters (acronym: "NASA", "USB") is one entity;
 *   - a capitalised word that does not start a sentence or a line (and is not "I")
 *     starts an entity; the capitalised words directly after it (only spaces between)
 *     belong to the same entity ("New York City" = 1).
 * Sentence rule: '.', '!', '?' (a run counts once) followed by a space, a line break, a
 * quote or bracket, or the end; not after an abbreviation or a single letter ("e.g.",
 * "Dr.", "U.S."); a line break after words also ends a sentence (lists, headings); text
 * after the last end counts as one more sentence. */
void feat_text_stats(const char *str, size_t n, const struct feat_text_params *p,
                     struct feat_text_stats *out)
{
    const unsigned char *s = (const unsigned char *)str;
    struct feat_text_params def;
    if (!p) {
        feat_text_params_default(&def);
        p = &def;
    }
    memset(out, 0, sizeof *out);
    int start = 1;       /* next word starts a sentence or a line */
    int in_entity = 0;   /* previous word was capitalised, only spaces since */
    int pending = 0;     /* words since the last sentence end */
    const unsigned char *lastw = NULL;
    size_t lastw_len = 0;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (is_word_byte(c) || is_digit(c)) {
            size_t b = i, upper = 0, letters = 0;
            int digit = 0;
            while (i < n) {
                unsigned d = s[i];
                if (is_word_byte(d)) {
                    upper += is_upper(d);
                    letters++;
                    i += u8len(d);
                } else if (is_digit(d)) {
                    digit = 1;
                    i++;
                } else if ((d == '.' || d == ',' || d == ':' || d == '-' || d == '/') &&
                           i + 1 < n && is_digit(s[i + 1]) && i > b && is_digit(s[i - 1])) {
                    i++; /* 3.5, 1,000, 10:30, 2024-05-01, 1/2 */
                } else if ((d == '\'' || d == '-') && i + 1 < n && is_word_byte(s[i + 1]) &&
                           i > b && is_word_byte(s[i - 1])) {
                    i++; /* don't, well-known */
                } else {
                    break;
                }
            }
            out->words++;
            pending++;
            if (digit) {
                out->entities++;
                in_entity = 0;
            } else if (letters >= 2 && upper == letters) {
                if (!in_entity) out->entities++;
                in_entity = 1;
            } else if (is_upper(s[b]) && !(i - b == 1 && s[b] == 'I') &&
                       !(s[b] == 'I' && i - b > 1 && s[b + 1] == '\'')) {
                if (!start && !in_entity) out->entities++;
                in_entity = !start || in_entity;
            } else {
                in_entity = 0;
            }
            start = 0;
            lastw = s + b;
            lastw_len = i - b;
            continue;
        }
        if (c == '.' || c == '!' || c == '?') {
            int only_dots = 1;
            size_t b0 = i;
            while (i < n && (s[i] == '.' || s[i] == '!' || s[i] == '?')) {
                only_dots &= s[i] == '.';
                i++;
            }
            int ends = i >= n || is_space(s[i]) || s[i] == '"' || s[i] == '\'' ||
                       s[i] == ')' || s[i] == ']';
            if (ends && only_dots && lastw && lastw + lastw_len == s + b0 &&
                is_abbrev(lastw, lastw_len))
                ends = 0;
            if (ends && pending) {
                out->sentences++;
                pending = 0;
                start = 1;
            }
            in_entity = 0;
            continue;
        }
        if (c == '\n') {
            if (pending) {
                out->sentences++;
                pending = 0;
            }
            start = 1;
            in_entity = 0;
            i++;
            continue;
        }
        if (c != ' ' && c != '\t') in_entity = 0;
        i += u8len(c);
    }
    if (pending) out->sentences++;
    out->tokens = feat_text_tokens(str, n);
    feat_text_scores(out, p);
}

void feat_text_scores(struct feat_text_stats *st, const struct feat_text_params *p)
{
    struct feat_text_params def;
    if (!p) {
        feat_text_params_default(&def);
        p = &def;
    }
    /* MoA-Off text complexity: C_L = min(1, L/L0), C_ner = min(1, (E/S)/γ),
     * c_text = β_L C_L + β_ner C_ner */
    st->c_L = p->L0 > 0 ? fmin(1.0, st->tokens / p->L0) : 1.0;
    st->c_ner = st->sentences > 0 && p->gamma > 0
                    ? fmin(1.0, ((double)st->entities / st->sentences) / p->gamma)
                    : 0.0;
    st->c_text = p->beta_L * st->c_L + p->beta_ner * st->c_ner;
}

/* ==== task category ================================================================== */

const char *feat_task_name(enum fy_task t)
{
    static const char *const names[FY_TASK__N] = {"chat", "caption", "count", "ocr",
                                                  "yesno", "mcq", "reason"};
    return (unsigned)t < FY_TASK__N ? names[t] : "?";
}

/* Does the normalised text (" w1 w2 ... ", lower case, single spaces) contain one of the
 * phrases (each written with its surrounding spaces)? */
static int has_any(const char *norm, const char *const *phr)
{
    for (; *phr; phr++)
        if (strstr(norm, *phr)) return 1;
    return 0;
}

/* Option markers "A." "A)" "(A)" "A:" at a line start or after a space, for A and B
 * (upper or lower case) → a multiple-choice prompt. */
static int has_options(const unsigned char *s, size_t n)
{
    unsigned up = 0, lo = 0;
    for (size_t i = 0; i + 1 < n; i++) {
        size_t j = i;
        if (i > 0 && !is_space(s[i - 1])) continue;
        if (s[j] == '(') j++;
        if (j + 1 >= n) continue;
        unsigned l = s[j];
        unsigned nx = s[j + 1];
        int paren = j > i;
        if (paren ? nx != ')' : !(nx == '.' || nx == ')' || nx == ':')) continue;
        if (j + 2 < n && !is_space(s[j + 2])) continue;
        if (l >= 'A' && l <= 'E') up |= 1u << (l - 'A');
        else if (l >= 'a' && l <= 'e') lo |= 1u << (l - 'a');
    }
    return (up & 3) == 3 || (lo & 3) == 3;
}

/* Rules, first match wins (on the first FEAT_TASK_SCAN bytes, lower-cased, words
 * separated by single spaces):
 *   mcq      option markers for A and B, or "which of the following", "choose the",
 *            "select the correct", "options:", "choices:", "option's letter"
 *   count    "how many", "count", "number of", "how much ... are there" not needed
 *   ocr      "read", "written", "transcribe", "ocr", "what does it/the sign say",
 *            "the text", "what text", "license plate", "title of"
 *   yesno    starts with an auxiliary verb (is, are, was, were, do, does, did, can,
 *            could, will, would, should, has, have, had, may, is there, ...) and has no
 *            " or " (an alternative question is not yes/no), or says "yes or no"
 *   caption  "describe", "caption", "what is in", "what's in", "what do you see",
 *            "what is happening", "what is shown", "tell me about this"
 *   reason   "why", "explain", "how does", "how do", "how can", "how would", "reason",
 *            "step by step", "prove", "calculate", "solve", "compare", "what would",
 *            "infer", "what if", "best way"
 *   chat     everything else */
enum fy_task feat_text_task(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    if (n > FEAT_TASK_SCAN) n = FEAT_TASK_SCAN;
    char norm[FEAT_TASK_SCAN + 3];
    size_t k = 0;
    norm[k++] = ' ';
    for (size_t i = 0; i < n; i++) {
        unsigned c = s[i];
        if (is_ascii_letter(c) || is_digit(c) || c >= 0x80 || c == '\'' || c == ':')
            norm[k++] = (char)(is_upper(c) ? c | 32 : c);
        else if (norm[k - 1] != ' ')
            norm[k++] = ' ';
    }
    if (norm[k - 1] != ' ') norm[k++] = ' ';
    norm[k] = '\0';

    static const char *const mcq[] = {" which of the following ", " choose the ",
                                      " select the correct ", " options: ", " choices: ",
                                      " option's letter ", " choose one ", NULL};
    static const char *const cnt[] = {" how many ", " count ", " count the ", " number of ",
                                      NULL};
    static const char *const ocr[] = {" read ", " written ", " transcribe ", " ocr ",
                                      " sign say ", " does it say ", " the text ",
                                      " what text ", " license plate ", " title of ",
                                      " what does the label ", " what's written ", NULL};
    static const char *const aux[] = {" is ", " are ", " was ", " were ", " do ", " does ",
                                      " did ", " can ", " could ", " will ", " would ",
                                      " should ", " has ", " have ", " had ", " may ",
                                      " isn't ", " aren't ", " doesn't ", " don't ",
                                      " didn't ", " can't ", " won't ", " is there ", NULL};
    static const char *const cap[] = {" describe ", " caption ", " what is in ",
                                      " what's in ", " what do you see ", " what is happening ",
                                      " what's happening ", " what is shown ",
                                      " tell me about this ", " what is this ",
                                      " what's this ", NULL};
    static const char *const rsn[] = {" why ", " explain ", " how does ", " how do ",
                                      " how can ", " how would ", " reason ", " step by step ",
                                      " prove ", " calculate ", " solve ", " compare ",
                                      " what would ", " infer ", " what if ", " best way ",
                                      NULL};
    if (has_options(s, n) || has_any(norm, mcq)) return FY_TASK_MCQ;
    if (has_any(norm, cnt)) return FY_TASK_COUNT;
    if (has_any(norm, ocr)) return FY_TASK_OCR;
    if (strstr(norm, " yes or no ")) return FY_TASK_YESNO;
    for (const char *const *a = aux; *a; a++) {
        size_t m = strlen(*a);
        if (!strncmp(norm, *a, m) && !strstr(norm, " or ")) return FY_TASK_YESNO;
    }
    if (has_any(norm, cap)) return FY_TASK_CAPTION;
    if (has_any(norm, rsn)) return FY_TASK_REASON;
    return FY_TASK_CHAT;
}

/* ==== n-gram hashing ================================================================= */

unsigned feat_fnv1a32(const void *p, size_t n, unsigned h)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) {
        h ^= b[i];
        h *= 16777619u;
    }
    return h;
}

static inline void bump(float *v, unsigned h)
{
    v[h % FY_HASH_DIM] += (h >> 31) ? -1.0f : 1.0f;
}

void feat_text_ngrams_add(float *v, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    unsigned char word[64];
    unsigned hprev = 0; /* FNV-1a state after the previous word */
    int have_prev = 0;
    size_t i = 0;
    while (i < n) {
        if (!(is_ascii_letter(s[i]) || is_digit(s[i]) || s[i] >= 0x80)) {
            i++;
            continue;
        }
        size_t len = 0;
        while (i < n && (is_ascii_letter(s[i]) || is_digit(s[i]) || s[i] >= 0x80)) {
            /* words longer than 64 bytes are hashed on their first 64 */
            if (len < sizeof word) word[len++] = (unsigned char)(is_upper(s[i]) ? s[i] | 32 : s[i]);
            i++;
        }
        unsigned h = feat_fnv1a32(word, len, FEAT_FNV_BASIS);
        bump(v, h);
        if (have_prev) /* FNV-1a of "prev word": continue the previous word's state */
            bump(v, feat_fnv1a32(word, len, feat_fnv1a32(" ", 1, hprev)));
        hprev = h;
        have_prev = 1;
    }
}

void feat_text_ngrams_normalize(float *v)
{
    double ss = 0;
    for (int i = 0; i < FY_HASH_DIM; i++) ss += (double)v[i] * v[i];
    if (ss <= 0) return;
    float inv = (float)(1.0 / sqrt(ss));
    for (int i = 0; i < FY_HASH_DIM; i++) v[i] *= inv;
}
