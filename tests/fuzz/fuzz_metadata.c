/*
 * fuzz_metadata.c — libFuzzer target for the checkpoint/savepoint
 * `_metadata` reader (tm_checkpoint_load_dir, src/runtime/checkpoint.c).
 *
 * Role: the input becomes <dir>/_metadata in a private temporary directory
 * (under /dev/shm when it exists), since the reader takes a directory; what
 * loads is then looked up the way recovery does (a source token, a sink
 * handle) and released.
 *
 * Invariants: no crash, leak or undefined behaviour on any input; a load
 * either succeeds or fails with a message.
 *
 * Run (tests/fuzz/meson.build): build-fuzz/tests/fuzz/fuzz-metadata tests/fuzz/metadata
 *
 * Thread: libFuzzer calls the target from one thread.
 */
#include "runtime/checkpoint.h"
#include "fuzz_util.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *dir = fuzz_tmp_dir("meta");
    char path[128];
    snprintf(path, sizeof(path), "%s/_metadata", dir);
    fuzz_write_file(path, data, size);
    tm_checkpoint_info_t info;
    char err[512] = "";
    int rc = tm_checkpoint_load_dir(dir, &info, err, sizeof(err));
    if (rc != 0) {
        if (err[0] == '\0')
            abort(); /* every failure says why */
        return 0;
    }
    for (int i = 0; i < info.nsources; i++)
        (void)tm_checkpoint_source_token(&info, info.sources[i].name);
    for (int i = 0; i < info.nsinks; i++)
        (void)tm_checkpoint_sink_handle(&info, info.sinks[i].name);
    tm_checkpoint_info_release(&info);
    return 0;
}
