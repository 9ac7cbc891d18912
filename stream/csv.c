/* stream/csv.c: the CSV reader (RFC 4180) and the time formats CSV exports
 * use. Reads in 1 MiB chunks into one growing buffer (at most the maximum
 * record + a chunk) and hands out each record's fields in place: a field
 * points into the buffer unless it needed unescaping ("" inside quotes, or
 * text after a closing quote), then into a side buffer. Owns the buffers
 * and the descriptor ("-" is stdin, which it never closes). Never maps a
 * field to anything: that is csv_map.c's job.
 *
 * Decisions (RFC 4180 leaves them open or is stricter):
 *  - A quote is special only at the start of a field, after any blanks
 *    (`a, "b" ,c` has the field `b`, as Python's csv reads it with
 *    skipinitialspace); `ab"c` is literal. Text after a closing quote is
 *    kept, blanks there are not (`"ab"c` is `abc`). Inside quotes the
 *    delimiter, CR and LF are data.
 *  - A record ends at LF or CRLF outside quotes; a lone CR is data. The
 *    last record needs no line end. A UTF-8 BOM at the start is skipped.
 *  - Blank lines (and, with a delimiter, lines of only spaces/tabs) are not
 *    records. Records may have any number of fields; the mapping decides
 *    what a short row means.
 *  - A quote never closed, or a record longer than the maximum, is one bad
 *    record covering the line where it began; reading goes on at the next
 *    line, so one stray quote costs one row, not the rest of the file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "stream/csv.h"

#define CHUNK      (1u << 20)
#define MAX_RECORD (1u << 20)
#define RAW_MAX    4096
#define TS_MAX_MS  253402300799999LL /* 9999-12-31T23:59:59.999Z */

struct strm_csv {
    int fd, own_fd;
    int delim;
    int eof, started, discard, stopped;
    char *buf;
    size_t cap, limit, start, end; /* data is buf[start, end) */
    size_t max_rec;
    uint64_t line, next_line, offset, size;
    strm_csv_field_t *f;
    size_t *soff; /* side-buffer offset of field k when f[k].s is NULL */
    size_t nf, fcap;
    char *side;
    size_t side_len, side_cap;
    const char *raw;
    size_t raw_len;
};

static strm_csv_t *alloc_reader(int delim)
{
    strm_csv_t *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->fd = -1;
    r->delim = delim;
    r->max_rec = MAX_RECORD;
    r->limit = r->max_rec + CHUNK + 1;
    r->next_line = 1;
    return r;
}

strm_csv_t *strm_csv_open(const char *path, int delim, char *err, size_t errlen)
{
    strm_csv_t *r = alloc_reader(delim);
    if (!r) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (strcmp(path, "-") == 0) {
        r->fd = STDIN_FILENO;
    } else {
        r->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (r->fd < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            free(r);
            return NULL;
        }
        r->own_fd = 1;
    }
    struct stat st;
    if (fstat(r->fd, &st) == 0 && S_ISREG(st.st_mode)) {
        r->size = (uint64_t)st.st_size;
#ifdef POSIX_FADV_SEQUENTIAL
        posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    }
    r->cap = CHUNK + 1;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        strm_csv_close(r);
        return NULL;
    }
    return r;
}

strm_csv_t *strm_csv_open_mem(const void *data, size_t len, int delim)
{
    strm_csv_t *r = alloc_reader(delim);
    if (!r) return NULL;
    r->cap = len + 1;
    r->buf = malloc(r->cap);
    if (!r->buf) {
        free(r);
        return NULL;
    }
    if (len) memcpy(r->buf, data, len);
    r->end = len;
    r->size = len;
    r->eof = 1; /* everything is held already: fill() never reads */
    return r;
}

void strm_csv_close(strm_csv_t *r)
{
    if (!r) return;
    if (r->own_fd) close(r->fd);
    free(r->buf);
    free(r->f);
    free(r->soff);
    free(r->side);
    free(r);
}

void strm_csv_set_max_record(strm_csv_t *r, size_t max)
{
    r->max_rec = max ? max : MAX_RECORD;
    r->limit = r->max_rec + CHUNK + 1;
    if (r->limit < r->cap) r->limit = r->cap;
}

void strm_csv_raw(const strm_csv_t *r, const char **raw, size_t *len)
{
    *raw = r->raw;
    *len = r->raw_len;
}

uint64_t strm_csv_line(const strm_csv_t *r)
{
    return r->line;
}

uint64_t strm_csv_offset(const strm_csv_t *r)
{
    return r->offset;
}

uint64_t strm_csv_size(const strm_csv_t *r)
{
    return r->size;
}

/* Reads more input after the data held. 0, or -1 on a read error. */
static int fill(strm_csv_t *r)
{
    if (r->fd < 0) {
        r->eof = 1;
        return 0;
    }
    if (r->start > 0 && r->cap - r->end < CHUNK + 1) {
        memmove(r->buf, r->buf + r->start, r->end - r->start);
        r->end -= r->start;
        r->start = 0;
    }
    if (r->cap - r->end < CHUNK + 1 && r->cap < r->limit) {
        size_t cap = r->cap * 2;
        if (cap < r->end + CHUNK + 1) cap = r->end + CHUNK + 1;
        if (cap > r->limit) cap = r->limit;
        char *p = realloc(r->buf, cap);
        if (!p) return -1;
        r->buf = p;
        r->cap = cap;
    }
    if (r->cap - r->end < 2) return -1; /* cannot happen: records are bounded */
    ssize_t got;
    do {
        got = read(r->fd, r->buf + r->end, r->cap - r->end - 1);
    } while (got < 0 && errno == EINTR);
    if (got < 0) return -1;
    if (got == 0) r->eof = 1;
    r->end += (size_t)got;
    return 0;
}

static int grow_fields(strm_csv_t *r)
{
    size_t cap = r->fcap ? r->fcap * 2 : 32;
    strm_csv_field_t *f = realloc(r->f, cap * sizeof *f);
    if (!f) return -1;
    r->f = f;
    size_t *so = realloc(r->soff, cap * sizeof *so);
    if (!so) return -1;
    r->soff = so;
    r->fcap = cap;
    return 0;
}

static int side_append(strm_csv_t *r, const char *s, size_t n)
{
    if (r->side_cap - r->side_len < n) {
        size_t cap = r->side_cap ? r->side_cap : 256;
        while (cap - r->side_len < n) cap *= 2;
        char *p = realloc(r->side, cap);
        if (!p) return -1;
        r->side = p;
        r->side_cap = cap;
    }
    memcpy(r->side + r->side_len, s, n);
    r->side_len += n;
    return 0;
}

enum { P_DONE, P_MORE, P_UNTERM, P_NOMEM };

static inline int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Parses the record at buf[start, end). P_DONE with the fields (f[k].s
 * NULL for side-buffer fields) and *used (line end included); P_MORE when
 * the record may go on past the data held; P_UNTERM at the end of input
 * inside quotes. */
static int parse(strm_csv_t *r, size_t *used)
{
    const char *p = r->buf + r->start;
    size_t n = r->end - r->start, i = 0;
    int ws = r->delim == STRM_CSV_WHITESPACE, eof = r->eof;
    char d = ws ? 0 : (char)r->delim;
    size_t nl = 0; /* the next '\n' at or after i (n: none), found lazily */
    int nl_known = 0;
    r->nf = 0;
    r->side_len = 0;
    for (;;) {
        if (ws) {
            while (i < n && (is_blank(p[i]) || p[i] == '\r')) i++;
            if (i == n) {
                if (!eof) return P_MORE;
                break;
            }
            if (p[i] == '\n') {
                i++;
                break;
            }
        }
        if (r->nf == r->fcap && grow_fields(r) < 0) return P_NOMEM;
        strm_csv_field_t *f = &r->f[r->nf];
        if (!ws) { /* `a, "b"`: blanks before a quote are not part of the value */
            size_t k = i;
            while (k < n && is_blank(p[k])) k++;
            if (k == n && k > i && !eof) return P_MORE;
            if (k < n && p[k] == '"') i = k;
        }
        if (i < n && p[i] == '"') {
            size_t seg = ++i, side0 = r->side_len;
            int copy = 0;
            for (;;) {
                const char *q = memchr(p + i, '"', n - i);
                if (!q) return eof ? P_UNTERM : P_MORE;
                size_t j = (size_t)(q - p);
                if (j + 1 == n && !eof) return P_MORE; /* "" split by the chunk? */
                if (j + 1 < n && p[j + 1] == '"') {
                    if (side_append(r, p + seg, j + 1 - seg) < 0) return P_NOMEM;
                    copy = 1;
                    i = seg = j + 2;
                    continue;
                }
                i = j + 1;
                size_t k = i; /* text after the closing quote, up to the field's end */
                while (k < n && p[k] != '\n' && (ws ? !is_blank(p[k]) : p[k] != d)) k++;
                if (k == n && !eof) return P_MORE;
                size_t tail = k;
                while (tail > i && (is_blank(p[tail - 1]) || p[tail - 1] == '\r')) tail--;
                if (tail > i || copy) {
                    if (side_append(r, p + seg, j - seg) < 0 || side_append(r, p + i, tail - i) < 0)
                        return P_NOMEM;
                    f->s = NULL;
                    r->soff[r->nf] = side0;
                    f->len = r->side_len - side0;
                } else {
                    f->s = p + seg;
                    f->len = j - seg;
                }
                i = k;
                break;
            }
        } else {
            size_t k = i;
            if (ws) {
                while (k < n && p[k] != '\n' && !is_blank(p[k])) k++;
            } else {
                if (!nl_known || nl < i) {
                    const char *q = memchr(p + i, '\n', n - i);
                    nl = q ? (size_t)(q - p) : n;
                    nl_known = 1;
                }
                size_t e = nl;
                const char *dq = memchr(p + i, d, e - i);
                k = dq ? (size_t)(dq - p) : e;
            }
            if (k == n && !eof) return P_MORE;
            size_t e = k;
            if (e > i && p[e - 1] == '\r' && (ws || k == n || p[k] == '\n')) e--;
            f->s = p + i;
            f->len = e - i;
            i = k;
        }
        r->nf++;
        if (i == n) break;
        if (p[i] == '\n') {
            i++;
            break;
        }
        if (!ws) i++; /* the delimiter; in ws mode the blanks are skipped above */
    }
    *used = i;
    for (size_t k = 0; k < r->nf; k++)
        if (!r->f[k].s) r->f[k].s = r->side + r->soff[k];
    return P_DONE;
}

static int blank_record(const strm_csv_t *r)
{
    if (r->nf == 0) return 1;
    if (r->nf > 1) return 0;
    const strm_csv_field_t *f = &r->f[0];
    if (f->s < r->buf || f->s >= r->buf + r->end) return 0; /* was quoted: "" is a value */
    if (f->s > r->buf + r->start && f->s[-1] == '"') return 0;
    for (size_t k = 0; k < f->len; k++)
        if (!is_blank(f->s[k]) && f->s[k] != '\r') return 0;
    return 1;
}

static uint64_t count_nl(const char *p, size_t n)
{
    uint64_t c = 0;
    for (const char *q = p, *e = p + n; (q = memchr(q, '\n', (size_t)(e - q))); q++) c++;
    return c;
}

/* The record that began at start cannot be read: it is its first line. */
static int bad_record(strm_csv_t *r, const char **reason, const char *why)
{
    char *p = r->buf + r->start;
    size_t n = r->end - r->start;
    char *nl = memchr(p, '\n', n);
    size_t len = nl ? (size_t)(nl - p) : n;
    size_t used = nl ? len + 1 : n;
    r->line = r->next_line;
    r->next_line += nl != NULL;
    if (!nl && !r->eof) r->discard = 1; /* the line goes on: skip the rest */
    if (len && p[len - 1] == '\r') len--;
    r->raw = p;
    r->raw_len = len < RAW_MAX ? len : RAW_MAX;
    r->start += used;
    r->offset += used;
    *reason = why;
    return -1;
}

/* Reading cannot go on (a read error, no memory): -1 once, then the end. */
static int stop(strm_csv_t *r, const char **reason, const char *why)
{
    r->stopped = 1;
    r->raw = NULL;
    r->raw_len = 0;
    *reason = why;
    return -1;
}

int strm_csv_next(strm_csv_t *r, const strm_csv_field_t **fields, size_t *n, const char **reason)
{
    if (r->stopped) return 0;
    if (!r->started) {
        while (r->end - r->start < 3 && !r->eof)
            if (fill(r) < 0) return stop(r, reason, "read_error");
        r->started = 1;
        if (r->end - r->start >= 3 && memcmp(r->buf + r->start, "\xEF\xBB\xBF", 3) == 0) {
            r->start += 3;
            r->offset = 3;
        }
    }
    for (;;) {
        if (r->discard) {
            char *nl = memchr(r->buf + r->start, '\n', r->end - r->start);
            if (nl) {
                size_t used = (size_t)(nl + 1 - (r->buf + r->start));
                r->start += used;
                r->offset += used;
                r->next_line++;
                r->discard = 0;
                continue;
            }
            r->offset += r->end - r->start;
            r->start = r->end = 0;
            if (r->eof) return 0;
            if (fill(r) < 0) return stop(r, reason, "read_error");
            continue;
        }
        if (r->start == r->end) {
            if (r->eof) return 0;
            if (fill(r) < 0) return stop(r, reason, "read_error");
            continue;
        }
        size_t used = 0;
        int st = parse(r, &used);
        if (st == P_NOMEM) return stop(r, reason, "out_of_memory");
        if (st == P_MORE) {
            if (r->end - r->start > r->max_rec) return bad_record(r, reason, "csv_oversized");
            if (fill(r) < 0) return stop(r, reason, "read_error");
            continue;
        }
        if (st == P_UNTERM) return bad_record(r, reason, "csv_unterminated_quote");
        if (used > r->max_rec) return bad_record(r, reason, "csv_oversized");
        const char *p = r->buf + r->start;
        r->line = r->next_line;
        r->next_line += count_nl(p, used);
        int blank = blank_record(r);
        r->start += used;
        r->offset += used;
        if (blank) continue;
        size_t len = used;
        if (len && p[len - 1] == '\n') len--;
        if (len && p[len - 1] == '\r') len--;
        r->raw = p;
        r->raw_len = len;
        *fields = r->f;
        *n = r->nf;
        return 1;
    }
}

/* ---------- time values ---------- */

int strm_csv_ts_format(const char *name, size_t len, strm_ts_format_t *fmt)
{
    static const struct {
        const char *name;
        strm_ts_format_t fmt;
    } names[] = {{"ms", STRM_TS_MS},   {"s", STRM_TS_S},          {"us", STRM_TS_US},
                 {"iso", STRM_TS_ISO}, {"rfc3339", STRM_TS_ISO},  {"dmy", STRM_TS_DMY},
                 {"mdy", STRM_TS_MDY}, {"yyyymmdd", STRM_TS_YMD8}};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
        if (strlen(names[i].name) == len && memcmp(names[i].name, name, len) == 0) {
            *fmt = names[i].fmt;
            return 0;
        }
    return -1;
}

static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* min..max digits at s[*i]; advances *i. */
static int digits(const char *s, size_t n, size_t *i, int min, int max, int *out)
{
    int v = 0, k = 0;
    while (*i < n && k < max && s[*i] >= '0' && s[*i] <= '9') {
        v = v * 10 + (s[*i] - '0');
        (*i)++;
        k++;
    }
    if (k < min) return -1;
    *out = v;
    return 0;
}

/* An optional zone at s[i..n) that must end the value: blanks, then Z,
 * UTC, GMT, or +hh[:mm] / +hhmm. *off in minutes east of UTC. */
static int zone(const char *s, size_t n, size_t i, int *off, int *given)
{
    *given = 0;
    while (i < n && s[i] == ' ') i++;
    if (i == n) return 0;
    *given = 1;
    *off = 0;
    if (n - i == 1 && (s[i] == 'Z' || s[i] == 'z')) return 0;
    if (n - i == 3 && (memcmp(s + i, "UTC", 3) == 0 || memcmp(s + i, "GMT", 3) == 0)) return 0;
    if (s[i] != '+' && s[i] != '-') return -1;
    int sign = s[i] == '-' ? -1 : 1, h, m = 0;
    i++;
    if (digits(s, n, &i, 2, 2, &h) < 0) return -1;
    if (i < n && s[i] == ':') i++;
    if (i < n && digits(s, n, &i, 2, 2, &m) < 0) return -1;
    if (i != n || h > 23 || m > 59) return -1;
    *off = sign * (h * 60 + m);
    return 0;
}

static int valid_date(int y, int m, int d)
{
    static const int mdays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (y < 1 || m < 1 || m > 12 || d < 1) return 0;
    int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return d <= mdays[m - 1] + (m == 2 && leap);
}

/* [sep HH:MM[:SS[.fff]]] [zone] from s[i]: the time of day in ms, and the
 * zone offset. */
static int time_of_day(const char *s, size_t n, size_t i, int iso, int64_t *tod, int *off,
                       int *given)
{
    int h = 0, mi = 0, sec = 0, frac = 0;
    size_t k = i;
    while (k < n && (s[k] == ' ' || (iso && k == i && (s[k] == 'T' || s[k] == 't')))) k++;
    if (k > i && k < n && s[k] >= '0' && s[k] <= '9') {
        i = k;
        if (digits(s, n, &i, 1, 2, &h) < 0 || i >= n || s[i] != ':') return -1;
        i++;
        if (digits(s, n, &i, 2, 2, &mi) < 0) return -1;
        if (i < n && s[i] == ':') {
            i++;
            if (digits(s, n, &i, 2, 2, &sec) < 0) return -1;
            if (i < n && (s[i] == '.' || s[i] == ',')) {
                size_t f0 = ++i;
                for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
                    if (i - f0 < 3) frac = frac * 10 + (s[i] - '0');
                if (i == f0) return -1;
                for (size_t f = i - f0; f < 3; f++) frac *= 10;
            }
        }
        if (h > 23 || mi > 59 || sec > 60) return -1;
    }
    if (zone(s, n, i, off, given) < 0) return -1;
    *tod = ((int64_t)h * 3600 + mi * 60 + sec) * 1000 + frac;
    return 0;
}

/* digits[.digits] scaled: the value times `mul` divided by `div`, in ms. */
static int epoch(const char *s, size_t n, int64_t mul, int64_t div, int64_t *ms)
{
    size_t i = 0;
    int64_t v = 0;
    if (n == 0) return -1;
    for (; i < n && s[i] >= '0' && s[i] <= '9'; i++) {
        if (i >= 18) return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (i == 0) return -1;
    int64_t frac = 0, scale = 1;
    if (i < n && s[i] == '.') {
        size_t f0 = ++i;
        for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
            if (i - f0 < 6) frac = frac * 10 + (s[i] - '0'), scale *= 10;
        if (i == f0) return -1;
    }
    if (i != n) return -1;
    if (mul > 1 && v > TS_MAX_MS / mul) return -1;
    int64_t t = v * mul / div + frac * mul / scale / div;
    if (t < 0 || t > TS_MAX_MS) return -1;
    *ms = t;
    return 0;
}

int strm_csv_parse_time(const char *s, size_t n, strm_ts_format_t fmt, int tz_min, int64_t *ms)
{
    int y, m, d, off = 0, given = 0;
    size_t i = 0;
    int64_t tod = 0;
    switch (fmt) {
    case STRM_TS_MS:
        return epoch(s, n, 1, 1, ms);
    case STRM_TS_S:
        return epoch(s, n, 1000, 1, ms);
    case STRM_TS_US:
        return epoch(s, n, 1, 1000, ms);
    case STRM_TS_YMD8:
        if (n != 8 || digits(s, n, &i, 8, 8, &y) < 0) return -1;
        d = y % 100;
        m = y / 100 % 100;
        y /= 10000;
        break;
    case STRM_TS_ISO:
        if (digits(s, n, &i, 4, 4, &y) < 0 || i >= n || (s[i] != '-' && s[i] != '/')) return -1;
        {
            char sep = s[i++];
            if (digits(s, n, &i, 1, 2, &m) < 0 || i >= n || s[i++] != sep) return -1;
        }
        if (digits(s, n, &i, 1, 2, &d) < 0) return -1;
        if (time_of_day(s, n, i, 1, &tod, &off, &given) < 0) return -1;
        break;
    case STRM_TS_DMY:
    case STRM_TS_MDY: {
        int a, b;
        if (digits(s, n, &i, 1, 2, &a) < 0 || i >= n) return -1;
        char sep = s[i++];
        if (sep != '/' && sep != '-' && sep != '.') return -1;
        if (digits(s, n, &i, 1, 2, &b) < 0 || i >= n || s[i++] != sep) return -1;
        if (digits(s, n, &i, 4, 4, &y) < 0) return -1;
        d = fmt == STRM_TS_DMY ? a : b;
        m = fmt == STRM_TS_DMY ? b : a;
        if (time_of_day(s, n, i, 0, &tod, &off, &given) < 0) return -1;
        break;
    }
    default:
        return -1;
    }
    if (!valid_date(y, m, d)) return -1;
    if (!given) off = tz_min;
    int64_t t = days_from_civil(y, m, d) * 86400000LL + tod - (int64_t)off * 60000;
    if (t < 0 || t > TS_MAX_MS) return -1;
    *ms = t;
    return 0;
}
