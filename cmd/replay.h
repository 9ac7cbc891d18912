/* cmd/replay.h: what the parts of `segstream replay` share. replay.c owns
 * the command line, the namespaces guard, files in and out, the model flags
 * and the summary; replay_kafka.c reads a time range of a topic (merged by
 * event time) and writes to topics; replay_redis.c reads a saved model from
 * Redis and writes the final state there. Each input is one function that
 * feeds rp->pl and returns 0, or -1 after saying why on stderr. */
#ifndef CMD_REPLAY_H
#define CMD_REPLAY_H

#include <stdint.h>
#include <stdio.h>
#include "cmd/pipeline.h"
#include "config/config.h"
#include "stream/csv.h"

struct rp_kout; /* replay_kafka.c: the producer of --out/--dlq kafka:TOPIC */

typedef struct replay {
    cfg_t cfg;
    pl_t pl;
    const char *input;      /* as given: FILE, '-' or kafka:TOPIC */
    strm_csvsrc_t *csv;     /* a CSV input (rp_input_file reads it), NULL otherwise */
    int framing;            /* --input-format for a file: 1 msgpack, 0 JSON lines, -1 sniffed */
    const char *brokers;    /* --brokers, else kafka.brokers */
    const char *dump;       /* --dump FILE: the records applied, in the order applied */
    int seek_by_time;       /* --seek-by-time: trust record timestamps to skip to --from */
    const char *watermarks; /* --watermarks TOPIC|none (NULL: watermark.control_topic) */
    int progress;           /* a terminal: show progress */
    int quiet;
    double t0;
    /* outputs: a file or a topic each */
    FILE *out, *dlq;
    const char *out_topic, *dlq_topic;
    const char *dlq_name; /* where dead letters go, for the summary */
    struct rp_kout *kout;
} replay_t;

/* replay.c */
int rp_input_file(replay_t *rp);
/* For a model refusal err that names a config key: " (config FILE)", or
 * the environment variable or default that set it, into buf; else "". */
const char *rp_model_where(const replay_t *rp, const char *err, char *buf, size_t len);

/* replay_kafka.c */
int rp_input_kafka(replay_t *rp, const char *topic);
/* Checks the config's kafka.properties as the clients would take them;
 * -1 after saying which one librdkafka refuses and where it was set. */
int rp_kafka_check(replay_t *rp);
/* Opens the producer for out_topic/dlq_topic (whichever are set). */
int rp_kout_open(replay_t *rp);
int rp_kout_change(void *ud, const seg_change_t *ch, const void *payload, size_t len);
int rp_kout_dead(void *ud, const void *payload, size_t len, const char *reason, const char *topic,
                 int32_t partition, int64_t offset);
/* Waits up to timeout_ms until everything is delivered; -1 when something
 * was not. Frees (rp->kout is NULL after). */
int rp_kout_close(replay_t *rp, int timeout_ms);

/* replay_redis.c: URL redis://[user[:pass]@]HOST:PORT[/DB] */
/* Replaces the model with `PREFIX model` read from Redis. */
int rp_redis_model(replay_t *rp, const char *url, const char *prefix);
/* Before the replay: 0 when Redis answers and prefix holds no keys (or
 * replace), else -1 after saying why. */
int rp_redis_state_check(const char *url, const char *prefix, int replace);
/* Writes the replay's final state under prefix (customers, sizes, model),
 * deleting what the prefix held first when replace. */
int rp_redis_state(replay_t *rp, const char *url, const char *prefix, int replace);

#endif
