/* segmenter/params.c: the core's configuration: defaults (CONTRACT §2) and
 * range checks. Owns seg_params_t's lifetime, not its parsing (config/). */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "segmenter/internal.h"

void seg_params_default(seg_params_t *p)
{
    memset(p, 0, sizeof(*p));
    p->half_life_activity_days = 30;
    p->half_life_purchase_days = 90;
    p->half_life_affinity_days = 60;
    p->new_ms = 30 * SEG_DAY_MS;
    p->at_risk_ms = 30 * SEG_DAY_MS;
    p->lapsed_ms = 60 * SEG_DAY_MS;
    p->reactivated_ms = 30 * SEG_DAY_MS;
    p->activity_mask = (1u << SEG_EV__COUNT) - 1;
    p->session_gap_ms = 30 * 60 * 1000;
    p->k = 6;
    p->warmup = 4096;
    p->min_events = 8;
    p->hysteresis = 0.15;
    p->lr_floor = 0.0005;
    p->dying_share = 0.02;
    p->dying_window = 20000;
    p->seed = 1;
    /* an hour: retries and at-least-once hops, at ≈ 1 % on the hot path (a
     * day: ≈ 5 %, as customers' tables fill; benchmarks/README.md) */
    p->dedup_window_ms = 3600 * 1000;
    p->dedup_max = 1024;
    p->rules = NULL;
}

void seg_params_clear(seg_params_t *p)
{
    seg__rules_free(p->rules);
    p->rules = NULL;
}

#define FAIL(...)                                                                                  \
    do {                                                                                           \
        snprintf(err, errlen, __VA_ARGS__);                                                        \
        return -1;                                                                                 \
    } while (0)

int seg_params_validate(const seg_params_t *p, char *err, size_t errlen)
{
    const struct {
        const char *key;
        double v;
    } hl[] = {{"features.half_life.activity", p->half_life_activity_days},
              {"features.half_life.purchase", p->half_life_purchase_days},
              {"features.half_life.affinity", p->half_life_affinity_days}};
    for (size_t i = 0; i < sizeof(hl) / sizeof(hl[0]); i++)
        if (!(hl[i].v > 0) || !isfinite(hl[i].v))
            FAIL("%s: must be a positive duration", hl[i].key);
    if (p->new_ms <= 0) FAIL("lifecycle.new: must be a positive duration");
    if (p->at_risk_ms <= 0) FAIL("lifecycle.at_risk: must be a positive duration");
    if (p->lapsed_ms <= p->at_risk_ms)
        FAIL("lifecycle.lapsed: must be longer than lifecycle.at_risk");
    if (p->reactivated_ms <= 0) FAIL("lifecycle.reactivated: must be a positive duration");
    if (p->activity_mask == 0) FAIL("lifecycle.activity_types: must name at least one type");
    if (p->session_gap_ms <= 0) FAIL("features.session_gap: must be a positive duration");
    if (p->tz_n < 0 || p->tz_n > SEG_TZ_MAX || (p->tz_n > 0 && p->tz[0].from_ms != INT64_MIN))
        FAIL("features.timezone: not a table of UTC offsets");
    for (int i = 0; i < p->tz_n; i++)
        if (p->tz[i].off_s < -18 * 3600 || p->tz[i].off_s > 18 * 3600 ||
            (i > 0 && p->tz[i].from_ms <= p->tz[i - 1].from_ms))
            FAIL("features.timezone: not a table of UTC offsets");
    if (p->k < 1 || p->k > SEG_K_MAX)
        FAIL("clusters.k: must be an integer between 1 and %d", SEG_K_MAX);
    if (p->warmup < p->k || p->warmup > 1000000)
        FAIL("clusters.warmup: must be between clusters.k and 1000000");
    if (p->min_events < 1 || p->min_events > 1000000)
        FAIL("clusters.min_events: must be between 1 and 1000000");
    if (!(p->hysteresis >= 0 && p->hysteresis < 1)) FAIL("clusters.hysteresis: must be in [0, 1)");
    if (!(p->lr_floor >= 0 && p->lr_floor <= 1))
        FAIL("clusters.learning_rate_floor: must be in [0, 1]");
    if (!(p->dying_share >= 0 && p->dying_share < 1.0 / p->k))
        FAIL("clusters.dying_share: must be in [0, 1/k)");
    if (p->dying_window < 100) FAIL("clusters.dying_window: must be at least 100");
    if (p->dedup_window_ms < 0) FAIL("input.dedup_window: must not be negative");
    if (p->dedup_max < 0 || p->dedup_max > 1000000)
        FAIL("input.dedup_max: must be between 0 and 1000000");
    return 0;
}
