/* cmd/http.c: /metrics and /healthz over HTTP/1.1 on the daemon's libuv
 * loop, with Debian's libh2o (2.2.5, libuv build), and the Prometheus text
 * helpers. Owns the listener, one uv_tcp_t per connection and an h2o context;
 * bodies come from the caller's callbacks. Never reads the daemon's state
 * itself, never runs the loop, and blocks only in http_start() when the
 * listen address is a host name (resolved once, there).
 *
 * Shutdown does not use h2o_context_dispose(): in the libuv build it calls
 * uv_run() itself, which must not happen inside a loop callback (where the
 * daemon stops us), and it closes the h2o timers that live in our struct with
 * no close callback, so we could not know when to free it. stop_context()
 * below does what it does in 2.2.x, minus uv_run(), with counted closes. */
#include <errno.h>
#include <math.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <uv.h>
#include <h2o.h>
#include <h2o/http1.h>
#include "cmd/cli.h"
#include "cmd/http.h"
#include "config/config.h"

/* stop_context() mirrors h2o_context_dispose() of h2o 2.2.x (libh2o 0.13). */
#if H2O_LIBRARY_VERSION_MAJOR != 0 || H2O_LIBRARY_VERSION_MINOR != 13
#error "check stop_context() against this version's h2o_context_dispose()"
#endif

#define HTTP_MAX_CONNS 64 /* more at once are accepted and closed at once */
#define CT_METRICS     "text/plain; version=0.0.4"
#define CT_TEXT        "text/plain; charset=utf-8"

struct http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept_ctx;
    http_render_fn metrics, health;
    void *ud;
    strm_buf_t body; /* reused for every response; h2o copies it */
    int port;
    int stopping, disposed;
    unsigned conns;   /* connections whose close callback has not run */
    unsigned closing; /* the listener, h2o's timers: close callbacks not run yet */
};

typedef struct conn {
    uv_tcp_t tcp; /* first: the close callback gets &tcp */
    http_server_t *s;
} conn_t;

typedef struct handler {
    h2o_handler_t super;
    http_server_t *s;
} handler_t;

/* ---------- responses ---------- */

static const struct {
    int status;
    const char *reason;
} reasons[] = {
    {200, "OK"},
    {204, "No Content"},
    {400, "Bad Request"},
    {404, "Not Found"},
    {405, "Method Not Allowed"},
    {429, "Too Many Requests"},
    {500, "Internal Server Error"},
    {502, "Bad Gateway"},
    {503, "Service Unavailable"},
    {504, "Gateway Timeout"},
};

static const char *reason_phrase(int status)
{
    for (size_t i = 0; i < sizeof reasons / sizeof reasons[0]; i++)
        if (reasons[i].status == status) return reasons[i].reason;
    return status < 200   ? "Informational"
           : status < 300 ? "Success"
           : status < 400 ? "Redirection"
           : status < 500 ? "Client Error"
                          : "Server Error";
}

/* h2o copies body into the request's pool; HEAD gets the headers only. */
static int respond(h2o_req_t *req, int status, const char *ctype, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    req->res.content_length = len; /* h2o_send_inline() leaves it unset */
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, "Content-Type", ctype,
                   strlen(ctype));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, "Cache-Control",
                   H2O_STRLIT("no-store"));
    h2o_send_inline(req, body ? body : "", len);
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    http_server_t *s = ((handler_t *)self)->s;
    h2o_iovec_t path = req->path_normalized, m = req->method;
    http_render_fn fn = NULL;
    const char *ctype = CT_TEXT;
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/metrics")))
        fn = s->metrics, ctype = CT_METRICS;
    else if (h2o_memis(path.base, path.len, H2O_STRLIT("/healthz")))
        fn = s->health;
    if (!fn) return respond(req, 404, CT_TEXT, H2O_STRLIT("not found\n"));
    if (!h2o_memis(m.base, m.len, H2O_STRLIT("GET")) &&
        !h2o_memis(m.base, m.len, H2O_STRLIT("HEAD"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, "Allow",
                       H2O_STRLIT("GET, HEAD"));
        return respond(req, 405, CT_TEXT, H2O_STRLIT("method not allowed\n"));
    }
    if (s->stopping) return respond(req, 503, CT_TEXT, H2O_STRLIT("stopping\n"));
    s->body.len = 0;
    int status = fn(s->ud, &s->body);
    if (status < 100 || status > 599) status = 500;
    return respond(req, status, ctype, s->body.p, s->body.len);
}

/* ---------- connections ---------- */

static void maybe_finish(http_server_t *s);

static void on_conn_closed(uv_handle_t *h)
{
    conn_t *c = (conn_t *)h;
    http_server_t *s = c->s;
    free(c);
    s->conns--;
    maybe_finish(s);
}

static void on_connection(uv_stream_t *listener, int status)
{
    http_server_t *s = listener->data;
    if (status < 0) {
        cli_log(LOG_WARN, "http: accept on port %d: %s", s->port, uv_strerror(status));
        return;
    }
    /* Aborts when out of memory, like h2o itself: a connection left
     * unaccepted would stop libuv from watching the listener. */
    conn_t *c = h2o_mem_alloc(sizeof *c);
    c->s = s;
    uv_tcp_init(s->loop, &c->tcp);
    s->conns++;
    int rc = uv_accept(listener, (uv_stream_t *)&c->tcp);
    if (rc < 0 || s->stopping || s->conns > HTTP_MAX_CONNS) {
        if (rc < 0) cli_log(LOG_WARN, "http: accept: %s", uv_strerror(rc));
        uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
        return;
    }
    /* h2o frees its socket, then calls on_conn_closed with &c->tcp. */
    h2o_socket_t *sock = h2o_uv_socket_create((uv_stream_t *)&c->tcp, on_conn_closed);
    h2o_accept(&s->accept_ctx, sock);
}

/* ---------- start ---------- */

static void free_server(http_server_t *s)
{
    strm_buf_free(&s->body);
    free(s);
}

static void on_failed_listener_closed(uv_handle_t *h)
{
    free_server(h->data);
}

/* Numeric addresses never touch DNS; a name is resolved once, here. */
static int resolve(const char *host, int port, struct sockaddr_storage *ss, char *why,
                   size_t whylen)
{
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char ps[8];
    snprintf(ps, sizeof ps, "%d", port);
    int rc = getaddrinfo(host, ps, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(why, whylen, "cannot resolve host '%s': %s", host,
                 rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        if (res) freeaddrinfo(res);
        return -1;
    }
    memset(ss, 0, sizeof *ss);
    memcpy(ss, res->ai_addr, res->ai_addrlen < sizeof *ss ? res->ai_addrlen : sizeof *ss);
    freeaddrinfo(res);
    return 0;
}

int http_start(http_server_t **out, uv_loop_t *loop, const char *listen, http_render_fn metrics,
               http_render_fn health, void *ud, char *err, size_t errlen)
{
    char host[256], why[300];
    int port, rc;
    struct sockaddr_storage ss;
    *out = NULL;
    if (!listen) listen = "";
    if (cfg_split_hostport(listen, host, sizeof host, &port, why, sizeof why) < 0) {
        snprintf(err, errlen, "invalid listen address '%s': %s", listen, why);
        return -1;
    }
    if (resolve(host, port, &ss, why, sizeof why) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", listen, why);
        return -1;
    }

    http_server_t *s = calloc(1, sizeof *s);
    if (!s) {
        snprintf(err, errlen, "cannot listen on %s: out of memory", listen);
        return -1;
    }
    s->loop = loop;
    s->metrics = metrics, s->health = health, s->ud = ud;
    strm_buf_init(&s->body);
    if ((rc = uv_tcp_init(loop, &s->listener)) < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", listen, uv_strerror(rc));
        free_server(s);
        return -1;
    }
    s->listener.data = s;
    /* libuv reports EADDRINUSE from uv_listen(), not from uv_tcp_bind(). */
    rc = uv_tcp_bind(&s->listener, (const struct sockaddr *)&ss, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 128, on_connection);
    if (rc == 0) {
        int len = sizeof ss;
        rc = uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len);
    }
    if (rc < 0) {
        snprintf(err, errlen, "cannot listen on %s: %s", listen, uv_strerror(rc));
        uv_close((uv_handle_t *)&s->listener, on_failed_listener_closed);
        return -1;
    }
    s->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                       : ntohs(((struct sockaddr_in *)&ss)->sin_port);

    /* Nothing below can fail (h2o aborts when out of memory). */
    h2o_config_init(&s->config);
    s->config.server_name = h2o_iovec_init(H2O_STRLIT("segstream"));
    s->config.http1.upgrade_to_http2 = 0;
    h2o_hostconf_t *hc =
        h2o_config_register_host(&s->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(hc, "/", 0);
    handler_t *h = (handler_t *)h2o_create_handler(pc, sizeof *h);
    h->super.on_req = on_req;
    h->s = s;
    h2o_context_init(&s->ctx, loop, &s->config);
    s->accept_ctx.ctx = &s->ctx;
    s->accept_ctx.hosts = s->config.hosts;
    *out = s;
    return 0;
}

int http_port(const http_server_t *s)
{
    return s ? s->port : -1;
}

/* ---------- stop ---------- */

static void on_handle_closed(uv_handle_t *h)
{
    http_server_t *s = h->data;
    s->closing--;
    maybe_finish(s);
}

/* h2o_context_dispose() of h2o 2.2.5 without its uv_run(), with our close
 * callback on the timers that live in s->ctx, then the configuration. */
static void stop_context(http_server_t *s)
{
    h2o_context_t *ctx = &s->ctx;
    h2o_globalconf_t *conf = &s->config;
    for (size_t i = 0; conf->hosts[i] != NULL; i++) {
        h2o_hostconf_t *hc = conf->hosts[i];
        for (size_t j = 0; j != hc->paths.size; j++)
            h2o_context_dispose_pathconf_context(ctx, hc->paths.entries + j);
        h2o_context_dispose_pathconf_context(ctx, &hc->fallback_path);
    }
    free(ctx->_pathconfs_inited.entries);
    free(ctx->_module_configs);
    h2o_timeout_t *timeouts[] = {&ctx->zero_timeout,
                                 &ctx->one_sec_timeout,
                                 &ctx->hundred_ms_timeout,
                                 &ctx->handshake_timeout,
                                 &ctx->http1.req_timeout,
                                 &ctx->http2.idle_timeout,
                                 &ctx->http2.graceful_shutdown_timeout,
                                 &ctx->proxy.io_timeout};
    for (size_t i = 0; i < sizeof timeouts / sizeof timeouts[0]; i++) {
        uv_timer_t *t = &timeouts[i]->_backend.timer;
        t->data = s;
        s->closing++;
        uv_close((uv_handle_t *)t, on_handle_closed);
    }
    h2o_filecache_destroy(ctx->filecache);
    ctx->filecache = NULL;
    for (size_t i = 0; i != ctx->storage.size; i++)
        if (ctx->storage.entries[i].dispose)
            ctx->storage.entries[i].dispose(ctx->storage.entries[i].data);
    free(ctx->storage.entries);
    h2o_multithread_unregister_receiver(ctx->queue, &ctx->receivers.hostinfo_getaddr);
    h2o_multithread_destroy_queue(ctx->queue); /* closes its uv_async_t, frees it itself */
    if (ctx->_timestamp_cache.value != NULL) h2o_mem_release_shared(ctx->_timestamp_cache.value);
    h2o_config_dispose(conf);
}

/* Called from close callbacks only: once the listener and every connection
 * are closed, the context's handles are closed; once those are, s is freed. */
static void maybe_finish(http_server_t *s)
{
    if (!s->stopping || s->conns || s->closing) return;
    if (!s->disposed) {
        s->disposed = 1;
        stop_context(s);
        return;
    }
    free_server(s);
}

static int not_persistent(h2o_req_t *req, void *cbdata)
{
    (void)cbdata;
    req->http1_is_persistent = 0;
    return 0;
}

void http_stop(http_server_t *s)
{
    if (!s || s->stopping) return;
    s->stopping = 1;
    /* Requests parsed from now on, and responses being written now, end
     * their connection (set directly: h2o_context_request_shutdown() would
     * also arm an HTTP/2 timer). */
    s->ctx.shutdown_requested = 1;
    s->config.http1.callbacks.foreach_request(&s->ctx, not_persistent, NULL);
    /* Idle keep-alive connections and half-read requests wait on the request
     * timeout: run it now, which closes them. */
    h2o_timeout_run(s->loop, &s->ctx.http1.req_timeout, UINT64_MAX);
    s->closing++;
    uv_close((uv_handle_t *)&s->listener, on_handle_closed);
}

/* ---------- Prometheus text format ---------- */

static int append_str(strm_buf_t *b, const char *s)
{
    return strm_buf_append(b, s, strlen(s));
}

/* HELP text escapes backslash and newline; label values also '"'. */
static int append_escaped(strm_buf_t *b, const char *s, int quote)
{
    for (const char *p = s; *p; p++) {
        const char *esc = *p == '\\'           ? "\\\\"
                          : *p == '\n'         ? "\\n"
                          : quote && *p == '"' ? "\\\""
                                               : NULL;
        if (esc ? append_str(b, esc) : strm_buf_append(b, p, 1)) return -1;
    }
    return 0;
}

int http_metric_head(strm_buf_t *b, const char *name, const char *type, const char *help)
{
    if (append_str(b, "# HELP ") || append_str(b, name) || strm_buf_append(b, " ", 1) ||
        append_escaped(b, help ? help : "", 0) || append_str(b, "\n# TYPE ") ||
        append_str(b, name) || strm_buf_append(b, " ", 1) || append_str(b, type) ||
        strm_buf_append(b, "\n", 1))
        return -1;
    return 0;
}

static int metric_line(strm_buf_t *b, const char *name, const char *labels, const char *value)
{
    if (append_str(b, name)) return -1;
    if (labels && *labels &&
        (strm_buf_append(b, "{", 1) || append_str(b, labels) || strm_buf_append(b, "}", 1)))
        return -1;
    if (strm_buf_append(b, " ", 1) || append_str(b, value) || strm_buf_append(b, "\n", 1))
        return -1;
    return 0;
}

int http_metric_u64(strm_buf_t *b, const char *name, const char *labels, uint64_t v)
{
    char num[24];
    snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    return metric_line(b, name, labels, num);
}

int http_metric_f64(strm_buf_t *b, const char *name, const char *labels, double v)
{
    char num[40];
    if (isnan(v))
        snprintf(num, sizeof num, "NaN");
    else if (isinf(v))
        snprintf(num, sizeof num, "%s", v > 0 ? "+Inf" : "-Inf");
    else {
        snprintf(num, sizeof num, "%.15g", v);
        if (strtod(num, NULL) != v) snprintf(num, sizeof num, "%.17g", v);
    }
    return metric_line(b, name, labels, num);
}

int http_label(strm_buf_t *b, const char *name, const char *value)
{
    if ((b->len && strm_buf_append(b, ",", 1)) || append_str(b, name) ||
        strm_buf_append(b, "=\"", 2) || append_escaped(b, value ? value : "", 1) ||
        strm_buf_append(b, "\"", 1) || strm_buf_reserve(b, 1))
        return -1;
    b->p[b->len] = 0;
    return 0;
}

int http_metric1_u64(strm_buf_t *b, const char *name, const char *type, const char *help,
                     uint64_t v)
{
    return http_metric_head(b, name, type, help) | http_metric_u64(b, name, NULL, v);
}

int http_metric1_f64(strm_buf_t *b, const char *name, const char *type, const char *help, double v)
{
    return http_metric_head(b, name, type, help) | http_metric_f64(b, name, NULL, v);
}
