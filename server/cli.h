#ifndef BUZON_CLI_H
#define BUZON_CLI_H

#include "lib/config.h"

/*
 * The admin CLI: "buzon --config FILE domain|user|alias ...". argv[0] is the
 * command word ("domain", "user" or "alias"). Prints results on standard
 * output, a one-line reason on standard error for bad input, and returns the
 * process exit code (0 ok, 1 refused or failed, 2 usage).
 */
int cli_main(const struct config *cfg, int argc, char **argv);

/* Reads a password from the terminal (twice, without echo) or, when
 * from_stdin is set, one line of standard input. Returns a malloc'd string or
 * NULL with a reason printed. */
char *cli_read_password(int from_stdin, int confirm);

#endif
