/* tests/unit/stream/test_file.c: record framing (file.c): JSON lines with
 * blank lines, CRLF, a BOM, no final newline, over-long lines; msgpack
 * streams including records across the 1 MiB read chunks, a truncated tail,
 * an invalid byte and a corrupted stretch read past; offsets, record
 * numbers, sizes; stdin. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <unistd.h>
#include <sys/wait.h>
#include "helpers.h"

static char path[64];

static void write_file(const void *data, size_t n)
{
    strcpy(path, "/tmp/strm_test_file_XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, data, n), (ssize_t)n);
    close(fd);
}

static strm_file_t *open_it(void)
{
    char err[256];
    strm_file_t *f = strm_file_open(path, err, sizeof err);
    cr_assert_not_null(f, "%s", err);
    return f;
}

static void next_is(strm_file_t *f, const char *want)
{
    const char *rec, *why = NULL;
    size_t len;
    int r = strm_file_next(f, &rec, &len, &why);
    cr_assert_eq(r, 1, "got %d (%s), want %s", r, why ? why : "", want);
    cr_assert_eq(len, strlen(want));
    cr_assert_eq(memcmp(rec, want, len), 0, "%.*s vs %s", (int)len, rec, want);
}

static void end_is(strm_file_t *f, int want, const char *reason)
{
    const char *rec, *why = NULL;
    size_t len;
    cr_assert_eq(strm_file_next(f, &rec, &len, &why), want);
    if (reason) cr_assert_str_eq(why, reason);
}

Test(file, json_lines)
{
    const char *text = "\xEF\xBB\xBF{\"a\":1}\n\n   \n{\"b\":2}\r\n\r\n{\"c\":3}";
    write_file(text, strlen(text));
    strm_file_t *f = open_it();
    cr_assert_eq(strm_file_size(f), strlen(text));
    next_is(f, "{\"a\":1}");
    cr_assert_eq(strm_file_recno(f), 1);
    cr_assert_eq(strm_file_offset(f), 3 + 8);
    next_is(f, "{\"b\":2}");
    cr_assert_eq(strm_file_recno(f), 4, "line 4: the blank lines count");
    const char *rec, *why;
    size_t len;
    cr_assert_eq(strm_file_next(f, &rec, &len, &why), 1);
    cr_assert_eq(len, 7);
    cr_assert_eq(rec[len], 0, "JSON records are NUL-terminated");
    cr_assert_eq(strm_file_recno(f), 6);
    cr_assert_eq(strm_file_offset(f), strlen(text));
    end_is(f, 0, NULL);
    end_is(f, 0, NULL);
    strm_file_close(f);
    unlink(path);
}

Test(file, empty_and_blank_files)
{
    write_file("", 0);
    strm_file_t *f = open_it();
    end_is(f, 0, NULL);
    strm_file_close(f);
    unlink(path);
    write_file("\n\n \r\n", 5);
    f = open_it();
    end_is(f, 0, NULL);
    cr_assert_eq(strm_file_recno(f), 3); /* lines read, none a record */
    strm_file_close(f);
    unlink(path);
}

Test(file, missing_file)
{
    char err[256] = "";
    cr_assert_null(strm_file_open("/nonexistent/x.jsonl", err, sizeof err));
    cr_assert(strstr(err, "/nonexistent/x.jsonl"), "%s", err);
}

Test(file, many_lines_across_chunks)
{
    /* ~3.5 MiB of numbered lines: records straddle the 1 MiB reads */
    size_t n = 100000;
    strm_buf_t b;
    strm_buf_init(&b);
    char line[64];
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(line, sizeof line, "{\"customer_id\":\"c%zu\",\"x\":1}\n", i);
        strm_buf_append(&b, line, (size_t)k);
    }
    write_file(b.p, b.len);
    strm_file_t *f = open_it();
    const char *rec, *why;
    size_t len;
    for (size_t i = 0; i < n; i++) {
        int k = snprintf(line, sizeof line, "{\"customer_id\":\"c%zu\",\"x\":1}", i);
        cr_assert_eq(strm_file_next(f, &rec, &len, &why), 1);
        cr_assert_eq(len, (size_t)k, "line %zu", i);
        cr_assert_eq(memcmp(rec, line, len), 0, "line %zu", i);
    }
    end_is(f, 0, NULL);
    cr_assert_eq(strm_file_recno(f), n);
    cr_assert_eq(strm_file_offset(f), b.len);
    strm_file_close(f);
    strm_buf_free(&b);
    unlink(path);
}

Test(file, oversized_line_skipped)
{
    /* with a 100-byte limit: short, long (in one read), short */
    strm_buf_t b;
    strm_buf_init(&b);
    strm_buf_append(&b, "{\"a\":1}\n{\"long\":\"", 17);
    for (int i = 0; i < 500; i++) strm_buf_append(&b, "x", 1);
    strm_buf_append(&b, "\"}\n{\"b\":2}\n", 11);
    write_file(b.p, b.len);
    strm_file_t *f = open_it();
    strm_file_set_max_record(f, 100);
    next_is(f, "{\"a\":1}");
    end_is(f, -1, "oversized");
    cr_assert_eq(strm_file_recno(f), 2);
    next_is(f, "{\"b\":2}");
    cr_assert_eq(strm_file_recno(f), 3);
    end_is(f, 0, NULL);
    strm_file_close(f);
    strm_buf_free(&b);
    unlink(path);
}

Test(file, oversized_line_default_limit)
{
    /* a 17 MiB line (more than one buffer fill) between two good ones */
    size_t big = 17u << 20;
    char *d = malloc(big + 64);
    size_t n = 0;
    n += (size_t)sprintf(d, "{\"a\":1}\n");
    memset(d + n, 'y', big);
    n += big;
    d[n++] = '\n';
    n += (size_t)sprintf(d + n, "{\"b\":2}");
    write_file(d, n);
    strm_file_t *f = open_it();
    next_is(f, "{\"a\":1}");
    end_is(f, -1, "oversized");
    next_is(f, "{\"b\":2}");
    end_is(f, 0, NULL);
    cr_assert_eq(strm_file_offset(f), n);
    strm_file_close(f);
    free(d);
    unlink(path);
}

static void pack_events(strm_buf_t *b, size_t n)
{
    char json[128];
    for (size_t i = 0; i < n; i++) {
        snprintf(json, sizeof json, "{\"customer_id\":\"c%zu\",\"type\":\"page_view\",\"ts\":%zu}",
                 i, i);
        cr_assert_eq(json_to_mp(json, b), 0);
    }
}

Test(file, msgpack_stream)
{
    size_t n = 60000; /* ~2.6 MiB: records straddle the reads */
    strm_buf_t b;
    strm_buf_init(&b);
    pack_events(&b, n);
    write_file(b.p, b.len);
    strm_file_t *f = open_it();
    const char *rec, *why;
    size_t len;
    seg_event_t ev;
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(strm_file_next(f, &rec, &len, &why), 1, "record %zu", i);
        cr_assert_eq(strm_decode(rec, len, 0, &ev, &why), 0, "%s", why);
        cr_assert_eq(ev.ts, (int64_t)i);
    }
    end_is(f, 0, NULL);
    cr_assert_eq(strm_file_recno(f), n);
    cr_assert_eq(strm_file_offset(f), b.len);
    strm_file_close(f);
    strm_buf_free(&b);
    unlink(path);
}

Test(file, msgpack_truncated_tail)
{
    strm_buf_t b;
    strm_buf_init(&b);
    pack_events(&b, 3);
    size_t whole = b.len;
    pack_events(&b, 1);
    b.len -= 4; /* cut the fourth record */
    write_file(b.p, b.len);
    strm_file_t *f = open_it();
    const char *rec, *why;
    size_t len;
    for (int i = 0; i < 3; i++) cr_assert_eq(strm_file_next(f, &rec, &len, &why), 1);
    cr_assert_eq(strm_file_offset(f), whole);
    end_is(f, -1, "truncated_msgpack");
    cr_assert_eq(strm_file_recno(f), 4);
    end_is(f, 0, NULL);
    strm_file_close(f);
    strm_buf_free(&b);
    unlink(path);
}

Test(file, msgpack_malicious_and_invalid)
{
    /* a good record, then a map32 claiming 2^32 entries: framing stops */
    strm_buf_t b;
    strm_buf_init(&b);
    pack_events(&b, 1);
    strm_buf_append(&b, "\xdf\xff\xff\xff\xff\xa1x\x01", 8);
    write_file(b.p, b.len);
    strm_file_t *f = open_it();
    const char *rec, *why;
    size_t len;
    cr_assert_eq(strm_file_next(f, &rec, &len, &why), 1);
    end_is(f, -1, "truncated_msgpack");
    end_is(f, 0, NULL);
    strm_file_close(f);
    unlink(path);

    b.len = 0;
    pack_events(&b, 1);
    strm_buf_append(&b, "\x81\xa1x\xc1", 4);
    pack_events(&b, 1);
    write_file(b.p, b.len);
    f = open_it();
    cr_assert_eq(strm_file_next(f, &rec, &len, &why), 1);
    /* the bad bytes are one dead letter, and the record after them is read */
    cr_assert_eq(strm_file_next(f, &rec, &len, &why), -1);
    cr_assert_str_eq(why, "bad_msgpack");
    cr_assert_eq(len, 4);
    cr_assert_eq(memcmp(rec, "\x81\xa1x\xc1", 4), 0);
    cr_assert_eq(strm_file_next(f, &rec, &len, &why), 1);
    end_is(f, 0, NULL);
    cr_assert_eq(strm_file_recno(f), 3);
    cr_assert_eq(strm_file_offset(f), b.len);
    strm_file_close(f);
    strm_buf_free(&b);
    unlink(path);
}

/* A record that frames but is longer than the maximum: {"customer_id":"c",
 * "pad":<str32 of n bytes of 'x'>, "more":[<str16 of 300 bytes>]}. */
static void long_record(strm_buf_t *b, size_t n)
{
    strm_buf_append(b,
                    "\x83\xab"
                    "customer_id\xa1"
                    "c\xa3pad\xdb",
                    20);
    unsigned char len[4] = {(unsigned char)(n >> 24), (unsigned char)(n >> 16),
                            (unsigned char)(n >> 8), (unsigned char)n};
    strm_buf_append(b, len, 4);
    for (size_t i = 0; i < n; i++) strm_buf_append(b, "x", 1); /* each a valid fixint */
    strm_buf_append(b, "\xa4more\x91\xda\x01\x2c", 9);
    for (int i = 0; i < 300; i++) strm_buf_append(b, "y", 1);
}

/* Reads f to its end: records, and dead letters whose bytes must be
 * b[from..] in order (each reason `why`). Returns the records; *dead the
 * dead bytes, *letters (when not NULL) the dead letters. */
static int drain_n(strm_file_t *f, const strm_buf_t *b, size_t from, const char *why, size_t *dead,
                   int *letters)
{
    const char *rec, *r;
    size_t len;
    int n = 0, rc;
    *dead = 0;
    if (letters) *letters = 0;
    while ((rc = strm_file_next(f, &rec, &len, &r)) != 0) {
        if (rc == 1) {
            n++;
            continue;
        }
        cr_assert_str_eq(r, why);
        cr_assert_eq(memcmp(rec, b->p + from + *dead, len), 0, "dead bytes in order");
        *dead += len;
        if (letters) ++*letters;
    }
    return n;
}

static int drain(strm_file_t *f, const strm_buf_t *b, size_t from, const char *why, size_t *dead)
{
    return drain_n(f, b, from, why, dead, NULL);
}

/* Such a record comes back as dead letters "oversized" of at most 64 KiB
 * with its bytes (its length cannot be told from a corrupted header's), a
 * few, not one per byte of its long string (after its first 64 KiB each
 * 'x', a fixint, was framed as a record: 17.7 M dead letters), and the
 * records after it are read. Under the default limit (17 MiB, across many
 * reads) and a small one. */
Test(file, msgpack_oversized_record_comes_back_in_pieces)
{
    size_t sizes[] = {17u << 20, 5000};
    for (int t = 0; t < 2; t++) {
        strm_buf_t b;
        strm_buf_init(&b);
        pack_events(&b, 2);
        size_t at = b.len;
        long_record(&b, sizes[t]);
        size_t rec_len = b.len - at;
        pack_events(&b, 3);
        write_file(b.p, b.len);
        strm_file_t *f = open_it();
        if (t == 1) strm_file_set_max_record(f, 1000);
        size_t dead;
        cr_assert_eq(drain(f, &b, at, "oversized", &dead), 5, "case %d", t);
        cr_assert_eq(dead, rec_len, "case %d", t);
        cr_assert_leq(strm_file_recno(f), 5 + rec_len / (64 << 10) + 2, "case %d", t);
        cr_assert_eq(strm_file_offset(f), b.len);
        strm_file_close(f);
        strm_buf_free(&b);
        unlink(path);
    }
}

/* The file ends inside such a record: its bytes come back the same way. */
Test(file, msgpack_oversized_record_cut_by_the_end)
{
    strm_buf_t b;
    strm_buf_init(&b);
    pack_events(&b, 1);
    size_t at = b.len;
    long_record(&b, 5000);
    b.len -= 100;
    write_file(b.p, b.len);
    strm_file_t *f = open_it();
    strm_file_set_max_record(f, 1000);
    size_t dead;
    cr_assert_eq(drain(f, &b, at, "oversized", &dead), 1);
    cr_assert_eq(dead, b.len - at);
    cr_assert_eq(strm_file_offset(f), b.len);
    strm_file_close(f);
    strm_buf_free(&b);
    unlink(path);
}

/* A corrupted length (a str8 read as a str32) makes a record claim more
 * than the maximum, past the end of the file or (framed) over the next
 * hundred records: read past as garbage, every byte kept, and every record
 * after it is read. */
Test(file, msgpack_a_corrupted_length_loses_no_record)
{
    static const char *const lens[] = {"\x00\x10\x00\x00", "\x00\x00\x12\x34"};
    for (int t = 0; t < 2; t++) {
        strm_buf_t b;
        strm_buf_init(&b);
        pack_events(&b, 3);
        size_t at = b.len;
        strm_buf_append(&b,
                        "\x83\xab"
                        "customer_id\xdb",
                        14);
        strm_buf_append(&b, lens[t], 4); /* 1 MiB past the end; 4 660 bytes on */
        size_t junk = b.len - at;
        pack_events(&b, 1000);
        write_file(b.p, b.len);
        strm_file_t *f = open_it();
        strm_file_set_max_record(f, 1000);
        size_t dead;
        int got = drain(f, &b, at, "oversized", &dead);
        cr_assert_eq(got, 1003, "case %d: %d records, %zu dead bytes of %zu", t, got, dead, junk);
        cr_assert_eq(dead, junk, "case %d", t);
        cr_assert_eq(strm_file_offset(f), b.len);
        strm_file_close(f);
        strm_buf_free(&b);
        unlink(path);
    }
}

/* From a pipe (which cannot be read again) a record longer than the
 * maximum is read past as garbage, its bytes kept: a few dead letters, not
 * one per byte of its long string, and the records after it are read. */
Test(file, msgpack_oversized_record_from_a_pipe)
{
    strm_buf_t b;
    strm_buf_init(&b);
    pack_events(&b, 2);
    size_t at = b.len;
    long_record(&b, 200000);
    size_t rec_len = b.len - at;
    pack_events(&b, 3);
    int fds[2];
    cr_assert_eq(pipe(fds), 0);
    pid_t pid = fork();
    cr_assert_geq(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        size_t off = 0;
        while (off < b.len) {
            ssize_t w = write(fds[1], b.p + off, b.len - off);
            if (w <= 0) _exit(1);
            off += (size_t)w;
        }
        _exit(0);
    }
    close(fds[1]);
    int saved = dup(0);
    cr_assert_eq(dup2(fds[0], 0), 0);
    close(fds[0]);
    char err[64];
    strm_file_t *f = strm_file_open("-", err, sizeof err);
    cr_assert_not_null(f);
    strm_file_set_max_record(f, 1000);
    size_t dead;
    int letters;
    cr_assert_eq(drain_n(f, &b, at, "oversized", &dead, &letters), 5);
    cr_assert_eq(dead, rec_len);
    cr_assert_leq(letters, 8, "%d dead letters for one record", letters);
    strm_file_close(f);
    dup2(saved, 0);
    close(saved);
    int st;
    waitpid(pid, &st, 0);
    strm_buf_free(&b);
}

/* A corrupted header byte that claims more than the file holds (a map32 of
 * 2^32 entries in place of a fixmap): the records after it are still read,
 * the bad one is a dead letter with its bytes. */
Test(file, msgpack_a_header_claiming_too_much_is_read_past)
{
    strm_buf_t b;
    strm_buf_init(&b);
    pack_events(&b, 3);
    size_t bad_at = b.len;
    pack_events(&b, 1);
    size_t bad_len = b.len - bad_at;
    pack_events(&b, 4);
    cr_assert_eq((unsigned char)b.p[bad_at] & 0xf0, 0x80, "a fixmap");
    b.p[bad_at] = (char)0xdf;
    write_file(b.p, b.len);
    strm_file_t *f = open_it();
    const char *rec, *why;
    size_t len;
    for (int i = 0; i < 3; i++) cr_assert_eq(strm_file_next(f, &rec, &len, &why), 1);
    cr_assert_eq(strm_file_next(f, &rec, &len, &why), -1);
    cr_assert_str_eq(why, "truncated_msgpack");
    cr_assert_eq(len, bad_len);
    cr_assert_eq(memcmp(rec, b.p + bad_at, len), 0);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(strm_file_next(f, &rec, &len, &why), 1, "record %d", i);
    end_is(f, 0, NULL);
    strm_file_close(f);
    strm_buf_free(&b);
    unlink(path);
}

/* Garbage between records (a corrupted stretch of a file): every byte of it
 * comes back in dead letters of at most 64 KiB, and every record after it is
 * read; a record cut short at the end comes back with its bytes. */
Test(file, msgpack_garbage_is_reported_and_reading_goes_on)
{
    strm_buf_t b;
    strm_buf_init(&b);
    pack_events(&b, 2);
    size_t good = b.len;
    for (size_t i = 0; i < 200000; i++) { /* never a map that starts an event */
        char c = (char)(0xc1 ^ (i % 7 ? 0 : 0x40));
        strm_buf_append(&b, &c, 1);
    }
    size_t junk = b.len - good;
    pack_events(&b, 3);
    size_t whole = b.len;
    pack_events(&b, 1);
    b.len -= 3;
    write_file(b.p, b.len);
    strm_file_t *f = open_it();
    const char *rec, *why;
    size_t len, dead = 0;
    int records = 0, letters = 0, r;
    while ((r = strm_file_next(f, &rec, &len, &why)) != 0) {
        if (r == 1) {
            records++;
            continue;
        }
        if (strcmp(why, "truncated_msgpack") == 0) {
            cr_assert_eq(len, b.len - whole);
            cr_assert_eq(memcmp(rec, b.p + whole, len), 0);
            continue;
        }
        cr_assert_str_eq(why, "bad_msgpack");
        cr_assert_leq(len, 64 << 10);
        cr_assert_eq(memcmp(rec, b.p + good + dead, len), 0);
        dead += len;
        letters++;
    }
    cr_assert_eq(records, 5);
    cr_assert_eq(dead, junk);
    cr_assert_geq(letters, 4);
    cr_assert_eq(strm_file_offset(f), b.len);
    strm_file_close(f);
    strm_buf_free(&b);
    unlink(path);
}

Test(file, stdin_dash)
{
    const char *text = "{\"a\":1}\n{\"b\":2}\n";
    write_file(text, strlen(text));
    cr_assert_not_null(freopen(path, "r", stdin));
    char err[64];
    strm_file_t *f = strm_file_open("-", err, sizeof err);
    cr_assert_not_null(f);
    next_is(f, "{\"a\":1}");
    next_is(f, "{\"b\":2}");
    end_is(f, 0, NULL);
    strm_file_close(f);
    cr_assert_neq(fcntl(0, F_GETFD), -1, "stdin left open");
    unlink(path);
}
