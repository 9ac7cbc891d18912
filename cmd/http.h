/* cmd/http.h: the daemon's tiny HTTP/1.1 server (GET /metrics, GET /healthz)
 * on an existing libuv loop, and helpers that write the Prometheus text
 * format. Bodies come from the caller's render callbacks, called on the loop
 * thread once per request. */
#ifndef CMD_HTTP_H
#define CMD_HTTP_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "stream/codec.h"

typedef struct http_server http_server_t;

/* Appends the body to out (empty on entry) and returns the HTTP status
 * (200, 503, ...); anything outside 100..599 is sent as 500. */
typedef int (*http_render_fn)(void *ud, strm_buf_t *out);

/* Listens on `listen` ("host:port", "[v6]:port"; port 0 picks a free port;
 * a host name is resolved once, here) and serves GET and HEAD of
 *   /metrics  metrics(ud, body), Content-Type: text/plain; version=0.0.4
 *   /healthz  health(ud, body), Content-Type: text/plain; charset=utf-8
 * A NULL callback makes its path a 404; other methods on these paths get 405,
 * other paths 404. Returns 0 with *out set, or -1 with a message naming the
 * address in err (malformed, unresolvable, in use, not available). Either way
 * nothing is ever called back; on failure the loop may still hold a closing
 * handle, freed when the loop next runs. The process should ignore SIGPIPE:
 * a client that goes away mid-response would otherwise end it. */
int http_start(http_server_t **out, uv_loop_t *loop, const char *listen, http_render_fn metrics,
               http_render_fn health, void *ud, char *err, size_t errlen);

/* The bound port (the chosen one when started with port 0). */
int http_port(const http_server_t *s);

/* Stops listening and closes every connection (a response being written is
 * finished first), then every handle of the server; the render callbacks are
 * never called again. Memory is freed in close callbacks: once the loop has
 * run to completion (uv_run(loop, UV_RUN_DEFAULT) returns), uv_loop_close()
 * succeeds. Safe inside any loop callback and with s == NULL; s must not be
 * used afterwards. */
void http_stop(http_server_t *s);

/* ---- Prometheus text format (version 0.0.4) ----
 * name must be a valid metric name ([a-zA-Z_:][a-zA-Z0-9_:]*). labels is
 * what goes between the braces, with values already escaped (for example
 * `topic="events",reason="bad_json"`), or NULL/"" for none. Each returns 0,
 * or -1 when the buffer cannot grow (its content is then unspecified). */

/* "# HELP name help\n# TYPE name type\n"; type is "counter", "gauge",
 * "histogram", "summary" or "untyped"; help is escaped here. */
int http_metric_head(strm_buf_t *b, const char *name, const char *type, const char *help);
/* HELP and TYPE, then one unlabelled sample: a metric with a single series. */
int http_metric1_u64(strm_buf_t *b, const char *name, const char *type, const char *help,
                     uint64_t v);
int http_metric1_f64(strm_buf_t *b, const char *name, const char *type, const char *help, double v);
/* "name{labels} value\n" */
int http_metric_u64(strm_buf_t *b, const char *name, const char *labels, uint64_t v);
/* Same for a double: the shortest of %.15g/%.17g that reads back exactly;
 * NaN, +Inf and -Inf as Prometheus spells them. */
int http_metric_f64(strm_buf_t *b, const char *name, const char *labels, double v);
/* Appends `name="value"` to a labels string being built in b, preceded by a
 * comma unless b is empty; value is escaped (backslash, double quote,
 * newline). Keeps b NUL-terminated (the NUL is not counted in b->len), so
 * b->p can be passed as `labels` above. */
int http_label(strm_buf_t *b, const char *name, const char *value);

#endif
