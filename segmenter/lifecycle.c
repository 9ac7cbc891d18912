/* segmenter/lifecycle.c: the lifecycle state machine (CONTRACT §2). Pure:
 * decides the stage from event times and the watermark W, and when a silent
 * customer's next change is due. Bounds are inclusive: a boundary equal to W
 * has not passed yet. Never reads a clock. */
#include "segmenter/internal.h"

const char *const seg_lifecycle_names[SEG_LC__COUNT] = {NULL,      "new",    "active",
                                                        "at_risk", "lapsed", "reactivated"};

seg_lifecycle_t seg_lifecycle_at(const seg_params_t *p, const seg_customer_t *c, int64_t W)
{
    if (!c->assigned) return SEG_LC_NONE;
    if (c->first_seen >= W - p->new_ms) return SEG_LC_NEW;
    if (c->reactivated_at != SEG_NO_TIME && c->reactivated_at >= W - p->reactivated_ms)
        return SEG_LC_REACTIVATED;
    if (c->last_activity >= W - p->at_risk_ms) return SEG_LC_ACTIVE;
    if (c->last_activity >= W - p->lapsed_ms) return SEG_LC_AT_RISK;
    return SEG_LC_LAPSED;
}

/* The next due time is the first boundary b >= W with stage(b + 1ms) !=
 * stage(W). Each stage holds while T <= its own boundary (new: first_seen +
 * new, reactivated: reactivated_at + reactivated, active: last_activity +
 * at_risk, at_risk: last_activity + lapsed), and the stages before it in
 * that order, false at W, stay false as T grows: the stage changes exactly
 * after its own boundary, and a lapsed customer never changes silently. */
int64_t seg_lifecycle_next(const seg_params_t *p, const seg_customer_t *c, int64_t W)
{
    switch (seg_lifecycle_at(p, c, W)) {
    case SEG_LC_NEW:
        return c->first_seen + p->new_ms;
    case SEG_LC_REACTIVATED:
        return c->reactivated_at + p->reactivated_ms;
    case SEG_LC_ACTIVE:
        return c->last_activity + p->at_risk_ms;
    case SEG_LC_AT_RISK:
        return c->last_activity + p->lapsed_ms;
    default: /* not assigned yet, or lapsed */
        return SEG_NEVER;
    }
}
