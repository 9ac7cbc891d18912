/* cmd/ckpt.c: `segstream run` with its state in Redis (CONTRACT §4), with
 * exactly-once effects across crashes. Owns the Redis connection of the
 * daemon, the loading of customers before their events are applied, the
 * dirty set, checkpoints, and the outbox of cluster changes.
 *
 * A checkpoint is one MULTI/EXEC transaction (no reader sees half of it;
 * Redis does not roll back the rest when one command fails): the dirty
 * customers (hash fields + packed state), their due times (a sorted set per
 * partition), the model (from the process that owns partition 0 of the
 * first topic), the next input offset of every owned partition, and a short
 * Lua script with the segment-size deltas (HINCRBY). It is sent only once
 * every change event produced before it was taken is delivered, so a crash
 * repeats changes (same event_id), never loses them. A process resumes each
 * partition from the offset in Redis, and the events since the checkpoint
 * are applied again to the checkpoint's state: each counts once. The script
 * records (writer, sequence): a checkpoint whose reply was lost is looked
 * up there before it is sent again, and sent only if it did not land (its
 * writes could otherwise land over a newer owner's); the script also skips
 * its size deltas when it finds its own sequence. A revoke that cannot
 * write its checkpoint within REVOKE_S releases the partitions without it
 * and stops the run, sending nothing more. Plain commands, not one script
 * for everything: Redis is busy (every reader waits) for the whole
 * transaction, and a script spent twice as long converting arguments as
 * the commands took.
 *
 * The fence: a checkpoint already sent (in the network, or in a paused
 * Redis) when its partitions went to another process must not land after
 * that one read their offsets. Each partition has an owner key holding the
 * writer that owns it. On assignment a process claims its partitions (MSET)
 * before it reads their offsets, on the same connection, so Redis runs the
 * two in that order. Before each MULTI the owner keys of the partitions
 * owned are watched (WATCH), then read (MGET), and the MULTI waits until
 * the read finds them all this process's: a claim before the WATCH shows in
 * the read, and one after it makes Redis abort the EXEC (a null reply).
 * Either way the process stops, sending nothing more. EXEC ends a watch, so
 * the next WATCH and MGET go right behind each EXEC: the next checkpoint
 * does not wait a round trip for them. A revoke UNWATCHes before it
 * releases the partitions, so that their next owner's claim does not abort
 * the checkpoints of the partitions kept. After a connection was given up
 * with a checkpoint on its way, the owner keys still this process's are
 * set again (a script) before anything else on the new one: the old
 * connection's watch breaks, so its transaction cannot land later, and the
 * lookup of whether it landed is final.
 *
 * The outbox: a cluster decision depends on the model, so events applied
 * again after a crash may not make it again; one published past the last
 * checkpoint would leave a consumer with a cluster Redis never had. So a
 * cluster change waits in its partition's outbox here, the next checkpoint
 * pushes it to the partition's list (same transaction as the state and
 * offsets that decided it), and it is produced once that checkpoint lands;
 * the checkpoint after that, sent only once it is delivered, trims it off
 * the head of the list (one writer per list: the fence). A process that
 * takes a partition over reads its list with its offsets and produces what
 * is there first (landed, perhaps not delivered: repeats keep their ids).
 *
 * Keys beside CONTRACT §4: PREFIX offsets (hash "topic:partition" -> next
 * offset, ":hi" -> its newest event time, ":w" -> the W its customers are
 * stepped to), PREFIX due:TOPIC:PARTITION (sorted set: customer id by next
 * silent change), PREFIX unassigned:TOPIC:PARTITION (set: customers seen
 * before the model was seeded and not yet in a cluster; a process that
 * restarts in the warm-up cannot know them otherwise), PREFIX checkpoints
 * (hash: writer -> last sequence), PREFIX owner:TOPIC:PARTITION (string:
 * the writer that owns the partition; the fence), PREFIX
 * outbox:TOPIC:PARTITION (list: msgpack [key, instance, payload] per
 * cluster change a landed checkpoint holds, not yet trimmed). */
#include <inttypes.h>
#include <msgpack.h>
#include <stdlib.h>
#include <string.h>
#include "cmd/cli.h"
#include "cmd/run.h"
#include "segmenter/decimal.h"
#include "state/pack.h"
#include "state/redis.h"

#define CK_EVERY_S    1.0
#define CK_DIRTY_MAX  50000
#define CK_STOP_S     30.0
#define STOP_DUE_S    10.0 /* of CK_STOP_S, for the changes due at W */
#define REVOKE_S      30.0
#define REDIS_TIMEOUT 5000
/* A key with a topic in it: the prefix, a name such as "unassigned:", the
 * topic, a partition; a customer key: the prefix, "c:" and an id. */
#define KEY_LEN 512
_Static_assert(KEY_LEN > CFG_PREFIX_MAX + 16 + 249 + 12 &&
                   KEY_LEN > CFG_PREFIX_MAX + 2 + SEG_ID_MAX,
               "KEY_LEN holds every key");
#define DUE_BATCH 2000

enum { F_DIRTY = 1, F_STALE = 2, F_ASKED = 4 };
enum {
    R_LOAD,
    R_DUE_LOAD,
    R_OFFSETS,
    R_MODEL,
    R_SNAP,
    R_QUEUED,
    R_LANDED,
    R_DUE,
    R_UNASSIGNED,
    R_ADOPT_VERSION,
    R_ADOPT,
    R_CLAIM,
    R_TOUCH,
    R_WATCH,
    R_OWNERS,
    R_UNWATCH,
    R_OUTBOX
};
/* the watch on the owner keys (see the header) */
enum { WT_NONE, WT_ASKED, WT_READY };
#define ADOPT_EVERY_S 5.0
#define SWEEP_EVERY_S 2.0

/* The size deltas, as (hash, field, delta) triples, once per (writer,
 * sequence); 1 when applied, 0 when this checkpoint had landed before. */
static const char script[] =
    "if redis.call('HGET', KEYS[1], ARGV[1]) == ARGV[2] then return 0 end\n"
    "for i = 3, #ARGV, 3 do\n"
    "  if redis.call('HINCRBY', ARGV[i], ARGV[i+1], ARGV[i+2]) == 0 then\n"
    "    redis.call('HDEL', ARGV[i], ARGV[i+1]) end\n"
    "end\n"
    "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])\n"
    "return 1\n";

/* Outbox entries, each the msgpack array [key, instance, payload] that goes
 * into PREFIX outbox:TOPIC:PARTITION, back to back in b. */
typedef struct obq {
    strm_buf_t b;
    size_t *len;
    int n, cap;
} obq_t;

/* A partition's outbox (by index into r->parts). */
typedef struct obp {
    obq_t pend;   /* decided since the last checkpoint was built */
    int64_t trim; /* produced from the head of its list: the next checkpoint trims them */
} obp_t;

typedef struct snap {
    uint64_t seq, need_seq;
    /* the commands in the protocol's form (RESP), written here rather than
     * formatted by hiredis, which took more time than building them */
    strm_buf_t resp;
    size_t *cmd; /* where each command starts in resp (the last: the script) */
    int n_cmd, cap_cmd;
    /* the arguments of the command being built */
    strm_buf_t arena;
    size_t *off, *len;
    int argc, cap;
    int customers;
    int lost; /* sent, and the reply lost: it may have landed */
    struct po {
        int part;
        int64_t next;
    } * po;
    int n_po;
    /* the outbox entries this checkpoint pushes, produced once it lands */
    struct sob {
        int part;
        uint32_t gen; /* the partition's assignment they were decided in */
        obq_t q;
    } * sob;
    int n_sob;
} snap_t;

typedef struct req {
    int kind;
    uint64_t handle;
    int part;
    uint64_t epoch; /* loads: the ownership epoch they were asked in;
                     * R_OWNERS: the watch generation */
    snap_t *snap;
} req_t;

typedef struct ckpt_state {
    st_redis_t *redis;
    cfg_redis_url_t url;
    char prefix[CFG_PREFIX_MAX + 1]; /* checked at load */
    int up, ever_up;
    int loading, load_failed;
    /* bumped whenever ownership changes: a load asked before may hold what
     * another process has overwritten since, and must not count */
    uint64_t epoch;
    uint8_t *flags;
    uint64_t cap_flags;
    uint32_t *dirty;
    size_t n_dirty, cap_dirty;
    /* sizes as of the last checkpoint built */
    int64_t lc[SEG_LC__COUNT], rule[SEG_RULES_MAX], customers;
    int64_t *cl;
    int32_t n_cl;
    snap_t *wait, *flight;
    char queued_err[256]; /* the first error queuing the transaction's commands */
    /* partitions went to another owner without their last checkpoint, or
     * were taken over: no checkpoint may be sent any more (it could go over
     * the new owner's state); the run stops at the next tick */
    int fenced;
    /* The fence: the owner keys of the partitions in wp (indices into
     * r->parts) are watched on this connection, and were read after the
     * WATCH. WT_READY: the read found them all this process's, so a MULTI may
     * go (Redis aborts its EXEC if one changed since). wgen tells a read
     * that still counts from one asked before the watch was reset. */
    int watch;
    uint64_t wgen;
    int *wp, n_wp, cap_wp;
    uint64_t seq, last_need;
    double last_build;
    char writer[160];
    int model_state; /* 0 not asked, 1 asked, 2 loaded (or none in Redis) */
    /* a deferred rebalance: 1 assign (reading offsets), 2 revoke
     * (checkpointing); rb_asked: the offsets asked for (assign), the
     * UNWATCH asked for (1) or run (2) (revoke) */
    int rb, rb_asked;
    strm_tp_t *rb_tps;
    int rb_n;
    double rb_since;
    /* an assignment's outbox lists, read before its offsets (rb_ob[i] for
     * rb_tps[i]); rb_gen tells replies to the current reads */
    obq_t *rb_ob;
    int rb_got;
    uint64_t rb_gen;
    /* an assignment that came while a revoke waited for its checkpoint
     * (librdkafka rejoins without waiting for the revoke when the
     * subscribed topics change): taken once that revoke is done, never in
     * its place (rb_next_n of them; NULL: none; cooperative: every
     * increment that came, together) */
    strm_tp_t *rb_next;
    int rb_next_n;
    /* the outboxes of the partitions (index into r->parts) */
    obp_t *obp;
    int n_obp;
    uint64_t ob_taken;             /* entries read from lists a previous owner left */
    int due_inflight, due_loading; /* ZRANGEBYSCOREs, and their loads */
    int64_t due_W;
    int sweep_inflight;
    double last_sweep;
    int adopt_inflight;
    double last_adopt;
    /* size deltas of customers loaded in a cluster this model does not
     * know: they leave it here, and count again where they land */
    struct xd {
        int32_t id;
        int64_t d;
    } * xd;
    int n_xd, cap_xd;
    int stopping, closing;
    double stop_since;
    uint64_t checkpoints, failures, loaded, ck_customers;
    /* the last landed checkpoint's RESP buffer, for the next one: tens of
     * MB, which a fresh allocation would fault in page by page again */
    strm_buf_t spare;
} ck_t;

static void xdelta(ck_t *k, int32_t id, int64_t d);

static ck_t *CK(run_t *r)
{
    return r->ck;
}

/* ---------------- per-customer flags ---------------- */

static uint8_t *flag(ck_t *k, uint64_t h)
{
    if (h >= k->cap_flags) {
        uint64_t cap = k->cap_flags ? k->cap_flags : 4096;
        while (cap <= h) cap *= 2;
        uint8_t *f = realloc(k->flags, cap);
        if (!f) return NULL;
        memset(f + k->cap_flags, 0, cap - k->cap_flags);
        k->flags = f;
        k->cap_flags = cap;
    }
    return &k->flags[h];
}

void ck_dirty(run_t *r, const seg_customer_t *c)
{
    ck_t *k = CK(r);
    uint8_t *f = flag(k, c->handle);
    if (!f || (*f & F_DIRTY)) return;
    if (k->n_dirty == k->cap_dirty) {
        size_t cap = k->cap_dirty ? 2 * k->cap_dirty : 4096;
        uint32_t *d = realloc(k->dirty, cap * sizeof(*d));
        if (!d) return; /* not marked: it is written at its next change */
        k->dirty = d;
        k->cap_dirty = cap;
    }
    *f |= F_DIRTY;
    k->dirty[k->n_dirty++] = (uint32_t)c->handle;
}

/* ---------------- commands ---------------- */

static int rsend(run_t *r, req_t *q, int argc, const char **argv, const size_t *lens)
{
    if (st_redis_cmd(CK(r)->redis, q, argc, argv, lens) < 0) {
        free(q);
        return -1;
    }
    return 0;
}

static req_t *req(int kind)
{
    req_t *q = calloc(1, sizeof(req_t));
    if (q) q->kind = kind;
    return q;
}

/* The one request of every command whose reply is only looked at for an
 * error (inside MULTI: QUEUED): never freed. */
static req_t queued_req = {.kind = R_QUEUED};

/* One preformatted command of a transaction. */
static int queued(run_t *r, const char *cmd, size_t len)
{
    return st_redis_formatted(CK(r)->redis, &queued_req, cmd, len);
}

static void key_of(ck_t *k, char *buf, size_t len, const char *what, const char *id, size_t idlen)
{
    snprintf(buf, len, "%s%s%.*s", k->prefix, what, (int)idlen, id);
}

/* HGET PREFIX c:ID state, for a customer about to be applied or due. */
static int load(run_t *r, seg_customer_t *c, int kind, int part)
{
    ck_t *k = CK(r);
    char key[KEY_LEN];
    key_of(k, key, sizeof(key), "c:", c->id, c->id_len);
    const char *argv[] = {"HMGET", key, "state", "cluster"};
    req_t *q = req(kind);
    if (!q) return -1;
    q->handle = c->handle;
    q->epoch = k->epoch;
    q->part = part;
    if (rsend(r, q, 4, argv, NULL) < 0) return -1;
    k->loading += kind == R_LOAD;
    k->due_loading += kind == R_DUE_LOAD;
    return 0;
}

/* The customer an id names, made here as a placeholder (stale until Redis
 * answers) when this process has not seen it; *f its flags. NULL when out
 * of memory. */
static seg_customer_t *customer(run_t *r, const char *id, size_t len, uint8_t **f)
{
    int created = 0;
    seg_customer_t *c = st_mem_get(r->pl.store, id, len, 1, &created);
    *f = c ? flag(CK(r), c->handle) : NULL;
    if (!*f) return NULL;
    if (created) **f |= F_STALE;
    return c;
}

/* Asks Redis for a stale customer once (until its answer). Returns -1 only
 * when the question could not be sent. */
static int ask(run_t *r, seg_customer_t *c, uint8_t *f, int kind, int part)
{
    if (!(*f & F_STALE) || (*f & F_ASKED)) return 0;
    if (load(r, c, kind, part) < 0) return -1;
    *f |= F_ASKED;
    return 0;
}

int ck_prefetch(run_t *r, const strm_msg_t *ms, int n)
{
    ck_t *k = CK(r);
    if (!k->up) return -1;
    if (k->loading) return 1;
    k->load_failed = 0;
    seg_event_t ev;
    /* a customer whose load the due or unassigned sweep asked for (not
     * counted in loading): an event applied before that answer would be
     * lost when the answer replaces the customer */
    int awaited = 0;
    for (int i = 0; i < n; i++) {
        const strm_msg_t *m = &ms[i];
        const char *why;
        if (m->error || m->dropped) continue;
        int part = find_part_ext(r, m->topic, m->partition);
        if (part < 0 || !r->parts[part].owned) continue; /* not applied here (process()) */
        if (strm_decode(m->payload, m->len, r->cfg.max_event_bytes, &ev, &why) < 0) continue;
        uint8_t *f;
        seg_customer_t *c = customer(r, ev.customer_id, ev.id_len, &f);
        if (!c) return -1;
        /* the answer makes the customer its partition's: a revoke before
         * the record is applied must leave the copy stale, like the rest */
        if (ask(r, c, f, R_LOAD, part) < 0) return k->loading ? 1 : -1;
        awaited |= (*f & F_STALE) != 0;
    }
    return k->loading || awaited ? 1 : 0;
}

int ck_usable(run_t *r, const seg_customer_t *c)
{
    ck_t *k = CK(r);
    return c->handle >= k->cap_flags || !(k->flags[c->handle] & F_STALE);
}

int ck_rebalancing(run_t *r)
{
    return CK(r)->rb != 0;
}

int ck_blocked(run_t *r)
{
    ck_t *k = CK(r);
    return !k->up || k->loading || k->rb || k->model_state != 2 || k->stopping;
}

/* Puts the answer of a load into the customer (or leaves it new). */
static void loaded(run_t *r, req_t *q, const redisReply *rp)
{
    ck_t *k = CK(r);
    seg_customer_t *c = st_mem_by_handle(r->pl.store, q->handle);
    uint8_t *f = c ? flag(k, q->handle) : NULL;
    if (q->kind == R_LOAD) k->loading--;
    if (q->kind == R_DUE_LOAD) k->due_loading--;
    if (!c || !f) return;
    *f &= (uint8_t)~F_ASKED;
    if (!rp) {
        k->load_failed = 1;
        return;
    }
    if (!(*f & F_STALE)) return;      /* answered twice; the first one counts */
    if (q->epoch != k->epoch) return; /* asked before an ownership change: asked again */
    const redisReply *cl = NULL;
    if (rp->type == REDIS_REPLY_ARRAY && rp->elements == 2) {
        cl = rp->element[1];
        rp = rp->element[0];
    }
    if (rp->type == REDIS_REPLY_STRING) {
        char id[SEG_ID_MAX + 1];
        size_t idlen = c->id_len;
        memcpy(id, c->id, idlen);
        id[idlen] = 0; /* printed below */
        seg_customer_clear(c);
        seg_customer_init(c, id, idlen, q->handle);
        char err[256];
        if (st_unpack_customer(r->pl.seg, rp->str, (size_t)rp->len, c, err, sizeof(err)) < 0) {
            cli_log(LOG_ERROR, "customer %s in Redis cannot be read: %s", id, err);
            run_begin_stop(r, 1);
            return;
        }
        k->loaded++;
        long was = cl && cl->type == REDIS_REPLY_STRING ? strtol(cl->str, NULL, 10) : -1;
        if (was >= 0 && c->cluster < 0) xdelta(k, (int32_t)was, -1);
    }
    *f &= (uint8_t)~F_STALE;
    if (q->part >= 0) run_own(r, q->handle, q->part);
    pl_due_restore(&r->pl, c);
}

/* ---------------- the outbox of cluster changes ---------------- */

static void obq_init(obq_t *q)
{
    memset(q, 0, sizeof(*q));
    strm_buf_init(&q->b);
}

static void obq_free(obq_t *q)
{
    strm_buf_free(&q->b);
    free(q->len);
    obq_init(q);
}

/* The entry of len bytes that q->b ends with since `at`, counted; or q->b
 * cut back to at when out of memory. */
static int obq_count(obq_t *q, size_t at)
{
    if (q->n == q->cap) {
        int cap = q->cap ? 2 * q->cap : 64;
        size_t *l = realloc(q->len, (size_t)cap * sizeof(*l));
        if (!l) {
            q->b.len = at;
            return -1;
        }
        q->len = l;
        q->cap = cap;
    }
    q->len[q->n++] = q->b.len - at;
    return 0;
}

static int obq_push(obq_t *q, const void *e, size_t len)
{
    size_t at = q->b.len;
    return strm_buf_append(&q->b, e, len) < 0 ? -1 : obq_count(q, at);
}

/* The outbox of partition index i, made when first asked for; NULL when
 * out of memory. Never more than r->n_parts: loops over k->obp index
 * r->parts. */
static obp_t *obp_at(ck_t *k, int i)
{
    if (i >= k->n_obp) {
        int n = i + 1;
        obp_t *o = realloc(k->obp, (size_t)n * sizeof(*o));
        if (!o) return NULL;
        for (int j = k->n_obp; j < n; j++) {
            obq_init(&o[j].pend);
            o[j].trim = 0;
        }
        k->obp = o;
        k->n_obp = n;
    }
    return &k->obp[i];
}

static void outbox_key(const ck_t *k, char *buf, size_t len, const part_t *p)
{
    snprintf(buf, len, "%soutbox:%s:%" PRId32, k->prefix, p->topic, p->partition);
}

/* The owned partition whose outbox holds a change of customer h: its own
 * (keyed records), else the one being applied, else any owned one; -1
 * when none is owned. Any owned one is right: every checkpoint holds the
 * changed customer and every owned partition's list. */
static int outbox_part(const run_t *r, uint64_t h)
{
    int p = h < r->cap_owner ? r->owner[h] : -1;
    if (p >= 0 && r->parts[p].owned) return p;
    p = r->cur_part;
    if (p >= 0 && p < r->n_parts && r->parts[p].owned) return p;
    for (p = 0; p < r->n_parts; p++)
        if (r->parts[p].owned) return p;
    return -1;
}

static int buf_write(void *data, const char *p, size_t len)
{
    return strm_buf_append(data, p, len);
}

int ck_outbox(run_t *r, const seg_customer_t *c, const void *p, size_t len)
{
    ck_t *k = CK(r);
    size_t il = strlen(r->instance);
    int part = outbox_part(r, c->handle);
    if (part < 0) /* no checkpoint of this process could hold it */
        return run_produce_change(r, c->id, c->id_len, r->instance, il, p, len);
    obp_t *o = obp_at(k, part);
    if (!o) return -1;
    size_t at = o->pend.b.len;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &o->pend.b, buf_write);
    /* the customer's cluster sequence last: its changes may wait in the
     * lists of several partitions (two input topics), and are published in
     * its order (obq_produce) */
    if (msgpack_pack_array(&pk, 4) || msgpack_pack_str(&pk, c->id_len) ||
        msgpack_pack_str_body(&pk, c->id, c->id_len) || msgpack_pack_str(&pk, il) ||
        msgpack_pack_str_body(&pk, r->instance, il) || msgpack_pack_bin(&pk, len) ||
        msgpack_pack_bin_body(&pk, p, len) || msgpack_pack_uint64(&pk, c->seq_cluster)) {
        o->pend.b.len = at;
        return -1;
    }
    return obq_count(&o->pend, at);
}

/* A str or bin at e[*at] (of n bytes): its bytes, *at past it. -1 when it
 * is neither, or runs past n. */
static int mp_raw(const uint8_t *e, size_t n, size_t *at, const char **p, size_t *len)
{
    if (*at >= n) return -1;
    uint8_t t = e[(*at)++];
    size_t w, l = 0;
    if ((t & 0xe0) == 0xa0) {
        w = 0;
        l = t & 0x1f;
    } else if (t == 0xd9 || t == 0xc4) {
        w = 1;
    } else if (t == 0xda || t == 0xc5) {
        w = 2;
    } else if (t == 0xdb || t == 0xc6) {
        w = 4;
    } else {
        return -1;
    }
    if (n - *at < w) return -1;
    for (size_t i = 0; i < w; i++) l = l << 8 | e[(*at)++];
    if (n - *at < l) return -1;
    *p = (const char *)e + *at;
    *len = l;
    *at += l;
    return 0;
}

/* A msgpack uint at e[*at] (of n bytes), *at past it; -1 otherwise. */
static int mp_uint(const uint8_t *e, size_t n, size_t *at, uint64_t *v)
{
    if (*at >= n) return -1;
    uint8_t t = e[(*at)++];
    if (t <= 0x7f) {
        *v = t;
        return 0;
    }
    if (t < 0xcc || t > 0xcf) return -1;
    size_t w = (size_t)1 << (t - 0xcc);
    if (n - *at < w) return -1;
    *v = 0;
    for (size_t i = 0; i < w; i++) *v = *v << 8 | e[(*at)++];
    return 0;
}

typedef struct ob_entry {
    const char *key, *inst, *pay;
    size_t kl, il, pl;
    uint64_t seq; /* the customer's cluster sequence; 0 in an entry written without it */
    size_t order; /* in the lists as given */
} ob_entry_t;

static int ob_entry_cmp(const void *a, const void *b)
{
    const ob_entry_t *x = a, *y = b;
    size_t m = x->kl < y->kl ? x->kl : y->kl;
    int c = memcmp(x->key, y->key, m);
    if (c) return c;
    if (x->kl != y->kl) return x->kl < y->kl ? -1 : 1;
    if (x->seq != y->seq) return x->seq < y->seq ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* Produces the entries of the n lists qs (qs[i] the outbox of partition
 * index parts[i]) in the
 * current unit (a checkpoint waits for their delivery like any change's),
 * each customer's in the order of its cluster sequence: a customer whose
 * events come on two topics has changes in two partitions' lists, and
 * published list after list a consumer could end on an older one than
 * Redis holds. An entry that cannot be read (not this process's writing)
 * is said and skipped: trimmed with the rest. Returns -1 when one could
 * not be queued. */
static int obq_produce(run_t *r, const obq_t *const *qs, const int *parts, int n)
{
    size_t total = 0;
    for (int j = 0; j < n; j++) total += (size_t)qs[j]->n;
    if (!total) return 0;
    ob_entry_t *es = malloc(total * sizeof(*es));
    if (!es) return -1;
    size_t m = 0;
    for (int j = 0; j < n; j++) {
        size_t off = 0;
        for (int i = 0; i < qs[j]->n; i++) {
            const uint8_t *e = (const uint8_t *)qs[j]->b.p + off;
            size_t len = qs[j]->len[i], at = 1;
            off += len;
            ob_entry_t *x = &es[m];
            x->seq = 0;
            x->order = m;
            if (len < 1 || (e[0] != 0x93 && e[0] != 0x94) || mp_raw(e, len, &at, &x->key, &x->kl) ||
                mp_raw(e, len, &at, &x->inst, &x->il) || mp_raw(e, len, &at, &x->pay, &x->pl) ||
                (e[0] == 0x94 && mp_uint(e, len, &at, &x->seq)) || at != len) {
                cli_log(LOG_ERROR,
                        "an entry of %soutbox:%s:%" PRId32 " is not [key, instance, payload, "
                        "sequence]: skipped",
                        CK(r)->prefix, r->parts[parts[j]].topic, r->parts[parts[j]].partition);
                continue;
            }
            m++;
        }
    }
    qsort(es, m, sizeof(*es), ob_entry_cmp);
    int rc = 0;
    for (size_t i = 0; i < m && rc == 0; i++)
        rc = run_produce_change(r, es[i].key, es[i].kl, es[i].inst, es[i].il, es[i].pay, es[i].pl);
    free(es);
    return rc < 0 ? -1 : 0;
}

/* The run cannot go on: it sends nothing more (try_send) and stops at the
 * next tick. Not run_begin_stop() here: with an error it frees k at once,
 * and the callers below still use k after this (a crash a review found). */
static void ck_fail(run_t *r, const char *why)
{
    cli_log(LOG_ERROR, "%s: stopping without another checkpoint", why);
    CK(r)->fenced = 1;
}

/* Checkpoint s landed: its cluster changes are in Redis with the state
 * that decided them, so they are published now; the next checkpoint, sent
 * once they are delivered, trims them off their lists. */
static void outbox_landed(run_t *r, snap_t *s)
{
    ck_t *k = CK(r);
    /* a run that fails sends nothing more: the next owner produces them */
    if (!s->n_sob || (r->stopping && r->exit_code) || k->fenced) return;
    if (!run_unit_open(r)) {
        ck_fail(r, "out of memory publishing cluster changes");
        return;
    }
    const obq_t **qs = malloc((size_t)s->n_sob * sizeof(*qs));
    int *parts = malloc((size_t)s->n_sob * sizeof(*parts));
    int rc = qs && parts ? 0 : -1;
    for (int i = 0; i < s->n_sob && rc == 0; i++) {
        qs[i] = &s->sob[i].q;
        parts[i] = s->sob[i].part;
    }
    if (rc == 0) rc = obq_produce(r, qs, parts, s->n_sob);
    free(qs);
    free(parts);
    /* a delivery that failed while the queue was full stopped the run and
     * freed k and s (run_begin_stop): nothing of them is touched */
    if (!r->ck) return;
    for (int i = 0; i < s->n_sob && rc == 0; i++) {
        const struct sob *b = &s->sob[i];
        const part_t *p = &r->parts[b->part];
        obp_t *o = p->owned && p->gen == b->gen ? obp_at(k, b->part) : NULL;
        if (o) o->trim += b->q.n; /* another owner's list now: it reads them again */
    }
    run_unit_close(r);
    if (rc < 0) ck_fail(r, "cannot publish the cluster changes of a checkpoint");
}

/* The outbox entries not yet in Redis, or not yet known to have landed. */
static uint64_t outbox_waiting(const ck_t *k)
{
    uint64_t n = 0;
    for (int i = 0; i < k->n_obp; i++) n += (uint64_t)k->obp[i].pend.n;
    const snap_t *s[2] = {k->wait, k->flight};
    for (int j = 0; j < 2; j++)
        for (int i = 0; s[j] && i < s[j]->n_sob; i++) n += (uint64_t)s[j]->sob[i].q.n;
    return n;
}

/* ---------------- checkpoints ---------------- */

static int arg(snap_t *s, const void *p, size_t len)
{
    if (s->argc == s->cap) {
        int cap = s->cap ? 2 * s->cap : 1024;
        size_t *o = realloc(s->off, (size_t)cap * sizeof(*o));
        if (!o) return -1;
        s->off = o;
        size_t *l = realloc(s->len, (size_t)cap * sizeof(*l));
        if (!l) return -1;
        s->len = l;
        s->cap = cap;
    }
    s->off[s->argc] = s->arena.len;
    s->len[s->argc++] = len;
    return strm_buf_append(&s->arena, p, len);
}

/* s->resp += n in decimal, then "\r\n", after the byte t ('*' or '$'). */
static int resp_len(snap_t *s, char t, size_t n)
{
    char b[24];
    b[0] = t;
    char *e = seg_dec_u64(b + 1, n);
    *e++ = '\r';
    *e++ = '\n';
    return strm_buf_append(&s->resp, b, (size_t)(e - b));
}

/* A command of argc arguments starts in s->resp; resp_arg writes them. */
static int resp_cmd(snap_t *s, size_t argc)
{
    if (s->n_cmd == s->cap_cmd) {
        int cap = s->cap_cmd ? 2 * s->cap_cmd : 256;
        size_t *c = realloc(s->cmd, (size_t)cap * sizeof(*c));
        if (!c) return -1;
        s->cmd = c;
        s->cap_cmd = cap;
    }
    s->cmd[s->n_cmd++] = s->resp.len;
    return resp_len(s, '*', argc);
}

static int resp_arg(snap_t *s, const void *p, size_t len)
{
    return resp_len(s, '$', len) || strm_buf_append(&s->resp, p, len) ||
           strm_buf_append(&s->resp, "\r\n", 2);
}

/* The arguments so far, if any, become one command in s->resp. */
static int cmd_end(snap_t *s)
{
    if (s->argc == 0) return 0;
    int rc = resp_cmd(s, (size_t)s->argc);
    for (int i = 0; i < s->argc && rc == 0; i++)
        rc = resp_arg(s, s->arena.p + s->off[i], s->len[i]);
    s->argc = 0;
    s->arena.len = 0;
    return rc;
}

/* The arguments from here on are a new command (the one before is
 * complete: cmd_end writes it out). */
static int cmd_begin(snap_t *s)
{
    return cmd_end(s);
}

static int args(snap_t *s, const char *str)
{
    return arg(s, str, strlen(str));
}

static int argi(snap_t *s, int64_t v)
{
    char b[24];
    return arg(s, b, (size_t)(seg_dec_i64(b, v) - b));
}

static void obq_free(obq_t *q);

static void snap_free(snap_t *s)
{
    if (!s) return;
    for (int i = 0; i < s->n_sob; i++) obq_free(&s->sob[i].q);
    free(s->sob);
    strm_buf_free(&s->arena);
    strm_buf_free(&s->resp);
    free(s->off);
    free(s->len);
    free(s->po);
    free(s->cmd);
    free(s);
}

/* A checkpoint that is done with: its RESP buffer is kept for the next. */
static void snap_done(ck_t *k, snap_t *s)
{
    if (s->resp.cap > k->spare.cap) {
        strm_buf_free(&k->spare);
        k->spare = s->resp;
        strm_buf_init(&s->resp);
    }
    snap_free(s);
}

static void xdelta(ck_t *k, int32_t id, int64_t d)
{
    for (int i = 0; i < k->n_xd; i++)
        if (k->xd[i].id == id) {
            k->xd[i].d += d;
            return;
        }
    if (k->n_xd == k->cap_xd) {
        int cap = k->cap_xd ? 2 * k->cap_xd : 16;
        struct xd *x = realloc(k->xd, (size_t)cap * sizeof(*x));
        if (!x) return;
        k->xd = x;
        k->cap_xd = cap;
    }
    k->xd[k->n_xd++] = (struct xd){id, d};
}

static int size_delta(snap_t *s, ck_t *k, const char *field, int64_t now, int64_t *last)
{
    int64_t d = now - *last;
    *last = now;
    if (!d) return 0;
    char key[256];
    snprintf(key, sizeof(key), "%ssizes", k->prefix);
    return args(s, key) || args(s, field) || argi(s, d);
}

static int leader(run_t *r)
{
    int k = -1;
    for (int i = 0; i < r->n_parts; i++)
        if (r->parts[i].partition == 0 && strcmp(r->parts[i].topic, r->cfg.topics[0]) == 0) k = i;
    return k >= 0 && r->parts[k].owned;
}

/* A dirty customer in the sets of its partition. */
typedef struct pm {
    int part;
    uint32_t h;
} pm_t;

static int pm_cmp(const void *a, const void *b)
{
    const pm_t *x = a, *y = b;
    if (x->part != y->part) return x->part < y->part ? -1 : 1;
    return x->h < y->h ? -1 : x->h > y->h;
}

/* The commands on a partition's due set (ZADD, ZREM) and unassigned set
 * (SADD, SREM), and which customers each concerns. */
enum { SET_ZADD, SET_ZREM, SET_SADD, SET_SREM };
static const char *const set_cmd[] = {"ZADD", "ZREM", "SADD", "SREM"};

static int set_wants(int op, const seg_customer_t *c)
{
    switch (op) {
    case SET_ZADD:
        return c->due != SEG_NEVER;
    case SET_ZREM:
        return c->due == SEG_NEVER;
    case SET_SADD:
        return c->cluster < 0;
    }
    return c->cluster >= 0;
}

#define SET_CHUNK 1000 /* members per command */

/* The customers of pm that op concerns, as "op key members..." commands of
 * at most SET_CHUNK members (ZADD: score and member). */
static int set_op(run_t *r, snap_t *s, int op, const char *key, const pm_t *pm, size_t n)
{
    int rc = 0;
    size_t in = 0; /* members in the command being built */
    for (size_t i = 0; i < n && rc == 0; i++) {
        const seg_customer_t *c = st_mem_by_handle(r->pl.store, pm[i].h);
        if (!set_wants(op, c)) continue;
        if (in == 0) rc |= cmd_begin(s) || args(s, set_cmd[op]) || args(s, key);
        if (op == SET_ZADD) rc |= argi(s, c->due);
        rc |= arg(s, c->id, c->id_len);
        in = in + 1 == SET_CHUNK ? 0 : in + 1;
    }
    return rc;
}

/* The fields of PREFIX offsets per partition: the next offset, its newest
 * event time, the W its customers are stepped to. */
static const char *const offsets_suffix[3] = {"", ":hi", ":w"};

static void offsets_field(char *f, size_t len, const char *topic, int32_t partition,
                          const char *suffix)
{
    snprintf(f, len, "%s:%" PRId32 "%s", topic, partition, suffix);
}

/* Everything changed since the last checkpoint, as the transaction's
 * commands in s->resp (the size-delta script last). */
static snap_t *build(run_t *r)
{
    ck_t *k = CK(r);
    snap_t *s = calloc(1, sizeof(*s));
    if (!s) return NULL;
    strm_buf_init(&s->arena);
    s->resp = k->spare;
    s->resp.len = 0;
    strm_buf_init(&k->spare);
    s->seq = ++k->seq;
    s->need_seq = r->unit_seq;
    char key[KEY_LEN], seqs[24];
    snprintf(seqs, sizeof(seqs), "%" PRIu64, s->seq);
    int rc = 0;
    int64_t now = cli_now_ms();
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    pm_t *pm = malloc((k->n_dirty ? k->n_dirty : 1) * sizeof(*pm));
    size_t n_pm = 0;
    rc |= pm == NULL;
    for (size_t i = 0; i < k->n_dirty && rc == 0; i++) {
        uint32_t h = k->dirty[i];
        k->flags[h] &= (uint8_t)~F_DIRTY;
        seg_customer_t *c = st_mem_by_handle(r->pl.store, h);
        if (!c || (k->flags[h] & F_STALE)) continue;
        st_field_t fields[ST_FIELDS];
        int nf = st_customer_fields(r->pl.seg, c, now, fields);
        sb.size = 0;
        if (nf < 0 || st_pack_customer(r->pl.seg, c, &sb) < 0) {
            rc = -1;
            break;
        }
        key_of(k, key, sizeof(key), "c:", c->id, c->id_len);
        /* its argument count is known: written out directly, not staged */
        rc |= cmd_end(s) || resp_cmd(s, 2 + 2 * (size_t)nf + 2) || resp_arg(s, "HSET", 4) ||
              resp_arg(s, key, strlen(key));
        for (int j = 0; j < nf && rc == 0; j++)
            rc = resp_arg(s, fields[j].name, strlen(fields[j].name)) ||
                 resp_arg(s, fields[j].value, fields[j].len);
        rc |= resp_arg(s, "state", 5) || resp_arg(s, sb.data, sb.size);
        int part = h < r->cap_owner ? r->owner[h] : -1;
        if (part >= 0 && pm) pm[n_pm++] = (pm_t){part, h};
        s->customers++;
    }
    k->n_dirty = 0;
    /* the due and unassigned sets: a command per set and kind (in chunks),
     * not one per customer */
    if (n_pm) qsort(pm, n_pm, sizeof(*pm), pm_cmp);
    for (size_t a = 0, b; a < n_pm && rc == 0; a = b) {
        int part = pm[a].part;
        for (b = a; b < n_pm && pm[b].part == part; b++) {
        }
        char due[KEY_LEN], un[KEY_LEN];
        snprintf(due, sizeof(due), "%sdue:%s:%" PRId32, k->prefix, r->parts[part].topic,
                 r->parts[part].partition);
        snprintf(un, sizeof(un), "%sunassigned:%s:%" PRId32, k->prefix, r->parts[part].topic,
                 r->parts[part].partition);
        rc |= set_op(r, s, SET_ZADD, due, pm + a, b - a) ||
              set_op(r, s, SET_ZREM, due, pm + a, b - a) ||
              set_op(r, s, SET_SADD, un, pm + a, b - a) ||
              set_op(r, s, SET_SREM, un, pm + a, b - a);
    }
    free(pm);
    /* the outboxes: the delivered head of each list off, then the cluster
     * changes decided since the last checkpoint on, to land exactly with
     * the state and offsets that decided them (a list has one writer, its
     * partition's owner: the fence) */
    if (k->n_obp) {
        s->sob = calloc((size_t)k->n_obp, sizeof(*s->sob));
        rc |= s->sob == NULL;
    }
    for (int i = 0; i < k->n_obp && rc == 0; i++) {
        obp_t *o = &k->obp[i];
        const part_t *p = &r->parts[i];
        if (!p->owned || (!o->trim && !o->pend.n)) continue;
        outbox_key(k, key, sizeof(key), p);
        if (o->trim)
            rc |= cmd_begin(s) || args(s, "LTRIM") || args(s, key) || argi(s, o->trim) ||
                  args(s, "-1");
        o->trim = 0;
        size_t at = 0;
        for (int j = 0; j < o->pend.n && rc == 0; j++) {
            if (j % SET_CHUNK == 0) rc |= cmd_begin(s) || args(s, "RPUSH") || args(s, key);
            rc |= arg(s, o->pend.b.p + at, o->pend.len[j]);
            at += o->pend.len[j];
        }
        if (o->pend.n) {
            s->sob[s->n_sob++] = (struct sob){i, p->gen, o->pend};
            obq_init(&o->pend);
        }
    }
    if (leader(r)) {
        sb.size = 0;
        if (st_pack_model(r->pl.seg, &sb) == 0) {
            snprintf(key, sizeof(key), "%smodel", k->prefix);
            rc |= cmd_begin(s) || args(s, "SET") || args(s, key) || arg(s, sb.data, sb.size);
            snprintf(key, sizeof(key), "%smodel:version", k->prefix);
            rc |= cmd_begin(s) || args(s, "SET") || args(s, key) ||
                  argi(s, (int64_t)seg_model(r->pl.seg)->version);
        }
    }
    msgpack_sbuffer_destroy(&sb);
    /* the offsets this state holds */
    int owned = 0;
    for (int i = 0; i < r->n_parts; i++) owned += r->parts[i].owned && r->parts[i].next_offset >= 0;
    if (owned) {
        /* with each offset, the partition's newest event time: a process
         * that resumes it knows where its watermark stood */
        s->po = calloc((size_t)owned, sizeof(*s->po));
        snprintf(key, sizeof(key), "%soffsets", k->prefix);
        rc |= (s->po == NULL) || cmd_begin(s) || args(s, "HSET") || args(s, key);
        for (int i = 0; i < r->n_parts && s->po; i++) {
            part_t *p = &r->parts[i];
            if (!p->owned || p->next_offset < 0) continue;
            /* the offset, the newest event time, and the W its customers
             * here are stepped to: a W the next owner may keep even where
             * hi is older (an idle partition's) */
            int64_t w = r->pl.has_W && r->pl.W > p->w_floor ? r->pl.W : p->w_floor;
            int64_t next = pl_part_commit(&p->pp, p->next_offset); /* not past a held one */
            int64_t v[3] = {next, p->pp.hi, p->pp.hi == INT64_MIN ? INT64_MIN : w};
            for (int j = 0; j < 3; j++) {
                if (j > 0 && v[j] == INT64_MIN) continue;
                char f[300];
                offsets_field(f, sizeof(f), p->topic, p->partition, offsets_suffix[j]);
                rc |= args(s, f) || argi(s, v[j]);
            }
            s->po[s->n_po++] = (struct po){i, next};
        }
    }
    /* last, the script with the segment sizes, as deltas (several
     * processes add to one hash): its reply is the transaction's last */
    snprintf(key, sizeof(key), "%scheckpoints", k->prefix);
    rc |= cmd_begin(s) || args(s, "EVAL") || args(s, script) || args(s, "1") || args(s, key) ||
          args(s, k->writer) || args(s, seqs);
    const seg_sizes_t *sz = seg_sizes(r->pl.seg);
    rc |= size_delta(s, k, "customers", sz->customers, &k->customers);
    for (int i = 1; i < SEG_LC__COUNT; i++) {
        char f[64];
        snprintf(f, sizeof(f), "lifecycle:%s", seg_lifecycle_names[i]);
        rc |= size_delta(s, k, f, sz->lifecycle[i], &k->lc[i]);
    }
    if (sz->n_cluster > k->n_cl) {
        int64_t *cl = realloc(k->cl, (size_t)sz->n_cluster * sizeof(*cl));
        if (cl) {
            for (int32_t i = k->n_cl; i < sz->n_cluster; i++) cl[i] = 0;
            k->cl = cl;
            k->n_cl = sz->n_cluster;
        } else {
            rc = -1;
        }
    }
    for (int32_t i = 0; i < sz->n_cluster && i < k->n_cl; i++) {
        char f[32];
        snprintf(f, sizeof(f), "cluster:%" PRId32, i);
        rc |= size_delta(s, k, f, sz->cluster[i], &k->cl[i]);
    }
    for (int i = 0; i < k->n_xd; i++) {
        char f[32];
        int64_t zero = 0;
        snprintf(f, sizeof(f), "cluster:%" PRId32, k->xd[i].id);
        rc |= size_delta(s, k, f, k->xd[i].d, &zero);
    }
    k->n_xd = 0;
    const seg_ruleset_t *rs = seg_params(r->pl.seg)->rules;
    for (int i = 0; i < seg_rules_count(rs); i++) {
        char f[128];
        snprintf(f, sizeof(f), "rule:%s", seg_rule_name(rs, i));
        rc |= size_delta(s, k, f, sz->rule[i], &k->rule[i]);
    }
    rc |= cmd_end(s);
    k->last_build = cli_monotonic_s();
    k->last_need = s->need_seq;
    if (rc) {
        snap_free(s);
        ck_fail(r, "out of memory building a checkpoint"); /* callers store NULL in k */
        return NULL;
    }
    return s;
}

/* ---------------- the fence ---------------- */

/* Sets again the owner keys that still hold ARGV[1] (this process's
 * writer): a watch that an earlier connection of this process left on them
 * breaks, so that connection's last transaction, if it is still on its way
 * to Redis, is aborted when it arrives instead of landing later. */
static const char touch_script[] =
    "for _, k in ipairs(KEYS) do\n"
    "  if redis.call('GET', k) == ARGV[1] then redis.call('SET', k, ARGV[1]) end\n"
    "end\n"
    "return 0\n";

/* head, then the owner key (PREFIX owner:TOPIC:PARTITION) of each of tps,
 * each followed by val unless NULL, then tail unless NULL: one command, for
 * request q (freed here when it cannot be sent). */
static int owner_cmd(run_t *r, req_t *q, const char *const *head, int n_head, const strm_tp_t *tps,
                     int n, const char *val, const char *tail)
{
    ck_t *k = CK(r);
    if (!q) return -1;
    int argc = n_head + (val ? 2 : 1) * n + (tail != NULL);
    const char **argv = calloc((size_t)argc, sizeof(*argv));
    char(*keys)[KEY_LEN] = calloc((size_t)(n ? n : 1), sizeof(*keys));
    int rc = -1;
    if (argv && keys) {
        int a = 0;
        for (int i = 0; i < n_head; i++) argv[a++] = head[i];
        for (int i = 0; i < n; i++) {
            snprintf(keys[i], sizeof(keys[i]), "%sowner:%s:%" PRId32, k->prefix, tps[i].topic,
                     tps[i].partition);
            argv[a++] = keys[i];
            if (val) argv[a++] = val;
        }
        if (tail) argv[a++] = tail;
        rc = rsend(r, q, argc, argv, NULL);
    } else {
        free(q);
    }
    free(argv);
    free(keys);
    return rc;
}

/* The watch stops counting: what Redis holds for this connection is asked
 * for again before the next MULTI. */
static void watch_reset(ck_t *k)
{
    k->watch = WT_NONE;
    k->wgen++;
}

/* WATCH the owner keys of the partitions owned, then MGET them (the read
 * comes after the WATCH, so a claim the read does not see breaks the
 * watch), all pipelined. Behind a transaction that may still be on its way
 * from a connection that went away, the keys are touched first. */
static void watch_send(run_t *r)
{
    ck_t *k = CK(r);
    watch_reset(k);
    k->n_wp = 0;
    for (int i = 0; i < r->n_parts; i++) {
        if (!r->parts[i].owned) continue;
        if (k->n_wp == k->cap_wp) {
            int cap = k->cap_wp ? 2 * k->cap_wp : 64;
            int *wp = realloc(k->wp, (size_t)cap * sizeof(*wp));
            if (!wp) return;
            k->wp = wp;
            k->cap_wp = cap;
        }
        k->wp[k->n_wp++] = i;
    }
    if (k->n_wp == 0) { /* nothing owned, nothing to fence */
        k->watch = WT_READY;
        return;
    }
    strm_tp_t *tps = calloc((size_t)k->n_wp, sizeof(*tps));
    if (!tps) return;
    for (int i = 0; i < k->n_wp; i++)
        tps[i] = (strm_tp_t){r->parts[k->wp[i]].topic, r->parts[k->wp[i]].partition, -1};
    char nkeys[16];
    snprintf(nkeys, sizeof(nkeys), "%d", k->n_wp);
    const char *eval[] = {"EVAL", touch_script, nkeys}, *watch[] = {"WATCH"}, *mget[] = {"MGET"},
               *unwatch[] = {"UNWATCH"};
    /* Redis marks a connection's watch dirty when a key it watches is
     * written, by this connection too: an earlier WATCH still on (the
     * owned partitions changed before the lost one was looked up) would
     * make the touch abort this process's own next checkpoint */
    int touch = k->wait && k->wait->lost;
    int rc = touch ? owner_cmd(r, req(R_WATCH), unwatch, 1, NULL, 0, NULL, NULL) : 0;
    rc = rc || (touch ? owner_cmd(r, req(R_TOUCH), eval, 3, tps, k->n_wp, NULL, k->writer) : 0);
    rc = rc || owner_cmd(r, req(R_WATCH), watch, 1, tps, k->n_wp, NULL, NULL);
    req_t *q = rc ? NULL : req(R_OWNERS);
    if (q) q->epoch = k->wgen;
    rc = rc || owner_cmd(r, q, mget, 1, tps, k->n_wp, NULL, NULL);
    free(tps);
    if (rc == 0) k->watch = WT_ASKED;
}

/* 1 when a MULTI may be sent: the owner keys of every partition owned are
 * watched on this connection and were read as this process's after the
 * WATCH. Otherwise asks for that (once) and returns 0: the read's reply
 * calls try_send. */
static int watch_ready(run_t *r)
{
    ck_t *k = CK(r);
    int covered = 1;
    for (int i = 0; i < r->n_parts && covered; i++) {
        if (!r->parts[i].owned) continue;
        covered = 0;
        for (int j = 0; j < k->n_wp && !covered; j++) covered = k->wp[j] == i;
    }
    if (covered && k->watch != WT_NONE) return k->watch == WT_READY;
    if (!k->up || k->fenced) return 0;
    if (k->rb == 2 && k->rb_asked) {
        /* a revoke's UNWATCH went out (rb_progress): watched again only for
         * a checkpoint that must still go first, and UNWATCHed after it */
        if (!k->wait) return 0;
        k->rb_asked = 0;
    }
    watch_send(r);
    return k->watch == WT_READY;
}

static void try_send(run_t *r);

/* The reply to the MGET of the owner keys watched: all this process's, or
 * a partition was taken over and nothing more may be written. */
static void owners_read(run_t *r, req_t *q, const redisReply *rp)
{
    ck_t *k = CK(r);
    if (q->epoch != k->wgen || k->watch != WT_ASKED) return; /* reset since */
    k->watch = WT_NONE;
    if (!rp) return; /* the connection went, and the watch with it */
    if (rp->type != REDIS_REPLY_ARRAY || (int)rp->elements != k->n_wp) {
        cli_log(LOG_ERROR, "reading the partitions' owner keys: %s",
                rp->type == REDIS_REPLY_ERROR ? rp->str : "an unexpected reply");
        run_begin_stop(r, 1);
        return;
    }
    for (int i = 0; i < k->n_wp; i++) {
        const redisReply *e = rp->element[i];
        const part_t *p = &r->parts[k->wp[i]];
        if (!p->owned || (e->type == REDIS_REPLY_STRING && strcmp(e->str, k->writer) == 0))
            continue;
        if (e->type == REDIS_REPLY_STRING)
            cli_log(LOG_ERROR,
                    "partition %s[%" PRId32 "] was taken over by %s (%sowner:%s:%" PRId32
                    "): stopping, writing nothing more",
                    p->topic, p->partition, e->str, k->prefix, p->topic, p->partition);
        else /* deleted, or Redis lost its data: no longer known to be this one's */
            cli_log(LOG_ERROR,
                    "partition %s[%" PRId32 "]: its owner key %sowner:%s:%" PRId32
                    " is gone from Redis; stopping, writing nothing more",
                    p->topic, p->partition, k->prefix, p->topic, p->partition);
        k->fenced = 1; /* the run stops at the next tick */
        return;
    }
    k->watch = WT_READY;
    try_send(r);
}

/* A reply that only matters when Redis refused the command. */
static void must_run(run_t *r, const redisReply *rp, const char *what)
{
    if (!rp || rp->type != REDIS_REPLY_ERROR) return;
    cli_log(LOG_ERROR, "%s refused by Redis: %s", what, rp->str);
    run_begin_stop(r, 1);
}

/* UNWATCH: this connection watches nothing from here on. The reply tells
 * a revoke waiting for it (by the watch generation it was sent in). */
static int unwatch_send(run_t *r)
{
    ck_t *k = CK(r);
    const char *argv[] = {"UNWATCH"};
    req_t *q = req(R_UNWATCH);
    watch_reset(k);
    if (!q) return -1;
    q->epoch = k->wgen;
    return rsend(r, q, 1, argv, NULL);
}

/* Claims the partitions being assigned: their owner keys take this
 * process's writer, before their offsets are read on the same connection. A
 * process that owned them before and still has a checkpoint on its way has
 * its watch broken by this, and Redis aborts that checkpoint. */
static int claim(run_t *r)
{
    ck_t *k = CK(r);
    /* this connection may watch one of these keys itself (a partition
     * given back): the SET would abort its own next checkpoint */
    if (unwatch_send(r) < 0) return -1;
    if (k->rb_n == 0) return 0;
    const char *mset[] = {"MSET"};
    return owner_cmd(r, req(R_CLAIM), mset, 1, k->rb_tps, k->rb_n, k->writer, NULL);
}

/* ---------------- sending checkpoints ---------------- */

/* MULTI, the commands, EXEC: queued in one go, so no other command of this
 * connection falls inside the transaction. Only EXEC's reply counts (a
 * command refused while queued makes EXEC fail). The owner keys are
 * watched first (watch_ready): Redis runs the EXEC only if no other
 * process claimed one of these partitions since. */
static void try_send(run_t *r)
{
    ck_t *k = CK(r);
    snap_t *s = k->wait;
    if (!s || k->flight || !k->up || k->fenced || r->done_seq < s->need_seq) return;
    if (!watch_ready(r)) return;
    if (s->lost) {
        /* landed already? Then it must not land again: its plain writes
         * could go over a newer owner's (only its size deltas are guarded) */
        char key[256], seqs[24];
        snprintf(key, sizeof(key), "%scheckpoints", k->prefix);
        snprintf(seqs, sizeof(seqs), "%" PRIu64, s->seq);
        const char *argv[] = {"HGET", key, k->writer};
        req_t *q = req(R_LANDED);
        if (!q) return;
        q->snap = s;
        if (rsend(r, q, 3, argv, NULL) == 0) {
            k->wait = NULL;
            k->flight = s;
        }
        return;
    }
    req_t *q = req(R_SNAP);
    if (!q) return;
    q->snap = s;
    static const char multi[] = "*1\r\n$5\r\nMULTI\r\n", exec[] = "*1\r\n$4\r\nEXEC\r\n";
    k->queued_err[0] = 0;
    int ok = queued(r, multi, sizeof multi - 1) == 0;
    for (int c = 0; c < s->n_cmd && ok; c++) {
        size_t at = s->cmd[c], end = c + 1 < s->n_cmd ? s->cmd[c + 1] : s->resp.len;
        ok = queued(r, s->resp.p + at, end - at) == 0;
    }
    if (ok && st_redis_formatted(k->redis, q, exec, sizeof exec - 1) == 0) {
        k->wait = NULL;
        k->flight = s;
        /* EXEC ends the watch; the next one goes right behind it, so that
         * the next checkpoint need not wait a round trip for it */
        watch_send(r);
    } else {
        /* out of memory part way: a MULTI left open would take in the
         * connection's next commands. Dropping the connection discards it
         * in Redis; the checkpoint stays waiting (it did not land) */
        free(q);
        st_redis_drop(k->redis, "a checkpoint could not be queued whole");
    }
}

static void rb_progress(run_t *r);

/* Checkpoint s is in Redis. */
static void landed(run_t *r, snap_t *s)
{
    ck_t *k = CK(r);
    k->checkpoints++;
    k->ck_customers = (uint64_t)s->customers;
    /* Kafka's committed offsets follow Redis (for lag tools); resuming reads
     * Redis's own */
    for (int i = 0; i < s->n_po; i++) {
        part_t *p = &r->parts[s->po[i].part];
        if (p->owned) strm_consumer_store(r->cons, p->topic, p->partition, s->po[i].next);
    }
    outbox_landed(r, s);
    if (!r->ck) return; /* the run stopped while publishing: k and s are gone */
    snap_done(k, s);
}

static void refused(run_t *r, snap_t *s, const char *why)
{
    ck_t *k = CK(r);
    cli_log(LOG_ERROR, "checkpoint refused by Redis: %s%s%s%s", why, k->queued_err[0] ? " (" : "",
            k->queued_err, k->queued_err[0] ? ")" : "");
    snap_free(s);
    run_begin_stop(r, 1);
}

static void snapped(run_t *r, req_t *q, const redisReply *rp)
{
    ck_t *k = CK(r);
    snap_t *s = q->snap;
    k->flight = NULL;
    if (!rp) {
        k->failures++;
        s->lost = 1; /* asked about before it is sent again */
        k->wait = s; /* never sent once fenced (try_send) */
        return;
    }
    if (rp->type == REDIS_REPLY_NIL) {
        /* aborted: an owner key watched before the MULTI changed, so another
         * process claimed a partition of this one and may have read its
         * offsets already. Never sent again */
        cli_log(LOG_ERROR, "checkpoint aborted by Redis: a partition was taken over by another "
                           "process since this one watched its owner key; stopping, writing "
                           "nothing more");
        snap_free(s);
        k->fenced = 1; /* the run stops at the next tick */
        return;
    }
    /* EXEC: an error (a command refused while queued: nothing ran) or one
     * reply per command, where any one may be an error (the others ran) */
    const redisReply *bad = rp->type != REDIS_REPLY_ARRAY ? rp : NULL;
    for (size_t i = 0; !bad && i < rp->elements; i++)
        if (rp->element[i]->type == REDIS_REPLY_ERROR) bad = rp->element[i];
    if (!bad && rp->elements == 0) bad = rp;
    if (bad) {
        refused(r, s,
                bad->type == REDIS_REPLY_ERROR || bad->type == REDIS_REPLY_STATUS
                    ? bad->str
                    : "the transaction ran nothing");
        return;
    }
    landed(r, s);
}

/* The reply to HGET checkpoints WRITER for a checkpoint whose EXEC reply
 * was lost: its own sequence there means it landed. */
static void checked(run_t *r, req_t *q, const redisReply *rp)
{
    ck_t *k = CK(r);
    snap_t *s = q->snap;
    k->flight = NULL;
    if (!rp) { /* still unknown */
        k->wait = s;
        return;
    }
    if (rp->type == REDIS_REPLY_ERROR) {
        k->queued_err[0] = 0;
        refused(r, s, rp->str);
        return;
    }
    char seqs[24];
    snprintf(seqs, sizeof(seqs), "%" PRIu64, s->seq);
    if (rp->type == REDIS_REPLY_STRING && strcmp(rp->str, seqs) == 0) {
        landed(r, s);
        return;
    }
    s->lost = 0; /* it did not land: send it */
    k->wait = s;
    try_send(r);
}

void ck_units_done(run_t *r)
{
    try_send(r);
}

static int needs_checkpoint(run_t *r)
{
    ck_t *k = CK(r);
    if (k->n_dirty > 0 || r->unit_seq != k->last_need) return 1;
    for (int i = 0; i < k->n_obp; i++)
        if (r->parts[i].owned && (k->obp[i].trim || k->obp[i].pend.n)) return 1;
    return 0;
}

static void stop_progress(run_t *r);
static void adopt(run_t *r);
static void sweep(run_t *r);

void ck_tick(run_t *r)
{
    ck_t *k = CK(r);
    double now = cli_monotonic_s();
    if (k->stopping) {
        stop_progress(r);
        return;
    }
    if (r->stopping) return;
    if (k->fenced) {
        rb_progress(r);       /* a rebalance left waiting is settled first */
        run_begin_stop(r, 1); /* frees k */
        return;
    }
    ck_advance(r);
    sweep(r);
    adopt(r);
    if (k->up && !k->rb) watch_ready(r); /* ready before a checkpoint needs it */
    if (k->up && !k->wait && !k->flight && !k->rb && needs_checkpoint(r) &&
        (now - k->last_build >= CK_EVERY_S || k->n_dirty > CK_DIRTY_MAX))
        k->wait = build(r);
    try_send(r);
    rb_progress(r);
    if (k->load_failed && k->up && !k->loading) run_kick(r);
}

/* ---------------- rebalances ---------------- */

static void tps_free(strm_tp_t *tps, int n)
{
    for (int i = 0; tps && i < n; i++) free((char *)tps[i].topic);
    free(tps);
}

/* Index of topic[partition] in tps (n of them), or -1. */
static int tps_find(const strm_tp_t *tps, int n, const char *topic, int32_t partition)
{
    for (int i = 0; i < n; i++)
        if (tps[i].partition == partition && strcmp(tps[i].topic, topic) == 0) return i;
    return -1;
}

/* Appends to *tps (*n of them, NULL: none yet) the partitions of add that
 * it does not hold, topics copied. 0, or -1 when out of memory (*tps is
 * then what it was). */
static int tps_add(strm_tp_t **tps, int *n, const strm_tp_t *add, int n_add)
{
    strm_tp_t *t = realloc(*tps, (size_t)(*n + n_add + 1) * sizeof(*t));
    if (!t) return -1;
    *tps = t;
    int m = *n;
    for (int i = 0; i < n_add; i++) {
        if (tps_find(t, m, add[i].topic, add[i].partition) >= 0) continue;
        t[m] = add[i];
        if (!(t[m].topic = strdup(add[i].topic))) {
            while (m > *n) free((char *)t[--m].topic);
            return -1;
        }
        m++;
    }
    *n = m;
    return 0;
}

/* Takes the partitions of rm out of tps (*n of them). */
static void tps_remove(strm_tp_t *tps, int *n, const strm_tp_t *rm, int n_rm)
{
    for (int i = 0; i < n_rm; i++) {
        int at = tps_find(tps, *n, rm[i].topic, rm[i].partition);
        if (at < 0) continue;
        free((char *)tps[at].topic);
        tps[at] = tps[--*n];
    }
}

/* A pending assignment's reads (claim, outbox lists, offsets) are asked
 * again, for the partitions it holds now; replies to the earlier ones no
 * longer count (rb_gen). */
static void rb_reread(ck_t *k)
{
    /* the lists read so far (rb_ob[i] for rb_tps[i], before rb_tps changes) */
    for (int i = 0; k->rb_ob && i < k->rb_n; i++) obq_free(&k->rb_ob[i]);
    free(k->rb_ob);
    k->rb_ob = NULL;
    k->rb_got = 0;
    k->rb_gen++;
    k->rb_asked = 0;
}

static void rb_clear(ck_t *k)
{
    rb_reread(k); /* lists still being read were this assignment's */
    tps_free(k->rb_tps, k->rb_n);
    k->rb_tps = NULL;
    k->rb_n = 0;
    k->rb = 0;
}

static void rb_next_clear(ck_t *k)
{
    tps_free(k->rb_next, k->rb_next_n);
    k->rb_next = NULL;
    k->rb_next_n = 0;
}

/* A revoke that comes while another waits for its checkpoint (rb 2).
 * Eager: librdkafka revokes its whole group assignment, which is the one
 * held in rb_next (an assignment only comes after the first revoke, and
 * a revoke only once that assignment is out: rd_kafka_cgrp_revoke_all_rejoin
 * in 2.0.2, when a topic change rejoins before the application answered);
 * cooperative: the partitions a rejoin gives to others while this process
 * has not let go of the earlier ones. Merged, not in its place: the
 * partitions of both are checkpointed and released together (otherwise the
 * earlier ones stayed owned here, unfetched, holding W back and watched,
 * until their next owner's claim stopped this process), and what it takes
 * back from the held assignment is never taken. */
static int rb_revoke_more(run_t *r, const strm_tp_t *tps, int n)
{
    ck_t *k = CK(r);
    int coop = strm_consumer_cooperative(r->cons);
    if (k->rb_next && !coop) rb_next_clear(k); /* the whole of it */
    if (k->rb_next) tps_remove(k->rb_next, &k->rb_next_n, tps, n);
    for (int i = 0; i < n; i++) {
        int p = find_part_ext(r, tps[i].topic, tps[i].partition);
        if (p < 0 || !r->parts[p].owned) continue; /* never taken: nothing to give up */
        if (tps_add(&k->rb_tps, &k->rb_n, &tps[i], 1) < 0) return -1;
    }
    return 0;
}

/* Cooperative: takes out of an assignment the partitions this process
 * owns and keeps, and returns how many are left. librdkafka 2.0.2 can hand
 * one out again (a revoke that waited behind a rejoin leaves its pending
 * increment set). Taken as new, its offset would go back to the last
 * checkpoint under state that is ahead of it, and the consumer refuses,
 * whole, a list naming a partition it has (stream/kafka.c leaves those out
 * too). One that a pending revoke gives up stays: it is taken again after. */
static int drop_owned(run_t *r, strm_tp_t *tps, int n)
{
    ck_t *k = CK(r);
    int m = 0;
    for (int i = 0; i < n; i++) {
        int p = find_part_ext(r, tps[i].topic, tps[i].partition);
        if (p >= 0 && r->parts[p].owned &&
            !(k->rb == 2 && tps_find(k->rb_tps, k->rb_n, tps[i].topic, tps[i].partition) >= 0)) {
            cli_log(LOG_WARN, "assigned %.60s[%d] again, which this process owns: kept as it is",
                    tps[i].topic, (int)tps[i].partition);
            continue;
        }
        tps[m++] = tps[i];
    }
    return m;
}

/* ck_rebalance's work: 1 (the decision is ck's now), or -1 when out of
 * memory, with the decision partly taken. */
static int rebalance(run_t *r, int assigned, strm_tp_t *tps, int n)
{
    ck_t *k = CK(r);
    int coop = strm_consumer_cooperative(r->cons);
    if (coop && assigned) n = drop_owned(r, tps, n);
    if (assigned && k->rb == 2) {
        /* not in the revoke's place: what it has applied of the partitions
         * it gives up (or keeps) is checkpointed, its outbox delivered and
         * trimmed, and its copies forgotten first; otherwise the changes
         * waiting for its checkpoint were dropped, the entries that
         * checkpoint pushed never trimmed, and kept partitions resumed from
         * offsets older than their state. The revoke's end takes it. */
        if (!coop) rb_next_clear(k); /* eager: a newer assignment replaces the whole one */
        /* cooperative: an increment, added to one held already */
        return tps_add(&k->rb_next, &k->rb_next_n, tps, n) < 0 ? -1 : 1;
    }
    if (!assigned && k->rb == 2) {
        if (rb_revoke_more(r, tps, n) < 0) return -1;
        rb_progress(r);
        return 1;
    }
    if (coop && assigned && k->rb == 1) {
        /* cooperative: librdkafka counts a pending assignment as this
         * member's from the moment it hands it out, so a rejoin before it
         * is taken (a topic change: rd_kafka_cgrp_metadata_update_check
         * rejoins in any state) brings only what was added since. Both are
         * taken, or the first one's partitions were never consumed, by this
         * process or any other. */
        rb_reread(k);
        if (tps_add(&k->rb_tps, &k->rb_n, tps, n) < 0) return -1;
        rb_progress(r);
        return 1;
    }
    strm_tp_t *held = NULL;
    int n_held = 0;
    if (coop && !assigned && k->rb == 1) {
        /* cooperative: a rejoin before a pending assignment was taken takes
         * some partitions away (of it, or of those consumed). Those consumed
         * are given up first, as any revoke; the rest of the assignment is
         * taken after. incremental_unassign refuses, whole, a list naming a
         * partition it was never given, so only those consumed are named;
         * and the assignment must not be dropped: its partitions are this
         * member's for the group (no k->rb_next while an assignment is
         * pending: it only waits behind a revoke). */
        rb_reread(k);
        held = k->rb_tps;
        n_held = k->rb_n;
        k->rb_tps = NULL;
        k->rb_n = 0;
        tps_remove(held, &n_held, tps, n);
    }
    if (k->rb) rb_clear(k); /* eager: a newer decision replaces a pending one */
    rb_next_clear(k);
    if (held) {
        k->rb_next = held;
        k->rb_next_n = n_held;
        k->rb_tps = calloc(1, sizeof(*k->rb_tps));
        k->rb_n = 0;
        if (!k->rb_tps || rb_revoke_more(r, tps, n) < 0) return -1;
    } else if (tps_add(&k->rb_tps, &k->rb_n, tps, n) < 0) { /* rb_tps holds none here */
        return -1;
    }
    k->rb = assigned ? 1 : 2;
    k->rb_since = cli_monotonic_s();
    rb_progress(r);
    return 1;
}

int ck_rebalance(run_t *r, int assigned, strm_tp_t *tps, int n)
{
    if (rebalance(r, assigned, tps, n) >= 0) return 1;
    /* librdkafka applies it alone (nothing claimed or read from Redis, no
     * records of those partitions applied: they are not owned), so that it
     * is not left waiting, and the run stops without another checkpoint */
    ck_fail(r, "out of memory in a rebalance");
    return 0;
}

/* The partition (index into r->parts) customer h was last applied or
 * loaded for; -1: none (a placeholder, or a copy no partition vouches for). */
static int owner_of(const run_t *r, uint64_t h)
{
    return h < r->cap_owner ? r->owner[h] : -1;
}

/* Customer h is asked for again before its next use. drop: what it holds
 * unwritten is another process's now; otherwise a dirty copy (this
 * process's applied work, not yet written) is left as it is. */
static void make_stale(ck_t *k, uint64_t h, int drop)
{
    uint8_t *f = flag(k, h);
    if (!f || (!drop && (*f & F_DIRTY))) return;
    *f = (uint8_t)((*f | F_STALE) & ~(F_ASKED | (drop ? F_DIRTY : 0)));
}

/* Revoked: nothing here may be written later, and what is cached for those
 * partitions is another process's from now on. So is a copy of no
 * partition (asked for a record the revoke dropped, say): whoever applies
 * that customer next asks Redis again. */
static void forget(run_t *r)
{
    ck_t *k = CK(r);
    uint64_t n = st_mem_count(r->pl.store);
    for (uint64_t h = 0; h < n; h++) {
        int p = owner_of(r, h);
        if (p < 0)
            make_stale(k, h, 0);
        else if (!r->parts[p].owned)
            make_stale(k, h, 1);
    }
    /* their lists are their next owner's to read, produce and trim (the
     * revoke's checkpoints left them empty unless it gave up) */
    for (int i = 0; i < k->n_obp && i < r->n_parts; i++)
        if (!r->parts[i].owned) {
            obq_free(&k->obp[i].pend);
            k->obp[i].trim = 0;
        }
    k->epoch++;
    k->due_W = INT64_MIN; /* due loads in flight no longer count: asked again */
    size_t keep = 0;
    for (size_t i = 0; i < k->n_dirty; i++)
        if (k->flags[k->dirty[i]] & F_DIRTY) k->dirty[keep++] = k->dirty[i];
    k->n_dirty = keep;
}

static void take_assignment(run_t *r, const redisReply *rp);

/* The reply to LRANGE of an assigned partition's outbox list (rb_tps[q->part]). */
static void outbox_read(run_t *r, req_t *q, const redisReply *rp)
{
    ck_t *k = CK(r);
    if (k->rb != 1 || q->epoch != k->rb_gen || !k->rb_ob || q->part >= k->rb_n || !rp) return;
    const strm_tp_t *tp = &k->rb_tps[q->part];
    if (rp->type != REDIS_REPLY_ARRAY) {
        cli_log(LOG_ERROR, "reading %soutbox:%s:%" PRId32 ": %s", k->prefix, tp->topic,
                tp->partition, rp->type == REDIS_REPLY_ERROR ? rp->str : "an unexpected reply");
        run_begin_stop(r, 1);
        return;
    }
    obq_t *o = &k->rb_ob[q->part];
    for (size_t i = 0; i < rp->elements; i++) {
        const redisReply *e = rp->element[i];
        if (e->type == REDIS_REPLY_STRING && obq_push(o, e->str, (size_t)e->len) == 0) continue;
        obq_free(o); /* out of memory: offsets_read asks again */
        return;
    }
    k->rb_got++;
}

static void rb_progress(run_t *r)
{
    ck_t *k = CK(r);
    if (k->rb == 1 && k->fenced) {
        /* stopping, writing nothing: takes none of them, so that librdkafka
         * is not left waiting for this assignment while the consumer closes */
        strm_consumer_assign(r->cons, NULL, 0, 1);
        rb_clear(k);
        return;
    }
    if (k->rb == 1 && k->up && k->model_state == 2 && !k->rb_asked) {
        /* resume from the offsets that Redis's state holds, once the
         * partitions are claimed (Redis runs the two in this order) */
        if (claim(r) < 0) return;
        if (k->rb_n == 0) {
            /* nothing to resume (more processes than partitions: a
             * standby), but the assignment must still be taken, or
             * librdkafka waits for it and never hands this process the
             * partitions of an owner that dies */
            take_assignment(r, NULL);
            return;
        }
        const char **argv = calloc((size_t)k->rb_n * 3 + 2, sizeof(*argv));
        char key[KEY_LEN], (*f)[300] = calloc((size_t)(3 * k->rb_n), sizeof(*f));
        if (!argv || !f) {
            free(argv);
            free(f);
            return;
        }
        /* each partition's outbox list, before the offsets: their reply
         * comes after every list's (one connection, in order) */
        for (int i = 0; k->rb_ob && i < k->rb_n; i++) obq_free(&k->rb_ob[i]);
        free(k->rb_ob);
        k->rb_ob = calloc((size_t)k->rb_n, sizeof(*k->rb_ob));
        k->rb_got = 0;
        k->rb_gen++;
        for (int i = 0; k->rb_ob && i < k->rb_n; i++) {
            obq_init(&k->rb_ob[i]);
            part_t p = {.topic = (char *)k->rb_tps[i].topic, .partition = k->rb_tps[i].partition};
            outbox_key(k, key, sizeof(key), &p);
            const char *lr[] = {"LRANGE", key, "0", "-1"};
            req_t *q = req(R_OUTBOX);
            if (!q) break;
            q->part = i;
            q->epoch = k->rb_gen;
            if (rsend(r, q, 4, lr, NULL) < 0) break;
        }
        snprintf(key, sizeof(key), "%soffsets", k->prefix);
        argv[0] = "HMGET";
        argv[1] = key;
        /* every offset, then every newest event time, then every W */
        for (int j = 0; j < 3; j++)
            for (int i = 0; i < k->rb_n; i++) {
                char *fi = f[j * k->rb_n + i];
                offsets_field(fi, sizeof(f[0]), k->rb_tps[i].topic, k->rb_tps[i].partition,
                              offsets_suffix[j]);
                argv[j * k->rb_n + i + 2] = fi;
            }
        req_t *q = req(R_OFFSETS);
        if (q) {
            q->epoch = k->rb_gen; /* its reply counts for this read only */
            if (rsend(r, q, 3 * k->rb_n + 2, argv, NULL) == 0) k->rb_asked = 1;
        }
        free(argv);
        free(f);
    }
    if (k->rb == 2) {
        double waited = cli_monotonic_s() - k->rb_since;
        if (k->fenced) {
            /* nothing may be written any more: given up without a checkpoint */
        } else if (waited > REVOKE_S) {
            /* the new owner resumes from the last checkpoint in Redis: one
             * written later could go over its state, so none is, and the
             * run stops (a restart resumes from Redis too) */
            cli_log(LOG_ERROR,
                    "revoke: no checkpoint within %.0f s (Redis or the change topic unreachable); "
                    "the new owner resumes from the last one; stopping",
                    REVOKE_S);
            k->fenced = 1; /* try_send sends nothing from here on */
        } else {
            /* everything applied is delivered and in a checkpoint first */
            if (r->done_seq < r->unit_seq || k->flight || k->wait) return;
            if (needs_checkpoint(r)) {
                if (k->up) k->wait = build(r);
                try_send(r);
                return;
            }
            /* the owner keys of the partitions given up must not stay
             * watched here: their next owner's claim would abort this
             * process's next checkpoint. Given up once Redis has run the
             * UNWATCH (or the connection is gone, and its watch with it) */
            if (k->up && k->rb_asked != 2) {
                if (k->rb_asked == 0 && unwatch_send(r) == 0) k->rb_asked = 1;
                return;
            }
        }
        strm_tp_t *tps = k->rb_tps;
        int n = k->rb_n;
        run_assign(r, tps, n, 0);
        forget(r);
        /* also with an assignment waiting: librdkafka takes an unassign
         * while it waits for the assign (eager: nothing assigned until
         * then; cooperative: these are no longer fetched) */
        strm_consumer_assign(r->cons, tps, n, 0);
        rb_clear(k);
        if (k->rb_next) { /* the assignment that came meanwhile, now */
            k->rb_tps = k->rb_next;
            k->rb_n = k->rb_next_n;
            k->rb_next = NULL;
            k->rb_next_n = 0;
            k->rb = 1;
            k->rb_since = cli_monotonic_s();
            rb_progress(r);
            if (!r->ck) return; /* stopped while taking it: k is gone */
        }
        run_kick(r);
    }
}

static void offsets_read(run_t *r, const req_t *q, const redisReply *rp)
{
    ck_t *k = CK(r);
    /* the reply to a read that a newer assignment (or revoke) replaced, or
     * that was asked again: rb_asked is the current one's, not this one's */
    if (k->rb != 1 || q->epoch != k->rb_gen) return;
    k->rb_asked = 0;
    if (!rp || rp->type != REDIS_REPLY_ARRAY || (int)rp->elements != 3 * k->rb_n ||
        k->rb_got != k->rb_n)
        return; /* again */
    for (int i = 0; i < k->rb_n; i++) {
        const redisReply *e = rp->element[i];
        k->rb_tps[i].offset =
            e->type == REDIS_REPLY_STRING ? strtoll(e->str, NULL, 10) : STRM_OFFSET_BEGINNING;
    }
    take_assignment(r, rp);
}

/* Takes the assignment k->rb_tps, whose offsets are set: consumes from them
 * from now on. rp: the offsets' reply, for each partition's newest event
 * time (NULL: no partitions). */
static void take_assignment(run_t *r, const redisReply *rp)
{
    ck_t *k = CK(r);
    strm_tp_t *tps = k->rb_tps;
    int n = k->rb_n;
    /* customers cached from an earlier ownership may be stale now */
    run_assign(r, tps, n, 1);
    k->last_sweep = 0; /* the partitions' customers still without a cluster: now */
    /* which of r->parts were just assigned (NULL when out of memory: any
     * owned one, which only asks Redis for more customers than needed) */
    uint8_t *fresh = calloc((size_t)r->n_parts + 1, 1);
    for (int i = 0; i < n; i++) {
        int p = find_part_ext(r, tps[i].topic, tps[i].partition);
        if (p < 0) continue;
        if (fresh) fresh[p] = 1;
        if (!rp) continue;
        const redisReply *e = rp->element[n + i], *w = rp->element[2 * n + i];
        if (e->type == REDIS_REPLY_STRING) {
            int64_t hi = strtoll(e->str, NULL, 10);
            if (hi > r->parts[p].pp.hi) r->parts[p].pp.hi = hi;
            /* every partition's first record is checked against it too */
            if (hi > r->pl.ext_hi) r->pl.ext_hi = hi;
        }
        /* the state resumed is Redis's, stepped to the W stored with it */
        r->parts[p].w_floor = w->type == REDIS_REPLY_STRING ? strtoll(w->str, NULL, 10) : INT64_MIN;
    }
    run_watermark_assigned(r, tps, n);
    /* what their lists hold landed with a previous owner's checkpoint,
     * which may or may not have published it: published (again: same
     * event ids) before any change decided here, and trimmed by this
     * process's next checkpoint, once delivered */
    const obq_t **qs = calloc((size_t)n + 1, sizeof(*qs));
    int *pi = calloc((size_t)n + 1, sizeof(*pi));
    int nq = 0, ok = qs && pi;
    if (!ok) ck_fail(r, "out of memory taking an outbox over");
    for (int i = 0; ok && i < n && k->rb_ob; i++) {
        int p = find_part_ext(r, tps[i].topic, tps[i].partition);
        if (p < 0) continue;
        obp_t *o = obp_at(k, p);
        if (!o) {
            /* its entries unproduced at the head of the list, the trims of
             * this process's own would take them off */
            ck_fail(r, "out of memory taking an outbox over");
            ok = 0;
            break;
        }
        obq_free(&o->pend);
        o->trim = 0;
        const obq_t *got = &k->rb_ob[i];
        if (!got->n) continue;
        cli_log(LOG_INFO,
                "%s[%" PRId32 "]: %d cluster change%s left in %soutbox:%s:%" PRId32
                " by its previous owner: published",
                tps[i].topic, tps[i].partition, got->n, got->n == 1 ? "" : "s", k->prefix,
                tps[i].topic, tps[i].partition);
        k->ob_taken += (uint64_t)got->n;
        qs[nq] = got;
        pi[nq++] = p;
    }
    /* all lists at once: a customer's changes in two of them in its order */
    if (ok && nq) {
        if (!run_unit_open(r)) {
            ck_fail(r, "out of memory taking an outbox over");
        } else if (obq_produce(r, qs, pi, nq) < 0) {
            if (!r->ck) { /* stopped and freed meanwhile (see outbox_landed) */
                free(qs), free(pi), free(fresh);
                return;
            }
            ck_fail(r, "cannot publish the cluster changes a previous owner left");
            run_unit_close(r);
        } else {
            for (int j = 0; j < nq; j++) obp_at(k, pi[j])->trim = qs[j]->n;
            run_unit_close(r);
        }
    }
    free(qs);
    free(pi);
    uint64_t nc = st_mem_count(r->pl.store);
    for (uint64_t h = 0; h < nc; h++) {
        int p = owner_of(r, h); /* a copy of no partition: asked again too */
        if (p < 0 || (r->parts[p].owned && (!fresh || fresh[p]))) make_stale(k, h, 0);
    }
    free(fresh);
    k->epoch++; /* loads in flight were asked before this ownership */
    /* the due sets again at the next tick: those the bump made void, and
     * the new partitions' customers due before W even if W stays */
    k->due_W = INT64_MIN;
    for (int i = 0; i < n; i++)
        cli_log(LOG_DEBUG, "resume %s[%d] at %" PRId64, tps[i].topic, tps[i].partition,
                tps[i].offset);
    strm_consumer_assign(r->cons, tps, n, 1);
    rb_clear(k);
    run_kick(r);
}

/* ---------------- due customers ---------------- */

/* A due sweep is out: its ZRANGEBYSCORE, or the loads of its batch (asked
 * again before they are in, the same full batch would come back whole). */
static int due_out(const ck_t *k)
{
    return k->due_inflight || k->due_loading;
}

/* W has moved since the due sets were last asked for (or they must be
 * asked again: due_W reset). */
static int due_behind(const run_t *r, const ck_t *k)
{
    return r->pl.has_W && r->pl.W != k->due_W;
}

void ck_advance(run_t *r)
{
    ck_t *k = CK(r);
    if (!k->up || due_out(k) || !due_behind(r, k)) return;
    k->due_W = r->pl.W;
    char max[32];
    snprintf(max, sizeof(max), "(%" PRId64, r->pl.W); /* due < W: a boundary at W has not passed */
    for (int i = 0; i < r->n_parts; i++) {
        part_t *p = &r->parts[i];
        if (!p->owned) continue;
        char key[KEY_LEN], lim[16];
        snprintf(key, sizeof(key), "%sdue:%s:%" PRId32, k->prefix, p->topic, p->partition);
        snprintf(lim, sizeof(lim), "%d", DUE_BATCH);
        const char *argv[] = {"ZRANGEBYSCORE", key, "-inf", max, "LIMIT", "0", lim};
        req_t *q = req(R_DUE);
        if (!q) return;
        q->part = i;
        if (rsend(r, q, 7, argv, NULL) == 0) k->due_inflight++;
    }
}

static void due_read(run_t *r, req_t *q, const redisReply *rp)
{
    ck_t *k = CK(r);
    k->due_inflight--;
    if (!rp || rp->type != REDIS_REPLY_ARRAY) {
        k->due_W = INT64_MIN; /* ask again */
        return;
    }
    if (!r->parts[q->part].owned) return;
    for (size_t i = 0; i < rp->elements; i++) {
        const redisReply *e = rp->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len > SEG_ID_MAX) continue;
        uint8_t *f;
        seg_customer_t *c = customer(r, e->str, (size_t)e->len, &f);
        if (c) ask(r, c, f, R_DUE_LOAD, q->part);
    }
    if (rp->elements == DUE_BATCH) k->due_W = INT64_MIN; /* more next tick */
}

/* Customers whose first events came before the model was seeded get their
 * cluster when it is; those this process has not seen are in Redis's
 * unassigned sets. */
static void sweep(run_t *r)
{
    ck_t *k = CK(r);
    double now = cli_monotonic_s();
    if (!k->up || k->sweep_inflight || !seg_model(r->pl.seg)->ready ||
        now - k->last_sweep < SWEEP_EVERY_S)
        return;
    k->last_sweep = now;
    for (int i = 0; i < r->n_parts; i++) {
        part_t *p = &r->parts[i];
        if (!p->owned) continue;
        char key[KEY_LEN];
        snprintf(key, sizeof(key), "%sunassigned:%s:%" PRId32, k->prefix, p->topic, p->partition);
        const char *argv[] = {"SRANDMEMBER", key, "2000"};
        req_t *q = req(R_UNASSIGNED);
        if (!q) return;
        q->part = i;
        if (rsend(r, q, 3, argv, NULL) == 0) k->sweep_inflight++;
    }
}

static void assign_now(run_t *r, seg_customer_t *c)
{
    if (!seg_model(r->pl.seg)->ready || c->cluster >= 0 || !c->assigned || !r->pl.has_W) return;
    if (!run_unit_open(r)) return;
    if (pl_assign_cluster(&r->pl, c) < 0) run_begin_stop(r, 1);
    run_unit_close(r);
}

static void unassigned_read(run_t *r, req_t *q, const redisReply *rp)
{
    ck_t *k = CK(r);
    k->sweep_inflight--;
    if (!rp || rp->type != REDIS_REPLY_ARRAY || !r->parts[q->part].owned) return;
    for (size_t i = 0; i < rp->elements; i++) {
        const redisReply *e = rp->element[i];
        if (e->type != REDIS_REPLY_STRING || e->len > SEG_ID_MAX) continue;
        uint8_t *f;
        seg_customer_t *c = customer(r, e->str, (size_t)e->len, &f);
        if (!c) continue;
        if (!(*f & F_STALE)) {
            assign_now(r, c);
            if (!r->ck) return; /* stopped, and k freed (see on_reply) */
            ck_dirty(r, c);     /* written again, so it leaves the set */
        } else {
            ask(r, c, f, R_DUE_LOAD, q->part);
        }
    }
}

/* A process that does not own partition 0 of the first topic does not write
 * the model; it takes the writer's whenever that one is newer, so that every
 * process assigns with the same centroids and ids (its own learning between
 * two adoptions is dropped). */
static void adopt(run_t *r)
{
    ck_t *k = CK(r);
    double now = cli_monotonic_s();
    if (!k->up || k->adopt_inflight || leader(r) || now - k->last_adopt < ADOPT_EVERY_S) return;
    k->last_adopt = now;
    char key[256];
    snprintf(key, sizeof(key), "%smodel:version", k->prefix);
    const char *argv[] = {"GET", key};
    req_t *q = req(R_ADOPT_VERSION);
    if (!q) return;
    if (rsend(r, q, 2, argv, NULL) == 0) k->adopt_inflight = 1;
}

static void adopt_read(run_t *r, req_t *q, const redisReply *rp)
{
    ck_t *k = CK(r);
    k->adopt_inflight = 0;
    if (!rp || rp->type != REDIS_REPLY_STRING) return;
    if (q->kind == R_ADOPT_VERSION) {
        uint64_t v = strtoull(rp->str, NULL, 10);
        seg_model_t *m = seg_model(r->pl.seg);
        if (v <= m->version && m->ready) return;
        char key[256];
        snprintf(key, sizeof(key), "%smodel", k->prefix);
        const char *argv[] = {"GET", key};
        req_t *g = req(R_ADOPT);
        if (!g) return;
        if (rsend(r, g, 2, argv, NULL) == 0) k->adopt_inflight = 1;
        return;
    }
    char err[256];
    if (st_unpack_model(r->pl.seg, rp->str, (size_t)rp->len, err, sizeof(err)) < 0) {
        cli_log(LOG_WARN, "%smodel not adopted: %s", k->prefix, err);
        return;
    }
    /* an unseeded model (its warm-up sample) is adopted every 5 s until the
     * writer seeds it: not worth a line each time */
    cli_log(seg_model(r->pl.seg)->ready ? LOG_INFO : LOG_DEBUG,
            "adopted the shared model, version %" PRIu64, seg_model(r->pl.seg)->version);
    k->last_sweep = 0; /* customers waiting for a seeded model get theirs now */
}

/* ---------------- the connection ---------------- */

static void model_read(run_t *r, const redisReply *rp)
{
    ck_t *k = CK(r);
    if (!rp) {
        k->model_state = 0; /* ask again once up */
        return;
    }
    if (rp->type == REDIS_REPLY_STRING) {
        char err[256];
        if (st_unpack_model(r->pl.seg, rp->str, (size_t)rp->len, err, sizeof(err)) < 0) {
            cli_log(LOG_ERROR, "%smodel cannot be read: %s", k->prefix, err);
            run_begin_stop(r, 1);
            return;
        }
        cli_log(LOG_INFO, "model version %" PRIu64 " loaded from Redis",
                seg_model(r->pl.seg)->version);
    }
    k->model_state = 2;
    rb_progress(r);
    run_kick(r);
}

static void on_reply(void *ud, void *privdata, const redisReply *rp)
{
    run_t *r = ud;
    req_t *q = privdata;
    if (q == &queued_req && (!r->ck || CK(r)->closing)) return;
    if (!r->ck || CK(r)->closing) { /* failed by the close itself */
        free(q);
        return;
    }
    switch (q->kind) {
    case R_LOAD:
    case R_DUE_LOAD:
        /* a stop with an error frees k at once (run_finish_stop): a
         * customer Redis holds that cannot be read, or a delivery that
         * failed while a step below waited for the producer's queue; from
         * then on nothing of k is touched */
        loaded(r, q, rp);
        if (!r->ck) break;
        if (q->kind == R_DUE_LOAD && rp) {
            seg_customer_t *c = st_mem_by_handle(r->pl.store, q->handle);
            /* its change may be due already: step it at the current W */
            if (r->pl.has_W && run_unit_open(r)) {
                if (pl_advance(&r->pl, r->pl.W) < 0) run_begin_stop(r, 1);
                run_unit_close(r);
            }
            if (!r->ck) break;
            if (c && ck_usable(r, c)) {
                assign_now(r, c);
                if (!r->ck) break;
                ck_dirty(r, c);
            }
        }
        if (q->kind == R_LOAD && !CK(r)->loading) run_kick(r);
        if (q->kind == R_DUE_LOAD) run_kick(r); /* applying may wait for it (ck_prefetch) */
        break;
    case R_OFFSETS:
        offsets_read(r, q, rp);
        break;
    case R_MODEL:
        model_read(r, rp);
        break;
    case R_SNAP:
        snapped(r, q, rp);
        break;
    case R_QUEUED:
        if (rp && rp->type == REDIS_REPLY_ERROR && !CK(r)->queued_err[0])
            snprintf(CK(r)->queued_err, sizeof(CK(r)->queued_err), "%s", rp->str);
        break;
    case R_LANDED:
        checked(r, q, rp);
        break;
    case R_DUE:
        due_read(r, q, rp);
        break;
    case R_UNASSIGNED:
        unassigned_read(r, q, rp);
        break;
    case R_ADOPT_VERSION:
    case R_ADOPT:
        adopt_read(r, q, rp);
        break;
    case R_CLAIM:
        must_run(r, rp, "claiming the partitions");
        break;
    case R_TOUCH:
        must_run(r, rp, "touching the owner keys");
        break;
    case R_WATCH:
        must_run(r, rp, "watching the owner keys");
        break;
    case R_OWNERS:
        owners_read(r, q, rp);
        break;
    case R_OUTBOX:
        outbox_read(r, q, rp);
        break;
    case R_UNWATCH: {
        ck_t *k = CK(r);
        if (k->rb == 2 && k->rb_asked == 1 && q->epoch == k->wgen) {
            k->rb_asked = 2;
            rb_progress(r);
        }
        break;
    }
    }
    if (q != &queued_req) free(q);
}

/* The connection's own messages, in the daemon's log format. */
static void on_redis_log(void *ud, const char *msg)
{
    (void)ud;
    cli_log(LOG_WARN, "%s", msg);
}

static void on_status(void *ud, int up)
{
    run_t *r = ud;
    ck_t *k = CK(r);
    k->up = up;
    watch_reset(k); /* watches belong to a connection */
    cli_log(up ? LOG_INFO : LOG_WARN, "redis %s:%d %s", k->url.host, k->url.port,
            up ? "up" : "down: applying waits, nothing is acknowledged");
    if (!up) return;
    k->ever_up = 1;
    if (k->model_state == 0) {
        char key[256];
        snprintf(key, sizeof(key), "%smodel", k->prefix);
        const char *argv[] = {"GET", key};
        req_t *q = req(R_MODEL);
        if (q) {
            if (rsend(r, q, 2, argv, NULL) == 0) k->model_state = 1;
        }
    }
    k->due_W = INT64_MIN;
    rb_progress(r);
    try_send(r);
    run_kick(r);
}

int ck_start(run_t *r, char *err, size_t errlen)
{
    ck_t *k = calloc(1, sizeof(*k));
    if (!k) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    char why[256];
    if (cfg_parse_redis_url(r->cfg.redis_url, &k->url, why, sizeof(why)) < 0) {
        snprintf(err, errlen, "%s: %s", r->cfg.redis_url, why);
        free(k);
        return -1;
    }
    snprintf(k->prefix, sizeof(k->prefix), "%s", r->cfg.redis_prefix);
    snprintf(k->writer, sizeof(k->writer), "%s:%" PRId64, r->instance, cli_now_ms());
    k->due_W = INT64_MIN;
    r->ck = k;
    st_redis_addr_t a = {k->url.host, k->url.port, k->url.user, k->url.pass, k->url.db};
    k->redis = st_redis_new(&r->loop, &a, REDIS_TIMEOUT, on_status, on_reply, r, err, errlen);
    if (!k->redis) {
        free(k);
        r->ck = NULL;
        return -1;
    }
    st_redis_set_log(k->redis, on_redis_log);
    cli_log(LOG_INFO, "state in Redis %s:%d db %d, prefix \"%s\"", k->url.host, k->url.port,
            k->url.db, k->prefix);
    return 0;
}

/* ---------------- stopping ---------------- */

static void stop_progress(run_t *r)
{
    ck_t *k = CK(r);
    if (!k->stopping) return;
    if (k->fenced) {
        rb_progress(r); /* a rebalance left waiting is settled first */
        r->exit_code = 1;
        k->stopping = 0;
        run_finish_stop(r);
        return;
    }
    if (cli_monotonic_s() - k->stop_since > CK_STOP_S) {
        cli_log(LOG_ERROR,
                "no final checkpoint within %.0f s: the next start repeats the events "
                "since the last one",
                CK_STOP_S);
        r->exit_code = 1;
        k->stopping = 0;
        run_finish_stop(r);
        return;
    }
    if (k->flight || k->wait) {
        try_send(r);
        return;
    }
    if (needs_checkpoint(r)) {
        if (k->up) k->wait = build(r);
        try_send(r);
        return;
    }
    /* the silent changes due before W of customers only Redis holds (a
     * partition taken over just before the stop): stepped, and in the
     * final checkpoint, whose offsets say their customers are stepped to
     * W. A full batch is asked for again once the steps of the last are
     * checkpointed (above); a due set of stale entries (unkeyed records
     * move customers between partitions) could keep it full: bounded. */
    if (k->up && cli_monotonic_s() - k->stop_since < STOP_DUE_S &&
        (due_out(k) || due_behind(r, k))) {
        ck_advance(r);
        return;
    }
    if (k->checkpoints)
        cli_log(LOG_INFO, "final checkpoint written (%" PRIu64 " in all)", k->checkpoints);
    else
        cli_log(LOG_INFO, "nothing to checkpoint: no record was applied");
    k->stopping = 0;
    run_finish_stop(r);
}

void ck_stop(run_t *r)
{
    ck_t *k = CK(r);
    k->stopping = 1;
    k->stop_since = cli_monotonic_s();
    stop_progress(r);
}

void ck_health(run_t *r, strm_buf_t *out)
{
    ck_t *k = r->ck;
    if (st_redis_up(k->redis)) return;
    char line[400];
    int n = snprintf(line, sizeof(line), "redis %s:%d: down (applying waits)\n", k->url.host,
                     k->url.port);
    strm_buf_append(out, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

int ck_metrics(run_t *r, strm_buf_t *b)
{
    ck_t *k = CK(r);
    int rc = 0;
    rc |= http_metric1_u64(b, "segstream_redis_up", "gauge",
                           "1 while the Redis connection is ready", (uint64_t)k->up);
    rc |= http_metric1_u64(b, "segstream_checkpoints_total", "counter",
                           "checkpoints written to Redis (customers, sizes, model, offsets)",
                           k->checkpoints);
    rc |= http_metric1_u64(b, "segstream_checkpoint_retries_total", "counter",
                           "checkpoints sent again after Redis went away", k->failures);
    rc |= http_metric1_u64(b, "segstream_checkpoint_customers", "gauge",
                           "customers written by the last checkpoint", k->ck_customers);
    rc |= http_metric1_u64(b, "segstream_dirty_customers", "gauge",
                           "customers changed since the last checkpoint was taken", k->n_dirty);
    rc |= http_metric1_u64(b, "segstream_customers_loaded_total", "counter",
                           "customers read from Redis into this process", k->loaded);
    rc |= http_metric1_u64(b, "segstream_outbox_waiting", "gauge",
                           "cluster changes waiting for the checkpoint that holds them to land",
                           outbox_waiting(k));
    rc |= http_metric1_u64(b, "segstream_outbox_taken_over_total", "counter",
                           "cluster changes published from outbox lists a previous owner left",
                           k->ob_taken);
    return rc;
}

void ck_free(run_t *r)
{
    ck_t *k = CK(r);
    if (!k) return;
    k->closing = 1;
    st_redis_close(k->redis); /* pending replies come back NULL, and are dropped */
    snap_free(k->wait);
    snap_free(k->flight);
    strm_buf_free(&k->spare);
    rb_clear(k);
    rb_next_clear(k);
    for (int i = 0; i < k->n_obp; i++) obq_free(&k->obp[i].pend);
    free(k->obp);
    free(k->wp);
    free(k->flags);
    free(k->dirty);
    free(k->cl);
    free(k->xd);
    free(k);
    r->ck = NULL;
}
