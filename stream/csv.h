/* stream/csv.h: CSV input for replays. Three layers, each usable alone:
 *  - strm_csv_*: an RFC 4180 reader (quotes, "" escapes, delimiters and
 *    newlines inside quotes, CRLF, a BOM, a configurable delimiter or runs
 *    of blanks), handing out one record's fields at a time (csv.c);
 *  - strm_csvmap_*: a column mapping from CSV columns to the contract's
 *    fields, written as `key=value,...` or read from a file, and the
 *    built-in presets for the data sets in ../shared/data (csv_map.c);
 *  - strm_csvsrc_*: a CSV file read through a mapping as a stream of
 *    contract events, encoded as JSON so that the pipeline decodes and
 *    validates them as it does every other input; rows that cannot be
 *    mapped come out as dead letters whose reason names the column
 *    (csv_map.c).
 * Never touches Kafka, Redis or the segmenter's state. */
#ifndef STRM_CSV_H
#define STRM_CSV_H

#include <stddef.h>
#include <stdint.h>

/* ---------- the reader ---------- */

/* Delimiter for runs of spaces and tabs: leading and trailing blanks are
 * ignored, so fields are never empty (CDNOW's fixed-width text). */
#define STRM_CSV_WHITESPACE (-1)

typedef struct strm_csv_field {
    const char *s; /* valid until the next strm_csv_next; not NUL-terminated */
    size_t len;
} strm_csv_field_t;

typedef struct strm_csv strm_csv_t;

/* Opens a file ("-" is stdin) or, with _mem, a buffer the reader copies.
 * delim is a byte or STRM_CSV_WHITESPACE. NULL with err set on failure. */
strm_csv_t *strm_csv_open(const char *path, int delim, char *err, size_t errlen);
strm_csv_t *strm_csv_open_mem(const void *buf, size_t len, int delim);
void strm_csv_close(strm_csv_t *r);

/* Next record: 1 with its fields, 0 at the end, -1 for a record that cannot
 * be read (*reason "csv_unterminated_quote": a quote never closed, or
 * "csv_oversized": longer than the maximum record); reading then goes on at
 * the line after the one where the bad record began. -1 with a NULL raw
 * record ("read_error", "out_of_memory") when nothing more can be read;
 * every later call returns 0. Blank lines are skipped. A field that was
 * quoted is returned without its quotes and with "" as ". */
int strm_csv_next(strm_csv_t *r, const strm_csv_field_t **fields, size_t *n, const char **reason);
/* The bytes of the last record as they stand in the file, without its line
 * end (for a -1 record: its first line, at most 4 KiB). */
void strm_csv_raw(const strm_csv_t *r, const char **raw, size_t *len);
/* 1-based line number where the last record began. */
uint64_t strm_csv_line(const strm_csv_t *r);
/* Bytes consumed so far, and the file's size (0 when unknown). */
uint64_t strm_csv_offset(const strm_csv_t *r);
uint64_t strm_csv_size(const strm_csv_t *r);
/* Largest record (default 1 MiB; 0 restores it). */
void strm_csv_set_max_record(strm_csv_t *r, size_t max);

/* ---------- time values ---------- */

typedef enum {
    STRM_TS_MS = 1, /* integer (or decimal) ms since epoch */
    STRM_TS_S,      /* seconds since epoch (Taobao) */
    STRM_TS_US,     /* microseconds since epoch (GA4 exports) */
    STRM_TS_ISO,    /* RFC 3339, or "YYYY-MM-DD[ HH:MM[:SS[.f]]]" ('T' or ' '; '/' ok) */
    STRM_TS_DMY,    /* "DD/MM/YYYY[ HH:MM[:SS]]", 1- or 2-digit day, month and hour */
    STRM_TS_MDY,    /* "MM/DD/YYYY[ HH:MM[:SS]]" (US exports) */
    STRM_TS_YMD8    /* "YYYYMMDD" (CDNOW) */
} strm_ts_format_t;

/* Parses one time value into ms since epoch. The calendar forms take an
 * optional zone after the time ("Z", "UTC", "GMT", "+08:00", "+0800",
 * "+08"); without one the value is in local time at tz_min minutes east of
 * UTC (0: UTC). Returns 0, or -1 when the value is not in that format or
 * lies outside 1970..9999. */
int strm_csv_parse_time(const char *s, size_t len, strm_ts_format_t fmt, int tz_min, int64_t *ms);
/* A format's name ("ms", "s", "us", "iso", "dmy", "mdy", "yyyymmdd") -> 0 on
 * success. */
int strm_csv_ts_format(const char *name, size_t len, strm_ts_format_t *fmt);

/* ---------- the mapping ---------- */

typedef struct strm_csvmap strm_csvmap_t;

strm_csvmap_t *strm_csvmap_new(void);
void strm_csvmap_free(strm_csvmap_t *m);
/* Adds entries to the mapping, later ones overriding earlier ones: a spec
 * is `key=value` entries separated by commas or newlines (`key: value`
 * also accepted, '#' starts a comment line); see README "CSV input" for the
 * keys. -1 with err naming the entry when a key or value is invalid. */
int strm_csvmap_parse(strm_csvmap_t *m, const char *spec, char *err, size_t errlen);
/* Adds a built-in preset's entries (cdnow, online-retail, rees46, taobao,
 * olist). -1 with err listing the names when there is no such preset. */
int strm_csvmap_preset(strm_csvmap_t *m, const char *name, char *err, size_t errlen);
/* The spec of a preset, or NULL; and the preset names, NULL-terminated. */
const char *strm_csvmap_preset_spec(const char *name);
extern const char *const strm_csvmap_presets[];
/* 1 when the mapping asks for sorting by time (sort=yes). */
int strm_csvmap_sort(const strm_csvmap_t *m);
/* Join j's file as the mapping names it (NULL past the last join), and in
 * buf the path strm_csvsrc_open() reads it from for the CSV file at path
 * (a relative name is beside that file). */
const char *strm_csvmap_join(const strm_csvmap_t *m, int j, const char *path, char *buf,
                             size_t len);

/* ---------- a CSV file as contract events ---------- */

typedef struct strm_csvsrc strm_csvsrc_t;

/* Opens path through mapping m (which must outlive the source: reasons
 * point into it). Reads the header, resolves every column the mapping
 * names and loads the joined files (relative to path's directory). sort:
 * every row is read and mapped first, then events come out ordered by
 * (ts, line). NULL with err set when the file cannot be read or the
 * mapping does not fit it (an unknown column, no customer_id, ...). */
strm_csvsrc_t *strm_csvsrc_open(const char *path, strm_csvmap_t *m, int sort, char *err,
                                size_t errlen);
/* Next event: 1 with rec/len a contract event as JSON; -1 with rec/len the
 * row as it stands in the file and *reason why it cannot be mapped
 * ("bad_ts:InvoiceDate", "missing_customer_id:CustomerID", ...; a static or
 * mapping-owned string); 0 at the end. *line is the file line the event
 * (its first row) came from. rec is valid until the next call. */
int strm_csvsrc_next(strm_csvsrc_t *s, const char **rec, size_t *len, const char **reason,
                     uint64_t *line);
/* 1 when events come out ordered by time (sort asked for here or by the
 * mapping). */
int strm_csvsrc_sorted(const strm_csvsrc_t *s);
/* How far through the input, 0..1 (for progress). */
double strm_csvsrc_progress(const strm_csvsrc_t *s);
/* Rows read and rows merged into another event (group=). */
uint64_t strm_csvsrc_rows(const strm_csvsrc_t *s);
uint64_t strm_csvsrc_merged(const strm_csvsrc_t *s);
void strm_csvsrc_close(strm_csvsrc_t *s);

#endif
