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

/* The files of folder dir whose names end in one of exts (a NULL-terminated list such
 * as {".jpg", ".png", NULL}, compared without case), leaving out names that start with
 * '.' and sub-folders, as "dir/name" paths sorted bytewise by name: *paths is a malloc'd
 * array of n malloc'd strings (util_free_list). Returns n (0 for none: *paths NULL), or
 * -1 with "DIR: problem" in err. O(entries log entries). */
int util_list_dir(const char *dir, const char *const *exts, char ***paths, char *err,
                  size_t errlen);
void util_free_list(char **v, int n);

#endif
