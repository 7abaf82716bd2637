/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * The vhost-user backend negotiates, maps guest memory, configures, starts
 * and stops rings as QEMU 7.2 drives it, and rejects hostile messages
 * (bad version, sizes, fds, indices, regions, huge payloads, unknown ids)
 * without losing the stream, leaking fds or starting a ring it should not.
 *
 * The test plays the frontend on one end of a socketpair and runs
 * vu_dev_dispatch() for each message it wrote on the other; a fake device
 * layer records queue_start/queue_stop/reset.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>
#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "log.h"
#include "vhost_user.h"

#define NQ 3                         /* max_queues of the device under test */
#define MEM_SIZE 0x100000ull         /* 1 MiB per memfd */
#define UVA_A 0x10000000ull          /* frontend address of memfd A */
#define RING_NUM 256u
#define VFLAGS VHOST_USER_VERSION
#define NEED (VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK)

static int failures;

#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond)) {                                                      \
            fprintf(stderr, "%s:%d: %s: CHECK failed: %s\n", __FILE__,      \
                    __LINE__, __func__, #cond);                             \
            failures++;                                                     \
        }                                                                   \
    } while (0)

/* ---- fake device layer ---- */

struct fake {
    unsigned int starts[VU_MAX_QUEUES];
    unsigned int stops[VU_MAX_QUEUES];
    unsigned int resets;
    int start_ret[VU_MAX_QUEUES];
    int kick_at_start[VU_MAX_QUEUES];
    unsigned int lock_held;          /* callbacks that ran with dev->lock held */
    unsigned int unready_starts;     /* queue_start on a ring without pointers */
};

static struct fake fake;

static void check_unlocked(struct vu_dev *d)
{
    if (pthread_rwlock_trywrlock(&d->lock) == 0)
        pthread_rwlock_unlock(&d->lock);
    else
        fake.lock_held++;
}

static int fake_start(struct vu_dev *d, unsigned int q)
{
    check_unlocked(d);
    fake.starts[q]++;
    fake.kick_at_start[q] = d->vring[q].kick_fd;
    if (!d->vring[q].vq.desc || !d->vring[q].vq.avail || !d->vring[q].vq.used ||
        !d->vring[q].vq.num || d->vring[q].kick_fd < 0)
        fake.unready_starts++;
    return fake.start_ret[q];
}

static void fake_stop(struct vu_dev *d, unsigned int q)
{
    check_unlocked(d);
    fake.stops[q]++;
}

static void fake_reset(struct vu_dev *d)
{
    check_unlocked(d);
    fake.resets++;
}

static const struct vu_dev_iface fake_iface = {
    .queue_start = fake_start,
    .queue_stop = fake_stop,
    .reset = fake_reset,
};

/* ---- frontend side ---- */

static struct vu_dev dev;
static bool dev_open;
static int peer = -1;
static int memfd_a = -1, memfd_b = -1;
static uint8_t *map_a, *map_b;       /* our views of the memfds */

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    int n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

static int send_raw(const void *buf, size_t len, const int *fds, unsigned int nfds)
{
    union {
        char buf[CMSG_SPACE(16 * sizeof(int))];
        struct cmsghdr align;
    } ctl;
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
    ssize_t n;

    if (nfds) {
        struct cmsghdr *c;

        memset(&ctl, 0, sizeof(ctl));
        mh.msg_control = ctl.buf;
        mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(nfds * sizeof(int));
        memcpy(CMSG_DATA(c), fds, nfds * sizeof(int));
    }
    n = sendmsg(peer, &mh, MSG_NOSIGNAL);
    return n == (ssize_t)len ? 0 : -1;
}

static int send_msg(uint32_t req, uint32_t flags, const void *payload,
                    uint32_t size, const int *fds, unsigned int nfds)
{
    uint8_t buf[sizeof(struct vu_msg_hdr) + 1024];
    struct vu_msg_hdr h = { .request = req, .flags = flags, .size = size };

    if (size > 1024)
        return -1;
    memcpy(buf, &h, sizeof(h));
    if (size)
        memcpy(buf + sizeof(h), payload, size);
    return send_raw(buf, sizeof(h) + size, fds, nfds);
}

struct reply {
    struct vu_msg_hdr hdr;
    uint8_t payload[64];
};

/* The reply the last dispatch wrote, if any: 0, -EAGAIN (none), -EPROTO. */
static int recv_reply(struct reply *rep)
{
    ssize_t n = recv(peer, &rep->hdr, sizeof(rep->hdr), MSG_DONTWAIT);

    if (n < 0 && errno == EAGAIN)
        return -EAGAIN;
    if (n != sizeof(rep->hdr) || rep->hdr.size > sizeof(rep->payload))
        return -EPROTO;
    if (rep->hdr.size &&
        recv(peer, rep->payload, rep->hdr.size, MSG_DONTWAIT) != rep->hdr.size)
        return -EPROTO;
    return 0;
}

static bool no_pending_reply(void)
{
    char c;

    return recv(peer, &c, 1, MSG_DONTWAIT | MSG_PEEK) < 0 && errno == EAGAIN;
}

static int dispatch(void)
{
    return vu_dev_dispatch(&dev);
}

/*
 * Send with NEED_REPLY (or @flags) and dispatch. Returns the ack (0
 * accepted, > 0 rejected), or -1 if no well-formed ack arrived.
 */
static long long ack_flags(uint32_t req, uint32_t flags, const void *p,
                           uint32_t size, const int *fds, unsigned int nfds)
{
    struct reply rep;
    uint64_t v;

    if (send_msg(req, flags, p, size, fds, nfds) < 0 || dispatch() != 0)
        return -1;
    if (recv_reply(&rep) < 0 || rep.hdr.request != req ||
        rep.hdr.flags != (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK) ||
        rep.hdr.size != sizeof(v))
        return -1;
    memcpy(&v, rep.payload, sizeof(v));
    return v > 0x7fffffff ? -1 : (long long)v;
}

static long long ack(uint32_t req, const void *p, uint32_t size,
                     const int *fds, unsigned int nfds)
{
    return ack_flags(req, NEED, p, size, fds, nfds);
}

/*
 * A request with its own reply. Returns 0 with the payload in @out on a
 * reply of @outsize bytes, 1 on a zero-size (error) reply, -1 otherwise.
 */
static int get_flags(uint32_t req, uint32_t flags, const void *p, uint32_t size,
                     const int *fds, unsigned int nfds, void *out,
                     uint32_t outsize)
{
    struct reply rep;

    if (send_msg(req, flags, p, size, fds, nfds) < 0 || dispatch() != 0)
        return -1;
    if (recv_reply(&rep) < 0 || rep.hdr.request != req ||
        rep.hdr.flags != (VHOST_USER_VERSION | VHOST_USER_REPLY_MASK))
        return -1;
    if (rep.hdr.size == 0)
        return 1;
    if (rep.hdr.size != outsize)
        return -1;
    memcpy(out, rep.payload, outsize);
    return 0;
}

static int get_u64(uint32_t req, uint64_t *v)
{
    return get_flags(req, VFLAGS, NULL, 0, NULL, 0, v, sizeof(*v));
}

/* The connection is in sync and served: a GET_FEATURES round trip works. */
static bool alive(void)
{
    uint64_t f = 0;

    return no_pending_reply() && get_u64(VHOST_USER_GET_FEATURES, &f) == 0 &&
           f == vu_supported_features() && no_pending_reply();
}

static long long set_u64(uint32_t req, uint64_t v)
{
    return ack(req, &v, sizeof(v), NULL, 0);
}

static long long set_state(uint32_t req, uint32_t index, uint32_t num)
{
    struct vu_vring_state s = { .index = index, .num = num };

    return ack(req, &s, sizeof(s), NULL, 0);
}

static long long set_ring_fd(uint32_t req, uint64_t v, int fd)
{
    return ack(req, &v, sizeof(v), &fd, fd >= 0 ? 1 : 0);
}

/* Send an eventfd and close our copy: the device owns the other one. */
static long long set_ring_efd(uint32_t req, unsigned int idx)
{
    int fd = eventfd(0, EFD_CLOEXEC);
    long long r = set_ring_fd(req, idx, fd);

    close(fd);
    return r;
}

static long long set_addr(unsigned int idx, uint64_t desc, uint64_t avail,
                          uint64_t used, uint32_t flags)
{
    struct vu_vring_addr a = {
        .index = idx, .flags = flags, .desc_user_addr = desc,
        .avail_user_addr = avail, .used_user_addr = used,
    };

    return ack(VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
}

static struct vu_mem_region_desc region(uint64_t gpa, uint64_t size, uint64_t uva,
                                        uint64_t off)
{
    struct vu_mem_region_desc r = {
        .guest_phys_addr = gpa, .memory_size = size,
        .userspace_addr = uva, .mmap_offset = off,
    };
    return r;
}

static long long set_mem_table_n(uint32_t nregions, const struct vu_mem_region_desc *r,
                                 unsigned int nr, const int *fds, unsigned int nfds)
{
    uint8_t buf[8 + 16 * sizeof(struct vu_mem_region_desc)];
    struct vu_mem_table_desc h = { .nregions = nregions };

    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), r, nr * sizeof(*r));
    return ack(VHOST_USER_SET_MEM_TABLE, buf,
               (uint32_t)(sizeof(h) + nr * sizeof(*r)), fds, nfds);
}

static long long set_mem_table(const struct vu_mem_region_desc *r, unsigned int n,
                               const int *fds)
{
    return set_mem_table_n(n, r, n, fds, n);
}

static long long mem_reg(uint32_t req, struct vu_mem_region_desc r, const int *fds,
                         unsigned int nfds)
{
    struct vu_mem_single_region m = { .region = r };

    return ack(req, &m, sizeof(m), fds, nfds);
}

/* Ring @q's parts inside memfd A: desc +0, avail +0x1000, used +0x2000. */
static uint64_t ring_off(unsigned int q)
{
    return 0x10000 + (uint64_t)q * 0x4000;
}

static long long setup_ring(unsigned int q, uint32_t base)
{
    uint64_t u = UVA_A + ring_off(q);
    long long r;

    r = set_state(VHOST_USER_SET_VRING_NUM, q, RING_NUM);
    if (r == 0)
        r = set_state(VHOST_USER_SET_VRING_BASE, q, base);
    if (r == 0)
        r = set_addr(q, u, u + 0x1000, u + 0x2000, 0);
    return r;
}

static const uint64_t ALL_PROTO =
    (1ull << VHOST_USER_PROTOCOL_F_MQ) | (1ull << VHOST_USER_PROTOCOL_F_REPLY_ACK) |
    (1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE) |
    (1ull << VHOST_USER_PROTOCOL_F_CONFIGURE_MEM_SLOTS);

/*
 * A fresh device. @features != 0: negotiate as QEMU does, with REPLY_ACK,
 * and map memfd A (gpa 0, uva UVA_A) when @map.
 */
static void open_dev(uint64_t features, bool map)
{
    int sv[2];

    if (dev_open)
        vu_dev_destroy(&dev);
    if (peer >= 0)
        close(peer);
    memset(&fake, 0, sizeof(fake));
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0) {
        perror("socketpair");
        exit(1);
    }
    if (vu_dev_init(&dev, sv[0], NQ, &fake_iface, &fake) < 0) {
        fprintf(stderr, "vu_dev_init failed\n");
        exit(1);
    }
    dev_open = true;
    peer = sv[1];
    if (!features)
        return;

    uint64_t v = 0;
    CHECK(get_u64(VHOST_USER_GET_FEATURES, &v) == 0);
    CHECK(get_u64(VHOST_USER_GET_PROTOCOL_FEATURES, &v) == 0);
    /* before REPLY_ACK is on, NEED_REPLY gets nothing */
    CHECK(send_msg(VHOST_USER_SET_PROTOCOL_FEATURES, VFLAGS, &ALL_PROTO, 8, NULL, 0) == 0);
    CHECK(dispatch() == 0 && no_pending_reply());
    CHECK(dev.protocol_features == ALL_PROTO);
    CHECK(ack(VHOST_USER_SET_OWNER, NULL, 0, NULL, 0) == 0);
    CHECK(set_u64(VHOST_USER_SET_FEATURES, features) == 0);
    CHECK(dev.features == features);
    if (map) {
        struct vu_mem_region_desc r = region(0, MEM_SIZE, UVA_A, 0);

        CHECK(set_mem_table(&r, 1, &memfd_a) == 0);
        CHECK(dev.mem.nregions == 1);
    }
}

static const uint64_t ALL_FEATURES =
    (1ull << VIRTIO_F_VERSION_1) | (1ull << VIRTIO_RING_F_INDIRECT_DESC) |
    (1ull << VIRTIO_RING_F_EVENT_IDX) | (1ull << VHOST_USER_F_PROTOCOL_FEATURES);

/* ---- tests ---- */

static void test_init_args(void)
{
    struct vu_dev *d = malloc(sizeof(*d));

    CHECK(d && vu_dev_init(d, 0, 1, &fake_iface, NULL) == -EINVAL);
    CHECK(d && vu_dev_init(d, 0, VU_MAX_QUEUES + 1, &fake_iface, NULL) == -EINVAL);
    CHECK(d && vu_dev_init(d, -1, 2, &fake_iface, NULL) == -EINVAL);
    CHECK(d && vu_dev_init(d, 0, 2, NULL, NULL) == -EINVAL);
    free(d);
    CHECK(strcmp(vu_request_name(VHOST_USER_SET_MEM_TABLE), "SET_MEM_TABLE") == 0);
    CHECK(strcmp(vu_request_name(VHOST_USER_GET_STATUS), "GET_STATUS") == 0);
    CHECK(strcmp(vu_request_name(999), "UNKNOWN") == 0);
    CHECK(strcmp(vu_request_name(0), "UNKNOWN") == 0);
}

static void test_features(void)
{
    uint64_t v = 0, bad = ALL_FEATURES | (1ull << 34); /* RING_PACKED */

    open_dev(0, false);
    CHECK(get_u64(VHOST_USER_GET_FEATURES, &v) == 0);
    CHECK(v == ALL_FEATURES);
    CHECK(vu_supported_features() == ALL_FEATURES);

    /* no REPLY_ACK yet: NEED_REPLY is ignored */
    v = 1ull << VIRTIO_F_VERSION_1;
    CHECK(send_msg(VHOST_USER_SET_FEATURES, NEED, &v, 8, NULL, 0) == 0);
    CHECK(dispatch() == 0);
    CHECK(no_pending_reply());
    CHECK(dev.features == v);
    /* without PROTOCOL_FEATURES, rings are enabled right away */
    for (unsigned int i = 0; i < NQ; i++)
        CHECK(dev.vring[i].enabled);

    /* acking an unoffered bit is refused and changes nothing */
    CHECK(send_msg(VHOST_USER_SET_FEATURES, VFLAGS, &bad, 8, NULL, 0) == 0);
    CHECK(dispatch() == 0);
    CHECK(dev.features == v);
    CHECK(alive());
}

static void test_protocol_features(void)
{
    uint64_t v = 0, status = ALL_PROTO | (1ull << VHOST_USER_PROTOCOL_F_STATUS);

    open_dev(0, false);
    CHECK(get_u64(VHOST_USER_GET_PROTOCOL_FEATURES, &v) == 0);
    CHECK(v == ALL_PROTO);
    CHECK(!(v & (1ull << VHOST_USER_PROTOCOL_F_STATUS)));
    CHECK(!(v & (1ull << VHOST_USER_PROTOCOL_F_SLAVE_REQ)));

    CHECK(send_msg(VHOST_USER_SET_PROTOCOL_FEATURES, VFLAGS, &status, 8, NULL, 0) == 0);
    CHECK(dispatch() == 0 && no_pending_reply());
    CHECK(dev.protocol_features == 0);

    /* the ack of the message that turns REPLY_ACK on is already sent */
    CHECK(set_u64(VHOST_USER_SET_PROTOCOL_FEATURES, ALL_PROTO) == 0);
    CHECK(dev.protocol_features == ALL_PROTO);
    /* failure acks are non-zero, and the state is unchanged */
    CHECK(set_u64(VHOST_USER_SET_PROTOCOL_FEATURES, status) > 0);
    CHECK(dev.protocol_features == ALL_PROTO);
    CHECK(set_u64(VHOST_USER_SET_FEATURES, ALL_FEATURES | (1ull << 0)) > 0);
    CHECK(dev.features == 0);
    CHECK(set_u64(VHOST_USER_SET_FEATURES, ALL_FEATURES) == 0);
    CHECK(dev.features == ALL_FEATURES);
    /* PROTOCOL_FEATURES acked: rings start disabled, ENABLE toggles */
    CHECK(!dev.vring[1].enabled);
    CHECK(set_state(VHOST_USER_SET_VRING_ENABLE, 1, 1) == 0);
    CHECK(dev.vring[1].enabled);
    CHECK(set_state(VHOST_USER_SET_VRING_ENABLE, 1, 0) == 0);
    CHECK(!dev.vring[1].enabled);
    CHECK(set_state(VHOST_USER_SET_VRING_ENABLE, 1, 2) > 0);
    CHECK(ack(VHOST_USER_SET_OWNER, NULL, 0, NULL, 0) == 0);
    CHECK(dev.owner_set);

    /* a GET_* with NEED_REPLY gets its own reply and no extra ack */
    CHECK(get_flags(VHOST_USER_GET_FEATURES, NEED, NULL, 0, NULL, 0, &v, 8) == 0);
    CHECK(v == ALL_FEATURES);
    CHECK(no_pending_reply());
    CHECK(alive());
}

static void test_queue_num_and_slots(void)
{
    uint64_t v = 0;

    open_dev(ALL_FEATURES, false);
    CHECK(get_u64(VHOST_USER_GET_QUEUE_NUM, &v) == 0);
    CHECK(v == NQ);
    CHECK(get_u64(VHOST_USER_GET_MAX_MEM_SLOTS, &v) == 0);
    CHECK(v == VFS_MEM_MAX_REGIONS);
    CHECK(alive());
}

/* Mark ring @q's parts in memfd @map so translated pointers can be told apart. */
static void stamp_ring(uint8_t *map, unsigned int q, uint8_t tag)
{
    memset(map + ring_off(q), tag, 16);
    memset(map + ring_off(q) + 0x1000, tag + 1, 2);
    /* used: flags, then idx (set by the caller) */
    memset(map + ring_off(q) + 0x2000, 0, 4);
}

static void test_mem_table_and_rings(void)
{
    struct vu_mem_region_desc r = region(0, MEM_SIZE, UVA_A, 0);
    uint8_t want[16];
    uint64_t v = 0;
    uint16_t used_idx = 7;
    struct vu_vring_state st = { .index = 1 };
    int fds0, kick, q1kick;
    uint64_t gen;

    open_dev(ALL_FEATURES, false);
    gen = dev.mem_generation;
    CHECK(set_mem_table(&r, 1, &memfd_a) == 0);
    CHECK(dev.mem.nregions == 1 && dev.mem.regions[0].gpa == 0 &&
          dev.mem.regions[0].size == MEM_SIZE && dev.mem.regions[0].uva == UVA_A);
    CHECK(dev.mem_generation != gen);

    stamp_ring(map_a, 1, 0xa1);
    memcpy(map_a + ring_off(1) + 0x2002, &used_idx, 2);
    CHECK(setup_ring(1, 7) == 0);
    memset(want, 0xa1, sizeof(want));
    /* the translated pointers reach the same shared memory */
    CHECK(dev.vring[1].vq.desc && memcmp(dev.vring[1].vq.desc, want, 16) == 0);
    CHECK(dev.vring[1].vq.avail && ((uint8_t *)dev.vring[1].vq.avail)[0] == 0xa2);
    CHECK((uint8_t *)dev.vring[1].vq.used == (uint8_t *)dev.vring[1].vq.desc + 0x2000);
    CHECK(dev.vring[1].vq.num == RING_NUM);
    CHECK(dev.vring[1].vq.last_avail_idx == 7);
    CHECK(dev.vring[1].vq.event_idx && dev.vring[1].vq.indirect);
    CHECK(dev.vring[1].addr_set && !dev.vring[1].started);
    CHECK(fake.starts[1] == 0);

    /* the kick fd starts the ring, with the fd the frontend sent */
    kick = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    CHECK(set_ring_fd(VHOST_USER_SET_VRING_KICK, 1, kick) == 0);
    CHECK(fake.starts[1] == 1 && dev.vring[1].started);
    CHECK(fake.kick_at_start[1] == dev.vring[1].kick_fd && dev.vring[1].kick_fd >= 0);
    CHECK(eventfd_write(kick, 5) == 0);
    CHECK(eventfd_read(dev.vring[1].kick_fd, &v) == 0 && v == 5);
    CHECK(dev.vring[1].vq.used_idx == 7);   /* continues from the used ring */
    q1kick = dev.vring[1].kick_fd;

    /* the call fd reaches the frontend's eventfd */
    int call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    CHECK(set_ring_fd(VHOST_USER_SET_VRING_CALL, 1, call) == 0);
    CHECK(dev.vring[1].vq.call_fd >= 0 && dev.vring[1].vq.call_fd != call);
    CHECK(eventfd_write(dev.vring[1].vq.call_fd, 3) == 0);
    CHECK(eventfd_read(call, &v) == 0 && v == 3);
    /* replacing it closes the old one; NOFD clears it */
    fds0 = count_fds();
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_CALL, 1) == 0);
    CHECK(count_fds() == fds0);
    CHECK(set_ring_fd(VHOST_USER_SET_VRING_CALL, 1 | VHOST_USER_VRING_NOFD_MASK, -1) == 0);
    CHECK(dev.vring[1].vq.call_fd == -1);
    CHECK(count_fds() == fds0 - 1);
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_ERR, 1) == 0);
    CHECK(dev.vring[1].err_fd >= 0);
    CHECK(count_fds() == fds0);

    /* a new kick fd on a started ring: stop, swap, restart */
    fds0 = count_fds();
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_KICK, 1) == 0);
    CHECK(fake.stops[1] == 1 && fake.starts[1] == 2 && dev.vring[1].started);
    CHECK(dev.vring[1].kick_fd >= 0 && dev.vring[1].kick_fd != q1kick);
    CHECK(count_fds() == fds0);
    /* ring configuration is refused while it runs */
    CHECK(set_state(VHOST_USER_SET_VRING_NUM, 1, 128) > 0);
    CHECK(set_state(VHOST_USER_SET_VRING_BASE, 1, 3) > 0);
    CHECK(dev.vring[1].vq.num == RING_NUM && dev.vring[1].vq.last_avail_idx == 7);

    /* GET_VRING_BASE stops the ring and reports where it is */
    dev.vring[1].vq.last_avail_idx = 9; /* as if two chains were popped */
    CHECK(get_flags(VHOST_USER_GET_VRING_BASE, VFLAGS, &st, sizeof(st), NULL, 0,
                    &st, sizeof(st)) == 0);
    CHECK(st.index == 1 && st.num == 9);
    CHECK(fake.stops[1] == 2 && !dev.vring[1].started);
    CHECK(dev.vring[1].kick_fd == -1);
    CHECK(count_fds() == fds0 - 1);
    /* stopped: a second GET_VRING_BASE does not stop again */
    CHECK(get_flags(VHOST_USER_GET_VRING_BASE, VFLAGS, &st, sizeof(st), NULL, 0,
                    &st, sizeof(st)) == 0);
    CHECK(st.num == 9 && fake.stops[1] == 2);
    /* configuration is kept: a kick restarts it */
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_KICK, 1) == 0);
    CHECK(fake.starts[1] == 3 && dev.vring[1].started);

    /* a device layer that cannot start the ring: rejected, stays stopped */
    fake.start_ret[2] = -EIO;
    CHECK(setup_ring(2, 0) == 0);
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_KICK, 2) > 0);
    CHECK(fake.starts[2] == 1 && !dev.vring[2].started);

    /*
     * A new table with another memfd at the same addresses: running rings
     * follow it; the generation moves so old pointers are known stale.
     */
    stamp_ring(map_b, 1, 0xb1);
    gen = dev.mem_generation;
    CHECK(set_mem_table(&r, 1, &memfd_b) == 0);
    CHECK(dev.mem_generation != gen);
    memset(want, 0xb1, sizeof(want));
    CHECK(dev.vring[1].vq.desc && memcmp(dev.vring[1].vq.desc, want, 16) == 0);
    CHECK(dev.vring[1].vq.avail && ((uint8_t *)dev.vring[1].vq.avail)[0] == 0xb2);
    /* a table where the ring addresses are gone: the ring loses its pointers */
    r.userspace_addr = UVA_A + MEM_SIZE;
    CHECK(set_mem_table(&r, 1, &memfd_a) == 0);
    CHECK(!dev.vring[1].vq.desc && !dev.vring[1].vq.avail && !dev.vring[1].vq.used);
    /* and cannot be started while so */
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_KICK, 1) > 0);
    CHECK(fake.starts[1] == 3 && !dev.vring[1].started);
    CHECK(fake.stops[1] == 3);
    CHECK(fake.lock_held == 0 && fake.unready_starts == 0);
    CHECK(alive());
    close(kick);
    close(call);
}

/* EVENT_IDX grows the rings: SET_FEATURES after SET_VRING_ADDR rechecks them. */
static void test_event_idx_ring_size(void)
{
    uint64_t nofeat = ALL_FEATURES & ~(1ull << VIRTIO_RING_F_EVENT_IDX);
    /* used ring ends exactly at the end of the region without avail_event */
    uint64_t used = UVA_A + MEM_SIZE - (4 + 8 * RING_NUM);
    uint64_t u = UVA_A + ring_off(0);

    open_dev(nofeat, true);
    CHECK(set_state(VHOST_USER_SET_VRING_NUM, 0, RING_NUM) == 0);
    CHECK(set_addr(0, u, u + 0x1000, used, 0) == 0);
    CHECK(dev.vring[0].vq.used != NULL && !dev.vring[0].vq.event_idx);
    CHECK(set_u64(VHOST_USER_SET_FEATURES, ALL_FEATURES) == 0);
    CHECK(dev.vring[0].vq.used == NULL);
    CHECK(set_addr(0, u, u + 0x1000, used, 0) > 0);
    CHECK(set_addr(0, u, u + 0x1000, used - 8, 0) == 0);
    CHECK(dev.vring[0].vq.used != NULL && dev.vring[0].vq.event_idx);
    CHECK(alive());
}

static void test_add_rem_mem_reg(void)
{
    struct vu_mem_region_desc ra = region(0, MEM_SIZE, UVA_A, 0);
    struct vu_mem_region_desc rb = region(MEM_SIZE, MEM_SIZE, UVA_A + MEM_SIZE, 0);
    uint64_t u = UVA_A + MEM_SIZE + ring_off(0);
    int fds0, two[2];
    uint64_t gen;

    open_dev(ALL_FEATURES, false);
    CHECK(mem_reg(VHOST_USER_ADD_MEM_REG, ra, &memfd_a, 1) == 0);
    CHECK(mem_reg(VHOST_USER_ADD_MEM_REG, rb, &memfd_b, 1) == 0);
    CHECK(dev.mem.nregions == 2);
    /* overlapping in guest-physical or user space */
    CHECK(mem_reg(VHOST_USER_ADD_MEM_REG, region(MEM_SIZE / 2, MEM_SIZE, UVA_A + 8 * MEM_SIZE, 0),
                  &memfd_a, 1) > 0);
    CHECK(mem_reg(VHOST_USER_ADD_MEM_REG, region(8 * MEM_SIZE, MEM_SIZE, UVA_A + 4096, 0),
                  &memfd_a, 1) > 0);
    CHECK(dev.mem.nregions == 2);
    /* missing fd */
    CHECK(mem_reg(VHOST_USER_ADD_MEM_REG, region(8 * MEM_SIZE, MEM_SIZE, 0, 0), NULL, 0) > 0);
    CHECK(dev.mem.nregions == 2);

    /* a ring in region B translates into memfd B */
    stamp_ring(map_b, 0, 0xc1);
    CHECK(set_state(VHOST_USER_SET_VRING_NUM, 0, RING_NUM) == 0);
    CHECK(set_addr(0, u, u + 0x1000, u + 0x2000, 0) == 0);
    CHECK(dev.vring[0].vq.desc && ((uint8_t *)dev.vring[0].vq.desc)[0] == 0xc1);

    /* REM_MEM_REG with an fd: accepted, fd closed, ring loses its pointers */
    gen = dev.mem_generation;
    fds0 = count_fds();
    int efd = eventfd(0, EFD_CLOEXEC);
    CHECK(mem_reg(VHOST_USER_REM_MEM_REG, rb, &efd, 1) == 0);
    close(efd);
    CHECK(count_fds() == fds0);
    CHECK(dev.mem.nregions == 1 && dev.mem.regions[0].gpa == 0);
    CHECK(dev.mem_generation != gen);
    CHECK(!dev.vring[0].vq.desc);
    /* unknown region, two fds */
    CHECK(mem_reg(VHOST_USER_REM_MEM_REG, rb, NULL, 0) > 0);
    two[0] = eventfd(0, EFD_CLOEXEC);
    two[1] = eventfd(0, EFD_CLOEXEC);
    CHECK(mem_reg(VHOST_USER_REM_MEM_REG, ra, two, 2) > 0);
    close(two[0]);
    close(two[1]);
    CHECK(count_fds() == fds0);
    CHECK(dev.mem.nregions == 1);
    /* adding B back brings the ring back */
    CHECK(mem_reg(VHOST_USER_ADD_MEM_REG, rb, &memfd_b, 1) == 0);
    CHECK(dev.vring[0].vq.desc && ((uint8_t *)dev.vring[0].vq.desc)[0] == 0xc1);
    CHECK(mem_reg(VHOST_USER_REM_MEM_REG, ra, NULL, 0) == 0);
    CHECK(dev.mem.nregions == 1 && dev.mem.regions[0].gpa == MEM_SIZE);
    CHECK(alive());
}

static void test_reset(void)
{
    int fds0;

    open_dev(ALL_FEATURES, true);
    fds0 = count_fds();
    CHECK(setup_ring(1, 4) == 0);
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_KICK, 1) == 0);
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_CALL, 1) == 0);
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_ERR, 1) == 0);
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_CALL, 0) == 0);
    CHECK(set_state(VHOST_USER_SET_VRING_ENABLE, 1, 1) == 0);
    CHECK(dev.vring[1].started && count_fds() == fds0 + 4);

    CHECK(ack(VHOST_USER_RESET_OWNER, NULL, 0, NULL, 0) == 0);
    CHECK(fake.stops[1] == 1 && fake.resets == 1 && !dev.vring[1].started);
    CHECK(dev.features == 0);
    CHECK(dev.vring[1].vq.num == 0 && !dev.vring[1].vq.desc && !dev.vring[1].addr_set);
    CHECK(dev.vring[1].vq.last_avail_idx == 0 && !dev.vring[1].enabled);
    CHECK(dev.vring[1].kick_fd == -1 && dev.vring[1].err_fd == -1 &&
          dev.vring[1].vq.call_fd == -1 && dev.vring[0].vq.call_fd == -1);
    CHECK(count_fds() == fds0);
    CHECK(dev.mem.nregions == 1);              /* memory is kept */
    CHECK(dev.protocol_features == ALL_PROTO);
    CHECK(fake.lock_held == 0);

    /* the frontend starts over; RESET_DEVICE (negotiated) does the same */
    CHECK(set_u64(VHOST_USER_SET_FEATURES, ALL_FEATURES) == 0);
    CHECK(setup_ring(2, 0) == 0);
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_KICK, 2) == 0);
    CHECK(dev.vring[2].started);
    CHECK(ack(VHOST_USER_RESET_DEVICE, NULL, 0, NULL, 0) == 0);
    CHECK(fake.stops[2] == 1 && fake.resets == 2 && !dev.vring[2].started);
    CHECK(count_fds() == fds0);
    CHECK(fake.stops[1] == 1);                  /* stopped rings are not stopped twice */

    /* RESET_DEVICE without the protocol feature is refused */
    CHECK(set_u64(VHOST_USER_SET_PROTOCOL_FEATURES,
                  ALL_PROTO & ~(1ull << VHOST_USER_PROTOCOL_F_RESET_DEVICE)) == 0);
    CHECK(ack(VHOST_USER_RESET_DEVICE, NULL, 0, NULL, 0) > 0);
    CHECK(fake.resets == 2);
    CHECK(alive());
}

/* ---- hostile messages ---- */

static void test_bad_version(void)
{
    static const uint32_t bad[] = {
        0 | VHOST_USER_NEED_REPLY_MASK,
        2 | VHOST_USER_NEED_REPLY_MASK,
        3 | VHOST_USER_NEED_REPLY_MASK,
        NEED | VHOST_USER_REPLY_MASK,
    };
    uint64_t v = 1ull << VIRTIO_F_VERSION_1;

    open_dev(ALL_FEATURES, false);
    for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        CHECK(ack_flags(VHOST_USER_SET_FEATURES, bad[i], &v, 8, NULL, 0) > 0);
        CHECK(dev.features == ALL_FEATURES);
        CHECK(alive());
        /* a GET_* still gets a reply, an error one */
        CHECK(get_flags(VHOST_USER_GET_FEATURES, bad[i], NULL, 0, NULL, 0, &v, 8) == 1);
        CHECK(alive());
    }
}

struct sized_req {
    uint32_t req;
    uint32_t size;
    bool reply;
};

static void test_bad_sizes(void)
{
    static const struct sized_req reqs[] = {
        { VHOST_USER_GET_FEATURES, 0, true },
        { VHOST_USER_SET_FEATURES, 8, false },
        { VHOST_USER_SET_OWNER, 0, false },
        { VHOST_USER_RESET_OWNER, 0, false },
        { VHOST_USER_SET_VRING_NUM, 8, false },
        { VHOST_USER_SET_VRING_ADDR, 40, false },
        { VHOST_USER_SET_VRING_BASE, 8, false },
        { VHOST_USER_GET_VRING_BASE, 8, true },
        { VHOST_USER_SET_VRING_KICK, 8, false },
        { VHOST_USER_SET_VRING_CALL, 8, false },
        { VHOST_USER_SET_VRING_ERR, 8, false },
        { VHOST_USER_GET_PROTOCOL_FEATURES, 0, true },
        { VHOST_USER_SET_PROTOCOL_FEATURES, 8, false },
        { VHOST_USER_GET_QUEUE_NUM, 0, true },
        { VHOST_USER_SET_VRING_ENABLE, 8, false },
        { VHOST_USER_RESET_DEVICE, 0, false },
        { VHOST_USER_GET_MAX_MEM_SLOTS, 0, true },
        { VHOST_USER_ADD_MEM_REG, 40, false },
        { VHOST_USER_REM_MEM_REG, 40, false },
    };
    uint8_t zero[64] = { 0 };
    uint64_t v;
    int fds0;

    open_dev(ALL_FEATURES, true);
    CHECK(setup_ring(0, 0) == 0);
    fds0 = count_fds();
    for (unsigned int i = 0; i < sizeof(reqs) / sizeof(reqs[0]); i++) {
        const struct sized_req *sr = &reqs[i];
        uint32_t sizes[4];
        unsigned int ns = 0;

        sizes[ns++] = sr->size + 1;
        sizes[ns++] = sr->size + 8;
        if (sr->size) {
            sizes[ns++] = sr->size - 1;
            sizes[ns++] = 0;
        } else {
            sizes[ns++] = 4;
        }
        for (unsigned int k = 0; k < ns; k++) {
            if (sr->reply) {
                CHECK(get_flags(sr->req, VFLAGS, zero, sizes[k], NULL, 0, &v, 8) == 1);
            } else {
                /* an fd where one may go: it must be closed all the same */
                int fd = eventfd(0, EFD_CLOEXEC);

                CHECK(ack(sr->req, zero, sizes[k], &fd, 1) > 0);
                close(fd);
            }
            if (!alive())
                fprintf(stderr, "  after %s with size %u\n",
                        vu_request_name(sr->req), sizes[k]);
            CHECK(count_fds() == fds0);
        }
    }
    /* nothing was reset, stopped or reconfigured by the rejected messages */
    CHECK(fake.resets == 0 && dev.features == ALL_FEATURES);
    CHECK(dev.vring[0].vq.num == RING_NUM && dev.vring[0].vq.desc);
    CHECK(dev.mem.nregions == 1);
    CHECK(alive());
}

struct huge_arg {
    uint32_t size;
    int fd;
};

static void *huge_writer(void *p)
{
    struct huge_arg *a = p;
    struct vu_msg_hdr h = { VHOST_USER_SET_FEATURES, NEED, a->size };
    static uint8_t chunk[65536];
    uint32_t left = a->size;

    if (send_raw(&h, sizeof(h), &a->fd, 1) < 0)
        return (void *)1;
    while (left) {
        size_t n = left < sizeof(chunk) ? left : sizeof(chunk);
        ssize_t w = write(peer, chunk, n);

        if (w <= 0)
            return (void *)1;
        left -= (uint32_t)w;
    }
    return NULL;
}

static void test_huge_payload(void)
{
    struct huge_arg a = { .size = 3 * 1024 * 1024 + 5 };
    pthread_t t;
    void *res = (void *)1;
    int fds0;

    open_dev(ALL_FEATURES, false);
    fds0 = count_fds();
    a.fd = eventfd(0, EFD_CLOEXEC);
    /* a device that stops reading fails the test instead of hanging it */
    struct timeval tv = { .tv_sec = 10 };
    CHECK(setsockopt(peer, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0);
    /* larger than the socket buffers: a writer thread feeds it */
    CHECK(pthread_create(&t, NULL, huge_writer, &a) == 0);
    CHECK(dispatch() == 0);
    pthread_join(t, &res);
    CHECK(res == NULL);
    close(a.fd);
    struct reply rep;
    uint64_t v = 0;
    CHECK(recv_reply(&rep) == 0 && rep.hdr.request == VHOST_USER_SET_FEATURES &&
          rep.hdr.size == 8);
    memcpy(&v, rep.payload, 8);
    CHECK(v != 0);
    CHECK(count_fds() == fds0);
    CHECK(dev.features == ALL_FEATURES);
    /* the next message is found: the stream stayed in sync */
    CHECK(alive());

    /* just over the bound, a GET: error reply */
    uint8_t big[VU_MAX_PAYLOAD + 1];
    memset(big, 0, sizeof(big));
    struct vu_msg_hdr h = { VHOST_USER_GET_QUEUE_NUM, VFLAGS, sizeof(big) };
    uint8_t buf[sizeof(h) + sizeof(big)];
    memcpy(buf, &h, sizeof(h));
    memcpy(buf + sizeof(h), big, sizeof(big));
    CHECK(send_raw(buf, sizeof(buf), NULL, 0) == 0);
    CHECK(dispatch() == 0);
    CHECK(recv_reply(&rep) == 0 && rep.hdr.request == VHOST_USER_GET_QUEUE_NUM &&
          rep.hdr.size == 0);
    CHECK(alive());
}

static void test_unknown_requests(void)
{
    static const uint32_t ids[] = {
        VHOST_USER_NONE, VHOST_USER_SET_LOG_BASE, VHOST_USER_SET_LOG_FD,
        VHOST_USER_SET_SLAVE_REQ_FD, VHOST_USER_SET_STATUS, VHOST_USER_IOTLB_MSG,
        VHOST_USER_SET_CONFIG, VHOST_USER_MAX, 999, 0xffffffffu,
    };
    /* known to the spec with a reply of their own, not supported here */
    static const uint32_t get_ids[] = {
        VHOST_USER_GET_STATUS, VHOST_USER_GET_CONFIG, VHOST_USER_GET_INFLIGHT_FD,
    };
    uint8_t payload[16] = { 0 };
    uint64_t v;
    int fds0;

    open_dev(ALL_FEATURES, false);
    fds0 = count_fds();
    for (unsigned int i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        int fd = eventfd(0, EFD_CLOEXEC);

        CHECK(ack(ids[i], payload, 8, &fd, 1) > 0);
        CHECK(alive());
        /* without NEED_REPLY: silently dropped */
        CHECK(send_msg(ids[i], VFLAGS, payload, 8, &fd, 1) == 0);
        CHECK(dispatch() == 0);
        CHECK(no_pending_reply());
        CHECK(alive());
        close(fd);
        CHECK(count_fds() == fds0);
    }
    for (unsigned int i = 0; i < sizeof(get_ids) / sizeof(get_ids[0]); i++) {
        CHECK(get_flags(get_ids[i], VFLAGS, NULL, 0, NULL, 0, &v, 8) == 1);
        CHECK(alive());
    }
    CHECK(fake.resets == 0);
}

static void test_ring_index_out_of_range(void)
{
    static const uint32_t bad_idx[] = { NQ, VU_MAX_QUEUES, 255, 256, 0xffffffffu };
    static const uint32_t state_reqs[] = {
        VHOST_USER_SET_VRING_NUM, VHOST_USER_SET_VRING_BASE, VHOST_USER_SET_VRING_ENABLE,
    };
    static const uint32_t fd_reqs[] = {
        VHOST_USER_SET_VRING_KICK, VHOST_USER_SET_VRING_CALL, VHOST_USER_SET_VRING_ERR,
    };
    int fds0;

    open_dev(ALL_FEATURES, true);
    fds0 = count_fds();
    for (unsigned int i = 0; i < sizeof(bad_idx) / sizeof(bad_idx[0]); i++) {
        uint32_t idx = bad_idx[i];
        struct vu_vring_state st = { .index = idx, .num = 1 };

        for (unsigned int k = 0; k < sizeof(state_reqs) / sizeof(state_reqs[0]); k++) {
            CHECK(set_state(state_reqs[k], idx, k == 0 ? RING_NUM : 1) > 0);
            CHECK(alive());
        }
        CHECK(set_addr(idx, UVA_A, UVA_A + 0x1000, UVA_A + 0x2000, 0) > 0);
        CHECK(alive());
        CHECK(get_flags(VHOST_USER_GET_VRING_BASE, VFLAGS, &st, sizeof(st), NULL, 0,
                        &st, sizeof(st)) == 1);
        CHECK(alive());
        for (unsigned int k = 0; k < sizeof(fd_reqs) / sizeof(fd_reqs[0]); k++) {
            int fd = eventfd(0, EFD_CLOEXEC);

            /* 256 is index 0 with NOFD (and an fd), 0xffffffff has reserved bits */
            CHECK(set_ring_fd(fd_reqs[k], idx, fd) > 0);
            if (idx != 256)
                CHECK(set_ring_fd(fd_reqs[k], (uint64_t)idx | VHOST_USER_VRING_NOFD_MASK,
                                  -1) > 0);
            close(fd);
            CHECK(alive());
        }
        CHECK(count_fds() == fds0);
    }
    /* reserved bits above NOFD with a valid index */
    int fd = eventfd(0, EFD_CLOEXEC);
    CHECK(set_ring_fd(VHOST_USER_SET_VRING_CALL, 1 | (1ull << 9), fd) > 0);
    CHECK(set_ring_fd(VHOST_USER_SET_VRING_CALL, 1 | (1ull << 63), fd) > 0);
    close(fd);
    CHECK(count_fds() == fds0);
    for (unsigned int q = 0; q < VU_MAX_QUEUES; q++)
        CHECK(dev.vring[q].vq.num == 0 && dev.vring[q].vq.call_fd == -1 &&
              dev.vring[q].kick_fd == -1 && dev.vring[q].err_fd == -1);
    CHECK(fake.starts[0] + fake.starts[1] + fake.starts[2] == 0);
    CHECK(alive());
}

static void test_fd_counts(void)
{
    struct vu_mem_region_desc r = region(0, MEM_SIZE, UVA_A, 0);
    int many[10], fds0;
    uint64_t v;

    open_dev(ALL_FEATURES, true);
    CHECK(setup_ring(1, 0) == 0);
    fds0 = count_fds();
    for (unsigned int i = 0; i < 10; i++)
        many[i] = eventfd(0, EFD_CLOEXEC);

    /* missing */
    CHECK(set_ring_fd(VHOST_USER_SET_VRING_KICK, 1, -1) > 0);
    CHECK(set_ring_fd(VHOST_USER_SET_VRING_CALL, 1, -1) > 0);
    CHECK(set_ring_fd(VHOST_USER_SET_VRING_ERR, 1, -1) > 0);
    CHECK(set_mem_table_n(1, &r, 1, NULL, 0) > 0);
    CHECK(!dev.vring[1].started && fake.starts[1] == 0);
    CHECK(alive());

    /* extra: on requests that take none, NOFD + fd, two for one */
    CHECK(get_flags(VHOST_USER_GET_FEATURES, VFLAGS, NULL, 0, many, 2, &v, 8) == 1);
    CHECK(ack(VHOST_USER_SET_OWNER, NULL, 0, many, 1) > 0);
    v = ALL_FEATURES;
    CHECK(ack(VHOST_USER_SET_FEATURES, &v, 8, many, 3) > 0);
    CHECK(set_ring_fd(VHOST_USER_SET_VRING_KICK, 1 | VHOST_USER_VRING_NOFD_MASK, many[0]) > 0);
    v = 1;
    CHECK(ack(VHOST_USER_SET_VRING_KICK, &v, 8, many, 2) > 0);
    CHECK(ack(VHOST_USER_SET_VRING_CALL, &v, 8, many, 8) > 0);
    CHECK(!dev.vring[1].started && fake.starts[1] == 0 && dev.vring[1].vq.call_fd == -1);
    /* more than VU_MAX_FDS in one message: truncated by the kernel */
    CHECK(ack(VHOST_USER_SET_OWNER, NULL, 0, many, 10) > 0);
    CHECK(alive());
    CHECK(set_mem_table_n(1, &r, 1, many, 9) > 0);
    CHECK(alive());

    for (unsigned int i = 0; i < 10; i++)
        close(many[i]);
    CHECK(count_fds() == fds0);

    /* an fd that arrives with the payload rather than the header is found */
    struct vu_msg_hdr h = { VHOST_USER_SET_VRING_CALL, NEED, 8 };
    uint64_t idx = 1;
    int call = eventfd(0, EFD_CLOEXEC);
    struct reply rep;
    CHECK(send_raw(&h, sizeof(h), NULL, 0) == 0);
    CHECK(send_raw(&idx, sizeof(idx), &call, 1) == 0);
    CHECK(dispatch() == 0);
    CHECK(recv_reply(&rep) == 0 && rep.hdr.size == 8);
    memcpy(&v, rep.payload, 8);
    CHECK(v == 0 && dev.vring[1].vq.call_fd >= 0);
    close(call);
    CHECK(alive());
}

static void test_bad_mem_tables(void)
{
    struct vu_mem_region_desc good = region(0, MEM_SIZE, UVA_A, 0);
    struct vu_mem_region_desc r[9];
    int fds[9] = { memfd_a, memfd_a, memfd_a, memfd_a, memfd_a, memfd_a,
                   memfd_a, memfd_a, memfd_a };
    uint64_t gen;
    void *desc;
    int fds0;

    open_dev(ALL_FEATURES, true);
    CHECK(setup_ring(0, 0) == 0);
    desc = dev.vring[0].vq.desc;
    CHECK(desc != NULL);
    gen = dev.mem_generation;
    fds0 = count_fds();

    /* overlapping in gpa, overlapping in uva */
    r[0] = good;
    r[1] = region(MEM_SIZE / 2, MEM_SIZE, UVA_A + 4 * MEM_SIZE, 0);
    CHECK(set_mem_table(r, 2, fds) > 0);
    r[1] = region(4 * MEM_SIZE, MEM_SIZE, UVA_A + MEM_SIZE - 4096, 0);
    CHECK(set_mem_table(r, 2, fds) > 0);
    /* zero size, absurd size, larger than the fd, wrapping, huge offset */
    r[0] = region(0, 0, UVA_A, 0);
    CHECK(set_mem_table(r, 1, fds) > 0);
    r[0] = region(0, 1ull << 50, UVA_A, 0);
    CHECK(set_mem_table(r, 1, fds) > 0);
    r[0] = region(0, 2 * MEM_SIZE, UVA_A, 0);
    CHECK(set_mem_table(r, 1, fds) > 0);
    r[0] = region(UINT64_MAX - 4095, MEM_SIZE, UVA_A, 0);
    CHECK(set_mem_table(r, 1, fds) > 0);
    r[0] = region(0, MEM_SIZE, UINT64_MAX - 4095, 0);
    CHECK(set_mem_table(r, 1, fds) > 0);
    r[0] = region(0, 4096, UVA_A, UINT64_MAX - 100);
    CHECK(set_mem_table(r, 1, fds) > 0);
    r[0] = region(0, 4096, UVA_A, MEM_SIZE);   /* past the end of the fd */
    CHECK(set_mem_table(r, 1, fds) > 0);
    /* nregions that does not match the fds or the size */
    r[0] = good;
    r[1] = region(4 * MEM_SIZE, MEM_SIZE, UVA_A + 4 * MEM_SIZE, 0);
    CHECK(set_mem_table_n(2, r, 2, fds, 1) > 0);
    CHECK(set_mem_table_n(1, r, 1, fds, 2) > 0);
    CHECK(set_mem_table_n(2, r, 1, fds, 1) > 0);
    CHECK(set_mem_table_n(1, r, 2, fds, 1) > 0);
    CHECK(set_mem_table_n(0, r, 0, NULL, 0) > 0);
    CHECK(set_mem_table_n(0xffffffffu, r, 1, fds, 1) > 0);
    for (unsigned int i = 0; i < 9; i++)
        r[i] = region((uint64_t)i * MEM_SIZE, MEM_SIZE, UVA_A + (uint64_t)i * MEM_SIZE, 0);
    CHECK(set_mem_table(r, 9, fds) > 0);
    {
        /* too short to hold nregions */
        uint32_t n = 1;
        CHECK(ack(VHOST_USER_SET_MEM_TABLE, &n, 4, fds, 1) > 0);
    }
    CHECK(count_fds() == fds0);
    /* the old table is still in place, untouched */
    CHECK(dev.mem.nregions == 1 && dev.mem.regions[0].gpa == 0 &&
          dev.mem.regions[0].size == MEM_SIZE && dev.mem.regions[0].uva == UVA_A);
    CHECK(dev.mem_generation == gen);
    CHECK(dev.vring[0].vq.desc == desc);
    CHECK(alive());

    /*
     * 9 fds for 8 valid regions: the kernel delivers 8 and flags the
     * truncation, which alone makes the message invalid.
     */
    CHECK(set_mem_table_n(8, r, 8, fds, 9) > 0);
    CHECK(dev.mem.nregions == 1 && dev.mem_generation == gen);
    CHECK(count_fds() == fds0);
    /* 8 regions (the most one message carries) are accepted */
    CHECK(set_mem_table(r, 8, fds) == 0);
    CHECK(dev.mem.nregions == 8 && dev.vring[0].vq.desc != NULL);
    CHECK(count_fds() == fds0);
    CHECK(alive());
}

static void test_bad_vrings(void)
{
    uint64_t u = UVA_A + ring_off(0), end = UVA_A + MEM_SIZE;
    int fds0;

    open_dev(ALL_FEATURES, true);
    /* SET_VRING_ADDR before SET_VRING_NUM: sizes unknown */
    CHECK(set_addr(0, u, u + 0x1000, u + 0x2000, 0) > 0);
    CHECK(!dev.vring[0].addr_set);

    CHECK(set_state(VHOST_USER_SET_VRING_NUM, 0, 0) > 0);
    CHECK(set_state(VHOST_USER_SET_VRING_NUM, 0, 3) > 0);
    CHECK(set_state(VHOST_USER_SET_VRING_NUM, 0, 384) > 0);
    CHECK(set_state(VHOST_USER_SET_VRING_NUM, 0, VQ_MAX_SIZE * 2) > 0);
    CHECK(set_state(VHOST_USER_SET_VRING_NUM, 0, 0x80000000u) > 0);
    CHECK(set_state(VHOST_USER_SET_VRING_NUM, 0, 0xffffffffu) > 0);
    CHECK(dev.vring[0].vq.num == 0);
    CHECK(set_state(VHOST_USER_SET_VRING_NUM, 0, VQ_MAX_SIZE) == 0);
    CHECK(set_state(VHOST_USER_SET_VRING_NUM, 0, 1) == 0);
    CHECK(set_state(VHOST_USER_SET_VRING_NUM, 0, RING_NUM) == 0);
    CHECK(dev.vring[0].vq.num == RING_NUM);
    CHECK(set_state(VHOST_USER_SET_VRING_BASE, 0, 0x10000) > 0);
    CHECK(set_state(VHOST_USER_SET_VRING_BASE, 0, 0xffff) == 0);
    CHECK(dev.vring[0].vq.last_avail_idx == 0xffff);
    CHECK(alive());

    /* outside, straddling the end, before the start, far away, wrapping */
    CHECK(set_addr(0, end, u + 0x1000, u + 0x2000, 0) > 0);
    CHECK(set_addr(0, end - 16, u + 0x1000, u + 0x2000, 0) > 0);
    CHECK(set_addr(0, u, end - 4, u + 0x2000, 0) > 0);
    CHECK(set_addr(0, u, u + 0x1000, end - 8, 0) > 0);
    CHECK(set_addr(0, UVA_A - 4096, u + 0x1000, u + 0x2000, 0) > 0);
    CHECK(set_addr(0, 0, 0, 0, 0) > 0);
    CHECK(set_addr(0, UINT64_MAX - 15, u + 0x1000, u + 0x2000, 0) > 0);
    /* misaligned parts */
    CHECK(set_addr(0, u + 8, u + 0x1000, u + 0x2000, 0) > 0);
    CHECK(set_addr(0, u, u + 0x1001, u + 0x2000, 0) > 0);
    CHECK(set_addr(0, u, u + 0x1000, u + 0x2002, 0) > 0);
    /* dirty logging is not offered */
    CHECK(set_addr(0, u, u + 0x1000, u + 0x2000, 1u << 0) > 0);
    CHECK(!dev.vring[0].addr_set && !dev.vring[0].vq.desc);
    CHECK(alive());

    /* a kick on a ring without addresses does not start it; fd not kept */
    fds0 = count_fds();
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_KICK, 0) > 0);
    CHECK(fake.starts[0] == 0 && !dev.vring[0].started && dev.vring[0].kick_fd == -1);
    CHECK(count_fds() == fds0);
    /* nor on one without a size */
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_KICK, 2) > 0);
    CHECK(fake.starts[2] == 0);
    /* NOFD kick: accepted, ring stays stopped (no polling mode) */
    CHECK(set_addr(0, u, u + 0x1000, u + 0x2000, 0) == 0);
    CHECK(set_ring_fd(VHOST_USER_SET_VRING_KICK, VHOST_USER_VRING_NOFD_MASK, -1) == 0);
    CHECK(fake.starts[0] == 0 && !dev.vring[0].started);
    CHECK(count_fds() == fds0);
    /* once configured, it does */
    CHECK(set_ring_efd(VHOST_USER_SET_VRING_KICK, 0) == 0);
    CHECK(fake.starts[0] == 1 && dev.vring[0].started && fake.unready_starts == 0);
    CHECK(alive());
}

static void test_peer_close(void)
{
    struct vu_msg_hdr h = { VHOST_USER_SET_FEATURES, VFLAGS, 8 };

    open_dev(0, false);
    close(peer);
    peer = -1;
    CHECK(vu_dev_dispatch(&dev) == -ECONNRESET);

    /* half a header */
    open_dev(0, false);
    CHECK(send_raw(&h, 6, NULL, 0) == 0);
    close(peer);
    peer = -1;
    CHECK(vu_dev_dispatch(&dev) == -ECONNRESET);

    /* a header and part of its payload, with an fd that must not leak */
    open_dev(0, false);
    int fds0 = count_fds();
    int fd = eventfd(0, EFD_CLOEXEC);
    uint8_t buf[sizeof(h) + 4] = { 0 };
    memcpy(buf, &h, sizeof(h));
    CHECK(send_raw(buf, sizeof(buf), &fd, 1) == 0);
    close(fd);
    close(peer);
    peer = -1;
    CHECK(vu_dev_dispatch(&dev) == -ECONNRESET);
    CHECK(count_fds() == fds0 - 1);           /* our end is closed, nothing leaked */

    /* a huge announced payload that never comes */
    open_dev(0, false);
    h.size = 0xffffffffu;
    CHECK(send_raw(&h, sizeof(h), NULL, 0) == 0);
    close(peer);
    peer = -1;
    CHECK(vu_dev_dispatch(&dev) == -ECONNRESET);
}

static void test_validate_direct(void)
{
    struct vu_msg *m = calloc(1, sizeof(*m));
    const char *why = NULL;

    open_dev(0, false);
    if (!m) {
        failures++;
        return;
    }
    m->hdr.request = VHOST_USER_GET_QUEUE_NUM;
    m->hdr.flags = VFLAGS;
    CHECK(vu_msg_validate(&dev, m, &why) == 0);
    m->hdr.flags = 0;
    CHECK(vu_msg_validate(&dev, m, &why) < 0 && why != NULL);
    m->hdr.flags = VFLAGS;
    m->hdr.size = 8;
    CHECK(vu_msg_validate(&dev, m, &why) < 0);
    m->hdr.request = VHOST_USER_SET_VRING_NUM;
    m->payload.state.index = NQ - 1;
    CHECK(vu_msg_validate(&dev, m, &why) == 0);
    m->payload.state.index = NQ;
    CHECK(vu_msg_validate(&dev, m, &why) < 0);
    m->hdr.request = VHOST_USER_SET_MEM_TABLE;
    m->payload.mem.nregions = 2;
    m->hdr.size = 8 + 2 * 32;
    m->nfds = 2;
    CHECK(vu_msg_validate(&dev, m, &why) == 0);
    m->nfds = 1;
    CHECK(vu_msg_validate(&dev, m, &why) < 0);
    m->nfds = 0;
    free(m);
}

/* ---- main ---- */

static int warnings;

static void sink(enum vfs_log_level level, const char *msg, void *opaque)
{
    if (level <= VFS_LOG_WARN)
        warnings++;
    if (getenv("VU_TEST_VERBOSE"))
        fprintf(stderr, "log: %s\n", msg);
}

static uint8_t *make_memfd(int *fd)
{
    void *p;

    *fd = memfd_create("guest", MFD_CLOEXEC);
    if (*fd < 0 || ftruncate(*fd, (off_t)MEM_SIZE) < 0)
        return NULL;
    p = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, *fd, 0);
    return p == MAP_FAILED ? NULL : p;
}

int main(void)
{
    map_a = make_memfd(&memfd_a);
    map_b = make_memfd(&memfd_b);
    if (!map_a || !map_b) {
        perror("memfd");
        return 77;
    }
    vfs_log_set_sink(sink, NULL);

    test_init_args();
    test_features();
    test_protocol_features();
    test_queue_num_and_slots();
    test_mem_table_and_rings();
    test_event_idx_ring_size();
    test_add_rem_mem_reg();
    test_reset();
    test_bad_version();
    test_bad_sizes();
    test_huge_payload();
    test_unknown_requests();
    test_ring_index_out_of_range();
    test_fd_counts();
    test_bad_mem_tables();
    test_bad_vrings();
    test_peer_close();
    test_validate_direct();

    if (dev_open)
        vu_dev_destroy(&dev);
    if (peer >= 0)
        close(peer);
    /* rejections were logged (through the rate limiter) */
    CHECK(warnings > 0);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("vhost_user: all checks passed\n");
    return 0;
}
