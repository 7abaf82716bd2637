/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Split virtqueue, device side: chains pop into the right iovecs, the used
 * ring and notifications follow the spec (EVENT_IDX across the 16-bit
 * wrap), concurrent pushes are serialized, and every malformed chain a
 * hostile guest can build breaks the queue with one log line and -EIO.
 *
 * The "guest" is a memfd mapped as three regions: R0 and R1 contiguous in
 * guest-physical space (but not in the fd, so a split is visible), a gap,
 * then R2.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>
#include <linux/virtio_ring.h>

#include "guest_mem.h"
#include "log.h"
#include "virtqueue.h"

static int failures;
static const char *current = "";

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d [%s]: CHECK failed: %s\n", __FILE__,     \
                    __LINE__, current, #cond);                              \
            failures++;                                                     \
        }                                                                   \
    } while (0)

#define CHECK_EQ(a, b)                                                      \
    do {                                                                    \
        long long _a = (long long)(a), _b = (long long)(b);                 \
        if (_a != _b) {                                                     \
            fprintf(stderr, "%s:%d [%s]: CHECK_EQ failed: %s == %lld, expected %lld\n", \
                    __FILE__, __LINE__, current, #a, _a, _b);               \
            failures++;                                                     \
        }                                                                   \
    } while (0)

#define MiB (1ull << 20)
/* guest-physical layout */
#define R0 0x000000ull          /* 1 MiB, fd offset 0 */
#define R1 0x100000ull          /* 1 MiB, fd offset 2 MiB: contiguous with R0 */
#define GAP 0x200000ull         /* unmapped up to R2 */
#define R2 0x400000ull          /* 1 MiB, fd offset 1 MiB */
#define DESC_GPA (R0 + 0x0)
#define AVAIL_GPA (R0 + 0x10000)
#define USED_GPA (R0 + 0x20000)
#define BUF (R0 + 0x40000)
#define UVA_BASE 0x7f0000000000ull

static int err_lines;
static char last_err[256];   /* written only by single-threaded tests */

static void log_sink(enum vfs_log_level level, const char *msg, void *opaque)
{
    if (level == VFS_LOG_ERR) {
        __atomic_fetch_add(&err_lines, 1, __ATOMIC_RELAXED);
        snprintf(last_err, sizeof(last_err), "%s", msg);
    }
    if (getenv("TEST_VERBOSE"))
        fprintf(stderr, "log: %s\n", msg);
}

static int errs(void)
{
    return __atomic_load_n(&err_lines, __ATOMIC_RELAXED);
}

struct fx {
    struct vfs_mem_table *mem;
    int fd;
    struct vq vq;
    unsigned int num;
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    uint16_t avail_idx;         /* the driver's copy */
};

static struct vq_elem elem;

static void *host(struct fx *f, uint64_t gpa)
{
    void *p = vfs_mem_gpa_to_ptr(f->mem, gpa, 1);

    if (!p) {
        fprintf(stderr, "test bug: gpa 0x%llx unmapped\n", (unsigned long long)gpa);
        abort();
    }
    return p;
}

static void fx_init(struct fx *f, unsigned int num, bool event_idx, bool indirect)
{
    uint64_t dsz, asz, usz;

    memset(f, 0, sizeof(*f));
    f->num = num;
    f->fd = memfd_create("guest", MFD_CLOEXEC);
    if (f->fd < 0) {
        perror("memfd_create");
        exit(77);
    }
    if (ftruncate(f->fd, 3 * MiB) < 0)
        abort();
    f->mem = malloc(sizeof(*f->mem));
    if (!f->mem)
        abort();
    vfs_mem_init(f->mem);
    if (vfs_mem_add(f->mem, R0, MiB, UVA_BASE, 0, f->fd) ||
        vfs_mem_add(f->mem, R1, MiB, UVA_BASE + 4 * MiB, 2 * MiB, f->fd) ||
        vfs_mem_add(f->mem, R2, MiB, UVA_BASE + 8 * MiB, MiB, f->fd)) {
        fprintf(stderr, "cannot build guest memory\n");
        exit(1);
    }

    /* what vhost_user.c does: frontend addresses -> pointers, size-checked */
    vq_ring_sizes(num, event_idx, &dsz, &asz, &usz);
    f->desc = vfs_mem_uva_to_ptr(f->mem, UVA_BASE + DESC_GPA, dsz);
    f->avail = vfs_mem_uva_to_ptr(f->mem, UVA_BASE + AVAIL_GPA, asz);
    f->used = vfs_mem_uva_to_ptr(f->mem, UVA_BASE + USED_GPA, usz);
    if (!f->desc || !f->avail || !f->used)
        abort();

    vq_init(&f->vq);
    f->vq.num = num;
    f->vq.event_idx = event_idx;
    f->vq.indirect = indirect;
    if (vq_set_rings(&f->vq, f->desc, f->avail, f->used))
        abort();
}

static void fx_fini(struct fx *f)
{
    vq_destroy(&f->vq);
    vfs_mem_clear(f->mem);
    free(f->mem);
    close(f->fd);
}

static void set_desc(struct vring_desc *t, unsigned int i, uint64_t addr,
                     uint32_t len, uint16_t flags, uint16_t next)
{
    struct vring_desc d = {
        .addr = htole64(addr), .len = htole32(len),
        .flags = htole16(flags), .next = htole16(next),
    };

    /* memcpy: some tests place tables at unaligned addresses */
    memcpy(&t[i], &d, sizeof(d));
}

/* Driver side: expose @head, then publish the index (release). */
static void avail_add(struct fx *f, uint16_t head)
{
    f->avail->ring[f->avail_idx & (f->num - 1)] = htole16(head);
    f->avail_idx++;
    __atomic_store_n(&f->avail->idx, htole16(f->avail_idx), __ATOMIC_RELEASE);
}

static void set_used_event(struct fx *f, uint16_t v)
{
    f->avail->ring[f->num] = htole16(v);
}

static uint16_t avail_event(struct fx *f)
{
    uint16_t v;

    memcpy(&v, &f->used->ring[f->num], sizeof(v));
    return le16toh(v);
}

static uint64_t eventfd_take(int fd)
{
    eventfd_t v = 0;

    if (eventfd_read(fd, &v) < 0)
        return 0;
    return v;
}

/* Start a test with a fresh default fixture. */
#define BEGIN(f, name, num, ev, ind)                                        \
    do {                                                                    \
        current = name;                                                     \
        fx_init(f, num, ev, ind);                                           \
    } while (0)

/* ------------------------------------------------------------------ */
/* well-formed chains                                                  */

static void test_ring_sizes_and_alignment(void)
{
    struct fx f;
    uint64_t d, a, u;
    uint8_t *p;

    vq_ring_sizes(256, true, &d, &a, &u);
    CHECK_EQ(d, 4096);
    CHECK_EQ(a, 6 + 2 * 256);
    CHECK_EQ(u, 6 + 8 * 256);
    vq_ring_sizes(256, false, &d, &a, &u);
    CHECK_EQ(a, 4 + 2 * 256);
    CHECK_EQ(u, 4 + 8 * 256);
    vq_ring_sizes(VQ_MAX_SIZE, true, &d, &a, &u);
    CHECK_EQ(d, 16ull * VQ_MAX_SIZE);

    BEGIN(&f, "set_rings alignment", 16, false, false);
    p = host(&f, R0);
    CHECK_EQ(vq_set_rings(&f.vq, p + 8, p + 0x1000, p + 0x2000), -EINVAL);
    CHECK_EQ(vq_set_rings(&f.vq, p, p + 0x1001, p + 0x2000), -EINVAL);
    CHECK_EQ(vq_set_rings(&f.vq, p, p + 0x1000, p + 0x2002), -EINVAL);
    CHECK_EQ(vq_set_rings(&f.vq, NULL, p + 0x1000, p + 0x2000), -EINVAL);
    /* a failed call leaves the previous rings in place */
    CHECK(f.vq.desc == f.desc && f.vq.avail == f.avail && f.vq.used == f.used);
    CHECK_EQ(vq_set_rings(&f.vq, p + 16, p + 0x1002, p + 0x2004), 0);
    fx_fini(&f);
}

static void test_simple_chain(void)
{
    struct fx f;

    BEGIN(&f, "simple chain", 16, false, false);
    CHECK(!vq_has_work(&f.vq));
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 0);

    set_desc(f.desc, 5, BUF, 100, 0, 0);
    avail_add(&f, 5);
    CHECK(vq_has_work(&f.vq));
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.head, 5);
    CHECK_EQ(elem.rd_num, 1);
    CHECK_EQ(elem.wr_num, 0);
    CHECK_EQ(elem.rd_len, 100);
    CHECK_EQ(elem.wr_len, 0);
    CHECK(elem.iov[0].iov_base == host(&f, BUF));
    CHECK_EQ(elem.iov[0].iov_len, 100);
    CHECK_EQ(f.vq.last_avail_idx, 1);
    CHECK(!vq_has_work(&f.vq));
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 0);

    /* several chains come out in avail order */
    set_desc(f.desc, 0, BUF + 0x100, 1, 0, 0);
    set_desc(f.desc, 1, BUF + 0x200, 2, 0, 0);
    set_desc(f.desc, 2, BUF + 0x300, 3, 0, 0);
    avail_add(&f, 2);
    avail_add(&f, 0);
    avail_add(&f, 1);
    for (unsigned int i = 0; i < 3; i++) {
        static const uint16_t order[] = { 2, 0, 1 };

        CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
        CHECK_EQ(elem.head, order[i]);
        CHECK_EQ(elem.rd_len, order[i] + 1);
        CHECK(elem.iov[0].iov_base == host(&f, BUF + 0x100 * (order[i] + 1)));
    }
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 0);
    CHECK(!f.vq.broken);
    CHECK_EQ(errs(), 0);
    fx_fini(&f);
}

static void test_readable_writable_split(void)
{
    struct fx f;

    BEGIN(&f, "readable+writable split", 16, false, false);
    set_desc(f.desc, 3, BUF, 10, VRING_DESC_F_NEXT, 5);
    set_desc(f.desc, 5, BUF + 0x100, 20, VRING_DESC_F_NEXT, 1);
    set_desc(f.desc, 1, BUF + 0x200, 30, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 7);
    set_desc(f.desc, 7, R2 + 0x10, 40, VRING_DESC_F_WRITE, 0);
    avail_add(&f, 3);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.head, 3);
    CHECK_EQ(elem.rd_num, 2);
    CHECK_EQ(elem.wr_num, 2);
    CHECK_EQ(elem.rd_len, 30);
    CHECK_EQ(elem.wr_len, 70);
    CHECK(elem.iov[0].iov_base == host(&f, BUF));
    CHECK(elem.iov[1].iov_base == host(&f, BUF + 0x100));
    CHECK(elem.iov[2].iov_base == host(&f, BUF + 0x200));
    CHECK(elem.iov[3].iov_base == host(&f, R2 + 0x10));
    CHECK_EQ(elem.iov[0].iov_len, 10);
    CHECK_EQ(elem.iov[1].iov_len, 20);
    CHECK_EQ(elem.iov[2].iov_len, 30);
    CHECK_EQ(elem.iov[3].iov_len, 40);

    /* writable only */
    set_desc(f.desc, 0, BUF, 4096, VRING_DESC_F_WRITE, 0);
    avail_add(&f, 0);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.rd_num, 0);
    CHECK_EQ(elem.wr_num, 1);
    CHECK_EQ(elem.wr_len, 4096);
    CHECK_EQ(errs(), 0);
    fx_fini(&f);
}

static void test_chain_spanning_contiguous_regions(void)
{
    struct fx f;

    BEGIN(&f, "chain spanning R0|R1", 16, false, false);
    /* the regions are adjacent in gpa but not in our address space */
    CHECK((uint8_t *)host(&f, R1 - 0x10) + 0x10 != (uint8_t *)host(&f, R1));
    set_desc(f.desc, 0, R1 - 0x10, 0x30, VRING_DESC_F_NEXT, 1);
    set_desc(f.desc, 1, R1 - 0x4, 0x8, VRING_DESC_F_WRITE, 0);
    avail_add(&f, 0);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.rd_num, 2);
    CHECK_EQ(elem.wr_num, 2);
    CHECK_EQ(elem.rd_len, 0x30);
    CHECK_EQ(elem.wr_len, 0x8);
    CHECK(elem.iov[0].iov_base == host(&f, R1 - 0x10));
    CHECK_EQ(elem.iov[0].iov_len, 0x10);
    CHECK(elem.iov[1].iov_base == host(&f, R1));
    CHECK_EQ(elem.iov[1].iov_len, 0x20);
    CHECK(elem.iov[2].iov_base == host(&f, R1 - 0x4));
    CHECK_EQ(elem.iov[2].iov_len, 4);
    CHECK(elem.iov[3].iov_base == host(&f, R1));
    CHECK_EQ(elem.iov[3].iov_len, 4);
    /* the last byte of R1 is fine */
    set_desc(f.desc, 2, GAP - 1, 1, 0, 0);
    avail_add(&f, 2);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK(elem.iov[0].iov_base == host(&f, GAP - 1));
    CHECK_EQ(errs(), 0);
    fx_fini(&f);
}

static void test_indirect(void)
{
    struct fx f;
    struct vring_desc *t;

    BEGIN(&f, "indirect table", 16, false, true);
    t = host(&f, R2 + 0x1000);
    set_desc(t, 0, BUF, 8, VRING_DESC_F_NEXT, 2);
    set_desc(t, 2, BUF + 0x100, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    set_desc(t, 1, R1 - 4, 8, VRING_DESC_F_WRITE, 0);
    set_desc(f.desc, 4, R2 + 0x1000, 3 * 16, VRING_DESC_F_INDIRECT, 0);
    avail_add(&f, 4);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.head, 4);
    CHECK_EQ(elem.rd_num, 1);
    CHECK_EQ(elem.wr_num, 3);
    CHECK_EQ(elem.rd_len, 8);
    CHECK_EQ(elem.wr_len, 24);
    CHECK(elem.iov[0].iov_base == host(&f, BUF));
    CHECK(elem.iov[1].iov_base == host(&f, BUF + 0x100));
    CHECK(elem.iov[2].iov_base == host(&f, R1 - 4));
    CHECK(elem.iov[3].iov_base == host(&f, R1));

    /* the WRITE flag on the descriptor pointing at the table is ignored */
    set_desc(f.desc, 6, R2 + 0x1000, 3 * 16,
             VRING_DESC_F_INDIRECT | VRING_DESC_F_WRITE, 0);
    avail_add(&f, 6);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.head, 6);
    CHECK_EQ(elem.rd_num, 1);
    CHECK_EQ(elem.wr_num, 3);

    /* an indirect table as the last element of a direct chain (spec allows) */
    set_desc(t, 8, BUF + 0x800, 32, VRING_DESC_F_WRITE, 0);
    set_desc(f.desc, 0, BUF + 0x400, 12, VRING_DESC_F_NEXT, 1);
    set_desc(f.desc, 1, R2 + 0x1000 + 8 * 16, 16, VRING_DESC_F_INDIRECT, 0);
    avail_add(&f, 0);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.rd_num, 1);
    CHECK_EQ(elem.wr_num, 1);
    CHECK_EQ(elem.rd_len, 12);
    CHECK_EQ(elem.wr_len, 32);
    CHECK(elem.iov[1].iov_base == host(&f, BUF + 0x800));

    /* an unaligned table (spec places no alignment rule on it) */
    t = (struct vring_desc *)((uint8_t *)host(&f, R2 + 0x3000) + 4);
    set_desc(t, 0, BUF, 5, 0, 0);
    set_desc(f.desc, 2, R2 + 0x3004, 16, VRING_DESC_F_INDIRECT, 0);
    avail_add(&f, 2);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.rd_len, 5);

    /* an indirect table longer than the queue, up to VQ_MAX_IOV buffers */
    t = host(&f, R2 + 0x10000);
    for (unsigned int i = 0; i < VQ_MAX_IOV; i++)
        set_desc(t, i, BUF + i, 1,
                 (i + 1 < VQ_MAX_IOV ? VRING_DESC_F_NEXT : 0) |
                 (i >= VQ_MAX_IOV / 2 ? VRING_DESC_F_WRITE : 0), (uint16_t)(i + 1));
    set_desc(f.desc, 3, R2 + 0x10000, VQ_MAX_IOV * 16, VRING_DESC_F_INDIRECT, 0);
    avail_add(&f, 3);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.rd_num, VQ_MAX_IOV / 2);
    CHECK_EQ(elem.wr_num, VQ_MAX_IOV / 2);
    CHECK(elem.iov[VQ_MAX_IOV - 1].iov_base == host(&f, BUF + VQ_MAX_IOV - 1));
    CHECK(!f.vq.broken);
    CHECK_EQ(errs(), 0);
    fx_fini(&f);
}

static void test_zero_length_buffers(void)
{
    struct fx f;

    BEGIN(&f, "zero-length buffers", 16, false, false);
    /* zero-length buffers may point anywhere: they are never touched */
    set_desc(f.desc, 0, GAP + 0x100, 0, VRING_DESC_F_NEXT, 1);
    set_desc(f.desc, 1, BUF, 10, VRING_DESC_F_NEXT, 2);
    set_desc(f.desc, 2, UINT64_MAX, 0, VRING_DESC_F_NEXT | VRING_DESC_F_WRITE, 3);
    set_desc(f.desc, 3, BUF + 0x100, 20, VRING_DESC_F_WRITE, 0);
    avail_add(&f, 0);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.rd_num, 1);
    CHECK_EQ(elem.wr_num, 1);
    CHECK_EQ(elem.rd_len, 10);
    CHECK_EQ(elem.wr_len, 20);
    CHECK(elem.iov[0].iov_base == host(&f, BUF));
    CHECK(elem.iov[1].iov_base == host(&f, BUF + 0x100));

    set_desc(f.desc, 4, 0, 0, 0, 0);
    avail_add(&f, 4);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.head, 4);
    CHECK_EQ(elem.rd_num + elem.wr_num, 0);
    CHECK_EQ(elem.rd_len + elem.wr_len, 0);
    CHECK_EQ(errs(), 0);
    fx_fini(&f);
}

/* A chain using every descriptor once, and a ring with exactly num pending. */
static void test_queue_size_limits(void)
{
    struct fx f;

    BEGIN(&f, "chain of num / num pending", 16, false, false);
    for (unsigned int i = 0; i < 16; i++)
        set_desc(f.desc, i, BUF + 0x10 * i, 0x10,
                 i < 15 ? VRING_DESC_F_NEXT : 0, (uint16_t)(i + 1));
    avail_add(&f, 0);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.rd_num, 16);
    CHECK_EQ(elem.rd_len, 0x100);

    for (unsigned int i = 0; i < 16; i++)
        set_desc(f.desc, i, BUF + 0x10 * i, 0x10, 0, 0);
    for (unsigned int i = 0; i < 16; i++)
        avail_add(&f, (uint16_t)(15 - i));
    for (unsigned int i = 0; i < 16; i++) {
        CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
        CHECK_EQ(elem.head, 15 - i);
    }
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 0);
    CHECK_EQ(errs(), 0);
    fx_fini(&f);
}

/* avail idx and last_avail_idx wrap at 65536 */
static void test_avail_idx_wrap(void)
{
    struct fx f;

    BEGIN(&f, "avail idx wrap", 8, true, false);
    f.avail_idx = 65534;
    f.avail->idx = htole16(65534);
    f.vq.last_avail_idx = 65534;
    f.vq.shadow_avail_idx = 65534;
    for (unsigned int i = 0; i < 4; i++) {
        set_desc(f.desc, i, BUF + i, 1, 0, 0);
        avail_add(&f, (uint16_t)i);
    }
    CHECK_EQ(le16toh(f.avail->idx), 2);
    for (unsigned int i = 0; i < 4; i++) {
        CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
        CHECK_EQ(elem.head, i);
    }
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 0);
    CHECK_EQ(f.vq.last_avail_idx, 2);
    vq_enable_notify(&f.vq);
    CHECK_EQ(avail_event(&f), 2);
    CHECK_EQ(errs(), 0);
    fx_fini(&f);
}

/* last_avail_idx set from outside (SET_VRING_BASE): the stale shadow is not trusted */
static void test_base_set_without_shadow(void)
{
    struct fx f;

    BEGIN(&f, "last_avail_idx set, shadow stale", 16, false, false);
    f.avail_idx = 5;
    f.avail->idx = htole16(5);
    f.avail->ring[5] = htole16(0xffff);    /* garbage, never published */
    f.vq.last_avail_idx = 5;
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 0);
    CHECK(!f.vq.broken);
    set_desc(f.desc, 9, BUF, 3, 0, 0);
    avail_add(&f, 9);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.head, 9);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 0);
    CHECK_EQ(errs(), 0);
    fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* used ring and notifications                                         */

static void test_used_ring_contents(void)
{
    struct fx f;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    BEGIN(&f, "used ring contents", 8, false, false);
    vq_set_call_fd(&f.vq, efd);
    for (unsigned int i = 0; i < 20; i++) {
        uint16_t head = (uint16_t)((i * 3) % 8);
        struct vring_used_elem *e = &f.used->ring[i % 8];

        CHECK(vq_push_notify(&f.vq, head, 1000 + i));
        CHECK_EQ(le16toh(f.used->idx), i + 1);
        CHECK_EQ(le32toh(e->id), head);
        CHECK_EQ(le32toh(e->len), 1000 + i);
    }
    CHECK_EQ(eventfd_take(efd), 20);

    /* used idx wraps at 65536; ring positions follow idx mod num */
    f.vq.used_idx = 65534;
    f.used->idx = htole16(65534);
    vq_push_notify(&f.vq, 1, 11);
    vq_push_notify(&f.vq, 2, 22);
    vq_push_notify(&f.vq, 3, 33);
    CHECK_EQ(le16toh(f.used->idx), 1);
    CHECK_EQ(le32toh(f.used->ring[6].id), 1);
    CHECK_EQ(le32toh(f.used->ring[7].id), 2);
    CHECK_EQ(le32toh(f.used->ring[0].id), 3);
    CHECK_EQ(le32toh(f.used->ring[0].len), 33);

    /* a head the device never popped is not written (device-layer bug) */
    {
        int before = errs();

        vq_push_notify(&f.vq, 8, 1);
        CHECK_EQ(le16toh(f.used->idx), 1);
        CHECK(f.vq.broken);
        CHECK_EQ(errs() - before, 1);
    }
    fx_fini(&f);   /* closes efd */
}

static void test_need_event_arithmetic(void)
{
    static const struct { uint16_t ev, new_idx, old; bool want; } cases[] = {
        { 0, 1, 0, true },
        { 0, 2, 1, false },          /* already past the event */
        { 1, 2, 0, true },
        { 4, 5, 0, true },
        { 5, 5, 0, false },          /* event not reached yet */
        { 9, 7, 7, false },          /* nothing new */
        { 7, 7, 7, false },
        /* across the 16-bit wrap */
        { 65535, 0, 65534, true },
        { 65535, 0, 65535, true },
        { 65534, 0, 65535, false },
        { 0, 1, 65535, true },
        { 65535, 1, 65535, true },
        { 1, 1, 65535, false },
        { 65535, 2, 65530, true },
        { 65529, 2, 65530, false },
        { 2, 2, 65530, false },
        { 1, 2, 65530, true },
        { 65533, 65535, 65533, true },
        { 65535, 65535, 65533, false },
    };

    current = "vq_need_event";
    for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        bool got = vq_need_event(cases[i].ev, cases[i].new_idx, cases[i].old);

        if (got != cases[i].want) {
            fprintf(stderr, "vq_need_event(%u, %u, %u) = %d, expected %d\n",
                    cases[i].ev, cases[i].new_idx, cases[i].old, got,
                    cases[i].want);
            failures++;
        }
    }
}

static void test_event_idx_notifications(void)
{
    struct fx f;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    BEGIN(&f, "EVENT_IDX notifications", 8, true, false);
    vq_set_call_fd(&f.vq, efd);
    /* the driver's NO_INTERRUPT flag means nothing with EVENT_IDX */
    f.avail->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);

    /* the first notification decision has no reference: always notify */
    set_used_event(&f, 100);
    CHECK(vq_push_notify(&f.vq, 0, 0));
    CHECK_EQ(eventfd_take(efd), 1);
    CHECK(!vq_push_notify(&f.vq, 1, 0));       /* used 2, event 100 */
    CHECK_EQ(eventfd_take(efd), 0);
    set_used_event(&f, 2);
    CHECK(vq_push_notify(&f.vq, 2, 0));        /* used 2 -> 3 crosses 2 */
    CHECK_EQ(eventfd_take(efd), 1);
    CHECK(!vq_push_notify(&f.vq, 3, 0));       /* 3 -> 4: already past */
    CHECK_EQ(eventfd_take(efd), 0);

    /* near the wrap */
    f.vq.used_idx = 65533;
    f.used->idx = htole16(65533);
    f.vq.signalled_used = 65533;
    f.vq.signalled_used_valid = true;
    set_used_event(&f, 65534);
    CHECK(!vq_push_notify(&f.vq, 0, 0));       /* 65533 -> 65534 */
    CHECK(vq_push_notify(&f.vq, 1, 0));        /* 65534 -> 65535 */
    CHECK_EQ(eventfd_take(efd), 1);
    set_used_event(&f, 65535);
    CHECK(vq_push_notify(&f.vq, 2, 0));        /* 65535 -> 0 */
    CHECK_EQ(le16toh(f.used->idx), 0);
    set_used_event(&f, 0);
    CHECK(vq_push_notify(&f.vq, 3, 0));        /* 0 -> 1 */
    set_used_event(&f, 5);
    CHECK(!vq_push_notify(&f.vq, 4, 0));       /* 1 -> 2 */
    CHECK_EQ(eventfd_take(efd), 2);
    CHECK_EQ(f.vq.signalled_used, 2);

    /* a batch: several pushes, one decision over the whole window */
    pthread_mutex_lock(&f.vq.push_lock);
    vq_push_locked(&f.vq, 5, 0);
    vq_push_locked(&f.vq, 6, 0);
    vq_push_locked(&f.vq, 7, 0);                /* 2 -> 5 */
    set_used_event(&f, 3);
    CHECK(vq_notify_locked(&f.vq));
    pthread_mutex_unlock(&f.vq.push_lock);
    CHECK_EQ(eventfd_take(efd), 1);
    pthread_mutex_lock(&f.vq.push_lock);
    vq_push_locked(&f.vq, 0, 0);
    vq_push_locked(&f.vq, 1, 0);                /* 5 -> 7 */
    set_used_event(&f, 7);
    CHECK(!vq_notify_locked(&f.vq));
    CHECK(!vq_notify_locked(&f.vq));            /* nothing new: no */
    pthread_mutex_unlock(&f.vq.push_lock);
    CHECK_EQ(eventfd_take(efd), 0);

    /*
     * 40000 pushes without a decision: the window is too wide for 16-bit
     * arithmetic, so the next decision must notify even though used_event
     * (just behind signalled_used) says "already past".
     */
    pthread_mutex_lock(&f.vq.push_lock);
    {
        uint16_t s = f.vq.signalled_used;

        for (unsigned int i = 0; i < 40000; i++)
            vq_push_locked(&f.vq, (uint16_t)(i % 8), 0);
        set_used_event(&f, (uint16_t)(s - 1));
        CHECK(!vq_need_event((uint16_t)(s - 1), f.vq.used_idx, s));
        CHECK(vq_notify_locked(&f.vq));
    }
    pthread_mutex_unlock(&f.vq.push_lock);
    CHECK_EQ(eventfd_take(efd), 1);

    /* needed, but no call fd: nothing is sent */
    vq_set_call_fd(&f.vq, -1);
    f.vq.signalled_used_valid = false;
    CHECK(!vq_push_notify(&f.vq, 0, 0));
    fx_fini(&f);
}

static void test_no_interrupt_flag(void)
{
    struct fx f;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    BEGIN(&f, "VRING_AVAIL_F_NO_INTERRUPT", 8, false, false);
    vq_set_call_fd(&f.vq, efd);
    f.avail->flags = htole16(VRING_AVAIL_F_NO_INTERRUPT);
    CHECK(!vq_push_notify(&f.vq, 0, 0));
    CHECK(!vq_push_notify(&f.vq, 1, 0));
    CHECK_EQ(eventfd_take(efd), 0);
    CHECK_EQ(le16toh(f.used->idx), 2);       /* pushed all the same */
    f.avail->flags = 0;
    CHECK(vq_push_notify(&f.vq, 2, 0));
    CHECK_EQ(eventfd_take(efd), 1);
    /* without EVENT_IDX used_event is not consulted */
    set_used_event(&f, 1000);
    CHECK(vq_push_notify(&f.vq, 3, 0));
    CHECK_EQ(eventfd_take(efd), 1);

    /* replacing the call fd: new pushes signal the new one */
    {
        int efd2 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

        vq_set_call_fd(&f.vq, efd2);
        CHECK(fcntl(efd, F_GETFD) < 0);      /* the old one was closed */
        CHECK(vq_push_notify(&f.vq, 4, 0));
        CHECK_EQ(eventfd_take(efd2), 1);
    }
    /* a call fd that cannot be written: reported as not sent, no crash */
    {
        int p[2];

        if (pipe(p) == 0) {
            close(p[1]);
            vq_set_call_fd(&f.vq, p[0]);
            CHECK(!vq_push_notify(&f.vq, 5, 0));
            CHECK_EQ(le16toh(f.used->idx), 6);
        }
    }
    fx_fini(&f);
}

/* vq_notify_batch_locked: one decision, one counted outcome per push */
static void test_batch_notify_counters(void)
{
    struct fx f;
    struct vq_counters c = { 0 };
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    BEGIN(&f, "batched notification counters", 8, true, false);
    vq_set_call_fd(&f.vq, efd);
    vq_set_counters(&f.vq, &c);
    set_used_event(&f, 0);
    pthread_mutex_lock(&f.vq.push_lock);
    vq_push_locked(&f.vq, 0, 0);
    vq_push_locked(&f.vq, 1, 0);
    vq_push_locked(&f.vq, 2, 0);                /* 0 -> 3 crosses 0 */
    CHECK(vq_notify_batch_locked(&f.vq, 3));
    pthread_mutex_unlock(&f.vq.push_lock);
    CHECK_EQ(eventfd_take(efd), 1);
    CHECK_EQ(c.notify_sent, 1);
    CHECK_EQ(c.notify_suppressed, 2);

    set_used_event(&f, 100);                     /* not crossed: none sent */
    pthread_mutex_lock(&f.vq.push_lock);
    vq_push_locked(&f.vq, 3, 0);
    vq_push_locked(&f.vq, 4, 0);
    CHECK(!vq_notify_batch_locked(&f.vq, 2));
    pthread_mutex_unlock(&f.vq.push_lock);
    CHECK_EQ(eventfd_take(efd), 0);
    CHECK_EQ(c.notify_sent, 1);
    CHECK_EQ(c.notify_suppressed, 4);           /* sent + suppressed = 5 pushes */

    /* a batch of one is vq_notify_locked() */
    set_used_event(&f, 5);
    pthread_mutex_lock(&f.vq.push_lock);
    vq_push_locked(&f.vq, 5, 0);
    CHECK(vq_notify_batch_locked(&f.vq, 1));
    pthread_mutex_unlock(&f.vq.push_lock);
    CHECK_EQ(c.notify_sent, 2);
    CHECK_EQ(c.notify_suppressed, 4);
    vq_set_counters(&f.vq, NULL);
    fx_fini(&f);
}

static void test_notify_enable_disable(void)
{
    struct fx f;

    BEGIN(&f, "avail_event via vq_enable_notify", 8, true, false);
    for (unsigned int i = 0; i < 3; i++) {
        set_desc(f.desc, i, BUF, 1, 0, 0);
        avail_add(&f, (uint16_t)i);
    }
    vq_disable_notify(&f.vq);
    CHECK_EQ(le16toh(f.used->flags), 0);     /* EVENT_IDX: no flag */
    for (unsigned int i = 0; i < 3; i++)
        CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    vq_enable_notify(&f.vq);
    CHECK_EQ(avail_event(&f), 3);
    CHECK(!vq_has_work(&f.vq));
    avail_add(&f, 0);
    avail_add(&f, 1);
    /* the lost-wakeup check the queue thread makes after enabling */
    CHECK(vq_has_work(&f.vq));
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    vq_disable_notify(&f.vq);
    CHECK_EQ(avail_event(&f), 3);            /* left behind: suppresses */
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    vq_enable_notify(&f.vq);
    CHECK_EQ(avail_event(&f), 5);
    /* entries still pending: avail_event is the next one to pop, not avail idx */
    avail_add(&f, 0);
    avail_add(&f, 1);
    avail_add(&f, 2);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    vq_enable_notify(&f.vq);
    CHECK_EQ(avail_event(&f), 6);
    fx_fini(&f);

    BEGIN(&f, "USED_F_NO_NOTIFY without EVENT_IDX", 8, false, false);
    {
        uint16_t v = htole16(0xabcd);

        memcpy(&f.used->ring[8], &v, sizeof(v));
    }
    vq_disable_notify(&f.vq);
    CHECK_EQ(le16toh(f.used->flags), VRING_USED_F_NO_NOTIFY);
    vq_enable_notify(&f.vq);
    CHECK_EQ(le16toh(f.used->flags), 0);
    vq_disable_notify(&f.vq);
    CHECK_EQ(le16toh(f.used->flags), VRING_USED_F_NO_NOTIFY);
    CHECK_EQ(avail_event(&f), 0xabcd);       /* not ours to write */
    fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* malformed chains                                                    */

/*
 * Pop must fail with -EIO, mark the queue broken with exactly one error
 * line, and stay broken even once the guest repairs the ring.
 */
static void expect_broken(struct fx *f, int line)
{
    int before = errs();
    int ret = vq_pop(&f->vq, f->mem, &elem);

    if (ret != -EIO || !f->vq.broken || errs() - before != 1) {
        fprintf(stderr, "%s:%d [%s]: expected broken queue: pop=%d broken=%d "
                "error lines=%d\n", __FILE__, line, current, ret, f->vq.broken,
                errs() - before);
        failures++;
    }
    /* a well-formed ring from here on */
    for (unsigned int i = 0; i < f->num; i++)
        set_desc(f->desc, i, BUF, 1, 0, 0);
    f->avail->idx = htole16(f->vq.last_avail_idx + 1);
    f->avail->ring[f->vq.last_avail_idx & (f->num - 1)] = 0;
    ret = vq_pop(&f->vq, f->mem, &elem);
    if (ret != -EIO || vq_has_work(&f->vq) || errs() - before != 1) {
        fprintf(stderr, "%s:%d [%s]: queue did not stay broken: pop=%d\n",
                __FILE__, line, current, ret);
        failures++;
    }
}

#define EXPECT_BROKEN(f) expect_broken(f, __LINE__)

/* Build a malformed chain with head 0; @setup gets the fixture. */
typedef void (*setup_fn)(struct fx *f);

static struct vring_desc *table_at(struct fx *f, uint64_t gpa)
{
    return host(f, gpa);
}

static void bad_addr_outside(struct fx *f)
{
    set_desc(f->desc, 0, 0x10000000, 16, 0, 0);
}

static void bad_addr_in_gap(struct fx *f)
{
    set_desc(f->desc, 0, GAP + 0x100, 16, 0, 0);
}

static void bad_straddle_gap(struct fx *f)
{
    set_desc(f->desc, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
    set_desc(f->desc, 1, GAP - 8, 16, VRING_DESC_F_WRITE, 0);
}

static void bad_straddle_end(struct fx *f)
{
    set_desc(f->desc, 0, R2 + MiB - 8, 9, 0, 0);
}

static void bad_writable_outside(struct fx *f)
{
    set_desc(f->desc, 0, R2 - 0x1000, 16, VRING_DESC_F_WRITE, 0);
}

static void bad_loop(struct fx *f)
{
    set_desc(f->desc, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
    set_desc(f->desc, 1, BUF, 16, VRING_DESC_F_NEXT, 0);
}

static void bad_self_loop_zero_len(struct fx *f)
{
    /* zero-length: no iovec ever fills up, only the visit count stops it */
    set_desc(f->desc, 0, BUF, 0, VRING_DESC_F_NEXT, 0);
}

static void bad_longer_than_queue(struct fx *f)
{
    for (unsigned int i = 0; i < f->num; i++)
        set_desc(f->desc, i, BUF, 1, VRING_DESC_F_NEXT, (uint16_t)((i + 1) % f->num));
}

static void bad_next_out_of_range(struct fx *f)
{
    set_desc(f->desc, 0, BUF, 16, VRING_DESC_F_NEXT, (uint16_t)f->num);
}

static void bad_next_ffff(struct fx *f)
{
    set_desc(f->desc, 0, BUF, 16, VRING_DESC_F_NEXT, 0xffff);
}

static void bad_writable_before_readable(struct fx *f)
{
    set_desc(f->desc, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
    set_desc(f->desc, 1, BUF, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 2);
    set_desc(f->desc, 2, BUF, 16, 0, 0);
}

static void bad_writable_before_zero_len_readable(struct fx *f)
{
    set_desc(f->desc, 0, BUF, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    set_desc(f->desc, 1, BUF, 0, 0, 0);
}

static void bad_len_wraps(struct fx *f)
{
    set_desc(f->desc, 0, UINT64_MAX - 10, 100, 0, 0);
}

static void bad_len_wraps_into_memory(struct fx *f)
{
    /* addr + len wraps to exactly BUF + 0x10: inside memory if unchecked */
    set_desc(f->desc, 0, UINT64_MAX - 0xfff, 0x1000 + BUF + 0x10, 0, 0);
}

static void bad_len_huge(struct fx *f)
{
    set_desc(f->desc, 0, BUF, 0xffffffff, 0, 0);
}

static void bad_indirect_not_negotiated(struct fx *f)
{
    f->vq.indirect = false;
    set_desc(table_at(f, R2), 0, BUF, 16, 0, 0);
    set_desc(f->desc, 0, R2, 16, VRING_DESC_F_INDIRECT, 0);
}

static void bad_indirect_in_indirect(struct fx *f)
{
    struct vring_desc *t = table_at(f, R2), *t2 = table_at(f, R2 + 0x100);

    set_desc(t2, 0, BUF, 16, 0, 0);
    set_desc(t, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
    set_desc(t, 1, R2 + 0x100, 16, VRING_DESC_F_INDIRECT, 0);
    set_desc(f->desc, 0, R2, 32, VRING_DESC_F_INDIRECT, 0);
}

static void bad_indirect_with_next(struct fx *f)
{
    set_desc(table_at(f, R2), 0, BUF, 16, 0, 0);
    set_desc(f->desc, 0, R2, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1);
    set_desc(f->desc, 1, BUF, 16, VRING_DESC_F_WRITE, 0);
}

static void bad_indirect_len_zero(struct fx *f)
{
    set_desc(f->desc, 0, R2, 0, VRING_DESC_F_INDIRECT, 0);
}

static void bad_indirect_len_not_multiple(struct fx *f)
{
    set_desc(table_at(f, R2), 0, BUF, 16, 0, 0);
    set_desc(f->desc, 0, R2, 24, VRING_DESC_F_INDIRECT, 0);
}

static void bad_indirect_len_short(struct fx *f)
{
    set_desc(f->desc, 0, R2, 8, VRING_DESC_F_INDIRECT, 0);
}

static void bad_indirect_outside(struct fx *f)
{
    set_desc(f->desc, 0, GAP, 32, VRING_DESC_F_INDIRECT, 0);
}

static void bad_indirect_straddles_regions(struct fx *f)
{
    /* R0|R1 are contiguous in gpa, but a table must sit in one region */
    struct vring_desc *a = table_at(f, R1 - 16), *b = table_at(f, R1);

    set_desc(a, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
    set_desc(b, 0, BUF, 16, 0, 0);
    set_desc(f->desc, 0, R1 - 16, 32, VRING_DESC_F_INDIRECT, 0);
}

static void bad_indirect_addr_wraps(struct fx *f)
{
    set_desc(f->desc, 0, UINT64_MAX - 15, 32, VRING_DESC_F_INDIRECT, 0);
}

static void bad_indirect_next_out_of_range(struct fx *f)
{
    struct vring_desc *t = table_at(f, R2);

    set_desc(t, 0, BUF, 16, VRING_DESC_F_NEXT, 2);
    set_desc(t, 1, BUF, 16, 0, 0);
    set_desc(t, 2, BUF, 16, 0, 0);      /* exists in memory, not in table */
    set_desc(f->desc, 0, R2, 32, VRING_DESC_F_INDIRECT, 0);
}

static void bad_indirect_loop(struct fx *f)
{
    struct vring_desc *t = table_at(f, R2);

    set_desc(t, 0, BUF, 0, VRING_DESC_F_NEXT, 1);
    set_desc(t, 1, BUF, 0, VRING_DESC_F_NEXT, 0);
    set_desc(f->desc, 0, R2, 32, VRING_DESC_F_INDIRECT, 0);
}

static void bad_indirect_buffer_outside(struct fx *f)
{
    struct vring_desc *t = table_at(f, R2);

    set_desc(t, 0, BUF, 16, VRING_DESC_F_NEXT, 1);
    set_desc(t, 1, GAP + 0x20, 16, VRING_DESC_F_WRITE, 0);
    set_desc(f->desc, 0, R2, 32, VRING_DESC_F_INDIRECT, 0);
}

static void bad_indirect_writable_before_readable(struct fx *f)
{
    struct vring_desc *t = table_at(f, R2);

    set_desc(t, 0, BUF, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    set_desc(t, 1, BUF, 16, 0, 0);
    set_desc(f->desc, 0, R2, 32, VRING_DESC_F_INDIRECT, 0);
}

static void bad_direct_writable_then_indirect_readable(struct fx *f)
{
    set_desc(table_at(f, R2), 0, BUF, 16, 0, 0);
    set_desc(f->desc, 0, BUF, 16, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1);
    set_desc(f->desc, 1, R2, 16, VRING_DESC_F_INDIRECT, 0);
}

static void fill_indirect(struct fx *f, unsigned int n, uint32_t len)
{
    struct vring_desc *t = table_at(f, R2 + 0x10000);

    for (unsigned int i = 0; i < n; i++)
        set_desc(t, i, BUF + i, len, i + 1 < n ? VRING_DESC_F_NEXT : 0,
                 (uint16_t)(i + 1));
    set_desc(f->desc, 0, R2 + 0x10000, n * 16, VRING_DESC_F_INDIRECT, 0);
}

static void bad_too_many_buffers(struct fx *f)
{
    fill_indirect(f, VQ_MAX_IOV + 1, 1);
}

static void bad_too_many_zero_len(struct fx *f)
{
    fill_indirect(f, VQ_MAX_IOV + 1, 0);
}

static void bad_too_many_after_split(struct fx *f)
{
    /* VQ_MAX_IOV descriptors, but one spans R0|R1: one iovec too many */
    struct vring_desc *t = table_at(f, R2 + 0x10000);

    fill_indirect(f, VQ_MAX_IOV, 1);
    set_desc(t, 7, R1 - 1, 2, VRING_DESC_F_NEXT, 8);
}

static void bad_too_many_zero_len_and_split(struct fx *f)
{
    /* a zero-length buffer still costs a slot: 1 + 1022 + 2 iovecs */
    struct vring_desc *t = table_at(f, R2 + 0x10000);

    fill_indirect(f, VQ_MAX_IOV, 1);
    set_desc(t, 0, BUF, 0, VRING_DESC_F_NEXT, 1);
    set_desc(t, VQ_MAX_IOV - 1, R1 - 1, 2, 0, 0);
}

static void bad_head_out_of_range(struct fx *f)
{
    set_desc(f->desc, 0, BUF, 16, 0, 0);
    f->avail->ring[0] = htole16((uint16_t)f->num);
}

static void bad_head_ffff(struct fx *f)
{
    f->avail->ring[0] = htole16(0xffff);
}

static void bad_avail_jump(struct fx *f)
{
    set_desc(f->desc, 0, BUF, 16, 0, 0);
    f->avail->idx = htole16((uint16_t)(f->num + 1));
}

static void bad_avail_backwards(struct fx *f)
{
    set_desc(f->desc, 0, BUF, 16, 0, 0);
    f->avail->idx = htole16(0xffff);
}

static const struct {
    const char *name;
    setup_fn setup;
    bool sets_avail_idx;   /* the case publishes avail->idx itself */
    const char *reason;    /* if set, the log line must mention it */
} bad_cases[] = {
    { "address outside memory", bad_addr_outside, false, NULL },
    { "address in the gap between regions", bad_addr_in_gap, false, NULL },
    { "buffer straddling the gap", bad_straddle_gap, false, NULL },
    { "buffer straddling the end of memory", bad_straddle_end, false, NULL },
    { "writable buffer outside memory", bad_writable_outside, false, NULL },
    { "loop A->B->A", bad_loop, false, "loop" },
    { "zero-length self loop", bad_self_loop_zero_len, false, "loop" },
    { "chain longer than the queue", bad_longer_than_queue, false, "loop" },
    { "next == num", bad_next_out_of_range, false, NULL },
    { "next == 0xffff", bad_next_ffff, false, NULL },
    { "writable before readable", bad_writable_before_readable, false, NULL },
    { "writable before zero-length readable", bad_writable_before_zero_len_readable, false, NULL },
    { "addr + len wraps", bad_len_wraps, false, NULL },
    { "addr + len wraps into memory", bad_len_wraps_into_memory, false, NULL },
    { "len 4 GiB - 1", bad_len_huge, false, NULL },
    { "indirect not negotiated", bad_indirect_not_negotiated, false, NULL },
    { "indirect in indirect", bad_indirect_in_indirect, false, NULL },
    { "indirect with NEXT", bad_indirect_with_next, false, NULL },
    { "indirect table len 0", bad_indirect_len_zero, false, NULL },
    { "indirect table len 24", bad_indirect_len_not_multiple, false, NULL },
    { "indirect table len 8", bad_indirect_len_short, false, NULL },
    { "indirect table outside memory", bad_indirect_outside, false, NULL },
    { "indirect table straddling regions", bad_indirect_straddles_regions, false, NULL },
    { "indirect table address wraps", bad_indirect_addr_wraps, false, NULL },
    { "indirect next out of table", bad_indirect_next_out_of_range, false, NULL },
    { "indirect loop", bad_indirect_loop, false, "loop" },
    { "indirect buffer outside memory", bad_indirect_buffer_outside, false, NULL },
    { "indirect writable before readable", bad_indirect_writable_before_readable, false, NULL },
    { "direct writable, then indirect readable", bad_direct_writable_then_indirect_readable, false, NULL },
    { "VQ_MAX_IOV + 1 buffers", bad_too_many_buffers, false, NULL },
    { "VQ_MAX_IOV + 1 zero-length buffers", bad_too_many_zero_len, false, NULL },
    { "VQ_MAX_IOV buffers + 1 region split", bad_too_many_after_split, false, NULL },
    { "zero-length buffer + region split over VQ_MAX_IOV", bad_too_many_zero_len_and_split, false, NULL },
    { "head == num", bad_head_out_of_range, false, NULL },
    { "head == 0xffff", bad_head_ffff, false, NULL },
    { "avail idx num + 1 ahead", bad_avail_jump, true, NULL },
    { "avail idx moved backwards", bad_avail_backwards, true, NULL },
};

static void test_malformed_chains(void)
{
    for (unsigned int i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        struct fx f;

        BEGIN(&f, bad_cases[i].name, 16, true, true);
        if (!bad_cases[i].sets_avail_idx) {
            f.avail->ring[0] = 0;
            f.avail->idx = htole16(1);
        }
        bad_cases[i].setup(&f);
        last_err[0] = 0;
        EXPECT_BROKEN(&f);
        if (bad_cases[i].reason && !strstr(last_err, bad_cases[i].reason)) {
            fprintf(stderr, "[%s] log line \"%s\" does not mention \"%s\"\n",
                    current, last_err, bad_cases[i].reason);
            failures++;
        }
        fx_fini(&f);
    }
}

/* A good chain pops, the next bad one breaks the queue, nothing more pops. */
static void test_good_then_bad(void)
{
    struct fx f;

    BEGIN(&f, "good then bad", 16, false, false);
    set_desc(f.desc, 0, BUF, 16, 0, 0);
    set_desc(f.desc, 1, GAP, 16, 0, 0);
    set_desc(f.desc, 2, BUF, 16, 0, 0);
    avail_add(&f, 0);
    avail_add(&f, 1);
    avail_add(&f, 2);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), -EIO);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), -EIO);
    CHECK(!vq_has_work(&f.vq));
    CHECK_EQ(f.vq.last_avail_idx, 1);

    /* only the first reason is logged */
    {
        int before = errs();

        vq_mark_broken(&f.vq, "second reason");
        CHECK_EQ(errs(), before);
    }

    /* pushing what was popped before the break still works */
    CHECK(vq_push_notify(&f.vq, 0, 5) == false);   /* no call fd */
    CHECK_EQ(le16toh(f.used->idx), 1);

    /* reset clears broken; a reconfigured ring works again */
    vq_reset(&f.vq);
    CHECK(!f.vq.broken);
    CHECK_EQ(f.vq.last_avail_idx, 0);
    CHECK_EQ(f.vq.used_idx, 0);
    CHECK(f.vq.desc == NULL);
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), -EIO);  /* unconfigured */
    vq_reset(&f.vq);
    f.vq.num = 16;
    CHECK_EQ(vq_set_rings(&f.vq, f.desc, f.avail, f.used), 0);
    f.vq.last_avail_idx = 2;
    f.vq.shadow_avail_idx = 2;
    f.vq.used_idx = 1;
    CHECK_EQ(vq_pop(&f.vq, f.mem, &elem), 1);
    CHECK_EQ(elem.head, 2);
    fx_fini(&f);
}

/* ------------------------------------------------------------------ */
/* concurrency                                                         */

#define PUSHERS 4
#define CONC_NUM 1024u

struct pusher {
    struct fx *f;
    pthread_barrier_t *go;
    unsigned int id;
    unsigned int reps;
    unsigned int notified;
};

static void *pusher_thread(void *opaque)
{
    struct pusher *p = opaque;

    /* start together so the pushes really interleave */
    pthread_barrier_wait(p->go);

    for (unsigned int rep = 0; rep < p->reps; rep++)
        for (unsigned int head = p->id; head < CONC_NUM; head += PUSHERS)
            if (vq_push_notify(&p->f->vq, (uint16_t)head, head * 7 + 1))
                p->notified++;
    return NULL;
}

/*
 * @reps == 1: every head exactly once, so the used ring must hold each id
 * once; @reps > 1: a lost or doubled used_idx update shows in the count.
 */
static void run_concurrent_pushes(bool event_idx, unsigned int reps)
{
    struct fx f;
    pthread_t th[PUSHERS];
    pthread_barrier_t go;
    struct pusher p[PUSHERS];
    unsigned char seen[CONC_NUM] = { 0 };
    unsigned int notified = 0;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);

    BEGIN(&f, event_idx ? "concurrent pushes, EVENT_IDX" : "concurrent pushes",
          CONC_NUM, event_idx, false);
    vq_set_call_fd(&f.vq, efd);
    set_used_event(&f, 100);
    pthread_barrier_init(&go, NULL, PUSHERS);
    for (unsigned int i = 0; i < PUSHERS; i++) {
        p[i] = (struct pusher){ .f = &f, .go = &go, .id = i, .reps = reps };
        if (pthread_create(&th[i], NULL, pusher_thread, &p[i]) != 0)
            abort();
    }
    for (unsigned int i = 0; i < PUSHERS; i++) {
        pthread_join(th[i], NULL);
        notified += p[i].notified;
    }
    pthread_barrier_destroy(&go);

    CHECK_EQ(le16toh(f.used->idx), (uint16_t)(CONC_NUM * reps));
    CHECK_EQ(f.vq.used_idx, (uint16_t)(CONC_NUM * reps));
    for (unsigned int i = 0; i < CONC_NUM && reps == 1; i++) {
        uint32_t id = le32toh(f.used->ring[i].id);

        if (id >= CONC_NUM || seen[id] ||
            le32toh(f.used->ring[i].len) != id * 7 + 1) {
            fprintf(stderr, "[%s] used slot %u: id %u len %u\n", current, i, id,
                    le32toh(f.used->ring[i].len));
            failures++;
            break;
        }
        seen[id] = 1;
    }
    /*
     * Each push+decision is atomic under push_lock, so the decisions see
     * windows [k, k+1): without EVENT_IDX every push notifies; with it,
     * only the first (no reference yet) and the one crossing used_event.
     */
    CHECK_EQ(notified, event_idx ? 2 : CONC_NUM * reps);
    CHECK_EQ(eventfd_take(efd), notified);
    fx_fini(&f);
}

static void test_concurrent_pushes(void)
{
    for (unsigned int round = 0; round < 10 && !failures; round++) {
        run_concurrent_pushes(false, 1);
        run_concurrent_pushes(true, 1);
    }
    run_concurrent_pushes(false, 32);
    run_concurrent_pushes(true, 32);
}

#if !defined(__SANITIZE_THREAD__)
/*
 * The guest rewrites a descriptor while we pop it. Whatever we pop must be
 * self-consistent (lengths match the iovecs, everything inside memory):
 * the descriptor is read once. This races by design, so not under TSan.
 */
struct flipper {
    struct vring_desc *d;
    int stop;
};

static void *flipper_thread(void *opaque)
{
    struct flipper *fl = opaque;
    unsigned int n = 0;

    while (!__atomic_load_n(&fl->stop, __ATOMIC_RELAXED)) {
        __atomic_store_n(&fl->d->len, htole32(n & 1 ? 0x2000 : 0x10), __ATOMIC_RELAXED);
        __atomic_store_n(&fl->d->flags, htole16(n & 2 ? VRING_DESC_F_WRITE : 0),
                         __ATOMIC_RELAXED);
        n++;
    }
    return NULL;
}

static void test_descriptor_changes_under_pop(void)
{
    struct fx f;
    struct flipper fl;
    pthread_t th;

    BEGIN(&f, "descriptor rewritten during pop", 16, false, false);
    set_desc(f.desc, 0, R1 - 0x20, 0x10, 0, 0);
    fl = (struct flipper){ .d = &f.desc[0] };
    if (pthread_create(&th, NULL, flipper_thread, &fl) != 0)
        abort();
    for (unsigned int i = 0; i < 100000; i++) {
        uint64_t sum = 0, len;
        unsigned int n;

        avail_add(&f, 0);
        if (vq_pop(&f.vq, f.mem, &elem) != 1) {
            CHECK(!"pop failed");
            break;
        }
        n = elem.rd_num + elem.wr_num;
        len = elem.rd_len + elem.wr_len;
        for (unsigned int j = 0; j < n; j++)
            sum += elem.iov[j].iov_len;
        if (sum != len || (len != 0x10 && len != 0x2000) ||
            n != (len == 0x10 ? 1u : 2u) || (elem.rd_num && elem.wr_num) ||
            elem.iov[0].iov_base != host(&f, R1 - 0x20)) {
            fprintf(stderr, "inconsistent element: rd %u/%llu wr %u/%llu sum %llu\n",
                    elem.rd_num, (unsigned long long)elem.rd_len, elem.wr_num,
                    (unsigned long long)elem.wr_len, (unsigned long long)sum);
            failures++;
            break;
        }
    }
    __atomic_store_n(&fl.stop, 1, __ATOMIC_RELAXED);
    pthread_join(th, NULL);
    fx_fini(&f);
}
#endif

int main(void)
{
    vfs_log_set_sink(log_sink, NULL);

    test_ring_sizes_and_alignment();
    test_simple_chain();
    test_readable_writable_split();
    test_chain_spanning_contiguous_regions();
    test_indirect();
    test_zero_length_buffers();
    test_queue_size_limits();
    test_avail_idx_wrap();
    test_base_set_without_shadow();
    test_used_ring_contents();
    test_need_event_arithmetic();
    test_event_idx_notifications();
    test_no_interrupt_flag();
    test_batch_notify_counters();
    test_notify_enable_disable();
    test_malformed_chains();
    test_good_then_bad();
    test_concurrent_pushes();
#if !defined(__SANITIZE_THREAD__)
    test_descriptor_changes_under_pop();
#endif

    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("virtqueue: all checks passed\n");
    return 0;
}
