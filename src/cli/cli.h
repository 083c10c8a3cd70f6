/* cli: the commands that drive a pgfleet server through its API, from a laptop or a CI job:
 * login, projects, databases, connections, backups, restore, usage, branches, psql and
 * shell completion (docs/cli.md). They speak HTTP(S) with libcurl and JSON with jansson and
 * use util only: never the store or the engine, so they work against any server the same
 * way the SDK does. */
#ifndef PF_CLI_CLI_H
#define PF_CLI_CLI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

/* Exit statuses of every CLI command (printed by --help). */
enum {
    CLI_EXIT_OK = 0,
    CLI_EXIT_OTHER = 1,     /* a refused request (400, 401, 403, 422, ...), a failed wait */
    CLI_EXIT_USAGE = 2,     /* bad arguments */
    CLI_EXIT_NOT_FOUND = 3, /* 404 */
    CLI_EXIT_CONFLICT = 4,  /* 409 */
    CLI_EXIT_SERVER = 5     /* 5xx, network or TLS error, a server that cannot be reached */
};

/* Runs `pgfleet WORD ...` for a CLI command word: argv[0] is the word (projects, login,
 * ...). Returns the exit status. */
int cli_run(int argc, char **argv);

/* The usage lines of the CLI's commands, for `pgfleet --help`. */
void cli_usage(FILE *f);

/* The host-side command words (serve, token, ...), offered by the shell completion too. */
void cli_set_host_words(const char *const *words, size_t n);

#endif
