/* stream/kafka.c: the Kafka consumer and producer (see kafka.h). Owns the
 * librdkafka handles and the io-event pipes that wake the caller's loop;
 * never decodes payloads and never blocks except where kafka.h says so. */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <librdkafka/rdkafka.h>
#include "stream/kafka.h"

/* ---------------- shared ---------------- */

static void (*log_fn)(int, const char *, const char *);

static void on_log(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    (void)rk;
    /* kafka.properties go to both clients (unless prefixed consumer./producer.):
     * a consumer property in the producer is expected, not worth a warning */
    if (strcmp(fac, "CONFWARN") == 0 && (strstr(buf, "ignored by this producer instance") ||
                                         strstr(buf, "ignored by this consumer instance")))
        level = 7;
    if (log_fn) log_fn(level, fac, buf);
}

static void set_log(rd_kafka_conf_t *conf, const strm_kopts_t *o)
{
    if (!o->log) return;
    log_fn = o->log; /* one logger per process: the daemon's */
    rd_kafka_conf_set_log_cb(conf, on_log);
}

static int set(rd_kafka_conf_t *conf, const char *k, const char *v, char *err, size_t errlen)
{
    char why[256];
    if (rd_kafka_conf_set(conf, k, v, why, sizeof(why)) != RD_KAFKA_CONF_OK) {
        snprintf(err, errlen, "kafka property %s=%s: %s", k, v, why);
        return -1;
    }
    return 0;
}

/* The user's properties after ours; `consumer.`/`producer.` select a client. */
static int set_user(rd_kafka_conf_t *conf, const strm_kopts_t *o, const char *mine,
                    const char *other, char *err, size_t errlen)
{
    for (int i = 0; i < o->n_props; i++) {
        const char *k = o->props[2 * i], *v = o->props[2 * i + 1];
        size_t ml = strlen(mine), ol = strlen(other);
        if (strncmp(k, other, ol) == 0) continue;
        if (strncmp(k, mine, ml) == 0) k += ml;
        if (set(conf, k, v, err, errlen) < 0) {
            const char *at = o->origins ? o->origins[i] : NULL;
            if (at && *at) {
                char was[512];
                snprintf(was, sizeof(was), "%s", err);
                snprintf(err, errlen, "%s: %s", at, was);
            }
            return -1;
        }
    }
    return 0;
}

int strm_kopts_check(const strm_kopts_t *o, char *err, size_t errlen)
{
    static const char *const sides[2][2] = {{"consumer.", "producer."}, {"producer.", "consumer."}};
    for (int i = 0; i < 2; i++) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        if (!conf) {
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        int rc = set_user(conf, o, sides[i][0], sides[i][1], err, errlen);
        rd_kafka_conf_destroy(conf);
        if (rc < 0) return -1;
    }
    return 0;
}

static int make_pipe(int fds[2], char *err, size_t errlen)
{
    if (pipe(fds) < 0) {
        snprintf(err, errlen, "pipe: %s", strerror(errno));
        return -1;
    }
    for (int i = 0; i < 2; i++) {
        fcntl(fds[i], F_SETFL, fcntl(fds[i], F_GETFL) | O_NONBLOCK);
        fcntl(fds[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

static void drain(int fd)
{
    char buf[256];
    while (read(fd, buf, sizeof(buf)) > 0) {
    }
}

/* Fills o from m; o owns m until strm_msgs_release(). */
static void to_msg(rd_kafka_message_t *m, strm_msg_t *o)
{
    memset(o, 0, sizeof(*o));
    o->rk_msg_ = m;
    o->partition = m->partition;
    o->offset = m->offset;
    o->topic = m->rkt ? rd_kafka_topic_name(m->rkt) : "";
    if (m->err) {
        o->error = rd_kafka_message_errstr(m);
        o->error_fatal = m->err == RD_KAFKA_RESP_ERR__FATAL;
        o->eof = m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF;
        return;
    }
    o->payload = m->payload ? m->payload : "";
    o->len = m->len;
    o->key = m->key;
    o->key_len = m->key_len;
    rd_kafka_timestamp_type_t tt;
    o->timestamp = rd_kafka_message_timestamp(m, &tt);
}

/* ---------------- consumer ---------------- */

struct strm_consumer {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    int fds[2];
    strm_rebalance_fn cb;
    void *ud;
    int paused;
    int assigned; /* an assignment has come (librdkafka has run its assignor's on_assignment) */
    int sticky;   /* configured with the cooperative-sticky assignor */
};

static void say(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void say(int level, const char *fmt, ...)
{
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    if (log_fn)
        log_fn(level, "ASSIGN", buf);
    else
        fprintf(stderr, "segstream: kafka: %s\n", buf);
}

/* Cooperative: l less the partitions librdkafka already has (assign) or
 * does not have (revoke), each one named in the log. incremental_assign
 * refuses, whole, a list naming a partition it has (and incremental_unassign
 * one it has not): the others would then be owned by this member for the
 * group and consumed by nobody. The application keeps its own count of what
 * it owns, so this is a last guard, not a path it is meant to take (a
 * librdkafka 2.0 rejoin may hand out again a partition still held).
 * NULL when nothing is left out. */
static rd_kafka_topic_partition_list_t *
only_changes(rd_kafka_t *rk, const rd_kafka_topic_partition_list_t *l, int assign)
{
    rd_kafka_topic_partition_list_t *cur = NULL, *out = NULL;
    if (rd_kafka_assignment(rk, &cur) != RD_KAFKA_RESP_ERR_NO_ERROR) return NULL;
    int left = 0;
    for (int i = 0; i < l->cnt; i++) {
        const rd_kafka_topic_partition_t *e = &l->elems[i];
        if ((rd_kafka_topic_partition_list_find(cur, e->topic, e->partition) != NULL) != assign)
            continue; /* a change */
        say(4, "%s [%d] is %s assigned to this consumer: left out of the %s", e->topic,
            (int)e->partition, assign ? "already" : "not", assign ? "assignment" : "revoke");
        left++;
    }
    if (left) {
        out = rd_kafka_topic_partition_list_new(l->cnt);
        for (int i = 0; i < l->cnt; i++) {
            const rd_kafka_topic_partition_t *e = &l->elems[i];
            if ((rd_kafka_topic_partition_list_find(cur, e->topic, e->partition) != NULL) != assign)
                rd_kafka_topic_partition_list_add(out, e->topic, e->partition)->offset = e->offset;
        }
    }
    rd_kafka_topic_partition_list_destroy(cur);
    return out;
}

static void apply(strm_consumer_t *c, rd_kafka_topic_partition_list_t *l, int assign)
{
    rd_kafka_t *rk = c->rk;
    if (strm_consumer_cooperative(c)) {
        rd_kafka_topic_partition_list_t *only = only_changes(rk, l, assign);
        rd_kafka_topic_partition_list_t *use = only ? only : l;
        rd_kafka_error_t *er =
            assign ? rd_kafka_incremental_assign(rk, use) : rd_kafka_incremental_unassign(rk, use);
        if (er) {
            say(3, "%s of %d partitions refused: %s", assign ? "assignment" : "revoke", use->cnt,
                rd_kafka_error_string(er));
            rd_kafka_error_destroy(er);
        }
        if (assign && c->paused) rd_kafka_pause_partitions(rk, use);
        if (only) rd_kafka_topic_partition_list_destroy(only);
        return;
    }
    rd_kafka_resp_err_t e = rd_kafka_assign(rk, assign ? l : NULL);
    if (e)
        say(3, "%s of %d partitions refused: %s", assign ? "assignment" : "revoke", l->cnt,
            rd_kafka_err2str(e));
    if (assign && c->paused) rd_kafka_pause_partitions(rk, l);
}

static void rebalance(rd_kafka_t *rk, rd_kafka_resp_err_t e, rd_kafka_topic_partition_list_t *l,
                      void *opaque)
{
    strm_consumer_t *c = opaque;
    int assign = e == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
    c->assigned |= assign;
    strm_tp_t stack[64], *tps = l->cnt <= 64 ? stack : malloc(sizeof(*tps) * (size_t)l->cnt);
    int later = 0;
    if (tps) {
        for (int i = 0; i < l->cnt; i++)
            tps[i] = (strm_tp_t){l->elems[i].topic, l->elems[i].partition, -1};
        if (c->cb) later = c->cb(c->ud, assign, tps, l->cnt) == 1;
        for (int i = 0; assign && !later && i < l->cnt; i++)
            if (tps[i].offset >= 0) l->elems[i].offset = tps[i].offset;
        if (tps != stack) free(tps);
    }
    if (!later) apply(c, l, assign);
}

int strm_consumer_assign(strm_consumer_t *c, const strm_tp_t *tps, int n, int assigned)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n > 0 ? n : 1);
    for (int i = 0; i < n; i++) {
        rd_kafka_topic_partition_t *e =
            rd_kafka_topic_partition_list_add(l, tps[i].topic, tps[i].partition);
        if (tps[i].offset >= 0) e->offset = tps[i].offset;
        if (tps[i].offset == STRM_OFFSET_BEGINNING) e->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    apply(c, l, assigned);
    rd_kafka_topic_partition_list_destroy(l);
    return 0;
}

strm_consumer_t *strm_consumer_new(const strm_kopts_t *o, const char *const *topics, int n_topics,
                                   strm_rebalance_fn cb, void *ud, char *err, size_t errlen)
{
    strm_consumer_t *c = calloc(1, sizeof(*c));
    if (!c) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    c->fds[0] = c->fds[1] = -1;
    c->cb = cb;
    c->ud = ud;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Offsets are stored by the application once an event's effects are
     * done, and committed in the background from that store. A new group
     * reads from the beginning: a segmenter must not skip history. The
     * fetch queue is large because librdkafka 2.0 stalls ~1 s when it
     * fills (STYLE.md). */
    if (set(conf, "bootstrap.servers", o->brokers, err, errlen) < 0 ||
        set(conf, "group.id", o->group_id, err, errlen) < 0 ||
        set(conf, "enable.auto.commit", "true", err, errlen) < 0 ||
        set(conf, "enable.auto.offset.store", "false", err, errlen) < 0 ||
        set(conf, "auto.commit.interval.ms", "1000", err, errlen) < 0 ||
        set(conf, "auto.offset.reset", "earliest", err, errlen) < 0 ||
        set(conf, "queued.min.messages", "500000", err, errlen) < 0 ||
        set(conf, "queued.max.messages.kbytes", "262144", err, errlen) < 0 ||
        set(conf, "fetch.wait.max.ms", "100", err, errlen) < 0 ||
        set(conf, "reconnect.backoff.max.ms", "2000", err, errlen) < 0 ||
        /* bounds every request, so that a close with the brokers gone ends */
        set(conf, "socket.timeout.ms", "10000", err, errlen) < 0 ||
        (o->client_id && set(conf, "client.id", o->client_id, err, errlen) < 0) ||
        set_user(conf, o, "consumer.", "producer.", err, errlen) < 0)
        goto fail_conf;
    char strategy[256];
    size_t slen = sizeof(strategy);
    c->sticky = rd_kafka_conf_get(conf, "partition.assignment.strategy", strategy, &slen) ==
                    RD_KAFKA_CONF_OK &&
                strstr(strategy, "cooperative-sticky") != NULL;
    rd_kafka_conf_set_rebalance_cb(conf, rebalance);
    rd_kafka_conf_set_opaque(conf, c);
    set_log(conf, o);
    c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (!c->rk) goto fail_conf;
    conf = NULL;
    rd_kafka_poll_set_consumer(c->rk);
    c->q = rd_kafka_queue_get_consumer(c->rk);
    if (make_pipe(c->fds, err, errlen) < 0) goto fail;
    rd_kafka_queue_io_event_enable(c->q, c->fds[1], "1", 1);

    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n_topics);
    for (int i = 0; i < n_topics; i++)
        rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
    rd_kafka_resp_err_t e = rd_kafka_subscribe(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "subscribe: %s", rd_kafka_err2str(e));
        goto fail;
    }
    return c;
fail_conf:
    if (conf) rd_kafka_conf_destroy(conf);
fail:
    strm_consumer_close(c, 0);
    return NULL;
}

int strm_consumer_fd(const strm_consumer_t *c)
{
    return c->fds[0];
}

void strm_consumer_drain_fd(strm_consumer_t *c)
{
    drain(c->fds[0]);
}

int strm_consumer_batch(strm_consumer_t *c, strm_msg_t *out, int max, char *err, size_t errlen)
{
    rd_kafka_message_t *ms[1024];
    if (max > 1024) max = 1024;
    ssize_t n = rd_kafka_consume_batch_queue(c->q, 0, ms, (size_t)max);
    if (n < 0) {
        snprintf(err, errlen, "consume: %s", rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    for (ssize_t i = 0; i < n; i++) to_msg(ms[i], &out[i]);
    return (int)n;
}

void strm_msgs_release(strm_msg_t *msgs, int n)
{
    for (int i = 0; i < n; i++) {
        if (msgs[i].rk_msg_) rd_kafka_message_destroy(msgs[i].rk_msg_);
        msgs[i].rk_msg_ = NULL;
    }
}

int strm_consumer_pause(strm_consumer_t *c, int pause)
{
    c->paused = pause;
    rd_kafka_topic_partition_list_t *l = NULL;
    if (rd_kafka_assignment(c->rk, &l) || !l) return -1;
    rd_kafka_resp_err_t e =
        pause ? rd_kafka_pause_partitions(c->rk, l) : rd_kafka_resume_partitions(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return e ? -1 : 0;
}

int strm_consumer_pause_one(strm_consumer_t *c, const char *topic, int32_t partition, int pause)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    rd_kafka_resp_err_t e =
        pause ? rd_kafka_pause_partitions(c->rk, l) : rd_kafka_resume_partitions(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return e ? -1 : 0;
}

int strm_consumer_store(strm_consumer_t *c, const char *topic, int32_t partition,
                        int64_t next_offset)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition)->offset = next_offset;
    rd_kafka_resp_err_t e = rd_kafka_offsets_store(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return e ? -1 : 0; /* a partition no longer assigned refuses: its new owner goes on */
}

int64_t strm_consumer_high(strm_consumer_t *c, const char *topic, int32_t partition)
{
    int64_t lo, hi;
    if (rd_kafka_get_watermark_offsets(c->rk, topic, partition, &lo, &hi)) return -1;
    return hi;
}

int64_t strm_consumer_position(strm_consumer_t *c, const char *topic, int32_t partition)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    int64_t pos = rd_kafka_position(c->rk, l) ? -1 : l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    return pos >= 0 ? pos : -1;
}

int strm_consumer_brokers_up(strm_consumer_t *c, int timeout_ms, char *err, size_t errlen)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(c->rk, 0, NULL, &md, timeout_ms);
    if (e) {
        snprintf(err, errlen, "%s", rd_kafka_err2str(e));
        return 0;
    }
    rd_kafka_metadata_destroy(md);
    return 1;
}

int strm_consumer_caught_up(strm_consumer_t *c, const char *topic, int32_t partition,
                            int64_t next_offset, int timeout_ms)
{
    int64_t lo, hi;
    if (rd_kafka_query_watermark_offsets(c->rk, topic, partition, &lo, &hi, timeout_ms)) return -1;
    int64_t pos = next_offset;
    if (pos < 0) { /* nothing consumed since assignment: where the group left it */
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
        rd_kafka_topic_partition_list_add(l, topic, partition);
        rd_kafka_resp_err_t e = rd_kafka_committed(c->rk, l, timeout_ms);
        pos = e ? -1 : l->elems[0].offset;
        rd_kafka_topic_partition_list_destroy(l);
        if (e) return -1;
        if (pos < 0) pos = lo; /* no commit: auto.offset.reset=earliest */
    }
    return pos >= hi;
}

/* Leaves the group in librdkafka's background thread and serves its
 * events here, for at most timeout_ms: a close must end even when the
 * brokers are gone (its final commit then fails, and the next owner re-reads
 * from the last commit that succeeded). */
void strm_consumer_close(strm_consumer_t *c, int timeout_ms)
{
    if (!c) return;
    if (c->q) {
        rd_kafka_queue_io_event_enable(c->q, -1, NULL, 0);
        rd_kafka_queue_destroy(c->q);
    }
    if (c->rk) {
        int flags = 0;
        rd_kafka_queue_t *q = rd_kafka_queue_new(c->rk);
        rd_kafka_error_t *e = rd_kafka_consumer_close_queue(c->rk, q);
        if (e) {
            rd_kafka_error_destroy(e);
            flags = RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE;
        } else {
            struct timespec t0, t;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            rd_kafka_message_t *ms[256];
            while (!rd_kafka_consumer_closed(c->rk)) {
                clock_gettime(CLOCK_MONOTONIC, &t);
                if ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 >=
                    timeout_ms) {
                    flags = RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE;
                    break;
                }
                /* the close forwards fetched records here too: serving them
                 * as callbacks would abort librdkafka; they are dropped (not
                 * applied, so not committed) */
                ssize_t n = rd_kafka_consume_batch_queue(q, 100, ms, 256);
                for (ssize_t i = 0; i < n; i++) rd_kafka_message_destroy(ms[i]);
            }
        }
        rd_kafka_queue_destroy(q);
        if (c->sticky && !c->assigned && rd_kafka_version() < 0x020300ff) {
            /* librdkafka before 2.3.0 (#4312, fixed by #4381) asserts in
             * rd_kafka_destroy of a cooperative-sticky member that has its
             * group's protocol (a JoinGroup answer) but not its first
             * assignment: the assignor state it frees is still NULL, and a
             * SIGTERM while joining aborted the daemon. Such a handle has
             * left its group (the close above) and is not destroyed; kept
             * here, where a leak checker sees it reachable. Only a stop
             * closes a group consumer, so this happens once per process. */
            static rd_kafka_t *kept;
            kept = c->rk;
            (void)kept;
        } else {
            rd_kafka_destroy_flags(c->rk, flags);
        }
    }
    for (int i = 0; i < 2; i++)
        if (c->fds[i] >= 0) close(c->fds[i]);
    free(c);
}

int strm_consumer_assignment_lost(strm_consumer_t *c)
{
    return rd_kafka_assignment_lost(c->rk);
}

int strm_consumer_cooperative(strm_consumer_t *c)
{
    return strcmp(rd_kafka_rebalance_protocol(c->rk), "COOPERATIVE") == 0;
}

int strm_consumer_commit_async(strm_consumer_t *c)
{
    rd_kafka_resp_err_t e = rd_kafka_commit(c->rk, NULL, 1);
    return e && e != RD_KAFKA_RESP_ERR__NO_OFFSET ? -1 : 0;
}

/* ---------------- reader ---------------- */

struct strm_reader {
    rd_kafka_t *rk;
    char *topic;
    rd_kafka_queue_t **pq; /* per partition, not forwarded to the consumer queue */
    int n;
    char last_error[256];
};

strm_reader_t *strm_reader_new(const strm_kopts_t *o, const char *topic, char *err, size_t errlen)
{
    strm_reader_t *r = calloc(1, sizeof(*r));
    if (!r || !(r->topic = strdup(topic))) {
        free(r);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Every partition reports its end (the caller stops at the end offsets
     * it took at start, and an empty tail must still end); a large
     * per-partition prefetch, since the caller reads partitions unevenly
     * when it merges them. The group settings last, over the user's: this
     * client never commits. */
    if (set(conf, "bootstrap.servers", o->brokers, err, errlen) < 0 ||
        set(conf, "enable.partition.eof", "true", err, errlen) < 0 ||
        set(conf, "auto.offset.reset", "earliest", err, errlen) < 0 ||
        set(conf, "queued.min.messages", "100000", err, errlen) < 0 ||
        set(conf, "fetch.wait.max.ms", "100", err, errlen) < 0 ||
        set(conf, "reconnect.backoff.max.ms", "2000", err, errlen) < 0 ||
        set(conf, "socket.timeout.ms", "10000", err, errlen) < 0 ||
        (o->client_id && set(conf, "client.id", o->client_id, err, errlen) < 0) ||
        set_user(conf, o, "consumer.", "producer.", err, errlen) < 0 ||
        set(conf, "group.id", o->group_id ? o->group_id : "segstream-reader", err, errlen) < 0 ||
        set(conf, "enable.auto.commit", "false", err, errlen) < 0 ||
        set(conf, "enable.auto.offset.store", "false", err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        strm_reader_free(r);
        return NULL;
    }
    set_log(conf, o);
    r->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, errlen);
    if (!r->rk) {
        rd_kafka_conf_destroy(conf);
        strm_reader_free(r);
        return NULL;
    }
    rd_kafka_poll_set_consumer(r->rk); /* client errors come to the consumer queue */
    return r;
}

int strm_reader_partitions(strm_reader_t *r, int timeout_ms, char *err, size_t errlen)
{
    /* every topic's metadata, not the one topic's: asking for a topic by
     * name makes brokers that auto-create topics (the mock cluster, Kafka
     * with auto.create.topics.enable) create it, and a typo would then
     * replay an empty topic without a word */
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t e = rd_kafka_metadata(r->rk, 1, NULL, &md, timeout_ms);
    int n = -1;
    if (e) {
        snprintf(err, errlen, "topic %s: metadata: %s", r->topic, rd_kafka_err2str(e));
        return -1;
    }
    const struct rd_kafka_metadata_topic *t = NULL;
    for (int i = 0; i < md->topic_cnt && !t; i++)
        if (strcmp(md->topics[i].topic, r->topic) == 0) t = &md->topics[i];
    if (!t)
        snprintf(err, errlen, "topic %s does not exist", r->topic);
    else if (t->err)
        snprintf(err, errlen, "topic %s: %s", r->topic, rd_kafka_err2str(t->err));
    else if (t->partition_cnt < 1)
        snprintf(err, errlen, "topic %s: no partitions", r->topic);
    else
        n = t->partition_cnt;
    rd_kafka_metadata_destroy(md);
    return n;
}

int strm_reader_offsets(strm_reader_t *r, int32_t partition, int64_t *lo, int64_t *hi,
                        int timeout_ms, char *err, size_t errlen)
{
    rd_kafka_resp_err_t e =
        rd_kafka_query_watermark_offsets(r->rk, r->topic, partition, lo, hi, timeout_ms);
    if (e) {
        snprintf(err, errlen, "%s [%d]: end offsets: %s", r->topic, (int)partition,
                 rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

int strm_reader_offsets_for_time(strm_reader_t *r, int n, int64_t ts, int64_t *out, int timeout_ms,
                                 char *err, size_t errlen)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) rd_kafka_topic_partition_list_add(l, r->topic, i)->offset = ts;
    rd_kafka_resp_err_t e = rd_kafka_offsets_for_times(r->rk, l, timeout_ms);
    for (int i = 0; i < n; i++) out[i] = e || l->elems[i].err ? -1 : l->elems[i].offset;
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "%s: offsets for time: %s", r->topic, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

int strm_reader_start(strm_reader_t *r, int n, const int64_t *start, char *err, size_t errlen)
{
    r->pq = calloc((size_t)n, sizeof(*r->pq));
    if (!r->pq) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    r->n = n;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++) {
        if (start[i] == -1) continue;
        /* the partition's own queue, taken off the consumer queue before
         * the assignment starts fetching into it */
        r->pq[i] = rd_kafka_queue_get_partition(r->rk, r->topic, i);
        if (!r->pq[i]) {
            snprintf(err, errlen, "%s [%d]: no partition queue", r->topic, i);
            rd_kafka_topic_partition_list_destroy(l);
            return -1;
        }
        rd_kafka_queue_forward(r->pq[i], NULL);
        rd_kafka_topic_partition_list_add(l, r->topic, i)->offset =
            start[i] == STRM_OFFSET_BEGINNING ? RD_KAFKA_OFFSET_BEGINNING : start[i];
    }
    rd_kafka_resp_err_t e = l->cnt ? rd_kafka_assign(r->rk, l) : RD_KAFKA_RESP_ERR_NO_ERROR;
    rd_kafka_topic_partition_list_destroy(l);
    if (e) {
        snprintf(err, errlen, "%s: assign: %s", r->topic, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

int strm_reader_read(strm_reader_t *r, int32_t partition, strm_msg_t *out, int max, int timeout_ms,
                     char *err, size_t errlen)
{
    /* client-wide errors (all brokers down, a fatal error) */
    rd_kafka_message_t *m;
    while ((m = rd_kafka_consumer_poll(r->rk, 0)) != NULL) {
        rd_kafka_resp_err_t e = m->err;
        if (e) snprintf(r->last_error, sizeof(r->last_error), "%s", rd_kafka_message_errstr(m));
        rd_kafka_message_destroy(m);
        if (e == RD_KAFKA_RESP_ERR__FATAL) {
            char why[256];
            rd_kafka_fatal_error(r->rk, why, sizeof(why));
            snprintf(err, errlen, "%s: fatal: %s", r->topic, why);
            return -1;
        }
    }
    if (partition < 0 || partition >= r->n || !r->pq[partition]) {
        snprintf(err, errlen, "%s [%d]: not started", r->topic, (int)partition);
        return -1;
    }
    rd_kafka_message_t *ms[1024];
    if (max > 1024) max = 1024;
    /* a batch call with a timeout waits until the batch is full: take what
     * is there, else wait for one record only, then what came with it */
    rd_kafka_queue_t *q = r->pq[partition];
    ssize_t n = rd_kafka_consume_batch_queue(q, 0, ms, (size_t)max);
    if (n == 0 && timeout_ms > 0 && (ms[0] = rd_kafka_consume_queue(q, timeout_ms)) != NULL) {
        ssize_t more = max > 1 ? rd_kafka_consume_batch_queue(q, 0, ms + 1, (size_t)max - 1) : 0;
        n = 1 + (more > 0 ? more : 0);
    }
    if (n < 0) {
        snprintf(err, errlen, "%s [%d]: consume: %s", r->topic, (int)partition,
                 rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    for (ssize_t i = 0; i < n; i++) to_msg(ms[i], &out[i]);
    return (int)n;
}

const char *strm_reader_last_error(const strm_reader_t *r)
{
    return r->last_error[0] ? r->last_error : NULL;
}

void strm_reader_free(strm_reader_t *r)
{
    if (!r) return;
    for (int i = 0; i < r->n; i++)
        if (r->pq[i]) rd_kafka_queue_destroy(r->pq[i]);
    free(r->pq);
    if (r->rk) {
        /* outside a group a close only stops fetching: nothing to commit */
        rd_kafka_consumer_close(r->rk);
        rd_kafka_destroy(r->rk);
    }
    free(r->topic);
    free(r);
}

/* ---------------- producer ---------------- */

struct strm_producer {
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    int fds[2];
    strm_dr_fn dr;
    void *ud;
};

static void on_dr(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    strm_producer_t *p = opaque;
    if (p->dr)
        p->dr(p->ud, m->_private, m->err ? rd_kafka_err2str(m->err) : NULL,
              m->rkt ? rd_kafka_topic_name(m->rkt) : "", m->key, m->key_len, m->payload, m->len);
}

strm_producer_t *strm_producer_new(const strm_kopts_t *o, strm_dr_fn dr, void *ud, char *err,
                                   size_t errlen)
{
    strm_producer_t *p = calloc(1, sizeof(*p));
    if (!p) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p->fds[0] = p->fds[1] = -1;
    p->dr = dr;
    p->ud = ud;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    /* Batches a few ms and compresses: change events are small and many,
     * and the embedded broker keeps only 5 MiB per partition. */
    if (set(conf, "bootstrap.servers", o->brokers, err, errlen) < 0 ||
        set(conf, "linger.ms", "5", err, errlen) < 0 ||
        set(conf, "reconnect.backoff.max.ms", "2000", err, errlen) < 0 ||
        set(conf, "compression.codec", "lz4", err, errlen) < 0 ||
        set(conf, "queue.buffering.max.messages", "1000000", err, errlen) < 0 ||
        /* never give up on a retriable error (a broker down for a while):
         * only a permanent one reaches the delivery report as a failure */
        set(conf, "message.timeout.ms", "0", err, errlen) < 0 ||
        /* retries never reorder or duplicate a customer's changes */
        set(conf, "enable.idempotence", "true", err, errlen) < 0 ||
        set(conf, "socket.timeout.ms", "10000", err, errlen) < 0 ||
        (o->client_id && set(conf, "client.id", o->client_id, err, errlen) < 0) ||
        set_user(conf, o, "producer.", "consumer.", err, errlen) < 0) {
        rd_kafka_conf_destroy(conf);
        strm_producer_free(p);
        return NULL;
    }
    rd_kafka_conf_set_dr_msg_cb(conf, on_dr);
    rd_kafka_conf_set_opaque(conf, p);
    set_log(conf, o);
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, errlen);
    if (!p->rk) {
        rd_kafka_conf_destroy(conf);
        strm_producer_free(p);
        return NULL;
    }
    p->q = rd_kafka_queue_get_main(p->rk);
    if (make_pipe(p->fds, err, errlen) < 0) {
        strm_producer_free(p);
        return NULL;
    }
    rd_kafka_queue_io_event_enable(p->q, p->fds[1], "1", 1);
    return p;
}

int strm_producer_fd(const strm_producer_t *p)
{
    return p->fds[0];
}

void strm_producer_drain_fd(strm_producer_t *p)
{
    drain(p->fds[0]);
}

int strm_producer_send(strm_producer_t *p, const char *topic, const void *key, size_t key_len,
                       const void *payload, size_t len, int64_t ts, const strm_header_t *hdrs,
                       int n_hdrs, void *opaque, char *err, size_t errlen)
{
    rd_kafka_resp_err_t e;
    if (n_hdrs > 0) {
        rd_kafka_headers_t *h = rd_kafka_headers_new((size_t)n_hdrs);
        for (int i = 0; i < n_hdrs; i++)
            rd_kafka_header_add(h, hdrs[i].name, -1, hdrs[i].value, (ssize_t)hdrs[i].len);
        e = rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                              RD_KAFKA_V_VALUE((void *)payload, len),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                              RD_KAFKA_V_TIMESTAMP(ts < 0 ? 0 : ts), RD_KAFKA_V_HEADERS(h),
                              RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
        if (e) rd_kafka_headers_destroy(h); /* owned by the message only on success */
    } else {
        e = rd_kafka_producev(
            p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_VALUE((void *)payload, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_TIMESTAMP(ts < 0 ? 0 : ts), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    }
    if (e == RD_KAFKA_RESP_ERR__QUEUE_FULL) return STRM_QUEUE_FULL;
    if (e) {
        snprintf(err, errlen, "produce to %s: %s", topic, rd_kafka_err2str(e));
        return -1;
    }
    return 0;
}

int strm_producer_poll(strm_producer_t *p, int timeout_ms)
{
    return rd_kafka_poll(p->rk, timeout_ms);
}

int strm_producer_outq(const strm_producer_t *p)
{
    return rd_kafka_outq_len(p->rk);
}

int strm_producer_flush(strm_producer_t *p, int timeout_ms)
{
    rd_kafka_flush(p->rk, timeout_ms);
    return rd_kafka_outq_len(p->rk);
}

void strm_producer_free(strm_producer_t *p)
{
    if (!p) return;
    if (p->q) {
        rd_kafka_queue_io_event_enable(p->q, -1, NULL, 0);
        rd_kafka_queue_destroy(p->q);
    }
    if (p->rk) rd_kafka_destroy(p->rk);
    for (int i = 0; i < 2; i++)
        if (p->fds[i] >= 0) close(p->fds[i]);
    free(p);
}

void strm_dlq_headers(strm_dlq_headers_t *d, const char *reason, const char *topic,
                      int32_t partition, int64_t offset, const char *who, const char *whose,
                      size_t len, size_t max)
{
    snprintf(d->part, sizeof(d->part), "%" PRId32, partition);
    snprintf(d->off, sizeof(d->off), "%" PRId64, offset);
    snprintf(d->size, sizeof(d->size), "%zu", len);
    strm_header_t h[6] = {{"error", reason, strlen(reason)},
                          {"topic", topic, strlen(topic)},
                          {"partition", d->part, strlen(d->part)},
                          {"offset", d->off, strlen(d->off)},
                          {who, whose, strlen(whose)},
                          {"truncated_from", d->size, strlen(d->size)}};
    memcpy(d->h, h, sizeof(h));
    int cut = len > max;
    d->n = cut ? 6 : 5;
    d->send = cut ? max : len;
}
