/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vhost-user backend (QEMU docs/interop/vhost-user.rst), the part of it a
 * vhost-user-fs device needs, as QEMU 7.2 drives it.
 *
 * One thread (the main loop) reads and handles messages with
 * vu_dev_dispatch(). Ring processing happens on queue threads owned by the
 * device layer (fuse_virtio.c), started and stopped through vu_dev_iface.
 *
 * Locking: dev->lock is a writer-preferring rwlock. The vhost-user thread
 * takes it for writing while it changes the memory table or ring
 * addresses; every thread that dereferences guest memory (pop, request
 * processing, reply, push) holds it for reading for the duration.
 */
#ifndef VFS_VHOST_USER_H
#define VFS_VHOST_USER_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest_mem.h"
#include "virtqueue.h"

/* hiprio + up to 16 request queues */
#define VU_MAX_QUEUES 17
/* Payload bound: large enough for SET_MEM_TABLE with 8 regions (QEMU 7.2) */
#define VU_MAX_PAYLOAD 4096
#define VU_MAX_FDS 8

enum vu_request {
    VHOST_USER_NONE = 0,
    VHOST_USER_GET_FEATURES = 1,
    VHOST_USER_SET_FEATURES = 2,
    VHOST_USER_SET_OWNER = 3,
    VHOST_USER_RESET_OWNER = 4,
    VHOST_USER_SET_MEM_TABLE = 5,
    VHOST_USER_SET_LOG_BASE = 6,
    VHOST_USER_SET_LOG_FD = 7,
    VHOST_USER_SET_VRING_NUM = 8,
    VHOST_USER_SET_VRING_ADDR = 9,
    VHOST_USER_SET_VRING_BASE = 10,
    VHOST_USER_GET_VRING_BASE = 11,
    VHOST_USER_SET_VRING_KICK = 12,
    VHOST_USER_SET_VRING_CALL = 13,
    VHOST_USER_SET_VRING_ERR = 14,
    VHOST_USER_GET_PROTOCOL_FEATURES = 15,
    VHOST_USER_SET_PROTOCOL_FEATURES = 16,
    VHOST_USER_GET_QUEUE_NUM = 17,
    VHOST_USER_SET_VRING_ENABLE = 18,
    VHOST_USER_SEND_RARP = 19,
    VHOST_USER_NET_SET_MTU = 20,
    VHOST_USER_SET_SLAVE_REQ_FD = 21,
    VHOST_USER_IOTLB_MSG = 22,
    VHOST_USER_SET_VRING_ENDIAN = 23,
    VHOST_USER_GET_CONFIG = 24,
    VHOST_USER_SET_CONFIG = 25,
    VHOST_USER_CREATE_CRYPTO_SESSION = 26,
    VHOST_USER_CLOSE_CRYPTO_SESSION = 27,
    VHOST_USER_POSTCOPY_ADVISE = 28,
    VHOST_USER_POSTCOPY_LISTEN = 29,
    VHOST_USER_POSTCOPY_END = 30,
    VHOST_USER_GET_INFLIGHT_FD = 31,
    VHOST_USER_SET_INFLIGHT_FD = 32,
    VHOST_USER_GPU_SET_SOCKET = 33,
    VHOST_USER_RESET_DEVICE = 34,
    VHOST_USER_VRING_KICK = 35,
    VHOST_USER_GET_MAX_MEM_SLOTS = 36,
    VHOST_USER_ADD_MEM_REG = 37,
    VHOST_USER_REM_MEM_REG = 38,
    VHOST_USER_SET_STATUS = 39,
    VHOST_USER_GET_STATUS = 40,
    VHOST_USER_MAX
};

/* protocol feature bits */
#define VHOST_USER_PROTOCOL_F_MQ 0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD 1
#define VHOST_USER_PROTOCOL_F_RARP 2
#define VHOST_USER_PROTOCOL_F_REPLY_ACK 3
#define VHOST_USER_PROTOCOL_F_MTU 4
#define VHOST_USER_PROTOCOL_F_SLAVE_REQ 5
#define VHOST_USER_PROTOCOL_F_CROSS_ENDIAN 6
#define VHOST_USER_PROTOCOL_F_CRYPTO_SESSION 7
#define VHOST_USER_PROTOCOL_F_PAGEFAULT 8
#define VHOST_USER_PROTOCOL_F_CONFIG 9
#define VHOST_USER_PROTOCOL_F_SLAVE_SEND_FD 10
#define VHOST_USER_PROTOCOL_F_HOST_NOTIFIER 11
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD 12
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE 13
#define VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS 14
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15
#define VHOST_USER_PROTOCOL_F_STATUS 16

#define VHOST_USER_F_PROTOCOL_FEATURES 30

#define VHOST_USER_VERSION_MASK 0x3u
#define VHOST_USER_VERSION 0x1u
#define VHOST_USER_REPLY_MASK (1u << 2)
#define VHOST_USER_NEED_REPLY_MASK (1u << 3)
#define VHOST_USER_VRING_IDX_MASK 0xffull
#define VHOST_USER_VRING_NOFD_MASK (1ull << 8)

struct vu_msg_hdr {
    uint32_t request;
    uint32_t flags;
    uint32_t size; /* payload bytes following the header */
} __attribute__((packed));

struct vu_vring_state {
    uint32_t index;
    uint32_t num;
} __attribute__((packed));

struct vu_vring_addr {
    uint32_t index;
    uint32_t flags;
    uint64_t desc_user_addr;
    uint64_t used_user_addr;
    uint64_t avail_user_addr;
    uint64_t log_guest_addr;
} __attribute__((packed));

struct vu_mem_region_desc {
    uint64_t guest_phys_addr;
    uint64_t memory_size;
    uint64_t userspace_addr;
    uint64_t mmap_offset;
} __attribute__((packed));

struct vu_mem_table_desc {
    uint32_t nregions;
    uint32_t padding;
    struct vu_mem_region_desc regions[]; /* nregions entries */
} __attribute__((packed));

struct vu_mem_single_region {
    uint64_t padding;
    struct vu_mem_region_desc region;
} __attribute__((packed));

struct vu_msg {
    struct vu_msg_hdr hdr;
    union {
        uint64_t u64;
        struct vu_vring_state state;
        struct vu_vring_addr addr;
        struct vu_mem_table_desc mem;
        struct vu_mem_single_region mem_reg;
        uint8_t raw[VU_MAX_PAYLOAD];
    } payload;
    int fds[VU_MAX_FDS];
    unsigned int nfds;
} __attribute__((packed));

struct vu_dev;

/* Callbacks into the device layer (fuse_virtio.c). */
struct vu_dev_iface {
    /*
     * Ring @qidx has addresses, a size and a kick fd: start processing it
     * (spawn its queue thread). Called on the vhost-user thread without
     * dev->lock held. Return 0 or -errno (the ring then stays stopped).
     */
    int (*queue_start)(struct vu_dev *dev, unsigned int qidx);
    /*
     * Stop ring @qidx: the queue thread exits and every request already
     * popped from it (pool workers included) has been pushed back before
     * this returns. Called without dev->lock held.
     */
    void (*queue_stop)(struct vu_dev *dev, unsigned int qidx);
    /* Device reset (RESET_OWNER/RESET_DEVICE): every queue is already stopped. */
    void (*reset)(struct vu_dev *dev);
};

struct vu_vring {
    struct vq vq;
    int kick_fd;               /* -1 if none */
    int err_fd;                /* -1 if none */
    bool started;              /* queue_start() succeeded, no stop since */
    bool enabled;              /* SET_VRING_ENABLE state */
    bool addr_set;
    struct vu_vring_addr addr; /* as given by the frontend */
};

struct vu_dev {
    int sock;                  /* connected vhost-user socket */
    unsigned int max_queues;   /* <= VU_MAX_QUEUES, reported by GET_QUEUE_NUM */
    uint64_t features;         /* acked virtio features */
    uint64_t protocol_features;/* acked protocol features */
    bool owner_set;
    pthread_rwlock_t lock;     /* see top of file */
    struct vfs_mem_table mem;
    /* Incremented (under the write lock) on every memory table change, so
     * a request that ran without the lock (side pool) can tell whether the
     * pointers it popped are still valid before it writes its reply. */
    uint64_t mem_generation;
    struct vu_vring vring[VU_MAX_QUEUES];
    const struct vu_dev_iface *iface;
    void *opaque;              /* for the device layer */
};

/* Virtio features we offer (VERSION_1, EVENT_IDX, INDIRECT_DESC, PROTOCOL_FEATURES). */
uint64_t vu_supported_features(void);
uint64_t vu_supported_protocol_features(void);

/*
 * @sock is a connected stream socket; @max_queues in [2, VU_MAX_QUEUES].
 * Returns 0 or -errno.
 */
int vu_dev_init(struct vu_dev *dev, int sock, unsigned int max_queues,
                const struct vu_dev_iface *iface, void *opaque);
/* Stops started queues, unmaps memory, closes fds (and dev->sock). */
void vu_dev_destroy(struct vu_dev *dev);

/*
 * Read one message from dev->sock (blocking) and handle it. Malformed or
 * unknown messages are logged and rejected (an error reply when the sender
 * expects one); their fds are closed; the connection stays usable.
 * Returns 0 when a message was handled (accepted or rejected), -ECONNRESET
 * when the frontend closed the connection, another -errno if the socket
 * failed or the stream cannot be resynchronized.
 */
int vu_dev_dispatch(struct vu_dev *dev);

/*
 * Check a received message before it is handled: version flags, payload
 * size exact for the request type, fd count as the request requires,
 * queue index in range. Returns 0 or -EINVAL/-EBADMSG with a static reason
 * in *why. Exposed for unit tests.
 */
int vu_msg_validate(const struct vu_dev *dev, const struct vu_msg *msg,
                    const char **why);

/* Human-readable name of a request id ("SET_MEM_TABLE"), or "UNKNOWN". */
const char *vu_request_name(uint32_t request);

/* Helpers for the device layer. */
static inline bool vu_has_feature(const struct vu_dev *dev, unsigned int bit)
{
    return dev->features & (1ull << bit);
}

#endif
