/* cmd/watermark.h: a consumed partition's state (part_t), and what the
 * watermark W may be given the partitions a process owns (CONTRACT §2) when
 * an assignment changes them. Pure: run.c owns the partitions, logs and
 * moves W; unit tests drive these alone. */
#ifndef CMD_WATERMARK_H
#define CMD_WATERMARK_H

#include <stdint.h>
#include "cmd/pipeline.h"
#include "stream/kafka.h"

typedef struct part {
    char *topic;
    int32_t partition;
    int owned;
    uint32_t gen;        /* assignments so far: an offset read in an older one is not stored */
    pl_part_t pp;        /* its newest event time, for W and the future check */
    int64_t w_floor;     /* the W its customers were stepped to when it was last given up
                            (here, or by the checkpoint's writer): INT64_MIN if none */
    int no_evidence;     /* taken over with neither: its first record may bring W back */
    double last_msg;     /* monotonic s of its last record (or assignment) */
    int64_t next_offset; /* last consumed + 1, -1 before any */
    uint64_t in;         /* records consumed */
    /* the last check with the broker that we had read all it holds */
    int checking, checked_ok;
    double check_sent; /* monotonic s the check in flight was queued */
    double checked_at;
    int64_t checked_next;
    int64_t ctl_off; /* next_offset at the last wall-clock advance of W (control topic) */
    /* records taken from the consumer and not yet applied, in offset order
     * (a ring), each with its event time: run.c applies the owned
     * partitions' records merged by event time */
    struct part_rec {
        strm_msg_t m;
        int64_t ts;
    } * q;
    int q_head, q_n, q_cap;
    int q_paused;       /* paused because its queue is full */
    int64_t taken_next; /* offset after the last record taken, -1 before any */
    int64_t taken_ts;   /* the newest event time taken, INT64_MIN before any */
    double taken_at;    /* monotonic s of the last record taken (or assignment) */
    double merge_wait;  /* monotonic s the merge began to wait for it, 0: not waiting */
} part_t;

/* What partition p allows W to be: its newest event time less the allowed
 * lateness, or the W its customers were already stepped to by an earlier
 * owner (who had it idle, say) if that is later. INT64_MIN: no evidence. */
int64_t wm_part_allows(const part_t *p, int64_t lateness);

/* After an assignment of tps[0..n) (the whole new assignment, or the
 * partitions an incremental one adds): W never goes back while a process
 * keeps its partitions, but one taken over may lag behind it, and a W ahead
 * of its unread records would make its customers look silent and step them
 * to at_risk or lapsed by mistake. Partitions owned and not in tps (kept
 * through an incremental assignment) record W as their floor; owned ones
 * with no evidence are marked (no_evidence: their first record decides).
 * Returns the smallest of W and what the other owned partitions allow. */
int64_t wm_assigned(part_t *parts, int n_parts, const strm_tp_t *tps, int n, int64_t W,
                    int64_t lateness);

#endif
