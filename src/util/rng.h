/* rng — seedable, fast, deterministic pseudo-random numbers: xoshiro256** (Blackman &
 * Vigna, 2018), seeded through splitmix64. Same seed => same sequence on every machine
 * (the draws use only IEEE double arithmetic and libm's log/log1p/sqrt/exp). */
#ifndef FERRY_UTIL_RNG_H
#define FERRY_UTIL_RNG_H
#include <stdint.h>

struct rng {
    uint64_t s[4];
    double spare;   /* cached second normal deviate */
    int has_spare;
};

void rng_seed(struct rng *r, uint64_t seed);
uint64_t rng_u64(struct rng *r);
double rng_uniform(struct rng *r);                 /* [0, 1), 53 random bits */
uint64_t rng_below(struct rng *r, uint64_t n);     /* [0, n), unbiased; n > 0 */
double rng_normal(struct rng *r, double mean, double sd);          /* Marsaglia polar */
double rng_exponential(struct rng *r, double rate);                /* mean 1/rate */
double rng_lognormal(struct rng *r, double mu, double sigma);      /* exp(N(mu, sigma)) */
/* An independent stream derived from r's seed and a stream id (for per-entity streams). */
void rng_split(const struct rng *r, uint64_t stream, struct rng *out);

#endif
