/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hostile virtqueue input: descriptors outside guest memory or across the
 * two memory regions, loops, chains longer than the queue, nested or
 * malformed indirect tables, writable-before-readable, zero-length buffers,
 * bad avail ring entries.  The daemon may answer, or stop using that one
 * ring; it must never touch memory it was not given, and queue 2 serves.
 */
#include "test_hostile.h"

#include <errno.h>
#include <string.h>

/* Far above both regions (GPA 0 and 4 GiB, 128 MiB each). */
#define FAR_GPA 0x7000000000ull

struct regions {
    uint64_t gpa[2], size[2];
};

static void regions(struct regions *r)
{
    for (unsigned i = 0; i < 2; i++) {
        vuf_mem_region(H.dev, i, &r->gpa[i], &r->size[i], NULL);
    }
}

/* A GETATTR(root) request buffer; d0/d1 the usual two descriptors. */
static int getattr_buf(struct hbuf *b)
{
    int ret = hb_new(b);
    if (ret == 0) {
        hb_getattr(b);
    }
    return ret;
}

/* Indirect table of @n descriptors in guest memory. */
static struct vring_desc *table_new(unsigned n, uint64_t *gpa)
{
    *gpa = vuf_mem_alloc(H.dev, 16u * n);
    struct vring_desc *t = *gpa ? vuf_mem_ptr(H.dev, *gpa, 16u * n) : NULL;
    if (t) {
        memset(t, 0, 16u * n);
    }
    return t;
}

/* The common shape of "the ring was abused": nothing is asserted about
 * the abused chain itself, only that the device goes on (runner). */
static enum outcome raw2(struct hctx *x, struct vuf_raw_desc d0, struct vuf_raw_desc d1)
{
    struct vuf_raw_desc d[2] = { d0, d1 };
    struct hres res;
    return hc_raw(x, H.req, d, 2, 0, 0, 0, &res);
}

static enum outcome rd_outside(struct hctx *x)
{
    struct hbuf b;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    return raw2(x, (struct vuf_raw_desc){ FAR_GPA, GETATTR_IN_LEN, VNEXT, 1 },
                (struct vuf_raw_desc){ b.g + HB_OUT, GETATTR_OUT_LEN, VWRITE, 0 });
}

static enum outcome wr_outside(struct hctx *x)
{
    struct hbuf b;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    return raw2(x, (struct vuf_raw_desc){ b.g, GETATTR_IN_LEN, VNEXT, 1 },
                (struct vuf_raw_desc){ FAR_GPA, GETATTR_OUT_LEN, VWRITE, 0 });
}

/* The request sits in the last 40 bytes of region 0; its descriptor runs
 * 16 bytes past the end, into the gap before region 1. */
static enum outcome rd_straddle(struct hctx *x)
{
    struct regions R;
    struct hbuf b;
    regions(&R);
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    uint64_t at = R.gpa[0] + R.size[0] - sizeof(struct fuse_in_header);
    memcpy(vuf_mem_ptr(H.dev, at, sizeof(struct fuse_in_header)), b.p,
           sizeof(struct fuse_in_header));
    return raw2(x, (struct vuf_raw_desc){ at, GETATTR_IN_LEN, VNEXT, 1 },
                (struct vuf_raw_desc){ b.g + HB_OUT, GETATTR_OUT_LEN, VWRITE, 0 });
}

/* Reply area: the last 64 bytes of region 1 and 56 bytes beyond it. */
static enum outcome wr_straddle(struct hctx *x)
{
    struct regions R;
    struct hbuf b;
    regions(&R);
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    uint64_t at = R.gpa[1] + R.size[1] - 64;
    return raw2(x, (struct vuf_raw_desc){ b.g, GETATTR_IN_LEN, VNEXT, 1 },
                (struct vuf_raw_desc){ at, GETATTR_OUT_LEN, VWRITE, 0 });
}

static enum outcome in_gap(struct hctx *x)
{
    struct regions R;
    struct hbuf b;
    regions(&R);
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    return raw2(x, (struct vuf_raw_desc){ R.gpa[0] + R.size[0] + 4096, GETATTR_IN_LEN, VNEXT, 1 },
                (struct vuf_raw_desc){ b.g + HB_OUT, GETATTR_OUT_LEN, VWRITE, 0 });
}

static enum outcome addr_wraps(struct hctx *x)
{
    struct hbuf b;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    return raw2(x, (struct vuf_raw_desc){ b.g, GETATTR_IN_LEN, VNEXT, 1 },
                (struct vuf_raw_desc){ 0xffffffffffffff00ull, 0x200, VWRITE, 0 });
}

static enum outcome len_huge(struct hctx *x)
{
    struct hbuf b;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    return raw2(x, (struct vuf_raw_desc){ b.g, GETATTR_IN_LEN, VNEXT, 1 },
                (struct vuf_raw_desc){ b.g + HB_OUT, 0xffffffffu, VWRITE, 0 });
}

static enum outcome loop2(struct hctx *x)
{
    struct hbuf b;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    return raw2(x, (struct vuf_raw_desc){ b.g, GETATTR_IN_LEN, VNEXT, 1 },
                (struct vuf_raw_desc){ b.g + HB_OUT, GETATTR_OUT_LEN, VWRITE | VNEXT, 0 });
}

static enum outcome loop_self(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    struct vuf_raw_desc d[] = { { b.g, GETATTR_IN_LEN, VNEXT, 0 } };
    return hc_raw(x, H.req, d, 1, 0, 0, 0, &res);
}

static enum outcome next_beyond_ring(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    struct vuf_raw_desc d[] = { { b.g, GETATTR_IN_LEN, VNEXT, 60000 } };
    return hc_raw(x, H.req, d, 1, 0, 0, 0, &res);
}

/* Every slot of the ring in one chain, the last pointing back at the
 * head: the walk visits more descriptors than the queue has. */
static enum outcome loop_whole_ring(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    unsigned n = vuf_vq_size(fc_chan_vq(H.req));
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    struct vuf_raw_desc d[n];
    for (unsigned i = 0; i < n; i++) {
        d[i] = (struct vuf_raw_desc){ b.g, 8, VNEXT, (uint16_t)((i + 1) % n) };
    }
    return hc_raw(x, H.req, d, n, 0, 0, 0, &res);
}

static enum outcome indirect_in_indirect(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    uint64_t t1g, t2g;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    struct vring_desc *t1 = table_new(1, &t1g), *t2 = table_new(2, &t2g);
    if (!t1 || !t2) {
        return O_HUNG;
    }
    t2[0] = (struct vring_desc){ b.g, GETATTR_IN_LEN, VNEXT, 1 };
    t2[1] = (struct vring_desc){ b.g + HB_OUT, GETATTR_OUT_LEN, VWRITE, 0 };
    t1[0] = (struct vring_desc){ t2g, 32, VINDIRECT, 0 };
    struct vuf_raw_desc d[] = { { t1g, 16, VINDIRECT, 0 } };
    return hc_raw(x, H.req, d, 1, 0, 0, 0, &res);
}

/* A correct two-entry table behind a ring descriptor with @flags/@len. */
static enum outcome indirect_with(struct hctx *x, uint64_t tgpa_override, uint32_t len,
                                  uint16_t flags, bool second)
{
    struct hbuf b;
    struct hres res;
    uint64_t tg;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    struct vring_desc *t = table_new(2, &tg);
    if (!t) {
        return O_HUNG;
    }
    t[0] = (struct vring_desc){ b.g, GETATTR_IN_LEN, VNEXT, 1 };
    t[1] = (struct vring_desc){ b.g + HB_OUT, GETATTR_OUT_LEN, VWRITE, 0 };
    struct vuf_raw_desc d[] = {
        { tgpa_override ? tgpa_override : tg, len, flags, 1 },
        { b.g + HB_OUT + 512, 64, VWRITE, 0 },
    };
    return hc_raw(x, H.req, d, second ? 2 : 1, 0, 0, 0, &res);
}

static enum outcome indirect_next(struct hctx *x)
{
    return indirect_with(x, 0, 32, VINDIRECT | VNEXT, true);
}

static enum outcome indirect_len_odd(struct hctx *x)
{
    return indirect_with(x, 0, 20, VINDIRECT, false);
}

static enum outcome indirect_len_zero(struct hctx *x)
{
    return indirect_with(x, 0, 0, VINDIRECT, false);
}

static enum outcome indirect_outside(struct hctx *x)
{
    return indirect_with(x, FAR_GPA, 32, VINDIRECT, false);
}

/* Table whose first entry is the last 16 bytes of region 0. */
static enum outcome indirect_straddle(struct hctx *x)
{
    struct regions R;
    struct hbuf b;
    struct hres res;
    regions(&R);
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    uint64_t at = R.gpa[0] + R.size[0] - 16;
    struct vring_desc e = { b.g, GETATTR_IN_LEN, VNEXT, 1 };
    memcpy(vuf_mem_ptr(H.dev, at, 16), &e, 16);
    struct vuf_raw_desc d[] = { { at, 32, VINDIRECT, 0 } };
    return hc_raw(x, H.req, d, 1, 0, 0, 0, &res);
}

/* Well-formed indirect chain, but the feature was not negotiated. */
static enum outcome indirect_not_negotiated(struct hctx *x)
{
    return indirect_with(x, 0, 32, VINDIRECT, false);
}

static enum outcome indirect_table_shape(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    uint64_t tg;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    struct vring_desc *t = table_new(2, &tg);
    if (!t) {
        return O_HUNG;
    }
    t[0] = (struct vring_desc){ b.g, GETATTR_IN_LEN, VNEXT, 1 };
    if (x->c->param == 0) {         /* next beyond the table */
        t[0].next = 7;
        t[1] = (struct vring_desc){ b.g + HB_OUT, GETATTR_OUT_LEN, VWRITE, 0 };
    } else {                        /* loop inside the table */
        t[1] = (struct vring_desc){ b.g + HB_OUT, GETATTR_OUT_LEN, VWRITE | VNEXT, 0 };
    }
    struct vuf_raw_desc d[] = { { tg, 32, VINDIRECT, 0 } };
    return hc_raw(x, H.req, d, 1, 0, 0, 0, &res);
}

/*
 * An indirect table of @param entries: the request, zero-length readable
 * buffers, the reply.  2 * queue size is more than the driver may chain
 * (virtio: never longer than the queue); 2048 is more buffers than any
 * device keeps per request.
 */
static enum outcome indirect_long(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    uint64_t tg;
    unsigned n = x->c->param ? (unsigned)x->c->param : 2 * vuf_vq_size(fc_chan_vq(H.req));
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    struct vring_desc *t = table_new(n, &tg);
    if (!t) {
        return O_HUNG;
    }
    t[0] = (struct vring_desc){ b.g, GETATTR_IN_LEN, VNEXT, 1 };
    for (unsigned i = 1; i + 1 < n; i++) {
        t[i] = (struct vring_desc){ b.g + 2048, 0, VNEXT, (uint16_t)(i + 1) };
    }
    t[n - 1] = (struct vring_desc){ b.g + HB_OUT, GETATTR_OUT_LEN, VWRITE, 0 };
    struct vuf_raw_desc d[] = { { tg, 16u * n, VINDIRECT, 0 } };
    enum outcome out = hc_raw(x, H.req, d, 1, 0, b.unique, b.g + HB_OUT, &res);
    /* If it is served, it is served right. */
    EXPECT_OURS(x, res.wait != 0 || (res.have_hdr && (res.oh.error == 0 ||
                                                      res.oh.error == -EINVAL)),
                "used %u error %d", res.used_len, res.oh.error);
    return out;
}

static enum outcome write_before_read(struct hctx *x)
{
    struct hbuf b;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    return raw2(x, (struct vuf_raw_desc){ b.g + HB_OUT, GETATTR_OUT_LEN, VWRITE | VNEXT, 1 },
                (struct vuf_raw_desc){ b.g, GETATTR_IN_LEN, 0, 0 });
}

static enum outcome read_after_write(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    struct vuf_raw_desc d[] = {
        { b.g, sizeof(struct fuse_in_header), VNEXT, 1 },
        { b.g + HB_OUT, GETATTR_OUT_LEN, VWRITE | VNEXT, 2 },
        { b.g + sizeof(struct fuse_in_header), sizeof(struct fuse_getattr_in), 0, 0 },
    };
    return hc_raw(x, H.req, d, 3, 0, 0, 0, &res);
}

/* No readable byte: nothing to answer but an error with unique 0. */
static enum outcome only_writable(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    struct vuf_raw_desc d[] = { { b.g + HB_OUT, GETATTR_OUT_LEN, VWRITE, 0 } };
    enum outcome out = hc_raw(x, H.req, d, 1, 0, 0, b.g + HB_OUT, &res);
    EXPECT_OURS(x, res.wait == 0 && res.used_len == 16 && res.oh.error == -EINVAL,
                "wait %d used %u error %d", res.wait, res.used_len, res.oh.error);
    return out;
}

/* GETATTR whose chain has no room for any reply: returned empty. */
static enum outcome no_reply_room(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    enum outcome out;
    if (x->c->param == 0) {
        struct vuf_raw_desc d[] = { { b.g, GETATTR_IN_LEN, 0, 0 } };
        out = hc_raw(x, H.req, d, 1, 0, 0, 0, &res);
    } else {
        struct vuf_raw_desc d[] = { { b.g, GETATTR_IN_LEN, VNEXT, 1 },
                                    { b.g + HB_OUT, 8, VWRITE, 0 } };
        out = hc_raw(x, H.req, d, 2, 0, 0, 0, &res);
    }
    EXPECT_OURS(x, res.wait == 0 && res.used_len == 0, "wait %d used %u", res.wait,
                res.used_len);
    return out;
}

/* Zero-length buffers between real ones: a legal, well-formed GETATTR. */
static enum outcome zero_len_inside(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    /* param 1: the empty buffers point outside guest memory */
    uint64_t empty = x->c->param ? FAR_GPA : b.g + 2048;
    struct vuf_raw_desc d[] = {
        { b.g, sizeof(struct fuse_in_header), VNEXT, 1 },
        { empty, 0, VNEXT, 2 },
        { b.g + sizeof(struct fuse_in_header), sizeof(struct fuse_getattr_in), VNEXT, 3 },
        { empty, 0, VWRITE | VNEXT, 4 },
        { b.g + HB_OUT, sizeof(struct fuse_out_header), VWRITE | VNEXT, 5 },
        { empty, 0, VWRITE | VNEXT, 6 },
        { b.g + HB_OUT + sizeof(struct fuse_out_header), sizeof(struct fuse_attr_out),
          VWRITE, 0 },
    };
    enum outcome out = hc_raw(x, H.req, d, 7, 0, b.unique, b.g + HB_OUT, &res);
    if (x->c->param == 0) {
        EXPECT_OURS(x, res.wait == 0 && res.used_len == GETATTR_OUT_LEN && res.oh.error == 0,
                    "wait %d used %u error %d", res.wait, res.used_len, res.oh.error);
    }
    return out;
}

static enum outcome zero_len_only(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    struct vuf_raw_desc d[] = { { b.g, 0, VNEXT, 1 }, { b.g + HB_OUT, 0, VWRITE, 0 } };
    enum outcome out = hc_raw(x, H.req, d, 2, 0, 0, 0, &res);
    EXPECT_OURS(x, res.wait == 0 && res.used_len == 0, "wait %d used %u", res.wait,
                res.used_len);
    return out;
}

/* 24 writable bytes for a 120-byte reply: an error header, not a
 * truncated attr and never bytes past the buffer. */
static enum outcome reply_too_small(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    if (getattr_buf(&b) < 0) {
        return O_HUNG;
    }
    memset(b.p + HB_OUT + 24, 0xa5, 64);
    struct vuf_raw_desc d[] = { { b.g, GETATTR_IN_LEN, VNEXT, 1 },
                                { b.g + HB_OUT, 24, VWRITE, 0 } };
    enum outcome out = hc_raw(x, H.req, d, 2, 0, b.unique, b.g + HB_OUT, &res);
    bool untouched = true;
    for (unsigned i = 0; i < 64; i++) {
        untouched = untouched && b.p[HB_OUT + 24 + i] == 0xa5;
    }
    EXPECT_ALL(x, untouched, "bytes after the 24-byte reply buffer were written");
    EXPECT_OURS(x, res.wait == 0 && res.used_len == 16 && res.oh.error < 0,
                "wait %d used %u error %d", res.wait, res.used_len, res.oh.error);
    return out;
}

static enum outcome head_beyond_ring(struct hctx *x)
{
    vuf_vq *q = fc_chan_vq(H.req);
    vuf_vq_publish_raw_head(q, 40000);
    vuf_vq_kick_force(q);
    return hc_settle(x);
}

/* avail->idx moves more than the queue size past what the device saw. */
static enum outcome avail_idx_jump(struct hctx *x)
{
    vuf_vq *q = fc_chan_vq(H.req);
    unsigned n = vuf_vq_size(q) + 8;
    for (unsigned i = 0; i < n; i++) {
        vuf_vq_publish_raw_head(q, 0);
    }
    vuf_vq_kick_force(q);
    return hc_settle(x);
}

/* The same abuse on the hiprio queue: request queues keep serving. */
static enum outcome hiprio_loop(struct hctx *x)
{
    struct hbuf b;
    struct hres res;
    if (hb_new(&b) < 0) {
        return O_HUNG;
    }
    struct fuse_forget_in fi = { .nlookup = 1 };
    uint32_t len = hb_req(&b, FUSE_FORGET, ROOT, &fi, sizeof(fi));
    struct vuf_raw_desc d[] = { { b.g, len, VNEXT, 0 } };
    return hc_raw(x, H.hiprio, d, 1, 0, 0, 0, &res);
}

const struct hcase hostile_ring_cases[] = {
    { "readable descriptor outside guest memory", rd_outside, 0, 0 },
    { "writable descriptor outside guest memory", wr_outside, 0, 0 },
    { "readable descriptor straddling the end of region 0", rd_straddle, 0, 0 },
    { "writable descriptor straddling the end of region 1", wr_straddle, 0, 0 },
    { "descriptor in the gap between the two regions", in_gap, 0, 0 },
    { "descriptor whose address + length wraps 2^64", addr_wraps, 0, 0 },
    { "descriptor length 0xffffffff", len_huge, 0, 0 },
    { "looped chain (second descriptor back to the first)", loop2, 0, 0 },
    { "descriptor chained to itself", loop_self, 0, 0 },
    { "next index beyond the ring", next_beyond_ring, 0, 0 },
    { "chain through every ring slot and back (longer than queue)", loop_whole_ring, 0, 0 },
    { "indirect descriptor inside an indirect table", indirect_in_indirect, 0, 0 },
    { "indirect descriptor with NEXT set", indirect_next, 0, 0 },
    { "indirect table length not a multiple of 16", indirect_len_odd, 0, 0 },
    { "indirect table length 0", indirect_len_zero, 0, 0 },
    { "indirect table outside guest memory", indirect_outside, 0, 0 },
    { "indirect table straddling the end of region 0", indirect_straddle, 0, 0 },
    { "indirect descriptor without INDIRECT_DESC negotiated", indirect_not_negotiated,
      HC_NO_INDIRECT, 0 },
    { "next index beyond the indirect table", indirect_table_shape, 0, 0 },
    { "loop inside an indirect table", indirect_table_shape, 0, 1 },
    { "indirect chain of 2x queue size descriptors", indirect_long, 0, 0 },
    { "indirect chain of 2048 descriptors", indirect_long, 0, 2048 },
    { "writable descriptor before the readable one", write_before_read, 0, 0 },
    { "readable descriptor after a writable one", read_after_write, 0, 0 },
    { "chain without readable descriptors", only_writable, 0, 0 },
    { "GETATTR chain without writable descriptors", no_reply_room, 0, 0 },
    { "writable part shorter than fuse_out_header", no_reply_room, 0, 1 },
    { "zero-length buffers inside a valid chain", zero_len_inside, 0, 0 },
    { "zero-length buffers with addresses outside guest memory", zero_len_inside, 0, 1 },
    { "chain of zero-length buffers only", zero_len_only, 0, 0 },
    { "reply buffer too small for the reply", reply_too_small, 0, 0 },
    { "avail entry with a head beyond the ring", head_beyond_ring, 0, 0 },
    { "avail index more than the queue size ahead", avail_idx_jump, 0, 0 },
    { "looped chain on the hiprio queue", hiprio_loop, 0, 0 },
};
const unsigned hostile_ring_ncases = sizeof(hostile_ring_cases) / sizeof(hostile_ring_cases[0]);
