/*
 * Unit test: the PostgreSQL sink's server-free parts (postgres/pg_sink.h):
 * the per-key fold of an epoch in every arrival order, COPY escaping, the
 * types create_table uses and the target-type check.
 */
#include "tm_test.h"

#include "core/error.h"
#include "postgres/pg_sink.h"

#include <string.h>

static void put(tm_pgsink_fold_t *f, const char *key, const char *line, int delta)
{
    TM_REQUIRE(tm_pgsink_fold_put(f, key, key ? strlen(key) : 0, line, strlen(line), 2, delta) ==
               0);
}

/* The single entry of key `key`: "+line", "-line" (delete) or "" (unchanged). */
static const char *result(const tm_pgsink_fold_t *f, const char *key, bool *conflict)
{
    static char buf[256];
    for (size_t i = 0; i < f->n; i++) {
        const tm_pgsink_entry_t *e = &f->ents[i];
        if (e->keylen != strlen(key) || memcmp(e->key, key, e->keylen) != 0)
            continue;
        bool del = false;
        const tm_pgsink_image_t *im = tm_pgsink_fold_result(e, &del, conflict);
        if (im == NULL)
            return "";
        snprintf(buf, sizeof(buf), "%c%.*s", del ? '-' : '+', (int)im->linelen, im->line);
        return buf;
    }
    return "(missing)";
}

static void test_fold_in_order(void)
{
    tm_pgsink_fold_t f;
    tm_pgsink_fold_init(&f, true);
    bool c = false;
    /* An existing row updated twice: retract R0, add R1, retract R1, add R2. */
    put(&f, "1", "1\ta", -1);
    put(&f, "1", "1\tb", 1);
    put(&f, "1", "1\tb", -1);
    put(&f, "1", "1\tc", 1);
    TM_CHECK_STR(result(&f, "1", &c), "+1\tc");
    TM_CHECK(!c);
    /* Inserted and deleted in the same epoch: nothing to write. */
    put(&f, "2", "2\tx", 1);
    put(&f, "2", "2\tx", -1);
    TM_CHECK_STR(result(&f, "2", &c), "");
    /* An existing row deleted. */
    put(&f, "3", "3\ty", -1);
    TM_CHECK_STR(result(&f, "3", &c), "-3\ty");
    /* An update that changes nothing. */
    put(&f, "4", "4\tz", -1);
    put(&f, "4", "4\tz", 1);
    TM_CHECK_STR(result(&f, "4", &c), "");
    TM_CHECK_INT((long long)f.n, 4);
    TM_CHECK_INT((long long)f.changes, 9);
    tm_pgsink_fold_release(&f);
}

/*
 * The same changes of one key reaching the sink from two subtasks in any
 * interleaving (the retraction after its replacement): the result does not
 * depend on it.  A last-image-wins fold would delete the row here.
 */
static void test_fold_out_of_order(void)
{
    tm_pgsink_fold_t f;
    tm_pgsink_fold_init(&f, true);
    bool c = false;
    put(&f, "5", "5\tregion-2", 1);  /* subtask B: the moved row */
    put(&f, "5", "5\tregion-1", -1); /* subtask A: its old version */
    TM_CHECK_STR(result(&f, "5", &c), "+5\tregion-2");
    TM_CHECK(!c);
    /* Insert, then a move whose retraction arrives last. */
    put(&f, "6", "6\tr1", 1);
    put(&f, "6", "6\tr2", 1);
    put(&f, "6", "6\tr1", -1);
    TM_CHECK_STR(result(&f, "6", &c), "+6\tr2");
    TM_CHECK(!c);
    /* A delete overtaking the insert it deletes. */
    put(&f, "7", "7\tq", -1);
    put(&f, "7", "7\tq", 1);
    TM_CHECK_STR(result(&f, "7", &c), "");
    tm_pgsink_fold_release(&f);
}

/* Key-only retractions (REPLICA IDENTITY DEFAULT, in order): they delete whatever the key held. */
static void test_fold_key_only(void)
{
    tm_pgsink_fold_t f;
    tm_pgsink_fold_init(&f, true);
    bool c = false;
    put(&f, "9", "9\ta", 1);
    put(&f, "9", "9\t\\N", 0);
    TM_CHECK_STR(result(&f, "9", &c), "-9\t\\N");
    put(&f, "9", "9\tb", 1);
    TM_CHECK_STR(result(&f, "9", &c), "+9\tb");
    TM_CHECK(!c);
    put(&f, "10", "10\t\\N", 0);
    TM_CHECK_STR(result(&f, "10", &c), "-10\t\\N");
    tm_pgsink_fold_release(&f);
}

/*
 * Upserts (TM_PGSINK_REPLACE), as an in-order upsert stream feeds them: the
 * newest image of a key is its row whatever came before it in the epoch, a
 * key-only delete removes it, and an insert after the delete brings it back.
 */
static void test_fold_upserts(void)
{
    tm_pgsink_fold_t f;
    tm_pgsink_fold_init(&f, true);
    bool c = false;
    /* Inserted, then updated twice without before images. */
    put(&f, "1", "1\ta", TM_PGSINK_REPLACE);
    put(&f, "1", "1\tb", TM_PGSINK_REPLACE);
    put(&f, "1", "1\tc", TM_PGSINK_REPLACE);
    TM_CHECK_STR(result(&f, "1", &c), "+1\tc");
    TM_CHECK(!c);
    /* An upsert back to an earlier image is still the newest. */
    put(&f, "1", "1\ta", TM_PGSINK_REPLACE);
    TM_CHECK_STR(result(&f, "1", &c), "+1\ta");
    TM_CHECK(!c);
    /* Deleted by key, then inserted again. */
    put(&f, "2", "2\tx", TM_PGSINK_REPLACE);
    put(&f, "2", "2\t\\N", 0);
    TM_CHECK_STR(result(&f, "2", &c), "-2\t\\N");
    put(&f, "2", "2\ty", TM_PGSINK_REPLACE);
    TM_CHECK_STR(result(&f, "2", &c), "+2\ty");
    TM_CHECK(!c);
    /* A whole-row retraction followed by an upsert of another image. */
    put(&f, "3", "3\told", -1);
    put(&f, "3", "3\tnew", TM_PGSINK_REPLACE);
    TM_CHECK_STR(result(&f, "3", &c), "+3\tnew");
    TM_CHECK(!c);
    TM_CHECK_INT((long long)f.n, 3);
    tm_pgsink_fold_release(&f);
}

/*
 * Property: whatever the interleaving of two subtasks' streams, the fold of a
 * consistent epoch gives each key's final state.  Each key has a history of
 * versions (values from a small domain, so versions repeat); every change
 * retracts the current version and adds the next (or only one of the two, for
 * an insert or a delete).  An image goes to subtask (value % 2), as a join
 * partitioned on that column would send it, and each subtask keeps its order.
 */
static uint64_t rng_next(uint64_t *x)
{
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    return *x;
}

static void test_fold_any_interleaving(void)
{
    enum { KEYS = 40, MAXCH = 12, ROUNDS = 300 };
    uint64_t x = 88172645463325252ull;
    for (int round = 0; round < ROUNDS; round++) {
        /* Images of the epoch: key, value (-1 = absent), delta, subtask. */
        struct img {
            int key, val, delta, sub;
        } imgs[KEYS * MAXCH * 2];
        int nimg = 0, start[KEYS], final[KEYS];
        for (int k = 0; k < KEYS; k++) {
            int cur = (int)(rng_next(&x) % 4) - 1; /* -1: the key is absent before */
            start[k] = cur;
            int nch = (int)(rng_next(&x) % MAXCH);
            for (int c = 0; c < nch; c++) {
                int next = (int)(rng_next(&x) % 4) - 1;
                if (next == cur && cur >= 0)
                    continue;
                if (cur >= 0)
                    imgs[nimg++] = (struct img){k, cur, -1, cur % 2};
                if (next >= 0)
                    imgs[nimg++] = (struct img){k, next, +1, next % 2};
                cur = next;
            }
            final[k] = cur;
        }
        /* A random merge of the two subtasks' sequences. */
        int order[KEYS * MAXCH * 2], a = 0, b = 0, na = 0, nb = 0, n = 0;
        int seqa[KEYS * MAXCH * 2], seqb[KEYS * MAXCH * 2];
        for (int i = 0; i < nimg; i++) {
            if (imgs[i].sub == 0)
                seqa[na++] = i;
            else
                seqb[nb++] = i;
        }
        while (a < na || b < nb)
            order[n++] = (b == nb || (a < na && rng_next(&x) % 2)) ? seqa[a++] : seqb[b++];
        tm_pgsink_fold_t f;
        tm_pgsink_fold_init(&f, true);
        for (int i = 0; i < n; i++) {
            const struct img *im = &imgs[order[i]];
            char key[16], line[32];
            snprintf(key, sizeof(key), "%d", im->key);
            snprintf(line, sizeof(line), "%d\tv%d", im->key, im->val);
            put(&f, key, line, im->delta);
        }
        for (int k = 0; k < KEYS; k++) {
            char key[16], want[32];
            snprintf(key, sizeof(key), "%d", k);
            if (final[k] >= 0 && final[k] != start[k])
                snprintf(want, sizeof(want), "+%d\tv%d", k, final[k]);
            else if (final[k] < 0 && start[k] >= 0)
                snprintf(want, sizeof(want), "-%d\tv%d", k, start[k]);
            else
                want[0] = '\0';
            bool c = false;
            const char *got = result(&f, key, &c);
            if (strcmp(got, "(missing)") == 0)
                got = "";
            TM_CHECK_STR(got, want);
            TM_CHECK(!c);
        }
        tm_pgsink_fold_release(&f);
    }
}

static void test_fold_conflict_and_clear(void)
{
    tm_pgsink_fold_t f;
    tm_pgsink_fold_init(&f, true);
    bool c = false;
    /* Two live rows for one key (an upsert stream without retractions): the newest wins. */
    put(&f, "8", "8\told", 1);
    put(&f, "8", "8\tnew", 1);
    TM_CHECK_STR(result(&f, "8", &c), "+8\tnew");
    TM_CHECK(c);
    /* Many keys: the table grows and every key keeps its own entry. */
    char key[32], line[32];
    for (int i = 0; i < 5000; i++) {
        snprintf(key, sizeof(key), "k%d", i);
        snprintf(line, sizeof(line), "k%d\tv", i);
        put(&f, key, line, 1);
    }
    TM_CHECK_INT((long long)f.n, 5001);
    TM_CHECK_STR(result(&f, "k4321", &c), "+k4321\tv");
    tm_pgsink_fold_clear(&f);
    TM_CHECK_INT((long long)f.n, 0);
    put(&f, "k1", "k1\tw", 1);
    TM_CHECK_STR(result(&f, "k1", &c), "+k1\tw");
    TM_CHECK_INT((long long)f.n, 1);
    tm_pgsink_fold_release(&f);

    /* Append-only: every row is its own entry, duplicates included. */
    tm_pgsink_fold_init(&f, false);
    put(&f, NULL, "a", 1);
    put(&f, NULL, "a", 1);
    TM_CHECK_INT((long long)f.n, 2);
    tm_pgsink_fold_release(&f);
}

static void test_copy_escape(void)
{
    tm_buf_t b;
    tm_buf_init(&b);
    const char in[] = "a\\b\tc\nd\re";
    TM_REQUIRE(tm_pgsink_copy_escape(&b, in, sizeof(in) - 1) == 0);
    TM_REQUIRE(tm_buf_putc(&b, '\0') == 0);
    TM_CHECK_STR(b.data, "a\\\\b\\tc\\nd\\re");
    tm_buf_clear(&b);
    TM_REQUIRE(tm_pgsink_copy_escape(&b, "", 0) == 0);
    TM_CHECK_INT((long long)b.len, 0);
    tm_buf_release(&b);
}

static void test_types(void)
{
    tm_column_t c;
    memset(&c, 0, sizeof(c));
    char buf[64];
    c.type = TM_T_NUMERIC;
    c.precision = 14;
    c.scale = 2;
    tm_pgsink_type_sql(&c, buf, sizeof(buf));
    TM_CHECK_STR(buf, "numeric(14,2)");
    c.precision = -1;
    c.scale = TM_SCALE_VARIABLE;
    tm_pgsink_type_sql(&c, buf, sizeof(buf));
    TM_CHECK_STR(buf, "numeric");
    c.type = TM_T_TIMESTAMPTZ;
    tm_pgsink_type_sql(&c, buf, sizeof(buf));
    TM_CHECK_STR(buf, "timestamp with time zone");
    c.type = TM_T_TEXT;
    c.length = 20;
    tm_pgsink_type_sql(&c, buf, sizeof(buf));
    TM_CHECK_STR(buf, "varchar(20)");

    c.type = TM_T_INT64;
    TM_CHECK(tm_pgsink_type_accepts("int8", 'b', &c));
    TM_CHECK(tm_pgsink_type_accepts("numeric", 'b', &c));
    TM_CHECK(tm_pgsink_type_accepts("text", 'b', &c));
    TM_CHECK(!tm_pgsink_type_accepts("int4", 'b', &c));
    TM_CHECK(!tm_pgsink_type_accepts("date", 'b', &c));
    c.type = TM_T_NUMERIC;
    TM_CHECK(!tm_pgsink_type_accepts("int8", 'b', &c));
    c.type = TM_T_ENUM;
    TM_CHECK(tm_pgsink_type_accepts("mood", 'e', &c));
    TM_CHECK(!tm_pgsink_type_accepts("int4", 'b', &c));
    c.type = TM_T_TIMESTAMPTZ;
    TM_CHECK(!tm_pgsink_type_accepts("timestamp", 'b', &c));
}

int main(void)
{
    TM_RUN(test_fold_in_order);
    TM_RUN(test_fold_out_of_order);
    TM_RUN(test_fold_key_only);
    TM_RUN(test_fold_upserts);
    TM_RUN(test_fold_any_interleaving);
    TM_RUN(test_fold_conflict_and_clear);
    TM_RUN(test_copy_escape);
    TM_RUN(test_types);
    return tm_test_done();
}
