/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * virtio-fs device layer: FUSE over virtqueues.
 *
 * Owns the vhost-user device (vhost_user.h), one queue thread per started
 * ring, the per-request record, the execution modes (dispatch.h) and the
 * libfuse3 session, attached with fuse_session_custom_io(): replies come
 * back through the custom writev callback on the thread that ran the
 * request, which finds its chain through a thread-local "current request".
 *
 * Request path (DESIGN.md):
 *   queue thread: vq_pop -> fv_req (t_pop) -> validate -> dispatch
 *   runner (queue thread inline | pool worker | side pool):
 *       t_start -> fuse_session_process_buf -> writev cb (t_reply)
 *       -> used-ring push + notify (t_done) -> fv_req_finish()
 *   Inline replies made on the queue thread are pushed at once but notified
 *   once per batch (fv_batch_flush): t_done is the batch's notification.
 */
#ifndef VFS_FUSE_VIRTIO_H
#define VFS_FUSE_VIRTIO_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#define FUSE_USE_VERSION 34
#include <fuse_lowlevel.h>

#include "pool_sched.h"

/* Where a request ran. Stats (a later issue) are keyed by this. */
enum fv_mode {
    FV_MODE_INLINE = 0, /* on the queue thread */
    FV_MODE_POOL = 1,   /* on the queue's thread pool */
    FV_MODE_SIDE = 2,   /* blocking op on the side pool (SETLKW) */
    FV_MODE_COUNT,
    /*
     * A queue's policy, never where a request ran: the queue thread picks
     * inline or pool for each request it pops (dispatch.h, "auto").
     */
    FV_MODE_AUTO = FV_MODE_COUNT
};

struct fv_queue;

/* One request from pop to push. */
struct fv_req {
    struct fv_queue *q;
    uint16_t head;           /* chain head, returned in the used ring */
    uint8_t mode;            /* enum fv_mode it ran in */
    bool replied;            /* writev callback ran */
    bool auto_sample;        /* auto ran it inline: its time feeds the average */
    uint32_t opcode;
    uint64_t unique;
    uint64_t nodeid;
    /* CLOCK_MONOTONIC ns: popped, started, reply written, pushed+notified */
    uint64_t t_pop, t_start, t_reply, t_done;
    uint32_t in_len;         /* readable bytes of the request */
    /*
     * Bytes of in_buf filled from the chain: in_len, except for a WRITE
     * whose data was left in guest memory (rd_iov) for fv_write_data();
     * in_buf has room for all in_len bytes either way.
     */
    uint32_t in_copied;
    unsigned int rd_num;     /* rd_iov entries (0 unless data left behind) */
    struct iovec *rd_iov;    /* the chain's readable buffers, in the record */
    uint32_t out_len;        /* bytes written into the writable buffers */
    int32_t error;           /* fuse_out_header.error of the reply */
    void *in_buf;            /* contiguous copy of the readable part */
    /* device-layer bookkeeping */
    uint64_t mem_gen;        /* vu_dev.mem_generation when popped */
    unsigned int vflags;     /* FV_VALIDATE_* the request was checked with */
    unsigned int wr_num;
    uint64_t wr_len;
    bool notify_deferred;    /* pushed; the queue thread notifies later */
    struct fv_req *batch_next;  /* queue thread's list of such requests */
    struct fv_req *pool_next;   /* the queue's pool FIFO (dispatch.c) */
    struct iovec wr_iov[];   /* the chain's writable buffers */
};

struct fv_config {
    unsigned int thread_pool_size;  /* per-queue pool of N (0: one thread) */
    /*
     * Every queue's mode at start: inline, pool or auto. Unless set
     * (queue_mode_set), pool when thread_pool_size > 0, inline otherwise
     * (upstream's meaning of --thread-pool-size).
     */
    enum fv_mode queue_mode;
    bool queue_mode_set;
    enum fv_pool_sched pool_sched;  /* every queue's, at start (0: normal) */
    /* every queue's auto threshold at start, us (auto_slow.h; 0: default) */
    unsigned int auto_slow_us;
    unsigned int max_request_queues;/* reported to the frontend (>= 1) */
    /*
     * Per-request counters (STATS.md). false (--stats=off): no timestamps
     * are taken on the request path and nothing is recorded.
     * fv_config_default() sets it true.
     */
    bool stats;
    /*
     * Leave a WRITE's data in guest memory instead of copying it into the
     * request: only if the filesystem's write_buf calls fv_write_data()
     * before it touches the data (the passthrough's lo_config.write_data).
     */
    bool write_in_place;
};

/* Defaults: inline, one request queue, stats on, pool sched normal. */
void fv_config_default(struct fv_config *cfg);

struct fv_dev;

/*
 * @ops/@userdata are handed to every libfuse session the device creates
 * (a fresh one at start, after DESTROY+INIT and after a device reset).
 */
struct fv_dev *fv_dev_new(const struct fv_config *cfg,
                          const struct fuse_lowlevel_ops *ops, size_t ops_size,
                          void *userdata);
/*
 * Serve the vhost-user connection @sock (connected) on the calling thread
 * until the frontend disconnects. Returns 0 on a clean disconnect, -errno
 * on a socket error. @sock is closed before this returns; the session is
 * reset (a later connection starts with a fresh one).
 */
int fv_dev_serve(struct fv_dev *dev, int sock);
/*
 * fv_dev_serve() in three steps, for a caller that polls the vhost-user
 * socket together with other fds (main.c: the control socket):
 *   fv_dev_connect(dev, sock)        0, or -errno (@sock closed)
 *   fv_dev_process_msg(dev)          when fv_dev_vhost_fd() is readable
 *                                    (or hung up): handles one message;
 *                                    0, or -errno: the connection is over
 *   fv_dev_disconnect(dev, r)        with the last result; returns what
 *                                    fv_dev_serve() would (0 on a clean
 *                                    disconnect), @sock closed
 * All three on the one vhost-user thread.
 */
int fv_dev_connect(struct fv_dev *dev, int sock);
int fv_dev_process_msg(struct fv_dev *dev);
int fv_dev_disconnect(struct fv_dev *dev, int result);
/* The connected vhost-user socket, -1 if none. */
int fv_dev_vhost_fd(struct fv_dev *dev);
void fv_dev_free(struct fv_dev *dev);

/* The request being run by the calling thread, or NULL. */
struct fv_req *fv_current_req(void);

/*
 * Answer the READ the calling thread is running with up to @size bytes at
 * @off of @fd, read straight into the guest's reply buffers (no bounce
 * buffer, no copy). Returns the bytes read, the reply sent (a short read
 * is a short reply); the caller then frees its libfuse request with
 * fuse_reply_none(). -EOPNOTSUPP: not possible here (not a READ on an
 * inline/pool thread, say), nothing sent, reply the usual way. Another
 * -errno: preadv() failed, nothing sent, reply with that error.
 */
ssize_t fv_reply_read_fd(int fd, size_t size, off_t off);

struct fuse_bufvec;
/*
 * Write the data of the WRITE the calling thread is running, @src as
 * libfuse handed it to write_buf, to @fd at @off: with pwritev() straight
 * from guest memory when the device left the data there (no copy). Returns
 * the bytes written; -EOPNOTSUPP when @src already holds the data (write it
 * the usual way); another -errno: the write failed (or guest memory
 * changed under the request), reply with that error.
 */
ssize_t fv_write_data(int fd, const struct fuse_bufvec *src, off_t off);

/* Per-queue execution modes (dispatch.h), for the control socket. */
struct dispatch;
struct dispatch *fv_dev_dispatch(struct fv_dev *dev);
/* Queues of the device (hiprio + request queues offered). */
unsigned int fv_dev_num_queues(struct fv_dev *dev);
/* Queue @qidx is started (ring processed). vhost-user thread only. */
bool fv_dev_queue_started(struct fv_dev *dev, unsigned int qidx);

/*
 * Counters (virtiofsd/STATS.md describes the schema). Both are safe to
 * call from any thread while requests run.
 *
 * fv_dev_stats_json: a malloc'd one-line JSON object (no trailing newline),
 * the whole snapshot; NULL only when out of memory. With stats off it is a
 * valid object with "stats_enabled":false and no per-opcode data.
 * fv_dev_stats_reset: counters start again from zero (in-flight "now"
 * values and pool state are not counters and are kept).
 */
char *fv_dev_stats_json(struct fv_dev *dev);
void fv_dev_stats_reset(struct fv_dev *dev);
/* Count one live switch of queue @qidx: call when dispatch_set_mode()
 * actually changed its mode (pool resizes alone are not switches). */
void fv_dev_stats_mode_switch(struct fv_dev *dev, unsigned int qidx);

/*
 * The signal used to interrupt side-pool threads blocked in a lock wait
 * when their queue stops (handler does nothing, no SA_RESTART, so
 * F_OFD_SETLKW returns EINTR). Installed by fv_dev_new(); the sandbox's
 * syscall filter must allow tgkill and rt_sigreturn.
 */
int fv_interrupt_signal(void);

#endif
