/* tests/integration/harness.c: see harness.h. Test support only. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
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
