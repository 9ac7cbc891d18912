/* cmd/main.c: the `segstream` binary: dispatches to one subcommand. */
#include <stdio.h>
#include <string.h>
#include "cmd/cli.h"

static const struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} commands[] = {
    {"broker", cmd_broker, "an embedded Kafka-protocol broker for development and tests"},
    {"compare", cmd_compare, "how two replay outputs or namespaces differ: sizes, KPIs, moves"},
    {"gen", cmd_gen, "generate a synthetic customer population with planted segments"},
    {"inspect", cmd_inspect, "one customer's segments and features, read from Redis"},
    {"replay", cmd_replay,
     "re-run events (a file, CSV, or a time range of a topic) into a namespace"},
    {"run", cmd_run, "the daemon: consume events, segment, publish changes, serve /metrics"},
    {"version", cmd_version, "print the version"},
};

static void usage(FILE *f)
{
    fprintf(f, "usage: segstream <command> [options]   (segstream <command> --help)\n\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(f, "  %-8s %s\n", commands[i].name, commands[i].help);
}

int cmd_version(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: segstream version   (also segstream --version): print the version\n");
        return 0;
    }
    if (argc > 1) {
        fprintf(stderr, "segstream version: unexpected argument '%s'\n", argv[1]);
        return 2;
    }
    printf("segstream 0.1.0\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
        return cmd_version(1, argv + 1);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            /* getopt names argv[0] in its own errors: "segstream run: ...",
             * as the commands' other errors say */
            char prog[64];
            snprintf(prog, sizeof(prog), "segstream %s", commands[i].name);
            argv[1] = prog;
            return commands[i].fn(argc - 1, argv + 1);
        }
    fprintf(stderr, "segstream: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
