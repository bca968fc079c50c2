/* answers — what the emulated node says (docs/emulator.md "Answers").
 *
 * Tokens: the emulator's own tokenizer cuts text into pieces of at most 4 bytes, never
 * inside a UTF-8 sequence; one piece = one token, both for usage counts and for the SSE
 * chunks (one content chunk per token). Generated filler text is made of three-letter
 * words followed by a space, so n filler tokens are exactly n words.
 *
 * Ground truth: a request whose "metadata" carries "answer" (the reference answer, a
 * string) is answered with that string with probability p_correct (the simulator's
 * quality model for this node's model and the item's "difficulty"), otherwise with a
 * wrong answer of the same kind (another letter for a multiple-choice letter, the
 * other of yes/no, another number for a number, a refusal sentence for free text). */
#ifndef FERRY_EMU_ANSWERS_H
#define FERRY_EMU_ANSWERS_H
#include <stddef.h>

#include "util/rng.h"

#define EMU_TOKEN_BYTES 4            /* bytes per token of the emulator's tokenizer */
#define EMU_MAX_OUT_TOKENS 32768     /* hard cap on generated tokens per request */

struct emu_answer_in {
    const char *answer;      /* metadata.answer, NULL = no ground truth */
    double p_correct;        /* probability of answering correctly (ignored without answer) */
    int has_u;               /* 1: u decides (correct iff u < p_correct); 0: drawn from */
    double u;                /*   the answer's rng */
    int max_tokens;          /* request's max_tokens / max_completion_tokens; 0 = none */
    int out_tokens;          /* metadata.out_tokens: force this length; 0 = model it */
};

struct emu_answer {
    char *text;              /* malloc'd, NUL-terminated content */
    int tokens;              /* == emu_tokens(text) */
    int correct;             /* 1 / 0 with ground truth, -1 without */
    const char *finish;      /* "stop" or "length" */
};

/* Number of tokens of s (n bytes) for the emulator's tokenizer; 0 for empty text. */
int emu_tokens(const char *s, size_t n);

/* Byte length of the token starting at s (n bytes left, n > 0): 1..EMU_TOKEN_BYTES,
 * extended to the end of a UTF-8 sequence. */
size_t emu_token_len(const char *s, size_t n);

/* Output length of a request without ground truth, modelled as a lognormal draw with
 * median 80 tokens (sigma 0.6), clipped to [8, 1024]. */
int emu_model_out_tokens(struct rng *r);

/* Builds the answer. 0, or -1 on allocation failure (a->text NULL). */
int emu_answer_make(const struct emu_answer_in *in, struct rng *r, struct emu_answer *a);
void emu_answer_fini(struct emu_answer *a);

#endif
