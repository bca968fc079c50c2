/* file — whole-file reading for the CLI and tests (inputs, configs, traces, images). */
#ifndef FERRY_UTIL_FILE_H
#define FERRY_UTIL_FILE_H
#include <stddef.h>
#include <stdint.h>

/* Reads a whole file ("-" = standard input) of at most max_bytes (0 = no limit) into a
 * malloc'd buffer with a NUL after the last byte (not counted in *len), so text can be
 * used as a C string. Returns 0, or -1 with "PATH: problem" in err ("No such file or
 * directory", "is a directory", "larger than the limit of N bytes", the read error)
 * and *out NULL. Reading stops one buffer past max_bytes: O(min(size, max_bytes)). */
int util_read_file(const char *path, size_t max_bytes, uint8_t **out, size_t *len, char *err,
                   size_t errlen);

#endif
