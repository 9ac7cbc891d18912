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

/* The stage is constant between the boundaries below and can change only
 * just after one of them; the next due time is the first boundary b >= W
 * with stage(b + 1ms) != stage(W). */
int64_t seg_lifecycle_next(const seg_params_t *p, const seg_customer_t *c, int64_t W)
{
    if (!c->assigned) return SEG_NEVER;
    int64_t b[4];
    int n = 0;
    b[n++] = c->first_seen + p->new_ms;
    b[n++] = c->last_activity + p->at_risk_ms;
    b[n++] = c->last_activity + p->lapsed_ms;
    if (c->reactivated_at != SEG_NO_TIME) b[n++] = c->reactivated_at + p->reactivated_ms;
    for (int i = 1; i < n; i++) /* insertion sort of at most 4 */
        for (int j = i; j > 0 && b[j - 1] > b[j]; j--) {
            int64_t t = b[j];
            b[j] = b[j - 1];
            b[j - 1] = t;
        }
    seg_lifecycle_t now = seg_lifecycle_at(p, c, W);
    for (int i = 0; i < n; i++)
        if (b[i] >= W && seg_lifecycle_at(p, c, b[i] + 1) != now) return b[i];
    return SEG_NEVER;
}
