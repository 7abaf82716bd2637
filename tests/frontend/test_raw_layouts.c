/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The daemon accepts any legal descriptor layout, not just Linux's: a
 * fuse_in_header split over three descriptors, replies scattered over
 * several writable descriptors, a hand-built indirect table; raw vhost-user
 * GET_* messages mid-session get well-formed replies.
 */
#include "harness.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include <linux/virtio_ring.h>

static struct harness H;

/* GETATTR(root) in guest memory: returns the buffer's GPA; the out header
 * starts at +256. */
static uint64_t build_getattr(uint64_t unique)
{
    uint64_t g = vuf_mem_alloc(H.dev, 512);
    uint8_t *b = vuf_mem_ptr(H.dev, g, 512);
    memset(b, 0, 512);
    struct fuse_in_header ih = {
        .len = sizeof(ih) + sizeof(struct fuse_getattr_in),
        .opcode = FUSE_GETATTR,
        .unique = unique,
        .nodeid = FUSE_ROOT_ID,
    };
    memcpy(b, &ih, sizeof(ih));
    return g;
}

static void check_getattr_reply(fc_req *r, uint64_t g, const char *what)
{
    struct stat st;
    stat(H.share, &st);
    struct fuse_out_header oh;
    struct fuse_attr_out ao;
    uint8_t *b = vuf_mem_ptr(H.dev, g, 512);
    memcpy(&oh, b + 256, sizeof(oh));
    memcpy(&ao, b + 256 + sizeof(oh), sizeof(ao));
    CHECK(r->done, "%s: not completed", what);
    CHECK_EQ(r->used_len, sizeof(oh) + sizeof(ao));
    CHECK_EQ(oh.len, sizeof(oh) + sizeof(ao));
    CHECK_EQ(oh.error, 0);
    CHECK_EQ(oh.unique, r->unique);
    CHECK_EQ(ao.attr.ino, st.st_ino);
    if (t_failures) {
        fprintf(stderr, "(in %s)\n", what);
    }
}

/*
 * WRITE of @n bytes at @off laid out as: in header split 7/33, write_in
 * split 20/20 with the first 3 data bytes after it, then the data in
 * pieces of 1, 4093, 1 and the rest, in a second allocation (the other
 * memory region when there are two); the reply split 10/14. The daemon may
 * write straight from guest memory: the file must hold the exact bytes.
 */
static void split_write(uint64_t nodeid, uint64_t fh, uint64_t off, uint32_t n,
                        uint8_t seed, const char *path)
{
    int to = vuf_dev_timeout(H.dev);
    uint64_t u = fc_alloc_unique(H.c);
    uint64_t gh = vuf_mem_alloc(H.dev, 4096);
    uint64_t gd = vuf_mem_alloc(H.dev, n);
    uint8_t *h = vuf_mem_ptr(H.dev, gh, 4096), *dat = vuf_mem_ptr(H.dev, gd, n);
    struct fuse_in_header ih = {
        .len = (uint32_t)(sizeof(ih) + sizeof(struct fuse_write_in) + n),
        .opcode = FUSE_WRITE,
        .unique = u,
        .nodeid = nodeid,
    };
    struct fuse_write_in wi = { .fh = fh, .offset = off, .size = n };
    uint32_t hl = (uint32_t)(sizeof(ih) + sizeof(wi));

    CHECK(n > 4096 + 8, "split_write wants more than 4104 bytes");
    memcpy(h, &ih, sizeof(ih));
    memcpy(h + sizeof(ih), &wi, sizeof(wi));
    for (uint32_t i = 0; i < n; i++) {
        dat[i] = (uint8_t)(seed + i * 7);
    }
    /* the first 3 data bytes travel with the write_in */
    memcpy(h + hl, dat, 3);
    memset(h + 2048, 0xee, 64);
    struct vuf_raw_desc d[] = {
        { gh + 0, 7, VRING_DESC_F_NEXT, 1 },
        { gh + 7, 33, VRING_DESC_F_NEXT, 2 },
        { gh + 40, 20, VRING_DESC_F_NEXT, 3 },
        { gh + 60, 20 + 3, VRING_DESC_F_NEXT, 4 },
        { gd + 3, 1, VRING_DESC_F_NEXT, 5 },
        { gd + 4, 4093, VRING_DESC_F_NEXT, 6 },
        { gd + 4097, 1, VRING_DESC_F_NEXT, 7 },
        { gd + 4098, n - 4098, VRING_DESC_F_NEXT, 8 },
        { gh + 2048, 10, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 9 },
        { gh + 2058, 14, VRING_DESC_F_WRITE, 0 },
    };
    fc_req *r;
    CHECK_EQ(fc_submit_raw(H.req, d, 10, 0, u, gh + 2048, &r), 0);
    CHECK_EQ(fc_wait(r, to), 0);
    struct fuse_out_header oh;
    struct fuse_write_out wo;
    memcpy(&oh, h + 2048, sizeof(oh));
    memcpy(&wo, h + 2048 + sizeof(oh), sizeof(wo));
    CHECK_EQ(oh.error, 0);
    CHECK_EQ(r->used_len, sizeof(oh) + sizeof(wo));
    CHECK_EQ(wo.size, n);
    fc_req_free(r);

    uint8_t *back = malloc(n);
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    CHECK_EQ(pread(fd, back, n, (off_t)off), (ssize_t)n);
    close(fd);
    CHECK(!memcmp(back, dat, n), "%s: data written at %llu differs", path,
          (unsigned long long)off);
    free(back);
    vuf_mem_free(H.dev, gd, n);
    vuf_mem_free(H.dev, gh, 4096);
}

int main(int argc, char **argv)
{
    struct vuf_opts o = { .indirect_desc = true, .event_idx = true, .mem_regions = 2 };
    int rc = harness_start(&H, argc, argv, &o);
    if (rc != T_PASS) {
        return rc;
    }
    int to = vuf_dev_timeout(H.dev);

    /* Raw GET_FEATURES / GET_PROTOCOL_FEATURES after start. */
    struct vuf_msg m;
    CHECK_EQ(vuf_msg_send(H.dev, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0,
                          NULL, 0), 0);
    CHECK_EQ(vuf_msg_recv(H.dev, &m, to), 0);
    CHECK_EQ(m.request, VHOST_USER_GET_FEATURES);
    CHECK(m.flags & VHOST_USER_REPLY_MASK, "reply flag, flags 0x%x", m.flags);
    CHECK_EQ(m.size, 8);
    uint64_t f;
    memcpy(&f, m.payload, 8);
    CHECK_EQ(f, vuf_dev_offered_features(H.dev));
    CHECK_EQ(vuf_msg_get_u64(H.dev, VHOST_USER_GET_PROTOCOL_FEATURES, NULL, 0, &f), 0);
    CHECK_EQ(f, vuf_dev_offered_protocol_features(H.dev));

    /* 1. in header split 10/20/10, arg alone, out header 8/8, reply 50/54. */
    uint64_t u = fc_alloc_unique(H.c);
    uint64_t g = build_getattr(u);
    struct vuf_raw_desc d[] = {
        { g + 0, 10, VRING_DESC_F_NEXT, 1 },
        { g + 10, 20, VRING_DESC_F_NEXT, 2 },
        { g + 30, 10, VRING_DESC_F_NEXT, 3 },
        { g + 40, sizeof(struct fuse_getattr_in), VRING_DESC_F_NEXT, 4 },
        { g + 256, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 5 },
        { g + 264, 8, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 6 },
        { g + 272, 50, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 7 },
        { g + 322, 54, VRING_DESC_F_WRITE, 0 },
    };
    fc_req *r;
    CHECK_EQ(fc_submit_raw(H.req, d, 8, 0, u, g + 256, &r), 0);
    CHECK_EQ(fc_wait(r, to), 0);
    check_getattr_reply(r, g, "split header");
    fc_req_free(r);

    /* 2. the same through an indirect table built by hand */
    if (vuf_dev_features(H.dev) & (1ull << VUF_F_INDIRECT_DESC)) {
        u = fc_alloc_unique(H.c);
        g = build_getattr(u);
        uint64_t tg = vuf_mem_alloc(H.dev, 8 * 16);
        struct vring_desc *t = vuf_mem_ptr(H.dev, tg, 8 * 16);
        for (unsigned i = 0; i < 8; i++) {
            t[i].addr = d[i].addr - d[0].addr + g;
            t[i].len = d[i].len;
            t[i].flags = d[i].flags;
            t[i].next = d[i].next;
        }
        struct vuf_raw_desc ind = { tg, 8 * 16, VRING_DESC_F_INDIRECT, 0 };
        CHECK_EQ(fc_submit_raw(H.req, &ind, 1, 0, u, g + 256, &r), 0);
        CHECK_EQ(fc_wait(r, to), 0);
        check_getattr_reply(r, g, "indirect table");
        fc_req_free(r);
    } else {
        fprintf(stderr, "daemon does not offer INDIRECT_DESC: indirect case skipped\n");
    }

    /* 3. whole request in one readable descriptor, whole reply in one */
    struct fuse_attr_out ao;
    struct fuse_getattr_in gi = { 0 };
    struct fc_call c = { .opcode = FUSE_GETATTR, .nodeid = FUSE_ROOT_ID, .arg = &gi,
                         .arg_len = sizeof(gi), .out_len = sizeof(ao), .one_segment = true };
    CHECK_EQ(fc_call_sync(H.req, &c, &ao, sizeof(ao), NULL), 0);

    /* 4. the usual helpers still work on a two-region memory map */
    CHECK_EQ(vuf_mem_nregions(H.dev), 2);
    CHECK_EQ(fc_getattr(H.req, FUSE_ROOT_ID, &ao), 0);

    /* 5. WRITE data scattered over odd-sized descriptors, twice over */
    struct fuse_entry_out e;
    struct fuse_open_out fo;
    char path[400];
    snprintf(path, sizeof(path), "%s/split-write", H.share);
    CHECK_EQ(fc_create(H.req, FUSE_ROOT_ID, "split-write", O_RDWR, 0644, &e, &fo), 0);
    split_write(e.nodeid, fo.fh, 0, 12000, 1, path);
    split_write(e.nodeid, fo.fh, 5000, 70000, 99, path);
    CHECK_EQ(fc_release(H.req, e.nodeid, fo.fh, O_RDWR), 0);

    rc = harness_stop(&H);
    if (t_failures) {
        fprintf(stderr, "%d check(s) failed\n", t_failures);
        return T_FAIL;
    }
    return rc;
}
