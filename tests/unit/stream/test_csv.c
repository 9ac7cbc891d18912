/* tests/unit/stream/test_csv.c: CSV input (csv.c, csv_map.c). The reader:
 * quotes, "" escapes, delimiters and newlines inside quotes, CRLF, a BOM,
 * blank lines, whitespace and other delimiters, an unterminated quote and
 * an oversized record (one bad record, then reading goes on), records
 * across the 1 MiB read chunks, line numbers and raw bytes. Every time
 * format, zones and bad times. The mapping: spec errors, a mapped file
 * event by event, bad rows and the reason naming their column, type
 * values, constants, na, refunds, groups in file order and sorted, sorting,
 * joins, files without a header, generated event ids, and the presets. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "stream/codec.h"
#include "stream/csv.h"

/* ---------- the reader ---------- */

typedef struct {
    strm_csv_t *r;
    const strm_csv_field_t *f;
    size_t n;
    const char *why;
} rd_t;

static int rd_next(rd_t *t)
{
    t->why = NULL;
    return strm_csv_next(t->r, &t->f, &t->n, &t->why);
}

/* The next record's fields joined by '|', e.g. "a|b c|". */
static void next_is(rd_t *t, const char *want)
{
    int rc = rd_next(t);
    cr_assert_eq(rc, 1, "got %d (%s), want %s", rc, t->why ? t->why : "", want);
    char got[4096];
    size_t o = 0;
    for (size_t i = 0; i < t->n; i++)
        o += (size_t)snprintf(got + o, sizeof got - o, "%s%.*s", i ? "|" : "", (int)t->f[i].len,
                              t->f[i].s);
    cr_assert_str_eq(got, want);
}

static rd_t mem(const char *text, int delim)
{
    rd_t t = {strm_csv_open_mem(text, strlen(text), delim), NULL, 0, NULL};
    cr_assert_not_null(t.r);
    return t;
}

Test(csv, plain_records_crlf_bom_blank_lines_and_no_final_newline)
{
    rd_t t = mem("\xEF\xBB\xBF"
                 "a,b,c\r\n1,2,3\r\n\r\n   \n4,,6\n,,\nlast,x,y",
                 ',');
    next_is(&t, "a|b|c");
    cr_assert_eq(strm_csv_line(t.r), 1);
    next_is(&t, "1|2|3");
    cr_assert_eq(strm_csv_line(t.r), 2);
    next_is(&t, "4||6");
    cr_assert_eq(strm_csv_line(t.r), 5);
    next_is(&t, "||");
    next_is(&t, "last|x|y");
    cr_assert_eq(strm_csv_line(t.r), 7);
    const char *raw;
    size_t len;
    strm_csv_raw(t.r, &raw, &len);
    cr_assert_eq(len, 8);
    cr_assert_eq(memcmp(raw, "last,x,y", 8), 0);
    cr_assert_eq(rd_next(&t), 0);
    cr_assert_eq(rd_next(&t), 0);
    strm_csv_close(t.r);
}

Test(csv, quotes_escapes_embedded_delimiters_and_newlines)
{
    rd_t t = mem("\"a,b\",\"he said \"\"hi\"\"\",plain\r\n"
                 "\"two\nlines\",\"\",x\"y\n"
                 "\"crlf\r\ninside\",\"ab\"c,\"\"\"\"\n"
                 "\"\"\n"
                 "next,\"end\"",
                 ',');
    next_is(&t, "a,b|he said \"hi\"|plain");
    const char *raw;
    size_t len;
    strm_csv_raw(t.r, &raw, &len);
    cr_assert_eq(len, strlen("\"a,b\",\"he said \"\"hi\"\"\",plain"));
    next_is(&t, "two\nlines||x\"y");
    cr_assert_eq(strm_csv_line(t.r), 2);
    next_is(&t, "crlf\r\ninside|abc|\"");
    cr_assert_eq(strm_csv_line(t.r), 4);
    next_is(&t, ""); /* a quoted empty value is a record, not a blank line */
    cr_assert_eq(t.n, 1);
    cr_assert_eq(strm_csv_line(t.r), 6);
    next_is(&t, "next|end");
    cr_assert_eq(strm_csv_line(t.r), 7);
    cr_assert_eq(rd_next(&t), 0);
    strm_csv_close(t.r);
}

Test(csv, unterminated_quote_is_one_bad_record_then_reading_goes_on)
{
    rd_t t = mem("a,b\n1,\"oops\n2,ok\n3,fine\n", ',');
    next_is(&t, "a|b");
    cr_assert_eq(rd_next(&t), -1);
    cr_assert_str_eq(t.why, "csv_unterminated_quote");
    cr_assert_eq(strm_csv_line(t.r), 2);
    const char *raw;
    size_t len;
    strm_csv_raw(t.r, &raw, &len);
    cr_assert_eq(len, 7);
    cr_assert_eq(memcmp(raw, "1,\"oops", 7), 0);
    next_is(&t, "2|ok");
    cr_assert_eq(strm_csv_line(t.r), 3);
    next_is(&t, "3|fine");
    cr_assert_eq(rd_next(&t), 0);
    strm_csv_close(t.r);
}

Test(csv, oversized_record_is_one_bad_record)
{
    char text[400];
    memset(text, 'x', sizeof text);
    memcpy(text, "a,b\n", 4);
    text[300] = '\n';
    memcpy(text + 301, "1,2\n", 4);
    text[305] = 0;
    rd_t t = mem(text, ',');
    strm_csv_set_max_record(t.r, 100);
    next_is(&t, "a|b");
    cr_assert_eq(rd_next(&t), -1);
    cr_assert_str_eq(t.why, "csv_oversized");
    next_is(&t, "1|2");
    cr_assert_eq(strm_csv_line(t.r), 3);
    cr_assert_eq(rd_next(&t), 0);
    strm_csv_close(t.r);
}

Test(csv, whitespace_and_other_delimiters)
{
    rd_t t = mem(" customer_id  date number_of_cds  dollar_value\n"
                 " 00001 19970101  1   11.77\r\n"
                 "\t00002\t19970112 \"two words\"  5\n"
                 "   \n"
                 "00003 19970113 1 0.00   ",
                 STRM_CSV_WHITESPACE);
    next_is(&t, "customer_id|date|number_of_cds|dollar_value");
    next_is(&t, "00001|19970101|1|11.77");
    next_is(&t, "00002|19970112|two words|5");
    next_is(&t, "00003|19970113|1|0.00");
    cr_assert_eq(strm_csv_line(t.r), 5);
    cr_assert_eq(rd_next(&t), 0);
    strm_csv_close(t.r);

    t = mem("a, \"b, c\" ,d\n\"x\"  \r\n", ','); /* blanks around quotes */
    next_is(&t, "a|b, c|d");
    next_is(&t, "x");
    cr_assert_eq(rd_next(&t), 0);
    strm_csv_close(t.r);

    t = mem("a;b;\"c;d\"\n1;2;3\n", ';');
    next_is(&t, "a|b|c;d");
    next_is(&t, "1|2|3");
    strm_csv_close(t.r);
    t = mem("a\tb, c\n1\t2\n", '\t');
    next_is(&t, "a|b, c");
    next_is(&t, "1|2");
    strm_csv_close(t.r);
}

static char tmp_dir[64], tmp_path[128];

/* Writes dir/name (the directory is this process's own) and keeps its path
 * in tmp_path. */
static void write_tmp(const char *name, const void *data, size_t n)
{
    snprintf(tmp_dir, sizeof tmp_dir, "/tmp/strm_csv_%d", (int)getpid());
    mkdir(tmp_dir, 0700);
    snprintf(tmp_path, sizeof tmp_path, "%s/%s", tmp_dir, name);
    FILE *f = fopen(tmp_path, "wb");
    cr_assert_not_null(f);
    cr_assert_eq(fwrite(data, 1, n, f), n);
    fclose(f);
}

static void rm_tmp(void)
{
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp_dir);
    cr_assert_eq(system(cmd), 0);
}

Test(csv, records_across_read_chunks_of_a_file)
{
    /* 3 MiB of rows with quoted fields holding "" and newlines: every
     * record must come out whole wherever the 1 MiB chunks split it */
    size_t cap = 4 << 20, len = 0;
    char *text = malloc(cap);
    int rows = 0;
    len += (size_t)sprintf(text, "id,note,n\n");
    while (len < (3u << 20)) {
        len += (size_t)sprintf(text + len, "%d,\"say \"\"%d\"\",\nthen, more\",%d\r\n", rows, rows,
                               rows * 7);
        rows++;
    }
    write_tmp("chunks.csv", text, len);
    char err[256];
    rd_t t = {strm_csv_open(tmp_path, ',', err, sizeof err), NULL, 0, NULL};
    cr_assert_not_null(t.r, "%s", err);
    cr_assert_eq(strm_csv_size(t.r), len);
    next_is(&t, "id|note|n");
    char want[128];
    for (int i = 0; i < rows; i++) {
        snprintf(want, sizeof want, "%d|say \"%d\",\nthen, more|%d", i, i, i * 7);
        next_is(&t, want);
        cr_assert_eq(strm_csv_line(t.r), 2 + 2 * (uint64_t)i);
    }
    cr_assert_eq(rd_next(&t), 0);
    cr_assert_eq(strm_csv_offset(t.r), len);
    strm_csv_close(t.r);
    rm_tmp();
    free(text);
}

/* ---------- time values ---------- */

static int64_t ts(const char *s, strm_ts_format_t fmt, int tz)
{
    int64_t ms = -1;
    cr_assert_eq(strm_csv_parse_time(s, strlen(s), fmt, tz, &ms), 0, "%s", s);
    return ms;
}

static void bad_ts(const char *s, strm_ts_format_t fmt)
{
    int64_t ms;
    cr_assert_eq(strm_csv_parse_time(s, strlen(s), fmt, 0, &ms), -1, "%s parsed", s);
}

Test(csv, time_formats)
{
    cr_assert_eq(ts("1569888000000", STRM_TS_MS, 0), 1569888000000LL);
    cr_assert_eq(ts("1511544070", STRM_TS_S, 0), 1511544070000LL);
    cr_assert_eq(ts("1511544070.25", STRM_TS_S, 0), 1511544070250LL);
    cr_assert_eq(ts("1569888000123456", STRM_TS_US, 0), 1569888000123LL);
    cr_assert_eq(ts("19970101", STRM_TS_YMD8, 0), 852076800000LL);
    cr_assert_eq(ts("19970101", STRM_TS_YMD8, 60), 852076800000LL - 3600000);
    /* RFC 3339 and the SQL-ish form, with and without zones */
    cr_assert_eq(ts("2019-10-01 00:00:00 UTC", STRM_TS_ISO, 0), 1569888000000LL);
    cr_assert_eq(ts("2019-10-01T00:00:00Z", STRM_TS_ISO, 0), 1569888000000LL);
    cr_assert_eq(ts("2019-10-01T08:00:00+08:00", STRM_TS_ISO, 0), 1569888000000LL);
    cr_assert_eq(ts("2019-10-01T08:00:00+0800", STRM_TS_ISO, 0), 1569888000000LL);
    cr_assert_eq(ts("2019-10-01 00:00:00.5", STRM_TS_ISO, 0), 1569888000500LL);
    cr_assert_eq(ts("2019-10-01", STRM_TS_ISO, 0), 1569888000000LL);
    cr_assert_eq(ts("2019/10/01 00:00", STRM_TS_ISO, 0), 1569888000000LL);
    /* no zone: the mapping's tz (Olist: -03:00) */
    cr_assert_eq(ts("2018-06-12 20:07:44", STRM_TS_ISO, -180),
                 ts("2018-06-12T23:07:44Z", STRM_TS_ISO, 0));
    cr_assert_eq(ts("2018-06-12 20:07:44Z", STRM_TS_ISO, -180),
                 ts("2018-06-12T20:07:44Z", STRM_TS_ISO, 0)); /* the value's own zone wins */
    /* UCI Online Retail: dd/mm/YYYY in this copy, M/D/YYYY in others */
    int64_t dec1 = ts("2010-12-01T08:26:00Z", STRM_TS_ISO, 0);
    cr_assert_eq(ts("01/12/2010 08:26", STRM_TS_DMY, 0), dec1);
    cr_assert_eq(ts("1/12/2010 8:26", STRM_TS_DMY, 0), dec1);
    cr_assert_eq(ts("12/1/2010 8:26", STRM_TS_MDY, 0), dec1);
    cr_assert_eq(ts("12/01/2010 08:26:00", STRM_TS_MDY, 0), dec1);
    cr_assert_eq(ts("12/01/2010", STRM_TS_MDY, 0), ts("2010-12-01", STRM_TS_ISO, 0));
    cr_assert_eq(ts("2000-02-29 23:59:60", STRM_TS_ISO, 0), ts("2000-03-01", STRM_TS_ISO, 0));

    bad_ts("", STRM_TS_MS);
    bad_ts("12a", STRM_TS_MS);
    bad_ts("-5", STRM_TS_S);
    bad_ts("1e9", STRM_TS_S);
    bad_ts("99999999999999999999", STRM_TS_MS);
    bad_ts("2010-13-01", STRM_TS_ISO);
    bad_ts("2011-02-29", STRM_TS_ISO);
    bad_ts("1969-12-31 23:59", STRM_TS_ISO);
    bad_ts("2010-12-01 25:00", STRM_TS_ISO);
    bad_ts("2010-12-01 10:61", STRM_TS_ISO);
    bad_ts("2010-12-01 junk", STRM_TS_ISO);
    bad_ts("2010-12-01T", STRM_TS_ISO);
    bad_ts("2010-12-01 10:00 +25:00", STRM_TS_ISO);
    bad_ts("31/02/2010 10:00", STRM_TS_DMY);
    bad_ts("13/13/2010", STRM_TS_MDY);
    bad_ts("01/12/10 08:26", STRM_TS_DMY);
    bad_ts("19970230", STRM_TS_YMD8);
    bad_ts("1997010", STRM_TS_YMD8);
    bad_ts("2010-12-01", STRM_TS_YMD8);

    strm_ts_format_t f;
    cr_assert_eq(strm_csv_ts_format("yyyymmdd", 8, &f), 0);
    cr_assert_eq(f, STRM_TS_YMD8);
    cr_assert_eq(strm_csv_ts_format("rfc3339", 7, &f), 0);
    cr_assert_eq(f, STRM_TS_ISO);
    cr_assert_eq(strm_csv_ts_format("ydm", 3, &f), -1);
}

/* ---------- the mapping ---------- */

static void spec_fails(const char *spec, const char *needle)
{
    char err[512] = "";
    strm_csvmap_t *m = strm_csvmap_new();
    cr_assert_eq(strm_csvmap_parse(m, spec, err, sizeof err), -1, "%s accepted", spec);
    cr_assert(strstr(err, needle), "%s: error '%s' lacks '%s'", spec, err, needle);
    strm_csvmap_free(m);
}

Test(csvmap, bad_specs_name_the_entry)
{
    spec_fails("customer_id=a,colour=red", "unknown key 'colour'");
    spec_fails("delimiter=;;", "delimiter=;;");
    spec_fails("ts_format=dmy|ydm", "ts_format=dmy|ydm");
    spec_fails("tz=Europe/London", "tz=Europe/London");
    spec_fails("join=payments.csv", "FILE:COLUMN");
    spec_fails("header=maybe", "header=maybe");
    spec_fails("type=\"purchase", "unbalanced quote");
    spec_fails("traits.a-b=x", "traits.a-b");
    spec_fails("just words", "key=value");
    spec_fails("na=a|b|c|d|e|f|g|h|i", "na=");
}

Test(csvmap, presets_parse_and_unknown_ones_are_listed)
{
    char err[512];
    for (int i = 0; strm_csvmap_presets[i]; i++) {
        strm_csvmap_t *m = strm_csvmap_new();
        cr_assert_eq(strm_csvmap_preset(m, strm_csvmap_presets[i], err, sizeof err), 0, "%s: %s",
                     strm_csvmap_presets[i], err);
        cr_assert_not_null(strm_csvmap_preset_spec(strm_csvmap_presets[i]));
        strm_csvmap_free(m);
    }
    strm_csvmap_t *m = strm_csvmap_new();
    cr_assert_eq(strm_csvmap_preset(m, "kaggle", err, sizeof err), -1);
    cr_assert(strstr(err, "olist"), "%s", err);
    cr_assert_eq(strm_csvmap_sort(m), 0);
    cr_assert_eq(strm_csvmap_preset(m, "cdnow", err, sizeof err), 0);
    cr_assert_eq(strm_csvmap_sort(m), 1);
    cr_assert_eq(strm_csvmap_parse(m, "sort=no", err, sizeof err), 0); /* later entries win */
    cr_assert_eq(strm_csvmap_sort(m), 0);
    strm_csvmap_free(m);
}

typedef struct {
    strm_csvmap_t *m;
    strm_csvsrc_t *s;
    const char *rec, *why;
    size_t len;
    uint64_t line;
} src_t;

/* A source over text[0..len) written as dir/name. */
static src_t open_srcn(const char *name, const char *text, size_t len, const char *spec, int sort)
{
    char err[512];
    src_t t = {strm_csvmap_new(), NULL, NULL, NULL, 0, 0};
    write_tmp(name, text, len);
    cr_assert_eq(strm_csvmap_parse(t.m, spec, err, sizeof err), 0, "%s", err);
    t.s = strm_csvsrc_open(tmp_path, t.m, sort, err, sizeof err);
    cr_assert_not_null(t.s, "%s", err);
    return t;
}

static src_t open_src(const char *name, const char *text, const char *spec, int sort)
{
    return open_srcn(name, text, strlen(text), spec, sort);
}

static void close_src(src_t *t)
{
    strm_csvsrc_close(t->s);
    strm_csvmap_free(t->m);
    rm_tmp();
}

/* The next output is the event `want` (JSON) from file line `line`; it
 * also decodes as a contract event. */
static void ev_is(src_t *t, const char *want, uint64_t line)
{
    t->why = NULL;
    int rc = strm_csvsrc_next(t->s, &t->rec, &t->len, &t->why, &t->line);
    cr_assert_eq(rc, 1, "got %d (%s %.*s), want %s", rc, t->why ? t->why : "", (int)t->len, t->rec,
                 want);
    cr_assert_eq(t->len, strlen(want), "got  %.*s\nwant %s", (int)t->len, t->rec, want);
    cr_assert_eq(memcmp(t->rec, want, t->len), 0, "got  %.*s\nwant %s", (int)t->len, t->rec, want);
    cr_assert_eq(t->line, line, "line %llu, want %llu", (unsigned long long)t->line,
                 (unsigned long long)line);
    seg_event_t ev;
    const char *why = NULL;
    cr_assert_eq(strm_decode(t->rec, t->len, 0, &ev, &why), 0, "%s: %s", why, want);
}

/* The next output is the dead row `raw` (as in the file) with `reason`. */
static void dead_is(src_t *t, const char *reason, const char *raw, uint64_t line)
{
    t->why = NULL;
    int rc = strm_csvsrc_next(t->s, &t->rec, &t->len, &t->why, &t->line);
    cr_assert_eq(rc, -1, "got %d (%.*s), want %s", rc, (int)t->len, t->rec, reason);
    cr_assert_str_eq(t->why, reason);
    cr_assert_eq(t->len, strlen(raw), "%.*s", (int)t->len, t->rec);
    cr_assert_eq(memcmp(t->rec, raw, t->len), 0, "%.*s", (int)t->len, t->rec);
    cr_assert_eq(t->line, line);
}

static void end_is(src_t *t)
{
    cr_assert_eq(strm_csvsrc_next(t->s, &t->rec, &t->len, &t->why, &t->line), 0);
    cr_assert_eq(strm_csvsrc_next(t->s, &t->rec, &t->len, &t->why, &t->line), 0);
}

#define SHOP_SPEC                                                                                  \
    "ts=when,ts_format=iso,customer_id=who,type=what,type.view=product_view,"                      \
    "type.buy=purchase,price=price,quantity=qty,category=cat,channel=chan,"                        \
    "discount=coupon,event_id=id,traits.country=country,na=NA|-"

Test(csvmap, a_mapped_file_event_by_event)
{
    src_t t =
        open_src("shop.csv",
                 "when,who,what,price,qty,cat,chan,coupon,id,country\n"
                 "2024-01-02 03:04:05,c1,view,,,books,Web,,,GB\n"
                 "2024-01-02 03:05:00+01:00,c1,buy,2.55,6,books,app,yes,o-1,GB\n"
                 "\"2024-01-02 03:06:00\", \"c,2\" ,buy,1.5e1,2,NA,-,0,,\"\"\n"
                 "2024-01-02 03:07:00,c\"3,\"search, \"\"deep\"\"\",,,\"two\nlines\",store,2,,"
                 "\"Viet Nam, Socialist Republic of the Long Name Here\"\n",
                 SHOP_SPEC, 0);
    ev_is(&t,
          "{\"customer_id\":\"c1\",\"type\":\"product_view\",\"ts\":1704164645000,"
          "\"category\":\"books\",\"channel\":\"web\",\"event_id\":\"shop.csv:2\","
          "\"traits\":{\"country\":\"GB\"}}",
          2);
    ev_is(&t,
          "{\"customer_id\":\"c1\",\"type\":\"purchase\",\"ts\":1704161100000,\"amount\":15.3,"
          "\"category\":\"books\",\"channel\":\"app\",\"discount\":true,\"event_id\":\"o-1\","
          "\"traits\":{\"country\":\"GB\"}}",
          3);
    /* quoted values keep their commas; blanks around them and na values go */
    ev_is(&t,
          "{\"customer_id\":\"c,2\",\"type\":\"purchase\",\"ts\":1704164760000,\"amount\":30,"
          "\"discount\":false,\"event_id\":\"shop.csv:4\"}",
          4);
    /* an unknown type passes as it is (generic activity); a trait is cut
     * to 47 bytes */
    ev_is(&t,
          "{\"customer_id\":\"c\\\"3\",\"type\":\"search, \\\"deep\\\"\",\"ts\":1704164820000,"
          "\"category\":\"two\\nlines\",\"channel\":\"store\",\"discount\":true,"
          "\"event_id\":\"shop.csv:5\",\"traits\":{\"country\":"
          "\"Viet Nam, Socialist Republic of the Long Name H\"}}",
          5);
    end_is(&t);
    cr_assert_eq(strm_csvsrc_rows(t.s), 4);
    cr_assert_eq(strm_csvsrc_progress(t.s), 1.0);
    close_src(&t);
}

Test(csvmap, rows_that_cannot_be_mapped_name_their_column)
{
    src_t t = open_src("bad.csv",
                       "when,who,what,price,qty,cat,chan,coupon,id,country\n"
                       "2024-01-02 03:04:05,,view,,,,,,,\n"
                       "2024-01-02 03:04:05,NA,view,,,,,,,\n"
                       "2024-13-02 03:04:05,c1,view,,,,,,,\n"
                       ",c1,view,,,,,,,\n"
                       "2024-01-02 03:04:05,c1,,,,,,,,\n"
                       "2024-01-02 03:04:05,c1,buy,abc,1,,,,,\n"
                       "2024-01-02 03:04:05,c1,buy,1.5,1x,,,,,\n"
                       "2024-01-02 03:04:05,c1,buy,,2,,,,,\n"
                       "2024-01-02 03:04:05,c1,buy,1.5,-2,,,,,\n"
                       "2024-01-02 03:04:05,c1,buy,1.5\n"
                       "2024-01-02 03:04:05,c1,view,,,,fax,,,\n"
                       "2024-01-02 03:04:05,c1,view,,,,,maybe,,\n"
                       "2024-01-02 03:04:05,c1,view,,,,,,"
                       "0123456789012345678901234567890123456789012345678901234567890123456789,\n"
                       "2024-01-02 03:04:05,c1,\"view\n"
                       "2024-01-02 03:04:05,caf\xe9,view,,,,,,,\n"
                       "2024-01-02 03:04:05,c1,view,,,,,,,\n",
                       SHOP_SPEC, 0);
    dead_is(&t, "missing_customer_id:who", "2024-01-02 03:04:05,,view,,,,,,,", 2);
    dead_is(&t, "missing_customer_id:who", "2024-01-02 03:04:05,NA,view,,,,,,,", 3);
    dead_is(&t, "bad_ts:when", "2024-13-02 03:04:05,c1,view,,,,,,,", 4);
    dead_is(&t, "missing_ts:when", ",c1,view,,,,,,,", 5);
    dead_is(&t, "missing_type:what", "2024-01-02 03:04:05,c1,,,,,,,,", 6);
    dead_is(&t, "bad_amount:price", "2024-01-02 03:04:05,c1,buy,abc,1,,,,,", 7);
    dead_is(&t, "bad_amount:qty", "2024-01-02 03:04:05,c1,buy,1.5,1x,,,,,", 8);
    dead_is(&t, "missing_amount:price", "2024-01-02 03:04:05,c1,buy,,2,,,,,", 9);
    dead_is(&t, "negative_amount:qty", "2024-01-02 03:04:05,c1,buy,1.5,-2,,,,,", 10);
    dead_is(&t, "short_row:qty", "2024-01-02 03:04:05,c1,buy,1.5", 11);
    dead_is(&t, "bad_channel:chan", "2024-01-02 03:04:05,c1,view,,,,fax,,,", 12);
    dead_is(&t, "bad_discount:coupon", "2024-01-02 03:04:05,c1,view,,,,,maybe,,", 13);
    dead_is(&t, "bad_event_id:id",
            "2024-01-02 03:04:05,c1,view,,,,,,"
            "0123456789012345678901234567890123456789012345678901234567890123456789,",
            14);
    dead_is(&t, "csv_unterminated_quote", "2024-01-02 03:04:05,c1,\"view", 15);
    dead_is(&t, "bad_customer_id:who", "2024-01-02 03:04:05,caf\xe9,view,,,,,,,", 16);
    ev_is(&t,
          "{\"customer_id\":\"c1\",\"type\":\"product_view\",\"ts\":1704164645000,"
          "\"event_id\":\"bad.csv:17\"}",
          17);
    end_is(&t);
    close_src(&t);
}

/* An amount over SEG_AMOUNT_MAX names its column too: price x quantity by
 * its larger factor (an overflow to infinity included) */
Test(csvmap, an_amount_too_large_names_its_column)
{
    src_t t = open_src("big.csv",
                       "when,who,what,price,qty,cat,chan,coupon,id,country\n"
                       "2024-01-02 03:04:05,c1,buy,1e16,1,,,,,\n"
                       "2024-01-02 03:04:05,c1,buy,2,1e15,,,,,\n"
                       "2024-01-02 03:04:05,c1,buy,1e200,1e200,,,,,\n"
                       "2024-01-02 03:04:05,c1,buy,1e14,10,,,,,\n",
                       SHOP_SPEC, 0);
    dead_is(&t, "amount_too_large:price", "2024-01-02 03:04:05,c1,buy,1e16,1,,,,,", 2);
    dead_is(&t, "amount_too_large:qty", "2024-01-02 03:04:05,c1,buy,2,1e15,,,,,", 3);
    dead_is(&t, "amount_too_large:price", "2024-01-02 03:04:05,c1,buy,1e200,1e200,,,,,", 4);
    ev_is(&t,
          "{\"customer_id\":\"c1\",\"type\":\"purchase\",\"ts\":1704164645000,"
          "\"amount\":1e+15,\"event_id\":\"big.csv:5\"}",
          5);
    close_src(&t);
}

Test(csvmap, constants_default_types_and_refunds)
{
    src_t t = open_src("inv.csv",
                       "inv;cust;qty;price;status\n"
                       "1;a;2;3.5;done\n"
                       "C2;a;-1;3.5;done\n"
                       "3;b;1;0;lost\n"
                       "4;b;1;1;void\n",
                       "delimiter=semicolon,customer_id=cust,ts='2011-01-01',channel='store',"
                       "type=status,type.*=purchase,type.void=order_void,price=price,"
                       "quantity=qty,refund_type=cancellation,event_id=inv",
                       0);
    ev_is(&t,
          "{\"customer_id\":\"a\",\"type\":\"purchase\",\"ts\":1293840000000,\"amount\":7,"
          "\"channel\":\"store\",\"event_id\":\"1\"}",
          2);
    ev_is(&t,
          "{\"customer_id\":\"a\",\"type\":\"cancellation\",\"ts\":1293840000000,"
          "\"channel\":\"store\",\"event_id\":\"C2\"}",
          3);
    ev_is(&t,
          "{\"customer_id\":\"b\",\"type\":\"purchase\",\"ts\":1293840000000,\"amount\":0,"
          "\"channel\":\"store\",\"event_id\":\"3\"}",
          4);
    ev_is(&t,
          "{\"customer_id\":\"b\",\"type\":\"order_void\",\"ts\":1293840000000,"
          "\"channel\":\"store\",\"event_id\":\"4\"}",
          5);
    end_is(&t);
    close_src(&t);
}

#define INVOICES                                                                                   \
    "InvoiceNo,Quantity,InvoiceDate,UnitPrice,CustomerID\n"                                        \
    "10,2,01/12/2010 08:26,1.25,17850\n"                                                           \
    "10,1,01/12/2010 08:27,0.5,17850\n"                                                            \
    "11,1,01/12/2010 08:20,4,13047\n"                                                              \
    "10,3,01/12/2010 08:26,1,17850\n"                                                              \
    "C12,-1,01/12/2010 09:00,1.25,17850\n"                                                         \
    "C12,-2,01/12/2010 09:00,0.5,17850\n"                                                          \
    "13,1,01/12/2010 07:00,2,\n"
#define INVOICE_SPEC                                                                               \
    "customer_id=CustomerID,type='purchase',ts=InvoiceDate,ts_format=dmy,price=UnitPrice,"         \
    "quantity=Quantity,group=InvoiceNo,refund_type=cancellation"

Test(csvmap, groups_merge_consecutive_rows_in_file_order)
{
    src_t t = open_src("inv.csv", INVOICES, INVOICE_SPEC, 0);
    ev_is(&t,
          "{\"customer_id\":\"17850\",\"type\":\"purchase\",\"ts\":1291191960000,"
          "\"amount\":3,\"event_id\":\"inv.csv:2\"}",
          2);
    ev_is(&t,
          "{\"customer_id\":\"13047\",\"type\":\"purchase\",\"ts\":1291191600000,"
          "\"amount\":4,\"event_id\":\"inv.csv:4\"}",
          4);
    ev_is(&t,
          "{\"customer_id\":\"17850\",\"type\":\"purchase\",\"ts\":1291191960000,"
          "\"amount\":3,\"event_id\":\"inv.csv:5\"}",
          5);
    /* the dead row comes out while the cancellation's group is open */
    dead_is(&t, "missing_customer_id:CustomerID", "13,1,01/12/2010 07:00,2,", 8);
    ev_is(&t,
          "{\"customer_id\":\"17850\",\"type\":\"cancellation\",\"ts\":1291194000000,"
          "\"event_id\":\"inv.csv:6\"}",
          6);
    end_is(&t);
    cr_assert_eq(strm_csvsrc_rows(t.s), 7);
    cr_assert_eq(strm_csvsrc_merged(t.s), 2);
    close_src(&t);
}

/* Rows within the limit whose group adds up past it: a dead letter naming
 * the price column, its bytes the merged event (no one row is it), in file
 * order and sorted alike; the next group is untouched */
Test(csvmap, a_group_adding_up_past_the_amount_limit_names_its_column)
{
    static const char big[] = "InvoiceNo,Quantity,InvoiceDate,UnitPrice,CustomerID\n"
                              "10,1,01/12/2010 08:26,6e14,17850\n"
                              "10,1,01/12/2010 08:27,6e14,17850\n"
                              "11,1,01/12/2010 09:20,4,13047\n";
    for (int sort = 0; sort < 2; sort++) {
        src_t t = open_src("big.csv", big, INVOICE_SPEC, sort);
        dead_is(&t, "amount_too_large:UnitPrice",
                "{\"customer_id\":\"17850\",\"type\":\"purchase\",\"ts\":1291191960000,"
                "\"amount\":1.2e+15,\"event_id\":\"big.csv:2\"}",
                2);
        ev_is(&t,
              "{\"customer_id\":\"13047\",\"type\":\"purchase\",\"ts\":1291195200000,"
              "\"amount\":4,\"event_id\":\"big.csv:4\"}",
              4);
        end_is(&t);
        close_src(&t);
    }
}

Test(csvmap, sorted_groups_merge_every_row_and_come_out_by_time)
{
    src_t t = open_src("inv.csv", INVOICES, INVOICE_SPEC, 1);
    cr_assert(strm_csvsrc_sorted(t.s));
    cr_assert_lt(strm_csvsrc_progress(t.s), 0.5);
    /* dead rows first, in file order */
    dead_is(&t, "missing_customer_id:CustomerID", "13,1,01/12/2010 07:00,2,", 8);
    ev_is(&t,
          "{\"customer_id\":\"13047\",\"type\":\"purchase\",\"ts\":1291191600000,"
          "\"amount\":4,\"event_id\":\"inv.csv:4\"}",
          4);
    /* invoice 10 at its earliest row's time, with the first row's id */
    ev_is(&t,
          "{\"customer_id\":\"17850\",\"type\":\"purchase\",\"ts\":1291191960000,"
          "\"amount\":6,\"event_id\":\"inv.csv:2\"}",
          2);
    ev_is(&t,
          "{\"customer_id\":\"17850\",\"type\":\"cancellation\",\"ts\":1291194000000,"
          "\"event_id\":\"inv.csv:6\"}",
          6);
    end_is(&t);
    cr_assert_eq(strm_csvsrc_merged(t.s), 3);
    cr_assert_eq(strm_csvsrc_progress(t.s), 1.0);
    close_src(&t);
}

Test(csvmap, sorting_orders_by_time_then_line)
{
    src_t t = open_src("s.csv", "t,c\n30,a\n10,b\n20,c\n10,d\n",
                       "customer_id=c,ts=t,ts_format=s,type='page_view',sort=yes", 0);
    cr_assert(strm_csvsrc_sorted(t.s));
    const char *want[] = {"b", "d", "c", "a"};
    const uint64_t line[] = {3, 5, 4, 2};
    for (int i = 0; i < 4; i++) {
        char ev[256];
        snprintf(ev, sizeof ev,
                 "{\"customer_id\":\"%s\",\"type\":\"page_view\",\"ts\":%d000,"
                 "\"event_id\":\"s.csv:%d\"}",
                 want[i],
                 i == 0 || i == 1 ? 10
                 : i == 2         ? 20
                                  : 30,
                 (int)line[i]);
        ev_is(&t, ev, line[i]);
    }
    end_is(&t);
    close_src(&t);
}

Test(csvmap, joins_take_the_first_row_sum_amounts_and_any_discount)
{
    const char *customers = "customer_id,person,state\nk1,p1,SP\nk2,p2,RJ\nk3,p1,SP\n";
    write_tmp("customers.csv", customers, strlen(customers));
    const char *payments = "order_id,payment_type,payment_value\no1,credit_card,10.5\n"
                           "o2,voucher,5\no2,credit_card,20.25\no3,boleto,7\n";
    write_tmp("payments.csv", payments, strlen(payments));
    src_t t = open_src("orders.csv",
                       "order_id,customer_id,when\n"
                       "o1,k1,2018-01-01 10:00:00\n"
                       "o2,k2,2018-01-02 10:00:00\n"
                       "o3,k3,2018-01-03 10:00:00\n"
                       "o4,k1,2018-01-04 10:00:00\n"
                       "o5,k9,2018-01-05 10:00:00\n",
                       "join=customers.csv:customer_id,join=payments.csv:order_id,"
                       "customer_id=person,type='purchase',ts=when,tz=-03:00,"
                       "amount=payment_value,discount=payment_type,discount_value=voucher,"
                       "event_id=order_id,traits.state=state",
                       0);
    ev_is(&t,
          "{\"customer_id\":\"p1\",\"type\":\"purchase\",\"ts\":1514811600000,"
          "\"amount\":10.5,\"discount\":false,\"event_id\":\"o1\",\"traits\":{\"state\":\"SP\"}}",
          2);
    ev_is(&t,
          "{\"customer_id\":\"p2\",\"type\":\"purchase\",\"ts\":1514898000000,"
          "\"amount\":25.25,\"discount\":true,\"event_id\":\"o2\",\"traits\":{\"state\":\"RJ\"}}",
          3);
    ev_is(&t,
          "{\"customer_id\":\"p1\",\"type\":\"purchase\",\"ts\":1514984400000,"
          "\"amount\":7,\"discount\":false,\"event_id\":\"o3\",\"traits\":{\"state\":\"SP\"}}",
          4);
    dead_is(&t, "no_join_match:order_id", "o4,k1,2018-01-04 10:00:00", 5);
    dead_is(&t, "no_join_match:customer_id", "o5,k9,2018-01-05 10:00:00", 6);
    end_is(&t);
    close_src(&t);
}

Test(csvmap, files_without_a_header_and_column_numbers)
{
    src_t t =
        open_src("ub.csv", "1,2268318,2520377,pv,1511544070\n1,2333346,2520771,buy,1511561733\n",
                 "header=no,columns=user item cat behavior ts,customer_id=user,"
                 "type=$4,type.pv=product_view,type.buy=purchase,ts=ts,ts_format=s,"
                 "amount='0',category=$3",
                 0);
    ev_is(&t,
          "{\"customer_id\":\"1\",\"type\":\"product_view\",\"ts\":1511544070000,"
          "\"category\":\"2520377\",\"event_id\":\"ub.csv:1\"}",
          1);
    ev_is(&t,
          "{\"customer_id\":\"1\",\"type\":\"purchase\",\"ts\":1511561733000,\"amount\":0,"
          "\"category\":\"2520771\",\"event_id\":\"ub.csv:2\"}",
          2);
    end_is(&t);
    close_src(&t);
}

static void open_fails(const char *text, const char *spec, const char *needle)
{
    char err[512] = "";
    strm_csvmap_t *m = strm_csvmap_new();
    write_tmp("f.csv", text, strlen(text));
    cr_assert_eq(strm_csvmap_parse(m, spec, err, sizeof err), 0, "%s", err);
    strm_csvsrc_t *s = strm_csvsrc_open(tmp_path, m, 0, err, sizeof err);
    cr_assert_null(s, "%s opened", spec);
    cr_assert(strstr(err, needle), "%s: error '%s' lacks '%s'", spec, err, needle);
    strm_csvmap_free(m);
    rm_tmp();
}

Test(csvmap, a_mapping_that_does_not_fit_the_file_fails_at_open)
{
    open_fails("a,b\n1,2\n", "customer_id=a,type='x',ts=when",
               "ts=when: no such column in /tmp/strm_csv_");
    open_fails("a,b\n1,2\n", "customer_id=a,type='x',ts=when", "(columns: a, b)");
    open_fails("a,b\n1,2\n", "type='x',ts=b", "no customer_id");
    open_fails("a,b\n1,2\n", "customer_id=a,ts=b", "no type");
    open_fails("a,b\n1,2\n", "customer_id=a,type='x'", "no ts");
    open_fails("", "customer_id=a,type='x',ts=b", "empty");
    open_fails("1,2\n", "header=no,customer_id=a,type='x',ts=$2", "no header");
    open_fails("a,b\n1,2\n", "customer_id=a,type='x',ts=$0", "$N counts columns from 1");
    open_fails("a,b\n1,2\n", "customer_id=a,type='x',ts=b,join=nothere.csv:a", "nothere.csv");
}

Test(csvmap, column_names_match_without_case_after_exact_ones)
{
    src_t t = open_src("c.csv", "User,TS\nu1,5\n",
                       "customer_id=user,ts=ts,ts_format=ms,type='page_view'", 0);
    ev_is(&t, "{\"customer_id\":\"u1\",\"type\":\"page_view\",\"ts\":5,\"event_id\":\"c.csv:2\"}",
          2);
    end_is(&t);
    close_src(&t);
}

Test(csvmap, spec_from_lines_with_comments_and_colons)
{
    char err[256];
    strm_csvmap_t *m = strm_csvmap_new();
    cr_assert_eq(strm_csvmap_parse(m,
                                   "# the shop's export\n"
                                   "customer_id: who\n"
                                   "type: 'purchase'\n"
                                   "ts: when   # not a comment: part of the value\n",
                                   err, sizeof err),
                 0, "%s", err);
    write_tmp("l.csv", "who,when\nx,1\n", strlen("who,when\nx,1\n"));
    strm_csvsrc_t *s = strm_csvsrc_open(tmp_path, m, 0, err, sizeof err);
    cr_assert_null(s); /* "when   # not..." is not a column */
    strm_csvmap_free(m);
    m = strm_csvmap_new();
    cr_assert_eq(strm_csvmap_parse(m, "# comment\ncustomer_id: who\nts: when\ntype: 'page_view'\n",
                                   err, sizeof err),
                 0, "%s", err);
    s = strm_csvsrc_open(tmp_path, m, 0, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    strm_csvsrc_close(s);
    strm_csvmap_free(m);
    rm_tmp();
}

Test(csvmap, an_empty_value_removes_an_entry)
{
    src_t t = open_src("e.csv", "u,t,k,c\nx,1,a,books\nx,2,b,toys\n",
                       "customer_id=u,ts=t,ts_format=s,type=k,type.a=page_view,type.b=search,"
                       "category=c,type.a=,category=",
                       0);
    ev_is(&t, "{\"customer_id\":\"x\",\"type\":\"a\",\"ts\":1000,\"event_id\":\"e.csv:2\"}", 2);
    ev_is(&t, "{\"customer_id\":\"x\",\"type\":\"search\",\"ts\":2000,\"event_id\":\"e.csv:3\"}",
          3);
    end_is(&t);
    close_src(&t);
}

/* ... and for the settings too (a preset's sort, ts_format, header or
 * delimiter), which go back to their defaults: comma, a header, ms|iso,
 * file order */
Test(csvmap, an_empty_value_restores_a_setting)
{
    src_t t = open_src("d.csv", "u,t,k\nx,2000,view\nx,1000,view\n",
                       "delimiter=;,header=no,ts_format=s,sort=yes,customer_id=u,ts=t,type=k,"
                       "delimiter=,header=,ts_format=,sort=",
                       0);
    ev_is(&t, "{\"customer_id\":\"x\",\"type\":\"view\",\"ts\":2000,\"event_id\":\"d.csv:2\"}", 2);
    ev_is(&t, "{\"customer_id\":\"x\",\"type\":\"view\",\"ts\":1000,\"event_id\":\"d.csv:3\"}", 3);
    end_is(&t);
    close_src(&t);
}

Test(csvmap, text_that_is_not_utf8_or_holds_a_nul)
{
    static const char text[] =
        "u,t,k,city\n"
        "x,1,view,S\xe3o Paulo\n"
        "x,2,view,\xe3\xe3\xe3\xe3\xe3\xe3\xe3\xe3\xe3\xe3\xe3\xe3\xe3\xe3\xe3\xe3\xe3\n"
        "x,3,v\0w,here\n"
        "x,4,view,a\0b\n";
    src_t t = open_srcn("l.csv", text, sizeof text - 1,
                        "customer_id=u,ts=t,ts_format=s,type=k,traits.city=city", 0);
    /* a Latin-1 byte becomes U+FFFD; a value made longer by that is cut to
     * whole characters within 47 bytes */
    ev_is(&t,
          "{\"customer_id\":\"x\",\"type\":\"view\",\"ts\":1000,\"event_id\":\"l.csv:2\","
          "\"traits\":{\"city\":\"S\xef\xbf\xbdo Paulo\"}}",
          2);
    ev_is(
        &t,
        "{\"customer_id\":\"x\",\"type\":\"view\",\"ts\":2000,\"event_id\":\"l.csv:3\","
        "\"traits\":{\"city\":\""
        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef"
        "\xbf\xbd"
        "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\"}}",
        3);
    cr_assert(strm_csvsrc_next(t.s, &t.rec, &t.len, &t.why, &t.line) == -1);
    cr_assert_str_eq(t.why, "bad_type:k");
    cr_assert(strm_csvsrc_next(t.s, &t.rec, &t.len, &t.why, &t.line) == -1);
    cr_assert_str_eq(t.why, "bad_traits:city");
    end_is(&t);
    close_src(&t);
}
