/* cmd/cli.h: what the subcommands share: logging to stderr with a level,
 * the wall clock, argument helpers, and JSON/CSV string writers. The only
 * clock readers in segstream live in cmd/. */
#ifndef CMD_CLI_H
#define CMD_CLI_H

#include <stdint.h>
#include <stdio.h>

enum { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
extern int cli_log_level;
void cli_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cli_set_log_level(const char *name);

int64_t cli_now_ms(void);     /* wall clock, ms since epoch */
double cli_monotonic_s(void); /* for rates and progress only */

/* Parses ms since epoch or an RFC 3339 time. */
int cli_parse_time(const char *s, int64_t *ms);
/* A whole decimal integer in range, nothing else in s (no blanks, no '+',
 * no '-' for u64); -1 otherwise. */
int cli_parse_i64(const char *s, int64_t *out);
int cli_parse_u64(const char *s, uint64_t *out);

/* 1 when two command-line paths name one file that writing would empty:
 * one existing regular file (by device and inode, so through symlinks and
 * hard links), or one name to be created (the same directory and file
 * name, or a dangling symlink to it). "-", kafka:TOPIC, devices and pipes
 * never do. */
int cli_same_file(const char *a, const char *b);
/* An output file opened for writing, "-" being stdout; cli_close_out
 * closes it (stdout: flushes only). */
FILE *cli_open_out(const char *path);
int cli_close_out(FILE *f);
/* A file named on the command line by flag: a value starting with "--" is
 * most often the next option after a forgotten value ("--out --truth
 * t.csv"), so it is refused (./--name names such a file); -1 after saying
 * so as "segstream CMD: ...". NULL (not given) passes. */
int cli_file_arg(const char *cmd, const char *flag, const char *value);

/* An event time as YYYY-MM-DDTHH:MM:SSZ (UTC; the ms number when out of
 * range). */
void cli_fmt_time(int64_t ms, char *buf, size_t len);
/* librdkafka's log lines in segstream's format (strm_kopts_t.log): syslog
 * levels mapped to ours; safe from librdkafka's threads. */
void cli_kafka_log(int level, const char *fac, const char *msg);

/* Writes s (n bytes) as a JSON string, quotes included; invalid UTF-8
 * becomes U+FFFD, control bytes are escaped. */
void cli_json_str(FILE *f, const char *s, size_t n);
/* Writes s as one CSV field: as it is, or quoted ("" for a quote) when it
 * holds a comma, a quote or a line break. */
void cli_csv_field(FILE *f, const char *s);

int cmd_broker(int argc, char **argv);
int cmd_compare(int argc, char **argv);
int cmd_gen(int argc, char **argv);
int cmd_inspect(int argc, char **argv);
int cmd_replay(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_version(int argc, char **argv);

#endif
