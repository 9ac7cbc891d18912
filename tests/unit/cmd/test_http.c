/* tests/unit/cmd/test_http.c: the /metrics and /healthz server (cmd/http.c)
 * on a libuv loop, driven by a plain-socket HTTP/1.1 client (not h2o) that
 * pumps the loop while it waits; stopping from inside a loop callback closes idle and
 * half-read connections and leaves nothing on the loop. Also the Prometheus
 * text helpers. */
#include <criterion/criterion.h>
#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <uv.h>
#include "cmd/http.h"

/* ---------- a server on a loop, a client in the same thread ----------
 * The loop runs in the test's own thread, as in the daemon (h2o keeps
 * per-thread caches that a thread's exit would leak), and is pumped while
 * the client waits for bytes. */

typedef struct fx {
    uv_loop_t loop;
    uv_timer_t stop;
    http_server_t *srv;
    int port;
    int health_status;
    int stop_in_render; /* /metrics stops the server while it answers */
    int metrics_calls, health_calls, stop_calls;
    int closed; /* uv_loop_close() done */
} fx_t;

/* The daemon stops the server from a loop callback: so does the test. */
static void do_stop(fx_t *f)
{
    f->stop_calls++;
    http_stop(f->srv);
    f->srv = NULL;
    uv_close((uv_handle_t *)&f->stop, NULL);
}

static void on_stop(uv_timer_t *t)
{
    do_stop(t->data);
}

static int render_metrics(void *ud, strm_buf_t *out)
{
    fx_t *f = ud;
    f->metrics_calls++;
    if (f->stop_in_render) do_stop(f);
    http_metric_head(out, "segstream_events_total", "counter", "events consumed");
    http_metric_u64(out, "segstream_events_total", "topic=\"events\"", 42);
    return 200;
}

static int render_health(void *ud, strm_buf_t *out)
{
    fx_t *f = ud;
    f->health_calls++;
    const char *msg = f->health_status == 200 ? "ok\n" : "redis: connecting\n";
    strm_buf_append(out, msg, strlen(msg));
    return f->health_status;
}

static void fx_start(fx_t *f, int health_status, int stop_in_render)
{
    memset(f, 0, sizeof *f);
    f->health_status = health_status;
    f->stop_in_render = stop_in_render;
    cr_assert_eq(uv_loop_init(&f->loop), 0);
    char err[256] = "";
    cr_assert_eq(http_start(&f->srv, &f->loop, "127.0.0.1:0", render_metrics, render_health, f, err,
                            sizeof err),
                 0, "http_start: %s", err);
    cr_assert_not_null(f->srv);
    f->port = http_port(f->srv);
    cr_assert_gt(f->port, 0);
    cr_assert_eq(uv_timer_init(&f->loop, &f->stop), 0);
    f->stop.data = f;
}

/* Runs the loop to its end: a hang here is a handle or a connection that
 * http_stop() did not close (the suite's timeout then fails the test). */
static void fx_join(fx_t *f)
{
    cr_assert_eq(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(f->stop_calls, 1);
    cr_assert_eq(uv_loop_close(&f->loop), 0, "handles left on the loop");
    f->closed = 1;
}

static void fx_stop(fx_t *f)
{
    cr_assert_eq(uv_timer_start(&f->stop, on_stop, 0, 0), 0);
    fx_join(f);
}

/* ---------- a plain HTTP/1.1 client ---------- */

typedef struct client {
    fx_t *f; /* the server's loop is pumped while waiting */
    int fd;
    char buf[65536];
    size_t len;
} client_t;

typedef struct resp {
    int status;
    char ctype[128];
    char connection[32];
    char allow[32];
    long content_length;
    char body[8192];
} resp_t;

static void client_open(client_t *c, fx_t *f)
{
    c->f = f;
    c->len = 0;
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(c->fd, 0);
    /* Not a timing check: a broken server fails the test instead of hanging it. */
    struct timeval tv = {30, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)f->port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    /* completes in the kernel's backlog, before the server accepts */
    cr_assert_eq(connect(c->fd, (struct sockaddr *)&a, sizeof a), 0, "connect: %s",
                 strerror(errno));
}

static void client_send(client_t *c, const char *s)
{
    size_t n = strlen(s), off = 0;
    while (off < n) {
        ssize_t w = send(c->fd, s + off, n - off, MSG_NOSIGNAL);
        cr_assert_gt(w, 0, "send: %s", strerror(errno));
        off += (size_t)w;
    }
}

/* Runs the server's loop until c->fd is readable or the loop has ended. */
static void pump(client_t *c)
{
    uv_loop_t *loop = &c->f->loop;
    while (!c->f->closed && uv_loop_alive(loop)) {
        struct pollfd p[2] = {{.fd = c->fd, .events = POLLIN},
                              {.fd = uv_backend_fd(loop), .events = POLLIN}};
        if (poll(p, 1, 0) > 0) return;
        uv_run(loop, UV_RUN_NOWAIT);
        poll(p, 2, uv_backend_timeout(loop));
    }
}

/* More bytes into c->buf: >0, 0 at end of stream. */
static ssize_t client_fill(client_t *c)
{
    cr_assert_lt(c->len, sizeof c->buf);
    pump(c);
    ssize_t r = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
    cr_assert_geq(r, 0, "recv: %s", strerror(errno));
    c->len += (size_t)r;
    return r;
}

static void header_value(const char *hdrs, const char *name, char *out, size_t outlen)
{
    out[0] = 0;
    size_t nl = strlen(name);
    for (const char *p = hdrs; p && *p; p = strstr(p, "\r\n"), p = p ? p + 2 : NULL) {
        if (strncasecmp(p, name, nl) == 0 && p[nl] == ':') {
            const char *v = p + nl + 1;
            while (*v == ' ') v++;
            const char *e = strstr(v, "\r\n");
            size_t n = e ? (size_t)(e - v) : strlen(v);
            if (n >= outlen) n = outlen - 1;
            memcpy(out, v, n);
            out[n] = 0;
            return;
        }
    }
}

/* Reads one response; `head` means no body follows the headers. */
static void client_read(client_t *c, resp_t *r, int head)
{
    memset(r, 0, sizeof *r);
    char *end;
    for (;;) {
        c->buf[c->len] = 0;
        if (c->len && (end = strstr(c->buf, "\r\n\r\n"))) break;
        cr_assert_gt(client_fill(c), 0, "connection closed before the response headers");
        if (c->len == sizeof c->buf) c->len--;
    }
    size_t hlen = (size_t)(end - c->buf) + 4;
    char hdrs[8192];
    cr_assert_lt(hlen, sizeof hdrs);
    memcpy(hdrs, c->buf, hlen);
    hdrs[hlen] = 0;
    cr_assert_eq(sscanf(hdrs, "HTTP/1.1 %d ", &r->status), 1, "status line: %s", hdrs);
    header_value(hdrs, "content-type", r->ctype, sizeof r->ctype);
    header_value(hdrs, "connection", r->connection, sizeof r->connection);
    header_value(hdrs, "allow", r->allow, sizeof r->allow);
    char cl[32];
    header_value(hdrs, "content-length", cl, sizeof cl);
    cr_assert_neq(cl[0], 0, "no Content-Length in %s", hdrs);
    r->content_length = strtol(cl, NULL, 10);
    size_t blen = head ? 0 : (size_t)r->content_length;
    cr_assert_lt(blen, sizeof r->body);
    while (c->len < hlen + blen) cr_assert_gt(client_fill(c), 0, "body cut short");
    memcpy(r->body, c->buf + hlen, blen);
    r->body[blen] = 0;
    memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
    c->len -= hlen + blen;
}

/* 1 when the server closed the connection: end of stream, or a reset when
 * it closed with bytes of ours still unread in its socket. */
static int client_sees_eof(client_t *c)
{
    if (c->len) return 0;
    pump(c);
    ssize_t r = recv(c->fd, c->buf, sizeof c->buf, 0);
    cr_assert(r == 0 || (r < 0 && errno == ECONNRESET), "recv: %zd, %s", r,
              r < 0 ? strerror(errno) : "data");
    return 1;
}

static void client_close(client_t *c)
{
    close(c->fd);
}

/* One request on its own connection, which the server then closes. */
static void fetch(fx_t *f, const char *method, const char *path, resp_t *r)
{
    client_t *c = malloc(sizeof *c);
    cr_assert_not_null(c);
    char req[256];
    snprintf(req, sizeof req, "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
             method, path);
    client_open(c, f);
    client_send(c, req);
    client_read(c, r, strcmp(method, "HEAD") == 0);
    cr_assert_str_eq(r->connection, "close");
    cr_assert(client_sees_eof(c), "the server closes after Connection: close");
    client_close(c);
    free(c);
}

static const char metrics_body[] = "# HELP segstream_events_total events consumed\n"
                                   "# TYPE segstream_events_total counter\n"
                                   "segstream_events_total{topic=\"events\"} 42\n";

static void setup(void)
{
    signal(SIGPIPE, SIG_IGN);
}
TestSuite(http, .init = setup, .timeout = 120);

Test(http, metrics_healthz_and_everything_else)
{
    static fx_t f;
    static resp_t r;
    fx_start(&f, 200, 0);

    fetch(&f, "GET", "/metrics", &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.ctype, "text/plain; version=0.0.4");
    cr_assert_str_eq(r.body, metrics_body);
    cr_assert_eq(r.content_length, (long)strlen(metrics_body));

    fetch(&f, "GET", "/healthz", &r);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.ctype, "text/plain; charset=utf-8");
    cr_assert_str_eq(r.body, "ok\n");

    fetch(&f, "GET", "/nope", &r);
    cr_assert_eq(r.status, 404);
    fetch(&f, "GET", "/", &r);
    cr_assert_eq(r.status, 404);
    fetch(&f, "GET", "/metrics/x", &r);
    cr_assert_eq(r.status, 404);

    fetch(&f, "GET", "/metrics?name=x", &r); /* a query is not part of the path */
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, metrics_body);

    fetch(&f, "HEAD", "/metrics", &r);
    cr_assert_eq(r.status, 200);
    cr_assert_eq(r.content_length, (long)strlen(metrics_body));
    cr_assert_str_eq(r.body, "");

    fetch(&f, "POST", "/metrics", &r);
    cr_assert_eq(r.status, 405);
    cr_assert_str_eq(r.allow, "GET, HEAD");

    fx_stop(&f);
    cr_assert_eq(f.metrics_calls, 3, "GET, GET ?query, HEAD");
    cr_assert_eq(f.health_calls, 1);
}

Test(http, healthz_status_comes_from_the_callback)
{
    static fx_t f;
    static resp_t r;
    fx_start(&f, 503, 0);
    fetch(&f, "GET", "/healthz", &r);
    cr_assert_eq(r.status, 503);
    cr_assert_str_eq(r.body, "redis: connecting\n");
    fx_stop(&f);
    cr_assert_eq(f.health_calls, 1);
}

Test(http, keep_alive_then_stop_closes_idle_and_half_read_connections)
{
    static fx_t f;
    static client_t idle, half, fresh;
    static resp_t r;
    fx_start(&f, 200, 0);

    client_open(&idle, &f);
    /* two pipelined requests, then one more on the same connection */
    client_send(&idle, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"
                       "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    client_read(&idle, &r, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.connection, "keep-alive");
    cr_assert_str_eq(r.body, metrics_body);
    client_read(&idle, &r, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.body, "ok\n");
    client_send(&idle, "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n");
    client_read(&idle, &r, 0);
    cr_assert_eq(r.status, 404);
    cr_assert_str_eq(r.connection, "keep-alive");

    client_open(&half, &f);
    client_send(&half, "GET /metr");
    client_open(&fresh, &f); /* connected, nothing sent */

    fx_stop(&f); /* returns only once every connection is closed */
    cr_assert(client_sees_eof(&idle));
    cr_assert(client_sees_eof(&half));
    cr_assert(client_sees_eof(&fresh));
    client_close(&idle);
    client_close(&half);
    client_close(&fresh);
    cr_assert_eq(f.metrics_calls, 1);
    cr_assert_eq(f.health_calls, 1);
}

Test(http, stop_while_answering_finishes_the_response_then_closes)
{
    static fx_t f;
    static client_t c;
    static resp_t r;
    fx_start(&f, 200, 1);
    client_open(&c, &f);
    client_send(&c, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    client_read(&c, &r, 0);
    cr_assert_eq(r.status, 200);
    cr_assert_str_eq(r.connection, "close", "a keep-alive request ends the connection");
    cr_assert_str_eq(r.body, metrics_body);
    cr_assert(client_sees_eof(&c));
    client_close(&c);
    fx_join(&f);
    cr_assert_eq(f.metrics_calls, 1);
}

Test(http, many_connections_one_after_another)
{
    static fx_t f;
    static resp_t r;
    fx_start(&f, 200, 0);
    for (int i = 0; i < 50; i++) {
        fetch(&f, "GET", i % 2 ? "/healthz" : "/metrics", &r);
        cr_assert_eq(r.status, 200);
    }
    fx_stop(&f);
    cr_assert_eq(f.metrics_calls, 25);
    cr_assert_eq(f.health_calls, 25);
}

Test(http, stop_before_the_loop_ever_runs)
{
    uv_loop_t loop;
    http_server_t *s = NULL;
    char err[256] = "";
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(http_start(&s, &loop, "127.0.0.1:0", render_metrics, NULL, NULL, err, sizeof err),
                 0, "%s", err);
    http_stop(s);
    http_stop(NULL);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0);
}

Test(http, a_port_in_use_fails_with_the_address)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    cr_assert_geq(fd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    cr_assert_eq(listen(fd, 1), 0);
    cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    char listen_at[64], err[256] = "";
    snprintf(listen_at, sizeof listen_at, "127.0.0.1:%d", ntohs(a.sin_port));

    uv_loop_t loop;
    http_server_t *s = (http_server_t *)&loop; /* must be reset */
    cr_assert_eq(uv_loop_init(&loop), 0);
    cr_assert_eq(
        http_start(&s, &loop, listen_at, render_metrics, render_health, NULL, err, sizeof err), -1);
    cr_assert_null(s);
    cr_assert(strstr(err, listen_at), "names the address: %s", err);
    cr_assert(strstr(err, "address already in use"), "says why: %s", err);
    cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
    cr_assert_eq(uv_loop_close(&loop), 0, "the failed listener is freed");
    close(fd);
}

Test(http, bad_addresses_fail_with_the_address)
{
    static const struct {
        const char *listen, *why;
    } cases[] = {
        {"9464", "expected host:port"},
        {"127.0.0.1:99999", "port"},
        {"", "expected host:port"},
        {"192.0.2.1:0", "address not available"}, /* TEST-NET-1: not on this machine */
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        uv_loop_t loop;
        http_server_t *s = NULL;
        char err[256] = "";
        cr_assert_eq(uv_loop_init(&loop), 0);
        cr_assert_eq(http_start(&s, &loop, cases[i].listen, render_metrics, render_health, NULL,
                                err, sizeof err),
                     -1, "%s", cases[i].listen);
        cr_assert_null(s);
        char quoted[64];
        snprintf(quoted, sizeof quoted, "%s", cases[i].listen);
        cr_assert(strstr(err, quoted), "names '%s': %s", cases[i].listen, err);
        cr_assert(strstr(err, cases[i].why), "'%s': %s", cases[i].listen, err);
        cr_assert_eq(uv_run(&loop, UV_RUN_DEFAULT), 0);
        cr_assert_eq(uv_loop_close(&loop), 0);
    }
}

/* ---------- Prometheus text ---------- */

static char *text(strm_buf_t *b)
{
    cr_assert_eq(strm_buf_append(b, "", 1), 0);
    b->len--;
    return b->p;
}

Test(prometheus, head_and_samples)
{
    strm_buf_t b;
    strm_buf_init(&b);
    cr_assert_eq(http_metric_head(&b, "seg_lag_seconds", "gauge", "lag\\behind\nW"), 0);
    cr_assert_eq(http_metric_u64(&b, "seg_events_total", NULL, 18446744073709551615ull), 0);
    cr_assert_eq(http_metric_u64(&b, "seg_events_total", "", 0), 0);
    cr_assert_eq(http_metric_f64(&b, "seg_lag_seconds", "p=\"0\"", 0.1), 0);
    cr_assert_eq(http_metric_f64(&b, "x", NULL, 1.0 / 3.0), 0);
    cr_assert_eq(http_metric_f64(&b, "x", NULL, 1e300), 0);
    cr_assert_eq(http_metric_f64(&b, "x", NULL, -2.5), 0);
    cr_assert_eq(http_metric_f64(&b, "x", NULL, NAN), 0);
    cr_assert_eq(http_metric_f64(&b, "x", NULL, INFINITY), 0);
    cr_assert_eq(http_metric_f64(&b, "x", NULL, -INFINITY), 0);
    cr_assert_str_eq(text(&b), "# HELP seg_lag_seconds lag\\\\behind\\nW\n"
                               "# TYPE seg_lag_seconds gauge\n"
                               "seg_events_total 18446744073709551615\n"
                               "seg_events_total 0\n"
                               "seg_lag_seconds{p=\"0\"} 0.1\n"
                               "x 0.33333333333333331\n"
                               "x 1e+300\n"
                               "x -2.5\n"
                               "x NaN\n"
                               "x +Inf\n"
                               "x -Inf\n");
    strm_buf_free(&b);
}

Test(prometheus, labels_are_escaped_and_joined)
{
    strm_buf_t l, b;
    strm_buf_init(&l);
    strm_buf_init(&b);
    cr_assert_eq(http_label(&l, "topic", "events"), 0);
    cr_assert_str_eq(l.p, "topic=\"events\"");
    cr_assert_eq(http_label(&l, "reason", "a\"b\\c\nd"), 0);
    cr_assert_str_eq(l.p, "topic=\"events\",reason=\"a\\\"b\\\\c\\nd\"");
    cr_assert_eq(http_metric_u64(&b, "seg_dlq_total", l.p, 7), 0);
    cr_assert_str_eq(text(&b), "seg_dlq_total{topic=\"events\",reason=\"a\\\"b\\\\c\\nd\"} 7\n");
    strm_buf_free(&l);
    strm_buf_free(&b);
}
