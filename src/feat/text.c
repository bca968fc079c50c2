/* text — text complexity features (contract in text.h; user documentation with the
 * measured token-estimate error in docs/features.md, "Text and dialogue features"). */
#include "feat/text.h"

#include <math.h>
#include <pthread.h>
#include <stdint.h>
#include <string.h>
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

/* ==== character classes ============================================================== */

enum {
    C_LET = 1,    /* ASCII letter, or a UTF-8 byte of a character that is not an own token */
    C_UP = 2,     /* A-Z */
    C_DIG = 4,    /* 0-9 */
    C_WS = 8,     /* space, \t, \r, \n, \f, \v */
    C_OWN = 16,   /* lead byte E3..ED or F0..FF: see is_own_token */
    C_CONT = 32,  /* UTF-8 continuation byte 80..BF */
    C_TERM = 64,  /* . ! ? */
    C_JOIN = 128  /* . , : - / : may join digits (3.5, 10:30) or letters (well-known) */
};
_Static_assert(C_UP << 4 == 'a' - 'A', "the letter loop lower-cases with (k & C_UP) << 4");

static unsigned char g_cls[256], g_lower[256];
/* for feat_text_task: g_norm = the byte's lower case if the normalised text keeps it
 * (letters, digits, own-token lead bytes, ' and :), else ' '; g_opt = the option-marker
 * bytes (OPT_LETTER A-E a-e, OPT_AFTER . ) :, OPT_PAREN '(') */
static unsigned char g_norm[256], g_opt[256];
enum { OPT_LETTER = 1, OPT_AFTER = 2, OPT_PAREN = 4 };
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

/* Lead bytes E3..ED cover U+3000..U+DFFF: CJK punctuation, kana, CJK ideographs, hangul.
 * BPE vocabularies give these about one token per character; 4-byte sequences (emoji,
 * rare ideographs) too. */
static void build_tables(void)
{
    for (int c = 0; c < 256; c++) {
        unsigned k = 0;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) k |= C_LET;
        if (c >= 'A' && c <= 'Z') k |= C_UP;
        if (c >= '0' && c <= '9') k |= C_DIG;
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\f' || c == '\v') k |= C_WS;
        if ((c >= 0xE3 && c <= 0xED) || c >= 0xF0) k |= C_OWN;
        else if (c >= 0x80) k |= C_LET;
        if (c >= 0x80 && c <= 0xBF) k |= C_CONT;
        if (c == '.' || c == '!' || c == '?') k |= C_TERM;
        if (c == '.' || c == ',' || c == ':' || c == '-' || c == '/') k |= C_JOIN;
        g_cls[c] = (unsigned char)k;
        g_lower[c] = (unsigned char)(c >= 'A' && c <= 'Z' ? c | 32 : c);
        g_norm[c] = (k & (C_LET | C_DIG | C_OWN)) || c == '\'' || c == ':' ? g_lower[c] : ' ';
        g_opt[c] = (unsigned char)(((c >= 'A' && c <= 'E') || (c >= 'a' && c <= 'e') ? OPT_LETTER : 0) |
                                   (c == '.' || c == ')' || c == ':' ? OPT_AFTER : 0) |
                                   (c == '(' ? OPT_PAREN : 0));
    }
}

static inline const unsigned char *cls_table(void)
{
    pthread_once(&g_once, build_tables);
    return g_cls;
}

static inline int is_space(unsigned c) { return g_cls[c] & C_WS; }

/* Length of the UTF-8 sequence led by c (1 for ASCII and for stray bytes). */
static inline size_t u8len(unsigned c)
{
    return c < 0xC0 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
}

/* ==== the scan: tokens, sentences, entities, n-grams in one pass ===================== */

/* Heuristic constants, fitted on data/oracle/text_tokens.csv (o200k_base); see text.h. */
#define TOK_WORD_FREE   12   /* letters one token covers */
#define TOK_WORD_EXTRA  4    /* further letters per extra token */
#define TOK_PUNCT_EXTRA 0.2  /* tokens per extra mark in a punctuation run */
/* Long runs, measured with gpt-tokenizer (o200k_base) on runs of 1000: spaces merge
 * into tokens of up to ~128 (9 tokens), line breaks and tabs ~16 (63 tokens), a repeated
 * mark ~16 to 60 (16 to 63 tokens). Below these lengths a run stays as the rules say. */
#define TOK_SPACE_RUN   128  /* spaces per token in a run of spaces */
#define TOK_BLANK_RUN   16   /* blanks per token in a run with line breaks or tabs */
#define TOK_PUNCT_RUN   16   /* marks after which a punctuation run adds ... */
#define TOK_PUNCT_LONG  32   /* ... one token per 32 marks (between '!' and '-') */
#define FNV_PRIME       16777619u

/* v[h mod FY_HASH_DIM] += +1 or -1 by bit 31 of h. The ±1.0f is built from its bits
 * (the sign bit of h on 1.0f's pattern) rather than chosen by a branch: the sign is a
 * coin toss per word, so a branch here mispredicts on half the n-grams. */
static inline void bump(float *v, unsigned h)
{
    union { uint32_t u; float f; } one = {.u = 0x3F800000u | (h & 0x80000000u)};
    v[h % FY_HASH_DIM] += one.f;
}

/* Abbreviations whose '.' does not end a sentence (lower-case, without the dot). */
static int is_abbrev(const unsigned char *w, size_t len)
{
    /* grouped by length (2, 3, 4, 6 letters), so that a word is compared only with the
     * abbreviations of its own length and no strlen runs per '.' */
    static const char ab2[] = "mrmsdrstvsegienojrsrcfal", ab3[] = "mrsetcfigincltd";
    if (len == 1) return 1; /* initials and "e.g."/"U.S." pieces */
    const char *set;
    size_t cnt;
    switch (len) {
    case 2: set = ab2; cnt = (sizeof ab2 - 1) / 2; break;
    case 3: set = ab3; cnt = (sizeof ab3 - 1) / 3; break;
    case 4: set = "prof"; cnt = 1; break;
    case 6: set = "approx"; cnt = 1; break;
    default: return 0;
    }
    for (size_t k = 0; k < cnt; k++, set += len) {
        size_t j = 0;
        while (j < len && g_lower[w[j]] == (unsigned char)set[j]) j++;
        if (j == len) return 1;
    }
    return 0;
}

struct scan {
    struct feat_text_stats *st; /* written at the end only: the char loads from s may
                                 * alias it, so counting in it would force reloads */
    int words, sentences, entities;
    float *v;                 /* n-gram vector or NULL */
    double tok;
    int start;                /* the next word starts a sentence or a line */
    int in_entity;            /* the previous word was capitalised, only blanks since */
    int pending;              /* words since the last sentence end */
    unsigned hprev;           /* n-gram hash of the previous word */
    int have_prev;
    /* the current entity word (alnum runs joined by 3.5 / 10:30 / don't / well-known) */
    int ew;                   /* 1 while one is open */
    const unsigned char *ew_b;
    size_t ew_len, ew_letters, ew_upper;
    int ew_digit, ew_start;
};

/* One n-gram word ended: h = FNV-1a of its bytes, hb = FNV-1a of "previous word" + ' ' +
 * its bytes (computed alongside h in the same byte loop, from bigram_seed). */
static inline __attribute__((always_inline)) void ngram_word(struct scan *z, unsigned h,
                                                             unsigned hb)
{
    if (!z->v) return;
    bump(z->v, h);
    if (z->have_prev) bump(z->v, hb);
    z->hprev = h;
    z->have_prev = 1;
}

/* FNV-1a state after "previous word" + ' ' (the start of the next bigram's hash). */
static inline unsigned bigram_seed(const struct scan *z)
{
    return (z->hprev ^ ' ') * FNV_PRIME;
}

/* Entity and sentence bookkeeping of one finished entity word b[0..len) with its letter
 * count, capital-letter count (of all-capital runs), digit flag and the start flag at
 * its beginning (rules at feat_text_stats). */
static inline __attribute__((always_inline)) void entity_word_done(
    struct scan *z, const unsigned char *b, size_t len, size_t letters, size_t upper,
    int digit, int start, int may_quote)
{
    z->words++;
    z->pending++;
    /* The four cases of the entity rule, evaluated without branches (capitalisation is
     * data-dependent, so branches here mispredict often): d = contains a digit; a = an
     * acronym (2+ letters, all capitals); c = capitalised, not "I" / "I'm"; otherwise
     * the word ends an entity. b[len > 1] is b[0] (= 'I', not a quote) for a
     * one-byte word, so the read stays inside the word. */
    int d = digit != 0;
    int a = !d & (letters >= 2) & (upper == letters);
    int is_i = (b[0] == 'I') & ((len == 1) | (may_quote && b[len > 1] == '\''));
    int c = (d == 0) & (a == 0) & ((g_cls[b[0]] & C_UP) != 0) & (is_i == 0);
    int ine = z->in_entity != 0, sta = start != 0;
    z->entities += d | (a & (ine ^ 1)) | (c & (sta ^ 1) & (ine ^ 1));
    z->in_entity = a | (c & ((sta ^ 1) | ine));
    z->start = 0;
}

/* The open entity word ends. */
static inline __attribute__((always_inline)) void entity_word_end(struct scan *z)
{
    if (!z->ew) return;
    z->ew = 0;
    entity_word_done(z, z->ew_b, z->ew_len, z->ew_letters, z->ew_upper, z->ew_digit,
                     z->ew_start, 1);
}

/* End of the blank run (C_WS bytes) at s[i..n); *nl is set when it holds a '\n'. With
 * SSE2, 16 bytes per step (the indentation of JSON and code is long runs). */
static inline size_t skip_blanks(const unsigned char *s, size_t i, size_t n, int *nl)
{
#if defined(__SSE2__)
    while (n - i >= 16) {
        __m128i v = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
        __m128i sp = _mm_cmpeq_epi8(v, _mm_set1_epi8(' '));
        /* \t \n \v \f \r = 9..13: (v - 9) < 5 unsigned, a signed compare after flipping bit 7 */
        __m128i t = _mm_xor_si128(_mm_sub_epi8(v, _mm_set1_epi8(9)), _mm_set1_epi8((char)0x80));
        __m128i ctl = _mm_cmplt_epi8(t, _mm_set1_epi8((char)(0x80 + 5 - 256)));
        unsigned ws = (unsigned)_mm_movemask_epi8(_mm_or_si128(sp, ctl));
        unsigned lf = (unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')));
        unsigned len = (unsigned)__builtin_ctz(~ws); /* <= 16 */
        *nl |= (lf & ((1u << len) - 1)) != 0;
        i += len;
        if (len < 16) return i;
    }
#endif
    while (i < n && (g_cls[s[i]] & C_WS)) *nl |= s[i++] == '\n';
    return i;
}

/* Inlined into its three callers so that the scan state stays in registers (the char
 * loads from s could otherwise alias it): this halves the time per byte. */
static inline __attribute__((always_inline)) void scan_text(const unsigned char *s, size_t n,
                                                            struct scan *z)
{
    const unsigned char *cls = cls_table();
    const unsigned char *lastw = NULL; /* last entity word, for the abbreviation rule */
    size_t lastw_len = 0;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i], k = cls[c];
        if ((k & C_LET) && !z->ew) {
            /* Fast path for the common word: one letter run that ends the word (no
             * digits, contraction or joiner follow). The same rules as the general path
             * below, with the word's state kept in locals; any other case starts over
             * there from the word's first byte. */
            size_t r0 = i;
            unsigned h = FEAT_FNV_BASIS, hb = bigram_seed(z);
            unsigned acc = 0, all = C_UP, t, lc;
            const unsigned char *lp = s + i, *e = s + n;
            while (lp < e && ((t = cls[lc = *lp]) & C_LET)) {
                lc |= (t & C_UP) << 4; /* lower case: 'A' | 32 = 'a' */
                h = (h ^ lc) * FNV_PRIME;
                hb = (hb ^ lc) * FNV_PRIME;
                acc |= t;
                all &= t;
                lp++;
            }
            size_t e1 = (size_t)(lp - s);
            unsigned nx = e1 < n ? s[e1] : ' ';
            if (!(cls[nx] & C_DIG) && nx != '\'' &&
                !(nx == '-' && e1 + 1 < n && (cls[s[e1 + 1]] & C_LET))) {
                size_t run = e1 - r0;
                if (acc & C_CONT) /* count characters, not UTF-8 continuation bytes */
                    for (size_t q = r0; q < e1; q++) run -= (cls[s[q]] & C_CONT) != 0;
                z->tok += 1;
                if (run > TOK_WORD_FREE) z->tok += (double)(run - TOK_WORD_FREE) / TOK_WORD_EXTRA;
                ngram_word(z, h, hb);
                lastw = s + r0;
                lastw_len = e1 - r0;
                /* may_quote 0: a letter run that ends the word has no "'" at b[1] */
                entity_word_done(z, lastw, lastw_len, run, run & ((size_t)0 - (all != 0)), 0,
                                 z->start, 0);
                i = e1;
                continue;
            }
        }
        if (k & (C_LET | C_DIG)) {
            /* an alnum run: letter and digit sub-runs, maybe a contraction */
            size_t b = i;
            unsigned h = FEAT_FNV_BASIS, hb = bigram_seed(z);
            size_t letters = 0, upper = 0;
            int digit = 0;
            while (i < n && (cls[s[i]] & (C_LET | C_DIG))) {
                if (cls[s[i]] & C_LET) {
                    size_t r0 = i, run;
                    unsigned acc = 0, all = C_UP; /* OR and AND of the run's classes */
                    /* the hot loop (most bytes are letters): one table load per byte, the
                     * lower case computed from the C_UP bit ('A' | 32 = 'a') */
                    const unsigned char *lp = s + i, *e = s + n;
                    while (lp < e && ((k = cls[c = *lp]) & C_LET)) {
                        c |= (k & C_UP) << 4;
                        h = (h ^ c) * FNV_PRIME;
                        hb = (hb ^ c) * FNV_PRIME;
                        acc |= k;
                        all &= k;
                        lp++;
                    }
                    i = (size_t)(lp - s);
                    run = i - r0;
                    if (acc & C_CONT) /* count characters, not UTF-8 continuation bytes */
                        for (size_t q = r0; q < i; q++) run -= (cls[s[q]] & C_CONT) != 0;
                    letters += run;
                    upper += run & ((size_t)0 - (all != 0)); /* all capitals: run, else 0 */
                    z->tok += 1;
                    if (run > TOK_WORD_FREE) z->tok += (double)(run - TOK_WORD_FREE) / TOK_WORD_EXTRA;
                    /* contraction: 's 't 're 've 'm 'll 'd — one token, same word */
                    if (i + 1 < n && s[i] == '\'' && (cls[s[i + 1]] & C_LET) && s[i + 1] < 0x80) {
                        h = (h ^ '\'') * FNV_PRIME;
                        hb = (hb ^ '\'') * FNV_PRIME;
                        i++;
                        while (i < n && (cls[c = s[i]] & C_LET) && c < 0x80) {
                            h = (h ^ g_lower[c]) * FNV_PRIME;
                            hb = (hb ^ g_lower[c]) * FNV_PRIME;
                            i++;
                        }
                        z->tok += 1;
                    }
                } else {
                    size_t d = 0;
                    while (i < n && (cls[c = s[i]] & C_DIG)) {
                        h = (h ^ c) * FNV_PRIME;
                        hb = (hb ^ c) * FNV_PRIME;
                        d++;
                        i++;
                    }
                    digit = 1;
                    z->tok += (double)((d + 2) / 3);
                }
            }
            ngram_word(z, h, hb);
            if (!z->ew) {
                z->ew = 1;
                z->ew_b = s + b;
                z->ew_letters = z->ew_upper = 0;
                z->ew_digit = 0;
                z->ew_start = z->start;
            }
            z->ew_len = (size_t)(s + i - z->ew_b);
            z->ew_letters += letters;
            z->ew_upper += upper;
            z->ew_digit |= digit;
            /* joiners keep the entity word open: 3.5 1,000 10:30 2024-05-01 1/2, don't
             * (handled above) and well-known */
            if (i + 1 < n && (cls[s[i]] & C_JOIN)) {
                unsigned j = s[i], nx = cls[s[i + 1]];
                int dj = (j == '.' || j == ',' || j == ':' || j == '-' || j == '/') &&
                         (cls[s[i - 1]] & C_DIG) && (nx & C_DIG);
                int lj = j == '-' && (cls[s[i - 1]] & C_LET) && (nx & C_LET);
                if (dj || lj) {
                    z->tok += 1; /* the joiner is a punctuation token of its own */
                    i++;
                    continue;
                }
            }
            lastw = z->ew_b;
            lastw_len = z->ew_len;
            entity_word_end(z);
            continue;
        }
        if (k & C_WS) {
            int nl = 0;
            if (c == ' ' && i + 1 < n && (cls[s[i + 1]] & (C_LET | C_DIG))) {
                i++; /* the common case: one space before a word (part of its token) */
                continue;
            }
            if (c == ' ') {
                size_t sp = 0;
                while (i < n && s[i] == ' ') { i++; sp++; }
                /* a single space joins the next word's token */
                if (sp > 1) z->tok += 1 + (double)((sp - 1) / TOK_SPACE_RUN);
                if (i < n && (cls[s[i]] & C_WS)) {
                    size_t b = i;
                    i = skip_blanks(s, i, n, &nl);
                    z->tok += 1 + (double)((i - b - 1) / TOK_BLANK_RUN);
                }
            } else {
                size_t b = i;
                i = skip_blanks(s, i, n, &nl);
                z->tok += 1 + (double)((i - b - 1) / TOK_BLANK_RUN);
            }
            if (nl) { /* a line break after words ends a sentence; a line starts anew */
                if (z->pending) { z->sentences++; z->pending = 0; }
                z->start = 1;
                z->in_entity = 0;
            }
            continue;
        }
        if (k & C_OWN) {
            size_t m = u8len(c);
            unsigned h = FEAT_FNV_BASIS, hb = bigram_seed(z);
            for (size_t q = i; q < i + m && q < n; q++) {
                h = (h ^ s[q]) * FNV_PRIME;
                hb = (hb ^ s[q]) * FNV_PRIME;
            }
            ngram_word(z, h, hb); /* a CJK character is a word of its own for the n-grams */
            i += m;
            z->tok += 1;
            z->in_entity = 0;
            continue;
        }
        /* a punctuation run (C_CONT bytes here are stray: counted as marks) */
        size_t marks = 0;
        while (i < n && !((k = cls[c = s[i]]) & (C_LET | C_DIG | C_WS | C_OWN))) {
            if (k & C_TERM) {
                size_t b0 = i;
                int only_dots = 1;
                while (i < n && (cls[s[i]] & C_TERM)) {
                    only_dots &= s[i] == '.';
                    i++;
                    marks++;
                }
                int ends = i >= n || (cls[s[i]] & C_WS) || s[i] == '"' || s[i] == '\'' ||
                           s[i] == ')' || s[i] == ']';
                if (ends && only_dots && lastw && lastw + lastw_len == s + b0 &&
                    is_abbrev(lastw, lastw_len))
                    ends = 0;
                if (ends && z->pending) {
                    z->sentences++;
                    z->pending = 0;
                    z->start = 1;
                }
                continue;
            }
            i++;
            marks++;
        }
        z->in_entity = 0;
        if (marks <= TOK_PUNCT_RUN)
            z->tok += 1 + TOK_PUNCT_EXTRA * (double)(marks - 1);
        else
            z->tok += 1 + TOK_PUNCT_EXTRA * (TOK_PUNCT_RUN - 1) +
                      (double)(marks - TOK_PUNCT_RUN) / TOK_PUNCT_LONG;
    }
    if (z->ew) entity_word_end(z);
    if (z->pending) z->sentences++;
    long t = lround(z->tok);
    z->st->tokens = t < 1 && n > 0 ? 1 : (int)t;
    z->st->words = z->words;
    z->st->sentences = z->sentences;
    z->st->entities = z->entities;
}

static void scan_init(struct scan *z, struct feat_text_stats *st, float *v)
{
    memset(z, 0, sizeof *z);
    memset(st, 0, sizeof *st);
    z->st = st;
    z->v = v;
    z->start = 1;
}

int feat_text_tokens(const char *s, size_t n)
{
    struct scan z;
    struct feat_text_stats st;
    scan_init(&z, &st, NULL);
    scan_text((const unsigned char *)s, n, &z);
    return st.tokens;
}

void feat_text_params_default(struct feat_text_params *p)
{
    p->L0 = 128;
    p->gamma = 2;
    p->beta_L = 0.5;
    p->beta_ner = 0.5;
}

/* Entity rule:
 *   - a word containing a digit (numbers, dates "2024-05-01", times "10:30", "3.5", "1st")
 *     is one entity;
 *   - an all-capital word of 2+ letters (acronym: "NASA", "USB") is one entity;
 *   - a capitalised word that does not start a sentence or a line (and is not "I")
 *     starts an entity; the capitalised words directly after it (only blanks between)
 *     belong to the same entity ("New York City" = 1).
 * Sentence rule: '.', '!', '?' (a run counts once) followed by a blank, a line break, a
 * quote or bracket, or the end; not after an abbreviation or a single letter ("e.g.",
 * "Dr.", "U.S."); a line break after words also ends a sentence (lists, headings); text
 * after the last end counts as one more sentence. */
void feat_text_stats(const char *s, size_t n, const struct feat_text_params *p,
                     struct feat_text_stats *out)
{
    feat_text_analyze(s, n, p, out, NULL);
}

void feat_text_analyze(const char *s, size_t n, const struct feat_text_params *p,
                       struct feat_text_stats *out, float *v)
{
    struct scan z;
    scan_init(&z, out, v);
    scan_text((const unsigned char *)s, n, &z);
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
    unsigned up = 0, lo = 0, sp = 1; /* sp: i is 0 or s[i - 1] is a blank */
    for (size_t i = 0; i + 1 < n; sp = is_space(s[i]) != 0, i++) {
        /* A cheap filter without data-dependent branches first (most positions fail
         * it): "X" followed by . ) : or "(" followed by X, X one of A-E a-e; only then
         * the full check below. */
        unsigned o0 = g_opt[s[i]], o1 = g_opt[s[i + 1]];
        if (!(sp & (((o0 & OPT_LETTER) & (o1 >> 1)) | ((o0 >> 2) & (o1 & OPT_LETTER)))))
            continue;
        size_t j = i;
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
    (void)cls_table(); /* builds the tables once */
    if (n > FEAT_TASK_SCAN) n = FEAT_TASK_SCAN;
    char norm[FEAT_TASK_SCAN + 3];
    size_t k = 0;
    norm[k++] = ' ';
    /* without branches: the byte (or a blank) is always stored at norm[k]; k moves on
     * for a kept byte, or for a blank after a kept byte (runs of blanks become one) */
    unsigned last_blank = 1;
    for (size_t i = 0; i < n; i++) {
        unsigned t = g_norm[s[i]], blank = t == ' ';
        norm[k] = (char)t;
        k += (blank ^ 1) | (last_blank ^ 1);
        last_blank = blank;
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
        h *= FNV_PRIME;
    }
    return h;
}

void feat_text_ngrams_add(float *v, const char *s, size_t n)
{
    struct scan z;
    struct feat_text_stats st;
    scan_init(&z, &st, v);
    scan_text((const unsigned char *)s, n, &z);
}

void feat_text_ngrams_normalize(float *v)
{
    double ss = 0;
    for (int i = 0; i < FY_HASH_DIM; i++) ss += (double)v[i] * v[i];
    if (ss <= 0) return;
    float inv = (float)(1.0 / sqrt(ss));
    for (int i = 0; i < FY_HASH_DIM; i++) v[i] *= inv;
}
