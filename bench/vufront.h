/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * vufront: the VM side of a vhost-user-fs device without a VM.
 *
 * It plays what QEMU (vhost-user frontend) and the guest's virtio driver do
 * together: spawn or connect to a vhost-user-fs daemon, negotiate features
 * like QEMU 7.2, share "guest memory" (a memfd) with it, build split
 * virtqueues in that memory, kick and wait for calls through eventfds.
 * The FUSE layer on top lives in fuse_client.h.
 *
 * Conventions (liburing style): functions return >= 0 on success and
 * -errno on failure; errno is never part of the API.  No call blocks
 * without a timeout.
 *
 * Threads: the guest-memory allocator is thread safe.  A virtqueue must be
 * driven by one thread at a time; different queues may be driven by
 * different threads.  Control-socket calls (vuf_msg_*, vuf_dev_start, ...)
 * must not run concurrently with each other.
 */
#ifndef VUFRONT_H
#define VUFRONT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- vhost-user protocol constants (docs/interop/vhost-user.rst) ---- */

enum vuf_request {
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
    VHOST_USER_GET_INFLIGHT_FD = 31,
    VHOST_USER_SET_INFLIGHT_FD = 32,
    VHOST_USER_RESET_DEVICE = 34,
    VHOST_USER_VRING_KICK = 35,
    VHOST_USER_GET_MAX_MEM_SLOTS = 36,
    VHOST_USER_ADD_MEM_REG = 37,
    VHOST_USER_REM_MEM_REG = 38,
    VHOST_USER_SET_STATUS = 39,
    VHOST_USER_GET_STATUS = 40,
};

#define VHOST_USER_VERSION          0x1u
#define VHOST_USER_VERSION_MASK     0x3u
#define VHOST_USER_REPLY_MASK       (1u << 2)
#define VHOST_USER_NEED_REPLY_MASK  (1u << 3)
#define VHOST_USER_HDR_SIZE         12u

/* Protocol feature bits (GET/SET_PROTOCOL_FEATURES) */
#define VHOST_USER_PROTOCOL_F_MQ                  0
#define VHOST_USER_PROTOCOL_F_LOG_SHMFD           1
#define VHOST_USER_PROTOCOL_F_REPLY_ACK           3
#define VHOST_USER_PROTOCOL_F_SLAVE_REQ           5
#define VHOST_USER_PROTOCOL_F_CONFIG              9
#define VHOST_USER_PROTOCOL_F_SLAVE_SEND_FD      10
#define VHOST_USER_PROTOCOL_F_HOST_NOTIFIER      11
#define VHOST_USER_PROTOCOL_F_INFLIGHT_SHMFD     12
#define VHOST_USER_PROTOCOL_F_RESET_DEVICE       13
#define VHOST_USER_PROTOCOL_F_INBAND_NOTIFICATIONS 14
#define VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS 15
#define VHOST_USER_PROTOCOL_F_STATUS             16

/* Virtio feature bits that matter here */
#define VUF_F_INDIRECT_DESC          28
#define VUF_F_EVENT_IDX              29
#define VUF_F_PROTOCOL_FEATURES      30 /* VHOST_USER_F_PROTOCOL_FEATURES */
#define VUF_F_VERSION_1              32

#define VUF_MAX_FDS        8
#define VUF_MAX_REGIONS    8
#define VUF_MAX_QUEUES     64
#define VUF_MSG_MAX_PAYLOAD 4096

/* ---- daemon processes ---- */

enum vuf_spawn_mode {
    /* argv carries --socket-path=P (or opts.socket_path names it): wait for
     * P to appear, then connect. */
    VUF_SPAWN_SOCKET_PATH,
    /* Append --fd=N, N being one end of a connected socketpair (our daemon). */
    VUF_SPAWN_FD_CONNECTED,
    /* Append --fd=N, N being a *listening* unix socket (what upstream's
     * --fd expects: it calls accept() on it); we connect to it. */
    VUF_SPAWN_FD_LISTEN,
};

struct vuf_spawn_opts {
    const char *const *argv;   /* NULL-terminated; argv[0] is the program */
    const char *const *env;    /* extra "NAME=VALUE" entries, NULL-terminated, or NULL */
    enum vuf_spawn_mode mode;
    const char *socket_path;   /* SOCKET_PATH mode: overrides --socket-path= parsing */
    const char *log_path;      /* daemon stdout/stderr go here (append); NULL: inherit */
    int timeout_ms;            /* for the socket to appear; 0 means 10 s */
    uint64_t cpu_mask;         /* CPUs 0..63 the daemon may run on; 0: inherit */
};

typedef struct vuf_daemon vuf_daemon;

/* Starts the daemon and connects.  -ECHILD: it exited before accepting
 * (see its log); -ETIMEDOUT: the socket never appeared.  In SOCKET_PATH mode
 * a stale socket file is removed first and the file is removed again by
 * vuf_daemon_free(). */
int vuf_daemon_spawn(const struct vuf_spawn_opts *o, vuf_daemon **out);
/* The connected socket; ownership moves to the caller (pass it to vuf_dev_new). */
int vuf_daemon_take_fd(vuf_daemon *d);
pid_t vuf_daemon_pid(const vuf_daemon *d);
/* The process that serves: a sandbox forks and its leaf child serves; the
 * daemon's own pid when it did not fork (or /proc is unreadable). */
pid_t vuf_daemon_serving_pid(const vuf_daemon *d);
/* 1 if the daemon has exited (status in *wstatus, may be NULL), 0 if it is
 * still running after timeout_ms, -errno on error. */
int vuf_daemon_wait(vuf_daemon *d, int timeout_ms, int *wstatus);
/* SIGTERM, then SIGKILL after 2 s; reaps it; closes fds; frees. NULL ok. */
void vuf_daemon_free(vuf_daemon *d);
/* A printable command line (env additions first), owned by d. */
const char *vuf_daemon_cmdline(const vuf_daemon *d);

/* Connect to a unix socket path, retrying until it accepts or timeout. */
int vuf_connect_path(const char *path, int timeout_ms);

/* ---- the device ---- */

struct vuf_opts {
    size_t mem_size;             /* guest memory; 0: 256 MiB */
    unsigned mem_regions;        /* 1..8 regions of one memfd, GPA gaps between; 0: 1 */
    unsigned num_request_queues; /* 0: 1 */
    unsigned queue_size;         /* power of two <= 32768; 0: 128 (QEMU's default) */
    bool event_idx;              /* negotiate VIRTIO_RING_F_EVENT_IDX if offered */
    bool indirect_desc;          /* negotiate VIRTIO_RING_F_INDIRECT_DESC if offered */
    bool no_reply_ack;           /* do not negotiate REPLY_ACK */
    bool no_mem_slots;           /* do not negotiate CONFIGURE_MEM_SLOTS (use SET_MEM_TABLE) */
    int timeout_ms;              /* replies and completions; 0: 5000 */
};

typedef struct vuf_dev vuf_dev;
typedef struct vuf_vq vuf_vq;

/* Takes ownership of sock_fd.  Creates guest memory, rings and eventfds;
 * sends nothing. */
int vuf_dev_new(int sock_fd, const struct vuf_opts *o, vuf_dev **out);
/* Closes the socket (the daemon sees the frontend go away). NULL ok. */
void vuf_dev_free(vuf_dev *d);

/* The whole QEMU 7.2 start sequence: negotiate + mem table + all queues. */
int vuf_dev_start(vuf_dev *d);
/* Steps of vuf_dev_start, for tests that want to stop half-way:
 * GET_FEATURES, GET/SET_PROTOCOL_FEATURES, GET_QUEUE_NUM, GET_MAX_MEM_SLOTS,
 * SET_OWNER, SET_FEATURES. */
int vuf_dev_negotiate(vuf_dev *d);
/* SET_MEM_TABLE, or one ADD_MEM_REG per region when CONFIGURE_MEM_SLOTS. */
int vuf_dev_set_mem_table(vuf_dev *d);
/* SET_VRING_NUM/BASE/ADDR/KICK/CALL, SET_VRING_ENABLE(1). */
int vuf_dev_start_queue(vuf_dev *d, unsigned idx);
/* SET_VRING_ENABLE(0) (if protocol features), GET_VRING_BASE; *base may be NULL. */
int vuf_dev_stop_queue(vuf_dev *d, unsigned idx, uint32_t *base);
int vuf_dev_stop(vuf_dev *d);

uint64_t vuf_dev_features(const vuf_dev *d);          /* acked virtio features */
uint64_t vuf_dev_offered_features(const vuf_dev *d);  /* GET_FEATURES */
uint64_t vuf_dev_protocol_features(const vuf_dev *d); /* acked */
uint64_t vuf_dev_offered_protocol_features(const vuf_dev *d);
unsigned vuf_dev_backend_max_queues(const vuf_dev *d);/* GET_QUEUE_NUM, 0 if not asked */
unsigned vuf_dev_num_queues(const vuf_dev *d);        /* 1 hiprio + request queues */
vuf_vq *vuf_dev_vq(vuf_dev *d, unsigned idx);
int vuf_dev_sock(const vuf_dev *d);
int vuf_dev_timeout(const vuf_dev *d);

/* ---- raw vhost-user messages (hostile input tests) ---- */

struct vuf_msg {
    uint32_t request;
    uint32_t flags;
    uint32_t size;
    uint8_t payload[VUF_MSG_MAX_PAYLOAD];
    int fds[VUF_MAX_FDS];
    unsigned nfds;
};

/* Header {request, flags, size} + size bytes of payload + fds.  flags are
 * sent verbatim (add VHOST_USER_VERSION yourself). */
int vuf_msg_send(vuf_dev *d, uint32_t request, uint32_t flags,
                 const void *payload, uint32_t size, const int *fds, unsigned nfds);
/* Arbitrary bytes on the socket in one sendmsg (fds attached). */
int vuf_send_bytes(vuf_dev *d, const void *buf, size_t len, const int *fds, unsigned nfds);
/* One message; -ETIMEDOUT, -ECONNRESET on EOF, -EPROTO on a short/oversized one.
 * Received fds are owned by the caller. */
int vuf_msg_recv(vuf_dev *d, struct vuf_msg *m, int timeout_ms);
/* Request with a u64 reply (GET_FEATURES, GET_VRING_BASE...). */
int vuf_msg_get_u64(vuf_dev *d, uint32_t request, const void *payload,
                    uint32_t size, uint64_t *val);
/* Request without reply; with REPLY_ACK negotiated sets NEED_REPLY and
 * returns -(ack value) if the backend reports failure. */
int vuf_msg_set(vuf_dev *d, uint32_t request, const void *payload,
                uint32_t size, const int *fds, unsigned nfds);
/* Cheap check that the backend is still there: 1 connected, 0 gone. */
int vuf_dev_alive(vuf_dev *d);

/* ---- guest memory ---- */

/* Returns a guest physical address (never 0), or 0 when full.  Never
 * straddles regions.  Thread safe. */
uint64_t vuf_mem_alloc(vuf_dev *d, size_t len);
void vuf_mem_free(vuf_dev *d, uint64_t gpa, size_t len);
/* Frontend pointer for [gpa, gpa+len), or NULL if not inside one region. */
void *vuf_mem_ptr(vuf_dev *d, uint64_t gpa, size_t len);
uint64_t vuf_mem_gpa(vuf_dev *d, const void *p);  /* 0 if not guest memory */
/* Region i: its GPA, size, frontend address (= the uaddr announced). */
int vuf_mem_region(const vuf_dev *d, unsigned i, uint64_t *gpa, uint64_t *size, void **host);
unsigned vuf_mem_nregions(const vuf_dev *d);

/* ---- split virtqueues (virtio 1.x §2.7) ---- */

struct vuf_seg {
    uint64_t gpa;
    uint32_t len;
};

/* Chain of device-readable segments then device-writable ones.  With
 * indirect (needs VIRTIO_RING_F_INDIRECT_DESC) the chain lives in a table in
 * guest memory and takes one ring descriptor.  Does not kick.  Returns the
 * head index, or -ENOSPC (ring full), -EINVAL. */
int vuf_vq_add(vuf_vq *q, const struct vuf_seg *rd, unsigned nrd,
               const struct vuf_seg *wr, unsigned nwr, bool indirect, void *token);

/* A descriptor exactly as written into the table. */
struct vuf_raw_desc {
    uint64_t addr;
    uint32_t len;
    uint16_t flags;
    uint16_t next;
};
#define VUF_RAW_VERBATIM_NEXT 1u /* write next fields as given, not remapped */
/* Puts n descriptors into n free table slots and publishes the slot of d[0]
 * as a new avail head.  Unless VUF_RAW_VERBATIM_NEXT, a next < n is taken as
 * an index into d[] and remapped to that descriptor's slot; any other value
 * is written verbatim.  Indirect tables are plain guest memory: build them
 * with vuf_mem_alloc and point a VRING_DESC_F_INDIRECT descriptor at them.
 * The slots are given back when the head completes. Returns the head. */
int vuf_vq_add_raw(vuf_vq *q, const struct vuf_raw_desc *d, unsigned n,
                   unsigned flags, void *token);
/* Publish an arbitrary value in the avail ring (no slot, not tracked). */
int vuf_vq_publish_raw_head(vuf_vq *q, uint16_t head);

/* Notify the device if it wants it (EVENT_IDX / NO_NOTIFY).  Returns 1 if the
 * eventfd was written, 0 if suppressed. */
int vuf_vq_kick(vuf_vq *q);
void vuf_vq_kick_force(vuf_vq *q);

/* Take one used entry.  1: token and len set; 0: none; -EPROTO: the device
 * returned an id that is not an in-flight head (counted in stats, *len and
 * the id in *token as (void*)(uintptr_t)id). */
int vuf_vq_pop_used(vuf_vq *q, void **token, uint32_t *len);
/* Re-arms notification, then waits on the call eventfd.  1 when used
 * entries are pending, 0 on timeout. */
int vuf_vq_wait(vuf_vq *q, int timeout_ms);
bool vuf_vq_has_used(vuf_vq *q);
/* Eventfd to poll() yourself; after it fires call vuf_vq_ack_call(). */
int vuf_vq_call_fd(const vuf_vq *q);
void vuf_vq_ack_call(vuf_vq *q);
/* Makes vuf_vq_ack_call() sleep until a call (blocking) or return at once
 * (the default).  0 or -errno. */
int vuf_vq_call_blocking(vuf_vq *q, bool blocking);
/* Arms the notification and returns true if entries are already pending
 * (then do not sleep). */
bool vuf_vq_arm(vuf_vq *q);
/* Asks the device not to notify (busy-polling driver).  Without EVENT_IDX
 * sets VRING_AVAIL_F_NO_INTERRUPT; with it, leaves used_event behind (as
 * Linux does), so calls become rare.  vuf_vq_arm() undoes it. */
void vuf_vq_disarm(vuf_vq *q);

/* Tokens of the chains still in flight (for cleanup), up to max. */
unsigned vuf_vq_inflight_tokens(const vuf_vq *q, void **out, unsigned max);
unsigned vuf_vq_index(const vuf_vq *q);
unsigned vuf_vq_size(const vuf_vq *q);
unsigned vuf_vq_inflight(const vuf_vq *q);
unsigned vuf_vq_free_descs(const vuf_vq *q);
vuf_dev *vuf_vq_dev(vuf_vq *q);
bool vuf_vq_started(const vuf_vq *q);

struct vuf_vq_stats {
    uint64_t added;
    uint64_t completed;
    uint64_t kicks;            /* eventfd writes */
    uint64_t kicks_suppressed;
    uint64_t calls;            /* call eventfd wakeups (counter sum) */
    uint64_t bogus_used;       /* used id not in flight (double completion...) */
};
void vuf_vq_get_stats(const vuf_vq *q, struct vuf_vq_stats *s);

/* Nanoseconds of CLOCK_MONOTONIC. */
uint64_t vuf_now_ns(void);

#endif
