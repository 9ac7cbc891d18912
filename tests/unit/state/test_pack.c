/* tests/unit/state/test_pack.c: customers and the model at rest (pack.c):
 * exact round trips, a restored customer and model behave exactly like the
 * originals under the same next events (changes, features, centroids), the
 * readable hash fields, and hostile input (every truncation, random bytes,
 * mutations, headers claiming 2^32 entries) fails cleanly. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "state/mpw.h"
#include "state/pack.h"
#include "segmenter/internal.h" /* seg__category_intern: a second process's own ids */

#define DAY SEG_DAY_MS
#define T0  1700000000000LL
#define NC  40 /* customers */

/* ---------- a reproducible stream of events ---------- */

static uint64_t rng_next(uint64_t *s)
{
    *s = *s * 6364136223846793005ULL + 1442695040888963407ULL;
    return *s >> 33;
}

static const char *const cats[] = {"books", "toys", "garden", "shoes", "music", "food"};

/* Event i of a stream over NC customers, at *t (advanced). Customer c's
 * habits depend on c so that clusters form. */
static seg_event_t gen_event(uint64_t *r, int64_t *t)
{
    seg_event_t ev;
    memset(&ev, 0, sizeof(ev));
    seg_event_reset(&ev);
    int c = (int)(rng_next(r) % NC);
    *t += (int64_t)(rng_next(r) % (3 * 3600 * 1000));
    ev.id_len = (uint8_t)snprintf(ev.customer_id, sizeof(ev.customer_id), "c%03d", c);
    ev.ts = *t - (rng_next(r) % 10 == 0 ? (int64_t)(rng_next(r) % (2 * DAY)) : 0); /* some late */
    int kind = (int)(rng_next(r) % 10);
    if (c % 3 == 0 && kind < 4) {
        ev.type = SEG_EV_PURCHASE;
        ev.amount = (double)(rng_next(r) % 20000) / 100.0;
        ev.has_amount = 1;
        ev.discount = rng_next(r) % 2;
    } else if (c % 3 == 1 && kind < 5) {
        ev.type = SEG_EV_ADD_TO_CART;
    } else if (kind < 7) {
        ev.type = SEG_EV_PRODUCT_VIEW;
    } else if (kind < 8) {
        ev.type = SEG_EV_EMAIL_OPEN;
    } else {
        ev.type = (uint8_t)(rng_next(r) % SEG_EV__COUNT);
    }
    ev.channel = (uint8_t)(rng_next(r) % SEG_CH__COUNT);
    if (rng_next(r) % 2) {
        const char *cat = cats[(c + (int)(rng_next(r) % 3)) % 6];
        ev.category_len = (uint8_t)snprintf(ev.category, sizeof(ev.category), "%s", cat);
    }
    if (rng_next(r) % 3 == 0) /* ids from a small space: some repeat (dedup) */
        ev.event_id_len = (uint8_t)snprintf(ev.event_id, sizeof(ev.event_id), "e%d-%d", c,
                                            (int)(rng_next(r) % 40));
    if (rng_next(r) % 4 == 0) {
        ev.n_traits = 2;
        snprintf(ev.traits[0].key, SEG_TRAIT_KEY, "country");
        snprintf(ev.traits[0].val, SEG_TRAIT_VAL, "%s", rng_next(r) % 2 ? "GB" : "IE");
        snprintf(ev.traits[1].key, SEG_TRAIT_KEY, "tier%d", (int)(rng_next(r) % 3));
        snprintf(ev.traits[1].val, SEG_TRAIT_VAL, "v%d", (int)(rng_next(r) % 100));
    }
    return ev;
}

static seg_t *mkseg_k(int k, int64_t dying_window)
{
    seg_params_t p;
    char err[256];
    seg_params_default(&p);
    p.k = k;
    p.warmup = 24;
    p.min_events = 2;
    p.dying_window = dying_window;
    p.dying_share = 0.01;
    /* ids beyond the ring kept over most of the stream, and few of them,
     * so that their table grows, sweeps and is cut to the newest */
    p.dedup_window_ms = 200 * DAY;
    p.dedup_max = 12;
    const char *big[] = {"monetary > 100"};
    const char *buyer[] = {"orders >= 2", "events >= 5"};
    const char *books[] = {"top_category == books"};
    const char *gb[] = {"country == GB"};
    cr_assert_eq(seg_params_add_rule(&p, "big", 0, big, 1, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(seg_params_add_rule(&p, "buyer", 1, buyer, 2, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(seg_params_add_rule(&p, "books", 0, books, 1, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(seg_params_add_rule(&p, "gb", 0, gb, 1, err, sizeof(err)), 0, "%s", err);
    seg_t *s = seg_new(&p, err, sizeof(err));
    cr_assert_not_null(s, "%s", err);
    return s;
}

static seg_t *mkseg(void)
{
    return mkseg_k(4, 1000000);
}

typedef struct world {
    seg_t *s;
    seg_customer_t c[NC];
    int64_t W;
} world_t;

static void world_init(world_t *w, seg_t *s)
{
    w->s = s;
    w->W = 0;
    for (int i = 0; i < NC; i++) {
        char id[8];
        int n = snprintf(id, sizeof(id), "c%03d", i);
        seg_customer_init(&w->c[i], id, (size_t)n, (uint64_t)i);
    }
}

static void world_free(world_t *w)
{
    for (int i = 0; i < NC; i++) seg_customer_clear(&w->c[i]);
    seg_free(w->s);
}

static int cust_index(const seg_event_t *ev)
{
    return atoi(ev->customer_id + 1);
}

/* ---------- recorded changes ---------- */

typedef struct change {
    seg_dim_t dim;
    int rule;
    char rule_name[64], from[128], to[128], reason[96], cust[SEG_ID_MAX + 1];
    int32_t from_id, to_id;
    int64_t ts, watermark;
    uint64_t seq, model_version, orders;
    double recency, monetary;
} change_t;

typedef struct rec {
    int n, cap;
    change_t *ch;
} rec_t;

static void rec_fn(void *ud, const seg_change_t *c)
{
    rec_t *r = ud;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 256;
        r->ch = realloc(r->ch, (size_t)r->cap * sizeof(change_t));
        cr_assert_not_null(r->ch);
    }
    change_t *x = &r->ch[r->n++];
    memset(x, 0, sizeof(*x));
    x->dim = c->dim;
    x->rule = c->rule;
    snprintf(x->rule_name, sizeof(x->rule_name), "%s", c->rule_name ? c->rule_name : "");
    snprintf(x->from, sizeof(x->from), "%s", c->from ? c->from : "(null)");
    snprintf(x->to, sizeof(x->to), "%s", c->to);
    snprintf(x->reason, sizeof(x->reason), "%s", c->reason);
    snprintf(x->cust, sizeof(x->cust), "%s", c->cust->id);
    x->from_id = c->from_id, x->to_id = c->to_id;
    x->ts = c->ts, x->watermark = c->watermark;
    x->seq = c->seq, x->model_version = c->model_version, x->orders = c->orders;
    x->recency = c->recency_days, x->monetary = c->monetary;
}

static void same_changes(const rec_t *a, const rec_t *b)
{
    cr_assert_eq(a->n, b->n, "change counts %d vs %d", a->n, b->n);
    for (int i = 0; i < a->n; i++) {
        const change_t *x = &a->ch[i], *y = &b->ch[i];
        cr_assert(x->dim == y->dim && x->rule == y->rule, "change %d", i);
        cr_assert_str_eq(x->rule_name, y->rule_name);
        cr_assert_str_eq(x->from, y->from, "change %d of %s", i, x->cust);
        cr_assert_str_eq(x->to, y->to, "change %d of %s", i, x->cust);
        cr_assert_str_eq(x->reason, y->reason);
        cr_assert_str_eq(x->cust, y->cust);
        cr_assert(x->from_id == y->from_id && x->to_id == y->to_id, "change %d ids", i);
        cr_assert(x->ts == y->ts && x->watermark == y->watermark && x->seq == y->seq);
        cr_assert(x->model_version == y->model_version && x->orders == y->orders);
        cr_assert(x->recency == y->recency && x->monetary == y->monetary, "change %d", i);
    }
}

/* Same state field by field; categories compared by name (ids are per
 * process). */
static void same_customer(const seg_t *sa, const seg_customer_t *a, const seg_t *sb,
                          const seg_customer_t *b)
{
    cr_assert_str_eq(a->id, b->id);
    cr_assert(a->lifecycle == b->lifecycle && a->assigned == b->assigned, "%s", a->id);
    cr_assert_eq(a->cluster, b->cluster, "%s: %d vs %d", a->id, a->cluster, b->cluster);
    cr_assert(a->first_seen == b->first_seen && a->last_seen == b->last_seen);
    cr_assert(a->last_activity == b->last_activity && a->reactivated_at == b->reactivated_at);
    cr_assert(a->decay_ts == b->decay_ts && a->last_change_ts == b->last_change_ts);
    cr_assert_eq(a->due, b->due, "%s", a->id);
    cr_assert(a->events == b->events && a->orders == b->orders && a->seq == b->seq);
    cr_assert(a->revenue == b->revenue);
    cr_assert(a->rules == b->rules && a->rules_seen == b->rules_seen, "%s", a->id);
    cr_assert_eq(memcmp(a->dedup, b->dedup, sizeof(a->dedup)), 0);
    cr_assert_eq(a->dedup_pos, b->dedup_pos);
    cr_assert_eq(memcmp(a->dedup_min, b->dedup_min, sizeof(a->dedup_min)), 0);
    /* the ids beyond the ring: the same table size and the same ids, so
     * that every later decision and sweep is the same */
    cr_assert_eq(!a->dedup_tab, !b->dedup_tab, "%s", a->id);
    if (a->dedup_tab) {
        cr_assert(a->dedup_n == b->dedup_n && a->dedup_cap == b->dedup_cap, "%s: %u/%u vs %u/%u",
                  a->id, a->dedup_n, a->dedup_cap, b->dedup_n, b->dedup_cap);
        for (uint32_t i = 0; i < a->dedup_cap; i++) {
            if (!a->dedup_tab[i].h) continue;
            uint32_t j = 0;
            while (j < b->dedup_cap && b->dedup_tab[j].h != a->dedup_tab[i].h) j++;
            cr_assert(j < b->dedup_cap && b->dedup_tab[j].ts == a->dedup_tab[i].ts, "%s: id %u",
                      a->id, i);
        }
    }
    cr_assert_eq(a->taught_epoch, b->taught_epoch, "%s", a->id);
    if (a->taught_epoch) cr_assert_eq(memcmp(a->taught, b->taught, sizeof(a->taught)), 0);
    cr_assert_eq(a->id_hash, b->id_hash);
    seg_features_t fa = a->f, fb = b->f;
    for (int i = 0; i < SEG_TOPCAT; i++) {
        const char *na = fa.cat_id[i] ? seg_category_name(sa, fa.cat_id[i]) : "";
        const char *nb = fb.cat_id[i] ? seg_category_name(sb, fb.cat_id[i]) : "";
        cr_assert_str_eq(na, nb, "%s slot %d", a->id, i);
        fa.cat_id[i] = fb.cat_id[i] = 0;
    }
    cr_assert_eq(memcmp(&fa, &fb, sizeof(fa)), 0, "features of %s", a->id);
    /* traits: the same blob */
    const char *ta = a->traits ? a->traits : "", *tb = b->traits ? b->traits : "";
    size_t la = 0, lb = 0;
    while (ta[la]) la += strlen(ta + la) + 1, la += strlen(ta + la) + 1;
    while (tb[lb]) lb += strlen(tb + lb) + 1, lb += strlen(tb + lb) + 1;
    cr_assert_eq(la, lb);
    cr_assert_eq(memcmp(ta, tb, la), 0);
    /* and each one's event time */
    size_t n = 0;
    for (const char *p = ta; *p; n++) p += strlen(p) + 1, p += strlen(p) + 1;
    for (size_t i = 0; i < n; i++) {
        int64_t x = a->traits_ts ? a->traits_ts[i] : INT64_MIN;
        int64_t y = b->traits_ts ? b->traits_ts[i] : INT64_MIN;
        cr_assert_eq(x, y, "%s: trait %zu's time", a->id, i);
    }
}

static void same_features_at(seg_t *sa, const seg_customer_t *a, seg_t *sb, const seg_customer_t *b,
                             int64_t W)
{
    for (int i = 0; seg_feature_names[i]; i++) {
        double x = seg_feature(sa, a, seg_feature_names[i], W);
        double y = seg_feature(sb, b, seg_feature_names[i], W);
        cr_assert(x == y || (isnan(x) && isnan(y)), "%s: %s %g vs %g", a->id, seg_feature_names[i],
                  x, y);
    }
}

/* Same model, field by field (labels as strings: bytes after the NUL may
 * differ). */
static void same_model(const seg_model_t *x, const seg_model_t *y)
{
#define SAME(f) cr_assert_eq(memcmp(&x->f, &y->f, sizeof(x->f)), 0, "model: " #f)
    SAME(k);
    SAME(ready);
    SAME(version);
    SAME(updates);
    SAME(updates_since_split);
    SAME(since);
    SAME(since_n);
    SAME(recent_rate);
    SAME(next_id);
    SAME(mean);
    SAME(scale);
    SAME(n_res);
    SAME(updates_since_refresh);
    SAME(epoch);
    SAME(seen_sample);
    SAME(rng);
    for (int j = 0; j < x->k; j++) {
        SAME(cl[j].id);
        SAME(cl[j].c);
        SAME(cl[j].n);
        SAME(cl[j].recent);
        SAME(cl[j].var);
        cr_assert_str_eq(x->cl[j].label, y->cl[j].label);
    }
    if (x->n_res) cr_assert_eq(memcmp(x->res, y->res, (size_t)x->n_res * sizeof(x->res[0])), 0);
    if (x->n_res) cr_assert_eq(memcmp(x->res_key, y->res_key, (size_t)x->n_res * 8), 0);
    if (!x->ready) {
        SAME(n_sample);
        cr_assert_eq(memcmp(x->sample, y->sample, (size_t)x->n_sample * sizeof(x->sample[0])), 0);
    }
#undef SAME
}

static void run_events(world_t *w, uint64_t *r, int64_t *t, int n, rec_t *rec)
{
    for (int i = 0; i < n; i++) {
        seg_event_t ev = gen_event(r, t);
        if (ev.ts > w->W) w->W = ev.ts;
        seg_apply(w->s, &w->c[cust_index(&ev)], &ev, w->W, rec_fn, rec);
    }
}

/* pack c from sa, unpack into a fresh customer of sb */
static void transfer(seg_t *sa, const seg_customer_t *c, seg_t *sb, seg_customer_t *out)
{
    msgpack_sbuffer sb_;
    msgpack_sbuffer_init(&sb_);
    cr_assert_eq(st_pack_customer(sa, c, &sb_), 0);
    seg_customer_init(out, c->id, c->id_len, c->handle);
    char err[256] = "";
    cr_assert_eq(st_unpack_customer(sb, sb_.data, sb_.size, out, err, sizeof(err)), 0, "%s: %s",
                 c->id, err);
    msgpack_sbuffer_destroy(&sb_);
}

/* ---------- tests ---------- */

Test(pack, customer_round_trip_is_exact)
{
    world_t w;
    world_init(&w, mkseg());
    uint64_t r = 42;
    int64_t t = T0;
    rec_t rec = {0};
    run_events(&w, &r, &t, 3000, &rec);
    int with_traits = 0, with_cats = 0, with_rules = 0;
    for (int i = 0; i < NC; i++) {
        seg_customer_t c2;
        transfer(w.s, &w.c[i], w.s, &c2);
        same_customer(w.s, &w.c[i], w.s, &c2);
        cr_assert_eq(memcmp(&w.c[i].f, &c2.f, sizeof(c2.f)), 0, "same process: same ids");
        /* and packing again gives the same bytes */
        msgpack_sbuffer a, b;
        msgpack_sbuffer_init(&a), msgpack_sbuffer_init(&b);
        st_pack_customer(w.s, &w.c[i], &a);
        st_pack_customer(w.s, &c2, &b);
        cr_assert(a.size == b.size && memcmp(a.data, b.data, a.size) == 0);
        cr_assert_eq(st_msgpack_check(a.data, a.size, NULL), 0);
        msgpack_sbuffer_destroy(&a), msgpack_sbuffer_destroy(&b);
        with_traits += c2.traits != NULL;
        with_cats += c2.f.cat_id[1] != 0;
        with_rules += c2.rules != 0;
        seg_customer_clear(&c2);
    }
    cr_assert(with_traits > 10 && with_cats > 10 && with_rules > 5, "the stream exercises it all");
    int with_more = 0;
    for (int i = 0; i < NC; i++) with_more += w.c[i].dedup_tab && w.c[i].dedup_n >= 12;
    cr_assert_gt(with_more, 10, "ids beyond the ring, up to dedup_max");
    /* a customer never seen */
    seg_customer_t fresh, back;
    seg_customer_init(&fresh, "nobody", 6, 99);
    transfer(w.s, &fresh, w.s, &back);
    same_customer(w.s, &fresh, w.s, &back);
    free(rec.ch);
    world_free(&w);
}

/* Packs everything from a running engine, restores it in a fresh engine
 * (whose category ids differ), then feeds both the same events: the changes,
 * the customers and the centroids must stay identical. */
static void check_restart_equivalence(int before, int after, int64_t dying_window,
                                      int model_changes)
{
    world_t a, b;
    world_init(&a, mkseg_k(4, dying_window));
    seg_t *s2 = mkseg_k(4, dying_window);
    /* the second process met other categories first: different ids */
    seg__category_intern(s2, "zzz", 3);
    seg__category_intern(s2, "music", 5);
    seg__category_intern(s2, "yyy", 3);
    uint64_t r = 7;
    int64_t t = T0;
    rec_t ra = {0}, rb = {0};
    run_events(&a, &r, &t, before, &ra);

    msgpack_sbuffer mb;
    msgpack_sbuffer_init(&mb);
    cr_assert_eq(st_pack_model(a.s, &mb), 0);
    char err[256] = "";
    cr_assert_eq(st_unpack_model(s2, mb.data, mb.size, err, sizeof(err)), 0, "%s", err);
    msgpack_sbuffer_destroy(&mb);
    b.s = s2;
    b.W = a.W;
    for (int i = 0; i < NC; i++) transfer(a.s, &a.c[i], s2, &b.c[i]);
    for (int i = 0; i < NC; i++) same_customer(a.s, &a.c[i], b.s, &b.c[i]);
    same_model(seg_model(a.s), seg_model(s2));
    uint64_t version = seg_model(s2)->version;
    uint32_t epoch = seg_model(s2)->epoch;

    /* the same next events, one at a time, compared after each */
    uint64_t r2 = r;
    int64_t t2 = t;
    ra.n = 0;
    for (int i = 0; i < after; i++) {
        seg_event_t e1 = gen_event(&r, &t), e2 = gen_event(&r2, &t2);
        int ci = cust_index(&e1);
        if (i == after / 2) { /* a quiet spell: lapses and returns */
            t += 70 * DAY, t2 += 70 * DAY;
            e1.ts += 70 * DAY, e2.ts += 70 * DAY;
        }
        if (e1.ts > a.W) a.W = e1.ts;
        if (e2.ts > b.W) b.W = e2.ts;
        int d1 = seg_apply(a.s, &a.c[ci], &e1, a.W, rec_fn, &ra);
        int d2 = seg_apply(b.s, &b.c[ci], &e2, b.W, rec_fn, &rb);
        cr_assert_eq(d1, d2);
        same_customer(a.s, &a.c[ci], b.s, &b.c[ci]);
        same_model(seg_model(a.s), seg_model(b.s));
        same_features_at(a.s, &a.c[ci], b.s, &b.c[ci], a.W);
    }
    /* silent changes as W moves on */
    for (int i = 0; i < NC; i++) {
        while (seg_step_due(a.s, &a.c[i], a.W + 200 * DAY, rec_fn, &ra)) {
        }
        while (seg_step_due(b.s, &b.c[i], b.W + 200 * DAY, rec_fn, &rb)) {
        }
    }
    same_changes(&ra, &rb);
    cr_assert_gt(ra.n, 50, "enough changes to mean something (%d)", ra.n);
    same_model(seg_model(a.s), seg_model(b.s));
    if (model_changes) /* seeded, split or refreshed after the restart */
        cr_assert(seg_model(b.s)->version > version && seg_model(b.s)->epoch > epoch);
    free(ra.ch), free(rb.ch);
    world_free(&a);
    world_free(&b);
}

Test(pack, restored_customers_and_model_apply_identically)
{
    check_restart_equivalence(2000, 3000, 1000000, 0);
}

Test(pack, restored_during_warmup_continues_warmup)
{
    check_restart_equivalence(15, 3000, 1000000, 1);
}

Test(pack, restored_model_refreshes_and_splits_identically)
{
    /* dying_window 100: refreshes every 500 updates, split checks every
     * 1024: both depend on the customer sample and the counters */
    check_restart_equivalence(2000, 4000, 100, 1);
}

Test(pack, model_round_trip_nearest_and_labels)
{
    world_t w;
    world_init(&w, mkseg());
    uint64_t r = 3;
    int64_t t = T0;
    rec_t rec = {0};
    run_events(&w, &r, &t, 2000, &rec);
    seg_model_t *m = seg_model(w.s);
    cr_assert(m->ready);
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a), msgpack_sbuffer_init(&b);
    cr_assert_eq(st_pack_model(w.s, &a), 0);
    cr_assert_eq(st_msgpack_check(a.data, a.size, NULL), 0);
    seg_t *s2 = mkseg();
    char err[256] = "";
    cr_assert_eq(st_unpack_model(s2, a.data, a.size, err, sizeof(err)), 0, "%s", err);
    seg_model_t *m2 = seg_model(s2);
    cr_assert_eq(m2->k, m->k);
    for (int j = 0; j < m->k; j++) {
        cr_assert_str_eq(m2->cl[j].label, m->cl[j].label);
        cr_assert_eq(m2->cl[j].id, m->cl[j].id);
        cr_assert_str_eq(seg_cluster_label(s2, m->cl[j].id), m->cl[j].label);
    }
    uint64_t q = 11;
    for (int i = 0; i < 1000; i++) {
        double x[SEG_DIM];
        for (int d = 0; d < SEG_DIM; d++) x[d] = (double)(rng_next(&q) % 2000) / 250.0 - 4;
        cr_assert_eq(seg_model_nearest(m, x, NULL), seg_model_nearest(m2, x, NULL));
    }
    cr_assert_eq(m2->n_res, m->n_res);
    cr_assert_eq(memcmp(m2->res, m->res, (size_t)m->n_res * sizeof(m->res[0])), 0);
    cr_assert_eq(st_pack_model(s2, &b), 0);
    cr_assert(a.size == b.size && memcmp(a.data, b.data, a.size) == 0, "packs back to the same");
    /* the same refresh from the same sample and rng */
    seg_model_refresh(m, 2, -1.0);
    seg_model_refresh(m2, 2, -1.0);
    same_model(m, m2);

    /* a model whose k is not the configuration's is refused, unchanged */
    seg_t *s3 = mkseg_k(5, 1000000);
    uint64_t v3 = seg_model(s3)->version;
    cr_assert_eq(st_unpack_model(s3, a.data, a.size, err, sizeof(err)), -1);
    cr_assert(strstr(err, "k is 4"), "%s", err);
    cr_assert_eq(seg_model(s3)->version, v3);
    cr_assert_not(seg_model(s3)->ready);
    seg_free(s3);
    msgpack_sbuffer_destroy(&a), msgpack_sbuffer_destroy(&b);
    seg_free(s2);
    free(rec.ch);
    world_free(&w);
}

/* Builds {"v": v, extra...} by hand. */
static void pk_key(msgpack_packer *pk, const char *k)
{
    msgpack_pack_str_with_body(pk, k, strlen(k));
}

/* A hand-made customer state in b: a map of keys entries, the first the
 * format version; the caller packs the other keys - 1. */
static void state_begin(msgpack_sbuffer *b, msgpack_packer *pk, uint32_t keys)
{
    msgpack_sbuffer_init(b);
    msgpack_packer_init(pk, b, msgpack_sbuffer_write);
    msgpack_pack_map(pk, keys);
    pk_key(pk, "v"), msgpack_pack_int(pk, 1);
}

Test(pack, versions_types_and_unknown_keys)
{
    seg_t *s = mkseg();
    seg_customer_t c;
    char err[256];
    msgpack_sbuffer b;
    msgpack_packer pk;

    /* unknown keys of any shape are skipped; absent keys keep init values */
    state_begin(&b, &pk, 4);
    pk_key(&pk, "future"), msgpack_pack_map(&pk, 1), pk_key(&pk, "x"), msgpack_pack_array(&pk, 2);
    msgpack_pack_nil(&pk), msgpack_pack_double(&pk, 1.5);
    pk_key(&pk, "ev"), msgpack_pack_int(&pk, 7);
    pk_key(&pk, "ru"), msgpack_pack_array(&pk, 0);
    seg_customer_init(&c, "x", 1, 0);
    cr_assert_eq(st_unpack_customer(s, b.data, b.size, &c, err, sizeof(err)), 0, "%s", err);
    cr_assert_eq(c.events, 7);
    cr_assert_eq(c.due, SEG_NEVER);
    cr_assert_eq(c.cluster, -1);
    msgpack_sbuffer_destroy(&b);

    /* wrong types are errors that name the key */
    const struct {
        const char *key;
        int kind; /* 0 string, 1 negative int, 2 float */
    } bad[] = {{"ev", 0}, {"ev", 1}, {"fs", 2}, {"lc", 1}, {"f", 1}, {"tr", 0}, {"dd", 0}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        state_begin(&b, &pk, 2);
        pk_key(&pk, bad[i].key);
        if (bad[i].kind == 0) pk_key(&pk, "str");
        if (bad[i].kind == 1) msgpack_pack_int(&pk, -3);
        if (bad[i].kind == 2) msgpack_pack_double(&pk, 1.5);
        seg_customer_init(&c, "x", 1, 0);
        err[0] = 0;
        cr_assert_eq(st_unpack_customer(s, b.data, b.size, &c, err, sizeof(err)), -1, "%s",
                     bad[i].key);
        char want[32];
        snprintf(want, sizeof(want), "%s:", bad[i].key);
        cr_assert(strstr(err, want), "%s", err);
        seg_customer_clear(&c);
        msgpack_sbuffer_destroy(&b);
    }

    /* a newer format and a missing version are refused */
    for (int v = 0; v < 2; v++) {
        msgpack_sbuffer_init(&b);
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        pk_key(&pk, v ? "v" : "ev"), msgpack_pack_int(&pk, v ? 2 : 1);
        seg_customer_init(&c, "x", 1, 0);
        cr_assert_eq(st_unpack_customer(s, b.data, b.size, &c, err, sizeof(err)), -1);
        cr_assert(strstr(err, "version"), "%s", err);
        msgpack_sbuffer_destroy(&b);
    }
    seg_free(s);
}

/* dx, the ids beyond the ring: a table size that is no power of two, too
 * many ids for it, a hash of 0 or an odd-length list are errors naming it,
 * before anything is allocated for the count; ddt absent (a state written
 * before it was kept) takes last_seen's minute. */
Test(pack, dedup_table_bounds)
{
    seg_t *s = mkseg();
    seg_customer_t c;
    char err[256];
    const struct {
        uint64_t cap;
        int n; /* ids */
        int zero, odd;
    } bad[] = {{12, 1, 0, 0},       {8, 7, 0, 0},  {16, 2, 1, 0}, {16, 2, 0, 1},
               {1u << 30, 1, 0, 0}, {256, 1, 0, 0}}; /* larger than a writer makes for one id: not
                                                        allocated */
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        msgpack_sbuffer b;
        msgpack_packer pk;
        state_begin(&b, &pk, 2);
        pk_key(&pk, "dx");
        msgpack_pack_array(&pk, 1 + 2 * (size_t)bad[i].n + (size_t)bad[i].odd);
        msgpack_pack_uint64(&pk, bad[i].cap);
        for (int j = 0; j < bad[i].n; j++) {
            msgpack_pack_uint64(&pk, bad[i].zero && j == 1 ? 0 : 2 * (uint64_t)j + 1);
            msgpack_pack_int64(&pk, T0);
        }
        if (bad[i].odd) msgpack_pack_int64(&pk, T0);
        seg_customer_init(&c, "x", 1, 0);
        err[0] = 0;
        cr_assert_eq(st_unpack_customer(s, b.data, b.size, &c, err, sizeof(err)), -1, "case %zu",
                     i);
        cr_assert(strstr(err, "dx"), "case %zu: %s", i, err);
        seg_customer_clear(&c);
        msgpack_sbuffer_destroy(&b);
    }
    /* no ddt: the ring's times are last_seen's minute */
    msgpack_sbuffer b;
    msgpack_packer pk;
    state_begin(&b, &pk, 2);
    pk_key(&pk, "ls"), msgpack_pack_int64(&pk, T0);
    seg_customer_init(&c, "x", 1, 0);
    cr_assert_eq(st_unpack_customer(s, b.data, b.size, &c, err, sizeof(err)), 0, "%s", err);
    for (int j = 0; j < SEG_DEDUP_N; j++) cr_assert_eq(c.dedup_min[j], (uint32_t)(T0 / 60000));
    cr_assert_null(c.dedup_tab);
    seg_customer_clear(&c);
    msgpack_sbuffer_destroy(&b);
    seg_free(s);
}

/* tt, the event time of each trait: kept in tr's order; absent (a state
 * written before it was kept) is "not known"; a count that is not tr's is
 * an error naming it */
Test(pack, trait_times)
{
    seg_t *s = mkseg();
    seg_customer_t c;
    char err[256];
    for (int v = 0; v < 3; v++) {
        msgpack_sbuffer b;
        msgpack_packer pk;
        msgpack_sbuffer_init(&b);
        msgpack_packer_init(&pk, &b, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, v == 0 ? 2 : 3);
        if (v != 0) { /* tt before tr: the order of keys does not matter */
            pk_key(&pk, "tt"), msgpack_pack_array(&pk, v == 1 ? 2 : 1);
            msgpack_pack_int64(&pk, 1700000000000LL);
            if (v == 1) msgpack_pack_int64(&pk, -5);
        }
        pk_key(&pk, "v"), msgpack_pack_int(&pk, 1);
        pk_key(&pk, "tr"), msgpack_pack_map(&pk, 2);
        pk_key(&pk, "country"), pk_key(&pk, "GB");
        pk_key(&pk, "city"), pk_key(&pk, "Leeds");
        seg_customer_init(&c, "x", 1, 0);
        err[0] = 0;
        int rc = st_unpack_customer(s, b.data, b.size, &c, err, sizeof(err));
        if (v == 0) {
            cr_assert_eq(rc, 0, "%s", err);
            cr_assert(c.traits_ts && c.traits_ts[0] == INT64_MIN && c.traits_ts[1] == INT64_MIN,
                      "not known");
        } else if (v == 1) {
            cr_assert_eq(rc, 0, "%s", err);
            cr_assert_not_null(c.traits_ts);
            cr_assert_eq(c.traits_ts[0], 1700000000000LL);
            cr_assert_eq(c.traits_ts[1], -5);
            msgpack_sbuffer out;
            msgpack_sbuffer_init(&out);
            cr_assert_eq(st_pack_customer(s, &c, &out), 0);
            seg_customer_t d;
            seg_customer_init(&d, "x", 1, 0);
            cr_assert_eq(st_unpack_customer(s, out.data, out.size, &d, err, sizeof(err)), 0);
            cr_assert_eq(d.traits_ts[0], 1700000000000LL);
            cr_assert_eq(d.traits_ts[1], -5);
            seg_customer_clear(&d);
            msgpack_sbuffer_destroy(&out);
        } else {
            cr_assert_eq(rc, -1);
            cr_assert(strstr(err, "tt:"), "%s", err);
            cr_assert(!c.traits && !c.traits_ts, "nothing half-read is kept");
        }
        seg_customer_clear(&c);
        msgpack_sbuffer_destroy(&b);
    }
    seg_free(s);
}

Test(pack, rules_are_stored_by_name)
{
    /* a customer packed under rules [big, buyer, books, gb] is read by an
     * engine whose rules are [gb, newrule, big]: bits follow the names */
    world_t w;
    world_init(&w, mkseg());
    uint64_t r = 5;
    int64_t t = T0;
    rec_t rec = {0};
    run_events(&w, &r, &t, 3000, &rec);
    seg_params_t p;
    char err[256];
    seg_params_default(&p);
    p.k = 4;
    const char *gb[] = {"country == GB"}, *nr[] = {"orders > 1000"}, *big[] = {"monetary > 100"};
    seg_params_add_rule(&p, "gb", 0, gb, 1, err, sizeof(err));
    seg_params_add_rule(&p, "newrule", 0, nr, 1, err, sizeof(err));
    seg_params_add_rule(&p, "big", 0, big, 1, err, sizeof(err));
    seg_t *s2 = seg_new(&p, err, sizeof(err));
    int checked = 0;
    for (int i = 0; i < NC; i++) {
        seg_customer_t c2;
        transfer(w.s, &w.c[i], s2, &c2);
        uint64_t a = w.c[i].rules, as = w.c[i].rules_seen;
        cr_assert_eq((c2.rules >> 0) & 1, (a >> 3) & 1);
        cr_assert_eq((c2.rules >> 2) & 1, (a >> 0) & 1);
        cr_assert_eq((c2.rules_seen >> 1) & 1, 0, "a new rule is unseen");
        cr_assert_eq((c2.rules_seen >> 2) & 1, (as >> 0) & 1);
        checked += (a & 9) != 0;
        seg_customer_clear(&c2);
    }
    cr_assert_gt(checked, 3);
    seg_free(s2);
    free(rec.ch);
    world_free(&w);
}

Test(pack, customer_fields)
{
    world_t w;
    world_init(&w, mkseg());
    uint64_t r = 9;
    int64_t t = T0;
    rec_t rec = {0};
    run_events(&w, &r, &t, 3000, &rec);
    int seen_rules = 0;
    for (int i = 0; i < NC; i++) {
        const seg_customer_t *c = &w.c[i];
        st_field_t f[ST_FIELDS];
        int n = st_customer_fields(w.s, c, 1234, f);
        cr_assert_eq(n, ST_FIELDS);
        static const char *names[] = {"lifecycle",  "cluster",   "cluster_label", "rules",
                                      "first_seen", "last_seen", "events",        "orders",
                                      "revenue",    "updated"};
        for (int j = 0; j < n; j++) cr_assert_str_eq(f[j].name, names[j]);
        cr_assert_str_eq(f[0].value, seg_lifecycle_names[c->lifecycle]);
        cr_assert_eq(atoi(f[1].value), c->cluster);
        cr_assert_str_eq(f[2].value, seg_cluster_label(w.s, c->cluster));
        char want[512] = "";
        for (int k = 0; k < 4; k++)
            if ((c->rules >> k) & 1)
                snprintf(want + strlen(want), sizeof(want) - strlen(want), "%s%s",
                         want[0] ? "," : "", seg_rule_name(seg_params(w.s)->rules, k));
        cr_assert_str_eq(f[3].value, want);
        seen_rules += strchr(want, ',') != NULL;
        cr_assert_eq(strtoll(f[4].value, NULL, 10), c->first_seen);
        cr_assert_eq(strtoll(f[5].value, NULL, 10), c->last_seen);
        cr_assert_eq(strtoull(f[6].value, NULL, 10), c->events);
        cr_assert_eq(strtoull(f[7].value, NULL, 10), c->orders);
        cr_assert(strtod(f[8].value, NULL) == c->revenue, "%s", f[8].value);
        cr_assert_str_eq(f[9].value, "1234");
    }
    cr_assert_gt(seen_rules, 0);
    /* before any event */
    seg_customer_t c;
    seg_customer_init(&c, "n", 1, 0);
    st_field_t f[ST_FIELDS];
    st_customer_fields(w.s, &c, 0, f);
    cr_assert_str_eq(f[0].value, "");
    cr_assert_str_eq(f[1].value, "-1");
    cr_assert_str_eq(f[2].value, "");
    cr_assert_str_eq(f[8].value, "0");
    free(rec.ch);
    world_free(&w);
}

/* The fields are written without printf: they must read as printf's. */
static void ref_double(char *buf, size_t len, double v)
{
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, len, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

Test(pack, fields_are_what_printf_writes)
{
    seg_t *s = mkseg();
    uint64_t r = 77;
    static const double fixed[] = {
        0,       0.01,      0.1,         0.5,  1,    9.99, 10.1,  100,    0.1 + 0.2,      1e-5,
        123.456, 1.0 / 3.0, 1e13 - 0.01, 1e13, 1e15, 1e16, 1e300, 5e-324, 99999999999.99, 42.005};
    static const int64_t ints[] = {0, 1, -1, 9, 10, -10, 1700000000000LL, INT64_MAX, INT64_MIN};
    for (int i = 0; i < 3000; i++) {
        seg_customer_t c;
        seg_customer_init(&c, "x", 1, 0);
        int nf = (int)(sizeof(fixed) / sizeof(fixed[0]));
        if (i < nf)
            c.revenue = fixed[i];
        else if (i % 3 == 0)
            c.revenue = (double)(rng_next(&r) % 100000000) / 100.0; /* cents */
        else if (i % 3 == 1)
            c.revenue = (double)rng_next(&r) / (double)(rng_next(&r) + 1);
        else
            c.revenue = (double)(rng_next(&r) * rng_next(&r)) / 1000.0;
        int ni = (int)(sizeof(ints) / sizeof(ints[0]));
        c.first_seen = ints[i % ni];
        c.last_seen = ints[(i + 4) % ni];
        c.events = (uint64_t)ints[(i + 2) % ni];
        c.orders = i == 5 ? UINT64_MAX : (uint64_t)i;
        c.cluster = i % 2 ? -1 : i;
        st_field_t f[ST_FIELDS];
        char want[64];
        st_customer_fields(s, &c, ints[(i + 3) % ni], f);
        ref_double(want, sizeof(want), c.revenue);
        cr_assert_str_eq(f[8].value, want, "revenue %.17g", c.revenue);
        snprintf(want, sizeof(want), "%d", (int)c.cluster);
        cr_assert_str_eq(f[1].value, want);
        snprintf(want, sizeof(want), "%lld", (long long)c.first_seen);
        cr_assert_str_eq(f[4].value, want);
        snprintf(want, sizeof(want), "%lld", (long long)c.last_seen);
        cr_assert_str_eq(f[5].value, want);
        snprintf(want, sizeof(want), "%llu", (unsigned long long)c.events);
        cr_assert_str_eq(f[6].value, want);
        snprintf(want, sizeof(want), "%llu", (unsigned long long)c.orders);
        cr_assert_str_eq(f[7].value, want);
        snprintf(want, sizeof(want), "%lld", (long long)ints[(i + 3) % ni]);
        cr_assert_str_eq(f[9].value, want);
        for (int j = 0; j < ST_FIELDS; j++) cr_assert_eq(f[j].len, strlen(f[j].value));
    }
    seg_free(s);
}

/* The writer (mpw.h) against msgpack-c's packer, at every form's bounds. */
Test(pack, writer_writes_what_msgpack_c_writes)
{
    msgpack_sbuffer a, b;
    msgpack_sbuffer_init(&a);
    msgpack_sbuffer_init(&b);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &a, msgpack_sbuffer_write);
    mpw_t w = {&b, 0};
    static const uint64_t us[] = {0,     1,     127,         128,         255,        256,
                                  65535, 65536, 4294967295u, 4294967296u, 1ull << 62, UINT64_MAX};
    for (size_t i = 0; i < sizeof(us) / sizeof(us[0]); i++) {
        msgpack_pack_uint64(&pk, us[i]);
        mpw_u64(&w, us[i]);
        msgpack_pack_uint32(&pk, (uint32_t)us[i]);
        mpw_u64(&w, (uint32_t)us[i]);
    }
    static const int64_t is[] = {0,
                                 1,
                                 -1,
                                 -31,
                                 -32,
                                 -33,
                                 -127,
                                 -128,
                                 -129,
                                 -32767,
                                 -32768,
                                 -32769,
                                 127,
                                 128,
                                 INT32_MIN,
                                 INT32_MIN - 1LL,
                                 INT32_MAX,
                                 INT64_MIN,
                                 INT64_MAX,
                                 65536,
                                 -1700000000000LL,
                                 1700000000000LL};
    for (size_t i = 0; i < sizeof(is) / sizeof(is[0]); i++) {
        msgpack_pack_int64(&pk, is[i]);
        mpw_i64(&w, is[i]);
    }
    static const double ds[] = {0, -0.0, 1.5, -2.25e300, 5e-324, INFINITY, NAN};
    for (size_t i = 0; i < sizeof(ds) / sizeof(ds[0]); i++) {
        msgpack_pack_double(&pk, ds[i]);
        mpw_f64(&w, ds[i]);
    }
    static const size_t ns[] = {0, 1, 15, 16, 31, 32, 255, 256, 65535, 65536, 70000};
    char *text = malloc(70000);
    cr_assert(text);
    for (size_t i = 0; i < 70000; i++) text[i] = (char)('a' + i % 26);
    for (size_t i = 0; i < sizeof(ns) / sizeof(ns[0]); i++) {
        msgpack_pack_str_with_body(&pk, text, ns[i]);
        mpw_str(&w, text, ns[i]);
        msgpack_pack_map(&pk, ns[i]);
        mpw_map(&w, ns[i]);
        msgpack_pack_array(&pk, ns[i]);
        mpw_array(&w, ns[i]);
    }
    msgpack_pack_nil(&pk);
    mpw_nil(&w);
    msgpack_pack_true(&pk);
    mpw_bool(&w, 1);
    msgpack_pack_false(&pk);
    mpw_bool(&w, 0);
    msgpack_pack_str_with_body(&pk, "key", 3);
    MPW_LIT(&w, "key");
    cr_assert_eq(w.err, 0);
    cr_assert_eq(a.size, b.size);
    cr_assert_eq(memcmp(a.data, b.data, a.size), 0);
    free(text);
    msgpack_sbuffer_destroy(&a);
    msgpack_sbuffer_destroy(&b);
}

/* ---------- hostile input ---------- */

/* Unpacks and, when accepted, lets the engine use the customer: nothing
 * read may crash the core either. */
static int try_customer(seg_t *s, const void *p, size_t n)
{
    seg_customer_t c;
    char err[256];
    seg_customer_init(&c, "h", 1, 0);
    int rc = st_unpack_customer(s, p, n, &c, err, sizeof(err));
    if (rc == 0) {
        st_field_t f[ST_FIELDS];
        st_customer_fields(s, &c, 0, f);
        seg_event_t ev;
        memset(&ev, 0, sizeof(ev));
        seg_event_reset(&ev);
        ev.id_len = 1, ev.customer_id[0] = 'h';
        ev.ts = T0 + 500 * DAY;
        ev.type = SEG_EV_PURCHASE, ev.amount = 10;
        seg_apply(s, &c, &ev, ev.ts, NULL, NULL);
        seg_step_due(s, &c, ev.ts + 400 * DAY, NULL, NULL);
    } else {
        cr_assert(err[0], "a reason");
    }
    seg_customer_clear(&c);
    return rc;
}

static int try_model(const void *p, size_t n)
{
    seg_t *s = mkseg();
    char err[256];
    int rc = st_unpack_model(s, p, n, err, sizeof(err));
    if (rc == 0) {
        double x[SEG_DIM] = {0};
        seg_model_nearest(seg_model(s), x, NULL);
    } else {
        cr_assert(err[0], "a reason");
    }
    seg_free(s);
    return rc;
}

Test(pack, every_truncation_fails)
{
    world_t w;
    world_init(&w, mkseg());
    uint64_t r = 1;
    int64_t t = T0;
    rec_t rec = {0};
    run_events(&w, &r, &t, 2000, &rec);
    msgpack_sbuffer b;
    msgpack_sbuffer_init(&b);
    st_pack_customer(w.s, &w.c[3], &b);
    for (size_t n = 0; n < b.size; n++) {
        cr_assert_eq(try_customer(w.s, b.data, n), -1, "prefix of %zu bytes", n);
        cr_assert_eq(st_msgpack_check(b.data, n, NULL), -1);
    }
    cr_assert_eq(try_customer(w.s, b.data, b.size), 0);
    cr_assert_eq(try_customer(w.s, NULL, 0), -1);
    msgpack_sbuffer_destroy(&b);

    msgpack_sbuffer_init(&b);
    st_pack_model(w.s, &b);
    char *copy = malloc(b.size); /* exactly sized: ASan sees any overread */
    for (size_t n = 0; n < b.size; n += 1 + n / 64) {
        memcpy(copy, b.data, n);
        cr_assert_eq(try_model(copy, n), -1, "prefix of %zu bytes", n);
    }
    cr_assert_eq(try_model(b.data, b.size), 0);
    free(copy);
    msgpack_sbuffer_destroy(&b);
    free(rec.ch);
    world_free(&w);
}

Test(pack, huge_headers_fail_without_allocating)
{
    seg_t *s = mkseg();
    static const struct {
        const char *bytes;
        size_t len;
    } cases[] = {
        {"\xdf\xff\xff\xff\xff", 5},                                  /* map32: 2^32-1 pairs */
        {"\xdf\x00\x00\x00\x01", 5},                                  /* one pair, no bytes */
        {"\xdd\xff\xff\xff\xff", 5},                                  /* array32 */
        {"\xdb\xff\xff\xff\xff", 5},                                  /* str32 */
        {"\x81\xa2tr\xdf\xff\xff\xff\xff", 9},                        /* traits: map32 */
        {"\x81\xa2\x64\x64\xdd\xff\xff\xff\xff", 9},                  /* dd: array32 */
        {"\x81\xa1\x66\x81\xa3\x63\x61\x74\xdd\x7f\xff\xff\xff", 13}, /* f.cat */
        {"\x81\xa1x\xc9\xff\xff\xff\xff\x01", 9},                     /* ext32 */
        {"\x81\xa1x\xc1", 4},                                         /* never-used byte */
        {"\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91", 10},             /* nesting, no end */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        cr_assert_eq(try_customer(s, cases[i].bytes, cases[i].len), -1, "case %zu", i);
        cr_assert_eq(try_model(cases[i].bytes, cases[i].len), -1, "case %zu", i);
        cr_assert_eq(st_msgpack_check(cases[i].bytes, cases[i].len, NULL), -1, "case %zu", i);
    }
    /* deep nesting that does end is skipped without recursion */
    size_t deep = 100000;
    unsigned char *p = malloc(deep + 8);
    size_t n = 0;
    p[n++] = 0x82, p[n++] = 0xa1, p[n++] = 'v', p[n++] = 0x01, p[n++] = 0xa1, p[n++] = 'z';
    for (size_t i = 0; i < deep; i++) p[n++] = 0x91;
    p[n++] = 0xc0;
    cr_assert_eq(try_customer(s, p, n), 0);
    size_t used = 0;
    cr_assert_eq(st_msgpack_check(p, n, &used), 0);
    cr_assert_eq(used, n);
    free(p);
    seg_free(s);
}

Test(pack, random_bytes_and_mutations_never_crash)
{
    world_t w;
    world_init(&w, mkseg());
    uint64_t r = 77;
    int64_t t = T0;
    rec_t rec = {0};
    run_events(&w, &r, &t, 2000, &rec);
    msgpack_sbuffer cb, mb;
    msgpack_sbuffer_init(&cb), msgpack_sbuffer_init(&mb);
    st_pack_customer(w.s, &w.c[0], &cb);
    st_pack_model(w.s, &mb);
    uint64_t q = 12345;
    unsigned char *buf = malloc(mb.size + 64);
    int accepted = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t n;
        if (iter % 4 == 0) { /* random bytes */
            n = rng_next(&q) % 64;
            for (size_t i = 0; i < n; i++) buf[i] = (unsigned char)rng_next(&q);
            if (n && iter % 8 == 0) buf[0] = 0x80 | (buf[0] & 0x0f); /* a fixmap */
        } else { /* a valid customer with a few bytes changed */
            n = cb.size;
            memcpy(buf, cb.data, n);
            int k = 1 + (int)(rng_next(&q) % 4);
            for (int j = 0; j < k; j++) buf[rng_next(&q) % n] = (unsigned char)rng_next(&q);
        }
        unsigned char *exact = malloc(n ? n : 1);
        memcpy(exact, buf, n);
        accepted += try_customer(w.s, exact, n) == 0;
        free(exact);
    }
    cr_assert_gt(accepted, 100, "mutations that stay valid are used by the engine");
    for (int iter = 0; iter < 300; iter++) {
        size_t n = mb.size;
        memcpy(buf, mb.data, n);
        int k = 1 + (int)(rng_next(&q) % 4);
        for (int j = 0; j < k; j++) buf[rng_next(&q) % n] = (unsigned char)rng_next(&q);
        try_model(buf, n);
    }
    free(buf);
    msgpack_sbuffer_destroy(&cb), msgpack_sbuffer_destroy(&mb);
    free(rec.ch);
    world_free(&w);
}
