/* config/config.h: segstream's configuration. A YAML file, then environment
 * overrides (SEGSTREAM_<SECTION>_<KEY>), then validation; every key has a
 * default that works on one machine. Errors name the file, the key and the
 * reason, and are reported before anything is consumed. */
#ifndef CFG_CONFIG_H
#define CFG_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include "segmenter/segmenter.h"

typedef struct cfg_kv {
    char *key;
    char *val;
} cfg_kv_t;

typedef struct cfg {
    char *source; /* the file read, or "(defaults)" */

    /* kafka */
    char *brokers;     /* kafka.brokers, default "127.0.0.1:9092" */
    char **topics;     /* kafka.topics, default [events] */
    int n_topics;
    char *group_id;      /* kafka.group_id, default "segstream" */
    char *changes_topic; /* kafka.changes_topic, default "segment-changes" */
    char *dlq_topic;     /* kafka.dlq_topic, default "segstream.dlq" */
    char *change_format; /* kafka.change_format: "json" (default) or "msgpack" */
    cfg_kv_t *kafka_props; /* kafka.properties: passed to librdkafka as is */
    int n_kafka_props;

    /* input */
    size_t max_event_bytes;     /* input.max_event_bytes, default 65536 */
    int64_t max_future_skew_ms; /* input.max_future_skew, default 1h */

    /* watermark */
    int64_t allowed_lateness_ms; /* watermark.allowed_lateness, default 0 */
    int64_t idle_timeout_ms;     /* watermark.idle_timeout, default 30s */
    int idle_advance;            /* watermark.idle_advance, default true */

    /* redis */
    char *redis_url;    /* redis.url, default "" (in-memory store) */
    char *redis_prefix; /* redis.prefix, default "seg:" */

    /* http */
    char *http_listen; /* http.listen, default "127.0.0.1:9464" */

    /* log */
    char *log_level; /* log.level: debug|info|warn|error, default info */

    /* the core: features.*, lifecycle.*, clusters.*, rules */
    seg_params_t seg;
} cfg_t;

/* Loads defaults, then `path` if not NULL, then the environment. On error
 * returns -1 and writes "FILE:LINE: KEY: REASON" (or "env VAR: REASON") into
 * err. The cfg must be freed with cfg_free() either way. */
int cfg_load(cfg_t *c, const char *path, char *err, size_t errlen);
/* Same, from a YAML string (tests, fuzzing); `name` stands for the file. */
int cfg_load_string(cfg_t *c, const char *yaml, size_t len, const char *name, char *err,
                    size_t errlen);
void cfg_free(cfg_t *c);

/* Parses "250ms", "30s", "5m", "2h", "30d" or a bare integer (ms). */
int cfg_parse_duration(const char *s, int64_t *ms);

/* Writes the effective configuration as YAML (for `segstream config`). */
int cfg_dump(const cfg_t *c, char *buf, size_t len);

#endif
