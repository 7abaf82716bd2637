/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest memory table: regions are mapped at the right fd offset, kept
 * sorted, overlapping/absurd/wrapping regions are refused, and every
 * translation is exact at the boundaries and safe against overflow.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest_mem.h"
#include "log.h"

static int failures;

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, \
                    #cond);                                                 \
            failures++;                                                     \
        }                                                                   \
    } while (0)

#define CHECK_EQ(a, b)                                                      \
    do {                                                                    \
        long long _a = (long long)(a), _b = (long long)(b);                 \
        if (_a != _b) {                                                     \
            fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %lld, expected %s == %lld\n", \
                    __FILE__, __LINE__, #a, _a, #b, _b);                    \
            failures++;                                                     \
        }                                                                   \
    } while (0)

#define PAGE 0x1000ull
#define MiB (1ull << 20)

static int err_lines;

/* Keep the expected error lines out of the test output, but count them. */
static void log_sink(enum vfs_log_level level, const char *msg, void *opaque)
{
    if (level == VFS_LOG_ERR)
        err_lines++;
    if (getenv("TEST_VERBOSE"))
        fprintf(stderr, "log: %s\n", msg);
}

static int make_memfd(uint64_t size)
{
    int fd = memfd_create("guest", MFD_CLOEXEC);

    if (fd < 0) {
        perror("memfd_create");
        exit(77);
    }
    if (ftruncate(fd, (off_t)size) < 0) {
        perror("ftruncate");
        exit(1);
    }
    return fd;
}

static struct vfs_mem_table *table_new(void)
{
    struct vfs_mem_table *mem = malloc(sizeof(*mem));

    if (!mem)
        exit(1);
    vfs_mem_init(mem);
    return mem;
}

/* mmap_offset is honoured: bytes written through the translation land there. */
static void test_mapping_uses_mmap_offset(void)
{
    struct vfs_mem_table *mem = table_new();
    int fd = make_memfd(4 * PAGE);
    uint8_t *p;
    char buf[8] = { 0 };

    CHECK_EQ(vfs_mem_add(mem, 0x10000, 2 * PAGE, 0x7000000000, PAGE + 0x10, fd), 0);
    p = vfs_mem_gpa_to_ptr(mem, 0x10000 + 5, 4);
    CHECK(p != NULL);
    if (p) {
        memcpy(p, "abcd", 4);
        CHECK_EQ(pread(fd, buf, 4, PAGE + 0x10 + 5), 4);
        CHECK(memcmp(buf, "abcd", 4) == 0);
    }
    /* the uva view of the same byte is the same host pointer */
    CHECK(vfs_mem_uva_to_ptr(mem, 0x7000000000 + 5, 4) == (void *)p);
    CHECK(mem->regions[0].host == (uint8_t *)mem->regions[0].mmap_addr + PAGE + 0x10);
    vfs_mem_clear(mem);
    close(fd);
    free(mem);
}

static void test_boundaries(void)
{
    struct vfs_mem_table *mem = table_new();
    int fd = make_memfd(4 * PAGE);
    const uint64_t gpa = 0x100000, size = 4 * PAGE, uva = 0x7f0000000000;
    uint8_t *base;

    CHECK_EQ(vfs_mem_add(mem, gpa, size, uva, 0, fd), 0);
    base = vfs_mem_gpa_to_ptr(mem, gpa, 1);
    CHECK(base != NULL);
    CHECK(base == mem->regions[0].host);

    /* whole region, last byte */
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa, size) == base);
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa + size - 1, 1) == base + size - 1);
    /* one past */
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa, size + 1) == NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa + size - 1, 2) == NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa + size, 1) == NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa - 1, 1) == NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa - 1, 2) == NULL);
    /* len 0: only at a mapped address */
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa + 7, 0) == base + 7);
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa + size, 0) == NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, 0, 0) == NULL);
    /* gpa + len wraps around to inside the region */
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa + 8, UINT64_MAX) == NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa + 8, UINT64_MAX - 7) == NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa + 8, (uint64_t)0 - (gpa + 8)) == NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, UINT64_MAX, 2) == NULL);

    /* the same for frontend addresses */
    CHECK(vfs_mem_uva_to_ptr(mem, uva, size) == base);
    CHECK(vfs_mem_uva_to_ptr(mem, uva + size - 1, 1) == base + size - 1);
    CHECK(vfs_mem_uva_to_ptr(mem, uva + size - 1, 2) == NULL);
    CHECK(vfs_mem_uva_to_ptr(mem, uva + size, 0) == NULL);
    CHECK(vfs_mem_uva_to_ptr(mem, uva - 1, 1) == NULL);
    CHECK(vfs_mem_uva_to_ptr(mem, uva + 8, UINT64_MAX) == NULL);
    CHECK(vfs_mem_uva_to_ptr(mem, gpa, 1) == NULL);   /* gpa is not a uva */

    vfs_mem_clear(mem);
    CHECK_EQ(mem->nregions, 0);
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa, 1) == NULL);
    close(fd);
    free(mem);
}

/* A region may end at the very top of the address space; nothing wraps. */
static void test_top_of_address_space(void)
{
    struct vfs_mem_table *mem = table_new();
    int fd = make_memfd(PAGE);
    const uint64_t gpa = UINT64_MAX - PAGE + 1;
    const uint64_t uva = UINT64_MAX - PAGE + 1;
    struct iovec iov[2];
    uint8_t *base;

    CHECK_EQ(vfs_mem_add(mem, gpa, PAGE, uva, 0, fd), 0);
    base = vfs_mem_gpa_to_ptr(mem, gpa, PAGE);
    CHECK(base != NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, UINT64_MAX, 1) == base + PAGE - 1);
    CHECK(vfs_mem_gpa_to_ptr(mem, UINT64_MAX, 2) == NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, gpa, PAGE + 1) == NULL);
    CHECK(vfs_mem_uva_to_ptr(mem, UINT64_MAX, 1) == base + PAGE - 1);
    CHECK(vfs_mem_uva_to_ptr(mem, UINT64_MAX, 2) == NULL);
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, UINT64_MAX, 1, iov, 2), 1);
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, UINT64_MAX, 2, iov, 2), -EFAULT);
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, gpa, PAGE, iov, 2), 1);
    CHECK_EQ(iov[0].iov_len, PAGE);

    /* one more byte and it would wrap */
    CHECK_EQ(vfs_mem_add(mem, 0, 2 * PAGE, UINT64_MAX - PAGE + 2, 0, fd), -EINVAL);

    /* with memory at gpa 0 too, a range must still not wrap into it */
    CHECK_EQ(vfs_mem_add(mem, 0, PAGE, 0x100000, 0, fd), 0);
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, UINT64_MAX, 2, iov, 2), -EFAULT);
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, gpa, PAGE + 1, iov, 2), -EFAULT);
    CHECK(vfs_mem_gpa_to_ptr(mem, UINT64_MAX, 2) == NULL);
    CHECK(vfs_mem_uva_to_ptr(mem, UINT64_MAX, 2) == NULL);
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0, PAGE, iov, 2), 1);
    vfs_mem_clear(mem);
    close(fd);
    free(mem);
}

static void test_rejects_bad_regions(void)
{
    struct vfs_mem_table *mem = table_new();
    int fd = make_memfd(4 * PAGE);

    err_lines = 0;
    CHECK_EQ(vfs_mem_add(mem, 0, 0, 0x1000000, 0, fd), -EINVAL);
    CHECK_EQ(vfs_mem_add(mem, 0, (1ull << 40) + PAGE, 0x1000000, 0, fd), -EINVAL);
    CHECK_EQ(vfs_mem_add(mem, 0, UINT64_MAX, 0x1000000, 0, fd), -EINVAL);
    /* gpa range wraps */
    CHECK_EQ(vfs_mem_add(mem, UINT64_MAX - PAGE + 2, PAGE, 0x1000000, 0, fd), -EINVAL);
    /* uva range wraps */
    CHECK_EQ(vfs_mem_add(mem, 0, PAGE, UINT64_MAX, 0, fd), -EINVAL);
    /* absurd mmap_offset (mmap_offset + size would overflow) */
    CHECK_EQ(vfs_mem_add(mem, 0, PAGE, 0x1000000, UINT64_MAX - 10, fd), -EINVAL);
    /* the fd is shorter than mmap_offset + size: touching it would SIGBUS */
    CHECK_EQ(vfs_mem_add(mem, 0, 4 * PAGE, 0x1000000, PAGE, fd), -EINVAL);
    CHECK_EQ(vfs_mem_add(mem, 0, 5 * PAGE, 0x1000000, 0, fd), -EINVAL);
    /* not an fd */
    CHECK(vfs_mem_add(mem, 0, PAGE, 0x1000000, 0, -1) < 0);
    CHECK_EQ(mem->nregions, 0);
    CHECK(err_lines > 0);
    /* exactly fitting the fd is fine */
    CHECK_EQ(vfs_mem_add(mem, 0, 3 * PAGE, 0x1000000, PAGE, fd), 0);
    CHECK_EQ(mem->nregions, 1);
    vfs_mem_clear(mem);
    close(fd);
    free(mem);
}

static void test_overlaps_rejected(void)
{
    struct vfs_mem_table *mem = table_new();
    int fd = make_memfd(16 * PAGE);
    const uint64_t G = 0x100000, U = 0x7f0000000000;

    CHECK_EQ(vfs_mem_add(mem, G, 4 * PAGE, U, 0, fd), 0);

    /* guest-physical overlaps, each with a disjoint uva */
    CHECK_EQ(vfs_mem_add(mem, G, 4 * PAGE, U + MiB, 0, fd), -EINVAL);
    CHECK_EQ(vfs_mem_add(mem, G - PAGE, 2 * PAGE, U + MiB, 0, fd), -EINVAL);
    CHECK_EQ(vfs_mem_add(mem, G + 3 * PAGE, 2 * PAGE, U + MiB, 0, fd), -EINVAL);
    CHECK_EQ(vfs_mem_add(mem, G + PAGE, PAGE, U + MiB, 0, fd), -EINVAL);
    CHECK_EQ(vfs_mem_add(mem, G - PAGE, 8 * PAGE, U + MiB, 0, fd), -EINVAL);
    /* overlapping by a single byte at either end */
    CHECK_EQ(vfs_mem_add(mem, G + 4 * PAGE - 1, PAGE, U + MiB, 0, fd), -EINVAL);
    CHECK_EQ(vfs_mem_add(mem, G - PAGE + 1, PAGE, U + MiB, 0, fd), -EINVAL);
    /* frontend-address overlaps with a disjoint gpa */
    CHECK_EQ(vfs_mem_add(mem, G + MiB, 4 * PAGE, U + PAGE, 0, fd), -EINVAL);
    CHECK_EQ(vfs_mem_add(mem, G + MiB, 4 * PAGE, U - PAGE, 0, fd), -EINVAL);
    CHECK_EQ(vfs_mem_add(mem, G + MiB, PAGE, U + 4 * PAGE - 1, 0, fd), -EINVAL);
    CHECK_EQ(mem->nregions, 1);

    /* adjacent on both sides is not an overlap */
    CHECK_EQ(vfs_mem_add(mem, G + 4 * PAGE, PAGE, U + 4 * PAGE, 0, fd), 0);
    CHECK_EQ(vfs_mem_add(mem, G - PAGE, PAGE, U - PAGE, 0, fd), 0);
    CHECK_EQ(mem->nregions, 3);
    vfs_mem_clear(mem);
    close(fd);
    free(mem);
}

static void test_sorted_and_remove(void)
{
    struct vfs_mem_table *mem = table_new();
    int fd = make_memfd(4 * PAGE);
    uint64_t gpas[] = { 0x500000, 0x100000, 0x900000, 0x300000 };

    for (unsigned int i = 0; i < 4; i++)
        CHECK_EQ(vfs_mem_add(mem, gpas[i], PAGE, 0x10000000 + i * MiB, i * PAGE, fd), 0);
    CHECK_EQ(mem->nregions, 4);
    for (unsigned int i = 1; i < mem->nregions; i++)
        CHECK(mem->regions[i - 1].gpa < mem->regions[i].gpa);
    /* every region translates to its own fd offset */
    for (unsigned int i = 0; i < 4; i++) {
        uint8_t *p = vfs_mem_gpa_to_ptr(mem, gpas[i] + 3, 1);
        uint8_t v;

        CHECK(p != NULL);
        if (!p)
            continue;
        *p = (uint8_t)(0xa0 + i);
        CHECK_EQ(pread(fd, &v, 1, i * PAGE + 3), 1);
        CHECK_EQ(v, 0xa0 + i);
    }

    /* removal needs an exact match */
    CHECK_EQ(vfs_mem_remove(mem, 0x500000, 2 * PAGE, 0x10000000), -ENOENT);
    CHECK_EQ(vfs_mem_remove(mem, 0x500000, PAGE, 0x10000001), -ENOENT);
    CHECK_EQ(vfs_mem_remove(mem, 0x500001, PAGE, 0x10000000), -ENOENT);
    CHECK_EQ(mem->nregions, 4);
    CHECK_EQ(vfs_mem_remove(mem, 0x500000, PAGE, 0x10000000), 0);
    CHECK_EQ(mem->nregions, 3);
    CHECK(vfs_mem_gpa_to_ptr(mem, 0x500000, 1) == NULL);
    CHECK(vfs_mem_uva_to_ptr(mem, 0x10000000, 1) == NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, 0x300000, 1) != NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, 0x900000, 1) != NULL);
    for (unsigned int i = 1; i < mem->nregions; i++)
        CHECK(mem->regions[i - 1].gpa < mem->regions[i].gpa);
    CHECK_EQ(vfs_mem_remove(mem, 0x500000, PAGE, 0x10000000), -ENOENT);
    /* the freed range can be added again */
    CHECK_EQ(vfs_mem_add(mem, 0x500000, PAGE, 0x10000000, 0, fd), 0);
    CHECK_EQ(mem->nregions, 4);
    vfs_mem_clear(mem);
    close(fd);
    free(mem);
}

static void test_gpa_to_iov(void)
{
    struct vfs_mem_table *mem = table_new();
    int fd = make_memfd(8 * PAGE);
    struct iovec iov[4];
    uint8_t *a, *b, *c;

    /* A and B contiguous in gpa but not in the fd; gap; C */
    CHECK_EQ(vfs_mem_add(mem, 0x10000, PAGE, 0x20000000, 5 * PAGE, fd), 0);
    CHECK_EQ(vfs_mem_add(mem, 0x11000, 2 * PAGE, 0x30000000, PAGE, fd), 0);
    CHECK_EQ(vfs_mem_add(mem, 0x20000, PAGE, 0x40000000, 0, fd), 0);
    a = vfs_mem_gpa_to_ptr(mem, 0x10000, 1);
    b = vfs_mem_gpa_to_ptr(mem, 0x11000, 1);
    c = vfs_mem_gpa_to_ptr(mem, 0x20000, 1);
    CHECK(a && b && c);

    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0x10010, 0x20, iov, 4), 1);
    CHECK(iov[0].iov_base == a + 0x10);
    CHECK_EQ(iov[0].iov_len, 0x20);

    /* spans A and B: split at the boundary */
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0x10ff0, 0x20, iov, 4), 2);
    CHECK(iov[0].iov_base == a + 0xff0);
    CHECK_EQ(iov[0].iov_len, 0x10);
    CHECK(iov[1].iov_base == b);
    CHECK_EQ(iov[1].iov_len, 0x10);
    /* the whole of A+B, exactly */
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0x10000, 3 * PAGE, iov, 4), 2);
    CHECK_EQ(iov[0].iov_len + iov[1].iov_len, 3 * PAGE);
    /* ... but a single pointer never spans regions */
    CHECK(vfs_mem_gpa_to_ptr(mem, 0x10ff0, 0x20) == NULL);
    /* one byte more runs into the gap */
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0x10000, 3 * PAGE + 1, iov, 4), -EFAULT);
    /* too few iovecs */
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0x10ff0, 0x20, iov, 1), -E2BIG);
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0x10ff0, 0x20, iov, 0), -E2BIG);
    /* len 0: no iovecs, wherever it points */
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0x10000, 0, iov, 4), 0);
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0xdead0000, 0, iov, 0), 0);
    /* gap, start in gap, beyond everything */
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0x13000, 1, iov, 4), -EFAULT);
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0x1fff0, 0x20, iov, 4), -EFAULT);
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0x20ff0, 0x20, iov, 4), -EFAULT);
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0xfff, 1, iov, 4), -EFAULT);
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0x20000, PAGE, iov, 4), 1);
    CHECK(iov[0].iov_base == c);
    /* gpa + len wraps */
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0x10000, UINT64_MAX, iov, 4), -EFAULT);
    CHECK_EQ(vfs_mem_gpa_to_iov(mem, 0x10010, UINT64_MAX - 0xf, iov, 4), -EFAULT);
    vfs_mem_clear(mem);
    close(fd);
    free(mem);
}

static void test_table_full(void)
{
    struct vfs_mem_table *mem = table_new();
    int fd = make_memfd(PAGE);

    for (unsigned int i = 0; i < VFS_MEM_MAX_REGIONS; i++) {
        int ret = vfs_mem_add(mem, (uint64_t)i * 2 * PAGE, PAGE,
                              0x100000000ull + (uint64_t)i * PAGE, 0, fd);
        if (ret != 0) {
            CHECK_EQ(ret, 0);
            break;
        }
    }
    CHECK_EQ(mem->nregions, VFS_MEM_MAX_REGIONS);
    CHECK_EQ(vfs_mem_add(mem, 0x100000000ull, PAGE, 0x900000000ull, 0, fd), -ENOSPC);
    CHECK_EQ(mem->nregions, VFS_MEM_MAX_REGIONS);
    /* lookups bisect: check first, last and a gap in between */
    CHECK(vfs_mem_gpa_to_ptr(mem, 0, 1) != NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, (VFS_MEM_MAX_REGIONS - 1) * 2 * PAGE + PAGE - 1, 1) != NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, 200 * 2 * PAGE + PAGE, 1) == NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, 200 * 2 * PAGE, PAGE) != NULL);
    CHECK(vfs_mem_gpa_to_ptr(mem, VFS_MEM_MAX_REGIONS * 2 * PAGE, 1) == NULL);
    vfs_mem_clear(mem);
    CHECK_EQ(mem->nregions, 0);
    close(fd);
    free(mem);
}

int main(void)
{
    vfs_log_set_sink(log_sink, NULL);

    test_mapping_uses_mmap_offset();
    test_boundaries();
    test_top_of_address_space();
    test_rejects_bad_regions();
    test_overlaps_rejected();
    test_sorted_and_remove();
    test_gpa_to_iov();
    test_table_full();

    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("guest_mem: all checks passed\n");
    return 0;
}
