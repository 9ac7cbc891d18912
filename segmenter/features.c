/* segmenter/features.c: per-customer features that decay in event time, the
 * named feature values rules and `inspect` read, and the raw clustering
 * vector. Pure arithmetic on seg_customer_t; owns no memory. */
#include <math.h>
#include <string.h>
#include "segmenter/internal.h"

const char *const seg_feature_names[] = {
    "recency_days",     "tenure_days",   "events",         "orders",
    "revenue",          "visits",        "views",          "purchase_freq",
    "monetary",         "aov",           "discount_share", "cart_abandonment",
    "email_engagement", "night_share",   "morning_share",  "afternoon_share",
    "evening_share",    "weekend_share", "web_share",      "app_share",
    "email_share",      "store_share",   "category_share", NULL,
};

const char *const seg_vector_names[SEG_DIM] = {
    "log_visits",       "log_purchases",     "log_monetary",  "log_aov",       "discount_share",
    "cart_abandonment", "email_event_share", "evening_share", "weekend_share", "app_share",
};

int seg__feature_index(const char *name, size_t len)
{
    for (int i = 0; i < SEG_F__COUNT; i++)
        if (strlen(seg_feature_names[i]) == len && memcmp(seg_feature_names[i], name, len) == 0)
            return i;
    return -1;
}

double seg__decay(double half_life_days, int64_t dt_ms)
{
    if (dt_ms <= 0) return 1.0;
    return exp2(-(double)dt_ms / (half_life_days * (double)SEG_DAY_MS));
}

static double share(double part, double whole)
{
    return whole > 1e-12 ? part / whole : 0.0;
}

double seg__feature_at(const seg_params_t *p, const seg_customer_t *c, int f, int64_t W)
{
    const seg_features_t *x = &c->f;
    int64_t dt = W > c->decay_ts ? W - c->decay_ts : 0;
    /* a decay (an exp2) only for a feature that decays: rules read
     * features many times per event, most of them not decayed */
    double ha = p->half_life_activity_days, hp = p->half_life_purchase_days;
    switch ((seg_feat_t)f) {
    case SEG_F_RECENCY_DAYS:
        return (double)(W - c->last_activity) / (double)SEG_DAY_MS;
    case SEG_F_TENURE_DAYS:
        return (double)(W - c->first_seen) / (double)SEG_DAY_MS;
    case SEG_F_EVENTS:
        return (double)c->events;
    case SEG_F_ORDERS:
        return (double)c->orders;
    case SEG_F_REVENUE:
        return c->revenue;
    case SEG_F_VISITS:
        return x->visits * seg__decay(ha, dt);
    case SEG_F_VIEWS:
        return x->views * seg__decay(ha, dt);
    case SEG_F_PURCHASE_FREQ:
        return x->purchases * seg__decay(hp, dt);
    case SEG_F_MONETARY:
        return x->monetary * seg__decay(hp, dt);
    case SEG_F_AOV:
        return share(x->monetary, x->purchases);
    case SEG_F_DISCOUNT_SHARE:
        return share(x->discounted, x->purchases);
    case SEG_F_CART_ABANDONMENT:
        return x->carts > 1e-12 ? fmax(0.0, 1.0 - x->purchases / x->carts) : 0.0;
    case SEG_F_EMAIL_ENGAGEMENT:
        return x->email * seg__decay(ha, dt);
    case SEG_F_NIGHT_SHARE:
        return share(x->hour[SEG_HOUR_NIGHT], x->activity);
    case SEG_F_MORNING_SHARE:
        return share(x->hour[SEG_HOUR_MORNING], x->activity);
    case SEG_F_AFTERNOON_SHARE:
        return share(x->hour[SEG_HOUR_AFTERNOON], x->activity);
    case SEG_F_EVENING_SHARE:
        return share(x->hour[SEG_HOUR_EVENING], x->activity);
    case SEG_F_WEEKEND_SHARE:
        return share(x->weekend, x->activity);
    case SEG_F_WEB_SHARE:
        return share(x->channel[SEG_CH_WEB], x->activity);
    case SEG_F_APP_SHARE:
        return share(x->channel[SEG_CH_APP], x->activity);
    case SEG_F_EMAIL_SHARE:
        return share(x->channel[SEG_CH_EMAIL], x->activity);
    case SEG_F_STORE_SHARE:
        return share(x->channel[SEG_CH_STORE], x->activity);
    case SEG_F_CATEGORY_SHARE: {
        double tot = 0;
        for (int i = 0; i < SEG_TOPCAT; i++) tot += x->cat_w[i];
        return share(x->cat_w[0], tot);
    }
    case SEG_F__COUNT:
        break;
    }
    return NAN;
}

/* The undecayed total, kept as the double nearest to a whole number of
 * millionths: summed as plain doubles, purchases of 2 314.40 in all came
 * out as 2314.3999999999996 in Redis and `inspect`, and a rule on
 * `revenue >= 500` could miss 499.99 + 0.01. Exact up to 2^32 (a double's
 * step there is 2^-20, under half a millionth); beyond, the plain sum. */
static double money_add(double total, double amount)
{
    double s = total + amount;
    return fabs(s) < 4294967296.0 ? nearbyint(s * 1e6) / 1e6 : s;
}

/* Keeps cat_id/cat_w sorted by weight, heaviest first; a new category takes
 * the lightest slot only if it outweighs it (decayed weights let new tastes
 * replace stale ones). */
static void category_add(seg_features_t *x, uint32_t id, double w)
{
    int slot = -1;
    for (int i = 0; i < SEG_TOPCAT; i++)
        if (x->cat_id[i] == id) slot = i;
    if (slot < 0) {
        int last = SEG_TOPCAT - 1;
        if (x->cat_id[last] != 0 && x->cat_w[last] >= w) return;
        slot = last;
        x->cat_id[slot] = id;
        x->cat_w[slot] = 0;
    }
    x->cat_w[slot] += w;
    while (slot > 0 && (x->cat_id[slot - 1] == 0 || x->cat_w[slot - 1] < x->cat_w[slot])) {
        uint32_t ti = x->cat_id[slot - 1];
        double tw = x->cat_w[slot - 1];
        x->cat_id[slot - 1] = x->cat_id[slot];
        x->cat_w[slot - 1] = x->cat_w[slot];
        x->cat_id[slot] = ti;
        x->cat_w[slot] = tw;
        slot--;
    }
}

/* t (UTC ms) in the configured local time: the last span starting at or
 * before t (a binary search over at most SEG_TZ_MAX spans; UTC costs one
 * branch) */
static inline int64_t local_ms(const seg_params_t *p, int64_t t)
{
    if (p->tz_n == 0) return t;
    int lo = 0, hi = p->tz_n - 1;
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (p->tz[mid].from_ms <= t)
            lo = mid;
        else
            hi = mid - 1;
    }
    int64_t off = (int64_t)p->tz[lo].off_s * 1000;
    if ((off > 0 && t > INT64_MAX - off) || (off < 0 && t < INT64_MIN - off)) return t;
    return t + off;
}

void seg__features_apply(const seg_params_t *p, seg_customer_t *c, const seg_event_t *ev,
                         uint32_t cat_id)
{
    seg_features_t *x = &c->f;
    int64_t t = ev->ts;
    double wa = 1, wp = 1, wf = 1;
    int first = c->events == 0;
    if (first) {
        c->first_seen = c->last_seen = c->decay_ts = t;
        c->last_activity = t;
    } else if (t >= c->decay_ts) {
        /* bring every counter forward to t */
        int64_t dt = t - c->decay_ts;
        double da = seg__decay(p->half_life_activity_days, dt);
        double dp = seg__decay(p->half_life_purchase_days, dt);
        double df = seg__decay(p->half_life_affinity_days, dt);
        x->activity *= da, x->visits *= da, x->views *= da, x->email *= da, x->weekend *= da;
        for (int i = 0; i < SEG_HOUR__COUNT; i++) x->hour[i] *= da;
        for (int i = 0; i < SEG_CH__COUNT; i++) x->channel[i] *= da;
        x->carts *= dp, x->purchases *= dp, x->monetary *= dp, x->discounted *= dp;
        for (int i = 0; i < SEG_TOPCAT; i++) x->cat_w[i] *= df;
        c->decay_ts = t;
    } else {
        /* a late event adds what it would weigh today */
        int64_t dt = c->decay_ts - t;
        wa = seg__decay(p->half_life_activity_days, dt);
        wp = seg__decay(p->half_life_purchase_days, dt);
        wf = seg__decay(p->half_life_affinity_days, dt);
    }

    int64_t lt = local_ms(p, t);
    int64_t day = lt / SEG_DAY_MS, tod = lt - day * SEG_DAY_MS; /* floored: one division */
    if (tod < 0) tod += SEG_DAY_MS, day--;
    int dow = (int)(((day % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday; 0 = Sunday */
    x->activity += wa;
    x->hour[tod / (6 * 3600 * 1000LL)] += wa;
    if (dow == 0 || dow == 6) x->weekend += wa;
    x->channel[ev->channel < SEG_CH__COUNT ? ev->channel : 0] += wa;

    int new_visit = first || ev->type == SEG_EV_SESSION_START ||
                    (t >= c->last_seen && t - c->last_seen >= p->session_gap_ms);
    if (new_visit) x->visits += wa;

    switch ((seg_evtype_t)ev->type) {
    case SEG_EV_PAGE_VIEW:
    case SEG_EV_PRODUCT_VIEW:
    case SEG_EV_SEARCH:
        x->views += wa;
        break;
    case SEG_EV_EMAIL_OPEN:
    case SEG_EV_EMAIL_CLICK:
        x->email += wa;
        break;
    case SEG_EV_ADD_TO_CART:
        x->carts += wp;
        break;
    case SEG_EV_PURCHASE:
        x->purchases += wp;
        x->monetary += wp * ev->amount;
        if (ev->discount) x->discounted += wp;
        c->orders++;
        c->revenue = money_add(c->revenue, ev->amount);
        break;
    default:
        break;
    }
    if (cat_id) category_add(x, cat_id, wf);

    if (t > c->last_seen) c->last_seen = t;
    if (t < c->first_seen) c->first_seen = t;
    if ((p->activity_mask >> ev->type) & 1u)
        if (t > c->last_activity) c->last_activity = t;
    c->events++;
}

/* ln(1 + (j + ½)/128) as hi + lo, j = 0..127: the centres of the 128
 * intervals seg__log1p splits [1, 2) into. Written out (computed to 50
 * digits with Python's decimal module, then rounded) rather than taken
 * from libm at start, so every platform has the same bits. */
static const double log_mid[128][2] = {
    {0x1.ff00aa2b10bc0p-9, 0x1.2821ad5a6d353p-63},  {0x1.7dc475f810a77p-7, -0x1.16d7687d3df21p-62},
    {0x1.3cea44346a575p-6, -0x1.0cb5a902b3a1cp-62}, {0x1.b9fc027af9198p-6, -0x1.0ae69229dc868p-64},
    {0x1.1b0d98923d980p-5, -0x1.e9ae889bac481p-60}, {0x1.58a5bafc8e4d5p-5, -0x1.ce55c2b4e2b72p-59},
    {0x1.95c830ec8e3ebp-5, 0x1.f5a0e80520bf2p-59},  {0x1.d276b8adb0b52p-5, 0x1.1e3c53257fd47p-61},
    {0x1.075983598e471p-4, 0x1.80da5333c45b8p-59},  {0x1.253f62f0a1417p-4, -0x1.c125963fc4cfdp-62},
    {0x1.42edcbea646f0p-4, 0x1.ddd4f935996c9p-59},  {0x1.60658a93750c4p-4, -0x1.388458ec21b6ap-58},
    {0x1.7da766d7b12cdp-4, -0x1.eeedfcdd94131p-58}, {0x1.9ab42462033adp-4, -0x1.2099e1c184e8ep-59},
    {0x1.b78c82bb0eda1p-4, 0x1.0878cf0327e21p-61},  {0x1.d4313d66cb35dp-4, 0x1.790dd951d90fap-58},
    {0x1.f0a30c01162a6p-4, 0x1.85f325c5bbacdp-58},  {0x1.0671512ca596ep-3, 0x1.50c647eb86499p-58},
    {0x1.14785846742acp-3, 0x1.a28813e3a7f07p-57},  {0x1.2266f190a5acbp-3, 0x1.f547bf1809e88p-57},
    {0x1.303d718e47fd3p-3, -0x1.6b9c7d96091fap-63}, {0x1.3dfc2b0ecc62ap-3, -0x1.ab3a8e7d81017p-58},
    {0x1.4ba36f39a55e5p-3, 0x1.68981bcc36756p-57},  {0x1.59338d9982086p-3, -0x1.65d22aa8ad7cfp-58},
    {0x1.66acd4272ad51p-3, -0x1.0900e4e1ea8b2p-58}, {0x1.740f8f54037a5p-3, -0x1.b264062a84cdbp-58},
    {0x1.815c0a14357ebp-3, -0x1.4be48073a0564p-58}, {0x1.8e928de886d41p-3, -0x1.569d851a56770p-57},
    {0x1.9bb362e7dfb83p-3, 0x1.575e31f003e0cp-57},  {0x1.a8becfc882f19p-3, -0x1.e8c37918c39ebp-58},
    {0x1.b5b519e8fb5a4p-3, 0x1.ba27fdc19e1a0p-57},  {0x1.c2968558c18c1p-3, -0x1.73dee38a3fb6bp-57},
    {0x1.cf6354e09c5dcp-3, 0x1.239a07d55b695p-57},  {0x1.dc1bca0abec7dp-3, 0x1.834c51998b6fcp-57},
    {0x1.e8c0252aa5a60p-3, -0x1.6e03a39bfc89bp-59}, {0x1.f550a564b7b37p-3, 0x1.c5f6dfd018c37p-61},
    {0x1.00e6c45ad501dp-2, -0x1.cb9568ff6feadp-57}, {0x1.071b85fcd590dp-2, 0x1.d1707f97bde80p-58},
    {0x1.0d46b579ab74bp-2, 0x1.03ec81c3cbd92p-57},  {0x1.136870293a8b0p-2, 0x1.7b66298edd24ap-56},
    {0x1.1980d2dd4236fp-2, 0x1.9d3d1b0e4d147p-56},  {0x1.1f8ff9e48a2f3p-2, -0x1.c9fdf9a0c4b07p-56},
    {0x1.2596010df763ap-2, -0x1.0f76c57075e9ep-58}, {0x1.2b9303ab89d25p-2, -0x1.896b5fd852ad4p-56},
    {0x1.31871c9544185p-2, -0x1.51acc4c09b379p-60}, {0x1.3772662bfd85bp-2, -0x1.b5629d8117de7p-59},
    {0x1.3d54fa5c1f710p-2, -0x1.e3265c6a1c98dp-56}, {0x1.432ef2a04e814p-2, -0x1.29931715ac903p-56},
    {0x1.49006804009d1p-2, -0x1.9ffc341f177dcp-57}, {0x1.4ec973260026ap-2, -0x1.42a87d977dc5ep-56},
    {0x1.548a2c3add263p-2, -0x1.819cf7e308ddbp-57}, {0x1.5a42ab0f4cfe2p-2, -0x1.8ebcb7dee9a3dp-56},
    {0x1.5ff3070a793d4p-2, -0x1.bc60efafc6f6ep-57}, {0x1.659b57303e1f3p-2, -0x1.f893d41c411f1p-56},
    {0x1.6b3bb2235943ep-2, -0x1.da856ccd987b3p-56}, {0x1.70d42e2789236p-2, -0x1.52cc811d78d59p-57},
    {0x1.7664e1239dbcfp-2, -0x1.f6d5d64f5daf8p-57}, {0x1.7bede0a37afc0p-2, -0x1.8783cb9801a5cp-56},
    {0x1.816f41da0d496p-2, -0x1.2923ca04b701cp-56}, {0x1.86e919a330ba0p-2, 0x1.3f9b16feb7dd8p-59},
    {0x1.8c5b7c858b48bp-2, -0x1.e0ab4fdfa0595p-56}, {0x1.91c67eb45a83ep-2, -0x1.e0e0ae234ae11p-56},
    {0x1.972a341135158p-2, 0x1.a5c09d24b70d9p-56},  {0x1.9c86b02dc0863p-2, -0x1.917eeb69dd421p-56},
    {0x1.a1dc064d5b995p-2, 0x1.90128698ba0b8p-56},  {0x1.a72a4966bd9eap-2, 0x1.6a76b1a7d87c3p-58},
    {0x1.ac718c258b0e4p-2, 0x1.8163d6f46f714p-59},  {0x1.b1b1e0ebdfc5bp-2, 0x1.a4479608a2c55p-56},
    {0x1.b6eb59d3cf35ep-2, -0x1.8adbccd326a3cp-56}, {0x1.bc1e08b0dad0ap-2, 0x1.09e8707055996p-56},
    {0x1.c149ff115f027p-2, -0x1.4cbcb90c06305p-56}, {0x1.c66f4e3ff6ff8p-2, -0x1.82947258b688bp-58},
    {0x1.cb8e0744d7acap-2, -0x1.48879a214a2afp-61}, {0x1.d0a63ae721e64p-2, 0x1.2acce112c40f2p-57},
    {0x1.d5b7f9ae2c684p-2, -0x1.a7be7f84ac06ap-57}, {0x1.dac353e2c5954p-2, 0x1.18734b81a1bf8p-57},
    {0x1.dfc859906d5b5p-2, 0x1.01e1399f96398p-56},  {0x1.e4c71a8687704p-2, 0x1.667923e1f5a8ep-57},
    {0x1.e9bfa659861f5p-2, 0x1.91bafc7dbe130p-56},  {0x1.eeb20c640ddf4p-2, 0x1.ac371d7c8f7f5p-57},
    {0x1.f39e5bc811e5cp-2, -0x1.97fc777bb19e5p-57}, {0x1.f884a36fe9ec2p-2, 0x1.6315c9e010800p-57},
    {0x1.fd64f20f61572p-2, -0x1.adb0ac2cead1bp-57}, {0x1.011fab125ff8ap-1, 0x1.810dd40845ddep-57},
    {0x1.0389eefce633bp-1, 0x1.e155c53483748p-56},  {0x1.05f14bd26459cp-1, 0x1.535b8ee4f9efep-58},
    {0x1.0855c884b450ep-1, 0x1.705826e49f318p-55},  {0x1.0ab76bece14d2p-1, -0x1.fd6c935453f66p-56},
    {0x1.0d163ccb9d6b8p-1, -0x1.f7b9a9a8bc30fp-57}, {0x1.0f7241c9b497dp-1, 0x1.3a8443b9db19dp-55},
    {0x1.11cb81787ccf8p-1, 0x1.02387ab1fcc90p-55},  {0x1.1422025243d45p-1, -0x1.ad0e24adb489ep-58},
    {0x1.1675cababa60ep-1, 0x1.ce63eab883717p-60},  {0x1.18c6e0ff5cf06p-1, 0x1.765142c2c671fp-58},
    {0x1.1b154b57da29fp-1, -0x1.011eb47db6a99p-57}, {0x1.1d610fe677003p-1, 0x1.09d58d91e58f2p-58},
    {0x1.1faa34b87094cp-1, 0x1.817b8f7a193b0p-58},  {0x1.21f0bfc65beecp-1, -0x1.e24f0c9187c92p-57},
    {0x1.2434b6f483934p-1, -0x1.debb8cf0f6d11p-57}, {0x1.26762013430e0p-1, -0x1.96a95781c6727p-56},
    {0x1.28b500df60783p-1, -0x1.43f60605aaab3p-55}, {0x1.2af15f02640adp-1, 0x1.cb064524aceb0p-57},
    {0x1.2d2b4012edc9ep-1, -0x1.51162c99b1cabp-55}, {0x1.2f62a99509546p-1, 0x1.6c686739ffd99p-56},
    {0x1.3197a0fa7fe6ap-1, 0x1.d6348fb97128fp-57},  {0x1.33ca2ba328995p-1, -0x1.bf28b3205ede1p-56},
    {0x1.35fa4edd36ea0p-1, 0x1.27d4680964362p-60},  {0x1.38280fe58797fp-1, -0x1.015bd362a6e5dp-55},
    {0x1.3a5373e7ebdfap-1, -0x1.cd8f775b8f76ep-55}, {0x1.3c7c7fff73206p-1, -0x1.be80db7025bedp-56},
    {0x1.3ea33936b2f5cp-1, -0x1.f099168a1360bp-55}, {0x1.40c7a4880dce9p-1, 0x1.14f22de7fc9e1p-56},
    {0x1.42e9c6ddf80bfp-1, 0x1.657dc7a65061dp-56},  {0x1.4509a5133bb0ap-1, 0x1.40fe2852d7b5ap-55},
    {0x1.472743f33aaadp-1, 0x1.8d6cf012a2948p-56},  {0x1.4942a83a2fc07p-1, 0x1.ed0c544652b5ap-55},
    {0x1.4b5bd6956e274p-1, -0x1.c87a06beea773p-55}, {0x1.4d72d3a39fd00p-1, 0x1.1cd4d414e008dp-55},
    {0x1.4f87a3f5026e9p-1, -0x1.e8ca8b1bcea9dp-55}, {0x1.519a4c0ba3446p-1, 0x1.9b32128e4a77fp-55},
    {0x1.53aad05b99b7dp-1, -0x1.55c8b052e2539p-55}, {0x1.55b9354b40bcdp-1, 0x1.e4197a357cb37p-56},
    {0x1.57c57f336f191p-1, -0x1.e953a3bc88192p-55}, {0x1.59cfb25fae87ep-1, -0x1.172904559c6b6p-58},
    {0x1.5bd7d30e71c73p-1, 0x1.bf8da6db2b45cp-57},  {0x1.5ddde57149923p-1, 0x1.dcfa37d75ef28p-55},
    {0x1.5fe1edad18919p-1, -0x1.ca8b610e18dbfp-55}, {0x1.61e3efda46467p-1, -0x1.a1b727edefae3p-55},
};

/* log1p(v) within a few ulp, for the vector: four of libm's calls were 8 %
 * of the hot path, and a long polynomial was hardly better (its latency,
 * not its instructions, was the cost). With u = 1 + v = 2^e·m, m in [1, 2),
 * and c the centre of m's 1/128 interval:
 *   log u = e·ln 2 + ln c + 2·atanh(s),  s = (m - c)/(m + c), |s| < 2^-9,
 * so three terms of atanh's series are exact to double; (v - (u - 1))/u
 * restores the bits of v lost in 1 + v (Goldberg). Below 2^-7, where ln c
 * and atanh(s) would cancel, log1p v = 2·atanh(v/(2 + v)) directly. Zero
 * (a customer who never bought), negatives, huge values and NaN take libm. */
double seg__log1p(double v)
{
    if (!(v > 0 && v < 1e300)) return v == 0 ? v : log1p(v);
    if (v < 0x1p-7) {
        double s = v / (2.0 + v), z = s * s;
        return 2.0 * s + 2.0 * s * (z * (1.0 / 3 + z * (1.0 / 5 + z * (1.0 / 7))));
    }
    double u = 1.0 + v;
    double corr = (v - (u - 1.0)) / u;
    uint64_t bits;
    memcpy(&bits, &u, 8);
    int e = (int)(bits >> 52) - 1023;
    int j = (int)((bits >> 45) & 127);
    bits = (bits & 0x000FFFFFFFFFFFFFULL) | 0x3FF0000000000000ULL;
    double m;
    memcpy(&m, &bits, 8);
    double c = 1.0 + (j + 0.5) / 128;        /* exact */
    double s = (m - c) / (m + c), z = s * s; /* m - c exact (Sterbenz) */
    double at = 2.0 * s + 2.0 * s * (z * (1.0 / 3 + z * (1.0 / 5)));
    static const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    double de = (double)e; /* ln2_hi has 32 low zero bits: de·ln2_hi is exact */
    return (de * ln2_hi + log_mid[j][0]) + (at + (corr + (de * ln2_lo + log_mid[j][1])));
}

void seg_vector(const seg_params_t *p, const seg_customer_t *c, double out[SEG_DIM])
{
    const seg_features_t *x = &c->f;
    (void)p;
    double aov = share(x->monetary, x->purchases);
    out[0] = seg__log1p(x->visits);
    out[1] = seg__log1p(x->purchases);
    out[2] = seg__log1p(x->monetary);
    out[3] = seg__log1p(aov);
    out[4] = share(x->discounted, x->purchases);
    out[5] = x->carts > 1e-12 ? fmax(0.0, 1.0 - x->purchases / x->carts) : 0.0;
    out[6] = share(x->email, x->activity);
    out[7] = share(x->hour[SEG_HOUR_EVENING], x->activity);
    out[8] = share(x->weekend, x->activity);
    out[9] = share(x->channel[SEG_CH_APP], x->activity);
}
