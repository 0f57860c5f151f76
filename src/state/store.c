/*
 * store.c — the RocksDB state backend (see store.h).
 *
 * Invariants:
 *   1. store->cfs holds one entry per column family other than "default",
 *      in creation order; entries are appended, never removed or moved
 *      while the store is open (handles given out stay valid).  The array
 *      pointer itself may be reallocated, so readers on other threads take
 *      store->lock.
 *   2. The compaction filter, the options and the budget outlive the
 *      database: they are released only after rocksdb_close().
 *   3. A value is read through one helper (value_split) that checks the
 *      timestamp and the TTL, so no path can return an expired value.
 *
 * Thread: the owner worker thread, except where store.h says otherwise.
 */
#include "state/store.h"
#include "core/error.h"
#include "core/fsutil.h"

#include <rocksdb/c.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define TS_BYTES 8

struct tm_store_mem {
    atomic_int refs;
    size_t limit;
    size_t cache_capacity;
    size_t memtables_per_store;
    rocksdb_cache_t *cache;
};

struct tm_store_cf {
    char *uid;
    rocksdb_column_family_handle_t *handle;
};

struct tm_store {
    char *dir;
    char *prev_chk; /* previous checkpoint (or the one restored), for incremental sizes */
    rocksdb_t *db;
    rocksdb_options_t *options; /* DB and column-family options (one object serves both) */
    rocksdb_block_based_table_options_t *table;
    rocksdb_compactionfilter_t *ttl_filter;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts;
    rocksdb_column_family_handle_t *default_cf;
    tm_store_mem_t *mem;

    pthread_mutex_t lock; /* guards cfs/ncfs against metrics readers (invariant 1) */
    tm_store_cf_t **cfs;
    int ncfs, cfs_cap;

    int max_parallelism;
    int64_t ttl_us;
    tm_store_clock_fn clock;
    void *clock_arg;
    tm_buf_t kbuf; /* scratch for composed keys; owner thread only */
    tm_buf_t vbuf; /* scratch for stamped values; owner thread only */
};

struct tm_store_batch {
    tm_store_t *store;
    rocksdb_writebatch_wi_t *wb; /* indexed (tm_store_batch_new) */
    rocksdb_writebatch_t *plain; /* or not (tm_store_batch_new_unindexed) */
};

struct tm_store_iter {
    tm_store_t *store;
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ropts;
    int kg, kg_first, kg_last;
    uint8_t *prefix; /* kg (2 bytes) ‖ operator prefix: the current seek target */
    size_t plen;     /* length of the operator prefix */
    bool positioned; /* the iterator sits on the current kg's range */
    bool reverse;    /* descending key order (tm_store_iter_new_reverse) */
    uint8_t *bound;  /* reverse: the seek target just past the current kg's range */
    size_t cap;      /* bytes allocated for prefix and for bound */
};

/* ---- helpers ---- */

static int64_t default_clock(void *arg)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t tm_store_now(const tm_store_t *store)
{
    return store->clock(store->clock_arg);
}

int64_t tm_store_ttl_us(const tm_store_t *store)
{
    return store->ttl_us;
}

size_t tm_store_operator_cache_bytes(const tm_store_t *store)
{
    return store->mem->memtables_per_store;
}

static void put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static bool expired(const tm_store_t *store, int64_t ts, int64_t now)
{
    return store->ttl_us > 0 && now - ts >= store->ttl_us;
}

/*
 * Takes the RocksDB error string (freeing it) into errstr with a prefix.
 * Returns `code`.
 */
static int rdb_err(char *rerr, int code, char *errstr, size_t errstr_size, const char *what,
                   const char *dir)
{
    tm_seterr(errstr, errstr_size, code, "state store %s: %s: %s", dir ? dir : "", what,
              rerr ? rerr : "unknown RocksDB error");
    if (rerr != NULL)
        rocksdb_free(rerr);
    return code;
}

/* Composes kg ‖ key into the store's scratch buffer. */
static int compose_key(tm_store_t *store, int kg, const void *key, size_t klen)
{
    uint8_t p[TM_KEYGROUP_PREFIX];
    if (NEVER(kg < 0 || kg >= store->max_parallelism))
        return TM_EINVAL;
    tm_keygroup_put(p, kg);
    tm_buf_clear(&store->kbuf);
    if (tm_buf_append(&store->kbuf, p, sizeof(p)) != 0 ||
        (klen > 0 && tm_buf_append(&store->kbuf, key, klen) != 0))
        return TM_ENOMEM;
    return 0;
}

/*
 * Splits a stored value into timestamp and payload and applies the TTL:
 * 0 = live, TM_ENOTFOUND = expired, TM_ECORRUPT = no timestamp.
 */
static int value_split(const tm_store_t *store, const char *raw, size_t rlen, int64_t now,
                       const uint8_t **val, size_t *vlen, int64_t *ts)
{
    if (rlen < TS_BYTES)
        return TM_ECORRUPT;
    *ts = (int64_t)get_le64((const uint8_t *)raw);
    if (expired(store, *ts, now))
        return TM_ENOTFOUND;
    *val = (const uint8_t *)raw + TS_BYTES;
    *vlen = rlen - TS_BYTES;
    return 0;
}

static int value_to_buf(const tm_store_t *store, const char *raw, size_t rlen, tm_buf_t *out,
                        char *errstr, size_t errstr_size)
{
    const uint8_t *v;
    size_t vlen;
    int64_t ts;
    int rc = value_split(store, raw, rlen, tm_store_now(store), &v, &vlen, &ts);
    if (rc == TM_ECORRUPT)
        return tm_seterr(errstr, errstr_size, rc,
                         "state store %s: a value of %zu bytes has no timestamp", store->dir,
                         rlen);
    if (rc != 0)
        return rc;
    tm_buf_clear(out);
    return tm_buf_append(out, v, vlen);
}

/* ---- the memory budget ---- */

int tm_store_mem_new(size_t state_memory, int nstores, tm_store_mem_t **out, char *errstr,
                     size_t errstr_size)
{
    *out = NULL;
    if (state_memory == 0)
        state_memory = TM_STATE_MEMORY_DEFAULT;
    if (nstores < 1)
        return tm_seterr(errstr, errstr_size, TM_EINVAL, "a state memory budget needs >= 1 store");
    if (state_memory / (size_t)nstores < TM_STATE_MEMORY_MIN_PER_STORE)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "state_memory = %zu bytes is too small for %d workers: give at least "
                         "%zu MiB per worker",
                         state_memory, nstores, TM_STATE_MEMORY_MIN_PER_STORE >> 20);
    tm_store_mem_t *mem = calloc(1, sizeof(*mem));
    if (mem == NULL)
        return TM_ENOMEM;
    atomic_init(&mem->refs, 1);
    mem->limit = state_memory;
    /*
     * A quarter for memtables and a quarter for the operators' write-behind
     * caches (state/kvcache.h), each split evenly between the stores; the
     * rest is the shared block cache.  docs/state.md explains the split.
     */
    mem->memtables_per_store = state_memory / 4 / (size_t)nstores;
    mem->cache_capacity = state_memory - 2 * mem->memtables_per_store * (size_t)nstores;
    mem->cache = rocksdb_cache_create_lru(mem->cache_capacity);
    if (mem->cache == NULL) {
        free(mem);
        return TM_ENOMEM;
    }
    *out = mem;
    return 0;
}

static tm_store_mem_t *mem_ref(tm_store_mem_t *mem)
{
    atomic_fetch_add_explicit(&mem->refs, 1, memory_order_relaxed);
    return mem;
}

tm_store_mem_t *tm_store_mem_free(tm_store_mem_t *mem)
{
    if (mem == NULL)
        return NULL;
    if (atomic_fetch_sub_explicit(&mem->refs, 1, memory_order_acq_rel) != 1)
        return NULL;
    rocksdb_cache_destroy(mem->cache);
    free(mem);
    return NULL;
}

void tm_store_mem_usage(tm_store_mem_t *mem, tm_store_memory_t *out)
{
    memset(out, 0, sizeof(*out));
    out->limit = mem->limit;
    out->cache_capacity = mem->cache_capacity;
    out->cache_usage = rocksdb_cache_get_usage(mem->cache);
    out->cache_pinned = rocksdb_cache_get_pinned_usage(mem->cache);
}

/* ---- TTL compaction filter ---- */

static unsigned char ttl_filter(void *state, int level, const char *key, size_t klen,
                                const char *val, size_t vlen, char **new_val, size_t *new_vlen,
                                unsigned char *changed)
{
    const tm_store_t *store = state;
    *changed = 0;
    /* A value without a timestamp is left alone: reads report it as corrupt. */
    if (vlen < TS_BYTES)
        return 0;
    return expired(store, (int64_t)get_le64((const uint8_t *)val), tm_store_now(store));
}

static void ttl_filter_destroy(void *state)
{
    /* The filter's state is the store itself, which tm_store_close() frees. */
}

static const char *ttl_filter_name(void *state)
{
    return "tidemark.ttl";
}

/* ---- open / close ---- */

static int make_options(tm_store_t *store)
{
    rocksdb_options_t *o = rocksdb_options_create();
    if (o == NULL)
        return TM_ENOMEM;
    store->options = o;
    rocksdb_options_set_create_if_missing(o, 1);
    rocksdb_options_set_create_missing_column_families(o, 1);
    /* RocksDB's own log stays small: errors reach the caller through errstr. */
    rocksdb_options_set_info_log_level(o, 2 /* WARN */);
    rocksdb_options_set_keep_log_file_num(o, 2);
    rocksdb_options_set_max_log_file_size(o, 1 << 20);
    /* Bounded descriptors per store; index blocks live in the cache, so reopening is cheap. */
    rocksdb_options_set_max_open_files(o, 256);

    size_t mt = store->mem->memtables_per_store;
    size_t wbs = mt / 2;
    if (wbs > ((size_t)64 << 20))
        wbs = (size_t)64 << 20;
    rocksdb_options_set_db_write_buffer_size(o, mt);
    rocksdb_options_set_write_buffer_size(o, wbs);
    rocksdb_options_set_max_write_buffer_number(o, 2);
    rocksdb_options_set_level_compaction_dynamic_level_bytes(o, 1);
    /* Operators often look up absent keys: a memtable bloom filter saves the search. */
    rocksdb_options_set_memtable_prefix_bloom_size_ratio(o, 0.02);
    rocksdb_options_set_memtable_whole_key_filtering(o, 1);

    rocksdb_block_based_table_options_t *t = rocksdb_block_based_options_create();
    if (t == NULL)
        return TM_ENOMEM;
    store->table = t;
    rocksdb_block_based_options_set_block_cache(t, store->mem->cache);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(t, 1);
    rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(t, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(t, 1);
    /* Operators look keys up one at a time; a bloom filter saves the misses. */
    rocksdb_block_based_options_set_filter_policy(t, rocksdb_filterpolicy_create_bloom_full(10));
    rocksdb_options_set_block_based_table_factory(o, t);

    if (store->ttl_us > 0) {
        store->ttl_filter =
            rocksdb_compactionfilter_create(store, ttl_filter_destroy, ttl_filter, ttl_filter_name);
        if (store->ttl_filter == NULL)
            return TM_ENOMEM;
        rocksdb_options_set_compaction_filter(o, store->ttl_filter);
    }
    store->ropts = rocksdb_readoptions_create();
    store->wopts = rocksdb_writeoptions_create();
    if (store->ropts == NULL || store->wopts == NULL)
        return TM_ENOMEM;
    /* Checkpoints, not the WAL, make state durable (see store.h). */
    rocksdb_writeoptions_disable_WAL(store->wopts, 1);
    return 0;
}

static int cf_append(tm_store_t *store, const char *uid, rocksdb_column_family_handle_t *h)
{
    tm_store_cf_t *cf = calloc(1, sizeof(*cf));
    if (cf == NULL || (cf->uid = strdup(uid)) == NULL) {
        free(cf);
        return TM_ENOMEM;
    }
    cf->handle = h;
    pthread_mutex_lock(&store->lock);
    if (store->ncfs == store->cfs_cap) {
        int ncap = store->cfs_cap ? store->cfs_cap * 2 : 4;
        tm_store_cf_t **p = realloc(store->cfs, sizeof(*p) * (size_t)ncap);
        if (p == NULL) {
            pthread_mutex_unlock(&store->lock);
            free(cf->uid);
            free(cf);
            return TM_ENOMEM;
        }
        store->cfs = p;
        store->cfs_cap = ncap;
    }
    store->cfs[store->ncfs++] = cf;
    pthread_mutex_unlock(&store->lock);
    return 0;
}

static bool file_exists(const char *dir, const char *name)
{
    char path[4096];
    struct stat st;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, name) >= sizeof(path))
        return false;
    return stat(path, &st) == 0;
}

static int open_db(tm_store_t *store, char *errstr, size_t errstr_size)
{
    /*
     * RocksDB's per-operation perf counters (thread-local, on by default)
     * cost a TLS lookup on every skiplist step; nothing reads them.  The
     * level is per thread, and this is the owner thread (header, Thread).
     */
    rocksdb_set_perf_level(1 /* rocksdb::kDisable */);
    char *rerr = NULL;
    size_t ncf = 0;
    char **names = NULL;
    if (file_exists(store->dir, "CURRENT")) {
        names = rocksdb_list_column_families(store->options, store->dir, &ncf, &rerr);
        if (rerr != NULL)
            return rdb_err(rerr, TM_EIO, errstr, errstr_size, "cannot list column families",
                           store->dir);
    }
    size_t n = ncf ? ncf : 1;
    const char **cfnames = calloc(n, sizeof(*cfnames));
    const rocksdb_options_t **cfopts = calloc(n, sizeof(*cfopts));
    rocksdb_column_family_handle_t **handles = calloc(n, sizeof(*handles));
    int rc = 0;
    if (cfnames == NULL || cfopts == NULL || handles == NULL) {
        rc = TM_ENOMEM;
        goto out;
    }
    if (ncf == 0)
        cfnames[0] = "default";
    for (size_t i = 0; i < ncf; i++)
        cfnames[i] = names[i];
    for (size_t i = 0; i < n; i++)
        cfopts[i] = store->options;
    store->db = rocksdb_open_column_families(store->options, store->dir, (int)n, cfnames, cfopts,
                                             handles, &rerr);
    if (rerr != NULL || store->db == NULL) {
        store->db = NULL;
        rc = rdb_err(rerr, TM_EIO, errstr, errstr_size, "cannot open", store->dir);
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        if (strcmp(cfnames[i], "default") == 0) {
            store->default_cf = handles[i];
            handles[i] = NULL;
        } else if ((rc = cf_append(store, cfnames[i], handles[i])) != 0) {
            goto out;
        } else {
            handles[i] = NULL;
        }
    }
out:
    /* Handles not adopted (only on failure) are released here; the DB closes in the caller. */
    for (size_t i = 0; handles != NULL && i < n; i++)
        if (handles[i] != NULL)
            rocksdb_column_family_handle_destroy(handles[i]);
    free(cfnames);
    free(cfopts);
    free(handles);
    if (names != NULL)
        rocksdb_list_column_families_destroy(names, ncf);
    return rc;
}

int tm_store_open(const char *dir, const tm_store_opts_t *opts, tm_store_t **out, char *errstr,
                  size_t errstr_size)
{
    static const tm_store_opts_t defaults;
    int rc;
    *out = NULL;
    if (opts == NULL)
        opts = &defaults;
    int maxp = opts->max_parallelism ? opts->max_parallelism : TM_MAX_PARALLELISM_DEFAULT;
    if ((rc = tm_keygroup_check(maxp, 0, errstr, errstr_size)) != 0)
        return rc;
    if (opts->state_ttl_us < 0)
        return tm_seterr(errstr, errstr_size, TM_ECONFIG,
                         "state_ttl must not be negative (got %lld µs)",
                         (long long)opts->state_ttl_us);

    tm_store_t *store = calloc(1, sizeof(*store));
    if (store == NULL)
        return TM_ENOMEM;
    pthread_mutex_init(&store->lock, NULL);
    tm_buf_init(&store->kbuf);
    tm_buf_init(&store->vbuf);
    store->max_parallelism = maxp;
    store->ttl_us = opts->state_ttl_us;
    store->clock = opts->clock ? opts->clock : default_clock;
    store->clock_arg = opts->clock ? opts->clock_arg : NULL;
    if ((store->dir = strdup(dir)) == NULL) {
        rc = TM_ENOMEM;
        goto fail;
    }
    if (opts->mem != NULL)
        store->mem = mem_ref(opts->mem);
    else if ((rc = tm_store_mem_new(opts->state_memory, 1, &store->mem, errstr, errstr_size)) != 0)
        goto fail;
    if ((rc = make_options(store)) != 0)
        goto fail;
    if (tm_mkdir_p(dir, 0755) != 0) {
        rc = tm_seterr(errstr, errstr_size, TM_EIO, "state store %s: cannot create it: %s", dir,
                       strerror(errno));
        goto fail;
    }
    if ((rc = open_db(store, errstr, errstr_size)) != 0)
        goto fail;
    *out = store;
    return 0;
fail:
    tm_store_close(store);
    return rc;
}

tm_store_t *tm_store_close(tm_store_t *store)
{
    if (store == NULL)
        return NULL;
    for (int i = 0; i < store->ncfs; i++)
        rocksdb_column_family_handle_destroy(store->cfs[i]->handle);
    if (store->default_cf != NULL)
        rocksdb_column_family_handle_destroy(store->default_cf);
    if (store->db != NULL)
        rocksdb_close(store->db);
    /* Invariant 2: what the database used goes only after it is closed. */
    for (int i = 0; i < store->ncfs; i++) {
        free(store->cfs[i]->uid);
        free(store->cfs[i]);
    }
    free(store->cfs);
    if (store->ttl_filter != NULL)
        rocksdb_compactionfilter_destroy(store->ttl_filter);
    if (store->options != NULL)
        rocksdb_options_destroy(store->options);
    if (store->table != NULL)
        rocksdb_block_based_options_destroy(store->table);
    if (store->ropts != NULL)
        rocksdb_readoptions_destroy(store->ropts);
    if (store->wopts != NULL)
        rocksdb_writeoptions_destroy(store->wopts);
    tm_store_mem_free(store->mem);
    tm_buf_release(&store->kbuf);
    tm_buf_release(&store->vbuf);
    pthread_mutex_destroy(&store->lock);
    free(store->prev_chk);
    free(store->dir);
    free(store);
    return NULL;
}

int tm_store_max_parallelism(const tm_store_t *store)
{
    return store->max_parallelism;
}

const char *tm_store_dir(const tm_store_t *store)
{
    return store->dir;
}

/* ---- column families ---- */

tm_store_cf_t *tm_store_cf_find(tm_store_t *store, const char *uid)
{
    for (int i = 0; i < store->ncfs; i++)
        if (strcmp(store->cfs[i]->uid, uid) == 0)
            return store->cfs[i];
    return NULL;
}

int tm_store_cf(tm_store_t *store, const char *uid, tm_store_cf_t **out, char *errstr,
                size_t errstr_size)
{
    size_t len = uid ? strlen(uid) : 0;
    *out = NULL;
    if (len == 0 || len > TM_STORE_UID_MAX || strcmp(uid, "default") == 0)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "operator uid '%s' is not usable: it must be 1 to %d bytes and not "
                         "'default'",
                         uid ? uid : "", TM_STORE_UID_MAX);
    tm_store_cf_t *cf = tm_store_cf_find(store, uid);
    if (cf != NULL) {
        *out = cf;
        return 0;
    }
    char *rerr = NULL;
    rocksdb_column_family_handle_t *h =
        rocksdb_create_column_family(store->db, store->options, uid, &rerr);
    if (rerr != NULL || h == NULL) {
        char what[TM_STORE_UID_MAX + 64];
        snprintf(what, sizeof(what), "cannot create the column family of operator %s", uid);
        return rdb_err(rerr, TM_EIO, errstr, errstr_size, what, store->dir);
    }
    int rc = cf_append(store, uid, h);
    if (rc != 0) {
        rocksdb_column_family_handle_destroy(h);
        return rc;
    }
    *out = store->cfs[store->ncfs - 1];
    return 0;
}

int tm_store_cf_count(const tm_store_t *store)
{
    return store->ncfs;
}

const char *tm_store_cf_uid(const tm_store_t *store, int i)
{
    return i >= 0 && i < store->ncfs ? store->cfs[i]->uid : NULL;
}

/* ---- single operations ---- */

int tm_store_get(tm_store_t *store, tm_store_cf_t *cf, int kg, const void *key, size_t klen,
                 tm_buf_t *val, char *errstr, size_t errstr_size)
{
    int rc = compose_key(store, kg, key, klen);
    if (rc != 0)
        return rc;
    char *rerr = NULL;
    rocksdb_pinnableslice_t *ps = rocksdb_get_pinned_cf(
        store->db, store->ropts, cf->handle, store->kbuf.data, store->kbuf.len, &rerr);
    if (rerr != NULL)
        return rdb_err(rerr, TM_EIO, errstr, errstr_size, "read failed", store->dir);
    if (ps == NULL)
        return TM_ENOTFOUND;
    size_t rlen;
    const char *raw = rocksdb_pinnableslice_value(ps, &rlen);
    rc = raw == NULL ? TM_ENOTFOUND : value_to_buf(store, raw, rlen, val, errstr, errstr_size);
    rocksdb_pinnableslice_destroy(ps);
    return rc;
}

int tm_store_put(tm_store_t *store, tm_store_cf_t *cf, int kg, const void *key, size_t klen,
                 const void *val, size_t vlen, char *errstr, size_t errstr_size)
{
    int rc = compose_key(store, kg, key, klen);
    if (rc != 0)
        return rc;
    uint8_t ts[TS_BYTES];
    put_le64(ts, (uint64_t)tm_store_now(store));
    tm_buf_clear(&store->vbuf);
    if (tm_buf_append(&store->vbuf, ts, sizeof(ts)) != 0 ||
        (vlen > 0 && tm_buf_append(&store->vbuf, val, vlen) != 0))
        return TM_ENOMEM;
    char *rerr = NULL;
    rocksdb_put_cf(store->db, store->wopts, cf->handle, store->kbuf.data, store->kbuf.len,
                   store->vbuf.data, store->vbuf.len, &rerr);
    return rerr ? rdb_err(rerr, TM_EIO, errstr, errstr_size, "write failed", store->dir) : 0;
}

int tm_store_delete(tm_store_t *store, tm_store_cf_t *cf, int kg, const void *key, size_t klen,
                    char *errstr, size_t errstr_size)
{
    int rc = compose_key(store, kg, key, klen);
    if (rc != 0)
        return rc;
    char *rerr = NULL;
    rocksdb_delete_cf(store->db, store->wopts, cf->handle, store->kbuf.data, store->kbuf.len,
                      &rerr);
    return rerr ? rdb_err(rerr, TM_EIO, errstr, errstr_size, "delete failed", store->dir) : 0;
}

/*
 * The smallest byte string greater than every string that starts with
 * p[0..*len): increments the last byte below 0xff and truncates after it.
 * Returns false when there is none (p is empty or all 0xff).
 */
static bool prefix_successor(uint8_t *p, size_t *len)
{
    while (*len > 0) {
        if (p[*len - 1] != 0xff) {
            p[*len - 1]++;
            return true;
        }
        (*len)--;
    }
    return false;
}

int tm_store_delete_prefix(tm_store_t *store, tm_store_cf_t *cf, const void *prefix, size_t plen,
                           char *errstr, size_t errstr_size)
{
    size_t n = TM_KEYGROUP_PREFIX + plen;
    uint8_t *lo = malloc(n), *hi = malloc(n);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    int rc = 0;
    if (lo == NULL || hi == NULL || wb == NULL) {
        rc = TM_ENOMEM;
        goto out;
    }
    for (int kg = 0; kg < store->max_parallelism; kg++) {
        tm_keygroup_put(lo, kg);
        if (plen > 0)
            memcpy(lo + TM_KEYGROUP_PREFIX, prefix, plen);
        memcpy(hi, lo, n);
        /*
         * The range ends past the prefix within this key group, or, when the
         * prefix has no successor, where the next key group starts.
         */
        size_t hlen = plen;
        if (plen > 0 && prefix_successor(hi + TM_KEYGROUP_PREFIX, &hlen)) {
            hlen += TM_KEYGROUP_PREFIX;
        } else {
            tm_keygroup_put(hi, kg + 1);
            hlen = TM_KEYGROUP_PREFIX;
        }
        rocksdb_writebatch_delete_range_cf(wb, cf->handle, (const char *)lo, n,
                                           (const char *)hi, hlen);
    }
    char *rerr = NULL;
    rocksdb_write(store->db, store->wopts, wb, &rerr);
    if (rerr != NULL)
        rc = rdb_err(rerr, TM_EIO, errstr, errstr_size, "range delete failed", store->dir);
out:
    if (wb != NULL)
        rocksdb_writebatch_destroy(wb);
    free(lo);
    free(hi);
    return rc;
}

/* ---- batches ---- */

int tm_store_batch_new(tm_store_t *store, tm_store_batch_t **out)
{
    rocksdb_set_perf_level(1); /* kDisable (see open_db), on the batch owner's thread */
    tm_store_batch_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return TM_ENOMEM;
    b->store = store;
    /* overwrite_key: the index keeps only the latest write of each key. */
    b->wb = rocksdb_writebatch_wi_create(0, 1);
    if (b->wb == NULL) {
        free(b);
        return TM_ENOMEM;
    }
    *out = b;
    return 0;
}

int tm_store_batch_new_unindexed(tm_store_t *store, tm_store_batch_t **out)
{
    rocksdb_set_perf_level(1); /* kDisable (see open_db), on the batch owner's thread */
    tm_store_batch_t *b = calloc(1, sizeof(*b));
    if (b == NULL)
        return TM_ENOMEM;
    b->store = store;
    b->plain = rocksdb_writebatch_create();
    if (b->plain == NULL) {
        free(b);
        return TM_ENOMEM;
    }
    *out = b;
    return 0;
}

tm_store_batch_t *tm_store_batch_free(tm_store_batch_t *b)
{
    if (b == NULL)
        return NULL;
    if (b->wb != NULL)
        rocksdb_writebatch_wi_destroy(b->wb);
    if (b->plain != NULL)
        rocksdb_writebatch_destroy(b->plain);
    free(b);
    return NULL;
}

int tm_store_batch_put_ts(tm_store_batch_t *b, tm_store_cf_t *cf, int kg, const void *key,
                          size_t klen, const void *val, size_t vlen, int64_t ts_us)
{
    uint8_t kgb[TM_KEYGROUP_PREFIX], tsb[TS_BYTES];
    if (NEVER(kg < 0 || kg >= b->store->max_parallelism))
        return TM_EINVAL;
    tm_keygroup_put(kgb, kg);
    put_le64(tsb, (uint64_t)ts_us);
    /* Slices avoid composing key and value in a scratch buffer: RocksDB copies them. */
    const char *kp[2] = {(const char *)kgb, key};
    size_t kl[2] = {sizeof(kgb), klen};
    const char *vp[2] = {(const char *)tsb, val};
    size_t vl[2] = {sizeof(tsb), vlen};
    if (b->plain != NULL)
        rocksdb_writebatch_putv_cf(b->plain, cf->handle, 2, kp, kl, 2, vp, vl);
    else
        rocksdb_writebatch_wi_putv_cf(b->wb, cf->handle, 2, kp, kl, 2, vp, vl);
    return 0;
}

int tm_store_batch_put(tm_store_batch_t *b, tm_store_cf_t *cf, int kg, const void *key,
                       size_t klen, const void *val, size_t vlen)
{
    return tm_store_batch_put_ts(b, cf, kg, key, klen, val, vlen, tm_store_now(b->store));
}

int tm_store_batch_delete(tm_store_batch_t *b, tm_store_cf_t *cf, int kg, const void *key,
                          size_t klen)
{
    uint8_t kgb[TM_KEYGROUP_PREFIX];
    if (NEVER(kg < 0 || kg >= b->store->max_parallelism))
        return TM_EINVAL;
    tm_keygroup_put(kgb, kg);
    const char *kp[2] = {(const char *)kgb, key};
    size_t kl[2] = {sizeof(kgb), klen};
    if (b->plain != NULL)
        rocksdb_writebatch_deletev_cf(b->plain, cf->handle, 2, kp, kl);
    else
        rocksdb_writebatch_wi_deletev_cf(b->wb, cf->handle, 2, kp, kl);
    return 0;
}

int tm_store_batch_get(tm_store_batch_t *b, tm_store_cf_t *cf, int kg, const void *key,
                       size_t klen, tm_buf_t *val, char *errstr, size_t errstr_size)
{
    tm_store_t *store = b->store;
    if (tm_store_batch_count(b) == 0)
        return tm_store_get(store, cf, kg, key, klen, val, errstr, errstr_size);
    if (b->plain != NULL)
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "state store %s: a read through an unindexed batch with pending writes "
                         "(a caller bug: use tm_store_get or an indexed batch)",
                         store->dir);
    int rc = compose_key(store, kg, key, klen);
    if (rc != 0)
        return rc;
    char *rerr = NULL;
    size_t rlen = 0;
    char *raw = rocksdb_writebatch_wi_get_from_batch_and_db_cf(
        b->wb, store->db, store->ropts, cf->handle, store->kbuf.data, store->kbuf.len, &rlen,
        &rerr);
    if (rerr != NULL)
        return rdb_err(rerr, TM_EIO, errstr, errstr_size, "read failed", store->dir);
    if (raw == NULL)
        return TM_ENOTFOUND;
    rc = value_to_buf(store, raw, rlen, val, errstr, errstr_size);
    rocksdb_free(raw);
    return rc;
}

uint32_t tm_store_batch_count(tm_store_batch_t *b)
{
    return (uint32_t)(b->plain != NULL ? rocksdb_writebatch_count(b->plain)
                                       : rocksdb_writebatch_wi_count(b->wb));
}

int tm_store_batch_commit(tm_store_batch_t *b, char *errstr, size_t errstr_size)
{
    if (tm_store_batch_count(b) == 0)
        return 0;
    char *rerr = NULL;
    if (b->plain != NULL)
        rocksdb_write(b->store->db, b->store->wopts, b->plain, &rerr);
    else
        rocksdb_write_writebatch_wi(b->store->db, b->store->wopts, b->wb, &rerr);
    if (rerr != NULL)
        return rdb_err(rerr, TM_EIO, errstr, errstr_size, "write failed", b->store->dir);
    if (b->plain != NULL)
        rocksdb_writebatch_clear(b->plain);
    else
        rocksdb_writebatch_wi_clear(b->wb);
    return 0;
}

/* ---- iteration ---- */

static int iter_new(tm_store_t *store, tm_store_cf_t *cf, int kg_first, int kg_last,
                    const void *prefix, size_t plen, bool reverse, tm_store_iter_t **out)
{
    *out = NULL;
    if (kg_first < 0 || kg_last >= store->max_parallelism || kg_first > kg_last + 1)
        return TM_EINVAL;
    tm_store_iter_t *it = calloc(1, sizeof(*it));
    if (it == NULL)
        return TM_ENOMEM;
    it->store = store;
    it->reverse = reverse;
    it->kg = reverse ? kg_last : kg_first;
    it->kg_first = kg_first;
    it->kg_last = kg_last;
    it->plen = plen;
    it->cap = TM_KEYGROUP_PREFIX + plen;
    it->prefix = malloc(it->cap);
    it->bound = malloc(it->cap);
    it->ropts = rocksdb_readoptions_create();
    if (it->prefix == NULL || it->bound == NULL || it->ropts == NULL) {
        tm_store_iter_free(it);
        return TM_ENOMEM;
    }
    if (plen > 0)
        memcpy(it->prefix + TM_KEYGROUP_PREFIX, prefix, plen);
    it->it = rocksdb_create_iterator_cf(store->db, it->ropts, cf->handle);
    if (it->it == NULL) {
        tm_store_iter_free(it);
        return TM_ENOMEM;
    }
    *out = it;
    return 0;
}

int tm_store_iter_new(tm_store_t *store, tm_store_cf_t *cf, int kg_first, int kg_last,
                      const void *prefix, size_t plen, tm_store_iter_t **out)
{
    return iter_new(store, cf, kg_first, kg_last, prefix, plen, false, out);
}

int tm_store_iter_new_reverse(tm_store_t *store, tm_store_cf_t *cf, int kg_first, int kg_last,
                              const void *prefix, size_t plen, tm_store_iter_t **out)
{
    return iter_new(store, cf, kg_first, kg_last, prefix, plen, true, out);
}

int tm_store_iter_seek(tm_store_iter_t *it, int kg, const void *prefix, size_t plen,
                       bool reverse)
{
    if (kg < 0 || kg >= it->store->max_parallelism)
        return TM_EINVAL;
    if (TM_KEYGROUP_PREFIX + plen > it->cap) {
        size_t cap = TM_KEYGROUP_PREFIX + plen + 32;
        uint8_t *p = realloc(it->prefix, cap);
        if (p == NULL)
            return TM_ENOMEM;
        it->prefix = p;
        if ((p = realloc(it->bound, cap)) == NULL)
            return TM_ENOMEM;
        it->bound = p;
        it->cap = cap;
    }
    if (plen > 0)
        memcpy(it->prefix + TM_KEYGROUP_PREFIX, prefix, plen);
    it->plen = plen;
    it->kg = it->kg_first = it->kg_last = kg;
    it->reverse = reverse;
    it->positioned = false;
    return 0;
}

/*
 * Puts a reverse iterator on the last key of key group it->kg that starts
 * with the prefix (or just before the range when it has none): seeks for the
 * last key <= the smallest key past the range, and steps back once when the
 * seek found that bound itself.
 */
static void seek_last(tm_store_iter_t *it)
{
    size_t full = TM_KEYGROUP_PREFIX + it->plen;
    uint8_t *bound = it->bound;
    tm_keygroup_put(it->prefix, it->kg);
    memcpy(bound, it->prefix, full);
    size_t blen = it->plen;
    if (it->plen > 0 && prefix_successor(bound + TM_KEYGROUP_PREFIX, &blen)) {
        blen += TM_KEYGROUP_PREFIX;
    } else {
        /* Key groups are below 2^15, so kg + 1 still fits the u16 prefix. */
        tm_keygroup_put(bound, it->kg + 1);
        blen = TM_KEYGROUP_PREFIX;
    }
    rocksdb_iter_seek_for_prev(it->it, (const char *)bound, blen);
    size_t klen = 0;
    if (rocksdb_iter_valid(it->it)) {
        const char *k = rocksdb_iter_key(it->it, &klen);
        if (klen == blen && memcmp(k, bound, blen) == 0)
            rocksdb_iter_prev(it->it);
    }
}

int tm_store_iter_next(tm_store_iter_t *it, tm_store_entry_t *e, char *errstr,
                       size_t errstr_size)
{
    tm_store_t *store = it->store;
    size_t full = TM_KEYGROUP_PREFIX + it->plen;
    int64_t now = tm_store_now(store);
    for (;;) {
        if (it->kg > it->kg_last || it->kg < it->kg_first)
            return 0;
        if (!it->positioned) {
            if (it->reverse) {
                seek_last(it);
            } else {
                tm_keygroup_put(it->prefix, it->kg);
                rocksdb_iter_seek(it->it, (const char *)it->prefix, full);
            }
            it->positioned = true;
        } else if (it->reverse) {
            rocksdb_iter_prev(it->it);
        } else {
            rocksdb_iter_next(it->it);
        }
        size_t klen = 0, rlen = 0;
        const char *k = rocksdb_iter_valid(it->it) ? rocksdb_iter_key(it->it, &klen) : NULL;
        if (k == NULL || klen < full || memcmp(k, it->prefix, full) != 0) {
            char *rerr = NULL;
            rocksdb_iter_get_error(it->it, &rerr);
            if (rerr != NULL)
                return rdb_err(rerr, TM_EIO, errstr, errstr_size, "iteration failed",
                               store->dir);
            /*
             * Past this key group's part of the range.  Key groups without
             * entries are skipped by continuing from the key group of the
             * key the iterator stopped at, rather than seeking each one.
             */
            if (k == NULL)
                return 0; /* nothing further in the column family at all */
            int next;
            if (it->reverse) {
                next = it->kg - 1;
                if (klen >= TM_KEYGROUP_PREFIX) {
                    int at = tm_keygroup_get((const uint8_t *)k);
                    if (at < next)
                        next = at;
                }
            } else {
                next = it->kg + 1;
                if (klen >= TM_KEYGROUP_PREFIX) {
                    int at = tm_keygroup_get((const uint8_t *)k);
                    if (at > next)
                        next = at;
                }
            }
            it->kg = next;
            it->positioned = false;
            continue;
        }
        const char *raw = rocksdb_iter_value(it->it, &rlen);
        int rc = value_split(store, raw, rlen, now, &e->val, &e->vlen, &e->ts_us);
        if (rc == TM_ENOTFOUND)
            continue;
        if (rc != 0)
            return tm_seterr(errstr, errstr_size, rc,
                             "state store %s: a value of %zu bytes in key group %d has no "
                             "timestamp",
                             store->dir, rlen, it->kg);
        e->kg = it->kg;
        e->key = (const uint8_t *)k + TM_KEYGROUP_PREFIX;
        e->klen = klen - TM_KEYGROUP_PREFIX;
        return 1;
    }
}

tm_store_iter_t *tm_store_iter_free(tm_store_iter_t *it)
{
    if (it == NULL)
        return NULL;
    if (it->it != NULL)
        rocksdb_iter_destroy(it->it);
    if (it->ropts != NULL)
        rocksdb_readoptions_destroy(it->ropts);
    free(it->prefix);
    free(it->bound);
    free(it);
    return NULL;
}

/* ---- checkpoints ---- */

static int flush_all(tm_store_t *store, char *errstr, size_t errstr_size)
{
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    if (fo == NULL)
        return TM_ENOMEM;
    rocksdb_flushoptions_set_wait(fo, 1);
    char *rerr = NULL;
    rocksdb_flush_cf(store->db, fo, store->default_cf, &rerr);
    for (int i = 0; rerr == NULL && i < store->ncfs; i++)
        rocksdb_flush_cf(store->db, fo, store->cfs[i]->handle, &rerr);
    rocksdb_flushoptions_destroy(fo);
    if (rerr != NULL)
        return rdb_err(rerr, TM_ECHECKPOINT, errstr, errstr_size, "flush failed", store->dir);
    return 0;
}

/* Sums the files of a checkpoint and those not shared (same inode) with `prev`. */
static int checkpoint_sizes(const char *dir, const char *prev, tm_store_checkpoint_info_t *info)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return TM_EIO;
    struct dirent *de;
    char path[4096];
    memset(info, 0, sizeof(*info));
    while ((de = readdir(d)) != NULL) {
        struct stat st, pst;
        if (de->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= sizeof(path) ||
            stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        info->files++;
        info->bytes += (uint64_t)st.st_size;
        bool shared = false;
        if (prev != NULL &&
            (size_t)snprintf(path, sizeof(path), "%s/%s", prev, de->d_name) < sizeof(path) &&
            stat(path, &pst) == 0)
            shared = pst.st_ino == st.st_ino && pst.st_dev == st.st_dev;
        if (!shared) {
            info->files_new++;
            info->bytes_new += (uint64_t)st.st_size;
        }
    }
    closedir(d);
    return 0;
}

static char *parent_of(const char *path)
{
    char *p = strdup(path);
    if (p == NULL)
        return NULL;
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/')
        p[--n] = '\0';
    char *slash = strrchr(p, '/');
    if (slash == NULL)
        strcpy(p, ".");
    else if (slash == p)
        p[1] = '\0';
    else
        *slash = '\0';
    return p;
}

int tm_store_checkpoint(tm_store_t *store, const char *dir, tm_store_checkpoint_info_t *info,
                        char *errstr, size_t errstr_size)
{
    int rc = flush_all(store, errstr, errstr_size);
    if (rc != 0)
        return rc;
    char *parent = parent_of(dir);
    if (parent == NULL)
        return TM_ENOMEM;
    if (tm_mkdir_p(parent, 0755) != 0) {
        rc = tm_seterr(errstr, errstr_size, TM_ECHECKPOINT, "checkpoint %s: cannot create %s: %s",
                       dir, parent, strerror(errno));
        free(parent);
        return rc;
    }
    char *rerr = NULL;
    rocksdb_checkpoint_t *chk = rocksdb_checkpoint_object_create(store->db, &rerr);
    if (rerr == NULL) {
        /* 0: flush before linking; the memtables are empty already, so nothing is written. */
        rocksdb_checkpoint_create(chk, dir, 0, &rerr);
        rocksdb_checkpoint_object_destroy(chk);
    }
    if (rerr != NULL) {
        free(parent);
        return rdb_err(rerr, TM_ECHECKPOINT, errstr, errstr_size, "checkpoint failed", dir);
    }
    /* RocksDB syncs the files and renames the directory into place; make the rename durable. */
    if (tm_fsync_dir(parent) != 0) {
        rc = tm_seterr(errstr, errstr_size, TM_ECHECKPOINT, "checkpoint %s: cannot fsync %s: %s",
                       dir, parent, strerror(errno));
        free(parent);
        return rc;
    }
    free(parent);
    tm_store_checkpoint_info_t tmp;
    if (checkpoint_sizes(dir, store->prev_chk, info ? info : &tmp) != 0)
        return tm_seterr(errstr, errstr_size, TM_ECHECKPOINT, "checkpoint %s: cannot read it: %s",
                         dir, strerror(errno));
    char *copy = strdup(dir);
    if (copy != NULL) {
        free(store->prev_chk);
        store->prev_chk = copy;
    }
    return 0;
}

static bool is_immutable(const char *name)
{
    size_t n = strlen(name);
    return (n > 4 && strcmp(name + n - 4, ".sst") == 0) ||
           (n > 5 && strcmp(name + n - 5, ".blob") == 0);
}

static int copy_file(const char *from, const char *to)
{
    int in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return TM_EIO;
    int outfd = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
    if (outfd < 0) {
        int saved = errno;
        close(in);
        errno = saved;
        return TM_EIO;
    }
    char buf[65536];
    int rc = 0;
    for (;;) {
        ssize_t n = read(in, buf, sizeof(buf));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = TM_EIO;
            break;
        }
        if (n == 0)
            break;
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(outfd, buf + off, (size_t)(n - off));
            if (w < 0 && errno == EINTR)
                continue;
            if (w <= 0) {
                rc = TM_EIO;
                break;
            }
            off += w;
        }
        if (rc != 0)
            break;
    }
    if (rc == 0 && fsync(outfd) != 0)
        rc = TM_EIO;
    int saved = errno;
    close(in);
    if (close(outfd) != 0 && rc == 0)
        rc = TM_EIO;
    errno = saved;
    return rc;
}

static bool dir_is_empty_or_missing(const char *dir, bool *missing)
{
    DIR *d = opendir(dir);
    *missing = false;
    if (d == NULL) {
        *missing = errno == ENOENT;
        return *missing;
    }
    struct dirent *de;
    bool empty = true;
    while ((de = readdir(d)) != NULL)
        if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
            empty = false;
    closedir(d);
    return empty;
}

int tm_store_open_from_checkpoint(const char *chk_dir, const char *work_dir,
                                  const tm_store_opts_t *opts, tm_store_t **out, char *errstr,
                                  size_t errstr_size)
{
    *out = NULL;
    if (!file_exists(chk_dir, "CURRENT"))
        return tm_seterr(errstr, errstr_size, TM_ENOTFOUND,
                         "%s is not a state checkpoint: it has no CURRENT file", chk_dir);
    bool missing;
    if (!dir_is_empty_or_missing(work_dir, &missing))
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "cannot restore into %s: the directory is not empty (remove it first)",
                         work_dir);
    if (tm_mkdir_p(work_dir, 0755) != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot create %s: %s", work_dir,
                         strerror(errno));
    DIR *d = opendir(chk_dir);
    if (d == NULL)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot read checkpoint %s: %s", chk_dir,
                         strerror(errno));
    struct dirent *de;
    char from[4096], to[4096];
    int rc = 0;
    while (rc == 0 && (de = readdir(d)) != NULL) {
        struct stat st;
        if (de->d_name[0] == '.')
            continue;
        if ((size_t)snprintf(from, sizeof(from), "%s/%s", chk_dir, de->d_name) >= sizeof(from) ||
            (size_t)snprintf(to, sizeof(to), "%s/%s", work_dir, de->d_name) >= sizeof(to)) {
            rc = tm_seterr(errstr, errstr_size, TM_EIO, "path too long under %s", chk_dir);
            break;
        }
        if (stat(from, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        /*
         * SSTs are immutable: link them (a copy only across file systems).
         * MANIFEST, CURRENT, OPTIONS and logs are copied, because RocksDB
         * may append to or replace them in the working directory, and the
         * checkpoint must stay as it was.
         */
        if (is_immutable(de->d_name) && link(from, to) == 0)
            continue;
        if (copy_file(from, to) != 0)
            rc = tm_seterr(errstr, errstr_size, TM_EIO, "cannot copy %s to %s: %s", from,
                           work_dir, strerror(errno));
    }
    closedir(d);
    if (rc == 0 && tm_fsync_dir(work_dir) != 0)
        rc = tm_seterr(errstr, errstr_size, TM_EIO, "cannot fsync %s: %s", work_dir,
                       strerror(errno));
    if (rc != 0)
        return rc;
    tm_store_t *store;
    if ((rc = tm_store_open(work_dir, opts, &store, errstr, errstr_size)) != 0)
        return rc;
    free(store->prev_chk);
    store->prev_chk = strdup(chk_dir);
    *out = store;
    return 0;
}

int tm_store_compact(tm_store_t *store, char *errstr, size_t errstr_size)
{
    /* The C API reports no error for a manual compaction; failures surface on later writes. */
    for (int i = 0; i < store->ncfs; i++)
        rocksdb_compact_range_cf(store->db, store->cfs[i]->handle, NULL, 0, NULL, 0);
    return 0;
}

void tm_store_memory_usage(tm_store_t *store, tm_store_memory_t *out)
{
    tm_store_mem_usage(store->mem, out);
    uint64_t v = 0, sum = 0;
    pthread_mutex_lock(&store->lock);
    if (store->default_cf != NULL &&
        rocksdb_property_int_cf(store->db, store->default_cf, "rocksdb.cur-size-all-mem-tables",
                                &v) == 0)
        sum += v;
    for (int i = 0; i < store->ncfs; i++)
        if (rocksdb_property_int_cf(store->db, store->cfs[i]->handle,
                                    "rocksdb.cur-size-all-mem-tables", &v) == 0)
            sum += v;
    pthread_mutex_unlock(&store->lock);
    out->memtables = sum;
}

uint64_t tm_store_cf_bytes(tm_store_t *store, const char *uid)
{
    uint64_t v = 0, sum = 0;
    pthread_mutex_lock(&store->lock);
    for (int i = 0; i < store->ncfs; i++) {
        if (strcmp(store->cfs[i]->uid, uid) != 0)
            continue;
        if (rocksdb_property_int_cf(store->db, store->cfs[i]->handle,
                                    "rocksdb.total-sst-files-size", &v) == 0)
            sum += v;
        if (rocksdb_property_int_cf(store->db, store->cfs[i]->handle,
                                    "rocksdb.cur-size-all-mem-tables", &v) == 0)
            sum += v;
    }
    pthread_mutex_unlock(&store->lock);
    return sum;
}

/* ---- removal ---- */

static bool looks_like_store(const char *dir)
{
    DIR *d = opendir(dir);
    if (d == NULL)
        return false;
    struct dirent *de;
    bool yes = false, empty = true;
    while ((de = readdir(d)) != NULL) {
        const char *n = de->d_name;
        if (strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
            continue;
        empty = false;
        if (strcmp(n, "CURRENT") == 0 || strcmp(n, "IDENTITY") == 0 ||
            strncmp(n, "MANIFEST-", 9) == 0 || strncmp(n, "OPTIONS-", 8) == 0 || is_immutable(n))
            yes = true;
    }
    closedir(d);
    return yes || empty;
}

int tm_store_remove_dir(const char *dir, char *errstr, size_t errstr_size)
{
    struct stat st;
    if (stat(dir, &st) != 0 && errno == ENOENT)
        return 0;
    if (!looks_like_store(dir))
        return tm_seterr(errstr, errstr_size, TM_EINVAL,
                         "refusing to remove %s: it does not look like a state store or "
                         "checkpoint",
                         dir);
    if (tm_rm_rf(dir) != 0)
        return tm_seterr(errstr, errstr_size, TM_EIO, "cannot remove %s: %s", dir,
                         strerror(errno));
    return 0;
}
