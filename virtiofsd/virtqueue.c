/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Split virtqueue, device side (virtio 1.x §2.7; see virtqueue.h).
 *
 * Shared-memory discipline: the guest may change any ring byte at any time.
 * Every field is read once into a local (descriptors as a whole) and only
 * the local is checked and used. Indices published by the guest are read
 * with acquire semantics so the entries they cover are visible; indices we
 * publish are stored with release semantics so the entries are visible
 * before the guest can see the index move.
 */
#include "virtqueue.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>
#include <linux/virtio_ring.h>

#include "log.h"
#include "trace_events.h"

/*
 * Full barrier: orders our ring store before a later load of a guest field.
 * TSan does not model fences (GCC warns with -Wtsan); the guest side of the
 * protocol is invisible to it anyway, so the warning carries no news here.
 */
#if defined(__SANITIZE_THREAD__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wtsan"
#endif
#define smp_mb() __atomic_thread_fence(__ATOMIC_SEQ_CST)
/*
 * Compiler barrier after copying a descriptor: the compiler may not
 * re-read guest memory in place of the local copy (the double-fetch that
 * would defeat the checks).
 */
#define barrier() __asm__ __volatile__("" ::: "memory")

static inline uint16_t load16(const void *p, int order)
{
    return le16toh(__atomic_load_n((const uint16_t *)p, order));
}

static inline void store16(void *p, uint16_t v, int order)
{
    __atomic_store_n((uint16_t *)p, htole16(v), order);
}

static inline void store32(void *p, uint32_t v)
{
    __atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELAXED);
}

static inline bool vq_is_broken(const struct vq *vq)
{
    return __atomic_load_n(&vq->broken, __ATOMIC_ACQUIRE);
}

/*
 * used_event: written by the driver just after avail->ring[num - 1];
 * avail_event: written by us just after used->ring[num - 1] (EVENT_IDX).
 * Computed as byte offsets: neither is an element of the ring array.
 */
static inline uint16_t *used_event_ptr(const struct vq *vq)
{
    return (uint16_t *)((uint8_t *)vq->avail + sizeof(struct vring_avail) +
                        (size_t)vq->num * sizeof(uint16_t));
}

static inline uint16_t *avail_event_ptr(const struct vq *vq)
{
    return (uint16_t *)((uint8_t *)vq->used + sizeof(struct vring_used) +
                        (size_t)vq->num * sizeof(struct vring_used_elem));
}

void vq_init(struct vq *vq)
{
    memset(vq, 0, sizeof(*vq));
    pthread_mutex_init(&vq->push_lock, NULL);
    vq->call_fd = -1;
}

void vq_destroy(struct vq *vq)
{
    if (vq->call_fd >= 0)
        close(vq->call_fd);
    vq->call_fd = -1;
    pthread_mutex_destroy(&vq->push_lock);
}

void vq_reset(struct vq *vq)
{
    pthread_mutex_lock(&vq->push_lock);
    vq->num = 0;
    vq->desc = NULL;
    vq->avail = NULL;
    vq->used = NULL;
    vq->event_idx = false;
    vq->indirect = false;
    vq->last_avail_idx = 0;
    vq->shadow_avail_idx = 0;
    vq->used_idx = 0;
    vq->signalled_used = 0;
    vq->signalled_used_valid = false;
    __atomic_store_n(&vq->broken, false, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&vq->push_lock);
}

void vq_ring_sizes(unsigned int num, bool event_idx, uint64_t *desc_sz,
                   uint64_t *avail_sz, uint64_t *used_sz)
{
    uint64_t ev = event_idx ? sizeof(uint16_t) : 0;

    *desc_sz = (uint64_t)num * sizeof(struct vring_desc);
    *avail_sz = sizeof(struct vring_avail) + (uint64_t)num * sizeof(uint16_t) + ev;
    *used_sz = sizeof(struct vring_used) +
               (uint64_t)num * sizeof(struct vring_used_elem) + ev;
}

int vq_set_rings(struct vq *vq, void *desc, void *avail, void *used)
{
    /* virtio 1.x §2.7: descriptor table 16, avail ring 2, used ring 4 */
    if (!desc || !avail || !used ||
        (uintptr_t)desc % VRING_DESC_ALIGN_SIZE ||
        (uintptr_t)avail % VRING_AVAIL_ALIGN_SIZE ||
        (uintptr_t)used % VRING_USED_ALIGN_SIZE)
        return -EINVAL;
    vq->desc = desc;
    vq->avail = avail;
    vq->used = used;
    return 0;
}

void vq_mark_broken(struct vq *vq, const char *why)
{
    if (!__atomic_exchange_n(&vq->broken, true, __ATOMIC_ACQ_REL))
        vfs_err("virtqueue broken: %s", why);
}

/*
 * printf-style wrapper so reasons can carry the offending values; @reason
 * (enum trace_vq_broken) is what the vq_broken probe reports.
 */
static void __attribute__((format(printf, 3, 4)))
vq_broken(struct vq *vq, uint32_t reason, const char *fmt, ...)
{
    char why[160];
    va_list ap;

    if (vq_is_broken(vq))
        return;
    trace_vq_broken(reason, vq->num, vq->last_avail_idx);
    va_start(ap, fmt);
    vsnprintf(why, sizeof(why), fmt, ap);
    va_end(ap);
    vq_mark_broken(vq, why);
}

/* num is a power of two: ring positions are "idx & (num - 1)" */
static bool vq_ready(const struct vq *vq)
{
    return vq->num && vq->num <= VQ_MAX_SIZE && !(vq->num & (vq->num - 1)) &&
           vq->desc && vq->avail && vq->used;
}

/*
 * Read avail->idx (acquire: the ring entries up to it are then visible)
 * and check how far it moved. Returns the number of pending entries, or -1
 * after marking the queue broken.
 */
static int vq_fetch_avail(struct vq *vq)
{
    uint16_t idx = load16(&vq->avail->idx, __ATOMIC_ACQUIRE);
    uint16_t pending = (uint16_t)(idx - vq->last_avail_idx);

    if (pending > vq->num) {
        vq_broken(vq, TRACE_VQ_AVAIL_IDX,
                  "avail idx %u is %u ahead of last_avail_idx %u (num %u)",
                  idx, pending, vq->last_avail_idx, vq->num);
        return -1;
    }
    vq->shadow_avail_idx = idx;
    return pending;
}

/*
 * Entries seen at the last read of avail->idx and not popped yet, or 0:
 * the shadow index avoids touching avail->idx (a cache line the guest keeps
 * writing) while such entries remain. A shadow that does not look like
 * "1..num entries ahead" (last_avail_idx was just set by SET_VRING_BASE,
 * say) is not trusted: 0, read the real one.
 */
static unsigned int vq_seen(const struct vq *vq)
{
    uint16_t seen = (uint16_t)(vq->shadow_avail_idx - vq->last_avail_idx);

    return seen - 1u < vq->num ? seen : 0;
}

bool vq_has_work(struct vq *vq)
{
    return vq_avail_count(vq) > 0;
}

unsigned int vq_avail_count(struct vq *vq)
{
    unsigned int seen;
    int n;

    if (vq_is_broken(vq) || !vq_ready(vq))
        return 0;
    seen = vq_seen(vq);
    if (seen)
        return seen;
    n = vq_fetch_avail(vq);
    return n > 0 ? (unsigned int)n : 0;
}

/* One copy of a guest descriptor, in host byte order. */
struct desc_copy {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};

static void read_desc(const struct vring_desc *table, unsigned int i,
                      struct desc_copy *d)
{
    struct vring_desc raw;

    /* memcpy: indirect tables need not be 8-byte aligned */
    memcpy(&raw, &table[i], sizeof(raw));
    barrier();
    d->addr = le64toh(raw.addr);
    d->len = le32toh(raw.len);
    d->flags = le16toh(raw.flags);
    d->next = le16toh(raw.next);
}

int vq_pop(struct vq *vq, const struct vfs_mem_table *mem,
           struct vq_elem *elem)
{
    const struct vring_desc *table;
    unsigned int table_num, visited = 0, niov = 0, nzero = 0;
    bool in_indirect = false, seen_write = false;
    uint16_t head, idx;

    if (vq_is_broken(vq))
        return -EIO;
    if (!vq_ready(vq)) {
        vq_broken(vq, TRACE_VQ_UNCONFIGURED, "pop on an unconfigured ring");
        return -EIO;
    }

    if (!vq_seen(vq)) {
        int pending = vq_fetch_avail(vq);

        if (pending < 0)
            return -EIO;
        if (pending == 0)
            return 0;
    }

    head = load16(&vq->avail->ring[vq->last_avail_idx & (vq->num - 1)],
                  __ATOMIC_RELAXED);
    if (head >= vq->num) {
        vq_broken(vq, TRACE_VQ_HEAD_RANGE, "head %u >= num %u", head, vq->num);
        return -EIO;
    }

    elem->head = head;
    elem->rd_len = 0;
    elem->wr_len = 0;
    elem->rd_num = 0;
    elem->wr_num = 0;

    table = vq->desc;
    table_num = vq->num;
    idx = head;
    for (;;) {
        struct desc_copy d;
        int n;

        /* every descriptor of a table visited at most once unless looping */
        if (++visited > table_num) {
            vq_broken(vq, TRACE_VQ_CHAIN_LOOP,
                      "head %u: descriptor chain loops or exceeds %s size %u",
                      head, in_indirect ? "indirect table" : "queue", table_num);
            return -EIO;
        }
        read_desc(table, idx, &d);

        if (d.flags & VRING_DESC_F_INDIRECT) {
            const char *bad = NULL;

            if (!vq->indirect)
                bad = "indirect descriptor not negotiated";
            else if (in_indirect)
                bad = "indirect descriptor inside an indirect table";
            else if (d.flags & VRING_DESC_F_NEXT)
                bad = "indirect descriptor with NEXT";
            else if (d.len == 0 || d.len % sizeof(struct vring_desc))
                bad = "indirect table length not a non-zero multiple of 16";
            if (bad) {
                vq_broken(vq, TRACE_VQ_INDIRECT_BAD,
                          "head %u: %s (len %u)", head, bad, d.len);
                return -EIO;
            }
            table = vfs_mem_gpa_to_ptr(mem, d.addr, d.len);
            if (!table) {
                vq_broken(vq, TRACE_VQ_INDIRECT_OUTSIDE,
                          "head %u: indirect table 0x%llx+0x%x outside guest memory",
                          head, (unsigned long long)d.addr, d.len);
                return -EIO;
            }
            table_num = d.len / sizeof(struct vring_desc);
            in_indirect = true;
            visited = 0;
            idx = 0;
            continue;
        }

        if (d.flags & VRING_DESC_F_WRITE) {
            seen_write = true;
        } else if (seen_write) {
            vq_broken(vq, TRACE_VQ_READ_AFTER_WRITE,
                      "head %u: readable descriptor after a writable one", head);
            return -EIO;
        }

        /* each descriptor costs one slot, plus one per extra region split */
        if (niov + nzero >= VQ_MAX_IOV) {
            vq_broken(vq, TRACE_VQ_CHAIN_TOO_LONG,
                      "head %u: chain longer than %u buffers", head, VQ_MAX_IOV);
            return -EIO;
        }
        if (d.len == 0) {
            nzero++;
        } else {
            n = vfs_mem_gpa_to_iov(mem, d.addr, d.len, &elem->iov[niov],
                                   VQ_MAX_IOV - niov - nzero);
            if (n == -E2BIG) {
                vq_broken(vq, TRACE_VQ_CHAIN_TOO_LONG,
                          "head %u: chain longer than %u buffers", head,
                          VQ_MAX_IOV);
                return -EIO;
            }
            if (n < 0) {
                vq_broken(vq, TRACE_VQ_BUFFER_OUTSIDE,
                          "head %u: buffer 0x%llx+0x%x outside guest memory",
                          head, (unsigned long long)d.addr, d.len);
                return -EIO;
            }
            niov += (unsigned int)n;
            if (d.flags & VRING_DESC_F_WRITE) {
                elem->wr_num += (unsigned int)n;
                elem->wr_len += d.len;
            } else {
                elem->rd_num += (unsigned int)n;
                elem->rd_len += d.len;
            }
        }

        if (!(d.flags & VRING_DESC_F_NEXT))
            break;
        if (d.next >= table_num) {
            vq_broken(vq, TRACE_VQ_NEXT_RANGE,
                      "head %u: next %u >= %s size %u", head, d.next,
                      in_indirect ? "indirect table" : "queue", table_num);
            return -EIO;
        }
        idx = d.next;
    }

    vq->last_avail_idx++;
    return 1;
}

void vq_push_locked(struct vq *vq, uint16_t head, uint32_t len)
{
    struct vring_used_elem *e;
    uint16_t old = vq->used_idx, new_idx = (uint16_t)(old + 1);

    if (!vq_ready(vq))
        return;
    if (head >= vq->num) {
        /* a device-layer bug, not the guest's: never write it to the ring */
        vq_broken(vq, TRACE_VQ_PUSH_HEAD,
                  "push of head %u >= num %u", head, vq->num);
        return;
    }
    e = &vq->used->ring[old & (vq->num - 1)];
    store32(&e->id, head);
    store32(&e->len, len);
    /* release: the element is visible before the guest sees idx move */
    store16(&vq->used->idx, new_idx, __ATOMIC_RELEASE);
    vq->used_idx = new_idx;

    /*
     * If used_idx ran 2^15 or more past the last notification, the 16-bit
     * window arithmetic of vq_need_event() can no longer tell whether
     * used_event was crossed: fall back to "always notify once".
     */
    if ((int16_t)(new_idx - vq->signalled_used) < (uint16_t)(new_idx - old))
        vq->signalled_used_valid = false;
}

/*
 * One writer at a time (push_lock): a plain load and store, no locked
 * instruction; atomic so readers on other threads are race-free.
 */
static inline void vq_count(uint64_t *c)
{
    __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + 1,
                     __ATOMIC_RELAXED);
}

bool vq_notify_locked(struct vq *vq)
{
    bool need;

    if (!vq_ready(vq))
        return false;
    /*
     * Order the used->idx store before reading used_event / avail flags:
     * otherwise we might read a stale used_event, skip the interrupt, and
     * the guest, having read the old used->idx, sleeps forever.
     */
    smp_mb();
    if (vq->event_idx) {
        uint16_t old = vq->signalled_used, new_idx = vq->used_idx;
        bool valid = vq->signalled_used_valid;
        uint16_t used_event = load16(used_event_ptr(vq), __ATOMIC_RELAXED);

        vq->signalled_used = new_idx;
        vq->signalled_used_valid = true;
        need = !valid || vq_need_event(used_event, new_idx, old);
    } else {
        need = !(load16(&vq->avail->flags, __ATOMIC_RELAXED) &
                 VRING_AVAIL_F_NO_INTERRUPT);
    }
    if (!need) {
        if (vq->counters)
            vq_count(&vq->counters->notify_suppressed);
        return false;
    }
    if (vq->call_fd < 0)
        return false;
    /* EAGAIN means the counter is saturated: the guest is being woken anyway */
    if (eventfd_write(vq->call_fd, 1) < 0 && errno != EAGAIN) {
        vfs_warn_ratelimited("virtqueue call eventfd write failed: %s",
                             strerror(errno));
        return false;
    }
    if (vq->counters)
        vq_count(&vq->counters->notify_sent);
    return true;
}

bool vq_notify_batch_locked(struct vq *vq, unsigned int pushes)
{
    if (pushes > 1 && vq->counters && vq_ready(vq)) {
        uint64_t *c = &vq->counters->notify_suppressed;

        __atomic_store_n(c, __atomic_load_n(c, __ATOMIC_RELAXED) + pushes - 1,
                         __ATOMIC_RELAXED);
    }
    return vq_notify_locked(vq);
}

bool vq_push_notify(struct vq *vq, uint16_t head, uint32_t len)
{
    bool sent;

    pthread_mutex_lock(&vq->push_lock);
    vq_push_locked(vq, head, len);
    sent = vq_notify_locked(vq);
    pthread_mutex_unlock(&vq->push_lock);
    return sent;
}

void vq_enable_notify(struct vq *vq)
{
    if (!vq_ready(vq))
        return;
    if (vq->event_idx) {
        store16(avail_event_ptr(vq), vq->last_avail_idx, __ATOMIC_RELAXED);
    } else {
        uint16_t f = load16(&vq->used->flags, __ATOMIC_RELAXED);

        store16(&vq->used->flags, f & ~VRING_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
    }
    /*
     * The caller re-checks avail->idx next: that load must not be satisfied
     * before the guest can see our request for a kick, or a buffer added in
     * between would get neither a kick nor a pop.
     */
    smp_mb();
}

void vq_disable_notify(struct vq *vq)
{
    if (!vq_ready(vq))
        return;
    /*
     * With EVENT_IDX, leaving avail_event behind last_avail_idx is the
     * suppression: the guest only kicks when its avail idx crosses it.
     */
    if (!vq->event_idx) {
        uint16_t f = load16(&vq->used->flags, __ATOMIC_RELAXED);

        store16(&vq->used->flags, f | VRING_USED_F_NO_NOTIFY, __ATOMIC_RELAXED);
    }
}

void vq_set_call_fd(struct vq *vq, int fd)
{
    pthread_mutex_lock(&vq->push_lock);
    if (vq->call_fd >= 0 && vq->call_fd != fd)
        close(vq->call_fd);
    vq->call_fd = fd;
    pthread_mutex_unlock(&vq->push_lock);
}

void vq_set_counters(struct vq *vq, struct vq_counters *c)
{
    pthread_mutex_lock(&vq->push_lock);
    vq->counters = c;
    pthread_mutex_unlock(&vq->push_lock);
}
