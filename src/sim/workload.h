/* workload — dataset-like request mixes for the simulator (docs/simulator.md
 * "Workloads"). A workload file (data/workloads/NAME.ini) has one [workload] section
 * and one [class NAME] section per request class; every request draws a class by
 * weight, a latent difficulty d ~ N(difficulty_mean, difficulty_sd), its prompt and
 * output lengths (lognormal around the stated medians), and its images from the image
 * pool (data/workloads/images.csv, measured from ../shared/images with
 * `ferry sim --image-pool DIR`).
 *
 * Observable features are noisy functions of the latent difficulty: with the class
 * z-score z = (d - mean) / sd and z' = z + N(0, feature_noise), the image is the pool
 * image (of the class's filter) at quantile Phi(z' / sqrt(1 + feature_noise^2)) of
 * c_img, and C_ner is that same quantile — so harder requests tend to carry more
 * complex images and denser text, more or less reliably. */
#ifndef FERRY_SIM_WORKLOAD_H
#define FERRY_SIM_WORKLOAD_H
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

struct rng;

#define SIM_MAX_CLASSES 16
#define SIM_POOL_MAX 10000        /* rows of an image pool file */
#define SIM_MAX_VIEWS 4           /* camera views per dialogue (m4a1-like) */

/* Where a key was set: file and line, or file "--set" / "[sweep]" with line 0 (then
 * key and value are the assignment's), for errors that compare two keys. */
struct sim_origin {
    char file[256];
    int line;
    char key[24], value[24];
};

struct sim_class {
    char name[32];
    enum fy_task task;
    char skill[32];               /* capability key of the quality model (cap.<skill>) */
    double weight;
    double diff_mean, diff_sd;    /* latent difficulty, logits */
    double prompt_tokens, prompt_sigma; /* lognormal: median tokens, sigma of log */
    double out_tokens, out_sigma;
    int out_max;                  /* cap on drawn output tokens and the requested limit */
    double p_image;               /* probability the request carries images */
    int images_min, images_max;   /* images when it does */
    double image_need;            /* [0,1]: how much the answer needs the images */
    double visual_share;          /* [0,1]: share of the answer a split plan gets from the
                                   * describing (aux) node */
    char image_prefix[32];        /* pool filter: image names starting with this; "" = all */
    int image_max_side;           /* images larger are used as if resized by the client to
                                   * this longer side (e.g. 640 for COCO-like VQAv2);
                                   * bytes scale with the area, tokens, C_res and c_img are
                                   * recomputed; 0 = as measured */
    int line;
    struct sim_origin at_images;  /* the last images, images_min or images_max */
};

struct sim_image {
    char name[64];
    struct fy_image_features f;
};

struct sim_workload {
    char name[64];
    int nclasses;
    struct sim_class cls[SIM_MAX_CLASSES];
    double feature_noise;         /* sd of the noise on the observable z-score */
    int turns_min, turns_max;     /* dialogue turns (1, 1 = single requests) */
    struct sim_origin at_turns;   /* the last turns_min or turns_max */
    double think_s;               /* mean think time between turns (exponential) */
    int views;                    /* camera views per dialogue (0 = fresh images per turn) */
    char pool_path[512];
    struct sim_image *pool;       /* sorted by c_img ascending; owned */
    int npool;
    int *cand[SIM_MAX_CLASSES];   /* per class: pool indices passing its filter, owned */
    int ncand[SIM_MAX_CLASSES];
};

/* The latent truth of one request. */
struct sim_latent {
    int cls;
    double difficulty;
    double u;                     /* correct on a plan iff u < P(correct | plan) */
    int out_tokens;               /* true output tokens */
    int prompt_tokens;            /* this turn's prompt */
    int pool_idx[FY_MAX_IMAGES];
};

/* Dialogue context carried between turns. */
struct sim_dialogue {
    int turn, turns;
    int history_tokens, history_images;
    int nviews;
    int view_idx[SIM_MAX_VIEWS];  /* pool indices of the dialogue's camera views */
};

void sim_workload_init(struct sim_workload *w);
void sim_workload_fini(struct sim_workload *w);

/* Feeds one key of [workload] or [class NAME]. Returns 1 handled, 0 not a workload
 * section, -1 error (message in err). */
int sim_workload_feed(struct sim_workload *w, const char *file, const char *section,
                      const char *key, const char *value, int line, char *err, size_t errlen);

/* Checks the workload and loads its image pool (pool_path relative to dir when not
 * absolute). */
int sim_workload_finish(struct sim_workload *w, const char *dir, char *err, size_t errlen);

/* Reads an image pool CSV (header line, then name,format,width,height,bytes,
 * sobel_mean,entropy,laplacian_var,c_res,c_edge,c_ent,c_lap,c_img,tok_qwen2vl,tok_llava,
 * tok_generic; the fields of struct fy_image_features). */
int sim_pool_load(const char *path, struct sim_image **out, int *n, char *err, size_t errlen);

/* Starts a dialogue (draws turns and views). */
void sim_dialogue_start(const struct sim_workload *w, struct rng *r, struct sim_dialogue *d);

/* Draws one request (the next turn of dialogue d, which may be NULL for single
 * requests) into *lat and its observable features into *f. */
void sim_workload_draw(const struct sim_workload *w, struct rng *r, struct sim_dialogue *d,
                       struct sim_latent *lat, struct fy_features *f);

/* After a turn: adds its prompt and answer to the dialogue history. */
void sim_dialogue_next(struct sim_dialogue *d, const struct sim_latent *lat, int nimages);

/* Internal to the sim area (workload and experiment files): parses v, a number in
 * [lo, hi] for key (trailing blanks allowed), into *out; else -1 and
 * "KEY = V: expected a number in [LO, HI]" in err. */
int sim__num(const char *key, const char *v, double lo, double hi, double *out, char *err,
             size_t errlen);
/* sim__num, and the value must be a whole number ("expected an integer" otherwise). */
int sim__int(const char *key, const char *v, double lo, double hi, double *out, char *err,
             size_t errlen);

#endif
