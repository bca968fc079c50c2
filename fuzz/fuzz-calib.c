/* fuzz-calib.c — libFuzzer target for the calibration INI parser (feat_calib_parse).
 * Seeds: fuzz/corpus/fuzz-calib/ (the shipped default calibration). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "feat/calib.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = malloc(size + 1);
    struct feat_calib c;
    char err[256];
    if (!text) return 0;
    memcpy(text, data, size);
    text[size] = 0;
    if (feat_calib_parse(text, "fuzz.ini", &c, err, sizeof err) == 0 &&
        feat_calib_check(&c, err, sizeof err) != 0)
        abort(); /* parse must only accept what check accepts */
    free(text);
    return 0;
}
