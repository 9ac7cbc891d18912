/* stream/codec.h: wire formats. Input events from JSON or msgpack (told apart
 * by the first byte), including Segment `track` and GA4 export shapes
 * (CONTRACT §1); change events and input events out as JSON or msgpack; and
 * record framing for files (JSON lines, msgpack streams). Never touches Kafka
 * or Redis. Every rejection carries a short snake_case reason: it becomes the
 * dead-letter header `error` and a metrics label. */
#ifndef STRM_CODEC_H
#define STRM_CODEC_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include "segmenter/segmenter.h"

#define STRM_MAX_EVENT_BYTES_DEFAULT (64 * 1024)

/* A growable output buffer, at most STRM_BUF_MAX bytes. */
#define STRM_BUF_MAX ((size_t)1 << 30)
typedef struct strm_buf {
    char *p;
    size_t len, cap;
} strm_buf_t;
void strm_buf_init(strm_buf_t *b);
void strm_buf_free(strm_buf_t *b);
int strm_buf_reserve(strm_buf_t *b, size_t extra);
int strm_buf_append(strm_buf_t *b, const void *data, size_t len);

/* Decodes one payload into ev. JSON when the first non-blank byte is '{',
 * msgpack when it is a map header (0x80-0x8f, 0xde, 0xdf); anything else is
 * "not_json_or_msgpack". Returns 0, or -1 with *reason set to a static
 * string ("oversized", "bad_json", "truncated_msgpack", "missing_customer_id",
 * "bad_type", "negative_amount", ...). max_bytes 0 means the default. */
int strm_decode(const void *buf, size_t len, size_t max_bytes, seg_event_t *ev,
                const char **reason);
int strm_decode_json(const char *buf, size_t len, seg_event_t *ev, const char **reason);
int strm_decode_msgpack(const void *buf, size_t len, seg_event_t *ev, const char **reason);

/* Parses an RFC 3339 timestamp ("2024-01-02T03:04:05.678Z", offsets allowed)
 * into ms since epoch. Returns 0 or -1. */
int strm_parse_rfc3339(const char *s, size_t len, int64_t *ms);

/* Encodes an input event in the contract's own shape (what `gen` writes). */
int strm_event_json(const seg_event_t *ev, strm_buf_t *out);
int strm_event_msgpack(const seg_event_t *ev, strm_buf_t *out);

/* Encodes a change event (CONTRACT §3); cluster changes carry labels in
 * from/to and ids in from_id/to_id. Appends to out. */
int strm_change_json(const seg_change_t *ch, int64_t emitted_at, strm_buf_t *out);
int strm_change_msgpack(const seg_change_t *ch, int64_t emitted_at, strm_buf_t *out);

/* Record framing for files: JSON lines (blank lines skipped) or a stream of
 * msgpack maps, detected from the first byte of the file unless told. */
typedef struct strm_file strm_file_t;
strm_file_t *strm_file_open(const char *path, char *err, size_t errlen);
/* Frames the file as msgpack (1) or JSON lines (0) whatever its first byte
 * says; -1: told by the first byte (the default). Before the first read. */
void strm_file_framing(strm_file_t *f, int msgpack);
/* errno of the read behind a "read_error" (0 before one). */
int strm_file_errno(const strm_file_t *f);
/* Next record: 1 with rec and len pointing into an internal buffer valid until
 * the next call, 0 at end of file, -1 on a bad record (reason in *reason;
 * rec/len the bad bytes when they can be shown, else NULL/0; reading goes on
 * after it) or on "read_error" (the input could not be read: the next call
 * returns 0, and the caller fails). */
int strm_file_next(strm_file_t *f, const char **rec, size_t *len, const char **reason);
/* 1-based number of the last record returned (JSON lines: its line, blank
 * lines counted; msgpack: the n-th map), and bytes read so far. */
uint64_t strm_file_recno(const strm_file_t *f);
uint64_t strm_file_offset(const strm_file_t *f);
uint64_t strm_file_size(const strm_file_t *f);
void strm_file_close(strm_file_t *f);
/* Largest record accepted (default 16 MiB; 0 restores it). For tests and
 * callers with their own limit. */
void strm_file_set_max_record(strm_file_t *f, size_t max);

#endif
