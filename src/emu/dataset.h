/* dataset — the labelled JSONL dataset of `ferry bench collect` and `ferry bench load`
 * (docs/collect.md "Dataset format"), and the OpenAI request built from one item.
 *
 * One JSON object per line ('#' lines and blank lines are skipped):
 *   {"id":"cat-1", "question":"What animal is this?", "images":["images/x.png"],
 *    "answers":["cat","cat","kitten"], "kind":"vqa", "choices":["A. ...", ...],
 *    "task":"caption", "dataset":"mini", "difficulty":0.3, "skill":"vqa",
 *    "max_tokens":32}
 * Required: id (unique), question, answers (or "answer"). kind defaults to mcq with
 * choices, vqa with >= 3 answers, else contains. Images are file paths, resolved
 * against the dataset's folder, then against the base folder. */
#ifndef FERRY_EMU_DATASET_H
#define FERRY_EMU_DATASET_H
#include <stddef.h>

#include <cjson/cJSON.h>

#include "ferry.h"
#include "emu/score.h"

#define EMU_DATASET_MAX_LINE  (1u << 20)  /* bytes per dataset line */
#define EMU_DATASET_MAX_ITEMS 1000000     /* items per dataset */
#define EMU_MAX_IMAGE_BYTES   (20u << 20) /* bytes per image file */
#define EMU_MAX_REFS          32          /* reference answers / choices per item */
#define EMU_DEFAULT_MAX_TOKENS 64

struct emu_item {
    char id[64];
    char dataset[64];
    char skill[32];
    enum fy_task task;
    int task_given;               /* task from the dataset (else feat's guess) */
    enum emu_score_kind kind;
    char *prompt;                 /* question (+ choices), malloc'd */
    char *refs[EMU_MAX_REFS];
    int nrefs;
    char *choices[EMU_MAX_REFS];
    int nchoices;
    char *images[FY_MAX_IMAGES];  /* resolved paths */
    int nimages;
    double difficulty;            /* < 0 = none */
    int max_tokens;
};

/* Reads the whole dataset: *items (free with emu_dataset_free) and *n. base: folder for
 * relative image paths after the dataset's own. -1 with "path:line: what" in err. */
int emu_dataset_load(const char *path, const char *base, struct emu_item **items, int *n,
                     char *err, size_t errlen);
void emu_dataset_free(struct emu_item *items, int n);
/* Parses one dataset line (len bytes) into *it (emu_item_fini it); where prefixes
 * messages ("file:line"); image paths are resolved against dsdir, then base. */
int emu_item_parse(const char *line, size_t len, const char *where, const char *dsdir,
                   const char *base, struct emu_item *it, char *err, size_t errlen);
void emu_item_fini(struct emu_item *it);

/* Reads the item's images as data: URLs: *urls is a malloc'd array of it->nimages
 * malloc'd strings (free with emu_item_urls_free); sides[i] the longer side in px of
 * image i (sides may be NULL); *bytes the image bytes in all.
 * -1 with "item ID: path: problem" in err. */
int emu_item_image_urls(const struct emu_item *it, char ***urls, int *sides, size_t *bytes,
                        char *err, size_t errlen);
void emu_item_urls_free(char **urls, int n);

/* The streamed chat request for one item (JSON text, malloc'd): the nurls images urls
 * then the prompt in one user message; with send_metadata, metadata.answer / difficulty /
 * skill / images / image_sides for emulated nodes (docs/emulator.md "Answers"). The
 * metadata always describes the item's own it->nimages images and their longer sides
 * (sides, px), whatever is sent: an emulated node sees a plan (fewer or smaller images
 * than the metadata says) as the gateway's plans show it. NULL on allocation failure. */
char *emu_item_body(const struct emu_item *it, char *const *urls, int nurls, const int *sides,
                    const char *model, int send_metadata);

/* A chat user message (cJSON object, caller owns it; NULL on allocation failure): one
 * image_url part per url, then a text part. */
cJSON *emu_user_message(char *const *urls, int nurls, const char *text);

/* metadata.images = n and, with sides, metadata.image_sides (longer side in px of each
 * image): what emulated nodes read (docs/emulator.md "Answers"). */
void emu_metadata_images(cJSON *md, const int *sides, int n);

/* The MIME type of an image format. */
const char *emu_mime_of(enum fy_img_format f);

#endif
