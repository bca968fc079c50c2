/* logprobs — the token log-probabilities the emulated node reports in OpenAI's format
 * (docs/emulator.md "Logprobs and confidence").
 *
 * Convention (shared with the gateway's cascades, src/gw/cascade.h): an answer's
 * confidence is exp(mean token logprob), the geometric mean of its tokens'
 * probabilities. The emulator draws the confidence from the simulator's model
 * (sim_quality_confidence) and gives the answer's n tokens logprobs whose mean is
 * exactly log(confidence):
 *
 *   l_i = m * w_i,   m = log(confidence),   w_i = 1 + 0.5 (u_i - mean(u)),  u_i ~ U[0,1)
 *
 * so every l_i <= 0, the w_i average to 1 (the mean is exact up to rounding) and the
 * tokens differ deterministically (u from the caller's rng). */
#ifndef FERRY_EMU_LOGPROBS_H
#define FERRY_EMU_LOGPROBS_H
#include <stddef.h>

#include "util/buf.h"
#include "util/rng.h"

#define EMU_TOP_LOGPROBS_MAX 20   /* OpenAI's bound on top_logprobs */
#define EMU_LOGPROB_FLOOR (-9999.0) /* what OpenAI reports for a vanishing probability */

/* Fills lp[0..n) (n >= 0) as above for confidence in [0,1]. Draws n uniforms from r. */
void emu_logprobs_make(double confidence, int n, struct rng *r, double *lp);

/* Appends one OpenAI logprobs item for the token tok[0..len) with logprob lp:
 *   {"token":"…","logprob":l,"bytes":[…],"top_logprobs":[{"token","logprob","bytes"}…]}
 * with top (0..EMU_TOP_LOGPROBS_MAX) alternatives: the token itself and top-1 others
 * whose probabilities are (1 - e^l) / 2^j (j = 1, 2, …), sorted by logprob, so the
 * listed probabilities never sum above 1. 0, or -1 on allocation failure. */
int emu_logprobs_item(struct buf *b, const char *tok, size_t len, double lp, int top);

/* Appends s[0..n) as the inside of a JSON string. 0 or -1. */
int emu_json_str(struct buf *b, const char *s, size_t n);

#endif
