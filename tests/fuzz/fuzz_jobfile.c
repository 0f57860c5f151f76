/*
 * fuzz_jobfile.c — libFuzzer target for job files: parse, bind and plan.
 *
 * Role: the input is a job file's text.  It goes through tm_job_parse
 * (libpg_query, the text checks, the statement readers, option validation
 * with ${…} expansion), then tm_plan_new (binding every INSERT and planning
 * it) and tm_plan_explain (which creates and frees every source and sink
 * without I/O, as `tidemark explain` does).  Nothing connects anywhere.
 *
 * Invariants: no crash, no leak, no undefined behaviour on any input; an
 * input either yields a plan or an error message.
 *
 * Inputs that name device, proc or sys files are skipped: a ${file:/dev/stdin}
 * reference would block reading the fuzzer's own input, which is the user's
 * choice in a real job, not a bug.
 *
 *   CC=clang meson setup build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false
 *   ninja -C build-fuzz tests/fuzz/fuzz-jobfile
 *   build-fuzz/tests/fuzz/fuzz-jobfile -max_len=4096 tests/fuzz/jobfile
 *
 * Every file in tests/fuzz/jobfile/ is replayed as `fuzz-corpus-jobfile`.
 * Thread: libFuzzer calls the target from one thread.
 */
#include "plan/plan.h"
#include "sql/job.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static FILE *devnull;
    if (size > 65536)
        return 0;
    if (devnull == NULL && (devnull = fopen("/dev/null", "w")) == NULL)
        return 0;
    char *sql = malloc(size + 1);
    if (sql == NULL)
        return 0;
    memcpy(sql, data, size);
    sql[size] = '\0';
    if (strstr(sql, "/dev/") || strstr(sql, "/proc/") || strstr(sql, "/sys/")) {
        free(sql);
        return 0;
    }
    char err[2048];
    tm_job_t *job = NULL;
    tm_plan_t *plan = NULL;
    int rc = tm_job_parse(sql, "fuzz.sql", &job, err, sizeof(err));
    if (rc == 0)
        rc = tm_plan_new(job, &plan, err, sizeof(err));
    if (rc == 0)
        tm_plan_explain(plan, devnull, err, sizeof(err));
    tm_plan_free(plan);
    tm_job_free(job);
    free(sql);
    return 0;
}
