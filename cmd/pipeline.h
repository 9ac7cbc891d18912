/* cmd/pipeline.h: the one place that sees stream, state and segmenter
 * together. A record goes in (bytes with its origin); it is decoded or
 * dead-lettered; the watermark moves; silent customers due before it change
 * first, in ts order; then the event is applied; changes go to the sink. */
#ifndef CMD_PIPELINE_H
#define CMD_PIPELINE_H

#include <stdint.h>
#include <stdio.h>
#include "config/config.h"
#include "segmenter/segmenter.h"
#include "state/store_mem.h"
#include "stream/codec.h"

#define PL_REASONS_MAX 32

/* Receives each encoded change event (key = customer id). */
typedef int (*pl_change_sink_fn)(void *ud, const seg_change_t *ch, const void *payload, size_t len);
/* Receives each dead letter: the original bytes and the reason. */
typedef int (*pl_dead_sink_fn)(void *ud, const void *payload, size_t len, const char *reason,
                               const char *topic, int32_t partition, int64_t offset);

typedef struct pl_stats {
    uint64_t records, decoded, applied, duplicates, dead;
    uint64_t skipped;    /* decoded, but outside [from, to) */
    uint64_t changes[3]; /* by seg_dim_t */
    const char *reason[PL_REASONS_MAX];
    uint64_t reason_n[PL_REASONS_MAX];
} pl_stats_t;

/* What the pipeline remembers of one input partition (a file is one). */
typedef struct pl_part {
    int64_t hi; /* largest accepted event time, INT64_MIN before any */
    /* A record more than input.max_future_skew ahead of its stream, kept
     * (a copy) until the partition's next record tells a producer's bad
     * clock (it is dead-lettered) from a quiet gap in the stream (the next
     * one lands near it: it is applied, then the next). NULL: none. */
    void *held;
    size_t held_len;
    int64_t held_ts, held_offset;
    int32_t held_partition;
    char *held_topic;
    void *held_key; /* its Kafka key, set by the caller (pl_part_hold_key) */
    size_t held_key_len;
} pl_part_t;

typedef struct pipeline {
    cfg_t *cfg;
    seg_t *seg;
    st_mem_t *store;
    seg_due_t due;
    int64_t W;
    int has_W;
    int live; /* emitted_at from the wall clock (run) or the watermark (replay) */
    int change_msgpack;
    strm_buf_t buf;
    pl_change_sink_fn on_change;
    void *change_ud;
    pl_dead_sink_fn on_dead;
    void *dead_ud;
    /* optional: called after each applied event with its customer */
    void (*on_applied)(void *ud, const seg_customer_t *c);
    void *applied_ud;
    pl_stats_t st;
    int sink_failed; /* a sink refused a change: stop, do not lose it */
    pl_part_t file;  /* the one partition of a file */
    /* run: W comes from the caller (pl_advance), computed over partitions;
     * an event ahead of W is applied at its own time for its customer. */
    int ext_W;
    int64_t ext_hi; /* run: newest event time over all partitions (INT64_MIN: none),
                       the reference for a partition's first record */
    int accepted;   /* the last pl_record applied an event (or a duplicate) */
    int decoded;    /* the last pl_record's own record is a valid event, in ev
                       (applied, a duplicate, or held as far ahead) */
    /* run: 0 when this process no longer owns the customer (its partition
     * was revoked): its due entry is dropped, and owns_ud remembers it. */
    int (*owns)(void *ud, const seg_customer_t *c);
    void *owns_ud;
    int64_t from, to; /* events outside [from, to) are skipped (default: none) */
    seg_event_t ev;
    seg_event_t held_ev; /* a held record, decoded again when it is applied */
} pl_t;

/* Builds the core from cfg->seg (moving its rules). */
int pl_init(pl_t *pl, cfg_t *cfg, char *err, size_t errlen);
void pl_free(pl_t *pl);

/* Decodes and applies one record; bad ones go to the dead sink. Returns 0,
 * or -1 if a sink failed (the caller stops: nothing is lost silently). */
int pl_record(pl_t *pl, const void *buf, size_t len, const char *topic, int32_t partition,
              int64_t offset);
/* One record of a batch: its bytes (valid for the call) and its offset. */
typedef struct pl_rec {
    const void *buf;
    size_t len;
    int64_t offset;
} pl_rec_t;
/* pl_record for each of n records of the file's partition, in order: the
 * same results, with each record decoded a little ahead of its turn so that
 * its customer is fetched from memory while the ones before are applied.
 * Stops at the first sink failure and returns -1. */
int pl_records(pl_t *pl, const pl_rec_t *recs, size_t n, const char *topic, int32_t partition);
/* The same for one record of a partition when W is the caller's (ext_W):
 * the future-time check is against the partition's own `hi`, which the
 * call then raises. */
int pl_record_part(pl_t *pl, pl_part_t *part, const void *buf, size_t len, const char *topic,
                   int32_t partition, int64_t offset);
void pl_part_init(pl_part_t *part);
/* The offset to commit for a partition whose next record is `next`: the
 * held record's while one is held (it is not applied yet). */
static inline int64_t pl_part_commit(const pl_part_t *part, int64_t next)
{
    return part->held ? part->held_offset : next;
}
/* Forgets the held record, if any (its partition was revoked or the run
 * stops: its offset was not committed, so it is read again). */
void pl_part_drop(pl_part_t *part);
/* No next record will decide the held one (end of input, the partition
 * idle, a replay's barrier): applied if the stream has caught up with it
 * meanwhile (other partitions moved W or their newest time), else
 * dead-lettered as future_ts. Returns -1 if a sink failed. */
int pl_part_end(pl_t *pl, pl_part_t *part);
/* After each record (partition, offset) with its Kafka key: when it is the
 * one held, a copy of its key is kept for its dead letter. */
void pl_part_hold_key(pl_part_t *part, int32_t partition, int64_t offset, const void *key,
                      size_t len);
/* The held record's key when partition and offset are the held record's,
 * else NULL. */
const void *pl_part_key_of(const pl_part_t *part, int32_t partition, int64_t offset, size_t *len);
/* Dead-letters a record that failed before decoding (framing). */
int pl_dead(pl_t *pl, const void *buf, size_t len, const char *reason, const char *topic,
            int32_t partition, int64_t offset);
/* Moves W forward (never back) and performs every silent change due before it. */
int pl_advance(pl_t *pl, int64_t W);
/* Gives a customer its first cluster (or a better one) now, at W. */
int pl_assign_cluster(pl_t *pl, seg_customer_t *c);
/* Puts a customer back in the due index (after its partition came back). */
int pl_due_restore(pl_t *pl, seg_customer_t *c);

/* Human summary: counts, segment sizes, cluster labels. */
void pl_summary(pl_t *pl, FILE *f, double seconds);
/* One CSV line per customer: id, lifecycle, cluster id and label, rules, totals. */
int pl_snapshot_csv(pl_t *pl, FILE *f);

#endif
