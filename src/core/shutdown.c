/*
 * shutdown.c — the process-wide stop flag (see shutdown.h).
 */
#include "core/shutdown.h"

#include <stdatomic.h>

/* Lock-free, so that a signal handler may store it. */
static atomic_int requested;

void tm_shutdown_request(void)
{
    atomic_store(&requested, 1);
}

bool tm_shutdown_requested(void)
{
    return atomic_load(&requested) != 0;
}

static atomic_int stopping;

void tm_shutdown_stopping(void)
{
    atomic_store(&stopping, 1);
}

bool tm_shutdown_is_stopping(void)
{
    return atomic_load(&stopping) != 0;
}
