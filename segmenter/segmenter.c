/* segmenter/segmenter.c: the engine. seg_apply() takes one accepted event
 * for one customer and emits the changes it causes (lifecycle, cluster,
 * rules); seg_step_due() performs silent lifecycle changes as W passes their
 * boundaries. Owns the model, the segment sizes and the category dictionary;
 * never owns customers (the caller's store does) and never reads a clock. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "segmenter/internal.h"

#define LABEL_LEN 96

typedef struct {
    char text[LABEL_LEN];
    uint8_t plain; /* seg__json_plain(text) */
} seg_label_t;

struct seg {
    seg_params_t p;
    seg_model_t m;
    seg_sizes_t sizes;
    seg_label_t *labels; /* by cluster id, kept after a cluster retires */
    int32_t n_labels;
    /* category dictionary: open addressing over ids, names by id (1-based) */
    char **cat_names;
    uint32_t *cat_lens; /* strlen of each name (a name cut by a NUL never matches) */
    uint32_t n_cat, cap_cat;
    uint32_t *cat_tab;
    uint32_t cat_tab_cap;
    char why_new_over[64], why_at_risk[64], why_lapsed[64], why_react_over[64];
    int whys_plain; /* every reason is seg__json_plain */
    int warmup_events;
};

static const char why_first[] = "first event";
static const char why_activity[] = "activity";
static const char why_return[] = "activity after lapse";
static const char why_first_cluster[] = "first assignment";
static const char why_nearest[] = "nearer to another centroid";
static const char why_retired[] = "cluster retired";
static const char why_rule_in[] = "rule holds";
static const char why_rule_out[] = "rule no longer holds";

uint64_t seg__hash(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) h = (h ^ p[i]) * 1099511628211ULL;
    return h;
}

/* ---------------- customers ---------------- */

void seg_customer_init(seg_customer_t *c, const char *id, size_t id_len, uint64_t handle)
{
    memset(c, 0, sizeof(*c));
    if (id_len > SEG_ID_MAX) id_len = SEG_ID_MAX;
    memcpy(c->id, id, id_len);
    c->id[id_len] = 0;
    c->id_len = (uint8_t)id_len;
    c->id_hash = seg__hash(c->id, id_len);
    c->cluster = -1;
    c->handle = handle;
    c->reactivated_at = SEG_NO_TIME;
    c->last_change_ts = SEG_NO_TIME;
    c->due = SEG_NEVER;
    c->due_queued = SEG_NEVER;
}

void seg_customer_clear(seg_customer_t *c)
{
    free(c->traits); /* traits_ts is in the same block */
    c->traits = NULL;
    c->traits_ts = NULL;
    seg_dedup_drop(c);
}

/* One block for both: the blob, then (8-aligned) the pairs' times. */
static char *traits_block(size_t chars, size_t n, int64_t **ts)
{
    size_t off = (chars + 7) & ~(size_t)7;
    char *b = malloc(off + n * sizeof(int64_t));
    *ts = b ? (int64_t *)(void *)(b + off) : NULL;
    return b;
}

int seg_customer_set_traits(seg_customer_t *c, const char *blob, const int64_t *ts)
{
    char *b = NULL;
    int64_t *t = NULL;
    if (blob && *blob) {
        size_t len = 0, n = 0;
        for (; blob[len]; n++) len += strlen(blob + len) + 1, len += strlen(blob + len) + 1;
        if (!(b = traits_block(len + 1, n, &t))) return -1;
        memcpy(b, blob, len + 1);
        for (size_t i = 0; i < n; i++) t[i] = ts ? ts[i] : INT64_MIN;
    }
    free(c->traits);
    c->traits = b;
    c->traits_ts = t;
    return 0;
}

const char *seg_customer_trait(const seg_customer_t *c, const char *key)
{
    if (!c->traits) return NULL;
    for (const char *p = c->traits; *p;) {
        const char *v = p + strlen(p) + 1;
        if (strcmp(p, key) == 0) return v;
        p = v + strlen(v) + 1;
    }
    return NULL;
}

/* The usual event repeats values the customer has: only their times move
 * (in place). Returns 0 when some trait needs traits_merge's new blob. */
static int traits_same(seg_customer_t *c, const seg_event_t *ev)
{
    if (!c->traits) return 0;
    int64_t *at[SEG_TRAITS_MAX];
    for (int i = 0; i < ev->n_traits; i++) {
        at[i] = NULL;
        size_t j = 0;
        for (const char *p = c->traits; *p; j++) {
            const char *v = p + strlen(p) + 1;
            if (strcmp(p, ev->traits[i].key) == 0) {
                if (ev->ts >= c->traits_ts[j] && strcmp(v, ev->traits[i].val) != 0) return 0;
                at[i] = &c->traits_ts[j];
                break;
            }
            p = v + strlen(v) + 1;
        }
        if (!at[i]) return 0;
    }
    for (int i = 0; i < ev->n_traits; i++)
        if (ev->ts > *at[i]) *at[i] = ev->ts;
    return 1;
}

/* Keeps the SEG_CUSTOMER_TRAITS_MAX most recently set of the k pairs in
 * blob (times in ts): the oldest go, the earlier in blob first among equal
 * times. In place. */
static void traits_cap(char *blob, int64_t *ts, size_t k)
{
    if (k <= SEG_CUSTOMER_TRAITS_MAX) return;
    unsigned char drop[SEG_CUSTOMER_TRAITS_MAX + SEG_TRAITS_MAX] = {0};
    unsigned char *dr = k <= sizeof drop ? drop : calloc(k, 1);
    if (!dr) return; /* kept whole rather than lose a newer trait */
    for (size_t n = k; n > SEG_CUSTOMER_TRAITS_MAX; n--) {
        size_t old = k;
        for (size_t i = 0; i < k; i++)
            if (!dr[i] && (old == k || ts[i] < ts[old])) old = i;
        dr[old] = 1;
    }
    char *w = blob;
    size_t kept = 0;
    for (size_t i = 0; i < k; i++) {
        size_t kl = strlen(blob), len = kl + strlen(blob + kl + 1) + 2;
        if (!dr[i]) {
            memmove(w, blob, len);
            w += len;
            ts[kept++] = ts[i];
        }
        blob += len;
    }
    *w = 0;
    if (dr != drop) free(dr);
}

/* Merges the event's traits into one new blob: each trait keeps the value
 * of the newest event that carried it, by event time (CONTRACT §1), so a
 * late event changes only the traits no later event has set. Equal times:
 * the event applied last wins. */
static void traits_merge(seg_customer_t *c, const seg_event_t *ev)
{
    if (traits_same(c, ev)) return;
    size_t cap = 1, n = ev->n_traits;
    for (int i = 0; i < ev->n_traits; i++)
        cap += strlen(ev->traits[i].key) + strlen(ev->traits[i].val) + 2;
    if (c->traits)
        for (const char *p = c->traits; *p; n++) {
            size_t kl = strlen(p), vl = strlen(p + kl + 1);
            cap += kl + vl + 2;
            p += kl + vl + 2;
        }
    int64_t *ts;
    char *blob = traits_block(cap, n, &ts), *w = blob;
    if (!blob) return; /* keep the old traits rather than lose the event */
    size_t k = 0, i_old = 0;
    int kept_old[SEG_TRAITS_MAX] = {0}; /* event trait i: a newer value stays */
    if (c->traits)
        for (const char *p = c->traits; *p; i_old++) {
            size_t kl = strlen(p), vl = strlen(p + kl + 1);
            int64_t t = c->traits_ts[i_old];
            int newer = -1; /* the event's value for this key, when the event is not older */
            for (int i = 0; i < ev->n_traits; i++)
                if (strcmp(ev->traits[i].key, p) == 0) {
                    if (ev->ts >= t)
                        newer = i;
                    else
                        kept_old[i] = 1;
                }
            if (newer < 0) {
                memcpy(w, p, kl + vl + 2);
                w += kl + vl + 2;
                ts[k++] = t;
            }
            p += kl + vl + 2;
        }
    for (int i = 0; i < ev->n_traits; i++) {
        int later = 0; /* a key repeated within one event: the last one wins */
        for (int j = i + 1; j < ev->n_traits; j++)
            later |= strcmp(ev->traits[i].key, ev->traits[j].key) == 0;
        if (later || kept_old[i]) continue;
        size_t kl = strlen(ev->traits[i].key), vl = strlen(ev->traits[i].val);
        memcpy(w, ev->traits[i].key, kl + 1);
        memcpy(w + kl + 1, ev->traits[i].val, vl + 1);
        w += kl + vl + 2;
        ts[k++] = ev->ts;
    }
    *w = 0;
    traits_cap(blob, ts, k);
    free(c->traits); /* and the old times with it */
    c->traits = blob;
    c->traits_ts = ts;
}

int seg__json_plain(const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p >= 0x20 && *p < 0x80) {
            if (*p == '"' || *p == '\\') return 0;
        } else if (*p >= 0xC2 && *p <= 0xDF && (p[1] & 0xC0) == 0x80) {
            p++;
        } else {
            return 0;
        }
    }
    return 1;
}

/* ---------------- engine ---------------- */

static int labels_sync(seg_t *s)
{
    seg_model_t *m = &s->m;
    if (m->next_id > s->n_labels) {
        int32_t n = m->next_id + 8;
        seg_label_t *nl = realloc(s->labels, (size_t)n * sizeof(seg_label_t));
        int64_t *ns = realloc(s->sizes.cluster, (size_t)n * sizeof(int64_t));
        if (!nl || !ns) {
            if (nl) s->labels = nl;
            if (ns) s->sizes.cluster = ns;
            return -1;
        }
        memset(nl + s->n_labels, 0, (size_t)(n - s->n_labels) * sizeof(seg_label_t));
        memset(ns + s->n_labels, 0, (size_t)(n - s->n_labels) * sizeof(int64_t));
        s->labels = nl;
        s->sizes.cluster = ns;
        s->n_labels = s->sizes.n_cluster = n;
    }
    /* checked for JSON once per new label, not per change event */
    for (int j = 0; j < m->k; j++) {
        seg_label_t *l = &s->labels[m->cl[j].id];
        if (memcmp(l->text, m->cl[j].label, LABEL_LEN) == 0) continue;
        memcpy(l->text, m->cl[j].label, LABEL_LEN);
        l->plain = (uint8_t)seg__json_plain(l->text);
    }
    return 0;
}

/* A threshold as the reasons say it: in the largest unit that divides it
 * ("30 days", "1 day", "36 hours", "5 seconds", "250 ms"), not "5.78704e-05
 * days" for a 5 s threshold. */
void seg__span(int64_t ms, char *buf, size_t len)
{
    static const struct {
        int64_t ms;
        const char *one, *many;
    } u[] = {{SEG_DAY_MS, "day", "days"},
             {3600000, "hour", "hours"},
             {60000, "minute", "minutes"},
             {1000, "second", "seconds"}};
    for (size_t i = 0; i < sizeof u / sizeof u[0]; i++)
        if (ms > 0 && ms % u[i].ms == 0) {
            int64_t n = ms / u[i].ms;
            snprintf(buf, len, "%lld %s", (long long)n, n == 1 ? u[i].one : u[i].many);
            return;
        }
    snprintf(buf, len, "%lld ms", (long long)ms);
}

seg_t *seg_new(seg_params_t *p, char *err, size_t errlen)
{
    if (seg_params_validate(p, err, errlen) < 0) return NULL;
    seg_t *s = calloc(1, sizeof(*s));
    if (!s) goto oom;
    s->p = *p;
    p->rules = NULL; /* ownership moved */
    if (seg_model_init(&s->m, s->p.k, s->p.warmup, s->p.seed) < 0) goto oom;
    s->m.recent_rate = 1024.0 / (double)s->p.dying_window;
    if (s->m.recent_rate > 1) s->m.recent_rate = 1;
    s->warmup_events = s->p.warmup * 4;
    s->cat_tab_cap = 1024;
    s->cat_tab = calloc(s->cat_tab_cap, sizeof(uint32_t));
    if (!s->cat_tab) goto oom;
    char span[32];
    seg__span(s->p.new_ms, span, sizeof span);
    snprintf(s->why_new_over, sizeof(s->why_new_over), "%s since first seen", span);
    seg__span(s->p.at_risk_ms, span, sizeof span);
    snprintf(s->why_at_risk, sizeof(s->why_at_risk), "no activity for %s", span);
    seg__span(s->p.lapsed_ms, span, sizeof span);
    snprintf(s->why_lapsed, sizeof(s->why_lapsed), "no activity for %s", span);
    seg__span(s->p.reactivated_ms, span, sizeof span);
    snprintf(s->why_react_over, sizeof(s->why_react_over), "%s since return", span);
    const char *whys[] = {why_first,       why_activity,   why_return,    why_first_cluster,
                          why_nearest,     why_retired,    why_rule_in,   why_rule_out,
                          s->why_new_over, s->why_at_risk, s->why_lapsed, s->why_react_over};
    s->whys_plain = 1;
    for (size_t i = 0; i < sizeof whys / sizeof whys[0]; i++)
        s->whys_plain &= seg__json_plain(whys[i]);
    return s;
oom:
    snprintf(err, errlen, "out of memory");
    seg_free(s);
    return NULL;
}

void seg_free(seg_t *s)
{
    if (!s) return;
    seg_params_clear(&s->p);
    seg_model_clear(&s->m);
    free(s->labels);
    free(s->sizes.cluster);
    for (uint32_t i = 0; i < s->n_cat; i++) free(s->cat_names[i]);
    free(s->cat_names);
    free(s->cat_lens);
    free(s->cat_tab);
    free(s);
}

const seg_params_t *seg_params(const seg_t *s)
{
    return &s->p;
}

seg_model_t *seg_model(seg_t *s)
{
    return &s->m;
}

const seg_sizes_t *seg_sizes(const seg_t *s)
{
    return &s->sizes;
}

/* ---------------- categories ---------------- */

uint32_t seg__category_intern(seg_t *s, const char *name, size_t len)
{
    uint64_t h = seg__hash_fast(name, len);
    uint32_t mask = s->cat_tab_cap - 1;
    for (uint32_t i = (uint32_t)h & mask;; i = (i + 1) & mask) {
        uint32_t id = s->cat_tab[i];
        if (id == 0) break;
        if (s->cat_lens[id - 1] == len && seg__same(s->cat_names[id - 1], name, len)) return id;
    }
    if (s->n_cat >= 65535) return 0; /* a bounded dictionary: beyond this, no affinity */
    if ((s->n_cat + 1) * 2 > s->cat_tab_cap) {
        uint32_t nc = s->cat_tab_cap * 2;
        uint32_t *nt = calloc(nc, sizeof(uint32_t));
        if (!nt) return 0;
        for (uint32_t id = 1; id <= s->n_cat; id++) {
            const char *n = s->cat_names[id - 1];
            uint32_t j = (uint32_t)seg__hash_fast(n, strlen(n)) & (nc - 1);
            while (nt[j]) j = (j + 1) & (nc - 1);
            nt[j] = id;
        }
        free(s->cat_tab);
        s->cat_tab = nt;
        s->cat_tab_cap = nc;
        mask = nc - 1;
    }
    if (s->n_cat == s->cap_cat) {
        uint32_t nc = s->cap_cat ? s->cap_cat * 2 : 64;
        char **nn = realloc(s->cat_names, nc * sizeof(char *));
        if (!nn) return 0;
        s->cat_names = nn;
        uint32_t *nl = realloc(s->cat_lens, nc * sizeof(uint32_t));
        if (!nl) return 0;
        s->cat_lens = nl;
        s->cap_cat = nc;
    }
    char *copy = malloc(len + 1);
    if (!copy) return 0;
    memcpy(copy, name, len);
    copy[len] = 0;
    s->cat_lens[s->n_cat] = (uint32_t)strlen(copy);
    s->cat_names[s->n_cat++] = copy;
    uint32_t i = (uint32_t)h & mask;
    while (s->cat_tab[i]) i = (i + 1) & mask;
    s->cat_tab[i] = s->n_cat;
    return s->n_cat;
}

const char *seg_category_name(const seg_t *s, uint32_t id)
{
    return id >= 1 && id <= s->n_cat ? s->cat_names[id - 1] : NULL;
}

const char *seg_cluster_label(const seg_t *s, int32_t id)
{
    int j = id >= 0 ? seg_model_slot(&s->m, id) : -1;
    if (j >= 0) return s->m.cl[j].label;
    if (id >= 0 && id < s->n_labels && s->labels[id].text[0]) return s->labels[id].text;
    return NULL;
}

/* ---------------- changes ---------------- */

/* Both are on the hot path (every change event): plain copies, no printf. */
static size_t put(char *buf, size_t len, size_t at, const char *src, size_t n)
{
    if (at < len) memcpy(buf + at, src, at + n < len ? n : len - at);
    return at + n;
}

int seg_change_dimension(const seg_change_t *ch, char *buf, size_t len)
{
    size_t n = 0;
    switch (ch->dim) {
    case SEG_DIM_LIFECYCLE:
        n = put(buf, len, 0, "lifecycle", 9);
        break;
    case SEG_DIM_CLUSTER:
        n = put(buf, len, 0, "cluster", 7);
        break;
    case SEG_DIM_RULE:
        n = put(buf, len, 0, "rule:", 5);
        n = put(buf, len, n, ch->rule_name, strlen(ch->rule_name));
        break;
    }
    if (len) buf[n < len ? n : len - 1] = 0;
    return (int)n;
}

/* put() of v in decimal. */
static size_t put_dec(char *buf, size_t len, size_t n, uint64_t v)
{
    char d[24], *e = d + sizeof d, *p = e;
    do *--p = (char)('0' + v % 10);
    while (v /= 10);
    return put(buf, len, n, p, (size_t)(e - p));
}

int seg_change_id(const seg_change_t *ch, char *buf, size_t len)
{
    size_t n = put(buf, len, 0, ch->cust->id, ch->cust->id_len);
    n = put(buf, len, n, ":", 1);
    n += (size_t)seg_change_dimension(ch, n < len ? buf + n : NULL, n < len ? len - n : 0);
    n = put(buf, len, n, ":", 1);
    n = put_dec(buf, len, n, ch->seq);
    if (ch->dim == SEG_DIM_CLUSTER) {
        /* a cluster decision made again differently (events re-applied
         * after a crash, partitions interleaved otherwise, a model seeded
         * from another warm-up) must not reuse the id of the one it
         * replaces: source, target and time are part of the id
         * ("N:FROM>TO@TS", "N:>TO@TS" for the first), so one id always
         * names one change, even where two decision paths meet at the same
         * seq and target, from different clusters or at different times */
        n = put(buf, len, n, ":", 1);
        if (ch->from_id >= 0) n = put_dec(buf, len, n, (uint64_t)ch->from_id);
        n = put(buf, len, n, ">", 1);
        n = put_dec(buf, len, n, ch->to_id < 0 ? 0 : (uint64_t)ch->to_id);
        n = put(buf, len, n, ch->ts < 0 ? "@-" : "@", ch->ts < 0 ? 2 : 1);
        n = put_dec(buf, len, n, ch->ts < 0 ? 0 - (uint64_t)ch->ts : (uint64_t)ch->ts);
    }
    if (len) buf[n < len ? n : len - 1] = 0;
    return (int)n;
}

static void emit_change(seg_t *s, seg_customer_t *c, seg_change_t *ch, seg_emit_fn emit, void *ud)
{
    if (c->last_change_ts != SEG_NO_TIME && ch->ts < c->last_change_ts) ch->ts = c->last_change_ts;
    c->last_change_ts = ch->ts;
    ch->cust = c;
    ch->seq = ch->dim == SEG_DIM_LIFECYCLE ? ++c->seq
              : ch->dim == SEG_DIM_CLUSTER ? ++c->seq_cluster
                                           : ++c->seq_rule;
    ch->model_version = s->m.version;
    ch->recency_days = (double)(ch->ts - c->last_activity) / (double)SEG_DAY_MS;
    ch->orders = c->orders;
    /* seg__feature_at(SEG_F_MONETARY) without the activity decay it would also compute */
    ch->monetary = c->f.monetary * seg__decay(s->p.half_life_purchase_days,
                                              ch->ts > c->decay_ts ? ch->ts - c->decay_ts : 0);
    if (emit) emit(ud, ch);
}

static void lifecycle_change(seg_t *s, seg_customer_t *c, seg_lifecycle_t to, int64_t ts, int64_t W,
                             const char *why, seg_emit_fn emit, void *ud)
{
    seg_lifecycle_t from = (seg_lifecycle_t)c->lifecycle;
    if (from == to) return;
    seg_change_t ch = {0};
    ch.dim = SEG_DIM_LIFECYCLE;
    ch.from = seg_lifecycle_names[from];
    ch.to = seg_lifecycle_names[to];
    ch.from_id = ch.to_id = -1;
    ch.ts = ts;
    ch.watermark = W;
    ch.reason = why;
    ch.plain = (uint8_t)s->whys_plain; /* and the stages' names are */
    if (from != SEG_LC_NONE)
        s->sizes.lifecycle[from]--;
    else
        s->sizes.customers++;
    s->sizes.lifecycle[to]++;
    c->lifecycle = (uint8_t)to;
    emit_change(s, c, &ch, emit, ud);
}

static const char *silent_reason(const seg_t *s, seg_lifecycle_t from, seg_lifecycle_t to)
{
    if (to == SEG_LC_LAPSED) return s->why_lapsed;
    if (to == SEG_LC_AT_RISK) return s->why_at_risk;
    if (from == SEG_LC_NEW) return s->why_new_over;
    return s->why_react_over;
}

static void rules_step(seg_t *s, seg_customer_t *c, int64_t ts, int64_t at, int64_t W,
                       seg_emit_fn emit, void *ud);

/* The next silent change after `at`: a lifecycle boundary b (the stage
 * changes just after b, ts = b) or a rule flip T (the rule's value changes at
 * T, ts = T), kept as due = T - 1 so that both are due once W > due. With
 * rules, c->rules must be their value at `at` (rules_step at `at` first).
 * rule_due: d, or the next rule flip's due when that comes first. */
static int64_t rule_due(const seg_t *s, const seg_customer_t *c, int64_t at, int64_t d)
{
    if (!s->p.rules) return d;
    int64_t t = seg__rules_next(s, s->p.rules, c, at, c->rules); /* rules_step at `at` */
    return t != SEG_NEVER && t - 1 < d ? t - 1 : d;
}

static int64_t due_after(const seg_t *s, const seg_customer_t *c, int64_t at, int with_rules)
{
    int64_t d = seg_lifecycle_next(&s->p, c, at);
    return with_rules ? rule_due(s, c, at, d) : d;
}

static int step_due(seg_t *s, seg_customer_t *c, int64_t W, int with_rules, seg_emit_fn emit,
                    void *ud)
{
    if (c->due == SEG_NEVER || c->due >= W) return 0;
    int64_t b = c->due;
    seg_lifecycle_t from = (seg_lifecycle_t)c->lifecycle;
    seg_lifecycle_t to = seg_lifecycle_at(&s->p, c, b + 1);
    if (to != from) lifecycle_change(s, c, to, b, W, silent_reason(s, from, to), emit, ud);
    if (with_rules) rules_step(s, c, b + 1, b + 1, W, emit, ud);
    c->due = due_after(s, c, b + 1, with_rules);
    return 1;
}

int seg_step_due(seg_t *s, seg_customer_t *c, int64_t W, seg_emit_fn emit, void *ud)
{
    return step_due(s, c, W, 1, emit, ud);
}

/* ---------------- clusters ---------------- */

static void normalise(const seg_model_t *m, const double raw[SEG_DIM], double x[SEG_DIM])
{
    for (int d = 0; d < SEG_DIM; d++) x[d] = (raw[d] - m->mean[d]) / m->scale[d];
}

static int cluster_slot(const seg_model_t *m, const seg_customer_t *c)
{
    return c->cluster >= 0 ? seg_model_slot(m, c->cluster) : -1;
}

/* cur: the slot of c's cluster (cluster_slot). Returns the slot of c's
 * cluster after the call. */
static int assign_cluster(seg_t *s, seg_customer_t *c, int cur, const double x[SEG_DIM], int64_t ts,
                          int64_t W, seg_emit_fn emit, void *ud)
{
    seg_model_t *m = &s->m;
    double dn, dc = 0;
    int near = seg__model_nearest_from(m, x, cur, &dn, &dc);
    if (cur == near) return cur;
    const char *why = c->cluster < 0 ? why_first_cluster : cur < 0 ? why_retired : why_nearest;
    if (cur >= 0) {
        double h = 1.0 - s->p.hysteresis;
        if (!(dn < h * h * dc)) return cur; /* not clearly nearer: stay, do not flap */
    }
    if (labels_sync(s) < 0) return cur;
    seg_change_t ch = {0};
    ch.dim = SEG_DIM_CLUSTER;
    ch.from = c->cluster >= 0 ? s->labels[c->cluster].text : NULL;
    ch.to = m->cl[near].label;
    ch.from_id = c->cluster;
    ch.to_id = m->cl[near].id;
    ch.ts = ts;
    ch.watermark = W;
    ch.reason = why;
    ch.plain = (uint8_t)(s->whys_plain && (c->cluster < 0 || s->labels[c->cluster].plain) &&
                         s->labels[ch.to_id].plain); /* to: the label labels_sync just took */
    if (c->cluster >= 0) s->sizes.cluster[c->cluster]--;
    s->sizes.cluster[ch.to_id]++;
    c->cluster = ch.to_id;
    emit_change(s, c, &ch, emit, ud);
    return near;
}

static void seed_model(seg_t *s)
{
    seg_model_t *m = &s->m;
    int n = m->n_sample;
    static const double min_scale[SEG_DIM] = {0.25, 0.25, 0.25, 0.25, 0.05,
                                              0.05, 0.05, 0.05, 0.05, 0.05};
    for (int d = 0; d < SEG_DIM; d++) {
        double mu = 0, v = 0;
        for (int i = 0; i < n; i++) mu += m->sample[i][d];
        mu = n ? mu / n : 0;
        for (int i = 0; i < n; i++) v += (m->sample[i][d] - mu) * (m->sample[i][d] - mu);
        double sd = n > 1 ? sqrt(v / (n - 1)) : 0;
        m->mean[d] = mu;
        m->scale[d] = sd > min_scale[d] ? sd : min_scale[d];
    }
    for (int i = 0; i < n; i++) normalise(m, m->sample[i], m->sample[i]);
    seg_model_seed(m, (const double(*)[SEG_DIM])m->sample, n);
    labels_sync(s);
}

/* Once per customer: a customer listed twice would only be assigned again
 * to the cluster it was just given. */
static void add_pending(seg_model_t *m, seg_customer_t *c)
{
    if (c->warmup_listed) return;
    if (m->n_pending == m->cap_pending) {
        int nc = m->cap_pending ? m->cap_pending * 2 : 1024;
        uint64_t *np = realloc(m->pending, (size_t)nc * sizeof(uint64_t));
        if (!np) return; /* the customer is assigned at its next event instead */
        m->pending = np;
        m->cap_pending = nc;
    }
    m->pending[m->n_pending++] = c->handle;
    c->warmup_listed = 1;
}

/* The model is the mean of the current vectors of established customers,
 * by assigned cluster: a customer's previous vector leaves its cluster
 * before the new one is assigned and added, so every customer counts once
 * however active it is (a per-event model would give the busiest customers
 * the centroids). counted: the customer's previous vector (c->taught) is
 * in the current model. */
static void cluster_step(seg_t *s, seg_customer_t *c, int counted, int64_t ts, int64_t W,
                         seg_emit_fn emit, void *ud)
{
    seg_model_t *m = &s->m;
    double raw[SEG_DIM], x[SEG_DIM];
    seg_vector(&s->p, c, raw);
    if (s->p.frozen) {
        /* assign only: no warm-up sample, no centroid update, no refresh;
         * without a model nobody is assigned */
        if (!m->ready) return;
        normalise(m, raw, x);
        assign_cluster(s, c, cluster_slot(m, c), x, ts, W, emit, ud);
        return;
    }
    int teach = c->events >= (uint64_t)s->p.min_events;
    if (!m->ready) {
        add_pending(m, c);
        if (!teach) return;
        /* reservoir sample over the warm-up events, so later (richer) vectors count */
        m->seen_sample++;
        if (m->n_sample < m->cap_sample) {
            memcpy(m->sample[m->n_sample++], raw, sizeof(raw));
        } else {
            uint64_t r = seg__rand(&m->rng) % m->seen_sample;
            if (r < (uint64_t)m->cap_sample) memcpy(m->sample[r], raw, sizeof(raw));
        }
        if (m->seen_sample < (uint64_t)s->warmup_events) return;
        seed_model(s);
        counted = 0;
    }
    normalise(m, raw, x);
    int cur = cluster_slot(m, c);
    if (counted && c->taught_epoch == m->epoch && cur >= 0) seg_model_remove(m, cur, c->taught);
    int j = assign_cluster(s, c, cur, x, ts, W, emit, ud);
    if (!teach || j < 0) return;
    seg_model_add(m, j, x, s->p.lr_floor);
    seg_model_tick(m, j);
    c->taught_epoch = m->epoch;
    memcpy(c->taught, x, sizeof(x));
    seg_model_observe(m, c->id_hash, x);
    int changed = 0;
    if (++m->updates_since_refresh >= (uint64_t)s->p.dying_window * 5)
        changed |= seg_model_refresh(m, 2, 0.05);
    if ((m->updates & 1023) == 0)
        changed |= seg_model_split_dying(m, s->p.dying_share, s->p.dying_window) > 0;
    if ((m->updates & 16383) == 0) {
        char old[SEG_K_MAX][LABEL_LEN];
        for (int i = 0; i < m->k; i++) memcpy(old[i], m->cl[i].label, LABEL_LEN);
        seg_model_label(m);
        for (int i = 0; i < m->k; i++)
            if (strcmp(old[i], m->cl[i].label) != 0) {
                m->version++;
                changed = 1;
                break;
            }
    }
    if (changed) labels_sync(s);
}

int seg_take_pending(seg_t *s, uint64_t **handles)
{
    if (!s->m.ready || s->m.n_pending == 0) return 0;
    int n = s->m.n_pending;
    *handles = s->m.pending;
    s->m.pending = NULL;
    s->m.n_pending = s->m.cap_pending = 0;
    return n;
}

void seg_refresh_cluster(seg_t *s, seg_customer_t *c, int64_t W, seg_emit_fn emit, void *ud)
{
    if (!s->m.ready || !c->assigned) return;
    double raw[SEG_DIM], x[SEG_DIM];
    seg_vector(&s->p, c, raw);
    normalise(&s->m, raw, x);
    assign_cluster(s, c, cluster_slot(&s->m, c), x, W > c->last_seen ? W : c->last_seen, W, emit,
                   ud);
}

/* ---------------- rules ---------------- */

/* Evaluates the rules at `at` and emits each change with ts. */
static void rules_step(seg_t *s, seg_customer_t *c, int64_t ts, int64_t at, int64_t W,
                       seg_emit_fn emit, void *ud)
{
    const seg_ruleset_t *rs = s->p.rules;
    if (!rs) return;
    uint64_t now = seg__rules_eval(s, rs, c, at);
    uint64_t diff = now ^ c->rules;
    for (int i = 0; diff; i++, diff >>= 1) {
        if (!(diff & 1)) continue;
        uint64_t bit = 1ULL << i;
        int in = (now & bit) != 0;
        seg_change_t ch = {0};
        ch.dim = SEG_DIM_RULE;
        ch.rule = i;
        ch.rule_name = seg_rule_name(rs, i);
        ch.from = (c->rules_seen & bit) ? (in ? "out" : "in") : NULL;
        ch.to = in ? "in" : "out";
        ch.from_id = ch.to_id = -1;
        ch.ts = ts;
        ch.watermark = W;
        ch.reason = in ? why_rule_in : why_rule_out;
        ch.plain = (uint8_t)s->whys_plain; /* from and to are "in", "out" or none */
        s->sizes.rule[i] += in ? 1 : -1;
        c->rules_seen |= bit;
        c->rules ^= bit;
        emit_change(s, c, &ch, emit, ud);
    }
}

/* ---------------- duplicates ---------------- */

/* The ring holds a customer's last SEG_DEDUP_N ids, which is what a
 * producer's retries need. An id leaving it stays in the table (dedup_tab)
 * while its event is within the window behind the customer's newest
 * (last_seen), so that a re-sent stretch of one customer's events (a batch
 * retried, a session's clicks) is applied once too; the newest dedup_max
 * of them after a sweep, up to twice that between sweeps, and none once
 * the newest has left the window. Everything here is a function of the customer's
 * events, so a state read back after a crash decides as the one written
 * would have. */

/* The hash the ring and the table keep for an event's event_id (0: none). */
static uint64_t event_id_hash(const seg_event_t *ev)
{
    if (!ev->event_id_len) return 0;
    return seg__hash_fast(ev->event_id, ev->event_id_len) | 1; /* 0 marks an empty slot */
}

#define DD_SLOT(h, cap) ((uint32_t)((h) >> 32) & ((cap)-1))

static int dd_has(const seg_customer_t *c, uint64_t h, int64_t horizon)
{
    const struct seg_dedup_id *e = c->dedup_tab;
    uint32_t mask = c->dedup_cap - 1;
    for (uint32_t i = DD_SLOT(h, c->dedup_cap); e[i].h; i = (i + 1) & mask)
        if (e[i].h == h) return e[i].ts >= horizon;
    return 0;
}

/* Into a table with room: a second entry for h only moves its time on. */
static void dd_put(struct seg_dedup_id *e, uint32_t cap, uint32_t *n, uint64_t h, int64_t ts)
{
    uint32_t i = DD_SLOT(h, cap);
    for (; e[i].h; i = (i + 1) & (cap - 1))
        if (e[i].h == h) {
            if (ts > e[i].ts) e[i].ts = ts;
            return;
        }
    e[i].h = h;
    e[i].ts = ts;
    (*n)++;
}

static int dd_newest_first(const void *pa, const void *pb)
{
    const struct seg_dedup_id *a = pa, *b = pb;
    if (a->ts != b->ts) return a->ts > b->ts ? -1 : 1;
    return a->h > b->h ? -1 : a->h < b->h;
}

/* The table again, without what has left the window, the newest max if
 * more, with h at ts among them, at half load or less: in place when that
 * fits its size (the usual case: a customer's day of ids comes and goes
 * without a malloc per sweep), else in a table of the size it needs. */
static int dd_rebuild(const seg_params_t *p, seg_customer_t *c, uint64_t h, int64_t ts)
{
    struct seg_dedup_id *e = c->dedup_tab, stack[128], *live = stack;
    int64_t horizon = c->last_seen - p->dedup_window_ms;
    uint32_t n = 0, have = c->dedup_n + 1;
    if (have > sizeof stack / sizeof stack[0] && !(live = malloc((size_t)have * sizeof(*live))))
        return -1;
    for (uint32_t i = 0; e && i < c->dedup_cap; i++) {
        if (e[i].h == h && e[i].ts > ts) ts = e[i].ts; /* as dd_put */
        if (e[i].h && e[i].ts >= horizon && e[i].h != h) live[n++] = e[i];
    }
    live[n++] = (struct seg_dedup_id){h, ts};
    if (n > (uint32_t)p->dedup_max) {
        qsort(live, n, sizeof(*live), dd_newest_first);
        n = (uint32_t)p->dedup_max;
    }
    uint32_t cap = 16, used = 0; /* 16: a sweep per ~8 ids for a customer whose day holds ~4 */
    while (cap < 2 * n) cap *= 2;
    if (e && cap <= c->dedup_cap && c->dedup_cap <= 4 * cap) {
        cap = c->dedup_cap; /* it fits, and is not four times too large */
        memset(e, 0, (size_t)cap * sizeof(*e));
    } else if (!(e = calloc(cap, sizeof(*e)))) {
        if (live != stack) free(live);
        return -1;
    } else {
        free(c->dedup_tab);
    }
    int64_t newest = INT64_MIN;
    for (uint32_t i = 0; i < n; i++) {
        dd_put(e, cap, &used, live[i].h, live[i].ts);
        if (live[i].ts > newest) newest = live[i].ts;
    }
    if (live != stack) free(live);
    c->dedup_tab = e;
    c->dedup_cap = cap;
    c->dedup_n = used;
    c->dedup_newest = newest;
    return 0;
}

void seg_dedup_drop(seg_customer_t *c)
{
    free(c->dedup_tab);
    c->dedup_tab = NULL;
    c->dedup_n = c->dedup_cap = 0;
    c->dedup_newest = 0;
}

int seg_dedup_restore(const seg_params_t *p, seg_customer_t *c, uint64_t h, int64_t ts,
                      uint32_t cap)
{
    if (p->dedup_window_ms <= 0 || p->dedup_max <= 0 || !h) return 0; /* none kept */
    if (!c->dedup_tab) {
        if (cap & (cap - 1) || cap < 8 || cap > (1u << 24)) return -1;
        if (!(c->dedup_tab = calloc(cap, sizeof(*c->dedup_tab)))) return -1;
        c->dedup_cap = cap;
        c->dedup_n = 0;
    }
    if (cap != c->dedup_cap || (uint64_t)(c->dedup_n + 1) * 4 > (uint64_t)cap * 3)
        return -1; /* not what was written */
    if (!c->dedup_n || ts > c->dedup_newest) c->dedup_newest = ts;
    dd_put(c->dedup_tab, cap, &c->dedup_n, h, ts);
    return 0;
}

/* Keeps h, at ts within the window, in the table. Full (3/4 of its slots,
 * or twice dedup_max): swept, then cut to the newest dedup_max. -1: out of
 * memory (the id is forgotten early). */
static int dd_keep(const seg_params_t *p, seg_customer_t *c, uint64_t h, int64_t ts)
{
    if (!c->dedup_tab || (uint64_t)(c->dedup_n + 1) * 4 > (uint64_t)c->dedup_cap * 3 ||
        c->dedup_n + 1 > 2 * (uint32_t)p->dedup_max)
        return dd_rebuild(p, c, h, ts);
    if (ts > c->dedup_newest) c->dedup_newest = ts;
    dd_put(c->dedup_tab, c->dedup_cap, &c->dedup_n, h, ts);
    return 0;
}

/* 1 when ev repeats an id the customer remembers. Else ev's id takes the
 * ring's oldest slot, and the id it pushes out is left in *out (0: none)
 * and *out_ts for dedup_keep_out() once the event is applied: its table
 * line is asked for here and has the event's work to arrive. */
static int dedup_seen(const seg_params_t *p, seg_customer_t *c, const seg_event_t *ev,
                      uint64_t *out, int64_t *out_ts)
{
    *out = 0;
    uint64_t h = event_id_hash(ev);
    if (!h) return 0;
    for (int i = 0; i < SEG_DEDUP_N; i++)
        if (c->dedup[i] == h) return 1;
    /* an id that left the ring belongs to an event already applied, so at
     * or before last_seen: an event newer than that (a live stream's usual
     * next one) need not look, nor wait for the table's line */
    if (c->dedup_tab && ev->ts <= c->last_seen && dd_has(c, h, c->last_seen - p->dedup_window_ms))
        return 1;
    int at = c->dedup_pos;
    *out = c->dedup[at];
    *out_ts = (int64_t)c->dedup_min[at] * 60000 + 59999; /* its minute's last ms */
    c->dedup[at] = h;
    c->dedup_min[at] = (uint32_t)(ev->ts / 60000); /* ts in [0, year 9999]: fits */
    c->dedup_pos = (uint8_t)((at + 1) % SEG_DEDUP_N);
    if (*out && c->dedup_tab) __builtin_prefetch(&c->dedup_tab[DD_SLOT(*out, c->dedup_cap)]);
    return 0;
}

/* After the event: the id the ring pushed out (dedup_seen) into the table
 * while within the window. */
static void dedup_keep_out(const seg_params_t *p, seg_customer_t *c, uint64_t out, int64_t out_ts)
{
    int64_t horizon = c->last_seen - p->dedup_window_ms;
    /* a table all of whose ids have left the window (a customer back after
     * a quiet spell) matches nothing: not kept in memory and in every
     * checkpoint of the customer until it would fill */
    if (c->dedup_tab && c->dedup_newest < horizon) seg_dedup_drop(c);
    if (out && p->dedup_window_ms > 0 && p->dedup_max > 0 && out_ts >= horizon)
        (void)dd_keep(p, c, out, out_ts);
}

/* ---------------- apply ---------------- */

int seg_apply(seg_t *s, seg_customer_t *c, const seg_event_t *ev, int64_t W, seg_emit_fn emit,
              void *ud)
{
    const seg_params_t *p = &s->p;
    uint64_t out;
    int64_t out_ts;
    if (dedup_seen(p, c, ev, &out, &out_ts)) return 1;
    int was = c->assigned;
    if (was)
        while (seg_step_due(s, c, W, emit, ud)) {
        }
    seg_lifecycle_t before = (seg_lifecycle_t)c->lifecycle;
    int counted = s->m.ready && c->taught_epoch == s->m.epoch;
    uint32_t cat = ev->category_len ? seg__category_intern(s, ev->category, ev->category_len) : 0;
    seg__features_apply(p, c, ev, cat);
    if (ev->n_traits) traits_merge(c, ev);
    c->assigned = 1;

    int activity = (p->activity_mask >> ev->type) & 1u;
    if (activity && before == SEG_LC_LAPSED && c->last_activity >= W - p->lapsed_ms)
        c->reactivated_at = ev->ts;
    /* a brand-new customer whose first event is older than W starts at its
     * own time and steps forward, so no stage is skipped */
    int64_t We = was ? W : (ev->ts < W ? ev->ts : W);
    seg_lifecycle_t now = seg_lifecycle_at(p, c, We);
    if (now != before) {
        const char *why = before == SEG_LC_NONE       ? why_first
                          : now == SEG_LC_REACTIVATED ? why_return
                                                      : why_activity;
        lifecycle_change(s, c, now, ev->ts, W, why, emit, ud); /* decided at W (emitted_at) */
    }
    c->due = seg_lifecycle_next(p, c, We);
    /* a new customer's stages catch up with W first; its rules are then
     * evaluated once, at W, like everyone's at an event */
    if (!was)
        while (step_due(s, c, W, 0, emit, ud)) {
        }

    cluster_step(s, c, counted, ev->ts, W, emit, ud);
    rules_step(s, c, ev->ts, W, W, emit, ud);
    c->due = rule_due(s, c, W, c->due);
    dedup_keep_out(p, c, out, out_ts);
    return 0;
}

double seg_feature(const seg_t *s, const seg_customer_t *c, const char *name, int64_t W)
{
    int f = seg__feature_index(name, strlen(name));
    return f < 0 ? NAN : seg__feature_at(&s->p, c, f, W);
}
