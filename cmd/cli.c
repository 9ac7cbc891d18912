/* cmd/cli.c: logging, clocks and argument parsing shared by the subcommands.
 * Log lines go to stderr, one event per line, with a level. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
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

int cli_parse_u64(const char *s, uint64_t *out)
{
    if (!s || !*s || *s == '-') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int cli_parse_time(const char *s, int64_t *ms)
{
    uint64_t v;
    if (cli_parse_u64(s, &v) == 0) {
        *ms = (int64_t)v;
        return 0;
    }
    return strm_parse_rfc3339(s, strlen(s), ms);
}
