/* ferry.h — the embedding API and the core contracts shared by every area
 * (docs/architecture.md). Each section is owned by one area; the types here are what
 * crosses area boundaries: request → features → (nodes, estimates) → policy → plan →
 * outcome. Area-internal types stay in src/<area>/ headers. */
#ifndef FERRY_H
#define FERRY_H
#include <stddef.h>
#include <stdint.h>

#define FY_VERSION "0.1.0"

/* ==== limits and enums shared by all areas ========================================= */

#define FY_MAX_IMAGES   16   /* images per request the core tracks (req limit may be lower) */
#define FY_MAX_NODES    32   /* nodes a gateway or simulation may hold */
#define FY_HASH_DIM     256  /* hashed n-gram vector dimension (feature hashing) */
#define FY_NAME_MAX     64

enum fy_role { FY_ROLE_EDGE = 0, FY_ROLE_CLOUD = 1 };

enum fy_img_format { FY_FMT_UNKNOWN = 0, FY_FMT_JPEG, FY_FMT_PNG, FY_FMT_WEBP };

/* Task category guess (feat/text.c documents the rules). */
enum fy_task {
    FY_TASK_CHAT = 0, FY_TASK_CAPTION, FY_TASK_COUNT, FY_TASK_OCR, FY_TASK_YESNO,
    FY_TASK_MCQ, FY_TASK_REASON, FY_TASK__N
};

/* Visual-token rule families (feat/tokens.c). */
enum fy_vt_family { FY_VT_QWEN2VL = 0, FY_VT_LLAVA, FY_VT_GENERIC, FY_VT__N };

enum fy_privacy { FY_PRIV_ANY = 0, FY_PRIV_EDGE_ONLY = 1 };

/* ==== feat: complexity features (owner: feat) ====================================== */

struct fy_image_features {
    enum fy_img_format format;
    int width, height;          /* pixels, as encoded */
    size_t bytes;               /* encoded size */
    double sobel_mean;          /* mean 3x3 Sobel magnitude on the analysis image, gray levels */
    double entropy;             /* 256-bin gray histogram entropy, nats */
    double laplacian_var;       /* variance of the 4-neighbour Laplacian, gray levels^2 */
    double c_res, c_edge, c_ent, c_lap, c_img; /* MoA-Off scores in [0,1] */
    int tokens[FY_VT__N];       /* estimated visual tokens per family */
};

struct fy_features {
    int nimages;
    struct fy_image_features img[FY_MAX_IMAGES];
    int text_tokens;            /* estimated tokens of all text parts (all turns) */
    int last_text_tokens;       /* estimated tokens of the last user message */
    int sentences;
    double c_L, c_ner, c_text;  /* MoA-Off text scores in [0,1] */
    enum fy_task task;
    float ngram[FY_HASH_DIM];   /* hashed word uni/bi-grams, L2-normalised */
    int turn;                   /* 0-based index of this user turn in the dialogue */
    int history_tokens;         /* tokens before the last user message */
    int history_images;         /* images before the last user message */
    int max_out_tokens;         /* requested output limit, 0 = none */
};

/* ==== per-request preferences (owner: req) ========================================= */

struct fy_prefs {
    double tradeoff;            /* 0 = fastest .. 1 = best quality; < 0 = unset */
    double slo_ms;              /* end-to-end latency objective; <= 0 = none */
    double min_quality;         /* minimum acceptable P(correct); < 0 = unset */
    enum fy_privacy privacy;
    double max_cost_usd;        /* per request; < 0 = none */
    char session[128];          /* dialogue id; "" = none */
};

/* ==== req: a parsed chat-completions request (owner: req, src/req/request.h) ======= */

struct cJSON;                   /* <cjson/cJSON.h> */

enum fy_msg_role {
    FY_MSG_SYSTEM = 0, FY_MSG_DEVELOPER, FY_MSG_USER, FY_MSG_ASSISTANT, FY_MSG_TOOL,
    FY_MSG_FUNCTION
};
enum fy_part_kind { FY_PART_TEXT = 0, FY_PART_IMAGE };
enum fy_img_detail { FY_DETAIL_AUTO = 0, FY_DETAIL_LOW, FY_DETAIL_HIGH };

/* One image of a request. Text pointers point into the request's cJSON tree. */
struct fy_image_ref {
    int is_data;                /* 1 = data: URL (bytes below), 0 = http(s) reference */
    const char *url;            /* the URL as sent (NUL-terminated, inside json) */
    enum fy_img_format format;  /* data: from the bytes (checked against media type) */
    int width, height;          /* data: from the header (no pixel decoding); 0 for refs */
    uint8_t *bytes;             /* data: decoded image file bytes, owned by the request */
    size_t nbytes;
    enum fy_img_detail detail;
    int message;                /* index of the message it belongs to */
    struct cJSON *url_node;     /* the "url" string item, for rewriting (req_set_image_url) */
};

struct fy_part {
    enum fy_part_kind kind;
    const char *text;           /* text parts: UTF-8, inside json, NUL-terminated */
    size_t text_len;            /* bytes */
    int image;                  /* image parts: index into fy_request.images */
};

struct fy_message {
    enum fy_msg_role role;
    int first_part, nparts;     /* range of fy_request.parts */
    int nimages;                /* image parts among them */
};

struct fy_request {
    struct cJSON *json;         /* the whole body, owned; the "ferry" object removed,
                                 * every other field kept for pass-through */
    char model[128];
    int stream;                 /* 0/1 */
    int include_usage;          /* stream_options.include_usage */
    int max_tokens;             /* max_completion_tokens or max_tokens; 0 = unset */
    double temperature, top_p;  /* < 0 = unset */
    int nstop;                  /* stop sequences given (0..4) */
    char user[128];
    struct fy_prefs prefs;      /* "ferry" object, then X-Ferry-* headers (req_apply_header) */
    int nmessages, nparts, nimages;
    struct fy_message *messages;
    struct fy_part *parts;
    struct fy_image_ref *images;
    /* metadata.answer / metadata.difficulty (used by the emulator; docs/request.md) */
    char answer[256];           /* "" = none */
    double difficulty;          /* in [0,1]; < 0 = none */
};

/* ==== node: a model server and the link to it (owner: node) ======================== */

struct fy_node_profile {
    char model[FY_NAME_MAX];
    double prefill_tps;         /* prompt tokens/s at batch 1 */
    double decode_tps;          /* output tokens/s at batch 1 */
    double tpot_slope;          /* relative growth of time per output token per extra decoding sequence */
    int max_seqs;               /* concurrent sequences (continuous batching) */
    double vision_ms_per_token; /* vision encoder cost per visual token, ms */
    int context_limit;          /* tokens */
    enum fy_vt_family vt_family;
    double usd_per_mtok_in, usd_per_mtok_out, usd_per_hour;
    double q_prior[FY_TASK__N]; /* prior P(task completed) of the model per enum fy_task
                                 * (node/profile.h: prior.<task>, or from cap.<task>);
                                 * 0 = unknown: the predictor's default for the role */
};

struct fy_link {
    double up_mbps, down_mbps;  /* client site -> node bandwidth */
    double rtt_ms;
    double jitter_ms;
};

struct fy_node_state {
    int running;                /* sequences in service */
    int queued;                 /* requests waiting */
    double queued_tokens;       /* prompt + expected output tokens ahead */
    double ewma_ttft_ms, ewma_tpot_ms;
    int healthy;                /* 0 = taken out */
};

struct fy_node {
    char name[FY_NAME_MAX];
    enum fy_role role;
    struct fy_node_profile prof;
    struct fy_link link;
    struct fy_node_state st;
};

/* ==== plan, estimate, outcome, policy (owner: policy / pred) ======================== */

enum fy_img_action {
    FY_IMG_KEEP = 0,            /* send as is */
    FY_IMG_DOWNSCALE,           /* resize so the longer side is plan.downscale_px */
    FY_IMG_DROP,                /* do not send */
    FY_IMG_SPLIT                /* describe on plan.aux_node, send the description */
};

struct fy_plan {
    int node;                   /* index into the node array that answers */
    int aux_node;               /* split plan: node that describes the images; -1 = none */
    int downscale_px;           /* for FY_IMG_DOWNSCALE */
    uint8_t img[FY_MAX_IMAGES]; /* enum fy_img_action per image */
    /* Cascade (DESIGN.md "Policies to ship"): answer on `node` first; when the answer's
     * confidence (in [0,1], fy_outcome.confidence) is below escalate_below, discard it
     * and answer again on escalate_node with every image kept; the client gets that
     * second answer. escalate_below <= 0 = no cascade (so a zeroed plan has none);
     * escalate_node is then ignored (set it to -1). */
    int escalate_node;
    double escalate_below;
};

struct fy_estimate {
    double q_mean, q_std;       /* P(task completed) and its uncertainty */
    double t_up_ms, t_queue_ms, t_vision_ms, t_prefill_ms, t_decode_ms, t_down_ms;
    double ttft_ms, e2e_ms, e2e_std_ms;
    double out_tokens;          /* predicted output tokens */
    double cost_usd;
};

struct fy_outcome {
    struct fy_plan plan;
    double quality;             /* observed score in [0,1] (1 = correct); < 0 = unknown */
    double ttft_ms, e2e_ms;
    double t_up_ms, t_queue_ms, t_vision_ms, t_prefill_ms, t_decode_ms, t_down_ms;
    int in_tokens, out_tokens;
    double cost_usd;
    int failed;                 /* transport or server error */
    /* Cascade plans: the first answer's confidence in [0,1] (< 0 = unknown / no
     * cascade), whether it was escalated, and the first answer's own score (< 0 =
     * unknown). quality, latencies and cost above are of what the client got, with
     * both stages' time and cost included when escalated. */
    double confidence;
    int escalated;
    double first_quality;
};

#endif
