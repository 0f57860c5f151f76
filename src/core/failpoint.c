/*
 * failpoint.c — named fault-injection points for crash tests (see failpoint.h).
 *
 * Invariants:
 *   1. tm__failpoint_state leaves TM__FAILPOINT_UNKNOWN exactly once, inside
 *      pthread_once, after the table is filled; a thread that reads ON (with
 *      acquire, in the slow path) sees the whole table.
 *   2. The table does not change while the state is ON, except through
 *      tm_failpoint_configure(), which the caller must not race with hits.
 *   3. Hit numbers come from one atomic counter per entry, so each hit has a
 *      distinct number and `@N` fires at most once per configuration.
 *
 * Thread: any.
 */
#include "core/failpoint.h"
#include "core/error.h"
#include "core/log.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define FP_COMP "failpoint"

typedef enum fp_action {
    FP_OFF = 0,
    FP_KILL,
    FP_SLEEP,
    FP_COUNT,
} fp_action_t;

static const char *const fp_action_names[] = {"off", "kill", "sleep", "count"};

typedef struct fp {
    char name[TM_FAILPOINT_NAME_MAX];
    fp_action_t action;
    uint64_t nth;       /* fire at this hit only; 0: every hit */
    bool always;        /* no %P: every eligible hit fires */
    uint64_t threshold; /* with %P: fire when the draw is below this */
    int64_t sleep_ms;
    _Atomic uint64_t hits;
    _Atomic uint64_t fired;
} fp_t;

_Atomic int tm__failpoint_state = TM__FAILPOINT_UNKNOWN;

static fp_t fp_table[TM_FAILPOINT_MAX];
static int fp_count;
static uint64_t fp_seed;
static pthread_once_t fp_once = PTHREAD_ONCE_INIT;

/* ---- the draw ---- */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9E3779B97F4A7C15ULL;
    x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
    x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
    return x ^ (x >> 31);
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 0xCBF29CE484222325ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 0x100000001B3ULL;
    }
    return h;
}

/* A pure function of (seed, name, hit), so a seed reproduces the same firing hits. */
static uint64_t fp_draw(const fp_t *fp, uint64_t hit)
{
    return splitmix64(fp_seed ^ fnv1a(fp->name) ^ splitmix64(hit));
}

/* ---- parsing ---- */

static char *trim(char *s)
{
    while (isspace((unsigned char)*s))
        s++;
    char *e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!isdigit((unsigned char)*s))
        return false;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0 || *trim(end) != '\0')
        return false;
    *out = v;
    return true;
}

/* Parses one `name=action[@N][%P]` entry (modified in place) into fp. */
static int parse_entry(char *entry, fp_t *fp, char *errstr, size_t errstr_size)
{
    char *eq = strchr(entry, '=');
    if (eq == NULL)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s: entry '%s' has no '='; write name=action, e.g. "
                         "checkpoint.after_metadata=kill@2",
                         TM_FAILPOINT_ENV, entry);
    *eq = '\0';
    char *name = trim(entry), *spec = trim(eq + 1);
    if (name[0] == '\0' || strlen(name) >= TM_FAILPOINT_NAME_MAX)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s: failpoint name '%s' is empty or longer than %d bytes",
                         TM_FAILPOINT_ENV, name, TM_FAILPOINT_NAME_MAX - 1);
    memset(fp, 0, sizeof(*fp));
    snprintf(fp->name, sizeof(fp->name), "%s", name);
    fp->always = true;

    /* The modifiers follow the action; cut them off from the end. */
    char *pct = strchr(spec, '%');
    if (pct != NULL) {
        *pct = '\0';
        char *p = trim(pct + 1), *end;
        errno = 0;
        double v = strtod(p, &end);
        if (p[0] == '\0' || errno != 0 || *trim(end) != '\0' || !(v > 0.0) || v > 100.0)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "%s: failpoint '%s': probability '%%%s' is not a percentage in "
                             "(0, 100]",
                             TM_FAILPOINT_ENV, fp->name, p);
        if (v < 100.0) {
            fp->always = false;
            /* 2^64 * v / 100, computed without overflowing the double's range. */
            fp->threshold = (uint64_t)(v / 100.0 * 18446744073709551616.0);
        }
    }
    char *at = strchr(spec, '@');
    if (at != NULL) {
        *at = '\0';
        char *n = trim(at + 1);
        if (!parse_u64(n, &fp->nth) || fp->nth == 0)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "%s: failpoint '%s': hit '@%s' is not a number >= 1",
                             TM_FAILPOINT_ENV, fp->name, n);
    }
    char *action = trim(spec);
    if (strcmp(action, "kill") == 0) {
        fp->action = FP_KILL;
    } else if (strcmp(action, "count") == 0) {
        fp->action = FP_COUNT;
    } else if (strcmp(action, "off") == 0) {
        fp->action = FP_OFF;
    } else if (strncmp(action, "sleep(", 6) == 0 && action[strlen(action) - 1] == ')') {
        action[strlen(action) - 1] = '\0';
        uint64_t ms;
        if (!parse_u64(trim(action + 6), &ms) || ms > 3600 * 1000)
            return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                             "%s: failpoint '%s': sleep needs milliseconds, e.g. sleep(50)",
                             TM_FAILPOINT_ENV, fp->name);
        fp->action = FP_SLEEP;
        fp->sleep_ms = (int64_t)ms;
    } else {
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "%s: failpoint '%s': unknown action '%s'; use kill, sleep(MS), count "
                         "or off",
                         TM_FAILPOINT_ENV, fp->name, action);
    }
    return 0;
}

static int parse_spec(const char *spec, fp_t *table, int *count, char *errstr, size_t errstr_size)
{
    *count = 0;
    if (spec == NULL)
        return 0;
    char *copy = strdup(spec);
    if (copy == NULL)
        return TM_ENOMEM;
    int rc = 0;
    char *save = NULL;
    for (char *tok = strtok_r(copy, ";", &save); tok != NULL && rc == 0;
         tok = strtok_r(NULL, ";", &save)) {
        char *entry = trim(tok);
        if (entry[0] == '\0')
            continue;
        if (*count == TM_FAILPOINT_MAX) {
            rc = tm_seterr(errstr, errstr_size, TM_ECONFIG, "%s: more than %d failpoints",
                           TM_FAILPOINT_ENV, TM_FAILPOINT_MAX);
            break;
        }
        fp_t *fp = &table[*count];
        if ((rc = parse_entry(entry, fp, errstr, errstr_size)) != 0)
            break;
        for (int i = 0; i < *count; i++)
            if (strcmp(table[i].name, fp->name) == 0) {
                rc = tm_seterr(errstr, errstr_size, TM_ECONFIG,
                               "%s: failpoint '%s' is configured twice", TM_FAILPOINT_ENV,
                               fp->name);
                break;
            }
        if (rc == 0)
            (*count)++;
    }
    free(copy);
    if (rc != 0)
        *count = 0;
    return rc;
}

/* ---- configuration ---- */

static void install(const fp_t *table, int count, uint64_t seed)
{
    for (int i = 0; i < count; i++) {
        fp_t *fp = &fp_table[i];
        memcpy(fp->name, table[i].name, sizeof(fp->name));
        fp->action = table[i].action;
        fp->nth = table[i].nth;
        fp->always = table[i].always;
        fp->threshold = table[i].threshold;
        fp->sleep_ms = table[i].sleep_ms;
        atomic_store(&fp->hits, 0);
        atomic_store(&fp->fired, 0);
    }
    fp_count = count;
    fp_seed = seed;
    atomic_store_explicit(&tm__failpoint_state, count > 0 ? TM__FAILPOINT_ON : TM__FAILPOINT_OFF,
                          memory_order_release);
}

static void init_from_env(void)
{
    const char *spec = getenv(TM_FAILPOINT_ENV);
    if (spec == NULL || spec[0] == '\0') {
        install(NULL, 0, 0);
        return;
    }
    uint64_t seed;
    const char *seed_text = getenv(TM_FAILPOINT_SEED_ENV);
    if (seed_text == NULL || !parse_u64(seed_text, &seed)) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        seed = splitmix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
                          ((uint64_t)getpid() << 40));
    }
    static fp_t parsed[TM_FAILPOINT_MAX];
    int count = 0;
    char err[512];
    if (parse_spec(spec, parsed, &count, err, sizeof(err)) != 0) {
        /* Test-only: nobody above us could report it, and a silent typo hides a crash test. */
        tm_log_write(TM_LOG_ERROR, FP_COMP, "failpoints not enabled", "error=\"%s\"", err);
        install(NULL, 0, 0);
        return;
    }
    install(parsed, count, seed);
    tm_log_write(TM_LOG_WARN, FP_COMP, "failpoints enabled (test only)",
                 "spec=\"%s\" seed=%" PRIu64, spec, seed);
}

int tm_failpoint_configure(const char *spec, uint64_t seed, char *errstr, size_t errstr_size)
{
    /* Read the environment first, so that it cannot replace this later. */
    pthread_once(&fp_once, init_from_env);
    static fp_t parsed[TM_FAILPOINT_MAX];
    int count = 0;
    int rc = parse_spec(spec, parsed, &count, errstr, errstr_size);
    install(parsed, rc == 0 ? count : 0, seed);
    return rc;
}

/* ---- hits ---- */

static fp_t *lookup(const char *name)
{
    for (int i = 0; i < fp_count; i++)
        if (strcmp(fp_table[i].name, name) == 0)
            return &fp_table[i];
    return NULL;
}

static bool enabled(void)
{
    int state = atomic_load_explicit(&tm__failpoint_state, memory_order_acquire);
    if (state == TM__FAILPOINT_UNKNOWN) {
        pthread_once(&fp_once, init_from_env);
        state = atomic_load_explicit(&tm__failpoint_state, memory_order_acquire);
    }
    return state == TM__FAILPOINT_ON;
}

void tm__failpoint_hit(const char *name)
{
    if (!enabled())
        return;
    fp_t *fp = lookup(name);
    if (fp == NULL)
        return;
    uint64_t hit = atomic_fetch_add(&fp->hits, 1) + 1;
    if (fp->action == FP_OFF || (fp->nth != 0 && hit != fp->nth) ||
        (!fp->always && fp_draw(fp, hit) >= fp->threshold))
        return;
    atomic_fetch_add(&fp->fired, 1);
    if (fp->action == FP_COUNT)
        return;
    /*
     * One write(2), finished before the action, so the line survives the
     * kill; written whatever log_level says, because crash tests read it.
     */
    tm_log_write(TM_LOG_WARN, FP_COMP, "failpoint fired", "name=%s hit=%" PRIu64 " action=%s",
                 fp->name, hit, fp_action_names[fp->action]);
    if (fp->action == FP_SLEEP) {
        struct timespec ts = {fp->sleep_ms / 1000, (fp->sleep_ms % 1000) * 1000000};
        while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
            ;
        return;
    }
    /* SIGKILL cannot be caught or ignored; nothing after this line runs. */
    kill(getpid(), SIGKILL);
    for (;;)
        pause();
}

uint64_t tm_failpoint_hits(const char *name)
{
    if (!enabled())
        return 0;
    fp_t *fp = lookup(name);
    return fp ? atomic_load(&fp->hits) : 0;
}

uint64_t tm_failpoint_fired(const char *name)
{
    if (!enabled())
        return 0;
    fp_t *fp = lookup(name);
    return fp ? atomic_load(&fp->fired) : 0;
}
