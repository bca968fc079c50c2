/* err — filling a caller's error buffer (the "char *err, size_t errlen" convention). */
#ifndef FERRY_UTIL_ERR_H
#define FERRY_UTIL_ERR_H
#include <stddef.h>

/* snprintf into err (errlen bytes, always NUL-terminated, truncated when longer); does
 * nothing when err is NULL or errlen is 0, so callers may pass no buffer. */
void util_seterr(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
