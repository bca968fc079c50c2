#include "util/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void rng_seed(struct rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
    r->has_spare = 0;
    r->spare = 0.0;
}

uint64_t rng_u64(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t out = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

double rng_uniform(struct rng *r) { return (double)(rng_u64(r) >> 11) * 0x1.0p-53; }

uint64_t rng_below(struct rng *r, uint64_t n)
{
    /* Lemire's nearly-divisionless method would need 128-bit math; rejection is enough. */
    uint64_t lim = UINT64_MAX - UINT64_MAX % n;
    uint64_t x;
    do x = rng_u64(r);
    while (x >= lim);
    return x % n;
}

double rng_normal(struct rng *r, double mean, double sd)
{
    if (r->has_spare) {
        r->has_spare = 0;
        return mean + sd * r->spare;
    }
    double u, v, s;
    do {
        u = 2.0 * rng_uniform(r) - 1.0;
        v = 2.0 * rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    double m = sqrt(-2.0 * log(s) / s);
    r->spare = v * m;
    r->has_spare = 1;
    return mean + sd * u * m;
}

double rng_exponential(struct rng *r, double rate)
{
    return -log1p(-rng_uniform(r)) / rate;
}

double rng_lognormal(struct rng *r, double mu, double sigma)
{
    return exp(rng_normal(r, mu, sigma));
}

void rng_split(const struct rng *r, uint64_t stream, struct rng *out)
{
    uint64_t x = r->s[0] ^ (stream * 0xd1b54a32d192ed03ull);
    rng_seed(out, splitmix64(&x) ^ r->s[2]);
}
