/* tests/fuzz/fuzz_common.h: shared by the codec fuzz targets. The checks
 * every accepted event must pass (field invariants, and an exact round trip
 * through both encoders and strm_decode), and the plain main each target
 * gets unless built for libFuzzer (-DSEG_LIBFUZZER): it replays each regular
 * file of the directory argv[1] through LLVMFuzzerTestOneInput and returns 0
 * when all ran (a crash or an abort is the failure). */
#ifndef SEG_FUZZ_COMMON_H
#define SEG_FUZZ_COMMON_H

#include <math.h>
#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "stream/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(c)                                                                              \
    do {                                                                                           \
        if (!(c)) {                                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #c);                  \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

static inline int fuzz_bounded(const char *s, size_t len, size_t max)
{
    return len <= max && memchr(s, 0, len) == NULL && s[len] == 0;
}

/* What any accepted event must look like. */
static inline void fuzz_check_event(const seg_event_t *ev)
{
    FUZZ_CHECK(ev->id_len >= 1 && fuzz_bounded(ev->customer_id, ev->id_len, SEG_ID_MAX));
    FUZZ_CHECK(ev->type < SEG_EV__COUNT);
    FUZZ_CHECK(ev->channel < SEG_CH__COUNT);
    FUZZ_CHECK(ev->discount <= 1);
    FUZZ_CHECK(ev->ts >= 0 && ev->ts <= 253402300799999LL);
    FUZZ_CHECK(isfinite(ev->amount) && ev->amount >= 0);
    FUZZ_CHECK(ev->has_amount || ev->amount == 0);
    FUZZ_CHECK(fuzz_bounded(ev->category, ev->category_len, SEG_CATEGORY_MAX));
    FUZZ_CHECK(fuzz_bounded(ev->event_id, ev->event_id_len, SEG_EVID_MAX));
    FUZZ_CHECK(ev->n_traits <= SEG_TRAITS_MAX);
    for (int i = 0; i < ev->n_traits; i++) {
        FUZZ_CHECK(strlen(ev->traits[i].key) >= 1);
        FUZZ_CHECK(fuzz_bounded(ev->traits[i].key, strlen(ev->traits[i].key), SEG_TRAIT_KEY - 1));
        FUZZ_CHECK(fuzz_bounded(ev->traits[i].val, strlen(ev->traits[i].val), SEG_TRAIT_VAL - 1));
    }
}

static inline void fuzz_same(const seg_event_t *a, const seg_event_t *b)
{
    FUZZ_CHECK(a->id_len == b->id_len && memcmp(a->customer_id, b->customer_id, a->id_len) == 0);
    FUZZ_CHECK(a->type == b->type && a->ts == b->ts && a->channel == b->channel);
    FUZZ_CHECK(a->discount == b->discount && a->has_amount == b->has_amount);
    FUZZ_CHECK(memcmp(&a->amount, &b->amount, sizeof a->amount) == 0);
    FUZZ_CHECK(a->category_len == b->category_len && strcmp(a->category, b->category) == 0);
    FUZZ_CHECK(a->event_id_len == b->event_id_len && strcmp(a->event_id, b->event_id) == 0);
    FUZZ_CHECK(a->n_traits == b->n_traits);
    for (int i = 0; i < a->n_traits; i++) {
        FUZZ_CHECK(strcmp(a->traits[i].key, b->traits[i].key) == 0);
        FUZZ_CHECK(strcmp(a->traits[i].val, b->traits[i].val) == 0);
    }
}

/* An accepted event re-encoded in either format decodes to the same event. */
static inline void fuzz_roundtrip(const seg_event_t *ev)
{
    fuzz_check_event(ev);
    for (int fmt = 0; fmt < 2; fmt++) {
        strm_buf_t b;
        strm_buf_init(&b);
        FUZZ_CHECK((fmt ? strm_event_msgpack(ev, &b) : strm_event_json(ev, &b)) == 0);
        seg_event_t back;
        const char *why = NULL;
        int r = strm_decode(b.p, b.len, b.len, &back, &why);
        if (r != 0) fprintf(stderr, "re-decode failed: %s: %.*s\n", why, (int)b.len, b.p);
        FUZZ_CHECK(r == 0);
        fuzz_same(ev, &back);
        strm_buf_free(&b);
    }
}

#ifndef SEG_LIBFUZZER
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static int fuzz_replay(const char *file)
{
    FILE *fp = fopen(file, "rb");
    if (!fp) return -1;
    size_t cap = 1 << 16, n = 0;
    uint8_t *buf = malloc(cap);
    for (;;) {
        if (n == cap) buf = realloc(buf, cap *= 2);
        size_t r = fread(buf + n, 1, cap - n, fp);
        if (r == 0) break;
        n += r;
    }
    fclose(fp);
    /* an exact-size copy, so ASan sees any read past the end */
    uint8_t *exact = malloc(n ? n : 1);
    memcpy(exact, buf, n);
    free(buf);
    LLVMFuzzerTestOneInput(exact, n);
    free(exact);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR|FILE...\n", argv[0]);
        return 2;
    }
    int runs = 0;
    for (int a = 1; a < argc; a++) {
        struct stat st;
        if (stat(argv[a], &st) < 0) {
            perror(argv[a]);
            return 1;
        }
        if (!S_ISDIR(st.st_mode)) {
            if (fuzz_replay(argv[a]) < 0) return 1;
            runs++;
            continue;
        }
        DIR *d = opendir(argv[a]);
        if (!d) return 1;
        struct dirent *e;
        char path[4096];
        while ((e = readdir(d))) {
            snprintf(path, sizeof path, "%s/%s", argv[a], e->d_name);
            if (stat(path, &st) < 0 || !S_ISREG(st.st_mode)) continue;
            if (fuzz_replay(path) < 0) return 1;
            runs++;
        }
        closedir(d);
    }
    printf("%d inputs replayed\n", runs);
    return 0;
}
#endif
#endif
