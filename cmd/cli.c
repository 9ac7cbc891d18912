/* cmd/cli.c: logging, clocks, argument parsing and the JSON and CSV string
 * writers shared by the subcommands. Log lines go to stderr, one event per
 * line, with a level. */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "cmd/cli.h"
#include "stream/codec.h"

int cli_log_level = LOG_INFO;

static const char *const level_names[] = {"debug", "info", "warn", "error"};

int cli_set_log_level(const char *name)
{
    for (int i = 0; i < 4; i++)
        if (strcmp(name, level_names[i]) == 0) return cli_log_level = i, 0;
    return -1;
}

void cli_log(int level, const char *fmt, ...)
{
    if (level < cli_log_level) return;
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char stamp[32];
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    fprintf(stderr, "%s.%03ldZ %-5s segstream: %s\n", stamp, ts.tv_nsec / 1000000,
            level_names[level], msg);
}

int64_t cli_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double cli_monotonic_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* strtoull and strtoll skip leading blanks and take a sign (' -1' would be
 * 2^64 - 1), so the first byte must be a digit (or, signed, a '-' and a
 * digit). */
int cli_parse_u64(const char *s, uint64_t *out)
{
    if (!s || *s < '0' || *s > '9') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

/* path as its directory's real path and its file name, so that "o.out",
 * "./o.out" and "d/../o.out" compare equal before any of them exists; the
 * path as given when the directory cannot be resolved. */
static void canon_path(const char *path, char *buf, size_t len)
{
    const char *slash = strrchr(path, '/');
    char dir[PATH_MAX], real[PATH_MAX];
    if (!slash)
        snprintf(dir, sizeof dir, ".");
    else
        snprintf(dir, sizeof dir, "%.*s", slash == path ? 1 : (int)(slash - path), path);
    if (realpath(dir, real))
        snprintf(buf, len, "%s/%s", real, slash ? slash + 1 : path);
    else
        snprintf(buf, len, "%s", path);
}

/* path, or when it is a symlink whose target does not exist yet, that
 * target: opening the link for writing creates it, so it is the name that
 * counts. A relative target is relative to the link's directory; links to
 * links are followed up to 40 deep (the kernel's own limit). */
static void resolve_dangling(const char *path, char *buf, size_t len)
{
    char cur[PATH_MAX], target[PATH_MAX], next[PATH_MAX];
    struct stat st;
    snprintf(cur, sizeof cur, "%s", path);
    for (int depth = 0; depth < 40 && lstat(cur, &st) == 0 && S_ISLNK(st.st_mode); depth++) {
        ssize_t n = readlink(cur, target, sizeof target - 1);
        if (n <= 0) break;
        target[n] = 0;
        const char *slash = strrchr(cur, '/');
        int k = target[0] == '/' || !slash
                    ? snprintf(next, sizeof next, "%s", target)
                    : snprintf(next, sizeof next, "%.*s/%s", (int)(slash - cur), cur, target);
        if (k < 0 || (size_t)k >= sizeof next) break;
        memcpy(cur, next, (size_t)k + 1);
    }
    snprintf(buf, len, "%s", cur);
}

FILE *cli_open_out(const char *path)
{
    return strcmp(path, "-") == 0 ? stdout : fopen(path, "wb");
}

int cli_close_out(FILE *f)
{
    return f == stdout ? fflush(f) : fclose(f);
}

int cli_same_file(const char *a, const char *b)
{
    if (!a || !b || !*a || !*b || strcmp(a, "-") == 0 || strcmp(b, "-") == 0 ||
        strncmp(a, "kafka:", 6) == 0 || strncmp(b, "kafka:", 6) == 0)
        return 0;
    struct stat sa, sb;
    int ea = stat(a, &sa) == 0, eb = stat(b, &sb) == 0;
    /* opening a device or a pipe empties nothing: /dev/null twice is fine */
    if ((ea && !S_ISREG(sa.st_mode)) || (eb && !S_ISREG(sb.st_mode))) return 0;
    if (strcmp(a, b) == 0) return 1;
    if (ea && eb) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
    if (ea || eb) return 0; /* one exists, the other not */
    char ra[PATH_MAX], rb[PATH_MAX], ca[PATH_MAX + 256], cb[PATH_MAX + 256];
    resolve_dangling(a, ra, sizeof ra);
    resolve_dangling(b, rb, sizeof rb);
    canon_path(ra, ca, sizeof ca);
    canon_path(rb, cb, sizeof cb);
    return strcmp(ca, cb) == 0;
}

int cli_file_arg(const char *cmd, const char *flag, const char *value)
{
    if (!value || strncmp(value, "--", 2) != 0) return 0;
    fprintf(stderr,
            "segstream %s: %s %s: that is an option, not a file (%s needs a value; ./%s for a "
            "file of that name)\n",
            cmd, flag, value, flag, value);
    return -1;
}

int cli_parse_time(const char *s, int64_t *ms)
{
    uint64_t v;
    if (cli_parse_u64(s, &v) == 0) {
        if (v > INT64_MAX) return -1; /* would wrap to a negative time */
        *ms = (int64_t)v;
        return 0;
    }
    size_t n = strlen(s);
    if (n == 10 && s[4] == '-' && s[7] == '-') { /* a full-date alone: its midnight UTC */
        char t[32];
        snprintf(t, sizeof(t), "%sT00:00:00Z", s);
        return strm_parse_rfc3339(t, strlen(t), ms);
    }
    return strm_parse_rfc3339(s, n, ms);
}

/* Length of the valid UTF-8 sequence at p (0 when invalid). */
static size_t utf8_len(const unsigned char *p, size_t n)
{
    unsigned c = p[0];
    size_t k;
    unsigned min;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf)
        k = 2, min = 0x80;
    else if (c >= 0xe0 && c <= 0xef)
        k = 3, min = 0x800;
    else if (c >= 0xf0 && c <= 0xf4)
        k = 4, min = 0x10000;
    else
        return 0;
    if (n < k) return 0;
    unsigned v = c & (0xff >> (k + 1));
    for (size_t i = 1; i < k; i++) {
        if ((p[i] & 0xc0) != 0x80) return 0;
        v = v << 6 | (p[i] & 0x3f);
    }
    if (v < min || v > 0x10ffff || (v >= 0xd800 && v <= 0xdfff)) return 0;
    return k;
}

void cli_json_str(FILE *f, const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', f);
    for (size_t i = 0; i < n;) {
        unsigned c = p[i];
        if (c == '"' || c == '\\') {
            fputc('\\', f), fputc((int)c, f), i++;
        } else if (c < 0x20 || c == 0x7f) {
            if (c == '\n')
                fputs("\\n", f);
            else if (c == '\t')
                fputs("\\t", f);
            else
                fprintf(f, "\\u%04x", c);
            i++;
        } else {
            size_t k = utf8_len(p + i, n - i);
            if (k)
                fwrite(p + i, 1, k, f), i += k;
            else
                fputs("\\ufffd", f), i++;
        }
    }
    fputc('"', f);
}

void cli_csv_field(FILE *f, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, f);
        return;
    }
    fputc('"', f);
    for (; *s; s++) {
        if (*s == '"') fputc('"', f);
        fputc(*s, f);
    }
    fputc('"', f);
}

int cli_parse_i64(const char *s, int64_t *out)
{
    if (!s) return -1;
    const char *d = *s == '-' ? s + 1 : s;
    if (*d < '0' || *d > '9') return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

void cli_fmt_time(int64_t ms, char *buf, size_t len)
{
    time_t s = (time_t)(ms / 1000);
    struct tm tm;
    if (!gmtime_r(&s, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
        snprintf(buf, len, "%" PRId64, ms);
}

/* cli_log writes a whole line with one call, so lines from librdkafka's
 * threads do not interleave */
void cli_kafka_log(int level, const char *fac, const char *msg)
{
    int l = level <= 3 ? LOG_ERROR : level == 4 ? LOG_WARN : level <= 6 ? LOG_INFO : LOG_DEBUG;
    cli_log(l, "kafka %s: %s", fac, msg);
}
