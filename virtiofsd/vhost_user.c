/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user backend (see vhost_user.h and QEMU docs/interop/vhost-user.rst).
 *
 * The frontend is trusted less than the spec assumes: every message is
 * validated against a per-request description (payload size, fd count,
 * ring index) before its handler runs, fds that are not kept are closed on
 * every path, and a malformed message is rejected without losing the
 * stream, so the connection stays usable.
 *
 * Replies. A request with a reply of its own (GET_*) always gets one: its
 * payload on success, a zero-size reply on failure (QEMU checks reply sizes
 * and treats that as an error instead of waiting forever). Every other
 * request gets a u64 ack (0 or a positive errno) when it carries NEED_REPLY
 * and REPLY_ACK was negotiated, as the spec says.
 */
#include "vhost_user.h"

#include <endian.h>
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "log.h"
#include "trace_events.h"

#define VHOST_VRING_F_LOG 0

/* Largest queue index + flags bits of a SET_VRING_{KICK,CALL,ERR} payload */
#define VU_VRING_FD_PAYLOAD_MASK (VHOST_USER_VRING_IDX_MASK | VHOST_USER_VRING_NOFD_MASK)

uint64_t vu_supported_features(void)
{
    return (1ull << VIRTIO_F_VERSION_1) |
           (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
           (1ull << VIRTIO_RING_F_EVENT_IDX) |
           (1ull << VHOST_USER_F_PROTOCOL_FEATURES);
}

/*
 * No STATUS (QEMU 7.2 would then drive the device through SET_STATUS, which
 * adds nothing for virtio-fs) and no SLAVE_REQ (no DAX window here).
 */
uint64_t vu_supported_protocol_features(void)
{
    return (1ull << VHOST_USER_PROTOCOL_F_MQ) |
           (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
           (1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE) |
           (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);
}

/* ---- request table ---- */

enum vu_payload {
    VU_P_NONE,      /* no payload */
    VU_P_U64,
    VU_P_STATE,
    VU_P_ADDR,
    VU_P_MEM_TABLE, /* 8 + 32 * nregions */
    VU_P_MEM_REG,
};

enum vu_fds {
    VU_FD_NONE,     /* no fd */
    VU_FD_ONE,      /* exactly one */
    VU_FD_OPT,      /* zero or one, never kept */
    VU_FD_RING,     /* one unless the NOFD bit is set, then none */
    VU_FD_REGIONS,  /* one per region */
};

enum vu_ring_idx {
    VU_R_NONE,
    VU_R_STATE,     /* payload.state.index */
    VU_R_ADDR,      /* payload.addr.index */
    VU_R_U64,       /* low 8 bits of payload.u64 */
};

typedef int (*vu_handler_fn)(struct vu_dev *dev, struct vu_msg *msg);

struct vu_req_info {
    const char *name;
    vu_handler_fn handle;    /* NULL: not supported, always rejected */
    uint8_t payload;         /* enum vu_payload */
    uint8_t fds;             /* enum vu_fds */
    uint8_t ring;            /* enum vu_ring_idx */
    bool reply;              /* the request has a reply of its own */
};

static const struct vu_req_info vu_reqs[VHOST_USER_MAX];

static const struct vu_req_info *vu_req_info(uint32_t request)
{
    if (request >= VHOST_USER_MAX || !vu_reqs[request].name)
        return NULL;
    return &vu_reqs[request];
}

const char *vu_request_name(uint32_t request)
{
    const struct vu_req_info *ri = vu_req_info(request);

    return ri ? ri->name : "UNKNOWN";
}

static uint32_t vu_payload_size(enum vu_payload p)
{
    switch (p) {
    case VU_P_U64:
        return sizeof(uint64_t);
    case VU_P_STATE:
        return sizeof(struct vu_vring_state);
    case VU_P_ADDR:
        return sizeof(struct vu_vring_addr);
    case VU_P_MEM_REG:
        return sizeof(struct vu_mem_single_region);
    case VU_P_NONE:
    case VU_P_MEM_TABLE:
        break;
    }
    return 0;
}

int vu_msg_validate(const struct vu_dev *dev, const struct vu_msg *msg,
                    const char **why)
{
    const struct vu_req_info *ri = vu_req_info(msg->hdr.request);
    uint32_t size = msg->hdr.size;
    unsigned int want_fds = 0;
    uint64_t idx = 0;

    *why = NULL;
    if ((msg->hdr.flags & VHOST_USER_VERSION_MASK) != VHOST_USER_VERSION) {
        *why = "bad version";
        return -EBADMSG;
    }
    if (msg->hdr.flags & VHOST_USER_REPLY_MASK) {
        *why = "reply flag on a request";
        return -EBADMSG;
    }
    if (!ri) {
        *why = "unknown request";
        return -EINVAL;
    }
    if (!ri->handle) {
        *why = "unsupported request";
        return -EINVAL;
    }
    /* Only read payload fields once the size says they were received. */
    if (ri->payload == VU_P_MEM_TABLE) {
        uint32_t n;

        if (size < offsetof(struct vu_mem_table_desc, regions)) {
            *why = "payload size";
            return -EBADMSG;
        }
        n = msg->payload.mem.nregions;
        /* every region comes with its fd, and a message carries at most 8 */
        if (n == 0 || n > VU_MAX_FDS || n > VFS_MEM_MAX_REGIONS) {
            *why = "region count";
            return -EINVAL;
        }
        if (size != offsetof(struct vu_mem_table_desc, regions) +
                    n * sizeof(struct vu_mem_region_desc)) {
            *why = "payload size";
            return -EBADMSG;
        }
        want_fds = n;
    } else if (size != vu_payload_size(ri->payload)) {
        *why = "payload size";
        return -EBADMSG;
    }

    switch (ri->ring) {
    case VU_R_STATE:
        idx = msg->payload.state.index;
        break;
    case VU_R_ADDR:
        idx = msg->payload.addr.index;
        break;
    case VU_R_U64:
        if (msg->payload.u64 & ~VU_VRING_FD_PAYLOAD_MASK) {
            *why = "reserved bits in ring fd payload";
            return -EINVAL;
        }
        idx = msg->payload.u64 & VHOST_USER_VRING_IDX_MASK;
        break;
    case VU_R_NONE:
        break;
    }
    if (ri->ring != VU_R_NONE && idx >= dev->max_queues) {
        *why = "queue index out of range";
        return -EINVAL;
    }

    switch (ri->fds) {
    case VU_FD_NONE:
        want_fds = 0;
        break;
    case VU_FD_ONE:
        want_fds = 1;
        break;
    case VU_FD_OPT:
        if (msg->nfds > 1) {
            *why = "too many fds";
            return -EBADMSG;
        }
        return 0;
    case VU_FD_RING:
        want_fds = (msg->payload.u64 & VHOST_USER_VRING_NOFD_MASK) ? 0 : 1;
        break;
    case VU_FD_REGIONS:
        break;
    }
    if (msg->nfds != want_fds) {
        *why = msg->nfds < want_fds ? "missing fd" : "too many fds";
        return -EBADMSG;
    }
    return 0;
}

/* ---- ring helpers (vhost-user thread only) ---- */

static bool vu_has_protocol_feature(const struct vu_dev *dev, unsigned int bit)
{
    return dev->protocol_features & (1ull << bit);
}

/*
 * Translate the frontend's ring addresses for a ring of @num entries.
 * Read-only on @dev: callers commit the result under the write lock.
 */
static int vu_vring_map(const struct vu_dev *dev, const struct vu_vring_addr *a,
                        unsigned int num, void **desc, void **avail,
                        void **used)
{
    uint64_t desc_sz, avail_sz, used_sz;

    vq_ring_sizes(num, vu_has_feature(dev, VIRTIO_RING_F_EVENT_IDX),
                  &desc_sz, &avail_sz, &used_sz);
    *desc = vfs_mem_uva_to_ptr(&dev->mem, a->desc_user_addr, desc_sz);
    *avail = vfs_mem_uva_to_ptr(&dev->mem, a->avail_user_addr, avail_sz);
    *used = vfs_mem_uva_to_ptr(&dev->mem, a->used_user_addr, used_sz);
    if (!*desc || !*avail || !*used)
        return -EFAULT;
    return 0;
}

/*
 * Bring ring @idx in line with the current features and memory table.
 * Write lock held. A ring whose addresses no longer translate loses its
 * pointers: a started one then breaks on its next pop instead of touching
 * memory that is gone.
 */
static void vu_vring_refresh(struct vu_dev *dev, unsigned int idx)
{
    struct vu_vring *vr = &dev->vring[idx];
    struct vq *vq = &vr->vq;
    void *desc, *avail, *used;
    int r;

    vq->event_idx = vu_has_feature(dev, VIRTIO_RING_F_EVENT_IDX);
    vq->indirect = vu_has_feature(dev, VIRTIO_RING_F_INDIRECT_DESC);
    if (!vr->addr_set || !vq->num)
        return;
    r = vu_vring_map(dev, &vr->addr, vq->num, &desc, &avail, &used);
    if (r == 0)
        r = vq_set_rings(vq, desc, avail, used);
    if (r < 0) {
        if (vq->desc)
            vfs_err("vring %u: addresses no longer inside guest memory; "
                    "ring disabled until reconfigured", idx);
        vq->desc = NULL;
        vq->avail = NULL;
        vq->used = NULL;
    }
}

static void vu_vrings_refresh(struct vu_dev *dev)
{
    for (unsigned int i = 0; i < dev->max_queues; i++)
        vu_vring_refresh(dev, i);
}

static bool vu_vring_ready(const struct vu_vring *vr)
{
    return vr->vq.num && vr->addr_set && vr->vq.desc && vr->vq.avail &&
           vr->vq.used;
}

/* Without dev->lock: queue_stop waits for threads that take it. */
static void vu_vring_stop(struct vu_dev *dev, unsigned int idx)
{
    struct vu_vring *vr = &dev->vring[idx];

    if (!vr->started)
        return;
    if (dev->iface->queue_stop)
        dev->iface->queue_stop(dev, idx);
    vr->started = false;
    vfs_debug("vring %u stopped", idx);
}

static int vu_vring_start(struct vu_dev *dev, unsigned int idx)
{
    struct vu_vring *vr = &dev->vring[idx];
    struct vq *vq = &vr->vq;
    int r = 0;

    pthread_rwlock_wrlock(&dev->lock);
    /*
     * Continue from what the used ring already shows: after a stop every
     * popped chain was pushed, so this equals the base the frontend sent,
     * and a fresh ring reads 0. The first push after a start notifies.
     */
    vq->used_idx = le16toh(__atomic_load_n(&vq->used->idx, __ATOMIC_ACQUIRE));
    vq->shadow_avail_idx = vq->last_avail_idx;
    vq->signalled_used_valid = false;
    pthread_rwlock_unlock(&dev->lock);

    if (dev->iface->queue_start)
        r = dev->iface->queue_start(dev, idx);
    if (r < 0) {
        vfs_err("vring %u: start failed: %s", idx, strerror(-r));
        return r;
    }
    vr->started = true;
    vfs_debug("vring %u started (num %u, base %u)", idx, vq->num,
              vq->last_avail_idx);
    return 0;
}

static void vu_close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* ---- handlers: 0 or -errno; keep an fd by setting msg->fds[i] = -1 ---- */

static int vu_get_features(struct vu_dev *dev, struct vu_msg *msg)
{
    msg->payload.u64 = vu_supported_features();
    msg->hdr.size = sizeof(uint64_t);
    return 0;
}

static int vu_set_features(struct vu_dev *dev, struct vu_msg *msg)
{
    uint64_t f = msg->payload.u64;

    if (f & ~vu_supported_features()) {
        vfs_warn_ratelimited("vhost-user: SET_FEATURES acks unoffered bits 0x%llx",
                             (unsigned long long)(f & ~vu_supported_features()));
        return -EINVAL;
    }
    pthread_rwlock_wrlock(&dev->lock);
    dev->features = f;
    /* EVENT_IDX changes ring sizes: translated rings are rechecked */
    vu_vrings_refresh(dev);
    pthread_rwlock_unlock(&dev->lock);
    /* vhost-user.rst: without PROTOCOL_FEATURES rings start enabled */
    if (!(f & (1ull << VHOST_USER_F_PROTOCOL_FEATURES))) {
        for (unsigned int i = 0; i < dev->max_queues; i++)
            dev->vring[i].enabled = true;
    }
    vfs_debug("vhost-user: features 0x%llx", (unsigned long long)f);
    return 0;
}

static int vu_set_owner(struct vu_dev *dev, struct vu_msg *msg)
{
    dev->owner_set = true;
    return 0;
}

/*
 * RESET_OWNER / RESET_DEVICE: back to the state after connecting, keeping
 * the memory table (QEMU sends it again on the next start anyway) and the
 * protocol features (negotiated once per connection).
 */
static int vu_reset(struct vu_dev *dev, struct vu_msg *msg)
{
    for (unsigned int i = 0; i < dev->max_queues; i++)
        vu_vring_stop(dev, i);
    pthread_rwlock_wrlock(&dev->lock);
    for (unsigned int i = 0; i < dev->max_queues; i++) {
        struct vu_vring *vr = &dev->vring[i];

        vq_reset(&vr->vq);
        vq_set_call_fd(&vr->vq, -1);
        vu_close_fd(&vr->kick_fd);
        vu_close_fd(&vr->err_fd);
        vr->enabled = false;
        vr->addr_set = false;
        memset(&vr->addr, 0, sizeof(vr->addr));
    }
    dev->features = 0;
    pthread_rwlock_unlock(&dev->lock);
    if (msg->hdr.request == VHOST_USER_RESET_OWNER)
        dev->owner_set = false;
    if (dev->iface->reset)
        dev->iface->reset(dev);
    vfs_info("vhost-user: device reset (%s)", vu_request_name(msg->hdr.request));
    return 0;
}

static int vu_reset_device(struct vu_dev *dev, struct vu_msg *msg)
{
    if (!vu_has_protocol_feature(dev, VHOST_USER_PROTOCOL_F_RESET_DEVICE))
        return -EINVAL;
    return vu_reset(dev, msg);
}

static int vu_set_mem_table(struct vu_dev *dev, struct vu_msg *msg)
{
    uint32_t n = msg->payload.mem.nregions;
    struct vfs_mem_table *tbl;
    int r = 0;

    /* Build the new table aside: a bad region leaves the old one in use. */
    tbl = malloc(sizeof(*tbl));
    if (!tbl)
        return -ENOMEM;
    vfs_mem_init(tbl);
    for (uint32_t i = 0; i < n; i++) {
        struct vu_mem_region_desc rd;

        memcpy(&rd, &msg->payload.mem.regions[i], sizeof(rd));
        r = vfs_mem_add(tbl, rd.guest_phys_addr, rd.memory_size,
                        rd.userspace_addr, rd.mmap_offset, msg->fds[i]);
        if (r < 0) {
            vfs_mem_clear(tbl);
            free(tbl);
            return r;
        }
    }
    /* The fds themselves are not needed: the mappings hold the memory. */

    pthread_rwlock_wrlock(&dev->lock);
    vfs_mem_clear(&dev->mem);
    dev->mem.nregions = tbl->nregions;
    memcpy(dev->mem.regions, tbl->regions,
           tbl->nregions * sizeof(tbl->regions[0]));
    dev->mem_generation++;
    vu_vrings_refresh(dev);
    pthread_rwlock_unlock(&dev->lock);
    free(tbl);
    vfs_debug("vhost-user: memory table with %u regions", n);
    return 0;
}

static int vu_get_max_mem_slots(struct vu_dev *dev, struct vu_msg *msg)
{
    msg->payload.u64 = VFS_MEM_MAX_REGIONS;
    msg->hdr.size = sizeof(uint64_t);
    return 0;
}

static int vu_add_mem_reg(struct vu_dev *dev, struct vu_msg *msg)
{
    struct vu_mem_region_desc rd;
    int r;

    memcpy(&rd, &msg->payload.mem_reg.region, sizeof(rd));
    pthread_rwlock_wrlock(&dev->lock);
    r = vfs_mem_add(&dev->mem, rd.guest_phys_addr, rd.memory_size,
                    rd.userspace_addr, rd.mmap_offset, msg->fds[0]);
    /*
     * No mem_generation bump: existing mappings stay where they are, so
     * pointers popped before the add remain valid. Rings that did not
     * translate before may now.
     */
    if (r == 0)
        vu_vrings_refresh(dev);
    pthread_rwlock_unlock(&dev->lock);
    return r;
}

static int vu_rem_mem_reg(struct vu_dev *dev, struct vu_msg *msg)
{
    struct vu_mem_region_desc rd;
    int r;

    memcpy(&rd, &msg->payload.mem_reg.region, sizeof(rd));
    pthread_rwlock_wrlock(&dev->lock);
    r = vfs_mem_remove(&dev->mem, rd.guest_phys_addr, rd.memory_size,
                       rd.userspace_addr);
    if (r == 0) {
        dev->mem_generation++;
        vu_vrings_refresh(dev);
    }
    pthread_rwlock_unlock(&dev->lock);
    if (r < 0)
        vfs_warn_ratelimited("vhost-user: REM_MEM_REG of unknown region gpa 0x%llx "
                             "size 0x%llx", (unsigned long long)rd.guest_phys_addr,
                             (unsigned long long)rd.memory_size);
    return r;
}

static int vu_set_vring_num(struct vu_dev *dev, struct vu_msg *msg)
{
    unsigned int idx = msg->payload.state.index;
    uint32_t num = msg->payload.state.num;

    if (num == 0 || num > VQ_MAX_SIZE || (num & (num - 1)))
        return -EINVAL;
    /* the queue thread indexes the ring with num: not while it runs */
    if (dev->vring[idx].started)
        return -EBUSY;
    pthread_rwlock_wrlock(&dev->lock);
    dev->vring[idx].vq.num = num;
    vu_vring_refresh(dev, idx);
    pthread_rwlock_unlock(&dev->lock);
    return 0;
}

static int vu_set_vring_addr(struct vu_dev *dev, struct vu_msg *msg)
{
    struct vu_vring_addr a = msg->payload.addr;
    unsigned int idx = a.index;
    struct vu_vring *vr = &dev->vring[idx];
    void *desc, *avail, *used;
    int r;

    /* dirty logging (migration) needs LOG_SHMFD, which is not offered */
    if (a.flags & (1u << VHOST_VRING_F_LOG))
        return -EINVAL;
    /* sizes depend on num: QEMU always sends SET_VRING_NUM first */
    if (!vr->vq.num)
        return -EINVAL;
    pthread_rwlock_wrlock(&dev->lock);
    r = vu_vring_map(dev, &a, vr->vq.num, &desc, &avail, &used);
    if (r == 0)
        r = vq_set_rings(&vr->vq, desc, avail, used);
    if (r == 0) {
        vr->addr = a;
        vr->addr_set = true;
        vr->vq.event_idx = vu_has_feature(dev, VIRTIO_RING_F_EVENT_IDX);
        vr->vq.indirect = vu_has_feature(dev, VIRTIO_RING_F_INDIRECT_DESC);
    }
    pthread_rwlock_unlock(&dev->lock);
    if (r < 0)
        vfs_warn_ratelimited("vhost-user: vring %u addresses desc 0x%llx avail 0x%llx "
                             "used 0x%llx rejected: %s", idx,
                             (unsigned long long)a.desc_user_addr,
                             (unsigned long long)a.avail_user_addr,
                             (unsigned long long)a.used_user_addr,
                             r == -EFAULT ? "outside guest memory" : "misaligned");
    return r;
}

static int vu_set_vring_base(struct vu_dev *dev, struct vu_msg *msg)
{
    unsigned int idx = msg->payload.state.index;
    uint32_t base = msg->payload.state.num;
    struct vq *vq = &dev->vring[idx].vq;

    /* split rings: a 16-bit index */
    if (base > UINT16_MAX)
        return -EINVAL;
    if (dev->vring[idx].started)
        return -EBUSY;
    pthread_rwlock_wrlock(&dev->lock);
    vq->last_avail_idx = (uint16_t)base;
    vq->shadow_avail_idx = (uint16_t)base;
    pthread_rwlock_unlock(&dev->lock);
    return 0;
}

/*
 * vhost-user.rst: GET_VRING_BASE stops the ring; it stays stopped until
 * kicked again. The runtime state is reset (so a ring the guest broke
 * works again after the frontend restarts it) but the configuration and
 * the base are kept.
 */
static int vu_get_vring_base(struct vu_dev *dev, struct vu_msg *msg)
{
    unsigned int idx = msg->payload.state.index;
    struct vu_vring *vr = &dev->vring[idx];
    struct vq *vq = &vr->vq;
    unsigned int num;
    uint16_t base;

    vu_vring_stop(dev, idx);
    vu_close_fd(&vr->kick_fd);

    pthread_rwlock_wrlock(&dev->lock);
    base = vq->last_avail_idx;
    num = vq->num;
    vq_reset(vq);
    vq->num = num;
    vq->last_avail_idx = base;
    vq->shadow_avail_idx = base;
    vu_vring_refresh(dev, idx);
    pthread_rwlock_unlock(&dev->lock);

    msg->payload.state.index = idx;
    msg->payload.state.num = base;
    msg->hdr.size = sizeof(struct vu_vring_state);
    return 0;
}

static int vu_set_vring_kick(struct vu_dev *dev, struct vu_msg *msg)
{
    unsigned int idx = msg->payload.u64 & VHOST_USER_VRING_IDX_MASK;
    bool nofd = msg->payload.u64 & VHOST_USER_VRING_NOFD_MASK;
    struct vu_vring *vr = &dev->vring[idx];

    /* the queue thread polls the old fd: stop it before closing that */
    vu_vring_stop(dev, idx);
    vu_close_fd(&vr->kick_fd);
    if (nofd)
        return 0; /* polling mode is not supported: the ring stays stopped */
    if (!vu_vring_ready(vr)) {
        vfs_warn_ratelimited("vhost-user: vring %u kicked before it was configured",
                             idx);
        return -EINVAL;
    }
    vr->kick_fd = msg->fds[0];
    msg->fds[0] = -1;
    return vu_vring_start(dev, idx);
}

static int vu_set_vring_call(struct vu_dev *dev, struct vu_msg *msg)
{
    unsigned int idx = msg->payload.u64 & VHOST_USER_VRING_IDX_MASK;
    int fd = -1;

    if (!(msg->payload.u64 & VHOST_USER_VRING_NOFD_MASK)) {
        fd = msg->fds[0];
        msg->fds[0] = -1;
    }
    /* may race with pushes on a running ring: vq_set_call_fd serializes */
    vq_set_call_fd(&dev->vring[idx].vq, fd);
    return 0;
}

static int vu_set_vring_err(struct vu_dev *dev, struct vu_msg *msg)
{
    struct vu_vring *vr = &dev->vring[msg->payload.u64 & VHOST_USER_VRING_IDX_MASK];

    vu_close_fd(&vr->err_fd);
    if (!(msg->payload.u64 & VHOST_USER_VRING_NOFD_MASK)) {
        vr->err_fd = msg->fds[0];
        msg->fds[0] = -1;
    }
    return 0;
}

static int vu_get_protocol_features(struct vu_dev *dev, struct vu_msg *msg)
{
    msg->payload.u64 = vu_supported_protocol_features();
    msg->hdr.size = sizeof(uint64_t);
    return 0;
}

static int vu_set_protocol_features(struct vu_dev *dev, struct vu_msg *msg)
{
    uint64_t f = msg->payload.u64;

    if (f & ~vu_supported_protocol_features()) {
        vfs_warn_ratelimited("vhost-user: SET_PROTOCOL_FEATURES acks unoffered "
                             "bits 0x%llx",
                             (unsigned long long)(f & ~vu_supported_protocol_features()));
        return -EINVAL;
    }
    dev->protocol_features = f;
    vfs_debug("vhost-user: protocol features 0x%llx", (unsigned long long)f);
    return 0;
}

static int vu_get_queue_num(struct vu_dev *dev, struct vu_msg *msg)
{
    msg->payload.u64 = dev->max_queues;
    msg->hdr.size = sizeof(uint64_t);
    return 0;
}

/* Recorded only: rings start on their kick fd (see vhost_user.h). */
static int vu_set_vring_enable(struct vu_dev *dev, struct vu_msg *msg)
{
    uint32_t on = msg->payload.state.num;

    if (on > 1)
        return -EINVAL;
    dev->vring[msg->payload.state.index].enabled = on;
    return 0;
}

#define VU_REQ(id, fn, p, f, r, rep)                                     \
    [VHOST_USER_##id] = { #id, fn, VU_P_##p, VU_FD_##f, VU_R_##r, rep }
/* Known to the spec, not supported: rejected, named in the log. */
#define VU_UNSUPPORTED(id, rep) [VHOST_USER_##id] = { .name = #id, .reply = rep }

static const struct vu_req_info vu_reqs[VHOST_USER_MAX] = {
    VU_REQ(GET_FEATURES, vu_get_features, NONE, NONE, NONE, true),
    VU_REQ(SET_FEATURES, vu_set_features, U64, NONE, NONE, false),
    VU_REQ(SET_OWNER, vu_set_owner, NONE, NONE, NONE, false),
    VU_REQ(RESET_OWNER, vu_reset, NONE, NONE, NONE, false),
    VU_REQ(SET_MEM_TABLE, vu_set_mem_table, MEM_TABLE, REGIONS, NONE, false),
    /* replied to only with LOG_SHMFD, which is not offered */
    VU_UNSUPPORTED(SET_LOG_BASE, false),
    VU_UNSUPPORTED(SET_LOG_FD, false),
    VU_REQ(SET_VRING_NUM, vu_set_vring_num, STATE, NONE, STATE, false),
    VU_REQ(SET_VRING_ADDR, vu_set_vring_addr, ADDR, NONE, ADDR, false),
    VU_REQ(SET_VRING_BASE, vu_set_vring_base, STATE, NONE, STATE, false),
    VU_REQ(GET_VRING_BASE, vu_get_vring_base, STATE, NONE, STATE, true),
    VU_REQ(SET_VRING_KICK, vu_set_vring_kick, U64, RING, U64, false),
    VU_REQ(SET_VRING_CALL, vu_set_vring_call, U64, RING, U64, false),
    VU_REQ(SET_VRING_ERR, vu_set_vring_err, U64, RING, U64, false),
    VU_REQ(GET_PROTOCOL_FEATURES, vu_get_protocol_features, NONE, NONE, NONE, true),
    VU_REQ(SET_PROTOCOL_FEATURES, vu_set_protocol_features, U64, NONE, NONE, false),
    VU_REQ(GET_QUEUE_NUM, vu_get_queue_num, NONE, NONE, NONE, true),
    VU_REQ(SET_VRING_ENABLE, vu_set_vring_enable, STATE, NONE, STATE, false),
    VU_UNSUPPORTED(SEND_RARP, false),
    VU_UNSUPPORTED(NET_SET_MTU, false),
    VU_UNSUPPORTED(SET_SLAVE_REQ_FD, false),
    VU_UNSUPPORTED(IOTLB_MSG, false),
    VU_UNSUPPORTED(SET_VRING_ENDIAN, false),
    VU_UNSUPPORTED(GET_CONFIG, true),
    VU_UNSUPPORTED(SET_CONFIG, false),
    VU_UNSUPPORTED(CREATE_CRYPTO_SESSION, true),
    VU_UNSUPPORTED(CLOSE_CRYPTO_SESSION, false),
    VU_UNSUPPORTED(POSTCOPY_ADVISE, true),
    VU_UNSUPPORTED(POSTCOPY_LISTEN, false),
    VU_UNSUPPORTED(POSTCOPY_END, false),
    VU_UNSUPPORTED(GET_INFLIGHT_FD, true),
    VU_UNSUPPORTED(SET_INFLIGHT_FD, false),
    VU_UNSUPPORTED(GPU_SET_SOCKET, false),
    VU_REQ(RESET_DEVICE, vu_reset_device, NONE, NONE, NONE, false),
    VU_UNSUPPORTED(VRING_KICK, false),
    VU_REQ(GET_MAX_MEM_SLOTS, vu_get_max_mem_slots, NONE, NONE, NONE, true),
    VU_REQ(ADD_MEM_REG, vu_add_mem_reg, MEM_REG, ONE, NONE, false),
    VU_REQ(REM_MEM_REG, vu_rem_mem_reg, MEM_REG, OPT, NONE, false),
    VU_UNSUPPORTED(SET_STATUS, false),
    VU_UNSUPPORTED(GET_STATUS, true),
};

/* ---- socket I/O ---- */

static void vu_msg_close_fds(struct vu_msg *msg)
{
    for (unsigned int i = 0; i < msg->nfds; i++) {
        if (msg->fds[i] >= 0)
            close(msg->fds[i]);
        msg->fds[i] = -1;
    }
    msg->nfds = 0;
}

/*
 * Take the fds of one recvmsg() into @msg. Fds beyond VU_MAX_FDS (across
 * the reads of one message) are closed and make the message invalid.
 */
static void vu_collect_fds(struct vu_msg *msg, struct msghdr *mh, bool *bad_fds)
{
    for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c)) {
        size_t n;

        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
            continue;
        n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < n; i++) {
            int fd;

            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(fd));
            if (msg->nfds < VU_MAX_FDS) {
                msg->fds[msg->nfds++] = fd;
            } else {
                close(fd);
                *bad_fds = true;
            }
        }
    }
    /* the kernel dropped fds that did not fit: the message is incomplete */
    if (mh->msg_flags & MSG_CTRUNC)
        *bad_fds = true;
}

/*
 * Read exactly @len bytes. Returns 0, -ECONNRESET on EOF, or -errno.
 * @*got tells how much arrived before an error.
 */
static int vu_recv_full(struct vu_dev *dev, struct vu_msg *msg, void *buf,
                        size_t len, size_t *got, bool *bad_fds)
{
    *got = 0;
    while (*got < len) {
        union {
            char buf[CMSG_SPACE(VU_MAX_FDS * sizeof(int))];
            struct cmsghdr align;
        } ctl;
        struct iovec iov = {
            .iov_base = (uint8_t *)buf + *got,
            .iov_len = len - *got,
        };
        struct msghdr mh = {
            .msg_iov = &iov,
            .msg_iovlen = 1,
            .msg_control = ctl.buf,
            .msg_controllen = sizeof(ctl.buf),
        };
        ssize_t n = recvmsg(dev->sock, &mh, MSG_CMSG_CLOEXEC);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        vu_collect_fds(msg, &mh, bad_fds);
        if (n == 0)
            return -ECONNRESET;
        *got += (size_t)n;
    }
    return 0;
}

/*
 * Receive one message. Returns 0 with *@reject set (or not) when a whole
 * message was consumed, or -errno when the stream is lost. An oversized
 * payload is read and thrown away so the next header is found.
 */
static int vu_msg_recv(struct vu_dev *dev, struct vu_msg *msg, const char **reject)
{
    bool bad_fds = false;
    size_t got;
    int r;

    msg->nfds = 0;
    *reject = NULL;
    r = vu_recv_full(dev, msg, &msg->hdr, sizeof(msg->hdr), &got, &bad_fds);
    if (r < 0) {
        if (got)
            vfs_warn("vhost-user: connection lost inside a message header (%zu bytes)",
                     got);
        goto fail;
    }
    if (msg->hdr.size <= VU_MAX_PAYLOAD) {
        r = vu_recv_full(dev, msg, msg->payload.raw, msg->hdr.size, &got,
                         &bad_fds);
    } else {
        uint32_t left = msg->hdr.size;

        *reject = "payload too large";
        while (left && r == 0) {
            uint32_t chunk = left < VU_MAX_PAYLOAD ? left : VU_MAX_PAYLOAD;

            r = vu_recv_full(dev, msg, msg->payload.raw, chunk, &got, &bad_fds);
            left -= chunk;
        }
    }
    if (r < 0) {
        vfs_warn("vhost-user: connection lost inside the payload of %s (%u bytes)",
                 vu_request_name(msg->hdr.request), msg->hdr.size);
        goto fail;
    }
    if (bad_fds && !*reject)
        *reject = "too many fds";
    return 0;

fail:
    vu_msg_close_fds(msg);
    return r;
}

static int vu_send_all(struct vu_dev *dev, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)iovcnt };
        ssize_t n = sendmsg(dev->sock, &mh, MSG_NOSIGNAL);

        if (n < 0) {
            if (errno == EINTR)
                continue;
            return errno == EPIPE ? -ECONNRESET : -errno;
        }
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (uint8_t *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

static int vu_send_reply(struct vu_dev *dev, uint32_t request, const void *payload,
                         uint32_t size)
{
    struct vu_msg_hdr hdr = {
        .request = request,
        .flags = VHOST_USER_VERSION | VHOST_USER_REPLY_MASK,
        .size = size,
    };
    struct iovec iov[2] = {
        { .iov_base = &hdr, .iov_len = sizeof(hdr) },
        { .iov_base = (void *)payload, .iov_len = size },
    };

    return vu_send_all(dev, iov, size ? 2 : 1);
}

int vu_dev_dispatch(struct vu_dev *dev)
{
    /* static-sized but large: not on the (possibly small) thread stack */
    struct vu_msg *msg = malloc(sizeof(*msg));
    const struct vu_req_info *ri;
    const char *why = NULL;
    uint32_t request;
    uint32_t reject = TRACE_VU_REJECT_INVALID;
    bool need_reply;
    int r, ret = 0;

    if (!msg)
        return -ENOMEM;
    r = vu_msg_recv(dev, msg, &why);
    if (r < 0) {
        free(msg);
        return r;
    }
    request = msg->hdr.request;
    ri = vu_req_info(request);
    need_reply = msg->hdr.flags & VHOST_USER_NEED_REPLY_MASK;
    trace_vu_msg(request, msg->hdr.flags, msg->hdr.size, msg->nfds);
    vfs_debug("vhost-user: %s (%u) flags 0x%x size %u nfds %u",
              vu_request_name(request), request, msg->hdr.flags, msg->hdr.size,
              msg->nfds);

    if (why) {
        r = -EBADMSG;
        reject = TRACE_VU_REJECT_RECV;
    } else {
        r = vu_msg_validate(dev, msg, &why);
    }
    if (r == 0) {
        r = ri->handle(dev, msg);
        if (r < 0) {
            why = "handler failed";
            reject = TRACE_VU_REJECT_HANDLER;
        }
    }
    if (r < 0) {
        trace_vu_msg_rejected(request, reject, r);
        vfs_warn_ratelimited("vhost-user: %s (%u) rejected: %s (%s)",
                             vu_request_name(request), request, why,
                             strerror(-r));
    }
    /* every fd a handler did not keep, on every path */
    vu_msg_close_fds(msg);

    if (ri && ri->reply) {
        if (r == 0)
            ret = vu_send_reply(dev, request, msg->payload.raw, msg->hdr.size);
        else
            ret = vu_send_reply(dev, request, NULL, 0);
    } else if (need_reply &&
               vu_has_protocol_feature(dev, VHOST_USER_PROTOCOL_F_REPLY_ACK)) {
        uint64_t ack = r < 0 ? (uint64_t)-r : 0;

        ret = vu_send_reply(dev, request, &ack, sizeof(ack));
    }
    free(msg);
    return ret;
}

/* ---- lifetime ---- */

int vu_dev_init(struct vu_dev *dev, int sock, unsigned int max_queues,
                const struct vu_dev_iface *iface, void *opaque)
{
    pthread_rwlockattr_t attr;
    int r;

    if (sock < 0 || !iface || max_queues < 2 || max_queues > VU_MAX_QUEUES)
        return -EINVAL;
    memset(dev, 0, sizeof(*dev));
    r = -pthread_rwlockattr_init(&attr);
    if (r < 0)
        return r;
    /*
     * Queue threads take the read lock for every batch: with the default
     * (reader-preferring) kind, a busy guest would starve SET_MEM_TABLE.
     */
    pthread_rwlockattr_setkind_np(&attr,
                                  PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    r = -pthread_rwlock_init(&dev->lock, &attr);
    pthread_rwlockattr_destroy(&attr);
    if (r < 0)
        return r;
    dev->sock = sock;
    dev->max_queues = max_queues;
    dev->iface = iface;
    dev->opaque = opaque;
    vfs_mem_init(&dev->mem);
    for (unsigned int i = 0; i < VU_MAX_QUEUES; i++) {
        vq_init(&dev->vring[i].vq);
        dev->vring[i].kick_fd = -1;
        dev->vring[i].err_fd = -1;
    }
    return 0;
}

void vu_dev_destroy(struct vu_dev *dev)
{
    for (unsigned int i = 0; i < dev->max_queues; i++)
        vu_vring_stop(dev, i);
    for (unsigned int i = 0; i < VU_MAX_QUEUES; i++) {
        vu_close_fd(&dev->vring[i].kick_fd);
        vu_close_fd(&dev->vring[i].err_fd);
        vq_destroy(&dev->vring[i].vq);
    }
    vfs_mem_clear(&dev->mem);
    vu_close_fd(&dev->sock);
    pthread_rwlock_destroy(&dev->lock);
}
