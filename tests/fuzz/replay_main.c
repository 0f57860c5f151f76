/*
 * replay_main.c — runs a fuzz target over every file of its corpus folder.
 *
 * systemd's model: every input a fuzzer ever found (and every seed) is a
 * regression test in CI, without needing libFuzzer.  Built when the `fuzz`
 * option is off; with it on, libFuzzer provides main() instead.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv)
{
    int files = 0;
    for (int a = 1; a < argc; a++) {
        DIR *d = opendir(argv[a]);
        if (d == NULL) {
            fprintf(stderr, "cannot open corpus %s\n", argv[a]);
            return 1;
        }
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.')
                continue;
            char path[4096];
            snprintf(path, sizeof(path), "%s/%s", argv[a], e->d_name);
            FILE *f = fopen(path, "rb");
            if (f == NULL)
                continue;
            fseek(f, 0, SEEK_END);
            long n = ftell(f);
            fseek(f, 0, SEEK_SET);
            uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
            if (buf != NULL && fread(buf, 1, (size_t)n, f) == (size_t)n) {
                LLVMFuzzerTestOneInput(buf, (size_t)n);
                files++;
            }
            free(buf);
            fclose(f);
        }
        closedir(d);
    }
    fprintf(stderr, "replayed %d inputs\n", files);
    return files > 0 ? 0 : 1;
}
