/* tests/fuzz/fuzz_config.c: fuzzes config/config.c. Any input either fails
 * with a message or loads; a loaded config must dump to YAML that loads
 * again to the same dump (the round trip of `segstream config`). Built with
 * -DSEG_LIBFUZZER for libFuzzer; otherwise a plain main replays every file
 * of the directory argv[1] (CI runs the corpus this way). */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "config/config.h"

static char *dump(const cfg_t *c, int *len)
{
    int n = cfg_dump(c, NULL, 0);
    if (n < 0) abort();
    char *buf = malloc((size_t)n + 1);
    if (!buf || cfg_dump(c, buf, (size_t)n + 1) != n) abort();
    *len = n;
    return buf;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cfg_t c, d;
    char err[512];
    if (cfg_load_string(&c, (const char *)data, size, "fuzz", err, sizeof err) < 0) {
        if (!err[0]) abort(); /* every failure says why */
        cfg_free(&c);
        return 0;
    }
    int n1, n2;
    char *a = dump(&c, &n1);
    if (cfg_load_string(&d, a, (size_t)n1, "fuzz", err, sizeof err) < 0) {
        fprintf(stderr, "dump does not load back: %s\n%s\n", err, a);
        abort();
    }
    char *b = dump(&d, &n2);
    if (n1 != n2 || memcmp(a, b, (size_t)n1)) {
        fprintf(stderr, "dump differs after a round trip:\n%s\n---\n%s\n", a, b);
        abort();
    }
    free(a);
    free(b);
    cfg_free(&d);
    cfg_free(&c);
    return 0;
}

#ifndef SEG_LIBFUZZER
int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: %s CORPUS_DIR\n", argv[0]);
        return 2;
    }
    DIR *dir = opendir(argv[1]);
    if (!dir) {
        perror(argv[1]);
        return 1;
    }
    int files = 0;
    struct dirent *e;
    while ((e = readdir(dir))) {
        if (e->d_name[0] == '.') continue;
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", argv[1], e->d_name);
        FILE *f = fopen(path, "rb");
        if (!f) continue;
        size_t cap = 1 << 16, n = 0, r;
        uint8_t *buf = malloc(cap);
        while (buf && (r = fread(buf + n, 1, cap - n, f)) > 0)
            if ((n += r) == cap) buf = realloc(buf, cap *= 2);
        fclose(f);
        if (!buf) return 1;
        /* an exact-size copy, so that ASan sees reads past the end */
        uint8_t *exact = malloc(n ? n : 1);
        if (!exact) return 1;
        memcpy(exact, buf, n);
        free(buf);
        LLVMFuzzerTestOneInput(exact, n);
        free(exact);
        files++;
    }
    closedir(dir);
    printf("%d inputs replayed\n", files);
    return files > 0 ? 0 : 1;
}
#endif
