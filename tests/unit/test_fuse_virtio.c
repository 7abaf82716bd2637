/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Device layer end to end: a minimal frontend (vhost-user over a
 * socketpair, memfd guest memory, split rings for hiprio + 2 request
 * queues) drives fv_dev_serve() in inline and in pool mode, and proves that
 * every request completes exactly once on its own chain with used len ==
 * out header len: INIT, LOOKUP/GETATTR, CREATE+WRITE+READ over lo_ops on a
 * temp dir, FORGETs on hiprio returned empty, invalid requests answered by
 * the transport, DESTROY then INIT on a fresh session, INIT floods without
 * leaks, replies that do not fit, a SETLKW on the side pool that neither
 * stalls its queue nor a stop (GET_VRING_BASE interrupts it), a stop with
 * requests in flight, and live mode switches.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <time.h>
#include <unistd.h>

#include <linux/virtio_config.h>
#include <linux/virtio_ring.h>

#include "dispatch.h"
#include "fuse_validate.h"
#include "fuse_virtio.h"
#include "log.h"
#include "passthrough.h"
#include "vhost_user.h"

#define NQUEUES 3               /* hiprio + 2 request queues */
#define QSIZE 256
#define SLOTS 32
#define DESC_PER_SLOT 8
#define RING_AREA (64 * 1024)
#define SLOT_IN 0
#define SLOT_OUT (80 * 1024)
#define SLOT_SIZE (160 * 1024)
#define BUF_BASE (1024 * 1024)
#define MEM_SIZE (BUF_BASE + NQUEUES * SLOTS * SLOT_SIZE)
#define WAIT_MS 20000           /* hang guard only */

static int failures;

#define CHECK(cond, ...)                                                \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);        \
            fprintf(stderr, __VA_ARGS__);                               \
            fprintf(stderr, "\n");                                      \
            failures++;                                                 \
        }                                                               \
    } while (0)

/* A failure after which continuing would only hang or cascade. */
#define REQUIRE(cond, ...)                                              \
    do {                                                                \
        if (!(cond)) {                                                  \
            fprintf(stderr, "FATAL %s:%d: ", __FILE__, __LINE__);       \
            fprintf(stderr, __VA_ARGS__);                               \
            fprintf(stderr, "\n");                                      \
            exit(1);                                                    \
        }                                                               \
    } while (0)

struct slot {
    bool busy;
    bool done;
    uint32_t used_len;
    uint64_t unique;
    uint32_t opcode;
    unsigned int nwr;
    uint32_t wr_len[DESC_PER_SLOT];
};

struct ring {
    unsigned int idx;
    struct vring_desc *desc;
    struct vring_avail *avail;
    struct vring_used *used;
    uint64_t desc_off, avail_off, used_off;
    int kick, call;
    uint16_t avail_idx, last_used;
    struct slot slots[SLOTS];
    unsigned int completions;
};

struct front {
    int sock;
    int daemon_sock;
    int memfd;
    uint8_t *fe_mem;            /* our mapping; its address is the UVA */
    uint8_t *mem;               /* where we access guest memory (below) */
    bool event_idx;
    struct fv_dev *dev;
    pthread_t daemon;
    int serve_ret;
    struct ring rings[NQUEUES];
};

static uint64_t next_unique = 1;

/* ---- vhost-user frontend ---- */

static void vu_send(struct front *f, uint32_t request, const void *payload,
                    uint32_t size, const int *fds, unsigned int nfds)
{
    struct vu_msg_hdr hdr = { .request = request, .flags = VHOST_USER_VERSION,
                              .size = size };
    struct iovec iov[2] = {
        { .iov_base = &hdr, .iov_len = sizeof(hdr) },
        { .iov_base = (void *)payload, .iov_len = size },
    };
    union {
        char buf[CMSG_SPACE(sizeof(int) * VU_MAX_FDS)];
        struct cmsghdr align;
    } cbuf;
    struct msghdr mh = { .msg_iov = iov, .msg_iovlen = size ? 2 : 1 };
    ssize_t n;

    memset(&cbuf, 0, sizeof(cbuf));
    if (nfds) {
        struct cmsghdr *c;

        mh.msg_control = cbuf.buf;
        mh.msg_controllen = CMSG_SPACE(sizeof(int) * nfds);
        c = CMSG_FIRSTHDR(&mh);
        c->cmsg_level = SOL_SOCKET;
        c->cmsg_type = SCM_RIGHTS;
        c->cmsg_len = CMSG_LEN(sizeof(int) * nfds);
        memcpy(CMSG_DATA(c), fds, sizeof(int) * nfds);
    }
    n = sendmsg(f->sock, &mh, MSG_NOSIGNAL);
    REQUIRE(n == (ssize_t)(sizeof(hdr) + size), "sendmsg %s: %zd (%s)",
            vu_request_name(request), n, strerror(errno));
}

static void read_full(int fd, void *buf, size_t len)
{
    size_t done = 0;

    while (done < len) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        ssize_t n;

        REQUIRE(poll(&pfd, 1, WAIT_MS) == 1, "no vhost-user reply");
        n = read(fd, (uint8_t *)buf + done, len - done);
        REQUIRE(n > 0, "vhost-user read: %zd (%s)", n, strerror(errno));
        done += (size_t)n;
    }
}

static void vu_reply(struct front *f, uint32_t request, void *payload,
                     uint32_t size)
{
    struct vu_msg_hdr hdr;

    read_full(f->sock, &hdr, sizeof(hdr));
    REQUIRE(hdr.request == request && (hdr.flags & VHOST_USER_REPLY_MASK) &&
            hdr.size == size, "bad reply to %s: req %u flags %x size %u",
            vu_request_name(request), hdr.request, hdr.flags, hdr.size);
    read_full(f->sock, payload, size);
}

static uint64_t vu_get_u64(struct front *f, uint32_t request)
{
    uint64_t v;

    vu_send(f, request, NULL, 0, NULL, 0);
    vu_reply(f, request, &v, sizeof(v));
    return v;
}

static void vu_set_u64(struct front *f, uint32_t request, uint64_t v,
                       const int *fds, unsigned int nfds)
{
    vu_send(f, request, &v, sizeof(v), fds, nfds);
}

static void vu_state(struct front *f, uint32_t request, unsigned int idx,
                     unsigned int num)
{
    struct vu_vring_state st = { .index = idx, .num = num };

    vu_send(f, request, &st, sizeof(st), NULL, 0);
}

/* Stop ring @qi; returns the index of the next descriptor to process. */
static unsigned int vu_get_vring_base(struct front *f, unsigned int qi)
{
    struct vu_vring_state st = { .index = qi };

    vu_send(f, VHOST_USER_GET_VRING_BASE, &st, sizeof(st), NULL, 0);
    vu_reply(f, VHOST_USER_GET_VRING_BASE, &st, sizeof(st));
    REQUIRE(st.index == qi, "GET_VRING_BASE index %u", st.index);
    return st.num;
}

/* Ring setup in QEMU's order (vhost_virtqueue_start). */
static void ring_start(struct front *f, unsigned int qi, unsigned int base)
{
    struct ring *r = &f->rings[qi];
    uint64_t uva = (uint64_t)(uintptr_t)f->fe_mem;
    struct vu_vring_addr addr = {
        .index = qi,
        .desc_user_addr = uva + r->desc_off,
        .used_user_addr = uva + r->used_off,
        .avail_user_addr = uva + r->avail_off,
    };

    vu_state(f, VHOST_USER_SET_VRING_NUM, qi, QSIZE);
    vu_state(f, VHOST_USER_SET_VRING_BASE, qi, base);
    vu_send(f, VHOST_USER_SET_VRING_ADDR, &addr, sizeof(addr), NULL, 0);
    vu_set_u64(f, VHOST_USER_SET_VRING_CALL, qi, &r->call, 1);
    vu_set_u64(f, VHOST_USER_SET_VRING_KICK, qi, &r->kick, 1);
    vu_state(f, VHOST_USER_SET_VRING_ENABLE, qi, 1);
}

static void *daemon_thread(void *opaque)
{
    struct front *f = opaque;

    f->serve_ret = fv_dev_serve(f->dev, f->daemon_sock);
    return NULL;
}

/*
 * The daemon maps the memfd a second time. We drive the rings through its
 * mapping rather than ours: ThreadSanitizer tracks memory by address, so
 * only then does it see that our release store of avail->idx pairs with
 * the daemon's acquire load (and used->idx the other way), instead of
 * reporting the daemon's writes into a reused buffer as racing.
 */
static uint8_t *daemon_mapping(struct front *f)
{
    struct stat st;
    char line[512];
    uint8_t *found = NULL;
    FILE *fp;

    REQUIRE(fstat(f->memfd, &st) == 0, "fstat memfd");
    fp = fopen("/proc/self/maps", "r");
    REQUIRE(fp, "/proc/self/maps");
    while (fgets(line, sizeof(line), fp)) {
        unsigned long start, end, off, ino;

        if (sscanf(line, "%lx-%lx %*s %lx %*s %lu", &start, &end, &off,
                   &ino) != 4)
            continue;
        if (ino == st.st_ino && off == 0 && end - start >= MEM_SIZE &&
            (uint8_t *)start != f->fe_mem && strstr(line, "memfd:guest"))
            found = (uint8_t *)start;
    }
    fclose(fp);
    REQUIRE(found, "the daemon's mapping of guest memory not found");
    return found;
}

static void front_start(struct front *f, struct fv_dev *dev, bool event_idx)
{
    struct {
        struct vu_mem_table_desc t;
        struct vu_mem_region_desc r;
    } __attribute__((packed)) mt;
    int sv[2];
    uint64_t features, pf;

    memset(f, 0, sizeof(*f));
    f->dev = dev;
    f->event_idx = event_idx;
    f->memfd = memfd_create("guest", MFD_CLOEXEC);
    REQUIRE(f->memfd >= 0 && ftruncate(f->memfd, MEM_SIZE) == 0, "memfd");
    f->fe_mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED,
                     f->memfd, 0);
    REQUIRE(f->fe_mem != MAP_FAILED, "mmap");
    f->mem = f->fe_mem;
    for (unsigned int i = 0; i < NQUEUES; i++) {
        struct ring *r = &f->rings[i];

        r->idx = i;
        r->desc_off = (uint64_t)i * RING_AREA;
        r->avail_off = r->desc_off + 4096;
        r->used_off = r->desc_off + 8192;
        r->kick = eventfd(0, EFD_CLOEXEC);
        r->call = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        REQUIRE(r->kick >= 0 && r->call >= 0, "eventfd");
    }

    REQUIRE(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) == 0,
            "socketpair");
    f->daemon_sock = sv[1];
    f->sock = sv[0];
    REQUIRE(pthread_create(&f->daemon, NULL, daemon_thread, f) == 0,
            "pthread_create");

    features = vu_get_u64(f, VHOST_USER_GET_FEATURES);
    REQUIRE(features & (1ull << VIRTIO_F_VERSION_1), "no VERSION_1");
    REQUIRE(features & (1ull << VHOST_USER_F_PROTOCOL_FEATURES),
            "no PROTOCOL_FEATURES");
    pf = vu_get_u64(f, VHOST_USER_GET_PROTOCOL_FEATURES);
    pf &= 1ull << VHOST_USER_PROTOCOL_F_MQ;
    vu_set_u64(f, VHOST_USER_SET_PROTOCOL_FEATURES, pf, NULL, 0);
    if (pf)
        REQUIRE(vu_get_u64(f, VHOST_USER_GET_QUEUE_NUM) >= NQUEUES,
                "too few queues");
    vu_send(f, VHOST_USER_SET_OWNER, NULL, 0, NULL, 0);
    features &= (1ull << VIRTIO_F_VERSION_1) |
                (1ull << VHOST_USER_F_PROTOCOL_FEATURES) |
                (event_idx ? 1ull << VIRTIO_RING_F_EVENT_IDX : 0);
    vu_set_u64(f, VHOST_USER_SET_FEATURES, features, NULL, 0);

    memset(&mt, 0, sizeof(mt));
    mt.t.nregions = 1;
    mt.r.guest_phys_addr = 0;
    mt.r.memory_size = MEM_SIZE;
    mt.r.userspace_addr = (uint64_t)(uintptr_t)f->fe_mem;
    mt.r.mmap_offset = 0;
    vu_send(f, VHOST_USER_SET_MEM_TABLE, &mt, sizeof(mt), &f->memfd, 1);
    /* messages are handled in order: once this is answered, it is mapped */
    vu_get_u64(f, VHOST_USER_GET_FEATURES);
    f->mem = daemon_mapping(f);
    for (unsigned int i = 0; i < NQUEUES; i++) {
        struct ring *r = &f->rings[i];

        r->desc = (void *)(f->mem + r->desc_off);
        r->avail = (void *)(f->mem + r->avail_off);
        r->used = (void *)(f->mem + r->used_off);
    }
    for (unsigned int i = 0; i < NQUEUES; i++)
        ring_start(f, i, 0);
}

static void front_stop(struct front *f)
{
    shutdown(f->sock, SHUT_RDWR);
    close(f->sock);
    pthread_join(f->daemon, NULL);
    CHECK(f->serve_ret == 0, "fv_dev_serve returned %d", f->serve_ret);
    for (unsigned int i = 0; i < NQUEUES; i++) {
        close(f->rings[i].kick);
        close(f->rings[i].call);
    }
    munmap(f->fe_mem, MEM_SIZE);
    close(f->memfd);
}

/* ---- driver side of the split ring ---- */

static uint64_t slot_gpa(unsigned int qi, unsigned int s)
{
    return BUF_BASE + ((uint64_t)qi * SLOTS + s) * SLOT_SIZE;
}

static uint8_t *slot_mem(struct front *f, unsigned int qi, unsigned int s)
{
    return f->mem + slot_gpa(qi, s);
}

/*
 * Make a chain of @nrd readable segments (lengths @rd, holding @req) and
 * @nwr writable ones (lengths @wr) available, without a kick.
 */
static unsigned int submit_raw(struct front *f, unsigned int qi,
                               const void *req, const uint32_t *rd,
                               unsigned int nrd, const uint32_t *wr,
                               unsigned int nwr, uint64_t unique)
{
    struct ring *r = &f->rings[qi];
    unsigned int s, d, n = 0;
    uint64_t off = 0;
    uint16_t head;

    for (s = 0; s < SLOTS && r->slots[s].busy; s++)
        ;
    REQUIRE(s < SLOTS && nrd + nwr <= DESC_PER_SLOT && nrd + nwr > 0,
            "no free slot");
    head = (uint16_t)(s * DESC_PER_SLOT);
    memset(&r->slots[s], 0, sizeof(r->slots[s]));
    r->slots[s].busy = true;
    r->slots[s].unique = unique;
    if (nrd && rd[0] >= sizeof(struct fuse_in_header))
        memcpy(&r->slots[s].opcode,
               (const uint8_t *)req + offsetof(struct fuse_in_header, opcode),
               sizeof(uint32_t));
    r->slots[s].nwr = nwr;
    for (unsigned int i = 0; i < nrd; i++) {
        d = head + n++;
        memcpy(slot_mem(f, qi, s) + SLOT_IN + off, (const uint8_t *)req + off,
               rd[i]);
        r->desc[d].addr = slot_gpa(qi, s) + SLOT_IN + off;
        r->desc[d].len = rd[i];
        r->desc[d].flags = VRING_DESC_F_NEXT;
        r->desc[d].next = (uint16_t)(d + 1);
        off += rd[i];
    }
    REQUIRE(off <= SLOT_OUT, "request too big for a slot");
    off = 0;
    for (unsigned int i = 0; i < nwr; i++) {
        d = head + n++;
        memset(slot_mem(f, qi, s) + SLOT_OUT + off, 0xa5, wr[i]);
        r->desc[d].addr = slot_gpa(qi, s) + SLOT_OUT + off;
        r->desc[d].len = wr[i];
        r->desc[d].flags = VRING_DESC_F_NEXT | VRING_DESC_F_WRITE;
        r->desc[d].next = (uint16_t)(d + 1);
        r->slots[s].wr_len[i] = wr[i];
        off += wr[i];
    }
    REQUIRE(off <= SLOT_SIZE - SLOT_OUT, "reply room too big for a slot");
    r->desc[head + n - 1].flags &= (uint16_t)~VRING_DESC_F_NEXT;
    r->avail->ring[r->avail_idx % QSIZE] = head;
    r->avail_idx++;
    __atomic_store_n(&r->avail->idx, r->avail_idx, __ATOMIC_RELEASE);
    return s;
}

static void kick(struct front *f, unsigned int qi)
{
    REQUIRE(eventfd_write(f->rings[qi].kick, 1) == 0, "kick");
}

/* Collect used entries; each head must belong to an outstanding chain. */
static void reap(struct front *f, unsigned int qi)
{
    struct ring *r = &f->rings[qi];
    uint16_t idx = __atomic_load_n(&r->used->idx, __ATOMIC_ACQUIRE);

    while (r->last_used != idx) {
        struct vring_used_elem e = r->used->ring[r->last_used % QSIZE];
        unsigned int s = e.id / DESC_PER_SLOT;

        r->last_used++;
        REQUIRE(e.id % DESC_PER_SLOT == 0 && s < SLOTS,
                "queue %u: used id %u is no head we made available", qi,
                e.id);
        REQUIRE(r->slots[s].busy && !r->slots[s].done,
                "queue %u: head %u completed twice or never submitted", qi,
                e.id);
        r->slots[s].done = true;
        r->slots[s].used_len = e.len;
        r->completions++;
    }
    if (f->event_idx) {
        /* used_event: notify us for every further entry */
        uint16_t *used_event = &r->avail->ring[QSIZE];

        __atomic_store_n(used_event, r->last_used, __ATOMIC_RELEASE);
    }
}

static void wait_slot(struct front *f, unsigned int qi, unsigned int s)
{
    struct ring *r = &f->rings[qi];
    int waited = 0;

    reap(f, qi);
    while (!r->slots[s].done) {
        struct pollfd pfd = { .fd = r->call, .events = POLLIN };
        eventfd_t v;

        REQUIRE(waited < WAIT_MS, "queue %u: slot %u (%s, unique %llu) never "
                "completed", qi, s, fuse_opcode_name(r->slots[s].opcode),
                (unsigned long long)r->slots[s].unique);
        poll(&pfd, 1, 10);
        waited += 10;
        eventfd_read(r->call, &v);
        reap(f, qi);
    }
}

/*
 * With EVENT_IDX the device publishes avail_event = its next avail index
 * when it re-enables notifications after a batch: wait until it covers
 * everything we made available, i.e. every chain has been popped.
 */
static void wait_popped(struct front *f, unsigned int qi)
{
    struct ring *r = &f->rings[qi];
    uint16_t *avail_event = (uint16_t *)&r->used->ring[QSIZE];

    for (int waited = 0;
         __atomic_load_n(avail_event, __ATOMIC_ACQUIRE) != r->avail_idx;
         waited++) {
        REQUIRE(waited < WAIT_MS, "queue %u: chains never popped", qi);
        usleep(1000);
    }
}

/* Is @s still outstanding after the queue had every chance to finish? */
static bool slot_done(struct front *f, unsigned int qi, unsigned int s)
{
    reap(f, qi);
    return f->rings[qi].slots[s].done;
}

/* ---- FUSE requests ---- */

struct freq {
    uint8_t buf[SLOT_OUT];
    size_t len;
    uint64_t unique;
};

struct reply {
    int32_t error;
    uint32_t used_len;
    uint32_t oh_len;
    size_t data_len;
    uint8_t data[SLOT_SIZE - SLOT_OUT];
};

static struct freq rq;
static struct reply rp;

static void freq_begin(struct freq *q, uint32_t opcode, uint64_t nodeid)
{
    struct fuse_in_header in = {
        .opcode = opcode,
        .unique = next_unique++,
        .nodeid = nodeid,
        .pid = (uint32_t)getpid(),
    };

    memcpy(q->buf, &in, sizeof(in));
    q->len = sizeof(in);
    q->unique = in.unique;
}

static void freq_add(struct freq *q, const void *p, size_t n)
{
    memcpy(q->buf + q->len, p, n);
    q->len += n;
}

static void freq_str(struct freq *q, const char *s)
{
    freq_add(q, s, strlen(s) + 1);
}

static void freq_end(struct freq *q)
{
    uint32_t len = (uint32_t)q->len;

    memcpy(q->buf, &len, sizeof(len));
}

/* Submit @q with the header in its own descriptor and @room reply bytes. */
static unsigned int submit_req(struct front *f, unsigned int qi,
                               struct freq *q, uint32_t room)
{
    uint32_t rd[2] = { sizeof(struct fuse_in_header),
                       (uint32_t)(q->len - sizeof(struct fuse_in_header)) };
    uint32_t wr[2] = { sizeof(struct fuse_out_header), room };

    freq_end(q);
    return submit_raw(f, qi, q->buf, rd, rd[1] ? 2 : 1, wr, room ? 2 : 1,
                      q->unique);
}

/* Gather slot @s's reply; checks used len == out header len and unique. */
static int32_t collect(struct front *f, unsigned int qi, unsigned int s,
                       struct reply *out)
{
    struct slot *sl = &f->rings[qi].slots[s];
    uint8_t *p = slot_mem(f, qi, s) + SLOT_OUT;
    struct fuse_out_header oh;
    size_t room = 0;

    wait_slot(f, qi, s);
    for (unsigned int i = 0; i < sl->nwr; i++)
        room += sl->wr_len[i];
    memset(out, 0, offsetof(struct reply, data));
    out->used_len = sl->used_len;
    sl->busy = false;
    CHECK(sl->used_len <= room, "used len %u beyond %zu writable bytes",
          sl->used_len, room);
    if (sl->used_len < sizeof(oh)) {
        out->error = 1; /* no reply at all */
        return out->error;
    }
    memcpy(&oh, p, sizeof(oh));
    out->error = oh.error;
    out->oh_len = oh.len;
    CHECK(oh.len == sl->used_len, "unique %llu: used len %u != out len %u",
          (unsigned long long)sl->unique, sl->used_len, oh.len);
    CHECK(oh.unique == sl->unique, "reply unique %llu on the chain of %llu",
          (unsigned long long)oh.unique, (unsigned long long)sl->unique);
    out->data_len = sl->used_len - sizeof(oh);
    memcpy(out->data, p + sizeof(oh), out->data_len);
    return out->error;
}

static int32_t call(struct front *f, unsigned int qi, struct freq *q,
                    uint32_t room, struct reply *out)
{
    unsigned int s = submit_req(f, qi, q, room);

    kick(f, qi);
    return collect(f, qi, s, out);
}

static int32_t do_init(struct front *f, unsigned int qi)
{
    struct fuse_init_in in = {
        .major = FUSE_KERNEL_VERSION,
        .minor = FUSE_KERNEL_MINOR_VERSION,
        .max_readahead = 128 * 1024,
        .flags = FUSE_INIT_EXT | FUSE_ASYNC_READ | FUSE_POSIX_LOCKS |
                 FUSE_FLOCK_LOCKS | FUSE_BIG_WRITES | FUSE_MAX_PAGES,
    };
    int32_t err;

    freq_begin(&rq, FUSE_INIT, 0);
    freq_add(&rq, &in, sizeof(in));
    err = call(f, qi, &rq, sizeof(struct fuse_init_out), &rp);
    if (err == 0) {
        struct fuse_init_out out;

        CHECK(rp.data_len == sizeof(out), "INIT reply %zu bytes", rp.data_len);
        memcpy(&out, rp.data, sizeof(out));
        CHECK(out.major == 7 && out.max_write >= 4096,
              "INIT reply %u.%u max_write %u", out.major, out.minor,
              out.max_write);
    }
    return err;
}

static int32_t do_lookup(struct front *f, unsigned int qi, uint64_t parent,
                         const char *name, struct fuse_entry_out *e)
{
    int32_t err;

    freq_begin(&rq, FUSE_LOOKUP, parent);
    freq_str(&rq, name);
    err = call(f, qi, &rq, sizeof(*e), &rp);
    if (err == 0) {
        CHECK(rp.data_len == sizeof(*e), "LOOKUP reply %zu", rp.data_len);
        memcpy(e, rp.data, sizeof(*e));
    }
    return err;
}

static int32_t do_getattr(struct front *f, unsigned int qi, uint64_t nodeid,
                          struct fuse_attr_out *a)
{
    struct fuse_getattr_in in = { 0 };
    int32_t err;

    freq_begin(&rq, FUSE_GETATTR, nodeid);
    freq_add(&rq, &in, sizeof(in));
    err = call(f, qi, &rq, sizeof(*a), &rp);
    if (err == 0) {
        CHECK(rp.data_len == sizeof(*a), "GETATTR reply %zu", rp.data_len);
        memcpy(a, rp.data, sizeof(*a));
    }
    return err;
}

static void submit_getattr(struct front *f, unsigned int qi, uint64_t nodeid,
                           unsigned int *slot)
{
    struct fuse_getattr_in in = { 0 };

    freq_begin(&rq, FUSE_GETATTR, nodeid);
    freq_add(&rq, &in, sizeof(in));
    *slot = submit_req(f, qi, &rq, sizeof(struct fuse_attr_out));
}

static void do_forget_hiprio(struct front *f, uint64_t nodeid, bool batch)
{
    struct fuse_forget_in fi = { .nlookup = 1 };
    struct fuse_batch_forget_in bf = { .count = 2 };
    struct fuse_forget_one one = { .nodeid = nodeid, .nlookup = 1 };
    uint32_t rd[1];
    unsigned int s;

    if (batch) {
        freq_begin(&rq, FUSE_BATCH_FORGET, 0);
        freq_add(&rq, &bf, sizeof(bf));
        freq_add(&rq, &one, sizeof(one));
        one.nodeid = 12345; /* unknown to the fs: must be harmless */
        freq_add(&rq, &one, sizeof(one));
    } else {
        freq_begin(&rq, FUSE_FORGET, nodeid);
        freq_add(&rq, &fi, sizeof(fi));
    }
    freq_end(&rq);
    rd[0] = (uint32_t)rq.len;
    /* like the kernel: readable only */
    s = submit_raw(f, 0, rq.buf, rd, 1, NULL, 0, rq.unique);
    kick(f, 0);
    wait_slot(f, 0, s);
    CHECK(f->rings[0].slots[s].used_len == 0, "%s returned %u bytes",
          batch ? "BATCH_FORGET" : "FORGET", f->rings[0].slots[s].used_len);
    f->rings[0].slots[s].busy = false;
}

static int count_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *de;
    int n = 0;

    REQUIRE(d, "opendir /proc/self/fd");
    while ((de = readdir(d)))
        n++;
    closedir(d);
    return n;
}

/* Invalid requests are answered by the transport with its own header. */
static void test_invalid(struct front *f, unsigned int qi)
{
    struct fuse_getattr_in ga = { 0 };
    struct fuse_in_header in;
    uint32_t rd[1], wr[2];
    unsigned int s;

    /* name without NUL */
    freq_begin(&rq, FUSE_LOOKUP, FUSE_ROOT_ID);
    freq_add(&rq, "abc", 3);
    CHECK(call(f, qi, &rq, 128, &rp) == -EINVAL && rp.used_len == 16,
          "unterminated name: %d / %u", rp.error, rp.used_len);
    /* '/' in a name */
    freq_begin(&rq, FUSE_LOOKUP, FUSE_ROOT_ID);
    freq_str(&rq, "../etc");
    CHECK(call(f, qi, &rq, 128, &rp) == -EINVAL, "'/' in name: %d",
          rp.error);
    /* unknown and unserved opcodes */
    freq_begin(&rq, 100, FUSE_ROOT_ID);
    CHECK(call(f, qi, &rq, 128, &rp) == -ENOSYS, "opcode 100: %d", rp.error);
    freq_begin(&rq, FUSE_IOCTL, FUSE_ROOT_ID);
    freq_add(&rq, &ga, sizeof(ga));
    freq_add(&rq, &ga, sizeof(ga));
    CHECK(call(f, qi, &rq, 128, &rp) == -ENOSYS, "IOCTL: %d", rp.error);
    /* in.len larger than the chain */
    freq_begin(&rq, FUSE_GETATTR, FUSE_ROOT_ID);
    freq_add(&rq, &ga, sizeof(ga));
    freq_end(&rq);
    memcpy(&in, rq.buf, sizeof(in));
    in.len += 8;
    memcpy(rq.buf, &in, sizeof(in));
    rd[0] = (uint32_t)rq.len;
    wr[0] = 16;
    wr[1] = 200;
    s = submit_raw(f, qi, rq.buf, rd, 1, wr, 2, rq.unique);
    kick(f, qi);
    CHECK(collect(f, qi, s, &rp) == -EINVAL, "in.len too large: %d",
          rp.error);
    /* GETATTR without any writable buffer: returned empty */
    freq_begin(&rq, FUSE_GETATTR, FUSE_ROOT_ID);
    freq_add(&rq, &ga, sizeof(ga));
    freq_end(&rq);
    rd[0] = (uint32_t)rq.len;
    s = submit_raw(f, qi, rq.buf, rd, 1, NULL, 0, rq.unique);
    kick(f, qi);
    wait_slot(f, qi, s);
    CHECK(f->rings[qi].slots[s].used_len == 0, "no-room reply len %u",
          f->rings[qi].slots[s].used_len);
    f->rings[qi].slots[s].busy = false;
    /* a 10-byte writable part cannot even take a header */
    freq_begin(&rq, FUSE_STATFS, FUSE_ROOT_ID);
    freq_end(&rq);
    rd[0] = (uint32_t)rq.len;
    wr[0] = 10;
    s = submit_raw(f, qi, rq.buf, rd, 1, wr, 1, rq.unique);
    kick(f, qi);
    wait_slot(f, qi, s);
    CHECK(f->rings[qi].slots[s].used_len == 0, "10-byte room reply len %u",
          f->rings[qi].slots[s].used_len);
    f->rings[qi].slots[s].busy = false;
    /* a reply that does not fit: header only, -EOVERFLOW */
    freq_begin(&rq, FUSE_GETATTR, FUSE_ROOT_ID);
    freq_add(&rq, &ga, sizeof(ga));
    CHECK(call(f, qi, &rq, 8, &rp) == -EOVERFLOW && rp.used_len == 16,
          "overflowing reply: %d / %u", rp.error, rp.used_len);
}

/* ---- passthrough round trip ---- */

static void test_passthrough(struct front *f, const char *dir, bool pool)
{
    struct fuse_entry_out e, e2;
    struct fuse_attr_out a;
    struct fuse_create_in ci = { .flags = O_RDWR, .mode = S_IFREG | 0644,
                                 .umask = 022 };
    struct fuse_open_out oo;
    struct fuse_write_in wi = { 0 };
    struct fuse_read_in ri = { 0 };
    struct fuse_release_in rel = { 0 };
    static uint8_t pattern[64 * 1024];
    uint64_t nodeid, fh;
    char path[512];
    unsigned int s, slots[24];
    int fd;

    for (size_t i = 0; i < sizeof(pattern); i++)
        pattern[i] = (uint8_t)(i * 7 + (pool ? 3 : 1));

    /* before INIT libfuse would not serve anything */
    CHECK(do_lookup(f, 1, FUSE_ROOT_ID, "hello.txt", &e) == -EIO,
          "LOOKUP before INIT: %d", rp.error);
    CHECK(do_init(f, 1) == 0, "INIT: %d", rp.error);
    CHECK(rp.used_len == 16 + sizeof(struct fuse_init_out), "INIT len %u",
          rp.used_len);

    CHECK(do_lookup(f, 1, FUSE_ROOT_ID, "hello.txt", &e) == 0,
          "LOOKUP hello.txt: %d", rp.error);
    CHECK(e.nodeid != 0 && e.attr.size == 12, "LOOKUP entry %llu size %llu",
          (unsigned long long)e.nodeid, (unsigned long long)e.attr.size);
    /* ENOENT, or a negative entry (nodeid 0) the guest may cache */
    CHECK(do_lookup(f, 2, FUSE_ROOT_ID, "missing", &e2) == -ENOENT ||
          (rp.error == 0 && e2.nodeid == 0), "LOOKUP missing: %d", rp.error);
    CHECK(do_getattr(f, 2, e.nodeid, &a) == 0 && a.attr.size == 12,
          "GETATTR: %d size %llu", rp.error, (unsigned long long)a.attr.size);

    /* CREATE + WRITE + READ */
    freq_begin(&rq, FUSE_CREATE, FUSE_ROOT_ID);
    freq_add(&rq, &ci, sizeof(ci));
    freq_str(&rq, "new.txt");
    CHECK(call(f, 1, &rq, sizeof(e2) + sizeof(oo), &rp) == 0, "CREATE: %d",
          rp.error);
    REQUIRE(rp.data_len == sizeof(e2) + sizeof(oo), "CREATE reply %zu",
            rp.data_len);
    memcpy(&e2, rp.data, sizeof(e2));
    memcpy(&oo, rp.data + sizeof(e2), sizeof(oo));
    nodeid = e2.nodeid;
    fh = oo.fh;

    wi.fh = fh;
    wi.size = sizeof(pattern);
    freq_begin(&rq, FUSE_WRITE, nodeid);
    freq_add(&rq, &wi, sizeof(wi));
    freq_add(&rq, pattern, sizeof(pattern));
    freq_end(&rq);
    {
        /* the kernel's layout: header, write_in, then the data pages */
        uint32_t rd[4] = { 40, 40, 32768, 32768 };
        uint32_t wr[1] = { 16 + sizeof(struct fuse_write_out) };

        s = submit_raw(f, 2, rq.buf, rd, 4, wr, 1, rq.unique);
        kick(f, 2);
        CHECK(collect(f, 2, s, &rp) == 0, "WRITE: %d", rp.error);
        CHECK(rp.data_len == sizeof(struct fuse_write_out) &&
              ((struct fuse_write_out *)rp.data)->size == sizeof(pattern),
              "WRITE wrote %u", ((struct fuse_write_out *)rp.data)->size);
    }

    ri.fh = fh;
    ri.size = sizeof(pattern);
    freq_begin(&rq, FUSE_READ, nodeid);
    freq_add(&rq, &ri, sizeof(ri));
    freq_end(&rq);
    {
        uint32_t rd[1] = { (uint32_t)rq.len };
        uint32_t wr[3] = { 16, 10000, sizeof(pattern) - 10000 };

        s = submit_raw(f, 1, rq.buf, rd, 1, wr, 3, rq.unique);
        kick(f, 1);
        CHECK(collect(f, 1, s, &rp) == 0, "READ: %d", rp.error);
        CHECK(rp.data_len == sizeof(pattern) &&
              memcmp(rp.data, pattern, sizeof(pattern)) == 0,
              "READ returned %zu bytes, not the pattern", rp.data_len);
    }
    snprintf(path, sizeof(path), "%s/new.txt", dir);
    fd = open(path, O_RDONLY);
    CHECK(fd >= 0, "new.txt not on the host");
    if (fd >= 0) {
        static uint8_t host[sizeof(pattern)];

        CHECK(read(fd, host, sizeof(host)) == (ssize_t)sizeof(host) &&
              memcmp(host, pattern, sizeof(host)) == 0,
              "host file differs from what the guest wrote");
        close(fd);
    }
    rel.fh = fh;
    freq_begin(&rq, FUSE_RELEASE, nodeid);
    freq_add(&rq, &rel, sizeof(rel));
    CHECK(call(f, 1, &rq, 0, &rp) == 0 && rp.used_len == 16, "RELEASE: %d",
          rp.error);

    /* FORGETs travel on hiprio and come back empty */
    do_forget_hiprio(f, nodeid, false);
    do_forget_hiprio(f, e.nodeid, true);

    test_invalid(f, 1);

    /*
     * A stop with requests in flight: everything popped before the stop is
     * pushed before GET_VRING_BASE replies; the rest stays available and
     * is served after the restart.
     */
    {
        uint16_t before, popped;
        unsigned int base;

        CHECK(do_lookup(f, 2, FUSE_ROOT_ID, "hello.txt", &e) == 0,
              "LOOKUP for the stop test: %d", rp.error);
        before = f->rings[2].avail_idx;
        for (unsigned int i = 0; i < 24; i++)
            submit_getattr(f, 2, e.nodeid, &slots[i]);
        kick(f, 2);
        base = vu_get_vring_base(f, 2);
        popped = (uint16_t)(base - before);
        CHECK(popped <= 24, "GET_VRING_BASE %u beyond the %u available", base,
              before + 24);
        for (unsigned int i = 0; i < 24; i++)
            CHECK(slot_done(f, 2, slots[i]) == (i < popped),
                  "request %u (popped %u): done %d at GET_VRING_BASE", i,
                  popped, slot_done(f, 2, slots[i]));
        ring_start(f, 2, base);
        for (unsigned int i = 0; i < 24; i++)
            CHECK(collect(f, 2, slots[i], &rp) == 0 &&
                  ((struct fuse_attr_out *)rp.data)->attr.size == 12,
                  "GETATTR %u across the stop: %d", i, rp.error);
        CHECK(do_getattr(f, 2, e.nodeid, &a) == 0, "GETATTR after restart: %d",
              rp.error);
    }

    /* remount: DESTROY, then nothing but INIT is served, then INIT works */
    freq_begin(&rq, FUSE_DESTROY, 0);
    CHECK(call(f, 1, &rq, 0, &rp) == 0 && rp.used_len == 16, "DESTROY: %d",
          rp.error);
    CHECK(do_lookup(f, 2, FUSE_ROOT_ID, "hello.txt", &e) == -EIO,
          "LOOKUP after DESTROY: %d", rp.error);
    freq_begin(&rq, FUSE_DESTROY, 0);
    CHECK(call(f, 1, &rq, 0, &rp) == -EIO, "second DESTROY: %d", rp.error);
    CHECK(do_init(f, 2) == 0, "INIT after DESTROY: %d", rp.error);
    CHECK(do_lookup(f, 1, FUSE_ROOT_ID, "new.txt", &e) == 0 &&
          e.attr.size == sizeof(pattern), "LOOKUP on the fresh session: %d",
          rp.error);
    /* reboot: INIT again without DESTROY */
    CHECK(do_init(f, 1) == 0, "INIT after INIT: %d", rp.error);
    CHECK(do_lookup(f, 2, FUSE_ROOT_ID, "hello.txt", &e) == 0,
          "LOOKUP after re-INIT: %d", rp.error);
}

/* ---- transport ops: controlled timing and locks ---- */

static struct {
    int inits, destroys, forgets;
    int lock_fd;                /* SETLK/SETLKW operate on this OFD */
    int getattr_delay_us;
} tops;

static void t_init(void *userdata, struct fuse_conn_info *conn)
{
    (void)userdata;
    (void)conn;
    __atomic_add_fetch(&tops.inits, 1, __ATOMIC_RELAXED);
}

static void t_destroy(void *userdata)
{
    (void)userdata;
    __atomic_add_fetch(&tops.destroys, 1, __ATOMIC_RELAXED);
}

static void t_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
    struct stat st = {
        .st_ino = ino,
        .st_mode = S_IFREG | 0644,
        .st_nlink = 1,
        .st_size = (off_t)ino * 10,
    };
    int delay = __atomic_load_n(&tops.getattr_delay_us, __ATOMIC_RELAXED);

    (void)fi;
    if (delay)
        usleep((useconds_t)delay);
    /* which thread runs us must agree with the current request */
    if (!fv_current_req() || fv_current_req()->nodeid != ino)
        fuse_reply_err(req, EFAULT);
    else
        fuse_reply_attr(req, &st, 1.0);
}

static void t_readlink(fuse_req_t req, fuse_ino_t ino)
{
    (void)ino;
    fuse_reply_readlink(req, "a-rather-long-symlink-target-that-needs-more-"
                             "room-than-the-guest-gave");
}

static void t_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
    (void)ino;
    __atomic_add_fetch(&tops.forgets, (int)nlookup, __ATOMIC_RELAXED);
    fuse_reply_none(req);
}

static void t_setlk(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi,
                    struct flock *lock, int sleep)
{
    struct flock fl = *lock;
    int r;

    (void)ino;
    (void)fi;
    fl.l_pid = 0;
    /* no EINTR retry: the transport interrupts lock waits to stop */
    r = fcntl(__atomic_load_n(&tops.lock_fd, __ATOMIC_ACQUIRE),
              sleep ? F_OFD_SETLKW : F_OFD_SETLK, &fl);
    fuse_reply_err(req, r < 0 ? errno : 0);
}

static const struct fuse_lowlevel_ops t_ops = {
    .init = t_init,
    .destroy = t_destroy,
    .getattr = t_getattr,
    .readlink = t_readlink,
    .forget = t_forget,
    .setlk = t_setlk,
};

/*
 * Wait until an OFD lock request on @path is blocked: a "->" line for its
 * device:inode in /proc/locks (which lists every process's locks).
 */
static void wait_lock_waiter(const char *path)
{
    char key[64];
    struct stat st;

    REQUIRE(stat(path, &st) == 0, "stat %s", path);
    snprintf(key, sizeof(key), " %02x:%02x:%lu ", major(st.st_dev),
             minor(st.st_dev), (unsigned long)st.st_ino);
    for (int waited = 0;; waited += 5) {
        char line[256];
        bool found = false;
        FILE *fp = fopen("/proc/locks", "r");

        REQUIRE(fp, "/proc/locks");
        while (fgets(line, sizeof(line), fp))
            if (strstr(line, "-> OFDLCK") && strstr(line, key))
                found = true;
        fclose(fp);
        if (found)
            return;
        REQUIRE(waited < WAIT_MS, "SETLKW never blocked");
        usleep(5000);
    }
}

static unsigned int submit_setlkw(struct front *f, unsigned int qi,
                                  uint32_t type, bool wait)
{
    struct fuse_lk_in lk = {
        .owner = 77,
        .lk = { .start = 0, .end = INT64_MAX, .type = type, .pid = 1 },
    };

    freq_begin(&rq, wait ? FUSE_SETLKW : FUSE_SETLK, 5);
    freq_add(&rq, &lk, sizeof(lk));
    return submit_req(f, qi, &rq, 0);
}

static void test_transport(struct front *f, const char *lockpath, bool pool)
{
    struct fuse_attr_out a;
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    unsigned int s, base, slots[16];
    int holder, fds_before;

    CHECK(do_init(f, 1) == 0, "INIT: %d", rp.error);
    CHECK(do_getattr(f, 1, 33, &a) == 0 && a.attr.ino == 33 &&
          a.attr.size == 330, "GETATTR 33: %d", rp.error);

    /* a reply bigger than the guest's buffer */
    freq_begin(&rq, FUSE_READLINK, 2);
    CHECK(call(f, 2, &rq, 20, &rp) == -EOVERFLOW && rp.used_len == 16,
          "READLINK overflow: %d / %u", rp.error, rp.used_len);

    /* hiprio FORGET reaches the fs and comes back empty */
    do_forget_hiprio(f, 9, false);
    CHECK(__atomic_load_n(&tops.forgets, __ATOMIC_RELAXED) >= 1,
          "FORGET not delivered");

    /* SETLKW blocks on the side pool; the queue keeps serving */
    holder = open(lockpath, O_RDWR);
    __atomic_store_n(&tops.lock_fd, open(lockpath, O_RDWR), __ATOMIC_RELEASE);
    REQUIRE(holder >= 0 && tops.lock_fd >= 0, "lock file");
    REQUIRE(fcntl(holder, F_OFD_SETLK, &fl) == 0, "holder lock");
    s = submit_setlkw(f, 1, F_WRLCK, true);
    kick(f, 1);
    wait_lock_waiter(lockpath);
    for (int i = 0; i < 5; i++)
        CHECK(do_getattr(f, 1, 40 + (unsigned int)i, &a) == 0 &&
              a.attr.ino == 40 + (unsigned int)i,
              "GETATTR behind a blocked SETLKW: %d", rp.error);
    CHECK(!slot_done(f, 1, s), "SETLKW finished while the lock was held");
    /* releasing the host lock lets it through */
    fl.l_type = F_UNLCK;
    REQUIRE(fcntl(holder, F_OFD_SETLK, &fl) == 0, "holder unlock");
    CHECK(collect(f, 1, s, &rp) == 0 && rp.used_len == 16,
          "SETLKW after unlock: %d", rp.error);
    /* drop it again (through the daemon) and re-block */
    s = submit_setlkw(f, 2, F_UNLCK, false);
    kick(f, 2);
    CHECK(collect(f, 2, s, &rp) == 0, "SETLK unlock: %d", rp.error);
    fl.l_type = F_WRLCK;
    REQUIRE(fcntl(holder, F_OFD_SETLK, &fl) == 0, "holder relock");

    /* an INIT (reboot) interrupts a blocked SETLKW instead of waiting */
    s = submit_setlkw(f, 1, F_WRLCK, true);
    kick(f, 1);
    wait_lock_waiter(lockpath);
    CHECK(do_getattr(f, 1, 50, &a) == 0, "GETATTR: %d", rp.error);
    CHECK(do_init(f, 2) == 0, "INIT with a blocked SETLKW: %d", rp.error);
    CHECK(collect(f, 1, s, &rp) == -EINTR, "SETLKW across INIT: %d",
          rp.error);

    /* GET_VRING_BASE with a blocked SETLKW and slow GETATTRs in flight */
    {
        uint16_t before = f->rings[1].avail_idx, popped;

        s = submit_setlkw(f, 1, F_WRLCK, true);
        kick(f, 1);
        wait_lock_waiter(lockpath);
        __atomic_store_n(&tops.getattr_delay_us, 3000, __ATOMIC_RELAXED);
        for (unsigned int i = 0; i < 16; i++)
            submit_getattr(f, 1, 100 + i, &slots[i]);
        kick(f, 1);
        if (f->event_idx)
            wait_popped(f, 1);
        base = vu_get_vring_base(f, 1);
        __atomic_store_n(&tops.getattr_delay_us, 0, __ATOMIC_RELAXED);
        popped = (uint16_t)(base - before);
        CHECK(popped >= 1 && popped <= 17, "GET_VRING_BASE %u (from %u)",
              base, before);
        if (f->event_idx)
            CHECK(popped == 17, "only %u of 17 popped", popped);
        CHECK(slot_done(f, 1, s), "blocked SETLKW not pushed by the stop");
        CHECK(collect(f, 1, s, &rp) == -EINTR, "interrupted SETLKW: %d",
              rp.error);
        for (unsigned int i = 0; i < 16; i++)
            CHECK(slot_done(f, 1, slots[i]) == (i + 1u < popped),
                  "GETATTR %u (popped %u) done %d at GET_VRING_BASE", i,
                  popped, slot_done(f, 1, slots[i]));
        ring_start(f, 1, base);
        for (unsigned int i = 0; i < 16; i++)
            CHECK(collect(f, 1, slots[i], &rp) == 0 &&
                  ((struct fuse_attr_out *)rp.data)->attr.ino == 100 + i,
                  "GETATTR %u across the stop: %d", i, rp.error);
    }
    CHECK(do_getattr(f, 1, 7, &a) == 0 && a.attr.ino == 7,
          "GETATTR after restart: %d", rp.error);
    close(holder);
    close(tops.lock_fd);

    /* live mode switches between bursts: nothing lost or misrouted */
    for (unsigned int round = 0; round < 40; round++) {
        unsigned int qi = 1 + round % 2;
        struct dispatch *d = fv_dev_dispatch(f->dev);
        enum fv_mode m;
        unsigned int ps;

        CHECK(dispatch_set_mode(d, qi, (round / 2) % 2 ? FV_MODE_POOL
                                                       : FV_MODE_INLINE,
                                1 + round % 4) == 0, "set_mode");
        CHECK(dispatch_get_mode(d, qi, &m, &ps) == 0 && ps == 1 + round % 4,
              "get_mode");
        for (unsigned int i = 0; i < 8; i++)
            submit_getattr(f, qi, 1000 + round * 8 + i, &slots[i]);
        kick(f, qi);
        for (unsigned int i = 0; i < 8; i++)
            CHECK(collect(f, qi, slots[i], &rp) == 0 &&
                  ((struct fuse_attr_out *)rp.data)->attr.ino ==
                  1000 + round * 8 + i, "burst %u request %u: %d", round, i,
                  rp.error);
    }
    CHECK(dispatch_set_mode(fv_dev_dispatch(f->dev), 1, FV_MODE_SIDE, 1) ==
          -EINVAL, "side is not a queue mode");
    CHECK(dispatch_set_mode(fv_dev_dispatch(f->dev), NQUEUES + 5,
                            FV_MODE_POOL, 1) == -EINVAL, "bad queue index");
    dispatch_set_mode(fv_dev_dispatch(f->dev), 1,
                      pool ? FV_MODE_POOL : FV_MODE_INLINE, pool ? 4 : 0);
    dispatch_set_mode(fv_dev_dispatch(f->dev), 2,
                      pool ? FV_MODE_POOL : FV_MODE_INLINE, pool ? 4 : 0);

    /* a guest sending INIT after INIT: fresh sessions, nothing leaks */
    {
        int inits = __atomic_load_n(&tops.inits, __ATOMIC_RELAXED);
        int destroys = __atomic_load_n(&tops.destroys, __ATOMIC_RELAXED);

        fds_before = count_fds();
        for (int i = 0; i < 200; i++)
            CHECK(do_init(f, 1 + (unsigned int)i % 2) == 0, "INIT %d: %d", i,
                  rp.error);
        CHECK(count_fds() == fds_before, "fds %d -> %d over 200 INITs",
              fds_before, count_fds());
        CHECK(__atomic_load_n(&tops.inits, __ATOMIC_RELAXED) == inits + 200,
              "init ran %d times", tops.inits - inits);
        /* each replaced session had INIT and no DESTROY */
        CHECK(__atomic_load_n(&tops.destroys, __ATOMIC_RELAXED) ==
              destroys + 200, "destroy ran %d times", tops.destroys - destroys);
    }
    /* requests racing on both queues while INITs replace the session */
    for (unsigned int i = 0; i < 8; i++)
        submit_getattr(f, 2, 500 + i, &slots[i]);
    kick(f, 2);
    CHECK(do_init(f, 1) == 0, "INIT during GETATTRs: %d", rp.error);
    for (unsigned int i = 0; i < 8; i++) {
        int32_t err = collect(f, 2, slots[i], &rp);

        CHECK(err == 0 || err == -EIO, "GETATTR racing INIT: %d", err);
    }
    (void)pool;
}

static char tempdir[64];

static void rm_tempdir(void)
{
    char cmd[128];

    if (!tempdir[0])
        return;
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tempdir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", tempdir);
    tempdir[0] = '\0';
}

static char *make_tempdir(void)
{
    char tmpl[] = "/tmp/test_fuse_virtio.XXXXXX";
    char *dir = mkdtemp(tmpl);

    REQUIRE(dir, "mkdtemp");
    snprintf(tempdir, sizeof(tempdir), "%s", dir);
    return strdup(dir);
}

static void run_mode(unsigned int pool_size)
{
    struct fv_config cfg = { .thread_pool_size = pool_size,
                             .max_request_queues = NQUEUES - 1 };
    struct lo_config lcfg = {
        .cache = LO_CACHE_AUTO,
        .posix_lock = true,
        .flock = true,
        .readdirplus = -1,
    };
    char *dir = make_tempdir();
    char path[600];
    struct lo_data *lo;
    struct fv_dev *dev;
    struct front f;
    int fd;

    fprintf(stderr, "== %s mode (thread pool %u)\n",
            pool_size ? "pool" : "inline", pool_size);
    snprintf(path, sizeof(path), "%s/hello.txt", dir);
    fd = open(path, O_CREAT | O_WRONLY, 0644);
    REQUIRE(fd >= 0 && write(fd, "hello world\n", 12) == 12, "hello.txt");
    close(fd);

    /* passthrough on the temp dir */
    lcfg.root = dir;
    lcfg.proc_self_fd = open("/proc/self/fd", O_PATH | O_CLOEXEC);
    REQUIRE(lcfg.proc_self_fd >= 0, "/proc/self/fd");
    lo = lo_data_new(&lcfg);
    REQUIRE(lo, "lo_data_new: %s", strerror(errno));
    dev = fv_dev_new(&cfg, &lo_ops, sizeof(lo_ops), lo);
    REQUIRE(dev, "fv_dev_new");
    front_start(&f, dev, pool_size == 0);
    test_passthrough(&f, dir, pool_size != 0);
    front_stop(&f);
    fv_dev_free(dev);
    lo_data_free(lo);
    close(lcfg.proc_self_fd);

    /* the transport with ops whose timing the test controls */
    snprintf(path, sizeof(path), "%s/lockfile", dir);
    fd = open(path, O_CREAT | O_RDWR, 0644);
    REQUIRE(fd >= 0, "lockfile");
    close(fd);
    memset(&tops, 0, sizeof(tops));
    dev = fv_dev_new(&cfg, &t_ops, sizeof(t_ops), NULL);
    REQUIRE(dev, "fv_dev_new");
    front_start(&f, dev, pool_size != 0);
    test_transport(&f, path, pool_size != 0);
    front_stop(&f);
    fv_dev_free(dev);
    /* the session of the last INIT is destroyed with the connection */
    CHECK(__atomic_load_n(&tops.destroys, __ATOMIC_RELAXED) ==
          __atomic_load_n(&tops.inits, __ATOMIC_RELAXED), "inits %d destroys %d",
          tops.inits, tops.destroys);

    rm_tempdir();
    free(dir);
}

int main(void)
{
    /* REQUIRE() exits: still remove the temp dir */
    atexit(rm_tempdir);
    if (getenv("TEST_VERBOSE") == NULL)
        vfs_log_set_level(VFS_LOG_ERR);
    run_mode(0);
    run_mode(4);
    if (failures) {
        fprintf(stderr, "%d check(s) failed\n", failures);
        return 1;
    }
    printf("fuse_virtio: all checks passed\n");
    return 0;
}
