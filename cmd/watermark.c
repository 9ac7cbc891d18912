/* cmd/watermark.c: what the watermark may be after an assignment (see
 * watermark.h). Owns nothing. */
#include <string.h>
#include "cmd/watermark.h"

int64_t wm_part_allows(const part_t *p, int64_t lateness)
{
    int64_t v = p->pp.hi == INT64_MIN ? INT64_MIN : p->pp.hi - lateness;
    return p->w_floor > v ? p->w_floor : v;
}

int64_t wm_assigned(part_t *parts, int n_parts, const strm_tp_t *tps, int n, int64_t W,
                    int64_t lateness)
{
    int64_t lo = W;
    for (int i = 0; i < n_parts; i++) {
        part_t *p = &parts[i];
        if (!p->owned) continue;
        int added = 0;
        for (int j = 0; j < n && !added; j++)
            added = tps[j].partition == p->partition && strcmp(tps[j].topic, p->topic) == 0;
        /* kept: its customers are stepped to W, as a revoke records it */
        if (!added && W > p->w_floor) p->w_floor = W;
        int64_t v = wm_part_allows(p, lateness);
        p->no_evidence = v == INT64_MIN; /* and so it has no customer stepped yet */
        if (v != INT64_MIN && v < lo) lo = v;
    }
    return lo;
}
