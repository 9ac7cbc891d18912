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
    "log_visits",       "log_purchases", "log_monetary",  "log_aov",       "discount_share",
    "cart_abandonment", "email_share",   "evening_share", "weekend_share", "app_share",
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

    int64_t day = t / SEG_DAY_MS, tod = t - day * SEG_DAY_MS; /* floored: one division */
    if (tod < 0) tod += SEG_DAY_MS, day--;
    int dow = (int)(((day % 7) + 7 + 4) % 7); /* 1970-01-01 was a Thursday; 0 = Sunday */
    x->activity += wa;
    x->hour[tod / (6 * 3600 * 1000LL)] += wa;
    if (dow == 0 || dow == 6) x->weekend += wa;
    x->channel[ev->channel < SEG_CH__COUNT ? ev->channel : 0] += wa;

    int new_visit = first || ev->type == SEG_EV_SESSION_START ||
                    (t >= c->last_seen && t - c->last_seen > p->session_gap_ms);
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
        c->revenue += ev->amount;
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

/* log1p(v) within a few ulp: four of libm's calls were 8 % of the hot
 * path (this one takes about half their time). log(u) for
 * u = 1 + v as e·ln 2 + 2·atanh(s), s = (m - 1)/(m + 1), m in [√½, √2) so
 * |s| < 0.1716 and the series to s^19 is exact to double; (v - (u - 1))/u
 * restores the bits of v lost in 1 + v (Goldberg). Zero (a customer who
 * never bought), negatives, huge values and NaN take the exact path. */
double seg__log1p(double v)
{
    if (!(v > 0 && v < 1e300)) return v == 0 ? v : log1p(v);
    double u = 1.0 + v;
    if (u == 1.0) return v;
    double corr = (v - (u - 1.0)) / u;
    uint64_t bits;
    memcpy(&bits, &u, 8);
    /* exponent relative to √½: m = u / 2^e lands in [√½, √2) */
    int64_t e = (int64_t)((bits + 0x00095F619980C433ULL) >> 52) - 1023;
    bits -= (uint64_t)e << 52;
    double m;
    memcpy(&m, &bits, 8);
    double s = (m - 1.0) / (m + 1.0), z = s * s;
    double p = 1.0 / 19;
    p = p * z + 1.0 / 17;
    p = p * z + 1.0 / 15;
    p = p * z + 1.0 / 13;
    p = p * z + 1.0 / 11;
    p = p * z + 1.0 / 9;
    p = p * z + 1.0 / 7;
    p = p * z + 1.0 / 5;
    p = p * z + 1.0 / 3;
    static const double ln2_hi = 6.93147180369123816490e-01, ln2_lo = 1.90821492927058770002e-10;
    double de = (double)e;
    return de * ln2_hi + ((2.0 * s + 2.0 * s * z * p) + (corr + de * ln2_lo));
}

static inline double log1p0(double v)
{
    return seg__log1p(v);
}

void seg_vector(const seg_params_t *p, const seg_customer_t *c, double out[SEG_DIM])
{
    const seg_features_t *x = &c->f;
    (void)p;
    double aov = share(x->monetary, x->purchases);
    out[0] = log1p0(x->visits);
    out[1] = log1p0(x->purchases);
    out[2] = log1p0(x->monetary);
    out[3] = log1p0(aov);
    out[4] = share(x->discounted, x->purchases);
    out[5] = x->carts > 1e-12 ? fmax(0.0, 1.0 - x->purchases / x->carts) : 0.0;
    out[6] = share(x->email, x->activity);
    out[7] = share(x->hour[SEG_HOUR_EVENING], x->activity);
    out[8] = share(x->weekend, x->activity);
    out[9] = share(x->channel[SEG_CH_APP], x->activity);
}
