/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hostile vhost-user messages: wrong payload sizes, out-of-range queue
 * indices, missing or extra fds, overlapping or absurd memory regions,
 * rings kicked or addressed before they can work.  Our daemon nacks each
 * (REPLY_ACK, or a zero-size reply to a GET), keeps the stream in sync,
 * closes fds it does not keep, and the data path keeps serving.
 */
#include "test_hostile.h"

#include <errno.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#define FLAGS_NEED_REPLY (VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK)

struct region_wire {
    uint64_t gpa, size, uaddr, mmap_offset;
};

struct mem_table_wire {
    uint32_t nregions, padding;
    struct region_wire r[9];
};

struct mem_reg_wire {
    uint64_t padding;
    struct region_wire r;
};

/*
 * Send with NEED_REPLY and read the ack: >= 0 the backend's u64 (0 ok, else
 * an errno), < 0 no usable reply (-ECONNRESET, -ETIMEDOUT, -EPROTO).
 */
static long long send_ack(uint32_t req, const void *p, uint32_t size, const int *fds,
                          unsigned nfds)
{
    int ret = vuf_msg_send(H.dev, req, FLAGS_NEED_REPLY, p, size, fds, nfds);
    if (ret < 0) {
        return ret;
    }
    struct vuf_msg m;
    ret = vuf_msg_recv(H.dev, &m, T_MS);
    if (ret < 0) {
        return ret;
    }
    for (unsigned i = 0; i < m.nfds; i++) {
        close(m.fds[i]);
    }
    if (m.request != req || !(m.flags & VHOST_USER_REPLY_MASK) || m.size != 8) {
        return -EPROTO;
    }
    uint64_t ack;
    memcpy(&ack, m.payload, 8);
    return (long long)ack;
}

/* A request with a reply of its own: the reply's payload size, or -errno. */
static int send_get(uint32_t req, uint32_t flags, const void *p, uint32_t size, const int *fds,
                    unsigned nfds)
{
    int ret = vuf_msg_send(H.dev, req, flags, p, size, fds, nfds);
    if (ret < 0) {
        return ret;
    }
    struct vuf_msg m;
    ret = vuf_msg_recv(H.dev, &m, T_MS);
    if (ret < 0) {
        return ret;
    }
    for (unsigned i = 0; i < m.nfds; i++) {
        close(m.fds[i]);
    }
    if (m.request != req || !(m.flags & VHOST_USER_REPLY_MASK)) {
        return -EPROTO;
    }
    return (int)m.size;
}

static void note_reply(struct hctx *x, const char *what, long long v)
{
    if (v < 0) {
        hc_note(x, "%s: %s", what, strerror((int)-v));
    } else {
        hc_note(x, "%s %lld", what, v);
    }
}

/* Our daemon must refuse: a non-zero ack. */
static enum outcome nacked(struct hctx *x, long long ack)
{
    note_reply(x, "ack", ack);
    EXPECT_OURS(x, ack > 0, "ack %lld, want a nack", ack);
    return hc_settle_ctl(x);
}

/* Our daemon must refuse a GET: a zero-size reply. */
static enum outcome get_refused(struct hctx *x, int size)
{
    note_reply(x, "reply size", size);
    EXPECT_OURS(x, size == 0, "reply size %d, want 0", size);
    return hc_settle_ctl(x);
}

/* A memfd of @size bytes for regions of our own. */
static int memfd_of(size_t size)
{
    int fd = memfd_create("hostile-region", MFD_CLOEXEC);
    if (fd >= 0 && ftruncate(fd, (off_t)size) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* ---- cases ---- */

static enum outcome unknown_request(struct hctx *x)
{
    return nacked(x, send_ack(999, NULL, 0, NULL, 0));
}

/* The header announces 256 MiB and nothing follows: the daemon may wait
 * for the payload forever, but only its control thread. */
static enum outcome payload_never_sent(struct hctx *x)
{
    uint32_t hdr[3] = { VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, 0x10000000 };
    vuf_send_bytes(H.dev, hdr, sizeof(hdr), NULL, 0);
    struct vuf_msg m;
    int ret = vuf_msg_recv(H.dev, &m, 200);
    note_reply(x, "recv", ret);
    return hc_settle(x);
}

static enum outcome wrong_size(struct hctx *x)
{
    uint8_t p[64] = { 0 };
    uint32_t st[2] = { 1, 128 };
    memcpy(p, st, sizeof(st));
    switch (x->c->param) {
    case 0:     /* SET_VRING_NUM: 4 bytes instead of 8 */
        return nacked(x, send_ack(VHOST_USER_SET_VRING_NUM, p, 4, NULL, 0));
    case 1:     /* GET_FEATURES with a payload */
        return get_refused(x, send_get(VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, p, 8,
                                       NULL, 0));
    case 2:     /* SET_FEATURES: 2 bytes */
        return nacked(x, send_ack(VHOST_USER_SET_FEATURES, p, 2, NULL, 0));
    default:    /* SET_VRING_ADDR: 16 of 40 bytes */
        return nacked(x, send_ack(VHOST_USER_SET_VRING_ADDR, p, 16, NULL, 0));
    }
}

static enum outcome bad_index(struct hctx *x)
{
    int efd = eventfd(0, EFD_CLOEXEC);
    enum outcome out;
    switch (x->c->param) {
    case 0: {
        uint32_t st[2] = { 200, 128 };
        out = nacked(x, send_ack(VHOST_USER_SET_VRING_NUM, st, 8, NULL, 0));
        break;
    }
    case 1: {
        uint32_t st[2] = { 255, 0 };
        out = get_refused(x, send_get(VHOST_USER_GET_VRING_BASE, VHOST_USER_VERSION, st, 8,
                                      NULL, 0));
        break;
    }
    default: {
        uint64_t v = 127;
        out = nacked(x, send_ack(VHOST_USER_SET_VRING_KICK, &v, 8, &efd, 1));
        break;
    }
    }
    close(efd);
    return out;
}

static enum outcome ring_fd_payload(struct hctx *x)
{
    int efd = eventfd(0, EFD_CLOEXEC);
    long long ack;
    if (x->c->param == 0) {     /* reserved bits above the index and NOFD */
        uint64_t v = 1 | (1ull << 40);
        ack = send_ack(VHOST_USER_SET_VRING_CALL, &v, 8, &efd, 1);
    } else {                    /* index 1, no NOFD bit, no fd */
        uint64_t v = 1;
        ack = send_ack(VHOST_USER_SET_VRING_KICK, &v, 8, NULL, 0);
    }
    close(efd);
    return nacked(x, ack);
}

/* Messages carrying fds they must not: refused, and the fds closed (the
 * daemon's fd count does not grow with repetition). */
static enum outcome extra_fds(struct hctx *x)
{
    int fds[8];
    unsigned n = x->c->param == 1 ? 8 : 2;
    for (unsigned i = 0; i < n; i++) {
        fds[i] = eventfd(0, EFD_CLOEXEC);
    }
    int before = hc_daemon_fds();
    long long r = 0;
    for (unsigned k = 0; k < 4; k++) {
        if (x->c->param == 0) {         /* SET_VRING_CALL: one fd expected */
            uint64_t v = 1;
            r = send_ack(VHOST_USER_SET_VRING_CALL, &v, 8, fds, n);
            EXPECT_OURS(x, r > 0, "ack %lld, want a nack", r);
        } else if (x->c->param == 1) {  /* GET_FEATURES: no fd expected */
            r = send_get(VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0, fds, n);
            EXPECT_OURS(x, r == 0, "reply size %lld, want 0", r);
        } else {                        /* SET_LOG_BASE: not supported */
            uint64_t lb[2] = { 4096, 0 };
            r = send_ack(VHOST_USER_SET_LOG_BASE, lb, 16, fds, 1);
            EXPECT_OURS(x, r > 0, "ack %lld, want a nack", r);
        }
        if (r < 0) {
            break;
        }
    }
    int after = hc_daemon_fds();
    note_reply(x, "reply", r);
    hc_note(x, "daemon fds %d -> %d", before, after);
    EXPECT_OURS(x, before > 0 && after >= 0 && after < before + 4,
                "fds %d -> %d after 4 refused messages", before, after);
    for (unsigned i = 0; i < n; i++) {
        close(fds[i]);
    }
    return hc_settle_ctl(x);
}

static enum outcome mem_table_bad(struct hctx *x)
{
    struct mem_table_wire t;
    memset(&t, 0, sizeof(t));
    int mfd = memfd_of(4u << 20);
    int fds[2] = { mfd, mfd };
    long long ack;
    uint64_t r0gpa, r0size;
    void *r0host;
    vuf_mem_region(H.dev, 0, &r0gpa, &r0size, &r0host);
    switch (x->c->param) {
    case 0:     /* says 2 regions, carries 1 */
        t.nregions = 2;
        t.r[0] = (struct region_wire){ 0, 4u << 20, 0x100000000000ull, 0 };
        ack = send_ack(VHOST_USER_SET_MEM_TABLE, &t, 8 + 32, fds, 2);
        break;
    case 1:     /* two regions at the same guest address */
        t.nregions = 2;
        t.r[0] = (struct region_wire){ 0, 2u << 20, 0x100000000000ull, 0 };
        t.r[1] = (struct region_wire){ 1u << 20, 2u << 20, 0x200000000000ull, 2u << 20 };
        ack = send_ack(VHOST_USER_SET_MEM_TABLE, &t, 8 + 2 * 32, fds, 2);
        break;
    case 2:     /* no region */
        t.nregions = 0;
        ack = send_ack(VHOST_USER_SET_MEM_TABLE, &t, 8, NULL, 0);
        break;
    default:    /* nine regions */
        t.nregions = 9;
        for (unsigned i = 0; i < 9; i++) {
            t.r[i] = (struct region_wire){ (uint64_t)i << 32, 1u << 20,
                                           0x100000000000ull + ((uint64_t)i << 32), 0 };
        }
        ack = send_ack(VHOST_USER_SET_MEM_TABLE, &t, 8 + 9 * 32, NULL, 0);
        break;
    }
    close(mfd);
    return nacked(x, ack);
}

static enum outcome mem_reg_bad(struct hctx *x)
{
    struct mem_reg_wire m;
    memset(&m, 0, sizeof(m));
    int mfd = memfd_of(1u << 20);
    uint64_t r0gpa, r0size;
    void *r0host;
    vuf_mem_region(H.dev, 0, &r0gpa, &r0size, &r0host);
    uint32_t req = VHOST_USER_ADD_MEM_REG;
    switch (x->c->param) {
    case 0:     /* overlaps region 0 in guest-physical space */
        m.r = (struct region_wire){ r0gpa + 4096, 1u << 20, 0x100000000000ull, 0 };
        break;
    case 1:     /* 2^63 bytes */
        m.r = (struct region_wire){ 64ull << 30, 1ull << 63, 0x100000000000ull, 0 };
        break;
    case 2:     /* 16 MiB out of a 1 MiB fd: a SIGBUS waiting to happen */
    case 6:     /* ... and then a reply buffer in it, past the fd's end */
        m.r = (struct region_wire){ 64ull << 30, 16u << 20, 0x100000000000ull, 0 };
        break;
    case 3:     /* offset far past the end of the fd */
        m.r = (struct region_wire){ 64ull << 30, 1u << 20, 0x100000000000ull,
                                    0xfffffffffff00000ull };
        break;
    case 4:     /* wraps the guest-physical address space */
        m.r = (struct region_wire){ 0xffffffffffff0000ull, 1u << 20, 0x100000000000ull, 0 };
        break;
    case 5:     /* removing a region that was never added */
        req = VHOST_USER_REM_MEM_REG;
        m.r = (struct region_wire){ 64ull << 30, 1u << 20, 0x100000000000ull, 0 };
        break;
    }
    long long ack = send_ack(req, &m, sizeof(m), &mfd, 1);
    close(mfd);
    if (x->c->param != 6 || ack < 0) {
        return nacked(x, ack);
    }
    note_reply(x, "ack", ack);
    EXPECT_OURS(x, ack > 0, "ack %lld, want a nack", ack);
    /* A refused region is not guest memory: the ring may stop, the
     * daemon may not die of SIGBUS. */
    struct hbuf b;
    struct hres res;
    if (hb_new(&b) < 0) {
        return O_HUNG;
    }
    hb_getattr(&b);
    struct vuf_raw_desc d[] = {
        { b.g, GETATTR_IN_LEN, VNEXT, 1 },
        { m.r.gpa + (4u << 20), GETATTR_OUT_LEN, VWRITE, 0 },
    };
    return hc_raw(x, H.req, d, 2, 0, 0, 0, &res);
}

/* Ring reconfiguration aimed at a running queue: refused, queue unharmed. */
static enum outcome running_ring(struct hctx *x)
{
    long long ack;
    switch (x->c->param) {
    case 0: {   /* addresses outside guest memory */
        struct {
            uint32_t index, flags;
            uint64_t desc, used, avail, log;
        } a = { 1, 0, 0x100000000000ull, 0x100000010000ull, 0x100000020000ull, 0 };
        ack = send_ack(VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
        break;
    }
    case 1: {
        uint32_t st[2] = { 1, 100 };
        ack = send_ack(VHOST_USER_SET_VRING_NUM, st, 8, NULL, 0);
        break;
    }
    case 2: {
        uint32_t st[2] = { 1, 77 };
        ack = send_ack(VHOST_USER_SET_VRING_BASE, st, 8, NULL, 0);
        break;
    }
    default: {
        uint32_t st[2] = { 1, 5 };
        ack = send_ack(VHOST_USER_SET_VRING_ENABLE, st, 8, NULL, 0);
        break;
    }
    }
    return nacked(x, ack);
}

static enum outcome bad_flags(struct hctx *x)
{
    uint32_t flags = x->c->param == 0 ? 2u : VHOST_USER_VERSION | VHOST_USER_REPLY_MASK;
    return get_refused(x, send_get(VHOST_USER_GET_FEATURES, flags, NULL, 0, NULL, 0));
}

static enum outcome unsupported_get(struct hctx *x)
{
    uint32_t cfg[3 + 64] = { 0, 64, 0 };
    return get_refused(x, send_get(VHOST_USER_GET_CONFIG, VHOST_USER_VERSION, cfg,
                                   sizeof(cfg), NULL, 0));
}

/*
 * Rings misconfigured before the device has what they need (only features
 * negotiated): refused; then the normal start must still work.
 */
static enum outcome early_ring(struct hctx *x)
{
    int efd = eventfd(0, EFD_CLOEXEC);
    long long a1, a2;
    uint64_t v = 1;
    int ret;
    if (x->c->param == 0) {
        ret = vuf_dev_set_mem_table(H.dev);
        if (ret < 0) {
            hc_note(x, "memory table: %s", strerror(-ret));
            close(efd);
            return hc_settle(x);
        }
        /* kick with nothing configured, then with only the size */
        a1 = send_ack(VHOST_USER_SET_VRING_KICK, &v, 8, &efd, 1);
        uint32_t st[2] = { 1, vuf_vq_size(fc_chan_vq(H.req)) };
        long long n = send_ack(VHOST_USER_SET_VRING_NUM, st, 8, NULL, 0);
        EXPECT_OURS(x, n == 0, "SET_VRING_NUM ack %lld", n);
        a2 = send_ack(VHOST_USER_SET_VRING_KICK, &v, 8, &efd, 1);
    } else {
        /* ring addresses before any guest memory exists */
        uint32_t st[2] = { 1, vuf_vq_size(fc_chan_vq(H.req)) };
        a1 = send_ack(VHOST_USER_SET_VRING_NUM, st, 8, NULL, 0);
        EXPECT_OURS(x, a1 == 0, "SET_VRING_NUM ack %lld", a1);
        void *host;
        vuf_mem_region(H.dev, 0, NULL, NULL, &host);
        uint64_t base = (uint64_t)(uintptr_t)host;
        struct {
            uint32_t index, flags;
            uint64_t desc, used, avail, log;
        } a = { 1, 0, base + 0x10000, base + 0x20000, base + 0x30000, 0 };
        a2 = send_ack(VHOST_USER_SET_VRING_ADDR, &a, sizeof(a), NULL, 0);
        a1 = send_ack(VHOST_USER_SET_VRING_KICK, &v, 8, &efd, 1);
        ret = vuf_dev_set_mem_table(H.dev);
        if (ret < 0) {
            hc_note(x, "memory table: %s", strerror(-ret));
            close(efd);
            return hc_settle(x);
        }
    }
    close(efd);
    note_reply(x, "ack", a1);
    note_reply(x, "ack", a2);
    EXPECT_OURS(x, a1 > 0 && a2 > 0, "acks %lld %lld, want nacks", a1, a2);
    if (!vuf_dev_alive(H.dev)) {
        return O_DISCONNECTED;
    }
    /* now the real thing, as QEMU would do it */
    for (unsigned i = 0; i < vuf_dev_num_queues(H.dev); i++) {
        ret = vuf_dev_start_queue(H.dev, i);
        if (ret < 0) {
            hc_note(x, "start queue %u: %s", i, strerror(-ret));
            return hc_settle(x);
        }
    }
    ret = fc_init(H.req, NULL, NULL);
    if (ret < 0) {
        hc_note(x, "INIT: %s", strerror(-ret));
    }
    return hc_settle_ctl(x);
}

const struct hcase hostile_vhost_cases[] = {
    { "unknown vhost-user request with NEED_REPLY", unknown_request, 0, 0 },
    { "vhost-user header with a 256 MiB payload never sent", payload_never_sent, 0, 0 },
    { "SET_VRING_NUM with a 4-byte payload", wrong_size, 0, 0 },
    { "GET_FEATURES with an 8-byte payload", wrong_size, 0, 1 },
    { "SET_FEATURES with a 2-byte payload", wrong_size, 0, 2 },
    { "SET_VRING_ADDR with a 16-byte payload", wrong_size, 0, 3 },
    { "SET_VRING_NUM for queue 200", bad_index, 0, 0 },
    { "GET_VRING_BASE for queue 255", bad_index, 0, 1 },
    { "SET_VRING_KICK for queue 127", bad_index, 0, 2 },
    { "SET_VRING_CALL with reserved payload bits", ring_fd_payload, 0, 0 },
    { "SET_VRING_KICK without its fd", ring_fd_payload, 0, 1 },
    { "SET_VRING_CALL with an extra fd (x4)", extra_fds, 0, 0 },
    { "GET_FEATURES carrying 8 fds (x4)", extra_fds, 0, 1 },
    { "SET_LOG_BASE with an fd (unsupported, x4)", extra_fds, 0, 2 },
    { "SET_MEM_TABLE announcing more regions than sent", mem_table_bad, 0, 0 },
    { "SET_MEM_TABLE with overlapping regions", mem_table_bad, 0, 1 },
    { "SET_MEM_TABLE with no region", mem_table_bad, 0, 2 },
    { "SET_MEM_TABLE with nine regions and no fds", mem_table_bad, 0, 3 },
    { "ADD_MEM_REG overlapping region 0", mem_reg_bad, 0, 0 },
    { "ADD_MEM_REG of 2^63 bytes", mem_reg_bad, 0, 1 },
    { "ADD_MEM_REG larger than its fd", mem_reg_bad, 0, 2 },
    { "ADD_MEM_REG with an absurd mmap_offset", mem_reg_bad, 0, 3 },
    { "ADD_MEM_REG wrapping the guest address space", mem_reg_bad, 0, 4 },
    { "ADD_MEM_REG past its fd's end, then a buffer there", mem_reg_bad, 0, 6 },
    { "REM_MEM_REG of a region never added", mem_reg_bad, 0, 5 },
    { "SET_VRING_ADDR outside guest memory on a running ring", running_ring, 0, 0 },
    { "SET_VRING_NUM 100 on a running ring", running_ring, 0, 1 },
    { "SET_VRING_BASE on a running ring", running_ring, 0, 2 },
    { "SET_VRING_ENABLE with value 5", running_ring, 0, 3 },
    { "request with a bad version in its flags", bad_flags, 0, 0 },
    { "request carrying the REPLY flag", bad_flags, 0, 1 },
    { "GET_CONFIG (known, unsupported)", unsupported_get, 0, 0 },
    { "kick before the ring is configured", early_ring, HC_NEGOTIATE, 0 },
    { "ring addresses before the memory table", early_ring, HC_NEGOTIATE, 1 },
};
const unsigned hostile_vhost_ncases = sizeof(hostile_vhost_cases) / sizeof(hostile_vhost_cases[0]);
