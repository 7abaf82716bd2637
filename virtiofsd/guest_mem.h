/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Guest memory table: the regions QEMU shares with SET_MEM_TABLE /
 * ADD_MEM_REG, mmapped into the daemon, and bounds-checked translation of
 * guest physical addresses (descriptors) and frontend user addresses (vring
 * addresses) into daemon pointers.
 *
 * A table is replaced or modified only by the vhost-user thread while it
 * holds the device's write lock (see vhost_user.h); readers (queue threads,
 * pool workers) hold the read lock while they use translated pointers.
 */
#ifndef VFS_GUEST_MEM_H
#define VFS_GUEST_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Upper bound on regions; GET_MAX_MEM_SLOTS reports this. */
#define VFS_MEM_MAX_REGIONS 509

struct vfs_mem_region {
    uint64_t gpa;          /* guest physical address of the region start */
    uint64_t size;         /* bytes */
    uint64_t uva;          /* frontend (QEMU) userspace address of start */
    uint64_t mmap_offset;  /* offset of the region in the fd */
    void *mmap_addr;       /* our mapping of [0, mmap_offset + size) */
    size_t mmap_size;
    uint8_t *host;         /* == mmap_addr + mmap_offset */
};

struct vfs_mem_table {
    unsigned int nregions;
    /* sorted by gpa, non-overlapping in gpa */
    struct vfs_mem_region regions[VFS_MEM_MAX_REGIONS];
};

void vfs_mem_init(struct vfs_mem_table *mem);
/* Unmaps every region. */
void vfs_mem_clear(struct vfs_mem_table *mem);

/*
 * Map @fd (not consumed: the caller closes it) and add the region.
 * Rejects (-EINVAL) zero or absurd sizes, gpa/uva ranges that wrap,
 * mmap_offset + size overflow, and regions overlapping an existing one in
 * guest-physical or frontend-user space; -ENOSPC when the table is full;
 * -errno if mmap fails. Nothing is changed on error.
 */
int vfs_mem_add(struct vfs_mem_table *mem, uint64_t gpa, uint64_t size,
                uint64_t uva, uint64_t mmap_offset, int fd);
/* Remove the region matching gpa/size/uva exactly: 0 or -ENOENT. */
int vfs_mem_remove(struct vfs_mem_table *mem, uint64_t gpa, uint64_t size,
                   uint64_t uva);

/*
 * Translate [gpa, gpa+len) to a pointer if it lies entirely inside one
 * region; NULL otherwise (including len == 0 at an unmapped address and
 * arithmetic overflow).
 */
void *vfs_mem_gpa_to_ptr(const struct vfs_mem_table *mem, uint64_t gpa,
                         uint64_t len);
/* Same for frontend user virtual addresses (used for vring addresses). */
void *vfs_mem_uva_to_ptr(const struct vfs_mem_table *mem, uint64_t uva,
                         uint64_t len);

/*
 * Translate [gpa, gpa+len) to up to @max iovecs, splitting at region
 * boundaries when consecutive regions are contiguous in guest-physical
 * space. Returns the number of iovecs used, -EFAULT if any byte is not
 * mapped, -E2BIG if more than @max iovecs would be needed. len == 0 gives 0
 * iovecs.
 */
int vfs_mem_gpa_to_iov(const struct vfs_mem_table *mem, uint64_t gpa,
                       uint64_t len, struct iovec *iov, unsigned int max);

#endif
