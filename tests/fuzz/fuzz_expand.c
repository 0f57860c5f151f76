/*
 * fuzz_expand.c — libFuzzer target for option values: ${…} expansion, DSN
 * masking and display, and safe file names.
 *
 * Role: the input is one option value as written in a job.  It is expanded
 * (${env:NAME}, ${file:PATH}, $${) through tm_options_validate for a string,
 * a secret and a DSN option, shown with tm_option_display, masked with
 * tm_dsn_mask (libpq's parser) and escaped with tm_fs_name_escape.
 *
 * Invariants: no crash, no leak, no undefined behaviour; a value either
 * expands or is refused; the display of a secret option is "****"; the
 * masked form of a DSN never holds the password libpq reads from it; an
 * escaped file name has no '/' and no control byte (abort() otherwise).
 *
 * Inputs that name device, proc or sys files are skipped (see fuzz_jobfile.c).
 *
 *   build-fuzz/tests/fuzz/fuzz-expand -max_len=1024 tests/fuzz/expand
 *
 * Every file in tests/fuzz/expand/ is replayed as `fuzz-corpus-expand`.
 * Thread: libFuzzer calls the target from one thread.
 */
#include "core/fsutil.h"
#include "core/options.h"

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const tm_option_def_t defs[] = {
    {"v", TM_OPT_STRING, false, NULL, NULL, "a string"},
    {"s", TM_OPT_SECRET, false, NULL, NULL, "a secret"},
    {"dsn", TM_OPT_DSN, false, NULL, NULL, "a connection string"},
    {NULL, 0, false, NULL, NULL, NULL},
};

/* True if libpq, reading the masked text back, finds no password but "****". */
static bool masked_ok(const char *shown)
{
    char *perr = NULL;
    bool ok = true;
    PQconninfoOption *o = PQconninfoParse(shown, &perr);
    PQfreemem(perr);
    for (PQconninfoOption *p = o; p && p->keyword; p++)
        if (p->val != NULL && (strcmp(p->keyword, "password") == 0 ||
                               strcmp(p->keyword, "sslpassword") == 0))
            ok = ok && strcmp(p->val, "****") == 0;
    PQconninfoFree(o);
    return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 8192)
        return 0;
    char *v = malloc(size + 1);
    if (v == NULL)
        return 0;
    memcpy(v, data, size);
    v[size] = '\0';
    if (strstr(v, "/dev/") || strstr(v, "/proc/") || strstr(v, "/sys/")) {
        free(v);
        return 0;
    }
    setenv("TM_FUZZ", "host=h password=fr0menv", 1);
    char err[1024];
    tm_options_t *o = tm_options_new();
    tm_options_set(o, "v", v);
    tm_options_set(o, "s", v);
    tm_options_set(o, "dsn", v);
    tm_options_set(o, "kafka.sasl.password", v);
    if (tm_options_validate(o, defs, "kafka.", "fuzz", err, sizeof(err)) == 0) {
        for (int i = 0; i < o->n; i++) {
            char *shown = tm_option_display(&o->kv[i]);
            if (shown == NULL)
                abort();
            if (strcmp(o->kv[i].key, "s") == 0 && strcmp(shown, "****") != 0)
                abort();
            if (strcmp(o->kv[i].key, "dsn") == 0 && !masked_ok(shown))
                abort();
            free(shown);
        }
    }
    tm_options_free(o);
    char *m = tm_dsn_mask(v);
    free(m);
    tm_buf_t name;
    tm_buf_init(&name);
    if (tm_fs_name_escape(v, strlen(v), 255, &name) == 0) {
        if (name.len > 255 || strlen(name.data) != name.len)
            abort();
        for (const char *c = name.data; *c; c++)
            if (*c == '/' || (unsigned char)*c < 0x20 || *c == 0x7f)
                abort();
        if (strcmp(name.data, ".") == 0 || strcmp(name.data, "..") == 0)
            abort();
    }
    tm_buf_release(&name);
    free(v);
    return 0;
}
