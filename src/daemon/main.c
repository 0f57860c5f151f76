/*
 * main.c — process entry point.
 */
#include "daemon/cli.h"

int main(int argc, char **argv)
{
    return tm_cli_main(argc, argv);
}
