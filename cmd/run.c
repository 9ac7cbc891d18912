/* cmd/run.c: `segstream run`, the daemon. One libuv loop drives everything:
 * the group consumer and the producer wake it through their io-event pipes,
 * a 100 ms tick polls both (so the group never times us out), moves the
 * watermark and serves backpressure, and /metrics and /healthz are served
 * from the same loop. Owns the partitions' watermark state and the ledger
 * that stores an input offset only once every change event it caused has
 * been delivered. State lives in this process (the in-memory store). */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include "cmd/cli.h"
#include "cmd/run.h"

static const double batch_le[N_BUCKETS] = {1, 10, 100, 1000};

static void usage(FILE *f)
{
    fprintf(f, "usage: segstream run [-c FILE]\n"
               "  -c, --config FILE  YAML configuration (defaults otherwise; every key can\n"
               "                     be overridden by SEGSTREAM_<SECTION>_<KEY>)\n"
               "Consumes kafka.topics in group kafka.group_id, publishes segment changes to\n"
               "kafka.changes_topic and unusable events to kafka.dlq_topic, and serves\n"
               "/metrics and /healthz on http.listen. SIGTERM, SIGINT or SIGHUP (unless\n"
               "ignored at start, as under nohup) drains in-flight work, commits and exits 0.\n");
}

#define begin_stop run_begin_stop

/* ---------------- partitions ---------------- */

static int find_part(run_t *r, const char *topic, int32_t partition, int create)
{
    int l = r->last_part;
    if (l >= 0 && l < r->n_parts && r->parts[l].partition == partition &&
        strcmp(r->parts[l].topic, topic) == 0)
        return l;
    for (int i = 0; i < r->n_parts; i++)
        if (r->parts[i].partition == partition && strcmp(r->parts[i].topic, topic) == 0)
            return r->last_part = i;
    if (!create) return -1;
    if (r->n_parts == r->cap_parts) {
        int cap = r->cap_parts ? 2 * r->cap_parts : 16;
        part_t *p = realloc(r->parts, (size_t)cap * sizeof(*p));
        if (!p) return -1;
        r->parts = p;
        r->cap_parts = cap;
    }
    part_t *p = &r->parts[r->n_parts];
    memset(p, 0, sizeof(*p));
    p->topic = strdup(topic);
    if (!p->topic) return -1;
    p->partition = partition;
    p->next_offset = -1;
    p->taken_next = -1;
    p->taken_ts = INT64_MIN;
    p->w_floor = INT64_MIN;
    pl_part_init(&p->pp);
    return r->last_part = r->n_parts++;
}

/* Frees the partitions (their queues hold nothing by now). */
static void parts_free(run_t *r)
{
    for (int i = 0; i < r->n_parts; i++) {
        free(r->parts[i].topic);
        free(r->parts[i].q);
        pl_part_drop(&r->parts[i].pp);
    }
    free(r->parts);
    r->parts = NULL;
    r->n_parts = r->cap_parts = 0;
}

int find_part_ext(run_t *r, const char *topic, int32_t partition)
{
    return find_part(r, topic, partition, 0);
}

/* Releases what partition i's queue holds. */
static void q_clear(run_t *r, int i)
{
    part_t *p = &r->parts[i];
    for (int j = 0; j < p->q_n; j++) strm_msgs_release(&p->q[(p->q_head + j) % p->q_cap].m, 1);
    r->buffered -= p->q_n;
    if (p->q_n) r->batch_n = 0; /* a batch waiting for its customers is merged again */
    p->q_head = p->q_n = 0;
    p->merge_wait = 0;
}

/* Partition i paused (1) or resumed (0) because of its queue's length; a
 * resume waits for the consumer's own (backpressure) while that lasts. */
static void q_pause(run_t *r, int i, int pause)
{
    part_t *p = &r->parts[i];
    if (p->q_paused == pause) return;
    p->q_paused = pause;
    if (!r->paused) strm_consumer_pause_one(r->cons, p->topic, p->partition, pause);
}

static int owns(void *ud, const seg_customer_t *c)
{
    run_t *r = ud;
    if (r->ck && !ck_usable(r, c)) return 0; /* reloaded from Redis when due */
    if (c->handle >= r->cap_owner || r->owner[c->handle] < 0) return 1;
    if (r->parts[r->owner[c->handle]].owned) return 1;
    if (r->n_dormant == r->cap_dormant) {
        size_t cap = r->cap_dormant ? 2 * r->cap_dormant : 1024;
        uint32_t *d = realloc(r->dormant, cap * sizeof(*d));
        if (!d) return 0; /* it stays dormant until its next event */
        r->dormant = d;
        r->cap_dormant = cap;
    }
    r->dormant[r->n_dormant++] = (uint32_t)c->handle;
    return 0;
}

int run_own(run_t *r, uint64_t handle, int part)
{
    if (handle >= r->cap_owner) {
        uint64_t cap = r->cap_owner ? 2 * r->cap_owner : 4096;
        while (cap <= handle) cap *= 2;
        int32_t *o = realloc(r->owner, cap * sizeof(*o));
        if (!o) return -1;
        for (uint64_t i = r->cap_owner; i < cap; i++) o[i] = -1;
        r->owner = o;
        r->cap_owner = cap;
    }
    r->owner[handle] = part;
    return 0;
}

static void on_applied(void *ud, const seg_customer_t *c)
{
    run_t *r = ud;
    run_own(r, c->handle, r->cur_part);
    if (r->ck) ck_dirty(r, c);
}

/* ---------------- the delivery ledger ---------------- */

static unit_t *unit_open(run_t *r)
{
    unit_t *u = calloc(1, sizeof(*u));
    if (!u) return NULL;
    u->seq = ++r->unit_seq;
    if (r->tail)
        r->tail->next = u;
    else
        r->head = u;
    r->tail = u;
    return r->cur = u;
}

static int unit_offset(unit_t *u, int part, uint32_t gen, int64_t next)
{
    for (int i = u->n_offs - 1; i >= 0; i--)
        if (u->offs[i].part == part && u->offs[i].gen == gen) {
            u->offs[i].next = next;
            return 0;
        }
    if (u->n_offs == u->cap_offs) {
        int cap = u->cap_offs ? 2 * u->cap_offs : 8;
        void *o = realloc(u->offs, (size_t)cap * sizeof(*u->offs));
        if (!o) return -1;
        u->offs = o;
        u->cap_offs = cap;
    }
    u->offs[u->n_offs].part = part;
    u->offs[u->n_offs].gen = gen;
    u->offs[u->n_offs++].next = next;
    return 0;
}

/* Stores the offsets of every finished unit at the head, in order: an
 * offset is committed only when all that came before it is delivered. */
static void units_complete(run_t *r)
{
    while (r->head && r->head->closed && r->head->pending == 0) {
        unit_t *u = r->head;
        /* with Redis, offsets are stored by the checkpoint that holds their
         * effects (ckpt.c), not as soon as their changes are delivered */
        for (int i = 0; i < u->n_offs && !r->ck; i++) {
            part_t *p = &r->parts[u->offs[i].part];
            if (p->owned && p->gen == u->offs[i].gen)
                strm_consumer_store(r->cons, p->topic, p->partition, u->offs[i].next);
        }
        r->done_seq = u->seq;
        r->head = u->next;
        if (!r->head) r->tail = NULL;
        free(u->offs);
        free(u);
    }
}

static void unit_close(run_t *r);

unit_t *run_unit_open(run_t *r)
{
    return unit_open(r);
}

void run_unit_close(run_t *r)
{
    unit_close(r);
}

static void unit_close(run_t *r)
{
    if (r->cur) r->cur->closed = 1;
    r->cur = NULL;
    units_complete(r);
    if (r->ck) ck_units_done(r);
}

static void on_delivery(void *ud, void *opaque, const char *error, const char *topic,
                        const void *key, size_t key_len, const void *payload, size_t len)
{
    run_t *r = ud;
    unit_t *u = opaque;
    if (error && !u && *r->cfg.control_topic && strcmp(topic, r->cfg.control_topic) == 0) {
        /* a lost watermark record costs replays their exactness, not the
         * live output: say so, go on */
        cli_log(LOG_WARN, "cannot record the watermark in %s: %s (replays of this span may differ)",
                topic, error);
        return;
    }
    if (error) {
        /* the producer already retried what can be retried: this one cannot
         * be delivered, so its input offset must never be committed */
        cli_log(LOG_ERROR, "cannot deliver to %s: %s; stopping without committing past it", topic,
                error);
        begin_stop(r, 1);
        return;
    }
    r->delivered++;
    if (u) u->pending--;
}

static void deliveries(run_t *r)
{
    strm_producer_poll(r->prod, 0);
    units_complete(r);
    if (r->ck) ck_units_done(r);
}

/* Queues one record; waits (serving deliveries) while the queue is full. */
static int produce(run_t *r, const char *topic, const void *key, size_t key_len, const void *p,
                   size_t len, const strm_header_t *h, int nh)
{
    char err[256];
    unit_t *u = r->cur;
    for (;;) {
        int rc = strm_producer_send(r->prod, topic, key, key_len, p, len, -1, h, nh, u, err,
                                    sizeof(err));
        if (rc == 0) break;
        if (rc < 0) {
            cli_log(LOG_ERROR, "%s", err);
            return -1;
        }
        r->queue_full++;
        strm_producer_poll(r->prod, 50);
        if (r->stopping && r->exit_code) return -1;
    }
    r->produced++;
    if (u) u->pending++;
    return 0;
}

int run_produce_change(run_t *r, const void *key, size_t key_len, const char *instance,
                       size_t instance_len, const void *p, size_t len)
{
    strm_header_t h = {"segstream_instance", instance, instance_len};
    return produce(r, r->cfg.changes_topic, key, key_len, p, len, &h, 1);
}

static int sink_change(void *ud, const seg_change_t *ch, const void *p, size_t len)
{
    run_t *r = ud;
    if (r->ck) ck_dirty(r, ch->cust); /* silent changes touch customers too */
    /* a cluster decision is not made again alike after a crash: published
     * only once the checkpoint that holds it has landed (ckpt.c, outbox) */
    if (ch->dim == SEG_DIM_CLUSTER && r->cfg.redis_url && *r->cfg.redis_url) {
        /* once a stop with an error has freed ck, no checkpoint lands: the
         * change is dropped with the state it came from, as outbox entries
         * are, not published for a state Redis never records */
        return r->ck ? ck_outbox(r, ch->cust, p, len) : 0;
    }
    return run_produce_change(r, ch->cust->id, ch->cust->id_len, r->instance, strlen(r->instance),
                              p, len);
}

/* The original bytes (cut at DLQ_MAX_PAYLOAD, with the size kept in a
 * header: the whole record stays at topic/partition/offset) and why. */
static int sink_dead(void *ud, const void *p, size_t len, const char *reason, const char *topic,
                     int32_t partition, int64_t offset)
{
    run_t *r = ud;
    strm_dlq_headers_t d;
    strm_dlq_headers(&d, reason, topic, partition, offset, "segstream_instance", r->instance, len,
                     DLQ_MAX_PAYLOAD);
    const strm_msg_t *m = r->cur_msg;
    const void *key = NULL;
    size_t key_len = 0;
    if (m && m->offset == offset && m->partition == partition) {
        key = m->key;
        key_len = m->key_len;
    } else { /* a held record, decided later: its own key */
        int k = find_part(r, topic, partition, 0);
        if (k >= 0) key = pl_part_key_of(&r->parts[k].pp, partition, offset, &key_len);
    }
    r->dlq_out++;
    return produce(r, r->cfg.dlq_topic, key, key_len, p, d.send, d.h, d.n);
}

/* A partition idle with a record held as far ahead: nothing near it came.
 * Applied if the other partitions caught up with it meanwhile (its
 * customer is still here from its batch's prefetch: a revoke drops the
 * held record), else a producer's bad clock: dead-lettered. In a unit of
 * its own; the partition's offset moves past it once that is delivered. */
static int held_expire(run_t *r, int i)
{
    part_t *p = &r->parts[i];
    if (!unit_open(r)) return -1;
    r->cur_part = i;
    int rc = pl_part_end(&r->pl, &p->pp);
    if (rc < 0 || unit_offset(r->cur, i, p->gen, p->next_offset) < 0) {
        r->cur = NULL;
        return -1;
    }
    unit_close(r);
    return 0;
}

/* ---------------- the watermark ---------------- */

typedef struct check {
    uv_work_t w;
    run_t *r;
    int part;
    char *topic;
    int32_t partition;
    int64_t next;  /* the partition's next_offset when asked (what the answer is about) */
    int64_t query; /* the offset asked about: next, or past the transaction markers after it */
    double started;
    int result;
} check_t;

static int advance_watermark(run_t *r);

/* A broker query (idle check: 2 s; health probe: 3 s) still out after
 * these: librdkafka 2.0 lets it hang while no broker accepts a connection
 * (#2588), and hung queries fill libuv's four pool threads, so the probe
 * that would say so may never run. An idle check that late ends its
 * partition's idleness; any query that late makes /healthz 503. */
#define CHECK_LATE_S 5.0
#define QUERY_LATE_S 10.0

/* Seconds the oldest broker query in flight has been out, 0 if none. */
static double oldest_query(const run_t *r, double now)
{
    double age = r->probing ? now - r->probe_at : 0;
    for (int i = 0; i < r->n_parts; i++)
        if (r->parts[i].checking && now - r->parts[i].check_sent > age)
            age = now - r->parts[i].check_sent;
    return age;
}

static void check_work(uv_work_t *w)
{
    check_t *k = w->data;
    k->result = strm_consumer_caught_up(k->r->cons, k->topic, k->partition, k->query, 2000);
}

static void check_done(uv_work_t *w, int status)
{
    check_t *k = w->data;
    run_t *r = k->r;
    part_t *p = &r->parts[k->part];
    p->checking = 0;
    r->checks--;
    p->checked_ok = status == 0 && k->result == 1;
    p->checked_at = k->started;
    p->checked_next = k->next;
    free(k->topic);
    free(k);
    if (!r->stopping && p->checked_ok && advance_watermark(r) < 0) begin_stop(r, 1);
    if (!r->stopping && r->merge_blocked) run_kick(r); /* it may have waited for this answer */
}

/* Asks the broker, off the loop, whether partition i's next_offset has
 * reached its end (check_done() records the answer). */
static void queue_check(run_t *r, int i, double now)
{
    part_t *p = &r->parts[i];
    check_t *k = calloc(1, sizeof(*k));
    if (!k || !(k->topic = strdup(p->topic))) {
        free(k);
        return;
    }
    k->r = r;
    k->part = i;
    k->partition = p->partition;
    k->next = k->query = p->next_offset;
    /* A transactional producer's commit marker takes an offset librdkafka
     * never hands out: a partition read to its end would stay one short of
     * it, never idle (W held back) and always waited for by the merge. With
     * nothing waiting here, every record handed out is applied, so the
     * consumer's position, which counts the markers, is what was read. */
    if (p->q_n == 0 && p->next_offset >= 0) {
        int64_t pos = strm_consumer_position(r->cons, p->topic, p->partition);
        if (pos > k->query) k->query = pos;
    }
    k->started = now;
    k->w.data = k;
    if (uv_queue_work(&r->loop, &k->w, check_work, check_done) == 0) {
        p->checking = 1;
        p->check_sent = now;
        r->checks++;
    } else {
        free(k->topic);
        free(k);
    }
}

/* A partition is idle when it has been quiet for idle_timeout AND the
 * broker confirmed, after the quiet began, that we hold everything it has:
 * silence because we cannot read (a broker down, fetch errors, a slow
 * fetcher) must never pass for a silent partition, or W would run ahead of
 * records not yet seen. The confirmation is a blocking request, so it runs
 * on libuv's thread pool. */
static int part_idle(run_t *r, int i, double now)
{
    part_t *p = &r->parts[i];
    if (r->paused) return 0; /* not reading is not silence */
    double timeout = (double)r->cfg.idle_timeout_ms / 1000.0;
    if (now - p->last_msg < timeout) return 0;
    double fresh = timeout > 1 ? timeout : 1;
    /* A confirmation holds for `fresh` seconds and is renewed from half
     * that age on, so an idle partition stays idle while it is checked
     * again (each lapse would restart the wall-clock advance and make W
     * fall behind the clock); a broker that stops answering ends it. */
    int confirmed = p->checked_ok && p->checked_next == p->next_offset &&
                    p->checked_at >= p->last_msg && p->checked_at >= r->wake_at &&
                    now - p->checked_at < fresh &&
                    !(p->checking && now - p->check_sent > CHECK_LATE_S) && r->kafka_ok;
    if (!p->checking && (now - p->checked_at >= fresh / 2 || p->checked_at < r->wake_at))
        queue_check(r, i, now);
    return confirmed;
}

/* A replay cannot see the wall clock, so each wall-clock advance of W is
 * recorded in watermark.control_topic with the offsets consumed when it
 * happened (every owned partition was caught up then): `replay --input
 * kafka:` applies the advance after exactly those records, which makes a
 * live run's silent changes, and the W later events meet, replayable.
 * Written at most once a second while idle, and always when the idle spell
 * ends or the process stops, so the last W reached is on record. */
static void control_write(run_t *r)
{
    if (!r->ctl_dirty || !*r->cfg.control_topic) return;
    char buf[16384];
    size_t n = (size_t)snprintf(buf, sizeof(buf),
                                "{\"W\":%" PRId64 ",\"wall\":%" PRId64 ",\"instance\":\"%s\","
                                "\"offsets\":{",
                                r->ctl_W, cli_now_ms(), r->instance);
    int first = 1;
    for (int i = 0; i < r->n_parts && n < sizeof(buf) - 400; i++) {
        part_t *p = &r->parts[i];
        if (!p->owned || p->ctl_off == INT64_MIN) continue;
        n += (size_t)snprintf(buf + n, sizeof(buf) - n, "%s\"%s:%" PRId32 "\":%" PRId64,
                              first ? "" : ",", p->topic, p->partition, p->ctl_off);
        first = 0;
    }
    n += (size_t)snprintf(buf + n, sizeof(buf) - n, "}}");
    if (n >= sizeof(buf)) return; /* thousands of partitions: not recorded */
    unit_t *u = r->cur;
    r->cur = NULL; /* not part of any input unit: nothing waits for it */
    if (produce(r, r->cfg.control_topic, r->cfg.group_id, strlen(r->cfg.group_id), buf, n, NULL,
                0) == 0)
        r->ctl_dirty = 0;
    r->cur = u;
    r->ctl_at = cli_monotonic_s();
}

static void control_note(run_t *r)
{
    r->ctl_W = r->pl.W;
    for (int i = 0; i < r->n_parts; i++)
        r->parts[i].ctl_off = r->parts[i].owned ? r->parts[i].next_offset : INT64_MIN;
    r->ctl_dirty = 1;
    if (cli_monotonic_s() - r->ctl_at >= 1.0) control_write(r);
}

/* CONTRACT §2: the smallest, over owned partitions that are not idle, of
 * their newest event time, less the allowed lateness; a partition with no
 * event yet holds W back until it is idle. When all are idle, W is the
 * newest time seen, and moves with the wall clock while they stay idle
 * (watermark.idle_advance), never jumping to today's date. */
static int advance_watermark(run_t *r)
{
    /* Not while a rebalance settles: a revoke waits until everything
     * applied is checkpointed, and a W still moving with the wall clock
     * would step customers (new work to checkpoint) on every tick, so the
     * revoke never finished and the process stopped. */
    if (r->ck && ck_rebalancing(r)) return 0;
    double now = cli_monotonic_s();
    int64_t lo = INT64_MAX, hi = INT64_MIN, top = INT64_MIN;
    int owned = 0, active = 0, blind = 0;
    for (int i = 0; i < r->n_parts; i++) {
        part_t *p = &r->parts[i];
        if (!p->owned) continue;
        owned++;
        if (p->pp.hi > hi) hi = p->pp.hi;
        int idle = part_idle(r, i, now);
        if (idle) {
            p->no_evidence = 0; /* idle: a record it gets later is late, not a lag */
            if (p->pp.held && held_expire(r, i) < 0) return -1;
        }
        int64_t v = wm_part_allows(p, r->cfg.allowed_lateness_ms);
        if (v > top) top = v;
        if (idle) continue;
        active++;
        if (v == INT64_MIN) blind = 1; /* no event yet: no evidence */
        if (v < lo) lo = v;
    }
    if (!owned || hi == INT64_MIN || blind) return 0;
    int64_t W;
    if (active) {
        if (r->idle_since_wall != INT64_MIN) control_write(r); /* the idle spell's last W */
        r->idle_since_wall = INT64_MIN;
        W = lo;
    } else {
        /* every partition idle: the newest W any of them allows (hi less
         * the lateness at least), the W stored with its state included
         * (w_floor: a restart or a takeover continues from the idle advance
         * its previous owner reached, not from the newest event time
         * again) */
        W = top;
        if (r->cfg.idle_advance) {
            int64_t wall = cli_now_ms();
            if (r->idle_since_wall == INT64_MIN) {
                r->idle_since_wall = wall;
                r->idle_base = r->pl.has_W && r->pl.W > W ? r->pl.W : W;
                /* operators see when W left event time; tests time silent changes by it */
                cli_log(LOG_INFO,
                        "every partition idle: W moves with the wall clock from W=%" PRId64
                        " at wall=%" PRId64,
                        r->idle_base, wall);
            }
            W = r->idle_base + (wall - r->idle_since_wall);
        }
    }
    if (r->pl.has_W && W <= r->pl.W) return 0;
    if (!unit_open(r)) return -1;
    int rc = pl_advance(&r->pl, W);
    unit_close(r);
    if (r->ck) ck_advance(r);
    if (!active && r->cfg.idle_advance && rc == 0) control_note(r);
    return rc;
}

/* W comes back to `to` (a partition taken over is behind it). */
static void watermark_back(run_t *r, int64_t to, const char *why)
{
    char was[40], now[40];
    cli_fmt_time(r->pl.W, was, sizeof(was));
    cli_fmt_time(to, now, sizeof(now));
    cli_log(LOG_INFO, "W back from %s to %s: %s", was, now, why);
    r->pl.W = to;
    r->idle_since_wall = INT64_MIN;
}

/* See wm_assigned(). */
void run_watermark_assigned(run_t *r, const strm_tp_t *tps, int n)
{
    if (!r->pl.has_W) return;
    int64_t lo = wm_assigned(r->parts, r->n_parts, tps, n, r->pl.W, r->cfg.allowed_lateness_ms);
    if (lo < r->pl.W) watermark_back(r, lo, "a partition taken over is behind");
}

/* ---------------- consuming ---------------- */

/* Applies an assignment change to the partitions' state (and, for a
 * deferred one, to the consumer). */
int run_assign(run_t *r, strm_tp_t *tps, int n, int assigned)
{
    double now = cli_monotonic_s();
    for (int i = 0; i < n; i++) {
        int k = find_part(r, tps[i].topic, tps[i].partition, 1);
        if (k < 0) continue;
        /* Records of a revoked partition taken but not applied are dropped:
         * if the partition comes back, it resumes from its stored offset
         * (Redis's checkpoint, say), and these would otherwise be applied
         * out of order. An assignment starts with nothing taken, but one
         * naming a partition owned here already (librdkafka 2.0's
         * cooperative rejoin may hand it out again: the consumer leaves it
         * out and goes on fetching after what it handed out) keeps what
         * waits, the only copy this process will get. */
        if (!assigned || !r->parts[k].owned) {
            q_clear(r, k);
            q_pause(r, k, 0);
            r->parts[k].taken_next = -1;
            r->parts[k].taken_ts = INT64_MIN;
            r->parts[k].taken_at = now;
        }
        /* given up: its customers here were stepped to W (a later owner's
         * are in Redis, with the W of its checkpoint: ckpt.c sets that) */
        if (!assigned && r->parts[k].owned && r->pl.has_W && r->pl.W > r->parts[k].w_floor)
            r->parts[k].w_floor = r->pl.W;
        /* a record held as far ahead is read again by whoever resumes it */
        if (!assigned && r->parts[k].pp.held) {
            r->parts[k].next_offset = r->parts[k].pp.held_offset;
            pl_part_drop(&r->parts[k].pp);
        }
        r->parts[k].owned = assigned;
        r->parts[k].gen += assigned;
        r->parts[k].last_msg = now;
        /* In memory, state here already holds this partition up to
         * next_offset (a lost assignment that came back, say): resume there,
         * so that nothing is applied twice to it, whatever the group
         * committed. With Redis, ckpt.c has set the checkpoint's offset. */
        if (assigned && !r->ck && r->parts[k].next_offset >= 0)
            tps[i].offset = r->parts[k].next_offset;
        if (assigned && tps[i].offset >= 0) r->parts[k].next_offset = tps[i].offset;
    }
    if (assigned && !r->ck) run_watermark_assigned(r, tps, n);
    if (assigned && !r->ck) {
        /* customers of partitions that came back are due again */
        size_t keep = 0;
        for (size_t i = 0; i < r->n_dormant; i++) {
            uint32_t h = r->dormant[i];
            if (r->parts[r->owner[h]].owned) {
                seg_customer_t *c = st_mem_by_handle(r->pl.store, h);
                if (c) pl_due_restore(&r->pl, c);
            } else {
                r->dormant[keep++] = h;
            }
        }
        r->n_dormant = keep;
    }
    int owned = 0;
    for (int i = 0; i < r->n_parts; i++) owned += r->parts[i].owned;
    if (n) {
        /* which ones, for following a partition from owner to owner: each
         * topic named before its partitions */
        char list[512];
        size_t used = 0;
        list[0] = 0;
        int i = 0;
        for (; i < n && used + 80 < sizeof(list); i++) {
            int same = i > 0 && strcmp(tps[i].topic, tps[i - 1].topic) == 0;
            used += (size_t)(same ? snprintf(list + used, sizeof(list) - used, ",%d",
                                             (int)tps[i].partition)
                                  : snprintf(list + used, sizeof(list) - used, "%s%.60s[%d",
                                             i ? "] " : "", tps[i].topic, (int)tps[i].partition));
        }
        snprintf(list + used, sizeof(list) - used, "%s]", i < n ? ",..." : "");
        cli_log(LOG_INFO, "%s %d partition%s (%d owned): %s", assigned ? "assigned" : "revoked", n,
                n == 1 ? "" : "s", owned, list);
    }
    /* eager: the group has more members than partitions; cooperative: also
     * the first step of a rebalance, until the others have let theirs go */
    if (assigned && !owned) cli_log(LOG_INFO, "assigned no partition: standing by");
    r->idle_since_wall = INT64_MIN;
    return 0;
}

static int rebalance(void *ud, int assigned, strm_tp_t *tps, int n)
{
    run_t *r = ud;
    r->rebalances++;
    if (r->ck && !r->stopping) return ck_rebalance(r, assigned, tps, n);
    if (!assigned && !r->stopping && !strm_consumer_assignment_lost(r->cons)) {
        /* finish what the revoked partitions started, so that their new
         * owner resumes exactly after what is done here (a lost assignment
         * has no one to hand over to: its commit could only fail) */
        if (strm_producer_flush(r->prod, 10000) > 0)
            cli_log(LOG_WARN, "revoke: change events still undelivered after 10 s");
        units_complete(r);
        strm_consumer_commit_async(r->cons); /* never wait: a lost group has no coordinator */
    }
    run_assign(r, tps, n, assigned);
    return 0;
}

/* The first record of a partition taken over without evidence (no event
 * time known for it, here or in Redis): W comes back to it if it is behind,
 * before it is applied. Decoding is pure; pl_record_part decodes it again. */
static void first_record(run_t *r, part_t *p, const strm_msg_t *m)
{
    const char *reason;
    if (strm_decode(m->payload, m->len, r->cfg.max_event_bytes, &r->first_ev, &reason) < 0)
        return; /* a dead letter: the next record tells */
    /* no_evidence stays until a record is applied (process()): one held as
     * far ahead, or refused later, tells nothing */
    int64_t v = r->first_ev.ts - r->cfg.allowed_lateness_ms;
    if (r->pl.has_W && v < r->pl.W)
        watermark_back(r, v, "the first record of a partition taken over is behind");
}

/* The contract asks producers to key by customer id and lets them not key.
 * One process applies either correctly; with several in a group, a
 * customer whose records land on partitions owned by two processes is
 * updated by both, and Redis keeps whichever checkpoint came last. Counted,
 * and said once. */
static void key_check(run_t *r, const strm_msg_t *m)
{
    const seg_event_t *e = &r->pl.ev;
    const char *what;
    if (!m->key_len) {
        r->unkeyed++;
        what = "no key";
    } else if (m->key_len != e->id_len || memcmp(m->key, e->customer_id, e->id_len) != 0) {
        r->key_other++;
        what = "a key other than its customer id";
    } else {
        return;
    }
    if (r->key_warned) return;
    r->key_warned = 1;
    cli_log(LOG_WARN,
            "%s[%" PRId32 "]@%" PRId64 " has %s: right while one process consumes the topic; "
            "with several in the group, a customer whose records land on partitions of two "
            "processes loses updates. Key records by customer id "
            "(segstream_records_unkeyed_total, segstream_records_key_not_customer_total)",
            m->topic, m->partition, m->offset, what);
}

static int process(run_t *r, strm_msg_t *ms, int n)
{
    if (!unit_open(r)) return -1;
    int real = 0;
    double now = cli_monotonic_s();
    for (int i = 0; i < n; i++) {
        strm_msg_t *m = &ms[i];
        if (m->dropped) continue;
        if (m->error) {
            r->consumer_errors++;
            cli_log(m->error_fatal ? LOG_ERROR : LOG_WARN, "consumer: %s", m->error);
            if (m->error_fatal) {
                unit_close(r);
                return -1;
            }
            continue;
        }
        int k = find_part(r, m->topic, m->partition, 1);
        if (k < 0) {
            unit_close(r);
            return -1;
        }
        part_t *p = &r->parts[k];
        if (!p->owned) continue; /* fetched before a revoke: the new owner has it */
        if (p->next_offset >= 0 && m->offset < p->next_offset) continue; /* applied already */
        real++;
        if (p->no_evidence) first_record(r, p, m);
        r->cur_part = k;
        r->cur_msg = m;
        int rc =
            pl_record_part(&r->pl, &p->pp, m->payload, m->len, m->topic, m->partition, m->offset);
        r->cur_msg = NULL;
        if (r->pl.accepted) p->no_evidence = 0;
        if (r->pl.decoded) key_check(r, m); /* a held record too: its own key, now */
        if (rc < 0) {
            /* a sink failed: nothing after this may be committed */
            r->cur = NULL;
            return -1;
        }
        p->in++;
        if (now - p->last_msg >= (double)r->cfg.idle_timeout_ms / 1000.0) r->wake_at = now;
        p->last_msg = now;
        p->next_offset = m->offset + 1;
        pl_part_hold_key(&p->pp, m->partition, m->offset, m->key, m->key_len);
        if (unit_offset(r->cur, k, p->gen, pl_part_commit(&p->pp, m->offset + 1)) < 0) return -1;
    }
    unit_close(r);
    if (real) {
        r->batches++;
        r->batch_sum += real;
        size_t b = 0;
        while (b < N_BUCKETS && real > batch_le[b]) b++;
        r->batch_bucket[b]++;
    }
    return 0;
}

static void on_more(uv_idle_t *h);

/* Too many change events undelivered: stop applying at once (nothing more
 * is produced), and if it lasts, pause the partitions so that fetching stops
 * too. Not pausing at once matters: a pause drops librdkafka's prefetched
 * records, which a short stall would then fetch again. */
static void backpressure(run_t *r)
{
    int q = strm_producer_outq(r->prod);
    double now = cli_monotonic_s();
    if (!r->stalled && q > OUTQ_HIGH) {
        r->stalled = 1;
        r->stalled_since = now;
        r->stalls++;
    } else if (r->stalled && q < OUTQ_LOW) {
        r->stalled = 0;
        if (r->paused) {
            r->paused = 0;
            strm_consumer_pause(r->cons, 0);
            for (int i = 0; i < r->n_parts; i++) /* still full */
                if (r->parts[i].q_paused)
                    strm_consumer_pause_one(r->cons, r->parts[i].topic, r->parts[i].partition, 1);
            cli_log(LOG_DEBUG, "producer queue %d: resuming", q);
        }
    }
    if (r->stalled && !r->paused && now - r->stalled_since > PAUSE_AFTER_S) {
        r->paused = 1;
        r->pauses++;
        strm_consumer_pause(r->cons, 1);
        cli_log(LOG_DEBUG, "producer queue %d: pausing the consumer", q);
    }
}

/* ---------------- merging the partitions by event time ----------------
 *
 * Records taken from the consumer wait in their partition's queue, in
 * offset order, and are applied merged by event time across the owned
 * partitions: the oldest head goes first. A customer's events on two topics
 * (clickstream and purchases, CONTRACT §1), or on two partitions of a topic
 * its producer does not key, then reach it in event-time order, as a replay
 * of the merged file applies them. Taken in arrival order, a small topic
 * drained ahead of a big one had a customer's day-168 purchase applied
 * before its day-10 visits: it was "new" on day 168, then "active" and
 * "new" again. A partition with nothing waiting holds the merge back while
 * it may have records to come (as Kafka Streams waits for a partition with
 * fetchable data): until the broker says all it has is taken, and for
 * watermark.idle_timeout at most. A partition's queue over PART_HIGH
 * pauses it (librdkafka drops what it fetched of it beyond what was handed
 * out, and fetches that again on resume), so memory stays bounded while
 * one topic runs far ahead of another. */

/* 1 when the merge must wait for partition i, which has nothing waiting. */
static int must_wait(run_t *r, int i, double now)
{
    part_t *p = &r->parts[i];
    int64_t next = p->taken_next >= 0 ? p->taken_next : p->next_offset;
    int64_t pos = strm_consumer_position(r->cons, p->topic, p->partition);
    if (pos > next) next = pos; /* past transaction markers (queue_check) */
    int64_t hi = strm_consumer_high(r->cons, p->topic, p->partition);
    if (next >= 0 && hi >= 0 && next >= hi) return 0; /* all it had at the last fetch */
    /* the broker said so since (next_offset: nothing is waiting, so every
     * record taken is applied or skipped) */
    if (p->checked_ok && p->checked_next == p->next_offset && p->checked_at >= p->taken_at)
        return 0;
    if (p->merge_wait == 0) p->merge_wait = now;
    if (now - p->merge_wait >= (double)r->cfg.idle_timeout_ms / 1000.0) return 0; /* as idle */
    /* asked again once a second: one answer lost or overtaken must not hold
     * the merge until the timeout */
    if (!p->checking && (p->checked_at < p->taken_at || now - p->checked_at >= 1.0))
        queue_check(r, i, now);
    return 1;
}

/* Up to max records of the queues' heads, oldest event first, into
 * r->batch (not taken out of the queues). Stops early, setting
 * r->merge_blocked, when an owned partition with nothing waiting must be
 * waited for. */
static int merge(run_t *r, int max)
{
    r->merge_blocked = 0;
    if (r->cap_m < r->n_parts) {
        int cap = r->cap_parts;
        int *c = realloc(r->m_cur, (size_t)cap * sizeof(*c));
        if (c) r->m_cur = c;
        signed char *w = realloc(r->m_wait, (size_t)cap);
        if (w) r->m_wait = w;
        if (!c || !w) return -1;
        r->cap_m = cap;
    }
    memset(r->m_cur, 0, (size_t)r->n_parts * sizeof(*r->m_cur));
    memset(r->m_wait, -1, (size_t)r->n_parts);
    double now = cli_monotonic_s();
    int n = 0;
    while (n < max) {
        int best = -1;
        int64_t bt = 0;
        for (int i = 0; i < r->n_parts; i++) {
            const part_t *p = &r->parts[i];
            if (r->m_cur[i] == p->q_n) continue;
            int64_t t = p->q[(p->q_head + r->m_cur[i]) % p->q_cap].ts;
            if (best < 0 || t < bt) best = i, bt = t;
        }
        if (best < 0) break;
        /* only now, with a record to apply: a partition that has none
         * might have an older one to come, unless it has already handed
         * out a newer one (a partition's records come in event-time order,
         * near enough: one late is late in a replay of the merged file too) */
        for (int i = 0; i < r->n_parts; i++) {
            part_t *p = &r->parts[i];
            if (!p->owned || r->m_cur[i] < p->q_n || p->taken_ts >= bt) continue;
            if (r->m_wait[i] < 0) r->m_wait[i] = (signed char)must_wait(r, i, now);
            if (r->m_wait[i]) {
                if (n == 0) r->merge_waits++;
                r->merge_blocked = 1;
                return n;
            }
        }
        part_t *p = &r->parts[best];
        r->batch[n] = p->q[(p->q_head + r->m_cur[best]) % p->q_cap].m;
        r->batch_part[n++] = best;
        r->m_cur[best]++;
    }
    return n;
}

/* Takes the n records of the batch out of their queues (they are the
 * heads, in order) and releases them. */
static void merged(run_t *r, int n)
{
    for (int j = 0; j < n; j++) {
        part_t *p = &r->parts[r->batch_part[j]];
        p->q_head = (p->q_head + 1) % p->q_cap;
        if (--p->q_n == 0) p->q_head = 0;
        r->buffered--;
    }
    strm_msgs_release(r->batch, n);
    for (int i = 0; i < r->n_parts; i++)
        if (r->parts[i].q_paused && r->parts[i].q_n < PART_LOW) q_pause(r, i, 0);
}

/* One record from the consumer into its partition's queue. -1: out of
 * memory or a fatal consumer error (the record is released either way). */
static int enqueue(run_t *r, strm_msg_t *m, double now)
{
    if (m->error) { /* logged and counted at once: no partition to wait in */
        int rc = process(r, m, 1);
        strm_msgs_release(m, 1);
        return rc;
    }
    int k = find_part(r, m->topic, m->partition, 1);
    part_t *p = k >= 0 ? &r->parts[k] : NULL;
    if (p && !p->owned) { /* fetched before a revoke: the new owner has it */
        strm_msgs_release(m, 1);
        return 0;
    }
    if (p && p->q_n == p->q_cap) {
        int cap = p->q_cap ? 2 * p->q_cap : 64;
        struct part_rec *q = realloc(p->q, (size_t)cap * sizeof(*q));
        if (q) {
            /* a full ring wraps at q_head: its start follows its end again */
            memcpy(q + p->q_cap, q, (size_t)p->q_head * sizeof(*q));
            p->q = q;
            p->q_cap = cap;
        } else {
            p = NULL;
        }
    }
    if (!p) {
        cli_log(LOG_ERROR, "out of memory for a consumed record");
        strm_msgs_release(m, 1);
        return -1;
    }
    /* decoding is pure: the pipeline decodes it again when it is applied;
     * a record it cannot decode (a dead letter) goes as soon as it is its
     * partition's head */
    const char *why;
    int64_t ts = strm_decode(m->payload, m->len, r->cfg.max_event_bytes, &r->take_ev, &why) == 0
                     ? r->take_ev.ts
                     : INT64_MIN;
    int at = (p->q_head + p->q_n) % p->q_cap;
    p->q[at] = (struct part_rec){*m, ts};
    p->q_n++;
    r->buffered++;
    p->taken_next = m->offset + 1;
    if (ts > p->taken_ts) p->taken_ts = ts;
    p->taken_at = now;
    p->merge_wait = 0;
    if (p->q_n > PART_HIGH) q_pause(r, k, 1);
    return 0;
}

/* Takes what librdkafka holds into the partitions' queues: group events are
 * served even while applying waits (for Redis, say). */
static int take(run_t *r)
{
    char err[256];
    int got = 0;
    /* librdkafka's own queue is the buffer; more is taken only while
     * applying waits, so that group events behind the records are served,
     * or while the merge waits for a partition whose records may be behind
     * the others' (each partition's queue is bounded by its pause) */
    int waiting = r->stalled || (r->ck && ck_blocked(r));
    int limit = r->merge_blocked ? INT32_MAX : waiting ? HELD_HIGH : BATCHES_PER_WAKE * BATCH_MAX;
    double now = cli_monotonic_s();
    r->queue_more = 0;
    while (r->buffered < limit) {
        int n = strm_consumer_batch(r->cons, r->take_buf, BATCH_MAX, err, sizeof(err));
        if (n < 0) {
            cli_log(LOG_ERROR, "%s", err);
            return -1;
        }
        for (int i = 0; i < n; i++)
            if (enqueue(r, &r->take_buf[i], now) < 0) {
                strm_msgs_release(r->take_buf + i + 1, n - i - 1);
                return -1;
            }
        got += n;
        if (n < BATCH_MAX) break;
    }
    /* stopped at the limit: librdkafka may hold more, and its io event
     * fires only when its queue goes from empty to not empty */
    if (r->buffered >= limit) r->queue_more = 1;
    return got;
}

/* Applies waiting records, merged a batch at a time. */
static int apply_held(run_t *r)
{
    for (int b = 0; b < BATCHES_PER_WAKE && r->buffered > 0 && !r->stopping; b++) {
        if (r->stalled || (r->ck && ck_blocked(r))) return 0;
        /* a batch whose customers are being loaded stays the batch: merged
         * again with what came meanwhile, it would ask Redis for others */
        int n = r->batch_n ? r->batch_n : merge(r, BATCH_MAX);
        if (n <= 0) return n;
        r->batch_n = n;
        if (r->ck && ck_prefetch(r, r->batch, n) != 0) return 0; /* run_kick() follows */
        r->batch_n = 0;
        int rc = process(r, r->batch, n);
        merged(r, n);
        if (rc < 0) return -1;
        backpressure(r);
    }
    return 0;
}

/* Serves the consumer and applies what it can; if more may wait, an idle
 * handle brings us back next iteration (the io event is an edge). */
static void consume(run_t *r)
{
    if (r->stopping) return;
    if (take(r) < 0 || apply_held(r) < 0) {
        begin_stop(r, 1);
        return;
    }
    backpressure(r);
    if (advance_watermark(r) < 0) begin_stop(r, 1);
    int blocked = r->stalled || (r->ck && ck_blocked(r));
    int want_more =
        ((r->buffered > 0 && !r->merge_blocked) || r->queue_more) && !blocked && !r->stopping;
    if (want_more && !r->more_on) uv_idle_start(&r->more, on_more), r->more_on = 1;
    if (!want_more && r->more_on) uv_idle_stop(&r->more), r->more_on = 0;
}

void run_kick(run_t *r)
{
    if (!r->stopping && !r->more_on) uv_idle_start(&r->more, on_more), r->more_on = 1;
}

static void on_more(uv_idle_t *h)
{
    consume(h->data);
}

static void on_consumer_fd(uv_poll_t *h, int status, int events)
{
    run_t *r = h->data;
    strm_consumer_drain_fd(r->cons);
    consume(r);
}

static void on_producer_fd(uv_poll_t *h, int status, int events)
{
    run_t *r = h->data;
    strm_producer_drain_fd(r->prod);
    deliveries(r);
    backpressure(r);
}

/* final: the line at exit, whose rate is over the whole run (the last
 * interval's is mostly the drain, often 0/s) */
static void log_stats(run_t *r, double now, int final)
{
    uint64_t rec = r->pl.st.records;
    double since = final ? r->started : r->last_stats;
    uint64_t base = final ? 0 : r->last_stats_records;
    char w[40] = "-";
    if (r->pl.has_W) cli_fmt_time(r->pl.W, w, sizeof(w));
    const uint64_t *ch = r->pl.st.changes;
    /* produced/delivered count every record sent: changes, dead letters and
     * watermark records */
    cli_log(LOG_INFO,
            "records %" PRIu64 " (%.0f/s%s)  dead %" PRIu64 "  changes %" PRIu64
            "  produced %" PRIu64 "  delivered %" PRIu64 "  W %s",
            rec, now > since ? (double)(rec - base) / (now - since) : 0.0,
            final ? " over the run" : "", r->pl.st.dead, ch[0] + ch[1] + ch[2], r->produced,
            r->delivered, w);
    r->last_stats = now;
    r->last_stats_records = rec;
}

#define HEALTH_PROBE_S 5.0

static void probe_work(uv_work_t *w)
{
    run_t *r = w->data;
    r->probe_ok = strm_consumer_brokers_up(r->cons, 3000, r->probe_err, sizeof(r->probe_err));
}

static void probe_done(uv_work_t *w, int status)
{
    run_t *r = w->data;
    r->probing = 0;
    if (status != 0) return; /* cancelled: no news */
    r->kafka_ok = r->probe_ok;
    memcpy(r->kafka_err, r->probe_err, sizeof(r->kafka_err));
}

/* Asks the brokers for metadata now and then, off the loop: /healthz says
 * whether any answers (librdkafka reports all brokers down, never back up). */
static void probe_brokers(run_t *r, double now)
{
    if (r->probing || r->stopping || now - r->probe_at < HEALTH_PROBE_S) return;
    r->probe_at = now;
    r->probe.data = r;
    if (uv_queue_work(&r->loop, &r->probe, probe_work, probe_done) == 0) r->probing = 1;
}

static void on_tick(uv_timer_t *h)
{
    run_t *r = h->data;
    uint64_t ns = uv_hrtime();
    if (r->last_tick_ns) {
        r->loop_lag = (double)(ns - r->last_tick_ns) / 1e9 - TICK_MS / 1000.0;
        if (r->loop_lag < 0) r->loop_lag = 0;
        if (r->loop_lag > r->loop_lag_max) r->loop_lag_max = r->loop_lag;
    }
    r->last_tick_ns = ns;
    deliveries(r);
    backpressure(r);
    if (r->ck) ck_tick(r);
    double now = cli_monotonic_s();
    consume(r); /* also serves group events: never polled means leaving the group */
    probe_brokers(r, now);
    if (now - r->last_stats >= STATS_EVERY_S) log_stats(r, now, 0);
}

/* ---------------- stopping ---------------- */

static void close_cb(uv_handle_t *h)
{
    (void)h;
}

void run_begin_stop(run_t *r, int code)
{
    if (code > r->exit_code) r->exit_code = code;
    if (r->stopping) return;
    r->stopping = 1;
    cli_log(code ? LOG_ERROR : LOG_INFO, "stopping: draining in-flight work");
    uv_poll_stop(&r->cpoll);
    if (r->more_on) uv_idle_stop(&r->more), r->more_on = 0;
    if (code == 0) {
        control_write(r);
        int left = strm_producer_flush(r->prod, 15000);
        units_complete(r);
        if (left) {
            cli_log(LOG_ERROR, "%d change events undelivered after 15 s: not committing them",
                    left);
            r->exit_code = 1;
        }
    }
    if (r->ck && r->exit_code == 0) {
        ck_stop(r); /* the last checkpoint, then run_finish_stop() */
        return;
    }
    run_finish_stop(r);
}

/* longer than an idle check's two 2 s broker queries that do return */
#define STOP_GRACE_MS 5000

static void on_stop_timer(uv_timer_t *t)
{
    run_t *r = t->data;
    uv_close((uv_handle_t *)t, close_cb);
    if (r->checks == 0) return;
    cli_log(LOG_WARN,
            "%d broker quer%s still waiting for an answer (is Kafka reachable?): exiting "
            "without them",
            r->checks, r->checks == 1 ? "y is" : "ies are");
    uv_stop(&r->loop);
}

void run_finish_stop(run_t *r)
{
    if (r->stop_wait) return;
    r->stop_wait = 1;
    strm_consumer_commit_async(r->cons); /* the close below commits and waits, bounded */
    uv_close((uv_handle_t *)&r->cpoll, close_cb);
    uv_close((uv_handle_t *)&r->ppoll, close_cb);
    uv_close((uv_handle_t *)&r->tick, close_cb);
    uv_close((uv_handle_t *)&r->more, close_cb);
    uv_close((uv_handle_t *)&r->sigterm, close_cb);
    uv_close((uv_handle_t *)&r->sigint, close_cb);
    uv_close((uv_handle_t *)&r->sighup, close_cb);
    http_stop(r->http);
    r->http = NULL;
    if (r->ck) ck_free(r);
    /* Everything is delivered and checkpointed by now. A broker query still
     * on the thread pool would hold the loop until it returns: with no
     * broker, librdkafka 2.0 (#2588, fixed in 2.3) lets it run past its
     * timeout for minutes. After STOP_GRACE_MS the loop is let go without
     * it; the timer does not keep the loop alive by itself. */
    uv_timer_init(&r->loop, &r->stop_timer);
    r->stop_timer_on = 1;
    r->stop_timer.data = r;
    uv_timer_start(&r->stop_timer, on_stop_timer, STOP_GRACE_MS, 0);
    uv_unref((uv_handle_t *)&r->stop_timer);
}

static void on_signal(uv_signal_t *h, int sig)
{
    run_t *r = h->data;
    cli_log(LOG_INFO, "%s received",
            sig == SIGTERM  ? "SIGTERM"
            : sig == SIGINT ? "SIGINT"
                            : "SIGHUP");
    begin_stop(r, 0);
}

/* ---------------- HTTP ---------------- */

/* 200 "ok" while the daemon can do its work; 503 with one line per reason
 * when it cannot: stopping, no broker answers, Redis is away (so that a
 * load balancer or an orchestrator's readiness probe can tell). */
static int render_health(void *ud, strm_buf_t *out)
{
    run_t *r = ud;
    char line[256];
    if (r->stopping) strm_buf_append(out, "stopping\n", 9);
    double late = oldest_query(r, cli_monotonic_s());
    if (!r->kafka_ok) {
        int n = snprintf(line, sizeof(line), "kafka: no broker answers (%s)\n", r->kafka_err);
        strm_buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    } else if (late > QUERY_LATE_S) {
        int n = snprintf(line, sizeof(line),
                         "kafka: no broker answers (a query has waited %.0f s)\n", late);
        strm_buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
    }
    if (r->ck) ck_health(r, out);
    if (out->len) return 503;
    strm_buf_append(out, "ok\n", 3);
    return 200;
}

static int render_metrics(void *ud, strm_buf_t *b)
{
    run_t *r = ud;
    const pl_stats_t *st = &r->pl.st;
    strm_buf_t lb;
    strm_buf_init(&lb);
    int rc = 0;

    rc |= http_metric_head(b, "segstream_events_in_total", "counter", "records consumed, by topic");
    for (int i = 0; i < r->n_parts; i++) {
        int first = 1; /* one line per topic, summed over its partitions */
        for (int j = 0; j < i; j++)
            if (strcmp(r->parts[j].topic, r->parts[i].topic) == 0) first = 0;
        if (!first) continue;
        uint64_t n = 0;
        for (int j = i; j < r->n_parts; j++)
            if (strcmp(r->parts[j].topic, r->parts[i].topic) == 0) n += r->parts[j].in;
        lb.len = 0;
        rc |= http_label(&lb, "topic", r->parts[i].topic);
        rc |= http_metric_u64(b, "segstream_events_in_total", lb.p, n);
    }
    rc |= http_metric1_u64(b, "segstream_events_decoded_total", "counter",
                           "records decoded into usable events", st->decoded);
    rc |= http_metric1_u64(b, "segstream_events_applied_total", "counter",
                           "events applied to customer state", st->applied);
    rc |= http_metric1_u64(b, "segstream_events_duplicate_total", "counter",
                           "events whose event_id was already applied", st->duplicates);
    rc |= http_metric_head(b, "segstream_dead_letters_total", "counter",
                           "records sent to the dead-letter topic, by reason");
    for (int i = 0; i < PL_REASONS_MAX && st->reason[i]; i++) {
        lb.len = 0;
        rc |= http_label(&lb, "reason", st->reason[i]);
        rc |= http_metric_u64(b, "segstream_dead_letters_total", lb.p, st->reason_n[i]);
    }
    static const char *const dims[] = {"lifecycle", "cluster", "rule"};
    rc |= http_metric_head(b, "segstream_changes_total", "counter",
                           "segment-change events produced, by dimension");
    for (int d = 0; d < 3; d++) {
        lb.len = 0;
        rc |= http_label(&lb, "dimension", dims[d]);
        rc |= http_metric_u64(b, "segstream_changes_total", lb.p, st->changes[d]);
    }
    rc |= http_metric1_u64(b, "segstream_records_delivered_total", "counter",
                           "change and dead-letter records acknowledged by Kafka", r->delivered);
    rc |= http_metric1_u64(b, "segstream_producer_queue", "gauge",
                           "records produced and not yet acknowledged",
                           (uint64_t)strm_producer_outq(r->prod));
    rc |= http_metric1_u64(b, "segstream_producer_queue_full_total", "counter",
                           "times a produce waited for queue space", r->queue_full);
    rc |= http_metric1_u64(b, "segstream_consumer_paused", "gauge",
                           "1 while backpressure pauses consumption", (uint64_t)r->paused);
    rc |= http_metric1_u64(b, "segstream_producer_stalls_total", "counter",
                           "times applying waited for the producer queue to drain", r->stalls);
    rc |= http_metric1_u64(b, "segstream_consumer_pauses_total", "counter",
                           "times backpressure paused consumption", r->pauses);
    rc |= http_metric1_u64(b, "segstream_rebalances_total", "counter",
                           "partition assignments and revocations", r->rebalances);
    rc |= http_metric1_u64(b, "segstream_records_unkeyed_total", "counter",
                           "valid events read without a Kafka key (applied or held)", r->unkeyed);
    rc |= http_metric1_u64(b, "segstream_records_key_not_customer_total", "counter",
                           "valid events read whose Kafka key is not their customer id",
                           r->key_other);
    rc |= http_metric_head(b, "segstream_consumer_lag", "gauge",
                           "records behind the partition's high watermark (last fetch)");
    for (int i = 0; i < r->n_parts; i++) {
        part_t *p = &r->parts[i];
        if (!p->owned) continue;
        int64_t hi = strm_consumer_high(r->cons, p->topic, p->partition);
        if (hi < 0 || p->next_offset < 0) continue;
        char pn[16];
        snprintf(pn, sizeof(pn), "%" PRId32, p->partition);
        lb.len = 0;
        rc |= http_label(&lb, "topic", p->topic);
        rc |= http_label(&lb, "partition", pn);
        rc |= http_metric_u64(b, "segstream_consumer_lag", lb.p,
                              (uint64_t)(hi > p->next_offset ? hi - p->next_offset : 0));
    }
    rc |= http_metric_head(b, "segstream_partitions_owned", "gauge", "partitions assigned here");
    uint64_t owned = 0;
    for (int i = 0; i < r->n_parts; i++) owned += r->parts[i].owned != 0;
    rc |= http_metric_u64(b, "segstream_partitions_owned", NULL, owned);
    uint64_t held = 0;
    for (int i = 0; i < r->n_parts; i++) held += r->parts[i].owned && r->parts[i].pp.held;
    rc |= http_metric1_u64(b, "segstream_records_held", "gauge",
                           "records far ahead of their stream, waiting for the next one to "
                           "decide (input.max_future_skew)",
                           held);
    rc |= http_metric1_f64(b, "segstream_loop_lag_seconds", "gauge",
                           "how late the last 100 ms tick ran", r->loop_lag);
    rc |= http_metric1_f64(b, "segstream_loop_lag_max_seconds", "gauge",
                           "the largest tick delay since start", r->loop_lag_max);
    rc |= http_metric_head(b, "segstream_batch_size", "histogram", "records per consumed batch");
    uint64_t cum = 0;
    for (size_t i = 0; i <= N_BUCKETS; i++) {
        cum += r->batch_bucket[i];
        char le[16];
        if (i < N_BUCKETS)
            snprintf(le, sizeof(le), "%g", batch_le[i]);
        else
            snprintf(le, sizeof(le), "+Inf");
        lb.len = 0;
        rc |= http_label(&lb, "le", le);
        rc |= http_metric_u64(b, "segstream_batch_size_bucket", lb.p, cum);
    }
    rc |= http_metric_f64(b, "segstream_batch_size_sum", NULL, r->batch_sum);
    rc |= http_metric_u64(b, "segstream_batch_size_count", NULL, r->batches);
    rc |= http_metric1_u64(b, "segstream_watermark_ms", "gauge",
                           "the watermark W, event time in ms (0 before any)",
                           r->pl.has_W && r->pl.W > 0 ? (uint64_t)r->pl.W : 0);
    rc |= http_metric1_u64(b, "segstream_records_waiting", "gauge",
                           "records taken from Kafka and waiting to be applied in event-time order",
                           (uint64_t)r->buffered);
    rc |= http_metric1_u64(b, "segstream_merge_waits_total", "counter",
                           "merges held back by a partition that may have older records to come",
                           r->merge_waits);
    rc |= http_metric1_u64(b, "segstream_customers", "gauge",
                           "customers in this process's memory (created or loaded here)",
                           st_mem_count(r->pl.store));
    if (r->ck) rc |= ck_metrics(r, b);
    rc |= http_metric1_u64(b, "segstream_model_version", "gauge", "cluster model version",
                           seg_model(r->pl.seg)->version);
    strm_buf_free(&lb);
    return rc ? 500 : 200;
}

/* ---------------- main ---------------- */

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, 0, 'c'}, {"help", no_argument, 0, 'h'}, {0, 0, 0, 0}};
    const char *cfg_path = NULL;
    int o;
    optind = 1;
    while ((o = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        if (o == 'c')
            cfg_path = optarg;
        else if (o == 'h')
            return usage(stdout), 0;
        else
            return usage(stderr), 2;
    }
    if (optind < argc) {
        fprintf(stderr, "segstream run: unexpected argument '%s'\n", argv[optind]);
        return 2;
    }
    static run_t R; /* one daemon per process; large, so not on the stack */
    run_t *r = &R;
    memset(r, 0, sizeof(*r));
    r->kafka_ok = 1; /* until a probe says otherwise */
    char err[512];
    if (cfg_load(&r->cfg, cfg_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "segstream run: %s\n", err);
        cfg_free(&r->cfg);
        return 2;
    }
    cli_set_log_level(r->cfg.log_level);
    if (pl_init(&r->pl, &r->cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "segstream run: %s\n", err);
        cfg_free(&r->cfg);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    r->pl.live = 1;
    r->pl.ext_W = 1;
    r->pl.on_change = sink_change;
    r->pl.change_ud = r;
    r->pl.on_dead = sink_dead;
    r->pl.dead_ud = r;
    r->pl.on_applied = on_applied;
    r->pl.applied_ud = r;
    r->pl.owns = owns;
    r->pl.owns_ud = r;
    r->last_part = -1;
    r->idle_since_wall = INT64_MIN;
    char hn[64] = "localhost";
    gethostname(hn, sizeof(hn) - 1);
    snprintf(r->instance, sizeof(r->instance), "%s:%d", hn, (int)getpid());

    int rc = 1;
    int np = r->cfg.n_kafka_props;
    const char **props = calloc((size_t)np * 3 + 1, sizeof(char *)); /* pairs, then origins */
    if (!props) goto out_pl;
    for (int i = 0; i < r->cfg.n_kafka_props; i++) {
        props[2 * i] = r->cfg.kafka_props[i].key;
        props[2 * i + 1] = r->cfg.kafka_props[i].val;
        props[2 * np + i] = r->cfg.kafka_props[i].origin;
    }
    strm_kopts_t ko = {.brokers = r->cfg.brokers,
                       .group_id = r->cfg.group_id,
                       .client_id = "segstream",
                       .props = props,
                       .n_props = np,
                       .origins = props + 2 * np,
                       .log = cli_kafka_log};
    r->take_buf = calloc(BATCH_MAX, sizeof(*r->take_buf));
    r->batch = calloc(BATCH_MAX, sizeof(*r->batch));
    r->batch_part = calloc(BATCH_MAX, sizeof(*r->batch_part));
    if (!r->take_buf || !r->batch || !r->batch_part || uv_loop_init(&r->loop) != 0) goto out_props;
    if (r->cfg.redis_url && *r->cfg.redis_url && ck_start(r, err, sizeof(err)) < 0) {
        fprintf(stderr, "segstream run: redis.url: %s\n", err);
        rc = 2;
        goto out_loop;
    }
    if (http_start(&r->http, &r->loop, r->cfg.http_listen, render_metrics, render_health, r, err,
                   sizeof(err)) < 0) {
        fprintf(stderr, "segstream run: http.listen: %s\n", err);
        rc = 2;
        goto out_http; /* run the loop once: the failed listener closes there */
    }
    r->prod = strm_producer_new(&ko, on_delivery, r, err, sizeof(err));
    if (!r->prod) {
        /* a bad kafka.properties entry lands here, named with where it was set */
        fprintf(stderr, "segstream run: %s\n", err);
        rc = 2;
        goto out_http;
    }
    r->cons = strm_consumer_new(&ko, (const char *const *)r->cfg.topics, r->cfg.n_topics, rebalance,
                                r, err, sizeof(err));
    if (!r->cons) {
        /* a property's own error already names its file and line */
        const char *src = r->cfg.source ? r->cfg.source : "config";
        size_t sl = strlen(src);
        if (strncmp(err, src, sl) == 0 && err[sl] == ':')
            fprintf(stderr, "segstream run: %s\n", err);
        else
            fprintf(stderr, "segstream run: %s: %s\n", src, err);
        rc = 2;
        goto out_prod;
    }
    uv_poll_init(&r->loop, &r->cpoll, strm_consumer_fd(r->cons));
    uv_poll_init(&r->loop, &r->ppoll, strm_producer_fd(r->prod));
    uv_timer_init(&r->loop, &r->tick);
    uv_idle_init(&r->loop, &r->more);
    uv_signal_init(&r->loop, &r->sigterm);
    uv_signal_init(&r->loop, &r->sigint);
    uv_signal_init(&r->loop, &r->sighup);
    r->cpoll.data = r->ppoll.data = r->tick.data = r->more.data = r;
    r->sigterm.data = r->sigint.data = r->sighup.data = r;
    uv_poll_start(&r->cpoll, UV_READABLE, on_consumer_fd);
    uv_poll_start(&r->ppoll, UV_READABLE, on_producer_fd);
    uv_timer_start(&r->tick, on_tick, TICK_MS, TICK_MS);
    uv_signal_start(&r->sigterm, on_signal, SIGTERM);
    uv_signal_start(&r->sigint, on_signal, SIGINT);
    /* a hangup (the terminal or ssh session of a foreground run gone)
     * drains like SIGTERM; left ignored when it was at start (nohup) */
    struct sigaction hup;
    if (sigaction(SIGHUP, NULL, &hup) == 0 && hup.sa_handler != SIG_IGN)
        uv_signal_start(&r->sighup, on_signal, SIGHUP);
    r->started = r->last_stats = cli_monotonic_s();
    char host[256];
    int port;
    char why[128];
    if (cfg_split_hostport(r->cfg.http_listen, host, sizeof(host), &port, why, sizeof(why)) < 0)
        snprintf(host, sizeof(host), "?");
    cli_log(LOG_INFO, "running: brokers %s, group %s, topics %s%s, changes to %s", r->cfg.brokers,
            r->cfg.group_id, r->cfg.topics[0], r->cfg.n_topics > 1 ? ",..." : "",
            r->cfg.changes_topic);
    int v6 = strchr(host, ':') != NULL; /* a URL puts an IPv6 address in brackets */
    cli_log(LOG_INFO, "serving http://%s%s%s:%d/metrics and /healthz", v6 ? "[" : "", host,
            v6 ? "]" : "", http_port(r->http));

    uv_run(&r->loop, UV_RUN_DEFAULT);
    rc = r->exit_code;
    /* a stop that ended before its grace timer: closed with the rest */
    if (r->stop_timer_on && !uv_is_closing((uv_handle_t *)&r->stop_timer))
        uv_close((uv_handle_t *)&r->stop_timer, close_cb);
    log_stats(r, cli_monotonic_s(), 1);
    for (int i = 0; i < r->n_parts; i++) q_clear(r, i);
    if (r->checks) {
        /* a thread-pool worker is inside librdkafka with this consumer and
         * will post to this loop when it returns: nothing is closed or
         * freed under it, and the process ends here */
        cli_log(LOG_INFO, "exit %d", rc);
        fflush(NULL);
        _exit(rc);
    }
    strm_consumer_close(r->cons, 10000);
    r->cons = NULL;
    while (r->head) { /* undelivered work of a failed run: never committed */
        unit_t *u = r->head;
        r->head = u->next;
        free(u->offs);
        free(u);
    }
out_prod:
    if (r->cons) strm_consumer_close(r->cons, 10000);
    strm_producer_free(r->prod);
out_http:
    if (r->http) http_stop(r->http);
    if (r->ck) ck_free(r);
    uv_run(&r->loop, UV_RUN_DEFAULT);
out_loop:
    if (uv_loop_close(&r->loop) != 0) cli_log(LOG_WARN, "loop closed with handles open");
out_props:
    free(props);
    free(r->take_buf);
    free(r->batch);
    free(r->batch_part);
    free(r->m_cur);
    free(r->m_wait);
out_pl:
    parts_free(r);
    free(r->owner);
    free(r->dormant);
    pl_free(&r->pl);
    cfg_free(&r->cfg);
    cli_log(LOG_INFO, "exit %d", rc);
    return rc;
}
