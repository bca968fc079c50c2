/* text — text complexity features of a prompt (docs/features.md, "Text and dialogue
 * features"): estimated tokens, sentences, entities, the MoA-Off text scores
 * c_text = β_L C_L + β_ner C_ner with C_L = min(1, L / L0) and C_ner = min(1, (E/S) / γ),
 * a task-category guess and a hashed word n-gram vector. Input is UTF-8 (the request
 * parser has validated it); all functions are O(n) in the bytes, allocate nothing and
 * are thread-safe. */
#ifndef FEAT_TEXT_H
#define FEAT_TEXT_H
#include <stddef.h>

#include "ferry.h"

/* Parameters of the MoA-Off text score. The paper does not publish its values; these
 * defaults are ferry's own choice, stated in docs/features.md:
 *   L0 = 128 tokens (VQA-style prompts are 5-30 tokens, multi-paragraph prompts saturate),
 *   γ = 2 entities per sentence, β_L = β_ner = 0.5. */
struct feat_text_params {
    double L0;          /* tokens at which C_L saturates */
    double gamma;       /* entities per sentence at which C_ner saturates */
    double beta_L, beta_ner; /* >= 0, sum 1 */
};

struct feat_text_stats {
    int tokens;         /* estimated BPE tokens (feat_text_tokens) */
    int words;          /* letter/digit runs */
    int sentences;      /* >= 1 when there is any word, else 0 */
    int entities;       /* rule-based entity/number mentions (see text.c) */
    double c_L, c_ner, c_text; /* in [0, 1] */
};

void feat_text_params_default(struct feat_text_params *p);

/* Estimated tokens of a BPE tokenizer of the GPT-4/4o family (cl100k/o200k) for
 * s[0..n). Rule (text.c): one token per word of up to 12 letters plus one per 4 further
 * letters; digits in groups of 3; one per punctuation run plus 0.2 per extra mark; one
 * per line break run and per run of 2+ spaces; one per CJK/kana/hangul character.
 * Measured error vs gpt-tokenizer on data/oracle/text_tokens.csv: docs/features.md. */
int feat_text_tokens(const char *s, size_t n);

/* Tokens, words, sentences, entities and the MoA-Off scores of s[0..n). p NULL = defaults. */
void feat_text_stats(const char *s, size_t n, const struct feat_text_params *p,
                     struct feat_text_stats *out);

/* feat_text_stats and feat_text_ngrams_add in one pass over the bytes (v may be NULL). */
void feat_text_analyze(const char *s, size_t n, const struct feat_text_params *p,
                       struct feat_text_stats *out, float *v);

/* Recomputes c_L, c_ner, c_text of st from its tokens, sentences and entities (for
 * counts summed over several text parts). p NULL = defaults. */
void feat_text_scores(struct feat_text_stats *st, const struct feat_text_params *p);

/* Task category of a user prompt by the documented keyword rules (text.c), looking at
 * the first FEAT_TASK_SCAN bytes. */
#define FEAT_TASK_SCAN 4096
enum fy_task feat_text_task(const char *s, size_t n);
const char *feat_task_name(enum fy_task t); /* "chat", "caption", "count", "ocr", ... */

/* Feature hashing of word unigrams and bigrams into v[FY_HASH_DIM]. A word is a run of
 * letters and digits (ASCII lower-cased; non-ASCII bytes kept; a contraction "'s" stays
 * in its word); a CJK/kana/hangul character is a word of its own. Unigram hash =
 * FNV-1a 32 of the word's bytes; bigram hash = FNV-1a 32 of "w1 w2" (the two words'
 * bytes joined by one space; both hashes are computed in the same byte loop). Index = hash mod FY_HASH_DIM, sign +
 * when bit 31 of the hash is 0 else -, one count per occurrence. _add accumulates;
 * _normalize scales to unit L2 norm (a zero vector stays zero). */
void feat_text_ngrams_add(float *v, const char *s, size_t n);
void feat_text_ngrams_normalize(float *v);
/* FNV-1a 32-bit, exposed for tests and for the trace reader. */
unsigned feat_fnv1a32(const void *p, size_t n, unsigned h);
#define FEAT_FNV_BASIS 2166136261u

#endif
