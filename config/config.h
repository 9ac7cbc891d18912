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
    char *origin; /* "FILE:LINE" or the environment variable that set it */
} cfg_kv_t;

/* One rule segment as written in the file (kept for cfg_dump; the compiled
 * form lives in seg.rules). */
typedef struct cfg_rule {
    char *name;
    int any; /* 0: `all:` (every condition holds), 1: `any:` */
    char **conds;
    int n_conds;
    int line; /* where it was written (0: unknown) */
} cfg_rule_t;

typedef struct cfg {
    char *source; /* the file read, or "(defaults)" */

    /* kafka */
    char *brokers; /* kafka.brokers, default "127.0.0.1:9092" */
    char **topics; /* kafka.topics, default [events] */
    int n_topics;
    char *group_id;        /* kafka.group_id, default "segstream" */
    char *changes_topic;   /* kafka.changes_topic, default "segment-changes" */
    char *dlq_topic;       /* kafka.dlq_topic, default "segstream.dlq" */
    char *change_format;   /* kafka.change_format: "json" (default) or "msgpack" */
    cfg_kv_t *kafka_props; /* kafka.properties: passed to librdkafka as is */
    int n_kafka_props;

    /* input */
    size_t max_event_bytes;     /* input.max_event_bytes, default 65536 */
    int64_t max_future_skew_ms; /* input.max_future_skew, default 7d */

    /* watermark */
    int64_t allowed_lateness_ms; /* watermark.allowed_lateness, default 0 */
    int64_t idle_timeout_ms;     /* watermark.idle_timeout, default 30s */
    int idle_advance;            /* watermark.idle_advance, default true */
    char *control_topic; /* watermark.control_topic, default "segstream.watermarks"; "": none */

    /* redis */
    char *redis_url;    /* redis.url, default "" (in-memory store) */
    char *redis_prefix; /* redis.prefix, default "seg:" */

    /* http */
    char *http_listen; /* http.listen, default "127.0.0.1:9464" */

    /* log */
    char *log_level; /* log.level: debug|info|warn|error, default info */

    /* the core: features.*, lifecycle.*, clusters.*, rules */
    char *timezone; /* features.timezone, default "UTC"; resolved into seg.tz */
    seg_params_t seg;
    cfg_rule_t *rules; /* rules as written; seg.rules holds them compiled */
    int n_rules;
} cfg_t;

/* Loads defaults, then `path` if not NULL, then the environment. On error
 * returns -1 and writes "FILE:LINE: KEY: REASON" (or "env VAR: REASON") into
 * err. `c` is overwritten (not freed) first; it must be freed with
 * cfg_free() either way. Unknown keys and unknown SEGSTREAM_* variables are
 * errors, so that typos fail at start, except the addresses Kubernetes gives
 * a Service named segstream[-...] (SEGSTREAM_SERVICE_HOST, SEGSTREAM_PORT_*):
 * ignored. */
int cfg_load(cfg_t *c, const char *path, char *err, size_t errlen);
/* Same, from a YAML string (tests, fuzzing); `name` stands for the file. */
int cfg_load_string(cfg_t *c, const char *yaml, size_t len, const char *name, char *err,
                    size_t errlen);
/* Frees everything c owns and zeroes it; safe after a failed load and twice. */
void cfg_free(cfg_t *c);

/* Parses "250ms", "30s", "5m", "2h", "30d" or a bare integer (ms). A number
 * with a unit may have a fraction ("1.5d", "0.5s"), rounded to the nearest
 * ms. Returns -1 on a negative, malformed or overflowing value. */
int cfg_parse_duration(const char *s, int64_t *ms);
/* Writes ms in the largest unit that divides it exactly ("30d", "90m",
 * "250ms"), parseable by cfg_parse_duration(). Returns snprintf's count. */
int cfg_format_duration(int64_t ms, char *buf, size_t len);

/* Splits "host:port" or "[v6addr]:port" (port 0..65535). Returns -1 with a
 * reason in why (if not NULL) when malformed or the host does not fit. */
int cfg_split_hostport(const char *s, char *host, size_t hostlen, int *port, char *why,
                       size_t whylen);

/* 0 when s is a broker list as kafka.brokers takes it (librdkafka's
 * reading: entries between commas and blanks, each
 * [PROTOCOL://]host[:port][/path], at least one), else -1 with the reason
 * in why. For the --brokers flags of gen and replay too. */
int cfg_check_brokers(const char *s, char *why, size_t whylen);

/* 0 when s is a Kafka topic name as the kafka.* topic keys take it
 * (letters, digits, '.', '_' and '-'; 1..249 bytes; not "." or ".."),
 * else -1 with the reason in why. */
int cfg_check_topic(const char *s, char *why, size_t whylen);

/* The longest Redis key prefix (redis.prefix, replay's --prefix): the
 * daemon's keys put a topic name (up to 249 bytes) and a partition after
 * it in fixed buffers. */
#define CFG_PREFIX_MAX 100

/* 0 when s is at most CFG_PREFIX_MAX bytes, else -1 with the reason in why. */
int cfg_check_prefix(const char *s, char *why, size_t whylen);

/* redis://[user[:pass]@]host:port[/db], as validated for redis.url. */
typedef struct cfg_redis_url {
    char user[128];
    char pass[256];
    char host[256];
    int port;
    int db; /* 0 when not given */
} cfg_redis_url_t;
int cfg_parse_redis_url(const char *url, cfg_redis_url_t *out, char *why, size_t whylen);

/* Writes the effective configuration as YAML (for `segstream config`), in
 * the form cfg_load_string() reads back to the same values. Returns the
 * length of the whole text like snprintf (the output is truncated when that
 * is >= len), or -1 on error. */
int cfg_dump(const cfg_t *c, char *buf, size_t len);

#endif
