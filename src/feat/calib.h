/* calib.h — calibration of the MoA-Off image complexity scores (DESIGN.md, MoA-Off):
 * the reference resolution H0×W0 of C_res, the P5/P95 percentiles that normalise
 * C_edge and C_lap, and the weights of c_img. Files are INI (inih), written by
 * `ferry calibrate` (src/feat/cmd_calibrate.c); data/calib/default.ini is the shipped
 * one and feat_calib_default() returns the same values compiled in. */
#ifndef FEAT_CALIB_H
#define FEAT_CALIB_H
#include <stddef.h>
#include <stdio.h>

struct feat_calib {
    int ref_width, ref_height;  /* W0, H0 of C_res = min(1, HW / (H0 W0)), pixels */
    int analysis_size;          /* longer side (px) the percentiles were measured at; 0 = full res */
    int nimages;                /* images the percentiles came from; 0 = unknown */
    double sobel_p5, sobel_p95; /* of mean Sobel magnitude, gray levels */
    double lap_p5, lap_p95;     /* of Laplacian variance, gray levels^2 */
    double w_res, w_edge, w_ent, w_lap; /* c_img weights: >= 0, sum 1 */
};

/* Loads an INI calibration file into *c (all keys required; see data/calib/default.ini).
 * Returns 0, or -1 with "PATH:LINE: problem" in err. *c is untouched on error. */
int feat_calib_load(const char *path, struct feat_calib *c, char *err, size_t errlen);
/* Same for INI text in memory; name is used in messages. */
int feat_calib_parse(const char *text, const char *name, struct feat_calib *c, char *err,
                     size_t errlen);
/* Checks ranges: positive reference, p95 >= p5 >= 0, weights >= 0 summing to 1 (±1e-6). */
int feat_calib_check(const struct feat_calib *c, char *err, size_t errlen);
/* Writes *c as INI; comment (may be NULL, may hold several lines) goes first as ';' lines. */
int feat_calib_write(const struct feat_calib *c, const char *comment, FILE *out);
/* The compiled-in default, equal to data/calib/default.ini. */
const struct feat_calib *feat_calib_default(void);

#endif
