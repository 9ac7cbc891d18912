/* cmd/run.h: the daemon's shared state, between run.c (the loop, Kafka,
 * the delivery ledger, the watermark) and ckpt.c (Redis: loading customers,
 * checkpoints, resuming offsets). Only cmd/ sees it. */
#ifndef CMD_RUN_H
#define CMD_RUN_H

#include <stdint.h>
#include <uv.h>
#include "cmd/http.h"
#include "cmd/pipeline.h"
#include "cmd/watermark.h"
#include "stream/kafka.h"

#define BATCH_MAX        1024
#define BATCHES_PER_WAKE 16 /* then yield to the loop (deliveries, HTTP) */
#define TICK_MS          100
#define OUTQ_HIGH        200000 /* undelivered records: pause the consumer */
#define OUTQ_LOW         50000  /* ... and resume below this */
#define PAUSE_AFTER_S    1.0    /* a stall this long pauses the partitions */
#define DLQ_MAX_PAYLOAD  524288 /* Kafka's default message limit is ~1 MB */
#define STATS_EVERY_S    10.0

#define N_BUCKETS 4     /* batch-size histogram: le 1, 10, 100, 1000 */
#define HELD_HIGH 65536 /* records taken while applying waits */
#define PART_HIGH 8192  /* records waiting in one partition's queue: paused over this */
#define PART_LOW  2048  /* and resumed under this */

/* One consumed batch (or one watermark step): its change and dead-letter
 * records in flight, and the offsets it completes once they are delivered. */
typedef struct unit {
    struct unit *next;
    uint64_t seq;
    int pending;
    int closed;
    int n_offs, cap_offs;
    struct {
        int part;
        uint32_t gen; /* the partition's assignment it was read in */
        int64_t next;
    } * offs;
} unit_t;

typedef struct run {
    cfg_t cfg;
    pl_t pl;
    seg_event_t first_ev; /* scratch: a first record's event time (first_record) */
    uv_loop_t loop;
    uv_poll_t cpoll, ppoll;
    uv_timer_t tick;
    uv_idle_t more;
    /* at a stop: ends the loop when only broker queries are left (a query
     * librdkafka 2.0 lets run past its timeout while no broker answers) */
    uv_timer_t stop_timer;
    int stop_timer_on; /* initialised (closed when the loop ends) */
    int checks;        /* idle checks (broker queries) on the thread pool */
    /* sighup is started only when SIGHUP was not ignored at start (nohup) */
    uv_signal_t sigterm, sigint, sighup;
    http_server_t *http;
    strm_consumer_t *cons;
    strm_producer_t *prod;
    char instance[128];

    part_t *parts;
    int n_parts, cap_parts, last_part;
    int32_t *owner; /* customer handle -> part index */
    uint64_t cap_owner;
    uint32_t *dormant; /* handles whose partition was revoked */
    size_t n_dormant, cap_dormant;
    int cur_part;

    unit_t *head, *tail, *cur;
    const strm_msg_t *cur_msg;

    int paused, stopping, exit_code, more_on;
    int stalled;    /* the producer queue is over OUTQ_HIGH: applying waits */
    int queue_more; /* the last take() stopped at its limit */
    double stalled_since;
    uint64_t stalls;
    int64_t idle_since_wall, idle_base; /* all partitions idle since, W then */
    /* when a partition last woke from idle: the others' caught-up
     * confirmations from before it no longer count (records may be on
     * their way to them too, and must not find W already past them) */
    double wake_at;
    /* the last wall-clock advance of W, to record in watermark.control_topic */
    int64_t ctl_W;
    int ctl_dirty;
    double ctl_at;
    uint64_t last_tick_ns;

    /* metrics */
    uint64_t batches, batch_bucket[N_BUCKETS + 1];
    double batch_sum;
    uint64_t produced, delivered, dlq_out, queue_full, pauses, rebalances, consumer_errors;
    /* applied records keyed otherwise than by their customer id: safe in one
     * process, not when several share the state (run.c key_check) */
    uint64_t unkeyed, key_other;
    int key_warned;
    double loop_lag, loop_lag_max;
    /* /healthz: the last probe of the brokers (a metadata request off the
     * loop, every HEALTH_PROBE_S) */
    uv_work_t probe;
    int probing, kafka_ok, probe_ok; /* probe_*: the worker's, copied when done */
    double probe_at;
    char kafka_err[160], probe_err[160];
    double started, last_stats;
    uint64_t last_stats_records;

    /* records consumed and not yet applied wait in their partition's queue
     * (part_t.q), so that group events are always served while applying
     * waits for Redis, and records are applied merged by event time */
    int buffered;         /* records in the partitions' queues */
    int merge_blocked;    /* the last merge stopped for a partition with records to come */
    strm_msg_t *take_buf; /* BATCH_MAX: what one strm_consumer_batch() hands out */
    strm_msg_t *batch;    /* BATCH_MAX: the merged records applied together */
    int *batch_part;      /* the partition of each */
    int batch_n;          /* a batch merged and waiting for its customers (Redis), 0: none */
    int *m_cur;           /* per partition: records of its queue in the batch so far */
    signed char *m_wait;  /* per partition: -1 not asked yet in this merge, else must_wait() */
    int cap_m;
    seg_event_t take_ev;         /* scratch: a taken record's event time */
    uint64_t merge_waits;        /* merges held back by a partition with records to come */
    uint64_t unit_seq, done_seq; /* units opened / completed in order */
    int stop_wait;               /* stopping: waiting for the final checkpoint */

    /* Redis mode (redis.url set); NULL redis: state only in this process */
    struct ckpt_state *ck;
} run_t;

/* run.c, for ckpt.c */
void run_begin_stop(run_t *r, int code);
void run_finish_stop(run_t *r);
void run_kick(run_t *r);
/* Index of a known partition, or -1. */
int find_part_ext(run_t *r, const char *topic, int32_t partition);
/* After an assignment (and the partitions' newest event times and W floors
 * are set): W comes back to what the owned partitions allow, when one of
 * them lags behind it. */
void run_watermark_assigned(run_t *r, const strm_tp_t *tps, int n);
/* Records that customer `handle` belongs to partition index part. */
int run_own(run_t *r, uint64_t handle, int part);
/* Queues a change event (key: the customer id; instance: the process that
 * decided it, for the segstream_instance header) in the current unit. */
int run_produce_change(run_t *r, const void *key, size_t key_len, const char *instance,
                       size_t instance_len, const void *p, size_t len);
/* A ledger unit for changes made outside a consumed batch. */
unit_t *run_unit_open(run_t *r);
void run_unit_close(run_t *r);
int run_assign(run_t *r, strm_tp_t *tps, int n, int assigned);

/* ckpt.c: state in Redis, with exactly-once checkpoints (see ckpt.c) */
int ck_start(run_t *r, char *err, size_t errlen);
/* Before applying ms[0..n): 0 when every customer is at hand, 1 when they
 * are being loaded (run_kick() follows), -1 when Redis is away. */
int ck_prefetch(run_t *r, const strm_msg_t *ms, int n);
int ck_blocked(run_t *r);     /* applying must wait: loading, Redis away, rebalancing */
int ck_rebalancing(run_t *r); /* a revoke or an assignment is being settled */
int ck_usable(run_t *r, const seg_customer_t *c); /* 0: its state here is stale */
void ck_dirty(run_t *r, const seg_customer_t *c);
/* A cluster change of c (payload p, encoded): held in the outbox of c's
 * partition, written by the next checkpoint and produced once that lands. */
int ck_outbox(run_t *r, const seg_customer_t *c, const void *p, size_t len);
void ck_tick(run_t *r);
void ck_units_done(run_t *r);
/* Takes over a rebalance; returns 1 when it will call run_assign() itself. */
int ck_rebalance(run_t *r, int assigned, strm_tp_t *tps, int n);
/* Stopping: every change is delivered; write the last checkpoint, then
 * run_finish_stop(). */
void ck_stop(run_t *r);
void ck_advance(run_t *r); /* W moved: load customers due from Redis */
int ck_metrics(run_t *r, strm_buf_t *b);
/* Appends a line to out when the state cannot be kept (Redis away). */
void ck_health(run_t *r, strm_buf_t *out);
void ck_free(run_t *r);

#endif
