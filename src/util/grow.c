/* grow — growable-array step (grow.h). */
#include "util/grow.h"

#include <stdint.h>
#include <stdlib.h>

void *util_grow(void *arr, size_t *cap, size_t n, size_t elem, size_t first)
{
    if (n < *cap) return arr;
    size_t ncap = *cap ? *cap : (first ? first : 1);
    if (*cap) {
        if (ncap > SIZE_MAX / 2) return NULL;
        ncap *= 2;
    }
    if (elem && ncap > SIZE_MAX / elem) return NULL;
    void *p = realloc(arr, ncap * elem);
    if (!p) return NULL;
    *cap = ncap;
    return p;
}
