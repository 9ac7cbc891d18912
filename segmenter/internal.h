/* segmenter/internal.h: declarations shared between the core's own files
 * (features, lifecycle, rules, centroids, engine). Not part of the API. */
#ifndef SEG_INTERNAL_H
#define SEG_INTERNAL_H

#include <string.h>
#include "segmenter/segmenter.h"

/* Numeric features a rule or `inspect` can name. */
typedef enum {
    SEG_F_RECENCY_DAYS = 0,
    SEG_F_TENURE_DAYS,
    SEG_F_EVENTS,
    SEG_F_ORDERS,
    SEG_F_REVENUE,
    SEG_F_VISITS,
    SEG_F_VIEWS,
    SEG_F_PURCHASE_FREQ,
    SEG_F_MONETARY,
    SEG_F_AOV,
    SEG_F_DISCOUNT_SHARE,
    SEG_F_CART_ABANDONMENT,
    SEG_F_EMAIL_ENGAGEMENT,
    SEG_F_NIGHT_SHARE,
    SEG_F_MORNING_SHARE,
    SEG_F_AFTERNOON_SHARE,
    SEG_F_EVENING_SHARE,
    SEG_F_WEEKEND_SHARE,
    SEG_F_WEB_SHARE,
    SEG_F_APP_SHARE,
    SEG_F_EMAIL_SHARE,
    SEG_F_STORE_SHARE,
    SEG_F_CATEGORY_SHARE,
    SEG_F__COUNT
} seg_feat_t;

/* Index of a numeric feature name, or -1. */
int seg__feature_index(const char *name, size_t len);
/* Value of feature f for c at watermark W (decayed counters taken to W). */
double seg__feature_at(const seg_params_t *p, const seg_customer_t *c, int f, int64_t W);

/* Folds one event into c's counters and times (features.c). cat_id is the
 * interned category (0: none). */
void seg__features_apply(const seg_params_t *p, seg_customer_t *c, const seg_event_t *ev,
                         uint32_t cat_id);
/* log1p(v) to a few ulp, faster than libm's (features.c). */
double seg__log1p(double v);
/* 1 when s goes into a JSON string as it is: bytes 0x20-0x7F other than '"'
 * and '\\', and two-byte UTF-8 characters (the labels' middle dot), which is
 * what stream's JSON writer copies unchanged. Anything else 0 (escaped). */
int seg__json_plain(const char *s);
/* A duration in the largest unit that divides it: "30 days", "5 seconds". */
void seg__span(int64_t ms, char *buf, size_t len);
/* 2^(-dt/half_life) for dt in ms and a half-life in days. */
double seg__decay(double half_life_days, int64_t dt_ms);

/* Rules (rules.c). */
void seg__rules_free(seg_ruleset_t *rs);
/* Bit i set when rule i holds for c at W. */
uint64_t seg__rules_eval(const seg_t *s, const seg_ruleset_t *rs, const seg_customer_t *c,
                         int64_t W);
/* First millisecond T > from at which the rule bits of c (with no further
 * event) differ from their value at `from`, or SEG_NEVER: closed form.
 * base: those bits, seg__rules_eval(s, rs, c, from) (the caller has them:
 * c->rules right after evaluating the rules at `from`). */
int64_t seg__rules_next(const seg_t *s, const seg_ruleset_t *rs, const seg_customer_t *c,
                        int64_t from, uint64_t base);

/* splitmix64: the core's only randomness, seeded from params. */
static inline uint64_t seg__rand(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}
static inline double seg__rand01(uint64_t *state)
{
    return (double)(seg__rand(state) >> 11) * (1.0 / 9007199254740992.0);
}

uint64_t seg__hash(const void *data, size_t len); /* FNV-1a 64 */

/* A hash for lookups on the hot path (event ids, categories): eight bytes
 * per multiply where FNV takes one. Never stored or compared across runs. */
static inline uint64_t seg__hash_fast(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 0x9E3779B97F4A7C15ULL ^ len, w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, p + i, 8);
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
        h ^= h >> 32;
    }
    if (i < len) { /* the last 1..7 bytes, in overlapping loads */
        uint32_t lo, hi;
        if (len >= 8) {
            memcpy(&w, p + len - 8, 8);
        } else if (len >= 4) {
            memcpy(&lo, p, 4);
            memcpy(&hi, p + len - 4, 4);
            w = (uint64_t)hi << 32 | lo;
        } else {
            w = 0;
            for (size_t k = 0; k < len; k++) w = w << 8 | p[k];
        }
        h = (h ^ w) * 0xFF51AFD7ED558CCDULL;
    }
    h ^= h >> 33;
    h *= 0xC4CEB9FE1A85EC53ULL;
    return h ^ (h >> 33);
}

/* memcmp(a, b, n) == 0 for the short names of the hot path (ids,
 * categories), in words, without a call; never reads past n bytes. */
static inline int seg__same(const void *a, const void *b, size_t n)
{
    const unsigned char *p = a, *q = b;
    if (n >= 8) {
        uint64_t x, y;
        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&x, p + i, 8), memcpy(&y, q + i, 8);
            if (x != y) return 0;
        }
        memcpy(&x, p + n - 8, 8), memcpy(&y, q + n - 8, 8);
        return x == y;
    }
    if (n >= 4) {
        uint32_t a0, b0, a1, b1;
        memcpy(&a0, p, 4), memcpy(&b0, q, 4);
        memcpy(&a1, p + n - 4, 4), memcpy(&b1, q + n - 4, 4);
        return a0 == b0 && a1 == b1;
    }
    for (size_t i = 0; i < n; i++)
        if (p[i] != q[i]) return 0;
    return 1;
}

/* seg_model_nearest that also gives the squared distance to slot cur
 * (in *dcur, when cur >= 0): one pass for assignment and hysteresis. */
int seg__model_nearest_from(const seg_model_t *m, const double x[SEG_DIM], int cur, double *d2,
                            double *dcur);

/* Category dictionary inside the engine. */
uint32_t seg__category_intern(seg_t *s, const char *name, size_t len);

#endif
