/*
 * job_int.h — what job.c shares with the other files of the job layer.
 * Thread: as job.h.
 */
#ifndef TM_SQL_JOB_INT_H
#define TM_SQL_JOB_INT_H

#include "sql/job.h"

#include <stddef.h>

/*
 * Checks a source table's `watermark` option (sql/job_watermark.c) and
 * records its column and delay in t->wm_column / t->wm_delay_us; nothing
 * without the option.  0, TM_ESQL with "path:line:col: …", or TM_ENOMEM.
 */
int tm__job_watermark(tm_job_t *job, tm_job_table_t *t, char *errstr, size_t errstr_size);

#endif
