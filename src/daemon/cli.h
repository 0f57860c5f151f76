/*
 * cli.h — the tidemark command line: run, explain, --version, --help.
 *
 * Thread: main.  This layer and main() are the only places that decide the
 * process exit code (STYLE: only main and the lifecycle manager stop the
 * process).
 */
#ifndef TM_DAEMON_CLI_H
#define TM_DAEMON_CLI_H

int tm_cli_main(int argc, char **argv);

#endif
