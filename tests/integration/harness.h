/* tests/integration/harness.h: helpers for tests that drive the built
 * `segstream` binary: temp dirs, running commands, reading files, and the
 * adjusted Rand index for checking recovered segments. */
#ifndef TEST_HARNESS_H
#define TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>

/* A fresh directory under $TMPDIR (or /tmp); the path is static storage. */
const char *h_tmpdir(void);
/* Runs a shell command (printf-style); returns its exit status (or -1). */
int h_run(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Whole file into a malloc'd NUL-terminated buffer; NULL when unreadable. */
char *h_slurp(const char *path, size_t *len);
/* Number of lines in a file (-1 when unreadable). */
long h_count_lines(const char *path);
/* 1 when the two files have identical bytes. */
int h_same_file(const char *a, const char *b);

/* Adjusted Rand index of two labelings of n items (labels are small ints). */
double h_ari(const int *a, const int *b, size_t n);

#endif
