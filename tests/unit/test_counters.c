/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Counter accuracy, in process: bench/vufront (playing QEMU + the guest
 * driver) drives an fv_dev over a socketpair with passthrough on a temp
 * dir, hiprio + 2 request queues, inline and pool. Known requests go out
 * (100 GETATTR + a burst of 16, 50 WRITE of 4096 bytes, 30 READ, 7 LOOKUP
 * of missing names, CREATE, 2 SETLKW on the side pool, RELEASE, a FORGET
 * on hiprio), then the
 * snapshot from fv_dev_stats_json() - parsed as JSON - must hold exactly
 * those counts per queue x opcode x mode, the bytes in/out the layout
 * implies, errors only for the failed LOOKUPs, histograms holding every
 * sample, phase sums adding up to the total, one push accounted per
 * request (notifications sent + suppressed), and a live mode switch must
 * key later requests by their new mode. A reader snapshots concurrently
 * (TSan build). With stats off nothing is recorded; a reset zeroes all.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuse_client.h"
#include "fuse_virtio.h"
#include "json_mini.h"
#include "log.h"
#include "passthrough.h"
#include "vufront.h"

#define NREQQ 2
#define N_GETATTR 100
#define N_BURST 16
#define N_WRITE 50
#define N_READ 30
#define N_LOOKUP_MISS 7
#define N_SWITCHED 20
#define N_SETLKW 2
#define BLK 4096

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

#define REQUIRE(cond, ...)                                              \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "FATAL %s:%d: ", __FILE__, __LINE__);       \
            fprintf(stderr, __VA_ARGS__);                               \
            fprintf(stderr, "\n");                                      \
            exit(1);                                                    \
        }                                                               \
    } while (0)

/* test_counters_dev.c */
int counters_switch_mode(struct fv_dev *dev, unsigned int qidx, bool pool,
                         unsigned int pool_size);

static char tempdir[64];

static void rm_tempdir(void)
{
    char cmd[128];

    if (!tempdir[0])
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tempdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tempdir);
    tempdir[0] = '\0';
}

/* ---- an in-process daemon ---- */

struct rig {
    struct fv_dev *dev;
    struct lo_data *lo;
    int proc_fd;
    pthread_t serve;
    int serve_ret;
    int sock;                   /* the daemon's end */
    vuf_dev *vd;
    fc *c;
    fc_chan *ch[1 + NREQQ];
    /* concurrent reader */
    pthread_t reader;
    int stop_reader;
    unsigned int reads;         /* atomic: the main thread waits for one */
    int bad_reads;
};

static void *serve_thread(void *opaque)
{
    struct rig *r = opaque;

    r->serve_ret = fv_dev_serve(r->dev, r->sock);
    return NULL;
}

static void rig_start(struct rig *r, unsigned int pool, bool stats,
                      bool event_idx)
{
    struct lo_config lcfg = {
        .root = tempdir,
        .cache = LO_CACHE_NONE,     /* a missing name is ENOENT, not cached */
        .readdirplus = -1,
        .posix_lock = true,
    };
    struct fv_config cfg;
    struct vuf_opts vo = {
        .mem_size = 32u << 20,
        .num_request_queues = NREQQ,
        .queue_size = 128,
        .event_idx = event_idx,
        .timeout_ms = 20000,
    };
    int sv[2], ret;

    memset(r, 0, sizeof(*r));
    fv_config_default(&cfg);
    cfg.thread_pool_size = pool;
    cfg.max_request_queues = NREQQ;
    cfg.stats = stats;
    r->proc_fd = open("/proc/self/fd", O_PATH | O_CLOEXEC);
    REQUIRE(r->proc_fd >= 0, "/proc/self/fd");
    lcfg.proc_self_fd = r->proc_fd;
    r->lo = lo_data_new(&lcfg);
    REQUIRE(r->lo, "lo_data_new: %s", strerror(errno));
    r->dev = fv_dev_new(&cfg, &lo_ops, sizeof(lo_ops), r->lo);
    REQUIRE(r->dev, "fv_dev_new");
    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
            "socketpair");
    r->sock = sv[0];
    REQUIRE(pthread_create(&r->serve, NULL, serve_thread, r) == 0, "thread");
    ret = vuf_dev_new(sv[1], &vo, &r->vd);
    REQUIRE(ret == 0, "vuf_dev_new: %d", ret);
    ret = vuf_dev_start(r->vd);
    REQUIRE(ret == 0, "vuf_dev_start: %d", ret);
    ret = fc_new(r->vd, &r->c);
    REQUIRE(ret == 0, "fc_new: %d", ret);
    for (unsigned int i = 0; i <= NREQQ; i++)
        r->ch[i] = fc_chan_get(r->c, i);
}

/* Disconnect: the daemon stops every queue; everything is recorded. */
static void rig_disconnect(struct rig *r, struct vuf_vq_stats *vqs)
{
    for (unsigned int i = 0; i <= NREQQ; i++)
        vuf_vq_get_stats(vuf_dev_vq(r->vd, i), &vqs[i]);
    fc_free(r->c);
    vuf_dev_free(r->vd);
    pthread_join(r->serve, NULL);
    CHECK(r->serve_ret == 0, "serve: %d", r->serve_ret);
}

static void rig_free(struct rig *r)
{
    fv_dev_free(r->dev);
    lo_data_free(r->lo);
    close(r->proc_fd);
}

static struct jm *snapshot(struct fv_dev *dev)
{
    char *js = fv_dev_stats_json(dev);
    char err[128] = "";
    struct jm *v;

    REQUIRE(js, "fv_dev_stats_json");
    if (getenv("COUNTERS_DUMP"))
        fprintf(stderr, "%s\n", js);
    v = jm_parse(js, strlen(js), err, sizeof(err));
    CHECK(v, "stats JSON does not parse: %s", err);
    free(js);
    REQUIRE(v, "no snapshot");
    return v;
}

static void *reader_thread(void *opaque)
{
    struct rig *r = opaque;

    while (!__atomic_load_n(&r->stop_reader, __ATOMIC_ACQUIRE)) {
        char *js = fv_dev_stats_json(r->dev);
        char err[128];
        struct jm *v = js ? jm_parse(js, strlen(js), err, sizeof(err)) : NULL;

        if (!v || strcmp(jm_str(jm_get(v, "schema"), ""), "virtiofsd-stats"))
            r->bad_reads++;
        jm_free(v);
        free(js);
        __atomic_add_fetch(&r->reads, 1, __ATOMIC_RELEASE);
        usleep(500);
    }
    return NULL;
}

/* ---- expectations ---- */

struct expect {
    const char *opcode;
    const char *mode;
    uint64_t count;
    uint64_t errors;
    uint64_t bytes_in;          /* UINT64_MAX: not checked */
    uint64_t bytes_out;
};

static const struct jm *find_op(const struct jm *q, const char *opcode,
                                const char *mode)
{
    const struct jm *ops = jm_get(q, "ops");

    for (size_t i = 0; i < jm_count(ops); i++) {
        const struct jm *op = jm_at(ops, i);

        if (!strcmp(jm_str(jm_get(op, "opcode"), ""), opcode) &&
            !strcmp(jm_str(jm_get(op, "mode"), ""), mode))
            return op;
    }
    return NULL;
}

static void check_histo(const struct jm *h, uint64_t n, const char *what)
{
    const struct jm *bk = jm_get(h, "buckets");
    uint64_t sum = 0;

    for (size_t i = 0; i < jm_count(bk); i++)
        sum += jm_u64(jm_at(jm_at(bk, i), 1), 0);
    CHECK(jm_u64(jm_get(h, "count"), 0) == n && sum == n,
          "%s: histogram count %" PRIu64 ", buckets %" PRIu64 ", want %"
          PRIu64, what, jm_u64(jm_get(h, "count"), 0), sum, n);
    CHECK(jm_u64(jm_get(h, "p50_ns"), 0) <= jm_u64(jm_get(h, "p99_ns"), 0) &&
          jm_u64(jm_get(h, "p99_ns"), 0) <= jm_u64(jm_get(h, "max_ns"), 0),
          "%s: percentiles out of order", what);
}

static void check_op(const struct jm *q, const struct expect *e)
{
    static const char *const phases[] = { "wait", "service", "complete" };
    const struct jm *op = find_op(q, e->opcode, e->mode);
    uint64_t total, parts = 0;
    char what[64];

    snprintf(what, sizeof(what), "queue %" PRIu64 " %s/%s",
             jm_u64(jm_get(q, "index"), 99), e->opcode, e->mode);
    if (!op) {
        CHECK(0, "%s: missing", what);
        return;
    }
    CHECK(jm_u64(jm_get(op, "count"), 0) == e->count, "%s: count %" PRIu64
          ", want %" PRIu64, what, jm_u64(jm_get(op, "count"), 0), e->count);
    CHECK(jm_u64(jm_get(op, "errors"), 0) == e->errors, "%s: errors %" PRIu64
          ", want %" PRIu64, what, jm_u64(jm_get(op, "errors"), 0), e->errors);
    if (e->bytes_in != UINT64_MAX) {
        CHECK(jm_u64(jm_get(op, "bytes_in"), 0) == e->bytes_in,
              "%s: bytes_in %" PRIu64 ", want %" PRIu64, what,
              jm_u64(jm_get(op, "bytes_in"), 0), e->bytes_in);
        CHECK(jm_u64(jm_get(op, "bytes_out"), 0) == e->bytes_out,
              "%s: bytes_out %" PRIu64 ", want %" PRIu64, what,
              jm_u64(jm_get(op, "bytes_out"), 0), e->bytes_out);
    }
    total = jm_u64(jm_path(op, "total.sum_ns"), 0);
    check_histo(jm_get(op, "total"), e->count, what);
    for (size_t i = 0; i < 3; i++) {
        const struct jm *h = jm_get(op, phases[i]);
        uint64_t s = jm_u64(jm_get(h, "sum_ns"), UINT64_MAX);

        check_histo(h, e->count, what);
        CHECK(s <= total, "%s: %s sum %" PRIu64 " > total %" PRIu64, what,
              phases[i], s, total);
        CHECK(jm_u64(jm_get(h, "max_ns"), 0) <=
              jm_u64(jm_path(op, "total.max_ns"), 0), "%s: %s max > total max",
              what, phases[i]);
        parts += s;
    }
    /* t_pop <= t_start <= t_reply <= t_done for every request */
    CHECK(parts == total, "%s: phases sum to %" PRIu64 ", total %" PRIu64,
          what, parts, total);
    CHECK(total > 0, "%s: no time measured", what);
}

/* Sum of ops[].count over a queue; and the number of op entries. */
static uint64_t queue_requests(const struct jm *q, size_t *nops)
{
    const struct jm *ops = jm_get(q, "ops");
    uint64_t n = 0;

    for (size_t i = 0; i < jm_count(ops); i++)
        n += jm_u64(jm_get(jm_at(ops, i), "count"), 0);
    if (nops)
        *nops = jm_count(ops);
    return n;
}

/* ---- the workload ---- */

struct files {
    uint64_t nodeid, fh;
    unsigned int setlkw_errors;
};

/*
 * @switch_q2: right after INIT, before queue 2 has seen a request, switch
 * it live to pool (@q2_pool) or inline: every request of queue 2 must then
 * be counted in that mode.
 */
static void workload(struct rig *r, struct files *f, bool switch_q2,
                     bool q2_pool, unsigned int q2_size)
{
    struct fuse_entry_out e;
    struct fuse_open_out o;
    struct fuse_attr_out a;
    static uint8_t buf[BLK], rbuf[BLK];
    fc_req *burst[N_BURST];
    int ret;

    ret = fc_init(r->ch[1], NULL, NULL);
    REQUIRE(ret == 0, "INIT: %d", ret);
    if (switch_q2) {
        ret = counters_switch_mode(r->dev, 2, q2_pool, q2_size);
        REQUIRE(ret == 0, "set mode: %d", ret);
    }
    for (unsigned int i = 0; i < N_GETATTR; i++) {
        ret = fc_getattr(r->ch[1], FUSE_ROOT_ID, &a);
        CHECK(ret == 0, "GETATTR %u: %d", i, ret);
    }
    ret = fc_create(r->ch[1], FUSE_ROOT_ID, "data", O_RDWR, 0644, &e, &o);
    REQUIRE(ret == 0, "CREATE: %d", ret);
    f->nodeid = e.nodeid;
    f->fh = o.fh;
    for (unsigned int i = 0; i < N_WRITE; i++) {
        memset(buf, (int)i, sizeof(buf));
        ret = (int)fc_write(r->ch[1], f->nodeid, f->fh, (uint64_t)i * BLK, buf,
                            BLK);
        CHECK(ret == BLK, "WRITE %u: %d", i, ret);
    }
    /*
     * SETLKW runs on the side pool whatever the queue's mode: lock, unlock.
     * Whether the filesystem grants it is not this test's business; every
     * error reply must be counted as one.
     */
    for (unsigned int i = 0; i < N_SETLKW; i++) {
        struct fuse_lk_in lk = {
            .fh = f->fh,
            .owner = 42,
            .lk = { .start = 0, .end = BLK - 1, .pid = 1,
                    .type = i % 2 ? F_UNLCK : F_WRLCK },
        };

        ret = fc_generic(r->ch[1], FUSE_SETLKW, f->nodeid, &lk, sizeof(lk),
                         NULL, 0, NULL);
        CHECK(ret <= 0 && ret > -4096, "SETLKW %u: %d", i, ret);
        if (ret < 0)
            f->setlkw_errors++;
    }
    for (unsigned int i = 0; i < N_READ; i++) {
        unsigned int blk = (i * 7) % N_WRITE;

        ret = (int)fc_read(r->ch[2], f->nodeid, f->fh, (uint64_t)blk * BLK,
                           rbuf, BLK);
        CHECK(ret == BLK && rbuf[0] == (uint8_t)blk && rbuf[BLK - 1] == (uint8_t)blk,
              "READ %u: %d", i, ret);
    }
    for (unsigned int i = 0; i < N_LOOKUP_MISS; i++) {
        char name[16];

        snprintf(name, sizeof(name), "missing%u", i);
        ret = fc_lookup(r->ch[2], FUSE_ROOT_ID, name, &e);
        CHECK(ret == -ENOENT, "LOOKUP %s: %d", name, ret);
    }
    /* a burst: several requests behind one kick, in flight together */
    for (unsigned int i = 0; i < N_BURST; i++) {
        static struct fuse_getattr_in gin;
        struct fc_call c = {
            .opcode = FUSE_GETATTR, .nodeid = FUSE_ROOT_ID,
            .arg = &gin, .arg_len = sizeof(gin),
            .out_len = sizeof(struct fuse_attr_out), .no_kick = true,
        };

        ret = fc_submit(r->ch[1], &c, &burst[i]);
        REQUIRE(ret == 0, "submit %u: %d", i, ret);
    }
    fc_chan_kick(r->ch[1]);
    /* (collected from the done list: fc_wait() on a request that already
     * completed leaves it there) */
    for (unsigned int done = 0; done < N_BURST;) {
        ret = fc_chan_poll(r->ch[1], 20000, burst, N_BURST);
        REQUIRE(ret > 0, "burst: %d after %u", ret, done);
        for (int i = 0; i < ret; i++) {
            CHECK(burst[i]->error == 0, "burst: %d", burst[i]->error);
            fc_req_free(burst[i]);
        }
        done += (unsigned int)ret;
    }
    ret = fc_release(r->ch[1], f->nodeid, f->fh, O_RDWR);
    CHECK(ret == 0, "RELEASE: %d", ret);
    ret = fc_forget(r->ch[0], f->nodeid, 1);
    CHECK(ret == 0, "FORGET: %d", ret);
}

static void check_queue_common(const struct jm *q, const struct vuf_vq_stats *vs)
{
    uint64_t reqs = queue_requests(q, NULL);
    uint64_t kicks = jm_u64(jm_get(q, "kicks"), 0);
    const struct jm *rpk = jm_get(q, "reqs_per_kick");
    unsigned int idx = (unsigned int)jm_u64(jm_get(q, "index"), 99);

    CHECK(jm_u64(jm_get(q, "requests"), 0) == reqs, "queue %u requests", idx);
    /* every request was pushed once, and every push notified or not */
    CHECK(jm_u64(jm_get(q, "notify_sent"), 0) +
          jm_u64(jm_get(q, "notify_suppressed"), 0) == reqs,
          "queue %u: sent %" PRIu64 " + suppressed %" PRIu64 " != %" PRIu64,
          idx, jm_u64(jm_get(q, "notify_sent"), 0),
          jm_u64(jm_get(q, "notify_suppressed"), 0), reqs);
    /* the frontend read at most what we wrote to its call eventfd */
    CHECK(vs->calls <= jm_u64(jm_get(q, "notify_sent"), 0),
          "queue %u: frontend saw %" PRIu64 " calls, daemon sent %" PRIu64,
          idx, vs->calls, jm_u64(jm_get(q, "notify_sent"), 0));
    CHECK(jm_u64(jm_get(rpk, "count"), 0) == kicks &&
          jm_u64(jm_get(rpk, "sum"), 0) <= reqs,
          "queue %u: %" PRIu64 " kicks, reqs_per_kick count %" PRIu64
          " sum %" PRIu64, idx, kicks, jm_u64(jm_get(rpk, "count"), 0),
          jm_u64(jm_get(rpk, "sum"), 0));
    CHECK(jm_u64(jm_get(q, "kick_signals"), 0) <= vs->kicks &&
          jm_u64(jm_get(q, "kick_signals"), 0) >= kicks,
          "queue %u: kick signals %" PRIu64 ", kicks %" PRIu64
          ", frontend kicks %" PRIu64, idx,
          jm_u64(jm_get(q, "kick_signals"), 0), kicks, vs->kicks);
    if (reqs) {
        CHECK(kicks >= 1, "queue %u: no kick recorded", idx);
        CHECK(jm_u64(jm_get(q, "inflight_max"), 0) >= 1, "queue %u: "
              "inflight_max", idx);
    }
    CHECK(jm_u64(jm_get(q, "inflight"), 1) == 0, "queue %u: inflight %" PRIu64,
          idx, jm_u64(jm_get(q, "inflight"), 1));
}

static void run_mode(unsigned int pool)
{
    const char *m = pool ? "pool" : "inline";
    const uint64_t hdr = sizeof(struct fuse_in_header);
    const uint64_t ohdr = sizeof(struct fuse_out_header);
    struct vuf_vq_stats vs[1 + NREQQ];
    uint64_t lookup_in = 0;
    struct files f = { 0 };
    struct rig r;
    struct jm *v;
    const struct jm *q;
    size_t nops;
    int ret;

    fprintf(stderr, "== %s\n", m);
    rig_start(&r, pool, true, pool == 0);
    REQUIRE(pthread_create(&r.reader, NULL, reader_thread, &r) == 0, "reader");
    /* the workload can be over in a millisecond: let the reader start */
    for (int i = 0; i < 5000 && !__atomic_load_n(&r.reads, __ATOMIC_ACQUIRE); i++)
        usleep(1000);
    workload(&r, &f, true, pool == 0, pool ? pool : 2);

    /*
     * And back, mid-run. The mode is read once per popped batch and a
     * batch lasts until the ring is empty, so a sync client may get its
     * first requests after the switch popped by the batch still running.
     */
    ret = counters_switch_mode(r.dev, 2, pool != 0, pool);
    REQUIRE(ret == 0, "set mode: %d", ret);
    for (unsigned int i = 0; i < N_SWITCHED; i++) {
        struct fuse_attr_out a;

        ret = fc_getattr(r.ch[2], FUSE_ROOT_ID, &a);
        CHECK(ret == 0, "GETATTR after switch: %d", ret);
    }

    __atomic_store_n(&r.stop_reader, 1, __ATOMIC_RELEASE);
    pthread_join(r.reader, NULL);
    CHECK(r.bad_reads == 0 && r.reads > 0, "concurrent snapshots: %d bad of %u",
          r.bad_reads, r.reads);
    rig_disconnect(&r, vs);

    v = snapshot(r.dev);
    CHECK(jm_bool(jm_get(v, "stats_enabled"), false), "stats enabled");
    CHECK(jm_count(jm_get(v, "queues")) == 1 + NREQQ, "queues");

    /* queue 1: INIT (always inline: exclusive), GETATTR, CREATE, WRITE, RELEASE */
    q = jm_path(v, "queues.1");
    {
        const struct expect ex[] = {
            { "INIT", "inline", 1, 0, UINT64_MAX, 0 },
            { "GETATTR", m, N_GETATTR + N_BURST, 0,
              (N_GETATTR + N_BURST) * (hdr + sizeof(struct fuse_getattr_in)),
              (N_GETATTR + N_BURST) * (ohdr + sizeof(struct fuse_attr_out)) },
            { "CREATE", m, 1, 0, hdr + sizeof(struct fuse_create_in) + 5,
              ohdr + sizeof(struct fuse_entry_out) +
              sizeof(struct fuse_open_out) },
            { "WRITE", m, N_WRITE, 0,
              N_WRITE * (hdr + sizeof(struct fuse_write_in) + BLK),
              N_WRITE * (ohdr + sizeof(struct fuse_write_out)) },
            { "RELEASE", m, 1, 0, hdr + sizeof(struct fuse_release_in), ohdr },
            { "SETLKW", "side", N_SETLKW, f.setlkw_errors,
              N_SETLKW * (hdr + sizeof(struct fuse_lk_in)), N_SETLKW * ohdr },
        };

        for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++)
            check_op(q, &ex[i]);
        CHECK(queue_requests(q, &nops) == 1 + N_GETATTR + N_BURST + 1 +
              N_WRITE + N_SETLKW + 1 && nops == 6,
              "queue 1: unexpected ops (%zu)", nops);
        CHECK(!strcmp(jm_str(jm_get(q, "role"), ""), "request") &&
              !strcmp(jm_str(jm_get(q, "mode"), ""), m) &&
              jm_u64(jm_get(q, "mode_switches"), 9) == 0, "queue 1 state");
        check_queue_common(q, &vs[1]);
    }

    /*
     * queue 2: switched to the other mode (m2) before its first request:
     * READ and the missing LOOKUPs (the errors) all ran in m2; then back to
     * m for the GETATTRs, which the batch rule may split between the two.
     */
    q = jm_path(v, "queues.2");
    for (unsigned int i = 0; i < N_LOOKUP_MISS; i++) {
        char name[16];

        lookup_in += hdr + (uint64_t)snprintf(name, sizeof(name), "missing%u", i) + 1;
    }
    {
        const char *m2 = pool ? "inline" : "pool";
        const struct expect ex[] = {
            { "READ", m2, N_READ, 0, N_READ * (hdr + sizeof(struct fuse_read_in)),
              N_READ * (ohdr + BLK) },
            { "LOOKUP", m2, N_LOOKUP_MISS, N_LOOKUP_MISS, lookup_in,
              N_LOOKUP_MISS * ohdr },
        };
        const struct jm *g_m = find_op(q, "GETATTR", m);
        const struct jm *g_m2 = find_op(q, "GETATTR", m2);
        uint64_t n_m = jm_u64(jm_get(g_m, "count"), 0);
        uint64_t n_m2 = jm_u64(jm_get(g_m2, "count"), 0);

        for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++)
            check_op(q, &ex[i]);
        CHECK(!find_op(q, "READ", m) && !find_op(q, "LOOKUP", m),
              "queue 2: requests counted in the mode before the switch");
        CHECK(n_m + n_m2 == N_SWITCHED, "switched GETATTRs: %" PRIu64 " %s, %"
              PRIu64 " %s", n_m, m, n_m2, m2);
        if (g_m) {
            struct expect e = { "GETATTR", m, n_m, 0, UINT64_MAX, 0 };

            check_op(q, &e);
        }
        if (g_m2) {
            struct expect e = { "GETATTR", m2, n_m2, 0, UINT64_MAX, 0 };

            check_op(q, &e);
        }
        CHECK(queue_requests(q, NULL) == N_READ + N_LOOKUP_MISS + N_SWITCHED,
              "queue 2 total");
        CHECK(!strcmp(jm_str(jm_get(q, "mode"), ""), m) &&
              jm_u64(jm_get(q, "mode_switches"), 0) == 2, "queue 2 state");
        check_queue_common(q, &vs[2]);
    }

    /* hiprio: the FORGET, no reply, not an error */
    q = jm_path(v, "queues.0");
    {
        const struct expect ex = { "FORGET", m, 1, 0,
                                   hdr + sizeof(struct fuse_forget_in), 0 };

        check_op(q, &ex);
        CHECK(!strcmp(jm_str(jm_get(q, "role"), ""), "hiprio") &&
              queue_requests(q, NULL) == 1, "hiprio");
        check_queue_common(q, &vs[0]);
    }
    /* the queues are stopped: no pool threads of theirs remain */
    CHECK(jm_u64(jm_path(v, "queues.1.pool.threads"), 9) == 0 &&
          jm_u64(jm_path(v, "queues.1.pool.busy"), 9) == 0, "pool after stop");
    jm_free(v);

    /* reset: every counter back to zero, nothing listed */
    fv_dev_stats_reset(r.dev);
    v = snapshot(r.dev);
    for (unsigned int i = 0; i <= NREQQ; i++) {
        const struct jm *qq = jm_at(jm_get(v, "queues"), i);

        CHECK(jm_count(jm_get(qq, "ops")) == 0 &&
              jm_u64(jm_get(qq, "kicks"), 9) == 0 &&
              jm_u64(jm_get(qq, "notify_sent"), 9) == 0 &&
              jm_u64(jm_get(qq, "mode_switches"), 9) == 0 &&
              jm_u64(jm_get(qq, "inflight_max"), 9) == 0 &&
              jm_u64(jm_path(qq, "reqs_per_kick.count"), 9) == 0,
              "queue %u after reset", i);
    }
    CHECK(jm_u64(jm_get(v, "since_reset_ns"), UINT64_MAX) <
          jm_u64(jm_get(v, "time_ns"), 0), "since_reset_ns");
    jm_free(v);
    rig_free(&r);
}

/* --stats=off: requests work, nothing is recorded. */
static void run_stats_off(void)
{
    struct vuf_vq_stats vs[1 + NREQQ];
    struct files f = { 0 };
    struct rig r;
    struct jm *v;

    fprintf(stderr, "== stats off\n");
    rig_start(&r, 2, false, true);
    workload(&r, &f, false, false, 0);
    rig_disconnect(&r, vs);
    v = snapshot(r.dev);
    CHECK(!jm_bool(jm_get(v, "stats_enabled"), true), "stats_enabled false");
    for (unsigned int i = 0; i <= NREQQ; i++) {
        const struct jm *q = jm_at(jm_get(v, "queues"), i);

        CHECK(q && jm_count(jm_get(q, "ops")) == 0 &&
              jm_u64(jm_get(q, "kicks"), 9) == 0 &&
              jm_u64(jm_get(q, "notify_sent"), 9) == 0 &&
              jm_u64(jm_get(q, "notify_suppressed"), 9) == 0,
              "queue %u recorded with stats off", i);
    }
    jm_free(v);
    rig_free(&r);
}

int main(void)
{
    char tmpl[] = "/tmp/vfs-counters-XXXXXX";

    if (!mkdtemp(tmpl)) {
        perror("mkdtemp");
        return 1;
    }
    snprintf(tempdir, sizeof(tempdir), "%s", tmpl);
    atexit(rm_tempdir);
    if (getenv("TEST_VERBOSE") == NULL)
        vfs_log_set_level(VFS_LOG_ERR);
    run_mode(0);
    /* fresh share for the next run (CREATE would find "data") */
    rm_tempdir();
    REQUIRE(mkdtemp(strcpy(tmpl, "/tmp/vfs-counters-XXXXXX")), "mkdtemp");
    snprintf(tempdir, sizeof(tempdir), "%s", tmpl);
    run_mode(4);
    rm_tempdir();
    REQUIRE(mkdtemp(strcpy(tmpl, "/tmp/vfs-counters-XXXXXX")), "mkdtemp");
    snprintf(tempdir, sizeof(tempdir), "%s", tmpl);
    run_stats_off();
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("counters: all checks passed\n");
    return 0;
}
