/* tests/unit/cmd/test_cli.c: the command-line number and time parsers
 * (cmd/cli.c) take a whole number in range and nothing else: strtoull's
 * leading blanks and signs, which wrap (" -1" = 2^64 - 1), are refused;
 * cli_same_file() sees one file behind two names. */
#include <criterion/criterion.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include "cmd/cli.h"

Test(cli, u64_takes_digits_only)
{
    uint64_t v = 7;
    cr_assert_eq(cli_parse_u64("0", &v), 0);
    cr_assert_eq(v, 0);
    cr_assert_eq(cli_parse_u64("18446744073709551615", &v), 0);
    cr_assert_eq(v, UINT64_MAX);
    const char *bad[] = {"",     " 1",  " -1", "-1", "+1", "\t5", "1 ", "18446744073709551616",
                         "0x10", "1e3", "-0"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        v = 42;
        cr_assert_eq(cli_parse_u64(bad[i], &v), -1, "'%s' taken", bad[i]);
        cr_assert_eq(v, 42, "'%s' wrote the value", bad[i]);
    }
    cr_assert_eq(cli_parse_u64(NULL, &v), -1);
}

Test(cli, i64_takes_an_optional_minus_and_digits)
{
    int64_t v = 7;
    cr_assert_eq(cli_parse_i64("-1", &v), 0);
    cr_assert_eq(v, -1);
    cr_assert_eq(cli_parse_i64("-9223372036854775808", &v), 0);
    cr_assert_eq(v, INT64_MIN);
    const char *bad[] = {"", "-", " 1", " -1", "+1", "--1", "- 1", "9223372036854775808", "1x"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(cli_parse_i64(bad[i], &v), -1, "'%s' taken", bad[i]);
}

Test(cli, a_time_never_wraps_to_a_negative_one)
{
    int64_t ms = 7;
    cr_assert_eq(cli_parse_time("9223372036854775807", &ms), 0);
    cr_assert_eq(ms, INT64_MAX);
    cr_assert_eq(cli_parse_time("2024-01-01T00:00:00Z", &ms), 0);
    cr_assert_eq(ms, 1704067200000LL);
    cr_assert_eq(cli_parse_time("2024-01-02", &ms), 0, "a date alone is its midnight UTC");
    cr_assert_eq(ms, 1704067200000LL + 86400000LL);
    const char *bad[] = {"18446744073709551615", "9223372036854775808", " 5",        "-5", "+5", "",
                         "2024-02-30",           "2024-1-020",          "2024-01-0Z"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(cli_parse_time(bad[i], &ms), -1, "'%s' taken (as %lld)", bad[i],
                     (long long)ms);
}

/* A symlink whose target does not exist yet: writing through it creates
 * the target, so link and target are one file (also through a relative
 * target in another directory, and a link to a link). */
Test(cli, a_dangling_symlink_is_the_file_it_would_create)
{
    char dir[] = "/tmp/test_cli.XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmd[512], a[256], b[256];
    snprintf(cmd, sizeof cmd,
             "cd %s && mkdir sub && ln -s target.out link.out && ln -s link.out link2.out && "
             "ln -s ../t2.out sub/up.out && ln -s loop1 loop2 && ln -s loop2 loop1",
             dir);
    cr_assert_eq(system(cmd), 0);
    const struct {
        const char *a, *b;
        int same;
    } cases[] = {
        {"target.out", "link.out", 1},  {"link.out", "target.out", 1},
        {"link2.out", "target.out", 1}, {"link2.out", "link.out", 1},
        {"sub/up.out", "t2.out", 1},    {"sub/up.out", "target.out", 0},
        {"link.out", "other.out", 0},   {"loop1", "target.out", 0},

    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        snprintf(a, sizeof a, "%s/%s", dir, cases[i].a);
        snprintf(b, sizeof b, "%s/%s", dir, cases[i].b);
        cr_expect_eq(cli_same_file(a, b), cases[i].same, "%s %s", cases[i].a, cases[i].b);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
