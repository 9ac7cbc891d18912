/* tests/integration/harness.c: see harness.h. Test support only. */
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"

const char *h_tmpdir(void)
{
    static char path[512];
    const char *base = getenv("TMPDIR");
    snprintf(path, sizeof(path), "%s/segstream-test-XXXXXX", base && *base ? base : "/tmp");
    if (!mkdtemp(path)) return NULL;
    return path;
}

int h_run(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st == -1 || !WIFEXITED(st)) return -1;
    return WEXITSTATUS(st);
}

const char *h_join(const char *dir, const char *name)
{
    static char buf[4][600];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
    return buf[i];
}

int h_writef(const char *dir, const char *name, const char *fmt, ...)
{
    FILE *f = fopen(h_join(dir, name), "w");
    if (!f) return -1;
    va_list ap;
    va_start(ap, fmt);
    int rc = vfprintf(f, fmt, ap) < 0;
    va_end(ap);
    return fclose(f) != 0 || rc ? -1 : 0;
}

char *h_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n + 1);
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (!buf) return NULL;
    buf[n] = 0;
    if (len) *len = (size_t)n;
    return buf;
}

long h_count_lines(const char *path)
{
    size_t len;
    char *b = h_slurp(path, &len);
    if (!b) return -1;
    long n = 0;
    for (size_t i = 0; i < len; i++) n += b[i] == '\n';
    free(b);
    return n;
}

int h_same_file(const char *a, const char *b)
{
    size_t la, lb;
    char *x = h_slurp(a, &la), *y = h_slurp(b, &lb);
    int same = x && y && la == lb && memcmp(x, y, la) == 0;
    free(x);
    free(y);
    return same;
}

static double choose2(double n)
{
    return n * (n - 1) / 2;
}

double h_ari(const int *a, const int *b, size_t n)
{
    int ka = 0, kb = 0;
    for (size_t i = 0; i < n; i++) {
        if (a[i] + 1 > ka) ka = a[i] + 1;
        if (b[i] + 1 > kb) kb = b[i] + 1;
    }
    double *t = calloc((size_t)ka * kb, sizeof(double));
    double *ra = calloc((size_t)ka, sizeof(double)), *rb = calloc((size_t)kb, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        t[a[i] * kb + b[i]] += 1;
        ra[a[i]] += 1;
        rb[b[i]] += 1;
    }
    double sij = 0, sa = 0, sb = 0;
    for (int i = 0; i < ka * kb; i++) sij += choose2(t[i]);
    for (int i = 0; i < ka; i++) sa += choose2(ra[i]);
    for (int j = 0; j < kb; j++) sb += choose2(rb[j]);
    double expected = sa * sb / choose2((double)n);
    double maxi = (sa + sb) / 2;
    free(t);
    free(ra);
    free(rb);
    return maxi == expected ? 1.0 : (sij - expected) / (maxi - expected);
}

/* ---------------- processes ---------------- */

/* Children not yet reaped, for h_stop_spawned(): a test that fails an
 * assertion leaves its daemons running otherwise (Criterion runs the
 * suite's fini, then the worker exits and they are orphaned). */
#define SPAWNED_MAX 256
static pid_t spawned[SPAWNED_MAX];

static void forget_spawned(pid_t pid)
{
    for (int i = 0; i < SPAWNED_MAX; i++)
        if (spawned[i] == pid) spawned[i] = 0;
}

void h_stop_spawned(void)
{
    for (int i = 0; i < SPAWNED_MAX; i++)
        if (spawned[i] > 0) {
            /* not reaped yet, so the pid is still this child's */
            kill(spawned[i], SIGKILL);
            waitpid(spawned[i], NULL, 0);
            spawned[i] = 0;
        }
}

pid_t h_spawn(const char *out, const char *err, const char *fmt, ...)
{
    char cmd[8192], full[8300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    snprintf(full, sizeof(full), "exec %s", cmd);
    pid_t pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int o = open(out ? out : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err ? err : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o >= 0) dup2(o, 1);
        if (e >= 0) dup2(e, 2);
        execl("/bin/sh", "sh", "-c", full, (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < SPAWNED_MAX; i++)
        if (spawned[i] == 0) {
            spawned[i] = pid;
            break;
        }
    return pid;
}

void h_sleep(double s)
{
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int h_stop(pid_t pid, int sig, double timeout_s)
{
    if (pid <= 0) return -1;
    if (sig) kill(pid, sig);
    double end = mono() + timeout_s;
    for (;;) {
        int st;
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid) {
            forget_spawned(pid);
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (r < 0) return -1;
        if (mono() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            forget_spawned(pid);
            return -1;
        }
        h_sleep(0.05);
    }
}

int h_alive(pid_t pid)
{
    int st;
    if (pid <= 0) return 0;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (r == pid) forget_spawned(pid); /* reaped here: h_stop finds it gone */
    return r == 0;
}

const char *h_wait_line(const char *path, const char *needle, double timeout_s)
{
    static char line[1024];
    double end = mono() + timeout_s;
    do {
        FILE *f = fopen(path, "r");
        if (f) {
            while (fgets(line, sizeof(line), f))
                if (strstr(line, needle)) {
                    fclose(f);
                    return line;
                }
            fclose(f);
        }
        h_sleep(0.05);
    } while (mono() < end);
    return NULL;
}

pid_t h_broker(const char *dir, int partitions, const char *topics, char *bootstrap, size_t len)
{
    char out[600], err[600];
    snprintf(out, sizeof(out), "%s/broker.out", dir);
    snprintf(err, sizeof(err), "%s/broker.err", dir);
    pid_t pid =
        h_spawn(out, err, "%s broker --partitions %d --topics %s", SEG_BIN, partitions, topics);
    const char *l = h_wait_line(out, "bootstrap=", 10);
    if (!l) {
        h_stop(pid, SIGKILL, 5);
        return -1;
    }
    snprintf(bootstrap, len, "%s", l + strlen("bootstrap="));
    bootstrap[strcspn(bootstrap, "\r\n")] = 0;
    return pid;
}

int h_daemon_port(const char *log, double timeout_s)
{
    const char *l = h_wait_line(log, "serving http://", timeout_s);
    if (!l) return -1;
    const char *p = strstr(l, "serving http://") + strlen("serving http://");
    p = strchr(p, ':');
    return p ? atoi(p + 1) : -1;
}

char *h_http_get(int port, const char *path, int *status)
{
    char cmd[512];
    snprintf(cmd, sizeof(cmd), "curl -s -m 5 -w '\\n%%{http_code}' http://127.0.0.1:%d%s", port,
             path);
    FILE *p = popen(cmd, "r");
    if (!p) return NULL;
    size_t cap = 1 << 16, n = 0;
    char *b = malloc(cap);
    size_t k;
    while (b && (k = fread(b + n, 1, cap - n - 1, p)) > 0) {
        n += k;
        if (cap - n < 1024) {
            char *nb = realloc(b, cap *= 2);
            if (!nb) free(b);
            b = nb;
        }
    }
    int rc = pclose(p);
    if (!b) return NULL;
    b[n] = 0;
    char *nl = strrchr(b, '\n');
    if (rc != 0 || !nl) {
        free(b);
        return NULL;
    }
    *nl = 0;
    if (status) *status = atoi(nl + 1);
    return b;
}

double h_metric(const char *body, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = body; p && *p;) {
        if (strncmp(p, series, n) == 0 && p[n] == ' ') return strtod(p + n + 1, NULL);
        p = strchr(p, '\n');
        if (p) p++;
    }
    return NAN;
}

double h_wait_metric(int port, const char *series, double want, int at_least, double timeout_s)
{
    double end = mono() + timeout_s, v = NAN;
    do {
        char *b = h_http_get(port, "/metrics", NULL);
        if (b) {
            v = h_metric(b, series);
            free(b);
            if (v == want || (at_least && v >= want)) return v;
        }
        h_sleep(0.2);
    } while (mono() < end);
    return v;
}

int h_free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int port = -1;
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
        getsockname(fd, (struct sockaddr *)&a, &len) == 0)
        port = ntohs(a.sin_port);
    if (fd >= 0) close(fd);
    return port;
}

pid_t h_redis(const char *dir, int port, int appendonly)
{
    char log[600];
    snprintf(log, sizeof(log), "%s/redis-%d.log", dir, port);
    pid_t pid = h_spawn(log, log,
                        "redis-server --bind 127.0.0.1 --port %d --dir %s --save '' "
                        "--appendonly %s --appendfsync always --daemonize no",
                        port, dir, appendonly ? "yes" : "no");
    for (int i = 0; i < 100; i++) {
        if (h_run("redis-cli -p %d ping 2>/dev/null | grep -q PONG", port) == 0) return pid;
        h_sleep(0.05);
    }
    h_stop(pid, SIGKILL, 5);
    return -1;
}

long h_field(const char *line, const char *name)
{
    char key[64];
    snprintf(key, sizeof(key), "%s=", name);
    const char *p = strstr(line, key);
    cr_assert_not_null(p, "no %s in %s", name, line);
    return strtol(p + strlen(key), NULL, 10);
}
