/*
 * txbuf.c — unit tests of the spill files of streamed transactions, driven
 * by the real protocol 2 capture: the committed streamed transaction replays
 * exactly its surviving rows (the rolled-back savepoint's rows are skipped),
 * the aborted one leaves no file, and damaged files are reported.
 */
#include "pg_capture.h"
#include "tm_test.h"

#include "core/error.h"
#include "postgres/pgoutput.h"
#include "postgres/txbuf.h"

#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static int count_spills(void)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    while (d != NULL && (e = readdir(d)) != NULL)
        if (strstr(e->d_name, ".spill") != NULL)
            n++;
    if (d != NULL)
        closedir(d);
    return n;
}

static void touch(const char *name)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f != NULL) {
        fputs("x", f);
        fclose(f);
    }
}

static void test_stale_files_removed(void)
{
    tm_pg_txbuf_t *tb;
    char err[256], parent[256];
    snprintf(parent, sizeof(parent), "%s", dir);
    *strrchr(parent, '/') = '\0';
    mkdir(parent, 0700);
    mkdir(dir, 0700);
    touch("123.spill");
    touch("keep.txt");
    TM_REQUIRE(tm_pg_txbuf_new(&tb, dir, err, sizeof(err)) == 0);
    TM_CHECK_INT(count_spills(), 0);
    char path[512];
    snprintf(path, sizeof(path), "%s/keep.txt", dir);
    TM_CHECK(access(path, F_OK) == 0);
    unlink(path);
    tm_pg_txbuf_free(tb);
}

static void test_replay_capture(void)
{
    capture_t cap;
    char path[1024], err[256];
    TM_REQUIRE(capture_load(tm_test_data("pgoutput/v2.txt", path, sizeof(path)), &cap) == 0);
    tm_pg_txbuf_t *tb;
    TM_REQUIRE(tm_pg_txbuf_new(&tb, dir, err, sizeof(err)) == 0);
    tm_pg_decoder_t *dec = tm_pg_decoder_new(2), *rdec = tm_pg_decoder_new(2);
    uint32_t nokey_relid = 0, aborted_xid = 0;
    int replayed_inserts = 0, x_rows = 0, y_rows = 0, after_rows = 0, replays = 0;
    int relations_in_replay = 0;
    uint64_t last_lsn = 0;
    bool lsn_ordered = true;
    for (size_t i = 0; i < cap.n; i++) {
        tm_pg_msg_t msg;
        TM_REQUIRE(tm_pg_decode(dec, cap.v[i].data, cap.v[i].len, &msg, err, sizeof(err)) == 0);
        if (msg.tag == 'R' && strcmp(msg.u.relation.relname, "t_nokey") == 0)
            nokey_relid = msg.u.relation.relid;
        if (msg.has_xid) {
            TM_REQUIRE(tm_pg_txbuf_append(tb, msg.xid, cap.v[i].lsn, cap.v[i].data,
                                          cap.v[i].len, err, sizeof(err)) == 0);
            continue;
        }
        switch (msg.tag) {
        case 'S':
            TM_REQUIRE(tm_pg_txbuf_block_start(tb, msg.xid, err, sizeof(err)) == 0);
            TM_CHECK(count_spills() >= 1);
            break;
        case 'E':
            TM_REQUIRE(tm_pg_txbuf_block_stop(tb, err, sizeof(err)) == 0);
            break;
        case 'A':
            TM_CHECK(tm_pg_txbuf_has(tb, msg.xid));
            TM_REQUIRE(tm_pg_txbuf_abort(tb, msg.xid, msg.u.stream_abort.subxid, err,
                                         sizeof(err)) == 0);
            if (msg.xid == msg.u.stream_abort.subxid) {
                aborted_xid = msg.xid;
                TM_CHECK(!tm_pg_txbuf_has(tb, msg.xid));
            }
            break;
        case 'c': {
            tm_pg_txreplay_t *rp;
            TM_CHECK(tm_pg_txbuf_size(tb, msg.xid) > 0);
            TM_REQUIRE(tm_pg_txbuf_replay(tb, msg.xid, &rp, err, sizeof(err)) == 0);
            TM_CHECK(!tm_pg_txbuf_has(tb, msg.xid));
            replays++;
            uint32_t subxid;
            uint64_t lsn;
            const uint8_t *buf;
            size_t len;
            int rc;
            tm_pg_decoder_set_stream(rdec, true);
            while ((rc = tm_pg_txreplay_next(rp, &subxid, &lsn, &buf, &len, err, sizeof(err))) ==
                   1) {
                tm_pg_msg_t m;
                TM_REQUIRE(tm_pg_decode(rdec, buf, len, &m, err, sizeof(err)) == 0);
                TM_CHECK(m.has_xid && m.xid == subxid);
                if (lsn < last_lsn)
                    lsn_ordered = false;
                last_lsn = lsn;
                if (m.tag == 'R')
                    relations_in_replay++;
                if (m.tag != 'I' || m.u.change.relid != nokey_relid)
                    continue;
                replayed_inserts++;
                const tm_pg_tuple_col_t *b = &m.u.change.newtup.cols[1];
                if (b->len > 0 && b->data[0] == 'x')
                    x_rows++;
                else if (b->len > 0 && b->data[0] == 'y')
                    y_rows++;
                else if (b->len == 5 && memcmp(b->data, "after", 5) == 0)
                    after_rows++;
            }
            TM_CHECK_INT(rc, 0);
            tm_pg_txreplay_free(rp);
            break;
        }
        }
    }
    TM_CHECK_INT(replays, 1);
    TM_CHECK_INT(x_rows, 400);
    TM_CHECK_INT(y_rows, 0); /* the rolled-back savepoint */
    TM_CHECK_INT(after_rows, 1);
    TM_CHECK_INT(replayed_inserts, 401);
    TM_CHECK(relations_in_replay >= 1); /* kept even when sent inside a subtransaction */
    TM_CHECK(lsn_ordered);
    TM_CHECK(aborted_xid != 0);
    TM_CHECK_INT(tm_pg_txbuf_count(tb), 0);
    TM_CHECK_INT(count_spills(), 0); /* the aborted transaction's file is gone too */
    tm_pg_decoder_free(dec);
    tm_pg_decoder_free(rdec);
    tm_pg_txbuf_free(tb);
    capture_free(&cap);
}

static void test_interleaved_and_damaged(void)
{
    tm_pg_txbuf_t *tb;
    char err[256];
    TM_REQUIRE(tm_pg_txbuf_new(&tb, dir, err, sizeof(err)) == 0);
    const uint8_t a[] = {'I', 1, 2, 3}, b[] = {'I', 9};
    /* Two transactions whose blocks interleave. */
    TM_REQUIRE(tm_pg_txbuf_block_start(tb, 10, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_pg_txbuf_append(tb, 10, 100, a, sizeof(a), err, sizeof(err)) == 0);
    TM_REQUIRE(tm_pg_txbuf_block_start(tb, 20, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_pg_txbuf_append(tb, 21, 200, b, sizeof(b), err, sizeof(err)) == 0);
    TM_REQUIRE(tm_pg_txbuf_block_start(tb, 10, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_pg_txbuf_append(tb, 11, 300, b, sizeof(b), err, sizeof(err)) == 0);
    TM_REQUIRE(tm_pg_txbuf_block_stop(tb, err, sizeof(err)) == 0);
    TM_CHECK_INT(tm_pg_txbuf_count(tb), 2);
    TM_CHECK_INT(count_spills(), 2);
    /* Appending outside a block is a protocol error. */
    TM_CHECK_INT(tm_pg_txbuf_append(tb, 10, 1, a, sizeof(a), err, sizeof(err)), TM_EPROTO);

    tm_pg_txreplay_t *rp;
    uint32_t sx;
    uint64_t lsn;
    const uint8_t *msg;
    size_t len;
    TM_REQUIRE(tm_pg_txbuf_replay(tb, 10, &rp, err, sizeof(err)) == 0);
    TM_CHECK_INT(tm_pg_txreplay_next(rp, &sx, &lsn, &msg, &len, err, sizeof(err)), 1);
    TM_CHECK(sx == 10 && lsn == 100 && len == sizeof(a) && memcmp(msg, a, len) == 0);
    TM_CHECK_INT(tm_pg_txreplay_next(rp, &sx, &lsn, &msg, &len, err, sizeof(err)), 1);
    TM_CHECK(sx == 11 && lsn == 300 && len == sizeof(b));
    TM_CHECK_INT(tm_pg_txreplay_next(rp, &sx, &lsn, &msg, &len, err, sizeof(err)), 0);
    tm_pg_txreplay_free(rp);

    /* A file cut short (a crash, a full disk) is reported, not read past. */
    char path[512];
    snprintf(path, sizeof(path), "%s/20.spill", dir);
    TM_REQUIRE(truncate(path, 17) == 0);
    TM_REQUIRE(tm_pg_txbuf_replay(tb, 20, &rp, err, sizeof(err)) == 0);
    TM_CHECK_INT(tm_pg_txreplay_next(rp, &sx, &lsn, &msg, &len, err, sizeof(err)), TM_ECORRUPT);
    tm_pg_txreplay_free(rp);
    TM_CHECK_INT(count_spills(), 0);

    /* An unknown transaction replays as empty. */
    TM_REQUIRE(tm_pg_txbuf_replay(tb, 99, &rp, err, sizeof(err)) == 0);
    TM_CHECK_INT(tm_pg_txreplay_next(rp, &sx, &lsn, &msg, &len, err, sizeof(err)), 0);
    tm_pg_txreplay_free(rp);

    /* A reset forgets everything and deletes every file. */
    TM_REQUIRE(tm_pg_txbuf_block_start(tb, 30, err, sizeof(err)) == 0);
    TM_REQUIRE(tm_pg_txbuf_append(tb, 30, 1, a, sizeof(a), err, sizeof(err)) == 0);
    TM_REQUIRE(tm_pg_txbuf_reset(tb, err, sizeof(err)) == 0);
    TM_CHECK_INT(tm_pg_txbuf_count(tb), 0);
    TM_CHECK_INT(count_spills(), 0);
    tm_pg_txbuf_free(tb);
}

int main(void)
{
    snprintf(dir, sizeof(dir), "/tmp/tm-txbuf-test-%d/spill", (int)getpid());
    TM_RUN(test_stale_files_removed);
    TM_RUN(test_replay_capture);
    TM_RUN(test_interleaved_and_damaged);
    rmdir(dir);
    char parent[256];
    snprintf(parent, sizeof(parent), "/tmp/tm-txbuf-test-%d", (int)getpid());
    rmdir(parent);
    return tm_test_done();
}
