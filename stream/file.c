/* stream/file.c: record framing for input files: JSON lines or a stream of
 * msgpack maps, told apart by the first byte. Reads in big chunks (1 MiB)
 * into one growing buffer (at most max record + a chunk) and hands out
 * records in place: no per-record syscall, no per-record allocation. Owns
 * the buffer and the descriptor ("-" is stdin, which it never closes).
 * Never decodes a record: that is strm_decode's job.
 *
 * The first byte tells the two apart unless the caller says which
 * (strm_file_framing): a stray byte at the start of a msgpack stream, or a
 * first JSON line starting with a byte that opens a msgpack map, would
 * otherwise frame the whole file the wrong way.
 * JSON lines: '\n' ends a record, a trailing '\r' is stripped, blank lines
 * are skipped, a UTF-8 BOM at the start of the file is skipped, the last
 * line needs no newline. A line longer than the maximum (16 MiB) is
 * reported once as -1 "oversized" and skipped; reading goes on. Records are
 * NUL-terminated in place.
 * msgpack: each record is framed by walking its structure with the
 * bounds-checked cursor (strm__mp_skip). An invalid byte is -1
 * "bad_msgpack" with the bytes from it to the next place a record can start
 * (a non-empty map whose first key is a string, that frames or may once more
 * bytes come; at most 64 KiB a dead letter), and reading goes on there:
 * nothing is dropped unreported. A record whose end lies past the end of
 * the file is -1 "truncated_msgpack" the same way (its header may be the
 * corrupted byte). A record longer than the maximum is read past the same
 * way, as -1 "oversized" dead letters with its bytes (read_past_long). */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "stream/codec_int.h"

#define CHUNK      (1u << 20)
#define MAX_RECORD (16u << 20)
#define SKIP_MAX   (64u << 10) /* bytes skipped per dead letter when resynchronising */

struct strm_file {
    int fd, own_fd;
    int msgpack, forced; /* forced: -1 told by the first byte, else msgpack's value */
    int err;             /* errno of the read that failed ("read_error") */
    int eof, stopped, discard, started;
    int after_long; /* an over-long msgpack record is being read past */
    char *buf;
    size_t cap, limit, start, end, scan; /* data is buf[start, end) */
    size_t max_rec;
    uint64_t recno, offset, size;
};

strm_file_t *strm_file_open(const char *path, char *err, size_t errlen)
{
    strm_file_t *f = calloc(1, sizeof *f);
    if (!f) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    if (strcmp(path, "-") == 0) {
        f->fd = STDIN_FILENO;
    } else {
        f->fd = open(path, O_RDONLY | O_CLOEXEC);
        if (f->fd < 0) {
            snprintf(err, errlen, "%s: %s", path, strerror(errno));
            goto fail;
        }
        f->own_fd = 1;
    }
    struct stat st;
    if (fstat(f->fd, &st) == 0 && S_ISREG(st.st_mode)) {
        f->size = (uint64_t)st.st_size;
#ifdef POSIX_FADV_SEQUENTIAL
        posix_fadvise(f->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
#endif
    }
    f->forced = -1;
    f->max_rec = MAX_RECORD;
    f->limit = f->max_rec + CHUNK + 1;
    f->cap = CHUNK + 1;
    f->buf = malloc(f->cap);
    if (!f->buf) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto fail;
    }
    return f;
fail:
    if (f->own_fd) close(f->fd);
    free(f);
    return NULL;
}

void strm_file_set_max_record(strm_file_t *f, size_t max)
{
    f->max_rec = max ? max : MAX_RECORD;
    f->limit = f->max_rec + CHUNK + 1;
    if (f->limit < f->cap) f->limit = f->cap;
}

void strm_file_close(strm_file_t *f)
{
    if (!f) return;
    if (f->own_fd) close(f->fd);
    free(f->buf);
    free(f);
}

uint64_t strm_file_recno(const strm_file_t *f)
{
    return f->recno;
}

uint64_t strm_file_offset(const strm_file_t *f)
{
    return f->offset;
}

uint64_t strm_file_size(const strm_file_t *f)
{
    return f->size;
}

/* Reads more input after the data held. 0, or -1 on a read error. */
static int fill(strm_file_t *f)
{
    if (f->start > 0 && f->cap - f->end < CHUNK + 1) {
        memmove(f->buf, f->buf + f->start, f->end - f->start);
        f->end -= f->start;
        f->scan -= f->start;
        f->start = 0;
    }
    if (f->cap - f->end < CHUNK + 1 && f->cap < f->limit) {
        size_t cap = f->cap * 2;
        if (cap < f->end + CHUNK + 1) cap = f->end + CHUNK + 1;
        if (cap > f->limit) cap = f->limit;
        char *p = realloc(f->buf, cap);
        if (!p) return f->err = ENOMEM, -1;
        f->buf = p;
        f->cap = cap;
    }
    if (f->cap - f->end < 2) return f->err = ENOBUFS, -1; /* cannot happen: records are bounded */
    ssize_t r;
    do {
        r = read(f->fd, f->buf + f->end, f->cap - f->end - 1);
    } while (r < 0 && errno == EINTR);
    if (r < 0) return f->err = errno, -1;
    if (r == 0) f->eof = 1;
    f->end += (size_t)r;
    return 0;
}

static int fail(strm_file_t *f, const char **reason, const char *why)
{
    f->stopped = 1;
    *reason = why;
    return -1;
}

static int blank(const char *s, size_t n)
{
    for (size_t k = 0; k < n; k++)
        if (s[k] != ' ' && s[k] != '\t' && s[k] != '\r') return 0;
    return 1;
}

static int next_line(strm_file_t *f, const char **rec, size_t *len, const char **reason)
{
    for (;;) {
        if (f->discard) { /* the rest of an oversized line */
            char *nl = memchr(f->buf + f->start, '\n', f->end - f->start);
            if (nl) {
                size_t used = (size_t)(nl + 1 - (f->buf + f->start));
                f->offset += used;
                f->start += used;
                f->scan = f->start;
                f->discard = 0;
                continue;
            }
            f->offset += f->end - f->start;
            f->start = f->end = f->scan = 0;
            if (f->eof) return 0;
            if (fill(f) < 0) return fail(f, reason, "read_error");
            continue;
        }
        char *nl = memchr(f->buf + f->scan, '\n', f->end - f->scan);
        size_t n;
        if (nl) {
            n = (size_t)(nl - (f->buf + f->start));
        } else if (f->eof) {
            if (f->start == f->end) return 0;
            n = f->end - f->start;
        } else {
            f->scan = f->end;
            if (f->end - f->start > f->max_rec) {
                f->recno++;
                f->offset += f->end - f->start;
                f->start = f->end = f->scan = 0;
                f->discard = 1;
                *reason = "oversized";
                return -1;
            }
            if (fill(f) < 0) return fail(f, reason, "read_error");
            continue;
        }
        char *line = f->buf + f->start;
        size_t used = n + (nl != NULL);
        f->start += used;
        f->scan = f->start;
        f->offset += used;
        if (n > f->max_rec) {
            f->recno++;
            *reason = "oversized";
            return -1;
        }
        if (n && line[n - 1] == '\r') n--;
        f->recno++; /* a line's number, blank lines counted: what an editor shows */
        if (blank(line, n)) continue;
        line[n] = 0;
        *rec = line;
        *len = n;
        return 1;
    }
}

/* Could an event begin at p (n bytes held)? A non-empty map whose first
 * key is a string, and which frames, or may once more bytes come. */
static int can_begin(const uint8_t *p, size_t n)
{
    size_t key = p[0] >= 0x81 && p[0] <= 0x8f ? 1 : p[0] == 0xde ? 3 : p[0] == 0xdf ? 5 : 0;
    if (!key) return 0;
    if (n <= key) return 1; /* too few bytes to tell: try it */
    if (key == 3 && p[1] == 0 && p[2] == 0) return 0;
    if (key == 5 && !(p[1] | p[2] | p[3] | p[4])) return 0;
    uint8_t k = p[key];
    if (!((k >= 0xa1 && k <= 0xbf) || k == 0xd9 || k == 0xda)) return 0;
    size_t used;
    return strm__mp_skip(p, n, &used) >= 0;
}

/* Skips from f->start to the next place an event can begin (at most
 * SKIP_MAX on: a longer run is several dead letters, each small enough for
 * a dead-letter topic), or to the end of the file: -1 with those bytes as
 * the record and `why`. */
static int resync(strm_file_t *f, const char **rec, size_t *len, const char **reason,
                  const char *why)
{
    size_t k = 1;
    for (;;) {
        size_t have = f->end - f->start;
        if (k >= have && !f->eof && have <= f->max_rec) {
            if (fill(f) < 0) return fail(f, reason, "read_error");
            continue;
        }
        if (k >= have || k >= SKIP_MAX ||
            can_begin((const uint8_t *)f->buf + f->start + k, have - k))
            break;
        k++;
    }
    if (k > f->end - f->start) k = f->end - f->start;
    *rec = f->buf + f->start;
    *len = k;
    f->start += k;
    f->offset += k;
    f->recno++;
    *reason = why;
    return -1;
}

/* A record longer than the maximum. Its length may be a corrupted header
 * byte (a str8 read as a str32 claims up to 4 GiB, and the walk may even
 * end where a record seems to begin), so it is never trusted to drop bytes:
 * the record is read past as garbage, dead letters "oversized" of at most
 * 64 KiB with their bytes, and the records after it are read. (It used to
 * be dropped whole, or after its first 64 KiB framed a byte at a time.) */
static int read_past_long(strm_file_t *f, const char **rec, size_t *len, const char **reason)
{
    f->after_long = 1;
    return resync(f, rec, len, reason, "oversized");
}

static int next_msgpack(strm_file_t *f, const char **rec, size_t *len, const char **reason)
{
    for (;;) {
        size_t have = f->end - f->start, used;
        if (have == 0) {
            if (f->eof) return 0;
            if (fill(f) < 0) return fail(f, reason, "read_error");
            continue;
        }
        int r = strm__mp_skip((const uint8_t *)f->buf + f->start, have, &used);
        /* the rest of an over-long record: its body frames as values (a long
         * string's bytes are fixints), read past as garbage too until a
         * record begins again */
        if (r == 0 && f->after_long) {
            if (!can_begin((const uint8_t *)f->buf + f->start, have))
                return resync(f, rec, len, reason, "oversized");
            f->after_long = 0;
        }
        if (r == 0) {
            if (used > f->max_rec) return read_past_long(f, rec, len, reason);
            *rec = f->buf + f->start;
            *len = used;
            f->start += used;
            f->offset += used;
            f->recno++;
            return 1;
        }
        if (r < 0) return resync(f, rec, len, reason, "bad_msgpack");
        /* cut short by the end of the file, or longer than may be held: its
         * header may be a corrupted byte too, so the records after it are
         * looked for (a record really cut short at the end finds none) */
        if (f->eof) return resync(f, rec, len, reason, "truncated_msgpack");
        if (have > f->max_rec) return read_past_long(f, rec, len, reason);
        if (fill(f) < 0) return fail(f, reason, "read_error");
    }
}

int strm_file_errno(const strm_file_t *f)
{
    return f->err;
}

void strm_file_framing(strm_file_t *f, int msgpack)
{
    f->forced = msgpack < 0 ? -1 : msgpack != 0;
}

int strm_file_next(strm_file_t *f, const char **rec, size_t *len, const char **reason)
{
    *rec = NULL; /* an error below may have no bytes to show */
    *len = 0;
    if (f->stopped) return 0;
    if (!f->started) {
        while (f->end - f->start < 3 && !f->eof)
            if (fill(f) < 0) return fail(f, reason, "read_error");
        f->started = 1;
        if (f->end > f->start) {
            unsigned char c = (unsigned char)f->buf[f->start];
            f->msgpack =
                f->forced >= 0 ? f->forced : (c >= 0x80 && c <= 0x8f) || c == 0xde || c == 0xdf;
            if (!f->msgpack && f->end - f->start >= 3 &&
                memcmp(f->buf + f->start, "\xEF\xBB\xBF", 3) == 0) {
                f->start += 3;
                f->scan = f->start;
                f->offset = 3;
            }
        }
    }
    return f->msgpack ? next_msgpack(f, rec, len, reason) : next_line(f, rec, len, reason);
}
