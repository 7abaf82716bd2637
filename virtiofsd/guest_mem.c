/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest memory table (see guest_mem.h).
 *
 * Every range check is written as "offset into region, then remaining
 * bytes", never as "start + len <= end": the operands come from the guest
 * (descriptor addresses and lengths) or the frontend and may be chosen so
 * that an addition wraps.
 */
#include "guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "log.h"

/*
 * No sane frontend shares a single region (or places one in its fd) beyond
 * this; refusing it keeps every later size computation far from overflow
 * and stops a confused frontend from making us reserve absurd amounts of
 * address space.
 */
#define VFS_MEM_MAX_REGION_SIZE (1ull << 40)   /* 1 TiB */
#define VFS_MEM_MAX_MMAP_OFFSET (1ull << 40)

void vfs_mem_init(struct vfs_mem_table *mem)
{
    mem->nregions = 0;
}

static void region_unmap(struct vfs_mem_region *r)
{
    if (r->mmap_addr && munmap(r->mmap_addr, r->mmap_size) < 0)
        vfs_warn("munmap of guest region gpa 0x%llx failed: %s",
                 (unsigned long long)r->gpa, strerror(errno));
    r->mmap_addr = NULL;
    r->host = NULL;
}

void vfs_mem_clear(struct vfs_mem_table *mem)
{
    for (unsigned int i = 0; i < mem->nregions; i++)
        region_unmap(&mem->regions[i]);
    mem->nregions = 0;
}

/* Inclusive last address of [start, start + size); size > 0, no wrap. */
static inline uint64_t range_last(uint64_t start, uint64_t size)
{
    return start + (size - 1);
}

static bool ranges_overlap(uint64_t a, uint64_t asz, uint64_t b, uint64_t bsz)
{
    return a <= range_last(b, bsz) && b <= range_last(a, asz);
}

/* Is [addr, addr + len) inside [start, start + size)? Overflow-safe. */
static inline bool range_inside(uint64_t start, uint64_t size, uint64_t addr,
                                uint64_t len)
{
    uint64_t off;

    if (addr < start)
        return false;
    off = addr - start;
    if (off > size)
        return false;
    /* len == 0 is inside only at an address that belongs to the region */
    if (len == 0)
        return off < size;
    return len <= size - off;
}

int vfs_mem_add(struct vfs_mem_table *mem, uint64_t gpa, uint64_t size,
                uint64_t uva, uint64_t mmap_offset, int fd)
{
    struct vfs_mem_region *r;
    struct stat st;
    uint64_t map_len;
    unsigned int pos;
    void *addr;

    if (size == 0 || size > VFS_MEM_MAX_REGION_SIZE ||
        mmap_offset > VFS_MEM_MAX_MMAP_OFFSET) {
        vfs_err("guest memory region gpa 0x%llx: bad size 0x%llx / offset 0x%llx",
                (unsigned long long)gpa, (unsigned long long)size,
                (unsigned long long)mmap_offset);
        return -EINVAL;
    }
    if (gpa > UINT64_MAX - (size - 1) || uva > UINT64_MAX - (size - 1)) {
        vfs_err("guest memory region gpa 0x%llx uva 0x%llx size 0x%llx wraps",
                (unsigned long long)gpa, (unsigned long long)uva,
                (unsigned long long)size);
        return -EINVAL;
    }
    /* both bounded by 1 TiB above, so the sum cannot overflow */
    map_len = mmap_offset + size;
    if (map_len > SIZE_MAX)
        return -EINVAL;

    for (unsigned int i = 0; i < mem->nregions; i++) {
        const struct vfs_mem_region *o = &mem->regions[i];

        if (ranges_overlap(o->gpa, o->size, gpa, size) ||
            ranges_overlap(o->uva, o->size, uva, size)) {
            vfs_err("guest memory region gpa 0x%llx+0x%llx uva 0x%llx overlaps "
                    "gpa 0x%llx+0x%llx uva 0x%llx",
                    (unsigned long long)gpa, (unsigned long long)size,
                    (unsigned long long)uva, (unsigned long long)o->gpa,
                    (unsigned long long)o->size, (unsigned long long)o->uva);
            return -EINVAL;
        }
    }
    if (mem->nregions >= VFS_MEM_MAX_REGIONS)
        return -ENOSPC;

    /*
     * Touching a MAP_SHARED page beyond the end of a file raises SIGBUS, and
     * the guest would then be able to kill us by pointing a descriptor
     * there. Regular files (memfd, hugetlbfs, /dev/shm) have a meaningful
     * size, so check it now.
     */
    if (fstat(fd, &st) < 0)
        return -errno;
    if (S_ISREG(st.st_mode) && (uint64_t)st.st_size < map_len) {
        vfs_err("guest memory region gpa 0x%llx: fd is 0x%llx bytes, need 0x%llx",
                (unsigned long long)gpa, (unsigned long long)st.st_size,
                (unsigned long long)map_len);
        return -EINVAL;
    }

    /*
     * Map from offset 0 as other vhost-user backends do: mmap_offset need
     * not be aligned to the backing page size (hugetlbfs), offset 0 always is.
     */
    addr = mmap(NULL, (size_t)map_len, PROT_READ | PROT_WRITE,
                MAP_SHARED | MAP_NORESERVE, fd, 0);
    if (addr == MAP_FAILED) {
        int err = errno;

        vfs_err("mmap of guest memory region gpa 0x%llx (0x%llx bytes) failed: %s",
                (unsigned long long)gpa, (unsigned long long)map_len,
                strerror(err));
        return -err;
    }

    /* keep the table sorted by gpa so lookups can bisect */
    for (pos = 0; pos < mem->nregions && mem->regions[pos].gpa < gpa; pos++)
        ;
    memmove(&mem->regions[pos + 1], &mem->regions[pos],
            (mem->nregions - pos) * sizeof(mem->regions[0]));
    r = &mem->regions[pos];
    r->gpa = gpa;
    r->size = size;
    r->uva = uva;
    r->mmap_offset = mmap_offset;
    r->mmap_addr = addr;
    r->mmap_size = (size_t)map_len;
    r->host = (uint8_t *)addr + mmap_offset;
    mem->nregions++;
    return 0;
}

int vfs_mem_remove(struct vfs_mem_table *mem, uint64_t gpa, uint64_t size,
                   uint64_t uva)
{
    for (unsigned int i = 0; i < mem->nregions; i++) {
        struct vfs_mem_region *r = &mem->regions[i];

        if (r->gpa != gpa || r->size != size || r->uva != uva)
            continue;
        region_unmap(r);
        memmove(r, r + 1, (mem->nregions - i - 1) * sizeof(*r));
        mem->nregions--;
        return 0;
    }
    return -ENOENT;
}

/* The region containing @gpa, or NULL. Regions are sorted and disjoint. */
static const struct vfs_mem_region *find_gpa(const struct vfs_mem_table *mem,
                                             uint64_t gpa)
{
    unsigned int lo = 0, hi = mem->nregions;

    /* find the last region with start <= gpa */
    while (lo < hi) {
        unsigned int mid = lo + (hi - lo) / 2;

        if (mem->regions[mid].gpa <= gpa)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == 0)
        return NULL;
    const struct vfs_mem_region *r = &mem->regions[lo - 1];
    return gpa - r->gpa < r->size ? r : NULL;
}

void *vfs_mem_gpa_to_ptr(const struct vfs_mem_table *mem, uint64_t gpa,
                         uint64_t len)
{
    const struct vfs_mem_region *r = find_gpa(mem, gpa);

    if (!r || !range_inside(r->gpa, r->size, gpa, len))
        return NULL;
    return r->host + (gpa - r->gpa);
}

void *vfs_mem_uva_to_ptr(const struct vfs_mem_table *mem, uint64_t uva,
                         uint64_t len)
{
    /* only used at ring setup: a linear scan is fine */
    for (unsigned int i = 0; i < mem->nregions; i++) {
        const struct vfs_mem_region *r = &mem->regions[i];

        if (uva >= r->uva && uva - r->uva < r->size) {
            if (!range_inside(r->uva, r->size, uva, len))
                return NULL;
            return r->host + (uva - r->uva);
        }
    }
    return NULL;
}

int vfs_mem_gpa_to_iov(const struct vfs_mem_table *mem, uint64_t gpa,
                       uint64_t len, struct iovec *iov, unsigned int max)
{
    unsigned int n = 0;

    if (len == 0)
        return 0;
    /* the last byte must not wrap past the top of the address space */
    if (gpa > UINT64_MAX - (len - 1))
        return -EFAULT;

    while (len > 0) {
        const struct vfs_mem_region *r = find_gpa(mem, gpa);
        uint64_t off, chunk;

        if (!r)
            return -EFAULT;
        if (n == max)
            return -E2BIG;
        off = gpa - r->gpa;
        chunk = r->size - off;
        if (chunk > len)
            chunk = len;
        iov[n].iov_base = r->host + off;
        iov[n].iov_len = (size_t)chunk;
        n++;
        len -= chunk;
        /* no wrap: checked above, gpa + chunk <= gpa + len_remaining */
        gpa += chunk;
    }
    return (int)n;
}
