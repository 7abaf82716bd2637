/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * fuse_client: the guest virtiofs driver's FUSE side, on top of vufront.
 *
 * Requests are laid out like Linux's virtio_fs driver does it:
 *   readable:  [fuse_in_header] [in args, concatenated] [data segments...]
 *   writable:  [fuse_out_header] [out args] [data segments...]
 * (FORGET / BATCH_FORGET on the hiprio queue have no writable part.)
 *
 * A channel (fc_chan) is one virtqueue: queue 0 is hiprio, 1.. are request
 * queues.  One thread per channel at a time; channels are independent.
 * Every completion is checked: the used id must be an in-flight head, the
 * reply's unique must match the request, and the used length must equal
 * fuse_out_header.len (violations are counted in fc_stats).
 *
 * Sync helpers return 0 / a byte count, or -errno (the daemon's error or a
 * local one such as -ETIMEDOUT / -EPROTO).
 */
#ifndef FUSE_CLIENT_H
#define FUSE_CLIENT_H

#include <linux/fuse.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "vufront.h"

typedef struct fc fc;
typedef struct fc_chan fc_chan;
typedef struct fc_req fc_req;

struct fc_call {
    uint32_t opcode;
    uint64_t nodeid;
    /* in args, concatenated into one segment after the header */
    const void *arg;  uint32_t arg_len;
    const void *arg2; uint32_t arg2_len;
    const void *arg3; uint32_t arg3_len;
    /* payload already in guest memory, readable (WRITE data) */
    const struct vuf_seg *data_rd; unsigned n_data_rd;
    /* reply: out_len bytes reserved after fuse_out_header, plus writable
     * guest-memory segments (READ data) */
    uint32_t out_len;
    const struct vuf_seg *data_wr; unsigned n_data_wr;
    bool no_reply;      /* FORGET-like: no writable part; used len must be 0 */
    bool indirect;      /* one indirect descriptor (needs the feature) */
    bool one_segment;   /* header+args in one descriptor, out header+args in one */
    bool no_kick;       /* batch several submits, then fc_chan_kick() */
    uint32_t len_override; /* nonzero: put this in fuse_in_header.len */
    uint32_t uid, gid, pid;
    void *user;
};

struct fc_req {
    uint64_t unique;
    uint32_t opcode;
    fc_chan *ch;
    void *user;
    /* guest buffer holding the in header+args and the out header+args */
    uint64_t buf_gpa;
    size_t buf_size;
    struct fuse_in_header *inh;
    struct fuse_out_header *outh;
    void *out;              /* out args (guest memory), out_cap bytes */
    uint32_t out_cap;
    uint32_t wr_total;      /* bytes of writable descriptors */
    /* results */
    bool done;
    bool no_reply;
    bool raw;
    bool sync;              /* a waiter owns it: not put on the done list */
    bool abandoned;         /* waiter timed out: freed on completion */
    int head;
    uint32_t used_len;
    int32_t error;          /* reply error (<= 0), or local -EPROTO on a bad reply */
    uint32_t reply_len;     /* fuse_out_header.len */
    uint64_t t_submit, t_done;  /* ns, CLOCK_MONOTONIC */
    fc_req *next;
};

struct fc_stats {
    uint64_t submitted;
    uint64_t completed;
    uint64_t unique_mismatch;
    uint64_t len_mismatch;     /* used len != out header len (or != 0 without reply) */
    uint64_t short_reply;      /* used len < fuse_out_header */
    uint64_t bogus_used;       /* used id not in flight: double or invented completion */
    uint64_t bad_error;        /* error > 0 or < -4095 */
    uint64_t timeouts;
};

int fc_new(vuf_dev *d, fc **out);
void fc_free(fc *c);
fc_chan *fc_chan_get(fc *c, unsigned queue);
vuf_dev *fc_dev(fc *c);
vuf_vq *fc_chan_vq(fc_chan *ch);
/* Sums of every channel (racy while channels are busy; fine after). */
void fc_get_stats(fc *c, struct fc_stats *s);
/* Counters for one channel. */
void fc_chan_stats(fc_chan *ch, struct fc_stats *s);
unsigned fc_chan_inflight(fc_chan *ch);

struct fc_init_opts {
    uint32_t major;          /* 0: 7 */
    uint32_t minor;          /* 0: FUSE_KERNEL_MINOR_VERSION */
    uint32_t max_readahead;  /* 0: 128 KiB */
    uint32_t flags;          /* 0: FC_DEFAULT_INIT_FLAGS */
    uint32_t flags2;
    uint32_t max_write;      /* client-side cap on WRITE size; 0: what the daemon says */
};
#define FC_DEFAULT_INIT_FLAGS                                                  \
    (FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_EXPORT_SUPPORT |              \
     FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS | FUSE_READDIRPLUS_AUTO |           \
     FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES | FUSE_INIT_EXT)

int fc_init(fc_chan *ch, const struct fc_init_opts *o, struct fuse_init_out *out);
uint32_t fc_max_write(fc *c);   /* negotiated, after fc_init */
uint32_t fc_next_unique(fc *c); /* low bits of the next unique (for raw tests) */
uint64_t fc_alloc_unique(fc *c);

/* ---- async ---- */
int fc_submit(fc_chan *ch, const struct fc_call *call, fc_req **out);
/* Descriptors exactly as given (see vuf_vq_add_raw); completion only
 * records used_len.  expect_unique != 0: check the reply header at
 * out_gpa (used len vs header len too). */
int fc_submit_raw(fc_chan *ch, const struct vuf_raw_desc *d, unsigned n, unsigned flags,
                  uint64_t expect_unique, uint64_t out_gpa, fc_req **out);
int fc_chan_kick(fc_chan *ch);
/* Drain the used ring without sleeping; returns completions processed. */
int fc_chan_reap(fc_chan *ch);
/* Completed requests (not owned by a sync waiter), up to max; waits up to
 * timeout_ms if none is ready.  Returns the count, or -ECONNRESET when the
 * daemon went away. */
int fc_chan_poll(fc_chan *ch, int timeout_ms, fc_req **out, unsigned max);
/* Wait for one request; -ETIMEDOUT leaves it abandoned (freed on completion). */
int fc_wait(fc_req *r, int timeout_ms);
void fc_req_free(fc_req *r);
/* Reply payload after fuse_out_header that landed in the out-args area. */
uint32_t fc_req_out_len(const fc_req *r);

/* ---- sync helpers ---- */
int fc_call_sync(fc_chan *ch, const struct fc_call *call, void *out, uint32_t out_size,
                 uint32_t *out_len);
int fc_generic(fc_chan *ch, uint32_t opcode, uint64_t nodeid, const void *arg,
               uint32_t arg_len, void *out, uint32_t out_size, uint32_t *out_len);
int fc_lookup(fc_chan *ch, uint64_t parent, const char *name, struct fuse_entry_out *e);
int fc_getattr(fc_chan *ch, uint64_t nodeid, struct fuse_attr_out *a);
int fc_setattr(fc_chan *ch, uint64_t nodeid, const struct fuse_setattr_in *in,
               struct fuse_attr_out *a);
int fc_open(fc_chan *ch, uint64_t nodeid, uint32_t flags, struct fuse_open_out *o);
int fc_opendir(fc_chan *ch, uint64_t nodeid, struct fuse_open_out *o);
int fc_create(fc_chan *ch, uint64_t parent, const char *name, uint32_t flags,
              uint32_t mode, struct fuse_entry_out *e, struct fuse_open_out *o);
ssize_t fc_read(fc_chan *ch, uint64_t nodeid, uint64_t fh, uint64_t off, void *buf,
                uint32_t size);
ssize_t fc_write(fc_chan *ch, uint64_t nodeid, uint64_t fh, uint64_t off,
                 const void *buf, uint32_t size);
int fc_release(fc_chan *ch, uint64_t nodeid, uint64_t fh, uint32_t flags);
int fc_releasedir(fc_chan *ch, uint64_t nodeid, uint64_t fh);
int fc_flush(fc_chan *ch, uint64_t nodeid, uint64_t fh);
int fc_fsync(fc_chan *ch, uint64_t nodeid, uint64_t fh, bool datasync);
int fc_mkdir(fc_chan *ch, uint64_t parent, const char *name, uint32_t mode,
             struct fuse_entry_out *e);
int fc_unlink(fc_chan *ch, uint64_t parent, const char *name);
int fc_rmdir(fc_chan *ch, uint64_t parent, const char *name);
int fc_rename(fc_chan *ch, uint64_t olddir, const char *oldname, uint64_t newdir,
              const char *newname);
ssize_t fc_readdirplus(fc_chan *ch, uint64_t nodeid, uint64_t fh, uint64_t off,
                       void *buf, uint32_t size);
ssize_t fc_readdir(fc_chan *ch, uint64_t nodeid, uint64_t fh, uint64_t off,
                   void *buf, uint32_t size);
int fc_statfs(fc_chan *ch, uint64_t nodeid, struct fuse_statfs_out *s);
/* On the hiprio channel, like the guest; waits for the used-ring return. */
int fc_forget(fc_chan *ch, uint64_t nodeid, uint64_t nlookup);
int fc_batch_forget(fc_chan *ch, const struct fuse_forget_one *f, unsigned n);

/* Walk a READDIR(PLUS) reply buffer. */
struct fc_dirent {
    uint64_t ino;
    uint64_t off;
    uint32_t type;
    uint32_t namelen;
    const char *name;                   /* not NUL-terminated */
    const struct fuse_entry_out *entry; /* READDIRPLUS only, else NULL */
};
/* 1: *e filled; 0: end; -EPROTO: malformed entry. */
int fc_dirent_next(const void *buf, size_t len, size_t *pos, bool plus, struct fc_dirent *e);

#endif
