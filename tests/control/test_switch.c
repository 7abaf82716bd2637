/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * test_switch: the live inline/pool/auto switch under load. Two request
 * queues each keep 32 mixed 4 KiB READ/WRITE requests in flight on one
 * file while a client flips queue modes (inline, pool, auto) and pool sizes
 * (and now and then auto's threshold) at least 1000 times through the control socket. Every request completes exactly once with a well-formed
 * reply (fuse_client checks head, unique and length), every READ returns
 * the last data written to its block, and the daemon's counters agree with
 * the frontend: per queue, the per-mode request counts add up to what the
 * frontend completed, both modes actually served requests, and the mode
 * switches counted equal the switches the client made. Runs in the TSan
 * build as well (suite tsan), where the daemon itself is instrumented.
 */
#include "ctl_harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NQ 2                    /* request queues */
#define DEPTH 32
#define BS 4096u
#define BLOCKS_PER_QUEUE 256u
#define MIN_REQS_PER_QUEUE 3000u
#define FLIPS 1000u

static struct ch H;
static uint64_t file_node, file_fh;
static uint32_t versions[NQ * BLOCKS_PER_QUEUE];
static bool flipper_done;       /* atomic */

struct slot {
    uint64_t data_gpa;
    uint8_t *data;
    fc_req *req;
    unsigned block;
    uint32_t version;
    bool is_write;
    bool busy;
};

struct qctx {
    unsigned q;
    pthread_t th;
    fc_chan *ch;
    struct slot slots[DEPTH];
    bool block_busy[BLOCKS_PER_QUEUE];
    unsigned submitted, completed;  /* completed: atomic (flipper reads) */
    unsigned reads_checked, errors;
    uint64_t rng;
};

static struct qctx ctx[NQ];

static uint64_t rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void pattern(uint8_t *b, unsigned block, uint32_t version)
{
    uint32_t *w = (uint32_t *)b;

    for (unsigned i = 0; i < BS / 4; i++)
        w[i] = (block * 2654435761u) ^ (version * 40503u) ^ i;
}

static int submit(struct qctx *c, struct slot *s)
{
    unsigned base = (c->q - 1) * BLOCKS_PER_QUEUE;
    unsigned b;

    do {
        b = (unsigned)(rnd(&c->rng) % BLOCKS_PER_QUEUE);
    } while (c->block_busy[b]);
    c->block_busy[b] = true;
    s->block = base + b;
    s->is_write = rnd(&c->rng) & 1;

    struct vuf_seg seg = { s->data_gpa, BS };
    struct fuse_read_in ri = { .fh = file_fh, .offset = (uint64_t)s->block * BS,
                               .size = BS };
    struct fuse_write_in wi = { .fh = file_fh, .offset = (uint64_t)s->block * BS,
                                .size = BS };
    struct fc_call call = {
        .nodeid = file_node, .no_kick = true, .user = s,
        .indirect = rnd(&c->rng) & 1,
    };

    if (!(vuf_dev_features(H.dev) & (1ull << VUF_F_INDIRECT_DESC)))
        call.indirect = false;
    if (s->is_write) {
        s->version = versions[s->block] + 1;
        pattern(s->data, s->block, s->version);
        call.opcode = FUSE_WRITE;
        call.arg = &wi;
        call.arg_len = sizeof(wi);
        call.data_rd = &seg;
        call.n_data_rd = 1;
        call.out_len = sizeof(struct fuse_write_out);
    } else {
        memset(s->data, 0xee, BS);
        call.opcode = FUSE_READ;
        call.arg = &ri;
        call.arg_len = sizeof(ri);
        call.data_wr = &seg;
        call.n_data_wr = 1;
    }
    s->busy = true;
    int ret = fc_submit(c->ch, &call, &s->req);
    if (ret < 0) {
        fprintf(stderr, "queue %u: submit: %s\n", c->q, strerror(-ret));
        return ret;
    }
    c->submitted++;
    return 0;
}

static void complete(struct qctx *c, fc_req *r)
{
    struct slot *s = r->user;

    if (!s || s->req != r || !s->busy) {
        fprintf(stderr, "queue %u: completion of a request not in flight\n",
                c->q);
        c->errors++;
        return;
    }
    s->busy = false;
    __atomic_add_fetch(&c->completed, 1, __ATOMIC_RELAXED);
    c->block_busy[s->block - (c->q - 1) * BLOCKS_PER_QUEUE] = false;
    if (r->error) {
        fprintf(stderr, "queue %u: %s block %u: error %d\n", c->q,
                s->is_write ? "WRITE" : "READ", s->block, r->error);
        c->errors++;
    } else if (s->is_write) {
        struct fuse_write_out *wo = r->out;

        if (fc_req_out_len(r) < sizeof(*wo) || wo->size != BS) {
            fprintf(stderr, "queue %u: short WRITE\n", c->q);
            c->errors++;
        }
        versions[s->block] = s->version;
    } else {
        uint8_t want[BS];

        if (r->reply_len != sizeof(struct fuse_out_header) + BS) {
            fprintf(stderr, "queue %u: READ reply len %u\n", c->q,
                    r->reply_len);
            c->errors++;
        }
        if (versions[s->block] == 0)
            memset(want, 0, BS);
        else
            pattern(want, s->block, versions[s->block]);
        if (memcmp(want, s->data, BS)) {
            fprintf(stderr, "queue %u: READ block %u: stale or corrupt\n",
                    c->q, s->block);
            c->errors++;
        }
        c->reads_checked++;
    }
    fc_req_free(r);
    s->req = NULL;
}

static bool keep_going(struct qctx *c)
{
    return c->submitted < MIN_REQS_PER_QUEUE ||
           !__atomic_load_n(&flipper_done, __ATOMIC_ACQUIRE);
}

static void *worker(void *arg)
{
    struct qctx *c = arg;

    for (unsigned i = 0; i < DEPTH; i++) {
        c->slots[i].data_gpa = vuf_mem_alloc(H.dev, BS);
        c->slots[i].data = vuf_mem_ptr(H.dev, c->slots[i].data_gpa, BS);
        if (!c->slots[i].data) {
            c->errors++;
            return NULL;
        }
    }
    for (unsigned i = 0; i < DEPTH; i++) {
        if (submit(c, &c->slots[i]) < 0) {
            c->errors++;
            return NULL;
        }
    }
    fc_chan_kick(c->ch);
    while (__atomic_load_n(&c->completed, __ATOMIC_RELAXED) < c->submitted) {
        fc_req *done[DEPTH];
        int k = fc_chan_poll(c->ch, 20000, done, DEPTH);

        if (k <= 0) {
            fprintf(stderr, "queue %u: no completion in 20 s (%d), %u in "
                    "flight\n", c->q, k, c->submitted - c->completed);
            c->errors++;
            return NULL;
        }
        for (int i = 0; i < k; i++) {
            struct slot *s = done[i]->user;

            complete(c, done[i]);
            if (keep_going(c) && !s->busy && submit(c, s) < 0) {
                c->errors++;
                return NULL;
            }
        }
        fc_chan_kick(c->ch);
    }
    return NULL;
}

/* ---- the flipper ---- */

struct flipper {
    pthread_t th;
    int fd;
    unsigned flips;             /* commands that changed something */
    unsigned switches[1 + NQ];  /* mode changes per queue, as answered */
    unsigned cmds, failures;
};

static struct flipper F;

/* What the queues are in now, from the answers (0 inline, 1 pool, 2 auto). */
static int cur_mode[64];

static void account(struct flipper *f, const struct jm *v, const char *cmd)
{
    const struct jm *qs = jm_get(v, "queues");
    unsigned changed = 0;

    if (!ctl_ok(v)) {
        fprintf(stderr, "flipper: '%s' failed: %s\n", cmd,
                jm_str(jm_get(v, "error"), "(no answer)"));
        f->failures++;
        return;
    }
    for (size_t i = 0; i < jm_count(qs); i++) {
        const struct jm *q = jm_at(qs, i);
        uint64_t idx = jm_u64(jm_get(q, "queue"), 999);
        const char *ms = jm_str(jm_get(q, "mode"), "");
        int m = !strcmp(ms, "pool") ? 1 : !strcmp(ms, "auto") ? 2 : 0;

        if (idx >= 64)
            continue;
        if (m != cur_mode[idx]) {
            changed++;
            if (idx <= NQ)
                f->switches[idx]++;
            cur_mode[idx] = m;
        }
    }
    if (jm_u64(jm_get(v, "switched"), 9999) != changed) {
        fprintf(stderr, "flipper: '%s' says %llu switched, %u did\n", cmd,
                (unsigned long long)jm_u64(jm_get(v, "switched"), 9999),
                changed);
        f->failures++;
    }
}

/* "auto slow @us @target": ok, and every queue it names shows @us */
static void set_auto_slow(struct flipper *f, unsigned us, const char *target)
{
    char cmd[64];
    struct jm *v;
    const struct jm *qs;

    snprintf(cmd, sizeof(cmd), "auto slow %u %s", us, target);
    v = ctl_cmd(f->fd, cmd);
    f->cmds++;
    qs = jm_get(v, "queues");
    if (!ctl_ok(v) || !jm_count(qs))
        f->failures++;
    for (size_t i = 0; i < jm_count(qs); i++) {
        if (jm_u64(jm_path(jm_at(qs, i), "auto.slow_us"), 0) != us) {
            fprintf(stderr, "flipper: '%s' left queue %zu at %llu us\n", cmd,
                    i, (unsigned long long)jm_u64(jm_path(jm_at(qs, i),
                                                          "auto.slow_us"), 0));
            f->failures++;
        }
    }
    jm_free(v);
}

static void *flipper_fn(void *arg)
{
    struct flipper *f = arg;
    uint64_t seed = 0xfeedface12345678ull;
    struct timespec t0, t1;

    /* let the load get going first */
    for (int i = 0; i < 30000; i++) {
        if (__atomic_load_n(&ctx[0].completed, __ATOMIC_RELAXED) > 100 &&
            __atomic_load_n(&ctx[1].completed, __ATOMIC_RELAXED) > 100)
            break;
        usleep(1000);
    }
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (f->flips < FLIPS && f->failures < 10) {
        unsigned r = (unsigned)(rnd(&seed) % 9);
        unsigned q = 1 + (unsigned)(rnd(&seed) % NQ);
        unsigned size = 1 + (unsigned)(rnd(&seed) % 8);
        char cmd[96], target[24];
        struct jm *v;

        if (r == 7)
            snprintf(target, sizeof(target), "all");
        else
            snprintf(target, sizeof(target), "queue %u", q);
        if (r < 3)
            snprintf(cmd, sizeof(cmd), "mode set inline %s", target);
        else if (r < 5)
            snprintf(cmd, sizeof(cmd), "mode set pool %u %s", size, target);
        else if (r < 6)
            snprintf(cmd, sizeof(cmd), "mode set pool %s", target);
        else if (r == 8)
            snprintf(cmd, sizeof(cmd), "mode set auto %s", target);
        else
            snprintf(cmd, sizeof(cmd), "pool size %u %s", size, target);
        /* r == 7 with "all": alternate the mode so "all" switches too */
        if (r == 7)
            snprintf(cmd, sizeof(cmd), "mode set %s all",
                     cur_mode[1] ? "inline" : "pool");
        v = ctl_cmd(f->fd, cmd);
        f->cmds++;
        account(f, v, cmd);
        jm_free(v);
        f->flips++;
        /* now and then auto's threshold too (queues in auto read it) */
        if (rnd(&seed) % 8 == 0)
            set_auto_slow(f, 1 + (unsigned)(rnd(&seed) % 60), target);
        /* spread the flips over the load: 0..200 us apart */
        if (rnd(&seed) & 1)
            usleep((useconds_t)(rnd(&seed) % 200));
    }
    clock_gettime(CLOCK_MONOTONIC, &t1);
    fprintf(stderr, "flipper: %u commands in %.2f s, switches q0 %u q1 %u "
            "q2 %u, %u failures\n", f->cmds,
            (double)(t1.tv_sec - t0.tv_sec) +
                (double)(t1.tv_nsec - t0.tv_nsec) / 1e9,
            f->switches[0], f->switches[1], f->switches[2], f->failures);
    __atomic_store_n(&flipper_done, true, __ATOMIC_RELEASE);
    return NULL;
}

/* ---- the daemon's counters ---- */

static struct jm *stats_when_idle(void)
{
    for (int tries = 0; tries < 200; tries++) {
        struct jm *v = ctl_cmd_once(H.ctl, "stats");
        const struct jm *qs = jm_path(v, "stats.queues");
        bool idle = ctl_ok(v);

        for (size_t i = 0; idle && i < jm_count(qs); i++)
            idle = jm_u64(jm_get(jm_at(qs, i), "inflight"), 1) == 0;
        if (idle)
            return v;
        jm_free(v);
        usleep(10000);
    }
    return NULL;
}

static void check_counters(const struct jm *st, unsigned q, uint64_t frontend)
{
    const struct jm *qs = jm_get(st, "queues");
    const struct jm *qj = NULL;
    uint64_t per_mode[3] = { 0 }, sum = 0;

    for (size_t i = 0; i < jm_count(qs); i++) {
        if (jm_u64(jm_get(jm_at(qs, i), "index"), 999) == q)
            qj = jm_at(qs, i);
    }
    CHECK(qj != NULL, "queue %u missing from the stats", q);
    if (!qj)
        return;
    for (size_t i = 0; i < jm_count(jm_get(qj, "ops")); i++) {
        const struct jm *op = jm_at(jm_get(qj, "ops"), i);
        const char *m = jm_str(jm_get(op, "mode"), "");
        uint64_t n = jm_u64(jm_get(op, "count"), 0);

        per_mode[!strcmp(m, "inline") ? 0 : !strcmp(m, "pool") ? 1 : 2] += n;
        sum += n;
        CHECK(jm_u64(jm_get(op, "errors"), 1) == 0, "queue %u: %s errors", q,
              jm_str(jm_get(op, "opcode"), "?"));
        /* every phase histogram holds every request */
        CHECK(jm_u64(jm_path(op, "total.count"), 0) == n &&
              jm_u64(jm_path(op, "wait.count"), 0) == n,
              "queue %u %s %s: histogram counts", q,
              jm_str(jm_get(op, "opcode"), "?"), m);
    }
    fprintf(stderr, "queue %u: frontend %llu, daemon inline %llu + pool %llu "
            "+ side %llu = %llu, switches %llu (client made %u)\n", q,
            (unsigned long long)frontend, (unsigned long long)per_mode[0],
            (unsigned long long)per_mode[1], (unsigned long long)per_mode[2],
            (unsigned long long)sum,
            (unsigned long long)jm_u64(jm_get(qj, "mode_switches"), 0),
            F.switches[q]);
    CHECK_EQ(sum, frontend);
    CHECK_EQ(jm_u64(jm_get(qj, "requests"), 0), frontend);
    CHECK_EQ(jm_u64(jm_get(qj, "mode_switches"), 0), F.switches[q]);
    if (q >= 1) {
        CHECK(per_mode[0] > 0 && per_mode[1] > 0,
              "queue %u: inline %llu, pool %llu: the switch did not happen "
              "under load", q, (unsigned long long)per_mode[0],
              (unsigned long long)per_mode[1]);
    }
}

int main(int argc, char **argv)
{
    struct ch_opts o = { .queues = NQ, .pool = 2, .queue_size = 256 };
    int rc = ch_start(&H, argc, argv, &o);
    struct fuse_entry_out e;
    struct fuse_open_out oo;
    struct jm *v;

    if (rc != T_PASS)
        return rc;
    fc_chan *q1 = fc_chan_get(H.c, 1);

    CHECK_EQ(fc_create(q1, FUSE_ROOT_ID, "data", O_RDWR | O_CREAT, 0100644, &e,
                       &oo), 0);
    file_node = e.nodeid;
    file_fh = oo.fh;
    struct fuse_setattr_in sa = { .valid = FATTR_SIZE,
                                  .size = (uint64_t)NQ * BLOCKS_PER_QUEUE * BS };
    CHECK_EQ(fc_setattr(q1, file_node, &sa, NULL), 0);

    /* a known start: every queue in pool mode, counters from zero */
    v = ctl_cmd_once(H.ctl, "mode set pool 2 all");
    CHECK(ctl_ok(v), "mode set pool 2 all");
    jm_free(v);
    for (int i = 0; i < 64; i++)
        cur_mode[i] = 1;
    jm_free(stats_when_idle());
    v = ctl_cmd_once(H.ctl, "stats reset");
    CHECK(ctl_ok(v), "stats reset");
    jm_free(v);

    F.fd = ctl_open(H.ctl);
    CHECK(F.fd >= 0, "control connect: %s", strerror(-F.fd));
    if (F.fd < 0)
        goto out;
    for (unsigned i = 0; i < NQ; i++) {
        ctx[i].q = i + 1;
        ctx[i].ch = fc_chan_get(H.c, i + 1);
        ctx[i].rng = 0x9e3779b97f4a7c15ull * (i + 1);
        pthread_create(&ctx[i].th, NULL, worker, &ctx[i]);
    }
    pthread_create(&F.th, NULL, flipper_fn, &F);
    pthread_join(F.th, NULL);
    for (unsigned i = 0; i < NQ; i++)
        pthread_join(ctx[i].th, NULL);
    close(F.fd);

    CHECK(F.flips >= FLIPS, "only %u flips", F.flips);
    CHECK_EQ(F.failures, 0);
    for (unsigned i = 0; i < NQ; i++) {
        struct vuf_vq_stats vs;

        fprintf(stderr, "queue %u: %u submitted, %u completed, %u reads "
                "verified, %u errors\n", ctx[i].q, ctx[i].submitted,
                ctx[i].completed, ctx[i].reads_checked, ctx[i].errors);
        CHECK_EQ(ctx[i].errors, 0);
        CHECK_EQ(ctx[i].completed, ctx[i].submitted);
        CHECK(ctx[i].submitted >= MIN_REQS_PER_QUEUE, "queue %u: %u requests",
              ctx[i].q, ctx[i].submitted);
        vuf_vq_get_stats(vuf_dev_vq(H.dev, i + 1), &vs);
        CHECK_EQ(vs.bogus_used, 0);
        CHECK_EQ(vs.completed, vs.added);
    }

    /* the daemon counted exactly what the frontend did, per mode */
    v = stats_when_idle();
    CHECK(v != NULL, "no idle stats snapshot");
    if (v) {
        const struct jm *st = jm_get(v, "stats");

        CHECK(jm_bool(jm_get(st, "stats_enabled"), false), "stats disabled");
        check_counters(st, 0, 0);
        for (unsigned i = 0; i < NQ; i++)
            check_counters(st, i + 1, ctx[i].completed);
        jm_free(v);
    }
    /* and the file holds what was written last to every block */
    for (unsigned b = 0; b < NQ * BLOCKS_PER_QUEUE; b += 7) {
        uint8_t got[BS], want[BS];
        ssize_t n = fc_read(q1, file_node, file_fh, (uint64_t)b * BS, got, BS);

        if (versions[b] == 0)
            memset(want, 0, BS);
        else
            pattern(want, b, versions[b]);
        CHECK(n == BS && !memcmp(got, want, BS), "block %u after the run", b);
    }
    CHECK_EQ(fc_release(q1, file_node, file_fh, O_RDWR), 0);
out:
    rc = ch_stop(&H);
    if (rc == T_PASS && t_failures) {
        fprintf(stderr, "%d check(s) failed\n", t_failures);
        rc = T_FAIL;
    }
    if (rc == T_PASS)
        printf("ok\n");
    return rc;
}
