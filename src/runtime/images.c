/*
 * images.c — the rows a record of a retract stream retracts and adds
 * (tm_operator_images, operator.h), for the operators that keep state by row.
 * A file of its own, as collector.c is, so that a unit test with its own
 * version of operator.c's row-error handling can still link it.
 *
 * Thread: the operator's.
 */
#include "runtime/operator.h"
#include "core/error.h"

int tm_operator_images(const tm_operator_ctx_t *ctx, const tm_record_t *rec,
                       const tm_row_t *img[2], char *errstr, size_t errstr_size)
{
    img[0] = img[1] = NULL;
    switch (rec->op) {
    case TM_OP_READ:
    case TM_OP_CREATE:
        img[1] = rec->after;
        return 0;
    case TM_OP_UPDATE:
        if (rec->before == NULL || rec->after == NULL)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "operator %s: an update without its before image cannot be "
                             "retracted; the operator's input must be a retract stream",
                             ctx->uid);
        img[0] = rec->before;
        img[1] = rec->after;
        return 0;
    case TM_OP_DELETE:
        if (rec->before == NULL)
            return tm_seterr(errstr, errstr_size, TM_EINVAL,
                             "operator %s: a delete without its before image cannot be retracted",
                             ctx->uid);
        img[0] = rec->before;
        return 0;
    case TM_OP_TRUNCATE:
        return tm_seterr(errstr, errstr_size, TM_EUNSUPPORTED,
                         "operator %s: an input table was truncated; the operator cannot retract "
                         "rows it is not told about, so the job must be restarted from a fresh "
                         "snapshot",
                         ctx->uid);
    default:
        return 0; /* logical decoding messages carry no rows */
    }
}
