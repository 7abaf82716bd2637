/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The auto mode (--queue-mode=auto, "mode set auto"; dispatch.h): the
 * queue thread runs a request inline unless the queue is at least two deep
 * and its inline runs have been slow, then the pool runs it.
 *
 * One queue, READs of a file in the share, the data checked; after each
 * phase "mode get" gives the queue's moving average of inline run times
 * and how many requests the policy ran inline and gave to the pool:
 *   A  4 KiB at depth 1: every choice inline (depth 1 never goes to the
 *      pool), and the average is a real measurement (> 0);
 *   B  1 MiB at depth 8: a 1 MiB copy is slow on any machine (>= 25 us
 *      means under 40 GB/s), so with more than one CPU (auto measures
 *      wall time then) the average must reach the threshold and most
 *      choices of the phase go to the pool; the daemon's counters show
 *      READs served in pool mode (on one CPU auto measures off-CPU time
 *      and cached copies stay inline: only noted);
 *   C  4 KiB at depth 8 from the first 256 KiB of the file (cached: the
 *      share may be on a disk whose misses are slow), the probes (one pool
 *      choice in 64 runs inline)
 *      bring the average down; if it falls under the threshold -- it
 *      does unless a sanitizer makes 4 KiB READs slow -- the last requests
 *      run inline again.
 * Then the live switch: "mode set inline" stops the choices, "mode set
 * auto" resumes them, and "mode get" names the mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl_harness.h"

#define SLOW_NS 25000.0         /* DISPATCH_AUTO_SLOW_NS */
#define FILE_SIZE (16u << 20)
#define BIG (1u << 20)
#define SMALL 4096u
#define DEPTH 8
/* C reads 256 KiB over and over: in the page cache whatever the disk */
#define HOT (256u << 10)

static struct ch H;
static uint64_t node, fh;
static unsigned bad_data;

static uint8_t byte_at(uint64_t off)
{
    return (uint8_t)((off >> 12) * 31 + (off & 0xfff) * 7);
}

struct snap {
    double inline_us;
    unsigned slow_us;
    uint64_t chose_inline, chose_pool;
    char mode[16];
};

static void take(struct snap *s)
{
    struct jm *v = ctl_cmd_once(H.ctl, "mode get queue 1");
    const struct jm *q = jm_at(jm_get(v, "queues"), 0);
    const struct jm *a = jm_get(q, "auto");

    CHECK(ctl_ok(v) && a, "mode get queue 1");
    s->inline_us = jm_num(jm_get(a, "inline_us"), -1);
    s->slow_us = (unsigned)jm_u64(jm_get(a, "slow_us"), 0);
    s->chose_inline = jm_u64(jm_get(a, "chose_inline"), 0);
    s->chose_pool = jm_u64(jm_get(a, "chose_pool"), 0);
    snprintf(s->mode, sizeof(s->mode), "%s", jm_str(jm_get(q, "mode"), "?"));
    jm_free(v);
}

/* @n READs of @size at random aligned offsets in the first @span bytes,
 * @depth at a time, checked. */
static void reads(unsigned n, uint32_t size, unsigned depth, uint64_t span)
{
    fc_chan *ch = fc_chan_get(H.c, 1);
    static uint64_t gpa[DEPTH];
    static uint8_t *buf[DEPTH];
    uint64_t rng = 0x9e3779b97f4a7c15ULL ^ size ^ n;

    for (unsigned i = 0; i < DEPTH; i++) {
        if (!gpa[i]) {
            gpa[i] = vuf_mem_alloc(H.dev, BIG);
            buf[i] = gpa[i] ? vuf_mem_ptr(H.dev, gpa[i], BIG) : NULL;
            CHECK(buf[i], "guest memory");
            if (!buf[i])
                return;
        }
    }
    for (unsigned done = 0; done < n;) {
        fc_req *r[DEPTH];
        uint64_t off[DEPTH];
        struct fuse_read_in ri[DEPTH];
        unsigned k = 0;

        for (; k < depth && done + k < n; k++) {
            rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
            off[k] = ((rng >> 20) % (span / size)) * size;
            ri[k] = (struct fuse_read_in){ .fh = fh, .offset = off[k], .size = size };
            struct vuf_seg seg = { .gpa = gpa[k], .len = size };
            struct fc_call call = {
                .opcode = FUSE_READ, .nodeid = node,
                .arg = &ri[k], .arg_len = sizeof(ri[k]),
                .data_wr = &seg, .n_data_wr = 1,
            };
            memset(buf[k], 0xee, 64);
            int ret = fc_submit(ch, &call, &r[k]);
            CHECK(ret == 0, "submit: %s", strerror(-ret));
            if (ret < 0)
                return;
        }
        for (unsigned i = 0; i < k; i++) {
            int e = fc_wait(r[i], 10000);
            CHECK(e == 0 && r[i]->error == 0 &&
                  r[i]->used_len == sizeof(struct fuse_out_header) + size,
                  "READ %u at %llu: wait %d error %d used %u", size,
                  (unsigned long long)off[i], e, r[i]->error, r[i]->used_len);
            for (uint32_t b = 0; b < size && e == 0; b += 4093) {
                if (buf[i][b] != byte_at(off[i] + b)) {
                    bad_data++;
                    break;
                }
            }
            if (e != -ETIMEDOUT)
                fc_req_free(r[i]);
        }
        done += k;
    }
}

/* CPUs this test (and the daemon it started) may run on */
static int ncpus(void)
{
    cpu_set_t set;

    return sched_getaffinity(0, sizeof(set), &set) == 0 ? CPU_COUNT(&set) : 2;
}

static uint64_t pool_reads(void)
{
    struct jm *v = ctl_cmd_once(H.ctl, "stats");
    const struct jm *ops = jm_path(v, "stats.queues.1.ops");
    uint64_t n = 0;

    for (size_t i = 0; i < jm_count(ops); i++) {
        const struct jm *op = jm_at(ops, i);
        if (!strcmp(jm_str(jm_get(op, "opcode"), ""), "READ") &&
            !strcmp(jm_str(jm_get(op, "mode"), ""), "pool"))
            n += jm_u64(jm_get(op, "count"), 0);
    }
    jm_free(v);
    return n;
}

int main(int argc, char **argv)
{
    struct ch_opts o = { .queues = 1, .pool = 4, .extra = { "--queue-mode=auto" } };
    struct snap s0, a, b, c, d;
    struct fuse_entry_out e;
    struct fuse_open_out op;
    char path[512];
    int rc = ch_start(&H, argc, argv, &o);

    if (rc != T_PASS)
        return rc;
    snprintf(path, sizeof(path), "%s/data", H.share);
    {
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
        static uint8_t chunk[1 << 16];
        CHECK(fd >= 0, "create %s", path);
        for (uint64_t off = 0; fd >= 0 && off < FILE_SIZE; off += sizeof(chunk)) {
            for (size_t i = 0; i < sizeof(chunk); i++)
                chunk[i] = byte_at(off + i);
            CHECK(write(fd, chunk, sizeof(chunk)) == (ssize_t)sizeof(chunk), "write");
        }
        if (fd >= 0)
            close(fd);
    }
    fc_chan *q1 = fc_chan_get(H.c, 1);
    CHECK(fc_lookup(q1, FUSE_ROOT_ID, "data", &e) == 0, "lookup");
    CHECK(fc_open(q1, e.nodeid, O_RDONLY, &op) == 0, "open");
    node = e.nodeid;
    fh = op.fh;

    take(&s0);
    CHECK(!strcmp(s0.mode, "auto"), "mode at start: %s", s0.mode);
    CHECK(s0.slow_us == SLOW_NS / 1000, "threshold at start: %u us", s0.slow_us);

    reads(1000, SMALL, 1, FILE_SIZE);
    take(&a);
    fprintf(stderr, "A 4K d1: inline average %.1f us, inline %llu, pool %llu\n",
            a.inline_us, (unsigned long long)(a.chose_inline - s0.chose_inline),
            (unsigned long long)(a.chose_pool - s0.chose_pool));
    CHECK(a.chose_pool == s0.chose_pool, "depth 1 went to the pool");
    CHECK(a.chose_inline - s0.chose_inline >= 1000, "choices counted");
    CHECK(a.inline_us > 0, "no inline run time measured");

    uint64_t pool_before = pool_reads();
    reads(800, BIG, DEPTH, FILE_SIZE);
    take(&b);
    uint64_t bi = b.chose_inline - a.chose_inline, bp = b.chose_pool - a.chose_pool;
    fprintf(stderr, "B 1M d8: inline average %.1f us, inline %llu, pool %llu\n",
            b.inline_us, (unsigned long long)bi, (unsigned long long)bp);
    if (ncpus() > 1) {
        CHECK(b.inline_us >= SLOW_NS / 1000.0, "1 MiB READs averaged %.1f us inline",
              b.inline_us);
        CHECK(bp > bi, "1 MiB at depth 8: pool %llu, inline %llu",
              (unsigned long long)bp, (unsigned long long)bi);
    } else {
        /* one CPU: a copy from the page cache does not block, stays inline */
        fprintf(stderr, "note: one CPU: auto measures off-CPU time; cached "
                "1 MiB READs are CPU work and stay inline\n");
    }
    /* a pool request is counted just after its notification: wait a bit */
    uint64_t seen = 0;
    for (int i = 0; i < 100 && (seen = pool_reads() - pool_before) < bp; i++)
        usleep(10000);
    CHECK(seen >= bp, "the counters saw %llu pool READs, the policy chose %llu",
          (unsigned long long)seen, (unsigned long long)bp);

    reads(3000, SMALL, DEPTH, HOT);
    take(&c);
    reads(1000, SMALL, DEPTH, HOT);
    take(&d);
    uint64_t di = d.chose_inline - c.chose_inline, dp = d.chose_pool - c.chose_pool;
    fprintf(stderr, "C 4K d8: inline average %.1f us; last 1000: inline %llu, "
            "pool %llu\n", d.inline_us, (unsigned long long)di,
            (unsigned long long)dp);
    if (b.inline_us >= SLOW_NS / 1000.0)
        CHECK(c.inline_us < b.inline_us, "the average did not come down "
              "(%.1f -> %.1f)", b.inline_us, c.inline_us);
    if (c.inline_us < SLOW_NS / 1000.0)
        CHECK(di >= 9 * dp, "4 KiB again, average %.1f us: inline %llu, pool %llu",
              c.inline_us, (unsigned long long)di, (unsigned long long)dp);
    else
        fprintf(stderr, "note: 4 KiB READs average %.1f us inline here (a "
                "sanitizer?): over the threshold, the pool stays\n", c.inline_us);

    /* the live switch in and out of auto */
    struct jm *v = ctl_cmd_once(H.ctl, "mode set inline queue 1");
    CHECK(ctl_ok(v), "mode set inline");
    jm_free(v);
    reads(100, BIG, DEPTH, FILE_SIZE);
    struct snap e1;
    take(&e1);
    CHECK(!strcmp(e1.mode, "inline"), "mode %s", e1.mode);
    CHECK(e1.chose_inline == d.chose_inline && e1.chose_pool == d.chose_pool,
          "choices counted while inline");
    v = ctl_cmd_once(H.ctl, "mode set auto 2 queue 1");
    CHECK(ctl_ok(v) && !strcmp(jm_str(jm_path(v, "queues.0.mode"), ""), "auto") &&
          jm_u64(jm_path(v, "queues.0.pool_size"), 0) == 2, "mode set auto 2");
    jm_free(v);
    reads(100, BIG, DEPTH, FILE_SIZE);
    take(&e1);
    CHECK(e1.chose_inline + e1.chose_pool >= d.chose_inline + d.chose_pool + 100,
          "no choices after mode set auto");
    v = ctl_cmd_once(H.ctl, "mode set sideways");
    CHECK(v && !ctl_ok(v), "mode set sideways accepted");
    jm_free(v);

    /* the threshold, live: at 1 s, 1 MiB READs at depth 8 stay inline */
    struct snap f0, f1;
    v = ctl_cmd_once(H.ctl, "auto slow 1000000 queue 1");
    CHECK(ctl_ok(v) && jm_u64(jm_path(v, "queues.0.auto.slow_us"), 0) == 1000000,
          "auto slow 1000000");
    jm_free(v);
    take(&f0);
    reads(400, BIG, DEPTH, FILE_SIZE);
    take(&f1);
    fprintf(stderr, "F 1M d8, threshold 1 s: inline average %.1f us, inline "
            "%llu, pool %llu\n", f1.inline_us,
            (unsigned long long)(f1.chose_inline - f0.chose_inline),
            (unsigned long long)(f1.chose_pool - f0.chose_pool));
    CHECK(f1.slow_us == 1000000 && f1.chose_pool == f0.chose_pool,
          "threshold %u us: %llu pool choices", f1.slow_us,
          (unsigned long long)(f1.chose_pool - f0.chose_pool));
    /* at 1 us, cached 4 KiB READs at depth 8 (inline in C) go to the pool */
    v = ctl_cmd_once(H.ctl, "auto slow 1 queue 1");
    CHECK(ctl_ok(v), "auto slow 1");
    jm_free(v);
    take(&f0);
    reads(1000, SMALL, DEPTH, HOT);
    take(&f1);
    di = f1.chose_inline - f0.chose_inline;
    dp = f1.chose_pool - f0.chose_pool;
    fprintf(stderr, "G 4K d8, threshold 1 us: inline average %.1f us, inline "
            "%llu, pool %llu\n", f1.inline_us, (unsigned long long)di,
            (unsigned long long)dp);
    if (ncpus() > 1)
        CHECK(dp > di, "4 KiB at depth 8, threshold 1 us: pool %llu, inline "
              "%llu", (unsigned long long)dp, (unsigned long long)di);
    /* refused: out of bounds, not a number, missing, a bad queue */
    static const char *const bad[] = {
        "auto slow 0 queue 1", "auto slow 1000001 queue 1",
        "auto slow 5us queue 1", "auto slow", "auto slow 5 queue 99",
        "auto slow -5", "auto slow 5 queue 1 extra",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        v = ctl_cmd_once(H.ctl, bad[i]);
        CHECK(v && !ctl_ok(v), "'%s' accepted", bad[i]);
        jm_free(v);
    }
    take(&f1);
    CHECK(f1.slow_us == 1, "refused commands changed the threshold: %u us",
          f1.slow_us);

    CHECK(bad_data == 0, "%u READs returned wrong data", bad_data);
    CHECK(fc_release(q1, node, fh, O_RDONLY) == 0, "release");
    rc = ch_stop(&H);
    if (rc != T_PASS)
        return rc;
    return t_failures ? T_FAIL : T_PASS;
}
