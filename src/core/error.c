/*
 * error.c — error code descriptions and the mapping to exit codes.
 */
#include "core/error.h"

#include <stdarg.h>
#include <stdio.h>

const char *tm_strerror(int err)
{
    switch (err) {
    case 0:
        return "success";
#define TM__ERR_CASE(name, val, desc)                                                              \
    case TM_##name:                                                                                \
        return desc;
        TM_ERRNO_MAP(TM__ERR_CASE)
#undef TM__ERR_CASE
    }
    return "unknown error";
}

int tm_exit_code_for(int err)
{
    switch (err) {
    case 0:
    case TM_ESTOPPED:
        return TM_EXIT_OK;
    case TM_ECONFIG:
    case TM_ESQL:
    case TM_EINVAL:
    case TM_EUNSUPPORTED:
        return TM_EXIT_CONFIG;
    case TM_ECONN:
    case TM_ESOURCE:
    case TM_EPROTO:
        return TM_EXIT_SOURCE;
    case TM_ECHECKPOINT:
        return TM_EXIT_CHECKPOINT;
    default:
        return TM_EXIT_FAILURE;
    }
}

int tm_seterr(char *errstr, size_t errstr_size, int err, const char *fmt, ...)
{
    if (errstr != NULL && errstr_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}
