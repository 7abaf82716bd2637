/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Seeded random vhost-user messages against a running device: the
 * companion of test_fuzz.c one layer down.  Each session starts a fresh
 * daemon with a working device (memory, rings, FUSE_INIT done), then sends
 * up to 30 well-framed messages (the declared size is always the size
 * sent; framing attacks are in the hostile suite): request codes the spec
 * knows and ones it does not, payloads of the right size for the request
 * or of the wrong one, queue indices in and out of range, ring sizes and
 * addresses at the boundaries, memory tables with 0-9 regions, overlaps,
 * absurd sizes and offsets, fds missing or of the wrong kind (eventfd,
 * memfd, /dev/null, pipe, socket), NEED_REPLY set at random.
 *
 * A quarter of the messages are followed by a kick on a random ring, so
 * the queue threads walk whatever ring state the messages left.
 *
 * After every message a GET_FEATURES must be answered (replies to the
 * random message are read and dropped first): the daemon may refuse
 * anything, but not stop reading its socket.  If it drops the connection
 * instead, it must exit by itself without a signal; every daemon exit is
 * checked for sanitizer reports in its log.  Asserted on our daemon only.
 *
 * Usage: test_frontend_fuzz_vhost [harness options] [--seed N] [--sessions N]
 *   --seed / $VUF_FUZZ_SEED          default 1
 *   --sessions / $VUF_FUZZ_SESSIONS  daemons started, default 40
 */
#include "harness.h"
#include "fuzz_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static struct harness H;

static uint64_t interesting(void)
{
    static const uint64_t v[] = {
        0, 1, 2, 3, 4, 7, 8, 64, 127, 128, 255, 256, 1024, 4095, 4096, 32768, 32769,
        65535, 65536, 0x100000, 0x7fffffffULL, 0x80000000ULL, 0xffffffffULL,
        0x100000000ULL, 0x7fffffffffffffffULL, 0x8000000000000000ULL,
        0xfffffffffffff000ULL, 0xffffffffffffffffULL,
    };
    switch (below(3)) {
    case 0:
        return v[below(sizeof(v) / sizeof(v[0]))];
    case 1:
        return below(1u << 16);
    default:
        return rnd64();
    }
}

/* A plausible address: inside guest memory (gpa or frontend pointer),
 * at a region edge, or nowhere. */
static uint64_t addr(void)
{
    uint64_t gpa, size;
    void *host;

    if (chance(50) && vuf_mem_region(H.dev, 0, &gpa, &size, &host) == 0) {
        uint64_t off = chance(50) ? below(1u << 20) & ~(uint64_t)15 : size - below(64);
        return (chance(50) ? gpa : (uint64_t)(uintptr_t)host) + off;
    }
    return interesting();
}

static unsigned nvq;    /* rings: hiprio + request queues */

static uint32_t vq_index(void)
{
    return chance(80) ? below(nvq + 1) : (uint32_t)interesting();
}

/* fds of the kinds a confused or hostile frontend could pass */
static int make_fd(void)
{
    int fd = -1, p[2];

    switch (below(6)) {
    case 0:
    case 1:
        fd = eventfd(0, EFD_CLOEXEC | (chance(50) ? EFD_NONBLOCK : 0));
        break;
    case 2:
        fd = memfd_create("fuzz", MFD_CLOEXEC);
        if (fd >= 0 && ftruncate(fd, chance(50) ? 2u << 20 : below(8192)) < 0) {
            close(fd);
            fd = -1;
        }
        break;
    case 3:
        fd = open("/dev/null", O_RDWR | O_CLOEXEC);
        break;
    case 4:
        if (pipe2(p, O_CLOEXEC) == 0) {
            fd = p[chance(50)];
            close(p[fd == p[0]]);
        }
        break;
    default:
        if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) == 0) {
            fd = p[0];
            close(p[1]);
        }
        break;
    }
    return fd;
}

struct region_wire {
    uint64_t gpa, size, uaddr, mmap_offset;
};

static void region(struct region_wire *r)
{
    uint64_t gpa, size;
    void *host;

    if (chance(60) && vuf_mem_region(H.dev, 0, &gpa, &size, &host) == 0) {
        /* near the real one: overlaps, shifted, grown */
        r->gpa = chance(50) ? gpa : gpa + (interesting() & ~0xfffULL);
        r->size = chance(50) ? size : (chance(50) ? 2u << 20 : interesting());
        r->uaddr = chance(50) ? (uint64_t)(uintptr_t)host : interesting();
        r->mmap_offset = chance(70) ? 0 : interesting();
    } else {
        r->gpa = interesting();
        r->size = interesting();
        r->uaddr = interesting();
        r->mmap_offset = interesting();
    }
}

/* Builds one message; returns its payload size (the one sent). */
static uint32_t build(uint32_t *req, uint8_t *p, int *fds, unsigned *nfds)
{
    static const uint32_t known[] = {
        1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
        22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36, 37, 38, 39, 40,
        41, 42, 43,
    };
    uint32_t right = 8;     /* payload size the request takes */
    uint64_t u;

    memset(p, 0, VUF_MSG_MAX_PAYLOAD);
    *req = chance(90) ? known[below(sizeof(known) / sizeof(known[0]))] : (uint32_t)interesting();
    *nfds = 0;
    switch (*req) {
    case VHOST_USER_SET_FEATURES:
    case VHOST_USER_SET_PROTOCOL_FEATURES:
        u = chance(50) ? vuf_dev_features(H.dev) ^ (1ULL << below(64)) : interesting();
        if (*req == VHOST_USER_SET_PROTOCOL_FEATURES && chance(50)) {
            u = vuf_dev_protocol_features(H.dev) ^ (1ULL << below(20));
        }
        memcpy(p, &u, 8);
        break;
    case VHOST_USER_SET_VRING_NUM:
    case VHOST_USER_SET_VRING_BASE:
    case VHOST_USER_GET_VRING_BASE:
    case VHOST_USER_SET_VRING_ENABLE:
    case VHOST_USER_SET_VRING_ENDIAN:
    case VHOST_USER_VRING_KICK: {
        uint32_t st[2] = { vq_index(), chance(50) ? 1u << below(16) : (uint32_t)interesting() };
        memcpy(p, st, 8);
        break;
    }
    case VHOST_USER_SET_VRING_ADDR: {
        uint32_t hd[2] = { vq_index(), chance(80) ? 0 : (uint32_t)interesting() };
        uint64_t a[4] = { addr(), addr(), addr(), chance(50) ? 0 : addr() };
        memcpy(p, hd, 8);
        memcpy(p + 8, a, 32);
        right = 40;
        break;
    }
    case VHOST_USER_SET_VRING_KICK:
    case VHOST_USER_SET_VRING_CALL:
    case VHOST_USER_SET_VRING_ERR:
        u = chance(80) ? vq_index() : interesting();
        if (chance(15)) {
            u |= 0x100;     /* "no fd" */
        }
        memcpy(p, &u, 8);
        if (chance(85)) {
            fds[(*nfds)++] = make_fd();
        }
        break;
    case VHOST_USER_SET_MEM_TABLE: {
        uint32_t n = chance(80) ? 1 + below(3) : below(10);
        memcpy(p, &n, 4);
        for (uint32_t i = 0; i < n && i < 9; i++) {
            struct region_wire r;
            region(&r);
            memcpy(p + 8 + i * sizeof(r), &r, sizeof(r));
        }
        right = 8 + (n < 9 ? n : 9) * (uint32_t)sizeof(struct region_wire);
        unsigned k = chance(70) ? n : below(5);
        for (unsigned i = 0; i < k && i < VUF_MAX_FDS; i++) {
            fds[(*nfds)++] = make_fd();
        }
        break;
    }
    case VHOST_USER_ADD_MEM_REG:
    case VHOST_USER_REM_MEM_REG: {
        struct region_wire r;
        region(&r);
        memcpy(p + 8, &r, sizeof(r));
        right = 8 + sizeof(r);
        if (chance(80)) {
            fds[(*nfds)++] = make_fd();
        }
        break;
    }
    case VHOST_USER_SET_LOG_BASE: {
        uint64_t l[2] = { interesting(), interesting() };
        memcpy(p, l, 16);
        right = 16;
        if (chance(70)) {
            fds[(*nfds)++] = make_fd();
        }
        break;
    }
    case VHOST_USER_SET_LOG_FD:
    case VHOST_USER_SET_SLAVE_REQ_FD:
        right = 0;
        if (chance(80)) {
            fds[(*nfds)++] = make_fd();
        }
        break;
    case VHOST_USER_GET_CONFIG:
    case VHOST_USER_SET_CONFIG: {
        uint32_t c[3] = { (uint32_t)(chance(50) ? below(64) : interesting()),
                          (uint32_t)(chance(50) ? below(256) : interesting()),
                          (uint32_t)below(2) };
        memcpy(p, c, 12);
        right = 12 + (c[1] < 256 ? c[1] : 256);
        break;
    }
    case VHOST_USER_GET_INFLIGHT_FD:
    case VHOST_USER_SET_INFLIGHT_FD: {
        uint64_t i2[2] = { interesting(), interesting() };
        uint16_t q[2] = { (uint16_t)interesting(), (uint16_t)interesting() };
        memcpy(p, i2, 16);
        memcpy(p + 16, q, 4);
        right = 20;
        if (*req == VHOST_USER_SET_INFLIGHT_FD && chance(70)) {
            fds[(*nfds)++] = make_fd();
        }
        break;
    }
    case VHOST_USER_IOTLB_MSG:
        right = 40;
        for (unsigned i = 0; i < right; i += 8) {
            u = interesting();
            memcpy(p + i, &u, 8);
        }
        break;
    case VHOST_USER_GET_FEATURES:
    case VHOST_USER_GET_PROTOCOL_FEATURES:
    case VHOST_USER_GET_QUEUE_NUM:
    case VHOST_USER_GET_MAX_MEM_SLOTS:
    case VHOST_USER_GET_STATUS:
    case VHOST_USER_SET_OWNER:
    case VHOST_USER_RESET_OWNER:
    case VHOST_USER_RESET_DEVICE:
        right = chance(50) ? 0 : 8;
        break;
    default:
        u = interesting();
        memcpy(p, &u, 8);
        break;
    }
    /* stray fds on anything */
    if (chance(5) && *nfds < VUF_MAX_FDS) {
        fds[(*nfds)++] = make_fd();
    }
    /* drop the ones that could not be made */
    unsigned k = 0;
    for (unsigned i = 0; i < *nfds; i++) {
        if (fds[i] >= 0) {
            fds[k++] = fds[i];
        }
    }
    *nfds = k;
    if (chance(70)) {
        return right;
    }
    switch (below(5)) {
    case 0:
        return 0;
    case 1:
        return right ? right - 1 : 1;
    case 2:
        return right + 1 + below(8);
    case 3:
        return below(64);
    default:
        return below(VUF_MSG_MAX_PAYLOAD + 1);
    }
}

/* GET_FEATURES must be answered; replies to earlier messages are skipped.
 * 1 answered, 0 the daemon closed the connection, -1 no answer in time. */
static int probe(void)
{
    int ret = vuf_msg_send(H.dev, VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, NULL, 0,
                           NULL, 0);
    if (ret == -EPIPE || ret == -ECONNRESET) {
        return 0;
    }
    for (;;) {
        struct vuf_msg m;
        ret = vuf_msg_recv(H.dev, &m, 5000);
        if (ret == -ECONNRESET || ret == -EPIPE) {
            return 0;
        }
        if (ret < 0) {
            return ret == -EPROTO ? 0 : -1;
        }
        for (unsigned i = 0; i < m.nfds; i++) {
            close(m.fds[i]);
        }
        if (m.request == VHOST_USER_GET_FEATURES && (m.flags & VHOST_USER_REPLY_MASK) &&
            m.size == 8) {
            return 1;
        }
    }
}

int main(int argc, char **argv)
{
    unsigned long seed = fz_opt(argc, argv, "--seed", "VUF_FUZZ_SEED", 1);
    unsigned long sessions = fz_opt(argc, argv, "--sessions", "VUF_FUZZ_SESSIONS", 40);
    struct vuf_opts vo = { .queue_size = 128, .event_idx = true, .indirect_desc = true };
    unsigned sent[64] = { 0 }, answered = 0, dropped = 0, total = 0;

    fz_seed(seed, 7);
    fprintf(stderr, "fuzz-vhost: seed %lu, %lu sessions\n", seed, sessions);
    for (unsigned long s = 0; s < sessions && !t_failures; s++) {
        int rc = harness_start(&H, argc, argv, &vo);
        if (rc != T_PASS) {
            return rc;
        }
        if (H.upstream) {
            fprintf(stderr, "fuzz-vhost: our daemon only\n");
            harness_stop(&H);
            return T_SKIP;
        }
        H.allow_exit_failure = true;
        nvq = vuf_dev_num_queues(H.dev);
        unsigned nmsg = 1 + below(30);
        bool gone = false;
        for (unsigned i = 0; i < nmsg && !gone; i++) {
            static uint8_t payload[VUF_MSG_MAX_PAYLOAD];
            int fds[VUF_MAX_FDS];
            unsigned nfds;
            uint32_t req;
            uint32_t size = build(&req, payload, fds, &nfds);
            uint32_t flags = VHOST_USER_VERSION;

            if (chance(40)) {
                flags |= VHOST_USER_NEED_REPLY_MASK;
            }
            if (chance(3)) {
                flags = (uint32_t)interesting();
            }
            int ret = vuf_msg_send(H.dev, req, flags, payload, size, fds, nfds);
            for (unsigned k = 0; k < nfds; k++) {
                close(fds[k]);
            }
            sent[req < 64 ? req : 0]++;
            total++;
            if (ret >= 0 && chance(25)) {
                /* the queue thread looks at whatever the ring is now */
                vuf_vq_kick_force(vuf_dev_vq(H.dev, below(nvq)));
            }
            int p = ret < 0 ? 0 : probe();
            if (p < 0) {
                fprintf(stderr, "FAIL session %lu message %u: request %u flags 0x%x size %u "
                        "fds %u: GET_FEATURES not answered in 5 s\n", s, i, req, flags, size,
                        nfds);
                t_failures++;
                gone = true;
            } else if (p == 0) {
                dropped++;
                gone = true;
                fprintf(stderr, "session %lu: request %u flags 0x%x size %u fds %u: "
                        "connection closed\n", s, req, flags, size, nfds);
            } else {
                answered++;
            }
        }
        /* the daemon must end by itself, without a signal or a report */
        fc_free(H.c);
        H.c = NULL;
        vuf_dev_free(H.dev);
        H.dev = NULL;
        int st = 0;
        int w = vuf_daemon_wait(H.dmn, 10000, &st);
        if (w != 1) {
            fprintf(stderr, "FAIL session %lu: daemon still running 10 s after the "
                    "frontend left\n", s);
            t_failures++;
        } else if (!WIFEXITED(st)) {
            fprintf(stderr, "FAIL session %lu: daemon killed by signal %d\n", s,
                    WIFSIGNALED(st) ? WTERMSIG(st) : -1);
            t_failures++;
        }
        if (harness_log_has_sanitizer_report(&H)) {
            fprintf(stderr, "FAIL session %lu: sanitizer report in the daemon log\n", s);
            t_failures++;
        }
        harness_stop(&H);   /* dumps the log after a failure */
    }
    fprintf(stderr, "fuzz-vhost: %u messages, %u followed by an answered GET_FEATURES, "
            "%u connections closed by the daemon\n", total, answered, dropped);
    fprintf(stderr, "per request code (0 = codes >= 64):");
    for (unsigned i = 0; i < 64; i++) {
        if (sent[i]) {
            fprintf(stderr, " %u:%u", i, sent[i]);
        }
    }
    fprintf(stderr, "\n");
    return t_failures ? T_FAIL : T_PASS;
}
