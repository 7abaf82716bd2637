/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Split virtqueue (virtio 1.x §2.7), device side.
 *
 * The guest is hostile: every index, length and address read from the ring
 * is checked. Any violation marks the queue broken (vq->broken, one log
 * line) and vq_pop() returns -EIO from then on; nothing crashes or loops.
 *
 * Threading: vq_pop() is called by exactly one thread at a time (the queue
 * thread). vq_push() / vq_notify() / vq_set_call_fd() may be called from any
 * thread; they serialize on vq->push_lock so used-ring updates are never
 * interleaved, in every execution mode.
 */
#ifndef VFS_VIRTQUEUE_H
#define VFS_VIRTQUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "guest_mem.h"

#define VQ_MAX_SIZE 32768u      /* largest queue size accepted (spec max) */
/*
 * Longest chain accepted, counting direct and indirect descriptors and the
 * extra iovecs created when a buffer spans two regions.
 */
#define VQ_MAX_IOV 1024u

/*
 * Notification outcomes, for statistics (stats.c). Only ever incremented,
 * under push_lock, with relaxed atomic loads and stores: other threads may
 * read them at any time (a reset subtracts a baseline, it never writes).
 */
struct vq_counters {
    uint64_t notify_sent;       /* call eventfd written */
    uint64_t notify_suppressed; /* EVENT_IDX / NO_INTERRUPT said not needed */
};

struct vq {
    /* configuration (set by vhost-user thread while the queue is stopped) */
    unsigned int num;           /* queue size, power of two, <= VQ_MAX_SIZE */
    struct vring_desc *desc;    /* translated pointers, NULL until set */
    struct vring_avail *avail;
    struct vring_used *used;
    bool event_idx;             /* VIRTIO_RING_F_EVENT_IDX negotiated */
    bool indirect;              /* VIRTIO_RING_F_INDIRECT_DESC negotiated */

    /* consumer state, owned by the popping thread */
    uint16_t last_avail_idx;    /* next avail entry to pop */
    uint16_t shadow_avail_idx;  /* last avail->idx read */

    /* producer state, under push_lock */
    pthread_mutex_t push_lock;
    uint16_t used_idx;          /* next used entry to write */
    uint16_t signalled_used;    /* used_idx at the last notification */
    bool signalled_used_valid;
    int call_fd;                /* eventfd or -1 */
    struct vq_counters *counters;   /* NULL: not counted; kept by vq_reset */

    bool broken;                /* set once, never cleared until vq_reset */
};

struct vq_elem {
    uint16_t head;              /* descriptor index to return in used ring */
    unsigned int rd_num;        /* device-readable iovecs: iov[0..rd_num) */
    unsigned int wr_num;        /* device-writable: iov[rd_num..+wr_num) */
    uint64_t rd_len;            /* total readable bytes */
    uint64_t wr_len;            /* total writable bytes */
    struct iovec iov[VQ_MAX_IOV];
};

/* Initialize an unconfigured queue (call_fd = -1). */
void vq_init(struct vq *vq);
/* Free resources (closes call_fd). */
void vq_destroy(struct vq *vq);
/* Forget all ring state: back to vq_init() state but keeps call_fd. */
void vq_reset(struct vq *vq);

/*
 * Set ring pointers from translated addresses (vhost_user.c translates the
 * frontend addresses with vfs_mem_uva_to_ptr() and checks sizes via
 * vq_ring_sizes()). Alignment is checked here: -EINVAL if misaligned.
 */
int vq_set_rings(struct vq *vq, void *desc, void *avail, void *used);
/* Bytes needed for each ring part of a queue of @num entries. */
void vq_ring_sizes(unsigned int num, bool event_idx, uint64_t *desc_sz,
                   uint64_t *avail_sz, uint64_t *used_sz);

/* Are there buffers to pop? (reads avail->idx; false if broken) */
bool vq_has_work(struct vq *vq);
/* How many chains the guest has made available and we have not popped
 * (at least; reads avail->idx only when the ones seen are used up, as
 * vq_pop; 0 if broken or not ready). */
unsigned int vq_avail_count(struct vq *vq);

/*
 * Pop the next available chain into @elem, translating every buffer through
 * @mem. Returns 1 if an element was popped, 0 if the ring is empty, -EIO if
 * the queue is (or just became) broken.
 *
 * Broken conditions: avail->idx moving more than num ahead of
 * last_avail_idx, head or next index >= num (or >= table length for
 * indirect), chain loops or more than VQ_MAX_IOV buffers, an indirect
 * descriptor inside an indirect table or with NEXT set, an indirect table
 * whose length is 0 / not a multiple of 16 / outside guest memory, indirect
 * descriptors when not negotiated, a readable descriptor after a writable
 * one, any buffer not fully inside guest memory. Zero-length buffers are
 * accepted and contribute no iovec.
 */
int vq_pop(struct vq *vq, const struct vfs_mem_table *mem,
           struct vq_elem *elem);

/*
 * Return a chain to the used ring with @len bytes written, then notify the
 * guest if needed (EVENT_IDX aware; VRING_AVAIL_F_NO_INTERRUPT otherwise).
 * Thread-safe. Returns true if a notification was sent.
 */
bool vq_push_notify(struct vq *vq, uint16_t head, uint32_t len);

/* Split variants for batching: push without notify, then notify once. */
void vq_push_locked(struct vq *vq, uint16_t head, uint32_t len);
bool vq_notify_locked(struct vq *vq);
/*
 * vq_notify_locked() after @pushes (>= 1) vq_push_locked() calls: the
 * counters see one outcome per push, as with vq_push_notify() -- the
 * first @pushes - 1 count as suppressed (folded into this notification),
 * the last as sent or suppressed. Caller holds push_lock.
 */
bool vq_notify_batch_locked(struct vq *vq, unsigned int pushes);

/*
 * With EVENT_IDX: publish avail_event = last_avail_idx so the guest kicks
 * for the next buffer; without it, clear/set VRING_USED_F_NO_NOTIFY. Used by
 * the queue thread around its pop loop to avoid lost wakeups:
 *   vq_disable_notify(); pop all; vq_enable_notify(); if vq_has_work() loop.
 */
void vq_enable_notify(struct vq *vq);
void vq_disable_notify(struct vq *vq);

/* Replace the call eventfd (closes the old one). Thread-safe. */
void vq_set_call_fd(struct vq *vq, int fd);

/* Count notifications into @c from now on (NULL: stop). Thread-safe. */
void vq_set_counters(struct vq *vq, struct vq_counters *c);

/* EVENT_IDX arithmetic (virtio spec vring_need_event), exposed for tests. */
static inline bool vq_need_event(uint16_t event_idx, uint16_t new_idx,
                                 uint16_t old_idx)
{
    return (uint16_t)(new_idx - event_idx - 1) < (uint16_t)(new_idx - old_idx);
}

/* Mark broken with one log line (first reason wins). */
void vq_mark_broken(struct vq *vq, const char *why);

#endif
