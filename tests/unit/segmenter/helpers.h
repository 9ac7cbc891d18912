/* tests/unit/segmenter/helpers.h: small builders shared by the core's tests:
 * events, and a recorder of emitted changes. */
#ifndef TEST_SEG_HELPERS_H
#define TEST_SEG_HELPERS_H

#include <stdio.h>
#include <string.h>
#include "segmenter/segmenter.h"

#define DAY SEG_DAY_MS
#define T0  1700000000000LL

typedef struct {
    int n;
    seg_dim_t dim[64];
    char from[64][96], to[64][96];
    int64_t ts[64];
    uint64_t seq[64];
    char id[64][160];
} rec_t;

static inline void rec_fn(void *ud, const seg_change_t *ch)
{
    rec_t *r = ud;
    if (r->n >= 64) return;
    r->dim[r->n] = ch->dim;
    snprintf(r->from[r->n], 96, "%s", ch->from ? ch->from : "(null)");
    snprintf(r->to[r->n], 96, "%s", ch->to);
    r->ts[r->n] = ch->ts;
    r->seq[r->n] = ch->seq;
    seg_change_id(ch, r->id[r->n], 160);
    r->n++;
}

/* Index of the k-th change of dimension dim (or -1). */
static inline int rec_find(const rec_t *r, seg_dim_t dim, int k)
{
    for (int i = 0; i < r->n; i++)
        if (r->dim[i] == dim && k-- == 0) return i;
    return -1;
}

static inline seg_event_t mkev(const char *cid, seg_evtype_t type, int64_t ts)
{
    seg_event_t ev;
    memset(&ev, 0, sizeof(ev));
    seg_event_reset(&ev);
    ev.id_len = (uint8_t)snprintf(ev.customer_id, sizeof(ev.customer_id), "%s", cid);
    ev.type = (uint8_t)type;
    ev.ts = ts;
    return ev;
}

static inline seg_t *mkseg(void)
{
    seg_params_t p;
    char err[256];
    seg_params_default(&p);
    return seg_new(&p, err, sizeof(err));
}

#endif
