/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Hostile-input suite: shared runner interface (test_hostile.c) for the
 * case files test_hostile_ring.c, test_hostile_fuse.c, test_hostile_vhost.c.
 *
 * Every case runs on a fresh daemon.  A case sends its malformed input,
 * then the runner proves the device still serves: a well-formed GETATTR on
 * request queue 1, or -- if only that queue stopped (virtio lets a device
 * stop using a ring the driver corrupted) -- on request queue 2.
 */
#ifndef TEST_HOSTILE_H
#define TEST_HOSTILE_H

#include "harness.h"

#include <linux/fuse.h>
#include <linux/virtio_ring.h>

enum outcome {
    O_REPLIED,          /* queue 1 still serves */
    O_QUEUE_BROKEN,     /* queue 1 stopped, queue 2 serves */
    O_DISCONNECTED,     /* the daemon dropped the connection (upstream only) */
    O_PROBE_ERROR,      /* alive, but a well-formed request got an error */
    O_HUNG,             /* connected and serving nothing */
};

/* Case flags: how the runner prepares the device and judges the result. */
#define HC_NO_INIT      (1u << 0)  /* FUSE_INIT is not sent */
#define HC_NO_INDIRECT  (1u << 1)  /* INDIRECT_DESC not negotiated */
#define HC_PROBE_INIT   (1u << 2)  /* the session may be gone: probe sends INIT first */
#define HC_NEGOTIATE    (1u << 3)  /* only features are negotiated: no memory, no rings */
#define HC_POSIX_LOCK   (1u << 4)  /* daemon started with -o posix_lock */

struct hctx;

struct hcase {
    const char *name;
    enum outcome (*run)(struct hctx *x);
    unsigned flags;
    long param;         /* per-case argument (an opcode, a variant) */
};

struct hctx {
    const struct hcase *c;
    char detail[200];
    int failures;       /* expectations that failed */
};

/* The device under test (harness state) and the wait for one step. */
extern struct harness H;
extern int T_MS;

/* Case tables of the three files. */
extern const struct hcase hostile_ring_cases[];
extern const unsigned hostile_ring_ncases;
extern const struct hcase hostile_fuse_cases[];
extern const unsigned hostile_fuse_ncases;
extern const struct hcase hostile_vhost_cases[];
extern const unsigned hostile_vhost_ncases;

static inline bool ours(void)
{
    return !H.upstream;
}

void hc_fail(struct hctx *x, int line, const char *cond, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void hc_note(struct hctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* An expectation on our daemon only: upstream is the reference peer, its
 * answers are printed, not judged. */
#define EXPECT_OURS(x, cond, ...)                                            \
    do {                                                                     \
        if (ours() && !(cond)) {                                             \
            hc_fail((x), __LINE__, #cond, __VA_ARGS__);                      \
        }                                                                    \
    } while (0)
/* An expectation on every daemon (escapes from the share). */
#define EXPECT_ALL(x, cond, ...)                                             \
    do {                                                                     \
        if (!(cond)) {                                                       \
            hc_fail((x), __LINE__, #cond, __VA_ARGS__);                      \
        }                                                                    \
    } while (0)

/*
 * A guest buffer for hand-built chains: the request at +0, the reply area
 * at +HB_OUT.
 */
#define HB_SIZE 8192u
#define HB_OUT 4096u
struct hbuf {
    uint64_t g;         /* guest-physical address */
    uint8_t *p;         /* frontend pointer */
    uint64_t unique;
};
int hb_new(struct hbuf *b);
/* fuse_in_header (len = 40 + arg_len) + args at +0; returns the in length. */
uint32_t hb_req(struct hbuf *b, uint32_t opcode, uint64_t nodeid, const void *arg,
                uint32_t arg_len);
/* GETATTR(root): 56 bytes; the full reply is 16 + 104 bytes. */
#define GETATTR_IN_LEN (uint32_t)(sizeof(struct fuse_in_header) + sizeof(struct fuse_getattr_in))
#define GETATTR_OUT_LEN (uint32_t)(sizeof(struct fuse_out_header) + sizeof(struct fuse_attr_out))
uint32_t hb_getattr(struct hbuf *b);

/* What became of a hostile request. */
struct hres {
    int wait;           /* 0 completed, -ETIMEDOUT, -ECONNRESET, or a submit error */
    uint32_t used_len;
    bool have_hdr;      /* used_len >= 16: oh is the reply header */
    struct fuse_out_header oh;
};

/*
 * Submit the hostile chain on @ch, a well-formed GETATTR behind it on
 * queue 1, wait for both (T_MS), judge.  @out_gpa: where a reply header
 * would land (0: none); @expect_unique: checked by fuse_client when non-zero.
 */
enum outcome hc_raw(struct hctx *x, fc_chan *ch, const struct vuf_raw_desc *d, unsigned n,
                    unsigned flags, uint64_t expect_unique, uint64_t out_gpa,
                    struct hres *res);
/* The same for a request laid out by fuse_client; @out receives the reply
 * payload (up to @out_size bytes). */
enum outcome hc_call(struct hctx *x, fc_chan *ch, const struct fc_call *call,
                     struct hres *res, void *out, uint32_t out_size);
/* Judge after a step that was not a chain (a vhost-user message...). */
enum outcome hc_settle(struct hctx *x);
/* hc_settle, after checking that the control socket still answers
 * GET_FEATURES (our daemon must; upstream is only reported). */
enum outcome hc_settle_ctl(struct hctx *x);

/* Sync request on queue 1 with the step timeout (setup inside a case). */
int hc_sync(uint32_t opcode, uint64_t nodeid, const void *arg, uint32_t arg_len,
            const void *arg2, uint32_t arg2_len, void *out, uint32_t out_size);

/* Host-side helpers. */
const char *hc_marker_path(void);       /* H.dir/marker, outside the share */
const char *hc_outside_dir(void);       /* H.dir/outside, outside the share */
extern const char hc_marker_text[];
int hc_share_entries(void);             /* entries in the share (not . ..) */
/* fds of the daemon's serving process (-1 if unknown). */
int hc_daemon_fds(void);

/* Short aliases used throughout. */
#define ROOT FUSE_ROOT_ID
#define VNEXT VRING_DESC_F_NEXT
#define VWRITE VRING_DESC_F_WRITE
#define VINDIRECT VRING_DESC_F_INDIRECT

#endif
