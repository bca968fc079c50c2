/* num — strict whole-string number parsing (num.h). */
#include "util/num.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>

/* 0 when s starts a decimal number as num.h allows: an optional sign (signed: 1) and
 * then a digit, or for a double also '.' and a digit. strto* would skip white space,
 * read hex and words (inf, nan) that the rules refuse, so they are stopped here. */
static int starts_decimal(const char *s, int sign_ok, int is_double)
{
    if (!s) return -EINVAL;
    if (*s == '-' || *s == '+') {
        if (!sign_ok) return -EINVAL;
        s++;
    }
    if (is_double && *s == '.') s++;
    if (*s < '0' || *s > '9') return -EINVAL;
    /* "0x..": strtod would read a hex float, strtol(…, 10) stops at the 'x' anyway */
    if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) return -EINVAL;
    return 0;
}

int util_parse_long(const char *s, long lo, long hi, long *out)
{
    if (starts_decimal(s, 1, 0) < 0) return -EINVAL;
    char *end;
    errno = 0;
    long n = strtol(s, &end, 10);
    if (*end) return -EINVAL;
    if (errno == ERANGE || n < lo || n > hi) return -ERANGE;
    *out = n;
    return 0;
}

int util_parse_int(const char *s, int lo, int hi, int *out)
{
    long n;
    int rc = util_parse_long(s, lo, hi, &n);
    if (rc == 0) *out = (int)n;
    return rc;
}

int util_parse_ull(const char *s, unsigned long long lo, unsigned long long hi,
                   unsigned long long *out)
{
    if (starts_decimal(s, 0, 0) < 0) return -EINVAL;
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (*end) return -EINVAL;
    if (errno == ERANGE || n < lo || n > hi) return -ERANGE;
    *out = n;
    return 0;
}

int util_parse_double(const char *s, double lo, double hi, double *out)
{
    if (starts_decimal(s, 1, 1) < 0) return -EINVAL;
    char *end;
    errno = 0;
    double d = strtod(s, &end);
    if (*end) return -EINVAL;
    if (errno == ERANGE || !isfinite(d) || !(d >= lo && d <= hi)) return -ERANGE;
    *out = d;
    return 0;
}
