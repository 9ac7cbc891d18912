/* stream/buf.c: the growable output buffer the encoders append to. Owns its
 * one allocation (freed by strm_buf_free); never shrinks, never frees on
 * failure: a failed reserve leaves the buffer as it was. */
#include <stdlib.h>
#include <string.h>
#include "stream/codec.h"

void strm_buf_init(strm_buf_t *b)
{
    b->p = NULL;
    b->len = 0;
    b->cap = 0;
}

void strm_buf_free(strm_buf_t *b)
{
    free(b->p);
    strm_buf_init(b);
}

int strm_buf_reserve(strm_buf_t *b, size_t extra)
{
    if (extra <= b->cap - b->len) return 0;
    /* No record or change event comes near this: refusing larger requests
     * keeps a corrupt length from asking the allocator for exabytes. */
    if (b->len > STRM_BUF_MAX || extra > STRM_BUF_MAX - b->len) return -1;
    size_t need = b->len + extra;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need) cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) return -1;
    b->p = p;
    b->cap = cap;
    return 0;
}

int strm_buf_append(strm_buf_t *b, const void *data, size_t len)
{
    if (len == 0) return 0;
    if (strm_buf_reserve(b, len) < 0) return -1;
    memcpy(b->p + b->len, data, len);
    b->len += len;
    return 0;
}
