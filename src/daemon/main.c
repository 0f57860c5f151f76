/*
 * main.c — process entry point.
 *
 * Before anything else it raises the soft RLIMIT_NOFILE to the hard limit:
 * the data plane opens a descriptor per checkpoint file, sink file and
 * connection, and the distribution's soft default (often 1024) is a limit
 * meant for select(), which tidemark does not use.  Failing to raise it is not
 * an error; the admin API keeps a reserve under whatever limit there is
 * (admin.h, TM_ADMIN_FD_RESERVE).
 */
#include "daemon/cli.h"

#include <sys/resource.h>

static void raise_nofile_limit(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rlim_t hard = rl.rlim_max;
    rl.rlim_cur = hard;
    /* An unlimited hard limit is above the kernel's nr_open; settle for 2^20 then. */
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 && hard > (rlim_t)1 << 20) {
        rl.rlim_cur = (rlim_t)1 << 20;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

int main(int argc, char **argv)
{
    raise_nofile_limit();
    return tm_cli_main(argc, argv);
}
