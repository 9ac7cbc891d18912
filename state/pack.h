/* state/pack.h: what a customer and the model look like at rest (CONTRACT
 * §4). A customer's complete state packs into one self-describing msgpack
 * map (the `state` field of its hash) plus a few readable hash fields; the
 * model packs into the `seg:model` string. Unpacking is bounded: it never
 * allocates more than the input's size, never recurses on nesting, and
 * rejects truncated or mistyped input with a reason. */
#ifndef ST_PACK_H
#define ST_PACK_H

#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>
#include "segmenter/segmenter.h"

#define ST_PACK_VERSION 1 /* the "v" of both maps */

/* Appends c's state (everything but id and handle: the key holds the id) to
 * out as one msgpack map. Category ids are written as names and rule bits as
 * rule names, so the state survives a restart and a reordered rule list.
 * Returns 0, or -1 when out of memory (out then holds a partial map). */
int st_pack_customer(const seg_t *s, const seg_customer_t *c, msgpack_sbuffer *out);

/* Fills c (already seg_customer_init'ed with its id and handle) from
 * data[0..len). Unknown keys are skipped (forward compatible), known keys
 * must have their type; categories are re-interned in s, rule names mapped
 * to s's current rules (unknown names are dropped). A cluster id the model
 * in s does not know (load the model first) resets the customer's cluster,
 * which is then assigned afresh at its next event. Returns 0, or -1 with a
 * reason in err; on error c may be partly filled (its traits are changed
 * only on success): the caller clears it with seg_customer_clear().
 * Trailing bytes are an error. */
int st_unpack_customer(seg_t *s, const void *data, size_t len, seg_customer_t *c, char *err,
                       size_t errlen);

/* Appends the model of s (`seg:model`), one map: format "v", model
 * "version" (the one change events carry), "k", "ready", "epoch",
 * "next_id", normalisation "mean"/"scale" [10], "clusters" [k] of {id, c
 * [10], n, recent, var [10], label}; and, so that it keeps learning exactly
 * where it stopped: "updates", "updates_since_split",
 * "updates_since_refresh", "since" [k], "since_n", "rng", "seen_sample",
 * "sample" (the warm-up vectors, only while not seeded) and "res" ([key,
 * vector] pairs: the customer sample periodic refreshes re-cluster, about
 * 200 KB at most). The recent-share rate follows the configuration and is
 * not stored. Returns 0, or -1 when out of memory. */
int st_pack_model(const seg_t *s, msgpack_sbuffer *out);

/* Replaces the model of s with data[0..len). The model must have the k of
 * s's parameters. Labels are restored as written (they are recomputed only
 * when absent). Not restored: the handles of customers seen during warm-up
 * (seg_take_pending), which are per process: those customers are assigned
 * at their next event instead; labels of retired cluster ids. Returns 0, or
 * -1 with a reason in err, leaving the model of s unchanged. */
int st_unpack_model(seg_t *s, const void *data, size_t len, char *err, size_t errlen);

/* The readable fields of a customer's hash besides `state` (CONTRACT §4):
 * lifecycle, cluster, cluster_label, rules, first_seen, last_seen, events,
 * orders, revenue, updated. A value never truncates: 64 rule names of at
 * most 63 bytes and their commas fit. */
#define ST_FIELDS          10
#define ST_FIELD_VALUE_MAX 4096
typedef struct st_field {
    const char *name; /* static */
    char value[ST_FIELD_VALUE_MAX];
    size_t len; /* strlen(value) */
} st_field_t;

/* Writes the fields of c into out: lifecycle name ("" before the first
 * event), cluster id ("-1" before the first assignment) and its label,
 * comma-separated names of the rules that hold, first_seen and last_seen in
 * ms, events, orders, revenue (shortest exact decimal) and updated_ms.
 * Returns the count (ST_FIELDS). */
int st_customer_fields(const seg_t *s, const seg_customer_t *c, int64_t updated_ms,
                       st_field_t out[ST_FIELDS]);

/* Checks that data[0..len) starts with one complete msgpack value whose
 * every count and length fits in the bytes left, walking nesting without
 * recursion. On 0, *used is the value's size, and msgpack_unpack_next() on
 * data[0..*used) allocates at most a small multiple of *used. -1 when
 * truncated or malformed. */
int st_msgpack_check(const void *data, size_t len, size_t *used);

#endif
