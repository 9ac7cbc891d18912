/* cmd/pipeline.c: the only place that sees stream, state and segmenter
 * together (see pipeline.h). Owns the due-time index, the watermark of a
 * single ordered input, and the counters; the sinks own the outputs. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "cmd/cli.h"
#include "cmd/pipeline.h"

int pl_init(pl_t *pl, cfg_t *cfg, char *err, size_t errlen)
{
    memset(pl, 0, sizeof(*pl));
    pl->cfg = cfg;
    pl->seg = seg_new(&cfg->seg, err, errlen);
    if (!pl->seg) return -1;
    pl->store = st_mem_new();
    if (!pl->store) {
        snprintf(err, errlen, "out of memory");
        seg_free(pl->seg);
        return -1;
    }
    seg_due_init(&pl->due);
    strm_buf_init(&pl->buf);
    pl_part_init(&pl->file);
    pl->ext_hi = INT64_MIN;
    pl->from = INT64_MIN;
    pl->to = INT64_MAX;
    pl->change_msgpack = cfg->change_format && strcmp(cfg->change_format, "msgpack") == 0;
    return 0;
}

void pl_free(pl_t *pl)
{
    pl_part_drop(&pl->file);
    seg_due_clear(&pl->due);
    st_mem_free(pl->store);
    seg_free(pl->seg);
    strm_buf_free(&pl->buf);
}

static void count_reason(pl_stats_t *st, const char *reason)
{
    for (int i = 0; i < PL_REASONS_MAX; i++) {
        if (st->reason[i] == reason || (st->reason[i] && strcmp(st->reason[i], reason) == 0)) {
            st->reason_n[i]++;
            return;
        }
        if (!st->reason[i]) {
            st->reason[i] = reason;
            st->reason_n[i] = 1;
            return;
        }
    }
}

int pl_dead(pl_t *pl, const void *buf, size_t len, const char *reason, const char *topic,
            int32_t partition, int64_t offset)
{
    pl->st.dead++;
    count_reason(&pl->st, reason);
    if (pl->on_dead) return pl->on_dead(pl->dead_ud, buf, len, reason, topic, partition, offset);
    return 0;
}

static void on_change(void *ud, const seg_change_t *ch)
{
    pl_t *pl = ud;
    pl->st.changes[ch->dim]++;
    pl->buf.len = 0;
    int64_t emitted = pl->live ? cli_now_ms() : ch->watermark;
    int rc = pl->change_msgpack ? strm_change_msgpack(ch, emitted, &pl->buf)
                                : strm_change_json(ch, emitted, &pl->buf);
    if (rc < 0 || (pl->on_change && pl->on_change(pl->change_ud, ch, pl->buf.p, pl->buf.len) < 0))
        pl->sink_failed = 1;
}

/* Keeps one live due-index entry per customer, keyed at or before its due
 * time. Activity mostly moves the due time later: the entry stays, and when
 * it comes up the customer is re-queued at its due time then. One push per
 * customer per period instead of one per event keeps the heap near the
 * number of customers. */
static int queue_due(pl_t *pl, seg_customer_t *c)
{
    if (c->due == SEG_NEVER || c->due >= c->due_queued) return 0;
    c->due_queued = c->due; /* an entry queued later than this one is now stale */
    return seg_due_push(&pl->due, c->due, c->handle);
}

int pl_advance(pl_t *pl, int64_t W)
{
    if (pl->has_W && W < pl->W) return 0;
    pl->W = W;
    pl->has_W = 1;
    seg_due_entry_t e;
    int more;
    /* entries come up in (time, handle) order, and every customer's entry is
     * at or before its due time: customers step in the same order as with an
     * entry per due time */
    while ((more = seg_due_peek(&pl->due, &e)) > 0 && e.due < W) {
        seg_due_pop(&pl->due);
        /* the next one's customer is on its way while this one steps */
        seg_due_entry_t next;
        if (seg_due_peek(&pl->due, &next) > 0 && next.due < W)
            st_mem_prefetch_handle(pl->store, next.handle);
        seg_customer_t *c = st_mem_by_handle(pl->store, e.handle);
        if (!c || c->due_queued != e.due) continue; /* superseded by an earlier entry */
        c->due_queued = SEG_NEVER;
        /* another process's now: dropped here, pl_due_restore() re-queues it */
        if (pl->owns && !pl->owns(pl->owns_ud, c)) continue;
        if (c->due == e.due) seg_step_due(pl->seg, c, W, on_change, pl);
        if (queue_due(pl, c) < 0) return -1;
    }
    if (more < 0) {
        cli_log(LOG_ERROR, "out of memory in the due-time index");
        return -1;
    }
    return pl->sink_failed ? -1 : 0;
}

void pl_part_init(pl_part_t *part)
{
    memset(part, 0, sizeof(*part));
    part->hi = INT64_MIN;
}

void pl_part_drop(pl_part_t *part)
{
    free(part->held);
    free(part->held_topic);
    free(part->held_key);
    part->held = NULL;
    part->held_topic = NULL;
    part->held_key = NULL;
    part->held_key_len = 0;
}

void pl_part_hold_key(pl_part_t *part, int32_t partition, int64_t offset, const void *key,
                      size_t len)
{
    if (!part->held || part->held_offset != offset || part->held_partition != partition) return;
    free(part->held_key);
    part->held_key = len ? malloc(len) : NULL;
    part->held_key_len = part->held_key ? len : 0;
    if (part->held_key) memcpy(part->held_key, key, len);
}

const void *pl_part_key_of(const pl_part_t *part, int32_t partition, int64_t offset, size_t *len)
{
    if (!part->held || part->held_offset != offset || part->held_partition != partition)
        return NULL;
    *len = part->held_key_len;
    return part->held_key;
}

/* What a record's time is checked against: the newest time this stream has
 * shown. For a file, W; for a partition of run, the newest of its own, of W
 * and of every partition here, so that neither a quiet partition nor one
 * read ahead of the others makes good events "future". Before any of that
 * (a fresh state's first records), run has the wall clock: no event can
 * have happened in the future, and a lone first record is not held for
 * want of a second. A file has nothing: INT64_MIN. */
static int64_t future_ref(const pl_t *pl, const pl_part_t *part)
{
    int64_t ref = pl->has_W ? pl->W : INT64_MIN;
    if (pl->ext_W) {
        if (part->hi > ref) ref = part->hi;
        if (pl->ext_hi > ref) ref = pl->ext_hi;
    }
    if (ref == INT64_MIN && pl->live) ref = cli_now_ms();
    return ref;
}

static int apply_held(pl_t *pl, pl_part_t *part);

/* Decides the held record: applied when the stream has caught up with it,
 * or the next record (next_ts, when has_next) lands near it (the stream
 * moved on over a quiet gap); else a dead letter (the next record came
 * back, or went further still: one bad clock does not vouch for another).
 * A record held with nothing to check it against (a file's first) is
 * applied unless the next one is far earlier, or, with no next one, alone:
 * it is the earliest seen, so it moves W the least. */
static int decide_held(pl_t *pl, pl_part_t *part, int has_next, int64_t next_ts)
{
    int64_t skew = pl->cfg->max_future_skew_ms, ref = future_ref(pl, part), t = part->held_ts;
    int in_line = ref != INT64_MIN && t <= ref + skew;
    int vouched = ref == INT64_MIN ? !has_next || next_ts >= t - skew
                                   : has_next && next_ts >= t - skew && next_ts <= t + skew;
    if (in_line || vouched) return apply_held(pl, part);
    int rc = pl_dead(pl, part->held, part->held_len, "future_ts", part->held_topic,
                     part->held_partition, part->held_offset);
    pl_part_drop(part);
    return rc;
}

static int hold(pl_part_t *part, const seg_event_t *ev, const void *buf, size_t len,
                const char *topic, int32_t partition, int64_t offset)
{
    part->held = malloc(len ? len : 1);
    part->held_topic = strdup(topic ? topic : "");
    if (!part->held || !part->held_topic) {
        pl_part_drop(part);
        cli_log(LOG_ERROR, "out of memory holding a future record");
        return -1;
    }
    memcpy(part->held, buf, len);
    part->held_len = len;
    part->held_ts = ev->ts;
    part->held_offset = offset;
    part->held_partition = partition;
    return 0;
}

int pl_part_end(pl_t *pl, pl_part_t *part)
{
    return part->held ? decide_held(pl, part, 0, 0) : 0;
}

/* A change decided at W for a customer other than the event's: its own
 * silent changes due before W come first, or a later change's ts would
 * clamp theirs (a customer's changes never go back in time). */
static void refresh_at(pl_t *pl, seg_customer_t *c, int64_t W)
{
    if (pl->owns && !pl->owns(pl->owns_ud, c)) return; /* not this process's now */
    if (W != INT64_MIN) {
        while (seg_step_due(pl->seg, c, W, on_change, pl)) {
        }
        queue_due(pl, c);
    }
    seg_refresh_cluster(pl->seg, c, W, on_change, pl);
}

int pl_assign_cluster(pl_t *pl, seg_customer_t *c)
{
    refresh_at(pl, c, pl->has_W ? pl->W : INT64_MIN);
    return pl->sink_failed ? -1 : 0;
}

int pl_due_restore(pl_t *pl, seg_customer_t *c)
{
    return queue_due(pl, c);
}

int pl_record(pl_t *pl, const void *buf, size_t len, const char *topic, int32_t partition,
              int64_t offset)
{
    return pl_record_part(pl, &pl->file, buf, len, topic, partition, offset);
}

static int apply_event(pl_t *pl, pl_part_t *part, const seg_event_t *ev, uint64_t hash);

/* One record already decoded into ev (ok) or refused (reason): everything
 * pl_record_part does after decoding. hash: st_mem_hash of the customer id
 * when ok. */
static int apply_decoded(pl_t *pl, pl_part_t *part, const seg_event_t *ev, int ok,
                         const char *reason, uint64_t hash, const void *buf, size_t len,
                         const char *topic, int32_t partition, int64_t offset)
{
    pl->accepted = pl->decoded = 0;
    if (ok && (ev->ts < pl->from || ev->ts >= pl->to)) {
        pl->st.skipped++; /* outside the replayed range: as if absent */
        return 0;
    }
    pl->st.records++;
    if (!ok) return pl_dead(pl, buf, len, reason, topic, partition, offset);
    pl->decoded = 1;
    /* A record held as far ahead is decided by this one (a dead letter
     * tells nothing): near it, the stream has moved on over a quiet gap, and
     * it is applied first (so it is if the stream caught up with it
     * meanwhile); otherwise it was a producer's bad clock. */
    if (part->held && decide_held(pl, part, 1, ev->ts) < 0) return -1;
    /* Nothing to check against yet (a file's first record): it waits for
     * the next one too, or one bad clock would set W for all.
     * max_future_skew 0: no check. */
    int64_t skew = pl->cfg->max_future_skew_ms, ref = future_ref(pl, part);
    if (skew > 0 && (ref == INT64_MIN || ev->ts > ref + skew))
        return hold(part, ev, buf, len, topic, partition, offset);
    return apply_event(pl, part, ev, hash);
}

/* Applies the held record (decoded again from its copy), then forgets it. */
static int apply_held(pl_t *pl, pl_part_t *part)
{
    const char *reason = NULL;
    int rc = strm_decode(part->held, part->held_len, pl->cfg->max_event_bytes, &pl->held_ev,
                         &reason) == 0
                 ? apply_event(pl, part, &pl->held_ev,
                               st_mem_hash(pl->held_ev.customer_id, pl->held_ev.id_len))
                 : pl_dead(pl, part->held, part->held_len, reason, part->held_topic,
                           part->held_partition, part->held_offset);
    pl_part_drop(part);
    return rc;
}

/* An accepted event: W, its customer's silent changes, the event itself,
 * and the customers a model change moved. */
static int apply_event(pl_t *pl, pl_part_t *part, const seg_event_t *ev, uint64_t hash)
{
    if (ev->ts > part->hi) part->hi = ev->ts;
    if (pl->ext_W && ev->ts > pl->ext_hi) pl->ext_hi = ev->ts;
    pl->st.decoded++;
    int64_t Wc;
    if (pl->ext_W) {
        /* The customer's own event proves its silence up to ev->ts, whatever
         * the other partitions say: its due changes step up to there. */
        Wc = pl->has_W && pl->W > ev->ts ? pl->W : ev->ts;
    } else {
        if (pl_advance(pl, pl->has_W && pl->W > ev->ts ? pl->W : ev->ts) < 0) return -1;
        Wc = pl->W;
    }

    int created;
    seg_customer_t *c =
        st_mem_get_hashed(pl->store, ev->customer_id, ev->id_len, hash, 1, &created);
    if (!c) {
        cli_log(LOG_ERROR, "out of memory storing customer %s", ev->customer_id);
        return -1;
    }
    pl->accepted = 1;
    if (seg_apply(pl->seg, c, ev, Wc, on_change, pl) == 1) {
        pl->st.duplicates++;
        return 0;
    }
    pl->st.applied++;
    if (pl->on_applied) pl->on_applied(pl->applied_ud, c);
    if (queue_due(pl, c) < 0) return -1;

    /* Other customers moved by a model change: at the global W, not at this
     * event's time, which may run ahead of their partitions in `run`. */
    uint64_t *pending;
    int n = seg_take_pending(pl->seg, &pending);
    int64_t Wp = pl->has_W ? pl->W : INT64_MIN;
    for (int i = 0; i < n; i++) {
        seg_customer_t *pc = st_mem_by_handle(pl->store, pending[i]);
        if (pc) refresh_at(pl, pc, pc == c ? Wc : Wp);
    }
    free(n ? pending : NULL);
    return pl->sink_failed ? -1 : 0;
}

int pl_record_part(pl_t *pl, pl_part_t *part, const void *buf, size_t len, const char *topic,
                   int32_t partition, int64_t offset)
{
    const char *reason = NULL;
    seg_event_t *ev = &pl->ev;
    int ok = strm_decode(buf, len, pl->cfg->max_event_bytes, ev, &reason) == 0;
    uint64_t hash = ok ? st_mem_hash(ev->customer_id, ev->id_len) : 0;
    return apply_decoded(pl, part, ev, ok, reason, hash, buf, len, topic, partition, offset);
}

/* A record decoded ahead of its turn: decoding is pure, so doing it early
 * changes nothing but when the customer's memory is asked for. */
typedef struct ahead {
    seg_event_t ev;
    const char *reason;
    uint64_t hash;
    int ok;
} ahead_t;

#define PL_RING 4 /* a power of two: record i is in ring[i % PL_RING] */

static void decode_ahead(pl_t *pl, const pl_rec_t *r, ahead_t *a)
{
    a->reason = NULL;
    a->ok = strm_decode(r->buf, r->len, pl->cfg->max_event_bytes, &a->ev, &a->reason) == 0;
    if (!a->ok) return;
    a->hash = st_mem_hash(a->ev.customer_id, a->ev.id_len);
    st_mem_prefetch_slot(pl->store, a->hash);
}

int pl_records(pl_t *pl, const pl_rec_t *recs, size_t n, const char *topic, int32_t partition)
{
    /* record i is applied while i + 1's customer and i + 2's table slot are
     * on their way from memory */
    ahead_t ring[PL_RING];
    for (size_t i = 0; i < n && i < 2; i++) decode_ahead(pl, &recs[i], &ring[i]);
    if (n && ring[0].ok) st_mem_prefetch_customer(pl->store, ring[0].hash);
    for (size_t i = 0; i < n; i++) {
        const ahead_t *a = &ring[i & (PL_RING - 1)], *next = &ring[(i + 1) & (PL_RING - 1)];
        if (i + 2 < n) decode_ahead(pl, &recs[i + 2], &ring[(i + 2) & (PL_RING - 1)]);
        if (i + 1 < n && next->ok) st_mem_prefetch_customer(pl->store, next->hash);
        /* and the customer whose silent change comes up next */
        seg_due_entry_t top;
        if (seg_due_peek(&pl->due, &top) > 0) st_mem_prefetch_handle(pl->store, top.handle);
        if (apply_decoded(pl, &pl->file, &a->ev, a->ok, a->reason, a->hash, recs[i].buf,
                          recs[i].len, topic, partition, recs[i].offset) < 0)
            return -1;
    }
    return 0;
}

void pl_summary(pl_t *pl, FILE *f, double seconds)
{
    const pl_stats_t *st = &pl->st;
    const seg_sizes_t *sz = seg_sizes(pl->seg);
    seg_model_t *m = seg_model(pl->seg);
    char wbuf[32] = "-";
    if (pl->has_W) cli_fmt_time(pl->W, wbuf, sizeof(wbuf));
    fprintf(f, "\n== segstream summary ==\n");
    fprintf(f,
            "records %" PRIu64 "  applied %" PRIu64 "  duplicates %" PRIu64
            "  dead-lettered %" PRIu64 "  watermark %s\n",
            st->records, st->applied, st->duplicates, st->dead, wbuf);
    if (seconds > 0)
        fprintf(f, "elapsed %.2f s  (%.0f records/s)\n", seconds, st->records / seconds);
    for (int i = 0; i < PL_REASONS_MAX && st->reason[i]; i++)
        fprintf(f, "  dead letter %-22s %" PRIu64 "\n", st->reason[i], st->reason_n[i]);
    fprintf(f, "changes: lifecycle %" PRIu64 "  cluster %" PRIu64 "  rules %" PRIu64 "\n",
            st->changes[SEG_DIM_LIFECYCLE], st->changes[SEG_DIM_CLUSTER],
            st->changes[SEG_DIM_RULE]);
    fprintf(f, "\ncustomers %" PRId64 "\n", sz->customers);
    fprintf(f, "lifecycle:\n");
    for (int i = 1; i < SEG_LC__COUNT; i++)
        fprintf(f, "  %-12s %8" PRId64 "\n", seg_lifecycle_names[i], sz->lifecycle[i]);
    fprintf(f, "clusters (model version %" PRIu64 "):\n", m->version);
    /* by id, not by slot: a split reuses slots, so slots are not in id order */
    int by_id[SEG_K_MAX];
    for (int j = 0; j < m->k; j++) {
        int i = j;
        for (; i > 0 && m->cl[by_id[i - 1]].id > m->cl[j].id; i--) by_id[i] = by_id[i - 1];
        by_id[i] = j;
    }
    for (int s = 0; s < m->k && m->ready; s++) {
        int j = by_id[s];
        int32_t id = m->cl[j].id;
        fprintf(f, "  %3d %-50s %8" PRId64 "\n", id, m->cl[j].label,
                id < sz->n_cluster ? sz->cluster[id] : 0);
    }
    int nr = seg_rules_count(seg_params(pl->seg)->rules);
    if (nr) fprintf(f, "rules:\n");
    for (int i = 0; i < nr; i++)
        fprintf(f, "  %-20s %8" PRId64 "\n", seg_rule_name(seg_params(pl->seg)->rules, i),
                sz->rule[i]);
}

int pl_snapshot_csv(pl_t *pl, FILE *f)
{
    seg_model_t *m = seg_model(pl->seg);
    const seg_ruleset_t *rs = seg_params(pl->seg)->rules;
    fprintf(f, "customer_id,lifecycle,cluster,cluster_label,rules,events,orders,revenue,"
               "first_seen,last_seen");
    for (int d = 0; d < SEG_DIM; d++) fprintf(f, ",%s", seg_vector_names[d]);
    fputc('\n', f);
    uint64_t n = st_mem_count(pl->store);
    for (uint64_t h = 0; h < n; h++) {
        const seg_customer_t *c = st_mem_by_handle(pl->store, h);
        cli_csv_field(f, c->id);
        fprintf(f, ",%s,%d,", c->lifecycle ? seg_lifecycle_names[c->lifecycle] : "",
                (int)c->cluster);
        int slot = c->cluster >= 0 ? seg_model_slot(m, c->cluster) : -1;
        cli_csv_field(f, slot >= 0 ? m->cl[slot].label : "");
        char rules[1024] = "";
        size_t len = 0;
        for (int i = 0; i < seg_rules_count(rs) && len < sizeof(rules); i++)
            if (c->rules >> i & 1)
                len += (size_t)snprintf(rules + len, sizeof(rules) - len, "%s%s", len ? "," : "",
                                        seg_rule_name(rs, i));
        fputc(',', f);
        cli_csv_field(f, rules);
        fprintf(f, ",%" PRIu64 ",%" PRIu64 ",%.2f,%" PRId64 ",%" PRId64, c->events, c->orders,
                c->revenue, c->first_seen, c->last_seen);
        double v[SEG_DIM];
        seg_vector(seg_params(pl->seg), c, v);
        for (int d = 0; d < SEG_DIM; d++) fprintf(f, ",%.4f", v[d]);
        fputc('\n', f);
    }
    return ferror(f) ? -1 : 0;
}
