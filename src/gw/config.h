/* gw/config — the gateway's INI configuration (docs/gateway.md "Configuration").
 *
 * Sections: [server], [policy], [pred], [limits], [timeouts], [health], [share], [shadow] and one
 * [node NAME] per backend. Parsed with inih; every error names the file and line ("ferry.ini:12: node
 * 'edge0': role must be edge or cloud"). Backend API keys never appear in the file: a
 * node names an environment variable (api_key_env) read at load time. */
#ifndef FERRY_GW_CONFIG_H
#define FERRY_GW_CONFIG_H
#include <stddef.h>

#include "ferry.h"

#define GW_MAX_CLIENT_KEYS 16
#define GW_URL_MAX         256
#define GW_PATH_MAX        256
#define GW_KEY_MAX         256

enum gw_metrics_kind {
    GW_METRICS_AUTO = 0,  /* probe /metrics, recognise vLLM or llama.cpp names */
    GW_METRICS_VLLM,
    GW_METRICS_LLAMACPP,
    GW_METRICS_NONE
};

struct gw_node_cfg {
    char name[FY_NAME_MAX];       /* what clients pin with "model": NAME */
    enum fy_role role;
    char url[GW_URL_MAX];         /* base URL, e.g. http://127.0.0.1:8001 (no /v1) */
    char model[FY_NAME_MAX];      /* model name the backend expects; also pins. Default:
                                   * the profile's model, else the node's name */
    int model_given;              /* model was set in the file */
    char profile[GW_PATH_MAX];    /* profile INI file or directory of them (src/node/profile.h,
                                   * e.g. data/profiles); "" = built-in default */
    char profile_node[FY_NAME_MAX]; /* [node X] section of that file; "" = this node's name */
    int profile_line, profile_node_line; /* where they were set, for errors (0: not set) */
    char api_key_env[FY_NAME_MAX];/* NAME of the env var holding the backend key; "" = none */
    char api_key[GW_KEY_MAX];     /* read from api_key_env at load; never logged */
    enum gw_metrics_kind metrics;
    struct fy_link link;          /* client site -> backend; fields < 0 = from the profile */
    double usd_per_mtok_in, usd_per_mtok_out; /* < 0 = keep the profile's */
    int max_inflight;             /* requests the gateway sends at once; 0 = unlimited */
    int line;                     /* line of the section header, for messages */
};

struct gw_config {
    char path[GW_PATH_MAX];
    /* [server] */
    char listen_host[64];
    int listen_port;              /* 0 = kernel picks (tests) */
    int workers;                  /* feature/downscale threads */
    int nclient_keys;
    char client_keys[GW_MAX_CLIENT_KEYS][GW_KEY_MAX]; /* Bearer keys; none = open */
    char state_file[GW_PATH_MAX]; /* learned predictor state; "" = not saved */
    char trace_db[GW_PATH_MAX];   /* SQLite trace; "" = not recorded */
    int save_interval_s;
    int drain_timeout_s;          /* SIGTERM: wait this long for in-flight requests */
    /* client deadlines (gw/http.h "Slow and abusive clients"), milliseconds */
    int header_timeout_ms;        /* request line + headers, from accept / first byte */
    int body_timeout_ms;          /* body grace; then min_body_rate on average */
    long min_body_rate;           /* bytes/s */
    int keepalive_timeout_ms;     /* idle kept-alive connection closed after this */
    int send_timeout_ms;          /* answer bytes the client takes none of for this long:
                                   * the connection is closed, the backend cancelled */
    /* [policy] */
    char policy[FY_NAME_MAX];
    char policy_params[256];
    int policy_line, policy_params_line; /* where name and params were set (0: default) */
    int model_line;               /* where [pred] model was set (0: not in the file) */
    /* [pred] */
    char model_file[GW_PATH_MAX]; /* `ferry train` model: the predictors' starting point
                                   * ("" = built-in priors); precedence with learned state:
                                   * docs/gateway.md "Learned state and model files" */
    const char *model_origin;     /* where model_file came from, for errors: "[pred] model"
                                   * (the config) or "--model" (set by ferry serve) */
    /* [limits] */
    size_t max_body_bytes;        /* HTTP body; 0 = the request model's default */
    int max_images;               /* image parts per request, 0..FY_MAX_IMAGES (0: text only); default 16 */
    unsigned long long max_pixels;/* per image; 0 = default */
    size_t max_client_buffer;     /* bytes queued to one client before the upstream pauses */
    int max_connections;          /* open client connections; more get 503 */
    int downscale_quality;        /* JPEG quality of downscaled images */
    int max_image_side;           /* px; kept images larger are downscaled to it; 0 = off */
    int split_max_tokens;         /* length of the split plan's description */
    /* [timeouts] (milliseconds) */
    int connect_ms, first_byte_ms, idle_ms, total_ms;
    int max_retries;              /* failovers per request before giving up */
    /* [health] */
    int health_interval_ms, health_backoff_max_ms, scrape_interval_ms;
    /* [share] (gw/share.h; docs/gateway.md "Running several replicas") */
    char share_redis[GW_PATH_MAX];/* as written: "HOST:PORT" or a unix socket path; "" = off */
    char share_host[128];         /* parsed: host, or the socket path when share_port == 0 */
    int share_port;               /* 0 = unix socket */
    char share_prefix[64];        /* key prefix, [A-Za-z0-9_.:-]+ */
    char share_replica[64];       /* this replica's id; "" = HOSTNAME-PID at start */
    int share_interval_ms;        /* publish own load / read the others' every this often */
    int share_ttl_ms;             /* a replica's published load expires after this */
    int share_timeout_ms;         /* connect timeout; bound of the blocking start/stop exchanges */
    /* [shadow] (gw/shadow.h; docs/gateway.md "Shadow sampling") */
    double shadow_rate;           /* share of eligible requests also asked of the reference; 0 = off */
    char shadow_reference[FY_NAME_MAX]; /* node name; "" = the healthy node of highest prior quality */
    int shadow_max_inflight;      /* reference requests open at once; more are skipped */
    double shadow_max_usd_per_hour; /* reference spending cap per sliding hour; 0 = none */
    char shadow_compare[16];      /* auto, exact, contains, vqa or letter */
    /* nodes */
    int nnodes;
    struct gw_node_cfg nodes[FY_MAX_NODES];
};

/* Defaults for every field (no nodes). */
void gw_config_default(struct gw_config *c);
/* Loads and validates path. 0, or -1 with "path:line: what" in err. */
int gw_config_load(const char *path, struct gw_config *c, char *err, size_t errlen);
/* Flags of gw_config_load_flags. */
#define GW_CONFIG_NO_KEYS 1u /* an api_key_env / api_keys_env variable that is not set
                              * leaves the key empty instead of failing: for tools that
                              * read the file but talk to no node (bench export, load) */
/* gw_config_load with flags (GW_CONFIG_*; 0 = gw_config_load). */
int gw_config_load_flags(const char *path, struct gw_config *c, unsigned flags, char *err,
                         size_t errlen);
/* Same from a string (name is used in messages). */
int gw_config_load_string(const char *text, const char *name, struct gw_config *c,
                          char *err, size_t errlen);
/* Checks cross-field rules after parsing (>= 1 node, unique names, URLs). 0 or -1. */
int gw_config_validate(struct gw_config *c, char *err, size_t errlen);
/* Index of the node whose name or backend model equals s, or -1. */
int gw_config_find_node(const struct gw_config *c, const char *s);
const char *gw_role_name(enum fy_role r);

#endif
