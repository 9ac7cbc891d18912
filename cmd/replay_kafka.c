/* cmd/replay_kafka.c: replay's Kafka side. In: a time range of one topic,
 * each partition read up to the end offset it had at start, merged into
 * one deterministic order. Out: change events and dead letters produced to
 * topics. Owns the reader, the per-partition heads, the --dump file and
 * the producer; never decides a segment (the pipeline does).
 *
 * The order: a k-way merge of the partitions by (event time, partition),
 * each partition in its own offset order. The next record is known only
 * when every unfinished partition shows its head (its next record in
 * range) or has reached its end offset, so the merge waits for the slowest
 * partition rather than for whatever arrives first: the order, and so the
 * output, never depends on how fetches interleave. A record that does not
 * decode has no event time: it is taken as soon as it heads its partition
 * (key INT64_MIN), and dead-lettered there with its topic/partition/offset.
 * Records outside [from, to) are dropped at the head, counted as skipped.
 * Applying the merged records in this order is exactly what a file replay
 * of them does (W = the largest event time seen): --dump writes that file.
 *
 * Where each partition starts: its beginning, unless --seek-by-time.
 * Kafka's offsets-for-times(T) gives the first offset whose *record
 * timestamp* is >= T, and every record before it has a timestamp < T. That
 * locates event times only if no record is stamped earlier than its event
 * time: true of `segstream gen` (stamp = event time), of producers that
 * stamp the wall clock when they send (an event is sent after it happens,
 * as kcat does), and of LogAppendTime topics; false of producers that
 * backdate, send future-dated data, or stamp nothing. With T = from -
 * input.max_future_skew (clock skew allowed for, as the pipeline allows
 * it), every skipped record then has event time < from. Nothing read can
 * prove that about the records skipped, so the seek is opt-in (the user
 * knows the producers) and never the default; a record read with a
 * timestamp earlier than its event time by more than the skew disproves it
 * and stops the replay with an error rather than give a silently wrong
 * result. Without --seek-by-time the result never depends on timestamps
 * (and on librdkafka's mock cluster, which answers -1 to every
 * offsets-for-times lookup, that is all there is). */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cmd/cli.h"
#include "cmd/replay.h"
#include "stream/kafka.h"

#define BATCH         256    /* records fetched at once from one partition */
#define WAIT_MS       200    /* one wait for a partition's next records */
#define STALL_WARN_S  10.0   /* a partition silent this long: say so */
#define STALL_FAIL_S  120.0  /* ... and this long: give up */
#define DLQ_MAX_BYTES 524288 /* as run's DLQ_MAX_PAYLOAD: Kafka's ~1 MB limit */
#define META_MS       15000  /* metadata and offset lookups */

/* The client settings of the config, with rp->brokers; props is filled
 * (freed by the caller). */
static int kopts(replay_t *rp, strm_kopts_t *o, const char ***props)
{
    const cfg_t *c = &rp->cfg;
    int n = c->n_kafka_props;
    *props = calloc((size_t)n * 3 + 1, sizeof(char *)); /* pairs, then origins */
    if (!*props) return -1;
    for (int i = 0; i < n; i++) {
        (*props)[2 * i] = c->kafka_props[i].key;
        (*props)[2 * i + 1] = c->kafka_props[i].val;
        (*props)[2 * n + i] = c->kafka_props[i].origin;
    }
    *o = (strm_kopts_t){.brokers = rp->brokers,
                        .group_id = "segstream-replay",
                        .client_id = "segstream-replay",
                        .props = *props,
                        .n_props = n,
                        .origins = *props + 2 * n,
                        .log = cli_kafka_log};
    return 0;
}

int rp_kafka_check(replay_t *rp)
{
    char err[512];
    const char **props = NULL;
    strm_kopts_t o;
    if (kopts(rp, &o, &props) < 0) {
        fprintf(stderr, "segstream replay: out of memory\n");
        return -1;
    }
    int rc = strm_kopts_check(&o, err, sizeof(err));
    if (rc < 0) fprintf(stderr, "segstream replay: %s\n", err); /* names its origin */
    free(props);
    return rc;
}

/* ---------------- out: change events and dead letters to topics ---------------- */

struct rp_kout {
    strm_producer_t *p;
    const char **props;
    uint64_t sent, delivered, failed;
    char error[256];
    const strm_msg_t *cur; /* the input record being applied (its key for dead letters) */
};

static void on_delivery(void *ud, void *opaque, const char *error, const char *topic,
                        const void *key, size_t key_len, const void *payload, size_t len)
{
    struct rp_kout *k = ud;
    if (!error) {
        k->delivered++;
        return;
    }
    if (!k->failed++) snprintf(k->error, sizeof(k->error), "delivery to %s: %s", topic, error);
}

int rp_kout_open(replay_t *rp)
{
    char err[512];
    struct rp_kout *k = calloc(1, sizeof(*k));
    strm_kopts_t o;
    if (!k || kopts(rp, &o, &k->props) < 0) {
        fprintf(stderr, "segstream replay: out of memory\n");
        free(k);
        return -1;
    }
    k->p = strm_producer_new(&o, on_delivery, k, err, sizeof(err));
    if (!k->p) {
        fprintf(stderr, "segstream replay: %s\n", err); /* a property's error names its origin */
        free(k->props);
        free(k);
        return -1;
    }
    rp->kout = k;
    return 0;
}

/* Queues one record, serving deliveries while the queue is full. */
static int produce(replay_t *rp, const char *topic, const void *key, size_t key_len, const void *p,
                   size_t len, int64_t ts, const strm_header_t *h, int nh)
{
    struct rp_kout *k = rp->kout;
    char err[512];
    for (;;) {
        if (k->failed) {
            fprintf(stderr, "segstream replay: %s\n", k->error);
            return -1;
        }
        int rc = strm_producer_send(k->p, topic, key, key_len, p, len, ts, h, nh, NULL, err,
                                    sizeof(err));
        if (rc == 0) break;
        if (rc < 0) {
            fprintf(stderr, "segstream replay: %s\n", err);
            return -1;
        }
        strm_producer_poll(k->p, 50);
    }
    if ((++k->sent & 1023) == 0) strm_producer_poll(k->p, 0);
    return 0;
}

/* Keyed by customer id and stamped with the change's event time, so the
 * output topic can itself be replayed by time. */
int rp_kout_change(void *ud, const seg_change_t *ch, const void *payload, size_t len)
{
    replay_t *rp = ud;
    strm_header_t h = {"segstream_replay", rp->input, strlen(rp->input)};
    return produce(rp, rp->out_topic, ch->cust->id, ch->cust->id_len, payload, len,
                   ch->ts >= 0 ? ch->ts : 0, &h, 1);
}

/* As run's dead letters: the original bytes (cut at DLQ_MAX_BYTES, the
 * size then in `truncated_from`) with `error`, `topic`, `partition` and
 * `offset` headers, keyed as the input record was. */
int rp_kout_dead(void *ud, const void *payload, size_t len, const char *reason, const char *topic,
                 int32_t partition, int64_t offset)
{
    replay_t *rp = ud;
    strm_dlq_headers_t d;
    strm_dlq_headers(&d, reason, topic, partition, offset, "segstream_replay", rp->input, len,
                     DLQ_MAX_BYTES);
    const strm_msg_t *m = rp->kout->cur;
    size_t key_len = 0;
    const void *key =
        pl_part_key_of(&rp->pl.file, partition, offset, &key_len); /* a held record's own */
    if (!key && m && m->offset == offset && m->partition == partition) {
        key = m->key;
        key_len = m->key_len;
    }
    return produce(rp, rp->dlq_topic, key, key_len, payload, d.send, -1, d.h, d.n);
}

int rp_kout_close(replay_t *rp, int timeout_ms)
{
    struct rp_kout *k = rp->kout;
    if (!k) return 0;
    int left = strm_producer_flush(k->p, timeout_ms);
    strm_producer_poll(k->p, 0);
    int rc = 0;
    if (left || k->failed) {
        fprintf(stderr, "segstream replay: %" PRIu64 " of %" PRIu64 " records not delivered%s%s\n",
                k->sent - k->delivered, k->sent, k->failed ? ": " : "", k->error);
        rc = -1;
    }
    strm_producer_free(k->p);
    free(k->props);
    free(k);
    rp->kout = NULL;
    return rc;
}

/* ---------------- in: a range of a topic, merged by event time ---------------- */

typedef struct kpart {
    int32_t id;
    int64_t start, end; /* offsets: where reading began, the end at start (exclusive) */
    int64_t pos;        /* the next offset to come */
    int done;           /* nothing after the head (if any) */
    strm_msg_t *buf;    /* fetched, buf[i..n) not yet looked at */
    int n, i;
    strm_msg_t head; /* the next record in range, when has_head */
    int has_head;
    int64_t key; /* the head's event time; INT64_MIN when it does not decode */
} kpart_t;

typedef struct kin {
    replay_t *rp;
    strm_reader_t *rd;
    const char *topic;
    kpart_t *parts;
    int np;
    int sought;       /* some partition starts after its beginning (--seek-by-time) */
    seg_event_t ev;   /* scratch: the head's decoded event time */
    FILE *dump;       /* --dump */
    int dump_msgpack; /* the dump's format, fixed by its first record (-1: not yet) */
    uint64_t dump_n, dump_left_out;
    int64_t total;  /* records between the start and end offsets */
    uint64_t taken; /* records taken from the partitions (applied or skipped) */
    double shown;   /* when progress was last shown */
} kin_t;

static void progress(kin_t *k);

/* 1 when a's head goes before b's: (event time, partition). */
static int before(const kpart_t *a, const kpart_t *b)
{
    return a->key != b->key ? a->key < b->key : a->id < b->id;
}

static int is_msgpack_map(const void *p, size_t len)
{
    unsigned char b = len ? *(const unsigned char *)p : 0;
    return (b >= 0x80 && b <= 0x8f) || b == 0xde || b == 0xdf;
}

/* One record to the dump, in the order applied. A dump holds one format,
 * fixed by its first record: JSON lines (a line break inside a record, only
 * possible as whitespace in JSON, becomes a space) or a msgpack stream. A
 * record the format cannot frame (an unreadable one in a msgpack dump, a
 * msgpack one in a JSON dump) is left out and counted. */
static int dump_record(kin_t *k, const strm_msg_t *m)
{
    int mp = is_msgpack_map(m->payload, m->len);
    if (k->dump_msgpack < 0) k->dump_msgpack = mp;
    if (mp != k->dump_msgpack || !m->len) {
        k->dump_left_out++;
        return 0;
    }
    if (k->dump_msgpack) {
        if (fwrite(m->payload, 1, m->len, k->dump) != m->len) return -1;
    } else {
        const char *p = m->payload;
        for (size_t i = 0; i < m->len; i++)
            if (putc(p[i] == '\n' || p[i] == '\r' ? ' ' : p[i], k->dump) == EOF) return -1;
        if (putc('\n', k->dump) == EOF) return -1;
    }
    k->dump_n++;
    return 0;
}

/* Brings p's head: its next record in [from, to), or done. Waits for the
 * broker as long as it takes, up to STALL_FAIL_S of silence. 0, or -1
 * after saying why. */
static int fill(kin_t *k, kpart_t *p)
{
    replay_t *rp = k->rp;
    pl_t *pl = &rp->pl;
    char err[512];
    double since = 0, warned = 0; /* waiting for this partition since, warned at */
    while (!p->has_head && !p->done) {
        if (p->i == p->n) {
            p->i = p->n = 0;
            int n = strm_reader_read(k->rd, p->id, p->buf, BATCH, WAIT_MS, err, sizeof(err));
            if (n < 0) {
                fprintf(stderr, "segstream replay: %s\n", err);
                return -1;
            }
            if (n > 0) {
                p->n = n;
                since = 0;
                continue;
            }
            double now = cli_monotonic_s();
            if (since == 0) since = warned = now;
            if (now - since >= STALL_FAIL_S) {
                const char *why = strm_reader_last_error(k->rd);
                fprintf(stderr,
                        "segstream replay: %s [%d]: nothing for %.0f s at offset %" PRId64
                        " (end %" PRId64 ")%s%s\n",
                        k->topic, (int)p->id, now - since, p->pos, p->end, why ? ": " : "",
                        why ? why : "");
                return -1;
            }
            if (now - warned >= STALL_WARN_S) {
                const char *why = strm_reader_last_error(k->rd);
                cli_log(LOG_WARN, "%s [%d]: waiting for offset %" PRId64 " (end %" PRId64 ")%s%s",
                        k->topic, (int)p->id, p->pos, p->end, why ? ": " : "", why ? why : "");
                warned = now;
            }
            continue;
        }
        strm_msg_t *m = &p->buf[p->i++];
        if (m->error) {
            int fatal = m->error_fatal;
            if (m->eof && m->offset >= p->end)
                p->done = 1; /* the end as it was at start (or later) is reached */
            else if (fatal)
                fprintf(stderr, "segstream replay: %s [%d]: fatal: %s\n", k->topic, (int)p->id,
                        m->error);
            else if (!m->eof)
                cli_log(LOG_WARN, "%s [%d]: %s", k->topic, (int)p->id, m->error);
            strm_msgs_release(m, 1);
            if (fatal) return -1;
            continue;
        }
        if (m->offset >= p->end) { /* produced after the replay started: not in it */
            p->done = 1;
            strm_msgs_release(m, 1);
            continue;
        }
        p->pos = m->offset + 1;
        if (p->pos >= p->end) p->done = 1;
        if (rp->progress && (++k->taken & 0x3ff) == 0) progress(k);
        const char *reason;
        int ok = strm_decode(m->payload, m->len, rp->cfg.max_event_bytes, &k->ev, &reason) == 0;
        int64_t margin = rp->cfg.max_future_skew_ms;
        if (ok && k->sought && m->timestamp < k->ev.ts - margin) {
            fprintf(stderr,
                    "segstream replay: %s [%d] offset %" PRId64 ": record timestamp %" PRId64
                    " is earlier than its event time %" PRId64
                    " (by more than input.max_future_skew): these timestamps cannot locate "
                    "--from, and records skipped by --seek-by-time may have been in range; "
                    "replay again without --seek-by-time\n",
                    k->topic, (int)p->id, m->offset, m->timestamp, k->ev.ts);
            strm_msgs_release(m, 1);
            return -1;
        }
        if (ok && (k->ev.ts < pl->from || k->ev.ts >= pl->to)) {
            pl->st.skipped++; /* outside the replayed range: as if absent */
            strm_msgs_release(m, 1);
            continue;
        }
        p->head = *m;
        m->rk_msg_ = NULL; /* owned by the head now */
        p->has_head = 1;
        p->key = ok ? k->ev.ts : INT64_MIN;
    }
    return 0;
}

/* events, events/s, where in event time, how much of the offsets is read */
static void progress(kin_t *k)
{
    double now = cli_monotonic_s();
    if (now - k->shown < 0.5) return;
    k->shown = now;
    replay_t *rp = k->rp;
    int64_t read = 0;
    for (int i = 0; i < k->np; i++)
        read += (k->parts[i].done && !k->parts[i].has_head ? k->parts[i].end : k->parts[i].pos) -
                k->parts[i].start;
    double el = now - rp->t0, frac = k->total > 0 ? (double)read / (double)k->total : 1;
    char at[32] = "-";
    if (rp->pl.has_W) cli_fmt_time(rp->pl.W, at, sizeof(at));
    fprintf(stderr, "\r%" PRIu64 " events  %.0f/s  at %s  %.1f%%  eta %.0fs   ", rp->pl.st.records,
            el > 0 ? rp->pl.st.records / el : 0.0, at, 100.0 * frac,
            frac > 0 ? el * (1 / frac - 1) : 0.0);
}

/* Where each partition starts and ends: the end offsets now, and the
 * beginning, or with --seek-by-time the offset for from - skew when the
 * broker can tell. */
static int plan(kin_t *k)
{
    replay_t *rp = k->rp;
    char err[512];
    int64_t *start = calloc((size_t)k->np, sizeof(int64_t));
    int64_t *seek = calloc((size_t)k->np, sizeof(int64_t));
    int rc = -1;
    if (!start || !seek) {
        fprintf(stderr, "segstream replay: out of memory\n");
        goto done;
    }
    for (int i = 0; i < k->np; i++) seek[i] = -1;
    if (rp->seek_by_time && rp->pl.from != INT64_MIN) {
        int64_t t = rp->pl.from - rp->cfg.max_future_skew_ms;
        if (strm_reader_offsets_for_time(k->rd, k->np, t < 0 ? 0 : t, seek, META_MS, err,
                                         sizeof(err)) < 0)
            cli_log(LOG_WARN, "%s; reading every partition from its beginning", err);
    }
    for (int i = 0; i < k->np; i++) {
        kpart_t *p = &k->parts[i];
        int64_t lo, hi;
        if (strm_reader_offsets(k->rd, i, &lo, &hi, META_MS, err, sizeof(err)) < 0) {
            fprintf(stderr, "segstream replay: %s\n", err);
            goto done;
        }
        p->id = i;
        p->end = hi;
        /* -1: no record stamped at or after the target, or the broker
         * cannot tell (the mock cluster): the beginning, to be safe */
        p->start = seek[i] > lo ? seek[i] : lo;
        if (seek[i] > lo) k->sought = 1;
        p->pos = p->start;
        p->done = p->start >= p->end;
        start[i] = p->done ? -1 : seek[i] > lo ? p->start : STRM_OFFSET_BEGINNING;
        k->total += p->end - p->start;
        if (!p->done && !(p->buf = calloc(BATCH, sizeof(strm_msg_t)))) {
            fprintf(stderr, "segstream replay: out of memory\n");
            goto done;
        }
        cli_log(LOG_DEBUG, "%s [%d]: offsets %" PRId64 "..%" PRId64 ", reading from %" PRId64,
                k->topic, i, lo, hi, p->start);
    }
    if (strm_reader_start(k->rd, k->np, start, err, sizeof(err)) < 0) {
        fprintf(stderr, "segstream replay: %s\n", err);
        goto done;
    }
    rc = 0;
done:
    free(start);
    free(seek);
    return rc;
}

/* ---------------- the live run's wall-clock advances of W ----------------
 * `run` records each advance of W made by the wall clock while every
 * partition was idle (watermark.control_topic): W, and the offset each of
 * its partitions had reached. Those records are barriers here: every record
 * before the offsets is applied (in the merge's order), then W advances as
 * it did live, then the merge goes on. So silent changes the live run made
 * while the stream was quiet, and the W that later events met, are made
 * again. Only records naming every partition of the topic are used (one
 * process owned them all; a group's members each had their own W). */
typedef struct barrier {
    int64_t W;
    int64_t *off; /* per partition: records below this offset come first */
} barrier_t;

static int cmp_barrier(const void *a, const void *b)
{
    const barrier_t *x = a, *y = b;
    return x->W != y->W ? (x->W < y->W ? -1 : 1) : 0;
}

/* Parses {"W":..,"offsets":{"TOPIC:P":N,...},...}; 1 when it names every
 * partition of topic (0..np-1), 0 when it does not concern this replay. */
static int parse_barrier(const char *p, size_t len, const char *topic, int np, barrier_t *b)
{
    char buf[16384];
    if (len >= sizeof(buf)) return 0;
    memcpy(buf, p, len);
    buf[len] = 0;
    const char *w = strstr(buf, "\"W\":"), *o = strstr(buf, "\"offsets\":{");
    if (!w || !o) return 0;
    b->W = strtoll(w + 4, NULL, 10);
    for (int i = 0; i < np; i++) b->off[i] = INT64_MIN;
    size_t tl = strlen(topic);
    int named = 0;
    for (const char *q = o + 11; *q == '"';) {
        const char *e = strchr(q + 1, '"');
        if (!e || e[1] != ':') return 0;
        const char *colon = e - 1;
        while (colon > q && *colon != ':') colon--;
        char *end;
        long long off = strtoll(e + 2, &end, 10);
        if ((size_t)(colon - q - 1) != tl || memcmp(q + 1, topic, tl) != 0) return 0;
        long part = strtol(colon + 1, NULL, 10);
        if (part < 0 || part >= np) return 0;
        if (b->off[part] == INT64_MIN) named++;
        b->off[part] = off < 0 ? 0 : off;
        q = *end == ',' ? end + 1 : end;
    }
    return named == np;
}

/* Reads the control topic up to its end; *out sorted by W. 0, or -1 after
 * saying why (an absent topic is not an error unless it was asked for). */
static int load_barriers(kin_t *k, const char *ctl, int asked, barrier_t **out, int *n_out)
{
    replay_t *rp = k->rp;
    char err[512];
    const char **props = NULL;
    strm_kopts_t o;
    int rc = -1, n = 0, cap = 0, other = 0;
    barrier_t *v = NULL;
    int64_t *hi = NULL, *start = NULL;
    strm_msg_t *buf = NULL;
    *out = NULL;
    *n_out = 0;
    if (kopts(rp, &o, &props) < 0) return -1;
    strm_reader_t *rd = strm_reader_new(&o, ctl, err, sizeof(err));
    int np = rd ? strm_reader_partitions(rd, META_MS, err, sizeof(err)) : -1;
    if (np < 0) {
        if (asked)
            fprintf(stderr, "segstream replay: --watermarks %s: %s\n", ctl, err);
        else
            cli_log(LOG_INFO, "no watermark records (%s: %s): W follows event time only", ctl, err);
        rc = asked ? -1 : 0;
        goto done;
    }
    hi = calloc((size_t)np, sizeof(int64_t));
    start = calloc((size_t)np, sizeof(int64_t));
    buf = calloc(BATCH, sizeof(strm_msg_t));
    if (!hi || !start || !buf) goto done;
    for (int i = 0; i < np; i++) {
        int64_t lo;
        if (strm_reader_offsets(rd, i, &lo, &hi[i], META_MS, err, sizeof(err)) < 0) {
            fprintf(stderr, "segstream replay: %s: %s\n", ctl, err);
            goto done;
        }
        start[i] = hi[i] > lo ? STRM_OFFSET_BEGINNING : -1;
    }
    if (strm_reader_start(rd, np, start, err, sizeof(err)) < 0) {
        fprintf(stderr, "segstream replay: %s: %s\n", ctl, err);
        goto done;
    }
    for (int i = 0; i < np; i++) {
        double since = cli_monotonic_s();
        int64_t pos = start[i] == -1 ? hi[i] : 0; /* -1: empty, not read */
        while (pos < hi[i]) {
            int got = strm_reader_read(rd, i, buf, BATCH, WAIT_MS, err, sizeof(err));
            if (got < 0 || cli_monotonic_s() - since > STALL_FAIL_S) {
                fprintf(stderr, "segstream replay: %s [%d]: %s\n", ctl, i,
                        got < 0 ? err : "no progress");
                goto done;
            }
            for (int j = 0; j < got; j++) {
                strm_msg_t *m = &buf[j];
                if (m->error) {
                    if (m->eof && m->offset >= hi[i]) pos = hi[i];
                    continue;
                }
                pos = m->offset + 1;
                if (m->offset >= hi[i]) continue;
                if (n == cap) {
                    barrier_t *nv = realloc(v, (size_t)(cap = cap ? cap * 2 : 64) * sizeof(*v));
                    if (!nv) goto done;
                    v = nv;
                }
                v[n].off = malloc((size_t)k->np * sizeof(int64_t));
                if (!v[n].off) goto done;
                if (parse_barrier(m->payload, m->len, k->topic, k->np, &v[n]))
                    n++;
                else
                    free(v[n].off), other++;
            }
            strm_msgs_release(buf, got);
            if (got > 0) since = cli_monotonic_s();
        }
    }
    qsort(v, (size_t)n, sizeof(*v), cmp_barrier);
    if (!rp->quiet)
        cli_log(LOG_INFO, "%d wall-clock advances of W from %s%s", n, ctl,
                other ? " (records of other partition sets ignored)" : "");
    *out = v;
    *n_out = n;
    v = NULL;
    n = 0;
    rc = 0;
done:
    for (int i = 0; i < n; i++) free(v[i].off);
    free(v);
    free(hi);
    free(start);
    free(buf);
    if (rd) strm_reader_free(rd);
    free(props);
    return rc;
}

int rp_input_kafka(replay_t *rp, const char *topic)
{
    char err[512];
    kin_t k = {.rp = rp, .topic = topic, .dump_msgpack = -1};
    barrier_t *bar = NULL;
    int nb = 0, bi = 0;
    const char **props = NULL;
    strm_kopts_t o;
    int rc = -1;
    if (kopts(rp, &o, &props) < 0) {
        fprintf(stderr, "segstream replay: out of memory\n");
        return -1;
    }
    k.rd = strm_reader_new(&o, topic, err, sizeof(err));
    if (!k.rd) {
        /* a property's error names where it was set (rp_kafka_check has
         * said those already); anything else is the config's as a whole */
        const char *src = rp->cfg.source ? rp->cfg.source : "config";
        size_t sl = strlen(src);
        if ((strncmp(err, src, sl) == 0 && err[sl] == ':') || strncmp(err, "env ", 4) == 0)
            fprintf(stderr, "segstream replay: %s\n", err);
        else
            fprintf(stderr, "segstream replay: %s: %s\n", src, err);
        goto done;
    }
    k.np = strm_reader_partitions(k.rd, META_MS, err, sizeof(err));
    if (k.np < 0) {
        fprintf(stderr, "segstream replay: %s (brokers %s)\n", err, rp->brokers);
        goto done;
    }
    k.parts = calloc((size_t)k.np, sizeof(*k.parts));
    if (!k.parts) {
        fprintf(stderr, "segstream replay: out of memory\n");
        goto done;
    }
    if (plan(&k) < 0) goto done;
    if (rp->dump && !(k.dump = cli_open_out(rp->dump))) {
        fprintf(stderr, "segstream replay: --dump %s: cannot write\n", rp->dump);
        goto done;
    }
    if (!rp->quiet)
        cli_log(LOG_INFO, "replaying %s: %d partitions, %" PRId64 " records to read%s", topic, k.np,
                k.total, k.sought ? " (some skipped by --seek-by-time)" : "");

    const char *ctl = rp->watermarks ? rp->watermarks : rp->cfg.control_topic;
    if (ctl && *ctl && strcmp(ctl, "none") != 0 &&
        load_barriers(&k, ctl, rp->watermarks != NULL, &bar, &nb) < 0)
        goto done;

    for (;;) {
        const barrier_t *b = bi < nb ? &bar[bi] : NULL;
        kpart_t *best = NULL;
        for (int i = 0; i < k.np; i++) {
            kpart_t *p = &k.parts[i];
            if (fill(&k, p) < 0) goto done;
            if (!p->has_head || (b && p->head.offset >= b->off[i])) continue;
            if (!best || before(p, best)) best = p;
        }
        if (!best && b) {
            /* everything before the barrier is applied: W moves as it did
             * live, where partitions idle long enough for it had their held
             * record decided first */
            int64_t W = b->W < rp->pl.to ? b->W : rp->pl.to - 1;
            if (pl_part_end(&rp->pl, &rp->pl.file) < 0 || pl_advance(&rp->pl, W) < 0) {
                fprintf(stderr, "segstream replay: writing output failed\n");
                goto done;
            }
            bi++;
            continue;
        }
        if (!best) break; /* every partition reached its end */
        strm_msg_t *m = &best->head;
        if (k.dump && dump_record(&k, m) < 0) {
            fprintf(stderr, "segstream replay: --dump %s: cannot write\n", rp->dump);
            goto done;
        }
        if (rp->kout) rp->kout->cur = m;
        int r = pl_record(&rp->pl, m->payload, m->len, topic, m->partition, m->offset);
        if (rp->kout) rp->kout->cur = NULL;
        pl_part_hold_key(&rp->pl.file, m->partition, m->offset, m->key, m->key_len);
        strm_msgs_release(m, 1);
        best->has_head = 0;
        if (r < 0) {
            fprintf(stderr, "segstream replay: writing output failed\n");
            goto done;
        }
    }
    if (k.dump && fflush(k.dump) != 0) {
        fprintf(stderr, "segstream replay: --dump %s: cannot write\n", rp->dump);
        goto done;
    }
    if (k.dump_left_out)
        cli_log(LOG_WARN,
                "--dump %s: %" PRIu64 " records left out (not in the dump's %s format, or empty)",
                rp->dump, k.dump_left_out, k.dump_msgpack ? "msgpack" : "JSON");
    rc = 0;
done:
    if (rp->progress) fprintf(stderr, "\r%*s\r", 70, "");
    for (int i = 0; k.parts && i < k.np; i++) {
        kpart_t *p = &k.parts[i];
        if (p->has_head) strm_msgs_release(&p->head, 1);
        if (p->buf) strm_msgs_release(p->buf + p->i, p->n - p->i);
        free(p->buf);
    }
    free(k.parts);
    for (int i = 0; i < nb; i++) free(bar[i].off);
    free(bar);
    if (k.dump && cli_close_out(k.dump) != 0 && rc == 0) {
        fprintf(stderr, "segstream replay: --dump %s: cannot write\n", rp->dump);
        rc = -1;
    }
    strm_reader_free(k.rd);
    free(props);
    return rc;
}
