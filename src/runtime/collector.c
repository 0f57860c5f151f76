/*
 * collector.c — an operator's output batch: filled, emitted when full or at
 * the end of a call (see operator.h).  A file of its own so that a unit test
 * with its own version of operator.c's row-error handling can still link these.
 *
 * Thread: the operator's.
 */
#include "runtime/operator.h"
#include "core/error.h"

int tm_collector_flush(tm_collector_t *c, tm_batch_t **cur, const char *who, char *errstr,
                       size_t errstr_size)
{
    if (*cur == NULL || (*cur)->count == 0)
        return 0;
    tm_batch_t *b = *cur;
    *cur = NULL;
    int rc = tm_collector_emit(c, b);
    return rc != 0 ? tm_seterr(errstr, errstr_size, rc, "%s: the output was refused (%s)", who,
                               tm_strerror(rc))
                   : 0;
}

int tm_collector_room(tm_collector_t *c, tm_batch_t **cur, const char *who, char *errstr,
                      size_t errstr_size)
{
    if (*cur != NULL && tm_batch_full(*cur)) {
        int rc = tm_collector_flush(c, cur, who, errstr, errstr_size);
        if (rc != 0)
            return rc;
    }
    if (*cur == NULL && (*cur = tm_batch_new()) == NULL)
        return tm_seterr(errstr, errstr_size, TM_ENOMEM, "%s: out of memory", who);
    return 0;
}
