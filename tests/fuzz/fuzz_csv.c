/* tests/fuzz/fuzz_csv.c: fuzzes the CSV input (stream/csv.c, csv_map.c).
 * The first line of an input is a mapping spec, the rest a CSV file. The
 * reader runs over the bytes with each delimiter (every field inside the
 * input, lines counting up); the spec either fails with a message or
 * parses; a source that opens turns every row into an event that decodes
 * as a contract event (or fails only as missing_amount: a purchase with no
 * amount mapped) or into a dead letter with a reason and the row's bytes;
 * every time format either fails or gives a time in 1970..9999. A plain
 * main replays the corpus (fuzz_common.h); -DSEG_LIBFUZZER for libFuzzer. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "fuzz_common.h"
#include "stream/csv.h"

static void read_all(const uint8_t *data, size_t size, int delim)
{
    strm_csv_t *r = strm_csv_open_mem(data, size, delim);
    FUZZ_CHECK(r != NULL);
    strm_csv_set_max_record(r, 256);
    const strm_csv_field_t *f;
    size_t n;
    const char *why;
    uint64_t line = 0;
    int rc;
    while ((rc = strm_csv_next(r, &f, &n, &why)) != 0) {
        FUZZ_CHECK(strm_csv_line(r) > line);
        line = strm_csv_line(r);
        if (rc < 0) {
            FUZZ_CHECK(why && *why);
            continue;
        }
        for (size_t i = 0; i < n; i++) {
            FUZZ_CHECK(f[i].len <= size);
            if (f[i].len) (void)memchr(f[i].s, 0, f[i].len); /* readable */
        }
    }
    strm_csv_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const int delims[] = {',', ';', '\t', STRM_CSV_WHITESPACE};
    for (size_t i = 0; i < sizeof delims / sizeof delims[0]; i++) read_all(data, size, delims[i]);

    for (int fmt = STRM_TS_MS; fmt <= STRM_TS_YMD8; fmt++) {
        int64_t ms;
        if (strm_csv_parse_time((const char *)data, size < 64 ? size : 64, (strm_ts_format_t)fmt,
                                -180, &ms) == 0)
            FUZZ_CHECK(ms >= 0 && ms <= 253402300799999LL);
    }

    const uint8_t *nl = memchr(data, '\n', size);
    if (!nl) return 0;
    size_t sl = (size_t)(nl - data);
    char *spec = malloc(sl + 1);
    memcpy(spec, data, sl);
    spec[sl] = 0;
    char err[512] = "";
    strm_csvmap_t *m = strm_csvmap_new();
    if (memchr(spec, 0, sl) || strm_csvmap_parse(m, spec, err, sizeof err) < 0) {
        FUZZ_CHECK(memchr(spec, 0, sl) || err[0]);
        goto done;
    }
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_csv_%d.csv", (int)getpid());
    FILE *fp = fopen(path, "wb");
    FUZZ_CHECK(fp != NULL);
    fwrite(nl + 1, 1, size - sl - 1, fp);
    fclose(fp);
    strm_csvsrc_t *s = strm_csvsrc_open(path, m, 0, err, sizeof err);
    if (!s) {
        FUZZ_CHECK(err[0]);
    } else {
        const char *rec, *why;
        size_t len;
        uint64_t line;
        int rc;
        while ((rc = strm_csvsrc_next(s, &rec, &len, &why, &line)) != 0) {
            if (rc < 0) {
                FUZZ_CHECK(why && *why);
                continue;
            }
            seg_event_t ev;
            const char *r2 = NULL;
            if (strm_decode(rec, len, len, &ev, &r2) == 0)
                fuzz_check_event(&ev);
            else if (strcmp(r2, "missing_amount") != 0) {
                fprintf(stderr, "emitted an event that does not decode (%s): %.*s\n", r2, (int)len,
                        rec);
                abort();
            }
        }
        strm_csvsrc_close(s);
    }
    unlink(path);
done:
    strm_csvmap_free(m);
    free(spec);
    return 0;
}
