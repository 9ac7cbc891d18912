/* cmd/replay_redis.c: replay's Redis side, with hiredis's synchronous API
 * (a one-shot command, as inspect). Reads a saved model (`PREFIX model`,
 * CONTRACT §4) and writes a replay's final state under a prefix of its
 * own: `PREFIX c:ID` hashes as `run` writes them, `PREFIX sizes`, `PREFIX
 * model` and `PREFIX model:version`. Writes nothing else: no offsets and
 * no due sets, so `run` cannot mistake a replay's namespace for a
 * checkpoint to resume. The namespaces guard is replay.c's. */
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <hiredis/hiredis.h>
#include <msgpack.h>
#include "cmd/cli.h"
#include "cmd/replay.h"
#include "state/pack.h"
#include "state/redis.h"
#include "state/store_mem.h"

#define PIPELINE 512 /* commands sent before their replies are read */

typedef struct rconn {
    redisContext *c;
    char shown[700]; /* the URL as shown in messages: never the password */
    int pending;     /* replies not yet read */
} rconn_t;

static int fail(rconn_t *r, const char *what, const redisReply *rep)
{
    fprintf(stderr, "segstream replay: Redis %s: %s: %s\n", r->shown, what,
            rep && rep->type == REDIS_REPLY_ERROR ? rep->str
            : r->c->errstr[0]                     ? r->c->errstr
                                                  : "unexpected reply");
    return -1;
}

/* One command and its reply (NULL after saying why, also for an error
 * reply). */
static redisReply *cmd(rconn_t *r, const char *what, int argc, const char **argv,
                       const size_t *lens)
{
    redisReply *rep = redisCommandArgv(r->c, argc, argv, lens);
    if (!rep || rep->type == REDIS_REPLY_ERROR) {
        fail(r, what, rep);
        if (rep) freeReplyObject(rep);
        return NULL;
    }
    return rep;
}

static int rconnect(rconn_t *r, const char *url)
{
    memset(r, 0, sizeof(*r));
    cfg_redis_url_t u;
    char why[256];
    if (cfg_parse_redis_url(url, &u, why, sizeof(why)) < 0) {
        fprintf(stderr, "segstream replay: %s: %s\n", url, why);
        return -1;
    }
    snprintf(r->shown, sizeof(r->shown), "redis://%s%s%s:%d/%d", u.user, u.user[0] ? "@" : "",
             u.host, u.port, u.db);
    st_redis_addr_t a = {u.host, u.port, u.user, u.pass, u.db};
    r->c = st_redis_connect_sync(&a, 2000, why, sizeof(why));
    if (!r->c) {
        fprintf(stderr, "segstream replay: cannot connect to Redis at %s: %s\n", r->shown, why);
        return -1;
    }
    struct timeval cmd_tv = {30, 0}; /* a whole state is written in one pipeline */
    redisSetTimeout(r->c, cmd_tv);
    return 0;
}

static void rclose(rconn_t *r)
{
    if (r->c) redisFree(r->c);
    r->c = NULL;
}

int rp_redis_model(replay_t *rp, const char *url, const char *prefix)
{
    rconn_t r;
    int rc = -1;
    char key[512], err[256];
    redisReply *rep = NULL;
    snprintf(key, sizeof(key), "%smodel", prefix);
    const char *argv[] = {"GET", key};
    if (rconnect(&r, url) < 0 || !(rep = cmd(&r, "GET", 2, argv, NULL))) goto done;
    if (rep->type != REDIS_REPLY_STRING) {
        fprintf(stderr, "segstream replay: --model: %s holds no model at %s\n", r.shown, key);
        goto done;
    }
    if (st_unpack_model(rp->pl.seg, rep->str, (size_t)rep->len, err, sizeof(err)) < 0) {
        char where[1100];
        fprintf(stderr, "segstream replay: --model %s %s: %s%s\n", r.shown, key, err,
                rp_model_where(rp, err, where, sizeof(where)));
        goto done;
    }
    cli_log(LOG_INFO, "model version %" PRIu64 " read from %s %s", seg_model(rp->pl.seg)->version,
            r.shown, key);
    rc = 0;
done:
    if (rep) freeReplyObject(rep);
    rclose(&r);
    return rc;
}

/* ---------------- writing the state ---------------- */

/* Sends a command without waiting; replies are read by drain(). */
static int send_cmd(rconn_t *r, int argc, const char **argv, const size_t *lens)
{
    if (redisAppendCommandArgv(r->c, argc, argv, lens) != REDIS_OK) return fail(r, "write", NULL);
    r->pending++;
    return 0;
}

/* Reads the replies of the commands sent; -1 on the first error. */
static int drain(rconn_t *r)
{
    int rc = 0;
    while (r->pending > 0) {
        void *v = NULL;
        if (redisGetReply(r->c, &v) != REDIS_OK) return fail(r, "write", NULL);
        r->pending--;
        redisReply *rep = v;
        if (rep->type == REDIS_REPLY_ERROR && rc == 0) rc = fail(r, "write", rep);
        freeReplyObject(rep);
    }
    return rc;
}

static int maybe_drain(rconn_t *r)
{
    return r->pending >= PIPELINE ? drain(r) : 0;
}

/* prefix with glob characters escaped, then '*': a SCAN pattern */
static void glob_of(const char *prefix, char *out, size_t len)
{
    size_t n = 0;
    for (const char *p = prefix; *p && n + 3 < len; p++) {
        if (strchr("*?[]\\", *p)) out[n++] = '\\';
        out[n++] = *p;
    }
    out[n++] = '*';
    out[n] = 0;
}

/* Counts the keys under prefix (stopping at the first when !del) or
 * deletes them all. Returns the count, or -1. */
static long scan_prefix(rconn_t *r, const char *prefix, int del)
{
    char pat[1100], cursor[32] = "0";
    glob_of(prefix, pat, sizeof(pat));
    long n = 0;
    do {
        /* the UNLINKs sent so far answer first: read them, or the next
         * reply read would be one of theirs, not SCAN's */
        if (drain(r) < 0) return -1;
        const char *argv[] = {"SCAN", cursor, "MATCH", pat, "COUNT", "1000"};
        redisReply *rep = cmd(r, "SCAN", 6, argv, NULL);
        if (!rep) return -1;
        if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 2 ||
            rep->element[0]->type != REDIS_REPLY_STRING ||
            rep->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(rep);
            return fail(r, "SCAN", NULL);
        }
        snprintf(cursor, sizeof(cursor), "%s", rep->element[0]->str);
        redisReply *keys = rep->element[1];
        for (size_t i = 0; i < keys->elements; i++) {
            n++;
            if (!del) continue;
            const char *argv2[] = {"UNLINK", keys->element[i]->str};
            size_t lens[] = {6, (size_t)keys->element[i]->len};
            if (send_cmd(r, 2, argv2, lens) < 0 || maybe_drain(r) < 0) {
                freeReplyObject(rep);
                return -1;
            }
        }
        freeReplyObject(rep);
        if (n && !del) return n;
    } while (strcmp(cursor, "0") != 0);
    return drain(r) < 0 ? -1 : n;
}

int rp_redis_state_check(const char *url, const char *prefix, int replace)
{
    rconn_t r;
    long have = rconnect(&r, url) < 0 ? -1 : scan_prefix(&r, prefix, 0);
    if (have > 0 && !replace)
        fprintf(stderr,
                "segstream replay: --state %s: keys under %s exist already; choose another "
                "--prefix, or --replace to delete them\n",
                r.shown, prefix);
    rclose(&r);
    return have < 0 || (have > 0 && !replace) ? -1 : 0;
}

int rp_redis_state(replay_t *rp, const char *url, const char *prefix, int replace)
{
    rconn_t r = {0};
    pl_t *pl = &rp->pl;
    int rc = -1;
    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    char *key = NULL;
    size_t cap = strlen(prefix) + SEG_ID_MAX + 64;
    if (!(key = malloc(cap))) goto done;
    if (rconnect(&r, url) < 0) goto done;
    /* checked at start (rp_redis_state_check); deleted only now, when the
     * new state is ready to take their place */
    long have = scan_prefix(&r, prefix, replace);
    if (have < 0) goto done;
    if (have && !replace) {
        fprintf(stderr, "segstream replay: --state %s: keys under %s appeared meanwhile\n", r.shown,
                prefix);
        goto done;
    }
    if (have) cli_log(LOG_INFO, "deleted %ld keys under %s", have, prefix);
    /* every customer as `run` writes it; `updated` is W, not the clock, so
     * that the same replay writes the same state */
    int64_t updated = pl->has_W ? pl->W : 0;
    uint64_t n = st_mem_count(pl->store);
    for (uint64_t h = 0; h < n; h++) {
        const seg_customer_t *c = st_mem_by_handle(pl->store, h);
        if (!c) continue;
        st_field_t f[ST_FIELDS];
        int nf = st_customer_fields(pl->seg, c, updated, f);
        sb.size = 0;
        if (nf < 0 || st_pack_customer(pl->seg, c, &sb) < 0) {
            fprintf(stderr, "segstream replay: out of memory\n");
            goto done;
        }
        size_t plen = strlen(prefix);
        memcpy(key, prefix, plen);
        memcpy(key + plen, "c:", 2);
        memcpy(key + plen + 2, c->id, c->id_len); /* an id may hold any byte */
        const char *argv[2 + 2 * ST_FIELDS + 2];
        size_t lens[2 + 2 * ST_FIELDS + 2];
        int a = 0;
        argv[a] = "HSET", lens[a++] = 4;
        argv[a] = key, lens[a++] = strlen(prefix) + 2 + c->id_len;
        for (int j = 0; j < nf; j++) {
            argv[a] = f[j].name, lens[a++] = strlen(f[j].name);
            argv[a] = f[j].value, lens[a++] = strlen(f[j].value);
        }
        argv[a] = "state", lens[a++] = 5;
        argv[a] = sb.data, lens[a++] = sb.size;
        if (send_cmd(&r, a, argv, lens) < 0 || maybe_drain(&r) < 0) goto done;
    }
    /* sizes, whole (one writer) */
    const seg_sizes_t *sz = seg_sizes(pl->seg);
    const seg_ruleset_t *rs = seg_params(pl->seg)->rules;
    int nfield = 1 + (SEG_LC__COUNT - 1) + sz->n_cluster + seg_rules_count(rs);
    char(*names)[128] = calloc((size_t)nfield, sizeof(*names));
    char(*vals)[24] = calloc((size_t)nfield, sizeof(*vals));
    const char **argv = calloc((size_t)(2 + 2 * nfield), sizeof(char *));
    int nv = 0, ok = names && vals && argv;
    if (ok) {
        snprintf(names[nv], 128, "customers");
        snprintf(vals[nv++], 24, "%" PRId64, sz->customers);
        for (int i = 1; i < SEG_LC__COUNT; i++) {
            if (!sz->lifecycle[i]) continue; /* as run's checkpoints: no field for 0 */
            snprintf(names[nv], 128, "lifecycle:%s", seg_lifecycle_names[i]);
            snprintf(vals[nv++], 24, "%" PRId64, sz->lifecycle[i]);
        }
        for (int32_t i = 0; i < sz->n_cluster; i++) {
            if (!sz->cluster[i]) continue;
            snprintf(names[nv], 128, "cluster:%" PRId32, i);
            snprintf(vals[nv++], 24, "%" PRId64, sz->cluster[i]);
        }
        for (int i = 0; i < seg_rules_count(rs); i++) {
            if (!sz->rule[i]) continue;
            snprintf(names[nv], 128, "rule:%s", seg_rule_name(rs, i));
            snprintf(vals[nv++], 24, "%" PRId64, sz->rule[i]);
        }
        snprintf(key, cap, "%ssizes", prefix);
        argv[0] = "HSET";
        argv[1] = key;
        for (int i = 0; i < nv; i++) argv[2 + 2 * i] = names[i], argv[3 + 2 * i] = vals[i];
        ok = send_cmd(&r, 2 + 2 * nv, argv, NULL) == 0;
    }
    free(names);
    free(vals);
    free(argv);
    if (!ok) goto done;
    /* the model, and its version as `run` publishes it */
    sb.size = 0;
    if (st_pack_model(pl->seg, &sb) < 0) goto done;
    char mkey[600], vkey[600], ver[24];
    snprintf(mkey, sizeof(mkey), "%smodel", prefix);
    snprintf(vkey, sizeof(vkey), "%smodel:version", prefix);
    snprintf(ver, sizeof(ver), "%" PRIu64, seg_model(pl->seg)->version);
    const char *set1[] = {"SET", mkey, sb.data}, *set2[] = {"SET", vkey, ver};
    size_t l1[] = {3, strlen(mkey), sb.size};
    if (send_cmd(&r, 3, set1, l1) < 0 || send_cmd(&r, 3, set2, NULL) < 0 || drain(&r) < 0)
        goto done;
    cli_log(LOG_INFO, "state of %" PRIu64 " customers written to %s under %s", n, r.shown, prefix);
    rc = 0;
done:
    if (!key) fprintf(stderr, "segstream replay: out of memory\n");
    rclose(&r);
    free(key);
    msgpack_sbuffer_destroy(&sb);
    return rc;
}
