/* score — answer scoring for `ferry bench collect` (docs/collect.md "Scoring").
 *
 * Normalisation (all kinds): lower case; punctuation other than a decimal point between
 * digits and an apostrophe inside a word becomes a space; the articles a, an, the are
 * dropped; number words zero..ten become digits; runs of spaces collapse. This follows
 * the spirit of the VQA evaluation's answer processing; it is ferry's own code.
 *
 * Kinds:
 *   vqa       VQA accuracy: min(1, m / 3), m = how many reference answers (the human
 *             answers of the item, usually 10) equal the normalised reply. With one
 *             reference, a match scores 1.
 *   mcq       multiple choice: the first choice letter in the reply ("B", "(B)", "B.",
 *             "Answer: B", "option b") compared with the reference letter; 1 or 0.
 *             A reply that is exactly the text of a choice counts as that letter.
 *   exact     normalised reply equal to a normalised reference; 1 or 0.
 *   contains  a normalised reference appears in the normalised reply as whole words;
 *             1 or 0.
 * A reply of a kind that cannot be scored (no letter found for mcq) scores 0. */
#ifndef FERRY_EMU_SCORE_H
#define FERRY_EMU_SCORE_H
#include <stddef.h>

enum emu_score_kind { EMU_SCORE_VQA = 0, EMU_SCORE_MCQ, EMU_SCORE_EXACT, EMU_SCORE_CONTAINS };

/* "vqa", "mcq", "exact", "contains" -> kind; -1 for anything else. */
int emu_score_kind_parse(const char *s);

/* Normalises s into out (at most cap bytes incl. NUL; longer text is cut). */
void emu_score_normalize(const char *s, char *out, size_t cap);

/* Score in [0,1] of reply against refs[0..nrefs). choices (may be NULL, nchoices 0)
 * are the option texts of an mcq item in letter order (A, B, ...). */
double emu_score(enum emu_score_kind k, const char *reply, const char *const *refs,
                 int nrefs, const char *const *choices, int nchoices);

/* The choice letter found in reply ('A'..'H'), or 0 (mcq rules above). */
char emu_score_letter(const char *reply, const char *const *choices, int nchoices);

#endif
