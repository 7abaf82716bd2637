/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Malformed guest input never hangs the device: for each hostile chain or
 * vhost-user message (on a fresh daemon), within the timeout the daemon
 * either answers (and then still serves a GETATTR) or drops the connection.
 * A daemon that keeps the connection but stops serving fails.  What each
 * case led to is printed (replied / error reply / disconnected).
 */
#include "harness.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <linux/virtio_ring.h>

#define TIMEOUT_MS 5000

static struct harness H;

enum outcome { O_REPLIED, O_DISCONNECTED, O_QUEUE_BROKEN, O_HUNG };
static const char *const outcome_names[] = { "replied", "disconnected",
                                             "queue broken, other queue serving",
                                             "HUNG" };

/* GETATTR(root) header at g, out area at g+256. */
static uint64_t getattr_buf(uint64_t unique, uint32_t len)
{
    uint64_t g = vuf_mem_alloc(H.dev, 512);
    uint8_t *b = vuf_mem_ptr(H.dev, g, 512);
    memset(b, 0, 512);
    struct fuse_in_header ih = { .len = len, .opcode = FUSE_GETATTR, .unique = unique,
                                 .nodeid = FUSE_ROOT_ID };
    memcpy(b, &ih, sizeof(ih));
    return g;
}

/* Served: the daemon still answers a normal request. */
static enum outcome still_serving(void)
{
    struct fuse_attr_out ao;
    int ret = fc_getattr(H.req, FUSE_ROOT_ID, &ao);
    if (ret == 0) {
        return O_REPLIED;
    }
    if (!vuf_dev_alive(H.dev)) {
        return O_DISCONNECTED;
    }
    /* A daemon may mark only the abused queue broken (virtio lets a device
     * stop using a queue the driver corrupted): then another request queue
     * must still be served. */
    if (H.queues >= 2) {
        fc_chan *other = fc_chan_get(H.c, 2);
        if (other && fc_getattr(other, FUSE_ROOT_ID, &ao) == 0) {
            return O_QUEUE_BROKEN;
        }
    }
    return O_HUNG;
}

static enum outcome wait_raw(const struct vuf_raw_desc *d, unsigned n, char *detail,
                             size_t dn)
{
    fc_req *r;
    int ret = fc_submit_raw(H.req, d, n, 0, 0, 0, &r);
    if (ret < 0) {
        snprintf(detail, dn, "submit: %s", strerror(-ret));
        return O_HUNG;
    }
    ret = fc_wait(r, TIMEOUT_MS);
    if (ret == -ECONNRESET || !vuf_dev_alive(H.dev)) {
        return O_DISCONNECTED;
    }
    if (ret == -ETIMEDOUT) {
        snprintf(detail, dn, "no completion in %d ms", TIMEOUT_MS);
        /* Still serving other requests is acceptable: a dropped chain
         * is not a hang of the device (the slot is leaked, not the queue). */
        return still_serving();
    }
    snprintf(detail, dn, "used len %u", r->used_len);
    fc_req_free(r);
    return still_serving();
}

/* Descriptor "next" fields are indices into the case's own array (the
 * library maps them to the table slots it picked) unless a case says
 * otherwise. */
static enum outcome run_case(int k, char *detail, size_t dn)
{
    uint64_t u = fc_alloc_unique(H.c);
    uint64_t g = getattr_buf(u, 56);
    switch (k) {
    case 0: { /* writable descriptor outside guest memory */
        struct vuf_raw_desc d[] = { { g, 56, VRING_DESC_F_NEXT, 1 },
                                    { 0x7000000000ull, 120, VRING_DESC_F_WRITE, 0 } };
        fc_req *r;
        if (fc_submit_raw(H.req, d, 2, 0, 0, 0, &r) < 0) {
            return O_HUNG;
        }
        int ret = fc_wait(r, TIMEOUT_MS);
        if (ret == -ECONNRESET || !vuf_dev_alive(H.dev)) {
            return O_DISCONNECTED;
        }
        snprintf(detail, dn, "wait %d used len %u", ret, r->used_len);
        if (ret == 0) {
            fc_req_free(r);
        }
        return still_serving();
    }
    case 1: { /* looped chain: second descriptor points back at the first */
        struct vuf_raw_desc d[] = { { g, 56, VRING_DESC_F_NEXT, 1 },
                                    { g + 256, 120, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 0 } };
        fc_req *r;
        if (fc_submit_raw(H.req, d, 2, 0, 0, 0, &r) < 0) {
            return O_HUNG;
        }
        int ret = fc_wait(r, TIMEOUT_MS);
        if (ret == -ECONNRESET || !vuf_dev_alive(H.dev)) {
            return O_DISCONNECTED;
        }
        snprintf(detail, dn, "wait %d", ret);
        if (ret == 0) {
            fc_req_free(r);
        }
        return still_serving();
    }
    case 2: { /* next index beyond the ring (60000 >= 1: written verbatim) */
        struct vuf_raw_desc d[] = { { g, 56, VRING_DESC_F_NEXT, 60000 } };
        return wait_raw(d, 1, detail, dn);
    }
    case 3: { /* in_header.len larger than the chain */
        struct fuse_in_header *ih = vuf_mem_ptr(H.dev, g, 40);
        ih->len = 1 << 20;
        struct vuf_raw_desc d[] = { { g, 56, VRING_DESC_F_NEXT, 1 },
                                    { g + 256, 120, VRING_DESC_F_WRITE, 0 } };
        fc_req *r;
        if (fc_submit_raw(H.req, d, 2, 0, u, g + 256, &r) < 0) {
            return O_HUNG;
        }
        int ret = fc_wait(r, TIMEOUT_MS);
        if (ret == -ECONNRESET || !vuf_dev_alive(H.dev)) {
            return O_DISCONNECTED;
        }
        snprintf(detail, dn, "wait %d, reply error %d", ret, r->error);
        if (ret == 0) {
            fc_req_free(r);
        }
        return still_serving();
    }
    case 4: { /* readable part shorter than fuse_in_header */
        struct vuf_raw_desc d[] = { { g, 20, VRING_DESC_F_NEXT, 1 },
                                    { g + 256, 120, VRING_DESC_F_WRITE, 0 } };
        return wait_raw(d, 2, detail, dn);
    }
    case 5: { /* only writable descriptors */
        struct vuf_raw_desc d[] = { { g + 256, 120, VRING_DESC_F_WRITE, 0 } };
        return wait_raw(d, 1, detail, dn);
    }
    case 6: { /* indirect table whose length is not a multiple of 16 */
        uint64_t tg = vuf_mem_alloc(H.dev, 64);
        struct vring_desc *t = vuf_mem_ptr(H.dev, tg, 64);
        t[0] = (struct vring_desc){ g, 56, VRING_DESC_F_NEXT, 1 };
        t[1] = (struct vring_desc){ g + 256, 120, VRING_DESC_F_WRITE, 0 };
        struct vuf_raw_desc d[] = { { tg, 20, VRING_DESC_F_INDIRECT, 0 } };
        return wait_raw(d, 1, detail, dn);
    }
    case 7: { /* descriptor length 0xffffffff */
        struct vuf_raw_desc d[] = { { g, 56, VRING_DESC_F_NEXT, 1 },
                                    { g + 256, 0xffffffffu, VRING_DESC_F_WRITE, 0 } };
        fc_req *r;
        if (fc_submit_raw(H.req, d, 2, 0, 0, 0, &r) < 0) {
            return O_HUNG;
        }
        int ret = fc_wait(r, TIMEOUT_MS);
        if (ret == -ECONNRESET || !vuf_dev_alive(H.dev)) {
            return O_DISCONNECTED;
        }
        snprintf(detail, dn, "wait %d", ret);
        if (ret == 0) {
            fc_req_free(r);
        }
        return still_serving();
    }
    case 8: { /* avail ring entry naming a head beyond the ring */
        vuf_vq_publish_raw_head(vuf_dev_vq(H.dev, 1), 40000);
        vuf_vq_kick_force(vuf_dev_vq(H.dev, 1));
        struct pollfd p = { .fd = vuf_dev_sock(H.dev), .events = POLLRDHUP };
        poll(&p, 1, 500);
        if (!vuf_dev_alive(H.dev)) {
            return O_DISCONNECTED;
        }
        return still_serving();
    }
    case 9: { /* unknown vhost-user request with NEED_REPLY */
        struct vuf_msg m;
        vuf_msg_send(H.dev, 999, VHOST_USER_VERSION | VHOST_USER_NEED_REPLY_MASK, NULL, 0,
                     NULL, 0);
        int ret = vuf_msg_recv(H.dev, &m, TIMEOUT_MS);
        if (ret == -ECONNRESET || !vuf_dev_alive(H.dev)) {
            return O_DISCONNECTED;
        }
        snprintf(detail, dn, "recv %d", ret);
        return ret == 0 ? still_serving() : O_HUNG;
    }
    case 10: { /* vhost-user header announcing a payload it never sends */
        uint32_t hdr[3] = { VHOST_USER_GET_FEATURES, VHOST_USER_VERSION, 0x10000000 };
        vuf_send_bytes(H.dev, hdr, sizeof(hdr), NULL, 0);
        struct vuf_msg m;
        int ret = vuf_msg_recv(H.dev, &m, 1000);
        if (ret == -ECONNRESET || !vuf_dev_alive(H.dev)) {
            return O_DISCONNECTED;
        }
        snprintf(detail, dn, "recv %d", ret);
        /* The daemon may be waiting for the rest of the payload: that is
         * not a hang of the data path. */
        return still_serving();
    }
    case 11: { /* FORGET of more lookups than the inode has */
        int ret = fc_forget(H.hiprio, FUSE_ROOT_ID, 1000);
        if (ret == -ECONNRESET || !vuf_dev_alive(H.dev)) {
            return O_DISCONNECTED;
        }
        snprintf(detail, dn, "forget %d", ret);
        return still_serving();
    }
    }
    return O_HUNG;
}

static const char *const case_names[] = {
    "descriptor outside guest memory",
    "looped descriptor chain",
    "next index beyond the ring",
    "in_header.len larger than the chain",
    "readable part shorter than fuse_in_header",
    "chain without readable descriptors",
    "indirect table length not a multiple of 16",
    "descriptor length 0xffffffff",
    "avail entry with head beyond the ring",
    "unknown vhost-user request with NEED_REPLY",
    "vhost-user header with a 256 MiB payload size",
    "FORGET of more lookups than the inode has",
};
#define NCASES (int)(sizeof(case_names) / sizeof(case_names[0]))

int main(int argc, char **argv)
{
    int failed = 0;
    for (int k = 0; k < NCASES; k++) {
        struct vuf_opts o = { .indirect_desc = true, .event_idx = true, .timeout_ms = TIMEOUT_MS };
        int rc = harness_start(&H, argc, argv, &o);
        if (rc == T_SKIP) {
            return T_SKIP;
        }
        if (rc != T_PASS) {
            return T_FAIL;
        }
        H.allow_exit_failure = true;
        char detail[128] = "";
        enum outcome out = run_case(k, detail, sizeof(detail));
        printf("%-48s %-13s %s\n", case_names[k], outcome_names[out], detail);
        if (out == O_HUNG) {
            failed++;
        }
        /* the daemon's exit status after a hostile case is not judged */
        int t0 = t_failures;
        harness_stop(&H);
        t_failures = t0;
    }
    return failed ? T_FAIL : T_PASS;
}
