/* b64 — base64 (RFC 4648) decoding and encoding, standard and URL-safe alphabets.
 *
 * Decoding rules (the same for both alphabets; documented in docs/request.md):
 *  - ASCII whitespace (space, \t, \r, \n, \f, \v) is skipped anywhere in the input, so
 *    line-wrapped base64 (MIME, `base64` output) decodes. Nothing else is skipped.
 *  - Padding is optional. When '=' appears it must be the end of the data: one or two
 *    '=' that complete the last 4-character group (whitespace may follow).
 *  - A lone final character (length ≡ 1 mod 4) is an error: it cannot encode a byte.
 *  - Unused low bits of the last group are ignored (as EVP_DecodeBlock does), so
 *    "QQ==" and "QR==" both decode to "A".
 *  - A character of the other alphabet ('+' '/' vs '-' '_') is an error.
 * Cost: O(n), one table lookup per input byte; no allocation. */
#ifndef FERRY_UTIL_B64_H
#define FERRY_UTIL_B64_H
#include <stddef.h>
#include <stdint.h>

enum b64_alphabet {
    B64_STD = 0, /* A-Z a-z 0-9 + /  (RFC 4648 §4, data: URLs, MIME) */
    B64_URL = 1  /* A-Z a-z 0-9 - _  (RFC 4648 §5) */
};

enum b64_err {
    B64_OK = 0,
    B64_EBADCHAR = -1, /* a byte outside the alphabet (position in *out_len) */
    B64_EPAD = -2,     /* misplaced or wrong padding */
    B64_ETRUNC = -3,   /* a lone final character */
    B64_ESPACE = -4    /* out has too little room */
};

/* Upper bound of the decoded size of n input bytes (exact for unpadded input without
 * whitespace, rounded up otherwise). Never overflows. */
size_t b64_decoded_max(size_t n);
/* Exact decoded size of valid input, ignoring whitespace and padding; O(n). */
size_t b64_decoded_len(const char *in, size_t n);
/* Decodes in[0..n) into out[0..cap). Returns 0 and the byte count in *out_len, or a
 * negative enum b64_err; on B64_EBADCHAR/B64_EPAD *out_len is the offending input
 * offset. out is unspecified on error. */
int b64_decode(const char *in, size_t n, enum b64_alphabet a, uint8_t *out, size_t cap,
               size_t *out_len);
/* Encoded length of n bytes (with padding when pad != 0), excluding the NUL. */
size_t b64_encoded_len(size_t n, int pad);
/* Encodes in[0..n) into out, which must hold b64_encoded_len(n, pad) + 1 bytes; writes a
 * NUL terminator and returns the encoded length. */
size_t b64_encode(const uint8_t *in, size_t n, enum b64_alphabet a, int pad, char *out);
/* Short English text for an enum b64_err. */
const char *b64_strerror(int err);

#endif
