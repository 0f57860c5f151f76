/*
 * fuzz_util.h — what several fuzz targets share: the LLVMFuzzerTestOneInput
 * prototype (-Wmissing-prototypes) and one scratch directory per process.
 */
#ifndef TM_FUZZ_UTIL_H
#define TM_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A directory of this process's own, made once: in /dev/shm when it can be, else /tmp. */
static inline const char *fuzz_tmp_dir(const char *name)
{
    static char dir[96];
    if (dir[0] == '\0') {
        snprintf(dir, sizeof(dir), "/dev/shm/tm-fuzz-%s-XXXXXX", name);
        if (mkdtemp(dir) == NULL) {
            snprintf(dir, sizeof(dir), "/tmp/tm-fuzz-%s-XXXXXX", name);
            if (mkdtemp(dir) == NULL)
                abort();
        }
    }
    return dir;
}

/* Writes the fuzz input to `path` (replacing it); aborts on any error. */
static inline void fuzz_write_file(const char *path, const uint8_t *data, size_t size)
{
    FILE *f = fopen(path, "wb");
    if (f == NULL || (size > 0 && fwrite(data, 1, size, f) != size))
        abort();
    fclose(f);
}

#endif
