/* state/redis.c: the Redis connection (see redis.h). Owns the hiredis
 * async context, its timers and the reconnection policy; knows nothing of
 * what the commands mean. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include "state/redis.h"

#define WATCH_MS       100
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000

enum { S_DOWN, S_CONNECTING, S_HANDSHAKE, S_UP };

struct st_redis {
    uv_loop_t *loop;
    char host[256], user[128], pass[256];
    int port, db, timeout_ms;
    st_redis_status_fn status;
    st_redis_reply_fn reply;
    void *ud;
    redisAsyncContext *ac;
    int state, closing, handles_open;
    uv_timer_t watch, retry;
    uint64_t since; /* loop time when the current wait began */
    int pending;    /* user commands in flight */
    int handshake;  /* AUTH/SELECT replies still expected */
    int backoff_ms;
    st_redis_log_fn log;
};

static void say(st_redis_t *r, const char *fmt, ...)
{
    char msg[512];
    int n = snprintf(msg, sizeof(msg), "redis %s:%d: ", r->host, r->port);
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(msg)) vsnprintf(msg + n, sizeof(msg) - (size_t)n, fmt, ap);
    va_end(ap);
    if (r->log)
        r->log(r->ud, msg);
    else
        fprintf(stderr, "segstream: %s\n", msg);
}

void st_redis_set_log(st_redis_t *r, st_redis_log_fn log)
{
    r->log = log;
}

typedef struct req {
    st_redis_t *r;
    void *privdata;
    int internal;
} req_t;

static void drop(st_redis_t *r, const char *why);

static void set_state(st_redis_t *r, int s)
{
    int was_up = r->state == S_UP;
    r->state = s;
    if (r->closing) return;
    if (s == S_UP && !was_up) r->status(r->ud, 1);
    if (s != S_UP && was_up) r->status(r->ud, 0);
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    req_t *q = privdata;
    st_redis_t *r = q->r;
    if (r && ac == r->ac) r->since = uv_now(r->loop);
    if (q->internal) {
        free(q);
        if (!r || ac != r->ac) return;
        const redisReply *rp = reply;
        if (!rp || rp->type == REDIS_REPLY_ERROR) {
            /* the server answered: say why and retry with backoff, not
             * after the connect timeout, named as its reason (hiredis frees
             * the context once this callback returns) */
            char why[300];
            snprintf(why, sizeof(why), "handshake refused: %s", rp ? rp->str : "no reply");
            drop(r, why);
            return;
        }
        if (--r->handshake == 0) {
            r->backoff_ms = BACKOFF_MIN_MS;
            set_state(r, S_UP);
        }
        return;
    }
    if (r) r->pending--;
    if (r) r->reply(r->ud, q->privdata, reply); /* exactly once, NULL when failed */
    free(q);
}

static int send_internal(st_redis_t *r, int argc, const char **argv)
{
    req_t *q = calloc(1, sizeof(*q));
    if (!q) return -1;
    q->r = r;
    q->internal = 1;
    if (redisAsyncCommandArgv(r->ac, on_reply, q, argc, argv, NULL) != REDIS_OK) {
        free(q);
        return -1;
    }
    r->handshake++;
    return 0;
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    st_redis_t *r = ac->data;
    if (!r) return;
    if (status != REDIS_OK) {
        /* hiredis frees the context after this returns */
        r->ac = NULL;
        drop(r, ac->errstr);
        return;
    }
    r->state = S_HANDSHAKE;
    r->since = uv_now(r->loop);
    char db[16];
    snprintf(db, sizeof(db), "%d", r->db);
    const char *auth_user[] = {"AUTH", r->user, r->pass};
    const char *auth[] = {"AUTH", r->pass};
    const char *sel[] = {"SELECT", db};
    const char *ping[] = {"PING"};
    int rc = 0;
    if (*r->pass) rc |= *r->user ? send_internal(r, 3, auth_user) : send_internal(r, 2, auth);
    if (r->db) rc |= send_internal(r, 2, sel);
    if (!*r->pass && !r->db) rc |= send_internal(r, 1, ping);
    if (rc) drop(r, "cannot queue the handshake");
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    st_redis_t *r = ac->data;
    if (!r) return;
    r->ac = NULL; /* hiredis frees it */
    drop(r, status == REDIS_OK ? "disconnected" : ac->errstr);
}

static void start_connect(st_redis_t *r)
{
    if (r->closing) return;
    r->ac = redisAsyncConnect(r->host, r->port);
    if (!r->ac || r->ac->err) {
        const char *why = r->ac ? r->ac->errstr : "out of memory";
        say(r, "%s", why);
        if (r->ac) redisAsyncFree(r->ac);
        r->ac = NULL;
        drop(r, NULL);
        return;
    }
    r->ac->data = r;
    if (redisLibuvAttach(r->ac, r->loop) != REDIS_OK) {
        r->ac->data = NULL;
        redisAsyncFree(r->ac);
        r->ac = NULL;
        drop(r, "cannot attach to the loop");
        return;
    }
    redisAsyncSetConnectCallback(r->ac, on_connect);
    redisAsyncSetDisconnectCallback(r->ac, on_disconnect);
    r->state = S_CONNECTING;
    r->since = uv_now(r->loop);
}

static void on_retry(uv_timer_t *t)
{
    start_connect(t->data);
}

/* Gives up the current connection (if any) and schedules the next try. */
static void drop(st_redis_t *r, const char *why)
{
    if (why && !r->closing) say(r, "%s; reconnecting in %d ms", why, r->backoff_ms);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        ac->data = NULL;    /* late callbacks do nothing */
        redisAsyncFree(ac); /* pending replies come back NULL */
    }
    r->handshake = 0;
    set_state(r, S_DOWN);
    if (r->closing) return;
    uv_timer_start(&r->retry, on_retry, (uint64_t)r->backoff_ms, 0);
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* hiredis 0.14's adapter never times out: a connect to a black hole or a
 * server that stopped answering would wait forever. */
static void on_watch(uv_timer_t *t)
{
    st_redis_t *r = t->data;
    if (r->state == S_DOWN) return;
    /* the adapter never reports a failed connect (refused, unreachable):
     * the socket's pending error tells, without waiting for the timeout */
    int e = 0;
    socklen_t el = sizeof(e);
    if (r->state == S_CONNECTING && r->ac && r->ac->c.fd >= 0 &&
        getsockopt(r->ac->c.fd, SOL_SOCKET, SO_ERROR, &e, &el) == 0 && e != 0) {
        drop(r, strerror(e));
        return;
    }
    int waiting = r->state != S_UP || r->pending > 0;
    if (waiting && uv_now(r->loop) - r->since > (uint64_t)r->timeout_ms)
        drop(r, r->state == S_UP ? "no reply within the timeout" : "connect timed out");
}

st_redis_t *st_redis_new(uv_loop_t *loop, const st_redis_addr_t *a, int timeout_ms,
                         st_redis_status_fn status, st_redis_reply_fn reply, void *ud, char *err,
                         size_t errlen)
{
    st_redis_t *r = calloc(1, sizeof(*r));
    if (!r) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (!a->host || !*a->host || strlen(a->host) >= sizeof(r->host) || a->port <= 0 ||
        (a->user && strlen(a->user) >= sizeof(r->user)) ||
        (a->pass && strlen(a->pass) >= sizeof(r->pass))) {
        snprintf(err, errlen, "bad Redis address");
        free(r);
        return NULL;
    }
    r->loop = loop;
    snprintf(r->host, sizeof(r->host), "%s", a->host);
    snprintf(r->user, sizeof(r->user), "%s", a->user ? a->user : "");
    snprintf(r->pass, sizeof(r->pass), "%s", a->pass ? a->pass : "");
    r->port = a->port;
    r->db = a->db;
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 5000;
    r->status = status;
    r->reply = reply;
    r->ud = ud;
    r->backoff_ms = BACKOFF_MIN_MS;
    uv_timer_init(loop, &r->watch);
    uv_timer_init(loop, &r->retry);
    r->watch.data = r->retry.data = r;
    r->handles_open = 2;
    uv_timer_start(&r->watch, on_watch, WATCH_MS, WATCH_MS);
    start_connect(r);
    return r;
}

int st_redis_up(const st_redis_t *r)
{
    return r && r->state == S_UP;
}

int st_redis_formatted(st_redis_t *r, void *privdata, const char *cmd, size_t len)
{
    if (!r || r->state != S_UP || !r->ac) return -1;
    req_t *q = calloc(1, sizeof(*q));
    if (!q) return -1;
    q->r = r;
    q->privdata = privdata;
    if (redisAsyncFormattedCommand(r->ac, on_reply, q, cmd, len) != REDIS_OK) {
        free(q);
        return -1;
    }
    if (r->pending++ == 0) r->since = uv_now(r->loop);
    return 0;
}

void st_redis_drop(st_redis_t *r, const char *why)
{
    if (r && r->ac) drop(r, why);
}

int st_redis_pending(const st_redis_t *r)
{
    return r ? r->pending : 0;
}

int st_redis_cmd(st_redis_t *r, void *privdata, int argc, const char **argv, const size_t *lens)
{
    if (!r || r->state != S_UP || !r->ac) return -1;
    /* what redisAsyncCommandArgv does: format, then queue as formatted */
    char *cmd;
    int len = redisFormatCommandArgv(&cmd, argc, argv, lens);
    if (len < 0) return -1;
    int rc = st_redis_formatted(r, privdata, cmd, (size_t)len);
    redisFreeCommand(cmd);
    return rc;
}

static void on_closed(uv_handle_t *h)
{
    st_redis_t *r = h->data;
    if (--r->handles_open == 0) free(r);
}

void st_redis_close(st_redis_t *r)
{
    if (!r) return;
    r->closing = 1;
    uv_timer_stop(&r->retry);
    if (r->ac) {
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        ac->data = NULL;
        redisAsyncFree(ac);
    }
    uv_close((uv_handle_t *)&r->watch, on_closed);
    uv_close((uv_handle_t *)&r->retry, on_closed);
}

redisContext *st_redis_connect_sync(const st_redis_addr_t *a, int timeout_ms, char *err,
                                    size_t errlen)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(a->host, a->port, tv);
    if (!c || c->err) {
        snprintf(err, errlen, "redis %s:%d: %s", a->host, a->port, c ? c->errstr : "no memory");
        if (c) redisFree(c);
        return NULL;
    }
    redisSetTimeout(c, tv);
    redisReply *rp = NULL;
    if (a->pass && *a->pass)
        rp = a->user && *a->user ? redisCommand(c, "AUTH %s %s", a->user, a->pass)
                                 : redisCommand(c, "AUTH %s", a->pass);
    if (rp || (a->pass && *a->pass)) {
        int bad = !rp || rp->type == REDIS_REPLY_ERROR;
        if (bad) snprintf(err, errlen, "redis AUTH: %s", rp ? rp->str : c->errstr);
        if (rp) freeReplyObject(rp);
        if (bad) {
            redisFree(c);
            return NULL;
        }
    }
    if (a->db) {
        rp = redisCommand(c, "SELECT %d", a->db);
        int bad = !rp || rp->type == REDIS_REPLY_ERROR;
        if (bad) snprintf(err, errlen, "redis SELECT %d: %s", a->db, rp ? rp->str : c->errstr);
        if (rp) freeReplyObject(rp);
        if (bad) {
            redisFree(c);
            return NULL;
        }
    }
    return c;
}
