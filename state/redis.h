/* state/redis.h: segstream's Redis connection, on hiredis's asynchronous API
 * and its libuv adapter, in the caller's loop. Debian's hiredis 0.14.1
 * adapter has no timeouts and ignores socket errors, so this owns a connect
 * timer, a watchdog on replies, and reconnection with backoff; AUTH and
 * SELECT run before the connection counts as up. Every callback fires
 * exactly once, never before the call that queued it returns, with the
 * reply or NULL when the connection failed first. */
#ifndef ST_REDIS_H
#define ST_REDIS_H

#include <stddef.h>
#include <hiredis/hiredis.h>
#include <uv.h>

typedef struct st_redis st_redis_t;

typedef struct st_redis_addr {
    const char *host;
    int port;
    const char *user; /* "" or NULL: none */
    const char *pass; /* "" or NULL: no AUTH */
    int db;
} st_redis_addr_t;

/* up: 1 when the connection is ready, 0 when it went away. */
typedef void (*st_redis_status_fn)(void *ud, int up);
/* r is valid only during the call; NULL when the command failed. */
typedef void (*st_redis_reply_fn)(void *ud, void *privdata, const redisReply *r);

/* Starts connecting at once; status(ud, 1) follows when up. timeout_ms
 * bounds connecting and each wait for a reply. NULL on a bad address. */
st_redis_t *st_redis_new(uv_loop_t *loop, const st_redis_addr_t *a, int timeout_ms,
                         st_redis_status_fn status, st_redis_reply_fn reply, void *ud, char *err,
                         size_t errlen);
int st_redis_up(const st_redis_t *r);
/* Where the connection's own messages go (a dropped connection and why, a
 * refused handshake): default stderr. */
typedef void (*st_redis_log_fn)(void *ud, const char *msg);
void st_redis_set_log(st_redis_t *r, st_redis_log_fn log);
/* Queues one command (arguments copied). Returns -1 when not up (nothing
 * queued, no callback), else 0 and reply(ud, privdata, ...) later. */
int st_redis_cmd(st_redis_t *r, void *privdata, int argc, const char **argv, const size_t *lens);
/* st_redis_cmd for one command already in the protocol's form (RESP:
 * "*N\r\n$len\r\narg\r\n..."), copied as it is: for callers that send
 * many commands and can write them faster than hiredis formats them. Exactly
 * one command per call, so that replies and callbacks stay in step; it must
 * hold at least two arguments or be followed by a readable byte (hiredis
 * looks one byte past the command name). */
int st_redis_formatted(st_redis_t *r, void *privdata, const char *cmd, size_t len);
/* Gives up the connection now (pending commands fail with NULL replies,
 * status(ud, 0)) and reconnects with backoff: for a caller that cannot
 * finish what it queued (a transaction cut short). */
void st_redis_drop(st_redis_t *r, const char *why);
/* Commands sent and not answered yet. */
int st_redis_pending(const st_redis_t *r);
/* Fails pending commands (NULL replies), closes the connection and every
 * handle; memory is freed in close callbacks (run the loop once more). */
void st_redis_close(st_redis_t *r);

/* A blocking connection for the few places that must wait (a CLI, a
 * partition being revoked): connects, AUTHs and SELECTs within timeout_ms.
 * NULL with a reason on failure. Free with redisFree(). */
redisContext *st_redis_connect_sync(const st_redis_addr_t *a, int timeout_ms, char *err,
                                    size_t errlen);

#endif
