/* num — strict parsing of one number from a whole string (config values, CLI options).
 *
 * The rules, the same for every function here:
 *   - the whole of s is the number: no leading or trailing white space, nothing after it;
 *     "" and NULL are refused;
 *   - an optional sign ('-' or '+') and then decimal digits; no hex ("0x10"), no octal
 *     reading of a leading 0 ("010" is ten);
 *   - doubles: decimal notation with an optional fraction and exponent ("2.5e-3"); hex
 *     floats, "inf", "infinity" and "nan" (any case) are refused; a value that over- or
 *     underflows a double (strtod's ERANGE: "1e999", "1e-400") is refused;
 *   - the value must lie in [lo, hi] (both included); callers with an open bound test
 *     it themselves.
 * Return: 0 with *out set; -EINVAL (not a number of that kind: empty, junk, white space,
 * hex, inf/nan, a '-' for the unsigned parser) or -ERANGE (a number, but outside
 * [lo, hi] or outside the type); *out is untouched on error. The caller writes the
 * message (what and where) from the return code. O(strlen(s)). */
#ifndef FERRY_UTIL_NUM_H
#define FERRY_UTIL_NUM_H

int util_parse_long(const char *s, long lo, long hi, long *out);
int util_parse_int(const char *s, int lo, int hi, int *out);
/* No sign at all: "-1" is -EINVAL, not ULLONG_MAX as with strtoull. */
int util_parse_ull(const char *s, unsigned long long lo, unsigned long long hi,
                   unsigned long long *out);
int util_parse_double(const char *s, double lo, double hi, double *out);

#endif
