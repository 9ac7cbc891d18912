/* tests/integration/harness.h: helpers for tests that drive the built
 * `segstream` binary: temp dirs, running commands, reading files, and the
 * adjusted Rand index for checking recovered segments. */
#ifndef TEST_HARNESS_H
#define TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* A fresh directory under $TMPDIR (or /tmp); the path is static storage. */
const char *h_tmpdir(void);
/* Runs a shell command (printf-style); returns its exit status (or -1). */
int h_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Writes dir/name (printf-style), replacing it; 0, or -1 when it cannot. */
int h_writef(const char *dir, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Whole file into a malloc'd NUL-terminated buffer; NULL when unreadable. */
char *h_slurp(const char *path, size_t *len);
/* dir/name in one of four rotating buffers (so a call's few paths can be
 * used together). */
const char *h_join(const char *dir, const char *name);
/* Number of lines in a file (-1 when unreadable). */
long h_count_lines(const char *path);
/* 1 when the two files have identical bytes. */
int h_same_file(const char *a, const char *b);

/* Adjusted Rand index of two labelings of n items (labels are small ints). */
double h_ari(const int *a, const int *b, size_t n);

/* ---- processes, for tests that run the daemon and the broker ---- */

/* Runs `sh -c "exec CMD"` in the background, stdout and stderr to files
 * (NULL: /dev/null). Returns the pid, or -1. */
pid_t h_spawn(const char *out, const char *err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Sends sig (0: none) and waits up to timeout_s for the exit. Returns the
 * exit status, 128+signal when killed, or -1 on timeout (then SIGKILLed). */
int h_stop(pid_t pid, int sig, double timeout_s);
/* 1 while the process is running. */
int h_alive(pid_t pid);
/* SIGKILLs and reaps every process h_spawn started that is not reaped yet
 * (a suite's fini: daemons of a failed test must not outlive it). */
void h_stop_spawned(void);
/* Starts `segstream broker --partitions P --topics T` (dir holds its
 * output) and waits for its bootstrap line. Returns the pid or -1. */
pid_t h_broker(const char *dir, int partitions, const char *topics, char *bootstrap, size_t len);
/* Waits until the file contains `needle`; returns a pointer to a static
 * copy of the line that holds it, or NULL after timeout_s. */
const char *h_wait_line(const char *path, const char *needle, double timeout_s);
/* The port of a daemon's "serving http://HOST:PORT/metrics" log line. */
int h_daemon_port(const char *log, double timeout_s);
/* GET http://127.0.0.1:port/path with curl; returns the malloc'd body
 * (NULL on failure) and the status in *status. */
char *h_http_get(int port, const char *path, int *status);
/* The value of one metric line `name{labels}` (exact, labels included) in a
 * Prometheus text body; NAN when absent. */
double h_metric(const char *body, const char *series);
/* Polls /metrics until series == want (or >= want when at_least), up to
 * timeout_s. Returns the last value seen. */
double h_wait_metric(int port, const char *series, double want, int at_least, double timeout_s);
/* A free TCP port on 127.0.0.1 (bound, then released). */
int h_free_port(void);
/* Starts Debian's redis-server on 127.0.0.1:port with its files in dir
 * (appendonly: AOF on, fsync every write) and waits until it answers PING.
 * Returns the pid, or -1. */
pid_t h_redis(const char *dir, int port, int appendonly);

/* The example rules of config/segstream.example.yaml, as YAML: the daemon
 * tests and their replays run with the same rule segments. */
#define H_EXAMPLE_RULES                                                                            \
    "rules:\n"                                                                                     \
    "  - name: british_isles\n    all: [\"country in [GB, IE]\"]\n"                                \
    "  - name: cart_abandoners\n"                                                                  \
    "    all: [\"cart_abandonment > 0.5\", \"recency_days <= 14\"]\n"                              \
    "  - name: loyal\n    all: [\"orders >= 5\"]\n"                                                \
    "  - name: big_spenders\n    any: [\"monetary > 200\", \"aov > 150\"]\n"

/* The integer after "name=" in a "k=v k=v" line (a test assertion fails
 * when it is absent). */
long h_field(const char *line, const char *name);

/* Sleeps s seconds. */
void h_sleep(double s);

#endif
