/* segmenter/segmenter.h: the public interface of the pure core. Events in,
 * segment decisions out: decayed features, streaming centroids, lifecycle,
 * rules, and the due-time index for silent customers. libc and libm only:
 * never reads a clock, never does I/O. Callers own customer storage. */
#ifndef SEG_SEGMENTER_H
#define SEG_SEGMENTER_H

#include <stdint.h>
#include <stddef.h>
#include "segmenter/event.h"

#define SEG_DAY_MS    86400000LL
#define SEG_K_MAX     32
#define SEG_DIM       10 /* length of the normalised feature vector */
#define SEG_RULES_MAX 64
#define SEG_NO_TIME   INT64_MIN
#define SEG_NEVER     INT64_MAX

/* ---------- lifecycle ---------- */
typedef enum {
    SEG_LC_NONE = 0,
    SEG_LC_NEW,
    SEG_LC_ACTIVE,
    SEG_LC_AT_RISK,
    SEG_LC_LAPSED,
    SEG_LC_REACTIVATED,
    SEG_LC__COUNT
} seg_lifecycle_t;
extern const char *const seg_lifecycle_names[SEG_LC__COUNT]; /* [0] is NULL */

/* ---------- per-customer state ---------- */
#define SEG_TOPCAT  3
#define SEG_DEDUP_N 8
enum { SEG_HOUR_NIGHT, SEG_HOUR_MORNING, SEG_HOUR_AFTERNOON, SEG_HOUR_EVENING, SEG_HOUR__COUNT };

/* Decayed counters. Each group decays with its own half-life; all are
 * expressed as of seg_customer_t.decay_ts. */
typedef struct seg_features {
    /* activity half-life */
    double activity; /* accepted events */
    double visits;   /* sessions (explicit or inferred by a 30 min gap) */
    double views;    /* page and product views, searches */
    double email;    /* email opens + clicks */
    double hour[SEG_HOUR__COUNT];
    double weekend;
    double channel[SEG_CH__COUNT]; /* [SEG_CH_NONE] counts events with no channel */
    /* purchase half-life */
    double carts;
    double purchases;
    double monetary;
    double discounted; /* purchases with a discount */
    /* affinity half-life: top categories by decayed weight */
    uint32_t cat_id[SEG_TOPCAT]; /* 0: empty slot; see seg_category_name() */
    double cat_w[SEG_TOPCAT];
} seg_features_t;

typedef struct seg_customer {
    char id[SEG_ID_MAX + 1];
    uint8_t id_len;
    uint8_t lifecycle; /* seg_lifecycle_t */
    uint8_t assigned;  /* 1 once the first event was applied */
    int32_t cluster;   /* stable cluster id, -1 before the first assignment */
    uint64_t handle;   /* caller's stable handle (due index key) */
    int64_t first_seen, last_seen, last_activity, reactivated_at, decay_ts, last_change_ts;
    int64_t due;        /* next silent change (lifecycle or rule), SEG_NEVER when none */
    int64_t due_queued; /* caller's: key of its live due-index entry, SEG_NEVER when none */
    uint64_t events, orders;
    /* change sequences, one per dimension, so that lifecycle and rule ids
     * never depend on the model (which may decide differently when events
     * are re-applied after a crash) */
    uint64_t seq, seq_cluster, seq_rule;
    double revenue;
    uint64_t rules;      /* bit i: rule i holds */
    uint64_t rules_seen; /* bit i: rule i has been evaluated (first assignment done) */
    seg_features_t f;
    uint64_t dedup[SEG_DEDUP_N]; /* hashes of the last producer event_ids */
    uint8_t dedup_pos;
    /* the event time of each in minutes (ts / 60 000, rounded down: half
     * the bytes), so that one leaving the ring can be kept in dedup_tab
     * while it is within seg_params_t.dedup_window_ms (to the minute) */
    uint32_t dedup_min[SEG_DEDUP_N];
    uint8_t warmup_listed; /* in the model's list of customers to assign at seeding */
    uint32_t taught_epoch; /* model epoch in which its vector was added, 0: none */
    uint64_t id_hash;      /* seg__hash of id, for the model's customer sample */
    /* the normalised vector last added to the model (valid while taught_epoch
     * is the model's epoch): what the next event removes, not recomputed */
    double taught[SEG_DIM];
    char *traits; /* "k\0v\0k\0v\0\0", malloc'd, NULL when none; owned */
    /* the event time each pair's value came with, in the blob's order
     * (INT64_MIN: not known, from a state written before it was kept);
     * in the same block as traits, after it: set exactly when traits is,
     * never freed apart */
    int64_t *traits_ts;
    /* ids older than the ring's 8 still within the dedup window: an
     * open-addressing table of dedup_cap slots (a power of two; linear
     * probing on the hash's high bits; h 0 marks a free slot), dedup_n of
     * them used; NULL when none; owned (seg_customer_clear frees it). An
     * entry older than last_seen - window is never a match, whether or not
     * it has been swept out yet; once the newest is (dedup_newest, the
     * largest ts in it: not stored, recomputed when read back), the table
     * goes. */
    struct seg_dedup_id {
        uint64_t h;
        int64_t ts;
    } * dedup_tab;
    uint32_t dedup_n, dedup_cap;
    int64_t dedup_newest;
} seg_customer_t;

/* A state being read back: puts id hash h (event at ts) into c's table of
 * cap slots, the writer's size, so that the table, and every later sweep,
 * is the one the writer had; nothing when p keeps no ids. -1: out of
 * memory, or not a table the writer could have made. */
struct seg_params;
int seg_dedup_restore(const struct seg_params *p, seg_customer_t *c, uint64_t h, int64_t ts,
                      uint32_t cap);
/* Frees c's table of ids beyond the ring (none after). */
void seg_dedup_drop(seg_customer_t *c);

void seg_customer_init(seg_customer_t *c, const char *id, size_t id_len, uint64_t handle);
/* Frees what the customer owns (traits), not the struct itself. */
void seg_customer_clear(seg_customer_t *c);
/* Latest value of a trait, or NULL. */
const char *seg_customer_trait(const seg_customer_t *c, const char *key);
/* Replaces the traits with a copy of blob ("k\0v\0...\0", NULL or "" for
 * none) and of ts, one time per pair (NULL: not known). -1: out of memory,
 * nothing changed. */
int seg_customer_set_traits(seg_customer_t *c, const char *blob, const int64_t *ts);

/* ---------- configuration of the core ---------- */
typedef struct seg_ruleset seg_ruleset_t;

/* Local time for the time-of-day and weekday features: from each span's
 * start (UTC ms) on, local time is UTC + off_s seconds. The first span
 * starts at INT64_MIN; spans ascend. config/ fills it from a zone name
 * (tz database) or a fixed offset; none: UTC. */
#define SEG_TZ_MAX 400
typedef struct seg_tz_span {
    int64_t from_ms;
    int32_t off_s;
} seg_tz_span_t;

typedef struct seg_params {
    double half_life_activity_days; /* visits, views, email, time of day, channels */
    double half_life_purchase_days; /* carts, purchases, monetary, discounts */
    double half_life_affinity_days; /* category affinity */
    int64_t new_ms;                 /* `new` while first_seen >= W - new_ms */
    int64_t at_risk_ms;             /* `at_risk` once last_activity < W - at_risk_ms */
    int64_t lapsed_ms;              /* `lapsed` once last_activity < W - lapsed_ms */
    int64_t reactivated_ms;         /* `reactivated` for this long after a return */
    uint32_t activity_mask;         /* bit per seg_evtype_t that counts as activity */
    int64_t session_gap_ms;         /* inferred visit boundary */
    int k;                          /* clusters */
    int warmup;                     /* vectors sampled before k-means++ seeding */
    int min_events;                 /* a customer's events before it teaches the model */
    double hysteresis;              /* relative distance margin before a customer moves */
    double lr_floor;                /* decay floor of the centroid learning rate */
    double dying_share;             /* recent share under which a cluster is split away */
    int64_t dying_window;           /* updates over which the recent share is measured */
    uint64_t seed;
    int64_t dedup_window_ms; /* producer event_ids remembered this long (behind the newest
                                event), beyond the last SEG_DEDUP_N; 0: the last only */
    int dedup_max;           /* at most this many of those per customer (the newest) */
    int frozen;              /* 1: the model never moves: customers are assigned to its centroids
                                (with hysteresis), nothing is learned, seeded, split or refreshed */
    seg_ruleset_t *rules;    /* owned; NULL: no rules */
    int tz_n;                /* spans in tz; 0: UTC (last: read once per event) */
    seg_tz_span_t tz[SEG_TZ_MAX];
} seg_params_t;

/* Defaults that work on one machine (CONTRACT §2). */
void seg_params_default(seg_params_t *p);
void seg_params_clear(seg_params_t *p);
/* Checks ranges; on error writes "key: reason" into err and returns -1. */
int seg_params_validate(const seg_params_t *p, char *err, size_t errlen);

/* Adds a rule: `conds` are strings like "monetary > 100", "orders >= 3",
 * "country in [GB, IE]", "top_category == books". any=0: all must hold.
 * Returns -1 with a reason in err (naming the condition) on a bad rule. */
int seg_params_add_rule(seg_params_t *p, const char *name, int any, const char *const *conds,
                        int n_conds, char *err, size_t errlen);
int seg_rules_count(const seg_ruleset_t *rs);
const char *seg_rule_name(const seg_ruleset_t *rs, int i);

/* Names a rule condition may use, with a one-line meaning, NULL-terminated. */
extern const char *const seg_feature_names[];

/* Levenshtein distance, for "did you mean" hints (rules here, keys in
 * config/); SIZE_MAX for a name over 128 bytes. */
size_t seg_edit_distance(const char *a, const char *b);

/* ---------- the model: streaming centroids ---------- */
typedef struct seg_cluster {
    int32_t id; /* stable: never reused for another centroid */
    double c[SEG_DIM];
    double n;      /* points absorbed (learning rate 1/n, floored) */
    double recent; /* exponentially weighted share of recent assignments */
    double var[SEG_DIM];
    char label[96];
} seg_cluster_t;

typedef struct seg_model {
    int k;
    int ready; /* seeded */
    uint64_t version;
    uint64_t updates;
    uint64_t updates_since_split;
    uint32_t since[SEG_K_MAX]; /* assignments since the recent shares were last folded */
    uint32_t since_n;
    double recent_rate; /* weight of one fold: 1024 / dying_window */
    int32_t next_id;
    double mean[SEG_DIM], scale[SEG_DIM]; /* normalisation */
    seg_cluster_t cl[SEG_K_MAX];
    /* a uniform sample of customers (the cap_res smallest id hashes, a KMV
     * sample) with their latest normalised vectors, for periodic refreshes */
    double (*res)[SEG_DIM];
    uint64_t *res_key;
    int *res_heap;    /* max-heap of slots by key */
    int32_t *res_tab; /* open addressing: slot + 1, 0 empty, -1 deleted */
    int n_res, cap_res, tab_cap, tab_used;
    uint64_t updates_since_refresh;
    uint32_t epoch; /* changes whenever centroids are replaced wholesale */
    /* warm-up sample (vectors before normalisation) */
    int n_sample, cap_sample;
    uint64_t seen_sample;
    double (*sample)[SEG_DIM];
    uint64_t *pending; /* handles of customers seen during warm-up */
    int n_pending, cap_pending;
    uint64_t rng;
} seg_model_t;

/* ---------- changes out ---------- */
typedef enum { SEG_DIM_LIFECYCLE, SEG_DIM_CLUSTER, SEG_DIM_RULE } seg_dim_t;

typedef struct seg_change {
    const seg_customer_t *cust;
    seg_dim_t dim;
    int rule;              /* rule index for SEG_DIM_RULE */
    const char *rule_name; /* for SEG_DIM_RULE */
    const char *from;      /* NULL: first assignment */
    const char *to;
    int32_t from_id, to_id; /* cluster ids (-1: none) */
    int64_t ts;             /* event time of the change */
    int64_t watermark;      /* W when it was decided */
    uint64_t seq;           /* per-customer change sequence */
    const char *reason;
    uint64_t model_version;
    double recency_days;
    uint64_t orders;
    double monetary;
    /* from, to and reason go into a JSON string as they are (each
     * seg__json_plain, checked when they were made): the writer copies
     * them without looking at each byte. 0: escape as usual. */
    uint8_t plain;
} seg_change_t;

typedef void (*seg_emit_fn)(void *ud, const seg_change_t *ch);

/* Writes the deterministic event id "<customer>:<dimension>:<seq>". */
int seg_change_id(const seg_change_t *ch, char *buf, size_t len);
/* "lifecycle", "cluster" or "rule:<name>" */
int seg_change_dimension(const seg_change_t *ch, char *buf, size_t len);

/* ---------- the engine ---------- */
typedef struct seg seg_t;

/* Takes ownership of p->rules. Returns NULL with a reason on invalid params. */
seg_t *seg_new(seg_params_t *p, char *err, size_t errlen);
void seg_free(seg_t *s);
const seg_params_t *seg_params(const seg_t *s);
seg_model_t *seg_model(seg_t *s);

/* Applies one accepted event to customer c at watermark W (W >= every due
 * change already stepped; normally W = max(previous W, ev->ts)). Emits the
 * changes it causes, in order. Returns 0, or 1 when ev repeats a producer
 * event_id already applied (nothing changes). */
int seg_apply(seg_t *s, seg_customer_t *c, const seg_event_t *ev, int64_t W, seg_emit_fn emit,
              void *ud);

/* Performs the customer's next silent change if it is due before W (a
 * boundary equal to W has not passed). Returns 1 when it changed something,
 * 0 when nothing is due. c->due is updated either way. */
int seg_step_due(seg_t *s, seg_customer_t *c, int64_t W, seg_emit_fn emit, void *ud);

/* Stage of c at watermark W, and the first boundary after which it differs
 * (SEG_NEVER when none): pure functions of the customer's times. */
seg_lifecycle_t seg_lifecycle_at(const seg_params_t *p, const seg_customer_t *c, int64_t W);
int64_t seg_lifecycle_next(const seg_params_t *p, const seg_customer_t *c, int64_t W);

/* Handles of customers first seen during warm-up, to be re-assigned with
 * seg_refresh_cluster() once the model is seeded. Cleared by the call. */
int seg_take_pending(seg_t *s, uint64_t **handles);
/* Assigns c's cluster from its current features (no centroid update). */
void seg_refresh_cluster(seg_t *s, seg_customer_t *c, int64_t W, seg_emit_fn emit, void *ud);

/* Feature value by name at watermark W (see seg_feature_names); NAN if unknown. */
double seg_feature(const seg_t *s, const seg_customer_t *c, const char *name, int64_t W);
/* The raw (unnormalised) clustering vector of c. */
void seg_vector(const seg_params_t *p, const seg_customer_t *c, double out[SEG_DIM]);
extern const char *const seg_vector_names[SEG_DIM];

/* Category dictionary (process-wide names interned by the engine). */
const char *seg_category_name(const seg_t *s, uint32_t id);
/* Label of cluster `id`: the live centroid's, or for a retired id the last
 * one published in a change (kept by id for the process's life); NULL when
 * unknown. */
const char *seg_cluster_label(const seg_t *s, int32_t id);

/* Segment sizes, kept current from the changes emitted. */
typedef struct seg_sizes {
    int64_t lifecycle[SEG_LC__COUNT];
    int64_t *cluster; /* by cluster id, n_cluster entries */
    int32_t n_cluster;
    int64_t rule[SEG_RULES_MAX];
    int64_t customers;
} seg_sizes_t;
const seg_sizes_t *seg_sizes(const seg_t *s);

/* ---------- centroids alone (used by seg_apply; public for benchmarks) ---------- */
int seg_model_init(seg_model_t *m, int k, int warmup, uint64_t seed);
void seg_model_clear(seg_model_t *m);
/* Seeds with k-means++ plus a few Lloyd passes over the given normalised
 * points. */
void seg_model_seed(seg_model_t *m, const double (*pts)[SEG_DIM], int n);
/* Nearest slot to normalised x (squared distance in *d2 if not NULL). */
int seg_model_nearest(const seg_model_t *m, const double x[SEG_DIM], double *d2);
/* One online k-means step for normalised x; returns the slot updated.
 * Every 1024 updates it folds the counts into each cluster's recent share. */
int seg_model_update(seg_model_t *m, const double x[SEG_DIM], double lr_floor);
/* Replaces dying clusters by splitting the largest; returns how many. */
int seg_model_split_dying(seg_model_t *m, double dying_share, int64_t window);
void seg_model_label(seg_model_t *m);
/* Offers customer `key` (a hash of its id) with its current vector to the
 * customer sample; a customer in the sample keeps its latest vector. */
void seg_model_observe(seg_model_t *m, uint64_t key, const double x[SEG_DIM]);
/* Adds x to / removes x from slot j's mean (sequential k-means over the
 * customers' current vectors; the rate never falls below lr_floor). */
void seg_model_add(seg_model_t *m, int j, const double x[SEG_DIM], double lr_floor);
void seg_model_remove(seg_model_t *m, int j, const double x[SEG_DIM]);
/* Counts one point for slot j (recent shares, split and refresh timing). */
void seg_model_tick(seg_model_t *m, int j);
/* Re-clusters the recent sample from scratch (best of n_init k-means++
 * runs); adopts the result when its inertia beats the current centroids'
 * by more than `gain` (e.g. 0.05), keeping the ids of centroids that stay
 * close. Escapes the local minima online k-means settles in. Returns 1 when
 * the model changed. */
int seg_model_refresh(seg_model_t *m, int n_init, double gain);
int seg_model_slot(const seg_model_t *m, int32_t id); /* -1 when retired */

/* ---------- the due-time index ---------- */
typedef struct seg_due_entry {
    int64_t due;
    uint64_t handle;
} seg_due_entry_t;
typedef struct seg_due_heap {
    seg_due_entry_t *h;
    size_t n, cap;
} seg_due_heap_t;
typedef struct seg_due_bucket {
    seg_due_entry_t *v;
    uint32_t n, cap;
} seg_due_bucket_t;
/* A calendar queue (see due.c): entries of the current bucket in a small
 * heap, the next buckets unsorted in a ring, the far future in a heap. */
typedef struct seg_due {
    seg_due_heap_t front, far;
    seg_due_bucket_t *ring;
    int64_t cur;   /* bucket number of the front (due >> SEG_DUE_SHIFT) */
    size_t ring_n; /* entries in the ring */
    size_t n;      /* entries in all */
    int failed;    /* out of memory once: the index is no longer whole */
} seg_due_t;
void seg_due_init(seg_due_t *d);
void seg_due_clear(seg_due_t *d);
int seg_due_push(seg_due_t *d, int64_t due, uint64_t handle);
/* Smallest entry (ties: smallest handle): 1, 0 when empty, -1 when out of
 * memory. Stale entries are the caller's to skip: compare with the
 * customer's current due. Pops only after a peek that returned 1. */
int seg_due_peek(seg_due_t *d, seg_due_entry_t *out);
void seg_due_pop(seg_due_t *d);

#endif
