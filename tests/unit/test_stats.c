/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Counters (stats.c) without a device: the log-linear bucket mapping stays
 * within 12.5 % over a sweep of values and its borders tile the range;
 * percentiles on fixed inputs are the documented ones and bound the exact
 * percentile from above by at most 12.5 %; shards written by several
 * threads while a reader snapshots and renders JSON (TSan build) merge
 * into exact totals; a reset (also mid-run) zeroes everything and leaves
 * every op self-consistent; one thread recording into two devices keeps
 * them apart.
 */
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json_mini.h"
#include "stats.h"
#include "virtqueue.h"

static int failures;

#define CHECK(cond, ...)                                                \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                               \
            fprintf(stderr, "\n");                                      \
            failures++;                                                 \
        }                                                               \
    } while (0)

/* ---- bucket mapping ---- */

static void check_value(uint64_t v)
{
    unsigned int b = stats_bucket(v);
    uint64_t lo = stats_bucket_lower(b), hi = stats_bucket_upper(b);

    if (b >= STATS_NBUCKETS) {
        CHECK(0, "v %" PRIu64 ": bucket %u out of range", v, b);
        return;
    }
    CHECK(lo <= v && v <= hi, "v %" PRIu64 " in bucket %u [%" PRIu64 ", %"
          PRIu64 "]", v, b, lo, hi);
    if (b == STATS_NBUCKETS - 1)
        return;
    /* the largest value of the bucket overstates v by at most 1/8 */
    CHECK((double)(hi - v) <= 0.125 * (double)v,
          "v %" PRIu64 ": bucket %u [%" PRIu64 ", %" PRIu64 "] > 12.5 %%",
          v, b, lo, hi);
}

static void test_buckets(void)
{
    uint64_t v;

    /* borders tile [0, inf): contiguous, increasing, each bucket's
     * width at most 1/8 of its lower border above the exact range */
    CHECK(stats_bucket_lower(0) == 0, "first border");
    for (unsigned int b = 0; b + 1 < STATS_NBUCKETS; b++) {
        uint64_t lo = stats_bucket_lower(b), hi = stats_bucket_upper(b);

        CHECK(hi + 1 == stats_bucket_lower(b + 1), "gap after bucket %u", b);
        CHECK(lo <= hi, "bucket %u empty", b);
        CHECK(stats_bucket(lo) == b && stats_bucket(hi) == b,
              "bucket %u borders map elsewhere (%u, %u)", b,
              stats_bucket(lo), stats_bucket(hi));
        if (b >= STATS_SUB_BUCKETS)
            CHECK((hi - lo + 1) * 8 <= lo, "bucket %u too wide", b);
        else
            CHECK(lo == hi, "bucket %u not exact", b);
    }
    CHECK(stats_bucket_upper(STATS_NBUCKETS - 1) == UINT64_MAX, "last open");
    CHECK(stats_bucket_lower(STATS_NBUCKETS - 1) == 15ull << 36,
          "last border %" PRIu64, stats_bucket_lower(STATS_NBUCKETS - 1));

    /* every value up to 2^20, then a geometric sweep and the edges */
    for (v = 0; v <= (1u << 20); v++)
        check_value(v);
    for (double d = 1 << 20; d < 1.8e19; d *= 1.0137)
        check_value((uint64_t)d);
    for (unsigned int e = 1; e < 64; e++) {
        check_value((1ull << e) - 1);
        check_value(1ull << e);
        check_value((1ull << e) + 1);
    }
    check_value(UINT64_MAX);
    CHECK(stats_bucket(UINT64_MAX) == STATS_NBUCKETS - 1, "clamp");
    CHECK(stats_bucket(1ull << 40) == STATS_NBUCKETS - 1, "2^40 clamps");
    CHECK(stats_bucket((1ull << 40) - 1) == STATS_NBUCKETS - 1,
          "2^40-1 in the last bucket");
}

/* ---- percentiles ---- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void test_percentiles(void)
{
    static const double qs[] = { 0.5, 0.9, 0.99, 0.999, 1.0 };
    struct stats_histo_snap *h = calloc(1, sizeof(*h));
    uint64_t *vals;
    unsigned int seed = 12345;
    const unsigned int n = 100000;

    /* empty */
    CHECK(stats_histo_percentile(h, 0.5) == 0, "empty p50");

    /* 1..1000: worked out by hand from the bucket layout */
    for (uint64_t v = 1; v <= 1000; v++)
        stats_histo_snap_add(h, v);
    CHECK(h->count == 1000 && h->sum == 500500 && h->max == 1000, "1..1000");
    /* rank 500 -> bucket [480, 511] */
    CHECK(stats_histo_percentile(h, 0.5) == 511, "p50 %" PRIu64,
          stats_histo_percentile(h, 0.5));
    /* rank 900 -> [896, 959] */
    CHECK(stats_histo_percentile(h, 0.9) == 959, "p90 %" PRIu64,
          stats_histo_percentile(h, 0.9));
    /* rank 990 -> [960, 1023], capped by max */
    CHECK(stats_histo_percentile(h, 0.99) == 1000, "p99 %" PRIu64,
          stats_histo_percentile(h, 0.99));
    CHECK(stats_histo_percentile(h, 0.999) == 1000, "p999");
    CHECK(stats_histo_percentile(h, 0.001) == 1, "p0.1");

    /* small values are exact */
    memset(h, 0, sizeof(*h));
    for (uint64_t v = 1; v <= 7; v++)
        stats_histo_snap_add(h, v);
    CHECK(stats_histo_percentile(h, 0.5) == 4, "p50 of 1..7");
    CHECK(stats_histo_percentile(h, 0.99) == 7, "p99 of 1..7");

    /* one value: every percentile is that value (max caps the bucket) */
    memset(h, 0, sizeof(*h));
    stats_histo_snap_add(h, 12345);
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++)
        CHECK(stats_histo_percentile(h, qs[i]) == 12345, "single %g", qs[i]);

    /* random heavy-tailed data: exact <= reported <= exact * 1.125 */
    memset(h, 0, sizeof(*h));
    vals = malloc(n * sizeof(*vals));
    for (unsigned int i = 0; i < n; i++) {
        double u = (rand_r(&seed) + 1.0) / ((double)RAND_MAX + 2.0);

        vals[i] = (uint64_t)(2000.0 / pow(u, 1.5)); /* Pareto-ish, ns */
        stats_histo_snap_add(h, vals[i]);
    }
    qsort(vals, n, sizeof(*vals), cmp_u64);
    for (size_t i = 0; i < sizeof(qs) / sizeof(qs[0]); i++) {
        uint64_t rank = (uint64_t)ceil(qs[i] * n);
        uint64_t exact = vals[rank - 1], got = stats_histo_percentile(h, qs[i]);

        CHECK(got >= exact && (double)got <= 1.125 * (double)exact,
              "q %g: exact %" PRIu64 " reported %" PRIu64, qs[i], exact, got);
    }
    CHECK(h->max == vals[n - 1], "max");
    free(vals);
    free(h);
}

/* ---- shards ---- */

#define NTHREADS 4
#define PER_THREAD 20000
#define NQ 3

/* Deterministic request i of thread t: which key and which times. */
static void fake_req(struct fv_req *r, unsigned int t, unsigned int i,
                     unsigned int *qidx)
{
    static const uint32_t ops[] = { FUSE_GETATTR, FUSE_READ, FUSE_WRITE,
                                    FUSE_LOOKUP, 4096 /* -> OTHER */ };

    memset(r, 0, sizeof(*r));
    *qidx = 1 + (i % 2);
    r->opcode = ops[i % 5];
    r->mode = (uint8_t)((i / 5) % FV_MODE_COUNT);
    r->in_len = 100 + t;
    r->out_len = 10 * t + 1;
    r->error = (i % 7 == 0) ? -2 : 0;
    r->t_pop = 1000000;
    r->t_start = r->t_pop + 100 + i % 1000;
    r->t_reply = r->t_start + 1000 + 37 * t;
    r->t_done = r->t_reply + 50;
}

struct writer {
    struct stats *s;
    unsigned int t;
};

static void *writer_thread(void *opaque)
{
    struct writer *w = opaque;

    for (unsigned int i = 0; i < PER_THREAD; i++) {
        struct fv_req r;
        unsigned int qidx;

        fake_req(&r, w->t, i, &qidx);
        stats_record_req(w->s, qidx, &r);
        if (i % 10 == 0)
            stats_record_kick(w->s, qidx, 2, i % 33);
    }
    return NULL;
}

struct reader {
    struct stats *s;
    int stop;
    unsigned int rounds;
    int bad;
};

static void *reader_thread(void *opaque)
{
    struct reader *rd = opaque;
    struct stats_queue_live ql[NQ];
    struct stats_live live = { .enabled = true, .nqueues = NQ, .q = ql };
    uint64_t last = 0;

    memset(ql, 0, sizeof(ql));
    while (!__atomic_load_n(&rd->stop, __ATOMIC_ACQUIRE)) {
        struct stats_snap *snap = stats_snapshot(rd->s);
        uint64_t total = 0;
        char *js;
        struct jm *v;
        char err[128];

        if (!snap) {
            rd->bad++;
            break;
        }
        for (unsigned int q = 0; q < NQ; q++)
            for (unsigned int m = 0; m < FV_MODE_COUNT; m++)
                for (unsigned int o = 0; o < STATS_OP_SLOTS; o++)
                    if (snap->q[q].ops[m][o])
                        total += snap->q[q].ops[m][o]->count;
        stats_snap_free(snap);
        /* counters only grow while nobody resets */
        if (total < last)
            rd->bad++;
        last = total;
        js = stats_json(rd->s, &live);
        v = js ? jm_parse(js, strlen(js), err, sizeof(err)) : NULL;
        if (!v)
            rd->bad++;
        jm_free(v);
        free(js);
        rd->rounds++;
    }
    return NULL;
}

static void expect_totals(struct stats *s, unsigned int nthreads)
{
    struct stats_snap *snap = stats_snapshot(s);
    uint64_t count[NQ][FV_MODE_COUNT][STATS_OP_SLOTS] = { { { 0 } } };
    uint64_t errors[NQ][FV_MODE_COUNT][STATS_OP_SLOTS] = { { { 0 } } };
    uint64_t bin[NQ][FV_MODE_COUNT][STATS_OP_SLOTS] = { { { 0 } } };
    uint64_t wsum[NQ][FV_MODE_COUNT][STATS_OP_SLOTS] = { { { 0 } } };
    uint64_t smax[NQ][FV_MODE_COUNT][STATS_OP_SLOTS] = { { { 0 } } };
    uint64_t kicks[NQ] = { 0 }, kreqs[NQ] = { 0 };

    if (!snap) {
        CHECK(0, "snapshot");
        return;
    }
    for (unsigned int t = 0; t < nthreads; t++) {
        for (unsigned int i = 0; i < PER_THREAD; i++) {
            struct fv_req r;
            unsigned int q, o;

            fake_req(&r, t, i, &q);
            o = r.opcode < FV_OPCODE_MAX ? r.opcode : STATS_OP_OTHER;
            count[q][r.mode][o]++;
            errors[q][r.mode][o] += r.error != 0;
            bin[q][r.mode][o] += r.in_len;
            wsum[q][r.mode][o] += r.t_start - r.t_pop;
            if (r.t_reply - r.t_start > smax[q][r.mode][o])
                smax[q][r.mode][o] = r.t_reply - r.t_start;
            if (i % 10 == 0) {
                kicks[q]++;
                kreqs[q] += i % 33;
            }
        }
    }
    for (unsigned int q = 0; q < NQ; q++) {
        CHECK(snap->q[q].kicks == kicks[q] &&
              snap->q[q].kick_signals == 2 * kicks[q] &&
              snap->q[q].reqs_per_kick.count == kicks[q] &&
              snap->q[q].reqs_per_kick.sum == kreqs[q],
              "queue %u kicks %" PRIu64 "/%" PRIu64, q, snap->q[q].kicks,
              kicks[q]);
        for (unsigned int m = 0; m < FV_MODE_COUNT; m++) {
            for (unsigned int o = 0; o < STATS_OP_SLOTS; o++) {
                const struct stats_op_snap *op = snap->q[q].ops[m][o];

                if (!count[q][m][o]) {
                    CHECK(!op, "q%u m%u op%u unexpected", q, m, o);
                    continue;
                }
                if (!op) {
                    CHECK(0, "q%u m%u op%u missing", q, m, o);
                    continue;
                }
                CHECK(op->count == count[q][m][o] &&
                      op->errors == errors[q][m][o] &&
                      op->bytes_in == bin[q][m][o],
                      "q%u m%u op%u count %" PRIu64 "/%" PRIu64, q, m, o,
                      op->count, count[q][m][o]);
                CHECK(op->ph[STATS_WAIT].sum == wsum[q][m][o], "wait sum");
                CHECK(op->ph[STATS_SERVICE].max == smax[q][m][o], "service max");
                for (unsigned int p = 0; p < STATS_NPHASES; p++)
                    CHECK(op->ph[p].count == op->count, "phase %u count", p);
                CHECK(op->ph[STATS_WAIT].sum + op->ph[STATS_SERVICE].sum +
                      op->ph[STATS_COMPLETE].sum == op->ph[STATS_TOTAL].sum,
                      "phases add up");
            }
        }
    }
    stats_snap_free(snap);
}

static void test_shards(void)
{
    struct stats *s = stats_new(NQ);
    pthread_t th[NTHREADS], rth;
    struct writer w[NTHREADS];
    struct reader rd = { .s = s };
    struct stats_snap *snap;

    if (!s) {
        CHECK(0, "stats_new");
        return;
    }
    pthread_create(&rth, NULL, reader_thread, &rd);
    for (unsigned int t = 0; t < NTHREADS; t++) {
        w[t] = (struct writer){ .s = s, .t = t };
        pthread_create(&th[t], NULL, writer_thread, &w[t]);
    }
    for (unsigned int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    __atomic_store_n(&rd.stop, 1, __ATOMIC_RELEASE);
    pthread_join(rth, NULL);
    CHECK(!rd.bad, "reader saw %d bad snapshots in %u", rd.bad, rd.rounds);
    expect_totals(s, NTHREADS);

    /* the shared per-queue counters */
    stats_mode_switch(s, 1);
    stats_mode_switch(s, 1);
    stats_pool_busy(s, 2, 1);
    __atomic_fetch_add(&stats_vq_counters(s, 2)->notify_sent, 5,
                       __ATOMIC_RELAXED);
    snap = stats_snapshot(s);
    CHECK(snap && snap->q[1].mode_switches == 2 && snap->q[2].pool_busy == 1 &&
          snap->q[2].notify_sent == 5, "shared per-queue counters");
    stats_snap_free(snap);
    stats_pool_busy(s, 2, -1);

    /* reset: everything zero, busy (state) kept at its value */
    stats_reset(s);
    snap = stats_snapshot(s);
    if (snap) {
        for (unsigned int q = 0; q < NQ; q++) {
            CHECK(!snap->q[q].kicks && !snap->q[q].reqs_per_kick.count &&
                  !snap->q[q].mode_switches && !snap->q[q].notify_sent,
                  "queue %u not reset", q);
            for (unsigned int m = 0; m < FV_MODE_COUNT; m++)
                for (unsigned int o = 0; o < STATS_OP_SLOTS; o++)
                    CHECK(!snap->q[q].ops[m][o], "op left after reset");
        }
        CHECK(snap->since_reset_ns < 10ull * 1000 * 1000 * 1000,
              "since_reset %" PRIu64, snap->since_reset_ns);
    }
    stats_snap_free(snap);

    /* new threads (pthread_t often reused: the shard is taken back) */
    for (unsigned int t = 0; t < 2; t++)
        pthread_create(&th[t], NULL, writer_thread, &w[t]);
    for (unsigned int t = 0; t < 2; t++)
        pthread_join(th[t], NULL);
    expect_totals(s, 2);

    /* a reset racing writers: each op stays self-consistent */
    for (unsigned int t = 0; t < NTHREADS; t++)
        pthread_create(&th[t], NULL, writer_thread, &w[t]);
    stats_reset(s);
    stats_reset(s);
    for (unsigned int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);
    snap = stats_snapshot(s);
    for (unsigned int q = 0; snap && q < NQ; q++) {
        for (unsigned int m = 0; m < FV_MODE_COUNT; m++) {
            for (unsigned int o = 0; o < STATS_OP_SLOTS; o++) {
                const struct stats_op_snap *op = snap->q[q].ops[m][o];

                if (!op)
                    continue;
                CHECK(op->count <= NTHREADS * PER_THREAD, "too many");
                for (unsigned int p = 0; p < STATS_NPHASES; p++)
                    CHECK(op->ph[p].count == op->count, "inconsistent op");
            }
        }
    }
    stats_snap_free(snap);
    stats_free(s);
}

/* One thread, two devices: the thread-local shard must not mix them. */
static void test_two_devices(void)
{
    struct stats *a = stats_new(2), *b = stats_new(2);
    struct stats_snap *sa, *sb;
    struct fv_req r;

    memset(&r, 0, sizeof(r));
    r.opcode = FUSE_GETATTR;
    for (unsigned int i = 0; i < 10; i++) {
        stats_record_req(a, 1, &r);
        stats_record_req(b, 1, &r);
        stats_record_req(b, 1, &r);
    }
    sa = stats_snapshot(a);
    sb = stats_snapshot(b);
    CHECK(sa && sa->q[1].ops[0][FUSE_GETATTR] &&
          sa->q[1].ops[0][FUSE_GETATTR]->count == 10, "device a");
    CHECK(sb && sb->q[1].ops[0][FUSE_GETATTR] &&
          sb->q[1].ops[0][FUSE_GETATTR]->count == 20, "device b");
    stats_snap_free(sa);
    stats_snap_free(sb);
    stats_free(a);
    /* a fresh device (maybe at a's address) starts empty */
    a = stats_new(2);
    stats_record_req(a, 1, &r);
    sa = stats_snapshot(a);
    CHECK(sa && sa->q[1].ops[0][FUSE_GETATTR] &&
          sa->q[1].ops[0][FUSE_GETATTR]->count == 1, "fresh device");
    stats_snap_free(sa);
    /* out-of-range queue index is ignored, not a crash */
    stats_record_req(a, 7, &r);
    stats_record_kick(a, 7, 1, 1);
    stats_mode_switch(a, 7);
    stats_free(a);
    stats_free(b);
}

/* The JSON: parses, has the schema fields, numbers match the snapshot. */
static void test_json(void)
{
    struct stats *s = stats_new(2);
    struct stats_queue_live ql[2] = {
        { .mode = FV_MODE_INLINE },
        { .mode = FV_MODE_POOL, .pool_size = 4, .inflight = 1,
          .inflight_max = 3, .pool_threads = 4, .pool_queued = 2 },
    };
    struct stats_live live = { .enabled = true, .nqueues = 2, .q = ql,
                               .side_threads = 1 };
    const struct jm *q1, *op, *ph;
    struct fv_req r;
    struct jm *v;
    char err[128];
    char *js;

    memset(&r, 0, sizeof(r));
    r.opcode = FUSE_READ;
    r.mode = FV_MODE_POOL;
    r.in_len = 80;
    r.out_len = 4112;
    for (unsigned int i = 1; i <= 1000; i++) {
        r.t_pop = 0;
        r.t_start = i;
        r.t_reply = 2 * i;
        r.t_done = 3 * i;
        stats_record_req(s, 1, &r);
    }
    r.opcode = 5000;
    r.error = -38;
    stats_record_req(s, 1, &r);
    stats_record_kick(s, 1, 3, 4);
    stats_pool_busy(s, 1, 1);

    js = stats_json(s, &live);
    CHECK(js && !strchr(js, '\n'), "one line");
    v = js ? jm_parse(js, strlen(js), err, sizeof(err)) : NULL;
    CHECK(v, "JSON: %s", err);
    if (!v)
        goto out;
    CHECK(!strcmp(jm_str(jm_get(v, "schema"), ""), "virtiofsd-stats") &&
          jm_u64(jm_get(v, "version"), 0) == 1 &&
          jm_bool(jm_get(v, "stats_enabled"), false) &&
          jm_u64(jm_get(v, "time_ns"), 0) > 0, "header");
    CHECK(jm_u64(jm_path(v, "histogram.sub_buckets"), 0) == 8 &&
          jm_count(jm_path(v, "histogram.borders")) == STATS_NBUCKETS &&
          jm_u64(jm_path(v, "histogram.borders.100"), 0) ==
          stats_bucket_lower(100), "borders");
    CHECK(jm_u64(jm_path(v, "side_pool.threads"), 0) == 1, "side pool");
    CHECK(jm_count(jm_get(v, "queues")) == 2, "queues");
    CHECK(!strcmp(jm_str(jm_path(v, "queues.0.role"), ""), "hiprio") &&
          jm_count(jm_path(v, "queues.0.ops")) == 0, "hiprio");
    q1 = jm_path(v, "queues.1");
    CHECK(!strcmp(jm_str(jm_get(q1, "mode"), ""), "pool") &&
          jm_u64(jm_get(q1, "pool_size"), 0) == 4 &&
          jm_u64(jm_get(q1, "requests"), 0) == 1001 &&
          jm_u64(jm_get(q1, "kicks"), 0) == 1 &&
          jm_u64(jm_get(q1, "kick_signals"), 0) == 3 &&
          jm_u64(jm_path(q1, "reqs_per_kick.max"), 0) == 4 &&
          jm_u64(jm_get(q1, "inflight_max"), 0) == 3 &&
          jm_u64(jm_path(q1, "pool.busy"), 9) == 1 &&
          jm_u64(jm_path(q1, "pool.idle"), 9) == 3 &&
          jm_u64(jm_path(q1, "pool.queued"), 9) == 2, "queue 1 fields");
    CHECK(jm_count(jm_get(q1, "ops")) == 2, "two ops");
    op = jm_path(q1, "ops.0");
    CHECK(!strcmp(jm_str(jm_get(op, "opcode"), ""), "READ") &&
          jm_u64(jm_get(op, "opcode_num"), 0) == FUSE_READ &&
          !strcmp(jm_str(jm_get(op, "mode"), ""), "pool") &&
          jm_u64(jm_get(op, "count"), 0) == 1000 &&
          jm_u64(jm_get(op, "errors"), 9) == 0 &&
          jm_u64(jm_get(op, "bytes_in"), 0) == 80000 &&
          jm_u64(jm_get(op, "bytes_out"), 0) == 4112000, "READ op");
    ph = jm_get(op, "wait");
    CHECK(jm_u64(jm_get(ph, "count"), 0) == 1000 &&
          jm_u64(jm_get(ph, "sum_ns"), 0) == 500500 &&
          jm_u64(jm_get(ph, "p50_ns"), 0) == 511 &&
          jm_u64(jm_get(ph, "p90_ns"), 0) == 959 &&
          jm_u64(jm_get(ph, "max_ns"), 0) == 1000, "wait histogram");
    CHECK(jm_u64(jm_path(op, "total.sum_ns"), 0) == 3 * 500500, "total sum");
    {
        const struct jm *bk = jm_get(ph, "buckets");
        uint64_t n = 0, prev = 0;

        for (size_t i = 0; i < jm_count(bk); i++) {
            uint64_t idx = jm_u64(jm_at(jm_at(bk, i), 0), 0);

            CHECK(i == 0 || idx > prev, "buckets ascending");
            prev = idx;
            n += jm_u64(jm_at(jm_at(bk, i), 1), 0);
        }
        CHECK(n == 1000, "buckets hold %" PRIu64, n);
    }
    op = jm_path(q1, "ops.1");
    CHECK(!strcmp(jm_str(jm_get(op, "opcode"), ""), "OTHER") &&
          jm_u64(jm_get(op, "errors"), 0) == 1, "OTHER op");
    jm_free(v);
out:
    free(js);
    stats_free(s);
}

int main(void)
{
    test_buckets();
    test_percentiles();
    test_shards();
    test_two_devices();
    test_json();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("stats: all checks passed\n");
    return 0;
}
