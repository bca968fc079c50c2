/* link — the network between a client site and one node (docs/simulator.md "Network
 * model"). Upload bandwidth is piecewise constant in time and comes from one of:
 *   const   a fixed up_mbps;
 *   series  a time series file, lines "t_s,mbps" (t ascending, first t = 0; the last
 *           value holds forever; '#' comments);
 *   markov  a two-state (good/bad) continuous-time Markov chain: good_mbps for an
 *           exponential time of mean good_s, then bad_mbps for mean bad_s, ... drawn
 *           from the link's own seeded random stream (so runs are reproducible);
 *   views   the LCIO/TMO figures: a fixed transfer time per number of uploaded images
 *           (`view_s = t0,t1,t2,...` seconds for 0,1,2,... images; the last entry
 *           holds for more images), bandwidth ignored.
 * Upload of B bytes started at t0 ends at
 *     t0 + rtt/2 + jitter + (time to integrate B*8 bits over the bandwidth curve),
 * so a bandwidth change mid-upload slows or speeds up the rest of the transfer.
 * Streamed tokens come back after rtt/2 (download of a few hundred bytes is ignored). */
#ifndef FERRY_NODE_LINK_H
#define FERRY_NODE_LINK_H
#include <stddef.h>
#include <stdint.h>

#include "ferry.h"

#define LINK_MAX_VIEWS 8        /* entries of a `views` table */
#define LINK_MAX_POINTS 100000  /* points of a time series file */

enum link_kind { LINK_CONST = 0, LINK_SERIES, LINK_MARKOV, LINK_VIEWS };

struct link_spec {
    char name[FY_NAME_MAX];
    enum link_kind kind;
    struct fy_link base;        /* up/down Mbps (const, and markov's good state), rtt, jitter sd */
    char series_path[512];      /* series: file (relative paths resolved by the loader) */
    double bad_mbps;            /* markov: bandwidth in the bad state */
    double good_s, bad_s;       /* markov: mean sojourn times, seconds */
    int nviews;                 /* views: entries used in view_s */
    double view_s[LINK_MAX_VIEWS];
};

struct link;

/* Builds a link from its spec; seed drives the markov chain and the jitter (use a
 * different seed per (site, node) link). NULL with a message on a bad spec, an
 * unreadable or malformed series file ("path:line: what"), or ENOMEM. */
struct link *link_new(const struct link_spec *s, uint64_t seed, char *err, size_t errlen);
void link_free(struct link *l);

/* Upload bandwidth in Mbps at time t_ms (t >= 0). Queries at times earlier than ones
 * already made are answered from the retained past (markov keeps its whole past). */
double link_up_mbps_at(struct link *l, double t_ms);

/* Time (ms) at which an upload of `bytes` with `views` images, started at t0_ms, has
 * fully arrived: t0 + rtt/2 + jitter_ms + transfer. jitter_ms is the caller's draw
 * (pass 0 for none; it is clamped so the result is never before t0). */
double link_upload_end(struct link *l, double t0_ms, double bytes, int views, double jitter_ms);

/* One-way delay of the stream back to the client, ms (rtt/2). */
double link_down_ms(const struct link *l);

/* Current link figures for policies (up_mbps at t_ms). */
void link_state(struct link *l, double t_ms, struct fy_link *out);

#endif
