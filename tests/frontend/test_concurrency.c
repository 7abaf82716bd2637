/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Every request queue (one thread each) keeps 64 mixed 4 KiB READ/WRITE
 * requests in flight on one file; every request completes exactly once with
 * a well-formed reply, every READ returns the last data written to its
 * block, and the file on the host ends up with exactly what was written.
 * Half the chains use indirect descriptors when the daemon offers them.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DEPTH 64
#define BS 4096u
#define BLOCKS_PER_QUEUE 256u
#define REQS_PER_QUEUE 20000u

static struct harness H;
static uint64_t file_node, file_fh;
static unsigned nq;
static uint32_t *versions;   /* committed version per block, all queues */

struct slot {
    uint64_t data_gpa;
    uint8_t *data;
    fc_req *req;
    unsigned block;
    uint32_t version;       /* WRITE: version being written */
    bool is_write;
    bool busy;
    unsigned completions;
};

struct qctx {
    unsigned q;
    pthread_t th;
    fc_chan *ch;
    struct slot slots[DEPTH];
    bool block_busy[BLOCKS_PER_QUEUE];
    unsigned submitted, completed, reads_checked, errors;
    uint64_t rng;
};

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
    for (unsigned i = 0; i < BS / 4; i++) {
        w[i] = (block * 2654435761u) ^ (version * 40503u) ^ i;
    }
}

static int submit(struct qctx *c, struct slot *s, bool indirect)
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
    struct fuse_read_in ri = { .fh = file_fh, .offset = (uint64_t)s->block * BS, .size = BS };
    struct fuse_write_in wi = { .fh = file_fh, .offset = (uint64_t)s->block * BS, .size = BS };
    struct fc_call call = {
        .nodeid = file_node, .indirect = indirect, .no_kick = true, .user = s,
    };
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
    s->completions = 0;
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
        fprintf(stderr, "queue %u: completion for a request not in flight\n", c->q);
        c->errors++;
        return;
    }
    s->completions++;
    s->busy = false;
    c->completed++;
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
            fprintf(stderr, "queue %u: READ reply len %u\n", c->q, r->reply_len);
            c->errors++;
        }
        pattern(want, s->block, versions[s->block]);
        /* version 0 = never written = zeros (the file is preallocated) */
        if (versions[s->block] == 0) {
            memset(want, 0, BS);
        }
        if (memcmp(want, s->data, BS)) {
            fprintf(stderr, "queue %u: READ block %u: stale or corrupt data\n", c->q,
                    s->block);
            c->errors++;
        }
        c->reads_checked++;
    }
    fc_req_free(r);
    s->req = NULL;
}

static void *worker(void *arg)
{
    struct qctx *c = arg;
    vuf_dev *d = H.dev;
    bool indirect_ok = vuf_dev_features(d) & (1ull << VUF_F_INDIRECT_DESC);
    for (unsigned i = 0; i < DEPTH; i++) {
        c->slots[i].data_gpa = vuf_mem_alloc(d, BS);
        c->slots[i].data = vuf_mem_ptr(d, c->slots[i].data_gpa, BS);
        if (!c->slots[i].data) {
            c->errors++;
            return NULL;
        }
    }
    unsigned n = 0;
    for (unsigned i = 0; i < DEPTH; i++) {
        if (submit(c, &c->slots[i], indirect_ok && (n++ & 1)) < 0) {
            c->errors++;
            return NULL;
        }
    }
    fc_chan_kick(c->ch);
    while (c->completed < c->submitted) {
        fc_req *done[DEPTH];
        int k = fc_chan_poll(c->ch, 10000, done, DEPTH);
        if (k <= 0) {
            fprintf(stderr, "queue %u: no completion in 10 s (%d), %u in flight\n", c->q, k,
                    c->submitted - c->completed);
            c->errors++;
            return NULL;
        }
        for (int i = 0; i < k; i++) {
            struct slot *s = done[i]->user;
            complete(c, done[i]);
            if (c->submitted < REQS_PER_QUEUE && !s->busy) {
                if (submit(c, s, indirect_ok && (n++ & 1)) < 0) {
                    c->errors++;
                    return NULL;
                }
            }
        }
        fc_chan_kick(c->ch);
    }
    for (unsigned i = 0; i < DEPTH; i++) {
        if (c->slots[i].completions != 1 && c->slots[i].req) {
            c->errors++;
        }
    }
    return NULL;
}

int main(int argc, char **argv)
{
    struct vuf_opts o = { .event_idx = true, .indirect_desc = true, .queue_size = 256 };
    int rc = harness_start(&H, argc, argv, &o);
    if (rc != T_PASS) {
        return rc;
    }
    nq = vuf_dev_num_queues(H.dev) - 1;
    fprintf(stderr, "request queues %u, features 0x%llx (event_idx %d, indirect %d)\n", nq,
            (unsigned long long)vuf_dev_features(H.dev),
            !!(vuf_dev_features(H.dev) & (1ull << VUF_F_EVENT_IDX)),
            !!(vuf_dev_features(H.dev) & (1ull << VUF_F_INDIRECT_DESC)));
    versions = calloc((size_t)nq * BLOCKS_PER_QUEUE, sizeof(*versions));

    struct fuse_entry_out e;
    struct fuse_open_out oo;
    CHECK_EQ(fc_create(H.req, FUSE_ROOT_ID, "data", O_RDWR | O_CREAT, 0100644, &e, &oo), 0);
    file_node = e.nodeid;
    file_fh = oo.fh;
    struct fuse_setattr_in sa = { .valid = FATTR_SIZE,
                                  .size = (uint64_t)nq * BLOCKS_PER_QUEUE * BS };
    CHECK_EQ(fc_setattr(H.req, file_node, &sa, NULL), 0);

    struct qctx *ctx = calloc(nq, sizeof(*ctx));
    for (unsigned i = 0; i < nq; i++) {
        ctx[i].q = i + 1;
        ctx[i].ch = fc_chan_get(H.c, i + 1);
        ctx[i].rng = 0x9e3779b97f4a7c15ull * (i + 1);
        pthread_create(&ctx[i].th, NULL, worker, &ctx[i]);
    }
    for (unsigned i = 0; i < nq; i++) {
        pthread_join(ctx[i].th, NULL);
        fprintf(stderr, "queue %u: %u submitted, %u completed, %u reads verified, %u errors\n",
                ctx[i].q, ctx[i].submitted, ctx[i].completed, ctx[i].reads_checked,
                ctx[i].errors);
        CHECK_EQ(ctx[i].errors, 0);
        CHECK_EQ(ctx[i].completed, ctx[i].submitted);
        CHECK_EQ(ctx[i].submitted, REQS_PER_QUEUE);
        struct vuf_vq_stats vs;
        vuf_vq_get_stats(vuf_dev_vq(H.dev, i + 1), &vs);
        CHECK_EQ(vs.bogus_used, 0);
        CHECK_EQ(vs.completed, vs.added);
        fprintf(stderr, "queue %u: kicks %llu (suppressed %llu), calls %llu\n", ctx[i].q,
                (unsigned long long)vs.kicks, (unsigned long long)vs.kicks_suppressed,
                (unsigned long long)vs.calls);
    }
    CHECK_EQ(fc_release(H.req, file_node, file_fh, O_RDWR), 0);

    /* The host file holds exactly the last version of every block. */
    char p[512];
    snprintf(p, sizeof(p), "%s/data", H.share);
    int fd = open(p, O_RDONLY);
    CHECK(fd >= 0, "open %s", p);
    uint8_t got[BS], want[BS];
    unsigned bad = 0;
    for (unsigned b = 0; fd >= 0 && b < nq * BLOCKS_PER_QUEUE; b++) {
        if (pread(fd, got, BS, (off_t)b * BS) != BS) {
            bad++;
            continue;
        }
        if (versions[b]) {
            pattern(want, b, versions[b]);
        } else {
            memset(want, 0, BS);
        }
        bad += memcmp(got, want, BS) != 0;
    }
    if (fd >= 0) {
        close(fd);
    }
    CHECK_EQ(bad, 0);
    free(ctx);
    free(versions);
    rc = harness_stop(&H);
    if (t_failures) {
        fprintf(stderr, "%d check(s) failed\n", t_failures);
        return T_FAIL;
    }
    return rc;
}
