/* stream/kafka.h: segstream's Kafka clients, wrapping librdkafka so that no
 * other folder includes it. A consumer in a group and a producer with
 * delivery reports, both meant to be driven from an event loop: each
 * exposes a file descriptor that becomes readable (on an edge: empty to
 * non-empty) when it has something to serve. Nothing here blocks unless its
 * name says so (flush, close, commit_sync). */
#ifndef STRM_KAFKA_H
#define STRM_KAFKA_H

#include <stddef.h>
#include <stdint.h>

/* Client settings: the bootstrap list, then `key=value` librdkafka
 * properties applied after segstream's own defaults. A key prefixed with
 * `consumer.` or `producer.` applies to that client only (prefix removed). */
typedef struct strm_kopts {
    const char *brokers;
    const char *group_id;     /* consumers only */
    const char *client_id;    /* optional */
    const char *const *props; /* key, value, key, value, ... */
    int n_props;              /* number of pairs */
    /* optional, one per pair: where it was set ("FILE:LINE", an environment
     * variable), named first in a refused property's error */
    const char *const *origins;
    /* librdkafka's own log lines (level: syslog 0..7), from its threads;
     * NULL: librdkafka prints them to stderr itself */
    void (*log)(int level, const char *facility, const char *message);
} strm_kopts_t;

/* Checks o's properties as the consumer and the producer would take them
 * (consumer./producer. prefixes included), without making a client, so
 * that a bad one is said before anything is read or written: 0, or -1
 * with the first refused one in err, named with its origin. */
int strm_kopts_check(const strm_kopts_t *o, char *err, size_t errlen);

/* One consumed record, valid until strm_msgs_release(). */
typedef struct strm_msg {
    const void *payload;
    size_t len;
    const void *key;
    size_t key_len;
    const char *topic;
    int32_t partition;
    int64_t offset;
    int64_t timestamp; /* the record's timestamp (ms), -1 if none */
    const char *error; /* set for a consumer error (payload then meaningless) */
    int error_fatal;
    int eof;     /* reader only: with error set, the end of the partition (as it was when
                    fetched) is reached at `offset`, the next offset to read */
    int dropped; /* set by the caller: not to be applied (its partition was revoked) */
    void *rk_msg_;
} strm_msg_t;

typedef struct strm_tp {
    const char *topic;
    int32_t partition;
    int64_t offset; /* on assignment: where to start; < 0 means the group's committed offset.
                       The callback may set it (a process that kept its own state resumes
                       where that state ends, not where the group last committed). */
} strm_tp_t;

/* ---------------- consumer ---------------- */
typedef struct strm_consumer strm_consumer_t;

/* Called from strm_consumer_batch() (on the caller's thread) when the group
 * assigns or revokes partitions. Returns 0 to have the change applied right
 * after it returns, or 1 to apply it later with strm_consumer_assign() (the
 * group waits, within max.poll.interval.ms: for example while a checkpoint
 * is written, or while start offsets are read from a store). */
typedef int (*strm_rebalance_fn)(void *ud, int assigned, strm_tp_t *tps, int n);

strm_consumer_t *strm_consumer_new(const strm_kopts_t *o, const char *const *topics, int n_topics,
                                   strm_rebalance_fn cb, void *ud, char *err, size_t errlen);
/* Readable when records or group events wait; drain it with
 * strm_consumer_drain_fd() and then call strm_consumer_batch() until 0. */
int strm_consumer_fd(const strm_consumer_t *c);
void strm_consumer_drain_fd(strm_consumer_t *c);
/* Up to max records without waiting; also serves group events (rebalance
 * callbacks). Returns the count, or -1 on a fatal error (message in err). */
int strm_consumer_batch(strm_consumer_t *c, strm_msg_t *out, int max, char *err, size_t errlen);
void strm_msgs_release(strm_msg_t *msgs, int n);
/* Applies a deferred rebalance: assigns tps (from their offsets when >= 0,
 * STRM_OFFSET_BEGINNING for the start, else the committed offset), or
 * revokes them when assigned is 0. */
#define STRM_OFFSET_BEGINNING (-2)
int strm_consumer_assign(strm_consumer_t *c, const strm_tp_t *tps, int n, int assigned);
/* Pauses or resumes every assigned partition (backpressure). */
int strm_consumer_pause(strm_consumer_t *c, int pause);
/* Pauses or resumes one partition: a pause drops what librdkafka fetched of
 * it and not yet handed out; fetching resumes after the last record handed
 * out. strm_consumer_pause(c, 0) resumes it too. */
int strm_consumer_pause_one(strm_consumer_t *c, const char *topic, int32_t partition, int pause);
/* Marks offsets up to `next_offset` (exclusive) of one partition as done;
 * they are committed in the background (auto-commit) and on close. */
int strm_consumer_store(strm_consumer_t *c, const char *topic, int32_t partition,
                        int64_t next_offset);
/* 1 when the group took the assignment away (a session lost, say). */
int strm_consumer_assignment_lost(strm_consumer_t *c);
/* 1 when the group rebalances incrementally (the cooperative protocol: each
 * assignment and revoke names only the partitions that change), 0 when
 * each assignment is the whole one (eager). */
int strm_consumer_cooperative(strm_consumer_t *c);
/* Commits the stored offsets now, in the background. */
int strm_consumer_commit_async(strm_consumer_t *c);
/* The partition's high watermark as last seen in a fetch (no request is
 * sent), or -1 when unknown. */
int64_t strm_consumer_high(strm_consumer_t *c, const char *topic, int32_t partition);
/* The offset after the last record handed out of the partition, past the
 * transaction markers librdkafka skips (they are never handed out), or -1
 * when nothing was handed out since its assignment. */
int64_t strm_consumer_position(strm_consumer_t *c, const char *topic, int32_t partition);
/* Whether a broker answers a metadata request within timeout_ms (blocks:
 * call it off the loop). 1, or 0 with librdkafka's reason in err. */
int strm_consumer_brokers_up(strm_consumer_t *c, int timeout_ms, char *err, size_t errlen);
/* Asks the partition's leader for its end offset and tells whether
 * next_offset (-1: nothing consumed since assignment, then the committed
 * offset) has reached it: 1 yes, 0 no, -1 when the broker did not answer
 * within timeout_ms. BLOCKS: call it from a worker thread. */
int strm_consumer_caught_up(strm_consumer_t *c, const char *topic, int32_t partition,
                            int64_t next_offset, int timeout_ms);
/* Leaves the group (revoking through the callback) and commits, giving up
 * after timeout_ms (brokers gone), then frees. BLOCKS up to timeout_ms. */
void strm_consumer_close(strm_consumer_t *c, int timeout_ms);

/* ---------------- reader ---------------- */
/* One topic's partitions read by offset, outside any consumer group: the
 * caller says where each partition starts, nothing is joined and nothing is
 * committed (a group.id is set only because librdkafka's assign() wants
 * one; enable.auto.commit is forced off after the user's properties). Each
 * partition has its own queue, so the caller decides which partition to
 * read next (a merge by event time needs exactly that). Blocking calls say
 * so; the others never block longer than their timeout. */
typedef struct strm_reader strm_reader_t;

strm_reader_t *strm_reader_new(const strm_kopts_t *o, const char *topic, char *err, size_t errlen);
/* The topic's partition count from the brokers' metadata, or -1 with err
 * (no such topic, brokers unreachable). BLOCKS up to timeout_ms. */
int strm_reader_partitions(strm_reader_t *r, int timeout_ms, char *err, size_t errlen);
/* The partition's log start and end offsets, asked of its leader. BLOCKS. */
int strm_reader_offsets(strm_reader_t *r, int32_t partition, int64_t *lo, int64_t *hi,
                        int timeout_ms, char *err, size_t errlen);
/* For partitions 0..n-1: the first offset whose record timestamp is at or
 * after ts, or -1 when there is none or the broker cannot tell (librdkafka's
 * mock cluster never can). BLOCKS up to timeout_ms. */
int strm_reader_offsets_for_time(strm_reader_t *r, int n, int64_t ts, int64_t *out, int timeout_ms,
                                 char *err, size_t errlen);
/* Starts reading partitions 0..n-1, each from start[i]: an offset, or
 * STRM_OFFSET_BEGINNING (the log start); a partition with start[i] == -1
 * is not read. Call once. */
int strm_reader_start(strm_reader_t *r, int n, const int64_t *start, char *err, size_t errlen);
/* Up to max records of one partition, waiting at most timeout_ms for the
 * first. A record with `error` set is a fetch error of the partition, or,
 * with `eof`, its end. Returns the count (0: nothing yet), or -1 on a
 * fatal client error (message in err). Release records with
 * strm_msgs_release(). */
int strm_reader_read(strm_reader_t *r, int32_t partition, strm_msg_t *out, int max, int timeout_ms,
                     char *err, size_t errlen);
/* The last non-fatal client error seen (brokers down, say), or NULL. */
const char *strm_reader_last_error(const strm_reader_t *r);
void strm_reader_free(strm_reader_t *r);

/* ---------------- producer ---------------- */
typedef struct strm_producer strm_producer_t;

typedef struct strm_header {
    const char *name;
    const void *value;
    size_t len;
} strm_header_t;

/* The headers of a dead letter (CONTRACT §1): error, topic, partition,
 * offset, one naming its writer (who=whose), and truncated_from (the whole
 * size) when the payload of len bytes is cut at max. */
typedef struct strm_dlq_headers {
    strm_header_t h[6];
    int n;       /* how many of h to send */
    size_t send; /* how many payload bytes to send */
    char part[16], off[24], size[24];
} strm_dlq_headers_t;
void strm_dlq_headers(strm_dlq_headers_t *d, const char *reason, const char *topic,
                      int32_t partition, int64_t offset, const char *who, const char *whose,
                      size_t len, size_t max);

/* A delivery report: error NULL on success. payload/key stay valid only
 * during the call (copy them to send again). */
typedef void (*strm_dr_fn)(void *ud, void *opaque, const char *error, const char *topic,
                           const void *key, size_t key_len, const void *payload, size_t len);

strm_producer_t *strm_producer_new(const strm_kopts_t *o, strm_dr_fn dr, void *ud, char *err,
                                   size_t errlen);
/* Readable when delivery reports wait: drain it, then strm_producer_poll(). */
int strm_producer_fd(const strm_producer_t *p);
void strm_producer_drain_fd(strm_producer_t *p);
/* Copies the record into the producer's queue. ts < 0: the current time.
 * Returns 0, STRM_QUEUE_FULL (nothing queued: serve delivery reports and
 * retry), or -1 with err set. */
#define STRM_QUEUE_FULL 1
int strm_producer_send(strm_producer_t *p, const char *topic, const void *key, size_t key_len,
                       const void *payload, size_t len, int64_t ts, const strm_header_t *hdrs,
                       int n_hdrs, void *opaque, char *err, size_t errlen);
/* Serves delivery reports, waiting at most timeout_ms (0: none). Returns
 * how many events were served. */
int strm_producer_poll(strm_producer_t *p, int timeout_ms);
/* Records not yet delivered (queued or in flight). */
int strm_producer_outq(const strm_producer_t *p);
/* Waits until everything is delivered or timeout_ms passes (blocking).
 * Returns the number of records still undelivered. */
int strm_producer_flush(strm_producer_t *p, int timeout_ms);
void strm_producer_free(strm_producer_t *p);

#endif
